"""Settings document themselves; .env.example stays in step; secrets stay secret."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from bot.settings import Settings, env_example
from tests.conftest import ROOT


def test_env_example_is_current() -> None:
    assert (ROOT / ".env.example").read_text() == env_example(), (
        "regenerate with: .venv/bin/briefing config --example > .env.example"
    )


def test_every_field_is_documented() -> None:
    for name, field in Settings.model_fields.items():
        assert field.description, f"{name} has no description"


def test_env_file_and_lists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = tmp_path / ".env"
    env.write_text(
        "TELEGRAM_BOT_TOKEN=123:s3cr3t-token\nTELEGRAM_ADMIN_IDS=1, 2,3\nCHROMA_HOST=\nTOP_K=7\n"
    )
    settings = Settings(_env_file=env)
    assert settings.telegram_admin_ids == frozenset({1, 2, 3})
    assert settings.chroma_host is None  # empty values mean unset
    assert settings.top_k == 7
    assert "s3cr3t-token" not in repr(settings)
    assert settings.telegram_bot_token is not None
    assert settings.telegram_bot_token.get_secret_value() == "123:s3cr3t-token"
    monkeypatch.setenv("TOP_K", "9")
    assert Settings(_env_file=env).top_k == 9


def test_bad_values_are_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANSWERER", "oracle")
    with pytest.raises(ValidationError, match="answerer"):
        Settings(_env_file=None)
