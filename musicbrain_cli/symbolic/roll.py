"""The symbolic line's second reader: a small CNN on the piano roll of the notes heard.

The trees of :mod:`musicbrain_cli.symbolic.fit` read 42 plain statistics of a window's notes;
this network reads the notes themselves, as a two-channel piano roll (onsets and sounding
notes, 88 keys x :data:`FPS` frames per second), and so sees what statistics average away:
how a figure recurs, how the voices move against each other. Its logit is stacked with the
trees' score by a logistic regression fitted on validation clips (the line's calibration).

Probed in ``scripts/symbolic_roll_probe.py`` (docs/evaluation/symbolic-line.md): on works and
RhythGen configurations it never saw, the stack ranks AI above human clips better than the
trees alone, which above all widens what the doubt zone keeps from a ``human`` verdict.

Weights are stored as safetensors (no pickle); the architecture is fixed here and named by
:data:`ARCH` in the model file, so a file for another architecture is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np

#: Frames per second of the roll, the lowest MIDI pitch it holds, and its number of keys.
FPS, LOWEST, KEYS = 10, 21, 88
#: The architecture's name in the model file.
ARCH = "rollnet-v1"
#: Training recipe (the probe's): AdamW, learning rate decayed to zero by a cosine, batches of
#: 64, classes weighted alike, transposition by up to :data:`MAX_SHIFT` semitones.
EPOCHS, BATCH, LR, WEIGHT_DECAY, MAX_SHIFT = 8, 64, 1e-3, 1e-3, 6


def piano_roll(notes: np.ndarray, duration_s: float) -> np.ndarray:
    """``[2, KEYS, frames]`` uint8 (onsets, sounding) of ``[n, 3]`` (start s, end s, MIDI pitch)
    notes in a window of ``duration_s`` seconds; notes outside the piano's range are left out."""
    frames = max(int(round(duration_s * FPS)), 1)
    roll = np.zeros((2, KEYS, frames), np.uint8)
    for start, end, pitch in np.asarray(notes, dtype=np.float64).reshape(-1, 3):
        key, first = int(round(pitch)) - LOWEST, int(start * FPS)
        if not 0 <= key < KEYS or not 0 <= first < frames:
            continue
        roll[0, key, first] = 1
        roll[1, key, first:min(max(first + 1, int(end * FPS)), frames)] = 1
    return roll


def network():
    """The untrained network (:data:`ARCH`): four conv blocks, mean and max pooling, one logit."""
    import torch
    import torch.nn as nn

    def block(i, o):
        return nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU())

    class RollNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(block(2, 16), nn.MaxPool2d(2), block(16, 32), nn.MaxPool2d(2),
                                          block(32, 64), nn.MaxPool2d(2), block(64, 64))
            self.drop, self.head = nn.Dropout(0.3), nn.Linear(128, 1)

        def forward(self, x):
            z = self.features(x)
            return self.head(self.drop(torch.cat([z.mean((2, 3)), z.amax((2, 3))], 1))).squeeze(1)

    return RollNet()


def train(rolls: Sequence[np.ndarray], labels: Sequence[int], *, seed: int, epochs: int = EPOCHS,
          on_epoch: Callable[[int, int, object], None] | None = None):
    """A network trained on ``rolls`` (``[2, KEYS, frames]`` each, one length) with ``labels``
    (1 = AI); returned in eval mode. Deterministic for a seed on one machine. ``on_epoch(done,
    epochs, net)`` after each epoch (the network may be scored there; it resumes training)."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    x = np.stack(rolls).astype(np.float32)
    y = np.asarray(labels, np.float32)
    if x.ndim != 4 or len(set(y.tolist())) != 2:
        raise ValueError("need rolls of one shape and both classes to train the roll network")
    w = np.where(y == 1, 0.5 / y.mean(), 0.5 / (1 - y.mean())).astype(np.float32)
    net = network()
    net.train()
    opt = torch.optim.AdamW(net.parameters(), LR, weight_decay=WEIGHT_DECAY)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(epochs * -(-len(x) // BATCH), 1))
    for epoch in range(epochs):
        order = rng.permutation(len(x))
        for k in range(0, len(x), BATCH):
            b = order[k:k + BATCH]
            xb = np.roll(x[b], int(rng.integers(-MAX_SHIFT, MAX_SHIFT + 1)), axis=2)   # transposition
            loss = (F.binary_cross_entropy_with_logits(net(torch.from_numpy(xb)), torch.from_numpy(y[b]),
                                                       reduction="none") * torch.from_numpy(w[b])).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        if on_epoch:
            on_epoch(epoch + 1, epochs, net)
            net.train()
    net.eval()
    return net


def logits(net, rolls: Sequence[np.ndarray], batch: int = 256) -> np.ndarray:
    """The network's logit of each roll (float64); rolls of one length run in batches."""
    import torch

    out = np.zeros(len(rolls))
    by_shape: dict[tuple, list[int]] = {}
    for i, r in enumerate(rolls):
        by_shape.setdefault(np.shape(r), []).append(i)
    net.eval()
    with torch.inference_mode():
        for idx in by_shape.values():
            for k in range(0, len(idx), batch):
                part = idx[k:k + batch]
                x = torch.from_numpy(np.stack([rolls[i] for i in part]).astype(np.float32))
                out[part] = net(x).double().numpy()
    return out


def state(net) -> dict:
    """The weights as a dict of contiguous tensors, as safetensors writes them."""
    return {k: v.detach().contiguous().clone() for k, v in net.state_dict().items()}


def save(tensors: dict, path: str | Path) -> None:
    from safetensors.torch import save_file

    save_file(tensors, str(path), metadata={"arch": ARCH})


def load(path: str | Path):
    """The network with the weights of a safetensors file; ``ValueError`` when they do not fit
    :data:`ARCH`."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    net = network()
    try:
        net.load_state_dict(load_file(str(path)), strict=True)
    except (RuntimeError, OSError, SafetensorError) as exc:   # keys or shapes wrong, file damaged
        raise ValueError(f"the roll network weights in {str(path)!r} do not fit {ARCH}: {exc}") from exc
    net.eval()
    return net
