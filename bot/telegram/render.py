"""Answers → Telegram HTML messages: the answer with its sources, refusals, and passages.

Pure functions only. Every piece of document or user text goes through ``esc``; the only
tags in the output are the ones written here, all in Telegram's allowed set. Splitting at
Telegram's length limit is ``bot.telegram.html_split``'s job (done when sending).
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.formatting import esc, source_line
from bot.types import Answer, Citation


def _sources(citations: Sequence[Citation]) -> str:
    lines = ["<b>Sources</b>"]
    for citation in citations:
        lines.append(source_line(citation.hit, citation.n, html=True))
        if citation.quote.strip():
            lines.append(f"<blockquote><i>{esc(citation.quote.strip())}</i></blockquote>")
    return "\n".join(lines)


def render_answer(answer: Answer) -> str:
    """The chat message for an answer: the text with [n], then one source per citation."""
    if answer.refused:
        return render_refusal(answer)
    blocks = [esc(answer.text.strip()) or "(empty answer)"]
    if answer.citations:
        blocks.append(_sources(answer.citations))
    return "\n\n".join(blocks + _caveats(answer))


def _caveats(answer: Answer) -> list[str]:
    """What the reader must know about the answer, in italics, after everything else."""
    return [f"<i>{esc(c[:1].upper() + c[1:])}</i>" for c in answer.caveats]


def render_refusal(answer: Answer) -> str:
    """The answerer's own refusal text, once and in bold. When it quotes what the documents
    do say instead (a near miss, with [n]), its sources follow; otherwise the nearest
    documents. Notes are not shown (they include the answerer's scores); the CLI shows them.
    Caveats are, as with any answer.
    """
    blocks = [f"<b>{esc(answer.text.strip()) or 'No answer.'}</b>"]
    if answer.citations:
        blocks.append(_sources(answer.citations))
    elif answer.nearest:
        lines = ["<b>Nearest documents</b>"]
        lines += [source_line(hit, i, html=True) for i, hit in enumerate(answer.nearest, start=1)]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks + _caveats(answer))


def _highlight(passage: str, quote: str) -> str:
    """The escaped passage with the quoted sentence in bold (when it is found verbatim)."""
    at = passage.find(quote) if quote else -1
    if at < 0:
        return esc(passage)
    end = at + len(quote)
    return f"{esc(passage[:at])}<b>{esc(passage[at:end])}</b>{esc(passage[end:])}"


def render_passages(citations: Sequence[Citation]) -> str:
    """The full retrieved passage behind each citation, quote in bold."""
    if not citations:
        return "This answer quotes no passages."
    blocks = []
    for citation in citations:
        passage = _highlight(citation.hit.text.strip(), citation.quote.strip())
        line = source_line(citation.hit, citation.n, html=True)
        blocks.append(f"{line}\n<blockquote>{passage}</blockquote>")
    return "\n\n".join(blocks)
