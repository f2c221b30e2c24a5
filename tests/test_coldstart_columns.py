"""A loaded BM25 index keeps its chunks as columns and makes chunk objects on access only.

A one-shot `briefing ask` answers from a few dozen chunks; the document focus and the date
masks read single columns. These tests check that the columns say exactly what the chunk
objects would, through loads, tombstones, added segments and merges.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from bot.focus import DocumentFocus
from ingest.lexical import FIELDS, MAX_SEGMENTS, ChunkColumns, LexicalIndex
from ingest.lexical_store import LexicalFiles
from ingest.types import IndexedChunk
from tests.test_focus import POOL
from tests.test_lexical_store import QUERIES, assert_same, corpus


def dated(chunks: list[IndexedChunk]) -> list[IndexedChunk]:
    """Optional fields filled on some chunks, so the columns carry None and values."""
    return [
        replace(c, date=f"2020-0{1 + i % 9}-01", page=i, url=f"https://x/{i}") if i % 3 else c
        for i, c in enumerate(chunks)
    ]


def by_id(chunks: Sequence[IndexedChunk]) -> list[IndexedChunk]:
    return sorted(chunks, key=lambda c: c.chunk_id)


def made(chunks: ChunkColumns) -> int:
    return sum(m is not None for m in chunks._made)


def assert_columns_match(index: LexicalIndex) -> None:
    objects = list(index.chunks)
    for f in FIELDS:
        assert list(index.column(f)) == [getattr(c, f) for c in objects], f


def test_a_loaded_index_makes_chunk_objects_only_when_asked(tmp_path: Path) -> None:
    chunks = dated(corpus(200))
    files = LexicalFiles(tmp_path)
    files.save(LexicalIndex.build(chunks), "g1")
    loaded = files.load()
    assert loaded is not None
    index = loaded.index
    assert isinstance(index.chunks, ChunkColumns)
    focus = DocumentFocus.from_columns(
        index.column("doc_id"), index.column("title"), index.column("path")
    )
    assert made(index.chunks) == 0  # loading and the focus made none
    found = index.search(QUERIES[0], 5)
    hits = [index.chunks[i] for i, _ in found]
    assert made(index.chunks) == len({i for i, _ in found}) > 0
    assert hits == [chunks[i] for i, _ in found]  # every field, as saved
    assert index.chunks[found[0][0]] is hits[0]  # made once, then kept
    assert focus.terms == DocumentFocus.build(chunks).terms
    assert index.chunks == chunks and chunks == index.chunks  # a sequence like the tuple
    assert index.chunks[-1] == chunks[-1] and index.chunks[3:6] == tuple(chunks[3:6])


def test_columns_follow_tombstones_segments_and_merges(tmp_path: Path) -> None:
    chunks = dated(corpus(300, seed=3))
    files = LexicalFiles(tmp_path)
    files.save(LexicalIndex.build(chunks[:100]), "g1")
    loaded = files.load()
    assert loaded is not None
    index, live = loaded.index, list(chunks[:100])
    for step in range(MAX_SEGMENTS + 2):  # enough added segments to force a merge
        added = chunks[100 + 20 * step : 120 + 20 * step]
        removed = {c.chunk_id for c in live[step::7]}
        index = index.with_changes(added, removed)
        live = [c for c in live if c.chunk_id not in removed] + list(added)
        assert_columns_match(index)
        assert by_id(index.chunks) == by_id(live)  # a merge may reorder segments
    assert len(index.segments) <= MAX_SEGMENTS  # a merge happened along the way
    assert_same(index, LexicalIndex.build(live))
    files.save(index, "g2")
    reloaded = files.load()
    assert reloaded is not None
    assert_columns_match(reloaded.index)
    assert reloaded.index.chunks == index.chunks
    assert_same(reloaded.index, LexicalIndex.build(live))


def test_columns_of_unequal_length_are_refused() -> None:
    columns: dict[str, list[object]] = {f: [None] * 3 for f in FIELDS}
    columns["text"] = ["a", "b"]
    with pytest.raises(ValueError, match="differ in length"):
        ChunkColumns(columns)


def test_focus_from_columns_equals_the_build_from_chunks() -> None:
    pool = [*POOL, replace(POOL[0], chunk_id="amex-1", index=1)]  # two chunks of one doc
    built = DocumentFocus.build(pool)
    columns = DocumentFocus.from_columns(
        [c.doc_id for c in pool], [c.title for c in pool], [c.path for c in pool]
    )
    assert columns.terms == built.terms
    assert columns.idf == built.idf
    assert columns.by_source == built.by_source
