"""Figures over time: every cited statement of one measure for one entity, as series.

``find_trend(lexical, topic)`` reads the topic (entity and measure, ``bot.trend_read``),
takes the chunks whose terms name both from the BM25 index's postings (the whole index,
not a top k: a series wants every release), and reads from each the statements of the
measure (``bot.trend_read.statements``: amount, unit, period, release, verbatim sentence).

Rules. Another entity's figures never enter: the clause, else the sentence, else the
document title must name the entity and no other. Percentages ("up 5.2%", 同比增长) are
changes, not the measure. Units of another family (US dollars beside yuan) and cumulative
spans (January–July) beside single periods (Q2) go to separate series; Q1 and H1, which
are both, join either. For one period, the newest release wins; an earlier different
value is kept as the point's revision and noted. A series needs two points: a lone point
beside a series is set aside with a note; when no series has two, the single cited figure
is offered as such.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

import numpy as np

from bot.constraints import Entity
from bot.lexical import LexicalIndex
from bot.periods import Period
from bot.trend_read import Memo, Statement, TopicError, statements, topic_parts
from bot.trend_text import (
    Measure,
    Unit,
    is_trend_question,  # the routing test, for the CLI and the bot
    period_kind,
    period_label,
    recent_years,
)
from bot.types import Hit
from bot.untrusted import set_aside, set_aside_note

__all__ = ["Point", "Series", "Statement", "TopicError", "Trend", "build_trend", "find_trend",
           "is_trend_question", "statements", "topic_parts"]  # fmt: skip

# Chunks read at most for one trend (the newest first): a measure a city reports monthly
# for a decade is ~120 releases, a few chunks each.
MAX_CHUNKS = 3000
MIN_POINTS = 2  # a series is two comparable points or more
_KIND_ORDER = {"year": 0, "half": 1, "quarter": 2, "month": 3, "ytd": 4, "span": 5}


@dataclass(slots=True)
class Point:
    statement: Statement  # the newest release's
    value: float  # in the series' unit
    earlier: list[Statement] = field(default_factory=list)  # older releases, other values
    also: list[Statement] = field(default_factory=list)  # other values in the same release
    cumulative: bool = False  # in a year-to-date series: Q1 is written 2024-01..2024-03

    @property
    def label(self) -> str:
        return period_label(self.statement.period, cumulative=self.cumulative)

    @property
    def revised(self) -> bool:
        return bool(self.earlier)


@dataclass(slots=True)
class Series:
    entity: str
    measure: str
    unit: Unit
    kind: str  # "quarter", "ytd", ... (``bot.trend_text.period_kind``)
    points: list[Point]


@dataclass(slots=True)
class Trend:
    topic: str
    entity: str
    measure: str
    series: list[Series] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    sources: list[Statement] = field(default_factory=list)  # numbered 1.. in this order

    def number(self, s: Statement) -> int:
        """The source number of ``s`` (what the chart and the source lines show)."""
        return next(i for i, t in enumerate(self.sources, 1) if t is s)

    @property
    def charted(self) -> bool:
        return any(len(s.points) >= MIN_POINTS for s in self.series)


# --- from statements to series -------------------------------------------------------------


def _period_key(p: Period) -> tuple[int, int, int]:
    return (p.year or 0, p.first, p.last)


def _groups(found: Sequence[Statement]) -> dict[tuple[str, str], list[Statement]]:
    """Comparable statements: one unit family and one kind of period. Q1 and H1 are spans
    from January too, so they also join a year-to-date group of their unit."""
    groups: dict[tuple[str, str], list[Statement]] = {}
    for s in found:
        groups.setdefault((s.unit.family, period_kind(s.period)), []).append(s)
    for (family, kind), members in list(groups.items()):
        if kind in ("quarter", "half") and (family, "ytd") in groups:
            groups[(family, "ytd")] += [s for s in members if s.period.first == 1]
    return groups


def _newest_first(members: Iterable[Statement]) -> list[Statement]:
    return sorted(members, key=lambda s: (s.date, s.hit.chunk_id), reverse=True)


def _series(entity: str, measure: str, kind: str, members: list[Statement]) -> Series:
    by_period: dict[tuple[int, int, int], list[Statement]] = {}
    for s in _newest_first(members):
        by_period.setdefault(_period_key(s.period), []).append(s)
    newest = [group[0] for group in by_period.values()]
    # The unit the releases write most (亿元 over 万元), then values in it.
    shown, _ = Counter((s.unit.scale, s.unit.base) for s in newest).most_common(1)[0]
    unit = Unit(newest[0].unit.family, *shown)
    points = []
    for key in sorted(by_period):
        group = by_period[key]
        # One release stating two values ("tops 6 trillion" in its title, 6.05 trillion in its
        # text) revises nothing: its most precise figure is kept, the other noted.
        same = [s for s in group if s.date == group[0].date]
        first = max(same, key=_precision)
        also = _distinct(s for s in same if s.amount != first.amount)
        earlier = [s for s in group if s.date != first.date and s.amount != first.amount]
        value = float(first.amount / unit.multiplier)
        points.append(Point(first, value, _distinct(earlier), also, cumulative=kind == "ytd"))
    return Series(entity, measure, unit, kind, points)


def _precision(s: Statement) -> int:
    """Significant digits of the figure as written: 6.05 (3) over "6 trillion" (1)."""
    return len(re.sub(r"\D", "", s.figure.split()[0]).strip("0"))


def _distinct(found: Iterable[Statement]) -> list[Statement]:
    seen: set[tuple[str, Decimal]] = set()
    out = []
    for s in found:
        if (s.hit.doc_id, s.amount) not in seen:
            seen.add((s.hit.doc_id, s.amount))
            out.append(s)
    return out


def _fmt(value: float) -> str:
    return f"{value:,.4f}".rstrip("0").rstrip(".")


def _release(s: Statement) -> str:
    return f"{s.hit.title or s.hit.path}" + (f", {s.hit.date}" if s.hit.date else "")


def build_trend(topic: str, entity: Entity, measure: Measure, found: Sequence[Statement]) -> Trend:
    """The series of ``found``, their notes and numbered sources (pure)."""
    trend = Trend(topic, entity.text, measure.name)
    groups = _groups(_distinct(found))
    all_series = [_series(entity.text, measure.name, kind, m) for (_, kind), m in groups.items()]
    # Single periods first (quarters, years), then the year-to-date spans beside them.
    all_series.sort(
        key=lambda s: (
            s.kind in ("ytd", "span"),
            -len(s.points),
            _KIND_ORDER[s.kind],
            s.unit.family,
        )
    )
    charted = [s for s in all_series if len(s.points) >= MIN_POINTS]
    lone = [s for s in all_series if len(s.points) < MIN_POINTS]
    in_charted = {id(p.statement) for s in charted for p in s.points}
    if charted:
        trend.series = charted
        for s in lone:
            p = s.points[0]
            if id(p.statement) not in in_charted:
                trend.notes.append(
                    f"set aside: {p.label} {_fmt(p.value)} {s.unit.label()} "
                    f"({_release(p.statement)}) — no other {s.kind} figure "
                    f"in {s.unit.label()} to compare it with"
                )
    elif lone:
        newest = max(
            lone,
            key=lambda s: (s.points[0].statement.date, _period_key(s.points[0].statement.period)),
        )
        trend.series = [newest]
        p = newest.points[0]
        trend.notes.append(
            f"only one figure of {measure.name} for {entity.text} found, so no series: "
            f"{p.label} {_fmt(p.value)} {newest.unit.label()}"
        )
    else:
        trend.notes.append(f"no figure of {measure.name} for {entity.text} found in the documents")
    for s in trend.series:
        for p in s.points:
            for old in p.earlier:
                trend.notes.append(
                    f"revised: {p.label} {_fmt(p.value)} {s.unit.label()} "
                    f"({_release(p.statement)}) replaces "
                    f"{_fmt(float(old.amount / s.unit.multiplier))} ({_release(old)})"
                )
            for other in p.also:
                trend.notes.append(
                    f"{p.label}: {_release(p.statement)} also states "
                    f"{_fmt(float(other.amount / s.unit.multiplier))} {s.unit.label()} "
                    f"({other.quote[:80]}); the more precise {_fmt(p.value)} is shown"
                )
    ordered = [p.statement for s in trend.series for p in s.points]
    ordered += [old for s in trend.series for p in s.points for old in p.earlier]
    for st in ordered:
        if not any(st is t for t in trend.sources):
            trend.sources.append(st)
    trend.notes = list(dict.fromkeys(trend.notes))
    return trend


# --- over an index --------------------------------------------------------------------------


def _measure_query(measure: Measure) -> str:
    from bot.trend_text import MEASURES

    return " ".join(MEASURES.get(measure.name, (measure.name,)))


def candidate_chunks(lexical: LexicalIndex, entity: Entity, measure: Measure) -> list[int]:
    """Positions of the chunks whose terms (title included) name the entity and the measure,
    newest release first."""
    if not len(lexical.chunks):
        return []
    named = np.asarray(lexical.scores(entity.text)) > 0
    measured = np.asarray(lexical.scores(_measure_query(measure))) > 0
    found = np.flatnonzero(named & measured).tolist()
    dates = lexical.column("date")
    found.sort(key=lambda i: dates[i] or "", reverse=True)
    return found


def find_trend(lexical: LexicalIndex, topic: str, today: date | None = None) -> Trend:
    """The trend of ``topic`` over every chunk of the index (raises ``TopicError``)."""
    entity, measure, asked, since = topic_parts(topic, today)
    positions = candidate_chunks(lexical, entity, measure)
    found: list[Statement] = []
    memo: Memo = {}
    # A document that addresses a model is not evidence (bot.untrusted): set aside.
    read, aside = set_aside([Hit(lexical.chunks[i], 0.0) for i in positions[:MAX_CHUNKS]])
    for hit in read:
        found += statements(hit, entity, measure, memo)
    if since is not None:
        found = [s for s in found if (s.period.year or 0) >= since]
    elif asked is not None and asked.year is not None:
        found = [s for s in found if s.period.year == asked.year]
    trend = build_trend(topic, entity, measure, found)
    if len(positions) > MAX_CHUNKS:
        trend.notes.append(f"read the newest {MAX_CHUNKS} of {len(positions)} passages")
    if (aside_note := set_aside_note(aside)) is not None:
        trend.notes.append(aside_note)
    if since is not None and (recent := recent_years(topic)) is not None:
        trend.notes.insert(0, f"“{recent[0]}” read as {since} to now")
    return trend
