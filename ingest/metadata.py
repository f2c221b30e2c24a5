"""Press-release metadata and distributor boilerplate, read from plain text.

Pure functions: the loaders call them on normalised text before a Document is built.
Wire services append contact blocks, disclaimers and copyright lines to every release;
they are removed here so they never become answer material, after the source link they
carry has been captured.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from ingest.vocabulary import MONTH_PATTERN, MONTHS

_MONTH = rf"{MONTH_PATTERN}\.?"
_YEAR = r"(?:19|20)\d\d"
_MDY = rf"{_MONTH}\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+{_YEAR}"
_DMY = rf"\d{{1,2}}(?:st|nd|rd|th)?\s+{_MONTH},?\s+{_YEAR}"
_NAMED_DATE = rf"(?:{_MDY}|{_DMY})"
_NAMED_DATE_RE = re.compile(rf"(?<![\w-]){_NAMED_DATE}(?!\d)", re.IGNORECASE)
_ISO_RE = re.compile(r"(?<!\d)((?:19|20)\d\d)[-/._](\d{1,2})[-/._](\d{1,2})(?!\d)")
_COMPACT_RE = re.compile(r"(?<!\d)((?:19|20)\d\d)(\d\d)(\d\d)(?!\d)")
_PDF_DATE_RE = re.compile(r"^D:((?:19|20)\d\d)(\d\d)(\d\d)")
_CJK_DATE_RE = re.compile(r"((?:19|20)\d\d)\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*日")

# How far into a document a dateline or a bare publication date is looked for.
_HEAD_CHARS = 3000
_PLAIN_DATE_HEAD_CHARS = 800


def _iso(year: int, month: int, day: int) -> str | None:
    try:
        return date(year, month, day).isoformat()
    except ValueError:
        return None


def _named_to_iso(match_text: str) -> str | None:
    month = re.search(_MONTH, match_text, re.IGNORECASE)
    year = re.search(_YEAR, match_text)
    day = re.search(r"\b(\d{1,2})(?:st|nd|rd|th)?\b", match_text)
    if not (month and year and day):
        return None
    return _iso(int(year.group()), MONTHS[month.group().lower().rstrip(".")], int(day.group(1)))


def parse_date(value: str) -> str | None:
    """ISO ``YYYY-MM-DD`` of the first date in ``value`` (ISO, PDF ``D:…``, named month, 年月日)."""
    value = value.strip()
    if m := _PDF_DATE_RE.match(value):
        return _iso(int(m[1]), int(m[2]), int(m[3]))
    for pattern in (_ISO_RE, _CJK_DATE_RE):
        if m := pattern.search(value):
            return _iso(int(m[1]), int(m[2]), int(m[3]))
    if m := _NAMED_DATE_RE.search(value):
        return _named_to_iso(m.group())
    return None


def date_from_filename(name: str) -> str | None:
    """A date written in a file name: ``…-2020-09-04.txt``, ``2020_09_04``, ``20200904``."""
    for pattern in (_ISO_RE, _COMPACT_RE):
        for m in pattern.finditer(name):
            if found := _iso(int(m[1]), int(m[2]), int(m[3])):
                return found
    return None


# --- dateline ---------------------------------------------------------------------------

_PLACE = r"[A-Z][A-Za-z.'’&()\- ]{0,40}(?:,\s*[A-Z][A-Za-z.'’&()\- ]{0,40}){0,4}"
_DASH = r"(?:--|—|–)"
_DATELINE_RES = (
    # EIN Presswire / PR Newswire / GlobeNewswire:
    # "NEW YORK, March 3, 2021 /PRNewswire/ --", "X, May 1, 2021 (GLOBE NEWSWIRE) --"
    re.compile(
        rf"^(?P<place>{_PLACE}),\s+(?P<date>{_NAMED_DATE})\s*"
        rf"(?:/\s*(?P<wire>[^/\n]{{2,40}}?)\s*/|\((?P<wire2>[^)\n]{{2,40}})\))?\s*{_DASH}",
        re.MULTILINE,
    ),
    # Business Wire: "SAN FRANCISCO--(BUSINESS WIRE)--"
    re.compile(rf"^(?P<place>{_PLACE}?)\s*--\s*\((?P<wire>[^)\n]{{2,40}})\)\s*--", re.MULTILINE),
    # ACCESSWIRE / Newsfile: "NEW YORK, NY / ACCESSWIRE / March 3, 2021 /"
    re.compile(
        rf"^(?P<place>{_PLACE}?)\s*/\s*(?P<wire>[A-Za-z][A-Za-z .]{{1,40}}?)\s*/\s*"
        rf"(?P<date>{_NAMED_DATE})\s*/",
        re.MULTILINE,
    ),
)
_WIRE_NAMES = (
    (re.compile(r"ein\s*presswire", re.I), "EIN Presswire"),
    (re.compile(r"pr\s*newswire", re.I), "PR Newswire"),
    (re.compile(r"business\s*wire", re.I), "Business Wire"),
    (re.compile(r"globe\s*newswire", re.I), "GlobeNewswire"),
    (re.compile(r"accesswire", re.I), "ACCESSWIRE"),
    (re.compile(r"newsfile", re.I), "Newsfile"),
    (re.compile(r"prweb", re.I), "PRWeb"),
)


def publisher_name(wire: str) -> str:
    """Canonical name of a wire service as written in a dateline or a URL."""
    for pattern, name in _WIRE_NAMES:
        if pattern.search(wire):
            return name
    return wire.strip()


@dataclass(frozen=True, slots=True)
class PressMeta:
    date: str | None = None
    place: str | None = None
    publisher: str | None = None
    url: str | None = None


def find_dateline(text: str) -> PressMeta | None:
    """The wire-service dateline near the top, e.g. ``QINGDAO, CHINA, September 4, 2020 /…/ --``."""
    head = text[:_HEAD_CHARS]
    for pattern in _DATELINE_RES:
        m = pattern.search(head)
        if m is None:
            continue
        groups = m.groupdict()
        wire = groups.get("wire") or groups.get("wire2")
        place = (groups.get("place") or "").strip(" ,") or None
        found_date = _named_to_iso(groups["date"]) if groups.get("date") else None
        return PressMeta(
            date=found_date, place=place, publisher=publisher_name(wire) if wire else None
        )
    return None


def strip_dateline(text: str) -> tuple[str, int]:
    """``text`` without its wire dateline, and how many characters went.

    The dateline ("DALIAN, CHINA, January 20, 2025 /EINPresswire.com/ --") is metadata:
    ``press_metadata`` reads it before this runs, and kept in the text it would open the
    first chunk and could be quoted as if it were evidence. The line's own text after it
    (the lead sentence) stays.
    """
    head = text[:_HEAD_CHARS]
    for pattern in _DATELINE_RES:
        m = pattern.search(head)
        if m is None:
            continue
        end = m.end()
        while end < len(text) and text[end] in " \t":
            end += 1
        if end < len(text) and text[end] == "\n":  # a dateline on a line of its own
            end += 1
        return text[: m.start()] + text[end:], end - m.start()
    return text, 0


_URL = r"(?P<url>https?://[^\s<>\"'\]]+)"
_SOURCE_URL_RE = re.compile(
    r"(?:press release can be viewed online at|view (?:the )?original content"
    r"(?: to download multimedia)?|view source version on [\w.]+|originally published at"
    r"|^\s*source(?: url| link)?|read (?:the )?(?:full|original) (?:article|story|release)"
    rf"(?: at| here)?)\s*:?\s*{_URL}",
    re.IGNORECASE | re.MULTILINE,
)


def find_source_url(text: str) -> str | None:
    """The link a release gives to itself ("This press release can be viewed online at: …")."""
    m = _SOURCE_URL_RE.search(text)
    return m["url"].rstrip(".,;:)") if m else None


def press_metadata(text: str) -> PressMeta:
    """Date, place, publisher and source link stated in a document's text."""
    dateline = find_dateline(text) or PressMeta()
    found_date = dateline.date or parse_date(text[:_PLAIN_DATE_HEAD_CHARS])
    url = find_source_url(text)
    publisher = dateline.publisher
    if publisher is None and url is not None:
        named = publisher_name(url)
        publisher = named if named != url else None
    return PressMeta(date=found_date, place=dateline.place, publisher=publisher, url=url)


# --- titles -----------------------------------------------------------------------------

_JUNK_TITLE_RE = re.compile(
    r"^(?:microsoft (?:word|powerpoint|excel)\b|untitled\b|document\d*$|slide \d|title$)"
    r"|\.(?:docx?|pdf|txt|rtf|html?|indd|qxd)$",
    re.IGNORECASE,
)


def is_good_title(title: str | None) -> bool:
    """False for the junk that authoring tools leave in metadata ("Microsoft Word - x.docx")."""
    if not title:
        return False
    title = title.strip()
    return (
        3 <= len(title) <= 300
        and any(c.isalpha() for c in title)
        and not (_JUNK_TITLE_RE.search(title))
    )


def title_from_text(text: str) -> str | None:
    """The first line of the text, when it is short enough to be a headline."""
    for line in text.split("\n"):
        line = line.strip()
        if line:
            is_dateline = find_dateline(line) is not None
            return line if is_good_title(line) and len(line) <= 200 and not is_dateline else None
    return None


def humanize_stem(stem: str) -> str:
    """A readable title from a file name: ``qingdao-trade_2020-09-04`` → ``Qingdao trade``."""
    words = _COMPACT_RE.sub(" ", _ISO_RE.sub(" ", stem))
    words = re.sub(r"[\s_\-.]+", " ", words).strip() or stem
    return words[0].upper() + words[1:] if words.islower() else words


# --- boilerplate ------------------------------------------------------------------------

# A hit on one of these removes its paragraph (when short: a disclaimer or contact block)
# or else its line. Each list is one alternation: it runs on every line of every PDF page.
_BLOCK_MARKER_RE = re.compile(
    "|".join(
        f"(?:{p})"
        for p in (
            r"press release can be viewed online at",
            r"^view (?:the )?original content\b",
            r"^view source version on\b",
            r"ein presswire['’]s priority is source transparency",
            r"does not exercise editorial control",
            r"we are a distributor, not a publisher",
            r"everyone['’]s internet news presswire",
            r"please see our editorial guidelines",
            r"^legal disclaimer:?$",
            r"^(?-i:Distribution channels?:) \S",
            r"\bemail us here\b",
            r"^visit us on social media:?$",
            r"^(?-i:(?:(?:Media|Press|Investor|Editorial|PR)\s+)?[CEI])(?:ontacts?|nquiries)"
            r"(?:\s+information)?(?:\s+details)?\s*:?$",
        )
    ),
    re.IGNORECASE,
)
# These remove their line only (a page footer must not take the page with it).
_LINE_RE = re.compile(
    "|".join(
        f"(?:{p})"
        for p in (
            r"^(?:©|copyright\s*(?:©|\(c\)|\d{4}))",
            r"all rights? reserved\.?$",
            r"^(?:e-?mail\s*:?\s*)?[\w.+-]+@[\w-]+(?:\.[\w-]+)+$",
            r"^(?-i:SOURCE [A-Z])",  # PR Newswire's closing "SOURCE Acme Corp"
            # "Source: <url>" alone on a line: the link is kept as metadata (find_source_url).
            r"^source(?: url| link)?\s*:\s*https?://\S+$",
            # A phone number alone on a line, labelled or international ("+1 626-378-1851");
            # a bare "(408) 536-6000" may be a filing's cover page, and stays.
            r"^(?:tel|phone|ph|mobile|mob|fax)\.?\s*:?\s*\+?[\d\s().\-/]{7,25}$",
            r"^\+\d{1,4}(?:[\s.\-]\(?\d{1,4}\)?){2,5}$",
        )
    ),
    re.IGNORECASE,
)
_MAX_LINE = 300  # longer lines are prose, never a footer
_MAX_BLOCK = 1200  # longer paragraphs are content: only their matching lines go
_MAX_BLOCK_LINES = 12


def _is_block_marker(line: str) -> bool:
    return _BLOCK_MARKER_RE.search(line) is not None


def _is_boilerplate_line(line: str) -> bool:
    if _is_block_marker(line):
        return True
    return len(line) <= _MAX_LINE and _LINE_RE.search(line) is not None


def strip_boilerplate(text: str) -> tuple[str, int]:
    """``text`` without distributor boilerplate, and how many characters were removed.

    ``text`` is expected normalised (``\\n`` newlines, no trailing spaces). Paragraphs
    are blocks of lines between blank lines. A short paragraph holding a block marker
    goes as a whole (EIN's contact block is "name / company / phone / email us here");
    otherwise only the boilerplate lines go.
    """
    kept: list[str] = []
    removed = 0
    for paragraph in text.split("\n\n"):
        lines = [line.strip() for line in paragraph.split("\n")]
        is_block = len(paragraph) <= _MAX_BLOCK and len(lines) <= _MAX_BLOCK_LINES
        if is_block and any(_is_block_marker(line) for line in lines):
            removed += len(paragraph)
            continue
        remaining = [line for line in lines if not _is_boilerplate_line(line)]
        if len(remaining) == len(lines):
            kept.append(paragraph)
            continue
        removed += sum(len(line) for line in lines) - sum(len(line) for line in remaining)
        if any(remaining):
            kept.append("\n".join(remaining))
    return "\n\n".join(kept), removed
