"""The project's own exceptions, and the exit status each one means.

Library code raises these (never a bare ``httpx``/``chromadb``/pydantic exception past a
module boundary); entry points map them once: the CLI to an exit status and one line on
stderr, the bot to a polite reply. ``str(err)`` is always a one-line, user-facing reason
that names what to fix, and carries no secret (see ``ingest.redact``).

    BriefingError
    ├── UsageError            exit 2: the user asked for something impossible
    │   └── ConfigError       a setting has a value it cannot take
    └── FatalError            exit 3: the run cannot go on
        ├── IngestLocked      another ingest holds the lock
        ├── IndexRebuilding   ``ingest --rebuild`` is replacing the index right now
        ├── IndexMismatch     the index was built with another embedding model
        ├── IndexUnavailable  Chroma could not be reached, opened or written
        └── ModelNotInstalled the local embedding model is missing (ingest.onnx_export)
"""

from __future__ import annotations

from enum import IntEnum

from ingest.redact import scrub


class ExitStatus(IntEnum):
    """Exit statuses of every ``briefing`` command (README "Exit codes")."""

    OK = 0
    FILES_FAILED = 1  # ingest: some files could not be indexed; the rest were
    USAGE = 2  # bad arguments, bad configuration, a missing folder
    FATAL = 3  # the run could not go on (lock held, index unusable, Chroma unreachable)


class BriefingError(Exception):
    """Base of the project's own errors; ``str(err)`` is the one-line user-facing reason."""

    exit_status: ExitStatus = ExitStatus.FATAL

    def __str__(self) -> str:
        # One line, whatever the wrapped cause put in its message, and no secret in it.
        return scrub(" ".join(super().__str__().split()))


class UsageError(BriefingError):
    """The request cannot be done as asked (bad argument, missing folder)."""

    exit_status = ExitStatus.USAGE


class ConfigError(UsageError):
    """A setting (environment variable or ``.env`` line) has a value it cannot take."""


class FatalError(BriefingError):
    """The run cannot go on; nothing is half-written (the next run repairs what is)."""

    exit_status = ExitStatus.FATAL


class IngestLocked(FatalError):
    """Another ingest holds the lock."""


class IndexRebuilding(FatalError):
    """``ingest --rebuild`` is replacing the index; answers would come from half of it."""


class IndexMismatch(FatalError):
    """The index was built with another embedding model; answering or ingesting would mix spaces."""


class IndexUnavailable(FatalError):
    """Chroma could not be reached, opened or written."""


def exit_status(err: BaseException) -> ExitStatus:
    """The exit status an exception means (anything unknown is fatal)."""
    return err.exit_status if isinstance(err, BriefingError) else ExitStatus.FATAL
