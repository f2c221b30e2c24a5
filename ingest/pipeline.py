"""One ingest run: scan → hash → parse → chunk → embed → write, incrementally and crash-safely.

This module decides what each file needs (nothing, a new path, or parsing and embedding)
and parses ahead on a worker thread; ``ingest.writer`` embeds, stores and commits, in an
order that a ``kill -9`` at any moment leaves repairable. ``repair`` at the start of each
run undoes whatever a killed run left half done; at its end, documents no file points at
any more are deleted. A big text file is read in sections (``ingest.stream``) after the
other files, so its memory is that of one section.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ingest import runlog
from ingest.chunking import chunk_document
from ingest.embeddings import IndexEmbeddings, make_embeddings
from ingest.errors import IndexUnavailable, UsageError
from ingest.errors import IngestLocked as IngestLocked  # re-exported
from ingest.lexical_store import LexicalFiles
from ingest.lexical_update import update_after_ingest
from ingest.loaders import parse_document
from ingest.lock import REBUILD_MARKER, ingest_lock
from ingest.manifest import FileRow, Manifest
from ingest.repair import chroma_alive, chroma_damage, heal_chroma, heal_state, lost_index, repair
from ingest.scan import Candidate, covered, display_path, scan
from ingest.settings import IndexSettings
from ingest.store import IndexStore, drop_index, make_client, open_index
from ingest.stream import Sections, content_id, file_content_id, is_streamed
from ingest.types import Chunk, Document, FileResult, IngestReport, LoadError, Outcome
from ingest.writer import NOT_READY as NOT_READY  # re-exported
from ingest.writer import Journal, Queued, Run

log = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]  # (done, total, current path)


class IngestStopped(IndexUnavailable):
    """Chroma was lost mid-run; ``report`` holds what the run did before it stopped."""

    def __init__(self, reason: str, report: IngestReport) -> None:
        super().__init__(reason)
        self.report = report


def run_ingest(
    settings: IndexSettings,
    paths: list[Path] | None = None,
    *,
    rebuild: bool = False,
    dry_run: bool = False,
    embeddings: IndexEmbeddings | None = None,
    progress: Progress | None = None,
    retry_recent_s: float = 0.0,
    stream_budget_s: float | None = None,
) -> IngestReport:
    """Bring the index in line with the files under ``paths`` (default: the documents folder).

    Raises UsageError (the documents folder is missing), IngestLocked, IndexMismatch,
    IndexUnavailable (IngestStopped, with the report so far, when Chroma is lost mid-run)
    or ModelNotInstalled for fatal conditions; per-file problems are reported in the
    returned IngestReport instead, and one file's failure never fails another.
    ``retry_recent_s`` (the watcher): a file modified that recently that fails to parse is
    left for a later run (unchanged, reason ``NOT_READY``) rather than failed.
    ``stream_budget_s`` (the watcher): big text files are embedded this long at most in
    this run; what is stored stays, and the rest is left to a later run (reported the same
    way), so that files dropped meanwhile are not kept waiting behind them.
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
        journal = Journal(None)
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
            run = Run(
                settings, manifest, None if dry_run else store, embeddings, report, journal,
                retry_recent_s, stream_budget_s,
            )  # fmt: skip
            try:
                _run_steps(run, store, roots, progress)
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


def _run_steps(run: Run, store: IndexStore, roots: list[Path], progress: Progress | None) -> None:
    report = run.report
    if not report.dry_run:
        report.repaired = repair(run.manifest, store)
    _ingest_files(run, roots, progress)
    run.flush()
    if not report.dry_run:
        _finish(run)
        if run.changed or report.repaired:
            store.bump_generation()
        # The BM25 files follow, touching only the documents this run changed.
        update_after_ingest(LexicalFiles(run.settings.data_dir), store, store.generation())


def _ingest_files(run: Run, roots: list[Path], progress: Progress | None) -> None:
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
    # Big text files, read in sections after the others: the small files of the same run
    # are not kept waiting behind one that takes minutes to embed.
    streamed: dict[str, _Parsing] = {}
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-parse")
    try:
        for done, cand in enumerate(candidates, 1):
            if progress:
                progress(done, len(candidates), cand.display)
            job = _plan_file(run, cand, known.get(cand.key), in_flight | streamed, missing_by_doc)
            if job is None:
                continue
            if job.data is None:
                streamed[job.doc_id] = job
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
    run.flush()
    if run.stream_budget_s is not None:
        run.stream_deadline = time.monotonic() + run.stream_budget_s
    for job in streamed.values():
        cand = job.files[0][0]
        sections = Sections(Path(cand.key), job.doc_id, cand.display)
        run.write_streamed(sections, job.files, lambda head, section, first: _chunk(
            run, dataclasses.replace(head, text=section.text), section.start, first
        ))  # fmt: skip

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
    data: bytes | None  # None: a big text file, read in sections (``ingest.stream``)
    files: list[tuple[Candidate, Outcome]]
    future: Future[tuple[Document, list[Chunk]]] | None = None


def _in_flight_bytes(in_flight: dict[str, _Parsing]) -> int:
    return sum(len(job.data or b"") for job in in_flight.values())


def _plan_file(
    run: Run,
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
    data: bytes | None = None
    try:
        if is_streamed(Path(cand.key), cand.size, int(run.settings.stream_file_mb * 1e6)):
            doc_id = file_content_id(Path(cand.key))
        else:
            data = Path(cand.key).read_bytes()
            doc_id = content_id(data)
    except OSError as err:
        report.results.append(FileResult(cand.display, Outcome.FAILED, f"cannot read: {err}"))
        return None
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
    run: Run, cand: Candidate, data: bytes, doc_id: str
) -> tuple[Document, list[Chunk]]:
    """The worker's part: reads nothing but its arguments and writes nothing."""
    doc = parse_document(Path(cand.key), data, doc_id, display_path=cand.display)
    return doc, _chunk(run, doc)


def _chunk(run: Run, doc: Document, offset: int = 0, first_index: int = 0) -> list[Chunk]:
    return chunk_document(
        doc,
        count_tokens=run.embeddings.count_tokens,
        max_tokens=min(run.settings.chunk_tokens, run.embeddings.max_tokens),
        overlap_tokens=run.settings.chunk_overlap_tokens,
        offset=offset,
        first_index=first_index,
    )


def _take_oldest(run: Run, in_flight: dict[str, _Parsing]) -> None:
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
            run.queue[job.doc_id] = Queued(doc, chunks, job.files)
            # Commit every embedding batch: a killed run loses at most one batch of work.
            if run.queued_chunks() >= run.settings.embed_batch_size:
                run.flush()
            return
        reason = "no text to index"
    run.report_unreadable(job.files, reason, load_error=load_error)


def _reuse_content(
    run: Run, cand: Candidate, doc_id: str, outcome: Outcome, missing: dict[str, list[str]]
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


def _finish(run: Run) -> None:
    """Delete documents no file points at, and re-point documents whose file moved."""
    assert run.store is not None
    manifest, store = run.manifest, run.store
    # A big document a killed run began and this run did not finish (its file changed or
    # went, or was not covered): what reached Chroma of it goes.
    unfinished = manifest.partial()
    if unfinished:
        committed = manifest.all_chunk_ids()
        for doc_id, ids in unfinished.items():
            if doc_id in run.paused:
                continue  # left for the next run to finish
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


def _run_record(report: IngestReport) -> dict[str, object]:
    return {
        "summary": report.summary(),
        "failures": [{"path": f.path, "reason": f.reason} for f in report.failures],
        "seconds": round(report.seconds, 2),
        "embedded_chunks": report.embedded_chunks,
        "repaired": report.repaired,
    }
