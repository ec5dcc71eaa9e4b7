"""Training throughput (issue #6, part 10).

1. Optimiser steps on the real input size (one 10 s window = 256 mel bins x 500 frames),
   forward + masked BCE + backward + Adam, for the default backbone and a larger one:
   training windows per second, on CPU (and on the GPU when there is one, with the
   trainer's automatic precision).
2. The whole trainer (``musicbrain_cli.training.trainer.train``: sampler, augmentation,
   DDP, all-reduces) with 1 and with 2 gloo processes on CPU, same global batch, one epoch
   of synthetic windows: training windows per second from ``metrics.jsonl``.

    python benchmarks/train.py                 # everything (a few minutes on 2 cores)
    python benchmarks/train.py --quick         # fewer steps, smaller trainer input
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch


def step_throughput(backbone: str, *, device: torch.device, batch: int, steps: int,
                    precision: str) -> float:
    from musicbrain_cli.features import FrontEndConfig
    from musicbrain_cli.model import ModelConfig, build_model
    from musicbrain_cli.taxonomy import Taxonomy
    from musicbrain_cli.training.trainer import _autocast, masked_bce_sum

    tax = Taxonomy.from_groups([("source", ["human", "ai"], True),
                                ("period", ["Baroque", "Classical", "Romantic"], True)])
    fe = FrontEndConfig()
    model = build_model(ModelConfig(backbone=backbone, front_end=fe, taxonomy=tax)).to(device)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, *fe.shape, generator=g).to(device)
    y = torch.randint(0, 2, (batch, tax.num_labels), generator=g).float().to(device)
    m = torch.ones_like(y)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with _autocast(precision, device):
            logits = model(x)
        loss = masked_bce_sum(logits, y, m) / m.sum()
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    step()  # warm-up (allocator, cuDNN autotune)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return batch * steps / (time.perf_counter() - start)


def trainer_throughput(nproc: int, *, n_train: int, n_bins: int, n_frames: int,
                       batch: int) -> float:
    from musicbrain_cli.training.config import load_config
    from musicbrain_cli.training.trainer import SyntheticSource, train

    cfg = load_config(overrides={"train": {"epochs": 1, "batch_size": batch, "num_workers": 0,
                                           "precision": "fp32"}})
    source = SyntheticSource(n_train=n_train, n_val=4, n_bins=n_bins, n_frames=n_frames)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        train(source, out, config=cfg, device="cpu", nproc_per_node=nproc, export=False)
        row = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    return float(row["train_samples_per_s"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--backbones", default="convnext_atto,convnext_tiny")
    args = parser.parse_args()
    from musicbrain_cli.training.trainer import resolve_precision

    steps = 2 if args.quick else 4
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    print("1) optimiser steps on 256 x 500 windows (10 s), windows/s")
    for device in devices:
        precision = resolve_precision("auto", device)
        batch = 8 if device.type == "cpu" else 64
        for backbone in args.backbones.split(","):
            rate = step_throughput(backbone, device=device, batch=batch,
                                   steps=steps if device.type == "cpu" else 20,
                                   precision=precision)
            print(f"   {device.type:4s} {precision:4s} {backbone:15s} batch {batch:3d}: "
                  f"{rate:8.1f} windows/s")
    bins, frames, n = (64, 128, 32) if args.quick else (128, 250, 64)
    print(f"2) whole trainer, CPU gloo, {n} windows of {bins} x {frames}, global batch 8")
    for nproc in (1, 2):
        rate = trainer_throughput(nproc, n_train=n, n_bins=bins, n_frames=frames, batch=8)
        print(f"   {nproc} process(es): {rate:8.1f} windows/s")


if __name__ == "__main__":
    main()
