"""Settings document themselves; .env.example stays in step; secrets stay secret; a typo in a
variable's name is refused (or, in the shared environment, warned about), never ignored."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from pydantic import ValidationError

from bot.settings import Settings, _leaf_fields, env_example, env_names, env_text, load_settings
from ingest.errors import ConfigError, ExitStatus
from tests.conftest import ROOT


def test_env_example_is_current() -> None:
    assert (ROOT / ".env.example").read_text() == env_example(), (
        "regenerate with: .venv/bin/briefing config --example > .env.example"
    )


def test_every_field_is_documented() -> None:
    for name, field in _leaf_fields():
        assert field.description, f"{name} has no description"
    for name, field in Settings.model_fields.items():
        assert field.description, f"{name} has no description"


def test_documented_variable_names_are_kept() -> None:
    names = set(env_names())
    for name in ("TELEGRAM_BOT_TOKEN", "TELEGRAM_API_BASE_URL", "TELEGRAM_ADMIN_IDS",
                 "TELEGRAM_ALLOWED_USER_IDS", "TELEGRAM_ALLOWED_CHAT_IDS", "WEBHOOK_URL",
                 "WEBHOOK_LISTEN", "WEBHOOK_PORT", "WEBHOOK_SECRET", "RATE_LIMIT_PER_MINUTE",
                 "MAX_QUESTION_CHARS", "CHUNK_TOKENS", "TOP_K", "DATA_DIR"):  # fmt: skip
        assert name in names


def test_env_file_and_lists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = tmp_path / ".env"
    env.write_text(
        "TELEGRAM_BOT_TOKEN=123:s3cr3t-token\nTELEGRAM_ADMIN_IDS=1, 2,3\nCHROMA_HOST=\nTOP_K=7\n"
        "WEBHOOK_PORT=9000\nCOMPOSE_PROJECT_NAME=briefing\nCHROMA_SERVER_AUTHN_CREDENTIALS=x\n"
    )
    settings = Settings(_env_file=env)
    assert settings.telegram.admin_ids == frozenset({1, 2, 3})
    assert settings.webhook.port == 9000
    assert settings.chroma_host is None  # empty values mean unset
    assert settings.top_k == 7
    assert "s3cr3t-token" not in repr(settings)
    assert settings.telegram.bot_token is not None
    assert settings.telegram.bot_token.get_secret_value() == "123:s3cr3t-token"
    monkeypatch.setenv("TOP_K", "9")
    monkeypatch.setenv("TELEGRAM_ALLOWED_CHAT_IDS", "-100,-200")
    from_env = Settings(_env_file=env)
    assert from_env.top_k == 9
    assert from_env.telegram.allowed_chat_ids == frozenset({-100, -200})


def test_bad_values_are_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANSWERER", "oracle")
    with pytest.raises(ValidationError, match="answerer"):
        Settings(_env_file=None)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "TELEGRAM_ADMIN_ID=5",
            "TELEGRAM_ADMIN_ID is not a setting; did you mean TELEGRAM_ADMIN_IDS?",
        ),
        ("CHUNK_TOKEN=100", "CHUNK_TOKEN is not a setting; did you mean CHUNK_TOKENS?"),
        ("WEBHOOK_PATH=/x", "WEBHOOK_PATH is not a setting"),
        ("WATCH_ENABLE=true", "WATCH_ENABLE is not a setting; did you mean WATCH_ENABLED?"),
        ("OPENAI_ORG_ID=org-1", "OPENAI_ORG_ID is not a setting"),
        ("CHROMA_HOTS=db", "CHROMA_HOTS is not a setting; did you mean CHROMA_HOST?"),
        ("TELEGRAM_ADMIN_IDS=@alice", "TELEGRAM_ADMIN_IDS: expects comma-separated numeric ids"),
        ("TOP_K=abc", "TOP_K: Input should be a valid integer"),
    ],
)
def test_typos_and_bad_values_in_env_file_are_one_line_config_errors(
    tmp_path: Path, line: str, expected: str
) -> None:
    env = tmp_path / ".env"
    env.write_text(f"TELEGRAM_BOT_TOKEN=123:s3cr3t-token\n{line}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(_env_file=env)
    message = str(caught.value)
    assert message.startswith(expected)
    assert "\n" not in message
    assert "s3cr3t" not in message
    assert caught.value.exit_status is ExitStatus.USAGE


def test_secret_values_are_not_echoed_in_errors(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("TELEGRAM_BOT_TOKEN=123:s3cr3t-token\nWEBHOOK_PORT=s3cr3t-port\n")
    with pytest.raises(ConfigError, match="WEBHOOK_PORT") as caught:
        load_settings(_env_file=env)
    assert "s3cr3t-token" not in str(caught.value)


def test_environment_typos_warn_and_bot_namespaces_refuse(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("TOP_KK", "3")
    monkeypatch.setenv("MAX_WORKERS", "8")  # another program's variable: left alone
    with caplog.at_level(logging.WARNING, logger="bot.settings"):
        settings = load_settings(_env_file=None)
    assert settings.top_k == 5
    warned = [r.getMessage() for r in caplog.records]
    assert warned == ["TOP_KK is not a setting; did you mean TOP_K?"]
    monkeypatch.setenv("TELEGRAM_ADMIN_ID", "5")
    with pytest.raises(ConfigError, match="TELEGRAM_ADMIN_ID is not a setting"):
        load_settings(_env_file=None)


def test_config_output_is_a_valid_env_file(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("TELEGRAM_BOT_TOKEN=123:s3cr3t-token\nTELEGRAM_ADMIN_IDS=1,2\nTOP_K=7\n")
    text = env_text(load_settings(_env_file=env))
    assert "s3cr3t" not in text
    assert "None" not in text
    assert "frozenset" not in text
    saved = tmp_path / "saved.env"
    saved.write_text(text)
    reloaded = load_settings(_env_file=saved)
    assert reloaded.top_k == 7
    assert reloaded.telegram.admin_ids == frozenset({1, 2})
    assert reloaded.telegram.bot_token is None  # the secret is not written out


def test_cli_refuses_a_typo_in_env_with_one_line_and_usage_status(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from bot.cli import cli

    (tmp_path / ".env").write_text("TELEGRAM_BOT_TOKEN=123:s3cr3t-token\nCHUNK_TOKEN=100\n")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["config"])
    assert result.exit_code == ExitStatus.USAGE
    assert "CHUNK_TOKEN is not a setting; did you mean CHUNK_TOKENS?" in result.output
    assert "Traceback" not in result.output
    assert "s3cr3t" not in result.output
    (tmp_path / ".env").write_text("TELEGRAM_BOT_TOKEN=123:s3cr3t-token\nTOP_K=7\n")
    shown = CliRunner().invoke(cli, ["config"])
    assert shown.exit_code == 0
    assert "TOP_K=7\n" in shown.output
    assert "s3cr3t" not in shown.output
