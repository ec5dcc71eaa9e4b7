"""Tests of musicbrain_cli.features: sizes, axes, levels, CQT, failures, CPU/GPU agreement."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from musicbrain_cli.errors import ConfigError
from musicbrain_cli.features import (
    CPU_GPU_ATOL,
    FrontEnd,
    FrontEndConfig,
    bin_frequencies,
    frame_times,
    frames_to_seconds,
    seconds_to_frames,
)

SR = 22050


def tone(freq: float, config: FrontEndConfig, *, amplitude: float = 1.0) -> np.ndarray:
    t = np.arange(config.n_samples) / config.sample_rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def run(front_end: FrontEnd, *waves: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return front_end(torch.from_numpy(np.stack(waves))).numpy()


def to_db(value: np.ndarray, config: FrontEndConfig) -> np.ndarray:
    return (value + 1.0) * config.db_scale - config.db_offset


@pytest.fixture(scope="module")
def short() -> FrontEndConfig:
    return FrontEndConfig(window_s=2.0, hop_s=1.0)


@pytest.fixture(scope="module")
def short_fe(short) -> FrontEnd:
    return FrontEnd(short)


def test_default_sizes_are_derived_exactly():
    c = FrontEndConfig()
    assert c.n_samples == 220500 == 10 * SR
    assert c.n_frames == 500 == c.n_samples // c.hop_length
    assert c.shape == (1, 256, 500)
    assert c.hop_samples == 5 * SR


@pytest.mark.parametrize("kwargs, fragment", [
    ({"hop_length": 512}, "whole number of hops"),
    ({"window_s": 10.00001}, "whole number of samples"),
    ({"kind": "stft"}, "unknown front end kind"),
    ({"n_bins": 0}, "n_bins"),
    ({"f_max": 20000.0}, "Nyquist"),
    ({"hop_s": 12.0}, "exceeds window_s"),
    ({"kind": "cqt", "n_bins": 256, "bins_per_octave": 24}, "below Nyquist"),
])
def test_bad_configs_raise_naming_the_value(kwargs, fragment):
    with pytest.raises(ConfigError, match=fragment):
        FrontEndConfig(**kwargs)


def test_too_many_mel_bands_for_fft_raise():
    with pytest.raises(ConfigError, match="no FFT bin"):
        FrontEnd(FrontEndConfig(n_fft=256, n_bins=256, window_s=1.0, hop_s=1.0))


def test_config_round_trip_and_unknown_keys():
    c = FrontEndConfig(kind="cqt", n_bins=168, bins_per_octave=24, f_min=32.7)
    assert FrontEndConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ConfigError, match="unknown front end parameters"):
        FrontEndConfig.from_dict({**c.to_dict(), "nfft": 4})


def test_output_shape_dtype_and_input_checks(short, short_fe):
    out = run(short_fe, np.zeros(short.n_samples, np.float32), tone(440, short))
    assert out.shape == (2, 1, 256, 100) and out.dtype == np.float32
    # Silence sits exactly on the floor: -1.
    assert np.all(out[0] == -1.0)
    with pytest.raises(ConfigError, match=r"\[B, 44100\]"):
        short_fe(torch.zeros(2, 1000))
    with pytest.raises(ConfigError, match="float32"):
        short_fe(torch.zeros(1, short.n_samples, dtype=torch.float64))


@pytest.mark.parametrize("row", [40, 120, 200])
def test_tone_lands_on_its_row_at_about_zero_dbfs(short, short_fe, row):
    freqs = bin_frequencies(short)
    out = run(short_fe, tone(float(freqs[row]), short))[0, 0]
    column = out[:, 50]
    assert int(column.argmax()) == row
    # Fixed scaling: a full-scale sinusoid reads about 0 dBFS (Hann leakage adds < 2 dB).
    assert abs(to_db(column[row], short)) < 2.0


def test_level_is_absolute_not_normalised(short, short_fe):
    loud, quiet = run(short_fe, tone(1000.0, short), tone(1000.0, short, amplitude=0.1))[:, 0]
    row = int(loud[:, 50].argmax())
    # 20 dB quieter -> exactly 20 dB lower in the map (no per-window normalisation).
    assert to_db(loud[row, 50], short) - to_db(quiet[row, 50], short) == pytest.approx(20.0, abs=1e-3)


def test_frame_times_locate_a_click(short, short_fe):
    times = frame_times(short)
    assert times[0] == 0.0 and times[1] == pytest.approx(0.02)
    assert len(times) == short.n_frames
    for click_s in (0.5, 1.23):
        y = np.zeros(short.n_samples, np.float32)
        y[int(round(click_s * SR))] = 1.0
        out = run(short_fe, y)[0, 0]
        energy = out[100:].mean(axis=0)     # broadband rows
        assert abs(times[int(energy.argmax())] - click_s) <= 0.01 + 1e-9
    assert seconds_to_frames(frames_to_seconds(37, short), short) == pytest.approx(37)


def test_bin_frequencies_are_ascending_and_within_range():
    c = FrontEndConfig()
    f = bin_frequencies(c)
    assert f.shape == (256,) and np.all(np.diff(f) > 0)
    assert c.f_min < f[0] and f[-1] < c.f_max
    # Resolution the docstring promises: adjacent mel bins < 15 Hz apart below 1 kHz, and
    # partials of A3 (220 Hz apart) > 2 bins apart up to 4 kHz.
    assert np.diff(f)[f[:-1] < 1000].max() < 15
    assert np.diff(f)[f[:-1] < 4000].max() < 110


def test_cqt_tone_peaks_at_its_bin_at_zero_dbfs():
    c = FrontEndConfig(kind="cqt", n_bins=168, bins_per_octave=24, f_min=32.70319566,
                       window_s=2.0, hop_s=1.0)
    freqs = bin_frequencies(c)
    assert freqs[24] == pytest.approx(2 * freqs[0])
    fe = FrontEnd(c)
    out = run(fe, tone(440.0, c))[0, 0]
    row = int(np.argmin(np.abs(freqs - 440.0)))
    assert int(out[:, 50].argmax()) == row
    assert abs(to_db(out[row, 50], c)) < 0.5
    # Constant Q: two bins (a whole tone) away the tone is at least 10 dB down.
    assert to_db(out[row, 50], c) - to_db(out[row + 2, 50], c) > 10


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("kind", ["logmel", "cqt"])
def test_cpu_and_gpu_agree(kind):
    kw = {"n_bins": 168, "bins_per_octave": 24, "f_min": 32.7} if kind == "cqt" else {}
    c = FrontEndConfig(kind=kind, window_s=2.0, hop_s=1.0, **kw)
    rng = np.random.default_rng(0)
    y = (0.3 * rng.standard_normal((2, c.n_samples)) + tone(440, c)).astype(np.float32)
    fe = FrontEnd(c)
    cpu = run(fe, *y)
    with torch.no_grad():
        gpu = fe.to("cuda")(torch.from_numpy(y).cuda()).cpu().numpy()
    relevant = cpu > cpu.max(axis=(2, 3), keepdims=True) - 80 / c.db_scale
    np.testing.assert_allclose(gpu[relevant], cpu[relevant], atol=CPU_GPU_ATOL, rtol=0)


def test_peak_normalize_makes_the_map_level_invariant():
    import numpy as np
    import torch

    from musicbrain_cli.features import FrontEnd, FrontEndConfig

    cfg = FrontEndConfig(window_s=1.0, hop_s=1.0, peak_normalize=0.9)
    t = torch.arange(cfg.n_samples) / cfg.sample_rate
    y = (0.3 * torch.sin(2 * np.pi * 440 * t)).unsqueeze(0)
    fe, plain = FrontEnd(cfg), FrontEnd(FrontEndConfig(window_s=1.0, hop_s=1.0))
    loud, quiet = fe(y * 2.0), fe(y * 0.5)                  # +6 dB and -6 dB
    torch.testing.assert_close(loud, quiet, rtol=0, atol=1e-5)
    assert not torch.allclose(plain(y * 2.0), plain(y * 0.5), atol=1e-3)   # off by default
    silent = torch.zeros(1, cfg.n_samples)
    torch.testing.assert_close(fe(silent), plain(silent))   # silence is never amplified
    with pytest.raises(ConfigError):
        FrontEndConfig(peak_normalize=1.5)


def test_silence_level_is_the_map_of_digital_silence():
    for config in (FrontEndConfig(), FrontEndConfig(amin=1e-8, db_scale=40.0)):
        spec = FrontEnd(config)(torch.zeros(1, config.n_samples))
        assert config.silence_level == pytest.approx(float(spec.max()), abs=1e-6)
        assert config.silence_level == pytest.approx(float(spec.min()), abs=1e-6)
    assert FrontEndConfig().silence_level == pytest.approx(-1.0)


def _consecutive(config: FrontEndConfig, n_windows: int, seed: int = 0) -> torch.Tensor:
    """Windows cut at the config's hop from one signal of changing level, with a silent
    stretch and a zero-padded tail (as the scan's last window can be)."""
    rng = np.random.default_rng(seed)
    hop = config.hop_samples
    n = hop * (n_windows - 1) + config.n_samples
    level = np.repeat(rng.uniform(0.01, 0.6, n // hop + 1), hop)[:n]
    signal = (rng.standard_normal(n) * level).astype(np.float32)
    signal[hop: 2 * hop] = 0.0
    signal[-hop // 3:] = 0.0
    return torch.from_numpy(np.stack([signal[k * hop: k * hop + config.n_samples]
                                      for k in range(n_windows)]))


@pytest.mark.parametrize("peak", [0.0, 0.9])
@pytest.mark.parametrize("window_s, hop_s", [(2.0, 1.0), (2.0, 0.5), (1.0, 1.0)])
def test_shared_frames_match_per_window_maps(window_s, hop_s, peak):
    """forward_consecutive (the scan's path) gives forward's maps: only the rounding of the
    gain applied after the filterbank differs."""
    c = FrontEndConfig(window_s=window_s, hop_s=hop_s, peak_normalize=peak)
    fe = FrontEnd(c)
    waves = _consecutive(c, 6)
    with torch.no_grad():
        np.testing.assert_allclose(fe.forward_consecutive(waves).numpy(), fe(waves).numpy(),
                                   rtol=0, atol=1e-6)


def test_shared_frames_fall_back_unless_windows_overlap_exactly():
    c = FrontEndConfig(window_s=2.0, hop_s=1.0)
    fe = FrontEnd(c)
    waves = _consecutive(c, 4)
    # window 2 no longer continues window 1 sample for sample, in frames the shared path
    # would take from window 1
    waves[2, c.n_samples // 4] += 0.25
    with torch.no_grad():
        assert torch.equal(fe.forward_consecutive(waves), fe(waves))
        assert torch.equal(fe.forward_consecutive(waves[:1]), fe(waves[:1]))
    # a hop that is not a whole number of frames cannot share frames either
    odd = FrontEndConfig(window_s=2.0, hop_s=0.99)
    assert odd.hop_samples % odd.hop_length
    waves = _consecutive(odd, 3)
    with torch.no_grad():
        assert torch.equal(FrontEnd(odd).forward_consecutive(waves), FrontEnd(odd)(waves))


@pytest.mark.parametrize("peak", [0.0, 0.9])
def test_a_dc_offset_leaves_the_map_as_it_was(peak):
    """A constant offset carries no music: the map of a window with +0.1 added is the map of
    the window (version 0.3.8). Before, the offset moved the peak-normalising gain and made a
    step at the zero-padded edges, a broadband click in the first and last frames."""
    c = FrontEndConfig(window_s=2.0, hop_s=1.0, peak_normalize=peak)
    fe = FrontEnd(c)
    waves = _consecutive(c, 5)
    shifted = waves + 0.1
    with torch.no_grad():
        plain = fe(waves).numpy()
        np.testing.assert_allclose(fe(shifted).numpy(), plain, rtol=0, atol=1e-4)
        np.testing.assert_allclose(fe.forward_consecutive(shifted).numpy(), plain,
                                   rtol=0, atol=1e-4)
        # what the old map did: the step at the padded edges lifts the first frame's bands
        raw = fe.power(shifted * (fe._gain(shifted) if peak else 1.0))
        old_first = fe._to_map(raw)[:, 0, :, 0].numpy()
        assert (old_first - plain[:, 0, :, 0]).max() > 0.1


def test_shared_frames_keep_the_offset_out_only_where_no_band_reads_it():
    """Each window's own mean comes off in the shared path as in forward; a filterbank that
    reads FFT bins 0-1 (f_min 0) cannot share frames and falls back."""
    c = FrontEndConfig(window_s=2.0, hop_s=1.0, peak_normalize=0.9)
    plain = _consecutive(c, 4)
    n, hop = c.n_samples, c.hop_samples
    signal = torch.cat([plain[0], plain[1:, n - hop:].reshape(-1)])
    signal = signal + torch.linspace(-0.2, 0.2, signal.numel())     # a slow drift
    waves = torch.stack([signal[k * hop: k * hop + n] for k in range(4)])
    means = waves.mean(dim=1)
    assert float(means[-1] - means[0]) > 0.2        # each window has its own offset
    with torch.no_grad():   # float32 rounding of the offsets: 1e-4 map units is 0.005 dB
        np.testing.assert_allclose(FrontEnd(c).forward_consecutive(waves).numpy(),
                                   FrontEnd(c)(waves).numpy(), rtol=0, atol=1e-4)
    low = FrontEndConfig(window_s=2.0, hop_s=1.0, f_min=5.0)
    fe = FrontEnd(low)
    assert not fe._dc_blind and FrontEnd(c)._dc_blind
    with torch.no_grad():
        assert torch.equal(fe.forward_consecutive(waves), fe(waves))
