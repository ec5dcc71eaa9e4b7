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
4. consecutive active frames of one pitch form a note of at least ``min_duration`` seconds,
   from half a hop before the first frame's centre to half a hop after the last's.

Limits (why a score is always preferred, and why alignment reports say which was used):
octave errors (a strong 2nd partial can win), a real note an octave or a twelfth above a
louder one is merged into it (harmless here: its partials are the louder note's), partials of loud notes can be reported as notes
of their own in dense textures, missing-fundamental tones (low piano, bass through small
speakers) are dropped by step 3, percussion produces spurious pitches, polyphony is capped,
there is no instrument model and no onset/offset modelling beyond frame runs.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

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


def _finite_mono(y) -> np.ndarray:
    """``y`` as float32 mono audio; :class:`InputError` for another shape or for NaN or infinite
    samples (basic-pitch heard no notes in them, and librosa raised its own error at another
    rate: neither says that the audio holds no numbers)."""
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1 or y.size == 0:
        raise InputError(f"expected mono audio [n], got shape {y.shape}")
    if not np.isfinite(y).all():
        raise InputError(f"audio holds {int(np.count_nonzero(~np.isfinite(y)))} samples that are "
                         "not finite (NaN or infinity)")
    return y


def pitch_salience(y: np.ndarray, sr: int, *, hop_length: int = 512,
                   pitch_range: tuple[int, int] = DEFAULT_PITCH_RANGE,
                   n_harmonics: int = DEFAULT_HARMONICS, decay: float = DEFAULT_DECAY
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(salience [P, T], fundamental [P, T], pitches [P] MIDI, times [T] s)`` of mono
    ``y [n]``; ``fundamental`` is the CQT magnitude at each pitch itself."""
    import librosa

    y = _finite_mono(y)
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
    n_semi = n_bins // bps       # semitone s needs bins s * bps .. s * bps + 2
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
    lo_pitch, hi_pitch = pitch_range
    if not 1 < lo_pitch < hi_pitch:
        raise ConfigError(f"invalid pitch_range {pitch_range}")
    # One pitch beyond each end, so that the range's own ends are local maxima against both
    # neighbours: the end rows never could be (a C2 came out as C3, a C7 not at all).
    sal, fund, pitches, times = pitch_salience(y, sr, hop_length=hop_length,
                                               pitch_range=(lo_pitch - 1, hi_pitch + 1),
                                               n_harmonics=n_harmonics, decay=decay)
    is_peak = np.zeros(sal.shape, dtype=bool)
    is_peak[1:-1] = (sal[1:-1] >= sal[:-2]) & (sal[1:-1] > sal[2:])
    sal, fund, pitches, is_peak = sal[1:-1], fund[1:-1], pitches[1:-1], is_peak[1:-1]
    n_p, n_t = sal.shape
    active = np.zeros_like(sal, dtype=bool)
    frame_max = sal.max(axis=0)
    loud = frame_max > frame_max.max() * 10 ** (-silence_db / 20) if frame_max.max() > 0 else np.zeros(n_t, bool)
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
            # frames are centred at their times: a run of them spans half a hop either side
            # (not from the first centre to a hop past the last: every note half a hop late)
            if (stop - start) * hop_s >= min_duration:
                begin = max(0.0, float(times[start]) - hop_s / 2)
                notes.append(Note(begin, float(times[stop - 1]) + hop_s / 2, float(pitches[p])))
    return sorted(notes, key=lambda n: (n.start, n.pitch))


# --- optional: basic-pitch, and the choice between estimators -----------------------------
#
# Measured on 40 rendered test clips of the reference corpus against the notes as rendered
# (docs/evaluation/notes.md, benchmarks/notes.py): onset F 0.44 for estimate_notes above,
# 0.61 for basic-pitch 0.4.0 (paired +0.17, 95 % interval [0.10, 0.24]). basic-pitch is not a
# dependency: on Linux / Python 3.11 its metadata requires tensorflow<2.15.1, which would
# downgrade numpy; installed with ``pip install --no-deps basic-pitch==0.4.0`` beside
# onnxruntime, mir_eval and resampy it runs its shipped ONNX model and changes nothing else
# (README, "Notes without a score").

#: ``auto``: basic-pitch when it is installed and its model loads, else the built-in
#: estimator (the fallback and its reason are recorded); ``basic-pitch``: it or an error;
#: ``builtin``: :func:`estimate_notes`.
NOTE_ESTIMATORS = ("auto", "basic-pitch", "builtin")
DEFAULT_NOTE_ESTIMATOR = "auto"
#: basic-pitch's own defaults (``basic_pitch.inference.predict``, 0.4.0).
BASIC_PITCH_ONSET_THRESHOLD = 0.5
BASIC_PITCH_FRAME_THRESHOLD = 0.3
BASIC_PITCH_MIN_NOTE_S = 0.1277
#: Frames of overlap between basic-pitch's 2-s windows (its run_inference uses 30).
BASIC_PITCH_OVERLAP_FRAMES = 30


@dataclass(frozen=True)
class NoteEstimate:
    """Notes estimated from audio and what produced them. ``estimator`` names the one used
    (with version and runtime for basic-pitch); ``fallback`` says why the requested one was
    not used (None when it was)."""

    notes: list[Note]
    estimator: str
    requested: str
    fallback: str | None = None

    def provenance(self) -> dict:
        """JSON-ready record for result.json (the notes themselves are not included)."""
        return {"estimator": self.estimator, "requested": self.requested,
                "fallback": self.fallback, "notes": len(self.notes)}


@functools.lru_cache(maxsize=1)
def _basic_pitch_model():
    """``(model, label)`` of basic-pitch's shipped ICASSP 2022 model, loaded once per
    process; raises ImportError or ValueError (basic-pitch's own) when it cannot load."""
    import logging
    from importlib.metadata import version

    # basic-pitch logs a warning on the root logger, at import, for each runtime it lacks
    # (TensorFlow, TFLite, CoreML); it runs on onnxruntime here, so they are noise in a scan.
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        from basic_pitch import ICASSP_2022_MODEL_PATH
        from basic_pitch.inference import Model
    finally:
        logging.disable(previous)

    model = Model(ICASSP_2022_MODEL_PATH)
    return model, f"basic-pitch {version('basic-pitch')} ({model.model_type.name.lower()})"


def basic_pitch_available() -> tuple[bool, str]:
    """``(True, label)`` when basic-pitch and a runtime for its model are installed, else
    ``(False, why not)``."""
    try:
        return True, _basic_pitch_model()[1]
    except ImportError as exc:
        return False, f"basic-pitch is not installed ({exc})"
    except ValueError as exc:  # basic-pitch: no runtime (TF, TFLite, ONNX, CoreML) loads it
        return False, f"basic-pitch's model cannot be loaded: {exc}"


def basic_pitch_notes(y: np.ndarray, sr: int, *,
                      onset_threshold: float = BASIC_PITCH_ONSET_THRESHOLD,
                      frame_threshold: float = BASIC_PITCH_FRAME_THRESHOLD,
                      min_note_s: float = BASIC_PITCH_MIN_NOTE_S) -> list[Note]:
    """Notes of mono audio ``y [n]`` at ``sr`` Hz by basic-pitch (Bittner et al., "A
    lightweight instrument-agnostic model for polyphonic note transcription and multipitch
    estimation", ICASSP 2022), sorted by start. Does what ``basic_pitch.inference.predict``
    does, on an array instead of a file: resample to its 22,050 Hz, 2-s windows overlapping
    by 30 frames, the model, then its note creation (pitch bends off: only notes are used).
    Raises :class:`ConfigError` when basic-pitch cannot run."""
    import librosa

    ok, why = basic_pitch_available()
    if not ok:
        raise ConfigError(f"note estimator 'basic-pitch' is unavailable: {why}")
    from basic_pitch import note_creation
    from basic_pitch.constants import AUDIO_N_SAMPLES, AUDIO_SAMPLE_RATE, FFT_HOP
    from basic_pitch.inference import unwrap_output, window_audio_file

    y = _finite_mono(y)
    if sr != AUDIO_SAMPLE_RATE:
        y = librosa.resample(y, orig_sr=sr, target_sr=AUDIO_SAMPLE_RATE)
    model = _basic_pitch_model()[0]
    overlap = BASIC_PITCH_OVERLAP_FRAMES * FFT_HOP

    padded = np.concatenate([np.zeros(overlap // 2, np.float32), y])
    output: dict[str, list] = {"note": [], "onset": [], "contour": []}
    for window, _ in window_audio_file(padded, AUDIO_N_SAMPLES - overlap):
        for key, value in model.predict(window[None]).items():
            output[key].append(value)
    unwrapped = {k: unwrap_output(np.concatenate(v), len(y), BASIC_PITCH_OVERLAP_FRAMES)
                 for k, v in output.items()}
    _, events = note_creation.model_output_to_notes(
        unwrapped, onset_thresh=onset_threshold, frame_thresh=frame_threshold,
        min_note_len=int(round(min_note_s * AUDIO_SAMPLE_RATE / FFT_HOP)),
        include_pitch_bends=False)
    return sorted((Note(float(s), float(e), float(p)) for s, e, p, *_ in events),
                  key=lambda n: (n.start, n.pitch))


def check_note_estimator(estimator: str) -> str:
    """``estimator`` if it is one of :data:`NOTE_ESTIMATORS`; an explicit ``basic-pitch``
    must also be runnable. Raises :class:`ConfigError` (checked before a scan starts)."""
    if estimator not in NOTE_ESTIMATORS:
        raise ConfigError(f"unknown note estimator {estimator!r}; use one of {NOTE_ESTIMATORS}")
    if estimator == "basic-pitch":
        ok, why = basic_pitch_available()
        if not ok:
            raise ConfigError(f"note estimator 'basic-pitch' is unavailable: {why}")
    return estimator


def transcribe(y: np.ndarray, sr: int, *, estimator: str = DEFAULT_NOTE_ESTIMATOR) -> NoteEstimate:
    """Notes of mono audio ``y [n]`` at ``sr`` Hz by the chosen estimator
    (:data:`NOTE_ESTIMATORS`), with what was used and why."""
    check_note_estimator(estimator)
    if estimator != "builtin":
        ok, why = basic_pitch_available()
        if ok:
            return NoteEstimate(basic_pitch_notes(y, sr), why, estimator)
        return NoteEstimate(estimate_notes(y, sr), "builtin", estimator, fallback=why)
    return NoteEstimate(estimate_notes(y, sr), "builtin", estimator)
