"""Keeping configured secrets out of everything users and logs see.

An endpoint may echo the API key in an error body, PTB puts the bot token in its
``InvalidToken`` message, and URLs carry the token in their path; any of these can reach a
note, a log line or an error message. Entry points ``register`` every secret of their
settings once; ``scrub`` then replaces them in any text, ``BriefingError`` messages are
scrubbed, and ``install_log_filter`` scrubs every log record the root handlers write.

A secret also travels in forms derived from it: a key placed in a URL's userinfo
(``https://user:KEY@host``) goes out as ``Authorization: Basic base64(user:KEY)``, and a
secret in a query string is URL-encoded. ``register`` masks those forms too (base64,
URL-safe base64, percent-encoding), and ``register_settings`` takes the password out of
every URL-valued setting. At the default log level no record carries a traceback
(``OneLineTracebacks``): the exception's type and message join its line; DEBUG shows where.
"""

from __future__ import annotations

import base64
import logging
import threading
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote, urlsplit

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
        elif isinstance(value, str) and "@" in value:
            found.extend(url_credentials(value))
    return found


def url_credentials(url: str) -> list[str]:
    """The secrets a URL carries in its userinfo: the password, and ``user:password`` (what
    HTTP Basic authentication encodes)."""
    try:
        parts = urlsplit(url)
        user, password = parts.username, parts.password
    except ValueError:
        return []
    if not password:
        return []
    plain_user, plain_password = unquote(user or ""), unquote(password)
    return [plain_password, password, f"{plain_user}:{plain_password}"]


def _derived(secret: str) -> set[str]:
    """The forms a secret takes on the wire: base64 (Basic auth), URL-safe, percent-encoded."""
    raw = secret.encode("utf-8")
    b64 = base64.b64encode(raw).decode("ascii")
    forms = {b64, b64.rstrip("="), base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")}
    forms.add(quote(secret, safe=""))
    return {f for f in forms if f != secret}


def register(*secrets: str | None) -> None:
    """Add secrets to mask from now on (process-wide; entry points call this once)."""
    global _secrets
    new = {s for s in secrets if s and len(s) >= _MIN_SECRET}
    for secret in list(new):
        # A bot token also appears as its secret half alone (after the "id:" prefix).
        _, sep, tail = secret.partition(":")
        if sep and len(tail) >= _MIN_SECRET:
            new.add(tail)
    for secret in list(new):
        new |= {f for f in _derived(secret) if len(f) >= _MIN_SECRET}
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


class OneLineTracebacks(logging.Filter):
    """Above DEBUG, a record's traceback becomes ``(Type: message)`` on its own line: users
    see what failed, not 77 lines of where (LOG_LEVEL=DEBUG keeps the tracebacks)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.exc_info or logging.root.level <= logging.DEBUG:
            return True
        error = record.exc_info[1]
        if error is not None:
            record.msg = f"{record.getMessage()} ({type(error).__name__}: {error})"
            record.args = None
        record.exc_info = None
        record.exc_text = None
        return True


def install_log_filter(handlers: list[logging.Handler] | None = None) -> None:
    """Put a OneLineTracebacks and a RedactingFilter on every root handler (records from
    all loggers pass them), in that order: the line a traceback becomes is scrubbed too."""
    for handler in logging.root.handlers if handlers is None else handlers:
        if not any(isinstance(f, OneLineTracebacks) for f in handler.filters):
            handler.addFilter(OneLineTracebacks())
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
