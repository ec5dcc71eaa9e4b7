"""Deletion/insertion fidelity on a model built to depend on a known region."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from musicbrain_cli.errors import ConfigError, InputError
from musicbrain_cli.explain import (FMGradCAM, deletion_curve, fidelity_report, insertion_curve,
                                    occlusion_map, random_map, substrate)

N_F, N_T = 24, 32
REGION = (slice(6, 12), slice(10, 20))   # rows, columns the planted evidence lives in


class PlantedNet(nn.Module):
    """Label 0's logit is the mean energy of REGION (times 8, minus a bias): it depends on
    those cells only. Label 1 reads the whole grid weakly. ``fusion`` is an identity-like
    conv so CAMs have a layer to hook."""

    def __init__(self):
        super().__init__()
        self.fusion = nn.Conv2d(1, 1, 1)
        with torch.no_grad():
            self.fusion.weight.fill_(1.0)
            self.fusion.bias.zero_()
        mask = torch.zeros(N_F, N_T)
        mask[REGION] = 1.0
        self.register_buffer("mask", mask / mask.sum())

    def forward(self, x):
        f = torch.relu(self.fusion(x))[:, 0]
        region = (f * self.mask).sum(dim=(1, 2))
        return torch.stack([8 * region - 4, 0.5 * f.mean(dim=(1, 2))], dim=1)


@pytest.fixture
def model():
    return PlantedNet().eval()


@pytest.fixture
def spec():
    rng = np.random.default_rng(3)
    x = rng.uniform(0.0, 0.3, (N_F, N_T))
    x[REGION] += 1.0
    return torch.from_numpy(x.astype(np.float32))


def true_map():
    m = np.zeros((N_F, N_T))
    m[REGION] = 1.0
    return m


def test_true_map_beats_random(model, spec):
    kwargs = dict(targets=[0], steps=16, batch_size=8)
    d_true = deletion_curve(model, spec, true_map(), **kwargs).mean_auc
    i_true = insertion_curve(model, spec, true_map(), **kwargs).mean_auc
    d_rand = np.mean([deletion_curve(model, spec, random_map((N_F, N_T), seed=s), **kwargs).mean_auc
                      for s in range(3)])
    i_rand = np.mean([insertion_curve(model, spec, random_map((N_F, N_T), seed=s), **kwargs).mean_auc
                      for s in range(3)])
    # The region is 60/768 cells (8 %): removing it first kills the evidence at once.
    assert d_true < d_rand - 0.2
    assert i_true > i_rand + 0.2


def test_curve_endpoints_are_original_and_substrate(model, spec):
    curve = deletion_curve(model, spec, true_map(), targets=[0, 1], steps=4, substrate_kind="floor")
    with torch.no_grad():
        p_orig = torch.sigmoid(model(spec[None, None]))[0].numpy()
        p_base = torch.sigmoid(model(substrate(spec, "floor")[None, None]))[0].numpy()
    np.testing.assert_allclose(curve.scores[:, 0], p_orig, rtol=1e-5)
    np.testing.assert_allclose(curve.scores[:, -1], p_base, rtol=1e-5)
    ins = insertion_curve(model, spec, true_map(), targets=[0, 1], steps=4, substrate_kind="floor")
    np.testing.assert_allclose(ins.scores[:, 0], p_base, rtol=1e-5)
    np.testing.assert_allclose(ins.scores[:, -1], p_orig, rtol=1e-5)
    assert curve.fractions.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert curve.to_dict()["targets"] == [0, 1]


def test_batching_does_not_change_scores(model, spec):
    sal = random_map((N_F, N_T), seed=9)
    one = deletion_curve(model, spec, sal, targets=[0], steps=10, batch_size=1)
    many = deletion_curve(model, spec, sal, targets=[0], steps=10, batch_size=7)
    np.testing.assert_allclose(one.scores, many.scores, rtol=1e-6)


def test_substrates(spec):
    floor = substrate(spec, "floor")
    assert torch.all(floor == spec.min())
    noise = substrate(spec, "noise", seed=4)
    assert torch.equal(noise, substrate(spec, "noise", seed=4))
    assert abs(float(noise.mean() - spec.mean())) < 0.05 and abs(float(noise.std() / spec.std()) - 1) < 0.1
    blur = substrate(spec, "blur")
    # Blur keeps the mean level and removes the sharp region edges.
    assert abs(float(blur.mean() - spec.mean())) < 0.05
    assert float(torch.diff(blur, dim=1).abs().max()) < 0.5 * float(torch.diff(spec, dim=1).abs().max())
    with pytest.raises(ConfigError, match="'hiss'"):
        substrate(spec, "hiss")


def test_occlusion_finds_the_region(model, spec):
    occ = occlusion_map(model, spec, targets=[0], patch=(4, 4))
    inside, outside = occ[REGION].mean(), np.delete(occ.ravel(), np.flatnonzero(true_map().ravel())).mean()
    assert inside > 5 * max(outside, 1e-9)


def test_report_with_fmgcam_and_baselines(model, spec):
    model.train()
    with FMGradCAM(model, k=1) as cam:
        fm = cam(spec[None, None]).fused()[0]
    report = fidelity_report(model, spec, fm, k=1, steps=12, n_random=2, occlusion_patch=(4, 4))
    assert model.training  # the caller's mode is restored
    assert report.targets == [0]
    assert report.beats_random
    assert report.deletion_auc["saliency"] < report.deletion_auc["random"]
    assert set(report.deletion_auc) == {"saliency", "random", "occlusion"}
    d = report.to_dict(with_curves=True)
    assert d["beats_random"] is True and "deletion/occlusion" in d["curves"]


def test_random_map_on_a_grid():
    per_cell = random_map((N_F, N_T), seed=3)
    # a grid as fine as the map draws the same numbers (bilinear resize to the same size is exact)
    np.testing.assert_allclose(random_map((N_F, N_T), seed=3, grid=(N_F, N_T)), per_cell, atol=1e-12)
    assert np.ptp(random_map((N_F, N_T), seed=3, grid=(1, 1))) < 1e-12   # one value everywhere
    coarse = random_map((N_F, N_T), seed=3, grid=(6, 8))
    assert coarse.shape == (N_F, N_T)
    step = lambda m: np.abs(np.diff(m, axis=1)).mean()  # noqa: E731
    assert step(coarse) < 0.5 * step(per_cell)            # smooth at the grid's resolution
    with pytest.raises(ConfigError, match="grid"):
        random_map((N_F, N_T), grid=(0, 4))


def test_report_with_grid_random_baseline(model, spec):
    report = fidelity_report(model, spec, true_map(), targets=[0], steps=12, n_random=2,
                             occlusion=False, random_grid=(6, 8))
    assert set(report.deletion_auc) == {"saliency", "random", "random_grid"}
    assert report.deletion_auc["random_grid"] != report.deletion_auc["random"]
    assert report.beats("random_grid") and report.beats_random


def test_bad_inputs(model, spec):
    with pytest.raises(InputError, match=r"\(5, 5\)"):
        deletion_curve(model, spec, np.zeros((5, 5)), targets=[0])
    with pytest.raises(InputError, match="no target"):
        deletion_curve(model, spec, true_map(), targets=[])
    with pytest.raises(ConfigError, match="steps"):
        deletion_curve(model, spec, true_map(), targets=[0], steps=0)


def test_a_report_without_random_maps_is_refused(model, spec):
    """With n_random=0 the chance AUCs were NaN and the report said the planted region's own
    map does not beat random (``beats_random`` False): a verdict on a baseline never
    measured."""
    with pytest.raises(ConfigError, match="n_random"):
        fidelity_report(model, spec, true_map(), targets=[0], steps=4, n_random=0, occlusion=False)
