"""Window-level and track-level prediction with a loaded model.

::

    det = Detector.from_pretrained("default" | "path/to/checkpoint", device="auto")
    probs = det.predict_windows(waves)      # [N, n_samples] -> [N, L] calibrated probabilities
    track = det.predict_track("song.flac")  # windows of window_s every hop_s, then aggregates

Calibration: one temperature ``T`` from ``card["calibration"]["temperature"]`` (Guo et al.
2017, "On Calibration of Modern Neural Networks", temperature scaling) divides every logit:
``p = sigmoid(logit / T)``.

Track aggregation (per label, over the track's windows):

* ``mean``: mean of the window probabilities, each window weighted by how much real audio
  it holds (``n_valid``), so a zero-padded tail window counts for its real part only;
* ``max``: the largest window probability (a short generated insert shows up here);
* ``share_over_threshold``: the share of windows whose probability reaches the label's
  threshold (``card["thresholds"][label]``, ``thresholds["detection"]`` for ``source/ai``,
  else 0.5) - high disagreement between windows is a reason to abstain (see ``verdict``).

Determinism: inference runs under ``torch.inference_mode`` in eval mode, with a fixed batch
partition; on CPU two calls with the same input and ``batch_size`` give bit-identical
results (tested). Different batch sizes may differ in the last float32 bits (oneDNN picks
kernels by shape).
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

import numpy as np
import torch

from musicbrain_cli.errors import ConfigError, ModelLoadError
from musicbrain_cli.features import FrontEnd
from musicbrain_cli.model.checkpoint import (DEFAULT_MODEL, load_checkpoint, pinned_sha256,
                                             resolve_model)
from musicbrain_cli.model.config import ModelConfig
from musicbrain_cli.progress import NULL_PROGRESS, Progress
from musicbrain_cli.taxonomy import DETECTION_LABEL

DEFAULT_BATCH_SIZE = 16
DEFAULT_THRESHOLD = 0.5


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; ``"cpu"``/``"cuda"``/``"cuda:N"`` as given."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"unknown device {device!r} (use auto, cpu or cuda)") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} requested but CUDA is not available")
    return dev


@dataclass
class TrackPrediction:
    """Per-window and aggregate predictions for one track.

    ``window_probs`` is ``[N, L]`` (calibrated), ``window_starts_s`` ``[N]`` seconds,
    ``padded`` ``[N]`` bool, ``n_valid`` ``[N]`` real samples per window; ``aggregate``
    maps each label to ``{"mean", "max", "share_over_threshold", "threshold"}``.
    """

    labels: list[str]
    window_starts_s: np.ndarray
    window_probs: np.ndarray
    padded: np.ndarray
    n_valid: np.ndarray
    window_s: float
    hop_s: float
    aggregate: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def n_windows(self) -> int:
        return int(self.window_probs.shape[0])

    def probability(self, label: str = DETECTION_LABEL, statistic: str = "mean") -> float:
        return self.aggregate[label][statistic]

    def to_dict(self) -> dict[str, Any]:
        return {
            "labels": list(self.labels),
            "window_s": self.window_s,
            "hop_s": self.hop_s,
            "windows": [
                {"start_s": float(s), "padded": bool(p), "n_valid": int(v),
                 "probs": {lab: float(x) for lab, x in zip(self.labels, row)}}
                for s, p, v, row in zip(self.window_starts_s, self.padded, self.n_valid,
                                        self.window_probs)
            ],
            "aggregate": self.aggregate,
        }


def aggregate_windows(probs: np.ndarray, n_valid: np.ndarray, labels: list[str],
                      thresholds: Mapping[str, float]) -> dict[str, dict[str, float]]:
    """The per-label track aggregates described in the module docstring."""
    weights = np.asarray(n_valid, dtype=np.float64)
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
                 *, device: str | torch.device = "auto"):
        self.device = resolve_device(device)
        self.model_dir = None
        self.config = config
        self.card = dict(card or {})
        self.taxonomy = config.taxonomy
        self.labels = config.taxonomy.labels
        self.model = copy.deepcopy(model).to(self.device).eval()
        self.front_end = FrontEnd(config.front_end).to(self.device)
        temperature = (self.card.get("calibration") or {}).get("temperature", 1.0)
        if not (isinstance(temperature, (int, float)) and temperature > 0):
            raise ConfigError(f"calibration temperature must be positive, not {temperature!r}")
        self.temperature = float(temperature)
        thresholds = dict(self.card.get("thresholds") or {})
        self.threshold = float(thresholds.get("detection", DEFAULT_THRESHOLD))
        self.thresholds = {
            label: float(thresholds.get(label, self.threshold if label == DETECTION_LABEL
                                        else DEFAULT_THRESHOLD))
            for label in self.labels
        }

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike = DEFAULT_MODEL, *,
                        device: str | torch.device = "auto",
                        expected_sha256: str | None = None) -> "Detector":
        dev = resolve_device(device)
        directory = resolve_model(name_or_path)
        model, config, card = load_checkpoint(directory, device=dev,
                                              expected_sha256=expected_sha256)
        pinned = pinned_sha256(name_or_path)
        if pinned is not None and card["weights_sha256"] != pinned:
            raise ModelLoadError(f"the shipped model {str(name_or_path)!r} has weights "
                                 f"{card['weights_sha256']}, not the pinned {pinned}: the "
                                 "installation was altered; reinstall MusicBrain")
        detector = cls(model, config, card, device=dev)
        detector.model_dir = directory   # side files (out-of-domain statistics) live here
        return detector

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

    @torch.inference_mode()
    def logits_windows(self, waves: np.ndarray, *, batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
        """Raw (uncalibrated) logits ``[N, L]`` for ``waves [N, n_samples]``."""
        out = [self.model(self.front_end(b)).float().cpu() for b in self._batches(waves, batch_size)]
        if not out:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        return torch.cat(out).numpy()

    def predict_windows(self, waves: np.ndarray, *, batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
        """Calibrated probabilities ``[N, L]`` (``sigmoid(logit / T)``) for ``[N, n_samples]``."""
        logits = torch.from_numpy(self.logits_windows(waves, batch_size=batch_size))
        return torch.sigmoid(logits / self.temperature).numpy()

    # --- tracks -------------------------------------------------------------------------

    def predict_track(self, path_or_samples: str | os.PathLike | np.ndarray, *,
                      batch_size: int = DEFAULT_BATCH_SIZE, hop_s: float | None = None,
                      progress: Progress = NULL_PROGRESS) -> TrackPrediction:
        """Windows of ``window_s`` every ``hop_s`` (default: the front end's) -> predictions.

        ``path_or_samples`` is a file (decoded by :mod:`musicbrain_cli.audio`) or a mono
        float32 array at the model's sample rate. Short tracks give one zero-padded window,
        flagged in ``padded``.
        """
        from musicbrain_cli.audio import iter_windows

        fe = self.config.front_end
        if isinstance(path_or_samples, np.ndarray) and path_or_samples.ndim != 1:
            raise ConfigError(
                f"samples must be mono [shape=(n,)], got shape {path_or_samples.shape}"
            )
        hop_s = fe.hop_s if hop_s is None else float(hop_s)
        if not 0 < hop_s <= fe.window_s:
            raise ConfigError(f"hop_s must lie in (0, {fe.window_s}] s, not {hop_s!r}")
        starts, padded, n_valid, probs = [], [], [], []
        batch: list[np.ndarray] = []

        def flush() -> None:
            if batch:
                probs.append(self.predict_windows(np.stack(batch), batch_size=batch_size))
                batch.clear()

        with progress.task("predicting windows") as task:
            for window in iter_windows(path_or_samples, sample_rate=fe.sample_rate,
                                       window_s=fe.window_s, hop_s=hop_s):
                starts.append(window.start_s)
                padded.append(window.padded)
                n_valid.append(window.n_valid)
                batch.append(window.samples)
                if len(batch) == batch_size:
                    flush()
                task.advance()
            flush()
        window_probs = np.concatenate(probs) if probs else np.zeros((0, len(self.labels)), np.float32)
        n_valid_arr = np.asarray(n_valid, dtype=np.int64)
        return TrackPrediction(
            labels=list(self.labels),
            window_starts_s=np.asarray(starts, dtype=np.float64),
            window_probs=window_probs,
            padded=np.asarray(padded, dtype=bool),
            n_valid=n_valid_arr,
            window_s=fe.window_s,
            hop_s=hop_s,
            aggregate=aggregate_windows(window_probs, n_valid_arr, self.labels, self.thresholds)
            if len(window_probs) else {},
        )
