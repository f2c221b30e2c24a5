"""/trend and trend-shaped questions end to end: python-telegram-bot over real HTTP to the
strict fake Bot API, the real service over an index of the invented trade releases."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest

from bot.service import AnswerService
from bot.settings import Settings
from bot.telegram.app import BotApp
from tests.fake_telegram import JSON, FakeTelegram
from tests.test_telegram_bot import ALICE, GROUP, ask, running
from tests.test_trend import trend_settings  # the session fixture, shared

__all__ = ["trend_settings"]


@pytest.fixture(scope="module")
def service(trend_settings: Settings) -> AnswerService:
    return AnswerService(trend_settings)


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    server = await FakeTelegram().start()
    yield server
    await server.stop()


@pytest.fixture
async def bot(
    fake: FakeTelegram,
    trend_settings: Settings,
    service: AnswerService,
) -> AsyncIterator[BotApp]:
    async with running(fake, trend_settings, service) as app:
        yield app


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def source_numbers(sources: JSON) -> list[int]:
    return [int(n) for n in re.findall(r"^\[(\d+)\] ", sources["text"], re.MULTILINE)]


async def test_trend_command_sends_chart_caption_then_numbered_sources(
    fake: FakeTelegram, bot: BotApp
) -> None:
    asked = fake.send_private(ALICE, "/trend Kelbrook foreign trade")
    photo, sources = await fake.wait_for_replies(ALICE, 2)
    assert png_size(photo["photo_bytes"]) == (1000, 600)
    assert photo["photo"][0]["width"] == 1000
    assert photo["reply_to_message"]["message_id"] == asked["message_id"]
    caption = photo["caption"]
    assert caption.startswith("Kelbrook — foreign trade")
    assert "quarterly (billion yuan): 2024-Q1 112.4 → 2024-Q3 121.7; 3 points, 1 revised" in caption
    assert "year to date" in caption
    # Sources: numbered 1..n, each with its verbatim sentence holding its figure.
    assert source_numbers(sources) == list(range(1, 8))
    text = sources["text"]
    assert "Kelbrook's foreign trade reached 112.4 billion yuan" in text
    assert "revised the second-quarter foreign trade figure to 119.6 billion yuan" in text
    assert "Lindmark" not in text.split("Sources", 1)[1].split("revised:")[0]
    assert "<blockquote><i>" in sources["html"]
    assert (ALICE, "typing") in fake.chat_actions


async def test_trend_shaped_question_gets_the_series(fake: FakeTelegram, bot: BotApp) -> None:
    photo, sources = await ask(fake, ALICE, "青屿外贸进出口走势", count=2)
    assert "photo" in photo and photo["caption"].startswith("青屿 — foreign trade")
    assert "二季度进出口总值修正为936.0亿元" in sources["text"]
    assert "澜州" not in sources["text"].split("set aside")[0]


async def test_one_figure_is_said_plainly_without_a_chart(fake: FakeTelegram, bot: BotApp) -> None:
    [reply] = await ask(fake, ALICE, "/trend Kelbrook exports")
    assert "photo" not in reply
    assert "only one figure found, so there is no series to chart" in reply["text"]
    assert "2024-Q1: 70.2 billion yuan [1]" in reply["text"]
    assert "[1] Kelbrook foreign trade grows" in reply["text"]


async def test_trend_without_topic_or_entity_explains_usage(
    fake: FakeTelegram, bot: BotApp
) -> None:
    [usage] = await ask(fake, ALICE, "/trend")
    assert usage["text"].startswith("Usage: /trend")
    [unclear] = await ask(fake, ALICE, "/trend how has trade changed")
    assert "name the city or company" in unclear["text"]
    # A trend-shaped question naming no entity is answered as any question.
    [answer] = await ask(fake, ALICE, "How has trade changed?")
    assert "photo" not in answer and answer["text"]
    # So is one whose topic has no figure in the documents.
    [policy] = await ask(fake, ALICE, "How has Kelbrook's port policy changed?")
    assert "photo" not in policy and "no series" not in policy["text"]


async def test_trend_in_a_group_by_command(fake: FakeTelegram, bot: BotApp) -> None:
    fake.send_group(GROUP, ALICE, f"/trend@{fake.bot_username} Lindmark foreign trade")
    photo, sources = await fake.wait_for_replies(GROUP, 2)
    assert "Lindmark — foreign trade" in photo["caption"]
    assert "Lindmark's foreign trade reached 66.0 billion yuan" in sources["text"]


async def test_help_names_the_trend_command(fake: FakeTelegram, bot: BotApp) -> None:
    [help_reply] = await ask(fake, ALICE, "/help")
    assert "/trend <city and figure>" in help_reply["text"]
