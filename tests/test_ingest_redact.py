"""Secret masking: error messages, log records (message, arguments, tracebacks)."""

from __future__ import annotations

import io
import logging

from pydantic import SecretStr

from bot.settings import Settings
from ingest.errors import IndexUnavailable
from ingest.redact import MASK, RedactingFilter, register_settings, scrub, secret_values

TOKEN = "987654321:AAH-redact-test-token-51f0"
KEY = "sk-redact-test-key-0c3d9e"


def test_every_secret_of_the_settings_is_found_and_masked() -> None:
    settings = Settings(
        _env_file=None,
        openai_api_key=SecretStr(KEY),
        telegram={"bot_token": SecretStr(TOKEN)},
    )
    assert {KEY, TOKEN} <= set(secret_values(settings))
    register_settings(settings)
    text = f"rejected {TOKEN} and {KEY}; the bare half AAH-redact-test-token-51f0 too"
    assert scrub(text) == f"rejected {MASK} and {MASK}; the bare half {MASK} too"
    assert KEY not in str(IndexUnavailable(f"server said: bad key {KEY}"))


def test_log_records_are_scrubbed_arguments_and_tracebacks_included() -> None:
    register_settings(Settings(_env_file=None, openai_api_key=SecretStr(KEY)))
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    log = logging.getLogger("test-redact")
    log.addHandler(handler)
    try:
        log.warning("LLM failed: %s", f"Incorrect API key provided: {KEY}")
        try:
            raise ValueError(f"echoed {KEY}")
        except ValueError:
            log.exception("call failed")
    finally:
        log.removeHandler(handler)
    out = stream.getvalue()
    assert KEY not in out
    assert out.count(MASK) == 2
    assert "ValueError" in out
