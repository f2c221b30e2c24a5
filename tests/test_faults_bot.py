"""The fault suite under the bot (issue 18): each store damaged three ways while the bot is
stopped and while it runs; then a drop is told once to the admins and once to its
follower, nothing old is told again, and no followed topic is lost.

Real PTB over HTTP to the fake Bot API, a real watcher, real embedded Chroma. The
recovery command is run in this process as the CLI runs it (``briefing doctor``,
``briefing ingest --rebuild``); the CLI's own lines are checked in ``test_faults``."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import shutil
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import click
import pytest
from chromadb.api.shared_system_client import SharedSystemClient

from bot.service import AnswerService
from bot.settings import Settings
from ingest.embeddings import LocalEmbeddings
from ingest.follows_backup import backup_path, read_backup, read_seen
from ingest.pipeline import run_ingest
from tests.conftest import EXAMPLES, make_settings
from tests.fake_telegram import FakeTelegram
from tests.test_dropfolder import told
from tests.test_faults import damage
from tests.test_notify import VALLEY, WATCH, say
from tests.test_telegram_bot import ADMIN, ALICE, running

OLD = ("shanghai-economy-2022-03-16.md", "qingdao-trade-2020-09-04.md")
TOPICS = ("green valley water plan budget", "Shanghai economy growth")
HOWS = ("garbled", "truncated", "deleted")
STORES = ("state", "chroma", "bm25", "backup")
# And a state.sqlite lost beside a backup copy of an earlier version, which kept no ledger:
# the documents of the index are the ledger then.
STOPPED = [(store, how) for store in STORES for how in HOWS] + [("state", "deleted-old-backup")]
RUNNING = [(store, how) for store in STORES for how in HOWS]


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    server = await FakeTelegram().start()
    yield server
    await server.stop()


@pytest.fixture(scope="module")
def embeddings(model_dir: Path) -> LocalEmbeddings:
    return LocalEmbeddings(model_dir)


# What names the damage: `briefing doctor`'s report, or the warning of whoever reads the
# file.
SAID = {
    ("state", "garbled"): "was damaged",
    ("state", "truncated"): "was damaged",
    ("state", "deleted"): "was missing",
    ("state", "deleted-old-backup"): "was missing",
    ("chroma", "garbled"): "is damaged",
    ("chroma", "truncated"): "is damaged",
    ("chroma", "deleted"): "is missing",
    ("bm25", "garbled"): "is unreadable",
    ("bm25", "truncated"): "is unreadable",
    ("bm25", "deleted"): "is missing",
    ("backup", "garbled"): "is unreadable",
    ("backup", "truncated"): "is unreadable",
    ("backup", "deleted"): "was missing",
}


# What the admins are told while the bot runs on a damaged store, in one message naming
# the file ("": nothing, the bot goes on working).
DURING = {
    ("state", "garbled"): "Notices and digests stopped",
    ("state", "truncated"): "Notices and digests stopped",
    ("state", "deleted"): "was deleted or replaced while the bot ran",
    ("chroma", "garbled"): "The folder watcher stopped",
    ("chroma", "truncated"): "The folder watcher stopped",
    ("chroma", "deleted"): "The folder watcher stopped",
    ("bm25", "garbled"): "",
    ("bm25", "truncated"): "",
    ("bm25", "deleted"): "",
    ("backup", "garbled"): "",
    ("backup", "truncated"): "",
    ("backup", "deleted"): "",
}


def store_path(settings: Settings, store: str) -> Path:
    """The path a line about ``store`` names."""
    return {
        "state": settings.manifest_path,
        "chroma": settings.chroma_dir,
        "bm25": settings.data_dir / "lexical",
        "backup": backup_path(settings.data_dir),
    }[store]


def store_files(settings: Settings, store: str) -> list[Path]:
    """The files of ``store`` as they are on disk now."""
    if store == "state":
        return [settings.manifest_path]
    if store == "chroma":
        return [settings.chroma_dir / "chroma.sqlite3"]
    if store == "bm25":
        return sorted(p for p in (settings.data_dir / "lexical").iterdir() if p.is_file())
    return [backup_path(settings.data_dir)]


def damage_store(settings: Settings, store: str, how: str, *, running: bool = False) -> None:
    """Damage every file of ``store`` as a disk or a person would."""
    if not running:
        SharedSystemClient.clear_system_cache()  # this process's Chroma lets go of its files
    if how == "deleted-old-backup":
        backup = backup_path(settings.data_dir)
        backup.write_text(json.dumps({"follows": json.loads(backup.read_text())["follows"]}))
        how = "deleted"
    files = store_files(settings, store)
    assert files
    for path in files:
        if path.suffix in (".sqlite", ".sqlite3"):
            checkpoint(path)  # everything in the main file
            damage(path, how)
        elif how == "deleted":
            path.unlink()
        elif how == "truncated":
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        else:
            data = bytearray(path.read_bytes())
            rng = random.Random(18)
            for at in range(0, len(data), 64):
                data[at : at + 8] = rng.randbytes(len(data[at : at + 8]))
            path.write_bytes(bytes(data))


def checkpoint(path: Path, wait_s: float = 10.0) -> None:
    """Fold the write-ahead log into the main file. A running bot may be reading or writing
    at that moment (SQLite then reports the checkpoint busy, or a write lands just after):
    try again until the log is empty, as ``damage`` expects."""
    wal = path.with_name(path.name + "-wal")
    deadline = time.monotonic() + wait_s
    while True:
        db = sqlite3.connect(path, timeout=wait_s)
        try:
            busy, _, _ = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            db.close()
        if not busy and (not wal.exists() or wal.stat().st_size == 0):
            return
        assert time.monotonic() < deadline, f"{path}: its log never emptied"
        time.sleep(0.05)


def backup_rows(settings: Settings) -> tuple[str, ...]:
    return tuple(r["topic"] for r in read_backup(settings.data_dir) if r["chat_id"] == ALICE)


def recover(settings: Settings) -> None:
    """The recovery command the error line names (none needed for derived or lost files)."""
    from bot.cli import cli, doctor
    from ingest.repair import chroma_problem, store_problem

    if store_problem(settings.manifest_path) or chroma_problem(settings):
        with click.Context(cli, obj=settings) as ctx:
            ctx.invoke(doctor)


async def indexed(
    tmp_path: Path, model_dir: Path, embeddings: LocalEmbeddings
) -> tuple[Settings, AnswerService]:
    """A documents folder with one release, ingested before the bot ever ran."""
    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copy(EXAMPLES / OLD[0], docs)
    settings = make_settings(tmp_path / "data", model_dir, documents_dir=docs)
    await asyncio.to_thread(run_ingest, settings, embeddings=embeddings)
    return settings, await asyncio.to_thread(AnswerService, settings, embeddings=embeddings)


async def first_session(fake: FakeTelegram, settings: Settings) -> None:
    """Alice follows two topics; a first drop is told: the stores hold state worth keeping."""
    await say(fake, ADMIN, "/following")  # the admin's chat exists from here on
    for topic in TOPICS:
        assert "Following" in (await say(fake, ALICE, f"/follow {topic}"))["text"]
    seen = len(fake.sent(ADMIN))
    shutil.copy(EXAMPLES / OLD[1], settings.documents_dir)
    await told(fake, ADMIN, seen, "Documents folder")
    # The round is over once the followers' ledger (kept in the backup copy too) has it.
    await fake.wait_until(lambda: len(read_seen(settings.data_dir) or []) == len(OLD), 30)


async def check_a_drop_is_told_once(
    fake: FakeTelegram, settings: Settings, seen: tuple[int, int] | None = None
) -> None:
    """VALLEY, dropped now (or before, when ``seen`` is given), is told once to the admin
    and once to Alice, and nothing old is; Alice's topics are all there."""
    admin_seen, alice_seen = seen or (len(fake.sent(ADMIN)), len(fake.sent(ALICE)))
    if seen is None:
        shutil.copy(VALLEY, settings.documents_dir)
    notice = await told(fake, ADMIN, admin_seen, "Documents folder", 30)
    assert VALLEY.name in notice["text"]  # (a stop message may name it too: "while writing")
    digest = await told(fake, ALICE, alice_seen, "Valley water plan adopted", 30)
    await asyncio.sleep(1.0)  # a second notice or a stale digest would be queued by now
    assert "Shanghai" not in digest["text"] and "Qingdao" not in digest["text"]  # nothing old
    admin = [m["text"] for m in fake.sent(ADMIN)[admin_seen:]]
    assert sum(VALLEY.name in t and " added" in t.split("\n")[0] for t in admin) == 1, admin
    assert not any(name in t for t in admin for name in OLD), admin  # nothing old as news
    alice = [m["text"] for m in fake.sent(ALICE)[alice_seen:]]
    assert alice == [digest["text"]], alice  # one digest, about the new document only
    listing = await say(fake, ALICE, "/following")
    assert all(topic in listing["text"] for topic in TOPICS)  # no followed topic lost


@pytest.mark.parametrize(("store", "how"), STOPPED)
async def test_a_store_damaged_while_the_bot_is_stopped(
    tmp_path: Path,
    model_dir: Path,
    embeddings: LocalEmbeddings,
    fake: FakeTelegram,
    store: str,
    how: str,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings, service = await indexed(tmp_path, model_dir, embeddings)
    async with running(fake, settings, service, watch=WATCH):
        await first_session(fake, settings)

    await asyncio.to_thread(damage_store, settings, store, how)
    capsys.readouterr()
    caplog.clear()
    caplog.set_level(logging.INFO)
    await asyncio.to_thread(recover, settings)
    service = await asyncio.to_thread(AnswerService, settings, embeddings=embeddings)
    async with running(fake, settings, service, watch=WATCH):
        await check_a_drop_is_told_once(fake, settings)
    said = capsys.readouterr().out.splitlines() + [
        r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING
    ]
    if SAID[store, how]:  # one clear line naming the file (the repair's, or the warning's)
        named = [line for line in said if SAID[store, how] in line]
        assert named, said
        assert str(store_path(settings, store)) in named[0], said
    assert backup_rows(settings) == TOPICS  # the backup copy is whole again


@pytest.mark.parametrize(("store", "how"), RUNNING)
async def test_a_store_damaged_while_the_bot_runs(
    tmp_path: Path,
    model_dir: Path,
    embeddings: LocalEmbeddings,
    fake: FakeTelegram,
    store: str,
    how: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A drop made while the store is damaged is told once, now or after the recovery."""
    settings, service = await indexed(tmp_path, model_dir, embeddings)
    caplog.set_level(logging.INFO)
    async with running(fake, settings, service, watch=WATCH):
        await first_session(fake, settings)
        seen = len(fake.sent(ADMIN)), len(fake.sent(ALICE))
        await asyncio.to_thread(damage_store, settings, store, how, running=True)
        shutil.copy(VALLEY, settings.documents_dir)
        if DURING[store, how]:
            await told(fake, ADMIN, seen[0], DURING[store, how], 30)
        await asyncio.sleep(1.0)  # the watcher and the teller meet the damage (again)
        during = [m["text"] for m in fake.sent(ADMIN)[seen[0] :]]
    if DURING[store, how]:  # told while it runs: one message naming the file
        named = [t for t in during if DURING[store, how] in t]
        assert len(named) == 1, during
        assert str(store_path(settings, store)) in named[0], during
    stopped = [t for t in during if "watcher stopped" in t]  # if it did, it says why
    assert all(str(store_path(settings, store)) in t for t in stopped), during
    SharedSystemClient.clear_system_cache()  # the process ends: Chroma's files let go
    await asyncio.to_thread(recover, settings)
    service = await asyncio.to_thread(AnswerService, settings, embeddings=embeddings)
    async with running(fake, settings, service, watch=WATCH):
        await check_a_drop_is_told_once(fake, settings, seen)
    assert backup_rows(settings) == TOPICS
