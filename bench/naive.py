"""The pipeline a user would write instead of ours, for bench/eval.py to compare against.

``RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200)`` over the pages the
PDF loader gives (one LangChain Document per page, as PyPDFLoader does) → Chroma with
Chroma's default embedding function (ONNXMiniLM_L6_V2) → ``Chroma.similarity_search(k=4)``.
The text comes from our own loader (``ingest.loaders.parse_document``), so only chunking,
embedding and retrieval differ. Chroma's model files are laid out from our installed
model, so nothing is downloaded.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from langchain_chroma import Chroma
from langchain_core.documents import Document as LCDocument
from langchain_core.embeddings import Embeddings
from langchain_text_splitters import RecursiveCharacterTextSplitter

sys.path.insert(0, str(Path(__file__).resolve().parent))

from embed_bench import chroma_cache_from

from ingest.loaders import parse_document

NAIVE_K = 4  # langchain's default k for similarity_search
_COLLECTION = "naive"
_DONE = "complete.json"  # written last: a folder without it is a half-built index


class ChromaDefaultEmbeddings(Embeddings):
    """Chroma's default ONNX MiniLM function as LangChain ``Embeddings``, one session reused."""

    def __init__(self, model_dir: Path, cache_root: Path) -> None:
        from chromadb.utils.embedding_functions.onnx_mini_lm_l6_v2 import ONNXMiniLM_L6_V2

        layout = cache_root / "all-MiniLM-L6-v2"
        if not (layout / "onnx").is_dir():
            chroma_cache_from(model_dir, cache_root)
        # Chroma reads its model from this class attribute; ours holds the same files.
        ONNXMiniLM_L6_V2.DOWNLOAD_PATH = layout
        self._function = ONNXMiniLM_L6_V2(preferred_providers=["CPUExecutionProvider"])

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [[float(x) for x in v] for v in self._function(texts)]

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]


def pdf_pages(paths: Iterable[Path]) -> list[LCDocument]:
    """One LangChain Document per PDF page (or per text file), text from our loader."""
    out: list[LCDocument] = []
    for path in paths:
        doc = parse_document(path, path.read_bytes(), path.stem)
        spans = [(p.page, p.start, p.end) for p in doc.pages] or [(0, 0, len(doc.text))]
        for page, start, end in spans:
            meta: dict[str, Any] = {"source": path.stem}
            if page:
                meta["page"] = page
            if end > start:
                out.append(LCDocument(page_content=doc.text[start:end], metadata=meta))
    return out


def passages(texts: Sequence[str]) -> list[LCDocument]:
    return [LCDocument(page_content=t, metadata={"source": f"p{i}"}) for i, t in enumerate(texts)]


def open_naive(folder: Path, embeddings: Embeddings) -> Chroma | None:
    """The index built earlier in ``folder``, or None if there is none (or only half of one)."""
    if not (folder / _DONE).is_file():
        return None
    return Chroma(_COLLECTION, embeddings, persist_directory=str(folder / "chroma"))


def build_naive(
    folder: Path, docs: Sequence[LCDocument], embeddings: Embeddings, *, batch: int = 256
) -> tuple[Chroma, dict[str, float]]:
    """Split and index ``docs`` (reusing a complete earlier build); returns the store and facts."""
    existing = open_naive(folder, embeddings)
    if existing is not None:
        facts: dict[str, float] = json.loads((folder / _DONE).read_text(encoding="utf-8"))
        return existing, facts
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    started = time.perf_counter()
    splitter = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200)
    chunks = splitter.split_documents(list(docs))
    store = Chroma(_COLLECTION, embeddings, persist_directory=str(folder / "chroma"))
    for i in range(0, len(chunks), batch):
        store.add_documents(chunks[i : i + batch])
        done = min(i + batch, len(chunks))
        elapsed = time.perf_counter() - started
        print(
            f"  naive {folder.parent.name}: {done}/{len(chunks)} chunks, {elapsed:.0f} s",
            file=sys.stderr,
            flush=True,
        )
    facts = {"chunks": float(len(chunks)), "seconds": time.perf_counter() - started}
    (folder / _DONE).write_text(json.dumps(facts), encoding="utf-8")
    return store, facts
