"""The BM25 index on disk, beside the Chroma index, and how it is kept in step with it.

Layout of ``DATA_DIR/lexical/``: one ``<segment>.npz`` (term frequencies) and one
``<segment>.json`` (the chunks, column-wise) per immutable segment, and ``index.json``
naming the live segments, their tombstones, checksums, the Chroma index generation the
files reflect, and a fingerprint of the tokeniser. ``index.json`` is replaced atomically
after the segment files are written, so a reader sees the old state or the new one.

Ingest (which holds the ingest lock) updates it after each run by comparing it with the
manifest document by document: only added, changed or removed documents are touched, so
one new file costs time in proportion to that file. A reader whose files are missing,
corrupt, built by another tokeniser or stale rebuilds once (in memory, and on disk when
no ingest is running) and caches the result; a Chroma-server replica without the
manifest rebuilds from Chroma whenever the generation moves.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import logging
import os
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ingest.lexical import LexicalIndex, Segment
from ingest.manifest import Manifest
from ingest.terms import tokenize
from ingest.types import IndexedChunk

log = logging.getLogger(__name__)

FORMAT = 1
_INDEX = "index.json"
_FIELDS = ("chunk_id", "doc_id", "text", "path", "title", "index", "start", "end", "page",
           "date", "url", "place", "publisher")  # fmt: skip
# Text that exercises every rule of the tokeniser (stop words, months, synonyms, plurals,
# irregular verbs, numbers): if the terms it yields change, files made before are stale.
_PROBE = (
    "What did the cities' exports total? They rose 3.5% to 1,234.5 million yuan in Sept. "
    "2020, YoY; FY2022 revenues grew and the Govt's intl. sales were sold, paid and won."
)


def tokenizer_fingerprint() -> str:
    probe = json.dumps([FORMAT, tokenize(_PROBE), tokenize(_PROBE, keep_stop_words=True)])
    return hashlib.sha256(probe.encode()).hexdigest()[:16]


class ChunkSource(Protocol):
    """What the index is rebuilt from (``ingest.store.IndexStore`` provides it)."""

    def all_chunks(self) -> list[IndexedChunk]: ...
    def get_chunks(self, ids: Sequence[str]) -> list[IndexedChunk]: ...


@dataclass(frozen=True, slots=True)
class Loaded:
    index: LexicalIndex
    generation: str


class LexicalFiles:
    """The persisted BM25 index of one data folder."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.dir = self.data_dir / "lexical"
        self.manifest_path = self.data_dir / "manifest.sqlite"

    # -- reading ---------------------------------------------------------------------------

    def generation(self) -> str | None:
        """The generation the files reflect, or None when absent or unreadable."""
        try:
            head = json.loads((self.dir / _INDEX).read_text(encoding="utf-8"))
            return str(head["generation"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def load(self) -> Loaded | None:
        """The index as saved, or None (and a log line) if absent, corrupt or stale."""
        if not (self.dir / _INDEX).is_file():
            return None
        try:
            head = json.loads((self.dir / _INDEX).read_text(encoding="utf-8"))
            if head.get("format") != FORMAT or head.get("tokenizer") != tokenizer_fingerprint():
                log.info("lexical index at %s was made by another version; rebuilding", self.dir)
                return None
            segments, live = [], []
            for entry in head["segments"]:
                segment = self._read_segment(entry)
                alive = np.ones(len(segment), dtype=bool)
                alive[np.asarray(entry["deleted"], dtype=np.int64)] = False
                segments.append(segment)
                live.append(alive)
            return Loaded(LexicalIndex(segments, live), str(head["generation"]))
        except Exception as err:  # any damage at all means: rebuild from the source of truth
            log.warning("lexical index at %s is unreadable (%s); rebuilding", self.dir, err)
            return None

    def _read_segment(self, entry: dict[str, Any]) -> Segment:
        name = str(entry["name"])
        raw_npz = (self.dir / f"{name}.npz").read_bytes()
        raw_json = (self.dir / f"{name}.json").read_bytes()
        if [zlib.crc32(raw_npz), zlib.crc32(raw_json)] != entry["crc32"]:
            raise ValueError(f"checksum mismatch in segment {name}")
        arrays = np.load(io.BytesIO(raw_npz), allow_pickle=False)
        columns = json.loads(raw_json)
        chunks = tuple(
            IndexedChunk(*row) for row in zip(*(columns[f] for f in _FIELDS), strict=True)
        )
        terms_blob = arrays["terms"].tobytes().decode("utf-8")
        segment = Segment(
            chunks=chunks,
            terms=tuple(terms_blob.split("\n")) if terms_blob else (),
            indptr=arrays["indptr"],
            docs=arrays["docs"],
            tfs=arrays["tfs"],
            lengths=arrays["lengths"],
            name=name,
        )
        if len(segment.indptr) != len(segment.terms) + 1 or len(segment.lengths) != len(chunks):
            raise ValueError(f"segment {name} is inconsistent")
        return segment

    # -- writing ---------------------------------------------------------------------------

    def save(self, index: LexicalIndex, generation: str) -> None:
        """Write the segments not on disk yet, then switch ``index.json`` to them."""
        self.dir.mkdir(parents=True, exist_ok=True)
        entries = []
        for segment, alive in zip(index.segments, index.live, strict=True):
            crc = self._write_segment(segment)
            entries.append({
                "name": segment.name,
                "chunks": len(segment),
                "deleted": np.flatnonzero(~alive).tolist(),
                "crc32": crc,
            })  # fmt: skip
        head = {
            "format": FORMAT,
            "tokenizer": tokenizer_fingerprint(),
            "generation": generation,
            "chunks": len(index),
            "segments": entries,
        }
        _write_atomic(self.dir / _INDEX, json.dumps(head).encode())
        keep = {_INDEX} | {f"{e['name']}.{x}" for e in entries for x in ("npz", "json")}
        for path in self.dir.iterdir():  # segments merged away or from a failed write
            if path.name not in keep and not path.name.startswith("."):
                path.unlink(missing_ok=True)

    def _write_segment(self, segment: Segment) -> list[int]:
        npz, meta = self.dir / f"{segment.name}.npz", self.dir / f"{segment.name}.json"
        if npz.is_file() and meta.is_file():  # immutable: written once
            return [zlib.crc32(npz.read_bytes()), zlib.crc32(meta.read_bytes())]
        buffer = io.BytesIO()
        terms = "\n".join(segment.terms).encode("utf-8")
        np.savez(
            buffer,
            indptr=segment.indptr,
            docs=segment.docs,
            tfs=segment.tfs,
            lengths=segment.lengths,
            terms=np.frombuffer(terms, dtype=np.uint8),
        )
        columns = {f: [getattr(c, f) for c in segment.chunks] for f in _FIELDS}
        raw_npz = buffer.getvalue()
        raw_json = json.dumps(columns, ensure_ascii=False).encode("utf-8")
        _write_atomic(npz, raw_npz)
        _write_atomic(meta, raw_json)
        return [zlib.crc32(raw_npz), zlib.crc32(raw_json)]

    @contextlib.contextmanager
    def ingest_lock_if_free(self) -> Iterator[bool]:
        """Hold the ingest lock (the same flock as ``ingest.pipeline.ingest_lock``) if no
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
        manifest = Manifest(self.manifest_path)
        try:
            wanted = {d.doc_id: (d.path, set(d.chunk_ids)) for d in manifest.docs()}
        finally:
            manifest.close()
        have: dict[str, tuple[str, set[str]]] = {}
        for c in index.chunks:
            have.setdefault(c.doc_id, (c.path, set()))[1].add(c.chunk_id)
        removed: list[str] = []
        fetch: list[str] = []
        for doc_id, (path, ids) in have.items():
            if wanted.get(doc_id) != (path, ids):
                removed.extend(ids)
        for doc_id, (path, wanted_ids) in wanted.items():
            if have.get(doc_id) != (path, wanted_ids):
                fetch.extend(sorted(wanted_ids))
        if not removed and not fetch:
            return index
        return index.with_changes(source.get_chunks(fetch) if fetch else (), removed)

    def refresh(
        self, source: ChunkSource, generation: str, current: LexicalIndex | None = None
    ) -> LexicalIndex:
        """The index for Chroma generation ``generation``, as cheaply as it can be had:
        ``current`` plus the documents that changed (when the manifest is here); else the
        saved files if they match, or they plus the changes; else a rebuild from
        ``source``. A rebuilt or updated index is saved when no ingest is running."""
        if current is not None and self.manifest_path.is_file():
            index = self.sync(current, source)
            stale_on_disk = self.generation() != generation
        else:
            loaded = self.load()
            if loaded is not None and loaded.generation == generation:
                return loaded.index
            index = self.sync(loaded.index if loaded else None, source)
            stale_on_disk = True
        if stale_on_disk:
            with self.ingest_lock_if_free() as locked:
                if locked:
                    self._save_quietly(index, generation)
        return index

    def update_after_ingest(self, source: ChunkSource, generation: str) -> None:
        """Bring the files in line after an ingest run (the caller holds the ingest lock)."""
        if self.generation() == generation:
            return  # nothing changed (a damaged file is found and rebuilt by its reader)
        loaded = self.load()
        self._save_quietly(self.sync(loaded.index if loaded else None, source), generation)

    def _save_quietly(self, index: LexicalIndex, generation: str) -> None:
        try:
            self.save(index, generation)
        except OSError as err:  # a read-only data folder: the index still works from memory
            log.warning("cannot save the lexical index to %s: %s", self.dir, err)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
