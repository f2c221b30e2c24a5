"""/follow, /following, /unfollow: a chat follows topics; new documents on them are sent.

Any chat the bot serves may follow topics: the access gate (group -1) has already applied
the allowlists, so in a group every member the group's rules admit manages the group's
topics. Admins may also look at and prune other chats' topics:
``/following all``, ``/following <chat id>``, ``/unfollow <chat id> <n>``.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from telegram import BotCommand, Update
from telegram.ext import BaseHandler, CommandHandler, filters

from bot.formatting import esc
from bot.subscriptions import Subscription, SubscriptionError, SubscriptionStore
from bot.telegram.context import Context
from bot.telegram.sending import reply_html

FOLLOW_COMMANDS = [
    BotCommand("follow", "Be told when a new document is about a topic"),
    BotCommand("following", "Topics this chat follows"),
    BotCommand("unfollow", "Stop following topic n"),
]
USAGE = (
    "Usage: /follow &lt;topic or question&gt;, e.g. /follow Qingdao trade\n"
    "/following lists this chat's topics, /unfollow &lt;n&gt; stops one."
)

Handler = Callable[[Update, Context], Coroutine[Any, Any, None]]


def _listing(subs: list[Subscription], heading: str) -> str:
    if not subs:
        return f"{heading}: none. {USAGE}"
    lines = [f"<b>{heading}</b>"]
    lines += [f"{n}. {esc(s.topic)}" for n, s in enumerate(subs, start=1)]
    return "\n".join(lines)


def _all_chats(store: SubscriptionStore) -> str:
    subs = store.all()
    if not subs:
        return "No chat follows any topic."
    lines = ["<b>Followed topics, by chat</b>"]
    for chat_id in sorted({s.chat_id for s in subs}):
        mine = [s for s in subs if s.chat_id == chat_id]
        topics = "; ".join(f"{n}. {esc(s.topic)}" for n, s in enumerate(mine, start=1))
        lines.append(f"• <code>{chat_id}</code>: {topics}")
    lines.append("\n/unfollow &lt;chat id&gt; &lt;n&gt; removes one.")
    return "\n".join(lines)


def _int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def follow_handlers(store: SubscriptionStore) -> list[BaseHandler[Update, Context, None]]:
    """The three command handlers, bound to ``store``."""

    async def cmd_follow(update: Update, context: Context) -> None:
        message, chat, user = update.effective_message, update.effective_chat, update.effective_user
        assert message is not None and chat is not None
        try:
            sub = store.add(chat.id, " ".join(context.args or []), user.id if user else None)
        except SubscriptionError as err:
            await reply_html(message, f"{esc(str(err))}\n\n{USAGE}")
            return
        n = len(store.of_chat(chat.id))
        await reply_html(
            message,
            f"Following {n}. “{esc(sub.topic)}”. When a new document answers it, "
            "I will quote it here.\n/following lists this chat's topics, "
            f"/unfollow {n} stops this one.",
        )

    async def cmd_following(update: Update, context: Context) -> None:
        message, chat, user = update.effective_message, update.effective_chat, update.effective_user
        assert message is not None and chat is not None
        args = context.args or []
        is_admin = context.bot_data.policy.is_admin(user.id if user else None)
        if args and is_admin:
            if args[0].lower() == "all":
                await reply_html(message, _all_chats(store))
                return
            other = _int(args[0])
            if other is not None:
                heading = f"Topics chat {other} follows"
                await reply_html(message, _listing(store.of_chat(other), heading))
                return
        await reply_html(message, _listing(store.of_chat(chat.id), "Topics this chat follows"))

    async def cmd_unfollow(update: Update, context: Context) -> None:
        message, chat, user = update.effective_message, update.effective_chat, update.effective_user
        assert message is not None and chat is not None
        args = context.args or []
        target = chat.id
        if len(args) == 2 and context.bot_data.policy.is_admin(user.id if user else None):
            other = _int(args[0])
            if other is not None:
                target, args = other, args[1:]
        n = _int(args[0]) if len(args) == 1 else None
        if n is None:
            await reply_html(message, f"Which one? {USAGE}")
            return
        removed = store.remove(target, n)
        if removed is None:
            await reply_html(message, f"There is no topic {n}. /following lists them.")
            return
        where = "" if target == chat.id else f" for chat {target}"
        await reply_html(message, f"Stopped following “{esc(removed.topic)}”{where}.")

    only_messages = filters.UpdateType.MESSAGE
    return [
        CommandHandler("follow", cmd_follow, only_messages),
        CommandHandler("following", cmd_following, only_messages),
        CommandHandler("unfollow", cmd_unfollow, only_messages),
    ]
