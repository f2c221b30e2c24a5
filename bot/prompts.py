"""Prompt templates, kept as text files in ``prompts/`` and checked when they are loaded.

A prompt file has two sections, each introduced by a marker line::

    === system ===
    ...instructions...
    === user ===
    ...message with {placeholders}...

Placeholders use ``str.format`` syntax; literal braces are written ``{{`` and ``}}``. Every
prompt declares the placeholders it needs (``REQUIRED``): a missing, unknown, positional or
formatted placeholder raises ``PromptError`` at load time, so a broken edit of a prompt file
fails at start-up instead of at the first question.

Passages and questions enter the prompt as escaped, delimited data (``format_passages``): a
passage cannot close its ``<passage>`` tag or open a new one, so text inside a document can
never pose as the prompt's own structure.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from bot.types import Hit

PROMPTS_DIR = Path(__file__).resolve().parents[1] / "prompts"

# The exact reply the answer prompt asks for when the passages do not answer the question.
REFUSAL_TOKEN = "NOT_IN_DOCUMENTS"

# name -> placeholders the prompt must use (and the only ones it may use).
REQUIRED: Mapping[str, frozenset[str]] = {
    "answer": frozenset({"question", "passages"}),
    "condense": frozenset({"history", "question"}),
}

_SECTION = re.compile(r"^=== (system|user) ===[ \t]*$", re.MULTILINE)


class PromptError(ValueError):
    """A prompt file is missing, malformed, or its placeholders do not match ``REQUIRED``."""


@dataclass(frozen=True, slots=True)
class ChatPrompt:
    """A system message and a user message template with named placeholders."""

    name: str
    system: str
    user: str
    variables: frozenset[str]

    def render(self, **values: str) -> tuple[str, str]:
        """Return (system, user) with the placeholders filled; values are inserted as is."""
        if set(values) != self.variables:
            raise PromptError(
                f"prompt {self.name!r} takes {sorted(self.variables)}, got {sorted(values)}"
            )
        # str.format never re-parses inserted values, so braces in a passage are harmless.
        return self.system.format_map(values), self.user.format_map(values)


@dataclass(frozen=True, slots=True)
class Prompts:
    answer: ChatPrompt
    condense: ChatPrompt


def _placeholders(name: str, section: str, text: str) -> set[str]:
    """Named placeholders of ``text``; anything but a bare ``{name}`` is an error."""
    found: set[str] = set()
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as err:  # e.g. a single "{" or "}" that should have been doubled
        raise PromptError(
            f"prompt {name!r} ({section}): {err}; write literal braces as {{{{ and }}}}"
        ) from err
    for _literal, field, spec, conversion in parsed:
        if field is None:
            continue
        if not field.isidentifier():
            raise PromptError(
                f"prompt {name!r} ({section}): placeholder {{{field}}} must be a plain name"
            )
        if spec or conversion:
            raise PromptError(
                f"prompt {name!r} ({section}): placeholder {{{field}}} may not carry "
                "a format spec or conversion"
            )
        found.add(field)
    return found


def parse_prompt(name: str, text: str, required: frozenset[str]) -> ChatPrompt:
    """Split ``text`` into its sections and check its placeholders against ``required``."""
    parts = _SECTION.split(text)
    # parts = [before, "system", body, "user", body]
    if len(parts) != 5 or parts[1] != "system" or parts[3] != "user" or parts[0].strip():
        raise PromptError(
            f"prompt {name!r} must consist of a '=== system ===' section "
            "followed by a '=== user ===' section"
        )
    system, user = parts[2].strip("\n"), parts[4].strip("\n")
    if not system.strip() or not user.strip():
        raise PromptError(f"prompt {name!r} has an empty section")
    found = _placeholders(name, "system", system) | _placeholders(name, "user", user)
    missing, unknown = required - found, found - required
    if missing or unknown:
        problems = []
        if missing:
            problems.append(f"missing {', '.join('{' + v + '}' for v in sorted(missing))}")
        if unknown:
            problems.append(f"unknown {', '.join('{' + v + '}' for v in sorted(unknown))}")
        raise PromptError(f"prompt {name!r}: {'; '.join(problems)}")
    return ChatPrompt(name=name, system=system, user=user, variables=required)


def load_prompts(directory: Path | None = None) -> Prompts:
    """Load and check every prompt; cached, so files are read once per directory."""
    return _load((directory or PROMPTS_DIR).resolve())


@lru_cache(maxsize=8)
def _load(directory: Path) -> Prompts:
    loaded: dict[str, ChatPrompt] = {}
    for name, required in REQUIRED.items():
        path = directory / f"{name}.txt"
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as err:
            raise PromptError(f"cannot read prompt {name!r} at {path}: {err}") from err
        loaded[name] = parse_prompt(name, text, required)
    answer = loaded["answer"]
    if REFUSAL_TOKEN not in answer.system + answer.user:
        # The answerer recognises refusals by this token; a prompt without it cannot refuse.
        raise PromptError(f"prompt 'answer' must tell the model to reply {REFUSAL_TOKEN}")
    return Prompts(answer=answer, condense=loaded["condense"])


def escape_data(text: str) -> str:
    """Escape text placed inside a tag so it cannot open or close tags of the prompt."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _attribute(text: str) -> str:
    return escape_data(" ".join(text.split())).replace('"', "&quot;")


def format_passages(hits: Sequence[Hit]) -> str:
    """Number the passages 1..len(hits), in order, as delimited and escaped data."""
    blocks = []
    for n, hit in enumerate(hits, start=1):
        attributes = f'n="{n}" title="{_attribute(hit.title)}"'
        if hit.date:
            attributes += f' date="{_attribute(hit.date)}"'
        if hit.page is not None:
            attributes += f' page="{hit.page}"'
        blocks.append(f"<passage {attributes}>\n{escape_data(hit.text.strip())}\n</passage>")
    return "\n".join(blocks)


def format_history(history: Sequence[str]) -> str:
    return "\n".join(f"{i}. {escape_data(' '.join(q.split()))}" for i, q in enumerate(history, 1))


def render_answer(prompts: Prompts, question: str, hits: Sequence[Hit]) -> tuple[str, str]:
    return prompts.answer.render(
        question=escape_data(question.strip()), passages=format_passages(hits)
    )


def render_condense(prompts: Prompts, question: str, history: Sequence[str]) -> tuple[str, str]:
    return prompts.condense.render(
        question=escape_data(question.strip()), history=format_history(history) or "(none)"
    )
