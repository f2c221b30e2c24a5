"""Trend latency on a 36k-chunk index, beside asking for the same figures one by one.

    .venv/bin/python bench/trend_bench.py [--chunks 36000] [--work /tmp/briefing-trend]
        [--rounds 10]

The index is bench/scale_bench.py's (real FinanceBench, RGB and TAT-QA text; cached
embeddings plus noise), built once under ``--work``; the invented trade releases of
tests/data/trend are then ingested into it, so the trend has its series among 36k chunks
of other text. One process, warm (service built, BM25 loaded, one trend drawn):

- trend: ``find_trend`` over the whole index for four topics (English and Chinese), p50
  and max over ``--rounds``; then the chart (``render_png``) and both together;
- baseline, the same run: what a user does today — one ``ask`` per period of the
  quarterly and year-to-date series (``AnswerService.answer``), summed, and how many of
  those answers quote the series' figure for that period;
- baseline, the same run: no index — every chunk's text read for the measure (what the
  postings filter saves), once.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import bench_settings, machine, percentile, quiet_environment, table

ROOT = Path(__file__).resolve().parents[1]
TREND_DOCS = ROOT / "tests" / "data" / "trend"
TOPICS = [
    "How has Kelbrook's foreign trade changed?",
    "青屿外贸进出口走势",
    "青屿港集装箱吞吐量走势",
    "Lindmark foreign trade since 2024",
    # A company with ~700 chunks naming it and the measure (four copies of three 10-Ks).
    "Adobe revenue trend",
]
# One question per point of Kelbrook's two series: what asking period by period costs.
PER_PERIOD = [
    ("2024-Q1", "What was Kelbrook's foreign trade in the first quarter of 2024?"),
    ("2024-Q2", "What was Kelbrook's foreign trade in the second quarter of 2024?"),
    ("2024-Q3", "What was Kelbrook's foreign trade in the third quarter of 2024?"),
    ("2024-01..2024-05", "What was Kelbrook's foreign trade from January to May 2024?"),
    ("2024-01..2024-07", "What was Kelbrook's foreign trade in January–July 2024?"),
    ("2024-01..2024-09", "What was Kelbrook's foreign trade in the first nine months of 2024?"),
]


def build_index(work: Path, chunks: int, model: Path) -> Path:
    """scale_bench's index of ``chunks`` chunks, with the trend releases ingested into it."""
    import scale_bench

    scale_bench.MODEL = model
    rows = scale_bench.real_chunks(work, 12)
    vectors = scale_bench.cached_vectors(work, rows, 512)
    pool = scale_bench.cached_sentence_vectors(work, rows, 512)
    data = scale_bench.build(work, rows, vectors, chunks, pool)
    docs = work / "docs"
    target = docs / "trend"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(TREND_DOCS, target)
    from ingest.pipeline import run_ingest

    report = run_ingest(bench_settings(data, model, documents_dir=docs), [target])
    assert not report.failures, report.failures
    return data


def timed(fn: object, *args: object) -> tuple[float, object]:
    started = time.perf_counter()
    out = fn(*args)  # type: ignore[operator]
    return (time.perf_counter() - started) * 1000, out


def main() -> None:
    quiet_environment()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chunks", type=int, default=36000)
    parser.add_argument("--work", type=Path, default=Path("/tmp/briefing-trend"))
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--model", type=Path, help="default: the installed MODEL_DIR")
    args = parser.parse_args()
    from bot.chart import render_png
    from bot.service import AnswerService
    from bot.settings import Settings
    from bot.trend import find_trend, statements, topic_parts
    from bot.types import Hit

    model = args.model or Settings(_env_file=None).resolved_model_dir
    print(f"Machine: {machine()} (2 cores shared with other work: figures are noisy)")
    data = build_index(args.work, args.chunks, model)
    service = AnswerService(bench_settings(data, model))
    service.warm_up()
    lexical = service.retriever.lexical_index()
    print(f"Index: {len(lexical.chunks)} chunks ({data})")
    find_trend(lexical, TOPICS[0])
    render_png(find_trend(lexical, TOPICS[0]))  # the font and matplotlib loaded

    rows = []
    worst = 0.0
    for topic in TOPICS:
        trend_ms, chart_ms, both_ms = [], [], []
        for _ in range(args.rounds):
            ms, trend = timed(find_trend, lexical, topic)
            trend_ms.append(ms)
            chart, _png = timed(render_png, trend)
            chart_ms.append(chart)
            both_ms.append(ms + chart)
        trend = find_trend(lexical, topic)
        points = sum(len(s.points) for s in trend.series)
        worst = max(worst, max(both_ms))
        rows.append([topic, len(trend.series), points, percentile(trend_ms, 50), max(trend_ms),
                     percentile(chart_ms, 50), percentile(both_ms, 50), max(both_ms)])  # fmt: skip
    print(f"\nTrend, warm, {args.rounds} rounds per topic (ms):")
    print(table(["topic", "series", "points", "trend p50", "trend max", "chart p50",
                 "trend+chart p50", "trend+chart max"], rows))  # fmt: skip

    expected = {p.label: p.value for s in find_trend(lexical, TOPICS[0]).series for p in s.points}
    asked_ms, right = 0.0, 0
    for label, question in PER_PERIOD:
        ms, answer = timed(service.answer, question)
        asked_ms += ms
        quotes = " ".join(c.quote for c in answer.citations)  # type: ignore[attr-defined]
        right += f"{expected[label]:g}" in quotes
    trend_ms_0 = percentile([timed(find_trend, lexical, TOPICS[0])[0] for _ in range(5)], 50)
    print(
        f"\nBaseline, asking period by period ({len(PER_PERIOD)} asks for Kelbrook's points): "
        f"{asked_ms:.0f} ms in all, {right}/{len(PER_PERIOD)} answers quote the series' figure; "
        f"the trend: {trend_ms_0:.0f} ms for all of them, each cited"
    )
    entity, measure, _, _ = topic_parts(TOPICS[0])
    started = time.perf_counter()
    found = 0
    for i in range(len(lexical.chunks)):
        found += len(statements(Hit(lexical.chunks[i], 0.0), entity, measure))
    scan_ms = (time.perf_counter() - started) * 1000
    print(f"Baseline, no index: every chunk read for the measure: {scan_ms:.0f} ms "
          f"({found} statements) vs {trend_ms_0:.0f} ms through the postings")  # fmt: skip
    print(f"\nWorst warm trend+chart: {worst:.0f} ms (target ≤ 1000 ms)")


if __name__ == "__main__":
    main()
