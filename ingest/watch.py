"""Watch the documents folder and re-run the incremental ingest when files change.

The ingest itself decides what changed (content hashes), so the watcher only needs to
notice *that* something happened, wait for the folder to go quiet (a copy of a large PDF
fires many events), and run it. Deleted files are removed by the same run.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from ingest.embeddings import IndexEmbeddings, make_embeddings
from ingest.loaders import SUPPORTED_SUFFIXES
from ingest.pipeline import IngestLocked, run_ingest
from ingest.settings import IndexSettings
from ingest.types import IngestReport

log = logging.getLogger(__name__)


class _Changes(FileSystemEventHandler):
    def __init__(self) -> None:
        self.last_event = 0.0
        self.pending = threading.Event()

    def on_any_event(self, event: FileSystemEvent) -> None:
        paths = [str(event.src_path), str(getattr(event, "dest_path", "") or "")]
        # Directory events count too: a folder moved in or out carries files with it.
        if event.is_directory or any(Path(p).suffix.lower() in SUPPORTED_SUFFIXES for p in paths):
            self.last_event = time.monotonic()
            self.pending.set()


def watch(
    settings: IndexSettings,
    on_report: Callable[[IngestReport], None],
    *,
    stop: threading.Event | None = None,
    quiet_s: float = 2.0,
    embeddings: IndexEmbeddings | None = None,
) -> None:
    """Ingest once, then again after each burst of changes, until ``stop`` is set."""
    stop = stop or threading.Event()
    embeddings = embeddings or make_embeddings(settings)  # loaded once, reused by every run
    folder = settings.documents_dir
    folder.mkdir(parents=True, exist_ok=True)
    changes = _Changes()
    observer = Observer()
    observer.schedule(changes, str(folder), recursive=True)
    observer.start()
    try:
        changes.pending.set()  # the initial run catches up with changes made while stopped
        while not stop.is_set():
            if not changes.pending.wait(timeout=0.2):
                continue
            if time.monotonic() - changes.last_event < quiet_s:
                stop.wait(0.2)
                continue
            changes.pending.clear()
            try:
                on_report(run_ingest(settings, embeddings=embeddings))
            except IngestLocked as err:  # an admin's manual run: try again shortly
                log.info("ingest busy, retrying: %s", err)
                changes.pending.set()
                stop.wait(quiet_s)
    finally:
        observer.stop()
        observer.join(timeout=5)
