"""Write float samples to an audio file with PyAV (FFmpeg's encoders).

For fixtures, benchmarks and rendered training audio, so every format the intake reads can
be produced in code. Not part of the forensic path.
"""

from __future__ import annotations

import os
from fractions import Fraction
from dataclasses import dataclass

import av
import numpy as np

from musicbrain_cli.errors import InputError


@dataclass(frozen=True)
class Format:
    container: str
    codec: str
    rate: int | None = None  # forced encoder rate (Opus only runs at 48 kHz), else the input's
    bit_rate: int | None = None
    options: tuple = ()


#: The formats the test-suite and benchmark exercise, by file extension. Vorbis uses
#: FFmpeg's native encoder (experimental, stereo only; PyAV's wheel has no libvorbis).
FORMATS: dict[str, Format] = {
    "wav": Format("wav", "pcm_s16le"),
    "flac": Format("flac", "flac"),
    "ogg": Format("ogg", "vorbis", options=(("strict", "experimental"),)),
    "opus": Format("ogg", "libopus", rate=48000, bit_rate=96_000),
    "mp3": Format("mp3", "libmp3lame", bit_rate=128_000),
    "m4a": Format("mp4", "aac", bit_rate=128_000),
}


def encode_audio(
    path: str | os.PathLike,
    y: np.ndarray,
    sample_rate: int,
    *,
    fmt: str | None = None,
    spec: "Format | None" = None,
    chunk: int = 8192,
    tags: dict | None = None,
) -> None:
    """Encode ``y`` ``[shape=(n,) or (channels, n)]`` float in [-1, 1] at ``sample_rate``.

    ``fmt`` is a key of :data:`FORMATS` (default: the file extension); ``spec`` gives the
    container, codec and bit rate directly instead (e.g. a re-encoding test at a chosen bit
    rate). Written in chunks of ``chunk`` samples; PyAV's encoder-side resampler converts
    sample format, frame size and (for Opus) the rate. ``tags`` become container metadata.
    """
    if spec is None:
        fmt = fmt or os.path.splitext(str(path))[1].lstrip(".").lower()
        if fmt not in FORMATS:
            raise InputError(f"{path}: cannot encode format {fmt!r} (known: {', '.join(FORMATS)})")
        spec = FORMATS[fmt]
    y = np.atleast_2d(np.asarray(y, dtype=np.float32))
    if spec.codec == "vorbis" and y.shape[0] == 1:
        y = np.repeat(y, 2, axis=0)  # FFmpeg's native Vorbis encoder only takes stereo
    layout = {1: "mono", 2: "stereo"}.get(y.shape[0])
    if layout is None:
        raise InputError(f"{path}: encode_audio takes 1 or 2 channels, got {y.shape[0]}")
    with av.open(str(path), "w", format=spec.container) as out:
        stream = out.add_stream(spec.codec, rate=spec.rate or sample_rate, layout=layout,
                                options=dict(spec.options))
        if spec.bit_rate:
            stream.bit_rate = spec.bit_rate
        for key, value in (tags or {}).items():
            out.metadata[key] = value
        for i in range(0, y.shape[1], chunk):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(y[:, i:i + chunk]), format="fltp",
                                               layout=layout)
            frame.sample_rate = sample_rate
            frame.pts = i
            frame.time_base = Fraction(1, sample_rate)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
