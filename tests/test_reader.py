"""The trained reader: its shipped model, its features, and how it ranks sentences."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bot.reader import (
    FEATURES,
    PAIR_ONNX,
    READER_JSON,
    Candidate,
    language,
    load_pair,
    load_reader,
    overlap_features,
    read,
    threshold,
)

COL = {name: i for i, name in enumerate(FEATURES)}


def test_the_shipped_model_is_small_onnx_with_a_layer_per_language() -> None:
    assert PAIR_ONNX.stat().st_size <= 50 * 1024 * 1024
    model = load_reader()
    assert set(model.layers) == {"en", "zh"}
    for layer in model.layers.values():
        assert 0.0 < layer.threshold < 1.0
        assert len(layer.weights) == len(FEATURES)
    assert model.layers["en"].uses_pair and not model.layers["zh"].uses_pair
    assert json.loads(READER_JSON.read_text("utf-8"))["features"] == list(FEATURES)


def test_pair_model_prefers_the_answering_sentence_to_an_on_topic_one() -> None:
    pair = load_pair()
    assert pair is not None
    q = "Who is the mayor of Brightwater?"
    answering = "Mayor Elin Carver opened the new ferry terminal in Brightwater on Monday."
    on_topic = "Brightwater is a port city with a population of 310,000."
    logits = pair.logits(q, [on_topic, answering])
    assert logits[1] > logits[0]
    assert pair.logits(q, []).shape == (0,)


def test_overlap_features_in_chinese_favour_the_sentence_that_answers() -> None:
    q = "雅河的发源地是哪里？"
    cands = [
        Candidate("雅河是本省第二长的河流，全长三百公里。"),
        Candidate("雅河发源于北部的青石山，向南流入大湖。"),
        Candidate("沿岸城市的工业产值去年增长了五个百分点。"),
    ]
    x = overlap_features(q, cands)
    assert language(q) == "zh"
    assert x[1, COL["cover_pairs"]] > x[0, COL["cover_pairs"]]
    assert x[1, COL["slot_left"]] > 0.0  # "发源" stands before the asking word
    assert x[2, COL["cover"]] == 0.0
    probs, sure = read(q, cands)
    assert int(np.argmax(probs)) == 1
    layer = load_reader().layer("zh")
    assert threshold(q) == layer.threshold <= sure == layer.sure


def test_other_names_of_a_measure_count_as_the_question_s_terms() -> None:
    q = "What was Brightwater's GDP in 2023?"
    cands = [
        Candidate("Brightwater's gross domestic product was 41.2 billion yuan in 2023."),
        Candidate("Brightwater's port handled 12 million tonnes in 2023."),
    ]
    x = overlap_features(q, cands)
    assert x[0, COL["cover"]] > x[1, COL["cover"]]
    probs, _ = read(q, cands)
    assert probs[0] > probs[1]


def test_answering_needs_no_torch() -> None:
    code = (
        "import sys\n"
        "from bot.reader import Candidate, read\n"
        "read('Who is the mayor?', [Candidate('Mayor Ann Lee spoke.')])\n"
        "assert 'torch' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])


@pytest.mark.slow
def test_classifier_graph_is_the_encoder_s_first_state_through_the_head(
    model_dir: Path, tmp_path: Path
) -> None:
    import onnxruntime as ort
    from safetensors.numpy import load_file, save_file

    from ingest.onnx_export import default_source_dir
    from ingest.onnx_graph import build_onnx

    source = default_source_dir()
    weights = load_file(str(source / "model.safetensors"))
    rng = np.random.default_rng(0)
    head_w = rng.normal(size=(1, 384)).astype(np.float32)
    head_b = np.array([0.25], np.float32)
    save_file({**weights, "head.weight": head_w, "head.bias": head_b}, str(tmp_path / "w.st"))
    build_onnx(tmp_path / "w.st", source / "config.json", tmp_path / "enc.onnx")
    build_onnx(tmp_path / "w.st", source / "config.json", tmp_path / "cls.onnx", classifier=True)
    ids = np.array([[101, 2054, 2003, 1996, 102, 7632, 102, 0]], np.int64)
    feed = {"input_ids": ids, "attention_mask": (ids > 0).astype(np.int64),
            "token_type_ids": np.array([[0, 0, 0, 0, 0, 1, 1, 0]], np.int64)}  # fmt: skip
    (states,) = ort.InferenceSession(str(tmp_path / "enc.onnx")).run(None, feed)
    (logits,) = ort.InferenceSession(str(tmp_path / "cls.onnx")).run(None, feed)
    assert logits.shape == (1,)
    assert np.allclose(logits, states[:, 0] @ head_w.T[:, 0] + head_b, atol=1e-4)
