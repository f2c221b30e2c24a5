"""A big plain-text file read in sections, so its memory is that of one section.

A text or Markdown file over ``STREAM_FILE_MB`` is not read whole. Its bytes are read a block
of about ``SECTION_BYTES`` at a time, cut at a paragraph end (else a line end), and each
block is decoded on its own (a file that changes encoding part-way, say a UTF-8 report with
a legacy-encoded appendix, is decoded block by block), normalised and cleaned of
boilerplate. The first block is parsed as a whole small file would be, so the title,
date, dateline and source link come from the document's head as usual.

The document's text is the sections joined by a blank line; a section's ``start`` is its
offset in that text, so chunk offsets mean what they mean for any other document. The
bytes are hashed as they are read: ``Sections.changed`` tells whether the file changed
since it was planned (its content id no longer matches).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from ingest.loaders import parse_document, parse_section
from ingest.types import Document

SECTION_BYTES = 1_000_000  # about this much of the file per section
_MAX_BLOCK = 4 * SECTION_BYTES  # a block with no line end is cut here (at a character)
STREAMED_SUFFIXES = frozenset({".txt", ".md", ".markdown"})
SEPARATOR = "\n\n"  # between sections in the document's text
# Files in these encodings are not cut at a b"\n" (a newline is two or four bytes there).
_WIDE_BOMS = (b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff")


def is_streamed(path: Path, size: int, limit_bytes: int) -> bool:
    """Whether the file is read in sections rather than whole."""
    if size <= limit_bytes or path.suffix.lower() not in STREAMED_SUFFIXES:
        return False
    with open(path, "rb") as handle:
        return not handle.read(4).startswith(_WIDE_BOMS)


def content_id(data: bytes) -> str:
    """A document's id: the hash of its file's bytes (identical content, same id)."""
    return hashlib.sha256(data).hexdigest()[:32]


def file_content_id(path: Path) -> str:
    """``content_id`` of a file, read a block at a time."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Section:
    start: int  # offset of ``text`` in the document's text
    text: str


@dataclass
class Sections:
    """The sections of one streamed file, read lazily; iterate once."""

    path: Path
    doc_id: str
    display_path: str
    _digest: hashlib._Hash = field(default_factory=hashlib.sha256)
    head: Document | None = None  # the document's metadata; its text is the first section

    def __iter__(self) -> Iterator[Section]:
        at = 0
        with open(self.path, "rb") as handle:
            for i, block in enumerate(_blocks(handle, self._digest)):
                if i == 0:
                    # Raises LoadError (binary, no text) before anything is written.
                    self.head = parse_document(
                        self.path, block, self.doc_id, display_path=self.display_path
                    )
                    text = self.head.text
                else:
                    text = parse_section(self.path, block)
                if not text:
                    continue
                if at:
                    at += len(SEPARATOR)
                yield Section(at, text)
                at += len(text)

    @property
    def changed(self) -> bool:
        """After a full iteration: whether the bytes read are not the planned content."""
        return self._digest.hexdigest()[:32] != self.doc_id


def _blocks(handle: BinaryIO, digest: hashlib._Hash) -> Iterator[bytes]:
    """The file's bytes in blocks of about ``SECTION_BYTES``, each ending at a paragraph
    end when one is near, else at a line end, else (no line end in ``_MAX_BLOCK``) at a
    UTF-8 character boundary."""
    carry = b""
    while True:
        piece = handle.read(SECTION_BYTES)
        digest.update(piece)
        data = carry + piece
        if not piece:
            if data:
                yield data
            return
        cut = data.rfind(b"\n\n", SECTION_BYTES // 2) + 1
        if cut <= 0:
            cut = data.rfind(b"\n") + 1
        if cut <= 0:
            if len(data) < _MAX_BLOCK:
                carry = data
                continue
            cut = len(data)
            while cut > 0 and 0x80 <= data[cut - 1] < 0xC0:  # inside a UTF-8 character
                cut -= 1
            cut = cut - 1 if cut > 0 and data[cut - 1] >= 0xC0 else cut
            cut = cut or len(data)
        yield data[:cut]
        carry = data[cut:]
