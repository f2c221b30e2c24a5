"""What a question pins down — entity, period, role — and whether a passage sentence carries it.

Pure functions over text. The answerer uses them to refuse rather than quote a figure
for the wrong city, the wrong quarter or the wrong office ("Who is the mayor?" answered
with the party secretary). A period is a span of months in a year: Q2 2024 is
(2024, 4, 6), "January–July" (None, 1, 7), 上半年 (None, 1, 6). A sentence's own period is
the first one it names (later ones are comparisons: "up 3.1% from the same period of
2023"); a sentence naming none takes its passage's (title first), and its year falls back
to the publication year.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bot.lexical import tokenize
from ingest.vocabulary import CJK_CHARS, MONTH_NAMES, MONTH_PATTERN, MONTHS

# --- periods ------------------------------------------------------------------------------

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
            r"(?P<qtr>\bQ(?P<qn>[1-4])\b|\b(?P<qo>first|second|third|fourth|1st|2nd|3rd|4th|final|last)"
            r"[\s-]+quarter\b|(?:第)?(?P<qc>[一二三四1-4])季度)",
            r"(?P<half>\bH(?P<hn>[12])\b|\b(?P<ho>first|second)[\s-]+half\b|(?P<hc>[上下])半年)",
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

    @property
    def whole_year(self) -> bool:
        return self.first == 1 and self.last == 12

    def label(self) -> str:
        """In user words: "Q2 2024", "H1 2024", "January–July 2024", "March 2024", "2023"."""
        year = f" {self.year}" if self.year else ""
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
            else Period(year, self.first, self.last, self.point)
        )


def _month(word: str) -> int:
    return MONTHS[word.lower().rstrip(".")]


def _cn(num: str) -> int:
    return int(num) if num.isdigit() else _CN_DIGITS[num]


def _span(m: re.Match[str]) -> tuple[int, int, bool] | None:
    g = m.groupdict()
    if g["qtr"]:
        q = int(g["qn"]) if g["qn"] else _ORDINALS[g["qo"].lower()] if g["qo"] else _cn(g["qc"])
        return 3 * q - 2, 3 * q, False
    if g["half"]:
        first = g["hn"] == "1" or (g["ho"] or "").lower() == "first" or g["hc"] == "上"
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
    after = re.match(rf"\s*(?:of\s+|,\s*)?(?:the\s+year\s+)?({_YEAR})", text[end : end + 14])
    if after:
        return int(after.group(1)), end + after.start(1)
    lo = max(0, start - 8)
    before = re.search(rf"({_YEAR})\s*(?:年|'s)?\s*(?:的)?$", text[lo:start])
    return (int(before.group(1)), lo + before.start(1)) if before else (None, -1)


def periods(text: str) -> list[Period]:
    """Every period ``text`` names, in order; a bare year is a whole-year period."""
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
        if re.search(
            rf"(?:{MONTH_PATTERN})\.?\s+\d{{1,2}},?\s*$",
            text[max(0, m.start() - 16) : m.start()],
            re.IGNORECASE,
        ):
            continue  # "March 5, 2024": a date, not the year as a period
        found.append((m.start(), Period(int(m.group(1)), 1, 12)))
    found.sort(key=lambda p: p[0])
    return [p for _, p in found]


def question_period(question: str) -> Period | None:
    """The period a question asks about (its first), or None."""
    found = periods(question)
    if not found:
        return None
    first = found[0]
    if first.whole_year and len(found) > 1 and not found[1].whole_year:
        first = found[1].with_year(first.year)  # "in 2024, first quarter"
    return first


def sentence_period(sentence: str, context: Iterable[str], doc_date: str | None) -> Period | None:
    """The period a sentence reports on: its own first, else its passage's; year completed."""
    fallback_year = int(doc_date[:4]) if doc_date and doc_date[:4].isdigit() else None
    own = periods(sentence)
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
    if asked.whole_year:
        return amount and not given.whole_year and not given.point
    if given.whole_year:
        return amount  # a year's figure is not a quarter's
    if asked.point:
        return given.last != asked.last
    return (given.first, given.last) != (asked.first, asked.last)


# --- entities -----------------------------------------------------------------------------

# Capitalised words that name no entity: periods, units, abbreviations of measures.
_GENERIC_CAPS_TEXT = """
    q1 q2 q3 q4 h1 h2 gdp cpi ppi ev evs r&d teu ceo cfo coo cto i fy the a an in of what who
    which when where how why is was were did does do are total first second third fourth
"""
_GENERIC_CAPS = frozenset(_GENERIC_CAPS_TEXT.split()) | frozenset(MONTHS)  # and every month
# A run of capitalised words ("iPhone" and "eBay" count), with "of"/"de"/"the" and a
# colon inside titles: "The Legend of Zelda: Breath of the Wild" is one name.
_CAP_WORD = r"[a-z]?[A-Z][\w&'’.-]*[\w]"
_CAP_RUN_RE = re.compile(
    rf"{_CAP_WORD}(?:(?::\s*|\s+)(?:of\s+the\s+|of\s+|de\s+|the\s+)?{_CAP_WORD})*"
)
_ACRONYM_RE = re.compile(r"\b(?:[A-Z]\.){2,}")
# "FY2022", "Q2", "H1", "FY23": periods, not names.
_PERIOD_WORD_RE = re.compile(r"(?i)(?:fy|cy|q[1-4]|h[12])['’]?(?:\d{2}|\d{4})?[.:,]?$")
_HAS_ACRONYM_RE = re.compile(r"\b[A-Z]{2,}\b")


def undot(text: str) -> str:
    """Dotted acronyms without their dots: "U.S. Open" -> "US Open" (both spellings occur)."""
    return _ACRONYM_RE.sub(lambda m: m.group().replace(".", ""), text)


_CJK_PLACE_RE = re.compile(rf"([{CJK_CHARS}]{{2,3}}?)(?:市委|市|省|县)")
_CJK_COMPANY_RE = re.compile(rf"([{CJK_CHARS}]{{2,4}}?)(?:科技|集团|股份|公司|银行|控股|电网|医药)")
_CJK_NOT_NAME = re.compile("[哪什何个该本全我你其城各这那每]")


@dataclass(frozen=True, slots=True)
class Entity:
    text: str  # as the question writes it, possessive dropped
    terms: frozenset[str]  # its tokens; for Chinese the name itself (matched as a substring)
    cjk: bool = False
    surface: str = ""  # the words the question used, suffix included ("青屿市", "Kelbrook's")

    def named_in(self, text: str, terms: frozenset[str]) -> bool:
        if self.cjk:
            return self.text in text
        # The first word of a name carries it ("Norrvik" of "Norrvik Shipping"); a name
        # written in full elsewhere also counts.
        first = tokenize(self.text.split()[0])
        if (first and first[0] in terms) or self.terms <= terms:
            return True
        # A long title quoted in part: "Breath of the Wild" names "The Legend of Zelda:
        # Breath of the Wild".
        if len(self.terms) >= 3 and 2 * len(self.terms & terms) >= len(self.terms):
            return True
        # "US Open" is also written "U.S. Open", whose tokens differ.
        if _HAS_ACRONYM_RE.search(self.text):
            return self.text.lower() in undot(text).lower()
        return False


def question_entities(question: str) -> list[Entity]:
    """The cities, companies and people a question names (not its first word)."""
    out: list[Entity] = []
    q = undot(question.strip())
    for m in _CAP_RUN_RE.finditer(q):
        # A sentence's first word is capitalised anyway ("… FY2022? Calculate the ratio").
        if m.start() == 0 or re.search(r"[.?!;]\s+$", q[: m.start()]):
            continue
        words = [re.sub(r"['’]s?$", "", w) for w in re.split(r"\s+", m.group())]
        generic = [
            w.lower().strip(".:") in _GENERIC_CAPS or bool(_PERIOD_WORD_RE.match(w)) for w in words
        ]
        # Generic words at the edges go ("the", "Q2"); inside a title they stay in its text.
        while words and generic[0]:
            words, generic = words[1:], generic[1:]
        while words and generic[-1]:
            words, generic = words[:-1], generic[:-1]
        if not words:
            continue
        text = " ".join(words)
        terms = frozenset(
            t for w, g in zip(words, generic, strict=True) if not g for t in tokenize(w)
        )
        if terms:
            out.append(Entity(text, terms, surface=m.group()))
    for pattern in (_CJK_PLACE_RE, _CJK_COMPANY_RE):
        for m in pattern.finditer(q):
            name = m.group(1)
            if not _CJK_NOT_NAME.search(name) and not any(name in e.text for e in out):
                out.append(Entity(name, frozenset([name]), cjk=True, surface=m.group()))
    # "澜州一季度…": a short name right before the period that opens a Chinese question.
    lead = re.match(rf"([{CJK_CHARS}]{{2,3}}?)(?=(?:19|20)\d\d|[一二三四上下前1-9第]|全年)", q)
    if lead and not out and (PERIOD_RE.match(q, lead.end()) or YEAR_RE.match(q, lead.end())):
        name = lead.group(1)
        if not _CJK_NOT_NAME.search(name):
            out.append(Entity(name, frozenset([name]), cjk=True, surface=name))
    return out


# --- roles --------------------------------------------------------------------------------

# role -> the ways a passage writes it. A "deputy" or "vice" before the word is another office.
ROLES: dict[str, tuple[str, ...]] = {
    "deputy mayor": ("deputy mayor", "vice mayor"),
    "mayor": ("mayor",),
    "party secretary": ("party secretary", "party chief", "secretary of the party"),
    "chief executive": ("chief executive", "ceo"),
    "chief financial officer": ("chief financial officer", "cfo", "finance director"),
    "chair": ("chair", "chairman", "chairwoman", "chairperson", "chairs"),
    "governor": ("governor",),
    "president": ("president",),
    "minister": ("minister",),
    "commissioner": ("commissioner",),
    "director": ("director",),
    "副市长": ("副市长",),
    "市长": ("市长",),
    "市委书记": ("市委书记", "书记"),
    "董事长": ("董事长",),
    "总经理": ("总经理", "总裁"),
    "首席执行官": ("首席执行官", "ceo"),
}
_ROLE_QUESTION = {
    "chairs": "chair",
    "chairman": "chair",
    "chairwoman": "chair",
    "ceo": "chief executive",
    "cfo": "chief financial officer",
    "head of finance": "chief financial officer",
    "vice mayor": "deputy mayor",
    "书记": "市委书记",
}
_OTHER_OFFICE = re.compile(r"(?:deputy|vice|assistant|former|ex-)[\s-]*$|[副前原]$", re.IGNORECASE)


def _role_at(text: str, phrase: str) -> list[int]:
    if re.match(r"[a-z]", phrase):
        return [m.start() for m in re.finditer(rf"\b{re.escape(phrase)}\b", text, re.IGNORECASE)]
    return [m.start() for m in re.finditer(re.escape(phrase), text)]


def question_role(question: str) -> str | None:
    """The office a "who" question asks about ("mayor", "party secretary", "董事长"), or None."""
    if not re.search(r"\bwho(?:m|se)?\b|谁|哪位|何人", question, re.IGNORECASE):
        return None
    best: tuple[int, str] | None = None
    for role in [*ROLES, *_ROLE_QUESTION]:
        for at in _role_at(question, role):
            if not _OTHER_OFFICE.search(question[:at]) or role.startswith(("deputy", "副")):
                name = _ROLE_QUESTION.get(role, role)
                if best is None or len(role) > best[0]:
                    best = (len(role), name)
    return best[1] if best else None


def carries_role(text: str, role: str) -> bool:
    """Whether ``text`` names the office ``role`` itself (a deputy's office is another one)."""
    for phrase in ROLES.get(role, (role,)):
        for at in _role_at(text, phrase):
            if role.startswith(("deputy", "副")) or not _OTHER_OFFICE.search(
                text[max(0, at - 12) : at]
            ):
                return True
    return False


# --- the question's constraints -------------------------------------------------------------

_QUESTION_WORDS = frozenset(
    tokenize(
        "what which who whom how many much when where was were is are did does do the of in "
        "for at by value amount number figure level total record recorded report reported "
        "end early late",
        keep_stop_words=True,
    )
)


@dataclass(frozen=True, slots=True)
class Constraints:
    entities: tuple[Entity, ...]
    period: Period | None
    role: str | None
    quantity: str  # the question without entity, period and question words: "hospitals"
    quantity_terms: frozenset[str]


def _strip_periods(text: str) -> str:
    text = PERIOD_RE.sub(" ", text)
    return YEAR_RE.sub(" ", text)


def question_constraints(question: str) -> Constraints:
    entities = question_entities(question)
    rest = _strip_periods(undot(question))
    for e in entities:
        if e.cjk:
            rest = rest.replace(e.surface or e.text, " ")
        for word in [] if e.cjk else e.text.split():
            rest = re.sub(rf"\b{re.escape(word)}(?:['’]s?)?(?!\w)", " ", rest)
    rest = re.sub(r"[?？。.,，]|是多少|有多少|多少|是谁|哪位|的|年", " ", rest)
    terms = frozenset(t for t in tokenize(rest) if t not in _QUESTION_WORDS and not t.isdigit())
    words = [
        w
        for w in re.findall(rf"[A-Za-z][\w&'-]*|[{CJK_CHARS}]+", rest)
        if tokenize(w) and set(tokenize(w)) & terms
    ]
    return Constraints(
        entities=tuple(entities),
        period=question_period(question),
        role=question_role(question),
        quantity=" ".join(words),
        quantity_terms=terms,
    )


def unsupported_by(
    c: Constraints,
    passages: Sequence[tuple[str, str, str | None]],
    *,
    amount: bool,
    entities: bool = True,
) -> str | None:
    """Why ``passages`` (text, title, date) cannot back an answer to the question, or None.

    The LLM path's guard: an answer citing only passages that do not name the question's
    entity, that state only other periods, or that do not name the office asked about is
    not an answer to this question.
    """
    if not passages:
        return None
    for e in c.entities if entities else ():
        if not any(
            e.named_in(f"{t}\n{h}", frozenset(tokenize(f"{t} {h}"))) for t, h, _ in passages
        ):
            return f"the cited passage does not mention {e.text}"
    if c.period is not None:
        stated = [
            p.with_year(int(d[:4]) if d and d[:4].isdigit() else None)
            for t, h, d in passages
            for p in periods(f"{h}\n{t}")
        ]
        if stated and all(period_conflict(c.period, p, amount=amount) for p in stated):
            return f"the cited passage gives {stated[0].label()}, not {c.period.label()}"
    if c.role is not None and not any(carries_role(t, c.role) for t, _, _ in passages):
        return f"the cited passage does not name the {c.role}"
    return None
