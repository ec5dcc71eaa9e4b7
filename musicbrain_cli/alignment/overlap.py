"""Do explanations point at music? Harmonic and onset overlap of a saliency map.

A saliency map that a musician can check should sit on the partials of the notes sounding
and on note onsets. These checks measure that, each against its chance level, so a number is
never reported without its baseline:

- :func:`harmonic_overlap`: the share of saliency mass on cells within ``tolerance_cents`` of
  a partial ``k * f0`` (k = 1..K) of a sounding note, against the share of cells those bins
  cover (what a uniform map would score). ``lift = share / chance``; 1 is chance.
- :func:`onset_overlap`: the mean per-frame saliency within ``radius`` (default 50 ms) of
  the onsets over the overall mean (1 is chance), and the hit rate (share of onsets whose
  neighbourhood holds a frame strictly above the ``peak_quantile`` of the frame profile, so a
  flat profile has no peaks) against its
  chance: the hit rate of onsets placed uniformly at random over the span onsets are counted
  in (the first frame - radius to the last frame + radius), i.e. the share of that span
  within ``radius`` of such a frame. (Not the share of frame *centres* so placed: onsets
  fall anywhere between frames. With 20 ms frames and the 50 ms radius the two differ only
  at the window's edges, but with 23.2 ms frames (512-sample hops) a centre's +/-50 ms
  always holds 5 frames and an onset's 4.3 on average: chance came out up to 16 % high.)

A lift above chance is not yet evidence about the *model*: the sound's own energy sits on the
partials and rises at onsets, so any map weighted by the input scores above chance too (on
rendered clips the spectrogram alone reaches about 1.6x chance on partials and 3x on onsets,
``benchmarks/explain.py --part refine``). :func:`energy_reference` therefore runs the same two
checks on :func:`energy_map`, the window's spectrogram above its floor, the trivial
"explanation" that knows nothing of the model; a map ties the model's evidence to the music
only where it beats that reference as well as chance.

Both work on one window and aggregate to a track by summing their counts
(:meth:`HarmonicOverlap.combine`, :meth:`OnsetOverlap.combine`). A ratio of saliency is
pooled so that its chance stays the chance of the pooled figure: a map's scale differs from
window to window (a louder window, a stronger gradient), so summing raw mass would weigh a
window more in the share than in the chance (two windows each exactly at chance pooled to a
lift of 1.37). The share on partials is pooled as each window's share weighted by its cells
(``share_cells`` = the sum of cells x share), against the pooled chance (partial cells over
cells); the concentration as each window's weighted by its frames near onsets
(``concentration_frames``); onset hits against their expected number.

Notes come from a score (:func:`notes_from_midi`, pretty_midi) when there is one, otherwise
from :func:`musicbrain_cli.alignment.pitch.estimate_notes` (a rough multi-pitch estimate: see its
limits). Onsets come from the notes or from :func:`detect_onsets` (librosa).

Units: ``freqs [F]`` Hz per row (row 0 lowest), ``times [T]`` seconds per column (frame
centres, in the same clock as the notes), ``saliency [F, T]`` non-negative.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from musicbrain_cli.errors import ConfigError, InputError, RenderError

DEFAULT_PARTIALS = 8
DEFAULT_TOLERANCE_CENTS = 50.0
#: +/- 50 ms: the usual onset-detection tolerance (MIREX onset task, Bello et al. 2005).
DEFAULT_ONSET_RADIUS = 0.05
DEFAULT_PEAK_QUANTILE = 0.9


@dataclass(frozen=True)
class Note:
    """A note: ``start``/``end`` seconds, ``pitch`` MIDI number (may be fractional)."""

    start: float
    end: float
    pitch: float

    @property
    def hz(self) -> float:
        return midi_to_hz(self.pitch)


def midi_to_hz(pitch: float | np.ndarray) -> float | np.ndarray:
    """MIDI pitch -> Hz (A4 = 69 = 440 Hz, equal temperament)."""
    return 440.0 * 2.0 ** ((np.asarray(pitch, dtype=np.float64) - 69.0) / 12.0)


def notes_from_midi(path: str | Path, *, include_drums: bool = False) -> list[Note]:
    """The pitched notes of a MIDI file (pretty_midi), sorted by start. Drums have no pitch
    in the harmonic sense and are left out unless ``include_drums``."""
    import pretty_midi

    if not Path(path).is_file():
        raise InputError(f"MIDI file not found: {str(path)!r}")
    try:
        pm = pretty_midi.PrettyMIDI(str(path))
    except Exception as exc:  # pretty_midi/mido raise many types for a bad file
        raise RenderError(f"cannot read MIDI file {str(path)!r}: {exc}") from exc
    return notes_from_objects(n for inst in pm.instruments if include_drums or not inst.is_drum
                              for n in inst.notes)


def notes_from_objects(notes: Iterable) -> list[Note]:
    """Any objects with ``start``, ``end``, ``pitch`` (e.g. ``pretty_midi.Note``) as Notes."""
    out = [Note(float(n.start), float(n.end), float(n.pitch)) for n in notes]
    return sorted(out, key=lambda n: (n.start, n.pitch))


def detect_onsets(y: np.ndarray, sr: int, *, hop_length: int = 512) -> np.ndarray:
    """Onset times in seconds of mono audio ``y [n]`` (librosa's spectral-flux detector)."""
    import librosa

    return librosa.onset.onset_detect(y=np.asarray(y, dtype=np.float32), sr=sr,
                                      hop_length=hop_length, units="time")


def _json_safe(d: dict) -> dict:
    """Undefined ratios (NaN) become None: strict and canonical JSON (RFC 8785) reject NaN."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


def _check(saliency: np.ndarray, freqs: np.ndarray | None, times: np.ndarray) -> np.ndarray:
    sal = np.asarray(saliency, dtype=np.float64)
    if sal.ndim != 2:
        raise InputError(f"saliency must be [F, T], got shape {sal.shape}")
    if freqs is not None and len(freqs) != sal.shape[0]:
        raise InputError(f"freqs has {len(freqs)} entries, saliency has {sal.shape[0]} rows")
    if len(times) != sal.shape[1]:
        raise InputError(f"times has {len(times)} entries, saliency has {sal.shape[1]} columns")
    if not np.all(np.isfinite(sal)) or (sal < 0).any():
        raise InputError("saliency must be finite and non-negative")
    return sal


# --- harmonic overlap ----------------------------------------------------------------------


def bin_bands(freqs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's band ``(lo, hi)`` in Hz: halfway to its neighbours (the outer rows mirror
    their inner half-width). Works for linear, mel and CQT rows alike."""
    f = np.asarray(freqs, dtype=np.float64)
    if f.ndim != 1 or len(f) < 2 or np.any(np.diff(f) <= 0):
        raise InputError("freqs must be at least two increasing bin frequencies in Hz")
    mid = (f[1:] + f[:-1]) / 2
    lo = np.concatenate([[max(0.0, f[0] - (mid[0] - f[0]))], mid])
    hi = np.concatenate([mid, [f[-1] + (f[-1] - mid[-1])]])
    return lo, hi


def partial_mask(freqs: np.ndarray, times: np.ndarray, notes: Sequence[Note], *,
                 n_partials: int = DEFAULT_PARTIALS,
                 tolerance_cents: float = DEFAULT_TOLERANCE_CENTS) -> tuple[np.ndarray, np.ndarray]:
    """``(mask [F, T], sounding [T])``: cells whose band overlaps ``[p / r, p * r]``,
    ``r = 2 ** (tolerance_cents / 1200)``, for a partial ``p = k * f0`` of a note sounding in
    that frame (``start <= t < end``); ``sounding`` marks frames with at least one note.
    Using the band, not the centre, keeps coarse low mel bins from missing a partial."""
    if n_partials < 1 or tolerance_cents <= 0:
        raise ConfigError(f"n_partials must be >= 1 and tolerance_cents > 0, got {n_partials}, {tolerance_cents}")
    lo, hi = bin_bands(freqs)
    times = np.asarray(times, dtype=np.float64)
    mask = np.zeros((len(lo), len(times)), dtype=bool)
    sounding = np.zeros(len(times), dtype=bool)
    ratio = 2.0 ** (tolerance_cents / 1200.0)
    k = np.arange(1, n_partials + 1, dtype=np.float64)
    for note in notes:
        frames = (times >= note.start) & (times < note.end)
        if not frames.any():
            continue
        partials = note.hz * k
        rows = ((lo[:, None] < partials[None] * ratio) & (hi[:, None] > partials[None] / ratio)).any(axis=1)
        mask[np.ix_(rows, frames)] = True
        sounding |= frames
    return mask, sounding


@dataclass
class HarmonicOverlap:
    """Saliency on the partials of sounding notes, with chance. Only frames where a note
    sounds count (``frames``). ``share`` = mass on partials / mass in one window, and over
    windows the windows' shares weighted by their cells (``share_cells`` / cells; a window
    with no mass counts at its chance); ``chance`` = partial cells / cells; ``lift`` = share /
    chance (1 = chance; NaN when undefined)."""

    mass_on_partials: float
    mass: float
    cells_on_partials: int
    cells: int
    frames: int
    #: sum over windows of cells x share (cells on partials where a window has no mass)
    share_cells: float | None = None

    def __post_init__(self) -> None:
        if self.share_cells is None:
            self.share_cells = (self.cells * self.mass_on_partials / self.mass if self.mass > 0
                                else float(self.cells_on_partials))

    @property
    def share(self) -> float:
        if not (self.mass > 0 and self.cells > 0):
            return float("nan")
        return self.share_cells / self.cells

    @property
    def chance(self) -> float:
        return self.cells_on_partials / self.cells if self.cells > 0 else float("nan")

    @property
    def lift(self) -> float:
        c = self.chance
        return self.share / c if c and c > 0 else float("nan")

    @classmethod
    def combine(cls, parts: Iterable["HarmonicOverlap"]) -> "HarmonicOverlap":
        """A track's overlap from its windows' (sums of counts, not a mean of ratios)."""
        parts = list(parts)
        return cls(sum(p.mass_on_partials for p in parts), sum(p.mass for p in parts),
                   sum(p.cells_on_partials for p in parts), sum(p.cells for p in parts),
                   sum(p.frames for p in parts), sum(p.share_cells for p in parts))

    def to_dict(self) -> dict:
        return _json_safe({**asdict(self), "share": self.share, "chance": self.chance, "lift": self.lift})


def harmonic_overlap(saliency: np.ndarray, *, freqs: np.ndarray, times: np.ndarray,
                     notes: Sequence[Note], n_partials: int = DEFAULT_PARTIALS,
                     tolerance_cents: float = DEFAULT_TOLERANCE_CENTS) -> HarmonicOverlap:
    """Harmonic overlap of one window's ``saliency [F, T]`` (see the module docstring)."""
    sal = _check(saliency, freqs, times)
    mask, sounding = partial_mask(freqs, times, notes, n_partials=n_partials,
                                  tolerance_cents=tolerance_cents)
    s, m = sal[:, sounding], mask[:, sounding]
    return HarmonicOverlap(mass_on_partials=float(s[m].sum()), mass=float(s.sum()),
                           cells_on_partials=int(m.sum()), cells=int(m.size),
                           frames=int(sounding.sum()))


# --- onset overlap ---------------------------------------------------------------------------


@dataclass
class OnsetOverlap:
    """Saliency near onsets, with chance. ``concentration`` = mean frame saliency within the
    radius / overall mean (1 = chance), over windows the windows' concentrations weighted by
    their frames near onsets (``concentration_frames`` / frames_near; a window with no mass
    counts at 1); ``hit_rate`` vs ``chance_hit_rate`` (see module)."""

    mass_near: float
    frames_near: int
    mass: float
    frames: int
    hits: int
    onsets: int
    expected_hits: float
    #: sum over windows of frames near onsets x concentration
    concentration_frames: float | None = None

    def __post_init__(self) -> None:
        if self.concentration_frames is None:
            self.concentration_frames = (self.mass_near * self.frames / self.mass if self.mass > 0
                                         else float(self.frames_near))

    @property
    def concentration(self) -> float:
        if self.frames_near == 0 or self.mass <= 0:
            return float("nan")
        return self.concentration_frames / self.frames_near

    @property
    def hit_rate(self) -> float:
        return self.hits / self.onsets if self.onsets else float("nan")

    @property
    def chance_hit_rate(self) -> float:
        return self.expected_hits / self.onsets if self.onsets else float("nan")

    @classmethod
    def combine(cls, parts: Iterable["OnsetOverlap"]) -> "OnsetOverlap":
        """A track's overlap from its windows' (sums of counts)."""
        parts = list(parts)
        return cls(sum(p.mass_near for p in parts), sum(p.frames_near for p in parts),
                   sum(p.mass for p in parts), sum(p.frames for p in parts),
                   sum(p.hits for p in parts), sum(p.onsets for p in parts),
                   sum(p.expected_hits for p in parts),
                   sum(p.concentration_frames for p in parts))

    def to_dict(self) -> dict:
        return _json_safe({**asdict(self), "concentration": self.concentration,
                           "hit_rate": self.hit_rate, "chance_hit_rate": self.chance_hit_rate})


def onset_overlap(saliency: np.ndarray, *, times: np.ndarray, onsets: Sequence[float],
                  radius: float = DEFAULT_ONSET_RADIUS,
                  peak_quantile: float = DEFAULT_PEAK_QUANTILE,
                  until: float | None = None) -> OnsetOverlap:
    """Onset overlap of one window's ``saliency [F, T]``; ``onsets`` in seconds on the same
    clock as ``times`` (onsets outside the window are ignored).

    ``until``: where the audio heard once ends, in seconds on the same clock, when the window
    runs past a recording's end (zero padding, or since 0.3.5 a short track's repeat). Only
    the frames whose centre lies at or before it count (the peaks, the onsets and chance's
    span): no onset can fall in zero padding (nor is one listed in a repeat), so a
    span that reached into it would divide the peaks' cover by time where no onset is ever
    placed and understate chance (a window 30 % audio: chance came out 3.3x too low)."""
    if radius <= 0 or not 0 < peak_quantile < 1:
        raise ConfigError(f"radius must be > 0 and peak_quantile in (0, 1), got {radius}, {peak_quantile}")
    times = np.asarray(times, dtype=np.float64)
    sal = _check(saliency, None, times)
    if np.any(np.diff(times) <= 0):
        raise InputError("times must be strictly increasing")
    if until is not None:
        heard = times <= until
        if not heard.any():
            raise InputError(f"no frame of the window lies before the audio's end at {until} s "
                             f"(first frame at {times[0]} s)")
        sal, times = sal[:, heard], times[heard]
    profile = sal.sum(axis=0)                                      # [T]
    onsets = np.asarray([float(o) for o in onsets if times[0] - radius <= o <= times[-1] + radius])
    threshold = np.quantile(profile, peak_quantile)
    peak = profile > threshold  # strict: a flat profile has no peaks
    peaks_before = np.concatenate([[0], np.cumsum(peak)])         # peaks in frames [0, i)

    def spans(centres: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # Frames [lo, hi) within the radius of each centre (times are sorted).
        return (np.searchsorted(times, centres - radius, side="left"),
                np.searchsorted(times, centres + radius, side="right"))

    lo, hi = spans(onsets)
    hits = int(((peaks_before[hi] - peaks_before[lo]) > 0).sum())
    cover = np.zeros(len(times) + 1, dtype=np.int64)
    np.add.at(cover, lo, 1)
    np.add.at(cover, hi, -1)
    near_any = np.cumsum(cover[:-1]) > 0
    # Chance: the hit rate of an onset placed uniformly at random over the span onsets are
    # counted in, [times[0] - radius, times[-1] + radius]: an onset is hit when it lies within
    # the radius of a peak frame, so chance is the length of the union of the peaks'
    # +/-radius intervals (all inside the span) over the span's.
    at = times[peak]
    covered = (2 * radius + float(np.minimum(np.diff(at), 2 * radius).sum())) if at.size else 0.0
    chance = covered / (float(times[-1] - times[0]) + 2 * radius)
    return OnsetOverlap(mass_near=float(profile[near_any].sum()), frames_near=int(near_any.sum()),
                        mass=float(profile.sum()), frames=int(len(times)), hits=hits,
                        onsets=int(len(onsets)), expected_hits=chance * len(onsets))


def energy_map(spec: np.ndarray) -> np.ndarray:
    """The reference map of a window: its spectrogram ``spec [F, T]`` (the model's input, any
    monotone level scale such as dB) above its floor, the window's minimum. It is the "floor"
    that FM-G-CAM's refinement and the fidelity tests' substrate use, so the reference is the
    input term of the refined map without the model's gradient. Non-negative, ``[F, T]``."""
    spec = np.asarray(spec, dtype=np.float64)
    if spec.ndim != 2:
        raise InputError(f"need a spectrogram [F, T], got shape {spec.shape}")
    return spec - spec.min()


def energy_reference(spec: np.ndarray, *, freqs: np.ndarray, times: np.ndarray,
                     notes: Sequence[Note], onsets: Sequence[float],
                     until: float | None = None) -> tuple[HarmonicOverlap, OnsetOverlap]:
    """:func:`harmonic_overlap` and :func:`onset_overlap` of :func:`energy_map` of ``spec``
    [F, T]: what a map that is only the sound's own energy scores on the same notes and
    onsets (see the module docstring); ``until`` as for :func:`onset_overlap`."""
    ref = energy_map(spec)
    return (harmonic_overlap(ref, freqs=freqs, times=times, notes=notes),
            onset_overlap(ref, times=times, onsets=onsets, until=until))


def note_onsets(notes: Sequence[Note]) -> np.ndarray:
    """Distinct note start times (seconds); chord notes starting together count once."""
    return np.unique(np.round([n.start for n in notes], 4))
