"""`briefing bot` as a process: long polling or webhook against the fake Bot API, stopped
cleanly by SIGTERM, with the token kept out of its logs."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from bot.settings import Settings
from ingest.errors import ExitStatus
from tests.conftest import ROOT
from tests.fake_telegram import FakeTelegram

QINGDAO = "What was Qingdao's Jan–Jul trade total?"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def start_bot(
    fake: FakeTelegram, settings: Settings, cwd: Path, **extra: str
) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "WEBHOOK_"))}
    env.update(
        PYTHONPATH=str(ROOT),
        DATA_DIR=str(settings.data_dir),
        MODEL_DIR=str(settings.resolved_model_dir),
        DOCUMENTS_DIR=str(settings.documents_dir),
        TELEGRAM_BOT_TOKEN=fake.token,
        TELEGRAM_API_BASE_URL=fake.api_base,
        LOG_LEVEL="DEBUG",  # the most verbose logs must still hide the token
    )
    env.update(extra)
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", "bot",
        cwd=cwd, env=env, stderr=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def stop_bot(process: asyncio.subprocess.Process, token: str) -> str:
    process.send_signal(signal.SIGTERM)
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    logs = stderr.decode()
    assert process.returncode == 0, logs[-3000:]
    assert token not in logs
    return logs


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    server = await FakeTelegram().start()
    yield server
    await server.stop()


@pytest.mark.slow
async def test_polling_bot_answers_and_stops_on_sigterm(
    fake: FakeTelegram, examples_settings: Settings, tmp_path: Path
) -> None:
    process = await start_bot(fake, examples_settings, tmp_path)
    try:
        fake.send_private(7, QINGDAO)
        [reply] = await fake.wait_for_replies(7, wait_s=60)
        assert "[1]" in reply["text"]
    finally:
        logs = await stop_bot(process, fake.token)
    assert "starting long polling" in logs


@pytest.mark.slow
async def test_webhook_bot_checks_the_secret_and_answers(
    fake: FakeTelegram, examples_settings: Settings, tmp_path: Path
) -> None:
    port = _free_port()
    url = f"http://127.0.0.1:{port}/telegram/hook"
    process = await start_bot(
        fake, examples_settings, tmp_path, WEBHOOK_URL=url, WEBHOOK_LISTEN="127.0.0.1",
        WEBHOOK_PORT=str(port), WEBHOOK_SECRET="s3cret-value",
    )  # fmt: skip
    try:
        await fake.wait_until(lambda: fake.webhook is not None, wait_s=60)
        assert fake.webhook == {"url": url, "secret_token": "s3cret-value"}
        fake.send_private(8, QINGDAO)
        update = fake.pushed[-1]
        async with aiohttp.ClientSession() as http:
            for _ in range(50):  # the server may come up just after setWebhook
                try:
                    async with http.post(url, json=update) as forged:
                        assert forged.status == 403  # no secret header: refused
                    break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.2)
            headers = {"X-Telegram-Bot-Api-Secret-Token": "s3cret-value"}
            async with http.post(url, json=update, headers=headers) as accepted:
                assert accepted.status == 200
        [reply] = await fake.wait_for_replies(8, wait_s=60)
        assert "[1]" in reply["text"]
    finally:
        await stop_bot(process, fake.token)


# ---------------------------------------------------------------------------- fault suite: Bot API


async def run_until_exit(
    fake: FakeTelegram, settings: Settings, cwd: Path, **extra: str
) -> tuple[int, str]:
    process = await start_bot(fake, settings, cwd, **extra)
    stdout, stderr = await asyncio.wait_for(process.communicate(), 120)
    output = stdout.decode() + stderr.decode()
    assert process.returncode is not None
    return process.returncode, output


@pytest.mark.slow
async def test_rejected_token_is_one_line_and_a_usage_exit_and_never_printed(
    fake: FakeTelegram, examples_settings: Settings, tmp_path: Path
) -> None:
    wrong = "999999:WRONG-s3cret-token-0123456789"
    code, output = await run_until_exit(fake, examples_settings, tmp_path, TELEGRAM_BOT_TOKEN=wrong)
    assert code == ExitStatus.USAGE
    assert output.rstrip().splitlines()[-1] == (
        "Error: Telegram rejected TELEGRAM_BOT_TOKEN (401 Unauthorized): "
        "copy the token again from @BotFather"
    )
    assert "Traceback" not in output  # at LOG_LEVEL=DEBUG, the most verbose
    assert wrong not in output
    assert "WRONG-s3cret" not in output
    assert "Invalid token. Aborting retry loop. (InvalidToken)" in output  # PTB's line, no trace


@pytest.mark.slow
async def test_unreachable_bot_api_is_retried_then_one_line_and_a_fatal_exit(
    fake: FakeTelegram, examples_settings: Settings, tmp_path: Path
) -> None:
    closed = f"http://127.0.0.1:{_free_port()}/bot"
    code, output = await run_until_exit(
        fake, examples_settings, tmp_path, TELEGRAM_API_BASE_URL=closed
    )
    assert code == ExitStatus.FATAL
    assert output.count("getMe: NetworkError, retrying") == 3
    last = output.rstrip().splitlines()[-1]
    assert last == (
        f"Error: the Telegram Bot API at {closed} could not be reached (NetworkError) after retries"
    )
    assert "Traceback" not in output
    assert fake.token not in output
    assert len(output.splitlines()) < 60  # not a 242-line traceback (at LOG_LEVEL=DEBUG)
