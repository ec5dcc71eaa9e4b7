"""Tests for musicbrain_cli.audio.intake: decoding each format, facts, windows, metadata, memory.

Every fixture is synthesised here (seeded) and encoded with PyAV; nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import json
import tracemalloc

import numpy as np
import pytest
import soundfile as sf

from musicbrain_cli.audio import intake as audio
from musicbrain_cli.audio.encode import FORMATS, encode_audio
from musicbrain_cli.errors import AbsurdHeaderError

SR_IN = 44100
DUR = 2.5
TONE = 1000.0  # Hz; survives every codec at these bit rates


def _mixture(seed: int = 0, dur: float = DUR, sr: int = SR_IN) -> np.ndarray:
    """Stereo: a 1 kHz sine in both channels, a weaker 3 kHz sine on the right, light noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(dur * sr)) / sr
    left = 0.4 * np.sin(2 * np.pi * TONE * t) + 0.01 * rng.standard_normal(t.size)
    right = 0.4 * np.sin(2 * np.pi * TONE * t) + 0.1 * np.sin(2 * np.pi * 3000 * t) + 0.01 * rng.standard_normal(t.size)
    return np.stack([left, right]).astype(np.float32)


@pytest.fixture(scope="module")
def encoded(tmp_path_factory):
    d = tmp_path_factory.mktemp("enc")
    y = _mixture()
    paths = {}
    for ext in FORMATS:
        paths[ext] = d / f"mix.{ext}"
        encode_audio(paths[ext], y, SR_IN)
    return paths


def _peak_hz(y: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(y * np.hanning(y.size)))
    return float(np.argmax(spec) * sr / y.size)


@pytest.mark.parametrize("ext", list(FORMATS))
def test_each_format_decodes_to_mono_float32_at_model_rate(encoded, ext):
    blocks = audio.stream(encoded[ext], block_s=1.0)
    parts = list(blocks)
    y = np.concatenate(parts)
    assert y.dtype == np.float32 and y.ndim == 1
    assert all(b.size == 22050 for b in parts[:-1]) and 0 < parts[-1].size <= 22050
    # Duration within codec priming/padding (AAC/Opus/Vorbis add a few tens of ms).
    assert abs(y.size / audio.SAMPLE_RATE - DUR) < 0.06
    # The tone survives the codec and the 44.1 -> 22.05 kHz resampler.
    assert abs(_peak_hz(y, audio.SAMPLE_RATE) - TONE) < 1.0
    stats = blocks.stats
    # Issue 24: a clean file reads 100 % decoded, whatever its codec's priming and padding.
    assert stats.undecodable_packets == 0 and stats.share_decoded == 1.0
    assert stats.decoded_samples == y.size
    assert blocks.facts.channels == 2


@pytest.mark.parametrize("ext", ["wav", "flac", "mp3", "opus", "m4a", "ogg"])
def test_probe_facts(encoded, ext):
    p = encoded[ext]
    info = audio.probe(p)
    assert info.sha256 == hashlib.sha256(p.read_bytes()).hexdigest()
    assert info.size_bytes == p.stat().st_size
    assert info.channels == 2
    assert info.sample_rate == (48000 if ext == "opus" else SR_IN)
    assert info.duration_s == pytest.approx(DUR, abs=0.06)
    assert info.decoded_duration_s is None
    expected_codec = {"wav": "pcm_s16le", "flac": "flac", "mp3": "mp3float", "opus": "opus", "m4a": "aac",
                      "ogg": "vorbis"}[ext]
    assert info.codec == expected_codec
    assert info.decoder["libavcodec"].count(".") == 2 and info.decoder["pyav"]
    blocks = audio.stream(p)
    n = sum(b.size for b in blocks)
    full = info.with_stats(blocks.stats)
    assert full.decoded_duration_s == pytest.approx(n / audio.SAMPLE_RATE)
    assert full.undecodable_packets == 0
    json.dumps(full.to_dict())  # plain data, JSON-ready


def test_isolated_and_in_process_decode_identically(encoded):
    a = audio.load_audio(encoded["mp3"], isolate=True)
    b = audio.load_audio(encoded["mp3"], isolate=False)
    np.testing.assert_array_equal(a, b)


def test_probe_in_process_matches_isolated(encoded):
    a = audio.probe(encoded["flac"], isolate=True)
    b = audio.probe(encoded["flac"], isolate=False)
    assert a == b


def test_resampling_is_band_limited(tmp_path):
    # A 15 kHz tone is above the 11.025 kHz Nyquist of 22.05 kHz: a band-limited
    # resampler removes it; naive decimation would alias it to 22050 - 15000 = 7050 Hz.
    t = np.arange(SR_IN * 2) / SR_IN
    y = 0.5 * np.sin(2 * np.pi * 15000 * t) + 0.05 * np.sin(2 * np.pi * 440 * t)
    p = tmp_path / "hf.wav"
    sf.write(p, y.astype(np.float32), SR_IN, subtype="FLOAT")
    out = audio.load_audio(p)
    spec = np.abs(np.fft.rfft(out * np.hanning(out.size)))
    freqs = np.fft.rfftfreq(out.size, 1 / audio.SAMPLE_RATE)
    alias = spec[np.abs(freqs - 7050) < 20].max()
    tone = spec[np.abs(freqs - 440) < 20].max()
    assert alias < tone * 1e-2  # the alias, if any, is 40 dB under a tone 20 dB weaker at input


def test_downmix_is_channel_mean(tmp_path):
    t = np.arange(SR_IN) / SR_IN
    left = 0.6 * np.sin(2 * np.pi * 500 * t)
    right = np.zeros_like(left)
    p = tmp_path / "lr.wav"
    sf.write(p, np.stack([left, right], axis=1).astype(np.float32), SR_IN, subtype="FLOAT")
    out = audio.load_audio(p)
    mid = out[2000:-2000]  # skip resampler edge transients
    assert np.max(np.abs(mid)) == pytest.approx(0.3, rel=0.01)


@pytest.mark.parametrize("channels, rate", [(8, 96_000), (audio.MAX_CHANNELS, audio.MAX_RATE)],
                         ids=["8ch-96k-surround", "max-channels-max-rate"])
def test_multichannel_high_rate_decodes_to_the_channel_mean(tmp_path, channels, rate):
    # Issue 23: a valid 8-channel 96 kHz WAV killed the decoder child with SIGSEGV (PyAV's
    # planar plane count overruns at 8+ channels). Every channel carries the same seeded
    # noise at its own gain, so the mono result must equal the mono file of that noise at
    # the mean gain, decoded through the same (isolated) path.
    rng = np.random.default_rng(23)
    seconds = 0.5 if channels <= 8 else 0.1  # the max case is 64 x 384 kHz: keep it small
    x = (0.3 * rng.standard_normal(int(rate * seconds))).clip(-0.9, 0.9).astype(np.float32)
    gains = np.linspace(0.1, 1.0, channels, dtype=np.float32)
    multi, mono = tmp_path / "multi.wav", tmp_path / "mono.wav"
    sf.write(multi, np.outer(x, gains), rate, subtype="FLOAT")
    sf.write(mono, x * gains.mean(), rate, subtype="FLOAT")
    s = audio.stream(multi, timeout_s=60)
    got = np.concatenate(list(s))
    assert s.facts.channels == channels and s.facts.sample_rate == rate
    assert s.stats.share_decoded == pytest.approx(1.0)
    np.testing.assert_allclose(got, audio.load_audio(mono), atol=1e-5)


def test_more_channels_than_the_limit_is_a_clear_error(tmp_path):
    p = tmp_path / "many.wav"
    sf.write(p, np.zeros((800, audio.MAX_CHANNELS + 1), np.float32) + 0.1, 8000, subtype="FLOAT")
    with pytest.raises(AbsurdHeaderError, match=f"{audio.MAX_CHANNELS + 1} channels .allowed 1..{audio.MAX_CHANNELS}"):
        audio.probe(p)


def test_same_rate_passes_through_exactly(tmp_path):
    rng = np.random.default_rng(1)
    y = (rng.standard_normal(audio.SAMPLE_RATE * 2) * 0.1).astype(np.float32)
    p = tmp_path / "n.wav"
    sf.write(p, y, audio.SAMPLE_RATE, subtype="FLOAT")
    np.testing.assert_allclose(audio.load_audio(p), y, atol=1e-6)


def test_load_audio_max_duration(encoded):
    y = audio.load_audio(encoded["flac"], max_duration_s=1.25)
    assert y.size == audio.seconds_to_samples(1.25, audio.SAMPLE_RATE)


@pytest.mark.parametrize("isolate", [True, False])
@pytest.mark.parametrize("ext", ["flac", "mp3", "opus"])
def test_one_decode_also_gives_the_native_rate_samples_a_second_decode_would(encoded, ext, isolate):
    """Issue 27: the scan's decode keeps the artifact line's first seconds at the file's own
    rate; they must be the very samples that line's own decode at that rate reads."""
    path = encoded[ext]
    rate = audio.probe(path).sample_rate
    for seconds in (1.0, 60.0):                      # cut at the limit; a shorter file whole
        limit = audio.seconds_to_samples(seconds, rate)
        with audio.stream(path, native_samples=limit, isolate=isolate, block_s=0.5) as s:
            blocks = np.concatenate(list(s))
        native, got_rate = s.native()
        want = audio.load_audio(path, sample_rate=rate, max_duration_s=seconds)
        assert got_rate == rate
        np.testing.assert_array_equal(native, want)
        assert native.size == min(limit, want.size)
        np.testing.assert_array_equal(blocks, audio.load_audio(path, isolate=isolate))
    with audio.stream(path, isolate=isolate) as s:   # not asked for: nothing kept
        list(s)
    assert s.native() is None


def test_the_resamplers_larger_frames_only_regroup_the_samples(encoded, monkeypatch):
    """RESAMPLED_FRAME regroups libswresample's output (fewer Python steps per second of
    audio); the samples, at the model's rate and at the native one, are the same."""
    from musicbrain_cli.audio import decode

    def read(path):
        limit = audio.seconds_to_samples(60.0, audio.probe(path).sample_rate)
        with audio.stream(path, isolate=False, native_samples=limit) as s:
            return np.concatenate(list(s)), s.native()[0]

    for ext in ("mp3", "opus", "m4a"):
        grouped = read(encoded[ext])
        monkeypatch.setattr(decode, "RESAMPLED_FRAME", None)      # one frame per codec frame
        per_frame = read(encoded[ext])
        monkeypatch.undo()
        for a, b in zip(grouped, per_frame):
            np.testing.assert_array_equal(a, b)


def test_conversions_round_trip():
    assert audio.seconds_to_samples(10.0, 22050) == 220500
    assert audio.samples_to_seconds(220500, 22050) == 10.0
    assert audio.seconds_to_samples(audio.samples_to_seconds(12345, 22050), 22050) == 12345
    with pytest.raises(ValueError):
        audio.seconds_to_samples(-1.0, 22050)


# --- windows ------------------------------------------------------------------------------


def _ramp(seconds: float, sr: int = 100) -> np.ndarray:
    return np.arange(int(seconds * sr), dtype=np.float32) + 1.0  # distinct, non-zero samples


@pytest.mark.parametrize(
    "seconds, starts, short",
    [
        (23.0, [0, 5, 10, 13], False),  # 3 s after the last full window >= 2.5 s: a tail window
                                        # ending at the track's end (session 38; was padded at 15)
        (21.0, [0, 5, 10], False),  # 1 s of new audio < 25 % of a window: no tail
        (20.0, [0, 5, 10], False),  # exact fit
        (3.0, [0], True),  # shorter than a window: the track repeated to fill one window
    ],
)
def test_window_rule(seconds, starts, short):
    """Every window holds the track's own audio only: no zero padding (session 38: human test
    clips cut to 6 s and zero padded were called AI, 5 of 120, repeated none)."""
    sr = 100
    y = _ramp(seconds, sr)
    wins = list(audio.iter_windows(y, sample_rate=sr, window_s=10.0, hop_s=5.0))
    assert [w.start_s for w in wins] == [float(s) for s in starts]
    assert [w.index for w in wins] == list(range(len(starts)))
    for w in wins:
        assert w.samples.shape == (1000,) and w.samples.dtype == np.float32
        a = int(w.start_s * sr)
        if w.padded:
            np.testing.assert_array_equal(w.samples, np.tile(y, 4)[:1000])
            assert w.n_valid == y.size
        else:
            np.testing.assert_array_equal(w.samples, y[a:a + 1000])
            assert w.n_valid == 1000
        assert w.samples.all()                      # no zeros anywhere
    assert [w.padded for w in wins] == ([True] if short else [False] * len(starts))


def test_windows_from_file_match_windows_from_array(encoded):
    y = audio.load_audio(encoded["flac"])
    from_array = list(audio.iter_windows(y, window_s=1.0, hop_s=0.5))
    # Small blocks that do not divide the window exercise the streaming buffer.
    from_file = list(audio.iter_windows(encoded["flac"], window_s=1.0, hop_s=0.5, block_s=0.37))
    assert len(from_file) == len(from_array) > 3
    for a, b in zip(from_array, from_file):
        assert (a.index, a.start_s, a.padded, a.n_valid) == (b.index, b.start_s, b.padded, b.n_valid)
        np.testing.assert_array_equal(a.samples, b.samples)


# --- metadata -----------------------------------------------------------------------------


def test_id3_round_trip_with_c2pa_geob(encoded, tmp_path):
    from mutagen.id3 import COMM, GEOB, ID3, PRIV, TSSE, TXXX

    p = tmp_path / "tagged.mp3"
    p.write_bytes(encoded["mp3"].read_bytes())
    manifest = b"jumb" + bytes(range(256)) * 4
    tags = ID3()
    tags.add(TXXX(encoding=3, desc="ai_generator", text=["SomeModel v3"]))
    tags.add(COMM(encoding=3, lang="eng", desc="note", text=["made for a test"]))
    tags.add(GEOB(encoding=3, mime="application/c2pa", filename="c2pa", desc="c2pa manifest store", data=manifest))
    tags.add(PRIV(owner="com.example.secret", data=b"\x00\x01\x02"))
    tags.add(TSSE(encoding=3, text=["LAME 3.100"]))
    tags.add(TXXX(encoding=3, desc="huge", text=["x" * 10000]))
    tags.save(p)

    md = audio.read_metadata(p)
    assert md["format"] == "MP3"
    assert md["tags"]["TXXX:ai_generator"] == ["SomeModel v3"]
    assert md["tags"]["COMM:note:eng"] == ["made for a test"]
    geob = md["tags"]["GEOB:c2pa manifest store"][0]
    assert geob["mime"] == "application/c2pa" and geob["size"] == len(manifest)
    assert geob["sha256"] == hashlib.sha256(manifest).hexdigest()
    assert md["tags"]["PRIV:com.example.secret"][0]["size"] == 3
    assert md["c2pa_present"] and md["c2pa_source"] == "id3:GEOB:c2pa manifest store"
    assert md["encoder"] == "LAME 3.100"
    assert "TXXX:huge" in md["truncated"] and len(md["tags"]["TXXX:huge"][0]) < 5000
    json.dumps(md)
    # probe carries the same metadata, plus FFmpeg's view of the tags.
    info = audio.probe(p)
    assert info.metadata["c2pa_present"] and "ffmpeg_tags" in info.metadata


def test_a_1mb_comment_is_cut_with_a_true_note_down_to_the_report(encoded, tmp_path):
    # Issue 23, observation 11: a 1 MB comment was stored as 4,129 characters and the
    # report said "[3829 more characters]", counting from the stored text, not the tag.
    from mutagen.id3 import COMM, ID3, TXXX

    from musicbrain_cli.audio.metadata import MAX_VALUE_CHARS, split_cut
    from musicbrain_cli.report.html import MAX_TAG_CHARS, render_report_html
    from musicbrain_cli.report.schema import example_track

    total = 1 << 20
    p = tmp_path / "comment.mp3"
    p.write_bytes(encoded["mp3"].read_bytes())
    tags = ID3()
    tags.add(COMM(encoding=3, lang="eng", desc="", text=["c" * total]))
    # an uncut value that merely ends like a note is not taken for a cut one
    tags.add(TXXX(encoding=3, desc="liar", text=["y" * 10 + "...[truncated from 99999999 chars]"]))
    tags.save(p)
    md = audio.read_metadata(p, provenance=False)
    stored = md["tags"]["COMM::eng"][0]
    assert "COMM::eng" in md["truncated"] and len(stored) < MAX_VALUE_CHARS + 64
    assert split_cut(stored) == ("c" * MAX_VALUE_CHARS, total)
    liar = md["tags"]["TXXX:liar"][0]
    assert split_cut(liar) == (liar, len(liar))

    track = example_track(n_windows=3)
    track["metadata"]["tags"] = md["tags"]
    html = render_report_html(track, {})
    assert f"[{total - MAX_TAG_CHARS} more characters]" in html     # 1,048,276
    assert f"[{len(stored) - MAX_TAG_CHARS} more characters]" not in html
    assert "99999999" in html and "more characters]" not in html.split("99999999")[1][:40]


def test_more_values_than_kept_are_counted_as_the_file_holds_them(encoded, tmp_path):
    # Issue 23 (truncation notes state the real amount cut): 100 values of one frame are
    # stored as 64; the report's note must count the 100, not the 64 that were kept.
    from mutagen.id3 import ID3, TXXX

    from musicbrain_cli.audio.metadata import MAX_VALUES_PER_TAG
    from musicbrain_cli.report.html import MAX_TAG_VALUES, render_report_html
    from musicbrain_cli.report.schema import example_track

    p = tmp_path / "many.mp3"
    p.write_bytes(encoded["mp3"].read_bytes())
    tags = ID3()
    tags.add(TXXX(encoding=3, desc="many", text=[f"v{i}" for i in range(100)]))
    tags.save(p)
    md = audio.read_metadata(p, provenance=False)
    assert len(md["tags"]["TXXX:many"]) == MAX_VALUES_PER_TAG
    assert md["dropped"] == {"keys": 0, "values": {"TXXX:many": 100 - MAX_VALUES_PER_TAG}}
    track = example_track(n_windows=3)
    track["metadata"]["tags"], track["metadata"]["dropped"] = md["tags"], md["dropped"]
    html = render_report_html(track, {})
    assert f"[{100 - MAX_TAG_VALUES} more values]" in html
    assert f"[{MAX_VALUES_PER_TAG - MAX_TAG_VALUES} more values]" not in html


def test_compressed_tag_frames_cannot_blow_the_kept_tag_text_up(encoded, tmp_path):
    """Review (session 45): the per-item limits allow 512 keys x 64 values x 4,096 characters,
    which zlib-compressed ID3v2.4 frames reach from 230 kB of tag (a 421 kB MP3 gave a 136 MB
    result.json). The text kept per file is bounded, and what is left out is counted."""
    import zlib

    from musicbrain_cli.audio.metadata import MAX_TAG_TEXT_CHARS

    def syncsafe(n):
        return bytes([(n >> 21) & 0x7F, (n >> 14) & 0x7F, (n >> 7) & 0x7F, n & 0x7F])

    keys, values, chars = 64, 64, 4000
    frames = b""
    for k in range(keys):
        body = b"\x00" + f"k{k}".encode() + b"\x00" + b"\x00".join([b"A" * chars] * values)
        data = syncsafe(len(body)) + zlib.compress(body, 9)
        frames += b"TXXX" + syncsafe(len(data)) + b"\x00\x09" + data
    p = tmp_path / "bomb.mp3"
    p.write_bytes(b"ID3\x04\x00\x00" + syncsafe(len(frames)) + frames + encoded["mp3"].read_bytes())
    assert p.stat().st_size < 200_000 and keys * values * chars > 10 * MAX_TAG_TEXT_CHARS
    md = audio.read_metadata(p, provenance=False)
    kept = md["tags"]
    text = sum(len(k) + sum(len(v) for v in vs) for k, vs in kept.items())
    assert MAX_TAG_TEXT_CHARS - chars < text <= MAX_TAG_TEXT_CHARS
    held = sum(len(vs) for vs in kept.values()) + sum(md["dropped"]["values"].values()) \
        + md["dropped"]["keys"] * values
    assert held == keys * values                      # every value is kept or counted
    assert f"tag text beyond {MAX_TAG_TEXT_CHARS} characters in all" in md["truncated"]


def test_keys_beyond_the_limit_are_counted_once_each(encoded, tmp_path):
    """Keys past MAX_TAGS were counted once per value, so a report said "[16 more tags]" for 8
    keys of two values each (found with the review of session 45)."""
    from mutagen.id3 import ID3, TXXX

    from musicbrain_cli.audio.metadata import MAX_TAGS

    p = tmp_path / "keys.mp3"
    p.write_bytes(encoded["mp3"].read_bytes())
    tags = ID3()
    for i in range(MAX_TAGS + 8):
        tags.add(TXXX(encoding=3, desc=f"k{i:04d}", text=["a", "b"]))
    tags.save(p)
    md = audio.read_metadata(p, provenance=False)
    assert len(md["tags"]) == MAX_TAGS
    assert md["dropped"]["keys"] == 8 and "8 more keys" in md["truncated"]


def test_a_c2pa_store_in_an_id3_tag_ahead_of_a_flac_is_found(encoded, tmp_path):
    """Review (session 45): c2pa-rs stores a FLAC's manifest in a GEOB frame of an ID3v2 tag
    ahead of the FLAC stream; mutagen reads the FLAC's own tags, so the metadata said no C2PA
    while the provenance line validated the manifest (section 6 "absent", section 1 "a valid
    C2PA manifest ... declares AI generation")."""
    import mutagen
    from mutagen.id3 import GEOB, ID3

    p = tmp_path / "signed.flac"
    p.write_bytes(encoded["flac"].read_bytes())
    tags = ID3()
    tags.add(GEOB(encoding=3, mime="application/c2pa", filename="c2pa", desc="c2pa manifest store",
                  data=b"jumb" + bytes(64)))
    tags.save(p)
    assert type(mutagen.File(p)).__name__ == "FLAC"       # still read as a FLAC
    md = audio.read_metadata(p, provenance=False)
    assert md["c2pa_present"] is True and md["c2pa_source"].startswith("id3:GEOB")
    assert audio.read_metadata(encoded["flac"], provenance=False)["c2pa_present"] is False


def test_untagged_file_has_no_c2pa(encoded):
    md = audio.read_metadata(encoded["wav"])
    assert md["c2pa_present"] is False and md["c2pa_source"] is None


def test_mp4_atoms_round_trip(encoded, tmp_path):
    from mutagen.mp4 import MP4, AtomDataType, MP4FreeForm

    p = tmp_path / "tagged.m4a"
    p.write_bytes(encoded["m4a"].read_bytes())
    f = MP4(p)
    f["\xa9nam"] = ["Test Title"]
    f["\xa9too"] = ["Suno v4"]
    f["----:com.apple.iTunes:GENERATOR"] = [MP4FreeForm(b"udio-1.5", dataformat=AtomDataType.UTF8)]
    f["----:com.apple.iTunes:BLOB"] = [MP4FreeForm(b"\x00\xff" * 50, dataformat=AtomDataType.IMPLICIT)]
    f["trkn"] = [(3, 12)]
    f.save()
    md = audio.read_metadata(p)
    assert md["format"] == "MP4"
    assert md["tags"]["\xa9nam"] == ["Test Title"]
    assert md["encoder"] == "Suno v4"
    assert md["tags"]["----:com.apple.iTunes:GENERATOR"] == ["udio-1.5"]
    assert md["tags"]["----:com.apple.iTunes:BLOB"][0]["size"] == 100
    assert md["tags"]["trkn"] == ["(3, 12)"]


def test_mp4_c2pa_uuid_box_is_found(encoded, tmp_path):
    import struct

    from musicbrain_cli.audio.metadata import C2PA_BMFF_UUID

    p = tmp_path / "c2pa.m4a"
    payload = b"\x00" * 8 + b"jumbfake"
    box = struct.pack(">I4s", 8 + 16 + len(payload), b"uuid") + C2PA_BMFF_UUID + payload
    p.write_bytes(encoded["m4a"].read_bytes() + box)  # a top-level box appended at the end
    md = audio.read_metadata(p)
    assert md["c2pa_present"] and md["c2pa_source"] == "bmff:uuid"


@pytest.mark.parametrize("ext", ["ogg", "flac", "opus"])
def test_vorbis_comments_round_trip(encoded, tmp_path, ext):
    import mutagen

    p = tmp_path / f"tagged.{ext}"
    p.write_bytes(encoded[ext].read_bytes())
    f = mutagen.File(p)
    f["TITLE"] = ["Étude"]
    f["COMMENT"] = ["one", "two"]
    f["ENCODER"] = ["musicbrain-test"]
    f.save()
    md = audio.read_metadata(p)
    tags = {k.upper(): v for k, v in md["tags"].items()}
    assert tags["TITLE"] == ["Étude"] and tags["COMMENT"] == ["one", "two"]
    assert md["encoder"] == "musicbrain-test"


# --- memory -------------------------------------------------------------------------------


@pytest.mark.parametrize("isolate", [True, False])
def test_streaming_memory_is_bounded_by_the_block(tmp_path, isolate):
    # 8 minutes of 22.05 kHz audio: 42 MB as float32 if it were held whole.
    seconds = 480
    rng = np.random.default_rng(2)
    p = tmp_path / "long.wav"
    with sf.SoundFile(p, "w", samplerate=audio.SAMPLE_RATE, channels=1, subtype="PCM_16") as f:
        for _ in range(seconds // 60):
            f.write((0.1 * rng.standard_normal(audio.SAMPLE_RATE * 60)).astype(np.float32))
    whole = seconds * audio.SAMPLE_RATE * 4
    tracemalloc.start()
    try:
        blocks = audio.stream(p, block_s=5.0, isolate=isolate)
        n = 0
        for b in blocks:
            n += b.size
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert n == seconds * audio.SAMPLE_RATE
    block_bytes = 5 * audio.SAMPLE_RATE * 4
    assert peak < 6 * block_bytes < whole / 10, f"peak {peak / 1e6:.1f} MB"


def test_the_stereo_downmix_is_bit_for_bit_the_channel_mean():
    """The decode's stereo fast path (sum halved) must give exactly what the documented
    downmix, numpy's float32 mean of the channels, gives: subnormals and overflow included."""
    from musicbrain_cli.audio.decode import _channel_mean

    rng = np.random.default_rng(7)
    for scale in (1.0, 1e-40, 3e38):
        with np.errstate(over="ignore", invalid="ignore"):
            frames = (rng.standard_normal((10_001, 2)) * scale).astype(np.float32)
            frames[::97] = [np.float32(1.4e-45), np.float32(-1.4e-45)]
            frames[1::97] = [np.float32(-0.0), np.float32(-0.0)]
            frames[2::97] = [np.float32(np.nan), np.float32(-np.inf)]
            want = frames.mean(axis=1, dtype=np.float32)
            got = _channel_mean(frames)
        assert got.dtype == np.float32
        assert np.array_equal(got.view(np.uint32), want.view(np.uint32))
    six = rng.standard_normal((1000, 6)).astype(np.float32)
    assert np.array_equal(_channel_mean(six), six.mean(axis=1, dtype=np.float32))


def test_tags_that_crash_the_tag_reader_are_a_stated_fact_not_a_dead_scan(encoded, tmp_path):
    """Audit (session 26): an M4A ending in 3,000 nested `moov` boxes (mutagen's
    RecursionError), or an Ogg comment length past its packet (IndexError), killed the whole
    scan with a traceback: only MutagenError was caught. The reader's failure is now a
    recorded fact, the audio is still analysed, and the report says the tags are unknown."""
    import struct

    from musicbrain_cli.report.html import render_report_html
    from musicbrain_cli.report.schema import example_track
    from musicbrain_cli.scan.batch import _metadata

    box = b""
    for _ in range(3000):
        box = struct.pack(">I", 8 + len(box)) + b"moov" + box
    p = tmp_path / "nested.m4a"
    p.write_bytes(encoded["m4a"].read_bytes() + box)
    md = audio.read_metadata(p, provenance=False)
    assert md["error"] and "RecursionError" in md["error"], md["error"]
    kept = _metadata(md)
    assert kept["error"] == md["error"]
    assert "error" not in _metadata(audio.read_metadata(encoded["wav"], provenance=False))
    track = example_track(n_windows=2)
    track["metadata"] = kept
    html = render_report_html(track, {})
    assert "The tags could not be read: RecursionError" in html


def test_binary_apev2_and_asf_values_are_summarised_not_kept_as_their_repr(tmp_path):
    """An APEv2 binary item (the cover art of a WavPack, Monkey's Audio or Musepack file)
    was kept as 4,096 characters of `APEBinaryValue(b'...')` and listed as a cut value, and
    an ASF byte array as `[binary data (N bytes)]`: neither with the size and SHA-256 every
    other format's binary payload is summarised by (the module's promise: never embedded)."""
    from mutagen.apev2 import BINARY, APEValue
    from mutagen.asf import ASFByteArrayAttribute
    from mutagen.wavpack import WavPack

    from musicbrain_cli.audio.encode import Format

    p = tmp_path / "cover.wv"
    encode_audio(p, _mixture(dur=0.5)[0], SR_IN, spec=Format("wv", "wavpack"))
    picture = b"front.jpg\x00\xff\xd8\xff" + bytes(range(256)) * 40
    f = WavPack(p)
    if f.tags is None:
        f.add_tags()
    f.tags["Cover Art (Front)"] = APEValue(picture, BINARY)
    f.tags["Title"] = "x"
    f.save()
    md = audio.read_metadata(p, provenance=False)
    assert md["format"] == "WavPack"
    assert md["tags"]["Cover Art (Front)"] == [{
        "mime": None, "description": "Cover Art (Front)", "size": len(picture),
        "sha256": hashlib.sha256(picture).hexdigest()}]
    assert md["tags"]["Title"] == ["x"] and md["truncated"] == []
    from musicbrain_cli.audio.metadata import _other_value

    wm = bytes(range(256)) * 8
    assert _other_value("WM/Picture", ASFByteArrayAttribute(wm))["sha256"] == \
        hashlib.sha256(wm).hexdigest()


@pytest.mark.parametrize("name, spec", [("x.wv", ("wv", "wavpack")),
                                        ("x.wma", ("asf", "wmav2"))])
def test_the_encoder_string_of_apev2_and_asf_tags_is_the_encoder(tmp_path, name, spec):
    """FFmpeg writes its name into the APEv2 tag of every WavPack (`encoder`) and into an
    ASF file's `WM/EncodingSettings`; the tag table showed it while the report's "Encoder"
    line said "none recorded" (only ID3, Vorbis and MP4 encoder keys were read)."""
    from musicbrain_cli.audio.encode import Format

    p = tmp_path / name
    encode_audio(p, _mixture(dur=0.5)[0], SR_IN, spec=Format(*spec, bit_rate=64_000))
    md = audio.read_metadata(p, provenance=False)
    [(key, [value])] = md["tags"].items()
    assert key.lower() in ("encoder", "wm/encodingsettings") and value.startswith("Lavf")
    assert md["encoder"] == value
