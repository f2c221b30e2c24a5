"""Format parsing (ingest/loaders.py) on small fixtures, generated files and real filings."""

from __future__ import annotations

import io
from datetime import datetime
from pathlib import Path

import docx
import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
import pytest
from reportlab.pdfgen import canvas

from ingest.loaders import SUPPORTED_SUFFIXES, normalize_text, parse_document
from ingest.types import Document

DOCS = Path(__file__).parent / "data" / "docs"


def _parse(path: Path) -> Document:
    return parse_document(path, path.read_bytes(), "test-id")


def _assert_spans_consistent(doc: Document, page_count: int) -> None:
    assert [s.page for s in doc.pages] == list(range(1, page_count + 1))
    previous_end = 0
    for span in doc.pages:
        assert previous_end <= span.start <= span.end <= len(doc.text)
        if span.start != span.end:  # non-empty pages are separated by one blank line
            gap = doc.text[previous_end : span.start]
            assert gap in ("", "\n\n")
            previous_end = span.end
    assert previous_end == len(doc.text)


def test_supported_suffixes() -> None:
    assert {".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx"} == SUPPORTED_SUFFIXES


def test_normalize_text() -> None:
    raw = "\ufeffCafe\u0301 line  \r\nnext\t \rthird\x00\x07\n\n\n\n\nlast\u00a0word  \n"
    assert normalize_text(raw) == "Café line\nnext\nthird\n\nlast word"


def test_html_main_text_and_metadata() -> None:
    doc = _parse(DOCS / "harbour-logistics-2021-03-03.html")
    assert doc.format == "html"
    assert doc.title == "Harbour City opens a rail-sea logistics corridor"  # og:title
    assert doc.date == "2021-03-03"  # article:published_time
    assert doc.url == "https://news.example.org/articles/harbour-corridor"  # canonical
    assert doc.publisher == "Example Wire"
    assert doc.place == "HARBOUR CITY"
    # Paragraphs are separated by a blank line; HTML line wrapping and runs of spaces are not.
    # The dateline ("HARBOUR CITY, March 3, 2021 /Example Wire/ --") is metadata, not text.
    assert (
        "\n\nThe port authority of the fictional "
        "Harbour City opened a combined rail and sea corridor on Wednesday.\n\n" in doc.text
    )
    assert "/Example Wire/" not in doc.text
    assert "four inland depots, officials said.\nFreight volume" in doc.text  # <br>
    assert "North 210 km" in doc.text
    dropped_parts = [
        *("do not index me", "font-family", "Example Wire home", "Politics", "unrelated story"),
        *("Search", "Privacy policy", "Enable JavaScript", "Jane Doe", "email us here"),
        *("viewed online", "All Rights Reserved"),
    ]
    for dropped in dropped_parts:
        assert dropped not in doc.text, dropped
    assert doc.removed_boilerplate > 0


def test_html_blocks_lines_lists_and_tables_keep_their_breaks(tmp_path: Path) -> None:
    page = tmp_path / "case.html"
    page.write_text(
        "<html><head><title>Port volumes rise</title></head><body><nav>Home | News</nav>"
        "<article><h1>Port volumes rise</h1><p>First line<br>second line<br/>third</p>"
        "<div>Outer <div>inner <span>span</span> text</div> tail</div>"
        "<ul><li>one</li><li>two <b>bold</b></li></ul>"
        "<table><tr><th>City</th><th>Trade</th></tr><tr><td>Qingdao</td><td>341.81</td></tr>"
        "</table><p>Last <i>para</i>.</p><script>var x=1;</script>"
        "<blockquote>Quoted<br>text</blockquote></article></body></html>"
    )
    doc = parse_document(page, page.read_bytes(), "d", display_path=page.name)
    assert doc.text == (
        "Port volumes rise\n\nFirst line\nsecond line\nthird\n\nOuter\n\ninner span text"
        "\n\ntail\n\none\n\ntwo bold\n\nCity Trade\n\nQingdao 341.81\n\nLast para."
        "\n\nQuoted\ntext"
    )


def test_html_comment_tails_deep_nesting_and_declared_charsets_are_read(tmp_path: Path) -> None:
    def text(name: str, data: bytes) -> str:
        return parse_document(tmp_path / name, data, "d", display_path=name).text

    assert text("c.html", b"<p>Total 5.6 bn<!-- note --> crowns, up 3%.</p>") == (
        "Total 5.6 bn crowns, up 3%."  # the words after a comment are kept
    )
    deep = "<div>" * 2000 + "Exports rose 4.1 percent in May." + "</div>" * 2000
    assert text("deep.html", deep.encode()) == "Exports rose 4.1 percent in May."
    gbk = '<meta charset="gbk"><p>青岛市前7个月进出口总额3418.1亿元。</p>'.encode("gbk")
    assert text("gbk.html", gbk) == "青岛市前7个月进出口总额3418.1亿元。"
    declared = b'<?xml version="1.0" encoding="utf-8"?><html><body><p>Caf\xc3\xa9 sales.</p>'
    assert text("x.html", declared) == "Caf\u00e9 sales."


def test_markdown_front_matter() -> None:
    doc = _parse(DOCS / "valley-water-plan.md")
    assert (doc.title, doc.date, doc.url, doc.publisher, doc.place) == (
        "Valley water plan adopted",
        "2022-05-17",
        "https://example.org/valley-water-plan",
        "Example Council",
        "GREEN VALLEY",
    )
    assert doc.format == "md"
    assert "---" not in doc.text
    assert "publisher:" not in doc.text
    assert doc.text.startswith("Valley water plan adopted\n\nThe council")
    assert "\n\nBudget\n\nThe plan allocates 48 million euros" in doc.text  # '#'s stripped


def test_markdown_without_front_matter(tmp_path: Path) -> None:
    path = tmp_path / "notes.markdown"
    path.write_text("Intro line\n\n---\n\n# Port Notes\n\nText: here.\n\n---\n", encoding="utf-8")
    doc = _parse(path)
    assert doc.title == "Port Notes"  # first level-1 heading
    assert doc.text.startswith("Intro line\n\n---\n\nPort Notes")


def test_markdown_leading_rule_is_not_front_matter(tmp_path: Path) -> None:
    path = tmp_path / "rule.md"
    path.write_text("---\nJust a paragraph of prose.\n---\nMore.\n", encoding="utf-8")
    doc = _parse(path)
    assert "Just a paragraph of prose." in doc.text


def test_txt_wire_release() -> None:
    doc = _parse(DOCS / "wire-release-20210505.txt")
    assert doc.title == "Acme Robotics Opens Assembly Plant in Riverside"
    assert (doc.date, doc.place, doc.publisher) == ("2021-05-05", "NEW YORK", "PR Newswire")
    assert doc.url is not None
    assert doc.url.startswith("https://www.prnewswire.com/news-releases/")
    assert doc.text.endswith("The company expects the plant to produce 12,000 robots a year.")
    assert "\n\n\n" not in doc.text
    assert " \n" not in doc.text
    for dropped in ["John Roe", "555-0147", "press@", "SOURCE Acme", "View original content"]:
        assert dropped not in doc.text


def test_txt_title_and_date_fall_back_to_file_name(tmp_path: Path) -> None:
    path = tmp_path / "harbour_update_20210704.txt"
    path.write_text("x" * 30 + ". " + "A long first line without a title. " * 8, encoding="utf-8")
    doc = parse_document(path, path.read_bytes(), "id1", display_path="docs/h.txt")
    assert doc.title == "Harbour update"
    assert doc.date == "2021-07-04"
    assert doc.path == "docs/h.txt"
    assert doc.pages == ()


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-32"])
def test_txt_with_bom(tmp_path: Path, encoding: str) -> None:
    path = tmp_path / "bom.txt"
    path.write_bytes("Port news\n\nCafé prices rose 5%.".encode(encoding))
    doc = _parse(path)
    assert doc.text == "Port news\n\nCafé prices rose 5%."


def test_docx_paragraphs_tables_and_core_properties(tmp_path: Path) -> None:
    document = docx.Document()
    document.core_properties.title = "Harbour budget briefing"
    document.core_properties.created = datetime(2021, 6, 1, 9, 30)
    document.add_heading("Budget at a glance", level=1)
    document.add_paragraph("The harbour budget rises to 12 million euros.")
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "Item", "Amount"
    table.cell(1, 0).text, table.cell(1, 1).text = "Dredging", "4 million"
    document.add_paragraph("Work starts in autumn.")
    path = tmp_path / "budget.docx"
    document.save(str(path))

    doc = _parse(path)
    assert doc.format == "docx"
    assert doc.title == "Harbour budget briefing"
    assert doc.date == "2021-06-01"  # core "created": no better date anywhere
    assert doc.text == (
        "Budget at a glance\n\nThe harbour budget rises to 12 million euros.\n\n"
        "Item | Amount\nDredging | 4 million\n\nWork starts in autumn."
    )


def _make_pdf(pages: list[list[str]], title: str | None = None) -> bytes:
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer)
    if title is not None:
        pdf.setTitle(title)
    for lines in pages:
        for i, line in enumerate(lines):
            pdf.drawString(72, 720 - 16 * i, line)
        pdf.showPage()
    pdf.save()
    return buffer.getvalue()


def test_pdf_page_spans_survive_boilerplate_removal(tmp_path: Path) -> None:
    data = _make_pdf(
        [
            ["Harbour report", "Revenue rose 4% in 2021."],
            [],  # a blank page keeps its number, with an empty span
            ["Exports rose 7%.", "+1 555-010-0199", "Costs fell."],
            ["Outlook is stable.", "© 2021 Harbour Group. All Rights Reserved."],
        ],
        title="Microsoft Word - harbour.docx",  # junk: the file name wins
    )
    path = tmp_path / "harbour-q4-review-2022-01-31.pdf"
    path.write_bytes(data)
    doc = _parse(path)

    assert doc.format == "pdf"
    assert doc.title == "Harbour q4 review"
    _assert_spans_consistent(doc, 4)
    texts = [doc.text[s.start : s.end] for s in doc.pages]
    assert texts == [
        "Harbour report\nRevenue rose 4% in 2021.",
        "",
        "Exports rose 7%.\nCosts fell.",
        "Outlook is stable.",
    ]
    assert doc.date == "2022-01-31"  # file name beats the PDF's creation date


def test_pdf_good_info_title_is_used(tmp_path: Path) -> None:
    path = tmp_path / "r.pdf"
    path.write_bytes(_make_pdf([["UNITED STATES", "Body text."]], title="Harbour Annual Report"))
    assert _parse(path).title == "Harbour Annual Report"


# --- real filings (third-party, read by path) -------------------------------------------


def _raw_page_lines(pdf_path: Path) -> list[list[str]]:
    """Each page's longer lines as PDFium extracts them, before any cleaning."""
    pdf = pdfium.PdfDocument(pdf_path)
    try:
        return [
            [
                line.strip()
                for line in normalize_text(pdf[i].get_textpage().get_text_range()).split("\n")
                if len(line.strip()) > 40
            ]
            for i in range(len(pdf))
        ]
    finally:
        pdf.close()


@pytest.mark.parametrize(
    ("name", "encrypted"),
    [("PEPSICO_2023_8K_dated-2023-05-05.pdf", False), ("BESTBUY_2024Q2_10Q.pdf", True)],
)
def test_financebench_pdf_pages(shared_dir: Path, name: str, encrypted: bool) -> None:
    path = shared_dir / "eval" / "financebench" / "pdfs" / name
    pdf = pdfium.PdfDocument(path)
    try:  # the file is what the test claims: encrypted with an empty password, or not
        assert (pdfium_c.FPDF_GetSecurityHandlerRevision(pdf) != -1) is encrypted
        page_count = len(pdf)
    finally:
        pdf.close()

    doc = _parse(path)
    assert doc.format == "pdf"
    _assert_spans_consistent(doc, page_count)
    for span, lines in zip(doc.pages, _raw_page_lines(path), strict=True):
        page_text = doc.text[span.start : span.end]
        assert lines, f"page {span.page} has text"
        assert all(line in page_text for line in lines), f"page {span.page}"


def test_financebench_8k_metadata(shared_dir: Path) -> None:
    path = shared_dir / "eval" / "financebench" / "pdfs" / "PEPSICO_2023_8K_dated-2023-05-05.pdf"
    doc = _parse(path)
    assert doc.title == "Form 8-K for Pepsico INC filed 05/05/2023"  # PDF info title
    # "Date of Report (Date of earliest event reported): May 3, 2023" near the top
    assert doc.date == "2023-05-03"
    assert "PepsiCo, Inc." in doc.text


EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "briefings"


@pytest.mark.parametrize("path", sorted(EXAMPLES.iterdir()), ids=lambda p: p.name)
def test_demo_briefings_parse_with_metadata(path: Path) -> None:
    doc = _parse(path)
    assert doc.date is not None
    assert doc.url is not None
    assert doc.title
    assert doc.title != path.stem
    assert len(doc.text.split()) < 300


def test_demo_qingdao_note_carries_the_trade_figure() -> None:
    doc = _parse(EXAMPLES / "qingdao-trade-2020-09-04.md")
    assert "341.81 billion yuan" in doc.text
    assert (doc.date, doc.url) == ("2020-09-04", "https://www.einpresswire.com/article/525516510")
