"""The ingest manifest: tables of the store of record (``ingest.state``) mapping source
files to documents to chunks.

It is the journal that makes ingest incremental and crash-safe:
- ``files``: path → doc_id (content hash), with size and mtime for the no-read fast path;
- ``docs``: doc_id → stored text, metadata and chunk ids (one row per distinct content);
- ``pending``: chunk ids about to be written to Chroma, committed *before* the write, so a
  run killed mid-write leaves a record of exactly what to clean up;
- ``partial``: the chunks of a big document already in Chroma while the rest is still
  being embedded, so a run killed mid-document resumes after them instead of starting
  over (repair keeps them; a run that ends without finishing the document removes them);
- ``runs``: the summary of each ingest, for ``/status`` (the run log, ``ingest.runlog``,
  keeps each run's files for the notices).
A document that no file points at any more is an orphan; repair deletes its chunks.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ingest.state import connect
from ingest.types import Document


@dataclass(frozen=True, slots=True)
class FileRow:
    path: str
    doc_id: str
    size: int
    mtime_ns: int


@dataclass(frozen=True, slots=True)
class DocRow:
    doc_id: str
    path: str
    title: str
    date: str | None
    url: str | None
    format: str
    pages: int
    chunk_ids: tuple[str, ...]
    ingested_at: str


class Manifest:
    def __init__(self, path: Path) -> None:
        """``path``: the store of record (``settings.manifest_path``); StoreDamaged if it
        cannot be read."""
        self.path = path
        self.db = connect(path)

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # -- files -----------------------------------------------------------------------------

    def files(self) -> dict[str, FileRow]:
        rows = self.db.execute("SELECT path, doc_id, size, mtime_ns FROM files").fetchall()
        return {r[0]: FileRow(*r) for r in rows}

    def paths_of(self, doc_id: str) -> list[str]:
        rows = self.db.execute("SELECT path FROM files WHERE doc_id=? ORDER BY path", (doc_id,))
        return [r[0] for r in rows]

    def touch_file(self, row: FileRow) -> None:
        self.db.execute(
            "UPDATE files SET size=?, mtime_ns=? WHERE path=?", (row.size, row.mtime_ns, row.path)
        )

    # -- docs ------------------------------------------------------------------------------

    def doc(self, doc_id: str) -> DocRow | None:
        row = self.db.execute(
            "SELECT doc_id, path, title, date, url, format, pages, chunk_ids, ingested_at "
            "FROM docs WHERE doc_id=?",
            (doc_id,),
        ).fetchone()
        return None if row is None else _doc_row(row)

    def docs(self) -> list[DocRow]:
        rows = self.db.execute(
            "SELECT doc_id, path, title, date, url, format, pages, chunk_ids, ingested_at FROM docs"
        ).fetchall()
        return [_doc_row(r) for r in rows]

    def doc_text(self, doc_id: str) -> str | None:
        row = self.db.execute("SELECT text FROM docs WHERE doc_id=?", (doc_id,)).fetchone()
        return None if row is None else str(row[0])

    def file_paths_by_doc(self) -> dict[str, tuple[str, list[str]]]:
        """doc_id -> (the path the document records, the keys of its files, sorted).

        One query for every document: re-checking paths after each run costs one pass,
        not one query per document (slow with many documents).
        """
        out: dict[str, tuple[str, list[str]]] = {}
        rows = self.db.execute(
            "SELECT d.doc_id, d.path, f.path FROM docs d JOIN files f ON f.doc_id = d.doc_id "
            "ORDER BY d.doc_id, f.path"
        )
        for doc_id, doc_path, key in rows:
            out.setdefault(doc_id, (doc_path, []))[1].append(key)
        return out

    def orphan_docs(self) -> list[DocRow]:
        rows = self.db.execute(
            "SELECT doc_id, path, title, date, url, format, pages, chunk_ids, ingested_at "
            "FROM docs WHERE doc_id NOT IN (SELECT doc_id FROM files)"
        ).fetchall()
        return [_doc_row(r) for r in rows]

    def all_chunk_ids(self) -> set[str]:
        out: set[str] = set()
        for (ids,) in self.db.execute("SELECT chunk_ids FROM docs"):
            out.update(json.loads(ids))
        return out

    # -- pending (write-ahead intent for Chroma writes) --------------------------------------

    def add_pending(self, entries: dict[str, list[str]]) -> None:
        with self.transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO pending(doc_id, chunk_ids) VALUES (?, ?)",
                [(d, json.dumps(ids)) for d, ids in entries.items()],
            )

    def pending(self) -> dict[str, list[str]]:
        rows = self.db.execute("SELECT doc_id, chunk_ids FROM pending").fetchall()
        return {r[0]: json.loads(r[1]) for r in rows}

    def clear_pending(self, doc_ids: list[str]) -> None:
        self.db.executemany("DELETE FROM pending WHERE doc_id=?", [(d,) for d in doc_ids])

    # -- partial (a big document's chunks in Chroma before the document is committed) -------

    def mark_embedded(self, entries: dict[str, list[str]]) -> None:
        with self.transaction() as db:
            db.executemany(
                "INSERT OR IGNORE INTO partial(doc_id, chunk_id) VALUES (?, ?)",
                [(d, c) for d, ids in entries.items() for c in ids],
            )

    def embedded_of(self, doc_id: str) -> set[str]:
        rows = self.db.execute("SELECT chunk_id FROM partial WHERE doc_id=?", (doc_id,))
        return {r[0] for r in rows}

    def partial(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for doc_id, chunk_id in self.db.execute("SELECT doc_id, chunk_id FROM partial"):
            out.setdefault(doc_id, []).append(chunk_id)
        return out

    @staticmethod
    def clear_partial(db: sqlite3.Connection, doc_ids: list[str]) -> None:
        db.executemany("DELETE FROM partial WHERE doc_id=?", [(d,) for d in doc_ids])

    # -- commits of one ingest step ----------------------------------------------------------

    @staticmethod
    def put_doc(db: sqlite3.Connection, doc: Document, chunk_ids: list[str]) -> None:
        db.execute(
            "INSERT OR REPLACE INTO docs(doc_id, path, title, date, url, format, pages, chunk_ids,"
            " text, ingested_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (
                doc.doc_id,
                doc.path,
                doc.title,
                doc.date,
                doc.url,
                doc.format,
                len(doc.pages),
                json.dumps(chunk_ids),
                doc.text,
                datetime.now(UTC).isoformat(timespec="seconds"),
            ),
        )

    @staticmethod
    def put_file(db: sqlite3.Connection, row: FileRow) -> None:
        db.execute(
            "INSERT OR REPLACE INTO files(path, doc_id, size, mtime_ns) VALUES (?,?,?,?)",
            (row.path, row.doc_id, row.size, row.mtime_ns),
        )

    @staticmethod
    def drop_file(db: sqlite3.Connection, path: str) -> None:
        db.execute("DELETE FROM files WHERE path=?", (path,))

    @staticmethod
    def drop_doc(db: sqlite3.Connection, doc_id: str) -> None:
        db.execute("DELETE FROM docs WHERE doc_id=?", (doc_id,))

    @staticmethod
    def repoint_doc(db: sqlite3.Connection, doc_id: str, path: str) -> None:
        db.execute("UPDATE docs SET path=? WHERE doc_id=?", (path, doc_id))

    def reset(self) -> None:
        with self.transaction() as db:
            for table in ("files", "docs", "pending", "partial"):
                db.execute(f"DELETE FROM {table}")

    # -- runs ------------------------------------------------------------------------------

    def record_run(self, report: dict[str, Any]) -> None:
        self.db.execute(
            "INSERT INTO runs(finished_at, report) VALUES (?, ?)",
            (datetime.now(UTC).isoformat(timespec="seconds"), json.dumps(report)),
        )

    def last_run(self) -> tuple[str, dict[str, Any]] | None:
        row = self.db.execute(
            "SELECT finished_at, report FROM runs ORDER BY id DESC LIMIT 1"
        ).fetchone()
        return None if row is None else (str(row[0]), json.loads(row[1]))


def _doc_row(row: tuple[Any, ...]) -> DocRow:
    return DocRow(
        doc_id=row[0],
        path=row[1],
        title=row[2],
        date=row[3],
        url=row[4],
        format=row[5],
        pages=int(row[6]),
        chunk_ids=tuple(json.loads(row[7])),
        ingested_at=row[8],
    )
