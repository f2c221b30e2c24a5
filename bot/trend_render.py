"""Renderings of a Trend: JSON (``briefing trend --json``), plain text (the CLI), and the
Telegram caption and numbered source lines. Pure functions."""

from __future__ import annotations

from typing import Any

from bot.formatting import esc, source_line
from bot.trend import MIN_POINTS, Point, Series, Statement, Trend

KIND_NAMES = {
    "year": "annual", "half": "half-yearly", "quarter": "quarterly", "month": "monthly",
    "ytd": "year to date (cumulative)", "span": "other spans",
}  # fmt: skip
CAPTION_LIMIT = 1024  # Telegram's limit for a photo caption


def _num(v: float) -> str:
    return f"{v:,.4f}".rstrip("0").rstrip(".")


def _citation(s: Statement) -> dict[str, Any]:
    return {"path": s.hit.path, "title": s.hit.title, "date": s.hit.date, "quote": s.quote}


def trend_json(trend: Trend) -> dict[str, Any]:
    """The documented shape: topic, series (entity, measure, unit, points), notes."""
    return {
        "topic": trend.topic,
        "series": [
            {
                "entity": s.entity,
                "measure": s.measure,
                "unit": s.unit.label(),
                "points": [
                    {"period": p.label, "value": p.value, "citation": _citation(p.statement)}
                    for p in s.points
                ],
            }
            for s in trend.series
        ],
        "notes": trend.notes,
    }


def _earlier(trend: Trend, series: Series, p: Point) -> str:
    olds = ", ".join(
        f"{_num(float(o.amount / series.unit.multiplier))} [{trend.number(o)}]" for o in p.earlier
    )
    return f"  revised (earlier {olds})" if olds else ""


def headline(trend: Trend) -> str:
    """One line saying what was found: the series, or plainly that there is none."""
    name = f"{trend.entity} {trend.measure}"
    if trend.charted:
        n = sum(len(s.points) for s in trend.series)
        return f"{name}: {len(trend.series)} series, {n} points, every point cited"
    if trend.series:
        s = trend.series[0]
        p = s.points[0]
        return (
            f"{name}: only one figure found, so there is no series to chart — "
            f"{p.label}: {_num(p.value)} {s.unit.label()} [{trend.number(p.statement)}]"
        )
    return f"{name}: no figure found in the documents, so there is no series"


def format_trend(trend: Trend) -> str:
    """The CLI's text: each series point by point with [n], then sources, then notes."""
    lines = [headline(trend), ""]
    for s in trend.series if trend.charted else []:
        lines.append(f"{KIND_NAMES[s.kind].capitalize()}, {s.unit.label()}:")
        width = max(len(p.label) for p in s.points)
        for p in s.points:
            n = trend.number(p.statement)
            lines.append(f"  {p.label:<{width}}  {_num(p.value):>12}  [{n}]{_earlier(trend, s, p)}")
        lines.append("")
    if trend.sources:
        lines.append("Sources:")
        for i, st in enumerate(trend.sources, 1):
            lines.append(source_line(st.hit, i))
            lines.append(f'    "{st.quote}"')
    for note in trend.notes:
        lines.append(f"(note: {note})")
    return "\n".join(lines).rstrip()


def caption_html(trend: Trend) -> str:
    """The photo's caption: the title, one line per series, where the sources are."""
    lines = [f"<b>{esc(trend.entity)} — {esc(trend.measure)}</b>"]
    for s in trend.series:
        first, last = s.points[0], s.points[-1]
        span = (
            f"{first.label} {_num(first.value)} → {last.label} {_num(last.value)}"
            if len(s.points) >= MIN_POINTS
            else f"{first.label} {_num(first.value)}"
        )
        revised = sum(p.revised for p in s.points)
        extra = f", {revised} revised" if revised else ""
        lines.append(
            esc(f"{KIND_NAMES[s.kind]} ({s.unit.label()}): {span}; {len(s.points)} points{extra}")
        )
    lines.append("<i>Numbered sources follow; each number matches the chart.</i>")
    text = "\n".join(lines)
    return text if len(text) <= CAPTION_LIMIT else "\n".join([lines[0], lines[-1]])


def sources_html(trend: Trend) -> str:
    """The numbered sources, each with its verbatim sentence, then the notes."""
    blocks = [f"<b>{esc(headline(trend))}</b>"] if not trend.charted else []
    if trend.sources:
        lines = ["<b>Sources</b>"]
        for i, st in enumerate(trend.sources, 1):
            lines.append(source_line(st.hit, i, html=True))
            lines.append(f"<blockquote><i>{esc(st.quote)}</i></blockquote>")
        blocks.append("\n".join(lines))
    if trend.notes:
        blocks.append("\n".join(f"<i>{esc(n)}</i>" for n in trend.notes))
    return "\n\n".join(blocks)
