"""The fused graph built at `models install` computes the same vectors as model.onnx."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import onnx

from ingest.embeddings import LocalEmbeddings
from ingest.onnx_export import (
    FUSED_FILE,
    MODEL_FILES,
    ONNX_FILE,
    default_graph,
    quantize_int8,
)

TEXTS = [
    "Imports and exports in Qingdao totaled 341.81 billion yuan from January to July 2020.",
    "The reservoir upgrade will add 80 million cubic metres of storage by 2027.",
    "Net revenue rose 12% year over year to $4.2 billion, driven by services. " * 12,
    "青岛港集装箱吞吐量同比增长",
]


def test_install_builds_a_fused_graph_and_embeddings_use_it(model_dir: Path) -> None:
    assert default_graph(model_dir, precision="fp32") == FUSED_FILE
    ops = Counter(n.op_type for n in onnx.load(str(model_dir / FUSED_FILE)).graph.node)
    assert ops["Attention"] == 6 and ops["SkipLayerNormalization"] == 13, ops
    assert LocalEmbeddings(model_dir, precision="fp32").onnx_file == FUSED_FILE
    # Mixed lengths in one call: padding goes through the fused attention's mask.
    fused = LocalEmbeddings(model_dir, precision="fp32").embed_array(TEXTS)
    plain = LocalEmbeddings(model_dir, onnx_file=ONNX_FILE).embed_array(TEXTS)
    assert float((fused * plain).sum(axis=1).min()) > 0.99999
    np.testing.assert_allclose(fused, plain, atol=1e-4)


def test_a_folder_without_a_whole_fused_graph_uses_model_onnx(
    tmp_path: Path, model_dir: Path
) -> None:
    chroma_like = tmp_path / "chroma-cache"  # Chroma's cache: the model files, no manifest
    chroma_like.mkdir()
    for name in MODEL_FILES:
        (chroma_like / name).symlink_to(model_dir / name)
    assert default_graph(chroma_like) == ONNX_FILE
    # A fused file the manifest does not vouch for (a half copy) is not used either.
    (chroma_like / FUSED_FILE).write_bytes(b"half")
    (chroma_like / "briefing-model.json").write_text(json.dumps({"fused": 123}))
    assert default_graph(chroma_like) == ONNX_FILE
    assert LocalEmbeddings(chroma_like).onnx_file == ONNX_FILE


def test_fused_graph_quantises_to_int8(tmp_path: Path, model_dir: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    for name in [*MODEL_FILES, FUSED_FILE]:
        (folder / name).symlink_to(model_dir / name)
    path = quantize_int8(folder, onnx_file=FUSED_FILE, out_file="model.fused.int8.onnx")
    int8 = LocalEmbeddings(folder, onnx_file=path.name).embed_array(TEXTS)
    plain = LocalEmbeddings(folder, onnx_file=ONNX_FILE).embed_array(TEXTS)
    assert not np.allclose(int8, plain)  # really another model
    assert float((int8 * plain).sum(axis=1).min()) > 0.95
    assert list((int8 @ plain.T).argmax(axis=1)) == list(range(len(TEXTS)))
