"""Terms of a text for keyword search: lower-case stemmed words, whole numbers, Chinese words.

Ingest writes the BM25 index (``ingest.lexical``) with these terms and answering searches
it, picks sentences and checks quotes with the same ones, so both agree on what a "term"
is. It lives in ``ingest`` because ``bot`` imports ``ingest``, never the reverse.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

import Stemmer

from ingest.chinese_words import chinese_words
from ingest.vocabulary import (
    CHINESE_STOP_WORDS,
    CJK_CHARS,
    ENGLISH_STOP_WORDS,
    MONTH_ABBREVIATIONS,
)

# Numbers stay whole: "341.81", "2020", "1,234.5" (thousands separators are dropped so the
# same figure matches however it was written). A decimal point needs a digit after it, so
# the full stop in "in 2020." is not taken.
_THOUSANDS = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?"
_PLAIN_NUMBER = r"\d+(?:\.\d+)?"
_CJK = f"[{CJK_CHARS}]+"
_WORD = r"[a-z]+(?:'[a-z]+)*"
_TOKEN_RE = re.compile(rf"(?P<num>{_THOUSANDS}|{_PLAIN_NUMBER})|(?P<cjk>{_CJK})|(?P<word>{_WORD})")

# A few abbreviations briefings use interchangeably with the full word.
_SYNONYMS = {
    **MONTH_ABBREVIATIONS,
    "yoy": "year",
    "govt": "government",
    "intl": "international",
}
# Irregular past forms of the verbs figures are reported with; Snowball leaves them alone,
# so "How fast did the economy grow?" would miss "the economy grew 2.6%".
_IRREGULAR = {
    "grew": "grow", "grown": "grow", "rose": "rise", "risen": "rise", "fell": "fall",
    "fallen": "fall", "sold": "sell", "bought": "buy", "spent": "spend", "paid": "pay",
    "built": "build", "made": "make", "took": "take", "taken": "take", "gave": "give",
    "given": "give", "held": "hold", "won": "win", "led": "lead", "began": "begin",
    "begun": "begin", "saw": "see", "seen": "see", "met": "meet", "brought": "bring",
    "went": "go", "gone": "go", "cut": "cut", "hit": "hit", "set": "set", "lost": "lose",
}  # fmt: skip
_SYNONYMS.update(_IRREGULAR)


def _cut_chinese(run: str) -> list[str]:
    # cut_for_search also yields the parts of long words, so "克什米尔地区" matches "克什米尔".
    # jieba's dictionary is loaded by the pieces the text needs (ingest.chinese_words).
    return [w for w in chinese_words().cut_for_search(run) if w.strip()]


_SNOWBALL = Stemmer.Stemmer("english")
_SNOWBALL.maxCacheSize = 50_000
stem: Callable[[str], str] = _SNOWBALL.stemWord


def tokenize(text: str, *, keep_stop_words: bool = False) -> list[str]:
    """Terms of ``text``: lower-case, stemmed words, whole numbers, Chinese words."""
    text = unicodedata.normalize("NFKC", text).lower().replace("’", "'")
    out: list[str] = []
    for m in _TOKEN_RE.finditer(text):
        if m.lastgroup == "num":
            out.append(m.group().replace(",", ""))
        elif m.lastgroup == "cjk":
            for w in _cut_chinese(m.group()):
                if keep_stop_words or w not in CHINESE_STOP_WORDS:
                    out.append(w)
        else:
            word = m.group()
            if not keep_stop_words and word in ENGLISH_STOP_WORDS:
                continue
            word = _SYNONYMS.get(word, word)
            out.append(stem(word))
    return out
