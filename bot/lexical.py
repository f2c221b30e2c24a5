"""BM25 keyword search over every chunk, with a tokeniser for English and Chinese text.

Dense embeddings (all-MiniLM-L6-v2) are weak on exact figures, names and Chinese; BM25
catches those. The tokeniser is shared with the extractive answerer so both agree on what
a "term" is. Both live in ``ingest`` (``ingest.terms``, ``ingest.lexical``), which writes
the index to disk beside Chroma (``ingest.lexical_store``); this module is answering's
name for them.
"""

from __future__ import annotations

from ingest.lexical import LexicalIndex
from ingest.terms import stem, tokenize

__all__ = ["LexicalIndex", "stem", "tokenize"]
