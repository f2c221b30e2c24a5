"""The offline answerer: quote the sentences of the retrieved passages that answer, or refuse.

Nothing is generated: every quote is an exact substring of a passage, followed by its
citation marker. ``bot.selector`` checks each sentence against what the question pins
down (entity, period, office) and gives the others a fitted probability of answering.
The answerer then

- answers with the best sentence (and up to two close seconds from other passages) when
  its probability reaches the calibrated threshold;
- gives the most recent document's figure when two documents state different figures for
  the same measure and period (a preliminary and a final release), and names the earlier
  one with its date;
- otherwise refuses, and says why in user words: the entity no passage names, the period
  the documents do give ("Not stated for Q2 2024; the documents give Q1 2024: … [1]",
  clearly marked as not the answer asked for), the office not named, or the quantity not
  stated. The nearest passages are listed with a refusal.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from bot.answer_types import DATE_PARTS_RE, AnswerType
from bot.citations import check_citations, figures, nearest_documents
from bot.selector import ScoredSentence, Selection, SentenceEmbedder, load_model, select
from bot.types import Answer, Citation, Hit
from ingest.vocabulary import CJK_RE

REFUSAL_TEXT = "I could not find this in the documents."
FOLLOWER_RATIO = 0.5  # further sentences need this share of the best one's probability
# A refusal quotes the best sentence that failed a check (another period, entity or office)
# when it scores at least this share of the threshold: close enough to show what is there.
NEAR_MISS_SHARE = 0.5
REDUNDANT_JACCARD = 0.6  # a further sentence this close to a chosen one adds nothing


def default_threshold() -> float:
    """The answer stage's refusal threshold (the frame model's, bench/fit_selector.py)."""
    return load_model().threshold


def _jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b) if a | b else 1.0


@dataclass(slots=True)
class _Pick:
    hit_index: int
    first: ScoredSentence
    last: ScoredSentence


def _picks(
    best: ScoredSentence,
    ranked: Sequence[ScoredSentence],
    max_sentences: int,
    hits: Sequence[Hit],
    threshold: float,
) -> list[_Pick]:
    picks = [_Pick(best.hit_index, best, best)]
    chosen = [best.terms]
    for cand in ranked:
        if len(chosen) >= max_sentences:
            break
        if cand is best:
            continue
        if cand.probability < max(threshold, FOLLOWER_RATIO * best.probability):
            break  # ranked by probability: nothing further qualifies either
        if any(_jaccard(cand.terms, t) >= REDUNDANT_JACCARD for t in chosen):
            continue
        same = next((p for p in picks if p.hit_index == cand.hit_index), None)
        text = hits[cand.hit_index].text
        if same is None:
            picks.append(_Pick(cand.hit_index, cand, cand))
        elif cand.sentence_index == same.last.sentence_index + 1 and (
            "\n\n" not in text[same.last.end : cand.start]
        ):
            same.last = cand  # neighbours in one paragraph quote as one span
        elif cand.sentence_index == same.first.sentence_index - 1 and (
            "\n\n" not in text[cand.end : same.first.start]
        ):
            same.first = cand
        else:
            continue  # one quote per passage: other passages for other facts
        chosen.append(cand.terms)
    return picks


def _joiner(previous: str) -> str:
    return "" if previous and CJK_RE.search(previous[-2:]) else " "


class _Writer:
    """Builds answer text with citations numbered 1..n by first use."""

    def __init__(self, hits: Sequence[Hit]) -> None:
        self.hits = hits
        self.numbers: dict[int, int] = {}
        self.citations: list[Citation] = []
        self.parts: list[str] = []

    def quote(self, hit_index: int, start: int, end: int) -> str:
        hit = self.hits[hit_index]
        text = hit.text[start:end]
        n = self.numbers.setdefault(hit_index, len(self.numbers) + 1)
        if not any(c.n == n and c.quote == text for c in self.citations):
            self.citations.append(Citation(n=n, hit=hit, quote=text))
        return f"{text} [{n}]"

    def add(self, piece: str) -> None:
        self.parts.append(piece if not self.parts else _joiner(self.parts[-1]) + piece)

    def text(self) -> str:
        return "".join(self.parts)


def _amounts(sentence: str) -> set[Decimal]:
    """The figures of a sentence, without years ("for 2023" is the period, not the value)
    or the day and month of a date ("12月10日": when it was said, not what)."""
    return {
        f.scaled
        for f in figures(DATE_PARTS_RE.sub(" ", sentence))
        if f.percent or f.has_scale or not (1900 <= f.value <= 2100 and f.value == int(f.value))
    }


def _revision(
    best: ScoredSentence, eligible: Sequence[ScoredSentence], hits: Sequence[Hit], threshold: float
) -> ScoredSentence | None:
    """Another document's statement of the same measure and period with another figure."""
    if best.period is None:
        return None
    mine = _amounts(hits[best.hit_index].text[best.start : best.end])
    q_cover = best.features[2]  # quantity_coverage
    for cand in eligible:
        if cand is best or cand.probability < threshold / 2:
            continue
        if hits[cand.hit_index].doc_id == hits[best.hit_index].doc_id:
            continue
        if cand.period != best.period or cand.features[2] < min(q_cover, 0.99):
            continue
        theirs = _amounts(hits[cand.hit_index].text[cand.start : cand.end])
        if (
            theirs
            and mine
            and not theirs & mine
            and (hits[cand.hit_index].date and hits[best.hit_index].date)
        ):
            return cand
    return None


def _entity_note(sel: Selection) -> str | None:
    if not sel.unnamed:
        return None
    return f"The documents do not mention {' or '.join(sel.unnamed)}."


def _what(sel: Selection) -> str:
    """The question's measure and subject in a few words, for a refusal."""
    c = sel.constraints
    subject = " and ".join(e.text for e in c.entities)
    quantity = c.quantity or "this"
    if c.role:
        return f"the {c.role}" + (f" of {subject}" if subject else "")
    return quantity + (f" for {subject}" if subject else "")


def _refusal(sel: Selection, hits: list[Hit], threshold: float, started: float) -> Answer:
    notes: list[str] = []
    writer = _Writer(hits)
    c = sel.constraints
    # The near miss to quote: same subject first (another period or office), then another
    # subject; only one close enough to the threshold to be worth showing.
    misses = [
        cand
        for cand in sel.candidates
        if cand.conflict is not None and cand.probability >= NEAR_MISS_SHARE * threshold
    ]
    misses.sort(key=lambda cand: (cand.conflict == "entity", -cand.probability))
    miss = misses[0] if misses else None
    best = sel.best
    entity_note = _entity_note(sel)
    text = REFUSAL_TEXT
    if entity_note:
        notes.append(entity_note)
    elif miss is not None and (best is None or miss.probability > best.probability):
        asked = c.period.label() if c.period else ""
        if miss.conflict == "period" and miss.period is not None:
            given = miss.period.label()
            notes.append(f"The documents give {_what(sel)} for {given}, not {asked}.")
            lead = f"Not stated for {asked}; the documents give {given}: "
        elif miss.conflict == "measure":
            kind = "per person" if not c.per_head else "as a total"
            notes.append(f"The documents give {_what(sel)} {kind}, not as asked.")
            lead = f"Not stated as asked; the documents give it {kind}: "
        elif miss.conflict == "role":
            notes.append(f"The documents do not name {_what(sel)}.")
            lead = f"The documents do not name {_what(sel)}; they say: "
        else:  # an entity the passage does not name
            names = ", ".join(e.text for e in c.entities)
            notes.append(f"The documents give this for another subject, not for {names}.")
            lead = f"Not stated for {names}; the nearest statement is about another subject: "
        text = lead + writer.quote(miss.hit_index, miss.start, miss.end)
    else:
        notes.append(f"The documents do not state {_what(sel)}.")
    top = best.probability if best else 0.0
    notes.append(f"best answer probability {top:.2f} < {threshold:.2f}")
    answer = Answer(
        text=text,
        citations=writer.citations,
        refused=True,
        nearest=nearest_documents(hits),
        timings_ms={"extract_ms": (time.perf_counter() - started) * 1000},
        notes=notes,
    )
    check_citations(answer)
    return answer


def extractive_answer(
    question: str,
    hits: list[Hit],
    *,
    embedder: SentenceEmbedder | None = None,
    max_sentences: int = 3,
    min_evidence: float | None = None,
    selection: Selection | None = None,
    question_vector: Sequence[float] | None = None,
) -> Answer:
    """Answer ``question`` with 1–``max_sentences`` verbatim sentences of ``hits``, or refuse.

    ``min_evidence`` is the refusal threshold on the selector's probability (None: the
    calibrated one). ``embedder`` adds semantic similarity (the model retrieval loaded).
    ``selection``: ``bot.selector.select``'s result for these hits, when already computed
    (a threshold sweep scores each question once). ``question_vector``: the question's
    embedding from retrieval, which the selector's similarity reuses.
    """
    started = time.perf_counter()
    sel = selection or select(question, hits, embedder, question_vector=question_vector)
    threshold = sel.threshold if min_evidence is None else min_evidence
    best = sel.best
    if best is None or best.probability < threshold or _entity_note(sel):
        return _refusal(sel, hits, threshold, started)
    eligible = sel.eligible
    writer = _Writer(hits)
    notes: list[str] = []
    figure_asked = sel.kind in (AnswerType.NUMBER, AnswerType.ANY)
    revised = _revision(best, eligible, hits, threshold) if figure_asked else None
    if revised is not None:
        by_date = sorted([best, revised], key=lambda c: hits[c.hit_index].date or "")
        older, newer = by_date[0], by_date[1]
        writer.add(writer.quote(newer.hit_index, newer.start, newer.end))
        old_date = hits[older.hit_index].date
        earlier = writer.quote(older.hit_index, older.start, older.end)
        writer.add(f"An earlier document ({old_date}) gave: {earlier}")
        notes.append(
            f"revised figure: the document of {hits[newer.hit_index].date} replaces the "
            f"one of {old_date}"
        )
    else:
        for pick in _picks(best, eligible, max(1, max_sentences), hits, threshold):
            writer.add(writer.quote(pick.hit_index, pick.first.start, pick.last.end))
    answer = Answer(
        text=writer.text(),
        citations=writer.citations,
        timings_ms={"extract_ms": (time.perf_counter() - started) * 1000},
        notes=notes,
    )
    check_citations(answer)
    return answer
