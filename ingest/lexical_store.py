"""The BM25 index on disk, beside the Chroma index, and how it is kept in step with it.

Layout of ``DATA_DIR/lexical/``: the files of each immutable segment
(``ingest.lexical_segments``: term frequencies, the chunks column-wise, their texts as
one blob), and ``index.json``
naming the live segments, their tombstones, checksums, the Chroma index generation the
files reflect, and a fingerprint of the tokeniser. ``index.json`` is replaced atomically
after the segment files are written, so a reader sees the old state or the new one.

Ingest (which holds the ingest lock) updates it after each run (``ingest.lexical_update``)
by comparing it with the manifest document by document: only added, changed or removed
documents are touched, so one new file costs time in proportion to that file. A reader
whose files are missing, corrupt, built by another tokeniser or stale rebuilds once (in
memory, and on disk when no ingest is running) and caches the result; a Chroma-server
replica without the manifest rebuilds from Chroma whenever the generation moves.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ingest.chinese_words import use_folder
from ingest.lexical import LexicalIndex
from ingest.lexical_segments import (
    ID_FIELDS,
    entry_of,
    is_current,
    kinds,
    read_segment,
    write_atomic,
    write_segment,
)
from ingest.manifest import Manifest
from ingest.terms import tokenize
from ingest.types import IndexedChunk

log = logging.getLogger(__name__)

FORMAT = 1
# How long a reader waits for a running ingest to save the files of the generation it has
# just published (seconds at most, even on a loaded machine).
FILES_WAIT_S = 10.0
INDEX_FILE = "index.json"
# Reads of files an ingest keeps switching before a reader gives up and rebuilds.
_READ_TRIES = 3
# Text that exercises every rule of the tokeniser (stop words, months, synonyms, plurals,
# irregular verbs, numbers): if the terms it yields change, files made before are stale.
_PROBE = (
    "What did the cities' exports total? They rose 3.5% to 1,234.5 million yuan in Sept. "
    "2020, YoY; FY2022 revenues grew and the Govt's intl. sales were sold, paid and won."
)


def tokenizer_fingerprint() -> str:
    probe = json.dumps([FORMAT, tokenize(_PROBE), tokenize(_PROBE, keep_stop_words=True)])
    return hashlib.sha256(probe.encode()).hexdigest()[:16]


def made_here(head: dict[str, Any]) -> bool:
    """Whether saved files were written by this format and tokenizer (else: rebuild)."""
    return head.get("format") == FORMAT and head.get("tokenizer") == tokenizer_fingerprint()


class ChunkSource(Protocol):
    """What the index is rebuilt from (``ingest.store.IndexStore`` provides it)."""

    def all_chunks(self) -> list[IndexedChunk]: ...
    def get_chunks(self, ids: Sequence[str]) -> list[IndexedChunk]: ...


@dataclass(frozen=True, slots=True)
class Loaded:
    index: LexicalIndex
    generation: str
    # Some segments have an older layout (texts inside the JSON, no saved document terms, or
    # terms of another rule): a save rewrites them.
    old_layout: bool = False


class LexicalFiles:
    """The persisted BM25 index of one data folder."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.dir = self.data_dir / "lexical"
        self.manifest_path = self.data_dir / "state.sqlite"  # the store of record (ingest.state)
        self._preloaded: Future[Loaded | None] | None = None
        # The Chinese word file these terms are cut with is kept in the data folder too
        # (the temp dir may be emptied; a one-shot ask would then load jieba whole again).
        use_folder(self.data_dir / "cache")

    # -- reading ---------------------------------------------------------------------------

    def generation(self) -> str | None:
        """The generation the files reflect, or None when absent or unreadable."""
        try:
            head = json.loads((self.dir / INDEX_FILE).read_text(encoding="utf-8"))
            return str(head["generation"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def load(self, *, quiet: bool = False) -> Loaded | None:
        """The index as saved, or None (and a log line) if absent, corrupt or stale
        (``quiet``: damage logged at INFO, when a warning was given already).

        An ingest that switches ``index.json`` while this reads deletes the segments it
        replaced; the files are then read again (what the ingest wrote) rather than taken
        for damage, which would mean a slow rebuild from Chroma."""
        for _ in range(_READ_TRIES):
            raw = b""
            try:
                raw = (self.dir / INDEX_FILE).read_bytes()
                head = json.loads(raw)
                if not made_here(head):
                    log.info("lexical index at %s: another version's; rebuilding", self.dir)
                    return None
                segments, live = [], []
                for entry in head["segments"]:
                    segment = read_segment(self.dir, entry)
                    alive = np.ones(len(segment), dtype=bool)
                    alive[np.asarray(entry["deleted"], dtype=np.int64)] = False
                    segments.append(segment)
                    live.append(alive)
                old = not all(is_current(e) for e in head["segments"])
                return Loaded(LexicalIndex(segments, live), str(head["generation"]), old)
            except Exception as err:  # any damage at all: rebuild from the source of truth
                if raw and self._head_changed(raw):
                    log.info("lexical index at %s changed while read; reading it again", self.dir)
                    continue
                level = logging.INFO if quiet else logging.WARNING
                if raw or not isinstance(err, FileNotFoundError):
                    why = f"is unreadable ({err})"
                    log.log(level, "lexical index at %s %s; rebuilding", self.dir, why)
                elif self._manifest_has_documents():  # else: none saved yet
                    log.log(level, "lexical index at %s is missing; rebuilding", self.dir)
                return None
        return None

    def _manifest_has_documents(self) -> bool:
        try:
            db = sqlite3.connect(f"{self.manifest_path.as_uri()}?mode=ro", uri=True)
            try:
                return db.execute("SELECT 1 FROM docs LIMIT 1").fetchone() is not None
            finally:
                db.close()
        except sqlite3.Error:
            return False

    def _head_changed(self, raw: bytes) -> bool:
        try:
            return (self.dir / INDEX_FILE).read_bytes() != raw
        except OSError:
            return True

    def preload(self) -> None:
        """Start reading the saved files on a thread; the first ``refresh`` takes what it
        read instead of reading them itself. A new process calls this before loading the
        model and opening Chroma: file reads, checksums and onnxruntime's session set-up
        release the GIL, so on two cores they overlap."""
        if self._preloaded is not None:
            return
        future: Future[Loaded | None] = Future()

        def read() -> None:
            try:
                future.set_result(self.load())
            except BaseException as err:  # load returns None on damage; this is a bug
                future.set_exception(err)

        self._preloaded = future
        threading.Thread(target=read, name="lexical-preload", daemon=True).start()

    def _take_loaded(self, generation: str) -> Loaded | None:
        """What ``preload`` read (once) if it is for ``generation``, else the files read
        now (a bot's first question may come after ingests that moved them on)."""
        future, self._preloaded = self._preloaded, None
        if future is not None:
            try:
                loaded = future.result()
                if loaded is not None and loaded.generation == generation:
                    return loaded
            except Exception:
                log.warning("reading the lexical index on a thread failed", exc_info=True)
            return self.load(quiet=True)  # the preload said what was wrong, once
        return self.load()

    # -- writing ---------------------------------------------------------------------------

    def save(self, index: LexicalIndex, generation: str) -> None:
        """Write the segments not on disk yet, then switch ``index.json`` to them."""
        self.dir.mkdir(parents=True, exist_ok=True)
        known, old = self._saved_segments()
        entries = []
        for segment, alive in zip(index.segments, index.live, strict=True):
            if segment.name in old:  # an older layout: written anew, under a new name
                segment = replace(segment, name=uuid.uuid4().hex[:16])
            crc = known.get(segment.name) or write_segment(self.dir, segment)
            entries.append(entry_of(segment, crc, np.flatnonzero(~alive).tolist()))
        self.write_head(entries, generation, len(index))

    def write_head(self, entries: list[dict[str, Any]], generation: str, chunks: int) -> None:
        head = {
            "format": FORMAT,
            "tokenizer": tokenizer_fingerprint(),
            "generation": generation,
            "chunks": chunks,
            "segments": entries,
        }
        write_atomic(self.dir / INDEX_FILE, json.dumps(head).encode())
        keep = {INDEX_FILE} | {f"{e['name']}.{kind}" for e in entries for kind in kinds(e)}
        for path in self.dir.iterdir():  # segments merged away or from a failed write
            if path.name not in keep and not path.name.startswith("."):
                path.unlink(missing_ok=True)

    def _saved_segments(self) -> tuple[dict[str, list[int]], set[str]]:
        """(checksums of the segments ``index.json`` lists whose files are all present:
        those are not read or written again, as segments never change; names of the
        segments saved in the layout before this one)."""
        try:
            head = json.loads((self.dir / INDEX_FILE).read_text(encoding="utf-8"))
            known = {
                str(e["name"]): list(e["crc32"])
                for e in head["segments"]
                if is_current(e)
                and all((self.dir / f"{e['name']}.{kind}").is_file() for kind in kinds(e))
            }
            return known, {str(e["name"]) for e in head["segments"] if not is_current(e)}
        except (OSError, ValueError, KeyError, TypeError):
            return {}, set()

    @contextlib.contextmanager
    def ingest_lock_if_free(self) -> Iterator[bool]:
        """Hold the ingest lock (the same flock as ``ingest.lock.ingest_lock``) if no
        ingest holds it; yield whether it is held. Readers only write while holding it."""
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            handle = open(self.data_dir / "ingest.lock", "a+")  # noqa: SIM115
        except OSError:
            yield False
            return
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # -- keeping in step -------------------------------------------------------------------

    def sync(self, index: LexicalIndex | None, source: ChunkSource) -> LexicalIndex:
        """``index`` brought in line with the manifest, touching only the documents that
        differ; without an index or a manifest, a full rebuild from ``source``."""
        if index is None or not self.manifest_path.is_file():
            return LexicalIndex.build(source.all_chunks())
        removed, fetch = self.delta(*(index.column(f) for f in ID_FIELDS))
        if not removed and not fetch:
            return index
        return index.with_changes(source.get_chunks(fetch) if fetch else (), removed)

    def delta(
        self, chunk_ids: Iterable[str], doc_ids: Iterable[str], paths: Iterable[str]
    ) -> tuple[list[str], list[str]]:
        """(chunk ids to remove, chunk ids to fetch): the documents whose path or chunks
        differ from the manifest's."""
        manifest = Manifest(self.manifest_path)
        try:
            wanted = {d.doc_id: (d.path, set(d.chunk_ids)) for d in manifest.docs()}
        finally:
            manifest.close()
        have: dict[str, tuple[str, set[str]]] = {}
        for chunk_id, doc_id, path in zip(chunk_ids, doc_ids, paths, strict=True):
            have.setdefault(doc_id, (path, set()))[1].add(chunk_id)
        removed = [i for d, (p, ids) in have.items() if wanted.get(d) != (p, ids) for i in ids]
        fetch = [
            i for d, (p, ids) in wanted.items() if have.get(d) != (p, ids) for i in sorted(ids)
        ]
        return removed, fetch

    def refresh(
        self, source: ChunkSource, generation: str, current: LexicalIndex | None = None
    ) -> LexicalIndex:
        """The index for Chroma generation ``generation``, as cheaply as it can be had:
        the saved files when they are for it, reusing ``current``'s segments; else
        ``current`` plus the documents that changed (when the manifest is here); else the
        saved files if they match, or they plus the changes; else a rebuild from
        ``source``. A rebuilt or updated index is saved when no ingest is running."""
        if current is not None:
            self._await_ingest_files(generation)
            followed = self._follow_files(current, generation)
            if followed is not None:
                return followed
        if current is not None and self.manifest_path.is_file():
            index = self.sync(current, source)
            stale_on_disk = self.generation() != generation
        else:
            loaded = self._take_loaded(generation)
            if loaded is not None and loaded.generation == generation:
                if loaded.old_layout:  # once: the next load reads the texts lazily
                    with self.ingest_lock_if_free() as locked:
                        if locked:
                            self.save_quietly(loaded.index, generation)
                return loaded.index
            index = self.sync(loaded.index if loaded else None, source)
            stale_on_disk = True
        if stale_on_disk:
            with self.ingest_lock_if_free() as locked:
                if locked:
                    self.save_quietly(index, generation)
        return index

    def _await_ingest_files(self, generation: str) -> None:
        """Wait (up to ``FILES_WAIT_S``) while a running ingest writes the files for
        ``generation``: it bumps Chroma's generation first and updates these files just
        after, so a reader that sees the new generation early would otherwise compare
        every document with the manifest (slow with many documents) while the ingest does
        the same work."""
        deadline = time.monotonic() + FILES_WAIT_S
        while self.generation() != generation and time.monotonic() < deadline:
            with self.ingest_lock_if_free() as free:
                if free:
                    return  # no ingest is writing them: do not wait for nothing
            time.sleep(0.05)

    def _follow_files(self, current: LexicalIndex, generation: str) -> LexicalIndex | None:
        """The saved files' index for ``generation``, reusing ``current``'s segments (they
        never change) and reading only the ones it lacks; None when the files are for
        another generation or cannot be read. After an ingest wrote one new segment and
        tombstones, this reads that segment and ``index.json``: comparing every document
        with the manifest instead grows with the number of documents."""
        try:
            head = json.loads((self.dir / INDEX_FILE).read_text(encoding="utf-8"))
            if str(head.get("generation")) != generation or not made_here(head):
                return None
            have = {s.name: s for s in current.segments}
            segments, live = [], []
            for entry in head["segments"]:
                segment = have.get(str(entry["name"])) or read_segment(self.dir, entry)
                if len(segment) != entry["chunks"]:
                    raise ValueError(f"segment {entry['name']} does not match index.json")
                alive = np.ones(len(segment), dtype=bool)
                alive[np.asarray(entry["deleted"], dtype=np.int64)] = False
                segments.append(segment)
                live.append(alive)
        except Exception as err:  # an ingest replaced the files meanwhile, or damage
            log.info("lexical index at %s: %s; comparing with the manifest instead", self.dir, err)
            return None
        return LexicalIndex(segments, live, tok=current.tokenize)

    def save_quietly(self, index: LexicalIndex, generation: str) -> None:
        try:
            self.save(index, generation)
        except OSError as err:  # a read-only data folder: the index still works from memory
            log.warning("cannot save the lexical index to %s: %s", self.dir, err)
