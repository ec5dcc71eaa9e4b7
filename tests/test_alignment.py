"""Harmonic and onset overlap on synthetic saliency, always against chance."""

from __future__ import annotations

import numpy as np
import pytest

from musicbrain_cli.alignment.overlap import (HarmonicOverlap, Note, OnsetOverlap, bin_bands,
                                              detect_onsets, energy_map, energy_reference,
                                              harmonic_overlap, midi_to_hz, note_onsets,
                                              notes_from_midi, onset_overlap, partial_mask)
from musicbrain_cli.errors import InputError

# A log-spaced grid like a CQT/mel front end: 6 bins per semitone-ish resolution is not
# needed; 24 bins per octave from 40 Hz, 200 frames of 20 ms.
FREQS = 40.0 * 2 ** (np.arange(160) / 24)
TIMES = np.arange(200) * 0.02
NOTES = [Note(0.0, 2.0, 57), Note(1.0, 3.0, 64), Note(2.5, 4.0, 50)]


def on_partials_map(notes, n_partials=6):
    mask, _ = partial_mask(FREQS, TIMES, notes, n_partials=n_partials, tolerance_cents=25)
    return mask.astype(float)


def between_partials_map(notes, n_partials=6):
    """Saliency on bins halfway (in log frequency) between consecutive partials."""
    sal = np.zeros((len(FREQS), len(TIMES)))
    for n in notes:
        frames = (TIMES >= n.start) & (TIMES < n.end)
        for k in range(1, n_partials):
            f = n.hz * np.sqrt(k * (k + 1))
            sal[np.argmin(np.abs(np.log(FREQS / f))), frames] = 1.0
    return sal


def test_midi_to_hz():
    assert midi_to_hz(69) == pytest.approx(440.0)
    assert midi_to_hz(57) == pytest.approx(220.0)


def test_saliency_on_partials_scores_high():
    res = harmonic_overlap(on_partials_map(NOTES), freqs=FREQS, times=TIMES, notes=NOTES)
    assert res.share == pytest.approx(1.0)
    assert res.chance < 0.25
    assert res.lift > 4
    assert res.frames == 200  # every frame has a note sounding


def test_saliency_between_partials_scores_at_most_chance():
    # A single sounding note so "between its partials" is not on another note's partial.
    notes = [Note(0.0, 4.0, 57)]
    res = harmonic_overlap(between_partials_map(notes), freqs=FREQS, times=TIMES, notes=notes)
    assert res.share <= res.chance
    assert res.lift <= 1.0


def test_uniform_saliency_is_chance():
    res = harmonic_overlap(np.ones((len(FREQS), len(TIMES))), freqs=FREQS, times=TIMES, notes=NOTES)
    assert res.share == pytest.approx(res.chance)
    assert res.lift == pytest.approx(1.0)


def test_frames_without_notes_are_left_out():
    notes = [Note(1.0, 2.0, 57)]
    sal = on_partials_map(notes)
    sal[:, TIMES < 1.0] = 5.0  # loud saliency where nothing sounds must not count
    res = harmonic_overlap(sal, freqs=FREQS, times=TIMES, notes=notes)
    assert res.frames == 50 and res.share == pytest.approx(1.0)


def test_coarse_bins_still_catch_partials():
    # Mel-like: 20 bins over 0..8 kHz (400 Hz wide): every partial falls inside some band.
    freqs = np.linspace(200, 7800, 20)
    mask, _ = partial_mask(freqs, TIMES, [Note(0, 4, 57)], n_partials=4, tolerance_cents=10)
    lo, hi = bin_bands(freqs)
    for k in range(1, 5):
        row = np.flatnonzero((lo <= 220 * k) & (hi >= 220 * k))
        assert mask[row, 0].all()


def test_track_combines_windows_by_counts():
    a = harmonic_overlap(on_partials_map(NOTES)[:, :100], freqs=FREQS, times=TIMES[:100], notes=NOTES)
    b = harmonic_overlap(np.ones((160, 100)), freqs=FREQS, times=TIMES[100:], notes=NOTES)
    track = HarmonicOverlap.combine([a, b])
    assert track.mass == a.mass + b.mass and track.cells == a.cells + b.cells
    assert a.share > track.share > b.share
    assert set(track.to_dict()) >= {"share", "chance", "lift"}


# --- onsets -------------------------------------------------------------------------------

ONSETS = np.array([0.5, 1.3, 2.2, 3.1])


def saliency_at(times_s, width_frames=1):
    sal = np.full((8, len(TIMES)), 0.01)
    for t in times_s:
        i = int(np.argmin(np.abs(TIMES - t)))
        sal[:, max(0, i - width_frames + 1): i + width_frames] = 1.0
    return sal


def test_saliency_on_onsets_scores_high():
    res = onset_overlap(saliency_at(ONSETS), times=TIMES, onsets=ONSETS)
    assert res.hit_rate == 1.0
    assert res.chance_hit_rate < 0.3
    assert res.concentration > 3
    assert res.onsets == 4


def test_saliency_between_onsets_scores_at_most_chance():
    between = (ONSETS[:-1] + ONSETS[1:]) / 2
    res = onset_overlap(saliency_at(between), times=TIMES, onsets=ONSETS)
    assert res.hit_rate == 0.0 <= res.chance_hit_rate
    assert res.concentration < 1.0


def test_uniform_saliency_onset_concentration_is_one():
    res = onset_overlap(np.ones((8, len(TIMES))), times=TIMES, onsets=ONSETS)
    assert res.concentration == pytest.approx(1.0)
    assert res.hit_rate == res.chance_hit_rate == 0.0  # a flat profile has no peaks


def test_onsets_outside_window_ignored_and_track_combine():
    res = onset_overlap(saliency_at([0.5])[:, :50], times=TIMES[:50], onsets=[0.5, 3.0])
    assert res.onsets == 1 and res.hits == 1
    track = OnsetOverlap.combine([res, res])
    assert track.onsets == 2 and track.hit_rate == 1.0
    assert track.to_dict()["chance_hit_rate"] == pytest.approx(res.chance_hit_rate)


def test_note_onsets_dedupes_chords():
    notes = [Note(0.5, 1, 60), Note(0.5, 1, 64), Note(1.0, 2, 67)]
    assert note_onsets(notes).tolist() == [0.5, 1.0]


def test_detect_onsets_finds_clicks():
    sr = 22050
    y = np.zeros(sr * 2, dtype=np.float32)
    rng = np.random.default_rng(5)
    for t in (0.3, 0.9, 1.5):
        i = int(t * sr)
        y[i: i + 2000] = rng.standard_normal(2000) * np.exp(-np.arange(2000) / 300)
    found = detect_onsets(y, sr)
    assert len(found) == 3 and np.allclose(found, [0.3, 0.9, 1.5], atol=0.03)


def test_notes_from_midi(tmp_path):
    import pretty_midi

    pm = pretty_midi.PrettyMIDI()
    piano = pretty_midi.Instrument(program=0)
    piano.notes += [pretty_midi.Note(velocity=80, pitch=64, start=1.0, end=1.5),
                    pretty_midi.Note(velocity=80, pitch=60, start=0.0, end=1.0)]
    drums = pretty_midi.Instrument(program=0, is_drum=True)
    drums.notes.append(pretty_midi.Note(velocity=80, pitch=36, start=0.0, end=0.1))
    pm.instruments += [piano, drums]
    path = tmp_path / "x.mid"
    pm.write(str(path))
    notes = notes_from_midi(path)
    assert [(n.pitch, n.start) for n in notes] == [(60.0, 0.0), (64.0, 1.0)]
    assert len(notes_from_midi(path, include_drums=True)) == 3
    with pytest.raises(InputError, match="missing.mid"):
        notes_from_midi(tmp_path / "missing.mid")


def test_bad_inputs():
    with pytest.raises(InputError, match="columns"):
        harmonic_overlap(np.ones((160, 10)), freqs=FREQS, times=TIMES, notes=NOTES)
    with pytest.raises(InputError, match="non-negative"):
        onset_overlap(-np.ones((8, 200)), times=TIMES, onsets=ONSETS)


def test_to_dict_is_strict_json_when_undefined():
    import json

    empty = harmonic_overlap(np.zeros((160, 200)), freqs=FREQS, times=TIMES, notes=[])
    assert np.isnan(empty.share)
    d = empty.to_dict()
    assert d["share"] is None and d["lift"] is None
    json.dumps(d, allow_nan=False)
    no_onsets = onset_overlap(np.ones((8, 200)), times=TIMES, onsets=[])
    json.dumps(no_onsets.to_dict(), allow_nan=False)
    assert no_onsets.to_dict()["hit_rate"] is None


def test_energy_reference_scores_the_sound_itself():
    """The reference map is the spectrogram above its floor: a window whose energy sits on the
    notes' partials and starts at their onsets scores above chance on both checks with no
    model at all (which is why a map's lift is read against it); a level shift changes
    nothing, and a window of constant level is a zero map (no mass, no peaks)."""
    notes = [Note(0.5, 2.0, 57), Note(2.5, 4.0, 64)]
    level = -80.0 + 60.0 * on_partials_map(notes)         # dB: partials 60 dB above the floor
    level[:, (TIMES >= 0.5) & (TIMES < 0.56)] += 10.0      # attacks louder than the sustain
    level[:, (TIMES >= 2.5) & (TIMES < 2.56)] += 10.0
    ref = energy_map(level)
    assert ref.min() == 0.0 and ref.shape == level.shape
    np.testing.assert_allclose(energy_map(level + 37.0), ref)
    h, o = energy_reference(level, freqs=FREQS, times=TIMES, notes=notes, onsets=note_onsets(notes))
    assert h.lift > 2.0
    assert o.hit_rate == 1.0 and o.chance_hit_rate < 0.5
    flat = energy_map(np.full((len(FREQS), len(TIMES)), -20.0))
    assert not flat.any()
    with pytest.raises(InputError):
        energy_map(np.zeros(5))
