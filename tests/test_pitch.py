"""The rough multi-pitch estimate used when a track has no score."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from musicbrain_cli.alignment.overlap import Note, harmonic_overlap, midi_to_hz, partial_mask
from musicbrain_cli.errors import InputError
from musicbrain_cli.alignment.pitch import estimate_notes

SR = 22050


def tones(pitches, seconds=1.5, start=0.0):
    t = np.arange(int(SR * seconds)) / SR
    y = np.zeros(int(SR * (seconds + start)))
    for p in pitches:
        f = midi_to_hz(p)
        wave = sum(0.6 ** (h - 1) * np.sin(2 * np.pi * f * h * t) for h in range(1, 7))
        y[int(SR * start):] += wave
    return (y / np.abs(y).max() * 0.5).astype(np.float32)


@pytest.fixture(autouse=True)
def quiet_librosa():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module="librosa")
        yield


def test_finds_a_triad_and_not_its_partials():
    notes = estimate_notes(tones([48, 57, 64]), SR)
    assert {n.pitch for n in notes} == {48.0, 57.0, 64.0}
    for n in notes:
        assert n.start <= 0.1 and n.end >= 1.4


def test_onset_time_and_silence():
    notes = estimate_notes(tones([60], seconds=1.0, start=0.5), SR)
    assert [n.pitch for n in notes] == [60.0]
    assert abs(notes[0].start - 0.5) < 0.08


def test_estimated_notes_drive_harmonic_overlap():
    y = tones([57], seconds=2.0)
    notes = estimate_notes(y, SR)
    freqs = 40.0 * 2 ** (np.arange(160) / 24)
    times = np.arange(90) * 0.02
    mask, _ = partial_mask(freqs, times, [Note(0, 2, 57)], n_partials=6)
    res = harmonic_overlap(mask.astype(float), freqs=freqs, times=times, notes=notes, n_partials=6)
    assert res.share > 0.95 and res.lift > 3


def test_rejects_non_mono():
    with pytest.raises(InputError, match=r"\(2, 10\)"):
        estimate_notes(np.zeros((2, 10)), SR)


# --- the choice of estimator (issue 26 item 2) ---------------------------------------------


@pytest.fixture
def no_basic_pitch(monkeypatch):
    """basic-pitch made unimportable (None in sys.modules makes ``import`` raise), whether
    or not it is installed here; the cached model is dropped before and after."""
    import sys

    from musicbrain_cli.alignment import pitch

    pitch._basic_pitch_model.cache_clear()
    for name in [m for m in sys.modules if m == "basic_pitch" or m.startswith("basic_pitch.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "basic_pitch", None)
    yield
    pitch._basic_pitch_model.cache_clear()


def test_builtin_estimator_is_estimate_notes_and_says_so():
    from musicbrain_cli.alignment.pitch import transcribe

    y = tones([48, 57, 64])
    got = transcribe(y, SR, estimator="builtin")
    assert got.notes == estimate_notes(y, SR)
    assert got.provenance() == {"estimator": "builtin", "requested": "builtin",
                                "fallback": None, "notes": 3}


def test_auto_falls_back_to_the_builtin_estimator_and_records_why(no_basic_pitch):
    from musicbrain_cli.alignment.pitch import transcribe

    y = tones([60], seconds=1.0, start=0.5)
    got = transcribe(y, SR, estimator="auto")
    assert got.estimator == "builtin" and got.requested == "auto"
    assert "basic-pitch is not installed" in got.fallback
    assert [n.pitch for n in got.notes] == [60.0]


def test_an_explicit_or_unknown_estimator_that_cannot_run_is_refused(no_basic_pitch):
    from musicbrain_cli.errors import ConfigError
    from musicbrain_cli.alignment.pitch import check_note_estimator, transcribe

    with pytest.raises(ConfigError, match="'basic-pitch' is unavailable"):
        transcribe(tones([60]), SR, estimator="basic-pitch")
    with pytest.raises(ConfigError, match="'crepe'"):
        check_note_estimator("crepe")
    assert check_note_estimator("auto") == "auto"


def test_basic_pitch_on_an_array_equals_its_own_file_prediction(tmp_path):
    """Runs where basic-pitch is installed (it is optional): our array path must give the
    notes its ``predict`` gives for the same audio in a file, also from 44.1 kHz input."""
    pytest.importorskip("basic_pitch")
    import soundfile as sf
    from basic_pitch.inference import predict

    from musicbrain_cli.alignment.pitch import basic_pitch_notes, transcribe

    y = np.concatenate([tones([57, 64], seconds=1.0), tones([60], seconds=1.5)])
    sf.write(tmp_path / "x.wav", y, SR, subtype="FLOAT")   # no 16-bit rounding of what predict reads
    _, _, events = predict(tmp_path / "x.wav")
    want = sorted((round(float(s), 4), round(float(e), 4), float(p)) for s, e, p, *_ in events)
    got = [(round(n.start, 4), round(n.end, 4), n.pitch) for n in basic_pitch_notes(y, SR)]
    assert sorted(got) == want and {p for *_, p in got} >= {57.0, 60.0, 64.0}
    import librosa

    high = transcribe(librosa.resample(y, orig_sr=SR, target_sr=44100), 44100, estimator="basic-pitch")
    assert high.estimator.startswith("basic-pitch 0.4") and high.fallback is None
    assert {n.pitch for n in high.notes} >= {57.0, 60.0, 64.0}


def test_every_semitone_the_cqt_holds_is_read():
    """The per-semitone maxima stopped one semitone short whenever the CQT's bin count was a
    multiple of three: at 4600 Hz, where the bins just fit pitches up to C7, the top pitch had
    no fundamental row (and estimate_notes raised numpy's broadcasting ValueError); at
    44.1 kHz the 5th partial of C7 (10.47 kHz) was never summed into its salience."""
    from musicbrain_cli.alignment.pitch import pitch_salience

    sr = 4600
    t = np.arange(sr) / sr
    middle_c = sum(0.6 ** (h - 1) * np.sin(2 * np.pi * h * midi_to_hz(60) * t) for h in range(1, 4))
    salience, fundamental, pitches, _ = pitch_salience((0.3 * middle_c).astype(np.float32), sr)
    assert salience.shape == fundamental.shape == (len(pitches), salience.shape[1])
    assert pitches[salience.mean(axis=1).argmax()] == 60
    sr = 44100
    t = np.arange(sr) / sr
    fifth = (0.3 * np.sin(2 * np.pi * 5 * midi_to_hz(96) * t)).astype(np.float32)
    salience, _, pitches, _ = pitch_salience(fifth, sr)
    top = salience[pitches == 96].mean()
    assert top > 0.5 and top > 5 * salience[pitches == 95].mean()


@pytest.mark.parametrize("pitch", [36, 96])
def test_the_ends_of_the_pitch_range_are_found(pitch):
    """The pitch range is C2 to C7, but its end rows could never be a local maximum of the
    salience: a C2 came out as C3 (an octave error, half its partials off the mask), a C7 as
    no note at all."""
    assert [n.pitch for n in estimate_notes(tones([pitch], seconds=1.0), SR)] == [float(pitch)]
    # a pitch outside the range is still not reported at its end
    below = estimate_notes(tones([pitch - 1 if pitch == 36 else pitch + 1], seconds=1.0), SR)
    assert float(pitch) not in {n.pitch for n in below}
