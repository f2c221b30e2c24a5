"""The drop folder, end to end: landing → answerable, landing → follower's message, bursts.

    .venv/bin/python bench/watch_bench.py [--drops 3] [--burst 200] [--fb]

The real bot (python-telegram-bot over HTTP to the fake Bot API, tests/fake_telegram.py)
runs with its folder watcher at the default timings (WATCH_QUIET_S=0.5, WATCH_SETTLE_S=1).
A follower has sent ``/follow qingdao trade``. Each drop copies the Qingdao press release
(../shared/corpus) into the watched folder and measures, from the copy:

- *ingested*: the manifest records the watcher's run;
- *answerable*: the running bot's retriever (polled every 0.1 s, as a question would)
  returns a passage of the new release for "Qingdao trade January–July 2020";
- *admin told* / *follower told*: the fake Bot API receives the admin notice / the digest.

Between drops the file is deleted (and that run awaited), so each drop embeds it again.
Burst: ``--burst`` distinct small notes land at once; reported are the number of watcher
runs and the time until all are indexed, against the baseline in the same run: one
``run_ingest`` call over the same files in a fresh index (no watcher).
Index size: the repo's example briefings (a few chunks); with ``--rgb`` also every distinct
RGB en passage (../shared/eval/rgb, about a thousand chunks), ingested from a folder beside
the watched one; with ``--fb`` a copy of a 36k-chunk FinanceBench index
(/work/coord/fb-data), if one was built.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sqlite3
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from common import QINGDAO, RGB, ROOT, bench_settings, machine, model_dir, quiet_environment, table
from pydantic import SecretStr

from bot.service import AnswerService
from bot.settings import Settings
from bot.telegram.app import build_application
from ingest.pipeline import run_ingest
from tests.fake_telegram import FakeTelegram

FB_DATA = Path("/work/coord/fb-data")
ADMIN, FOLLOWER = 1, 2
PROBE = "Qingdao trade January–July 2020"


def runs(settings: Settings) -> int:
    with sqlite3.connect(settings.manifest_path) as db:
        return int(db.execute("SELECT COUNT(*) FROM runs").fetchone()[0])


def last_run_seconds(settings: Settings) -> float:
    """How long the last ingest run took by its own clock (the manifest's run record)."""
    with sqlite3.connect(settings.manifest_path) as db:
        (report,) = db.execute("SELECT report FROM runs ORDER BY id DESC LIMIT 1").fetchone()
    return float(json.loads(report)["seconds"])


def note(i: int) -> str:
    return (
        f"Port note {i}\n\nIn week {i % 52 + 1}, berth {i} handled {1000 + 7 * i} containers "
        f"and the ferry line {i % 9} carried {300 + i} passengers.\n"
    )


async def wait_until(predicate: Callable[[], bool], limit_s: float = 300.0) -> float:
    """Poll ``predicate``; the time it first held."""
    deadline = time.monotonic() + limit_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("the bench waited too long")
        await asyncio.sleep(0.02)
    return time.monotonic()


class AnswerableProbe:
    """Polls the bot's own retriever until the dropped document is found (off the loop)."""

    def __init__(self, service: AnswerService, path: str) -> None:
        self.service, self.path = service, path
        self.found_at: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            hits = self.service.retriever.search(PROBE, k=5)
            if any(h.path == self.path for h in hits):
                self.found_at = time.monotonic()
                return
            self._stop.wait(0.1)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


async def one_drop(fake: FakeTelegram, settings: Settings, service: AnswerService) -> list[float]:
    """The ingest run's own seconds, then seconds from landing to: ingested, answerable,
    admin told, follower told."""
    docs = settings.documents_dir
    before = runs(settings)
    admin_seen, follower_seen = len(fake.sent(ADMIN)), len(fake.sent(FOLLOWER))
    landed = time.monotonic()
    shutil.copy(QINGDAO, docs / QINGDAO.name)
    probe = AnswerableProbe(service, QINGDAO.name)
    ingested = await wait_until(lambda: runs(settings) > before)
    run_s = last_run_seconds(settings)
    admin = await wait_until(lambda: len(fake.sent(ADMIN)) > admin_seen)
    follower = await wait_until(lambda: len(fake.sent(FOLLOWER)) > follower_seen)
    answerable = await wait_until(lambda: probe.found_at is not None)
    probe.stop()
    answerable = probe.found_at or answerable
    removal = runs(settings)
    (docs / QINGDAO.name).unlink()  # so that the next drop embeds it again
    await wait_until(lambda: runs(settings) > removal)
    await asyncio.sleep(1.0)  # let the removal's notice go out
    return [run_s] + [t - landed for t in (ingested, answerable, admin, follower)]


async def burst(settings: Settings, n: int) -> tuple[int, float]:
    folder = settings.documents_dir / "burst"
    staging = settings.data_dir.parent / "staging"
    staging.mkdir()
    for i in range(n):
        (staging / f"note-{i:04}.txt").write_text(note(i))
    before = runs(settings)
    landed = time.monotonic()
    shutil.copytree(staging, folder)  # as a colleague copies a folder in
    manifest = settings.manifest_path

    def indexed() -> bool:
        with sqlite3.connect(manifest) as db:
            row = db.execute("SELECT COUNT(*) FROM files WHERE path LIKE ?", (f"{folder}%",))
            return int(row.fetchone()[0]) >= n

    done = await wait_until(indexed)
    await asyncio.sleep(2.0)  # count any straggling run too
    return runs(settings) - before, done - landed


def rgb_corpus(folder: Path) -> None:
    """Every distinct RGB en passage as a text file (third-party data: kept in the tmp dir)."""
    folder.mkdir()
    seen: set[str] = set()
    for line in (RGB / "en_fact.json").read_text(encoding="utf-8").splitlines():
        row = json.loads(line) if line.strip() else {}
        for passage in [*row.get("positive", []), *row.get("negative", [])]:
            text = passage if isinstance(passage, str) else " ".join(passage)
            if text.strip() and text not in seen:
                seen.add(text)
                (folder / f"rgb-{len(seen):05}.txt").write_text(text, encoding="utf-8")


def baseline_burst(cache: Path, model: Path, n: int, work: Path) -> float:
    staging = work / "baseline-docs"
    staging.mkdir()
    for i in range(n):
        (staging / f"note-{i:04}.txt").write_text(note(i))
    settings = bench_settings(work / "baseline-data", model, staging)
    return run_ingest(settings).seconds


async def main_async(args: argparse.Namespace) -> None:
    quiet_environment()
    cache = Path(tempfile.gettempdir()) / "briefing-bench"
    model = model_dir(cache)
    with tempfile.TemporaryDirectory(prefix="watch-bench-") as tmp:
        work = Path(tmp)
        docs = work / "drop"
        docs.mkdir()
        data = work / "data"
        if args.fb:
            if not (FB_DATA / "chroma").exists():
                raise SystemExit(f"{FB_DATA} has no index: run without --fb")
            shutil.copytree(FB_DATA, data, ignore=shutil.ignore_patterns("ingest.lock"))
            label = "FinanceBench index copy"
        else:
            shutil.copytree(ROOT / "examples" / "briefings", docs / "examples")
            label = "example briefings"
        settings = bench_settings(data, model, docs)
        run_ingest(settings)  # the starting index (a no-op for the FinanceBench copy)
        if args.rgb:
            rgb_corpus(work / "rgb")
            run_ingest(settings, [work / "rgb"])  # indexed, not watched
            label += " + RGB en passages"
        service = await asyncio.to_thread(AnswerService, settings)
        chunks = service.store.count()
        fake = await FakeTelegram().start()
        telegram = settings.telegram.model_copy(
            update={
                "bot_token": SecretStr(fake.token),
                "api_base_url": fake.api_base,
                "admin_ids": frozenset({ADMIN}),
            }
        )
        watch = settings.watch.model_copy(update={"enabled": True})
        app = build_application(
            settings.model_copy(update={"telegram": telegram, "watch": watch}), service
        )
        try:
            async with app:
                assert app.post_init is not None and app.updater is not None
                await app.post_init(app)
                await app.updater.start_polling(poll_interval=0, timeout=1)
                await app.start()
                for chat, text in ((ADMIN, "/following"), (FOLLOWER, "/follow qingdao trade")):
                    fake.send_private(chat, text)
                    await fake.wait_for_replies(chat, 1)
                await asyncio.sleep(2.0)  # the watcher's reconciling run
                rows = [await one_drop(fake, settings, service) for _ in range(args.drops)]
                burst_runs, burst_s = await burst(settings, args.burst)
                await app.updater.stop()
                await app.stop()
                assert app.post_shutdown is not None
                await app.post_shutdown(app)
        finally:
            await fake.stop()
        base_s = baseline_burst(cache, model, args.burst, work)

    print(f"Drop folder benchmark — {machine()}")
    print(f"Index: {label}, {chunks} chunks before the drops; watcher at default timings.\n")
    names = [
        "baseline: the ingest run alone (its own clock)",
        "landing → ingested (0.5 s quiet + 1 s settle + run)",
        "landing → answerable by the running bot",
        "landing → admin told",
        "landing → follower's digest",
    ]
    medians = [statistics.median(r[i] for r in rows) for i in range(len(names))]
    worst = [max(r[i] for r in rows) for i in range(len(names))]
    print(
        table(
            ["one press release (seconds)", "median", "max"],
            [[names[i], f"{medians[i]:.2f}", f"{worst[i]:.2f}"] for i in range(len(names))],
        )
    )
    print(f"\n({args.drops} drops of {QINGDAO.name})\n")
    print(
        table(
            ["burst", "files", "runs", "seconds"],
            [
                ["watcher: copy lands → all indexed", args.burst, burst_runs, f"{burst_s:.1f}"],
                ["baseline: one run_ingest, fresh index", args.burst, 1, f"{base_s:.1f}"],
            ],
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--drops", type=int, default=3)
    parser.add_argument("--burst", type=int, default=200)
    parser.add_argument("--fb", action="store_true", help="use a copy of the FinanceBench index")
    parser.add_argument("--rgb", action="store_true", help="add the RGB en passages")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
