"""The writing half of an ingest run: embed chunks, store them, commit their documents.

Order of writes (so that ``kill -9`` at any moment leaves a state the next run repairs):
1. the chunk ids about to be written are committed to the manifest's ``pending`` table;
2. the chunks are upserted into Chroma (idempotent: ids derive from content), a batch at a
   time; a document bigger than a batch records each stored batch in ``partial``, so a
   killed run's successor resumes after them;
3. one SQLite transaction records the documents and files, clears ``pending`` and
   ``partial`` and logs those files' outcomes in the run log (``ingest.runlog``: a killed
   run's notice is exact).
``ingest.pipeline`` decides what to write; ``ingest.repair`` undoes a killed run's half.
"""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from ingest import runlog
from ingest.embeddings import IndexEmbeddings
from ingest.hostile import flagged_sentences
from ingest.manifest import FileRow, Manifest
from ingest.repair import chroma_alive, chroma_damage, delete_present, lost_index
from ingest.scan import Candidate
from ingest.sentence_vectors import embed_chunks
from ingest.settings import IndexSettings
from ingest.store import IndexStore, chunk_metadata
from ingest.stream import Section, Sections
from ingest.types import Chunk, Document, FileResult, IngestReport, LoadError, Outcome

# The reason of a file left for a later run (it failed to parse while still being written):
# reported as unchanged, so nobody is told of a failure that may not be one.
NOT_READY = "not ready yet"

# Chunks one section of a streamed document: (section, index of its first chunk) → chunks.
SectionChunker = Callable[[Document, Section, int], list[Chunk]]


@dataclass
class Queued:
    doc: Document
    chunks: list[Chunk]
    files: list[tuple[Candidate, Outcome]]


@dataclass
class Journal:
    """This run's row of the run log, and how many of its results are written there."""

    seq: int | None  # None: a dry run, not logged
    logged: int = 0

    def write(self, db: sqlite3.Connection, report: IngestReport) -> None:
        """Log the results not logged yet, inside the caller's transaction."""
        if self.seq is not None:
            runlog.log_results(db, self.seq, report.results[self.logged :])
        self.logged = len(report.results)


@dataclass
class Flagged:
    """Sentences addressed to an AI assistant, as a document is read: the first, and how many."""

    first: str | None = None
    count: int = 0

    def add(self, text: str) -> None:
        found = flagged_sentences(text)
        if found and self.first is None:
            self.first = found[0]
        self.count += len(found)

    def note(self) -> str | None:
        """The report's note on them (an answer that retrieves one leaves the document
        out); None when there are none."""
        if self.first is None:
            return None
        first = " ".join(self.first.split())
        first = first if len(first) <= 80 else first[:79] + "…"
        count = f"{self.count} sentences" if self.count > 1 else "1 sentence"
        return f"{count} addressed to an AI assistant; answers leave this document out: “{first}”"


def hostile_note(text: str) -> str | None:
    flagged = Flagged()
    flagged.add(text)
    return flagged.note()


@dataclass
class Run:
    settings: IndexSettings
    manifest: Manifest
    store: IndexStore | None  # None: a dry run, nothing is written
    embeddings: IndexEmbeddings
    report: IngestReport
    journal: Journal
    retry_recent_s: float = 0.0
    # How long big files are embedded in this run at most (None: to the end), and when
    # that is (``time.monotonic()``, set as they start): the watcher sets a budget, so
    # that files dropped meanwhile are not kept waiting behind a big one.
    stream_budget_s: float | None = None
    stream_deadline: float | None = None
    queue: dict[str, Queued] = field(default_factory=dict)
    changed: bool = False
    paused: set[str] = field(default_factory=set)  # big documents left to a later run

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A manifest transaction that also logs the results reported so far."""
        with self.manifest.transaction() as db:
            yield db
            self.journal.write(db, self.report)

    @property
    def base(self) -> str:
        return os.path.abspath(self.settings.documents_dir)

    def queued_chunks(self) -> int:
        return sum(len(q.chunks) for q in self.queue.values())

    def flush(self) -> None:
        if not self.queue:
            return
        items = list(self.queue.values())
        self.queue = {}
        if self.store is None:
            for q in items:
                for cand, outcome in q.files:
                    self.report.results.append(
                        FileResult(cand.display, outcome, None, len(q.chunks))
                    )
            return
        self._write(items)

    def _write(self, items: list[Queued]) -> None:
        """Embed and store ``items`` as one group; on failure, each document on its own, so
        one bad document never takes the others in its group down with it."""
        assert self.store is not None
        try:
            self._write_group(self.store, items)
        except Exception as err:
            self._stop_if_index_lost(items[0].files[0][0].display, err)
            if len(items) > 1:
                for q in items:
                    self._write([q])
                return
            (q,) = items
            self._forget(q.doc.doc_id, [c.chunk_id for c in q.chunks])
            reason = f"could not embed or store: {type(err).__name__}: {err}"
            for cand, _ in q.files:
                self.report.results.append(FileResult(cand.display, Outcome.FAILED, reason))
            return
        self.changed = True

    def report_unreadable(
        self, files: list[tuple[Candidate, Outcome]], reason: str, *, load_error: bool
    ) -> None:
        """Report files whose content could not be indexed. One that failed to load while
        still recent may be half-written: left for a later run as not ready, not failed."""
        recent = time.time() - self.retry_recent_s
        for cand, outcome in files:
            if load_error and cand.mtime_ns / 1e9 > recent:
                note = f"{NOT_READY}: {reason}"
                self.report.results.append(FileResult(cand.display, Outcome.UNCHANGED, note))
                continue
            kept = load_error and outcome is Outcome.UPDATED
            note = f"{reason}; the previous version stays indexed" if kept else reason
            self.report.results.append(FileResult(cand.display, Outcome.FAILED, note))

    def _stop_if_index_lost(self, display: str, err: Exception) -> None:
        """Raise IndexUnavailable when a failed write means the index itself is gone (its
        files damaged or deleted, or the server lost), not one file's problem: that stops
        the run with one line naming it, rather than failing every file after it."""
        if self.store is None:
            return
        if (damage := chroma_damage(self.settings, f"writing {display}")) is not None:
            raise damage from err
        if not chroma_alive(self.store):
            raise lost_index(self.settings, f"writing {display}", err) from err

    def _write_group(self, store: IndexStore, items: list[Queued]) -> None:
        self.manifest.add_pending({q.doc.doc_id: [c.chunk_id for c in q.chunks] for q in items})
        done: set[str] = set()  # a big document's chunks a killed run embedded already
        for q in items:
            done |= self.manifest.embedded_of(q.doc.doc_id)
        todo = [(q.doc, c) for q in items for c in q.chunks if c.chunk_id not in done]
        # Embedded and stored a batch at a time: memory stays that of one batch however
        # big the document, and a big document's progress is kept as it goes.
        step = max(1, self.settings.embed_batch_size)
        for at in range(0, len(todo), step):
            self._store_batch(store, todo[at : at + step], keep_progress=len(todo) > step)
        self._commit(
            [(q.doc, [c.chunk_id for c in q.chunks], q.files, hostile_note(q.doc.text))
             for q in items],
            embedded=len(todo),
        )  # fmt: skip

    def _store_batch(
        self, store: IndexStore, part: Sequence[tuple[Document, Chunk]], *, keep_progress: bool
    ) -> None:
        vectors, sentences = embed_chunks(self.embeddings, part)
        store.upsert(
            [c.chunk_id for _, c in part],
            [c.text for _, c in part],
            [
                {**chunk_metadata(d, c, d.path), **extra}
                for (d, c), extra in zip(part, sentences, strict=True)
            ],
            vectors.tolist(),
        )
        if keep_progress:
            by_doc: dict[str, list[str]] = defaultdict(list)
            for d, c in part:
                by_doc[d.doc_id].append(c.chunk_id)
            self.manifest.mark_embedded(by_doc)

    def _commit(
        self,
        docs: list[tuple[Document, list[str], list[tuple[Candidate, Outcome]], str | None]],
        *,
        embedded: int,
    ) -> None:
        """Record documents (with their chunk ids), their files and their outcomes in one
        transaction, so a kill after it is told exactly."""
        results = []
        for _, chunk_ids, files, note in docs:
            for i, (cand, outcome) in enumerate(files):
                if i == 0:
                    results.append(FileResult(cand.display, outcome, note, len(chunk_ids)))
                else:
                    same = f"same content as {files[0][0].display}; indexed once"
                    results.append(FileResult(cand.display, outcome, same, 0))
        doc_ids = [doc.doc_id for doc, *_ in docs]
        with self.manifest.transaction() as db:
            for doc, chunk_ids, files, _ in docs:
                Manifest.put_doc(db, doc, chunk_ids)
                for cand, _ in files:
                    Manifest.put_file(db, FileRow(cand.key, doc.doc_id, cand.size, cand.mtime_ns))
            self.manifest.clear_pending(doc_ids)
            Manifest.clear_partial(db, doc_ids)
            # The files' outcomes commit with their rows: a kill after this is told exactly.
            runlog_results = self.report.results[self.journal.logged :] + results
            if self.journal.seq is not None:
                runlog.log_results(db, self.journal.seq, runlog_results)
        self.report.results.extend(results)
        self.journal.logged = len(self.report.results)
        self.report.embedded_chunks += embedded
        for doc, *_ in docs:
            self.report.pages += len(doc.pages)

    def _forget(self, doc_id: str, chunk_ids: list[str]) -> None:
        """Undo a failed write now: remove what reached Chroma and its journal rows, so the
        journal holds nothing a later run could trip on. (If this fails too, the next
        run's repair does the same.)"""
        assert self.store is not None
        committed = self.manifest.all_chunk_ids()
        try:
            stray = [c for c in chunk_ids if c not in committed]
            delete_present(self.store, stray)
        except Exception:  # the next run's repair retries; the report already says why
            return
        with self.manifest.transaction() as db:
            self.manifest.clear_pending([doc_id])
            Manifest.clear_partial(db, [doc_id])

    # -- a big text file, read in sections (``ingest.stream``) -------------------------------

    def write_streamed(
        self, sections: Sections, files: list[tuple[Candidate, Outcome]], chunker: SectionChunker
    ) -> None:
        """Chunk, embed and store a big file a section and a batch at a time, then commit it;
        its memory is one section's and one batch's, and a kill keeps every stored batch."""
        doc_id = sections.doc_id
        done = self.manifest.embedded_of(doc_id)  # what a killed run stored already
        step = max(1, self.settings.embed_batch_size)
        chunk_ids: list[str] = []
        flagged = Flagged()
        todo: list[Chunk] = []
        embedded = 0
        try:
            for section in sections:
                head = sections.head
                assert head is not None  # set by the first section
                chunks = chunker(head, section, len(chunk_ids))
                chunk_ids += [c.chunk_id for c in chunks]
                flagged.add(section.text)
                if self.store is None:
                    continue  # a dry run counts the chunks and writes nothing
                todo += [c for c in chunks if c.chunk_id not in done]
                while len(todo) >= step:
                    embedded += self._store_streamed(head, todo[:step])
                    todo = todo[step:]
                    if self.stream_deadline is not None and time.monotonic() > self.stream_deadline:
                        self._pause_streamed(doc_id, files, len(done) + embedded, embedded)
                        return
            if todo and sections.head is not None:
                embedded += self._store_streamed(sections.head, todo)
        except LoadError as err:
            self._fail_streamed(doc_id, files, str(err), maybe_unready=True)
            return
        except Exception as err:
            self._stop_if_index_lost(files[0][0].display, err)
            reason = f"could not embed or store: {type(err).__name__}: {err}"
            self._fail_streamed(doc_id, files, reason)
            return
        if sections.changed:
            reason = "the file changed while it was read"
            self._fail_streamed(doc_id, files, reason, maybe_unready=True)
            return
        if sections.head is None or not chunk_ids:
            self._fail_streamed(doc_id, files, "no text to index")
            return
        if self.store is None:
            for cand, outcome in files:
                self.report.results.append(FileResult(cand.display, outcome, None, len(chunk_ids)))
            return
        # The document's text is not kept in the manifest: the file is its record.
        doc = dataclasses.replace(sections.head, text="")
        self._commit([(doc, chunk_ids, files, flagged.note())], embedded=embedded)
        self.changed = True

    def _store_streamed(self, head: Document, chunks: list[Chunk]) -> int:
        assert self.store is not None
        # Journal first, as for any write: pending holds this batch until it is stored and
        # recorded in ``partial`` (a batch stored before the kill is kept, no more).
        self.manifest.add_pending({head.doc_id: [c.chunk_id for c in chunks]})
        self._store_batch(self.store, [(head, c) for c in chunks], keep_progress=True)
        return len(chunks)

    def _pause_streamed(
        self, doc_id: str, files: list[tuple[Candidate, Outcome]], stored: int, embedded: int
    ) -> None:
        """Leave the rest of a big file to the next run: what is stored stays (``partial``),
        and the file is reported as not ready, so the watcher runs again for it."""
        with self.manifest.transaction():
            self.manifest.clear_pending([doc_id])  # every stored batch is in ``partial``
        self.paused.add(doc_id)
        self.changed = True
        self.report.embedded_chunks += embedded
        note = f"{NOT_READY}: {stored} chunks stored so far, the rest follows"
        for cand, _ in files:
            self.report.results.append(FileResult(cand.display, Outcome.UNCHANGED, note))

    def _fail_streamed(
        self,
        doc_id: str,
        files: list[tuple[Candidate, Outcome]],
        reason: str,
        *,
        maybe_unready: bool = False,
    ) -> None:
        """Report a streamed file that could not be read whole, and remove what of it was
        stored (a later run reads it again from its start)."""
        if self.store is not None:
            stored = self.manifest.partial().get(doc_id, [])
            stored += self.manifest.pending().get(doc_id, [])
            if stored:
                self._forget(doc_id, stored)
                self.changed = True
        self.report_unreadable(files, reason, load_error=maybe_unready)
