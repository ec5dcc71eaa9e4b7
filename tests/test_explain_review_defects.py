"""Defects found in review of the CAM family (explain/base.py, explain/fmgcam.py) and the
report figures (report/figures.py). Each test failed before its fix."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from musicbrain_cli.explain import FMGradCAM, GradCAM, LabelTarget


class PatchNet(nn.Module):
    """MusicBrainNet's geometry in miniature: a patchify stem (kernel = stride = 8 frames, no
    padding) on a window whose frame count is not a multiple of 8, so the last frames are
    never read (the shipped model reads 496 of its 500 frames). The head sums the positive
    activations, so the Grad-CAM map is the activation itself."""

    def __init__(self):
        super().__init__()
        self.fusion = nn.Conv2d(1, 1, kernel_size=(1, 8), stride=(1, 8), bias=False)
        with torch.no_grad():
            self.fusion.weight.fill_(1.0 / 8)

    def forward(self, x):
        return torch.relu(self.fusion(x)).mean(dim=(1, 2, 3))[:, None].repeat(1, 2)


@pytest.mark.parametrize("cam_class,kw", [(GradCAM, {}), (FMGradCAM, {"k": 1, "refine": "none"})])
def test_coarse_map_sits_on_the_frames_its_cells_read_and_not_on_unread_frames(cam_class, kw):
    """84 frames, 10 cells of 8 frames (frames 80..83 are never read). Energy in cell 9
    (frames 72..79) and half as much in cell 1: the map must sit on those frames, and frames
    80..83 carry no saliency. Before the fix the 10 cells were stretched over all 84 frames:
    each cell drifted late (cell 9 centred on frame 79.3, not 75.5) and the unread frames
    carried the full map value."""
    spec = torch.zeros(1, 1, 4, 84)
    spec[..., 72:80] = 1.0
    spec[..., 8:16] = 0.5
    with cam_class(PatchNet(), **kw) as cam:
        res = cam(spec, targets=[LabelTarget(0)]) if cam_class is GradCAM else cam(spec)
    m = res.maps[0, 0]
    assert res.extra["grid"] == (4, 10)
    assert (m[:, 80:] == 0).all(), m[0]
    column = m[0]
    np.testing.assert_allclose(column[76:80], 1.0, atol=1e-6)
    assert column[75] == pytest.approx(0.9375, abs=1e-6)
    # bilinear with half-pixel centres on 80 frames: cell i's centre is frame 8 i + 3.5;
    # cell 1 (value 0.5, frames 8..15) centred on 11.5: frames 11 and 12 read it alike
    assert column[11] == pytest.approx(0.46875, abs=1e-6) and column[12] == pytest.approx(0.46875, abs=1e-6)


def test_default_fmgcam_works_on_inference_mode_tensors():
    """BaseCAM switches inference mode off to take gradients, and plain Grad-CAM works on an
    inference tensor; FM-G-CAM's default refinement raised 'Setting requires_grad=True on
    inference tensor' (a spectrogram from Detector.analyse_windows / predict_track is one)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1),
                          nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)).eval()
    spec = torch.randn(2, 1, 8, 16)
    with FMGradCAM(model, layer="2", k=2) as cam:
        expected = cam(spec)
        with torch.inference_mode():
            inside = cam(spec.clone())
        with torch.inference_mode():
            made_inside = spec.clone()
        outside = cam(made_inside)
    np.testing.assert_allclose(inside.maps, expected.maps, atol=1e-6)
    np.testing.assert_allclose(outside.maps, expected.maps, atol=1e-6)


@pytest.mark.parametrize("index", [np.int64(2), torch.tensor(2)], ids=["numpy-int", "0-d-tensor"])
def test_scalar_label_target_explains_every_sample(index):
    """LabelTarget(np.int64(2)) (e.g. an index from argmax / a numpy array) explained sample 0
    only: the other windows got all-zero maps while labels said they explain label 2."""
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1),
                          nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)).eval()
    spec = torch.randn(3, 1, 8, 16)
    with GradCAM(model, layer="2") as cam:
        expected = cam(spec, targets=[LabelTarget(2)])
        got = cam(spec, targets=[LabelTarget(index)])
    np.testing.assert_allclose(got.maps, expected.maps, atol=1e-6)
    assert got.labels.tolist() == [[2], [2], [2]]


def test_label_target_with_wrong_number_of_indices_is_refused():
    from musicbrain_cli.errors import InputError

    logits = torch.zeros(3, 4)
    with pytest.raises(InputError, match="3"):
        LabelTarget([1])(logits)


def test_fmgcam_figure_shows_saliency_on_every_mel_row():
    """The figure resampled the 256 Slaney-mel rows onto 256 HTK-mel rows by nearest bin, so
    18 rows (618 Hz to 2.97 kHz among them) were never drawn: saliency on such a row (the
    refined map is at the spectrogram's own resolution) left the figure identical to one with
    no saliency at all."""
    from musicbrain_cli.features import FrontEndConfig, bin_frequencies, frame_times
    from musicbrain_cli.report.figures import fmgcam_figure

    fe = FrontEndConfig()
    freqs, times = bin_frequencies(fe), frame_times(fe)[:50]
    row = int(np.argmin(np.abs(freqs - 2134.5)))          # a row the old resampling dropped
    spec = np.full((freqs.size, times.size), -60.0)
    none = np.zeros((2, freqs.size, times.size))
    one_row = none.copy()
    one_row[0, row, 10:40] = 1.0
    blank = fmgcam_figure(spec, none, ["a", "b"], times, freqs)
    marked = fmgcam_figure(spec, one_row, ["a", "b"], times, freqs)
    assert marked != blank
    # and a partial on that row is drawn in the grey spectrogram
    partial = spec.copy()
    partial[row] = 0.0
    assert fmgcam_figure(partial, none, ["a", "b"], times, freqs) != blank


def test_shipped_geometry_maps_stop_at_the_last_frame_the_stem_reads():
    """The default front end (256 bins x 500 frames) and MusicBrainNet's 2 x 8 stem: the
    fused grid is 64 x 31 and covers rows 0-255 and frames 0-495; the model's output does not
    depend on frames 496-499, so no map may mark them (they carried the last cell's value)."""
    from musicbrain_cli.explain.base import read_extent
    from musicbrain_cli.features import FrontEndConfig
    from musicbrain_cli.model.config import ModelConfig
    from musicbrain_cli.model.net import build_model
    from musicbrain_cli.taxonomy import Taxonomy

    assert (read_extent(500, 31), read_extent(256, 64)) == (496, 256)
    assert read_extent(500, 32) == 500          # a padded stride-16 network covers the axis
    assert read_extent(36, 4) == 36             # strides 8 and 9 both fit: nothing assumed
    taxonomy = Taxonomy.from_groups([("source", ["human", "ai"], True)])
    fe = FrontEndConfig()
    torch.manual_seed(0)
    model = build_model(ModelConfig(front_end=fe, taxonomy=taxonomy)).eval()
    spec = torch.randn(1, *fe.shape)
    with FMGradCAM(model, k=1, refine="none") as cam:
        res = cam(spec)
    assert res.extra["grid"] == (64, 31)
    assert (res.maps[..., 496:] == 0).all() and res.maps[..., :496].max() == pytest.approx(1.0)


def test_the_random_baseline_on_a_grid_sits_where_the_cam_does():
    """The chance baseline drawn on the CAM's grid must be placed as the CAM's own maps are:
    the 31 cells on the 496 frames the network reads, nothing on the 4 it drops (it was
    stretched over all 500, putting weight where no CAM ever does)."""
    from musicbrain_cli.explain.base import to_input_grid
    from musicbrain_cli.explain.fidelity import random_map

    m = random_map((64, 500), seed=3, grid=(4, 31))
    assert m.shape == (64, 500)
    assert np.all(m[:, 496:] == 0) and np.all(m[:, :496] > 0)
    coarse = torch.from_numpy(np.random.default_rng(3).random((1, 1, 4, 31)))
    np.testing.assert_allclose(m, to_input_grid(coarse, (64, 500))[0, 0].numpy())


def test_figures_draw_each_row_and_column_centred_on_its_own_coordinate(monkeypatch):
    """The report figure sampled its rows at mel_lo..mel_hi (centres) but drew them with edges
    there, so a row sat up to half a row off its tick; the evaluation figure put its image's
    edges at the first and last frame centres, stretching the columns by up to half a frame."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from musicbrain_cli.explain.fmgcam import plot_fmgcam
    from musicbrain_cli.features import FrontEndConfig, bin_frequencies, frame_times
    from musicbrain_cli.report import figures

    fe = FrontEndConfig()
    freqs, times = bin_frequencies(fe), frame_times(fe)[:50]
    spec = np.full((freqs.size, times.size), -60.0)
    maps = np.zeros((1, freqs.size, times.size))

    ax = Figure().add_subplot()
    plot_fmgcam(ax, spec, maps, ["a"], times=times, freqs=freqs)
    frame = float(np.median(np.diff(times)))
    x0, x1, _, _ = ax.images[0].get_extent()
    assert (x0, x1) == pytest.approx((times[0] - frame / 2, times[-1] + frame / 2))

    seen = {}
    real = Axes.imshow

    def spy(self, img, *a, **k):
        seen["rows"], seen["extent"] = img.shape[0], k["extent"]
        return real(self, img, *a, **k)

    monkeypatch.setattr(Axes, "imshow", spy)
    figures.fmgcam_figure(spec, maps, ["a"], times, freqs)
    rows, (_, _, y0, y1) = seen["rows"], seen["extent"]
    lo, hi = figures._mel(freqs[0]), figures._mel(freqs[-1])
    step = (hi - lo) / (rows - 1)              # the rows' centres are lo, lo + step, ..., hi
    assert (y0, y1) == pytest.approx((lo - step / 2, hi + step / 2))
