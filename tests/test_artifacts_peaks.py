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
