"""The model lives once per user in the platform cache folder, shared by every data folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.settings import IndexSettings


def test_default_model_dir_is_the_user_cache_shared_by_data_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    one = IndexSettings(_env_file=None, data_dir=tmp_path / "one")
    two = IndexSettings(_env_file=None, data_dir=tmp_path / "two")
    expected = tmp_path / "cache" / "briefing-bot" / "models" / "all-MiniLM-L6-v2"
    assert one.resolved_model_dir == two.resolved_model_dir == expected


def test_model_dir_overrides_and_a_legacy_copy_is_still_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    mine = IndexSettings(_env_file=None, model_dir=tmp_path / "m")
    assert mine.resolved_model_dir == tmp_path / "m"
    legacy = tmp_path / "data" / "models" / "all-MiniLM-L6-v2"
    legacy.mkdir(parents=True)
    old = IndexSettings(_env_file=None, data_dir=tmp_path / "data")
    assert old.resolved_model_dir == legacy  # installed there by an earlier version
