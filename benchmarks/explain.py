"""FM-G-CAM cost per window relative to one forward pass (CPU), and the normalisation study.

Usage::

    python benchmarks/explain.py                  # both parts, JSON on stdout
    python benchmarks/explain.py --part cost --windows 4 --repeats 5 --threads 2
    python benchmarks/explain.py --part normalize --inputs 12
    python benchmarks/explain.py --part refine --clips 8 --threads 2

Cost: MusicBrainNet at its default front end (one 10 s window = 256 x 500 log-mel map,
convnext_atto, random weights: cost does not depend on the weights) on a batch of
``--windows`` windows. "forward" is one inference forward under ``torch.no_grad`` (what
the detector pays); "fm-g-cam" is FMGradCAM for each window's top three labels (one forward
with a graph from the ``fusion`` layer on, three backwards from the logits to ``fusion``);
"refined" is FMGradCAM with ``refine="gradient-input"`` (the forward keeps its graph from
the input, plus one full backward for the three targets summed).
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

from musicbrain_cli.explain import (DEFAULT_DESTRIPE, NORMALIZE_MODES, FMGradCAM, deletion_curve,
                                    insertion_curve, random_map)
from musicbrain_cli.explain.fmgcam import stride_profile


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

    with FMGradCAM(model, layer="fusion", k=3) as cam, \
            FMGradCAM(model, layer="fusion", k=3, refine="gradient-input") as fine:
        explain = lambda: cam(x)  # noqa: E731
        refined = lambda: fine(x)  # noqa: E731
        forward(), explain(), refined()  # warm-up (allocator, oneDNN kernels)
        fwd, fm, rf = [], [], []
        for _ in range(repeats):
            fwd.append(_timed(forward))
            fm.append(_timed(explain))
            rf.append(_timed(refined))
        grid = cam(x[:1]).extra["grid"]
    f, c, r = statistics.median(fwd), statistics.median(fm), statistics.median(rf)
    return {"windows": windows, "input": list(fe.shape), "backbone": model.config.backbone,
            # the map's resolution: the fusion grid, and what one cell spans on the input
            "fusion_grid": list(grid),
            "cell_rows": fe.n_bins / grid[0], "cell_s": fe.n_frames / grid[1] / fe.frame_rate,
            "refined_cell_s": 1 / fe.frame_rate,
            "forward_s_per_window": f / windows, "fmgcam_top3_s_per_window": c / windows,
            "refined_top3_s_per_window": r / windows,
            "ratio": c / f, "ratio_of_minima": min(fm) / min(fwd),
            "refined_ratio": r / f, "refined_ratio_of_minima": min(rf) / min(fwd),
            "target_ratio": 3.0, "repeats": repeats,
            "forward_runs_s": fwd, "fmgcam_runs_s": fm, "refined_runs_s": rf}


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


# --- refinement study: the shipped model on rendered clips with known notes ------------------


def _note_clip(seconds: float, sample_rate: int, seed: int):
    """A rendered phrase with known notes: one GM instrument, notes on a 1/8-s grid with
    random lengths and pitches, some dyads. Returns ``(samples, notes)``."""
    import pretty_midi

    from musicbrain_cli.alignment.overlap import notes_from_objects
    from musicbrain_cli.data.render import available_soundfonts, render_midi

    rng = np.random.default_rng(seed)
    midi = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(program=int(rng.choice([0, 40, 73, 24, 71, 11])))
    t = 0.25
    while t < seconds - 0.3:
        length = float(rng.choice([0.25, 0.375, 0.5, 0.75]))
        pitch = int(rng.integers(48, 84))
        for p in [pitch] + ([pitch + int(rng.choice([3, 4, 7]))] if rng.random() < 0.3 else []):
            inst.notes.append(pretty_midi.Note(velocity=int(rng.integers(70, 110)), pitch=p,
                                               start=t, end=min(t + length, seconds)))
        t += length
    midi.instruments.append(inst)
    y = render_midi(midi, available_soundfonts()[0], sample_rate=sample_rate, seed=seed)
    n = int(round(seconds * sample_rate))
    out = np.zeros(n, np.float32)
    out[: min(n, y.size)] = y[:n]
    return out, notes_from_objects(inst.notes)


#: The grid the refined map's peaks were found on (the network's 8-frame stem stride and two
#: downsamplings after it), for ``event_peaks_on_grid``.
GRID_FRAMES = 32


def _on_grid(peaks_s, times, frames: int, tolerance_s: float = 0.05) -> dict:
    """How many of the entry clips' map-change peaks lie within ``tolerance_s`` of a multiple
    of ``frames`` frames (counted from the first frame's start), against chance (the share of
    the time axis that close to such a line)."""
    step = float(times[1] - times[0])
    period = frames * step
    edge = float(times[0]) - 0.5 * step
    peaks = np.asarray([p for p in peaks_s if np.isfinite(p)], dtype=np.float64)
    off = np.abs(((peaks - edge) / period + 0.5) % 1.0 - 0.5) * period
    return {"frames": frames, "seconds": period, "peaks": int(peaks.size),
            "on_grid": int((off <= tolerance_s).sum()), "chance": min(1.0, 2 * tolerance_s / period)}


def bench_refine(n_clips: int, model_name: str, *, first_seed: int = 100,
                 periods: tuple[int, ...] = (DEFAULT_DESTRIPE,)) -> dict:
    """Harmonic and onset alignment, band removal and the rhythmic-event test of the fused
    top-3 map and the verdict's own map, for refine='none', 'gradient-input' as it was and
    'gradient-input' with the stride pattern of each of ``periods`` frames removed. Note clips
    have seeds ``first_seed + i``, entry clips ``first_seed + 100 + i``."""
    from musicbrain_cli.alignment.overlap import (HarmonicOverlap, OnsetOverlap, energy_reference,
                                                  harmonic_overlap, note_onsets, onset_overlap)
    from musicbrain_cli.evaluate.split import entry_clip, entry_search
    from musicbrain_cli.explain import (LabelTarget, band_removal, band_removal_summary,
                                        event_peak, event_summary)
    from musicbrain_cli.features import bin_frequencies, frame_times
    from musicbrain_cli.model.inference import Detector

    detector = Detector.from_pretrained(model_name, device="cpu")
    fe = detector.config.front_end
    times, freqs = frame_times(fe), bin_frequencies(fe)
    source = [i for i, name in enumerate(detector.labels) if name.startswith("source/")]
    # "gradient-input/P": the refinement with the stride pattern of P frames removed (0: kept,
    # the refinement before session 18; the default is DEFAULT_DESTRIPE)
    modes = ("none", "gradient-input/0", *(f"gradient-input/{p}" for p in periods))
    acc = {m: {g: {"harmonic": [], "onset": [], "band": [], "event": []} for g in ("fused", "verdict")}
           for m in modes}

    def maps(spec, mode):
        mode, _, period = mode.partition("/")
        kw = {"refine": mode, "destripe": int(period or 0)}
        with FMGradCAM(detector.model, k=3, **kw) as cam:
            res = cam(spec, times=times, freqs=freqs)
        verdict = max(source, key=lambda j: float(res.logits[0, j]))
        with FMGradCAM(detector.model, k=1, **kw) as cam:
            alone = cam(spec, targets=[LabelTarget(verdict)])
        return {"fused": (res.fused()[0], res.labels[0].tolist()), "verdict": (alone.fused()[0], [verdict])}

    energy = {"harmonic": [], "onset": []}     # the reference: each clip's own spectrogram
    # the model's own sensitivity: |d(top-3 logits)/d input| without the input term, the
    # stride pattern removed as in the refined map
    sensitivity = {"harmonic": [], "onset": []}
    start = time.perf_counter()
    for i in range(n_clips):
        wave, notes = _note_clip(fe.window_s, fe.sample_rate, seed=first_seed + i)
        spec = detector.spectrograms(wave[None])
        ref_h, ref_o = energy_reference(spec[0, 0].numpy(), freqs=freqs, times=times, notes=notes,
                                        onsets=note_onsets(notes))
        energy["harmonic"].append(ref_h)
        energy["onset"].append(ref_o)
        grad_map = _sensitivity(detector.model, spec, k=3)
        sensitivity["harmonic"].append(harmonic_overlap(grad_map, freqs=freqs, times=times, notes=notes))
        sensitivity["onset"].append(onset_overlap(grad_map, times=times, onsets=note_onsets(notes)))
        for mode in modes:
            for group, (m, targets) in maps(spec, mode).items():
                a = acc[mode][group]
                a["harmonic"].append(harmonic_overlap(m, freqs=freqs, times=times, notes=notes))
                a["onset"].append(onset_overlap(m, times=times, onsets=note_onsets(notes)))
                a["band"].append(band_removal(detector.model, spec[0, 0], m, targets=targets,
                                              score_fn=detector.calibrate, seed=i))
        wave, t0 = entry_clip(seconds=fe.window_s, sample_rate=fe.sample_rate,
                              seed=first_seed + 100 + i)
        spec = detector.spectrograms(wave[None])
        for mode in modes:
            for group, (m, _) in maps(spec, mode).items():
                acc[mode][group]["event"].append(event_peak(m, times=times, t0=t0,
                                                            within=entry_search(fe.window_s)))
    out = {}
    for mode in modes:
        out[mode] = {}
        for group, a in acc[mode].items():
            h, o = HarmonicOverlap.combine(a["harmonic"]), OnsetOverlap.combine(a["onset"])
            out[mode][group] = {
                "harmonic": {"share": h.share, "chance": h.chance, "lift": h.lift},
                "onset": {"hit_rate": o.hit_rate, "chance_hit_rate": o.chance_hit_rate,
                          "concentration": o.concentration, "onsets": o.onsets},
                "band_removal": band_removal_summary(a["band"]),
                "rhythmic_event": event_summary(a["event"]),
                "event_peaks_on_grid": _on_grid([h.peak_s for h in a["event"]], times,
                                                GRID_FRAMES),
            }
    def pooled(parts):
        h, o = HarmonicOverlap.combine(parts["harmonic"]), OnsetOverlap.combine(parts["onset"])
        return {"harmonic": {"share": h.share, "chance": h.chance, "lift": h.lift},
                "onset": {"hit_rate": o.hit_rate, "chance_hit_rate": o.chance_hit_rate,
                          "concentration": o.concentration, "onsets": o.onsets}}

    return {"clips": n_clips, "first_seed": first_seed, "model": model_name,
            "seconds": time.perf_counter() - start, "modes": out,
            "energy_reference": pooled(energy), "gradient_alone": pooled(sensitivity)}


def _sensitivity(model, spec, *, k: int) -> np.ndarray:
    """``|d(sum of the top-k logits)/d spec|`` of one window ``spec [1, 1, F, T]`` with the
    network's stride pattern divided out (:func:`stride_profile`, as the refined map does):
    where the model responds, whatever the input's level there. ``[F, T]``."""
    x = spec.detach().clone().requires_grad_(True)
    logits = model(x)
    logits[0, torch.topk(logits[0], k).indices].sum().backward()
    grad = x.grad.detach().abs()
    return (grad / stride_profile(grad, DEFAULT_DESTRIPE))[0, 0].numpy()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=("cost", "normalize", "refine", "all"), default="all")
    ap.add_argument("--clips", type=int, default=8, help="--part refine: rendered clips of each kind")
    ap.add_argument("--model", default="default", help="--part refine: the model explained")
    ap.add_argument("--first-seed", type=int, default=100,
                    help="--part refine: seed of the first note clip (entry clips: +100)")
    ap.add_argument("--periods", type=int, nargs="+", default=None,
                    help="--part refine: stride-pattern periods to compare (default: the default)")
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
    if args.part == "refine":   # renders clips and loads the shipped model: not part of "all"
        report["refine"] = bench_refine(args.clips, args.model, first_seed=args.first_seed,
                                        periods=tuple(args.periods or (DEFAULT_DESTRIPE,)))
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
