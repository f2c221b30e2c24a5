"""Reading a trend's topic and the statements of one release (for ``bot.trend``).

The topic through the question frame (``bot.constraints.question_constraints``: the
entity) and ``bot.trend_text`` (the measure, a "since" year). A release's sentences that
name the measure: the amount stated right after it (``bot.citations.figures``) with its
unit, the period (``bot.periods``; a period without its year takes the release's, or the
year before when it had not ended), and whether the clause, else the sentence, else the
title names the entity and no other. Percentages are changes, not the measure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal

from bot.answer_types import DATE_PARTS_RE
from bot.citations import figures
from bot.constraints import Entity, question_constraints, question_entities
from bot.lexical import tokenize
from bot.periods import PERIOD_RE, YEAR_RE, Period, periods
from bot.trend_text import (
    Measure,
    Unit,
    clauses,
    cumulative_quarters,
    measure_spans,
    since_year,
    strip_trend_words,
    topic_measure,
    unit_at,
)
from bot.types import Hit
from ingest.sentences import sentence_spans
from ingest.vocabulary import CJK_CHARS, CJK_RE

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


class TopicError(ValueError):
    """The topic names no entity or no measure; the message says what to write."""


# --- reading the topic ------------------------------------------------------------------------


def topic_parts(
    topic: str, today: date | None = None
) -> tuple[Entity, Measure, Period | None, int | None]:
    """(entity, measure, period asked, first year asked) of a trend topic (``today``: what
    "the past 3 years" counts back from)."""
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
    since = since_year(topic, today)
    return entity, measure, None if since else frame.period, since


# --- reading a release -------------------------------------------------------------------


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


def amounts(clause: str) -> list[tuple[int, Decimal, Unit, str]]:
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
    stated = amounts(clause) if _DIGIT.search(clause) else []
    if not stated:
        return None
    mine, starts = measure_spans(clause, measure)
    if not mine:
        return None
    start, end = mine[0]
    after_next = min((s for s in starts if s > start), default=len(clause))
    before_prev = max((s for s in starts if s < start), default=-1)
    for at, amount, unit, text in stated:
        if end <= at < after_next:
            return amount, unit, text
    before = [a for a in stated if before_prev < a[0] < start]
    return (before[-1][1], before[-1][2], before[-1][3]) if before else None


# A release reposted word for word (wire copies, mirrors) is read once: its chunks' text,
# date and whether the title names the entity decide what they state.
Memo = dict[tuple[str, str | None, bool], list[Statement]]


def statements(
    hit: Hit, entity: Entity, measure: Measure, memo: Memo | None = None
) -> list[Statement]:
    """Every amount of ``measure`` for ``entity`` that ``hit`` states, with its period."""
    title_names = _names(hit.title, entity)
    if memo is None:
        return _read(hit, entity, measure, title_names)
    key = (hit.text, hit.date, title_names)
    if key not in memo:
        memo[key] = _read(hit, entity, measure, title_names)
    return [replace(s, hit=hit) for s in memo[key]]


def _read(hit: Hit, entity: Entity, measure: Measure, title_names: bool) -> list[Statement]:
    text = hit.text
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
