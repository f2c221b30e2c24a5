"""How the reader's refusal threshold trades answers for refusals on product-like data.

    .venv/bin/python bench/reader_sweep.py [--cache DIR]

Our answerability set's dev half (invented releases) and RGB English with and without its
gold passages, answered through the whole pipeline: for each threshold, answerable
questions answered right and unanswerable ones refused. Development data only: the
answerability test half is not read here.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RGB, bench_settings, model_dir, quiet_environment, table
from eval import ANSWERABILITY, rgb_correct, write_passages

from bot.extractive import extractive_answer
from bot.selector import select
from bot.service import AnswerService
from ingest.embeddings import LocalEmbeddings
from ingest.pipeline import run_ingest

SWEEP = (0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5)


def service(cache: Path, model: Path, name: str, docs: Path) -> AnswerService:
    settings = bench_settings(cache / name, model, docs)
    if not (cache / name / "chroma").exists():
        run_ingest(settings)
    return AnswerService(settings)


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "reader-sweep")
    args = ap.parse_args()
    quiet_environment()
    model = model_dir(args.cache)
    cases: list[tuple[str, AnswerService, str, bool, list[str]]] = []
    svc = service(args.cache, model, "answerability", ANSWERABILITY / "docs")
    for line in (ANSWERABILITY / "questions.jsonl").read_text(encoding="utf-8").splitlines():
        q = json.loads(line)
        if q["split"] == "dev":
            cases.append(("answerability dev", svc, q["question"], q["answerable"], q["answers"]))
    records = [json.loads(x) for x in (RGB / "en_fact.json").open(encoding="utf-8")]
    pos = {p for r in records for p in r["positive"]}
    neg = {p for r in records for p in r["negative"]}
    for name, texts in (("rgb-en-all", pos | neg), ("rgb-en-negatives", neg - pos)):
        folder = args.cache / f"{name}-docs"
        if not folder.exists():
            write_passages(folder, texts)
        s = service(args.cache, model, name, folder)
        for r in records:
            cases.append((f"RGB en {name[7:]}", s, r["query"], name == "rgb-en-all", r["answer"]))
    scored = []
    for group, s, question, answerable, gold in cases:
        found = s.retriever.search_with_timings(question, s.settings.top_k)
        local = s.embeddings if isinstance(s.embeddings, LocalEmbeddings) else None
        sel = select(question, found.hits, local, question_vector=found.query_vector)
        scored.append((group, question, answerable, gold, found.hits, sel))
    rows = []
    for t in SWEEP:
        by: dict[str, list[bool]] = {}
        for group, question, answerable, gold, hits, sel in scored:
            a = extractive_answer(question, hits, min_evidence=t, selection=sel)
            if answerable:
                ok = not a.refused and (
                    rgb_correct(a.text, gold)
                    if group.startswith("RGB")
                    else any(g.lower() in a.text.lower() for g in gold)
                )
                by.setdefault(f"{group}: answerable correct", []).append(ok)
            else:
                by.setdefault(f"{group}: unanswerable refused", []).append(a.refused)
        rows.append([t, *(round(sum(v) / len(v), 3) for v in by.values())])
        header = ["threshold", *by]
    print(table(header, rows))


if __name__ == "__main__":
    main()
