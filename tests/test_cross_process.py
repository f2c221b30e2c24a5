"""A running bot sees what another process ingested, without a restart (embedded Chroma).

The bot's AnswerService stays open while a real `briefing ingest` process writes into the
same DATA_DIR; the service's next search must find the new document in both lists
(dense from Chroma, BM25 from the saved lexical index).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.service import AnswerService
from ingest.pipeline import run_ingest
from tests.conftest import make_settings
from tests.test_dropfolder import cli_ingest
from tests.test_service import NOTES, QINGDAO, QUESTION


def test_a_running_service_answers_from_a_document_another_process_ingested(
    tmp_path: Path, model_dir: Path
) -> None:
    if not QINGDAO.exists():
        pytest.skip("../shared corpus is not present")
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, text in NOTES.items():
        (docs / name).write_text(text)
    settings = make_settings(tmp_path / "data", model_dir, documents_dir=docs)
    assert not run_ingest(settings).failures
    service = AnswerService(settings)

    before = service.retriever.search(QUESTION, k=5)
    assert before and all(hit.path != QINGDAO.name for hit in before)

    (docs / QINGDAO.name).write_bytes(QINGDAO.read_bytes())
    cli_ingest(settings)  # another process writes into the same embedded Chroma

    after = service.retriever.search(QUESTION, k=5)
    assert after[0].path == QINGDAO.name
    # Both lists found it: the dense side reads the new vectors, not only BM25's files.
    assert after[0].dense_rank is not None
    assert after[0].lexical_rank is not None
    assert any("341.81" in hit.text for hit in after)

    # This process's own ingest (the bot's watcher, /ingest) shares chromadb's system for
    # the path: its writes are visible as they are, and nothing is reopened.
    client = service.store.client
    (docs / "ferry.md").write_text(
        "---\ntitle: Harbour ferry note\ndate: 2020-10-01\n---\n"
        "The harbour ferry carried 3.2 million passengers in the year to September 2020.\n"
    )
    assert not run_ingest(settings).failures
    ferry = service.retriever.search("How many passengers did the harbour ferry carry?", k=5)
    assert ferry[0].path == "ferry.md"
    assert ferry[0].dense_rank is not None
    assert service.store.client is client
