"""The store of record: one SQLite database, ``DATA_DIR/state.sqlite``, for the project's
own state — the ingest manifest, the run log, followed topics and the chat state that must
survive a restart. Chroma stays Chroma; BM25 files and caches are derived and rebuilt.

Why one database: an ingest's rows and its run record commit in one transaction (so the
notices after a ``kill -9`` are exact), sequence numbers are never reused (SQLite's
AUTOINCREMENT), and there is one file to check, back up and repair.

``connect`` opens it in WAL mode, checks its integrity once per process (``PRAGMA
quick_check``), and brings its schema to ``SCHEMA_VERSION`` (``PRAGMA user_version``
counts the migrations applied). On the first open, the files of earlier versions
(``manifest.sqlite``, ``runs.jsonl``, ``subscriptions.sqlite``) are taken in and renamed
``*.migrated``. A damaged database raises ``StoreDamaged``: one line naming the file and
the command that recovers (``briefing doctor``).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ingest.errors import FatalError

log = logging.getLogger(__name__)

STATE_NAME = "state.sqlite"
LEGACY_MANIFEST = "manifest.sqlite"
LEGACY_RUNS = "runs.jsonl"
LEGACY_SUBSCRIPTIONS = "subscriptions.sqlite"
MIGRATED_SUFFIX = ".migrated"

# Each entry brings the schema from version n to n + 1; never edit one that has shipped,
# add the next. ``IF NOT EXISTS`` in the first: a manifest of earlier versions has its
# tables already.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE IF NOT EXISTS files(
        path TEXT PRIMARY KEY, doc_id TEXT NOT NULL, size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL
    );
    CREATE INDEX IF NOT EXISTS files_doc ON files(doc_id);
    CREATE TABLE IF NOT EXISTS docs(
        doc_id TEXT PRIMARY KEY, path TEXT NOT NULL, title TEXT NOT NULL, date TEXT, url TEXT,
        format TEXT NOT NULL, pages INTEGER NOT NULL, chunk_ids TEXT NOT NULL,
        text TEXT NOT NULL, ingested_at TEXT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS pending(doc_id TEXT PRIMARY KEY, chunk_ids TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS runs(
        id INTEGER PRIMARY KEY AUTOINCREMENT, finished_at TEXT NOT NULL, report TEXT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS run_log(
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        state TEXT NOT NULL,          -- running | done | interrupted
        started_at TEXT NOT NULL,
        finished_at TEXT,
        pid INTEGER NOT NULL,
        seconds REAL NOT NULL DEFAULT 0,
        embedded_chunks INTEGER NOT NULL DEFAULT 0,
        repaired INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE IF NOT EXISTS run_results(
        seq INTEGER NOT NULL REFERENCES run_log(seq) ON DELETE CASCADE,
        n INTEGER NOT NULL, path TEXT NOT NULL, outcome TEXT NOT NULL, reason TEXT,
        chunks INTEGER NOT NULL, PRIMARY KEY(seq, n)
    );
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
    """,
    """
    CREATE TABLE IF NOT EXISTS chat_state(
        kind TEXT NOT NULL, key TEXT NOT NULL, data BLOB NOT NULL, PRIMARY KEY(kind, key)
    );
    """,
    """
    CREATE TABLE IF NOT EXISTS partial(
        doc_id TEXT NOT NULL, chunk_id TEXT NOT NULL, PRIMARY KEY(doc_id, chunk_id)
    );
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)

_checked: set[tuple[str, int]] = set()  # (path, inode) whose integrity this process checked


class StoreDamaged(FatalError):
    """The store of record cannot be read; ``str(err)`` names it and the recovery command."""


def state_path(data_dir: Path) -> Path:
    return data_dir / STATE_NAME


def damaged(path: Path, err: BaseException) -> StoreDamaged:
    return StoreDamaged(
        f"{path} is damaged ({err}); run `briefing doctor` to repair it "
        "(followed topics are kept; the index is rebuilt from the documents)"
    )


@contextmanager
def _migration_lock(data_dir: Path) -> Iterator[None]:
    with open(data_dir / "state.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def connect(path: Path, *, check: bool = True) -> sqlite3.Connection:
    """Open the store at ``path`` (created and migrated as needed); StoreDamaged if unreadable.

    ``isolation_level=None``: callers open transactions explicitly (``BEGIN IMMEDIATE``),
    so each commit is a deliberate crash-safe step rather than sqlite3's implicit batching.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    db: sqlite3.Connection | None = None
    try:
        with _migration_lock(path.parent):
            # Only the store itself takes in earlier versions' files (a test's own file does not).
            fresh = not path.exists() and path.name == STATE_NAME
            if fresh:
                _adopt_legacy_manifest(path)
            db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA foreign_keys=ON")
            key = (str(path.resolve()), path.stat().st_ino)
            if check and key not in _checked:
                verdict = db.execute("PRAGMA quick_check").fetchall()
                if verdict != [("ok",)]:
                    raise sqlite3.DatabaseError("; ".join(str(r[0]) for r in verdict[:3]))
                _checked.add(key)
            _migrate(db)
            if fresh:
                _adopt_legacy_runs(db, path.parent)
                _adopt_legacy_subscriptions(db, path.parent)
    except sqlite3.DatabaseError as err:
        if db is not None:
            db.close()
        raise damaged(path, err) from None
    return db


def forget_check(path: Path) -> None:
    """Check ``path`` again at its next open (after a repair replaced it)."""
    _checked.difference_update({k for k in _checked if k[0] == str(path.resolve())})


def schema_version(db: sqlite3.Connection) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def _migrate(db: sqlite3.Connection) -> None:
    version = schema_version(db)
    if version > SCHEMA_VERSION:
        raise FatalError(
            f"the state database has schema {version}, newer than this version "
            f"({SCHEMA_VERSION}) knows: upgrade briefing-bot"
        )
    for n in range(version, SCHEMA_VERSION):
        db.execute("BEGIN IMMEDIATE")
        try:
            for statement in MIGRATIONS[n].split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute(f"PRAGMA user_version={n + 1}")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")


# -- the files of earlier versions ----------------------------------------------------------


def _retire(path: Path) -> None:
    os.replace(path, path.with_name(path.name + MIGRATED_SUFFIX))


def _adopt_legacy_manifest(path: Path) -> None:
    """Earlier versions' manifest becomes the store (a rename: no copy of its texts)."""
    legacy = path.with_name(LEGACY_MANIFEST)
    if not legacy.is_file():
        return
    old = sqlite3.connect(legacy, isolation_level=None)
    try:  # fold its write-ahead log in, so the one file holds everything
        old.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        old.execute("PRAGMA journal_mode=DELETE")
    finally:
        old.close()
    os.replace(legacy, path)
    for suffix in ("-wal", "-shm"):
        legacy.with_name(LEGACY_MANIFEST + suffix).unlink(missing_ok=True)
    log.info("the manifest %s is now part of %s", legacy, path)


def _adopt_legacy_runs(db: sqlite3.Connection, data_dir: Path) -> None:
    legacy = data_dir / LEGACY_RUNS
    if not legacy.is_file():
        return
    text = legacy.read_bytes().decode("utf-8", errors="replace")
    db.execute("BEGIN IMMEDIATE")
    try:
        for line in text.split("\n")[:-1]:
            try:
                rec = json.loads(line)
                seq = int(rec["seq"])
                db.execute(
                    "INSERT OR IGNORE INTO run_log(seq, state, started_at, finished_at, pid, "
                    "seconds, embedded_chunks, repaired) VALUES (?, 'done', ?, ?, ?, ?, ?, ?)",
                    (
                        seq,
                        rec["finished_at"],
                        rec["finished_at"],
                        int(rec["pid"]),
                        float(rec["seconds"]),
                        int(rec["embedded_chunks"]),
                        int(rec["repaired"]),
                    ),
                )
                db.executemany(
                    "INSERT OR IGNORE INTO run_results(seq, n, path, outcome, reason, chunks) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    [(seq, n, p, o, r, c) for n, (p, o, r, c) in enumerate(rec["results"])],
                )
            except (ValueError, KeyError, TypeError):
                continue  # an unreadable line of the old log: that run was told or lost then
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    _retire(legacy)


def _adopt_legacy_subscriptions(db: sqlite3.Connection, data_dir: Path) -> None:
    legacy = data_dir / LEGACY_SUBSCRIPTIONS
    if not legacy.is_file():
        return
    db.execute("ATTACH DATABASE ? AS old", (str(legacy),))
    try:
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("INSERT OR IGNORE INTO subscriptions SELECT * FROM old.subscriptions")
            db.execute("INSERT OR IGNORE INTO seen_documents SELECT * FROM old.seen_documents")
            db.execute("INSERT OR REPLACE INTO meta SELECT * FROM old.meta")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
    finally:
        db.execute("DETACH DATABASE old")
    _retire(legacy)
    for suffix in ("-wal", "-shm"):
        (data_dir / (LEGACY_SUBSCRIPTIONS + suffix)).unlink(missing_ok=True)
