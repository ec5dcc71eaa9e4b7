"""FM-G-CAM cost per window relative to one forward pass (CPU), and the normalisation study.

Usage::

    python benchmarks/explain.py                  # both parts, JSON on stdout
    python benchmarks/explain.py --part cost --windows 4 --repeats 5 --threads 2
    python benchmarks/explain.py --part normalize --inputs 12

Cost: MusicBrainNet at its default front end (one 10 s window = 256 x 500 log-mel map,
convnext_atto, random weights: cost does not depend on the weights) on a batch of
``--windows`` windows. "forward" is one inference forward under ``torch.no_grad`` (what
the detector pays); "fm-g-cam" is FMGradCAM for each window's top three labels (one forward
with a graph from the ``fusion`` layer on, three backwards from the logits to ``fusion``).
Runs are interleaved and the median of ``--repeats`` is reported (and the ratio of the
fastest runs, the least disturbed on a shared machine), so load hits both alike. Target (issue #7): ratio <= 3.

Normalisation: deletion and insertion AUC (floor substrate, top-3 targets, fused map) of
each FM-G-CAM ``normalize`` mode against random maps, on two test models whose evidence is
spatially local: ``planted`` (three labels read three disjoint regions with graded weights,
strengths 4 : 2 : 1) and ``tinycnn`` (a random two-layer CNN with a max-pool head, head weights scaled so its
probabilities are not all near 0.5).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time

import numpy as np
import torch
from torch import nn

from musicbrain_cli.explain import NORMALIZE_MODES, FMGradCAM, deletion_curve, insertion_curve, random_map


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench_cost(windows: int, repeats: int) -> dict:
    from musicbrain_cli.features import FrontEndConfig
    from musicbrain_cli.model.config import ModelConfig
    from musicbrain_cli.model.net import build_model
    from musicbrain_cli.taxonomy import Taxonomy

    taxonomy = Taxonomy.from_groups([("source", ["human", "ai"], True),
                                     ("period", ["Baroque", "Classical", "Romantic"], True),
                                     ("instrumentation", ["piano", "strings", "orchestra"], False)])
    fe = FrontEndConfig()
    torch.manual_seed(0)
    model = build_model(ModelConfig(front_end=fe, taxonomy=taxonomy)).eval()
    x = torch.randn(windows, *fe.shape)

    def forward():
        with torch.no_grad():
            model(x)

    with FMGradCAM(model, layer="fusion", k=3) as cam:
        explain = lambda: cam(x)  # noqa: E731
        forward(), explain()  # warm-up (allocator, oneDNN kernels)
        fwd, fm = [], []
        for _ in range(repeats):
            fwd.append(_timed(forward))
            fm.append(_timed(explain))
    f, c = statistics.median(fwd), statistics.median(fm)
    return {"windows": windows, "input": list(fe.shape), "backbone": model.config.backbone,
            "forward_s_per_window": f / windows, "fmgcam_top3_s_per_window": c / windows,
            "ratio": c / f, "ratio_of_minima": min(fm) / min(fwd), "target_ratio": 3.0,
            "repeats": repeats,
            "forward_runs_s": fwd, "fmgcam_runs_s": fm}


# --- normalisation study --------------------------------------------------------------------

N_F, N_T = 32, 48


class Planted(nn.Module):
    """Channel l of ``fusion`` carries the input inside region l only; label l reads channel l
    with a Gaussian weight centred in its region, times strength 4, 2, 1."""

    def __init__(self):
        super().__init__()
        self.fusion = nn.Conv2d(3, 3, 1)
        with torch.no_grad():
            self.fusion.weight.copy_(torch.eye(3)[:, :, None, None])
            self.fusion.bias.zero_()
        masks, weights = torch.zeros(3, N_F, N_T), torch.zeros(3, N_F, N_T)
        ff, tt = torch.meshgrid(torch.arange(N_F), torch.arange(N_T), indexing="ij")
        for l, (f0, t0) in enumerate([(6, 8), (16, 30), (26, 14)]):
            box = (abs(ff - f0) <= 4) & (abs(tt - t0) <= 6)
            masks[l][box] = 1.0
            g = torch.exp(-((ff - f0) ** 2 / 8 + (tt - t0) ** 2 / 18)) * box
            weights[l] = g / g.sum() * (4.0, 2.0, 1.0)[l]
        self.register_buffer("masks", masks)
        self.register_buffer("weights", weights)

    def forward(self, x):
        a = torch.relu(self.fusion(x.expand(-1, 3, -1, -1) * self.masks))
        return 6 * (a * self.weights).sum(dim=(2, 3)) - 3


class TinyCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 8, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2))
        self.fusion = nn.Sequential(nn.Conv2d(8, 16, 3, padding=1), nn.ReLU())
        self.fc = nn.Linear(16, 6)
        with torch.no_grad():  # logits of order 1-10, so probabilities respond to deletions
            self.fc.weight.mul_(8.0)

    def forward(self, x):
        return self.fc(self.fusion(self.stem(x)).amax(dim=(2, 3)))


def bench_normalize(n_inputs: int, steps: int) -> dict:
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    models = {"planted": Planted().eval(), "tinycnn": TinyCNN().eval()}
    out = {}
    for name, model in models.items():
        scores = {mode: {"deletion": [], "insertion": []} for mode in (*NORMALIZE_MODES, "random")}
        for i in range(n_inputs):
            x = rng.uniform(0.0, 0.3, (N_F, N_T))
            x[rng.random((N_F, N_T)) < 0.5] += 1.0  # texture for the CNN; the planted model reads all of it
            spec = torch.from_numpy(x.astype(np.float32))
            kw = dict(steps=steps, batch_size=steps + 1, seed=i)
            for mode in NORMALIZE_MODES:
                with FMGradCAM(model, k=3, normalize=mode) as cam:
                    res = cam(spec[None, None])
                fused, targets = res.fused()[0], res.labels[0].tolist()
                scores[mode]["deletion"].append(deletion_curve(model, spec, fused, targets=targets, **kw).mean_auc)
                scores[mode]["insertion"].append(insertion_curve(model, spec, fused, targets=targets, **kw).mean_auc)
            rnd = random_map((N_F, N_T), seed=1000 + i)
            scores["random"]["deletion"].append(deletion_curve(model, spec, rnd, targets=targets, **kw).mean_auc)
            scores["random"]["insertion"].append(insertion_curve(model, spec, rnd, targets=targets, **kw).mean_auc)
        out[name] = {mode: {k: {"mean": float(np.mean(v)), "sd": float(np.std(v))} for k, v in d.items()}
                     for mode, d in scores.items()}
    return {"inputs": n_inputs, "steps": steps, "substrate": "floor", "models": out}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=("cost", "normalize", "all"), default="all")
    ap.add_argument("--windows", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--inputs", type=int, default=12)
    ap.add_argument("--steps", type=int, default=24)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    report = {"machine": {"python": platform.python_version(), "torch": torch.__version__,
                          "cpu": platform.processor() or platform.machine(),
                          "threads": torch.get_num_threads()}}
    if args.part in ("cost", "all"):
        report["cost"] = bench_cost(args.windows, args.repeats)
    if args.part in ("normalize", "all"):
        report["normalize"] = bench_normalize(args.inputs, args.steps)
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
