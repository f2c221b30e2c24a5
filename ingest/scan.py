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

MAX_DEPTH = 100  # folder levels below a documents folder that are read


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


def _link_problem(path: Path, root: Path) -> str | None:
    """Why the symlink ``path`` is not followed, or None when it stays inside ``root``."""
    try:
        target = path.resolve()
    except (RuntimeError, OSError):  # ELOOP: Python 3.11 raises RuntimeError, later OSError
        return "symlink loop (not followed)"
    try:
        target.relative_to(root.resolve())
    except (ValueError, RuntimeError, OSError):
        return "symlink leads outside the ingested folder (not followed)"
    return None


def _check(path: Path, root: Path, base: str, max_bytes: int) -> Candidate | Rejected | None:
    key = os.path.abspath(path)
    shown = display_path(key, base)
    if path.suffix.lower() not in SUPPORTED_SUFFIXES:
        return None
    problem = _link_problem(path, root) if path.is_symlink() else None
    if problem:
        return Rejected(key, shown, problem)
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


def _walk(root: Path, base: str) -> tuple[list[Path], list[Rejected]]:
    """Files below ``root``, skipping hidden and temporary ones (``ingest.ignore``), and the
    folders that could not be read.

    Iterative, not ``os.walk``: on Python 3.11 that recurses once per level, and a folder
    1,000 levels deep ended the whole run with a RecursionError. Folders nested deeper than
    MAX_DEPTH are reported rather than read (no real document collection goes that deep).
    """
    out: list[Path] = []
    problems: list[Rejected] = []
    stack: list[tuple[str, int]] = [(os.fspath(root), 0)]
    while stack:
        folder, depth = stack.pop()
        if depth > MAX_DEPTH:
            key = os.path.abspath(folder)
            reason = f"folder nested more than {MAX_DEPTH} levels deep (not read)"
            problems.append(Rejected(key, display_path(key, base), reason))
            continue
        try:
            with os.scandir(folder) as entries:
                listed = list(entries)
        except OSError as err:
            key = os.path.abspath(folder)
            problems.append(
                Rejected(key, display_path(key, base), f"cannot read folder: {err.strerror or err}")
            )
            continue
        for entry in listed:
            if ignored_name(entry.name):
                continue  # pruned: nothing below a hidden or temporary folder is read
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                is_dir = False
            if is_dir:
                stack.append((entry.path, depth + 1))
            else:
                out.append(Path(entry.path))
    return out, problems


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
            walked, problems = _walk(root, base)
            paths = sorted(walked)
            rejected.update((p.key, p) for p in problems)
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
