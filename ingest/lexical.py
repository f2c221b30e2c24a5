"""BM25 over every chunk, kept in immutable segments so that one new file costs one segment.

A precomputed BM25 matrix (bm25s's "eager" index) bakes the corpus-wide idf and average
length into every stored score, so adding one document would mean scoring every chunk
again. Here each segment stores raw term frequencies (term-major, like a CSC matrix) and
document lengths; scores are computed per query from the postings of the query's terms,
with idf and average length taken over the live chunks of all segments. So:

- adding chunks adds a segment (tokenising only those chunks);
- removing chunks clears their bit in the segment's live mask (a tombstone);
- the scores equal those of one index built from scratch over the live chunks, whatever
  the segmentation (tests check this, and that they equal bm25s's on the same corpus).

Small segments are merged (without tokenising again) once there are too many of them, as
Lucene does. The formula is bm25s's default, "lucene": idf = ln(1 + (N - df + 0.5) /
(df + 0.5)), tf part = tf / (tf + k1 · (1 - b + b · len / avglen)).
"""

from __future__ import annotations

import bisect
import itertools
import re
import uuid
from array import array
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import PurePath
from typing import Any

import numpy as np
import numpy.typing as npt

from ingest.chunk_columns import FIELDS, ChunkColumns, Gathered, column
from ingest.terms import tokenize
from ingest.types import IndexedChunk

K1 = 1.5  # bm25s's defaults, which the retrieval weights were tuned with
B = 0.75
MAX_SEGMENTS = 8  # more than this and the small ones are merged into one

IntArray = npt.NDArray[np.int32]
FloatArray = npt.NDArray[np.float32]
BoolArray = npt.NDArray[np.bool_]
Tokenize = Callable[[str], list[str]]
Source = tuple[str, str]  # a document's (title, path)
_SEPARATORS = re.compile(r"[_\-.]+")


def source_terms(title: str, path: str) -> frozenset[str]:
    """Terms of a document's title and file name: what ``bot.focus`` matches the names in
    a question against. Saved with each segment, so a new process does not tokenise every
    document's title again, which grows with the number of documents."""
    stem = _SEPARATORS.sub(" ", PurePath(path).stem)
    return frozenset(tokenize(title) + tokenize(stem))


def chunk_terms(chunks: Iterable[IndexedChunk], tok: Tokenize = tokenize) -> Iterator[list[str]]:
    """What BM25 indexes of each chunk: its document title, then its text (a chunk at a
    time: every chunk's terms at once is many times the texts' memory)."""
    titles: dict[str, list[str]] = {}  # a document's chunks share its title: tokenise once
    for c in chunks:
        title = titles.get(c.title)
        if title is None:
            title = titles[c.title] = tok(c.title)
        yield title + tok(c.text)


@dataclass(frozen=True, eq=False)
class Segment:
    """Term frequencies of a fixed list of chunks. Never changed once made."""

    chunks: Sequence[IndexedChunk]  # a tuple, or columns (``ChunkColumns``) when loaded
    terms: tuple[str, ...]  # local term id → term
    indptr: npt.NDArray[np.int64]  # postings of term t: [indptr[t], indptr[t + 1])
    docs: IntArray  # chunk position within the segment, ascending within a term
    tfs: FloatArray  # how often the term occurs in that chunk
    lengths: IntArray  # terms per chunk (title included)
    name: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    # ``source_terms`` of the segment's documents, when known (saved segments carry them).
    sources: Mapping[Source, frozenset[str]] = field(default_factory=dict)
    # Term ids in the terms' sorted order, when saved with the segment: a question's few
    # terms are then found by binary search, without the dict of every term (building it
    # was a large part of a one-shot ask's first search).
    term_order: npt.NDArray[np.int32] | None = None

    @cached_property
    def vocab(self) -> dict[str, int]:
        return {t: i for i, t in enumerate(self.terms)}

    def term_id(self, term: str) -> int | None:
        """The local id of ``term``, or None when no chunk of the segment has it."""
        order = self.term_order
        if order is None or "vocab" in self.__dict__:
            return self.vocab.get(term)
        terms = self.terms
        at = bisect.bisect_left(order, term, key=lambda i: terms[i])
        return int(order[at]) if at < len(order) and terms[order[at]] == term else None

    @classmethod
    def build(cls, chunks: Sequence[IndexedChunk], tok: Tokenize = tokenize) -> Segment:
        vocab: dict[str, int] = {}
        # Each chunk's (term, count) pairs, in chunk order, as 4-byte arrays: a few bytes
        # per distinct term of a chunk, where sorting (term, chunk) keys of every word took
        # some 40 bytes a word (the largest part of a big file's peak memory).
        term_of, doc_of, tf_of = array("i"), array("i"), array("f")
        lengths: list[int] = []
        for position, terms in enumerate(chunk_terms(chunks, tok)):
            lengths.append(len(terms))
            counts = Counter([vocab.setdefault(t, len(vocab)) for t in terms])
            term_of.extend(counts.keys())
            doc_of.extend(itertools.repeat(position, len(counts)))
            tf_of.extend(counts.values())
        term_ids = np.frombuffer(term_of, dtype=np.int32)
        # A stable sort by term keeps each term's chunks in ascending order.
        order = np.argsort(term_ids, kind="stable")
        return cls(
            chunks=tuple(chunks),
            terms=tuple(vocab),
            indptr=_indptr(term_ids, len(vocab)),
            docs=np.frombuffer(doc_of, dtype=np.int32)[order],
            tfs=np.frombuffer(tf_of, dtype=np.float32)[order],
            lengths=np.asarray(lengths, dtype=np.int32),
        )

    def __len__(self) -> int:
        return len(self.chunks)


def sorted_term_order(terms: Sequence[str]) -> npt.NDArray[np.int32]:
    """Term ids ordered by their terms (what ``Segment.term_order`` holds)."""
    return np.asarray(sorted(range(len(terms)), key=terms.__getitem__), dtype=np.int32)


def _indptr(term_ids: npt.NDArray[np.integer[Any]], n_terms: int) -> npt.NDArray[np.int64]:
    counts = np.bincount(term_ids, minlength=n_terms) if n_terms else np.zeros(0, np.int64)
    return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)


def merge(segments: Sequence[Segment], live: Sequence[BoolArray]) -> Segment:
    """One segment holding the live chunks of ``segments``, in order; nothing re-tokenised."""
    vocab: dict[str, int] = {}
    term_parts: list[npt.NDArray[np.int64]] = []
    doc_parts: list[npt.NDArray[np.int64]] = []
    tf_parts: list[FloatArray] = []
    lengths: list[IntArray] = []
    columns: dict[str, list[Any]] = {f: [] for f in FIELDS}
    base = 0
    for seg, alive in zip(segments, live, strict=True):
        remap = np.asarray([vocab.setdefault(t, len(vocab)) for t in seg.terms], dtype=np.int64)
        new_pos = np.cumsum(alive, dtype=np.int64) - 1 + base
        posting_terms = np.repeat(np.arange(len(seg.terms)), np.diff(seg.indptr))
        keep = alive[seg.docs]
        term_parts.append(remap[posting_terms[keep]])
        doc_parts.append(new_pos[seg.docs[keep]])
        tf_parts.append(seg.tfs[keep])
        for f in FIELDS:
            columns[f].extend(v for v, ok in zip(column(seg.chunks, f), alive, strict=True) if ok)
        lengths.append(seg.lengths[alive])
        base += int(alive.sum())
    terms = np.concatenate(term_parts) if term_parts else np.zeros(0, np.int64)
    docs = np.concatenate(doc_parts) if doc_parts else np.zeros(0, np.int64)
    tfs = np.concatenate(tf_parts) if tf_parts else np.zeros(0, np.float32)
    # Terms left only in removed chunks are dropped; the rest are renumbered densely.
    used = np.bincount(terms, minlength=len(vocab)) > 0 if len(vocab) else np.zeros(0, bool)
    renumber = np.cumsum(used) - 1
    terms = renumber[terms]
    order = np.lexsort((docs, terms))
    all_terms = list(vocab)
    return Segment(
        sources={k: v for seg in segments for k, v in seg.sources.items()},
        chunks=ChunkColumns(columns),
        terms=tuple(all_terms[i] for i in np.flatnonzero(used)),
        indptr=_indptr(terms[order], int(used.sum())),
        docs=docs[order].astype(np.int32),
        tfs=tfs[order].astype(np.float32),
        lengths=(np.concatenate(lengths) if lengths else np.zeros(0)).astype(np.int32),
    )


def _live_chunks(
    segments: Sequence[Segment], live: Sequence[BoolArray], positions: npt.NDArray[np.int64]
) -> ChunkColumns:
    """The live chunks of ``segments`` (at ``positions`` of their concatenation), in order,
    as columns: no chunk objects made, and the texts looked up in their segments when a
    chunk is asked for rather than decoded all."""
    if len(segments) == 1 and bool(live[0].all()):
        return ChunkColumns.of(segments[0].chunks)
    columns: dict[str, Sequence[Any]] = {
        "text": Gathered([column(s.chunks, "text") for s in segments], positions)
    }
    for f in FIELDS:
        if f == "text":
            continue
        values: list[Any] = []
        for seg, alive in zip(segments, live, strict=True):
            part = column(seg.chunks, f)
            values.extend(part if bool(alive.all()) else itertools.compress(part, alive))
        columns[f] = values
    return ChunkColumns(columns)


class LexicalIndex:
    """BM25 over the live chunks of some segments; search results are positions in ``chunks``."""

    def __init__(
        self,
        segments: Sequence[Segment] = (),
        live: Sequence[BoolArray] | None = None,
        *,
        tok: Tokenize = tokenize,
    ) -> None:
        self.segments = tuple(segments)
        self.live = tuple(
            np.ones(len(s), dtype=bool) if live is None else np.asarray(live[i], dtype=bool)
            for i, s in enumerate(self.segments)
        )
        self.tokenize = tok
        self._offsets = np.cumsum([0, *(len(s) for s in self.segments)])
        alive = np.concatenate(self.live) if self.segments else np.zeros(0, dtype=bool)
        self._positions = np.flatnonzero(alive)  # live position → position over all segments
        self._alive = alive
        lengths = (
            np.concatenate([s.lengths for s in self.segments]) if self.segments else np.zeros(0)
        )
        self._lengths = lengths.astype(np.float64)
        self._avg_length = float(self._lengths[alive].mean()) if self._positions.size else 0.0
        self.chunks = _live_chunks(self.segments, self.live, self._positions)

    def column(self, name: str) -> Sequence[Any]:
        """One field of every live chunk (by position in ``chunks``)."""
        return self.chunks.column(name)

    @cached_property
    def sources(self) -> dict[Source, frozenset[str]]:
        """``source_terms`` of the documents the segments know them for."""
        return {k: v for s in self.segments for k, v in s.sources.items()}

    @classmethod
    def build(cls, chunks: Sequence[IndexedChunk], *, tok: Tokenize = tokenize) -> LexicalIndex:
        return cls([Segment.build(chunks, tok)] if chunks else [], tok=tok)

    def __len__(self) -> int:
        return len(self.chunks)

    def with_changes(
        self, added: Sequence[IndexedChunk] = (), removed: Collection[str] = ()
    ) -> LexicalIndex:
        """A new index without the chunks whose ids are in ``removed``, plus ``added``.

        Costs tokenising ``added``, plus (now and then) a merge of the small segments.
        Removal happens first, so re-adding a chunk under the same id replaces it.
        """
        removed = set(removed)
        live = [
            a & ~np.fromiter((c in removed for c in column(s.chunks, "chunk_id")), bool, len(s))
            if removed
            else a
            for s, a in zip(self.segments, self.live, strict=True)
        ]
        segments = list(self.segments)
        if added:
            segments.append(Segment.build(added, self.tokenize))
            live.append(np.ones(len(added), dtype=bool))
        # Drop segments with nothing left; merge the small ones when there are too many.
        kept = [(s, a) for s, a in zip(segments, live, strict=True) if a.any()]
        if len(kept) > MAX_SEGMENTS:
            kept.sort(key=lambda sa: -int(sa[1].sum()))
            head, tail = kept[:1], kept[1:]
            merged = merge([s for s, _ in tail], [a for _, a in tail])
            kept = [*head, (merged, np.ones(len(merged), dtype=bool))]
        return LexicalIndex([s for s, _ in kept], [a for _, a in kept], tok=self.tokenize)

    def compacted(self) -> LexicalIndex:
        """The same index as one segment without tombstones (for a full save)."""
        if len(self.segments) == 1 and bool(self.live[0].all()):
            return self
        merged = merge(self.segments, self.live)
        return LexicalIndex([merged] if len(merged) else [], tok=self.tokenize)

    @property
    def dead(self) -> int:
        """Removed chunks still held in segments (they never score)."""
        return int(self._alive.size - self._positions.size)

    def scores(self, query: str) -> npt.NDArray[np.float64]:
        """BM25 score of every chunk (by position in ``chunks``) for ``query``."""
        total = np.zeros(self._alive.size, dtype=np.float64)
        n = self._positions.size
        for term, repeats in Counter(self.tokenize(query)).items():
            positions, tfs = self._postings(term)
            df = positions.size
            if df == 0:
                continue
            idf = np.log1p((n - df + 0.5) / (df + 0.5))
            norm = K1 * (1 - B + B * self._lengths[positions] / self._avg_length)
            # A term repeated in the query counts again, as in bm25s.
            total[positions] += repeats * idf * (tfs / (tfs + norm))
        return total[self._positions]

    def _postings(self, term: str) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        pos_parts, tf_parts = [], []
        for seg, alive, offset in zip(self.segments, self.live, self._offsets, strict=False):
            t = seg.term_id(term)
            if t is None:
                continue
            start, end = seg.indptr[t], seg.indptr[t + 1]
            docs = seg.docs[start:end]
            keep = alive[docs]
            pos_parts.append(docs[keep].astype(np.int64) + offset)
            tf_parts.append(seg.tfs[start:end][keep].astype(np.float64))
        if not pos_parts:
            return np.zeros(0, np.int64), np.zeros(0, np.float64)
        return np.concatenate(pos_parts), np.concatenate(tf_parts)

    def search(
        self, query: str, k: int, *, allowed: Sequence[bool] | None = None
    ) -> list[tuple[int, float]]:
        """Top ``k`` (position, BM25 score) with a positive score, best first.

        ``allowed`` (one flag per chunk) restricts the search, e.g. to a date range.
        """
        if k <= 0 or not self.chunks:
            return []
        scores = self.scores(query)
        if allowed is not None:
            scores *= np.asarray(allowed, dtype=np.float64)
        positive = np.flatnonzero(scores > 0)
        if positive.size == 0:
            return []
        # Stable order: ties keep index order, so results are reproducible.
        order = positive[np.argsort(-scores[positive], kind="stable")][:k]
        return [(int(i), float(scores[i])) for i in order]
