"""Parsing a big HTML page: ``ingest.loaders.parse_document`` against the block marking it
replaced (``insert_before``/``replace_with``, which look each tag up among its siblings).

    .venv/bin/python bench/parse_bench.py [--sizes 0.5 1 2 4] [--baseline-max 2]

Each size is a generated release: one <article> of N MB of paragraphs with a <br> in every
tenth, the shape of a long report exported to HTML. Both ways must give the same text; the
baseline is skipped above ``--baseline-max`` MB (it is quadratic: hours at 30 MB). Prints
seconds and peak RSS of the current parser per size (each in a fresh process).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import machine, ratio, table  # noqa: E402

PARA = (
    "<p>The city government said on Monday that foreign trade in the first half rose 3.1 "
    "percent to 9.4 billion crowns, with exports of machinery leading the gains.</p>\n"
)
BROKEN = "<p>Imports of energy fell<br>while imports of food rose.</p>\n"


def page(mb: float) -> str:
    blocks = []
    size = 0
    i = 0
    while size < mb * 1e6:
        block = BROKEN if i % 10 == 9 else PARA
        blocks.append(block)
        size += len(block)
        i += 1
    body = "".join(blocks)
    return (
        f"<html><head><title>Big report</title></head><body><article>{body}</article></body></html>"
    )


# One size in a fresh process: (seconds, peak RSS MB, text) for "current" or "baseline".
_CHILD = r"""
import json, resource, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[3])
from bs4 import NavigableString
import ingest.loaders as loaders

def baseline_html_text(root):
    for tag in root.find_all(loaders._BLOCK_TAGS):
        tag.insert_before(NavigableString(loaders._PARA))
        tag.append(NavigableString(loaders._PARA))
    for br in root.find_all("br"):
        br.replace_with(NavigableString(loaders._LINE))
    for cell in root.find_all(["td", "th"]):
        cell.append(NavigableString(" "))
    text = loaders._HTML_SPACE_RE.sub(" ", root.get_text())
    text = loaders.re.sub(rf" *{loaders._PARA}[ {loaders._PARA}{loaders._LINE}]*", "\n\n", text)
    return loaders.re.sub(rf" *{loaders._LINE} *", "\n", text)

if sys.argv[2] == "baseline":
    loaders._html_text = baseline_html_text
path = Path(sys.argv[1])
data = path.read_bytes()
started = time.perf_counter()
doc = loaders.parse_document(path, data, "bench", display_path=path.name)
seconds = time.perf_counter() - started
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "rss": rss, "text": doc.text}))
"""


def run(path: Path, which: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path), which, str(ROOT)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, object] = json.loads(out)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[0.5, 1, 2, 4])
    parser.add_argument("--baseline-max", type=float, default=2.0)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for mb in args.sizes:
            path = Path(tmp) / f"report-{mb}.html"
            path.write_text(page(mb), encoding="utf-8")
            now = run(path, "current")
            before = run(path, "baseline") if mb <= args.baseline_max else None
            if before is not None and before["text"] != now["text"]:
                sys.exit(f"{mb} MB: the two ways give different text")
            chars = len(str(now["text"]))
            rows.append([
                f"{mb:g} MB", chars, now["seconds"], now["rss"],
                before["seconds"] if before else "—",
                ratio(float(str(before["seconds"])), float(str(now["seconds"]))) if before else "—",
            ])  # fmt: skip
    print(table(["page", "text chars", "parse s", "peak RSS MB", "baseline s", "speed-up"], rows))


if __name__ == "__main__":
    main()
