"""What a trend needs to read in text that the question frame does not offer (yet).

Measures with their English and Chinese wordings ("foreign trade" = "imports and exports" =
外贸进出口), the unit written after an amount ("billion yuan", 亿元, 万标准箱, "US$"), the
clauses of a sentence, Chinese cumulative periods ``bot.periods`` reads otherwise
(前三季度 is January–September), a period's kind (month, quarter, half, year,
year-to-date) and its ISO-like label, and whether a question asks for a trend. Pure
functions over text; ``bot.trend`` uses them with ``bot.periods``, ``bot.constraints``
and ``bot.citations``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from bot.periods import Period
from ingest.vocabulary import CJK_CHARS, CJK_RE

# --- measures -------------------------------------------------------------------------------

# name -> the ways releases write it. Matched leftmost-longest over all measures at once, so
# "exports" inside "imports and exports" (进出口 holding 出口) is the trade total's.
MEASURES: dict[str, tuple[str, ...]] = {
    "foreign trade": (
        "foreign trade", "external trade", "total trade", "trade total", "trade value",
        "trade volume", "imports and exports", "exports and imports", "import and export",
        "export and import", "trade", "外贸进出口总值", "外贸进出口总额", "进出口总值",
        "进出口总额", "外贸进出口", "进出口", "外贸",
    ),
    "trade surplus": ("trade surplus", "贸易顺差"),
    "exports": ("exports", "export value", "出口总值", "出口额", "出口"),
    "imports": ("imports", "import value", "进口总值", "进口额", "进口"),
    "GDP": ("gdp", "gross domestic product", "economic output", "地区生产总值", "生产总值"),
    "GDP per capita": (
        "gdp per capita", "gdp per person", "per capita gdp", "人均地区生产总值", "人均生产总值",
        "人均gdp",
    ),
    "container throughput": ("container throughput", "集装箱吞吐量"),
    "cargo throughput": ("cargo throughput", "货物吞吐量"),
    "fixed-asset investment": (
        "fixed-asset investment", "fixed asset investment", "固定资产投资",
    ),
    "retail sales": ("retail sales", "社会消费品零售总额"),
    "foreign investment": (
        "foreign direct investment", "utilized foreign capital", "utilised foreign capital",
        "foreign investment", "fdi", "实际使用外资", "实际利用外资",
    ),
    "industrial output": ("industrial output", "industrial added value", "工业增加值"),
    "investment signed": ("investment signed", "signed investment", "签约金额", "签约投资"),
}  # fmt: skip


def _alias_pattern(aliases: list[str]) -> re.Pattern[str]:
    parts = []
    for alias in sorted(aliases, key=len, reverse=True):
        if CJK_RE.search(alias):
            parts.append(re.escape(alias))
        else:
            parts.append(r"\b" + re.escape(alias).replace(r"\ ", r"[\s-]+") + r"\b")
    return re.compile("|".join(parts), re.IGNORECASE)


def _key(wording: str) -> str:
    return re.sub(r"[\s-]+", " ", wording.lower())


_ALIAS_OF = {_key(alias): name for name, aliases in MEASURES.items() for alias in aliases}
_ALL_ALIASES = _alias_pattern([a for aliases in MEASURES.values() for a in aliases])


@dataclass(frozen=True, slots=True)
class Measure:
    name: str  # "foreign trade", or the topic's own words when no known measure is named
    pattern: re.Pattern[str]  # where a text names it
    known: bool


def topic_measure(text: str) -> Measure | None:
    """The measure a topic names: a known one (leftmost, longest wording), else its words."""
    found = _ALL_ALIASES.search(text)
    if found:
        name = _ALIAS_OF[_key(found.group())]
        return Measure(name, _alias_pattern(list(MEASURES[name])), True)
    words = re.findall(rf"[{CJK_CHARS}]+|[A-Za-z][\w&'-]*", text)
    if not words:
        return None
    return Measure(" ".join(words), _alias_pattern([" ".join(words)]), False)


def measure_spans(text: str, measure: Measure) -> tuple[list[tuple[int, int]], list[int]]:
    """Where ``text`` names ``measure``, and where it names any measure (the starts), so that
    an amount can be read as the one stated right after its own measure."""
    if measure.known:
        mine, starts = [], []
        for m in _ALL_ALIASES.finditer(text):
            starts.append(m.start())
            if _ALIAS_OF[_key(m.group())] == measure.name:
                mine.append((m.start(), m.end()))
        return mine, starts
    mine = [(m.start(), m.end()) for m in measure.pattern.finditer(text)]
    others = [m.start() for m in _ALL_ALIASES.finditer(text)]
    return mine, sorted({s for s, _ in mine} | set(others))


# --- units ----------------------------------------------------------------------------------

# The unit word after an amount -> (unit family, how a chart names it).
_UNITS: dict[str, tuple[str, str]] = {
    "yuan": ("yuan", "yuan"), "rmb": ("yuan", "yuan"), "cny": ("yuan", "yuan"),
    "元": ("yuan", "元"), "人民币": ("yuan", "元"),
    "us dollars": ("usd", "US dollars"), "us dollar": ("usd", "US dollars"),
    "dollars": ("usd", "US dollars"), "usd": ("usd", "US dollars"), "美元": ("usd", "美元"),
    "teu": ("teu", "TEU"), "teus": ("teu", "TEU"), "标准箱": ("teu", "标准箱"),
    "tonnes": ("tonnes", "tonnes"), "tons": ("tonnes", "tonnes"), "吨": ("tonnes", "吨"),
    "euros": ("eur", "euros"), "euro": ("eur", "euros"),
}  # fmt: skip
_UNIT_AFTER = re.compile(
    r"\s*(" + "|".join(re.escape(u) for u in sorted(_UNITS, key=len, reverse=True)) + r")"
    r"(?![A-Za-z])",
    re.IGNORECASE,
)
_USD_BEFORE = re.compile(r"(?:US\s?\$|USD\s*|\$)\s*$")
_RMB_BEFORE = re.compile(r"(?:RMB|CNY|¥|￥)\s*$")
SCALES: dict[str, tuple[Decimal, str]] = {
    "thousand": (Decimal(10) ** 3, "thousand"), "million": (Decimal(10) ** 6, "million"),
    "mn": (Decimal(10) ** 6, "million"), "billion": (Decimal(10) ** 9, "billion"),
    "bn": (Decimal(10) ** 9, "billion"), "trillion": (Decimal(10) ** 12, "trillion"),
    "万": (Decimal(10) ** 4, "万"), "亿": (Decimal(10) ** 8, "亿"),
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Unit:
    family: str  # what may be compared: "yuan", "usd", "teu", "tonnes"
    scale: str  # the scale word as a chart writes it: "billion", "亿", "" (none)
    base: str  # the unit word as a chart writes it: "yuan", "元", "TEU"

    @property
    def multiplier(self) -> Decimal:
        return next((m for m, word in SCALES.values() if word == self.scale), Decimal(1))

    def label(self) -> str:
        """How a chart names it: "billion yuan", "亿元", "万标准箱", "TEU"."""
        joined = f"{self.scale}{self.base}" if CJK_RE.search(self.base) else None
        return joined or " ".join(p for p in (self.scale, self.base) if p)


def unit_at(text: str, start: int, end: int, scale_word: str | None) -> Unit | None:
    """The unit of the amount ``text[start:end]`` (its scale word included), or None when
    the amount names none ("1,234" alone is no amount of a measure)."""
    scale = SCALES[scale_word.lower()][1] if scale_word else ""
    after = _UNIT_AFTER.match(text, end)
    if after:
        family, base = _UNITS[after.group(1).lower()]
        if _USD_BEFORE.search(text[max(0, start - 4) : start]) and family == "usd":
            base = "US dollars"
        return Unit(family, scale, base)
    before = text[max(0, start - 4) : start]
    if _USD_BEFORE.search(before):
        return Unit("usd", scale, "US dollars")
    if _RMB_BEFORE.search(before):
        return Unit("yuan", scale, "yuan")
    return None


# --- clauses and periods ----------------------------------------------------------------

# Clause breaks: semicolons, and commas that are not inside a number ("1,234").
_CLAUSE_BREAK = re.compile(r"[;；，、]|,(?!\d{3}(?!\d))")


def clauses(sentence: str) -> list[tuple[int, int]]:
    """(start, end) of the clauses of ``sentence``."""
    out, at = [], 0
    for m in _CLAUSE_BREAK.finditer(sentence):
        out.append((at, m.start()))
        at = m.end()
    out.append((at, len(sentence)))
    return [(a, b) for a, b in out if sentence[a:b].strip()]


# 前三季度 / 前两季度: the first three (two) quarters, January–September (June).
_FIRST_QUARTERS = re.compile(r"前([二两三1-3])(?:个)?季度")
_CN_SMALL = {"二": 2, "两": 2, "三": 3, "1": 1, "2": 2, "3": 3}


def cumulative_quarters(text: str) -> Period | None:
    """前三季度 as January–September (``bot.periods`` reads the third quarter)."""
    m = _FIRST_QUARTERS.search(text)
    return Period(None, 1, 3 * _CN_SMALL[m.group(1)]) if m else None


def period_kind(p: Period) -> str:
    """The kind of a period: year, half, quarter, month, ytd (from January) or span."""
    if p.whole_year:
        return "year"
    if p.first == p.last:
        return "month"
    if p.last - p.first == 2 and p.first % 3 == 1:
        return "quarter"
    if (p.first, p.last) in ((1, 6), (7, 12)):
        return "half"
    return "ytd" if p.first == 1 else "span"


def period_label(p: Period, *, cumulative: bool = False) -> str:
    """ISO-like: 2024, 2024-Q2, 2024-H1, 2024-03, 2024-01..2024-07 (Q1 and H1 written as
    that span too when ``cumulative``: in a year-to-date series)."""
    kind, y = period_kind(p), p.year
    if cumulative and p.first == 1 and not p.whole_year and p.last > 1:
        kind = "ytd"
    if kind == "year":
        return str(y)
    if kind == "quarter":
        return f"{y}-Q{p.last // 3}"
    if kind == "half":
        return f"{y}-H{1 if p.first == 1 else 2}"
    if kind == "month":
        return f"{y}-{p.first:02d}"
    return f"{y}-{p.first:02d}..{y}-{p.last:02d}"


# --- trend questions ----------------------------------------------------------------------

_TREND_RE = re.compile(
    r"\bhow\s+(?:has|have|did|do|does|is|are)\b.{0,80}?\b(?:chang|develop|evolv|grow|grew"
    r"|mov|trend|risen|rose|fall|fell|fared)"
    r"|\btrends?\b|\bover\s+(?:time|the\s+(?:past|last)\s+\w+\s+(?:years?|quarters?|months?))"
    r"|\b(?:year|quarter|month)[\s-]by[\s-](?:year|quarter|month)\b|\btime\s+series\b"
    r"|走势|趋势|变化|变动|历年|逐年|逐季|逐月",
    re.IGNORECASE,
)
_SINCE_RE = re.compile(
    r"\bsince\s+((?:19|20)\d\d)\b|\b(?:from|between)\s+((?:19|20)\d\d)\s+(?:to|and|until)\b"
    r"|((?:19|20)\d\d)\s*年?以来|自((?:19|20)\d\d)\s*年",
    re.IGNORECASE,
)
_NUMBER_WORDS = {
    "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
    "ten": 10, "两": 2, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8,
    "九": 9, "十": 10,
}  # fmt: skip
_COUNT = r"(\d{1,2}|" + "|".join(_NUMBER_WORDS) + ")"
# "over the past 3 years", "in the last five years", 近三年, 过去5年, 最近十年
_RECENT_RE = re.compile(
    rf"\b(?:(?:over|in|during|for)\s+)?(?:the\s+)?(?:past|last)\s+{_COUNT}\s+years?\b"
    rf"|(?:近|过去|最近)\s*{_COUNT}\s*年",
    re.IGNORECASE,
)
_ASKS_ONE_THING = re.compile(r"^\s*(?:who|which|when|where|what)\b|谁|哪|何时", re.IGNORECASE)


def recent_years(text: str) -> tuple[str, int] | None:
    """("the past 3 years", 3) when ``text`` asks for the last N years, else None."""
    m = _RECENT_RE.search(text)
    if not m:
        return None
    count = next(g for g in m.groups() if g)
    n = int(count) if count.isdigit() else _NUMBER_WORDS[count.lower()]
    return (m.group(0).strip(), n) if 1 <= n <= 50 else None


def since_year(text: str, today: date | None = None) -> int | None:
    """The first year a trend asks from ("since 2019", "2019年以来"; "the past 3 years" is
    the three years before ``today``'s, and this one), or None."""
    m = _SINCE_RE.search(text)
    if m:
        return int(next(g for g in m.groups() if g))
    recent = recent_years(text)
    if recent is None:
        return None
    return (today or date.today()).year - recent[1]


def is_trend_question(text: str) -> bool:
    """Whether ``text`` asks how a figure moved over time ("How has X changed", "X走势",
    "X since 2019") rather than for one figure. "Which policies since 2019?" asks a list."""
    if _TREND_RE.search(text):
        return True
    return since_year(text) is not None and not _ASKS_ONE_THING.search(text)


def strip_trend_words(text: str) -> str:
    """The topic without its trend phrasing and its "since" year: what names the entity
    and the measure ("How has Qingdao's trade changed since 2019?" -> "Qingdao's trade")."""
    t = _RECENT_RE.sub(" ", _SINCE_RE.sub(" ", text))
    t = re.sub(
        r"^\s*how\s+(?:has|have|did|do|does|is|are)\s+|\s+(?:changed?|developed?|evolved?|grown"
        r"|grow|moved?|trended|risen|fared)\b.*$|\btrends?\s+(?:of|in|for)\b|\btrends?\b"
        r"|\bover\s+time\b|\btime\s+series\b|走势|趋势|变化情况|变化|变动|历年|逐年|逐季|逐月"
        r"|[?？。!！]",
        " ",
        t,
        flags=re.IGNORECASE,
    )
    return " ".join(t.split())
