"""Seeded synthetic signals for the artifact-line tests (built in code, no files shipped)."""

from __future__ import annotations

import numpy as np


def upsampled(rate: int, strides: tuple[int, ...], seconds: float, *, seed: int = 0,
              content: float = 0.5) -> np.ndarray:
    """A toy decoder's output at ``rate`` Hz: noise at ``rate / prod(strides)`` upsampled by
    zero insertion (a transposed convolution's first step) and a random FIR per stride, with
    a ReLU between layers so each layer's input has a non-zero mean (the source of the lines,
    Afchar et al. ISMIR 2025), mixed with pink-ish noise content at ``content`` relative RMS."""
    rng = np.random.default_rng(seed)
    hop = int(np.prod(strides))
    n = int(seconds * rate)
    x = rng.standard_normal(n // hop + 2)
    for s in strides:
        x = np.maximum(x, 0.0)
        y = np.zeros(x.size * s)
        y[::s] = x
        kernel = rng.standard_normal(2 * s) * np.hanning(2 * s)
        x = np.convolve(y, kernel, mode="same")
    x = x[:n]
    x = x / (np.std(x) + 1e-12)
    return (0.2 * (x + content * pink(n, seed=seed + 1) / 0.2) / (1 + content)).astype(np.float32)


def pink(n: int, *, seed: int = 0) -> np.ndarray:
    """Pink noise (1/f power) of RMS 0.2, by shaping white noise's spectrum."""
    rng = np.random.default_rng(seed)
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(spec.size)
    spec[1:] /= np.sqrt(f[1:])
    spec[0] = 0
    y = np.fft.irfft(spec, n)
    return (0.2 * y / np.std(y)).astype(np.float32)


def piano_melody(rate: int, seconds: float, *, seed: int = 0) -> np.ndarray:
    """A piano-like melody: notes of random pitch, slightly inharmonic partials (B = 4e-4,
    Fletcher 1964), exponential decays, plus a little noise. Human-like: no fixed comb."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    y = np.zeros(n)
    t_note = 0.0
    while t_note < seconds:
        dur = float(rng.uniform(0.2, 0.8))
        f0 = 220.0 * 2 ** (int(rng.integers(-12, 13)) / 12)
        i0, i1 = int(t_note * rate), min(n, int((t_note + dur + 1.0) * rate))
        t = np.arange(i1 - i0) / rate
        for k in range(1, 16):
            fk = k * f0 * np.sqrt(1 + 4e-4 * k * k)
            if fk >= rate / 2:
                break
            y[i0:i1] += np.sin(2 * np.pi * fk * t + rng.uniform(0, 2 * np.pi)) * np.exp(-t * (1.5 + 0.6 * k)) / k
        t_note += dur
    y += 0.003 * rng.standard_normal(n)
    return (0.5 * y / np.max(np.abs(y))).astype(np.float32)
