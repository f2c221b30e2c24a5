"""The store of record (issue 18): one SQLite file, schema versioned, earlier versions'
files taken in, and a run killed mid-way told exactly (its files commit with its log)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from ingest import runlog
from ingest.embeddings import LocalEmbeddings
from ingest.pipeline import run_ingest
from ingest.state import SCHEMA_VERSION, connect, schema_version, state_path
from ingest.types import Outcome
from tests.conftest import ROOT, make_settings
from tests.test_ingest_crash import write_corpus

OLD_MANIFEST = """
CREATE TABLE files(path TEXT PRIMARY KEY, doc_id TEXT NOT NULL, size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL);
CREATE TABLE docs(doc_id TEXT PRIMARY KEY, path TEXT NOT NULL, title TEXT NOT NULL, date TEXT,
    url TEXT, format TEXT NOT NULL, pages INTEGER NOT NULL, chunk_ids TEXT NOT NULL,
    text TEXT NOT NULL, ingested_at TEXT NOT NULL);
CREATE TABLE pending(doc_id TEXT PRIMARY KEY, chunk_ids TEXT NOT NULL);
CREATE TABLE runs(id INTEGER PRIMARY KEY AUTOINCREMENT, finished_at TEXT NOT NULL,
    report TEXT NOT NULL);
"""
OLD_SUBSCRIPTIONS = """
CREATE TABLE subscriptions(id INTEGER PRIMARY KEY AUTOINCREMENT, chat_id INTEGER NOT NULL,
    topic TEXT NOT NULL, created_by INTEGER, created_at TEXT NOT NULL, UNIQUE(chat_id, topic));
CREATE TABLE seen_documents(doc_id TEXT PRIMARY KEY);
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def test_first_open_takes_in_the_files_of_earlier_versions(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "manifest.sqlite") as old:
        old.executescript(OLD_MANIFEST)
        old.execute("INSERT INTO files VALUES ('/docs/a.txt', 'd1', 10, 5)")
    with sqlite3.connect(tmp_path / "subscriptions.sqlite") as old:
        old.executescript(OLD_SUBSCRIPTIONS)
        old.execute("INSERT INTO subscriptions VALUES (1, 42, 'port', 7, '2026-01-01')")
        old.execute("INSERT INTO meta VALUES ('runlog_seq', '2')")
    line = {"seq": 2, "finished_at": "2026-01-01T00:00:00+00:00", "pid": 9, "seconds": 1.0}
    line |= {"embedded_chunks": 3, "repaired": 0, "results": [["a.txt", "added", None, 3]]}
    (tmp_path / "runs.jsonl").write_bytes(
        b"\xff\xfe garbled \x80\n" + json.dumps(line).encode() + b"\n"  # a damaged line first
    )

    db = connect(state_path(tmp_path))
    assert schema_version(db) == SCHEMA_VERSION
    assert db.execute("SELECT path FROM files").fetchall() == [("/docs/a.txt",)]
    assert db.execute("SELECT chat_id, topic FROM subscriptions").fetchall() == [(42, "port")]
    assert db.execute("SELECT value FROM meta WHERE key='runlog_seq'").fetchone() == ("2",)
    (run,) = runlog.read_all(db)
    assert run.seq == 2 and run.report.results[0].outcome is Outcome.ADDED
    assert runlog.begin(db) == 3  # numbering goes on from the old log's
    db.close()
    left = sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("state."))
    assert left == ["runs.jsonl.migrated", "subscriptions.sqlite.migrated"]


def test_a_run_killed_mid_way_is_told_exactly(tmp_path: Path, model_dir: Path) -> None:
    """Every file is told once, as added, across the killed run and the one that finished
    it (before: the killed run's committed files were never told)."""
    docs = tmp_path / "docs"
    write_corpus(docs, 40, version=1)
    settings = make_settings(tmp_path / "data", model_dir, documents_dir=docs, embed_batch_size=8)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DATA_DIR": str(settings.data_dir),
        "DOCUMENTS_DIR": str(docs),
        "MODEL_DIR": str(model_dir),
        "EMBED_BATCH_SIZE": "8",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "ingest"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    store = state_path(settings.data_dir)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:  # kill once some files are committed
            if store.exists():
                with sqlite3.connect(store) as db:
                    try:
                        done = db.execute("SELECT COUNT(*) FROM files").fetchone()[0]
                    except sqlite3.OperationalError:  # tables not made yet
                        done = 0
                if done >= 8:
                    break
            time.sleep(0.05)
        assert proc.poll() is None, "the ingest finished before the kill"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()

    run_ingest(settings, embeddings=LocalEmbeddings(model_dir))
    killed, finished = runlog.read_all(settings.data_dir)
    assert killed.interrupted and not finished.interrupted
    told = [r.path for run in (killed, finished) for r in run.report.results]
    assert all(r.outcome is Outcome.ADDED for run in (killed, finished) for r in run.report.results)
    assert sorted(told) == sorted(f"note-{i:03}.txt" for i in range(40))  # each once
    assert killed.report.results  # the killed run's files are told by it
