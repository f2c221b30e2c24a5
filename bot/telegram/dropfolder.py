"""The drop folder inside the bot: the watcher thread, and telling people about every run.

``DropFolder`` does two things:

1. **Watches** (``WATCH_ENABLED`` or ``briefing bot --watch``): ``ingest.watch.watch`` in a
   thread that outlives fatal errors (``bot.telegram.folder_watcher``).
2. **Tells** about every ingest run that changed something, whoever ran it — its own
   watcher, an admin's ``/ingest``, a manual ``briefing ingest`` in another process. Each
   run logs its files in the run log (``ingest.runlog``, in the store of record, written by
   ``run_ingest``); a task here reads the runs it has not told yet (woken by its own
   watcher's runs, and looking at the log every ``poll_s`` for the others) and
   - tells the notify chats (``TELEGRAM_NOTIFY_CHAT_IDS``, default the admins) what each
     run added / updated / renamed / removed / failed (``bot.telegram.notify``);
   - refreshes the answering side's index view, so the next question finds the new
     documents at once;
   - matches every followed topic against the documents new since the last digest
     (``bot.follow``) and sends each chat with a match one digest.
   Rounds run on PTB's ``JobQueue``, each scheduling the next (``poll_s``, or the backoff
   after a failure); the watcher's runs bring the next one forward. The last run told and
   the documents followers were told about are stored once the messages have gone out: a
   restart neither resends nor loses a run, and runs made while the bot was down are told
   when it starts. A notice is sent once (what was sent is remembered in memory even when
   storing it fails). A failure backs off (``BACKOFF_FIRST_S`` doubling to
   ``BACKOFF_MAX_S``) and is logged once per change of state; a damaged store stops the
   telling with one message to the notify chats, naming the file and ``briefing doctor``.

Only one bot process per ``DATA_DIR`` tells (it holds ``DATA_DIR/notifier.lock``); another
one sharing the folder stays quiet and takes over if the first one stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import time
from dataclasses import dataclass, field
from typing import IO, Any

from apscheduler.jobstores.base import JobLookupError  # type: ignore[import-untyped]
from telegram import Bot
from telegram.ext import CallbackContext, Job, JobQueue

from bot.follow import find_matches
from bot.formatting import esc
from bot.service import AnswerService
from bot.settings import Settings
from bot.subscriptions import SubscriptionStore
from bot.telegram.folder_watcher import FolderWatcher
from bot.telegram.known_documents import (
    indexed_documents,
    manifest_documents,
    reindexed_files,
    without_reindexed,
)
from bot.telegram.notify import (
    CHAT_INTERVAL_S,
    INDEX_CHANGES,
    FailureMemory,
    Outbox,
    render_digest,
    render_notice,
)
from bot.telegram.run_log import RunLogReader
from ingest import runlog
from ingest.state import StoreDamaged, state_path
from ingest.types import IngestReport, Outcome

log = logging.getLogger(__name__)

POLL_S = 1.0  # how often the run log is looked at for runs of other processes
BACKOFF_FIRST_S = 1.0  # telling failed: try again after this...
BACKOFF_MAX_S = 300.0  # ...doubling up to this
MATCH_RETRY_S = 30.0  # matching failed (e.g. Chroma down): try the followers again after
GONE = (Outcome.REMOVED, Outcome.UPDATED)  # outcomes after which a document may be gone
TOLD_KEY = "runlog_seq"  # meta key in the store of record: the last run told


@dataclass
class Batch:
    """Messages to send, and what to remember once they are sent."""

    messages: list[tuple[int, str]] = field(default_factory=list)
    seq: int = 0  # the last run told
    changed: bool = False  # some run changed the index
    seen: list[str] | None = None  # the documents followers now know about (None: unchanged)
    # Some run removed or replaced a document: the ledger forgets what is gone (else it
    # grows: a manifest rebuilt after a lost store lacks documents that are not gone).
    dropped: bool = False


class DropFolder:
    """Subscriptions, the outbox, the run-log reader and (when enabled) the watcher thread."""

    def __init__(
        self,
        settings: Settings,
        *,
        chat_interval_s: float = CHAT_INTERVAL_S,
        poll_s: float = POLL_S,
    ) -> None:
        self.settings = settings
        self.chat_interval_s = chat_interval_s
        self.poll_s = poll_s
        self.subscriptions = SubscriptionStore(state_path(settings.data_dir))
        self.run_log = RunLogReader(state_path(settings.data_dir))
        self.notify_chats = sorted(settings.telegram.notify_chat_ids or settings.telegram.admin_ids)
        self.failures = FailureMemory()
        self.outbox: Outbox | None = None
        self._service: AnswerService | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watcher: FolderWatcher | None = None  # when settings.watch.enabled
        self._jobs: JobQueue[Any] | None = None  # PTB's JobQueue runs the teller's rounds
        self._job: Job[Any] | None = None  # the next round, scheduled
        self._busy = False  # a round is running
        self._again = False  # woken during a round: the next one follows at once
        self._lock_file: IO[str] | None = None
        self._told = 0  # the last run told (valid once this process holds the notifier lock)
        self._match_again_at: float | None = None  # followers' matching failed: retry then
        self.notifier_error: str | None = None  # why telling stopped or backs off (for /status)
        self._backoff_s = 0.0  # the current wait after a failure (0: none)

    async def start(self, bot: Bot, service: AnswerService, jobs: JobQueue[Any]) -> None:
        """Start the outbox and the teller (rounds on ``jobs``, PTB's JobQueue), and the
        watcher when ``settings.watch.enabled``."""
        self._service = service
        self._loop = asyncio.get_running_loop()
        self._jobs = jobs
        self.outbox = Outbox(
            bot, chat_interval_s=self.chat_interval_s, on_blocked=self._forget_chat
        )
        self.outbox.start()
        # Before the watcher starts: on a first start ever, its first run is news.
        await asyncio.to_thread(self._take_notifier_lock)
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        self._next_round(0.0)
        if self.settings.watch.enabled:
            self._watcher = FolderWatcher(
                self.settings,
                service.embeddings,  # one model in memory, not two
                notify_chats=self.notify_chats,
                post=self._post,
                on_run=self._woken_by_watcher,
            )
            self._watcher.start()

    @property
    def watcher_error(self) -> str | None:
        """Why the folder watcher stopped, while it retries (None: it runs, or is off)."""
        return None if self._watcher is None else self._watcher.error

    async def stop(self) -> None:
        if self._watcher is not None:
            await self._watcher.stop()
        self._drop_job()
        self._jobs = None
        if self.outbox is not None:
            await self.outbox.stop()
        if self._lock_file is not None:
            self._lock_file.close()  # releases the notifier lock
            self._lock_file = None
        self.subscriptions.close()

    def problems(self) -> list[str]:
        """What does not work right now, for /status."""
        out = []
        if self.watcher_error is not None:
            out.append(f"The folder watcher stopped ({self.watcher_error}); it retries by itself.")
        if self.notifier_error is not None:
            out.append(f"Notices and digests: {self.notifier_error}")
        return out

    # -- telling about runs ---------------------------------------------------------------

    def _take_notifier_lock(self) -> bool:
        """Become the one process of this DATA_DIR that tells (False: another one does)."""
        if self._lock_file is not None:
            return True
        handle = open(self.settings.data_dir / "notifier.lock", "a")  # noqa: SIM115 (held)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        self._lock_file = handle
        told = self.subscriptions.meta(TOLD_KEY)
        if told is not None:
            self._told = int(told)
        elif self.subscriptions.ledger_started():
            # A store repaired or restored with its ledger (``briefing doctor``, the backup
            # copy): tell all its runs (a drop never told); re-indexed documents are no news.
            self._told = 0
        else:  # the first start ever: earlier runs are history, not news
            self._told = self.run_log.last_seq()
            self.subscriptions.set_meta(TOLD_KEY, str(self._told))
        if not self.subscriptions.ledger_started():  # likewise the documents indexed so far
            # An empty manifest beside a kept index (a lost store): the index's, re-added next.
            known = manifest_documents(self.settings)
            if not known and self._service is not None:
                known = indexed_documents(self._service.store)
            self.subscriptions.mark_seen(known)
        return True

    def _next_round(self, delay_s: float) -> None:
        """Schedule the teller's next round on the JobQueue (one at a time)."""
        if self._jobs is None:
            return  # stopped
        self._drop_job()
        self._job = self._jobs.run_once(self._round, when=delay_s, name="tell ingest runs")

    def _drop_job(self) -> None:
        if self._job is not None:
            with contextlib.suppress(JobLookupError):  # it fires right now: _round skips it
                self._job.schedule_removal()
        self._job = None

    async def _round(self, context: CallbackContext[Any, Any, Any, Any]) -> None:
        if context.job is not self._job:
            return  # replaced by a sooner round while it was being started
        self._job, self._busy = None, True
        try:
            delay = await self.tell_round()
        finally:
            self._busy = False
        if delay is not None:
            self._next_round(0.0 if self._again else delay)
        self._again = False

    def _wake_now(self) -> None:
        """The watcher ran: a round now rather than at the next look (on the event loop)."""
        if self._busy:
            self._again = True
        elif self._job is not None:  # None: telling stopped for good
            self._next_round(0.0)

    async def tell_round(self) -> float | None:
        """Tell the runs not told yet; the wait before the next round: ``poll_s``, the
        backoff after a failure, or None when a damaged store stopped the telling."""
        try:
            await self._tell_once()
        except StoreDamaged as err:
            self._stop_telling(err)
            return None
        except Exception as err:  # never let one bad batch end the telling
            self._failed(err)
            return self._backoff_s
        self._recovered()
        return self.poll_s

    def _failed(self, err: Exception) -> None:
        reason = f"{type(err).__name__}: {err}"
        self._backoff_s = min(max(self._backoff_s * 2, BACKOFF_FIRST_S), BACKOFF_MAX_S)
        if reason != self.notifier_error:  # once per state change, not once per try
            log.warning(
                "telling about ingest runs failed (%s); retrying, backing off up to %.0f s",
                reason,
                BACKOFF_MAX_S,
            )
            log.debug("where it failed", exc_info=err)
            self.notifier_error = reason

    def _recovered(self) -> None:
        if self.notifier_error is not None:
            log.info("telling about ingest runs works again")
        self.notifier_error = None
        self._backoff_s = 0.0

    def _stop_telling(self, err: StoreDamaged) -> None:
        """A damaged store: retrying cannot help and must not repeat a notice. One line to
        the log and one message to the notify chats; a restart after the repair resumes."""
        self.notifier_error = str(err)
        log.error("notices and digests stopped: %s", err)
        if self.outbox is not None:
            for chat_id in self.notify_chats:
                self.outbox.put(chat_id, f"<b>Notices and digests stopped</b>: {esc(str(err))}")

    async def _tell_once(self) -> None:
        if not await asyncio.to_thread(self._take_notifier_lock):
            return
        retry_due = self._match_again_at is not None and time.monotonic() >= self._match_again_at
        runs = await asyncio.to_thread(self.run_log.runs_after, self._told)
        if not runs and not retry_due:
            return  # nothing new in the log
        assert self.outbox is not None
        reindexed = await asyncio.to_thread(
            reindexed_files, self.settings, self.subscriptions, runs
        )
        notices = self.notices(runs, reindexed)  # first: they need no search
        for chat_id, text in notices.messages:
            self.outbox.put(chat_id, text)
        # Told: in memory at once, so a failure from here on never sends these again.
        self._told = notices.seq
        digests = await asyncio.to_thread(self.digests, notices.changed)
        for chat_id, text in digests.messages:
            self.outbox.put(chat_id, text)
        await self.outbox.drained()  # stored only once sent: a crash resends, never loses
        await asyncio.to_thread(self._remember, notices.seq, digests.seen, notices.dropped)

    def _remember(self, seq: int, seen: list[str] | None, dropped: bool) -> None:
        self.subscriptions.set_meta(TOLD_KEY, str(seq))
        if seen is not None:
            self.subscriptions.mark_seen(seen, forget_gone=dropped)

    def notices(self, runs: list[runlog.LoggedRun], reindexed: set[str] | None = None) -> Batch:
        """The notify chats' messages for ``runs`` (the runs after the last one told), less
        the files ``reindexed``."""
        batch = Batch(seq=runs[-1].seq if runs else self._told)
        for run in runs:
            report = without_reindexed(run.report, reindexed or set())
            news = self.failures.news(report)
            if news:
                by = None if run.pid == os.getpid() else f"ingest by another process, pid {run.pid}"
                notice = render_notice(report, news, by)
                batch.messages += [(chat_id, notice) for chat_id in self.notify_chats]
            batch.changed = batch.changed or _changed_index(run.report)
            batch.dropped = batch.dropped or any(r.outcome in GONE for r in run.report.results)
        return batch

    def digests(self, changed: bool) -> Batch:
        """Refresh answering and match followed topics, if the index changed (or the last
        matching failed); a worker thread."""
        batch = Batch(seq=self._told)
        if not changed and self._match_again_at is None:
            return batch
        # New documents come from the index, not the reports: the ledger knows which
        # documents followers were told about, whichever run (or several) indexed them.
        current = manifest_documents(self.settings)
        new_docs = self.subscriptions.unseen(current)
        service = self._service
        assert service is not None
        try:
            service.warm_up()  # the answering side picks up the new index generation now
            matches = find_matches(
                new_docs,
                self.subscriptions.all(),
                store=service.store,
                embeddings=service.embeddings,
                manifest_path=self.settings.manifest_path,
                min_evidence=self.settings.refusal_threshold,
                top_k=self.settings.top_k,
            )
        except Exception as err:  # the admins' notices went; followers wait for a retry
            log.warning("matching followed topics failed, retrying later: %s", err)
            self._match_again_at = time.monotonic() + MATCH_RETRY_S
            return batch
        self._match_again_at = None
        batch.messages = [(chat_id, render_digest(docs)) for chat_id, docs in matches.items()]
        batch.seen = current
        return batch

    def _forget_chat(self, chat_id: int) -> None:
        removed = self.subscriptions.remove_chat(chat_id)
        if removed:
            log.info("chat %s blocked the bot: %d followed topics dropped", chat_id, removed)

    # -- the watcher's side (it runs in a thread of its own) ------------------------------

    def _post(self, chat_id: int, text_html: str) -> None:
        """Queue a message from the watcher thread (the outbox lives on the event loop)."""
        assert self._loop is not None and self.outbox is not None
        self._loop.call_soon_threadsafe(self.outbox.put, chat_id, text_html)

    def _woken_by_watcher(self) -> None:
        """The watcher ran: wake the teller at once rather than at its next look."""
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._wake_now)


def _changed_index(report: IngestReport) -> bool:
    return report.repaired > 0 or any(r.outcome in INDEX_CHANGES for r in report.results)
