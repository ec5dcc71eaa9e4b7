"""The per-track result that reports render (schema ``musicbrain.track/1``), by example.

:func:`example_track` builds a complete, plausible result from a seeded generator. It is
the reference for what the scan pipeline produces and what the templates read, and it
gives tests and demos a report to render without a model. Every key except ``schema`` and
``input`` is optional for rendering: a missing part gives a "not available" section.
"""

from __future__ import annotations

from musicbrain_cli import __version__

import numpy as np

TRACK_SCHEMA = "musicbrain.track/1"


def example_track(*, seed: int = 0, n_windows: int = 8, window_s: float = 4.0,
                  hop_s: float = 2.0, file_name: str = "example.flac",
                  sha256: str = "0" * 64) -> dict:
    """A complete example result (values are illustrative, not measured)."""
    rng = np.random.default_rng(seed)
    starts = [round(i * hop_s, 3) for i in range(n_windows)]
    p_ai = [round(float(p), 4) for p in rng.beta(4, 2, size=n_windows)]
    top = sorted(range(n_windows), key=lambda i: -p_ai[i])[:2]
    p_track = round(float(np.mean(p_ai)), 4)
    label = "ai" if p_track >= 0.8 else "inconclusive" if p_track >= 0.35 else "human"
    return {
        "schema": TRACK_SCHEMA,
        "input": {"path": f"/evidence/{file_name}", "file_name": file_name, "sha256": sha256,
                  "size_bytes": 1_234_567, "container": "flac", "codec": "flac",
                  "sample_rate": 44100, "channels": 2,
                  "duration_s": starts[-1] + window_s, "decoded_duration_s": starts[-1] + window_s,
                  "decoder": {"pyav": "18.0", "libavcodec": "61.19.100"},
                  "undecodable_packets": 0},
        "metadata": {"tags": {"title": ["Example"], "artist": ["Unknown"]},
                     "encoder": "reference libFLAC 1.4.3", "c2pa_present": False},
        "verdict": {"label": label, "p_ai": p_track, "threshold": 0.8, "band": [0.35, 0.8],
                    "reasons": [f"track probability {p_track:.3f} from {n_windows} windows"],
                    "error_rates": {"fpr": 0.011, "fpr_ci95": [0.006, 0.019], "fnr": 0.074,
                                    "fnr_ci95": [0.055, 0.098], "n_human": 1500, "n_ai": 900,
                                    "split": "test",
                                    "by_generator": {"notagen": {"n_ai": 300, "fnr": 0.09,
                                                                 "fnr_ci95": [0.06, 0.13]}}},
                    "ai_lines": ["content"] if label == "ai" else [],
                    "content_label": label,
                    "measured_generators": ["notagen", "neural-codec"]},
        "evidence": [
            {"line": "content", "finding": label, "in_domain": True, "can_exonerate": True,
             "p_ai": p_track, "threshold": 0.8,
             "reasons": [f"track probability {p_track:.3f} from {n_windows} windows"],
             "details": {}},
            {"line": "artifacts", "finding": "human", "in_domain": True, "can_exonerate": True,
             "p_ai": 0.03, "threshold": 0.9,
             "reasons": ["No periodic peaks of an upsampling decoder were found."],
             "details": {"sentences": ["The averaged spectrum shows no comb of peaks."]}},
            {"line": "symbolic", "finding": "no_evidence", "in_domain": True,
             "can_exonerate": False, "p_ai": 0.12, "threshold": 0.9,
             "reasons": ["basic-pitch heard the notes of 2 window(s); their statistics give a "
                         "calibrated P(AI) of 0.12 against the operating point 0.90."],
             "details": {"symbolic": {"windows": [{"start_s": 0.0, "notes": 41},
                                                  {"start_s": 10.0, "notes": 37}],
                                      "error_rates": {"false_accusation": {
                                          "k": 0, "n": 180, "rate": 0.0, "ci95": [0.0, 0.021]}}}}},
            {"line": "provenance", "finding": "no_evidence", "in_domain": False,
             "can_exonerate": False, "p_ai": None, "threshold": None,
             "reasons": ["No C2PA manifest: no evidence either way."], "details": {}}],
        "labels": [{"group": "period", "label": "baroque", "p": 0.81, "validation_ap": 0.92},
                   {"group": "period", "label": "classical", "p": 0.12, "validation_ap": 0.77},
                   {"group": "instrumentation", "label": "solo piano", "p": 0.77,
                    "validation_ap": 0.98},
                   {"group": "generator", "label": "notagen", "p": 0.64, "validation_ap": None}],
        "labels_untrained": ["composer/Schubert, Franz"],
        "timeline": {"window_start_s": starts, "window_s": window_s, "p_ai": p_ai},
        "explanations": [{"window_start_s": starts[i], "labels": ["source/ai", "period/baroque"],
                          "figure": f"fmgcam_{k}.png",
                          "harmonic": {"share": 0.41, "chance": 0.13},
                          "onset": {"concentration": 2.2, "hit_rate": 0.61, "chance_hit_rate": 0.18},
                          "energy_reference": {"harmonic": {"share": 0.31, "chance": 0.13},
                                               "onset": {"hit_rate": 0.7, "chance_hit_rate": 0.18}}}
                         for k, i in enumerate(top, start=1)],
        "alignment": {"harmonic": {"share": 0.37, "chance": 0.13},
                      "onset": {"concentration": 1.9, "hit_rate": 0.57, "chance_hit_rate": 0.18},
                      # the same checks on the spectrogram's own energy: the partials beat it,
                      # the onsets do not
                      "energy_reference": {"harmonic": {"share": 0.3, "chance": 0.13},
                                           "onset": {"hit_rate": 0.66, "chance_hit_rate": 0.18}}},
        "ood": {"score": 0.21, "threshold": 0.5, "in_domain": True},
        "robustness": [{"transform": "MP3 128 kbit/s", "roc_auc": 0.97, "fpr": 0.015,
                        "tpr": 0.91}],
        "model": {"name": "musicbrain-detector", "version": "1.0.0", "weights_sha256": "1" * 64,
                  "front_end": {"sample_rate": 22050, "n_mels": 128, "hop_length": 256},
                  "backbone": "efficientnet_b0"},
        "software": {"musicbrain": __version__, "python": "3.11", "torch": "2.11"},
        "command_line": ["musicbrain", "scan", f"/evidence/{file_name}"],
        "analysis_time": "2025-01-01T12:00:00Z",
        "options": {"device": "cpu", "formats": ["pdf", "html"]},
        "limitations": [],
    }
