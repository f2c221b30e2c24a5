"""Telegram's HTML parse mode, strictly: what the fake Bot API accepts and how long it is.

Errors mirror the Bot API's "Bad Request: can't parse entities: …" descriptions.
"""

from __future__ import annotations

import html
import re

ALLOWED_TAGS = frozenset(
    {
        "b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler",
        "a", "code", "pre", "blockquote", "tg-emoji",
    }
)  # fmt: skip
_TAG = re.compile(
    r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)((?:\s+[a-zA-Z-]+(?:=\"[^\"<]*\"|='[^'<]*')?)*)\s*>"
)
_ATTR = re.compile(r"([a-zA-Z-]+)(?:=\"([^\"]*)\"|='([^']*)')?")
_ENTITY = re.compile(r"&(#[0-9]{1,7};|#x[0-9a-fA-F]{1,6};|lt;|gt;|amp;|quot;)")
MAX_MESSAGE_LENGTH = 4096


class EntityParseError(ValueError):
    pass


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _offset(text: str, i: int) -> int:
    return len(text[:i].encode("utf-8"))


def _check_attributes(name: str, attrs: str, at: int) -> None:
    found = {m.group(1).lower(): m.group(2) or m.group(3) or "" for m in _ATTR.finditer(attrs)}
    if name == "a" and not found.get("href"):
        raise EntityParseError(f'Can\'t find href in tag "a" at byte offset {at}')
    if name == "span" and found.get("class") != "tg-spoiler":
        raise EntityParseError(f'Tag "span" must have class "tg-spoiler" at byte offset {at}')
    if name == "tg-emoji" and "emoji-id" not in found:
        raise EntityParseError(f'Can\'t find emoji-id in tag "tg-emoji" at byte offset {at}')


def parse_html(text: str) -> str:
    """The plain text Telegram would show for ``text`` in HTML mode; raises on invalid markup."""
    out: list[str] = []
    stack: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "<":
            match = _TAG.match(text, i)
            at = _offset(text, i)
            if match is None:
                raise EntityParseError(f"Unexpected end of name token at byte offset {at}")
            closing, name = bool(match.group(1)), match.group(2).lower()
            if name not in ALLOWED_TAGS:
                kind = "end" if closing else "start"
                raise EntityParseError(f'Unsupported {kind} tag "{name}" at byte offset {at}')
            if closing:
                if not stack:
                    raise EntityParseError(f"Unexpected end tag at byte offset {at}")
                if stack[-1] != name:
                    raise EntityParseError(
                        f'Unmatched end tag at byte offset {at}, expected "</{stack[-1]}>", '
                        f'found "</{name}>"'
                    )
                stack.pop()
            else:
                _check_attributes(name, match.group(3), at)
                if name in ("blockquote", "pre") and name in stack:
                    raise EntityParseError(f'Tag "{name}" can\'t be nested at byte offset {at}')
                stack.append(name)
            i = match.end()
        elif char == "&":
            match = _ENTITY.match(text, i)
            if match is None:
                at = _offset(text, i)
                raise EntityParseError(
                    f"Character '&' is reserved and must be escaped at byte offset {at}"
                )
            out.append(html.unescape(match.group(0)))
            i = match.end()
        else:
            out.append(char)
            i += 1
    if stack:
        raise EntityParseError(f'Can\'t find end tag corresponding to start tag "{stack[-1]}"')
    return "".join(out)
