"""Small file helpers shared by the report writers: atomic writes and streaming hashes.

Every report file is written under a temporary name in the target folder and renamed into
place (``os.replace`` is atomic on POSIX within one file system), so a crash or a full disk
never leaves a half-written report that a later ``verify`` could mistake for a whole one.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from musicbrain_cli.errors import ReportError
from musicbrain_cli.inputs import sha256_file as _sha256_regular

_CHUNK = 1 << 20  # 1 MiB: large enough to stream quickly, small enough to stay cheap


def atomic_write_bytes(path: Path, data: bytes, *, mode: int = 0o644) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder, then rename.

    ``mode`` is applied before the rename, so the file never exists at its final name with
    looser permissions (this matters for private keys, written with ``0o600``).
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise ReportError(f"could not write {str(path)!r}: {exc}") from exc
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks (audio files can be large).

    Regular files only, checked before the first read and read up to the size they had
    when opened (:func:`musicbrain_cli.inputs.sha256_file`), so ``verify --audio`` given a
    FIFO or ``/dev/zero`` fails that check instead of hanging (issue 23). Refusals are
    ``OSError`` (and :class:`~musicbrain_cli.errors.InputError`).
    """
    return _sha256_regular(path, chunk_size=_CHUNK)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
