"""Offline follow-up handling: "and exports?" after "What was Qingdao's trade total?".

Without an LLM to rewrite the question, a follow-up borrows the previous question's key
terms, so retrieval still finds the right document.
"""

from __future__ import annotations

import re

from ingest.vocabulary import ENGLISH_STOP_WORDS

_WORD = re.compile(r"[\w.%-]+", re.UNICODE)
_FOLLOW_UP_START = re.compile(
    r"^\s*(and|also|what about|how about|what of|and what about|same for|but|then)\b", re.I
)
_PRONOUN = re.compile(r"\b(it|its|they|their|them|that|this|those|these|there)\b", re.I)
# Words a follow-up cannot carry over: the tokeniser's stop words plus request verbs.
_STOP = ENGLISH_STOP_WORDS | {"show", "give", "whose"}


def key_terms(question: str) -> list[str]:
    terms = []
    for word in _WORD.findall(question):
        clean = word.strip(".-").lower()
        if clean and clean not in _STOP and clean.removesuffix("'s") not in _STOP:
            terms.append(word.strip(".-"))
    return terms


def is_follow_up(question: str) -> bool:
    words = _WORD.findall(question)
    return bool(_FOLLOW_UP_START.search(question) or _PRONOUN.search(question) or len(words) <= 3)


def condense_offline(question: str, history: list[str]) -> str:
    """The question made standalone by appending the previous question's key terms."""
    if not history or not is_follow_up(question):
        return question
    previous = history[-1]
    own_terms = key_terms(question)
    own = {t.lower() for t in own_terms}
    carried = [t.removesuffix("'s").removesuffix("’s") for t in key_terms(previous)]
    carried = [t for t in carried if t.lower() not in own]
    if any(t.islower() and t.isalpha() for t in own_terms):
        # The follow-up names a new attribute ("and exports?"): keep only the previous
        # question's subject (names, figures), not the attribute it replaces.
        carried = [t for t in carried if not (t.islower() and t.isalpha())]
    if not carried:
        return question
    return f"{question.strip()} ({' '.join(carried)})"
