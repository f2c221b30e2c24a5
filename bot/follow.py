"""Following topics: which followed topics the documents of an ingest run answer.

After a run that changed the index, every subscription's topic is searched
among the new chunks only, with the answering pipeline itself: the same ``Retriever``
(dense + BM25 fused, date intents, dedup, diversity) over a store that holds just the new
documents, and the extractive answerer's refusal bar (``REFUSAL_THRESHOLD``). A topic
"matches" a document when the answer to it would cite that document; the quote is the
sentence the answer would quote. "New" means a document id (a content hash) the bot
has not seen before (``SubscriptionStore.unseen``): added and updated files are
new, renamed, unchanged and removed ones never are.
No Telegram types here (``bot.telegram.follow`` renders and sends).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.extractive import extractive_answer
from bot.retrieval import Retriever
from bot.subscriptions import Subscription
from bot.types import Citation
from bot.untrusted import set_aside
from ingest.manifest import Manifest
from ingest.store import IndexStore
from ingest.types import IndexedChunk


def document_ids(manifest: Manifest) -> list[str]:
    """Every indexed document, oldest first (the order digests list new ones in)."""
    return [d.doc_id for d in sorted(manifest.docs(), key=lambda d: d.ingested_at)]


class NewChunks:
    """A ``ChunkStore`` holding only the new documents: the retriever sees nothing else.

    Dense search still runs in Chroma (the vectors are there), restricted by doc id.
    """

    def __init__(self, chunks: Sequence[IndexedChunk], store: IndexStore) -> None:
        self._chunks = list(chunks)
        self._by_id = {c.chunk_id: c for c in self._chunks}
        self._doc_ids = sorted({c.doc_id for c in self._chunks})
        self._store = store

    def all_chunks(self) -> list[IndexedChunk]:
        return list(self._chunks)

    def get_chunks(self, ids: Sequence[str]) -> list[IndexedChunk]:
        return [self._by_id[i] for i in ids if i in self._by_id]

    def generation(self) -> str:
        return "new"  # fixed: the lexical index over these chunks is built once

    def dense_search(
        self, query_embedding: list[float], k: int, where: dict[str, Any] | None = None
    ) -> list[tuple[IndexedChunk, float]]:
        only: dict[str, Any] = {"doc_id": {"$in": self._doc_ids}}
        return self._store.dense_search(
            query_embedding, k, {"$and": [only, where]} if where else only
        )


@dataclass(slots=True)
class DocMatch:
    """A new document that answers one or more of a chat's topics."""

    citation: Citation  # the best sentence for the first topic it answers, quoted verbatim
    topics: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class TopicMatcher:
    """Finds, for a topic, the new documents an answer would cite."""

    retriever: Retriever
    min_evidence: float | None  # None: the answerer's calibrated threshold
    top_k: int = 5

    def match(self, topic: str) -> list[Citation]:
        """One citation per cited document (its first, i.e. best, quote), in answer order."""
        # A document that addresses a model is news to the admins (the ingest report names
        # it), never to followers: its passages are set aside as in any answer.
        hits, _ = set_aside(self.retriever.search(topic, k=self.top_k))
        if not hits:
            return []
        answer = extractive_answer(topic, hits, min_evidence=self.min_evidence)
        if answer.refused:
            return []
        best: dict[str, Citation] = {}
        for citation in answer.citations:
            best.setdefault(citation.hit.doc_id, citation)
        return list(best.values())


def match_subscriptions(
    matcher: TopicMatcher, subscriptions: Sequence[Subscription]
) -> dict[int, list[DocMatch]]:
    """chat id → the new documents matching its topics (one entry per document).

    Topics are searched once however many chats follow them.
    """
    by_topic: dict[str, list[Citation]] = {}
    out: dict[int, dict[str, DocMatch]] = {}
    for sub in subscriptions:
        key = sub.topic.casefold()
        if key not in by_topic:
            by_topic[key] = matcher.match(sub.topic)
        for citation in by_topic[key]:
            doc = out.setdefault(sub.chat_id, {}).setdefault(
                citation.hit.doc_id, DocMatch(citation)
            )
            doc.topics.append(sub.topic)
    return {chat: list(docs.values()) for chat, docs in out.items() if docs}


def find_matches(
    doc_ids: Sequence[str],
    subscriptions: Sequence[Subscription],
    *,
    store: IndexStore,
    embeddings: Any,
    manifest_path: Path,
    min_evidence: float | None,
    top_k: int = 5,
) -> dict[int, list[DocMatch]]:
    """Which chats' topics the documents ``doc_ids`` (new since last time) answer."""
    if not subscriptions or not doc_ids:
        return {}
    manifest = Manifest(manifest_path)
    try:
        chunk_ids = [cid for d in doc_ids if (row := manifest.doc(d)) for cid in row.chunk_ids]
    finally:
        manifest.close()
    if not chunk_ids:
        return {}
    new = NewChunks(store.get_chunks(chunk_ids), store)
    matcher = TopicMatcher(Retriever(new, embeddings), min_evidence, top_k)
    return match_subscriptions(matcher, subscriptions)
