"""Watch the documents folder and re-run the incremental ingest when files change.

The ingest decides what changed (content hashes), so the watcher only has to notice
*that* something happened, let a burst of events end, wait until the files it saw change
have stopped growing, and run it. Deleted, renamed and moved files are handled by the
same run. The first run on start reconciles changes made while nobody watched. A batch
of events that only added or modified files ingests just those files (``Due``); a folder
of ten thousand files then costs nothing per dropped release.

The folder is always heard: a watch follows the folder it was armed on (its inode), so a
folder replaced under its name (``rm -rf docs && mkdir docs``, an atomic ``mv`` swap) would
go deaf. Each wake-up compares the folder's identity with the armed one; on a change the
watch is re-armed on the new folder and the next run reconciles the whole of it. A folder
gone for ``FOLDER_GONE_S`` raises FolderMissing (the bot tells its admins, retries, and says
when it runs again).

Slow writers: a file is ready once its size and mtime held still for a settle time that
adapts to the writers seen (``Settling``: the longest pause observed mid-write, times
``PAUSE_MARGIN``, up to ``MAX_SETTLE_S``). A file that fails to parse while it is still
recent (modified within ``RETRY_RECENT_TIMES`` settle times) is retried quietly (``run_ingest``'s
``retry_recent_s``: the run reports it as not ready yet, and tells nobody) before a
failure is reported.

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
from ingest.pipeline import NOT_READY, IngestLocked, IngestStopped, run_ingest
from ingest.settings import IndexSettings
from ingest.types import IngestReport

log = logging.getLogger(__name__)
# watchfiles logs "N changes detected" at INFO for every batch; our runs report what matters.
logging.getLogger("watchfiles").setLevel(logging.WARNING)

QUIET_S = 0.5  # no new changed path for this long ends a burst
SETTLE_S = 1.0  # a changed file must keep its size and mtime this long before it is read
MAX_BURST_S = 10.0  # a continuous stream of new files still gets a run this often
LOCKED_RETRY_S = 1.0  # another ingest holds the lock: look again this often
# A big text file is embedded this long per run at most, then the next run goes on with it
# (its stored part kept): a file dropped meanwhile waits about this long, not the minutes
# a 50 MB file takes.
STREAM_SLICE_S = 60.0
FOLDER_GONE_S = 5.0  # the watched folder missing this long: FolderMissing
PAUSE_MARGIN = 1.5  # a file must hold still this many times the longest pause seen...
MAX_SETTLE_S = 30.0  # ...but never longer than this
RETRY_RECENT_TIMES = 4.0  # a file that fails to parse within this many settle times of
RETRY_RECENT_MIN_S = 2.0  # its last change (and at least this long) is retried quietly


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
    pause_s: float = 0.0  # the longest pause seen in a writer (it adapts the settle time)
    _seen: dict[str, tuple[Stat, float]] = field(default_factory=dict)
    _done: dict[str, float] = field(default_factory=dict)  # path -> its last change, read

    @property
    def required_s(self) -> float:
        """How long a file must hold still: ``settle_s``, or more after a slow writer."""
        return min(MAX_SETTLE_S, max(self.settle_s, PAUSE_MARGIN * self.pause_s))

    def add(self, paths: set[str]) -> None:
        now = self.clock()
        for path in paths:
            last_read = self._done.pop(path, None)
            if path not in self._seen and last_read is not None:
                # Changed again soon after it was read: its writer had paused that long.
                self._saw_pause(now - last_read)
            self._seen.setdefault(path, ((-1, -1), now))

    def again(self, path: str) -> None:
        """Wait for ``path`` to settle once more (a retry: no sign of a writer's pause)."""
        self._done.pop(path, None)
        self._seen.setdefault(path, ((-1, -1), self.clock()))

    def _saw_pause(self, gap: float) -> None:
        if gap < MAX_SETTLE_S:  # longer is a new edit, not a pause mid-write
            self.pause_s = max(self.pause_s, gap)

    def still_growing(self) -> list[str]:
        """Re-stat the changed files; those changed within the settle time (empty: run now)."""
        now = self.clock()
        required = self.required_s
        growing = []
        for path, (last, since) in list(self._seen.items()):
            try:
                st = os.stat(path)
            except OSError:  # gone again: the run will notice whatever happened
                del self._seen[path]
                continue
            current = (st.st_size, st.st_mtime_ns)
            if current != last:
                if last != (-1, -1):
                    self._saw_pause(now - since)
                self._seen[path] = (current, now)
                growing.append(path)
            elif now - since < required:
                growing.append(path)
        return growing

    def clear(self) -> None:
        """The run reads every file seen: remember when each last changed (a change soon
        after is a writer's pause), and forget the ones read long ago."""
        now = self.clock()
        self._done = {p: t for p, t in self._done.items() if now - t < MAX_SETTLE_S}
        for path, (_, since) in self._seen.items():
            self._done[path] = since
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
        raise _missing(folder)
    stop = stop or threading.Event()
    embeddings = embeddings or make_embeddings(settings)  # loaded once, reused by every run
    root = os.path.abspath(folder)
    settling = Settling(settle_s)
    due = Due()  # the first run reconciles the index with the whole folder
    first = True
    while not stop.is_set():
        # Held open while armed: the folder's inode cannot be freed and handed to a folder
        # made anew under the same name, so comparing identities is exact.
        try:
            handle = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            _wait_for_folder(folder, stop)
            continue
        try:
            armed = _identity(root)
            events = watchfiles.watch(
                Path(root),
                watch_filter=relevant(root),
                debounce=int(max_burst_s * 1000),
                step=max(10, int(quiet_s * 1000)),
                stop_event=stop,
                # Wake up regularly even without events, to re-check settling files and the
                # folder's identity.
                rust_timeout=max(50, int(min(settle_s, quiet_s) * 1000)),
                yield_on_timeout=True,
                raise_interrupt=True,
            )
            for changes in events:  # the first value arrives once the folder is being watched
                if first and on_ready is not None:
                    on_ready()
                first = False
                if _identity(root) != armed:
                    break  # replaced under its name: re-arm on the folder there now
                if changes:
                    due.add(changes)
                    settling.add(changed_files(changes))
                if not due or stop.is_set():
                    continue
                if settling.still_growing():
                    continue
                settling.clear()
                try:
                    recent_s = max(RETRY_RECENT_TIMES * settling.required_s, RETRY_RECENT_MIN_S)
                    report = run_ingest(
                        settings, due.paths(), embeddings=embeddings, retry_recent_s=recent_s,
                        stream_budget_s=STREAM_SLICE_S,
                    )  # fmt: skip
                except IngestLocked as err:  # someone else's run: ours follows it
                    log.info("ingest busy, the watcher's run is queued: %s", err)
                    stop.wait(LOCKED_RETRY_S)
                    continue
                except UsageError:
                    if folder.is_dir():
                        raise
                    break  # the folder went as the run started: as if replaced
                except IngestStopped as err:  # Chroma lost mid-run: report what was done, then stop
                    if report_stopped:
                        on_report(err.report)
                    raise
                due.clear()
                _retry_not_ready(report, root, due, settling)
                on_report(report)
            else:
                return  # stopped
        finally:
            os.close(handle)
        _wait_for_folder(folder, stop)
        log.warning("the documents folder %s was replaced: watching the new one", root)
        due.whole = True  # reconcile the index with whatever the new folder holds


def _identity(root: str) -> tuple[int, int] | None:
    try:
        st = os.stat(root)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _missing(folder: Path) -> FolderMissing:
    what = "is not a folder" if folder.exists() else "does not exist"
    return FolderMissing(
        f"documents folder {folder} {what}: create it, or give the folder to watch "
        "(`briefing watch DIR` or DOCUMENTS_DIR)"
    )


def _wait_for_folder(folder: Path, stop: threading.Event) -> None:
    """A replaced folder is usually back at once (a swap) or soon (delete and recreate)."""
    deadline = time.monotonic() + FOLDER_GONE_S
    while not folder.is_dir():
        if time.monotonic() >= deadline:
            raise _missing(folder)
        if stop.wait(0.1):
            return


def _retry_not_ready(report: IngestReport, root: str, due: Due, settling: Settling) -> None:
    """Files the run left as not ready (failed to parse, still recent) are due again."""
    for result in report.results:
        if result.reason and result.reason.startswith(NOT_READY):
            path = os.path.join(root, result.path)
            due.files.add(path)
            settling.again(path)
