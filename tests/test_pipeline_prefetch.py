"""Parsing runs a few files ahead of embedding on a worker thread: the outcome of a run
must be exactly that of a sequential one, whatever the files do."""

from __future__ import annotations

from pathlib import Path

import pytest

import ingest.pipeline
from ingest.embeddings import LocalEmbeddings
from ingest.manifest import Manifest
from ingest.pipeline import run_ingest
from ingest.store import open_index
from ingest.types import IngestReport
from tests.conftest import make_settings

PARAGRAPH = (
    "The provincial port authority reported that container throughput rose by {n} percent "
    "in the quarter, while rail links to inland cities shortened delivery times. "
)


def _write_folder(docs: Path) -> None:
    """Twelve files in scan order: new ones, a duplicate of one still being parsed, an
    empty one, a broken PDF, and files large enough to fill an embedding batch alone."""
    docs.mkdir()
    for i in range(10):
        body = "".join(PARAGRAPH.format(n=i * 100 + j) for j in range(3 if i % 3 else 40))
        (docs / f"r{i:02d}.txt").write_text(f"Release {i}\n\n{body}", encoding="utf-8")
    (docs / "r03-copy.txt").write_bytes((docs / "r03.txt").read_bytes())
    (docs / "r05-empty.txt").write_text("   \n", encoding="utf-8")
    (docs / "r07-broken.pdf").write_bytes(b"%PDF-1.7\nthis is not a pdf body\n")


def _state(settings: object, embeddings: LocalEmbeddings) -> dict[str, tuple[str, str]]:
    store = open_index(settings, embeddings)  # type: ignore[arg-type]
    return {c.chunk_id: (Path(c.path).name, c.text) for c in store.all_chunks()}


def _results(report: IngestReport) -> list[tuple[str, str, str | None, int]]:
    return sorted((Path(r.path).name, r.outcome.value, r.reason, r.chunks) for r in report.results)


@pytest.mark.parametrize("batch", [8, 64])
def test_prefetching_run_equals_a_sequential_run(
    tmp_path: Path, model_dir: Path, monkeypatch: pytest.MonkeyPatch, batch: int
) -> None:
    embeddings = LocalEmbeddings(model_dir)
    docs = tmp_path / "docs"
    _write_folder(docs)
    reports, states = [], []
    for lookahead in (0, ingest.pipeline._LOOKAHEAD_FILES):
        monkeypatch.setattr(ingest.pipeline, "_LOOKAHEAD_FILES", lookahead)
        settings = make_settings(
            tmp_path / f"data-{lookahead}", model_dir, documents_dir=docs, embed_batch_size=batch
        )
        reports.append(run_ingest(settings, embeddings=embeddings))
        states.append(_state(settings, embeddings))
        # Nothing is left pending: every batch was committed.
        manifest = Manifest(settings.manifest_path)
        assert manifest.pending() == {}
        manifest.close()
    sequential, prefetched = reports
    assert _results(prefetched) == _results(sequential)
    assert prefetched.embedded_chunks == sequential.embedded_chunks > 0
    assert states[1] == states[0]
    got = {name: (outcome, note) for name, outcome, note, _ in _results(prefetched)}
    # "r03-copy.txt" sorts first: it is indexed, and the original is the duplicate.
    assert got["r03-copy.txt"] == ("added", None)
    assert got["r03.txt"] == ("added", "same content as r03-copy.txt; indexed once")
    assert got["r05-empty.txt"][0] == "failed"
    assert got["r07-broken.pdf"][0] == "failed"
    assert sum(outcome == "added" for outcome, _ in got.values()) == 11


def test_a_failed_write_mid_run_fails_only_its_file_with_prefetch(
    tmp_path: Path, model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A document whose embedding fails while later files are already parsed: it alone
    fails, the parsed ones after it are written, and no journal row is left behind."""
    docs = tmp_path / "docs"
    _write_folder(docs)

    class FailsOnRelease4(LocalEmbeddings):
        def embed_with_spans(self, texts, spans):  # type: ignore[no-untyped-def]
            if any(t.startswith("Release 4") for t in texts):
                raise RuntimeError("embedding backend hiccup")
            return super().embed_with_spans(texts, spans)

    embeddings = FailsOnRelease4(model_dir)
    settings = make_settings(tmp_path / "data", model_dir, documents_dir=docs, embed_batch_size=8)
    report = run_ingest(settings, embeddings=embeddings)
    got = {name: (outcome, note) for name, outcome, note, _ in _results(report)}
    assert got["r04.txt"][0] == "failed"
    assert "embedding backend hiccup" in str(got["r04.txt"][1])
    for name in ("r05.txt", "r06.txt", "r08.txt", "r09.txt"):
        assert got[name][0] == "added", name
    names = {name for name, _ in _state(settings, embeddings).values()}
    assert "r04.txt" not in names and "r09.txt" in names
    manifest = Manifest(settings.manifest_path)
    assert manifest.pending() == {}
    manifest.close()
