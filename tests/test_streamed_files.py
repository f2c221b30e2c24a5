"""A big text file read in sections (issue 18, case 8): memory stays that of one section,
the chunks keep the offsets of the whole document, a stopped run keeps what it stored (and
a killed one too: ``tests/test_big_files.py``), and a file that turns out bad or changes
while it is read leaves nothing behind.

The section size is made small here so that a few kilobytes make many sections; the
bounded memory itself is measured by ``bench/ingest_memory.py`` (RSS is not asserted)."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

import ingest.loaders
import ingest.stream
from ingest.embeddings import LocalEmbeddings
from ingest.manifest import Manifest
from ingest.pipeline import run_ingest
from ingest.store import open_index
from ingest.stream import Sections, file_content_id
from ingest.types import Outcome
from tests.conftest import make_settings
from tests.test_ingest_crash import check_consistent

SECTION = 2_000  # bytes per section in these tests


@pytest.fixture(scope="module")
def embeddings(model_dir: Path) -> LocalEmbeddings:
    return LocalEmbeddings(model_dir)


@pytest.fixture(autouse=True)
def small_sections(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ingest.stream, "SECTION_BYTES", SECTION)
    monkeypatch.setattr(ingest.stream, "_MAX_BLOCK", 4 * SECTION)


def paragraphs(n: int, word: str = "harbour") -> list[str]:
    return [
        f"District {i} reported that {word} output rose to {100 + i}.{i % 10} million yuan "
        f"as the berth programme expanded, officials said in note {i}."
        for i in range(n)
    ]


def big_file(folder: Path, n: int = 120) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / "big.md"
    head = "---\ntitle: Harbour annual report\ndate: 2024-03-05\n---\n\n# Harbour annual report\n\n"
    path.write_text(head + "\n\n".join(paragraphs(n)))
    return path


def stream_settings(tmp_path: Path, model_dir: Path, docs: Path) -> object:
    # Anything over 1 KB is read in sections.
    return make_settings(tmp_path / "data", model_dir, documents_dir=docs, stream_file_mb=0.001)


def test_sections_keep_the_offsets_of_the_whole_text_and_read_no_more_than_a_block(
    tmp_path: Path, model_dir: Path, embeddings: LocalEmbeddings, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = big_file(tmp_path / "docs")
    assert path.stat().st_size > 7 * SECTION
    parsed: list[int] = []  # the size of every block a parser was given
    for name in ("parse_document", "parse_section"):
        real = getattr(ingest.stream, name)

        def spy(p: Path, data: bytes, *a: object, _real: Any = real, **k: object) -> Any:
            parsed.append(len(data))
            return _real(p, data, *a, **k)

        monkeypatch.setattr(ingest.stream, name, spy)
    settings = stream_settings(tmp_path, model_dir, path.parent)

    report = run_ingest(settings, embeddings=embeddings)  # type: ignore[arg-type]

    (added,) = report.results
    assert added.outcome is Outcome.ADDED and added.chunks > 10
    assert len(parsed) > 4 and max(parsed) < 2 * SECTION  # never the whole file at once
    sections = Sections(path, file_content_id(path), "big.md")
    whole = ingest.stream.SEPARATOR.join(s.text for s in sections)  # the document's text
    chunks = sorted(open_index(settings, embeddings).all_chunks(), key=lambda c: c.index)  # type: ignore[arg-type]
    assert [c.index for c in chunks] == list(range(added.chunks))
    assert len({c.chunk_id for c in chunks}) == len(chunks)
    assert all(whole[c.start : c.end] == c.text for c in chunks)  # exact slices, as ever
    assert all(c.start < n.start for c, n in itertools.pairwise(chunks))
    # The head gives the metadata; the last paragraph is indexed too.
    assert {c.title for c in chunks} == {"Harbour annual report"}
    assert {c.date for c in chunks} == {"2024-03-05"}
    assert any("note 119." in c.text for c in chunks)
    assert not any(c.text.lstrip().startswith("#") for c in chunks)  # Markdown headings read
    check_consistent(settings, embeddings)
    manifest = Manifest(settings.manifest_path)  # type: ignore[attr-defined]
    try:
        assert manifest.doc(added_doc := chunks[0].doc_id) is not None
        assert set(manifest.doc(added_doc).chunk_ids) == {c.chunk_id for c in chunks}  # type: ignore[union-attr]
    finally:
        manifest.close()

    again = run_ingest(settings, embeddings=embeddings)  # type: ignore[arg-type]
    assert [r.outcome for r in again.results] == [Outcome.UNCHANGED]


def test_a_dry_run_counts_a_streamed_file_and_writes_nothing(
    tmp_path: Path, model_dir: Path, embeddings: LocalEmbeddings
) -> None:
    path = big_file(tmp_path / "docs")
    settings = stream_settings(tmp_path, model_dir, path.parent)
    dry = run_ingest(settings, embeddings=embeddings, dry_run=True)  # type: ignore[arg-type]
    real = run_ingest(settings, embeddings=embeddings)  # type: ignore[arg-type]
    assert dry.results[0].chunks == real.results[0].chunks > 10
    assert dry.embedded_chunks == 0


def test_binary_bytes_in_a_later_section_fail_the_file_and_leave_nothing(
    tmp_path: Path, model_dir: Path, embeddings: LocalEmbeddings
) -> None:
    docs = tmp_path / "docs"
    path = big_file(docs)
    with open(path, "ab") as handle:
        handle.write(b"\n\n" + b"\x00\x01\x02" * 2_000)  # a file that turns binary at the end
    (docs / "small.txt").write_text("Rail note\n\nRail freight rose 4 percent in May.")
    settings = stream_settings(tmp_path, model_dir, docs)

    report = run_ingest(settings, embeddings=embeddings)  # type: ignore[arg-type]

    by_path = {r.path: r for r in report.results}
    assert by_path["small.txt"].outcome is Outcome.ADDED  # the rest ingests
    assert by_path["big.md"].outcome is Outcome.FAILED
    assert "binary" in (by_path["big.md"].reason or "")
    chunks = open_index(settings, embeddings).all_chunks()  # type: ignore[arg-type]
    assert {c.path for c in chunks} == {"small.txt"}  # the sections stored before: gone
    check_consistent(settings, embeddings)


def test_a_file_changed_while_it_is_read_is_not_indexed_half_old_half_new(
    tmp_path: Path, model_dir: Path, embeddings: LocalEmbeddings
) -> None:
    docs = tmp_path / "docs"
    path = big_file(docs)
    (docs / "z-small.txt").write_text("Rail note\n\nRail freight rose 4 percent in May.")
    settings = stream_settings(tmp_path, model_dir, docs)

    def append_to_big(done: int, total: int, current: str) -> None:
        if current == "z-small.txt":  # big.md is hashed already and read after the loop
            with open(path, "a") as handle:
                handle.write("\n\nA paragraph written during the ingest.")

    report = run_ingest(settings, embeddings=embeddings, progress=append_to_big)  # type: ignore[arg-type]

    big = next(r for r in report.results if r.path == "big.md")
    assert big.outcome is Outcome.FAILED and "changed while it was read" in (big.reason or "")
    assert {c.path for c in open_index(settings, embeddings).all_chunks()} == {"z-small.txt"}  # type: ignore[arg-type]
    check_consistent(settings, embeddings)
    again = run_ingest(settings, embeddings=embeddings)  # type: ignore[arg-type]
    assert next(r for r in again.results if r.path == "big.md").outcome is Outcome.ADDED


def test_each_section_is_decoded_on_its_own_when_the_encoding_changes(tmp_path: Path) -> None:
    english = "\n\n".join(paragraphs(40)).encode()
    chinese = "\n\n".join(f"青岛市第{i}区港口吞吐量增长{i}%。" for i in range(200)).encode("gbk")
    path = tmp_path / "mixed.txt"
    path.write_bytes(english + b"\n\n" + chinese)

    sections = list(Sections(path, file_content_id(path), "mixed.txt"))

    text = "".join(s.text for s in sections)
    assert "officials said in note 39." in text
    assert "青岛市第199区港口吞吐量增长199%。" in text
    assert not any("\ufffd" in s.text for s in sections)


def test_a_budgeted_run_leaves_the_rest_of_a_big_file_to_the_next_run(
    tmp_path: Path, model_dir: Path, embeddings: LocalEmbeddings
) -> None:
    """The watcher's runs embed a big file a slice at a time (``stream_budget_s``): what is
    stored stays, the file is 'not ready yet' (so nobody is told and the watcher comes
    back), and the run after goes on where it stopped."""
    from ingest.writer import NOT_READY

    path = big_file(tmp_path / "docs")
    settings = make_settings(
        tmp_path / "data", model_dir, documents_dir=path.parent, stream_file_mb=0.001,
        embed_batch_size=4,
    )  # fmt: skip

    first = run_ingest(settings, embeddings=embeddings, stream_budget_s=0)
    second = run_ingest(settings, embeddings=embeddings, stream_budget_s=0)

    for report in (first, second):
        (paused,) = report.results
        assert paused.outcome is Outcome.UNCHANGED
        assert (paused.reason or "").startswith(NOT_READY)
        assert report.embedded_chunks == 4  # one batch, then the budget is spent
    manifest = Manifest(settings.manifest_path)
    try:
        assert manifest.pending() == {} and manifest.docs() == []
        assert sum(len(ids) for ids in manifest.partial().values()) == 8
    finally:
        manifest.close()
    assert len(open_index(settings, embeddings).all_ids()) == 8  # kept, not repaired away

    last = run_ingest(settings, embeddings=embeddings)

    (added,) = last.results
    assert added.outcome is Outcome.ADDED
    assert last.embedded_chunks == added.chunks - 8
    check_consistent(settings, embeddings)
