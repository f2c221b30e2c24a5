"""The embedding function a collection records: "vectors computed by the caller".

Every write and query of the index passes vectors computed by ``ingest.embeddings``; Chroma
never embeds. A collection made with ``embedding_function=None`` records a "legacy"
function, which chromadb deprecates (a DeprecationWarning whenever the collection's
configuration is read). ``CallerVectors`` is the non-deprecated record: named and
registered, so chromadb can rebuild it from the stored configuration.
"""

from __future__ import annotations

import warnings
from typing import Any

from chromadb.api.types import Embeddable, EmbeddingFunction, Embeddings, Space
from chromadb.utils.embedding_functions import register_embedding_function


@register_embedding_function
class CallerVectors(EmbeddingFunction[Embeddable]):
    """What the collection records as its embedding function (with the model's name, for
    anyone reading the configuration); called, it refuses: vectors are always passed."""

    def __init__(self, model: str = "") -> None:
        self.model = model

    def __call__(self, input: Embeddable) -> Embeddings:
        raise TypeError("this collection stores vectors computed by briefing-bot; pass them")

    @staticmethod
    def name() -> str:
        return "briefing-bot-caller-vectors"

    def get_config(self) -> dict[str, Any]:
        return {"model": self.model}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> CallerVectors:
        return CallerVectors(str(config.get("model", "")))

    def default_space(self) -> Space:
        return "cosine"

    def supported_spaces(self) -> list[Space]:
        return ["cosine"]


def record_caller_vectors(collection: Any, model: str) -> None:
    """Replace a collection's "legacy" embedding-function record (indexes made before
    ``CallerVectors``) with ``CallerVectors``; a no-op once done."""
    recorded = (collection.configuration_json or {}).get("embedding_function") or {}
    if recorded.get("type") != "legacy":
        return
    # chromadb reads the old record once to merge the new one in, and warns about it then.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "legacy embedding function config", DeprecationWarning)
        collection.modify(configuration={"embedding_function": CallerVectors(model)})
