"""The LLM answer path: an OpenAI-compatible chat model writes a cited answer from the passages.

The reply is never trusted as is: ``bot.citations.postprocess`` removes citations of no
passage, uncited sentences and figures no cited passage states, and picks verbatim quotes.
Every failure (timeout, HTTP error, refused connection, empty or malformed reply, no valid
citation left) raises ``LLMError``: the answering service then answers extractively.

Document text is data, never instructions: a passage's sentences addressed to an assistant
or model (``ingest.hostile``: "ignore previous instructions", "you are now …") are blanked
before the passages go to the model, and no quote is taken from them.
"""

from __future__ import annotations

import html
import re
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any
from urllib.parse import urlparse

import httpx
import openai
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from langchain_openai import ChatOpenAI
from pydantic import SecretStr

from bot.citations import OFF_QUESTION_NOTE, nearest_documents, postprocess
from bot.extractive import REFUSAL_TEXT as REFUSAL_TEXT  # same wording for both answerers
from bot.prompts import REFUSAL_TOKEN, Prompts, load_prompts, render_answer, render_condense
from bot.types import Answer, Hit
from ingest.hostile import mask_instructions

# Local servers (llama.cpp, vLLM, Ollama) do not check the key, but the openai SDK refuses to
# build a client without one; this placeholder is sent instead of a real secret.
PLACEHOLDER_API_KEY = "sk-no-key-required"

_THINK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_CONDENSE_PREFIX = re.compile(r"^\s*(?:standalone question|question)\s*:\s*", re.IGNORECASE)

# What a broken endpoint can raise through langchain-openai: SDK errors (timeouts, refused
# connections, HTTP status errors), transport errors, and malformed bodies that fail to parse.
_CALL_ERRORS = (openai.OpenAIError, httpx.HTTPError, ValueError, KeyError, TypeError)


class LLMError(Exception):
    """The LLM could not give a usable answer; the caller falls back."""


def is_openai_host(base_url: str | None) -> bool:
    return base_url is None or (urlparse(base_url).hostname or "").endswith("api.openai.com")


def token_limit_kwargs(base_url: str | None, max_tokens: int) -> dict[str, Any]:
    """ChatOpenAI arguments that cap the reply at ``max_tokens`` on this kind of endpoint.

    langchain-openai turns ``max_tokens`` into ``max_completion_tokens``, which llama.cpp and
    older vLLM servers ignore (the reply is then unbounded). api.openai.com, on the other hand,
    rejects a request carrying both fields ("Setting 'max_tokens' and 'max_completion_tokens'
    at the same time is not supported"). So exactly one is sent: ``max_completion_tokens`` to
    OpenAI itself, the long-standing ``max_tokens`` (via ``extra_body``) to any other server.
    """
    if is_openai_host(base_url):
        return {"max_tokens": max_tokens}
    return {"extra_body": {"max_tokens": max_tokens}}


def _reply_text(message: BaseMessage) -> str:
    content = message.content
    if isinstance(content, str):
        text = content
    else:  # a list of content blocks
        text = "".join(
            part if isinstance(part, str) else str(part.get("text", ""))
            for part in content
            if isinstance(part, str) or part.get("type") == "text"
        )
    # Reasoning models served locally often prefix their reply with a <think> block.
    return _THINK.sub("", text).strip()


def _masked(hit: Hit) -> Hit:
    """``hit`` with its sentences addressed to a model blanked (offsets kept)."""
    text = mask_instructions(hit.chunk.text)
    if text == hit.chunk.text:
        return hit
    return replace(hit, chunk=replace(hit.chunk, text=text))


def _with_hits(answer: Answer, safe: Sequence[Hit], hits: Sequence[Hit]) -> Answer:
    """The answer pointing at the caller's hits again (a quote from the blanked text is a
    substring of the original: blanking keeps every offset)."""
    back = {id(s): h for s, h in zip(safe, hits, strict=True)}
    answer.citations = [replace(c, hit=back.get(id(c.hit), c.hit)) for c in answer.citations]
    answer.nearest = [back.get(id(h), h) for h in answer.nearest]
    return answer


def _is_refusal(reply: str) -> bool:
    return reply.strip(" \t\n`*\"'.").startswith(REFUSAL_TOKEN)


class LLMAnswerer:
    def __init__(
        self,
        *,
        model: str,
        base_url: str | None,
        api_key: str | None,
        timeout_s: float,
        max_tokens: int,
        prompts: Prompts | None = None,
    ) -> None:
        self.model = model
        self.prompts = prompts or load_prompts()
        self.chat = ChatOpenAI(
            model=model,
            base_url=base_url,
            api_key=SecretStr(api_key or PLACEHOLDER_API_KEY),
            timeout=timeout_s,
            # One attempt: a retry would double LLM_TIMEOUT_S against a hanging endpoint,
            # and the answer falls back to the extractive one anyway (issue 9, bug 7).
            max_retries=0,
            temperature=0,
            **token_limit_kwargs(base_url, max_tokens),
        )

    def _call(self, system: str, user: str) -> str:
        messages: list[BaseMessage] = [SystemMessage(system), HumanMessage(user)]
        try:
            reply = self.chat.invoke(messages)
        except _CALL_ERRORS as err:
            raise LLMError(f"{type(err).__name__}: {err}") from err
        text = _reply_text(reply)
        if not text:
            raise LLMError("empty reply")
        return text

    def answer(self, question: str, hits: list[Hit]) -> Answer:
        """A cited answer from ``hits``; raises LLMError when the LLM gives nothing usable."""
        if not hits:
            return Answer(text=REFUSAL_TEXT, refused=True, answerer="llm")
        started = time.perf_counter()
        safe = [_masked(h) for h in hits]
        reply = self._call(*render_answer(self.prompts, question, safe))
        answer = self._to_answer(reply, safe, (time.perf_counter() - started) * 1000, question)
        return _with_hits(answer, safe, hits)

    def _to_answer(
        self, reply: str, hits: Sequence[Hit], llm_ms: float, question: str = ""
    ) -> Answer:
        timings = {"llm_ms": llm_ms}

        def refusal(notes: list[str]) -> Answer:
            return Answer(
                text=REFUSAL_TEXT,
                refused=True,
                nearest=nearest_documents(hits),
                answerer="llm",
                timings_ms=timings,
                notes=notes,
            )

        if _is_refusal(reply):
            return refusal([])
        answer = postprocess(reply.replace(REFUSAL_TOKEN, ""), hits, question)
        if not answer.citations:
            # A refusal wrapped in prose, or an answer to another period/entity/office.
            off_question = any(n.startswith(OFF_QUESTION_NOTE) for n in answer.notes)
            if REFUSAL_TOKEN in reply or off_question:
                return refusal(answer.notes)
            raise LLMError("no valid citation: " + "; ".join(answer.notes[:3]))
        answer.timings_ms = timings
        return answer

    def condense(self, question: str, history: list[str]) -> str:
        """Rewrite a follow-up into a standalone question; raises LLMError on failure."""
        if not history:
            return question
        return self._clean_condensed(self._call(*render_condense(self.prompts, question, history)))

    @staticmethod
    def _clean_condensed(reply: str) -> str:
        lines = [ln for ln in reply.splitlines() if ln.strip()]
        # Skip a preamble line such as "Here is the standalone question:".
        line = next((ln for ln in lines if not ln.rstrip().endswith(":")), "")
        # The question went in escaped (&amp; &lt;) and may come back that way.
        text = html.unescape(_CONDENSE_PREFIX.sub("", line)).strip().strip("\"'“”`").strip()
        text = re.sub(r"</?question>", "", text).strip()
        if not text:
            raise LLMError("empty standalone question")
        return text
