"""Shared fixtures: isolation from the home directory, the real local model, a real index."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
EXAMPLES = ROOT / "examples" / "briefings"

# Isolation (as simonw/llm does): nothing in the suite reads or writes the real home
# directory, and Chroma never tries to phone home.
_HOME = Path(os.environ.get("PYTEST_TMP_HOME", "/tmp/briefing-test-home"))
_HOME.mkdir(parents=True, exist_ok=True)
os.environ["HOME"] = str(_HOME)
os.environ["ANONYMIZED_TELEMETRY"] = "False"
os.environ["HF_HUB_OFFLINE"] = "1"
for _var in [v for v in os.environ if v.startswith(("OPENAI_", "TELEGRAM_", "CHROMA_"))]:
    del os.environ[_var]


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real all-MiniLM-L6-v2 ONNX model, provisioned offline once per test session."""
    from ingest.onnx_export import install_model

    return install_model(tmp_path_factory.mktemp("model") / "all-MiniLM-L6-v2")


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared is not present")
    return SHARED
