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
A damaged store stops the bot at start with one line naming it (StoreDamaged).

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
from ingest.state import connect, damaged

log = logging.getLogger(__name__)

CHAT = "chat"
CALLBACK = "callback"
HISTORY = "history"
UPDATE_INTERVAL_S = 10.0  # PTB writes changed chat state this often (and at shutdown)


class StatePersistence(BasePersistence[dict[Any, Any], ChatData, BotData]):
    def __init__(self, path: Path, update_interval: float = UPDATE_INTERVAL_S) -> None:
        super().__init__(
            store_data=PersistenceInput(
                bot_data=False, chat_data=True, user_data=False, callback_data=True
            ),
            update_interval=update_interval,
        )
        self.path = path
        self._db = connect(path)
        self._lock = threading.Lock()

    def _rows(self, kind: str) -> list[tuple[str, bytes]]:
        with self._lock:
            try:
                return self._db.execute(
                    "SELECT key, data FROM chat_state WHERE kind=?", (kind,)
                ).fetchall()
            except sqlite3.DatabaseError as err:
                raise damaged(self.path, err) from None

    def _put(self, kind: str, key: str, value: object) -> None:
        data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        with self._lock:
            try:
                self._db.execute(
                    "INSERT OR REPLACE INTO chat_state(kind, key, data) VALUES (?, ?, ?)",
                    (kind, key, data),
                )
            except sqlite3.DatabaseError as err:  # damaged under the running bot: name it
                raise damaged(self.path, err) from None

    def _drop(self, kind: str, key: str) -> None:
        with self._lock:
            try:
                self._db.execute("DELETE FROM chat_state WHERE kind=? AND key=?", (kind, key))
            except sqlite3.DatabaseError as err:
                raise damaged(self.path, err) from None

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
        with self._lock:
            self._db.close()


class PersistentHistory(History):
    """A ``History`` whose conversations survive a restart (see the module docstring)."""

    def __init__(self, path: Path, turns: int, ttl_s: float) -> None:
        super().__init__(turns=turns, ttl_s=ttl_s)
        self.path = path
        self._db = connect(path)
        self._write = threading.Lock()
        self._failing = False  # the last write failed (logged once)
        self._restore()

    def _restore(self) -> None:
        now = time.time()
        try:
            rows = self._db.execute(
                "SELECT key, data FROM chat_state WHERE kind=?", (HISTORY,)
            ).fetchall()
        except sqlite3.DatabaseError as err:
            raise damaged(self.path, err) from None
        for conversation, data in rows:
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
        self._save(
            "INSERT OR REPLACE INTO chat_state(kind, key, data) VALUES (?, ?, ?)",
            (HISTORY, conversation, saved.encode("utf-8")),
        )

    def forget(self, conversation: str) -> None:
        super().forget(conversation)
        self._save("DELETE FROM chat_state WHERE kind=? AND key=?", (HISTORY, conversation))

    def _save(self, sql: str, args: tuple[object, ...]) -> None:
        """Write through to the store; a damaged store costs the context after a restart,
        not the answer being given: logged once, and again once it works."""
        with self._write:
            try:
                self._db.execute(sql, args)
            except sqlite3.DatabaseError as err:
                if not self._failing:
                    log.warning("follow-up context is not saved: %s", damaged(self.path, err))
                self._failing = True
                return
            if self._failing:
                log.info("follow-up context is saved again")
            self._failing = False
