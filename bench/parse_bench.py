"""Parsing a big HTML page: ``ingest.loaders.parse_document`` (lxml, walked with a stack)
against the two bs4 parsers before it, in the same run, each in a fresh process.

    .venv/bin/python bench/parse_bench.py [--sizes 0.5 1 2 8 30] [--quadratic-max 2]

Each size is a generated release: one <article> of N MB of paragraphs with a <br> in every
tenth, the shape of a long report exported to HTML. Every parser must give the same text.
Prints, per size, seconds and peak RSS (MB) of the whole ``parse_document``: lxml now;
"bs4", bs4's tree with markers inside each tag (994c4f6); "quadratic", bs4 with
``insert_before``/``replace_with``, which look each tag up among its siblings (up to
a5a8feb; skipped above ``--quadratic-max`` MB: at 30 MB it ran over ten minutes).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, machine, table

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


# One size in a fresh process: {"seconds", "rss" (peak MB), "text"} of "current", or of one
# of the bs4 parsers it replaced: "bs4" (markers inside each tag, 994c4f6) or
# "bs4-quadratic" (``insert_before``/``replace_with``, up to a5a8feb).
_CHILD = r"""
import json, re, resource, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[3])
from bs4 import BeautifulSoup, NavigableString
import ingest.html_text as H
import ingest.loaders as L

def bs4_text(root, quadratic):
    for tag in root.find_all(H._BLOCK_TAGS):
        if quadratic:
            tag.insert_before(NavigableString(H._PARA))
        else:
            tag.insert(0, NavigableString(H._PARA))
        tag.append(NavigableString(H._PARA))
    for br in root.find_all("br"):
        if quadratic:
            br.replace_with(NavigableString(H._LINE))
        else:
            br.append(NavigableString(H._LINE))
    for cell in root.find_all(["td", "th"]):
        cell.append(NavigableString(" "))
    text = H._HTML_SPACE_RE.sub(" ", root.get_text())
    text = re.sub(rf" *{H._PARA}[ {H._PARA}{H._LINE}]*", "\n\n", text)
    return re.sub(rf" *{H._LINE} *", "\n", text)

def bs4_extract(data, quadratic):
    soup = BeautifulSoup(data, "lxml")
    title = soup.find("title")
    for tag in soup.find_all(H._DROP_TAGS):
        tag.decompose()
    root = soup.find("article") or soup.find("main") or soup.body or soup
    return L._Extracted(
        pages=[bs4_text(root, quadratic)], title=title.get_text(" ", strip=True) if title else None
    )

which = sys.argv[2]
if which != "current":
    L._EXTRACTORS["html"] = lambda data: bs4_extract(data, which == "bs4-quadratic")
path = Path(sys.argv[1])
data = path.read_bytes()
started = time.perf_counter()
doc = L.parse_document(path, data, "bench", display_path=path.name)
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
    parser.add_argument("--sizes", type=float, nargs="+", default=[0.5, 1, 2, 8])
    parser.add_argument("--quadratic-max", type=float, default=2.0)
    parser.add_argument("--bs4-max", type=float, default=30.0)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for mb in args.sizes:
            path = Path(tmp) / f"report-{mb}.html"
            path.write_text(page(mb), encoding="utf-8")
            now = run(path, "current")
            row: list[object] = [f"{mb:g} MB", len(str(now["text"])), now["seconds"], now["rss"]]
            for which, limit in (("bs4", args.bs4_max), ("bs4-quadratic", args.quadratic_max)):
                if mb > limit:
                    row += ["—", "—"]
                    continue
                before = run(path, which)
                if before["text"] != now["text"]:
                    sys.exit(f"{mb} MB: {which} gives another text")
                row += [before["seconds"], before["rss"]]
            rows.append(row)
    print(
        table(
            [
                "page",
                "text chars",
                "lxml s",
                "lxml MB",
                "bs4 s",
                "bs4 MB",
                "quadratic s",
                "quadratic MB",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
