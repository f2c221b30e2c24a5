"""Answer quality and latency of our pipeline vs the naive one, over the shared eval data.

    .venv/bin/python bench/eval.py [--quick] [--only financebench|rgb|tatqa|latency]
                                   [--cache DIR] [--fb-docs N] [--rgb-zh N]

FinanceBench: gold page among the retrieved passages (ours top-5, naive top-4 and top-5),
MRR, and how often our answer cites the gold page. RGB (English, Chinese): the gold
answer in our answer text; the naive pipeline has no answerer, so for it the answer in
its top-4 passages. Refusal calibration on RGB English with the positive passages
removed, with a threshold sweep. TAT-QA: the reader alone, given the gold context.
Latency of warm ``AnswerService.answer``. Honesty checks over every answer.
``--cache`` keeps every index so a second run only answers.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
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
    RGB,
    SHARED,
    TATQA,
    bench_settings,
    financebench_pdfs,
    financebench_questions,
    machine,
    model_dir,
    percentile,
    quiet_environment,
    ratio,
    table,
)
from langchain_chroma import Chroma
from langchain_core.documents import Document as LCDocument
from naive import NAIVE_K, ChromaDefaultEmbeddings, build_naive, passages, pdf_pages

from bot.extractive import default_threshold, extractive_answer
from bot.reader import load_pair, load_reader
from bot.selector import select
from bot.service import AnswerService
from bot.types import Answer, Hit
from ingest.embeddings import LocalEmbeddings
from ingest.pipeline import run_ingest
from ingest.types import IndexedChunk

SWEEP = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)  # selector probabilities, plus the calibrated one
OUR_K = 5  # Settings.top_k's default: the passages the answerer sees
TATQA_HELD_OUT = 139  # TAT-QA dev contexts not used to fit the selector
ANSWERABILITY = Path(__file__).resolve().parent / "data" / "answerability"
Row = list[object]


@dataclass
class Context:
    cache: Path
    model: Path
    quick: bool
    with_naive: bool  # False for --only latency
    embeddings: LocalEmbeddings
    _naive: ChromaDefaultEmbeddings | None = None
    rows: list[Row] = field(default_factory=list)
    latency: list[Row] = field(default_factory=list)
    answers: int = 0
    dangling: int = 0
    non_verbatim: int = 0
    skipped: int = 0  # files the ingest refused
    verbose: bool = False  # print the answerability questions answered wrongly
    kinds: list[Row] = field(default_factory=list)

    @property
    def naive_embeddings(self) -> ChromaDefaultEmbeddings:
        if self._naive is None:
            self._naive = ChromaDefaultEmbeddings(self.model, self.cache / "chroma-onnx")
        return self._naive

    def naive_index(self, name: str, docs: list[LCDocument]) -> Chroma | None:
        """The naive pipeline's index of ``docs`` under cache/name/naive (None: not wanted)."""
        if not self.with_naive:
            return None
        return build_naive(self.cache / name / "naive", docs, self.naive_embeddings)[0]

    def service(self, name: str, paths: list[Path], documents_dir: Path) -> AnswerService:
        """Our index of ``paths`` under cache/name/ours (incremental), warmed up."""
        settings = bench_settings(self.cache / name / "ours", self.model, documents_dir)
        report = run_ingest(settings, paths, embeddings=self.embeddings)
        for failure in report.failures:  # e.g. an RGB passage that is only a copyright line
            print(f"  ingest {name}: {failure.path}: {failure.reason}", file=sys.stderr)
        self.skipped += len(report.failures)
        print(f"  ours {name}: {report.summary()} in {report.seconds:.0f} s", file=sys.stderr)
        service = AnswerService(settings, embeddings=self.embeddings)
        service.warm_up()
        return service

    def check(self, answer: Answer, hits: Sequence[Hit]) -> None:
        """Honesty: every [n] has a citation of a retrieved passage, quoted verbatim."""
        self.answers += 1
        retrieved = {h.chunk_id for h in hits}
        numbers = {c.n for c in answer.citations}
        rest = answer.text
        for c in answer.citations:
            rest = rest.replace(c.quote, "", 1)
            if c.hit.chunk_id not in retrieved:
                self.dangling += 1
            if not c.quote or c.quote not in c.hit.text:
                self.non_verbatim += 1
        markers = {int(m) for m in _MARKER.findall(rest)}
        self.dangling += len(markers - numbers)

    def timed_answer(
        self, service: AnswerService, question: str, times: list[float]
    ) -> tuple[Answer, list[Hit]]:
        """The service's answer (timed, checked) and the passages it was given."""
        hits = service.retriever.search(question, k=service.settings.top_k)
        started = time.perf_counter()
        answer = service.answer(question)
        times.append((time.perf_counter() - started) * 1000)
        self.check(answer, hits)
        return answer, hits

    def add_latency(self, corpus: str, service: AnswerService, times: list[float]) -> None:
        self.latency.append(
            [
                corpus,
                service.store.count(),
                len(times),
                percentile(times, 50),
                percentile(times, 95),
            ]
        )


_MARKER = re.compile(r"\[(\d+)\]")


def _rate(flags: Sequence[bool]) -> float:
    return sum(flags) / len(flags) if flags else float("nan")


# -- FinanceBench -------------------------------------------------------------------------


def _gold_rank(found: Sequence[tuple[str, int | None]], gold: set[tuple[str, int]]) -> int:
    """1-based rank of the first (document, page) on a gold page; 0 when none is."""
    return next((i for i, key in enumerate(found, 1) if key in gold), 0)


def financebench(ctx: Context, n_docs: int | None) -> None:
    pdfs = financebench_pdfs(n_docs)
    if ctx.quick:  # the smallest filings that questions are asked about
        asked = {str(q["doc_name"]) for q in financebench_questions()}
        pdfs = sorted((p for p in pdfs if p.stem in asked), key=lambda p: p.stat().st_size)[:2]
    names = {p.stem for p in pdfs}
    questions = [q for q in financebench_questions() if q["doc_name"] in names]
    paths = [*pdfs, QINGDAO]
    name = f"financebench-{len(pdfs)}"
    service = ctx.service(name, paths, SHARED)
    naive = ctx.naive_index(name, pdf_pages(paths))
    ours_rank: list[int] = []
    naive_rank: list[int] = []
    cited: list[bool] = []
    refused: list[bool] = []
    times: list[float] = []
    for q in questions:
        text = str(q["question"])
        # evidence_page_num is 0-based (checked against the text); Hit.page is 1-based.
        gold = {(str(e["doc_name"]), int(e["evidence_page_num"]) + 1) for e in q["evidence"]}  # type: ignore[attr-defined]
        answer, hits = ctx.timed_answer(service, text, times)
        ours_rank.append(_gold_rank([(Path(h.path).stem, h.page) for h in hits], gold))
        cited.append(any((Path(c.hit.path).stem, c.hit.page) in gold for c in answer.citations))
        refused.append(answer.refused)
        if naive is not None:
            docs = naive.similarity_search(text, k=5)
            naive_rank.append(
                _gold_rank([(d.metadata["source"], d.metadata.get("page")) for d in docs], gold)
            )
    ctx.add_latency(f"FinanceBench {len(pdfs)} PDFs", service, times)
    label = f"FinanceBench ({len(questions)} q, {len(pdfs)} PDFs)"
    hit5 = _rate([0 < r <= OUR_K for r in ours_rank])
    naive4 = _rate([0 < r <= NAIVE_K for r in naive_rank])
    naive5 = _rate([0 < r <= 5 for r in naive_rank])
    mrr = sum(1 / r for r in ours_rank if r) / max(1, len(ours_rank))
    naive_mrr = (
        sum(1 / r for r in naive_rank if r) / len(naive_rank) if naive_rank else float("nan")
    )
    ctx.rows += [
        [label, "gold page in top-k (ours 5, naive 4)", hit5, naive4],
        ["", "gold page in top-5 (both)", hit5, naive5],
        ["", "MRR of first gold page (@5)", mrr, naive_mrr],
        ["", "answer cites a gold page", _rate(cited), None],
        ["", "refused", _rate(refused), None],
    ]


# -- RGB ----------------------------------------------------------------------------------


def rgb_records(name: str, limit: int | None) -> list[dict[str, Any]]:
    lines = (RGB / name).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()][:limit]


def rgb_correct(text: str, answer: object) -> bool:
    """RGB's own check: every required item appears (an item may list alternatives)."""
    text = text.lower()
    items = answer if isinstance(answer, list) else [answer]
    return bool(items) and all(
        any(str(alt).lower() in text for alt in item) if isinstance(item, list)
        else str(item).lower() in text
        for item in items
    )  # fmt: skip


def write_passages(folder: Path, texts: set[str]) -> None:
    """One .txt per passage, named by content (so re-runs find the same files)."""
    folder.mkdir(parents=True, exist_ok=True)
    for text in texts:
        path = folder / f"{hashlib.sha256(text.encode()).hexdigest()[:16]}.txt"
        if not path.exists():
            path.write_text(text, encoding="utf-8")


def _rgb_corpus(ctx: Context, name: str, texts: set[str]) -> AnswerService:
    docs = ctx.cache / name / "docs"
    write_passages(docs, texts)
    return ctx.service(name, [docs], docs)


def rgb(ctx: Context, lang: str, records: list[dict[str, Any]], sweep: bool) -> None:
    pos = {p for r in records for p in r["positive"]}
    neg = {p for r in records for p in r["negative"]}
    name = f"rgb-{lang}-{len(records)}"  # a pool per sample size: caches never mix
    service = _rgb_corpus(ctx, name, pos | neg)
    naive = ctx.naive_index(name, passages(sorted(pos | neg)))
    correct: list[bool] = []
    refused: list[bool] = []
    ours5: list[bool] = []
    naive4: list[bool] = []
    naive5: list[bool] = []
    times: list[float] = []
    hits_by_q: list[list[Hit]] = []
    for r in records:
        q, gold = r["query"], r["answer"]
        answer, hits = ctx.timed_answer(service, q, times)
        hits_by_q.append(hits)
        correct.append(rgb_correct(answer.text, gold) and not answer.refused)
        refused.append(answer.refused)
        ours5.append(rgb_correct("\n".join(h.text for h in hits), gold))
        if naive is not None:
            docs = [d.page_content for d in naive.similarity_search(q, k=5)]
            naive4.append(rgb_correct("\n".join(docs[:NAIVE_K]), gold))
            naive5.append(rgb_correct("\n".join(docs), gold))
    ctx.add_latency(f"RGB {lang}", service, times)
    ctx.rows += [
        [f"RGB {lang} ({len(records)} q)", "answer in: our answer | naive top-4 passages",
         _rate(correct), _rate(naive4)],
        ["", "answer in top-5 passages", _rate(ours5), _rate(naive5)],
        ["", "refused (answerable questions)", _rate(refused), None],
    ]  # fmt: skip
    if sweep:
        calibration(ctx, records, hits_by_q, neg - pos)


def calibration(
    ctx: Context, records: list[dict[str, Any]], hits_by_q: list[list[Hit]], negatives: set[str]
) -> None:
    """Refusals with the positive passages gone vs false refusals when they are there."""
    service = _rgb_corpus(ctx, f"rgb-en-{len(records)}-unanswerable", negatives)
    empty_hits = [service.retriever.search(r["query"], k=OUR_K) for r in records]
    rows: list[Row] = []
    default = default_threshold()
    # Each question is scored once; the sweep only moves the threshold.
    full = [select(r["query"], h, ctx.embeddings) for r, h in zip(records, hits_by_q, strict=True)]
    empty = [
        select(r["query"], h, ctx.embeddings) for r, h in zip(records, empty_hits, strict=True)
    ]
    for t in sorted({*SWEEP, default}):
        answerable = [
            extractive_answer(r["query"], h, min_evidence=t, selection=sel)
            for r, h, sel in zip(records, hits_by_q, full, strict=True)
        ]
        unanswerable = [
            extractive_answer(r["query"], h, min_evidence=t, selection=sel)
            for r, h, sel in zip(records, empty_hits, empty, strict=True)
        ]
        for answer, hits in [
            *zip(answerable, hits_by_q, strict=True),
            *zip(unanswerable, empty_hits, strict=True),
        ]:
            ctx.check(answer, hits)
        right = [
            rgb_correct(a.text, r["answer"]) and not a.refused
            for a, r in zip(answerable, records, strict=True)
        ]
        name = f"{t:.2f}{' (default)' if t == default else ''}"
        refusals = [
            _rate([a.refused for a in unanswerable]),
            _rate([a.refused for a in answerable]),
        ]
        rows.append([name, *refusals, _rate(right)])
    print("\nRefusal calibration, RGB English (extractive_answer min_evidence sweep):")
    print(
        table(
            ["threshold", "refused, unanswerable", "refused, answerable", "correct, answerable"],
            rows,
        )
    )
    chosen = next(r for r in rows if str(r[0]).endswith("(default)"))
    ctx.rows += [
        [f"RGB en, gold passages removed ({len(records)} q)", "refused (want high)", chosen[1],
         None],
        ["", "false refusals with them (want low)", chosen[2], None],
    ]  # fmt: skip


# -- TAT-QA -------------------------------------------------------------------------------


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def tatqa(ctx: Context, limit: int | None) -> None:
    # Contexts 139-277 trained the answer selector (bench/fit_selector.py): report on 0-138.
    contexts = json.loads((TATQA / "tatqa_dataset_dev.json").read_text(encoding="utf-8"))
    contexts = contexts[: min(limit or TATQA_HELD_OUT, TATQA_HELD_OUT)]
    found: dict[str, list[bool]] = {}
    for c in contexts:
        uid = c["table"]["uid"]
        table_text = "\n".join(
            " | ".join(cell for cell in row if cell.strip()) for row in c["table"]["table"]
        )
        paragraphs = [p["text"] for p in sorted(c["paragraphs"], key=lambda p: p["order"])]
        hits = [
            Hit(IndexedChunk(f"{uid}-{i}", uid, text, "tatqa", "", i, 0, len(text)), 1.0 - i / 100)
            for i, text in enumerate([table_text, *paragraphs])
        ]
        for q in c["questions"]:
            answer = extractive_answer(q["question"], hits, embedder=ctx.embeddings)
            ctx.check(answer, hits)
            gold = q["answer"] if isinstance(q["answer"], list) else [q["answer"]]
            text = _norm(answer.text)
            ok = not answer.refused and all(_norm(str(g)) in text for g in gold)
            found.setdefault(q["answer_type"], []).append(ok)
    label = f"TAT-QA reader ({len(contexts)} contexts, held out)"
    for kind in ("span", "multi-span", "count", "arithmetic"):
        note = "" if kind in ("span", "multi-span") else " (not expected: needs computing)"
        flags = found.get(kind, [])
        ctx.rows.append(
            [label, f"{kind} answer in our answer ({len(flags)} q){note}", _rate(flags), None]
        )
        label = ""


# -- the reader alone, on the held-out splits of its training sets -------------------------


def reader(ctx: Context) -> None:
    """WikiQA test (English) and CMRC 2018 trial (Chinese), never fitted or tuned on: the
    reader over each question's candidate sentences, with answering sentences cut."""
    import fit_reader
    import reader_data

    cases = [
        ("WikiQA test, every question twice: intact and cut (held out)",
         fit_reader.halves_cut(reader_data.wikiqa("test"))),
        ("CMRC 2018 trial, a quarter cut (held out)",
         reader_data.with_cuts(reader_data.cmrc_held_out())),
    ]  # fmt: skip
    for name, sets in cases:
        layer = load_reader().layer(sets[0].lang)
        row = fit_reader.row(name, layer, sets, load_pair())
        _, mean_ap, correct, refused, false_refused, _ = row
        ctx.rows += [
            [name, "MAP (intact questions)", mean_ap, None],
            ["", "answerable: correct sentence answered", correct, None],
            ["", "cut: refused", refused, None],
            ["", "answerable: refused (false refusals)", false_refused, None],
        ]


# -- answerability (our own set) ------------------------------------------------------------


def answerability(ctx: Context) -> None:
    """Right or refused, on invented releases: see bench/data/answerability/README.md."""
    docs = ANSWERABILITY / "docs"
    service = ctx.service("answerability", [docs], docs)
    lines = (ANSWERABILITY / "questions.jsonl").read_text(encoding="utf-8").splitlines()
    questions = [json.loads(line) for line in lines if line.strip()]
    times: list[float] = []
    by_kind: dict[tuple[str, str], list[bool]] = {}
    summary: dict[str, dict[str, list[bool]]] = {}
    for q in questions:
        answer, _hits = ctx.timed_answer(service, q["question"], times)
        if q["answerable"]:
            ok = not answer.refused and any(a.lower() in answer.text.lower() for a in q["answers"])
        else:
            ok = answer.refused
        if ctx.verbose and not ok:
            print(f"  MISS {q['id']} {q['question']}\n    -> {answer.text[:160]!r} {answer.notes}",
                  file=sys.stderr)  # fmt: skip
        by_kind.setdefault((q["kind"], q["split"]), []).append(ok)
        s = summary.setdefault(q["split"], {"right": [], "refused": [], "false_refusal": []})
        if q["answerable"]:
            s["right"].append(ok)
            s["false_refusal"].append(answer.refused)
        else:
            s["refused"].append(ok)
    ctx.add_latency("answerability set", service, times)
    for split, s in sorted(summary.items()):
        n = len(s["right"]) + len(s["refused"])
        label = f"Answerability {split} ({n} q)" + (" tuned on" if split == "dev" else "")
        ctx.rows += [
            [label, "answerable: correct answer", _rate(s["right"]), None],
            ["", "unanswerable: refused", _rate(s["refused"]), None],
            ["", "answerable: refused (false refusals)", _rate(s["false_refusal"]), None],
        ]
    ctx.kinds = [
        [kind, split, len(flags), _rate(flags)] for (kind, split), flags in sorted(by_kind.items())
    ]


# -- main ---------------------------------------------------------------------------------


def report(ctx: Context) -> None:
    rows = [
        [*r[:3], "—", "—"] if not isinstance(r[3], float) else [*r, ratio(float(r[2]), r[3])]  # type: ignore[arg-type]
        for r in ctx.rows
    ]
    print(f"\nmachine: {machine()}")
    print(table(["data", "metric", "ours", "naive", "ours/naive"], rows, left=2))
    if ctx.kinds:
        print("\nAnswerability set per kind (answerable kinds: correct; the others: refused):")
        print(table(["kind", "split", "questions", "rate"], ctx.kinds, left=2))
    if ctx.latency:
        print("\nLatency of warm AnswerService.answer (extractive), ms:")
        print(table(["corpus", "chunks", "questions", "p50", "p95"], ctx.latency))
    print(
        f"\nHonesty over {ctx.answers} answers: dangling citations {ctx.dangling}, "
        f"non-verbatim quotes {ctx.non_verbatim}"
    )
    if ctx.skipped:
        print(f"files our ingest refused (reasons above): {ctx.skipped}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small samples (smoke run)")
    parser.add_argument(
        "--only", choices=["financebench", "rgb", "tatqa", "latency", "answerability", "reader"]
    )
    parser.add_argument("--verbose", action="store_true", help="print answerability misses")
    parser.add_argument("--no-naive", action="store_true", help="skip the naive pipeline")
    parser.add_argument("--cache", type=Path, help="keep indexes here (default: a temp dir)")
    parser.add_argument(
        "--fb-docs", type=int, default=12, help="FinanceBench PDFs in the pool (0: all 74)"
    )
    parser.add_argument(
        "--rgb-zh", type=int, default=100, help="Chinese RGB questions (max 300; 0: none)"
    )
    args = parser.parse_args(argv)
    quiet_environment()
    with tempfile.TemporaryDirectory(prefix="eval-bench-") as tmp:
        cache = args.cache or Path(tmp)
        model = model_dir(cache)
        with_naive = args.only != "latency" and not args.no_naive
        ctx = Context(cache, model, args.quick, with_naive, LocalEmbeddings(model))
        ctx.verbose = args.verbose
        only = args.only
        if only in (None, "answerability"):
            answerability(ctx)
        if only in (None, "financebench", "latency"):
            financebench(ctx, args.fb_docs or None)
        if only in (None, "rgb", "latency"):
            en = rgb_records("en_fact.json", 20 if args.quick else None)
            rgb(ctx, "en", en, sweep=only != "latency")
            if args.rgb_zh:  # 0: English only
                zh = rgb_records("zh_refine.json", 10 if args.quick else args.rgb_zh)
                rgb(ctx, "zh", zh, sweep=False)
        if only in (None, "tatqa"):
            tatqa(ctx, 20 if args.quick else None)
        if only in (None, "reader"):
            reader(ctx)
        report(ctx)
        if ctx.dangling or ctx.non_verbatim:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
