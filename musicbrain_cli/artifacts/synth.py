"""Synthetic neural decoders: the AI class of the artifact line, made here from human audio.

Issue 22, item 1: the line must not learn one generator's peak positions, so its AI class
is human audio passed through many decoder families built here, with stride products and
output rates covering the common neural codecs and vocoders, some left at random
initialisation and some briefly trained as tiny autoencoders (so the output sounds like
the input and the artifacts are as small as training makes them).

Families (each upsamples a latent at ``rate / prod(strides)`` frames per second to ``rate``):

* ``tconv``    transposed convolutions, kernel 2s, stride s (EnCodec, DAC, HiFi-GAN, BigVGAN);
* ``nearest``  nearest-neighbour upsampling then a convolution (Odena et al. 2016's fix);
* ``linear``   linear interpolation then a convolution;
* ``subpixel`` a convolution to ``s`` times the channels, then a 1-D pixel shuffle
  (Shi et al. 2016);
* ``istft``    a frame-rate convolution stack predicting magnitude and phase, then an
  inverse STFT with hop ``prod(strides)`` (Vocos, Siuzdak 2023).

Afchar et al. (ISMIR 2025) show the first four leave lines at multiples of ``rate / s`` for
the strides of the cascade; the iSTFT head is the family held out of fitting to measure
how the line generalises to a decoder it never saw.

Torch is imported here only; nothing in the forensic path imports this module.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

FAMILIES = ("tconv", "nearest", "linear", "subpixel", "istft")


@dataclass(frozen=True)
class DecoderSpec:
    """One synthetic decoder: family, per-layer strides, output rate (Hz), training steps (0 = random init)."""

    family: str
    strides: tuple[int, ...]
    rate: int
    steps: int = 0
    channels: int = 16
    seed: int = 0

    @property
    def hop(self) -> int:
        return int(math.prod(self.strides))

    @property
    def name(self) -> str:
        s = "x".join(map(str, self.strides))
        return f"{self.family}-{s}-{self.rate // 1000}k-{'trained' if self.steps else 'random'}"


class _Up(nn.Module):
    def __init__(self, family: str, c: int, s: int) -> None:
        super().__init__()
        self.family, self.s = family, s
        if family == "tconv":
            # Output length L*s exactly: (L-1)s - 2p + 2s + op = Ls  <=>  2p - op = s.
            self.conv = nn.ConvTranspose1d(c, c, 2 * s, stride=s, padding=(s + 1) // 2, output_padding=s % 2)
        elif family in ("nearest", "linear"):
            self.conv = nn.Conv1d(c, c, 7, padding=3)
        elif family == "subpixel":
            self.conv = nn.Conv1d(c, c * s, 3, padding=1)
        else:
            raise ValueError(f"unknown upsampling family {family!r}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.family == "tconv":
            return self.conv(x)
        if self.family in ("nearest", "linear"):
            return self.conv(F.interpolate(x, scale_factor=self.s, mode=self.family))
        b, _, n = x.shape
        y = self.conv(x).view(b, -1, self.s, n)          # (B, C, s, L)
        return y.permute(0, 1, 3, 2).reshape(b, -1, n * self.s)  # pixel shuffle along time


class TinyCodec(nn.Module):
    """A strided-conv encoder and one decoder family; ``forward`` maps ``(B, 1, T)`` to ``(B, 1, T)``.

    ``T`` must be a multiple of ``spec.hop``.
    """

    def __init__(self, spec: DecoderSpec) -> None:
        super().__init__()
        c, hop = spec.channels, spec.hop
        self.spec = spec
        self.encoder = nn.Conv1d(1, c, 2 * hop, stride=hop, padding=hop // 2)
        if spec.family == "istft":
            self.n_fft = 4 * hop
            self.body = nn.Sequential(nn.Conv1d(c, c, 3, padding=1), nn.GELU(), nn.Conv1d(c, c, 3, padding=1), nn.GELU())
            self.head = nn.Conv1d(c, 2 * (self.n_fft // 2 + 1), 1)
        else:
            layers: list[nn.Module] = []
            for s in spec.strides:
                layers += [_Up(spec.family, c, s), nn.LeakyReLU(0.1)]
            self.body = nn.Sequential(*layers)
            self.head = nn.Conv1d(c, 1, 7, padding=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = x.shape[-1]
        z = self.encoder(x)[..., : t // self.spec.hop]
        h = self.body(z)
        if self.spec.family != "istft":
            return torch.tanh(self.head(h))
        mag, phase = self.head(h).chunk(2, dim=1)
        spec = torch.exp(mag.clamp(max=6.0)) * torch.exp(1j * phase)
        window = torch.hann_window(self.n_fft, device=x.device)
        y = torch.istft(spec, self.n_fft, hop_length=self.spec.hop, window=window, center=True, length=t)
        return y.unsqueeze(1)


def _stft_loss(a: torch.Tensor, b: torch.Tensor, n_fft: int = 1024) -> torch.Tensor:
    w = torch.hann_window(n_fft, device=a.device)
    A = torch.stft(a.squeeze(1), n_fft, n_fft // 4, window=w, return_complex=True).abs()
    B = torch.stft(b.squeeze(1), n_fft, n_fft // 4, window=w, return_complex=True).abs()
    return (torch.log(A + 1e-5) - torch.log(B + 1e-5)).abs().mean()


def build(spec: DecoderSpec, clips: list[np.ndarray], *, crop: int = 16384, batch: int = 4,
          lr: float = 3e-3) -> TinyCodec:
    """A :class:`TinyCodec`, trained for ``spec.steps`` Adam steps on random crops of ``clips``.

    ``clips`` are float32 ``[shape=(n,)]`` at ``spec.rate``. Seeded by ``spec.seed``: the
    same spec and clips give the same weights (single-threaded CPU).
    """
    torch.manual_seed(spec.seed)
    model = TinyCodec(spec)
    if spec.steps:
        rng = np.random.default_rng(spec.seed)
        crop = spec.hop * max(1, -(-crop // spec.hop))
        usable = [c for c in clips if c.size > crop]
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        for _ in range(spec.steps):
            xs = []
            for _ in range(batch):
                c = usable[int(rng.integers(len(usable)))]
                i = int(rng.integers(c.size - crop))
                xs.append(c[i:i + crop])
            x = torch.from_numpy(np.stack(xs)[:, None, :].astype(np.float32))
            y = model(x)
            loss = (y - x).abs().mean() + _stft_loss(y, x)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


@torch.no_grad()
def decode(model: TinyCodec, y: np.ndarray) -> np.ndarray:
    """Pass ``y [shape=(n,)]`` (at the model's rate) through the codec; same length, peak 0.9."""
    hop = model.spec.hop
    n = y.size
    pad = (-n) % hop
    x = torch.from_numpy(np.pad(y, (0, pad)).astype(np.float32))[None, None]
    out = model(x)[0, 0, :n].numpy().astype(np.float64)
    out -= out.mean()  # the line must not rest on a DC offset, which any high-pass removes
    top = float(np.max(np.abs(out)))
    return (0.9 * out / top).astype(np.float32) if top > 0 else out.astype(np.float32)
