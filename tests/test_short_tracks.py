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
    y = bach[: 3 * SR]
    pred = default_detector.predict_track(y)
    again = default_detector.predict_windows(np.tile(y, 4)[None, : 10 * SR])
    np.testing.assert_allclose(pred.window_probs, again, atol=1e-6)
    assert pred.n_valid.tolist() == [3 * SR]
