"""Classification metrics for multi-label outputs with unknown (masked) labels.

Shared by the trainer's validation and ``musicbrain evaluate``. Plain functions over numpy
arrays: ``y_true`` and ``mask`` are ``[N, L]`` in {0, 1} (mask 1 = the label is known for
that sample, :meth:`musicbrain_cli.taxonomy.Taxonomy.encode`), ``y_score`` is ``[N, L]``
(probabilities or logits: average precision and ROC-AUC only use the order).

Scores come from scikit-learn (STYLE.md rule 13). Labels that cannot be scored are skipped,
never counted as 0 or 1, and the reason is returned with the result so a report can say so:
average precision is undefined without a positive, ROC-AUC without both classes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from musicbrain_cli.errors import InputError

#: z for a two-sided 95 % interval.
Z95 = 1.959963984540054


def _check(y_true: np.ndarray, y_score: np.ndarray, mask: np.ndarray | None):
    y_true = np.asarray(y_true, dtype=np.float64)
    y_score = np.asarray(y_score, dtype=np.float64)
    if y_true.ndim == 1:
        y_true, y_score = y_true[:, None], y_score[:, None]
        mask = None if mask is None else np.asarray(mask)[:, None]
    if y_true.shape != y_score.shape or y_true.ndim != 2:
        raise InputError(f"y_true {y_true.shape} and y_score {y_score.shape} must be equal [N, L]")
    mask = np.ones_like(y_true) if mask is None else np.asarray(mask, dtype=np.float64)
    if mask.shape != y_true.shape:
        raise InputError(f"mask {mask.shape} must have the shape of y_true {y_true.shape}")
    if not np.isfinite(y_score[mask > 0]).all():
        raise InputError("y_score holds NaN or infinite values where labels are known")
    return y_true, y_score, mask > 0


@dataclass
class APResult:
    """Average precision per label, their macro mean, and the labels left out and why."""

    per_label: dict[str, float]
    macro: float | None
    micro: float | None
    skipped: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"map_macro": self.macro, "map_micro": self.micro, "ap": self.per_label,
                "ap_skipped": self.skipped}


def average_precision(y_true, y_score, *, mask=None,
                      labels: Sequence[str] | None = None) -> APResult:
    """Per-label AP (scikit-learn ``average_precision_score``) over the known entries.

    A label with no known positive is skipped (AP is undefined: there is nothing to
    retrieve), and so is one with no known negative (AP is 1 whatever the scores), each
    listed in ``skipped`` with the reason. ``macro`` is the mean over the
    scored labels (``None`` when none can be scored); ``micro`` pools every known entry
    (``None`` without a known positive and a known negative).
    """
    from sklearn.metrics import average_precision_score

    y_true, y_score, known = _check(y_true, y_score, mask)
    names = list(labels) if labels is not None else [str(i) for i in range(y_true.shape[1])]
    if len(names) != y_true.shape[1]:
        raise InputError(f"{len(names)} label names for {y_true.shape[1]} outputs")
    per_label, skipped = {}, {}
    for j, name in enumerate(names):
        t, s = y_true[known[:, j], j], y_score[known[:, j], j]
        if t.size == 0:
            skipped[name] = "no sample with this label known"
        elif t.sum() == 0:
            skipped[name] = f"no positive among {t.size} known samples"
        elif t.sum() == t.size:
            # every ranking retrieves all of them: AP 1 whatever the scores, which says
            # nothing and would lift the mean (session 28 audit)
            skipped[name] = f"no negative among {t.size} known samples"
        else:
            per_label[name] = float(average_precision_score(t, s))
    macro = float(np.mean(list(per_label.values()))) if per_label else None
    pooled_t, pooled_s = y_true[known], y_score[known]
    # the pooled figure, like each label's, says nothing without both kinds (1 whatever the
    # scores when every known entry is positive: review of session 47)
    micro = (float(average_precision_score(pooled_t, pooled_s))
             if 0 < pooled_t.sum() < pooled_t.size else None)
    return APResult(per_label, macro, micro, skipped)


def style_map(per_label: Mapping[str, float], groups: Sequence[str]) -> dict:
    """Style attribution's mean AP, both ways it is read, from per-label APs named
    ``group/label``: ``map_macro`` over every scored label of ``groups`` (a group with many
    labels, such as composer, weighs more), ``map_by_group`` per group, and
    ``map_mean_of_groups`` the mean of those (each group weighs the same). ``None`` where
    nothing was scored."""
    by_group: dict[str, list[float]] = {g: [] for g in groups}
    flat = []                                    # in the labels' own order
    for name, ap in per_label.items():
        group = name.split("/", 1)[0]
        if group in by_group:
            by_group[group].append(ap)
            flat.append(ap)
    means = {g: float(np.mean(aps)) for g, aps in by_group.items() if aps}
    return {"groups": list(groups),
            "map_macro": float(np.mean(flat)) if flat else None,
            "map_by_group": means,
            "map_mean_of_groups": float(np.mean(list(means.values()))) if means else None}


def roc_auc(y_true, y_score, *, mask=None) -> float | None:
    """ROC-AUC of one label (1-D inputs); ``None`` unless both classes are present."""
    from sklearn.metrics import roc_auc_score

    y_true, y_score, known = _check(y_true, y_score, mask)
    t, s = y_true[known[:, 0], 0], y_score[known[:, 0], 0]
    if t.size == 0 or t.min() == t.max():
        return None
    return float(roc_auc_score(t, s))


def wilson_interval(successes: int, trials: int, *,
                    z: float = Z95) -> tuple[float | None, float | None]:
    """Wilson score interval for a binomial proportion (Wilson 1927, JASA 22(158)).

    Better than the normal approximation at small ``trials`` and near 0 or 1, which is
    where false-positive rates live. ``(None, None)`` when ``trials`` is 0.
    """
    if trials < 0 or not 0 <= successes <= trials:
        raise InputError(f"need 0 <= successes <= trials, got {successes}/{trials}")
    if trials == 0:
        return None, None
    p = successes / trials
    denom = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    # exact at the edges: in floating point centre - half came out 5.6e-17 for 0 of 3, an
    # interval that excluded its own estimate (session 28 audit)
    return (0.0 if successes == 0 else max(0.0, centre - half),
            1.0 if successes == trials else min(1.0, centre + half))


def rates_at_threshold(y_true, y_prob, threshold: float, *, mask=None) -> dict:
    """Confusion counts, TPR and FPR (with Wilson 95 % intervals) of ``y_prob >= threshold``.

    For one label (1-D inputs). Rates are ``None`` when their denominator is 0.
    """
    y_true, y_prob, known = _check(y_true, y_prob, mask)
    t, s = y_true[known[:, 0], 0] > 0.5, y_prob[known[:, 0], 0] >= threshold
    tp, fp = int((t & s).sum()), int((~t & s).sum())
    fn, tn = int((t & ~s).sum()), int((~t & ~s).sum())
    pos, neg = tp + fn, fp + tn
    return {
        "threshold": float(threshold), "tp": tp, "fp": fp, "tn": tn, "fn": fn,
        "tpr": tp / pos if pos else None, "tpr_ci95": list(wilson_interval(tp, pos)),
        "fpr": fp / neg if neg else None, "fpr_ci95": list(wilson_interval(fp, neg)),
    }


def work_rates(ids: Sequence[str], labels: Sequence[str], is_ai: np.ndarray,
               works: Mapping[str, str], *, ai: str, human: str) -> dict[str, Any] | None:
    """False accusations and misses counted by work: how many human works had any clip
    called ``ai`` and how many AI works had any clip called ``human`` (the verdict labels
    ``ai`` and ``human`` name, passed in: this module sits below the verdict), with Wilson
    intervals over works. A clip whose work is not known is a unit of its own (as in
    :func:`cluster_indices`), never left out: it may be the one accused. ``None`` when no
    clip has a known work."""
    AI, HUMAN = ai, human
    if not any(works.get(clip) for clip in ids):
        return None
    human_works: dict[Any, bool] = {}
    ai_works: dict[Any, bool] = {}
    for clip, label, truth in zip(ids, labels, is_ai):
        work = works.get(clip) or ("clip without a work", clip)
        side = ai_works if truth else human_works
        side[work] = side.get(work, False) or label == (HUMAN if truth else AI)
    k_h, k_a = sum(human_works.values()), sum(ai_works.values())
    n_h, n_a = len(human_works), len(ai_works)
    return {"n_human_works": n_h, "human_works_with_a_clip_called_ai": k_h,
            "fpr_works": k_h / n_h if n_h else None,
            "fpr_works_ci95": list(wilson_interval(k_h, n_h)),
            "n_ai_works": n_a, "ai_works_with_a_clip_called_human": k_a,
            "fnr_works": k_a / n_a if n_a else None,
            "fnr_works_ci95": list(wilson_interval(k_a, n_a))}


def cluster_indices(groups: Sequence[str] | None, n: int) -> list[np.ndarray]:
    """The items of each cluster, as index arrays, in order of first appearance: items that
    share a group (windows of one work) form one cluster; ``None``, or an empty group name,
    makes an item its own cluster."""
    if groups is None:
        return [np.asarray([i]) for i in range(n)]
    if len(groups) != n:
        raise InputError(f"{len(groups)} group names for {n} items")
    members: dict[str, list[int]] = {}
    out: list[list[int]] = []
    for i, g in enumerate(groups):
        if not g:
            out.append([i])
            continue
        if g not in members:
            members[g] = []
            out.append(members[g])
        members[g].append(i)
    return [np.asarray(c) for c in out]


#: Fewest independent units (windows, or works when resampling by work) a percentile
#: bootstrap interval is given for: with one work every resample is the same (a zero-width
#: "interval"), and with a handful the percentiles understate the spread (session 29
#: review). Below it the interval is reported as unknown.
MIN_BOOTSTRAP_UNITS = 10

#: Largest share of resamples whose value may be undefined (a lift whose chance share is 0,
#: a rank measure with one class missing) for an interval to be given over the others.
#: Dropping them conditions the interval on the resamples that happen to be defined, which
#: narrows it where the data are thin; beyond this share the interval is reported unknown.
MAX_UNDEFINED_RESAMPLES = 0.01


def bootstrap_ci(n: int, value, *, groups: Sequence[str] | None = None, n_boot: int = 1000,
                 seed: int = 0, min_units: int = MIN_BOOTSTRAP_UNITS) -> list:
    """Percentile bootstrap 95 % interval of ``value(indices)`` over ``n`` items (Efron &
    Tibshirani 1993, ch. 13). With ``groups`` the resampling is by cluster (Davison & Hinkley
    1997, sec. 3.8): whole groups (the windows of one work) are drawn with replacement, since
    items of one group are not independent and resampling them one by one would make the
    interval too narrow. ``[None, None]`` with fewer than ``min_units`` units to resample, or
    when more than :data:`MAX_UNDEFINED_RESAMPLES` of the resamples give no finite value
    (the rest are no fair sample of the spread)."""
    clusters = cluster_indices(groups, n)
    if not clusters or len(clusters) < min_units:
        return [None, None]
    rng = np.random.default_rng(seed)
    boots = np.asarray([value(np.concatenate([clusters[j] for j in
                                              rng.integers(0, len(clusters), len(clusters))]))
                        for _ in range(n_boot)], dtype=np.float64)
    finite = np.isfinite(boots)
    if not finite.any() or (~finite).mean() > MAX_UNDEFINED_RESAMPLES:
        return [None, None]
    boots = boots[finite]
    return [float(np.quantile(boots, 0.025)), float(np.quantile(boots, 0.975))]
