"""The decoding core of the audio intake: one file -> mono float32 blocks, with facts and checks.

This module runs either inside the caller's process (``isolate=False``) or inside the
decoder child process (:mod:`musicbrain_cli.audio.worker`), so it imports nothing but
PyAV, NumPy and :mod:`musicbrain_cli.errors`. Callers use :mod:`musicbrain_cli.audio.intake`.

Where each check happens (so a streaming caller knows what it may still be told):

* at open, before any sample: not audio, no decoder, absurd header
  (:class:`AbsurdHeaderError` for a claimed rate outside ``[MIN_RATE, MAX_RATE]``, more
  than ``MAX_CHANNELS`` channels or more than ``MAX_DURATION_S`` of claimed audio);
* per block, before it is handed out: NaN/inf (:class:`InvalidSamplesError` at once, so a
  caller never sees a non-finite sample) and "decodes to more than ``MAX_DURATION_S``";
* at the end of the stream, after the last block: no samples at all
  (:class:`ZeroLengthAudioError`), too little of the claimed audio decoded
  (:class:`CorruptAudioError` with ``share_decoded``), every sample digital silence
  (:class:`SilentAudioError`). Silence can only be known at the end without buffering the
  whole file, which would break the memory bound.
"""

from __future__ import annotations

import math
import os
import struct
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Generator

import av
import numpy as np

from musicbrain_cli.errors import (
    AbsurdHeaderError,
    AudioDecodeError,
    CorruptAudioError,
    DecodeTimeoutError,
    InvalidSamplesError,
    NotAudioError,
    SilentAudioError,
    UnsupportedCodecError,
    ZeroLengthAudioError,
)

# --- limits (the one place they are defined; intake.py re-exports them) --------------------

#: Claimed sample rates outside this range are treated as hostile or broken headers. 384 kHz
#: is the highest rate of any shipping DXD/PCM recorder; below 1 kHz nothing musical survives.
MIN_RATE, MAX_RATE = 1_000, 384_000
#: More channels than this is no music mix (Dolby Atmos beds top out at 24.1.10 = 35).
MAX_CHANNELS = 64
#: Longer than a day of claimed (or decoded) audio is not a track; refusing it bounds work.
MAX_DURATION_S = 24 * 3600.0
#: Below this share of the claimed duration decoded, the file is reported corrupt. Lossy
#: codecs add/trim a few ms of priming and padding, so exactly 1.0 cannot be required.
MIN_SHARE_DECODED = 0.95
#: A shortfall of decoded audio against the header or packet timestamps up to this many
#: samples (at the stream's own rate) is codec framing, not lost audio: encoder priming and
#: end padding that the decoder trims (MP3: 576-sample LAME delay + up to 1152 padding + the
#: Xing/Info frame; AAC: 2112 priming + up to 1024 padding; Vorbis: half a long block; Opus:
#: 312 pre-skip). Four MP3 frames cover each; a clean file then reads 100 % decoded
#: (issue 24: clean MP3s read "99.4 %" and got a false "not analysed" limitation).
CODEC_FRAMING_SAMPLES = 4 * 1152
#: Lossless codecs: no priming, no padding, so any shortfall of decoded samples is lost
#: audio (a FLAC frame dropped for a failed checksum is 4,608 samples, exactly what
#: CODEC_FRAMING_SAMPLES forgave). Only a resampler's rounding is allowed for them.
_LOSSLESS = frozenset({"flac", "alac", "wavpack", "tta", "ape"})
#: Codecs whose frames carry a checksum FFmpeg verifies only when asked (``err_detect``
#: ``crccheck``); with ``explode`` a frame that fails it is refused instead of decoded to
#: wrong samples that every evidence line would analyse as music.
_CHECKSUMMED = frozenset({"flac", "wavpack", "tta", "ape"})
#: Shortfall below which a lossless stream still counts as whole: resampler rounding and
#: Matroska's millisecond timestamps (a clean FLAC in MKA reads 0.4 ms short of its stated
#: length), far below any real frame (FLAC encoders write 1,152 to 4,608 samples).
LOSSLESS_SLACK_S = 0.002


def is_lossless(codec: str) -> bool:
    """Whether ``codec`` (an FFmpeg decoder name) decodes every sample the file holds, with
    no encoder priming or padding to trim."""
    return codec.startswith("pcm_") or codec in _LOSSLESS


#: Peak |sample| at or below this (-120 dBFS, under 24-bit quantisation) counts as silence.
SILENCE_PEAK = 1e-6

#: Demuxers that read other files or URLs named inside the input (playlists, concat
#: lists, image sequences, SDP). A hostile "audio" file could otherwise make FFmpeg read
#: arbitrary local files (the known HLS/concat local-file-inclusion class of bugs), so they
#: are refused before FFmpeg ever probes with them.
_REFERENCING_DEMUXERS = frozenset(
    {"hls", "concat", "dash", "image2", "image2pipe", "sdp", "rtsp", "rtp", "mpd", "imf",
     "tee", "data", "lavfi", "webm_dash_manifest", "ffmetadata", "hds", "smoothstreaming"}
)


def _allowed_demuxers() -> str:
    return ",".join(sorted(n for n in av.formats_available if n not in _REFERENCING_DEMUXERS))


_DEMUXER_WHITELIST: str | None = None


def decoder_versions() -> dict:
    """The decoder software that produced the samples (goes into every evidence report)."""

    def ver(lib: str) -> str:
        return ".".join(str(v) for v in av.library_versions[lib])

    return {
        "pyav": av.__version__,
        "ffmpeg": str(getattr(av, "ffmpeg_version_info", "unknown")),
        "libavcodec": ver("libavcodec"),
        "libavformat": ver("libavformat"),
        "libswresample": ver("libswresample"),
    }


@dataclass(frozen=True)
class StreamFacts:
    """What the container header says about the (first) audio stream, before decoding, and how
    many audio streams the container holds."""

    container: str
    codec: str
    codec_long_name: str
    sample_rate: int
    channels: int
    duration_s: float | None
    bit_rate: int | None
    stream_index: int
    ffmpeg_tags: dict = field(default_factory=dict)
    #: audio streams in the container; only the first (``stream_index``) is decoded
    audio_streams: int = 1
    #: whether ``duration_s`` is stated by the file (a header, a frame count) rather than
    #: FFmpeg's estimate from bit rate and size (an MPEG audio file without a Xing/Info/VBRI
    #: frame, a raw AAC or AC-3 stream): only a statement is held against what decodes
    duration_stated: bool = True
    #: whether ``duration_s`` is the whole file's (a Matroska/WebM segment's, the end of its
    #: longest stream) rather than this stream's own: it is held against this stream only
    #: when the file's packets end before it (the file is cut short)
    duration_of_file: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class DecodeStats:
    """What a decode that reached the end of the stream found. Filled at the end of :func:`decode_blocks`.

    ``share_decoded`` is ``decoded_duration_s`` over the larger of the header's claimed
    duration and the packet timestamp span (capped at 1; exactly 1 when the shortfall is
    within :data:`CODEC_FRAMING_SAMPLES`, or :data:`LOSSLESS_SLACK_S` for a lossless codec,
    which has no priming or padding), further reduced by the share of undecodable packets;
    ``None`` when none of these is known. A frame of a checksummed lossless codec (FLAC,
    WavPack, TTA, APE) that fails its checksum is dropped, not decoded, and counts here.
    """

    path: str
    sample_rate: int
    decoded_samples: int
    decoded_duration_s: float
    claimed_duration_s: float | None
    timestamp_span_s: float | None  # first packet pts .. last packet end, seconds
    packets: int
    undecodable_packets: int
    share_decoded: float | None
    peak: float
    demux_error: str | None
    elapsed_s: float  # time spent decoding (excludes the consumer's time between blocks)
    #: the mono mix's power over the channels' mean power (1: identical channels, 1/N: N
    #: uncorrelated ones, 0: left = -right); ``None`` for one channel. For stereo, below one
    #: half more of the recording lies in what the channels do not share than in the mix.
    mono_share: float | None = None
    #: the channels' RMS (their mean power's root; ``peak`` is the mono mix's)
    channel_rms: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def _open(path: str):
    global _DEMUXER_WHITELIST
    if _DEMUXER_WHITELIST is None:
        _DEMUXER_WHITELIST = _allowed_demuxers()
    try:
        container = av.open(
            path,
            metadata_errors="replace",
            # Only plain local files, only demuxers that do not follow references.
            container_options={"protocol_whitelist": "file", "format_whitelist": _DEMUXER_WHITELIST},
        )
    except av.error.FFmpegError as exc:
        kind = _sniff(path)
        if kind is not None:
            # It starts like a real audio container, so it is damaged rather than foreign
            # (e.g. an MP4 cut before its moov box).
            raise CorruptAudioError(
                f"{path}: looks like {kind} but FFmpeg cannot open it ({exc.strerror or exc})", share_decoded=0.0
            ) from exc
        raise NotAudioError(f"{path}: not a media file FFmpeg recognises ({exc.strerror or exc})") from exc
    return container


#: Leading bytes of the common audio containers: (offset, magic, name).
_MAGIC = (
    (0, b"RIFF", "RIFF/WAVE"), (0, b"RF64", "RF64/WAVE"), (0, b"fLaC", "FLAC"), (0, b"OggS", "Ogg"),
    (0, b"ID3", "MP3 (ID3)"), (4, b"ftyp", "MP4/M4A"), (0, b"FORM", "AIFF"), (0, b"\x1aE\xdf\xa3", "Matroska/WebM"),
)


#: Containers whose timestamps start at zero by specification (RIFF, FLAC, MP3 frame
#: counting, Ogg granule positions for Vorbis/Opus/FLAC, Matroska), so a first packet that
#: starts late means audio was lost at the start. MPEG-TS/PS are not here: their clocks start
#: anywhere. Nor is ISO BMFF (MP4/M4A/MOV): its sample table indexes every sample from zero,
#: so a first sample that plays late is a delay the file declares (an empty edit in its edit
#: list, ISO/IEC 14496-12 8.6.6), never lost audio; counted from zero, an M4A whose audio
#: starts 1 s in was refused as "only 80.8 % decoded" (review of session 46).
_ZERO_BASED = frozenset({"wav", "flac", "mp3", "ogg", "aiff", "matroska,webm", "w64"})


def _sniff(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError:
        return None
    for off, magic, name in _MAGIC:
        if head[off:off + len(magic)] == magic:
            return name
    return None


def _riff_claimed_duration(path: str) -> tuple[float, bool] | None:
    """Duration the WAV ``data`` chunk claims (size / byte rate), or None if not stated, and
    whether it is exact (PCM or float samples, whose byte rate is rate x block align).

    FFmpeg clamps a WAV's duration to the bytes present, which would hide truncation; the
    header's own claim is what "claimed" means here. Sizes 0 and 0xFFFFFFFF are the
    conventional "unknown, streamed" values and claim nothing (RIFF spec; EBU Tech 3306).
    """
    with open(path, "rb") as f:
        head = f.read(12)
        if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        byte_rate, exact = None, False
        for _ in range(1024):
            chunk = f.read(8)
            if len(chunk) < 8:
                return None
            cid, size = struct.unpack("<4sI", chunk)
            if cid == b"fmt " and size >= 16:
                fmt = f.read(16)
                tag, _, rate, stated, align, _ = struct.unpack("<HHIIHH", fmt)
                # PCM and float (plain or WAVE_FORMAT_EXTENSIBLE): the byte rate IS rate x
                # block align, and FFmpeg decodes by those; the separate byte-rate field is
                # only a hint a writer (or an adversary) can set to anything: 0 hid a
                # truncation, 1 made a whole file "588 h" (session 26 audit)
                exact = tag in (1, 3, 0xFFFE)
                byte_rate = rate * align if exact else stated
                f.seek(size - 16 + (size & 1), 1)
            elif cid == b"data":
                if byte_rate and size not in (0, 0xFFFFFFFF):
                    unread = _riff_unexplained_tail(f, f.tell() + size + (size & 1))
                    return (size + unread) / byte_rate, exact
                return None
            else:
                f.seek(size + (size & 1), 1)
    return None


def _riff_unexplained_tail(f, pos: int, *, order: str = "<", form: bytes = b"RIFF") -> int:
    """Bytes from ``pos`` (just past a WAV's ``data`` chunk) to the end of the file that are no
    RIFF chunk: 0 when chunks (``LIST``, ``id3 ``, ``JUNK``, ...; a last one cut short
    included) or at most :data:`MAX_UNREAD_TAIL` stray bytes follow. ``order`` and ``form``:
    the chunk sizes' byte order and the outer form's id (``">"`` and ``FORM`` for AIFF).

    FFmpeg reads a WAV's samples only up to the ``data`` chunk's stated size, so what lies
    beyond it unparsed is audio no line hears: a second WAV appended to the first (``cat a.wav
    b.wav``; "RIFF" is no chunk inside a RIFF form) or, in a data chunk of 4 GiB or more
    whose 32-bit size wrapped, everything past the wrap. A WAV of 4 s followed by one of
    20 s read "100 % decoded" on its first 4 s (review of session 46).
    """
    end = os.fstat(f.fileno()).st_size
    for _ in range(1024):
        if end - pos <= MAX_UNREAD_TAIL:
            return 0
        f.seek(pos)
        head = f.read(10)
        if head[:3] == b"ID3":           # an ID3v2 tag appended after the RIFF form
            pos += 10 + sum((b & 0x7F) << (7 * (3 - i)) for i, b in enumerate(head[6:10])) \
                + (10 if head[5] & 0x10 else 0)
            continue
        cid, size = struct.unpack(order + "4sI", head[:8])
        if cid == form or not all(0x20 <= c < 0x7F for c in cid):
            break
        pos += 8 + size + (size & 1)
    else:
        return 0
    # zeros (a recorder's preallocated space) are no audio
    f.seek(pos)
    while chunk := f.read(1 << 20):
        if chunk.count(0) != len(chunk):
            return end - pos
    return 0


#: AIFF-C compression types whose samples are plain PCM or float, so that the ``COMM`` chunk's
#: frame count times the frame size is the sound data's size.
_AIFC_PCM = frozenset({b"NONE", b"sowt", b"twos", b"raw ", b"fl32", b"FL32", b"fl64", b"FL64",
                       b"in24", b"in32", b"42ni", b"23ni"})


def _aiff_claimed_duration(path: str) -> tuple[float, bool] | None:
    """As :func:`_riff_claimed_duration`, for AIFF and AIFF-C holding PCM: the ``COMM``
    chunk's frame count over its rate, plus the audio appended after the ``FORM`` (FFmpeg
    reads no further: two AIFFs joined with ``cat`` read "100 % decoded" on the first's
    4 s of 24; review of session 46). Compressed AIFF-C claims nothing here."""
    with open(path, "rb") as f:
        head = f.read(12)
        if head[:4] != b"FORM" or head[8:12] not in (b"AIFF", b"AIFC"):
            return None
        form_size = struct.unpack(">I", head[4:8])[0]
        form_end = 8 + form_size + (form_size & 1)
        pos, frames, rate, frame_bytes = 12, None, None, None
        for _ in range(1024):
            f.seek(pos)
            chunk = f.read(8)
            if len(chunk) < 8 or pos >= form_end:
                break
            cid, size = struct.unpack(">4sI", chunk)
            if cid == b"COMM" and size >= 18:
                body = f.read(min(size, 22))
                channels, frames, bits = struct.unpack(">hIh", body[:8])
                exponent, mantissa = struct.unpack(">HQ", body[8:18])
                rate = mantissa * 2.0 ** ((exponent & 0x7FFF) - 16383 - 63)
                if head[8:12] == b"AIFC" and (len(body) < 22 or body[18:22] not in _AIFC_PCM):
                    return None
                frame_bytes = channels * ((bits + 7) // 8)
            pos += 8 + size + (size & 1)
        if not (frames is not None and rate and math.isfinite(rate) and frame_bytes and frame_bytes > 0):
            return None
        tail = _riff_unexplained_tail(f, form_end, order=">", form=b"FORM")
        return (frames + tail // frame_bytes) / rate, True


#: Sony Wave64 (RIFF with 64-bit sizes): chunks are named by GUID; the "riff", "wave", "fmt "
#: and "data" GUIDs are the four letters followed by these bytes (only "riff" differs).
_W64_RIFF = b"riff\x2e\x91\xcf\x11\xa5\xd6\x28\xdb\x04\xc1\x00\x00"
_W64_TAIL = b"\xf3\xac\xd3\x11\x8c\xd1\x00\xc0\x4f\x8e\xdb\x8a"


def _w64_claimed_duration(path: str) -> tuple[float, bool] | None:
    """As :func:`_riff_claimed_duration`, for Wave64: the ``data`` chunk's size (which
    includes its 24-byte header) over the byte rate. FFmpeg clamps a W64's duration to the
    bytes present too: a Wave64 cut to a quarter read "100 % decoded" (review)."""
    with open(path, "rb") as f:
        head = f.read(40)
        if head[:16] != _W64_RIFF or head[24:40] != b"wave" + _W64_TAIL:
            return None
        byte_rate, exact = None, False
        for _ in range(1024):
            chunk = f.read(24)
            if len(chunk) < 24:
                return None
            guid, size = chunk[:16], struct.unpack("<Q", chunk[16:])[0]
            if size < 24:
                return None
            if guid == b"fmt " + _W64_TAIL and size >= 40:
                tag, _, rate, stated, align, _ = struct.unpack("<HHIIHH", f.read(16))
                exact = tag in (1, 3, 0xFFFE)
                byte_rate = rate * align if exact else stated
                f.seek(size - 40, 1)
            elif guid == b"data" + _W64_TAIL:
                return ((size - 24) / byte_rate, exact) if byte_rate else None
            else:
                f.seek(size - 24, 1)
            f.seek(-size % 8, 1)  # chunks are 8-byte aligned
    return None


def _caf_claimed_duration(path: str) -> tuple[float, bool] | None:
    """As :func:`_riff_claimed_duration`, for Apple CAF holding linear PCM: the ``data``
    chunk's size (less its 4-byte edit count) over the bytes per packet. Size -1 is CAF's
    "unknown" and claims nothing. A CAF cut to a quarter read "97.8 % decoded" (review)."""
    with open(path, "rb") as f:
        if f.read(8)[:4] != b"caff":
            return None
        rate = bpp = fpp = None
        for _ in range(1024):
            chunk = f.read(12)
            if len(chunk) < 12:
                return None
            kind, size = chunk[:4], struct.unpack(">q", chunk[4:])[0]
            if kind == b"data":
                if size < 4 or not rate or not bpp or not fpp:
                    return None
                return (size - 4) // bpp * fpp / rate, True
            if size < 0:
                return None
            if kind == b"desc" and size >= 32:
                rate, fid, _, bpp, fpp, _, _ = struct.unpack(">d4sIIIII", f.read(32))
                if fid != b"lpcm" or not (math.isfinite(rate) and rate > 0):
                    return None  # compressed: FFmpeg's packet table is the claim
                f.seek(size - 32, 1)
            else:
                f.seek(size, 1)
    return None


def _mp3_states_length(path: str) -> bool:
    """Whether an MPEG audio file's first frame is a Xing, Info or VBRI frame, the only place
    such a file states its length (frames, bytes). Without one FFmpeg estimates the duration
    from the first frame's bit rate and the file's size: no claim, and for variable bit rate
    no more than a guess (an intact 60 s VBR file "88 s", 68 % decoded, was refused as
    corrupt: review of session 45)."""
    with open(path, "rb") as f:
        head = f.read(10)
        start = 0
        if head[:3] == b"ID3" and len(head) == 10:   # ID3v2: a syncsafe size, a footer flag
            size = sum((b & 0x7F) << (7 * (3 - i)) for i, b in enumerate(head[6:10]))
            start = 10 + size + (10 if head[5] & 0x10 else 0)
        f.seek(start)
        data = f.read(MP3_HEADER_SEARCH)
    for i in range(len(data) - 4):
        b1, b2, b3 = data[i], data[i + 1], data[i + 2]
        # a frame header: 11 sync bits, a known version and layer, a bit-rate index that is
        # neither free nor bad, a known sample rate
        if b1 == 0xFF and b2 & 0xE0 == 0xE0 and (b2 >> 3) & 3 != 1 and (b2 >> 1) & 3 != 0 \
                and (b3 >> 4) not in (0, 15) and (b3 >> 2) & 3 != 3:
            frame = data[i:i + 200]
            return any(tag in frame for tag in (b"Xing", b"Info", b"VBRI"))
    return False


#: How far past the ID3v2 tag the first MPEG audio frame is searched for (bytes).
MP3_HEADER_SEARCH = 64 << 10

#: Raw elementary streams: no header states their length, and FFmpeg's duration is its
#: estimate from the bit rate and the file's size (which a truncation shortens alike), so
#: it is never held against what decodes.
_ESTIMATED_ONLY = frozenset({"aac", "ac3", "eac3"})


#: Containers whose header states the PCM data's size, which FFmpeg clamps to the bytes
#: present (hiding a truncation): each one's own reading of the claim.
_SIZE_CLAIMS = {"wav": _riff_claimed_duration, "w64": _w64_claimed_duration, "caf": _caf_claimed_duration,
                "aiff": _aiff_claimed_duration}


def _stream_facts(path: str, container) -> StreamFacts:
    if not container.streams.audio:
        kinds = sorted({s.type for s in container.streams}) or ["none"]
        raise NotAudioError(
            f"{path}: no audio stream in the {container.format.name} container (streams: {', '.join(kinds)})"
        )
    stream = container.streams.audio[0]
    ctx = stream.codec_context
    if ctx is None or ctx.codec is None:
        raise UnsupportedCodecError(f"{path}: no decoder here for the audio codec of stream {stream.index}")
    rate, channels = int(ctx.sample_rate or 0), int(ctx.channels or 0)
    duration = None
    of_file = False
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration = container.duration / av.time_base
        # Matroska states no track's length, only the segment's: with a video (or a second
        # audio) stream beside it, that is the longest stream's end, not this one's
        of_file = len(container.streams) > 1
    if duration is not None and (not math.isfinite(duration) or duration < 0):
        duration = None
    stated = True
    if container.format.name in _ESTIMATED_ONLY:
        stated = False
    elif container.format.name == "mp3":
        try:
            stated = _mp3_states_length(path)
        except OSError:
            pass         # unreadable here: the decode says so; FFmpeg's figure stands meanwhile
    claimed = _SIZE_CLAIMS.get(container.format.name)
    if claimed is not None:
        try:
            claim = claimed(path)
        except (OSError, ValueError, ZeroDivisionError, struct.error):
            claim = None  # a header too broken to read states nothing; FFmpeg's view stands
        # FFmpeg's estimate divides by the byte-rate field too; for PCM the exact claim wins
        if claim is not None and (duration is None or claim[1] or claim[0] > duration):
            duration = claim[0]
    bit_rate = stream.bit_rate or container.bit_rate or None
    tags = _bounded_tags({**dict(container.metadata), **dict(stream.metadata)})
    return StreamFacts(
        container=container.format.name,
        codec=ctx.codec.name,
        codec_long_name=ctx.codec.long_name,
        sample_rate=rate,
        channels=channels,
        duration_s=duration,
        bit_rate=int(bit_rate) if bit_rate else None,
        stream_index=stream.index,
        ffmpeg_tags=tags,
        audio_streams=len(container.streams.audio),
        duration_stated=stated,
        duration_of_file=of_file,
    )


def _bounded_tags(tags: dict, *, max_items: int = 256, max_chars: int = 4096) -> dict:
    out = {}
    for i, (k, v) in enumerate(tags.items()):
        if i >= max_items:
            out["_truncated_items"] = str(len(tags) - max_items)
            break
        v = str(v)
        k = str(k)
        if len(k) > 256:
            # said, and never written over another long name with the same start
            cut = k[:256] + f"...[truncated from {len(k)} chars]"
            k, n = cut, 1
            while k in out or k in tags:
                n += 1
                k = f"{cut}#{n}"
        out[k] = v if len(v) <= max_chars else v[:max_chars] + f"...[truncated from {len(v)} chars]"
    return out


def check_header(path: str, facts: StreamFacts) -> None:
    """Raise :class:`AbsurdHeaderError` when the header claims the impossible."""
    if not MIN_RATE <= facts.sample_rate <= MAX_RATE:
        raise AbsurdHeaderError(
            f"{path}: header claims a sample rate of {facts.sample_rate} Hz (allowed {MIN_RATE}..{MAX_RATE})"
        )
    if not 1 <= facts.channels <= MAX_CHANNELS:
        raise AbsurdHeaderError(f"{path}: header claims {facts.channels} channels (allowed 1..{MAX_CHANNELS})")
    # Only a stated length: FFmpeg's estimate for a raw AAC/AC-3 stream or an MPEG audio file
    # without a Xing/Info/VBRI frame is the file's size over its first frames' bit rate, and
    # a silent intro (13-byte AAC frames) makes that many times the real length: a 28-min
    # ADTS file opening with 30 s of silence "claimed 24.9 h" and was refused unread (review
    # of session 46). The decode still stops at MAX_DURATION_S of decoded audio.
    if facts.duration_s is not None and facts.duration_stated and facts.duration_s > MAX_DURATION_S:
        raise AbsurdHeaderError(
            f"{path}: header claims {facts.duration_s / 3600:.1f} h of audio (limit {MAX_DURATION_S / 3600:.0f} h)"
        )


def probe_facts(path: str) -> StreamFacts:
    """Open ``path``, read its header and return :class:`StreamFacts` (no sample decoding)."""
    with _open(path) as container:
        facts = _stream_facts(path, container)
    check_header(path, facts)
    return facts


def decode_blocks(
    path: str,
    *,
    sample_rate: int,
    block_samples: int,
    timeout_s: float | None = None,
    on_facts: Callable[[StreamFacts], None] | None = None,
    native_samples: int = 0,
    on_native: Callable[[np.ndarray], None] | None = None,
) -> Generator[np.ndarray, None, DecodeStats]:
    """Decode ``path`` to mono float32 at ``sample_rate`` in blocks of ``block_samples``.

    Yields ``np.ndarray [shape=(block_samples,), dtype=float32]`` (the last block may be
    shorter) and returns :class:`DecodeStats` as the generator's return value; the caller
    then runs :func:`check_end` (kept apart so the stats survive an end-of-stream error). Memory is
    bounded by about two blocks plus one decoded frame, whatever the file length.

    Resampling is FFmpeg's libswresample (band-limited windowed sinc, via PyAV's
    ``AudioResampler``) with the channel layout kept; the mono downmix is then the plain
    mean of the channels, because swresample's own mono downmix weights channels by layout
    (drops LFE, -3 dB centre) and would make the result depend on layout metadata.

    ``timeout_s`` bounds the time spent inside this generator (time the caller spends
    between blocks does not count). It is checked between packets, so it bounds slow but
    progressing decodes; it cannot interrupt a decoder stuck inside FFmpeg, which is what
    the isolated path's parent (it kills the child) is for.

    ``native_samples`` > 0: the same decoded frames also give the first ``native_samples``
    mono samples at the stream's own rate (the header's), handed to ``on_native`` in chunks
    of about a block as they come, so that a second reader of the file at its native rate
    (the decoder-artifact line) needs no second decode. They equal what decoding with
    ``sample_rate`` set to that rate gives (libswresample then only converts the sample
    format: no filter runs).
    """
    t0 = time.monotonic()
    spent = 0.0  # seconds spent inside this generator so far (excludes the caller's time)
    resumed = t0
    with _open(path) as container:
        facts = _stream_facts(path, container)
        check_header(path, facts)
        if on_facts is not None:
            on_facts(facts)
        stream = container.streams.audio[0]
        if facts.codec in _CHECKSUMMED:
            # a frame whose checksum fails is dropped (and counted below as lost audio),
            # never decoded to garbage
            stream.codec_context.options = {"err_detect": "crccheck+explode"}
        max_samples = int(MAX_DURATION_S * sample_rate)

        pending: list[np.ndarray] = []
        n_pending = 0
        decoded = packets = bad_packets = 0
        peak = 0.0
        demux_error = None
        read_end = 0       # byte just past the last packet the demuxer read
        # Span of packet timestamps: data the demuxer skipped (garbage mid-stream, lost
        # sync) shows as a span longer than what decoded, even when the header claims
        # nothing (Ogg) or FFmpeg re-estimates the header's claim from what it found.
        ts_first, ts_end = None, -(2**63)
        time_base = stream.time_base

        power = _Power()

        def mono_from(frames) -> None:
            nonlocal n_pending
            for mono in _mono(frames, power):
                pending.append(mono)
                n_pending += mono.size

        def emit(final: bool) -> Generator[np.ndarray, None, None]:
            nonlocal pending, n_pending, decoded, peak
            while n_pending >= block_samples or (final and n_pending):
                buf = pending[0] if len(pending) == 1 else np.concatenate(pending)
                take = min(block_samples, buf.size)
                block, rest = buf[:take], buf[take:]
                pending, n_pending = ([rest] if rest.size else []), rest.size
                if not np.isfinite(block).all():
                    bad = int(np.count_nonzero(~np.isfinite(block)))
                    raise InvalidSamplesError(
                        f"{path}: {bad} NaN/inf samples in the block at "
                        f"{decoded / sample_rate:.2f} s (stopped there)"
                    )
                decoded += block.size
                if decoded > max_samples:
                    raise AbsurdHeaderError(
                        f"{path}: decodes to more than {MAX_DURATION_S / 3600:.0f} h of audio "
                        f"(header claimed {facts.duration_s} s)"
                    )
                peak = max(peak, float(np.max(np.abs(block))))
                yield np.ascontiguousarray(block)

        def frames_of(packet):
            nonlocal bad_packets
            try:
                return stream.decode(packet)
            except av.error.MemoryError:
                raise
            except av.error.FFmpegError:
                # One broken packet is counted and skipped: the rest of the track is still
                # evidence, and the count (and share) are reported, never hidden.
                bad_packets += 1
                return []

        to_rate = _Resampler(path, sample_rate)
        native = None
        if (native_samples > 0 and on_native is not None and isinstance(facts.sample_rate, int)
                and MIN_RATE <= facts.sample_rate <= MAX_RATE):
            native = _NativeTap(_Resampler(path, facts.sample_rate), native_samples, on_native,
                                chunk=max(1, block_samples * facts.sample_rate // sample_rate))

        # A length stated for the whole file is checked against where the file's packets
        # end, so every stream's are read (and only this one's decoded).
        demux = container.demux() if facts.duration_of_file else container.demux(stream)
        file_end = 0.0     # seconds: the end of the latest packet of any stream read
        while True:
            try:
                packet = next(demux)
            except StopIteration:
                break
            except av.error.FFmpegError as exc:
                # The container itself broke (truncation, garbage): keep what decoded.
                demux_error = str(exc)
                break
            if timeout_s is not None and spent + time.monotonic() - resumed > timeout_s:
                raise DecodeTimeoutError(
                    f"{path}: decoding took longer than {timeout_s:g} s "
                    f"(stopped after {decoded / sample_rate:.1f} s of audio)"
                )
            if packet.pts is not None and packet.time_base is not None:
                file_end = max(file_end, float((packet.pts + (packet.duration or 0)) * packet.time_base))
            if packet.stream_index != stream.index:
                continue
            if packet.size:
                packets += 1
                if packet.pos is not None and packet.pos >= 0:
                    read_end = max(read_end, packet.pos + packet.size)
                if packet.pts is not None:
                    ts_first = packet.pts if ts_first is None else min(ts_first, packet.pts)
                    ts_end = max(ts_end, packet.pts + (packet.duration or 0))
            for frame in frames_of(packet):
                mono_from(to_rate.feed(frame))
                if native is not None:
                    native.feed(frame)
            for block in emit(final=False):
                spent += time.monotonic() - resumed
                yield block
                resumed = time.monotonic()
        if demux_error is not None:
            for frame in frames_of(None):
                mono_from(to_rate.feed(frame))
                if native is not None:
                    native.feed(frame)
        mono_from(to_rate.flush())
        if native is not None:
            native.close()
        yield from emit(final=True)
        spent += time.monotonic() - resumed

    decoded_s = decoded / sample_rate
    span = None
    if ts_first is not None and facts.container in _ZERO_BASED:
        ts_first = min(ts_first, 0)
    if ts_first is not None and time_base is not None and ts_end > ts_first:
        span = float((ts_end - ts_first) * time_base)
    claimed = facts.duration_s if facts.duration_stated else None
    if claimed is not None and facts.duration_of_file and file_end >= claimed - FILE_END_SLACK_S:
        # the file is whole: the length it states is its longest stream's, and this stream's
        # own is the span of its timestamps (a WebM whose video outlasts its audio by 2 s
        # read "only 66.7 % decoded" and was refused as corrupt: review of session 46)
        claimed = None
    expected = max(claimed or 0.0, span or 0.0)
    share = None
    if expected > 0:
        if is_lossless(facts.codec):
            framing_s = LOSSLESS_SLACK_S
        else:
            framing_s = CODEC_FRAMING_SAMPLES / facts.sample_rate if facts.sample_rate else 0.0
        share = 1.0 if expected - decoded_s <= framing_s else min(1.0, decoded_s / expected)
    if packets:
        good = 1.0 - bad_packets / packets
        share = good if share is None else min(share, good)
    if demux_error is not None and read_end > 0:
        # The container broke before its end: what lies beyond the last packet read was
        # never decoded, and neither a header (Ogg claims nothing) nor the timestamps (a
        # chained stream's second part) need say so. A chained Ogg of 12 s + 60 s was judged
        # on its first 12 s as "100 % decoded" (session 26 audit). Bytes are the measure
        # left; a tail of at most MAX_UNREAD_TAIL (an index, a tag) is no loss.
        try:
            size = os.path.getsize(path)
        except OSError:
            size = 0
        if size - read_end > MAX_UNREAD_TAIL:
            share = min(share if share is not None else 1.0, read_end / size)
    stats = DecodeStats(
        path=path,
        sample_rate=sample_rate,
        decoded_samples=decoded,
        decoded_duration_s=decoded_s,
        claimed_duration_s=claimed,
        timestamp_span_s=span,
        packets=packets,
        undecodable_packets=bad_packets,
        share_decoded=share,
        peak=peak,
        demux_error=demux_error,
        elapsed_s=spent,
        mono_share=power.mono_share(),
        channel_rms=power.rms(),
    )
    return stats


#: How far before the length a file states (for all its streams, :attr:`StreamFacts.duration_of_file`)
#: its packets may end and the file still count as whole: a last video frame without a
#: duration at 10 frames/s, and Matroska's millisecond timestamps. A file cut shorter keeps
#: its stated length as what this stream is held against.
FILE_END_SLACK_S = 0.1

#: Bytes a broken container may leave unread after its last packet without counting as
#: undecoded audio (trailing tags, an index, padding).
MAX_UNREAD_TAIL = 64 * 1024


class _Power:
    """What the mono downmix keeps of a multichannel stream: sums of squares of the mix and
    of the channels (their mean), over the samples seen (:attr:`DecodeStats.mono_share`).
    Two dot products a frame: a few per cent of the decode's time."""

    def __init__(self) -> None:
        self.mono = self.channels = 0.0
        self.n = 0

    def add(self, frames: np.ndarray, mono: np.ndarray) -> None:
        flat = frames.reshape(-1)
        self.channels += float(np.dot(flat, flat)) / frames.shape[1]
        self.mono += float(np.dot(mono, mono))
        self.n += mono.size

    def mono_share(self) -> float | None:
        if not self.channels:
            return None
        return min(1.0, self.mono / self.channels)

    def rms(self) -> float | None:
        return math.sqrt(self.channels / self.n) if self.n else None


def _mono(frames, power: _Power | None = None) -> Generator[np.ndarray, None, None]:
    """Resampled frames -> mono float32 arrays (the plain mean of the channels); ``power``
    accumulates what the mix keeps of the channels."""
    for out in frames:
        # Packed flt -> (1, n * channels), interleaved; the mean is the documented downmix.
        # Packed, not planar: PyAV 18's AudioFrame.planes counts planes up to a NULL pointer,
        # which with 8 or more planar channels reads past AVFrame.data[8] and crashes (SIGSEGV
        # on a valid 8-channel 96 kHz WAV, issue 23); a packed frame has exactly one plane.
        ch = len(out.layout.channels)
        a = out.to_ndarray().reshape(-1)[: out.samples * ch]
        if ch == 1:
            mono = a
        else:
            frames2d = a.reshape(out.samples, ch)
            mono = _channel_mean(frames2d)
            if power is not None:
                power.add(frames2d, mono)
        if mono.size:
            yield np.asarray(mono, dtype=np.float32)


def _channel_mean(frames: np.ndarray) -> np.ndarray:
    """The plain mean of the channels of ``frames [shape=(n, channels)]`` as float32: for
    stereo, the sum of the two columns halved, which is bit for bit what ``mean(axis=1,
    dtype=float32)`` computes ((x0 + x1) / 2 in float32; halving is exact) at a fraction of
    its cost (a reduction over a 2-long axis; a fifth of a stereo file's decode time)."""
    if frames.shape[1] == 2:
        mono = frames[:, 0] + frames[:, 1]
        mono += np.float32(0.0)      # as numpy's reduction, which starts from +0: -0 + -0 -> +0
        mono *= np.float32(0.5)
        return mono
    return frames.mean(axis=1, dtype=np.float32)


#: Samples per frame out of the resampler. Its FIFO only regroups what libswresample
#: gives (the samples are the same, tested), and a few large frames instead of one per
#: codec frame (20 ms for Opus) take a third off the decode's time in Python per frame.
RESAMPLED_FRAME = 8192


class _Resampler:
    """Decoded frames -> packed float32 frames at ``rate`` (libswresample, channel layout
    kept), restarted, after a flush, when the stream's parameters change mid-stream."""

    def __init__(self, path: str, rate: int) -> None:
        self.path, self.rate = path, rate
        self.resampler, self.key = None, None

    def feed(self, frame) -> list:
        key = (frame.format.name, frame.layout.name, frame.sample_rate, len(frame.layout.channels))
        if key != self.key:
            if not MIN_RATE <= frame.sample_rate <= MAX_RATE or len(frame.layout.channels) > MAX_CHANNELS:
                raise AbsurdHeaderError(
                    f"{self.path}: a frame switches to {frame.sample_rate} Hz, {len(frame.layout.channels)} channels"
                )
            # Parameters changed mid-stream (chained streams): flush the old resampler.
            out = self.flush()
            self.resampler = av.AudioResampler(format="flt", layout=None, rate=self.rate,
                                               frame_size=RESAMPLED_FRAME)
            self.key = key
            return out + list(self.resampler.resample(frame))
        return list(self.resampler.resample(frame))

    def flush(self) -> list:
        return list(self.resampler.resample(None)) if self.resampler is not None else []


class _NativeTap:
    """The first ``limit`` mono samples at the stream's own rate, handed on in chunks."""

    def __init__(self, resampler: _Resampler, limit: int, on_chunk: Callable[[np.ndarray], None], *,
                 chunk: int) -> None:
        self.resampler, self.left, self.on_chunk, self.chunk = resampler, limit, on_chunk, chunk
        self.pending: list[np.ndarray] = []
        self.n = 0

    def feed(self, frame) -> None:
        if self.left > 0:
            self._take(self.resampler.feed(frame))

    def close(self) -> None:
        if self.left > 0:
            self._take(self.resampler.flush())
        self._send()
        self.left = 0

    def _take(self, frames) -> None:
        for mono in _mono(frames):
            mono = mono[: self.left]
            self.pending.append(mono)
            self.n += mono.size
            self.left -= mono.size
            if self.n >= self.chunk or self.left <= 0:
                self._send()
            if self.left <= 0:
                return

    def _send(self) -> None:
        if self.pending:
            self.on_chunk(np.concatenate(self.pending))
            self.pending, self.n = [], 0


def check_end(stats: DecodeStats, *, min_share_decoded: float, silence_peak: float) -> None:
    """The end-of-stream checks (zero length, corrupt, silent), in that order."""
    path = stats.path
    if stats.decoded_samples == 0:
        why = f" ({stats.undecodable_packets} of {stats.packets} packets undecodable)" if stats.packets else ""
        raise ZeroLengthAudioError(f"{path}: the audio stream decodes to no samples{why}")
    if stats.share_decoded is not None and stats.share_decoded < min_share_decoded:
        expected = max(stats.claimed_duration_s or 0.0, stats.timestamp_span_s or 0.0)
        claimed = f"{expected:.2f} s" if expected else "unknown"
        raise CorruptAudioError(
            f"{path}: only {stats.share_decoded:.1%} decoded ({stats.decoded_duration_s:.2f} s of {claimed} expected, "
            f"{stats.undecodable_packets} of {stats.packets} packets undecodable"
            + (f", demuxer: {stats.demux_error}" if stats.demux_error else "")
            + ")",
            share_decoded=stats.share_decoded,
        )
    if stats.peak <= silence_peak and (stats.channel_rms or 0.0) > silence_peak:
        raise SilentAudioError(
            f"{path}: the channels cancel out: their mean, the mono mix every evidence line "
            f"analyses, is digital silence (peak {stats.peak:.2g}) while the channels are not "
            f"(RMS {stats.channel_rms:.2g}; one is the other inverted); scan one channel on its "
            "own (ffmpeg -i IN -af 'pan=mono|c0=c0' OUT.flac)"
        )
    if stats.peak <= silence_peak:
        raise SilentAudioError(
            f"{path}: all {stats.decoded_duration_s:.2f} s are digital silence (peak {stats.peak:.2g})"
        )


#: Errors that may cross the process boundary, by class name (a child cannot name others).
TRANSPORTABLE_ERRORS: dict[str, type[AudioDecodeError]] = {
    cls.__name__: cls
    for cls in (
        AudioDecodeError,
        AbsurdHeaderError,
        CorruptAudioError,
        DecodeTimeoutError,
        InvalidSamplesError,
        NotAudioError,
        SilentAudioError,
        UnsupportedCodecError,
        ZeroLengthAudioError,
    )
}
