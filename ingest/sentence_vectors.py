"""Sentence vectors of a chunk, pooled from the chunk's own forward pass ("late chunking").

Embedding a chunk gives one hidden state per word piece; the mean of the states inside a
sentence's characters, minus most of the chunk's own vector (``decontextualise``), is that
sentence's vector. It costs no second pass through the model, and the answer selector can
score every sentence of the retrieved passages by meaning without embedding any sentence
at question time. On the selector's fit data cut into chunks (``bench/fit_selector.py``),
question-sentence cosine ranks the sentences that hold the answer better with these
vectors than with each sentence embedded on its own (bench/RESULTS.md).

Stored in the chunk's Chroma metadata (``SENTENCE_VECTORS_KEY``) so they travel with the
chunk: written, replaced, renamed and deleted with it, in embedded and server mode alike.
Format ``sv2:`` + base64 of: count (uint16), then per sentence start and end in the chunk
text (uint16 each), a float16 scale and 384 (dim) int8 components (symmetric per-row
quantisation: cosine within ~0.002 of float32).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from ingest.sentences import sentence_spans

if TYPE_CHECKING:
    from ingest.types import Chunk, Document

FloatArray = npt.NDArray[np.float32]
Span = tuple[int, int]

SENTENCE_VECTORS_KEY = "sentence_vectors"
_PREFIX = "sv2:"  # the version of the format below and of CONTEXT_WEIGHT
# Chosen on the answer selector's fit data, cut into chunks, by how well question-sentence
# cosine ranks the sentences that hold the answer (the sweep is in bench/RESULTS.md).
CONTEXT_WEIGHT = 0.7
_MAX_OFFSET = 65535  # uint16: a chunk is 256 word pieces, far below


def embed_text(title: str, text: str) -> str:
    """What is embedded for a chunk: the title gives short chunks their context."""
    return f"{title}\n{text}" if title else text


class TextEmbedder(Protocol):
    def embed_array(self, texts: Sequence[str]) -> FloatArray: ...


@runtime_checkable
class SpanEmbedder(TextEmbedder, Protocol):
    """An embedder that also pools span vectors from a text's own pass (the local model)."""

    def embed_with_spans(
        self, texts: Sequence[str], spans: Sequence[Sequence[Span]] | None
    ) -> tuple[FloatArray, list[FloatArray]]: ...


def decontextualise(rows: FloatArray, chunk_vector: FloatArray) -> FloatArray:
    """Remove most of the chunk's shared context from its sentence vectors, renormalised.

    Pooled in context, a chunk's sentences all lean towards the chunk's topic (pairwise
    cosine ~0.75), which blurs which one a question is about. Subtracting
    ``CONTEXT_WEIGHT`` x the chunk's vector keeps what each sentence adds.
    """
    out = np.zeros_like(rows)
    for i, row in enumerate(rows):
        if row.any():
            v = row - CONTEXT_WEIGHT * chunk_vector
            norm = float(np.linalg.norm(v))
            if norm > 0:
                out[i] = v / norm
    return out


def pooled_sentences(
    embeddings: SpanEmbedder, titled: Sequence[tuple[str, str]], spans: Sequence[Sequence[Span]]
) -> tuple[FloatArray, list[FloatArray]]:
    """Vectors of (title, text) chunks embedded as ingest embeds them, and the
    decontextualised vectors of ``spans`` (offsets in each text) from the same pass."""
    texts = [embed_text(title, text) for title, text in titled]
    shifted: list[list[Span]] = []
    for i, (_, text) in enumerate(titled):
        shift = len(texts[i]) - len(text)  # the title line before the chunk's text
        shifted.append([(s + shift, e + shift) for s, e in spans[i]])
    vectors, pooled = embeddings.embed_with_spans(texts, shifted)
    return vectors, [decontextualise(rows, vectors[i]) for i, rows in enumerate(pooled)]


def embed_chunks(
    embeddings: TextEmbedder, chunks: Sequence[tuple[Document, Chunk]]
) -> tuple[FloatArray, list[dict[str, str]]]:
    """The chunks' vectors and, per chunk, the metadata holding its sentence vectors.

    An embedder without span pooling (an OpenAI-compatible endpoint) gives chunk vectors
    only; the selector then works without similarity for those chunks.
    """
    if not isinstance(embeddings, SpanEmbedder):
        return embeddings.embed_array([embed_text(d.title, c.text) for d, c in chunks]), [
            {} for _ in chunks
        ]
    spans = [sentence_spans(c.text) for _, c in chunks]
    vectors, rows = pooled_sentences(embeddings, [(d.title, c.text) for d, c in chunks], spans)
    extras: list[dict[str, str]] = []
    for i, sentence_rows in enumerate(rows):
        value = encode(spans[i], sentence_rows)
        extras.append({SENTENCE_VECTORS_KEY: value} if value else {})
    return vectors, extras


def pool_spans(
    hidden: FloatArray, offsets: Sequence[tuple[int, int]], spans: Sequence[Span]
) -> FloatArray:
    """L2-normalised mean of the hidden states of the word pieces inside each span.

    ``hidden`` is [tokens, dim] for one sequence, ``offsets`` its word pieces' character
    offsets and ``spans`` character spans, both in the embedded text. A span with no word
    piece (cut off by the 256-piece window) is a row of zeros: no vector.
    """
    out = np.zeros((len(spans), hidden.shape[1]), dtype=np.float32)
    if not spans:
        return out
    starts = np.fromiter((a for a, _ in offsets), dtype=np.int64, count=len(offsets))
    ends = np.fromiter((b for _, b in offsets), dtype=np.int64, count=len(offsets))
    real = ends > starts  # [CLS], [SEP] and padding have empty offsets
    for row, (s, e) in enumerate(spans):
        inside = real & (starts >= s) & (ends <= e)
        if inside.any():
            v = hidden[: len(offsets)][inside].mean(axis=0)
            norm = float(np.linalg.norm(v))
            if norm > 0:
                out[row] = v / norm
    return out


def encode(spans: Sequence[Span], vectors: FloatArray) -> str | None:
    """The metadata value for a chunk's sentence vectors (rows of zeros are left out)."""
    keep = [i for i, (s, e) in enumerate(spans) if 0 <= s < e <= _MAX_OFFSET and np.any(vectors[i])]
    if not keep:
        return None
    rows = vectors[keep].astype(np.float32)
    scale = np.maximum(np.abs(rows).max(axis=1), 1e-12) / 127.0
    q = np.clip(np.rint(rows / scale[:, None]), -127, 127).astype(np.int8)
    body = (
        np.asarray([len(keep)], dtype="<u2").tobytes()
        + np.asarray([spans[i] for i in keep], dtype="<u2").tobytes()
        + scale.astype("<f2").tobytes()
        + q.tobytes()
    )
    return _PREFIX + base64.b64encode(body).decode("ascii")


def decode(value: object, dim: int | None = None) -> dict[Span, FloatArray]:
    """Span → unit vector, from a metadata value; {} for a missing or unreadable value.

    Unreadable means written by another format version or cut short: the selector then
    computes what it needs itself, so this never raises.
    """
    if not isinstance(value, str) or not value.startswith(_PREFIX):
        return {}
    try:
        raw = base64.b64decode(value[len(_PREFIX) :], validate=True)
        n = int(np.frombuffer(raw, dtype="<u2", count=1)[0])
        at = 2
        spans = np.frombuffer(raw, dtype="<u2", count=2 * n, offset=at).reshape(n, 2)
        at += 4 * n
        scale = np.frombuffer(raw, dtype="<f2", count=n, offset=at).astype(np.float32)
        at += 2 * n
        width = (len(raw) - at) // n if n else 0
        if n == 0 or width <= 0 or at + n * width != len(raw) or (dim and width != dim):
            return {}
        q = np.frombuffer(raw, dtype=np.int8, count=n * width, offset=at).reshape(n, width)
    except (ValueError, IndexError):
        return {}
    rows = q.astype(np.float32) * scale[:, None]
    norms = np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)
    rows = rows / norms
    return {(int(s), int(e)): rows[i] for i, (s, e) in enumerate(spans)}


def lookup(stored: Mapping[Span, FloatArray], spans: Sequence[Span]) -> list[FloatArray | None]:
    """The stored vector of each span, None where the chunk stored none for it."""
    return [stored.get(span) for span in spans]
