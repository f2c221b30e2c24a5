"""Citations, for both answerers: check an answer's [n] against its quotes, repair an LLM's.

``check_citations`` is the contract every answer meets before it is shown (the extractive
answerer's and the LLM's): each quote is an exact substring of its passage, the numbers
run 1..k, and every ``[n]`` in the text has its citation.

An LLM reply is never trusted as is. The model saw the passages numbered 1..len(hits) in
order. ``postprocess``:

1. splits the answer into sentences and reads the markers ``[n]``, ``[n, m]``, ``[n][m]`` and
   ``[n-m]`` of each; numbers that name no passage are removed (with a note);
2. drops every sentence left without a valid citation: an uncited claim is not shown;
3. checks figures. Rule: a sentence that states a figure (``341.81``, ``12%``, ``2020``,
   ``3.5 million``) found in none of the passages it cites — nor in their titles or dates,
   which the model saw too — is dropped whole, with a note naming the figure. Cutting only the
   number would leave a claim that reads as sourced but says something else ("totaled billion
   yuan"), so the whole sentence goes;
   Given the question, a sentence whose cited passages do not name the question's entity,
   state only other periods, or do not name the office asked about is dropped as well: it
   answers another question ("Q1 revenue" for a Q2 question);
4. renumbers the surviving citations 1..k in order of first use;
5. picks, for each cited passage, the passage sentence (split as ``ingest.sentences`` does for the
   extractive answerer) that best supports the answer sentences citing it (shared terms of
   ``bot.lexical.tokenize``, figures weighted most): an exact substring of ``hit.text``.

It returns an ``Answer`` without citations when no cited sentence survives; the caller
then answers extractively.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from bot.answer_types import AnswerType, answer_type
from bot.constraints import question_constraints, unsupported_by
from bot.lexical import tokenize
from bot.types import Answer, Citation, Hit
from ingest.sentences import sentence_spans

# The longest passage sentence quoted whole: the extractive answerer skips longer ones
# (unpunctuated text, table rows run together) and the LLM path cuts a window this long
# around the claim. 600, the extractive answerer's measured setting (its answers are made
# of nothing but such quotes, and bench/ figures were taken with it); the LLM path's
# window grew from 400 to match, still one readable quote under an answer.
MAX_QUOTE_CHARS = 600
# Notes of sentences dropped for answering another entity, period or office than asked.
OFF_QUESTION_NOTE = "dropped, not what was asked: "

# --- citation markers -------------------------------------------------------------------

_ONE_MARKER = (
    r"\[\s*(?:(?:passages?|sources?|docs?)\s*)?"
    r"(?P<body>\d+(?:\s*(?:,|;|-|–|—|and)\s*\d+)*)\s*\]"
)
_MARKER = re.compile(r"(?P<lead>\s*)" + _ONE_MARKER, re.IGNORECASE)
# Adjacent markers ("[3][1]", "[3] [1]") are one group: renumbered and sorted together.
_MARKER_RUN = re.compile(
    r"(?P<lead>\s*)(?P<run>"
    + _ONE_MARKER.replace("?P<body>", "?:")
    + r"(?:\s*"
    + _ONE_MARKER.replace("?P<body>", "?:")
    + r")*)",
    re.IGNORECASE,
)
_MARKER_PART = re.compile(r"(\d+)(?:\s*[-–—]\s*(\d+))?")


def nearest_documents(hits: Sequence[Hit], n: int = 3) -> list[Hit]:
    """The first passage of each of the first ``n`` documents among ``hits``: a refusal's
    "nearest documents" name each document once."""
    out: list[Hit] = []
    seen: set[str] = set()
    for hit in hits:
        if hit.doc_id not in seen:
            seen.add(hit.doc_id)
            out.append(hit)
            if len(out) == n:
                break
    return out


def _marker_numbers(body: str) -> list[int]:
    """The passage numbers (1-based) a marker body names; ranges are expanded."""
    numbers: list[int] = []
    for match in _MARKER_PART.finditer(body):
        low = int(match.group(1))
        high = int(match.group(2)) if match.group(2) else low
        low, high = min(low, high), max(low, high)
        # A huge range ("[2019-2020]") is no citation; keep it finite and let validation drop it.
        numbers.extend(range(low, high + 1) if high - low <= 50 else [low, high])
    return numbers


# --- figures ----------------------------------------------------------------------------

_SCALES = {
    "thousand": Decimal(10) ** 3,
    "million": Decimal(10) ** 6,
    "mn": Decimal(10) ** 6,
    "billion": Decimal(10) ** 9,
    "bn": Decimal(10) ** 9,
    "trillion": Decimal(10) ** 12,
    "万": Decimal(10) ** 4,
    "亿": Decimal(10) ** 8,
}
_FIGURE = re.compile(
    # Not inside a word, code or larger number: skips "COVID-19", "G20", "v2.0", "1,234"[2:].
    r"(?<![A-Za-z0-9_.,])(?<![A-Za-z]-)"
    r"(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)"
    r"(?:st|nd|rd|th)?"
    r"(?:\s*(?P<pct>%|percent\b|per\s+cent\b|percentage\s+points?\b)"
    r"|\s*(?P<scale>(?:thousand|million|billion|trillion|bn|mn)\b|万|亿))?"
    r"(?![A-Za-z0-9])",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Figure:
    text: str  # as written
    value: Decimal  # the number as written, without scale
    scaled: Decimal  # value times its scale word (million, 亿, ...)
    percent: bool
    has_scale: bool


def figures(text: str) -> list[Figure]:
    found = []
    for match in _FIGURE.finditer(text):
        try:
            value = Decimal(match.group("num").replace(",", ""))
        except InvalidOperation:  # pragma: no cover - the pattern only admits decimals
            continue
        scale = match.group("scale")
        multiplier = _SCALES[scale.lower()] if scale else Decimal(1)
        found.append(
            Figure(
                text=match.group(0).strip(),
                value=value,
                scaled=value * multiplier,
                percent=match.group("pct") is not None,
                has_scale=scale is not None,
            )
        )
    return found


def supported(figure: Figure, evidence: Sequence[Figure]) -> bool:
    """Does ``evidence`` (figures of the cited passages) state ``figure``?

    A percentage needs the same percentage; a scaled amount the same amount ("3.5 million"
    matches "3,500,000", not "3.5 billion"); a bare number matches the same number, scaled or not.
    """
    if figure.percent:
        return any(e.percent and e.value == figure.value for e in evidence)
    if figure.has_scale:
        return any(not e.percent and e.scaled == figure.scaled for e in evidence)
    return any(e.value == figure.value or e.scaled == figure.value for e in evidence)


def _hit_figures(hit: Hit) -> list[Figure]:
    # Title and date are shown to the model with the passage, so they count as evidence.
    extra = [hit.title]
    if hit.date:
        extra.append(" ".join(str(int(p)) for p in hit.date.split("-") if p.isdigit()))
    return figures("\n".join([hit.text, *extra]))


# --- sentences ----------------------------------------------------------------------------

_LIST_PREFIX = re.compile(r"^\s*(?:[-*•]|\d{1,2}[.)])\s+")
_WORD = re.compile(r"[^\W\d_]+")


def _has_content(text: str) -> bool:
    return bool(re.search(r"[^\W_]", _MARKER.sub("", text)))


def _answer_sentences(line: str) -> list[str]:
    pieces = [line[s:e] for s, e in sentence_spans(line)]
    merged: list[str] = []
    for piece in pieces:
        lead = re.match(r"(?:\s*\[[^\[\]]{1,40}\])+", piece)
        if merged and lead and _MARKER.match(piece):
            # "…yuan. [1] Next sentence": a marker after the full stop belongs to the
            # sentence before it.
            merged[-1] += " " + lead.group(0).strip()
            piece = piece[lead.end() :].strip()
        if not piece:
            continue
        if merged and (not _has_content(piece) or piece[0].islower()):
            merged[-1] += " " + piece  # bare markers, or a split after an unknown abbreviation
        else:
            merged.append(piece)
    return merged


# --- quotes -------------------------------------------------------------------------------


def _tokens(text: str) -> dict[str, float]:
    """Weighted terms for overlap scoring: figures 3, other terms (the BM25 tokeniser's) 1."""
    weights: dict[str, float] = {}
    for fig in figures(text):
        weights[f"#{fig.scaled.normalize()}"] = 3.0
        weights[f"#{fig.value.normalize()}"] = 3.0
    for term in tokenize(text):
        weights.setdefault(term, 1.0)
    return weights


def _score(candidate: str, claim: dict[str, float]) -> float:
    return sum(w for token, w in _tokens(candidate).items() if token in claim)


def _window(text: str, start: int, end: int, claim: dict[str, float]) -> tuple[int, int]:
    """Shrink an over-long sentence to MAX_QUOTE_CHARS around its first claimed figure or word."""
    if end - start <= MAX_QUOTE_CHARS:
        return start, end
    sentence = text[start:end]
    anchor = 0
    for fig in figures(sentence):
        if f"#{fig.scaled.normalize()}" in claim or f"#{fig.value.normalize()}" in claim:
            anchor = sentence.find(fig.text)
            break
    else:
        for word in _WORD.finditer(sentence):
            if any(term in claim for term in tokenize(word.group(0))):
                anchor = word.start()
                break
    lo = max(0, anchor - MAX_QUOTE_CHARS // 3)
    hi = min(len(sentence), lo + MAX_QUOTE_CHARS)
    lo = max(0, hi - MAX_QUOTE_CHARS)
    # Cut at word boundaries so the quote does not start or end mid-word.
    if lo > 0:
        space = sentence.find(" ", lo)
        lo = space + 1 if 0 <= space < anchor else lo
    if hi < len(sentence):
        space = sentence.rfind(" ", lo, hi)
        hi = space if space > max(lo, anchor) else hi
    return start + lo, start + hi


def best_quote(hit: Hit, claims: Iterable[str]) -> str:
    """The sentence of ``hit.text`` that best supports ``claims``; an exact substring."""
    claim: dict[str, float] = {}
    for text in claims:
        claim.update(_tokens(text))
    spans = sentence_spans(hit.text)
    if not spans:
        return hit.text
    best = max(spans, key=lambda span: (_score(hit.text[span[0] : span[1]], claim), -span[0]))
    start, end = _window(hit.text, best[0], best[1], claim)
    return hit.text[start:end]


# --- post-processing ------------------------------------------------------------------------


def _short(text: str, limit: int = 60) -> str:
    text = " ".join(_MARKER.sub("", text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _all_sentences(answer_text: str) -> list[tuple[int, str, str]]:
    """(line number, list prefix, sentence) of the answer; bare markers join the sentence before."""
    sentences: list[tuple[int, str, str]] = []
    for line_no, raw_line in enumerate(answer_text.strip().splitlines()):
        prefix_match = _LIST_PREFIX.match(raw_line)
        prefix = prefix_match.group(0).strip() + " " if prefix_match else ""
        line = raw_line[prefix_match.end() :] if prefix_match else raw_line
        for sentence in _answer_sentences(line.strip()):
            if sentences and not _has_content(sentence):
                # A citation put on a line of its own after the sentence it supports.
                last_line, last_prefix, last = sentences[-1]
                sentences[-1] = (last_line, last_prefix, f"{last} {sentence.strip()}")
            else:
                sentences.append((line_no, prefix, sentence))
    return sentences


def postprocess(answer_text: str, hits: Sequence[Hit], question: str = "") -> Answer:
    """The LLM's reply repaired: cited, checked sentences only, citations renumbered 1..k.

    With ``question``, a sentence whose cited passages do not carry the entity, period or
    office the question names is dropped too (``bot.constraints.unsupported_by``).
    ``notes`` say what was removed and why; no citations means nothing usable survived.
    """
    constraints = question_constraints(question) if question else None
    amount = bool(question) and answer_type(question) is AnswerType.NUMBER
    notes: list[str] = []
    evidence = [_hit_figures(hit) for hit in hits]
    # (line index, list prefix, sentence, cited passage indices 0-based)
    kept: list[tuple[int, str, str, list[int]]] = []
    for line_no, prefix, sentence in _all_sentences(answer_text):
        if not _has_content(sentence):
            notes.append(f"dropped citation without a sentence: {sentence.strip()!r}")
            continue
        cited: list[int] = []
        for marker in _MARKER.finditer(sentence):
            for n in _marker_numbers(marker.group("body")):
                if 1 <= n <= len(hits):
                    if n - 1 not in cited:
                        cited.append(n - 1)
                else:
                    notes.append(f"removed citation [{n}]: no such passage")
        if not cited:
            notes.append(f"dropped sentence without a valid citation: {_short(sentence)!r}")
            continue
        body = _MARKER.sub("", sentence)
        pool = [fig for i in cited for fig in evidence[i]]
        unsupported = [fig.text for fig in figures(body) if not supported(fig, pool)]
        if unsupported:
            notes.append(
                f"removed unsupported figure {', '.join(unsupported)} "
                f"(not in the cited passage): {_short(sentence)!r}"
            )
            continue
        passages = [(hits[i].text, hits[i].title, hits[i].date) for i in cited]
        if constraints is not None and (
            reason := unsupported_by(constraints, passages, amount=amount, entities=False)
        ):
            notes.append(f"{OFF_QUESTION_NOTE}{reason}: {_short(sentence)!r}")
            continue
        kept.append((line_no, prefix, sentence, cited))

    if constraints is not None and kept:
        # The entity is checked over the whole answer: a sentence may rest on a passage
        # that does not repeat the city's name, but some cited passage must name it.
        cited_all = sorted({i for *_rest, cited in kept for i in cited})
        passages = [(hits[i].text, hits[i].title, hits[i].date) for i in cited_all]
        if reason := unsupported_by(constraints, passages, amount=amount):
            notes += [f"{OFF_QUESTION_NOTE}{reason}: {_short(s)!r}" for _l, _p, s, _c in kept]
            kept = []

    order: dict[int, int] = {}  # passage index -> new number, by first use
    for _line, _prefix, _sentence, cited in kept:
        for i in cited:
            order.setdefault(i, len(order) + 1)

    def renumber(run: re.Match[str]) -> str:
        numbers = sorted(
            {
                order[n - 1]
                for marker in _MARKER.finditer(run.group("run"))
                for n in _marker_numbers(marker.group("body"))
                if 1 <= n <= len(hits)
            }
        )
        if not numbers:
            return ""  # an invalid marker goes, with the space before it
        return run.group("lead") + "".join(f"[{n}]" for n in numbers)

    lines: dict[int, list[str]] = {}
    prefixes: dict[int, str] = {}
    for line_no, prefix, sentence, _cited in kept:
        lines.setdefault(line_no, []).append(_MARKER_RUN.sub(renumber, sentence).strip())
        prefixes[line_no] = prefix
    text = "\n".join(prefixes[n] + " ".join(parts) for n, parts in lines.items())

    citations = []
    for index, n in sorted(order.items(), key=lambda item: item[1]):
        claims = [_MARKER.sub("", s) for _l, _p, s, cited in kept if index in cited]
        citations.append(Citation(n=n, hit=hits[index], quote=best_quote(hits[index], claims)))
    answer = Answer(text=text, citations=citations, answerer="llm", notes=notes)
    check_citations(answer)
    return answer


# --- the contract ---------------------------------------------------------------------------

_PLAIN_MARKER = re.compile(r"\[(\d+)\]")


def check_citations(answer: Answer) -> None:
    """The answerers' contract: quotes are verbatim and every marker has its citation.

    Raised rather than ``assert``-ed so that ``python -O`` cannot switch it off.
    """
    numbers = {c.n for c in answer.citations}
    for c in answer.citations:
        if not c.quote or c.quote not in c.hit.text:
            raise AssertionError(f"citation [{c.n}] quote is not a substring of its passage")
    if sorted(numbers) != list(range(1, len(numbers) + 1)):
        raise AssertionError(f"citation numbers are not 1..n: {sorted(numbers)}")
    # Markers are scanned outside the quotes: a passage may itself contain "[2]".
    rest = answer.text
    for c in answer.citations:
        rest = rest.replace(c.quote, "", 1)
    used = {int(m) for m in _PLAIN_MARKER.findall(rest)}
    if not used <= numbers:
        raise AssertionError(f"markers without a citation: {sorted(used - numbers)}")
