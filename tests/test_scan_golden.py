"""Speed work must not change a result (issue 27): the scan's ``result.json`` of two example
clips, with the shipped model and signed PDF reports, equals the one recorded before the
work, apart from what is not an analysis result (time of analysis, path, software versions).

The recorded results are ``tests/golden/example_results.json``. When an analysis change is
meant (a new model, a new evidence line), record them again, from the repository root, and
say why in the commit::

    PYTHONPATH=$PWD python tests/test_scan_golden.py
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden" / "example_results.json"
#: a human recording and a neural codec's (which the decoder-artifact line also examines);
#: two of the seven, to keep the test to seconds on two cores
CLIPS = ("01-human-bach.flac", "06-ai-neural-codec-traditional.opus")
#: not analysis results: when and where it ran, with which library versions, and the model
#: card's robustness table (copied from the card unchanged; test_default_model pins it)
VOLATILE = ("analysis_time", "software", "command_line", "robustness")
#: floats may differ by summation order (a batched or threaded forward, the CPU's vector
#: kernels), not more. The absolute part is float32's: a small score from a float32 sum (the
#: domain check's 0.0085) moved by 1.2e-7 between two x86 CPUs running the same code.
RTOL, ATOL = 1e-5, 1e-6


def comparable(track: dict) -> dict:
    out = {k: v for k, v in track.items() if k not in VOLATILE}
    out["input"] = {k: v for k, v in track["input"].items() if k != "path"}
    # a copy of the shipped record of real-AI measurements (test_verdict pins it to the
    # shipped models), not a result of analysing these clips
    out["verdict"] = {k: v for k, v in track["verdict"].items() if k != "measured_on_real_ai"}
    return out


def scan_examples(tmp: Path) -> dict[str, dict]:
    from musicbrain_cli.model.inference import Detector
    from musicbrain_cli.report.keys import init_keys
    from musicbrain_cli.scan.batch import ScanOptions, scan

    result = scan([ROOT / "examples" / "catalog" / c for c in CLIPS], tmp / "out",
                  Detector.from_pretrained("default", device="cpu"), keys=init_keys(tmp / "keys"),
                  options=ScanOptions(formats=("pdf",)))
    assert result.n_failed == 0, [e.error for e in result.entries]
    tracks = []
    for p in (tmp / "out").glob("*/result.json"):
        tracks.append(json.loads(p.read_text()))
        for line in tracks[-1]["evidence"]:      # every figure a line names is in the folder
            if line["details"].get("figure"):
                assert (p.parent / "figures" / line["details"]["figure"]).is_file(), line["line"]
    return {t["input"]["file_name"]: comparable(t) for t in tracks}


def differences(got, want, where: str = "") -> list[str]:
    """Where ``got`` differs from ``want``: floats within RTOL/ATOL, all else exactly."""
    if isinstance(want, dict) and isinstance(got, dict):
        out = [f"{where}.{k}: missing" for k in want if k not in got]
        out += [f"{where}.{k}: unexpected" for k in got if k not in want]
        for k in want:
            if k in got:
                out += differences(got[k], want[k], f"{where}.{k}")
        return out
    if isinstance(want, list) and isinstance(got, list):
        if len(got) != len(want):
            return [f"{where}: {len(got)} items, recorded {len(want)}"]
        return [d for i, (g, w) in enumerate(zip(got, want)) for d in differences(g, w, f"{where}[{i}]")]
    if (isinstance(want, float) and isinstance(got, (int, float)) and not isinstance(got, bool)):
        return [] if math.isclose(got, want, rel_tol=RTOL, abs_tol=ATOL) else \
            [f"{where}: {got!r}, recorded {want!r}"]
    return [] if got == want else [f"{where}: {got!r}, recorded {want!r}"]


@pytest.mark.slow
def test_example_results_are_unchanged(tmp_path):
    want = json.loads(GOLDEN.read_text())
    got = scan_examples(tmp_path)
    assert sorted(got) == sorted(want)
    diffs = [d for name in want for d in differences(got[name], want[name], name)]
    assert not diffs, "\n".join(diffs[:40])


def test_the_comparison_sees_a_changed_probability():
    want = {"verdict": {"p_ai": 0.25, "label": "human"}, "timeline": {"p_ai": [0.1, 0.2]}}
    same = json.loads(json.dumps(want))
    same["verdict"]["p_ai"] *= 1 + 1e-7
    assert differences(same, want) == []
    moved = json.loads(json.dumps(want))
    moved["timeline"]["p_ai"][1] = 0.2001
    assert differences(moved, want) == [".timeline.p_ai[1]: 0.2001, recorded 0.2"]
    moved["verdict"]["label"] = "ai"
    assert ".verdict.label: 'ai', recorded 'human'" in differences(moved, want)


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        results = scan_examples(Path(tmp))
    GOLDEN.parent.mkdir(exist_ok=True)
    GOLDEN.write_text(json.dumps(results, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
    print(f"recorded {len(results)} results in {GOLDEN}", file=sys.stderr)
