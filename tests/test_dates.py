"""Time windows read from questions, relative to a fixed 'today'."""

from __future__ import annotations

from datetime import date

import pytest

from bot.dates import REPORTING_LAG, parse_date_intent

TODAY = date(2021, 6, 15)


@pytest.mark.parametrize(
    ("question", "start", "end"),
    [
        ("What was trade in 2020?", date(2020, 1, 1), date(2020, 12, 31) + REPORTING_LAG),
        ("Exports during July 2020", date(2020, 7, 1), date(2020, 7, 31) + REPORTING_LAG),
        ("July 2020 exports", date(2020, 7, 1), date(2020, 7, 31) + REPORTING_LAG),
        ("as of July 2020, how much?", date(2020, 7, 1), date(2020, 7, 31) + REPORTING_LAG),
        # July has not come yet on 2021-06-15, so "as of July" is July 2020.
        ("as of July", date(2020, 7, 1), date(2020, 7, 31) + REPORTING_LAG),
        ("as of March", date(2021, 3, 1), date(2021, 3, 31) + REPORTING_LAG),
        ("this year", date(2021, 1, 1), TODAY),
        ("What happened last year?", date(2020, 1, 1), date(2020, 12, 31)),
        ("since March 2021", date(2021, 3, 1), None),
        ("since 2019", date(2019, 1, 1), None),
        ("after 2019", date(2020, 1, 1), None),
        ("before 2019", None, date(2018, 12, 31)),
        ("before March 2021", None, date(2021, 2, 28)),
        ("between 2019 and 2020", date(2019, 1, 1), date(2020, 12, 31) + REPORTING_LAG),
        ("from March to July 2020", date(2020, 3, 1), date(2020, 7, 31) + REPORTING_LAG),
        ("last month", date(2021, 5, 1), date(2021, 5, 31)),
        ("2020年青岛进出口总额", date(2020, 1, 1), date(2020, 12, 31) + REPORTING_LAG),
        ("2020年7月的出口", date(2020, 7, 1), date(2020, 7, 31) + REPORTING_LAG),
        ("截至2020年7月", date(2020, 7, 1), date(2020, 7, 31) + REPORTING_LAG),
        ("自2019年以来", date(2019, 1, 1), None),
        ("2019年以前", None, date(2018, 12, 31)),
        ("今年的进出口", date(2021, 1, 1), TODAY),
        ("去年的进出口", date(2020, 1, 1), date(2020, 12, 31)),
    ],
)
def test_windows(question: str, start: date | None, end: date | None) -> None:
    intent = parse_date_intent(question, TODAY)
    assert (intent.start, intent.end) == (start, end)
    assert intent.question == question  # date words are kept for search
    assert intent.has_window


@pytest.mark.parametrize(
    "question",
    [
        "What was Qingdao's Jan–Jul trade total?",
        "What was trade from January to July?",  # the data's period, not publication
        "What happened at the 2020 Harbour forum?",  # a year inside a name
        "Harbour expo 2021 location",
        "What may happen in May?",
        "Imports totaled 341.81 billion yuan",
    ],
)
def test_no_window(question: str) -> None:
    intent = parse_date_intent(question, TODAY)
    assert (intent.start, intent.end) == (None, None)
    assert not intent.has_window
    assert intent.contains(None) and intent.contains("1999-01-01")


@pytest.mark.parametrize(
    ("question", "recent"),
    [
        ("What is the latest export figure?", True),
        ("most recent briefing on trade", True),
        ("the newest policy", True),
        ("最新的进出口数据", True),
        ("What was the export figure?", False),
    ],
)
def test_recency(question: str, recent: bool) -> None:
    assert parse_date_intent(question, TODAY).prefer_recent is recent


def test_latest_with_a_year_keeps_both() -> None:
    intent = parse_date_intent("latest figures in 2020", TODAY)
    assert intent.prefer_recent
    assert intent.start == date(2020, 1, 1)


def test_contains() -> None:
    intent = parse_date_intent("in 2020", TODAY)
    assert intent.contains("2020-09-04")
    assert intent.contains("2021-02-01")  # annual figures come out early next year
    assert intent.contains("2021-06-01")  # a review of the year later still
    assert not intent.contains("2022-01-02")
    assert not intent.contains("2019-12-31")
    assert not intent.contains(None)  # undated documents fall outside a window
    assert not intent.contains("not a date")
