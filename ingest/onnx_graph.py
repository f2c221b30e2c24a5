"""The BERT encoder of all-MiniLM-L6-v2 as an ONNX graph, assembled with numpy from its
safetensors weights (no torch, no download). ``ingest.onnx_export`` installs the result.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

_OPSET = 17  # first opset with LayerNormalization
_IR_VERSION = 8  # readable by every onnxruntime the project accepts (>= 1.18)

Array = npt.NDArray[Any]


def build_onnx(
    weights: Path, config: Path, out: Path, *, fusable: bool = False, classifier: bool = False
) -> None:
    """Write the BERT encoder of ``weights`` as an ONNX graph to ``out``.

    Inputs ``input_ids``, ``attention_mask``, ``token_type_ids`` (int64, [batch, seq]);
    output ``last_hidden_state`` (float32, [batch, seq, hidden]). Pooling and
    normalisation are left to the caller, as in Chroma's model. ``classifier``: the
    weights also hold ``head.weight`` / ``head.bias``, a linear layer over the [CLS]
    state, and the output is ``logits`` (float32, [batch]) instead (the reader's pair
    model, ``bot.reader``).
    """
    import onnx
    from safetensors.numpy import load_file

    cfg = json.loads(Path(config).read_text(encoding="utf-8"))
    tensors = {_strip_prefix(k): v for k, v in load_file(str(weights)).items()}
    model = _BertGraph(cfg, tensors, fusable=fusable).build(classifier=classifier)
    onnx.checker.check_model(model)
    tmp = Path(out).with_name(f".{Path(out).name}.tmp-{os.getpid()}")
    try:
        onnx.save(model, str(tmp))
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)


def _strip_prefix(key: str) -> str:
    return key.removeprefix("bert.")


class _BertGraph:
    """Collects nodes and initializers for one BERT encoder (post-LayerNorm, GELU)."""

    def __init__(
        self, cfg: dict[str, Any], tensors: dict[str, Array], *, fusable: bool = False
    ) -> None:
        if cfg.get("hidden_act", "gelu") != "gelu":
            raise ValueError(f"unsupported activation {cfg.get('hidden_act')}")
        self.cfg = cfg
        self.w = tensors
        self.hidden = int(cfg["hidden_size"])
        self.heads = int(cfg["num_attention_heads"])
        self.eps = float(cfg.get("layer_norm_eps", 1e-12))
        # fusable: attention written as torch exports it (scores divided by sqrt(head_dim),
        # the mask unsqueezed twice before its cast), the pattern onnxruntime's offline
        # optimizer turns into one Attention kernel per layer. Same function either way.
        self.fusable = fusable
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self._names: set[str] = set()
        self._count = 0

    # helpers -----------------------------------------------------------------------
    def const(self, name: str, value: Array) -> str:
        from onnx import numpy_helper

        if name in self._names:  # shared constants (shapes, scalars) are added once
            return name
        self._names.add(name)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def weight(self, key: str) -> str:
        return self.const(key, self.w[key].astype(np.float32))

    def op(self, op_type: str, inputs: list[str], **attrs: Any) -> str:
        from onnx import helper

        self._count += 1
        out = f"{op_type.lower()}_{self._count}"
        self.nodes.append(helper.make_node(op_type, inputs, [out], **attrs))
        return out

    def linear(self, x: str, prefix: str, scale: float = 1.0) -> str:
        # torch Linear stores [out, in]; MatMul wants [in, out].
        w = self.w[f"{prefix}.weight"].T.astype(np.float32) * np.float32(scale)
        b = self.w[f"{prefix}.bias"].astype(np.float32) * np.float32(scale)
        y = self.op("MatMul", [x, self.const(f"{prefix}.weight_t", w)])
        return self.op("Add", [y, self.const(f"{prefix}.bias", b)])

    def layer_norm(self, x: str, prefix: str) -> str:
        return self.op(
            "LayerNormalization",
            [x, self.weight(f"{prefix}.weight"), self.weight(f"{prefix}.bias")],
            axis=-1,
            epsilon=self.eps,
        )

    # graph -------------------------------------------------------------------------
    def embeddings(self) -> str:
        word = self.op("Gather", [self.weight("embeddings.word_embeddings.weight"), "input_ids"])
        # Positions 0..seq-1 are the first seq rows of the table: a Slice, 1-D throughout.
        seq_len = self.op("Shape", ["input_ids"], start=1, end=2)
        pos = self.op(
            "Slice",
            [
                self.weight("embeddings.position_embeddings.weight"),
                self.const("zero_1d", np.array([0], np.int64)),
                seq_len,
                self.const("zero_1d", np.array([0], np.int64)),
            ],
        )
        typ = self.op(
            "Gather", [self.weight("embeddings.token_type_embeddings.weight"), "token_type_ids"]
        )
        total = self.op("Add", [self.op("Add", [word, typ]), pos])
        return self.layer_norm(total, "embeddings.LayerNorm")

    def attention_bias(self) -> str:
        """[batch, 1, 1, seq]: 0 where attended, a large negative number at padding."""
        if self.fusable:
            wide = self.op(
                "Unsqueeze", ["attention_mask", self.const("axis_1", np.array([1], np.int64))]
            )
            wide = self.op("Unsqueeze", [wide, self.const("axis_2", np.array([2], np.int64))])
            inverted = self.op(
                "Sub",
                [self.const("one_f32", np.array(1.0, np.float32)), self.op("Cast", [wide], to=1)],
            )
            return self.op("Mul", [inverted, self.const("neg_10k", np.array(-10000.0, np.float32))])
        mask = self.op("Cast", ["attention_mask"], to=1)  # 1 = FLOAT
        inverted = self.op("Sub", [self.const("one_f32", np.array(1.0, np.float32)), mask])
        bias = self.op("Mul", [inverted, self.const("neg_big", np.array(-1e9, np.float32))])
        return self.op("Unsqueeze", [bias, self.const("axes_1_2", np.array([1, 2], np.int64))])

    def split_heads(self, x: str, perm: list[int]) -> str:
        shape = self.const(
            "heads_shape", np.array([0, 0, self.heads, self.hidden // self.heads], np.int64)
        )
        return self.op("Transpose", [self.op("Reshape", [x, shape])], perm=perm)

    def encoder_layer(self, x: str, bias: str, i: int) -> str:
        p = f"encoder.layer.{i}"
        head_dim = self.hidden // self.heads
        # Fold 1/sqrt(head_dim) into the query projection instead of scaling the scores
        # (the fusable layout divides the scores, which the fused kernel does anyway).
        q_scale = 1.0 if self.fusable else 1.0 / math.sqrt(head_dim)
        q = self.split_heads(self.linear(x, f"{p}.attention.self.query", q_scale), [0, 2, 1, 3])
        k = self.split_heads(self.linear(x, f"{p}.attention.self.key"), [0, 2, 3, 1])
        v = self.split_heads(self.linear(x, f"{p}.attention.self.value"), [0, 2, 1, 3])
        raw = self.op("MatMul", [q, k])
        if self.fusable:
            raw = self.op(
                "Div", [raw, self.const("sqrt_head", np.array(math.sqrt(head_dim), np.float32))]
            )
        scores = self.op("Add", [raw, bias])
        probs = self.op("Softmax", [scores], axis=-1)
        context = self.op("Transpose", [self.op("MatMul", [probs, v])], perm=[0, 2, 1, 3])
        merged = self.op(
            "Reshape", [context, self.const("merge_shape", np.array([0, 0, self.hidden], np.int64))]
        )
        attn = self.linear(merged, f"{p}.attention.output.dense")
        x = self.layer_norm(self.op("Add", [attn, x]), f"{p}.attention.output.LayerNorm")
        hidden = self.gelu(self.linear(x, f"{p}.intermediate.dense"))
        out = self.linear(hidden, f"{p}.output.dense")
        return self.layer_norm(self.op("Add", [out, x]), f"{p}.output.LayerNorm")

    def gelu(self, x: str) -> str:
        """Exact GELU, 0.5·x·(1 + erf(x/√2)), as BERT's ``gelu`` activation."""
        # Written as exported from torch (Div by √2, Mul by 0.5 last) so that
        # onnxruntime's GeluFusion recognises it and runs one fused kernel.
        sqrt2 = self.const("sqrt2", np.array(math.sqrt(2), np.float32))
        one = self.const("one_f32", np.array(1.0, np.float32))
        one_plus = self.op("Add", [self.op("Erf", [self.op("Div", [x, sqrt2])]), one])
        gated = self.op("Mul", [x, one_plus])
        return self.op("Mul", [gated, self.const("half_f32", np.array(0.5, np.float32))])

    def classifier_head(self, x: str) -> str:
        """[batch]: the linear head over each sequence's first ([CLS]) state."""
        first = self.op("Gather", [x, self.const("zero_i64", np.array(0, np.int64))], axis=1)
        logit = self.linear(first, "head")
        return self.op("Reshape", [logit, self.const("flat_shape", np.array([-1], np.int64))])

    def build(self, *, classifier: bool = False) -> Any:
        from onnx import TensorProto, helper

        x = self.embeddings()
        bias = self.attention_bias()
        for i in range(int(self.cfg["num_hidden_layers"])):
            x = self.encoder_layer(x, bias, i)
        dims = ["batch", "sequence"]
        inputs = [
            helper.make_tensor_value_info(name, TensorProto.INT64, dims)
            for name in ("input_ids", "attention_mask", "token_type_ids")
        ]
        if classifier:
            self.nodes.append(helper.make_node("Identity", [self.classifier_head(x)], ["logits"]))
            output = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch"])
        else:
            self.nodes.append(helper.make_node("Identity", [x], ["last_hidden_state"]))
            output = helper.make_tensor_value_info(
                "last_hidden_state", TensorProto.FLOAT, [*dims, self.hidden]
            )
        graph = helper.make_graph(self.nodes, "bert_encoder", inputs, [output], self.inits)
        model = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", _OPSET)],
            producer_name="briefing-bot",
        )
        model.ir_version = _IR_VERSION
        return model
