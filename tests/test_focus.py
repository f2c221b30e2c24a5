"""Document focus: questions that name a document's subject search that document."""

from __future__ import annotations

from bot.diversity import diversify
from bot.focus import DocumentFocus, question_terms
from bot.types import Hit
from ingest.types import IndexedChunk
from tests.hits import make_hit


def chunk(doc_id: str, path: str, title: str) -> IndexedChunk:
    return IndexedChunk(
        chunk_id=f"{doc_id}-0", doc_id=doc_id, text="text", path=path, title=title,
        index=0, start=0, end=4,
    )  # fmt: skip


POOL = [
    chunk("amex", "pdfs/AMERICANEXPRESS_2022_10K.pdf", "AMERICANEXPRESS 2022 10K"),
    chunk("bby23", "pdfs/BESTBUY_2023_10K.pdf", "BESTBUY 2023 10K"),
    chunk("bby24", "pdfs/BESTBUY_2024Q2_10Q.pdf", "BESTBUY 2024Q2 10Q"),
    chunk("pep", "pdfs/PEPSICO_2022_10K.pdf", "Form 10-K for Pepsico INC filed 02/09/2023"),
    chunk("boeing", "pdfs/BOEING_2022_10K.pdf", "BOEING 2022 10K"),
    chunk("qd", "qingdao-trade.md", "Qingdao's trade reaches 341.81 billion yuan"),
]


def test_names_written_together_in_file_names_are_matched() -> None:
    assert "americanexpress" in question_terms("What did American Express report?")
    focus = DocumentFocus.build(POOL)
    assert focus.focus("What was the largest liability of American Express in 2022?") == {"amex"}
    assert focus.focus("Which Best Buy segment grew in FY2023?") == {"bby23"}
    assert focus.focus("What restructuring costs did PepsiCo report?") == {"pep"}
    assert focus.focus("What was Qingdao's Jan–Jul trade total?") == {"qd"}


def test_no_focus_when_the_question_names_no_document() -> None:
    focus = DocumentFocus.build(POOL)
    assert focus.focus("What drives gross margins in retail?") == frozenset()
    assert focus.focus("Which filings are from 2022?") == frozenset()  # too many match
    assert DocumentFocus.build(POOL[:2]).focus("American Express?") == frozenset()


def hit(doc_id: str, n: int, score: float) -> Hit:
    return make_hit(chunk_id=f"{doc_id}{n}", doc_id=doc_id, text=f"{doc_id} {n}", score=score,
               title=doc_id, path=doc_id)  # fmt: skip


def test_diversify_caps_other_documents_but_not_the_focused_one() -> None:
    hits = [hit("a", i, 10 - i) for i in range(4)]
    hits += [hit("b", 0, 1), hit("c", 0, 0.5), hit("d", 0, 0.4)]
    assert [h.doc_id for h in diversify(hits, 5, max_per_doc=2)] == ["a", "a", "b", "c", "d"]
    focused = diversify(hits, 5, max_per_doc=2, focus=frozenset({"a"}))
    assert [h.doc_id for h in focused] == ["a", "a", "a", "a", "b"]


def test_a_build_from_the_previous_one_equals_a_fresh_build() -> None:
    first = DocumentFocus.build(POOL[:4])
    renamed = chunk("boeing", "pdfs/BOEING_2022_10K.pdf", "BOEING 2022 10K")
    retitled = chunk("pep", "pdfs/PEPSICO_2022_10K.pdf", "PEPSICO 2022 10K")
    changed = [*POOL[:3], retitled, renamed, POOL[5]]
    incremental = DocumentFocus.build(changed, first)
    fresh = DocumentFocus.build(changed)
    assert incremental.terms == fresh.terms
    assert incremental.idf == fresh.idf
    assert incremental.by_source == fresh.by_source  # the old title is not kept
    assert "filed" not in incremental.terms["pep"]  # the new title's terms, not the old
    assert incremental.focus("What did Boeing report for 2022?") == {"boeing"}
    # Unchanged documents reuse the earlier terms rather than tokenising again.
    assert incremental.terms["amex"] is first.terms["amex"]
