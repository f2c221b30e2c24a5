"""Followed topics as plain JSON: the backup copy beside the store, export and import.

The topics live in the store of record (``ingest.state``'s ``subscriptions`` table;
``bot.subscriptions`` owns their rules). They are the one part of the state that cannot be
rebuilt from the documents, so every change also rewrites ``DATA_DIR/follows-backup.json``
(``write_backup``), and a repair (``briefing doctor``, ``ingest --rebuild``) reads it back
when the store cannot be read. ``briefing follows export|import`` use the same format::

    {"follows": [{"chat_id": 42, "topic": "Qingdao trade", "created_by": 7,
                  "created_at": "2026-01-01T00:00:00+00:00"}, ...]}
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


def to_text(rows: Iterable[dict[str, Any]]) -> str:
    return json.dumps({"follows": list(rows)}, ensure_ascii=False, indent=1) + "\n"


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


def write_backup(data_dir: Path, rows: Sequence[dict[str, Any]], path: Path | None = None) -> Path:
    """Write ``rows`` (temp file + rename: a reader sees either copy whole); the path."""
    target = path or backup_path(data_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(to_text(rows), encoding="utf-8")
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
