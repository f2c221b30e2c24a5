"""Chunking of text that repeats itself: real offsets, one id per chunk (issue 9, bug 1)."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import pytest

from ingest.chunking import chunk_document
from ingest.embeddings import LocalEmbeddings
from ingest.loaders import parse_document

RELEASE = "Qingdao trade was 341.81 billion yuan. Exports rose 5 percent. " * 3


@pytest.fixture(scope="module")
def embeddings(model_dir: Path) -> LocalEmbeddings:
    return LocalEmbeddings(model_dir)


@pytest.mark.parametrize(
    "text",
    [
        RELEASE * 40,  # the repro: one sentence group pasted 40 times
        ("Harbour report\n\n" + RELEASE * 10 + "\n\n") * 3,  # a whole release pasted thrice
        "\n\n".join(["Same paragraph, same figures: 12.4 gigawatts."] * 60),  # tiny repeats
    ],
    ids=["sentences", "release", "paragraphs"],
)
def test_repeated_text_gets_real_increasing_offsets_and_unique_ids(
    text: str, embeddings: LocalEmbeddings
) -> None:
    doc = parse_document(Path("rep.txt"), text.encode(), "d" * 32, display_path="rep.txt")
    chunks = chunk_document(doc, count_tokens=embeddings.count_tokens)
    assert len(chunks) > 2
    ids = [c.chunk_id for c in chunks]
    assert len(set(ids)) == len(ids)
    for before, after in pairwise(chunks):
        assert after.start > before.start  # chunks advance through the text
        assert after.start <= before.end + 2  # and leave no gap but whitespace
    for chunk in chunks:
        assert doc.text[chunk.start : chunk.end] == chunk.text
    # The last chunk reaches the end of the text: nothing is dropped.
    assert chunks[-1].end == len(doc.text.rstrip())
