"""Hybrid retrieval: dense (Chroma) and BM25 lists fused by reciprocal rank fusion.

Then near-duplicate passages are collapsed and at most ``max_per_doc`` chunks of one
document are kept in the top k, so an answer can draw on several sources. A time window
in the question ("in 2020", "since March 2021") filters both lists by publication date;
undated chunks stay in (nothing says they are outside), and when the window holds fewer
than k passages the rest of the index backfills after them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from bot.aliases import expanded
from bot.dates import DateIntent, parse_date_intent
from bot.diversity import MAX_PER_DOC, distinct, diversify
from bot.focus import DocumentFocus
from bot.lexical import LexicalIndex
from bot.restricted import (
    EXACT_MAX,
    ChunkFilter,
    LexicalScores,
    Scored,
    SearchesAmong,
    focus_where,
    search_among,
)
from bot.restricted import date_where as date_where  # re-exported: tests import it from here
from bot.restricted import passes_date_where as passes_date_where
from bot.types import Hit
from ingest.lexical_store import LexicalFiles
from ingest.sentence_vectors import SENTENCE_VECTORS_KEY
from ingest.store import IndexStore
from ingest.types import IndexedChunk
from ingest.vocabulary import CJK_RE

RRF_K = 60  # the usual constant of reciprocal rank fusion (Cormack et al., 2009)
DENSE_K = 30
LEXICAL_K = 30
DENSE_WEIGHT = 1.0
LEXICAL_WEIGHT = 1.0
# "latest ...": among passages about as similar to the question as the best one (cosine
# within this margin), the newest document goes first.
RECENT_SIMILARITY_MARGIN = 0.1
DEDUP_WINDOW = 30  # fused candidates considered for the top k
# all-MiniLM-L6-v2 is an English model: on Chinese questions its ranking is mostly noise,
# so its list weighs half there (bench/RESULTS.md has the measurement).
CJK_DENSE_FACTOR = 0.5
# Extra RRF weight of the lists searched within the documents the question names (see
# bot.focus); the unfocused lists stay in, so a wrong focus costs rank, not recall.
FOCUS_WEIGHT = 1.0
# A date window's dense list: Chroma's where-filter on date_ord costs ~0.6 s at 100k chunks
# (the unfiltered search ~11 ms, k=120 ~50 ms), and was the slow tail of warm answers there.
# The best in-window chunks are the first in-window ones of the unfiltered ranking, so that
# ranking, this many times the list's length, is searched and filtered here; Chroma filters
# only when it holds too few of them.
WINDOW_OVERFETCH = 4


def dense_weight_for(question: str, weight: float) -> float:
    """The dense list's RRF weight for ``question``: lower when it is mostly Chinese."""
    letters = [ch for ch in question if ch.isalpha()]
    cjk = sum(1 for ch in letters if CJK_RE.match(ch))
    return weight * CJK_DENSE_FACTOR if letters and cjk * 2 > len(letters) else weight


class ChunkStore(Protocol):
    """What retrieval reads from the index (``ingest.store.IndexStore`` provides it)."""

    def all_chunks(self) -> list[IndexedChunk]: ...
    def get_chunks(self, ids: Sequence[str]) -> list[IndexedChunk]: ...
    def generation(self) -> str: ...
    def dense_search(
        self, query_embedding: list[float], k: int, where: dict[str, Any] | None = None
    ) -> list[tuple[IndexedChunk, float]]: ...


@runtime_checkable
class MetadataStore(Protocol):
    def metadatas(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]: ...


def with_sentence_vectors(store: object, hits: list[Hit]) -> list[Hit]:
    """Hits found by BM25 alone come from its files, which leave the chunks' sentence
    vectors in Chroma (they would multiply the files' size): fetch them for the few hits
    that go to the answer selector, in one read, so it embeds no sentence itself."""
    lacking = [h.chunk_id for h in hits if h.chunk.sentence_vectors is None]
    if not lacking or not isinstance(store, MetadataStore):
        return hits
    found = {
        cid: value
        for cid, meta in store.metadatas(lacking).items()
        if isinstance(value := meta.get(SENTENCE_VECTORS_KEY), str)
    }
    return [
        Hit(
            replace(h.chunk, sentence_vectors=found[h.chunk_id]),
            h.score,
            h.dense_rank,
            h.lexical_rank,
        )
        if h.chunk_id in found
        else h
        for h in hits
    ]


class QueryEmbedder(Protocol):
    def embed_query(self, text: str) -> list[float]: ...


@dataclass(slots=True)
class Retrieval:
    hits: list[Hit]
    timings_ms: dict[str, float] = field(default_factory=dict)
    intent: DateIntent | None = None
    backfilled: bool = False  # the date window held too few passages; others were added
    query_vector: list[float] | None = None  # the question's embedding (the selector reuses it)


def rrf(ranked_lists: Sequence[tuple[Sequence[str], float]], k: int = RRF_K) -> dict[str, float]:
    """Reciprocal rank fusion: sum of ``weight / (k + rank)`` over the lists (rank 1-based)."""
    scores: dict[str, float] = {}
    for ids, weight in ranked_lists:
        for rank, cid in enumerate(ids, start=1):
            scores[cid] = scores.get(cid, 0.0) + weight / (k + rank)
    return scores


class Retriever:
    """Hybrid search over one index; safe to call from several threads at once."""

    def __init__(
        self,
        store: ChunkStore,
        embeddings: QueryEmbedder,
        *,
        dense_k: int = DENSE_K,
        lexical_k: int = LEXICAL_K,
        dense_weight: float = DENSE_WEIGHT,
        lexical_weight: float = LEXICAL_WEIGHT,
        max_per_doc: int = MAX_PER_DOC,
        lexical_files: LexicalFiles | None = None,
        exact_max: int = EXACT_MAX,
    ) -> None:
        self.store = store
        # The BM25 index saved beside the index (ingest keeps it current); without it,
        # built from every chunk on first use and after each ingest.
        self.lexical_files = lexical_files
        self.embeddings = embeddings
        self.dense_k = dense_k
        self.lexical_k = lexical_k
        self.dense_weight = dense_weight
        self.lexical_weight = lexical_weight
        self.max_per_doc = max_per_doc
        # Filtered dense lists of at most this many chunks are ranked exactly (bot.restricted).
        self.exact_max = exact_max
        self._lock = threading.Lock()
        self._lexical: LexicalIndex | None = None
        self._focus = DocumentFocus.build([])
        self._generation: str | None = None
        self._filter: ChunkFilter | None = None

    def chunk_filter(self, lexical: LexicalIndex) -> ChunkFilter:
        """The document and date filter over ``lexical``'s chunks (made on first need)."""
        made = self._filter
        if made is None or made.lexical is not lexical:
            # Two threads may both make it: equal filters, either is kept.
            made = self._filter = ChunkFilter(lexical)
        return made

    def dense_within(
        self,
        vector: list[float],
        lexical: LexicalIndex,
        focus: frozenset[str],
        window: DateIntent | None,
    ) -> Scored:
        """The dense list among the chunks of ``focus`` (all when empty) inside ``window``:
        Chroma's query with ``focus_where``/``date_where``, found without their metadata
        scan when the store allows (``bot.restricted``)."""
        where = focus_where(focus, window) if focus else date_where(window) if window else None
        if not isinstance(self.store, SearchesAmong):
            return self.store.dense_search(vector, self.dense_k, where)
        filt = self.chunk_filter(lexical)
        positions = filt.passing(focus, window)
        return search_among(
            self.store, vector, self.dense_k, positions, filt, where, self.exact_max
        )

    def lexical_index(self) -> LexicalIndex:
        """The BM25 index, rebuilt when an ingest has changed the store since the last build."""
        generation = self.store.generation()
        with self._lock:
            # One thread rebuilds; the others wait and then reuse its index.
            if self._lexical is None or generation != self._generation:
                if self._generation is not None and isinstance(self.store, IndexStore):
                    # Another process's ingest: an embedded client must reopen to see it.
                    self.store.sync(generation)
                if self.lexical_files is not None:
                    self._lexical = self.lexical_files.refresh(
                        self.store, generation, self._lexical
                    )
                else:
                    self._lexical = LexicalIndex.build(self.store.all_chunks())
                lexical = self._lexical
                self._focus = DocumentFocus.from_columns(
                    lexical.column("doc_id"),
                    lexical.column("title"),
                    lexical.column("path"),
                    self._focus,
                    lexical.sources,
                )
                self._generation = generation
            return self._lexical

    def search(self, question: str, k: int = 5, today: date | None = None) -> list[Hit]:
        return self.search_with_timings(question, k, today).hits

    def search_with_timings(
        self, question: str, k: int = 5, today: date | None = None
    ) -> Retrieval:
        intent = parse_date_intent(question, today or date.today())
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        vector = self.embeddings.embed_query(question)
        timings["embed_ms"] = (time.perf_counter() - t0) * 1000
        t0 = time.perf_counter()
        lexical = self.lexical_index()
        timings["lexical_index_ms"] = (time.perf_counter() - t0) * 1000

        focus = self._focus.focus(question)
        bm25 = LexicalScores(lexical, expanded(question))  # every name of its measures
        fused = self._fused(question, vector, lexical, intent, timings, focus, bm25)
        backfilled = False
        if intent.has_window and len(fused) < k:
            # Too little in the window (or undated documents): fall back to the whole index
            # after the in-window passages rather than answer from nothing.
            seen = {h.chunk_id for h in fused}
            unfiltered = self._fused(question, vector, lexical, None, timings, focus, bm25)
            extra = [h for h in unfiltered if h.chunk_id not in seen]
            floor = fused[-1].score if fused else float("inf")
            for i, hit in enumerate(extra):
                # Keep scores falling: every in-window passage ranks above every other one.
                score = min(hit.score, floor) * (0.999 ** (i + 1))
                fused.append(_with_score(hit, score))
            backfilled = bool(extra)

        t0 = time.perf_counter()
        # Only the head of the fused list can reach the top k; comparing every candidate
        # (up to four lists of 30) for near-duplicates cost more than the searches did.
        head = fused[: max(DEDUP_WINDOW, 6 * k)]
        hits = diversify(distinct(head), k, self.max_per_doc, focus)
        timings["dedup_ms"] = (time.perf_counter() - t0) * 1000
        t0 = time.perf_counter()
        hits = with_sentence_vectors(self.store, hits)
        timings["sentence_vectors_ms"] = (time.perf_counter() - t0) * 1000
        return Retrieval(hits, timings, intent, backfilled, vector)

    def _focused_lists(
        self,
        focus: frozenset[str],
        vector: list[float],
        lexical: LexicalIndex,
        window: DateIntent | None,
        allowed: npt.NDArray[np.bool_] | None,
        bm25: LexicalScores,
    ) -> tuple[Scored, Scored]:
        """Dense and BM25 lists within the documents the question names (or empty)."""
        if not focus:
            return [], []
        dense = self.dense_within(vector, lexical, focus, window)
        mask = self.chunk_filter(lexical).of_documents(focus)
        if allowed is not None:
            mask &= allowed
        found = bm25.search(self.lexical_k, mask)
        return dense, [(lexical.chunks[i], score) for i, score in found]

    def dense(self, vector: list[float], k: int, lexical: LexicalIndex) -> Scored:
        """The unfiltered dense list; its chunks from ``lexical`` when the store allows."""
        if not isinstance(self.store, SearchesAmong):
            return self.store.dense_search(vector, k)
        return self.chunk_filter(lexical).scored(self.store.nearest(vector, k), self.store)

    def _window_dense(
        self, vector: list[float], lexical: LexicalIndex, window: DateIntent
    ) -> Scored:
        """In the window by the where-filter, plus undated chunks (a window cannot judge
        them, and Chroma cannot filter on a missing key): best similarities first."""
        k = self.dense_k
        # A window few chunks fall in is ranked exactly (``dense_within``); the unfiltered
        # search then only has to supply the undated chunks of its top k.
        few = isinstance(self.store, SearchesAmong) and (
            int(self.chunk_filter(lexical).in_window(window).sum()) <= self.exact_max
        )
        ranked = self.dense(vector, k if few else k * WINDOW_OVERFETCH, lexical)
        inside = [] if few else [p for p in ranked if passes_date_where(p[0].date, window)]
        if len(inside) < k:
            inside = self.dense_within(vector, lexical, frozenset(), window)
        undated = [p for p in ranked[:k] if not p[0].date]
        return sorted([*inside[:k], *undated], key=lambda p: -p[1])[:k]

    def _fused(
        self,
        question: str,
        vector: list[float],
        lexical: LexicalIndex,
        intent: DateIntent | None,
        timings: dict[str, float],
        focus: frozenset[str],
        bm25: LexicalScores | None = None,
    ) -> list[Hit]:
        window = intent if intent is not None and intent.has_window else None
        t0 = time.perf_counter()
        if window is None:
            dense = self.dense(vector, self.dense_k, lexical)
        else:
            dense = self._window_dense(vector, lexical, window)
        timings["dense_ms"] = timings.get("dense_ms", 0.0) + (time.perf_counter() - t0) * 1000

        t0 = time.perf_counter()
        allowed = self.chunk_filter(lexical).lexical_allowed(window) if window else None
        bm25 = bm25 or LexicalScores(lexical, question)  # scored once, searched in each set
        lex = [(lexical.chunks[i], s) for i, s in bm25.search(self.lexical_k, allowed)]
        timings["lexical_ms"] = timings.get("lexical_ms", 0.0) + (time.perf_counter() - t0) * 1000

        t0 = time.perf_counter()
        focused = self._focused_lists(focus, vector, lexical, window, allowed, bm25)
        timings["focus_ms"] = timings.get("focus_ms", 0.0) + (time.perf_counter() - t0) * 1000
        t0 = time.perf_counter()
        chunks: dict[str, IndexedChunk] = {}
        for chunk, _ in [*dense, *lex, *focused[0], *focused[1]]:
            chunks.setdefault(chunk.chunk_id, chunk)
        dense_ids = [c.chunk_id for c, _ in dense]
        lex_ids = [c.chunk_id for c, _ in lex]
        dense_w = dense_weight_for(question, self.dense_weight)
        lists: list[tuple[Sequence[str], float]] = [
            (dense_ids, dense_w),
            (lex_ids, self.lexical_weight),
            ([c.chunk_id for c, _ in focused[0]], dense_w * FOCUS_WEIGHT),
            ([c.chunk_id for c, _ in focused[1]], self.lexical_weight * FOCUS_WEIGHT),
        ]
        scores = rrf(lists)
        if intent is not None and intent.prefer_recent:
            _prefer_recent(scores, chunks, dict((c.chunk_id, s) for c, s in dense))
        dense_rank = {cid: r for r, cid in enumerate(dense_ids, start=1)}
        lex_rank = {cid: r for r, cid in enumerate(lex_ids, start=1)}
        order = sorted(scores, key=lambda cid: -scores[cid])
        hits = [
            Hit(chunks[cid], scores[cid], dense_rank.get(cid), lex_rank.get(cid)) for cid in order
        ]
        timings["fusion_ms"] = timings.get("fusion_ms", 0.0) + (time.perf_counter() - t0) * 1000
        return hits


def _prefer_recent(
    scores: dict[str, float], chunks: dict[str, IndexedChunk], similarity: dict[str, float]
) -> None:
    """Move the newest of the near-best dense matches to the top, in date order (in place).

    RRF scores are too compressed to tell "as relevant" from "less relevant", so the band
    of comparable passages is drawn by cosine similarity, which is absolute.
    """
    if not similarity or not scores:
        return
    best = max(similarity.values())
    band = [
        cid
        for cid, sim in similarity.items()
        if sim >= best - RECENT_SIMILARITY_MARGIN and chunks[cid].date
    ]
    band.sort(key=lambda cid: (chunks[cid].date or "", scores[cid]), reverse=True)
    top = max(scores.values())
    for i, cid in enumerate(band):
        scores[cid] = top * (1.0 + 0.01 * (len(band) - i))


def _with_score(hit: Hit, score: float) -> Hit:
    return replace(hit, score=score)
