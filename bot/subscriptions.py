"""Followed topics, per chat, in SQLite beside the index (``DATA_DIR/subscriptions.sqlite``).

Why SQLite and not PTB's persistence: matching runs after an ingest, outside any update,
and needs every chat's topics at once; PTB persistence keeps per-chat dicts in memory and
flushes them on its own schedule, and persisting ``chat_data`` would also pickle the
answers the bot keeps for the sources button. A table is queried directly, written at
once (a follow survives a crash a second later), and readable by an admin with sqlite3.
No Telegram types here.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

MAX_TOPIC_CHARS = 200
MAX_PER_CHAT = 20

_SCHEMA = """
CREATE TABLE IF NOT EXISTS subscriptions(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    chat_id INTEGER NOT NULL,
    topic TEXT NOT NULL,
    created_by INTEGER,
    created_at TEXT NOT NULL,
    UNIQUE(chat_id, topic)
);
CREATE INDEX IF NOT EXISTS subscriptions_chat ON subscriptions(chat_id);
CREATE TABLE IF NOT EXISTS seen_documents(doc_id TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


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
    """Thread-safe: handlers (event loop) and matching (a worker thread) share it."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _rows(self, sql: str, args: tuple[object, ...] = ()) -> list[Subscription]:
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [Subscription(*row) for row in rows]

    def add(self, chat_id: int, topic: str, created_by: int | None = None) -> Subscription:
        topic = clean_topic(topic)
        with self._lock:
            existing = self._db.execute(
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
            self._db.execute("DELETE FROM subscriptions WHERE id=?", (sub.id,))
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
            if self._db.execute("SELECT 1 FROM meta WHERE key='ledger'").fetchone() is None:
                return []
            seen = {row[0] for row in self._db.execute("SELECT doc_id FROM seen_documents")}
        return [d for d in dict.fromkeys(current) if d not in seen]

    def mark_seen(self, current: Sequence[str]) -> None:
        """Remember ``current`` as the documents followers have been told about (called once
        their digests are sent, so a crash before that tells them again rather than never)."""
        with self._lock:
            self._db.execute("BEGIN")
            self._db.execute("DELETE FROM seen_documents")  # gone documents need no memory
            self._db.executemany(
                "INSERT OR IGNORE INTO seen_documents(doc_id) VALUES (?)", [(d,) for d in current]
            )
            self._db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('ledger', '1')")
            self._db.execute("COMMIT")

    def ledger_started(self) -> bool:
        with self._lock:
            row = self._db.execute("SELECT 1 FROM meta WHERE key='ledger'").fetchone()
        return row is not None

    # -- small persistent facts (e.g. the last ingest run told) -------------------------------

    def meta(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    def remove_chat(self, chat_id: int) -> int:
        """Forget every topic of a chat (the bot was blocked or removed); returns how many."""
        with self._lock:
            cur = self._db.execute("DELETE FROM subscriptions WHERE chat_id=?", (chat_id,))
        return cur.rowcount
