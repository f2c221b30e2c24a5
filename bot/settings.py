"""The one settings object of the application: index settings plus answering and Telegram.

Read from the environment and ``.env`` by entry points only (``bot.cli`` via
``load_settings``). Every field is documented; ``.env.example`` lists them all.

Shape: flat fields for the index and answering, and sub-models (``SUB_MODELS``) whose names
are their variables' prefixes, so the documented names stay as they were:
``settings.telegram`` (``TELEGRAM_BOT_TOKEN`` → ``telegram.bot_token``), ``settings.webhook``
(``WEBHOOK_URL`` → ``webhook.url``) and ``settings.watch`` (``WATCH_ENABLED``).

Unknown variables (a typo must not be silently ignored):

* ``TELEGRAM_*``, ``WEBHOOK_*`` and ``WATCH_*`` (the sub-models' prefixes) belong to the
  bot: an unknown one is refused, in ``.env`` and in the environment alike.
* In ``.env`` (this project's file), an unknown name that starts with the first word of any
  setting (``CHUNK_``, ``TOP_``, ``OPENAI_``, ``LLM_`` …) is refused. ``CHROMA_*`` is shared
  with Chroma, which reads its own ``CHROMA_*`` from ``.env`` too: there only near misses of
  our names (``CHROMA_HOTS``) are refused.
* The process environment is shared with every other program, so there an unknown name
  that is a near miss of a setting's name gets a warning, not a refusal.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import annotated_types
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from ingest.errors import ConfigError
from ingest.settings import IndexSettings

log = logging.getLogger(__name__)

IdList = Annotated[frozenset[int], NoDecode]


def _split_ids(value: object) -> object:
    # Comma-separated lists read better in .env files than JSON arrays.
    if not isinstance(value, str):
        return value
    parts = [part for part in value.replace(" ", "").split(",") if part]
    bad = [part for part in parts if not part.lstrip("-").isdigit()]
    if bad:
        raise ValueError(
            "expects comma-separated numeric ids (not @usernames; @userinfobot tells yours)"
        )
    return frozenset(int(part) for part in parts)


class TelegramSettings(BaseModel):
    """``TELEGRAM_*``: the bot's token, Bot API server and who may use the bot."""

    model_config = ConfigDict(extra="forbid")

    bot_token: SecretStr | None = Field(None, description="Token from @BotFather.")
    api_base_url: str = Field(
        "https://api.telegram.org/bot",
        description="Bot API base URL (own telegram-bot-api server, or the test fake).",
    )
    admin_ids: IdList = Field(
        frozenset(), description="Comma-separated user ids allowed to run /ingest, /status, /docs."
    )
    allowed_user_ids: IdList = Field(
        frozenset(), description="Comma-separated user ids allowed to ask. Empty: everyone."
    )
    allowed_chat_ids: IdList = Field(
        frozenset(), description="Comma-separated group chat ids the bot serves. Empty: all."
    )
    notify_chat_ids: IdList = Field(
        frozenset(),
        description="Comma-separated chat ids told what each folder-watcher run added, "
        "updated, removed or failed. Empty: the admins (TELEGRAM_ADMIN_IDS).",
    )

    @field_validator(
        "admin_ids", "allowed_user_ids", "allowed_chat_ids", "notify_chat_ids", mode="before"
    )
    @classmethod
    def _ids(cls, value: object) -> object:
        return _split_ids(value)


class WebhookSettings(BaseModel):
    """``WEBHOOK_*``: webhook mode instead of long polling."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(
        None, description="Public HTTPS URL for webhook mode. Unset: long polling."
    )
    listen: str = Field("0.0.0.0", description="Webhook listen address.")
    port: int = Field(8443, ge=1, le=65535, description="Webhook listen port.")
    secret: SecretStr | None = Field(
        None, description="Secret token Telegram sends with each webhook request."
    )


class WatchSettings(BaseModel):
    """``WATCH_*``: the folder watcher inside the bot (``briefing watch`` has options)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(
        False, description="Watch DOCUMENTS_DIR inside `briefing bot` (as `briefing bot --watch`)."
    )
    quiet_s: float = Field(
        0.5,
        gt=0,
        le=3600,
        description="Seconds without a new changed file that end a burst of drops.",
    )
    settle_s: float = Field(
        1.0,
        gt=0,
        le=3600,
        description="Seconds a changed file must keep its size and mtime to be read.",
    )


SUB_MODELS: dict[str, type[BaseModel]] = {
    "telegram": TelegramSettings,
    "webhook": WebhookSettings,
    "watch": WatchSettings,
}
# Chroma reads its own CHROMA_* variables (also from .env): only near misses of ours are typos.
SHARED_PREFIXES = frozenset({"chroma"})


class Settings(IndexSettings):
    model_config = SettingsConfigDict(  # merged with IndexSettings' (.env, empty = unset)
        extra="forbid",
        env_nested_delimiter="_",
        env_nested_max_split=1,  # TELEGRAM_BOT_TOKEN → telegram.bot_token, not telegram.bot.token
    )

    answerer: Literal["extractive", "llm"] = Field(
        "extractive",
        description="extractive: offline, quotes sentences verbatim. "
        "llm: an OpenAI-compatible chat model writes the answer (falls back to extractive).",
    )
    llm_model: str = Field("gpt-4o-mini", description="Chat model id at the endpoint.")
    llm_timeout_s: float = Field(
        30.0, gt=0, le=3600, description="Seconds before an LLM call is abandoned."
    )
    llm_max_tokens: int = Field(400, ge=1, le=32768, description="Largest LLM answer, in tokens.")
    top_k: int = Field(5, ge=1, le=100, description="Passages retrieved per question.")
    refusal_threshold: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="Answer probability (0-1) below which the extractive answerer says the "
        "documents do not hold the answer, for every language. Empty: the reader's threshold "
        "calibrated per language (bot/models/reader.json). Higher: fewer wrong answers, more "
        "refusals.",
    )
    history_turns: int = Field(
        4, ge=0, le=100, description="Previous questions kept per conversation."
    )
    history_ttl_s: int = Field(
        1800, ge=1, le=604_800, description="Seconds after which a conversation is forgotten."
    )
    rate_limit_per_minute: int = Field(
        12, ge=0, le=10_000, description="Questions per user per minute in Telegram. 0: no limit."
    )
    max_question_chars: int = Field(
        1000, ge=10, le=100_000, description="Longer questions are cut (with a note)."
    )
    log_level: str = Field("INFO", description="Logging level.")

    telegram: TelegramSettings = Field(
        default_factory=TelegramSettings, description="The Telegram bot (TELEGRAM_*)."
    )
    webhook: WebhookSettings = Field(
        default_factory=WebhookSettings, description="Webhook mode (WEBHOOK_*)."
    )
    watch: WatchSettings = Field(
        default_factory=WatchSettings, description="The folder watcher in the bot (WATCH_*)."
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            _WarnOnNearMisses(env_settings),
            _RefuseUnknownInDotEnv(dotenv_settings),
            file_secret_settings,
        )


# ---------------------------------------------------------------------------- variable names


def _leaf_fields() -> Iterator[tuple[str, FieldInfo]]:
    """(environment variable name, field) for every setting, sub-models flattened."""
    for name, field in Settings.model_fields.items():
        sub = SUB_MODELS.get(name)
        if sub is None:
            yield name.upper(), field
        else:
            for sub_name, sub_field in sub.model_fields.items():
                yield f"{name}_{sub_name}".upper(), sub_field


def env_names() -> list[str]:
    """Every environment variable the settings read, in ``.env.example`` order."""
    return [name for name, _ in _leaf_fields()]


def _prefixes() -> frozenset[str]:
    return frozenset(name.split("_")[0].lower() for name in env_names())


def _near_miss(name: str) -> str | None:
    close = difflib.get_close_matches(name.upper(), env_names(), n=1, cutoff=0.85)
    return close[0] if close else None


def _unknown(keys: Mapping[str, Any]) -> list[str]:
    known = {n.lower() for n in env_names()}
    return [k for k in keys if k.lower() not in known and k.lower() not in SUB_MODELS]


class _Wrapped(PydanticBaseSettingsSource):
    """A settings source that reads through ``inner`` and adjusts what it returns."""

    def __init__(self, inner: PydanticBaseSettingsSource) -> None:
        super().__init__(inner.settings_cls)
        self.inner = inner

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self.inner.get_field_value(field, field_name)


class _RefuseUnknownInDotEnv(_Wrapped):
    """``.env`` minus foreign names (``COMPOSE_*``…); names with our prefixes stay, so that
    ``extra="forbid"`` refuses a typo such as ``CHUNK_TOKEN``."""

    def __call__(self) -> dict[str, Any]:
        data = self.inner()
        prefixes = _prefixes()
        for key in _unknown(data):
            prefix = key.split("_")[0].lower()
            ours = prefix in prefixes and prefix not in SHARED_PREFIXES
            if not ours and _near_miss(key) is None:
                del data[key]
        return data


class _WarnOnNearMisses(_Wrapped):
    """The environment as read, plus a warning for each unknown near miss of a setting."""

    def __call__(self) -> dict[str, Any]:
        env_vars: Mapping[str, str | None] = getattr(self.inner, "env_vars", {})
        for key in _unknown(env_vars):
            if key.split("_")[0].lower() in SUB_MODELS:
                continue  # refused by the sub-model itself
            if (guess := _near_miss(key)) is not None:
                log.warning("%s is not a setting; did you mean %s?", key.upper(), guess)
        return self.inner()


# ---------------------------------------------------------------------------- loading


def _variable(loc: tuple[int | str, ...]) -> str:
    return "_".join(str(part) for part in loc).upper()


_BOUND_TYPES = frozenset(
    {"greater_than", "greater_than_equal", "less_than", "less_than_equal", "finite_number"}
)


def value_range(field: FieldInfo) -> str | None:
    """The range a numeric setting accepts, in words ("from 1 to 65535"), from its bounds."""
    low = high = None
    for bound in field.metadata:
        if isinstance(bound, annotated_types.Ge):
            low = f"from {bound.ge}"
        elif isinstance(bound, annotated_types.Gt):
            low = f"above {bound.gt}"
        elif isinstance(bound, annotated_types.Le):
            high = f"to {bound.le}" if low and low.startswith("from") else f"at most {bound.le}"
        elif isinstance(bound, annotated_types.Lt):
            high = f"below {bound.lt}"
    if low and high and low.startswith("above") and high.startswith("at most"):
        return f"{low} and {high}"
    return " ".join(part for part in (low, high) if part) or None


def describe_error(err: ValidationError) -> str:
    """One line naming each bad variable and what it expects (values of secrets not shown);
    a number out of range gets the whole range ("MAX_FILE_MB: must be above 0 and at most
    100000 (got -1)")."""
    fields = dict(_leaf_fields())
    secrets = {n for n, f in fields.items() if f.annotation in (SecretStr, SecretStr | None)}
    problems = []
    for error in err.errors():
        name = _variable(error["loc"])
        if not name:  # a check across settings: its message names them
            problems.append(str(error["msg"]).removeprefix("Value error, "))
            continue
        field = fields.get(name)
        bounds = value_range(field) if field is not None else None
        if error["type"] in _BOUND_TYPES and bounds:
            problems.append(f"{name}: must be {bounds} (got {error.get('input')!r})")
            continue
        if error["type"] == "extra_forbidden":
            guess = _near_miss(name)
            hint = f"; did you mean {guess}?" if guess else ""
            problems.append(f"{name} is not a setting{hint} (see .env.example)")
            continue
        message = str(error["msg"]).removeprefix("Value error, ")
        shown = "" if name in secrets else f" (got {error.get('input')!r})"
        problems.append(f"{name}: {message}{shown}")
    return "; ".join(problems)


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment and ``.env``; a bad or unknown variable is a ConfigError."""
    try:
        return Settings(**overrides)
    except ValidationError as err:
        raise ConfigError(describe_error(err)) from None


# ---------------------------------------------------------------------------- .env text


def _env_value(value: object) -> str:
    if isinstance(value, frozenset):
        return ",".join(str(v) for v in sorted(value))
    return str(value)


def env_example() -> str:
    """The text of ``.env.example``: every variable, its description and default.

    Optional fields without a default are written commented out, so copying the file
    changes nothing until a line is edited.
    """
    lines = [
        "# briefing-bot settings: every field of bot/settings.py and ingest/settings.py.",
        "# Copy to .env and edit; environment variables override .env.",
        "# Generated by `briefing config --example`; a test keeps it in step with the code.",
        f"# Unknown {'/'.join(f'{name.upper()}_*' for name in SUB_MODELS)} names, and unknown "
        "names here that start like a",
        "# setting (CHUNK_, TOP_, ...), are refused: a typo is never silently ignored.",
        "",
    ]
    for name, field in _leaf_fields():
        bounds = value_range(field)
        lines.append(f"# {field.description}" + (f" Range: {bounds}." if bounds else ""))
        if field.default is None or field.default_factory is not None:
            # Optional, or a default that depends on the machine (DATA_DIR): unset keeps it.
            lines.append(f"# {name}=")
        else:
            lines.append(f"{name}={_env_value(field.default)}")
        lines.append("")
    return "\n".join(lines)


def resolved_paths(settings: Settings) -> list[str]:
    """Where this configuration reads and writes, as absolute paths (``briefing config``)."""
    data = settings.data_dir.expanduser().resolve()
    index = (
        f"Chroma server {settings.chroma_host}:{settings.chroma_port}"
        if settings.chroma_host
        else f"{data / 'chroma'}"
    )
    return [
        f"data folder:  {data}",
        f"index:        {index}",
        f"documents:    {settings.documents_dir.expanduser().resolve()}",
        f"model:        {settings.resolved_model_dir.expanduser().resolve()}",
    ]


def env_text(settings: Settings) -> str:
    """The effective settings as valid ``.env`` text (paths absolute; unset values and secrets
    commented out), ending with the resolved paths as comments."""
    values: dict[str, object] = {}
    for name, value in settings.model_dump().items():
        if name in SUB_MODELS:
            values.update({f"{name}_{k}".upper(): v for k, v in value.items()})
        else:
            values[name.upper()] = value
    lines = []
    for name in env_names():
        value = values[name]
        if value is None:
            lines.append(f"# {name}=")
        elif isinstance(value, SecretStr):
            lines.append(f"# {name}=… (set; hidden)")
        elif name in ("DATA_DIR", "DOCUMENTS_DIR"):
            lines.append(f"{name}={Path(str(value)).expanduser().resolve()}")
        else:
            lines.append(f"{name}={_env_value(value)}")
    lines += ["", "# Resolved paths:", *(f"#   {line}" for line in resolved_paths(settings))]
    return "\n".join(lines) + "\n"
