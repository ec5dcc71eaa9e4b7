"""A container with several audio streams: only the first is analysed, so the file's other
audio was heard by no evidence line. That is stated, and a ``human`` verdict, which would
speak for audio never analysed, becomes ``inconclusive``."""

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import SR, make_tone
from musicbrain_cli.audio import intake as audio
from musicbrain_cli.cli import main
from musicbrain_cli.scan.batch import unheard_audio_verdict
from musicbrain_cli.verdict import AI, HUMAN, INCONCLUSIVE, CombinedVerdict


def two_stream_file(path: Path, first: np.ndarray, second: np.ndarray) -> Path:
    import av

    block = 4096
    with av.open(str(path), "w", format="matroska") as out:
        streams = [out.add_stream("pcm_s16le", rate=SR, layout="mono") for _ in range(2)]
        for start in range(0, len(first), block):      # interleaved, as a muxer expects
            for s, y in zip(streams, (first, second)):
                pcm = (np.clip(y[start:start + block], -1, 1) * 32767).astype(np.int16)
                frame = av.AudioFrame.from_ndarray(pcm[None, :], format="s16", layout="mono")
                frame.sample_rate, frame.pts = SR, start
                for packet in s.encode(frame):
                    out.mux(packet)
        for s in streams:
            for packet in s.encode(None):
                out.mux(packet)
    return path


def test_probe_counts_the_audio_streams_and_names_the_one_analysed(tmp_path):
    p = two_stream_file(tmp_path / "two.mka", make_tone(3.0, 220.0), make_tone(3.0, 440.0, 1))
    info = audio.probe(p)
    assert (info.audio_streams, info.stream_index) == (2, 0)
    one = tmp_path / "one.flac"
    from musicbrain_cli.audio.encode import encode_audio
    encode_audio(one, make_tone(3.0), SR)
    assert audio.probe(one).audio_streams == 1


class _Info:
    def __init__(self, n, mono_share=None):
        self.facts = {"audio_streams": n, "stream_index": 0, "mono_share": mono_share,
                      "channels": 2}

    def to_dict(self):
        return dict(self.facts)


@pytest.mark.parametrize("label", [HUMAN, AI, INCONCLUSIVE])
def test_only_a_human_verdict_needs_every_stream_heard(label):
    combined = CombinedVerdict(label, ["because"], [], ["content"])
    assert unheard_audio_verdict(combined, _Info(1)) is combined
    after = unheard_audio_verdict(combined, _Info(3))
    if label == HUMAN:
        assert after.label == INCONCLUSIVE and "holds 3 audio streams" in after.reasons[0]
        assert "other 2 were heard by no evidence line" in after.reasons[0]
        assert unheard_audio_verdict(combined, _Info(1, mono_share=0.2)).label == INCONCLUSIVE
        assert unheard_audio_verdict(combined, _Info(1, mono_share=0.38)) is combined
        assert unheard_audio_verdict(combined, _Info(1, mono_share=0.6)) is combined
        surround = _Info(1, mono_share=0.17)              # six unrelated channels: 1/6
        surround.facts["channels"] = 6
        assert unheard_audio_verdict(combined, surround) is combined
    else:
        assert after is combined


@pytest.fixture
def every_line_says_human(monkeypatch):
    """The lines' combination made to say `human`, so that a scan's verdict can only leave
    `human` through the rule under test (the tiny model alone is inconclusive on tones)."""
    import musicbrain_cli.verdict as verdict

    monkeypatch.setattr(verdict, "combine", lambda findings: CombinedVerdict(
        HUMAN, ["No evidence of AI generation was found by these methods."], [],
        [f.line for f in findings]))


def _scanned(path, out, model) -> tuple[dict, Path]:
    """``path`` scanned into ``out`` with ``model`` (HTML, unsigned): its result and folder."""
    res = CliRunner().invoke(main, ["scan", str(path), "-o", str(out), "--model", str(model),
                                    "--unsigned", "--report", "html", "--quiet"],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    (result,) = out.glob("*/result.json")
    return json.loads(result.read_text(encoding="utf-8")), result.parent


def test_a_scan_states_the_unheard_streams_and_never_says_human(tmp_path, tiny_model_dir,
                                                                every_line_says_human):
    p = two_stream_file(tmp_path / "two.mka", make_tone(6.0, 220.0), make_tone(6.0, 330.0, 1))
    track, folder = _scanned(p, tmp_path / "out", tiny_model_dir)
    assert track["input"]["audio_streams"] == 2 and track["input"]["stream_index"] == 0
    assert any("holds 2 audio streams" in n for n in track["limitations"])
    assert track["verdict"]["label"] == INCONCLUSIVE
    assert "holds 2 audio streams" in track["verdict"]["reasons"][0]
    assert "holds 2 audio streams" in (folder / "report.html").read_text(encoding="utf-8")


def test_music_in_the_side_signal_keeps_a_scan_from_saying_human(tmp_path, tiny_model_dir,
                                                                 every_line_says_human):
    """A quiet piece in the mid and a louder one only in the side (left - right): the mono
    mix hears only the quiet one, so no verdict may speak for the recording as human."""
    from musicbrain_cli.audio.encode import encode_audio

    mid, side = 0.3 * make_tone(6.0, 220.0), make_tone(6.0, 330.0, 1)
    p = tmp_path / "side.flac"
    encode_audio(p, np.stack([mid + side, mid - side]), SR)
    track, _ = _scanned(p, tmp_path / "out", tiny_model_dir)
    assert track["input"]["mono_share"] < 0.2
    assert any("keeps only" in n and "side signal" in n for n in track["limitations"])
    assert track["verdict"]["label"] == INCONCLUSIVE
    assert "keeps only" in track["verdict"]["reasons"][0]
    # the same mid signal in plain stereo: human stands
    plain = tmp_path / "plain.flac"
    encode_audio(plain, np.stack([mid, mid]), SR)
    assert _scanned(plain, tmp_path / "out2", tiny_model_dir)[0]["verdict"]["label"] == HUMAN


def test_out_of_domain_maps_name_no_style_label():
    """Review (session 27): the note said style labels were left out of the maps while the
    figures still named them in their legends."""
    from musicbrain_cli.scan.batch import _figure_labels

    names = ["source/ai", "period/Baroque", "composer/Bach, Johann Sebastian"]
    detection = "AI-or-human output: AI"
    assert _figure_labels(names, False) == [detection, "Period: Baroque",
                                            "Composer: Bach, Johann Sebastian"]
    assert _figure_labels(names, True) == [detection, "style label 1 (name withheld)",
                                           "style label 2 (name withheld)"]


# --- stereo: what the mono mix does not hear ------------------------------------------------

def _decode(path):
    s = audio.stream(path)
    for _ in s:
        pass
    return s.stats


def test_mono_share_measures_what_the_mix_keeps_of_the_channels(tmp_path):
    from musicbrain_cli.audio.encode import encode_audio

    tone = make_tone(3.0, 220.0)
    rng = np.random.default_rng(0)
    cases = {"same": (np.stack([tone, tone]), 1.0),
             "uncorrelated": (0.1 * rng.standard_normal((2, tone.size)), 0.5)}
    for name, (y, share) in cases.items():
        p = tmp_path / f"{name}.flac"
        encode_audio(p, y, SR)
        assert _decode(p).mono_share == pytest.approx(share, abs=0.02), name
    encode_audio(tmp_path / "mono.flac", tone, SR)
    assert _decode(tmp_path / "mono.flac").mono_share is None


def test_channels_that_cancel_are_refused_for_what_they_are(tmp_path):
    """Left = -right was refused as 'digital silence': the channels were loud, the mono
    mix the lines analyse was what was silent."""
    from musicbrain_cli.audio.decode import SilentAudioError
    from musicbrain_cli.audio.encode import encode_audio

    tone = make_tone(3.0, 220.0)
    p = tmp_path / "antiphase.wav"
    encode_audio(p, np.stack([tone, -tone]), SR)
    with pytest.raises(SilentAudioError, match="channels cancel out") as e:
        _decode(p)
    assert "one is the other inverted" in str(e.value) and "pan=mono" in str(e.value)
    silent = tmp_path / "silent.wav"                 # true silence keeps its own reason
    encode_audio(silent, np.zeros((2, SR), np.float32), SR)
    with pytest.raises(SilentAudioError, match="digital silence") as e:
        _decode(silent)
    assert "channels cancel" not in str(e.value)
