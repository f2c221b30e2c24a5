"""The BM25 files are read on a thread while the model and Chroma load.

``LexicalFiles.preload`` starts the read; the first ``refresh`` takes its result instead
of reading again, and still checks it against the index generation it is asked for, so
files an ingest replaced meanwhile, or damaged files, are handled as a plain load would.
Speed is measured by bench/scale_bench.py.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ingest.lexical import LexicalIndex, Segment
from ingest.lexical_store import LexicalFiles, Loaded
from ingest.types import IndexedChunk
from tests.test_coldstart_columns import NoRebuild
from tests.test_lexical_store import assert_same, corpus

if TYPE_CHECKING:
    from bot.settings import Settings


class Reads:
    """Counts ``LexicalFiles.load`` calls and the threads they ran on."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.threads: list[str] = []
        real = LexicalFiles.load

        def load(files: LexicalFiles, *, quiet: bool = False) -> Loaded | None:
            self.threads.append(threading.current_thread().name)
            return real(files, quiet=quiet)

        monkeypatch.setattr(LexicalFiles, "load", load)


class Source:
    def __init__(self, chunks: list[IndexedChunk]) -> None:
        self.chunks = chunks

    def all_chunks(self) -> list[IndexedChunk]:
        return list(self.chunks)

    def get_chunks(self, ids: object) -> list[IndexedChunk]:
        raise AssertionError("no manifest here: a rebuild reads everything")


def test_refresh_takes_what_preload_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    chunks = corpus(80)
    LexicalFiles(tmp_path).save(LexicalIndex.build(chunks), "g1")
    reads = Reads(monkeypatch)
    files = LexicalFiles(tmp_path)
    files.preload()
    files.preload()  # once
    index = files.refresh(NoRebuild(), "g1")
    assert reads.threads == ["lexical-preload"]  # read once, on the thread
    assert_same(index, LexicalIndex.build(chunks))
    files.refresh(NoRebuild(), "g1")  # a later refresh reads for itself
    assert reads.threads == ["lexical-preload", "MainThread"]


def test_files_of_another_generation_are_not_taken(tmp_path: Path) -> None:
    old, new = corpus(60, seed=1), corpus(70, seed=2)
    files = LexicalFiles(tmp_path)
    files.save(LexicalIndex.build(old), "g1")
    files.preload()
    index = files.refresh(Source(new), "g2")  # an ingest moved the index on meanwhile
    assert_same(index, LexicalIndex.build(new))


def test_files_moved_on_after_the_preload_are_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old, new = corpus(60, seed=1), corpus(70, seed=2)
    files = LexicalFiles(tmp_path)
    files.save(LexicalIndex.build(old), "g1")
    reads = Reads(monkeypatch)
    files.preload()
    assert files._preloaded is not None and files._preloaded.result() is not None
    LexicalFiles(tmp_path).save(LexicalIndex.build(new), "g2")  # an ingest, meanwhile
    index = files.refresh(NoRebuild(), "g2")  # the files for g2: no rebuild
    assert reads.threads == ["lexical-preload", "MainThread"]
    assert_same(index, LexicalIndex.build(new))


def test_damaged_files_read_on_the_thread_mean_a_rebuild(tmp_path: Path) -> None:
    chunks = corpus(50)
    files = LexicalFiles(tmp_path)
    files.save(LexicalIndex.build(chunks), "g1")
    text = next(files.dir.glob("*.text"))
    text.write_bytes(text.read_bytes()[:-5])
    files.preload()
    assert_same(files.refresh(Source(chunks), "g1"), LexicalIndex.build(chunks))
    again = files.load()
    assert again is not None and again.generation == "g1"  # saved whole again


def test_service_reads_the_bm25_files_while_the_model_loads(
    examples_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.service import AnswerService

    reads = Reads(monkeypatch)
    service = AnswerService.from_settings(examples_settings)
    answer = service.answer("What did Qingdao's imports and exports total?")
    assert answer.citations  # answered from the index
    assert reads.threads == ["lexical-preload"]


def test_files_switched_by_an_ingest_while_read_are_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ingest.lexical_segments import read_segment

    old, new = corpus(60, seed=1), corpus(70, seed=2)
    files = LexicalFiles(tmp_path)
    files.save(LexicalIndex.build(old), "g1")
    switched: list[bool] = []

    def read_during_an_ingest(folder: Path, entry: dict[str, Any]) -> Segment:
        if not switched:  # an ingest saves the next generation, deleting g1's segment
            switched.append(True)
            LexicalFiles(tmp_path).save(LexicalIndex.build(new), "g2")
        return read_segment(folder, entry)

    monkeypatch.setattr("ingest.lexical_store.read_segment", read_during_an_ingest)
    loaded = files.load()
    assert switched and loaded is not None and loaded.generation == "g2"
    assert_same(loaded.index, LexicalIndex.build(new))
