"""Sentences in a document that address an assistant or a model rather than a reader.

A press release says what a government did; it has no reason to tell "the assistant" to
ignore its instructions, to say that a total is 1 yuan, or that "you are now" someone else.
Such a sentence is an attack on whoever reads the document with a model, so it is data
to flag, never evidence: ``instruction_spans`` finds them (a pure function), ingest reports
them, and the answer paths keep them out of what they quote, compare or send to a model.

The patterns are deliberately narrow (each one names the model, its instructions or its
role), so an ordinary sentence of a briefing — "the port will act as a hub", "answers to
reporters' questions" — is never flagged.
"""

from __future__ import annotations

import re

from ingest.sentences import sentence_spans

_EN = [
    # "Ignore previous instructions", "disregard all prior rules", "forget your system prompt"
    r"\b(?:ignore|disregard|forget|override|bypass)\s+(?:all\s+|any\s+)?(?:of\s+)?"
    r"(?:the\s+|your\s+|my\s+)?(?:previous|prior|above|earlier|preceding|system|original|your)"
    r"\s+(?:\w+\s+)?(?:instructions?|prompts?|rules|guidelines|directives|context)\b",
    r"\b(?:ignore|disregard)\s+(?:all|any)\s+(?:\w+\s+)?(?:instructions|prompts|directives)\b",
    r"\byou\s+are\s+now\b",
    r"\bfrom\s+now\s+on,?\s+you\b",
    r"\bas\s+an?\s+(?:ai|a\.i\.|artificial\s+intelligence|(?:large\s+)?language\s+model|llm|"
    r"ai\s+(?:assistant|model)|chatbot)\b",
    r"\b(?:act|behave|pretend)\s+(?:as|like|to\s+be)\s+(?:an?\s+|the\s+)?"
    r"(?:ai|ai\s+assistant|chatbot|language\s+model|llm|dan)\b",
    r"\b(?:system|developer)\s+prompt\b|\bdeveloper\s+mode\b",
    r"\bnew\s+instructions?\s*:",
    r"\bjailbreak",
    # Addressing the model by name, then telling it what to say
    r"\b(?:assistant|chatbot|ai|llm|gpt|chatgpt|language\s+model)\s*[,:]\s*[^.!?\n]{0,60}?"
    r"\b(?:say|answer|reply|respond|tell|state|output|print)\b",
    # "When asked about the total, answer that …" / "If anyone asks, say …"
    r"\b(?:when|if)\s+(?:you\s+are\s+|anyone\s+|someone\s+)?ask(?:ed|s)\b[^.!?\n]{0,80}?,\s*"
    r"(?:always\s+|just\s+|only\s+)?(?:say|answer|reply|respond|state)\b",
]
_ZH = [
    r"(?:忽略|无视|忽视|不要理会|忘记|忘掉)掉?(?:之前|以上|上述|前面|先前|此前|所有|全部|你的|系统)"
    r"[^。！？\n]{0,8}?(?:指令|指示|提示词?|设定|规则)",
    r"你现在是",
    r"从现在(?:开始|起)[，,]?\s*你(?:是|要|必须|只能)",
    r"作为(?:一个|一名)?(?:AI|ＡＩ|人工智能|语言模型|大模型|AI助手|聊天机器人)",
    r"(?:系统提示词|系统指令|开发者模式)",
    r"(?:扮演|充当)(?:一个)?(?:AI|人工智能|AI助手|语言模型)",
    r"(?:如果|当)(?:有人|你被)问(?:到|起)?[^。！？\n]{0,30}?[，,](?:请|就)?(?:回答|说|回复)",
]
_PATTERN = re.compile("|".join(f"(?:{p})" for p in _EN + _ZH), re.IGNORECASE)


def instruction_spans(text: str) -> list[tuple[int, int]]:
    """``[start, end)`` of each sentence of ``text`` addressed to an assistant or model, in
    order (sentences as ``ingest.sentences`` cuts them, so spans match quoting's)."""
    if not _PATTERN.search(text):  # the common case: one scan, no sentence split
        return []
    return [(s, e) for s, e in sentence_spans(text) if _PATTERN.search(text, s, e)]


def mask_instructions(text: str) -> str:
    """``text`` with each flagged sentence blanked (spaces, newlines kept): every offset
    stays valid, so quotes taken from the rest are still exact substrings of ``text``."""
    spans = instruction_spans(text)
    if not spans:
        return text
    chars = list(text)
    for start, end in spans:
        for i in range(start, end):
            if chars[i] != "\n":
                chars[i] = " "
    return "".join(chars)


def without_instructions(text: str) -> str:
    """``text`` with its flagged sentences removed (the rest kept verbatim, in order)."""
    spans = instruction_spans(text)
    if not spans:
        return text
    kept, at = [], 0
    for start, end in spans:
        kept.append(text[at:start])
        at = end
    kept.append(text[at:])
    return "".join(kept)


def flagged_sentences(text: str) -> list[str]:
    return [text[s:e] for s, e in instruction_spans(text)]
