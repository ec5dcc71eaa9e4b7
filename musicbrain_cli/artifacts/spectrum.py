"""Average spectrum at the file's native rate, and its residue above a lower envelope.

The first stage of the decoder-artifact line: path -> mono samples at the NATIVE rate (the
content model resamples to 22.05 kHz, which would erase lines above 11 kHz and blur their
positions) -> long-FFT Welch average power spectrum in dB -> residue = spectrum minus its
lower envelope. Decoder artifacts are narrow lines at fixed frequencies that survive the
average over the whole track, while music moves; the residue keeps narrow lines and drops
the broad spectral shape (Afchar et al., "A Fourier Explanation of AI-Music Artifacts",
ISMIR 2025, Sec. 4: average spectrum, peaks above a lower envelope).

Units: frequencies in Hz on an absolute axis (``bin * sample_rate / n_fft``), levels in
dB (10 log10 of power, relative to full scale: with "spectrum" scaling a full-scale sine's
peak bin holds its mean power, 1/2, about -3 dB; the level does not matter for a residue).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from musicbrain_cli.errors import ConfigError

#: FFT length of the Welch average. 2^14 gives 2.7 Hz bins at 44.1 kHz and 1.5 Hz at 24
#: kHz: fine enough to resolve lines 15 Hz apart (a 24 kHz decoder with 1600x upsampling)
#: and to pin a comb's spacing to a fraction of a bin once tens of its teeth are seen.
N_FFT = 16384
#: Only this much audio is analysed (from the start): bounded work for hour-long files.
#: 180 s is more than 300 Welch frames at 48 kHz, far beyond what a stable average needs.
MAX_ANALYSIS_S = 180.0
#: Width of the lower envelope's opening, Hz. Wider than a line (a Hann main lobe is 4 bins,
#: under 12 Hz at 48 kHz) so lines are removed from the envelope; narrower than the gap
#: between teeth of the finest comb looked for, so the envelope still reaches between them.
ENVELOPE_HZ = 30.0
#: Residue bins below this frequency are set to 0: the lowest bins hold DC and rumble.
MIN_ANALYSIS_HZ = 20.0
#: The level (dB below the spectrum's 99th percentile) under which the spectrum counts as
#: empty, for the bandwidth estimate (a lossy encoder's lowpass, a low original rate).
BANDWIDTH_DROP_DB = 60.0


@dataclass(frozen=True)
class AverageSpectrum:
    """The average spectrum of one track and its residue.

    ``freqs_hz``, ``power_db``, ``envelope_db``, ``residue_db``: ``np.ndarray
    [shape=(n_fft // 2 + 1,), dtype=float64]``, Hz and dB. ``bandwidth_hz`` is the highest
    frequency with content (see :data:`BANDWIDTH_DROP_DB`); ``analysed_s`` the seconds
    averaged; ``frames`` the number of Welch frames.
    """

    sample_rate: int
    n_fft: int
    freqs_hz: np.ndarray = field(repr=False)
    power_db: np.ndarray = field(repr=False)
    envelope_db: np.ndarray = field(repr=False)
    residue_db: np.ndarray = field(repr=False)
    bandwidth_hz: float
    analysed_s: float
    frames: int

    @property
    def bin_hz(self) -> float:
        return self.sample_rate / self.n_fft


def read_native(path: str | os.PathLike, *, max_duration_s: float = MAX_ANALYSIS_S,
                timeout_s: float = 120.0, sample_rate: int | None = None) -> tuple[np.ndarray, int]:
    """Mono float32 samples of ``path`` at its native rate: ``(y [shape=(n,)], rate Hz)``.

    Uses the project's isolated decoder (:func:`musicbrain_cli.audio.intake.probe` for the rate,
    then :func:`~musicbrain_cli.audio.intake.load_audio` in a killable child process), so an
    untrusted file gets the same deadline and crash isolation as in the content line.
    Decoding at the header's own rate means libswresample never runs, so no resampler
    filter adds or removes lines. ``sample_rate``: the header's rate when the caller has
    already probed the file (the scan has), which saves a second probe (hash, tags and a C2PA
    child per file). Raises the audio intake's typed errors.
    """
    from musicbrain_cli.audio import intake as audio

    if sample_rate is None:
        sample_rate = audio.probe(path).sample_rate
    y = audio.load_audio(path, sample_rate=sample_rate, max_duration_s=max_duration_s, timeout_s=timeout_s)
    return y, int(sample_rate)


def _envelope_bins(bin_hz: float, envelope_hz: float) -> int:
    return max(7, int(round(envelope_hz / bin_hz)) | 1)  # odd, centred


#: Frames transformed per batch in :func:`welch_power`: bounds the batch's memory
#: (64 x 16,384 complex values, 8 MB) while amortising the per-call cost.
WELCH_BATCH = 64


def welch_power(y: np.ndarray, n_fft: int) -> np.ndarray:
    """One-sided Welch power spectrum of ``y [shape=(n,)]``: Hann frames of ``n_fft`` samples
    overlapping by ``n_fft // 2``, no detrending, power averaged over frames, "spectrum" scaling
    (``[shape=(n_fft // 2 + 1,)]``, units of ``y`` squared).

    The same quantity as ``scipy.signal.welch(y, window="hann", nperseg=n_fft,
    noverlap=n_fft // 2, detrend=False, scaling="spectrum", average="mean")[1]`` (equal to
    about 1e-15 relative, ``tests/test_artifacts_peaks.py``), computed as batched real FFTs
    of a strided view of ``y``: about 5x faster than scipy's general short-time FFT path,
    which dominated the artifact line's time in a scan (issue 27).
    """
    from scipy.fft import rfft
    from scipy.signal import get_window

    win = get_window("hann", n_fft)
    frames = np.lib.stride_tricks.sliding_window_view(y, n_fft)[::n_fft - n_fft // 2]
    power = np.zeros(n_fft // 2 + 1)
    for start in range(0, len(frames), WELCH_BATCH):
        spec = rfft(frames[start:start + WELCH_BATCH] * win, axis=-1)
        power += (spec.real ** 2 + spec.imag ** 2).sum(axis=0)
    power /= len(frames) * win.sum() ** 2
    power[1:-1 if n_fft % 2 == 0 else None] *= 2.0        # one-sided: all but DC and Nyquist
    return power


def average_spectrum(y: np.ndarray, sample_rate: int, *, n_fft: int = N_FFT,
                     envelope_hz: float = ENVELOPE_HZ, min_hz: float = MIN_ANALYSIS_HZ) -> AverageSpectrum:
    """Welch average of ``y [shape=(n,)]`` at ``sample_rate`` Hz, with its residue.

    Welch (1967): Hann frames of ``n_fft`` samples, hop ``n_fft // 2``, power averaged
    (:func:`welch_power`; deterministic). The lower envelope is a morphological opening
    (running minimum then running maximum over ``envelope_hz``) followed by a running mean
    of the same width; the residue is ``power_db - envelope_db`` (>= 0 where the opening
    holds, small negative values are possible after the smoothing).
    Raises :class:`ConfigError` when ``y`` is shorter than two frames.
    """
    from scipy.ndimage import maximum_filter1d, minimum_filter1d, uniform_filter1d

    y = np.array(y, dtype=np.float64)        # a copy, centred in place: one 180 s copy, not two
    if y.ndim != 1:
        raise ConfigError(f"samples must be mono [shape=(n,)], got shape {y.shape}")
    if y.size < 2 * n_fft:
        raise ConfigError(f"need at least {2 * n_fft} samples for n_fft={n_fft}, got {y.size}")
    y -= y.mean()
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    pxx = welch_power(y, n_fft)
    power_db = 10.0 * np.log10(pxx + 1e-20)
    width = _envelope_bins(sample_rate / n_fft, envelope_hz)
    opened = maximum_filter1d(minimum_filter1d(power_db, width, mode="nearest"), width, mode="nearest")
    envelope = uniform_filter1d(opened, width, mode="nearest")
    residue = power_db - envelope
    residue[freqs < min_hz] = 0.0
    top = float(np.percentile(power_db, 99))
    alive = np.nonzero(envelope > top - BANDWIDTH_DROP_DB)[0]
    bandwidth = float(freqs[alive[-1]]) if alive.size else 0.0
    frames = 1 + (y.size - n_fft) // (n_fft // 2)
    return AverageSpectrum(sample_rate=int(sample_rate), n_fft=n_fft, freqs_hz=freqs, power_db=power_db,
                           envelope_db=envelope, residue_db=residue, bandwidth_hz=bandwidth,
                           analysed_s=y.size / sample_rate, frames=int(frames))
