"""Every case of bench/regression/: the question frame and whole answers (one test each)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bot.answer_types import answer_type
from bot.constraints import question_constraints
from bot.dates import parse_date_intent
from bot.lexical import tokenize
from bot.service import AnswerService
from bot.settings import Settings
from tests.conftest import make_settings

CASES = Path(__file__).resolve().parents[1] / "bench" / "regression"


def _cases(name: str) -> list[Any]:
    rows = [json.loads(line) for line in (CASES / name).read_text("utf-8").splitlines() if line]
    return [pytest.param(row, id=row["id"]) for row in rows]


@pytest.mark.parametrize("case", _cases("frame.jsonl"))
def test_frame(case: dict[str, Any]) -> None:
    q = case["question"]
    frame = question_constraints(q)
    if "entities" in case:
        assert [e.text for e in frame.entities] == case["entities"]
    if "period" in case:
        assert (frame.period.label() if frame.period else None) == case["period"]
    if "quantity" in case:
        assert frame.quantity == case["quantity"]
    for text in case.get("named_in", []):
        assert frame.entities[0].named_in(text, frozenset(tokenize(text)))
    for text in case.get("not_named_in", []):
        assert not frame.entities[0].named_in(text, frozenset(tokenize(text)))
    if "answer_type" in case:
        assert answer_type(q).value == case["answer_type"]
    if "date_window" in case:
        from datetime import date

        assert parse_date_intent(q, date(2021, 7, 1)).has_window is case["date_window"]


@pytest.fixture(scope="module")
def services(
    examples_settings: Settings, model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, AnswerService]:
    from ingest.pipeline import run_ingest

    regression = make_settings(
        tmp_path_factory.mktemp("regression-index"), model_dir, documents_dir=CASES / "docs"
    )
    report = run_ingest(regression)
    assert not report.failures, report.failures
    return {"examples": AnswerService(examples_settings), "regression": AnswerService(regression)}


@pytest.mark.parametrize("case", _cases("answers.jsonl"))
def test_answer(case: dict[str, Any], services: dict[str, AnswerService]) -> None:
    answer = services[case["corpus"]].answer(case["question"])
    shown = f"{answer.text!r} notes={answer.notes}"
    assert answer.refused is (case["expect"] == "refuse"), shown
    for text in case.get("contains", []):
        assert text in answer.text, shown
    if "contains_any" in case:
        assert any(text in answer.text for text in case["contains_any"]), shown
    for text in case.get("absent", []):
        assert text not in answer.text and not any(text in n for n in answer.notes), shown
