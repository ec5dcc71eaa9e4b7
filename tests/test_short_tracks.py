"""Tracks shorter than a window (session 38): zero padding made the content model read the
silence after a short human excerpt as AI. The first 5 s of the human Bach example were
called `ai` (P(AI) 0.72) by 0.3.4; 120 human test clips of the reference corpus cut to 6 s
had 5 called AI. Now a short track's window repeats it, and the content model does not decide
on one shorter than three quarters of a window."""

from __future__ import annotations

import numpy as np
import pytest

from musicbrain_cli.audio.encode import encode_audio
from musicbrain_cli.audio.intake import load_audio
from musicbrain_cli.scan.batch import ScanOptions, analyse_track
from musicbrain_cli.verdict import INCONCLUSIVE, TOO_SHORT

SR = 22050


@pytest.fixture(scope="module")
def default_detector():
    from musicbrain_cli.model.inference import Detector

    return Detector.from_pretrained("default")


@pytest.fixture(scope="module")
def bach():
    return load_audio("examples/catalog/01-human-bach.flac", sample_rate=SR)


def _scan(tmp_path, name, y, det):
    path = tmp_path / f"{name}.flac"
    encode_audio(path, y, SR)
    return analyse_track(path, det, options=ScanOptions(explain_windows=1)).track


def test_a_short_human_excerpt_is_not_accused(tmp_path, default_detector, bach):
    track = _scan(tmp_path, "bach-5s", bach[: 5 * SR], default_detector)
    content = [e for e in track["evidence"] if e["line"] == "content"][0]
    assert track["verdict"]["label"] == INCONCLUSIVE
    assert content["finding"] == INCONCLUSIVE and content["reasons"] == [TOO_SHORT]
    # the probability is the music's, repeated, not the padding's (0.72 before)
    assert content["p_ai"] < 0.05
    assert track["timeline"]["padded"] == [True]
    assert any("repeated to fill it" in n for n in track["limitations"])


def test_a_track_of_three_quarters_of_a_window_is_judged(tmp_path, default_detector, bach):
    track = _scan(tmp_path, "bach-8s", bach[: 8 * SR], default_detector)
    content = [e for e in track["evidence"] if e["line"] == "content"][0]
    assert content["finding"] == "human" and content["reasons"] != [TOO_SHORT]
    assert content["p_ai"] < 0.05


def test_the_short_window_repeats_the_track(default_detector, bach):
    from musicbrain_cli.audio.intake import QUIET_PEAK

    y = bach[: 3 * SR]
    first, last = np.flatnonzero(np.abs(y) >= QUIET_PEAK)[[0, -1]]
    pred = default_detector.predict_track(y)
    again = default_detector.predict_windows(np.resize(y[first:last + 1], 10 * SR)[None])
    np.testing.assert_allclose(pred.window_probs, again, atol=1e-6)
    assert pred.n_valid.tolist() == [last - first + 1] and last - first + 1 > 2.9 * SR


def test_evaluate_explains_the_window_the_model_stage_judged(tmp_path, monkeypatch):
    """evaluate explained a short clip's window zero padded while the model stage scored it
    repeated: the explanation was of an input no verdict was taken on."""
    from musicbrain_cli.audio.intake import iter_windows
    from musicbrain_cli.data.dataset import ClipRecord, Dataset, DatasetWriter
    from musicbrain_cli.evaluate import split as S
    from musicbrain_cli.features import FrontEndConfig
    from musicbrain_cli.model.checkpoint import default_card
    from musicbrain_cli.model.config import ModelConfig
    from musicbrain_cli.model.inference import Detector
    from musicbrain_cli.model.net import build_model
    from musicbrain_cli.taxonomy import Taxonomy
    import torch

    import pretty_midi

    taxonomy = Taxonomy.from_groups([("source", ["human", "ai"], True)])
    t = np.arange(int(SR * 1.5)) / SR
    with DatasetWriter(tmp_path / "data", taxonomy, sample_rate=SR, name="short") as w:
        for i, source in enumerate(("human", "ai")):
            y = (0.3 * np.sin(2 * np.pi * (220 + 110 * i) * t)).astype(np.float32)
            score = None
            if i == 1:      # 0.5 s of silence first, and a score of the note after it
                y = np.concatenate([np.zeros(SR // 2, np.float32), y])
                score = pretty_midi.PrettyMIDI()
                inst = pretty_midi.Instrument(program=0)
                inst.notes.append(pretty_midi.Note(velocity=80, pitch=57, start=0.5, end=2.0))
                score.instruments.append(inst)
            w.add(ClipRecord(f"clip{i}", source=source, work_id=f"w{i}", split="test",
                             score=score), y)
    fe = FrontEndConfig(n_bins=64, window_s=2.56, hop_s=1.28)
    config = ModelConfig(front_end=fe, taxonomy=taxonomy)
    torch.manual_seed(0)
    detector = Detector(build_model(config), config, default_card(), device="cpu")
    seen, calls = [], []

    def capture(det, wave, notes, **k):
        seen.append(wave.copy())
        calls.append((notes, k["audio_s"]))

    monkeypatch.setattr(S, "_explain_window", capture)
    S.evaluate(Dataset.load(tmp_path / "data"), detector, tmp_path / "eval", explain_windows=2,
               n_figures=0, fidelity_steps=4, n_random=1, occlusion=False, event_clips=0)
    assert len(seen) == 2
    dataset = Dataset.load(tmp_path / "data")
    for row, wave in zip(sorted(dataset.split("test"), key=lambda r: r["clip_id"]), seen):
        y = load_audio(dataset.audio_path(row), sample_rate=SR)
        assert wave.size == fe.n_samples and wave[-SR // 2:].any()      # no zeros at the end
        (first,) = iter_windows(y, sample_rate=SR, window_s=fe.window_s, hop_s=fe.hop_s)
        np.testing.assert_array_equal(wave, first.samples)
    # the heard span and the score's notes follow the window (which starts at the sound), not
    # the clip: the onsets' chance ran to 2.0 s and the note sat 0.5 s late
    notes, audio_s = calls[1]
    assert audio_s == pytest.approx(1.5, abs=0.01)
    assert len(notes) == 1 and notes[0].start == pytest.approx(0.0, abs=0.01)
    assert notes[0].end == pytest.approx(1.5, abs=0.01)


def test_silence_around_a_short_excerpt_is_not_counted_as_music(tmp_path, default_detector, bach):
    """Review: 5.2 s of the human Bach example and 2.4 s of digital silence (7.6 s) passed the
    7.5-s floor, and the repeat put the silence inside the window: called ai (P(AI) 0.875)."""
    for name, y in (("after", np.concatenate([bach[: int(5.2 * SR)], np.zeros(int(2.4 * SR), np.float32)])),
                    ("around", np.concatenate([np.zeros(2 * SR, np.float32), bach[3 * SR: 7 * SR],
                                               np.zeros(2 * SR, np.float32)]))):
        track = _scan(tmp_path, name, y, default_detector)
        content = [e for e in track["evidence"] if e["line"] == "content"][0]
        assert track["verdict"]["label"] == INCONCLUSIVE, name
        assert content["reasons"] == [TOO_SHORT], name
        assert content["p_ai"] < 0.05, name


def test_a_short_window_repeats_only_the_sound_and_starts_where_it_does():
    from musicbrain_cli.audio.intake import QUIET_PEAK, iter_windows

    t = np.arange(3 * SR) / SR
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    y = np.concatenate([np.zeros(SR, np.float32), tone, np.full(SR, 1e-5, np.float32)])
    (w,) = iter_windows(y, sample_rate=SR, window_s=10.0, hop_s=5.0)
    first, last = np.flatnonzero(np.abs(tone) >= QUIET_PEAK)[[0, -1]]
    assert w.padded and w.start_s == pytest.approx((SR + first) / SR)
    assert w.n_valid == last - first + 1
    np.testing.assert_array_equal(w.samples, np.resize(tone[first:last + 1], 10 * SR))


def test_a_dc_offset_does_not_make_silence_sound():
    """Review: a converter's DC offset of 0.002 made 20 s of digital silence count as sound,
    and the silence rules never fired."""
    from musicbrain_cli.audio.intake import quiet_window

    assert quiet_window(np.full(10 * SR, 0.002, np.float32))
    t = np.arange(10 * SR) / SR
    music = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    music[-3 * SR:] = 0.0
    assert quiet_window(music + np.float32(0.002))            # 3 s of silence at the end
    music[-3 * SR:] = music[: 3 * SR]
    assert not quiet_window(music + np.float32(0.002))       # sound throughout
