"""The Telegram application: wiring, error handling, log redaction, polling or webhook.

``build_application`` makes a python-telegram-bot ``Application`` from ``Settings``;
``run_bot`` runs it (long polling, or a webhook when ``webhook_url`` is set). PTB's
``run_*`` install SIGINT/SIGTERM/SIGABRT handlers that stop the bot cleanly.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

from pydantic import SecretStr
from telegram import BotCommand, BotCommandScopeChat, Update
from telegram.error import TelegramError
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    MessageHandler,
    filters,
)

from bot.service import AnswerService
from bot.settings import Settings
from bot.telegram import admin, handlers
from bot.telegram.access import AccessPolicy, SlidingWindowLimiter
from bot.telegram.handlers import STATE_KEY, BotState, Context
from bot.telegram.sending import RetryingLimiter

log = logging.getLogger(__name__)

BotApp = Application[Any, Any, Any, Any, Any, Any]

ALLOWED_UPDATES = [Update.MESSAGE, Update.CALLBACK_QUERY]

USER_COMMANDS = [
    BotCommand("ask", "Ask a question about the briefings"),
    BotCommand("sources", "Quoted passages of the last answer"),
    BotCommand("new", "Start a new conversation"),
    BotCommand("help", "What I know and how to ask"),
]
ADMIN_COMMANDS = [
    *USER_COMMANDS,
    BotCommand("ingest", "Re-ingest the documents folder"),
    BotCommand("status", "Index status"),
    BotCommand("docs", "Recently added documents"),
]

SORRY = "Sorry — something went wrong while handling your message. Please try again."


# ---------------------------------------------------------------------------- logging


class RedactSecrets(logging.Filter):
    """Replaces secrets (the bot token) in log messages and tracebacks with ``<redacted>``.

    httpx logs every request URL, and Bot API URLs contain the token.
    """

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def _redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "<redacted>")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if any(secret in message for secret in self.secrets):
            record.msg = self._redact(message)
            record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._redact(record.exc_text)
        return True


def protect_logs(token: str, handlers: Iterable[logging.Handler] | None = None) -> None:
    """Keep ``token`` out of the logs: redact it on every (root) handler, quieten httpx."""
    logging.getLogger("httpx").setLevel(logging.WARNING)
    redact = RedactSecrets([token])
    for handler in handlers if handlers is not None else logging.getLogger().handlers:
        if not any(isinstance(f, RedactSecrets) for f in handler.filters):
            handler.addFilter(redact)


# ---------------------------------------------------------------------------- errors


async def on_error(update: object, context: Context) -> None:
    """Log with context (never the token), tell the user politely; never re-raise."""
    update_id = chat_id = None
    if isinstance(update, Update):
        update_id = update.update_id
        chat_id = update.effective_chat.id if update.effective_chat else None
    log.error(
        "update %s (chat %s) failed: %s",
        update_id,
        chat_id,
        type(context.error).__name__,
        exc_info=context.error,
    )
    if not isinstance(update, Update) or update.effective_message is None:
        return
    try:
        await update.effective_message.reply_text(SORRY)
    except TelegramError as err:
        log.warning("could not send the apology to chat %s: %s", chat_id, err)


# ---------------------------------------------------------------------------- application


def file_base_url(api_base_url: str) -> str:
    """``…/bot`` → ``…/file/bot`` (the Bot API's file download base)."""
    base = api_base_url.rstrip("/")
    if base.endswith("/bot"):
        return base[: -len("bot")] + "file/bot"
    return base + "/file/bot"


def _token(settings: Settings) -> str:
    token = settings.telegram.bot_token
    if token is None or not token.get_secret_value():
        raise ValueError("TELEGRAM_BOT_TOKEN is not set")
    return token.get_secret_value()


async def _set_commands(app: BotApp, admins: Iterable[int]) -> None:
    await app.bot.set_my_commands(USER_COMMANDS)
    for admin_id in admins:
        try:  # fails until the admin has opened a chat with the bot
            await app.bot.set_my_commands(ADMIN_COMMANDS, scope=BotCommandScopeChat(admin_id))
        except TelegramError as err:
            log.info("admin command menu for %s not set: %s", admin_id, err)


def build_application(
    settings: Settings,
    service: AnswerService | None = None,
    *,
    concurrent_updates: bool | int = True,
    answer_workers: int | None = None,
) -> BotApp:
    """The bot, ready for ``run_polling``/``run_webhook`` or ``initialize``/``start``.

    ``post_init`` puts the service (built from ``settings`` if not given, off the event
    loop) into ``bot_data`` and registers the command menu. ``concurrent_updates=False``
    handles one update at a time (the bench's baseline). ``answer_workers`` threads answer
    questions (default: one per CPU core up to 4; 16 with the LLM answerer).
    """
    # Extractive answers are CPU-bound: one thread per core. LLM answers mostly wait on the
    # network, so more of them can be in flight at once.
    cpu_bound = settings.answerer != "llm"
    workers = answer_workers or (min(4, os.cpu_count() or 1) if cpu_bound else 16)
    token = _token(settings)

    async def post_init(app: BotApp) -> None:
        answer_service = service
        if answer_service is None:
            answer_service = await asyncio.to_thread(AnswerService.from_settings, settings)
        await asyncio.to_thread(answer_service.warm_up)
        app.bot_data[STATE_KEY] = BotState(
            service=answer_service,
            policy=AccessPolicy(
                admin_ids=settings.telegram.admin_ids,
                allowed_user_ids=settings.telegram.allowed_user_ids,
                allowed_chat_ids=settings.telegram.allowed_chat_ids,
            ),
            limiter=SlidingWindowLimiter(limit=settings.rate_limit_per_minute, window_s=60.0),
            max_question_chars=settings.max_question_chars,
            answer_pool=ThreadPoolExecutor(workers, thread_name_prefix="answer"),
        )
        await _set_commands(app, sorted(settings.telegram.admin_ids))

    async def post_shutdown(app: BotApp) -> None:
        state = app.bot_data.get(STATE_KEY)
        if isinstance(state, BotState):
            state.answer_pool.shutdown(wait=False, cancel_futures=True)

    app = (
        Application.builder()
        .token(token)
        .base_url(settings.telegram.api_base_url)
        .base_file_url(file_base_url(settings.telegram.api_base_url))
        .concurrent_updates(concurrent_updates)
        .rate_limiter(RetryingLimiter())
        .post_init(post_init)
        .post_shutdown(post_shutdown)
        .build()
    )
    only_messages = filters.UpdateType.MESSAGE
    app.add_handler(CommandHandler(["start", "help"], handlers.cmd_help, only_messages))
    app.add_handler(CommandHandler("ask", handlers.cmd_ask, only_messages))
    app.add_handler(CommandHandler("sources", handlers.cmd_sources, only_messages))
    app.add_handler(CommandHandler("new", handlers.cmd_new, only_messages))
    app.add_handler(CommandHandler("ingest", admin.cmd_ingest, only_messages))
    app.add_handler(CommandHandler("status", admin.cmd_status, only_messages))
    app.add_handler(CommandHandler("docs", admin.cmd_docs, only_messages))
    app.add_handler(
        MessageHandler(only_messages & filters.TEXT & ~filters.COMMAND, handlers.on_text)
    )
    app.add_handler(
        CallbackQueryHandler(handlers.on_show_passages, pattern=f"^{handlers.CALLBACK_PREFIX}")
    )
    app.add_error_handler(on_error)
    return app


def webhook_path(webhook_url: str) -> str:
    """The local path to serve: the public URL's path (a reverse proxy forwards it as is)."""
    return urlsplit(webhook_url).path.lstrip("/")


def run_bot(settings: Settings) -> None:
    """Run until SIGINT/SIGTERM: long polling, or a webhook when ``webhook_url`` is set."""
    token = _token(settings)
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    protect_logs(token)
    app = build_application(settings)
    if settings.webhook.url:
        secret: SecretStr | None = settings.webhook.secret
        log.info("starting webhook on %s:%s", settings.webhook.listen, settings.webhook.port)
        app.run_webhook(
            listen=settings.webhook.listen,
            port=settings.webhook.port,
            url_path=webhook_path(settings.webhook.url),
            webhook_url=settings.webhook.url,
            secret_token=secret.get_secret_value() if secret else None,
            allowed_updates=ALLOWED_UPDATES,
        )
    else:
        log.info("starting long polling against %s", settings.telegram.api_base_url)
        app.run_polling(allowed_updates=ALLOWED_UPDATES)
