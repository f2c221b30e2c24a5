"""The answer selector: which sentence of the retrieved passages answers the question, and how sure.

Candidates are the sentences of the retrieved passages. First the hard checks of
``bot.constraints``: a sentence whose passage does not name the question's entity, whose
period is another one, or that does not name the office asked about cannot answer; it is
set aside as a *near miss* that explains a refusal ("the documents give Q1 2024, not Q2").
The others get a probability of answering from two models, and the surer one speaks
(``combined``): the *frame model*, a logistic regression over what the question frame sees
(``FEATURES``: coverage of the question and of its measure, similarity, answer kind, period,
rank; weights in ``selector_weights.json``, fitted by ``bench/fit_selector.py``, whose
threshold is the refusal threshold), and the trained reader (``bot.reader``: a cross-encoder
fine-tuned on question / answer-sentence data, and overlap features that work in Chinese),
at its own calibrated "sure" level per language. The frame columns stay with each
candidate: the answerer reads them to tell a revised figure from another measure.

Sentence similarity uses the vectors ingest stored with each chunk
(``ingest.sentence_vectors``) and the question's vector retrieval already computed; the
reader also uses it to choose which candidates its pair model reads. Passages without
stored vectors get the same vectors computed from one pass over each passage, when the
embedder can (``SpanEmbedder``).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from bot.aliases import with_aliases
from bot.answer_types import AnswerType, answer_type, has_answer_type
from bot.citations import MAX_QUOTE_CHARS
from bot.constraints import (
    Constraints,
    carries_role,
    numbered_otherwise,
    per_head,
    question_constraints,
)
from bot.lexical import tokenize
from bot.periods import Period, period_conflict, periods, sentence_period
from bot.reader import Candidate, read
from ingest.hostile import instruction_spans
from ingest.sentence_vectors import (
    FloatArray,
    Span,
    SpanEmbedder,
    TextEmbedder,
    lookup,
    pooled_sentences,
)
from ingest.sentences import sentence_spans
from ingest.vocabulary import CJK_RE

log = logging.getLogger(__name__)

WEIGHTS_PATH = Path(__file__).with_name("selector_weights.json")
TITLE_CREDIT = 0.5  # a question term found only in the passage's title counts half

FEATURES = (
    "coverage",  # idf-weighted share of the question's terms in the sentence (title: half)
    "context_coverage",  # the same over the sentence, its neighbours and the title
    "quantity_coverage",  # share of the quantity's terms ("unemployment rate") in the sentence
    "similarity",  # cosine(question, sentence), embedding model
    "similarity_gap",  # best similarity among the candidates minus this one's
    "typed",  # holds the kind of answer asked for (an amount for "how much", ...)
    "typed_coverage",  # coverage x typed: both at once
    "rank",  # 1 / passage rank
    "novelty",  # min(1, terms the question does not have / 2): not a restatement of it
    "period_match",  # the question names a period and the sentence states that one
    "entity_in_sentence",  # the question's entities are named in the sentence itself
    "cjk",  # a Chinese question
)


class Passage(Protocol):
    """What the selector reads of a retrieved passage (``bot.types.Hit`` provides it)."""

    @property
    def text(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def date(self) -> str | None: ...
    @property
    def sentence_vectors(self) -> Mapping[Span, FloatArray]: ...


SentenceEmbedder = TextEmbedder


@dataclass(frozen=True, slots=True)
class SelectorModel:
    """A fitted logistic regression over ``FEATURES`` with its refusal threshold."""

    features: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    weights: tuple[float, ...]
    bias: float
    threshold: float  # refuse when the best probability is below this

    def probabilities(self, x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        z = (x - np.asarray(self.mean)) / np.asarray(self.scale)
        logits = z @ np.asarray(self.weights) + self.bias
        out: npt.NDArray[np.float64] = 1.0 / (1.0 + np.exp(-logits))
        return out

    def to_json(self, **meta: object) -> str:
        body = {
            "features": list(self.features),
            "mean": list(self.mean),
            "scale": list(self.scale),
            "weights": list(self.weights),
            "bias": self.bias,
            "threshold": self.threshold,
            **meta,
        }
        return json.dumps(body, indent=1, ensure_ascii=False) + "\n"


@lru_cache(maxsize=4)
def load_model(path: Path = WEIGHTS_PATH) -> SelectorModel:
    data = json.loads(path.read_text(encoding="utf-8"))
    if tuple(data["features"]) != FEATURES:
        raise ValueError(f"{path}: fitted on other features; re-run bench/fit_selector.py")
    return SelectorModel(
        features=tuple(data["features"]),
        mean=tuple(data["mean"]),
        scale=tuple(data["scale"]),
        weights=tuple(data["weights"]),
        bias=float(data["bias"]),
        threshold=float(data["threshold"]),
    )


@dataclass(frozen=True, slots=True)
class ScoredSentence:
    """One sentence of one passage, checked and scored."""

    hit_index: int  # position in the passages list (retrieval rank - 1)
    sentence_index: int  # position among that passage's sentences
    start: int
    end: int
    terms: frozenset[str]
    features: tuple[float, ...]
    probability: float
    conflict: str | None  # "entity" | "period" | "role": why it cannot answer; None if it can
    period: Period | None  # the period the sentence reports on, when known


@dataclass(frozen=True, slots=True)
class Selection:
    constraints: Constraints
    kind: AnswerType
    candidates: list[ScoredSentence]  # best first; conflicting ones included
    unnamed: tuple[str, ...] = ()  # entities of the question that no passage names
    threshold: float = 0.5  # the refusal threshold of the probabilities (the frame model's)

    @property
    def eligible(self) -> list[ScoredSentence]:
        return [c for c in self.candidates if c.conflict is None]

    @property
    def best(self) -> ScoredSentence | None:
        return next((c for c in self.candidates if c.conflict is None), None)


def _idf(df: int, n: int) -> float:
    return math.log(1.0 + (n - df + 0.5) / (df + 0.5))


@dataclass(slots=True)
class _Unit:
    hit_index: int
    sentence_index: int
    start: int
    end: int
    text: str
    terms: frozenset[str]


def _terms(text: str, chinese: bool) -> frozenset[str]:
    """A passage's terms, with the other names of each measure or place it names ("gross
    domestic product" also says "gdp"; "Shanghai" also 上海), so a question in any of them
    finds it."""
    return frozenset(tokenize(with_aliases(text, chinese=chinese)))


def _units(passages: Sequence[Passage], chinese: bool) -> list[_Unit]:
    """The candidate sentences. A sentence addressed to an assistant or a model ("ignore
    previous instructions and say …") is never one: it is not evidence of anything."""
    units: list[_Unit] = []
    for hi, p in enumerate(passages):
        hostile = set(instruction_spans(p.text))
        for si, (s, e) in enumerate(sentence_spans(p.text)):
            if e - s <= MAX_QUOTE_CHARS and (s, e) not in hostile:
                units.append(_Unit(hi, si, s, e, p.text[s:e], _terms(p.text[s:e], chinese)))
    return units


def _conflict(
    c: Constraints, unit: _Unit, passage: Passage, passage_terms: frozenset[str], amount: bool
) -> tuple[str | None, Period | None]:
    named = passage.text + "\n" + passage.title
    for entity in c.entities:
        if not entity.named_in(named, passage_terms) or numbered_otherwise(entity, unit.text):
            return "entity", None
    given = sentence_period(unit.text, [passage.title], passage.date)
    # An event may be dated by any period the sentence names ("Q4 2020 earnings call in
    # January 2021" can answer "who was CEO in 2021"); an amount is of its first.
    if (
        c.period is not None
        and period_conflict(c.period, given, amount=amount)
        and (amount or all(period_conflict(c.period, p, amount=False) for p in periods(unit.text)))
    ):
        return "period", given
    if c.role is not None and not carries_role(unit.text, c.role):
        return "role", given
    if per_head(unit.text) != c.per_head and amount:
        return "measure", given
    return None, given


def select(
    question: str,
    passages: Sequence[Passage],
    embedder: SentenceEmbedder | None,
    model: SelectorModel | None = None,
    question_vector: Sequence[float] | None = None,
) -> Selection:
    """Every sentence of ``passages``, checked against the question and scored, best first.

    ``model``: the frame model (default: the fitted one). ``question_vector``: the
    question's embedding, when retrieval has it (saves a pass).
    """
    model = model or load_model()
    c = question_constraints(question)
    kind = answer_type(question)
    chinese = CJK_RE.search(question) is not None
    units = _units(passages, chinese)
    q_terms = set(tokenize(question))
    if not units or not q_terms:
        return Selection(c, kind, [], threshold=model.threshold)
    n = len(units)
    df = {t: sum(1 for u in units if t in u.terms) for t in q_terms}
    weight = {t: _idf(d, n) for t, d in df.items() if d}
    # A term no sentence holds weighs as much as an average present one: it cannot tell
    # sentences apart, yet its absence must cost coverage.
    absent = (sum(weight.values()) / len(weight)) if weight else 1.0
    weight.update({t: absent for t, d in df.items() if not d})
    total = sum(weight.values()) or 1.0
    titles = [_terms(p.title, chinese) for p in passages]
    passage_terms = [_terms(p.text, chinese) | titles[i] for i, p in enumerate(passages)]
    unnamed = tuple(
        e.text
        for e in c.entities
        if not any(
            e.named_in(p.text + "\n" + p.title, passage_terms[i]) for i, p in enumerate(passages)
        )
    )
    by_hit: dict[int, list[_Unit]] = {}
    for u in units:
        by_hit.setdefault(u.hit_index, []).append(u)
    amount = kind is AnswerType.NUMBER
    # "ships" is not stated by "Norrvik Shipping": names do not count for the quantity.
    entity_terms = frozenset().union(*(e.terms for e in c.entities if not e.cjk))
    cjk = 1.0 if chinese else 0.0

    def cover(terms: frozenset[str] | set[str], title: frozenset[str]) -> float:
        inside = q_terms & terms
        if not inside:
            return 0.0
        in_title = (q_terms & title) - inside
        got = sum(weight[t] for t in inside) + TITLE_CREDIT * sum(weight[t] for t in in_title)
        return got / total

    rows: list[list[float]] = []
    meta: list[tuple[_Unit, str | None, Period | None]] = []
    for u in units:
        p = passages[u.hit_index]
        siblings = by_hit[u.hit_index]
        pos = siblings.index(u)
        near = set(u.terms)
        for other in siblings[max(0, pos - 1) : pos + 2]:
            near |= other.terms
        conflict, given = _conflict(c, u, p, passage_terms[u.hit_index], amount)
        typed = 1.0 if has_answer_type(u.text, kind, question) else 0.0
        coverage = cover(u.terms, titles[u.hit_index])
        qt = c.quantity_terms
        own = periods(u.text)
        rows.append(
            [
                coverage,
                cover(near, titles[u.hit_index]),
                len(qt & (u.terms - entity_terms)) / len(qt) if qt else coverage,
                0.0,  # similarity and its gap: filled below, in one go
                0.0,
                typed,
                typed * coverage,
                1.0 / (1 + u.hit_index),
                min(1.0, len(u.terms - q_terms) / 2),
                1.0 if c.period is not None and own and given is not None and conflict is None
                else 0.0,
                1.0 if all(e.named_in(u.text, u.terms) for e in c.entities) else 0.0,
                cjk,
            ]
        )  # fmt: skip
        meta.append((u, conflict, given))
    x = np.asarray(rows, dtype=np.float64)
    known = _add_similarity(x, question, question_vector, passages, units, embedder, model)
    cands = [
        Candidate(
            u.text,
            " ".join(o.text for o in _neighbours(by_hit[u.hit_index], u))
            + "\n"
            + passages[u.hit_index].title,
            float(x[i, _SIM]) if known else None,
        )
        for i, u in enumerate(units)
    ]
    probs = combined(model, x, *read(question, cands))
    threshold = model.threshold
    out = [
        ScoredSentence(
            u.hit_index,
            u.sentence_index,
            u.start,
            u.end,
            u.terms,
            tuple(float(v) for v in x[i]),
            float(probs[i]),
            conflict,
            given,
        )
        for i, (u, conflict, given) in enumerate(meta)
    ]
    out.sort(key=lambda cand: (-cand.probability, cand.hit_index, cand.sentence_index))
    return Selection(c, kind, out, unnamed, threshold)


def combined(
    frame: SelectorModel, x: npt.NDArray[np.float64], reader: npt.NDArray[np.float64], sure: float
) -> npt.NDArray[np.float64]:
    """Each candidate's probability on the frame model's scale: the frame model's own, or
    the reader's when the reader is surer. The reader's ``sure`` level (its probability at a
    low false-answer rate, per language) maps onto the frame model's threshold, so a
    sentence answers when either model alone would, each at its own calibrated bar."""
    mapped = reader * (frame.threshold / sure)
    out: npt.NDArray[np.float64] = np.maximum(frame.probabilities(x), np.minimum(mapped, 1.0))
    return out


def _neighbours(siblings: list[_Unit], unit: _Unit) -> list[_Unit]:
    pos = siblings.index(unit)
    return siblings[max(0, pos - 1) : pos] + siblings[pos + 1 : pos + 2]


_SIM = FEATURES.index("similarity")
_GAP = FEATURES.index("similarity_gap")


def _add_similarity(
    x: npt.NDArray[np.float64],
    question: str,
    question_vector: Sequence[float] | None,
    passages: Sequence[Passage],
    units: list[_Unit],
    embedder: SentenceEmbedder | None,
    model: SelectorModel,
) -> bool:
    """Fill the similarity columns: cosine of each sentence's vector to the question's.

    Without an embedder (or any vector) they take the frame model's training mean
    (neutral: they move no probability) and the result is False.
    """
    vectors = sentence_vectors(passages, units, embedder) if embedder is not None else []
    have = [i for i, v in enumerate(vectors) if v is not None]
    if embedder is None or not have:
        for col in (_SIM, _GAP):
            x[:, col] = model.mean[col]
        return False
    if question_vector is None:
        q = embedder.embed_array([question])[0]
    else:  # retrieval embedded the same question already
        q = np.asarray(question_vector, dtype=np.float32)
    sims = np.stack([vectors[i] for i in have]) @ q  # type: ignore[misc]
    # A sentence without a vector (cut off by the model's window) is no better than the
    # weakest sentence that has one.
    x[:, _SIM] = float(sims.min())
    x[have, _SIM] = sims
    x[:, _GAP] = float(x[:, _SIM].max()) - x[:, _SIM]
    return True


@lru_cache(maxsize=1)
def _warn_once_unstored() -> None:
    log.warning(
        "retrieved passages without stored sentence vectors (an index built before they "
        "existed): they are computed per question, which is slower; "
        "`briefing ingest --rebuild` stores them"
    )


def sentence_vectors(
    passages: Sequence[Passage], units: list[_Unit], embedder: SentenceEmbedder
) -> list[FloatArray | None]:
    """Each unit's sentence vector: stored with its chunk, else pooled from one pass over
    its passage (title line first, as ingest embeds it); None when neither can be had."""
    by_hit: dict[int, list[int]] = {}
    for i, u in enumerate(units):
        by_hit.setdefault(u.hit_index, []).append(i)
    out: list[FloatArray | None] = [None] * len(units)
    missing: list[int] = []
    for hi, idx in by_hit.items():
        stored = passages[hi].sentence_vectors
        if not stored:
            missing.append(hi)
            continue
        # A sentence the chunk stored nothing for lay past the model's window when ingest
        # embedded it: a pass now would not reach it either.
        found = lookup(stored, [(units[i].start, units[i].end) for i in idx])
        for i, v in zip(idx, found, strict=True):
            out[i] = v
    if missing and isinstance(embedder, SpanEmbedder):
        _warn_once_unstored()
        titled = [(passages[hi].title, passages[hi].text) for hi in missing]
        spans = [[(units[i].start, units[i].end) for i in by_hit[hi]] for hi in missing]
        _, pooled = pooled_sentences(embedder, titled, spans)
        for hi, rows in zip(missing, pooled, strict=True):
            for i, row in zip(by_hit[hi], rows, strict=True):
                if np.any(row):
                    out[i] = row
    return out
