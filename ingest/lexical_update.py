"""Bringing the BM25 files in line after an ingest run (``ingest.lexical_store`` reads and
saves them; this is the ingest's side, run under the ingest lock).

The files are compared with the manifest document by document, reading only the segments'
id lists: what went gets tombstones, what came is tokenised into new segments of at most
``SEGMENT_CHUNKS`` chunks, each built and written before the next is read, so the memory
this takes is one segment's however big the file an ingest added. With ``MAX_SEGMENTS``
segments saved, they are merged into one first.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from ingest.lexical import MAX_SEGMENTS, Segment
from ingest.lexical_segments import ID_FIELDS, entry_of, read_file, write_segment
from ingest.lexical_store import INDEX_FILE, ChunkSource, LexicalFiles, made_here

log = logging.getLogger(__name__)

# Chunks per segment an ingest writes (about 10 MB of text): what BM25 holds in memory at
# once while a big file is added.
SEGMENT_CHUNKS = 10_000


def update_after_ingest(files: LexicalFiles, source: ChunkSource, generation: str) -> None:
    """Bring ``files`` in line with the manifest after an ingest run (the caller holds the
    ingest lock): new segments for what was added, tombstones for what went."""
    if files.generation() == generation:
        return  # nothing changed (a damaged file is found and rebuilt by its reader)
    files.dir.mkdir(parents=True, exist_ok=True)
    try:
        if _append_update(files, source, generation):
            return
    except (OSError, ValueError, KeyError, TypeError, IndexError) as err:
        log.warning("lexical index at %s: %s; rebuilding", files.dir, err)
    loaded = files.load()
    if loaded is None:
        if _append_update(files, source, generation, fresh=True):
            return  # no usable files: written anew, a segment at a time
    elif len(loaded.index.segments) >= MAX_SEGMENTS:
        # Merge what is saved into one segment first, so that the changes still go in a
        # segment at a time (one segment of every chunk added was unbounded).
        files.save_quietly(loaded.index.compacted(), loaded.generation)
        if _append_update(files, source, generation):
            return
    files.save_quietly(files.sync(loaded.index if loaded else None, source), generation)


def _append_update(
    files: LexicalFiles, source: ChunkSource, generation: str, *, fresh: bool = False
) -> bool:
    """Apply the manifest's changes by writing new segments and tombstones (``fresh``: as
    if there were no files yet); False when a full load is needed instead (unusable
    files, no manifest, or enough segments that they should be merged)."""
    if not files.manifest_path.is_file():
        return False
    entries: list[dict[str, Any]] = []
    if not fresh and (files.dir / INDEX_FILE).exists():
        try:
            head = json.loads((files.dir / INDEX_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        entries = head.get("segments", [])
        if not made_here(head) or len(entries) >= MAX_SEGMENTS:
            return False
    where: dict[str, tuple[int, int]] = {}  # live chunk id → (segment, position)
    columns: dict[str, list[str]] = {f: [] for f in ID_FIELDS}
    for s, entry in enumerate(entries):
        ids = json.loads(read_file(files.dir, entry, "ids.json"))
        dead = set(entry["deleted"])
        for pos, chunk_id in enumerate(ids["chunk_id"]):
            if pos not in dead:
                where[chunk_id] = (s, pos)
                for f in ID_FIELDS:
                    columns[f].append(ids[f][pos])
    removed, fetch = files.delta(*(columns[f] for f in ID_FIELDS))
    for chunk_id in removed:
        s, pos = where[chunk_id]
        entries[s]["deleted"].append(pos)
    for at in range(0, len(fetch), SEGMENT_CHUNKS):
        segment = Segment.build(source.get_chunks(fetch[at : at + SEGMENT_CHUNKS]))
        entries.append(entry_of(segment, write_segment(files.dir, segment), []))
    entries = [e for e in entries if len(e["deleted"]) < e["chunks"]]
    files.write_head(entries, generation, len(where) - len(removed) + len(fetch))
    return True
