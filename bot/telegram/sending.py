"""Getting messages out: throttling, retries, multi-part replies, the typing indicator.

``RetryingLimiter`` is PTB's ``AIORateLimiter`` (PTB's rate-limiter hook wraps every Bot API
call except getUpdates): it throttles sends to Telegram's limits (30 messages a second
overall, 20 a minute per group) and, on flood control (429 ``retry_after``), waits as
Telegram asks and tries again. On top of it, a network error or time-out (5xx included) is
retried a few times with a short backoff. A timed-out send may have reached Telegram, so
such a retry can duplicate a message — better than losing an answer. The typing indicator
goes out unthrottled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from telegram import Bot, InlineKeyboardMarkup, LinkPreviewOptions, Message, ReplyParameters
from telegram.constants import ChatAction, ParseMode
from telegram.error import BadRequest, NetworkError
from telegram.ext import AIORateLimiter

from bot.telegram.html_split import split_html

log = logging.getLogger(__name__)

_NO_PREVIEW = LinkPreviewOptions(is_disabled=True)
TYPING_REFRESH_S = 4.0  # Telegram shows "typing" for 5 s

JSONResult = bool | dict[str, Any] | list[dict[str, Any]]


class RetryingLimiter(AIORateLimiter):
    def __init__(
        self, *, max_retries: int = 3, network_backoff_s: float = 0.5, **limits: float
    ) -> None:
        super().__init__(max_retries=max_retries, **limits)
        self.network_retries = max_retries
        self.network_backoff_s = network_backoff_s

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, JSONResult]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> JSONResult:
        if endpoint == "sendChatAction":
            # "typing…" is cosmetic and its failures are ignored: it should not use up a
            # group's 20 messages a minute, nor wait behind answers.
            return await callback(*args, **kwargs)
        attempt = 0
        while True:
            try:
                return await super().process_request(
                    callback, args, kwargs, endpoint, data, rate_limit_args
                )
            except BadRequest:
                raise  # the request itself is wrong: sending it again cannot help
            except NetworkError as exc:  # includes TimedOut and 5xx answers
                if attempt >= self.network_retries:
                    raise
                wait = self.network_backoff_s * (2**attempt)
                log.warning("%s: %s, retrying in %.1f s", endpoint, type(exc).__name__, wait)
                await asyncio.sleep(wait)
            attempt += 1


async def reply_html(
    message: Message,
    text_html: str,
    *,
    keyboard: InlineKeyboardMarkup | None = None,
) -> list[Message]:
    """Send ``text_html`` as replies threaded to ``message``, split at Telegram's limit.

    The keyboard goes on the last part, under the sources it refers to.
    """
    parts = split_html(text_html)
    sent = []
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        sent.append(
            await message.get_bot().send_message(
                chat_id=message.chat_id,
                text=part,
                parse_mode=ParseMode.HTML,
                reply_parameters=ReplyParameters(
                    message_id=message.message_id, allow_sending_without_reply=True
                ),
                reply_markup=keyboard if last else None,
                link_preview_options=_NO_PREVIEW,
            )
        )
    return sent


@contextlib.asynccontextmanager
async def typing(bot: Bot, chat_id: int) -> AsyncIterator[None]:
    """Keep the "typing…" indicator on while the body runs."""

    async def refresh() -> None:
        while True:
            with contextlib.suppress(Exception):  # cosmetic: never fail an answer over it
                await bot.send_chat_action(chat_id=chat_id, action=ChatAction.TYPING)
            await asyncio.sleep(TYPING_REFRESH_S)

    task = asyncio.create_task(refresh())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
