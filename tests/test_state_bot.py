"""The store of record under the running bot (issue 18): a store damaged while the notifier
runs stops it with one message (before: the same notice 91 times in 90 s), and a chat
is told plainly why its command cannot be done."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from telegram import Bot

from bot.service import AnswerService
from bot.telegram import folder_watcher
from bot.telegram.app import STATE_DAMAGED, polite_reply
from bot.telegram.dropfolder import DropFolder
from bot.telegram.notify import Outbox
from ingest.pipeline import run_ingest
from ingest.state import StoreDamaged, connect
from tests.conftest import EXAMPLES
from tests.fake_telegram import FakeTelegram
from tests.test_dropfolder import told
from tests.test_faults import damage
from tests.test_notify import WATCH, drop_settings, say
from tests.test_telegram_bot import ADMIN, bot_settings, running


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    server = await FakeTelegram().start()
    yield server
    await server.stop()


async def test_a_store_damaged_under_the_notifier_stops_it_with_one_message(
    tmp_path: Path, model_dir: Path, fake: FakeTelegram
) -> None:
    settings = bot_settings(drop_settings(tmp_path, model_dir), fake)
    await asyncio.to_thread(run_ingest, settings)  # history
    drop = DropFolder(settings, poll_s=0.05)
    fake.send_private(ADMIN, "/start")  # the admin's chat exists (nobody polls for it)
    async with Bot(fake.token, base_url=fake.api_base) as bot:
        drop.outbox = Outbox(bot, chat_interval_s=0.0)
        drop.outbox.start()
        assert await asyncio.to_thread(drop._take_notifier_lock)
        drop.subscriptions.add(ADMIN, "Qingdao trade")

        # A run to tell, then the store damaged before the notifier looks at it.
        shutil.copy(EXAMPLES / "qingdao-trade-2020-09-04.md", settings.documents_dir)
        await asyncio.to_thread(run_ingest, settings)
        with sqlite3.connect(settings.manifest_path) as db:  # all of it in the main file
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        damage(settings.manifest_path, "garbled")

        # The teller's rounds (PTB's JobQueue schedules each after the last one's delay).
        assert await drop.tell_round() is None  # stopped for good: no next round
        await drop.outbox.drained()
        sent = [m["text"] for m in fake.sent(ADMIN)]
        assert len(sent) == 1, sent
        assert "Notices and digests stopped" in sent[0]
        assert str(settings.manifest_path) in sent[0] and "briefing doctor" in sent[0]
        assert drop.notifier_error is not None  # /status can say so

        with pytest.raises(StoreDamaged) as caught:  # /following: named, not "went wrong"
            drop.subscriptions.of_chat(ADMIN)
        assert polite_reply(caught.value) == STATE_DAMAGED
        await drop.stop()


async def test_a_store_cut_short_is_named_even_with_nothing_new_to_tell(
    tmp_path: Path, model_dir: Path, fake: FakeTelegram
) -> None:
    """A truncated store whose surviving half still answers the teller's query (no new
    runs): the teller notices from the file itself, not only when a later run fails."""
    settings = bot_settings(drop_settings(tmp_path, model_dir), fake)
    for name in ("qingdao-trade-2020-09-04.md", "shanghai-economy-2022-03-16.md"):
        shutil.copy(EXAMPLES / name, settings.documents_dir)
    await asyncio.to_thread(run_ingest, settings)
    drop = DropFolder(settings, poll_s=0.05)
    fake.send_private(ADMIN, "/start")
    async with Bot(fake.token, base_url=fake.api_base) as bot:
        drop.outbox = Outbox(bot, chat_interval_s=0.0)
        drop.outbox.start()
        assert await asyncio.to_thread(drop._take_notifier_lock)
        assert await drop.tell_round() == drop.poll_s  # the run is told
        await drop.outbox.drained()
        seen = len(fake.sent(ADMIN))
        assert await drop.tell_round() == drop.poll_s  # nothing new: a quiet round
        with sqlite3.connect(settings.manifest_path) as db:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.close()
        damage(settings.manifest_path, "truncated")

        assert await drop.tell_round() is None  # stopped, with one message naming it
        await drop.outbox.drained()
        sent = [m["text"] for m in fake.sent(ADMIN)[seen:]]
        assert len(sent) == 1 and "Notices and digests stopped" in sent[0], sent
        assert str(settings.manifest_path) in sent[0] and "briefing doctor" in sent[0]
        await drop.stop()


async def test_the_bot_says_when_its_folder_is_gone_and_when_it_is_heard_again(
    tmp_path: Path, model_dir: Path, fake: FakeTelegram, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: a replaced or deleted folder left the watcher deaf, silently, and /status
    looked normal."""
    import ingest.watch

    monkeypatch.setattr(ingest.watch, "FOLDER_GONE_S", 0.5)
    monkeypatch.setattr(folder_watcher, "RETRY_FIRST_S", 0.5)
    settings = drop_settings(tmp_path, model_dir)
    await asyncio.to_thread(run_ingest, settings)
    service = await asyncio.to_thread(AnswerService, settings)
    docs = settings.documents_dir
    async with running(fake, settings, service, watch=WATCH):
        await say(fake, ADMIN, "/following")  # the admin's chat exists from here on
        seen = len(fake.sent(ADMIN))
        await asyncio.sleep(1.0)  # the watcher's first run is done
        shutil.rmtree(docs)
        stopped = await told(fake, ADMIN, seen, "The folder watcher stopped")
        assert str(docs) in stopped["text"]
        status = await say(fake, ADMIN, "/status")
        assert "Not working right now" in status["text"] and "folder watcher" in status["text"]

        seen = len(fake.sent(ADMIN))
        docs.mkdir()
        shutil.copy(EXAMPLES / "qingdao-trade-2020-09-04.md", docs)
        await told(fake, ADMIN, seen, "runs again")
        notice = await told(fake, ADMIN, seen, "Documents folder")
        assert "qingdao-trade-2020-09-04.md" in notice["text"]
        status = await say(fake, ADMIN, "/status")
        assert "Not working right now" not in status["text"]


def test_follow_up_context_survives_a_restart(tmp_path: Path) -> None:
    """Issue 18 case 11: the questions a conversation asked are there after a restart
    (within the history's time limit), forgotten ones are not."""
    from bot.telegram.persistence import PersistentHistory

    state = tmp_path / "state.sqlite"
    before = PersistentHistory(state, turns=2, ttl_s=1800)
    before.add("42", "What was Qingdao's trade total in Jan-Jul?")
    before.add("42", "And exports?")
    before.add("42", "And imports?")  # two turns kept
    before.add("7", "What did Chongqing's GDP reach?")
    before.forget("7")  # /new
    after = PersistentHistory(state, turns=2, ttl_s=1800)
    assert after.get("42") == ["And exports?", "And imports?"]
    assert after.get("7") == []
    expired = PersistentHistory(state, turns=2, ttl_s=0)
    assert expired.get("42") == []


@pytest.mark.parametrize("how", ["garbled", "truncated", "deleted"])
async def test_chat_state_on_a_store_damaged_under_the_bot_is_named_once_and_kept(
    tmp_path: Path, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Chat state written to a store damaged while the bot runs: one warning naming the
    file per writer (before: PTB's error handler at every flush, every 10 s), the answer
    still given, and the writes kept until a repair replaces the file; then one line,
    and the new file holds them."""
    from bot.telegram.context import ChatData
    from bot.telegram.persistence import CHAT, HISTORY, PersistentHistory, StatePersistence

    state = tmp_path / "state.sqlite"
    history = PersistentHistory(state, turns=2, ttl_s=1800)
    persistence = StatePersistence(state)
    for chat in range(50):  # a few pages of state
        history.add(str(chat), "What was Qingdao's trade total in Jan-Jul? " * 20)
    with sqlite3.connect(state) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    damage(state, how)

    for flush in range(5):  # PTB's flushes, each writing what changed
        await persistence.update_chat_data(7, ChatData())
        await persistence.update_callback_data(([], {f"button {flush}": "answer"}))
    history.add("new", "And exports?")  # does not raise: the answer goes out
    history.add("newer", "And imports?")
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 2, warnings  # one for chat state, one for follow-up context
    assert all(str(state) in w and "briefing doctor" in w for w in warnings), warnings
    assert history.get("new") == ["And exports?"]  # in memory for this run
    assert persistence.writer.unsaved() == 2 and history.writer.unsaved() == 2

    # `briefing doctor` replaces the file under the running bot (a new inode).
    repaired = tmp_path / "repaired" / "state.sqlite"
    repaired.parent.mkdir()
    connect(repaired).close()
    state.with_name(state.name + "-wal").unlink(missing_ok=True)
    state.with_name(state.name + "-shm").unlink(missing_ok=True)
    os.replace(repaired, state)
    caplog.clear()
    caplog.set_level(logging.INFO)
    await persistence.update_chat_data(8, ChatData())
    history.add("newest", "And the trade surplus?")
    again = [r.getMessage() for r in caplog.records if "saved again" in r.getMessage()]
    assert len(again) == 2, again
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    with sqlite3.connect(state) as db:
        rows = set(db.execute("SELECT kind, key FROM chat_state").fetchall())
    db.close()
    assert {(CHAT, "7"), (CHAT, "8"), ("callback", "cache")} <= rows
    assert {(HISTORY, "new"), (HISTORY, "newer"), (HISTORY, "newest")} <= rows
    assert persistence.writer.unsaved() == 0 and history.writer.unsaved() == 0


async def test_chat_state_never_saved_is_named_at_shutdown(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from bot.telegram.context import ChatData
    from bot.telegram.persistence import StatePersistence

    state = tmp_path / "state.sqlite"
    persistence = StatePersistence(state)
    state.unlink()  # deleted under the bot, never repaired
    await persistence.update_chat_data(1, ChatData())
    await persistence.update_chat_data(2, ChatData())
    assert not state.exists()  # not recreated beside the teller's own notice
    await persistence.flush()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 2, warnings
    assert "was not saved to" in warnings[1] and "(2 changes)" in warnings[1]
    assert str(state) in warnings[1]


def test_a_write_that_fails_half_way_leaves_no_transaction_open(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A write refused inside its transaction (here by a trigger; a full disk does the
    same) is rolled back, so the next write works rather than failing forever."""
    from bot.telegram.persistence import StateWriter

    state = tmp_path / "state.sqlite"
    writer = StateWriter(state, "chat state")
    with sqlite3.connect(state) as db:
        db.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON chat_state WHEN NEW.key = 'bad' "
            "BEGIN SELECT RAISE(ABORT, 'disk full'); END"
        )
    db.close()
    writer.write("chat", "bad", b"x")
    assert writer.failing and writer.unsaved() == 1
    with sqlite3.connect(state) as db:
        db.execute("DROP TRIGGER refuse")
    db.close()
    caplog.set_level(logging.INFO)
    writer.write("chat", "good", b"y")
    assert not writer.failing and writer.unsaved() == 0
    assert writer.rows("chat") == [("bad", b"x"), ("good", b"y")]
    assert any("saved again" in r.getMessage() for r in caplog.records)
