"""Crash repair and Chroma liveness for ingest runs (``ingest.pipeline`` runs them).

A run journals the chunk ids it is about to write (the manifest's ``pending`` table) before
writing them; ``repair`` at the start of the next run removes whatever a killed run left
half done, and reconciles Chroma with the manifest id by id when the counts disagree.
"""

from __future__ import annotations

from ingest.errors import IndexUnavailable
from ingest.manifest import Manifest
from ingest.settings import IndexSettings
from ingest.store import IndexStore


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
    stray = {cid for ids in pending.values() for cid in ids if cid not in committed}
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
    if store.count() != len(committed):
        present = set(store.all_ids())
        extra = sorted(present - committed)
        store.delete(extra)
        removed += len(extra)
        lost = {d.doc_id for d in manifest.docs() if not set(d.chunk_ids) <= present}
        if lost:  # forget them so this run re-ingests their files
            with manifest.transaction() as db:
                for doc_id in lost:
                    db.execute("DELETE FROM files WHERE doc_id=?", (doc_id,))
                    Manifest.drop_doc(db, doc_id)
    return removed


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
