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

Loss: BCE-with-logits over the *known* labels only (mask from ``Taxonomy.encode``), averaged
over the known entries of the global micro-batch: each rank divides its masked sum by the
all-reduced count and multiplies by the world size, which DDP's gradient averaging divides
back out, so N ranks compute the same gradient as one rank on the whole batch.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import random
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from musicbrain_cli import metrics as M
from musicbrain_cli.calibration import apply_temperature, fit_temperature
from musicbrain_cli.errors import ConfigError, InputError, TrainingError
from musicbrain_cli.progress import NULL_PROGRESS, Progress
from musicbrain_cli.taxonomy import DETECTION_LABEL, Taxonomy
from musicbrain_cli.training import distributed as D
from musicbrain_cli.training.config import AugmentConfig, ScheduleConfig, TrainConfig

STATE_FORMAT = "musicbrain-train-state"
STATE_VERSION = 1
#: safetensors header key that holds the JSON part of a training checkpoint.
STATE_METADATA_KEY = "musicbrain_train_state"
#: Config keys that may differ between a run and its resumption (they change no result).
RUNTIME_KEYS = {("train", "stop_after_steps"), ("train", "num_workers"), ("train", "epochs")}


# --- data sources -------------------------------------------------------------------------


class DataSource(Protocol):
    """What the trainer needs from a data set; must be picklable (workers are spawned).

    ``open(split)`` returns a map-style dataset of ``(features [1, F, T] float32,
    targets [L] float32, mask [L] float32)``.
    """

    def prepare(self, *, progress: Progress = NULL_PROGRESS) -> None: ...
    def taxonomy(self) -> Taxonomy: ...
    def front_end(self) -> dict: ...
    def open(self, split: str) -> Dataset: ...
    def describe(self) -> dict: ...


@dataclass(frozen=True)
class CacheSource:
    """A MusicBrain data set folder and its front-end feature cache (training/cache.py).

    ``prepare`` (main process, before workers start) builds the cache when it is missing or
    was made from another manifest: the same work as ``musicbrain data cache DATASET``.
    Workers only open it. ``front_end_config`` (the training config's ``model.front_end``)
    picks the front end; the default front end otherwise.
    """

    root: str
    front_end_config: dict | None = None

    def _frontend(self):
        from musicbrain_cli.features import FrontEndConfig

        return (FrontEndConfig.from_dict(self.front_end_config)
                if self.front_end_config else FrontEndConfig())

    def cache_dir(self) -> Path:
        from musicbrain_cli.training.cache import default_cache_dir

        return default_cache_dir(self.root, self._frontend())

    def _index(self) -> dict | None:
        path = self.cache_dir() / "index.json"
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return None

    def prepare(self, *, progress: Progress = NULL_PROGRESS) -> None:
        from musicbrain_cli.files import sha256_file
        from musicbrain_cli.training.cache import build_cache
        from musicbrain_cli.training.dataset import MANIFEST

        index = self._index()
        manifest = Path(self.root) / MANIFEST
        if not manifest.is_file():
            raise InputError(f"{self.root!r} is not a MusicBrain data set (no {MANIFEST})")
        current = sha256_file(manifest)
        if index is None or index.get("manifest_sha256") != current:
            # Resumable: finished shards are kept (cache.py).
            build_cache(self.root, self._frontend(), progress=progress)

    def taxonomy(self) -> Taxonomy:
        index = self._index()
        if index is None:
            raise TrainingError(
                f"no feature cache in {str(self.cache_dir())!r}: run "
                f"`musicbrain data cache {self.root}` first"
            )
        return Taxonomy.from_dict(index["taxonomy"])

    def front_end(self) -> dict:
        return self._frontend().to_dict()

    def open(self, split: str) -> Dataset:
        from musicbrain_cli.training.cache import CachedWindows

        return CachedWindows(self.cache_dir(), split=split)

    def describe(self) -> dict:
        index = self._index() or {}
        windows = index.get("windows", [])
        per_split: dict[str, int] = {}
        for w in windows:
            per_split[w["split"]] = per_split.get(w["split"], 0) + 1
        return {"path": str(Path(self.root).resolve()),
                "manifest_sha256": index.get("manifest_sha256"),
                "feature_cache": index.get("config_hash"), "windows_per_split": per_split}


@dataclass(frozen=True)
class SyntheticSource:
    """Seeded synthetic spectrograms with learnable labels, for tests and benchmarks.

    Each positive label ``j`` lights a horizontal band (row ``(3 j + 1) mod F``) over random
    noise, so a model can learn every label; one group in four is left unknown (masked) in
    a quarter of the samples to exercise the masked loss.
    """

    n_train: int = 16
    n_val: int = 8
    n_bins: int = 32
    n_frames: int = 64
    seed: int = 0
    groups: tuple = (("source", ("human", "ai"), True), ("period", ("Baroque", "Classical"), True))

    def prepare(self, *, progress: Progress = NULL_PROGRESS) -> None:
        pass

    def taxonomy(self) -> Taxonomy:
        return Taxonomy.from_groups(self.groups)

    def front_end(self) -> dict:
        from musicbrain_cli.features import FrontEndConfig

        # A front end whose window is exactly n_bins x n_frames: 1 s at 100 frames/s-ish.
        hop = 100
        return FrontEndConfig(sample_rate=hop * self.n_frames, hop_length=hop, n_fft=256,
                              n_bins=self.n_bins, f_min=20.0, f_max=hop * self.n_frames / 2,
                              window_s=1.0, hop_s=0.5).to_dict()

    def open(self, split: str) -> Dataset:
        n, offset = {"train": (self.n_train, 0), "val": (self.n_val, 10**6),
                     "test": (self.n_val, 2 * 10**6)}[split]
        tax = self.taxonomy()
        feats = np.empty((n, 1, self.n_bins, self.n_frames), np.float32)
        targets = np.zeros((n, tax.num_labels), np.float32)
        masks = np.ones((n, tax.num_labels), np.float32)
        slices = list(tax.group_slices().values())
        for i in range(n):
            rng = np.random.default_rng([self.seed, offset + i])
            feats[i, 0] = rng.normal(-0.5, 0.1, (self.n_bins, self.n_frames))
            for g, sl in zip(tax.groups, slices):
                j = sl.start + int(rng.integers(len(g.labels)))
                targets[i, j] = 1.0
                if g.name != "source" and rng.random() < 0.25:
                    masks[i, sl] = 0.0
                    continue
                feats[i, 0, (3 * j + 1) % self.n_bins] += 0.6
        return torch.utils.data.TensorDataset(torch.from_numpy(feats), torch.from_numpy(targets),
                                              torch.from_numpy(masks))

    def describe(self) -> dict:
        return {"synthetic": True, "n_train": self.n_train, "n_val": self.n_val,
                "shape": [1, self.n_bins, self.n_frames], "seed": self.seed}


def as_source(data: str | Path | DataSource, config: TrainConfig) -> DataSource:
    if isinstance(data, (str, Path)):
        if not Path(data).is_dir():
            raise InputError(f"data set {str(data)!r} is not a directory")
        return CacheSource(str(data), front_end_config=config.model.get("front_end"))
    return data


# --- augmentation -------------------------------------------------------------------------


class AugmentedWindows(Dataset):
    """Wraps a windows dataset and augments each item on the fly (see ``AugmentConfig``).

    The generator of item ``i`` in epoch ``e`` is ``default_rng([seed, e, i])``: the same
    augmentation whichever rank or loader worker draws it, and after any resume.
    Call :meth:`set_epoch` before iterating (like ``DistributedSampler.set_epoch``).
    """

    def __init__(self, base: Dataset, config: AugmentConfig, front_end: Mapping[str, Any], *,
                 seed: int):
        self.base, self.config, self.seed, self.epoch = base, config, seed, 0
        from musicbrain_cli.features import FrontEndConfig, bin_frequencies

        fe = FrontEndConfig.from_dict(front_end)
        # Map units <-> dB (features.py: map = (dB + db_offset) / db_scale - 1).
        self.db_scale, self.db_offset = float(fe.db_scale), float(fe.db_offset)
        self.floor = fe.silence_level
        self.bin_hz = bin_frequencies(fe) if config.pitch_semitones > 0 else None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int):
        x, y, m = self.base[index]
        if self.config.enabled:
            x = augment(x, self.config, np.random.default_rng([self.seed, self.epoch, index]),
                        db_scale=self.db_scale, db_offset=self.db_offset, floor=self.floor,
                        bin_hz=self.bin_hz)
        return x, y, m


def pitch_warp(x: torch.Tensor, bin_hz: np.ndarray, semitones: float, floor: float) -> torch.Tensor:
    """Warp a map ``[C, F, T]`` along frequency as a pitch shift by ``semitones`` would: the
    bin at ``f`` takes the (linearly interpolated) value at ``f / 2**(semitones / 12)``;
    bins whose source lies outside the map get ``floor``."""
    bin_hz = np.asarray(bin_hz, dtype=np.float64)
    if bin_hz.shape != (x.shape[-2],):
        raise ValueError(f"need one frequency per bin ({x.shape[-2]}), got {bin_hz.shape}")
    source = bin_hz / 2.0 ** (semitones / 12.0)
    pos = np.interp(source, bin_hz, np.arange(len(bin_hz), dtype=np.float64))
    inside = (source >= bin_hz[0]) & (source <= bin_hz[-1])
    lo = np.clip(np.floor(pos).astype(int), 0, len(bin_hz) - 1)
    hi = np.clip(lo + 1, 0, len(bin_hz) - 1)
    w = torch.from_numpy((pos - lo).astype(np.float32))[:, None]
    out = x[..., lo, :] * (1 - w) + x[..., hi, :] * w
    out[..., torch.from_numpy(~inside), :] = floor
    return out


def augment(x: torch.Tensor, c: AugmentConfig, rng: np.random.Generator, *, db_scale: float,
            db_offset: float, floor: float, bin_hz: np.ndarray | None = None) -> torch.Tensor:
    """One window ``[1, F, T]`` (map units) -> an augmented copy. ``x`` is not modified.

    ``bin_hz`` (the bins' centre frequencies) is needed when ``c.pitch_semitones`` > 0; the
    pitch draw comes first and only then, so other configs keep their random streams.
    """
    x = x.float().clone()
    _, n_bins, n_frames = x.shape
    if c.pitch_semitones > 0:
        if bin_hz is None:
            raise ValueError("pitch-shift augmentation needs the bins' frequencies (bin_hz)")
        x = pitch_warp(x, bin_hz, float(rng.uniform(-c.pitch_semitones, c.pitch_semitones)),
                       floor)
    offset = rng.uniform(-c.gain_db, c.gain_db) / db_scale
    if c.eq_db > 0:
        nodes = rng.uniform(-c.eq_db, c.eq_db, c.eq_nodes) / db_scale
        curve = np.interp(np.linspace(0, 1, n_bins), np.linspace(0, 1, c.eq_nodes), nodes)
        x += torch.from_numpy(curve.astype(np.float32))[None, :, None]
    x += float(offset)
    if c.noise_prob > 0 and rng.random() < c.noise_prob:
        db = (x.double() + 1) * db_scale - db_offset
        power = torch.pow(10.0, db / 10)
        snr = rng.uniform(*c.noise_snr_db)
        noise = torch.from_numpy(rng.exponential(1.0, x.shape)) * power.mean() * 10 ** (-snr / 10)
        db = 10 * torch.log10(power + noise)
        x = ((db + db_offset) / db_scale - 1).float()
    x = x.clamp_min(floor)  # the front end floors power at amin: stay in its range
    fill = float(x.mean())
    for _ in range(c.time_masks):
        width = int(rng.integers(0, int(c.time_mask_frac * n_frames) + 1))
        start = int(rng.integers(0, n_frames - width + 1))
        x[:, :, start:start + width] = fill
    for _ in range(c.freq_masks):
        width = int(rng.integers(0, int(c.freq_mask_frac * n_bins) + 1))
        start = int(rng.integers(0, n_bins - width + 1))
        x[:, start:start + width, :] = fill
    return x


class ResumableSampler(DistributedSampler):
    """``DistributedSampler`` that can skip the first ``start`` samples of the current epoch."""

    def __init__(self, dataset, *, num_replicas: int, rank: int, shuffle: bool, seed: int):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle,
                         seed=seed, drop_last=False)
        self.start = 0

    def __iter__(self) -> Iterator[int]:
        return iter(list(super().__iter__())[self.start:])

    def __len__(self) -> int:
        return self.num_samples - self.start


# --- loss, schedule, precision ------------------------------------------------------------


def masked_bce_sum(logits: torch.Tensor, targets: torch.Tensor,
                   mask: torch.Tensor) -> torch.Tensor:
    """Sum over known entries of BCE-with-logits (float32 whatever the autocast dtype)."""
    loss = F.binary_cross_entropy_with_logits(logits.float(), targets.float(), reduction="none")
    return (loss * mask.float()).sum()


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


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto``: bf16 where the GPU supports it, fp16 (+GradScaler) otherwise, fp32 on CPU."""
    if precision == "auto":
        if device.type != "cuda":
            return "fp32"
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError("precision fp16 needs a CUDA device; use fp32 or bf16 on CPU")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError(f"this GPU ({torch.cuda.get_device_name(device)}) has no bf16; use fp16")
    return precision


def _autocast(precision: str, device: torch.device):
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


# --- seeding and RNG state ----------------------------------------------------------------


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def capture_rng() -> tuple[dict[str, np.ndarray], dict]:
    """This process's RNG states: uint8 arrays (tensors in the checkpoint) + JSON."""
    arrays = {"torch": torch.get_rng_state().numpy().copy()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        arrays["cuda"] = torch.cuda.get_rng_state().numpy().copy()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    arrays["numpy"] = np.asarray(keys, dtype=np.uint32).view(np.uint8).copy()
    version, state, gauss = random.getstate()
    meta = {"python": [version, list(state), gauss],
            "numpy": [kind, int(pos), int(has_gauss), float(cached)]}
    return arrays, meta


def restore_rng(arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
    torch.set_rng_state(torch.from_numpy(np.array(arrays["torch"], dtype=np.uint8)))
    if "cuda" in arrays and torch.cuda.is_available():
        torch.cuda.set_rng_state(torch.from_numpy(np.array(arrays["cuda"], dtype=np.uint8)))
    kind, pos, has_gauss, cached = meta["numpy"]
    keys = np.array(arrays["numpy"], dtype=np.uint8).view(np.uint32)
    np.random.set_state((kind, keys, pos, has_gauss, cached))
    version, state, gauss = meta["python"]
    random.setstate((version, tuple(state), gauss))


# --- training state as data ---------------------------------------------------------------


def _json_safe(obj: Any) -> Any:
    """Tuples -> lists, non-finite floats -> tagged strings (strict JSON has no Infinity)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return {"__float__": repr(obj)}
    if isinstance(obj, Mapping):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer)):
        return _json_safe(obj.item())
    return obj


def _json_restore(obj: Any) -> Any:
    if isinstance(obj, dict):
        if set(obj) == {"__float__"}:
            return float(obj["__float__"])
        return {k: _json_restore(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_json_restore(v) for v in obj]
    return obj


def dumps(obj: Any, **kwargs) -> str:
    return json.dumps(_json_safe(obj), allow_nan=False, **kwargs)


def flatten_optimizer(state: Mapping[str, Any]) -> tuple[dict[str, torch.Tensor], dict]:
    """An optimiser ``state_dict`` -> (tensors named ``<param id>.<key>``, JSON rest)."""
    tensors, scalars = {}, {}
    for pid, entries in state["state"].items():
        for key, value in entries.items():
            if torch.is_tensor(value):
                tensors[f"{pid}.{key}"] = value.detach().cpu().contiguous().clone()
            else:
                scalars.setdefault(str(pid), {})[key] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def unflatten_optimizer(tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any],
                        template: Mapping[str, Any]) -> dict:
    """The inverse of :func:`flatten_optimizer`; ``template`` (the live optimiser's
    ``state_dict()``) restores tuple-typed group values such as Adam's ``betas``."""
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        pid, key = name.split(".", 1)
        state.setdefault(int(pid), {})[key] = value
    for pid, entries in meta["scalars"].items():
        state.setdefault(int(pid), {}).update(entries)
    groups = []
    for saved, live in zip(meta["param_groups"], template["param_groups"]):
        group = dict(saved)
        for key, value in live.items():
            if isinstance(value, tuple) and isinstance(group.get(key), list):
                group[key] = tuple(group[key])
        groups.append(group)
    if len(groups) != len(template["param_groups"]):
        raise TrainingError(
            f"checkpoint has {len(meta['param_groups'])} parameter groups, the optimiser "
            f"{len(template['param_groups'])}"
        )
    return {"state": state, "param_groups": groups}


def write_state(path: Path, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> None:
    """Atomically write a training checkpoint: temp file in the same folder, fsync, rename."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    header = {"format": STATE_FORMAT, "version": STATE_VERSION, **meta}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(dict(tensors), tmp, metadata={STATE_METADATA_KEY: dumps(header)})
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_state(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Read a checkpoint written by :func:`write_state` (no unpickling anywhere)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file, safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            raw = (fh.metadata() or {}).get(STATE_METADATA_KEY)
        tensors = load_file(str(path))
    except (OSError, SafetensorError) as exc:
        raise TrainingError(f"cannot read training checkpoint {str(path)!r}: {exc}") from exc
    if raw is None:
        raise TrainingError(f"{str(path)!r} is not a MusicBrain training checkpoint")
    try:
        meta = _json_restore(json.loads(raw))
    except json.JSONDecodeError as exc:
        raise TrainingError(f"corrupt metadata in {str(path)!r}: {exc}") from exc
    if meta.get("format") != STATE_FORMAT or meta.get("version") != STATE_VERSION:
        raise TrainingError(
            f"{str(path)!r} has format {meta.get('format')!r} v{meta.get('version')!r}; "
            f"expected {STATE_FORMAT!r} v{STATE_VERSION}"
        )
    return tensors, meta


def split_prefix(tensors: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def config_differences(a: Mapping[str, Any], b: Mapping[str, Any], *,
                       ignore: set[tuple[str, ...]] = RUNTIME_KEYS) -> list[str]:
    """Dotted keys whose values differ between two resolved config dicts."""
    out: list[str] = []

    def walk(x: Any, y: Any, path: tuple[str, ...]) -> None:
        if path in ignore:
            return
        if isinstance(x, Mapping) and isinstance(y, Mapping):
            for key in sorted(set(x) | set(y)):
                walk(x.get(key), y.get(key), path + (key,))
        elif x != y:
            out.append(".".join(path))

    walk(a, b, ())
    return out


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
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


SCALAR_COLUMNS = ("epoch", "global_step", "lr", "train_loss", "val_loss", "map_macro",
                  "map_micro", "detection_roc_auc", "detection_tpr", "detection_fpr",
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
    #: This rank's running (masked BCE sum, known labels, samples) of the current epoch.
    epoch_acc: torch.Tensor = field(default_factory=lambda: torch.zeros(3, dtype=torch.float64))

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
    state = model.state_dict()
    for key, value in source.state_dict().items():
        group = key.split(".")[1] if key.startswith("heads.") else None
        if group is None:
            state[key].copy_(value)   # same network: every non-head tensor has the same shape
            continue
        rows_old = [g for g in old.groups if g.name == group][0].labels
        rows_new = [g for g in new.groups if g.name == group][0].labels
        for i, label in enumerate(rows_old):
            state[key][rows_new.index(label)].copy_(value[i])
    model.load_state_dict(state, strict=True)
    return str(card["weights_sha256"])


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
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    source = request.source
    taxonomy = source.taxonomy()
    # Identical initial weights on every rank and for every world size: build under the
    # bare seed, then give each rank its own stream for dropout (nanoGPT: seed + rank).
    seed_everything(config.seed)
    model, model_config = _build_model(config, source, taxonomy)
    init_sha256 = (init_weights(model, model_config, config.train.init_from,
                                labels=config.train.init_labels)
                   if config.train.init_from else None)
    seed_everything(config.seed + info.rank)
    model.to(device)
    config.micro_batch(info.world_size)   # the batch arithmetic must divide exactly
    train_set = AugmentedWindows(source.open(config.train.train_split), config.augment,
                                 source.front_end(), seed=config.seed)
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
        init_sha256=init_sha256,
    )


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


def load_training_state(run: _Run, path: Path) -> None:
    tensors, meta = read_state(path)
    diffs = config_differences(meta["config"], run.config.to_dict())
    if diffs:
        raise TrainingError(f"cannot resume {str(path)!r}: the config differs in {diffs}")
    try:
        run.bare.load_state_dict(split_prefix(tensors, "model."), strict=True)
    except RuntimeError as exc:
        raise TrainingError(f"checkpoint {str(path)!r} does not fit the model: {exc}") from exc
    run.optimizer.load_state_dict(unflatten_optimizer(
        split_prefix(tensors, "optim."), meta["optimizer"], run.optimizer.state_dict()))
    run.schedule.load_state_dict(meta["scheduler"])
    if meta["scaler"]:
        run.scaler.load_state_dict(meta["scaler"])
    run.epoch, run.global_step = int(meta["epoch"]), int(meta["global_step"])
    run.history, run.best = list(meta["history"]), dict(meta["best"])
    if D.is_primary():   # the other ranks start from 0: the epoch's all-reduce adds them up
        run.epoch_acc = torch.tensor(meta["epoch_partial"], dtype=torch.float64)
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
            stacklevel=2,
        )
        seed_everything(run.config.seed + 7919 * (run.global_step + 1) + D.rank())


def _train_epoch(run: _Run, progress: Progress) -> tuple[float, int]:
    """One epoch (or its remainder after a resume). Returns (mean train loss, samples)."""
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
                x, y, m = (t.to(run.device, non_blocking=True) for t in next(batches))
                known = D.all_reduce_sum(m.sum().double().cpu()).item()
                sync = j == window - 1 or not D.is_distributed()
                ctx = contextlib.nullcontext() if sync else run.model.no_sync()
                with ctx:
                    with _autocast(run.precision, run.device):
                        logits = run.model(x)
                    total = masked_bce_sum(logits, y, m)
                    loss = total * world / max(known, 1.0) / window
                    if not torch.isfinite(loss) and not run.scaler.is_enabled():
                        raise TrainingError(
                            f"loss is {loss.item()} at epoch {run.epoch + 1}, step {step + 1}"
                        )
                    run.scaler.scale(loss).backward()
                run.epoch_acc += torch.tensor([total.item(), float(m.sum().item()), x.shape[0]],
                                              dtype=torch.float64)
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
    run.epoch_acc = torch.zeros(3, dtype=torch.float64)
    return float(total[0] / max(total[1].item(), 1.0)), int(total[2].item())


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


def _epoch_end(run: _Run, train_loss: float, samples: int, seconds: float) -> None:
    val = _validate(run)
    val.pop("_arrays")
    lr_used = run.schedule.lr
    run.schedule.step(val["val_loss"])
    run.epoch += 1
    run.step_in_epoch = 0
    row = _flat_history_row(run.epoch, run.global_step, lr_used, train_loss, val, seconds, samples)
    row["lr_next"] = run.schedule.lr
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
            for key in ("train_loss", "val_loss", "map_macro", "map_micro", "detection_roc_auc", "lr"):
                if row.get(key) is not None:
                    run.tb.add_scalar(key, row[key], run.epoch)
            run.tb.flush()


def _calibrate(run: _Run, logits: np.ndarray, targets: np.ndarray, mask: np.ndarray) -> dict:
    labels = run.taxonomy.labels
    out: dict[str, Any] = {"method": run.config.eval.calibration, "fitted_on": "val",
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
        warnings.warn(f"temperature scaling skipped: {exc}", stacklevel=2)
        out["note"] = f"not fitted: {exc}"
        return out
    if fit.at_bound:
        warnings.warn(
            f"temperature {fit.temperature:.3g} hit its search bound: validation set too small "
            "or perfectly separated; calibration is unreliable", stacklevel=2)
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
                     "init_from_new_labels": (new_labels(run.model_config,
                                                         run.config.train.init_from)
                                              if run.config.train.init_from else [])},
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
        elif D.is_primary():
            write_resolved_config(run.out_dir, run.config)
        if D.is_primary():
            run.tb = _tensorboard(run.out_dir)
        try:
            while run.epoch < run.config.train.epochs:
                start = time.perf_counter()
                train_loss, samples = _train_epoch(run, progress)
                _epoch_end(run, train_loss, samples, time.perf_counter() - start)
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


def check_out_dir(out_dir: Path, *, resume: bool) -> None:
    """A new run needs an empty or missing folder; a resumed one needs its last checkpoint."""
    if resume:
        if not (out_dir / "checkpoints" / "last.safetensors").is_file():
            raise InputError(f"cannot resume {str(out_dir)!r}: no checkpoints/last.safetensors")
        return
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise InputError(
            f"run directory {str(out_dir)!r} is not empty; choose a new one or pass --resume"
        )


@contextlib.contextmanager
def _preserve_process_state() -> Iterator[None]:
    """An in-process run must not leave the caller's RNGs or torch flags changed."""
    rng = capture_rng()
    deterministic = torch.are_deterministic_algorithms_enabled()
    threads = torch.get_num_threads()
    try:
        yield
    finally:
        restore_rng(*rng)
        torch.use_deterministic_algorithms(deterministic)
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
    """
    out = Path(out_dir)
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
    elif config is None:
        from musicbrain_cli.training.config import load_config

        config = load_config()
    source = as_source(data, config)
    request = TrainRequest(source=source, out_dir=str(out), config=config.to_dict(),
                           resume=resume, device=device, progress=progress, export=export)
    if D.launched_externally():
        return run_worker(request)
    if not resume:
        check_out_dir(out, resume=False)
    dev = resolve_device(device)
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
