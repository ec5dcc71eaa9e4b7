"""The reference generators' weights on disk: ``<name>.safetensors`` beside ``<name>.json``.

One format for the symbolic generators and the codec (:mod:`.symbolic`, :mod:`.codec`):
float16 tensors (small shipped assets; loaded back as float32, so sampling is the same on
every machine) and a JSON config naming the asset's ``kind`` and the weights' SHA-256, which
loading checks before it trusts the tensors.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from musicbrain_cli.errors import ModelLoadError
from musicbrain_cli.files import atomic_write, sha256_file


def save_weights(state: dict[str, torch.Tensor], directory: str | Path, name: str, *,
                 config: dict) -> Path:
    """Write ``state`` as float16 ``<name>.safetensors`` and ``config`` plus the weights'
    SHA-256 as ``<name>.json``; returns the weights' path."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    weights = directory / f"{name}.safetensors"
    tensors = {k: v.detach().to(torch.float16).contiguous() for k, v in state.items()}
    atomic_write(weights, lambda tmp: save_file(tensors, str(tmp)))
    config = {**config, "weights_sha256": sha256_file(weights)}
    atomic_write(directory / f"{name}.json",
                 json.dumps(config, indent=1, ensure_ascii=False) + "\n")
    return weights


def load_weights(directory: str | Path, name: str, *, kind: str,
                 what: str) -> tuple[dict, dict[str, torch.Tensor]]:
    """``(config, float32 state)`` of an asset written by :func:`save_weights`.

    Raises :class:`ModelLoadError` (naming it ``what``, e.g. "codec") when a file is missing
    or unreadable, the config's ``kind`` is not ``kind``, or the weights' SHA-256 differs
    from the one the config records.
    """
    from safetensors.torch import load_file

    directory = Path(directory)
    cfg_path, weights = directory / f"{name}.json", directory / f"{name}.safetensors"
    try:
        config = json.loads(cfg_path.read_text(encoding="utf-8"))
        if not isinstance(config, dict) or config.get("kind") != kind:
            found = config.get("kind") if isinstance(config, dict) else None
            raise ModelLoadError(f"{str(cfg_path)!r} is not a {what} (kind {found!r})")
        if sha256_file(weights) != config["weights_sha256"]:
            raise ModelLoadError(f"weights {str(weights)!r} do not match the SHA-256 "
                                 f"recorded in {str(cfg_path)!r}")
        state = {k: v.float() for k, v in load_file(str(weights)).items()}
    except ModelLoadError:
        raise
    except (OSError, json.JSONDecodeError, KeyError, TypeError, RuntimeError) as exc:
        raise ModelLoadError(f"cannot load {what} {name!r} from {str(directory)!r}: "
                             f"{exc}") from exc
    return config, state


__all__ = ["save_weights", "load_weights"]
