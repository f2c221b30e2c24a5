"""`briefing ingest` as a user runs it: bad input is reported and skipped, exit codes, JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

GOOD = "Harbour note\n\nContainer throughput at the harbour rose 7.5 percent in May.\n"


def run_cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def cli_env(tmp_path: Path, model_dir: Path) -> dict[str, str]:
    return {
        "DATA_DIR": str(tmp_path / "data"),
        "DOCUMENTS_DIR": str(tmp_path / "docs"),
        "MODEL_DIR": str(model_dir),
    }


def test_bad_files_are_reported_and_the_rest_ingests(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "good.txt").write_text(GOOD)
    (docs / "good2.md").write_text("# Rail note\n\nThe new rail line opened on 3 May 2021.\n")
    (docs / "empty.txt").write_text("")
    (docs / "binary.txt").write_bytes(bytes(range(256)) * 20)
    (docs / "corrupt.pdf").write_bytes(b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog")
    (docs / "notazip.docx").write_bytes(b"this is not a docx")
    (docs / "big.txt").write_text("x " * 700_000)
    outside = tmp_path / "secret.txt"
    outside.write_text("outside the folder")
    (docs / "link.txt").symlink_to(outside)
    (docs / "dangling.txt").symlink_to(docs / "missing.txt")
    (docs / "latin1.txt").write_bytes(
        "Café policy briefing: São Paulo’s budget rose.".encode("cp1252")
    )
    (docs / "ignored.xyz").write_text("unsupported extensions are not ingested")

    result = run_cli(["ingest", "--json"], {**cli_env, "MAX_FILE_MB": "1"}, tmp_path)
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    by_name = {Path(f["path"]).name: f for f in report["files"]}
    added = {n for n, f in by_name.items() if f["outcome"] == "added"}
    assert added == {"good.txt", "good2.md", "latin1.txt"}
    reasons = {n: f["reason"] for n, f in by_name.items() if f["outcome"] == "failed"}
    assert set(reasons) == {
        "empty.txt",
        "binary.txt",
        "corrupt.pdf",
        "notazip.docx",
        "big.txt",
        "link.txt",
        "dangling.txt",
    }
    assert "limit" in reasons["big.txt"]
    assert "outside" in reasons["link.txt"]
    assert "cannot read" in reasons["dangling.txt"]
    assert all(reasons.values())
    assert "ignored.xyz" not in by_name

    # The second run changes nothing, and still reports the bad files.
    again = run_cli(["ingest", "--json"], {**cli_env, "MAX_FILE_MB": "1"}, tmp_path)
    summary = json.loads(again.stdout)["summary"]
    assert summary["unchanged"] == 3
    assert summary["added"] == 0
    assert summary["failed"] == 7

    answer = run_cli(
        ["ask", "--json", "How much did container throughput rise in May?"], cli_env, tmp_path
    )
    assert answer.returncode == 0, answer.stderr
    body = json.loads(answer.stdout)
    assert "7.5 percent" in body["answer"]
    assert body["citations"][0]["path"] == "good.txt"


def test_clean_run_exits_zero_and_prints_a_summary(tmp_path: Path, cli_env: dict[str, str]) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "good.txt").write_text(GOOD)
    result = run_cli(["ingest"], cli_env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "1 added" in result.stdout
    assert "good.txt" in result.stdout
    dry = run_cli(["ingest", "--dry-run"], cli_env, tmp_path)
    assert dry.returncode == 0
    assert "Dry run" in dry.stdout


def test_fatal_errors_exit_3_with_a_clear_message(tmp_path: Path, cli_env: dict[str, str]) -> None:
    (tmp_path / "docs").mkdir()
    result = run_cli(["ingest"], {**cli_env, "MODEL_DIR": str(tmp_path / "nomodel")}, tmp_path)
    assert result.returncode == 3
    assert "briefing models install" in result.stderr
    assert "Traceback" not in result.stderr


def test_symlink_loop_and_very_deep_folders_are_reported_not_fatal(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "good.txt").write_text(GOOD)
    (docs / "self.txt").symlink_to("self.txt")  # ELOOP
    (docs / "ping.txt").symlink_to("pong.txt")
    (docs / "pong.txt").symlink_to("ping.txt")
    deep = docs
    for _ in range(1000):  # os.walk recursed once per level: RecursionError
        deep = deep / "d"
        deep.mkdir()
    (deep / "deep.txt").write_text("A note kept far too deep.")
    try:
        result = run_cli(["ingest", "--json"], cli_env, tmp_path)
    finally:  # pytest's own clean-up of old tmp folders recurses too: remove it bottom-up
        (deep / "deep.txt").unlink()
        while deep != docs:
            deep.rmdir()
            deep = deep.parent
    assert result.returncode == 1, result.stderr
    files = {Path(f["path"]).name: f for f in json.loads(result.stdout)["files"]}
    assert files["good.txt"]["outcome"] == "added"
    for name in ("self.txt", "ping.txt", "pong.txt"):
        assert files[name]["outcome"] == "failed"
        assert "symlink loop" in files[name]["reason"]
    (deep_report,) = [f for f in files.values() if f["path"].startswith("d/d/")]
    assert "levels deep" in deep_report["reason"]
