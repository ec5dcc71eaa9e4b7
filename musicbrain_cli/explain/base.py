"""The CAM family's one base class: hooks, backward, ReLU, upsampling and scaling.

Pattern: pytorch-grad-cam's ``BaseCAM`` (Gildenblat et al.), rewritten so that it never
changes the caller's model (pytorch-grad-cam calls ``model.eval()`` on the model it is handed
and ``model.zero_grad()`` on every call). A method overrides only :meth:`BaseCAM.channel_weights`
(how it weights channels) and, for multi-label methods, :meth:`BaseCAM.fuse` (how it combines
the per-label maps).

How gradients are taken, and why:

- A forward hook on the target layer replaces the layer's output by a detached copy that
  requires grad. The forward values are unchanged, but the autograd graph now *starts* at the
  target layer, so each backward runs from the logits to the target layer only (never through
  the backbone), works on frozen models (``requires_grad=False`` everywhere), and needs no
  change to any parameter's ``requires_grad``.
- Gradients are taken with :func:`torch.autograd.grad` with respect to that activation only,
  so no parameter's ``.grad`` is written (no ``model.zero_grad()`` on the caller's model).
- One forward per call; one backward per target with ``retain_graph=True`` except the last.
- Exception: a method that sets ``input_gradient`` (FM-G-CAM's ``refine="gradient-input"``)
  keeps the graph from the input on (the hook does not detach), and takes one more backward,
  all targets summed, through the whole network to the input (``_input_grad``); the
  per-target backwards still stop at the target layer.

Shapes: the input is a spectrogram batch ``[B, 1, F, T]`` (F frequency bins, row 0 the lowest;
T frames); the target layer's output is ``[B, C, h, w]``. Maps come back on the input's grid
``[B, K, F, T]`` (K targets), upsampled bilinearly (half-pixel centres, as OpenCV's
``INTER_LINEAR`` that pytorch-grad-cam uses) onto the rows and frames the layer read
(:func:`to_input_grid`): a strided network without padding drops the input's last
``n mod stride`` frames (MusicBrainNet's 8-frame stem reads 496 of a window's 500), so its
31 cells sit on frames 0-495 and frames 496-499 get no saliency (stretching the cells over
all 500 frames put cell i 0.13 i frames late, 78 ms at the window's end, and gave the unread
frames the last cell's value).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from musicbrain_cli.errors import ConfigError, InputError

#: The layer explained when the caller names none: MusicBrainNet's fused multi-scale map.
DEFAULT_LAYER = "fusion"
#: Added to denominators of min-max and L2 scaling so an all-zero map stays all zero.
EPS = 1e-12

#: A target maps logits ``[B, L]`` to one score per sample ``[B]``.
Target = Callable[[torch.Tensor], torch.Tensor]


class LabelTarget:
    """The logit of one label, the same label for every sample (an ``int``) or one label per
    sample (a sequence/tensor of ``B`` indices, e.g. each window's top prediction)."""

    def __init__(self, index: int | Sequence[int] | torch.Tensor):
        self.index = index

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        if isinstance(self.index, int):
            return logits[:, self.index]
        index = torch.as_tensor(self.index, device=logits.device, dtype=torch.long)
        if index.dim() == 0:
            # a numpy integer or a 0-d tensor is one label for every sample (gathering with
            # it would pick sample 0's logit only and leave the others unexplained)
            return logits[:, int(index)]
        if index.numel() != logits.shape[0]:
            raise InputError(f"LabelTarget has {index.numel()} label indices for a batch of "
                             f"{logits.shape[0]} samples")
        return logits.gather(1, index.reshape(-1, 1)).squeeze(1)

    def __repr__(self) -> str:
        return f"LabelTarget({self.index!r})"


def resolve_layer(model: nn.Module, name: str) -> nn.Module:
    """The submodule of ``model`` called ``name`` (dotted path as in ``named_modules()``)."""
    modules = dict(model.named_modules())
    if name not in modules or name == "":
        known = [n for n in modules if n][:20]
        raise ConfigError(f"model has no layer named {name!r}; some layers it has: {known}")
    return modules[name]


@dataclass
class CamResult:
    """Saliency maps on the input's grid, with what they explain.

    ``maps``: ``[B, K, F, T]`` float32 in [0, 1]; ``labels``: ``[B, K]`` the label index each
    map explains; ``logits``: ``[B, L]`` the model's output for the unperturbed input;
    ``times``: ``[T]`` seconds (frame centres), ``freqs``: ``[F]`` Hz (bin centres), both
    ``None`` when the caller gave none.
    """

    maps: np.ndarray
    labels: np.ndarray
    logits: np.ndarray
    times: np.ndarray | None = None
    freqs: np.ndarray | None = None
    method: str = ""
    extra: dict = field(default_factory=dict)

    def fused(self) -> np.ndarray:
        """One map per sample ``[B, F, T]``: the per-label maps summed (for FM-G-CAM, whose
        labels are exclusive per cell, this is the winning label's value)."""
        return self.maps.sum(axis=1)


def upsample(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize ``[B, K, h, w]`` -> ``[B, K, F, T]`` with half-pixel centres
    (``align_corners=False``), the convention of OpenCV's ``INTER_LINEAR``."""
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    return F.interpolate(maps, size=size, mode="bilinear", align_corners=False)


def read_extent(n: int, cells: int) -> int:
    """How many of an axis' ``n`` input rows/frames a layer of ``cells`` cells read: the
    first ``stride * cells`` when ``cells = n // stride`` holds for exactly one integer stride
    (a strided network without padding, e.g. a patchify stem, drops the remainder: 500
    frames, 31 cells -> stride 16, 496 frames), else all ``n`` (a padded network's cells
    cover the whole axis; with a coarse grid several strides fit and none is assumed)."""
    if cells < 1:
        return n
    lo, hi = n // (cells + 1) + 1, n // cells      # the integer strides s with n // s == cells
    return hi * cells if lo == hi >= 1 else n


def to_input_grid(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``[B, K, h, w]`` -> ``[B, K, F, T]``: :func:`upsample` onto the rows and frames the
    layer read (:func:`read_extent`), zero on those it never read (the model's output does
    not depend on them)."""
    h, w = int(maps.shape[-2]), int(maps.shape[-1])
    rows, frames = read_extent(int(size[0]), h), read_extent(int(size[1]), w)
    out = upsample(maps, (rows, frames))
    if (rows, frames) != tuple(size):
        out = F.pad(out, (0, int(size[1]) - frames, 0, int(size[0]) - rows))
    return out


def minmax(maps: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    """Scale to [0, 1] over ``dims``; a constant map becomes all zero (it ranks nothing)."""
    lo = maps.amin(dim=dims, keepdim=True)
    hi = maps.amax(dim=dims, keepdim=True)
    return (maps - lo) * (hi - lo).clamp_min(EPS).reciprocal()  # one divide per map


class _ModeGuard:
    """Puts a model in eval mode and restores every submodule's own ``training`` flag after
    (a caller may have a deliberately mixed state, e.g. frozen BatchNorm in a training model)."""

    def __init__(self, model: nn.Module, enabled: bool):
        self.model, self.enabled = model, enabled
        self._saved: list[tuple[nn.Module, bool]] = []

    def __enter__(self) -> None:
        if self.enabled:
            self._saved = [(m, m.training) for m in self.model.modules()]
            self.model.eval()

    def __exit__(self, *exc) -> None:
        for module, training in self._saved:
            module.training = training
        self._saved = []


class BaseCAM:
    """Owns the hook on one named layer, the forward, the backward per target, ReLU, bilinear
    upsampling and min-max scaling. Use as a context manager; hooks are removed on exit::

        with GradCAM(model, layer="fusion") as cam:
            result = cam(spec, targets=[LabelTarget(3)])

    ``eval_mode`` (default True) runs the model in eval mode (dropout off, BatchNorm on its
    running statistics, so a sample's map does not depend on the rest of the batch) and
    restores each submodule's previous mode afterwards.
    """

    method = "base"

    def __init__(self, model: nn.Module, *, layer: str = DEFAULT_LAYER, eval_mode: bool = True):
        self.model = model
        self.layer_name = layer
        self.layer = resolve_layer(model, layer)
        self.eval_mode = eval_mode
        self._handle = None
        self._activation: torch.Tensor | None = None
        self._running = False  # the hook acts only during this object's own forward
        # When True, the forward keeps the graph from the input on, and one more backward
        # (of all targets summed) gives the input's gradient, stored in ``_input_grad``
        # (a method that refines its maps at the input's resolution sets this).
        self.input_gradient = False
        self._input_grad: torch.Tensor | None = None

    # --- hooks ------------------------------------------------------------------------

    def __enter__(self) -> "BaseCAM":
        if self._handle is None:
            self._handle = self.layer.register_forward_hook(self._capture)
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Remove the hook and drop the stored activation (idempotent)."""
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
        self._activation = None

    def _capture(self, module: nn.Module, inputs, output):
        if not self._running:
            return None  # the caller's own forward passes inside the with block: untouched
        if not isinstance(output, torch.Tensor) or output.dim() != 4:
            shape = getattr(output, "shape", type(output).__name__)
            raise ConfigError(
                f"layer {self.layer_name!r} must output a [B, C, H, W] tensor, got {shape}"
            )
        # Start the graph here: backward then stops at this layer (see the module docstring).
        # The layers before it ran under no_grad (no graph, no saved tensors: the forward
        # costs what inference costs); grad mode is switched on for the layers after it, and
        # the enclosing ``torch.no_grad()`` in forward_and_grads restores the caller's mode.
        # The clone keeps the leaf safe from in-place ops downstream (e.g. ReLU(inplace=True)).
        if self.input_gradient:
            # The graph runs from the input through this layer: keep it (the activation is an
            # inner node, autograd.grad still takes gradients with respect to it).
            self._activation = output
            return output.clone()
        torch.set_grad_enabled(True)
        leaf = output.detach().requires_grad_(True)
        self._activation = leaf
        return leaf.clone()

    # --- the pipeline -----------------------------------------------------------------

    def forward_and_grads(
        self, spec: torch.Tensor, targets: "Sequence[Target] | Target | TopK"
    ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor], list[Target]]:
        """One forward, one backward per target. Returns ``(logits [B, L], activation
        [B, C, h, w], [grad [B, C, h, w] per target], targets)``, tensors detached.

        ``targets``: a sequence of targets, one target, or a :class:`TopK` picker."""
        if self._handle is None:
            raise InputError(f"{type(self).__name__} must be used inside a 'with' block")
        if spec.dim() != 4:
            raise InputError(f"expected a spectrogram batch [B, 1, F, T], got shape {tuple(spec.shape)}")
        self._input_grad = None
        with _ModeGuard(self.model, self.eval_mode), torch.inference_mode(False):
            if self.input_gradient:
                # clone: an inference tensor (made under the caller's inference_mode) cannot
                # require grad; its copy made here, outside inference mode, can
                spec = spec.detach().clone().requires_grad_(True)
            self._running = True
            try:
                # Without input_gradient, _capture switches grad on at the target layer.
                with torch.set_grad_enabled(self.input_gradient):
                    logits = self.model(spec)
            finally:
                self._running = False
            activation = self._activation
            self._activation = None
            if activation is None:
                raise ConfigError(f"layer {self.layer_name!r} did not run in the model's forward")
            if not logits.requires_grad:
                raise ConfigError(f"the model's output does not depend on layer {self.layer_name!r}")
            if isinstance(targets, TopK):
                targets = targets(logits.detach())
            elif callable(targets):
                targets = [targets]
            if len(targets) == 0:
                raise InputError("no targets to explain (empty target list)")
            grads = []
            with torch.enable_grad():
                for i, target in enumerate(targets):
                    # autograd.grad runs only the graph between the logits and the layer, even
                    # when the graph goes on to the input.
                    (grad,) = torch.autograd.grad(
                        target(logits).sum(), activation,
                        retain_graph=self.input_gradient or i < len(targets) - 1,
                        allow_unused=True,
                    )
                    # A target that does not depend on the layer has zero gradient, not None.
                    grads.append(torch.zeros_like(activation) if grad is None else grad)
                if self.input_gradient:
                    # One backward to the input for all targets at once (their sum): the cost
                    # of a refinement is one full backward, whatever k.
                    combined = sum(target(logits).sum() for target in targets)
                    (self._input_grad,) = torch.autograd.grad(combined, spec, allow_unused=True)
                    if self._input_grad is None:
                        self._input_grad = torch.zeros_like(spec)
                    self._input_grad = self._input_grad.detach()
        return logits.detach(), activation.detach(), grads, list(targets)

    def channel_weights(self, activation: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        """Channel weights ``[B, C]`` for one target. Override in a method."""
        raise NotImplementedError

    def label_maps(self, activation: torch.Tensor, grads: Sequence[torch.Tensor]) -> torch.Tensor:
        """Signed, unscaled maps ``[B, K, h, w]``: channel-weighted activations averaged over
        channels (Grad-CAM, Selvaraju et al. 2017, eq. 2; the mean differs from the paper's
        sum by the constant C, which the min-max scaling removes)."""
        # One contraction for all targets: [B, K, C] x [B, C, h, w], never materialising the
        # K weighted copies of the activation.
        weights = torch.stack([self.channel_weights(activation, g) for g in grads], dim=1)
        return torch.einsum("bkc,bchw->bkhw", weights, activation) / activation.shape[1]

    def cell_maps(self, activation: torch.Tensor, grads: Sequence[torch.Tensor]) -> torch.Tensor:
        """Signed, unscaled maps ``[B, K, h, w]`` weighted cell by cell: each activation times
        its own gradient, averaged over channels (HiResCAM, Draelos & Carin 2020, eq. 4). Where
        the head reads a global average pool of the layer, every cell of a channel has the same
        gradient and this equals :meth:`label_maps`; where it reads a pool over frequency
        bands, the per-band weights survive (Grad-CAM would average them away)."""
        return torch.stack([(g * activation).mean(dim=1) for g in grads], dim=1)

    def fuse(self, maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Turn signed maps ``[B, K, h, w]`` into maps on the input grid ``[B, K, F, T]`` in
        [0, 1]. Default (Grad-CAM): ReLU, bilinear upsampling, min-max per map. Min-max is
        affine and bilinear weights sum to one, so this equals pytorch-grad-cam's
        ReLU -> min-max -> resize -> min-max."""
        return minmax(to_input_grid(F.relu(maps), size), dims=(2, 3))

    def __call__(
        self,
        spec: torch.Tensor,
        *,
        targets: "Sequence[Target] | Target | TopK",
        times: np.ndarray | None = None,
        freqs: np.ndarray | None = None,
    ) -> CamResult:
        """Explain ``spec`` ``[B, 1, F, T]`` for ``targets``; ``times`` ``[T]`` s and
        ``freqs`` ``[F]`` Hz (from the front end) label the grid of the returned maps."""
        size = tuple(spec.shape[-2:])
        _check_axis("freqs", freqs, size[0])
        _check_axis("times", times, size[1])
        logits, activation, grads, resolved = self.forward_and_grads(spec, targets)
        maps = self.fuse(self.label_maps(activation, grads), size)
        labels = _target_labels(resolved, logits)
        return CamResult(
            maps=maps.float().cpu().numpy(), labels=labels, logits=logits.float().cpu().numpy(),
            times=None if times is None else np.asarray(times, dtype=np.float64),
            freqs=None if freqs is None else np.asarray(freqs, dtype=np.float64),
            method=self.method, extra={"grid": tuple(int(s) for s in activation.shape[-2:])},
        )


def _check_axis(name: str, values, n: int) -> None:
    if values is not None and len(values) != n:
        raise InputError(f"{name} has {len(values)} entries but the spectrogram axis has {n}")


def _target_labels(targets: Sequence[Target], logits: torch.Tensor) -> np.ndarray:
    """``[B, K]`` label indices for :class:`LabelTarget` targets, -1 for other callables."""
    b = logits.shape[0]
    cols = []
    for t in targets:
        if isinstance(t, LabelTarget):
            cols.append(np.broadcast_to(np.asarray(torch.as_tensor(t.index).cpu()), (b,)))
        else:
            cols.append(np.full(b, -1))
    return np.stack(cols, axis=1).astype(np.int64)


class TopK:
    """A target picker: each sample's ``k`` highest logits, rank 0 first (resolved after the
    forward, so it costs no extra pass)."""

    def __init__(self, k: int):
        if k < 1:
            raise ConfigError(f"k must be at least 1, got {k}")
        self.k = k

    def __call__(self, logits: torch.Tensor) -> list[LabelTarget]:
        if self.k > logits.shape[1]:
            raise ConfigError(f"k={self.k} exceeds the model's {logits.shape[1]} labels")
        idx = logits.detach().topk(self.k, dim=1).indices
        return [LabelTarget(idx[:, r]) for r in range(self.k)]

    def __repr__(self) -> str:
        return f"TopK({self.k})"


def top_k_targets(k: int) -> TopK:
    """Each sample's ``k`` highest logits as targets (see :class:`TopK`)."""
    return TopK(k)
