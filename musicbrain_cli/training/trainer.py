"""The distributed trainer behind ``musicbrain train`` (issue #6).

::

    train(data, out_dir, config=...)            main process: checks, cache, launch
      -> distributed.launch(run_worker, ...)     torch elastic, N workers (or in-process for 1,
                                                 or each process of an external torchrun)
         run_worker(request)                     every rank: seed, data, model, loop
           per epoch: train (DistributedSampler, AMP, accumulation)
                      validate (all ranks, results all-gathered: every rank steps the
                                scheduler with the same loss)
                      checkpoint (rank 0 writes, atomically)
           at the end (rank 0): best weights -> temperature scaling on val logits
                                -> model directory (model.checkpoint.save_checkpoint)

Run directory (only rank 0 writes; nothing is written before the checks pass)::

    RUN_DIR/config.resolved.yaml, config.resolved.json    the recipe actually used
    RUN_DIR/metrics.jsonl, metrics.csv                     one row per epoch
    RUN_DIR/checkpoints/last.safetensors                   every epoch (and every N steps)
    RUN_DIR/checkpoints/best.safetensors                   best validation mAP (macro)
    RUN_DIR/model/                                         the exported model (Detector loads it)
    RUN_DIR/tensorboard/                                   when tensorboard is installed

Training state is data, never a pickle (STYLE.md rule 5): one safetensors file holds every
tensor (weights, Adam moments, RNG states as uint8 tensors) and its header metadata holds
the rest as one JSON document (epoch, step, optimiser hyper-parameters, scheduler, grad
scaler, python/numpy RNG states, metric history, the resolved config). One file per
checkpoint makes writing atomic: temp file, fsync, ``os.replace``.

Exact resume: a checkpoint records the epoch and the optimiser step inside it; the sampler
skips the samples already consumed (the permutation is global and depends only on seed and
epoch, so the skip is exact even if the number of processes changes), augmentation draws
from generators keyed by (seed, epoch, sample index), and every rank's torch/python/numpy
RNG state is gathered and restored. On CPU in deterministic mode a run killed and resumed
ends at bit-identical weights (``tests/test_trainer.py`` checks it).

The stages sit in their own modules, re-exported here: :mod:`.sources` (what windows come
from), :mod:`.augment` (augmentation, the resumable sampler), :mod:`.objective` (loss,
schedule, precision), :mod:`.state` (seeding, checkpoints as data), :mod:`.validation`
(validation, metric logs); this module is the worker and the entry point.

Loss: BCE-with-logits over the *known* labels only (mask from ``Taxonomy.encode``), averaged
over the known entries of the global micro-batch: each rank divides its masked sum by the
all-reduced count and multiplies by the world size, which DDP's gradient averaging divides
back out, so N ranks compute the same gradient as one rank on the whole batch.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from musicbrain_cli.model.calibration import fit_temperature
from musicbrain_cli.errors import ConfigError, InputError, MusicBrainWarning, TrainingError
from musicbrain_cli.progress import NULL_PROGRESS, Progress
from musicbrain_cli.taxonomy import DETECTION_LABEL, Taxonomy
from musicbrain_cli.training import distributed as D
from musicbrain_cli.training.config import TrainConfig

# The trainer's stages live in their own modules (issue 25); their names stay importable
# from here, where callers and tests have always found them.
from musicbrain_cli.training.augment import (  # noqa: F401
    AugmentedWindows,
    ResumableSampler,
    augment,
    pitch_warp,
)
from musicbrain_cli.training.objective import (  # noqa: F401
    PlateauSchedule,
    _autocast,
    bernoulli_kl_sum,
    masked_bce_sum,
    balance_factor,
    balance_table,
    sample_weighted_mask,
    resolve_device,
    resolve_precision,
)
from musicbrain_cli.training.sources import (  # noqa: F401
    CacheSource,
    DataSource,
    SyntheticSource,
    as_source,
)
from musicbrain_cli.training.state import (  # noqa: F401
    RUNTIME_KEYS,
    STATE_FORMAT,
    STATE_METADATA_KEY,
    STATE_VERSION,
    _json_restore,
    _json_safe,
    capture_rng,
    config_differences,
    dumps,
    flatten_optimizer,
    read_state,
    restore_rng,
    seed_everything,
    split_prefix,
    unflatten_optimizer,
    write_state,
)
from musicbrain_cli.training.validation import (  # noqa: F401
    SCALAR_COLUMNS,
    _atomic_text,
    _flat_history_row,
    evaluate_outputs,
    gather_predictions,
    predict,
    write_metric_logs,
)


# --- the worker ---------------------------------------------------------------------------


@dataclass
class TrainRequest:
    """Everything a worker needs; plain picklable data (spawned processes)."""

    source: Any
    out_dir: str
    config: dict
    resume: bool = False
    device: str = "auto"
    progress: Progress = field(default_factory=Progress)
    export: bool = True


#: Entries of ``_Run.epoch_acc``.
EPOCH_ACC = 5


class StopRequested(Exception):
    """``train.stop_after_steps`` reached (the test hook that simulates a kill)."""


@dataclass
class _Run:
    """The live objects of one rank's run (kept together so helpers stay small)."""

    config: TrainConfig
    out_dir: Path
    device: torch.device
    precision: str
    model: torch.nn.Module           # possibly DDP-wrapped
    model_config: Any
    optimizer: torch.optim.Optimizer
    schedule: PlateauSchedule
    scaler: torch.amp.GradScaler
    train_set: AugmentedWindows
    val_set: Dataset
    sampler: ResumableSampler
    taxonomy: Taxonomy
    source: Any
    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0
    steps_this_process: int = 0
    history: list = field(default_factory=list)
    best: dict = field(default_factory=dict)
    tb: Any = None
    #: SHA-256 of the weights a fine-tune started from (``train.init_from``), else None.
    init_sha256: str | None = None
    #: The labels a fine-tune added to its init model's (``train.init_labels: by_name``).
    init_new_labels: list = field(default_factory=list)
    #: Per-label loss weights (``train.label_weights``; None when none are set).
    label_weights: torch.Tensor | None = None
    #: ``train.balance_by``: (factor table, the group's columns, the source/ai column).
    balance: tuple | None = None
    #: This rank's running (masked BCE sum, known labels, samples, consistency KL sum, edited
    #: windows) of the current epoch.
    epoch_acc: torch.Tensor = field(default_factory=lambda: torch.zeros(EPOCH_ACC, dtype=torch.float64))

    @property
    def bare(self) -> torch.nn.Module:
        return D.unwrap(self.model)


def _build_model(config: TrainConfig, source, taxonomy: Taxonomy):
    from musicbrain_cli.features import FrontEndConfig
    from musicbrain_cli.model import ModelConfig, build_model

    # The front end is the data source's (it made the features); the taxonomy is the cache's.
    fields_ = {k: v for k, v in config.model.items() if k != "front_end"}
    if "taxonomy" in fields_:
        raise ConfigError("model.taxonomy comes from the data set, not the training config")
    try:
        model_config = ModelConfig.from_dict(
            {**fields_, "front_end": FrontEndConfig.from_dict(source.front_end()).to_dict(),
             "taxonomy": taxonomy.to_dict()}
        )
    except ConfigError as exc:
        raise ConfigError(f"invalid model section {fields_!r}: {exc}") from exc
    return build_model(model_config), model_config


def init_weights(model: torch.nn.Module, model_config, name_or_path: str, *,
                 labels: str = "same") -> str:
    """Load an exported model's weights into ``model`` (fine-tuning); returns their SHA-256.

    The exported model must be the same network on the same input with the same labels:
    anything else would silently re-purpose its heads, so a difference is an error. With
    ``labels="by_name"`` the run may add labels (see ``train.init_labels``):
    :func:`new_labels` lists them.
    """
    from musicbrain_cli.model.checkpoint import load_checkpoint, pinned_sha256, resolve_model

    directory = resolve_model(name_or_path)
    source, source_config, card = load_checkpoint(directory,
                                                  expected_sha256=pinned_sha256(name_or_path))
    diffs = config_differences(source_config.to_dict(), model_config.to_dict(), ignore=set())
    if labels == "by_name":
        diffs = [d for d in diffs if d.split(".")[0] != "taxonomy"]
    if diffs:
        raise ConfigError(f"train.init_from {name_or_path!r} is a different model; it differs "
                          f"in {diffs}")
    if labels != "by_name":
        model.load_state_dict(source.state_dict(), strict=True)
        return str(card["weights_sha256"])
    old, new = source_config.taxonomy, model_config.taxonomy
    lost = [label for label in old.labels if label not in new.labels]
    if lost:
        raise ConfigError(f"train.init_from {name_or_path!r} has labels this data set lacks: "
                          f"{lost}; fine-tuning would drop their evidence")
    carry_by_label(source.state_dict(), old, model, new)
    return str(card["weights_sha256"])


def carry_by_label(source_state: dict, old, model: torch.nn.Module, new, *,
                   skip: frozenset[str] | set[str] = frozenset()) -> None:
    """Copy ``source_state`` (a model with taxonomy ``old``) into ``model`` (taxonomy
    ``new``, which holds every label of ``old``): every tensor outside the heads as it is,
    each head row into the row of the same label. Keys in ``skip`` keep ``model``'s values;
    the rows of labels ``old`` lacks keep theirs too (the caller fits or initialises them)."""
    state = model.state_dict()
    for key, value in source_state.items():
        if key in skip:
            continue
        group = key.split(".")[1] if key.startswith("heads.") else None
        if group is None:
            state[key].copy_(value)   # same network: every non-head tensor has the same shape
            continue
        rows_old = old.group(group).labels
        rows_new = new.group(group).labels
        for i, label in enumerate(rows_old):
            state[key][rows_new.index(label)].copy_(value[i])
    model.load_state_dict(state, strict=True)


def new_labels(model_config, name_or_path: str) -> list[str]:
    """Labels of ``model_config`` that the exported model ``name_or_path`` lacks."""
    from musicbrain_cli.model.checkpoint import read_config, resolve_model

    old, _ = read_config(resolve_model(name_or_path))
    return [label for label in model_config.taxonomy.labels if label not in old.taxonomy.labels]


def _setup(request: TrainRequest, info: D.DistInfo) -> _Run:
    config = TrainConfig.from_dict(request.config)
    device = resolve_device(request.device)
    if device.type == "cuda":
        device = torch.device("cuda", info.local_rank)
    precision = resolve_precision(config.train.precision, device)
    if config.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS determinism
        # On CUDA, the backward of the fusion's bilinear resize (and of adaptive pooling) has
        # no deterministic kernel: torch raises at the first step unless told to warn. So a
        # GPU run uses deterministic kernels where torch has them and warns where it has
        # none; bit-exact resume is a CPU promise (README, "train").
        torch.use_deterministic_algorithms(True, warn_only=device.type == "cuda")
        torch.backends.cudnn.benchmark = False
    source = request.source
    taxonomy = source.taxonomy()
    # Identical initial weights on every rank and for every world size: build under the
    # bare seed, then give each rank its own stream for dropout (nanoGPT: seed + rank).
    seed_everything(config.seed)
    model, model_config = _build_model(config, source, taxonomy)
    # A resume takes the weights from its checkpoint, and what they started from from its
    # record (load_training_state): the init model may since have been replaced or removed.
    init_sha256, init_new = None, []
    if config.train.init_from and not request.resume:
        init_sha256 = init_weights(model, model_config, config.train.init_from,
                                   labels=config.train.init_labels)
        init_new = new_labels(model_config, config.train.init_from)
    seed_everything(config.seed + info.rank)
    model.to(device)
    config.micro_batch(info.world_size)   # the batch arithmetic must divide exactly
    train_set = AugmentedWindows(source.open(config.train.train_split), config.augment,
                                 source.front_end(), seed=config.seed,
                                 detection_index=(taxonomy.index(DETECTION_LABEL)
                                                  if DETECTION_LABEL in taxonomy.labels else None))
    val_set = source.open(config.train.val_split)
    if len(train_set) == 0 or len(val_set) == 0:
        raise TrainingError(
            f"empty split: {len(train_set)} training and {len(val_set)} validation windows"
        )
    sampler = ResumableSampler(train_set, num_replicas=info.world_size, rank=info.rank,
                               shuffle=True, seed=config.seed)
    o = config.optim
    opt_cls = torch.optim.AdamW if o.name == "adamw" else torch.optim.Adam
    optimizer = opt_cls(model.parameters(), lr=o.lr, betas=o.betas, eps=o.eps,
                        weight_decay=o.weight_decay)
    wrapped = D.wrap(model, device, sync_batchnorm=config.train.sync_batchnorm)
    return _Run(
        config=config, out_dir=Path(request.out_dir), device=device, precision=precision,
        model=wrapped, model_config=model_config, optimizer=optimizer,
        schedule=PlateauSchedule(optimizer, config.schedule),
        scaler=torch.amp.GradScaler(device.type, enabled=precision == "fp16"),
        train_set=train_set, val_set=val_set, sampler=sampler, taxonomy=taxonomy, source=source,
        init_sha256=init_sha256, init_new_labels=init_new,
        label_weights=_label_weights(config, taxonomy),
        balance=_balance(config, taxonomy, source.open(config.train.train_split)),
    )


def _balance(config: TrainConfig, taxonomy: Taxonomy, train_windows) -> tuple | None:
    """``train.balance_by`` as (factor table, group columns, source/ai column), from the
    training windows' own targets (un-augmented: augmentation keeps the labels)."""
    group = config.train.balance_by
    if group is None:
        return None
    if group not in taxonomy.group_names:
        raise ConfigError(f"train.balance_by {group!r} is not a group of the data set "
                          f"(groups: {list(taxonomy.group_names)})")
    if hasattr(train_windows, "targets") and hasattr(train_windows, "mask"):
        targets, mask = train_windows.targets, train_windows.mask
    else:
        items = [train_windows[i] for i in range(len(train_windows))]
        targets = np.stack([np.asarray(t) for _, t, _ in items])
        mask = np.stack([np.asarray(m) for _, _, m in items])
    cols = taxonomy.group_slices()[group]
    det = taxonomy.index(DETECTION_LABEL)
    return balance_table(targets, mask, cols, det, cap=config.train.balance_cap), cols, det


def _label_weights(config: TrainConfig, taxonomy: Taxonomy) -> torch.Tensor | None:
    """``train.label_weights`` as one weight per label of the data set (1 if unlisted)."""
    wanted = config.train.label_weights
    if not wanted:
        return None
    unknown = sorted(set(wanted) - set(taxonomy.labels))
    if unknown:
        raise ConfigError(f"train.label_weights names labels the data set lacks: {unknown} "
                          f"(labels: {list(taxonomy.labels)})")
    return torch.tensor([float(wanted.get(label, 1.0)) for label in taxonomy.labels])


def _state_tensors_and_meta(run: _Run, rng_all: list) -> tuple[dict, dict]:
    tensors = {f"model.{k}": v.detach().cpu().contiguous().clone()
               for k, v in run.bare.state_dict().items()}
    opt_tensors, opt_meta = flatten_optimizer(run.optimizer.state_dict())
    tensors.update({f"optim.{k}": v for k, v in opt_tensors.items()})
    rng_meta = {}
    for r, (arrays, meta) in enumerate(rng_all):
        for name, arr in arrays.items():
            tensors[f"rng.{r}.{name}"] = torch.from_numpy(np.ascontiguousarray(arr))
        rng_meta[str(r)] = meta
    meta = {
        "epoch": run.epoch, "step_in_epoch": run.step_in_epoch, "global_step": run.global_step,
        "samples_into_epoch": run.step_in_epoch * run.config.train.batch_size,
        "world_size": D.world_size(), "precision": run.precision,
        "config": run.config.to_dict(), "model_config": run.model_config.to_dict(),
        "optimizer": opt_meta, "scheduler": run.schedule.state_dict(),
        "scaler": run.scaler.state_dict(), "rng": rng_meta,
        "history": run.history, "best": run.best,
        # what the run trains on: a resume must continue on the same data (load_training_state)
        "data": run.source.describe(),
        # what a fine-tune started from, as it was then (a resume does not look again)
        "init_from": ({"weights_sha256": run.init_sha256, "new_labels": run.init_new_labels}
                      if run.config.train.init_from else None),
    }
    return tensors, meta


def save_training_state(run: _Run, *, best: bool = False) -> None:
    """Collective: every rank contributes its RNG state and running loss; rank 0 writes."""
    rng_all = D.all_gather_object(capture_rng())
    partial = D.all_reduce_sum(run.epoch_acc)
    if not D.is_primary():
        return
    tensors, meta = _state_tensors_and_meta(run, rng_all)
    meta["epoch_partial"] = partial.tolist()   # so a mid-epoch resume logs the whole epoch
    ckpt = run.out_dir / "checkpoints"
    write_state(ckpt / "last.safetensors", tensors, meta)
    if best:
        write_state(ckpt / "best.safetensors", tensors, meta)
    if run.config.train.keep_epoch_checkpoints and run.step_in_epoch == 0:
        write_state(ckpt / f"epoch-{run.epoch:04d}.safetensors", tensors, meta)


def _check_same_data(path: Path, saved: dict | None, now: dict) -> None:
    """A resumed run must train on the data it started on: another data set (even one with the
    same manifest), a rebuilt one or another feature cache would mix two runs in one model
    whose card names only the last. Checkpoints written before this was recorded pass."""
    if not saved:
        return
    diffs = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))
    if diffs:
        raise TrainingError(
            f"cannot resume {str(path)!r}: it was trained on {saved.get('path', saved)!r}, and the data "
            f"given now differ in {', '.join(diffs)}; a run resumes only on the data it started on "
            "(start a new run, or --init-from its model to fine-tune on other data)")


def load_training_state(run: _Run, path: Path) -> None:
    tensors, meta = read_state(path)
    diffs = config_differences(meta["config"], run.config.to_dict())
    if diffs:
        raise TrainingError(f"cannot resume {str(path)!r}: the config differs in {diffs}")
    _check_same_data(path, meta.get("data"), run.source.describe())
    if run.config.train.init_from:
        if meta.get("init_from"):
            run.init_sha256 = meta["init_from"]["weights_sha256"]
            run.init_new_labels = list(meta["init_from"]["new_labels"])
        else:   # a checkpoint written before this was recorded: as before, ask the model
            run.init_sha256 = init_weights(run.bare, run.model_config,
                                           run.config.train.init_from,
                                           labels=run.config.train.init_labels)
            run.init_new_labels = new_labels(run.model_config, run.config.train.init_from)
    try:
        run.bare.load_state_dict(split_prefix(tensors, "model."), strict=True)
    except RuntimeError as exc:
        raise TrainingError(f"checkpoint {str(path)!r} does not fit the model: {exc}") from exc
    run.optimizer.load_state_dict(unflatten_optimizer(
        split_prefix(tensors, "optim."), meta["optimizer"], run.optimizer.state_dict()))
    run.schedule.load_state_dict(meta["scheduler"])
    if meta.get("precision") != run.precision:
        # "auto" resolves by device: a fp16 run (Turing) resumed on a bf16 GPU or the CPU
        # changes its numerics, and its gradient scaler's state has nowhere to go
        warnings.warn(
            f"resuming a run trained in {meta.get('precision')} in {run.precision} (what "
            f"train.precision {run.config.train.precision!r} gives on this device): it does "
            "not continue exactly" + ("; its gradient scaler's state is dropped"
                                      if meta["scaler"] and not run.scaler.is_enabled()
                                      else ""), MusicBrainWarning, stacklevel=2)
    if meta["scaler"]:
        run.scaler.load_state_dict(meta["scaler"])
    run.epoch, run.global_step = int(meta["epoch"]), int(meta["global_step"])
    run.history, run.best = list(meta["history"]), dict(meta["best"])
    _restore_epoch_end_files(run, path, tensors, meta)
    if D.is_primary():   # the other ranks start from 0: the epoch's all-reduce adds them up
        partial = list(meta["epoch_partial"])   # states written before consistency held 3
        run.epoch_acc = torch.tensor(partial + [0.0] * (EPOCH_ACC - len(partial)), dtype=torch.float64)
    samples = int(meta["samples_into_epoch"])
    b = run.config.train.batch_size
    run.step_in_epoch = samples // b
    run.sampler.start = samples // D.world_size()
    r = str(D.rank())
    if int(meta["world_size"]) == D.world_size() and r in meta["rng"]:
        arrays = {k.split(".", 2)[2]: v.numpy() for k, v in tensors.items()
                  if k.startswith(f"rng.{r}.")}
        restore_rng(arrays, meta["rng"][r])
    else:
        warnings.warn(
            f"resuming with {D.world_size()} processes from a {meta['world_size']}-process "
            "checkpoint: data order is exact, dropout RNG streams are reseeded",
            MusicBrainWarning, stacklevel=2,
        )
        seed_everything(run.config.seed + 7919 * (run.global_step + 1) + D.rank())


def _restore_epoch_end_files(run: _Run, path: Path, tensors: dict, meta: dict) -> None:
    """An epoch end writes ``last``, then ``best`` (and ``epoch-N``): a run stopped in between
    left a ``last`` that already counts its epoch as the best, beside a ``best`` of an
    earlier epoch, or none. The resumed run would never write that best again (it is not
    better than itself) and exported the older weights, or failed at the end for want of
    the file. ``last`` holds those weights, so they are written now (rank 0)."""
    if not D.is_primary() or meta.get("step_in_epoch") or not meta.get("best"):
        return
    ckpt = path.parent
    if run.best.get("epoch") == run.epoch:
        try:
            held = read_state(ckpt / "best.safetensors")[1]
        except TrainingError:
            held = {}
        if held.get("global_step") != run.global_step:
            write_state(ckpt / "best.safetensors", tensors, meta)
    every = ckpt / f"epoch-{run.epoch:04d}.safetensors"
    if run.config.train.keep_epoch_checkpoints and not every.is_file():
        write_state(every, tensors, meta)


def _train_epoch(run: _Run, progress: Progress) -> tuple[float, int, float | None]:
    """One epoch (or its remainder after a resume). Returns (mean train loss, samples, mean
    consistency KL per edited window or None where no window was edited or the term is off)."""
    c = run.config
    accum, micro = c.train.accumulation_steps, c.micro_batch(D.world_size())
    run.sampler.set_epoch(run.epoch)
    run.train_set.set_epoch(run.epoch)
    n_micro = math.ceil(run.sampler.num_samples / micro)           # per rank, whole epoch
    n_steps = math.ceil(n_micro / accum)
    generator = torch.Generator().manual_seed(c.seed * 1000003 + run.epoch)
    loader = DataLoader(run.train_set, batch_size=micro, sampler=run.sampler,
                        num_workers=c.train.num_workers, generator=generator,
                        pin_memory=run.device.type == "cuda", drop_last=False)
    batches = iter(loader)
    run.model.train()
    world = D.world_size()
    with progress.task(f"epoch {run.epoch + 1}/{c.train.epochs}",
                       total=n_steps) as bar:
        bar.advance(run.step_in_epoch)
        for step in range(run.step_in_epoch, n_steps):
            window = min(accum, n_micro - step * accum)
            run.optimizer.zero_grad(set_to_none=True)
            for j in range(window):
                x, y, m, *pair = (t.to(run.device, non_blocking=True) for t in next(batches))
                m = sample_weighted_mask(y, m, run.label_weights)
                if run.balance is not None:
                    table, cols, det = run.balance
                    m = m * balance_factor(y, m, table, cols, det)
                known = D.all_reduce_sum(m.sum().double().cpu()).item()
                sync = j == window - 1 or not D.is_distributed()
                ctx = contextlib.nullcontext() if sync else run.model.no_sync()
                with ctx:
                    with _autocast(run.precision, run.device):
                        logits = run.model(x)
                    total = masked_bce_sum(logits, y, m)
                    loss = total * world / max(known, 1.0) / window
                    if pair:
                        kl, n_edited = _consistency(run, logits, *pair)
                        weight = c.augment.consistency_weight
                        loss = loss + weight * kl * world / max(known, 1.0) / window
                    # whatever the precision: the gradient scaler of fp16 copes with
                    # gradients that overflow in the backward pass, not with a forward pass
                    # or data that give no finite loss, and it skipped every such step
                    # silently (review of session 45: an fp16 run of NaN windows "finished")
                    if not torch.isfinite(loss):
                        raise TrainingError(
                            f"loss is {loss.item()} at epoch {run.epoch + 1}, step {step + 1}"
                        )
                    run.scaler.scale(loss).backward()
                run.epoch_acc += torch.tensor([total.item(), float(m.sum().item()), x.shape[0],
                                               kl.item() if pair else 0.0,
                                               n_edited if pair else 0], dtype=torch.float64)
            if c.optim.grad_clip_norm > 0:
                run.scaler.unscale_(run.optimizer)
                torch.nn.utils.clip_grad_norm_(run.model.parameters(), c.optim.grad_clip_norm)
            run.scaler.step(run.optimizer)
            run.scaler.update()
            run.global_step += 1
            run.steps_this_process += 1
            run.step_in_epoch = step + 1
            bar.advance()
            every = c.train.checkpoint_every_steps
            if every and run.global_step % every == 0 and step + 1 < n_steps:
                save_training_state(run)
            if c.train.stop_after_steps and run.steps_this_process >= c.train.stop_after_steps:
                raise StopRequested()
    run.sampler.start = 0   # a resumed epoch's skip applies to that epoch only
    total = D.all_reduce_sum(run.epoch_acc)
    run.epoch_acc = torch.zeros(EPOCH_ACC, dtype=torch.float64)
    consistency = float(total[3] / total[4]) if total[4] > 0 else None
    return float(total[0] / max(total[1].item(), 1.0)), int(total[2].item()), consistency


def _consistency(run: _Run, logits: torch.Tensor, anchor: torch.Tensor,
                 edited: torch.Tensor) -> tuple[torch.Tensor, int]:
    """The consistency term of this micro-batch (``augment.consistency_weight``): the KL
    divergence from each edited window's anchor P(AI) to its own, summed, and how many
    windows were edited. The anchors are read by the model as it stands, without gradient
    (in its training mode, as the edited windows are)."""
    det = run.train_set.detection_index          # set whenever the term is on (AugmentedWindows)
    rows = edited.bool().nonzero().flatten()
    if rows.numel() == 0:
        return logits.new_zeros(()), 0
    with torch.no_grad(), _autocast(run.precision, run.device):
        anchor_logits = run.bare(anchor[rows])
    return bernoulli_kl_sum(anchor_logits[:, det], logits[rows, det]), int(rows.numel())


def _validate(run: _Run, *, temperature: float = 1.0, model: torch.nn.Module | None = None) -> dict:
    """Validation metrics. Collective (all ranks share the work) unless ``model`` is given,
    in which case the calling rank predicts the whole split alone."""
    net = model if model is not None else run.bare
    batch = max(run.config.micro_batch(D.world_size()), 1)
    was_training = net.training
    net.eval()
    try:
        if model is None:
            logits, targets, mask = gather_predictions(
                net, run.val_set, batch=batch, device=run.device, precision=run.precision)
        else:
            logits, targets, mask = predict(net, run.val_set, list(range(len(run.val_set))),
                                            batch=batch, device=run.device,
                                            precision=run.precision)
    finally:
        net.train(was_training)
    result = evaluate_outputs(logits, targets, mask, run.taxonomy,
                              threshold=run.config.eval.operating_threshold,
                              temperature=temperature)
    result["_arrays"] = (logits, targets, mask)
    return result


def _epoch_end(run: _Run, train_loss: float, samples: int, seconds: float, *,
               consistency: float | None = None) -> None:
    val = _validate(run)
    val.pop("_arrays")
    lr_used = run.schedule.lr
    run.schedule.step(val["val_loss"])
    run.epoch += 1
    run.step_in_epoch = 0
    row = _flat_history_row(run.epoch, run.global_step, lr_used, train_loss, val, seconds, samples)
    row["lr_next"] = run.schedule.lr
    if run.config.augment.consistency_weight > 0:
        row["train_consistency_kl"] = consistency
    run.history.append(row)
    score = val["map_macro"] if val["map_macro"] is not None else -val["val_loss"]
    is_best = not run.best or score > run.best["score"]
    if is_best:
        run.best = {"epoch": run.epoch, "score": score, "map_macro": val["map_macro"],
                    "val_loss": val["val_loss"]}
    save_training_state(run, best=is_best)
    if D.is_primary():
        write_metric_logs(run.out_dir, run.history, run.taxonomy.labels)
        if run.tb is not None:
            for key in ("train_loss", "train_consistency_kl", "val_loss", "map_macro", "map_micro",
                        "detection_roc_auc", "lr"):
                if row.get(key) is not None:
                    run.tb.add_scalar(key, row[key], run.epoch)
            run.tb.flush()


def _calibrate(run: _Run, logits: np.ndarray, targets: np.ndarray, mask: np.ndarray) -> dict:
    labels = run.taxonomy.labels
    out: dict[str, Any] = {"method": run.config.eval.calibration, "fitted_on": run.config.train.val_split,
                           "temperature": 1.0, "label": DETECTION_LABEL}
    if run.config.eval.calibration == "none":
        return out
    per_label = {}
    for j, name in enumerate(labels):
        t, m = targets[:, j], mask[:, j] > 0
        if m.sum() and 0 < t[m].sum() < m.sum():
            per_label[name] = fit_temperature(logits[:, j], t, mask=m).temperature
    out["per_label"] = per_label
    if DETECTION_LABEL not in labels:
        out["note"] = f"no {DETECTION_LABEL!r} output: temperature left at 1"
        return out
    j = labels.index(DETECTION_LABEL)
    try:
        fit = fit_temperature(logits[:, j], targets[:, j], mask=mask[:, j])
    except InputError as exc:
        warnings.warn(f"temperature scaling skipped: {exc}", MusicBrainWarning, stacklevel=2)
        out["note"] = f"not fitted: {exc}"
        return out
    if fit.at_bound:
        warnings.warn(
            f"temperature {fit.temperature:.3g} hit its search bound: validation set too small "
            "or perfectly separated; calibration is unreliable", MusicBrainWarning, stacklevel=2)
    out.update(fit.to_dict())
    return out


def _finish(run: _Run, request: TrainRequest) -> dict:
    """Rank 0: best weights -> temperature scaling -> exported model directory."""
    best_path = run.out_dir / "checkpoints" / "best.safetensors"
    tensors, meta = read_state(best_path)
    model = run.bare   # training is over: reuse it for the best weights (no rebuild)
    model.load_state_dict(split_prefix(tensors, "model."), strict=True)
    model.eval()
    raw = _validate(run, model=model)
    logits, targets, mask = raw.pop("_arrays")
    calibration = _calibrate(run, logits, targets, mask)
    final = evaluate_outputs(logits, targets, mask, run.taxonomy,
                             threshold=run.config.eval.operating_threshold,
                             temperature=calibration["temperature"])
    final.update({"split": run.config.train.val_split, "epoch": meta["best"]["epoch"]})
    summary = {"out_dir": str(run.out_dir), "epochs": run.epoch, "global_step": run.global_step,
               "best_epoch": meta["best"]["epoch"], "metrics": final,
               "calibration": calibration, "model_dir": None}
    if request.export:
        summary["model_dir"] = str(export_model(run, model, final, calibration))
    return summary


def export_model(run: _Run, model: torch.nn.Module, final: dict, calibration: dict) -> Path:
    from musicbrain_cli import __version__
    from musicbrain_cli.model.checkpoint import save_checkpoint

    card = {
        "name": f"musicbrain-{run.model_config.backbone}",
        "version": __version__,
        "training_data": run.source.describe(),
        "metrics": final,
        "calibration": calibration,
        "thresholds": {"detection": run.config.eval.operating_threshold},
        "intended_use": ("Screening music for AI generation and attributing style, as one "
                         "input to an expert's judgement; never as sole evidence."),
        "limitations": ("Metrics are measured on the validation split of the training data "
                        "set; performance on other renderers, generators or recordings is "
                        "unknown until measured with `musicbrain evaluate`."),
        "training": {"config": run.config.to_dict(), "epochs": run.epoch,
                     "global_step": run.global_step, "world_size": D.world_size(),
                     "device": run.device.type, "precision": run.precision,
                     "init_from_weights_sha256": run.init_sha256,
                     "init_from_new_labels": run.init_new_labels},
    }
    directory = run.out_dir / "model"
    save_checkpoint(directory, model, run.model_config, model_card=json.loads(dumps(card)),
                    extra_config={"training": run.config.to_dict()})
    return directory


def run_worker(request: TrainRequest) -> dict | None:
    """One rank's whole run. Returns the summary on rank 0, ``None`` on the others."""
    info = D.env_info()
    device = resolve_device(request.device)
    if device.type == "cuda":
        device = torch.device("cuda", info.local_rank)
    D.init(device)
    try:
        if D.launched_externally() and not request.resume and D.is_primary():
            check_out_dir(Path(request.out_dir), resume=False)
        D.barrier()
        if D.launched_externally():
            if D.is_primary():
                request.source.prepare()
            D.barrier()
        run = _setup(request, info)
        progress = request.progress if D.is_primary() else NULL_PROGRESS
        last = Path(request.out_dir) / "checkpoints" / "last.safetensors"
        if request.resume:
            load_training_state(run, last)
        if D.is_primary():      # a resume may train longer: the record says what ran
            write_resolved_config(run.out_dir, run.config)
            if request.resume:
                # the logs follow the checkpoint at an epoch end: a run stopped in between
                # holds an epoch its logs lack, and a resume with no epoch left to train (the
                # last one's) never wrote them again
                write_metric_logs(run.out_dir, run.history, run.taxonomy.labels)
        if D.is_primary():
            run.tb = _tensorboard(run.out_dir)
        try:
            while run.epoch < run.config.train.epochs:
                start = time.perf_counter()
                train_loss, samples, consistency = _train_epoch(run, progress)
                _epoch_end(run, train_loss, samples, time.perf_counter() - start,
                           consistency=consistency)
        except StopRequested:
            return {"stopped": True, "global_step": run.global_step} if D.is_primary() else None
        finally:
            if run.tb is not None:
                run.tb.close()
        D.barrier()
        summary = _finish(run, request) if D.is_primary() else None
        D.barrier()
        return summary
    finally:
        D.cleanup()


def _tensorboard(out_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(out_dir / "tensorboard"))


def write_resolved_config(out_dir: Path, config: TrainConfig) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    _atomic_text(out_dir / "config.resolved.yaml", config.to_yaml())
    _atomic_text(out_dir / "config.resolved.json", dumps(config.to_dict(), indent=2) + "\n")


# --- the entry point ----------------------------------------------------------------------


def _finalized(model_dir: Path) -> bool:
    """Whether ``model_dir`` holds an exported model whose card was finalized: it has the
    verdict rule :func:`~musicbrain_cli.training.finalize.finalize_model` writes (the export
    writes none; ``finalized_on``, which a full finalize removes, was never a marker)."""
    from musicbrain_cli.files import sha256_file

    try:
        card = json.loads((model_dir / "model_card.json").read_text(encoding="utf-8"))
        if not (isinstance(card, dict) and isinstance(card.get("verdict"), dict)):
            return False
        # and it vouches for the weights beside it: an export stopped after writing new
        # weights, before their card, left a finalized card of other weights
        return card.get("weights_sha256") == sha256_file(model_dir / "model.safetensors")
    except (OSError, ValueError):
        return False


#: The run folder's advisory lock (:func:`musicbrain_cli.files.folder_lock`): one training
#: process writes a run folder at a time. Two at once (the same command started twice, a
#: re-queued job resuming beside the one still running) each passed the checks and then
#: overwrote each other's checkpoints and logs. The file stays; a new run ignores it.
RUN_LOCK = ".musicbrain-train.lock"


def check_out_dir(out_dir: Path, *, resume: bool) -> None:
    """A new run needs an empty or missing folder; a resumed one needs its last checkpoint."""
    if resume:
        if not (out_dir / "checkpoints" / "last.safetensors").is_file():
            raise InputError(
                f"cannot resume {str(out_dir)!r}: no checkpoints/last.safetensors (a run stopped "
                "before its first checkpoint has nothing to resume: remove the folder, or choose "
                "a new one, and start again)")
        return
    if out_dir.exists() and (not out_dir.is_dir()
                             or any(p.name != RUN_LOCK for p in out_dir.iterdir())):
        raise InputError(
            f"run directory {str(out_dir)!r} is not empty; choose a new one or pass --resume"
        )


@contextlib.contextmanager
def _preserve_process_state() -> Iterator[None]:
    """An in-process run must not leave the caller's RNGs or torch flags changed."""
    rng = capture_rng()
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    threads = torch.get_num_threads()
    try:
        yield
    finally:
        restore_rng(*rng)
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
        torch.set_num_threads(threads)


def train(data: str | Path | DataSource, out_dir: str | Path, *,
          config: TrainConfig | None = None, resume: bool = False, device: str = "auto",
          nproc_per_node: int | None = None, nnodes: int = 1, node_rank: int = 0,
          rdzv_endpoint: str | None = None, progress: Progress = NULL_PROGRESS,
          export: bool = True) -> dict:
    """Train a model on ``data`` into ``out_dir``; returns the run summary (rank 0).

    ``config`` defaults to the packaged recipe; on ``resume`` it defaults to the run's own
    (and, if given, must match it apart from epochs/workers/stop hook). One process runs
    in-process; several are started by torch elastic. Inside an external ``torchrun`` each
    process runs its own rank directly.

    The run folder is locked (:data:`RUN_LOCK`) while the run lasts, by the process that
    launches node 0's workers; a folder another run holds is refused at once.
    """
    args = dict(config=config, resume=resume, device=device, nproc_per_node=nproc_per_node,
                nnodes=nnodes, node_rank=node_rank, rdzv_endpoint=rdzv_endpoint,
                progress=progress, export=export)
    out = Path(out_dir)
    if D.launched_externally() or node_rank != 0:
        return _train(data, out, **args)    # only rank 0 of node 0 writes the folder
    from musicbrain_cli.files import folder_lock

    check_out_dir(out, resume=resume)       # before anything is written
    out.mkdir(parents=True, exist_ok=True)
    with folder_lock(out, name=RUN_LOCK, holder="training run"):
        return _train(data, out, **args)     # which checks the folder again, locked


def _train(data: str | Path | DataSource, out: Path, *, config: TrainConfig | None,
           resume: bool, device: str, nproc_per_node: int | None, nnodes: int,
           node_rank: int, rdzv_endpoint: str | None, progress: Progress,
           export: bool) -> dict:
    if resume:
        check_out_dir(out, resume=True)
        _, meta = read_state(out / "checkpoints" / "last.safetensors")
        saved = TrainConfig.from_dict(meta["config"])
        if config is None:
            config = saved
            config.train.stop_after_steps = None   # a test hook, never inherited
        else:
            diffs = config_differences(saved.to_dict(), config.to_dict())
            if diffs:
                raise TrainingError(f"cannot resume {str(out)!r} with a different config: {diffs}")
        if (meta["epoch"] >= config.train.epochs and not meta.get("step_in_epoch")
                and _finalized(out / "model")):
            # Nothing is left to train: a rerun would only export and finalize the model
            # again, replacing RUN/model and whatever was added to its card since. (A run
            # stopped after its last epoch but before its model was finalized resumes into
            # the export and finalize it still lacks.)
            raise TrainingError(
                f"cannot resume {str(out)!r}: it finished all {meta['epoch']} epoch(s) of its "
                f"recipe; its model is {str(out / 'model')!r}. To train longer, resume with a "
                "config whose train.epochs is larger (the model is then exported again)")
    elif config is None:
        from musicbrain_cli.training.config import load_config

        config = load_config()
    dev = resolve_device(device)
    # The recipe's precision on this device (bf16 on a card without it, the client's Turing
    # RTX 5000s; fp16 on the CPU), before the feature cache is built (minutes to hours) and
    # workers start: it was refused only by each worker, after both.
    resolve_precision(config.train.precision, dev)
    source = as_source(data, config)
    request = TrainRequest(source=source, out_dir=str(out), config=config.to_dict(),
                           resume=resume, device=device, progress=progress, export=export)
    if D.launched_externally():
        return run_worker(request)
    if not resume:
        check_out_dir(out, resume=False)
    if nproc_per_node is None:
        nproc_per_node = torch.cuda.device_count() if dev.type == "cuda" else 1
    config.micro_batch(nproc_per_node * nnodes)   # fail before launching anything
    source.prepare(progress=progress)
    if nproc_per_node == 1 and nnodes == 1:
        with _preserve_process_state():
            return run_worker(request)
    results = D.launch(_launched_worker, request, nproc_per_node=nproc_per_node,
                       nnodes=nnodes, node_rank=node_rank, rdzv_endpoint=rdzv_endpoint)
    return next((v for v in results.values() if v is not None), {})


def _launched_worker(request: TrainRequest) -> dict | None:
    """Entry point of each spawned worker (module level: it is pickled by reference).

    ``record`` writes the worker's exception to torch elastic's error file, so the launcher
    can quote it in the :class:`TrainingError` it raises.
    """
    from torch.distributed.elastic.multiprocessing.errors import record

    return record(run_worker)(request)
