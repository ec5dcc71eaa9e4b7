"""The neural audio autoencoder (the Suno/Udio analogue): audio -> latent -> audio.

Commercial music generators produce audio through a learned decoder: a neural codec
(SoundStream, Zeghidour et al. 2021; EnCodec, Defossez et al. 2022) or a latent
diffusion model's VAE decoder. Those decoders upsample with transposed convolutions, which
leave periodic "checkerboard" artefacts (Odena et al. 2016, Distill, "Deconvolution and
Checkerboard Artifacts") and aliasing that detectors of generated audio key on (Afchar et
al. 2024, "Detecting music deepfakes is easy but actually hard"). This module trains a
small codec of that family on rendered human music, so that re-synthesising a human
rendering yields audio whose *music* is human but whose *signal path* is machine-made.

Architecture: encoder = 1-D convolutions with strided downsampling (:data:`STRIDES`, total
hop :attr:`CodecConfig.hop`) to a low-rate latent; decoder = the mirror image with
``ConvTranspose1d`` upsampling. Loss: L1 on the waveform plus a multi-resolution STFT loss
(spectral convergence + log magnitude; Yamamoto et al. 2020, Parallel WaveGAN, eq. 5-7).
Weights are saved as safetensors beside a JSON config, like the symbolic generators.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from musicbrain_cli.errors import ModelLoadError, TrainingError
from musicbrain_cli.progress import NULL_PROGRESS, Progress
from musicbrain_cli.data.reference.weights import load_weights, save_weights


@dataclass(frozen=True)
class CodecConfig:
    sample_rate: int = 22050
    channels: int = 32
    latent: int = 16
    strides: tuple[int, ...] = (4, 4, 4, 2)

    @property
    def hop(self) -> int:
        """Samples per latent frame: the product of the strides."""
        return int(np.prod(self.strides))


class _Res(nn.Module):
    def __init__(self, ch: int, dilation: int):
        super().__init__()
        self.net = nn.Sequential(nn.ELU(), nn.Conv1d(ch, ch, 3, dilation=dilation,
                                                     padding=dilation),
                                 nn.ELU(), nn.Conv1d(ch, ch, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(x)


class ConvCodec(nn.Module):
    """``forward(y [B, 1, T]) -> y_hat [B, 1, T]``; T must be a multiple of ``cfg.hop``."""

    def __init__(self, cfg: CodecConfig):
        super().__init__()
        self.cfg = cfg
        ch = cfg.channels
        enc: list[nn.Module] = [nn.Conv1d(1, ch, 7, padding=3)]
        chans = [ch]
        for s in cfg.strides:
            nxt = min(chans[-1] * 2, 128)
            # kernel 2s, stride s: each latent frame sees two hops (SoundStream's encoder)
            enc += [_Res(chans[-1], 1), nn.ELU(),
                    nn.Conv1d(chans[-1], nxt, 2 * s, stride=s, padding=s // 2)]
            chans.append(nxt)
        enc += [nn.ELU(), nn.Conv1d(chans[-1], cfg.latent, 3, padding=1)]
        self.encoder = nn.Sequential(*enc)
        dec: list[nn.Module] = [nn.Conv1d(cfg.latent, chans[-1], 7, padding=3)]
        for s, c_in, c_out in zip(reversed(cfg.strides), reversed(chans[1:]),
                                  reversed(chans[:-1])):
            # the transposed convolution whose uneven overlap causes checkerboard artefacts
            dec += [nn.ELU(), nn.ConvTranspose1d(c_in, c_out, 2 * s, stride=s,
                                                 padding=s // 2), _Res(c_out, 1)]
        dec += [nn.ELU(), nn.Conv1d(ch, 1, 7, padding=3), nn.Tanh()]
        self.decoder = nn.Sequential(*dec)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        if y.shape[-1] % self.cfg.hop:
            raise TrainingError(f"input length {y.shape[-1]} is not a multiple of the hop "
                                f"{self.cfg.hop}")
        return self.decoder(self.encoder(y))


# --- loss and training --------------------------------------------------------------------

_STFT_SIZES = ((512, 128), (1024, 256), (2048, 512))  # (n_fft, hop): Parallel WaveGAN, tab. 1


def _stft_mag(y: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    spec = torch.stft(y, n_fft, hop, window=torch.hann_window(n_fft, device=y.device),
                      return_complex=True)
    return spec.abs().clamp_min(1e-5)


def codec_loss(y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """L1 waveform + multi-resolution STFT loss (spectral convergence + log magnitude)."""
    loss = F.l1_loss(y_hat, y)
    a, b = y_hat.squeeze(1), y.squeeze(1)
    for n_fft, hop in _STFT_SIZES:
        ma, mb = _stft_mag(a, n_fft, hop), _stft_mag(b, n_fft, hop)
        sc = torch.linalg.norm(mb - ma) / torch.linalg.norm(mb).clamp_min(1e-5)
        loss = loss + sc + F.l1_loss(torch.log(ma), torch.log(mb))
    return loss


@dataclass(frozen=True)
class CodecTrainSettings:
    steps: int = 250
    batch_size: int = 8
    segment_s: float = 0.5
    lr: float = 1e-3
    eval_every: int = 50
    seed: int = 0


def _segments(audio: Sequence[np.ndarray], *, n: int, length: int,
              rng: np.random.Generator) -> torch.Tensor:
    out = np.zeros((n, 1, length), dtype=np.float32)
    for row in range(n):
        y = audio[int(rng.integers(0, len(audio)))]
        if len(y) > length:
            start = int(rng.integers(0, len(y) - length))
            out[row, 0] = y[start:start + length]
        else:
            out[row, 0, :len(y)] = y
    return torch.from_numpy(out)


def train_codec(train_audio: Sequence[np.ndarray], val_audio: Sequence[np.ndarray],
                cfg: CodecConfig = CodecConfig(), *,
                settings: CodecTrainSettings = CodecTrainSettings(),
                progress: Progress = NULL_PROGRESS) -> tuple[ConvCodec, dict]:
    """Train the codec on mono float32 waveforms at ``cfg.sample_rate``.

    Returns the model (eval mode) and its curve ``{"step", "train_loss", "val_loss",
    "seconds"}``.
    """
    if not train_audio:
        raise TrainingError("no training audio for the codec")
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    length = int(round(settings.segment_s * cfg.sample_rate)) // cfg.hop * cfg.hop
    model = ConvCodec(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=settings.lr, betas=(0.8, 0.99))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, settings.steps,
                                                       eta_min=settings.lr / 10)
    val = _segments(val_audio or train_audio, n=8, length=length,
                    rng=np.random.default_rng(settings.seed + 1))
    curve: dict = {"step": [], "train_loss": [], "val_loss": []}
    running: list[float] = []
    t0 = time.perf_counter()
    with progress.task("training neural codec", total=settings.steps) as task:
        for step in range(settings.steps):
            model.train()
            y = _segments(train_audio, n=settings.batch_size, length=length, rng=rng)
            loss = codec_loss(model(y), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            running.append(loss.item())
            if (step + 1) % settings.eval_every == 0 or step + 1 == settings.steps:
                model.eval()
                with torch.no_grad():
                    curve["val_loss"].append(float(codec_loss(model(val), val)))
                curve["step"].append(step + 1)
                curve["train_loss"].append(float(np.mean(running)))
                running = []
            task.advance()
    curve["seconds"] = time.perf_counter() - t0
    model.eval()
    return model, curve


@torch.no_grad()
def resynthesize(model: ConvCodec, y: np.ndarray, *, chunk_s: float = 30.0) -> np.ndarray:
    """Pass mono audio ``y`` [shape=(n,)] through the codec; returns float32 [shape=(n,)].

    The output is scaled to the input's peak level, so loudness is not what tells the
    classes apart. The model must be in eval mode (it is not changed here).
    """
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1 or not len(y):
        raise TrainingError(f"resynthesize expects mono samples, got shape {y.shape}")
    hop = model.cfg.hop
    n = len(y)
    padded = np.pad(y, (0, (-n) % hop))
    chunk = max(hop, int(chunk_s * model.cfg.sample_rate) // hop * hop)
    out = np.concatenate([
        model(torch.from_numpy(padded[i:i + chunk])[None, None])[0, 0].numpy()
        for i in range(0, len(padded), chunk)])[:n]
    peak_in, peak_out = float(np.abs(y).max()), float(np.abs(out).max())
    if peak_out > 0:
        out = out * (peak_in / peak_out)
    return out.astype(np.float32)


# --- checkpoint I/O -----------------------------------------------------------------------


def save_codec(model: ConvCodec, directory: str | Path, name: str, *, meta: dict) -> Path:
    """Write ``<name>.safetensors`` and ``<name>.json`` (architecture and ``meta``)."""
    return save_weights(model.state_dict(), directory, name,
                        config={"name": name, "kind": "conv-codec",
                                "architecture": asdict(model.cfg), **meta})


def load_codec(directory: str | Path, name: str) -> tuple[ConvCodec, dict]:
    """Load a codec saved by :func:`save_codec` (SHA-256 checked). Model in eval mode."""
    config, state = load_weights(directory, name, kind="conv-codec", what="codec")
    try:
        arch = dict(config["architecture"])
        arch["strides"] = tuple(arch["strides"])
        model = ConvCodec(CodecConfig(**arch))
        model.load_state_dict(state, strict=True)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ModelLoadError(f"cannot load codec {name!r} from {str(directory)!r}: "
                             f"{exc}") from exc
    model.eval()
    return model, config
