"""The run log: what each ingest run changed, for whoever tells people about it.

Every ingest run — the bot's watcher, an admin's ``/ingest``, a manual ``briefing ingest``
in another process — opens a row of ``run_log`` in the store of record (``ingest.state``)
when it starts (``begin``) and writes each file's outcome to ``run_results`` in the same
transaction as the manifest rows it changed (``log_results``). So whatever a run did is
logged exactly, even when it is killed: the next run, under the ingest lock, marks such a
run ``interrupted`` (``close_interrupted``), and the bot tells it like any other.

The bot reads the finished runs it has not handled yet (``read_after``) and tells admins
and followers; it remembers the last sequence number it handled, so a restart neither
resends nor loses a run. Numbers come from SQLite's AUTOINCREMENT: never reused while the
store exists. A run that changed nothing and failed nothing is dropped when it finishes
(a re-scan of thousands of unchanged files is not news); dry runs are not logged.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ingest.state import connect, state_path
from ingest.types import FileResult, IngestReport, Outcome

RUNNING, DONE, INTERRUPTED = "running", "done", "interrupted"


@dataclass(frozen=True, slots=True)
class LoggedRun:
    """One ingest run as the log holds it: ``report.results`` lists no unchanged file."""

    seq: int  # 1, 2, 3, … in the order runs started; never reused
    finished_at: str  # ISO 8601, UTC
    pid: int  # the process that ran it (the bot's own runs carry the bot's pid)
    report: IngestReport
    interrupted: bool = False  # killed before it finished; the next run closed it


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def worth_logging(report: IngestReport) -> bool:
    """A run that changed the index or failed a file (dry runs change nothing)."""
    if report.dry_run:
        return False
    return report.repaired > 0 or any(r.outcome is not Outcome.UNCHANGED for r in report.results)


@contextmanager
def _db(where: Path | sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    if isinstance(where, sqlite3.Connection):
        yield where
        return
    db = connect(state_path(where))
    try:
        yield db
    finally:
        db.close()


# -- writing (the ingest run, under the ingest lock) -----------------------------------------


def close_interrupted(db: sqlite3.Connection) -> int:
    """Mark the runs a kill left open as interrupted (they become tellable); how many."""
    cur = db.execute(
        "UPDATE run_log SET state=?, finished_at=? WHERE state=?", (INTERRUPTED, _now(), RUNNING)
    )
    return cur.rowcount


def begin(db: sqlite3.Connection) -> int:
    """Open this run's row; its sequence number."""
    cur = db.execute(
        "INSERT INTO run_log(state, started_at, pid) VALUES (?, ?, ?)",
        (RUNNING, _now(), os.getpid()),
    )
    assert cur.lastrowid is not None
    return cur.lastrowid


def log_results(db: sqlite3.Connection, seq: int, results: Sequence[FileResult]) -> None:
    """Write ``results`` (unchanged files left out) inside the caller's transaction."""
    start = db.execute("SELECT COUNT(*) FROM run_results WHERE seq=?", (seq,)).fetchone()[0]
    rows = [r for r in results if r.outcome is not Outcome.UNCHANGED]
    db.executemany(
        "INSERT INTO run_results(seq, n, path, outcome, reason, chunks) VALUES (?,?,?,?,?,?)",
        [(seq, start + i, r.path, r.outcome.value, r.reason, r.chunks) for i, r in enumerate(rows)],
    )


def finish(db: sqlite3.Connection, seq: int, report: IngestReport) -> None:
    """Close the run inside the caller's transaction (dropped if it is not worth telling)."""
    if not worth_logging(report):
        db.execute("DELETE FROM run_results WHERE seq=?", (seq,))
        db.execute("DELETE FROM run_log WHERE seq=?", (seq,))
        return
    db.execute(
        "UPDATE run_log SET state=?, finished_at=?, seconds=?, embedded_chunks=?, repaired=? "
        "WHERE seq=?",
        (DONE, _now(), round(report.seconds, 3), report.embedded_chunks, report.repaired, seq),
    )


# -- reading (the bot) -----------------------------------------------------------------------


def _runs(db: sqlite3.Connection, after: int) -> list[LoggedRun]:
    rows = db.execute(
        "SELECT seq, state, finished_at, pid, seconds, embedded_chunks, repaired FROM run_log "
        "WHERE seq > ? ORDER BY seq",
        (after,),
    ).fetchall()
    out = []
    for seq, state, finished_at, pid, seconds, embedded, repaired in rows:
        if state == RUNNING:
            break  # told once it finishes (or the next run closes it): order is kept
        results = [
            FileResult(path, Outcome(outcome), reason, chunks)
            for path, outcome, reason, chunks in db.execute(
                "SELECT path, outcome, reason, chunks FROM run_results WHERE seq=? ORDER BY n",
                (seq,),
            )
        ]
        report = IngestReport(
            results=results, seconds=float(seconds), embedded_chunks=embedded, repaired=repaired
        )
        out.append(LoggedRun(seq, str(finished_at), int(pid), report, state == INTERRUPTED))
    return out


def read_all(where: Path | sqlite3.Connection) -> list[LoggedRun]:
    """Every finished run the log holds, oldest first (``where``: DATA_DIR or the store)."""
    with _db(where) as db:
        return _runs(db, 0)


def read_after(where: Path | sqlite3.Connection, seq: int) -> list[LoggedRun]:
    """The finished runs after ``seq``, oldest first, up to the first one still running."""
    with _db(where) as db:
        return _runs(db, seq)


def last_seq(where: Path | sqlite3.Connection) -> int:
    """The newest finished run's number (0: none)."""
    with _db(where) as db:
        row = db.execute("SELECT MAX(seq) FROM run_log WHERE state != ?", (RUNNING,)).fetchone()
    return int(row[0] or 0)
