"""The offline answerer: quote the sentences of the retrieved passages that answer best.

Nothing is generated: every sentence of the answer is an exact substring of a passage,
followed by its citation marker. A sentence scores by how much of the question's weight
(idf over the retrieved sentences) it covers, whether it holds the kind of thing asked
for (an amount for "how much", a date for "when", ...), and its passage's rank. When the
best evidence is weak the answerer refuses and shows the nearest passages instead.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from bot.citations import MAX_QUOTE_CHARS, check_citations
from bot.lexical import tokenize
from bot.sentences import sentence_spans
from bot.types import Answer, Citation, Hit
from ingest.vocabulary import CJK_CHARS, CJK_RE, MONTH_PATTERN

# Evidence (the share of the question's idf weight a sentence covers, reduced when the
# asked-for kind of answer is missing) below which the answerer refuses. Measured on RGB
# (see tests/test_extractive.py and the report): answerable questions mostly score ≥ 0.6,
# questions whose passages lack the answer mostly < 0.4.
DEFAULT_MIN_EVIDENCE = 0.45
REFUSAL_TEXT = "I could not find this in the documents."
TYPE_MISSING_FACTOR = 0.4  # evidence kept when the sentence lacks the asked-for kind of answer
OTHER_YEAR_FACTOR = 0.7  # evidence kept when a sentence names only years the question does not
TITLE_CREDIT = 0.5  # a question term found only in the passage's title counts half
FOLLOWER_RATIO = 0.8  # further sentences must score at least this share of the best one
REDUNDANT_JACCARD = 0.6  # a further sentence this close to a chosen one adds nothing
# A name the question asks about ("Mars", "Reykjavik") that no retrieved passage mentions
# means the documents are about something else: it weighs this many times the heaviest
# present term, so "What is the GDP of Mars?" is refused instead of answered about GDP.
ABSENT_NAME_FACTOR = 2.0
_QUESTION_NAME_RE = re.compile(r"(?<!^)(?<![.?!]\s)\b[A-Z][\w'’.-]*[\w]")


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
            r"|多少|几|人数|数量|金额|总额|总量|比例|比重|增长率|增速|价格|票房|得分|比分",
            re.IGNORECASE,
        ),
    ),
    (
        AnswerType.PERSON,
        re.compile(
            r"\bwho(?:m|se)?\b|\bwhich\s+(?:person|company|firm|organi[sz]ation|team|player)\b"
            r"|谁|哪位|何人|得主|获得者|冠军|获奖者|主演|导演|作者|创始人",
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


def answer_type(question: str) -> AnswerType:
    """What kind of answer the question asks for (the first matching kind wins)."""
    for kind, pattern in _TYPE_PATTERNS:
        if pattern.search(question):
            return kind
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
            for m in _NUMBER_RE.finditer(sentence)
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


@dataclass(frozen=True, slots=True)
class ScoredSentence:
    """One sentence of one hit, scored."""

    hit_index: int  # position in the hits list (its retrieval rank - 1)
    sentence_index: int  # position among that hit's sentences
    start: int
    end: int
    evidence: float  # 0..1, compared with the refusal threshold
    score: float  # evidence plus answer-kind and rank preferences; orders candidates
    terms: frozenset[str]


def _date_terms(iso: str | None) -> set[str]:
    return {iso[:4]} if iso and _YEAR_RE.fullmatch(iso[:4]) else set()


def _idf(df: int, n: int) -> float:
    return math.log(1.0 + (n - df + 0.5) / (df + 0.5))


def question_names(question: str) -> set[str]:
    """Terms of the capitalised words inside the question (not its first word)."""
    names: set[str] = set()
    for m in _QUESTION_NAME_RE.finditer(question.strip()):
        names.update(tokenize(m.group()))
    return names


def score_sentences(question: str, hits: Sequence[Hit]) -> list[ScoredSentence]:
    """Every sentence of every hit, best first."""
    q_terms = set(tokenize(question))
    kind = answer_type(question)
    q_years = set(_YEAR_RE.findall(question))
    units: list[tuple[int, int, int, int, frozenset[str]]] = []
    for hi, hit in enumerate(hits):
        for si, (s, e) in enumerate(sentence_spans(hit.text)):
            if e - s > MAX_QUOTE_CHARS:
                continue
            units.append((hi, si, s, e, frozenset(tokenize(hit.text[s:e]))))
    if not q_terms or not units:
        return []
    n = len(units)
    # What a passage's metadata says counts for each of its sentences, at half weight: its
    # title, and the year it was published ("in 2020" is answered by a 2020 release).
    title_terms = [set(tokenize(hit.title)) | _date_terms(hit.date) for hit in hits]
    df = {t: sum(1 for u in units if t in u[4]) for t in q_terms}
    weight = {t: _idf(d, n) for t, d in df.items() if d}
    # A term no sentence holds cannot tell sentences apart, and its raw idf (the largest)
    # would swamp the others: it weighs as much as an average present term...
    absent = (sum(weight.values()) / len(weight)) if weight else 1.0
    weight.update({t: absent for t, d in df.items() if not d})
    # ...unless it is a name that no passage (nor its title) mentions at all.
    mentioned = set().union(*(u[4] for u in units), *title_terms)
    heaviest = max(weight.values(), default=1.0)
    for name in question_names(question) - mentioned:
        if name in weight:
            weight[name] = ABSENT_NAME_FACTOR * heaviest
    total = sum(weight.values())
    out: list[ScoredSentence] = []
    for hi, si, s, e, terms in units:
        in_sentence = q_terms & terms
        in_title = (q_terms & title_terms[hi]) - in_sentence
        covered = sum(weight[t] for t in in_sentence) + TITLE_CREDIT * sum(
            weight[t] for t in in_title
        )
        coverage = covered / total if total else 0.0
        if not in_sentence:
            coverage = 0.0  # a title alone says nothing about this sentence
        typed = has_answer_type(hits[hi].text[s:e], kind, question)
        evidence = coverage * (1.0 if typed else TYPE_MISSING_FACTOR)
        years = set(_YEAR_RE.findall(hits[hi].text[s:e]))
        if q_years and years and not years & q_years:
            # "the 2019 Tour de France" does not answer a question about 2021.
            evidence *= OTHER_YEAR_FACTOR
        # Novel terms: a sentence that only restates the question answers nothing.
        novelty = min(1.0, len(terms - q_terms) / 5)
        score = evidence + 0.1 * novelty + 0.1 / (1 + hi)
        out.append(ScoredSentence(hi, si, s, e, evidence, score, terms))
    out.sort(key=lambda c: (-c.score, c.hit_index, c.sentence_index))
    return out


def _jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b) if a | b else 1.0


@dataclass(slots=True)
class _Pick:
    hit_index: int
    first: ScoredSentence
    last: ScoredSentence


def _select(
    candidates: Sequence[ScoredSentence],
    max_sentences: int,
    min_evidence: float,
    hits: Sequence[Hit],
) -> list[_Pick]:
    best = candidates[0]
    picks = [_Pick(best.hit_index, best, best)]
    chosen_terms = [best.terms]
    used = 1
    for cand in candidates[1:]:
        if used >= max_sentences:
            break
        if cand.evidence < min_evidence or cand.score < FOLLOWER_RATIO * best.score:
            break  # sorted by score: nothing further qualifies either
        if any(_jaccard(cand.terms, t) >= REDUNDANT_JACCARD for t in chosen_terms):
            continue
        same_hit = next((p for p in picks if p.hit_index == cand.hit_index), None)
        text = hits[cand.hit_index].text
        if same_hit is None:
            picks.append(_Pick(cand.hit_index, cand, cand))
        elif cand.sentence_index == same_hit.last.sentence_index + 1 and (
            "\n\n" not in text[same_hit.last.end : cand.start]
        ):
            same_hit.last = cand  # neighbours in one paragraph quote as one span
        elif cand.sentence_index == same_hit.first.sentence_index - 1 and (
            "\n\n" not in text[cand.end : same_hit.first.start]
        ):
            same_hit.first = cand
        else:
            continue  # one quote per passage: prefer other passages for other facts
        chosen_terms.append(cand.terms)
        used += 1
    return picks


def _joiner(previous: str) -> str:
    return "" if previous and CJK_RE.search(previous[-2:]) else " "


def extractive_answer(
    question: str,
    hits: list[Hit],
    *,
    max_sentences: int = 3,
    min_evidence: float = DEFAULT_MIN_EVIDENCE,
) -> Answer:
    """Answer ``question`` with 1–``max_sentences`` verbatim sentences of ``hits``, or refuse.

    ``min_evidence`` is the refusal threshold (see ``DEFAULT_MIN_EVIDENCE``).
    """
    t0 = time.perf_counter()
    candidates = score_sentences(question, hits)
    if not candidates or candidates[0].evidence < min_evidence:
        best = candidates[0].evidence if candidates else 0.0
        return Answer(
            text=REFUSAL_TEXT,
            refused=True,
            nearest=list(hits[:3]),
            timings_ms={"extract_ms": (time.perf_counter() - t0) * 1000},
            notes=[f"best evidence {best:.2f} < {min_evidence:.2f}"],
        )
    picks = _select(candidates, max(1, max_sentences), min_evidence, hits)
    numbers: dict[int, int] = {}
    citations: list[Citation] = []
    parts: list[str] = []
    for pick in picks:
        hit = hits[pick.hit_index]
        quote = hit.text[pick.first.start : pick.last.end]
        n = numbers.setdefault(pick.hit_index, len(numbers) + 1)
        citations.append(Citation(n=n, hit=hit, quote=quote))
        piece = f"{quote} [{n}]"
        parts.append(piece if not parts else _joiner(parts[-1]) + piece)
    answer = Answer(
        text="".join(parts),
        citations=citations,
        timings_ms={"extract_ms": (time.perf_counter() - t0) * 1000},
    )
    check_citations(answer)
    return answer
