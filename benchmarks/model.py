"""Throughput of the front end and model: ten-second windows per second.

Measures, for each configuration and batch size:

* ``front_end``: waveform -> spectrogram only;
* ``forward``: spectrogram -> logits (``torch.inference_mode``);
* ``end_to_end``: waveform -> logits;
* ``cam``: forward with grad + one CAM backward (the gradient of one logit, summed over the
  batch, with respect to the ``fusion`` layer's activations; what Grad-CAM / FM-G-CAM need).

Usage::

    python benchmarks/model.py                        # default config, CPU (+ CUDA if present)
    python benchmarks/model.py --compare              # the resolution alternatives of issue #3
    python benchmarks/model.py --backbone convnext_tiny --device cuda --batch-sizes 1 16 64

Prints one JSON object per measurement (machine-readable) and a table. Numbers depend on
other load on the machine: report the core count and whether it was shared.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from musicbrain_cli.features import FrontEnd, FrontEndConfig  # noqa: E402
from musicbrain_cli.model.config import ModelConfig  # noqa: E402
from musicbrain_cli.model.net import build_model  # noqa: E402
from musicbrain_cli.taxonomy import Taxonomy  # noqa: E402

#: (name, n_bins, stem_stride, out_indices): the alternatives weighed in issue #3.
ALTERNATIVES = [
    ("stock 128 mel, 4x4 stem", 128, (4, 4), (1, 2, 3)),
    ("128 mel, 4x4 stem, fuse from stage 0", 128, (4, 4), (0, 2, 3)),
    ("256 mel, 4x4 stem", 256, (4, 4), (1, 2, 3)),
    ("256 mel, 2x8 stem (default)", 256, (2, 8), (1, 2, 3)),
    ("256 mel, 2x4 stem", 256, (2, 4), (1, 2, 3)),
]

TAXONOMY = Taxonomy.from_groups([
    ("source", ["human", "ai"], True),
    ("generator", ["notagen-small", "notagen-large"], True),
    ("period", ["Baroque", "Classical", "Romantic", "Modern"], True),
    ("composer", [f"c{i}" for i in range(20)], True),
    ("instrumentation", ["piano", "strings", "winds", "orchestra"], False),
])


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device, *, repeats: int) -> tuple[float, float, float]:
    """``(best, median, cpu)`` seconds of ``repeats`` calls after one warm-up.

    The best (minimum) wall time is the headline: on a machine shared with other jobs it is
    the closest estimate of unloaded throughput; the median shows how noisy the run was.
    ``cpu`` is the process CPU time per call (all threads): with ``--threads 1`` it is a
    load-independent measure of the work (OpenMP spin-waiting inflates it with more threads).
    """
    fn()
    _sync(device)
    times, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return min(times), statistics.median(times), min(cpu)


def bench(config: ModelConfig, *, device: torch.device, batch: int, repeats: int,
          only=("front_end", "forward", "end_to_end", "cam")) -> dict:
    torch.manual_seed(0)
    fe = FrontEnd(config.front_end).to(device)
    model = build_model(config).to(device).eval()
    waves = 0.1 * torch.randn(batch, config.front_end.n_samples, device=device)
    with torch.inference_mode():
        spec = fe(waves)
    spec = spec.clone()
    label = config.taxonomy.index("source/ai")

    def front_end():
        with torch.inference_mode():
            fe(waves)

    def forward():
        with torch.inference_mode():
            model(spec)

    def end_to_end():
        with torch.inference_mode():
            model(fe(waves))

    def cam():
        saved = {}
        handle = model.fusion.register_forward_hook(lambda m, i, o: saved.update(a=o))
        try:
            logits = model(spec)
            torch.autograd.grad(logits[:, label].sum(), saved["a"])
        finally:
            handle.remove()

    out = {"batch": batch}
    for name, fn in (("front_end", front_end), ("forward", forward),
                     ("end_to_end", end_to_end), ("cam", cam)):
        if name not in only:
            continue
        best, median, cpu = timed(fn, device, repeats=repeats)
        out[f"{name}_windows_per_s"] = round(batch / best, 2)
        out[f"{name}_windows_per_s_median"] = round(batch / median, 2)
        out[f"{name}_windows_per_cpu_s"] = round(batch / cpu, 2)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backbone", default="convnext_atto")
    p.add_argument("--device", choices=["cpu", "cuda", "all"], default="all")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16])
    p.add_argument("--only", nargs="+", default=["front_end", "forward", "end_to_end", "cam"],
                   choices=["front_end", "forward", "end_to_end", "cam"], help="measurements")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--compare", action="store_true", help="run the resolution alternatives")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = [torch.device("cpu")] if args.device in ("cpu", "all") else []
    if args.device in ("cuda", "all") and torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    if args.device == "cuda" and not devices:
        print("CUDA not available", file=sys.stderr)
        return 2
    configs = ALTERNATIVES if args.compare else [("default", None, None, None)]
    machine = {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
               "platform": platform.platform(), "torch": torch.__version__,
               "load_avg_1m": round(os.getloadavg()[0], 2)}
    print(json.dumps({"machine": machine}))
    rows = []
    for name, n_bins, stem, out_indices in configs:
        kw = {}
        if n_bins is not None:
            kw = {"front_end": FrontEndConfig(n_bins=n_bins), "stem_stride": stem,
                  "out_indices": out_indices}
        config = ModelConfig(backbone=args.backbone, taxonomy=TAXONOMY, **kw)
        grid = build_model(config).fused_grid()
        for device in devices:
            for batch in args.batch_sizes:
                r = {"config": name, "backbone": args.backbone, "device": device.type,
                     "n_bins": config.front_end.n_bins, "stem_stride": list(config.stem_stride),
                     "fused_grid": list(grid),
                     **bench(config, device=device, batch=batch, repeats=args.repeats,
                            only=args.only)}
                print(json.dumps(r), flush=True)
                rows.append(r)
    print()
    print(f"{'config':40s} {'dev':4s} {'B':>3s} {'grid':>8s} "
          + " ".join(f"{m:>10s} {'/cpu-s':>7s}" for m in args.only)
          + "   (ten-second windows per second, best of repeats; per CPU-second)")
    for r in rows:
        print(f"{r['config']:40s} {r['device']:4s} {r['batch']:3d} "
              f"{'x'.join(map(str, r['fused_grid'])):>8s} "
              + " ".join(f"{r[m + '_windows_per_s']:10.1f} {r[m + '_windows_per_cpu_s']:7.1f}"
                         for m in args.only))
    return 0


if __name__ == "__main__":
    sys.exit(main())
