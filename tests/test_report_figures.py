"""Figures: valid, deterministic PNGs; FM-G-CAM colours the right cells; bad input refused."""

import io

import numpy as np
import pytest
from PIL import Image

from musicbrain_cli.errors import ReportError
from musicbrain_cli.report.figures import PALETTE, fmgcam_figure, timeline_figure


def _cam_inputs(seed=0, f=48, t=60):
    rng = np.random.default_rng(seed)
    spec = rng.normal(-50.0, 5.0, (f, t))
    sal = np.zeros((2, f, t))
    sal[0, :10, :20] = 1.0     # label 0: low frequencies, early
    sal[1, -10:, -20:] = 0.8   # label 1: high frequencies, late
    labels = ["source/ai", "period/$baroque"]
    return spec, sal, labels, np.arange(t) * 0.05, np.geomspace(30, 11000, f)


def test_fmgcam_png_is_deterministic_and_coloured_per_label():
    args = _cam_inputs()
    png = fmgcam_figure(*args, title="window 1")
    assert png.startswith(b"\x89PNG") and png == fmgcam_figure(*args, title="window 1")
    image = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    for colour in PALETTE[:2]:
        rgb = np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)])
        # blended cells are close to the label colour: many pixels near it (legend alone is few)
        near = (np.abs(image - rgb).sum(axis=-1) < 60).sum()
        assert near > 2000, (colour, near)


def test_fmgcam_changes_when_saliency_changes():
    spec, sal, labels, times, freqs = _cam_inputs()
    a = fmgcam_figure(spec, sal, labels, times, freqs)
    sal2 = sal.copy()
    sal2[0] = 0.0
    assert a != fmgcam_figure(spec, sal2, labels, times, freqs)


@pytest.mark.parametrize("change, message", [
    (lambda a: (a[0][:, :-1],) + a[1:], "saliency"),
    (lambda a: a[:2] + (["one"],) + a[3:], "labels"),
    (lambda a: a[:4] + (a[4][::-1],), "strictly increasing"),
    (lambda a: (np.full_like(a[0], np.nan),) + a[1:], "NaN"),
])
def test_fmgcam_rejects_inconsistent_input(change, message):
    with pytest.raises(ReportError, match=message):
        fmgcam_figure(*change(_cam_inputs()))


def test_timeline_figure_deterministic_and_validated():
    starts, probs = [0.0, 2.0, 4.0, 6.0], [0.1, 0.5, 0.9, 0.7]
    png = timeline_figure(starts, probs, window_s=4.0, threshold=0.8, band=(0.35, 0.8),
                          highlight_s=[4.0])
    assert png == timeline_figure(starts, probs, window_s=4.0, threshold=0.8, band=(0.35, 0.8),
                                  highlight_s=[4.0])
    assert png != timeline_figure(starts, [0.1, 0.5, 0.2, 0.7], window_s=4.0)
    image = Image.open(io.BytesIO(png))
    width, height = image.size
    assert width > height > 100
    # opaque RGB without text chunks: no alpha for the PDF renderer to split off, and no
    # software version that would change the bytes across upgrades
    assert image.mode == "RGB" and not image.info
    with pytest.raises(ReportError, match="equal"):
        timeline_figure(starts, probs[:-1], window_s=4.0)
    with pytest.raises(ReportError, match="window_s"):
        timeline_figure(starts, probs, window_s=0.0)


def test_fmgcam_has_a_saliency_colour_bar():
    # Issue 24: a reader needs the saliency scale. With no saliency at all the image itself
    # has no overlay colour, so the full-strength overlay colour can come only from the bar.
    from musicbrain_cli.report.figures import MAX_ALPHA

    spec, sal, labels, times, freqs = _cam_inputs()
    image = np.asarray(Image.open(io.BytesIO(fmgcam_figure(spec, np.zeros_like(sal), labels,
                                                           times, freqs))).convert("RGB"))
    top = np.array([int(PALETTE[0][i:i + 2], 16) for i in (1, 3, 5)])
    full = (1 - MAX_ALPHA) * 127.5 + MAX_ALPHA * top
    near = np.abs(image.astype(int) - full).max(axis=-1) <= 6
    rows = np.nonzero(near.any(axis=1))[0]
    assert near.sum() > 50                      # a bar's end, not a legend patch's edge
    assert rows.min() > image.shape[0] * 0.7    # below the spectrogram

