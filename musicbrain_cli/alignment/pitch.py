"""A rough multi-pitch estimate for audio without a score (harmonic-sum salience over a CQT).

Used only by :mod:`musicbrain_cli.alignment.overlap` to say where the partials of the sounding notes
are when no score/MIDI is available. Method (after Klapuri, "Multiple fundamental frequency
estimation by summing harmonic amplitudes", ISMIR 2006, in its simplest form):

1. CQT magnitude with three bins per semitone (librosa), from the lowest candidate pitch up to
   just below Nyquist;
2. salience of a candidate pitch p = sum over harmonics h = 1..H of ``decay ** (h - 1)`` times
   the magnitude ``12 * log2(h)`` semitones above p (the best of the three bins per
   semitone, tolerating +/- 1/3 semitone of mistuning);
3. per frame, the local maxima of salience above ``relative_threshold`` x the frame's maximum,
   whose own fundamental bin carries energy (which removes most sub-octave "ghosts"), that are
   not a harmonic (h = 2..H, nearest semitone) of a stronger kept pitch, at most
   ``max_polyphony`` of them, in frames louder than ``silence_db`` below the loudest;
4. consecutive active frames of one pitch form a note of at least ``min_duration`` seconds.

Limits (why a score is always preferred, and why alignment reports say which was used):
octave errors (a strong 2nd partial can win), a real note an octave or a twelfth above a
louder one is merged into it (harmless here: its partials are the louder note's), partials of loud notes can be reported as notes
of their own in dense textures, missing-fundamental tones (low piano, bass through small
speakers) are dropped by step 3, percussion produces spurious pitches, polyphony is capped,
there is no instrument model and no onset/offset modelling beyond frame runs.
"""

from __future__ import annotations

import numpy as np

from musicbrain_cli.alignment.overlap import Note, midi_to_hz
from musicbrain_cli.errors import ConfigError, InputError

BINS_PER_SEMITONE = 3
DEFAULT_PITCH_RANGE = (36, 96)      # C2 .. C7
DEFAULT_HARMONICS = 5
DEFAULT_DECAY = 0.8
DEFAULT_RELATIVE_THRESHOLD = 0.3
DEFAULT_MAX_POLYPHONY = 4
#: Shorter runs are mostly CQT smearing at onsets (long low-frequency kernels); the cost is
#: that notes under 100 ms (fast passages) are lost.
DEFAULT_MIN_DURATION = 0.1
DEFAULT_SILENCE_DB = 40.0
#: A candidate's fundamental bin must hold this share of the frame's strongest bin.
FUNDAMENTAL_FLOOR = 0.1


def pitch_salience(y: np.ndarray, sr: int, *, hop_length: int = 512,
                   pitch_range: tuple[int, int] = DEFAULT_PITCH_RANGE,
                   n_harmonics: int = DEFAULT_HARMONICS, decay: float = DEFAULT_DECAY
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(salience [P, T], fundamental [P, T], pitches [P] MIDI, times [T] s)`` of mono
    ``y [n]``; ``fundamental`` is the CQT magnitude at each pitch itself."""
    import librosa

    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1 or y.size == 0:
        raise InputError(f"expected mono audio [n], got shape {y.shape}")
    lo_pitch, hi_pitch = pitch_range
    if not 0 < lo_pitch < hi_pitch or n_harmonics < 1:
        raise ConfigError(f"invalid pitch_range {pitch_range} or n_harmonics {n_harmonics}")
    bps = BINS_PER_SEMITONE
    # Bin b is centred on pitch lo_pitch + (b - 1) / bps: start one bin flat, so every
    # semitone has its centre bin and one neighbour on each side.
    fmin = float(midi_to_hz(lo_pitch - 1.0 / bps))
    wanted = (hi_pitch - lo_pitch + 12 * np.log2(n_harmonics)) * bps + 3
    fits = np.floor(12 * bps * np.log2(0.95 * (sr / 2) / fmin))   # stay below Nyquist
    n_bins = int(min(np.ceil(wanted), fits))
    if n_bins < (hi_pitch - lo_pitch) * bps + 3:
        raise ConfigError(f"sample rate {sr} Hz is too low for pitches up to MIDI {hi_pitch}")
    mag = np.abs(librosa.cqt(y, sr=sr, hop_length=hop_length, fmin=fmin, n_bins=n_bins,
                             bins_per_octave=12 * bps))
    # Per semitone: the best of its three bins.
    n_semi = (n_bins - 1) // bps
    per_semi = np.stack([mag[1 + s * bps - 1: 1 + s * bps + 2].max(axis=0) for s in range(n_semi)])
    pitches = np.arange(lo_pitch, hi_pitch + 1)
    salience = np.zeros((len(pitches), mag.shape[1]))
    for h in range(1, n_harmonics + 1):
        shift = int(round(12 * np.log2(h)))
        idx = np.arange(len(pitches)) + shift
        ok = idx < n_semi
        salience[ok] += decay ** (h - 1) * per_semi[idx[ok]]
    times = librosa.frames_to_time(np.arange(mag.shape[1]), sr=sr, hop_length=hop_length)
    return salience, per_semi[: len(pitches)], pitches, times


def estimate_notes(y: np.ndarray, sr: int, *, hop_length: int = 512,
                   pitch_range: tuple[int, int] = DEFAULT_PITCH_RANGE,
                   n_harmonics: int = DEFAULT_HARMONICS, decay: float = DEFAULT_DECAY,
                   relative_threshold: float = DEFAULT_RELATIVE_THRESHOLD,
                   max_polyphony: int = DEFAULT_MAX_POLYPHONY,
                   min_duration: float = DEFAULT_MIN_DURATION,
                   silence_db: float = DEFAULT_SILENCE_DB) -> list[Note]:
    """Notes of mono audio ``y [n]`` at ``sr`` Hz (see the module docstring for method and
    limits), sorted by start."""
    sal, fund, pitches, times = pitch_salience(y, sr, hop_length=hop_length, pitch_range=pitch_range,
                                               n_harmonics=n_harmonics, decay=decay)
    n_p, n_t = sal.shape
    active = np.zeros_like(sal, dtype=bool)
    frame_max = sal.max(axis=0)
    loud = frame_max > frame_max.max() * 10 ** (-silence_db / 20) if frame_max.max() > 0 else np.zeros(n_t, bool)
    is_peak = np.zeros_like(active)
    is_peak[1:-1] = (sal[1:-1] >= sal[:-2]) & (sal[1:-1] > sal[2:])
    candidates = (is_peak & (sal >= relative_threshold * frame_max[None])
                  & (fund >= FUNDAMENTAL_FLOOR * fund.max(axis=0, keepdims=True)) & loud[None])
    harmonic_steps = {int(round(12 * np.log2(h))) for h in range(2, n_harmonics + 1)}
    for t in np.flatnonzero(candidates.any(axis=0)):
        rows = np.flatnonzero(candidates[:, t])
        kept: list[int] = []
        for r in rows[np.argsort(sal[rows, t])[::-1]]:
            # A harmonic of a stronger kept pitch is taken for that pitch's partial. Its own
            # partials are a subset of the stronger pitch's, so dropping a real doubled note
            # (an octave, a twelfth) changes no partial mask.
            if any(r - k in harmonic_steps for k in kept):
                continue
            kept.append(int(r))
            if len(kept) == max_polyphony:
                break
        active[kept, t] = True
    hop_s = hop_length / sr
    notes = []
    for p in range(n_p):
        run = np.flatnonzero(np.diff(np.concatenate([[0], active[p].astype(np.int8), [0]])))
        for start, stop in zip(run[::2], run[1::2]):
            begin, end = float(times[start]), float(times[stop - 1] + hop_s)
            if end - begin >= min_duration:
                notes.append(Note(begin, end, float(pitches[p])))
    return sorted(notes, key=lambda n: (n.start, n.pitch))
