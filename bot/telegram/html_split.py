"""Splitting Telegram HTML at the 4,096-character message limit.

Length is counted as Telegram counts it: UTF-16 code units of the text after entity
parsing (tags count nothing). Each part stays valid HTML on its own: tags open at a cut
are closed at the end of the part and reopened after it. Cuts prefer paragraph, then
line, then sentence, then word boundaries. Pure; ``bot.telegram.sending`` uses it.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass

TELEGRAM_LIMIT = 4096
# A little below the limit: a cut falls on a boundary before it, never exactly on it.
DEFAULT_BUDGET = 4000


def utf16_len(text: str) -> int:
    """Length as Telegram counts it: UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def visible_length(message_html: str) -> int:
    """UTF-16 length of ``message_html`` after Telegram's entity parsing (tags removed)."""
    return sum(tok.visible for tok in _tokenize(message_html))


@dataclass(frozen=True, slots=True)
class _Token:
    raw: str  # exactly as in the HTML
    visible: int  # UTF-16 units after entity parsing (0 for tags)
    char: str = ""  # the decoded character, for text tokens
    tag: str = ""  # tag name, for tags
    closing: bool = False


_TOKEN = re.compile(
    r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)[^>]*>|&(?:#[0-9]+|#x[0-9a-fA-F]+|[a-zA-Z]+);|.", re.S
)


def _tokenize(message_html: str) -> list[_Token]:
    tokens = []
    for match in _TOKEN.finditer(message_html):
        raw = match.group(0)
        if match.group(2):
            tokens.append(_Token(raw, 0, tag=match.group(2).lower(), closing=bool(match.group(1))))
        else:
            char = html.unescape(raw) if raw.startswith("&") else raw
            tokens.append(_Token(raw, utf16_len(char), char=char))
    return tokens


# Break priority after a character: paragraph > line > sentence > word.
_SENTENCE_END = frozenset(".!?。！？;；")


def _break_priority(tokens: Sequence[_Token], i: int) -> int:
    """How good a cut is right after text token ``i`` (0: none)."""
    char = tokens[i].char
    nxt = tokens[i + 1].char if i + 1 < len(tokens) else ""
    prev = tokens[i - 1].char if i > 0 else ""
    if char == "\n" and prev == "\n":
        return 4
    if char == "\n":
        return 3
    if char in "。！？":
        return 2
    if char == " " and prev in _SENTENCE_END:
        return 2
    if char in " \t" or nxt == "\n":
        return 1
    return 0


def split_html(message_html: str, budget: int = DEFAULT_BUDGET) -> list[str]:
    """Cut ``message_html`` into parts of at most ``budget`` visible UTF-16 units each.

    Cuts prefer paragraph, then line, then sentence, then word boundaries, and fall back
    to any character; never inside a tag or an entity. Tags open at a cut are closed at
    the end of the part and reopened (same attributes) at the start of the next one.
    """
    tokens = _tokenize(message_html)
    parts: list[str] = []
    stack: list[_Token] = []  # open tags at ``start``
    start = 0
    while start < len(tokens):
        # Scan forward to find where this part must end at the latest.
        used = 0
        end = start
        best: dict[int, int] = {}  # priority -> token index after which to cut
        while end < len(tokens) and used + tokens[end].visible <= budget:
            used += tokens[end].visible
            if tokens[end].visible:
                priority = _break_priority(tokens, end)
                if priority:
                    best[priority] = end + 1
            end += 1
        if end == start:  # a budget below one character: still make progress
            end = start + 1
        elif end < len(tokens):
            # Take the highest-priority boundary that still fills at least a third of the part.
            floor = start + (end - start) // 3
            for priority in (4, 3, 2, 1):
                if best.get(priority, 0) > floor:
                    end = best[priority]
                    break
        body_stack = list(stack)
        chunk = tokens[start:end]
        for tok in chunk:
            if tok.tag and tok.closing:
                for k in range(len(body_stack) - 1, -1, -1):
                    if body_stack[k].tag == tok.tag:
                        del body_stack[k]
                        break
            elif tok.tag:
                body_stack.append(tok)
        text = "".join(t.raw for t in stack) + "".join(t.raw for t in chunk)
        text += "".join(f"</{t.tag}>" for t in reversed(body_stack))
        if _has_visible_text(stack + chunk):
            parts.append(_trim_edges(text))
        stack = body_stack
        start = end
        # Telegram strips leading whitespace; skip it so the next part starts with content.
        while start < len(tokens) and tokens[start].char.isspace():
            start += 1
    return parts or [message_html]


def _has_visible_text(tokens: Sequence[_Token]) -> bool:
    return any(t.visible and not t.char.isspace() for t in tokens)


def _trim_edges(text: str) -> str:
    # Trailing newlines before the closing tags only add empty lines.
    match = re.search(r"\s+((?:</[a-z-]+>)*)$", text)
    if match:
        return text[: match.start()] + match.group(1)
    return text
