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


def test_a_key_in_a_url_is_masked_in_its_derived_forms_too() -> None:
    """Issue 18: a key in OPENAI_BASE_URL's userinfo leaked as ``Basic base64(user:key)``
    when a hostile endpoint echoed the request's headers."""
    import base64
    from urllib.parse import quote

    url_key = "sk-in-url-4b1e9a/+x"
    settings = Settings(
        _env_file=None, openai_base_url=f"http://bob:{quote(url_key, safe='')}@127.0.0.1:9/v1"
    )
    register_settings(settings)
    basic = base64.b64encode(f"bob:{url_key}".encode()).decode()
    echoed = (
        f"echo: Authorization: Basic {basic}; key {url_key}; query ?k={quote(url_key, safe='')}"
        f"; b64 {base64.b64encode(url_key.encode()).decode()}"
    )
    clean = scrub(echoed)
    assert basic not in clean and url_key not in clean and quote(url_key, safe="") not in clean
    assert base64.b64encode(url_key.encode()).decode() not in clean
    assert clean.count(MASK) == 4


def test_no_traceback_at_the_default_level_the_error_joins_its_line() -> None:
    from ingest.redact import OneLineTracebacks

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(OneLineTracebacks())
    logger = logging.getLogger("test.onelines")
    logger.addHandler(handler)
    level = logging.root.level
    logging.root.setLevel(logging.INFO)
    try:
        try:
            raise ValueError("bad JSON from the server")
        except ValueError:
            logger.exception("could not load the answer")
    finally:
        logging.root.setLevel(level)
        logger.removeHandler(handler)
    assert stream.getvalue() == "could not load the answer (ValueError: bad JSON from the server)\n"
