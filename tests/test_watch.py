"""The folder watcher ingests new and changed files and removes deleted ones."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from ingest.embeddings import LocalEmbeddings
from ingest.store import open_index
from ingest.types import IngestReport
from ingest.watch import watch
from tests.conftest import make_settings


def wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_watcher_follows_the_folder(tmp_path: Path, model_dir: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "first.txt").write_text("First note\n\nThe ferry terminal opened in April 2022.\n")
    settings = make_settings(tmp_path / "data", model_dir, documents_dir=docs)
    embeddings = LocalEmbeddings(model_dir)
    reports: list[IngestReport] = []
    stop = threading.Event()
    thread = threading.Thread(
        target=watch,
        args=(settings, reports.append),
        kwargs={"stop": stop, "quiet_s": 0.3, "embeddings": embeddings},
        daemon=True,
    )
    thread.start()
    try:
        wait_for(lambda: len(reports) >= 1)
        store = open_index(settings, embeddings)

        def texts() -> str:
            return " ".join(c.text for c in store.all_chunks())

        assert "ferry terminal" in texts()
        (docs / "second.md").write_text("# Second\n\nA cargo airport handled 90,000 tonnes.\n")
        wait_for(lambda: "90,000 tonnes" in texts())
        (docs / "second.md").write_text("# Second\n\nA cargo airport handled 95,000 tonnes.\n")
        wait_for(lambda: "95,000 tonnes" in texts() and "90,000" not in texts())
        (docs / "first.txt").unlink()
        wait_for(lambda: "ferry terminal" not in texts())

        def outcomes() -> set[str]:
            return {r.outcome.value for rep in list(reports) for r in rep.results}

        wait_for(lambda: {"added", "updated", "removed"} <= outcomes())
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()
