"""A loaded BM25 index keeps its chunks as columns and makes chunk objects on access only.

A one-shot `briefing ask` answers from a few dozen chunks; the document focus and the date
masks read single columns. These tests check that the columns say exactly what the chunk
objects would, through loads, tombstones, added segments and merges; that texts, kept in
a file of their own and decoded on access, are checked like the rest; and that files of
the layout before (texts inside the JSON) are read, then rewritten once.
"""

from __future__ import annotations

import json
import mmap
import zlib
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from bot.focus import DocumentFocus
from ingest.chunk_columns import FIELDS, ChunkColumns, Gathered, TextColumn
from ingest.lexical import MAX_SEGMENTS, LexicalIndex, source_terms
from ingest.lexical_segments import FILES
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


class NoRebuild:
    """A chunk source a test expects never to be read."""

    def all_chunks(self) -> list[IndexedChunk]:
        raise AssertionError("the saved files should have been enough")

    def get_chunks(self, ids: object) -> list[IndexedChunk]:
        raise AssertionError("the saved files should have been enough")


def test_texts_have_their_own_file_and_are_decoded_on_access(tmp_path: Path) -> None:
    chunks = [replace(c, text=f"{c.text} 青岛港 ünïcödé {i}") for i, c in enumerate(corpus(60))]
    chunks[3] = replace(chunks[3], text="")
    files = LexicalFiles(tmp_path)
    files.save(LexicalIndex.build(chunks), "g1")
    [entry] = json.loads((files.dir / "index.json").read_text())["segments"]
    assert len(entry["crc32"]) == len(FILES)
    assert (files.dir / f"{entry['name']}.text").is_file()
    assert "text" not in json.loads((files.dir / f"{entry['name']}.json").read_text())
    loaded = files.load()
    assert loaded is not None and not loaded.old_layout
    texts = loaded.index.column("text")
    assert isinstance(texts, TextColumn)
    assert list(texts) == [c.text for c in chunks]
    assert texts[-1] == chunks[-1].text and texts[2:4] == [chunks[2].text, ""]
    assert loaded.index.chunks == chunks


def test_texts_are_mapped_and_outlive_their_file(tmp_path: Path) -> None:
    chunks = corpus(30)
    files = LexicalFiles(tmp_path)
    files.save(LexicalIndex.build(chunks), "g1")
    loaded = files.load()
    assert loaded is not None
    texts = loaded.index.column("text")
    assert isinstance(texts, TextColumn) and isinstance(texts._blob, mmap.mmap)
    # An ingest deletes the files of segments it replaced; a loaded index keeps its texts.
    next(files.dir.glob("*.text")).unlink()
    assert list(texts) == [c.text for c in chunks]


def test_a_segment_of_empty_texts_loads(tmp_path: Path) -> None:
    chunks = [replace(c, text="") for c in corpus(5)]
    files = LexicalFiles(tmp_path)
    files.save(LexicalIndex.build(chunks), "g1")
    assert next(files.dir.glob("*.text")).stat().st_size == 0  # nothing to map
    loaded = files.load()
    assert loaded is not None and list(loaded.index.column("text")) == [""] * 5


@pytest.mark.parametrize("how", ["flip", "truncate", "remove"])
def test_a_damaged_text_file_means_a_rebuild(tmp_path: Path, how: str) -> None:
    chunks = corpus(40)
    files = LexicalFiles(tmp_path)
    files.save(LexicalIndex.build(chunks), "g1")
    path = next(files.dir.glob("*.text"))
    data = path.read_bytes()
    if how == "flip":
        path.write_bytes(data[:10] + bytes([data[10] ^ 0xFF]) + data[11:])
    elif how == "truncate":
        path.write_bytes(data[:-5])
    else:
        path.unlink()
    assert files.load() is None

    class Source(NoRebuild):
        def all_chunks(self) -> list[IndexedChunk]:
            return list(chunks)

    assert_same(files.refresh(Source(), "g1"), LexicalIndex.build(chunks))
    reloaded = files.load()
    assert reloaded is not None and reloaded.index.chunks == chunks


def _to_the_layout_before(files: LexicalFiles) -> None:
    """Rewrite saved files as they were before texts had their own file: three files per
    segment, the texts in ``.json``, no ``text_ends`` in ``.npz``."""
    head = json.loads((files.dir / "index.json").read_text())
    for entry in head["segments"]:
        base = files.dir / entry["name"]
        arrays = dict(np.load(f"{base}.npz"))
        texts = TextColumn(Path(f"{base}.text").read_bytes(), arrays.pop("text_ends").tolist())
        rest = json.loads(Path(f"{base}.json").read_text()) | {"text": list(texts)}
        del rest["sources"], entry["sources"]  # no document terms were saved then
        Path(f"{base}.json").write_text(json.dumps(rest, ensure_ascii=False))
        np.savez(f"{base}.npz", **arrays)
        Path(f"{base}.text").unlink()
        entry["crc32"] = [zlib.crc32(Path(f"{base}.{k}").read_bytes()) for k in FILES[:3]]
    (files.dir / "index.json").write_text(json.dumps(head))


def test_files_in_the_layout_before_are_read_then_rewritten_once(tmp_path: Path) -> None:
    chunks = dated(corpus(120, seed=5))
    files = LexicalFiles(tmp_path)
    files.save(LexicalIndex.build(chunks[:100]).with_changes(chunks[100:], {"c7"}), "g1")
    _to_the_layout_before(files)
    old_names = {p.stem for p in files.dir.glob("*.npz")}
    assert not list(files.dir.glob("*.text")) and len(old_names) == 2
    loaded = files.load()
    assert loaded is not None and loaded.old_layout
    want = [c for c in chunks if c.chunk_id != "c7"]
    assert loaded.index.chunks == want
    index = files.refresh(NoRebuild(), "g1")  # same generation: no rebuild, a rewrite
    assert index.chunks == want
    head = json.loads((files.dir / "index.json").read_text())
    assert all(len(e["crc32"]) == len(FILES) for e in head["segments"])
    assert not {e["name"] for e in head["segments"]} & old_names  # new names, old files gone
    assert not any(p.name.startswith(tuple(old_names)) for p in files.dir.iterdir())
    again = files.load()
    assert again is not None and not again.old_layout and again.generation == "g1"
    assert again.index.chunks == want
    assert_same(again.index, LexicalIndex.build(want))


def test_text_column_refuses_offsets_that_do_not_fit() -> None:
    blob, ends = TextColumn.encode(["ab", "", "青岛"])
    assert list(TextColumn(blob, ends.tolist())) == ["ab", "", "青岛"]
    with pytest.raises(ValueError, match="do not match"):
        TextColumn(blob[:-1], ends.tolist())
    with pytest.raises(ValueError, match="backwards"):
        TextColumn(blob, [2, 1, len(blob)])
    with pytest.raises(IndexError):
        TextColumn(blob, ends.tolist())[3]


def test_gathered_looks_positions_up_across_parts() -> None:
    parts = [["a", "b", "c"], [], ["d", "e"]]
    gathered = Gathered(parts, np.asarray([0, 2, 3, 4], dtype=np.int64))
    assert list(gathered) == ["a", "c", "d", "e"] and gathered[-1] == "e"
    assert gathered[1:3] == ["c", "d"]


def test_document_terms_are_saved_and_used_by_the_focus(tmp_path: Path) -> None:
    chunks = [replace(c, title=f"{c.title} FY202{i // 4 % 3}") for i, c in enumerate(corpus(90))]
    files = LexicalFiles(tmp_path)
    files.save(LexicalIndex.build(chunks[:60]).with_changes(chunks[60:]), "g1")
    loaded = files.load()
    assert loaded is not None and not loaded.old_layout
    index = loaded.index
    want = {(c.title, c.path): source_terms(c.title, c.path) for c in chunks}
    assert index.sources == want
    focus = DocumentFocus.from_columns(
        index.column("doc_id"), index.column("title"), index.column("path"), None, index.sources
    )
    assert focus.terms == DocumentFocus.build(chunks).terms
    assert all(focus.terms[c.doc_id] is index.sources[(c.title, c.path)] for c in chunks)
    # Terms saved under another rule are not used, and the next save writes them anew.
    head = json.loads((files.dir / "index.json").read_text())
    for entry in head["segments"]:
        entry["sources"] = "another-rule"
    (files.dir / "index.json").write_text(json.dumps(head))
    other = files.load()
    assert other is not None and other.old_layout and other.index.sources == {}
    assert other.index.chunks == index.chunks
    files.refresh(NoRebuild(), "g1")
    again = files.load()
    assert again is not None and not again.old_layout and again.index.sources == want
