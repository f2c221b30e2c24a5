"""Hybrid retrieval over a real index (real Chroma, real model, the real ingest pipeline)."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from bot.dates import REPORTING_LAG, parse_date_intent
from bot.diversity import collapse_duplicates, distinct, diversify
from bot.extractive import extractive_answer
from bot.retrieval import CJK_DENSE_FACTOR, Retriever, date_where, dense_weight_for, rrf
from bot.settings import Settings
from bot.types import Hit
from ingest.embeddings import LocalEmbeddings
from ingest.pipeline import run_ingest
from ingest.store import open_index
from tests.conftest import make_settings
from tests.hits import make_hit

QINGDAO = "qingdao-dual-circulation-2020-09-04.txt"
TODAY = date(2022, 1, 10)

HARBOUR = """---
title: Harbour container report {year}
date: {year}-05-10
---
{body}
"""
HARBOUR_BODIES = {
    2019: "The harbour handled 3.1 million containers in 2019, a modest rise. Dredging of the "
    "north basin delayed two berths until autumn.",
    2020: "Container traffic at the harbour fell to 2.8 million in 2020 as lockdowns hit "
    "shipping. The port authority waived berth fees for three months.",
    2021: "In 2021 the harbour set a record of 3.6 million containers. New rail links to inland "
    "provinces carried a fifth of the boxes.",
}


def hit(cid: str, doc: str, text: str, score: float) -> Hit:
    return make_hit(chunk_id=cid, doc_id=doc, text=text, score=score, title="", path=f"{doc}.txt")


# -- pure parts ---------------------------------------------------------------------------


def test_rrf_sums_reciprocal_ranks() -> None:
    scores = rrf([(["a", "b"], 1.0), (["b", "c"], 1.0)], k=60)
    assert scores["b"] == pytest.approx(1 / 62 + 1 / 61)
    assert scores["a"] == pytest.approx(1 / 61)
    assert max(scores, key=scores.__getitem__) == "b"


def test_date_where() -> None:
    assert date_where(parse_date_intent("no dates", TODAY)) is None
    assert date_where(parse_date_intent("since 2020", TODAY)) == {"date_ord": {"$gte": 20200101}}
    # A named period's window ends a reporting lag after it: 2020's figures appear in 2021.
    end = int((date(2020, 12, 31) + REPORTING_LAG).strftime("%Y%m%d"))
    assert end == 20220101
    assert date_where(parse_date_intent("between 2019 and 2020", TODAY)) == {
        "$and": [{"date_ord": {"$gte": 20190101}}, {"date_ord": {"$lte": end}}]
    }


def test_dense_weight_drops_for_chinese_questions() -> None:
    assert dense_weight_for("What was Qingdao's trade total?", 1.0) == 1.0
    assert dense_weight_for("2021年香港GDP增长了多少？", 1.0) == CJK_DENSE_FACTOR


def test_collapse_duplicates_keeps_the_better_copy() -> None:
    text = "Imports and exports in Qingdao totaled 341.81 billion yuan from January to July."
    hits = [
        hit("1", "a", text, 0.9),
        hit("2", "b", "  " + text.upper() + "\n", 0.8),  # same after normalising
        hit("3", "c", text.replace("July.", "July, officials said."), 0.7),  # Jaccard > 0.8
        hit("4", "d", "Wind capacity reached 12.4 gigawatts.", 0.6),
    ]
    assert [h.chunk_id for h in collapse_duplicates(hits)] == ["1", "4"]


def test_diversify_caps_chunks_per_document_unless_too_few_documents() -> None:
    hits = [hit(str(i), "a" if i < 4 else f"d{i}", f"text {i}", 1 - i / 10) for i in range(6)]
    assert [h.chunk_id for h in diversify(hits, 4)] == ["0", "1", "4", "5"]
    only_one_doc = [hit(str(i), "a", f"t{i}", 1 - i / 10) for i in range(4)]
    assert [h.chunk_id for h in diversify(only_one_doc, 3)] == ["0", "1", "2"]


def _reading(hits: list[Hit], read: list[str]) -> Iterator[Hit]:
    for h in hits:
        read.append(h.chunk_id)
        yield h


def test_distinct_reads_only_as_far_as_diversify_needs_and_gives_the_same_top_k() -> None:
    import random

    rng = random.Random(4)
    words = ["imports", "exports", "qingdao", "yuan", "wind", "capacity", "gigawatts",
             "青岛", "进出口", "总值", "风电"]  # fmt: skip
    for trial in range(200):
        base = [" ".join(rng.choices(words, k=rng.randint(3, 9))) for _ in range(8)]
        hits = [
            hit(str(i), f"d{rng.randint(0, 3)}", rng.choice(base), 1 - i / 100)
            for i in range(rng.randint(0, 30))
        ]
        read: list[str] = []
        k = rng.randint(1, 6)
        focus = frozenset({"d1"}) if trial % 3 == 0 else frozenset()
        got = diversify(distinct(_reading(hits, read)), k, 2, focus)
        assert got == diversify(collapse_duplicates(hits), k, 2, focus)
        assert len(got) == min(k, len(collapse_duplicates(hits)))
        if len(read) < len(hits):  # stopped early: only once it had k
            assert len(got) == k


# -- a real index -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus(
    tmp_path_factory: pytest.TempPathFactory, model_dir: Path, shared_dir: Path
) -> tuple[Settings, LocalEmbeddings]:
    docs = tmp_path_factory.mktemp("retrieval-docs")
    shutil.copy(shared_dir / "corpus" / QINGDAO, docs / QINGDAO)
    for year, body in HARBOUR_BODIES.items():
        (docs / f"harbour-{year}.md").write_text(HARBOUR.format(year=year, body=body))
    # Distractors: RGB news passages (positives and negatives of a few questions).
    rgb = [json.loads(line) for line in (shared_dir / "eval/rgb/en_fact.json").open()]
    for item in rgb[:8]:
        for j, text in enumerate(item["positive"][:1] + item["negative"][:2]):
            (docs / f"rgb-{item['id']}-{j}.txt").write_text(
                f"News note {item['id']}.{j}\n\n{text}\n"
            )
    settings = make_settings(
        tmp_path_factory.mktemp("retrieval-data"), model_dir, documents_dir=docs
    )
    embeddings = LocalEmbeddings(model_dir)
    report = run_ingest(settings, embeddings=embeddings)
    assert not report.failures, report.failures
    return settings, embeddings


@pytest.fixture
def retriever(corpus: tuple[Settings, LocalEmbeddings]) -> Retriever:
    settings, embeddings = corpus
    return Retriever(open_index(settings, embeddings), embeddings)


def test_qingdao_question_is_answered_with_a_verbatim_cited_quote(retriever: Retriever) -> None:
    question = "What was Qingdao's Jan–Jul trade total?"
    result = retriever.search_with_timings(question, k=5, today=TODAY)
    assert result.hits[0].path.endswith(QINGDAO)
    assert result.hits[0].dense_rank is not None and result.hits[0].lexical_rank is not None
    assert {"embed_ms", "dense_ms", "lexical_ms", "fusion_ms"} <= set(result.timings_ms)
    answer = extractive_answer(question, result.hits)
    assert not answer.refused
    assert "341.81 billion yuan" in answer.text
    first = answer.citations[0]
    assert first.n == 1 and first.hit.path.endswith(QINGDAO)
    assert "341.81 billion yuan" in first.quote
    assert first.quote in first.hit.text
    assert answer.text.startswith(first.quote)


def test_hits_are_ranked_and_diverse(retriever: Retriever) -> None:
    # No document's subject is named, so several documents beat five chunks of one.
    hits = retriever.search("opening-up and development pattern", k=5, today=TODAY)
    assert len(hits) == 5
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    per_doc: dict[str, int] = {}
    for h in hits:
        per_doc[h.doc_id] = per_doc.get(h.doc_id, 0) + 1
    assert max(per_doc.values()) <= 2
    assert len({h.chunk_id for h in hits}) == 5


def test_year_in_question_filters_by_publication_date(retriever: Retriever) -> None:
    hits = retriever.search("harbour container traffic report in 2020", k=3, today=TODAY)
    assert hits[0].date == "2020-05-10"
    for year in ("2019", "2021"):
        hits = retriever.search(f"harbour container traffic in {year}", k=3, today=TODAY)
        assert hits[0].date == f"{year}-05-10"


def test_window_keeps_undated_and_backfills_when_it_holds_too_little(
    tmp_path: Path, model_dir: Path, corpus: tuple[Settings, LocalEmbeddings]
) -> None:
    _, embeddings = corpus
    docs = tmp_path / "docs"
    docs.mkdir()
    for year in (2019, 2021):
        (docs / f"harbour-{year}.md").write_text(
            HARBOUR.format(year=year, body=HARBOUR_BODIES[year])
        )
    settings = make_settings(tmp_path / "data", model_dir, documents_dir=docs)
    assert not run_ingest(settings, embeddings=embeddings).failures
    retriever = Retriever(open_index(settings, embeddings), embeddings)
    in_2021 = retriever.search_with_timings("harbour containers in 2021", k=1, today=TODAY)
    assert not in_2021.backfilled
    assert [h.date for h in in_2021.hits] == ["2021-05-10"]
    # Nothing was published in 2005: answer from the rest rather than from nothing.
    in_2005 = retriever.search_with_timings("harbour containers in 2005", k=2, today=TODAY)
    assert in_2005.backfilled
    assert {h.date for h in in_2005.hits} == {"2019-05-10", "2021-05-10"}
    # An undated document is never excluded by a window.
    (docs / "undated.txt").write_text("Harbour memo\n\nThe harbour containers tally is pending.\n")
    run_ingest(settings, embeddings=embeddings)
    undated = retriever.search_with_timings("harbour containers tally in 2005", k=3, today=TODAY)
    assert any(h.date is None for h in undated.hits)
    assert undated.hits[0].date is None  # the only passage inside the window ranks first


def test_latest_prefers_the_newest_of_similar_documents(retriever: Retriever) -> None:
    hits = retriever.search("latest harbour container report", k=3, today=TODAY)
    assert hits[0].date == "2021-05-10"
    plain = retriever.search("harbour container report", k=3, today=TODAY)
    assert {h.date for h in plain} == {"2019-05-10", "2020-05-10", "2021-05-10"}


def test_parallel_searches_agree(retriever: Retriever) -> None:
    question = "What was Qingdao's Jan–Jul trade total?"
    expected = [h.chunk_id for h in retriever.search(question, today=TODAY)]
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(3):
                results.append([h.chunk_id for h in retriever.search(question, today=TODAY)])
        except BaseException as err:  # surfaced below
            errors.append(err)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert results == [expected] * 12


def test_lexical_index_follows_a_reingest(
    tmp_path: Path, model_dir: Path, corpus: tuple[Settings, LocalEmbeddings]
) -> None:
    _, embeddings = corpus
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("Ferry note\n\nThe ferry line carried 5,120 passengers.\n")
    settings = make_settings(tmp_path / "data", model_dir, documents_dir=docs)
    run_ingest(settings, embeddings=embeddings)
    retriever = Retriever(open_index(settings, embeddings), embeddings)
    assert all("zeppelin" not in h.text for h in retriever.search("zeppelin airship flights"))
    first_index = retriever.lexical_index()
    (docs / "b.txt").write_text("Airship note\n\nA zeppelin airship made 17 flights.\n")
    run_ingest(settings, embeddings=embeddings)
    hits = retriever.search("zeppelin airship flights")
    assert "zeppelin" in hits[0].text and hits[0].lexical_rank == 1
    assert retriever.lexical_index() is not first_index
    assert retriever.lexical_index() is retriever.lexical_index()  # cached while unchanged


def _gold(item: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for answer in item["answer"]:
        out.extend(answer if isinstance(answer, list) else [answer])
    return out


def test_chinese_questions_over_chinese_passages(
    tmp_path: Path, model_dir: Path, shared_dir: Path, corpus: tuple[Settings, LocalEmbeddings]
) -> None:
    _, embeddings = corpus
    items = [json.loads(line) for line in (shared_dir / "eval/rgb/zh_refine.json").open()][:20]
    docs = tmp_path / "docs"
    docs.mkdir()
    for item in items:
        for j, text in enumerate(item["positive"][:2] + item["negative"][:2]):
            (docs / f"zh-{item['id']}-{j}.txt").write_text(text, encoding="utf-8")
    settings = make_settings(tmp_path / "data", model_dir, documents_dir=docs)
    assert not run_ingest(settings, embeddings=embeddings).failures
    retriever = Retriever(open_index(settings, embeddings), embeddings)
    retrieved = answered = 0
    for item in items:
        gold = _gold(item)
        hits = retriever.search(item["query"], k=5, today=TODAY)
        retrieved += any(g in h.text for h in hits for g in gold)
        # As the service answers: with the local model's similarity (the stored sentence
        # vectors and the question vector retrieval computed).
        answer = extractive_answer(item["query"], hits, embedder=embeddings)
        answered += any(g in answer.text for g in gold)
        for c in answer.citations:
            assert c.quote in c.hit.text
    assert retrieved >= 17, f"gold passage in top 5 for {retrieved}/20"
    # With the similarity the service uses, 11/20 both with sentences embedded per question
    # and with stored sentence vectors (2026-11-29); without any similarity it was 12/20 and
    # is 11/20 now (one question: RGB zh id 8). A floor against regressions, not a target.
    assert answered >= 11, f"gold answer in the extractive answer for {answered}/20"


def test_hit_fields_come_from_the_chunk(retriever: Retriever) -> None:
    top = retriever.search("341.81 billion yuan", k=1, today=TODAY)[0]
    assert top.date == "2020-09-04"
    assert top.end > top.start
    assert replace(top, score=0.0).chunk_id == top.chunk_id
