"""Settings of the index: where documents and the index live, and how text is embedded.

``bot.settings.Settings`` extends this class (and refuses unknown variables; see there);
entry points build it once (from the environment and ``.env``) and pass it down. Library
code never reads the environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from platformdirs import user_cache_dir
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

# The local model's graph for a new index (EMBEDDING_PRECISION); see ingest.onnx_export.
Precision = Literal["int8", "fp32"]
DEFAULT_PRECISION: Precision = "fp32"


def default_model_dir() -> Path:
    """Where ``briefing models install`` puts the model unless MODEL_DIR says otherwise."""
    return Path(user_cache_dir("briefing-bot", appauthor=False)) / "models" / "all-MiniLM-L6-v2"


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
        Path("data"),
        description="Where the embedded Chroma index, the ingest manifest and the model live.",
    )
    chroma_host: str | None = Field(
        None,
        description="Chroma server host. Unset: embedded Chroma on disk under DATA_DIR/chroma.",
    )
    chroma_port: int = Field(8000, description="Chroma server port (with CHROMA_HOST).")
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
        "~1.3x faster ingest; vectors cosine 0.994 to fp32; opt-in because two answer rows "
        "lost a point with it (bench/RESULTS.md). An existing index keeps the graph that built "
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
        256, description="Largest chunk in model word pieces, title prefix included."
    )
    chunk_overlap_tokens: int = Field(32, description="Overlap between neighbouring chunks.")
    max_file_mb: float = Field(50.0, description="Files larger than this are reported and skipped.")
    embed_batch_size: int = Field(64, description="Texts per embedding batch.")

    @property
    def resolved_model_dir(self) -> Path:
        # The model is not data: one copy per user, in the platform's cache folder, serves
        # every data folder (87 MB each before).
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
        return self.data_dir / "manifest.sqlite"
