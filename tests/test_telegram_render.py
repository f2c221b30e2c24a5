"""Rendering answers as Telegram HTML, checked against the fake's strict Telegram HTML parser."""

from __future__ import annotations

import random

import pytest

from bot.extractive import extractive_answer
from bot.formatting import format_answer, source_line
from bot.telegram.html_split import TELEGRAM_LIMIT, split_html, utf16_len, visible_length
from bot.telegram.render import render_answer, render_passages
from bot.types import Answer, Citation, Hit
from tests.fake_telegram_html import EntityParseError, parse_html
from tests.hits import make_hit

HOSTILE = 'Tom & Jerry <b>bold</b> <script>alert("x")</script> a < b > c <i unclosed &amp; done'


def hit(**overrides: object) -> Hit:
    values: dict[str, object] = {
        "chunk_id": "c1",
        "doc_id": "d1",
        "text": "Intro sentence. Imports and exports totaled 341.81 billion yuan. Outro.",
        "score": 1.0,
        "title": "Qingdao trade",
        "path": "briefings/qingdao.txt",
        "date": "2020-09-04",
        "url": "https://example.org/article/1",
        "page": None,
    }
    values.update(overrides)
    return make_hit(**values)  # type: ignore[arg-type]


def test_answer_has_markers_sources_and_quote() -> None:
    quote = "Imports and exports totaled 341.81 billion yuan."
    answer = Answer(text=f"{quote} [1]", citations=[Citation(1, hit(page=3), quote)])
    html = render_answer(answer)
    shown = parse_html(html)
    assert "341.81 billion yuan. [1]" in shown
    assert "[1] Qingdao trade — 2020-09-04 — example.org, p. 3" in shown
    assert f"<blockquote><i>{quote}</i></blockquote>" in html
    assert '<a href="https://example.org/article/1">' in html


def test_source_without_link_names_the_file_and_unsafe_links_are_not_clickable() -> None:
    assert "<code>qingdao.txt</code>" in source_line(hit(url=None), 2, html=True)
    line = source_line(hit(url="javascript:alert(1)"), 1, html=True)
    assert "<a " not in line
    assert "javascript:alert(1)" in parse_html(line)


def test_document_and_user_text_is_escaped_everywhere() -> None:
    bad_hit = hit(title=HOSTILE, text=f"Before. {HOSTILE} After.", url=None, path=f"x/{HOSTILE}")
    answer = Answer(text=f"{HOSTILE} [1]", citations=[Citation(1, bad_hit, HOSTILE)])
    for html in (render_answer(answer), render_passages(answer.citations)):
        shown = parse_html(html)  # the strict parser raises on any unescaped markup
        assert HOSTILE in shown
    refusal = Answer(text=HOSTILE, refused=True, nearest=[bad_hit])
    assert HOSTILE in parse_html(render_answer(refusal))


def test_strict_parser_rejects_what_telegram_rejects() -> None:
    for bad in ("<script>x</script>", "<b>open", "a < b", "Tom & Jerry", "<b><i>x</b></i>", "</b>"):
        with pytest.raises(EntityParseError):
            parse_html(bad)
    assert parse_html('<a href="https://x.org">x</a> &lt;&amp;&gt; &#128512;') == "x <&> 😀"


def test_refusal_says_so_once_and_lists_nearest_documents() -> None:
    # The answerer's real refusal (no passage carries the answer), not a copy of its wording.
    other = hit(chunk_id="c2", doc_id="d2", title="B")
    refusal = extractive_answer("What is the GDP of Mars?", [hit(), other])
    assert refusal.refused
    html = render_answer(refusal)
    shown = parse_html(html)
    refusal_line = refusal.text.strip()
    assert shown.startswith(refusal_line)
    assert shown.count(refusal_line) == 1
    # No second refusal sentence before the nearest documents (the doubled line, issue 8).
    before_nearest = shown.split("Nearest documents")[0]
    assert before_nearest.count("could not find") + before_nearest.count("not in the") <= 1
    assert "[1] Qingdao trade" in shown
    assert "[2] B" in shown


def test_near_miss_refusal_shows_its_sources_not_a_dangling_marker() -> None:
    quote = "Imports and exports totaled 341.81 billion yuan."
    refusal = Answer(
        text=f"Not stated for Q2 2020; the documents give Jan–Jul 2020: {quote} [1]",
        citations=[Citation(1, hit(), quote)],
        refused=True,
        nearest=[hit(title="B")],
        notes=["The documents give the trade total for Jan–Jul 2020, not Q2 2020."],
    )
    shown = parse_html(render_answer(refusal))
    assert shown.startswith("Not stated for Q2 2020")
    assert "Sources\n[1] Qingdao trade" in shown
    assert "Nearest documents" not in shown
    plain = format_answer(refusal)
    assert "Sources:\n[1] Qingdao trade" in plain
    assert "(note: The documents give the trade total for Jan–Jul 2020, not Q2 2020.)" in plain


def test_one_source_line_renders_plain_and_html() -> None:
    source = hit(title="Tom & Jerry <Trade>", page=3)
    plain = source_line(source, 1)
    assert plain == ("[1] Tom & Jerry <Trade> — 2020-09-04 — https://example.org/article/1, p. 3")
    assert parse_html(source_line(source, 1, html=True)) == (
        "[1] Tom & Jerry <Trade> — 2020-09-04 — example.org, p. 3"
    )
    unlinked = hit(url=None)
    assert source_line(unlinked) == "Qingdao trade — 2020-09-04 — briefings/qingdao.txt"
    answer = Answer(text="x [1]", citations=[Citation(1, source, "Intro sentence.")])
    assert plain in format_answer(answer)


def test_passages_bold_the_quote_inside_the_full_passage() -> None:
    quote = "Imports and exports totaled 341.81 billion yuan."
    html = render_passages([Citation(1, hit(), quote)])
    assert f"<b>{quote}</b>" in html
    assert "Intro sentence." in parse_html(html)


def _visible_words(html: str) -> list[str]:
    return parse_html(html).split()


def test_ten_thousand_character_answer_splits_on_paragraphs_into_valid_parts() -> None:
    paragraph = "Trade rose & fell <again>. " * 20  # ~540 chars, escaped by render
    quote = "Imports and exports totaled 341.81 billion yuan."
    answer = Answer(
        text="\n\n".join(f"{i}: {paragraph.strip()}" for i in range(19)) + " [1]",
        citations=[Citation(1, hit(), quote)],
    )
    html = render_answer(answer)
    assert visible_length(html) > 10_000
    parts = split_html(html)
    assert len(parts) == 3
    for part in parts:
        shown = parse_html(part)
        assert 0 < utf16_len(shown) <= TELEGRAM_LIMIT
    # Nothing lost, nothing duplicated, and cuts fall between paragraphs.
    assert [w for p in parts for w in _visible_words(p)] == _visible_words(html)
    for part in parts[:-1]:
        assert parse_html(part).rstrip().endswith("<again>.")


def test_split_inside_a_tag_closes_and_reopens_it() -> None:
    html = '<blockquote expandable><a href="https://x.org/?a=1&amp;b=2">' + "word " * 2000
    html += "</a></blockquote>"
    parts = split_html(html, budget=3000)
    assert len(parts) == 4
    for part in parts:
        assert part.startswith('<blockquote expandable><a href="https://x.org/?a=1&amp;b=2">')
        assert part.endswith("</a></blockquote>")
        assert utf16_len(parse_html(part)) <= 3000


def test_split_never_cuts_an_entity_and_counts_utf16() -> None:
    text = "&amp;" * 5000  # 5,000 visible characters, no boundaries: hard cuts
    parts = split_html(text, budget=4096)
    assert [utf16_len(parse_html(p)) for p in parts] == [4096, 904]
    emoji = "😀" * 3000  # two UTF-16 units each
    parts = split_html(emoji, budget=4096)
    assert [utf16_len(p) for p in parts] == [4096, 1904]


def test_split_prefers_sentence_then_word_boundaries() -> None:
    sentence = "This is one sentence of the answer. "
    parts = split_html(sentence * 200, budget=1000)
    assert all(parse_html(p).endswith("answer.") for p in parts)
    words = split_html("word " * 1000, budget=999)
    assert all(p.endswith("word") for p in words)


def test_short_text_is_one_part_unchanged() -> None:
    assert split_html("<b>hi</b> &amp; bye") == ["<b>hi</b> &amp; bye"]


def test_random_documents_always_split_into_valid_parts() -> None:
    rng = random.Random(7)
    pieces = ["word ", "&amp;", "&lt;", "😀", "中文", ". ", "\n", "\n\n", "x" * 50]
    for _ in range(40):
        body = []
        for _ in range(rng.randint(50, 900)):
            if rng.random() < 0.05:
                tag = rng.choice(["b", "i", "blockquote"])
                body.append(f"<{tag}>{''.join(rng.choices(pieces, k=rng.randint(1, 30)))}</{tag}>")
            else:
                body.append(rng.choice(pieces))
        html = "".join(body)
        budget = rng.choice([200, 1000, 4096])
        parts = split_html(html, budget=budget)
        for part in parts:
            assert 0 < utf16_len(parse_html(part).strip()) <= budget
        assert "".join("".join(parse_html(p).split()) for p in parts) == "".join(
            parse_html(html).split()
        )
