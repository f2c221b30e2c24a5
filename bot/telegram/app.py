"""The Telegram application: wiring, error handling, log redaction, polling or webhook.

``build_application`` makes a python-telegram-bot ``Application`` from ``Settings``: typed
``bot_data``/``chat_data`` (``bot.telegram.context``), one access and rate-limit gate in
handler group -1 (``bot.telegram.gate``), admin commands behind ``filters.User``, the
sources button as arbitrary callback data, and ``AIORateLimiter`` with network retries
(``bot.telegram.sending``). ``run_bot`` runs it (long polling, or a webhook when
``WEBHOOK_URL`` is set); PTB's ``run_*`` stop cleanly on SIGINT/SIGTERM/SIGABRT. A token
Telegram rejects, or a Bot API that cannot be reached, ends it with one line.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from telegram import BotCommand, BotCommandScopeChat, Update
from telegram.error import InvalidToken, NetworkError, TelegramError
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    InvalidCallbackData,
    MessageHandler,
    TypeHandler,
    filters,
)

from bot.service import AnswerService
from bot.settings import Settings
from bot.telegram import admin, handlers
from bot.telegram.access import AccessPolicy, SlidingWindowLimiter
from bot.telegram.context import CONTEXT_TYPES, Context, ShowPassages
from bot.telegram.dropfolder import DropFolder
from bot.telegram.follow import FOLLOW_COMMANDS, follow_handlers
from bot.telegram.gate import make_gate
from bot.telegram.persistence import PersistentHistory, StatePersistence
from bot.telegram.questions import QUESTION_TEXT
from bot.telegram.sending import RetryingLimiter
from bot.telegram.trend import cmd_trend
from ingest import redact
from ingest.errors import BriefingError, ConfigError, FatalError, IndexRebuilding
from ingest.state import StoreDamaged, state_path

log = logging.getLogger(__name__)

BotApp = Application[Any, Any, Any, Any, Any, Any]

ALLOWED_UPDATES = [Update.MESSAGE, Update.CALLBACK_QUERY]

USER_COMMANDS = [
    BotCommand("ask", "Ask a question about the briefings"),
    BotCommand("sources", "Quoted passages of the last answer"),
    BotCommand("new", "Start a new conversation"),
    BotCommand("trend", "A figure over time, charted and cited"),
    *FOLLOW_COMMANDS,
    BotCommand("help", "What I know and how to ask"),
]
ADMIN_COMMANDS = [
    *USER_COMMANDS,
    BotCommand("ingest", "Re-ingest the documents folder"),
    BotCommand("status", "Index status"),
    BotCommand("docs", "Recently added documents"),
]

SORRY = "Sorry — something went wrong while handling your message. Please try again."
REBUILDING = "The documents are being re-indexed right now — please ask again in a minute."
STATE_DAMAGED = (
    "The bot's saved state is damaged, so this cannot be done right now; the bot's "
    "administrator can repair it (briefing doctor), keeping every followed topic."
)


class TokenRejected(ConfigError):
    """Telegram answered 401: the bot token is wrong or was revoked."""


class TelegramUnreachable(FatalError):
    """The Bot API could not be reached, after the retries."""


# ---------------------------------------------------------------------------- logging


class OneLineStartFailures(logging.Filter):
    """PTB logs a failed start (token rejected, Bot API unreachable) with its whole traceback,
    which ``run_bot`` then reports again as one line: keep PTB's line, drop the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, InvalidToken | NetworkError):
            record.msg = f"{record.getMessage()} ({type(error).__name__})"
            record.args = None
            record.exc_info = record.exc_text = None
        return True


def protect_logs(token: str, handlers: Iterable[logging.Handler] | None = None) -> None:
    """Keep ``token`` out of the logs (httpx logs every request URL, and Bot API URLs carry
    it): mask it on every (root) handler with ``ingest.redact``, quieten httpx, and cut
    PTB's tracebacks of a failed start to one line."""
    logging.getLogger("httpx").setLevel(logging.WARNING)
    ptb = logging.getLogger("telegram.ext")
    if not any(isinstance(f, OneLineStartFailures) for f in ptb.filters):
        ptb.addFilter(OneLineStartFailures())
    redact.register(token)
    redact.install_log_filter(list(handlers) if handlers is not None else None)


# ---------------------------------------------------------------------------- errors


def polite_reply(error: BaseException | None) -> str:
    """What the user is told when handling their update failed (the one place that decides)."""
    if isinstance(error, IndexRebuilding):
        return REBUILDING
    if isinstance(error, StoreDamaged):
        return STATE_DAMAGED
    return SORRY


async def on_error(update: object, context: Context) -> None:
    """Log with context (never the token), tell the user politely; never re-raise."""
    update_id = chat_id = None
    if isinstance(update, Update):
        update_id = update.update_id
        chat_id = update.effective_chat.id if update.effective_chat else None
    error = context.error
    if isinstance(error, BriefingError):  # ours: its message says it all, in a line
        log.error("update %s (chat %s) failed: %s", update_id, chat_id, error)
    else:  # one line at the default level; where it failed at DEBUG
        log.error(
            "update %s (chat %s) failed: %s: %s", update_id, chat_id, type(error).__name__, error
        )
        log.debug("update %s failed here", update_id, exc_info=error)
    if not isinstance(update, Update) or update.effective_message is None:
        return
    try:
        await update.effective_message.reply_text(polite_reply(context.error))
    except TelegramError as err:
        log.warning("could not send the apology to chat %s: %s", chat_id, type(err).__name__)


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
        raise ConfigError("TELEGRAM_BOT_TOKEN is not set (get one from @BotFather)")
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

    ``post_init`` starts the services in ``bot_data`` (the answer service is built from
    ``settings`` off the event loop if not given) and registers the command menu.
    ``concurrent_updates=False`` handles one update at a time (the bench's baseline).
    ``answer_workers`` threads answer questions (default: one per CPU core up to 4; 16
    with the LLM answerer).
    """
    # Extractive answers are CPU-bound: one thread per core. LLM answers mostly wait on the
    # network, so more of them can be in flight at once.
    cpu_bound = settings.answerer != "llm"
    workers = answer_workers or (min(4, os.cpu_count() or 1) if cpu_bound else 16)
    tg = settings.telegram
    drop = DropFolder(settings)  # followed topics; the folder watcher when WATCH_ENABLED

    async def post_init(app: BotApp) -> None:
        answer_service = service
        if answer_service is None:
            answer_service = await asyncio.to_thread(AnswerService.from_settings, settings)
        # Follow-up context survives a restart (bot.telegram.persistence).
        answer_service.history = await asyncio.to_thread(
            PersistentHistory,
            state_path(settings.data_dir),
            settings.history_turns,
            settings.history_ttl_s,
        )
        await asyncio.to_thread(answer_service.warm_up)
        app.bot_data.start(
            service=answer_service,
            policy=AccessPolicy(
                admin_ids=tg.admin_ids,
                allowed_user_ids=tg.allowed_user_ids,
                allowed_chat_ids=tg.allowed_chat_ids,
            ),
            limiter=SlidingWindowLimiter(limit=settings.rate_limit_per_minute, window_s=60.0),
            max_question_chars=settings.max_question_chars,
            answer_workers=workers,
        )
        await _set_commands(app, sorted(tg.admin_ids))
        assert app.job_queue is not None  # python-telegram-bot[job-queue] is a dependency
        await drop.start(app.bot, answer_service, app.job_queue)

    async def post_shutdown(app: BotApp) -> None:
        await drop.stop()
        app.bot_data.stop()

    app = (
        Application.builder()
        .token(_token(settings))
        .base_url(tg.api_base_url)
        .base_file_url(file_base_url(tg.api_base_url))
        .context_types(CONTEXT_TYPES)
        .arbitrary_callback_data(True)
        .concurrent_updates(concurrent_updates)
        .rate_limiter(RetryingLimiter())
        .post_init(post_init)
        .post_shutdown(post_shutdown)
        # Chat state (last answers, the answers behind buttons) survives a restart.
        .persistence(StatePersistence(state_path(settings.data_dir)))
        .build()
    )
    only_messages = filters.UpdateType.MESSAGE
    questions = [
        CommandHandler("ask", handlers.cmd_ask, only_messages),
        CommandHandler("trend", cmd_trend, only_messages),  # a question too: rate-limited
        MessageHandler(QUESTION_TEXT, handlers.on_text),
    ]

    def is_question(update: Update) -> bool:
        return any(handler.check_update(update) for handler in questions)

    app.add_handler(TypeHandler(Update, make_gate(is_question)), group=-1)
    app.add_handlers(questions)
    app.add_handlers(follow_handlers(drop.subscriptions))
    app.add_handler(CommandHandler(["start", "help"], handlers.cmd_help, only_messages))
    app.add_handler(CommandHandler("sources", handlers.cmd_sources, only_messages))
    app.add_handler(CommandHandler("new", handlers.cmd_new, only_messages))
    admins = only_messages & filters.User(user_id=tg.admin_ids)
    app.add_handler(CommandHandler("ingest", admin.cmd_ingest, admins))
    app.add_handler(CommandHandler("status", admin.status_command(drop.problems), admins))
    app.add_handler(CommandHandler("docs", admin.cmd_docs, admins))
    app.add_handler(CommandHandler(admin.ADMIN_COMMANDS, admin.refuse, only_messages))
    app.add_handler(CallbackQueryHandler(handlers.on_show_passages, pattern=ShowPassages))
    app.add_handler(CallbackQueryHandler(handlers.on_stale_button, pattern=InvalidCallbackData))
    app.add_error_handler(on_error)
    return app


def webhook_path(webhook_url: str) -> str:
    """The local path to serve: the public URL's path (a reverse proxy forwards it as is)."""
    return urlsplit(webhook_url).path.lstrip("/")


def run_bot(settings: Settings) -> None:
    """Run until SIGINT/SIGTERM: long polling, or a webhook when ``WEBHOOK_URL`` is set.

    Raises ``TokenRejected`` (a usage error) when Telegram rejects the token and
    ``TelegramUnreachable`` (fatal) when the Bot API cannot be reached at start-up; neither
    message carries the token (PTB's own InvalidToken message does, so it is not chained).
    """
    token = _token(settings)
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    protect_logs(token)
    app = build_application(settings)
    tg, webhook = settings.telegram, settings.webhook
    try:
        if webhook.url:
            log.info("starting webhook on %s:%s", webhook.listen, webhook.port)
            app.run_webhook(
                listen=webhook.listen,
                port=webhook.port,
                url_path=webhook_path(webhook.url),
                webhook_url=webhook.url,
                secret_token=webhook.secret.get_secret_value() if webhook.secret else None,
                allowed_updates=ALLOWED_UPDATES,
            )
        else:
            log.info("starting long polling against %s", tg.api_base_url)
            app.run_polling(allowed_updates=ALLOWED_UPDATES)
    except InvalidToken:
        raise TokenRejected(
            "Telegram rejected TELEGRAM_BOT_TOKEN (401 Unauthorized): "
            "copy the token again from @BotFather"
        ) from None
    except NetworkError as err:
        raise TelegramUnreachable(
            f"the Telegram Bot API at {tg.api_base_url} could not be reached "
            f"({type(err).__name__}) after retries"
        ) from None
    except TelegramError as err:  # e.g. a proxy's HTML page where the Bot API's JSON should be
        raise TelegramUnreachable(
            f"{tg.api_base_url} did not answer as the Telegram Bot API does ({err}): "
            "check TELEGRAM_API_BASE_URL"
        ) from None
