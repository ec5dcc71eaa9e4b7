"""Validation (predictions gathered from every rank, the metrics the schedule and the best
checkpoint follow) and the run's metric logs.

Split out of :mod:`musicbrain_cli.training.trainer` (issue 25), which re-exports its names.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch.utils.data import Dataset

from musicbrain_cli import metrics as M
from musicbrain_cli.model.calibration import apply_temperature
from musicbrain_cli.taxonomy import DETECTION_LABEL, Taxonomy
from musicbrain_cli.training import distributed as D
from musicbrain_cli.training.objective import _autocast
from musicbrain_cli.training.state import dumps


# --- validation ---------------------------------------------------------------------------


def evaluate_outputs(logits: np.ndarray, targets: np.ndarray, mask: np.ndarray,
                     taxonomy: Taxonomy, *, threshold: float, temperature: float = 1.0) -> dict:
    """Validation metrics from gathered outputs ``[N, L]``.

    mAP (macro over labels with a positive in the split; the others are listed in
    ``ap_skipped``), detection ROC-AUC and TPR/FPR (with Wilson 95 % intervals) at
    ``threshold`` on ``sigmoid(logit / temperature)`` of ``source/ai``.
    """
    labels = taxonomy.labels
    known = mask > 0
    bce = np.logaddexp(0.0, logits.astype(np.float64)) - targets * logits
    n_known = int(known.sum())
    out: dict[str, Any] = {"val_loss": float(bce[known].sum() / max(n_known, 1)),
                           "val_windows": int(logits.shape[0])}
    out.update(M.average_precision(targets, logits, mask=mask, labels=labels).to_dict())
    if DETECTION_LABEL in labels:
        j = labels.index(DETECTION_LABEL)
        prob = apply_temperature(logits[:, j], temperature)
        out["detection_roc_auc"] = M.roc_auc(targets[:, j], logits[:, j], mask=mask[:, j])
        out["detection"] = M.rates_at_threshold(targets[:, j], prob, threshold, mask=mask[:, j])
        out["detection"]["temperature"] = temperature
    return out


@torch.no_grad()
def predict(model: torch.nn.Module, dataset: Dataset, indices: list[int], *, batch: int,
            device: torch.device, precision: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Logits, targets and masks of ``dataset[indices]`` (model already in eval mode)."""
    outs, ts, ms = [], [], []
    for start in range(0, len(indices), batch):
        items = [dataset[i] for i in indices[start:start + batch]]
        x = torch.stack([it[0] for it in items]).to(device)
        with _autocast(precision, device):
            outs.append(model(x).float().cpu().numpy())
        ts.append(torch.stack([it[1] for it in items]).numpy())
        ms.append(torch.stack([it[2] for it in items]).numpy())
    if not outs:
        return np.zeros((0, 0), np.float32), np.zeros((0, 0), np.float32), np.zeros((0, 0), np.float32)
    return np.concatenate(outs), np.concatenate(ts), np.concatenate(ms)


def gather_predictions(model, dataset, *, batch, device, precision) -> tuple[np.ndarray, ...]:
    """Every rank predicts ``indices[rank::world]`` (no padding, so no duplicates), then the
    pieces are all-gathered and put back in dataset order on every rank."""
    r, w = D.rank(), D.world_size()
    mine = list(range(r, len(dataset), w))
    logits, targets, mask = predict(model, dataset, mine, batch=batch, device=device,
                                    precision=precision)
    parts = D.all_gather_object((mine, logits, targets, mask))
    n = len(dataset)
    width = max(p[1].shape[1] for p in parts if len(p[0])) if n else 0
    out = [np.zeros((n, width), np.float32) for _ in range(3)]
    for idx, *arrays in parts:
        if idx:
            for o, a in zip(out, arrays):
                o[idx] = a
    return tuple(out)


# --- logs ---------------------------------------------------------------------------------


def _atomic_text(path: Path, text: str) -> None:
    # the project's one atomic writer: fsynced, and readable as the umask allows (review of
    # session 45: the logs came out owner-only, the exported model 0644)
    from musicbrain_cli.files import atomic_write

    atomic_write(path, text)


SCALAR_COLUMNS = ("epoch", "global_step", "lr", "train_loss", "train_consistency_kl", "val_loss",
                  "map_macro", "map_micro", "detection_roc_auc", "detection_tpr", "detection_fpr",
                  "epoch_time_s", "train_samples_per_s")


def write_metric_logs(out_dir: Path, history: list[dict], labels: list[str]) -> None:
    """Rewrite metrics.jsonl and metrics.csv from the whole history (one row per epoch).

    Rewriting (rather than appending) keeps the logs consistent with the checkpoint after a
    resume: epochs re-run after a crash appear once.
    """
    _atomic_text(out_dir / "metrics.jsonl", "".join(dumps(h) + "\n" for h in history))
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(list(SCALAR_COLUMNS) + [f"ap/{name}" for name in labels])
    for h in history:
        row = [h.get(c) for c in SCALAR_COLUMNS] + [h.get("ap", {}).get(n) for n in labels]
        writer.writerow(["" if v is None else v for v in row])
    _atomic_text(out_dir / "metrics.csv", buf.getvalue())


def _flat_history_row(epoch: int, global_step: int, lr: float, train_loss: float,
                      val: Mapping[str, Any], seconds: float, samples: int) -> dict:
    det = val.get("detection") or {}
    return {"epoch": epoch, "global_step": global_step, "lr": lr, "train_loss": train_loss,
            **{k: v for k, v in val.items() if k != "detection"},
            "detection_tpr": det.get("tpr"), "detection_fpr": det.get("fpr"),
            "detection": det, "epoch_time_s": seconds,
            "train_samples_per_s": samples / seconds if seconds > 0 else None}
