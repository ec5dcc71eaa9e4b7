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



@pytest.fixture
def written(monkeypatch):
    """Every text a figure writes on its axes (``Axes.text``), in order."""
    from matplotlib.axes import Axes

    out, text = [], Axes.text

    def spy(self, x, y, s, *args, **kwargs):
        out.append(s)
        return text(self, x, y, s, *args, **kwargs)

    monkeypatch.setattr(Axes, "text", spy)
    return out


def test_notes_figure_writes_each_windows_p_ai_as_the_findings_text_does(written):
    """The symbolic line's notes figure labelled each judged window "P(AI) {:.2f}": a window at
    0.996 (the human rags that reached the line's operating point scored 0.992-0.996) read
    "P(AI) 1.00", and one at 0.9255, below the doubt threshold 0.926, read "0.93" as that
    threshold does. Written as the findings' text writes them (verdict.figures)."""
    from musicbrain_cli.report.figures import notes_figure

    notes = [[0.5 * i, 0.5 * i + 0.4, 60.0 + i % 5] for i in range(12)]
    finding = {"threshold": 0.9910650064249077, "doubt_threshold": 0.9261034933007606,
               "windows": [{"start_s": 10.0 * k, "duration_s": 10.0, "heard": notes, "notes": 12,
                            "in_domain": True, "p_ai": p} for k, p in enumerate((0.996, 0.9255, 0.4))]}
    assert notes_figure(finding).startswith(b"\x89PNG")
    assert [s for s in written if s.startswith("P(AI)")] == ["P(AI) 0.996", "P(AI) 0.925", "P(AI) 0.40"]


def test_notes_figure_never_calls_a_window_judged_when_the_line_was_not_applicable(written):
    """basic-pitch failed on a later window: the finding is not applicable (the line judged
    nothing), yet the windows scored before the failure were labelled "P(AI) x" under the
    legend "notes heard, window judged" (review of session 47)."""
    from musicbrain_cli.report.figures import notes_figure

    notes = [[0.5 * i, 0.5 * i + 0.4, 60.0 + i % 5] for i in range(12)]
    window = {"start_s": 0.0, "duration_s": 10.0, "heard": notes, "notes": 12,
              "in_domain": True, "p_ai": 0.42}
    notes_figure({"applicable": False, "threshold": 0.99, "doubt_threshold": 0.93,
                  "windows": [window]})
    assert [s for s in written if s.startswith("P(AI)")] == [
        "P(AI) 0.42, not judged: line not applicable"]
    written.clear()
    notes_figure({"applicable": True, "threshold": 0.99, "doubt_threshold": 0.93,
                  "windows": [window]})
    assert [s for s in written if s.startswith("P(AI)")] == ["P(AI) 0.42"]


@pytest.fixture
def steps(monkeypatch):
    """The ``(values, edges)`` of every ``Axes.stairs`` a figure draws."""
    from matplotlib.axes import Axes

    out, stairs = [], Axes.stairs

    def spy(self, values, edges=None, *args, **kwargs):
        out.append((np.asarray(values, dtype=float), np.asarray(edges, dtype=float)))
        return stairs(self, values, edges, *args, **kwargs)

    monkeypatch.setattr(Axes, "stairs", spy)
    return out


def _value_at(step, t):
    values, edges = step
    i = np.searchsorted(edges, t, side="right") - 1
    return values[i] if 0 <= i < values.size else np.nan


def test_timeline_draws_no_probability_over_the_silence_between_two_passages(steps):
    """The silence between two passages is not read (intake.iter_windows): the windows of a
    track with 30 s of music, 60 s of silence and 30 s of music start at 0-20 s and 90-110 s.
    The window at 20 s (20-30 s) was drawn up to the next start, 90 s: 60 s of audio no window
    read stood at its P(AI), 0.9, in the region labelled "AI"."""
    starts = [0.0, 5.0, 10.0, 15.0, 20.0, 90.0, 95.0, 100.0, 105.0, 110.0]
    p_ai = [0.1, 0.1, 0.1, 0.1, 0.9, 0.1, 0.1, 0.1, 0.1, 0.1]
    timeline_figure(starts, p_ai, window_s=10.0, threshold=0.5, band=(0.35, 0.65),
                    duration_s=120.0)
    (step,) = steps
    assert _value_at(step, 25.0) == 0.9                  # the window's own seconds
    for t in (30.5, 50.0, 89.5):                         # silence no window read
        assert np.isnan(_value_at(step, t)), t
    assert _value_at(step, 92.0) == 0.1
    assert step[1][0] == 0.0 and step[1][-1] == 120.0
    # contiguous windows (the ordinary case) still step from one start to the next
    steps.clear()
    timeline_figure(starts[:5], p_ai[:5], window_s=10.0)
    assert steps[0][1].tolist() == [0.0, 5.0, 10.0, 15.0, 20.0, 30.0]


def test_timeline_names_no_ai_region_when_the_ai_boundary_lies_above_1(written):
    """A model whose `ai` boundary lies above 1 (a human validation clip at 1: finalize's
    threshold is not capped) calls nothing `ai`: a P(AI) of 1.0 is inconclusive. The timeline
    wrote "AI" at 1.0, inside the abstention band, as if such a window were called AI."""
    from musicbrain_cli.verdict import VerdictPolicy, decide

    verdict = decide(1.0, [1.0, 1.0], policy=VerdictPolicy(threshold=0.95, band=0.1))
    assert verdict.label == "inconclusive" and verdict.band[1] > 1.0
    timeline_figure([0.0, 5.0], [1.0, 1.0], window_s=10.0, threshold=verdict.threshold,
                    band=verdict.band)
    assert "AI" not in written and "inconclusive" in written
    written.clear()
    timeline_figure([0.0, 5.0], [1.0, 1.0], window_s=10.0, threshold=0.5, band=(0.4, 0.6))
    assert "AI" in written


def test_timeline_ends_a_repeated_passages_window_where_its_sound_ends(steps):
    """A passage shorter than a window is read as one window, its sound repeated to fill it
    (intake.iter_windows): 20 s of music, 20 s of silence, 8 s of music, 12 s of silence
    gives windows at 0, 5, 10 and 40 s, the last holding 40-48 s. Its step ran to 50 s, two
    seconds of silence at its P(AI), where the report's coverage says 40-48 s was analysed."""
    from musicbrain_cli.report.writer import _timeline_png

    track = {"input": {"decoded_duration_s": 60.0},
             "verdict": {"threshold": 0.5, "band": [0.4, 0.6]},
             "timeline": {"window_start_s": [0.0, 5.0, 10.0, 40.00004535], "window_s": 10.0,
                          "p_ai": [0.1, 0.1, 0.1, 0.9], "padded": [False, False, False, True],
                          "quiet": [False] * 4,
                          "sound_s": [[0.0, 20.0], [40.00004535, 48.0]]}}
    assert _timeline_png(track).startswith(b"\x89PNG")
    (step,) = steps
    assert _value_at(step, 45.0) == 0.9
    assert np.isnan(_value_at(step, 49.0))
    assert step[1][-1] == 48.0
    assert np.isnan(_value_at(step, 30.0))               # the silence between the passages
    # a record without the passages (before 0.3.6) keeps each window's whole span
    steps.clear()
    del track["timeline"]["sound_s"]
    _timeline_png(track)
    assert steps[0][1][-1] == pytest.approx(50.0, abs=1e-3)


def test_fmgcam_draws_the_lowest_and_highest_bins_and_the_first_frame():
    """The axes frame was drawn over the image: the lowest and highest bins (40 Hz and
    10.9 kHz on the front end's 256 rows, about 1.3 pixels each) and the first frame were
    covered by it, so saliency there was not shown at all."""
    from musicbrain_cli.features import FrontEndConfig, bin_frequencies, frame_times
    from musicbrain_cli.report.figures import MAX_ALPHA

    fe = FrontEndConfig()
    freqs, times = bin_frequencies(fe), frame_times(fe)
    spec = np.full((freqs.size, times.size), -20.0)      # one level: white under the overlay
    for cells, labels in (((0, slice(None)), ["low"]), ((-1, slice(None)), ["high"]),
                          ((slice(None), 0), ["first frame"])):
        sal = np.zeros((1, freqs.size, times.size))
        sal[(0, *cells)] = 1.0
        image = np.asarray(Image.open(io.BytesIO(fmgcam_figure(spec, sal, labels, times, freqs)))
                           .convert("RGB")).astype(float)
        top = np.array([int(PALETTE[0][i:i + 2], 16) for i in (1, 3, 5)])
        shown = np.abs(image - ((1 - MAX_ALPHA) * 255 + MAX_ALPHA * top)).max(axis=-1) <= 8
        along = shown.sum(axis=1 if cells[1] == slice(None) else 0).max()
        assert along > 0.8 * (image.shape[1] / 2 if cells[1] == slice(None) else image.shape[0] / 2), \
            (labels, along)
