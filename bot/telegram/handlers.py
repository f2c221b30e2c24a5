"""Thin handlers for questions, the sources button and the user commands.

Access and the rate limit are checked before these run (``bot.telegram.gate``); shared
services are in ``context.bot_data`` (``bot.telegram.context.BotData``). Answering is
synchronous and CPU-bound, so it runs in a small thread pool, off the event loop: with
``concurrent_updates`` one slow answer never blocks other chats.
"""

from __future__ import annotations

import asyncio
import functools
import logging

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.constants import ChatType

from bot.formatting import esc
from bot.telegram.context import Context, ShowPassages
from bot.telegram.questions import clip_question, conversation_key, question_from_mention
from bot.telegram.render import render_answer, render_passages
from bot.telegram.sending import reply_html, typing
from bot.telegram.trend import send_trend
from bot.trend import is_trend_question

log = logging.getLogger(__name__)

EXAMPLE_QUESTIONS = (
    "What was Qingdao's Jan–Jul trade total?",
    "What did the latest briefing say about exports?",
    "Which policies were announced in August?",
)
STALE_BUTTON = "That answer is no longer available — please ask again."


# ---------------------------------------------------------------------------- questions


async def answer_question(update: Update, context: Context, question: str) -> None:
    message = update.effective_message
    if message is None:
        return
    data = context.bot_data
    question, clipped = clip_question(question, data.max_question_chars)
    if not question:
        await message.reply_text("Ask me a question about the briefings.")
        return
    if is_trend_question(question) and await send_trend(update, context, question, routed=True):
        return  # "how has … changed", "走势": the cited series and its chart
    ask = functools.partial(data.service.answer, question, conversation=conversation_key(update))
    async with typing(context.bot, message.chat_id):
        answer = await asyncio.get_running_loop().run_in_executor(data.answer_pool, ask)
    text = render_answer(answer)
    if clipped:
        text = (
            f"<i>Your question was long; I used its first {len(question)} characters.</i>\n\n{text}"
        )
    if context.chat_data is not None:
        context.chat_data.last_answer = answer
    keyboard = None
    if answer.citations:
        button = InlineKeyboardButton("Show quoted passages", callback_data=ShowPassages(answer))
        keyboard = InlineKeyboardMarkup([[button]])
    await reply_html(message, text, keyboard=keyboard)


async def on_text(update: Update, context: Context) -> None:
    """A question: any text in a private chat, text addressed to the bot in groups."""
    message = update.effective_message
    if message is None or not message.text:
        return
    question = question_from_mention(message.text, context.bot.username)
    await answer_question(update, context, question)


async def cmd_ask(update: Update, context: Context) -> None:
    message = update.effective_message
    if message is None:
        return
    question = " ".join(context.args or [])
    if not question:
        await message.reply_text("Usage: /ask <question>")
        return
    await answer_question(update, context, question)


# ---------------------------------------------------------------------------- sources


async def on_show_passages(update: Update, context: Context) -> None:
    query = update.callback_query
    if query is None or not isinstance(query.data, ShowPassages):
        return
    await query.answer()
    if isinstance(query.message, Message):
        await reply_html(query.message, render_passages(query.data.answer.citations))


async def on_stale_button(update: Update, context: Context) -> None:
    """A button whose answer PTB no longer holds (the bot restarted, or it aged out)."""
    if update.callback_query is not None:
        await update.callback_query.answer(STALE_BUTTON)


async def cmd_sources(update: Update, context: Context) -> None:
    message = update.effective_message
    if message is None:
        return
    answer = context.chat_data.last_answer if context.chat_data is not None else None
    if answer is None:
        await message.reply_text("No answer yet in this chat — ask a question first.")
        return
    await reply_html(message, render_passages(answer.citations))


# ---------------------------------------------------------------------------- commands


async def cmd_new(update: Update, context: Context) -> None:
    message = update.effective_message
    if message is None:
        return
    context.bot_data.service.forget(conversation_key(update))
    await message.reply_text("Started a new conversation: earlier questions are forgotten.")


async def cmd_help(update: Update, context: Context) -> None:
    message = update.effective_message
    if message is None:
        return
    status = await asyncio.to_thread(context.bot_data.service.index.status)
    first, last = status.date_range
    span = f" from {esc(first)} to {esc(last)}" if first and last else ""
    group_hint = (
        ""
        if message.chat.type == ChatType.PRIVATE
        else f"\nIn this group, mention @{esc(context.bot.username)}, reply to me, or use /ask."
    )
    examples = "\n".join(f"• {esc(q)}" for q in EXAMPLE_QUESTIONS)
    text = (
        "I answer questions about policy briefings and press releases, quoting the "
        "passages I rely on and citing them [1], [2].\n\n"
        f"I know <b>{status.documents}</b> documents ({status.chunks} passages){span}."
        f"{group_hint}\n\n<b>Try</b>\n{examples}\n\n"
        "/ask &lt;question&gt; — ask (in groups)\n/sources — passages of the last answer\n"
        "/trend &lt;city and figure&gt; — the figure over time, charted and cited\n"
        "/new — start a new conversation"
    )
    await reply_html(message, text)
