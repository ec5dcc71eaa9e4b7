"""Training throughput (issue #6, part 10).

1. Optimiser steps on the real input size (one 10 s window = 256 mel bins x 500 frames),
   forward + masked BCE + backward + Adam, for the default backbone and a larger one:
   training windows per second, on CPU (and on the GPU when there is one, with the
   trainer's automatic precision).
2. The whole trainer (``musicbrain_cli.training.trainer.train``: sampler, augmentation,
   DDP, all-reduces) with 1 and with 2 gloo processes on CPU, same global batch, one epoch
   of synthetic windows: training windows per second from ``metrics.jsonl``.
3. On a GPU: the whole trainer at the real input size, automatic precision. Part 1 there
   also measures fp16 + GradScaler, the path of GPUs without bf16 (Turing).

    python benchmarks/train.py                 # everything (a few minutes on 2 cores)
    python benchmarks/train.py --quick         # fewer steps, smaller trainer input
    python benchmarks/train.py --device cuda   # the GPU parts only
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
                       batch: int, device: str = "cpu", precision: str = "fp32",
                       workers: int = 0) -> float:
    from musicbrain_cli.training.config import load_config
    from musicbrain_cli.training.trainer import SyntheticSource, train

    cfg = load_config(overrides={"train": {"epochs": 1, "batch_size": batch,
                                           "num_workers": workers, "precision": precision}})
    source = SyntheticSource(n_train=n_train, n_val=4, n_bins=n_bins, n_frames=n_frames)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        train(source, out, config=cfg, device=device, nproc_per_node=nproc, export=False)
        row = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    return float(row["train_samples_per_s"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--backbones", default="convnext_atto,convnext_tiny")
    parser.add_argument("--device", choices=["all", "cpu", "cuda"], default="all",
                        help="cuda: the GPU part only (all: CPU, and the GPU when there is one)")
    args = parser.parse_args()
    from musicbrain_cli.training.trainer import resolve_precision

    steps = 2 if args.quick else 4
    devices = [] if args.device == "cuda" else [torch.device("cpu")]
    if args.device != "cpu" and torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads"
          + (f", {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""))
    print("1) optimiser steps on 256 x 500 windows (10 s), windows/s")
    for device in devices:
        precisions = [resolve_precision("auto", device)]
        if device.type == "cuda" and precisions[0] != "fp16":
            precisions.append("fp16")   # the client's Turing cards: fp16 + GradScaler
        batch = 8 if device.type == "cpu" else 64
        for backbone in args.backbones.split(","):
            for precision in precisions:
                rate = step_throughput(backbone, device=device, batch=batch,
                                       steps=steps if device.type == "cpu" else 20,
                                       precision=precision)
                print(f"   {device.type:4s} {precision:4s} {backbone:15s} batch {batch:3d}: "
                      f"{rate:8.1f} windows/s")
    if args.device != "cuda":
        bins, frames, n = (64, 128, 32) if args.quick else (128, 250, 64)
        print(f"2) whole trainer, CPU gloo, {n} windows of {bins} x {frames}, global batch 8")
        for nproc in (1, 2):
            rate = trainer_throughput(nproc, n_train=n, n_bins=bins, n_frames=frames, batch=8)
            print(f"   {nproc} process(es): {rate:8.1f} windows/s")
    if any(d.type == "cuda" for d in devices):
        n = 512 if args.quick else 2048
        print(f"3) whole trainer, 1 GPU (NCCL), {n} windows of 256 x 500, global batch 64, "
              "automatic precision, 4 loader workers")
        rate = trainer_throughput(1, n_train=n, n_bins=256, n_frames=500, batch=64,
                                  device="cuda", precision="auto", workers=4)
        print(f"   1 process: {rate:8.1f} windows/s")


if __name__ == "__main__":
    main()
