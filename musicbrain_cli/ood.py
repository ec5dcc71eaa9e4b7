"""Out-of-domain scoring: how far an input lies from what the model was trained on.

Method: class-conditional Gaussians with a shared covariance in the model's pooled embedding
space, scored by the Mahalanobis distance to the nearest class mean (Lee et al., "A Simple
Unified Framework for Detecting Out-of-Distribution Samples and Adversarial Attacks",
NeurIPS 2018, eq. 2). The covariance is estimated with Ledoit-Wolf shrinkage
(scikit-learn), because embeddings are high-dimensional next to a few thousand training
windows and the plain sample covariance is then ill-conditioned.

The threshold is a quantile of the *validation* scores (in-domain by construction), so its
in-domain false-alarm rate is known: with ``quantile=0.99``, about 1% of in-domain windows
are flagged. Statistics are stored as safetensors (data, never pickles) beside the model;
the threshold lives in the model card under ``"ood"``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from musicbrain_cli.errors import ModelLoadError

OOD_FILE = "ood.safetensors"
DEFAULT_QUANTILE = 0.99


@dataclass(frozen=True)
class OODStats:
    """Class means ``[K, D]`` and the shared precision matrix ``[D, D]``."""

    means: np.ndarray
    precision: np.ndarray

    def score(self, emb: np.ndarray) -> np.ndarray:
        """Mahalanobis distance of each row of ``emb [N, D]`` to its nearest class mean.

        Returns ``[N]`` float64; larger means further from the training data.
        """
        emb = np.asarray(emb, dtype=np.float64)
        if emb.ndim != 2 or emb.shape[1] != self.means.shape[1]:
            raise ValueError(f"embeddings of shape {emb.shape} do not match dimension "
                             f"{self.means.shape[1]}")
        diff = emb[:, None, :] - self.means[None, :, :]            # [N, K, D]
        d2 = np.einsum("nkd,de,nke->nk", diff, self.precision, diff)
        return np.sqrt(np.maximum(d2.min(axis=1), 0.0))

    def save(self, directory: str | Path) -> Path:
        from safetensors.numpy import save_file

        path = Path(directory) / OOD_FILE
        tmp = path.with_suffix(".tmp")
        save_file({"means": self.means.astype(np.float64),
                   "precision": self.precision.astype(np.float64)}, str(tmp))
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, directory: str | Path) -> "OODStats":
        from safetensors.numpy import load_file

        path = Path(directory) / OOD_FILE
        try:
            data = load_file(str(path))
            return cls(means=data["means"], precision=data["precision"])
        except (OSError, KeyError, ValueError) as exc:
            raise ModelLoadError(f"cannot read out-of-domain statistics {str(path)!r}: {exc}") from exc


def fit_ood(emb: np.ndarray, classes: np.ndarray) -> OODStats:
    """Fit class means and a shared Ledoit-Wolf covariance.

    Args:
        emb: ``[N, D]`` training embeddings.
        classes: ``[N]`` integer class of each row (e.g. 0 human, 1 AI).
    """
    from sklearn.covariance import LedoitWolf

    emb = np.asarray(emb, dtype=np.float64)
    classes = np.asarray(classes)
    if emb.ndim != 2 or len(emb) != len(classes) or len(emb) < 2:
        raise ValueError(f"need [N, D] embeddings with N >= 2 matching classes, got {emb.shape}")
    labels = np.unique(classes)
    means = np.stack([emb[classes == c].mean(axis=0) for c in labels])
    centred = emb - means[np.searchsorted(labels, classes)]
    lw = LedoitWolf(assume_centered=True).fit(centred)
    return OODStats(means=means, precision=lw.precision_)


def fit_threshold(val_scores: np.ndarray, *, quantile: float = DEFAULT_QUANTILE) -> float:
    """The score above which an input counts as out of domain: a quantile of in-domain scores."""
    val_scores = np.asarray(val_scores, dtype=np.float64)
    if val_scores.size == 0:
        raise ValueError("no validation scores to fit an out-of-domain threshold on")
    if not 0.5 <= quantile < 1.0:
        raise ValueError(f"quantile must lie in [0.5, 1), got {quantile}")
    return float(np.quantile(val_scores, quantile))


def track_score(window_scores: np.ndarray) -> float:
    """A track's out-of-domain score: the median over its windows.

    The median, not the max: one odd window (a silence, an applause) should not push a whole
    track out of domain, while a track that is mostly unlike the training data should be.
    """
    window_scores = np.asarray(window_scores, dtype=np.float64)
    if window_scores.size == 0:
        raise ValueError("no windows to score")
    return float(np.median(window_scores))
