"""Bad input to the audio intake: each class raises its typed error, one line, naming the file.

Fixtures are built byte by byte (hand-made RIFF headers) or by damaging files encoded in
the test, with seeded generators.
"""

from __future__ import annotations

import os
import signal
import struct
import time

import numpy as np
import pytest

from musicbrain_cli.audio import intake as audio
from musicbrain_cli.audio.encode import encode_audio
from musicbrain_cli.errors import (
    AbsurdHeaderError,
    AudioDecodeError,
    CorruptAudioError,
    DecodeTimeoutError,
    EmptyFileError,
    InputError,
    InvalidSamplesError,
    NotAudioError,
    SilentAudioError,
    UnsupportedCodecError,
    ZeroLengthAudioError,
)

RNG = np.random.default_rng(1234)


def riff_wav(path, data: bytes, *, rate=8000, channels=1, bits=16, tag=1, data_size=None,
             byte_rate=None):
    """A minimal RIFF/WAVE file whose header fields can lie (tag 1 = PCM, 3 = IEEE float)."""
    size = len(data) if data_size is None else data_size
    stated = rate * channels * bits // 8 if byte_rate is None else byte_rate
    fmt = struct.pack("<HHIIHH", tag, channels, rate, stated, channels * bits // 8, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", size) + data
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


def noise16(seconds=2.0, rate=8000) -> bytes:
    return (RNG.standard_normal(int(seconds * rate)) * 3000).astype("<i2").tobytes()


def drain(path, **kw):
    """Decode all of ``path``; return (blocks, stream) or raise."""
    s = audio.stream(path, **kw)
    return list(s), s


def assert_one_line_naming(exc: BaseException, path) -> None:
    msg = str(exc)
    assert str(os.path.basename(path)) in msg and "\n" not in msg


@pytest.fixture(scope="module")
def sine_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("good")
    t = np.arange(44100 * 4) / 44100
    y = (0.4 * np.sin(2 * np.pi * 700 * t)).astype(np.float32)
    out = {}
    for ext in ("mp3", "flac", "ogg", "m4a"):
        out[ext] = d / f"s.{ext}"
        encode_audio(out[ext], y, 44100)
    return out


# --- path problems ------------------------------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="no such file") as e:
        audio.stream(tmp_path / "nope.wav")
    assert_one_line_naming(e.value, tmp_path / "nope.wav")


def test_directory(tmp_path):
    with pytest.raises(InputError, match="directory"):
        audio.probe(tmp_path)


def test_symlink_loop(tmp_path):
    a, b = tmp_path / "a.wav", tmp_path / "b.wav"
    a.symlink_to(b)
    b.symlink_to(a)
    with pytest.raises(InputError, match="cannot be read") as e:
        audio.stream(a)
    assert_one_line_naming(e.value, a)


def test_fifo_is_refused_not_waited_on(tmp_path):
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="not a regular file"):
        audio.stream(fifo)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable(tmp_path):
    p = riff_wav(tmp_path / "locked.wav", noise16())
    p.chmod(0)
    with pytest.raises(InputError, match="permission"):
        audio.stream(p)


def test_empty_file(tmp_path):
    p = tmp_path / "empty.mp3"
    p.write_bytes(b"")
    with pytest.raises(EmptyFileError) as e:
        audio.probe(p)
    assert_one_line_naming(e.value, p)


# --- not audio / no decoder ---------------------------------------------------------------


@pytest.mark.parametrize("content", [b"hello, this is text and not audio\n" * 20, RNG.bytes(4000)], ids=["text", "random"])
def test_not_audio(tmp_path, content):
    p = tmp_path / "x.mp3"
    p.write_bytes(content)
    for call in (audio.probe, lambda q: drain(q)):
        with pytest.raises(NotAudioError) as e:
            call(p)
        assert_one_line_naming(e.value, p)


def test_container_without_audio_stream(tmp_path):
    import av

    p = tmp_path / "video_only.mp4"
    with av.open(str(p), "w") as out:
        s = out.add_stream("mpeg4", rate=5)
        s.width, s.height, s.pix_fmt = 32, 32, "yuv420p"
        for i in range(5):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), i * 40, np.uint8), format="rgb24")
            for packet in s.encode(frame):
                out.mux(packet)
        for packet in s.encode(None):
            out.mux(packet)
    with pytest.raises(NotAudioError, match="no audio stream"):
        audio.probe(p)


def test_unsupported_codec(tmp_path):
    p = riff_wav(tmp_path / "odd.wav", noise16(), tag=0x1234)  # a format tag FFmpeg has no decoder for
    with pytest.raises(UnsupportedCodecError) as e:
        drain(p)
    assert_one_line_naming(e.value, p)


# --- absurd headers -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"rate": 1_000_000}, "1000000 Hz"),
        ({"rate": 500}, "500 Hz"),
        ({"channels": 100}, "100 channels"),
        ({"data_size": 0xFFFFFFF0}, "h of audio"),  # 4.3 GB of 8 kHz 16-bit mono = 74.6 h
    ],
)
def test_absurd_header(tmp_path, kw, match):
    p = riff_wav(tmp_path / "absurd.wav", noise16(), **kw)
    with pytest.raises(AbsurdHeaderError, match=match):
        audio.probe(p)
    with pytest.raises(AbsurdHeaderError, match=match):
        drain(p)


def test_streamed_wav_unknown_size_is_not_absurd(tmp_path):
    # 0xFFFFFFFF is the "size unknown" convention of streamed WAV writers, not a claim.
    p = riff_wav(tmp_path / "streamed.wav", noise16(2.0), data_size=0xFFFFFFFF)
    blocks, s = drain(p)
    assert s.stats.decoded_duration_s == pytest.approx(2.0)


# --- damaged streams ----------------------------------------------------------------------


def test_truncated_wav_reports_share_decoded(tmp_path):
    data = noise16(2.0)
    p = riff_wav(tmp_path / "cut.wav", data, data_size=len(data) * 4)  # header claims 8 s
    with pytest.raises(CorruptAudioError) as e:
        drain(p)
    assert e.value.share_decoded == pytest.approx(0.25, abs=0.01)
    assert_one_line_naming(e.value, p)


@pytest.mark.parametrize("byte_rate", [0, 1, 0xFFFFFFF0])
def test_a_lying_byte_rate_field_neither_hides_truncation_nor_invents_hours(tmp_path, byte_rate):
    """Audit (session 26): the claimed length was data size / the header's byte-rate field,
    which FFmpeg ignores for PCM. Byte rate 0 (or huge) hid a 95 % truncation (called
    `human` on 5 % of the file); byte rate 1 made a complete file "588 h" and refused it."""
    data = noise16(2.0)
    cut = riff_wav(tmp_path / "cut.wav", data, data_size=len(data) * 4, byte_rate=byte_rate)
    with pytest.raises(CorruptAudioError) as e:
        drain(cut)
    assert e.value.share_decoded == pytest.approx(0.25, abs=0.01)
    whole = riff_wav(tmp_path / "whole.wav", data, byte_rate=byte_rate)
    blocks, s = drain(whole)
    assert s.stats.decoded_duration_s == pytest.approx(2.0)


@pytest.mark.parametrize("ext", ["mp3", "flac"])
def test_truncated_file(tmp_path, sine_files, ext):
    raw = sine_files[ext].read_bytes()
    p = tmp_path / f"cut.{ext}"
    p.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CorruptAudioError) as e:
        drain(p)
    assert 0.3 < e.value.share_decoded < 0.7


@pytest.mark.parametrize("ext", ["mp3", "flac", "ogg", "m4a"])
def test_garbage_in_the_middle(tmp_path, sine_files, ext):
    raw = bytearray(sine_files[ext].read_bytes())
    a, b = len(raw) // 4, len(raw) * 3 // 4
    raw[a:b] = np.random.default_rng(7).bytes(b - a)
    p = tmp_path / f"garbled.{ext}"
    p.write_bytes(bytes(raw))
    with pytest.raises(CorruptAudioError) as e:
        drain(p)
    assert e.value.share_decoded < 0.8


def test_mp4_cut_before_its_index_is_corrupt_not_foreign(tmp_path, sine_files):
    raw = sine_files["m4a"].read_bytes()
    p = tmp_path / "cut.m4a"
    p.write_bytes(raw[: len(raw) // 2])  # PyAV writes moov at the end: it is gone
    with pytest.raises(CorruptAudioError, match="MP4") as e:
        audio.probe(p)
    assert e.value.share_decoded == 0.0


def test_zero_length(tmp_path):
    p = riff_wav(tmp_path / "zero.wav", b"")
    with pytest.raises(ZeroLengthAudioError) as e:
        drain(p)
    assert_one_line_naming(e.value, p)


def test_silence_raises_at_end_of_stream_after_all_blocks(tmp_path):
    p = riff_wav(tmp_path / "silent.wav", bytes(8000 * 2 * 3))  # 3 s of zeros
    s = audio.stream(p, block_s=1.0)
    got = []
    with pytest.raises(SilentAudioError) as e:
        for block in s:
            got.append(block)
    assert len(got) == 3 and not np.concatenate(got).any()
    assert s.stats is not None and s.stats.decoded_duration_s == pytest.approx(3.0)
    assert_one_line_naming(e.value, p)


def test_nan_raises_before_the_bad_block_is_handed_out(tmp_path):
    y = np.full(8000 * 3, 0.25, "<f4")
    y[8000 * 2 + 10] = np.nan  # in the third 1-second block
    p = riff_wav(tmp_path / "nan.wav", y.tobytes(), tag=3, bits=32)
    s = audio.stream(p, block_s=1.0, isolate=False, sample_rate=8000)
    got = []
    with pytest.raises(InvalidSamplesError, match="NaN") as e:
        for block in s:
            got.append(block)
    assert len(got) == 2 and all(np.isfinite(b).all() for b in got)
    assert_one_line_naming(e.value, p)


def test_inf_is_caught_through_the_isolated_path(tmp_path):
    y = np.full(8000, 0.25, "<f4")
    y[5] = np.inf
    p = riff_wav(tmp_path / "inf.wav", y.tobytes(), tag=3, bits=32)
    with pytest.raises(InvalidSamplesError):
        drain(p)


# --- hostile files: time limits and crashes -----------------------------------------------


@pytest.fixture(scope="module")
def long_flac(tmp_path_factory):
    p = tmp_path_factory.mktemp("long") / "long.flac"
    y = (0.1 * np.random.default_rng(3).standard_normal(44100 * 120)).astype(np.float32)
    encode_audio(p, y, 44100)
    return p


def test_timeout_fires(long_flac):
    # The first 60 s block cannot be decoded in 5 ms.
    s = audio.stream(long_flac, timeout_s=0.005, block_s=60.0)
    # Whichever fires first (the child's own check, or the parent killing it) is fine.
    with pytest.raises(DecodeTimeoutError, match="longer than 0.005 s") as e:
        next(s)
    assert_one_line_naming(e.value, long_flac)


def test_hung_decoder_is_killed_at_the_deadline(long_flac):
    s = audio.stream(long_flac, timeout_s=1.0, block_s=0.5)
    next(s)
    pid = s.worker_pid
    os.kill(pid, signal.SIGSTOP)  # a decoder stuck inside FFmpeg looks like this
    t0 = time.monotonic()
    with pytest.raises(DecodeTimeoutError):
        for _ in s:
            pass
    assert time.monotonic() - t0 < 2.5
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # killed and reaped


def test_timeout_counts_only_time_waiting_for_the_decoder(tmp_path):
    # A slow consumer must not time out a healthy decode.
    p = riff_wav(tmp_path / "ok.wav", noise16(3.0))
    s = audio.stream(p, block_s=1.0, timeout_s=1.0)
    n = 0
    for b in s:
        time.sleep(0.45)  # 1.35 s of consumer time in all, more than the limit
        n += b.size
    assert n == 3 * audio.SAMPLE_RATE


def test_in_process_timeout(long_flac):
    with pytest.raises(DecodeTimeoutError):
        drain(long_flac, timeout_s=1e-6, isolate=False)


def test_decoder_crash_becomes_audio_decode_error(long_flac):
    s = audio.stream(long_flac, block_s=0.5)
    next(s)
    os.kill(s.worker_pid, signal.SIGSEGV)  # what a decoder bug in FFmpeg would do
    with pytest.raises(AudioDecodeError, match="SIGSEGV") as e:
        for _ in s:
            pass
    assert_one_line_naming(e.value, long_flac)
    # The process is unharmed and the next file decodes (on a fresh child).
    blocks, s2 = drain(long_flac, block_s=30.0)
    assert s2.stats.decoded_duration_s == pytest.approx(120.0, abs=0.01)


def test_stopping_early_stops_the_decoder(long_flac):
    with audio.stream(long_flac, block_s=0.5) as s:
        next(s)
        pid = s.worker_pid
    assert s.worker_pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # killed and reaped


def test_errors_are_typed_in_both_paths(tmp_path):
    p = riff_wav(tmp_path / "rate.wav", noise16(), rate=999)
    for isolate in (True, False):
        with pytest.raises(AbsurdHeaderError):
            drain(p, isolate=isolate)


def test_a_child_that_sends_more_native_samples_than_asked_is_cut_to_the_request(long_flac, monkeypatch):
    """The parent trusts the decoder child no more than the file: native-rate samples beyond
    what it asked for (a compromised child could send any amount) are dropped, not held."""
    real_acquire = audio._POOL.acquire

    class Repeating:
        """A real child whose native-rate chunks reach the parent twice over."""

        def __init__(self, worker):
            self.worker, self.proc, self.uses, self.again = worker, worker.proc, 0, None

        def __getattr__(self, name):
            return getattr(self.worker, name)

        def receive(self, path, budget):
            if self.again is not None:
                out, self.again = self.again, None
                return out
            kind, payload = self.worker.receive(path, budget)
            if kind == b"N":
                self.again = (kind, bytearray(payload))
            return kind, payload

    monkeypatch.setattr(audio._POOL, "acquire", lambda: Repeating(real_acquire()))
    monkeypatch.setattr(audio._POOL, "release", lambda w, reusable: w.worker.kill())
    asked = audio.seconds_to_samples(30.0, 44100)
    with audio.stream(long_flac, native_samples=asked) as s:
        list(s)
    y, rate = s.native()
    assert rate == 44100 and y.size == asked      # twice as much arrived


def test_a_chained_ogg_that_breaks_the_demuxer_is_not_judged_on_its_first_part(tmp_path):
    """Audit (session 26): 12 s of Vorbis at 44.1 kHz followed by 60 s at 22.05 kHz: FFmpeg
    stops at the second stream, Ogg states no length and the timestamps cover the first
    part, so the file was "100 % decoded" and judged on its first 12 s. The bytes never read
    now count as undecoded."""
    from musicbrain_cli.audio.encode import encode_audio

    rng = np.random.default_rng(5)
    a, b = tmp_path / "a.ogg", tmp_path / "b.ogg"
    encode_audio(a, (rng.standard_normal(44100 * 4) * 0.1).astype(np.float32), 44100)
    encode_audio(b, (rng.standard_normal(22050 * 20) * 0.1).astype(np.float32), 22050)
    chained = tmp_path / "chained.ogg"
    chained.write_bytes(a.read_bytes() + b.read_bytes())
    with pytest.raises(CorruptAudioError) as e:       # the locked FFmpeg stops at the chain
        drain(chained)
    assert "demuxer" in str(e.value) and e.value.share_decoded < 0.5
    assert_one_line_naming(e.value, chained)
    blocks, s = drain(a)                                # one stream alone: whole
    assert s.stats.decoded_duration_s == pytest.approx(4.0, abs=0.1)
