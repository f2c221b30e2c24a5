"""Plain-text and JSON renderings of an Answer (CLI, batch mode, benchmarks). Pure."""

from __future__ import annotations

from typing import Any

from bot.types import Answer, Hit


def source_line(hit: Hit) -> str:
    parts = [hit.title or hit.path]
    if hit.date:
        parts.append(hit.date)
    parts.append(hit.url or hit.path)
    line = " — ".join(parts)
    return f"{line}, p. {hit.page}" if hit.page is not None else line


def format_answer(answer: Answer) -> str:
    lines = [answer.text, ""]
    if answer.refused:
        if answer.nearest:
            lines.append("Nearest documents:")
            seen: set[str] = set()
            for hit in answer.nearest:
                if hit.doc_id not in seen:
                    seen.add(hit.doc_id)
                    lines.append(f"  - {source_line(hit)}")
        return "\n".join(lines).rstrip()
    lines.append("Sources:")
    for c in answer.citations:
        lines.append(f"[{c.n}] {source_line(c.hit)}")
        lines.append(f'    "{c.quote}"')
    for note in answer.notes:
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
        "notes": answer.notes,
        "timings_ms": {k: round(v, 2) for k, v in answer.timings_ms.items()},
    }
