"""Press-release metadata and boilerplate removal (ingest/metadata.py), and the real release."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.loaders import parse_document
from ingest.metadata import (
    date_from_filename,
    find_dateline,
    find_source_url,
    humanize_stem,
    is_good_title,
    parse_date,
    press_metadata,
    strip_boilerplate,
    strip_dateline,
    title_from_text,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("September 4, 2020", "2020-09-04"),
        ("Sept. 4, 2020", "2020-09-04"),
        ("Sep 4 2020", "2020-09-04"),
        ("4 September 2020", "2020-09-04"),
        ("March 3rd, 2021", "2021-03-03"),
        ("2020-09-04T10:00:00+08:00", "2020-09-04"),
        ("2020/9/4", "2020-09-04"),
        ("D:20230505202435+00'00'", "2023-05-05"),
        ("2022年1月19日", "2022-01-19"),
        ("February 30, 2021", None),
        ("no date here", None),
        ("", None),
    ],
)
def test_parse_date(value: str, expected: str | None) -> None:
    assert parse_date(value) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("qingdao-dual-circulation-2020-09-04.txt", "2020-09-04"),
        ("AMCOR_2022_8K_dated-2022-07-01.pdf", "2022-07-01"),
        ("release_20200904.md", "2020-09-04"),
        ("report_2020_09_04.docx", "2020-09-04"),
        ("budget-2021.txt", None),
        ("order-12345678.txt", None),
    ],
)
def test_date_from_filename(name: str, expected: str | None) -> None:
    assert date_from_filename(name) == expected


@pytest.mark.parametrize(
    ("line", "place", "date", "publisher"),
    [
        (
            "QINGDAO, SHANDONG, CHINA, September 4, 2020 /EINPresswire.com/ -- Qingdao said",
            "QINGDAO, SHANDONG, CHINA",
            "2020-09-04",
            "EIN Presswire",
        ),
        (
            "NEW YORK, March 3, 2021 /PRNewswire/ -- Acme today",
            "NEW YORK",
            "2021-03-03",
            "PR Newswire",
        ),
        (
            "Qingdao, China, Sept. 4, 2020 /PRNewswire-Asia/ -- The city",
            "Qingdao, China",
            "2020-09-04",
            "PR Newswire",
        ),
        (
            "TORONTO, May 01, 2021 (GLOBE NEWSWIRE) -- Acme Corp.",
            "TORONTO",
            "2021-05-01",
            "GlobeNewswire",
        ),
        (
            "SAN FRANCISCO--(BUSINESS WIRE)--Acme Corp. today",
            "SAN FRANCISCO",
            None,
            "Business Wire",
        ),
        (
            "NEW YORK, NY / ACCESSWIRE / March 3, 2021 / Acme Corp.",
            "NEW YORK, NY",
            "2021-03-03",
            "ACCESSWIRE",
        ),
        ("BERLIN, June 2, 2022 -- The ministry said", "BERLIN", "2022-06-02", None),
    ],
)
def test_find_dateline(line: str, place: str, date: str | None, publisher: str | None) -> None:
    found = find_dateline("A headline\n\n" + line)
    assert found is not None
    assert (found.place, found.date, found.publisher) == (place, date, publisher)


def test_no_dateline_in_ordinary_prose() -> None:
    text = "On the evening of September 3, 2020, a news program broadcast a report.\n"
    assert find_dateline(text) is None
    # ...but the bare date near the top still dates the document.
    assert press_metadata(text).date == "2020-09-03"


@pytest.mark.parametrize(
    ("text", "url"),
    [
        (
            "This press release can be viewed online at: https://www.einpresswire.com/article/1",
            "https://www.einpresswire.com/article/1",
        ),
        (
            "View original content to download multimedia:https://www.prnewswire.com/x.html",
            "https://www.prnewswire.com/x.html",
        ),
        (
            "View source version on businesswire.com:\nhttps://www.businesswire.com/news/2.",
            "https://www.businesswire.com/news/2",
        ),
        ("Source: https://example.org/a?b=1", "https://example.org/a?b=1"),
        ("See https://example.org/elsewhere for more.", None),
    ],
)
def test_find_source_url(text: str, url: str | None) -> None:
    assert find_source_url("Body text.\n\n" + text) == url


def test_publisher_from_source_url_without_dateline() -> None:
    meta = press_metadata(
        "Title\n\nBody.\n\nThis press release can be viewed online at: "
        "https://www.einpresswire.com/article/9"
    )
    assert meta.publisher == "EIN Presswire"


@pytest.mark.parametrize(
    ("title", "good"),
    [
        ("Microsoft Word - draft_v3.docx", False),
        ("report.pdf", False),
        ("Untitled", False),
        ("Document1", False),
        ("", False),
        ("1234", False),
        ("Form 8-K for Pepsico INC filed 05/05/2023", True),
        ("Qingdao opens up", True),
    ],
)
def test_is_good_title(title: str, good: bool) -> None:
    assert is_good_title(title) is good


def test_title_from_text() -> None:
    assert title_from_text("\n\nCity Adopts Plan\n\nBody.") == "City Adopts Plan"
    assert title_from_text("BERLIN, June 2, 2022 -- The ministry said.") is None
    assert title_from_text("x" * 250) is None


def test_humanize_stem() -> None:
    assert humanize_stem("qingdao-dual-circulation-2020-09-04") == "Qingdao dual circulation"
    assert humanize_stem("AMCOR_2022_8K_dated-2022-07-01") == "AMCOR 2022 8K dated"
    assert humanize_stem("2020-09-04") == "2020-09-04"


def test_strip_boilerplate_removes_wire_tail_and_keeps_content() -> None:
    body = "Imports and exports totaled 341.81 billion yuan.\n\nThe city will open further."
    tail = (
        "Jane Doe\nExample Trading Inc\n+1 555-010-0199\nemail us here\n"
        "Visit us on social media:\nFacebook\nTwitter\n\n"
        "This press release can be viewed online at: https://www.einpresswire.com/article/1\n\n"
        "Distribution channels: Business & Economy, World & Regional\n\n"
        "EIN Presswire does not exercise editorial control over third-party content provided, "
        "uploaded, published, or distributed by users of EIN Presswire. We are a distributor, "
        "not a publisher, of 3rd party content.\n\n"
        "Legal Disclaimer:\n\n"
        "© 1995-2021 Newsmatics Inc. All Right Reserved."
    )
    cleaned, removed = strip_boilerplate(body + "\n\n" + tail)
    assert cleaned == body
    assert removed >= len(tail) - 20  # separators between removed paragraphs are not counted


def test_strip_boilerplate_keeps_long_paragraph_around_a_footer_line() -> None:
    # A PDF page is one long "paragraph": its copyright footer goes, the page stays.
    page = "\n".join(f"Line {i} of the quarterly results, revenue rose." for i in range(40))
    cleaned, removed = strip_boilerplate(page + "\n© 2023 Acme Corp. All Rights Reserved.")
    assert cleaned == page
    assert removed == len("© 2023 Acme Corp. All Rights Reserved.")


@pytest.mark.parametrize(
    "line",
    [
        "(c) Includes commercial paper.",  # a footnote marker, not a copyright sign
        "2023 2022 2021",  # a table header in a filing
        "(408) 536-6000",  # a filing's cover page
        "Our products reach customers through one distribution channel: retail.",
        "X",
    ],
)
def test_strip_boilerplate_leaves_filing_lines_alone(line: str) -> None:
    text = "Revenue rose.\n" + line + "\nMargins fell."
    assert strip_boilerplate(text) == (text, 0)


# --- the real release (third-party, read by path) --------------------------------------


@pytest.fixture(scope="module")
def release_path(shared_dir: Path) -> Path:
    return shared_dir / "corpus" / "qingdao-dual-circulation-2020-09-04.txt"


def test_real_release_metadata_and_cleaning(release_path: Path) -> None:
    raw = release_path.read_text(encoding="utf-8")
    doc = parse_document(release_path, release_path.read_bytes(), "qingdao", display_path="q.txt")

    assert doc.path == "q.txt"
    assert doc.format == "txt"
    assert doc.date == "2020-09-04"
    assert doc.url == "https://www.einpresswire.com/article/525516510"
    assert doc.publisher == "EIN Presswire"
    assert doc.place == "LOS ANGELES, CA, UNITED STATES"  # the release's own dateline
    assert doc.title.startswith("Wang Qingxian: Prop up the Dual Circulation")
    assert "Imports and exports in Qingdao totaled 341.81 billion yuan from January to July." in (
        doc.text
    )
    # Every line of the distributor tail is gone, and nothing else.
    tail_markers = [
        "email us here",
        "626-378-1851",
        "can be viewed online at",
        "priority is source transparency",
        "Editorial Guidelines",
        "IPD Group",
        "All Right Reserved",
    ]
    for marker in tail_markers:
        assert marker in raw
        assert marker not in doc.text
    assert doc.text.endswith("as requested by the general secretary.")
    assert doc.removed_boilerplate > 500
    # ... and the wire dateline is metadata (place, date, publisher above), out of the text.
    assert "/EINPresswire.com/" not in doc.text
    assert doc.text.split("\n\n")[1].startswith("On the evening of September 3, Xinwen Lianbo")
    body_paragraphs = [strip_dateline(p.strip())[0] for p in raw.split("\n\n") if p.strip()]
    assert all(p in doc.text for p in body_paragraphs[:-4])
