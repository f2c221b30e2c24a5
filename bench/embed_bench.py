"""Embedding throughput: our LocalEmbeddings vs Chroma's default ONNX MiniLM function.

    .venv/bin/python bench/embed_bench.py [--n 2000] [--batch 64] [--model-dir DIR]
        [--texts sentences|chunks] [--int8]

Sentences come from the RGB passages in ../shared/eval/rgb (English and Chinese);
``--texts chunks`` uses chunk-sized texts instead (TAT-QA report paragraphs cut at 1,000
characters, ~200 word pieces), where Chroma's padding to 256 costs little and the gap
is small. ``--int8`` also times the int8 model (``ingest.onnx_export.quantize_int8``)
against fp32 on the same texts and reports their cosine agreement. Both
runners use the same model files: Chroma's cache folder is laid out in a temporary
directory from our installed model (symlinks), so nothing is downloaded. Chroma's
function is called the way an ingest calls it, one call per batch of ``--batch`` texts.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
sys.path.insert(0, str(ROOT))

from ingest.embeddings import LocalEmbeddings  # noqa: E402
from ingest.onnx_export import MODEL_FILES, install_model  # noqa: E402

_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s*")


def load_sentences(n: int, seed: int = 7) -> list[str]:
    """``n`` distinct sentences (>= 20 characters) from the RGB passages, shuffled."""
    pool: set[str] = set()
    for name in ("en_fact.json", "zh_refine.json"):
        for line in (SHARED / "eval" / "rgb" / name).read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            record = json.loads(line)
            for passage in [*record.get("positive", []), *record.get("negative", [])]:
                if isinstance(passage, str):
                    pool.update(s.strip() for s in _SENTENCE_END.split(passage))
    sentences = sorted(s for s in pool if len(s) >= 20)
    random.Random(seed).shuffle(sentences)
    if len(sentences) < n:
        raise SystemExit(f"only {len(sentences)} sentences available, asked for {n}")
    return sentences[:n]


def load_chunks(n: int) -> list[str]:
    """``n`` chunk-sized texts: TAT-QA report paragraphs, joined per report, cut at 1,000
    characters (the naive pipeline's chunk size)."""
    reports = json.loads(
        (SHARED / "eval" / "tatqa" / "tatqa_dataset_dev.json").read_text(encoding="utf-8")
    )
    texts: list[str] = []
    for report in reports:
        joined = " ".join(p["text"] for p in report["paragraphs"])
        texts.extend(joined[i : i + 1000] for i in range(0, len(joined), 1000))
    texts = [t for t in texts if len(t) >= 200]
    if len(texts) < n:
        raise SystemExit(f"only {len(texts)} chunk texts available, asked for {n}")
    return texts[:n]


def compare_int8(model_dir: Path, texts: list[str], batch: int, tmp: Path) -> None:
    """fp32 vs the int8 model on the same texts, in alternating rounds (a busy machine)."""
    from ingest.onnx_export import INT8_FILE, quantize_int8

    folder = tmp / "int8"
    folder.mkdir()
    for name in MODEL_FILES:
        (folder / name).symlink_to((model_dir / name).resolve())
    started = time.perf_counter()
    quantize_int8(folder)
    print(f"int8 model built in {time.perf_counter() - started:.1f} s")
    fp32 = LocalEmbeddings(folder, batch_size=batch)
    int8 = LocalEmbeddings(folder, batch_size=batch, onnx_file=INT8_FILE)
    best = {"fp32": float("inf"), "int8": float("inf")}
    vectors = {}
    for _ in range(2):
        for name, model in (("fp32", fp32), ("int8", int8)):
            started = time.perf_counter()
            vectors[name] = model.embed_array(texts)
            best[name] = min(best[name], time.perf_counter() - started)
    cosines = (vectors["fp32"] * vectors["int8"]).sum(axis=1)
    for name in best:
        print(f"{name + ' LocalEmbeddings (best of 2)':<46} {len(texts) / best[name]:8.1f} texts/s")
    print(f"int8 speed-up over fp32: {best['fp32'] / best['int8']:.2f}x; cosine to fp32: "
          f"mean {cosines.mean():.4f}, min {cosines.min():.4f}")  # fmt: skip


def timed(
    label: str, embed: Callable[[list[str]], Any], texts: list[str], batch: int
) -> tuple[float, np.ndarray[Any, Any]]:
    started = time.perf_counter()
    parts = [
        np.asarray(embed(texts[i : i + batch]), np.float32) for i in range(0, len(texts), batch)
    ]
    seconds = time.perf_counter() - started
    rate = len(texts) / seconds
    print(f"{label:<46} {seconds:7.2f} s  {rate:8.1f} sentences/s", flush=True)
    return rate, np.concatenate(parts)


def chroma_cache_from(model_dir: Path, root: Path) -> Path:
    """Lay out Chroma's ONNX cache (DOWNLOAD_PATH/onnx/…) from our model files."""
    onnx_dir = root / "all-MiniLM-L6-v2" / "onnx"
    onnx_dir.mkdir(parents=True)
    for name in MODEL_FILES:
        (onnx_dir / name).symlink_to((model_dir / name).resolve())
    return onnx_dir.parent


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=2000, help="number of sentences")
    parser.add_argument("--batch", type=int, default=64, help="texts per call")
    parser.add_argument("--model-dir", type=Path, default=None, help="installed model folder")
    parser.add_argument(
        "--per-call-session",
        action="store_true",
        help="also time chromadb's DefaultEmbeddingFunction (a new session for every call)",
    )
    parser.add_argument("--texts", choices=["sentences", "chunks"], default="sentences")
    parser.add_argument("--int8", action="store_true", help="also time the int8 model")
    args = parser.parse_args(argv)
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

    from chromadb.api.types import DefaultEmbeddingFunction
    from chromadb.utils.embedding_functions.onnx_mini_lm_l6_v2 import ONNXMiniLM_L6_V2

    texts = load_sentences(args.n) if args.texts == "sentences" else load_chunks(args.n)
    with tempfile.TemporaryDirectory(prefix="embed-bench-") as tmp:
        model_dir = args.model_dir or install_model(Path(tmp) / "model" / "all-MiniLM-L6-v2")
        # Chroma reads its cache from this class attribute; pointing it at a local copy
        # of our files means it never downloads.
        ONNXMiniLM_L6_V2.DOWNLOAD_PATH = chroma_cache_from(model_dir, Path(tmp) / "chroma")

        lengths = LocalEmbeddings(model_dir).count_tokens_batch(texts)
        print(
            f"{len(texts)} {args.texts}, word pieces: mean {np.mean(lengths):.1f}, "
            f"max {max(lengths)}; batch {args.batch}; {os.cpu_count()} cores"
        )
        started = time.perf_counter()
        ours = LocalEmbeddings(model_dir, batch_size=args.batch)
        print(f"LocalEmbeddings load: {time.perf_counter() - started:.2f} s")
        ours_rate, ours_vectors = timed(
            "LocalEmbeddings.embed_array", ours.embed_array, texts, len(texts)
        )
        _, ours_batched = timed(
            f"LocalEmbeddings.embed_array, {args.batch} per call",
            ours.embed_array,
            texts,
            args.batch,
        )
        chroma = ONNXMiniLM_L6_V2(preferred_providers=["CPUExecutionProvider"])
        chroma_rate, chroma_vectors = timed(
            f"chromadb ONNXMiniLM_L6_V2, {args.batch} per call", chroma, texts, args.batch
        )
        if args.per_call_session:
            subset = texts[: min(len(texts), 256)]
            timed(
                f"chromadb DefaultEmbeddingFunction ({len(subset)})",
                DefaultEmbeddingFunction(),
                subset,
                args.batch,
            )
        cosines = (ours_vectors * chroma_vectors).sum(axis=1)
        print(f"agreement with Chroma: min cosine {cosines.min():.6f}")
        spread = float(np.abs(ours_vectors - ours_batched).max())
        print(f"max |difference| one call vs per-batch calls: {spread:.2e}")
        print(f"speed-up over Chroma: {ours_rate / chroma_rate:.1f}x")
        if args.int8:
            compare_int8(model_dir, texts, args.batch, Path(tmp))


if __name__ == "__main__":
    main()
