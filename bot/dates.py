"""What period a question asks about, read from its words ("in 2020", "since March 2021").

Retrieval turns the period into a filter on the documents' publication dates, so only
explicit time phrases count: a bare year in a name ("the 2020 Yabuli forum") is left to
keyword search. The question itself is returned unchanged, date words kept, because
they are useful search terms too.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass, field
from datetime import date, timedelta

from ingest.vocabulary import MONTH_PATTERN, MONTHS

_YEAR_RE = r"(?:19|20)\d\d"


def _period(tag: str = "") -> str:
    """A month with an optional year ("July", "July, 2020") or a year alone ("2020").

    Group names carry ``tag`` so that one pattern can hold two periods.
    """
    return (
        rf"(?:(?P<{tag}month>{MONTH_PATTERN})\.?(?:,?\s+(?P<{tag}year>{_YEAR_RE}))?"
        rf"|(?P<{tag}yearonly>{_YEAR_RE}))\b"
    )


# Reports of a period come out after it ends: "as of July 2020" or "exports in 2020" are
# answered by documents published during the period and after it — annual figures appear
# in January–March, final and revised ones, and reviews of the year, later still. The
# window only ranks: which period a sentence speaks of is the answer stage's check.
REPORTING_LAG = timedelta(days=366)

_RECENT_RE = re.compile(
    r"\b(latest|most\s+recent(ly)?|newest|recent(ly)?|current(ly)?|up[- ]to[- ]date|now)\b"
    r"|最新|最近|近期|目前|当前",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class DateIntent:
    """Publication-date window implied by a question (either end open when None)."""

    question: str
    start: date | None = None
    end: date | None = None
    prefer_recent: bool = False
    phrases: tuple[str, ...] = field(default=())  # the matched time phrases, for logs

    @property
    def has_window(self) -> bool:
        return self.start is not None or self.end is not None

    def contains(self, iso_date: str | None) -> bool:
        """Whether a document dated ``iso_date`` (YYYY-MM-DD) falls in the window.

        Undated documents fall outside any window (Chroma's where-filter drops them too).
        """
        if not self.has_window:
            return True
        if not iso_date:
            return False
        try:
            day = date.fromisoformat(iso_date[:10])
        except ValueError:
            return False
        return (self.start is None or day >= self.start) and (self.end is None or day <= self.end)


def _span(year: int, month: int | None) -> tuple[date, date]:
    if month is None:
        return date(year, 1, 1), date(year, 12, 31)
    return date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1])


def _resolve(
    m: re.Match[str], today: date, tag: str = "", *, need_year: bool = False
) -> tuple[date, date] | None:
    """The span of a matched ``_period(tag)``; a month without a year is its latest past one."""
    month_name = m.group(f"{tag}month")
    year_text = m.group(f"{tag}year") or m.group(f"{tag}yearonly")
    month = MONTHS[month_name.lower()] if month_name else None
    if year_text:
        return _span(int(year_text), month)
    if month is None or need_year:
        return None
    year = today.year if month <= today.month else today.year - 1
    return _span(year, month)


def _english(q: str, today: date) -> tuple[date | None, date | None, list[str]] | None:
    flags = re.IGNORECASE
    # Ranges need a year: "from January to July" describes the data, not when it was published.
    for lead in ("between", "from"):
        join = "and" if lead == "between" else "(?:to|until|till|through)"
        m = re.search(rf"\b{lead}\s+{_period()}\s+{join}\s+{_period('b_')}", q, flags)
        if m is None:
            continue
        last = _resolve(m, today, "b_", need_year=True)
        first = _resolve(m, today, need_year=last is None)
        if first and last:
            if not (m.group("year") or m.group("yearonly")):
                # "from March to July 2020": the first month is in the year of the second.
                first = _span(last[0].year, MONTHS[m.group("month").lower()])
            # The figures of "January to July 2024" are published in August: reporting lag.
            return first[0], last[1] + REPORTING_LAG, [m.group()]

    m = re.search(rf"\bas\s+(?:of|at)\s+{_period()}", q, flags)
    if m and (span := _resolve(m, today)):
        return span[0], span[1] + REPORTING_LAG, [m.group()]

    m = re.search(rf"\b(?:since|after)\s+{_period()}", q, flags)
    if m and (span := _resolve(m, today)):
        # "since March" includes March; "after March" starts when March is over.
        after = m.group().lower().startswith("after")
        return (span[1] + timedelta(days=1) if after else span[0]), None, [m.group()]

    m = re.search(rf"\b(?:before|prior\s+to|until|till)\s+{_period()}", q, flags)
    if m and (span := _resolve(m, today)):
        return None, span[0] - timedelta(days=1), [m.group()]

    # "in 2020", "during July 2020", "July 2020 exports"; a bare month ("in May") is too
    # ambiguous to filter on.
    m = re.search(
        rf"\b(?:(?:in|during|for|throughout|of)\s+(?:the\s+year\s+)?)?{_period()}", q, flags
    )
    while m is not None:
        bare_year = m.group("yearonly") and not re.match(r"\w+\s", m.group())
        if not bare_year and (span := _resolve(m, today, need_year=True)):
            return span[0], span[1] + REPORTING_LAG, [m.group()]
        m = re.compile(
            rf"\b(?:(?:in|during|for|throughout|of)\s+(?:the\s+year\s+)?)?{_period()}", flags
        ).search(q, m.end())

    if m := re.search(r"\bthis\s+year\b|\byear[- ]to[- ]date\b|\bytd\b", q, flags):
        return date(today.year, 1, 1), today, [m.group()]
    if m := re.search(r"\blast\s+year\b|\bprevious\s+year\b", q, flags):
        return date(today.year - 1, 1, 1), date(today.year - 1, 12, 31), [m.group()]
    if m := re.search(r"\bthis\s+month\b", q, flags):
        return date(today.year, today.month, 1), today, [m.group()]
    if m := re.search(r"\blast\s+month\b", q, flags):
        prev = date(today.year, today.month, 1) - timedelta(days=1)
        return date(prev.year, prev.month, 1), prev, [m.group()]
    return None


def _chinese(q: str, today: date) -> tuple[date | None, date | None, list[str]] | None:
    ym = r"(?P<year>(?:19|20)\d\d)\s*年(?:\s*(?P<month>1[0-2]|0?[1-9])\s*月)?"
    m = re.search(rf"(?:截至|截止到?|到)\s*{ym}", q)
    if m:
        month = int(m.group("month")) if m.group("month") else None
        start, end = _span(int(m.group("year")), month)
        return start, end + REPORTING_LAG, [m.group()]
    m = re.search(rf"(?:自|从)\s*{ym}\s*(?:以来|起|开始)?", q)
    if m and re.search(r"以来|起|开始", m.group()):
        month = int(m.group("month")) if m.group("month") else None
        return _span(int(m.group("year")), month)[0], None, [m.group()]
    m = re.search(rf"{ym}\s*(?:以前|之前|前)", q)
    if m:
        month = int(m.group("month")) if m.group("month") else None
        return None, _span(int(m.group("year")), month)[0] - timedelta(days=1), [m.group()]
    m = re.search(ym, q)
    if m:
        month = int(m.group("month")) if m.group("month") else None
        start, end = _span(int(m.group("year")), month)
        return start, end + REPORTING_LAG, [m.group()]
    if m := re.search(r"今年", q):
        return date(today.year, 1, 1), today, [m.group()]
    if m := re.search(r"去年", q):
        return date(today.year - 1, 1, 1), date(today.year - 1, 12, 31), [m.group()]
    return None


def parse_date_intent(question: str, today: date) -> DateIntent:
    """Read the time window and recency wish of ``question``, relative to ``today``."""
    found = _chinese(question, today) or _english(question, today)
    recent = _RECENT_RE.search(question) is not None
    if found is None:
        return DateIntent(question=question, prefer_recent=recent)
    start, end, phrases = found
    return DateIntent(
        question=question, start=start, end=end, prefer_recent=recent, phrases=tuple(phrases)
    )
