"""Training-time augmentation and the resumable sampler: seeded per (seed, epoch, sample),
so a resumed run draws exactly what an uninterrupted one would.

Split out of :mod:`musicbrain_cli.training.trainer` (issue 25), which re-exports its names.
"""

from __future__ import annotations

import math
from typing import Any, Iterator, Mapping

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler

from musicbrain_cli.errors import ConfigError
from musicbrain_cli.training.config import AugmentConfig


# --- augmentation -------------------------------------------------------------------------


class AugmentedWindows(Dataset):
    """Wraps a windows dataset and augments each item on the fly (see ``AugmentConfig``).

    The generator of item ``i`` in epoch ``e`` is ``default_rng([seed, e, i])``: the same
    augmentation whichever rank or loader worker draws it, and after any resume.
    Call :meth:`set_epoch` before iterating (like ``DistributedSampler.set_epoch``).
    """

    def __init__(self, base: Dataset, config: AugmentConfig, front_end: Mapping[str, Any], *,
                 seed: int, detection_index: int | None = None):
        # Both settings read the detection label (source/ai): a taxonomy without it is refused
        # here, when the run is set up, not at its first batch.
        needs = [name for name, on in (("silence_prob_human", config.silence_prob_human is not None),
                                       ("consistency_weight", config.consistency_weight > 0)) if on]
        if needs and detection_index is None:
            raise ConfigError(f"augment.{' and augment.'.join(needs)} {'needs' if len(needs) == 1 else 'need'} "
                              "the detection label "
                              "(source/ai), which this data set's taxonomy does not have")
        self.base, self.config, self.seed, self.epoch = base, config, seed, 0
        #: the target column of the AI class (``source/ai``): 0 where known is a human window
        self.detection_index = detection_index
        from musicbrain_cli.features import FrontEndConfig, bin_frequencies

        fe = FrontEndConfig.from_dict(front_end)
        # Map units <-> dB (features.py: map = (dB + db_offset) / db_scale - 1).
        self.db_scale, self.db_offset = float(fe.db_scale), float(fe.db_offset)
        self.floor = fe.silence_level
        self.bin_hz = bin_frequencies(fe) if config.pitch_semitones > 0 else None
        self.frame_s = fe.hop_length / fe.sample_rate

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int):
        """``(x, y, mask)``; with ``augment.consistency_weight`` > 0 also the window without
        its edits and whether it has any: ``(x, y, mask, anchor, edited)``."""
        x, y, m = self.base[index]
        if not self.config.enabled:
            return x, y, m
        consistency = self.config.consistency_weight > 0
        j = self.detection_index
        human = None if j is None else bool(float(m[j]) > 0 and float(y[j]) < 0.5)
        out = augment(x, self.config, np.random.default_rng([self.seed, self.epoch, index]),
                      db_scale=self.db_scale, db_offset=self.db_offset, floor=self.floor,
                      bin_hz=self.bin_hz, frame_s=self.frame_s, human=human, anchor=consistency)
        if consistency:
            x, anchor, edited = out
            return x, y, m, anchor, torch.tensor(edited)
        return out, y, m


def pitch_warp(x: torch.Tensor, bin_hz: np.ndarray, semitones: float, floor: float) -> torch.Tensor:
    """Warp a map ``[C, F, T]`` along frequency as a pitch shift by ``semitones`` would: the
    bin at ``f`` takes the (linearly interpolated) value at ``f / 2**(semitones / 12)``;
    bins whose source lies outside the map get ``floor``."""
    bin_hz = np.asarray(bin_hz, dtype=np.float64)
    if bin_hz.shape != (x.shape[-2],):
        raise ValueError(f"need one frequency per bin ({x.shape[-2]}), got {bin_hz.shape}")
    source = bin_hz / 2.0 ** (semitones / 12.0)
    pos = np.interp(source, bin_hz, np.arange(len(bin_hz), dtype=np.float64))
    inside = (source >= bin_hz[0]) & (source <= bin_hz[-1])
    lo = np.clip(np.floor(pos).astype(int), 0, len(bin_hz) - 1)
    hi = np.clip(lo + 1, 0, len(bin_hz) - 1)
    w = torch.from_numpy((pos - lo).astype(np.float32))[:, None]
    out = x[..., lo, :] * (1 - w) + x[..., hi, :] * w
    out[..., torch.from_numpy(~inside), :] = floor
    return out


def room_map(x: torch.Tensor, rt60_s: float, wet: float, *, frame_s: float, db_scale: float,
             db_offset: float, floor: float) -> torch.Tensor:
    """A map ``[C, F, T]`` as heard in a room (``AugmentConfig``, reverb): each bin's power
    convolved along time with ``10 ** (-6 t / rt60_s)`` (unit sum, to -60 dB) and mixed in
    at ``wet`` of the power."""
    n_frames = x.shape[-1]
    taps = min(n_frames, max(1, int(math.ceil(rt60_s / frame_s))))
    envelope = 10.0 ** (-6.0 * np.arange(taps) * frame_s / rt60_s)
    kernel = torch.from_numpy((envelope / envelope.sum())[::-1].copy()).to(torch.float64)
    power = torch.pow(10.0, ((x.double() + 1) * db_scale - db_offset) / 10)
    flat = power.reshape(-1, 1, n_frames)
    late = torch.nn.functional.conv1d(torch.nn.functional.pad(flat, (taps - 1, 0)),
                                      kernel.view(1, 1, -1)).reshape(power.shape)
    mixed = (1.0 - wet) * power + wet * late
    db = 10 * torch.log10(mixed.clamp_min(1e-30))
    return ((db + db_offset) / db_scale - 1).float().clamp_min(floor)


def augment(x: torch.Tensor, c: AugmentConfig, rng: np.random.Generator, *, db_scale: float,
            db_offset: float, floor: float, bin_hz: np.ndarray | None = None,
            frame_s: float | None = None, human: bool | None = None,
            anchor: bool = False):
    """One window ``[1, F, T]`` (map units) -> an augmented copy. ``x`` is not modified.

    ``anchor``: return ``(augmented, anchor, edited)`` instead, where ``anchor`` is the same
    window with every draw but the edits (fade, silence, reverb) and ``edited`` whether any
    edit was drawn (``augment.consistency_weight``); the random stream is the same.

    ``bin_hz`` (the bins' centre frequencies) is needed when ``c.pitch_semitones`` > 0; the
    pitch draw comes first and only then, so other configs keep their random streams.
    ``frame_s`` (seconds per frame) is needed for silence and fades, drawn last and only
    when on, as is reverb (:func:`room_map`, after them: a rest drawn in is then filled by the
    room's tail, as in a hall). ``human``: whether the window is of the human class (its
    silence probability is ``c.silence_prob_human`` when that is set; needed then).
    """
    x = x.float().clone()
    _, n_bins, n_frames = x.shape
    if c.pitch_semitones > 0:
        if bin_hz is None:
            raise ValueError("pitch-shift augmentation needs the bins' frequencies (bin_hz)")
        x = pitch_warp(x, bin_hz, float(rng.uniform(-c.pitch_semitones, c.pitch_semitones)),
                       floor)
    offset = rng.uniform(-c.gain_db, c.gain_db) / db_scale
    if c.eq_db > 0:
        nodes = rng.uniform(-c.eq_db, c.eq_db, c.eq_nodes) / db_scale
        curve = np.interp(np.linspace(0, 1, n_bins), np.linspace(0, 1, c.eq_nodes), nodes)
        x += torch.from_numpy(curve.astype(np.float32))[None, :, None]
    x += float(offset)
    if c.noise_prob > 0 and rng.random() < c.noise_prob:
        db = (x.double() + 1) * db_scale - db_offset
        power = torch.pow(10.0, db / 10)
        snr = rng.uniform(*c.noise_snr_db)
        noise = torch.from_numpy(rng.exponential(1.0, x.shape)) * power.mean() * 10 ** (-snr / 10)
        db = 10 * torch.log10(power + noise)
        x = ((db + db_offset) / db_scale - 1).float()
    x = x.clamp_min(floor)  # the front end floors power at amin: stay in its range
    fill = float(x.mean())
    for _ in range(c.time_masks):
        width = int(rng.integers(0, int(c.time_mask_frac * n_frames) + 1))
        start = int(rng.integers(0, n_frames - width + 1))
        x[:, :, start:start + width] = fill
    for _ in range(c.freq_masks):
        width = int(rng.integers(0, int(c.freq_mask_frac * n_bins) + 1))
        start = int(rng.integers(0, n_bins - width + 1))
        x[:, start:start + width, :] = fill
    before_edits = x.clone() if anchor else None
    edited = False
    silence_prob = c.silence_prob
    if c.silence_prob_human is not None:
        if human is None:
            raise ValueError("augment.silence_prob_human needs the window's class (human)")
        if human:
            silence_prob = c.silence_prob_human
    if c.fade_prob > 0 or silence_prob > 0:
        if frame_s is None or frame_s <= 0:
            raise ValueError("silence and fade augmentation need the frame period (frame_s)")
    if c.fade_prob > 0 and rng.random() < c.fade_prob:
        n = min(n_frames, max(1, int(round(rng.uniform(*c.fade_s) / frame_s))))
        t = (np.arange(n, dtype=np.float64) + 0.5) / n               # frame centres, 0..1
        # amplitude (t / T)**2: power (t / T)**4, 40 log10(t / T) dB
        ramp = torch.from_numpy((40.0 * np.log10(t) / db_scale).astype(np.float32))
        edited = True
        if rng.random() < 0.5:
            x[:, :, :n] = (x[:, :, :n] + ramp).clamp_min(floor)        # fade-in
        else:
            x[:, :, n_frames - n:] = (x[:, :, n_frames - n:] + ramp.flip(0)).clamp_min(floor)
    if silence_prob > 0 and rng.random() < silence_prob:
        width = min(n_frames, max(1, int(round(rng.uniform(*c.silence_s) / frame_s))))
        where = rng.integers(0, 3)                 # the start, the end, or anywhere
        start = 0 if where == 0 else n_frames - width if where == 1 else \
            int(rng.integers(0, n_frames - width + 1))
        x[:, :, start:start + width] = floor
        edited = True
    if c.reverb_prob > 0 and rng.random() < c.reverb_prob:
        if frame_s is None or frame_s <= 0:
            raise ValueError("reverb augmentation needs the frame period (frame_s)")
        x = room_map(x, float(rng.uniform(*c.reverb_rt60_s)), float(rng.uniform(*c.reverb_wet)),
                     frame_s=frame_s, db_scale=db_scale, db_offset=db_offset, floor=floor)
        edited = True
    if anchor:
        return x, before_edits, edited
    return x


class ResumableSampler(DistributedSampler):
    """``DistributedSampler`` that can skip the first ``start`` samples of the current epoch."""

    def __init__(self, dataset, *, num_replicas: int, rank: int, shuffle: bool, seed: int):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle,
                         seed=seed, drop_last=False)
        self.start = 0

    def __iter__(self) -> Iterator[int]:
        return iter(list(super().__iter__())[self.start:])

    def __len__(self) -> int:
        return self.num_samples - self.start
