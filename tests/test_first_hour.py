"""A new user's first hour (issue 19): one index from any folder, no traps, no noise.

Through the real CLI in subprocesses (with a fresh XDG data folder, never the real one):
``ask`` without an index is one line and exit 3 and creates nothing; a missing path is a
usage error; every numeric setting is refused out of its range, with the range; batch
``ask`` answers each line while stdin stays open; a wire dateline never reaches a quote;
Chroma collections carry no deprecated "legacy" record; the model build logs no INFO
noise; the systemd unit in deploy/ passes ``systemd-analyze verify``.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import shutil
import subprocess
import sys
import threading
import tomllib
import warnings
from pathlib import Path
from typing import IO

import pytest

from bot.settings import Settings, _leaf_fields, env_text, load_settings, value_range
from ingest.errors import ConfigError
from ingest.metadata import strip_dateline
from tests.conftest import EXAMPLES, ROOT, make_settings

QUESTION = "What was Qingdao's Jan–Jul trade total?"


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATA_DIR", "DOCUMENTS_DIR")}
    return {**env, "PYTHONPATH": str(ROOT), **extra}


def briefing(
    args: list[str], env: dict[str, str], cwd: Path, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        env=env,
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=180,
    )


def one_error_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr[-2000:]
    errors = [line for line in stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, stderr
    return errors[0]


# -- one place for the data ----------------------------------------------------------------


def test_data_dir_defaults_to_the_user_data_folder_from_any_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    here = tmp_path / "one"
    there = tmp_path / "two"
    for folder in (here, there):
        folder.mkdir()
    monkeypatch.chdir(here)
    first = load_settings(_env_file=None)
    monkeypatch.chdir(there)
    second = load_settings(_env_file=None)
    assert first.data_dir == second.data_dir == tmp_path / "xdg" / "briefing-bot"
    assert first.chroma_dir == tmp_path / "xdg" / "briefing-bot" / "chroma"


def test_config_shows_the_resolved_paths(tmp_path: Path) -> None:
    env = cli_env(XDG_DATA_HOME=str(tmp_path / "xdg"), XDG_CACHE_HOME=str(tmp_path / "cache"))
    result = briefing(["config"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    data = tmp_path / "xdg" / "briefing-bot"
    assert f"DATA_DIR={data}" in result.stdout.splitlines()
    assert f"#   index:        {data / 'chroma'}" in result.stdout
    assert f"#   model:        {tmp_path / 'cache' / 'briefing-bot' / 'models'}" in result.stdout
    assert f"#   documents:    {tmp_path / 'examples' / 'briefings'}" in result.stdout
    assert not data.exists()  # showing the settings creates nothing


def test_env_example_leaves_the_machine_dependent_data_dir_unset() -> None:
    lines = (ROOT / ".env.example").read_text(encoding="utf-8").splitlines()
    assert "# DATA_DIR=" in lines
    described = lines[lines.index("# DATA_DIR=") - 1]
    assert "user's data folder" in described
    assert "model" not in described  # the model lives in the user's cache (MODEL_DIR)


def test_config_text_with_resolved_paths_still_loads(tmp_path: Path) -> None:
    settings = load_settings(_env_file=None, data_dir=tmp_path / "d")
    saved = tmp_path / "saved.env"
    saved.write_text(env_text(settings), encoding="utf-8")
    assert load_settings(_env_file=saved).data_dir == tmp_path / "d"


# -- ask without an index --------------------------------------------------------------------


@pytest.mark.parametrize("stdin", [None, QUESTION + "\n"], ids=["one-shot", "batch"])
def test_ask_without_an_index_is_one_line_exit_3_and_creates_nothing(
    tmp_path: Path, stdin: str | None
) -> None:
    xdg = tmp_path / "xdg"
    args = ["ask"] if stdin else ["ask", QUESTION]
    result = briefing(args, cli_env(XDG_DATA_HOME=str(xdg)), tmp_path, stdin=stdin)
    assert result.returncode == 3
    line = one_error_line(result.stderr)
    assert str(xdg / "briefing-bot") in line
    assert "briefing ingest" in line
    assert result.stdout == ""
    assert list(tmp_path.iterdir()) == []  # no data folder, here or in XDG_DATA_HOME


def test_ask_with_a_relative_data_dir_names_it_and_creates_no_data_folder(tmp_path: Path) -> None:
    result = briefing(["ask", QUESTION], cli_env(DATA_DIR="data"), tmp_path)
    assert result.returncode == 3
    assert str(tmp_path / "data") in one_error_line(result.stderr)
    assert not (tmp_path / "data").exists()


def test_ask_over_an_empty_index_says_so(tmp_path: Path, model_dir: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    env = cli_env(DATA_DIR=str(tmp_path / "data"), MODEL_DIR=str(model_dir))
    assert briefing(["ingest", str(empty)], env, tmp_path).returncode == 0
    result = briefing(["ask", QUESTION], env, tmp_path)
    assert result.returncode == 3
    line = one_error_line(result.stderr)
    assert "is empty" in line and "briefing ingest" in line


def test_ask_against_a_chroma_server_without_the_collection_says_so(
    tmp_path: Path, model_dir: Path, chroma_server: tuple[str, int]
) -> None:
    host, port = chroma_server
    env = cli_env(
        CHROMA_HOST=host,
        CHROMA_PORT=str(port),
        CHROMA_COLLECTION="never-ingested",
        DATA_DIR=str(tmp_path / "data"),
        MODEL_DIR=str(model_dir),
    )
    result = briefing(["ask", "--json", QUESTION], env, tmp_path)
    assert result.returncode == 3
    line = one_error_line(result.stderr)
    assert f"no collection never-ingested on the Chroma server {host}:{port}" in line
    assert "briefing ingest" in line
    assert result.stdout == ""
    from ingest.store import make_client

    remote = make_settings(tmp_path / "d", model_dir, chroma_host=host, chroma_port=port)
    server = make_client(remote)
    assert "never-ingested" not in [c.name for c in server.list_collections()]  # none made


# -- mismatches ------------------------------------------------------------------------------


def test_ingest_of_a_path_that_does_not_exist_is_a_usage_error(tmp_path: Path) -> None:
    result = briefing(
        ["ingest", str(tmp_path / "nonexistent")], cli_env(DATA_DIR=str(tmp_path / "d")), tmp_path
    )
    assert result.returncode == 2
    assert "does not exist" in one_error_line(result.stderr)
    assert result.stderr.startswith("Usage: briefing ingest")  # click's usage lines first
    assert not (tmp_path / "d").exists()


NUMERIC = [
    (name, field)
    for name, field in _leaf_fields()
    if field.annotation in (int, float, int | None, float | None)
]


def test_every_numeric_setting_has_a_range() -> None:
    assert len(NUMERIC) >= 15
    unbounded = [name for name, field in NUMERIC if value_range(field) is None]
    assert unbounded == []


@pytest.mark.parametrize(("name", "field"), NUMERIC, ids=[name for name, _ in NUMERIC])
def test_a_number_out_of_range_is_refused_with_its_range(
    name: str, field: object, tmp_path: Path
) -> None:
    bounds = value_range(field)  # type: ignore[arg-type]
    assert bounds is not None
    env = tmp_path / ".env"
    env.write_text(f"{name}=-1000000\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(_env_file=env)
    assert str(caught.value) == f"{name}: must be {bounds} (got '-1000000')"
    env.write_text(f"{name}=100000000\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=f"^{name}: must be "):
        load_settings(_env_file=env)


def test_max_file_mb_minus_one_through_the_cli(tmp_path: Path) -> None:
    result = briefing(["config"], cli_env(MAX_FILE_MB="-1"), tmp_path)
    assert result.returncode == 2
    assert one_error_line(result.stderr) == (
        "Error: MAX_FILE_MB: must be above 0 and at most 100000 (got '-1')"
    )


@pytest.mark.parametrize("option", ["--quiet-seconds", "--settle-seconds"])
def test_watch_timings_are_checked_with_their_range(option: str, tmp_path: Path) -> None:
    result = briefing(["watch", option, "-1", str(tmp_path)], cli_env(), tmp_path)
    assert result.returncode == 2
    assert "-1.0 is not in the range 0<x<=3600" in one_error_line(result.stderr)


def test_overlap_must_stay_below_the_chunk_size() -> None:
    with pytest.raises(ConfigError, match=r"CHUNK_OVERLAP_TOKENS \(300\) must be below"):
        load_settings(_env_file=None, chunk_tokens=256, chunk_overlap_tokens=300)


# -- batch ask streams -----------------------------------------------------------------------


def _reader(stream: IO[str]) -> queue.Queue[str]:
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in stream:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def test_batch_ask_answers_each_line_while_stdin_stays_open(examples_settings: Settings) -> None:
    env = cli_env(
        DATA_DIR=str(examples_settings.data_dir),
        MODEL_DIR=str(examples_settings.resolved_model_dir),
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "ask"],
        env=env,
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    answers = _reader(proc.stdout)
    try:
        proc.stdin.write(json.dumps({"id": "q1", "question": QUESTION}) + "\n")
        proc.stdin.flush()
        first = json.loads(answers.get(timeout=120))  # stdin is still open
        assert first["id"] == "q1"
        assert "341.81" in first["answer"]
        assert proc.poll() is None
        proc.stdin.write("2022年上半年西藏地区生产总值是多少？\n")
        proc.stdin.flush()
        second = json.loads(answers.get(timeout=60))
        assert second["id"] == 2
        assert "973.24亿元" in second["answer"]
        proc.stdin.close()
        assert proc.wait(timeout=60) == 0
    finally:
        proc.kill()
        proc.wait()


# -- datelines are metadata ------------------------------------------------------------------

RELEASE = """Dalian opens a cold-chain logistics hub

DALIAN, CHINA, January 20, 2025 /EINPresswire.com/ -- Dalian opened a cold-chain logistics \
hub with storage for 120,000 tonnes of frozen goods on Monday, the city's port group said.

The hub cost 1.8 billion yuan and will employ 600 people, according to Li Wei, deputy mayor.
"""


def test_strip_dateline_keeps_the_lead_sentence() -> None:
    text, removed = strip_dateline(RELEASE)
    assert "EINPresswire" not in text
    assert "\n\nDalian opened a cold-chain logistics hub with storage" in text
    assert removed == len("DALIAN, CHINA, January 20, 2025 /EINPresswire.com/ -- ")
    assert strip_dateline("No dateline here.\n") == ("No dateline here.\n", 0)


def test_a_dateline_is_metadata_and_never_quoted(tmp_path: Path, model_dir: Path) -> None:
    from bot.service import AnswerService
    from ingest.pipeline import run_ingest

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "dalian-cold-chain.txt").write_text(RELEASE, encoding="utf-8")
    settings = make_settings(tmp_path / "data", model_dir, documents_dir=docs)
    assert not run_ingest(settings).failures
    service = AnswerService(settings)
    (chunk,) = service.store.all_chunks()
    assert chunk.date == "2025-01-20"
    assert "EINPresswire" not in chunk.text
    answer = service.answer("How much frozen goods can the Dalian cold-chain hub store?")
    assert answer.citations
    for citation in answer.citations:
        assert "EINPresswire" not in citation.quote
        assert not citation.quote.startswith("DALIAN, CHINA")


# -- Chroma's record of the embedding function -----------------------------------------------


def test_collections_carry_no_deprecated_legacy_record(tmp_path: Path, model_dir: Path) -> None:
    from ingest.embeddings import make_embeddings
    from ingest.store import make_client, open_index

    settings = make_settings(tmp_path / "data", model_dir)
    embeddings = make_embeddings(settings)
    # An index made the old way (embedding_function=None records "legacy") ...
    client = make_client(settings)
    recorded_model = {"embedding_model": embeddings.name, "embedding_dim": embeddings.dim}
    client.create_collection(
        settings.chroma_collection,
        configuration={"hnsw": {"space": "cosine"}},
        metadata={"index_format": "1", **recorded_model, "generation": "0"},
        embedding_function=None,
    )
    legacy = client.get_collection(settings.chroma_collection, embedding_function=None)
    assert legacy.configuration_json["embedding_function"] == {"type": "legacy"}
    # ... is given the named record when opened, and reading it warns no more.
    open_index(settings, embeddings)
    name = settings.chroma_collection
    fresh = make_client(settings).get_collection(name, embedding_function=None)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        recorded = fresh.configuration["embedding_function"]
    assert recorded is not None and recorded.name() == "briefing-bot-caller-vectors"
    # A new index records it from the start.
    other = make_settings(tmp_path / "other", model_dir)
    store = open_index(other, make_embeddings(other))
    assert store.collection.configuration_json["embedding_function"]["type"] == "known"


# -- quiet by default ------------------------------------------------------------------------


def test_pyproject_license_is_an_spdx_string() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["license"] == "MIT"
    (backend,) = [r for r in project["build-system"]["requires"] if r.startswith("setuptools")]
    assert backend == "setuptools>=77"  # the first to read an SPDX string without a warning


def test_building_the_model_logs_no_onnxruntime_info(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from ingest.onnx_export import install_model

    with caplog.at_level(logging.DEBUG):
        install_model(tmp_path / "model")
    noisy = [r.getMessage() for r in caplog.records if "onnxruntime" in r.pathname]
    assert noisy == []
    assert (tmp_path / "model" / "model.fused.onnx").is_file()  # the fusion really ran


# -- the examples and the demo ---------------------------------------------------------------


def test_chinese_example_briefings_are_answered(examples_settings: Settings) -> None:
    from bot.service import AnswerService

    chinese = [p for p in EXAMPLES.iterdir() if any("\u4e00" <= ch <= "\u9fff" for ch in p.stem)]
    assert chinese == []  # file names stay ASCII
    zh = [p for p in EXAMPLES.iterdir() if "亿元" in p.read_text(encoding="utf-8")]
    assert len(zh) >= 3
    answer = AnswerService(examples_settings).answer("2022年上半年西藏地区生产总值是多少？")
    assert not answer.refused
    assert "973.24亿元" in answer.citations[0].quote


def test_demo_isolates_its_index_and_asks_in_chinese_and_english() -> None:
    demo = (ROOT / ".ci" / "demo").read_text(encoding="utf-8")
    assert 'DATA_DIR="$PWD/data"' in demo
    asked = [line for line in demo.splitlines() if line.startswith(".venv/bin/briefing ask")]
    assert len(asked) == 2
    assert any("\u4e00" <= ch <= "\u9fff" for ch in asked[0])
    assert QUESTION in asked[1]


# -- running for a team ----------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze absent")
def test_systemd_unit_verifies(tmp_path: Path) -> None:
    unit = (ROOT / "deploy" / "briefing-bot.service").read_text(encoding="utf-8")
    assert "/opt/briefing-bot/.venv/bin/briefing bot" in unit
    # Verified as if installed where this checkout and its `briefing` script are (verify
    # checks that the executables exist).
    script = Path(sys.executable).with_name("briefing")
    if not script.exists():
        pytest.skip(f"no briefing script beside {sys.executable}")
    local = tmp_path / "briefing-bot.service"
    installed = unit.replace("/opt/briefing-bot/.venv/bin/briefing", str(script))
    local.write_text(installed.replace("/opt/briefing-bot", str(ROOT)), encoding="utf-8")
    result = subprocess.run(
        ["systemd-analyze", "verify", str(local)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    about_unit = [line for line in result.stderr.splitlines() if local.name in line]
    assert about_unit == []  # unknown keys are only warnings: none allowed
