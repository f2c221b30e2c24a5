"""Documents → chunks: paragraph- and sentence-aware, sized in the embedding model's word pieces.

Chunks are exact slices of ``Document.text`` (offsets kept), never cross a PDF page (so a
citation's page is exact), and get stable ids derived from their content, which makes
re-ingest idempotent.

A run of text with no space in it (a 200 KB line of base64, a URL that never ends) is one
"word" to the tokenizer — a single [UNK] — so it would count as nothing and swallow the
whole document into one chunk. Such runs (longer than ``MAX_WORD_CHARS``, CJK text aside,
whose characters are words of their own) are cut out before the splitter runs, into
pieces of a hard character limit, and charged by their length when small fragments are
merged, so the text around them is chunked as usual.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable

from langchain_text_splitters import RecursiveCharacterTextSplitter

from ingest.sentence_vectors import embed_text as embed_text  # re-exported: chunks' rule
from ingest.types import Chunk, Document
from ingest.vocabulary import CJK_CHARS

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
MAX_WORD_CHARS = 100  # the tokenizer's longest word; a longer one becomes one [UNK]
CHARS_PER_PIECE = 4  # what a run longer than that is charged: a word piece per 4 characters
_LONG_RUN = re.compile(r"[^\s" + CJK_CHARS + r"]{" + str(MAX_WORD_CHARS + 1) + r",}")


def _around_long_runs(
    text: str, start: int, end: int, hard_chars: int
) -> list[tuple[bool, int, int]]:
    """``[start, end)`` as (is a hard piece, start, end): the text between long runs, and
    each long run cut every ``hard_chars`` characters."""
    out: list[tuple[bool, int, int]] = []
    at = start
    for run in _LONG_RUN.finditer(text, start, end):
        if run.start() > at:
            out.append((False, at, run.start()))
        for cut in range(run.start(), run.end(), hard_chars):
            out.append((True, cut, min(cut + hard_chars, run.end())))
        at = run.end()
    if at < end:
        out.append((False, at, end))
    return out


def _charging_long_runs(count_tokens: Callable[[str], int]) -> Callable[[str], int]:
    """``count_tokens``, plus each run without a space longer than ``MAX_WORD_CHARS``
    charged by its length (the tokenizer counts it as one piece)."""

    def count(text: str) -> int:
        n = count_tokens(text)
        for run in _LONG_RUN.finditer(text):
            n += (run.end() - run.start()) // CHARS_PER_PIECE
        return n

    return count


def chunk_id(doc_id: str, start: int, end: int, text: str) -> str:
    digest = hashlib.sha256(f"{doc_id}:{start}:{end}:{text}".encode()).hexdigest()
    return digest[:32]


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
        strip_whitespace=True,
    )


def _memo(count_tokens: Callable[[str], int]) -> Callable[[str], int]:
    """``count_tokens`` remembered per text: the splitter measures every split twice (once
    to pick it, once to merge it), and tokenising is most of chunking's time."""
    seen: dict[str, int] = {}

    def count(text: str) -> int:
        n = seen.get(text)
        if n is None:
            n = seen[text] = count_tokens(text)
        return n

    return count


_SPACE = re.compile(r"\s*")


def locate(text: str, piece: str, prev_start: int, prev_end: int, limit: int) -> int:
    """Where ``piece`` (the splitter's next chunk) starts in ``text``.

    The splitter returns strings, and its own offsets come from ``str.find`` from a guess
    that counts overlap tokens as characters; in text that repeats itself (a release pasted
    twice) that lands on an earlier copy, giving two chunks the same offsets and id. The
    real place is known instead: after the previous chunk's start (chunks advance), and no
    later than the first non-space character after the previous chunk's end (overlap only
    moves it back). The last occurrence inside that window is taken, so offsets strictly
    increase and every chunk of a document gets its own id. Linear: the window is about one
    chunk long.
    """
    latest = _SPACE.match(text, prev_end, limit)
    last_start = latest.end() if latest else prev_end
    found = text.rfind(piece, prev_start + 1, min(limit, last_start + len(piece)))
    if found < 0:  # not where expected (the splitter stripped something): search on
        found = text.find(piece, prev_start + 1, limit)
    if found < 0:
        raise ValueError(f"chunk not found in document text: {piece[:40]!r}")
    return found


def _segments(doc: Document) -> list[tuple[int, int, int | None]]:
    """Spans to split independently: one per PDF page, else the whole text."""
    if doc.pages:
        return [(p.start, p.end, p.page) for p in doc.pages if p.end > p.start]
    return [(0, len(doc.text), None)]


def _merge_small(
    text: str, spans: list[tuple[int, int]], count_tokens: Callable[[str], int], budget: int
) -> list[tuple[int, int]]:
    """Fold fragments (a lone heading line, a trailing clause) into a neighbour when the
    merged span still fits: a chunk of three words retrieves badly and quotes nothing."""

    def count(t: str) -> int:
        return max(0, count_tokens(t) - SPECIAL_TOKENS)

    def is_small(t: str) -> bool:
        # Every word is at least one word piece: a span of _SMALL words or more is not
        # small, and is not tokenised again (that was a whole extra pass over the text).
        return len(t.split(maxsplit=_SMALL)) < _SMALL and count(t) < _SMALL

    out: list[tuple[int, int]] = []
    for start, end in spans:
        if out:
            prev_start, prev_end = out[-1]
            small = is_small(text[start:end]) or is_small(text[prev_start:prev_end])
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
    offset: int = 0,
    first_index: int = 0,
) -> list[Chunk]:
    """Split ``doc`` so that ``embed_text(title, chunk)`` fits ``max_tokens`` word pieces.

    ``doc`` may be one section of a document read in sections (``ingest.stream``): its
    text then starts at ``offset`` in the document's and its first chunk is chunk
    ``first_index``; chunk offsets and ids are the document's."""
    title_cost = count_tokens(embed_text(doc.title, "")) - SPECIAL_TOKENS if doc.title else 0
    # Never let a long title squeeze the text to nothing.
    budget = max(48, max_tokens - SPECIAL_TOKENS - title_cost)
    chunks: list[Chunk] = []

    for seg_start, seg_end, page in _segments(doc):
        # Per segment: memory stays bounded by its size.
        counter = _memo(_charging_long_runs(count_tokens))
        splitter = make_splitter(counter, budget, overlap_tokens)
        spans: list[tuple[int, int]] = []
        hard_chars = budget * CHARS_PER_PIECE
        for hard, part_start, part_end in _around_long_runs(
            doc.text, seg_start, seg_end, hard_chars
        ):
            if hard:
                spans.append((part_start, part_end))
                continue
            prev_start, prev_end = part_start - 1, part_start
            for text in splitter.split_text(doc.text[part_start:part_end]):
                if not text.strip():
                    continue
                start = locate(doc.text, text, prev_start, prev_end, part_end)
                prev_start, prev_end = start, start + len(text)
                spans.append((start, prev_end))
        merged = _merge_small(doc.text, spans, counter, budget)
        for start, end in merged:
            text = doc.text[start:end]
            lone_title = text.strip("#*= \n").casefold() == doc.title.casefold()
            if len(merged) > 1 and lone_title:
                continue  # a lone title line: every chunk's embedding carries the title already
            start, end = start + offset, end + offset
            chunks.append(
                Chunk(
                    chunk_id=chunk_id(doc.doc_id, start, end, text),
                    doc_id=doc.doc_id,
                    index=first_index + len(chunks),
                    text=text,
                    start=start,
                    end=end,
                    page=page,
                )
            )
    return chunks
