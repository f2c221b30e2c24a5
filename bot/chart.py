"""A trend as a PNG a phone shows well: matplotlib's Agg canvas, about 1000×600 pixels.

One panel per series (single periods first, the year-to-date spans beside them), the
title the topic as asked, the unit on the value axis, the period labels under the points,
each point numbered as its source line is, and a revised point ringed with the older
release's value drawn as a cross. Every label is set in Noto Sans CJK SC (the
``noto-cjk-sans-otc`` package ships it), which has Latin and Chinese glyphs, so no
character falls back to a box. No pyplot: figures are made and drawn without global state,
so answer threads may draw at once.
"""

from __future__ import annotations

import io
import threading
from importlib.resources import files
from pathlib import Path

from matplotlib import font_manager
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.ticker import FuncFormatter

from bot.trend import Series, Trend
from bot.trend_text import strip_trend_words
from ingest.vocabulary import CJK_RE

FONT_FAMILY = "Noto Sans CJK SC"
FONT_FACE = 2  # the SC face of the collection (JP, KR, SC, TC, HK, then the Mono faces)
WIDTH_IN, HEIGHT_IN, DPI = 10.0, 6.0, 100  # 1000 × 600 px
MAX_PANELS = 3
LINE, REVISED, EARLIER = "#1f5f99", "#c0392b", "#7f8c8d"
_KIND_NAMES = {
    "year": ("annual", "年度"), "half": ("half-yearly", "半年度"), "quarter": ("quarterly", "季度"),
    "month": ("monthly", "月度"), "ytd": ("year to date (cumulative)", "累计"),
    "span": ("other spans", "其他时段"),
}  # fmt: skip
_LEGEND = {
    "revised": ("revised: newest release shown", "已修正：取最新发布"),
    "earlier": ("earlier release", "较早发布值"),
}
_FOOTER = ("Numbers are the sources listed with the chart.", "编号对应图表下方所列来源。")
_lock = threading.Lock()
_ready = False


def font_path() -> Path:
    """The Noto Sans CJK collection the ``noto-cjk-sans-otc`` package installs."""
    return Path(str(files("noto_cjk_sans_otc").joinpath("NotoSansCJK-Regular.ttc")))


def _font(size: float) -> FontProperties:
    global _ready
    with _lock:
        if not _ready:
            font_manager.fontManager.addfont(font_path())  # every face of the collection
            _ready = True
    return FontProperties(family=FONT_FAMILY, size=size)


def _value(v: float) -> str:
    return f"{v:,.2f}".rstrip("0").rstrip(".")


def chart_title(trend: Trend) -> str:
    return strip_trend_words(trend.topic) or f"{trend.entity} {trend.measure}"


def _panel(ax: object, trend: Trend, series: Series, zh: bool) -> None:
    from matplotlib.axes import Axes

    assert isinstance(ax, Axes)
    small, normal = _font(9), _font(10.5)
    xs = list(range(len(series.points)))
    ys = [p.value for p in series.points]
    ax.plot(xs, ys, "-o", color=LINE, linewidth=2, markersize=6, gid="series")
    revised = [(x, p) for x, p in zip(xs, series.points, strict=True) if p.revised]
    if revised:
        ax.scatter(
            [x for x, _ in revised], [p.value for _, p in revised], s=180, facecolors="none",
            edgecolors=REVISED, linewidths=2, zorder=3, label=_LEGEND["revised"][zh],
            gid="revised",
        )  # fmt: skip
        older = [
            (x, float(o.amount / series.unit.multiplier)) for x, p in revised for o in p.earlier
        ]
        ax.scatter(
            [x for x, _ in older], [y for _, y in older], marker="x", color=EARLIER, s=50,
            zorder=3, label=_LEGEND["earlier"][zh], gid="earlier",
        )  # fmt: skip
        ax.legend(prop=small, loc="best", frameon=False)
    for x, p in zip(xs, series.points, strict=True):
        ax.annotate(
            str(trend.number(p.statement)), (x, p.value), xytext=(0, 11),
            textcoords="offset points", ha="center", va="bottom", fontproperties=small,
            bbox={"boxstyle": "circle,pad=0.25", "fc": "white", "ec": LINE, "lw": 1},
            gid="number",
        )  # fmt: skip
    labels = [p.label for p in series.points]
    long_labels = len(xs) > 6 or max(len(label) for label in labels) > 9
    ax.set_xticks(xs, labels, fontproperties=small, rotation=20 if long_labels else 0)
    ax.set_xlim(-0.5, len(xs) - 0.5)
    ax.set_ylabel(series.unit.label(), fontproperties=normal)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: _value(v)))
    for label in ax.get_yticklabels():
        label.set_fontproperties(small)
    low, high = min(ys), max(ys)
    pad = (high - low) * 0.25 or abs(high) * 0.1 or 1.0
    ax.set_ylim(low - pad, high + pad)
    ax.set_title(_KIND_NAMES[series.kind][zh], fontproperties=normal, loc="left")
    ax.grid(alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)


def draw_chart(trend: Trend) -> Figure:
    """The figure of ``trend``'s series (at most ``MAX_PANELS``); tests read its data."""
    zh = bool(CJK_RE.search(trend.topic))
    shown = trend.series[:MAX_PANELS]
    fig = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI)
    FigureCanvasAgg(fig)
    fig.suptitle(chart_title(trend), fontproperties=_font(15))
    axes = fig.subplots(max(1, len(shown)), 1, squeeze=False)[:, 0]
    # Fixed margins: matplotlib's constrained layout cost ~40% of the drawing time.
    fig.subplots_adjust(left=0.085, right=0.985, top=0.89, bottom=0.15, hspace=0.62)
    for ax, series in zip(axes, shown, strict=False):
        _panel(ax, trend, series, zh)
    fig.text(0.5, 0.012, _FOOTER[zh], ha="center", fontproperties=_font(8.5), color=EARLIER)
    return fig


def render_png(trend: Trend) -> bytes:
    """``trend`` as PNG bytes (``WIDTH_IN`` × ``HEIGHT_IN`` inches at ``DPI``)."""
    fig = draw_chart(trend)
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=DPI)
    return out.getvalue()
