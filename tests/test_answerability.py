"""Right or refused: the answerer over the invented releases of bench/data/answerability.

A real index of the twelve releases (real model, real Chroma), real retrieval, the fitted
selector. Questions that name a subject of the collection but ask what no document says
are refused, and the refusal says what was missing; paraphrases are answered; a revised
figure is answered with the final value.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.citations import check_citations
from bot.constraints import carries_role, question_constraints, question_role
from bot.lexical import tokenize
from bot.llm import LLMAnswerer
from bot.periods import Period, period_conflict, periods, question_period, sentence_period
from bot.service import AnswerService
from bot.types import Answer
from ingest.pipeline import run_ingest
from tests.conftest import make_settings
from tests.hits import make_hit
from tests.openai_server import FakeOpenAIServer

# Known gap (bench/README, issue 8): a paraphrase sharing no word with the sentence that
# answers ("total foreign trade" for "imports and exports combined") is refused; the
# selector's similarity feature carries too little weight to lift it over the threshold.
PARAPHRASE_GAP = "paraphrase without shared words: selector similarity too weak (known gap)"
DOCS = Path(__file__).resolve().parents[1] / "bench" / "data" / "answerability" / "docs"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> AnswerService:
    settings = make_settings(tmp_path_factory.mktemp("answerability"), model_dir,
                             documents_dir=DOCS)  # fmt: skip
    assert not run_ingest(settings).failures
    return AnswerService(settings)


def _explained(answer: Answer) -> str:
    return " ".join([answer.text, *answer.notes])


# -- constraints (pure functions) -----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "labels"),
    [
        ("in the first quarter of 2024", ["Q1 2024"]),
        ("Q2 2024 revenue", ["Q2 2024"]),
        ("from January to July 2024, up from the first seven months of 2023",
         ["January–July 2024", "January–July 2023"]),
        ("9.4 billion in the first half of 2024, up 3.1% from 2023", ["H1 2024", "2023"]),
        ("2024年1-7月，进出口总额", ["January–July 2024"]),
        ("澜州市2024年二季度", ["Q2 2024"]),
        ("前七个月", ["January–July"]),
        ("上半年营业收入", ["H1"]),
        ("星澜科技发布2024年半年度业绩", ["H1 2024"]),  # a half-year report is H1's
        ("On March 5, 2024 the council met", []),  # a date, not a period
        # A date that ends a period names it: a table of years, a quarter, a moment.
        ("Years ended December 31, 2022 2021 2020 Revenue", ["2022", "2021", "2020"]),
        ("For the three months ended June 30, 2023, revenue", ["Q2 2023"]),
        ("As of December 31, 2022, these amounts", ["December 2022"]),
        ("for the fiscal year ended January 28, 2023", ["2023"]),
        ("the plan that December 5, 2022 set out", []),  # "at" inside "that" is no moment
        ("Q2 of FY2024 and Q3 fiscal year 2023", ["Q2 2024", "Q3 2023"]),
        ("Marenhaven may grow", []),
    ],
)  # fmt: skip
def test_periods_are_read_in_english_and_chinese(text: str, labels: list[str]) -> None:
    assert [p.label() for p in periods(text)] == labels


def test_a_sentence_without_a_period_takes_its_title_and_publication_year() -> None:
    given = sentence_period(
        "Exports reached 5.6 billion.", ["Trade in the first half"], "2024-07-22"
    )
    assert given == Period(2024, 1, 6)
    assert sentence_period("No period here.", ["Nor here"], None) is None


def test_period_conflicts() -> None:
    q1, q2, h1 = Period(2024, 1, 3), Period(2024, 4, 6), Period(2024, 1, 6)
    assert period_conflict(q2, q1, amount=True)
    assert not period_conflict(q1, Period(2024, 1, 3), amount=True)
    assert period_conflict(h1, Period(2024, 1, 7), amount=True)  # January–July is not H1
    assert period_conflict(Period(2023, 1, 12), Period(2022, 1, 12), amount=False)
    # A year's amount is not a quarter's; an event in March is still "in 2024".
    assert period_conflict(Period(2024, 1, 12), q1, amount=True)
    assert not period_conflict(Period(2024, 1, 12), Period(2024, 3, 3, point=True), amount=False)
    assert not period_conflict(q1, None, amount=True)  # nothing said: not a conflict


def test_a_question_comparing_two_years_asks_about_the_first() -> None:
    q = "Was there any drop in cash between FY 2023 and Q2 of FY2024?"
    assert question_period(q) == Period(2023, 1, 12)
    assert question_period("In 2024, first quarter GDP?") == Period(2024, 1, 3)


def test_a_vague_period_is_answered_by_any_period_inside_it() -> None:
    early = question_period("How many companies were set up in Marenhaven in early 2024?")
    assert early == Period(2024, 1, 6, loose=True) and early.label() == "early 2024"
    assert not period_conflict(early, Period(2024, 1, 3), amount=True)  # Q1 answers it
    assert period_conflict(early, Period(2024, 1, 12), amount=True)  # the year's total is not
    assert not period_conflict(early, Period(2024, 1, 12), amount=False)  # an event in 2024 may be
    assert period_conflict(early, Period(2024, 7, 9), amount=True)  # Q3 is not early
    assert period_conflict(early, Period(2023, 1, 3), amount=True)  # nor another year
    late = question_period("What was the rate in late 2023?")
    assert late is not None and (late.first, late.last, late.loose) == (7, 12, True)
    # "the end of 2023" stays the year: a year-end figure is asked for.
    assert question_period("What was cash at the end of 2023?") == Period(2023, 1, 12)


def test_roles_a_deputy_is_not_the_office() -> None:
    assert question_role("Who is the mayor of Velmora?") == "mayor"
    assert question_role("Who chairs the board of Norrvik Shipping?") == "chair"
    assert question_role("青屿市委书记是谁？") == "市委书记"
    assert question_role("What did the mayor say?") is None  # not a "who" question
    assert not carries_role("overseen by deputy mayor Jonas Eklund", "mayor")
    assert carries_role("Mayor Tomas Reinholt said", "mayor")
    assert not carries_role("副市长王某表示", "市长")


def test_question_constraints() -> None:
    c = question_constraints("What was Kelbrook's GDP in the first quarter of 2024?")
    assert [e.text for e in c.entities] == ["Kelbrook"]
    assert c.period == Period(2024, 1, 3)
    assert c.quantity == "GDP"
    c = question_constraints("澜州一季度进出口总额是多少？")
    assert [e.text for e in c.entities] == ["澜州"]
    assert c.quantity == "进出口总额"


def test_names_with_acronyms_camel_case_and_titles_are_one_entity() -> None:
    from bot.constraints import question_entities

    office = question_entities("Who headed the U.K. Trade Office in 2021?")
    assert [e.text for e in office] == ["UK Trade Office"]
    # Both spellings name it; a passage about another office does not.
    assert office[0].named_in("She headed the U.K. Trade Office.", frozenset({"u", "offic"}))
    assert office[0].named_in("She headed the UK Trade Office.", frozenset({"uk", "offic"}))
    assert not office[0].named_in("She ran the port.", frozenset({"ran", "port"}))
    assert [e.text for e in question_entities("When does the eVolt 3 launch?")] == ["eVolt 3"]
    (plan,) = question_entities("When was The Harbour Plan: Phase Two of the Renewal adopted?")
    assert plan.text == "Harbour Plan: Phase Two of the Renewal"
    text = "Phase Two of the Renewal was adopted on March 3."
    assert plan.named_in(text, frozenset(tokenize(text)))
    assert not plan.named_in("The tram line opened.", frozenset({"tram", "line"}))


def test_fiscal_periods_and_sentence_openers_are_not_names() -> None:
    from bot.constraints import question_entities

    # "Is" opens the question and FY2022 is a period; "7Seas Media" is the company.
    names = question_entities("Is 7Seas Media a capital-intensive business based on FY2022 data?")
    assert [e.text for e in names] == ["7Seas Media"]
    assert [e.text for e in question_entities("Has Halden reported lawsuits?")] == ["Halden"]
    assert question_entities("What drove the impact of M&A in the 10K?") == []
    names = question_entities(
        "Was there any change in the number of Velmora Homes sites between Q2 of FY2024 and "
        "FY2023? Calculate the change."
    )
    assert [e.text for e in names] == ["Velmora Homes"]


def test_an_event_may_be_dated_by_any_period_its_sentence_names() -> None:
    from bot.selector import select
    from tests.hits import make_hit

    hit = make_hit(
        "c1",
        "d1",
        "Tesla CEO Elon Musk said during the Q4 2020 earnings call in January 2021 "
        "that the Semi was on hold.",
    )
    who = select("Who is the CEO of Tesla in 2021?", [hit], None)
    assert who.best is not None and who.best.conflict is None
    # An amount is of the sentence's first period: Q4 2020 does not answer 2021.
    amount = make_hit(
        "c2", "d2", "Tesla's revenue was 10.7 billion dollars in Q4 2020, reported in January 2021."
    )
    how_much = select("What was Tesla's revenue in 2021?", [amount], None)
    assert how_much.best is None and how_much.candidates[0].conflict == "period"


# -- the answerer over a real index ----------------------------------------------------------


@pytest.mark.parametrize(
    ("question", "missing"),
    [
        ("How many hospitals does Marenhaven have?", "hospitals"),  # absent quantity
        ("What was Marenhaven's GDP in the second quarter of 2024?", "Q2 2024"),  # other period
        ("What was Norrvik Shipping's revenue in 2022?", "2022"),  # other year
        ("How many passenger trips did the Kelbrook metro record in 2023?", "Kelbrook"),
        ("Who is the mayor of Marenhaven?", "mayor"),  # only the party secretary is named
        ("Who is the mayor of Velmora?", "mayor"),  # only a deputy mayor is named
        ("澜州市2024年二季度地区生产总值是多少？", "Q2 2024"),  # Chinese, other period
        ("青屿市委书记是谁？", "市委书记"),  # Chinese, other role
    ],
)
def test_unanswerable_questions_are_refused_saying_what_is_missing(
    service: AnswerService, question: str, missing: str
) -> None:
    answer = service.answer(question)
    assert answer.refused, answer.text
    assert missing in _explained(answer)
    check_citations(answer)


def test_a_near_miss_says_what_the_documents_do_hold(service: AnswerService) -> None:
    answer = service.answer("What was Marenhaven's GDP in the second quarter of 2024?")
    assert answer.refused
    assert answer.text.startswith("Not stated for Q2 2024; the documents give Q1 2024: ")
    assert "48.6 billion crowns" in answer.text and re.search(r"\[1\]$", answer.text)
    assert answer.citations[0].hit.path.endswith("marenhaven-economy-q1-2024.md")


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        pytest.param(
            "What was the total foreign trade of Marenhaven in Q1 2024?",
            "21.7 billion",
            marks=pytest.mark.xfail(strict=True, reason=PARAPHRASE_GAP),
        ),
        pytest.param(
            "How many EVs were built in Tarnwick in the first seven months of 2024?",
            "42,300",
            marks=pytest.mark.xfail(strict=True, reason=PARAPHRASE_GAP),
        ),
        ("What was cargo throughput at Kelbrook port in H1 2024?", "18.2 million"),
        ("Who is the mayor of Kelbrook?", "Tomas Reinholt"),
        ("澜州市2024年一季度地区生产总值是多少？", "612.4亿元"),
    ],
)
def test_answerable_questions_and_paraphrases_are_answered(
    service: AnswerService, question: str, expected: str
) -> None:
    answer = service.answer(question)
    assert not answer.refused, answer.notes
    assert expected in answer.text
    check_citations(answer)


def test_a_revised_figure_is_answered_with_the_final_value(service: AnswerService) -> None:
    answer = service.answer("What was Halden Grid's revenue in 2023?")
    assert not answer.refused
    first = answer.citations[0]
    assert "2.03 billion" in first.quote
    assert first.hit.date == "2024-03-28"
    # The preliminary figure is named, with its date, after the final one.
    assert answer.text.index("2.03 billion") < answer.text.index("1.96 billion")
    assert "2024-01-25" in answer.text
    check_citations(answer)


# -- the LLM path's guard (a real loopback OpenAI-compatible server) -------------------------

MAREN_Q1 = make_hit(
    "m1", "dm", "Marenhaven's gross domestic product reached 48.6 billion crowns in the first "
    "quarter of 2024, an increase of 5.2%.", title="Marenhaven economy in Q1 2024",
    date="2024-04-18",
)  # fmt: skip
KEL_H1 = make_hit(
    "k1", "dk", "Kelbrook's foreign trade totalled 9.4 billion crowns in the first half of 2024.",
    title="Kelbrook trade", date="2024-07-22",
)  # fmt: skip


@pytest.fixture
def llm_server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as running:
        yield running


def _llm(server: FakeOpenAIServer) -> LLMAnswerer:
    return LLMAnswerer(model="local-model", base_url=server.base_url, api_key=None,
                       timeout_s=5.0, max_tokens=200)  # fmt: skip


def test_llm_answer_for_another_period_is_refused(llm_server: FakeOpenAIServer) -> None:
    llm_server.reply = "Marenhaven's GDP was 48.6 billion crowns [1]."
    answer = _llm(llm_server).answer("What was Marenhaven's GDP in Q2 2024?", [MAREN_Q1, KEL_H1])
    assert answer.refused
    assert any("gives Q1 2024, not Q2 2024" in n for n in answer.notes)
    # The same reply to the question the passage answers stands.
    answer = _llm(llm_server).answer("What was Marenhaven's GDP in Q1 2024?", [MAREN_Q1, KEL_H1])
    assert not answer.refused and "48.6 billion" in answer.text


def test_llm_answer_about_another_city_is_refused(llm_server: FakeOpenAIServer) -> None:
    llm_server.reply = "Foreign trade was 9.4 billion crowns in the first half of 2024 [2]."
    question = "What was Tarnwick's foreign trade in the first half of 2024?"
    answer = _llm(llm_server).answer(question, [MAREN_Q1, KEL_H1])
    assert answer.refused
    assert any("does not mention Tarnwick" in n for n in answer.notes)
