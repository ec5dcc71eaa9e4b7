"""What the artifact line's human side covers (issue 22): measured from the development rows,
written into a fitted line without touching anything else."""

from __future__ import annotations

import json

import pytest

from musicbrain_cli.artifacts.detector import ArtifactDetector
from musicbrain_cli.artifacts.fit import add_human_coverage, human_coverage
from musicbrain_cli.errors import TrainingError


def _row(i, *, split="train", label=0, rate=44100, bw=16000.0, na=None):
    return {"id": f"r{i}", "split": split, "label": label, "rate": rate, "bandwidth_hz": bw, "na": na}


def test_coverage_is_the_human_development_rates_and_a_low_bandwidth_percentile():
    rows = [_row(i, bw=10000.0 + 100 * i) for i in range(100)]
    rows += [_row(200, split="validation", rate=22050, bw=11000.0),
             _row(201, split="validation", rate=48000, bw=20000.0)]
    # none of these may widen or narrow it: AI rows, test packages, rows the line refused
    rows += [_row(300, label=1, rate=16000, bw=4000.0), _row(301, split="test", rate=8000, bw=3000.0),
             _row(302, split="test-latest", rate=96000, bw=40000.0),
             _row(303, rate=11025, bw=100.0, na="too band-limited")]
    cov = human_coverage(rows)
    assert (cov["min_rate_hz"], cov["max_rate_hz"]) == (22050, 48000)
    assert cov["rates_hz"] == [22050, 44100, 48000] and cov["n_uploads"] == 102
    # the narrowest band of the development rows (not the AI, test or refused rows' 3-4 kHz)
    assert cov["min_bandwidth_hz"] == 10000.0
    assert "never exonerate" in cov["rule"]


def test_coverage_needs_bandwidths_and_human_rows():
    with pytest.raises(TrainingError, match="bandwidth_hz"):
        human_coverage([{**_row(0), "bandwidth_hz": None}])
    with pytest.raises(TrainingError, match="no applicable human"):
        human_coverage([_row(0, label=1), _row(1, na="silent")])


def test_added_coverage_changes_nothing_else_and_loads(tmp_path):
    from musicbrain_cli.artifacts.detector import PACKAGE_DIR

    for name in ("model.json", "card.json"):
        (tmp_path / name).write_text((PACKAGE_DIR / "default" / name).read_text())
    before = {n: json.loads((tmp_path / n).read_text()) for n in ("model.json", "card.json")}
    rows = [_row(i, rate=32000 + 16000 * (i % 2), bw=12000.0) for i in range(10)]
    out = add_human_coverage(rows, tmp_path)
    model = json.loads((tmp_path / "model.json").read_text())
    card = json.loads((tmp_path / "card.json").read_text())
    assert model.pop("human_coverage") == out["human_coverage"] == card["summary"].pop("human_coverage")
    before["model.json"].pop("human_coverage", None)
    before["card.json"]["summary"].pop("human_coverage", None)
    assert model == before["model.json"] and card == before["card.json"]
    det = ArtifactDetector.from_pretrained(tmp_path)
    assert (det.coverage.min_rate_hz, det.coverage.max_rate_hz) == (32000, 48000)


def test_what_the_coverage_withholds_is_counted_per_held_out_split(tmp_path):
    from musicbrain_cli.artifacts.fit import outside_coverage
    from musicbrain_cli.artifacts.detector import PACKAGE_DIR

    cov = {"min_rate_hz": 16000, "max_rate_hz": 48000, "min_bandwidth_hz": 6000.0}
    held = [_row(0, split="test", rate=96000), _row(1, split="test", bw=5000.0), _row(2, split="test"),
            _row(3, split="test-final"), _row(4, split="test-final", rate=8000, na="sample rate"),
            _row(5, split="test", label=1, rate=96000)]
    out = outside_coverage(cov, held)
    assert (out["test"]["k"], out["test"]["n"]) == (2, 3)
    assert (out["test-final"]["k"], out["test-final"]["n"]) == (0, 1)    # not applicable: not counted
    for name in ("model.json", "card.json"):
        (tmp_path / name).write_text((PACKAGE_DIR / "default" / name).read_text())
    rows = [_row(i, rate=(16000, 44100, 48000)[i % 3], bw=6000.0 + i) for i in range(200)]
    # a held-out upload at 32 kHz, inside the range but at a rate no development upload had
    held.append(_row(6, split="test", rate=32000))
    assert outside_coverage(cov, held)["test"]["k"] == 2      # the range alone covers it
    written = add_human_coverage(rows, tmp_path, held_out=held)
    card = json.loads((tmp_path / "card.json").read_text())
    assert written["human_coverage"]["rates_hz"] == [16000, 44100, 48000]
    assert (card["summary"]["human_withheld_by_coverage"]["test"]["k"],
            card["summary"]["human_withheld_by_coverage"]["test"]["n"]) == (3, 4)
    assert written["human_withheld_by_coverage"] == card["summary"]["human_withheld_by_coverage"]
