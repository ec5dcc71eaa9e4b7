"""Grad-CAM (Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via
Gradient-based Localization", ICCV 2017): one map per target label at any named layer.

Channel weight = the target's gradient averaged over the layer's spatial grid (eq. 1); the
map = ReLU of the channel-weighted activations (eq. 2), upsampled to the spectrogram's grid
and min-max scaled per map (as pytorch-grad-cam does, whose output the tests compare with).
"""

from __future__ import annotations

import torch

from musicbrain_cli.explain.base import BaseCAM


class GradCAM(BaseCAM):
    """Per-label Grad-CAM. ``cam(spec, targets=[LabelTarget(i), ...])`` -> maps ``[B, K, F, T]``."""

    method = "grad-cam"

    def channel_weights(self, activation: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        return grad.mean(dim=(2, 3))
