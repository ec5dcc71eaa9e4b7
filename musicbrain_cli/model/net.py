"""MusicBrainNet: a ConvNeXt backbone, multi-scale fusion with squeeze-and-excitation, and
one sigmoid head per taxonomy label group.

::

    spec [B, 1, F, T]                              (features.FrontEnd output)
      -> ConvNeXt (timm, features_only), anisotropic stem (stride sf x st)
      -> stages low, mid, high  [B, C_i, H_i, W_i]
      -> fusion: LayerNorm2d each; mid/high resized to the LOW stage's H x W;
                 concatenate on channels; squeeze-and-excitation reweights channels
      -> fused [B, C, H, W]                       (``model.fusion`` output: CAMs target it)
      -> global average pool -> LayerNorm -> dropout -> per-group Linear -> logits [B, L]
         (with ``style_bands`` = N > 0 the style groups' heads read instead the map averaged
          over time and over N frequency bands [B, C*N] -> LayerNorm -> dropout; the
          ``source`` head always reads the global embedding)

Why band pooling for style (``style_bands``): a global average pool makes the embedding
nearly blind to where in frequency a channel fires. On the default model's frozen fused map,
style labels fitted on 8-band pooled features scored validation style mAP 0.674 against
0.656 for the global embedding (test 0.70 vs 0.68; L2 logistic regression per label,
standardised features, C chosen on validation), while detection, which the global head
already separates, has no reason to change.

Why fuse at the low stage's grid, by interpolation: the fused map is where explanations
are read, so it must keep the finest grid of the stages it draws on; strided convolutions or
pooling down to the high stage's grid would throw away exactly the rows that separate
neighbouring partials. Upsampling (bilinear, parameter-free) the mid and high stages costs
only memory at the fused grid; the low stage's channels keep their full resolution, so a
channel-weighted CAM over the fused map can still be sharp where the low stage is.

Why the anisotropic stem (stride 2 in frequency, 8 in time, on the default 256-bin map):
with out_indices (1, 2, 3) the fused grid is F/4 x T/16 = 64 x 31 for a 10 s window, i.e.
one row per 4 mel bins (~51 Hz below 1 kHz, under a semitone above), against 16 x 62 for a
stock 4x4 stem on a 128-bin map fused at the same stage (rows of ~200 Hz below 1 kHz) and
4 x 15 for the stock network's last stage. Time is the axis given up: columns of ~320 ms
(16 input frames of 20 ms) are enough to place notes and phrases, and the 2x8 stem costs
about a third to a half of a 2x4 stem (64 x 62 grid).

Measured (``python benchmarks/model.py --compare --threads 1 --batch-sizes 16 --only
forward``; convnext_atto, forward only, batch 16, one thread on the 2-core development
machine while other jobs held it at load average ~8, so wall-clock figures are depressed and
noisy; windows per CPU-second is the load-robust comparison):

    config                           fused grid   windows/s (wall)   windows per CPU-s
    stock: 128 mel, 4x4 stem           16 x 62          11.3               61.7
    128 mel, 4x4, fuse from stage 0    32 x 125          7.8               45.2
    256 mel, 4x4 stem                  32 x 62           6.9               27.5
    256 mel, 2x8 stem (default)        64 x 31           4.6 (17.9 *)      27.6 (30.5 *)
    256 mel, 2x4 stem                  64 x 62           1.7                9.8

    * a second run of the default alone (``--threads 1``, same load).

The default costs about twice the stock network per window and buys 4x the rows (64 vs 16
at the same fusion stage; 16x the stock last-stage map). At ~30 windows per CPU-second it
meets the issue's target of 25 ten-second windows per second only if a whole core is free;
on the shared 2-core machine with two threads wall-clock throughput collapsed (OpenMP
threads wait on each other when cores are oversubscribed), see the project report.

Squeeze-and-excitation: Hu, Shen & Sun, "Squeeze-and-Excitation Networks", CVPR 2018,
eq. 2-4: s = sigmoid(W2 relu(W1 avgpool(x))), y = s * x, with W1 reducing by r (16).

All channel counts come from ``feature_info.channels()`` and strides from
``feature_info.reduction()`` (STYLE.md convention 6).
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

from musicbrain_cli.errors import ConfigError
from musicbrain_cli.model.config import ModelConfig
from musicbrain_cli.taxonomy import DETECTION_GROUP  # its head reads the global embedding


@functools.lru_cache(maxsize=1)
def known_backbones() -> tuple[str, ...]:
    """The timm ConvNeXt variants this model can be built on."""
    import timm

    return tuple(sorted(timm.list_models("convnext*")))


class SqueezeExcite(nn.Module):
    """Channel reweighting ``y = x * sigmoid(fc2(relu(fc1(mean_hw(x)))))`` (Hu et al. 2018)."""

    def __init__(self, channels: int, *, reduction: int = 16):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.fc1 = nn.Linear(channels, hidden)
        self.fc2 = nn.Linear(hidden, channels)

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """Channel weights ``[B, C]`` in (0, 1)."""
        squeezed = x.mean(dim=(2, 3))
        return torch.sigmoid(self.fc2(F.relu(self.fc1(squeezed))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weights(x)[:, :, None, None]


class MultiScaleFusion(nn.Module):
    """Stage maps -> one SE-reweighted map on the first (lowest) stage's grid.

    The output of this module is THE map explanations are computed on.
    """

    def __init__(self, channels: list[int], *, out_channels: int = 0, resize: str = "bilinear",
                 se_reduction: int = 16):
        super().__init__()
        from timm.layers import LayerNorm2d

        self.resize = resize
        # Each stage has its own activation scale; normalise before concatenating so the
        # SE block, not an accident of magnitude, decides how much each stage counts.
        self.norms = nn.ModuleList(LayerNorm2d(c) for c in channels)
        if out_channels:
            self.projections = nn.ModuleList(nn.Conv2d(c, out_channels, 1) for c in channels)
            widths = [out_channels] * len(channels)
        else:
            self.projections = nn.ModuleList(nn.Identity() for _ in channels)
            widths = list(channels)
        self.out_channels = sum(widths)
        self.stage_slices = []
        start = 0
        for w in widths:
            self.stage_slices.append(slice(start, start + w))
            start += w
        self.se = SqueezeExcite(self.out_channels, reduction=se_reduction)

    def concat(self, stages: list[torch.Tensor]) -> torch.Tensor:
        """Normalised, resized and concatenated stages, before SE: ``[B, C, H_low, W_low]``."""
        size = stages[0].shape[-2:]
        parts = []
        for x, norm, proj in zip(stages, self.norms, self.projections):
            x = proj(norm(x))
            if x.shape[-2:] != size:
                kwargs = {"align_corners": False} if self.resize == "bilinear" else {}
                x = F.interpolate(x, size=size, mode=self.resize, **kwargs)
            parts.append(x)
        return torch.cat(parts, dim=1)

    def forward(self, stages: list[torch.Tensor]) -> torch.Tensor:
        return self.se(self.concat(stages))


class MusicBrainNet(nn.Module):
    """Spectrogram ``[B, 1, F, T]`` -> logits ``[B, num_labels]`` in ``taxonomy.labels`` order."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        import timm

        self.config = config
        if config.backbone not in known_backbones():
            raise ConfigError(
                f"unknown backbone {config.backbone!r}: expected a timm ConvNeXt variant "
                f"({', '.join(known_backbones())})"
            )
        try:
            self.backbone = timm.create_model(
                config.backbone, pretrained=False, features_only=True,
                out_indices=config.out_indices, in_chans=1,
                drop_path_rate=config.drop_path_rate,
            )
        except (IndexError, ValueError, AssertionError) as exc:
            raise ConfigError(
                f"cannot build {config.backbone!r} with out_indices={config.out_indices}: {exc}"
            ) from exc
        info = self.backbone.feature_info
        self.stage_channels = list(info.channels())
        base_reduction = list(info.reduction())
        # Replace the square patchify stem (ConvNeXt: kernel = stride = 4) by an anisotropic
        # one. Per-axis reductions then scale by stride / original stride.
        stem = getattr(self.backbone, "stem_0", None)
        old = stem.stride[0] if isinstance(stem, nn.Conv2d) else None
        if (old is None or stem.kernel_size != stem.stride
                or old * 2 ** config.out_indices[0] != base_reduction[0]):
            raise ConfigError(
                f"backbone {config.backbone!r} has no single patchify stem (e.g. the '_ols' "
                "variants' overlapping stems), so its stem cannot be made anisotropic; use a "
                "variant such as 'convnext_atto' or 'convnext_tiny'"
            )
        sf, st = config.stem_stride
        new_stem = nn.Conv2d(stem.in_channels, stem.out_channels, kernel_size=(sf, st),
                             stride=(sf, st))
        # timm's ConvNeXt initialisation (convnext.py ``_init_weights``).
        nn.init.trunc_normal_(new_stem.weight, std=0.02)
        nn.init.zeros_(new_stem.bias)
        self.backbone.stem_0 = new_stem
        self.stage_reduction = [(r * sf // old if r * sf % old == 0 else r * sf / old,
                                 r * st // old if r * st % old == 0 else r * st / old)
                                for r in base_reduction]
        self.fusion = MultiScaleFusion(
            self.stage_channels, out_channels=config.fusion_channels,
            resize=config.fusion_resize, se_reduction=config.se_reduction,
        )
        self.embed_dim = self.fusion.out_channels
        self.norm = nn.LayerNorm(self.embed_dim)
        self.dropout = nn.Dropout(config.dropout)
        self.style_bands = config.style_bands
        self.style_dim = self.embed_dim * self.style_bands if self.style_bands else self.embed_dim
        if self.style_bands:
            self.style_norm = nn.LayerNorm(self.style_dim)
        self.group_names = config.taxonomy.group_names
        self.heads = nn.ModuleDict(
            {g.name: nn.Linear(self.head_dim(g.name), len(g.labels))
             for g in config.taxonomy.groups}
        )

    # --- geometry -----------------------------------------------------------------------

    def fused_grid(self, n_bins: int | None = None, n_frames: int | None = None) -> tuple[int, int]:
        """``(H, W)`` of the fused map for an input of ``n_bins x n_frames`` (front-end default)."""
        fe = self.config.front_end
        h, w = n_bins or fe.n_bins, n_frames or fe.n_frames
        with torch.no_grad():
            stages = self.backbone(torch.zeros(1, 1, h, w, device=self._device()))
        return tuple(stages[0].shape[-2:])

    def _device(self) -> torch.device:
        return next(self.parameters()).device

    # --- forward ------------------------------------------------------------------------

    def min_input_size(self) -> tuple[int, int]:
        """Smallest ``(F, T)`` the deepest fused stage accepts (one cell at that stage)."""
        # Each stage after the first halves both axes (ConvNeXt downsample, stride 2).
        factor = 2 ** max(self.config.out_indices)
        sf, st = self.config.stem_stride
        return sf * factor, st * factor

    def _check_input(self, spec: torch.Tensor) -> None:
        if spec.ndim != 4 or spec.shape[1] != 1:
            raise ConfigError(f"model expects a spectrogram [B, 1, F, T], got {list(spec.shape)}")
        min_f, min_t = self.min_input_size()
        if spec.shape[2] < min_f or spec.shape[3] < min_t:
            raise ConfigError(
                f"spectrogram of {spec.shape[2]} x {spec.shape[3]} is too small for stem stride "
                f"{self.config.stem_stride} and stages {self.config.out_indices}: need at least "
                f"{min_f} x {min_t}"
            )

    def forward_features(self, spec: torch.Tensor) -> torch.Tensor:
        """Fused, SE-reweighted multi-scale map ``[B, C, H, W]`` (the output of ``fusion``)."""
        self._check_input(spec)
        return self.fusion(self.backbone(spec))

    def pool(self, fused: torch.Tensor) -> torch.Tensor:
        """Embedding ``[B, D]``: global average pool, then LayerNorm."""
        return self.norm(fused.mean(dim=(2, 3)))

    def reads_bands(self, group: str) -> bool:
        """Whether ``group``'s head reads the band-pooled style embedding."""
        return bool(self.style_bands) and group != DETECTION_GROUP

    def head_dim(self, group: str) -> int:
        """Input width of ``group``'s head."""
        return self.style_dim if self.reads_bands(group) else self.embed_dim

    def style_pool(self, fused: torch.Tensor) -> torch.Tensor:
        """What the style heads read ``[B, style_dim]``: the fused map averaged over time and
        ``style_bands`` frequency bands (channel-major: ``c * N + band``), then LayerNorm; the
        global embedding when ``style_bands`` is 0."""
        if not self.style_bands:
            return self.pool(fused)
        bands = F.adaptive_avg_pool2d(fused, (self.style_bands, 1)).flatten(1)
        return self.style_norm(bands)

    def forward_head(self, fused: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, num_labels]``, groups and labels in taxonomy order."""
        z = self.dropout(self.pool(fused))
        zs = self.dropout(self.style_pool(fused)) if self.style_bands else z
        return self.head_logits(z, zs)

    def head_logits(self, z: torch.Tensor, zs: torch.Tensor) -> torch.Tensor:
        """Logits from the head inputs: the global embedding ``z`` and what the style heads
        read ``zs`` (``style_pool``; the same as ``z`` when ``style_bands`` is 0)."""
        return torch.cat([self.heads[name](zs if self.reads_bands(name) else z)
                          for name in self.group_names], dim=1)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(spec))

    def embed(self, spec: torch.Tensor) -> torch.Tensor:
        """Pooled embedding ``[B, D]`` (D = ``embed_dim``), for out-of-domain scoring."""
        return self.pool(self.forward_features(spec))


def build_model(config: ModelConfig) -> MusicBrainNet:
    """Build an untrained network from its config (weights are initialised by timm/torch)."""
    return MusicBrainNet(config)
