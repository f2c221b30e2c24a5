"""Watch the documents folder and re-run the incremental ingest when files change.

The ingest decides what changed (content hashes), so the watcher only has to notice
*that* something happened, let a burst of events end, wait until the files it saw change
have stopped growing, and run it. Deleted, renamed and moved files are handled by the
same run. The first run on start reconciles changes made while nobody watched. A batch
of events that only added or modified files ingests just those files (``Due``); a folder
of ten thousand files then costs nothing per dropped release.

Built on ``watchfiles`` (Rust ``notify``): it batches events itself (a run starts after
``quiet_s`` without a new changed path, or ``max_burst_s`` into a continuous burst), takes
a filter and a stop event, and keeps collecting while a run is in progress, so nothing
dropped during an ingest is missed. The earlier ``watchdog`` version needed an event
handler class, a flag, a timestamp and its own polling loop for the same behaviour.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import watchfiles

from ingest.embeddings import IndexEmbeddings, make_embeddings
from ingest.errors import UsageError
from ingest.ignore import ignored_path
from ingest.loaders import SUPPORTED_SUFFIXES
from ingest.pipeline import IngestLocked, IngestStopped, run_ingest
from ingest.settings import IndexSettings
from ingest.types import IngestReport

log = logging.getLogger(__name__)
# watchfiles logs "N changes detected" at INFO for every batch; our runs report what matters.
logging.getLogger("watchfiles").setLevel(logging.WARNING)

QUIET_S = 0.5  # no new changed path for this long ends a burst
SETTLE_S = 1.0  # a changed file must keep its size and mtime this long before it is read
MAX_BURST_S = 10.0  # a continuous stream of new files still gets a run this often
LOCKED_RETRY_S = 1.0  # another ingest holds the lock: look again this often


class FolderMissing(UsageError):
    """The folder to watch does not exist (the CLI exits with status 2)."""


def relevant(root: str) -> Callable[[watchfiles.Change, str], bool]:
    """The watchfiles filter: documents and folders, not hidden or temporary files."""

    def keep(change: watchfiles.Change, path: str) -> bool:
        if ignored_path(path, root):
            return False
        if os.path.splitext(path)[1].lower() in SUPPORTED_SUFFIXES:
            return True
        # A folder moved in or out carries documents with it; a vanished path may have
        # been one. Other files (spreadsheets, images) cannot change the index.
        return not os.path.isfile(path)

    return keep


Stat = tuple[int, int]  # (size, mtime_ns)


@dataclass
class Settling:
    """Files seen changing, and since when each has kept its size and mtime.

    A PDF copied over SMB arrives in pieces; reading it before the copy ends would index
    half a document (or report it corrupt), so a run waits until every changed file has
    been still for ``settle_s``. Pure apart from ``os.stat``; the clock is injectable.
    """

    settle_s: float = SETTLE_S
    clock: Callable[[], float] = time.monotonic
    _seen: dict[str, tuple[Stat, float]] = field(default_factory=dict)

    def add(self, paths: set[str]) -> None:
        now = self.clock()
        for path in paths:
            self._seen.setdefault(path, ((-1, -1), now))

    def still_growing(self) -> list[str]:
        """Re-stat the changed files; those changed within ``settle_s`` (empty: run now)."""
        now = self.clock()
        growing = []
        for path, (last, since) in list(self._seen.items()):
            try:
                st = os.stat(path)
            except OSError:  # gone again: the run will notice whatever happened
                del self._seen[path]
                continue
            current = (st.st_size, st.st_mtime_ns)
            if current != last:
                self._seen[path] = (current, now)
                growing.append(path)
            elif now - since < self.settle_s:
                growing.append(path)
        return growing

    def clear(self) -> None:
        self._seen.clear()


def changed_files(changes: set[tuple[watchfiles.Change, str]]) -> set[str]:
    """The paths among ``changes`` that are files now (added or modified)."""
    return {
        path
        for change, path in changes
        if change is not watchfiles.Change.deleted and os.path.isfile(path)
    }


@dataclass
class Due:
    """What the next run must cover: just the files that arrived or changed, or the folder.

    A run over the whole folder stats every file and re-checks every document (at ten
    thousand files that is seconds, before the new file is even read); a dropped or edited
    file only needs itself ingested. Anything else — a deletion, a rename or move (a
    deletion plus an addition), a folder, the first run (reconciling) — takes the whole
    folder, which is what notices removals and renames.
    """

    whole: bool = True
    files: set[str] = field(default_factory=set)

    def add(self, changes: set[tuple[watchfiles.Change, str]]) -> None:
        for change, path in changes:
            if change is watchfiles.Change.deleted or not os.path.isfile(path):
                self.whole = True
            else:
                self.files.add(path)

    def __bool__(self) -> bool:
        return self.whole or bool(self.files)

    def paths(self) -> list[Path] | None:
        """The paths for ``run_ingest`` (None: the whole folder)."""
        if self.whole or not all(os.path.isfile(p) for p in self.files):
            return None  # one vanished since: the whole folder says what happened to it
        return [Path(p) for p in sorted(self.files)]

    def clear(self) -> None:
        self.whole = False
        self.files.clear()


def watch(
    settings: IndexSettings,
    on_report: Callable[[IngestReport], None],
    *,
    stop: threading.Event | None = None,
    quiet_s: float = QUIET_S,
    settle_s: float = SETTLE_S,
    max_burst_s: float = MAX_BURST_S,
    embeddings: IndexEmbeddings | None = None,
    on_ready: Callable[[], None] | None = None,
    report_stopped: bool = True,
) -> None:
    """Ingest once (reconcile), then again after each burst of changes, until ``stop``.

    ``on_report`` gets every run's report (including runs that changed nothing).
    ``on_ready`` is called once the folder is being watched. Raises FolderMissing, and the
    ingest's fatal errors (IndexMismatch, IndexUnavailable, ModelNotInstalled; after
    IngestStopped, ``on_report`` gets the partial report first unless ``report_stopped``
    is False — the run log has it either way); a lock
    held by another ingest (a manual ``briefing ingest``, the bot's /ingest) only delays
    the run until the lock is free.
    """
    folder = settings.documents_dir
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise FolderMissing(
            f"documents folder {folder} {what}: create it, or give the folder to watch "
            "(`briefing watch DIR` or DOCUMENTS_DIR)"
        )
    stop = stop or threading.Event()
    embeddings = embeddings or make_embeddings(settings)  # loaded once, reused by every run
    root = os.path.abspath(folder)
    settling = Settling(settle_s)
    due = Due()  # the first run reconciles the index with the whole folder
    events = watchfiles.watch(
        Path(root),
        watch_filter=relevant(root),
        debounce=int(max_burst_s * 1000),
        step=max(10, int(quiet_s * 1000)),
        stop_event=stop,
        # Wake up regularly even without events, to re-check settling files.
        rust_timeout=max(50, int(min(settle_s, quiet_s) * 1000)),
        yield_on_timeout=True,
        raise_interrupt=True,
    )
    first = True
    for changes in events:  # the first value arrives once the folder is being watched
        if first and on_ready is not None:
            on_ready()
        first = False
        if changes:
            due.add(changes)
            settling.add(changed_files(changes))
        if not due or stop.is_set():
            continue
        growing = settling.still_growing()
        if growing:
            log.debug("waiting for %d file(s) to stop changing: %s", len(growing), growing[:3])
            continue
        settling.clear()
        try:
            report = run_ingest(settings, due.paths(), embeddings=embeddings)
        except IngestLocked as err:  # someone else's run: ours follows it
            log.info("ingest busy, the watcher's run is queued: %s", err)
            stop.wait(LOCKED_RETRY_S)
            continue
        except IngestStopped as err:  # Chroma lost mid-run: report what was done, then stop
            if report_stopped:
                on_report(err.report)
            raise
        due.clear()
        on_report(report)
