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


def test_verdict_rates_withhold_ai_that_rests_on_windows_holding_silence():
    """A new model's card counts verdicts as a scan makes them (verdict.silence_carries)."""
    policy = VerdictPolicy(threshold=0.5, band=0.1)
    p = [0.9, 0.9, 0.9]
    windows = [np.array([0.9, 0.9]), np.array([0.9, 0.9]), np.array([0.9, 0.9])]
    clips = _clips(p, windows, [0.0] * 3)
    clips.window_weights = np.ones(6)
    # clip 0: no silence; clip 1: one window holds 0.5 s of it, the other still says AI;
    # clip 2: both hold it
    clips.window_silence = np.array([0.0, 0.1, 0.5, 0.0, 0.5, 1.0])
    rates = verdict_rates(clips, np.array([False, False, False]), policy=policy, split="test")
    assert rates["counts"]["human"] == {"ai": 2, "inconclusive": 1}
    clips.window_silence = None                    # not measured: the plain rule
    rates = verdict_rates(clips, np.array([False, False, False]), policy=policy, split="test")
    assert rates["counts"]["human"]["ai"] == 3
    # a window whose quietest second is 10 dB below its mean counts as one holding silence
    clips.window_silence = np.zeros(6)
    clips.window_soft = np.array([-3.0, -1.0, -12.0, -2.0, -15.0, -10.0])
    rates = verdict_rates(clips, np.array([False, False, False]), policy=policy, split="test")
    assert rates["counts"]["human"] == {"ai": 2, "inconclusive": 1}


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


def test_a_human_clip_above_099_still_counts_against_the_target():
    """Session 28 audit: the boundary was capped at 0.99, so with 6 of 400 human validation
    clips above it 1.5 % were accused while the card recorded the 0.5 % target."""
    rng = np.random.default_rng(3)
    human = np.concatenate([rng.uniform(0.0, 0.9, 394), [0.991, 0.992, 0.993, 0.995, 0.997, 0.999]])
    p = np.concatenate([human, rng.uniform(0.9, 1.0, 100)])
    is_ai = np.repeat([False, True], [400, 100])
    t = choose_threshold(p, is_ai, fpr_target=0.005)
    assert (human >= t).sum() <= 2 and t > 0.99
    # a human clip at exactly 1: nothing may be accused, so the boundary lies above 1
    assert choose_threshold(np.array([1.0, 0.2]), np.array([False, False]), fpr_target=0.0) > 1.0


def test_clips_are_scored_as_a_scan_scores_a_track():
    """Session 28 audit: finalize took the plain mean of a clip's windows where a scan weighs
    each window by its real audio, so a clip ending in a part-filled window was counted with
    another P(AI) than a scan gives it."""
    from types import SimpleNamespace

    from musicbrain_cli.model.inference import aggregate_windows
    from musicbrain_cli.training.finalize import _clips

    n = 220500
    cache = SimpleNamespace(clip_ids=["a", "a", "b"], n_valid=np.array([n, int(0.8 * n), n]),
                            targets=np.zeros((3, 2)), mask=np.ones((3, 2)),
                            silence_s=np.zeros(3), soft_db=np.array([-1.0, -20.0, -2.0]))
    probs = np.array([[0.05, 0.95], [0.55, 0.45], [0.8, 0.2]])
    clips = _clips(cache, np.arange(3), probs, np.zeros((3, 1)), det=1)
    scan = aggregate_windows(probs[:2], cache.n_valid[:2], ["h", "ai"], {"h": 0.5, "ai": 0.5})
    assert clips.p_ai[0] == pytest.approx(scan["ai"]["mean"]) and clips.p_ai[0] > 0.72
    assert clips.probs[0, 0] == pytest.approx(scan["h"]["mean"])
    assert clips.p_ai[1] == pytest.approx(0.2)
    np.testing.assert_array_equal(clips.window_soft, [-1.0, -20.0, -2.0])   # grouped as the windows


def test_ai_verdicts_begin_at_the_boundary_however_high_it_lies():
    """Session 28: besides the 0.99 cap on the boundary, the band was narrowed to keep
    threshold + band under 0.99, so `ai` verdicts still began at 0.99 where the rule
    needed 0.995; and a boundary above 1 must accuse nothing, not a clip at exactly 1."""
    from musicbrain_cli.training.finalize import operating_policy
    from musicbrain_cli.verdict import decide

    policy = operating_policy(0.995, 0.1)
    assert policy.threshold + policy.band == pytest.approx(0.995)
    assert decide(0.992, [0.992], policy=policy).label == "inconclusive"
    assert decide(0.996, [0.996], policy=policy).label == "ai"
    never = operating_policy(float(np.nextafter(1.0, 2.0)), 0.1)
    assert decide(1.0, [1.0], policy=never).label != "ai"
    low = operating_policy(0.55, 0.1)            # below 0.5 + band: stricter, never looser
    assert (low.threshold, low.band) == (0.5, 0.1)


def test_false_accusations_are_also_counted_by_work():
    """Session 28 audit: clips of one work are not independent, so the card also counts by
    work: a work with any clip called AI is one false accusation of that work."""
    policy = VerdictPolicy(threshold=0.5, band=0.1)
    p = [0.9, 0.1, 0.1, 0.1, 0.95, 0.2, 0.9]
    is_ai = np.array([False, False, False, False, True, True, True])
    works = {"0": "w1", "1": "w1", "2": "w2", "3": "w3", "4": "a1", "5": "a1", "6": "a2"}
    rates = verdict_rates(_clips(p, [np.array([x]) for x in p], [0.0] * 7), is_ai,
                          policy=policy, split="test", works=works)
    w = rates["by_work"]
    assert (w["n_human_works"], w["human_works_with_a_clip_called_ai"]) == (3, 1)
    assert (w["n_ai_works"], w["ai_works_with_a_clip_called_human"]) == (2, 1)
    assert w["fpr_works"] == pytest.approx(1 / 3)
    lo, hi = w["fpr_works_ci95"]
    assert lo < 1 / 3 < hi and hi > rates["fpr_ci95"][1]
    assert "by_work" not in verdict_rates(_clips(p, [np.array([x]) for x in p], [0.0] * 7),
                                          is_ai, policy=policy, split="test")


def test_a_threshold_just_above_one_loads_everywhere_and_accuses_nothing():
    """Session 28 review: once uncapped, a fit could set a threshold of 1 + 1 ulp (a human
    clip at exactly 1), which every loader refused."""
    from musicbrain_cli.artifacts.detector import ArtifactDetector
    from musicbrain_cli.verdict import decide

    above = float(np.nextafter(1.0, 2.0))
    policy = VerdictPolicy(threshold=above, band=0.0)
    assert decide(1.0, [1.0], policy=policy).label == "human"
    shipped = ArtifactDetector.from_pretrained("default")
    assert ArtifactDetector({**shipped.model, "threshold": above}).threshold == above
    with pytest.raises(ValueError):
        VerdictPolicy(threshold=1.5, band=0.0)


def test_a_boundary_above_one_is_recorded_and_printed_as_one_nothing_reaches():
    """Session 28 review: with `ai` beginning above 1, the verdict recorded the band as
    ending at 1.0 (read: 1.0 is `ai`) while it called 1.0 inconclusive."""
    from musicbrain_cli.training.finalize import operating_policy
    from musicbrain_cli.verdict import decide

    policy = operating_policy(float(np.nextafter(1.0, 2.0)), 0.1)
    v = decide(1.0, [1.0, 1.0, 1.0], policy=policy)
    assert v.label == "inconclusive" and v.band[1] > 1.0
