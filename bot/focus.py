"""Document focus: when a question names a document's subject, search that document harder.

"What was Halden Grid's 2023 capital expenditure?" names a company and a year that stand
in one filing's title and file name (``halden-grid-annual-report-2023.md``). Across a pool
of many filings, plain passage retrieval scatters over look-alike passages of other
companies; weighing title terms by their rarity across documents picks the filing(s) the
question is about. Pure.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from bot.lexical import tokenize
from ingest.lexical import source_terms
from ingest.types import IndexedChunk

# A focus needs the question to share at least this much idf with a title: one term that
# few documents carry (a company, a place), not a word every title has.
MIN_FOCUS_IDF = 1.0
# Documents within this share of the best title match are focused on too (a company's
# reports of two years, for a question naming the company but no year).
FOCUS_BAND = 0.75
MAX_FOCUS_DOCS = 8  # a "focus" on half the pool is no focus
# Names: words that start with a capital or a digit ("PepsiCo", "7Seas", "FY2022", "AMEX").
_NAME = re.compile(r"\b[A-Z0-9][\w&'’]*")


def question_terms(question: str) -> set[str]:
    """Terms of the names in the question, plus adjacent names run together: file names
    and tickers write "American Express" as AMERICANEXPRESS and "Best Buy" as BESTBUY.

    Only names count: a common word a title happens to share ("filed", "report") must
    not focus the search on that document.
    """
    names = [m.group() for m in _NAME.finditer(question)]
    joined = [a + b for a, b in itertools.pairwise(names)]
    # The question word that opens a sentence is capitalised but is no name; tokenize
    # drops it as a stop word.
    return set(tokenize(" ".join(names))) | set(tokenize(" ".join(joined)))


@dataclass(frozen=True, slots=True)
class DocumentFocus:
    terms: dict[str, frozenset[str]]  # doc_id → its title and file-name terms
    idf: dict[str, float]  # term → idf across documents
    # (title, path) → terms, so the next build tokenises only new or renamed documents:
    # rebuilding every title after one dropped file was slow with many documents.
    by_source: dict[tuple[str, str], frozenset[str]] = field(default_factory=dict)

    @classmethod
    def build(
        cls, chunks: Sequence[IndexedChunk], previous: DocumentFocus | None = None
    ) -> DocumentFocus:
        """The focus over ``chunks``' documents; ``previous`` lends the terms of documents
        whose title and path are unchanged (the result is the same as without it)."""
        return cls.from_columns(
            [c.doc_id for c in chunks], [c.title for c in chunks], [c.path for c in chunks],
            previous,
        )  # fmt: skip

    @classmethod
    def from_columns(
        cls,
        doc_ids: Sequence[str],
        titles: Sequence[str],
        paths: Sequence[str],
        previous: DocumentFocus | None = None,
        saved: Mapping[tuple[str, str], frozenset[str]] | None = None,
    ) -> DocumentFocus:
        """``build`` from the chunks' doc_id, title and path columns (one entry per chunk,
        as ``LexicalIndex.column`` gives them: no chunk objects are made). ``saved`` maps
        (title, path) to the terms ``source_terms`` gives, as the BM25 files keep them."""
        known = previous.by_source if previous is not None else {}
        saved = saved or {}
        terms: dict[str, frozenset[str]] = {}
        by_source: dict[tuple[str, str], frozenset[str]] = {}
        for doc_id, title, path in zip(doc_ids, titles, paths, strict=True):
            if doc_id in terms:
                continue
            source = (title, path)
            doc_terms = known.get(source) or saved.get(source)
            if doc_terms is None:
                doc_terms = source_terms(title, path)
            terms[doc_id] = by_source[source] = doc_terms
        n = len(terms)
        df: dict[str, int] = {}
        for doc_terms in terms.values():
            for term in doc_terms:
                df[term] = df.get(term, 0) + 1
        idf = {t: math.log((n + 1) / (d + 0.5)) for t, d in df.items()}
        return cls(terms, idf, by_source)

    def focus(self, question: str) -> frozenset[str]:
        """The doc_ids the question is about, or an empty set when it names none."""
        if len(self.terms) < 3:
            return frozenset()  # nothing to tell apart
        q_terms = question_terms(question)
        scores = {
            doc_id: sum(self.idf[t] for t in q_terms & doc_terms)
            for doc_id, doc_terms in self.terms.items()
        }
        best = max(scores.values(), default=0.0)
        if best < MIN_FOCUS_IDF:
            return frozenset()
        chosen = [d for d, s in scores.items() if s >= FOCUS_BAND * best]
        if len(chosen) > MAX_FOCUS_DOCS or len(chosen) * 2 > len(self.terms):
            return frozenset()
        return frozenset(chosen)
