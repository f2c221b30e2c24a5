"""The Chroma side of the index: one collection of chunks, embedded or on a Chroma server.

Reads and writes go straight through the chromadb collection: we embed ``title + text``
but store the exact chunk text (LangChain's ``add_texts`` cannot express that), and a dense
search is one ``collection.query`` whose rows become ``IndexedChunk`` directly, with no
LangChain ``Document`` in between. The collection's metadata records which embedding model
built it, and a generation counter that readers use to notice a re-ingest.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

import chromadb
import numpy as np
import numpy.typing as npt
from chromadb.api import ClientAPI
from chromadb.api.shared_system_client import SharedSystemClient
from chromadb.config import Settings as ChromaClientSettings

from ingest.caller_vectors import CallerVectors, record_caller_vectors

# Re-exported: callers have long imported these from here.
from ingest.errors import IndexMismatch as IndexMismatch
from ingest.errors import IndexUnavailable as IndexUnavailable
from ingest.sentence_vectors import SENTENCE_VECTORS_KEY
from ingest.settings import IndexSettings
from ingest.types import Chunk, Document, IndexedChunk

log = logging.getLogger(__name__)

INDEX_FORMAT = "1"
_PAGE = 2000  # ids per get/delete call: keeps request bodies small on the server path

# Generations this process wrote (see ``IndexStore.sync``); chromadb shares one embedded
# system per path within a process, so this process's writes are visible to all its clients.
_WRITTEN_HERE: set[str] = set()
_REOPEN_LOCK = threading.Lock()


class EmbeddingModel(Protocol):
    """What the store needs to know of the embedding model (ingest.embeddings implements it)."""

    @property
    def name(self) -> str: ...

    @property
    def dim(self) -> int: ...


@runtime_checkable
class FollowsIndex(Protocol):
    """A model with several graphs (``LocalEmbeddings``): it can switch to the one that
    built an index. True when it now computes ``model_name``'s vectors; False when that
    is another model; IndexMismatch when it is this model's but the graph is missing."""

    def follow(self, model_name: str) -> bool: ...


def make_client(settings: IndexSettings) -> ClientAPI:
    client_settings = ChromaClientSettings(anonymized_telemetry=False, allow_reset=True)
    try:
        if settings.chroma_host:
            return chromadb.HttpClient(
                host=settings.chroma_host,
                port=settings.chroma_port,
                ssl=settings.chroma_ssl,
                settings=client_settings,
            )
        settings.chroma_dir.mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(path=str(settings.chroma_dir), settings=client_settings)
    except Exception as err:  # chromadb raises plain ValueError/ConnectionError variants
        where = (
            f"Chroma server {settings.chroma_host}:{settings.chroma_port}"
            if settings.chroma_host
            else f"embedded Chroma at {settings.chroma_dir}"
        )
        raise IndexUnavailable(f"cannot open {where}: {err}") from err


def chunk_metadata(doc: Document, chunk: Chunk, path: str) -> dict[str, str | int]:
    """Chroma metadata of one chunk. Chroma rejects None values, so absent fields are omitted."""
    meta: dict[str, str | int] = {
        "doc_id": doc.doc_id,
        "path": path,
        "title": doc.title,
        "chunk_index": chunk.index,
        "start": chunk.start,
        "end": chunk.end,
        "format": doc.format,
    }
    if chunk.page is not None:
        meta["page"] = chunk.page
    if doc.date:
        meta["date"] = doc.date
        # An integer copy lets Chroma filter by date range ($gte/$lte work on numbers only).
        meta["date_ord"] = int(doc.date.replace("-", ""))
    for key in ("url", "place", "publisher"):
        value = getattr(doc, key)
        if value:
            meta[key] = value
    return meta


def to_indexed(chunk_id: str, text: str, meta: dict[str, Any]) -> IndexedChunk:
    page = meta.get("page")
    return IndexedChunk(
        chunk_id=chunk_id,
        doc_id=str(meta.get("doc_id", "")),
        text=text,
        path=str(meta.get("path", "")),
        title=str(meta.get("title", "")),
        index=int(meta.get("chunk_index", 0)),
        start=int(meta.get("start", 0)),
        end=int(meta.get("end", 0)),
        page=int(page) if page is not None else None,
        date=meta.get("date"),
        url=meta.get("url"),
        place=meta.get("place"),
        publisher=meta.get("publisher"),
        sentence_vectors=meta.get(SENTENCE_VECTORS_KEY),
    )


def _rows(got: Any) -> list[IndexedChunk]:
    """The chunks of one ``collection.get`` result (ids, documents, metadatas).

    Without their sentence vectors: bulk reads feed the BM25 index and followers' matching,
    which would hold kilobytes more per chunk for nothing (``metadatas`` reads them).
    """
    return [
        to_indexed(cid, text or "", {**(meta or {}), SENTENCE_VECTORS_KEY: None})
        for cid, text, meta in zip(
            got["ids"], got["documents"] or [], got["metadatas"] or [], strict=True
        )
    ]


def _batches(items: Sequence[str], size: int = _PAGE) -> Iterator[list[str]]:
    for i in range(0, len(items), size):
        yield list(items[i : i + size])


class IndexStore:
    """One Chroma collection holding every chunk, plus the facts of how it was built."""

    def __init__(
        self,
        client: ClientAPI,
        collection: Any,
        name: str,
        embeddings: EmbeddingModel,
        settings: IndexSettings | None = None,
    ) -> None:
        self.client = client
        self.collection = collection
        self.name = name
        self.embeddings = embeddings
        self.settings = settings  # to reopen an embedded client (``sync``)

    # -- reading -------------------------------------------------------------------------

    def count(self) -> int:
        return int(self.collection.count())

    def metadata(self) -> dict[str, Any]:
        # Read fresh: another process (ingest, another replica) may have changed it.
        fresh = self.client.get_collection(self.name, embedding_function=None)
        return dict(fresh.metadata or {})

    def generation(self) -> str:
        return str(self.metadata().get("generation", "0"))

    def sync(self, generation: str) -> bool:
        """Make reads see the writes behind ``generation``; True if the client was reopened.

        An embedded Chroma client keeps the vector index it loaded: another process's
        writes (a manual ``briefing ingest`` beside a running bot) stay invisible to it, and
        a filtered query for their ids fails ("Error finding id"). So when the generation
        was written by another process, a fresh client is opened on the same path.
        chromadb shares one system per path within a process; clearing its cache (without
        stopping the old system: a thread may be mid-query on it) makes the next client
        load what is on disk now. A Chroma server, and this process's own writes, need
        nothing.
        """
        settings = self.settings
        if settings is None or settings.chroma_host or generation in _WRITTEN_HERE:
            reopened = False
        else:
            with _REOPEN_LOCK:
                SharedSystemClient.clear_system_cache()
                client = make_client(settings)
                collection = client.get_collection(self.name, embedding_function=None)
            self.client, self.collection = client, collection
            reopened = True
        # Another process may have rebuilt the index with another graph of the model.
        follow_record(self.metadata(), self.embeddings)
        return reopened

    def all_ids(self) -> list[str]:
        ids: list[str] = []
        offset = 0
        while True:
            got = self.collection.get(include=[], limit=_PAGE, offset=offset)
            ids.extend(got["ids"])
            if len(got["ids"]) < _PAGE:
                return ids
            offset += _PAGE

    def all_chunks(self) -> list[IndexedChunk]:
        out: list[IndexedChunk] = []
        offset = 0
        while True:
            got = self.collection.get(
                include=["documents", "metadatas"], limit=_PAGE, offset=offset
            )
            out.extend(_rows(got))
            if len(got["ids"]) < _PAGE:
                return out
            offset += _PAGE

    def get_chunks(self, ids: Sequence[str]) -> list[IndexedChunk]:
        """The chunks with these ids (the saved BM25 index fetches what an ingest added)."""
        out: list[IndexedChunk] = []
        for batch in _batches(ids):
            out.extend(_rows(self.collection.get(ids=batch, include=["documents", "metadatas"])))
        return out

    def dense_search(
        self, query_embedding: list[float], k: int, where: dict[str, Any] | None = None
    ) -> list[tuple[IndexedChunk, float]]:
        """Nearest chunks by cosine similarity (higher is better)."""
        if k <= 0:
            return []
        got = self.collection.query(
            query_embeddings=[query_embedding],
            n_results=k,
            where=where,
            include=["documents", "metadatas", "distances"],
        )
        # One query embedding in, so every column holds one row list. The collection uses
        # cosine space: Chroma's distance is 1 - cosine similarity.
        ids = got["ids"][0]
        texts = (got["documents"] or [[]])[0]
        metas = (got["metadatas"] or [[]])[0]
        distances = (got["distances"] or [[]])[0]
        return [
            (to_indexed(cid, text or "", dict(meta or {})), 1.0 - float(dist))
            for cid, text, meta, dist in zip(ids, texts, metas, distances, strict=True)
        ]

    def nearest(
        self,
        query_embedding: list[float],
        k: int,
        where: dict[str, Any] | None = None,
        *,
        ids: Sequence[str] | None = None,
    ) -> list[tuple[str, float]]:
        """``dense_search``'s ids and similarities, without the chunks' rows; among
        ``ids`` if given.

        Reading the hits' texts and metadata (which hold their sentence vectors) costs many
        times the HNSW search itself. A reader that holds the chunks already (the BM25
        index) asks for this.
        ``ids`` restricts the search as a where-filter would, without Chroma evaluating
        the filter against every chunk's metadata (slow in a large index); an id
        Chroma does not hold makes it raise.
        """
        if k <= 0 or (ids is not None and not ids):
            return []
        got = self.collection.query(
            query_embeddings=[query_embedding],
            n_results=k,
            where=where,
            ids=list(ids) if ids is not None else None,
            include=["distances"],
        )
        distances = (got["distances"] or [[]])[0]
        return [
            (cid, 1.0 - float(dist)) for cid, dist in zip(got["ids"][0], distances, strict=True)
        ]

    def vectors(self, ids: Sequence[str]) -> tuple[list[str], npt.NDArray[np.float32]]:
        """The stored embeddings of the chunks with these ids, as (ids, one row each), in
        Chroma's order; ids it does not hold are left out."""
        found: list[str] = []
        rows: list[npt.NDArray[np.float32]] = []
        for batch in _batches(ids):
            got = self.collection.get(ids=batch, include=["embeddings"])
            found.extend(got["ids"])
            if got["ids"]:
                rows.append(np.asarray(got["embeddings"], dtype=np.float32))
        dim = rows[0].shape[1] if rows else 0
        return found, np.concatenate(rows) if rows else np.zeros((0, dim), np.float32)

    # -- writing (ingest only) -------------------------------------------------------------

    def upsert(
        self,
        ids: Sequence[str],
        texts: Sequence[str],
        metadatas: Sequence[dict[str, str | int]],
        vectors: Sequence[Sequence[float]],
    ) -> None:
        # Upsert, not add: re-running a half-finished write must be harmless.
        for i in range(0, len(ids), 500):
            self.collection.upsert(
                ids=list(ids[i : i + 500]),
                documents=list(texts[i : i + 500]),
                metadatas=list(metadatas[i : i + 500]),
                embeddings=[list(v) for v in vectors[i : i + 500]],
            )

    def update_metadata(
        self, ids: Sequence[str], metadatas: Sequence[dict[str, str | int]]
    ) -> None:
        for i in range(0, len(ids), _PAGE):
            self.collection.update(
                ids=list(ids[i : i + _PAGE]), metadatas=list(metadatas[i : i + _PAGE])
            )

    def metadatas(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for batch in _batches(ids):
            got = self.collection.get(ids=batch, include=["metadatas"])
            for cid, meta in zip(got["ids"], got["metadatas"] or [], strict=True):
                out[cid] = dict(meta or {})
        return out

    def delete(self, ids: Sequence[str]) -> None:
        for batch in _batches(ids):
            if batch:
                self.collection.delete(ids=batch)

    def bump_generation(self) -> None:
        meta = self.metadata()
        meta["generation"] = uuid.uuid4().hex[:12]
        _WRITTEN_HERE.add(meta["generation"])
        self.collection.modify(metadata=meta)


def _fingerprint(embeddings: EmbeddingModel) -> dict[str, str | int]:
    return {
        "index_format": INDEX_FORMAT,
        "embedding_model": embeddings.name,
        "embedding_dim": embeddings.dim,
    }


def follow_record(meta: dict[str, Any], embeddings: EmbeddingModel) -> None:
    """Make ``embeddings`` compute the vectors the index's metadata ``meta`` records, or
    raise IndexMismatch. An index from before the record of graphs holds fp32 vectors
    under the model's plain name, which the fp32 graphs still carry."""
    built_with = (meta.get("embedding_model"), meta.get("embedding_dim"))
    if built_with == (embeddings.name, embeddings.dim):
        return
    recorded = built_with[0]
    if (
        isinstance(recorded, str)
        and isinstance(embeddings, FollowsIndex)
        and embeddings.follow(recorded)
        and built_with == (embeddings.name, embeddings.dim)
    ):
        return
    raise IndexMismatch(
        f"the index was built with {built_with[0]} (dimension {built_with[1]}), "
        f"but this run uses {embeddings.name} (dimension {embeddings.dim}). "
        "Re-embed everything with `briefing ingest --rebuild`, or set EMBEDDING_BACKEND/"
        "EMBEDDING_MODEL back to what built it."
    )


def open_index(settings: IndexSettings, embeddings: EmbeddingModel) -> IndexStore:
    """Open (or create, empty) the collection; refuse one built by another embedding model.

    An existing collection is queried with the vectors that built it: a model with several
    graphs (fp32, int8) switches to the recorded one (``follow_record``). A new collection
    records the graph ``embeddings`` uses now. A missing collection is created rather than
    reported, so a fresh bot starts and says it knows no documents yet.
    """
    client = make_client(settings)
    name = settings.chroma_collection
    try:
        existing = client.get_collection(name, embedding_function=None)
    except Exception:  # chromadb raises NotFoundError (1.x) or ValueError (older servers)
        existing = None
    if existing is not None:
        follow_record(dict(existing.metadata or {}), embeddings)
        try:
            record_caller_vectors(existing, embeddings.name)
        except Exception as err:  # a read-only server or an older one: the record can wait
            log.debug("could not update the collection's embedding-function record: %s", err)
        return IndexStore(client, existing, name, embeddings, settings)
    collection = client.get_or_create_collection(
        name,
        configuration={"hnsw": {"space": "cosine"}},
        metadata={**_fingerprint(embeddings), "generation": "0"},
        embedding_function=CallerVectors(embeddings.name),
    )
    return IndexStore(client, collection, name, embeddings, settings)


def drop_index(settings: IndexSettings) -> None:
    """Delete the collection (``ingest --rebuild``)."""
    client = make_client(settings)
    try:
        client.delete_collection(settings.chroma_collection)
    except Exception:  # absent already: nothing to drop
        return
