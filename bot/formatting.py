"""Renderings of an Answer: plain text and JSON (CLI, batch mode, benchmarks), and the one
source line that every rendering uses (plain here, HTML in ``bot.telegram.render``). Pure."""

from __future__ import annotations

from html import escape
from pathlib import PurePath
from typing import Any
from urllib.parse import urlsplit

from bot.types import Answer, Hit


def esc(text: str) -> str:
    """Text for Telegram HTML: ``<``, ``>``, ``&`` and quotes escaped."""
    return escape(text, quote=True)


def safe_href(url: str | None) -> str | None:
    """The URL if it is a web link (a document may state any "link": only these are clickable)."""
    if not url:
        return None
    parts = urlsplit(url.strip())
    if parts.scheme in ("http", "https") and parts.netloc:
        return url.strip()
    return None


def source_line(hit: Hit, n: int | None = None, *, html: bool = False) -> str:
    """``[n] title — date — link (or file), p. page``, as plain text or as Telegram HTML.

    Plain text names the full path and URL. HTML bolds the title, shows a web link as its
    host, a file as its name in ``<code>``, and escapes every piece of document text.
    """
    if html:
        name = PurePath(hit.path).name
        href = safe_href(hit.url)
        pieces = [f"<b>{esc(hit.title or name)}</b>"]
        if hit.date:
            pieces.append(esc(hit.date))
        if href:
            pieces.append(f'<a href="{esc(href)}">{esc(urlsplit(href).netloc)}</a>')
        else:
            pieces.append(esc(hit.url) if hit.url else f"<code>{esc(name)}</code>")
    else:
        pieces = [hit.title or hit.path, *([hit.date] if hit.date else []), hit.url or hit.path]
    line = " — ".join(pieces)
    if n is not None:
        line = f"[{n}] {line}"
    return f"{line}, p. {hit.page}" if hit.page is not None else line


def format_answer(answer: Answer) -> str:
    """The answer, its sources with their quotes, and its notes; a refusal lists the nearest
    documents instead of sources, unless it quotes what the documents do say (a near miss)."""
    lines = [answer.text, ""]
    if answer.citations:
        lines.append("Sources:")
        for c in answer.citations:
            lines.append(source_line(c.hit, c.n))
            lines.append(f'    "{c.quote}"')
    elif answer.refused and answer.nearest:
        lines.append("Nearest documents:")
        seen: set[str] = set()
        for hit in answer.nearest:
            if hit.doc_id not in seen:
                seen.add(hit.doc_id)
                lines.append(f"  - {source_line(hit)}")
    for note in [*answer.caveats, *answer.notes]:
        lines.append(f"(note: {note})")
    return "\n".join(lines).rstrip()


def answer_json(answer: Answer) -> dict[str, Any]:
    return {
        "answer": answer.text,
        "refused": answer.refused,
        "answerer": answer.answerer,
        "citations": [
            {
                "n": c.n,
                "chunk_id": c.hit.chunk_id,
                "doc_id": c.hit.doc_id,
                "path": c.hit.path,
                "url": c.hit.url,
                "title": c.hit.title,
                "date": c.hit.date,
                "page": c.hit.page,
                "quote": c.quote,
            }
            for c in answer.citations
        ],
        "nearest": [
            {"title": h.title, "path": h.path, "url": h.url, "date": h.date} for h in answer.nearest
        ],
        "caveats": answer.caveats,
        "notes": answer.notes,
        "timings_ms": {k: round(v, 2) for k, v in answer.timings_ms.items()},
    }
