"""The run log: what each ingest run changed, for whoever tells people about it.

Every ingest run that changed something or failed a file — the bot's watcher, an admin's
``/ingest``, a manual ``briefing ingest`` in another process — appends one JSON line to
``DATA_DIR/runs.jsonl`` (``run_ingest`` calls ``append`` while it still holds the ingest
lock). The bot reads the lines it has not handled yet (``read_after``) and tells admins
and followers; it remembers the last sequence number it handled, so a restart neither
resends nor loses a run, and runs made while the bot was down are told when it starts.

Why a file and not the manifest's ``runs`` table: the table keeps one summary per run for
``/status``; the log keeps each file's outcome and reason, is read without opening the
index, and is trimmed to its recent runs. Unchanged files are left out (a re-scan of
thousands of files would otherwise write thousands of lines of nothing).

Writers take ``runs.lock``; a trim rewrites the log to a temporary file and renames it
over the old one, so a reader (which takes no lock) sees either log whole. A line still
being written has no newline yet and is read next time.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ingest.types import FileResult, IngestReport, Outcome

log = logging.getLogger(__name__)

LOG_NAME = "runs.jsonl"
LOCK_NAME = "runs.lock"
TRIM_AT_BYTES = 1_000_000  # a log this long is cut down to its recent runs...
KEEP_BYTES = 250_000  # ...about this much of them (always at least the newest run)


@dataclass(frozen=True, slots=True)
class LoggedRun:
    """One ingest run as the log holds it: ``report.results`` lists no unchanged file."""

    seq: int  # 1, 2, 3, … in the order runs finished; never reused while the log exists
    finished_at: str  # ISO 8601, UTC
    pid: int  # the process that ran it (the bot's own runs carry the bot's pid)
    report: IngestReport


def log_path(data_dir: Path) -> Path:
    return data_dir / LOG_NAME


def worth_logging(report: IngestReport) -> bool:
    """A run that changed the index or failed a file (dry runs change nothing)."""
    if report.dry_run:
        return False
    return report.repaired > 0 or any(r.outcome is not Outcome.UNCHANGED for r in report.results)


def _encode(seq: int, report: IngestReport) -> str:
    record: dict[str, Any] = {
        "seq": seq,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "pid": os.getpid(),
        "seconds": round(report.seconds, 3),
        "embedded_chunks": report.embedded_chunks,
        "repaired": report.repaired,
        "results": [
            [r.path, r.outcome.value, r.reason, r.chunks]
            for r in report.results
            if r.outcome is not Outcome.UNCHANGED
        ],
    }
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"


def _decode(line: str) -> LoggedRun:
    record = json.loads(line)
    report = IngestReport(
        results=[
            FileResult(p, Outcome(o), reason, chunks) for p, o, reason, chunks in record["results"]
        ],
        seconds=float(record["seconds"]),
        embedded_chunks=int(record["embedded_chunks"]),
        repaired=int(record["repaired"]),
    )
    return LoggedRun(int(record["seq"]), str(record["finished_at"]), int(record["pid"]), report)


def _complete_lines(path: Path) -> Iterator[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return
    # Split on "\n" only: JSON keeps U+2028 and friends (str.splitlines' other breaks) as is.
    *lines, _unfinished = text.split("\n")
    for line in lines:
        if line.strip():
            yield line + "\n"


def read_all(data_dir: Path) -> list[LoggedRun]:
    """Every run the log still holds, oldest first (unreadable lines are skipped, logged)."""
    runs = []
    for line in _complete_lines(log_path(data_dir)):
        try:
            runs.append(_decode(line))
        except (ValueError, KeyError, TypeError) as err:
            log.warning("skipping an unreadable line of %s: %s", log_path(data_dir), err)
    return runs


def read_after(data_dir: Path, seq: int) -> list[LoggedRun]:
    """The runs after ``seq``, oldest first. If the log restarted (deleted with the data
    folder, so its numbers are all below ``seq``), every run it holds is new."""
    runs = read_all(data_dir)
    if runs and runs[-1].seq < seq:
        return runs
    return [r for r in runs if r.seq > seq]


def last_seq(data_dir: Path) -> int:
    """The newest run's number (0: no run logged)."""
    lines = list(_complete_lines(log_path(data_dir)))
    for line in reversed(lines):
        try:
            return _decode(line).seq
        except (ValueError, KeyError, TypeError):
            continue
    return 0


@contextmanager
def _locked(data_dir: Path) -> Iterator[None]:
    with open(data_dir / LOCK_NAME, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def append(data_dir: Path, report: IngestReport) -> int | None:
    """Log ``report`` if it is worth telling; its number, or None.

    Never raises: the run itself is done and recorded in the manifest, and a log that
    cannot be written must not turn it into a failure (the bot would miss this one run).
    """
    if not worth_logging(report):
        return None
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        with _locked(data_dir):
            seq = last_seq(data_dir) + 1
            path = log_path(data_dir)
            with open(path, "ab+") as handle:
                line = _encode(seq, report).encode("utf-8")
                end = handle.seek(0, os.SEEK_END)
                if end > 0:  # a writer killed mid-line left no newline: end that line first
                    handle.seek(end - 1)
                    if handle.read(1) != b"\n":
                        line = b"\n" + line
                handle.write(line)  # readers skip it until its newline is there
            if path.stat().st_size > TRIM_AT_BYTES:
                _trim(path)
        return seq
    except OSError as err:
        log.warning("could not write the run log %s: %s", log_path(data_dir), err)
        return None


def _trim(path: Path) -> None:
    """Keep the newest runs (about KEEP_BYTES); the rename makes the swap atomic for readers."""
    lines = list(_complete_lines(path))
    kept: list[str] = []
    size = 0
    for line in reversed(lines):
        if kept and size + len(line) > KEEP_BYTES:
            break
        kept.append(line)
        size += len(line)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(reversed(kept)), encoding="utf-8")
    os.replace(tmp, path)
