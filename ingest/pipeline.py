"""One ingest run: scan → hash → parse → chunk → embed → write, incrementally and crash-safely.

Order of writes (so that ``kill -9`` at any moment leaves a state the next run repairs):
1. the chunk ids about to be written are committed to the manifest's ``pending`` table;
2. the chunks are upserted into Chroma (idempotent: ids derive from content);
3. one SQLite transaction records the documents and files, clears ``pending`` and logs
   those files' outcomes in the run log (``ingest.runlog``: a killed run's notice is exact);
4. only then are replaced or deleted documents' chunks removed from Chroma.
``repair`` at the start of each run undoes whatever a killed run left half done.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ingest import runlog
from ingest.chunking import chunk_document
from ingest.embeddings import IndexEmbeddings, make_embeddings
from ingest.errors import IndexUnavailable, UsageError
from ingest.errors import IngestLocked as IngestLocked  # re-exported
from ingest.hostile import flagged_sentences
from ingest.lexical_store import LexicalFiles
from ingest.loaders import parse_document
from ingest.lock import REBUILD_MARKER, ingest_lock
from ingest.manifest import FileRow, Manifest
from ingest.repair import (
    chroma_alive,
    chroma_damage,
    delete_present,
    heal_chroma,
    heal_state,
    lost_index,
    repair,
)
from ingest.scan import Candidate, covered, display_path, scan
from ingest.sentence_vectors import embed_chunks
from ingest.settings import IndexSettings
from ingest.store import IndexStore, chunk_metadata, drop_index, make_client, open_index
from ingest.types import Chunk, Document, FileResult, IngestReport, LoadError, Outcome

log = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]  # (done, total, current path)
# The reason of a file left for a later run (it failed to parse while still being written):
# reported as unchanged, so nobody is told of a failure that may not be one.
NOT_READY = "not ready yet"


class IngestStopped(IndexUnavailable):
    """Chroma was lost mid-run; ``report`` holds what the run did before it stopped."""

    def __init__(self, reason: str, report: IngestReport) -> None:
        super().__init__(reason)
        self.report = report


def content_id(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


@dataclass
class _Queued:
    doc: Document
    chunks: list[Chunk]
    files: list[tuple[Candidate, Outcome]]


@dataclass
class _Journal:
    """This run's row of the run log, and how many of its results are written there."""

    seq: int | None  # None: a dry run, not logged
    logged: int = 0

    def write(self, db: sqlite3.Connection, report: IngestReport) -> None:
        """Log the results not logged yet, inside the caller's transaction."""
        if self.seq is not None:
            runlog.log_results(db, self.seq, report.results[self.logged :])
        self.logged = len(report.results)


@dataclass
class _Run:
    settings: IndexSettings
    manifest: Manifest
    store: IndexStore | None
    embeddings: IndexEmbeddings
    report: IngestReport
    journal: _Journal
    retry_recent_s: float = 0.0
    queue: dict[str, _Queued] = field(default_factory=dict)
    changed: bool = False

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
        if self.store is None:  # dry run: nothing is written
            for q in items:
                for cand, outcome in q.files:
                    self.report.results.append(
                        FileResult(cand.display, outcome, None, len(q.chunks))
                    )
            return
        self._write(items)

    def _write(self, items: list[_Queued]) -> None:
        """Embed and store ``items`` as one group; on failure, each document on its own, so
        one bad document never takes the others in its group down with it."""
        assert self.store is not None
        try:
            self._write_group(self.store, items)
        except Exception as err:
            if not chroma_alive(self.store):
                raise lost_index(
                    self.settings, f"writing {items[0].files[0][0].display}", err
                ) from err
            if len(items) > 1:
                for q in items:
                    self._write([q])
                return
            (q,) = items
            self._forget_pending(q)
            reason = f"could not embed or store: {type(err).__name__}: {err}"
            for cand, _ in q.files:
                self.report.results.append(FileResult(cand.display, Outcome.FAILED, reason))
            return
        self.changed = True

    def _write_group(self, store: IndexStore, items: list[_Queued]) -> None:
        self.manifest.add_pending({q.doc.doc_id: [c.chunk_id for c in q.chunks] for q in items})
        done: set[str] = set()  # a big document's chunks a killed run embedded already
        for q in items:
            done |= self.manifest.embedded_of(q.doc.doc_id)
        todo = [(q.doc, c) for q in items for c in q.chunks if c.chunk_id not in done]
        # Embedded and stored a batch at a time: memory stays that of one batch however
        # big the document, and a big document's progress is kept as it goes.
        step = max(1, self.settings.embed_batch_size)
        for at in range(0, len(todo), step):
            part = todo[at : at + step]
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
            if len(todo) > step:
                by_doc: dict[str, list[str]] = defaultdict(list)
                for d, c in part:
                    by_doc[d.doc_id].append(c.chunk_id)
                self.manifest.mark_embedded(by_doc)
        results = []
        for q in items:
            for i, (cand, outcome) in enumerate(q.files):
                note = (
                    hostile_note(q.doc.text)
                    if i == 0
                    else f"same content as {q.files[0][0].display}; indexed once"
                )
                count = len(q.chunks) if i == 0 else 0
                results.append(FileResult(cand.display, outcome, note, count))
        with self.manifest.transaction() as db:
            for q in items:
                Manifest.put_doc(db, q.doc, [c.chunk_id for c in q.chunks])
                for cand, _ in q.files:
                    Manifest.put_file(db, FileRow(cand.key, q.doc.doc_id, cand.size, cand.mtime_ns))
            self.manifest.clear_pending([q.doc.doc_id for q in items])
            Manifest.clear_partial(db, [q.doc.doc_id for q in items])
            # The files' outcomes commit with their rows: a kill after this is told exactly.
            runlog_results = self.report.results[self.journal.logged :] + results
            if self.journal.seq is not None:
                runlog.log_results(db, self.journal.seq, runlog_results)
        self.report.results.extend(results)
        self.journal.logged = len(self.report.results)
        self.report.embedded_chunks += len(todo)
        for q in items:
            self.report.pages += len(q.doc.pages)

    def _forget_pending(self, q: _Queued) -> None:
        """Undo a failed write now: remove what reached Chroma and its journal row, so the
        journal holds nothing a later run could trip on. (If this fails too, the next
        run's repair does the same.)"""
        assert self.store is not None
        committed = self.manifest.all_chunk_ids()
        try:
            stray = [c.chunk_id for c in q.chunks if c.chunk_id not in committed]
            delete_present(self.store, stray)
        except Exception:  # the next run's repair retries; the report already says why
            return
        with self.manifest.transaction() as db:
            self.manifest.clear_pending([q.doc.doc_id])
            Manifest.clear_partial(db, [q.doc.doc_id])


def run_ingest(
    settings: IndexSettings,
    paths: list[Path] | None = None,
    *,
    rebuild: bool = False,
    dry_run: bool = False,
    embeddings: IndexEmbeddings | None = None,
    progress: Progress | None = None,
    retry_recent_s: float = 0.0,
) -> IngestReport:
    """Bring the index in line with the files under ``paths`` (default: the documents folder).

    Raises UsageError (the documents folder is missing), IngestLocked, IndexMismatch,
    IndexUnavailable (IngestStopped, with the report so far, when Chroma is lost mid-run)
    or ModelNotInstalled for fatal conditions; per-file problems are reported in the
    returned IngestReport instead, and one file's failure never fails another.
    ``retry_recent_s`` (the watcher): a file modified that recently that fails to parse is
    left for a later run (unchanged, reason ``NOT_READY``) rather than failed.
    """
    started = time.perf_counter()
    report = IngestReport(dry_run=dry_run)
    if not paths and not settings.documents_dir.is_dir():
        raise UsageError(
            f"the documents folder {settings.documents_dir.absolute()} does not exist: "
            "create it, set DOCUMENTS_DIR, or name files or folders to ingest"
        )
    roots = list(paths) if paths else [settings.documents_dir]
    with ingest_lock(settings.data_dir):
        embeddings = embeddings or make_embeddings(settings)
        if rebuild and not dry_run:
            # What a rebuild needs, before it drops anything: a sound store of record and
            # Chroma files it can open (damaged ones are moved aside, followed topics kept).
            for note in heal_state(settings.data_dir) + heal_chroma(settings):
                log.warning("%s", note)
            make_client(settings).heartbeat()
        manifest = Manifest(settings.manifest_path)
        marker = settings.data_dir / REBUILD_MARKER
        journal = _Journal(None)
        if not dry_run:
            with manifest.transaction() as db:
                runlog.close_interrupted(db)  # a killed run's work becomes tellable now
                journal.seq = runlog.begin(db)
        try:
            if rebuild and not dry_run:
                marker.touch()  # readers say "being rebuilt" rather than "no documents"
                drop_index(settings)
                manifest.reset()
            try:
                store = open_index(settings, embeddings)
            except Exception as err:
                damage = chroma_damage(settings, "opening the index")
                if damage is None:
                    raise
                raise damage from err
            try:
                _run_steps(
                    settings, manifest, store, embeddings, report, journal, roots, progress,
                    retry_recent_s,
                )  # fmt: skip
            except IndexUnavailable as err:
                raise IngestStopped(str(err), report) from err
            except Exception as err:  # Chroma failing outside a file's write
                if (damage := chroma_damage(settings, "ingesting")) is not None:
                    raise damage from err
                if chroma_alive(store):
                    raise
                raise IngestStopped(str(lost_index(settings, "ingesting", err)), report) from err
            if not dry_run:
                marker.unlink(missing_ok=True)
        finally:
            report.seconds = time.perf_counter() - started
            if not dry_run and journal.seq is not None:
                with manifest.transaction() as db:  # tells the bot, whoever ran it
                    journal.write(db, report)
                    runlog.finish(db, journal.seq, report)
                    manifest.record_run(_run_record(report))
            manifest.close()
    return report


def _run_steps(
    settings: IndexSettings,
    manifest: Manifest,
    store: IndexStore,
    embeddings: IndexEmbeddings,
    report: IngestReport,
    journal: _Journal,
    roots: list[Path],
    progress: Progress | None,
    retry_recent_s: float,
) -> None:
    dry_run = report.dry_run
    if not dry_run:
        report.repaired = repair(manifest, store)
    store_or_none = None if dry_run else store
    run = _Run(settings, manifest, store_or_none, embeddings, report, journal, retry_recent_s)
    _ingest_files(run, roots, progress)
    run.flush()
    if not dry_run:
        _finish(run)
        if run.changed or report.repaired:
            store.bump_generation()
        # The BM25 files follow, touching only the documents this run changed.
        LexicalFiles(settings.data_dir).update_after_ingest(store, store.generation())


def _ingest_files(run: _Run, roots: list[Path], progress: Progress | None) -> None:
    report, manifest = run.report, run.manifest
    base = run.base
    for root in roots:
        if not root.exists() and not root.is_symlink():
            key = os.path.abspath(root)
            report.results.append(
                FileResult(display_path(key, base), Outcome.FAILED, "no such file or folder")
            )
    max_bytes = int(run.settings.max_file_mb * 1_000_000)
    candidates, rejected, prefixes = scan([r for r in roots if r.exists()], base, max_bytes)
    for rej in rejected:
        report.results.append(FileResult(rej.display, Outcome.FAILED, rej.reason))
    known = manifest.files()
    present = {c.key for c in candidates} | {r.key for r in rejected}
    missing_by_doc: dict[str, list[str]] = defaultdict(list)
    for key, row in known.items():
        if covered(key, prefixes) and key not in present:
            missing_by_doc[row.doc_id].append(key)

    # Parsing and chunking run on a worker thread, a few files ahead, while this thread
    # embeds and writes (onnxruntime and PDFium release the GIL). Every decision and write
    # stays on this thread, in file order, so crash safety is that of a sequential run.
    in_flight: dict[str, _Parsing] = {}  # doc_id -> its parse job, in submission order
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-parse")
    try:
        for done, cand in enumerate(candidates, 1):
            if progress:
                progress(done, len(candidates), cand.display)
            job = _plan_file(run, cand, known.get(cand.key), in_flight, missing_by_doc)
            if job is None:
                continue
            job.future = pool.submit(_parse_and_chunk, run, cand, job.data, job.doc_id)
            in_flight[job.doc_id] = job
            while (
                len(in_flight) > _LOOKAHEAD_FILES or _in_flight_bytes(in_flight) > _LOOKAHEAD_BYTES
            ):
                _take_oldest(run, in_flight)
        while in_flight:
            _take_oldest(run, in_flight)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)

    # Files that vanished (and were not renamed): their documents become orphans.
    for keys in missing_by_doc.values():
        for key in keys:
            report.results.append(FileResult(display_path(key, base), Outcome.REMOVED))
            if run.store is not None:
                with run.transaction() as db:
                    Manifest.drop_file(db, key)
                run.changed = True


_LOOKAHEAD_FILES = 4  # files parsed ahead of the one being embedded
_LOOKAHEAD_BYTES = 64_000_000  # and no more file bytes than this held for them


@dataclass
class _Parsing:
    """A file whose content is new to the index, being parsed and chunked on the worker."""

    doc_id: str
    data: bytes
    files: list[tuple[Candidate, Outcome]]
    future: Future[tuple[Document, list[Chunk]]] | None = None


def _in_flight_bytes(in_flight: dict[str, _Parsing]) -> int:
    return sum(len(job.data) for job in in_flight.values())


def _plan_file(
    run: _Run,
    cand: Candidate,
    old: FileRow | None,
    in_flight: dict[str, _Parsing],
    missing_by_doc: dict[str, list[str]],
) -> _Parsing | None:
    """Settle ``cand`` now if that needs no parsing (unchanged, touched, unreadable, a
    duplicate, content indexed already); else return the parse job it needs."""
    report, manifest = run.report, run.manifest
    if old and (old.size, old.mtime_ns) == (cand.size, cand.mtime_ns):
        report.results.append(FileResult(cand.display, Outcome.UNCHANGED))
        return None
    try:
        data = Path(cand.key).read_bytes()
    except OSError as err:
        report.results.append(FileResult(cand.display, Outcome.FAILED, f"cannot read: {err}"))
        return None
    doc_id = content_id(data)
    if old and old.doc_id == doc_id:  # touched, not changed: remember the new mtime
        if run.store is not None:
            manifest.touch_file(FileRow(cand.key, doc_id, cand.size, cand.mtime_ns))
        report.results.append(FileResult(cand.display, Outcome.UNCHANGED))
        return None
    outcome = Outcome.UPDATED if old else Outcome.ADDED
    same = in_flight.get(doc_id) or run.queue.get(doc_id)
    if same is not None:  # same content twice in this run
        same.files.append((cand, outcome))
        return None
    if manifest.doc(doc_id) is not None:
        _reuse_content(run, cand, doc_id, outcome, missing_by_doc)
        return None
    return _Parsing(doc_id, data, [(cand, outcome)])


def _parse_and_chunk(
    run: _Run, cand: Candidate, data: bytes, doc_id: str
) -> tuple[Document, list[Chunk]]:
    """The worker's part: reads nothing but its arguments and writes nothing."""
    doc = parse_document(Path(cand.key), data, doc_id, display_path=cand.display)
    chunks = chunk_document(
        doc,
        count_tokens=run.embeddings.count_tokens,
        max_tokens=min(run.settings.chunk_tokens, run.embeddings.max_tokens),
        overlap_tokens=run.settings.chunk_overlap_tokens,
    )
    return doc, chunks


def _take_oldest(run: _Run, in_flight: dict[str, _Parsing]) -> None:
    """Queue the oldest parse job's chunks (flushing a full batch), or report its failure."""
    job = in_flight.pop(next(iter(in_flight)))
    assert job.future is not None
    load_error = False
    try:
        doc, chunks = job.future.result()
    except LoadError as err:
        reason, load_error = str(err), True
    except Exception as err:  # a parser bug must not stop the other files
        reason = f"unexpected {type(err).__name__}: {err}"
    else:
        if chunks:
            run.queue[job.doc_id] = _Queued(doc, chunks, job.files)
            # Commit every embedding batch: a killed run loses at most one batch of work.
            if run.queued_chunks() >= run.settings.embed_batch_size:
                run.flush()
            return
        reason = "no text to index"
    recent = time.time() - run.retry_recent_s
    for cand, outcome in job.files:
        if load_error and cand.mtime_ns / 1e9 > recent:  # maybe half-written: try again
            run.report.results.append(
                FileResult(cand.display, Outcome.UNCHANGED, f"{NOT_READY}: {reason}")
            )
            continue
        kept = load_error and outcome is Outcome.UPDATED
        note = f"{reason}; the previous version stays indexed" if kept else reason
        run.report.results.append(FileResult(cand.display, Outcome.FAILED, note))


def _reuse_content(
    run: _Run, cand: Candidate, doc_id: str, outcome: Outcome, missing: dict[str, list[str]]
) -> None:
    """The content is indexed already: point the file at it without embedding anything."""
    note: str | None = None
    if outcome is Outcome.ADDED and missing.get(doc_id):
        old_key = missing[doc_id].pop(0)
        outcome, note = Outcome.RENAMED, f"renamed from {display_path(old_key, run.base)}"
        if run.store is not None:
            with run.manifest.transaction() as db:
                Manifest.drop_file(db, old_key)
    else:
        others = run.manifest.paths_of(doc_id)
        if others:
            note = f"same content as {display_path(others[0], run.base)}; indexed once"
    run.report.results.append(FileResult(cand.display, outcome, note))
    if run.store is not None:
        with run.transaction() as db:
            Manifest.put_file(db, FileRow(cand.key, doc_id, cand.size, cand.mtime_ns))
        run.changed = True


def _finish(run: _Run) -> None:
    """Delete documents no file points at, and re-point documents whose file moved."""
    assert run.store is not None
    manifest, store = run.manifest, run.store
    # A big document a killed run began and this run did not finish (its file changed or
    # went, or was not covered): what reached Chroma of it goes.
    unfinished = manifest.partial()
    if unfinished:
        committed = manifest.all_chunk_ids()
        for doc_id, ids in unfinished.items():
            store.delete([i for i in ids if i not in committed])
            with manifest.transaction() as db:
                Manifest.clear_partial(db, [doc_id])
            run.changed = True
    for doc in manifest.orphan_docs():
        store.delete(list(doc.chunk_ids))
        with manifest.transaction() as db:
            Manifest.drop_doc(db, doc.doc_id)
        run.changed = True
    for doc_id, (recorded, keys) in manifest.file_paths_by_doc().items():
        paths = [display_path(k, run.base) for k in keys]
        moved = manifest.doc(doc_id) if recorded not in paths else None
        if moved is not None:
            metas = store.metadatas(list(moved.chunk_ids))
            ids = list(metas)
            store.update_metadata(ids, [{**metas[i], "path": paths[0]} for i in ids])
            with manifest.transaction() as db:
                Manifest.repoint_doc(db, moved.doc_id, paths[0])
            run.changed = True


def hostile_note(text: str) -> str | None:
    """The report's note on sentences addressed to an assistant or model (``ingest.hostile``),
    which answers keep out; None when there are none."""
    flagged = flagged_sentences(text)
    if not flagged:
        return None
    first = " ".join(flagged[0].split())
    first = first if len(first) <= 80 else first[:79] + "…"
    count = f"{len(flagged)} sentences" if len(flagged) > 1 else "1 sentence"
    return f"{count} addressed to an AI assistant, kept out of answers: “{first}”"


def _run_record(report: IngestReport) -> dict[str, object]:
    return {
        "summary": report.summary(),
        "failures": [{"path": f.path, "reason": f.reason} for f in report.failures],
        "seconds": round(report.seconds, 2),
        "embedded_chunks": report.embedded_chunks,
        "repaired": report.repaired,
    }
