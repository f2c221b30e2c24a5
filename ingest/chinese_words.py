"""jieba word segmentation with its prefix dictionary loaded piece by piece, as text needs it.

``jieba.initialize()`` unmarshals its whole prefix dictionary (498k entries) before it cuts
one word, a large part of what a one-shot `briefing ask` paid whenever a retrieved passage
held Chinese. Every dictionary look-up jieba makes while cutting a text is a substring of
that text (``get_DAG`` walks ``text[k:i]``, ``calc`` and ``cut_for_search`` read words and
grams cut from it), so only the entries whose first two characters occur in the text (and
the single characters it holds) are needed. This module keeps jieba's dictionary in a file
grouped by those first two characters, and fills the dictionary of a ``jieba.Tokenizer``
with the groups a text needs before jieba cuts it: the words it returns are jieba's, with
the same frequencies and total.

The file (``jieba-words-<fingerprint>.bin``, 13 MB) is kept in the folder ``use_folder``
names (the data folder's ``cache``; the temp dir until one is named) and in the temp dir,
where a new data folder copies it from. Without a usable one (absent, corrupt: checksum,
made from another jieba dictionary) the process loads jieba's dictionary whole, as before,
and writes the file for the next one (once). Past ``WHOLE_AFTER`` characters
(an ingest) the whole dictionary is read from the file at once.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

_MAGIC = b"BRJIEBA1"
_FORMAT = 1
# A group is keyed by its first two characters' code points; a single-character word has no
# second character and takes this one, beyond Unicode's range.
_ALONE = 0x1FFFFF
Int64Array = npt.NDArray[np.int64]
# Characters cut group by group before the whole dictionary is read (a one-shot answer's
# passages hold a few thousand; one Chinese document tens of thousands).
WHOLE_AFTER = 50_000


def group_code(word: str) -> int:
    """The group ``word`` is filed under: its first two characters (one for a 1-char word)."""
    second = ord(word[1]) if len(word) > 1 else _ALONE
    return (ord(word[0]) << 21) | second


def codes_of(text: str) -> set[int]:
    """The groups a cut of ``text`` can look up: each character alone, each adjacent pair."""
    codes = {(ord(c) << 21) | _ALONE for c in set(text)}
    codes.update((ord(text[i]) << 21) | ord(text[i + 1]) for i in range(len(text) - 1))
    return codes


@dataclass(frozen=True)
class WordFile:
    """The dictionary file, read: group codes (sorted), where each group's words start in
    ``words`` (UTF-8, each ending in a newline) and in ``freqs``, and jieba's total."""

    codes: Int64Array
    byte_starts: Int64Array  # len(codes) + 1
    entry_starts: Int64Array  # len(codes) + 1
    freqs: Int64Array
    words: bytes
    total: int

    def entries(self, codes: set[int]) -> dict[str, int]:
        """The words (and frequencies) of the groups in ``codes``."""
        wanted = np.fromiter(sorted(codes), dtype=np.int64, count=len(codes))
        out: dict[str, int] = {}
        for g in _matches(self.codes, wanted).tolist():
            b0, b1 = int(self.byte_starts[g]), int(self.byte_starts[g + 1])
            e0, e1 = int(self.entry_starts[g]), int(self.entry_starts[g + 1])
            words = self.words[b0:b1].decode("utf-8").split("\n")[:-1]
            out.update(zip(words, self.freqs[e0:e1].tolist(), strict=True))
        return out


def _matches(codes: Int64Array, wanted: Int64Array) -> Int64Array:
    """Indices into ``codes`` (sorted) of the values of ``wanted`` it holds."""
    at = np.searchsorted(codes, wanted)
    inside = at < len(codes)
    at, wanted = at[inside], wanted[inside]
    found: Int64Array = at[codes[at] == wanted]
    return found


def build_file(freq: dict[str, int], total: int, source: str) -> bytes:
    """The file's bytes for jieba's prefix dictionary ``freq`` (word → frequency, 0 for a
    prefix that is no word) and ``total``; ``source`` names the dictionary it came from."""
    words = list(freq)
    if any("\n" in w or not w for w in words):
        raise ValueError("a dictionary word is empty or holds a newline")
    codes = np.fromiter((group_code(w) for w in words), dtype=np.int64, count=len(words))
    order = np.argsort(codes, kind="stable")
    sorted_words = [words[i] for i in order.tolist()]
    blob = ("\n".join(sorted_words) + "\n").encode("utf-8")
    ends = np.flatnonzero(np.frombuffer(blob, dtype=np.uint8) == 10).astype(np.int64) + 1
    word_starts = np.concatenate([[0], ends[:-1]]).astype(np.int64)
    sorted_codes = codes[order]
    group_codes, first = np.unique(sorted_codes, return_index=True)
    entry_starts = np.append(first, len(words)).astype(np.int64)
    byte_starts = np.append(word_starts[first], len(blob)).astype(np.int64)
    freqs = np.fromiter((freq[w] for w in sorted_words), dtype=np.int64, count=len(words))
    arrays = [group_codes.astype(np.int64), byte_starts, entry_starts, freqs]
    payload = b"".join(a.astype("<i8").tobytes() for a in arrays) + blob
    head = {
        "format": _FORMAT,
        "source": source,
        "total": total,
        "groups": len(group_codes),
        "entries": len(words),
        "word_bytes": len(blob),
        "crc32": zlib.crc32(payload),
    }
    head_bytes = json.dumps(head).encode()
    return _MAGIC + len(head_bytes).to_bytes(4, "little") + head_bytes + payload


def read_file(data: bytes, source: str) -> WordFile:
    """``data`` read back; ValueError when it is not a whole file made from ``source``."""
    if data[: len(_MAGIC)] != _MAGIC:
        raise ValueError("not a word file")
    at = len(_MAGIC) + 4
    head_len = int.from_bytes(data[len(_MAGIC) : at], "little")
    head: dict[str, Any] = json.loads(data[at : at + head_len])
    if head.get("format") != _FORMAT or head.get("source") != source:
        raise ValueError("made by another format or from another dictionary")
    payload = memoryview(data)[at + head_len :]
    groups, entries, word_bytes = int(head["groups"]), int(head["entries"]), int(head["word_bytes"])
    if len(payload) != 8 * (3 * groups + 2 + entries) + word_bytes:
        raise ValueError("truncated")
    if zlib.crc32(payload) != head["crc32"]:
        raise ValueError("checksum mismatch")
    arrays, offset = [], 0
    for count in (groups, groups + 1, groups + 1, entries):
        arrays.append(np.frombuffer(payload, dtype="<i8", count=count, offset=offset))
        offset += 8 * count
    codes, byte_starts, entry_starts, freqs = arrays
    return WordFile(
        codes, byte_starts, entry_starts, freqs, bytes(payload[offset:]), int(head["total"])
    )


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".jieba-")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the bot may run as another user
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class ChineseWords:
    """jieba's ``lcut_for_search`` on a ``jieba.Tokenizer`` whose dictionary holds what the
    texts cut so far needed (or, when no word file could be read, jieba's own default
    tokenizer with its whole dictionary, for this process; the file is made for the next)."""

    def __init__(self, folder: Path) -> None:
        jieba = import_jieba()
        jieba.setLogLevel(logging.WARNING)  # its dictionary-loading chatter
        self._jieba = jieba
        self._lock = threading.Lock()
        self._loaded: set[int] = set()
        self._chars = 0  # Chinese characters cut so far
        self.source = source_fingerprint(jieba)
        name = f"jieba-words-{self.source}.bin"
        self.path = folder / name
        self.file: WordFile | None = None
        self.tokenizer: Any = jieba.dt  # a jieba.Tokenizer (jieba has no type hints)
        # The data folder's file, else the one another data folder left in the temp dir
        # (copied here): a new data folder does not pay jieba's whole load again.
        shared = Path(tempfile.gettempdir()) / name
        for path in dict.fromkeys([self.path, shared]):
            try:
                data = path.read_bytes()
                self.file = read_file(data, self.source)
            except FileNotFoundError:
                continue
            except (OSError, ValueError, KeyError, TypeError) as err:
                log.warning("jieba word file %s unusable (%s): rebuilding it", path, err)
                continue
            if path != self.path:
                _save(self.path, data)
            break
        else:
            self._build([self.path, shared])
            return
        tokenizer = jieba.Tokenizer()
        tokenizer.total = self.file.total
        tokenizer.initialized = True  # its dictionary is filled here, group by group
        self.tokenizer = tokenizer

    def _build(self, paths: list[Path]) -> None:
        """jieba's default dictionary loaded whole, as before, and saved as a word file for
        the next process; this process cuts with it."""
        jieba = self._jieba
        jieba.dt.initialize()
        try:
            data = build_file(jieba.dt.FREQ, jieba.dt.total, self.source)
        except ValueError as err:  # a dictionary this format cannot hold: jieba as is
            log.warning("jieba's dictionary cannot be filed by groups: %s", err)
            return
        for path in dict.fromkeys(paths):
            _save(path, data)

    def cut_for_search(self, text: str) -> list[str]:
        """``jieba.lcut_for_search(text)``: words, and the parts of long words."""
        if self.file is not None:
            with self._lock:
                self._fill(text)
        words: list[str] = self.tokenizer.lcut_for_search(text)
        return words

    def _fill(self, text: str) -> None:
        """The groups ``text`` needs, in the tokenizer's dictionary. Past ``WHOLE_AFTER``
        characters (an ingest, not one question) the whole dictionary is read at once:
        group by group costs more per character than jieba's cutting."""
        file = self.file
        if file is None:
            return
        self._chars += len(text)
        if self._chars > WHOLE_AFTER:
            words = file.words.decode("utf-8").split("\n")[:-1]
            self.tokenizer.FREQ = dict(zip(words, file.freqs.tolist(), strict=True))
            self.file = None  # complete: nothing more to fill
            return
        missing = codes_of(text) - self._loaded
        if missing:
            self.tokenizer.FREQ.update(file.entries(missing))
            self._loaded |= missing


def _save(path: Path, data: bytes) -> None:
    try:
        _write_atomic(path, data)
    except OSError as err:  # a read-only data folder: the next process builds it again
        log.warning("could not save jieba's word file at %s: %s", path, err)


def import_jieba() -> Any:
    """``import jieba``, without ``pkg_resources``.

    ``jieba._compat`` imports setuptools' deprecated ``pkg_resources`` (most of jieba's
    import time) only to open jieba's own data files, and opens them by path when that
    import fails; so it is made to fail, unless something already loaded it.
    """
    if "jieba" in sys.modules or "pkg_resources" in sys.modules:
        import jieba

        return jieba
    sys.modules["pkg_resources"] = None  # type: ignore[assignment]  # import raises ImportError
    try:
        import jieba
    finally:
        if "pkg_resources" in sys.modules and sys.modules["pkg_resources"] is None:
            del sys.modules["pkg_resources"]
    return jieba


def source_fingerprint(jieba_module: Any) -> str:
    """jieba's version and its dictionary file's size and time: a new dictionary, a new
    word file."""
    path = Path(jieba_module.__file__).with_name("dict.txt")
    stat = path.stat()
    return f"{jieba_module.__version__}-{stat.st_size}-{int(stat.st_mtime)}"


_folder: Path | None = None
_words: ChineseWords | None = None
_words_lock = threading.Lock()


def use_folder(folder: Path) -> None:
    """Keep the word file in ``folder`` (read when Chinese is first cut in this process)."""
    global _folder
    _folder = Path(folder)


def chinese_words() -> ChineseWords:
    """The process's segmenter, made on first use."""
    global _words
    if _words is None:
        with _words_lock:
            if _words is None:
                _words = ChineseWords(_folder or Path(tempfile.gettempdir()))
    return _words
