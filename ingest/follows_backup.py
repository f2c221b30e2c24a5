"""Followed topics as plain JSON: the backup copy beside the store, export and import.

The topics live in the store of record (``ingest.state``'s ``subscriptions`` table;
``bot.subscriptions`` owns their rules). They are the one part of the state that cannot be
rebuilt from the documents, so every change also rewrites ``DATA_DIR/follows-backup.json``
(``write_backup``), and a repair (``briefing doctor``, ``ingest --rebuild``) reads it back
when the store cannot be read. ``briefing follows export|import`` use the same format::

    {"follows": [{"chat_id": 42, "topic": "Qingdao trade", "created_by": 7,
                  "created_at": "2026-01-01T00:00:00+00:00"}, ...]}

The backup copy also keeps ``"seen_documents"``: the content ids of the documents
followers know about (the ``seen_documents`` ledger). A store rebuilt from the copy then
tells what was dropped while it was damaged, and not the documents it re-indexes.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

BACKUP_NAME = "follows-backup.json"
SEEN_KEY = "seen_documents"
MAX_TOPIC_CHARS = 200  # bot.subscriptions refuses longer topics at /follow


def backup_path(data_dir: Path) -> Path:
    return data_dir / BACKUP_NAME


def rows_of(db: sqlite3.Connection) -> list[dict[str, Any]]:
    """Every followed topic in the store, in the order followed; DatabaseError if unreadable."""
    cur = db.execute(
        "SELECT chat_id, topic, created_by, created_at FROM subscriptions ORDER BY chat_id, id"
    )
    return [
        dict(zip(("chat_id", "topic", "created_by", "created_at"), r, strict=True)) for r in cur
    ]


def to_text(rows: Iterable[dict[str, Any]], seen: Sequence[str] | None = None) -> str:
    data: dict[str, Any] = {"follows": list(rows)}
    if seen is not None:
        data[SEEN_KEY] = list(seen)
    return json.dumps(data, ensure_ascii=False, indent=1) + "\n"


def parse(text: str) -> list[dict[str, Any]]:
    """The rows of exported text; ValueError when it is not an export."""
    data = json.loads(text)
    rows = data.get("follows") if isinstance(data, dict) else None
    if not isinstance(rows, list) or not all(
        isinstance(r, dict)
        and isinstance(r.get("chat_id"), int)
        and isinstance(r.get("topic"), str)
        for r in rows
    ):
        raise ValueError('not an export of followed topics ({"follows": [{chat_id, topic}, …]})')
    return rows


def read_backup(data_dir: Path) -> list[dict[str, Any]]:
    """The backup copy's rows ([] when absent; unreadable: logged, [])."""
    path = backup_path(data_dir)
    try:
        return parse(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as err:
        log.warning("the followed topics' backup %s is unreadable: %s", path, err)
        return []


def read_seen(data_dir: Path) -> list[str] | None:
    """The ledger the backup copy keeps (None when it keeps none or cannot be read)."""
    try:
        data = json.loads(backup_path(data_dir).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # read_backup says why
    seen = data.get(SEEN_KEY) if isinstance(data, dict) else None
    if not isinstance(seen, list) or not all(isinstance(d, str) for d in seen):
        return None
    return seen


def seen_of(db: sqlite3.Connection) -> list[str] | None:
    """The store's ledger, or None before it started; DatabaseError if unreadable."""
    if db.execute("SELECT 1 FROM meta WHERE key='ledger'").fetchone() is None:
        return None
    return [row[0] for row in db.execute("SELECT doc_id FROM seen_documents ORDER BY doc_id")]


def import_seen(db: sqlite3.Connection, seen: Sequence[str]) -> None:
    """Take ``seen`` into a store whose ledger has not started (one transaction)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        db.executemany(
            "INSERT OR IGNORE INTO seen_documents(doc_id) VALUES (?)", [(d,) for d in seen]
        )
        db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('ledger', '1')")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def write_backup(
    data_dir: Path,
    rows: Sequence[dict[str, Any]],
    path: Path | None = None,
    seen: Sequence[str] | None = None,
) -> Path:
    """Write ``rows`` and the ledger ``seen`` (temp file + rename: a reader sees either
    copy whole); the path."""
    target = path or backup_path(data_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(to_text(rows, seen), encoding="utf-8")
    os.replace(tmp, target)
    return target


def merge(*groups: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of every group, each (chat, topic) once, first seen kept."""
    out: dict[tuple[int, str], dict[str, Any]] = {}
    for rows in groups:
        for row in rows:
            out.setdefault((row["chat_id"], " ".join(row["topic"].split())), row)
    return list(out.values())


def import_rows(db: sqlite3.Connection, rows: Sequence[dict[str, Any]]) -> int:
    """Add the ``rows`` not followed yet (one transaction); how many were added. Topics are
    cleaned as ``/follow`` cleans them; an empty or over-long one is skipped."""
    now = datetime.now(UTC).isoformat(timespec="seconds")
    values = []
    for r in rows:
        topic = " ".join(r["topic"].split())
        if topic and len(topic) <= MAX_TOPIC_CHARS:
            values.append((r["chat_id"], topic, r.get("created_by"), r.get("created_at") or now))
    db.execute("BEGIN IMMEDIATE")
    try:
        before = db.total_changes
        db.executemany(
            "INSERT OR IGNORE INTO subscriptions(chat_id, topic, created_by, created_at) "
            "VALUES (?, ?, ?, ?)",
            values,
        )
        added = db.total_changes - before
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    return added
