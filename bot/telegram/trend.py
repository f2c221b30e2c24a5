"""/trend TOPIC, and trend-shaped questions: the chart as a photo, then its numbered sources.

The series is read and drawn in the answer pool (both are CPU work: BM25 postings, the
sentences of the releases, matplotlib). The photo's caption names each series; the
sources message that follows lists every point's release and verbatim sentence under the
number the chart shows. With fewer than two comparable points there is no chart: the
reply says so plainly and quotes the one figure found, if any.
"""

from __future__ import annotations

import asyncio
import logging

from telegram import ReplyParameters, Update
from telegram.constants import ParseMode

from bot.chart import render_png
from bot.service import AnswerService
from bot.telegram.context import Context
from bot.telegram.questions import clip_question
from bot.telegram.sending import reply_html, typing
from bot.trend import TopicError, Trend, find_trend
from bot.trend_render import caption_html, sources_html

log = logging.getLogger(__name__)

USAGE = (
    "Usage: /trend <city or company and a figure>, e.g. /trend Qingdao foreign trade "
    "or /trend 青岛进出口总额"
)


def trend_with_chart(service: AnswerService, topic: str) -> tuple[Trend, bytes | None]:
    """The trend of ``topic`` over the service's index, and its chart when it has a series."""
    trend = find_trend(service.retriever.lexical_index(), topic)
    return trend, render_png(trend) if trend.charted else None


async def send_trend(update: Update, context: Context, topic: str, *, routed: bool) -> bool:
    """Reply with the trend of ``topic``. A routed question (not /trend) whose topic names no
    entity or measure, or no figure of it, is left to the answerer: False."""
    message = update.effective_message
    if message is None:
        return True
    data = context.bot_data
    topic, _clipped = clip_question(topic, data.max_question_chars)
    loop = asyncio.get_running_loop()
    try:
        async with typing(context.bot, message.chat_id):
            trend, png = await loop.run_in_executor(
                data.answer_pool, trend_with_chart, data.service, topic
            )
    except TopicError as err:
        if routed:
            return False
        await message.reply_text(f"{err}\n\n{USAGE}")
        return True
    if routed and not trend.series:
        return False  # "what has changed in the port's policy?": a question, not a series
    if png is not None:
        await message.get_bot().send_photo(
            chat_id=message.chat_id,
            photo=png,
            filename="trend.png",
            caption=caption_html(trend),
            parse_mode=ParseMode.HTML,
            reply_parameters=ReplyParameters(
                message_id=message.message_id, allow_sending_without_reply=True
            ),
        )
    await reply_html(message, sources_html(trend))
    return True


async def cmd_trend(update: Update, context: Context) -> None:
    message = update.effective_message
    if message is None:
        return
    topic = " ".join(context.args or [])
    if not topic.strip():
        await message.reply_text(USAGE)
        return
    await send_trend(update, context, topic, routed=False)
