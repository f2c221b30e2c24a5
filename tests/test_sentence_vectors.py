"""Sentence vectors pooled from a chunk's own pass: encoding, pooling, the real model."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from bot.retrieval import Retriever, with_sentence_vectors
from bot.selector import FEATURES, select
from bot.types import Hit
from ingest.embeddings import LocalEmbeddings
from ingest.pipeline import run_ingest
from ingest.sentence_vectors import FloatArray, decode, encode, lookup, pool_spans
from ingest.sentences import sentence_spans
from ingest.store import open_index
from ingest.types import IndexedChunk
from tests.conftest import make_settings

TEXT = (
    "Qingdao's imports and exports totaled 341.81 billion yuan from January to July. "
    "The city opened two new container berths at its port. "
    "Officials expect the free trade zone to attract more investment."
)


def _unit(rows: np.ndarray) -> FloatArray:
    out: FloatArray = (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)
    return out


def test_encode_decode_round_trip_keeps_cosines() -> None:
    rng = np.random.default_rng(3)
    vectors = _unit(rng.normal(size=(3, 384)))
    spans = [(0, 10), (11, 40), (41, 90)]
    stored = decode(encode(spans, vectors), dim=384)
    assert list(stored) == spans
    for span, v in zip(spans, vectors, strict=True):
        assert float(stored[span] @ v) > 0.999


def test_rows_without_a_vector_are_not_stored() -> None:
    vectors = np.zeros((2, 4), dtype=np.float32)
    vectors[1] = [0.0, 1.0, 0.0, 0.0]
    stored = decode(encode([(0, 5), (6, 9)], vectors))
    assert list(stored) == [(6, 9)]
    assert lookup(stored, [(0, 5), (6, 9)])[0] is None
    assert encode([(0, 5)], np.zeros((1, 4), dtype=np.float32)) is None


@pytest.mark.parametrize("value", [None, "", "sv1:AAAA", "sv2:not base64!", "sv2:AQA=", 7])
def test_unreadable_values_decode_to_nothing(value: object) -> None:
    assert decode(value) == {}


def test_a_value_of_another_dimension_is_ignored() -> None:
    vectors = _unit(np.ones((1, 8)))
    assert decode(encode([(0, 3)], vectors), dim=384) == {}


def test_pool_spans_averages_the_pieces_inside_each_span() -> None:
    hidden = np.asarray([[9, 9], [1, 0], [3, 0], [0, 2], [9, 9]], dtype=np.float32)
    offsets = [(0, 0), (6, 8), (9, 12), (13, 15), (0, 0)]  # [CLS] a b c [SEP], after "Title\n"
    rows = pool_spans(hidden, offsets, [(6, 12), (13, 15), (26, 36)])
    assert np.allclose(rows[0], [1.0, 0.0])  # pieces 1 and 2: mean (2, 0)
    assert np.allclose(rows[1], [0.0, 1.0])
    assert not rows[2].any()  # past the text: no vector


@pytest.fixture(scope="module")
def embedder(model_dir: Path) -> LocalEmbeddings:
    return LocalEmbeddings(model_dir)


def test_span_pass_gives_the_same_chunk_vector(embedder: LocalEmbeddings) -> None:
    spans = sentence_spans(TEXT)
    vectors, per_text = embedder.embed_with_spans([TEXT, "short"], [spans, []])
    assert np.allclose(vectors, embedder.embed_array([TEXT, "short"]), atol=1e-5)
    assert per_text[0].shape == (3, embedder.dim) and per_text[1].shape == (0, embedder.dim)
    assert np.allclose(np.linalg.norm(per_text[0], axis=1), 1.0, atol=1e-5)


def test_sentence_vectors_tell_the_sentences_apart(embedder: LocalEmbeddings) -> None:
    """Pooled in context, each sentence is still closest to the question about it.

    (Sentences of one chunk share its context, so their vectors are closer to each other
    than standalone ones: a question may prefer another sentence of the same chunk; the
    selector weighs this with its other features.)
    """
    _, (rows,) = embedder.embed_with_spans([TEXT], [sentence_spans(TEXT)])
    questions = embedder.embed_array(
        [
            "What was the total value of foreign trade?",
            "How many berths were added at the harbour?",
            "What do officials expect from the free trade zone?",
        ]
    )
    assert list(np.argmax(questions @ rows.T, axis=0)) == [0, 1, 2]


def test_spans_past_the_window_get_no_vector(embedder: LocalEmbeddings) -> None:
    long_text = " ".join(f"Sentence number {i} says little." for i in range(120))
    spans = sentence_spans(long_text)
    _, (rows,) = embedder.embed_with_spans([long_text], [spans])
    assert rows[0].any() and not rows[-1].any()


def _without_vectors(hit: Hit) -> Hit:
    """The hit as an index built before sentence vectors were stored returns it."""
    chunk = dataclasses.replace(hit.chunk, sentence_vectors=None)
    return Hit(chunk, hit.score, hit.dense_rank, hit.lexical_rank)


def test_ingest_stores_them_and_the_selector_reads_them(
    tmp_path: Path, model_dir: Path, embedder: LocalEmbeddings
) -> None:
    """Stored with each chunk, equal to what the selector pools itself; kept on rename."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "qingdao.md").write_text(f"# Qingdao trade\n\n{TEXT}\n", encoding="utf-8")
    settings = make_settings(tmp_path / "data", model_dir, documents_dir=docs)
    run_ingest(settings, embeddings=embedder)
    question = "What was Qingdao's total trade from January to July?"

    def hits() -> list[Hit]:
        return Retriever(open_index(settings, embedder), embedder).search(question, k=3)

    (hit,) = hits()
    stored = hit.sentence_vectors
    assert set(stored) == set(sentence_spans(hit.text))
    # Without stored vectors the selector pools the same ones from a pass over the passage
    # (up to the stored int8 precision).
    with_stored = select(question, [hit], embedder)
    pooled_now = select(question, [_without_vectors(hit)], embedder)
    sim = FEATURES.index("similarity")
    assert [c.start for c in with_stored.candidates] == [c.start for c in pooled_now.candidates]
    for a, b in zip(with_stored.candidates, pooled_now.candidates, strict=True):
        assert abs(a.features[sim] - b.features[sim]) < 0.01
    assert with_stored.best is not None and "341.81" in hit.text[with_stored.best.start :]

    # A hit BM25 found alone comes from its files, without the vectors: fetched for it.
    retriever = Retriever(open_index(settings, embedder), embedder)
    from_bm25 = retriever.lexical_index().chunks[0]
    assert from_bm25.sentence_vectors is None
    (fetched,) = with_sentence_vectors(retriever.store, [Hit(from_bm25, 1.0, None, 1)])
    assert set(fetched.sentence_vectors) == set(stored) and fetched.lexical_rank == 1

    (docs / "qingdao.md").rename(docs / "renamed.md")
    run_ingest(settings, embeddings=embedder)
    (moved,) = hits()
    assert moved.path.endswith("renamed.md") and set(moved.sentence_vectors) == set(stored)


def test_a_chunk_with_stored_vectors_is_not_embedded_again(model_dir: Path) -> None:
    """Stored vectors that miss a sentence (past the model's window at ingest) are used as
    they are: a pass at question time would not reach that sentence either."""

    class Counting(LocalEmbeddings):
        passes = 0

        def embed_with_spans(
            self, texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]] | None
        ) -> tuple[FloatArray, list[FloatArray]]:
            if spans is not None:
                Counting.passes += 1
            return super().embed_with_spans(texts, spans)

    embedder = Counting(model_dir)
    spans = sentence_spans(TEXT)
    _, (rows,) = embedder.embed_with_spans([TEXT], [spans])
    Counting.passes = 0
    partial = encode(spans[:2], rows[:2])  # the third sentence has no stored vector
    chunk = IndexedChunk("c1", "d1", TEXT, "a.txt", "", 0, 0, len(TEXT), sentence_vectors=partial)
    question = "What do officials expect from the free trade zone?"
    with_partial = select(question, [Hit(chunk, 1.0)], embedder)
    assert Counting.passes == 0
    sim = FEATURES.index("similarity")
    third = next(c for c in with_partial.candidates if c.start == spans[2][0])
    assert third.features[sim] == min(c.features[sim] for c in with_partial.candidates)
    select(question, [_without_vectors(Hit(chunk, 1.0))], embedder)
    assert Counting.passes == 1  # no stored vectors at all: one pass over the passage
