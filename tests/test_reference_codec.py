"""The neural audio autoencoder: shapes, learning, resynthesis, checkpoint I/O."""

import numpy as np
import pytest
import torch

from musicbrain_cli.errors import ModelLoadError, TrainingError
from musicbrain_cli.data.reference import codec as cd
from musicbrain_cli.data.reference.build import ASSETS_DIR, CODEC_GENERATOR

CFG = cd.CodecConfig(sample_rate=8000, channels=8, latent=4, strides=(2, 4))


def _tones(seed: int, n: int = 6, seconds: float = 1.0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * CFG.sample_rate)) / CFG.sample_rate
    return [(0.5 * np.sin(2 * np.pi * rng.uniform(200, 800) * t)).astype(np.float32)
            for _ in range(n)]


def test_hop_and_shapes():
    assert CFG.hop == 8 and cd.CodecConfig().hop == 128
    model = cd.ConvCodec(CFG)
    assert model(torch.zeros(2, 1, 64)).shape == (2, 1, 64)
    with pytest.raises(TrainingError, match="multiple of the hop"):
        model(torch.zeros(1, 1, 63))


def test_training_reduces_loss_and_resynthesis_keeps_length_and_peak():
    model, curve = cd.train_codec(_tones(0), _tones(1, 2), CFG, settings=cd.CodecTrainSettings(
        steps=60, batch_size=4, segment_s=0.25, lr=3e-3, eval_every=20, seed=0))
    assert curve["val_loss"][-1] < curve["val_loss"][0]
    y = _tones(2, 1, seconds=0.37)[0]
    out = cd.resynthesize(model, y)
    assert out.shape == y.shape and out.dtype == np.float32
    assert np.abs(out).max() == pytest.approx(np.abs(y).max(), rel=1e-5)
    # a re-synthesis, not a copy
    assert not np.allclose(out, y, atol=1e-3)
    with pytest.raises(TrainingError, match="mono"):
        cd.resynthesize(model, np.zeros((2, 10), np.float32))


def test_save_load_round_trip_and_tamper(tmp_path):
    model = cd.ConvCodec(CFG).eval()
    cd.save_codec(model, tmp_path, "c", meta={"note": "x"})
    loaded, config = cd.load_codec(tmp_path, "c")
    assert loaded.cfg == CFG and config["note"] == "x"
    x = torch.from_numpy(_tones(3, 1, 0.1)[0][:800])[None, None]
    torch.testing.assert_close(loaded(x), model(x), atol=2e-2, rtol=2e-2)
    (tmp_path / "c.json").write_text((tmp_path / "c.json").read_text().replace(
        '"conv-codec"', '"other"'))
    with pytest.raises(ModelLoadError, match="not a codec"):
        cd.load_codec(tmp_path, "c")


def test_shipped_codec_loads_and_learned():
    model, config = cd.load_codec(ASSETS_DIR, CODEC_GENERATOR)
    assert config["curve"]["val_loss"][-1] < config["curve"]["val_loss"][0]
    assert "musescore_general_lite" not in config["soundfonts"]  # never saw the held-out font
    # the transposed-convolution decoder is what the class is about
    assert any(isinstance(m, torch.nn.ConvTranspose1d) for m in model.modules())
