"""The answering service: index → retrieval → cited answer. Used by the CLI, the bot, benches.

Synchronous and CPU-bound (embedding, BM25, sentence scoring): async callers run it in a
thread. No Telegram types here.

A one-shot `briefing ask` builds one of these and answers once, so what an extractive
answer does not use is imported on first use: the LLM client (LangChain's OpenAI chat
model and ``openai``, ~1.4 s of imports) only when ANSWERER=llm, and the admin's view of
the index (which imports the ingest pipeline and its loaders) on first ``index`` access.
"""

from __future__ import annotations

import logging
import time
from datetime import date
from functools import cached_property
from typing import TYPE_CHECKING

from bot.extractive import extractive_answer
from bot.followup import condense_offline
from bot.history import History
from bot.retrieval import Retriever
from bot.settings import Settings
from bot.types import Answer, Hit
from bot.untrusted import set_aside, set_aside_note
from ingest.embeddings import IndexEmbeddings, LocalEmbeddings, make_embeddings
from ingest.errors import BriefingError, IndexUnavailable
from ingest.lexical_store import LexicalFiles
from ingest.redact import scrub
from ingest.store import IndexStore, open_index

if TYPE_CHECKING:
    from bot.index_info import IndexInfo
    from bot.llm import LLMAnswerer, LLMError

log = logging.getLogger(__name__)


class AnswerService:
    def __init__(
        self,
        settings: Settings,
        *,
        embeddings: IndexEmbeddings | None = None,
        store: IndexStore | None = None,
        llm: LLMAnswerer | None = None,
    ) -> None:
        self.settings = settings
        lexical_files = LexicalFiles(settings.data_dir)
        # The BM25 files are read on a thread while the model and Chroma load (the first
        # answer of a one-shot ask needs all three).
        lexical_files.preload()
        self.embeddings = embeddings or make_embeddings(settings)
        self.store = store or open_index(settings, self.embeddings)
        self.retriever = Retriever(self.store, self.embeddings, lexical_files=lexical_files)
        self.llm = llm
        if self.llm is None and settings.answerer == "llm":
            from bot.llm import LLMAnswerer

            key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
            self.llm = LLMAnswerer(
                model=settings.llm_model,
                base_url=settings.openai_base_url,
                api_key=key,
                timeout_s=settings.llm_timeout_s,
                max_tokens=settings.llm_max_tokens,
            )
        self.history = History(turns=settings.history_turns, ttl_s=settings.history_ttl_s)

    @cached_property
    def index(self) -> IndexInfo:
        """/status, /docs and /ingest: the same index and loaded model, read for the admin."""
        from bot.index_info import IndexInfo

        return IndexInfo(self.settings, self.store, self.embeddings, self.answerer_name)

    @classmethod
    def from_settings(cls, settings: Settings) -> AnswerService:
        return cls(settings)

    @property
    def answerer_name(self) -> str:
        return f"llm ({self.settings.llm_model})" if self.llm else "extractive"

    def warm_up(self) -> None:
        """Build the lexical index and load the model now rather than on the first question."""
        self.retriever.search("warm up", k=1)

    # -- answering ------------------------------------------------------------------------

    def _standalone(
        self, question: str, history: list[str], timings: dict[str, float]
    ) -> tuple[str, LLMError | None]:
        """The question made standalone, and the LLM's failure if condensing it failed."""
        if not history:
            return question, None
        started = time.perf_counter()
        standalone = condense_offline(question, history)
        failed: LLMError | None = None
        if self.llm is not None:
            from bot.llm import LLMError

            try:
                standalone = self.llm.condense(question, history)
            except LLMError as err:
                log.warning("LLM condense failed, using offline follow-up: %s", err)
                failed = err
        timings["condense_ms"] = (time.perf_counter() - started) * 1000
        return standalone, failed

    def answer(
        self, question: str, *, conversation: str | None = None, today: date | None = None
    ) -> Answer:
        """A cited answer. Raises only the project's own errors (IndexUnavailable when the
        index cannot be searched); an LLM failure falls back to the extractive answer."""
        started = time.perf_counter()
        timings: dict[str, float] = {}
        notes: list[str] = []
        limit = self.settings.max_question_chars
        if len(question) > limit:  # every entry point, not only Telegram
            question = question[:limit]
            notes.append(f"question cut to its first {limit} characters (MAX_QUESTION_CHARS)")
        history = self.history.get(conversation)
        standalone, llm_failed = self._standalone(question, history, timings)
        try:
            retrieval = self.retriever.search_with_timings(
                standalone, k=self.settings.top_k, today=today
            )
        except BriefingError:
            raise
        except Exception as err:  # Chroma (or the embedding endpoint) gone: no raw httpx here
            raise IndexUnavailable(
                f"could not search the index: {type(err).__name__}: {err}"
            ) from err
        timings.update(retrieval.timings_ms)
        # A document that addresses a model is not evidence (bot.untrusted): set aside.
        hits, aside = set_aside(retrieval.hits)
        aside_note = set_aside_note(aside)
        answer_started = time.perf_counter()
        answer: Answer | None = None
        if self.llm is not None and hits and llm_failed is None:
            from bot.llm import LLMError

            try:
                answer = self.llm.answer(standalone, hits)
            except LLMError as err:
                log.warning("LLM answer failed, falling back to the extractive answer: %s", err)
                llm_failed = err
        if answer is None:
            answer = self._extractive(standalone, hits, retrieval.query_vector)
            # After a failed condense the LLM is not asked again: LLM_TIMEOUT_S bounds the
            # whole answer step, not each call.
            if self.llm is not None and hits and llm_failed is not None:
                answer.answerer = "llm→extractive"
                reason = scrub(str(llm_failed))
                answer.notes.append(f"LLM unavailable ({reason}); answered extractively")
        answer.notes[:0] = notes
        if aside_note is not None:
            answer.caveats.append(aside_note)
        timings["answer_ms"] = (time.perf_counter() - answer_started) * 1000
        timings["total_ms"] = (time.perf_counter() - started) * 1000
        answer.timings_ms = {**timings, **answer.timings_ms}
        answer.question = standalone
        self.history.add(conversation, standalone)
        return answer

    def _extractive(
        self, question: str, hits: list[Hit], question_vector: list[float] | None
    ) -> Answer:
        # The selector's similarity features use the local model retrieval already loaded
        # (and the question vector it computed); a remote embedding endpoint's vectors are
        # not the ones ingest pooled sentences from, so not that one.
        local = self.embeddings if isinstance(self.embeddings, LocalEmbeddings) else None
        return extractive_answer(
            question,
            hits,
            embedder=local,
            min_evidence=self.settings.refusal_threshold,
            question_vector=question_vector if local is not None else None,
        )

    def forget(self, conversation: str) -> None:
        self.history.forget(conversation)
