"""Documents → chunks: paragraph- and sentence-aware, sized in the embedding model's word pieces.

Chunks are exact slices of ``Document.text`` (offsets kept), never cross a PDF page (so a
citation's page is exact), and get stable ids derived from their content, which makes
re-ingest idempotent.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from langchain_text_splitters import RecursiveCharacterTextSplitter

from ingest.types import Chunk, Document

# Paragraphs first, then lines, then sentences (Latin and CJK punctuation), then clauses,
# then words. Lookbehinds keep the punctuation with its sentence.
_SEPARATORS = [
    r"\n\s*\n",
    r"\n",
    r"(?<=[.!?])\s+(?=[\"'“‘(\[]?[A-Z0-9])",
    r"(?<=[。！？；])",
    r"(?<=[;:])\s+",
    r"(?<=[，,])",
    r"\s+",
    "",
]
SPECIAL_TOKENS = 2  # [CLS] and [SEP], counted by the model's window
_SMALL = 16  # word pieces below which a fragment is merged into a neighbour


def chunk_id(doc_id: str, start: int, end: int, text: str) -> str:
    digest = hashlib.sha256(f"{doc_id}:{start}:{end}:{text}".encode()).hexdigest()
    return digest[:32]


def embed_text(title: str, text: str) -> str:
    """What is embedded for a chunk: the title gives short chunks their context."""
    return f"{title}\n{text}" if title else text


def make_splitter(
    count_tokens: Callable[[str], int], budget: int, overlap: int
) -> RecursiveCharacterTextSplitter:
    return RecursiveCharacterTextSplitter(
        separators=_SEPARATORS,
        is_separator_regex=True,
        keep_separator="end",
        chunk_size=budget,
        chunk_overlap=min(overlap, budget // 2),
        length_function=lambda t: max(0, count_tokens(t) - SPECIAL_TOKENS),
        add_start_index=True,
        strip_whitespace=True,
    )


def _segments(doc: Document) -> list[tuple[int, int, int | None]]:
    """Spans to split independently: one per PDF page, else the whole text."""
    if doc.pages:
        return [(p.start, p.end, p.page) for p in doc.pages if p.end > p.start]
    return [(0, len(doc.text), None)]


def _merge_small(
    text: str, spans: list[tuple[int, int]], count: Callable[[str], int], budget: int
) -> list[tuple[int, int]]:
    """Fold fragments (a lone heading line, a trailing clause) into a neighbour when the
    merged span still fits: a chunk of three words retrieves badly and quotes nothing."""
    out: list[tuple[int, int]] = []
    for start, end in spans:
        if out:
            prev_start, prev_end = out[-1]
            small = min(count(text[prev_start:prev_end]), count(text[start:end])) < _SMALL
            if small and count(text[prev_start:end]) <= budget:
                out[-1] = (prev_start, end)
                continue
        out.append((start, end))
    return out


def chunk_document(
    doc: Document,
    *,
    count_tokens: Callable[[str], int],
    max_tokens: int = 256,
    overlap_tokens: int = 32,
) -> list[Chunk]:
    """Split ``doc`` so that ``embed_text(title, chunk)`` fits ``max_tokens`` word pieces."""
    title_cost = count_tokens(embed_text(doc.title, "")) - SPECIAL_TOKENS if doc.title else 0
    # Never let a long title squeeze the text to nothing.
    budget = max(48, max_tokens - SPECIAL_TOKENS - title_cost)
    splitter = make_splitter(count_tokens, budget, overlap_tokens)
    chunks: list[Chunk] = []

    def count(t: str) -> int:
        return max(0, count_tokens(t) - SPECIAL_TOKENS)

    for seg_start, seg_end, page in _segments(doc):
        segment = doc.text[seg_start:seg_end]
        spans: list[tuple[int, int]] = []
        for piece in splitter.create_documents([segment]):
            text = piece.page_content
            if not text.strip():
                continue
            start = seg_start + int(piece.metadata["start_index"])
            if start < seg_start or doc.text[start : start + len(text)] != text:
                # The splitter's offsets come from str.find; fall back to a search in the
                # segment if it ever lands elsewhere, so offsets stay exact.
                found = doc.text.find(text, seg_start, seg_end)
                if found < 0:
                    raise ValueError(f"chunk not found in document text: {text[:40]!r}")
                start = found
            spans.append((start, start + len(text)))
        merged = _merge_small(doc.text, spans, count, budget)
        for start, end in merged:
            text = doc.text[start:end]
            lone_title = text.strip("#*= \n").casefold() == doc.title.casefold()
            if len(merged) > 1 and lone_title:
                continue  # a lone title line: every chunk's embedding carries the title already
            chunks.append(
                Chunk(
                    chunk_id=chunk_id(doc.doc_id, start, end, text),
                    doc_id=doc.doc_id,
                    index=len(chunks),
                    text=text,
                    start=start,
                    end=end,
                    page=page,
                )
            )
    return chunks
