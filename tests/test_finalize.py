"""Operating point and error rates of a trained model (training/finalize.py)."""

import numpy as np
import pytest

from musicbrain_cli.training.finalize import (_Clips, choose_threshold, robust_boundary,
                                              verdict_rates)
from musicbrain_cli.verdict import VerdictPolicy


def test_threshold_meets_the_fpr_target_on_validation():
    rng = np.random.default_rng(0)
    human = rng.uniform(0.0, 0.9, 200)
    ai = rng.uniform(0.6, 1.0, 200)
    p = np.concatenate([human, ai])
    is_ai = np.repeat([False, True], 200)
    t = choose_threshold(p, is_ai, fpr_target=0.01)
    assert (human >= t).mean() <= 0.01
    # the smallest such threshold: one notch lower lets a third human clip through
    assert (human >= np.sort(human)[-3]).mean() > 0.01 or t == 0.5
    assert choose_threshold(np.array([0.1, 0.2, 0.95]), np.array([False, False, True]),
                            fpr_target=0.01) == 0.5        # never below 0.5


def test_boundary_holds_the_fpr_target_on_every_version_of_the_clips():
    """A human clip that scores higher once pitch-shifted raises the `ai` boundary, so the
    false-accusation target also holds for the shifted recording."""
    rng = np.random.default_rng(1)
    human, ai = rng.uniform(0.0, 0.8, 300), rng.uniform(0.7, 1.0, 300)
    is_ai = np.repeat([False, True], 300)
    shifted_human = np.clip(human + 0.15, 0, 1)       # the shift pushes human clips up
    versions = {"as is": np.concatenate([human, ai]),
                "pitch +1 semitone": np.concatenate([shifted_human, ai])}
    boundary, each = robust_boundary(versions, is_ai, fpr_target=0.005)
    assert each["pitch +1 semitone"] > each["as is"] and boundary == each["pitch +1 semitone"]
    for p in (human, shifted_human):
        assert (p >= boundary).mean() <= 0.005


def _clips(p, windows, ood):
    n = len(p)
    return _Clips(ids=[str(i) for i in range(n)], p_ai=np.asarray(p), window_p_ai=windows,
                  probs=np.zeros((n, 2)), targets=np.zeros((n, 2)), mask=np.ones((n, 2)),
                  embeddings=np.zeros((n, 1)), in_domain=np.asarray(ood, float) <= 1.0)


def test_verdict_rates_apply_the_full_rule_with_intervals():
    policy = VerdictPolicy(threshold=0.5, band=0.1)
    p = [0.9, 0.9, 0.55, 0.1, 0.95, 0.2]
    is_ai = np.array([False, False, False, False, True, True])
    ood = [0.0, 9.0, 0.0, 0.0, 0.0, 0.0]         # the second human clip is out of domain
    rates = verdict_rates(_clips(p, [np.array([x] * 3) for x in p], ood), is_ai,
                          policy=policy, split="test")
    assert rates["counts"]["human"] == {"ai": 1, "inconclusive": 2, "human": 1}
    assert rates["fpr"] == pytest.approx(0.25) and rates["fnr"] == pytest.approx(0.5)
    lo, hi = rates["fpr_ci95"]
    assert lo < 0.25 < hi
    assert rates["inconclusive_human"] == pytest.approx(0.5)


def test_verdict_rates_split_the_miss_rate_by_generator():
    policy = VerdictPolicy(threshold=0.5, band=0.1)
    p = [0.1, 0.9, 0.9, 0.2, 0.95, 0.55]
    is_ai = np.array([False, True, True, True, True, True])
    clips = _clips(p, [np.array([x] * 3) for x in p], [0.0] * 6)
    # columns: 0 source/ai, 1 generator "a" (clips 1-3), generator "b" unknown for clip 5
    clips.targets = np.array([[0, 0], [1, 1], [1, 1], [1, 1], [1, 0], [1, 0]], float)
    clips.mask = np.array([[1, 1], [1, 1], [1, 1], [1, 1], [1, 1], [1, 0]], float)
    rates = verdict_rates(clips, is_ai, policy=policy, split="test", generators={"a": 1})
    a = rates["by_generator"]["a"]
    assert a["n_ai"] == 3 and a["fnr"] == pytest.approx(1 / 3) and a["tpr"] == pytest.approx(2 / 3)
    assert a["fnr_ci95"][0] < 1 / 3 < a["fnr_ci95"][1]
    assert "by_generator" not in verdict_rates(clips, is_ai, policy=policy, split="test")


def test_verdict_rates_state_recall_per_rhythgen_configuration():
    """Issue 21: the card states recall on RhythGen configurations held out of training,
    per configuration and pooled; other clips and human clips never count."""
    policy = VerdictPolicy(threshold=0.5, band=0.1)
    ids = ["rg-LAD-aa-w0", "rg-LAD-bb-w0", "rg-HMR-cc-w0", "rg-LAR-dd-w0", "human-x-w0",
           "symbolic-small-00001"]
    p = [0.95, 0.2, 0.9, 0.55, 0.1, 0.99]
    is_ai = np.array([True, True, True, True, False, True])
    clips = _clips(p, [np.array([x] * 3) for x in p], [0.0] * 6)
    clips.ids = ids
    rates = verdict_rates(clips, is_ai, policy=policy, split="test")
    by = rates["by_rhythgen_configuration"]
    assert set(by) == {"LAD", "HMR", "LAR", "held_out_pooled"}
    assert by["LAD"]["n_ai"] == 2 and by["LAD"]["tpr"] == pytest.approx(0.5)
    assert by["LAD"]["fnr"] == pytest.approx(0.5) and by["LAD"]["held_out"] is True
    assert by["LAR"]["held_out"] is False and by["LAR"]["inconclusive"] == pytest.approx(1.0)
    pooled = by["held_out_pooled"]
    assert pooled["configurations"] == ["HMR", "LAD"] and pooled["n_ai"] == 3
    assert pooled["tpr"] == pytest.approx(2 / 3)
    assert pooled["tpr_ci95"][0] < 2 / 3 < pooled["tpr_ci95"][1]
    clips.ids = [str(i) for i in range(6)]
    assert "by_rhythgen_configuration" not in verdict_rates(clips, is_ai, policy=policy,
                                                            split="test")


def test_summary_lines_print_rates_and_intervals_readably():
    """The summary after training printed raw intervals ('[5.551115123125783e-17, 0.354...]')."""
    from musicbrain_cli.training.finalize import summary_lines

    card = {"thresholds": {"detection": 0.5},
            "verdict": {"ai_boundary": 0.6, "threshold_chosen_on": "val", "fpr_target": 0.005},
            "evaluation": {"test": {"roc_auc": 0.98765, "style_map_macro": None, "fpr": 0.0,
                                    "fpr_ci95": [5.551115123125783e-17, 0.35428], "fnr": 0.25,
                                    "fnr_ci95": [None, None], "inconclusive_human": 0.1,
                                    "inconclusive_ai": 0.0, "n_human": 7, "n_ai": 4}}}
    line = summary_lines(card)[1]
    assert line == ("test: ROC-AUC 0.988, style mAP n/a, FPR 0.000 (95 % CI 0.000-0.354), "
                    "FNR 0.250, inconclusive human 0.100, ai 0.000 (n=7+4)")
