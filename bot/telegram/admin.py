"""Admin commands: /ingest, /status, /docs (``filters.User(TELEGRAM_ADMIN_IDS)`` in app.py),
and the polite refusal everyone else gets."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from telegram import Update

from bot.formatting import esc
from bot.telegram.context import Context
from bot.telegram.sending import reply_html
from ingest.pipeline import IngestLocked
from ingest.store import IndexMismatch, IndexUnavailable

log = logging.getLogger(__name__)

MAX_FAILURES_LISTED = 30
INGEST_REFUSALS = (IngestLocked, IndexMismatch, IndexUnavailable)
ADMINS_ONLY = "Sorry, that command is for the bot's admins."
ADMIN_COMMANDS = ("ingest", "status", "docs")


async def refuse(update: Update, context: Context) -> None:
    """An admin command from someone else (the admin handlers filter on the admins' ids)."""
    if update.effective_message is not None:
        await update.effective_message.reply_text(ADMINS_ONLY)


async def cmd_ingest(update: Update, context: Context) -> None:
    message = update.effective_message
    if message is None:
        return
    await message.reply_text("Ingesting the documents folder…")
    service = context.bot_data.service
    try:
        report = await asyncio.to_thread(service.index.reingest)
    except INGEST_REFUSALS as err:  # e.g. the watcher is mid-run: say why, not "sorry"
        await message.reply_text(f"Ingest did not run: {err}")
        return
    summary = ", ".join(f"{k} {v}" for k, v in report.summary().items() if v)
    lines = [
        f"<b>Ingest finished</b> in {report.seconds:.1f} s: {esc(summary) or 'nothing to do'}.",
        f"Embedded passages: {report.embedded_chunks}.",
    ]
    failures = report.failures
    if failures:
        lines.append(f"\n<b>Failed ({len(failures)})</b>")
        for failure in failures[:MAX_FAILURES_LISTED]:
            lines.append(f"• <code>{esc(failure.path)}</code>: {esc(failure.reason or 'unknown')}")
        if len(failures) > MAX_FAILURES_LISTED:
            lines.append(f"… and {len(failures) - MAX_FAILURES_LISTED} more.")
    log.info("ingest from chat: %s", report.summary())
    await reply_html(message, "\n".join(lines))


def status_command(
    problems: Callable[[], list[str]],
) -> Callable[[Update, Context], Coroutine[Any, Any, None]]:
    """/status that also lists ``problems()`` (the folder watcher or notices stopped)."""

    async def status(update: Update, context: Context) -> None:
        await cmd_status(update, context, problems())

    return status


async def cmd_status(update: Update, context: Context, problems: Sequence[str] = ()) -> None:
    message = update.effective_message
    if message is None:
        return
    status = await asyncio.to_thread(context.bot_data.service.index.status)
    first, last = status.date_range
    last_ingest = (
        status.last_ingest.isoformat(timespec="seconds") if status.last_ingest else "never"
    )
    lines = [
        "<b>Index status</b>",
        f"Documents: {status.documents}",
        f"Passages (chunks): {status.chunks}",
        f"Dates: {esc(first or '?')} – {esc(last or '?')}",
        f"Last ingest: {esc(last_ingest)}",
        f"Embedding model: {esc(status.embedding_model)}",
        f"Answerer: {esc(status.answerer)}",
    ]
    if problems:
        lines.append("\n<b>Not working right now</b>")
        lines += [f"• {esc(problem)}" for problem in problems]
    if status.last_failures:
        lines.append(f"\n<b>Failures in the last ingest ({len(status.last_failures)})</b>")
        for failure in status.last_failures[:MAX_FAILURES_LISTED]:
            lines.append(f"• <code>{esc(failure.path)}</code>: {esc(failure.reason or 'unknown')}")
    await reply_html(message, "\n".join(lines))


async def cmd_docs(update: Update, context: Context) -> None:
    message = update.effective_message
    if message is None:
        return
    docs = await asyncio.to_thread(context.bot_data.service.index.recent_documents, 10)
    if not docs:
        await message.reply_text("The index is empty — run /ingest.")
        return
    lines = ["<b>Recent documents</b>"]
    for doc in docs:
        line = f"• {esc(doc.date or 'undated')} — <b>{esc(doc.title)}</b> ({doc.chunks} passages)"
        lines.append(line + f"\n  <code>{esc(doc.path)}</code>")
    await reply_html(message, "\n".join(lines))
