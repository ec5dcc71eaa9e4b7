"""The decoder-artifact evidence line: path -> :class:`ArtifactFinding`.

::

    detector = ArtifactDetector.from_pretrained("default")
    finding = detector.analyse("song.mp3")      # frozen, finding.to_dict() is JSON-safe

Stages: :func:`spectrum.read_native` (isolated decoder, native rate) ->
:func:`spectrum.average_spectrum` (Welch average, residue above the lower envelope) ->
:func:`peaks.find_peaks` and :func:`peaks.comb_scan` (periodic peaks, their spacing) ->
:func:`comb_features` (numbers that say how strong and how decoder-like the comb is, never
WHERE it is, so the line does not learn one generator's peak positions) -> gradient-boosted
trees stored as JSON numbers (monotone in the comb-strength features), Platt-recalibrated
on validation recordings, with an operating point set for at most 0.5 % false accusations
on human validation recordings. No comb at all is no evidence (P(AI) 0).

The model shipped in ``default/`` was produced by ``scripts/fit_artifact_line.py`` (the
command, seed and data card are in ``default/card.json``); its SHA-256 is pinned in
:data:`SHIPPED_SHA256` and checked on load.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from musicbrain_cli.artifacts import peaks as _peaks
from musicbrain_cli.artifacts import spectrum as _spectrum
from musicbrain_cli.audio.intake import sha256_file
from musicbrain_cli.errors import ConfigError, ModelLoadError, SilentAudioError, ZeroLengthAudioError
from musicbrain_cli.text import or_list

LINE = "artifacts"
PACKAGE_DIR = Path(__file__).resolve().parent
MODEL_FILE, CARD_FILE = "model.json", "card.json"
#: SHA-256 of the shipped files, checked on load (a swapped classifier changes verdicts).
SHIPPED_SHA256: dict[str, dict[str, str]] = {
    "default": {
        MODEL_FILE: "5c84b71b2044405b5cd8b8dae5eb40c3734177f1fca6e00929097081ae2e4561",
        CARD_FILE: "7fd0eff15df7b49503e94d188eb85ac3f221ad4c572003f5729fec6f374ee924",
    },
}

#: In-domain limits: below these the line says "not applicable", never "human".
MIN_DURATION_S = 5.0      # fewer than ~25 Welch frames at 44.1 kHz: the average is too noisy
MIN_RATE_HZ = 16000       # the lowest output rate of the decoders the line was trained on
MIN_BANDWIDTH_HZ = 4000.0  # a telephone-band file has no room for the upper teeth
MIN_PEAK = 1e-4           # -80 dBFS: effectively silent, the residue is quantisation noise
#: The classifier was fitted on clips of this length. A comb's measured strength grows with
#: the length averaged (more Welch frames, less noise, more teeth found), so a longer track
#: is scored window by window at this length and the windows' median P(AI) is the track's:
#: the classifier then sees what it was fitted on, and one odd passage cannot accuse a track.
WINDOW_S = 12.0
#: At most this many windows, spread evenly over the analysed audio (bounded work).
MAX_WINDOWS = 15
#: From this two-level share of the comb's period (:func:`peaks.two_level_share`) the
#: explanation says the pattern has a naive pulse oscillator's waveform. In the artifact corpus
#: (session 33) 24 of 27 human uploads at or above it carry a naive square drone; 32 of 1,308
#: decoded uploads reach it too, 30 of them from random-initialised decoders.
TWO_LEVEL_NOTE = 0.9
#: From this share of the sound's change at one phase of a hold of 3 to 64 samples that divides
#: the comb's period (:func:`peaks.hold_steps`) the explanation says the waveform is held.
#: In the artifact corpus (session 34, a sample of 1,100 uploads) 27 of 58 readable human
#: uploads with a sample-rate reducer reach it (flac and AAC mostly; MP3 and Opus spread the
#: steps), no other human upload (at most 0.34), and none of 301 decoded ones (at most 0.78).
HOLD_NOTE = 0.8
#: At most this many points of the residue go into a finding (for the report figure).
MAX_FIGURE_POINTS = 2000

#: Every feature the line computes (:func:`comb_features`); a model names the ones it uses
#: (``model["features"]``, any of these; the first is always the comb's strength).
FEATURES = ("comb_log10_p", "log_teeth", "coverage", "high_share", "tooth_prominence_db",
            "peak_density_per_khz", "residue_p99_db", "fits_decoder_rate", "off_pitch",
            "prominence_slope_db", "two_level_share")
_NOTES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def nearest_note(hz: float) -> tuple[str, float]:
    """The 12-TET note (A4 = 440 Hz) nearest to ``hz`` and the offset from it in cents."""
    midi = 69 + 12 * math.log2(hz / 440.0)
    m = int(round(midi))
    return f"{_NOTES[m % 12]}{m // 12 - 1}", 100.0 * (midi - m)


@dataclass(frozen=True)
class CombAnalysis:
    """Everything the line measured on one signal before the classifier."""

    spectrum: _spectrum.AverageSpectrum
    peaks: _peaks.Peaks
    comb: _peaks.Comb
    factors: dict[int, int]
    f_max_hz: float
    #: :func:`peaks.two_level_share` of the comb's period (0 without a whole-sample period)
    two_level: float = 0.0
    #: :func:`peaks.hold_steps` on the comb's period (``{}`` when not read)
    holds: dict = field(default_factory=dict)
    #: The factors a finding states: ``factors``' rates and the recording's own, each only
    #: where the spacing pins one whole number (``peaks.upsampling_factors(determined=True)``).
    #: ``factors`` stays the classifier's ``fits_decoder_rate`` test, as the line was fitted.
    stated_factors: dict = field(default_factory=dict)

    @property
    def held(self) -> tuple[int, float] | None:
        """``(hold, share)``: the longest hold whose share reaches :data:`HOLD_NOTE` (a hold of
        8 also holds at 4), or ``None``."""
        found = [(h, s) for h, s in self.holds.items() if s >= HOLD_NOTE]
        return max(found) if found else None


def analyse_samples(y: np.ndarray, sample_rate: int, *, two_level: bool = True,
                    hold: bool = False) -> CombAnalysis:
    """Spectrum, peaks and comb of ``y [shape=(n,)]`` float at ``sample_rate`` Hz;
    ``two_level=False`` leaves the period's two-level share at 0 (a model that does not read it);
    ``hold=True`` reads the held steps of the comb's period too (for the explanation: no model
    reads them)."""
    spec = _spectrum.average_spectrum(y, sample_rate)
    # Stop short of the lowpass edge of a lossy encoder or resampler: the edge is a cliff
    # in the envelope and no part of a comb.
    f_max = min(0.98 * spec.bandwidth_hz, 0.49 * sample_rate)
    pk = _peaks.find_peaks(spec.freqs_hz, spec.residue_db, f_max_hz=f_max)
    comb = _peaks.comb_scan(pk, bin_hz=spec.bin_hz, f_max_hz=f_max)
    share = (_peaks.two_level_share(_peaks.period_waveform(y, sample_rate, comb.spacing_hz))
             if two_level and comb.teeth >= _peaks.MIN_TEETH else 0.0)
    holds = (_peaks.hold_steps(y, sample_rate, comb.spacing_hz)
             if hold and comb.teeth >= _peaks.MIN_TEETH else {})
    stated = _peaks.upsampling_factors(comb, bin_hz=spec.bin_hz, determined=True,
                                       rates_hz=tuple(sorted({*_peaks.DECODER_RATES_HZ, int(sample_rate)})))
    return CombAnalysis(spec, pk, comb, _peaks.upsampling_factors(comb, bin_hz=spec.bin_hz), f_max, share,
                        holds, stated)


def window_starts(n: int, sample_rate: int, *, window_s: float = WINDOW_S,
                  max_windows: int = MAX_WINDOWS) -> list[tuple[int, int]]:
    """``(start, stop)`` sample ranges of the scoring windows of a signal of ``n`` samples.

    Up to 1.5 windows long, the whole signal is one window; otherwise ``min(max_windows,
    n // window)`` windows of ``window_s`` seconds, at least two, spread evenly from the start
    to the end (review of session 45: 18-24 s gave one window, (0, 12 s), and the finding then
    scored the whole audio while naming that window).
    """
    w = int(round(window_s * sample_rate))
    if n <= 1.5 * w:
        return [(0, n)]
    k = min(max_windows, max(2, n // w))
    return [(int(s), int(s) + w) for s in np.round(np.linspace(0, n - w, k))]


def _silent(y: np.ndarray) -> bool:
    """Whether a stretch of samples is effectively silent by :func:`applicability`'s rule
    (its peak about its mean below :data:`MIN_PEAK`)."""
    if not y.size:
        return True
    mean = float(np.mean(y, dtype=np.float64))
    return max(float(np.max(y)) - mean, mean - float(np.min(y))) < MIN_PEAK


def comb_features(a: CombAnalysis) -> np.ndarray:
    """The classifier's input ``[shape=(len(FEATURES),)]`` float64, see :data:`FEATURES`.

    Position-free by design: strength of the comb (binomial tail), its teeth count and
    coverage of the band, whether it reaches the upper half of the band (a harmonic series
    of a note decays; a decoder's lines do not), the teeth's prominence, how peaky the
    residue is overall, whether some decoder rate divided by the spacing is an integer, and
    how far the spacing is from a musical pitch (``off_pitch``: cents from the nearest
    12-TET note / 50, so 0 on a note and 1 half-way between). A held note or drone is a
    harmonic series with its pitch as spacing, the human confound closest to a decoder's
    comb (synth drones in game music do this); a decoder's spacing ``rate / s`` has no
    reason to fall on A440 tuning; the slope of the teeth's prominence over the band
    (see :class:`peaks.Comb`); and how much of the comb's periodic component a two-level
    waveform explains (``two_level_share``, :func:`peaks.two_level_share`: a naive square
    or pulse oscillator's period takes two values, a decoder's mostly many). All are 0 when
    there is no comb; all but the last are "more AI-like" when larger, so the classifier can
    be constrained monotone (see :mod:`.fit`).
    """
    c = a.comb
    band = (a.spectrum.freqs_hz > 0) & (a.spectrum.freqs_hz <= a.f_max_hz)
    p99 = float(np.percentile(a.spectrum.residue_db[band], 99)) if band.any() else 0.0
    return np.array([
        min(c.log10_p, 300.0),
        math.log1p(c.teeth),
        c.coverage,
        c.high_share,
        c.tooth_prominence_db,
        1000.0 * a.peaks.hz.size / max(a.f_max_hz, 1.0),
        p99,
        1.0 if a.factors else 0.0,
        abs(nearest_note(c.spacing_hz)[1]) / 50.0 if c.spacing_hz else 0.0,
        c.prominence_slope_db,
        a.two_level,
    ], dtype=np.float64)


@dataclass(frozen=True)
class ArtifactFinding:
    """What the artifact line found in one file. :meth:`to_dict` is JSON-safe.

    ``p_ai`` is calibrated (``None`` when not applicable); ``says_ai`` is ``p_ai >=
    threshold``; ``leans_ai`` is ``doubt_threshold <= p_ai < threshold``: a spectrum more
    decoder-like than that of nine human recordings in ten, short of an accusation, on which
    the line withholds a ``human`` verdict. ``covers_human`` is False when the recording's
    rate or bandwidth lies outside :class:`HumanCoverage` (``coverage_reason`` says which):
    short of an accusation the line then withholds a ``human`` verdict too. ``peaks_hz`` are the comb's teeth (Hz), ``spacing_hz`` their spacing,
    ``upsampling_factors`` maps a decoder output rate or the recording's own (Hz, as a string
    key) to the integer factor ``rate / spacing`` where the spacing pins one whole number. ``residue_hz`` / ``residue_db`` are the
    residue reduced to at most :data:`MAX_FIGURE_POINTS` points (max within each block,
    so no line is lost) for the report figure. ``error_rates`` are the line's measured
    rates from its card, quoted beside the finding. ``window_p_ai`` are the P(AI) of the
    :data:`WINDOW_S` windows whose median is ``p_ai``; ``features`` and the comb describe
    the whole analysed audio (the clearest view of the lines, for the figure).
    """

    applicable: bool
    reason: str | None
    p_ai: float | None
    threshold: float
    says_ai: bool
    peaks_hz: tuple[float, ...]
    spacing_hz: float | None
    teeth: int
    expected_teeth: int
    upsampling_factors: dict[str, int]
    explanation: str
    residue_hz: tuple[float, ...] = field(repr=False)
    residue_db: tuple[float, ...] = field(repr=False)
    sample_rate: int | None = None
    bandwidth_hz: float | None = None
    analysed_s: float | None = None
    features: dict[str, float] = field(default_factory=dict)
    window_p_ai: tuple[float, ...] = ()
    model_sha256: str | None = None
    error_rates: dict[str, Any] = field(default_factory=dict)
    line: str = LINE
    doubt_threshold: float | None = None
    leans_ai: bool = False
    covers_human: bool = True
    coverage_reason: str | None = None
    #: The mains frequency (50, 60 Hz, or the 100, 120 Hz of rectified hum) the comb's
    #: spacing matches, or ``None``: at such a spacing the line never accuses (see
    #: :func:`mains_hum`).
    mains_hum_hz: float | None = None
    #: P(AI) at or above the operating point (and not at a mains-hum spacing); it accuses
    #: (``says_ai``) only where the line accuses at all (``accuses``, :data:`ACCUSES`)
    reaches_operating_point: bool = False
    accuses: bool = True

    def to_dict(self) -> dict:
        """Plain JSON types only (tuples become lists), so the dict equals its own JSON
        round trip: ``verify --reproduce`` compares a fresh finding with a stored one."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def _reduce(freqs: np.ndarray, values: np.ndarray, max_points: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Max-pool ``values`` into at most ``max_points`` blocks (the frequency of each block's max)."""
    n = values.size
    if n == 0:
        return (), ()
    block = int(math.ceil(n / max_points))
    m = (n // block) * block
    v = values[:m].reshape(-1, block)
    i = np.argmax(v, axis=1) + np.arange(v.shape[0]) * block
    if m < n:
        i = np.append(i, m + int(np.argmax(values[m:])))
    return tuple(round(float(x), 3) for x in freqs[i]), tuple(round(float(x), 3) for x in values[i])


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def applicability(*, duration_s: float, sample_rate: int, peak: float,
                  bandwidth_hz: float | None = None) -> str | None:
    """``None`` when the line applies, else the plain-English reason it does not."""
    if peak < MIN_PEAK:
        return f"the audio is effectively silent (peak {20 * math.log10(max(peak, 1e-12)):.0f} dBFS)"
    if duration_s < MIN_DURATION_S:
        # rounded down: 4.99 s rounded to "5.0 s < 5 s" contradicted itself
        shown = math.floor(duration_s * 10 + 1e-9) / 10
        return f"too short for a stable average spectrum ({shown:.1f} s < {MIN_DURATION_S:g} s)"
    if sample_rate < MIN_RATE_HZ:
        return f"sample rate {sample_rate} Hz is below the {MIN_RATE_HZ} Hz the line was trained on"
    if bandwidth_hz is not None and bandwidth_hz < MIN_BANDWIDTH_HZ:
        return f"audio bandwidth {bandwidth_hz:.0f} Hz is below {MIN_BANDWIDTH_HZ:.0f} Hz (too band-limited)"
    return None


@dataclass(frozen=True)
class HumanCoverage:
    """The sample rates and bandwidths the line's human side was calibrated on.

    A comb-free spectrum counts towards a ``human`` verdict only where the line has measured
    how human recordings score: outside that range its false-accusation and miss rates were
    never measured, so it can still accuse (a decoder's comb is a comb at any rate) but not
    exonerate. The numbers come from the human development uploads (train and validation
    packages and renders, as uploaded): the sample rates among them and the narrowest of
    their bandwidths (``model.json``'s ``human_coverage``, with the rule and the set it was
    measured on). A rate between two measured ones is not covered either (``rates_hz``):
    32 kHz, say, is the rate of a family of neural codecs and text-to-music models, and no
    human upload at it was ever scored. A model that records only the lowest and highest
    rate (``rates_hz`` empty) is read as the range between them.
    """

    min_rate_hz: int
    max_rate_hz: int
    min_bandwidth_hz: float
    rates_hz: tuple[int, ...] = ()

    @classmethod
    def from_model(cls, model: dict) -> "HumanCoverage | None":
        raw = model.get("human_coverage")
        if raw is None:
            return None     # fitted before coverage was recorded: no restriction, as then
        try:
            cov = cls(int(raw["min_rate_hz"]), int(raw["max_rate_hz"]), float(raw["min_bandwidth_hz"]),
                      tuple(sorted({int(r) for r in raw.get("rates_hz") or ()})))
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelLoadError(f"artifact model human_coverage is malformed: {exc!r}") from exc
        if (not 0 < cov.min_rate_hz <= cov.max_rate_hz or not 0.0 <= cov.min_bandwidth_hz
                or (cov.rates_hz and (cov.rates_hz[0], cov.rates_hz[-1]) != (cov.min_rate_hz, cov.max_rate_hz))):
            raise ModelLoadError(f"artifact model human_coverage is inconsistent: {raw!r}")
        return cov

    def rates_text(self) -> str:
        """The covered sample rates in words: ``16000, 22050 or 44100 Hz``, or a range."""
        if not self.rates_hz:
            return f"{self.min_rate_hz}-{self.max_rate_hz} Hz"
        return or_list(self.rates_hz) + " Hz"

    def outside(self, sample_rate: int, bandwidth_hz: float) -> str | None:
        """``None`` when a recording at ``sample_rate`` with ``bandwidth_hz`` lies within the
        human calibration, else the plain-English reason it does not."""
        if not self.min_rate_hz <= sample_rate <= self.max_rate_hz:
            return (f"its sample rate, {sample_rate} Hz, lies outside the {self.min_rate_hz}-"
                    f"{self.max_rate_hz} Hz of the human recordings this line was calibrated on")
        if self.rates_hz and sample_rate not in self.rates_hz:
            return (f"its sample rate, {sample_rate} Hz, is not one of the rates of the human "
                    f"recordings this line was calibrated on ({self.rates_text()})")
        if bandwidth_hz < self.min_bandwidth_hz:
            return (f"its bandwidth, {bandwidth_hz:.0f} Hz, is narrower than that of any human recording "
                    f"this line was calibrated on (at least {self.min_bandwidth_hz:.0f} Hz)")
        return None


def model_directory(name_or_path: str | os.PathLike, *, shipped: dict[str, dict[str, str]],
                    package_dir: Path) -> Path:
    """The directory a model name (a key of ``shipped``, unless a path of that name exists)
    or path stands for."""
    text = str(name_or_path)
    return package_dir / text if text in shipped and not Path(text).exists() else Path(text).expanduser()


def load_model_files(name_or_path: str | os.PathLike, *, shipped: dict[str, dict[str, str]],
                     package_dir: Path, what: str) -> tuple[dict, dict, str]:
    """``(model, card, model SHA-256)`` of a JSON evidence-line model: a shipped name (a key of
    ``shipped``, looked up in ``package_dir``, each file's SHA-256 checked against it) or a
    directory holding model.json and card.json. ``what`` names the line in errors."""
    text = str(name_or_path)
    is_shipped = text in shipped and not Path(text).exists()
    directory = model_directory(name_or_path, shipped=shipped, package_dir=package_dir)
    if not (directory / MODEL_FILE).is_file():
        raise ModelLoadError(f"no {what} model at {str(directory / MODEL_FILE)!r}")
    for name, want in (shipped[text] if is_shipped else {}).items():
        got = sha256_file(directory / name)
        if got != want:
            raise ModelLoadError(f"{str(directory / name)!r} has SHA-256 {got}, expected {want}: the "
                                 f"shipped {what} model was modified or corrupted; reinstall MusicBrain")
    try:
        model = json.loads((directory / MODEL_FILE).read_text())
        card_path = directory / CARD_FILE
        card = json.loads(card_path.read_text()) if card_path.is_file() else {}
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot read the {what} model in {str(directory)!r}: {exc}") from exc
    return model, card, sha256_file(directory / MODEL_FILE)


class Trees:
    """Gradient-boosted regression trees stored as JSON arrays; ``__call__`` gives the raw logit.

    The format (written by :func:`musicbrain_cli.artifacts.fit.export_trees` from
    scikit-learn's ``HistGradientBoostingClassifier``): ``{"baseline": float, "trees":
    [{"feature", "threshold", "left", "right", "value", "leaf", "missing_left"}, ...]}``,
    one list entry per node, node 0 the root; a sample goes left when ``x[feature] <=
    threshold``. Children always come after their parent, checked here, so evaluation ends.
    """

    def __init__(self, spec: dict, *, n_features: int) -> None:
        self.baseline = float(spec["baseline"])
        self.trees = []
        for t in spec["trees"]:
            feature = np.asarray(t["feature"], dtype=np.int64)
            threshold = np.asarray(t["threshold"], dtype=np.float64)
            left = np.asarray(t["left"], dtype=np.int64)
            right = np.asarray(t["right"], dtype=np.int64)
            value = np.asarray(t["value"], dtype=np.float64)
            leaf = np.asarray(t["leaf"], dtype=bool)
            missing = np.asarray(t["missing_left"], dtype=bool)
            n = value.size
            if not n or any(a.shape != (n,) for a in (feature, threshold, left, right, leaf, missing)):
                raise ValueError(f"tree arrays of unequal length ({n} nodes)")
            inner = np.nonzero(~leaf)[0]
            if np.any(left[inner] <= inner) or np.any(right[inner] <= inner) or np.any(left[inner] >= n) \
                    or np.any(right[inner] >= n) or np.any(feature[inner] < 0) or np.any(feature[inner] >= n_features):
                raise ValueError("tree has a child before its parent, out of range, or an unknown feature")
            self.trees.append((feature.tolist(), threshold.tolist(), left.tolist(), right.tolist(), value.tolist(),
                               leaf.tolist(), missing.tolist()))

    def __call__(self, x: np.ndarray) -> float:
        total = self.baseline
        xs = [float(v) for v in x]
        for feature, threshold, left, right, value, leaf, missing in self.trees:
            i = 0
            while not leaf[i]:
                v = xs[feature[i]]
                go_left = missing[i] if math.isnan(v) else v <= threshold[i]
                i = left[i] if go_left else right[i]
            total += value[i]
        return total


#: Whether a P(AI) at or above the operating point accuses. Not since session 28: an audit
#: added common human production to held-out human recordings and the line accused 22 of 851
#: processed files, none of them decoded: a quiet naive (aliasing) square-wave drone, as
#: chiptune and tracker oscillators make, at -30 to -50 dBFS (11 of 26 recordings at -30 dB:
#: its harmonics fold onto a comb at gcd(f0, rate), 20 Hz for 220 Hz at 44.1 or 48 kHz),
#: zero-order-hold upsampling and "sample-rate reducer" effects (6), and undithered 16-bit
#: pilot tones at 15.625 or 19 kHz (2). Its human side holds none of these, and on the public
#: music of real generators it caught none (docs/evaluation/external.md). Such a reading now
#: leans towards AI (withholds a ``human`` verdict); the operating point is kept and reported
#: (``reaches_operating_point``), for a refit whose human side covers those productions.
#: Session 32 made that refit (:mod:`.production` on both sides of the corpus): it accused no
#: held-out human upload or audit file, but only at an operating point of 0.9993, where it
#: catches 6 % of decoded clips (a naive oscillator with a whole-sample period makes exactly a
#: decoder's comb), so it was not shipped (docs/evaluation/artifact-production-refit.md).
#: Session 33 added a feature that reads the comb's period in time (a naive pulse oscillator's
#: two levels, :func:`peaks.two_level_share`); its refit still accused 3 of 591 audit files on
#: new packages (220 Hz drones, whose period it cannot read in a 12 s window) and caught 21 %
#: of decoded test clips, so it was not shipped either
#: (docs/evaluation/artifact-two-level-refit.md).
ACCUSES = False


class ArtifactDetector:
    """The fitted artifact line: features -> calibrated P(AI) -> operating point."""

    def __init__(self, model: dict, card: dict | None = None, *, sha256: str | None = None,
                 accusing: bool = ACCUSES) -> None:
        try:
            names = list(model["features"])
            if not names or names[0] != FEATURES[0] or len(set(names)) != len(names) \
                    or not set(names) <= set(FEATURES):
                raise ModelLoadError(f"artifact model features {names!r}: distinct names of {list(FEATURES)!r}, "
                                     f"{FEATURES[0]!r} first")
            #: the features the model reads, and where they sit in :func:`comb_features`' vector
            self.feature_names = tuple(names)
            self.columns = np.array([FEATURES.index(f) for f in names], dtype=np.int64)
            self.trees = Trees(model["trees"], n_features=len(names))
            self.platt_a, self.platt_b = float(model["platt"]["a"]), float(model["platt"]["b"])
            self.threshold = float(model["threshold"])
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise ModelLoadError(f"artifact model is malformed: {exc!r}") from exc
        # above 1 when a human development clip scored exactly 1: then nothing reaches it
        if not 0.0 < self.threshold <= 1.0 + 1e-9:
            raise ModelLoadError(f"artifact model threshold {self.threshold!r} is outside (0, 1]")
        # A model without a doubt zone (fitted before it existed) says human below its threshold.
        try:
            self.doubt_threshold = float(model.get("doubt_threshold", self.threshold))
        except (TypeError, ValueError) as exc:
            raise ModelLoadError(f"artifact model doubt threshold is malformed: {exc!r}") from exc
        if not 0.0 < self.doubt_threshold <= self.threshold:
            raise ModelLoadError(f"artifact model doubt threshold {self.doubt_threshold!r} is outside "
                                 f"(0, {self.threshold}]")
        self.coverage = HumanCoverage.from_model(model)
        self.accusing = bool(accusing)
        self.model = model
        self.card = card or {}
        self.sha256 = sha256

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike = "default") -> "ArtifactDetector":
        """Load ``"default"`` (shipped, SHA-256 checked) or a directory with model.json and card.json."""
        model, card, sha256 = load_model_files(name_or_path, shipped=SHIPPED_SHA256,
                                               package_dir=PACKAGE_DIR, what="artifact")
        return cls(model, card, sha256=sha256)

    # --- scoring ------------------------------------------------------------------------

    def logit(self, features: np.ndarray) -> float:
        """Calibrated log-odds of AI for one feature vector ``[shape=(len(FEATURES),)]`` (all
        the line computes, :func:`comb_features`; the model reads the ones it names).

        ``-inf`` when no comb was found (fewer than :data:`peaks.MIN_TEETH` periodic peaks):
        without a comb this line has no evidence, whatever the other numbers say. (In the
        training corpus only smoothed decoders' outputs lacked peaks entirely, so a fitted
        model would call any peak-free audio, such as surf or wind, AI.)
        """
        if features[0] <= 0.0:
            return -math.inf
        return self.platt_a * self.trees(np.asarray(features)[self.columns]) + self.platt_b

    def p_ai(self, features: np.ndarray) -> float:
        z = self.logit(features)
        return 0.0 if z == -math.inf else _sigmoid(z)

    def _not_applicable(self, reason: str, **extra) -> ArtifactFinding:
        return ArtifactFinding(applicable=False, reason=reason, p_ai=None, threshold=self.threshold, says_ai=False,
                               doubt_threshold=self.doubt_threshold,
                               peaks_hz=(), spacing_hz=None, teeth=0, expected_teeth=0, upsampling_factors={},
                               explanation=f"Decoder-artifact analysis not applicable: {reason}.",
                               residue_hz=(), residue_db=(), model_sha256=self.sha256,
                               error_rates=self.card.get("summary", {}), **extra)

    def accuses(self, p_ai: float, spacing_hz: float | None) -> bool:
        """The line's one accusation rule: ``p_ai`` at or above the operating point, and the
        comb's spacing not that of mains hum (:func:`mains_hum`). Scans and the fit's
        evaluation both ask here."""
        return p_ai >= self.threshold and (spacing_hz is None or mains_hum(spacing_hz) is None)

    def analyse_samples(self, y: np.ndarray, sample_rate: int) -> ArtifactFinding:
        """The finding for in-memory samples ``y [shape=(n,)]`` at their native ``sample_rate``."""
        y = np.asarray(y, dtype=np.float32)
        if y.ndim != 1:
            raise ConfigError(f"samples must be mono [shape=(n,)], got shape {y.shape}")
        if not sample_rate > 0:
            raise ConfigError(f"sample rate must be positive (Hz), got {sample_rate!r}")
        bad = int(np.count_nonzero(~np.isfinite(y)))
        if bad:
            # one NaN makes the whole average spectrum NaN, read as "bandwidth 0 Hz"
            raise ConfigError(f"{bad} of {y.size} samples are not finite (NaN or infinite)")
        # The peak about the mean: the spectrum removes the mean, so a DC offset over silence
        # leaves nothing to examine (it is effectively silent, not comb-free).
        mean = float(np.mean(y, dtype=np.float64)) if y.size else 0.0
        peak = max(float(np.max(y)) - mean, mean - float(np.min(y))) if y.size else 0.0
        duration = y.size / sample_rate
        reason = applicability(duration_s=duration, sample_rate=sample_rate, peak=peak)
        if reason is not None:
            return self._not_applicable(reason, sample_rate=int(sample_rate), analysed_s=round(duration, 3))
        a = analyse_samples(y, sample_rate, hold=True)
        reason = applicability(duration_s=duration, sample_rate=sample_rate, peak=peak,
                                    bandwidth_hz=a.spectrum.bandwidth_hz)
        if reason is not None:
            return self._not_applicable(reason, sample_rate=int(sample_rate), analysed_s=round(duration, 3),
                                        bandwidth_hz=round(a.spectrum.bandwidth_hz, 1))
        x = comb_features(a)
        windows = window_starts(y.size, sample_rate)
        if windows == [(0, y.size)]:
            window_p = [self.p_ai(x)]
        else:
            # a silent window has no lines to find, and its P(AI) of 0 is no evidence: left
            # out of the median (review of session 45: two minutes of silence between two
            # passages with a 74-tooth comb outvoted them, and the line no longer withheld
            # `human`); if every window is silent, the whole audio speaks
            windows = [(i, j) for i, j in windows if not _silent(y[i:j])] or [(0, y.size)]
            reads = "two_level_share" in self.feature_names      # the whole audio's is for the explanation
            window_p = [self.p_ai(x) if (i, j) == (0, y.size) else
                        self.p_ai(comb_features(analyse_samples(y[i:j], sample_rate, two_level=reads)))
                        for i, j in windows]
        p = float(np.median(window_p))
        c = a.comb
        spacing = c.spacing_hz if c.teeth >= _peaks.MIN_TEETH else None   # a comb, or none
        hum = None if spacing is None else mains_hum(spacing)
        reaches = self.accuses(p, spacing)
        says = reaches and self.accusing
        leans = not says and p >= self.doubt_threshold
        uncovered = (None if self.coverage is None
                     else self.coverage.outside(int(sample_rate), float(a.spectrum.bandwidth_hz)))
        band = a.spectrum.freqs_hz <= a.f_max_hz
        rhz, rdb = _reduce(a.spectrum.freqs_hz[band], a.spectrum.residue_db[band], MAX_FIGURE_POINTS)
        text = explain(a, p, self.threshold, windows=len(windows), doubt=self.doubt_threshold,
                       uncovered=uncovered, hum=hum)
        if reaches and not self.accusing:
            text += (" This line does not accuse on its own: common human production (a quiet "
                     "drone of a naive square-wave oscillator, sample-and-hold or zero-order-hold "
                     "upsampling effects, an undithered pilot tone) reached its operating point "
                     "in an audit. At or above that point it withholds a 'human' verdict, as in "
                     "its doubt zone.")
        return ArtifactFinding(
            applicable=True, reason=None, p_ai=round(p, 6), threshold=self.threshold, says_ai=bool(says),
            doubt_threshold=self.doubt_threshold, leans_ai=bool(leans),
            peaks_hz=tuple(round(float(f), 2) for f in c.teeth_hz),
            spacing_hz=None if c.spacing_hz is None else round(c.spacing_hz, 4),
            teeth=c.teeth, expected_teeth=c.expected_teeth,
            upsampling_factors={str(k): v for k, v in a.stated_factors.items()},
            explanation=text,
            mains_hum_hz=hum, reaches_operating_point=bool(reaches), accuses=self.accusing,
            covers_human=uncovered is None, coverage_reason=uncovered,
            residue_hz=rhz, residue_db=rdb, sample_rate=int(sample_rate),
            bandwidth_hz=round(a.spectrum.bandwidth_hz, 1), analysed_s=round(a.spectrum.analysed_s, 3),
            features={k: round(float(x[i]), 6) for k, i in zip(self.feature_names, self.columns)},
            window_p_ai=tuple(round(float(v), 6) for v in window_p),
            model_sha256=self.sha256, error_rates=self.card.get("summary", {}),
        )

    def analyse(self, path: str | os.PathLike, *, max_duration_s: float = _spectrum.MAX_ANALYSIS_S,
                timeout_s: float = 120.0, sample_rate: int | None = None) -> ArtifactFinding:
        """The finding for the audio file at ``path`` (first ``max_duration_s`` seconds);
        ``sample_rate``: its header's rate when already probed (see ``read_native``).

        A silent or empty stream is "not applicable"; any other decode failure raises the
        audio intake's typed :class:`~musicbrain_cli.errors.AudioDecodeError`.
        """
        try:
            y, rate = _spectrum.read_native(path, max_duration_s=max_duration_s, timeout_s=timeout_s,
                                              sample_rate=sample_rate)
        except (SilentAudioError, ZeroLengthAudioError) as exc:
            return self._not_applicable(str(exc).split(": ", 1)[-1].rstrip("."))
        return self.analyse_samples(y, rate)


#: Mains frequencies, and the 100 and 120 Hz of full-wave rectified hum (power supplies,
#: dimmers): the spacings at which analogue recording and playback chains add exact line
#: spectra to human recordings.
MAINS_HZ = (50.0, 60.0, 100.0, 120.0)
#: How far a spacing may lie from them: grids hold about +/-0.2 %, and tape or turntable
#: speed errors move a recorded hum by up to about 1 %.
MAINS_TOLERANCE = 0.01


def mains_hum(spacing_hz: float) -> float | None:
    """The mains frequency of :data:`MAINS_HZ` within :data:`MAINS_TOLERANCE` of
    ``spacing_hz``, or ``None``.

    Hum and buzz are strictly periodic, so their harmonics are narrow lines at exact multiples
    of 50 or 60 Hz (100 or 120 Hz when rectified) across the band: the very pattern an
    upsampling decoder leaves when its output rate divided by its upsampling factor falls
    there (32 kHz / 640 = 50 Hz, as EnCodec's 32 kHz model). This method cannot tell the two
    apart, and human recordings carry hum (the session 26 audit: a 60 Hz buzz at -30 dBFS on a
    rendered Bach chorale was accused, P(AI) 0.99; held-out human game music reaches 0.93 at
    99.98 Hz), so at these spacings the line never accuses, and withholds a ``human`` verdict
    only where its doubt threshold is reached.
    """
    for hz in MAINS_HZ:
        if abs(spacing_hz - hz) <= MAINS_TOLERANCE * hz:
            return hz
    return None


def explain(a: CombAnalysis, p_ai: float, threshold: float, *, windows: int = 1,
            doubt: float | None = None, uncovered: str | None = None,
            hum: float | None = None) -> str:
    """One paragraph a reader can check with any spectrum analyser (``doubt``: the line's
    doubt threshold, where it has one; ``uncovered``: why the recording lies outside the line's
    human calibration, see :class:`HumanCoverage`; ``hum``: the mains frequency the comb's
    spacing matches, see :func:`mains_hum`)."""
    text = _explain(a, p_ai, threshold, windows=windows, doubt=doubt, hum=hum)
    if uncovered and p_ai < threshold:
        text += (f" This recording lies outside what the line was calibrated on for human music: "
                 f"{uncovered}. How often human recordings like it show a pattern, and how often "
                 "decoded ones show none, was never measured, so this line does not support a "
                 "'human' verdict here.")
    elif uncovered:
        text += (f" Note: this recording lies outside what the line was calibrated on for human "
                 f"music ({uncovered}); its false-accusation rate on such recordings was never "
                 "measured. The comb itself can be checked in the figure.")
    return text


def _explain(a: CombAnalysis, p_ai: float, threshold: float, *, windows: int,
             doubt: float | None, hum: float | None = None) -> str:
    c = a.comb
    p_text = f"P(AI) {p_ai:.2f}" + (f" (median of {windows} windows of {WINDOW_S:g} s)" if windows > 1 else "")
    if c.spacing_hz is None or c.teeth < _peaks.MIN_TEETH:
        return (f"No periodic peaks found in the average spectrum ({a.peaks.hz.size} isolated peaks up to "
                f"{a.f_max_hz / 1000:.1f} kHz, no common spacing): no sign of an upsampling decoder by this method "
                f"({p_text}, operating point {threshold:.2f}).")
    fits = ", ".join(f"{rate / 1000:g} kHz / {m}" for rate, m in sorted(a.stated_factors.items()))
    head = (f"The strongest periodic pattern in the average spectrum: {c.teeth} narrow peaks at multiples of "
            f"{c.spacing_hz:.2f} Hz ({c.teeth} of the {c.expected_teeth} multiples up to {a.f_max_hz / 1000:.1f} kHz, "
            f"mean {c.tooth_prominence_db:.1f} dB above the spectrum's lower envelope).")
    note, cents = nearest_note(c.spacing_hz)
    pitch = (f" {c.spacing_hz:.2f} Hz is within {abs(cents):.0f} cents of the note {note}: a held note's harmonics "
             "give the same pattern." if abs(cents) <= 15 else "")
    if a.two_level >= TWO_LEVEL_NOTE:
        pitch += (f" The pattern repeats every {a.spectrum.sample_rate / c.spacing_hz:.0f} samples, and over that "
                  f"period the sound's average takes two levels ({a.two_level:.0%} of its variance): the waveform "
                  "of a naive square or pulse oscillator (chiptune, tracker music, simple synthesisers), which "
                  "leaves the same lines as a decoder. Most decoders' periods take many levels, but not all: "
                  "this points to an oscillator without proving one.")
    if a.held is not None:
        h, share = a.held
        pitch += (f" The waveform changes mostly once every {h} samples ({share:.0%} of its sample-to-sample "
                  f"change falls at one position in {h}, against {1 / h:.0%} for a waveform nothing holds): a "
                  "held waveform, as a sample-rate reducer (sample-and-hold, bit-crusher) or playback without "
                  f"interpolation makes. Holding copies the spectrum around every multiple of "
                  f"{a.spectrum.sample_rate / h:.1f} Hz, which can put lines on this comb. A decoder's "
                  "nearest-neighbour upsampling holds too, but its convolutions smooth the steps (none of 301 "
                  "decoded development clips held this way): this points to a hold effect without proving one.")
    if hum is not None and p_ai >= threshold:
        return (head + f" {p_text} reaches the operating point {threshold:.2f}, but "
                f"{c.spacing_hz:.2f} Hz is the spacing of mains hum ({hum:g} Hz), whose harmonics "
                "analogue recording and playback chains add to human recordings; a decoder with "
                "this spacing cannot be told from hum by this method, so the line does not accuse "
                "here, and does not support a 'human' verdict either.")
    if p_ai >= threshold:
        phys = (f" Lines at k x {c.spacing_hz:.2f} Hz are what an upsampling decoder leaves: its output repeats "
                "every upsampling-factor samples, and " + (f"{c.spacing_hz:.2f} Hz = {fits}." if fits else
                                                           "neither a common decoder rate nor this recording's is a whole number of "
                                                           "times it, to the precision its teeth pin it down."))
        tail = (f" {p_text} is at or above the operating point {threshold:.2f}: the pattern of a "
                "neural decoder.")
    elif doubt is not None and p_ai >= doubt:
        phys = ""
        tail = (f" {p_text} is below the operating point {threshold:.2f} but at or above the doubt threshold "
                f"{doubt:.2f}, which about one human recording in ten reaches: not evidence of a decoder, and not "
                "the clean spectrum of most human recordings either, so this line does not support a 'human' "
                "verdict.")
    else:
        phys = ""
        tail = (f" {p_text} is below the operating point {threshold:.2f}: a pattern this weak, sparse or "
                "note-like also occurs in human recordings, so it is not counted as evidence.")
    return head + phys + pitch + tail
