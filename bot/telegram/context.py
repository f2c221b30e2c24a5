"""What handlers share, typed: ``context.bot_data`` is a ``BotData``, ``context.chat_data``
a ``ChatData`` (PTB's ``ContextTypes``, as in its contexttypesbot example).

``BotData`` holds the services; ``post_init`` starts them (``BotData.start``) and
``post_shutdown`` stops them. The "Show quoted passages" button carries a ``ShowPassages``
as its callback data (PTB's ``arbitrary_callback_data`` keeps the object in memory and sends
Telegram only an id); after a restart Telegram sends back an id PTB no longer knows, which
arrives as ``InvalidCallbackData``.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from telegram.ext import CallbackContext, ContextTypes, ExtBot

from bot.service import AnswerService
from bot.telegram.access import AccessPolicy, SlidingWindowLimiter
from bot.types import Answer


class BotData:
    """The services every handler uses; set by ``start`` in ``post_init``."""

    service: AnswerService
    policy: AccessPolicy
    limiter: SlidingWindowLimiter
    max_question_chars: int
    # Answering is CPU-bound: a few workers in question order beat many threads sharing
    # the CPU, which would finish every answer late (see bench/telegram_bench.py).
    answer_pool: ThreadPoolExecutor | None = None

    def start(
        self,
        *,
        service: AnswerService,
        policy: AccessPolicy,
        limiter: SlidingWindowLimiter,
        max_question_chars: int,
        answer_workers: int,
    ) -> None:
        self.service = service
        self.policy = policy
        self.limiter = limiter
        self.max_question_chars = max_question_chars
        self.answer_pool = ThreadPoolExecutor(answer_workers, thread_name_prefix="answer")

    def stop(self) -> None:
        if self.answer_pool is not None:
            self.answer_pool.shutdown(wait=False, cancel_futures=True)
            self.answer_pool = None


class ChatData:
    """Per chat: the last answer, for /sources."""

    def __init__(self) -> None:
        self.last_answer: Answer | None = None


@dataclass(frozen=True, slots=True)
class ShowPassages:
    """Callback data of the "Show quoted passages" button: the answer it belongs to."""

    answer: Answer


Context = CallbackContext[ExtBot[Any], dict[Any, Any], ChatData, BotData]
CONTEXT_TYPES = ContextTypes(bot_data=BotData, chat_data=ChatData)
