"""The run log: every ingest run that changed something or failed a file, whoever ran it
(this process, or `briefing ingest` in another), in order, trimmed, readable while written."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from ingest import runlog
from ingest.pipeline import run_ingest
from ingest.state import connect, state_path
from ingest.types import FileResult, IngestReport, Outcome
from tests.conftest import ROOT, make_settings


def test_runs_from_this_process_and_the_cli_are_logged_in_order(
    tmp_path: Path, model_dir: Path
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "port.txt").write_text("Port note\n\nBerth 4 handled 1,200 containers in May.\n")
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4\nnot really a PDF")
    settings = make_settings(tmp_path / "data", model_dir, documents_dir=docs)
    data = settings.data_dir

    run_ingest(settings)
    (first,) = runlog.read_all(data)
    assert first.seq == 1 and first.pid == os.getpid()
    outcomes = {r.path: (r.outcome, r.reason) for r in first.report.results}
    assert outcomes["port.txt"][0] is Outcome.ADDED
    assert outcomes["broken.pdf"][0] is Outcome.FAILED and outcomes["broken.pdf"][1]

    (docs / "broken.pdf").unlink()
    run_ingest(settings)  # nothing changed, nothing failed: not worth a line
    run_ingest(settings, dry_run=True)
    assert runlog.last_seq(data) == 1

    (docs / "port.txt").rename(docs / "harbour.txt")
    (docs / "rail.md").write_text("# Rail note\n\nThe new rail line opened on 3 May 2021.\n")
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DATA_DIR": str(data),
        "DOCUMENTS_DIR": str(docs),
        "MODEL_DIR": str(model_dir),
    }
    cli = subprocess.run(
        [sys.executable, "-m", "bot.cli", "ingest"], env=env, cwd=tmp_path, capture_output=True
    )
    assert cli.returncode == 0, cli.stderr
    (second,) = runlog.read_after(data, 1)
    # A run not worth telling keeps its number: numbers grow, with gaps.
    assert second.seq > 1 and second.pid not in (os.getpid(), 0)
    outcomes = {r.path: (r.outcome, r.reason) for r in second.report.results}
    assert outcomes == {
        "harbour.txt": (Outcome.RENAMED, "renamed from port.txt"),
        "rail.md": (Outcome.ADDED, None),
    }  # unchanged files are left out
    assert runlog.read_after(data, second.seq) == []


def report(i: int) -> IngestReport:
    return IngestReport(results=[FileResult(f"note-{i}\u2028.txt", Outcome.ADDED, chunks=i)])


def log_run(db: sqlite3.Connection, i: int, *, finish: bool = True) -> int:
    db.execute("BEGIN IMMEDIATE")
    seq = runlog.begin(db)
    runlog.log_results(db, seq, report(i).results)
    if finish:
        runlog.finish(db, seq, report(i))
    db.execute("COMMIT")
    return seq


def test_numbers_are_never_reused_and_a_running_run_waits_its_turn(tmp_path: Path) -> None:
    db = connect(state_path(tmp_path))
    assert [log_run(db, i) for i in (1, 2, 3)] == [1, 2, 3]
    db.execute("DELETE FROM run_log WHERE seq >= 2")  # runs gone (trimmed, or lost)...
    assert log_run(db, 4) == 4  # ...their numbers are not given again
    running = log_run(db, 5, finish=False)
    assert [r.seq for r in runlog.read_after(db, 1)] == [4]  # 5 is told once it ends
    assert runlog.last_seq(db) == 4
    assert runlog.close_interrupted(db) == 1  # what the next run does under the lock
    (after,) = runlog.read_after(tmp_path, 4)
    assert after.seq == running and after.interrupted
    assert after.report.results[0].path == "note-5\u2028.txt"
    db.close()
