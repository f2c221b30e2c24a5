"""Every ingest run is told, whoever ran it; the bot's watcher outlives a lost Chroma server.

Real PTB over HTTP to the fake Bot API, real `briefing ingest` processes, a real `chroma run`
killed and started again on the same data and port."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.service import AnswerService
from bot.settings import Settings
from bot.telegram import folder_watcher
from ingest.pipeline import run_ingest
from tests.conftest import ROOT, _free_port, make_settings
from tests.fake_telegram import JSON, FakeTelegram
from tests.test_notify import QINGDAO, VALLEY, WATCH, drop_settings, say
from tests.test_telegram_bot import ADMIN, ALICE, running


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    server = await FakeTelegram().start()
    yield server
    await server.stop()


async def told(fake: FakeTelegram, chat: int, seen: int, needle: str, wait_s: float = 60) -> JSON:
    """The first message to ``chat`` after the first ``seen`` that contains ``needle``."""

    def found() -> JSON | None:
        return next((m for m in fake.sent(chat)[seen:] if needle in m["text"]), None)

    await fake.wait_until(lambda: found() is not None, wait_s)
    message = found()
    assert message is not None
    return message


def cli_ingest(settings: Settings) -> None:
    """`briefing ingest` in a process of its own, as a colleague would run it."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DATA_DIR": str(settings.data_dir),
        "DOCUMENTS_DIR": str(settings.documents_dir),
        "MODEL_DIR": str(settings.model_dir),
        "CHROMA_HOST": settings.chroma_host or "",
        "CHROMA_PORT": str(settings.chroma_port),
    }
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", "ingest"],
        env=env,
        cwd=settings.data_dir.parent,
        capture_output=True,
        text=True,
    )
    assert done.returncode in (0, 1), done.stderr  # 1: a file failed (reported, not fatal)


async def test_manual_and_chat_ingests_are_told_once_even_across_restarts(
    tmp_path: Path, model_dir: Path, fake: FakeTelegram, request: pytest.FixtureRequest
) -> None:
    if not QINGDAO.exists():
        pytest.skip("../shared is not present")
    # A Chroma server: an embedded Chroma does not show a long-running process what another
    # process wrote (its HNSW index stays as loaded), so ingests from elsewhere need one.
    server = ChromaServer(tmp_path)
    server.start()
    request.addfinalizer(server.kill)
    settings = drop_settings(tmp_path, model_dir).model_copy(
        update={"chroma_host": "127.0.0.1", "chroma_port": server.port}
    )
    await asyncio.to_thread(run_ingest, settings)  # history: never told
    service = await asyncio.to_thread(AnswerService, settings)
    docs = settings.documents_dir
    async with running(fake, settings, service):  # no watcher: ingests come from elsewhere
        await say(fake, ADMIN, "/following")  # the admin's chat exists from here on
        await say(fake, ALICE, "/follow qingdao trade")
        await asyncio.sleep(1.5)  # the first start ever: the run before it is history
        assert not any("Documents folder" in m["text"] for m in fake.sent(ADMIN))
        admin_seen, alice_seen = len(fake.sent(ADMIN)), len(fake.sent(ALICE))

        shutil.copy(QINGDAO, docs)
        await asyncio.to_thread(cli_ingest, settings)  # a colleague's manual ingest
        notice = await told(fake, ADMIN, admin_seen, "Documents folder")
        assert "1 added" in notice["text"] and QINGDAO.name in notice["text"]
        assert "another process" in notice["text"]
        news = await told(fake, ALICE, alice_seen, "New on “qingdao trade”")
        assert "[1]" in news["text"] and "einpresswire.com" in news["text"]

        # An admin's /ingest: the reply, and the notice like any other run's.
        (docs / "broken.pdf").write_bytes(b"%PDF-1.4\nnot really a PDF")
        admin_seen = len(fake.sent(ADMIN))
        fake.send_private(ADMIN, "/ingest")
        await told(fake, ADMIN, admin_seen, "Ingest finished")
        notice = await told(fake, ADMIN, admin_seen, "Documents folder")
        assert "1 failed" in notice["text"] and "broken.pdf:" in notice["text"]
        assert "another process" not in notice["text"]
        await asyncio.sleep(2.5)  # (a second notice for either run would be queued by now)
        notices = [m for m in fake.sent(ADMIN)[admin_seen:] if "Documents folder" in m["text"]]
        assert len(notices) == 1

    # While the bot is down, a manual ingest adds the valley plan...
    shutil.copy(VALLEY, docs)
    await asyncio.to_thread(cli_ingest, settings)
    admin_seen, alice_seen = len(fake.sent(ADMIN)), len(fake.sent(ALICE))
    async with running(fake, settings, service):  # ...which is told at start, and only it
        notice = await told(fake, ADMIN, admin_seen, "Documents folder")
        assert "valley-water-plan.md" in notice["text"] and QINGDAO.name not in notice["text"]
        await asyncio.sleep(2.5)
        texts = [m["text"] for m in fake.sent(ADMIN)[admin_seen:]]
        assert sum("Documents folder" in t for t in texts) == 1, texts
        assert len(fake.sent(ALICE)) == alice_seen  # the valley plan is not her topic

    admin_seen = len(fake.sent(ADMIN))
    async with running(fake, settings, service):  # restarted again: nothing is resent
        await asyncio.sleep(2.5)
        assert not any("Documents folder" in m["text"] for m in fake.sent(ADMIN)[admin_seen:])


class ChromaServer:
    """`chroma run` on a fixed port and data folder, to be killed and started again."""

    def __init__(self, path: Path) -> None:
        self.path, self.port = path, _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        exe = Path(sys.executable).with_name("chroma")
        with (self.path / "server.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    exe,
                    "run",
                    "--path",
                    self.path / "db",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    f"{self.port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while True:
            try:
                url = f"http://127.0.0.1:{self.port}/api/v2/heartbeat"
                with urllib.request.urlopen(url, timeout=1):
                    return
            except OSError:
                assert self.proc.poll() is None and time.monotonic() < deadline, "no chroma"
                time.sleep(0.2)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


async def test_watcher_survives_a_lost_chroma_server_and_says_so_once(
    tmp_path: Path, model_dir: Path, fake: FakeTelegram, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(folder_watcher, "RETRY_FIRST_S", 0.3)  # retry often: a short test
    monkeypatch.setattr(folder_watcher, "RETRY_MAX_S", 1.0)
    server = ChromaServer(tmp_path)
    server.start()
    try:
        docs = tmp_path / "docs"
        docs.mkdir()
        settings = make_settings(
            tmp_path / "data",
            model_dir,
            documents_dir=docs,
            chroma_host="127.0.0.1",
            chroma_port=server.port,
        )
        (docs / "port.txt").write_text("Port note\n\nBerth 4 handled 1,200 containers in May.\n")
        await asyncio.to_thread(run_ingest, settings)
        service = await asyncio.to_thread(AnswerService, settings)
        async with running(fake, settings, service, watch=WATCH):
            await say(fake, ADMIN, "/following")
            await asyncio.sleep(1.0)  # the watcher's reconciling run (nothing to do)
            admin_seen = len(fake.sent(ADMIN))

            server.kill()
            shutil.copy(VALLEY, docs)  # dropped while Chroma is gone
            stopped = await told(fake, ADMIN, admin_seen, "The folder watcher stopped")
            assert "Chroma" in stopped["text"]
            await asyncio.sleep(4.0)  # several retries fail meanwhile: told once, not per retry
            texts = [m["text"] for m in fake.sent(ADMIN)[admin_seen:]]
            assert sum("watcher stopped" in t for t in texts) == 1, texts
            assert not any("The folder watcher runs again" in t for t in texts)

            await asyncio.to_thread(server.start)  # the cause is fixed: same data, same port
            await told(fake, ADMIN, admin_seen, "The folder watcher runs again", 30)
            notice = await told(fake, ADMIN, admin_seen, "Documents folder", 30)
            assert "1 added" in notice["text"] and "valley-water-plan.md" in notice["text"]

            (docs / "port.txt").unlink()  # and it keeps watching
            notice = await told(fake, ADMIN, admin_seen, "1 removed", 30)
            assert "port.txt" in notice["text"]
    finally:
        server.kill()
