"""A loaded BM25 segment finds a question's terms by binary search over their saved order.

Building the dict of every term (0.5M at 36k chunks) was most of a one-shot ask's first
BM25 search; segments now save their term ids in sorted order. These tests check that the
look-up finds exactly what the dict finds, that a loaded index searches without making
the dict and scores as a rebuild does, and that files saved without the order are read
(through the dict) and then rewritten once with it.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np

from ingest.lexical import LexicalIndex, Segment, sorted_term_order
from ingest.lexical_segments import FILES
from ingest.lexical_store import LexicalFiles
from tests.test_coldstart_columns import NoRebuild
from tests.test_lexical_store import QUERIES, assert_same, corpus


def test_binary_search_finds_what_the_dict_finds() -> None:
    terms = ("port", "2020", "青岛", "341.81", "a", "zz", "export", "出口", "Ä")
    segment = Segment(
        chunks=(),
        terms=terms,
        indptr=np.zeros(len(terms) + 1, dtype=np.int64),
        docs=np.zeros(0, dtype=np.int32),
        tfs=np.zeros(0, dtype=np.float32),
        lengths=np.zeros(0, dtype=np.int32),
        term_order=sorted_term_order(terms),
    )
    for probe in [*terms, "", "0", "por", "portx", "zzz", "青", "\uffff"]:
        assert segment.term_id(probe) == segment.vocab.get(probe), probe
    assert [terms[i] for i in segment.term_order] == sorted(terms)  # type: ignore[union-attr]


def test_a_loaded_index_searches_without_the_dict_of_every_term(tmp_path: Path) -> None:
    chunks = corpus(150, seed=3)
    built = LexicalIndex.build(chunks[:120]).with_changes(chunks[120:], {"c9"})
    files = LexicalFiles(tmp_path)
    files.save(built, "g1")
    loaded = files.load()
    assert loaded is not None and not loaded.old_layout
    index = loaded.index
    assert all(s.term_order is not None for s in index.segments)
    for query in QUERIES:
        assert index.search(query, 10) == built.search(query, 10), query
    assert all("vocab" not in vars(s) for s in index.segments)  # never built
    assert_same(index, built)


def _without_term_order(files: LexicalFiles) -> None:
    """Files as saved before segments held their terms' order."""
    head = json.loads((files.dir / "index.json").read_text())
    for entry in head["segments"]:
        base = files.dir / entry["name"]
        arrays = dict(np.load(f"{base}.npz"))
        del arrays["term_order"], entry["term_order"]
        np.savez(f"{base}.npz", **arrays)
        entry["crc32"] = [zlib.crc32(Path(f"{base}.{k}").read_bytes()) for k in FILES]
    (files.dir / "index.json").write_text(json.dumps(head))


def test_files_without_the_order_are_read_then_rewritten_once(tmp_path: Path) -> None:
    chunks = corpus(100, seed=11)
    built = LexicalIndex.build(chunks)
    files = LexicalFiles(tmp_path)
    files.save(built, "g1")
    _without_term_order(files)
    loaded = files.load()
    assert loaded is not None and loaded.old_layout
    assert all(s.term_order is None for s in loaded.index.segments)
    assert_same(loaded.index, built)  # through the dict, as before
    files.refresh(NoRebuild(), "g1")  # same generation: no rebuild, a rewrite
    again = files.load()
    assert again is not None and not again.old_layout
    assert all(s.term_order is not None for s in again.index.segments)
    assert_same(again.index, built)


def test_a_term_order_of_the_wrong_length_means_a_rebuild(tmp_path: Path) -> None:
    files = LexicalFiles(tmp_path)
    files.save(LexicalIndex.build(corpus(40)), "g1")
    head = json.loads((files.dir / "index.json").read_text())
    entry = head["segments"][0]
    base = files.dir / entry["name"]
    arrays = dict(np.load(f"{base}.npz"))
    arrays["term_order"] = arrays["term_order"][:-1]
    np.savez(f"{base}.npz", **arrays)
    entry["crc32"][0] = zlib.crc32(Path(f"{base}.npz").read_bytes())
    (files.dir / "index.json").write_text(json.dumps(head))
    assert files.load() is None
