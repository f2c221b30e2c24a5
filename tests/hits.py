"""Build a retrieved passage (``Hit``) for tests that need one without an index."""

from __future__ import annotations

from bot.types import Hit
from ingest.types import IndexedChunk


def make_hit(
    chunk_id: str,
    doc_id: str,
    text: str,
    score: float = 1.0,
    *,
    title: str = "",
    path: str = "",
    date: str | None = None,
    url: str | None = None,
    page: int | None = None,
    start: int = 0,
    dense_rank: int | None = None,
    lexical_rank: int | None = None,
) -> Hit:
    """A Hit on a chunk that is the whole of its document's text from ``start``."""
    chunk = IndexedChunk(
        chunk_id=chunk_id,
        doc_id=doc_id,
        text=text,
        path=path,
        title=title,
        index=0,
        start=start,
        end=start + len(text),
        page=page,
        date=date,
        url=url,
    )
    return Hit(chunk, score, dense_rank, lexical_rank)
