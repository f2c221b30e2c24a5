"""An index records the graph that built it, and is queried with that graph.

The fp32 graphs (model.onnx, model.fused.onnx) compute the same vectors and share the
model's name; the int8 graph is another model. Real embedded Chroma, the real model.
The checks on similarity use a chunk's own embedded text as the query: with the fp32
graph that built the index it comes back at cosine ~1.0; with the int8 graph at ~0.99.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bot.service import AnswerService
from bot.settings import Settings
from ingest.chunking import embed_text
from ingest.embeddings import LocalEmbeddings, make_embeddings
from ingest.errors import IndexMismatch
from ingest.onnx_export import (
    FUSED_FILE,
    FUSED_INT8_FILE,
    MODEL_FILES,
    MODEL_NAME,
    ONNX_FILE,
    default_graph,
    installed_graphs,
)
from ingest.pipeline import run_ingest
from ingest.store import IndexStore, open_index
from tests.conftest import make_settings

INT8_NAME = f"{MODEL_NAME}/fused.int8"
DOCS = {
    "qingdao.md": "# Qingdao trade\n\nImports and exports in Qingdao totaled 341.81 billion "
    "yuan from January to July 2020, up 5.2 percent year on year.\n",
    "reservoir.md": "# Reservoir upgrade\n\nThe reservoir upgrade will add 80 million cubic "
    "metres of storage by 2027, the water bureau said on Monday.\n",
}


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    for name, text in DOCS.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def self_similarity(store: IndexStore, embeddings: LocalEmbeddings) -> float:
    """Cosine between a stored chunk and its own embedded text, embedded now."""
    chunk = sorted(store.all_chunks(), key=lambda c: c.chunk_id)[0]
    query = embeddings.embed_query(embed_text(chunk.title, chunk.text))
    hits = store.dense_search(query, k=1)
    assert hits[0][0].chunk_id == chunk.chunk_id
    return hits[0][1]


def int8_settings(data_dir: Path, model_dir: Path, docs: Path) -> Settings:
    return make_settings(data_dir, model_dir, documents_dir=docs, embedding_precision="int8")


def store_metadata(store: IndexStore) -> dict[str, object]:
    return store.metadata()


def test_install_builds_every_graph_and_precision_picks_one(model_dir: Path) -> None:
    assert {ONNX_FILE, FUSED_FILE, FUSED_INT8_FILE} <= installed_graphs(model_dir)
    assert default_graph(model_dir, precision="int8") == FUSED_INT8_FILE
    assert default_graph(model_dir, precision="fp32") == FUSED_FILE
    assert LocalEmbeddings(model_dir, precision="int8").name == INT8_NAME
    fp32 = LocalEmbeddings(model_dir, precision="fp32")
    assert (fp32.name, fp32.onnx_file) == (MODEL_NAME, FUSED_FILE)
    assert LocalEmbeddings(model_dir, onnx_file=ONNX_FILE).name == MODEL_NAME


def test_old_fp32_index_opens_and_answers_with_fp32(
    tmp_path: Path, model_dir: Path, docs: Path
) -> None:
    # What versions before the graph record wrote: model.onnx vectors under the plain name.
    settings = int8_settings(tmp_path / "data", model_dir, docs)
    old = LocalEmbeddings(model_dir, onnx_file=ONNX_FILE)
    assert not run_ingest(settings, embeddings=old).failures
    meta = store_metadata(open_index(settings, old))
    assert set(meta) == {"index_format", "embedding_model", "embedding_dim", "generation"}
    assert (meta["embedding_model"], meta["embedding_dim"]) == (MODEL_NAME, 384)

    # EMBEDDING_PRECISION=int8, yet the old index is served with fp32 (the fused graph),
    # without an error or a re-ingest.
    service = AnswerService(settings)
    assert service.embeddings.name == MODEL_NAME
    assert isinstance(service.embeddings, LocalEmbeddings)
    assert service.embeddings.onnx_file == FUSED_FILE
    assert self_similarity(service.store, service.embeddings) > 0.9999
    answer = service.answer("How much did Qingdao's imports and exports total?")
    assert not answer.refused
    assert "341.81 billion" in answer.text
    # An int8 query against those fp32 vectors is measurably off: the check above can fail.
    assert self_similarity(service.store, LocalEmbeddings(model_dir, precision="int8")) < 0.9995

    # An ingest into it keeps adding fp32 vectors, and keeps the record.
    (docs / "port.md").write_text("# Port\n\nThe port handled 12 million containers.\n")
    assert not run_ingest(settings).failures
    assert store_metadata(open_index(settings, old))["embedding_model"] == MODEL_NAME


def test_new_index_records_int8_and_is_served_by_it_whatever_the_setting(
    tmp_path: Path, model_dir: Path, docs: Path
) -> None:
    settings = int8_settings(tmp_path / "data", model_dir, docs)
    assert not run_ingest(settings).failures
    store = open_index(settings, make_embeddings(settings))
    assert store_metadata(store)["embedding_model"] == INT8_NAME

    # EMBEDDING_PRECISION=fp32 later: the int8 index is still queried with int8.
    fp32_settings = make_settings(
        tmp_path / "data", model_dir, documents_dir=docs, embedding_precision="fp32"
    )
    embeddings = make_embeddings(fp32_settings)
    assert isinstance(embeddings, LocalEmbeddings)
    assert embeddings.name == MODEL_NAME
    store = open_index(fp32_settings, embeddings)
    assert (embeddings.name, embeddings.onnx_file) == (INT8_NAME, FUSED_INT8_FILE)
    question = "How much did Qingdao's imports and exports total?"
    direct = LocalEmbeddings(model_dir, onnx_file=FUSED_INT8_FILE).embed_query(question)
    assert embeddings.embed_query(question) == direct
    # int8 vectors depend a little on the batch they were embedded in (onnxruntime
    # quantises activations per batch), so a chunk's own text comes back at ~0.99, not 1.
    assert self_similarity(store, embeddings) > 0.98

    # ... until a rebuild, which builds with the setting's graph.
    run_ingest(fp32_settings, rebuild=True)
    rebuilt = open_index(fp32_settings, make_embeddings(fp32_settings))
    assert store_metadata(rebuilt)["embedding_model"] == MODEL_NAME


def test_int8_index_with_a_model_folder_lacking_int8_is_a_clear_error(
    tmp_path: Path, model_dir: Path, docs: Path
) -> None:
    settings = int8_settings(tmp_path / "data", model_dir, docs)
    assert not run_ingest(settings).failures
    # A model folder without the int8 graph: Chroma's cache, or one installed before int8.
    bare = tmp_path / "chroma-cache"
    bare.mkdir()
    for name in MODEL_FILES:
        (bare / name).symlink_to(model_dir / name)
    bare_settings = int8_settings(tmp_path / "data", bare, docs)
    embeddings = make_embeddings(bare_settings)
    assert isinstance(embeddings, LocalEmbeddings)
    assert embeddings.onnx_file == ONNX_FILE  # int8 asked for, not there: fp32 for new indexes
    with pytest.raises(IndexMismatch, match="models install") as caught:
        open_index(bare_settings, embeddings)
    assert INT8_NAME in str(caught.value)
    assert str(bare) in str(caught.value)
    with pytest.raises(IndexMismatch, match="models install"):
        AnswerService(bare_settings)


def test_folder_installed_before_int8_serves_fused_for_both_precisions(
    tmp_path: Path, model_dir: Path
) -> None:
    # graph_version 2 recorded the fused graph as "fused": <size>, and had no int8 graph.
    folder = tmp_path / "v2"
    folder.mkdir()
    for name in [*MODEL_FILES, FUSED_FILE]:
        (folder / name).symlink_to(model_dir / name)
    manifest = {"graph_version": 2, "fused": (model_dir / FUSED_FILE).stat().st_size}
    (folder / "briefing-model.json").write_text(json.dumps(manifest))
    assert installed_graphs(folder) == {ONNX_FILE, FUSED_FILE}
    assert default_graph(folder, precision="int8") == FUSED_FILE
    # An int8 file the manifest does not vouch for (a half copy) is not used.
    shutil.copyfile(model_dir / FUSED_INT8_FILE, folder / FUSED_INT8_FILE)
    with (folder / FUSED_INT8_FILE).open("r+b") as torn:
        torn.truncate(1000)
    assert default_graph(folder, precision="int8") == FUSED_FILE


def test_a_reader_follows_a_rebuild_with_another_graph(
    tmp_path: Path, model_dir: Path, docs: Path
) -> None:
    settings = int8_settings(tmp_path / "data", model_dir, docs)
    assert not run_ingest(
        settings, embeddings=LocalEmbeddings(model_dir, precision="fp32")
    ).failures
    reader = make_embeddings(settings)
    store = open_index(settings, reader)
    assert reader.name == MODEL_NAME
    # Another run rebuilds the index with the default (int8) graph.
    run_ingest(settings, rebuild=True)
    assert store.metadata()["embedding_model"] == INT8_NAME
    store.sync(store.generation())
    assert reader.name == INT8_NAME


def test_chroma_server_index_records_and_follows_the_graph(
    tmp_path: Path, model_dir: Path, docs: Path, chroma_server: tuple[str, int]
) -> None:
    host, port = chroma_server
    server = {"chroma_host": host, "chroma_port": port, "chroma_collection": "graph-record"}
    settings = make_settings(
        tmp_path / "data", model_dir, documents_dir=docs, embedding_precision="fp32", **server
    )
    assert not run_ingest(settings).failures
    # Another replica configured for int8 reads the fp32 index over HTTP with fp32.
    replica = int8_settings(tmp_path / "replica", model_dir, docs).model_copy(update=server)
    service = AnswerService(replica)
    assert service.embeddings.name == MODEL_NAME
    assert isinstance(service.embeddings, LocalEmbeddings)
    assert self_similarity(service.store, service.embeddings) > 0.9999
    assert store_metadata(service.store)["embedding_dim"] == 384
