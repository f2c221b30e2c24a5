"""What a question pins down — entity, period, role — and whether a passage sentence carries it.

Pure functions over text. The answerer uses them to refuse rather than quote a figure
for the wrong city, the wrong quarter or the wrong office ("Who is the mayor?" answered
with the party secretary). Periods are read by ``bot.periods``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from bot.aliases import place_forms, places_in
from bot.lexical import tokenize
from bot.periods import PERIOD_RE, YEAR_RE, Period, period_conflict, periods, question_period
from ingest.vocabulary import CJK_CHARS, MONTHS

# --- entities -----------------------------------------------------------------------------

# Capitalised words that name no entity: periods, units, abbreviations of measures.
_GENERIC_CAPS_TEXT = """
    q1 q2 q3 q4 h1 h2 gdp cpi ppi ev evs r&d m&a teu ceo cfo coo cto i fy the a an in of what
    who which when where how why is was were did does do are total first second third fourth
    has have had can could will would should 10k 10q 8k 20f 1q 2q 3q 4q 1h 2h 5g 3d 2d 4k
"""
_GENERIC_CAPS = frozenset(_GENERIC_CAPS_TEXT.split()) | frozenset(MONTHS)  # and every month
# A run of capitalised words ("iPhone" and "eBay" count), with "of"/"de"/"the" and a
# colon inside titles: "The Harbour Plan: Phase Two of the Renewal" is one name.
# A name may open with digits ("4K Media", "7-Eleven"); a lone capital after them is a word too.
_CAP_WORD = r"(?:\d+[A-Z][A-Za-z0-9&'’.-]*|[a-z]?[A-Z][A-Za-z0-9&'’.-]*[A-Za-z0-9])"
# A number right after a name is part of it ("County 7", "Line 12"), a year is not.
_NAME_NUMBER = r"(?:\s+(?!(?:19|20)\d\d\b)\d{1,4}\b(?![.,]\d))?"
_CAP_RUN_RE = re.compile(
    rf"{_CAP_WORD}(?:(?::\s*|\s+)(?:of\s+the\s+|of\s+|de\s+|the\s+)?{_CAP_WORD})*" + _NAME_NUMBER
)
_ACRONYM_RE = re.compile(r"\b(?:[A-Z]\.){2,}")
# "FY2022", "Q2", "H1", "FY23": periods, not names.
_PERIOD_WORD_RE = re.compile(r"(?i)(?:fy|cy|q[1-4]|h[12])['’]?(?:\d{2}|\d{4})?[.:,]?$")
_HAS_ACRONYM_RE = re.compile(r"\b[A-Z]{2,}\b")


def undot(text: str) -> str:
    """Dotted acronyms without their dots: "U.K. Trade" -> "UK Trade" (both spellings occur)."""
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
        # A place is named in either language ("Shanghai" = "上海").
        others = [f for f in place_forms(self.text) if f != self.text]
        if any(f in text if not f.isascii() else f.lower() in text.lower() for f in others):
            return True
        if self.cjk:
            return self.text in text
        # Digits are part of a name: "County 7" is not named by "County 70".
        if not {t for t in self.terms if t.isdigit()} <= terms:
            return False
        # The first word of a name carries it ("Norrvik" of "Norrvik Shipping"); a name
        # written in full elsewhere also counts.
        first = tokenize(self.text.split()[0])
        if (first and first[0] in terms) or self.terms <= terms:
            return True
        # A long title quoted in part: "Phase Two of the Renewal" names "The Harbour
        # Plan: Phase Two of the Renewal".
        if len(self.terms) >= 3 and 2 * len(self.terms & terms) >= len(self.terms):
            return True
        # "UK Trade" is also written "U.K. Trade", whose tokens differ.
        if _HAS_ACRONYM_RE.search(self.text):
            return self.text.lower() in undot(text).lower()
        return False


_ASKS_RE = re.compile(
    r"[?？]|^\s*(?:what|which|who|whom|whose|when|where|why|how|is|are|was|were|did|does|do"
    r"|has|have|had|can|could|will|would|should|list|name|give|show|tell|describe|compare"
    r"|calculate|explain)\b",
    re.IGNORECASE,
)


def is_question(text: str) -> bool:
    """A question or request, not a followed topic ("Weifang port cargo")."""
    return _ASKS_RE.search(text) is not None


def numbered_otherwise(entity: Entity, sentence: str) -> bool:
    """Whether ``sentence`` speaks of another member of a numbered name's series ("County 7"
    asked, "County 17 …" said) and not of the one asked about."""
    m = re.fullmatch(r"(.*?[A-Za-z])[\s-]*(\d+)", entity.text)
    if m is None:
        return False
    said = re.findall(rf"\b{re.escape(m.group(1))}[\s-]*(\d+)\b", sentence, re.IGNORECASE)
    return bool(said) and m.group(2) not in said


def question_entities(question: str) -> list[Entity]:
    """The cities, companies and people a question names (a question's first word only
    when it cannot be sentence case: a followed topic opens with its subject)."""
    out: list[Entity] = []
    q = undot(question.strip())
    topic = not is_question(q)
    for m in _CAP_RUN_RE.finditer(q):
        words = [re.sub(r"['’]s?$", "", w) for w in re.split(r"\s+", m.group())]
        # A sentence's first word is capitalised anyway ("… FY2022? Calculate the ratio"),
        # unless it is a question word the run goes on from ("Is Corvane a …", "Has Halden …").
        opens = not topic and (m.start() == 0 or re.search(r"[.?!;]\s+$", q[: m.start()]))
        if opens and (len(words) == 1 or words[0].lower().strip(".:") not in _GENERIC_CAPS):
            continue
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
    # Period phrases go first: "前三季度青屿市" names 青屿, not "度青屿".
    unperiod = PERIOD_RE.sub(lambda m: " " * len(m.group()), q)
    for pattern in (_CJK_PLACE_RE, _CJK_COMPANY_RE):
        for m in pattern.finditer(unperiod):
            name = m.group(1)
            if not _CJK_NOT_NAME.search(name) and not any(name in e.text for e in out):
                out.append(Entity(name, frozenset([name]), cjk=True, surface=m.group()))
    # A known place however it is written: "qingdao's trade" (lower case), 青岛 (no 市).
    for name in places_in(q):
        forms = {f.lower() for f in place_forms(name)}
        if not any(e.text.lower() in forms or name.lower() in e.text.lower() for e in out):
            cjk = not name.isascii()
            terms = frozenset([name]) if cjk else frozenset(tokenize(name))
            if terms:
                out.append(Entity(name, terms, cjk=cjk, surface=name))
    # "2021年上海的GDP…", "雅芳河的发源地…": a short name before 的 that opens the question.
    owner = re.match(rf"(?:(?:19|20)\d\d\s*年)?([{CJK_CHARS}]{{2,4}}?)的", q)
    if owner and not out and not _CJK_NOT_NAME.search(owner.group(1)):
        name = owner.group(1)
        out.append(Entity(name, frozenset([name]), cjk=True, surface=name))
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


# --- per-person measures ----------------------------------------------------------------------

# "GDP per person" is another measure than GDP: a figure per head never answers a question
# about the total, and the other way round.
_PER_HEAD_RE = re.compile(
    r"\bper[\s-](?:capita|person|head|resident|inhabitant)\b|\bper-capita\b|人均", re.IGNORECASE
)


def per_head(text: str) -> bool:
    return _PER_HEAD_RE.search(text) is not None


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
    per_head: bool = False  # asks for a figure per person ("GDP per capita", 人均)


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
        for w in re.findall(rf"\d*[A-Za-z][\w&'-]*|[{CJK_CHARS}]+", rest)
        if tokenize(w) and set(tokenize(w)) & terms
    ]
    return Constraints(
        entities=tuple(entities),
        period=question_period(question),
        role=question_role(question),
        quantity=" ".join(words),
        quantity_terms=terms,
        per_head=per_head(question),
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
