"""Out-of-domain scoring: in-domain windows score low, shifted ones high; stats round-trip."""

import numpy as np
import pytest

from musicbrain_cli.errors import ModelLoadError
from musicbrain_cli.ood import OODStats, fit_ood, fit_threshold, track_score


@pytest.fixture
def fitted():
    rng = np.random.default_rng(0)
    d = 16
    a = rng.normal(0.0, 1.0, size=(400, d))
    b = rng.normal(3.0, 1.0, size=(400, d))
    emb = np.concatenate([a, b])
    classes = np.repeat([0, 1], 400)
    return fit_ood(emb, classes), rng, d


def test_in_domain_scores_low_and_far_inputs_high(fitted):
    stats, rng, d = fitted
    val = np.concatenate([rng.normal(0.0, 1.0, (200, d)), rng.normal(3.0, 1.0, (200, d))])
    thr = fit_threshold(stats.score(val), quantile=0.99)
    far = rng.normal(12.0, 1.0, size=(200, d))
    assert (stats.score(far) > thr).mean() == 1.0
    fresh = rng.normal(0.0, 1.0, (1000, d))
    assert (stats.score(fresh) > thr).mean() < 0.05   # about 1% false alarms by construction


def test_mahalanobis_matches_direct_formula(fitted):
    stats, rng, d = fitted
    x = rng.normal(size=(3, d))
    direct = [min(np.sqrt((x[i] - m) @ stats.precision @ (x[i] - m)) for m in stats.means)
              for i in range(3)]
    np.testing.assert_allclose(stats.score(x), direct, rtol=1e-10)


def test_round_trip_and_bad_file(tmp_path, fitted):
    stats, rng, d = fitted
    stats.save(tmp_path)
    back = OODStats.load(tmp_path)
    np.testing.assert_array_equal(back.means, stats.means)
    with pytest.raises(ModelLoadError, match="out-of-domain"):
        OODStats.load(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="dimension"):
        stats.score(np.zeros((2, d + 1)))


def test_track_score_is_robust_to_one_odd_window():
    assert track_score([1.0, 1.1, 0.9, 50.0]) == pytest.approx(1.05)
    with pytest.raises(ValueError):
        fit_threshold([], quantile=0.99)
