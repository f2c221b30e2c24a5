"""The run log as the teller reads it (``bot.telegram.dropfolder``): a connection of its own
for each read, and only from the store the bot started with.

A long-lived connection reads from its page cache and can miss a file damaged under it
(nothing in the write-ahead log says it changed); a file deleted or replaced under the bot
would be read on as the old one, which nothing writes, so every later run would go untold:
that is named instead. And a file cut short still answers a query that stays in its first
part, so a store that shrank (it only grows: nothing VACUUMs it) is checked whole at the
next open. Only ``os.stat`` looks at the file outside SQLite: opening and closing it here
would drop this process's SQLite locks on it.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ingest import runlog
from ingest.state import StoreDamaged, connect, damaged, forget_check


class RunLogReader:
    def __init__(self, path: Path) -> None:
        self.path = path
        stat = path.stat()
        self._identity, self._size = stat.st_ino, stat.st_size

    def runs_after(self, told: int) -> list[runlog.LoggedRun]:
        """The runs logged after run ``told``; StoreDamaged (naming the file) when the
        store is gone, replaced or damaged."""
        db = self._open()
        try:
            return runlog.read_after(db, told)
        except sqlite3.DatabaseError as err:
            raise damaged(self.path, err) from None
        finally:
            db.close()

    def last_seq(self) -> int:
        """The last run logged (0: none yet)."""
        db = self._open()
        try:
            return runlog.last_seq(db)
        except sqlite3.DatabaseError as err:
            raise damaged(self.path, err) from None
        finally:
            db.close()

    def _open(self) -> sqlite3.Connection:
        try:
            stat = self.path.stat()
            identity: int | None = stat.st_ino
        except FileNotFoundError:
            identity = None
        if identity != self._identity:
            raise StoreDamaged(
                f"{self.path} was deleted or replaced while the bot ran; restart the bot "
                "(followed topics come back from their backup copy)"
            )
        if stat.st_size < self._size:
            forget_check(self.path)  # connect() checks it whole again
        self._size = max(self._size, stat.st_size)
        return connect(self.path)
