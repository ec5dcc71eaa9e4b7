"""Defects found by the review of evaluate's statistics (fidelity, alignment, metrics): each test
states the textbook answer on a small synthetic input where it is known."""

from __future__ import annotations

import numpy as np
import pytest

from musicbrain_cli.alignment.overlap import (HarmonicOverlap, Note, OnsetOverlap,
                                              harmonic_overlap, onset_overlap)

FREQS = 40.0 * 2 ** (np.arange(160) / 24)
TIMES = np.arange(200) * 0.02
#: The shipped front end's clock: 512-sample hops at 22.05 kHz, 431 frames (10 s).
HOP_S = 512 / 22050
CLOCK = np.arange(431) * HOP_S


# --- onset chance: onsets are not placed on frame centres --------------------------------------


def test_onset_chance_is_the_hit_rate_of_onsets_placed_uniformly_at_random():
    """``chance_hit_rate`` is said to be the hit rate of onsets placed uniformly at random. It
    was computed over frame centres only: with 512-sample hops (23.2 ms) a centre's +/-50 ms
    always holds 5 frames, an onset at an arbitrary time 4.3 on average, so chance came out
    about 16 % too high for isolated peaks (and the lift too low). (With the shipped 20 ms
    frames only the window's edges differ.) Many onsets drawn uniformly over the span that
    is counted must hit at the stated chance."""
    rng = np.random.default_rng(0)
    sal = np.full((4, CLOCK.size), 0.01)
    sal[:, rng.choice(CLOCK.size, 20, replace=False)] = 1.0
    radius = 0.05
    onsets = rng.uniform(CLOCK[0] - radius, CLOCK[-1] + radius, 200_000)
    res = onset_overlap(sal, times=CLOCK, onsets=onsets, radius=radius)
    assert res.onsets == onsets.size
    # Monte Carlo standard error about 0.001 on a rate of about 0.19
    assert res.hit_rate == pytest.approx(res.chance_hit_rate, rel=0.02)
    # and the closed form: the share of the span within the radius of a peak frame
    peaks = CLOCK[sal.sum(axis=0) > np.quantile(sal.sum(axis=0), 0.9)]
    grid = np.linspace(CLOCK[0] - radius, CLOCK[-1] + radius, 2_000_001)
    covered = np.zeros(grid.size, bool)
    for p in peaks:
        covered |= np.abs(grid - p) <= radius
    assert res.chance_hit_rate == pytest.approx(covered.mean(), abs=1e-4)


# --- pooling windows: the chance of the pooled measure -----------------------------------------


def _uniform(level: float, n_notes: int) -> HarmonicOverlap:
    notes = [Note(0.0, 4.0, p) for p in (57, 64, 50, 69)[:n_notes]]
    return harmonic_overlap(np.full((FREQS.size, TIMES.size), level), freqs=FREQS, times=TIMES,
                            notes=notes)


def test_pooled_harmonic_lift_of_maps_flat_within_each_window_is_one():
    """A map flat within each of its windows knows nothing of the partials: each window's lift
    is 1, and so must the track's be. Pooling summed the windows' saliency mass (share) but
    their cells (chance), so a window with more notes *and* a louder map weighed more in
    the share than in the chance: two windows at chance pooled to a lift of 1.37."""
    dense, sparse = _uniform(10.0, 4), _uniform(1.0, 1)
    assert dense.lift == pytest.approx(1.0) and sparse.lift == pytest.approx(1.0)
    assert dense.chance > 2 * sparse.chance
    track = HarmonicOverlap.combine([dense, sparse])
    assert track.lift == pytest.approx(1.0)
    assert track.share == pytest.approx(track.chance)
    # the chance stays a property of the notes, the same for every map on the same windows
    other = HarmonicOverlap.combine([_uniform(1.0, 4), _uniform(7.0, 1)])
    assert other.chance == pytest.approx(track.chance) and other.lift == pytest.approx(1.0)
    # a single window is as before
    assert HarmonicOverlap.combine([dense]).share == pytest.approx(dense.share)
    # a window that is on the partials still lifts the track
    on = harmonic_overlap(np.where(np.arange(FREQS.size)[:, None] % 2 == 0, 1.0, 0.0)
                          * np.ones(TIMES.size), freqs=FREQS, times=TIMES,
                          notes=[Note(0.0, 4.0, 57)])
    assert HarmonicOverlap.combine([dense, on]).share == pytest.approx(
        (dense.cells * dense.share + on.cells * on.share) / (dense.cells + on.cells))


def test_pooled_onset_concentration_of_maps_flat_in_time_is_one():
    """Concentration (mean saliency near onsets over the mean) is 1 for a map flat in time.
    Pooled by summing mass and frames, a loud window dense with onsets and a quiet one with
    few gave 1.80 for two maps that are both flat."""
    dense = onset_overlap(np.full((4, CLOCK.size), 10.0), times=CLOCK,
                          onsets=np.arange(0.1, 9.9, 0.1))
    sparse = onset_overlap(np.full((4, CLOCK.size), 1.0), times=CLOCK, onsets=[5.0])
    assert dense.concentration == pytest.approx(1.0) and sparse.concentration == pytest.approx(1.0)
    assert OnsetOverlap.combine([dense, sparse]).concentration == pytest.approx(1.0)
    # one window: as before
    peaky = onset_overlap(np.where(np.arange(CLOCK.size) % 43 == 0, 5.0, 1.0)[None],
                          times=CLOCK, onsets=CLOCK[::43])
    assert OnsetOverlap.combine([peaky]).concentration == pytest.approx(peaky.concentration)
    assert OnsetOverlap.combine([peaky, peaky]).concentration == pytest.approx(peaky.concentration)


def test_alignment_summary_of_flat_maps_is_at_chance():
    """The same through evaluate's summary, as metrics.json reports it."""
    from musicbrain_cli.evaluate.split import _alignment_summary

    parts = [_uniform(10.0, 4), _uniform(1.0, 1)] * 3
    out = _alignment_summary(parts, [], n_boot=50)
    assert out["harmonic"]["lift"] == pytest.approx(1.0)


# --- rhythmic event: the p-value's null ---------------------------------------------------------


def test_event_p_value_is_the_poisson_binomial_tail_when_chances_differ():
    """Each clip hits by chance with its own probability; the number of hits under the null is
    Poisson-binomial, not binomial at the mean chance. Ten clips at chance 1/2 and ten where
    a hit is impossible: ten hits have probability 0.5 ** 10 under the null (the binomial at
    the mean, 0.25, gave 0.014, fourteen times too large)."""
    from musicbrain_cli.explain.fidelity import EventHit, event_summary

    hits = ([EventHit(t0=1.0, peak_s=1.0, tolerance_s=0.1, hit=True, chance=0.5)] * 10
            + [EventHit(t0=1.0, peak_s=3.0, tolerance_s=0.1, hit=False, chance=0.0)] * 10)
    s = event_summary(hits)
    assert s["chance"] == pytest.approx(0.25)
    assert s["p_value"] == pytest.approx(0.5 ** 10, rel=1e-9)
    # equal chances: the exact binomial test, as before
    from scipy.stats import binomtest

    same = [EventHit(t0=1.0, peak_s=1.0, tolerance_s=0.1, hit=i < 3, chance=0.05)
            for i in range(16)]
    assert event_summary(same)["p_value"] == pytest.approx(
        binomtest(3, 16, 0.05, alternative="greater").pvalue, rel=1e-9)


# --- false accusations by work: clips without a work -------------------------------------------


def test_work_rates_count_a_clip_without_a_work_as_its_own_work():
    """A human clip whose work is unknown and that the verdict calls AI is a false accusation;
    it was dropped from the by-work counts (only clips with a work were counted), so the
    rate by work could miss exactly the clip that matters. Without a work a clip is its own
    unit, as in the cluster bootstrap (metrics.cluster_indices)."""
    from musicbrain_cli.metrics import work_rates

    ids = ["a1", "a2", "b1", "x1"]
    works = {"a1": "A", "a2": "A", "b1": "B"}           # x1: no work recorded
    r = work_rates(ids, ["human", "human", "human", "ai"], np.zeros(4, bool), works,
                   ai="ai", human="human")
    assert r["n_human_works"] == 3 and r["human_works_with_a_clip_called_ai"] == 1
    # a clip id that equals another clip's work id is still its own unit
    r = work_rates(["A", "a1"], ["ai", "human"], np.zeros(2, bool), {"a1": "A"},
                   ai="ai", human="human")
    assert r["n_human_works"] == 2
    # no work known for any clip: still None (the data set names no work)
    assert work_rates(ids, ["ai"] * 4, np.zeros(4, bool), {}, ai="ai", human="human") is None


# --- robustness: false accusations with the work as the unit -----------------------------------


def test_robustness_rows_count_false_accusations_by_work_too():
    """The robustness table gave 'ai on human' a Wilson interval over clips only; the clips of
    one work are not independent (the same music), so with 20 clips from 2 works the clip
    interval (upper 16 %) claims far more than the evidence (2 works: upper 66 %). Each row
    also counts by work, as evaluate's detection does."""
    from musicbrain_cli.evaluate.robustness import _row, _Tally, robustness_markdown
    from musicbrain_cli.metrics import wilson_interval

    n = 20
    tally = _Tally(is_ai=[False] * n, p_ai=[0.1] * n, verdicts=["human"] * n,
                   out_of_domain=[False] * n, clips=[f"c{i}" for i in range(n)],
                   works=[f"w{i % 2}" for i in range(n)])
    row = _row(tally, name="Original", key="original", split="test", threshold=0.5, note="",
               ood_available=False)
    assert row["ai_verdicts_on_human_ci95"][1] == pytest.approx(wilson_interval(0, 20)[1])
    w = row["by_work"]
    assert w["n_human_works"] == 2 and w["human_works_with_a_clip_called_ai"] == 0
    assert w["fpr_works_ci95"][1] == pytest.approx(wilson_interval(0, 2)[1])
    assert "0 of 2 works" in robustness_markdown([row])
    # a data set that names no work: no by-work figure, not a wrong one
    tally.works = [""] * n
    assert _row(tally, name="Original", key="original", split="test", threshold=0.5, note="",
                ood_available=False)["by_work"] is None


# --- precision-recall figures: only for labels whose AP is scored ------------------------------


def test_no_pr_figure_claims_an_ap_for_a_label_without_negatives(tmp_path):
    """A label with no known negative has AP 1 whatever the scores, so the metrics leave it
    out ('no negative among N known samples'); its PR figure was still drawn, titled
    'AP 1.000', beside a table that says n/a."""
    from musicbrain_cli.evaluate.split import _pr_figures
    from musicbrain_cli.metrics import average_precision

    rng = np.random.default_rng(0)
    y = np.stack([rng.integers(0, 2, 30), np.ones(30)], axis=1).astype(float)
    s = rng.random((30, 2))
    mask = np.ones_like(y)
    ap = average_precision(y, s, mask=mask, labels=["source/ai", "period/Baroque"])
    written = _pr_figures(y, s, mask, ["source/ai", "period/Baroque"], tmp_path / "pr")
    assert [p.split("/")[-1] for p in written] == ["source_ai.png"]
    assert set(ap.per_label) == {"source/ai"}
