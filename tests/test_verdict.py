"""Three-way verdicts: abstention rules can only produce 'inconclusive', never 'ai'."""

import itertools

import numpy as np
import pytest

from musicbrain_cli.verdict import AI, HUMAN, INCONCLUSIVE, VerdictPolicy, decide

POLICY = VerdictPolicy(threshold=0.5, band=0.15, disagreement=0.3)


def test_clear_cases():
    assert decide(0.95, [0.9, 0.97, 0.99], policy=POLICY).label == AI
    assert decide(0.05, [0.01, 0.1, 0.02], policy=POLICY).label == HUMAN


def test_band_around_threshold_abstains():
    v = decide(0.6, [0.6, 0.6, 0.6], policy=POLICY)
    assert v.label == INCONCLUSIVE
    assert v.band == (0.35, 0.65)
    assert "abstention band" in v.reasons[0]
    assert decide(0.66, [0.66] * 3, policy=POLICY).label == AI  # just outside the band


def test_window_disagreement_abstains():
    windows = [0.99, 0.99, 0.01, 0.01, 0.99]           # 40% of windows below threshold
    v = decide(0.8, windows, policy=POLICY)
    assert v.label == INCONCLUSIVE
    assert v.window_share_ai == pytest.approx(0.6)
    # two windows are too few to disagree
    assert decide(0.8, [0.99, 0.01], policy=POLICY).label == AI


def test_out_of_domain_is_never_ai():
    v = decide(0.99, [0.99] * 5, policy=POLICY, in_domain=False,
               ood_detail="spectral distance: 9.000 > threshold 3.000")
    assert v.label == INCONCLUSIVE
    assert "outside the domain" in v.reasons[0] and "9.000" in v.reasons[0]


def test_no_abstention_rule_can_produce_ai():
    # Exhaustive over a grid: whenever the plain threshold says human, so does the verdict
    # or it abstains; 'ai' requires p >= threshold + band and an in-domain input.
    rng = np.random.default_rng(0)
    for p, dom in itertools.product(np.linspace(0, 1, 41), (True, False, None)):
        windows = rng.uniform(0, 1, size=rng.integers(1, 8))
        v = decide(float(p), windows, policy=POLICY, in_domain=dom)
        if v.label == AI:
            assert p >= POLICY.threshold + POLICY.band and dom is not False


def test_policy_from_card_and_validation():
    card = {"thresholds": {"detection": 0.7}, "verdict": {"band": 0.1}}
    pol = VerdictPolicy.from_card(card)
    assert pol.threshold == 0.7 and pol.band == 0.1 and pol.disagreement == 0.3
    with pytest.raises(ValueError):
        VerdictPolicy(threshold=1.5)
    with pytest.raises(ValueError):
        decide(float("nan"), [], policy=POLICY)
