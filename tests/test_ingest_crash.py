"""kill -9 at arbitrary moments of an ingest; the next run must repair to a clean index."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from ingest.embeddings import LocalEmbeddings
from ingest.manifest import Manifest
from ingest.pipeline import run_ingest
from ingest.store import open_index
from ingest.types import Outcome
from tests.conftest import ROOT, make_settings

TOPICS = ["port", "rail", "energy", "water", "housing", "tourism", "farming", "customs"]


def write_corpus(folder: Path, n: int, version: int) -> None:
    rng = random.Random(n * 31 + version)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        topic = TOPICS[i % len(TOPICS)]
        paras = []
        for p in range(6):
            figure = rng.randint(10, 999) + version
            paras.append(
                f"District {i} {topic} report, part {p}: output rose to {figure}.{p} million yuan "
                f"as the {topic} programme expanded. Officials expect a further {figure % 17} "
                f"percent next year after version {version} of the plan was adopted."
            )
        (folder / f"note-{i:03}.txt").write_text(
            f"{topic.title()} note {i}\n\n" + "\n\n".join(paras)
        )


def snapshot(settings: object, embeddings: LocalEmbeddings) -> dict[str, tuple[str, str, str]]:
    store = open_index(settings, embeddings)  # type: ignore[arg-type]
    return {c.chunk_id: (Path(c.path).name, c.text, c.doc_id) for c in store.all_chunks()}


def check_consistent(settings: object, embeddings: LocalEmbeddings) -> None:
    manifest = Manifest(settings.manifest_path)  # type: ignore[attr-defined]
    try:
        assert manifest.pending() == {}
        assert manifest.orphan_docs() == []
        ids = manifest.all_chunk_ids()
    finally:
        manifest.close()
    store = open_index(settings, embeddings)  # type: ignore[arg-type]
    assert set(store.all_ids()) == ids  # no orphan chunks, no missing chunks


def ingest_killed_after(env: dict[str, str], cwd: Path, delay: float) -> bool:
    """Start `briefing ingest` and SIGKILL it after ``delay`` s; True if it was killed."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "ingest", "--json"],
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(delay)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        return True
    return False


def test_kill_at_any_moment_then_rerun_equals_clean_ingest(tmp_path: Path, model_dir: Path) -> None:
    docs = tmp_path / "docs"
    # Large enough that an ingest outlasts the kills on a quiet machine (40 notes took 3 s).
    write_corpus(docs, 100, version=1)
    settings = make_settings(tmp_path / "data", model_dir, documents_dir=docs, embed_batch_size=8)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DATA_DIR": str(settings.data_dir),
        "DOCUMENTS_DIR": str(docs),
        "MODEL_DIR": str(model_dir),
        "EMBED_BATCH_SIZE": "8",
    }
    embeddings = LocalEmbeddings(model_dir)
    killed = 0
    # Phase 1: interrupt the first ingest again and again at spread-out moments.
    for delay in (2.0, 3.0, 3.7, 4.4, 5.2):
        killed += ingest_killed_after(env, tmp_path, delay)
    # Phase 2: change, add and delete files, and interrupt the re-ingest too.
    run_ingest(settings, embeddings=embeddings)
    write_corpus(docs, 30, version=2)  # rewrites 30 files with new figures
    for i in range(30, 40, 2):
        (docs / f"note-{i:03}.txt").unlink()
    for delay in (2.2, 3.1, 4.0):
        killed += ingest_killed_after(env, tmp_path, delay)
    assert killed >= 3, "ingest finished before any kill: the corpus is too small to test this"

    final = run_ingest(settings, embeddings=embeddings)
    assert not final.failures
    check_consistent(settings, embeddings)

    clean = make_settings(tmp_path / "clean", model_dir, documents_dir=docs)
    report = run_ingest(clean, embeddings=embeddings)
    assert report.count(Outcome.ADDED) == 95  # 100 notes, 5 deleted
    assert snapshot(settings, embeddings) == snapshot(clean, embeddings)
