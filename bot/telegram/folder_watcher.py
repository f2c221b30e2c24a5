"""The bot's folder watcher: ``ingest.watch.watch`` in a thread that outlives fatal errors.

A fatal error (Chroma unreachable, an index built by another model, the folder gone) does
not end the watching for good: it retries with backoff (``RETRY_FIRST_S`` doubling to
``RETRY_MAX_S``), tells the notify chats once when it stops and once when it runs again.
Every run it makes is in the run log already; ``on_run`` only tells the owner (the drop
folder's teller, ``bot.telegram.dropfolder``) to look now rather than at its next poll.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections.abc import Callable

from bot.formatting import esc
from bot.settings import Settings
from ingest.embeddings import IndexEmbeddings
from ingest.repair import chroma_damage, store_problem
from ingest.state import damaged
from ingest.types import IngestReport
from ingest.watch import watch

log = logging.getLogger(__name__)

RETRY_FIRST_S = 2.0  # the watcher's first retry after a fatal error...
RETRY_MAX_S = 60.0  # ...doubling up to this

Post = Callable[[int, str], None]  # queue a message to a chat; called from the watcher thread


def _named(settings: Settings, err: Exception) -> Exception:
    """A raw database error as the damaged store behind it, named with the command that
    heals it (a file damaged under a running ingest raises whatever SQLite raises)."""
    if not isinstance(err, sqlite3.DatabaseError):
        return err
    problem = store_problem(settings.manifest_path)
    if problem is not None:
        return damaged(settings.manifest_path, Exception(problem))
    return chroma_damage(settings, "ingesting") or err


class FolderWatcher:
    """``ingest.watch.watch`` in a daemon thread, retried with backoff after a fatal error."""

    def __init__(
        self,
        settings: Settings,
        embeddings: IndexEmbeddings,
        *,
        notify_chats: list[int],
        post: Post,
        on_run: Callable[[], None],
    ) -> None:
        self.settings = settings
        self.embeddings = embeddings  # the answering side's model: one in memory, not two
        self.notify_chats = notify_chats
        self._post = post  # thread-safe
        self._on_run = on_run  # thread-safe
        self.error: str | None = None  # set while the watcher retries after an error
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._watch, name="watcher", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 10)

    def _after_run(self, report: IngestReport) -> None:
        """The watcher ran (its report is in the run log): recovered, if it had failed; wake
        the teller at once rather than at its next look."""
        if self.error is not None:
            log.info("the folder watcher runs again")
            for chat_id in self.notify_chats:
                self._post(chat_id, "<b>The folder watcher runs again.</b>")
            self.error = None
        self._on_run()

    def _watch(self) -> None:
        """Run the watcher until the bot stops; after a fatal error, retry with backoff."""
        watch_settings = self.settings.watch
        delay = RETRY_FIRST_S
        while not self._stop.is_set():
            try:
                watch(
                    self.settings,
                    self._after_run,
                    stop=self._stop,
                    quiet_s=watch_settings.quiet_s,
                    settle_s=watch_settings.settle_s,
                    embeddings=self.embeddings,
                    report_stopped=False,  # a run Chroma cut short is no sign of recovery
                )
                return  # stopped
            except Exception as err:
                # Failing since an earlier error: back off further; after running: start over.
                delay = RETRY_FIRST_S if self.error is None else min(delay * 2, RETRY_MAX_S)
                self._failed(err, delay)
            if self._stop.wait(delay):
                return

    def _failed(self, err: Exception, delay: float) -> None:
        """Log every failure; tell the notify chats only when the watcher was running."""
        err = _named(self.settings, err)
        reason = f"{type(err).__name__}: {err}"
        if self.error is not None:
            log.warning("the folder watcher failed again (retry in %.0f s): %s", delay, reason)
            return
        log.error("the folder watcher stopped (%s); retrying in %.0f s", reason, delay)
        log.debug("where the watcher failed", exc_info=err)
        self.error = reason
        text = (
            f"<b>The folder watcher stopped</b>: {esc(str(err))}\n"
            f"It retries by itself (every {RETRY_MAX_S:.0f} s at most) and will say when it "
            "runs again; dropped files are picked up then."
        )
        for chat_id in self.notify_chats:
            self._post(chat_id, text)
