"""The ingest lock: one writer per DATA_DIR, and what readers learn from it.

A flock on ``DATA_DIR/ingest.lock`` (holding the writer's pid) serialises the CLI, the
bot's /ingest and its watcher; ``ingest --rebuild`` leaves a marker while it runs.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ingest.errors import IngestLocked

REBUILD_MARKER = "rebuilding"  # in DATA_DIR while `ingest --rebuild` has not finished


def rebuild_note(data_dir: Path) -> str | None:
    """Why the index may be incomplete right now, if an ``ingest --rebuild`` is the reason."""
    if not (data_dir / REBUILD_MARKER).exists():
        return None
    if ingest_running(data_dir):
        return "the index is being rebuilt (ingest --rebuild): answers may miss documents"
    return "an `ingest --rebuild` was interrupted; run `briefing ingest` to finish the index"


def ingest_running(data_dir: Path) -> bool:
    """Whether another process holds the ingest lock (without taking it)."""
    try:
        with open(data_dir / "ingest.lock", "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            fcntl.flock(handle, fcntl.LOCK_UN)
    except BlockingIOError:
        return True
    except OSError:
        return False
    return False


@contextmanager
def ingest_lock(data_dir: Path) -> Iterator[None]:
    data_dir.mkdir(parents=True, exist_ok=True)
    lock_path = data_dir / "ingest.lock"
    with open(lock_path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise IngestLocked(
                f"another ingest is running (pid {holder}; lock {lock_path}). "
                "Wait for it to finish, then run again."
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
