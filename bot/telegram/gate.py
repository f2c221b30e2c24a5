"""One gate in front of every handler: the allowlists and the rate limit, checked once.

Registered as a ``TypeHandler(Update, …)`` in group -1, so it sees every update before the
handlers of group 0. It refuses politely in private chats, stays silent in groups (a bot
that answers strangers there is noise), and ends the update with ``ApplicationHandlerStop``.
Only questions count toward the rate limit; ``is_question`` says which updates are
questions (``app.py`` builds it from the question handlers themselves).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from telegram import Update
from telegram.constants import ChatType
from telegram.ext import ApplicationHandlerStop

from bot.telegram.access import Verdict
from bot.telegram.context import Context

NOT_REGISTERED = "Sorry, this bot only answers its registered users."


def rate_limited(wait_s: float) -> str:
    return f"You're asking quickly — please wait {max(1, round(wait_s))} s and ask again."


def make_gate(
    is_question: Callable[[Update], bool],
) -> Callable[[Update, Context], Coroutine[Any, Any, None]]:
    """The group -1 callback: let the update through, or stop it (with a reply if due)."""

    async def gate(update: Update, context: Context) -> None:
        chat = update.effective_chat
        user = update.effective_user
        if chat is None:
            raise ApplicationHandlerStop  # only chats are served (allowed_updates says so too)
        data = context.bot_data
        verdict = data.policy.decide(
            user.id if user else None, chat.id, chat.type == ChatType.PRIVATE
        )
        if verdict is Verdict.REFUSE:
            await _tell(update, NOT_REGISTERED)
        elif verdict is Verdict.IGNORE and update.callback_query is not None:
            await update.callback_query.answer()  # silent, but not a spinning button
        if verdict is not Verdict.ALLOW:
            raise ApplicationHandlerStop
        if is_question(update):
            wait = data.limiter.hit(user.id if user else chat.id)
            if wait is not None:
                await _tell(update, rate_limited(wait))
                raise ApplicationHandlerStop

    return gate


async def _tell(update: Update, text: str) -> None:
    if update.callback_query is not None:
        await update.callback_query.answer(text)
    elif update.effective_message is not None:
        await update.effective_message.reply_text(text)
