"""The one settings object of the application: index settings plus answering and Telegram.

Read from the environment and ``.env`` by entry points only (``bot.cli``). Every field is
documented; ``.env.example`` lists them all.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode

from ingest.settings import IndexSettings

IdList = Annotated[frozenset[int], NoDecode]


class Settings(IndexSettings):
    answerer: Literal["extractive", "llm"] = Field(
        "extractive",
        description="extractive: offline, quotes sentences verbatim. "
        "llm: an OpenAI-compatible chat model writes the answer (falls back to extractive).",
    )
    llm_model: str = Field("gpt-4o-mini", description="Chat model id at the endpoint.")
    llm_timeout_s: float = Field(30.0, description="Seconds before an LLM call is abandoned.")
    llm_max_tokens: int = Field(400, description="Largest LLM answer, in tokens.")
    top_k: int = Field(5, description="Passages retrieved per question.")
    history_turns: int = Field(4, description="Previous questions kept per conversation.")
    history_ttl_s: int = Field(1800, description="Seconds after which a conversation is forgotten.")

    telegram_bot_token: SecretStr | None = Field(None, description="Token from @BotFather.")
    telegram_api_base_url: str = Field(
        "https://api.telegram.org/bot",
        description="Bot API base URL (own telegram-bot-api server, or the test fake).",
    )
    telegram_admin_ids: IdList = Field(
        frozenset(), description="Comma-separated user ids allowed to run /ingest, /status, /docs."
    )
    telegram_allowed_user_ids: IdList = Field(
        frozenset(), description="Comma-separated user ids allowed to ask. Empty: everyone."
    )
    telegram_allowed_chat_ids: IdList = Field(
        frozenset(), description="Comma-separated group chat ids the bot serves. Empty: all."
    )
    rate_limit_per_minute: int = Field(12, description="Questions per user per minute.")
    max_question_chars: int = Field(1000, description="Longer questions are cut (with a note).")
    webhook_url: str | None = Field(
        None, description="Public HTTPS URL for webhook mode. Unset: long polling."
    )
    webhook_listen: str = Field("0.0.0.0", description="Webhook listen address.")
    webhook_port: int = Field(8443, description="Webhook listen port.")
    webhook_secret: SecretStr | None = Field(
        None, description="Secret token Telegram sends with each webhook request."
    )
    log_level: str = Field("INFO", description="Logging level.")

    @field_validator(
        "telegram_admin_ids", "telegram_allowed_user_ids", "telegram_allowed_chat_ids", mode="before"
    )
    @classmethod
    def _split_ids(cls, value: object) -> object:
        # Comma-separated lists read better in .env files than JSON arrays.
        if isinstance(value, str):
            return frozenset(int(part) for part in value.replace(" ", "").split(",") if part)
        return value
