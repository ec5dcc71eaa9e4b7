"""The model's configuration: everything needed to rebuild the network, as plain JSON data.

A checkpoint stores ``ModelConfig.to_dict()`` in ``config.json``; the architecture is
rebuilt from these fields by :func:`musicbrain_cli.model.net.build_model`, never from a
class named inside the checkpoint (STYLE.md, convention 5).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any, Mapping

from musicbrain_cli.errors import ConfigError
from musicbrain_cli.features import FrontEndConfig
from musicbrain_cli.taxonomy import Taxonomy

#: ``config.json`` schema version.
CONFIG_VERSION = 1

#: The backbone for CPU use; ``convnext_tiny`` and larger suit servers.
DEFAULT_BACKBONE = "convnext_atto"
#: Fusion modes bringing the mid/high stages to the low stage's grid (see net.py).
FUSION_RESIZE = ("bilinear", "nearest")
#: Upper bound of ``style_bands`` (the default fused map has 64 rows).
MAX_STYLE_BANDS = 64


def default_taxonomy() -> Taxonomy:
    """A minimal taxonomy (detection only), used when none is given."""
    return Taxonomy.from_groups([("source", ["human", "ai"], True)])


@dataclass(frozen=True)
class ModelConfig:
    """Architecture and input of a :class:`~musicbrain_cli.model.net.MusicBrainNet`.

    - ``backbone``: any timm ConvNeXt variant (``timm.list_models("convnext*")``).
    - ``out_indices``: the backbone stages fused (low, mid, high); the fused map has the
      grid of the first (lowest) one.
    - ``stem_stride``: ``(frequency, time)`` stride of the patchify stem, which replaces
      ConvNeXt's square 4x4 stem (nothing is pretrained, so it is free to change).
    - ``se_reduction``: squeeze-and-excitation bottleneck ratio (Hu et al. 2018, r=16).
    - ``fusion_channels``: per-stage 1x1 projection width before concatenation (0 keeps
      each stage's own width).
    - ``style_bands``: 0 gives every head the globally pooled embedding. N > 0 gives the style
      heads (every group but ``source``) the fused map pooled over time and over N equal
      frequency bands, so they can read *where* in frequency a channel fires (register,
      instrumentation), which a global pool averages away; the ``source`` head keeps the
      global embedding.
    """

    backbone: str = DEFAULT_BACKBONE
    front_end: FrontEndConfig = field(default_factory=FrontEndConfig)
    taxonomy: Taxonomy = field(default_factory=default_taxonomy)
    out_indices: tuple[int, ...] = (1, 2, 3)
    stem_stride: tuple[int, int] = (2, 8)
    fusion_resize: str = "bilinear"
    fusion_channels: int = 0
    se_reduction: int = 16
    dropout: float = 0.1
    drop_path_rate: float = 0.0
    style_bands: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.backbone, str) or not self.backbone:
            raise ConfigError(f"backbone must be a timm model name, not {self.backbone!r}")
        oi = tuple(self.out_indices)
        if not oi or list(oi) != sorted(set(oi)) or any(not isinstance(i, int) or i < 0 for i in oi):
            raise ConfigError(f"out_indices must be distinct ascending stage indices, not {oi!r}")
        object.__setattr__(self, "out_indices", oi)
        ss = tuple(self.stem_stride)
        if len(ss) != 2 or any(not isinstance(s, int) or s < 1 for s in ss):
            raise ConfigError(f"stem_stride must be two positive ints (freq, time), not {ss!r}")
        object.__setattr__(self, "stem_stride", ss)
        if self.fusion_resize not in FUSION_RESIZE:
            raise ConfigError(
                f"unknown fusion_resize {self.fusion_resize!r} (known: {list(FUSION_RESIZE)})"
            )
        if not isinstance(self.se_reduction, int) or self.se_reduction < 1:
            raise ConfigError(f"se_reduction must be a positive int, not {self.se_reduction!r}")
        if not isinstance(self.fusion_channels, int) or self.fusion_channels < 0:
            raise ConfigError(f"fusion_channels must be an int >= 0, not {self.fusion_channels!r}")
        if (not isinstance(self.style_bands, int) or isinstance(self.style_bands, bool)
                or not 0 <= self.style_bands <= MAX_STYLE_BANDS):
            raise ConfigError(f"style_bands must be an int in [0, {MAX_STYLE_BANDS}], "
                              f"not {self.style_bands!r}")
        for name in ("dropout", "drop_path_rate"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and 0 <= v < 1):
                raise ConfigError(f"{name} must lie in [0, 1), not {v!r}")

    @property
    def labels(self) -> list[str]:
        return self.taxonomy.labels

    @property
    def num_labels(self) -> int:
        return self.taxonomy.num_labels

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": CONFIG_VERSION,
            "backbone": self.backbone,
            "front_end": self.front_end.to_dict(),
            "taxonomy": self.taxonomy.to_dict(),
            "out_indices": list(self.out_indices),
            "stem_stride": list(self.stem_stride),
            "fusion_resize": self.fusion_resize,
            "fusion_channels": self.fusion_channels,
            "se_reduction": self.se_reduction,
            "dropout": self.dropout,
            "drop_path_rate": self.drop_path_rate,
            "style_bands": self.style_bands,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ModelConfig":
        data = dict(data)
        version = data.pop("version", CONFIG_VERSION)
        if version != CONFIG_VERSION:
            raise ConfigError(f"unsupported model config version {version!r} (expected {CONFIG_VERSION})")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown model config fields {unknown} (known: {sorted(known)})")
        try:
            if "front_end" in data:
                data["front_end"] = FrontEndConfig.from_dict(data["front_end"])
            if "taxonomy" in data:
                data["taxonomy"] = Taxonomy.from_dict(data["taxonomy"])
            for key in ("out_indices", "stem_stride"):
                if key in data:
                    data[key] = tuple(data[key])
            return cls(**data)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"malformed model config: {exc}") from exc
