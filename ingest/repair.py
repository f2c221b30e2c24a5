"""Crash repair and Chroma liveness for ingest runs (``ingest.pipeline`` runs them).

A run journals the chunk ids it is about to write (the manifest's ``pending`` table) before
writing them; ``repair`` at the start of the next run removes whatever a killed run left
half done, and reconciles Chroma with the manifest id by id when the counts disagree.

Damage (``briefing doctor``, ``ingest --rebuild``): ``heal_state`` and ``heal_chroma`` check
the store of record and embedded Chroma's files read-only, and move a damaged one to
``DATA_DIR/damaged`` (never delete it), keeping followed topics; the index is then rebuilt
from the documents.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ingest import follows_backup
from ingest.errors import IndexUnavailable
from ingest.manifest import Manifest
from ingest.settings import IndexSettings
from ingest.state import connect, forget_check, state_path
from ingest.store import IndexStore

log = logging.getLogger(__name__)


def delete_present(store: IndexStore, ids: list[str]) -> int:
    """Delete those of ``ids`` Chroma holds; return how many that was (the honest count)."""
    present = list(store.metadatas(sorted(set(ids))))
    store.delete(present)
    return len(present)


def repair(manifest: Manifest, store: IndexStore) -> int:
    """Remove what a killed run left behind; return how many chunks were actually removed."""
    removed = 0
    committed = manifest.all_chunk_ids()
    pending = manifest.pending()
    # A big document's chunks embedded before the kill are kept: the run resumes after them.
    kept = {cid for ids in manifest.partial().values() for cid in ids}
    stray = {cid for ids in pending.values() for cid in ids if cid not in committed | kept}
    if stray:
        removed += delete_present(store, sorted(stray))
    with manifest.transaction():
        manifest.clear_pending(list(pending))
    for doc in manifest.orphan_docs():
        removed += delete_present(store, list(doc.chunk_ids))
        with manifest.transaction() as db:
            Manifest.drop_doc(db, doc.doc_id)
    # Safety net for anything the journal cannot explain (e.g. a manifest restored from a
    # backup): compare counts, and on a mismatch reconcile id by id.
    committed = manifest.all_chunk_ids()
    if store.count() != len(committed | kept):
        present = set(store.all_ids())
        extra = sorted(present - committed - kept)
        store.delete(extra)
        removed += len(extra)
        lost = {d.doc_id for d in manifest.docs() if not set(d.chunk_ids) <= present}
        if lost:  # forget them so this run re-ingests their files
            log.warning(
                "%s lacks the chunks of %d documents the manifest lists (its files were "
                "deleted or replaced?): they are ingested again",
                _where(store),
                len(lost),
            )
            with manifest.transaction() as db:
                for doc_id in lost:
                    db.execute("DELETE FROM files WHERE doc_id=?", (doc_id,))
                    Manifest.drop_doc(db, doc_id)
    return removed


def _where(store: IndexStore) -> str:
    settings = store.settings
    if settings is None:
        return "the index"
    if settings.chroma_host:
        return f"the Chroma server {settings.chroma_host}:{settings.chroma_port}"
    return f"the index at {settings.chroma_dir}"


def chroma_alive(store: IndexStore) -> bool:
    """Whether Chroma still answers: tells a lost server from a write it rejected."""
    try:
        store.client.heartbeat()
        store.count()
    except Exception:  # any failure to answer means it is gone, whatever the transport says
        return False
    return True


def lost_index(settings: IndexSettings, doing: str, err: Exception) -> IndexUnavailable:
    where = (
        f"the Chroma server {settings.chroma_host}:{settings.chroma_port}"
        if settings.chroma_host
        else f"embedded Chroma at {settings.chroma_dir}"
    )
    return IndexUnavailable(f"lost {where} while {doing} ({type(err).__name__}: {err})")


# -- damage: named, set aside (never deleted), healed ------------------------------------------

DAMAGED_DIR = "damaged"  # in DATA_DIR: damaged stores are moved here, never deleted


def store_problem(path: Path) -> str | None:
    """Why the SQLite file at ``path`` cannot be trusted, or None (absent counts as fine).

    Read-only, so checking never changes what it checks."""
    if not path.exists():
        return None
    try:
        db = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
        try:
            verdict = db.execute("PRAGMA quick_check").fetchall()
        finally:
            db.close()
    except sqlite3.DatabaseError as err:
        return str(err)
    if verdict != [("ok",)]:
        return "; ".join(str(r[0]) for r in verdict[:3])
    return None


def chroma_problem(settings: IndexSettings) -> str | None:
    """Why embedded Chroma's files cannot be trusted, or None (a Chroma server is not ours
    to check: its failures name its address)."""
    if settings.chroma_host:
        return None
    db = settings.chroma_dir / "chroma.sqlite3"
    if not db.exists():
        # Its vector folders without it: deleted under a running bot, or by hand.
        folder = settings.chroma_dir
        return f"{db} is missing" if folder.is_dir() and any(folder.iterdir()) else None
    problem = store_problem(db)
    return None if problem is None else f"{db} is damaged ({problem})"


def set_aside(path: Path, data_dir: Path) -> Path:
    """Move ``path`` (a file with its -wal/-shm, or a folder) to ``DATA_DIR/damaged``."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    target_dir = data_dir / DAMAGED_DIR
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / f"{path.name}.{stamp}"
    n = 1
    while target.exists():
        n += 1
        target = target_dir / f"{path.name}.{stamp}-{n}"
    os.replace(path, target)
    for suffix in ("-wal", "-shm"):
        side = path.with_name(path.name + suffix)
        if side.exists():
            os.replace(side, target.with_name(target.name + suffix))
    return target


def _salvage_follows(path: Path) -> list[dict[str, Any]]:
    """Whatever followed topics a damaged store still yields ([] if none)."""
    try:
        db = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
        try:
            return follows_backup.rows_of(db)
        finally:
            db.close()
    except sqlite3.DatabaseError:
        return []


def _salvage_seen(path: Path, data_dir: Path) -> list[str] | None:
    """The followers' ledger: what the damaged store still yields, with the backup copy's
    (None when neither has one)."""
    salvaged: list[str] | None = None
    try:
        db = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
        try:
            salvaged = follows_backup.seen_of(db)
        finally:
            db.close()
    except sqlite3.DatabaseError:
        pass
    backed_up = follows_backup.read_seen(data_dir)
    if salvaged is None and backed_up is None:
        return None
    return sorted(set(salvaged or []) | set(backed_up or []))


def heal_state(data_dir: Path) -> list[str]:
    """Repair a damaged store of record; what was done, one line each ([]: it was sound).

    Followed topics first: those the damaged file still yields, merged with the backup
    copy, are written to the backup (and a dated copy beside the damaged file) *before*
    the file is moved aside; a new store then takes them back, with the followers' ledger
    (so the rebuild's runs tell only what followers have not been told). The manifest and
    run log are not copied: the next ingest rebuilds the manifest from the documents.
    """
    path = state_path(data_dir)
    problem = store_problem(path)
    if problem is None:
        return []
    rows = follows_backup.merge(_salvage_follows(path), follows_backup.read_backup(data_dir))
    seen = _salvage_seen(path, data_dir)
    follows_backup.write_backup(data_dir, rows, seen=seen)
    moved = set_aside(path, data_dir)
    copy = moved.with_name(moved.name + ".follows.json")
    follows_backup.write_backup(data_dir, rows, copy, seen=seen)
    forget_check(path)
    db = connect(path)
    try:
        restored = follows_backup.import_rows(db, rows)
        if seen is not None:  # what followers were told: the re-indexed documents are not news
            follows_backup.import_seen(db, seen)
    finally:
        db.close()
    return [
        f"{path} was damaged ({problem}): moved to {moved}",
        f"followed topics kept: {restored} (backup {follows_backup.backup_path(data_dir)})",
    ]


def heal_chroma(settings: IndexSettings) -> list[str]:
    """Move damaged embedded Chroma files aside (the index is rebuilt from the documents)."""
    problem = chroma_problem(settings)
    if problem is None:
        return []
    # chromadb keeps one client per path for the process: forget it with the files.
    from chromadb.api.shared_system_client import SharedSystemClient

    SharedSystemClient.clear_system_cache()
    moved = set_aside(settings.chroma_dir, settings.data_dir)
    return [f"{problem}: moved {settings.chroma_dir} to {moved}"]


def chroma_damage(settings: IndexSettings, doing: str) -> IndexUnavailable | None:
    """The one-line error for damaged embedded Chroma files, if they are the cause."""
    problem = chroma_problem(settings)
    if problem is None:
        return None
    return IndexUnavailable(
        f"{problem} while {doing}; run `briefing ingest --rebuild` (or `briefing doctor`) "
        "to rebuild the index from the documents"
    )
