"""Split passages into sentences as character spans, so quotes stay exact substrings.

English: a sentence ends at . ! ? followed by a space and a capital, digit, quote or
bracket — but not after abbreviations ("U.S.", "Jan.", "Mr.") or initials, and a decimal
point ("341.81") never has a space after it. Chinese: 。！？； end a sentence anywhere.
Blank lines always end one (headings), and so does the line before a list item ("- ",
"* ", "• ", "1. "): each bullet of a list of figures is its own statement.
"""

from __future__ import annotations

import re

from ingest.vocabulary import CJK_CHARS, MONTH_ABBREVIATIONS

# Lower-case forms, without the final period.
_ABBREVIATIONS_TEXT = """
    a.m adm approx bros capt cmdr co col corp dept dr e.g e.u ed eds est etc fig figs ft
    gen gov govt i.e inc jr lt ltd mr mrs ms mt no nos p.m p.r.c pp prof rep sen sgt sr st
    u.k u.n u.s u.s.a vol vs
"""
ABBREVIATIONS = frozenset(_ABBREVIATIONS_TEXT.split())

_CLOSERS = "”’\"'」』）)】》"
_LATIN_END_RE = re.compile(r"[.!?]+[" + re.escape(_CLOSERS) + r"]*(?=\s+[\"'“‘(\[A-Z0-9])")
_CJK_END_RE = re.compile(
    r"[。！？；]+[" + re.escape(_CLOSERS) + r"]*|(?<=[" + CJK_CHARS + r"])[!?;]+"
)
_BLANK_LINE_RE = re.compile(r"\n\s*\n")
_LIST_ITEM_RE = re.compile(r"\n[ \t]*(?:[-*•·–]|\d{1,2}[.)])[ \t]+")
_WORD_BEFORE_RE = re.compile(r"([A-Za-z][A-Za-z.]*)$")


def _is_abbreviation(text: str, period_at: int) -> bool:
    m = _WORD_BEFORE_RE.search(text, 0, period_at)
    if m is None:
        return False
    word = m.group(1)
    if len(word) == 1 and word.isupper():  # an initial: "J. Smith"
        return True
    lowered = word.lower().rstrip(".")
    if lowered in MONTH_ABBREVIATIONS:
        # "Jan. 5" is a date, but "... in Jan. It rose" ends a sentence.
        return text[period_at + 1 :].lstrip()[:1].isdigit()
    return lowered in ABBREVIATIONS


def _breaks(text: str) -> list[int]:
    """Offsets just past each sentence end."""
    cuts: set[int] = set()
    for m in _LATIN_END_RE.finditer(text):
        single_period = m.group().startswith(".") and len(m.group().rstrip(_CLOSERS)) == 1
        if single_period and _is_abbreviation(text, m.start()):
            continue
        cuts.add(m.end())
    cuts.update(m.end() for m in _CJK_END_RE.finditer(text))
    cuts.update(m.start() for m in _BLANK_LINE_RE.finditer(text))
    cuts.update(m.start() for m in _LIST_ITEM_RE.finditer(text))
    return sorted(cuts)


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """``[start, end)`` of each sentence in ``text``, whitespace trimmed, in order."""
    spans: list[tuple[int, int]] = []
    start = 0
    for cut in [*_breaks(text), len(text)]:
        s, e = start, cut
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if e > s:
            spans.append((s, e))
        start = cut
    return spans


def split_sentences(text: str) -> list[str]:
    return [text[s:e] for s, e in sentence_spans(text)]
