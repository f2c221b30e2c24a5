"""Bot reply latency under load: N chats ask at once, concurrent vs sequential update handling.

    .venv/bin/python bench/telegram_bench.py [--chats 50] [--docs DIR] [--model-dir DIR]

The real bot (python-telegram-bot over HTTP) talks to the strict fake Bot API
(tests/fake_telegram.py) on 127.0.0.1 and answers with the real AnswerService over a real
index of the documents (default: examples/briefings, else ../shared/corpus). Each chat sends
one question at the same moment; reply time = from the question's injection to the fake
receiving the answer. ``--io-latency S`` adds S seconds of waiting to each answer (what an
LLM answerer spends on the network). Baseline: the same questions with ``concurrent_updates=False``
(PTB handles one update at a time), in the same run, against the same warm service.
The fake runs in the bot's process and event loop, so it competes with the answering
threads for the GIL: figures are for comparing the two modes, not absolute latencies.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pydantic import SecretStr

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
sys.path.insert(0, str(ROOT))

from bot.service import AnswerService  # noqa: E402
from bot.settings import Settings  # noqa: E402
from bot.telegram.app import build_application  # noqa: E402
from bot.types import Answer  # noqa: E402
from ingest.onnx_export import install_model  # noqa: E402
from ingest.pipeline import run_ingest  # noqa: E402
from tests.fake_telegram import FakeTelegram  # noqa: E402

QUESTIONS = (
    "What was Qingdao's Jan–Jul trade total?",
    "What did Wang Qingxian say about opening-up?",
    "Which pilot free trade zone is mentioned?",
    "How much did imports and exports total from January to July?",
)


class LatentService(AnswerService):
    """The real service plus a fixed wait per answer, standing in for an LLM call's latency."""

    io_latency_s = 0.0

    def answer(self, question: str, **kwargs: Any) -> Answer:
        time.sleep(self.io_latency_s)
        return super().answer(question, **kwargs)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def one_round(
    settings: Settings, service: AnswerService, chats: int, concurrent: bool, workers: int | None
) -> tuple[list[float], float]:
    """Reply times (s) of ``chats`` simultaneous questions, and the wall time of the round."""
    fake = await FakeTelegram().start()
    telegram = {"bot_token": SecretStr(fake.token), "api_base_url": fake.api_base}
    update = {"telegram": settings.telegram.model_copy(update=telegram)}
    app = build_application(
        settings.model_copy(update=update),
        service,
        concurrent_updates=concurrent,
        answer_workers=workers,
    )
    try:
        async with app:
            assert app.post_init is not None
            assert app.updater is not None
            await app.post_init(app)
            await app.updater.start_polling(poll_interval=0, timeout=1)
            await app.start()
            started = time.monotonic()
            asked = {}
            for i, chat in enumerate(range(1000, 1000 + chats)):
                fake.send_private(chat, QUESTIONS[i % len(QUESTIONS)])
                asked[chat] = time.monotonic()
            await fake.wait_until(lambda: all(fake.sent(c) for c in asked), wait_s=600)
            wall = time.monotonic() - started
            times = [fake.sent(chat)[0]["at"] - at for chat, at in asked.items()]
            await app.updater.stop()
            await app.stop()
            assert app.post_shutdown is not None
            await app.post_shutdown(app)
    finally:
        await fake.stop()
    return times, wall


def describe(label: str, times: list[float], wall: float) -> str:
    return (
        f"{label:<24} p50 {percentile(times, 0.5) * 1000:8.0f} ms   "
        f"p95 {percentile(times, 0.95) * 1000:8.0f} ms   all answered in {wall:6.2f} s"
    )


async def main_async(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="telegram-bench-"))
    model_dir = args.model_dir or install_model(work / "model")
    docs = args.docs
    if docs is None:
        examples = ROOT / "examples" / "briefings"
        docs = examples if any(examples.glob("*")) else SHARED / "corpus"
    settings = Settings(
        _env_file=None,
        data_dir=work / "data",
        model_dir=model_dir,
        documents_dir=docs,
        rate_limit_per_minute=0,
    )
    report = await asyncio.to_thread(run_ingest, settings)
    print(f"index: {docs} → {report.summary()}")
    service = LatentService(settings)
    service.io_latency_s = args.io_latency
    if args.io_latency:
        print(f"each answer also waits {args.io_latency:.2f} s (simulated LLM latency)")
    await asyncio.to_thread(service.warm_up)
    await one_round(settings, service, min(args.chats, 4), True, args.workers)  # warm both paths

    concurrent, concurrent_wall = await one_round(settings, service, args.chats, True, args.workers)
    sequential, sequential_wall = await one_round(
        settings, service, args.chats, False, args.workers
    )
    print(f"{args.chats} chats asking at once")
    print(describe("concurrent_updates=True", concurrent, concurrent_wall))
    print(describe("sequential (baseline)", sequential, sequential_wall))
    for name, q in (("p50", 0.5), ("p95", 0.95)):
        ratio = percentile(sequential, q) / percentile(concurrent, q)
        print(f"{name} speed-up: {ratio:.2f}x")
    print(f"wall-time speed-up: {sequential_wall / concurrent_wall:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chats", type=int, default=50)
    parser.add_argument("--docs", type=Path, default=None)
    parser.add_argument("--model-dir", type=Path, default=None)
    parser.add_argument("--io-latency", type=float, default=0.0, help="s added per answer")
    parser.add_argument("--workers", type=int, default=None, help="answer threads (default: bot's)")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
