"""The model stage: architecture, checkpoint I/O, the card, calibration, domain statistics and
inference.

``spec [B, 1, F, T]`` (from :mod:`musicbrain_cli.features`) -> :class:`MusicBrainNet` ->
logits ``[B, L]`` in ``taxonomy.labels`` order. :mod:`.net`, :mod:`.checkpoint` and
:mod:`.inference` import torch/timm; :mod:`.card`, :mod:`.calibration` and :mod:`.ood` do
not, and the verdict and the reports read them without a model. So the names below are
resolved on first use (PEP 562 module ``__getattr__``): importing this package, or one of
its light modules, never imports torch, and the CLI imports a model only inside commands
that need one.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

#: Public name -> the submodule that defines it.
_EXPORTS = {
    "Detector": "inference", "TrackPrediction": "inference",
    "ModelConfig": "config",
    "MusicBrainNet": "net", "build_model": "net",
    "load_checkpoint": "checkpoint", "resolve_model": "checkpoint", "save_checkpoint": "checkpoint",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # for type checkers and IDEs; never at run time
    from musicbrain_cli.model.checkpoint import load_checkpoint, resolve_model, save_checkpoint  # noqa: F401
    from musicbrain_cli.model.config import ModelConfig  # noqa: F401
    from musicbrain_cli.model.inference import Detector, TrackPrediction  # noqa: F401
    from musicbrain_cli.model.net import MusicBrainNet, build_model  # noqa: F401


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
