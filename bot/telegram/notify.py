"""What the drop folder tells people, and the outbox that sends it.

- ``render_notice``: the admins' message for one ingest run (added / updated / renamed /
  removed / failed, each failure with its reason); ``FailureMemory`` keeps a file that
  keeps failing for the same reason from being told after every later run.
- ``render_digest``: a follower chat's message for one batch of new documents.
- ``Outbox``: one task sends queued messages in order; messages queued for the same chat
  while it waits are merged into one, and one chat gets at most a message per
  ``chat_interval_s``. PTB's ``AIORateLimiter`` (``bot.telegram.sending``) keeps the
  bot-wide and per-group rates, and retries on flood control.

``bot.telegram.dropfolder`` decides when to send what.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from telegram import Bot, LinkPreviewOptions
from telegram.constants import ParseMode
from telegram.error import Forbidden, TelegramError

from bot.follow import DocMatch
from bot.formatting import esc, source_line
from bot.telegram.html_split import split_html
from ingest.types import FileResult, IngestReport, Outcome

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


def render_notice(
    report: IngestReport, results: Sequence[FileResult], by: str | None = None
) -> str:
    """The admins' message for one run: counts (and ``by``: who ran it), then the files of
    each outcome."""
    counts = ", ".join(
        f"{sum(1 for r in results if r.outcome is o)} {o.value}"
        for o in _ORDER
        if any(r.outcome is o for r in results)
    )
    who = f" ({esc(by)})" if by else ""
    blocks = [f"<b>Documents folder</b>: {esc(counts)} in {report.seconds:.1f} s{who}."]
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
