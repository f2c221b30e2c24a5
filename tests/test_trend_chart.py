"""The trend chart: a valid PNG of the expected size, the plotted data equal to the series
(read back from the figure, not compared as pixels), and every label's glyphs in the font."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import numpy as np
import pytest
from fontTools.ttLib import TTCollection, TTFont  # type: ignore[import-untyped]
from matplotlib import font_manager
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure
from matplotlib.text import Annotation, Text

from bot.chart import DPI, FONT_FACE, FONT_FAMILY, HEIGHT_IN, WIDTH_IN, draw_chart, font_path
from bot.chart import render_png as png_of
from bot.trend import Statement, Trend, build_trend, statements, topic_parts
from bot.types import Hit
from ingest.types import IndexedChunk

KELBROOK = [
    ("2024-04-18", "Kelbrook's foreign trade reached 112.4 billion yuan in Q1 2024."),
    ("2024-07-19", "In Q2 2024, Kelbrook's foreign trade totalled 118.9 billion yuan."),
    ("2024-10-21", "Kelbrook's foreign trade was 121.7 billion yuan in Q3 2024."),
    ("2024-10-21", "The second-quarter foreign trade figure was revised to 119.6 billion yuan."),
]
YEAR_TO_DATE = [
    (
        "2024-08-16",
        "From January to July 2024, Kelbrook's foreign trade came to 271.9 billion yuan.",
    ),
    ("2024-06-14", "In January–May 2024, Kelbrook's foreign trade came to 193.6 billion yuan."),
]
QINGYU = [
    ("2024-04-20", "一季度，青屿市外贸进出口总值856.3亿元，同比增长4.2%。"),
    ("2024-07-18", "二季度，青屿市外贸进出口总值933.2亿元。"),
    ("2024-10-22", "三季度，青屿市外贸进出口总值943.4亿元。二季度进出口总值修正为936.0亿元。"),
]


def trend_of(topic: str, releases: list[tuple[str, str]]) -> Trend:
    entity, measure, _, _ = topic_parts(topic)
    found: list[Statement] = []
    for i, (date, text) in enumerate(releases):
        title = f"{entity.text} trade {date}"
        chunk = IndexedChunk(f"c{i}", f"d{i}", text, f"r{i}.md", title, 0, 0, len(text), date=date)
        found += statements(Hit(chunk, 0.0), entity, measure)
    return build_trend(topic, entity, measure, found)


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def texts(fig: Figure) -> Iterator[str]:
    fig.canvas.draw()  # tick labels are made when drawn
    for artist in fig.findobj(Text):
        if isinstance(artist, Text) and artist.get_visible() and artist.get_text():
            yield artist.get_text()


def test_png_is_valid_and_phone_sized() -> None:
    data = png_of(trend_of("Kelbrook foreign trade", KELBROOK))
    assert png_size(data) == (round(WIDTH_IN * DPI), round(HEIGHT_IN * DPI)) == (1000, 600)


def test_plotted_data_is_the_series() -> None:
    trend = trend_of("Kelbrook foreign trade", KELBROOK)
    fig = draw_chart(trend)
    quarterly = fig.axes[0]
    [line] = [ln for ln in quarterly.lines if ln.get_gid() == "series"]
    assert list(line.get_ydata()) == [112.4, 119.6, 121.7]  # type: ignore[arg-type]
    fig.canvas.draw()
    assert [t.get_text() for t in quarterly.get_xticklabels()] == ["2024-Q1", "2024-Q2", "2024-Q3"]
    assert quarterly.get_ylabel() == "billion yuan"
    assert fig.get_suptitle() == "Kelbrook foreign trade"
    # Each point carries its source number, the one its source line shows.
    numbers = [a.get_text() for a in quarterly.texts if isinstance(a, Annotation)]
    assert numbers == [str(trend.number(p.statement)) for p in trend.series[0].points]
    assert trend.sources[int(numbers[1]) - 1].quote.endswith("revised to 119.6 billion yuan.")
    # The revised point is ringed, and the first release's value drawn beside it.
    [ring] = [c for c in quarterly.collections if c.get_gid() == "revised"]
    [cross] = [c for c in quarterly.collections if c.get_gid() == "earlier"]
    assert isinstance(ring, PathCollection) and isinstance(cross, PathCollection)
    assert np.asarray(ring.get_offsets()).tolist() == [[1.0, 119.6]]
    assert np.asarray(cross.get_offsets()).tolist() == [[1.0, 118.9]]
    assert len(fig.axes) == 1  # quarters only: one panel


def test_cumulative_spans_get_their_own_panel_q1_among_them() -> None:
    fig = draw_chart(trend_of("Kelbrook foreign trade", KELBROOK + YEAR_TO_DATE))
    assert len(fig.axes) == 2
    ytd = fig.axes[1]
    fig.canvas.draw()
    assert [t.get_text() for t in ytd.get_xticklabels()] == [
        "2024-01..2024-03",
        "2024-01..2024-05",
        "2024-01..2024-07",
    ]
    [line] = [ln for ln in ytd.lines if ln.get_gid() == "series"]
    assert list(line.get_ydata()) == [112.4, 193.6, 271.9]  # type: ignore[arg-type]


def _cmap() -> set[int]:
    collection = TTCollection(str(font_path()))
    face: TTFont = collection.fonts[FONT_FACE]
    assert FONT_FAMILY in face["name"].getDebugName(4)
    return set(face.getBestCmap())


def test_every_label_glyph_is_in_the_font_chinese_and_english() -> None:
    cmap = _cmap()
    for topic, releases in (("青屿外贸进出口走势", QINGYU), ("Kelbrook foreign trade", KELBROOK)):
        fig = draw_chart(trend_of(topic, releases))
        drawn = "".join(texts(fig))
        assert drawn.strip()
        missing = {ch for ch in drawn if ord(ch) not in cmap and not ch.isspace()}
        assert not missing, missing
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # matplotlib warns "Glyph … missing from font(s)"
            png_of(trend_of(topic, releases))
    assert "季度" in "".join(texts(draw_chart(trend_of("青屿外贸进出口走势", QINGYU))))


def test_the_glyph_check_can_fail_with_a_latin_only_font() -> None:
    # The check above is not vacuous: matplotlib's default font has no Chinese glyphs.
    dejavu = TTFont(font_manager.findfont("DejaVu Sans"))
    cmap = set(dejavu.getBestCmap())
    assert ord("青") not in cmap and ord("Q") in cmap


@pytest.mark.parametrize("topic", ["Kelbrook exports", "Kelbrook GDP"])
def test_no_series_draws_without_error(topic: str) -> None:
    trend = trend_of(topic, KELBROOK)
    assert not trend.charted
    assert png_size(png_of(trend)) == (1000, 600)
