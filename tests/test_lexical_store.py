"""The segmented BM25 index and its files: equal to bm25s, to a rebuild, after load and update."""

from __future__ import annotations

import json
import random
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import bm25s
import numpy as np
import pytest

from ingest.chunk_columns import column
from ingest.embeddings import LocalEmbeddings
from ingest.lexical import MAX_SEGMENTS, LexicalIndex, chunk_terms
from ingest.lexical_segments import parse_json
from ingest.lexical_store import LexicalFiles
from ingest.pipeline import run_ingest
from ingest.store import open_index
from ingest.terms import tokenize
from ingest.types import IndexedChunk
from tests.conftest import make_settings

WORDS = [
    "trade", "export", "import", "port", "yuan", "billion", "growth", "energy", "wind",
    "solar", "grid", "reservoir", "ferry", "airship", "budget", "tariff", "harbour",
    "container", "steel", "grain", "revenue", "profit", "quarter",
]  # fmt: skip
QUERIES = [
    "port export growth",
    "wind solar grid",
    "revenue profit quarter 2021",
    "ferry harbour container",
    "billion yuan trade 341.81",
    "steel grain tariff budget",
]


def corpus(n: int, seed: int = 7) -> list[IndexedChunk]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        words = [rng.choice(WORDS) for _ in range(rng.randint(3, 40))]
        if i % 5 == 0:
            words.append(rng.choice(["2020", "2021", "341.81"]))
        text = " ".join(words) + "."
        doc = i // 4
        out.append(
            IndexedChunk(f"c{i}", f"d{doc}", text, f"{doc}.txt", f"Note {doc % 7}", i % 4, 0, 0)
        )
    return out


def by_id(index: LexicalIndex, query: str) -> dict[str, float]:
    return {index.chunks[i].chunk_id: s for i, s in index.search(query, k=10_000)}


def assert_same(a: LexicalIndex, b: LexicalIndex) -> None:
    assert sorted(c.chunk_id for c in a.chunks) == sorted(c.chunk_id for c in b.chunks)
    for query in QUERIES:
        got, want = by_id(a, query), by_id(b, query)
        assert got.keys() == want.keys(), query
        assert got == pytest.approx(want, rel=1e-9), query


def test_scores_equal_bm25s_on_the_same_terms() -> None:
    chunks = corpus(120)
    index = LexicalIndex.build(chunks)
    reference = bm25s.BM25()
    reference.index(list(chunk_terms(chunks)), show_progress=False)
    for query in QUERIES:
        terms = [t for t in tokenize(query) if t in reference.vocab_dict]
        want = np.asarray(reference.get_scores(terms), dtype=np.float64)
        assert index.scores(query) == pytest.approx(want, rel=1e-5, abs=1e-6)
        assert [i for i, _ in index.search(query, 10)] == [
            int(i) for i in np.argsort(-want, kind="stable")[:10] if want[i] > 0
        ]


def test_incremental_update_equals_a_rebuild() -> None:
    chunks = corpus(200)
    index = LexicalIndex.build(chunks[:100])
    for start in range(100, 200, 10):  # more segments than MAX_SEGMENTS: merges happen
        index = index.with_changes(chunks[start : start + 10])
    assert len(index.segments) <= MAX_SEGMENTS + 1
    removed = {c.chunk_id for c in random.Random(3).sample(chunks, 30)}
    index = index.with_changes(removed=removed)
    # Re-adding a chunk under the same id (a moved document) replaces it.
    moved = [replace(c, path="moved.txt") for c in chunks[40:44]]
    index = index.with_changes(moved, {c.chunk_id for c in moved})
    want = [c for c in chunks if c.chunk_id not in removed and c not in chunks[40:44]]
    rebuilt = LexicalIndex.build([*want, *moved])
    assert_same(index, rebuilt)
    assert_same(index.compacted(), rebuilt)
    assert {c.path for c in index.chunks if c.chunk_id in {m.chunk_id for m in moved}} == {
        "moved.txt"
    }


def test_an_update_tokenises_only_the_added_chunks() -> None:
    calls: list[str] = []

    def counting(text: str) -> list[str]:
        calls.append(text)
        return tokenize(text)

    chunks = corpus(60)
    index = LexicalIndex.build(chunks[:50], tok=counting)
    calls.clear()
    index.with_changes(chunks[50:52], removed={"c3"})
    assert sorted(calls) == sorted([chunks[50].text, chunks[51].text, chunks[50].title])


def test_saved_index_loads_equal_to_a_rebuild(tmp_path: Path) -> None:
    chunks = corpus(150)
    files = LexicalFiles(tmp_path)
    index = LexicalIndex.build(chunks[:120]).with_changes(chunks[120:], {"c5", "c6"})
    files.save(index, "gen-1")
    loaded = files.load()
    assert loaded is not None and loaded.generation == "gen-1"
    assert loaded.index.chunks == index.chunks  # every field, in order
    assert_same(
        loaded.index, LexicalIndex.build([c for c in chunks if c.chunk_id not in {"c5", "c6"}])
    )
    # An update writes one new segment; the old segment files stay as they were.
    before = {p.name: p.stat().st_mtime_ns for p in files.dir.glob("*.npz")}
    files.save(loaded.index.with_changes(corpus(2, seed=9)), "gen-2")
    after = {p.name: p.stat().st_mtime_ns for p in files.dir.glob("*.npz")}
    assert len(after) == len(before) + 1 and all(after[n] == t for n, t in before.items())


def _break_a_segment(files: LexicalFiles) -> None:
    path = next(files.dir.glob("*.npz"))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _break_texts(files: LexicalFiles) -> None:  # read and checked on a thread
    path = next(files.dir.glob("*.text"))
    path.write_bytes(path.read_bytes()[:-3])


def _break_columns(files: LexicalFiles) -> None:  # parsed on the loading thread
    path = next(p for p in files.dir.glob("*.json") if p.name != "index.json")
    path.write_bytes(b"{" + path.read_bytes())


def _other_tokenizer(files: LexicalFiles) -> None:
    head = json.loads((files.dir / "index.json").read_text())
    head["tokenizer"] = "made-by-another"
    (files.dir / "index.json").write_text(json.dumps(head))


def _truncate_head(files: LexicalFiles) -> None:
    (files.dir / "index.json").write_text('{"format": 1, "segm')


@pytest.mark.parametrize(
    "damage", [_break_a_segment, _break_texts, _break_columns, _other_tokenizer, _truncate_head]
)
def test_corrupt_or_stale_files_are_rebuilt(
    tmp_path: Path, damage: Callable[[LexicalFiles], None]
) -> None:
    chunks = corpus(40)
    files = LexicalFiles(tmp_path)
    files.save(LexicalIndex.build(chunks), "g1")
    damage(files)
    assert files.load() is None

    class Source:
        def all_chunks(self) -> list[IndexedChunk]:
            return list(chunks)

        def get_chunks(self, ids: object) -> list[IndexedChunk]:
            raise AssertionError("a rebuild reads everything")

    index = files.refresh(Source(), "g1")
    assert_same(index, LexicalIndex.build(chunks))
    reloaded = files.load()  # the rebuild was saved in place of the damaged files
    assert reloaded is not None and reloaded.generation == "g1"


def test_damaged_files_are_named_once_when_a_preload_found_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Before: the preload thread and the first refresh each warned about the same files."""
    chunks = corpus(12)
    files = LexicalFiles(tmp_path)
    files.save(LexicalIndex.build(chunks), "g1")
    (files.dir / "index.json").write_text("{garbled")
    fresh = LexicalFiles(tmp_path)

    class Source:
        def all_chunks(self) -> list[IndexedChunk]:
            return list(chunks)

        def get_chunks(self, ids: object) -> list[IndexedChunk]:
            return []

    fresh.preload()
    fresh.refresh(Source(), "g1")
    warned = [r for r in caplog.records if r.levelname == "WARNING" and "lexical" in r.message]
    assert len(warned) == 1 and "is unreadable" in warned[0].message


def test_columns_parse_as_json_reads_them() -> None:
    values = {"title": ["克什米尔 “Q3”", None], "page": [1, 2**70], "x": [float("nan"), 1.5]}
    raw = json.dumps(values, ensure_ascii=False).encode()  # NaN and 2**70: orjson refuses
    parsed = parse_json(raw)
    assert parsed["page"] == [1, 2**70] and np.isnan(parsed["x"][0])
    plain = {k: v for k, v in values.items() if k == "title"}
    assert parse_json(json.dumps(plain, ensure_ascii=False).encode()) == plain


@pytest.fixture
def embeddings(model_dir: Path) -> LocalEmbeddings:
    return LocalEmbeddings(model_dir)


def test_files_follow_ingest_add_move_and_remove(
    tmp_path: Path, model_dir: Path, embeddings: LocalEmbeddings, shared_dir: Path
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "ferry.txt").write_text("Ferry note\n\nThe ferry line carried 5,120 passengers.\n")
    shutil.copy(shared_dir / "corpus" / "qingdao-dual-circulation-2020-09-04.txt", docs / "q.txt")
    settings = make_settings(tmp_path / "data", model_dir, documents_dir=docs)
    files = LexicalFiles(settings.data_dir)

    def check() -> LexicalIndex:
        store = open_index(settings, embeddings)
        loaded = files.load()
        assert loaded is not None and loaded.generation == store.generation()
        assert_same(loaded.index, LexicalIndex.build(store.all_chunks()))
        assert sorted(loaded.index.chunks, key=lambda c: c.chunk_id) == sorted(
            store.all_chunks(), key=lambda c: c.chunk_id
        )
        return loaded.index

    run_ingest(settings, embeddings=embeddings)
    first = check()
    (docs / "airship.txt").write_text("Airship note\n\nA zeppelin airship made 17 flights.\n")
    run_ingest(settings, embeddings=embeddings)
    added = check()
    assert len(added.segments) == 2  # the new file became a segment of its own
    [(best, _)] = added.search("zeppelin flights", 1)
    assert "zeppelin airship made 17 flights" in added.chunks[best].text
    (docs / "ferry.txt").rename(docs / "boat.txt")
    run_ingest(settings, embeddings=embeddings)
    moved = check()
    assert {c.path for c in moved.chunks if "ferry" in c.text} == {"boat.txt"}
    (docs / "q.txt").unlink()
    run_ingest(settings, embeddings=embeddings)
    assert len(check()) < len(first)


def test_an_ingest_writes_its_chunks_a_segment_at_a_time(
    tmp_path: Path, model_dir: Path, embeddings: LocalEmbeddings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A big file's BM25 terms are built and written SEGMENT_CHUNKS chunks at a time, so an
    ingest never holds them all; on damaged files too. Before: one segment of every chunk
    added, built in memory (the largest part of a big file's peak memory)."""
    import ingest.lexical_update

    monkeypatch.setattr(ingest.lexical_update, "SEGMENT_CHUNKS", 5)
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(4):
        paragraphs = [f"District {i}-{p} harbour output rose to {p}.{i} million." for p in range(4)]
        (docs / f"note-{i}.txt").write_text(f"Note {i}\n\n" + "\n\n".join(paragraphs))
    settings = make_settings(
        tmp_path / "data", model_dir, documents_dir=docs, chunk_tokens=32, chunk_overlap_tokens=0
    )
    files = LexicalFiles(settings.data_dir)

    def check() -> None:
        store = open_index(settings, embeddings)
        loaded = files.load()
        assert loaded is not None and loaded.generation == store.generation()
        assert 1 < len(loaded.index.segments) < MAX_SEGMENTS
        assert max(len(s) for s in loaded.index.segments) <= 5
        assert_same(loaded.index, LexicalIndex.build(store.all_chunks()))

    report = run_ingest(settings, embeddings=embeddings)
    assert report.embedded_chunks > 5
    check()
    (files.dir / "index.json").write_text("{garbled")
    (docs / "note-0.txt").write_text("Note 0\n\nThe ferry line carried 5,120 passengers.")
    run_ingest(settings, embeddings=embeddings)  # damaged files: written anew, segment-wise
    check()
    # Many segments: what is saved is merged into one first, and the new chunks still go
    # in segment-wise (before: all of them built as one segment in memory).
    monkeypatch.setattr(ingest.lexical_update, "MAX_SEGMENTS", 2)
    paragraphs = [f"Ferry {p} carried {p * 13} passengers to the outer islands." for p in range(40)]
    (docs / "note-9.txt").write_text("Ferry note\n\n" + "\n\n".join(paragraphs))
    report = run_ingest(settings, embeddings=embeddings)
    assert report.embedded_chunks > 5
    loaded = files.load()
    assert loaded is not None
    new = [s for s in loaded.index.segments if "note-9.txt" in column(s.chunks, "path")]
    old = [s for s in loaded.index.segments if s not in new]
    assert len(new) > 1 and max(len(s) for s in new) <= 5  # the new chunks, segment-wise
    assert len(old) == 1  # what was saved, merged
    assert_same(loaded.index, LexicalIndex.build(open_index(settings, embeddings).all_chunks()))


def test_retriever_follows_an_ingest_by_the_changed_document_only(
    tmp_path: Path, model_dir: Path, embeddings: LocalEmbeddings, shared_dir: Path
) -> None:
    from bot.retrieval import Retriever

    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copy(shared_dir / "corpus" / "qingdao-dual-circulation-2020-09-04.txt", docs / "q.txt")
    settings = make_settings(tmp_path / "data", model_dir, documents_dir=docs)
    run_ingest(settings, embeddings=embeddings)
    files = LexicalFiles(settings.data_dir)
    retriever = Retriever(open_index(settings, embeddings), embeddings, lexical_files=files)
    first = retriever.lexical_index()
    assert first.chunks == files.load().index.chunks  # type: ignore[union-attr]
    (docs / "airship.txt").write_text("Airship note\n\nA zeppelin airship made 17 flights.\n")
    run_ingest(settings, embeddings=embeddings)
    hits = retriever.search("zeppelin airship flights")
    assert "zeppelin" in hits[0].text and hits[0].lexical_rank == 1
    after = retriever.lexical_index()
    # The first segment is shared, not rebuilt: only the new file was tokenised.
    assert after.segments[0] is first.segments[0] and len(after.segments) == 2
    assert_same(after, LexicalIndex.build(open_index(settings, embeddings).all_chunks()))
    # A rename rewrites the document's chunks; the untouched segment is still shared.
    (docs / "airship.txt").rename(docs / "zeppelin.txt")
    run_ingest(settings, embeddings=embeddings)
    renamed = retriever.lexical_index()
    assert renamed.segments[0] is first.segments[0]
    assert {c.path for c in renamed.chunks} == {"q.txt", "zeppelin.txt"}
    assert_same(renamed, LexicalIndex.build(open_index(settings, embeddings).all_chunks()))
    # Files saved for another generation are not trusted: the manifest is compared instead.
    store = open_index(settings, embeddings)
    other = files.refresh(store, "not-the-files-generation", renamed)
    assert_same(other, renamed)


class NoSource:
    """A reader that follows the files must not fall back to the chunks themselves."""

    def all_chunks(self) -> list[IndexedChunk]:
        raise AssertionError("rebuilt from the source instead of the saved files")

    def get_chunks(self, ids: Sequence[str]) -> list[IndexedChunk]:
        raise AssertionError("compared with the manifest instead of the saved files")


def test_a_reader_waits_for_the_running_ingest_to_save_the_new_generation(
    tmp_path: Path,
) -> None:
    from ingest.lock import ingest_lock

    chunks = corpus(60)
    files = LexicalFiles(tmp_path)
    current = LexicalIndex.build(chunks[:50])
    files.save(current, "g1")
    (tmp_path / "state.sqlite").write_bytes(b"")  # present: the manifest path is open
    locked, saved = threading.Event(), threading.Event()

    def ingest() -> None:  # has published g2 in Chroma; its BM25 files follow
        with ingest_lock(tmp_path):
            locked.set()
            time.sleep(0.5)
            files.save(current.with_changes(chunks[50:]), "g2")
            saved.set()

    writer = threading.Thread(target=ingest)
    writer.start()
    locked.wait()
    index = files.refresh(NoSource(), "g2", current)
    writer.join()
    assert saved.is_set()
    assert index.segments[0] is current.segments[0]  # kept, not read again
    assert_same(index, LexicalIndex.build(chunks))
