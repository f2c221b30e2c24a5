"""Other names for the same measure: "GDP" = "gross domestic product" = 地区生产总值.

Briefings and their readers name a measure in different words and languages. The question
frame reads them as one: the reader's overlap features compare canonical forms
(``canonical``), and the keyword search looks for every form (``expanded``).
"""

from __future__ import annotations

import re
from functools import lru_cache

# Each group: the canonical form first, then the other ways a text writes it. Only names
# of the same measure: "exports" alone is not "foreign trade".
GROUPS: tuple[tuple[str, ...], ...] = (
    ("gdp", "gross domestic product", "gross regional product", "地区生产总值", "国内生产总值",
     "生产总值"),
    ("cpi", "consumer price index", "consumer prices", "居民消费价格指数", "居民消费价格"),
    ("ppi", "producer price index", "工业生产者出厂价格"),
    ("fdi", "foreign direct investment", "外商直接投资", "实际使用外资"),
    ("foreign trade", "imports and exports", "exports and imports", "import and export",
     "total trade", "进出口总额", "进出口", "外贸"),
    ("r&d", "research and development", "研发"),
    ("teu", "teus", "twenty-foot equivalent units", "标准箱", "标箱"),
    ("year on year", "year-on-year", "yoy", "同比"),
    ("retail sales", "retail sales of consumer goods", "社会消费品零售总额"),
    ("fixed-asset investment", "fixed asset investment", "固定资产投资"),
    ("industrial output", "industrial value added", "规模以上工业增加值", "工业增加值"),
)  # fmt: skip


@lru_cache(maxsize=1)
def _pattern() -> tuple[re.Pattern[str], dict[str, int]]:
    forms = {form: i for i, group in enumerate(GROUPS) for form in group}
    # Longest first, so that "进出口总额" wins over "进出口"; Latin forms whole words only.
    parts = [
        re.escape(f) if not f.isascii() else rf"(?<![A-Za-z0-9&]){re.escape(f)}(?![A-Za-z0-9&])"
        for f in sorted(forms, key=len, reverse=True)
    ]
    return re.compile("|".join(parts), re.IGNORECASE), forms


def _group(match: re.Match[str]) -> tuple[str, ...]:
    return GROUPS[_pattern()[1][match.group().lower()]]


def canonical(text: str) -> str:
    """``text`` with every known form written as its group's canonical one."""
    pattern, _ = _pattern()
    return pattern.sub(lambda m: f" {_group(m)[0]} ", text)


def expanded(text: str) -> str:
    """``text`` followed by the other forms of every measure it names (for keyword search)."""
    pattern, _ = _pattern()
    extra = {f for m in pattern.finditer(text) for f in _group(m) if f.lower() != m.group().lower()}
    return text if not extra else text + " " + " ".join(sorted(extra))
