"""Hybrid retrieval: dense (Chroma) and BM25 lists fused by reciprocal rank fusion.

Then near-duplicate passages are collapsed and at most ``max_per_doc`` chunks of one
document are kept in the top k, so an answer can draw on several sources. A time window
in the question ("in 2020", "since March 2021") filters both lists by publication date;
undated chunks stay in (nothing says they are outside), and when the window holds fewer
than k passages the rest of the index backfills after them.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any, Protocol, runtime_checkable

from bot.dates import DateIntent, parse_date_intent
from bot.focus import DocumentFocus
from bot.lexical import LexicalIndex, tokenize
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
DUPLICATE_JACCARD = 0.8  # token-set overlap above which two passages count as one
MAX_PER_DOC = 2
DEDUP_WINDOW = 30  # fused candidates considered for the top k
# all-MiniLM-L6-v2 is an English model: on Chinese questions its ranking is mostly noise.
# Halving its weight there raised RGB zh answers 14/20 → 16/20 (retrieval 19/20 either way).
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


def rrf(ranked_lists: Sequence[tuple[Sequence[str], float]], k: int = RRF_K) -> dict[str, float]:
    """Reciprocal rank fusion: sum of ``weight / (k + rank)`` over the lists (rank 1-based)."""
    scores: dict[str, float] = {}
    for ids, weight in ranked_lists:
        for rank, cid in enumerate(ids, start=1):
            scores[cid] = scores.get(cid, 0.0) + weight / (k + rank)
    return scores


_SPACE_RE = re.compile(r"\s+")


def _normalised(text: str) -> str:
    return _SPACE_RE.sub(" ", text).strip().lower()


_WORDS_RE = re.compile(r"\w+")


def _dedup_tokens(norm: str) -> set[str]:
    # Plain words suffice to spot near-copies and cost a tenth of full tokenising (no
    # stemming); Chinese has no spaces, so it goes through the segmenter.
    if CJK_RE.search(norm):
        return set(tokenize(norm, keep_stop_words=True))
    return set(_WORDS_RE.findall(norm))


def collapse_duplicates(hits: Sequence[Hit], threshold: float = DUPLICATE_JACCARD) -> list[Hit]:
    """Drop hits whose text repeats a better hit's (same text, or token Jaccard ≥ threshold)."""
    kept: list[Hit] = []
    kept_norm: set[str] = set()
    kept_tokens: list[set[str]] = []
    for hit in hits:
        norm = _normalised(hit.text)
        if norm in kept_norm:
            continue
        tokens = _dedup_tokens(norm)
        if tokens and any(
            len(tokens & other) / len(tokens | other) >= threshold for other in kept_tokens
        ):
            continue
        kept.append(hit)
        kept_norm.add(norm)
        kept_tokens.append(tokens)
    return kept


def diversify(
    hits: Sequence[Hit],
    k: int,
    max_per_doc: int = MAX_PER_DOC,
    focus: frozenset[str] = frozenset(),
) -> list[Hit]:
    """Top ``k`` with at most ``max_per_doc`` per document, unless too few documents exist.

    Documents in ``focus`` (the ones the question names) are not capped: passages of other
    companies' filings add nothing to a question about one company. Hits over the cap fill
    the remaining places in their original order.
    """
    chosen: list[Hit] = []
    overflow: list[Hit] = []
    per_doc: dict[str, int] = {}
    for hit in hits:
        cap = k if hit.doc_id in focus else max_per_doc
        if per_doc.get(hit.doc_id, 0) < cap:
            per_doc[hit.doc_id] = per_doc.get(hit.doc_id, 0) + 1
            chosen.append(hit)
        else:
            overflow.append(hit)
        if len(chosen) >= k:
            break
    if len(chosen) < k:
        chosen.extend(overflow[: k - len(chosen)])
        chosen.sort(key=lambda h: -h.score)
    return chosen[:k]


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
        self._lock = threading.Lock()
        self._lexical: LexicalIndex | None = None
        self._focus = DocumentFocus.build([])
        self._generation: str | None = None

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
        fused = self._fused(question, vector, lexical, intent, timings, focus)
        backfilled = False
        if intent.has_window and len(fused) < k:
            # Too little in the window (or undated documents): fall back to the whole index
            # after the in-window passages rather than answer from nothing.
            seen = {h.chunk_id for h in fused}
            unfiltered = self._fused(question, vector, lexical, None, timings, focus)
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
        hits = diversify(collapse_duplicates(head), k, self.max_per_doc, focus)
        timings["dedup_ms"] = (time.perf_counter() - t0) * 1000
        t0 = time.perf_counter()
        hits = with_sentence_vectors(self.store, hits)
        timings["sentence_vectors_ms"] = (time.perf_counter() - t0) * 1000
        return Retrieval(hits, timings, intent, backfilled, vector)

    def _focused_lists(
        self,
        focus: frozenset[str],
        question: str,
        vector: list[float],
        lexical: LexicalIndex,
        window: DateIntent | None,
        allowed: list[bool] | None,
    ) -> tuple[Scored, Scored]:
        """Dense and BM25 lists within the documents the question names (or empty)."""
        if not focus:
            return [], []
        dense = self.store.dense_search(vector, self.dense_k, _focus_where(focus, window))
        mask = [
            doc_id in focus and (allowed is None or allowed[i])
            for i, doc_id in enumerate(lexical.column("doc_id"))
        ]
        found = lexical.search(question, self.lexical_k, allowed=mask)
        return dense, [(lexical.chunks[i], score) for i, score in found]

    def _fused(
        self,
        question: str,
        vector: list[float],
        lexical: LexicalIndex,
        intent: DateIntent | None,
        timings: dict[str, float],
        focus: frozenset[str],
    ) -> list[Hit]:
        window = intent if intent is not None and intent.has_window else None
        t0 = time.perf_counter()
        if window is None:
            dense = self.store.dense_search(vector, self.dense_k)
        else:
            # In the window by the where-filter, plus undated chunks (a window cannot judge
            # them, and Chroma cannot filter on a missing key): best similarities first.
            ranked = self.store.dense_search(vector, self.dense_k * WINDOW_OVERFETCH)
            inside = [p for p in ranked if passes_date_where(p[0].date, window)]
            if len(inside) < self.dense_k:
                inside = self.store.dense_search(vector, self.dense_k, date_where(window))
            undated = [p for p in ranked[: self.dense_k] if not p[0].date]
            both = [*inside[: self.dense_k], *undated]
            dense = sorted(both, key=lambda p: -p[1])[: self.dense_k]
        timings["dense_ms"] = timings.get("dense_ms", 0.0) + (time.perf_counter() - t0) * 1000

        t0 = time.perf_counter()
        allowed = [not d or window.contains(d) for d in lexical.column("date")] if window else None
        lex = [
            (lexical.chunks[i], s)
            for i, s in lexical.search(question, self.lexical_k, allowed=allowed)
        ]
        timings["lexical_ms"] = timings.get("lexical_ms", 0.0) + (time.perf_counter() - t0) * 1000

        t0 = time.perf_counter()
        focused = self._focused_lists(focus, question, vector, lexical, window, allowed)
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


Scored = list[tuple[IndexedChunk, float]]


def _focus_where(doc_ids: frozenset[str], window: DateIntent | None) -> dict[str, Any]:
    where: dict[str, Any] = {"doc_id": {"$in": sorted(doc_ids)}}
    date_filter = date_where(window) if window is not None else None
    return {"$and": [where, date_filter]} if date_filter else where


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
