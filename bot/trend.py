"""Figures over time: every cited statement of one measure for one entity, as series.

``find_trend(lexical, topic)`` reads the topic with the question frame
(``bot.constraints.question_constraints``: the entity; ``bot.trend_text``: the measure),
takes the chunks whose terms name both from the BM25 index's postings (the whole index,
not a top k: a series wants every release), and reads each sentence that names the
measure: the amount stated right after it (``bot.citations.figures``), its unit, its
period (``bot.periods``), the release and the verbatim sentence.

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
from decimal import Decimal

import numpy as np

from bot.answer_types import DATE_PARTS_RE
from bot.citations import figures
from bot.constraints import Entity, question_constraints, question_entities
from bot.lexical import LexicalIndex, tokenize
from bot.periods import PERIOD_RE, YEAR_RE, Period, periods
from bot.trend_text import (
    Measure,
    Unit,
    clauses,
    cumulative_quarters,
    measure_spans,
    period_kind,
    period_label,
    since_year,
    strip_trend_words,
    topic_measure,
    unit_at,
)
from bot.trend_text import is_trend_question as is_trend_question  # the routing test
from bot.types import Hit
from ingest.sentences import sentence_spans
from ingest.vocabulary import CJK_CHARS, CJK_RE

# Chunks read at most for one trend (the newest first): a measure a city reports monthly
# for a decade is ~120 releases, a few chunks each.
MAX_CHUNKS = 3000
MIN_POINTS = 2  # a series is two comparable points or more
_KIND_ORDER = {"year": 0, "half": 1, "quarter": 2, "month": 3, "ytd": 4, "span": 5}
_SCALE_WORD = re.compile(r"(thousand|million|billion|trillion|bn|mn|万|亿)$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Statement:
    """One amount of the measure, as one release states it."""

    period: Period
    amount: Decimal  # the amount times its scale word: 341.81 billion -> 341810000000
    unit: Unit
    figure: str  # as written ("341.81 billion", "856.3亿")
    hit: Hit
    quote: str  # the sentence, verbatim from ``hit.text``

    @property
    def date(self) -> str:
        return self.hit.date or ""


@dataclass(slots=True)
class Point:
    statement: Statement  # the newest release's
    value: float  # in the series' unit
    earlier: list[Statement] = field(default_factory=list)  # older releases, other values
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


class TopicError(ValueError):
    """The topic names no entity or no measure; the message says what to write."""


# --- reading the topic ------------------------------------------------------------------------


def topic_parts(topic: str) -> tuple[Entity, Measure, Period | None, int | None]:
    """(entity, measure, period asked, first year asked) of a trend topic."""
    core = strip_trend_words(topic)
    measure = topic_measure(core)
    cjk = bool(CJK_RE.search(core))
    # The frame reads questions; a topic's first word ("Kelbrook foreign trade") is a name.
    frame = question_constraints(core if cjk else f"What was {core}?")
    entity = frame.entities[0] if frame.entities else None
    if entity is None and cjk and measure is not None:
        # "青屿进出口总额": the name written before the measure, 市/省 or not.
        at = measure.pattern.search(core)
        name = re.sub(r"(?:市|省|县|的)+$", "", core[: at.start()] if at else "").strip()
        if re.fullmatch(rf"[{CJK_CHARS}]{{2,6}}", name):
            entity = Entity(name, frozenset([name]), cjk=True, surface=name)
    if entity is None:
        raise TopicError(
            "name the city or company and the figure, e.g. 'Qingdao foreign trade' or '青岛进出口'"
        )
    if measure is None or not measure.known:
        # An unknown measure is the topic's words without the entity's ("hospitals").
        measure = topic_measure(frame.quantity.replace(entity.text, " "))
    if measure is None:
        raise TopicError(f"which figure of {entity.text}? e.g. '{entity.text} foreign trade'")
    since = since_year(topic)
    return entity, measure, None if since else frame.period, since


# --- reading a sentence -------------------------------------------------------------------


_JOINING_WORDS = frozenset({"of", "the", "de", "and", "&"})


def _mentions(text: str, entity: Entity) -> bool:
    """Whether one of the entity's words is written in ``text`` (a cheap first test, and a
    guard: "3M"'s terms are "3" and "m", which "copy 3" has too)."""
    if entity.cjk:
        return entity.text in text
    words = [w for w in re.split(r"[\s:]+", entity.text) if w.lower() not in _JOINING_WORDS]
    return any(re.search(rf"(?<!\w){re.escape(w)}", text, re.IGNORECASE) for w in words if w)


def _names(text: str, entity: Entity) -> bool:
    return _mentions(text, entity) and entity.named_in(text, frozenset(tokenize(text)))


_CURRENCY = re.compile(r"\bUS\s*(?:dollars?\b|\$)|\b(?:USD|RMB|CNY|TEU)\b")


def _other_names(text: str, entity: Entity) -> bool:
    """Whether ``text`` names a city or company other than ``entity``."""
    text = _CURRENCY.sub(" ", text)
    for e in question_entities(f"x {text}"):  # "x ": a name opening the text is a name too
        words = e.text.split()
        opening = e.surface.split()[0]
        if (
            not e.cjk
            and text.startswith(e.surface)
            and words[0] == opening  # not already dropped as a generic word ("In")
            and not re.match(r"\S+['’]s?\b", e.surface)
        ):
            # A capitalised first word is mostly just a sentence's first word ("Foreign
            # trade rose"); the words after it are names ("Neighbouring Lindmark").
            words = [w for w in words[1:] if w[:1].isupper()]
        name = " ".join(words)
        if (
            name
            and not entity.named_in(name, frozenset(tokenize(name)))
            and not (e.cjk and (entity.text in name or name in entity.text))
        ):
            return True
    return False


_DIGIT = re.compile(r"\d")
# A decimal amount ("1978.2万标准箱") is no year, though ``YEAR_RE`` reads its first digits.
_DECIMAL = re.compile(r"\d[\d,]*\.\d+")


def _blank(m: re.Match[str]) -> str:
    return " " * len(m.group())


def _masked(text: str) -> str:
    """``text`` with periods, years and date parts blanked: their numbers are no amounts."""
    decimals = [(m.start(), m.end()) for m in _DECIMAL.finditer(text)]
    for pattern in (PERIOD_RE, DATE_PARTS_RE, YEAR_RE):
        text = pattern.sub(
            lambda m: m.group() if any(a <= m.start() < b for a, b in decimals) else _blank(m),
            text,
        )
    return text


def _with_release_year(p: Period, date: str | None) -> Period | None:
    """A period without its year takes the release's, or the year before when it has not
    ended by the release date ("fourth quarter" in a January release is last year's)."""
    if p.year is not None:
        return p
    if not date or not date[:4].isdigit():
        return None
    year, month = int(date[:4]), int(date[5:7]) if date[5:7].isdigit() else 12
    return p.with_year(year if p.last < month or (p.whole_year and month == 12) else year - 1)


def _period_of(text: str) -> Period | None:
    text = _DECIMAL.sub(_blank, text)
    cumulative = cumulative_quarters(text)
    found = [p for p in periods(text) if not p.loose]
    if cumulative is not None:
        year = found[0].year if found else None
        return cumulative.with_year(year)
    return found[0] if found else None


def _amounts(clause: str) -> list[tuple[int, Decimal, Unit, str]]:
    """(position, amount, unit, as written) of the amounts in ``clause`` that have a unit."""
    out, cursor = [], 0
    for fig in figures(clause):
        at = clause.find(fig.text, cursor)
        cursor = at + len(fig.text)
        if fig.percent:
            continue
        scale = _SCALE_WORD.search(fig.text)
        unit = unit_at(clause, at, at + len(fig.text), scale.group(1) if scale else None)
        if unit is not None:
            out.append((at, fig.scaled, unit, fig.text))
    if not out:
        return out
    # Then the ones a period, year or date holds go ("1-7月", "Q3 2024"): blanked there.
    masked = _masked(clause)
    return [a for a in out if masked[a[0] : a[0] + len(a[3])] == a[3]]


def _amount_of_measure(clause: str, measure: Measure) -> tuple[Decimal, Unit, str] | None:
    """The amount stated for ``measure`` in ``clause``: the first after its name and before
    another measure's, else the last before its name."""
    amounts = _amounts(clause) if _DIGIT.search(clause) else []
    if not amounts:
        return None
    mine, starts = measure_spans(clause, measure)
    if not mine:
        return None
    start, end = mine[0]
    after_next = min((s for s in starts if s > start), default=len(clause))
    before_prev = max((s for s in starts if s < start), default=-1)
    for at, amount, unit, text in amounts:
        if end <= at < after_next:
            return amount, unit, text
    before = [a for a in amounts if before_prev < a[0] < start]
    return (before[-1][1], before[-1][2], before[-1][3]) if before else None


def statements(hit: Hit, entity: Entity, measure: Measure) -> list[Statement]:
    """Every amount of ``measure`` for ``entity`` that ``hit`` states, with its period."""
    text = hit.text
    title_names = _names(hit.title, entity)
    if not (title_names or _mentions(text, entity)) or not any(
        _DIGIT.search(text, max(0, m.start() - 80), m.end() + 200)
        for m in measure.pattern.finditer(text)
    ):
        return []  # most chunks of a busy entity: no sentence split, no period read
    out: list[Statement] = []
    for a, b in sentence_spans(text):
        sentence = text[a:b]
        if not measure.pattern.search(sentence):
            continue
        read: list[Period | None] = []  # the sentence's period, read once a clause needs it
        for c0, c1 in clauses(sentence):
            clause = sentence[c0:c1]
            found = measure.pattern.search(clause) and _amount_of_measure(clause, measure)
            if not found or _other_names(clause, entity):
                continue
            if not _names(clause, entity) and (
                _other_names(sentence, entity) or not (_names(sentence, entity) or title_names)
            ):
                continue
            if not read:
                read.append(_period_of(sentence) or _period_of(hit.title))
            sentence_period = read[0]
            own = _period_of(clause)
            if own is not None and own.year is None and sentence_period is not None:
                own = own.with_year(sentence_period.year)
            stated = own or sentence_period
            period = _with_release_year(stated, hit.date) if stated is not None else None
            if period is None:
                continue
            amount, unit, figure = found
            out.append(Statement(period, amount, unit, figure, hit, sentence.strip()))
    return out


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
        first, *older = by_period[key]
        earlier = [s for s in older if s.amount != first.amount]
        value = float(first.amount / unit.multiplier)
        points.append(Point(first, value, _distinct(earlier), cumulative=kind == "ytd"))
    return Series(entity, measure, unit, kind, points)


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


def find_trend(lexical: LexicalIndex, topic: str) -> Trend:
    """The trend of ``topic`` over every chunk of the index (raises ``TopicError``)."""
    entity, measure, asked, since = topic_parts(topic)
    positions = candidate_chunks(lexical, entity, measure)
    found: list[Statement] = []
    for i in positions[:MAX_CHUNKS]:
        found += statements(Hit(lexical.chunks[i], 0.0), entity, measure)
    if since is not None:
        found = [s for s in found if (s.period.year or 0) >= since]
    elif asked is not None and asked.year is not None:
        found = [s for s in found if s.period.year == asked.year]
    trend = build_trend(topic, entity, measure, found)
    if len(positions) > MAX_CHUNKS:
        trend.notes.append(f"read the newest {MAX_CHUNKS} of {len(positions)} passages")
    return trend
