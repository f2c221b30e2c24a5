"""The text vocabulary every stage shares: month names, the CJK character range, stop words.

Ingest reads dates with it (``ingest.metadata``); answering reads questions and passages
with it (``bot.dates``, ``bot.lexical``, ``ingest.sentences``, ``bot.extractive``,
``bot.retrieval``). It lives in ``ingest`` because ``bot`` imports ``ingest``, never the
reverse. Plain data and compiled patterns only.
"""

from __future__ import annotations

import re

# --- months ---------------------------------------------------------------------------------

MONTH_NAMES = (
    "january", "february", "march", "april", "may", "june",
    "july", "august", "september", "october", "november", "december",
)  # fmt: skip

# The short forms briefings write ("Jan.", "Sept 5"), each with its full name. "may" has none.
MONTH_ABBREVIATIONS: dict[str, str] = {
    "jan": "january", "feb": "february", "mar": "march", "apr": "april",
    "jun": "june", "jul": "july", "aug": "august", "sep": "september",
    "sept": "september", "oct": "october", "nov": "november", "dec": "december",
}  # fmt: skip

# Every lower-case month word, full or short, to its number (1–12).
MONTHS: dict[str, int] = {name: i for i, name in enumerate(MONTH_NAMES, start=1)} | {
    short: MONTH_NAMES.index(full) + 1 for short, full in MONTH_ABBREVIATIONS.items()
}

# A regex group of every month word in any case ("Sept", "SEPTEMBER"), longest first so
# "sept" is not read as "sep".
MONTH_PATTERN = "(?i:" + "|".join(sorted(MONTHS, key=len, reverse=True)) + ")"

# --- Chinese, Japanese, Korean ideographs ---------------------------------------------------

# CJK Unified Ideographs, Extension A and the compatibility block: the characters jieba
# segments and that take no spaces between words.
CJK_CHARS = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
CJK_RE = re.compile(f"[{CJK_CHARS}]")

# --- stop words -----------------------------------------------------------------------------

# NLTK's English list with the contractions written whole (the tokeniser keeps "don't" as
# one word) and the words of questions ("tell", "please", "much", "many"). bm25s ships
# two lists: STOPWORDS_EN (Lucene's 33 words) leaves "what", "did", "how" as search
# terms; STOPWORDS_EN_PLUS (NLTK's) drops "won" (which the tokeniser folds to "win":
# "who won the tour?") and "now", and lists contraction fragments ("aren", "ll") that the
# tokeniser never produces. So the list is ours.
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
# abbreviate and made them a BM25 hub in a collection of financial filings (bench/README).
ENGLISH_STOP_WORDS = frozenset(_ENGLISH_STOP_WORDS_TEXT.split()) | {"fy"}

# Function words that jieba returns as tokens; they carry no topic. (bm25s's
# STOPWORDS_CHINESE has 841 entries, many of them content words such as "上升" "rise".)
_CHINESE_STOP_WORDS_TEXT = """
    的 了 是 在 和 与 及 或 也 都 就 而 及其 之 为 对 于 被 把 从 由 以 等
    这 那 其 中 有 吗 呢 吧 啊 呀 么 什么 哪 哪些 哪个 谁 多少 几 怎么 如何 为什么 是否 个
"""
CHINESE_STOP_WORDS = frozenset(_CHINESE_STOP_WORDS_TEXT.split())
