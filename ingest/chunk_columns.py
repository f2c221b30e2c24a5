"""Chunks held as columns, made into ``IndexedChunk`` objects one at a time on access.

The BM25 index holds every chunk, but a question is answered from a few dozen of them,
and the document focus and date masks read single columns. A one-shot `briefing ask` on
a large index spent much of its load making every chunk object and parsing every text out
of JSON; here texts stay in one UTF-8 blob (``TextColumn``) and objects
are made when asked for.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import fields
from typing import Any, overload

import numpy as np
import numpy.typing as npt

from ingest.types import IndexedChunk

# What the BM25 files hold of a chunk, in ``IndexedChunk``'s order (its constructor's
# positional arguments).
FIELDS = ("chunk_id", "doc_id", "text", "path", "title", "index", "start", "end", "page",
          "date", "url", "place", "publisher")  # fmt: skip
assert tuple(f.name for f in fields(IndexedChunk))[: len(FIELDS)] == FIELDS
# The texts of a segment: bytes, or the file mapped read-only (``lexical_segments.map_file``).
Blob = bytes | mmap.mmap


class TextColumn(Sequence[str]):
    """Texts stored one after another in a UTF-8 blob, cut out and decoded when asked for."""

    __slots__ = ("_blob", "_ends")

    def __init__(self, blob: Blob, ends: Sequence[int]) -> None:
        self._blob = blob
        self._ends = list(ends)  # byte offset where text i ends
        previous = 0
        for end in self._ends:  # cheap; damage is found at load, not later
            if end < previous:
                raise ValueError("text offsets go backwards")
            previous = end
        if previous != len(blob):
            raise ValueError("text offsets do not match the text file")

    @staticmethod
    def encode(texts: Sequence[str]) -> tuple[bytes, npt.NDArray[np.int64]]:
        """(blob, end offsets) of ``texts``: what ``TextColumn(blob, ends)`` reads back."""
        raw = [t.encode("utf-8") for t in texts]
        ends = np.cumsum([len(r) for r in raw], dtype=np.int64)
        return b"".join(raw), ends

    def __len__(self) -> int:
        return len(self._ends)

    @overload
    def __getitem__(self, i: int) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> list[str]: ...
    def __getitem__(self, i: int | slice) -> str | list[str]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        i = range(len(self))[i]  # negative positions, and IndexError past the end
        start = self._ends[i - 1] if i else 0
        return self._blob[start : self._ends[i]].decode("utf-8")


class Gathered(Sequence[Any]):
    """Positions ``positions`` of the concatenation of ``parts``, looked up on access
    (the texts of an index's live chunks across segments, without decoding them all)."""

    __slots__ = ("_local", "_part", "_parts")

    def __init__(self, parts: Sequence[Sequence[Any]], positions: npt.NDArray[np.int64]) -> None:
        offsets = np.cumsum([0, *(len(p) for p in parts)])
        part = np.searchsorted(offsets, positions, side="right") - 1
        self._parts = list(parts)
        self._part = part.tolist()
        self._local = (positions - offsets[part]).tolist() if len(positions) else []

    def __len__(self) -> int:
        return len(self._part)

    @overload
    def __getitem__(self, i: int) -> Any: ...
    @overload
    def __getitem__(self, i: slice) -> list[Any]: ...
    def __getitem__(self, i: int | slice) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        return self._parts[self._part[i]][self._local[i]]


class ChunkColumns(Sequence[IndexedChunk]):
    """Chunks as one sequence per field; an ``IndexedChunk`` is made on first access and
    kept. Equal to any sequence of the same chunks in the same order (a tuple, a list)."""

    __slots__ = ("_columns", "_made")

    def __init__(self, columns: Mapping[str, Sequence[Any]]) -> None:
        self._columns = {f: columns[f] for f in FIELDS}
        n = len(self._columns[FIELDS[0]])
        if any(len(c) != n for c in self._columns.values()):
            raise ValueError("chunk columns differ in length")
        self._made: list[IndexedChunk | None] = [None] * n

    @classmethod
    def of(cls, chunks: Sequence[IndexedChunk]) -> ChunkColumns:
        if isinstance(chunks, ChunkColumns):
            return chunks
        table = cls({f: [getattr(c, f) for c in chunks] for f in FIELDS})
        table._made = list(chunks)
        return table

    def column(self, name: str) -> Sequence[Any]:
        return self._columns[name]

    def __len__(self) -> int:
        return len(self._made)

    @overload
    def __getitem__(self, i: int) -> IndexedChunk: ...
    @overload
    def __getitem__(self, i: slice) -> tuple[IndexedChunk, ...]: ...
    def __getitem__(self, i: int | slice) -> IndexedChunk | tuple[IndexedChunk, ...]:
        if isinstance(i, slice):
            return tuple(self[j] for j in range(*i.indices(len(self))))
        made = self._made[i]
        if made is None:  # two threads may both make it: equal objects, either is kept
            made = self._made[i] = IndexedChunk(*(self._columns[f][i] for f in FIELDS))
        return made

    def __iter__(self) -> Iterator[IndexedChunk]:
        return (self[i] for i in range(len(self)))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]


def column(chunks: Sequence[IndexedChunk], name: str) -> Sequence[Any]:
    """One field of every chunk, without making chunk objects when they are columns."""
    if isinstance(chunks, ChunkColumns):
        return chunks.column(name)
    return [getattr(c, name) for c in chunks]
