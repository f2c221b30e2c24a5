"""Scale: answering, memory and the BM25 index at 1k → 100k chunks, beside the naive pipeline.

    .venv/bin/python bench/scale_bench.py [--sizes 1000,10000,36000,100000] [--work DIR]
        [--questions 20] [--before DIR]

Text is real: the FinanceBench PDFs parsed and chunked by our own loader and chunker,
then RGB (en, zh) and TAT-QA passages; sizes beyond that hold copies of the FinanceBench
chunks under new document ids (say "copy 2 of …"), so BM25's postings and Chroma's HNSW
graph have the size they would have. Embeddings are cached, not computed per size:
``--sample`` real chunks are embedded once with our model, and chunk ``i`` gets the
vector of sample ``i mod n`` plus a little Gaussian noise (σ = 0.02 per dimension, then
normalised). So latency, memory and index times are those of an index that size;
retrieval *quality* at these sizes is not measured here (bench/eval.py does that).

Per size, each in a fresh process: lexical build (tokenise every chunk), save, load, and
update by one press release; one-shot `briefing ask` cold (wall time, peak RSS), and the
same with the previous code (``--before``: a checkout of the commit before the persisted
index, e.g. ``git worktree add /tmp/before 3fb1375``); warm `ask` p50/p95 over
FinanceBench questions; adding one press release to the index until a question about it
is answered from it; and the naive pipeline's query on a collection of the same size
(Chroma default embedding of the question + similarity_search k=4, same cached vectors).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    FINANCEBENCH_PDFS,
    QINGDAO,
    RGB,
    TATQA,
    bench_settings,
    financebench_questions,
    machine,
    model_dir,
    percentile,
    quiet_environment,
    table,
)

# The local model, installed under the work folder by ``main`` (the index records its graph).
MODEL = Path("model-not-set")
QINGDAO_QUESTION = (
    "What was the total value of imports and exports in Qingdao from January to July 2020?"
)
NOISE = 0.02
# `briefing` from the code in the working directory (this checkout, or --before's).
_CLI = [sys.executable, "-c",
        "import sys; sys.path.insert(0, ''); from bot.cli import main; main()"]  # fmt: skip
Row = dict[str, Any]


# -- the corpus ------------------------------------------------------------------------------


def real_chunks(work: Path, pdfs: int) -> list[Row]:
    """Chunks of real text from the shared sets, cached in ``work/chunks.jsonl``: the first
    ``pdfs`` FinanceBench PDFs (parsing all 74 takes half an hour on a busy machine), then
    the RGB and TAT-QA passages."""
    cache = work / "chunks.jsonl"
    if cache.is_file():
        return [json.loads(line) for line in cache.read_text(encoding="utf-8").splitlines()]
    from ingest.chunking import chunk_document
    from ingest.embeddings import LocalEmbeddings
    from ingest.loaders import parse_document
    from ingest.stream import content_id

    counter = LocalEmbeddings(MODEL)
    rows: list[Row] = []
    started = time.perf_counter()
    for n, pdf in enumerate(sorted(FINANCEBENCH_PDFS.glob("*.pdf"))[:pdfs], 1):
        data = pdf.read_bytes()
        doc = parse_document(pdf, data, content_id(data), display_path=pdf.name)
        for c in chunk_document(doc, count_tokens=counter.count_tokens):
            rows.append(_row(doc.doc_id, pdf.name, doc.title, c.text, c.index, c.page, doc.date))
        print(f"  parsed {n} PDFs, {len(rows)} chunks, {time.perf_counter() - started:.0f} s",
              file=sys.stderr, flush=True)  # fmt: skip
    for name, texts in _passage_sets():
        for i, text in enumerate(texts):
            rows.append(_row(f"{name}-{i}", f"{name}/{i}.txt", f"{name} passage {i}", text, 0))
    work.mkdir(parents=True, exist_ok=True)
    cache.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    return rows


def _row(
    doc_id: str, path: str, title: str, text: str, index: int, page: int | None = None,
    date: str | None = None,
) -> Row:  # fmt: skip
    return {"doc_id": doc_id, "path": path, "title": title, "text": text, "index": index,
            "page": page, "date": date}  # fmt: skip


def _passage_sets() -> list[tuple[str, list[str]]]:
    out = []
    for name in ("en_fact", "zh_refine"):
        seen: dict[str, None] = {}
        for line in (RGB / f"{name}.json").read_text(encoding="utf-8").splitlines():
            item = json.loads(line)
            for p in [*item["positive"], *item["negative"]]:
                for text in p if isinstance(p, list) else [p]:
                    seen.setdefault(str(text))
        out.append((f"rgb-{name}", list(seen)))
    tat = json.loads((TATQA / "tatqa_dataset_dev.json").read_text(encoding="utf-8"))
    out.append(("tatqa", [p["text"] for c in tat for p in c["paragraphs"]]))
    return out


def corpus(rows: list[Row], n: int) -> list[Row]:
    """``n`` chunks: the real ones first, then copies of the FinanceBench chunks."""
    pdf_rows = [r for r in rows if r["path"].endswith(".pdf")]
    out = list(rows[:n])  # the PDFs' chunks first, then the passages
    copy = 1
    while len(out) < n:
        copy += 1
        for r in pdf_rows[: n - len(out)]:
            out.append({**r, "doc_id": f"{r['doc_id']}-copy{copy}",
                        "path": f"copy{copy}/{r['path']}",
                        "title": f"{r['title']} (copy {copy})"})  # fmt: skip
    return out


def cached_vectors(work: Path, rows: list[Row], sample: int) -> Any:
    import numpy as np

    path = work / f"sample-vectors-{sample}.npy"
    if path.is_file():
        return np.load(path)
    from ingest.chunking import embed_text
    from ingest.embeddings import LocalEmbeddings

    step = max(1, len(rows) // sample)
    texts = [embed_text(r["title"], r["text"]) for r in rows[::step][:sample]]
    started = time.perf_counter()
    vectors = LocalEmbeddings(MODEL).embed_array(texts)
    print(f"  embedded {len(texts)} sample chunks in {time.perf_counter() - started:.0f} s",
          file=sys.stderr)  # fmt: skip
    np.save(path, vectors)
    return vectors


def cached_sentence_vectors(work: Path, rows: list[Row], sample: int) -> Any:
    """Sentence vectors of the sample chunks, made as ingest makes them (one pass each)."""
    import numpy as np

    path = work / f"sample-sentence-vectors-{sample}.npy"
    if path.is_file():
        return np.load(path)
    from ingest.embeddings import LocalEmbeddings
    from ingest.sentence_vectors import pooled_sentences
    from ingest.sentences import sentence_spans

    step = max(1, len(rows) // sample)
    chosen = rows[::step][:sample]
    _, rows_out = pooled_sentences(
        LocalEmbeddings(MODEL),
        [(r["title"], r["text"]) for r in chosen],
        [sentence_spans(r["text"]) for r in chosen],
    )
    pool = np.concatenate([r[np.any(r, axis=1)] for r in rows_out])
    np.save(path, pool)
    return pool


def _sentence_meta(text: str, pool: Any, at: int, rng: Any) -> dict[str, str]:
    """Stored sentence vectors for ``text``'s own sentences, borrowed from the sample's
    pool with noise (as the chunk vectors are): real size, real decoding cost."""
    import numpy as np

    from ingest.sentence_vectors import SENTENCE_VECTORS_KEY, encode
    from ingest.sentences import sentence_spans

    spans = sentence_spans(text)
    rows = pool[np.arange(at, at + len(spans)) % len(pool)]
    rows = rows + rng.normal(0, NOISE, rows.shape).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    value = encode(spans, rows.astype(np.float32))
    return {SENTENCE_VECTORS_KEY: value} if value else {}


# -- building one index ----------------------------------------------------------------------


def build(work: Path, rows: list[Row], base_vectors: Any, n: int, sentence_pool: Any) -> Path:
    """``work/n<N>``: Chroma + manifest + lexical files for ``n`` chunks (reused if complete)."""
    import numpy as np

    from ingest.chunking import chunk_id
    from ingest.embeddings import LocalEmbeddings
    from ingest.lexical_store import LexicalFiles
    from ingest.lexical_update import update_after_ingest
    from ingest.manifest import FileRow, Manifest
    from ingest.store import open_index
    from ingest.types import Document

    data = work / f"n{n}"
    # Reused when complete; "sentence_vectors" in its facts says whether it stores them
    # (indexes built before they existed answer with the selector's slower fallback).
    if (data / "complete.json").is_file():
        return data
    shutil.rmtree(data, ignore_errors=True)
    settings = bench_settings(data, MODEL, documents_dir=work / "docs")
    store = open_index(settings, LocalEmbeddings(MODEL))
    chosen = corpus(rows, n)
    rng = np.random.default_rng(0)
    by_doc: dict[str, list[str]] = {}
    started = time.perf_counter()
    for i in range(0, n, 2000):
        part = chosen[i : i + 2000]
        vecs = base_vectors[np.arange(i, i + len(part)) % len(base_vectors)]
        vecs = vecs + rng.normal(0, NOISE, vecs.shape).astype(np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        ids = [chunk_id(r["doc_id"], i + j, i + j + 1, r["text"]) for j, r in enumerate(part)]
        metas = [
            {**_meta(r), **_sentence_meta(r["text"], sentence_pool, 7 * (i + j), rng)}
            for j, r in enumerate(part)
        ]
        store.upsert(ids, [r["text"] for r in part], metas, vecs.tolist())
        for cid, r in zip(ids, part, strict=True):
            by_doc.setdefault(r["doc_id"], []).append(cid)
    chroma_s = time.perf_counter() - started
    manifest = Manifest(settings.manifest_path)
    titles = {r["doc_id"]: r for r in chosen}
    with manifest.transaction() as db:
        for doc_id, ids in by_doc.items():
            r = titles[doc_id]
            key = str((work / "docs" / r["path"]).resolve())
            doc = Document(doc_id, r["path"], "", r["title"], "txt", date=r["date"])
            Manifest.put_doc(db, doc, ids)
            Manifest.put_file(db, FileRow(key, doc_id, 1, 1))
    manifest.close()
    store.bump_generation()
    started = time.perf_counter()
    update_after_ingest(LexicalFiles(data), store, store.generation())
    facts = {"chroma_write_s": chroma_s, "lexical_first_save_s": time.perf_counter() - started,
             "sentence_vectors": True}  # fmt: skip
    (data / "complete.json").write_text(json.dumps(facts), encoding="utf-8")
    return data


def _meta(r: Row) -> dict[str, str | int]:
    meta: dict[str, str | int] = {"doc_id": r["doc_id"], "path": r["path"], "title": r["title"],
                                  "chunk_index": r["index"], "start": 0,
                                  "end": len(r["text"]), "format": "pdf"}  # fmt: skip
    if r["page"] is not None:
        meta["page"] = r["page"]
    if r["date"]:
        meta["date"] = r["date"]
        meta["date_ord"] = int(str(r["date"]).replace("-", ""))
    return meta


# -- measurements (each in a child process) ----------------------------------------------------


def peak_rss_mb() -> float:
    """This process's peak resident memory since exec (VmHWM; ru_maxrss would include the
    parent's memory at fork)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure_lexical(data: Path) -> Row:
    from ingest.chunking import chunk_document
    from ingest.embeddings import LocalEmbeddings
    from ingest.lexical import LexicalIndex
    from ingest.lexical_store import LexicalFiles
    from ingest.loaders import parse_document
    from ingest.types import IndexedChunk

    files = LexicalFiles(data)
    t0 = time.perf_counter()
    loaded = files.load()
    load_s = time.perf_counter() - t0
    assert loaded is not None
    chunks = loaded.index.chunks
    t0 = time.perf_counter()
    LexicalIndex.build(chunks)
    build_s = time.perf_counter() - t0
    raw = QINGDAO.read_bytes()
    doc = parse_document(QINGDAO, raw, "qingdao-release")
    new = [
        IndexedChunk(c.chunk_id, doc.doc_id, c.text, "q.txt", doc.title, c.index, c.start, c.end)
        for c in chunk_document(doc, count_tokens=LocalEmbeddings(MODEL).count_tokens)
    ]
    t0 = time.perf_counter()
    updated = loaded.index.with_changes(new)
    update_s = time.perf_counter() - t0
    scratch = LexicalFiles(data / "scratch")
    shutil.rmtree(scratch.dir, ignore_errors=True)
    scratch.save(loaded.index, "a")
    t0 = time.perf_counter()
    scratch.save(updated, "b")
    save_update_s = time.perf_counter() - t0
    shutil.rmtree(data / "scratch", ignore_errors=True)
    size_mb = sum(p.stat().st_size for p in files.dir.iterdir()) / 1e6
    return {"load_s": load_s, "build_s": build_s, "update_s": update_s,
            "save_update_s": save_update_s, "files_mb": size_mb}  # fmt: skip


def measure_serving(data: Path, questions: list[str]) -> Row:
    from bot.service import AnswerService

    settings = bench_settings(data, MODEL)
    t0 = time.perf_counter()
    service = AnswerService.from_settings(settings)
    service.warm_up()
    warm_up_s = time.perf_counter() - t0
    latencies = []
    load = [load_average()]
    slowest: list[tuple[float, int, dict[str, float]]] = []
    for i, q in enumerate(questions):
        t0 = time.perf_counter()
        timings = service.answer(q).timings_ms
        latencies.append((time.perf_counter() - t0) * 1000)
        slowest.append((latencies[-1], i, timings))
    load.append(load_average())
    rss_mb = peak_rss_mb()
    # What makes the tail: the slowest answers' own steps (the service's ``timings_ms``).
    slowest.sort(key=lambda s: -s[0])
    tail = [{"ms": round(ms), "question": i,
             **{k: round(v) for k, v in t.items() if k != "total_ms" and v >= 5}}
            for ms, i, t in slowest[:3]]  # fmt: skip
    # One press release dropped into the documents folder, as the watcher would ingest it.
    # The documents folder is the one the index's files are recorded under, so the run
    # touches nothing but the new file.
    docs = data.parent / "docs"
    drop = docs / "drop" / data.name
    shutil.rmtree(drop, ignore_errors=True)
    drop.mkdir(parents=True)
    # A new document every run (a run id in its text), so the index can be reused.
    run_id = f"\n\nBench run {time.time_ns()}.\n"
    (drop / "qingdao.txt").write_text(
        QINGDAO.read_text(encoding="utf-8") + run_id, encoding="utf-8"
    )
    from ingest.pipeline import run_ingest

    drop_settings = bench_settings(data, MODEL, documents_dir=docs)
    t0 = time.perf_counter()
    run_ingest(drop_settings, [drop / "qingdao.txt"], embeddings=service.embeddings)
    ingest_s = time.perf_counter() - t0
    answer = service.answer(QINGDAO_QUESTION)
    answerable_s = time.perf_counter() - t0
    cited = [c.hit for c in answer.citations] or answer.nearest
    found = any("qingdao" in h.path for h in cited)
    return {"warm_up_s": warm_up_s, "p50_ms": percentile(latencies, 50),
            "p95_ms": percentile(latencies, 95), "serving_load": load, "slowest": tail,
            "rss_mb": rss_mb, "add_ingest_s": ingest_s,
            "add_answerable_s": answerable_s, "add_found": found,
            "add_lexical_ms": answer.timings_ms.get("lexical_index_ms", 0.0)}  # fmt: skip


def measure_naive(data: Path, questions: list[str]) -> Row:
    from langchain_chroma import Chroma
    from naive import ChromaDefaultEmbeddings

    embeddings = ChromaDefaultEmbeddings(MODEL, data.parent / "chroma-cache")
    store = Chroma("briefings", embeddings, persist_directory=str(data / "chroma"))
    store.similarity_search("warm up", k=4)
    latencies = []
    for q in questions:
        t0 = time.perf_counter()
        store.similarity_search(q, k=4)
        latencies.append((time.perf_counter() - t0) * 1000)
    return {"naive_p50_ms": percentile(latencies, 50), "naive_p95_ms": percentile(latencies, 95)}


def cold_ask(data: Path, question: str, code: Path | None) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one-shot `briefing ask` in a fresh process."""
    env = {**os.environ, "DATA_DIR": str(data), "MODEL_DIR": str(MODEL)}
    cwd = code or Path(__file__).resolve().parents[1]
    cmd = [*_CLI, "ask", question]
    # Through /usr/bin/time: a child forked from this (large) process would report this
    # process's memory as its own peak (Linux keeps the high-water mark across exec).
    t0 = time.perf_counter()
    out = subprocess.run(
        ["/usr/bin/time", "-f", "%M", *cmd], cwd=cwd, env=env, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True, check=False,
    )  # fmt: skip
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        print(f"  cold ask in {cwd} exited with {out.returncode}", file=sys.stderr)
    return wall, int(out.stderr.strip().splitlines()[-1]) / 1024


# Where a cold one-shot ask spends its time, in a fresh process of the code in ``cwd``: the
# steps `briefing ask` takes, timed one by one, then the first answer's own timings (its
# lexical_index_ms is the BM25 load and the document focus; dense_ms includes Chroma's
# first HNSW load; dedup_ms and answer_ms include loading jieba when a hit is Chinese).
_STEPS = """
import json, sys, time
t0 = time.perf_counter(); sys.path.insert(0, ""); steps = {}
def mark(name):
    global t0
    steps[name] = (time.perf_counter() - t0) * 1000; t0 = time.perf_counter()
from bot.cli import cli; mark("import_cli_ms")
from bot.settings import load_settings; settings = load_settings(); mark("settings_ms")
from bot.service import AnswerService; mark("import_service_ms")
from ingest.embeddings import make_embeddings; embeddings = make_embeddings(settings)
mark("model_session_ms")
from ingest.store import open_index; store = open_index(settings, embeddings)
mark("open_chroma_ms")
service = AnswerService(settings, embeddings=embeddings, store=store); mark("service_ms")
answer = service.answer(sys.argv[1]); mark("first_answer_ms")
steps.update({f"answer_{k}": v for k, v in answer.timings_ms.items() if k != "total_ms"})
steps["jieba_loaded"] = "jieba" in sys.modules
print(json.dumps(steps))
"""


def cold_steps(data: Path, question: str, code: Path | None) -> Row:
    """The steps of a cold one-shot ask (ms each; ``_STEPS``), run by the code in ``code``."""
    env = {**os.environ, "DATA_DIR": str(data), "MODEL_DIR": str(MODEL)}
    cwd = code or Path(__file__).resolve().parents[1]
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", _STEPS, question], cwd=cwd, env=env,
                         capture_output=True, text=True, check=False)  # fmt: skip
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        print(out.stderr[-2000:], file=sys.stderr)
        return {}
    row: Row = json.loads(out.stdout.strip().splitlines()[-1])
    return {**row, "process_wall_ms": wall * 1000}


def before_copy(data: Path) -> Path:
    """``data`` for the previous code: Chroma and the manifest hard-linked (cold asks only
    read them), the BM25 files copied, since each code keeps them in its own layout."""
    copy = data.with_name(f"{data.name}-before")
    shutil.rmtree(copy, ignore_errors=True)
    subprocess.run(["cp", "-al", str(data), str(copy)], check=True)
    shutil.rmtree(copy / "lexical")
    shutil.copytree(data / "lexical", copy / "lexical")
    return copy


def load_average() -> float:
    return os.getloadavg()[0]


def help_seconds(code: Path | None, runs: int = 3) -> float:
    """Median wall seconds of `briefing --help` in a fresh process."""
    cwd = code or Path(__file__).resolve().parents[1]
    cmd = [*_CLI, "--help"]
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, cwd=cwd, stdout=subprocess.DEVNULL, check=False)
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def child(kind: str, data: Path, questions: list[str], code: Path | None = None) -> Row:
    """One measurement in a fresh process, by this code or by the checkout ``code``."""
    script = code / "bench" / "scale_bench.py" if code else Path(__file__)
    out = subprocess.run(
        [sys.executable, str(script), "--child", kind, "--data", str(data),
         "--questions-json", json.dumps(questions)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if out.returncode != 0:
        print(out.stderr[-3000:], file=sys.stderr)
        return {}
    row: Row = json.loads(out.stdout.strip().splitlines()[-1])
    return row


def main() -> None:
    global MODEL
    quiet_environment()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,10000,36000,100000")
    parser.add_argument("--work", type=Path, default=Path("/tmp/briefing-scale"))
    parser.add_argument("--questions", type=int, default=20)
    parser.add_argument("--sample", type=int, default=512)
    parser.add_argument("--pdfs", type=int, default=12, help="FinanceBench PDFs parsed")
    parser.add_argument("--cold-rounds", type=int, default=2, help="cold asks per code")
    parser.add_argument("--before", type=Path, help="checkout of the previous code (cold ask)")
    parser.add_argument("--parts", default="lexical,cold,naive,serving",
                        help="what to measure per size (comma-separated)")  # fmt: skip
    parser.add_argument(
        "--serve-rounds",
        type=int,
        default=1,
        help="times the warm answers go through the questions",
    )
    parser.add_argument(
        "--serve-ab",
        type=int,
        default=0,
        help="with --before: this many alternating warm runs of each code",
    )
    parser.add_argument("--child", choices=["lexical", "serving", "naive"])
    parser.add_argument("--data", type=Path)
    parser.add_argument("--questions-json")
    args = parser.parse_args()
    MODEL = model_dir(args.work)
    if args.child:
        questions = json.loads(args.questions_json)
        measure = {"lexical": measure_lexical, "serving": measure_serving,
                   "naive": measure_naive}[args.child]  # fmt: skip
        result = measure(args.data) if args.child == "lexical" else measure(args.data, questions)  # type: ignore[operator]
        print(json.dumps(result))
        return

    print(f"Machine: {machine()} (2 cores shared with other work: figures are noisy)")
    subprocess.run([sys.executable, "-c", "pass"], check=False)  # warm the disk cache
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=False)
    python_s = time.perf_counter() - t0
    now_help = help_seconds(None)
    line = f"`briefing --help`: {now_help:.2f} s (bare Python start {python_s:.2f} s)"
    if args.before:
        line += f"; previous code {help_seconds(args.before):.2f} s"
    print(line, flush=True)
    rows = real_chunks(args.work, args.pdfs)
    vectors = cached_vectors(args.work, rows, args.sample)
    sentence_pool = cached_sentence_vectors(args.work, rows, args.sample)
    questions = [str(q["question"]) for q in financebench_questions()[: args.questions]]
    print(f"Corpus: {len(rows)} real chunks; vectors: {len(vectors)} embedded samples + noise")
    parts = set(args.parts.split(","))
    results, steps, ab_runs = [], [], []
    for n in [int(s) for s in args.sizes.split(",")]:
        started = time.perf_counter()
        data = build(args.work, rows, vectors, n, sentence_pool)
        facts = json.loads((data / "complete.json").read_text())
        row: Row = {"chunks": n, **facts, "build_s": time.perf_counter() - started}
        codes: list[tuple[str, Path | None, Path]] = [("cold", None, data)]
        if "cold" in parts and args.before:
            codes.append(("before_cold", args.before, before_copy(data)))
        for _, code, folder in codes if "cold" in parts else []:
            # Untimed: warms the disk cache for each code alike, and lets each bring the
            # BM25 files to its own layout (this code rewrites older files once).
            cold_ask(folder, questions[0], code)
        if "lexical" in parts:
            row |= child("lexical", data, questions)
        # Alternating rounds, best of each: the load of a shared machine swings by seconds.
        # The load average (1 min) is kept beside each best figure.
        for _ in range(args.cold_rounds if "cold" in parts else 0):
            for key, code, folder in codes:
                load = load_average()
                wall, rss = cold_ask(folder, questions[0], code)
                if wall <= row.get(f"{key}_s", wall):
                    row[f"{key}_s"], row[f"{key}_load"] = wall, load
                row[f"{key}_rss_mb"] = rss
                step = cold_steps(folder, questions[0], code)
                steps.append({"chunks": n, "code": key, "load": load, **step})
                print(json.dumps(steps[-1]), flush=True)
        if "naive" in parts:
            row |= child("naive", data, questions)
        if "serving" in parts:
            # Last: it adds a document to the index (the same file each run: it replaces it).
            asked = questions * args.serve_rounds
            for ab in range(args.serve_ab if args.before else 0):
                for key, code in (("now", None), ("before", args.before)):
                    before_load = load_average()  # the previous code's child records none
                    run = child("serving", data, asked, code)
                    loads = [before_load, load_average()]
                    keep = ("p50_ms", "p95_ms", "slowest")
                    ab_runs.append({"chunks": n, "code": key, "round": ab, "load": loads,
                                    **{k: run[k] for k in keep if k in run}})  # fmt: skip
                    print(json.dumps(ab_runs[-1]), flush=True)
            row |= child("serving", data, asked)
        results.append(row)
        print(json.dumps(row), flush=True)
    report(results)
    if steps:
        report_steps(steps)
    if ab_runs:
        print("\nWarm answering, this code and --before's alternating (ms; load average 1 min)")
        print(table(["chunks", "code", "round", "p50", "p95", "load"],
                    [[r["chunks"], r["code"], r["round"], r.get("p50_ms", float("nan")),
                      r.get("p95_ms", float("nan")),
                      " - ".join(f"{x:.1f}" for x in r["load"])]
                     for r in ab_runs]))  # fmt: skip


def report(results: list[Row]) -> None:
    def g(r: Row, k: str) -> object:
        return r.get(k, float("nan"))

    print("\nLexical index (BM25), seconds")
    print(table(["chunks", "build (tokenise all)", "load", "+1 release", "save +1", "MB"],
                [[r["chunks"], g(r, "build_s"), g(r, "load_s"), g(r, "update_s"),
                  g(r, "save_update_s"), g(r, "files_mb")] for r in results]))  # fmt: skip
    print("\nOne-shot `briefing ask` (fresh process), s / peak RSS MB / load average (1 min)")
    print(table(["chunks", "cold s", "RSS MB", "load", "before s", "before RSS MB", "load"],
                [[r["chunks"], g(r, "cold_s"), g(r, "cold_rss_mb"), g(r, "cold_load"),
                  g(r, "before_cold_s"), g(r, "before_cold_rss_mb"), g(r, "before_cold_load")]
                 for r in results]))  # fmt: skip
    print("\nWarm answering (ms) beside the naive pipeline's query; peak RSS of the bot process")
    print(table(["chunks", "p50", "p95", "naive p50", "naive p95", "RSS MB"],
                [[r["chunks"], g(r, "p50_ms"), g(r, "p95_ms"), g(r, "naive_p50_ms"),
                  g(r, "naive_p95_ms"), g(r, "rss_mb")] for r in results]))  # fmt: skip
    print("\nOne press release added to a warm bot's index")
    print(table(["chunks", "ingest s", "to answerable s", "lexical refresh ms", "answered from it"],
                [[r["chunks"], g(r, "add_ingest_s"), g(r, "add_answerable_s"),
                  g(r, "add_lexical_ms"), g(r, "add_found")] for r in results]))  # fmt: skip


def report_steps(steps: list[Row]) -> None:
    """The cold ask's steps, one column per run (ms), in the order they happen."""
    keys = [k for k in steps[0] if k not in ("chunks", "code")]
    for s in steps[1:]:
        keys += [k for k in s if k not in keys and k not in ("chunks", "code")]
    print("\nCold one-shot ask, step by step (ms; a fresh process each; `load` = load average)")
    heads = [f"{s['code']} {s['chunks']}" for s in steps]
    print(table(["step", *heads], [[k, *(s.get(k, float("nan")) for s in steps)] for k in keys]))


if __name__ == "__main__":
    main()
