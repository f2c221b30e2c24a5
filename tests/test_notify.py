"""The drop folder through the bot: real PTB over HTTP to the fake Bot API, a real watcher on
a temporary folder, a real index. Admins hear what landed or failed; followers get quoted,
cited news on their topics and nothing else; subscriptions survive a restart."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from telegram import Bot

from bot.service import AnswerService
from bot.settings import Settings, WatchSettings
from bot.telegram.notify import MAX_LISTED, FailureMemory, Outbox, render_notice
from ingest.pipeline import run_ingest
from ingest.types import FileResult, IngestReport, Outcome
from tests.conftest import EXAMPLES, ROOT, make_settings
from tests.fake_telegram import JSON, FakeTelegram
from tests.test_telegram_bot import ADMIN, ALICE, BOB, GROUP, running

WATCH = WatchSettings(enabled=True, quiet_s=0.1, settle_s=0.3)  # tight timings: a fast test
QINGDAO = ROOT.parent / "shared" / "corpus" / "qingdao-dual-circulation-2020-09-04.txt"
VALLEY = ROOT / "tests" / "data" / "docs" / "valley-water-plan.md"


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    server = await FakeTelegram().start()
    yield server
    await server.stop()


def drop_settings(tmp_path: Path, model_dir: Path) -> Settings:
    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copy(EXAMPLES / "shanghai-economy-2022-03-16.md", docs)
    return make_settings(tmp_path / "data", model_dir, documents_dir=docs)


async def say(fake: FakeTelegram, chat: int, text: str, user: int | None = None) -> JSON:
    """Send ``text`` (private when ``chat`` > 0) and return the bot's reply."""
    before = len(fake.sent(chat))
    if chat > 0:
        fake.send_private(chat, text)
    else:
        fake.send_group(chat, user or BOB, text)
    return (await fake.wait_for_replies(chat, before + 1))[before]


async def next_message(fake: FakeTelegram, chat: int, seen: int, wait_s: float = 30) -> JSON:
    return (await fake.wait_for_replies(chat, seen + 1, wait_s))[seen]


async def test_admins_and_followers_hear_about_drops(
    tmp_path: Path, model_dir: Path, fake: FakeTelegram
) -> None:
    if not QINGDAO.exists():
        pytest.skip("../shared is not present")
    settings = drop_settings(tmp_path, model_dir)
    await asyncio.to_thread(run_ingest, settings)  # the folder as it was before today
    service = await asyncio.to_thread(AnswerService, settings)
    docs = settings.documents_dir
    async with running(fake, settings, service, watch=WATCH):
        await say(fake, ADMIN, "/following")  # the admin's chat exists from here on
        reply = await say(fake, ALICE, "/follow qingdao trade")
        assert "Following 1. “qingdao trade”" in reply["text"]
        reply = await say(fake, GROUP, "/follow green valley water plan budget")
        assert "Following 1." in reply["text"]
        admin_seen, alice_seen, group_seen = (len(fake.sent(c)) for c in (ADMIN, ALICE, GROUP))

        shutil.copy(QINGDAO, docs)  # a colleague drops the Qingdao release
        notice = await next_message(fake, ADMIN, admin_seen)
        assert "1 added" in notice["text"]
        assert QINGDAO.name in notice["text"]
        news = await next_message(fake, ALICE, alice_seen)
        assert "New on “qingdao trade”" in news["text"]
        assert "<blockquote><i>" in news["html"] and "[1]" in news["text"]
        quote = news["html"].split("<blockquote><i>")[1].split("</i>")[0]
        assert "Qingdao" in quote
        assert quote.replace("&amp;", "&") in QINGDAO.read_text()  # verbatim
        assert "einpresswire.com" in news["text"]  # cited: the release's link

        # The answering side sees the new release without a restart.
        # (Whether the answerer quotes or refuses is its business: the release is found.)
        answer = await say(fake, ALICE, "What did Wang Qingxian say about dual circulation?")
        assert "Prop up the Dual Circulation" in answer["text"]
        alice_seen = len(fake.sent(ALICE))

        # An unrelated release and a corrupt PDF: admins hear both, Alice nothing.
        (docs / "broken.pdf").write_bytes(b"%PDF-1.4\nnot really a PDF")
        shutil.copy(VALLEY, docs)
        # (The PDF is retried quietly while recent, as a half-written one would be: its
        # failure may come in the same notice or the next one, once.)
        await fake.wait_until(
            lambda: any("broken.pdf:" in m["text"] for m in fake.sent(ADMIN)[admin_seen + 1 :]),
            30,
        )
        notices = "\n".join(m["text"] for m in fake.sent(ADMIN)[admin_seen + 1 :])
        assert notices.count("1 added") == 1 and notices.count("1 failed") == 1
        assert "valley-water-plan.md" in notices
        assert notices.count("broken.pdf:") == 1  # with its reason
        group_news = await next_message(fake, GROUP, group_seen)
        assert "Valley water plan adopted" in group_news["text"]
        await asyncio.sleep(0.5)  # any digest for Alice would have been queued with it
        assert len(fake.sent(ALICE)) == alice_seen

        listing = await say(fake, ADMIN, "/following all")
        assert str(GROUP) in listing["text"] and "qingdao trade" in listing["text"]

    async with running(fake, settings, service, watch=WATCH):  # restarted: topics kept
        listing = await say(fake, ALICE, "/following")
        assert "1. qingdao trade" in listing["text"]
        removed = await say(fake, ADMIN, f"/unfollow {GROUP} 1")
        assert "Stopped following" in removed["text"]
        listing = await say(fake, GROUP, "/following")
        assert "none" in listing["text"]
        refused = await say(fake, ALICE, f"/unfollow {GROUP} 1")  # not an admin
        assert "Which one?" in refused["text"]


def test_notice_lists_each_outcome_and_failure_reasons_once() -> None:
    report = IngestReport(
        results=[
            FileResult("new <1>.md", Outcome.ADDED, chunks=3),
            FileResult("old.txt", Outcome.UNCHANGED),
            FileResult("b.md", Outcome.RENAMED, "renamed from a.md"),
            FileResult("gone.pdf", Outcome.REMOVED),
            FileResult("broken.pdf", Outcome.FAILED, "not a PDF: no header"),
        ],
        seconds=1.25,
    )
    memory = FailureMemory()
    news = memory.news(report)
    text = render_notice(report, news)
    assert text.startswith("<b>Documents folder</b>: 1 added, 1 renamed, 1 removed, 1 failed")
    assert "<code>new &lt;1&gt;.md</code>" in text  # file names are escaped
    assert "<code>b.md</code> (renamed from a.md)" in text
    assert "<code>broken.pdf</code>: not a PDF: no header" in text
    assert "old.txt" not in text
    # The broken file stays in the folder: the next run does not tell it again...
    again = IngestReport(results=[FileResult("broken.pdf", Outcome.FAILED, "not a PDF: no header")])
    assert memory.news(again) == []
    # ...until its reason changes, or it is fixed and breaks again.
    fixed = IngestReport(results=[FileResult("broken.pdf", Outcome.UPDATED, chunks=2)])
    assert memory.news(fixed) == fixed.results
    assert memory.news(again) == again.results
    many = IngestReport(results=[FileResult(f"f{i}.md", Outcome.ADDED) for i in range(40)])
    assert f"… and {40 - MAX_LISTED} more" in render_notice(many, many.results)


async def test_outbox_merges_what_waits_for_a_chat(fake: FakeTelegram) -> None:
    fake.send_private(ALICE, "hello")  # the chat exists
    bot = Bot(fake.token, base_url=fake.api_base)
    async with bot:
        outbox = Outbox(bot, chat_interval_s=0.5)
        outbox.start()
        try:
            for i in range(5):
                outbox.put(ALICE, f"<b>run {i}</b>")
            outbox.put(BOB, "never opened a chat with the bot")  # logged, not fatal
            await asyncio.wait_for(outbox.drained(), 10)
        finally:
            await outbox.stop()
    sent = fake.sent(ALICE)
    assert "".join(m["text"] for m in sent).count("run") == 5  # nothing lost, in order
    assert len(sent) <= 2  # merged: the first goes at once, the rest wait together
    if len(sent) == 2:
        assert sent[1]["at"] - sent[0]["at"] >= 0.45


async def test_a_document_removed_and_dropped_again_is_news_again(
    tmp_path: Path, model_dir: Path, fake: FakeTelegram
) -> None:
    """Re-indexed documents are not news (a repair re-adds them all), but one that was
    removed, and told so, is news when it comes back: to admins and followers alike."""
    from tests.test_dropfolder import told

    settings = drop_settings(tmp_path, model_dir)
    await asyncio.to_thread(run_ingest, settings)
    service = await asyncio.to_thread(AnswerService, settings)
    docs = settings.documents_dir
    async with running(fake, settings, service, watch=WatchSettings(enabled=False)):
        await say(fake, ADMIN, "/following")
        await say(fake, ALICE, "/follow green valley water plan budget")
        admin_seen, alice_seen = len(fake.sent(ADMIN)), len(fake.sent(ALICE))
        for step in ("added", "removed", "added"):
            if step == "added":
                shutil.copy(VALLEY, docs)
            else:
                (docs / VALLEY.name).unlink()
            await asyncio.to_thread(run_ingest, settings)  # as `briefing ingest` would
            notice = await told(fake, ADMIN, admin_seen, f"1 {step}")
            assert VALLEY.name in notice["text"]
            admin_seen = len(fake.sent(ADMIN))
        await told(fake, ALICE, alice_seen, "Valley water plan adopted")
        await fake.wait_until(lambda: len(fake.sent(ALICE)) >= alice_seen + 2, 30)
        digests = [m["text"] for m in fake.sent(ALICE)[alice_seen:]]
        assert len(digests) == 2 and all("Valley water plan adopted" in t for t in digests)
