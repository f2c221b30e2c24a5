"""The run log: every ingest run that changed something or failed a file, whoever ran it
(this process, or `briefing ingest` in another), in order, trimmed, readable while written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ingest import runlog
from ingest.pipeline import run_ingest
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
    assert second.seq == 2 and second.pid not in (os.getpid(), 0)
    outcomes = {r.path: (r.outcome, r.reason) for r in second.report.results}
    assert outcomes == {
        "harbour.txt": (Outcome.RENAMED, "renamed from port.txt"),
        "rail.md": (Outcome.ADDED, None),
    }  # unchanged files are left out
    assert runlog.read_after(data, 2) == []


def report(i: int) -> IngestReport:
    return IngestReport(results=[FileResult(f"note-{i}\u2028.txt", Outcome.ADDED, chunks=i)])


def test_trimmed_log_keeps_numbering_and_survives_a_torn_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runlog, "TRIM_AT_BYTES", 2_000)
    monkeypatch.setattr(runlog, "KEEP_BYTES", 500)
    for i in range(1, 41):
        assert runlog.append(tmp_path, report(i)) == i
    assert runlog.log_path(tmp_path).stat().st_size <= 2_000
    kept = runlog.read_all(tmp_path)
    assert kept[-1].seq == 40 and len(kept) < 40  # trimmed, numbers kept
    assert [r.seq for r in kept] == list(range(kept[0].seq, 41))
    assert kept[-1].report.results[0].path == "note-40\u2028.txt"  # not split at U+2028

    # A writer killed mid-line: the torn line is skipped, later runs are read.
    with runlog.log_path(tmp_path).open("ab") as handle:
        handle.write(b'{"seq":41,"finished_at":"2026-')
    assert runlog.read_after(tmp_path, 40) == []  # not yet a line
    assert runlog.append(tmp_path, report(42)) == 41
    (after,) = runlog.read_after(tmp_path, 40)
    assert after.seq == 41 and after.report.results[0].chunks == 42

    # The log deleted with the data folder: numbering restarts, and every run is new.
    runlog.log_path(tmp_path).unlink()
    assert runlog.append(tmp_path, report(1)) == 1
    assert [r.seq for r in runlog.read_after(tmp_path, 41)] == [1]
