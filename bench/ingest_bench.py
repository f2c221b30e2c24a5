"""Ingest throughput on the FinanceBench PDFs (+ the Qingdao release) with the real local model.

    .venv/bin/python bench/ingest_bench.py [--limit N] [--data-dir DIR] [--model-dir DIR]

Prints files, pages, chunks, seconds, pages/s, chunks/s and failures of a fresh ingest;
then, in the same run, the bare embedding time of the same chunk texts
(``LocalEmbeddings.embed_array`` alone, called with pipeline-sized groups) and so the
ingest overhead beyond embedding; then the seconds of a second, unchanged ingest.
``--data-dir`` keeps the index (it must be empty): ``bench/eval.py --cache C`` reuses
``C/financebench/ours``.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    QINGDAO,
    SHARED,
    bench_settings,
    financebench_pdfs,
    machine,
    model_dir,
    quiet_environment,
    ratio,
    table,
)

# The pipeline embeds in write groups of EMBED_BATCH_SIZE * 4 chunks (ingest.pipeline
# _FLUSH_BATCHES); the bare timing uses the same call size so only the rest differs.
_GROUP = 64 * 4


def _progress(started: float) -> object:
    def report(done: int, total: int, path: str) -> None:
        if done == 1 or done % 10 == 0 or done == total:
            elapsed = time.perf_counter() - started
            print(f"  [{elapsed:6.0f} s] {done}/{total} {path}", file=sys.stderr, flush=True)

    return report


def run(limit: int | None, data_dir: Path, model: Path, bare_sample: int) -> None:
    from ingest.chunking import embed_text
    from ingest.embeddings import LocalEmbeddings
    from ingest.pipeline import run_ingest
    from ingest.store import open_index

    pdfs = financebench_pdfs(limit)
    paths = [*pdfs, QINGDAO]
    settings = bench_settings(data_dir, model, documents_dir=SHARED)
    print(f"machine: {machine()}")
    print(f"files: {len(pdfs)} PDFs ({sum(p.stat().st_size for p in pdfs) / 1e6:.1f} MB) + 1 txt")

    t0 = time.perf_counter()
    embeddings = LocalEmbeddings(model, batch_size=settings.embed_batch_size)
    load_s = time.perf_counter() - t0

    started = time.perf_counter()
    first = run_ingest(settings, paths, embeddings=embeddings, progress=_progress(started))  # type: ignore[arg-type]

    store = open_index(settings, embeddings)
    chunks = sorted(store.all_chunks(), key=lambda c: (c.path, c.index))
    texts = [embed_text(c.title, c.text) for c in chunks]
    # A random sample, when asked for, keeps a long run affordable; the time is scaled up.
    sample = random.Random(7).sample(texts, bare_sample) if 0 < bare_sample < len(texts) else texts
    t0 = time.perf_counter()
    for i in range(0, len(sample), _GROUP):
        embeddings.embed_array(sample[i : i + _GROUP])
    bare_s = (time.perf_counter() - t0) * len(texts) / max(1, len(sample))

    second = run_ingest(settings, paths, embeddings=embeddings)

    rows: list[Sequence[object]] = [
        ["fresh ingest", len(first.results), first.pages, first.embedded_chunks,
         first.seconds, first.pages / first.seconds, first.embedded_chunks / first.seconds,
         len(first.failures)],
        [f"bare embed_array{' (sampled)' if sample is not texts else ''}", "", "",
         len(texts), bare_s, "",
         len(texts) / bare_s if bare_s else 0.0, ""],
        ["re-run, unchanged", len(second.results), second.pages, second.embedded_chunks,
         second.seconds, "", "", len(second.failures)],
    ]  # fmt: skip
    print()
    print(
        table(["run", "files", "pages", "chunks", "seconds", "pages/s", "chunks/s", "failed"], rows)
    )
    print()
    print(f"model load: {load_s:.2f} s (not in the ingest seconds)")
    if sample is not texts:
        print(f"bare embedding timed on {len(sample)} random chunks of {len(texts)}, scaled up")
    print(f"ingest overhead over bare embedding: {ratio(first.seconds, bare_s)} "
          f"({first.seconds - bare_s:.1f} s for parsing, chunking, storage, manifest)")  # fmt: skip
    print(f"outcomes: fresh {first.summary()}; re-run {second.summary()}")
    for failure in first.failures + second.failures:
        print(f"FAILED {failure.path}: {failure.reason}")
    if first.failures or second.embedded_chunks:
        raise SystemExit(1)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--limit", type=int, default=None, help="ingest only N PDFs (the most-asked-about)"
    )
    parser.add_argument(
        "--bare-sample", type=int, default=0, help="time bare embedding on N chunks (0: all)"
    )
    parser.add_argument("--data-dir", type=Path, default=None, help="keep the index here")
    parser.add_argument("--model-dir", type=Path, default=None, help="installed model folder")
    args = parser.parse_args(argv)
    quiet_environment()
    with tempfile.TemporaryDirectory(prefix="ingest-bench-") as tmp:
        data_dir = args.data_dir or Path(tmp) / "data"
        if data_dir.exists() and any(data_dir.iterdir()):
            raise SystemExit(
                f"--data-dir {data_dir} is not empty: a fresh ingest needs an empty one"
            )
        model = args.model_dir or model_dir(Path(tmp))
        try:
            run(args.limit, data_dir, model, args.bare_sample)
        finally:
            if args.data_dir is None:
                shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
