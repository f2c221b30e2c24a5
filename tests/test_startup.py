"""`--help`, `config` and usage errors start without the heavy libraries (a fresh process)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("chromadb", "onnxruntime", "langchain_core", "langchain_chroma", "tokenizers", "bm25s")
_PROBE = """
import json, sys
from bot.cli import cli
try:
    cli(sys.argv[1:], standalone_mode=False)
except BaseException:
    pass
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules})))
"""


def loaded_by(args: list[str], tmp_path: Path) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, *args],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,  # no .env of a developer's checkout
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "DATA_DIR": str(tmp_path / "d")},
    )
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("args", [["--help"], ["config"], ["ask", "  "], ["ingest", "--bogus"]])
def test_light_commands_import_no_heavy_library(args: list[str], tmp_path: Path) -> None:
    loaded = loaded_by(args, tmp_path)
    assert "click" in loaded  # the probe really ran the CLI
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_ask_does_load_them(tmp_path: Path) -> None:
    # The probe can tell: a command that answers pulls in the index libraries (onnxruntime
    # only once the model is found; here it is not installed).
    assert {"chromadb", "langchain_core"} <= loaded_by(["ask", "what?"], tmp_path)
