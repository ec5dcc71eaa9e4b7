"""Intake and discovery defects found by the review of session 46 (audio/decode.py,
audio/intake.py, scan/discovery.py). Each test fails with the defect back in place."""

import os
from pathlib import Path

import pytest

from musicbrain_cli.audio.encode import encode_audio
from musicbrain_cli.scan.discovery import NOT_UTF8, SAME_FILE, discover
from conftest import make_tone, non_utf8_path

SR = 22050


def _decoded(path, isolate: bool) -> tuple[int, float]:
    """``(samples, share decoded)`` of a whole streamed decode of ``path``."""
    from musicbrain_cli.audio import intake

    with intake.stream(path, isolate=isolate) as s:
        n = sum(block.size for block in s)
    return n, s.stats.share_decoded


# --- 1: a name that is not UTF-8 claimed its file for every other name ------------------------


@pytest.mark.parametrize("link", ["symbolic", "hard"])
def test_a_file_refused_for_its_name_is_still_taken_under_another_name(tmp_path, link):
    """`caf\\xe9.wav` (Latin-1) sorts before its link `good.wav`: the name was refused (not
    UTF-8) but had already claimed the file, so `good.wav` was skipped as "the same file as a
    path already taken ... analysed once" while the audio was analysed under no name."""
    bad = non_utf8_path(tmp_path, b"caf\xe9.wav")
    if bad is None:
        pytest.skip("this file system cannot hold a name that is not UTF-8")
    encode_audio(bad, make_tone(1.0), SR, fmt="wav")
    (os.symlink if link == "symbolic" else os.link)(bad, tmp_path / "good.wav")
    found = discover([tmp_path])
    assert [p.name for p in found.files] == ["good.wav"]
    assert [why for _, why in found.failed] == [NOT_UTF8]
    assert not [p for p, why in found.skipped if why == SAME_FILE]


# --- 2: an MP4 whose audio starts late, by an edit list, was refused as corrupt ----------------


def _late_m4a(path: Path, delay_s: float, seconds: float = 4.0, rate: int = 44100) -> None:
    """An M4A (AAC) whose first audio sample plays at ``delay_s``: FFmpeg's MP4 muxer writes
    the delay as an empty edit in the track's edit list."""
    from fractions import Fraction

    import av
    import numpy as np

    y = np.random.default_rng(7).standard_normal((1, int(seconds * rate))).astype(np.float32) * 0.1
    off = int(delay_s * rate)
    with av.open(str(path), "w", format="mp4") as out:
        st = out.add_stream("aac", rate=rate, layout="mono")
        for i in range(0, y.shape[1], 4096):
            fr = av.AudioFrame.from_ndarray(np.ascontiguousarray(y[:, i:i + 4096]), format="fltp",
                                            layout="mono")
            fr.sample_rate, fr.pts, fr.time_base = rate, i + off, Fraction(1, rate)
            for packet in st.encode(fr):
                out.mux(packet)
        for packet in st.encode(None):
            out.mux(packet)


@pytest.mark.parametrize("isolate", [False, True])
def test_an_m4a_whose_audio_starts_late_by_its_edit_list_is_whole(tmp_path, isolate):
    """The decode counted an MP4's timestamps from zero, so 1 s of declared delay before 4 s
    of audio read as 1 s lost: "only 80.8 % decoded", the file refused as corrupt."""
    from musicbrain_cli.audio import intake

    path = tmp_path / "late.m4a"
    _late_m4a(path, 1.0)
    n, share = _decoded(path, isolate)
    assert n / intake.SAMPLE_RATE == pytest.approx(4.0, abs=0.1)
    assert share == 1.0


# --- 3: FFmpeg's length estimate of a raw AAC stream was refused as a header's claim -----------


def _adts_frames(path: Path, y, rate: int) -> list[bytes]:
    """The ADTS frames of ``y`` (mono float32 at ``rate``) encoded as raw AAC."""
    from fractions import Fraction

    import av
    import numpy as np

    with av.open(str(path), "w", format="adts") as out:
        st = out.add_stream("aac", rate=rate, layout="mono")
        for i in range(0, y.size, 4096):
            fr = av.AudioFrame.from_ndarray(np.ascontiguousarray(y[None, i:i + 4096]), format="fltp",
                                            layout="mono")
            fr.sample_rate, fr.pts, fr.time_base = rate, i, Fraction(1, rate)
            for packet in st.encode(fr):
                out.mux(packet)
        for packet in st.encode(None):
            out.mux(packet)
    data, frames, i = path.read_bytes(), [], 0
    while i + 7 <= len(data):
        n = ((data[i + 3] & 3) << 11) | (data[i + 4] << 3) | (data[i + 5] >> 5)
        frames.append(data[i:i + n])
        i += n
    return frames


@pytest.mark.parametrize("isolate", [False, True])
def test_a_raw_aac_stream_with_a_silent_intro_is_not_refused_for_an_estimated_length(tmp_path, isolate):
    """A raw AAC (ADTS) stream states no length; FFmpeg estimates one from the file's size
    and its first frames' bit rate, and 30 s of silence (11-byte frames) before 28 min of
    sound made that "24.9 h": the file was refused as "header claims 24.9 h of audio" and
    never analysed."""
    import numpy as np

    from musicbrain_cli.audio import intake
    from musicbrain_cli.audio.decode import MAX_DURATION_S

    rate = 8000
    silence = _adts_frames(tmp_path / "s.aac", np.zeros(rate * 30, np.float32), rate)
    noise = _adts_frames(tmp_path / "n.aac",
                         np.random.default_rng(3).standard_normal(rate * 20).astype(np.float32) * 0.2,
                         rate)
    body = b"".join(noise[3:-3])
    path = tmp_path / "intro.aac"
    path.write_bytes(b"".join(silence[2:-2]) + body * (int(7.6e6 / len(body)) + 1))
    real_s = (len(silence) - 4 + (int(7.6e6 / len(body)) + 1) * (len(noise) - 6)) * 1024 / rate
    assert real_s < 1800                                     # under half an hour of audio

    info = intake.probe(path, isolate=isolate)
    assert info.duration_s > MAX_DURATION_S                  # FFmpeg's estimate, as it is
    y = intake.load_audio(path, isolate=isolate, max_duration_s=40.0)
    assert y.size == intake.seconds_to_samples(40.0, intake.SAMPLE_RATE)


# --- 4: a WebM whose video outlasts its audio was refused as corrupt ---------------------------


def _webm(path: Path, audio_s: float = 4.0, video_s: float = 6.0, rate: int = 48000) -> None:
    """A WebM of ``video_s`` of VP8 video (10 frames/s) and ``audio_s`` of Opus audio."""
    from fractions import Fraction

    import av
    import numpy as np

    y = np.random.default_rng(11).standard_normal((2, int(audio_s * rate))).astype(np.float32) * 0.1
    with av.open(str(path), "w", format="webm") as out:
        v = out.add_stream("libvpx", rate=10)
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        a = out.add_stream("libopus", rate=rate, layout="stereo")
        for i in range(0, y.shape[1], 960):
            fr = av.AudioFrame.from_ndarray(np.ascontiguousarray(y[:, i:i + 960]), format="fltp",
                                            layout="stereo")
            fr.sample_rate, fr.pts, fr.time_base = rate, i, Fraction(1, rate)
            for packet in a.encode(fr):
                out.mux(packet)
        for i in range(int(video_s * 10)):
            f = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")
            f.pts = i
            for packet in v.encode(f):
                out.mux(packet)
        for stream in (v, a):
            for packet in stream.encode(None):
                out.mux(packet)


@pytest.mark.parametrize("isolate", [False, True])
def test_a_webm_whose_video_outlasts_its_audio_is_whole_and_a_cut_one_is_not(tmp_path, isolate):
    """Matroska states only the segment's length, the end of its longest stream: 4 s of audio
    beside 6 s of video read "only 66.7 % decoded" and the file was refused as corrupt. The
    stated length still catches a file cut short."""
    from musicbrain_cli.audio import intake
    from musicbrain_cli.errors import CorruptAudioError

    path = tmp_path / "clip.webm"
    try:
        _webm(path)
    except Exception as exc:  # noqa: BLE001 - an FFmpeg build without VP8/Opus encoders
        pytest.skip(f"cannot write a WebM here: {exc}")
    n, share = _decoded(path, isolate)
    assert n / intake.SAMPLE_RATE == pytest.approx(4.0, abs=0.05)
    assert share == 1.0

    cut = tmp_path / "cut.webm"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CorruptAudioError):
        with intake.stream(cut, isolate=isolate) as s:
            list(s)


# --- 5: audio after a WAV's data chunk was passed over as "100 % decoded" -----------------------


@pytest.mark.parametrize("isolate", [False, True])
def test_a_wav_with_audio_beyond_its_data_chunk_is_not_called_whole(tmp_path, isolate):
    """FFmpeg reads a WAV's samples only up to its data chunk's stated size: two WAVs joined
    (`cat a.wav b.wav`, or a data chunk over 4 GiB whose 32-bit size wrapped) were judged on
    the first part and read "100 % decoded". Chunks after the data (a LIST with a cover, an
    appended ID3v2 tag) and zero padding are no audio and still leave a file whole."""
    import struct

    import numpy as np

    from musicbrain_cli.audio import intake
    from musicbrain_cli.errors import CorruptAudioError

    rng = np.random.default_rng(2)
    one = tmp_path / "one.wav"
    encode_audio(one, (rng.standard_normal(SR * 4) * 0.1).astype(np.float32), SR)
    two = tmp_path / "two.wav"
    encode_audio(two, (rng.standard_normal(SR * 8) * 0.1).astype(np.float32), SR)
    joined = tmp_path / "joined.wav"
    joined.write_bytes(one.read_bytes() + two.read_bytes())
    with pytest.raises(CorruptAudioError) as err:
        with intake.stream(joined, isolate=isolate) as s:
            list(s)
    assert err.value.share_decoded == pytest.approx(1 / 3, abs=0.01)

    noise = rng.integers(0, 256, 300_000, dtype=np.uint8).tobytes()
    for name, tail in (("cover", b"LIST" + struct.pack("<I", len(noise)) + noise),
                       ("id3", b"ID3\x03\x00\x00\x00\x12\x00\x00" + noise[:0x12 << 14]),
                       ("zeros", bytes(500_000))):
        path = tmp_path / f"{name}.wav"
        path.write_bytes(one.read_bytes() + tail)
        n, share = _decoded(path, isolate)
        assert n == SR * 4 and share == 1.0, name


def test_a_length_ffmpeg_estimated_is_not_labelled_the_headers_in_the_report(tmp_path):
    """A raw AAC stream states no length: the report's integrity table printed FFmpeg's
    estimate as "Duration (header)", a claim the file never made (24.9 h for the stream of
    the test above). The probe records whether the length was stated, and the table says
    which it shows."""
    import numpy as np

    from musicbrain_cli.audio import intake
    from musicbrain_cli.report.html import _integrity

    rate = 8000
    path = tmp_path / "raw.aac"
    _adts_frames(path, np.random.default_rng(5).standard_normal(rate * 3).astype(np.float32) * 0.2,
                 rate)
    info = intake.probe(path)
    assert info.duration_stated is False
    rows = dict(_integrity({"input": info.to_dict()}))
    assert "Duration (header)" not in rows
    assert any(k.startswith("Duration (FFmpeg's estimate") for k in rows)

    wav = tmp_path / "stated.wav"
    import soundfile as sf
    sf.write(wav, np.zeros(rate, np.float32), rate)
    stated = intake.probe(wav)
    assert stated.duration_stated is True
    assert "Duration (header)" in dict(_integrity({"input": stated.to_dict()}))


def _aiff(path: Path, y, rate: int, codec: str = "pcm_s16be") -> None:
    """``y`` (mono float in [-1, 1]) written by FFmpeg's AIFF muxer with ``codec``."""
    from musicbrain_cli.audio.encode import Format

    encode_audio(path, y, rate, spec=Format("aiff", codec))


@pytest.mark.parametrize("isolate", [False, True])
def test_an_aiff_with_audio_after_its_form_is_not_called_whole(tmp_path, isolate):
    """As a WAV's: FFmpeg reads an AIFF's sound data only as far as its COMM chunk's frame
    count, so two AIFFs joined (`cat a.aiff b.aiff`) were judged on the first 4 s of 24 and
    read "100 % decoded". The AIFF's own claim now counts the audio appended after its FORM;
    an appended ID3v1 tag or zero padding is no audio, and 24-bit and AIFF-C files read whole."""
    import numpy as np

    from musicbrain_cli.audio import intake
    from musicbrain_cli.errors import CorruptAudioError

    rng = np.random.default_rng(4)
    one, two = tmp_path / "one.aiff", tmp_path / "two.aiff"
    _aiff(one, rng.standard_normal(SR * 4) * 0.1, SR)
    _aiff(two, rng.standard_normal(SR * 20) * 0.1, SR)
    joined = tmp_path / "joined.aiff"
    joined.write_bytes(one.read_bytes() + two.read_bytes())
    with pytest.raises(CorruptAudioError) as err:
        with intake.stream(joined, isolate=isolate) as s:
            list(s)
    assert err.value.share_decoded == pytest.approx(4 / 24, abs=0.01)

    for name, data in (("tag", one.read_bytes() + b"TAG" + bytes(125)),
                       ("zeros", one.read_bytes() + bytes(300_000))):
        path = tmp_path / f"{name}.aiff"
        path.write_bytes(data)
        n, share = _decoded(path, isolate)
        assert n == SR * 4 and share == 1.0, name
    for codec in ("pcm_s24be", "pcm_s16le"):                  # 24-bit; AIFF-C 'sowt'
        path = tmp_path / f"{codec}.aiff"
        _aiff(path, rng.standard_normal(SR * 3) * 0.1, SR, codec)
        n, share = _decoded(path, isolate)
        assert n == SR * 3 and share == 1.0, codec
