"""File helpers of the report writers: atomic writes and streaming hashes.

The implementations live in :mod:`musicbrain_cli.files` (one copy for the whole package);
here a failed write becomes a :class:`~musicbrain_cli.errors.ReportError` naming the file,
so a crash or a full disk never leaves a half-written report that a later ``verify`` could
mistake for a whole one.
"""

from __future__ import annotations

import os  # noqa: F401  (tests patch ``_io.os.fsync`` to simulate a full disk)
from pathlib import Path

from musicbrain_cli.errors import ReportError
# files.sha256_file reads regular files only, up to their size when opened, so
# ``verify --audio`` given a FIFO or ``/dev/zero`` fails that check instead of hanging
from musicbrain_cli.files import atomic_write, sha256_bytes, sha256_file

__all__ = ["atomic_write_bytes", "sha256_file", "sha256_bytes"]


def atomic_write_bytes(path: Path, data: bytes, *, mode: int = 0o644) -> Path:
    """:func:`musicbrain_cli.files.atomic_write` of ``data``; ``OSError`` -> ``ReportError``.

    ``mode`` is applied before the rename, so the file never exists at its final name with
    looser permissions (this matters for private keys, written with ``0o600``).
    """
    try:
        return atomic_write(path, data, mode=mode)
    except OSError as exc:
        raise ReportError(f"could not write {str(path)!r}: {exc}") from exc
