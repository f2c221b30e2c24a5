"""A one-shot `briefing ask` imports and loads only what its answer needs (a fresh process).

Speed itself is measured by bench/scale_bench.py; these tests check the behaviour that
makes it fast: the extractive answerer does not pull in the LLM client (LangChain's
OpenAI chat model, ``openai``) or the ingest pipeline, and the answer is the same.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import TYPE_CHECKING

from tests.conftest import ROOT

if TYPE_CHECKING:
    from bot.settings import Settings

# Modules an extractive one-shot answer must not import (they are for ANSWERER=llm, the
# admin's /status and /ingest, and ingest runs).
NOT_NEEDED = ("bot.llm", "langchain_openai", "openai", "bot.index_info", "ingest.pipeline",
              "ingest.loaders")  # fmt: skip
_PROBE = """
import json, sys
from bot.cli import cli
try:
    cli(sys.argv[1:], standalone_mode=False)
finally:
    print(json.dumps(sorted(sys.modules)), file=sys.stderr)
"""


def ask_in_fresh_process(
    settings: Settings, *args: str, temp_dir: str = "/tmp"
) -> tuple[str, set[str]]:
    """(stdout, modules loaded) of `briefing ask ARGS` on ``settings``' index."""
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, "ask", *args],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={
            "PATH": "/usr/bin:/bin",
            "HOME": str(settings.data_dir),
            "DATA_DIR": str(settings.data_dir),
            "MODEL_DIR": str(settings.model_dir),
            "ANONYMIZED_TELEMETRY": "False",
            "TMPDIR": temp_dir,
        },
    )
    return out.stdout, set(json.loads(out.stderr.strip().splitlines()[-1]))


def test_extractive_ask_imports_no_llm_client_or_pipeline(examples_settings: Settings) -> None:
    stdout, loaded = ask_in_fresh_process(
        examples_settings, "--json", "What did Qingdao's imports and exports total?"
    )
    answer = json.loads(stdout)
    assert answer["answerer"] == "extractive"
    assert answer["citations"], answer  # it really answered from the index
    assert {"chromadb", "onnxruntime", "bot.service"} <= loaded  # the probe saw the answer path
    assert not loaded & set(NOT_NEEDED), sorted(loaded & set(NOT_NEEDED))


def test_service_admin_view_is_built_on_first_use(examples_settings: Settings) -> None:
    from bot.service import AnswerService

    service = AnswerService.from_settings(examples_settings)
    assert "index" not in vars(service)  # not built for answering
    status = service.index.status()
    assert service.index is service.index  # built once
    assert status.documents >= 5 and status.chunks >= status.documents
    assert status.answerer == "extractive"
