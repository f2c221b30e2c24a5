"""Files a folder ingest skips: hidden files and the temporary files of editors and copies.

A colleague's Word session leaves ``~$report.docx`` (an owner lock, not a document),
browsers download into ``*.crdownload``/``*.part`` and rename when done, vim writes
``.report.md.swp``, rsync copies into ``.name.XXXXXX``. Indexing those would report a
"corrupt" document or quote a half-written one, so folder walks and the watcher skip them.
A file named explicitly on the command line is never skipped.
"""

from __future__ import annotations

import os

# Suffixes of files that are still being written or belong to an editor, not a person.
TEMP_SUFFIXES = frozenset(
    {".part", ".partial", ".crdownload", ".download", ".tmp", ".temp", ".swp", ".swx", ".swo"}
)
# Name prefixes: hidden (dot), Office owner locks (~$), LibreOffice/emacs locks (.~lock, .#).
TEMP_PREFIXES = ("~$", ".", "#")


def ignored_name(name: str) -> bool:
    """True for a file or folder name that a folder ingest skips."""
    if not name or name.startswith(TEMP_PREFIXES) or name.endswith("~"):
        return True
    _, suffix = os.path.splitext(name)
    return suffix.lower() in TEMP_SUFFIXES


def ignored_path(path: str, root: str) -> bool:
    """True when any part of ``path`` below ``root`` is skipped (a hidden folder hides all)."""
    rel = os.path.relpath(path, root)
    if rel == "." or rel.startswith(".." + os.sep) or rel == "..":
        return False
    return any(ignored_name(part) for part in rel.split(os.sep))
