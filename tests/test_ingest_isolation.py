"""A failed write stays with its own file, and the journal never keeps what would stop a
later run (issue 9, bug 1); the repair count says what was really removed."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ingest.embeddings import FloatArray, LocalEmbeddings
from ingest.manifest import Manifest
from ingest.pipeline import run_ingest
from ingest.repair import repair
from ingest.store import open_index
from ingest.types import Outcome
from tests.conftest import make_settings
from tests.test_ingest_crash import check_consistent, write_corpus


class RejectingEmbeddings(LocalEmbeddings):
    """The real local model, with a fault injected: texts holding ``poison`` are refused, as an
    embedding endpoint refuses an input it cannot take."""

    poison = "POISON"

    def embed_with_spans(
        self, texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]] | None
    ) -> tuple[FloatArray, list[FloatArray]]:
        # What ingest calls (chunk and sentence vectors from one pass); embed_array too.
        if any(self.poison in t for t in texts):
            raise ValueError("input rejected by the embedding endpoint")
        return super().embed_with_spans(texts, spans)


def test_one_failing_document_fails_alone_and_the_next_run_recovers(
    tmp_path: Path, model_dir: Path
) -> None:
    docs = tmp_path / "docs"
    write_corpus(docs, 12, version=1)
    (docs / "bad.txt").write_text("Bad note\n\nThis POISON paragraph cannot be embedded.\n")
    # One write group holds every file (64 chunks per batch): the old pipeline failed them all.
    settings = make_settings(tmp_path / "data", model_dir, documents_dir=docs)
    rejecting = RejectingEmbeddings(model_dir)
    report = run_ingest(settings, embeddings=rejecting)
    assert [r.path for r in report.failures] == ["bad.txt"]
    assert "rejected" in (report.failures[0].reason or "")
    assert report.count(Outcome.ADDED) == 12
    manifest = Manifest(settings.manifest_path)
    try:
        assert manifest.pending() == {}  # nothing left for a later run to trip on
    finally:
        manifest.close()
    check_consistent(settings, rejecting)

    # Later runs: the same failure again, and nothing else; once the file is fixed it goes in.
    again = run_ingest(settings, embeddings=rejecting)
    assert [r.path for r in again.failures] == ["bad.txt"]
    assert again.repaired == 0
    (docs / "bad.txt").write_text("Bad note\n\nThis paragraph is fine now.\n")
    fixed = run_ingest(settings, embeddings=rejecting)
    assert not fixed.failures
    assert fixed.count(Outcome.ADDED) == 1
    rebuilt = run_ingest(settings, rebuild=True, embeddings=rejecting)
    assert not rebuilt.failures
    assert rebuilt.count(Outcome.ADDED) == 13
    check_consistent(settings, rejecting)


def test_repeated_text_file_ingests_beside_others_and_again(
    tmp_path: Path, model_dir: Path
) -> None:
    docs = tmp_path / "docs"
    write_corpus(docs, 3, version=1)
    release = "Qingdao trade was 341.81 billion yuan. Exports rose 5 percent. " * 3
    (docs / "rep.txt").write_text(release * 40)  # the repro
    settings = make_settings(tmp_path / "data", model_dir, documents_dir=docs)
    embeddings = LocalEmbeddings(model_dir)
    first = run_ingest(settings, embeddings=embeddings)
    assert not first.failures
    assert first.count(Outcome.ADDED) == 4
    second = run_ingest(settings, embeddings=embeddings)
    assert not second.failures
    assert second.count(Outcome.UNCHANGED) == 4
    check_consistent(settings, embeddings)


def test_repair_counts_only_chunks_chroma_held(tmp_path: Path, model_dir: Path) -> None:
    docs = tmp_path / "docs"
    write_corpus(docs, 2, version=1)
    settings = make_settings(tmp_path / "data", model_dir, documents_dir=docs)
    embeddings = LocalEmbeddings(model_dir)
    run_ingest(settings, embeddings=embeddings)
    manifest = Manifest(settings.manifest_path)
    try:
        # A run killed after journaling its intent but before writing anything to Chroma.
        manifest.add_pending({"f" * 32: [f"{i:032x}" for i in range(238)]})
        assert repair(manifest, open_index(settings, embeddings)) == 0
        assert manifest.pending() == {}
    finally:
        manifest.close()
