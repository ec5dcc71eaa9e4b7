"""Temperature scaling: recovers a known temperature, lowers NLL, keeps the ranking."""

import numpy as np
import pytest

from musicbrain_cli.model.calibration import (T_MIN, apply_temperature, binary_nll,
                                              fit_temperature)
from musicbrain_cli.errors import InputError


def _overconfident(true_t: float, n: int = 4000, seed: int = 0):
    """Labels drawn from sigmoid(z); the model reports z * true_t (too confident if > 1)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 2.0, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(np.float64)
    return z * true_t, y


@pytest.mark.parametrize("true_t", [0.5, 1.0, 3.0])
def test_recovers_the_temperature_that_generated_the_data(true_t):
    logits, y = _overconfident(true_t)
    fit = fit_temperature(logits, y)
    assert fit.temperature == pytest.approx(true_t, rel=0.1)
    assert fit.nll_after <= fit.nll_before + 1e-12
    assert fit.nll_after == pytest.approx(binary_nll(logits, y, temperature=fit.temperature))
    assert not fit.at_bound and fit.n == logits.size


def test_fit_is_the_minimum_of_the_nll():
    logits, y = _overconfident(2.0, seed=3)
    t = fit_temperature(logits, y).temperature
    for other in (t * 0.9, t * 1.1):
        assert binary_nll(logits, y, temperature=other) > binary_nll(logits, y, temperature=t)


def test_mask_selects_the_fitting_samples():
    logits, y = _overconfident(3.0, n=2000, seed=1)
    garbage = np.concatenate([logits, np.full(500, 50.0)])
    labels = np.concatenate([y, np.zeros(500)])           # confidently wrong, but masked
    mask = np.concatenate([np.ones(2000), np.zeros(500)])
    assert fit_temperature(garbage, labels, mask=mask).temperature == pytest.approx(
        fit_temperature(logits, y).temperature)


def test_separable_data_stops_at_the_bound():
    logits = np.array([-3.0, -2.0, 2.0, 3.0])
    fit = fit_temperature(logits, np.array([0, 0, 1, 1]))
    assert fit.at_bound and fit.temperature == pytest.approx(T_MIN, rel=1e-3)


def test_apply_keeps_order_and_matches_sigmoid():
    z = np.array([-800.0, -2.0, 0.0, 1.0, 800.0])
    p = apply_temperature(z, 2.0)
    np.testing.assert_allclose(p[1:4], 1 / (1 + np.exp(-z[1:4] / 2.0)), rtol=1e-12)
    # the form every report was made with: 1 / (1 + exp(400)) is tiny, not 0 as tanh gave
    assert (np.diff(p) >= 0).all() and 0.0 <= p[0] < 1e-170 and p[-1] == 1.0


@pytest.mark.parametrize("logits,targets", [
    (np.array([0.1, 0.2]), np.array([1.0, 1.0])),          # one class only
    (np.array([np.nan, 0.2]), np.array([0.0, 1.0])),       # NaN
    (np.array([0.1, 0.2, 0.3]), np.array([0.0, 1.0])),     # shape mismatch
])
def test_bad_inputs_raise(logits, targets):
    with pytest.raises(InputError):
        fit_temperature(logits, targets)


def test_apply_rejects_non_positive_temperature():
    with pytest.raises(InputError, match="-1"):
        apply_temperature(np.zeros(2), -1.0)
