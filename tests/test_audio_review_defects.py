"""Defects a review of the audio intake found with crafted hostile or damaged files.

Each test failed on the code before its fix. Fixtures are synthesised here (seeded) and
encoded with PyAV; nothing is downloaded.
"""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from musicbrain_cli.audio import intake as audio
from musicbrain_cli.audio.encode import encode_audio
from musicbrain_cli.errors import CorruptAudioError

SR = 44100


def _drain(path, **kw):
    """Decode all of ``path`` at its own rate (no resampling); return (samples, stats, error)."""
    s = audio.stream(path, sample_rate=SR, block_s=1.0, **kw)
    got, err = [], None
    try:
        for block in s:
            got.append(block)
    except CorruptAudioError as exc:
        err = exc
    return (np.concatenate(got) if got else np.zeros(0, np.float32)), s.stats, err


@pytest.fixture(scope="module")
def noise_flac(tmp_path_factory):
    p = tmp_path_factory.mktemp("flac") / "noise.flac"
    y = (0.1 * np.random.default_rng(11).standard_normal((2, SR * 4))).astype(np.float32)
    encode_audio(p, y, SR)
    return p


@pytest.mark.parametrize("isolate", [False, True])
def test_a_flac_frame_whose_checksum_fails_is_neither_analysed_nor_hidden(tmp_path, noise_flac, isolate):
    """One flipped bit inside a FLAC frame: FFmpeg does not check the frame's CRC-16 unless
    asked, so the garbled frame was decoded and analysed as music, and the stats said
    "100 % decoded, 0 undecodable packets". Checked, the frame is dropped, and the loss
    (4,608 samples, one frame) was still called 100 %: the codec-framing allowance meant
    for lossy priming also covered a lossless codec that has none."""
    clean, clean_stats, _ = _drain(noise_flac, isolate=isolate)
    assert clean_stats.share_decoded == 1.0
    raw = bytearray(noise_flac.read_bytes())
    raw[len(raw) // 2] ^= 0x08  # one bit in the middle of a frame's residual
    damaged = tmp_path / "flipped.flac"
    damaged.write_bytes(bytes(raw))
    y, stats, err = _drain(damaged, isolate=isolate)
    # Every sample handed out is a sample of the file: the damaged frame is left out
    # whole, never decoded to garbage.
    lost = clean.size - y.size
    assert lost > 0, "the damaged frame was decoded (to wrong samples) instead of refused"
    first = int(np.argmax(y != clean[: y.size])) if np.any(y != clean[: y.size]) else y.size
    np.testing.assert_array_equal(y[:first], clean[:first])
    np.testing.assert_array_equal(y[first:], clean[first + lost:])
    # ... and the loss is said: a share below 1 (a limitation note in the scan), or a refusal.
    share = stats.share_decoded if err is None else err.share_decoded
    assert share is not None and share <= 1.0 - lost / clean.size + 1e-6


def test_a_pcm_wav_missing_its_last_tenth_of_a_second_is_not_called_whole(tmp_path):
    """A 16-bit PCM WAV whose header claims 4,000 samples more than it holds (a copy cut
    short): PCM has no priming or padding, yet the 4,608-sample allowance for lossy codecs
    made it "100 % decoded"."""
    n = SR * 2
    data = (np.random.default_rng(3).standard_normal(n) * 3000).astype("<i2").tobytes()
    fmt = struct.pack("<HHIIHH", 1, 1, SR, SR * 2, 2, 16)
    body = (b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data"
            + struct.pack("<I", len(data) + 4000 * 2) + data)
    p = tmp_path / "short.wav"
    p.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    y, stats, err = _drain(p, isolate=False)
    assert err is None and y.size == n
    assert stats.share_decoded == pytest.approx(n / (n + 4000), abs=1e-6)


@pytest.fixture(scope="module")
def short_mp3(tmp_path_factory):
    p = tmp_path_factory.mktemp("mp3") / "short.mp3"
    encode_audio(p, (0.1 * np.random.default_rng(2).standard_normal((1, 22050))).astype(np.float32), 22050)
    return p


def test_lossy_files_keep_their_framing_allowance(short_mp3):
    """The fix above must not turn every clean lossy file into a partial one."""
    _, stats, err = _drain(short_mp3, isolate=False)
    assert err is None and stats.share_decoded == 1.0


def test_huge_tag_keys_and_binary_descriptions_are_cut_and_said(tmp_path, noise_flac, short_mp3):
    """Tag keys (a Vorbis field name, an ID3 TXXX/GEOB description, a PRIV owner) and the
    text fields of a binary payload (MIME type, description, file name) were kept whole:
    a 1 MB field name went into result.json and report.html as 1 MB, with nothing listed
    under "truncated", so the "bounded" tag record was bounded only for values."""
    from mutagen.flac import FLAC
    from mutagen.id3 import GEOB, ID3, PRIV, TXXX

    from musicbrain_cli.audio.metadata import MAX_VALUE_CHARS, split_cut

    big = 200_000
    flac = tmp_path / "bigkey.flac"
    flac.write_bytes(noise_flac.read_bytes())
    f = FLAC(flac)
    f["K" * big] = "v"
    f["TITLE"] = "ok"
    f.save()
    mp3 = tmp_path / "bigid3.mp3"
    mp3.write_bytes(short_mp3.read_bytes())
    tags = ID3()
    tags.add(TXXX(encoding=3, desc="D" * big, text=["x"]))
    tags.add(GEOB(encoding=3, mime="m" * big, desc="g" * big, filename="f" * big, data=b"abc"))
    tags.add(PRIV(owner="o" * big, data=b"zz"))
    tags.save(mp3)
    for p in (flac, mp3):
        md = audio.read_metadata(p, provenance=False)
        size = len(json.dumps(md))
        assert size < 20 * MAX_VALUE_CHARS, f"{p.name}: {size} characters of tags"
        assert md["truncated"], "what was cut must be listed"
        for key, values in md["tags"].items():
            kept, total = split_cut(key)
            assert len(kept) <= MAX_VALUE_CHARS
            if total > MAX_VALUE_CHARS:
                assert key in md["truncated"]
            assert total in (len(key), big) or key.startswith(("TXXX:", "GEOB:", "PRIV:"))
            for v in values:
                if isinstance(v, dict):
                    for field in ("mime", "description", "filename", "owner"):
                        if isinstance(v.get(field), str):
                            kept, total = split_cut(v[field])
                            assert len(kept) <= MAX_VALUE_CHARS and total in (len(v[field]), big)
    # a C2PA store named by a huge description: its source is cut the same way
    c2pa = tmp_path / "bigc2pa.mp3"
    c2pa.write_bytes(short_mp3.read_bytes())
    tags = ID3()
    tags.add(GEOB(encoding=3, mime="application/c2pa", desc="c" * big, filename="c2pa", data=b"jumb"))
    tags.save(c2pa)
    from musicbrain_cli.audio.metadata import find_c2pa_store

    md = audio.read_metadata(c2pa, provenance=False)
    assert md["c2pa_present"] and split_cut(md["c2pa_source"]) == (md["c2pa_source"][:MAX_VALUE_CHARS], big + 9)
    assert len(find_c2pa_store(c2pa).source) < 2 * MAX_VALUE_CHARS
    md = audio.read_metadata(flac, provenance=False)
    assert md["tags"]["TITLE"] == ["ok"]
    cut_keys = [k for k in md["tags"] if split_cut(k)[1] == big]
    assert cut_keys and cut_keys[0].startswith("K" * 100)


def test_ffmpeg_tag_keys_cut_to_the_same_prefix_do_not_overwrite_each_other():
    """Two container tags whose long names share their first 256 characters were stored
    under one cut name, the second silently replacing the first."""
    from musicbrain_cli.audio.decode import _bounded_tags

    a, b = "A" * 300 + "1", "A" * 300 + "2"
    out = _bounded_tags({a: "first", b: "second"})
    assert sorted(out.values()) == ["first", "second"]
    assert all(len(k) < 300 for k in out)


@pytest.mark.parametrize("container", ["w64", "caf"])
def test_a_truncated_wave64_or_caf_is_not_called_whole(tmp_path, container):
    """FFmpeg clamps a PCM container's duration to the bytes present. WAV's own header
    claim was read to catch that; Wave64 and CAF were not, so a file cut to a quarter was
    judged on its first quarter as "100 % decoded" (W64) or "97.8 % decoded" (CAF)."""
    from musicbrain_cli.audio.encode import Format

    y = (0.1 * np.random.default_rng(4).standard_normal((1, 8000 * 8))).astype(np.float32)
    whole = tmp_path / f"whole.{container}"
    encode_audio(whole, y, 8000, spec=Format(container, "pcm_s16le"))
    _, stats, err = _drain(whole, isolate=False)
    assert err is None and stats.share_decoded == 1.0
    assert stats.claimed_duration_s == pytest.approx(8.0)
    raw = whole.read_bytes()
    cut = tmp_path / f"cut.{container}"
    cut.write_bytes(raw[: len(raw) // 4])
    with pytest.raises(CorruptAudioError) as e:
        list(audio.stream(cut, isolate=False))
    assert e.value.share_decoded == pytest.approx(0.25, abs=0.02)


@pytest.mark.parametrize("share, shown", [(0.9996, "99.9%"), (0.991, "99.1%"), (0.5, "50.0%")])
def test_a_partial_decode_is_never_stated_as_100_percent(share, shown):
    """A lossless file 3 ms short of its header decodes 99.96 %: its limitation said "Only
    100.0% of the stream decoded" (review). The share is rounded down, never up to whole."""
    from types import SimpleNamespace

    from musicbrain_cli.scan.batch import _limitations

    notes = _limitations({"available": True, "in_domain": True}, [False],
                         SimpleNamespace(share_decoded=share))
    said = [n for n in notes if "of the stream decoded" in n]
    assert said == [f"Only {shown} of the stream decoded; the rest was not analysed."]


def _vbr_mp3(path, seconds: float = 20.0) -> bytes:
    """A variable-bit-rate MP3 (LAME -V2) whose first 3 s are near-silent, so its first frames
    are far smaller than the rest, as LAME writes it: ID3 tag dropped, Xing frame kept."""
    import av

    rng = np.random.default_rng(45)
    t = np.arange(int(seconds * SR)) / SR
    y = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.2 * rng.standard_normal(t.size)
    y[: 3 * SR] *= 1e-4
    y = np.stack([y, y[::-1]]).astype(np.float32)
    with av.open(str(path), "w", format="mp3") as c:
        s = c.add_stream("libmp3lame", rate=SR, layout="stereo")
        s.codec_context.qscale = True
        s.codec_context.global_quality = 2 * 118
        for i in range(0, y.shape[1], 1152):
            f = av.AudioFrame.from_ndarray(np.ascontiguousarray(y[:, i:i + 1152]), format="fltp",
                                           layout="stereo")
            f.sample_rate, f.pts = SR, i
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    data = path.read_bytes()
    if data[:3] == b"ID3":
        data = data[10 + sum((b & 0x7F) << (7 * (3 - i)) for i, b in enumerate(data[6:10])):]
    return data


def test_an_intact_vbr_mp3_without_a_xing_frame_is_decoded_and_a_truncated_one_with_it_is_not(
        tmp_path):
    """Review (session 45): without a Xing/Info/VBRI frame an MPEG audio file states no length;
    FFmpeg's duration is then its estimate from the first frame's bit rate, and an intact VBR
    file opening softly was refused as "only 68 % decoded". Only a stated length is held
    against what decodes; a truncated file whose Xing frame states its length still fails."""
    from musicbrain_cli.audio.decode import _mp3_states_length

    data = _vbr_mp3(tmp_path / "enc.mp3")
    bitrates = [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320]
    first = 144000 * bitrates[data[2] >> 4] // SR + ((data[2] >> 1) & 1)
    assert b"Xing" in data[:first] or b"Info" in data[:first]
    plain = tmp_path / "noxing.mp3"
    plain.write_bytes(data[first:])
    assert not _mp3_states_length(str(plain))
    y, stats, err = _drain(plain)
    assert err is None, err
    assert y.size / SR == pytest.approx(20.0, abs=0.1)
    assert stats.claimed_duration_s is None and stats.share_decoded == 1.0
    assert audio.probe(plain).duration_s > 22.0      # FFmpeg's estimate, shown, never held

    cut = tmp_path / "cut.mp3"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    assert _mp3_states_length(str(cut))
    _, _, err = _drain(cut)
    assert err is not None and "decoded" in str(err)
