"""Out-of-domain scoring: in-domain windows score low, shifted ones high; stats round-trip."""

import numpy as np
import pytest

from musicbrain_cli.errors import ModelLoadError
from musicbrain_cli.model.ood import (PROFILE_BANDS, OODStats, check_domain, describe_failures,
                                      fit_ood, fit_threshold, spectral_profile, track_score)


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


# --- spectral-profile check ---------------------------------------------------------------

def _map(rng, n, *, f=256, t=100, tilt=-1.0, noise=0.05):
    """Fake log-mel maps: a spectral tilt (level falls with frequency) plus jitter."""
    base = np.linspace(0.2, 0.2 + tilt, f)[None, :, None]
    return np.clip(base + rng.normal(0.0, noise, (n, f, t)), -1.0, 1.0).astype(np.float32)


def test_profile_ignores_zero_padded_frames():
    rng = np.random.default_rng(1)
    x = _map(rng, 1)
    padded = x.copy()
    padded[:, :, 60:] = -1.0                        # the tail is digital silence (floor)
    full, short = spectral_profile(x), spectral_profile(padded[:, None])   # [B,F,T] and [B,1,F,T]
    assert full.shape == (1, 2 * PROFILE_BANDS)
    # band means over the sounding frames only: padding does not drag the level down
    np.testing.assert_allclose(short[0, :PROFILE_BANDS], spectral_profile(x[:, :, :60])[0, :PROFILE_BANDS],
                               atol=1e-6)
    # any bin count: bands of nearly equal width, at most one band per bin
    assert spectral_profile(np.zeros((2, 100, 10))).shape == (2, 2 * PROFILE_BANDS)
    assert spectral_profile(np.zeros((2, 32, 10))).shape == (2, 64)
    with pytest.raises(ValueError, match="non-empty"):
        spectral_profile(np.zeros((1, 0, 10)))


def test_profile_check_flags_other_spectra_and_round_trips(tmp_path):
    rng = np.random.default_rng(2)
    train = _map(rng, 300)
    emb = rng.normal(size=(300, 4))
    stats = fit_ood(emb, np.repeat([0, 1], 150), spectral_profile(train), profile_k=3)
    val = spectral_profile(_map(rng, 100))
    thr = fit_threshold(stats.profile_score(val), quantile=0.99)
    # a flat, bright spectrum (noise, square waves) and one with strong attacks
    bright = spectral_profile(_map(rng, 20, tilt=0.0))
    attacks = _map(rng, 20)
    attacks[:, :, ::4] += 0.6
    assert (stats.profile_score(bright) > thr).all()
    assert (stats.profile_score(spectral_profile(attacks)) > thr).all()
    assert (stats.profile_score(spectral_profile(_map(rng, 200))) > thr).mean() < 0.05
    stats.save(tmp_path)
    back = OODStats.load(tmp_path)
    assert back.profile_k == 3 and back.has_profile
    np.testing.assert_allclose(back.profile_score(bright), stats.profile_score(bright), atol=2e-3)


def test_check_domain_needs_every_check_to_pass():
    rng = np.random.default_rng(3)
    train = _map(rng, 200)
    emb = rng.normal(size=(200, 4))
    stats = fit_ood(emb, np.zeros(200, int), spectral_profile(train))
    card = {"method": "both", "quantile": 0.99,
            "checks": {"embedding": {"threshold": 100.0}, "spectral_profile": {"threshold": 0.01}}}
    same_emb = rng.normal(size=(5, 4))
    facts = check_domain(stats, card, same_emb, spectral_profile(_map(rng, 5, tilt=0.0)))
    assert facts["available"] and not facts["in_domain"]
    assert [c["in_domain"] for c in facts["checks"]] == [True, False]
    assert "average spectrum" in describe_failures(facts)
    ok = check_domain(stats, card, same_emb, spectral_profile(_map(rng, 5)))
    assert ok["in_domain"] and describe_failures(ok) is None
    # an older card with only the embedding threshold runs the embedding check alone
    old = check_domain(stats, {"threshold": 100.0}, same_emb, spectral_profile(_map(rng, 5, tilt=0.0)))
    assert old["in_domain"] and [c["name"] for c in old["checks"]] == ["embedding"]
    assert check_domain(stats, {}, same_emb) == {"available": False}


def test_a_score_just_past_its_limit_never_reads_as_the_limit():
    """Review (session 46): a domain score of 0.5004 against its limit 0.5 read
    "0.500 > threshold 0.500" in the verdict's reasons, a comparison that reads false."""
    facts = {"checks": [{"description": "average spectrum", "in_domain": False,
                         "score": 0.5004, "threshold": 0.5}]}
    assert describe_failures(facts) == "average spectrum: 0.5004 > threshold 0.5000"
    facts["checks"][0]["score"] = 0.73
    assert describe_failures(facts) == "average spectrum: 0.730 > threshold 0.500"


def test_the_profile_reference_finalize_measures_with_is_the_one_saved(tmp_path):
    """Review of finalize: the spectral-profile threshold was set with the reference as
    fitted (float32) while ood.safetensors stores it as float16, so a scan's scores differed
    from those the threshold and the card's flagged shares were measured on (2 of 200
    validation clips flagged in memory, 3 with the saved file)."""
    rng = np.random.default_rng(0)
    base = rng.normal(size=128)
    stats = fit_ood(rng.normal(size=(400, 4)), np.zeros(400, int),
                    base + 0.05 * rng.normal(size=(400, 128)))
    val = base + 0.05 * rng.normal(size=(200, 128))
    stats.save(tmp_path)
    np.testing.assert_array_equal(OODStats.load(tmp_path).profile_score(val),
                                  stats.profile_score(val))


def test_windows_of_unknown_source_join_no_class_mean():
    """Finalize gave a training clip of unknown source (its detection target masked) the class
    'human': its windows pulled the human mean, and the domain check's centre, towards them.
    They now join no class mean and not the covariance (the spectral profiles keep them)."""
    from musicbrain_cli.model.ood import UNKNOWN_CLASS

    rng = np.random.default_rng(1)
    human, ai = rng.normal(0.0, 1.0, (300, 8)), rng.normal(3.0, 1.0, (300, 8))
    odd = rng.normal(-20.0, 1.0, (300, 8))              # of unknown source
    alone = fit_ood(np.concatenate([human, ai]), np.repeat([0, 1], 300))
    classes = np.concatenate([np.repeat([0, 1], 300), np.full(300, UNKNOWN_CLASS)])
    profiles = np.abs(rng.normal(size=(900, 4)))
    mixed = fit_ood(np.concatenate([human, ai, odd]), classes, profiles)
    np.testing.assert_allclose(mixed.means, alone.means)
    np.testing.assert_allclose(mixed.precision, alone.precision)
    assert len(mixed.profile_reference) == 900
    with pytest.raises(ValueError, match="known class"):
        fit_ood(odd[:5], np.full(5, UNKNOWN_CLASS))
