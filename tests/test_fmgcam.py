"""FM-G-CAM: the published recipe, exclusivity, scaling, cost, figures, the real architecture."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from musicbrain_cli.errors import ConfigError
from musicbrain_cli.explain import (NORMALIZE_MODES, FMGradCAM, LabelTarget, blend_maps,
                                    exclusive_argmax, plot_fmgcam)
from musicbrain_cli.explain.fmgcam import WEIGHTING_MODES


class TinyNet(nn.Module):
    def __init__(self, n_labels: int = 6):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.fusion = nn.Sequential(nn.Conv2d(8, 16, 3, padding=1), nn.ReLU())
        self.fc = nn.Linear(16, n_labels)

    def forward(self, x):
        # A max-pool head: label evidence is local, so different labels win different cells.
        return self.fc(self.fusion(self.stem(x)).amax(dim=(2, 3)))


@pytest.fixture
def model():
    torch.manual_seed(1)
    return TinyNet().eval()


@pytest.fixture
def spec():
    return torch.from_numpy(np.random.default_rng(1).standard_normal((3, 1, 20, 32)).astype(np.float32))


def reference_fmgcam(model, spec, k):
    """The recipe written out directly: raw Grad-CAM per top-k label, upsample, argmax mask,
    ReLU, one min-max over the stack (normalize='none')."""
    store = {}
    handle = model.fusion.register_forward_hook(lambda m, i, o: store.setdefault("a", o))
    try:
        logits = model(spec)
    finally:
        handle.remove()
    act = store["a"]
    top = logits.topk(k, dim=1).indices
    maps = []
    for r in range(k):
        (g,) = torch.autograd.grad(logits.gather(1, top[:, r:r + 1]).sum(), act, retain_graph=True)
        maps.append((g.mean(dim=(2, 3))[:, :, None, None] * act).mean(dim=1))
    m = F.interpolate(torch.stack(maps, 1), size=spec.shape[-2:], mode="bilinear", align_corners=False)
    keep = F.one_hot(m.argmax(1), k).permute(0, 3, 1, 2).bool()
    m = F.relu(m * keep)
    m = m / m.flatten(1).max(dim=1).values[:, None, None, None]
    return m.detach().numpy(), top.numpy()


def test_matches_written_out_recipe(model, spec):
    with FMGradCAM(model, k=3, normalize="none", weighting="channel", refine="none") as cam:
        res = cam(spec)
    expected, top = reference_fmgcam(model, spec, 3)
    assert res.labels.tolist() == top.tolist()
    np.testing.assert_allclose(res.maps, expected, atol=1e-5)
    # The test model really spreads the evidence over several labels.
    winners = (res.maps > 0).any(axis=(2, 3)).sum(axis=1)
    assert (winners >= 2).all()


@pytest.mark.parametrize("normalize", NORMALIZE_MODES)
def test_exclusive_and_in_unit_range(model, spec, normalize):
    with FMGradCAM(model, k=3, normalize=normalize) as cam:
        res = cam(spec)
    assert res.maps.shape == (3, 3, 20, 32)
    assert ((res.maps > 0).sum(axis=1) <= 1).all()           # at most one label per cell
    assert res.maps.min() >= 0.0 and res.maps.max() <= 1.0
    np.testing.assert_allclose(res.maps.max(axis=(1, 2, 3)), 1.0)  # one min-max per window
    assert res.extra["normalize"] == normalize


def test_label_axis_normalisation_is_binary(model, spec):
    with FMGradCAM(model, normalize="label-axis", refine="none") as cam:
        res = cam(spec)
    assert set(np.unique(res.maps)) <= {0.0, 1.0}


def test_per_map_normalisation_equalises_label_peaks(model, spec):
    with FMGradCAM(model, normalize="none") as cam:
        raw = cam(spec)
    with FMGradCAM(model, normalize="per-map") as cam:
        per_map = cam(spec)
    # Same winners, same ranking inside each label's region; only label scale changes.
    np.testing.assert_array_equal(raw.maps > 0, per_map.maps > 0)
    for b in range(3):
        for k in range(3):
            r, p = raw.maps[b, k], per_map.maps[b, k]
            if (r > 0).sum() > 1:
                np.testing.assert_allclose(p[r > 0] / p[r > 0].max(), r[r > 0] / r[r > 0].max(), atol=1e-5)


def test_one_forward_and_backward_from_target_layer_only(model, spec):
    forwards, stem_backwards = [], []
    model.register_forward_hook(lambda m, i, o: forwards.append(1))
    model.stem[0].register_full_backward_hook(lambda m, gi, go: stem_backwards.append(1))
    with FMGradCAM(model, k=3, refine="none") as cam:
        cam(spec)
    assert len(forwards) == 1 and stem_backwards == []
    # the refinement costs one backward through the whole network (the k targets summed)
    with FMGradCAM(model, k=3, refine="gradient-input") as cam:
        cam(spec)
    assert len(forwards) == 2 and stem_backwards == [1]
    assert all(p.grad is None for p in model.parameters())


def test_explicit_targets_and_bad_settings(model, spec):
    with FMGradCAM(model) as cam:
        res = cam(spec, targets=[LabelTarget(0), LabelTarget(5)])
    assert res.labels.tolist() == [[0, 5]] * 3
    with pytest.raises(ConfigError, match="'l3'"):
        FMGradCAM(model, normalize="l3")
    with pytest.raises(ConfigError, match="k=7"):
        with FMGradCAM(model, k=7) as cam:
            cam(spec)


def test_exclusive_argmax_keeps_the_largest():
    maps = torch.tensor([[[[1.0, -2.0]], [[0.5, -1.0]]]])  # [1, 2, 1, 2]
    out = exclusive_argmax(maps)
    assert out.tolist() == [[[[1.0, 0.0]], [[0.0, -1.0]]]]


def test_blend_maps_colours_the_winner():
    rng = np.random.default_rng(2)
    spec = rng.standard_normal((10, 12))
    maps = np.zeros((2, 10, 12))
    maps[0, 2, 3] = 1.0
    maps[1, 5, 6] = 0.5
    rgb, legend = blend_maps(spec, maps, ["ai", "Baroque"], colors=[(1, 0, 0), (0, 0, 1)], max_alpha=0.8)
    grey = (spec - spec.min()) / (spec.max() - spec.min())
    assert rgb.shape == (10, 12, 3) and legend == [("ai", (1.0, 0.0, 0.0)), ("Baroque", (0.0, 0.0, 1.0))]
    np.testing.assert_allclose(rgb[0, 0], [grey[0, 0]] * 3)
    np.testing.assert_allclose(rgb[2, 3], 0.2 * grey[2, 3] + 0.8 * np.array([1, 0, 0]))
    np.testing.assert_allclose(rgb[5, 6], 0.6 * grey[5, 6] + 0.4 * np.array([0, 0, 1]))
    with pytest.raises(ConfigError):
        blend_maps(spec, maps, ["only-one"])


def test_plot_on_axes_without_pyplot(model, spec):
    from matplotlib.figure import Figure

    with FMGradCAM(model) as cam:
        res = cam(spec[:1], times=np.arange(32) * 0.02, freqs=np.geomspace(30, 8000, 20))
    fig = Figure()
    ax = fig.add_subplot()
    plot_fmgcam(ax, spec[0, 0].numpy(), res.maps[0], ["a", "b", "c"], times=res.times, freqs=res.freqs)
    assert ax.get_xlabel() == "time (s)" and ax.get_ylabel() == "frequency (Hz)"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a", "b", "c"]
    assert ax.get_yticklabels()[0].get_text() == "30"


def test_real_architecture_fusion_layer():
    build = pytest.importorskip("musicbrain_cli.model.net").build_model
    from musicbrain_cli.features import FrontEndConfig, bin_frequencies, frame_times
    from musicbrain_cli.model.config import ModelConfig
    from musicbrain_cli.taxonomy import Taxonomy

    taxonomy = Taxonomy.from_groups([("source", ["human", "ai"], True),
                                     ("period", ["Baroque", "Classical", "Romantic"], True)])
    fe = FrontEndConfig(n_bins=64, window_s=2.56, hop_s=1.28)
    torch.manual_seed(0)
    model = build(ModelConfig(front_end=fe, taxonomy=taxonomy))
    model.train()
    spec = torch.randn(2, *fe.shape)
    with FMGradCAM(model, layer="fusion", k=3) as cam:
        res = cam(spec, times=frame_times(fe), freqs=bin_frequencies(fe))
    assert model.training and len(model.fusion._forward_hooks) == 0
    assert res.maps.shape == (2, 3, 64, fe.n_frames) and res.freqs.shape == (64,)
    assert ((res.maps > 0).sum(axis=1) <= 1).all()
    np.testing.assert_allclose(res.maps.max(axis=(1, 2, 3)), 1.0)
    assert res.labels.tolist() == np.argsort(-res.logits, axis=1)[:, :3].tolist()


def test_exclusive_argmax_matches_torch_argmax():
    maps = torch.randn(2, 4, 9, 11, generator=torch.Generator().manual_seed(3))
    maps[0, :, 0, 0] = 0.5  # a tie goes to the first label, as argmax does
    out = exclusive_argmax(maps)
    winner = maps.argmax(dim=1, keepdim=True)
    expected = torch.zeros_like(maps).scatter_(1, winner, maps.gather(1, winner))
    torch.testing.assert_close(out, expected)
    assert out[0, 0, 0, 0] == 0.5 and (out[0, 1:, 0, 0] == 0).all()


class BandHeadNet(nn.Module):
    """A head that reads its ``fusion`` map averaged over time and over two frequency bands,
    as MusicBrainNet's band-pooled style heads do. Label 0 weighs only the upper band's
    channels, label 1 only the lower band's."""

    def __init__(self):
        super().__init__()
        self.fusion = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU())
        self.fc = nn.Linear(8, 2)
        with torch.no_grad():
            self.fc.weight.zero_()
            self.fc.weight[0, 1::2] = 1.0   # features are [c0b0, c0b1, c1b0, ...]: band 1 = upper
            self.fc.weight[1, 0::2] = 1.0
            self.fc.bias.zero_()

    def forward(self, x):
        return self.fc(F.adaptive_avg_pool2d(self.fusion(x), (2, 1)).flatten(1))


def test_cell_weighting_keeps_a_band_heads_frequency_weights():
    # Grad-CAM's channel weight averages a band head's gradient over the whole map, so the
    # label that reads only the upper band still lights the lower one; cell weighting
    # (gradient x activation per cell) confines it to the rows its head reads.
    torch.manual_seed(0)
    model = BandHeadNet().eval()
    spec = torch.rand(2, 1, 16, 12) + 0.5
    maps = {}
    for weighting in WEIGHTING_MODES:
        with FMGradCAM(model, k=1, weighting=weighting, refine="none") as cam:
            res = cam(spec, targets=[LabelTarget(0)])
        assert res.extra["weighting"] == weighting
        maps[weighting] = res.maps[:, 0]
    cell, channel = maps["cell"], maps["channel"]
    assert cell[:, :8].max() == 0.0 and np.allclose(cell[:, 8:].max(axis=(1, 2)), 1.0)
    assert channel[:, :8].max() > 0.5      # the lower band: lit by the channel weighting


def test_cell_weighting_sums_to_the_linear_heads_logit():
    # With a linear head on an average pool, gradient x activation summed over cells and
    # channels is the logit less the bias: the cell map is an exact decomposition.
    torch.manual_seed(0)
    model = BandHeadNet().eval()
    with torch.no_grad():
        model.fc.weight.normal_()
        model.fc.bias.fill_(0.3)
    spec = torch.randn(2, 1, 16, 12)
    with FMGradCAM(model, k=1, weighting="cell") as cam:
        logits, act, grads, _ = cam.forward_and_grads(spec, [LabelTarget(0)])
        signed = cam.label_maps(act, grads)[:, 0]
    total = signed.sum(dim=(1, 2)) * act.shape[1]
    np.testing.assert_allclose(total.numpy(), logits[:, 0].numpy() - 0.3, rtol=1e-5, atol=1e-5)


def test_cell_and_channel_weighting_agree_under_a_global_pool():
    # MusicBrainNet's AI/human head reads the global average pool of the fused map: every cell
    # of a channel has the same gradient, so the two weightings give the same map.
    from musicbrain_cli.features import FrontEndConfig
    from musicbrain_cli.model.config import ModelConfig
    from musicbrain_cli.model.net import build_model
    from musicbrain_cli.taxonomy import Taxonomy

    taxonomy = Taxonomy.from_groups([("source", ["human", "ai"], True),
                                     ("period", ["Baroque", "Classical", "Romantic"], True)])
    fe = FrontEndConfig(n_bins=64, window_s=2.56, hop_s=1.28)
    spec = torch.randn(2, *fe.shape, generator=torch.Generator().manual_seed(1))
    for bands, same in ((0, {0, 1, 2, 3, 4}), (4, {0, 1})):
        torch.manual_seed(0)
        model = build_model(ModelConfig(front_end=fe, taxonomy=taxonomy, style_bands=bands)).eval()
        targets = [LabelTarget(i) for i in range(5)]
        out = {}
        for weighting in WEIGHTING_MODES:
            with FMGradCAM(model, weighting=weighting) as cam:
                logits, act, grads, _ = cam.forward_and_grads(spec, targets)
                out[weighting] = cam.label_maps(act, grads)
        for i in range(5):
            close = torch.allclose(out["cell"][:, i], out["channel"][:, i], rtol=1e-4, atol=1e-9)
            assert close == (i in same), (bands, i)


def test_unknown_weighting_is_refused(model):
    with pytest.raises(ConfigError, match="weighting"):
        FMGradCAM(model, weighting="pixel")


# --- refinement at the spectrogram's resolution (issue 26, item 1) -------------------------


class CoarseNet(nn.Module):
    """The ``fusion`` layer sees the input pooled 4 x 4 (a coarse CAM grid); label 0 reads
    the upper half of the rows, label 1 the lower half."""

    def __init__(self):
        super().__init__()
        self.stem = nn.AvgPool2d(4)
        self.fusion = nn.Conv2d(1, 2, 1)
        with torch.no_grad():
            self.fusion.weight.fill_(1.0)
            self.fusion.bias.zero_()

    def forward(self, x):
        a = torch.relu(self.fusion(self.stem(x)))          # [B, 2, F/4, T/4]
        h = a.shape[2] // 2
        return torch.stack([a[:, 0, h:].mean(dim=(1, 2)), a[:, 1, :h].mean(dim=(1, 2))], dim=1)


def test_refined_map_lands_on_the_click_inside_a_coarse_cell():
    """A click at one frame of one row: the coarse map can only mark its 4 x 4 cell (blurred
    further by upsampling); the refined map marks the click's own cell."""
    spec = torch.zeros(1, 1, 16, 32)
    spec[0, 0, 13, 21] = 5.0                                # label 0's half (rows 8..15)
    with FMGradCAM(CoarseNet(), k=1, refine="none") as cam:
        coarse = cam(spec).fused()[0]
    with FMGradCAM(CoarseNet(), k=1, refine="gradient-input") as cam:
        res = cam(spec)
    fine = res.fused()[0]
    assert res.extra["refine"] == "gradient-input" and res.labels[0, 0] == 0
    assert np.unravel_index(fine.argmax(), fine.shape) == (13, 21)
    assert fine[13, 21] == pytest.approx(1.0) and fine.sum() == pytest.approx(1.0)
    assert (coarse > 0.1).sum() >= 16 and coarse.sum() > 8    # a whole 4 x 4 cell, blurred


def test_blur_refinement_credits_fine_structure_not_a_smooth_level():
    """Above the window's blurred copy, the inside of a broad raised region has no fine
    structure and a one-row ridge (a partial) has; above the floor both are credited."""
    spec = torch.zeros(1, 1, 32, 64)
    spec[0, 0, 16:32, 0:24] = 3.0                             # a broad level in label 0's half
    spec[0, 0, 26, 32:64] = 3.0                               # a one-row ridge
    with FMGradCAM(CoarseNet(), k=1, refine="gradient-input", destripe=0) as cam:
        floor = cam(spec).fused()[0]
    with FMGradCAM(CoarseNet(), k=1, refine="gradient-blur", destripe=0) as cam:
        res = cam(spec)
    blur = res.fused()[0]
    assert res.extra["refine"] == "gradient-blur" and res.labels[0, 0] == 0
    inside, ridge = (slice(23, 32), slice(0, 17)), (26, slice(40, 64))   # 2 sigma from any edge
    assert floor[inside].mean() > floor[ridge].mean()                   # the floor credits the level most
    assert blur[inside].mean() < 0.1 * blur[ridge].mean()               # the blur the ridge


def test_refinement_keeps_labels_exclusive_and_leaves_the_model_alone(model, spec):
    with FMGradCAM(model, k=3, refine="none") as cam:
        plain = cam(spec)
    with FMGradCAM(model, k=3, refine="gradient-input") as cam:
        fine = cam(spec)
    assert all(p.grad is None for p in model.parameters())       # no .grad written
    np.testing.assert_array_equal(fine.labels, plain.labels)
    np.testing.assert_allclose(fine.logits, plain.logits, rtol=1e-6)
    assert fine.maps.shape == plain.maps.shape and 0.0 <= fine.maps.min() and fine.maps.max() <= 1.0
    assert ((fine.maps > 0).sum(axis=1) <= 1).all()              # still one label per cell
    # a cell can only keep saliency where its label already had some
    assert not ((fine.maps > 0) & (plain.maps == 0)).any()
    with pytest.raises(ConfigError, match="'sharp'"):
        FMGradCAM(model, refine="sharp")


# --- the stride pattern of the input gradient (issue 26, session 18) -------------------------


def test_stride_profile_removes_a_periodic_pattern_and_keeps_the_music():
    """A map whose columns carry a fixed +/-40 % pattern of period 8 (what a patchify stem
    leaves) on top of content that doubles at frame 250: divided by its stride profile, the
    pattern is gone and the step is still there."""
    from musicbrain_cli.explain import stride_profile

    t = 500
    rng = np.random.default_rng(0)
    content = torch.tensor(rng.uniform(0.5, 1.5, (1, 1, 16, t)), dtype=torch.float32)
    content[..., 250:] *= 2.0
    pattern = torch.tensor(1.0 + 0.4 * np.cos(2 * np.pi * np.arange(t) / 8), dtype=torch.float32)
    fine = content * pattern
    clean = (fine / stride_profile(fine, 8)).sum(dim=(0, 1, 2)).numpy()
    raw = fine.sum(dim=(0, 1, 2)).numpy()

    def folded_spread(mass):          # how much the per-phase means differ (0: no pattern)
        per_phase = mass[:496].reshape(-1, 8).mean(axis=0)
        return per_phase.max() / per_phase.min() - 1.0

    assert folded_spread(raw) > 1.0 and folded_spread(clean) < 0.05
    assert clean[250:].mean() / clean[:250].mean() == pytest.approx(2.0, rel=0.05)


def test_stride_profile_is_bounded_and_leaves_short_or_silent_windows_alone():
    from musicbrain_cli.explain import stride_profile
    from musicbrain_cli.explain.fmgcam import STRIDE_MAX_CORRECTION

    short = torch.rand(2, 1, 8, 100)
    assert torch.equal(stride_profile(short, 32), torch.ones(2, 1, 1, 100))   # 3 periods only
    sparse = torch.zeros(1, 1, 8, 320)
    sparse[..., ::32] = 1.0            # content at one phase only: the others' medians are 0
    profile = stride_profile(sparse, 32)
    assert profile.min() >= 1 / STRIDE_MAX_CORRECTION and profile.max() <= STRIDE_MAX_CORRECTION
    assert torch.isfinite(profile).all()


def test_refinement_removes_the_stride_pattern_by_default(model):
    from musicbrain_cli.explain import DEFAULT_DESTRIPE

    # long enough in time for DEFAULT_DESTRIPE's profile (STRIDE_MIN_PERIODS periods)
    spec = torch.from_numpy(np.random.default_rng(2).standard_normal((2, 1, 20, 8 * DEFAULT_DESTRIPE))
                            .astype(np.float32))
    with FMGradCAM(model, k=3) as cam:
        default = cam(spec)
    with FMGradCAM(model, k=3, destripe=0) as cam:
        kept = cam(spec)
    with FMGradCAM(model, k=3, refine="none", destripe=8) as cam:
        plain = cam(spec)
    assert default.extra["destripe"] == DEFAULT_DESTRIPE > 0 and kept.extra["destripe"] == 0
    assert plain.extra["destripe"] == 0                 # nothing to destripe without refinement
    np.testing.assert_array_equal(default.labels, kept.labels)
    assert ((default.maps > 0) == (kept.maps > 0)).all()        # same cells, rescaled columns
    assert not np.allclose(default.maps, kept.maps)
    with pytest.raises(ConfigError, match="destripe"):
        FMGradCAM(model, destripe=-1)


@pytest.mark.parametrize("refine", ["gradient-input", "none"])
def test_a_windows_map_does_not_depend_on_the_other_windows_of_its_batch(model, refine):
    """The scan explains its windows one at a time (issue 27: a batch's backward graph was
    the peak memory with a long track); that must give the maps a batch gives."""
    from musicbrain_cli.explain import DEFAULT_DESTRIPE

    spec = torch.from_numpy(np.random.default_rng(3).standard_normal((3, 1, 20, 8 * DEFAULT_DESTRIPE))
                            .astype(np.float32))
    with FMGradCAM(model, k=3, refine=refine) as cam:
        together = cam(spec)
        alone = [cam(spec[i:i + 1]) for i in range(3)]
    np.testing.assert_allclose(np.concatenate([r.maps for r in alone]), together.maps,
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(np.concatenate([r.labels for r in alone]), together.labels)


def test_evaluates_refine_choices_are_fmgcams():
    from musicbrain_cli.cli import main
    from musicbrain_cli.explain import REFINE_MODES

    evaluate = main.commands["evaluate"]
    option = next(p for p in evaluate.params if p.name == "cam_refine")
    assert tuple(option.type.choices) == REFINE_MODES
