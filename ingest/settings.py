"""Settings of the index: where documents and the index live, and how text is embedded.

``bot.settings.Settings`` extends this class (and refuses unknown variables; see there);
entry points build it once (from the environment and ``.env``) and pass it down. Library
code never reads the environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from platformdirs import user_cache_dir, user_data_dir
from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# The local model's graph for a new index (EMBEDDING_PRECISION); see ingest.onnx_export.
Precision = Literal["int8", "fp32"]
DEFAULT_PRECISION: Precision = "fp32"


def default_model_dir() -> Path:
    """Where ``briefing models install`` puts the model unless MODEL_DIR says otherwise."""
    return Path(user_cache_dir("briefing-bot", appauthor=False)) / "models" / "all-MiniLM-L6-v2"


def default_data_dir() -> Path:
    """The index's folder unless DATA_DIR says otherwise: the user's data folder, so every
    command finds the same index whatever folder it is run from."""
    return Path(user_data_dir("briefing-bot", appauthor=False))


class IndexSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,
        extra="ignore",
        case_sensitive=False,
    )

    documents_dir: Path = Field(
        Path("examples/briefings"),
        description="Folder of documents (txt, md, html, pdf, docx) for ingest and the watcher.",
    )
    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="Where the index lives (embedded Chroma, the ingest manifest, the BM25 "
        "files, followed topics). Default: the user's data folder (~/.local/share/briefing-bot "
        "on Linux), the same from every folder.",
    )
    chroma_host: str | None = Field(
        None,
        description="Chroma server host. Unset: embedded Chroma on disk under DATA_DIR/chroma.",
    )
    chroma_port: int = Field(
        8000, ge=1, le=65535, description="Chroma server port (with CHROMA_HOST)."
    )
    chroma_ssl: bool = Field(False, description="Use HTTPS to reach the Chroma server.")
    chroma_collection: str = Field("briefings", description="Chroma collection name.")
    embedding_backend: Literal["local", "openai"] = Field(
        "local",
        description="local: all-MiniLM-L6-v2 on onnxruntime, offline. "
        "openai: an OpenAI-compatible /embeddings endpoint (OPENAI_BASE_URL).",
    )
    embedding_model: str = Field(
        "all-MiniLM-L6-v2",
        description="Embedding model name. For the openai backend, the endpoint's model id "
        "(e.g. text-embedding-3-small).",
    )
    model_dir: Path | None = Field(
        None,
        description="Folder with the local model (model.onnx, tokenizer.json). Default: "
        "all-MiniLM-L6-v2 in the user's cache folder (~/.cache/briefing-bot/models on Linux), "
        "shared by every DATA_DIR; made by `briefing models install`.",
    )
    embedding_precision: Precision = Field(
        DEFAULT_PRECISION,
        description="Graph of the local model a new index is built with. fp32: the full-"
        "precision (fused) graph. int8: weights int8 (built by `briefing models install`), "
        "faster ingest, vectors close to fp32's but not identical; opt-in (measured in "
        "bench/RESULTS.md). An existing index keeps the graph that built "
        "it (recorded in the index); a change applies to new indexes and `ingest --rebuild`.",
    )
    openai_api_key: SecretStr | None = Field(
        None, description="API key of the OpenAI-compatible endpoint (embeddings and/or chat)."
    )
    openai_base_url: str | None = Field(
        None,
        description="Base URL of the OpenAI-compatible endpoint, e.g. http://127.0.0.1:8080/v1 "
        "(vLLM, Ollama, llama.cpp server). Unset: api.openai.com.",
    )
    chunk_tokens: int = Field(
        256,
        ge=32,
        le=8192,
        description="Largest chunk in model word pieces, title prefix included.",
    )
    chunk_overlap_tokens: int = Field(
        32, ge=0, le=4096, description="Overlap between neighbouring chunks (below CHUNK_TOKENS)."
    )
    max_file_mb: float = Field(
        50.0, gt=0, le=100_000, description="Files larger than this are reported and skipped."
    )
    stream_file_mb: float = Field(
        8.0,
        gt=0,
        le=100_000,
        description="Text and Markdown files larger than this are read, embedded and stored a "
        "section at a time (memory stays that of one section; a stopped run resumes).",
    )
    # 16, not 64: about the same speed on CPU, far less memory (the model's working memory
    # grows with the batch): 533-539 vs 1,333-1,359 MB peak RSS in bench/ingest_memory.py.
    embed_batch_size: int = Field(
        16, ge=1, le=4096, description="Texts per embedding batch (and per write to the index)."
    )

    @model_validator(mode="after")
    def _overlap_below_chunk(self) -> IndexSettings:
        if self.chunk_overlap_tokens >= self.chunk_tokens:
            raise ValueError(
                f"CHUNK_OVERLAP_TOKENS ({self.chunk_overlap_tokens}) must be below CHUNK_TOKENS "
                f"({self.chunk_tokens})"
            )
        return self

    @property
    def resolved_model_dir(self) -> Path:
        # The model is not data: one copy per user, in the platform's cache folder, serves
        # every data folder (each held its own copy before).
        if self.model_dir is not None:
            return self.model_dir
        legacy = self.data_dir / "models" / "all-MiniLM-L6-v2"  # where versions <= 0.1 put it
        cached = default_model_dir()
        return legacy if legacy.is_dir() and not cached.is_dir() else cached

    @property
    def chroma_dir(self) -> Path:
        return self.data_dir / "chroma"

    @property
    def manifest_path(self) -> Path:
        """The store of record (``ingest.state``), which holds the manifest's tables."""
        return self.data_dir / "state.sqlite"
