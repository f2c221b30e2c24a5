"""Followed topics, per chat, in the store of record (``DATA_DIR/state.sqlite``, see
``ingest.state``).

Followed topics must never be lost silently: every change also rewrites a plain copy,
``DATA_DIR/follows-backup.json`` (``export_follows``'s format), which ``briefing doctor``
and ``briefing follows import`` read back; a store found missing while that copy holds
topics takes them back at once (``restore_if_lost``), with a warning.

Why a table and not PTB's persistence: matching runs after an ingest, outside any update,
and needs every chat's topics at once; PTB persistence keeps per-chat dicts in memory and
flushes them on its own schedule, and persisting ``chat_data`` would also pickle the
answers the bot keeps for the sources button. A table is queried directly, written at
once (a follow survives a crash a second later), and readable by an admin with sqlite3.
No Telegram types here.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ingest import follows_backup
from ingest.state import connect, damaged

log = logging.getLogger(__name__)


MAX_TOPIC_CHARS = follows_backup.MAX_TOPIC_CHARS
MAX_PER_CHAT = 20


class SubscriptionError(Exception):
    """A follow that cannot be saved; ``str(err)`` is the reason shown to the user."""


@dataclass(frozen=True, slots=True)
class Subscription:
    id: int
    chat_id: int
    topic: str
    created_by: int | None
    created_at: str


def clean_topic(text: str) -> str:
    """One line, single spaces; raises SubscriptionError when empty or too long."""
    topic = " ".join(text.split())
    if not topic:
        raise SubscriptionError("Say what to follow, e.g. /follow Qingdao foreign trade")
    if len(topic) > MAX_TOPIC_CHARS:
        raise SubscriptionError(f"A topic is at most {MAX_TOPIC_CHARS} characters.")
    return topic


class SubscriptionStore:
    """Thread-safe: handlers (event loop) and matching (a worker thread) share it.

    ``path``: the store of record; StoreDamaged (naming it and ``briefing doctor``) if it
    cannot be read, at open or later."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = connect(path)
        self._lock = threading.Lock()
        self.restore_if_lost()

    def restore_if_lost(self) -> int:
        """No topic in the store while the backup copy holds some: the store was lost (every
        change rewrites the copy, so unfollowing everything empties it too). Take them back.
        A backup copy missing, unreadable or behind the store is written again."""
        rows = follows_backup.read_backup(self.path.parent)
        self._restore_ledger()
        if not rows or self.all():
            self._refresh_backup(rows)
            return 0
        added = self.import_rows(rows)
        log.warning(
            "%s was missing: %d followed topics restored from %s",
            self.path,
            added,
            follows_backup.backup_path(self.path.parent),
        )
        return added

    def _restore_ledger(self) -> None:
        """A store whose ledger has not started takes the backup copy's, if it keeps one:
        the documents a lost or repaired store's next runs re-index are not news then."""
        if self.ledger_started():
            return
        seen = follows_backup.read_seen(self.path.parent)
        if seen is None:
            return
        with self._lock:
            try:
                follows_backup.import_seen(self._db, seen)
            except sqlite3.DatabaseError as err:
                raise damaged(self.path, err) from None
        log.info(
            "the %d documents followers know about are restored from %s",
            len(seen),
            follows_backup.backup_path(self.path.parent),
        )

    def import_rows(self, rows: Sequence[dict[str, Any]]) -> int:
        """Add the exported ``rows`` not followed yet; how many were added."""
        with self._lock:
            try:
                added = follows_backup.import_rows(self._db, rows)
            except sqlite3.DatabaseError as err:
                raise damaged(self.path, err) from None
        self._backup()
        return added

    def _refresh_backup(self, backed_up: list[dict[str, Any]]) -> None:
        """Write the backup copy again if it is not the store's topics, unless it holds
        topics the store lacks (a store put back from an older copy): those stay for
        ``briefing doctor`` or ``follows import`` to take back."""
        current = self.export_rows()
        path = follows_backup.backup_path(self.path.parent)
        try:
            on_disk: bytes | None = path.read_bytes()
        except OSError:
            on_disk = None
        if on_disk == follows_backup.to_text(current, self._seen()).encode():
            return
        if on_disk is None and not current:
            return

        def keys(rows: list[dict[str, Any]]) -> set[tuple[int, str]]:
            return {(r["chat_id"], r["topic"]) for r in rows}

        if not keys(backed_up) <= keys(current):
            return
        self._backup()
        if on_disk is None:
            log.warning("the followed topics' backup %s was missing: written again", path)
        else:
            log.info("the followed topics' backup %s is written again from %s", path, self.path)

    def export_rows(self) -> list[dict[str, Any]]:
        with self._lock:
            try:
                return follows_backup.rows_of(self._db)
            except sqlite3.DatabaseError as err:
                raise damaged(self.path, err) from None

    def _seen(self) -> list[str] | None:
        with self._lock:
            try:
                return follows_backup.seen_of(self._db)
            except sqlite3.DatabaseError as err:
                raise damaged(self.path, err) from None

    def _backup(self) -> None:
        """Rewrite the plain copy beside the store (``ingest.follows_backup``)."""
        try:
            follows_backup.write_backup(self.path.parent, self.export_rows(), seen=self._seen())
        except OSError as err:
            log.warning("could not write the followed topics' backup: %s", err)

    def _run(self, sql: str, args: tuple[object, ...] = ()) -> sqlite3.Cursor:
        """One statement under the lock; damage found now is named like damage at open."""
        try:
            return self._db.execute(sql, args)
        except sqlite3.IntegrityError:
            raise
        except sqlite3.DatabaseError as err:
            raise damaged(self.path, err) from None

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _rows(self, sql: str, args: tuple[object, ...] = ()) -> list[Subscription]:
        with self._lock:
            rows = self._run(sql, args).fetchall()
        return [Subscription(*row) for row in rows]

    def add(self, chat_id: int, topic: str, created_by: int | None = None) -> Subscription:
        topic = clean_topic(topic)
        with self._lock:
            existing = self._run(
                "SELECT COUNT(*) FROM subscriptions WHERE chat_id=?", (chat_id,)
            ).fetchone()[0]
            if existing >= MAX_PER_CHAT:
                raise SubscriptionError(
                    f"This chat follows {MAX_PER_CHAT} topics already; /unfollow one first."
                )
            try:
                cur = self._db.execute(
                    "INSERT INTO subscriptions(chat_id, topic, created_by, created_at) "
                    "VALUES (?, ?, ?, ?)",
                    (chat_id, topic, created_by, datetime.now(UTC).isoformat(timespec="seconds")),
                )
            except sqlite3.IntegrityError:
                raise SubscriptionError(f"This chat follows “{topic}” already.") from None
            row_id = cur.lastrowid
        (sub,) = self._rows("SELECT * FROM subscriptions WHERE id=?", (row_id,))
        self._backup()
        return sub

    def of_chat(self, chat_id: int) -> list[Subscription]:
        """The chat's topics in the order they were followed (``/unfollow n`` counts in it)."""
        return self._rows("SELECT * FROM subscriptions WHERE chat_id=? ORDER BY id", (chat_id,))

    def all(self) -> list[Subscription]:
        return self._rows("SELECT * FROM subscriptions ORDER BY chat_id, id")

    def remove(self, chat_id: int, n: int) -> Subscription | None:
        """Remove the chat's ``n``-th topic (1-based); None when there is no such number."""
        subs = self.of_chat(chat_id)
        if not 1 <= n <= len(subs):
            return None
        sub = subs[n - 1]
        with self._lock:
            self._run("DELETE FROM subscriptions WHERE id=?", (sub.id,))
        self._backup()
        return sub

    # -- which documents followers have been told about ------------------------------------

    def unseen(self, current: Sequence[str]) -> list[str]:
        """The ids in ``current`` (the index's documents now) not seen before, in order.

        Kept here rather than taken from one run's report, so a document reaches followers
        whichever ingest indexed it, even while the bot was down. Before the first
        ``mark_seen`` ever, nothing is new: followers are told about documents that arrive
        after the bot started following, not the whole corpus.
        """
        with self._lock:
            if self._run("SELECT 1 FROM meta WHERE key='ledger'").fetchone() is None:
                return []
            seen = {row[0] for row in self._run("SELECT doc_id FROM seen_documents")}
        return [d for d in dict.fromkeys(current) if d not in seen]

    def mark_seen(self, current: Sequence[str], *, forget_gone: bool = True) -> None:
        """Remember ``current`` as the documents followers have been told about (called once
        their digests are sent, so a crash before that tells them again rather than never).
        ``forget_gone``: the documents not in ``current`` are forgotten (news again if they
        come back); else they are kept."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                if forget_gone:  # gone documents need no memory
                    self._db.execute("DELETE FROM seen_documents")
                self._db.executemany(
                    "INSERT OR IGNORE INTO seen_documents(doc_id) VALUES (?)",
                    [(d,) for d in current],
                )
                self._db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('ledger', '1')")
                self._db.execute("COMMIT")
            except sqlite3.DatabaseError as err:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise damaged(self.path, err) from None
        self._backup()  # the ledger too: a store rebuilt from the copy knows what was told

    def ledger_started(self) -> bool:
        with self._lock:
            row = self._run("SELECT 1 FROM meta WHERE key='ledger'").fetchone()
        return row is not None

    # -- small persistent facts (e.g. the last ingest run told) -------------------------------

    def meta(self, key: str) -> str | None:
        with self._lock:
            row = self._run("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self._lock:
            self._run("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    def remove_chat(self, chat_id: int) -> int:
        """Forget every topic of a chat (the bot was blocked or removed); returns how many."""
        with self._lock:
            cur = self._run("DELETE FROM subscriptions WHERE chat_id=?", (chat_id,))
        self._backup()
        return cur.rowcount
