"""Band-removal and rhythmic-event faithfulness tests (issue 26, item 3) on models and maps
whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from musicbrain_cli.errors import ConfigError, InputError
from musicbrain_cli.explain import (FMGradCAM, band_removal, band_removal_summary, event_peak,
                                    event_summary, map_change, marked_band)

N_F, N_T = 48, 40
BAND = slice(20, 26)     # the only rows the BandNet reads


class BandNet(nn.Module):
    """Label 0's logit is the mean energy of rows BAND (times 8, minus a bias); label 1 is a
    constant. ``fusion`` is a 1x1 conv so a CAM has a layer to hook."""

    def __init__(self):
        super().__init__()
        self.fusion = nn.Conv2d(1, 1, 1)
        with torch.no_grad():
            self.fusion.weight.fill_(1.0)
            self.fusion.bias.zero_()

    def forward(self, x):
        f = torch.relu(self.fusion(x))[:, 0]
        band = f[:, BAND].mean(dim=(1, 2))
        return torch.stack([8 * band - 4, torch.zeros_like(band)], dim=1)


def spectrogram(seed: int) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.2, 1.0, (N_F, N_T))
    return torch.from_numpy(x.astype(np.float32))


def test_marked_band_is_the_densest_rows():
    sal = np.zeros((N_F, N_T))
    sal[30:34] = 1.0
    assert marked_band(sal, 4) == 30
    assert marked_band(sal, 8) == 26       # first of the tied bands that hold all four rows
    with pytest.raises(ConfigError, match="99"):
        marked_band(sal, 99)


def test_band_test_finds_the_band_the_model_reads():
    model = BandNet().eval()
    results = []
    for seed in range(10):
        spec = spectrogram(seed)
        with FMGradCAM(model, k=1, weighting="cell") as cam:
            fused = cam(spec[None, None], targets=[lambda z: z[:, 0]]).fused()[0]
        r = band_removal(model, spec, fused, targets=[0], width=6, n_random=8, seed=seed)
        results.append(r)
        assert abs(r.marked_start - BAND.start) <= 2   # the map points at the band read
        assert r.marked_drop > r.random_drop
    s = band_removal_summary(results)
    assert s["windows"] == 10 and s["marked_worse_share"] == 1.0
    assert s["sign_test_p"] < 0.01 and s["wilcoxon_p"] < 0.01
    assert s["difference_ci95"][0] > 0
    assert s["marked_worse_ci95"][0] > 0.6


def test_band_test_rejects_a_map_that_points_elsewhere():
    model = BandNet().eval()
    wrong = np.zeros((N_F, N_T))
    wrong[0:6] = 1.0                        # rows the model never reads
    results = [band_removal(model, spectrogram(s), wrong, targets=[0], width=6, n_random=8, seed=s)
               for s in range(10)]
    assert all(r.marked_drop == pytest.approx(0.0, abs=1e-7) for r in results)
    s = band_removal_summary(results)
    assert s["mean_difference"] < 0          # random bands sometimes hit BAND: chance wins
    assert s["sign_test_p"] is None or s["sign_test_p"] > 0.5


def test_band_removal_bad_inputs():
    model = BandNet().eval()
    with pytest.raises(InputError, match="no target"):
        band_removal(model, spectrogram(0), np.zeros((N_F, N_T)), targets=[])
    with pytest.raises(InputError, match=r"\(3, 3\)"):
        band_removal(model, spectrogram(0), np.zeros((3, 3)), targets=[0])
    assert band_removal_summary([])["mean_difference"] is None


def map_with_step(t0: float, times: np.ndarray, *, seed: int) -> np.ndarray:
    """A noisy map whose upper rows light up from ``t0`` on (what an entry should do)."""
    rng = np.random.default_rng(seed)
    sal = 0.2 * rng.random((16, times.size))
    sal[8:, times >= t0] += 1.0
    return sal


def test_event_test_hits_a_map_that_changes_at_the_entry():
    times = np.arange(200) * 0.02        # 4 s at 20 ms columns
    hits = []
    for seed, t0 in enumerate(np.linspace(1.0, 3.0, 12)):
        h = event_peak(map_with_step(t0, times, seed=seed), times=times, t0=float(t0))
        assert h.hit and abs(h.peak_s - t0) <= 0.02
        assert 0.04 < h.chance < 0.06       # about 10 of 199 change positions lie within 0.1 s
        hits.append(h)
    s = event_summary(hits)
    assert s["hits"] == 12 and s["hit_rate"] == 1.0
    assert s["p_value"] < 1e-10 and s["hit_rate_ci95"][0] > s["chance"]


def test_event_test_misses_a_map_that_changes_elsewhere():
    times = np.arange(200) * 0.02
    rng = np.random.default_rng(1)
    hits = [event_peak(map_with_step(3.5, times, seed=s), times=times, t0=float(rng.uniform(1, 2.5)))
            for s in range(12)]
    assert not any(h.hit for h in hits)
    s = event_summary(hits)
    assert s["hit_rate"] == 0.0 and s["p_value"] == pytest.approx(1.0)
    flat = event_peak(np.ones((4, 200)), times=times, t0=2.0)   # never changes: a miss
    assert not flat.hit and np.isnan(flat.peak_s)


def test_event_test_can_leave_the_padded_edges_out():
    """A map whose largest change is at its first column (a padded edge) misses the entry;
    searched only inside ``within``, its change at the entry is found, and chance is counted
    over the positions searched."""
    times = np.arange(200) * 0.02
    sal = map_with_step(2.0, times, seed=3)
    sal[:, 0] = 50 * sal.max()                       # an edge that dwarfs every other change
    assert not event_peak(sal, times=times, t0=2.0).hit
    inner = event_peak(sal, times=times, t0=2.0, within=(0.8, 3.2))
    assert inner.hit and abs(inner.peak_s - 2.0) <= 0.02
    assert inner.chance > event_peak(sal, times=times, t0=2.0).chance
    with pytest.raises(InputError):
        event_peak(sal, times=times, t0=2.0, within=(10.0, 11.0))


def test_the_step_detector_finds_an_entry_that_note_attacks_outdo():
    """An entering melody: the map steps up at the entry and stays, and each later note's
    attack is a spike larger than the step's own jump. The largest jump between columns
    falls on an attack; the step detector (1 s either side) finds the entry."""
    times = np.arange(500) * 0.02                       # 10 s at 20 ms columns
    hits_step, hits_frame = [], []
    for seed, t0 in enumerate(np.linspace(3.0, 7.0, 9)):
        rng = np.random.default_rng(seed)
        level = np.where(times >= t0, 2.0, 1.0) + 0.02 * rng.random(times.size)
        for attack in np.arange(t0 + 0.5, 10.0, 0.5):   # notes of 0.5 s after the entry
            level[np.argmin(np.abs(times - attack))] += 3.0
        sal = np.tile(level, (8, 1))
        hits_step.append(event_peak(sal, times=times, t0=float(t0), within=(2.0, 8.0), step_s=1.0))
        hits_frame.append(event_peak(sal, times=times, t0=float(t0), within=(2.0, 8.0)))
    assert all(h.hit and abs(h.peak_s - h.t0) <= 0.02 for h in hits_step)
    assert not any(h.hit for h in hits_frame)


def test_the_step_detector_compares_the_mean_shares_either_side():
    times = np.arange(8) * 0.5
    mass = np.array([1.0, 1.0, 1.0, 1.0, 3.0, 3.0, 3.0, 3.0])
    change, at = map_change(mass[None], times, step_s=1.0)     # 2 columns either side
    share = mass / mass.sum()
    expected = [abs(share[b:b + 2].mean() - share[b - 2:b].mean()) for b in range(2, 7)]
    np.testing.assert_allclose(change, expected)
    np.testing.assert_allclose(at, [0.75, 1.25, 1.75, 2.25, 2.75])
    assert at[int(np.argmax(change))] == 1.75                  # between 1.5 s and 2.0 s
    with pytest.raises(InputError):
        map_change(mass[None], times, step_s=3.0)              # no room for 6 columns a side
    with pytest.raises(InputError):
        map_change(mass[None], times, step_s=-1.0)


def test_map_change_is_a_share_of_mass():
    times = np.arange(5) * 0.5
    change, at = map_change(np.array([[1.0, 1.0, 3.0, 3.0, 2.0]]), times)
    np.testing.assert_allclose(change, [0.0, 0.2, 0.0, 0.1])
    np.testing.assert_allclose(at, [0.25, 0.75, 1.25, 1.75])
    with pytest.raises(InputError):
        map_change(np.ones((2, 3)), np.arange(4))


def test_band_test_counts_works_not_windows():
    from musicbrain_cli.explain.fidelity import BandRemoval

    def r(diff):
        return BandRemoval(targets=[0], width=6, marked_start=0, marked_drop=diff,
                           random_starts=[1], random_drop=0.0)

    # 12 windows of 3 works: all 12 windows favour the marked band, but one work's windows
    # are a single piece of evidence, so the tests see 3 works, not 12 windows.
    results = [r(0.1 + 0.01 * i) for i in range(12)]
    by_window = band_removal_summary(results)
    by_work = band_removal_summary(results, groups=[f"w{i // 4}" for i in range(12)])
    assert by_window["unit"] == "window" and by_window["units"] == 12
    assert by_work["unit"] == "work" and by_work["units"] == 3 and by_work["windows"] == 12
    assert by_window["sign_test_p"] < 0.001
    assert by_work["sign_test_p"] == pytest.approx(0.125)       # 3 of 3: 1/8
    assert by_work["marked_worse_share"] == 1.0
    assert by_work["mean_difference"] == by_window["mean_difference"]
    # a work whose windows disagree counts by their mean
    mixed = band_removal_summary([r(0.3), r(-0.1), r(-0.05)], groups=["a", "a", "b"])
    assert mixed["units"] == 2 and mixed["marked_worse_share"] == 0.5
