"""Defects found in the review of the explanation-quality statistics (issue 26): each test is
built on small synthetic inputs whose right answer is derived by hand in its comments."""

from __future__ import annotations

import numpy as np
import pytest

HOP_S = 0.02                      # the default front end: 20 ms frames, 500 in a 10-s window


def _padded_window_profile():
    """A 10-s window whose audio ends at 2.99 s (frames 0..149), the rest zero padding: a
    map of ones over the audio, twos on every tenth frame (5, 15, ..., 145), zero after."""
    times = np.arange(500) * HOP_S
    sal = np.zeros((1, 500))
    sal[0, :150] = 1.0
    sal[0, 5:150:10] = 2.0
    return sal, times


def test_onset_chance_counts_only_the_part_of_a_window_that_holds_audio():
    # Over the 150 frames of audio the 0.9 quantile lies between the ones and the twos, so
    # the peaks are the 15 twos, 0.2 s apart: each covers its own +/-50 ms, 0.1 s, and they
    # do not overlap: 1.5 s. Onsets can only fall in the audio, whose span (the first frame
    # - 50 ms to the last + 50 ms) is 2.98 + 0.1 = 3.08 s: chance 1.5 / 3.08. Dividing by the
    # whole window's 10.08 s instead (0.149) would make a map that knows nothing of the
    # onsets look 3.3x better than chance.
    from musicbrain_cli.alignment.overlap import onset_overlap

    sal, times = _padded_window_profile()
    onsets = [0.4, 1.0, 1.7, 2.5]                 # all in the audio, away from the peaks
    o = onset_overlap(sal, times=times, onsets=onsets, until=2.99)
    assert o.chance_hit_rate == pytest.approx(1.5 / 3.08)
    assert o.onsets == 4 and o.frames == 150
    # 0.4 s: frames 0.36..0.44 hold no peak (0.3, 0.5): a miss; 1.0 s: 1.1 is 0.1 away: a
    # miss; 1.7 s and 2.5 s: peaks at 1.7 and 2.5 themselves: hits
    assert o.hits == 2
    # the window's full span is still the default when the audio fills it
    full = onset_overlap(sal, times=times, onsets=onsets)
    assert full.frames == 500
    # (what the span through the padding gives: the same peaks over 9.98 + 0.1 s)
    assert full.chance_hit_rate == pytest.approx(1.5 / 10.08)


def test_energy_reference_uses_the_same_audio_span():
    from musicbrain_cli.alignment.overlap import energy_reference, onset_overlap

    sal, times = _padded_window_profile()
    freqs = np.array([100.0, 200.0])
    spec = np.vstack([sal[0], sal[0]]) - 80.0           # floor -80: the energy map is 2 x sal
    _, o = energy_reference(spec, freqs=freqs, times=times, notes=[], onsets=[1.7], until=2.99)
    assert o.chance_hit_rate == pytest.approx(1.5 / 3.08)
    assert o.frames == 150
    with pytest.raises(Exception):
        onset_overlap(sal, times=times, onsets=[], until=-1.0)


@pytest.fixture(scope="module")
def detector():
    """A tiny untrained detector (as in tests/test_evaluate.py): source and period labels."""
    import torch

    from musicbrain_cli.features import FrontEndConfig
    from musicbrain_cli.model.checkpoint import default_card
    from musicbrain_cli.model.config import ModelConfig
    from musicbrain_cli.model.inference import Detector
    from musicbrain_cli.model.net import build_model
    from musicbrain_cli.taxonomy import Taxonomy

    taxonomy = Taxonomy.from_groups([("source", ["human", "ai"], True),
                                     ("period", ["Baroque", "Romantic"], True)])
    config = ModelConfig(front_end=FrontEndConfig(n_bins=64, window_s=2.56, hop_s=1.28),
                         taxonomy=taxonomy)
    torch.manual_seed(0)
    return Detector(build_model(config), config, default_card(), device="cpu")


def test_each_explained_window_draws_its_own_random_baseline_maps(detector, monkeypatch):
    # The `random` and `random_grid` AUCs are "what chance scores": an average over random
    # maps. Drawn with the same seeds in every window, the whole evaluation's chance is the
    # same n_random maps laid on every window (3 maps for the 24 windows of metrics.md, not
    # 72), so one draw that happens to favour (or spare) some rows or frames biases every
    # window alike and its spread never averages out. Two windows must draw different maps,
    # as the band-removal test's random bands already do (seed = the window's number).
    import musicbrain_cli.explain.fidelity as fidelity
    from musicbrain_cli.evaluate.split import _ExplainTotals, _explain_window

    seeds: list[tuple[int, tuple | None]] = []
    real = fidelity.random_map

    def spy(shape, *, seed=0, grid=None):
        seeds.append((seed, grid))
        return real(shape, seed=seed, grid=grid)

    monkeypatch.setattr(fidelity, "random_map", spy)
    rng = np.random.default_rng(0)
    totals = _ExplainTotals()
    per_window = []
    for _ in range(2):
        seeds.clear()
        wave = (0.1 * rng.standard_normal(detector.config.front_end.n_samples)).astype(np.float32)
        _explain_window(detector, wave, [], clip_id="x", totals=totals, figure_dir=None,
                        top_k=2, steps=2, substrate="floor", occlusion=False,
                        occlusion_patch=(8, 8), n_random=2)
        per_window.append({s for s, grid in seeds if grid is None})
    assert len(per_window[0]) == 2 and len(per_window[1]) == 2     # n_random maps each
    assert per_window[0].isdisjoint(per_window[1])


def test_estimated_notes_are_centred_on_their_frames(monkeypatch):
    # The CQT's frame i is centred at i * hop (librosa's frames_to_time): a pitch active in
    # frames 10..29 sounds from half a hop before frame 10's centre to half a hop after frame
    # 29's, (10 - 0.5) * hop to (29 + 0.5) * hop: 20 hops, centred on the frames. Starting
    # at frame 10's centre and ending a whole hop after frame 29's places every estimated
    # note (and its onset, used when a window has no score) half a hop, 11.6 ms at 512 / 22050,
    # late: a bias of a quarter of the +/-50 ms onset tolerance, always in one direction.
    import musicbrain_cli.alignment.pitch as pitch

    sr, hop = 22050, 512
    hop_s = hop / sr
    pitches = np.arange(36, 97)
    sal = np.zeros((pitches.size, 60))
    sal[20, 10:30] = 1.0                        # MIDI 56, frames 10..29
    times = np.arange(60) * hop_s
    monkeypatch.setattr(pitch, "pitch_salience",
                        lambda y, sr, **kw: (sal, sal.copy(), pitches, times))
    notes = pitch.estimate_notes(np.zeros(10, np.float32), sr, hop_length=hop)
    assert len(notes) == 1 and notes[0].pitch == 56
    assert notes[0].start == pytest.approx(9.5 * hop_s)
    assert notes[0].end == pytest.approx(29.5 * hop_s)


def test_a_window_whose_alignment_fails_leaves_nothing_in_the_totals(detector, monkeypatch):
    # The fidelity and band-removal figures of a window were added to the totals before its
    # alignment ran; when the alignment raised, evaluate listed the clip as an explanation
    # failure, yet its deletion/insertion and band figures stayed in every total (the lists
    # out of step with the alignment's, the failed clip counted). A window is now added whole
    # or not at all.
    import musicbrain_cli.alignment.overlap as overlap
    from musicbrain_cli.errors import InputError
    from musicbrain_cli.evaluate.split import _ExplainTotals, _explain_window

    wave = (0.1 * np.random.default_rng(1).standard_normal(
        detector.config.front_end.n_samples)).astype(np.float32)
    kwargs = dict(clip_id="x", figure_dir=None, top_k=2, steps=2, substrate="floor",
                  occlusion=False, occlusion_patch=(8, 8), n_random=1)
    good = _ExplainTotals()
    _explain_window(detector, wave, [], totals=good, **kwargs)

    def fails(*args, **kw):
        raise InputError("no frame of the window lies before the audio's end")

    monkeypatch.setattr(overlap, "harmonic_overlap", fails)
    totals = _ExplainTotals()
    with pytest.raises(InputError):
        _explain_window(detector, wave, [], totals=totals, **kwargs)
    assert (len(totals.band), len(totals.band_verdict), len(totals.harmonic)) == (0, 0, 0)
    assert not totals.fused.deletion and not totals.verdict.deletion and not totals.style_alone.deletion
    assert not totals.by_target_group and not sum(totals.notes_source.values())
    # the same window, not failing, is counted once in every list
    assert (len(good.band), len(good.band_verdict), len(good.harmonic)) == (1, 1, 1)
    assert len(good.fused.beats_random) == 1 and sum(good.notes_source.values()) == 1
