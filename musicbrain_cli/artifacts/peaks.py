"""Peaks in the residue, and their periodicity: the comb an upsampling decoder leaves.

Physics (Afchar et al., "A Fourier Explanation of AI-Music Artifacts", ISMIR 2025, Sec. 3):
a transposed convolution, zero insertion or nearest-neighbour upsampling by stride ``s``
applied to a signal with a non-zero mean (a bias, a ReLU's positive mean) leaves a
component of period ``s`` samples in the output, i.e. spectral lines at multiples of
``fs_out / s``. In a cascade of strides the lines of a layer sit at multiples of
``fs_out / (product of the strides after... and including it)``, so the finest comb has
spacing ``fs_out / total_upsampling``. The lines sit at the same frequencies whatever the
content, so they survive a whole-track average while music does not.

The search here is a continuous scan over spacings (no list of known generators): each
candidate spacing ``delta`` is scored by how improbable it is that as many of the detected
peaks as observed lie within ``tol`` of a multiple ``k * delta`` if peaks fell at random
(a binomial tail). A sub-multiple ``delta / 2`` doubles the chance of a random hit and a
multiple ``2 delta`` halves the teeth, so the true spacing scores highest.

Confounds with periodic spectra in human audio (why the classifier in :mod:`detector`
does not stop at "a comb exists"): a sustained note's harmonic series (also through 0 Hz,
but decaying and rarely reaching the top of the band), mains hum (50/60 Hz multiples, low
band only), lossy encoders (lowpass edge, not a comb), sample-rate conversion in samplers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Output rates of common neural codecs and vocoders (Hz): EnCodec/Vocos 24 kHz, DAC 16/24/
#: 44.1 kHz, HiFi-GAN 22.05 kHz, MusicGen 32 kHz, Stable Audio 44.1 kHz, 48 kHz EnCodec.
DECODER_RATES_HZ = (16000, 22050, 24000, 32000, 44100, 48000)
#: A peak must stand this far above its surroundings in the residue, dB.
MIN_PROMINENCE_DB = 1.5
#: ... and this many robust standard deviations of the residue above its median.
MIN_PROMINENCE_SIGMA = 4.0
#: At most this many of the most prominent peaks enter the comb scan (bounded work).
MAX_PEAKS = 400
#: A peak counts as a tooth of a comb when within this many FFT bins of ``k * delta``.
TOOTH_TOLERANCE_BINS = 1.5
#: Spacings scanned, Hz: from the finest comb of a 1600x upsampler at 24 kHz ...
MIN_SPACING_HZ = 15.0
#: ... to a third of the band (at least three teeth).
MIN_TEETH = 3


@dataclass(frozen=True)
class Peaks:
    """Peaks of a residue: ``hz`` and ``prominence_db`` ``[shape=(n,)]``, sorted by frequency."""

    hz: np.ndarray
    prominence_db: np.ndarray


@dataclass(frozen=True)
class Comb:
    """The best comb found among the peaks.

    ``spacing_hz`` is refined by least squares over the teeth (``None`` with no comb of at
    least :data:`MIN_TEETH` teeth); ``teeth_hz`` the matched peaks; ``teeth`` their number;
    ``expected_teeth`` the multiples of the spacing inside the analysed band; ``log10_p``
    minus log10 of the chance of at least this many random hits (the comb's strength);
    ``tooth_prominence_db`` the teeth's mean prominence; ``high_share`` the share of
    expected teeth in the upper half of the band that were found; ``prominence_slope_db``
    the least-squares slope of the teeth's prominence over frequency, in dB per band (the
    band's top minus its bottom): a note's harmonics fade towards the top of the band, a
    decoder's lines stand out most where the music is quiet, high up.
    """

    spacing_hz: float | None
    teeth_hz: np.ndarray
    teeth: int
    expected_teeth: int
    log10_p: float
    tooth_prominence_db: float
    high_share: float
    prominence_slope_db: float = 0.0

    @property
    def coverage(self) -> float:
        return self.teeth / self.expected_teeth if self.expected_teeth else 0.0


def find_peaks(freqs_hz: np.ndarray, residue_db: np.ndarray, *, f_max_hz: float,
               min_prominence_db: float = MIN_PROMINENCE_DB, min_sigma: float = MIN_PROMINENCE_SIGMA,
               max_peaks: int = MAX_PEAKS, tolerance_bins: float = TOOTH_TOLERANCE_BINS) -> Peaks:
    """Local maxima of ``residue_db`` up to ``f_max_hz`` that stand out from its noise.

    The residue of a finite Welch average fluctuates (about 0.5-1 dB for 50 frames); the
    threshold is the larger of ``min_prominence_db`` and ``min_sigma`` robust standard
    deviations (1.4826 x MAD) above the residue's median. Peaks are at least
    ``2 * tolerance_bins`` apart so one peak cannot match two teeth.
    """
    from scipy.signal import find_peaks as _find

    band = (freqs_hz > 0) & (freqs_hz <= f_max_hz)
    r = np.where(band, residue_db, 0.0)
    med = float(np.median(r[band])) if band.any() else 0.0
    sigma = 1.4826 * float(np.median(np.abs(r[band] - med))) if band.any() else 0.0
    height = max(min_prominence_db, med + min_sigma * sigma)
    idx, props = _find(r, height=height, prominence=min_prominence_db,
                       distance=max(1, int(np.ceil(2 * tolerance_bins))))
    prom = props["prominences"]
    if idx.size > max_peaks:
        keep = np.sort(np.argsort(-prom, kind="stable")[:max_peaks])
        idx, prom = idx[keep], prom[keep]
    # Parabolic interpolation of the peak position (Smith, "Spectral Audio Signal Processing",
    # quadratic interpolation of spectral peaks): sub-bin positions sharpen the spacing fit.
    left, right = r[np.maximum(idx - 1, 0)], r[np.minimum(idx + 1, r.size - 1)]
    denom = left - 2 * r[idx] + right
    shift = np.where(np.abs(denom) > 1e-12, 0.5 * (left - right) / np.where(denom == 0, 1, denom), 0.0)
    bin_hz = float(freqs_hz[1] - freqs_hz[0])
    hz = (idx + np.clip(shift, -0.5, 0.5)) * bin_hz
    return Peaks(hz=hz.astype(np.float64), prominence_db=prom.astype(np.float64))


def comb_scan(peaks: Peaks, *, bin_hz: float, f_max_hz: float, min_spacing_hz: float = MIN_SPACING_HZ,
              tolerance_bins: float = TOOTH_TOLERANCE_BINS, min_teeth: int = MIN_TEETH,
              chunk: int = 4096) -> Comb:
    """The spacing whose multiples explain the peaks least likely by chance; see the module doc.

    Candidates are log-spaced from ``min_spacing_hz`` to ``f_max_hz / min_teeth`` with a
    relative step of ``tol / (2 f_max)``, so that even the top tooth of the finest comb
    moves by less than half the tolerance between neighbouring candidates.
    """
    from scipy.stats import binom

    tol = tolerance_bins * bin_hz
    f = peaks.hz[peaks.hz <= f_max_hz]
    prom = peaks.prominence_db[peaks.hz <= f_max_hz]
    empty = Comb(None, np.zeros(0), 0, 0, 0.0, 0.0, 0.0)
    hi = f_max_hz / min_teeth
    if f.size < min_teeth or hi <= min_spacing_hz:
        return empty
    step = tol / (2.0 * f_max_hz)
    deltas = np.exp(np.arange(np.log(min_spacing_hz), np.log(hi), np.log1p(step)))
    best_score, best_delta = 0.0, None
    n = f.size
    for start in range(0, deltas.size, chunk):
        d = deltas[start:start + chunk, None]
        k = np.rint(f[None, :] / d)
        hits = ((np.abs(f[None, :] - k * d) <= tol) & (k >= 1)).sum(axis=1)
        p = np.minimum(1.0, 2.0 * tol / d[:, 0])
        score = -binom.logsf(hits - 1, n, p) / np.log(10.0)  # -log10 P(X >= hits)
        score[hits < min_teeth] = 0.0
        i = int(np.argmax(score))
        if score[i] > best_score:
            best_score, best_delta = float(score[i]), float(d[i, 0])
    if best_delta is None:
        return empty
    k = np.rint(f / best_delta)
    match = (np.abs(f - k * best_delta) <= tol) & (k >= 1)
    km, fm = k[match], f[match]
    spacing = float(np.sum(km * fm) / np.sum(km * km))  # least squares through 0 Hz
    expected = int(np.floor(f_max_hz / spacing))
    upper = km > expected / 2
    expected_upper = expected - int(np.floor(expected / 2))
    return Comb(spacing_hz=spacing, teeth_hz=fm, teeth=int(match.sum()), expected_teeth=expected,
                log10_p=best_score, tooth_prominence_db=float(prom[match].mean()),
                high_share=float(upper.sum() / expected_upper) if expected_upper else 0.0,
                prominence_slope_db=_slope(fm / f_max_hz, prom[match]))


def _slope(x: np.ndarray, y: np.ndarray) -> float:
    """Least-squares slope of ``y`` over ``x`` (0 with fewer than 2 distinct ``x``)."""
    if x.size < 2 or np.ptp(x) == 0:
        return 0.0
    xc = x - x.mean()
    return float(np.dot(xc, y - y.mean()) / np.dot(xc, xc))


def upsampling_factors(comb: Comb, *, bin_hz: float, rates_hz: tuple[int, ...] = DECODER_RATES_HZ,
                       determined: bool = False) -> dict[int, int]:
    """For each decoder output rate, the integer upsampling factor ``rate / spacing`` if one fits.

    The spacing is known to about half a bin over ``k_max`` (the top tooth pins it), so ``q =
    rate / spacing`` is known to ``slack = q * 0.5 * bin / (k_max * spacing)``; a rate is listed
    when the nearest integer (>= 2) lies within ``max(slack, 0.02)``, capped at 0.45 (the
    classifier's ``fits_decoder_rate``, as the line was fitted). ``determined=True`` (what a
    finding states) lists a factor only where that uncertainty is under half a unit, so that
    one whole number fits: with a few low teeth at coarse bins (3 teeth below 400 Hz at 192
    kHz: +/- 3 in ``q``) the capped test passes whatever integer lies nearest, and "81.32 Hz
    = 16 kHz / 197" (81.22 Hz) would be stated where 196 and 198 fit as well. It also holds the
    integer to that uncertainty without the 0.02 floor: teeth up to the top of the band pin
    ``q`` to better than 0.01, and "314.96 Hz = 44.1 kHz / 140" (315.00 Hz) was stated where
    the spacing measured ``q`` = 140.019.
    """
    if comb.spacing_hz is None or comb.teeth == 0:
        return {}
    k_max = float(np.max(np.rint(comb.teeth_hz / comb.spacing_hz)))
    out = {}
    for rate in rates_hz:
        q = rate / comb.spacing_hz
        uncertainty = q * 0.5 * bin_hz / (k_max * comb.spacing_hz)
        m = int(round(q))
        if determined and uncertainty >= 0.5:
            continue
        slack = uncertainty if determined else max(uncertainty, 0.02)
        if m >= 2 and abs(q - m) <= min(slack, 0.45):
            out[int(rate)] = m
    return out


#: :func:`two_level_share` reads a comb's periodic component only when ``rate / spacing`` lies
#: within this many samples of a whole number (a decoder at the file's own rate, a naive
#: oscillator; a resampled one drifts, and its fold would smear) ...
PERIOD_TOLERANCE_SAMPLES = 0.05
#: ... of at least this many samples (a shorter period has too few samples for a waveform) ...
MIN_PERIOD_SAMPLES = 16
#: ... repeated at least this many times in the signal (the music averages out over them) ...
MIN_PERIODS = 8
#: ... and its shape is read only when the component's variance is at least this many times
#: that of the music left in the average: below it the two-level fit mostly fits the noise
#: (development uploads with a weak component scored anything from 0.6 to 1).
MIN_PERIOD_SNR = 10.0


def _whole_period(sample_rate: int, spacing_hz: float | None) -> int | None:
    """``rate / spacing_hz`` rounded, when it lies within :data:`PERIOD_TOLERANCE_SAMPLES` of a
    whole number of samples, else ``None``."""
    if not spacing_hz or spacing_hz <= 0:
        return None
    period = sample_rate / spacing_hz
    n = int(round(period))
    return n if n >= 1 and abs(period - n) <= PERIOD_TOLERANCE_SAMPLES else None


def period_waveform(y: np.ndarray, sample_rate: int,
                    spacing_hz: float | None) -> tuple[np.ndarray, float] | None:
    """The comb's periodic component and the noise left in it: ``(w [shape=(period,)] float64,
    noise variance)``, ``y [shape=(n,)]`` averaged over its periods of ``rate / spacing_hz``
    samples (a synchronous average), or ``None`` when that period is not a whole number of
    samples (:data:`PERIOD_TOLERANCE_SAMPLES`), is too short or repeats too few times.

    A comb at multiples of ``rate / N`` is a component of ``y`` that repeats every ``N``
    samples; averaging the ``m`` blocks of ``N`` samples keeps it and leaves of the music
    only its variance across blocks divided by ``m`` (the noise variance returned, per sample).
    """
    n = _whole_period(sample_rate, spacing_hz)
    if n is None or n < MIN_PERIOD_SAMPLES or y.size < MIN_PERIODS * n:
        return None
    m = y.size // n
    blocks = np.asarray(y[: m * n]).reshape(m, n)
    w = blocks.mean(axis=0, dtype=np.float64)
    # Mean square in chunks of about 2^20 samples: a float64 copy of a 180 s track at once
    # would be 70 MB in a scan.
    rows = max(1, (1 << 20) // n)
    square = sum(float(np.einsum("ij,ij->", b, b)) for b in
                 (blocks[i:i + rows].astype(np.float64) for i in range(0, m, rows)))
    spread = (square / (m * n) - float(np.mean(w * w))) * m / (m - 1)   # mean over j of var_j (ddof 1)
    return w, max(spread, 0.0) / m


def two_level_share(period: tuple[np.ndarray, float] | None) -> float:
    """The share of the periodic component's variance that a waveform of two levels explains,
    from :func:`period_waveform`'s ``(w, noise variance)`` (0 for ``None``).

    The best split of ``w``'s values into a low and a high group (1-D two-means, exact) leaves
    a within-group variance; the music left in ``w`` adds the noise variance to both it and
    the total, so both are corrected for it: ``1 - (within - noise) / (total - noise)``, and 0
    when the component does not stand well above that noise (:data:`MIN_PERIOD_SNR`).

    A naive (not band-limited) square or pulse oscillator, as chiptune and tracker music and
    simple synthesisers make, takes exactly two values, so its period scores near 1, also
    through MP3 and AAC. A decoder's periodic component is its upsampling layers' uneven
    kernel overlap and mostly takes many values (Gaussian values: about 0.64), though some
    random-initialised ones come near two (32 of the artifact corpus's 1,308 decoded uploads
    score 0.9 or more, 30 of them random-init). Naive saw and triangle waves are not
    two-level and are not caught here.
    """
    if period is None or period[0].size < 2:
        return 0.0
    w, noise = period
    v = np.sort(w)
    c, c2 = np.cumsum(v), np.cumsum(v * v)
    k = np.arange(1, v.size)
    low = c2[:-1] - c[:-1] ** 2 / k
    high = (c2[-1] - c2[:-1]) - (c[-1] - c[:-1]) ** 2 / (v.size - k)
    total = (c2[-1] - c[-1] ** 2 / v.size) / v.size        # per sample, as the noise
    within = float(np.min(low + high)) / v.size
    if total < MIN_PERIOD_SNR * noise or total <= 0.0:
        return 0.0
    return float(np.clip(1.0 - max(within - noise, 0.0) / (total - noise), 0.0, 1.0))


#: :func:`hold_steps` looks for holds of at least this many samples (a hold of 2 is a
#: decoder's final x2 layer as much as an effect: random-initialised decoders of the artifact
#: corpus put up to 99 % of their change at one phase of 2; at 3 or more, 0.78 at most) ...
MIN_HOLD = 3
#: ... and at most this many (beyond it a "hold" is a drop to below 700 Hz at 44.1 kHz).
MAX_HOLD = 64


def hold_steps(y: np.ndarray, sample_rate: int, spacing_hz: float | None) -> dict[int, float]:
    """For each hold ``h`` that divides the comb's whole-sample period (``rate / spacing_hz``,
    :data:`MIN_HOLD` <= h <= :data:`MAX_HOLD`): the share of ``y``'s sample-to-sample change
    (energy of its first difference) that falls at the one phase of ``h`` where most falls.

    A sample-and-hold ("sample-rate reducer", bit-crusher) or playback without interpolation
    repeats each sample ``h`` times, so its waveform changes only at every ``h``-th sample:
    a share near 1 (through MP3 and AAC less, as the encoder's lowpass spreads each step over
    its neighbours). Unheld music spreads its change evenly: ``1 / h``. Holding copies the
    spectrum around every multiple of ``rate / h``, which can put lines on a comb whose
    spacing divides it. ``{}`` when the period is not a whole number of samples, no such ``h``
    divides it, or ``y`` holds fewer than :data:`MIN_PERIODS` blocks of their common multiple.
    One pass over ``y`` (in chunks of about 2^20 samples), whatever the number of holds.
    """
    n = _whole_period(sample_rate, spacing_hz)
    if n is None:
        return {}
    holds = [h for h in range(MIN_HOLD, min(MAX_HOLD, n) + 1) if n % h == 0]
    if not holds:
        return {}
    span = int(np.lcm.reduce(holds))          # divides n: every hold's phases fold out of it
    y = np.asarray(y)
    m = (y.size - 1) // span
    if m < MIN_PERIODS:
        return {}
    energy = np.zeros(span)
    step = max(1, (1 << 20) // span) * span
    for i in range(0, m * span, step):
        j = min(i + step, m * span)
        d = np.diff(y[i:j + 1].astype(np.float64))
        energy += (d * d).reshape(-1, span).sum(axis=0)
    out = {}
    for h in holds:
        phases = energy.reshape(span // h, h).sum(axis=0)
        total = float(phases.sum())
        out[h] = float(phases.max() / total) if total > 0.0 else 0.0
    return out
