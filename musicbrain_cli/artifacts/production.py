"""Human production that leaves periodic lines in a spectrum, for the artifact line's corpus.

Session 28's audit (README, "Human production that reaches its operating point") found the
shipped line reaching its operating point on held-out human recordings given common
production it had never seen: a quiet naive (aliasing) square-wave drone as chiptune and
tracker music use, zero-order-hold "sample-rate reducer" effects, an undithered pilot tone;
time-stretching, resampling and tracker-style nearest-neighbour playback came close. Each
of these is a periodic structure in the average spectrum, as a decoder's comb is.

This module makes that production so the corpus can hold it on BOTH sides (a human clip with
a drone is human; a decoded clip with a drone is still decoded): the classifier then has to
find the decoder's own lines, not "any regular lines". Each effect is a pure function
``(y, rate, **settings) -> y`` on float mono audio; :data:`EFFECTS` pairs it with a draw of its
settings from the caller's seeded generator, and :func:`apply` draws one. :func:`audit_settings`
fixes the settings of the held-out audit (every kind at set levels, nothing drawn).

Nothing here is used at scan time.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

#: Divisors of the sample rate a naive oscillator is often tuned to (its aliases then fall
#: on its own harmonics: an exact comb at ``rate / k``), and equal-tempered notes A1-A5.
RATE_DIVISORS = (100, 128, 150, 200, 256, 300, 400)
PILOT_HZ = (15625.0, 19000.0)  # PAL line frequency (CRT whine, TV sources), FM stereo pilot


def _dbfs(level_db: float) -> float:
    return 10.0 ** (level_db / 20.0)


def naive_square(n: int, rate: int, freq_hz: float, *, duty: float = 0.5) -> np.ndarray:
    """A square wave sampled naively (no band limiting), as a chiptune or tracker oscillator."""
    phase = np.mod(np.arange(n, dtype=np.float64) * freq_hz / rate, 1.0)
    return np.where(phase < duty, 1.0, -1.0)


def square_drone(y: np.ndarray, rate: int, *, freq_hz: float, level_dbfs: float,
                 duty: float = 0.5) -> np.ndarray:
    """``y`` plus a naive square drone at ``freq_hz``, ``level_dbfs`` (peak)."""
    return (y + _dbfs(level_dbfs) * naive_square(y.size, rate, freq_hz, duty=duty)).astype(np.float32)


def rate_reducer(y: np.ndarray, rate: int, *, hold: int, wet: float = 1.0) -> np.ndarray:
    """A "sample-rate reducer": every ``hold``-th sample held ``hold`` samples (no filter), mixed ``wet``."""
    held = np.repeat(y[::hold], hold)[: y.size]
    return ((1.0 - wet) * y + wet * held).astype(np.float32)


def pilot_tone(y: np.ndarray, rate: int, *, freq_hz: float, level_dbfs: float) -> np.ndarray:
    """``y`` plus a steady sine at ``freq_hz``, then rounded to 16 bits without dither."""
    t = np.arange(y.size, dtype=np.float64) / rate
    out = y + _dbfs(level_dbfs) * np.sin(2 * math.pi * freq_hz * t)
    return (np.round(np.clip(out, -1.0, 1.0) * 32767.0) / 32767.0).astype(np.float32)


def time_stretch(y: np.ndarray, rate: int, *, factor: float) -> np.ndarray:
    """Phase-vocoder time stretch (librosa) by ``factor`` (> 1 faster), cut to ``y``'s length."""
    import librosa

    return librosa.effects.time_stretch(y.astype(np.float32), rate=factor)[: y.size].astype(np.float32)


def resample_roundtrip(y: np.ndarray, rate: int, *, via_hz: int) -> np.ndarray:
    """Polyphase resampling to ``via_hz`` and back (a sample-rate conversion chain)."""
    from musicbrain_cli.artifacts.corpus import resample

    return resample(resample(y, rate, via_hz), via_hz, rate)[: y.size]


def tracker_playback(y: np.ndarray, rate: int, *, semitones: int) -> np.ndarray:
    """Nearest-neighbour resampling by a semitone ratio, as a tracker replays a sample."""
    ratio = 2.0 ** (semitones / 12.0)
    idx = np.floor(np.arange(int(y.size / ratio), dtype=np.float64) * ratio).astype(np.int64)
    return y[np.clip(idx, 0, y.size - 1)][: y.size].astype(np.float32)


def _draw_drone(rate: int, rng: np.random.Generator) -> dict:
    if rng.random() < 0.4:
        freq = rate / int(rng.choice(RATE_DIVISORS))
    else:  # A1 .. A5
        freq = 440.0 * 2.0 ** (int(rng.integers(-36, 13)) / 12.0)
    return {"freq_hz": freq, "level_dbfs": float(rng.uniform(-50.0, -25.0)),
            "duty": float(rng.choice([0.5, 0.25, 0.125]))}


def _draw_pilot(rate: int, rng: np.random.Generator) -> dict:
    choices = [f for f in PILOT_HZ if f < 0.45 * rate] or [0.4 * rate]
    return {"freq_hz": float(rng.choice(choices)), "level_dbfs": float(rng.uniform(-45.0, -25.0))}


def _draw_resample(rate: int, rng: np.random.Generator) -> dict:
    return {"via_hz": int(rng.choice([r for r in (22050, 24000, 32000, 44100, 48000) if r != rate]))}


Effect = Callable[..., np.ndarray]
#: Every kind: ``name -> (effect, draw of its settings at a rate)`` (sorted: the seeded draws
#: depend on the order).
EFFECTS: dict[str, tuple[Effect, Callable[[int, np.random.Generator], dict]]] = dict(sorted({
    "pilot_tone": (pilot_tone, _draw_pilot),
    "rate_reducer": (rate_reducer, lambda rate, rng: {"hold": int(rng.integers(2, 9)),
                                                      "wet": float(rng.uniform(0.3, 1.0))}),
    "resample_roundtrip": (resample_roundtrip, _draw_resample),
    "square_drone": (square_drone, _draw_drone),
    "time_stretch": (time_stretch, lambda rate, rng: {"factor": float(rng.uniform(0.8, 1.25))}),
    "tracker_playback": (tracker_playback, lambda rate, rng: {
        "semitones": int(rng.choice([s for s in range(-7, 8) if s]))}),
}.items()))


def apply(y: np.ndarray, rate: int, rng: np.random.Generator) -> tuple[np.ndarray, str, dict]:
    """One effect drawn uniformly from :data:`EFFECTS` with its settings; ``(y, name, settings)``."""
    name = sorted(EFFECTS)[int(rng.integers(len(EFFECTS)))]
    effect, draw = EFFECTS[name]
    settings = draw(rate, rng)
    return effect(np.asarray(y, dtype=np.float32), rate, **settings), name, settings


def audit_settings(rate: int) -> list[tuple[str, str, dict]]:
    """The held-out audit: ``(kind, label, settings)`` for every kind at set levels, nothing drawn.

    Drones at 220 Hz and at ``rate / 200`` at -30, -40 and -50 dBFS (square, 50 % duty); hold
    factors 2, 4 and 8 fully wet; pilot tones at each frequency below the band's edge at
    -30 dBFS; time-stretch 0.9 and 1.1; resampling via 32 and 22.05 kHz; tracker playback 3
    semitones down and 5 up.
    """
    out: list[tuple[str, str, dict]] = []
    for level in (-30.0, -40.0, -50.0):
        out.append(("square_drone", f"220Hz@{level:g}dBFS", {"freq_hz": 220.0, "level_dbfs": level}))
        out.append(("square_drone", f"rate/200@{level:g}dBFS", {"freq_hz": rate / 200, "level_dbfs": level}))
    for k in (2, 4, 8):
        out.append(("rate_reducer", f"hold{k}", {"hold": k}))
    for f in PILOT_HZ:
        if f < 0.45 * rate:
            out.append(("pilot_tone", f"{f:g}Hz@-30dBFS", {"freq_hz": f, "level_dbfs": -30.0}))
    for factor in (0.9, 1.1):
        out.append(("time_stretch", f"x{factor:g}", {"factor": factor}))
    for mid in (32000, 22050):
        if mid != rate:
            out.append(("resample_roundtrip", f"via{mid}", {"via_hz": mid}))
    for semis in (-3, 5):
        out.append(("tracker_playback", f"{semis:+d}st", {"semitones": semis}))
    return out
