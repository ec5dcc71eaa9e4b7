"""Reading files a user names: regular files only, checked before the first byte, bounded.

A FIFO named ``pipe.wav`` blocks ``open()`` until a writer appears and a read until it
writes; a link to ``/dev/zero`` named ``zero.wav`` never reaches end-of-file. Either hung a
whole scan (and ``verify --audio``) because the file was hashed before anything checked
what it was (issue 23, observation 5). So every read of a user's file goes through
:func:`open_regular`:

1. ``os.stat`` (which follows symbolic links: a link to a regular file is fine, a link to a
   device or FIFO is judged by what it points at) must say ``S_ISREG`` before anything is
   opened;
2. the file is then opened with ``O_NONBLOCK`` (so that, should it have been swapped for a
   FIFO since step 1, the open returns at once instead of waiting for a writer) and
   ``fstat`` of the open descriptor must again say ``S_ISREG`` with the same device and
   inode, which closes the race between the check and the open.

Reads are bounded by the size the file had when it was opened: :func:`sha256_file` reads
exactly that many bytes and fails, naming the file, if the file grew or shrank meanwhile
(a file still being written is no evidence of anything yet).
"""

from __future__ import annotations

import hashlib
import os
import stat
from typing import BinaryIO

from musicbrain_cli.errors import FileChangedError, NotRegularFileError, UnreadableFileError

#: Bytes read per step when hashing (bounded memory whatever the file's size).
HASH_CHUNK = 1 << 20
#: Largest file :func:`read_regular` loads whole into memory. Report files (a result.json
#: of a 24 h track, a PDF with its figures) are a few MiB; a larger one is refused rather
#: than allowed to exhaust memory.
MAX_READ_BYTES = 256 << 20


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return f"not a regular file (mode {stat.filemode(mode)})"


def check_regular(path: str | os.PathLike) -> os.stat_result:
    """``os.stat(path)`` if it names a regular file (through any symbolic links).

    Raises :class:`NotRegularFileError` for a FIFO, device, socket or folder and
    :class:`UnreadableFileError` when it cannot be stat'ed (missing, a link loop, no permission on
    a parent folder).
    """
    try:
        st = os.stat(path)
    except FileNotFoundError as exc:
        raise UnreadableFileError(f"{os.fspath(path)}: no such file") from exc
    except OSError as exc:
        raise UnreadableFileError(f"{os.fspath(path)}: cannot be read ({exc.strerror or exc})") from exc
    if not stat.S_ISREG(st.st_mode):
        target = os.path.realpath(path)
        via = f" (a link to {target})" if target != os.path.abspath(path) else ""
        raise NotRegularFileError(
            f"{os.fspath(path)}: is {_kind(st.st_mode)}{via}, not a regular file; refused "
            "without reading it (it could block or never end)")
    return st


def open_regular(path: str | os.PathLike) -> tuple[BinaryIO, os.stat_result]:
    """Open ``path`` for binary reading only if it is a regular file; see the module doc.

    Returns the open file and its ``fstat`` (``st_size`` is the size to read up to).
    """
    st = check_regular(path)
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise UnreadableFileError(f"{os.fspath(path)}: cannot be read ({exc.strerror or exc})") from exc
    try:
        now = os.fstat(fd)
        if not stat.S_ISREG(now.st_mode) or (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
            raise NotRegularFileError(f"{os.fspath(path)}: was replaced by {_kind(now.st_mode)} "
                                      "while being opened; refused")
        os.set_blocking(fd, True)  # no effect on regular files; restores the usual mode
        return os.fdopen(fd, "rb"), now
    except BaseException:
        os.close(fd)
        raise


def sha256_file(path: str | os.PathLike, *, chunk_size: int = HASH_CHUNK) -> str:
    """Hex SHA-256 of a regular file's bytes, reading exactly the size it had when opened.

    Raises :class:`NotRegularFileError` before any read for anything but a regular file,
    :class:`FileChangedError` if the size changed during the read, :class:`UnreadableFileError`
    if it cannot be read (all three are ``InputError`` and ``OSError``).
    """
    digest = hashlib.sha256()
    fh, st = open_regular(path)
    left = st.st_size
    try:
        with fh:
            while left > 0:
                chunk = fh.read(min(chunk_size, left))
                if not chunk:
                    break
                digest.update(chunk)
                left -= len(chunk)
            grew = bool(fh.read(1)) if left == 0 else False
    except OSError as exc:
        raise UnreadableFileError(f"{os.fspath(path)}: cannot be read ({exc.strerror or exc})") from exc
    if left or grew:
        raise FileChangedError(f"{os.fspath(path)}: its size changed while it was being read "
                               f"({st.st_size} bytes when opened); is it still being written?")
    return digest.hexdigest()


def read_regular(path: str | os.PathLike, *, max_bytes: int = MAX_READ_BYTES) -> bytes:
    """All bytes of a regular file of at most ``max_bytes``, read as :func:`sha256_file`
    reads (refused before any read if not a regular file; exactly the size it had when
    opened). Every refusal is an ``OSError`` naming the file."""
    fh, st = open_regular(path)
    with fh:
        if st.st_size > max_bytes:
            raise UnreadableFileError(f"{os.fspath(path)}: {st.st_size} bytes, more than the "
                                      f"{max_bytes} a file of this kind may have; not read")
        try:
            data = fh.read(st.st_size)
            grew = bool(fh.read(1))
        except OSError as exc:
            raise UnreadableFileError(f"{os.fspath(path)}: cannot be read ({exc.strerror or exc})") from exc
    if len(data) != st.st_size or grew:
        raise FileChangedError(f"{os.fspath(path)}: its size changed while it was being read "
                               f"({st.st_size} bytes when opened)")
    return data


__all__ = ["MAX_READ_BYTES", "check_regular", "open_regular", "read_regular", "sha256_file"]
