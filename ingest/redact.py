"""Keeping configured secrets out of everything users and logs see.

An endpoint may echo the API key in an error body, PTB puts the bot token in its
``InvalidToken`` message, and URLs carry the token in their path; any of these can reach a
note, a log line or an error message. Entry points ``register`` every secret of their
settings once; ``scrub`` then replaces them in any text, ``BriefingError`` messages are
scrubbed, and ``install_log_filter`` scrubs every log record the root handlers write.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where used: `ingest.errors` (and so every CLI start) needs scrub
    from pydantic import BaseModel

MASK = "[redacted]"
_MIN_SECRET = 6  # shorter values are not secrets worth masking (and would mask words)

_lock = threading.Lock()
_secrets: tuple[str, ...] = ()


def secret_values(settings: BaseModel) -> list[str]:
    """Every ``SecretStr`` value in ``settings``, nested models included."""
    from pydantic import BaseModel, SecretStr

    found: list[str] = []
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            found.append(value.get_secret_value())
        elif isinstance(value, BaseModel):
            found.extend(secret_values(value))
    return found


def register(*secrets: str | None) -> None:
    """Add secrets to mask from now on (process-wide; entry points call this once)."""
    global _secrets
    new = {s for s in secrets if s and len(s) >= _MIN_SECRET}
    for secret in list(new):
        # A bot token also appears as its secret half alone (after the "id:" prefix).
        _, sep, tail = secret.partition(":")
        if sep and len(tail) >= _MIN_SECRET:
            new.add(tail)
    with _lock:
        # Longest first, so a secret containing another is masked whole.
        _secrets = tuple(sorted(set(_secrets) | new, key=len, reverse=True))


def register_settings(settings: BaseModel) -> None:
    register(*secret_values(settings))


def scrub(text: str) -> str:
    """``text`` with every registered secret replaced by ``[redacted]``."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


class RedactingFilter(logging.Filter):
    """Scrubs a record's message, arguments and traceback before any handler writes it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not _secrets:
            return True
        message = record.getMessage()
        clean = scrub(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        return True


def install_log_filter() -> None:
    """Put a RedactingFilter on every root handler (records from all loggers pass them)."""
    for handler in logging.root.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
