"""Training state as data (STYLE.md rule 5): seeding and RNG capture, and checkpoints as one
safetensors file (tensors) plus a JSON header (everything else), never a pickle.

Split out of :mod:`musicbrain_cli.training.trainer` (issue 25), which re-exports its names.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from musicbrain_cli.errors import TrainingError

STATE_FORMAT = "musicbrain-train-state"
STATE_VERSION = 1
#: safetensors header key that holds the JSON part of a training checkpoint.
STATE_METADATA_KEY = "musicbrain_train_state"
#: Config keys that may differ between a run and its resumption (they change no result).
RUNTIME_KEYS = {("train", "stop_after_steps"), ("train", "num_workers"), ("train", "epochs")}


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

    from musicbrain_cli.files import atomic_write

    path.parent.mkdir(parents=True, exist_ok=True)
    header = {"format": STATE_FORMAT, "version": STATE_VERSION, **meta}
    # through the project's atomic writer: fsynced, and the umask's mode rather than
    # mkstemp's owner-only 0600 (review of session 45)
    atomic_write(path, lambda tmp: save_file(dict(tensors), str(tmp),
                                             metadata={STATE_METADATA_KEY: dumps(header)}))


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
