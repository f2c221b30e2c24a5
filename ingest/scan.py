"""Finding the files an ingest run covers, and the reasons some of them cannot be read.

Symlinks that lead outside the folder being ingested are not followed (a dropped link must
not pull in arbitrary files of the machine); unreadable or oversized files are reported.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from ingest.ignore import ignored_name
from ingest.loaders import SUPPORTED_SUFFIXES


@dataclass(frozen=True, slots=True)
class Candidate:
    key: str  # absolute, normalised path (symlinks not resolved): the manifest key
    display: str  # what users see and citations show
    size: int
    mtime_ns: int


@dataclass(frozen=True, slots=True)
class Rejected:
    key: str
    display: str
    reason: str


def display_path(key: str, base: str) -> str:
    """Relative to the documents folder ``base`` when below it, else absolute.

    Independent of the working directory, so every run names a file the same way.
    """
    rel = os.path.relpath(key, base)
    return key if rel.startswith("..") else rel


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except (ValueError, OSError):
        return False
    return True


def _check(path: Path, root: Path, base: str, max_bytes: int) -> Candidate | Rejected | None:
    key = os.path.abspath(path)
    shown = display_path(key, base)
    if path.suffix.lower() not in SUPPORTED_SUFFIXES:
        return None
    if path.is_symlink() and not _inside(path, root):
        return Rejected(key, shown, "symlink leads outside the ingested folder (not followed)")
    try:
        st = path.stat()
    except OSError as err:
        return Rejected(key, shown, f"cannot read: {err.strerror or err}")
    if not stat.S_ISREG(st.st_mode):
        return None
    if st.st_size > max_bytes:
        return Rejected(
            key,
            shown,
            f"file is {st.st_size / 1e6:.1f} MB, over the {max_bytes / 1e6:.1f} MB limit",
        )
    if not os.access(path, os.R_OK):
        return Rejected(key, shown, "cannot read: permission denied")
    return Candidate(key, shown, st.st_size, st.st_mtime_ns)


def _walk(root: Path) -> list[Path]:
    """Files below ``root``, skipping hidden and temporary ones (``ingest.ignore``)."""
    out: list[Path] = []
    for folder, dirs, files in os.walk(root, followlinks=False):
        dirs[:] = [d for d in dirs if not ignored_name(d)]  # prune: nothing below is read
        out.extend(Path(folder) / f for f in files if not ignored_name(f))
    return out


def scan(
    roots: list[Path], base: str, max_bytes: int
) -> tuple[list[Candidate], list[Rejected], list[str]]:
    """Files under ``roots`` (files or folders). Returns candidates, rejections, and the
    absolute root prefixes, which bound what a run may consider deleted."""
    found: dict[str, Candidate] = {}
    rejected: dict[str, Rejected] = {}
    prefixes: list[str] = []
    for root in roots:
        root_abs = os.path.abspath(root)
        if root.is_dir():
            prefixes.append(root_abs.rstrip(os.sep) + os.sep)
            paths = sorted(_walk(root))
            walk_root = root
        else:
            prefixes.append(root_abs)
            paths = [root]
            walk_root = root.parent
        for path in paths:
            checked = _check(path, walk_root, base, max_bytes)
            if isinstance(checked, Candidate):
                found[checked.key] = checked
            elif isinstance(checked, Rejected):
                rejected[checked.key] = checked
    return sorted(found.values(), key=lambda c: c.key), list(rejected.values()), prefixes


def covered(key: str, prefixes: list[str]) -> bool:
    return any(key == p or (p.endswith(os.sep) and key.startswith(p)) for p in prefixes)
