"""Big and odd files (issue 18, case 8): a run of text with no space is cut at a hard limit
(before: a 200 KB line made the whole document one chunk, and every fact in it
unanswerable); a file mixing encodings is decoded line by line (before: wholly as
Cyrillic)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ingest.chunking import CHARS_PER_PIECE, chunk_document
from ingest.embeddings import LocalEmbeddings
from ingest.loaders import decode_text, parse_document

if TYPE_CHECKING:
    from bot.settings import Settings

FACT = "Qingdao's foreign trade reached 341.81 billion yuan in the first seven months."
OTHER = "The port handled 1,200 containers in May, up 4 percent."


@pytest.fixture(scope="module")
def embeddings(model_dir: Path) -> LocalEmbeddings:
    return LocalEmbeddings(model_dir)


def test_a_run_without_spaces_is_cut_and_the_facts_keep_their_own_chunks(
    tmp_path: Path, embeddings: LocalEmbeddings
) -> None:
    run = "QmFzZTY0" * 25_000  # 200 KB of base64, one "word"
    text = f"Trade note\n\n{FACT} {run} {OTHER}\n\nA later paragraph on rail freight.\n"
    path = tmp_path / "note.txt"
    path.write_text(text)
    doc = parse_document(path, path.read_bytes(), "d1")
    chunks = chunk_document(doc, count_tokens=embeddings.count_tokens, max_tokens=256)
    assert len(chunks) > 100
    hard_limit = 256 * CHARS_PER_PIECE
    assert max(len(c.text) for c in chunks) <= hard_limit
    assert all(doc.text[c.start : c.end] == c.text for c in chunks)  # exact slices
    (with_fact,) = [c for c in chunks if "341.81" in c.text]
    assert len(with_fact.text) < 2_000  # its embedding is about the fact, not the run
    (with_other,) = [c for c in chunks if "1,200 containers" in c.text]
    assert len(with_other.text) < 2_000


def test_chinese_text_without_spaces_is_not_taken_for_a_run(embeddings: LocalEmbeddings) -> None:
    from ingest.types import Document

    body = "青岛市今年前七个月外贸进出口总值3418.1亿元，同比增长9.8%。" * 30
    doc = Document(doc_id="d", path="z.txt", title="青岛外贸", text=body, format="txt")
    chunks = chunk_document(doc, count_tokens=embeddings.count_tokens, max_tokens=256)
    assert all(c.text.endswith("。") for c in chunks[:-1])  # cut at sentences, as before


def test_a_file_mixing_latin1_utf8_and_gbk_is_decoded_line_by_line() -> None:
    data = (
        b"Qingdao trade report\n"
        + "Le café à Qingdao était ouvert.\n".encode("latin-1")
        + "青岛外贸总额3418.1亿元。\n".encode("gbk")
        + "The port handled 1,200 containers — in May.\n".encode()
        + "外贸增长显著。\n".encode()
    )
    assert decode_text(data).splitlines() == [
        "Qingdao trade report",
        "Le café à Qingdao était ouvert.",
        "青岛外贸总额3418.1亿元。",
        "The port handled 1,200 containers — in May.",
        "外贸增长显著。",
    ]


def test_a_file_in_one_legacy_encoding_is_still_guessed_whole() -> None:
    text = "青岛市今年前七个月外贸进出口总值3418.1亿元，同比增长9.8%。\n" * 5
    assert decode_text(text.encode("gbk")) == text


@pytest.mark.parametrize("stream_file_mb", [50.0, 0.001], ids=["read-whole", "in-sections"])
def test_a_big_document_killed_mid_way_resumes_after_what_was_embedded(
    tmp_path: Path, model_dir: Path, embeddings: LocalEmbeddings, stream_file_mb: float
) -> None:
    """Before: the chunks a killed run had embedded were removed and the next run embedded
    the whole document again (a kill lost everything done on a big file)."""
    import sqlite3

    from ingest.pipeline import run_ingest
    from tests.conftest import make_settings
    from tests.test_ingest_crash import check_consistent

    docs = tmp_path / "docs"
    docs.mkdir()
    paragraphs = [
        f"District {i} reported that harbour output rose to {100 + i}.{i % 10} million yuan "
        f"as the berth programme expanded, officials said in note {i}."
        for i in range(160)
    ]
    (docs / "big.txt").write_text("Harbour annual report\n\n" + "\n\n".join(paragraphs))
    options = {
        "chunk_tokens": 64, "chunk_overlap_tokens": 0, "embed_batch_size": 8,
        "stream_file_mb": stream_file_mb,  # the big file read whole, or in sections
    }  # fmt: skip
    settings = make_settings(tmp_path / "data", model_dir, documents_dir=docs, **options)
    kept = kill_mid_document(settings, options, tmp_path)

    report = run_ingest(settings, embeddings=embeddings)
    (added,) = report.results
    assert added.chunks > kept >= 24
    assert report.embedded_chunks == added.chunks - kept  # only what was left
    check_consistent(settings, embeddings)
    with sqlite3.connect(settings.manifest_path) as db:
        assert db.execute("SELECT COUNT(*) FROM partial").fetchone()[0] == 0


def kill_mid_document(settings: Settings, options: Mapping[str, object], cwd: Path) -> int:
    """Run ``briefing ingest`` with ``options``, SIGKILL it once 24 or more chunks of a
    big document are stored, and return how many were."""
    import os
    import signal
    import sqlite3
    import subprocess
    import sys
    import time

    from tests.conftest import ROOT

    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DATA_DIR": str(settings.data_dir),
        "DOCUMENTS_DIR": str(settings.documents_dir),
        "MODEL_DIR": str(settings.model_dir),
        **{k.upper(): str(v) for k, v in options.items()},
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "ingest"], env=env, cwd=cwd,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    store = settings.manifest_path
    kept = 0
    deadline = time.monotonic() + 120
    try:
        while kept < 24 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
            if store.exists():
                with sqlite3.connect(store) as db:
                    try:
                        kept = db.execute("SELECT COUNT(*) FROM partial").fetchone()[0]
                    except sqlite3.OperationalError:
                        kept = 0
        assert proc.poll() is None, "the ingest finished before the kill"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    with sqlite3.connect(store) as db:
        return int(db.execute("SELECT COUNT(*) FROM partial").fetchone()[0])
