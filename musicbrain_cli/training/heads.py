"""Re-fit the style heads of a trained model on its frozen embeddings.

    refit_style_heads("run-pitch/model", "ref", "run-heads/model", style_bands=8)

Why: after SGD under augmentation the style heads sit far from the optimum of their own
problem. The default model's stage 2 scored style mAP 0.67 on its *training* clips and 0.62
on test: it under-fits style, it does not over-fit it. Each head is linear on what it reads
(``MusicBrainNet.style_pool``), so the best head for fixed features is a convex problem that
can be solved exactly: an L2-regularised logistic regression per style label (scikit-learn,
lbfgs, to convergence) on the un-augmented training windows' features, standardised with the
training windows' mean and deviation (folded back into the row afterwards, so the stored
head reads the raw features). The regularisation strength ``C`` is chosen on the validation
clips' style mAP (clip = mean of its windows' probabilities, as in :mod:`.finalize`); the
test splits are never looked at.

``style_bands``: the input model's head input is kept by default. Given N different from the
model's, the output model's style heads read the fused map pooled over N frequency bands
(see :mod:`musicbrain_cli.model.net`); every style row is then new. A label that lacks a
class among the training windows cannot be fitted; its row then reads nothing (zero weights)
and its bias gives the smoothed training prevalence ``(pos + 0.5) / (n + 1)``.

What changes and what does not: only the style groups' heads
(:data:`~musicbrain_cli.taxonomy.STYLE_GROUPS`) and, with new bands, the style LayerNorm (left at its
identity initialisation). The backbone, the fusion, the global embedding and the ``source``
head are copied bit for bit, so detection, its operating point and the out-of-domain
statistics are those of the input model (``ood.safetensors`` is copied; a following
:func:`.finalize.finalize_model` re-measures them all and must find the same, on the data set
the model was trained on; with ``add_labels`` the data set is another one, and finalize then
measures the operating point and fits the domain statistics on it). The card
records how the heads were fitted and the weights they came from; its robustness table is
dropped, because it described other weights (``musicbrain evaluate --robustness
--update-card`` measures it again).

The model applies one calibration temperature ``T`` to every logit, so a fitted row is
stored as ``T * (coef, intercept)``: ``sigmoid(logit / T)`` is then the regression's own
probability.
"""

from __future__ import annotations

import dataclasses
import shutil
import warnings
from pathlib import Path

import numpy as np
import torch

from musicbrain_cli.errors import DatasetError, InputError, TrainingError
from musicbrain_cli.progress import NULL_PROGRESS, Progress
from musicbrain_cli.taxonomy import DETECTION_GROUP, DETECTION_LABEL, STYLE_GROUPS

#: Inverse L2 strengths tried (on standardised features); the one with the best validation
#: style mAP is kept.
DEFAULT_C_GRID = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3)
METHOD = ("L2 logistic regression per style label on frozen, un-augmented, standardised "
          "training-window features (scikit-learn lbfgs); C chosen on validation style mAP")


def _fit(x: np.ndarray, y: np.ndarray, c: float, max_iter: int) -> tuple[np.ndarray, float]:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        try:
            clf = LogisticRegression(C=c, max_iter=max_iter).fit(x, y)
        except ConvergenceWarning as exc:
            raise TrainingError(f"the style-head regression (C={c}) did not converge in "
                                f"{max_iter} iterations; raise max_iter") from exc
    return clf.coef_[0].astype(np.float64), float(clf.intercept_[0])


def _per_window(clips, per_clip: np.ndarray) -> np.ndarray:
    """Rows of a per-clip array repeated for each of the clip's windows (``clips.embeddings``
    order)."""
    return np.repeat(per_clip, [len(w) for w in clips.window_p_ai], axis=0)


def _window_targets(clips, column: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-window target and known-mask of one label."""
    return (_per_window(clips, clips.targets[:, column]) > 0.5,
            _per_window(clips, clips.mask[:, column]) > 0)


def _clip_probs(clips, window_p: np.ndarray) -> np.ndarray:
    """Per clip, the mean of ``window_p`` weighted as a scan weighs a track's windows."""
    return clips.clip_means(window_p)


def _standardiser(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and deviation of the training windows (a constant feature: 1)."""
    mean, std = x.mean(axis=0), x.std(axis=0)
    return mean, np.where(std > 0, std, 1.0)


def _with_bands(model, config, bands: int):
    """``model`` rebuilt with ``style_bands = bands``: every parameter but the style heads'
    (and a new style LayerNorm, left at identity) copied."""
    from musicbrain_cli.model.net import build_model

    new_config = dataclasses.replace(config, style_bands=bands)
    new = build_model(new_config)
    fresh = {k for k in new.state_dict()
             if k.startswith("style_norm.")
             or (k.startswith("heads.") and k.split(".")[1] != DETECTION_GROUP)}
    kept = {k: v for k, v in model.state_dict().items()
            if k in new.state_dict() and k not in fresh}
    result = new.load_state_dict(kept, strict=False)
    if set(result.missing_keys) != fresh or result.unexpected_keys:
        raise TrainingError(f"cannot carry the model into style_bands={bands}: missing "
                            f"{sorted(set(result.missing_keys) - fresh)}")
    return new.eval(), new_config


def _with_labels(model, config, taxonomy, added: list[str]):
    """``model`` rebuilt with ``taxonomy`` (``config``'s labels and ``added``): every parameter
    copied, each head row into its label's row; the added labels' rows are left to the
    caller."""
    from musicbrain_cli.model.net import build_model
    from musicbrain_cli.training.trainer import carry_by_label

    bad = [lab for lab in added if lab.split("/")[0] not in STYLE_GROUPS]
    if bad or set(taxonomy.group_names) != set(config.taxonomy.group_names):
        raise InputError(f"only style labels can be added to a model's existing groups "
                         f"{list(STYLE_GROUPS)}; the data set adds {bad or taxonomy.group_names}")
    new_config = dataclasses.replace(config, taxonomy=taxonomy)
    new = build_model(new_config)
    carry_by_label(model.state_dict(), config.taxonomy, new, taxonomy)
    return new.eval(), new_config


def refit_style_heads(model_dir: str | Path, dataset_root: str | Path, out_dir: str | Path, *,
                      c_grid: tuple[float, ...] = DEFAULT_C_GRID, style_bands: int | None = None,
                      add_labels: bool = False, batch_size: int = 64, max_iter: int = 5000,
                      progress: Progress = NULL_PROGRESS) -> dict:
    """Write ``out_dir``: the model ``model_dir`` (a folder or a shipped model's name) with its
    style heads re-fitted (see the module docstring), reading ``style_bands`` frequency bands
    (None: as the input model does). Returns the new card's ``training.head_refit`` record.

    ``add_labels``: the data set may carry style labels the model lacks (an enlarged corpus,
    such as MusicNet's composers); each gets a new row in its group's head, fitted like the
    others, and the new model's taxonomy is the data set's. The data set must still carry
    every label of the model, and may not add ``source`` labels or label groups.

    Raises :class:`TrainingError` when no ``C`` beats the input model on validation style mAP
    (over the labels the input model has: it cannot be scored on the others): a worse model
    is never written."""
    from musicbrain_cli.model.calibration import fit_temperature
    from musicbrain_cli.model.checkpoint import read_config, resolve_model, save_checkpoint
    from musicbrain_cli.model.inference import Detector
    from musicbrain_cli.model.config import MAX_STYLE_BANDS
    from musicbrain_cli.training.finalize import (CHOOSE_SPLIT, FIT_SPLIT, _clips,
                                                  _run, _style_map, model_windows)

    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise InputError(f"output folder {str(out_dir)!r} is not empty")
    if not c_grid or any(not (c > 0) for c in c_grid):
        raise InputError(f"C values must be positive, got {list(c_grid)}")
    if style_bands is not None and not 0 <= style_bands <= MAX_STYLE_BANDS:
        raise InputError(f"style_bands must lie in [0, {MAX_STYLE_BANDS}], got {style_bands}")
    # from_pretrained checks a shipped model's weights against the pinned SHA-256
    detector = Detector.from_pretrained(model_dir, device="cpu")
    model_dir = resolve_model(model_dir)
    model, config, card = detector.model, detector.config, detector.card
    from_bands = config.style_bands
    new_bands = from_bands if style_bands is None else style_bands
    if new_bands != from_bands:
        if any(g not in STYLE_GROUPS and g != DETECTION_GROUP for g in config.taxonomy.group_names):
            raise InputError(f"style_bands can only change when every head but "
                             f"{DETECTION_GROUP!r} is a "
                             f"style head {list(STYLE_GROUPS)}; this model has "
                             f"{config.taxonomy.group_names}")
        new_model, new_config = _with_bands(model, config, new_bands)
    else:
        new_model, new_config = model, config
    _, extra = read_config(model_dir)
    cache, by_split = model_windows(dataset_root, config, "re-fitting the style heads", progress,
                                    labels="grow" if add_labels else "same")
    old_taxonomy = config.taxonomy
    added = [lab for lab in cache.taxonomy.labels if lab not in old_taxonomy.labels]
    if added:
        new_model, new_config = _with_labels(new_model, new_config, cache.taxonomy, added)
    temperature = detector.temperature
    det = new_config.taxonomy.index(DETECTION_LABEL)
    width = model.embed_dim

    def features(fused):     # the global embedding, then what the new style heads read
        return torch.cat([model.pool(fused), new_model.style_pool(fused)], dim=1)

    clips = {}
    for split in (FIT_SPLIT, CHOOSE_SPLIT):
        idx = np.asarray(by_split[split])
        probs, emb, _ = _run(detector, cache, idx, batch_size, progress, f"embed {split}",
                             embed=features)
        if added:     # the input model's outputs in the new taxonomy's columns; new: NaN
            grown = np.full((len(probs), new_config.taxonomy.num_labels), np.nan)
            for j, lab in enumerate(old_taxonomy.labels):
                grown[:, new_config.taxonomy.index(lab)] = probs[:, j]
            probs = grown
        clips[split] = _clips(cache, idx, probs, emb, det)
    train, val = clips[FIT_SPLIT], clips[CHOOSE_SPLIT]
    x_train = train.embeddings[:, width:].astype(np.float64)
    x_val = val.embeddings[:, width:].astype(np.float64)
    mean, std = _standardiser(x_train)
    z_train, z_val = (x_train - mean) / std, (x_val - mean) / std

    labels = new_config.taxonomy.labels
    train_targets = {j: _window_targets(train, j) for j, name in enumerate(labels)
                     if name.split("/")[0] in STYLE_GROUPS}
    columns = [j for j, (y, known) in train_targets.items() if 0 < y[known].sum() < known.sum()]
    if not columns:
        raise DatasetError("no style label has both classes among the training windows")

    # Rows that cannot be fitted: kept as they were when the head input is unchanged, else
    # (and for added labels) a constant at the label's smoothed training prevalence (scored
    # as such on validation).
    constant: dict[int, tuple[np.ndarray, float]] = {}
    base_probs = val.probs.copy()
    for j, (y, known) in train_targets.items():
        if labels[j] in added or (j not in columns and new_bands != from_bands):
            p = (y[known].sum() + 0.5) / (known.sum() + 1.0)
            base_probs[:, j] = p
            if j not in columns:
                constant[j] = (np.zeros(x_train.shape[1]), float(np.log(p / (1.0 - p))))

    shared = [lab for lab in labels if lab in old_taxonomy.labels]
    before = _style_map(dataclasses.replace(val, probs=np.where(np.isnan(val.probs), base_probs,
                                                                val.probs)),
                        new_config.taxonomy, only=shared)
    fits: dict[float, dict[int, tuple[np.ndarray, float]]] = {}
    scores: dict[float, float] = {}
    shared_scores: dict[float, float] = {}
    with progress.task("re-fit style heads", total=len(c_grid) * len(columns)) as task:
        for c in c_grid:
            fits[c], val_probs = {}, base_probs.copy()
            for j in columns:
                y, known = train_targets[j]
                coef, intercept = _fit(z_train[known], y[known], c, max_iter)
                # fold the standardisation into the row: it then reads the raw features
                fits[c][j] = (coef / std, intercept - float((coef / std) @ mean))
                val_probs[:, j] = _clip_probs(val, 1.0 / (1.0 + np.exp(-(z_val @ coef + intercept))))
                task.advance()
            scored = dataclasses.replace(val, probs=val_probs)
            scores[c] = _style_map(scored, new_config.taxonomy)
            shared_scores[c] = _style_map(scored, new_config.taxonomy, only=shared)
    best = max(c_grid, key=lambda c: (scores[c], -c))        # ties: the stronger penalty
    if before is not None and shared_scores[best] <= before:
        raise TrainingError(f"re-fitted style heads do not beat the model on validation "
                            f"(style mAP over its labels {shared_scores[best]:.4f} vs "
                            f"{before:.4f}); nothing written")

    rows = dict(fits[best])
    rows.update(constant)
    # Write the rows into the heads (taxonomy order = head order, group by group).
    slices = new_config.taxonomy.group_slices()
    per_label_t = dict((card.get("calibration") or {}).get("per_label") or {})
    with torch.no_grad():
        for j, (coef, intercept) in rows.items():
            group = labels[j].split("/")[0]
            row = j - slices[group].start
            head = new_model.heads[group]
            head.weight[row] = torch.as_tensor(temperature * coef, dtype=head.weight.dtype)
            head.bias[row] = torch.as_tensor(temperature * intercept, dtype=head.bias.dtype)
            y, known = _window_targets(val, j)
            try:   # the label's own temperature, as the trainer records it (informational)
                per_label_t[labels[j]] = fit_temperature(
                    temperature * (x_val @ coef + intercept), y, mask=known).temperature
            except InputError:
                per_label_t.pop(labels[j], None)

    # The card's validation metrics described the old heads: measure the new model on the
    # same validation windows, as the trainer does (window level, raw logits).
    from musicbrain_cli.training.trainer import evaluate_outputs

    with torch.no_grad():
        z = torch.as_tensor(val.embeddings[:, :width], dtype=torch.float32)
        zs = torch.as_tensor(x_val, dtype=torch.float32)
        val_logits = new_model.head_logits(z, zs)
    old_metrics = dict(card.get("metrics") or {})
    metrics = evaluate_outputs(val_logits.double().numpy(), _per_window(val, val.targets),
                               _per_window(val, val.mask), new_config.taxonomy,
                               threshold=(old_metrics.get("detection") or {}).get("threshold", 0.5),
                               temperature=temperature)

    record = {"method": METHOD, "groups": list(STYLE_GROUPS), "c": best,
              "style_bands": new_bands, "from_style_bands": from_bands,
              "val_map_macro_before": old_metrics.get("map_macro"),
              "val_style_map_by_c": {str(c): scores[c] for c in c_grid},
              "val_style_map_before": before,
              "val_style_map_shared_by_c": {str(c): shared_scores[c] for c in c_grid},
              "labels_added": added, "labels_refit": [labels[j] for j in columns],
              "labels_constant": [labels[j] for j in constant],
              "fit_windows": int(len(x_train)), "from_weights_sha256": card["weights_sha256"],
              # the data the heads were fitted on, which need not be the card's training_data
              "data_set": str(Path(dataset_root).resolve())}
    card = dict(card)
    card.pop("robustness", None)        # measured on other weights
    card["calibration"] = {**(card.get("calibration") or {}), "per_label": per_label_t}
    card["training"] = {**(card.get("training") or {}), "head_refit": record}
    card["metrics"] = {**metrics, "split": CHOOSE_SPLIT, "epoch": old_metrics.get("epoch")}
    save_checkpoint(out_dir, new_model, new_config, model_card=card, extra_config=extra)
    if (model_dir / "ood.safetensors").is_file():
        shutil.copy2(model_dir / "ood.safetensors", out_dir / "ood.safetensors")
    return record


# --- the detection head ---------------------------------------------------------------------

#: Inverse L2 strengths tried for the detection row (on standardised embeddings); the one
#: with the best validation ROC-AUC is kept.
DETECTION_C_GRID = (0.003, 0.01, 0.03, 0.1)
#: Largest factor by which balancing may raise one window's weight (a style held by two human
#: clips must not be decided by those two alone).
BALANCE_CAP = 5.0
DETECTION_METHOD = ("L2 logistic regression AI vs human on the frozen global embedding of the "
                    "un-augmented training windows (scikit-learn lbfgs, classes balanced), "
                    "each window weighted by its listed labels and, within each value of the "
                    "balance group, so that human and AI windows weigh alike; C chosen on "
                    "validation ROC-AUC (clip = mean of its windows); validation temperature "
                    "folded into the row")


def detection_weights(targets: np.ndarray, mask: np.ndarray, taxonomy, *,
                      label_weights: dict | None = None,
                      balance_by: str | None = "instrumentation",
                      cap: float = BALANCE_CAP) -> tuple[np.ndarray, dict]:
    """Per-window weights for the detection fit, and a record of the balance applied: the
    trainer's own rules (``train.label_weights`` and ``train.balance_by``, in
    :mod:`.objective`) on ``targets``/``mask`` ``[N, L]`` in ``taxonomy``'s label order.

    A window carrying a label of ``label_weights`` ("group/label" -> weight; the largest
    applies) counts that many times. With ``balance_by`` (a style group), the windows of each
    label of that group are re-weighted so that its human and its AI windows weigh alike,
    each factor at most ``cap``: a style only one side holds (Art Song only among the AI
    clips, say) then cannot stand in for the source. Labels held by one side only and windows
    whose label or source is unknown keep weight 1."""
    from musicbrain_cli.training.objective import (balance_counts, balance_factor,
                                                   balance_table, sample_weights)

    t = torch.as_tensor(np.asarray(targets), dtype=torch.float32)
    m = torch.as_tensor(np.asarray(mask), dtype=torch.float32)
    unknown = sorted(set(label_weights or {}) - set(taxonomy.labels))
    if unknown:
        raise InputError(f"label weights name labels the data set lacks: {unknown}")
    w = sample_weights(t, m, torch.tensor([float((label_weights or {}).get(lab, 1.0))
                                           for lab in taxonomy.labels]))
    record: dict = {"balance_by": balance_by, "cap": cap, "cells": {}}
    if balance_by:
        if balance_by not in taxonomy.group_names:
            raise InputError(f"--balance-by {balance_by!r} is not a group of the data set")
        cols, det = taxonomy.group_slices()[balance_by], taxonomy.index(DETECTION_LABEL)
        w = w * balance_factor(t, m, balance_table(t, m, cols, det, cap=cap), cols, det)
        n_h, n_a = balance_counts(t, m, cols, det)
        names = taxonomy.labels[cols]
        record["cells"] = {name.split("/", 1)[1]: {"human": int(h), "ai": int(a)}
                           for name, h, a in zip(names, n_h.tolist(), n_a.tolist()) if h + a}
    return w[:, 0].double().numpy(), record


def refit_detection_head(model_dir: str | Path, dataset_root: str | Path, out_dir: str | Path, *,
                         label_weights: dict | None = None,
                         balance_by: str | None = "instrumentation",
                         c_grid: tuple[float, ...] = DETECTION_C_GRID, batch_size: int = 64,
                         max_iter: int = 5000, progress: Progress = NULL_PROGRESS) -> dict:
    """Write ``out_dir``: the model with its ``source`` (AI/human) head re-fitted on its frozen
    global embedding over ``dataset_root``, which must carry every label of the model and may
    carry more (an enlarged corpus). Everything else (backbone, fusion, style heads,
    out-of-domain statistics) is copied bit for bit; the card's robustness table is dropped
    (it measured other weights). Follow with ``finalize_model(out_dir, dataset_root,
    refit_ood=False)`` for the operating point and error rates. Returns the card's
    ``training.detection_head_refit`` record. Raises :class:`TrainingError` when no ``C``
    beats the input model's validation ROC-AUC: a worse model is never written."""
    from musicbrain_cli.data.cache import CachedWindows
    from musicbrain_cli.metrics import roc_auc
    from musicbrain_cli.model.calibration import fit_temperature
    from musicbrain_cli.model.checkpoint import read_config, resolve_model, save_checkpoint
    from musicbrain_cli.model.inference import Detector
    from musicbrain_cli.training.finalize import CHOOSE_SPLIT, FIT_SPLIT, _run, model_windows

    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise InputError(f"output folder {str(out_dir)!r} is not empty")
    if not c_grid or any(not (c > 0) for c in c_grid):
        raise InputError(f"C values must be positive, got {list(c_grid)}")
    if balance_by is not None and balance_by not in STYLE_GROUPS:
        raise InputError(f"--balance-by must be a style group {list(STYLE_GROUPS)}, "
                         f"not {balance_by!r}")
    for label, weight in (label_weights or {}).items():
        if "/" not in label or not (isinstance(weight, (int, float)) and 0 < weight <= 100):
            raise InputError(f"label weight {label}={weight!r}: need group/label=W, 0 < W <= 100")
    detector = Detector.from_pretrained(model_dir, device="cpu")
    model_dir = resolve_model(model_dir)
    model, config, card = detector.model, detector.config, detector.card
    _, extra = read_config(model_dir)
    cache, by_split = model_windows(dataset_root, config, "re-fitting the detection head",
                                    progress, labels="by_name")
    full = CachedWindows(cache.cache_dir)   # every label of the data set, for the weights
    det = config.taxonomy.index(DETECTION_LABEL)
    temperature = detector.temperature

    split_data = {}
    for split in (FIT_SPLIT, CHOOSE_SPLIT):
        idx = np.asarray(by_split[split])
        known = cache.mask[idx, det] > 0.5
        idx = idx[known]
        probs, emb, _ = _run(detector, cache, idx, batch_size, progress, f"embed {split}")
        ids = [cache.clip_ids[int(i)] for i in idx]
        split_data[split] = (emb.astype(np.float64), cache.targets[idx, det] > 0.5, ids,
                             probs[:, det], idx)
    x, y, _, _, fit_idx = split_data[FIT_SPLIT]
    xv, yv, ids_v, p_old, _ = split_data[CHOOSE_SPLIT]
    if y.all() or not y.any() or yv.all() or not yv.any():
        raise DatasetError("the detection head needs human and AI windows in train and val")
    weights, balance = detection_weights(full.targets[fit_idx], full.mask[fit_idx],
                                         full.taxonomy, label_weights=label_weights,
                                         balance_by=balance_by)
    mean, std = _standardiser(x)
    z, zv = (x - mean) / std, (xv - mean) / std
    clip_of = np.unique(ids_v, return_inverse=True)[1]

    def clip_auc(p: np.ndarray) -> float:
        n = clip_of.max() + 1
        p_clip = np.bincount(clip_of, weights=p, minlength=n) / np.bincount(clip_of, minlength=n)
        y_clip = np.bincount(clip_of, weights=yv.astype(float), minlength=n) > 0
        return float(roc_auc(y_clip.astype(np.float32), p_clip))

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    fits, scores = {}, {}
    with progress.task("re-fit the detection head", total=len(c_grid)) as task:
        for c in c_grid:
            with warnings.catch_warnings():
                warnings.simplefilter("error", ConvergenceWarning)
                try:
                    clf = LogisticRegression(C=c, max_iter=max_iter, class_weight="balanced")
                    clf.fit(z, y, sample_weight=weights)
                except ConvergenceWarning as exc:
                    raise TrainingError(f"the detection-head regression (C={c}) did not "
                                        f"converge in {max_iter} iterations") from exc
            fits[c] = (clf.coef_[0].astype(np.float64), float(clf.intercept_[0]))
            scores[c] = clip_auc(1.0 / (1.0 + np.exp(-(zv @ fits[c][0] + fits[c][1]))))
            task.advance()
    best = max(c_grid, key=lambda c: (scores[c], -c))
    before = clip_auc(p_old)
    if scores[best] <= before:
        raise TrainingError(f"the re-fitted detection head does not beat the model on "
                            f"validation (ROC-AUC {scores[best]:.4f} vs {before:.4f}); "
                            "nothing written")
    coef, intercept = fits[best]
    raw_w, raw_b = coef / std, intercept - float((coef / std) @ mean)   # reads raw embeddings
    t_val = fit_temperature(xv @ raw_w + raw_b, yv).temperature
    raw_w, raw_b = raw_w / t_val, raw_b / t_val
    group = DETECTION_GROUP
    slices = config.taxonomy.group_slices()
    head = model.heads[group]
    with torch.no_grad():
        for label, sign in (("ai", 1.0), ("human", -1.0)):
            row = config.taxonomy.index(f"{group}/{label}") - slices[group].start
            head.weight[row] = torch.as_tensor(sign * temperature * raw_w, dtype=head.weight.dtype)
            head.bias[row] = torch.as_tensor(sign * temperature * raw_b, dtype=head.bias.dtype)

    record = {"method": DETECTION_METHOD, "c": best,
              "val_roc_auc_by_c": {str(c): scores[c] for c in c_grid},
              "val_roc_auc_before": before, "val_temperature_folded": t_val,
              "label_weights": dict(label_weights or {}), "balance": balance,
              "fit_windows": int(len(x)), "fit_ai_windows": int(y.sum()),
              "data_set": str(Path(dataset_root).resolve()),
              "from_weights_sha256": card["weights_sha256"]}
    card = dict(card)
    card.pop("robustness", None)        # measured on other weights
    card["training"] = {**(card.get("training") or {}), "detection_head_refit": record}
    # The training-time validation snapshot measured the old source head: its detection
    # figures go (the refit's own are in the record above, finalize's in "evaluation").
    old_metrics = dict(card.get("metrics") or {})
    stale = ("detection", "detection_roc_auc", "val_loss")
    card["metrics"] = {**{k: v for k, v in old_metrics.items() if k not in stale},
                       "ap": {k: v for k, v in (old_metrics.get("ap") or {}).items()
                              if not k.startswith(f"{group}/")},
                       "source_head_refit": "detection figures of the training-time snapshot "
                                            "removed: they measured the source head before "
                                            "the re-fit (see training.detection_head_refit)"}
    save_checkpoint(out_dir, model, config, model_card=card, extra_config=extra)
    if (model_dir / "ood.safetensors").is_file():
        shutil.copy2(model_dir / "ood.safetensors", out_dir / "ood.safetensors")
    return record


__all__ = ["refit_style_heads", "refit_detection_head", "detection_weights", "DEFAULT_C_GRID"]
