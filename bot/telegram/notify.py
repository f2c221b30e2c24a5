"""The drop folder inside the bot: the watcher thread, admin notices and follower digests.

``DropFolder`` runs ``ingest.watch.watch`` in a thread (``WATCH_ENABLED`` or
``briefing bot --watch``). After each run that changed something it

1. tells the notify chats (``TELEGRAM_NOTIFY_CHAT_IDS``, default the admins) what was
   added / updated / renamed / removed / failed, each failure with its reason; a file that
   keeps failing for the same reason is told once, not after every later run;
2. refreshes the answering side's index view (``AnswerService.warm_up``), so the next
   question finds the new documents at once;
3. matches every followed topic against the new documents (``bot.follow``) and sends each
   chat with a match one digest for the run, whatever the number of documents.

Messages go through an ``Outbox``: one task sends them in order; messages queued for the
same chat while it waits are merged into one, and one chat gets at most a message per
``chat_interval_s``. PTB's ``AIORateLimiter`` (``bot.telegram.sending``) keeps the
bot-wide and per-group rates, and retries on flood control.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from telegram import Bot, LinkPreviewOptions
from telegram.constants import ParseMode
from telegram.error import Forbidden, TelegramError

from bot.follow import DocMatch, document_ids, find_matches
from bot.formatting import esc, source_line
from bot.service import AnswerService
from bot.settings import Settings
from bot.subscriptions import SubscriptionStore
from bot.telegram.html_split import split_html
from ingest.manifest import Manifest
from ingest.types import FileResult, IngestReport, Outcome
from ingest.watch import watch

log = logging.getLogger(__name__)

MAX_LISTED = 15  # files listed per outcome in a notice; the rest are counted
CHAT_INTERVAL_S = 1.0  # Telegram: about one message per second per chat
_NO_PREVIEW = LinkPreviewOptions(is_disabled=True)
INDEX_CHANGES = frozenset({Outcome.ADDED, Outcome.UPDATED, Outcome.RENAMED, Outcome.REMOVED})
_ORDER = (Outcome.ADDED, Outcome.UPDATED, Outcome.RENAMED, Outcome.REMOVED, Outcome.FAILED)


# ---------------------------------------------------------------------------- rendering


def _line(result: FileResult) -> str:
    line = f"• <code>{esc(result.path)}</code>"
    if result.reason:
        line += (
            f": {esc(result.reason)}"
            if result.outcome is Outcome.FAILED
            else (f" ({esc(result.reason)})")
        )
    return line


def render_notice(report: IngestReport, results: Sequence[FileResult]) -> str:
    """The admins' message for one run: counts, then the files of each outcome."""
    counts = ", ".join(
        f"{sum(1 for r in results if r.outcome is o)} {o.value}"
        for o in _ORDER
        if any(r.outcome is o for r in results)
    )
    blocks = [f"<b>Documents folder</b>: {esc(counts)} in {report.seconds:.1f} s."]
    for outcome in _ORDER:
        group = [r for r in results if r.outcome is outcome]
        if not group:
            continue
        lines = [f"<b>{outcome.value.capitalize()}</b>"] + [_line(r) for r in group[:MAX_LISTED]]
        if len(group) > MAX_LISTED:
            lines.append(f"… and {len(group) - MAX_LISTED} more")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def render_digest(docs: Sequence[DocMatch]) -> str:
    """A chat's message for one run: each new document, its best sentence, the topics."""
    if len(docs) == 1:
        head = f"<b>New on “{esc(docs[0].topics[0])}”</b>"
    else:
        head = f"<b>{len(docs)} new documents on the topics this chat follows</b>"
    blocks = [head]
    for n, doc in enumerate(docs, start=1):
        lines = [source_line(doc.citation.hit, n, html=True)]
        lines.append(f"<blockquote><i>{esc(doc.citation.quote.strip())}</i> [{n}]</blockquote>")
        if len(docs) > 1 or len(doc.topics) > 1:
            lines.append("<i>Follows: " + esc(", ".join(doc.topics)) + "</i>")
        blocks.append("\n".join(lines))
    blocks.append("/following lists the topics, /unfollow &lt;n&gt; stops one.")
    return "\n\n".join(blocks)


@dataclass
class FailureMemory:
    """Failures already told: a corrupt file left in the folder is reported once."""

    told: dict[str, str] = field(default_factory=dict)

    def news(self, report: IngestReport) -> list[FileResult]:
        """The results worth telling: every change, and failures not told before."""
        out = []
        for result in report.results:
            if result.outcome is Outcome.UNCHANGED:
                self.told.pop(result.path, None)  # indexed now: a new failure is news
            elif result.outcome is Outcome.FAILED:
                if self.told.get(result.path) != result.reason:
                    self.told[result.path] = result.reason or ""
                    out.append(result)
            else:
                self.told.pop(result.path, None)
                out.append(result)
        return out


# ---------------------------------------------------------------------------- sending


class Outbox:
    """Sends queued HTML messages in order, merging what waits for the same chat."""

    def __init__(
        self,
        bot: Bot,
        *,
        chat_interval_s: float = CHAT_INTERVAL_S,
        on_blocked: Callable[[int], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bot = bot
        self.chat_interval_s = chat_interval_s
        self.on_blocked = on_blocked
        self.clock = clock
        self._pending: dict[int, list[str]] = defaultdict(list)
        self._next_at: dict[int, float] = {}
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="outbox")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def put(self, chat_id: int, text_html: str) -> None:
        self._pending[chat_id].append(text_html)
        self._idle.clear()
        self._wake.set()

    async def drained(self) -> None:
        """Wait until everything queued so far has been sent (or given up on)."""
        await self._idle.wait()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                now = self.clock()
                ready = [c for c in self._pending if self._next_at.get(c, 0.0) <= now]
                if not ready:  # every waiting chat had a message within chat_interval_s
                    await asyncio.sleep(min(self._next_at[c] for c in self._pending) - now)
                    continue
                for chat_id in ready:
                    text = "\n\n".join(self._pending.pop(chat_id))
                    await self._send(chat_id, text)
                    self._next_at[chat_id] = self.clock() + self.chat_interval_s
            self._idle.set()

    async def _send(self, chat_id: int, text_html: str) -> None:
        for part in split_html(text_html):
            try:
                await self.bot.send_message(
                    chat_id=chat_id,
                    text=part,
                    parse_mode=ParseMode.HTML,
                    link_preview_options=_NO_PREVIEW,
                )
            except Forbidden as err:  # blocked, or removed from the group
                log.info("chat %s cannot be messaged (%s)", chat_id, err)
                if self.on_blocked is not None:
                    self.on_blocked(chat_id)
                return
            except TelegramError as err:  # e.g. the admin never opened a chat with the bot
                log.warning("could not message chat %s: %s", chat_id, err)
                return


# ---------------------------------------------------------------------------- the drop folder


class DropFolder:
    """Subscriptions, the outbox, and (when enabled) the watcher thread of one bot."""

    def __init__(self, settings: Settings, *, chat_interval_s: float = CHAT_INTERVAL_S) -> None:
        self.settings = settings
        self.chat_interval_s = chat_interval_s
        self.subscriptions = SubscriptionStore(settings.data_dir / "subscriptions.sqlite")
        self.notify_chats = sorted(settings.telegram.notify_chat_ids or settings.telegram.admin_ids)
        self.failures = FailureMemory()
        self.reports: list[IngestReport] = []  # every run's report, for tests and /status
        self.outbox: Outbox | None = None
        self._service: AnswerService | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    async def start(self, bot: Bot, service: AnswerService) -> None:
        """Start the outbox, and the watcher when ``settings.watch.enabled``."""
        self._service = service
        self._loop = asyncio.get_running_loop()
        await asyncio.to_thread(self._new_documents)  # first start: note what exists
        self.outbox = Outbox(
            bot, chat_interval_s=self.chat_interval_s, on_blocked=self._forget_chat
        )
        self.outbox.start()
        if self.settings.watch.enabled:
            self._thread = threading.Thread(target=self._watch, name="watcher", daemon=True)
            self._thread.start()

    async def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 10)
        if self.outbox is not None:
            await self.outbox.stop()
        self.subscriptions.close()

    def _new_documents(self) -> list[str]:
        """Documents indexed since the last look (by any ingest), oldest first."""
        manifest = Manifest(self.settings.manifest_path)
        try:
            current = document_ids(manifest)
        finally:
            manifest.close()
        return self.subscriptions.new_documents(current)

    def _forget_chat(self, chat_id: int) -> None:
        removed = self.subscriptions.remove_chat(chat_id)
        if removed:
            log.info("chat %s blocked the bot: %d followed topics dropped", chat_id, removed)

    def _post(self, chat_id: int, text_html: str) -> None:
        """Queue a message from the watcher thread (the outbox lives on the event loop)."""
        assert self._loop is not None and self.outbox is not None
        self._loop.call_soon_threadsafe(self.outbox.put, chat_id, text_html)

    def _watch(self) -> None:
        assert self._service is not None
        watch_settings = self.settings.watch
        try:
            watch(
                self.settings,
                self.after_run,
                stop=self._stop,
                quiet_s=watch_settings.quiet_s,
                settle_s=watch_settings.settle_s,
                embeddings=self._service.embeddings,  # one model in memory, not two
            )
        except Exception as err:  # fatal for the watcher, not for the bot: say so
            log.exception("the folder watcher stopped")
            for chat_id in self.notify_chats:
                self._post(chat_id, f"<b>The folder watcher stopped</b>: {esc(str(err))}")

    def after_run(self, report: IngestReport) -> None:
        """Tell admins, refresh answering, tell followers (called in the watcher thread)."""
        self.reports.append(report)
        news = self.failures.news(report)
        if news:
            notice = render_notice(report, news)
            for chat_id in self.notify_chats:
                self._post(chat_id, notice)
        # New documents are taken from the index, not this report: a manual ingest may have
        # indexed the dropped files first, leaving this run nothing but "unchanged".
        new_docs = self._new_documents()
        if not new_docs and not any(r.outcome in INDEX_CHANGES for r in report.results):
            return  # nothing to answer from that was not there before
        service = self._service
        assert service is not None
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
        for chat_id, docs in matches.items():
            self._post(chat_id, render_digest(docs))
