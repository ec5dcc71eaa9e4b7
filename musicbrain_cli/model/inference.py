"""The model stage: the one path from windows to logits, calibrated probabilities,
embeddings and the spectral profiles the out-of-domain checks need.

::

    det = Detector.from_pretrained("default" | "path/to/checkpoint", device="auto")
    probs = det.predict_windows(waves)      # [N, n_samples] -> [N, L] calibrated probabilities
    track = det.predict_track("song.flac")  # windows of window_s every hop_s, then aggregates
    out = det.forward_inputs(spec)          # cached model inputs [N, 1, F, T] -> WindowOutputs

Every verdict, probability and domain check that ``scan``, ``evaluate``, ``robustness``,
``reproduce``, ``finalize`` and ``refit-heads`` use comes out of :meth:`Detector.forward_inputs`
(one batch of model inputs -> :class:`WindowOutputs`); :meth:`Detector.predict_track` drives
it over a decoded stream (``scan``, ``evaluate``, ``robustness``), ``finalize`` over cached
features. The detector also carries its model's out-of-domain statistics (``detector.ood``,
loaded by :meth:`Detector.from_pretrained`), so the verdict
(:func:`musicbrain_cli.verdict.track_verdict`) needs nothing else.

Calibration: one temperature ``T`` from ``card["calibration"]["temperature"]`` (Guo et al.
2017, "On Calibration of Modern Neural Networks", temperature scaling) divides every logit:
``p = sigmoid(logit / T)`` (:func:`musicbrain_cli.model.calibration.calibrated_probability`).

Track aggregation (per label, over the track's windows):

* ``mean``: mean of the window probabilities, each window weighted by how much real audio
  it holds once (``n_valid``), so a short track's window, which repeats it, counts for it once;
* ``max``: the largest window probability (a short generated insert shows up here);
* ``share_over_threshold``: the share of windows whose probability reaches the label's
  threshold (``card["thresholds"][label]``, ``thresholds["detection"]`` for ``source/ai``,
  else 0.5) - high disagreement between windows is a reason to abstain (see ``verdict``).

Silent windows are not judged (:func:`~musicbrain_cli.audio.intake.quiet_window`): a window
whose real samples peak below :data:`~musicbrain_cli.audio.intake.QUIET_PEAK` (-60 dBFS) holds no music, and peak
normalisation turns what is there (dither, hiss, digital zeros) into the network's whole input.
Measured on the shipped model (session 37): 16-bit dither of one LSB scored P(AI) 0.90-0.97 per
window, digital silence 0.02, so a silent stretch pushed a track towards AI or towards human by
its length alone. Nor is a window where the music begins or ends with a silent stretch of at
least a quarter of it (:data:`~musicbrain_cli.audio.intake.EDGE_SILENCE_SHARE`): measured
(session 38) on twelve human test clips followed by silence, such a window scored up to
0.18 where the music alone scored 0.001. They are flagged (``quiet``), left out of every
aggregate, of the verdict's windows and of the domain check, and listed in the report; a track
with no other window is not judged at all (:func:`musicbrain_cli.verdict.track_verdict`). Of
the reference corpus's 3,541 windows none lies below -40 dBFS and 3 end in such a stretch (two
AI clips, one human training clip), so the operating point, set on its clips, stands.

Determinism: inference runs under ``torch.inference_mode`` in eval mode, with a fixed batch
partition; on CPU two calls with the same input and ``batch_size`` give bit-identical
results (tested), and a scan and an evaluation of the same clip with the same batch size
state the same P(AI) to the last bit (tests/test_inference.py). Different batch sizes may
differ in the last float32 bits (oneDNN picks kernels by shape).
"""

from __future__ import annotations

import copy
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import torch

from musicbrain_cli.model.calibration import calibrated_probability
from musicbrain_cli.errors import ConfigError, ModelLoadError
from musicbrain_cli.features import FrontEnd, resolve_device
from musicbrain_cli.model.checkpoint import (DEFAULT_MODEL, load_checkpoint, pinned_sha256,
                                             resolve_model)
from musicbrain_cli.model.config import ModelConfig
from musicbrain_cli.progress import NULL_PROGRESS, Progress
from musicbrain_cli.taxonomy import DETECTION_LABEL

DEFAULT_BATCH_SIZE = 16
DEFAULT_THRESHOLD = 0.5


@dataclass
class WindowOutputs:
    """What the model stage gives for ``N`` windows.

    ``logits`` ``[N, L]`` float32 (raw), ``probs`` ``[N, L]`` float64 (calibrated,
    ``sigmoid(logit / T)``), ``embeddings`` ``[N, D]`` (the pooled embedding the
    out-of-domain check scores, or what the caller's ``embed`` returned), ``profiles``
    ``[N, P]`` float32 (:func:`musicbrain_cli.model.ood.spectral_profile` of the model inputs).
    """

    logits: np.ndarray
    probs: np.ndarray
    embeddings: np.ndarray
    profiles: np.ndarray

    def __len__(self) -> int:
        return int(self.logits.shape[0])

    @classmethod
    def concat(cls, parts: Sequence["WindowOutputs"], n_labels: int) -> "WindowOutputs":
        """The parts joined window after window (empty arrays when there are none)."""
        if not parts:
            return cls(np.zeros((0, n_labels), np.float32), np.zeros((0, n_labels)),
                       np.zeros((0, 0), np.float32), np.zeros((0, 0), np.float32))
        return cls(*(np.concatenate([getattr(p, name) for p in parts])
                     for name in ("logits", "probs", "embeddings", "profiles")))


@dataclass
class TrackPrediction:
    """Per-window and aggregate predictions for one track.

    ``window_probs`` is ``[N, L]`` (calibrated, float64), ``window_starts_s`` ``[N]``
    seconds, ``padded`` ``[N]`` bool, ``n_valid`` ``[N]`` real samples per window;
    ``aggregate`` maps each label to ``{"mean", "max", "share_over_threshold",
    "threshold"}`` over the judged windows; ``outputs`` holds every window's logits,
    embedding and spectral profile (what the verdict's out-of-domain check reads);
    ``quiet`` ``[N]`` bool flags the silent windows nothing is judged on
    (:func:`~musicbrain_cli.audio.intake.quiet_window`; ``None``: none flagged);
    ``silence_s`` ``[N]`` each window's longest stretch of silence in seconds
    (:func:`~musicbrain_cli.audio.intake.longest_silence`; ``None``: not measured);
    ``soft_db`` ``[N]`` the level of each window's quietest second against its mean, dB
    (:func:`~musicbrain_cli.audio.intake.softest_span_db`; ``None``: not measured);
    ``sound_s`` the ``(start_s, end_s)`` of each passage of sound the windows lie over
    (:func:`~musicbrain_cli.audio.intake.iter_windows`; ``None``: not recorded): the rest of
    the track is silence that was not read.
    """

    labels: list[str]
    window_starts_s: np.ndarray
    window_probs: np.ndarray
    padded: np.ndarray
    n_valid: np.ndarray
    window_s: float
    hop_s: float
    aggregate: dict[str, dict[str, float]] = field(default_factory=dict)
    outputs: WindowOutputs | None = field(default=None, repr=False)
    quiet: np.ndarray | None = None
    sound_s: list[tuple[float, float]] | None = None
    silence_s: np.ndarray | None = None
    soft_db: np.ndarray | None = None

    @property
    def n_windows(self) -> int:
        return int(self.window_probs.shape[0])

    @property
    def judged(self) -> np.ndarray:
        """``[N]`` bool: the windows a verdict is taken on (all but the quiet ones)."""
        if self.quiet is None:
            return np.ones(self.n_windows, bool)
        return ~np.asarray(self.quiet, bool)

    def probability(self, label: str = DETECTION_LABEL, statistic: str = "mean") -> float:
        return self.aggregate[label][statistic]

    def to_dict(self) -> dict[str, Any]:
        return {
            "labels": list(self.labels),
            "window_s": self.window_s,
            "hop_s": self.hop_s,
            "windows": [
                {"start_s": float(s), "padded": bool(p), "n_valid": int(v), "quiet": bool(~j),
                 "silence_s": None if q is None else float(q),
                 "soft_db": None if d is None else float(d),
                 "probs": {lab: float(x) for lab, x in zip(self.labels, row)}}
                for s, p, v, j, q, d, row in zip(self.window_starts_s, self.padded, self.n_valid,
                                                 self.judged, [None] * self.n_windows
                                                 if self.silence_s is None else self.silence_s,
                                                 [None] * self.n_windows
                                                 if self.soft_db is None else self.soft_db,
                                                 self.window_probs)
            ],
            "aggregate": self.aggregate,
            "sound_s": None if self.sound_s is None else [[float(a), float(b)] for a, b in self.sound_s],
        }


def aggregate_windows(probs: np.ndarray, n_valid: np.ndarray, labels: list[str],
                      thresholds: Mapping[str, float],
                      quiet: np.ndarray | None = None) -> dict[str, dict[str, float]]:
    """The per-label track aggregates described in the module docstring, over the windows
    that are not ``quiet`` (over all of them when every one is)."""
    keep = np.ones(len(n_valid), bool) if quiet is None else ~np.asarray(quiet, bool)
    if not keep.any():
        keep[:] = True
    weights = np.asarray(n_valid, dtype=np.float64)[keep]
    probs = probs[keep]
    out = {}
    for j, label in enumerate(labels):
        p = probs[:, j].astype(np.float64)
        thr = float(thresholds[label])
        out[label] = {
            "mean": float(np.average(p, weights=weights)),
            "max": float(p.max()),
            "share_over_threshold": float(np.mean(p >= thr)),
            "threshold": thr,
        }
    return out


class Detector:
    """A model, its front end and its card, ready to predict.

    The detector works on its own copy of the network (in eval mode), so the caller's
    model is never changed.
    """

    def __init__(self, model: torch.nn.Module, config: ModelConfig, card: Mapping[str, Any] | None = None,
                 *, device: str | torch.device = "auto", ood=None):
        self.device = resolve_device(device)
        self.model_dir = None
        #: the model's out-of-domain statistics (:class:`~musicbrain_cli.model.ood.OODStats`), or
        #: None: the verdict then says no domain check could be made
        self.ood = ood
        self.config = config
        self.card = dict(card or {})
        self.taxonomy = config.taxonomy
        self.labels = config.taxonomy.labels
        # Channels-last weights: on the CPU oneDNN then runs the convolutions without
        # re-ordering every activation, about a quarter faster per window; the logits equal the
        # default layout's (bit for bit on the CPUs measured; tests/test_inference.py).
        self.model = copy.deepcopy(model).to(self.device).eval().to(memory_format=torch.channels_last)
        self.front_end = FrontEnd(config.front_end).to(self.device)
        temperature = (self.card.get("calibration") or {}).get("temperature", 1.0)
        if not (isinstance(temperature, (int, float)) and temperature > 0):
            raise ConfigError(f"calibration temperature must be positive, not {temperature!r}")
        self.temperature = float(temperature)
        thresholds = dict(self.card.get("thresholds") or {})
        self.threshold = float(thresholds.get("detection", DEFAULT_THRESHOLD))
        # The detection label's threshold is the verdict's (``thresholds.detection``) whatever
        # else the card holds: a separate ``source/ai`` entry made evaluate's rates and the
        # track aggregate use a rule no verdict applies (review).
        self.thresholds = {
            label: self.threshold if label == DETECTION_LABEL
            else float(thresholds.get(label, DEFAULT_THRESHOLD))
            for label in self.labels
        }

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike = DEFAULT_MODEL, *,
                        device: str | torch.device = "auto",
                        expected_sha256: str | None = None) -> "Detector":
        dev = resolve_device(device)
        directory = resolve_model(name_or_path)
        hashes: dict[str, str | None] = {}
        model, config, card = load_checkpoint(directory, device=dev,
                                              expected_sha256=expected_sha256, hashes=hashes)
        pinned = pinned_sha256(name_or_path)
        if pinned is not None and card["weights_sha256"] != pinned:
            raise ModelLoadError(f"the shipped model {str(name_or_path)!r} has weights "
                                 f"{card['weights_sha256']}, not the pinned {pinned}: the "
                                 "installation was altered; reinstall MusicBrain")
        detector = cls(model, config, card, device=dev)
        detector.ood = load_ood_stats(directory, card=card, model=model, hashes=hashes)
        detector.model_dir = directory
        # of the bytes loaded, each file read once (hashing them again afterwards could name
        # files written in between, not the ones that decide the verdicts)
        detector.file_sha256 = {"card": hashes["card"], "ood": hashes["ood"]}
        return detector

    # --- the one model stage -----------------------------------------------------------

    def calibrate(self, logits):
        """``sigmoid(logits / T)`` with the card's temperature (NumPy -> float64; a torch
        tensor stays a tensor): see :func:`~musicbrain_cli.model.calibration.calibrated_probability`."""
        return calibrated_probability(logits, self.temperature)

    @torch.inference_mode()
    def forward_inputs(self, spec: torch.Tensor, *,
                       embed: Callable[[torch.Tensor], torch.Tensor] | None = None,
                       timings: dict[str, float] | None = None) -> WindowOutputs:
        """One batch of model inputs ``[B, 1, F, T]`` -> :class:`WindowOutputs`.

        The spectral profile is taken from the same map the network reads, the embedding
        from the same fused features its heads read, so each window runs through the network
        once. ``embed(fused)`` replaces the pooled embedding (``refit-heads`` reads the style
        heads' input). ``timings`` (optional) accumulates seconds under ``"features"`` (the
        profile) and ``"inference"`` (the network).
        """
        from musicbrain_cli.model.ood import spectral_profile

        t = time.perf_counter()
        spec = spec.to(self.device)
        profiles = spectral_profile(spec, floor=self.config.front_end.silence_level)
        if timings is not None:
            _add(timings, "features", time.perf_counter() - t)
            t = time.perf_counter()
        fused = self.model.forward_features(spec)
        logits = self.model.forward_head(fused).float().cpu().numpy()
        embeddings = (embed or self.model.pool)(fused).float().cpu().numpy()
        if timings is not None:
            _add(timings, "inference", time.perf_counter() - t)
        return WindowOutputs(logits, self.calibrate(logits), embeddings, profiles)

    # --- windows ------------------------------------------------------------------------

    def _batches(self, waves: np.ndarray, batch_size: int) -> Iterator[torch.Tensor]:
        n = self.config.front_end.n_samples
        waves = np.asarray(waves)
        if waves.ndim != 2 or waves.shape[1] != n:
            raise ConfigError(f"expected windows of shape [N, {n}], got {list(waves.shape)}")
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, not {batch_size!r}")
        if not np.isfinite(waves).all():
            raise ConfigError("windows contain NaN or infinite samples")
        for start in range(0, waves.shape[0], batch_size):
            chunk = np.ascontiguousarray(waves[start:start + batch_size], dtype=np.float32)
            yield torch.from_numpy(chunk).to(self.device)

    @torch.no_grad()
    def spectrograms(self, waves: np.ndarray) -> torch.Tensor:
        """Model inputs ``[N, 1, n_bins, n_frames]`` on the detector's device.

        Made under ``no_grad`` (not ``inference_mode``) so explanation code can take
        gradients with respect to them (``spec.requires_grad_()``).
        """
        return torch.cat([self.front_end(b) for b in self._batches(waves, len(waves) or 1)])

    def analyse_windows(self, waves: np.ndarray, *, batch_size: int = DEFAULT_BATCH_SIZE,
                        consecutive: bool = False) -> WindowOutputs:
        """:class:`WindowOutputs` for ``waves [N, n_samples]`` in batches of ``batch_size``.

        ``consecutive``: the windows were cut one after another from one signal at the front
        end's hop (as a track's are), so the frames they share are computed once
        (:meth:`FrontEnd.forward_consecutive`, which checks this and else falls back).
        """
        parts = []
        for b in self._batches(waves, batch_size):
            with torch.inference_mode():
                spec = self.front_end.forward_consecutive(b) if consecutive else self.front_end(b)
            parts.append(self.forward_inputs(spec))
        return WindowOutputs.concat(parts, len(self.labels))

    def logits_windows(self, waves: np.ndarray, *, batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
        """Raw (uncalibrated) logits ``[N, L]`` for ``waves [N, n_samples]``."""
        return self.analyse_windows(waves, batch_size=batch_size).logits

    def predict_windows(self, waves: np.ndarray, *, batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
        """Calibrated probabilities ``[N, L]`` (``sigmoid(logit / T)``, float64) for
        ``[N, n_samples]``."""
        return self.analyse_windows(waves, batch_size=batch_size).probs

    # --- tracks -------------------------------------------------------------------------

    def predict_track(self, path_or_samples, *, batch_size: int = DEFAULT_BATCH_SIZE,
                      hop_s: float | None = None, progress: Progress = NULL_PROGRESS,
                      on_batch: Callable[[list, torch.Tensor, WindowOutputs], None] | None = None,
                      timings: dict[str, float] | None = None) -> TrackPrediction:
        """Windows of ``window_s`` every ``hop_s`` (default: the front end's) -> predictions.

        ``path_or_samples`` is a file (decoded by :mod:`musicbrain_cli.audio.intake`), an open
        :func:`~musicbrain_cli.audio.intake.stream`, or a mono float32 array at the model's sample
        rate. Short tracks give one window that repeats them, flagged in ``padded``. Windows are
        batched ``batch_size`` at a time in decoding order, so memory stays bounded by a
        batch; consecutive windows share their frames (:meth:`FrontEnd.forward_consecutive`).

        ``on_batch(windows, spec, outputs)`` (optional) sees each batch's
        :class:`~musicbrain_cli.audio.intake.Window` list, its model inputs (on CPU) and outputs,
        e.g. to keep the windows a scan explains. ``timings`` (optional) accumulates seconds
        under ``"decode"``, ``"features"`` and ``"inference"``.
        """
        from musicbrain_cli.audio.intake import iter_windows, softest_span_db

        fe = self.config.front_end
        if isinstance(path_or_samples, np.ndarray) and path_or_samples.ndim != 1:
            raise ConfigError(
                f"samples must be mono [shape=(n,)], got shape {path_or_samples.shape}"
            )
        hop_s = fe.hop_s if hop_s is None else float(hop_s)
        if not 0 < hop_s <= fe.window_s:
            raise ConfigError(f"hop_s must lie in (0, {fe.window_s}] s, not {hop_s!r}")
        clock = {} if timings is None else timings
        starts, padded, n_valid, quiet, parts = [], [], [], [], []
        sound: list[tuple[float, float]] = []
        silence: list[float] = []
        soft: list[float] = []
        batch: list = []

        def flush() -> None:
            if not batch:
                return
            t = time.perf_counter()
            waves = np.ascontiguousarray(np.stack([w.samples for w in batch]), dtype=np.float32)
            if not np.isfinite(waves).all():      # as analyse_windows refuses them
                raise ConfigError(f"samples contain NaN or infinite values (in the window at "
                                  f"{batch[0].start_s:.2f} s or one of the {len(batch) - 1} after it)")
            with torch.inference_mode():
                # consecutive windows of one file: overlapping frames computed once
                spec = self.front_end.forward_consecutive(torch.from_numpy(waves).to(self.device))
            _add(clock, "features", time.perf_counter() - t)
            out = self.forward_inputs(spec, timings=clock)
            parts.append(out)
            if on_batch is not None:
                on_batch(list(batch), spec.cpu(), out)
            batch.clear()

        with progress.task("predicting windows") as task:
            decode_start = time.perf_counter()
            for window in iter_windows(path_or_samples, sample_rate=fe.sample_rate,
                                       window_s=fe.window_s, hop_s=hop_s, passages=sound):
                starts.append(window.start_s)
                padded.append(window.padded)
                n_valid.append(window.n_valid)
                quiet.append(window.quiet)
                silence.append(window.silence / fe.sample_rate)
                soft.append(softest_span_db(window.samples, fe.sample_rate, window.n_valid))
                batch.append(window)
                if len(batch) >= batch_size:
                    _add(clock, "decode", time.perf_counter() - decode_start)
                    flush()
                    decode_start = time.perf_counter()
                task.advance()
            _add(clock, "decode", time.perf_counter() - decode_start)
            flush()
        outputs = WindowOutputs.concat(parts, len(self.labels))
        n_valid_arr = np.asarray(n_valid, dtype=np.int64)
        return TrackPrediction(
            labels=list(self.labels),
            window_starts_s=np.asarray(starts, dtype=np.float64),
            window_probs=outputs.probs,
            padded=np.asarray(padded, dtype=bool),
            n_valid=n_valid_arr,
            window_s=fe.window_s,
            hop_s=hop_s,
            aggregate=aggregate_windows(outputs.probs, n_valid_arr, self.labels, self.thresholds,
                                        quiet=np.asarray(quiet, dtype=bool))
            if len(outputs) else {},
            outputs=outputs,
            quiet=np.asarray(quiet, dtype=bool),
            sound_s=sound,
            silence_s=np.asarray(silence, dtype=np.float64),
            soft_db=np.asarray(soft, dtype=np.float64),
        )


def _add(timings: dict[str, float], stage: str, seconds: float) -> None:
    timings[stage] = timings.get(stage, 0.0) + seconds


def load_ood_stats(directory, *, card: Mapping[str, Any] | None = None, model=None,
                   hashes: dict[str, str | None] | None = None):
    """The out-of-domain statistics saved beside a model's weights, or ``None`` when the
    model has none (``directory`` None, or no ``ood.safetensors`` there).

    With ``card`` (and ``model``), statistics the card's ``ood`` section relies on must be
    there and fit the model, else :class:`ModelLoadError`: a missing file would otherwise
    turn the domain check off without a word (the verdict then runs with no check at all).
    The file is read once: ``hashes`` (optional) receives ``{"ood": SHA-256}`` of the bytes
    the statistics were parsed from (``None`` without a file).
    """
    from pathlib import Path

    from musicbrain_cli.model.ood import OOD_FILE, PROFILE_BANDS, OODStats, card_checks

    path = None if directory is None else Path(directory) / OOD_FILE
    if hashes is not None:
        hashes["ood"] = None
    if path is None or not path.is_file():
        named = card_checks((card or {}).get("ood"))
        if named:
            raise ModelLoadError(
                f"the model card names out-of-domain checks {sorted(named)} but their "
                f"statistics {str(path)!r} are missing: the installation or checkpoint is "
                "incomplete (copy ood.safetensors back, or re-finalize the model)")
        return None
    from musicbrain_cli.files import sha256_bytes
    from musicbrain_cli.inputs import read_regular

    named_sha = ((card or {}).get("ood") or {}).get("statistics_sha256") \
        if isinstance((card or {}).get("ood"), Mapping) else None
    try:
        raw = read_regular(path)
    except OSError as exc:
        raise ModelLoadError(f"cannot read out-of-domain statistics {str(path)!r}: {exc}") from exc
    have = sha256_bytes(raw)
    if named_sha and have != named_sha:
        raise ModelLoadError(
            f"{str(path)!r} has SHA-256 {have}, but the model card names {named_sha}: the "
            "statistics were replaced or a finalize stopped between writing them and the "
            "card (re-finalize the model)")
    stats = OODStats.from_bytes(raw, where=path)
    if hashes is not None:
        hashes["ood"] = have
    if card is not None and model is not None:
        fe = model.config.front_end
        stats.check_against(card.get("ood"), embed_dim=int(model.embed_dim),
                            profile_dim=2 * min(PROFILE_BANDS, fe.n_bins), where=repr(str(path)))
    return stats
