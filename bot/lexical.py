"""BM25 keyword search over every chunk, with a tokeniser for English and Chinese text.

Dense embeddings (all-MiniLM-L6-v2) are weak on exact figures, names and Chinese; BM25
catches those. The tokeniser is shared with the extractive answerer so both agree on what
a "term" is.
"""

from __future__ import annotations

import logging
import re
import threading
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import bm25s
import numpy as np

from ingest.types import IndexedChunk

# bm25s sets its logger to DEBUG on import and logs every index build: keep it quiet.
logging.getLogger("bm25s").setLevel(logging.WARNING)

# Numbers stay whole: "341.81", "2020", "1,234.5" (thousands separators are dropped so the
# same figure matches however it was written). A decimal point needs a digit after it, so
# the full stop in "in 2020." is not taken.
_THOUSANDS = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?"
_PLAIN_NUMBER = r"\d+(?:\.\d+)?"
_CJK = r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+"
_WORD = r"[a-z]+(?:'[a-z]+)*"
_TOKEN_RE = re.compile(rf"(?P<num>{_THOUSANDS}|{_PLAIN_NUMBER})|(?P<cjk>{_CJK})|(?P<word>{_WORD})")

_ENGLISH_STOP_WORDS_TEXT = """
    a about above after again against all also am an and any are aren't as at be because
    been before being below between both but by can cannot could couldn't did didn't do
    does doesn't doing don't down during each few for from further had hadn't has hasn't
    have haven't having he he'd he'll he's her here here's hers herself him himself his
    how how's i i'd i'll i'm i've if in into is isn't it it's its itself just let's many
    me more most much mustn't my myself no nor not of off on once only or other ought our
    ours ourselves out over own please s same shan't she she'd she'll she's should
    shouldn't so some such t tell than that that's the their theirs them themselves then
    there there's these they they'd they'll they're they've this those through to too
    under until up very was wasn't we we'd we'll we're we've were weren't what what's when
    when's where where's which while who who's whom why why's will with won't would
    wouldn't you you'd you'll you're you've your yours yourself yourselves
"""
# "FY" of "FY2022": the year carries the meaning; a bare "fy" matched the few passages that
# abbreviate and made them a BM25 hub on FinanceBench (see bench/README).
ENGLISH_STOP_WORDS = frozenset(_ENGLISH_STOP_WORDS_TEXT.split()) | {"fy"}

# Function words that jieba returns as tokens; they carry no topic.
_CHINESE_STOP_WORDS_TEXT = """
    的 了 是 在 和 与 及 或 也 都 就 而 及其 之 为 对 于 被 把 从 由 以 等
    这 那 其 中 有 吗 呢 吧 啊 呀 么 什么 哪 哪些 哪个 谁 多少 几 怎么 如何 为什么 是否 个
"""
CHINESE_STOP_WORDS = frozenset(_CHINESE_STOP_WORDS_TEXT.split())

_MONTHS = {
    "jan": "january",
    "feb": "february",
    "mar": "march",
    "apr": "april",
    "jun": "june",
    "jul": "july",
    "aug": "august",
    "sep": "september",
    "sept": "september",
    "oct": "october",
    "nov": "november",
    "dec": "december",
}
# A few abbreviations briefings use interchangeably with the full word.
_SYNONYMS = {
    **_MONTHS,
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

_jieba_lock = threading.Lock()
_jieba_ready = False


def _cut_chinese(run: str) -> list[str]:
    global _jieba_ready
    import jieba

    if not _jieba_ready:
        with _jieba_lock:
            if not _jieba_ready:
                jieba.setLogLevel(logging.WARNING)  # its dictionary-loading chatter
                jieba.initialize()
                _jieba_ready = True
    # cut_for_search also yields the parts of long words, so "克什米尔地区" matches "克什米尔".
    return [w for w in jieba.lcut_for_search(run) if w.strip()]


def light_stem(word: str) -> str:
    """Fold English plurals and possessives ("exports" → "export", "cities" → "city").

    The fallback when PyStemmer is absent; documents and questions are always tokenised
    in the same process, so either stemmer gives consistent terms.
    """
    if word.endswith("'s"):
        word = word[:-2]
    if len(word) <= 3:
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("sses", "xes", "ches", "shes", "zes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def _load_stemmer() -> Callable[[str], str]:
    """Snowball (PyStemmer) when installed, else the light plural folding above."""
    try:
        import Stemmer
    except ImportError:
        return light_stem
    snowball = Stemmer.Stemmer("english")
    snowball.maxCacheSize = 50_000
    stem_word: Callable[[str], str] = snowball.stemWord
    return stem_word


stem = _load_stemmer()


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


@dataclass(frozen=True, slots=True)
class LexicalIndex:
    """BM25 over a fixed list of chunks; search results are positions in that list."""

    chunks: tuple[IndexedChunk, ...]
    _bm25: Any  # bm25s.BM25, or None when there is nothing to search

    @classmethod
    def build(cls, chunks: Sequence[IndexedChunk]) -> LexicalIndex:
        chunks = tuple(chunks)
        corpus = [tokenize(c.title) + tokenize(c.text) for c in chunks]
        if not any(corpus):
            return cls(chunks, None)
        bm25 = bm25s.BM25()
        bm25.index(corpus, show_progress=False)
        return cls(chunks, bm25)

    def __len__(self) -> int:
        return len(self.chunks)

    def search(
        self, query: str, k: int, *, allowed: Sequence[bool] | None = None
    ) -> list[tuple[int, float]]:
        """Top ``k`` (position, BM25 score) with a positive score, best first.

        ``allowed`` (one flag per chunk) restricts the search, e.g. to a date range.
        """
        if self._bm25 is None or k <= 0:
            return []
        vocab: dict[str, int] = self._bm25.vocab_dict
        terms = [t for t in tokenize(query) if t in vocab]
        if not terms:
            return []
        mask = None if allowed is None else np.asarray(allowed, dtype=np.float32)
        scores = np.asarray(self._bm25.get_scores(terms, weight_mask=mask), dtype=np.float64)
        positive = np.flatnonzero(scores > 0)
        if positive.size == 0:
            return []
        # Stable order: ties keep index order, so results are reproducible.
        order = positive[np.argsort(-scores[positive], kind="stable")][:k]
        return [(int(i), float(scores[i])) for i in order]
