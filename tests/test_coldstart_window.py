"""A date window's dense list is found in the unfiltered ranking when it can be.

Chroma's where-filter on ``date_ord`` was the slow tail of warm answers at 100k chunks, so
retrieval first filters the unfiltered top ``WINDOW_OVERFETCH × dense_k`` itself and asks
Chroma to filter only when that holds too few in-window chunks. These tests check, on a
real embedded Chroma, that the filter here keeps exactly what Chroma's keeps, and that the
dense list is the one the filtered query gives, on both paths.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bot.dates import DateIntent
from bot.lexical import LexicalIndex
from bot.retrieval import Retriever, date_where, passes_date_where
from ingest.embeddings import LocalEmbeddings
from ingest.store import IndexStore, open_index
from ingest.types import IndexedChunk
from tests.conftest import make_settings

N = 400
DIM = 384


class Recording:
    """The real store, with a log of the where-filters its dense searches were given."""

    def __init__(self, store: IndexStore) -> None:
        self.store = store
        self.wheres: list[dict[str, Any] | None] = []

    def all_chunks(self) -> list[IndexedChunk]:
        return self.store.all_chunks()

    def get_chunks(self, ids: Sequence[str]) -> list[IndexedChunk]:
        return self.store.get_chunks(ids)

    def generation(self) -> str:
        return self.store.generation()

    def dense_search(
        self, query_embedding: list[float], k: int, where: dict[str, Any] | None = None
    ) -> list[tuple[IndexedChunk, float]]:
        self.wheres.append(where)
        return self.store.dense_search(query_embedding, k, where)


def _date(i: int) -> str | None:
    """Chunk i's date: every tenth undated, one in twenty-five in 2021, the rest 2020."""
    if i % 10 == 0:
        return None
    if i % 25 == 1:
        return f"2021-{1 + i % 12:02d}-{1 + i % 28:02d}"
    return f"2020-{1 + i % 12:02d}-{1 + i % 28:02d}"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> IndexStore:
    settings = make_settings(tmp_path_factory.mktemp("window"), model_dir)
    index = open_index(settings, LocalEmbeddings(model_dir))
    rng = np.random.default_rng(11)
    vectors = rng.normal(size=(N, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    metas: list[dict[str, str | int]] = []
    for i in range(N):
        meta: dict[str, str | int] = {
            "doc_id": f"d{i}", "path": f"{i}.txt", "title": f"Note {i}", "chunk_index": 0,
            "start": 0, "end": 10, "format": "txt",
        }  # fmt: skip
        day = _date(i)
        if day:
            meta["date"] = day
            meta["date_ord"] = int(day.replace("-", ""))
        metas.append(meta)
    ids = [f"c{i}" for i in range(N)]
    index.upsert(ids, [f"note {i} text" for i in range(N)], metas, vectors.tolist())
    return index


INTENTS = [
    DateIntent("in 2020", date(2020, 1, 1), date(2020, 12, 31)),
    DateIntent("in 2021", date(2021, 1, 1), date(2021, 12, 31)),
    DateIntent("since June 2020", date(2020, 6, 1), None),
    DateIntent("before March 2020", None, date(2020, 2, 29)),
]


@pytest.mark.parametrize("intent", INTENTS, ids=lambda i: i.question)
def test_the_filter_here_keeps_what_chromas_keeps(store: IndexStore, intent: DateIntent) -> None:
    where = date_where(intent)
    kept_by_chroma = set(store.collection.get(where=where, include=[])["ids"])
    kept_here = {c.chunk_id for c in store.all_chunks() if passes_date_where(c.date, intent)}
    assert kept_here == kept_by_chroma
    assert 0 < len(kept_here) < N


@pytest.mark.parametrize(
    ("intent", "filtered_by_chroma"),
    [(INTENTS[0], False), (INTENTS[2], False), (INTENTS[1], True)],  # 2021 is rare: Chroma
    ids=["2020", "since June 2020", "2021"],
)
def test_the_window_dense_list_is_the_filtered_querys(
    store: IndexStore, model_dir: Path, intent: DateIntent, filtered_by_chroma: bool
) -> None:
    recording = Recording(store)
    retriever = Retriever(recording, LocalEmbeddings(model_dir))
    lexical = LexicalIndex.build(store.all_chunks())
    rng = np.random.default_rng(5)
    for _ in range(5):
        vector = rng.normal(size=DIM)
        vector = (vector / np.linalg.norm(vector)).tolist()
        recording.wheres.clear()
        hits = retriever._fused("note", vector, lexical, intent, {}, frozenset())
        # What the retriever did before: Chroma's filtered query, plus undated chunks of
        # the unfiltered top k, best first.
        k = retriever.dense_k
        filtered = store.dense_search(vector, k, date_where(intent))
        undated = [p for p in store.dense_search(vector, k) if not p[0].date]
        want = [c.chunk_id for c, _ in sorted([*filtered, *undated], key=lambda p: -p[1])[:k]]
        got = sorted((h.dense_rank, h.chunk_id) for h in hits if h.dense_rank is not None)
        assert [cid for _, cid in got] == want
        assert (date_where(intent) in recording.wheres) is filtered_by_chroma
