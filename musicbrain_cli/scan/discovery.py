"""Discovery, the scan's first step: which files a scan takes, and the folder each one gets.

:func:`discover` walks files and folders (links followed, every folder entered once, a
stable order), :func:`read_path_list` reads a text file of paths for catalogs that do not
sit in one folder, and :func:`safe_name` names a track's output folder so that no file name
can escape the output folder. Reads nothing but names and folder entries, and the first four
bytes of a file named like a macOS AppleDouble file (``._NAME``); no audio.

What it cannot take is never passed over in silence: a path that does not exist, a folder
it cannot read and a file name that is not UTF-8 are failed inputs (each a failure row of
the catalog, exit status 1); anything else it does not take is skipped with a reason.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

from musicbrain_cli.errors import InputError, MusicBrainError
from musicbrain_cli.files import absent, walk_tree

#: File name extensions taken for audio when a folder is scanned (files named explicitly
#: are always tried). Anything else in a folder is skipped with a note.
AUDIO_EXTENSIONS = frozenset({
    ".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".mp4", ".aac",
    ".aif", ".aiff", ".aifc", ".wma", ".webm", ".mka", ".caf", ".ac3", ".wv", ".ape",
    # Wave64 and TTA: the decoder checks their size claim and frame checksums
    # (audio/decode.py), yet a folder scan skipped them as "not audio"
    ".w64", ".tta",
    # Sun/NeXT audio (.au, .snd), MPEG-1/2 Layer II (broadcast and DVD audio) and M4B
    # audiobooks (MP4 audio by another name): FFmpeg decodes each, yet a folder scan skipped
    # them as "not audio"
    ".au", ".snd", ".mp2", ".m4b",
})
#: Why a macOS AppleDouble file is passed over. macOS writes ``._NAME`` beside every file it
#: copies to a volume without extended attributes (FAT, exFAT, SMB shares) or into a zip:
#: a catalog copied from a Mac holds a ``._song.mp3`` per ``song.mp3``, each of which was
#: taken for audio by its extension and reported as a failed track.
APPLEDOUBLE = "macOS AppleDouble resource file, not audio"
#: The AppleDouble header's magic number at offset 0 (RFC 1740, appendix A; Apple's
#: "AppleSingle/AppleDouble Formats for Foreign Files": 0x00051607).
APPLEDOUBLE_MAGIC = b"\x00\x05\x16\x07"
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
    #: (path, reason) of inputs that exist but cannot be taken: a folder that cannot be
    #: read, a file name that is not UTF-8 (the path as :func:`shown_path` writes it). The
    #: scan lists each as a failed input: audio may be in there (review of session 30: an
    #: unreadable folder was a "skipped:" line, exit status 0, nothing in the catalog)
    failed: list[tuple[str, str]] = field(default_factory=list)
    #: real paths of the folders read, so that a failure row of a folder that could not be
    #: read before is dropped once a scan reads it
    read_folders: set[str] = field(default_factory=set)


def is_appledouble(path: str | os.PathLike) -> bool:
    """True when ``path`` is a macOS AppleDouble file: named ``._NAME`` *and* a regular file
    that starts with :data:`APPLEDOUBLE_MAGIC`. The name alone decides nothing (a recording
    may be named ``._live.mp3``); only a regular file is opened, without blocking, and only
    its first four bytes are read. A file that cannot be read is not one: it is left to the
    intake, which reports it."""
    if not Path(path).name.startswith("._"):
        return False
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return False          # a FIFO or a device is never opened here
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return False
    try:
        # re-checked on the descriptor: the name may have been replaced since the stat
        return stat.S_ISREG(os.fstat(fd).st_mode) and os.pread(fd, 4, 0) == APPLEDOUBLE_MAGIC
    except OSError:
        return False
    finally:
        os.close(fd)


def shown_path(path: str | os.PathLike) -> str:
    """``path`` as text that can be written anywhere (UTF-8 JSON, CSV, HTML): a name that
    is not UTF-8 arrives with its bytes as lone surrogates (PEP 383), which no UTF-8 file
    can hold; those bytes are written as ``\\xNN`` escapes instead, so the name stays
    recognisable and its bytes recoverable."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _encodable(path: str | os.PathLike) -> bool:
    try:
        os.fspath(path).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


#: Why a file whose name is not UTF-8 is refused: its path is written into result.json,
#: the manifest and the catalog, all UTF-8 (review of session 30: one such name stopped the
#: whole scan with UnicodeEncodeError and no catalog was written).
NOT_UTF8 = ("its file name is not valid UTF-8 (shown with \\xNN escapes), so the reports "
            "cannot record its path; rename it to UTF-8 to scan it")


#: Why a name of a file already taken is passed over (never without a word: the catalog
#: would hold one row fewer than the names the user counts).
SAME_FILE = "the same file as a path already taken (a link to it or another name of it): analysed once"


def discover(inputs: Iterable[str | os.PathLike], *,
             output: str | os.PathLike | None = None) -> Discovery:
    """Audio files under ``inputs`` (files or folders), recursively, in a stable order.

    Symbolic links are followed, but every folder is entered once (by device and inode),
    so a link loop cannot trap the walk. A file is taken once (by device and inode); its
    other names are skipped with a note.
    Folder entries without an audio extension, and macOS AppleDouble files
    (:func:`is_appledouble`, also when named), are skipped with a note; a folder that
    cannot be read, an entry that cannot be stat'ed (a link into a folder without search
    permission: perhaps a folder of audio) and a file name that is not UTF-8 are failed
    inputs (:attr:`Discovery.failed`). ``output``: the scan's output folder, never scanned when it
    lies inside an input (its reports are not inputs, and would otherwise each be listed as
    skipped on every rerun); an audio file in it outside the scan's own track folders is
    listed as skipped, with the reason.
    """
    found = Discovery()
    seen_dirs: set[tuple[int, int]] = set()
    try:
        st = os.stat(output) if output is not None else None
    except OSError:
        st = None       # not made yet: nothing of it to enter
    output_key = (st.st_dev, st.st_ino) if st is not None else None
    seen_files: set = set()

    def add_file(p: Path) -> None:
        if is_appledouble(p):
            # never audio, never a failure, never passed over without a word
            found.skipped.append((shown_path(p), APPLEDOUBLE))
            return
        # One file, one row: the same file by another name (a link to it, a hard link, a
        # case variant on a case-insensitive file system) is taken once, by device and inode
        # as folders are; the real path is only the key of a name that cannot be stat'ed
        # (left to the intake, which reports it). Realpath alone let `Song.wav` and
        # `song.wav` on macOS, or two hard links, be analysed and counted twice.
        st = _stat(p)
        key = (st.st_dev, st.st_ino) if st is not None and st.st_ino else os.path.realpath(p)
        if key in seen_files:
            found.skipped.append((shown_path(p), SAME_FILE))
            return
        if _encodable(p):
            seen_files.add(key)
            found.files.append(p)
        else:
            # not taken, so it claims no file: another name of the same file that the
            # reports can record is still taken (a name that is not UTF-8, sorted first,
            # had its link `good.wav` skipped as "analysed once", and the audio was never
            # analysed under any name)
            found.failed.append((shown_path(p), NOT_UTF8))

    for raw in inputs:
        top = Path(raw)
        if absent(top):
            found.missing.append(shown_path(top))
        elif os.path.isdir(top):
            # not Path.is_dir, which raises PermissionError (a link into a folder without
            # search permission) and stopped the whole scan; such an input is left to the
            # intake below, which fails it with the error
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
    """The paths a text file lists, one per line (UTF-8, a leading byte order mark ignored; blank lines and lines whose first
    character other than a space is ``#`` ignored; a relative path is taken relative to the
    list file's folder), for catalogs that do not sit in one folder. Each path is taken as written, spaces at either
    end included (file names may hold them); only the line ending is removed. The file is
    read as untrusted input: a regular file only, bounded in size and in the number of
    paths. Raises :class:`InputError`."""
    from musicbrain_cli.inputs import read_regular

    try:
        # utf-8-sig: a byte order mark (Notepad's "UTF-8 with BOM") is not part of the first
        # path (review of session 30: the first listed file was reported missing)
        text = read_regular(path).decode("utf-8-sig")
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


def _stat(path: str | os.PathLike) -> os.stat_result | None:
    try:
        return os.stat(path)
    except OSError:
        return None


def _key(path: Path) -> tuple[int, int] | None:
    st = _stat(path)
    return None if st is None else (st.st_dev, st.st_ino)


def _unreadable(found: Discovery) -> Callable[[OSError], None]:
    def on_error(exc: OSError) -> None:
        found.failed.append((shown_path(exc.filename), f"cannot read folder: {exc.strerror}"))
    return on_error


def _walk(top: Path, found: Discovery, seen_dirs: set, add_file: Callable[[Path], None],
          output_key: tuple[int, int] | None = None) -> None:
    on_error = _unreadable(found)
    # the real path of each folder still to be walked, from its parent's: os.path.realpath
    # lstat's every component of a path, so called on each folder of a tree n deep it took
    # time cubic in n (a 2,500-deep crafted tree: minutes before the first track). Only a
    # link is resolved in full (None here).
    reals: dict[str, str | None] = {}
    unknown: dict[str, OSError] = {}
    for root, dirs, files in walk_tree(top, on_error, unknown):
        real = reals.pop(root, None)
        try:
            st = os.stat(root)
        except OSError as exc:
            on_error(OSError(exc.errno, exc.strerror, root))
            dirs[:] = []
            continue
        key = (st.st_dev, st.st_ino)
        if key in seen_dirs:
            found.skipped.append((shown_path(root), "folder already visited (named twice, or "
                                                    "a symbolic link loop)"))
            dirs[:] = []
            continue
        seen_dirs.add(key)
        if key == output_key:          # the scan's own output folder
            _skip_inside_output(Path(root), found)
            dirs[:] = []
            continue
        real = real or os.path.realpath(root)
        found.read_folders.add(real)
        for d in dirs:
            if d.startswith(TMP_PREFIX):
                found.skipped.append((shown_path(os.path.join(root, d)), "a scan's temporary folder "
                                      f"({TMP_PREFIX}*): not entered"))
        dirs[:] = sorted(d for d in dirs if not d.startswith(TMP_PREFIX))
        for d in dirs:
            sub = os.path.join(root, d)
            reals[sub] = None if os.path.islink(sub) else os.path.join(real, d)
        for name in sorted(files):
            p = Path(root) / name
            exc = unknown.pop(os.path.join(root, name), None)
            if p.suffix.lower() in AUDIO_EXTENSIONS or name.lower() in AUDIO_EXTENSIONS:
                add_file(p)     # ".wav" alone is a name with an extension, not a hidden file
            elif exc is not None and exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                # a link into a folder that cannot be searched may lead to a folder of audio:
                # a failed input, as a folder that cannot be read is, never "not audio" (a
                # link that leads nowhere, to itself or through a file is broken, as a
                # dangling one is)
                found.failed.append((shown_path(p), f"cannot be read ({exc.strerror or exc}): "
                                                    "a file or folder that cannot be looked into"))
            elif not name.startswith("."):
                found.skipped.append((shown_path(p), "not an audio file name extension"))


#: Files by which a folder directly in OUT is one of the scan's track folders (its
#: manifest, ``result.json``, a report), never walked for audio files left there: the scan
#: checks those folders itself, and names each that does not verify (an unlisted file).
TRACK_FOLDER_FILES = ("manifest.json", "result.json", "report.pdf", "report.html")


def _skip_inside_output(out: Path, found: Discovery) -> None:
    """List as skipped each audio file in the output folder ``out`` (found inside an input)
    outside the scan's own track and temporary folders: the output folder is never scanned,
    but a file left there must not vanish from the scan without a word (review of session
    30: ``scan in -o in/sub`` passed over ``in/sub/b.wav`` silently)."""
    why = ("inside the output folder, which is never scanned; move it out of "
           f"{shown_path(out)!r} to scan it")
    seen: set[tuple[int, int]] = set()
    for root, dirs, files in walk_tree(out, _unreadable(found)):
        key = _key(Path(root))
        if key is None or key in seen:
            dirs[:] = []
            continue
        seen.add(key)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not (
            Path(root) == out and any(os.path.lexists(out / d / f) for f in TRACK_FOLDER_FILES)))
        for name in sorted(files):
            if Path(name).suffix.lower() in AUDIO_EXTENSIONS or name.lower() in AUDIO_EXTENSIONS:
                found.skipped.append((shown_path(Path(root) / name), why))


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


__all__ = ["APPLEDOUBLE", "AUDIO_EXTENSIONS", "Discovery", "discover", "is_appledouble",
           "read_path_list", "safe_name", "safe_stem", "same_audio_and_stem", "shown_path"]
