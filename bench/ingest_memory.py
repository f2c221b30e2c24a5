"""Peak memory and time of an ingest, by EMBED_BATCH_SIZE and STREAM_FILE_MB (issue 18:
bounded memory).

Each run is a fresh process (``ru_maxrss`` is a process's peak) ingesting into a fresh data
folder: a corpus of small notes, and optionally one big text file of ``--big-mb``
megabytes made of those notes' paragraphs. ``--stream-mb 8,1000`` compares a big file read
in sections (over 8 MB) with the same file read whole (the baseline, in the same run).

    python bench/ingest_memory.py --files 120 --big-mb 1 --batches 64,16 --rounds 2
    python bench/ingest_memory.py --files 10 --big-mb 5 --stream-mb 1,1000 --rounds 1
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_RUN = """
import json, resource, sys, time
from pathlib import Path
sys.path.insert(0, {root!r})
from bot.settings import Settings
from ingest.pipeline import run_ingest
settings = Settings(_env_file=None, data_dir=Path({data!r}), documents_dir=Path({docs!r}),
                    embed_batch_size={batch}, stream_file_mb={stream})
started = time.perf_counter()
report = run_ingest(settings)
print(json.dumps({{"chunks": report.embedded_chunks, "s": time.perf_counter() - started,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def write_notes(folder: Path, files: int, big_mb: float) -> None:
    rng = random.Random(18)
    topics = ["port", "rail", "energy", "water", "housing", "tourism", "farming", "customs"]
    paragraphs = []
    for i in range(files):
        topic = topics[i % len(topics)]
        body = [
            f"District {i} {topic} report, part {p}: output rose to {rng.randint(10, 999)}.{p} "
            f"million yuan as the {topic} programme expanded, officials said."
            for p in range(6)
        ]
        paragraphs += body
        (folder / f"note-{i:04}.txt").write_text(
            f"{topic.title()} note {i}\n\n" + "\n\n".join(body)
        )
    if big_mb > 0:
        out, size = ["Big report"], 0
        while size < big_mb * 1_000_000:
            out.append(rng.choice(paragraphs))
            size += len(out[-1]) + 2
        (folder / "big.txt").write_text("\n\n".join(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=120)
    parser.add_argument("--big-mb", type=float, default=0.0)
    parser.add_argument("--batches", default="64,16")
    parser.add_argument("--stream-mb", default="8", help="STREAM_FILE_MB values to compare")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        docs = Path(tmp) / "docs"
        docs.mkdir()
        write_notes(docs, args.files, args.big_mb)
        for round_ in range(args.rounds):
            for batch in (int(b) for b in args.batches.split(",")):
                for stream in (float(m) for m in args.stream_mb.split(",")):
                    data = Path(tmp) / f"data-{batch}-{stream}"
                    shutil.rmtree(data, ignore_errors=True)
                    code = _RUN.format(
                        root=str(ROOT), data=str(data), docs=str(docs), batch=batch, stream=stream
                    )
                    done = subprocess.run(
                        [sys.executable, "-c", code], capture_output=True, text=True, check=True
                    )
                    result = json.loads(done.stdout.strip().splitlines()[-1])
                    how = "sections" if args.big_mb > stream else "whole"
                    print(
                        f"round {round_ + 1} EMBED_BATCH_SIZE={batch:<3} STREAM_FILE_MB={stream:g}"
                        f" ({how:>8}) chunks {result['chunks']:>6}  {result['s']:7.1f} s"
                        f"  peak RSS {result['rss_mb']:6.0f} MB",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
