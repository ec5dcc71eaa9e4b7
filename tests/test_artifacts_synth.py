"""The synthetic decoders of the artifact line's corpus: the codec-like family and the uploads."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from artifact_signals import pink
from musicbrain_cli.artifacts.corpus import DOUBLE_TRANSFORMS, write_upload
from musicbrain_cli.artifacts.detector import analyse_samples
from musicbrain_cli.artifacts.spectrum import read_native
from musicbrain_cli.artifacts.synth import CodecLike, DecoderSpec, Snake, decode, train_codec

RATE = 24000


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread, as the corpus builds them: seeded training is reproducible per thread
    count, and two threads on a shared 2-core machine run several times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("family, strides, act", [
    ("codec", (8, 5, 4, 2), "elu"),            # EnCodec 24 kHz
    ("codec", (4, 4, 2, 2, 2, 2), "snake"),    # BigVGAN 24 kHz
    ("codec", (8, 8, 2, 2), "lrelu"),          # HiFi-GAN
    ("vocos", (4, 4, 4, 4), ""),               # Vocos, hop 256
])
def test_codec_like_decoder_upsamples_latent_frames_to_the_input_length(family, strides, act):
    spec = DecoderSpec(family, strides, RATE, activation=act, seed=0)
    model = CodecLike(spec).eval()
    t = 4 * spec.hop * 3
    x = torch.zeros(2, 1, t)
    with torch.no_grad():
        z = model.encoder(x)[..., : t // spec.hop]
        assert z.shape[-1] == t // spec.hop           # one latent frame per hop
        y = model(x)
    assert y.shape == (2, 1, t)
    if family == "codec":  # channels halve per stage, never below 8
        ups = [m for m in model.body if isinstance(m, torch.nn.ConvTranspose1d)]
        assert [m.stride[0] for m in ups] == list(strides)
        assert [m.kernel_size[0] for m in ups] == [2 * s for s in strides]
        assert ups[-1].out_channels == 8


@pytest.mark.parametrize("family, strides, act", [
    ("codec", (8, 5, 4, 2), "snake"),   # DAC-shaped at EnCodec's strides: 75 Hz
    ("vocos", (4, 4, 4, 4), ""),        # iSTFT head, hop 256: 93.75 Hz
])
def test_random_init_codec_leaves_lines_at_multiples_of_rate_over_hop(family, strides, act):
    spec = DecoderSpec(family, strides, RATE, activation=act, seed=1)
    torch.manual_seed(1)
    y = pink(6 * RATE, seed=3)
    clean = analyse_samples(y, RATE)
    a = analyse_samples(decode(CodecLike(spec).eval(), y), RATE)
    step = RATE / spec.hop
    assert clean.comb.teeth == 0 and clean.comb.log10_p == 0.0
    assert a.comb.spacing_hz is not None
    k = a.comb.spacing_hz / step
    assert abs(k - round(k)) * step < a.spectrum.bin_hz and round(k) >= 1
    assert a.comb.teeth >= 40 and a.comb.log10_p > 40
    assert a.factors.get(RATE) == spec.hop // round(k)


def test_snake_is_x_plus_sin_squared_over_alpha():
    act = Snake(3)
    with torch.no_grad():
        act.alpha.copy_(torch.tensor([0.5, 1.0, 2.0]).view(1, 3, 1))
    x = torch.linspace(-2, 2, 9).repeat(1, 3, 1)
    a = torch.tensor([0.5, 1.0, 2.0]).view(1, 3, 1)
    torch.testing.assert_close(act(x), x + torch.sin(a * x) ** 2 / a)


def test_training_lowers_the_reconstruction_loss_and_is_seeded():
    rng = np.random.default_rng(5)
    clips = [pink(3 * RATE, seed=s) + 0.1 * np.sin(2 * np.pi * 220 * np.arange(3 * RATE) / RATE).astype(np.float32)
             for s in range(3)]
    spec = DecoderSpec("codec", (8, 8, 2, 2), RATE, steps=8, activation="snake", seed=int(rng.integers(100)))
    model, rec = train_codec(spec, clips, crop=2048, batch=2)
    assert rec["steps"] == 8 and rec["loss_last"] < rec["loss_first"]
    again, rec2 = train_codec(spec, clips, crop=2048, batch=2)
    assert rec2 == rec
    for p, q in zip(model.parameters(), again.parameters()):
        assert torch.equal(p, q)


@pytest.mark.parametrize("name", sorted(DOUBLE_TRANSFORMS))
def test_double_reencode_writes_the_second_format_only(tmp_path, name):
    y = pink(2 * 44100, seed=2)
    path = write_upload(tmp_path / "clip", y, 44100, name)
    first, second = DOUBLE_TRANSFORMS[name]
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    z, rate = read_native(path)
    assert rate == (48000 if second.startswith("opus") else 44100)
    assert abs(z.size / rate - 2.0) < 0.1
