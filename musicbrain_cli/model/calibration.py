"""Temperature scaling of sigmoid outputs (Guo et al. 2017, "On Calibration of Modern Neural
Networks", ICML, section 4.2).

One scalar ``T > 0`` divides the logits, ``p = sigmoid(z / T)``, chosen to minimise the
negative log-likelihood (binary cross-entropy) on held-out validation logits. It changes
confidence but never the ranking, so AP and ROC-AUC are unchanged.

Decision (issue #6, part 7): the model card's ``calibration.temperature`` is ONE scalar,
fitted on the detection label ``source/ai`` alone, because that is the probability a report
states and a court weighs; the style labels are attributions shown with their ranks. The
trainer also records a per-label temperature for every label that has both classes in the
validation set (``per_label``), for inspection and for a later per-label option; inference
applies the scalar.

The NLL of ``sigmoid(a * z)`` is convex in ``a = 1 / T`` (a logistic loss of a scaled
input), so a bounded scalar search over ``log T`` finds the global minimum. When the
validation logits are perfectly separated the NLL keeps falling as ``T -> 0``; the search
stops at ``T_MIN`` and the result says ``at_bound`` (an over-confident fit on too little
data; the trainer warns).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from musicbrain_cli.errors import InputError

T_MIN, T_MAX = 0.05, 20.0


def binary_nll(logits: np.ndarray, targets: np.ndarray, *, temperature: float = 1.0) -> float:
    """Mean binary cross-entropy of ``sigmoid(logits / temperature)`` (natural log)."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    y = np.asarray(targets, dtype=np.float64)
    # log(1 + exp(-|z|)) + max(z, 0) - y z: the stable form of BCE-with-logits.
    return float(np.mean(np.logaddexp(0.0, z) - y * z))


@dataclass(frozen=True)
class TemperatureFit:
    temperature: float
    nll_before: float
    nll_after: float
    n: int
    at_bound: bool

    def to_dict(self) -> dict:
        return {"temperature": self.temperature, "nll_before": self.nll_before,
                "nll_after": self.nll_after, "n": self.n, "at_bound": self.at_bound}


def fit_temperature(logits, targets, *, mask=None) -> TemperatureFit:
    """The ``T`` in ``[T_MIN, T_MAX]`` minimising validation NLL of ``sigmoid(logits / T)``.

    ``logits`` and ``targets`` are 1-D ``[N]`` (one label); ``mask`` (optional, 1 = known)
    selects the samples to fit on. Needs at least one positive and one negative.
    """
    from scipy.optimize import minimize_scalar

    z = np.asarray(logits, dtype=np.float64).reshape(-1)
    y = np.asarray(targets, dtype=np.float64).reshape(-1)
    if z.shape != y.shape:
        raise InputError(f"logits {z.shape} and targets {y.shape} differ in shape")
    if mask is not None:
        keep = np.asarray(mask).reshape(-1) > 0
        if keep.shape != z.shape:
            raise InputError(f"mask {keep.shape} differs from logits {z.shape}")
        z, y = z[keep], y[keep]
    if not np.isfinite(z).all():
        raise InputError("logits hold NaN or infinite values")
    if z.size == 0 or y.min() == y.max():
        raise InputError(
            f"temperature scaling needs both classes; got {int(y.sum())} positives of {z.size}"
        )
    result = minimize_scalar(
        lambda log_t: binary_nll(z, y, temperature=math.exp(log_t)),
        bounds=(math.log(T_MIN), math.log(T_MAX)), method="bounded",
        options={"xatol": 1e-6},
    )
    t = float(math.exp(result.x))
    at_bound = t < T_MIN * 1.001 or t > T_MAX * 0.999
    return TemperatureFit(temperature=t, nll_before=binary_nll(z, y),
                          nll_after=binary_nll(z, y, temperature=t), n=int(z.size),
                          at_bound=at_bound)


def calibrated_probability(logits, temperature: float):
    """Calibrated probabilities ``sigmoid(logits / temperature)``: the one place where a
    logit becomes the probability a report states (scan, evaluate, robustness, finalize,
    training metrics all come here, through :meth:`Detector.calibrate` or directly).

    A NumPy array (or anything array-like) gives float64, computed as
    ``1 / (1 + exp(-logits / T))`` (the form every shipped figure and report was made with;
    ``exp`` overflowing to ``inf`` for very negative logits correctly gives 0). A torch tensor
    gives ``torch.sigmoid(logits / T)`` in its own dtype and device, differentiable, for the
    explanation fidelity curves that follow a probability through a network.
    """
    if not temperature > 0:
        raise InputError(f"temperature must be > 0, not {temperature!r}")
    if hasattr(logits, "detach"):       # a torch tensor; torch is imported only when needed
        import torch

        return torch.sigmoid(logits / temperature)
    z = np.asarray(logits, dtype=np.float64)
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-z / temperature))


def apply_temperature(logits: np.ndarray, temperature: float) -> np.ndarray:
    """Calibrated probabilities ``sigmoid(logits / temperature)`` (float64); the same as
    :func:`calibrated_probability` (kept for its callers)."""
    return calibrated_probability(np.asarray(logits), temperature)
