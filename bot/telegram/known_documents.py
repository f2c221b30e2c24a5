"""Which documents the bot knew already, so a re-indexed one is not told as news.

A repair (``briefing doctor``, ``ingest --rebuild``) or a lost store of record makes the
next ingest add every document again. Those documents were told (or were history) before:
the followers' ledger (``bot.subscriptions``: the documents followers know about) holds
their content ids, so an "added" file whose content the ledger holds is re-indexed, not
news. The ledger of a store that starts empty is seeded from the documents the index
holds, not only the manifest's, for the same reason.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from dataclasses import replace

from bot.follow import document_ids
from bot.settings import Settings
from bot.subscriptions import SubscriptionStore
from ingest.manifest import Manifest
from ingest.runlog import LoggedRun
from ingest.scan import display_path
from ingest.state import damaged
from ingest.store import IndexStore
from ingest.types import IngestReport, Outcome

log = logging.getLogger(__name__)

SAME_CONTENT = "same content as"  # ingest's note on a copy of a document indexed already


def manifest_documents(settings: Settings) -> list[str]:
    """Every document the manifest lists, oldest first; StoreDamaged if it cannot be read."""
    manifest = Manifest(settings.manifest_path)
    try:
        return document_ids(manifest)
    except sqlite3.DatabaseError as err:
        raise damaged(settings.manifest_path, err) from None
    finally:
        manifest.close()


def indexed_documents(store: IndexStore) -> list[str]:
    """The documents the index holds (by its chunks' metadata: a scan of every chunk); []
    when it cannot say."""
    try:
        metas = store.metadatas(store.all_ids())
    except Exception as err:  # Chroma's errors are many; the manifest's list stands
        log.warning("could not list the index's documents: %s", err)
        return []
    return list(dict.fromkeys(str(m["doc_id"]) for m in metas.values() if m.get("doc_id")))


def reindexed_files(
    settings: Settings, ledger: SubscriptionStore, runs: list[LoggedRun]
) -> set[str]:
    """The files ``runs`` added whose content ``ledger`` knew: re-indexed, not news. A file
    removed in the same runs, and a copy of a known document (its note says so), are news."""
    added = {
        r.path
        for run in runs
        for r in run.report.results
        if r.outcome is Outcome.ADDED and SAME_CONTENT not in (r.reason or "")
    }
    removed = {r.path for run in runs for r in run.report.results if r.outcome is Outcome.REMOVED}
    if not added - removed:
        return set()
    base = os.path.abspath(settings.documents_dir)  # as ingest names its files
    manifest = Manifest(settings.manifest_path)
    try:
        doc_of = {display_path(k, base): row.doc_id for k, row in manifest.files().items()}
    except sqlite3.DatabaseError as err:
        raise damaged(settings.manifest_path, err) from None
    finally:
        manifest.close()
    candidates = {p: doc_of[p] for p in added - removed if p in doc_of}
    new = set(ledger.unseen(list(candidates.values())))
    return {p for p, doc_id in candidates.items() if doc_id not in new}


def without_reindexed(report: IngestReport, reindexed: set[str]) -> IngestReport:
    """``report`` less the files re-indexed (the rest is told as it was)."""
    if not reindexed:
        return report
    kept = [r for r in report.results if not (r.outcome is Outcome.ADDED and r.path in reindexed)]
    return replace(report, results=kept)
