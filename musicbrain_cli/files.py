"""Files, once for everyone: atomic writes, SHA-256 of files, canonical and pretty JSON.

Every file MusicBrain writes (weights, model cards, reports, manifests, keys, tables) goes
through :func:`atomic_write`: the bytes go to a temporary file in the target folder, are
flushed to disk (``fsync``), given their final permissions, and renamed into place
(``os.replace`` is atomic on POSIX within one file system). A crash, a full disk or an
exception in the writer therefore never leaves a half-written file under the final name,
and never a card that vouches for weights that are not there.

Hashes are streamed in bounded chunks (audio and weights can be large). Two JSON forms:

* :func:`canonical_json`: RFC 8785 (JSON Canonicalization Scheme) bytes, what manifests
  are signed over, so anyone can re-hash them with any RFC 8785 implementation;
* :func:`json_text`: sorted keys, two-space indent, no NaN, one final newline: what
  checkpoints' ``config.json`` and ``model_card.json`` hold (stable, so the same card gives
  the same bytes and the same SHA-256 from run to run).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

#: Bytes read per step when hashing: large enough to stream quickly, small enough to keep
#: memory bounded whatever the file's size.
HASH_CHUNK = 1 << 20
DEFAULT_MODE = 0o644


def atomic_write(path: str | os.PathLike, data: bytes | str | Callable[[Path], Any], *,
                 mode: int = DEFAULT_MODE, encoding: str = "utf-8") -> Path:
    """Write ``data`` to ``path`` through a temporary file beside it, then rename.

    ``data`` is bytes, text (encoded with ``encoding``) or a callable ``write(tmp_path)``
    that writes the temporary file itself (e.g. ``safetensors.torch.save_file``). ``mode``
    is applied before the rename, so the file never exists under its final name with looser
    permissions (private keys are written with ``0o600``). On any error, the temporary file
    is removed and the error propagates (``OSError`` as raised; callers wrap it in their own
    :mod:`musicbrain_cli.errors` class); ``path`` is then untouched.
    """
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        if callable(data):
            os.close(fd)
            fd = -1
            data(tmp)
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        else:
            raw = data.encode(encoding) if isinstance(data, str) else bytes(data)
            with os.fdopen(fd, "wb") as fh:
                fd = -1
                fh.write(raw)
                fh.flush()
                os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    return path


def sha256_file(path: str | os.PathLike, *, chunk_size: int = HASH_CHUNK) -> str:
    """Hex SHA-256 of a regular file's bytes, read ``chunk_size`` bytes at a time.

    Only a regular file is read, checked before the first byte, and only up to the size it
    had when opened (:func:`musicbrain_cli.inputs.sha256_file`), so no hash anywhere in the
    package can hang on a FIFO or ``/dev/zero`` (issue 23). Raises ``OSError`` (the
    refusals are also :class:`~musicbrain_cli.errors.InputError`) when the file cannot be
    read; callers name the file in their own error class.
    """
    from musicbrain_cli.inputs import sha256_file as regular_sha256

    return regular_sha256(path, chunk_size=chunk_size)


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def safetensors_metadata(data: bytes) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors file from its bytes (the format's layout: an
    8-byte little-endian header length, then that many bytes of JSON), so that a file read
    once for its hash is also the one whose metadata is used. Raises ``ValueError``."""
    if len(data) < 8:
        raise ValueError(f"{len(data)} bytes: too short for a safetensors header")
    n = int.from_bytes(data[:8], "little")
    if n > len(data) - 8:
        raise ValueError(f"a header of {n} bytes in a file of {len(data)}")
    try:
        header = json.loads(data[8:8 + n].decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ValueError(f"its header is not UTF-8: {exc}") from exc
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(meta or {}, dict) or not isinstance(header, dict):
        raise ValueError("its header is not a JSON object with an object of metadata")
    return dict(meta or {})


def installed_version(package: str) -> str:
    """The installed distribution's version of ``package``, or ``"absent"``."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "absent"


def canonical_json(obj: Any) -> bytes:
    """RFC 8785 canonical UTF-8 bytes of ``obj`` (sorted keys, no whitespace, ECMAScript
    number form): the bytes signatures are made over. Raises ``rfc8785.CanonicalizationError``,
    ``TypeError`` or ``ValueError`` for values JSON cannot hold (NaN, non-string keys...)."""
    import rfc8785

    return rfc8785.dumps(obj)


def json_text(data: Any) -> str:
    """Stable, readable JSON: sorted keys, two-space indent, NaN refused, final newline."""
    return json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n"


__all__ = ["atomic_write", "sha256_file", "sha256_bytes", "canonical_json", "json_text",
           "HASH_CHUNK"]


def absent(path: str | os.PathLike) -> bool:
    """Whether ``path`` is not there (a dangling link is there). ``os.path.lexists`` is
    False for a path it cannot look at, a file in a folder without search permission, and
    such an input was refused or listed as "no such file or folder" (review of session 47):
    it is there, and the scan fails it on its own, with the system's reason."""
    try:
        os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return True
    except (OSError, ValueError):
        return False
    return False


def walk_tree(top: str | os.PathLike, onerror: Callable[[OSError], None],
               unknown: dict[str, OSError] | None = None):
    """``os.walk(top, followlinks=True, onerror=onerror)``, top-down (the caller may prune
    and order ``dirs``), with an explicit stack instead of one nested generator per level:
    Python 3.11's os.walk raised RecursionError on a tree about 1,000 folders deep, which
    stopped the whole scan with no catalog (one crafted archive is enough). An entry that
    cannot be told a folder or a file (a link into a folder that cannot be searched) is
    listed with the files, as os.walk lists it, and its error kept in ``unknown`` under its
    path (``os.path.join(root, name)``)."""
    stack = [os.fspath(top)]
    while stack:
        root = stack.pop()
        dirs: list[str] = []
        files: list[str] = []
        try:
            with os.scandir(root) as entries:
                for entry in entries:
                    try:
                        is_dir = entry.is_dir()     # follows links, as os.walk does
                    except OSError as exc:
                        is_dir = False
                        if unknown is not None:
                            unknown[os.path.join(root, entry.name)] = exc
                    (dirs if is_dir else files).append(entry.name)
        except OSError as exc:       # as os.walk: the folder is reported, not half-listed
            onerror(exc)
            continue
        yield root, dirs, files
        stack.extend(os.path.join(root, d) for d in reversed(dirs))


def find_files(root: str | os.PathLike, suffixes: tuple[str, ...]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Every file under ``root`` whose suffix (case-folded) is one of ``suffixes``, sorted,
    following symbolic links to folders as a scan does (a data folder is often assembled from
    links), each folder entered once: ``(files, skipped)``, where ``skipped`` lists, with the
    reason, folders that could not be read and links that lead to a folder already walked (a
    loop, or a second way to it), so that nothing is passed over without a word.

    Real folders are walked first and links after, so a folder under ``root`` keeps its own
    path whatever links point at it (its files' names, and labels read from them, do not
    depend on how a link sorts)."""
    skipped: list[tuple[str, str]] = []
    seen: set[tuple[int, int]] = set()
    files: list[Path] = []
    links: list[str] = []

    def on_error(exc: OSError) -> None:
        skipped.append((str(exc.filename or root), f"cannot read folder: {exc.strerror}"))

    def walk(top: str) -> None:
        # walk_tree, not os.walk: Python 3.11's os.walk raised RecursionError on a tree
        # about 1,000 folders deep, and the data build stopped with a traceback
        for folder, dirs, names in walk_tree(top, on_error):
            try:
                st = os.stat(folder)
            except OSError as exc:
                skipped.append((folder, f"cannot read folder: {exc.strerror}"))
                dirs[:] = []
                continue
            if (st.st_dev, st.st_ino) in seen:
                skipped.append((folder, "folder already walked (a symbolic link loop, or a second "
                                        "way to it)"))
                dirs[:] = []
                continue
            seen.add((st.st_dev, st.st_ino))
            links.extend(os.path.join(folder, d) for d in sorted(dirs)
                         if os.path.islink(os.path.join(folder, d)))
            dirs[:] = sorted(d for d in dirs if not os.path.islink(os.path.join(folder, d)))
            files.extend(Path(folder) / n for n in names if Path(n).suffix.lower() in suffixes)

    walk(os.fspath(root))
    while links:                 # links last, each to a folder not reached otherwise
        walk(links.pop(0))
    return sorted(files), skipped


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, *, name: str, holder: str):
    """Hold the advisory lock file ``name`` in ``folder`` while the block runs: one writer
    of a folder at a time (a scan's output folder, an evaluation's).

    Raises :class:`~musicbrain_cli.errors.InputError` at once, naming the holder (pid, host,
    since when), when another ``holder`` (``"scan"``, ``"evaluation"``) holds it. ``flock``
    locks are released by the kernel when the holder exits, even on ``kill -9``.
    """
    import fcntl
    import socket

    from musicbrain_cli.errors import InputError

    path = Path(folder) / name
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
    except OSError as exc:
        raise InputError(f"cannot use output folder {str(folder)!r}: cannot create its lock "
                         f"file: {exc.strerror or exc}") from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            who = os.pread(fd, 300, 0).decode("utf-8", "replace").strip()
            who = "".join(c for c in who if c.isprintable()) or "unknown holder"
            raise InputError(f"output folder {str(folder)!r} is in use by another {holder} "
                             f"({who}); wait for it to finish or choose another -o") from None
        except OSError as exc:
            raise InputError(f"cannot lock output folder {str(folder)!r}: "
                             f"{exc.strerror or exc}") from exc
        now = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on host {socket.gethostname()}, since {now}\n".encode(), 0)
        yield
    finally:
        os.close(fd)
