"""Validation metrics: masked AP with skipped labels, ROC-AUC, rates with Wilson intervals."""

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from musicbrain_cli.errors import InputError
from musicbrain_cli.metrics import (average_precision, rates_at_threshold, roc_auc, style_map,
                                    wilson_interval)


def test_ap_uses_known_entries_only_and_says_what_it_skipped():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, (50, 3)).astype(float)
    s = rng.random((50, 3))
    mask = np.ones_like(y)
    mask[:10, 0] = 0
    y[:, 2] = 0                                   # no positive: AP undefined
    y = np.concatenate([y, np.ones((50, 1))], axis=1)    # no negative: AP 1 whatever the scores
    s = np.concatenate([s, rng.random((50, 1))], axis=1)
    mask = np.concatenate([mask, np.ones((50, 1))], axis=1)
    r = average_precision(y, s, mask=mask, labels=["a", "b", "c", "d"])
    assert r.per_label["a"] == pytest.approx(average_precision_score(y[10:, 0], s[10:, 0]))
    assert set(r.per_label) == {"a", "b"} and "no positive" in r.skipped["c"]
    assert "no negative among 50" in r.skipped["d"]
    assert r.macro == pytest.approx((r.per_label["a"] + r.per_label["b"]) / 2)


def test_roc_auc_needs_both_classes():
    assert roc_auc(np.array([0, 1, 1]), np.array([0.1, 0.9, 0.8])) == 1.0
    assert roc_auc(np.array([1, 1]), np.array([0.1, 0.9])) is None


def test_rates_at_threshold_count_correctly():
    r = rates_at_threshold(np.array([0, 0, 0, 1, 1]), np.array([0.1, 0.6, 0.2, 0.7, 0.4]), 0.5)
    assert (r["tp"], r["fp"], r["tn"], r["fn"]) == (1, 1, 2, 1)
    assert r["fpr"] == pytest.approx(1 / 3) and r["tpr"] == pytest.approx(0.5)
    lo, hi = r["fpr_ci95"]
    assert lo < 1 / 3 < hi


def test_wilson_interval_known_value_and_edges():
    # Wilson (1927); e.g. 0 of 10 -> upper bound 0.2775 at 95 %.
    assert wilson_interval(0, 10)[1] == pytest.approx(0.27753, abs=1e-4)
    assert wilson_interval(0, 0) == (None, None)
    # exact at the edges: the interval holds its own estimate (0 of 3 gave 5.6e-17)
    for n in range(1, 400):
        assert wilson_interval(0, n)[0] == 0.0 and wilson_interval(n, n)[1] == 1.0
    with pytest.raises(InputError):
        wilson_interval(5, 3)


def test_shape_mismatch_raises():
    with pytest.raises(InputError):
        average_precision(np.zeros((3, 2)), np.zeros((3, 3)))


def test_style_map_reads_both_ways_and_ignores_other_groups():
    per_label = {"source/ai": 0.99, "source/human": 0.98,
                 "period/Baroque": 0.9, "period/Romantic": 0.7,
                 "composer/Bach": 0.6, "composer/Haydn": 0.1, "composer/Mozart": 0.2}
    r = style_map(per_label, ("generator", "period", "composer"))
    assert r["map_by_group"] == pytest.approx({"period": 0.8, "composer": 0.3})
    assert "generator" not in r["map_by_group"]          # nothing scored: not a zero
    assert r["map_macro"] == pytest.approx((0.9 + 0.7 + 0.6 + 0.1 + 0.2) / 5)
    assert r["map_mean_of_groups"] == pytest.approx((0.8 + 0.3) / 2)
    empty = style_map({"source/ai": 1.0}, ("period",))
    assert empty["map_macro"] is None and empty["map_mean_of_groups"] is None


def test_cluster_bootstrap_resamples_whole_works():
    from musicbrain_cli.metrics import bootstrap_ci, cluster_indices

    assert [c.tolist() for c in cluster_indices(["a", "b", "a", "", "b"], 5)] == \
        [[0, 2], [1, 4], [3]]
    assert [c.tolist() for c in cluster_indices(None, 3)] == [[0], [1], [2]]
    with pytest.raises(InputError):
        cluster_indices(["a"], 2)
    # 10 works of 20 windows each: windows agree within a work, works differ. Resampling
    # windows one by one pretends to 200 independent values; by work there are 10.
    rng = np.random.default_rng(1)
    work_means = rng.normal(0.0, 1.0, 10)
    values = np.repeat(work_means, 20) + rng.normal(0.0, 0.01, 200)
    groups = [f"w{i}" for i in range(10) for _ in range(20)]
    mean = lambda idx: float(values[idx].mean())  # noqa: E731
    by_window = bootstrap_ci(200, mean, n_boot=500)
    by_work = bootstrap_ci(200, mean, groups=groups, n_boot=500)
    assert by_window[0] <= values.mean() <= by_window[1]
    assert by_work[0] <= values.mean() <= by_work[1]
    assert (by_work[1] - by_work[0]) > 3 * (by_window[1] - by_window[0])
    # one window per work: the same draws as resampling windows
    assert bootstrap_ci(200, mean, groups=[f"u{i}" for i in range(200)], n_boot=200) == \
        bootstrap_ci(200, mean, n_boot=200)
    assert bootstrap_ci(0, mean) == [None, None]
    # one work, or a handful: no interval is claimed (one work gave a zero-width one, two a
    # narrower one than the windows': session 29 review)
    assert bootstrap_ci(200, mean, groups=["w"] * 200) == [None, None]
    assert bootstrap_ci(200, mean, groups=[f"w{i % 9}" for i in range(200)]) == [None, None]
    assert None not in bootstrap_ci(200, mean, groups=[f"w{i % 10}" for i in range(200)])


def test_work_rates_count_a_work_once():
    from musicbrain_cli.metrics import work_rates

    ids = ["a1", "a2", "b1", "c1", "c2"]
    works = {"a1": "A", "a2": "A", "b1": "B", "c1": "C", "c2": "C"}
    r = work_rates(ids, ["ai", "ai", "human", "human", "inconclusive"],
                   np.array([False, False, False, True, True]), works, ai="ai", human="human")
    # two accused clips of one human work are one accused work of two
    assert r["n_human_works"] == 2 and r["human_works_with_a_clip_called_ai"] == 1
    assert r["n_ai_works"] == 1 and r["ai_works_with_a_clip_called_human"] == 1
    assert work_rates(ids, ["ai"] * 5, np.zeros(5, bool), {}, ai="ai", human="human") is None


def test_bootstrap_interval_is_not_taken_over_the_defined_resamples_only():
    """A resample whose value is undefined (a ratio whose chance share is 0, one class
    missing) is evidence about the spread too: dropping it silently conditions the interval
    on the resamples that happen to be defined. Beyond a small share the interval is
    unknown."""
    from musicbrain_cli.metrics import MAX_UNDEFINED_RESAMPLES, bootstrap_ci

    values = np.linspace(0.0, 1.0, 200)

    def value(min_zeros):
        # undefined where item 0 is drawn at least `min_zeros` times: Binomial(200, 1/200)
        return lambda idx: float("nan") if (idx == 0).sum() >= min_zeros else float(values[idx].mean())

    rng = np.random.default_rng(0)
    share = lambda k: np.mean([(rng.integers(0, 200, 200) == 0).sum() >= k  # noqa: E731
                               for _ in range(4000)])
    assert share(3) > 4 * MAX_UNDEFINED_RESAMPLES and share(6) < MAX_UNDEFINED_RESAMPLES / 4
    assert bootstrap_ci(200, value(3), n_boot=1000) == [None, None]   # about 8 % undefined
    low, high = bootstrap_ci(200, value(6), n_boot=1000)               # about 0.06 %
    assert low < values.mean() < high
    assert bootstrap_ci(200, lambda idx: float("inf"), n_boot=50) == [None, None]


def test_the_pooled_ap_needs_a_negative_as_each_labels_does():
    """Every known entry positive: AP is 1 whatever the scores. Each label was left out of the
    mean for it, but the pooled (micro) figure read 1.0 (review of session 47)."""
    got = average_precision(np.array([[1, 1], [1, 1]]), np.array([[.1, .2], [.3, .4]]))
    assert got.macro is None and got.micro is None
    mixed = average_precision(np.array([[1, 0], [0, 1]]), np.array([[.9, .2], [.3, .4]]))
    assert mixed.micro == pytest.approx(average_precision_score([1, 0, 0, 1], [.9, .2, .3, .4]))
