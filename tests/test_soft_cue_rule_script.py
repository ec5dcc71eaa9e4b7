"""scripts/soft_cue_rule.py: the sweep takes each verdict as the one rule would at each level,
and the level is chosen by the rule fixed beforehand; a run over a small corpus made here
records what the sweep needs."""

import csv
import json

import numpy as np
import pytest
from conftest import script_module

from musicbrain_cli.verdict import VerdictPolicy


@pytest.fixture(scope="module")
def script():
    with script_module("scripts/soft_cue_rule.py", "soft_cue_rule") as mod:
        yield mod


POLICY = VerdictPolicy(threshold=0.5, band=0.1)


def _rec(source, edit, p, soft, before="ai", silence=None):
    return {"clip": f"{source}-{edit}-{p}", "source": source, "edit": edit,
            "verdict_before": before, "in_domain": True, "p_ai": list(p),
            "weights": [1.0] * len(p), "silence_s": silence or [0.0] * len(p),
            "soft_db": list(soft)}


def test_verdicts_are_taken_as_the_rule_takes_them_at_each_level(script):
    one = _rec("human", "original", [0.95], [-11.0])
    assert script.verdict_at(one, None, POLICY) == "ai"
    assert script.verdict_at(one, -10.0, POLICY) == "inconclusive"      # -11 <= -10: soft
    assert script.verdict_at(one, -12.0, POLICY) == "ai"                # not soft at -12
    # the other windows still say AI: it stands; a finding that was not AI is never touched
    two = _rec("ai", "original", [0.95, 0.97], [-30.0, -1.0])
    assert script.verdict_at(two, -10.0, POLICY) == "ai"
    assert script.verdict_at(_rec("human", "original", [0.2], [-40.0], before="human"),
                             -6.0, POLICY) == "human"
    # digital silence still counts with the soft stretches
    both = _rec("ai", "original", [0.95, 0.97], [-30.0, -1.0], silence=[0.0, 0.5])
    assert script.verdict_at(both, -10.0, POLICY) == "inconclusive"


def test_the_level_chosen_sets_aside_the_fewest_windows_and_accuses_no_human_clip(script):
    records = [
        _rec("human", "original", [0.9], [-9.0]),        # called ai unless the level is >= -9
        _rec("human", "fade_in_3s", [0.9], [-13.0]),     # unless >= -13
        _rec("ai", "original", [0.9], [-7.0]),
        _rec("ai", "original", [0.9], [-2.0]),
        _rec("ai", "fade_in_3s", [0.9], [-20.0]),
    ]
    s = script.summarise(records, POLICY, levels=(-6.0, -8.0, -10.0, -12.0, -15.0))
    assert s["edits"] == ["original", "fade_in_3s"]
    assert s["chosen_db"] == -8.0                 # -10 accuses the first human clip
    row = s["levels"]["-8"]["called_ai"]
    assert row["human"]["original"] == {"ai": 0, "clips": 1}
    assert row["ai"]["original"] == {"ai": 2, "clips": 2}
    assert s["levels"]["-6"]["called_ai"]["ai"]["original"]["ai"] == 1
    assert s["levels"]["none"]["called_ai"]["human"]["fade_in_3s"]["ai"] == 1
    assert s["levels"]["-8"]["windows_set_aside"] == {"human": 1.0, "ai": 0.0}
    # no level gets there: None, never the nearest miss
    assert script.summarise(records, POLICY, levels=(-10.0, -12.0))["chosen_db"] is None


def test_a_run_records_what_the_sweep_needs(script, tiny_model_dir, tmp_path):
    import soundfile as sf

    from musicbrain_cli.model.inference import Detector

    sr = Detector.from_pretrained(tiny_model_dir, device="cpu").config.front_end.sample_rate
    corpus = tmp_path / "ref"
    (corpus / "audio").mkdir(parents=True)
    rows = []
    rng = np.random.default_rng(0)
    for i, (source, split) in enumerate([("human", "val"), ("ai", "val"), ("human", "test")]):
        t = np.arange(8 * sr) / sr
        y = (0.4 * np.sin(2 * np.pi * 330 * t) + 0.02 * rng.standard_normal(t.size)).astype(np.float32)
        sf.write(corpus / f"audio/c{i}.wav", y, sr)
        rows.append({"path": f"audio/c{i}.wav", "source": source, "split": split})
    with (corpus / "manifest.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["path", "source", "split"])
        writer.writeheader()
        writer.writerows(rows)
    records = script.measure(corpus, str(tiny_model_dir), "val", ["original", "soft_start_30db"])
    assert [(r["source"], r["edit"]) for r in records] == [
        ("human", "original"), ("human", "soft_start_30db"), ("ai", "original"), ("ai", "soft_start_30db")]
    plain, soft = records[0], records[1]
    assert len(plain["p_ai"]) == len(plain["soft_db"]) == len(plain["weights"]) >= 1
    assert max(plain["soft_db"]) > -1.0 and min(soft["soft_db"]) < -20.0     # the edit is seen
    out = tmp_path / "sweep.json"
    result = script.main([str(corpus), "--model", str(tiny_model_dir), "--split", "val",
                          "--transforms", "original,fade_in_3s", "-o", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    assert result["edits"] == ["original", "fade_in_3s"]
    assert set(result["levels"]) == {"none", *(f"{x:g}" for x in script.LEVELS_DB)}
    with pytest.raises(SystemExit):
        script.main([str(corpus), "--model", str(tiny_model_dir), "--transforms", "nope"])
