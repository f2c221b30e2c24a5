"""The drop folder, end to end: landing → answerable, landing → follower's message, bursts.

    .venv/bin/python bench/watch_bench.py [--drops 3] [--burst 200] [--fb | --rgb]
    .venv/bin/python bench/watch_bench.py --chunks 1000,36000 --burst 0 [--work DIR]

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
(/work/coord/fb-data), if one was built; with ``--chunks 1000,36000`` copies of
bench/scale_bench.py's indexes of those sizes (real chunk texts of the shared sets, cached
embeddings plus noise: HNSW and BM25 at their real size; built by its own functions, or
reused from its ``--work`` folder), measured one after the other in the same run, the
first size being the baseline. ``uptime`` is printed with each index's figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
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


@dataclass
class Measured:
    label: str
    chunks: int
    rows: list[list[float]]
    load: str  # `uptime` while it ran
    burst: tuple[int, float] | None = None


async def measure(settings: Settings, label: str, drops: int, burst_n: int) -> Measured:
    """Start the bot with its watcher on ``settings``' index; time the drops (and a burst)."""
    service = await asyncio.to_thread(AnswerService, settings)
    await asyncio.to_thread(service.warm_up)  # as the bot does before it serves
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
    burst_result = None
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
            rows = [await one_drop(fake, settings, service) for _ in range(drops)]
            load = uptime()
            if burst_n:
                burst_result = await burst(settings, burst_n)
            await app.updater.stop()
            await app.stop()
            assert app.post_shutdown is not None
            await app.post_shutdown(app)
    finally:
        await fake.stop()
    return Measured(label, chunks, rows, load, burst_result)


def uptime() -> str:
    out = subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout
    return out.strip() or f"load average {os.getloadavg()[0]:.2f}"


def scale_index(work: Path, n: int, into: Path, pdfs: int, sample: int) -> Path:
    """A copy of bench/scale_bench.py's ``n``-chunk index (built there, or reused from
    ``work``): real chunk texts of the shared sets, cached embeddings plus noise, so Chroma's
    HNSW graph and the BM25 index have their real size. Copied: the drops write to it."""
    import scale_bench

    rows = scale_bench.real_chunks(work, pdfs)
    vectors = scale_bench.cached_vectors(work, rows, sample)
    pool = scale_bench.cached_sentence_vectors(work, rows, sample)
    built = scale_bench.build(work, rows, vectors, n, pool)
    shutil.copytree(built, into, ignore=shutil.ignore_patterns("ingest.lock", "scratch"))
    return into


def stand_in_files(data: Path, old_base: Path, docs: Path) -> int:
    """Put the index's files in the watched folder, as a team's folder holds its corpus.

    scale_bench records each document under ``old_base`` with a size and mtime but writes no
    file. Each is moved under ``docs`` (the manifest rewritten) as a stand-in file of the
    recorded size and mtime: every watcher run then scans the whole corpus and finds it
    unchanged, as it would in production, and removes nothing.
    """
    prefix = str(old_base.resolve()) + os.sep
    with sqlite3.connect(data / "state.sqlite") as db:
        rows = db.execute("SELECT path, size, mtime_ns FROM files").fetchall()
        moved = []
        for key, size, mtime_ns in rows:
            if not key.startswith(prefix):
                continue
            new = docs / key[len(prefix) :]
            new.parent.mkdir(parents=True, exist_ok=True)
            new.write_bytes(b"x" * size)
            os.utime(new, ns=(mtime_ns, mtime_ns))
            moved.append((str(new), key))
        db.executemany("UPDATE files SET path=? WHERE path=?", moved)
    return len(moved)


async def main_async(args: argparse.Namespace) -> None:
    quiet_environment()
    cache = Path(tempfile.gettempdir()) / "briefing-bench"
    results: list[Measured] = []
    base_s = None
    print(f"start: {uptime()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="watch-bench-") as tmp:
        work = Path(tmp)
        if args.chunks:
            import scale_bench

            for n in [int(x) for x in args.chunks.split(",")]:
                docs = work / f"drop-{n}"
                docs.mkdir()
                data = scale_index(args.work, n, work / f"data-{n}", args.pdfs, args.sample)
                files = stand_in_files(data, args.work / "docs", docs)
                settings = bench_settings(data, scale_bench.MODEL, docs)
                label = (
                    f"scale_bench index of {n} chunks (real texts, cached vectors + noise; "
                    f"{files} files in the watched folder)"
                )
                results.append(await measure(settings, label, args.drops, args.burst))
                shutil.rmtree(data)
                print(f"measured {label}: {uptime()}", flush=True)
        else:
            model = model_dir(cache)
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
            results.append(await measure(settings, label, args.drops, args.burst))
            if args.burst:
                base_s = baseline_burst(cache, model, args.burst, work)
    report(results, args, base_s)


def report(results: list[Measured], args: argparse.Namespace, base_s: float | None) -> None:
    print(f"\nDrop folder benchmark — {machine()}")
    print("Watcher at default timings (0.5 s quiet, 1 s settle); the bot answers as it runs.")
    names = [
        "the ingest run alone (its own clock)",
        "landing → ingested (0.5 s quiet + 1 s settle + run)",
        "landing → answerable by the running bot",
        "landing → admin told",
        "landing → follower's digest",
    ]
    for m in results:
        print(f"\nIndex: {m.label}, {m.chunks} chunks before the drops")
        print(f"Load while measured: {m.load}")
        medians = [statistics.median(r[i] for r in m.rows) for i in range(len(names))]
        worst = [max(r[i] for r in m.rows) for i in range(len(names))]
        print(
            table(
                ["one press release (seconds)", "median", "max"],
                [[names[i], f"{medians[i]:.2f}", f"{worst[i]:.2f}"] for i in range(len(names))],
            )
        )
        print(f"({len(m.rows)} drops of {QINGDAO.name})")
    if len(results) > 1:
        base, *rest = results
        print(f"\nLanding → answerable, median, against the {base.chunks}-chunk baseline:")
        for m in rest:
            b = statistics.median(r[2] for r in base.rows)
            v = statistics.median(r[2] for r in m.rows)
            print(f"  {m.chunks} chunks: {v:.2f} s vs {b:.2f} s ({v - b:+.2f} s)")
    bursts = [[m.label, args.burst, *m.burst] for m in results if m.burst]
    if bursts:
        rows: list[list[object]] = [
            ["watcher: copy lands → all indexed", n, runs, f"{s:.1f}"] for _, n, runs, s in bursts
        ]
        if base_s is not None:
            rows.append(["baseline: one run_ingest, fresh index", args.burst, 1, f"{base_s:.1f}"])
        print()
        print(table(["burst", "files", "runs", "seconds"], rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--drops", type=int, default=3)
    parser.add_argument("--burst", type=int, default=200)
    parser.add_argument("--fb", action="store_true", help="use a copy of the FinanceBench index")
    parser.add_argument("--rgb", action="store_true", help="add the RGB en passages")
    parser.add_argument(
        "--chunks",
        help="index sizes from bench/scale_bench.py, e.g. 1000,36000 (the first is the baseline)",
    )
    parser.add_argument(
        "--work",
        type=Path,
        default=Path("/tmp/briefing-scale"),
        help="scale_bench's work folder (its cached chunks, vectors and indexes)",
    )
    parser.add_argument("--pdfs", type=int, default=12, help="as scale_bench --pdfs")
    parser.add_argument("--sample", type=int, default=512, help="as scale_bench --sample")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
