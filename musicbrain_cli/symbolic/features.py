"""Plain statistics of a list of notes: the symbolic line's input.

One vector per analysis window: note density, pitch statistics, the sorted pitch-class
profile, the melodic-interval histogram, inter-onset and duration statistics, chord sizes.
Each is something a musicologist can recompute from the notes; none of them is the
instrumentation itself (no timbre, no instrument count, no velocity), so that what the
line learns is how the notes were written, not what played them.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

#: Fewer notes than this in a window: no features (the window says nothing).
MIN_NOTES = 8
#: Onsets closer than this are one chord (seconds).
CHORD_TOLERANCE_S = 0.03

FEATURE_NAMES: tuple[str, ...] = (
    ("notes_per_s", "pitch_mean", "pitch_std", "pitch_range", "pitch_class_entropy")
    + tuple(f"pitch_class_top{i + 1}" for i in range(6))
    + tuple(f"interval_{i}" for i in range(12)) + ("interval_12_plus",)
    + ("log_ioi_mean", "log_ioi_std", "ioi_median", "log_duration_mean", "log_duration_std",
       "chord_size_mean", "chord_size_max", "duration_rel_mean", "duration_distinct_share")
    + ("key_clarity", "pitch_class_transition_entropy", "onset_grid_share", "onset_periodicity",
       "interval_4gram_repeat_share", "top_voice_step_mean", "top_voice_step_std",
       "bass_step_std", "sounding_notes_mean"))

# Krumhansl & Kessler (1982) key profiles, C major and C minor.
_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
_KEYS = np.array([np.roll(prof, k) for prof in (_MAJOR, _MINOR) for k in range(12)])


def notes_array(notes: Sequence) -> np.ndarray:
    """``[n, 3]`` float64 (start s, end s, MIDI pitch) from objects with ``start``, ``end``
    and ``pitch`` (:class:`musicbrain_cli.alignment.pitch.Note`) or from such an array."""
    if isinstance(notes, np.ndarray):
        arr = np.asarray(notes, dtype=np.float64)
    else:
        arr = np.array([(n.start, n.end, n.pitch) for n in notes], dtype=np.float64)
    if arr.size == 0:
        return np.zeros((0, 3))
    if arr.ndim != 2 or arr.shape[1] != 3 or not np.all(np.isfinite(arr)):
        raise ValueError(f"notes must be finite [n, 3] (start, end, pitch), got shape {arr.shape}")
    return arr


#: Decimals of a second notes are kept to, wherever the line scores them (fit, scan, measures):
#: a finding records the notes it scored, so they must be the notes as recorded.
TIME_DECIMALS = 3


def canonical_notes(notes: Sequence | np.ndarray) -> np.ndarray:
    """``[n, 3]`` float64 notes with start and end rounded to :data:`TIME_DECIMALS` (the
    millisecond, below basic-pitch's 11.6-ms frames) and whole MIDI pitches: the one form the
    symbolic line scores and records."""
    arr = notes_array(notes).copy()
    arr[:, :2] = np.round(arr[:, :2], TIME_DECIMALS)
    arr[:, 2] = np.round(arr[:, 2])
    return arr


def note_features(notes: Sequence | np.ndarray, duration_s: float) -> np.ndarray | None:
    """The :data:`FEATURE_NAMES` vector of the notes of one window of ``duration_s`` seconds,
    or ``None`` when it holds fewer than :data:`MIN_NOTES` notes."""
    arr = notes_array(notes)
    if len(arr) < MIN_NOTES or not duration_s > 0:
        return None
    arr = arr[np.lexsort((arr[:, 2], arr[:, 0]))]
    start, pitch = arr[:, 0], np.round(arr[:, 2]).astype(int)
    dur = np.maximum(arr[:, 1] - arr[:, 0], 1e-3)
    # onsets closer than CHORD_TOLERANCE_S to the previous one join its chord
    cluster = np.concatenate([[0], np.cumsum(np.diff(start) > CHORD_TOLERANCE_S)])
    first = np.flatnonzero(np.diff(np.concatenate([[-1], cluster])))
    onsets = start[first]
    ioi = np.diff(onsets) if len(onsets) > 1 else np.array([0.5])
    pc = np.bincount(pitch % 12, minlength=12) / len(pitch)
    nz = pc[pc > 0]
    iv = np.abs(np.diff(pitch))
    iv_hist = np.bincount(np.minimum(iv, 12), minlength=13) / max(len(iv), 1)
    chord = np.bincount(cluster).astype(float)
    log_ioi, log_dur = np.log(ioi + 1e-3), np.log(dur + 1e-3)
    return np.concatenate([_basic(arr, start, pitch, dur, onsets, ioi, pc, nz, iv_hist, chord,
                                  log_ioi, log_dur, duration_s),
                           _structure(pitch, dur, onsets, ioi, first, duration_s)])


def _structure(pitch, dur, onsets, ioi, first, duration_s) -> np.ndarray:
    """Key clarity, transitions, metrical regularity, repetition, outer voices, texture."""
    weights = np.bincount(pitch % 12, weights=dur, minlength=12)
    key_clarity = float(np.max([np.corrcoef(weights, k)[0, 1] for k in _KEYS])) \
        if weights.std() > 0 else 0.0
    pcs = pitch % 12
    trans = np.bincount(pcs[:-1] * 12 + pcs[1:], minlength=144).astype(float)
    trans = trans[trans > 0] / trans.sum()
    unit = max(float(np.median(ioi)), 0.05)
    ratio = ioi / unit
    grid = float(np.mean(np.abs(ratio - np.round(ratio)) < 0.1))
    rel = onsets - onsets[0]                          # the notes' own span: shift-invariant
    bins = np.bincount((rel / 0.05).astype(int)).astype(float)
    bins -= bins.mean()
    ac = np.correlate(bins, bins, mode="full")[len(bins) - 1:]
    lags = slice(10, min(len(ac), 81))                        # 0.5 to 4 s
    periodicity = float(ac[lags].max() / ac[0]) if ac[0] > 0 and len(ac) > 10 else 0.0
    steps = np.diff(pitch)
    grams = [tuple(steps[i:i + 4]) for i in range(len(steps) - 3)]
    repeat = 1.0 - len(set(grams)) / len(grams) if grams else 0.0
    top, low = np.maximum.reduceat(pitch, first), np.minimum.reduceat(pitch, first)
    top_steps = np.abs(np.diff(top)) if len(top) > 1 else np.zeros(1)
    low_steps = np.abs(np.diff(low)) if len(low) > 1 else np.zeros(1)
    return np.array([key_clarity, float(-(trans * np.log(trans)).sum()), grid, periodicity, repeat,
                     top_steps.mean(), top_steps.std(), low_steps.std(), dur.sum() / duration_s],
                    dtype=np.float64)


def _basic(arr, start, pitch, dur, onsets, ioi, pc, nz, iv_hist, chord, log_ioi, log_dur,
           duration_s) -> np.ndarray:
    return np.array([len(arr) / duration_s, pitch.mean(), pitch.std(), pitch.max() - pitch.min(),
                     float(-(nz * np.log(nz)).sum()), *np.sort(pc)[::-1][:6], *iv_hist,
                     log_ioi.mean(), log_ioi.std(), np.median(ioi), log_dur.mean(), log_dur.std(),
                     chord.mean(), chord.max(), np.mean(dur / np.median(dur)),
                     len(np.unique(np.round(dur, 2))) / len(dur)], dtype=np.float64)
