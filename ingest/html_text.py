"""An HTML page's readable text and metadata (``ingest.loaders`` reads the other formats).

The page is decoded as bs4 decodes HTML (a BOM, the declared charset, then detection) and
parsed with lxml's HTML parser: a C tree, so a 30 MB page takes seconds and a few hundred
MB, where bs4's tree of Python objects took 1.1 GB and its sibling lookups made block
marking quadratic (``bench/parse_bench.py``). Navigation, scripts, forms and the head are
dropped; the text is the page's <article>, else its <main>, else its body, with a blank line
between blocks, a line break for each <br>, and HTML's other whitespace made one space.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import lxml.html
from bs4.dammit import UnicodeDammit
from lxml import etree
from lxml.html import HtmlElement

from ingest.metadata import parse_date


@dataclass(frozen=True, slots=True)
class HtmlPage:
    text: str
    titles: list[str | None]  # og:title, <title>, the first <h1>: best first
    date: str | None  # a stated publication date (meta, <time datetime>)
    url: str | None  # canonical link or og:url
    publisher: str | None  # og:site_name


_DROP_TAGS = [
    "script", "style", "nav", "header", "footer", "aside", "form", "noscript",
    "template", "svg", "iframe", "button", "head",
]  # fmt: skip
_BLOCK_TAGS = [
    "p", "div", "section", "article", "main", "h1", "h2", "h3", "h4", "h5", "h6", "li",
    "ul", "ol", "table", "tr", "blockquote", "pre", "dl", "dt", "dd", "figure",
    "figcaption", "address", "hr", "caption",
]  # fmt: skip
_DATE_META = (
    "article:published_time", "og:published_time", "datepublished", "date", "dc.date",
    "dc.date.issued", "dcterms.date", "dcterms.issued", "dcterms.created", "pubdate",
    "publishdate", "publish-date", "publication_date", "sailthru.date", "parsely-pub-date",
)  # fmt: skip
# Sentinels for structure, kept apart from HTML's insignificant whitespace until the end.
_PARA, _LINE = "\u2029", "\u2028"
_HTML_SPACE_RE = re.compile(r"[ \t\n\r\f\v]+")


_BLOCK_SET = frozenset(_BLOCK_TAGS)
_CELLS = frozenset({"td", "th"})


def _parse_html(data: bytes, decode: Callable[[bytes], str]) -> HtmlElement | None:
    """The page's tree, decoded as bs4 decodes HTML (``decode`` when that fails) and handed
    to lxml as text, so libxml2's own charset handling never second-guesses it. None for a
    page with no markup at all."""
    text = UnicodeDammit(data, is_html=True).unicode_markup
    if text is None:
        text = decode(data)
    # lxml refuses text that still declares an encoding, and an XML declaration is all
    # it would use it for.
    text = _XML_DECLARATION_RE.sub("", text, count=1)
    try:
        return lxml.html.document_fromstring(text, parser=_HTML_PARSER)
    except etree.ParserError:  # "Document is empty"
        return None


_XML_DECLARATION_RE = re.compile(r"^\ufeff?\s*<\?xml[^>]*\?>")
# huge_tree: no depth limit (libxml2 stops at 256 nested elements and drops the rest).
_HTML_PARSER = lxml.html.HTMLParser(huge_tree=True)


def _strings(root: HtmlElement, *, block_marks: bool) -> Iterator[str]:
    """The text of ``root`` in document order (comments and processing instructions left
    out, their tails kept, as a browser shows it); with ``block_marks``, ``_PARA`` around
    each block, ``_LINE`` for each <br> and a space after each table cell. Walked with a
    stack, so nesting depth and sibling counts cost nothing."""
    stack: list[tuple[HtmlElement, bool]] = [(root, False)]
    while stack:
        el, ended = stack.pop()
        tag = el.tag if isinstance(el.tag, str) else None  # None: a comment or PI
        if not ended and tag is not None:
            if block_marks and tag in _BLOCK_SET:
                yield _PARA
            if block_marks and tag == "br":
                yield _LINE
            if el.text:
                yield el.text
            stack.append((el, True))
            stack.extend((child, False) for child in reversed(el))
            continue
        if block_marks and tag in _BLOCK_SET:
            yield _PARA
        if block_marks and tag in _CELLS:
            yield " "
        if el is not root and el.tail:
            yield el.tail


def _inline_text(el: HtmlElement) -> str:
    """An element's words joined by single spaces (a title, a heading)."""
    return " ".join(" ".join(_strings(el, block_marks=False)).split())


def _meta_values(root: HtmlElement) -> dict[str, str]:
    values: dict[str, str] = {}
    for tag in root.iter("meta"):
        key = tag.get("property") or tag.get("name") or tag.get("itemprop")
        content = tag.get("content")
        if key and content and content.strip():
            values.setdefault(key.strip().lower(), content.strip())
    return values


def _http_url(value: object) -> str | None:
    return value.strip() if isinstance(value, str) and value.startswith("http") else None


def _collapsed(pieces: Iterable[str]) -> Iterator[str]:
    """``pieces`` with every run of HTML whitespace made one space, across pieces too.
    Piece by piece: one substitution over a whole big page built a list of a string per
    word (~300 MB at 30 MB)."""
    space_before = False
    for piece in pieces:
        piece = _HTML_SPACE_RE.sub(" ", piece)
        if space_before and piece.startswith(" "):
            piece = piece[1:]
        if piece:
            space_before = piece.endswith(" ")
            yield piece


def _breaks(marked: str) -> str:
    """The block and line markers made blank lines and line breaks."""
    text = re.sub(rf" *{_PARA}[ {_PARA}{_LINE}]*", "\n\n", marked)
    return re.sub(rf" *{_LINE} *", "\n", text)


def read_html(data: bytes, decode: Callable[[bytes], str]) -> HtmlPage:
    """The page's text and metadata (``decode``: the bytes as text, when bs4's detection
    finds no encoding)."""
    page = _parse_html(data, decode)
    if page is None:
        return HtmlPage("", [], None, None, None)
    facts = _facts(page)
    marked = _marked_text(page)
    # The tree (~6 bytes per byte of page) goes before the text is copied: no element is
    # left referring to it (the helpers' locals are gone with their frames).
    del page
    return HtmlPage(_breaks(marked), *facts)


def _facts(page: HtmlElement) -> tuple[list[str | None], str | None, str | None, str | None]:
    """(titles, stated date, url, publisher) from the page's head and first heading."""
    meta = _meta_values(page)
    title_tag, h1 = page.find(".//title"), page.find(".//h1")
    titles = [
        meta.get("og:title"),
        _inline_text(title_tag) if title_tag is not None else None,
        _inline_text(h1) if h1 is not None else None,
    ]
    stated = next((d for k in _DATE_META if (d := parse_date(meta.get(k, "")))), None)
    if stated is None and (time_tag := page.find(".//time[@datetime]")) is not None:
        stated = parse_date(str(time_tag.get("datetime")))
    canonical = next(
        (link for link in page.iter("link") if "canonical" in (link.get("rel") or "").split()),
        None,
    )
    url = _http_url(canonical.get("href") if canonical is not None else None)
    return titles, stated, url or _http_url(meta.get("og:url")), meta.get("og:site_name")


def _marked_text(page: HtmlElement) -> str:
    """The readable part's text, blocks and line breaks still as markers (drops the page's
    navigation, scripts, forms and head first)."""
    for tag in list(page.iter(*_DROP_TAGS)):
        if tag.getparent() is not None:  # (not inside one dropped already)
            tag.drop_tree()
    root = next(
        (r for r in (page.find(".//article"), page.find(".//main"), page.body) if r is not None),
        page,
    )
    return "".join(_collapsed(_strings(root, block_marks=True)))
