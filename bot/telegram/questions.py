"""From a Telegram message to a question: is it addressed to the bot, the question text
without the @mention, clipped to a length, and whose conversation it continues."""

from __future__ import annotations

from telegram import Message, MessageEntity, Update
from telegram.constants import ChatType
from telegram.ext import filters


class AddressedToBot(filters.MessageFilter):
    """In a group: the bot is @mentioned, or the message replies to one of the bot's."""

    def filter(self, message: Message) -> bool:
        bot = message.get_bot()
        replied = message.reply_to_message
        if replied is not None and replied.from_user is not None and replied.from_user.id == bot.id:
            return True
        handle = "@" + bot.username.lower()
        mentions = message.parse_entities([MessageEntity.MENTION])
        return any(text.lower() == handle for text in mentions.values())


# A question in plain text: anything in a private chat, in groups only what is addressed to
# the bot (a bot that answers every group message is noise). Commands are handled apart.
QUESTION_TEXT = (
    filters.UpdateType.MESSAGE
    & filters.TEXT
    & ~filters.COMMAND
    & (filters.ChatType.PRIVATE | AddressedToBot())
)


def conversation_key(update: Update) -> str:
    """Follow-up history key: per chat in private, per person within a group."""
    chat = update.effective_chat
    user = update.effective_user
    if chat is None:
        return str(user.id) if user else ""
    if chat.type == ChatType.PRIVATE or user is None:
        return str(chat.id)
    return f"{chat.id}:{user.id}"


def clip_question(text: str, max_chars: int) -> tuple[str, bool]:
    """The question cut to ``max_chars`` (at a word boundary when one is near); True if cut."""
    text = text.strip()
    if max_chars <= 0 or len(text) <= max_chars:
        return text, False
    cut = text[:max_chars]
    space = cut.rfind(" ")
    if space >= max_chars * 0.8:
        cut = cut[:space]
    return cut.rstrip(), True


def question_from_mention(text: str, bot_username: str) -> str:
    """The question with ``@bot_username`` removed (groups address the bot by mention)."""
    if not bot_username:
        return text.strip()
    handle = "@" + bot_username
    lowered = text.lower()
    out = []
    i = 0
    while True:
        at = lowered.find(handle.lower(), i)
        if at < 0:
            out.append(text[i:])
            break
        out.append(text[i:at])
        i = at + len(handle)
    return " ".join("".join(out).split())
