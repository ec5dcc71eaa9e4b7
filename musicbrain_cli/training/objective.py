"""The objective and its schedule: masked BCE over the known labels, the plateau learning-rate
schedule, and the device / precision choice (bf16, fp16 + GradScaler on Turing, fp32).

Split out of :mod:`musicbrain_cli.training.trainer` (issue 25), which re-exports its names.
"""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F

from musicbrain_cli.errors import ConfigError, TrainingError
from musicbrain_cli.training.config import ScheduleConfig


# --- loss, schedule, precision ------------------------------------------------------------


def masked_bce_sum(logits: torch.Tensor, targets: torch.Tensor,
                   mask: torch.Tensor) -> torch.Tensor:
    """Sum over known entries of BCE-with-logits (float32 whatever the autocast dtype)."""
    loss = F.binary_cross_entropy_with_logits(logits.float(), targets.float(), reduction="none")
    return (loss * mask.float()).sum()


def bernoulli_kl_sum(anchor_logits: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """Sum of ``KL(Bernoulli(sigmoid(anchor)) || Bernoulli(sigmoid(logits)))`` (float32,
    from log-sigmoids, so confident logits stay finite). The anchor side is held fixed:
    only ``logits`` carries a gradient, ``sigmoid(logits) - sigmoid(anchor)`` per entry."""
    a = anchor_logits.detach().float()
    z = logits.float()
    p = torch.sigmoid(a)
    kl = p * (F.logsigmoid(a) - F.logsigmoid(z)) + (1 - p) * (F.logsigmoid(-a) - F.logsigmoid(-z))
    return kl.sum()


def sample_weighted_mask(targets: torch.Tensor, mask: torch.Tensor,
                         label_weights: torch.Tensor | None) -> torch.Tensor:
    """``mask`` scaled per sample by the largest weight among its known positive labels.

    ``label_weights`` has one entry per label (1 for unlisted labels); None: ``mask`` as is.
    A sample none of whose weighted labels is a known positive keeps weight 1.
    """
    if label_weights is None:
        return mask
    return mask.float() * sample_weights(targets, mask, label_weights)


def sample_weights(targets: torch.Tensor, mask: torch.Tensor,
                   label_weights: torch.Tensor) -> torch.Tensor:
    """``[B, 1]``: each sample's largest weight among its known positive labels (1 when none
    of its weighted labels is a known positive)."""
    w = label_weights.to(targets.device, torch.float32)
    positive = (targets > 0.5) & (mask > 0)
    return torch.where(positive, w, torch.ones_like(w)).amax(dim=1, keepdim=True)


def balance_counts(targets, mask, group: slice, det: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Human and AI windows per label of a style group (``[G]`` each, float64): windows where
    the label is a known positive and the source (column ``det``, ``source/ai``) is known."""
    t = torch.as_tensor(targets, dtype=torch.float32)
    m = torch.as_tensor(mask, dtype=torch.float32)
    g_pos = (t[:, group] > 0.5) & (m[:, group] > 0)
    known_src = m[:, det] > 0
    ai = (t[:, det] > 0.5) & known_src
    human = (t[:, det] <= 0.5) & known_src
    return (g_pos & human[:, None]).sum(dim=0).double(), (g_pos & ai[:, None]).sum(dim=0).double()


def balance_table(targets, mask, group: slice, det: int, *, cap: float) -> torch.Tensor:
    """Per (label of a style group, human / AI) cell of the training windows, the factor that
    makes the cell's human and AI windows weigh alike: ``[n_group_labels, 2]``, column 0
    human, 1 AI. A label held by one side only, and every factor's excess over ``cap``, stay
    at 1 / ``cap``: two human Lieder must not outweigh everything else.

    ``targets``/``mask``: ``[N, L]`` arrays of the training windows; ``group``: the group's
    columns; ``det``: the ``source/ai`` column (windows whose source is unknown are skipped).
    """
    n_h, n_a = balance_counts(targets, mask, group, det)
    table = torch.ones(len(n_h), 2, dtype=torch.float64)
    both = (n_h > 0) & (n_a > 0)
    total = n_h + n_a
    table[both, 0] = (total[both] / (2 * n_h[both])).clamp(max=cap)
    table[both, 1] = (total[both] / (2 * n_a[both])).clamp(max=cap)
    return table.float()


def balance_factor(targets: torch.Tensor, mask: torch.Tensor, table: torch.Tensor,
                   group: slice, det: int) -> torch.Tensor:
    """``[B, 1]``: each sample's :func:`balance_table` factor (its first known positive label
    of the group, and its source); 1 when either is unknown."""
    g_pos = (targets[:, group] > 0.5) & (mask[:, group] > 0)
    has = g_pos.any(dim=1) & (mask[:, det] > 0)
    label = g_pos.float().argmax(dim=1)
    col = (targets[:, det] > 0.5).long()
    f = table.to(targets.device)[label, col]
    return torch.where(has, f, torch.ones_like(f))[:, None]


class PlateauSchedule:
    """ReduceLROnPlateau on the validation loss (or a constant LR for ``name: none``).

    ``step(val_loss)`` must get the same value on every rank (the trainer all-gathers the
    validation results first), so every rank's LR moves the same way.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, config: ScheduleConfig):
        self.optimizer, self.config = optimizer, config
        self.scheduler = None
        if config.name == "plateau":
            self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
                # torch cuts after patience + 1 bad epochs; the recipe's patience counts
                # the bad epochs before the cut (see ScheduleConfig).
                optimizer, mode="min", factor=config.factor, patience=config.patience - 1,
                threshold=config.threshold, threshold_mode=config.threshold_mode,
                cooldown=config.cooldown, min_lr=config.min_lr,
            )

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def step(self, val_loss: float) -> float:
        if not math.isfinite(val_loss):
            raise TrainingError(f"validation loss is {val_loss!r}: training has diverged")
        if self.scheduler is not None:
            self.scheduler.step(val_loss)
        return self.lr

    def state_dict(self) -> dict:
        return self.scheduler.state_dict() if self.scheduler is not None else {}

    def load_state_dict(self, state: dict) -> None:
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state)


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda"):
        raise ConfigError(f"device must be auto, cpu or cuda, not {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' requested but CUDA is not available")
    return torch.device(device)


def native_bf16(device: torch.device) -> bool:
    """Whether the GPU ``device`` computes in bf16 natively (compute capability 8.0, Ampere,
    and later). Not ``torch.cuda.is_bf16_supported()``: by default it also counts bf16 that
    is emulated, so it answers True on Turing (the client's RTX 5000s), and it asks about the
    current device rather than ``device``."""
    if torch.version.hip:
        return torch.cuda.is_bf16_supported()
    return torch.cuda.get_device_capability(device)[0] >= 8


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto``: bf16 where the GPU has it natively, fp16 (+GradScaler) otherwise (Turing),
    fp32 on CPU."""
    if precision == "auto":
        if device.type != "cuda":
            return "fp32"
        return "bf16" if native_bf16(device) else "fp16"
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError("precision fp16 needs a CUDA device; use fp32 or bf16 on CPU")
    if precision == "bf16" and device.type == "cuda" and not native_bf16(device):
        raise ConfigError(f"this GPU ({torch.cuda.get_device_name(device)}) has no bf16; use fp16")
    return precision


def _autocast(precision: str, device: torch.device):
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)
