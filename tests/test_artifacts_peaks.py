"""The artifact line's spectrum and comb search on seeded synthetic signals."""

from __future__ import annotations

import numpy as np
import pytest

from artifact_signals import pink, piano_melody, upsampled
from musicbrain_cli.artifacts import peaks
from musicbrain_cli.artifacts.detector import analyse_samples
from musicbrain_cli.artifacts.spectrum import N_FFT, average_spectrum
from musicbrain_cli.errors import ConfigError


@pytest.mark.parametrize("rate, strides", [
    (16000, (4, 4)),          # 1000 Hz comb, 7 teeth below 8 kHz
    (24000, (8, 5, 4, 2)),    # EnCodec-24k-like: 75 Hz comb
    (48000, (6, 5, 4, 2)),    # 200 Hz comb at 48 kHz
])
def test_comb_spacing_is_rate_over_stride_product(rate, strides):
    a = analyse_samples(upsampled(rate, strides, 8.0, seed=1), rate)
    want = rate / np.prod(strides)
    assert a.comb.spacing_hz is not None
    assert abs(a.comb.spacing_hz - want) < a.spectrum.bin_hz
    assert a.comb.teeth >= 0.8 * a.comb.expected_teeth  # nearly every multiple is a tooth
    # The teeth are where the strides put them: each within a bin of a multiple of want.
    k = np.rint(a.comb.teeth_hz / want)
    assert np.all(np.abs(a.comb.teeth_hz - k * want) <= 1.5 * a.spectrum.bin_hz)
    # The implied upsampling factor at the true rate is the stride product.
    assert a.factors.get(rate) == int(np.prod(strides))


@pytest.mark.parametrize("name", ["white", "pink", "piano"])
def test_no_comb_on_clean_audio(name):
    rate = 44100
    y = {"white": lambda: 0.1 * np.random.default_rng(3).standard_normal(8 * rate).astype(np.float32),
         "pink": lambda: pink(8 * rate, seed=3),
         "piano": lambda: piano_melody(rate, 10.0, seed=3)}[name]()
    a = analyse_samples(y, rate)
    upsampled_strength = analyse_samples(upsampled(rate, (8, 8, 4, 2), 8.0, seed=3), rate).comb.log10_p
    # Either no comb at all, or one far weaker and sparser than a decoder's.
    assert a.comb.spacing_hz is None or (a.comb.log10_p < 0.1 * upsampled_strength and a.comb.coverage < 0.3)


def test_residue_is_flat_noise_without_lines():
    rate = 24000
    s = average_spectrum(pink(10 * rate, seed=4), rate)
    assert s.freqs_hz.shape == s.residue_db.shape == (N_FFT // 2 + 1,)
    assert s.bin_hz == pytest.approx(rate / N_FFT)
    assert np.median(s.residue_db[s.freqs_hz > 100]) < 3.0   # envelope follows the 1/f slope
    assert s.bandwidth_hz > 0.9 * rate / 2


def test_lowpass_edge_sets_bandwidth():
    from scipy.signal import butter, sosfiltfilt

    rate = 44100
    y = sosfiltfilt(butter(12, 8000, fs=rate, output="sos"), np.random.default_rng(5).standard_normal(8 * rate))
    s = average_spectrum(y.astype(np.float32), rate)
    assert 7000 < s.bandwidth_hz < 13000


def test_spectrum_rejects_short_or_stereo_input():
    with pytest.raises(ConfigError, match="at least"):
        average_spectrum(np.zeros(1000, np.float32), 44100)
    with pytest.raises(ConfigError, match="mono"):
        average_spectrum(np.zeros((2, 80000), np.float32), 44100)


def test_upsampling_factors_need_an_integer_fit():
    comb = peaks.Comb(spacing_hz=75.0, teeth_hz=np.arange(1, 150) * 75.0, teeth=149, expected_teeth=159,
                      log10_p=100.0, tooth_prominence_db=10.0, high_share=0.9)
    f = peaks.upsampling_factors(comb, bin_hz=1.46)
    assert f[24000] == 320 and f[48000] == 640 and 32000 not in f  # 32000 / 75 = 426.7
    none = peaks.Comb(None, np.zeros(0), 0, 0, 0.0, 0.0, 0.0)
    assert peaks.upsampling_factors(none, bin_hz=1.46) == {}


def test_a_stated_factor_agrees_with_the_measured_spacing():
    # A sustained sawtooth whose 68 harmonics reach the top of a 44.1 kHz band pins its
    # spacing to a hundred-thousandth of a hertz: 314.957 Hz, so 44100 / spacing = 140.019
    # +/- 0.009 (half a bin over the top tooth's multiple). The finding stated "314.96 Hz =
    # 22.05 kHz / 70, 44.1 kHz / 140" (44100 / 140 = 315.00 Hz, its 68th multiple 1.1 bins from
    # the line a spectrum analyser shows): the classifier's test admits a whole number within
    # 0.02, wider than what the spacing allows, and a statement is held to the measurement.
    rate = 44100
    n = 12 * rate
    t = np.arange(n) / rate
    rng = np.random.default_rng(0)
    d = rate / 140.019
    y = sum(np.sin(2 * np.pi * k * d * t + rng.uniform(0, 2 * np.pi)) / k for k in range(1, int(rate / 2 / d) + 1))
    y = (0.5 * y / np.max(np.abs(y)) + 1e-3 * rng.standard_normal(n)).astype(np.float32)
    a = analyse_samples(y, rate)
    assert a.comb.spacing_hz == pytest.approx(d, abs=1e-3)
    assert 44100 not in a.stated_factors and 22050 not in a.stated_factors, a.stated_factors
    # the classifier's test is as the line was fitted (its feature, and so P(AI), are unchanged)
    assert a.factors == {22050: 70, 44100: 140}
    # the same spacing a whole number of samples exactly: stated
    comb = peaks.Comb(spacing_hz=rate / 140, teeth_hz=np.arange(1, 69) * rate / 140, teeth=68, expected_teeth=68,
                      log10_p=100.0, tooth_prominence_db=30.0, high_share=1.0)
    assert peaks.upsampling_factors(comb, bin_hz=rate / N_FFT, rates_hz=(22050, 44100), determined=True) == {
        22050: 70, 44100: 140}
    off = peaks.Comb(spacing_hz=d, teeth_hz=np.arange(1, 69) * d, teeth=68, expected_teeth=68,
                     log10_p=100.0, tooth_prominence_db=30.0, high_share=1.0)
    assert peaks.upsampling_factors(off, bin_hz=rate / N_FFT, rates_hz=(22050, 44100), determined=True) == {}


@pytest.mark.parametrize("n_fft, n", [(1024, 1024 * 7 + 300), (1000, 20_000), (999, 8_191), (16384, 3 * 44100)])
def test_welch_power_is_scipys_welch(n_fft, n):
    # The artifact line's features were fitted on scipy.signal.welch's average; the faster
    # batched version must give the same spectrum (incomplete last frame dropped, one-sided
    # doubling without DC and, for an even length, Nyquist).
    from scipy.signal import welch

    from musicbrain_cli.artifacts.spectrum import welch_power

    y = np.random.default_rng(n).standard_normal(n) * np.linspace(0.1, 2.0, n)
    _, want = welch(y, window="hann", nperseg=n_fft, noverlap=n_fft // 2, detrend=False,
                    scaling="spectrum", average="mean")
    got = welch_power(y, n_fft)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)


# --- the comb's periodic component: a naive oscillator's two levels ------------------------

def _drone(rate: int, period: int, *, duty: float, level: float, seconds: float = 12.0) -> np.ndarray:
    """Pink noise plus a naive pulse wave repeating every ``period`` samples."""
    n = int(seconds * rate)
    pulse = np.where(np.arange(n) % period < duty * period, 1.0, -1.0)
    return (pink(n, seed=period) + level * pulse).astype(np.float32)


@pytest.mark.parametrize("period, duty", [(200, 0.5), (100, 0.125), (441, 0.25)])
def test_a_naive_pulse_drone_period_is_two_level(period, duty):
    rate = 44100
    y = _drone(rate, period, duty=duty, level=0.03)
    a = analyse_samples(y, rate)
    assert abs(a.comb.spacing_hz - rate / period) < 0.01 * rate / period
    assert a.two_level >= 0.95


@pytest.mark.parametrize("rate, strides, seed", [(44100, (8, 5, 4, 2), 9), (44100, (4, 4, 4, 4), 2),
                                                  (24000, (8, 5, 4, 2), 1), (48000, (6, 5, 4, 2), 4)])
def test_a_decoders_period_takes_many_levels(rate, strides, seed):
    a = analyse_samples(upsampled(rate, strides, 12.0, seed=seed), rate)
    assert abs(a.comb.spacing_hz - rate / np.prod(strides)) < 0.01 * rate / np.prod(strides)
    assert 0.3 < a.two_level < 0.9


def test_the_period_is_read_only_when_it_is_a_whole_number_of_samples_and_repeats():
    rate = 44100
    y = _drone(rate, 200, duty=0.5, level=0.03)
    assert peaks.period_waveform(y, rate, rate / 200) is not None
    assert peaks.period_waveform(y, rate, 220.0) is None                       # 200.45 samples
    assert peaks.period_waveform(y, rate, rate / 8) is None                    # too short a period
    assert peaks.period_waveform(y[: 7 * 200], rate, rate / 200) is None       # too few periods
    assert peaks.period_waveform(y, rate, None) is None
    assert peaks.two_level_share(None) == 0.0


def test_the_music_left_in_the_average_is_measured_and_a_weak_component_is_not_read():
    rate, period = 44100, 200
    noise = np.random.default_rng(0).standard_normal(rate * 12).astype(np.float32)
    w, left = peaks.period_waveform(noise, rate, rate / period)
    m = noise.size // period
    assert left == pytest.approx(1.0 / m, rel=0.05)          # white noise of variance 1, m periods
    assert np.var(w) == pytest.approx(left, rel=0.25)        # what stays of it in the average
    assert peaks.two_level_share((w, left)) == 0.0           # no component above that noise
    pulse = np.where(np.arange(noise.size) % period < period // 2, 1.0, -1.0)
    strong = peaks.period_waveform(noise + 0.5 * pulse, rate, rate / period)
    assert peaks.two_level_share(strong) > 0.99


# --- held steps: a sample-and-hold's waveform changes once every h samples ------------------

def _held(y: np.ndarray, hold: int, wet: float = 1.0) -> np.ndarray:
    held = np.repeat(y[::hold], hold)[: y.size]
    return (wet * held + (1.0 - wet) * y).astype(np.float32)


@pytest.mark.parametrize("hold, period", [(4, 824), (8, 824), (5, 1000), (3, 2205)])
def test_a_held_waveform_changes_at_one_phase_of_its_hold(hold, period):
    rate = 44100
    y = _held(piano_melody(rate, 12.0, seed=hold), hold)
    steps = peaks.hold_steps(y, rate, rate / period)
    assert steps[hold] > 0.99
    assert all(steps[h] > 0.99 for h in steps if hold % h == 0)        # its divisors hold too
    assert all(steps[h] < 0.75 for h in steps if h % hold == 0 and h > hold)
    assert set(steps) == {h for h in range(peaks.MIN_HOLD, peaks.MAX_HOLD + 1) if period % h == 0}


def test_unheld_music_spreads_its_change_evenly_and_a_decoder_unevenly_but_not_at_one_phase():
    rate = 44100
    for y in (piano_melody(rate, 12.0, seed=3), pink(12 * rate, seed=3)):
        steps = peaks.hold_steps(y, rate, rate / 320)
        assert set(steps) == {4, 5, 8, 10, 16, 20, 32, 40, 64}
        for h, share in steps.items():
            assert share < 1.0 / h + 0.05, (h, share)
    for seed in (9, 2):      # zero insertion and short FIRs: each phase has its own gain
        steps = peaks.hold_steps(upsampled(rate, (8, 5, 4, 2), 12.0, seed=seed), rate, rate / 320)
        assert max(steps.values()) < 0.75, steps


def test_a_partly_wet_hold_scores_between():
    rate, hold = 44100, 4
    y = piano_melody(rate, 12.0, seed=5)
    shares = [peaks.hold_steps(_held(y, hold, wet), rate, rate / 400)[hold] for wet in (0.0, 0.5, 0.8, 1.0)]
    assert shares == sorted(shares) and shares[0] < 0.3 and shares[-1] > 0.99


def test_holds_are_read_only_on_a_whole_sample_period_that_repeats():
    rate = 44100
    y = _held(pink(12 * rate), 4)
    assert peaks.hold_steps(y, rate, 220.0) == {}            # 200.45 samples
    assert peaks.hold_steps(y, rate, rate / 2) == {}         # no hold of 3 or more divides 2
    assert peaks.hold_steps(y, rate, None) == {}
    assert peaks.hold_steps(y[: 7 * 400 + 1], rate, rate / 400) == {}    # too few blocks
    assert 4 in peaks.hold_steps(y[: 8 * 400 + 1], rate, rate / 400)
