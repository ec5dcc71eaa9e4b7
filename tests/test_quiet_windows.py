"""Near-silent windows are not judged (session 37): peak normalisation made 16-bit dither
of one LSB read as AI (P(AI) 0.90-0.97 per window on the shipped model) and digital silence
as human (0.02), so a silent stretch moved a track's verdict by its length alone."""

from __future__ import annotations

import numpy as np
import pytest

from musicbrain_cli.audio.encode import encode_audio
from musicbrain_cli.audio.intake import load_audio
from musicbrain_cli.audio.intake import EDGE_SILENCE_SHARE, QUIET_PEAK, Window, quiet_window
from musicbrain_cli.model.inference import aggregate_windows
from musicbrain_cli.scan.batch import ScanOptions, analyse_track
from musicbrain_cli.verdict import INCONCLUSIVE, NEAR_SILENT

SR = 22050


def _dither(seconds: float, sr: int = SR, seed: int = 0) -> np.ndarray:
    """Triangular dither of one 16-bit LSB: what a silent stretch of a CD holds."""
    rng = np.random.default_rng(seed)
    return (rng.integers(-1, 2, size=int(seconds * sr)) / 32768.0).astype(np.float32)


def test_a_window_is_quiet_below_minus_60_dbfs_of_its_real_samples():
    t = np.arange(SR) / SR
    assert QUIET_PEAK == pytest.approx(1e-3)
    assert not quiet_window((10 ** (-59 / 20) * np.sin(2 * np.pi * 440 * t)).astype(np.float32))
    assert quiet_window((10 ** (-61 / 20) * np.sin(2 * np.pi * 440 * t)).astype(np.float32))
    assert quiet_window(_dither(1.0)) and quiet_window(np.zeros(SR, np.float32))
    # a padded window: only its real part counts, and zeros after music are not "quiet"
    music_then_pad = np.concatenate([0.5 * np.sin(2 * np.pi * 440 * t), np.zeros(3 * SR)])
    assert not quiet_window(music_then_pad.astype(np.float32), n_valid=SR)
    assert quiet_window(np.concatenate([_dither(1.0), np.ones(SR, np.float32)]), n_valid=SR)


def test_a_window_where_the_music_begins_or_ends_in_silence_is_not_judged():
    """A quarter of the window silent at its start or end (session 38): the window in which
    the music ends scored up to 0.18 where the music alone scored 0.001."""
    assert EDGE_SILENCE_SHARE == 0.25
    t = np.arange(10 * SR) / SR
    music = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    for silent_s, expected in ((2.4, False), (2.6, True)):
        n = int(silent_s * SR)
        ends = music.copy()
        ends[-n:] = _dither(silent_s)[:n]
        begins = music.copy()
        begins[:n] = 0.0
        assert quiet_window(ends) is expected and quiet_window(begins) is expected
        # a gap inside the window, however long, is not an edge
        inside = music.copy()
        inside[SR:SR + n] = 0.0
        assert not quiet_window(inside)
    # the zero padding of a short track is not silence heard: only the real samples count
    short = np.zeros(10 * SR, np.float32)
    short[:6 * SR] = music[:6 * SR]
    assert not quiet_window(short, n_valid=6 * SR)
    # ... but silence before the padding is
    assert quiet_window(short, n_valid=9 * SR)
    # read once per window and kept
    w = Window(0, 0.0, short, True, 9 * SR)
    assert w.quiet is True and "quiet" in vars(w)


def test_silence_before_or_after_the_music_no_longer_moves_its_probability(tmp_path):
    """Before (0.3.4): the 12-s Bach example alone scored P(AI) 0.0002, with 3 s of digital
    silence after it 0.033, with 5 s of dither before it 0.122 and with 30 s after it 0.152,
    all from the windows where the music begins or ends; now (0.3.6) the silence is not read
    at all: the windows lie over the music, and every figure is the example's own."""
    from musicbrain_cli.model.inference import Detector

    det = Detector.from_pretrained("default")
    music = load_audio("examples/catalog/01-human-bach.flac", sample_rate=SR)
    alone = det.predict_track(music)
    assert alone.judged.tolist() == [True]
    for name, y in (("after", np.concatenate([music, np.zeros(3 * SR, np.float32)])),
                    ("before", np.concatenate([_dither(5.0), music])),
                    ("long after", np.concatenate([music, _dither(30.0)]))):
        pred = det.predict_track(y)
        assert pred.judged.all(), name
        assert pred.probability() == pytest.approx(alone.probability(), abs=1e-5), name


def test_the_aggregates_leave_quiet_windows_out():
    probs = np.array([[0.1], [0.2], [0.95], [0.97]])
    n_valid = np.array([10, 10, 10, 10])
    quiet = np.array([False, False, True, True])
    agg = aggregate_windows(probs, n_valid, ["source/ai"], {"source/ai": 0.5}, quiet=quiet)["source/ai"]
    assert agg["mean"] == pytest.approx(0.15) and agg["max"] == pytest.approx(0.2)
    assert agg["share_over_threshold"] == 0.0
    # every window quiet: the aggregate is still defined (over all), the verdict says why not
    every = aggregate_windows(probs, n_valid, ["source/ai"], {"source/ai": 0.5}, quiet=np.ones(4, bool))
    assert every["source/ai"]["mean"] == pytest.approx(np.mean(probs))


def test_a_silent_tail_no_longer_moves_a_human_recording(tmp_path):
    """What fills a silent stretch (dither or digital zeros) and how long it lasts no longer
    decide: before, the Bach example with 60 s of dither after it scored 0.60 and fell out of
    the domain (inconclusive), with 60 s of zeros 0.04 (also out of domain)."""
    from musicbrain_cli.model.inference import Detector

    det = Detector.from_pretrained("default")
    music = load_audio("examples/catalog/01-human-bach.flac", sample_rate=SR)
    tracks = {}
    for name, tail in (("dither20", _dither(20.0)), ("dither60", _dither(60.0, seed=1)),
                       ("zeros60", np.zeros(60 * SR, np.float32))):
        path = tmp_path / f"bach-{name}.flac"
        encode_audio(path, np.concatenate([music, tail]), SR)
        tracks[name] = analyse_track(path, det, options=ScanOptions(explain_windows=2)).track
    p = {name: t["verdict"]["p_ai"] for name, t in tracks.items()}
    assert {t["verdict"]["label"] for t in tracks.values()} == {"human"}, p
    assert max(p.values()) - min(p.values()) < 0.01, p
    assert all(t["ood"]["in_domain"] is True for t in tracks.values())
    b = tracks["dither60"]
    # the music's own window only: since 0.3.6 the silence after it is not read at all
    assert b["timeline"]["quiet"] == [False] and b["timeline"]["window_start_s"] == [0.0]
    assert len(b["timeline"]["sound_s"]) == 1 and b["timeline"]["sound_s"][0][1] == pytest.approx(12.0, abs=0.01)
    assert any("60.0 s of silence" in n and "not read" in n for n in b["limitations"])
    # the window read holds no stretch of silence that could weigh on an ai finding
    assert len(b["timeline"]["silence_s"]) == 1 and b["timeline"]["silence_s"][0] < 0.25
    assert [e["window_index"] for e in b["explanations"]] == [0]


def test_a_recording_with_nothing_above_minus_60_dbfs_is_not_judged(tmp_path, tiny_model_dir):
    from musicbrain_cli.model.inference import Detector

    path = tmp_path / "dither.flac"
    encode_audio(path, _dither(12.0), SR)
    track = analyse_track(path, Detector.from_pretrained(tiny_model_dir),
                          options=ScanOptions(explain_windows=1)).track
    assert all(track["timeline"]["quiet"])
    assert track["verdict"]["content_label"] == INCONCLUSIVE
    assert track["verdict"]["label"] != "human" and track["verdict"]["label"] != "ai"
    content = [e for e in track["evidence"] if e["line"] == "content"][0]
    assert content["reasons"] == [NEAR_SILENT]
    assert content["p_ai"] is None                     # no probability over noise is shown
    assert track["explanations"] == []
    from musicbrain_cli.report.catalog import CatalogEntry, summary_row

    assert summary_row(CatalogEntry(str(path), track, "x/report.html"))["p_ai"] is None


def test_the_report_says_which_windows_were_not_judged():
    from musicbrain_cli.report.figures import timeline_figure
    from musicbrain_cli.report.html import timeline_sentence

    track = {"timeline": {"window_start_s": [0.0, 5.0, 10.0, 15.0], "window_s": 10.0,
                          "p_ai": [0.1, 0.2, 0.95, 0.97], "quiet": [False, False, True, True]},
             "verdict": {"threshold": 0.5, "band": [0.4, 0.6]}}
    text = timeline_sentence(track)
    assert "from 0.100 to 0.200" in text and "0 of them lie at or above" in text
    assert "2 more window(s) are silent" in text
    track["timeline"]["quiet"] = [True] * 4
    assert "none was judged" in timeline_sentence(track)
    t = track["timeline"]
    plain = timeline_figure(t["window_start_s"], t["p_ai"], window_s=10.0, threshold=0.5)
    hatched = timeline_figure(t["window_start_s"], t["p_ai"], window_s=10.0, threshold=0.5,
                              quiet=[False, False, True, True])
    assert plain != hatched
