"""One file's bytes → a clean ``Document``: format parsing, normalisation, metadata.

Every format is read with its ecosystem parser (charset-normalizer, PyYAML, lxml with
bs4's encoding detection in ``ingest.html_text``, pypdfium2, python-docx). Bad input of
any kind raises ``LoadError`` with a short reason for the user. All cleaning happens before
the Document is built, so the offsets later computed on ``Document.text`` (chunks, PDF
page spans) stay valid.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import threading
import unicodedata
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import charset_normalizer
import docx
import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
import yaml
from docx.table import Table
from docx.text.paragraph import Paragraph

from ingest.html_text import read_html
from ingest.metadata import (
    date_from_filename,
    humanize_stem,
    is_good_title,
    parse_date,
    press_metadata,
    strip_boilerplate,
    strip_dateline,
    title_from_text,
)
from ingest.types import Document, LoadError, PageSpan

_FORMATS = {
    ".txt": "txt", ".md": "md", ".markdown": "md", ".html": "html", ".htm": "html",
    ".pdf": "pdf", ".docx": "docx",
}  # fmt: skip
SUPPORTED_SUFFIXES: frozenset[str] = frozenset(_FORMATS)

# A .docx is a zip: refuse archives that would expand far beyond any real document.
MAX_DOCX_EXPANDED_BYTES = 200_000_000
MAX_DOCX_RATIO = 100
_DOCX_RATIO_FLOOR = 20_000_000  # small archives cannot hurt, whatever their ratio
MAX_DOCX_MEMBERS = 10_000
_MIN_PRINTABLE_RATIO = 0.9
_PRINTABLE_SAMPLE = 100_000  # characters checked for it
_PAGE_SEPARATOR = "\n\n"

# PDFium is not thread-safe; one lock keeps concurrent ingest workers from crashing it.
_PDFIUM_LOCK = threading.Lock()


@dataclass(slots=True)
class _Extracted:
    """What a format parser found: the text (one entry per PDF page) and metadata hints."""

    pages: list[str]
    title: str | None = None
    date: str | None = None  # stated publication date (front matter, HTML meta)
    url: str | None = None
    publisher: str | None = None
    place: str | None = None
    weak_date: str | None = None  # file creation date (PDF info, docx core): last resort
    title_from_first_line: bool = True


# --- text -------------------------------------------------------------------------------

_BOMS = (  # UTF-32 first: its little-endian BOM starts with UTF-16's
    (b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\x00\x00\xfe\xff", "utf-32-be"), (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"),
)  # fmt: skip
_CONTROL_RE = re.compile(r"[\x00-\x08\x0e-\x1f\x7f\ufeff\ufffe\uffff]")
_TRAILING_SPACE_RE = re.compile(r"[ \t\u00a0]+\n")
_BLANK_LINES_RE = re.compile(r"\n{3,}")


def normalize_text(text: str) -> str:
    """NFC, ``\\n`` newlines, no control characters or trailing spaces, ≤ 1 blank line in a row."""
    text = unicodedata.normalize("NFC", text)
    text = re.sub(r"\r\n?|[\x0b\x0c\x1c-\x1e\x85\u2028\u2029]", "\n", text)
    text = _CONTROL_RE.sub("", text).replace("\u00a0", " ")
    text = _TRAILING_SPACE_RE.sub("\n", text + "\n")
    return _BLANK_LINES_RE.sub("\n\n", text).strip()


def decode_text(data: bytes) -> str:
    """Text of a plain-text file: BOM, else UTF-8, else charset-normalizer's best guess."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return data[len(bom) :].decode(encoding, errors="replace")
    if b"\x00" in data:
        raise LoadError("binary content, not text")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        mixed = _decode_mixed(data)
        if mixed is not None:
            return mixed
        matches = charset_normalizer.from_bytes(data)
        best = matches.best()
        if best is None:
            raise LoadError("binary content, not text") from None
        # Western text often scores the same in cp1250/cp1252/cp1257, which differ only in
        # rarer letters ("naïve" vs "naďve"); on a tie the far more common cp1252 wins.
        tied = [m for m in matches if (m.chaos, m.coherence) == (best.chaos, best.coherence)]
        best = next((m for m in tied if "cp1252" in m.could_be_from_charset), best)
        text = str(best)
    sample = text[:_PRINTABLE_SAMPLE]
    # isspace: no-break and other Unicode spaces are text, though not "printable".
    printable = sum(1 for c in sample if c.isprintable() or c.isspace())
    if sample and printable / len(sample) < _MIN_PRINTABLE_RATIO:
        raise LoadError("binary content, not text")
    return text


def _decode_mixed(data: bytes) -> str | None:
    """A file whose lines mix encodings (UTF-8 beside legacy lines pasted from elsewhere),
    decoded line by line; None when no line is non-ASCII UTF-8 (one legacy encoding: the
    whole file is guessed at once, which is more reliable).

    UTF-8 lines stay UTF-8; each other line is GB18030 if it decodes strictly as that and
    its non-ASCII characters are mostly CJK (Latin-1 bytes rarely form that by chance),
    else cp1252, the commonest Western legacy encoding.
    """
    lines = data.split(b"\n")
    kinds = []
    for line in lines:
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            kinds.append("legacy")
            continue
        kinds.append("ascii" if line.isascii() else "utf8")
    if "utf8" not in kinds:
        return None
    return "\n".join(
        _decode_legacy(line) if kind == "legacy" else line.decode("utf-8")
        for line, kind in zip(lines, kinds, strict=True)
    )


def _decode_legacy(block: bytes) -> str:
    try:
        text = block.decode("gb18030")
    except UnicodeDecodeError:
        return block.decode("cp1252", errors="replace")
    foreign = [c for c in text if not c.isascii()]
    cjk = sum(1 for c in foreign if "\u3000" <= c <= "\u9fff" or "\uff00" <= c <= "\uffef")
    return text if foreign and cjk / len(foreign) >= 0.8 else block.decode("cp1252", "replace")


def _extract_txt(data: bytes) -> _Extracted:
    return _Extracted(pages=[decode_text(data)])


# --- markdown ---------------------------------------------------------------------------

_FRONT_MATTER_RE = re.compile(r"\A---[ \t]*\n(.*?)\n(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.DOTALL)
_HEADING_RE = re.compile(r"^(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$", re.MULTILINE)


def _front_matter(text: str) -> tuple[dict[str, Any], str]:
    """The YAML front matter (keys lower-cased) and the text after it."""
    m = _FRONT_MATTER_RE.match(text)
    if m is None:
        return {}, text
    try:
        loaded = yaml.safe_load(m.group(1))
    except yaml.YAMLError:
        return {}, text
    if not isinstance(loaded, dict):  # a leading "---" rule, not front matter
        return {}, text
    return {str(k).lower(): v for k, v in loaded.items()}, text[m.end() :]


def _as_str(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, dt.date):  # YAML reads `date: 2020-09-04` as a date
        return value.isoformat()
    return str(value).strip() or None


def _first(fm: dict[str, Any], *keys: str) -> str | None:
    return next((v for k in keys if (v := _as_str(fm.get(k))) is not None), None)


def _extract_md(data: bytes) -> _Extracted:
    fm, body = _front_matter(decode_text(data))
    title = _first(fm, "title")
    if title is None and (h1 := next((m for m in _HEADING_RE.finditer(body) if m[1] == "#"), None)):
        title = h1[2]
    link = _first(fm, "url", "source", "link", "canonical")
    url = link if link and link.startswith(("http://", "https://")) else None
    source_name = link if link and url is None else None
    stated = _first(fm, "date", "published", "pubdate")
    return _Extracted(
        pages=[_HEADING_RE.sub(r"\2", body)],  # "## Trade" reads as "Trade" in a quote
        title=title,
        date=parse_date(stated) if stated else None,
        url=url,
        publisher=_first(fm, "publisher") or source_name,
        place=_first(fm, "place", "location", "dateline"),
    )


# --- html (``ingest.html_text``) ---------------------------------------------------------


def _extract_html(data: bytes) -> _Extracted:
    page = read_html(data, decode_text)
    return _Extracted(
        pages=[page.text],
        title=next((t for t in page.titles if is_good_title(t)), None),
        date=page.date,
        url=page.url,
        publisher=page.publisher,
    )


# --- pdf --------------------------------------------------------------------------------


def _pdfium_reason(err: pdfium.PdfiumError) -> str:
    m = re.search(r"PDFium: ([^)]+)", str(err))
    return (m.group(1) if m else str(err)).strip().rstrip(".").lower()


def _extract_pdf(data: bytes) -> _Extracted:
    with _PDFIUM_LOCK:
        try:
            pdf = pdfium.PdfDocument(data)
        except pdfium.PdfiumError as err:
            if err.err_code == pdfium_c.FPDF_ERR_PASSWORD:
                raise LoadError("encrypted PDF (password required)") from None
            if err.err_code == pdfium_c.FPDF_ERR_SECURITY:
                raise LoadError("encrypted PDF (unsupported security handler)") from None
            raise LoadError(f"corrupt or unreadable PDF: {_pdfium_reason(err)}") from None
        try:
            pages: list[str] = []
            for index in range(len(pdf)):
                page = pdf[index]
                textpage = page.get_textpage()
                pages.append(textpage.get_text_range())
                textpage.close()
                page.close()
            info = pdf.get_metadata_dict()
        except pdfium.PdfiumError as err:
            raise LoadError(f"corrupt or unreadable PDF: {_pdfium_reason(err)}") from None
        finally:
            pdf.close()
    if not pages:
        raise LoadError("corrupt or unreadable PDF: no pages")
    if not any(page.strip() for page in pages):
        raise LoadError("PDF has no text layer (scanned?)")
    info_title = info.get("Title")
    return _Extracted(
        pages=pages,
        title=info_title if is_good_title(info_title) else None,
        weak_date=parse_date(info.get("CreationDate", "")),
        # A PDF's first line is usually a running header ("UNITED STATES"), not a title.
        title_from_first_line=False,
    )


# --- docx -------------------------------------------------------------------------------


def _check_docx_archive(data: bytes) -> None:
    """Refuse what is not a zip, and zip bombs, before python-docx inflates anything."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError):
        raise LoadError("corrupt docx (not a zip archive)") from None
    # zipfile never inflates a member beyond its declared file_size, so these totals bound
    # what python-docx can be made to decompress.
    expanded = sum(m.file_size for m in members)
    packed = max(1, sum(m.compress_size for m in members))
    too_big = expanded > MAX_DOCX_EXPANDED_BYTES
    too_dense = expanded > _DOCX_RATIO_FLOOR and expanded / packed > MAX_DOCX_RATIO
    if too_big or too_dense or len(members) > MAX_DOCX_MEMBERS:
        raise LoadError(f"docx expands to {expanded / 1e6:.0f} MB (zip bomb?)")


def _table_lines(table: Table) -> list[str]:
    lines = []
    for row in table.rows:
        cells: list[str] = []
        for cell in row.cells:
            text = " ".join(cell.text.split())
            if text and (not cells or cells[-1] != text):  # merged cells repeat their text
                cells.append(text)
        if cells:
            lines.append(" | ".join(cells))
    return lines


def _extract_docx(data: bytes) -> _Extracted:
    _check_docx_archive(data)
    try:
        document = docx.Document(io.BytesIO(data))
        blocks: list[str] = []
        for block in document.iter_inner_content():
            if isinstance(block, Paragraph):
                blocks.append(block.text)
            elif isinstance(block, Table):
                blocks.append("\n".join(_table_lines(block)))
        core = document.core_properties
        title, created = core.title, core.created
    except Exception as err:  # python-docx raises many types on malformed parts
        raise LoadError(f"corrupt docx: {type(err).__name__}") from None
    return _Extracted(
        pages=["\n\n".join(b for b in blocks if b.strip())],
        title=title if is_good_title(title) else None,
        weak_date=created.date().isoformat() if created else None,
    )


# --- assembly ---------------------------------------------------------------------------

_EXTRACTORS: dict[str, Callable[[bytes], _Extracted]] = {
    "txt": _extract_txt, "md": _extract_md, "html": _extract_html, "pdf": _extract_pdf,
    "docx": _extract_docx,
}  # fmt: skip


def _join_pages(pages: list[str]) -> tuple[str, tuple[PageSpan, ...]]:
    """Pages joined by a blank line, with each page's character span in the result."""
    parts: list[str] = []
    spans: list[PageSpan] = []
    offset = 0
    for number, page in enumerate(pages, start=1):
        if page and parts:
            offset += len(_PAGE_SEPARATOR)
        spans.append(PageSpan(page=number, start=offset, end=offset + len(page)))
        if page:
            parts.append(page)
            offset += len(page)
    return _PAGE_SEPARATOR.join(parts), tuple(spans)


def parse_section(path: Path, data: bytes) -> str:
    """A later section of a file read in sections (``ingest.stream``): decoded on its own,
    normalised and cleaned as ``parse_document`` cleans a page ('' when nothing is left).
    Raises ``LoadError`` for binary content."""
    text = decode_text(data)
    if _FORMATS.get(path.suffix.lower()) == "md":
        text = _HEADING_RE.sub(r"\2", text)
    cleaned, _ = strip_boilerplate(normalize_text(text))
    return cleaned


def parse_document(
    path: Path, data: bytes, doc_id: str, *, display_path: str | None = None
) -> Document:
    """Parse one file's bytes; raises ``LoadError`` (short reason) for any bad input."""
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise LoadError(f"unsupported file type {path.suffix or '(none)'}")
    if not data.strip():
        raise LoadError("empty document")
    found = _EXTRACTORS[fmt](data)
    pages = [normalize_text(page) for page in found.pages]
    if not any(pages):
        raise LoadError("no text")
    # Metadata first: the source link sits inside the boilerplate that is stripped next.
    stated = press_metadata(_PAGE_SEPARATOR.join(page for page in pages if page))
    removed = 0
    cleaned: list[str] = []
    for page in pages:
        text, count = strip_boilerplate(page)
        cleaned.append(text)
        removed += count
    # A headline is looked for before the dateline goes (a first line that is a dateline is
    # no headline; the lead sentence after it is none either).
    first_line = title_from_text("\n".join(cleaned)) if found.title_from_first_line else None
    # The wire dateline is metadata (read above into ``stated``), never answer material.
    first = next((i for i, page in enumerate(cleaned) if page.strip()), None)
    if first is not None:
        cleaned[first], count = strip_dateline(cleaned[first])
        removed += count
    text, spans = _join_pages(cleaned)
    if not text.strip():
        raise LoadError("no text (only distributor boilerplate)")
    return Document(
        doc_id=doc_id,
        path=display_path or str(path),
        text=text,
        title=found.title or first_line or humanize_stem(path.stem),
        format=fmt,
        date=found.date or stated.date or date_from_filename(path.name) or found.weak_date,
        place=found.place or stated.place,
        url=found.url or stated.url,
        publisher=found.publisher or stated.publisher,
        pages=spans if fmt == "pdf" else (),
        removed_boilerplate=removed,
    )
