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

Those five are tiny (16 channels) and at most briefly trained; real codecs are deep
decoders trained to convergence and leave much weaker lines (issue 22: the first line
called 0 of 28 real codec re-syntheses AI). Two families in the shape of real decoders,
trained as autoencoders for hundreds of steps on multi-scale STFT + L1 losses:

* ``codec``  SEANet / DAC / BigVGAN-shaped (Défossez et al. 2022, EnCodec; Kumar et al.
  2023, DAC; Lee et al. 2023, BigVGAN): a conv in, then per upsampling stage an
  activation, a transposed conv (kernel 2s, stride s) and three residual units with
  dilated convolutions (dilations 1, 3, 9), channels halving per stage, a conv out.
  Activation ``elu`` (EnCodec / SEANet), ``snake`` (``x + sin^2(a x) / a`` with a learned
  ``a`` per channel, DAC / BigVGAN) or ``lrelu`` (HiFi-GAN), see :data:`CODEC_ACTIVATION`;
* ``vocos``  a frame-rate ConvNeXt stack predicting magnitude and phase, then an inverse
  STFT with hop ``prod(strides)`` and ``n_fft = 4 hop`` (Vocos, Siuzdak 2023).

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
#: Decoders in the shape of real codecs and vocoders (see the module docstring).
CODEC_FAMILIES = ("codec", "vocos")
CODEC_ACTIVATIONS = ("elu", "snake", "lrelu")
#: Channels of the first ``codec`` stage (halving per stage, never below 8) and of ``vocos``.
CODEC_CHANNELS = 64


@dataclass(frozen=True)
class DecoderSpec:
    """One synthetic decoder: family, per-layer strides, output rate (Hz), training steps (0 = random init)."""

    family: str
    strides: tuple[int, ...]
    rate: int
    steps: int = 0
    channels: int = 16
    seed: int = 0
    activation: str = ""   # codec family only: one of CODEC_ACTIVATIONS

    @property
    def hop(self) -> int:
        return int(math.prod(self.strides))

    @property
    def name(self) -> str:
        s = "x".join(map(str, self.strides))
        fam = f"{self.family}_{self.activation}" if self.activation else self.family
        return f"{fam}-{s}-{self.rate // 1000}k-{'trained' if self.steps else 'random'}"


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


class Snake(nn.Module):
    """``x + sin^2(a x) / a`` with a learned ``a`` per channel, initialised to 1 (DAC, BigVGAN)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(1, c, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.sin(self.alpha * x).pow(2) / (self.alpha + 1e-9)


def _act(kind: str, c: int) -> nn.Module:
    if kind == "elu":
        return nn.ELU()
    if kind == "snake":
        return Snake(c)
    if kind == "lrelu":
        return nn.LeakyReLU(0.1)
    raise ValueError(f"unknown activation {kind!r}, expected one of {CODEC_ACTIVATIONS}")


class _ResUnit(nn.Module):
    """act -> conv k7 dilation d -> act -> conv k1, plus the input (SEANet / DAC residual unit)."""

    def __init__(self, c: int, d: int, act: str) -> None:
        super().__init__()
        self.net = nn.Sequential(_act(act, c), nn.Conv1d(c, c, 7, dilation=d, padding=3 * d),
                                 _act(act, c), nn.Conv1d(c, c, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(x)


class _ConvNeXt(nn.Module):
    """Depthwise conv k7 -> LayerNorm -> pointwise x3 -> GELU -> pointwise, residual (Vocos backbone)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.dw = nn.Conv1d(c, c, 7, padding=3, groups=c)
        self.norm = nn.LayerNorm(c)
        self.pw = nn.Sequential(nn.Linear(c, 3 * c), nn.GELU(), nn.Linear(3 * c, c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.pw(self.norm(self.dw(x).transpose(1, 2))).transpose(1, 2)
        return x + h


class CodecLike(nn.Module):
    """A strided-conv encoder and a decoder in the shape of a real codec/vocoder decoder.

    ``forward`` maps ``(B, 1, T)`` to ``(B, 1, T)``; ``T`` must be a multiple of ``spec.hop``.
    The encoder is deliberately simple (one strided conv to a continuous latent at
    ``rate / hop`` frames per second): the line looks at what the DECODER leaves.
    """

    def __init__(self, spec: DecoderSpec) -> None:
        super().__init__()
        hop, n = spec.hop, len(spec.strides)
        self.spec = spec
        if spec.family == "codec":
            c0 = min(128, 8 * 2 ** (n - 1))
            self.encoder = nn.Conv1d(1, c0, 2 * hop, stride=hop, padding=hop // 2)
            layers: list[nn.Module] = [nn.Conv1d(c0, c0, 7, padding=3)]
            c = c0
            for s in spec.strides:
                out = max(8, c // 2)
                layers += [_act(spec.activation, c),
                           nn.ConvTranspose1d(c, out, 2 * s, stride=s, padding=(s + 1) // 2, output_padding=s % 2)]
                layers += [_ResUnit(out, d, spec.activation) for d in (1, 3, 9)]
                c = out
            layers += [_act(spec.activation, c), nn.Conv1d(c, 1, 7, padding=3), nn.Tanh()]
            self.body = nn.Sequential(*layers)
        elif spec.family == "vocos":
            c = CODEC_CHANNELS
            self.n_fft = 4 * hop
            self.encoder = nn.Conv1d(1, c, 2 * hop, stride=hop, padding=hop // 2)
            self.body = nn.Sequential(nn.Conv1d(c, c, 7, padding=3), *[_ConvNeXt(c) for _ in range(4)])
            self.head = nn.Conv1d(c, self.n_fft + 2, 1)
        else:
            raise ValueError(f"unknown codec-like family {spec.family!r}, expected one of {CODEC_FAMILIES}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = x.shape[-1]
        z = self.encoder(x)[..., : t // self.spec.hop]
        h = self.body(z)
        if self.spec.family == "codec":
            return h
        mag, p = self.head(h).chunk(2, dim=1)
        # Vocos: magnitude exp(m) (clipped), phase as (cos p, sin p) so it wraps smoothly.
        spec = torch.exp(mag.clamp(max=6.0)) * torch.complex(torch.cos(p), torch.sin(p))
        window = torch.hann_window(self.n_fft, device=x.device)
        y = torch.istft(spec, self.n_fft, hop_length=self.spec.hop, window=window, center=True, length=t)
        return y.unsqueeze(1)


#: FFT sizes of the multi-scale STFT loss used to train the codec-like decoders (as in DAC / Vocos).
STFT_SCALES = (256, 512, 1024, 2048)


def multiscale_stft_loss(a: torch.Tensor, b: torch.Tensor, *, scales: tuple[int, ...] = STFT_SCALES) -> torch.Tensor:
    """Mean over ``scales`` of L1 between log magnitudes plus L1 between magnitudes."""
    total = a.new_zeros(())
    for n_fft in scales:
        w = torch.hann_window(n_fft, device=a.device)
        A = torch.stft(a.squeeze(1), n_fft, n_fft // 4, window=w, return_complex=True).abs()
        B = torch.stft(b.squeeze(1), n_fft, n_fft // 4, window=w, return_complex=True).abs()
        total = total + (torch.log(A + 1e-5) - torch.log(B + 1e-5)).abs().mean() + (A - B).abs().mean()
    return total / len(scales)


def _stft_loss(a: torch.Tensor, b: torch.Tensor, n_fft: int = 1024) -> torch.Tensor:
    w = torch.hann_window(n_fft, device=a.device)
    A = torch.stft(a.squeeze(1), n_fft, n_fft // 4, window=w, return_complex=True).abs()
    B = torch.stft(b.squeeze(1), n_fft, n_fft // 4, window=w, return_complex=True).abs()
    return (torch.log(A + 1e-5) - torch.log(B + 1e-5)).abs().mean()


def build(spec: DecoderSpec, clips: list[np.ndarray], *, crop: int = 16384, batch: int = 4,
          lr: float = 3e-3) -> nn.Module:
    """A :class:`TinyCodec` (or :class:`CodecLike` for :data:`CODEC_FAMILIES`), trained for
    ``spec.steps`` Adam steps on random crops of ``clips``.

    ``clips`` are float32 ``[shape=(n,)]`` at ``spec.rate``. Seeded by ``spec.seed``: the
    same spec and clips give the same weights (single-threaded CPU).
    """
    torch.manual_seed(spec.seed)
    if spec.family in CODEC_FAMILIES:
        return train_codec(spec, clips)[0]
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


#: Training of the codec-like decoders: crop (samples, rounded up to a multiple of the hop),
#: batch, Adam learning rate (decayed by cosine to 10 %), gradient-norm clip.
CODEC_CROP = 8192
CODEC_BATCH = 4
CODEC_LR = 2e-3
CODEC_CLIP = 1.0


def train_codec(spec: DecoderSpec, clips: list[np.ndarray], *, crop: int = CODEC_CROP, batch: int = CODEC_BATCH,
                lr: float = CODEC_LR, clip_norm: float = CODEC_CLIP) -> tuple[CodecLike, dict]:
    """A :class:`CodecLike` trained as an autoencoder for ``spec.steps`` Adam steps on ``clips``
    (L1 + :func:`multiscale_stft_loss`), and its training record: the mean loss of the first
    and last 10 % of steps and the last-10 % mean of the multi-scale STFT term alone.
    Random crops are normalised to peak 0.9 (an upload's loudness, and what ``decode`` feeds).
    """
    torch.manual_seed(spec.seed)
    model = CodecLike(spec)
    record = {"steps": spec.steps, "loss_first": None, "loss_last": None, "stft_last": None}
    if not spec.steps:
        return model.eval(), record
    rng = np.random.default_rng(spec.seed)
    crop = spec.hop * max(1, -(-crop // spec.hop))
    usable = [c for c in clips if c.size > crop]
    if not usable:
        raise ValueError(f"no clip longer than the crop of {crop} samples among {len(clips)} clips")
    opt = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.8, 0.99))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, spec.steps, eta_min=0.1 * lr)
    losses, stfts = [], []
    for _ in range(spec.steps):
        xs = []
        for _ in range(batch):
            c = usable[int(rng.integers(len(usable)))]
            i = int(rng.integers(c.size - crop))
            seg = c[i:i + crop].astype(np.float32)
            xs.append(0.9 * seg / max(float(np.max(np.abs(seg))), 1e-3))
        x = torch.from_numpy(np.stack(xs)[:, None, :])
        y = model(x)
        stft = multiscale_stft_loss(y, x)
        loss = (y - x).abs().mean() + stft
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
        opt.step()
        sched.step()
        losses.append(loss.item())
        stfts.append(stft.item())
    k = max(1, spec.steps // 10)
    record.update(loss_first=float(np.mean(losses[:k])), loss_last=float(np.mean(losses[-k:])),
                  stft_last=float(np.mean(stfts[-k:])))
    return model.eval(), record


@torch.no_grad()
def decode(model: nn.Module, y: np.ndarray) -> np.ndarray:
    """Pass ``y [shape=(n,)]`` (at the model's rate) through the codec; same length, peak 0.9."""
    hop = model.spec.hop
    n = y.size
    if isinstance(model, CodecLike):  # trained on crops at peak 0.9: feed what it learned on
        y = 0.9 * y / max(float(np.max(np.abs(y))), 1e-3)
    pad = (-n) % hop
    x = torch.from_numpy(np.pad(y, (0, pad)).astype(np.float32))[None, None]
    out = model(x)[0, 0, :n].numpy().astype(np.float64)
    out -= out.mean()  # the line must not rest on a DC offset, which any high-pass removes
    top = float(np.max(np.abs(out)))
    return (0.9 * out / top).astype(np.float32) if top > 0 else out.astype(np.float32)
