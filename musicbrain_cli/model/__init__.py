"""The model stage: architecture, checkpoint I/O and inference.

``spec [B, 1, F, T]`` (from :mod:`musicbrain_cli.features`) -> :class:`MusicBrainNet` ->
logits ``[B, L]`` in ``taxonomy.labels`` order. Submodules import torch/timm; importing this
package does too, so the CLI imports it only inside commands that need a model.
"""

from musicbrain_cli.model.checkpoint import load_checkpoint, resolve_model, save_checkpoint
from musicbrain_cli.model.config import ModelConfig
from musicbrain_cli.model.inference import Detector, TrackPrediction
from musicbrain_cli.model.net import MusicBrainNet, build_model

__all__ = ["Detector", "ModelConfig", "MusicBrainNet", "TrackPrediction", "build_model",
           "load_checkpoint", "resolve_model", "save_checkpoint"]
