"""Post-processing of LLM answers: markers, renumbering, figures, quotes (pure functions)."""

from __future__ import annotations

import random
import re
from decimal import Decimal
from pathlib import Path

import pytest

from bot.citations import (
    MAX_QUOTE_CHARS,
    best_quote,
    figures,
    postprocess,
    supported,
)
from bot.types import Hit
from tests.hits import make_hit

QINGDAO = (
    "Despite COVID-19 epidemic, Qingdao has quickened its pace of attracting investment. "
    "660.8 billion yuan has been signed on online platforms, investment saw 4% year-on-year "
    "growth, the number of newly-registered market entities reached 162,000, up 4.7%. "
    "The growth against the trend is attributable to a series of measures."
)
TRADE = (
    "Xinwen Lianbo thought it advisable to promote innovation by opening to the outside world. "
    "Imports and exports in Qingdao totaled 341.81 billion yuan from January to July. "
    "Qingdao aims to set up international business clubs in Shandong province."
)

PORT = "The port handled 3,500,000 containers. Its staff grew 12 percent in a year."


def hit(n: int, text: str, date: str | None = "2020-09-04", title: str = "Briefing") -> Hit:
    return make_hit(
        chunk_id=f"c{n}",
        doc_id=f"d{n}",
        text=text,
        score=1.0 / n,
        title=title,
        path=f"p{n}.txt",
        date=date,
    )


HITS = [hit(1, QINGDAO), hit(2, TRADE), hit(3, PORT)]


def markers(text: str) -> list[int]:
    return [int(n) for n in re.findall(r"\[(\d+)\]", text)]


@pytest.mark.parametrize(
    ("answer", "cited"),
    [
        ("Entities reached 162,000 [1].", [0]),
        ("Trade totaled 341.81 billion yuan [2].", [1]),
        ("Trade totaled 341.81 billion yuan and entities reached 162,000 [1, 2].", [0, 1]),
        ("Trade totaled 341.81 billion yuan and entities reached 162,000 [2][1].", [1, 0]),
        ("Qingdao grew [1-3].", [0, 1, 2]),
        ("Qingdao grew [2–3].", [1, 2]),
        ("Qingdao grew [1,3-3].", [0, 2]),
        ("Qingdao grew [Passage 3].", [2]),
        ("Qingdao grew [3; 1].", [2, 0]),
    ],
)
def test_marker_forms(answer: str, cited: list[int]) -> None:
    result = postprocess(answer, HITS)
    assert result.citations
    assert [c.hit for c in result.citations] == [HITS[i] for i in cited]
    assert [c.n for c in result.citations] == list(range(1, len(cited) + 1))
    assert set(markers(result.text)) == set(range(1, len(cited) + 1))


def test_citations_are_renumbered_in_order_of_first_use() -> None:
    answer = "The port handled 3,500,000 containers [3]. Entities reached 162,000 [1][3]."
    result = postprocess(answer, HITS)
    assert result.text == (
        "The port handled 3,500,000 containers [1]. Entities reached 162,000 [1][2]."
    )
    assert [c.hit.chunk_id for c in result.citations] == ["c3", "c1"]
    assert result.citations[0].quote == "The port handled 3,500,000 containers."


def test_bogus_citation_is_removed_and_noted() -> None:
    result = postprocess("Trade totaled 341.81 billion yuan [2][7].", HITS)
    assert result.text == "Trade totaled 341.81 billion yuan [1]."
    assert "removed citation [7]: no such passage" in result.notes
    only_bogus = postprocess("Trade totaled 341.81 billion yuan [7]. Entities grew [1].", HITS)
    assert only_bogus.text == "Entities grew [1]."
    assert any("without a valid citation" in note for note in only_bogus.notes)


def test_uncited_sentences_are_dropped() -> None:
    answer = "Trade totaled 341.81 billion yuan [2]. This shows remarkable resilience."
    result = postprocess(answer, HITS)
    assert result.text == "Trade totaled 341.81 billion yuan [1]."
    assert result.notes == [
        "dropped sentence without a valid citation: 'This shows remarkable resilience.'"
    ]


def test_marker_after_full_stop_or_on_its_own_line_belongs_to_the_sentence_before() -> None:
    result = postprocess("Trade totaled 341.81 billion yuan. [2] Entities grew. [1]", HITS)
    assert result.text == "Trade totaled 341.81 billion yuan. [1] Entities grew. [2]"
    result = postprocess("Trade totaled 341.81 billion yuan.\n[2]", HITS)
    assert result.text == "Trade totaled 341.81 billion yuan. [1]"


@pytest.mark.parametrize(
    ("sentence", "kept"),
    [
        ("Investment grew 4% [1].", True),
        ("Investment grew 12% [1].", False),  # 12% appears nowhere
        ("Staff grew 12% [3].", True),  # "12 percent" in passage 3
        ("Staff grew 12% [1].", False),  # true elsewhere, but not in the cited passage
        ("Entities grew 4.70% [1].", True),
        ("Entities grew 4.8% [1].", False),
        ("Entities reached 162,000 [1].", True),
        ("Entities reached 162000 [1].", True),
        ("Entities reached 162,001 [1].", False),
        ("Trade totaled 341.81 billion yuan [2].", True),
        ("Trade totaled 341.81 million yuan [2].", False),  # wrong scale
        ("Trade totaled 341.8 billion yuan [2].", False),  # rounded
        ("Trade totaled 341.81 [2].", True),
        ("The port handled 3.5 million containers [3].", True),  # = 3,500,000
        ("The port handled 3.5 billion containers [3].", False),
        ("Trade totaled 341.81 billion yuan in 2020 [2].", True),  # year of the passage date
        ("Trade totaled 341.81 billion yuan in 2019 [2].", False),
        ("Despite COVID-19, Qingdao attracted investment [1].", True),  # a name, not a figure
        ("Qingdao signed 660.8 billion yuan online and trade reached 341.81 billion [1][2].", True),
        ("The 13th plan matters [1].", False),
    ],
)
def test_figures_must_appear_in_a_cited_passage(sentence: str, kept: bool) -> None:
    result = postprocess(sentence, HITS)
    assert bool(result.citations) is kept
    if not kept:
        assert result.text == ""
        assert any(note.startswith("removed unsupported figure") for note in result.notes)


def test_only_the_sentence_with_the_unsupported_figure_goes() -> None:
    answer = (
        "Trade totaled 341.81 billion yuan [2][7]. Investment grew 12% [1]. "
        "Entities reached 162,000 [1]."
    )
    result = postprocess(answer, HITS)
    assert result.text == "Trade totaled 341.81 billion yuan [1]. Entities reached 162,000 [2]."
    assert "removed unsupported figure 12% (not in the cited passage): 'Investment grew 12%.'" in (
        result.notes
    )


def test_nothing_valid_left() -> None:
    for answer in ["", "No citations here.", "Trade grew 99% [2].", "See [4][5].", "[1]"]:
        result = postprocess(answer, HITS)
        assert not result.citations, answer
        assert result.text == ""
        assert result.citations == []
    assert not postprocess("Entities grew [1].", []).citations


def test_quote_is_the_best_supporting_sentence() -> None:
    result = postprocess("Entities reached 162,000, up 4.7% [1].", HITS)
    quote = result.citations[0].quote
    assert quote.startswith("660.8 billion yuan")
    assert quote.endswith("up 4.7%.")
    assert quote in QINGDAO
    both = postprocess("Qingdao quickened investment [1]. Entities reached 162,000 [1].", HITS)
    assert len(both.citations) == 1  # one passage, one quote, serving both sentences


def test_figures_outweigh_common_words_in_quote_choice() -> None:
    text = (
        "Qingdao Qingdao Qingdao port trade news. Trade was 5 billion. Qingdao trade was 7 billion."
    )
    assert best_quote(hit(1, text), ["Qingdao trade was 5 billion"]) == "Trade was 5 billion."


def test_long_unpunctuated_passage_gives_a_bounded_exact_quote() -> None:
    words = [f"word{i}" for i in range(300)]
    words[200] = "341.81"
    text = " ".join(words)
    quote = best_quote(hit(1, text), ["It was 341.81 [1]"])
    assert len(quote) <= MAX_QUOTE_CHARS
    assert "341.81" in quote
    assert quote in text
    assert not quote.startswith(" ")
    assert not quote.endswith(" ")


def test_chinese_answer() -> None:
    passage = "青岛市1-7月进出口总额3418.1亿元。同比增长4.7%。"
    ok = postprocess("青岛1-7月进出口总额3418.1亿元[1]。", [hit(1, passage)])
    assert ok.citations
    assert ok.citations[0].quote == "青岛市1-7月进出口总额3418.1亿元。"
    wrong = postprocess("青岛1-7月进出口总额3418.2亿元[1]。", [hit(1, passage)])
    assert not wrong.citations


def test_list_answers_keep_their_lines() -> None:
    answer = (
        "- Trade totaled 341.81 billion yuan [2].\n- Investment grew 12% [1].\n- Growth 4% [1]."
    )
    result = postprocess(answer, HITS)
    assert result.text == "- Trade totaled 341.81 billion yuan [1].\n- Growth 4% [2]."


def test_figure_parsing() -> None:
    parsed = {
        f.text: (f.scaled, f.percent)
        for f in figures(
            "3.5 million, 12%, 12 per cent, 1,234.5, 2020, 5 bn, 3万, G20, v2.0, COVID-19, 2020s"
        )
    }
    assert set(parsed) == {"3.5 million", "12%", "12 per cent", "1,234.5", "2020", "5 bn", "3万"}
    assert parsed["3.5 million"] == (Decimal(3_500_000), False)
    assert parsed["12 per cent"][1]
    assert parsed["12%"][1]
    assert parsed["5 bn"][0] == 5_000_000_000
    assert parsed["3万"][0] == 30_000
    [plain] = figures("about 40")
    assert not supported(plain, figures("up 41%"))
    assert supported(plain, figures("40 percent"))


def test_randomised_answers_keep_the_invariants() -> None:
    """Random passages and answers: quotes are exact, numbering is 1..k, cited ⇔ text."""
    rng = random.Random(20200904)
    # fmt: off
    vocabulary = [
        "Qingdao", "trade", "port", "exports", "imports", "growth", "yuan", "investment",
        "entities", "million", "billion", "percent", "rose", "fell", "reached", "totaled", "2020",
        "4.7%", "162,000", "341.81", "12", "U.S.", "Dr.", "[1]", "(", ")", "\"", "\n", ".", ",",
        "!", "?", "。", "青岛", "进出口",
    ]
    # fmt: on
    for case in range(400):
        hits = [
            hit(i + 1, " ".join(rng.choice(vocabulary) for _ in range(rng.randint(1, 60))))
            for i in range(rng.randint(0, 5))
        ]
        sentences = []
        for _ in range(rng.randint(0, 5)):
            words = [rng.choice(vocabulary) for _ in range(rng.randint(0, 12))]
            cites = "".join(f"[{rng.randint(0, 7)}]" for _ in range(rng.randint(0, 3)))
            if rng.random() < 0.2:
                cites = f"[{rng.randint(1, 3)}-{rng.randint(1, 6)}]"
            sentences.append(" ".join(words) + f" {cites}" + rng.choice([".", "", "!", "\n"]))
        answer = " ".join(sentences)
        result = postprocess(answer, hits)
        k = len(result.citations)
        assert [c.n for c in result.citations] == list(range(1, k + 1)), (case, answer)
        for citation in result.citations:
            assert citation.quote, (case, answer)
            assert citation.quote in citation.hit.text, (case, answer)
            assert citation.hit in hits
        assert set(markers(result.text)) == set(range(1, k + 1)), (case, answer, result.text)
        assert bool(result.citations) == bool(result.text) == (k > 0), (case, answer)


def test_real_press_release(shared_dir: Path) -> None:
    text = (shared_dir / "corpus" / "qingdao-dual-circulation-2020-09-04.txt").read_text()
    chunks = [hit(1, text[:2500]), hit(2, text[2500:])]
    answer = (
        "Imports and exports in Qingdao totaled 341.81 billion yuan from January to July 2020 "
        "[2]. That is 15% more than a year earlier [2]."
    )
    result = postprocess(answer, chunks)
    assert result.text == (
        "Imports and exports in Qingdao totaled 341.81 billion yuan from January to July 2020 [1]."
    )
    assert result.citations[0].quote == (
        "Imports and exports in Qingdao totaled 341.81 billion yuan from January to July."
    )
