"""Dense search within the chunks a question restricts it to: named documents, a date window.

Chroma's where-filters (``doc_id $in``, a ``date_ord`` range) are evaluated against every
chunk's metadata on each query, which grows with the index and was the tail of warm
answers at 100k chunks (measured in bench/RESULTS.md, "Warm tail"). The
retriever knows which chunks pass already — the BM25 index's columns hold each chunk's
document and date (``ChunkFilter``) — so the list is found without that scan:

- a few chunks (≤ ``EXACT_MAX``): their stored vectors (``collection.get(ids=…,
  include=["embeddings"])``) ranked by exact cosine, which is at least as
  good as HNSW's filtered search;
- more: Chroma's query restricted by ``ids=`` — the same filtered HNSW search a where-filter
  ends in, without the metadata scan.

Either way the chunks come from the BM25 index, not from Chroma's rows: reading 30 rows (texts
and metadata holding sentence vectors) cost several times the HNSW search itself
(``ChunkFilter.scored``). Unfiltered dense searches are served the same way.

HNSW's filtered search slows down as the allowed set gets sparse, while the exact ranking
grows with the set; ``EXACT_MAX`` sits where the two crossed (bench/RESULTS.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from functools import cached_property
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
from chromadb.errors import ChromaError

from bot.dates import DateIntent
from ingest.lexical import LexicalIndex
from ingest.types import IndexedChunk

EXACT_MAX = 400  # chunks ranked by exact cosine; above, Chroma's query among their ids

Scored = list[tuple[IndexedChunk, float]]
BoolArray = npt.NDArray[np.bool_]
Positions = npt.NDArray[np.int64]


@runtime_checkable
class SearchesAmong(Protocol):
    """A store that answers a dense search with ids alone, can search among given ids,
    and hands out stored vectors (``ingest.store.IndexStore``). Stores without it get
    Chroma's rows and where-filters."""

    def vectors(self, ids: Sequence[str]) -> tuple[list[str], npt.NDArray[np.float32]]: ...

    def get_chunks(self, ids: Sequence[str]) -> list[IndexedChunk]: ...

    def nearest(
        self,
        query_embedding: list[float],
        k: int,
        where: dict[str, Any] | None = None,
        *,
        ids: Sequence[str] | None = None,
    ) -> list[tuple[str, float]]: ...


def date_where(intent: DateIntent) -> dict[str, Any] | None:
    """Chroma where-filter on ``date_ord`` (YYYYMMDD as an int) for the intent's window."""
    clauses: list[dict[str, Any]] = []
    if intent.start is not None:
        clauses.append({"date_ord": {"$gte": int(intent.start.strftime("%Y%m%d"))}})
    if intent.end is not None:
        clauses.append({"date_ord": {"$lte": int(intent.end.strftime("%Y%m%d"))}})
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def focus_where(doc_ids: frozenset[str], window: DateIntent | None) -> dict[str, Any]:
    """Chroma where-filter on the named documents, within ``window`` if there is one."""
    where: dict[str, Any] = {"doc_id": {"$in": sorted(doc_ids)}}
    date_filter = date_where(window) if window is not None else None
    return {"$and": [where, date_filter]} if date_filter else where


def _date_ord_range(intent: DateIntent) -> tuple[int, int]:
    """The window as ``date_where`` gives it to Chroma: inclusive YYYYMMDD bounds."""
    lo = int(intent.start.strftime("%Y%m%d")) if intent.start is not None else 0
    hi = int(intent.end.strftime("%Y%m%d")) if intent.end is not None else 99_999_999
    return lo, hi


def passes_date_where(iso_date: str | None, intent: DateIntent) -> bool:
    """Whether Chroma's ``date_where(intent)`` keeps a chunk dated ``iso_date``: its
    ``date_ord`` is the date's digits (``ingest.store.chunk_metadata``), absent if undated."""
    if not iso_date:
        return False
    lo, hi = _date_ord_range(intent)
    return lo <= int(iso_date.replace("-", "")) <= hi


UNDATED = 0


def _date_ord(iso_date: str | None) -> tuple[int, bool]:
    """A chunk's ``date_ord`` as Chroma holds it (``ingest.store.chunk_metadata``: the
    date's digits; 0 when undated, -1 when not digits), and whether ``DateIntent.contains``
    can place the date in a window at all (it is a real day)."""
    if not iso_date:
        return UNDATED, False
    digits = iso_date.replace("-", "")
    try:
        date.fromisoformat(iso_date[:10])
    except ValueError:
        return (int(digits) if digits.isdigit() else -1), False
    return (int(digits) if digits.isdigit() else -1), True


class ChunkFilter:
    """Which chunks of one BM25 index a document or date filter keeps (by position in its
    ``chunks``), from its columns, and the chunks a dense search names by id. Each table
    is made on first need, once per index."""

    def __init__(self, lexical: LexicalIndex) -> None:
        self.lexical = lexical
        self.chunk_ids: Sequence[str] = lexical.column("chunk_id")
        self.size = len(self.chunk_ids)

    @cached_property
    def position(self) -> dict[str, int]:
        return dict(zip(self.chunk_ids, range(self.size), strict=True))

    @cached_property
    def _dates(self) -> tuple[npt.NDArray[np.int64], BoolArray]:
        """Each chunk's ``date_ord`` and whether its date is a real day (``_date_ord``)."""
        distinct: dict[str | None, int] = {}  # a few hundred dates, numbered
        numbers = np.fromiter(
            (distinct.setdefault(d, len(distinct)) for d in self.lexical.column("date")),
            dtype=np.int64, count=self.size,
        )  # fmt: skip
        table = [_date_ord(d) for d in distinct]
        date_ord = np.asarray([o for o, _ in table], dtype=np.int64)[numbers]
        real_day = np.asarray([r for _, r in table], dtype=bool)[numbers]
        return date_ord, real_day

    @cached_property
    def _documents(self) -> tuple[dict[str, int], npt.NDArray[np.int64]]:
        """A number per document, and each chunk's document number."""
        codes: dict[str, int] = {}
        docs = self.lexical.column("doc_id")
        of_chunk = np.fromiter(
            (codes.setdefault(d, len(codes)) for d in docs), dtype=np.int64, count=self.size
        )
        return codes, of_chunk

    def in_window(self, window: DateIntent) -> BoolArray:
        """Dated chunks inside ``window``: what Chroma's ``date_where(window)`` keeps."""
        lo, hi = _date_ord_range(window)
        date_ord = self._dates[0]
        return (date_ord >= max(lo, 1)) & (date_ord <= hi)

    def lexical_allowed(self, window: DateIntent) -> BoolArray:
        """Chunks BM25 may return for ``window``: inside it, or undated (nothing says they
        are outside)."""
        date_ord, real_day = self._dates
        undated: BoolArray = date_ord == UNDATED
        return undated | (real_day & self.in_window(window))

    def of_documents(self, doc_ids: frozenset[str]) -> BoolArray:
        codes, of_chunk = self._documents
        wanted = [codes[d] for d in doc_ids if d in codes]
        return np.isin(of_chunk, np.asarray(wanted, dtype=np.int64))

    def scored(self, found: Sequence[tuple[str, float]], store: SearchesAmong) -> Scored:
        """``(chunk, similarity)`` for a dense search's ``(id, similarity)``: the BM25
        index's chunk objects (without sentence vectors: retrieval fetches those for the
        hits it keeps); ids it does not know yet (an ingest running) are read from Chroma."""
        missing = [cid for cid, _ in found if cid not in self.position]
        extra = {c.chunk_id: c for c in store.get_chunks(missing)} if missing else {}
        chunks = self.lexical.chunks
        out: Scored = []
        for cid, similarity in found:
            at = self.position.get(cid)
            chunk = chunks[at] if at is not None else extra.get(cid)
            if chunk is not None:
                out.append((chunk, similarity))
        return out

    def passing(self, focus: frozenset[str], window: DateIntent | None) -> Positions:
        """Positions of the chunks ``focus_where(focus, window)`` keeps (``date_where(window)``
        when ``focus`` is empty)."""
        if not focus and window is None:
            return np.arange(self.size, dtype=np.int64)
        keep = self.of_documents(focus) if focus else np.ones(self.size, dtype=bool)
        if window is not None:
            keep &= self.in_window(window)
        return np.flatnonzero(keep).astype(np.int64)


class LexicalScores:
    """One question's BM25 scores over every chunk, computed on first use and searched
    within several sets: the whole index, a date window, the named documents (each was a
    full ``LexicalIndex.search``)."""

    def __init__(self, lexical: LexicalIndex, question: str) -> None:
        self.lexical = lexical
        self.question = question
        self._scores: npt.NDArray[np.float64] | None = None

    def search(self, k: int, allowed: BoolArray | None = None) -> list[tuple[int, float]]:
        """``LexicalIndex.search(question, k, allowed=allowed)``: top ``k`` (position,
        score) with a positive score, best first, ties in index order."""
        if k <= 0 or not len(self.lexical):
            return []
        if self._scores is None:
            self._scores = self.lexical.scores(self.question)
        scores = self._scores if allowed is None else np.where(allowed, self._scores, 0.0)
        positive = np.flatnonzero(scores > 0)
        best = positive[np.argsort(-scores[positive], kind="stable")][:k]
        return [(int(i), float(scores[i])) for i in best]


def search_among(
    store: SearchesAmong,
    vector: list[float],
    k: int,
    positions: Positions,
    chunk_filter: ChunkFilter,
    where: dict[str, Any] | None,
    exact_max: int = EXACT_MAX,
) -> Scored:
    """The ``k`` chunks at ``positions`` of the filter's BM25 index nearest to ``vector`` by
    cosine, best first: the list Chroma's query with ``where`` gives when ``positions`` are
    the chunks ``where`` keeps (exact for a few, Chroma's filtered HNSW among their ids for
    more).

    Chunks ranked here are the BM25 index's objects, without sentence vectors (retrieval
    fetches those for the hits it keeps). If Chroma no longer holds some of the ids (an
    ingest is replacing them), its ``where`` query answers instead.
    """
    if k <= 0 or positions.size == 0:
        return []
    chunks = chunk_filter.lexical.chunks
    ids = [chunk_filter.chunk_ids[p] for p in positions.tolist()]
    if len(ids) > exact_max:
        try:
            found = store.nearest(vector, k, ids=ids)
        except ChromaError:  # "Error finding id": the index changed under this BM25 index
            found = store.nearest(vector, k, where)
        return chunk_filter.scored(found, store)
    held, vectors = store.vectors(ids)
    if not held:
        return []
    at = dict(zip(ids, positions.tolist(), strict=True))
    query = np.asarray(vector, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1) * float(np.linalg.norm(query))
    similarity = (vectors @ query) / np.where(norms > 0, norms, 1.0)
    # Ties keep the BM25 index's order, so results are reproducible.
    keys = np.asarray([at[cid] for cid in held])
    order = np.lexsort((keys, -similarity))[:k]
    return [(chunks[at[held[i]]], float(similarity[i])) for i in order]
