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
