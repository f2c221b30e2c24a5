"""The fused list's head made into the top k: near-duplicates collapsed, documents capped.

Retrieval fuses dense and BM25 lists (``bot.retrieval``); news wires and filings repeat
passages, and one long document can fill every place. Pure.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence

from bot.lexical import tokenize
from bot.types import Hit
from ingest.vocabulary import CJK_RE

DUPLICATE_JACCARD = 0.8  # token-set overlap above which two passages count as one
MAX_PER_DOC = 2


_SPACE_RE = re.compile(r"\s+")


def _normalised(text: str) -> str:
    return _SPACE_RE.sub(" ", text).strip().lower()


_WORDS_RE = re.compile(r"\w+")


def _dedup_tokens(norm: str) -> set[str]:
    # Plain words suffice to spot near-copies and cost a tenth of full tokenising (no
    # stemming); Chinese has no spaces, so it goes through the segmenter.
    if CJK_RE.search(norm):
        return set(tokenize(norm, keep_stop_words=True))
    return set(_WORDS_RE.findall(norm))


def distinct(hits: Iterable[Hit], threshold: float = DUPLICATE_JACCARD) -> Iterator[Hit]:
    """The hits whose text repeats no better hit's (same text, or token Jaccard ≥
    threshold), one at a time: whether a hit is kept depends only on the hits before it,
    so a reader that needs the first few (``diversify``) tokenises only as far as it reads
    (segmenting a Chinese passage is not free, and only the head is read)."""
    kept_norm: set[str] = set()
    kept_tokens: list[set[str]] = []
    for hit in hits:
        norm = _normalised(hit.text)
        if norm in kept_norm:
            continue
        tokens = _dedup_tokens(norm)
        if tokens and any(
            len(tokens & other) / len(tokens | other) >= threshold for other in kept_tokens
        ):
            continue
        yield hit
        kept_norm.add(norm)
        kept_tokens.append(tokens)


def collapse_duplicates(hits: Sequence[Hit], threshold: float = DUPLICATE_JACCARD) -> list[Hit]:
    """Drop hits whose text repeats a better hit's (same text, or token Jaccard ≥ threshold)."""
    return list(distinct(hits, threshold))


def diversify(
    hits: Iterable[Hit],
    k: int,
    max_per_doc: int = MAX_PER_DOC,
    focus: frozenset[str] = frozenset(),
) -> list[Hit]:
    """Top ``k`` with at most ``max_per_doc`` per document, unless too few documents exist.

    Documents in ``focus`` (the ones the question names) are not capped: passages of other
    companies' filings add nothing to a question about one company. Hits over the cap fill
    the remaining places in their original order. Reads ``hits`` only until it has k.
    """
    chosen: list[Hit] = []
    overflow: list[Hit] = []
    per_doc: dict[str, int] = {}
    for hit in hits:
        cap = k if hit.doc_id in focus else max_per_doc
        if per_doc.get(hit.doc_id, 0) < cap:
            per_doc[hit.doc_id] = per_doc.get(hit.doc_id, 0) + 1
            chosen.append(hit)
        else:
            overflow.append(hit)
        if len(chosen) >= k:
            break
    if len(chosen) < k:
        chosen.extend(overflow[: k - len(chosen)])
        chosen.sort(key=lambda h: -h.score)
    return chosen[:k]
