"""Types that the ingest stages pass on: documents, chunks and the ingest report.

`ingest` owns the index format; `bot` reads these types and never the reverse.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


@dataclass(frozen=True, slots=True)
class PageSpan:
    """Characters ``[start, end)`` of ``Document.text`` come from PDF page ``page`` (1-based)."""

    page: int
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Document:
    """One source file, parsed and cleaned: the text every chunk offset refers to.

    ``text`` has distributor boilerplate (wire disclaimers, contact lines, copyright
    footers) removed, so it never becomes answer material.
    """

    doc_id: str  # content hash of the source bytes (hex); identical content ⇒ same id
    path: str  # path of the source file as given to ingest
    text: str
    title: str
    format: str  # "txt" | "md" | "html" | "pdf" | "docx"
    date: str | None = None  # publication date, ISO ``YYYY-MM-DD``
    place: str | None = None  # place of the dateline, e.g. "QINGDAO, CHINA"
    url: str | None = None  # source link stated by the document
    publisher: str | None = None  # e.g. "EIN Presswire"
    pages: tuple[PageSpan, ...] = ()  # PDF only
    removed_boilerplate: int = 0  # characters of boilerplate stripped


@dataclass(frozen=True, slots=True)
class Chunk:
    """A retrievable passage: ``text == document.text[start:end]``, always."""

    chunk_id: str  # stable: derived from doc_id, offsets and content
    doc_id: str
    index: int  # position in the document, 0-based
    text: str
    start: int
    end: int
    page: int | None = None  # PDF page the chunk starts on (1-based)


@dataclass(frozen=True, slots=True)
class IndexedChunk:
    """A chunk as stored in the index, with its document's metadata (what retrieval reads)."""

    chunk_id: str
    doc_id: str
    text: str  # exactly Document.text[start:end]
    path: str
    title: str
    index: int
    start: int
    end: int
    page: int | None = None
    date: str | None = None  # ISO YYYY-MM-DD
    url: str | None = None
    place: str | None = None
    publisher: str | None = None
    # Encoded by ingest.sentence_vectors; not decoded until the answer selector asks.
    sentence_vectors: str | None = field(default=None, repr=False, compare=False)


class Outcome(StrEnum):
    ADDED = "added"
    UPDATED = "updated"
    RENAMED = "renamed"
    UNCHANGED = "unchanged"
    REMOVED = "removed"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class FileResult:
    path: str
    outcome: Outcome
    reason: str | None = None  # why it failed, or a note (e.g. "duplicate of a.txt")
    chunks: int = 0


@dataclass(slots=True)
class IngestReport:
    """What one ingest run changed, file by file."""

    results: list[FileResult] = field(default_factory=list)
    dry_run: bool = False
    seconds: float = 0.0
    embedded_chunks: int = 0
    pages: int = 0
    repaired: int = 0  # chunks removed by crash repair at the start of the run

    def count(self, outcome: Outcome) -> int:
        return sum(1 for r in self.results if r.outcome is outcome)

    @property
    def failures(self) -> list[FileResult]:
        return [r for r in self.results if r.outcome is Outcome.FAILED]

    def summary(self) -> dict[str, int]:
        return {o.value: self.count(o) for o in Outcome}


class LoadError(Exception):
    """A file could not be turned into a Document; ``str(err)`` is the user-facing reason."""
