"""Review session 46 (area: explain): explanations, their physical checks, and how the
report states them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from musicbrain_cli.alignment.overlap import (HarmonicOverlap, Note, OnsetOverlap,
                                              harmonic_overlap, note_onsets, onset_overlap)
from musicbrain_cli.explain import FMGradCAM, LabelTarget
from musicbrain_cli.report.html import alignment_finding


class _NegativeEvidence(nn.Module):
    """Label 0's logit falls as the (non-negative) activation grows: its Grad-CAM weights
    are all negative, so FM-G-CAM's ReLU leaves an all-zero map."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.act = nn.ReLU()

    def forward(self, x):
        a = self.act(self.conv(x)).mean(dim=(1, 2, 3))
        return torch.stack([-a, a], dim=1)


def test_an_empty_heatmap_is_not_reported_as_no_notes_or_no_onsets():
    torch.manual_seed(0)
    n_rows, n_frames = 64, 100
    spec = torch.rand(1, 1, n_rows, n_frames)
    freqs, times = np.geomspace(50, 8000, n_rows), np.arange(n_frames) * 0.02
    with FMGradCAM(_NegativeEvidence(), layer="act", k=1, refine="none") as cam:
        saliency = cam(spec, targets=[LabelTarget(0)], freqs=freqs, times=times).fused()[0]
    assert not saliency.any()                      # the premise: an all-zero map
    notes = [Note(0.2, 1.5, 57.0), Note(0.6, 1.9, 64.0)]
    harmonic = harmonic_overlap(saliency, freqs=freqs, times=times, notes=notes)
    onset = onset_overlap(saliency, times=times, onsets=note_onsets(notes))
    assert harmonic.frames > 0 and onset.onsets == 2    # notes sounded, onsets were found
    text = alignment_finding({"harmonic": HarmonicOverlap.combine([harmonic]).to_dict(),
                              "onset": OnsetOverlap.combine([onset]).to_dict()})
    assert "no sounding notes were found" not in text
    assert "no onsets were found" not in text
    assert ("whether it follows the partials of the notes could not be checked (the heatmap "
            "holds no saliency where the notes sound)") in text
    assert "whether it follows the onsets could not be checked (the heatmap holds no saliency)" in text
    assert "follows the" not in text.replace("whether it follows the", "")


def test_a_heatmap_flat_over_time_is_not_reported_as_no_onsets():
    times = np.arange(100) * 0.02
    flat = np.ones((8, 100))                       # saliency, but no frame above another
    onset = onset_overlap(flat, times=times, onsets=[0.5, 1.0, 1.5])
    assert onset.onsets == 3
    text = alignment_finding({"onset": OnsetOverlap.combine([onset]).to_dict()})
    assert "no onsets were found" not in text
    assert "the heatmap has no saliency peak (it is flat over time)" in text


def test_the_pooled_alignment_is_headed_by_the_windows_it_was_measured_on():
    """The alignment sentences pool the explained windows only (3 of a track's windows by
    default); the section headed them 'Over the whole recording'."""
    from musicbrain_cli.report.html import render_report_html
    from musicbrain_cli.report.schema import example_track

    track = example_track(n_windows=30)            # a 5-minute recording, 3 windows explained
    track["alignment"]["windows"] = len(track["explanations"])
    html = render_report_html(track, {})
    start = html.index('id="explanations"')
    section = html[start:html.index("</section>", start)]
    assert "whole recording" not in section
    assert f"<h3>Over the {len(track['explanations'])} explained windows together</h3>" in section


def test_the_share_on_partials_says_it_is_of_the_frames_where_notes_sound():
    """The harmonic share is measured over the frames where a note sounds only; the report
    said '100% of the saliency lies on the partials' of a map with 5% of its saliency there
    (the rest in frames without a note)."""
    from musicbrain_cli.alignment.overlap import partial_mask
    from musicbrain_cli.report.html import harmonic_sentence

    freqs, times = np.geomspace(50, 8000, 64), np.arange(500) * 0.02
    notes = [Note(0.0, 2.0, 57.0)]                 # one note, in the first 2 s of 10
    mask, sounding = partial_mask(freqs, times, notes)
    saliency = np.zeros((64, 500))
    saliency[mask] = 1.0                           # on its partials while it sounds ...
    saliency[:, ~sounding] = 1.0                   # ... and everywhere after it
    assert saliency[mask].sum() / saliency.sum() < 0.06
    text = harmonic_sentence(harmonic_overlap(saliency, freqs=freqs, times=times,
                                              notes=notes).to_dict())
    assert text.startswith("In the frames where notes sound, 100% of the saliency lies on the "
                           "partials of the notes played")


def test_a_window_with_an_empty_heatmap_says_so_beside_its_blank_figure():
    """An all-zero map is drawn as a blank figure (min-max keeps it zero); the window's
    section said nothing of it, or only '0% of the note onsets fall on a saliency peak,
    where chance would give 0%'."""
    from musicbrain_cli.report.html import render_report_html
    from musicbrain_cli.report.schema import example_track

    times = np.arange(500) * 0.02
    onset = onset_overlap(np.zeros((8, 500)), times=times, onsets=[1.0, 2.0]).to_dict()
    track = example_track(n_windows=30)
    empty, full = track["explanations"][0], track["explanations"][1]
    empty["onset"] = onset
    empty["harmonic"] = {"share": None, "chance": 0.3, "mass": 0.0, "frames": 400}
    full["onset"]["mass"] = 12.5
    html = render_report_html(track, {})
    start = html.index('id="explanations"')
    section = html[start:html.index("</section>", start)]
    assert section.count("heatmap is empty") == 1
    first, second = section.split('<div class="explanation">')[1:3]
    assert "This window&#39;s heatmap is empty" in first and "empty" not in second


@pytest.mark.parametrize("share, chance, lift", [(0.296, 0.215, "1.38"),    # 1.3767
                                                 (0.29995, 0.2, "1.49")])   # 1.49975
def test_the_measured_sentence_and_the_conclusion_write_one_lift(share, chance, lift):
    """The harmonic sentence rounded the lift ('1.38 times chance') and the conclusion after
    it cut it ('1.37 times'): two figures for one measurement side by side; and a lift of
    1.4998 read '1.50 times chance' beside 'too little to call a link'."""
    from musicbrain_cli.report.html import alignment_sentences

    measured, conclusion = alignment_sentences({"harmonic": {"share": share, "chance": chance}})
    assert f"({lift} times chance)" in measured
    assert f"only slightly more often than chance ({lift} times)" in conclusion
