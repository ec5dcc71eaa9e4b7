"""Discovery, the scan's first step: which files a scan takes, and the folder each one gets.

:func:`discover` walks files and folders (links followed, every folder entered once, a
stable order), :func:`read_path_list` reads a text file of paths for catalogs that do not
sit in one folder, and :func:`safe_name` names a track's output folder so that no file name
can escape the output folder. Reads nothing but names and folder entries; no audio.
"""

from __future__ import annotations

import hashlib
import os
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

from musicbrain_cli.errors import InputError, MusicBrainError

#: File name extensions taken for audio when a folder is scanned (files named explicitly
#: are always tried). Anything else in a folder is skipped with a note.
AUDIO_EXTENSIONS = frozenset({
    ".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".mp4", ".aac",
    ".aif", ".aiff", ".aifc", ".wma", ".webm", ".mka", ".caf", ".ac3", ".wv", ".ape",
})
#: Prefix of the scan's temporary folders inside OUT (a track folder being written, an old
#: one being replaced); the walk never enters them.
TMP_PREFIX = ".tmp-"
MAX_NAME_CHARS = 60


@dataclass
class Discovery:
    files: list[Path] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)   # (path, reason)
    #: inputs that do not exist: the scan lists each as a failed input, never a skip
    missing: list[str] = field(default_factory=list)


def discover(inputs: Iterable[str | os.PathLike], *,
             output: str | os.PathLike | None = None) -> Discovery:
    """Audio files under ``inputs`` (files or folders), recursively, in a stable order.

    Symbolic links are followed, but every folder is entered once (by device and inode),
    so a link loop cannot trap the walk. Files are de-duplicated by their real path.
    Folder entries without an audio extension are skipped with a note. ``output``: the
    scan's output folder, never entered when it lies inside an input (its reports are not
    inputs, and would otherwise each be listed as skipped on every rerun).
    """
    found = Discovery()
    seen_dirs: set[tuple[int, int]] = set()
    try:
        st = os.stat(output) if output is not None else None
    except OSError:
        st = None       # not made yet: nothing of it to enter
    output_key = (st.st_dev, st.st_ino) if st is not None else None
    seen_files: set[str] = set()

    def add_file(p: Path) -> None:
        real = os.path.realpath(p)
        if real not in seen_files:
            seen_files.add(real)
            found.files.append(p)

    for raw in inputs:
        top = Path(raw)
        if not os.path.lexists(top):
            found.missing.append(str(top))
        elif top.is_dir():
            if output_key is not None and _key(top) == output_key:
                # its files would never be looked at (the output folder is not entered), and
                # the scan would end with "0 recordings", exit 0 (session 28 audit)
                raise InputError(f"the input folder {str(top)!r} is the output folder itself: "
                                 "give the reports their own folder with -o (a folder inside "
                                 "the input is fine)")
            _walk(top, found, seen_dirs, add_file, output_key)
        else:
            # named explicitly: a FIFO or a device is analysed (and refused by the intake
            # with a failure row and exit status 1) as it is inside a folder, never passed
            # over with exit 0
            add_file(top)
    return found


#: Most paths one list file may name (a day's uploads of a large service, with room).
MAX_LISTED_PATHS = 1_000_000


def read_path_list(path: str | os.PathLike) -> list[str]:
    """The paths a text file lists, one per line (UTF-8; blank lines and lines whose first
    character other than a space is ``#`` ignored; a relative path is taken relative to the
    list file's folder), for catalogs that do not sit in one folder. Each path is taken as written, spaces at either
    end included (file names may hold them); only the line ending is removed. The file is
    read as untrusted input: a regular file only, bounded in size and in the number of
    paths. Raises :class:`InputError`."""
    from musicbrain_cli.inputs import read_regular

    try:
        text = read_regular(path).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"path list {os.fspath(path)!r} is not UTF-8 text: {exc}") from exc
    except OSError as exc:
        raise InputError(f"cannot read path list {os.fspath(path)!r}: "
                         f"{exc.strerror or exc}") from exc
    base = Path(path).parent
    out = []
    for line in text.split("\n"):
        line = line.removesuffix("\r")
        if not line.strip():
            continue
        if line.lstrip().startswith("#"):
            named = base / line if not os.path.isabs(line) else Path(line)
            if os.path.lexists(named):
                # "#1 hit.ogg": a comment, or a file whose name starts with "#"? Neither
                # guess is safe: one drops a recording without a word.
                raise InputError(f"path list {os.fspath(path)!r}: the comment line {line!r} "
                                 "is also the name of a file there; write it as "
                                 f"'./{line}' to scan it, or '# {line}' to leave it out")
            continue
        if "\x00" in line:
            raise InputError(f"path list {os.fspath(path)!r} holds a NUL character")
        out.append(str(base / line) if not os.path.isabs(line) else line)
        if len(out) > MAX_LISTED_PATHS:
            raise InputError(f"path list {os.fspath(path)!r} names more than "
                             f"{MAX_LISTED_PATHS:,} paths; split it")
    return out


def _key(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _walk(top: Path, found: Discovery, seen_dirs: set, add_file: Callable[[Path], None],
          output_key: tuple[int, int] | None = None) -> None:
    def on_error(exc: OSError) -> None:
        found.skipped.append((str(exc.filename), f"cannot read folder: {exc.strerror}"))

    for root, dirs, files in os.walk(top, followlinks=True, onerror=on_error):
        try:
            st = os.stat(root)
        except OSError as exc:
            found.skipped.append((root, f"cannot read folder: {exc.strerror}"))
            dirs[:] = []
            continue
        key = (st.st_dev, st.st_ino)
        if key == output_key:          # the scan's own output folder
            dirs[:] = []
            continue
        if key in seen_dirs:
            found.skipped.append((root, "folder already visited (named twice, or a symbolic "
                                        "link loop)"))
            dirs[:] = []
            continue
        seen_dirs.add(key)
        for d in dirs:
            if d.startswith(TMP_PREFIX):
                found.skipped.append((os.path.join(root, d), "a scan's temporary folder "
                                      f"({TMP_PREFIX}*): not entered"))
        dirs[:] = sorted(d for d in dirs if not d.startswith(TMP_PREFIX))
        for name in sorted(files):
            p = Path(root) / name
            if p.suffix.lower() in AUDIO_EXTENSIONS or name.lower() in AUDIO_EXTENSIONS:
                add_file(p)     # ".wav" alone is a name with an extension, not a hidden file
            elif not name.startswith("."):
                found.skipped.append((str(p), "not an audio file name extension"))


def safe_stem(path: str | os.PathLike) -> str:
    """The file name's stem as a folder name may hold it: only ASCII letters, digits, ``.``,
    ``_`` and ``-`` survive (after NFKD folding), leading dots are dropped (no hidden or
    ``..`` names), and it is capped."""
    stem = unicodedata.normalize("NFKD", Path(path).stem).encode("ascii", "ignore").decode()
    stem = "".join(c if c.isalnum() or c in "._-" else "_" for c in stem).lstrip(".")
    return stem[:MAX_NAME_CHARS].strip("_-.") or "track"


def safe_name(path: str | os.PathLike, sha256: str, *, salt: str | None = None) -> str:
    """``<safe-stem>-<first 12 hex of the SHA-256>``: a folder name that cannot escape OUT;
    the hash keeps two files with the same name apart.

    Two inputs with the same audio and names that fold to the same stem (``a/track.wav``
    and ``b/track.wav``; ``my song.wav`` and ``my_song.wav``) would share that name, so
    with a ``salt`` (the input's real path) the name also carries 8 hex of its SHA-256:
    ``<safe-stem>-<audio hash>-<path hash>``, one folder per input.
    """
    name = f"{safe_stem(path)}-{sha256[:12]}"
    if salt is not None:
        name += "-" + hashlib.sha256(os.fsencode(salt)).hexdigest()[:8]
    return name


def same_audio_and_stem(files: Sequence[Path], sha256_of: Callable[[Path], str]) -> set[Path]:
    """The files of ``files`` whose folder names (:func:`safe_name`) would collide: same
    folded stem (case folded too: a case-insensitive file system makes ``Track`` and
    ``track`` one folder) and same audio. Only files that share a stem and a size are
    hashed (``sha256_of``), so an album's ``01.flac`` among many is not read twice; a file
    that cannot be read is left to the scan, which reports it."""
    by_stem: dict[tuple[str, int], list[Path]] = {}
    for p in files:
        try:
            size = os.stat(p).st_size
        except OSError:
            continue
        by_stem.setdefault((safe_stem(p).casefold(), size), []).append(p)
    colliding: set[Path] = set()
    for group in (g for g in by_stem.values() if len(g) > 1):
        by_audio: dict[str, list[Path]] = {}
        for p in group:
            try:
                by_audio.setdefault(sha256_of(p), []).append(p)
            except (OSError, MusicBrainError):
                continue
        colliding.update(p for same in by_audio.values() if len(same) > 1 for p in same)
    return colliding


__all__ = ["AUDIO_EXTENSIONS", "Discovery", "discover", "read_path_list", "safe_name",
           "safe_stem", "same_audio_and_stem"]
