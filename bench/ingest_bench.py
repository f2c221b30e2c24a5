"""Ingest throughput on the FinanceBench PDFs (+ the Qingdao release) with the real local model.

    .venv/bin/python bench/ingest_bench.py [--limit N] [--variants fp32,fused] [--no-naive]
        [--data-dir DIR] [--model-dir DIR]

For each model variant (``fp32`` is ``model.onnx``; ``fused``, the default, and ``fused-int8``,
``EMBEDDING_PRECISION=int8``, are built offline in a scratch folder, see
bench/model_variants.py), on the same files in the
same run: a fresh ingest (files, pages, chunks, seconds, pages/s, chunks/s, failures) and
the bare embedding of the same chunk texts with the same model (``embed_array`` alone, in
calls of 256), so the ingest's cost beyond embedding; then the naive LangChain pipeline
(our loader's pages → ``RecursiveCharacterTextSplitter(1000, 200)`` → Chroma with its
default embedding function, parsing included in its time); then a second, unchanged
ingest. ``--data-dir`` keeps the indexes (it must be empty).
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

_GROUP = 256  # texts per bare embed_array call (the pipeline embeds one batch of documents)


def _progress(started: float) -> object:
    def report(done: int, total: int, path: str) -> None:
        if done == 1 or done % 10 == 0 or done == total:
            elapsed = time.perf_counter() - started
            print(f"  [{elapsed:6.0f} s] {done}/{total} {path}", file=sys.stderr, flush=True)

    return report


def run(
    limit: int | None,
    data_dir: Path,
    model: Path,
    variants: list[str],
    *,
    naive: bool,
    sequential: bool,
    bare_sample: int = 0,
) -> None:
    from model_variants import FILES, build_variants

    from ingest.chunking import embed_text
    from ingest.embeddings import LocalEmbeddings
    from ingest.pipeline import run_ingest
    from ingest.store import open_index

    pdfs = financebench_pdfs(limit)
    paths = [*pdfs, QINGDAO]
    print(f"machine: {machine()}")
    print(f"files: {len(pdfs)} PDFs ({sum(p.stat().st_size for p in pdfs) / 1e6:.1f} MB) + 1 txt")
    folder = build_variants(model, data_dir / "models", variants)

    rows: list[Sequence[object]] = []
    rates: dict[str, float] = {}
    notes: list[str] = []
    import ingest.pipeline

    runs = [(v, ingest.pipeline._LOOKAHEAD_FILES) for v in variants]
    if sequential:  # the same ingest with parsing not overlapped: what the worker buys
        runs.insert(1, (variants[0], 0))
    for variant, lookahead in runs:
        ingest.pipeline._LOOKAHEAD_FILES = lookahead
        label = variant if lookahead else f"{variant}, sequential"
        settings = bench_settings(data_dir / label, folder, documents_dir=SHARED)
        t0 = time.perf_counter()
        embeddings = LocalEmbeddings(
            folder, batch_size=settings.embed_batch_size, onnx_file=FILES[variant]
        )
        load_s = time.perf_counter() - t0
        started = time.perf_counter()
        first = run_ingest(settings, paths, embeddings=embeddings, progress=_progress(started))  # type: ignore[arg-type]
        chunks = sorted(
            open_index(settings, embeddings).all_chunks(), key=lambda c: (c.path, c.index)
        )
        texts = [embed_text(c.title, c.text) for c in chunks]
        # A random sample, when asked for, keeps a long run affordable; the time is scaled up.
        n = bare_sample if 0 < bare_sample < len(texts) else len(texts)
        sample = texts if n == len(texts) else random.Random(7).sample(texts, n)
        t0 = time.perf_counter()
        for i in range(0, len(sample), _GROUP):
            embeddings.embed_array(sample[i : i + _GROUP])
        bare_s = (time.perf_counter() - t0) * len(texts) / max(1, n)
        rates[label] = first.embedded_chunks / first.seconds
        rows += [
            [f"ours {label}: fresh ingest", len(first.results), first.pages,
             first.embedded_chunks, first.seconds, first.pages / first.seconds,
             rates[label], len(first.failures)],
            [f"ours {label}: bare embed_array", "", "", len(texts), bare_s, "",
             len(texts) / bare_s if bare_s else 0.0, ""],
        ]  # fmt: skip
        notes.append(
            f"{label}: model load {load_s:.2f} s (not in the ingest seconds); ingest / bare "
            f"embedding {ratio(first.seconds, bare_s)} ({first.seconds - bare_s:.1f} s beyond "
            f"embedding: parsing, chunking, Chroma, manifest, BM25 files)"
        )
        print(f"  {notes[-1]}; {rates[label]:.2f} chunks/s", file=sys.stderr, flush=True)
        for failure in first.failures:
            print(f"FAILED {failure.path}: {failure.reason}")
        if first.failures:
            raise SystemExit(1)
    if naive:
        naive_chunks, naive_s = run_naive(paths, model, data_dir / "naive")
        rates["naive"] = naive_chunks / naive_s
        rows.append(["naive LangChain + Chroma default", len(paths), "", naive_chunks, naive_s,
                     "", rates["naive"], ""])  # fmt: skip
    settings = bench_settings(data_dir / variants[0], folder, documents_dir=SHARED)
    embeddings = LocalEmbeddings(folder, onnx_file=FILES[variants[0]])
    second = run_ingest(settings, paths, embeddings=embeddings)
    rows.append([f"ours {variants[0]}: re-run, unchanged", len(second.results), second.pages,
                 second.embedded_chunks, second.seconds, "", "", len(second.failures)])  # fmt: skip
    print()
    print(
        table(["run", "files", "pages", "chunks", "seconds", "pages/s", "chunks/s", "failed"], rows)
    )
    print()
    for note in notes:
        print(note)
    if "naive" in rates:
        for label in rates:
            if label != "naive":
                print(f"ours {label} / naive, chunks/s: {ratio(rates[label], rates['naive'])}")
    print(f"machine after the run: {machine()}")
    if second.embedded_chunks or second.failures:
        raise SystemExit(1)


def run_naive(paths: list[Path], model: Path, folder: Path) -> tuple[int, float]:
    """The naive pipeline over the same files: (chunks, seconds, parsing included)."""
    from naive import ChromaDefaultEmbeddings, build_naive, pdf_pages

    embeddings = ChromaDefaultEmbeddings(model, folder / "chroma-onnx")
    started = time.perf_counter()
    _, facts = build_naive(folder / "index", pdf_pages(paths), embeddings)
    return int(facts["chunks"]), time.perf_counter() - started


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--limit", type=int, default=None, help="ingest only N PDFs (the most-asked-about)"
    )
    parser.add_argument(
        "--variants", default="fp32", help="model variants, comma-separated (fp32 first)"
    )
    parser.add_argument("--no-naive", action="store_true", help="skip the naive pipeline")
    parser.add_argument(
        "--bare-sample", type=int, default=0, help="time bare embedding on N chunks (0: all)"
    )
    parser.add_argument(
        "--sequential",
        action="store_true",
        help="also ingest with parsing not overlapped with embedding (the first variant)",
    )
    parser.add_argument("--data-dir", type=Path, default=None, help="keep the indexes here")
    parser.add_argument("--model-dir", type=Path, default=None, help="installed model folder")
    args = parser.parse_args(argv)
    quiet_environment()
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    with tempfile.TemporaryDirectory(prefix="ingest-bench-") as tmp:
        data_dir = args.data_dir or Path(tmp) / "data"
        if data_dir.exists() and any(data_dir.iterdir()):
            raise SystemExit(
                f"--data-dir {data_dir} is not empty: a fresh ingest needs an empty one"
            )
        model = args.model_dir or model_dir(Path(tmp))
        try:
            run(
                args.limit,
                data_dir,
                model,
                variants,
                naive=not args.no_naive,
                sequential=args.sequential,
                bare_sample=args.bare_sample,
            )
        finally:
            if args.data_dir is None:
                shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
