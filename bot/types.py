"""Types that answering passes on: retrieved passages (Hit) and cited answers (Answer).

No Telegram types here: the CLI, the bot and the benchmarks all use these.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Hit:
    """A retrieved passage with the metadata needed to cite it."""

    chunk_id: str
    doc_id: str
    text: str  # the stored chunk text, exactly
    score: float  # fused retrieval score, higher is better
    title: str
    path: str
    date: str | None = None  # ISO YYYY-MM-DD
    url: str | None = None
    page: int | None = None
    start: int = 0  # offsets into the document text
    end: int = 0
    dense_rank: int | None = None  # 1-based rank in the dense list, None if absent
    lexical_rank: int | None = None  # 1-based rank in the BM25 list, None if absent


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
    question: str = ""  # the standalone question actually answered (follow-ups rewritten)
