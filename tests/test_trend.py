"""Figures over time: the series drawn from invented releases (tests/data/trend), English
and Chinese, over a real index — and the rules one sentence at a time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from bot.lexical import LexicalIndex
from bot.periods import Period
from bot.service import AnswerService
from bot.settings import Settings
from bot.trend import (
    Statement,
    TopicError,
    Trend,
    build_trend,
    find_trend,
    is_trend_question,
    statements,
    topic_parts,
)
from bot.trend_read import amounts
from bot.trend_render import format_trend, trend_json
from bot.trend_text import period_label, strip_trend_words
from bot.types import Hit
from ingest.types import IndexedChunk
from tests.conftest import ROOT, make_settings

TREND_DOCS = ROOT / "tests" / "data" / "trend"


@pytest.fixture(scope="session")
def trend_settings(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Settings:
    """An index of the invented trade releases (ingested once per session)."""
    from ingest.pipeline import run_ingest

    settings = make_settings(
        tmp_path_factory.mktemp("trend-index"), model_dir, documents_dir=TREND_DOCS
    )
    report = run_ingest(settings)
    assert not report.failures and report.summary()["added"] == len(list(TREND_DOCS.glob("*")))
    return settings


@pytest.fixture(scope="module")
def lexical(trend_settings: Settings) -> LexicalIndex:
    return AnswerService(trend_settings).retriever.lexical_index()


def points(trend: Trend, kind: str) -> list[tuple[str, float]]:
    [series] = [s for s in trend.series if s.kind == kind]
    return [(p.label, p.value) for p in series.points]


def quoted_values(trend: Trend) -> set[float]:
    return {p.value for s in trend.series for p in s.points}


def assert_quotes_hold_their_numbers(trend: Trend) -> None:
    for s in trend.series:
        for p in s.points:
            quote = p.statement.quote
            assert p.statement.figure in quote, (p.label, quote)
            assert quote in p.statement.hit.text  # verbatim
            number = p.statement.figure.split()[0].rstrip("万亿")
            assert number in quote


# --- over the index -----------------------------------------------------------------------


def test_english_quarterly_series_with_revision_and_ytd_beside_it(lexical: LexicalIndex) -> None:
    trend = find_trend(lexical, "How has Kelbrook's foreign trade changed?")
    assert (trend.entity, trend.measure) == ("Kelbrook", "foreign trade")
    assert [s.kind for s in trend.series] == ["quarter", "ytd"]
    assert {s.unit.label() for s in trend.series} == {"billion yuan"}
    assert points(trend, "quarter") == [("2024-Q1", 112.4), ("2024-Q2", 119.6), ("2024-Q3", 121.7)]
    assert points(trend, "ytd") == [
        ("2024-01..2024-03", 112.4),
        ("2024-01..2024-05", 193.6),
        ("2024-01..2024-07", 271.9),
        ("2024-01..2024-09", 353.3),
    ]
    # The revision wins; the first release's value is kept and noted.
    q2 = trend.series[0].points[1]
    assert q2.statement.hit.path.endswith("kelbrook-trade-q3-2024.md")
    assert [float(e.amount) / 1e9 for e in q2.earlier] == [118.9]
    assert any(n.startswith("revised: 2024-Q2 119.6") and "118.9" in n for n in trend.notes)
    # Neither the second city nor the figure in US dollars enters.
    assert not quoted_values(trend) & {64.5, 66.0, 158.3, 130.5, 15.8}
    assert all("Lindmark" not in s.quote for s in trend.sources)
    assert any(n.startswith("set aside: 2024-Q1 15.8 billion US dollars") for n in trend.notes)
    assert_quotes_hold_their_numbers(trend)


def test_chinese_series_in_yi_yuan_with_revision_and_cumulative_spans(
    lexical: LexicalIndex,
) -> None:
    trend = find_trend(lexical, "青屿外贸进出口走势")
    assert trend.entity == "青屿"
    assert {s.unit.label() for s in trend.series} == {"亿元"}
    assert points(trend, "quarter") == [("2024-Q1", 856.3), ("2024-Q2", 936.0), ("2024-Q3", 943.4)]
    assert points(trend, "ytd") == [
        ("2024-01..2024-03", 856.3),
        ("2024-01..2024-06", 1789.5),
        ("2024-01..2024-07", 2105.4),
        ("2024-01..2024-09", 2732.9),  # 前三季度 is January–September, not the third quarter
    ]
    q2 = trend.series[0].points[1]
    assert "修正为936.0亿元" in q2.statement.quote
    assert [float(e.amount) / 1e8 for e in q2.earlier] == [933.2]
    # 澜州's figures, the exports share and the growth rates stay out; US dollars set aside.
    assert not quoted_values(trend) & {402.1, 415.8, 817.9, 512.7, 343.6, 4.2, 248.6}
    assert any("248.6 亿美元" in n and n.startswith("set aside") for n in trend.notes)
    assert_quotes_hold_their_numbers(trend)


def test_port_throughput_in_wan_teu_is_its_own_measure(lexical: LexicalIndex) -> None:
    trend = find_trend(lexical, "青屿港集装箱吞吐量走势")
    assert points(trend, "ytd") == [("2024-01..2024-07", 1520.6), ("2024-01..2024-09", 1978.2)]
    assert trend.series[0].unit.label() == "万标准箱"


def test_second_city_has_its_own_series(lexical: LexicalIndex) -> None:
    trend = find_trend(lexical, "Lindmark foreign trade")
    assert points(trend, "quarter") == [("2024-Q1", 64.5), ("2024-Q2", 66.0)]
    assert not quoted_values(trend) & {112.4, 118.9, 119.6, 121.7}


def test_one_figure_or_none_says_so_and_offers_the_figure(lexical: LexicalIndex) -> None:
    one = find_trend(lexical, "Kelbrook exports")
    assert not one.charted
    assert [(p.label, p.value) for p in one.series[0].points] == [("2024-Q1", 70.2)]
    assert "only one figure found, so there is no series" in format_trend(one)
    assert "70.2 billion yuan [1]" in format_trend(one)
    none = find_trend(lexical, "How has Kelbrook's foreign trade changed since 2025?")
    assert none.series == [] and none.sources == []
    assert "no figure found" in format_trend(none)


def test_the_past_n_years_count_back_from_today(lexical: LexicalIndex) -> None:
    asked = "How has Kelbrook's foreign trade changed over the past 2 years?"
    recent = find_trend(lexical, asked, today=date(2025, 3, 1))  # 2023 to now
    assert points(recent, "quarter") == points(find_trend(lexical, "Kelbrook trade"), "quarter")
    assert recent.notes[0] == "“over the past 2 years” read as 2023 to now"
    later = find_trend(lexical, asked, today=date(2030, 1, 1))  # 2028 to now: none
    assert later.series == [] and "no figure found" in format_trend(later)
    chinese = find_trend(lexical, "青屿近三年外贸进出口走势", today=date(2026, 12, 8))
    assert chinese.notes[0] == "“近三年” read as 2023 to now"
    assert strip_trend_words("青屿近三年外贸进出口走势") == "青屿 外贸进出口"


def test_json_has_the_documented_shape(lexical: LexicalIndex) -> None:
    data = trend_json(find_trend(lexical, "Kelbrook foreign trade"))
    assert set(data) == {"topic", "series", "notes"}
    series = data["series"][0]
    assert set(series) == {"entity", "measure", "unit", "points"}
    assert series["unit"] == "billion yuan"
    point = series["points"][1]
    assert set(point) == {"period", "value", "citation"}
    assert (point["period"], point["value"]) == ("2024-Q2", 119.6)
    assert set(point["citation"]) == {"path", "title", "date", "quote"}
    assert point["citation"]["date"] == "2024-10-21"
    json.dumps(data)  # serialisable as is


def test_topic_without_entity_is_one_clear_error() -> None:
    with pytest.raises(TopicError, match="name the city or company"):
        topic_parts("how has trade changed?")


# --- the rules, one release at a time -------------------------------------------------------


def hit(text: str, title: str = "Kelbrook trade note", date: str = "2024-10-21") -> Hit:
    chunk = IndexedChunk("c1", "d1", text, "note.md", title, 0, 0, len(text), date=date)
    return Hit(chunk, 0.0)


def read(topic: str, text: str, **kw: str) -> list[Statement]:
    entity, measure, _, _ = topic_parts(topic)
    return statements(hit(text, **kw), entity, measure)


def test_another_citys_clause_never_enters() -> None:
    text = (
        "Lindmark's foreign trade reached 64.5 billion yuan in Q2 2024, behind Kelbrook. "
        "In Lindmark, foreign trade rose to 66.0 billion yuan in the third quarter."
    )
    assert read("Kelbrook foreign trade", text) == []
    theirs = read("Lindmark foreign trade", text, title="Lindmark note")
    assert [s.figure for s in theirs] == ["64.5 billion", "66.0 billion"]


def test_a_name_is_written_not_only_its_terms() -> None:
    # "3M"'s terms are "3" and "m": a title "(copy 3)" does not name it.
    text = "Revenue was 32.8 billion US dollars in 2023."
    assert read("How has 3M's revenue changed?", text, title="Annual report (copy 3)") == []
    [s] = read("How has 3M's revenue changed?", text, title="3M annual report 2023")
    assert (s.figure, s.unit.label(), s.period.year) == ("32.8 billion", "billion US dollars", 2023)


def test_one_release_stating_two_values_revises_nothing() -> None:
    text = (
        "Kelbrook's foreign trade in 2023 tops 400 billion yuan. "
        "Kelbrook's foreign trade came to 402.7 billion yuan in 2023. "
        "Kelbrook's GDP per person reached 98,000 yuan in 2023."
    )
    entity, measure, _, _ = topic_parts("Kelbrook foreign trade")
    older = hit("Kelbrook's foreign trade came to 401.9 billion yuan in 2023.", date="2024-01-20")
    found = statements(hit(text), entity, measure) + statements(older, entity, measure)
    trend = build_trend("Kelbrook foreign trade", entity, measure, found)
    [point] = trend.series[0].points
    assert (point.label, point.value) == ("2023", 402.7)  # the precise figure, not "tops 400"
    assert [float(s.amount) / 1e9 for s in point.earlier] == [401.9]  # an older release
    assert any("also states 400 billion yuan" in n for n in trend.notes)
    gdp = topic_parts("Kelbrook GDP")
    assert statements(hit(text), gdp[0], gdp[1]) == []  # GDP per person is another measure


def test_the_amount_is_the_one_after_its_own_measure() -> None:
    text = (
        "In Q3 2024 exports were 70.2 billion yuan while foreign trade came to 121.7 billion yuan."
    )
    [s] = read("Kelbrook foreign trade", text)
    assert s.figure == "121.7 billion" and s.unit.label() == "billion yuan"


def test_period_without_year_takes_the_release_year_unless_not_yet_ended() -> None:
    q4_text = "Foreign trade was 120.3 billion yuan in the fourth quarter."
    [q4] = read("Kelbrook foreign trade", q4_text, date="2025-01-20")
    assert (q4.period.year, q4.period.first, q4.period.last) == (2024, 10, 12)
    [q3] = read(
        "Kelbrook foreign trade", "Foreign trade was 121.7 billion yuan in the third quarter."
    )
    assert q3.period.year == 2024


def test_a_decimal_amount_is_not_read_as_a_year() -> None:
    [s] = read("青屿港集装箱吞吐量", "前三季度，青屿港完成集装箱吞吐量1978.2万标准箱。")
    assert (s.period.first, s.period.last, float(s.amount)) == (1, 9, 19782000.0)


def test_growth_rates_and_bare_numbers_are_not_amounts() -> None:
    assert read("青屿外贸进出口", "1-7月，青屿市外贸进出口同比增长5.3%。", title="青屿市外贸") == []
    assert (
        read("Kelbrook foreign trade", "Foreign trade grew 6.1% in Q1 2024 across 1,200 firms.")
        == []
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("How has Qingdao's foreign trade changed since 2019?", True),
        ("青岛进出口总额走势", True),
        ("青岛外贸有什么变化？", True),
        ("Qingdao foreign trade since 2019", True),
        ("How did Kelbrook's exports develop over the past three years?", True),
        ("What was Qingdao's Jan–Jul trade total?", False),
        ("Which policies were announced since 2019?", False),
        ("青岛1-7月进出口总额是多少？", False),
    ],
)
def test_trend_shaped_questions(text: str, expected: bool) -> None:
    assert is_trend_question(text) is expected


def test_trend_words_leave_the_topic() -> None:
    assert strip_trend_words("How has Qingdao's foreign trade changed since 2019?") == (
        "Qingdao's foreign trade"
    )
    assert strip_trend_words("青岛进出口总额走势") == "青岛进出口总额"


# --- the command line -----------------------------------------------------------------------


def run_cli(args: list[str], settings: Settings) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DATA_DIR": str(settings.data_dir),
           "MODEL_DIR": str(settings.model_dir)}  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args], env=env, capture_output=True, text=True,
        timeout=300, check=False,
    )  # fmt: skip


def test_cli_trend_json_png_and_ask_routing(trend_settings: Settings, tmp_path: Path) -> None:
    png = tmp_path / "chart.png"
    out = run_cli(["trend", "青屿外贸进出口", "--json", "--png", str(png)], trend_settings)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert [p["value"] for p in data["series"][0]["points"]] == [856.3, 936.0, 943.4]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    asked = run_cli(["ask", "How has Kelbrook's foreign trade changed?"], trend_settings)
    assert asked.returncode == 0, asked.stderr
    assert "2024-Q2" in asked.stdout and "revised (earlier 118.9" in asked.stdout
    bad = run_cli(["trend", "how has trade changed"], trend_settings)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines()[-1].startswith("Error: name the city or company")


@pytest.mark.parametrize(
    ("period", "cumulative", "label"),
    [
        (Period(2024, 1, 12), False, "2024"),
        (Period(2024, 4, 6), False, "2024-Q2"),
        (Period(2024, 7, 12), False, "2024-H2"),
        (Period(2024, 3, 3), False, "2024-03"),
        (Period(2024, 1, 7), False, "2024-01..2024-07"),
        (Period(2024, 1, 3), True, "2024-01..2024-03"),  # Q1 in a year-to-date series
        (Period(2024, 1, 6), False, "2024-H1"),
    ],
)
def test_period_labels(period: Period, cumulative: bool, label: str) -> None:
    assert period_label(period, cumulative=cumulative) == label


@pytest.mark.parametrize(
    ("text", "unit"),
    [
        ("Exports reached US$16.6 billion.", "billion US dollars"),
        ("Exports reached 16.6 billion US dollars.", "billion US dollars"),
        ("Trade reached RMB 341.81 billion.", "billion yuan"),
        ("The port handled 12.5 million TEU.", "million TEU"),
        ("完成集装箱吞吐量1,520.6万标准箱。", "万标准箱"),
        ("出口总值248.6亿美元。", "亿美元"),
        ("The port handled 3.2 million tonnes of grain.", "million tonnes"),
    ],
)
def test_units_after_and_before_the_amount(text: str, unit: str) -> None:
    [(_, _, found, _)] = amounts(text)
    assert found.label() == unit
