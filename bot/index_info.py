"""The index as the admin commands see it: what it holds, and a re-ingest on request.

``/status``, ``/docs`` and ``/ingest`` (and ``briefing`` status output) read the ingest
manifest (documents, the last run's failures) and Chroma (the passage count) here, so the
answering service only answers. No Telegram types here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.settings import Settings
from ingest.embeddings import IndexEmbeddings
from ingest.manifest import DocRow, Manifest
from ingest.pipeline import run_ingest
from ingest.store import IndexStore
from ingest.types import FileResult, IngestReport, Outcome


@dataclass(frozen=True, slots=True)
class DocInfo:
    title: str
    date: str | None
    path: str
    url: str | None
    chunks: int


@dataclass(frozen=True, slots=True)
class IndexStatus:
    documents: int
    chunks: int
    last_ingest: datetime | None
    last_failures: list[FileResult] = field(default_factory=list)
    embedding_model: str = ""
    answerer: str = "extractive"
    date_range: tuple[str | None, str | None] = (None, None)


class IndexInfo:
    """Facts about one index, and its re-ingest with the model already loaded."""

    def __init__(
        self, settings: Settings, store: IndexStore, embeddings: IndexEmbeddings, answerer: str
    ) -> None:
        self.settings = settings
        self.store = store
        self.embeddings = embeddings
        self.answerer = answerer  # shown by /status: "extractive" or "llm (<model>)"

    def _read_manifest(self) -> tuple[list[DocRow], tuple[str, dict[str, Any]] | None]:
        manifest = Manifest(self.settings.manifest_path)
        try:
            return manifest.docs(), manifest.last_run()
        finally:
            manifest.close()

    def status(self) -> IndexStatus:
        docs, last = self._read_manifest()
        dates = sorted(d.date for d in docs if d.date)
        failures: list[FileResult] = []
        last_at: datetime | None = None
        if last is not None:
            last_at = datetime.fromisoformat(last[0])
            failures = [
                FileResult(f["path"], Outcome.FAILED, f["reason"])
                for f in last[1].get("failures", [])
            ]
        return IndexStatus(
            documents=len(docs),
            chunks=self.store.count(),
            last_ingest=last_at,
            last_failures=failures,
            embedding_model=self.embeddings.name,
            answerer=self.answerer,
            date_range=(dates[0], dates[-1]) if dates else (None, None),
        )

    def recent_documents(self, n: int = 10) -> list[DocInfo]:
        docs, _ = self._read_manifest()
        docs.sort(key=lambda d: (d.date or "", d.ingested_at), reverse=True)
        return [DocInfo(d.title, d.date, d.path, d.url, len(d.chunk_ids)) for d in docs[:n]]

    def reingest(self) -> IngestReport:
        """Re-ingest the documents folder; retrieval notices the new generation by itself.

        The pipeline's lock refuses a second ingest while one runs (another admin's, the
        watcher's) with ``IngestLocked``, rather than queueing it.
        """
        return run_ingest(self.settings, embeddings=self.embeddings)
