"""Shared fixtures: isolation from the home directory, the real local model, a real index."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from bot.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
EXAMPLES = ROOT / "examples" / "briefings"

# Isolation (as simonw/llm does): nothing in the suite reads or writes the real home
# directory, and Chroma never tries to phone home.
_HOME = Path(os.environ.get("PYTEST_TMP_HOME", "/tmp/briefing-test-home"))
_HOME.mkdir(parents=True, exist_ok=True)
os.environ["HOME"] = str(_HOME)
# platformdirs' cache folder (the default MODEL_DIR) follows XDG_CACHE_HOME before HOME.
os.environ["XDG_CACHE_HOME"] = str(_HOME / ".cache")
# ... and its data folder (the default DATA_DIR) follows XDG_DATA_HOME.
os.environ["XDG_DATA_HOME"] = str(_HOME / ".local" / "share")
os.environ["ANONYMIZED_TELEMETRY"] = "False"
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["PTB_TIMEDELTA"] = "1"  # as `briefing bot` runs it


def _drop_setting_vars() -> None:
    # A developer's own settings must not leak into tests (simonw/llm isolates the same way).
    from bot.settings import env_names

    for name in env_names():
        os.environ.pop(name, None)


_drop_setting_vars()


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


def make_settings(data_dir: Path, model_dir: Path, **overrides: object) -> Settings:
    """Settings for a test: never reads a developer's .env."""
    from bot.settings import Settings

    values: dict[str, object] = {"data_dir": data_dir, "model_dir": model_dir}
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def examples_settings(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Settings:
    """Settings whose index holds the repo's example briefings (ingested once per session).

    Tests that use it must not ingest into it; copy the examples to a tmp dir instead.
    """
    from ingest.pipeline import run_ingest

    settings = make_settings(
        tmp_path_factory.mktemp("examples-index"), model_dir, documents_dir=EXAMPLES
    )
    report = run_ingest(settings)
    assert not report.failures, report.failures
    return settings


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """A real Chroma server (`chroma run`) on 127.0.0.1, for the client/server path."""
    exe = Path(sys.executable).with_name("chroma")
    if not exe.exists():
        pytest.fail(f"chroma CLI not found next to {sys.executable}")
    port = _free_port()
    path = tmp_path_factory.mktemp("chroma-server")
    log = (path / "server.log").open("w")
    proc = subprocess.Popen(
        [str(exe), "run", "--path", str(path / "db"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=1):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"chroma server did not start: {(path / 'server.log').read_text()}")
            time.sleep(0.2)
    yield "127.0.0.1", port
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()
