"""Tests of musicbrain_cli.model.net and .config: shapes per backbone, fusion/SE, heads,
determinism, a toy training loop and the gradient path CAMs use."""

from __future__ import annotations

import json

import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F

from musicbrain_cli.errors import ConfigError
from musicbrain_cli.features import FrontEndConfig
from musicbrain_cli.model.config import ModelConfig
from musicbrain_cli.model.net import SqueezeExcite, build_model
from musicbrain_cli.taxonomy import Taxonomy

TAXONOMY = Taxonomy.from_groups([
    ("source", ["human", "ai"], True),
    ("period", ["Baroque", "Classical", "Romantic"], True),
    ("instrumentation", ["piano", "strings"], False),
])
SMALL_FE = FrontEndConfig(window_s=1.0, hop_s=1.0, n_bins=64)   # 64 x 50 input


def small_config(**kw) -> ModelConfig:
    return ModelConfig(**{"front_end": SMALL_FE, "taxonomy": TAXONOMY, "stem_stride": (2, 4), **kw})


@pytest.mark.parametrize("backbone", ["convnext_atto", "convnext_femto", "convnext_pico",
                                      "convnext_nano", "convnext_tiny"])
def test_shapes_for_every_backbone(backbone):
    torch.manual_seed(0)
    model = build_model(small_config(backbone=backbone, stem_stride=(2, 4))).eval()
    ref = timm.create_model(backbone, pretrained=False, features_only=True,
                            out_indices=(1, 2, 3), in_chans=1)
    spec = torch.randn(2, 1, 32, 64)
    with torch.no_grad():
        fused = model.forward_features(spec)
        logits = model.forward_head(fused)
    # Fused grid = the low stage's: stem (2, 4) then one 2x downsample -> F/4 x T/8.
    assert fused.shape == (2, sum(ref.feature_info.channels()), 8, 8)
    assert logits.shape == (2, TAXONOMY.num_labels)
    assert model.stage_channels == ref.feature_info.channels()
    assert model.stage_reduction[0] == (4, 8)
    assert model.embed(spec).shape == (2, model.embed_dim)


def test_square_stem_and_other_stages():
    model = build_model(small_config(stem_stride=(4, 4), out_indices=(0, 2, 3))).eval()
    with torch.no_grad():
        fused = model.forward_features(torch.randn(1, 1, 64, 64))
    assert fused.shape[-2:] == (16, 16)
    assert model.fused_grid(64, 64) == (16, 16)


def test_unknown_backbone_is_named():
    with pytest.raises(ConfigError, match="resnet50"):
        build_model(small_config(backbone="resnet50"))
    with pytest.raises(ConfigError, match="convnext_gigantic"):
        build_model(small_config(backbone="convnext_gigantic"))
    with pytest.raises(ConfigError, match="'convnext_atto_ols' has no single patchify stem"):
        build_model(small_config(backbone="convnext_atto_ols"))


def test_config_round_trip_through_json():
    c = small_config(backbone="convnext_femto", se_reduction=8, stem_stride=(2, 8),
                     fusion_channels=32, style_bands=4)
    again = ModelConfig.from_dict(json.loads(json.dumps(c.to_dict())))
    assert again == c
    with pytest.raises(ConfigError, match="se_reductoin"):
        ModelConfig.from_dict({**c.to_dict(), "se_reductoin": 4})
    with pytest.raises(ConfigError, match="stem_stride"):
        small_config(stem_stride=(0, 4))
    for bad in (-1, 65, 2.0, True):
        with pytest.raises(ConfigError, match="style_bands"):
            small_config(style_bands=bad)
    # configs written before style_bands existed load with the global pool
    old = {k: v for k, v in small_config().to_dict().items() if k != "style_bands"}
    assert ModelConfig.from_dict(old).style_bands == 0


def test_style_bands_feed_band_pooled_features_to_style_heads_only():
    """style_bands = N: every head but source reads [C * N] features, the map averaged over
    time and N frequency bands (channel-major) then layer-normalised; the source head reads
    the global embedding, so its logits do not depend on N."""
    torch.manual_seed(5)
    plain = build_model(small_config()).eval()
    banded = build_model(small_config(style_bands=4)).eval()
    state = {k: v for k, v in plain.state_dict().items()
             if k.startswith(("backbone.", "fusion.", "norm.", "heads.source."))}
    banded.load_state_dict(state, strict=False)
    assert banded.heads["period"].in_features == 4 * banded.embed_dim
    assert banded.heads["source"].in_features == banded.embed_dim
    fused = torch.randn(2, banded.embed_dim, 8, 5)
    fused[:, :, :2] += 3.0                       # energy in the lowest quarter of the rows
    with torch.no_grad():
        z = banded.style_pool(fused)
        manual = fused.reshape(2, banded.embed_dim, 4, 2, 5).mean(dim=(3, 4)).flatten(1)
        torch.testing.assert_close(z, F.layer_norm(manual, manual.shape[1:]))
        torch.testing.assert_close(banded.forward_head(fused)[:, :2],
                                   plain.forward_head(fused)[:, :2])
        # a band shift changes what the style heads read, not the global embedding
        shifted = fused.flip(2)
        torch.testing.assert_close(banded.pool(shifted), banded.pool(fused))
        assert not torch.allclose(banded.style_pool(shifted), z)
    assert torch.equal(plain.style_pool(fused), plain.pool(fused))


def test_squeeze_excite_weights_lie_in_unit_interval_and_scale_channels():
    torch.manual_seed(1)
    se = SqueezeExcite(64, reduction=16)
    assert se.fc1.out_features == 4
    x = torch.randn(3, 64, 5, 7) * 3
    w = se.weights(x)
    assert w.shape == (3, 64)
    assert torch.all((w > 0) & (w < 1))
    torch.testing.assert_close(se(x), x * w[:, :, None, None])
    # Weights depend on the input (excitation is computed per example).
    assert not torch.allclose(w[0], w[1])


def test_fusion_output_is_se_reweighted_concat():
    torch.manual_seed(2)
    model = build_model(small_config()).eval()
    spec = torch.randn(2, 1, 64, 50)
    with torch.no_grad():
        stages = model.backbone(spec)
        concat = model.fusion.concat(stages)
        w = model.fusion.se.weights(concat)
        fused = model.forward_features(spec)
    torch.testing.assert_close(fused, concat * w[:, :, None, None])
    assert model.fusion.se.fc1.out_features == model.embed_dim // 16
    # Each stage keeps its own channel slice; upsampled stages fill the low stage's grid.
    assert [s.stop - s.start for s in model.fusion.stage_slices] == model.stage_channels


def test_heads_follow_taxonomy_order():
    torch.manual_seed(3)
    model = build_model(small_config()).eval()
    fused = torch.randn(2, model.embed_dim, 4, 4)
    with torch.no_grad():
        logits = model.forward_head(fused)
        z = model.pool(fused)
        period = model.heads["period"](z)
    sl = TAXONOMY.group_slices()["period"]
    torch.testing.assert_close(logits[:, sl], period)


def test_forward_is_deterministic_in_eval_mode():
    torch.manual_seed(4)
    model = build_model(small_config(dropout=0.5)).eval()
    spec = torch.randn(3, 1, 64, 50)
    with torch.no_grad():
        a, b = model(spec), model(spec)
    assert torch.equal(a, b)


def test_bad_input_shape():
    model = build_model(small_config())
    with pytest.raises(ConfigError, match=r"\[B, 1, F, T\]"):
        model(torch.zeros(2, 64, 50))
    assert model.min_input_size() == (16, 32)
    with pytest.raises(ConfigError, match="need at least 16 x 32"):
        model(torch.zeros(1, 1, 64, 31))


def test_default_config_is_the_documented_resolution():
    model = build_model(ModelConfig())
    # 256-bin, 500-frame map -> 64 x 31 fused grid (features.py / net.py docstrings).
    assert model.fused_grid() == (64, 31)


def test_cam_gradient_reaches_the_fusion_map():
    torch.manual_seed(5)
    model = build_model(small_config()).eval()
    saved = {}
    handle = model.fusion.register_forward_hook(lambda m, i, o: saved.update(act=o))
    try:
        logits = model(torch.randn(1, 1, 64, 50))
        grad, = torch.autograd.grad(logits[0, TAXONOMY.index("source/ai")], saved["act"])
    finally:
        handle.remove()
    assert grad.shape == saved["act"].shape
    assert grad.abs().sum() > 0


def test_toy_training_with_masked_bce_loss_falls():
    """A learnable toy task: 'ai' examples carry a bright band in the upper half."""
    torch.manual_seed(6)
    rng = np.random.default_rng(6)
    n = 8
    spec = torch.from_numpy(rng.normal(0, 0.3, (n, 1, 32, 32)).astype(np.float32))
    is_ai = np.arange(n) % 2 == 1
    spec[torch.from_numpy(is_ai), 0, 20:24, :] += 2.0
    rows = [{"source": "ai" if ai else "human",
             # Period unknown for half the clips: masked out, never a negative.
             "period": "" if i % 4 < 2 else "Baroque",
             "instrumentation": "piano"} for i, ai in enumerate(is_ai)]
    encoded = [TAXONOMY.encode(r) for r in rows]
    targets = torch.from_numpy(np.stack([t for t, _ in encoded]))
    mask = torch.from_numpy(np.stack([m for _, m in encoded]))
    model = build_model(small_config(stem_stride=(2, 2), dropout=0.0))
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)

    def masked_bce(logits):
        loss = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
        return (loss * mask).sum() / mask.sum()

    losses = []
    for _ in range(20):
        opt.zero_grad()
        logits = model(spec)
        logits.retain_grad()
        loss = masked_bce(logits)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    # Masked cells get exactly zero gradient.
    assert torch.all(logits.grad[mask == 0] == 0)
    assert losses[-1] < 0.3 * losses[0]
    model.eval()
    with torch.no_grad():
        p_ai = torch.sigmoid(model(spec))[:, TAXONOMY.index("source/ai")]
    assert torch.all((p_ai > 0.5) == torch.from_numpy(is_ai))
