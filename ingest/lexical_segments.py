"""One BM25 segment on disk: its files, their checksums, how they are read and written.

A segment ``<name>`` is four files, each written once and never changed:

- ``.npz``: the postings (``indptr``, ``docs``, ``tfs``), chunk ``lengths``, the
  ``terms``, their ids in sorted order (``term_order``: a search finds a question's terms
  by binary search), and ``text_ends``, where each chunk's text ends in ``.text``;
- ``.ids.json``: chunk_id, doc_id and path, column-wise (what ingest compares with the
  manifest, without reading any text);
- ``.json``: the chunks' other fields but the text, column-wise, and under ``sources``
  the ``source_terms`` of each document (at its first chunk's position), which the
  document focus would otherwise tokenise for every document at each start;
- ``.text``: the chunks' texts, UTF-8, one after the other.

A load reads the texts as one blob and decodes a text when its chunk is asked for
(``ingest.chunk_columns``): parsing every text as a JSON string was half of loading a
large index. Segments written before the texts had their own file (three files, the
texts in ``.json``) are still read; their ``index.json`` entry has three checksums. An
entry also records the rule that made its saved ``sources`` (``sources_fingerprint``);
the terms of another rule are not used.
"""

from __future__ import annotations

import hashlib
import io
import json
import mmap
import os
import zlib
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from ingest.chunk_columns import FIELDS, Blob, ChunkColumns, TextColumn, column
from ingest.lexical import Segment, Source, sorted_term_order, source_terms

FILES = ("npz", "ids.json", "json", "text")
# Enough to tell which documents a segment holds, so ingest can update the files without
# reading every chunk's text.
ID_FIELDS = ("chunk_id", "doc_id", "path")


@cache
def sources_fingerprint() -> str:
    """Changes when ``source_terms`` (or the tokeniser under it) would give other terms."""
    probe = source_terms(
        "Form 10-K: 3M Company's FY2022 Report, Sept. 2020", "a/3M_2022-10K.v2.pdf"
    )
    return hashlib.sha256(json.dumps(sorted(probe)).encode()).hexdigest()[:16]


def kinds(entry: dict[str, Any]) -> tuple[str, ...]:
    """The files of a segment's ``index.json`` entry: one checksum per file."""
    return FILES[: len(entry["crc32"])]


def entry_of(segment: Segment, crc32: list[int], deleted: list[int]) -> dict[str, Any]:
    """The ``index.json`` entry of a segment whose files (this layout) have ``crc32``."""
    return {
        "name": segment.name,
        "chunks": len(segment),
        "deleted": deleted,
        "crc32": crc32,
        "sources": sources_fingerprint(),
        "term_order": True,
    }


def is_current(entry: dict[str, Any]) -> bool:
    """Whether the entry's files have this layout (not the three-file one before it, nor
    one without the terms' sorted order) and saved sources made by this rule; a save
    writes other segments anew."""
    return (
        len(entry["crc32"]) == len(FILES)
        and entry.get("sources") == sources_fingerprint()
        and entry.get("term_order") is True
    )


def read_file(folder: Path, entry: dict[str, Any], kind: str) -> bytes:
    raw = (folder / f"{entry['name']}.{kind}").read_bytes()
    if zlib.crc32(raw) != entry["crc32"][FILES.index(kind)]:
        raise ValueError(f"checksum mismatch in {entry['name']}.{kind}")
    return raw


def map_file(folder: Path, entry: dict[str, Any], kind: str) -> Blob:
    """``read_file`` without the copy: the file mapped read-only, its pages the OS's file
    cache (shared, droppable) rather than a copy on the heap (of the texts, a search decodes
    a few dozen; mapping also loads faster). Segment files are never changed in place
    (written anew, then renamed), so the mapping keeps what was checked."""
    with open(folder / f"{entry['name']}.{kind}", "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        view: Blob = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
    if zlib.crc32(view) != entry["crc32"][FILES.index(kind)]:
        raise ValueError(f"checksum mismatch in {entry['name']}.{kind}")
    return view


def parse_json(raw: bytes) -> Any:
    """``json.loads``, by orjson (faster on the large columns); what
    orjson refuses but json reads (NaN, integers past 64 bits) goes to json."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)


def read_segment(folder: Path, entry: dict[str, Any]) -> Segment:
    """The segment of an ``index.json`` entry; raises on any damage."""
    name = str(entry["name"])
    current = len(entry["crc32"]) == len(FILES)
    # The two large files (postings, texts) are read and checksummed
    # on a thread while this one parses the columns: reads and zlib.crc32 release the GIL.
    with ThreadPoolExecutor(max_workers=1) as pool:
        npz = pool.submit(read_file, folder, entry, "npz")
        text = pool.submit(map_file, folder, entry, "text") if current else None
        columns = parse_json(read_file(folder, entry, "ids.json"))
        columns |= parse_json(read_file(folder, entry, "json"))
        arrays = np.load(io.BytesIO(npz.result()), allow_pickle=False)
        if text is not None:
            columns["text"] = TextColumn(text.result(), arrays["text_ends"].tolist())
    saved = columns.pop("sources", None)
    sources: dict[Source, frozenset[str]] = {}
    if saved is not None and entry.get("sources") == sources_fingerprint():
        titles, paths = columns["title"], columns["path"]
        for pos, terms in zip(saved["first"], saved["terms"], strict=True):
            sources[(titles[pos], paths[pos])] = frozenset(terms)
    terms_blob = arrays["terms"].tobytes().decode("utf-8")
    segment = Segment(
        chunks=ChunkColumns(columns),  # chunk objects are made when a search returns them
        terms=tuple(terms_blob.split("\n")) if terms_blob else (),
        indptr=arrays["indptr"],
        docs=arrays["docs"],
        tfs=arrays["tfs"],
        lengths=arrays["lengths"],
        name=name,
        sources=sources,
        term_order=arrays["term_order"] if "term_order" in arrays.files else None,
    )
    terms_ok = len(segment.indptr) == len(segment.terms) + 1
    if segment.term_order is not None and len(segment.term_order) != len(segment.terms):
        terms_ok = False
    if not terms_ok or len(segment.lengths) != len(segment.chunks):
        raise ValueError(f"segment {name} is inconsistent")
    return segment


def write_segment(folder: Path, segment: Segment) -> list[int]:
    """Write the segment's files (unless they exist: segments never change); their
    checksums, in ``FILES`` order."""
    paths = [folder / f"{segment.name}.{kind}" for kind in FILES]
    if all(p.is_file() for p in paths):
        return [zlib.crc32(p.read_bytes()) for p in paths]
    text, text_ends = TextColumn.encode(column(segment.chunks, "text"))
    buffer = io.BytesIO()
    terms = "\n".join(segment.terms).encode("utf-8")
    np.savez(
        buffer,
        indptr=segment.indptr,
        docs=segment.docs,
        tfs=segment.tfs,
        lengths=segment.lengths,
        terms=np.frombuffer(terms, dtype=np.uint8),
        text_ends=text_ends,
        term_order=sorted_term_order(segment.terms),
    )
    ids = {f: list(column(segment.chunks, f)) for f in ID_FIELDS}
    rest: dict[str, Any] = {
        f: list(column(segment.chunks, f)) for f in FIELDS if f not in ids and f != "text"
    }
    first: dict[Source, int] = {}
    for pos, source in enumerate(zip(rest["title"], ids["path"], strict=True)):
        first.setdefault(source, pos)
    rest["sources"] = {
        "first": list(first.values()),
        "terms": [sorted(segment.sources.get(s) or source_terms(*s)) for s in first],
    }
    raws = [
        buffer.getvalue(),
        *(json.dumps(x, ensure_ascii=False).encode() for x in (ids, rest)),
        text,
    ]
    for path, raw in zip(paths, raws, strict=True):
        write_atomic(path, raw)
    return [zlib.crc32(raw) for raw in raws]


def write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
