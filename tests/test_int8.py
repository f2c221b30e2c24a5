"""The int8 model built offline from the installed fp32 one agrees with it closely."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ingest.embeddings import LocalEmbeddings
from ingest.onnx_export import INT8_FILE, MODEL_FILES, quantize_int8

TEXTS = [
    "Imports and exports in Qingdao totaled 341.81 billion yuan from January to July 2020.",
    "The reservoir upgrade will add 80 million cubic metres of storage by 2027.",
    "Net revenue rose 12% year over year to $4.2 billion, driven by services.",
    "青岛港集装箱吞吐量同比增长",
]


def test_int8_model_agrees_with_fp32_and_is_smaller(tmp_path: Path, model_dir: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    for name in MODEL_FILES:
        (folder / name).symlink_to(model_dir / name)
    path = quantize_int8(folder)
    assert path == folder / INT8_FILE
    assert path.stat().st_size < (folder / "model.onnx").stat().st_size * 0.8
    fp32 = LocalEmbeddings(folder).embed_array(TEXTS)
    int8 = LocalEmbeddings(folder, onnx_file=INT8_FILE).embed_array(TEXTS)
    cosines = (fp32 * int8).sum(axis=1)
    assert cosines.min() > 0.95, cosines
    assert not np.allclose(fp32, int8)  # it is really another model
    # Ranking survives: each text is still nearest to itself.
    assert list((int8 @ fp32.T).argmax(axis=1)) == list(range(len(TEXTS)))
