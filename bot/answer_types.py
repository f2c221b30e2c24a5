"""What kind of answer a question asks for (an amount, a date, a person, a place), and
whether a sentence holds one. Used by the answer selector (bot.selector)."""

from __future__ import annotations

import re
from enum import StrEnum

from ingest.vocabulary import CJK_CHARS, CJK_RE, MONTH_PATTERN


class AnswerType(StrEnum):
    NUMBER = "number"
    DATE = "date"
    PERSON = "person"
    PLACE = "place"
    ANY = "any"


_TYPE_PATTERNS: list[tuple[AnswerType, re.Pattern[str]]] = [
    (
        AnswerType.DATE,
        re.compile(
            r"\bwhen\b|\bwhat\s+(?:year|date|day|month|time)\b|\bwhich\s+(?:year|date|day|month)\b"
            r"|\bhow\s+long\s+ago\b|什么时候|何时|哪一?年|哪一?天|几月|几号|日期|时间",
            re.IGNORECASE,
        ),
    ),
    (
        AnswerType.NUMBER,
        re.compile(
            r"\bhow\s+(?:much|many|large|big|high|low|fast)\b|\b(?:total|amount|number|percentage"
            r"|share|rate|price|cost|value|revenue|sales|growth|figure|count)\b"
            r"|多少|几|人数|数量|金额|总额|总量|比例|比重|增长率|增速|价格",
            re.IGNORECASE,
        ),
    ),
    (
        AnswerType.PERSON,
        re.compile(
            r"\bwho(?:m|se)?\b|\bwhich\s+(?:person|company|firm|organi[sz]ation|team|player)\b"
            r"|谁|哪位|何人|得主|获得者|冠军|获奖者|负责人|作者|创始人",
            re.IGNORECASE,
        ),
    ),
    (
        AnswerType.PLACE,
        re.compile(
            r"\bwhere\b|\bwhich\s+(?:city|country|province|state|place|venue)\b|\blocation\b"
            r"|\blocated\b|\bvenue\b|哪里|在哪|何地|哪个(?:国家|城市|省|地方)|举办地|地点|所在地",
            re.IGNORECASE,
        ),
    ),
]
# Measures a briefing reports as amounts ("What was X's operating profit?"), after the
# person and place words ("Who reported the highest profit?" asks for a name), and only in
# a question: a followed topic ("green valley water plan budget") asks for no amount.
_MEASURE_RE = re.compile(
    r"\b(?:profit|income|earnings|loss(?:es)?|margin|dividend|output|spending"
    r"|expenditure|investment|exports?|imports?|gdp|inflation|turnover|throughput|debt"
    r"|deficit|surplus|assets|capex|ebitda|budget|population|headcount|workforce)\b"
    r"|利润|营收|收入|投入|产值|进出口|出口额|进口额",
    re.IGNORECASE,
)

_QUESTION_RE = re.compile(r"[?？]|^\s*(?:what|which|how)\b|吗|呢|多少", re.IGNORECASE)
_NUMBER_RE = re.compile(
    r"\d+(?:[.,]\d+)*|[零一二三四五六七八九十百千万亿两]+(?=[人个名亿万元次项家座])"
)
_DATE_RE = re.compile(
    rf"\b{MONTH_PATTERN}\b\.?|\b(?:19|20)\d\d\b"
    r"|\b\d{1,2}/\d{1,2}(?:/\d{2,4})?\b|\d+\s*[年月日号]|\b(?:yesterday|today|monday|tuesday"
    r"|wednesday|thursday|friday|saturday|sunday)\b",
    re.IGNORECASE,
)
_NAME_RE = re.compile(r"\b[A-Z][a-z]+(?:[ -](?:[A-Z][a-z]+|[A-Z]\.|of|de|van|von))*\b")
_PLACE_RE = re.compile(
    rf"\b(?:in|at|from|near)\s+(?:the\s+)?[A-Z][A-Za-z]+"
    rf"|[{CJK_CHARS}]{{1,8}}(?:省|市|县|区|国|州|岛|城|镇)"
)
_YEAR_RE = re.compile(r"(?<!\d)(?:19|20)\d\d(?!\d)")
# The numbers of a date ("12月10日", "June 30", "30 June 2023") are not amounts.
DATE_PARTS_RE = re.compile(
    rf"\d{{1,4}}\s*[年月日号]|\b{MONTH_PATTERN}\.?\s+\d{{1,2}}(?:st|nd|rd|th)?\b"
    rf"|\b\d{{1,2}}(?:st|nd|rd|th)?\s+{MONTH_PATTERN}\b",
    re.IGNORECASE,
)


def answer_type(question: str) -> AnswerType:
    """What kind of answer the question asks for (the first matching kind wins)."""
    for kind, pattern in _TYPE_PATTERNS:
        if pattern.search(question):
            return kind
    if _QUESTION_RE.search(question) and _MEASURE_RE.search(question):
        return AnswerType.NUMBER
    return AnswerType.ANY


def has_answer_type(sentence: str, kind: AnswerType, question: str) -> bool:
    """Whether ``sentence`` holds something of ``kind`` that the question does not already say."""
    if kind is AnswerType.ANY:
        return True
    q = question.lower()
    if kind is AnswerType.NUMBER:
        # A bare year ("in 2020") dates a statement; it is not the amount asked for.
        return any(
            m.group() not in q and not _YEAR_RE.fullmatch(m.group())
            for m in _NUMBER_RE.finditer(DATE_PARTS_RE.sub(" ", sentence))
        )
    if kind is AnswerType.DATE:
        return any(m.group().lower() not in q for m in _DATE_RE.finditer(sentence))
    if kind is AnswerType.PERSON:
        if CJK_RE.search(sentence):
            return True  # Chinese names cannot be told from other words without a tagger
        return any(m.group().lower() not in q for m in _NAME_RE.finditer(sentence, 1))
    return any(m.group().lower() not in q for m in _PLACE_RE.finditer(sentence)) or bool(
        _NAME_RE.search(sentence, 1) and not CJK_RE.search(sentence)
    )
