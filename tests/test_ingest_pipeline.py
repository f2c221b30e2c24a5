"""Incremental ingest against real embedded Chroma and the real local model."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from ingest.chunking import SPECIAL_TOKENS, embed_text
from ingest.embeddings import LocalEmbeddings
from ingest.lock import ingest_lock
from ingest.manifest import Manifest
from ingest.pipeline import IngestLocked, run_ingest
from ingest.store import IndexMismatch, open_index
from ingest.types import Outcome
from tests.conftest import make_settings

DOC_A = """---
title: Harbour city trade note
date: 2021-03-02
---
The harbour city reported steady growth in container traffic during the first quarter.
Officials said new rail links to inland provinces shortened delivery times by two days.
"""
DOC_B = """Provincial energy briefing

Wind capacity in the coastal province reached 12.4 gigawatts at the end of June.
The briefing attributes the increase to three offshore farms connected in spring.
"""
DOC_C = """Water policy update

A reservoir upgrade will add 80 million cubic metres of storage by 2027.
"""


def outcomes(report: object) -> dict[str, str]:
    return {Path(r.path).name: r.outcome.value for r in report.results}  # type: ignore[attr-defined]


@pytest.fixture
def embeddings(model_dir: Path) -> LocalEmbeddings:
    return LocalEmbeddings(model_dir)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text(DOC_A)
    (docs / "b.txt").write_text(DOC_B)
    return docs


def index_state(settings: object, embeddings: LocalEmbeddings) -> dict[str, tuple[str, str]]:
    store = open_index(settings, embeddings)  # type: ignore[arg-type]
    return {c.chunk_id: (c.path, c.text) for c in store.all_chunks()}


def test_lifecycle_add_unchanged_update_rename_duplicate_remove(
    tmp_path: Path, model_dir: Path, folder: Path, embeddings: LocalEmbeddings
) -> None:
    settings = make_settings(tmp_path / "data", model_dir, documents_dir=folder)

    first = run_ingest(settings, embeddings=embeddings)
    assert outcomes(first) == {"a.md": "added", "b.txt": "added"}
    assert first.embedded_chunks >= 2
    state = index_state(settings, embeddings)
    assert {Path(p).name for p, _ in state.values()} == {"a.md", "b.txt"}

    again = run_ingest(settings, embeddings=embeddings)
    assert set(outcomes(again).values()) == {"unchanged"}
    assert again.embedded_chunks == 0
    assert index_state(settings, embeddings) == state

    # Touched but identical: still no embedding.
    os.utime(folder / "a.md", None)
    assert run_ingest(settings, embeddings=embeddings).embedded_chunks == 0

    (folder / "b.txt").write_text(DOC_B.replace("12.4", "13.1"))
    (folder / "a.md").rename(folder / "a-renamed.md")
    shutil.copy(folder / "a-renamed.md", folder / "a-copy.md")
    (folder / "c.txt").write_text(DOC_C)
    changed = run_ingest(settings, embeddings=embeddings)
    got = outcomes(changed)
    assert got["b.txt"] == "updated"
    assert got["c.txt"] == "added"
    assert {got["a-renamed.md"], got["a-copy.md"]} == {"renamed", "added"}
    assert "a.md" not in got  # a rename is not reported as a removal
    state = index_state(settings, embeddings)
    texts = " ".join(t for _, t in state.values())
    assert "13.1 gigawatts" in texts
    assert "12.4 gigawatts" not in texts
    # The copy is indexed once: one set of chunks for the harbour note.
    harbour = [cid for cid, (_, t) in state.items() if "container traffic" in t]
    assert len(harbour) == 1
    assert Path(state[harbour[0]][0]).name in {"a-renamed.md", "a-copy.md"}

    # Remove the file the chunks point at: the document stays (the copy remains) and its
    # chunks are re-pointed at the surviving file without re-embedding.
    pointed = Path(state[harbour[0]][0]).name
    (folder / pointed).unlink()
    survivor = ({"a-renamed.md", "a-copy.md"} - {pointed}).pop()
    moved = run_ingest(settings, embeddings=embeddings)
    assert outcomes(moved)[pointed] == "removed"
    assert moved.embedded_chunks == 0
    state = index_state(settings, embeddings)
    assert Path(state[harbour[0]][0]).name == survivor

    (folder / survivor).unlink()
    (folder / "c.txt").unlink()
    gone = run_ingest(settings, embeddings=embeddings)
    assert outcomes(gone)[survivor] == "removed"
    assert outcomes(gone)["c.txt"] == "removed"
    state = index_state(settings, embeddings)
    assert {Path(p).name for p, _ in state.values()} == {"b.txt"}


def test_chunks_are_exact_slices_within_the_model_window(
    tmp_path: Path, model_dir: Path, embeddings: LocalEmbeddings
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    sentences = [
        f"Sentence {i} of the long briefing notes that district {i} raised output "
        f"by {i}.{i} percent."
        for i in range(200)
    ]
    (docs / "long.txt").write_text("Long briefing\n\n" + " ".join(sentences))
    settings = make_settings(tmp_path / "data", model_dir, documents_dir=docs)
    run_ingest(settings, embeddings=embeddings)
    manifest = Manifest(settings.manifest_path)
    (doc,) = manifest.docs()
    text = manifest.doc_text(doc.doc_id)
    assert text is not None
    chunks = open_index(settings, embeddings).all_chunks()
    assert len(chunks) > 5
    for chunk in chunks:
        assert text[chunk.start : chunk.end] == chunk.text
        cost = embeddings.count_tokens(embed_text(chunk.title, chunk.text))
        assert cost <= settings.chunk_tokens, cost
        # Splits fall on sentence boundaries, not mid-word.
        assert chunk.text.endswith(".") or chunk.end == len(text)
    assert SPECIAL_TOKENS == 2


def test_dry_run_writes_nothing(
    tmp_path: Path, model_dir: Path, folder: Path, embeddings: LocalEmbeddings
) -> None:
    settings = make_settings(tmp_path / "data", model_dir, documents_dir=folder)
    report = run_ingest(settings, dry_run=True, embeddings=embeddings)
    assert outcomes(report) == {"a.md": "added", "b.txt": "added"}
    assert open_index(settings, embeddings).count() == 0
    assert run_ingest(settings, embeddings=embeddings).count(Outcome.ADDED) == 2


def test_second_concurrent_ingest_is_refused(tmp_path: Path, model_dir: Path, folder: Path) -> None:
    settings = make_settings(tmp_path / "data", model_dir, documents_dir=folder)
    with ingest_lock(settings.data_dir), pytest.raises(IngestLocked, match="another ingest"):
        run_ingest(settings)


class OtherModel(LocalEmbeddings):
    """The same network under another name: what a switch of EMBEDDING_MODEL looks like."""

    def __init__(self, model_dir: Path) -> None:
        super().__init__(model_dir)
        self.name = "some-other-model"


def test_index_built_by_another_model_is_refused_until_rebuild(
    tmp_path: Path, model_dir: Path, folder: Path, embeddings: LocalEmbeddings
) -> None:
    settings = make_settings(tmp_path / "data", model_dir, documents_dir=folder)
    run_ingest(settings, embeddings=embeddings)
    other = OtherModel(model_dir)
    with pytest.raises(IndexMismatch, match="--rebuild"):
        run_ingest(settings, embeddings=other)
    with pytest.raises(IndexMismatch):
        open_index(settings, other)
    rebuilt = run_ingest(settings, rebuild=True, embeddings=other)
    assert rebuilt.count(Outcome.ADDED) == 2
    assert open_index(settings, other).count() > 0


def test_chroma_server_mode(
    tmp_path: Path,
    model_dir: Path,
    folder: Path,
    embeddings: LocalEmbeddings,
    chroma_server: tuple[str, int],
) -> None:
    host, port = chroma_server
    settings = make_settings(
        tmp_path / "data",
        model_dir,
        documents_dir=folder,
        chroma_host=host,
        chroma_port=port,
        chroma_collection="server-mode-test",
    )
    report = run_ingest(settings, embeddings=embeddings)
    assert report.count(Outcome.ADDED) == 2
    assert not (tmp_path / "data" / "chroma").exists()  # nothing embedded on disk
    store = open_index(settings, embeddings)
    found = store.dense_search(embeddings.embed_query("wind capacity gigawatts"), k=1)
    assert "12.4 gigawatts" in found[0][0].text
    (folder / "b.txt").unlink()
    assert outcomes(run_ingest(settings, embeddings=embeddings))["b.txt"] == "removed"
    assert all("gigawatts" not in c.text for c in open_index(settings, embeddings).all_chunks())
