"""Helpers shared by the benchmarks: data paths, settings, the model, tables, percentiles."""

from __future__ import annotations

import json
import math
import os
import platform
import sys
from collections import Counter
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
FINANCEBENCH = SHARED / "eval" / "financebench"
FINANCEBENCH_PDFS = FINANCEBENCH / "pdfs"
RGB = SHARED / "eval" / "rgb"
TATQA = SHARED / "eval" / "tatqa"
QINGDAO = SHARED / "corpus" / "qingdao-dual-circulation-2020-09-04.txt"

if str(ROOT) not in sys.path:  # run as `python bench/x.py` from anywhere
    sys.path.insert(0, str(ROOT))

if TYPE_CHECKING:
    from bot.settings import Settings


def quiet_environment() -> None:
    """No telemetry, no hub look-ups: the benchmarks run offline."""
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


def model_dir(cache: Path) -> Path:
    """The local all-MiniLM-L6-v2 model under ``cache`` (provisioned offline once)."""
    from ingest.onnx_export import install_model

    return install_model(cache / "model" / "all-MiniLM-L6-v2")


def bench_settings(
    data_dir: Path, model: Path, documents_dir: Path | None = None, **overrides: object
) -> Settings:
    """Settings for a benchmark run: never reads a developer's .env or environment."""
    from bot.settings import Settings

    values: dict[str, object] = {"data_dir": data_dir, "model_dir": model}
    if documents_dir is not None:
        values["documents_dir"] = documents_dir
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


def financebench_questions() -> list[dict[str, object]]:
    """The FinanceBench questions whose PDF is present (129 of 150)."""
    path = FINANCEBENCH / "financebench_open_source.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return [r for r in rows if (FINANCEBENCH_PDFS / f"{r['doc_name']}.pdf").is_file()]


def financebench_pdfs(limit: int | None = None) -> list[Path]:
    """The FinanceBench PDFs, most-asked-about first (then by name), the first ``limit``.

    Embedding is the cost of every run; the most-cited filings give the most questions
    per embedded chunk when the pool has to be smaller than all 74.
    """
    asked = Counter(str(q["doc_name"]) for q in financebench_questions())
    pdfs = sorted(FINANCEBENCH_PDFS.glob("*.pdf"), key=lambda p: (-asked[p.stem], p.name))
    return pdfs[:limit] if limit else pdfs


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0–100) by the nearest-rank method; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b and not math.isnan(b) else "—"  # nan: baseline not run


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], *, left: int = 1) -> str:
    """A plain, aligned text table: the first ``left`` columns left-aligned, the rest right."""
    cells = [[str(h) for h in headers], *[[_fmt(v) for v in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        parts = [
            c.ljust(w) if i < left else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule, *(line(r) for r in cells[1:])])


def _fmt(value: object) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "—"
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def machine() -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan
    return (
        f"{date.today().isoformat()}, {os.cpu_count()} cores, {platform.machine()}, "
        f"Python {platform.python_version()}, load average {load:.1f}"
    )
