"""Every tag in an audio file, read with mutagen, bounded, plus C2PA manifest detection.

Used through :func:`musicbrain_cli.audio.intake.read_metadata`, which runs :func:`read_tags` in
the decoder child under a deadline: the parsers here read untrusted bytes, and mutagen's ID3
reader alone takes time quadratic in the frame count (a crafted 4.8 MB tag: 40 s). Tags are evidence (an encoder
string, a generator's TXXX frame, a C2PA manifest), so nothing is dropped silently: each
value is kept as text, binary payloads are summarised by MIME type, description, size and
SHA-256 (never embedded), and anything cut to keep the result bounded is listed under
``"truncated"``.

C2PA manifest stores are found where the C2PA specification places them
(https://c2pa.org/specifications/specifications/2.1/specs/C2PA_Specification.html,
"Embedding manifests into assets"): MP3 - an ID3v2 ``GEOB`` frame with MIME type
``application/c2pa``; BMFF (MP4/M4A) - a top-level ``uuid`` box with the C2PA UUID
``d8fec3d6-1b0e-483c-9297-5828877ec481``; RIFF (WAV) - a top-level ``C2PA`` chunk. Presence
is reported here (``c2pa_present``, ``c2pa_source``); the manifest is read and validated by
:mod:`musicbrain_cli.audio.provenance` (the ``"provenance"`` key), which also uses
:func:`find_c2pa_store` to refuse oversized manifest stores before parsing them.
"""

from __future__ import annotations

import hashlib
import os
import re
import struct
from dataclasses import dataclass
from typing import Any

import mutagen
from mutagen.id3 import ID3

#: Longest text value kept, in characters; longer values are cut and listed in "truncated".
MAX_VALUE_CHARS = 4096
#: The note that ends a value cut to ``MAX_VALUE_CHARS``: it states the value's full length
#: in the file, so a reader that shows less can still say how much is missing (issue 23: a
#: 1 MB comment was shown as "[3829 more characters]", counted from the stored 4,129).
CUT_NOTE = "...[truncated from {total} chars]"
_CUT_NOTE_RE = re.compile(r"\.\.\.\[truncated from (\d+) chars\]\Z")
#: Most tag keys kept; further keys are counted in "truncated".
MAX_TAGS = 512
#: Most values kept per key.
MAX_VALUES_PER_TAG = 64
#: Most characters of tag text kept per file, keys and values together: the limits above
#: allow 512 x 64 x 4,096 (134 M), which compressed ID3v2.4 frames reach from 230 kB of tag
#: (review of session 45: a 421 kB MP3 gave a 136 MB result.json). Values beyond it are
#: counted as left out, like values beyond MAX_VALUES_PER_TAG.
MAX_TAG_TEXT_CHARS = 1 << 20
#: MIME types that mark a C2PA manifest store in an ID3 GEOB frame (the second is used by
#: some early tools).
C2PA_MIMES = frozenset({"application/c2pa", "application/x-c2pa-manifest-store"})
C2PA_BMFF_UUID = bytes.fromhex("d8fec3d61b0e483c92975828877ec481")
#: Keys (case-folded) of the encoder string in APEv2 tags (WavPack, Monkey's Audio,
#: Musepack) and ASF attributes (WMA), read as ID3's TSSE, Vorbis' ENCODER and MP4's ``\xa9too``.
OTHER_ENCODER_KEYS = frozenset({"encoder", "wm/encodingsettings", "wm/toolname"})
#: How many top-level boxes/chunks are walked looking for C2PA (bounds hostile files).
_MAX_TOP_LEVEL = 4096


@dataclass(frozen=True)
class C2paStore:
    """Where a C2PA manifest store sits in a file, found without parsing it."""

    source: str  #: ``"id3:GEOB:<desc>"``, ``"bmff:uuid"`` or ``"riff:C2PA"``
    size: int  #: bytes of the store's payload (frame data, box or chunk body)


def cut_text(value: str, limit: int = MAX_VALUE_CHARS) -> str:
    """``value`` itself if at most ``limit`` characters, else its first ``limit`` characters
    followed by :data:`CUT_NOTE` with its full length."""
    return value if len(value) <= limit else value[:limit] + CUT_NOTE.format(total=len(value))


def split_cut(value: str, limit: int = MAX_VALUE_CHARS) -> tuple[str, int]:
    """``(kept text, full length in the file)`` of a stored tag value.

    A value :func:`cut_text` cut is exactly ``limit`` characters plus the note, which no
    uncut value can be (those are at most ``limit`` long), so a tag that merely ends with
    note-like text is never mistaken for a cut one. For any other value: ``(value,
    len(value))``.
    """
    m = _CUT_NOTE_RE.search(value)
    if m is not None and m.start() == limit and int(m.group(1)) > limit:
        return value[:limit], int(m.group(1))
    return value, len(value)


def _binary(data: bytes, *, mime: str | None = None, description: str | None = None, **extra) -> dict:
    out = {"mime": mime, "description": description, "sha256": hashlib.sha256(data).hexdigest(),
           "size": len(data)}
    out.update({k: v for k, v in extra.items() if v is not None})
    return out


class _Collector:
    def __init__(self) -> None:
        self.tags: dict[str, list[Any]] = {}
        self.truncated: list[str] = []
        self.left_out: set[str] = set()            # keys not kept (MAX_TAGS, the text budget)
        self.dropped_values: dict[str, int] = {}  # key -> values beyond MAX_VALUES_PER_TAG
        self.chars = 0                             # tag text kept, of MAX_TAG_TEXT_CHARS
        self.over_budget = False

    @property
    def dropped_keys(self) -> int:
        return len(self.left_out)

    def add(self, key: str, value: Any) -> None:
        key = str(key)
        cut = False
        if len(key) > MAX_VALUE_CHARS:
            # a key is as untrusted as a value (a Vorbis field name, a TXXX description, a
            # PRIV owner): cut the same way, with its full length, and listed
            key, cut = cut_text(key), True
        if isinstance(value, dict):
            # the text fields of a binary payload's summary (MIME type, description, file
            # name, owner) are the file's text too
            long = [k for k, v in value.items() if isinstance(v, str) and len(v) > MAX_VALUE_CHARS]
            if long:
                value = {k: cut_text(v) if k in long else v for k, v in value.items()}
                cut = True
        if key in self.left_out:
            return                         # counted once, as a key
        if key not in self.tags:
            if len(self.tags) >= MAX_TAGS:
                self.left_out.add(key)
                return
            self.tags[key] = []
        values = self.tags[key]
        if len(values) >= MAX_VALUES_PER_TAG:
            if key not in self.truncated:
                self.truncated.append(key)
            self.dropped_values[key] = self.dropped_values.get(key, 0) + 1
            return
        if isinstance(value, str) and len(value) > MAX_VALUE_CHARS:
            value = cut_text(value)
            cut = True
        size = len(key) * (not values) + _text_chars(value)
        if self.chars + size > MAX_TAG_TEXT_CHARS:
            self.over_budget = True
            if not values:                 # a key with nothing kept is left out as a key
                del self.tags[key]
                self.left_out.add(key)
                return
            self.dropped_values[key] = self.dropped_values.get(key, 0) + 1
            cut = True
        else:
            self.chars += size
            values.append(value)
        if cut and key not in self.truncated:
            self.truncated.append(key)


def _text_chars(value: Any) -> int:
    """Characters of text a kept tag value holds (a binary payload's summary: its strings)."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict):
        return sum(len(k) + (len(v) if isinstance(v, str) else 16) for k, v in value.items())
    return 16


def _id3_frames(tags: ID3, col: _Collector) -> tuple[str | None, str | None]:
    """Collect ID3 frames; return (encoder, c2pa_source)."""
    encoder = c2pa = None
    for frame in tags.values():
        key = frame.HashKey
        fid = frame.FrameID
        if fid == "GEOB":
            col.add(key, _binary(frame.data, mime=frame.mime, description=frame.desc, filename=frame.filename))
            if (frame.mime or "").lower() in C2PA_MIMES and c2pa is None:
                c2pa = cut_text(f"id3:{key}")  # the description is the file's text
        elif fid == "PRIV":
            # mutagen's PRIV hash key embeds the raw payload; key by owner instead.
            col.add(f"PRIV:{frame.owner}", _binary(frame.data, description=frame.owner, owner=frame.owner))
        elif fid == "APIC":
            col.add(key, _binary(frame.data, mime=frame.mime, description=frame.desc, picture_type=int(frame.type)))
        elif fid in ("UFID",):
            col.add(key, _binary(frame.data, description=frame.owner, owner=frame.owner))
        elif hasattr(frame, "text"):  # T*** incl. TXXX, COMM, USLT, ...
            for t in frame.text:
                col.add(key, str(t))
            if fid == "TSSE" and frame.text:
                encoder = str(frame.text[0])
        elif hasattr(frame, "url"):  # W*** incl. WXXX
            col.add(key, str(frame.url))
        elif hasattr(frame, "data") and isinstance(frame.data, bytes):
            col.add(key, _binary(frame.data, description=fid))
        else:
            col.add(key, str(frame))
    return encoder, c2pa


def _vorbis_comments(tags, col: _Collector) -> str | None:
    encoder = None
    for key, value in tags:
        col.add(key, str(value))
        if key.lower() == "encoder" and encoder is None:
            encoder = str(value)
    vendor = getattr(tags, "vendor", None)
    if vendor:
        col.add("_vendor", str(vendor))
    return encoder or vendor or None


def _mp4_atoms(tags, col: _Collector) -> str | None:
    from mutagen.mp4 import AtomDataType, MP4Cover, MP4FreeForm

    encoder = None
    for key, values in tags.items():
        for v in values if isinstance(values, list) else [values]:
            if isinstance(v, MP4FreeForm):
                if v.dataformat == AtomDataType.UTF8:
                    col.add(key, bytes(v).decode("utf-8", "replace"))
                else:
                    col.add(key, _binary(bytes(v), description=key, dataformat=int(v.dataformat)))
            elif isinstance(v, MP4Cover):
                mime = "image/png" if v.imageformat == MP4Cover.FORMAT_PNG else "image/jpeg"
                col.add(key, _binary(bytes(v), mime=mime, description=key))
            elif isinstance(v, bytes):
                col.add(key, _binary(v, description=key))
            else:
                col.add(key, str(v))
        if key == "\xa9too" and values:
            encoder = str(values[0])
    return encoder


def _other_value(key: str, value: Any) -> Any:
    """A value of an APEv2 or ASF tag: text, or a binary payload's summary. Their binary
    values (an APEv2 ``Cover Art (Front)`` item, an ASF ``WM/Picture``) were kept as their
    Python repr, 4,096 characters of ``APEBinaryValue(b'...')`` listed as a cut value, or as
    ``[binary data (N bytes)]`` with no hash, where every other format's payload is
    summarised with its size and SHA-256."""
    from mutagen.apev2 import APEBinaryValue
    from mutagen.asf import ASFByteArrayAttribute

    if isinstance(value, (APEBinaryValue, ASFByteArrayAttribute)):
        return _binary(bytes(value.value), description=str(key))
    return str(value)


def _bmff_c2pa(path: str) -> C2paStore | None:
    """Walk top-level ISO BMFF boxes looking for the C2PA ``uuid`` box (ISO/IEC 14496-12 4.2)."""
    with open(path, "rb") as f:
        if f.read(8)[4:8] != b"ftyp":  # every BMFF file starts with its ftyp box
            return None
        f.seek(0)
        for _ in range(_MAX_TOP_LEVEL):
            start = f.tell()
            head = f.read(8)
            if len(head) < 8:
                return None
            size, kind = struct.unpack(">I4s", head)
            header = 8
            if size == 1:
                size = struct.unpack(">Q", f.read(8))[0]
                header = 16
            if kind == b"uuid" and f.read(16) == C2PA_BMFF_UUID:
                return C2paStore("bmff:uuid", max(size - header - 16, 0))
            if size == 0 or size < header:  # box runs to the end, or is malformed
                return None
            f.seek(start + size)
    return None


def _riff_c2pa(path: str) -> C2paStore | None:
    """Walk top-level RIFF chunks (RIFF/RF64 WAVE) looking for a ``C2PA`` chunk."""
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] not in (b"RIFF", b"RF64") or head[8:12] != b"WAVE":
            return None
        for _ in range(_MAX_TOP_LEVEL):
            chunk = f.read(8)
            if len(chunk) < 8:
                return None
            cid, size = struct.unpack("<4sI", chunk)
            if cid == b"C2PA":
                return C2paStore("riff:C2PA", size)
            f.seek(size + (size & 1), 1)  # chunks are word aligned
    return None


def _id3_c2pa(path: str) -> C2paStore | None:
    """The first ID3v2 ``GEOB`` frame whose MIME type marks a C2PA manifest store."""
    try:
        tags = ID3(path)
    # no ID3v2 header, unreadable tags, or mutagen's own parser failing on hostile bytes
    # (an IndexError, a RecursionError): no manifest found there
    except Exception:  # noqa: BLE001
        return None
    for frame in tags.getall("GEOB"):
        if (frame.mime or "").lower() in C2PA_MIMES:
            return C2paStore(cut_text(f"id3:{frame.HashKey}"), len(frame.data))
    return None


def find_c2pa_store(path: str | os.PathLike) -> C2paStore | None:
    """Locate an embedded C2PA manifest store (ID3 GEOB, BMFF ``uuid``, RIFF ``C2PA``), or None.

    Reads only tag headers and top-level box/chunk headers, so it is cheap and bounded on
    any file; a malformed walk counts as "not found". An ID3v2 tag is looked at whatever
    follows it (a FLAC's store sits in one); formats it does not walk give None even when c2pa
    would find a store there.
    """
    path = str(path)
    try:
        return _id3_c2pa(path) or _bmff_c2pa(path) or _riff_c2pa(path)
    except (OSError, struct.error):
        return None


def unread_tags(reason: str) -> dict:
    """The record of :func:`read_tags` for a file whose tags could not be read at all (the
    reader timed out or died): nothing found, nothing known about C2PA (``c2pa_present`` is
    None, not False), and ``reason`` under ``"error"``."""
    return {"format": None, "tags": {}, "encoder": None, "c2pa_present": None, "c2pa_source": None,
            "truncated": [], "error": cut_text(reason), "dropped": {"keys": 0, "values": {}}}


def read_tags(path: str) -> dict:
    """Every tag of ``path`` (mutagen) and where a C2PA manifest store sits, without
    validating it; see :func:`musicbrain_cli.audio.intake.read_metadata` for the record.

    Parses the file's untrusted bytes: the intake runs it in the decoder child, under a
    deadline (``op "tags"`` of :mod:`musicbrain_cli.audio.worker`).
    """
    out: dict[str, Any] = {"format": None, "tags": {}, "encoder": None, "c2pa_present": False,
                           "c2pa_source": None, "truncated": [], "error": None}
    col = _Collector()
    encoder = c2pa = None
    try:
        f = mutagen.File(path)
    # Broken tags are themselves a fact to report; the audio may still decode. Not only
    # MutagenError: on hostile bytes mutagen's parsers also raise IndexError (a Vorbis comment
    # length past its packet), RecursionError (nested MP4 boxes), struct errors..., and one
    # file's tags must never stop a batch (session 26 audit).
    except Exception as exc:  # noqa: BLE001
        out["error"] = f"{type(exc).__name__}: {exc}"[:MAX_VALUE_CHARS]
        f = None
    if f is not None:
        out["format"] = type(f).__name__
        tags = f.tags
        if isinstance(tags, ID3):
            encoder, c2pa = _id3_frames(tags, col)
        elif tags is not None and type(tags).__name__ == "MP4Tags":
            encoder = _mp4_atoms(tags, col)
        elif tags is not None and hasattr(tags, "vendor"):  # VCommentDict (FLAC, Ogg)
            encoder = _vorbis_comments(tags, col)
        elif tags is not None:  # APEv2, ASF, ...: keep every key as text
            for key, value in tags.items():
                values = value if isinstance(value, list) else [value]
                for v in values:
                    col.add(key, _other_value(key, v))
                # the encoder string these formats hold (FFmpeg writes "encoder" into the
                # APEv2 tag of every WavPack, "WM/EncodingSettings" into an ASF file's): the
                # report said "none recorded" beside a tag that named it
                if encoder is None and values and str(key).lower() in OTHER_ENCODER_KEYS \
                        and isinstance(_other_value(key, values[0]), str):
                    encoder = str(values[0])
        for pic in getattr(f, "pictures", None) or []:  # FLAC PICTURE blocks
            col.add("METADATA_BLOCK_PICTURE", _binary(pic.data, mime=pic.mime, description=pic.desc,
                                                      picture_type=int(pic.type)))
    if c2pa is None:
        try:
            # an ID3v2 tag ahead of another format's own (c2pa-rs writes a FLAC's manifest
            # store there) is not what mutagen read as the file's tags: looked at on its own
            # (review of session 45: the provenance line validated a FLAC's manifest that
            # the metadata called absent)
            read_id3 = f is not None and isinstance(f.tags, ID3)
            store = (None if read_id3 else _id3_c2pa(path)) or _bmff_c2pa(path) or _riff_c2pa(path)
            c2pa = store.source if store else None
        except (OSError, struct.error):
            pass  # a malformed box walk is no C2PA evidence either way; the decode reports damage
    out["tags"] = col.tags
    out["encoder"] = cut_text(encoder) if encoder else None  # said when cut, like any tag
    out["c2pa_present"] = c2pa is not None
    out["c2pa_source"] = c2pa
    out["truncated"] = col.truncated + ([f"{col.dropped_keys} more keys"] if col.dropped_keys else []) \
        + ([f"tag text beyond {MAX_TAG_TEXT_CHARS} characters in all"] if col.over_budget else [])
    # how much was left out, so a reader's "N more" notes count what the file holds
    out["dropped"] = {"keys": col.dropped_keys, "values": dict(col.dropped_values)}
    return out

