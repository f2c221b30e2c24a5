"""Getting messages out: retries on flood control and network errors, and multi-part replies.

PTB v22 does not retry failed sends. ``RetryingLimiter`` plugs into PTB's rate-limiter hook
(``ApplicationBuilder.rate_limiter``), which wraps every Bot API call except getUpdates:
on ``RetryAfter`` it waits the time Telegram asks for and calls again; on a network error
or time-out it retries a few times with a short backoff. A timed-out send may have reached
Telegram, so a retry can duplicate a message — better than losing an answer.
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from collections.abc import Callable, Coroutine
from typing import Any

from telegram import InlineKeyboardMarkup, LinkPreviewOptions, Message, ReplyParameters
from telegram.constants import ParseMode
from telegram.error import BadRequest, NetworkError, RetryAfter
from telegram.ext import BaseRateLimiter
from telegram.warnings import PTBDeprecationWarning

from bot.telegram.render import split_html

log = logging.getLogger(__name__)

_NO_PREVIEW = LinkPreviewOptions(is_disabled=True)

JSONResult = bool | dict[str, Any] | list[dict[str, Any]]


class RetryingLimiter(BaseRateLimiter[None]):
    def __init__(
        self,
        *,
        max_retries: int = 3,
        max_retry_after_s: float = 60.0,
        network_backoff_s: float = 0.5,
    ) -> None:
        self.max_retries = max_retries
        self.max_retry_after_s = max_retry_after_s
        self.network_backoff_s = network_backoff_s

    async def initialize(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, JSONResult]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: None,
    ) -> JSONResult:
        attempt = 0
        while True:
            try:
                return await callback(*args, **kwargs)
            except RetryAfter as exc:
                wait = _retry_after_s(exc)
                if attempt >= self.max_retries or wait > self.max_retry_after_s:
                    raise
                log.warning("%s: flood control, retrying in %.1f s", endpoint, wait)
                await asyncio.sleep(wait)
            except BadRequest:
                raise  # the request itself is wrong: sending it again cannot help
            except NetworkError as exc:  # includes TimedOut
                if attempt >= self.max_retries:
                    raise
                wait = self.network_backoff_s * (2**attempt)
                log.warning("%s: %s, retrying in %.1f s", endpoint, type(exc).__name__, wait)
                await asyncio.sleep(wait)
            attempt += 1


def _retry_after_s(exc: RetryAfter) -> float:
    # PTB 22 gives an int (deprecated, with a warning) or a timedelta (PTB_TIMEDELTA=1).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        retry_after: object = exc.retry_after
    total = getattr(retry_after, "total_seconds", None)
    if callable(total):
        return float(total())
    return float(retry_after)  # type: ignore[arg-type]


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
