"""Types that answering passes on: retrieved passages (Hit) and cited answers (Answer).

No Telegram types here: the CLI, the bot and the benchmarks all use these.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ingest.sentence_vectors import FloatArray, Span, decode
from ingest.types import IndexedChunk


@dataclass(frozen=True, slots=True)
class Hit:
    """A retrieved passage: the stored chunk (with its document's metadata), scored and ranked.

    It holds the chunk rather than copying its fields; the properties read through to it.
    """

    chunk: IndexedChunk
    score: float  # fused retrieval score, higher is better
    dense_rank: int | None = None  # 1-based rank in the dense list, None if absent
    lexical_rank: int | None = None  # 1-based rank in the BM25 list, None if absent

    @property
    def chunk_id(self) -> str:
        return self.chunk.chunk_id

    @property
    def doc_id(self) -> str:
        return self.chunk.doc_id

    @property
    def text(self) -> str:
        """The stored chunk text, exactly."""
        return self.chunk.text

    @property
    def title(self) -> str:
        return self.chunk.title

    @property
    def path(self) -> str:
        return self.chunk.path

    @property
    def date(self) -> str | None:
        """Publication date, ISO YYYY-MM-DD."""
        return self.chunk.date

    @property
    def url(self) -> str | None:
        return self.chunk.url

    @property
    def page(self) -> int | None:
        return self.chunk.page

    @property
    def start(self) -> int:
        """Offset of the chunk in its document's text."""
        return self.chunk.start

    @property
    def end(self) -> int:
        return self.chunk.end

    @property
    def sentence_vectors(self) -> dict[Span, FloatArray]:
        """The chunk's stored sentence vectors by span in ``text`` ({} if it has none)."""
        return decode(self.chunk.sentence_vectors)


@dataclass(frozen=True, slots=True)
class Citation:
    """``[n]`` in the answer: ``quote`` is an exact substring of ``hit.text``."""

    n: int
    hit: Hit
    quote: str


@dataclass(slots=True)
class Answer:
    text: str  # the answer, with [n] markers; a plain refusal when ``refused``
    citations: list[Citation] = field(default_factory=list)
    refused: bool = False
    nearest: list[Hit] = field(default_factory=list)  # shown when refused
    answerer: str = "extractive"  # "extractive" | "llm" | "llm→extractive" (fallback)
    timings_ms: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # e.g. "removed unsupported figure 12%"
    # What the reader must know about the answer, shown with it everywhere (Telegram too):
    # e.g. a document left out because it addresses a model (bot.untrusted).
    caveats: list[str] = field(default_factory=list)
    question: str = ""  # the standalone question actually answered (follow-ups rewritten)
