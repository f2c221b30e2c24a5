"""The bot end to end: python-telegram-bot over real HTTP to the strict fake Bot API,
answering with the real AnswerService over a real index of the example briefings."""

from __future__ import annotations

import io
import logging
import shutil
import sqlite3
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from bot.service import AnswerService
from bot.settings import Settings
from bot.telegram.app import REBUILDING, SORRY, BotApp, build_application, protect_logs
from bot.types import Answer
from ingest import redact
from ingest.errors import IndexRebuilding
from ingest.lock import ingest_lock
from tests.conftest import EXAMPLES, make_settings
from tests.fake_telegram import JSON, FakeTelegram
from tests.fake_telegram_html import parse_html, utf16_len

QINGDAO = "What was Qingdao's Jan–Jul trade total?"
ADMIN, ALICE, BOB = 1, 2, 3
GROUP = -1001
FAIL = "please fail now"
LONG = "please answer at length"
SLOW = "please answer slowly"
SLOW_RELEASE = threading.Event()  # the slow answer is made once the test sets this
REBUILDING_NOW = "please be mid-rebuild"


class ScriptedService(AnswerService):
    """The real service; three trigger questions fail, answer at length, or take a while."""

    def answer(
        self, question: str, *, conversation: str | None = None, today: date | None = None
    ) -> Answer:
        if question == FAIL:
            raise RuntimeError("the index is on fire")
        if question == REBUILDING_NOW:
            raise IndexRebuilding("the index is being rebuilt (briefing ingest --rebuild)")
        if question == SLOW:
            SLOW_RELEASE.wait(60)
        real = super().answer(QINGDAO if question in (LONG, SLOW) else question, today=today)
        if question == LONG:  # a >10,000-character answer built from a real cited answer
            paragraphs: list[str] = []
            while sum(len(p) for p in paragraphs) < 10_500:
                paragraphs.append(f"Part {len(paragraphs)}: " + " ".join([real.text] * 6))
            body = "\n\n".join(paragraphs)
            return Answer(text=body, citations=real.citations, answerer=real.answerer)
        return real


@pytest.fixture(scope="module")
def service(examples_settings: Settings) -> ScriptedService:
    return ScriptedService(examples_settings)


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    server = await FakeTelegram().start()
    yield server
    await server.stop()


def bot_settings(base: Settings, fake: FakeTelegram, **overrides: Any) -> Settings:
    """``base`` pointed at ``fake``; ``telegram_x=…`` overrides ``settings.telegram.x``."""
    telegram: dict[str, Any] = {
        "bot_token": SecretStr(fake.token),
        "api_base_url": fake.api_base,
        "admin_ids": frozenset({ADMIN}),
    }
    values: dict[str, Any] = {"rate_limit_per_minute": 1000}
    for key, value in overrides.items():
        if key.startswith("telegram_"):
            telegram[key.removeprefix("telegram_")] = value
        else:
            values[key] = value
    values["telegram"] = base.telegram.model_copy(update=telegram)
    return base.model_copy(update=values)


@asynccontextmanager
async def running(
    fake: FakeTelegram, settings: Settings, service: AnswerService, **overrides: Any
) -> AsyncIterator[BotApp]:
    """Start the bot as ``run_polling`` does: initialize, post_init, poll, start."""
    app = build_application(bot_settings(settings, fake, **overrides), service)
    async with app:
        assert app.post_init is not None
        await app.post_init(app)
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0, timeout=1)
        await app.start()
        try:
            yield app
        finally:
            await app.updater.stop()
            await app.stop()
            assert app.post_shutdown is not None
            await app.post_shutdown(app)


@pytest.fixture
async def bot(
    fake: FakeTelegram, examples_settings: Settings, service: ScriptedService
) -> AsyncIterator[BotApp]:
    async with running(fake, examples_settings, service) as app:
        yield app


def is_cited_answer(reply: JSON) -> bool:
    """A real answer: not refused, with [1] and a sources block (mechanics tests use this;
    the headline test checks the figure itself)."""
    return "[1]" in reply["text"] and "\nSources\n" in reply["text"]


async def ask(fake: FakeTelegram, chat: int, text: str, count: int = 1, **kw: Any) -> list[JSON]:
    """Send ``text`` in ``chat`` (private when positive) and wait for ``count`` more replies."""
    before = len(fake.sent(chat))
    if chat > 0:
        fake.send_private(chat, text, **kw)
    else:
        fake.send_group(chat, kw.pop("user", ALICE), text, **kw)
    return (await fake.wait_for_replies(chat, before + count))[before:]


async def test_question_answered_with_quote_and_citation(fake: FakeTelegram, bot: BotApp) -> None:
    question = fake.send_private(ALICE, QINGDAO)
    [reply] = await fake.wait_for_replies(ALICE)
    assert "341.81" in reply["text"]
    assert "[1]" in reply["text"]
    assert "<blockquote><i>" in reply["html"]
    assert reply["reply_to_message"]["message_id"] == question["message_id"]
    assert reply["reply_markup"]["inline_keyboard"][0][0]["text"] == "Show quoted passages"
    assert (ALICE, "typing") in fake.chat_actions
    default_menu = {c["command"] for c in fake.commands['{"type": "default"}']}
    assert default_menu == {
        "ask", "sources", "new", "trend", "follow", "following", "unfollow", "help"
    }  # fmt: skip


async def test_sources_button_and_command_show_that_answers_passages(
    fake: FakeTelegram, bot: BotApp
) -> None:
    [first] = await ask(fake, ALICE, QINGDAO)
    query_id = fake.click(ALICE, ALICE, first["message_id"])
    await fake.wait_for_replies(ALICE, 2)
    passages = fake.sent(ALICE)[-1]
    assert fake.callback_answers[query_id].get("text") is None
    assert passages["reply_to_message"]["message_id"] == first["message_id"]
    quote = first["html"].split("<blockquote><i>")[1].split("</i>")[0]
    assert f"<b>{quote}</b>" in passages["html"]  # the quote, bold, inside its passage
    [sources] = await ask(fake, ALICE, "/sources")
    assert sources["text"] == passages["text"]


async def test_sources_button_survives_a_restart_and_a_lost_one_answers_politely(
    fake: FakeTelegram, examples_settings: Settings, service: ScriptedService, tmp_path: Path
) -> None:
    """Issue 18: chat state is kept in the store of record (PTB persistence), so an
    answer's button and /sources work after a restart; a button whose state is gone
    answers politely."""
    settings = examples_settings.model_copy(update={"data_dir": tmp_path / "data"})
    async with running(fake, settings, service):
        [answer] = await ask(fake, ALICE, QINGDAO)
    async with running(fake, settings, service):  # restarted
        query_id = fake.click(ALICE, ALICE, answer["message_id"])
        await fake.wait_for_replies(ALICE, 2)
        assert fake.callback_answers[query_id].get("text") is None
        passages = fake.sent(ALICE)[-1]
        assert passages["reply_to_message"]["message_id"] == answer["message_id"]
        [sources] = await ask(fake, ALICE, "/sources")
        assert sources["text"] == passages["text"]
    with sqlite3.connect(settings.data_dir / "state.sqlite") as db:  # the state lost
        db.execute("DELETE FROM chat_state")
    async with running(fake, settings, service):
        query_id = fake.click(ALICE, ALICE, answer["message_id"])
        await fake.wait_until(lambda: query_id in fake.callback_answers)
        assert "no longer available" in fake.callback_answers[query_id]["text"]
        [help_reply] = await ask(fake, ALICE, "/help")  # and the bot still serves
        assert "documents" in help_reply["text"]


async def test_groups_answer_only_mentions_replies_and_ask(fake: FakeTelegram, bot: BotApp) -> None:
    fake.send_group(GROUP, ALICE, QINGDAO)  # not addressed to the bot: ignored
    fake.send_group(GROUP, ALICE, "@someone_else " + QINGDAO)
    asked = fake.send_group(GROUP, ALICE, f"/ask@{fake.bot_username} {QINGDAO}")
    [reply] = await fake.wait_for_replies(GROUP)
    assert reply["reply_to_message"]["message_id"] == asked["message_id"]
    assert is_cited_answer(reply)
    [mentioned] = await ask(fake, GROUP, f"@{fake.bot_username} {QINGDAO}")
    assert is_cited_answer(mentioned)
    [follow_up] = await ask(fake, GROUP, "And in July?", reply_to=mentioned["message_id"], user=BOB)
    assert follow_up["reply_to_message"]["from"]["id"] == BOB
    assert len(fake.sent(GROUP)) == 3


async def test_admin_commands_refused_to_others_and_served_to_admins(
    fake: FakeTelegram, bot: BotApp
) -> None:
    for command in ("/status", "/docs", "/ingest"):
        [refusal] = await ask(fake, ALICE, command)
        assert "for the bot's admins" in refusal["text"]
    [status] = await ask(fake, ADMIN, "/status")
    assert "Documents: " in status["text"]
    assert "Embedding model: " in status["text"]
    [docs] = await ask(fake, ADMIN, "/docs")
    assert "Qingdao" in docs["text"] or "Dual Circulation" in docs["text"]


async def test_allowlists_refuse_in_private_and_stay_silent_in_groups(
    fake: FakeTelegram, examples_settings: Settings, service: ScriptedService
) -> None:
    allowed = frozenset({BOB})
    async with running(fake, examples_settings, service, telegram_allowed_user_ids=allowed):
        [refusal] = await ask(fake, ALICE, QINGDAO)
        assert "only answers its registered users" in refusal["text"]
        fake.send_group(GROUP, ALICE, f"/ask {QINGDAO}")
        [answer] = await ask(fake, GROUP, f"/ask {QINGDAO}", user=BOB)
        assert is_cited_answer(answer)
        query_id = fake.click(GROUP, ALICE, answer["message_id"])  # not allowed: silence
        await fake.wait_until(lambda: query_id in fake.callback_answers)
        assert fake.callback_answers[query_id].get("text") is None
        assert len(fake.sent(GROUP)) == 1
        [admin_answer] = await ask(fake, ADMIN, QINGDAO)
        assert is_cited_answer(admin_answer)


async def test_rate_limit_replies_politely(
    fake: FakeTelegram, examples_settings: Settings, service: ScriptedService
) -> None:
    async with running(fake, examples_settings, service, rate_limit_per_minute=2):
        for _ in range(2):
            [answer] = await ask(fake, ALICE, QINGDAO)
            assert is_cited_answer(answer)
        [limited] = await ask(fake, ALICE, QINGDAO)
        assert "please wait" in limited["text"]
        [help_reply] = await ask(fake, ALICE, "/help")  # only questions count
        assert "documents" in help_reply["text"]
        [other_user] = await ask(fake, BOB, QINGDAO)
        assert is_cited_answer(other_user)


async def test_overlong_question_is_cut_with_a_note(
    fake: FakeTelegram, examples_settings: Settings, service: ScriptedService
) -> None:
    async with running(fake, examples_settings, service, max_question_chars=60):
        [answer] = await ask(fake, ALICE, QINGDAO + " <b>&" + " padding" * 50)
        assert answer["text"].startswith("Your question was long; I used its first 5")


async def test_long_answer_is_split_into_valid_messages(fake: FakeTelegram, bot: BotApp) -> None:
    fake.send_private(ALICE, LONG)
    await fake.wait_until(lambda: any("reply_markup" in m for m in fake.sent(ALICE)))
    parts = fake.sent(ALICE)
    total = sum(utf16_len(parse_html(p["html"])) for p in parts)
    assert total > 10_000
    assert len(parts) >= 3
    assert all(utf16_len(p["text"]) <= 4096 for p in parts)
    assert "reply_markup" in parts[-1]
    assert all("reply_markup" not in p for p in parts[:-1])
    assert "[1]" in parts[-1]["text"]  # the sources block ends the last part


async def test_html_in_questions_is_harmless(fake: FakeTelegram, bot: BotApp) -> None:
    [reply] = await ask(fake, ALICE, "<script>alert(1)</script> Tom & <b>Jerry</i> trade total?")
    assert reply["text"]  # the strict fake accepted whatever the bot rendered


async def test_flood_control_and_network_errors_are_retried(
    fake: FakeTelegram, bot: BotApp
) -> None:
    fake.fail_next(1, method="sendMessage", retry_after=1)
    fake.fail_next(1, method="sendMessage", code=502)
    [reply] = await ask(fake, ALICE, QINGDAO)
    assert is_cited_answer(reply)
    times = [t for t, _ in fake.calls_of("sendMessage")]
    assert len(times) == 3
    assert times[1] - times[0] >= 1.0  # waited retry_after before trying again


async def test_bot_keeps_serving_through_500s_and_429s(fake: FakeTelegram, bot: BotApp) -> None:
    fake.fail_next(2, method="getUpdates", code=500, description="Internal Server Error")
    [first] = await ask(fake, ALICE, QINGDAO)  # polling retried past the 500s
    assert is_cited_answer(first)
    fake.fail_next(2, method="sendMessage", retry_after=1)  # flood control, twice
    [second] = await ask(fake, BOB, QINGDAO)
    assert is_cited_answer(second)
    # More 500s than the retries: that answer is lost, the user hears so once, politely.
    fake.fail_next(4, method="sendMessage", code=500, description="Internal Server Error")
    [sorry] = await ask(fake, ALICE, QINGDAO)
    assert sorry["text"] == SORRY
    [after] = await ask(fake, ALICE, QINGDAO)
    assert is_cited_answer(after)


async def test_refusal_shows_the_answerers_own_refusal_text_once(
    fake: FakeTelegram, bot: BotApp, service: ScriptedService
) -> None:
    question = "What is the GDP of Mars?"
    refusal = service.answer(question)  # the real refusal, whatever its wording
    assert refusal.refused
    [reply] = await ask(fake, ALICE, question)
    head = reply["text"].split("Nearest documents")[0]
    assert head.startswith(refusal.text.strip())
    assert reply["text"].count(refusal.text.strip()) == 1
    assert "in the briefings" not in head  # the old second refusal line (issue 8)
    assert ("reply_markup" in reply) == bool(refusal.citations)  # a button only with quotes


async def test_service_error_gets_a_polite_reply_and_the_bot_keeps_serving(
    fake: FakeTelegram, bot: BotApp, caplog: pytest.LogCaptureFixture
) -> None:
    [sorry] = await ask(fake, ALICE, FAIL)
    assert sorry["text"] == SORRY
    assert any("failed: RuntimeError" in r.getMessage() for r in caplog.records)
    [answer] = await ask(fake, ALICE, QINGDAO)
    assert is_cited_answer(answer)
    [rebuilding] = await ask(fake, ALICE, REBUILDING_NOW)  # the project's own error: its reply
    assert rebuilding["text"] == REBUILDING


async def test_slow_answer_does_not_block_other_chats(fake: FakeTelegram, bot: BotApp) -> None:
    SLOW_RELEASE.clear()
    fake.send_private(ALICE, SLOW)  # its answer is held until Bob has his
    try:
        [answer] = await ask(fake, BOB, QINGDAO)
        assert is_cited_answer(answer)
        assert not fake.sent(ALICE)  # Bob was answered while Alice's answer was being made
    finally:
        SLOW_RELEASE.set()
    [slow] = await fake.wait_for_replies(ALICE)
    assert is_cited_answer(slow)


async def test_fifty_concurrent_chats_all_answered(fake: FakeTelegram, bot: BotApp) -> None:
    chats = range(100, 150)
    questions = {chat: fake.send_private(chat, QINGDAO)["message_id"] for chat in chats}
    # Liveness, not speed (bench/telegram_bench.py measures that): generous on a busy machine.
    await fake.wait_until(lambda: all(fake.sent(chat) for chat in chats), wait_s=240)
    for chat in chats:
        [reply] = fake.sent(chat)
        assert reply["reply_to_message"]["message_id"] == questions[chat]
        assert is_cited_answer(reply)


async def test_token_never_reaches_the_logs(fake: FakeTelegram, bot: BotApp) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root = logging.getLogger()
    root.addHandler(handler)
    old_level = root.level
    root.setLevel(logging.DEBUG)
    try:
        protect_logs(fake.token, [handler])
        assert logging.getLogger("httpx").level == logging.WARNING
        logging.getLogger("httpx").setLevel(logging.INFO)  # show the filter alone suffices
        await ask(fake, ALICE, FAIL)  # an error with a traceback, and httpx request lines
        logging.getLogger("test").error("token %s", fake.token)
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        logging.getLogger("httpx").setLevel(logging.WARNING)
    logged = stream.getvalue()
    assert "HTTP Request: POST" in logged
    assert "Traceback" in logged
    assert redact.MASK in logged
    assert fake.token not in logged


@pytest.fixture(scope="module")
def hostile_settings(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Settings:
    """A fresh index over the examples plus a document full of HTML-like text and a broken PDF."""
    docs = tmp_path_factory.mktemp("docs")
    for path in EXAMPLES.iterdir():
        if path.is_file():
            shutil.copy(path, docs / path.name)
    (docs / "markup.txt").write_text(
        "Tom & Jerry <Trade> Bulletin\n\nDate: 2021-03-01\n\n"
        "The widget tariff for <b>Tom & Jerry</b> Ltd rose to 7 percent <i>in March.\n"
        "Officials said <script>alert(1)</script> a < b & c > d was not a formula.\n",
        encoding="utf-8",
    )
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    return make_settings(tmp_path_factory.mktemp("hostile-index"), model_dir, documents_dir=docs)


async def test_ingest_command_reports_failures_and_html_documents_render_safely(
    fake: FakeTelegram, hostile_settings: Settings
) -> None:
    service = AnswerService.from_settings(hostile_settings)
    async with running(fake, hostile_settings, service):
        [started, report] = await ask(fake, ADMIN, "/ingest", count=2)
        assert "Ingesting" in started["text"]
        assert "Ingest finished" in report["text"]
        assert "broken.pdf" in report["text"]
        [answer] = await ask(fake, ALICE, "What did the widget tariff for Tom & Jerry rise to?")
        assert "7 percent" in answer["text"]
        assert "<b>Tom & Jerry</b>" in answer["text"]  # shown literally, not as markup
        [status] = await ask(fake, ADMIN, "/status")
        assert "broken.pdf" in status["text"]
        with ingest_lock(hostile_settings.data_dir):  # as if the watcher were mid-run
            [_, busy] = await ask(fake, ADMIN, "/ingest", count=2)
        assert "Ingest did not run: another ingest is running" in busy["text"]
