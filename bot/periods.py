"""Periods in questions and sentences: a span of months in a year.

Q2 2024 is (2024, 4, 6), "January–July" (None, 1, 7), 上半年 (None, 1, 6). A sentence's own
period is the first one it names (later ones are comparisons: "up 3.1% from the same period
of 2023"); a sentence naming none takes its passage's (title first), and its year falls
back to the publication year. Pure functions over text; ``bot.constraints`` uses them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from ingest.vocabulary import MONTH_NAMES, MONTH_PATTERN, MONTHS

_ORDINALS = {"first": 1, "1st": 1, "second": 2, "2nd": 2, "third": 3, "3rd": 3, "fourth": 4,
             "4th": 4, "final": 4, "last": 4}  # fmt: skip
_NUMBER_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
                 "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12}  # fmt: skip
_CN_DIGITS = {"一": 1, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9,
              "十": 10, "十一": 11, "十二": 12, "两": 2}  # fmt: skip
_CN_NUM = r"(?:十[一二]|[一二三四五六七八九十两]|1[0-2]|[1-9])"
_M = rf"(?:{MONTH_PATTERN})(?![a-z])\.?"
_YEAR = r"(?:19|20)\d\d"

PERIOD_RE = re.compile(
    "|".join(
        [
            # 前三季度: the first three quarters (January–September), a span, not Q3
            r"(?P<ytq>前(?P<ytqn>[一二两三1-3])个?季度)|"
            r"(?P<qtr>\bQ(?P<qn>[1-4])\b|\b(?P<qo>first|second|third|fourth|1st|2nd|3rd|4th|final|last)"
            r"[\s-]+quarter\b|(?:第)?(?P<qc>[一二三四1-4])季度)",
            r"(?P<half>\bH(?P<hn>[12])\b|\b(?P<ho>first|second)[\s-]+half\b|(?P<hc>[上下])半年|(?P<hr>半年度|半年报))",
            rf"(?P<rng>\b(?:from\s+|between\s+)?(?P<ra>{_M})\s*(?:to|through|until|and|[-–—])\s*"
            rf"(?P<rb>{_M})|(?P<rca>{_CN_NUM})\s*(?:[-–—~～至到]|月至|月到|月-)\s*(?P<rcb>{_CN_NUM})\s*月"
            rf"(?!份?[底末])|前(?P<rcn>{_CN_NUM})个?月|\bfirst\s+(?P<rn>\w+)\s+months\b)",
            rf"(?P<mon>\b(?P<mw>{_M})(?!\s*\d{{1,2}}\b)|(?<![\d-])(?P<mc>{_CN_NUM})\s*月(?![\d日号])(?:份)?(?:[底末])?)",
        ]
    ),
    re.IGNORECASE,
)
YEAR_RE = re.compile(rf"(?<!\d)({_YEAR})(?!\d)")
_FULLYEAR_RE = re.compile(
    r"\b(?:full[\s-]year|whole\s+year|annual|financial\s+year|fiscal\s+year)\b|全年|年度",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Period:
    """Months ``first``..``last`` of ``year`` (None: not said). A year alone is 1..12."""

    year: int | None
    first: int
    last: int
    point: bool = False  # a single month named as a moment ("at the end of March")
    loose: bool = False  # a vague span ("early 2024"): any period inside it answers

    @property
    def whole_year(self) -> bool:
        return self.first == 1 and self.last == 12

    def label(self) -> str:
        """In user words: "Q2 2024", "H1 2024", "January–July 2024", "March 2024", "2023"."""
        year = f" {self.year}" if self.year else ""
        if self.loose:
            return {1: "early", 4: "mid"}.get(self.first, "late") + (year or " in the year")
        if self.whole_year:
            return str(self.year) if self.year else "the year"
        if self.first == self.last:
            return MONTH_NAMES[self.first - 1].capitalize() + year
        if self.last - self.first == 2 and self.first % 3 == 1:
            return f"Q{self.last // 3}{year}"
        if (self.first, self.last) in ((1, 6), (7, 12)):
            return f"H{1 if self.first == 1 else 2}{year}"
        a, b = MONTH_NAMES[self.first - 1], MONTH_NAMES[self.last - 1]
        return f"{a.capitalize()}–{b.capitalize()}{year}"

    def with_year(self, year: int | None) -> Period:
        return (
            self
            if self.year is not None or year is None
            else Period(year, self.first, self.last, self.point, self.loose)
        )


def _month(word: str) -> int:
    return MONTHS[word.lower().rstrip(".")]


def _cn(num: str) -> int:
    return int(num) if num.isdigit() else _CN_DIGITS[num]


def _span(m: re.Match[str]) -> tuple[int, int, bool] | None:
    g = m.groupdict()
    if g["ytq"]:
        return 1, 3 * _cn(g["ytqn"]), False
    if g["qtr"]:
        q = int(g["qn"]) if g["qn"] else _ORDINALS[g["qo"].lower()] if g["qo"] else _cn(g["qc"])
        return 3 * q - 2, 3 * q, False
    if g["half"]:
        # 半年度 / 半年报: a half-year report is the first half's ("interim").
        first = (
            g["hn"] == "1" or (g["ho"] or "").lower() == "first" or g["hc"] == "上" or bool(g["hr"])
        )
        return (1, 6, False) if first else (7, 12, False)
    if g["rng"]:
        if g["ra"]:
            return _month(g["ra"]), _month(g["rb"]), False
        if g["rca"]:
            return _cn(g["rca"]), _cn(g["rcb"]), False
        n = _cn(g["rcn"]) if g["rcn"] else _NUMBER_WORDS.get(g["rn"].lower())
        return (1, n, False) if n else None
    if g["mw"]:
        if g["mw"].lower() == "may" and not m.string[m.end() :].lstrip()[:1].isdigit():
            return None  # "may" the verb, unless a year follows
        month = _month(g["mw"])
        return month, month, True
    if g["mc"]:
        month = _cn(g["mc"])
        return month, month, True
    return None  # pragma: no cover - every alternative has a branch


def _year_near(text: str, start: int, end: int) -> tuple[int | None, int]:
    """The year written just after (or before) a period phrase ("first quarter of 2024"),
    and where that year starts (-1: none)."""
    after = re.match(
        rf"\s*(?:of\s+|,\s*)?(?:the\s+year\s+|(?:fy|fiscal\s+(?:year\s+)?)\s*)?({_YEAR})",
        text[end : end + 22],
        re.IGNORECASE,
    )
    if after:
        return int(after.group(1)), end + after.start(1)
    lo = max(0, start - 8)
    before = re.search(rf"({_YEAR})\s*(?:年|'s)?\s*(?:的)?$", text[lo:start])
    return (int(before.group(1)), lo + before.start(1)) if before else (None, -1)


# A period after these words is the base of a comparison ("up 21.4% on 2020", "比2020年增长"),
# not the one a sentence reports on.
_COMPARED_RE = re.compile(
    r"(?:\b(?:on|from|over|than|versus|vs\.?|against|compared\s+(?:with|to))"
    r"\s+(?:the\s+)?(?:same\s+(?:period|quarter|month)\s+(?:of|in|last)\s+|year\s+)?"
    r"|同比|比|较|与)\s*$",
    re.IGNORECASE,
)
# "since March 2021", "自2019年以来": where a window opens, not the period asked about.
_SINCE_RE = re.compile(r"\b(?:since|after|starting|beginning|from)\s+(?:the\s+)?$|[自从]\s*$", re.I)


def own_periods(text: str) -> list[Period]:
    """The periods ``text`` reports on: ``periods`` without comparison bases."""
    return [p for at, p in _located(text) if not _COMPARED_RE.search(text[max(0, at - 40) : at])]


def periods(text: str) -> list[Period]:
    """Every period ``text`` names, in order; a bare year is a whole-year period."""
    return [p for _, p in _located(text)]


def _located(text: str) -> list[tuple[int, Period]]:
    found: list[tuple[int, Period]] = []
    used_years: set[int] = set()
    for m in PERIOD_RE.finditer(text):
        span = _span(m)
        if span is None:
            continue
        year, year_at = _year_near(text, m.start(), m.end())
        used_years.add(year_at)
        found.append((m.start(), Period(year, span[0], span[1], span[2])))
    for m in YEAR_RE.finditer(text):
        if m.start() in used_years or re.match(
            r"\s*年\s*\d{1,2}\s*月", text[m.end() : m.end() + 6]
        ):
            continue  # the year of a period already read, or of a full date (2024年3月5日)
        dated = re.search(
            rf"(?:{MONTH_PATTERN})\.?\s+\d{{1,2}},?\s*$",
            text[max(0, m.start() - 16) : m.start()],
            re.IGNORECASE,
        )
        if dated:  # "March 5, 2024": a date, not the year as a period, unless it ends one
            ended = _ENDED_RE.search(text[max(0, m.start() - 60) : m.start()])
            if ended:
                found.append((m.start(), _ended_period(ended, int(m.group(1)))))
            continue
        found.append((m.start(), Period(int(m.group(1)), 1, 12)))
    found.sort(key=lambda p: p[0])
    return found


# "early 2024" asks about some part of the year's first half, not about the whole year:
# a Q1 figure answers it.
_VAGUE_RE = re.compile(
    rf"\b(?P<w>early|mid|middle\s+of|late|start\s+of|beginning\s+of)[\s-]*(?P<y>{_YEAR})\b",
    re.IGNORECASE,
)
_VAGUE_MONTHS = {"early": (1, 6), "start": (1, 6), "beginning": (1, 6), "mid": (4, 9),
                 "middle": (4, 9), "late": (7, 12)}  # fmt: skip


# "Years ended December 31, 2022 2021 2020" heads a table of those years (2022 first);
# "three months ended June 30, 2023" is Q2; "as of December 31, 2022" a moment.
_ENDED_RE = re.compile(
    rf"\b(?:(?P<span>years?|twelve\s+months|(?P<n>three|six|nine)\s+months|quarters?)\s+"
    rf"(?:ended|ending)|(?P<at>as\s+of|as\s+at|at))\s+(?P<mon>{MONTH_PATTERN})\.?\s+\d{{1,2}},?\s*$",
    re.IGNORECASE,
)


def _ended_period(m: re.Match[str], year: int) -> Period:
    month = _month(m.group("mon"))
    if m.group("at"):
        return Period(year, month, month, point=True)
    if m.group("n"):
        months = _NUMBER_WORDS[m.group("n").lower()]
        return Period(year, max(1, month - months + 1), month)
    if m.group("span").lower().startswith("quarter"):
        return Period(year, max(1, month - 2), month)
    return Period(year, 1, 12)  # a (fiscal) year is named by the year it ends in: FY2023


def question_period(question: str) -> Period | None:
    """The period a question asks about (its first), or None ("since 2019" asks about none:
    it opens a window)."""
    located = [
        (at, p)
        for at, p in _located(question)
        if not _SINCE_RE.search(question[max(0, at - 20) : at])
    ]
    found = [p for _, p in located]
    if not found:
        return None
    first = found[0]
    if (
        first.whole_year
        and len(found) > 1
        and not found[1].whole_year
        and found[1].year in (None, first.year)
    ):
        first = found[1].with_year(first.year)  # "in 2024, first quarter"
    vague = _VAGUE_RE.search(question)
    if vague and first.whole_year and first.year == int(vague.group("y")):
        months = _VAGUE_MONTHS[vague.group("w").split()[0].lower()]
        first = Period(first.year, months[0], months[1], loose=True)
    return first


def sentence_period(sentence: str, context: Iterable[str], doc_date: str | None) -> Period | None:
    """The period a sentence reports on: its own first, else its passage's; year completed."""
    fallback_year = int(doc_date[:4]) if doc_date and doc_date[:4].isdigit() else None
    own = own_periods(sentence)
    if own:
        return own[0].with_year(fallback_year if own[0].year is None else None)
    for text in context:
        found = periods(text)
        if found:
            return found[0].with_year(fallback_year)
    return None


def period_conflict(asked: Period, given: Period | None, *, amount: bool) -> bool:
    """Whether a sentence reporting on ``given`` cannot answer a question about ``asked``.

    Years must agree when both are known. Below a year the months must agree (Q1 is
    January–March; a point question "end of June" takes a span ending in June). A
    question about a whole year is not answered by a part of it when it asks an amount
    ("2024 GDP" is not Q1 GDP); an event ("who won in 2022") may be dated by any month.
    """
    if given is None:
        return False
    if asked.year is not None and given.year is not None and asked.year != given.year:
        return True
    if asked.loose:  # "early 2024": a period inside the span answers; the year's amount not
        if given.whole_year:
            return amount
        return not asked.first <= given.first <= given.last <= asked.last
    if asked.whole_year:
        return amount and not given.whole_year and not given.point
    if given.whole_year:
        return amount  # a year's figure is not a quarter's
    if asked.point:
        return given.last != asked.last
    return (given.first, given.last) != (asked.first, asked.last)
