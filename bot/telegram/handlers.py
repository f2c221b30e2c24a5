"""Thin handlers for questions, the sources button and the user commands.

Answering is synchronous and CPU-bound, so it runs in a small thread pool (off the event
loop): with ``concurrent_updates`` one slow answer never blocks other chats.
Admin commands live in ``bot.telegram.admin``; shared state (service, access policy, rate
limiter) sits in ``bot_data`` as a ``BotState`` put there by ``post_init``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import secrets
from collections import OrderedDict
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    MessageEntity,
    Update,
)
from telegram.constants import ChatAction, ChatType
from telegram.ext import ContextTypes

from bot.service import AnswerService
from bot.telegram.access import (
    AccessPolicy,
    SlidingWindowLimiter,
    Verdict,
    clip_question,
    question_from_mention,
)
from bot.telegram.render import esc, render_answer, render_passages
from bot.telegram.sending import reply_html
from bot.types import Answer

log = logging.getLogger(__name__)

Context = ContextTypes.DEFAULT_TYPE
STATE_KEY = "briefing_state"
ANSWERS_KEY = "answers"  # chat_data: OrderedDict[answer id, Answer], newest last
LAST_KEY = "last_answer"  # chat_data: id of the chat's last answer
ANSWERS_PER_CHAT = 20  # enough for the buttons a person still scrolls back to
CALLBACK_PREFIX = "src:"
SHOW_PASSAGES = "Show quoted passages"
TYPING_REFRESH_S = 4.0  # Telegram shows "typing" for 5 s

EXAMPLE_QUESTIONS = (
    "What was Qingdao's Jan–Jul trade total?",
    "What did the latest briefing say about exports?",
    "Which policies were announced in August?",
)


@dataclass(slots=True)
class BotState:
    service: AnswerService
    policy: AccessPolicy
    limiter: SlidingWindowLimiter
    max_question_chars: int
    # Answering is CPU-bound: a few workers in question order beat many threads sharing
    # the CPU, which would finish every answer late (see bench/telegram_bench.py).
    answer_pool: ThreadPoolExecutor


def state_of(context: Context) -> BotState:
    state = context.bot_data[STATE_KEY]
    assert isinstance(state, BotState)
    return state


# ---------------------------------------------------------------------------- helpers


def conversation_key(update: Update) -> str:
    """Follow-up history key: per chat in private, per person within a group."""
    chat = update.effective_chat
    user = update.effective_user
    assert chat is not None
    if chat.type == ChatType.PRIVATE or user is None:
        return str(chat.id)
    return f"{chat.id}:{user.id}"


def is_private(update: Update) -> bool:
    return update.effective_chat is not None and update.effective_chat.type == ChatType.PRIVATE


async def admitted(update: Update, context: Context) -> bool:
    """Apply the allowlists; refuse politely in private chats, stay silent in groups."""
    chat = update.effective_chat
    message = update.effective_message
    if chat is None or message is None:
        return False
    user = update.effective_user
    verdict = state_of(context).policy.decide(
        user.id if user else None, chat.id, chat.type == ChatType.PRIVATE
    )
    if verdict is Verdict.REFUSE:
        await message.reply_text("Sorry, this bot only answers its registered users.")
    return verdict is Verdict.ALLOW


@contextlib.asynccontextmanager
async def typing(context: Context, chat_id: int) -> AsyncIterator[None]:
    """Keep the "typing…" indicator on while the body runs."""

    async def refresh() -> None:
        while True:
            with contextlib.suppress(Exception):  # cosmetic: never fail an answer over it
                await context.bot.send_chat_action(chat_id=chat_id, action=ChatAction.TYPING)
            await asyncio.sleep(TYPING_REFRESH_S)

    task = asyncio.create_task(refresh())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def remember_answer(chat_data: dict[Any, Any], answer: Answer) -> str:
    """Store ``answer`` for the sources button and /sources; keep the newest few per chat."""
    answers: OrderedDict[str, Answer] = chat_data.setdefault(ANSWERS_KEY, OrderedDict())
    answer_id = secrets.token_urlsafe(6)
    answers[answer_id] = answer
    while len(answers) > ANSWERS_PER_CHAT:
        answers.popitem(last=False)
    chat_data[LAST_KEY] = answer_id
    return answer_id


def recall_answer(chat_data: dict[Any, Any], answer_id: str | None) -> Answer | None:
    answers: OrderedDict[str, Answer] | None = chat_data.get(ANSWERS_KEY)
    if not answers or answer_id is None:
        return None
    return answers.get(answer_id)


def addressed_to_bot(message: Message, bot_username: str, bot_id: int) -> bool:
    """In a group: the bot is @mentioned, or the message replies to one of the bot's."""
    replied = message.reply_to_message
    if replied is not None and replied.from_user is not None and replied.from_user.id == bot_id:
        return True
    handle = "@" + bot_username.lower()
    mentions = message.parse_entities([MessageEntity.MENTION])
    return any(text.lower() == handle for text in mentions.values())


# ---------------------------------------------------------------------------- questions


async def answer_question(update: Update, context: Context, question: str) -> None:
    message = update.effective_message
    chat = update.effective_chat
    assert message is not None
    assert chat is not None
    if not await admitted(update, context):
        return
    state = state_of(context)
    user = update.effective_user
    wait = state.limiter.hit(user.id if user else chat.id)
    if wait is not None:
        await message.reply_text(
            f"You're asking quickly — please wait {max(1, round(wait))} s and ask again."
        )
        return
    question, clipped = clip_question(question, state.max_question_chars)
    if not question:
        await message.reply_text("Ask me a question about the briefings.")
        return
    async with typing(context, chat.id):
        answer = await asyncio.get_running_loop().run_in_executor(
            state.answer_pool,
            functools.partial(
                state.service.answer, question, conversation=conversation_key(update)
            ),
        )
    text = render_answer(answer)
    if clipped:
        text = (
            f"<i>Your question was long; I used its first {len(question)} characters.</i>\n\n{text}"
        )
    keyboard = None
    assert context.chat_data is not None
    answer_id = remember_answer(context.chat_data, answer)
    if answer.citations:
        keyboard = InlineKeyboardMarkup(
            [
                [
                    InlineKeyboardButton(
                        "Show quoted passages", callback_data=CALLBACK_PREFIX + answer_id
                    )
                ]
            ]
        )
    await reply_html(message, text, keyboard=keyboard)


async def on_text(update: Update, context: Context) -> None:
    """Any text in a private chat; in groups only text addressed to the bot."""
    message = update.effective_message
    if message is None or not message.text:
        return
    if is_private(update):
        await answer_question(update, context, message.text)
        return
    bot = context.bot
    if not addressed_to_bot(message, bot.username, bot.id):
        return
    await answer_question(update, context, question_from_mention(message.text, bot.username))


async def cmd_ask(update: Update, context: Context) -> None:
    message = update.effective_message
    if message is None:
        return
    question = " ".join(context.args or [])
    if not question:
        if await admitted(update, context):
            await message.reply_text("Usage: /ask <question>")
        return
    await answer_question(update, context, question)


# ---------------------------------------------------------------------------- sources


async def on_show_passages(update: Update, context: Context) -> None:
    query = update.callback_query
    assert query is not None
    answer_id = (query.data or "").removeprefix(CALLBACK_PREFIX)
    answer = recall_answer(context.chat_data or {}, answer_id)
    if answer is None or not isinstance(query.message, Message):
        # The bot restarted (answers live in memory) or the answer aged out of the store.
        await query.answer("That answer is no longer available — please ask again.")
        return
    await query.answer()
    await reply_html(query.message, render_passages(answer.citations))


async def cmd_sources(update: Update, context: Context) -> None:
    message = update.effective_message
    if message is None or not await admitted(update, context):
        return
    chat_data = context.chat_data or {}
    answer = recall_answer(chat_data, chat_data.get(LAST_KEY))
    if answer is None:
        await message.reply_text("No answer yet in this chat — ask a question first.")
        return
    await reply_html(message, render_passages(answer.citations))


# ---------------------------------------------------------------------------- commands


async def cmd_new(update: Update, context: Context) -> None:
    message = update.effective_message
    if message is None or not await admitted(update, context):
        return
    state_of(context).service.forget(conversation_key(update))
    await message.reply_text("Started a new conversation: earlier questions are forgotten.")


async def cmd_help(update: Update, context: Context) -> None:
    message = update.effective_message
    if message is None or not await admitted(update, context):
        return
    status = await asyncio.to_thread(state_of(context).service.index.status)
    first, last = status.date_range
    span = f" from {esc(first)} to {esc(last)}" if first and last else ""
    group_hint = (
        ""
        if is_private(update)
        else f"\nIn this group, mention @{esc(context.bot.username)}, reply to me, or use /ask."
    )
    examples = "\n".join(f"• {esc(q)}" for q in EXAMPLE_QUESTIONS)
    text = (
        "I answer questions about policy briefings and press releases, quoting the "
        "passages I rely on and citing them [1], [2].\n\n"
        f"I know <b>{status.documents}</b> documents ({status.chunks} passages){span}."
        f"{group_hint}\n\n<b>Try</b>\n{examples}\n\n"
        "/ask &lt;question&gt; — ask (in groups)\n/sources — passages of the last answer\n"
        "/new — start a new conversation"
    )
    await reply_html(message, text)
