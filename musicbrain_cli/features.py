"""Waveform -> model input: a log-mel (default) or constant-Q map, computed in torch.

Stage contract (one-way data flow: ``audio`` -> ``features`` -> ``model``)::

    FrontEnd(config)(waves)   waves  [B, n_samples]           float32, mono, at config.sample_rate
                              ->     [B, 1, n_bins, n_frames]  float32, roughly in [-1, 1]

Rows are frequency bins, low to high (:func:`bin_frequencies` gives each row's centre in
Hz); columns are frames (:func:`frame_times` gives each column's centre in seconds from the
window start). Frames, seconds and Hz are converted here and nowhere else.

Framing (after whisper's ``audio.py``): the STFT is centred (``n_fft // 2`` zeros each side)
and the last frame is dropped, so a window of ``n_samples`` samples gives exactly
``n_samples / hop_length`` frames and frame ``t`` is centred at ``t * hop_length / sample_rate``
seconds. :class:`FrontEndConfig` checks that the division is exact.

Scaling is fixed, never adaptive: the spectrum is scaled so that a full-scale sinusoid has
magnitude 1 (0 dBFS), power is floored at ``amin`` (-100 dBFS by default), and the map is
``(dB + db_offset) / db_scale - 1``, so -100 dBFS -> -1 and 0 dBFS -> +1. No per-window
max/mean normalisation: a quiet passage must stay quiet, or the model (and an expert reading
the heatmap) could not tell a hiss floor from a melody.

The window's mean is taken off first (version 0.3.8). A constant offset (a converter's DC
bias, a careless edit) carries no music: in the inner frames it lands in the two lowest FFT
bins (a periodic Hann window's spectrum is non-zero at bins 0 and 1 only), which no mel band
from ``f_min`` = 27.5 Hz reads, but it moved the map through the peak-normalising gain (the
offset adds to the peak) and through the zero-padded edge frames (the padding makes a step
of the offset's size, a broadband click). Measured before: a +0.1 offset moved a human test
clip from P(AI) 0.57 to 0.60 and called it ``ai`` (docs/evaluation/robustness-edits.md).

Time-frequency resolution (issue #3)
------------------------------------
Explanations (Grad-CAM / FM-G-CAM) are taken from the model's fused feature map, so its
grid, not the input's, decides whether a heatmap can point at one partial rather than its
neighbour. A stock ConvNeXt reduces by 32 in both axes: a 128-bin mel input keeps 4 rows.

The harmonics of A3 (220 Hz) are 220 Hz apart. Measured choices (``benchmarks/model.py
--compare``, numbers in the model module's docstring):

* 256 Slaney-mel bins from 27.5 Hz to 11.025 kHz (rather than 128): bins are 12.8 Hz wide
  below 1 kHz and 1.33 % of f above (a quarter of a semitone; 27 Hz at 2 kHz).
* an anisotropic patchify stem in the model (stride 2 in frequency, 8 in time; nothing is
  pretrained, so the stem is free to change) and fusion at the grid of the lowest fused
  stage (stage 1), so the explained map keeps ``n_bins / 4`` = 64 rows: one row per 4 mel
  bins, ~51 Hz below 1 kHz and ~5.4 % of f (under a semitone) above. Partials of a 220 Hz
  note stay two rows apart up to ~2 kHz (the 9th harmonic); with a stock 4x4 stem on 128
  bins the fused stage-1 grid has rows of ~200 Hz below 1 kHz, and the stock stage-3 grid
  4 rows in all.
* 20 ms hop (441 samples at 22.05 kHz: 10 s -> 500 frames exactly) at the input, for onset
  checks; the model's time axis is the cheap one to give up (stride 8: 31 columns of
  ~320 ms in the fused map), which halves the cost of the 2x4 stem.

The CQT option (``kind="cqt"``) gives log-spaced bins (``bins_per_octave`` per octave) with
a constant Q, where partial h and h+1 are ``12*log2((h+1)/h)`` semitones apart; it is
computed with the spectral-kernel method of Brown & Puckette (1992), "An efficient
algorithm for the calculation of a constant Q transform", JASA 92(5): one large FFT per
frame, then a sparse product with the FFT of each bin's windowed complex exponential. It is
several times slower than the mel map and is offered for experiments.

CPU/GPU agreement: the same float32 operations run on both. The stated tolerance is
``CPU_GPU_ATOL`` map units (0.1 dB) on bins within 80 dB of the window's peak;
``tests/test_features.py`` asserts it under ``@pytest.mark.gpu`` (not yet run on a GPU: the
development machine has none). Far below the peak, float32 rounding of the FFT (~1e-7 of the
peak's amplitude) dominates and dB values of near-silent bins can differ by more; they carry
no evidence.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

import numpy as np
import torch

from musicbrain_cli.errors import ConfigError

#: Agreement of CPU and GPU maps, in map units (1 unit = ``db_scale`` dB), for bins within
#: 80 dB of the window's peak. See the module docstring.
CPU_GPU_ATOL = 2e-3

KINDS = ("logmel", "cqt")
#: Peak below which a window counts as silent and is never scaled (-120 dBFS).
SILENT_PEAK = 1e-6



def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; ``"cpu"``/``"cuda"``/``"cuda:N"`` as given.
    A name torch does not know, or CUDA asked for where there is none: :class:`ConfigError`."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"unknown device {device!r} (use auto, cpu or cuda)") from exc
    if dev.type not in ("cpu", "cuda"):
        # torch names more device types (mps, meta, xpu...) than this program runs on; one of
        # them ended in a traceback deep in the front end (review of session 45)
        raise ConfigError(f"device {device!r} is not supported here (use auto, cpu, cuda or "
                          "cuda:N)")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} requested but CUDA is not available")
    return dev


@dataclass(frozen=True)
class FrontEndConfig:
    """Every parameter of the front end; recorded in checkpoints and feature caches.

    Units: ``sample_rate`` Hz, ``n_fft``/``hop_length`` samples, ``f_min``/``f_max`` Hz,
    ``window_s``/``hop_s`` seconds (the model's analysis windows, not STFT frames).
    """

    kind: str = "logmel"
    sample_rate: int = 22050
    n_fft: int = 2048          # logmel only: 93 ms at 22.05 kHz, 10.8 Hz FFT bins
    hop_length: int = 441      # 20 ms; 10 s -> 500 frames exactly
    n_bins: int = 256          # mel bands, or CQT bins
    f_min: float = 27.5        # A0, the lowest piano key
    f_max: float = 11025.0     # logmel only: Nyquist at 22.05 kHz
    bins_per_octave: int = 24  # cqt only
    filter_scale: float = 1.0  # cqt only: Q multiplier (librosa's meaning)
    amin: float = 1e-10        # power floor: -100 dBFS
    db_offset: float = 100.0   # map = (dB + db_offset) / db_scale - 1
    db_scale: float = 50.0
    window_s: float = 10.0
    hop_s: float = 5.0
    # Scale each window so its largest absolute sample is this value (0 = off). Level is not
    # evidence of how music was made, and in rendered corpora it can leak the class: whole
    # human pieces are peak-normalised before they are cut into clips, while generated
    # pieces are clip-length, so their windows peak higher. Normalising every window, in
    # training and inference alike, removes level as a cue (gain changes become no-ops).
    peak_normalize: float = 0.0

    def __post_init__(self) -> None:
        if not (isinstance(self.peak_normalize, (int, float))
                and 0.0 <= self.peak_normalize <= 1.0):
            raise ConfigError(f"front end peak_normalize must lie in [0, 1], not "
                              f"{self.peak_normalize!r}")
        if self.kind not in KINDS:
            raise ConfigError(f"unknown front end kind {self.kind!r} (known: {list(KINDS)})")
        for name in ("sample_rate", "n_fft", "hop_length", "n_bins", "bins_per_octave"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"front end {name} must be a positive integer, not {value!r}")
        for name in ("f_min", "f_max", "filter_scale", "amin", "db_scale", "window_s", "hop_s"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ConfigError(f"front end {name} must be a positive number, not {value!r}")
        if self.kind == "logmel" and self.n_fft % 2:
            # A centred STFT of odd length gives one frame fewer than n_samples / hop_length
            # (torch pads n_fft // 2 each side), so the map would not have n_frames columns.
            raise ConfigError(f"front end n_fft must be even, not {self.n_fft}")
        nyquist = self.sample_rate / 2
        if self.kind == "logmel" and not self.f_min < self.f_max <= nyquist:
            raise ConfigError(
                f"need f_min < f_max <= Nyquist ({nyquist} Hz), got f_min={self.f_min}, "
                f"f_max={self.f_max}"
            )
        if self.kind == "cqt" and self.cqt_top_frequency >= nyquist:
            raise ConfigError(
                f"the top CQT bin ({self.cqt_top_frequency:.1f} Hz) must lie below Nyquist "
                f"({nyquist} Hz): lower n_bins={self.n_bins} or f_min={self.f_min}"
            )
        # Derived sizes must be exact (whisper audio.py: N_SAMPLES, N_FRAMES).
        n_samples = self.window_s * self.sample_rate
        if abs(n_samples - round(n_samples)) > 1e-6:
            raise ConfigError(
                f"window_s={self.window_s} s is not a whole number of samples at "
                f"{self.sample_rate} Hz"
            )
        if round(n_samples) % self.hop_length:
            raise ConfigError(
                f"window of {round(n_samples)} samples is not a whole number of hops of "
                f"{self.hop_length} samples"
            )
        if self.hop_s > self.window_s:
            raise ConfigError(
                f"hop_s={self.hop_s} s exceeds window_s={self.window_s} s: audio would be skipped"
            )

    # --- derived sizes ------------------------------------------------------------------

    @property
    def n_samples(self) -> int:
        """Samples per model window."""
        return int(round(self.window_s * self.sample_rate))

    @property
    def n_frames(self) -> int:
        """Frames (columns) per model window; exact by construction."""
        return self.n_samples // self.hop_length

    @property
    def hop_samples(self) -> int:
        """Samples between consecutive model windows."""
        return int(round(self.hop_s * self.sample_rate))

    @property
    def frame_rate(self) -> float:
        """Frames per second."""
        return self.sample_rate / self.hop_length

    @property
    def cqt_top_frequency(self) -> float:
        return self.f_min * 2.0 ** ((self.n_bins - 1) / self.bins_per_octave)

    @property
    def silence_level(self) -> float:
        """The map value of digital silence (power at ``amin``): -1 with the defaults."""
        return (10.0 * math.log10(self.amin) + self.db_offset) / self.db_scale - 1.0

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(1, n_bins, n_frames)``: one window's map."""
        return (1, self.n_bins, self.n_frames)

    # --- serialisation ------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "FrontEndConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown front end parameters {unknown} (known: {sorted(known)})")
        try:
            return cls(**dict(data))
        except TypeError as exc:
            raise ConfigError(f"malformed front end config {dict(data)!r}: {exc}") from exc


# --- axes ---------------------------------------------------------------------------------


def bin_frequencies(config: FrontEndConfig) -> np.ndarray:
    """Centre frequency in Hz of each row of the map, shape ``(n_bins,)``, ascending."""
    if config.kind == "cqt":
        return config.f_min * 2.0 ** (np.arange(config.n_bins) / config.bins_per_octave)
    import librosa

    # Slaney mel (librosa's default, htk=False): linear below 1 kHz, logarithmic above.
    # Filter i peaks at point i + 1 of n_bins + 2 equally spaced mel points.
    return librosa.mel_frequencies(
        config.n_bins + 2, fmin=config.f_min, fmax=config.f_max, htk=False
    )[1:-1]


def frame_times(config: FrontEndConfig) -> np.ndarray:
    """Centre time in seconds (from the window start) of each column, shape ``(n_frames,)``."""
    return np.arange(config.n_frames) * (config.hop_length / config.sample_rate)


def frames_to_seconds(frames, config: FrontEndConfig):
    """Frame index (int or float, array ok) -> seconds from the window start."""
    return np.asarray(frames) * (config.hop_length / config.sample_rate)


def seconds_to_frames(seconds, config: FrontEndConfig):
    """Seconds from the window start -> (fractional) frame index."""
    return np.asarray(seconds) * (config.sample_rate / config.hop_length)


# --- kernels ------------------------------------------------------------------------------


def mel_filterbank(config: FrontEndConfig) -> np.ndarray:
    """Triangular Slaney-mel filters, shape ``(n_bins, n_fft // 2 + 1)``, peak height 1.

    Peak-height-1 filters (``norm=None``) keep a sinusoid at a filter's centre at its own
    level in dB, so map values read as dBFS.
    """
    import librosa

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fb = librosa.filters.mel(
            sr=config.sample_rate, n_fft=config.n_fft, n_mels=config.n_bins,
            fmin=config.f_min, fmax=config.f_max, htk=False, norm=None,
        )
    if any("Empty filters" in str(w.message) for w in caught) or (fb.max(axis=1) == 0).any():
        raise ConfigError(
            f"n_bins={config.n_bins} mel bands are too narrow for n_fft={config.n_fft} at "
            f"{config.sample_rate} Hz: some bands hold no FFT bin; raise n_fft or lower n_bins"
        )
    return fb.astype(np.float32)


def cqt_kernel(config: FrontEndConfig, *, threshold: float = 1e-3) -> tuple[np.ndarray, int]:
    """Spectral CQT kernel (Brown & Puckette 1992) and its FFT size.

    Returns ``(kernel, n_fft)``: ``kernel`` is complex64 ``(n_bins, n_fft // 2 + 1)``, each
    row the conjugated, ``1/n_fft``-scaled FFT of a Hann-windowed complex exponential of
    length ``N_k = Q * sr / f_k`` normalised to unit sum, so a full-scale sinusoid at
    ``f_k`` gives magnitude 1 (0 dBFS), like the mel map. Entries below ``threshold`` x the
    row's peak are zeroed (Brown & Puckette's sparsity step).
    """
    q = config.filter_scale / (2.0 ** (1.0 / config.bins_per_octave) - 1.0)
    freqs = bin_frequencies(config)
    lengths = np.ceil(q * config.sample_rate / freqs).astype(int)
    n_fft = int(2 ** math.ceil(math.log2(lengths.max())))
    kernel = np.zeros((config.n_bins, n_fft // 2 + 1), dtype=np.complex128)
    for k, (f, n) in enumerate(zip(freqs, lengths)):
        window = np.hanning(n)
        t = np.arange(n) - (n - 1) / 2          # centred on the frame centre
        atom = np.zeros(n_fft, dtype=np.complex128)
        start = n_fft // 2 - n // 2
        # 2/sum(window): a real sinusoid of amplitude 1 correlates to magnitude 1.
        atom[start:start + n] = window * np.exp(2j * np.pi * f * t / config.sample_rate)
        atom *= 2.0 / window.sum()
        spectrum = np.fft.fft(atom)[: n_fft // 2 + 1]
        spectrum[np.abs(spectrum) < threshold * np.abs(spectrum).max()] = 0
        # Parseval: sum_n x[n] conj(a[n]) = (1/N) sum_f X[f] conj(A[f]); the atom lives on
        # positive frequencies only, so the one-sided spectrum suffices.
        kernel[k] = np.conj(spectrum) / n_fft
    return kernel.astype(np.complex64), n_fft


# --- the module ---------------------------------------------------------------------------


class FrontEnd(torch.nn.Module):
    """``waves [B, n_samples] float32 -> maps [B, 1, n_bins, n_frames] float32``.

    Has no trainable parameters; its buffers are derived from the config and are not part
    of the state dict (a checkpoint stores the config instead).
    """

    def __init__(self, config: FrontEndConfig):
        super().__init__()
        self.config = config
        if config.kind == "logmel":
            self.n_fft = config.n_fft
            window = torch.hann_window(config.n_fft, periodic=True, dtype=torch.float64)
            # 2/sum(window): a full-scale sinusoid gets magnitude 1 (0 dBFS).
            self.register_buffer("window", window.float(), persistent=False)
            self.register_buffer("scale", torch.tensor(float(2.0 / window.sum())), persistent=False)
            self.register_buffer(
                "filters", torch.from_numpy(mel_filterbank(config)), persistent=False
            )
            # Taking a window's mean off changes an inner frame's spectrum at FFT bins 0 and 1
            # only; where no band reads them, forward_consecutive may share inner frames.
            self._dc_blind = bool((self.filters[:, :2] == 0).all())
        else:
            self._dc_blind = False
            kernel, n_fft = cqt_kernel(config)
            self.n_fft = n_fft
            # Rectangular frames: each atom carries its own Hann window.
            self.register_buffer("window", torch.ones(n_fft), persistent=False)
            self.register_buffer("scale", torch.tensor(1.0), persistent=False)
            # Sparse COO (the point of the spectral-kernel method): a dense product would
            # cost n_bins x n_fft/2 multiply-adds per frame. Real and imaginary kept apart.
            self.register_buffer(
                "kernel_re", torch.from_numpy(kernel.real.copy()).to_sparse(), persistent=False
            )
            self.register_buffer(
                "kernel_im", torch.from_numpy(kernel.imag.copy()).to_sparse(), persistent=False
            )

    def extra_repr(self) -> str:
        c = self.config
        return f"kind={c.kind!r}, sample_rate={c.sample_rate}, n_bins={c.n_bins}, n_frames={c.n_frames}"

    def power(self, waves: torch.Tensor) -> torch.Tensor:
        """Power map ``[B, n_bins, n_frames]`` (linear, 1.0 = full-scale sinusoid)."""
        c = self.config
        if waves.ndim != 2 or waves.shape[-1] != c.n_samples:
            raise ConfigError(
                f"front end expects waves of shape [B, {c.n_samples}] "
                f"({c.window_s} s at {c.sample_rate} Hz), got {list(waves.shape)}"
            )
        if waves.dtype != torch.float32:
            raise ConfigError(f"front end expects float32 waves, got {waves.dtype}")
        stft = torch.stft(
            waves, n_fft=self.n_fft, hop_length=c.hop_length, window=self.window,
            center=True, pad_mode="constant", return_complex=True,
        )[..., :-1]                                   # drop the last frame (whisper)
        if c.kind == "logmel":
            mag2 = (stft.abs() * self.scale) ** 2     # [B, n_fft//2+1, T]
            return torch.matmul(self.filters, mag2)
        b, n_freq, t = stft.shape
        # [n_freq, B*T] so one sparse product serves the whole batch.
        flat = stft.permute(1, 0, 2).reshape(n_freq, b * t)
        re, im = flat.real.contiguous(), flat.imag.contiguous()
        # K X with K = Kr + i Ki (already conjugated): (Kr Xr - Ki Xi) + i (Kr Xi + Ki Xr).
        out_re = torch.sparse.mm(self.kernel_re, re) - torch.sparse.mm(self.kernel_im, im)
        out_im = torch.sparse.mm(self.kernel_re, im) + torch.sparse.mm(self.kernel_im, re)
        power = out_re ** 2 + out_im ** 2                 # [n_bins, B*T]
        return power.reshape(-1, b, t).permute(1, 0, 2).contiguous()

    def _gain(self, waves: torch.Tensor) -> torch.Tensor | None:
        """Per-window peak-normalising gain ``[B, 1]`` (``None`` when it is off)."""
        c = self.config
        if c.peak_normalize <= 0:
            return None
        # Windows quieter than -120 dBFS (digital silence, padding) are left as they are.
        peak = waves.abs().amax(dim=-1, keepdim=True)
        return torch.where(peak > SILENT_PEAK, c.peak_normalize / peak.clamp_min(SILENT_PEAK),
                           torch.ones_like(peak))

    def _to_map(self, power: torch.Tensor) -> torch.Tensor:
        c = self.config
        db = 10.0 * torch.log10(power.clamp_min(c.amin))
        return ((db + c.db_offset) / c.db_scale - 1.0).unsqueeze(1)

    @staticmethod
    def _centred(waves: torch.Tensor) -> torch.Tensor:
        """Each window with its mean taken off (see the module docstring)."""
        return waves - waves.mean(dim=-1, keepdim=True)

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        if waves.ndim == 2:
            waves = self._centred(waves)
        gain = self._gain(waves)
        return self._to_map(self.power(waves if gain is None else waves * gain))

    def forward_consecutive(self, waves: torch.Tensor) -> torch.Tensor:
        """:meth:`forward` for windows cut from one signal at the config's hop, computing the
        frames that overlapping windows share once.

        With the default 10 s windows every 5 s, each STFT frame lies in two windows; inside
        a window (away from the zero-padded edges that ``center=True`` adds) its spectrum
        and mel energies are the same in both, and the peak-normalising gain is a factor on
        power, so the frames are computed once on the joined signal and each window takes
        its slice times its own gain squared. Only the few frames at each window's edges are
        computed per window. Each window's own mean is taken off as :meth:`forward` does: an
        inner frame's mel energies do not see it (no band reads FFT bins 0 and 1, checked at
        construction), so it enters through the edge frames and the gain. The result equals
        :meth:`forward` up to float rounding (the gain applied after the filterbank instead of
        before the STFT): tested to 1e-6 of the map's range. Falls back to :meth:`forward` when the windows do not overlap as
        consecutive windows do (checked sample by sample), for the CQT front end, for a
        single window, and when no frame lies wholly inside a window (``n_fft`` over half
        of it).
        """
        c = self.config
        n, hop, step, half = c.n_samples, c.hop_samples, c.hop_length, self.n_fft // 2
        b = waves.shape[0]
        lo = -(-half // step)                          # first frame not reaching before 0
        hi = min((n - half) // step, c.n_frames - 1)   # last frame not reaching past n
        if (c.kind != "logmel" or waves.ndim != 2 or b < 2 or waves.shape[1] != n
                or not 0 < hop < n or hop % step or waves.dtype != torch.float32 or hi < lo
                or not self._dc_blind
                or not torch.equal(waves[1:, : n - hop], waves[:-1, hop:])):
            return self.forward(waves)
        per_hop = hop // step
        signal = torch.cat([waves[0], waves[1:, n - hop:].reshape(-1)])
        # any constant taken off leaves the inner frames' bands as they are; the joined
        # signal's mean, taken off, keeps an offset's rounding out of the quiet bands
        signal = signal - signal.mean()
        last = (b - 1) * per_hop + hi                  # global index of the last inner frame
        segment = signal[lo * step - half: last * step + half]
        stft = torch.stft(segment, n_fft=self.n_fft, hop_length=step, window=self.window,
                          center=False, return_complex=True)          # [F, last - lo + 1]
        shared = torch.matmul(self.filters, (stft.abs() * self.scale) ** 2)   # [n_bins, M]
        take = (torch.arange(b, device=waves.device)[:, None] * per_hop
                + torch.arange(hi - lo + 1, device=waves.device)[None, :])
        power = waves.new_empty(b, c.n_bins, c.n_frames)
        power[:, :, lo: hi + 1] = shared[:, take].permute(1, 0, 2)
        centred = self._centred(waves)
        edges = [i for i in range(c.n_frames) if i < lo or i > hi]
        if edges:   # frames that reach into a window's zero padding: per window, as forward
            padded = torch.nn.functional.pad(centred, (half, half))
            starts = torch.tensor(edges, device=waves.device) * step
            frames = padded[:, starts[:, None] + torch.arange(self.n_fft, device=waves.device)]
            spec = torch.fft.rfft(frames * self.window, dim=-1)            # [B, E, F]
            edge_power = (spec.abs() * self.scale) ** 2
            power[:, :, edges] = torch.matmul(self.filters, edge_power.transpose(1, 2))
        gain = self._gain(centred)
        if gain is not None:
            power = power * (gain * gain)[:, :, None]
        return self._to_map(power)
