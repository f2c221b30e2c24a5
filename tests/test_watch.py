"""The folder watcher, on real filesystem events in a temporary folder and a real index."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.cli import cli
from bot.settings import Settings
from ingest.embeddings import LocalEmbeddings
from ingest.ignore import ignored_name, ignored_path
from ingest.lock import ingest_lock
from ingest.store import IndexStore, open_index
from ingest.types import IngestReport, Outcome
from ingest.watch import FolderMissing, Settling, watch
from tests.conftest import make_settings

# Tight timings keep the suite fast; the defaults (0.5 s, 1 s) only add latency.
QUIET_S = 0.1
SETTLE_S = 0.4


def wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def embeddings(model_dir: Path) -> LocalEmbeddings:
    return LocalEmbeddings(model_dir)


@dataclass
class Watching:
    docs: Path
    settings: Settings
    store: IndexStore
    reports: list[IngestReport] = field(default_factory=list)

    def outcomes(self, path: str) -> list[Outcome]:
        return [r.outcome for rep in list(self.reports) for r in rep.results if r.path == path]

    def texts(self) -> str:
        return " ".join(c.text for c in self.store.all_chunks())

    def paths(self) -> set[str]:
        return {c.path for c in self.store.all_chunks()}

    def no_run_for_a_while(self, runs_before: int) -> bool:
        time.sleep(QUIET_S + SETTLE_S + 0.5)  # long enough for a burst to end and settle
        return len(self.reports) == runs_before


@contextmanager
def watching(settings: Settings, embeddings: LocalEmbeddings) -> Iterator[Watching]:
    """Run the watcher in a thread (as the bot does) until the block ends."""
    state = Watching(settings.documents_dir, settings, open_index(settings, embeddings))
    stop = threading.Event()
    thread = threading.Thread(
        target=watch,
        args=(settings, state.reports.append),
        kwargs={"stop": stop, "quiet_s": QUIET_S, "settle_s": SETTLE_S, "embeddings": embeddings},
        daemon=True,
    )
    thread.start()
    try:
        wait_for(lambda: len(state.reports) >= 1)  # the reconciling first run
        yield state
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()


def folder(tmp_path: Path, model_dir: Path) -> Settings:
    docs = tmp_path / "docs"
    docs.mkdir(exist_ok=True)
    return make_settings(tmp_path / "data", model_dir, documents_dir=docs)


def test_add_update_rename_move_delete(
    tmp_path: Path, model_dir: Path, embeddings: LocalEmbeddings
) -> None:
    settings = folder(tmp_path, model_dir)
    docs = settings.documents_dir
    (docs / "first.txt").write_text("First note\n\nThe ferry terminal opened in April 2022.\n")
    with watching(settings, embeddings) as w:
        assert "ferry terminal" in w.texts()
        (docs / "second.md").write_text("# Second\n\nA cargo airport handled 90,000 tonnes.\n")
        wait_for(lambda: Outcome.ADDED in w.outcomes("second.md"))
        assert "90,000 tonnes" in w.texts()
        # A file that arrived is ingested alone: the run does not scan the whole folder.
        assert [r.path for r in w.reports[-1].results] == ["second.md"]
        (docs / "second.md").write_text("# Second\n\nA cargo airport handled 95,000 tonnes.\n")
        wait_for(lambda: Outcome.UPDATED in w.outcomes("second.md"))
        assert w.outcomes("second.md") == [Outcome.ADDED, Outcome.UPDATED]
        assert "95,000 tonnes" in w.texts() and "90,000" not in w.texts()

        (docs / "second.md").rename(docs / "airport.md")
        wait_for(lambda: Outcome.RENAMED in w.outcomes("airport.md"))
        (docs / "archive").mkdir()
        (docs / "airport.md").rename(docs / "archive" / "airport.md")
        moved = os.path.join("archive", "airport.md")
        wait_for(lambda: Outcome.RENAMED in w.outcomes(moved))
        wait_for(lambda: w.paths() == {"first.txt", moved})  # citations name the new place

        (docs / "first.txt").unlink()
        wait_for(lambda: Outcome.REMOVED in w.outcomes("first.txt"))
        assert "ferry terminal" not in w.texts()
        # A deletion takes the whole folder (that is how a removal is noticed).
        assert w.outcomes(moved)[-1] is Outcome.UNCHANGED
        # Nothing was embedded twice for a rename or a move.
        assert all(r.chunks == 0 for rep in w.reports for r in rep.results if r.path == moved)


def test_burst_of_500_files_gives_a_handful_of_runs(
    tmp_path: Path, model_dir: Path, embeddings: LocalEmbeddings
) -> None:
    settings = folder(tmp_path, model_dir)
    docs = settings.documents_dir
    with watching(settings, embeddings) as w:
        runs_before = len(w.reports)
        (docs / "batch").mkdir()
        for i in range(500):  # a copy of a folder of notes: 500 files, 10 distinct texts
            body = f"Note {i % 10}\n\nQuarterly freight volume rose by {i % 10} percent.\n"
            (docs / "batch" / f"note-{i:03}.txt").write_text(body)
        wait_for(lambda: sum(rep.count(Outcome.ADDED) for rep in w.reports) == 500, 60)
        time.sleep(QUIET_S + SETTLE_S + 0.3)  # any straggling run would have started
        runs = len(w.reports) - runs_before
    assert 1 <= runs <= 3, f"{runs} runs for one burst"


def test_a_growing_file_is_read_once_complete(
    tmp_path: Path, model_dir: Path, embeddings: LocalEmbeddings
) -> None:
    settings = folder(tmp_path, model_dir)
    docs = settings.documents_dir
    lines = [f"Paragraph {i}: the harbour dredging phase {i} was completed.\n\n" for i in range(12)]
    with watching(settings, embeddings) as w, (docs / "slow-copy.md").open("w") as out:
        out.write("# Dredging report\n\n")
        for line in lines:  # 12 writes over 3 s, as a slow network copy arrives
            out.write(line)
            out.flush()
            time.sleep(0.25)
        out.close()
        wait_for(lambda: bool(w.outcomes("slow-copy.md")))
        time.sleep(QUIET_S + SETTLE_S + 0.3)
        # Read once, whole: a half-written read would show up as a later "updated".
        assert w.outcomes("slow-copy.md") == [Outcome.ADDED]
        assert "phase 11 was completed" in w.texts()


def test_temporary_and_hidden_files_are_ignored(
    tmp_path: Path, model_dir: Path, embeddings: LocalEmbeddings
) -> None:
    settings = folder(tmp_path, model_dir)
    docs = settings.documents_dir
    with watching(settings, embeddings) as w:
        runs_before = len(w.reports)
        (docs / "~$minutes.docx").write_bytes(b"\x00owner lock, not a document")
        (docs / "minutes.pdf.part").write_bytes(b"%PDF-1.7 half")
        (docs / "minutes.pdf.crdownload").write_bytes(b"%PDF-1.7 half")
        (docs / ".minutes.md.swp").write_bytes(b"vim swap")
        (docs / ".hidden.md").write_text("# Hidden\n\nNot for the index.\n")
        (docs / ".git").mkdir()
        (docs / ".git" / "notes.md").write_text("# Git notes\n\nNot for the index.\n")
        assert w.no_run_for_a_while(runs_before), "temporary files started a run"
        (docs / "minutes.md").write_text("# Minutes\n\nThe board approved the budget.\n")
        wait_for(lambda: bool(w.outcomes("minutes.md")))
        seen = {r.path for rep in w.reports for r in rep.results}
        assert seen == {"minutes.md"}
        assert "Not for the index" not in w.texts()


def test_restart_reconciles_changes_made_while_stopped(
    tmp_path: Path, model_dir: Path, embeddings: LocalEmbeddings
) -> None:
    settings = folder(tmp_path, model_dir)
    docs = settings.documents_dir
    (docs / "kept.txt").write_text("Kept\n\nThe bridge reopened in May.\n")
    (docs / "dropped.txt").write_text("Dropped\n\nThe tunnel closed in June.\n")
    with watching(settings, embeddings) as w:
        assert "tunnel closed" in w.texts()
    (docs / "dropped.txt").unlink()  # while nobody watches
    (docs / "late.md").write_text("# Late\n\nThe ferry timetable changed in July.\n")
    with watching(settings, embeddings) as w:
        first = w.reports[0]
        assert {(r.path, r.outcome) for r in first.results} == {
            ("kept.txt", Outcome.UNCHANGED),
            ("dropped.txt", Outcome.REMOVED),
            ("late.md", Outcome.ADDED),
        }
        assert "ferry timetable" in w.texts()
        assert "tunnel closed" not in w.texts()


def test_corrupt_file_among_good_ones_and_a_held_lock(
    tmp_path: Path, model_dir: Path, embeddings: LocalEmbeddings
) -> None:
    settings = folder(tmp_path, model_dir)
    docs = settings.documents_dir
    with watching(settings, embeddings) as w:
        runs_before = len(w.reports)
        with ingest_lock(settings.data_dir):  # a manual `briefing ingest` is running
            (docs / "good-1.md").write_text("# Good one\n\nThe port added two berths.\n")
            (docs / "broken.pdf").write_bytes(b"%PDF-1.4\n this is not really a PDF")
            (docs / "good-2.txt").write_text("Good two\n\nRail freight grew 4 percent.\n")
            assert w.no_run_for_a_while(runs_before)  # queued behind the lock, not failed
        # The broken PDF is retried quietly while recent (it may be half-written), then
        # reported: in a later run than the good files, once.
        wait_for(lambda: any(r.failures for r in w.reports[runs_before:]))
        reports = w.reports[runs_before:]
        assert sum(r.count(Outcome.ADDED) for r in reports) == 2
        (failure,) = [f for r in reports for f in r.failures]
        assert failure.path == "broken.pdf"
        assert failure.reason and "pdf" in failure.reason.lower()


def test_missing_folder_is_a_usage_error(tmp_path: Path, model_dir: Path) -> None:
    settings = make_settings(tmp_path / "data", model_dir, documents_dir=tmp_path / "nope")
    with pytest.raises(FolderMissing, match="does not exist"):
        watch(settings, lambda report: None)
    env = {"DATA_DIR": str(tmp_path / "data"), "MODEL_DIR": str(model_dir)}
    result = CliRunner().invoke(cli, ["watch", str(tmp_path / "nope")], env=env)
    assert result.exit_code == 2, result.output
    assert "does not exist" in result.output
    assert "Watching" not in result.output


def test_ignore_rules() -> None:
    for name in ["~$report.docx", "a.pdf.part", "a.crdownload", ".a.md.swp", ".hidden.md",
                 "notes.txt~", "#notes.md#", "x.tmp"]:  # fmt: skip
        assert ignored_name(name), name
    for name in ["report.docx", "2021.03 plan.md", "a~b.txt", "part.pdf"]:
        assert not ignored_name(name), name
    assert ignored_path("/d/.git/x.md", "/d")
    assert not ignored_path("/home/.me/docs/x.md", "/home/.me/docs")  # the root may be hidden


def test_settling_waits_for_size_and_mtime_to_hold(tmp_path: Path) -> None:
    now = [100.0]
    settling = Settling(settle_s=1.0, clock=lambda: now[0])
    path = tmp_path / "copy.pdf"
    path.write_bytes(b"x" * 10)
    settling.add({str(path)})
    assert settling.still_growing() == [str(path)]  # first look
    now[0] += 0.5
    assert settling.still_growing() == [str(path)]  # unchanged, but not for long enough
    with path.open("ab") as out:
        out.write(b"y" * 10)
    now[0] += 0.9
    assert settling.still_growing() == [str(path)]  # grew: the clock starts again
    now[0] += 0.9
    assert settling.still_growing() == [str(path)]
    now[0] += 0.2  # held 1.1 s; but its writer paused 1.4 s: it must hold 1.5 x 1.4 s now
    assert settling.still_growing() == [str(path)]
    now[0] += 1.0
    assert settling.still_growing() == []
    path.unlink()
    settling.add({str(path)})
    assert settling.still_growing() == []  # vanished: nothing to wait for


def test_a_file_dropped_while_a_big_one_ingests_does_not_wait_for_it(
    tmp_path: Path, model_dir: Path, embeddings: LocalEmbeddings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: a big file held the watcher for the whole of its ingest (minutes for a 50 MB
    text), and files dropped meanwhile waited. Now each run embeds a slice of it and the
    files dropped meanwhile go in the next run."""
    import ingest.stream
    import ingest.watch

    monkeypatch.setattr(ingest.watch, "STREAM_SLICE_S", 0.3)
    monkeypatch.setattr(ingest.stream, "SECTION_BYTES", 2_000)
    docs = tmp_path / "docs"
    docs.mkdir()
    settings = make_settings(
        tmp_path / "data", model_dir, documents_dir=docs, stream_file_mb=0.01, embed_batch_size=2
    )
    with watching(settings, embeddings) as w:
        paragraphs = [f"Harbour note {i}: berth {i} handled {i * 7} ships." for i in range(2000)]
        (docs / "big.txt").write_text("Harbour book\n\n" + "\n\n".join(paragraphs))
        wait_for(lambda: any(r.path == "big.txt" for rep in w.reports for r in rep.results))
        (docs / "ferry.txt").write_text("Ferry note\n\nThe ferry line carried 5,120 passengers.")
        wait_for(lambda: Outcome.ADDED in w.outcomes("ferry.txt"))
        assert Outcome.ADDED not in w.outcomes("big.txt")  # still going
        wait_for(lambda: Outcome.ADDED in w.outcomes("big.txt"), timeout=300)
        assert "berth 1999 handled 13993 ships" in w.texts()
