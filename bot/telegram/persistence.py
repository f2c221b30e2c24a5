"""Chat state that survives a restart, through python-telegram-bot's persistence interface.

``StatePersistence`` is a PTB ``BasePersistence`` on the store of record
(``DATA_DIR/state.sqlite``, table ``chat_state``; ``ingest.state``): PTB's own machinery
loads the chats' data and the callback-data cache at start, and writes what changed every
``update_interval`` seconds and at shutdown. So the "sources" button of an answer given
before a restart still shows its passages, and /sources still knows the last answer.

What is kept: ``chat_data`` (``ChatData``: the last answer) and the callback data behind
inline buttons (``ShowPassages``: the answer each button belongs to). Values are pickled,
as PTB's own ``PicklePersistence`` does; the table is the project's own file, written
nowhere else. Not kept: ``bot_data`` (the running services) and ``user_data`` (unused).
A damaged store stops the bot at start with one line naming it (StoreDamaged). A store
damaged, deleted or failing while the bot runs costs no answer and no flood of errors
(``StateWriter``): one warning naming the file, the writes kept in memory and tried again
at each of PTB's flushes (reopening the file once a repair has replaced it), and one line
when they are saved again.

Follow-up context lives in the answering service (``bot.history.History``, keyed by
conversation, not by PTB's chat), so PTB's machinery cannot carry it: ``PersistentHistory``
is a ``History`` that also writes each conversation's recent questions (with their wall-
clock time) to the same table, and takes back those still within the history's time
limit when the bot starts.
"""

from __future__ import annotations

import json
import logging
import pickle
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from telegram.ext import BasePersistence, PersistenceInput
from telegram.ext._utils.types import CDCData, ConversationDict, ConversationKey

from bot.history import History
from bot.telegram.context import BotData, ChatData
from ingest.state import StoreDamaged, connect, damaged

log = logging.getLogger(__name__)

CHAT = "chat"
CALLBACK = "callback"
HISTORY = "history"
UPDATE_INTERVAL_S = 10.0  # PTB writes changed chat state this often (and at shutdown)


class StateWriter:
    """Writes to the ``chat_state`` table that a damaged store does not turn into an error
    at every write: the first failure is logged once (naming the file and the command that
    repairs it), the writes are kept in memory, and each later write tries them all again
    — on a fresh connection once the file was replaced (``briefing doctor`` rebuilds it
    under the running bot), never on a file deleted under it (that would start an empty
    store beside the teller's own notice). One line says when they are saved again."""

    def __init__(self, path: Path, what: str) -> None:
        self.path = path
        self.what = what  # what is not saved, for the log: "chat state", "follow-up context"
        self._db = connect(path)
        self._inode = path.stat().st_ino
        self._lock = threading.Lock()
        self._unsaved: dict[tuple[str, str], bytes | None] = {}  # None: to be deleted
        self.failing = False

    def rows(self, kind: str) -> list[tuple[str, bytes]]:
        """The stored rows of ``kind``; StoreDamaged (naming the file) if unreadable."""
        with self._lock:
            try:
                return self._db.execute(
                    "SELECT key, data FROM chat_state WHERE kind=?", (kind,)
                ).fetchall()
            except sqlite3.DatabaseError as err:
                raise damaged(self.path, err) from None

    def write(self, kind: str, key: str, data: bytes | None) -> None:
        """Store ``data`` under (kind, key), or delete it (None); never raises."""
        with self._lock:
            self._unsaved[kind, key] = data
            try:
                self._reopen_if_replaced()
                self._db.execute("BEGIN IMMEDIATE")
                for (k, name), value in self._unsaved.items():
                    if value is None:
                        self._db.execute("DELETE FROM chat_state WHERE kind=? AND key=?", (k, name))
                    else:
                        self._db.execute(
                            "INSERT OR REPLACE INTO chat_state(kind, key, data) VALUES (?, ?, ?)",
                            (k, name, value),
                        )
                self._db.execute("COMMIT")
            except (sqlite3.DatabaseError, StoreDamaged, OSError) as err:
                self._roll_back()
                if not self.failing:
                    log.warning("%s is not saved: %s", self.what, self._problem(err))
                self.failing = True
                return
            self._unsaved.clear()
            if self.failing:
                log.info("%s is saved again in %s", self.what, self.path)
            self.failing = False

    def _problem(self, err: Exception) -> str:
        """What went wrong, in a line naming the file: damage (with the repair command),
        or a write the system refused (a full disk, a lock, a file deleted)."""
        if isinstance(err, StoreDamaged):
            return str(err)
        if isinstance(err, FileNotFoundError):
            return (
                f"{self.path} was deleted while the bot ran; run `briefing doctor` to restore "
                "it (the changes wait in memory until then)"
            )
        if isinstance(err, (sqlite3.OperationalError, OSError)):
            return f"{self.path} could not be written ({err}); it is tried again at each change"
        return str(damaged(self.path, err))

    def _roll_back(self) -> None:
        """End a transaction a failed write left open (else every later BEGIN fails)."""
        try:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # the file is what failed; the next write tries again

    def _reopen_if_replaced(self) -> None:
        """Follow the file to a new inode (a repair replaced it); FileNotFoundError while
        it is gone (the writes wait in memory)."""
        inode = self.path.stat().st_ino
        if inode == self._inode:
            return
        fresh = connect(self.path)  # checks the new file's integrity
        self._db.close()
        self._db, self._inode = fresh, inode

    def unsaved(self) -> int:
        with self._lock:
            return len(self._unsaved)

    def close(self) -> None:
        with self._lock:
            if self._unsaved:
                log.warning(
                    "%s was not saved to %s (%d changes): it is lost at this restart",
                    self.what,
                    self.path,
                    len(self._unsaved),
                )
            self._db.close()


class StatePersistence(BasePersistence[dict[Any, Any], ChatData, BotData]):
    def __init__(self, path: Path, update_interval: float = UPDATE_INTERVAL_S) -> None:
        super().__init__(
            store_data=PersistenceInput(
                bot_data=False, chat_data=True, user_data=False, callback_data=True
            ),
            update_interval=update_interval,
        )
        self.path = path
        self.writer = StateWriter(path, "chat state")

    def _rows(self, kind: str) -> list[tuple[str, bytes]]:
        return self.writer.rows(kind)

    def _put(self, kind: str, key: str, value: object) -> None:
        self.writer.write(kind, key, pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))

    def _drop(self, kind: str, key: str) -> None:
        self.writer.write(kind, key, None)

    @staticmethod
    def _load(data: bytes, what: str) -> Any:
        """Unpickle; None (logged) when the stored value no longer loads (e.g. an answer
        saved by an older version whose classes changed): that chat starts afresh."""
        try:
            return pickle.loads(data)  # our own file, written by this class
        except Exception as err:
            log.warning("saved %s could not be loaded (%s): starting it afresh", what, err)
            return None

    # -- chat data -------------------------------------------------------------------------

    async def get_chat_data(self) -> dict[int, ChatData]:
        out: dict[int, ChatData] = {}
        for key, data in self._rows(CHAT):
            value = self._load(data, f"state of chat {key}")
            if isinstance(value, ChatData):
                out[int(key)] = value
        return out

    async def update_chat_data(self, chat_id: int, data: ChatData) -> None:
        self._put(CHAT, str(chat_id), data)

    async def refresh_chat_data(self, chat_id: int, chat_data: ChatData) -> None:
        return None  # this process is the only writer: memory is current

    async def drop_chat_data(self, chat_id: int) -> None:
        self._drop(CHAT, str(chat_id))

    # -- callback data (the answers behind "sources" buttons) --------------------------------

    async def get_callback_data(self) -> CDCData | None:
        rows = self._rows(CALLBACK)
        if not rows:
            return None
        value = self._load(rows[0][1], "button data")
        return value if isinstance(value, tuple) else None

    async def update_callback_data(self, data: CDCData) -> None:
        self._put(CALLBACK, "cache", data)

    # -- not kept --------------------------------------------------------------------------

    async def get_bot_data(self) -> BotData:
        return BotData()

    async def update_bot_data(self, data: BotData) -> None:
        return None

    async def refresh_bot_data(self, bot_data: BotData) -> None:
        return None

    async def get_user_data(self) -> dict[int, dict[Any, Any]]:
        return {}

    async def update_user_data(self, user_id: int, data: dict[Any, Any]) -> None:
        return None

    async def refresh_user_data(self, user_id: int, user_data: dict[Any, Any]) -> None:
        return None

    async def drop_user_data(self, user_id: int) -> None:
        return None

    async def get_conversations(self, name: str) -> ConversationDict:
        return {}

    async def update_conversation(
        self, name: str, key: ConversationKey, new_state: object | None
    ) -> None:
        return None

    async def flush(self) -> None:
        self.writer.close()


class PersistentHistory(History):
    """A ``History`` whose conversations survive a restart (see the module docstring)."""

    def __init__(self, path: Path, turns: int, ttl_s: float) -> None:
        super().__init__(turns=turns, ttl_s=ttl_s)
        self.path = path
        self.writer = StateWriter(path, "follow-up context")
        self._restore()

    def _restore(self) -> None:
        now = time.time()
        for conversation, data in self.writer.rows(HISTORY):
            try:
                saved = json.loads(data)
                stamp, questions = float(saved["at"]), [str(q) for q in saved["questions"]]
            except (ValueError, KeyError, TypeError):
                continue
            if now - stamp <= self.ttl_s:
                for question in questions:
                    super().add(conversation, question)

    def add(self, conversation: str | None, question: str) -> None:
        super().add(conversation, question)
        if conversation is None:
            return
        saved = json.dumps({"at": time.time(), "questions": self.get(conversation)})
        # A damaged store costs the context after a restart, not the answer being given.
        self.writer.write(HISTORY, conversation, saved.encode("utf-8"))

    def forget(self, conversation: str) -> None:
        super().forget(conversation)
        self.writer.write(HISTORY, conversation, None)
