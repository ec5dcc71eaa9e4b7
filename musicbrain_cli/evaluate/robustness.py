"""Robustness of the detector: how often it is wrong after what happens to music on its way
to a dispute (re-encoding, resampling, level changes, noise, pitch and tempo edits, excerpts)
and on music rendered with a SoundFont it never heard.

Published detectors of generated music lose much of their accuracy under exactly these
operations (Afchar et al., "Detecting music deepfakes is easy but actually hard", 2024:
re-encoding, pitch shift and time stretch; the SONICS benchmark, Rahman et al. 2025:
unseen generators and lossy codecs). A false accusation is the costliest error, so besides
ROC-AUC and the rates at the operating threshold, every row reports how many *human* clips
the full verdict rule (abstention band, window disagreement, out of domain; see
:mod:`musicbrain_cli.verdict`) calls ``ai``.

Each transform is a pure function ``(y [shape=(n,)] float32 mono, sr, *, rng) -> y'`` at
the same rate ``sr``; randomness (the noise) comes only from ``rng``, seeded per
(seed, transform, clip) so a row does not depend on which other clips or transforms ran::

    rows = evaluate_robustness("data/reference", Detector.from_pretrained("default"))
    write_robustness(rows, "out/")           # robustness.json + robustness.md
    update_card("path/to/model", rows)       # card["robustness"]: scan reports show it

Every clip of the split is decoded once and its samples reused across the transforms;
each transformed clip goes through :meth:`Detector.predict_track` (the windows and the
aggregation of a scan) and the verdict through the same rule as a scan.
"""

from __future__ import annotations

import json
import math
import zlib
from collections import Counter
from dataclasses import dataclass, field
from fractions import Fraction
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from musicbrain_cli.audio.encode import Format, encode_audio
from musicbrain_cli.errors import DatasetError, InputError, ModelLoadError, MusicBrainError, TransformError
from musicbrain_cli.progress import NULL_PROGRESS, Progress
from musicbrain_cli.taxonomy import DETECTION_LABEL

ROBUSTNESS_JSON, ROBUSTNESS_MD = "robustness.json", "robustness.md"
#: Pseudo-transform: no change to the audio, but the data set's cross-renderer split (clips
#: rendered only with a SoundFont held out of training; see data/dataset.py).
HELD_OUT_SOUNDFONT = "held_out_soundfont"
HELD_OUT_SPLIT = "test_xsf"
#: Rate at which MP3 and AAC are encoded: files in circulation are 44.1 kHz, and MPEG-2
#: layer III at the model's 22.05 kHz cannot even carry 320 kbit/s (its maximum is 160).
DISTRIBUTION_RATE = 44100

TransformFn = Callable[..., np.ndarray]


# --- the transforms -------------------------------------------------------------------------


def _fit_length(y: np.ndarray, n: int) -> np.ndarray:
    """``y`` cut or zero-padded to ``n`` samples (codec padding, resampler rounding)."""
    if y.size >= n:
        return np.ascontiguousarray(y[:n], dtype=np.float32)
    out = np.zeros(n, np.float32)
    out[: y.size] = y
    return out


def _resample(y: np.ndarray, sr_from: int, sr_to: int) -> np.ndarray:
    """Polyphase resampling (scipy ``resample_poly``: Kaiser-windowed FIR, zero phase, so
    a round trip stays aligned sample for sample)."""
    from scipy.signal import resample_poly

    if sr_from == sr_to:
        return np.asarray(y, dtype=np.float32).copy()
    ratio = Fraction(sr_to, sr_from)
    return resample_poly(y, ratio.numerator, ratio.denominator).astype(np.float32)


def identity(y: np.ndarray, sr: int, *, rng: np.random.Generator) -> np.ndarray:
    """The clip as decoded (the reference row)."""
    return np.asarray(y, dtype=np.float32).copy()


def reencode(y: np.ndarray, sr: int, *, rng: np.random.Generator, spec: Format,
             suffix: str) -> np.ndarray:
    """Resample to the codec's rate, encode, decode back to ``sr`` through the intake.

    Decoding goes through :func:`musicbrain_cli.audio.intake.load_audio` (the scan's decoder:
    FFmpeg, libswresample to ``sr``), in process because the file is our own. FFmpeg
    removes the encoder delay (LAME tag, MP4 edit list, Opus pre-skip); the remaining
    end padding is cut so the output has the input's length.
    """
    import tempfile

    import av

    from musicbrain_cli.audio.intake import load_audio

    with tempfile.TemporaryDirectory(prefix="musicbrain-robust-") as tmp:
        path = Path(tmp) / f"clip{suffix}"
        try:
            encode_audio(path, _resample(y, sr, int(spec.rate)), int(spec.rate), spec=spec)
        except (av.FFmpegError, ValueError) as exc:
            raise TransformError(f"cannot encode with {spec.codec} at {spec.bit_rate} bit/s: "
                                 f"{exc}") from exc
        z = load_audio(path, sample_rate=sr, isolate=False)
    return _fit_length(z, y.size)


def resample_chain(y: np.ndarray, sr: int, *, rng: np.random.Generator, rate: int) -> np.ndarray:
    """``sr`` -> ``rate`` -> ``sr``: what a re-upload at another rate does to the signal
    (below ``sr``, the band above ``rate / 2`` is lost)."""
    return _fit_length(_resample(_resample(y, sr, rate), rate, sr), y.size)


def gain(y: np.ndarray, sr: int, *, rng: np.random.Generator, db: float) -> np.ndarray:
    """Scale by ``db`` decibels; float samples, so nothing clips."""
    return (np.asarray(y, dtype=np.float32) * np.float32(10.0 ** (db / 20.0))).astype(np.float32)


def white_noise(y: np.ndarray, sr: int, *, rng: np.random.Generator, snr_db: float) -> np.ndarray:
    """Add Gaussian white noise at exactly ``snr_db`` (clip power / noise power, in dB).

    The drawn noise is rescaled to the target power, so the SNR holds for every clip, not
    only on average.
    """
    y = np.asarray(y, dtype=np.float64)
    p_signal = float(np.mean(y ** 2)) if y.size else 0.0
    if p_signal <= 0.0:
        raise TransformError("the clip is silent: a signal-to-noise ratio is undefined")
    noise = rng.standard_normal(y.size)
    noise *= math.sqrt(p_signal / 10.0 ** (snr_db / 10.0) / float(np.mean(noise ** 2)))
    return (y + noise).astype(np.float32)


def fade(y: np.ndarray, sr: int, *, rng: np.random.Generator, seconds: float,
         at: str, shape: str = "square") -> np.ndarray:
    """A fade-in (``at="in"``) or fade-out (``"out"``) over ``seconds`` (the whole clip when
    shorter): gain rising as ``(t / seconds) ** 2`` from silence, a fade in amplitude that
    sounds even, as an editor's "exponential" fade does (``shape="square"``), or as
    ``t / seconds`` (``"linear"``, an editor's default fade); a fade-out the same reversed."""
    from musicbrain_cli.audio.intake import seconds_to_samples

    if at not in ("in", "out"):
        raise ValueError(f"at must be 'in' or 'out', not {at!r}")
    if shape not in ("square", "linear"):
        raise ValueError(f"shape must be 'square' or 'linear', not {shape!r}")
    y = np.asarray(y, dtype=np.float32)
    n = min(y.size, seconds_to_samples(seconds, sr))
    g = np.ones(y.size, np.float32)
    ramp = np.arange(n, dtype=np.float32) / max(n, 1)
    if shape == "square":
        ramp = ramp ** 2
    if at == "in":
        g[:n] = ramp
    else:
        g[y.size - n:] = ramp[::-1]
    return y * g


def soft_start(y: np.ndarray, sr: int, *, rng: np.random.Generator, seconds: float,
               db: float) -> np.ndarray:
    """The first ``seconds`` ``db`` quieter, the rest as it was: a soft opening (one voice
    before the others enter, a pianissimo start) at its simplest."""
    from musicbrain_cli.audio.intake import seconds_to_samples

    y = np.array(y, dtype=np.float32)
    y[:seconds_to_samples(seconds, sr)] *= np.float32(10.0 ** (-db / 20.0))
    return y


def dc_offset(y: np.ndarray, sr: int, *, rng: np.random.Generator, level: float) -> np.ndarray:
    """Add a constant ``level`` (full scale = 1), as a miscalibrated converter does."""
    return (np.asarray(y, dtype=np.float32) + np.float32(level)).astype(np.float32)


def hard_clip(y: np.ndarray, sr: int, *, rng: np.random.Generator, over_db: float) -> np.ndarray:
    """Drive the clip ``over_db`` past full scale and clip it there: its peak raised to
    ``10 ** (over_db / 20)`` and every sample beyond +/-1 cut to +/-1, as a loud master or an
    overdriven converter does (the worst case of a limiter: no attack, no release)."""
    y = np.asarray(y, dtype=np.float32)
    peak = float(np.abs(y).max()) if y.size else 0.0
    if peak <= 0.0:
        raise TransformError("the clip is silent: there is nothing to clip")
    drive = np.float32(10.0 ** (over_db / 20.0) / peak)
    return np.clip(y * drive, -1.0, 1.0).astype(np.float32)


def reverb(y: np.ndarray, sr: int, *, rng: np.random.Generator, rt60_s: float,
           wet: float) -> np.ndarray:
    """A room: the clip convolved with an impulse response of white noise decaying by 60 dB
    over ``rt60_s`` (drawn from ``rng``), scaled to the dry clip's power and mixed in at
    ``wet`` of the power (``sqrt(1 - wet)`` dry, ``sqrt(wet)`` room: the two are nearly
    uncorrelated, so the level stays about the same); the tail past the clip's end is cut."""
    from scipy.signal import fftconvolve

    from musicbrain_cli.audio.intake import seconds_to_samples

    y = np.asarray(y, dtype=np.float64)
    n = seconds_to_samples(rt60_s, sr)
    t = np.arange(n) / sr
    ir = rng.standard_normal(n) * 10.0 ** (-3.0 * t / rt60_s)      # -60 dB at rt60_s
    ir /= math.sqrt(float(np.sum(ir ** 2)))                         # unit energy
    room = fftconvolve(y, ir)[:y.size]
    p_dry, p_room = float(np.mean(y ** 2)), float(np.mean(room ** 2))
    if p_dry <= 0.0 or p_room <= 0.0:
        raise TransformError("the clip is silent: a room adds nothing to hear")
    room *= math.sqrt(p_dry / p_room)
    return (math.sqrt(1.0 - wet) * y + math.sqrt(wet) * room).astype(np.float32)


def pitch_shift(y: np.ndarray, sr: int, *, rng: np.random.Generator, semitones: float) -> np.ndarray:
    """Shift pitch by ``semitones`` keeping the duration (librosa: phase-vocoder stretch,
    then resampling)."""
    import librosa

    return librosa.effects.pitch_shift(np.asarray(y, dtype=np.float32), sr=sr,
                                       n_steps=semitones).astype(np.float32)


def time_stretch(y: np.ndarray, sr: int, *, rng: np.random.Generator, factor: float) -> np.ndarray:
    """Make the clip ``factor`` times as long keeping the pitch (librosa phase vocoder;
    its ``rate`` is a speed, ``1 / factor``)."""
    import librosa

    return librosa.effects.time_stretch(np.asarray(y, dtype=np.float32),
                                        rate=1.0 / factor).astype(np.float32)


def trim(y: np.ndarray, sr: int, *, rng: np.random.Generator, seconds: float) -> np.ndarray:
    """The first ``seconds`` of the clip; a clip no longer than that is left as is."""
    from musicbrain_cli.audio.intake import seconds_to_samples

    n = seconds_to_samples(seconds, sr)
    return np.asarray(y[:n] if y.size > n else y, dtype=np.float32).copy()


@dataclass(frozen=True)
class Transform:
    """A named transform; ``name`` is what reports show, ``key`` what the CLI takes."""

    key: str
    name: str
    fn: TransformFn = field(repr=False)
    note: str = ""
    trim_s: float | None = None     # trims: clips no longer than this are left as is

    def __call__(self, y: np.ndarray, sr: int, *, rng: np.random.Generator) -> np.ndarray:
        y = np.asarray(y)
        if y.ndim != 1 or y.size == 0:
            raise TransformError(f"{self.key}: need non-empty mono samples [shape=(n,)], "
                                 f"got shape {y.shape}")
        out = self.fn(y, sr, rng=rng)
        if out.ndim != 1 or out.size == 0 or not np.all(np.isfinite(out)):
            raise TransformError(f"{self.key}: produced unusable samples (shape {out.shape})")
        return out


def _codec(key, name, container, codec, rate, kbps, suffix) -> Transform:
    spec = Format(container, codec, rate=rate, bit_rate=kbps * 1000)
    return Transform(key, name, partial(reencode, spec=spec, suffix=suffix),
                     note=f"{codec} at {rate} Hz, decoded by the scan's FFmpeg decoder")


#: Every transform, in report order. ``original`` is the reference each row compares to.
TRANSFORMS: dict[str, Transform] = {t.key: t for t in (
    Transform("original", "Original (as decoded)", identity),
    _codec("mp3_128", "MP3 128 kbit/s", "mp3", "libmp3lame", DISTRIBUTION_RATE, 128, ".mp3"),
    _codec("mp3_320", "MP3 320 kbit/s", "mp3", "libmp3lame", DISTRIBUTION_RATE, 320, ".mp3"),
    _codec("aac_128", "AAC 128 kbit/s", "mp4", "aac", DISTRIBUTION_RATE, 128, ".m4a"),
    _codec("opus_64", "Opus 64 kbit/s", "ogg", "libopus", 48000, 64, ".opus"),
    Transform("resample_16k", "Resampled via 16 kHz", partial(resample_chain, rate=16000),
              note="band above 8 kHz removed"),
    Transform("resample_44k1", "Resampled via 44.1 kHz", partial(resample_chain, rate=44100)),
    Transform("resample_48k", "Resampled via 48 kHz", partial(resample_chain, rate=48000)),
    Transform("gain_+6db", "Gain +6 dB", partial(gain, db=6.0), note="float, not clipped"),
    Transform("gain_-6db", "Gain -6 dB", partial(gain, db=-6.0)),
    Transform("noise_30db", "White noise, 30 dB SNR", partial(white_noise, snr_db=30.0)),
    Transform("noise_20db", "White noise, 20 dB SNR", partial(white_noise, snr_db=20.0)),
    Transform("fade_in_3s", "Fade-in over 3 s", partial(fade, seconds=3.0, at="in"),
              note="gain (t / 3 s)^2 from silence"),
    Transform("fade_in_1s", "Fade-in over 1 s", partial(fade, seconds=1.0, at="in"),
              note="gain (t / 1 s)^2 from silence"),
    Transform("fade_in_linear_3s", "Linear fade-in over 3 s",
              partial(fade, seconds=3.0, at="in", shape="linear"),
              note="gain t / 3 s from silence"),
    Transform("soft_start_30db", "First second 30 dB quieter",
              partial(soft_start, seconds=1.0, db=30.0), note="a soft opening"),
    Transform("fade_out_6s", "Fade-out over 6 s", partial(fade, seconds=6.0, at="out"),
              note="gain falling as (t / 6 s)^2 to silence"),
    Transform("dc_+0.1", "DC offset +0.1", partial(dc_offset, level=0.1),
              note="a constant 10 % of full scale added"),
    Transform("clip_6db", "Hard clipping 6 dB over full scale", partial(hard_clip, over_db=6.0),
              note="peak driven to +6 dBFS, cut at full scale (a loud master)"),
    Transform("reverb_room", "Room reverb (RT60 0.8 s, 20 % of the power)",
              partial(reverb, rt60_s=0.8, wet=0.2),
              note="decaying-noise impulse response, level kept"),
    Transform("reverb_hall", "Hall reverb (RT60 2 s, 30 % of the power)",
              partial(reverb, rt60_s=2.0, wet=0.3),
              note="decaying-noise impulse response, level kept"),
    Transform("pitch_+1", "Pitch +1 semitone", partial(pitch_shift, semitones=1.0)),
    Transform("pitch_-1", "Pitch -1 semitone", partial(pitch_shift, semitones=-1.0)),
    Transform("stretch_+5", "Time stretch +5% (longer)", partial(time_stretch, factor=1.05)),
    Transform("stretch_-5", "Time stretch -5% (shorter)", partial(time_stretch, factor=0.95)),
    Transform("trim_10s", "First 10 s", partial(trim, seconds=10.0), trim_s=10.0),
    Transform("trim_30s", "First 30 s", partial(trim, seconds=30.0), trim_s=30.0),
)}
#: Everything :func:`evaluate_robustness` runs by default.
DEFAULT_KEYS: tuple[str, ...] = (*TRANSFORMS, HELD_OUT_SOUNDFONT)


# --- measuring ------------------------------------------------------------------------------


@dataclass
class _Tally:
    """Per-clip outcomes of one (split, transform) row."""

    is_ai: list[bool] = field(default_factory=list)
    p_ai: list[float] = field(default_factory=list)
    clips: list[str] = field(default_factory=list)
    works: list[str] = field(default_factory=list)        # "" where the data set names none
    verdicts: list[str] = field(default_factory=list)
    out_of_domain: list[bool] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)     # "clip: reason"
    unchanged: int = 0                                    # trims of clips already short enough


def _rng(seed: int, key: str, clip_id: str) -> np.random.Generator:
    """A generator that depends on (seed, transform, clip) only."""
    return np.random.default_rng([seed, zlib.crc32(key.encode()), zlib.crc32(clip_id.encode())])


def _select(rows: Sequence[Mapping], max_clips: int | None, seed: int) -> list[Mapping]:
    """Clips with a known source; at most ``max_clips``, seeded and balanced between human
    and AI as far as the split allows (so both rates can be measured)."""
    rows = [r for r in rows if (r.get("source") or "").strip() in ("human", "ai")]
    if max_clips is None or len(rows) <= max_clips:
        return sorted(rows, key=lambda r: r["clip_id"])
    rng = np.random.default_rng(seed)
    human = [r for r in rows if r["source"].strip() == "human"]
    ai = [r for r in rows if r["source"].strip() == "ai"]
    human = [human[i] for i in rng.permutation(len(human))]
    ai = [ai[i] for i in rng.permutation(len(ai))]
    n_h = min(len(human), max(max_clips - len(ai), (max_clips + 1) // 2))
    picked = human[:n_h] + ai[:max_clips - n_h]
    return sorted(picked, key=lambda r: r["clip_id"])


def _score_clip(detector, y: np.ndarray, *, batch_size: int) -> tuple[float, str, bool | None]:
    """``(P(AI), verdict label, in domain)`` of samples ``y`` at the model rate, as a scan
    decides them: the same model stage (:meth:`Detector.predict_track`) and the same rule
    (:func:`musicbrain_cli.verdict.track_verdict`), with the detector's own out-of-domain
    statistics."""
    from musicbrain_cli.verdict import track_verdict

    pred = detector.predict_track(y, batch_size=batch_size)
    verdict, ood_facts = track_verdict(pred, detector)
    in_domain = ood_facts.get("in_domain") if ood_facts.get("available") else None
    return pred.aggregate[DETECTION_LABEL]["mean"], verdict.label, in_domain


def _resolve(transforms: Iterable[str | Transform] | None) -> tuple[list[Transform], bool]:
    keys = DEFAULT_KEYS if transforms is None else list(transforms)
    out, held_out = [], False
    for t in keys:
        if isinstance(t, Transform):
            out.append(t)
        elif t == HELD_OUT_SOUNDFONT:
            held_out = True
        elif t in TRANSFORMS:
            out.append(TRANSFORMS[t])
        else:
            raise InputError(f"unknown transform {t!r} (known: {', '.join(DEFAULT_KEYS)})")
    if not out and not held_out:
        raise InputError("no transform selected")
    return out, held_out


def evaluate_robustness(dataset_root, detector, *, split: str = "test",
                        transforms: Iterable[str | Transform] | None = None,
                        max_clips: int | None = None, seed: int = 0, batch_size: int = 16,
                        progress: Progress = NULL_PROGRESS) -> list[dict]:
    """One row per transform: detection figures on ``split`` after that transform.

    Args:
        dataset_root: a data set folder (:class:`~musicbrain_cli.data.dataset.Dataset`).
        detector: a :class:`~musicbrain_cli.model.inference.Detector`; its model folder's
            out-of-domain statistics are used when it has them (as in a scan).
        transforms: keys of :data:`TRANSFORMS`, :data:`HELD_OUT_SOUNDFONT`, or
            :class:`Transform` objects; default :data:`DEFAULT_KEYS`.
        max_clips: at most this many clips per split (seeded, balanced human/AI).
        seed: seeds the clip selection and the noise.

    Returns rows ``{"transform", "key", "split", "n_human", "n_ai", "roc_auc", "fpr",
    "fpr_ci95", "tpr", "tpr_ci95", "threshold", "ai_verdicts_on_human",
    "ai_verdicts_on_human_ci95", "by_work", "verdicts", "ood_flagged", "failed", "note",
    "seed", "max_clips"}``:
    ROC-AUC of the clip-level calibrated P(AI) (mean over windows), rates of ``P(AI) >=
    threshold`` (the card's detection threshold) with Wilson 95 % intervals, the share of
    human clips the full verdict rule calls ``ai``, and ``by_work``
    (:func:`musicbrain_cli.metrics.work_rates`: the same verdicts counted by work, Wilson
    intervals over works; ``None`` when the data set names no work). A figure that cannot be measured (a class
    missing) is ``None``. A clip that fails to decode or to transform is left out of its
    rows and counted in ``failed`` and ``note``.
    """
    from musicbrain_cli.audio.intake import load_audio
    from musicbrain_cli.data.dataset import Dataset

    if max_clips is not None and max_clips < 1:
        raise InputError(f"max_clips must be >= 1, got {max_clips!r}")
    dataset = Dataset.load(dataset_root)
    chosen, held_out = _resolve(transforms)
    plan: list[tuple[str, list[Transform]]] = []
    if chosen:
        plan.append((split, chosen))
    if held_out and split != HELD_OUT_SPLIT:
        plan.append((HELD_OUT_SPLIT, [TRANSFORMS["original"]]))
    ood_card = detector.card.get("ood") or {}
    ood_available = detector.ood is not None and ("threshold" in ood_card or bool(ood_card.get("checks")))
    sr = detector.config.front_end.sample_rate
    # the threshold the verdict calls 'ai' at (card["thresholds"]["detection"]), not
    # Detector.thresholds["source/ai"], which a per-label entry of the card can set apart
    # from it: FPR/TPR are stated at the scan's own operating point (review defect)
    from musicbrain_cli.verdict import VerdictPolicy

    threshold = VerdictPolicy.from_card(detector.card).threshold
    out: list[dict] = []
    for split_name, tlist in plan:
        clips = _select(dataset.split(split_name), max_clips, seed)
        if not clips and split_name == split:
            raise DatasetError(f"split {split!r} of {str(dataset.root)!r} has no clip with a "
                               "known source (human or ai)")
        tallies = {t.key: _Tally() for t in tlist}
        with progress.task(f"robustness: {split_name}", total=len(clips) * len(tlist)) as task:
            for row in clips:
                clip_id, is_ai = row["clip_id"], row["source"].strip() == "ai"
                try:
                    y = load_audio(dataset.audio_path(row), sample_rate=sr)
                except MusicBrainError as exc:
                    for tally in tallies.values():
                        tally.failed.append(f"{clip_id}: {type(exc).__name__}: {exc}")
                    task.advance(len(tlist))
                    continue
                for t in tlist:
                    tally = tallies[t.key]
                    try:
                        y_t = t(y, sr, rng=_rng(seed, t.key, clip_id))
                        p, label, in_domain = _score_clip(detector, y_t, batch_size=batch_size)
                    except MusicBrainError as exc:
                        tally.failed.append(f"{clip_id}: {type(exc).__name__}: {exc}")
                    else:
                        tally.is_ai.append(is_ai)
                        tally.p_ai.append(p)
                        tally.clips.append(clip_id)
                        tally.works.append(row.get("work_id") or "")
                        tally.verdicts.append(label)
                        tally.out_of_domain.append(in_domain is False)
                        if t.trim_s is not None and y.size <= round(t.trim_s * sr):
                            tally.unchanged += 1
                    task.advance()
        for t in tlist:
            name = t.name if split_name == split else "Held-out SoundFont (cross-renderer)"
            key = t.key if split_name == split else HELD_OUT_SOUNDFONT
            out.append({**_row(tallies[t.key], name=name, key=key, split=split_name,
                               threshold=threshold,
                               note=_note(t, tallies[t.key], split_name, split, n_clips=len(clips)),
                               ood_available=ood_available),
                        # what selects the clips and draws the noise: a row is reproduced
                        # only with it (it was not recorded)
                        "seed": int(seed), "max_clips": max_clips})
    return out


def _note(t: Transform, tally: _Tally, split_name: str, split: str, *, n_clips: int) -> str:
    parts = []
    if split_name != split:
        parts.append(f"split {split_name!r}: clips rendered only with a SoundFont held out of "
                     "training, audio unchanged")
        if n_clips == 0:
            parts.append(f"the data set has no {split_name!r} split: not measured")
    elif t.note:
        parts.append(t.note)
    if t.trim_s is not None:
        parts.append(f"{tally.unchanged} of {len(tally.p_ai)} clips no longer than "
                     f"{t.trim_s:g} s left as is")
    if tally.failed:
        parts.append(f"{len(tally.failed)} clips failed, e.g. {tally.failed[0]}")
    return "; ".join(parts)


def _row(tally: _Tally, *, name: str, key: str, split: str, threshold: float, note: str,
         ood_available: bool) -> dict:
    from musicbrain_cli.metrics import rates_at_threshold, roc_auc, wilson_interval, work_rates
    from musicbrain_cli.verdict import AI, HUMAN

    truth = np.asarray(tally.is_ai, dtype=np.float32)
    p = np.asarray(tally.p_ai, dtype=np.float64)
    n_ai = int(truth.sum())
    n_human = int(truth.size - n_ai)
    if truth.size:
        rates = rates_at_threshold(truth, p, threshold)
        auc = roc_auc(truth, p)
    else:
        rates = {"fpr": None, "fpr_ci95": [None, None], "tpr": None, "tpr_ci95": [None, None]}
        auc = None
    counts = {"human": Counter(), "ai": Counter()}
    for is_ai, label in zip(tally.is_ai, tally.verdicts):
        counts["ai" if is_ai else "human"][label] += 1
    false_ai = counts["human"][AI]
    # the clips of one work are not independent: the false accusations counted by work too,
    # with Wilson intervals over works (None when the data set names no work)
    by_work = (work_rates(tally.clips, tally.verdicts, np.asarray(tally.is_ai, dtype=bool),
                          dict(zip(tally.clips, tally.works)), ai=AI, human=HUMAN)
               if tally.clips else None)
    return {
        "transform": name, "key": key, "split": split,
        "n_human": n_human, "n_ai": n_ai,
        "roc_auc": auc,
        "fpr": rates["fpr"], "fpr_ci95": list(rates["fpr_ci95"]),
        "tpr": rates["tpr"], "tpr_ci95": list(rates["tpr_ci95"]),
        "threshold": float(threshold),
        "ai_verdicts_on_human": false_ai / n_human if n_human else None,
        "ai_verdicts_on_human_ci95": list(wilson_interval(false_ai, n_human)),
        "by_work": by_work,
        "verdicts": {k: dict(sorted(v.items())) for k, v in counts.items()},
        "ood_flagged": (float(np.mean(tally.out_of_domain)) if ood_available and tally.p_ai
                        else None),
        "failed": len(tally.failed),
        "note": note,
    }


# --- writing --------------------------------------------------------------------------------


def _clean(x: Any) -> Any:
    """JSON-safe: NaN/inf -> None, numpy scalars -> Python, recursively."""
    from musicbrain_cli.evaluate.split import _finite

    return _finite(x)


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _ci(pair: Sequence[float | None]) -> str:
    return "" if pair[0] is None else f" [{100 * pair[0]:.1f}, {100 * pair[1]:.1f}]"


def _by_work(w: Mapping | None) -> str:
    if not w or not w.get("n_human_works"):
        return "n/a"
    return (f"{w['human_works_with_a_clip_called_ai']} of {w['n_human_works']} works"
            f"{_ci(w.get('fpr_works_ci95', [None]))}")


def robustness_markdown(rows: Sequence[Mapping], model: Mapping | None = None,
                        measured_on: Mapping | None = None) -> str:
    """The rows as a Markdown table (rates in per cent with Wilson 95 % intervals); ``model``
    (name, version, weights_sha256, card_sha256) names the model they were measured on,
    ``measured_on`` (data_set, manifest_sha256) the data."""
    lines = ["# Robustness of the detector", ""]
    if model:
        lines += [f"Model: {model.get('name')} {model.get('version')}, weights SHA-256 "
                  f"`{model.get('weights_sha256')}`"
                  + (f", model card SHA-256 `{model['card_sha256']}`"
                     if model.get("card_sha256") else "") + ".", ""]
    if measured_on:
        lines += [f"Data set: `{measured_on.get('data_set')}` (manifest SHA-256 "
                  f"`{measured_on.get('manifest_sha256')}`).", ""]
    lines += [
             "Clip-level calibrated P(AI) after each transformation. FPR and TPR at the "
             "model card's detection threshold; 'ai on human' is the share of human clips the "
             "full verdict rule (abstention band, window disagreement, out of domain) calls "
             "AI, the figure that matters for false accusations. 'out of domain': share of "
             "clips the model's out-of-domain check flags (n/a: the model has no statistics). "
             "'by work': human works with any clip called AI, of the human works (a work's "
             "clips are not independent, so the clip-level interval is narrower than the "
             "evidence). Brackets: Wilson 95 % intervals.", "",
             "| transformation | split | n (human + ai) | ROC-AUC | FPR | TPR | ai on human "
             "| ai on human, by work | out of domain | note |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        auc = "n/a" if r.get("roc_auc") is None else f"{r['roc_auc']:.3f}"
        lines.append(
            f"| {r['transform']} | {r['split']} | {r['n_human']} + {r['n_ai']} | {auc} "
            f"| {_pct(r.get('fpr'))}{_ci(r.get('fpr_ci95', [None]))} "
            f"| {_pct(r.get('tpr'))}{_ci(r.get('tpr_ci95', [None]))} "
            f"| {_pct(r.get('ai_verdicts_on_human'))}"
            f"{_ci(r.get('ai_verdicts_on_human_ci95', [None]))} "
            f"| {_by_work(r.get('by_work'))} "
            f"| {_pct(r.get('ood_flagged'))} "
            f"| {str(r.get('note', '')).replace('|', '/')} |")
    if rows:
        lines += ["", f"Detection threshold: {rows[0].get('threshold', float('nan')):.3f}."]
        seeds = sorted({str(r.get("seed")) for r in rows if r.get("seed") is not None})
        if seeds:
            cap = rows[0].get("max_clips")
            lines += ["", f"Clip selection and noise seeded with {', '.join(seeds)}; "
                          + ("every clip of each split." if cap is None else f"at most {cap} clips per split.")]
    return "\n".join(lines) + "\n"


def write_robustness(rows: Sequence[Mapping], out_dir: str | Path, *, model: Mapping | None = None,
                     measured_on: Mapping | None = None,
                     overwrite: bool = False) -> tuple[Path, Path]:
    """Write ``robustness.json`` and ``robustness.md`` into ``out_dir``; returns both paths.
    ``model``: the card's name, version and weights_sha256 (and ``card_sha256`` /
    ``ood_sha256`` when it holds them: the card's operating point, band and domain thresholds
    decide the verdicts counted), recorded so the table can be tied to the model it describes;
    ``measured_on``: the data set the rows were measured on (its path and manifest SHA-256),
    recorded as such, since the rows name only a split.

    Refuses to replace an existing ``robustness.json`` unless ``overwrite``.
    """
    from musicbrain_cli.files import atomic_write

    out = Path(out_dir)
    js, md = out / ROBUSTNESS_JSON, out / ROBUSTNESS_MD
    if js.exists() and not overwrite:
        raise InputError(f"{str(js)!r} exists: pass overwrite=True (--overwrite) to replace it")
    out.mkdir(parents=True, exist_ok=True)
    rows = _clean(list(rows))
    record: dict[str, Any] = {"schema": "musicbrain.robustness/1"}
    if model:
        record["model"] = {k: model.get(k) for k in ("name", "version", "weights_sha256")}
        record["model"].update({k: model[k] for k in ("card_sha256", "ood_sha256") if k in model})
    if measured_on:
        record["measured_on"] = _clean(dict(measured_on))
    text = json.dumps({**record, "rows": rows}, indent=2, allow_nan=False) + "\n"
    atomic_write(js, text)
    atomic_write(md, robustness_markdown(rows, record.get("model"), record.get("measured_on")))
    return js, md


def _same_threshold(row: Mapping, threshold: float) -> bool:
    t = row.get("threshold")
    return isinstance(t, (int, float)) and math.isclose(float(t), threshold, rel_tol=0.0,
                                                         abs_tol=1e-12)


def measured(row: Mapping) -> bool:
    """Whether ``row`` measured any clip (``n_human + n_ai > 0``)."""
    return bool((row.get("n_human") or 0) + (row.get("n_ai") or 0))


def update_card(model_dir: str | Path, rows: Sequence[Mapping], *,
                weights_sha256: str | None = None, measured_on: Mapping | None = None) -> dict:
    """Store ``rows`` in ``card["robustness"]`` of ``model_dir/model_card.json``, atomically.

    Rows are merged by (transform key, split): a new row replaces the stored row of its
    transform and split, and stored rows of other transforms are kept (a run with
    ``--transforms gain_-6db`` had dropped every other row of the table). Each row carries its
    own clip counts and, given ``measured_on`` (the data set and sample the run used), that
    too, since rows kept from earlier runs may come from other data. The weights are not touched, so ``weights_sha256`` stays valid; the
    card's hash is checked against the weights first (a table must describe the weights it
    sits beside) and, when given, against ``weights_sha256`` (the detector the rows were
    measured with). Rows are taken at the card's detection threshold: new rows measured at
    another are refused, and stored rows measured at another are dropped. New rows that
    measured no clip are not stored (a stored row of theirs is kept). Returns the new card;
    ``card["robustness"]`` lists the stored rows in their order, then the new transforms.
    """
    from musicbrain_cli.files import sha256_file
    from musicbrain_cli.model.card import read_card, write_card
    from musicbrain_cli.model.checkpoint import WEIGHTS_FILE
    from musicbrain_cli.verdict import VerdictPolicy

    model_dir = Path(model_dir)
    card = read_card(model_dir)
    try:
        actual = sha256_file(model_dir / WEIGHTS_FILE)
    except OSError as exc:
        raise ModelLoadError(f"cannot read weights in {str(model_dir)!r}: {exc}") from exc
    for source, expected in (("the model card", card["weights_sha256"]),
                             ("the measured detector", weights_sha256)):
        if expected is not None and actual != str(expected).lower():
            raise ModelLoadError(f"weights in {str(model_dir)!r} have SHA-256 {actual}, but "
                                 f"{source} names {expected}: the robustness table would "
                                 "describe other weights")
    new = _clean([{**dict(r), **({"measured_on": dict(measured_on)} if measured_on else {})}
                  for r in rows])
    # a row's rates hold at the operating point it was measured at: rows measured at another
    # detection threshold than the card's (finalize moves it without touching the weights)
    # would be quoted by every scan as this rule's false accusations (review defect)
    threshold = VerdictPolicy.from_card(card).threshold
    for r in new:
        if not _same_threshold(r, threshold):
            raise ModelLoadError(f"robustness row {r.get('key')!r} was measured at the threshold "
                                 f"{r.get('threshold')!r}, but the card in {str(model_dir)!r} "
                                 f"calls 'ai' at {threshold!r}: the table would describe "
                                 "another operating point")
    # a row that measured no clip (a data set without the held-out split, a transform that
    # failed on every clip) states nothing: it replaced the stored row of its transform and
    # split, measured on other data, with "n/a" (review defect)
    new = [r for r in new if measured(r)]
    fresh = {(r.get("key"), r.get("split")): r for r in new}
    kept = [fresh.pop((r.get("key"), r.get("split")), r) for r in card.get("robustness") or ()
            if (r.get("key"), r.get("split")) in fresh or _same_threshold(r, threshold)]
    card["robustness"] = kept + [r for r in new if (r.get("key"), r.get("split")) in fresh]
    write_card(model_dir, card)
    return card


__all__ = ["Transform", "TRANSFORMS", "DEFAULT_KEYS", "HELD_OUT_SOUNDFONT", "evaluate_robustness",
           "write_robustness", "update_card", "measured", "robustness_markdown", "identity", "reencode",
           "resample_chain", "gain", "white_noise", "pitch_shift", "time_stretch", "trim"]
