"""Fidelity of a saliency map: deletion and insertion curves and their AUC.

Deletion (Petsiuk, Das & Saenko, "RISE", BMVC 2018, sec. 4.1): replace time-frequency cells
by a substrate in the order the map ranks them, most salient first, and follow the target's
probability; a faithful map makes it fall fast (low AUC). Insertion starts from the
substrate and puts cells back in the same order; a faithful map makes it rise fast (high AUC).

A number alone says little, so :func:`fidelity_report` always measures two baselines on the
same input, targets and substrate: random maps (what any map should beat) and an occlusion
map (Zeiler & Fergus 2014: the probability drop from blanking each patch, a strong but
expensive model-agnostic reference).

Substrates (what a removed cell becomes; each has a bias, so report which one was used):

- ``"floor"``: the spectrogram's minimum (silence on a dB scale; out of distribution when a
  large share of cells is removed);
- ``"noise"``: Gaussian noise with the spectrogram's mean and standard deviation (seeded);
- ``"blur"``: a Gaussian-blurred copy (removes fine harmonic/onset structure, keeps energy).

Two further tests speak the language of the signal, so an opposing expert can check them
without trusting a pixel ranking (issue 26, item 3):

- band removal (:func:`band_removal`): set the frequency band of fixed width that the map
  marks most to the substrate, and, as chance, random bands of the same width; a faithful
  map's band costs the explained labels more probability. Across windows
  (:func:`band_removal_summary`): the mean paired difference with a bootstrap interval, a
  one-sided Wilcoxon signed-rank test and a sign test, and the share of windows where the
  marked band hurts more (Wilson interval). This is the frequency analogue of deletion with
  a fixed budget, as in ROAR/ROAD-style removal tests (Hooker et al. 2019; Rong et al. 2022),
  but removing a contiguous band, which is what a filter does to music.
- rhythmic event (:func:`event_peak`): on a clip where an instrument enters at a known time
  ``t0``, the map's change over time (the absolute difference of consecutive columns' share
  of the map's mass) must peak within ``tolerance_s`` of ``t0``. Chance is the share of
  change positions inside the tolerance window (a peak placed uniformly at random);
  :func:`event_summary` gives the hit rate, its Wilson interval and a one-sided exact
  test against the clips' chance rates (Poisson-binomial; binomial when they are equal).

All steps of a curve are evaluated as batches (``batch_size`` perturbed copies per forward),
under ``torch.no_grad`` and in eval mode, restoring the caller's model mode afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Literal, Sequence

import numpy as np
import torch
from torch import nn

from musicbrain_cli.errors import ConfigError, InputError
from musicbrain_cli.explain.base import EPS, _ModeGuard

Substrate = Literal["floor", "noise", "blur"]
SUBSTRATES: tuple[str, ...] = ("floor", "noise", "blur")
DEFAULT_STEPS = 20
DEFAULT_BATCH = 16
#: Gaussian blur width for the "blur" substrate, in (frequency bins, frames).
DEFAULT_BLUR_SIGMA = (3.0, 3.0)
DEFAULT_TOP_K = 3
#: Band removal: width of the removed band in rows (16 of the default 256 mel rows, about a
#: third of an octave in the mid range), random bands per window, bootstrap resamples.
DEFAULT_BAND_WIDTH = 16
DEFAULT_BAND_RANDOM = 8
DEFAULT_BOOTSTRAP = 2000
#: Rhythmic event: a peak of the map's change within this many seconds of the entry is a hit.
DEFAULT_EVENT_TOLERANCE_S = 0.1
#: Rhythmic event: the span either side of a boundary the step detector compares (longer than
#: a note of the entering melody, 0.25-0.75 s, so that a note's attack is not a step).
DEFAULT_EVENT_STEP_S = 1.0
# numpy >= 2 renamed trapz; setup.cfg allows numpy 1.26.
_trapezoid = getattr(np, "trapezoid", None) or np.trapz


@dataclass
class FidelityCurve:
    """``fractions [S+1]`` of cells removed (deletion) or inserted (insertion); ``scores
    [K, S+1]`` the probability of each target label; ``auc [K]`` trapezoid area under each."""

    mode: str
    substrate: str
    targets: list[int]
    fractions: np.ndarray
    scores: np.ndarray
    auc: np.ndarray

    @property
    def mean_auc(self) -> float:
        return float(np.mean(self.auc))

    def to_dict(self) -> dict:
        return {"mode": self.mode, "substrate": self.substrate, "targets": list(map(int, self.targets)),
                "fractions": self.fractions.tolist(), "scores": self.scores.tolist(),
                "auc": self.auc.tolist(), "mean_auc": self.mean_auc}


@dataclass
class FidelityReport:
    """Deletion and insertion mean AUCs of a map against its baselines on one window.

    Each ``*_auc`` dict has keys ``"saliency"``, ``"random"`` (mean over ``n_random`` maps),
    ``"random_grid"`` (random maps at the CAM's resolution) and ``"occlusion"`` (the last two
    absent when not computed). ``by_target`` holds the same per target, in ``targets`` order:
    ``{"deletion": {map: [K]}, "insertion": {map: [K]}}``, so a caller can split the figures
    by label."""

    substrate: str
    targets: list[int]
    deletion_auc: dict[str, float]
    insertion_auc: dict[str, float]
    curves: dict[str, FidelityCurve] = field(default_factory=dict)
    by_target: dict[str, dict[str, list[float]]] = field(default_factory=dict)

    def beats(self, baseline: str = "random") -> bool:
        """Lower deletion AUC *and* higher insertion AUC than ``baseline``."""
        return (self.deletion_auc["saliency"] < self.deletion_auc[baseline]
                and self.insertion_auc["saliency"] > self.insertion_auc[baseline])

    @property
    def beats_random(self) -> bool:
        """Lower deletion AUC *and* higher insertion AUC than the per-cell random maps."""
        return self.beats("random")

    def to_dict(self, *, with_curves: bool = False) -> dict:
        clean = lambda d: {k: (v if np.isfinite(v) else None) for k, v in d.items()}  # noqa: E731
        out = {"substrate": self.substrate, "targets": list(map(int, self.targets)),
               "deletion_auc": clean(self.deletion_auc), "insertion_auc": clean(self.insertion_auc),
               "beats_random": self.beats_random}
        if with_curves:
            out["curves"] = {k: c.to_dict() for k, c in self.curves.items()}
        return out


# --- helpers ---------------------------------------------------------------------------------


def _as_2d(spec: torch.Tensor | np.ndarray) -> torch.Tensor:
    spec = torch.as_tensor(spec)
    while spec.dim() > 2 and spec.shape[0] == 1:
        spec = spec[0]
    if spec.dim() != 2:
        raise InputError(f"expected one spectrogram [F, T] (or [1, 1, F, T]), got shape {tuple(spec.shape)}")
    return spec.float()


def _device(model: nn.Module, fallback: torch.device) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else fallback


def substrate(spec: torch.Tensor | np.ndarray, kind: str, *, seed: int = 0,
              blur_sigma: tuple[float, float] = DEFAULT_BLUR_SIGMA) -> torch.Tensor:
    """The ``[F, T]`` array a removed cell takes its value from (see the module docstring)."""
    spec = _as_2d(spec)
    if kind == "floor":
        return torch.full_like(spec, float(spec.min()))
    if kind == "noise":
        gen = torch.Generator().manual_seed(seed)
        noise = torch.randn(spec.shape, generator=gen, dtype=torch.float32)
        return (spec.mean() + spec.std() * noise.to(spec.device)).to(spec.dtype)
    if kind == "blur":
        from scipy.ndimage import gaussian_filter

        blurred = gaussian_filter(spec.detach().cpu().double().numpy(), sigma=blur_sigma, mode="nearest")
        return torch.as_tensor(blurred, dtype=spec.dtype, device=spec.device)
    raise ConfigError(f"unknown substrate {kind!r}; choose one of {SUBSTRATES}")


def _ranks(saliency: np.ndarray, seed: int) -> torch.Tensor:
    """Rank of each cell (0 = most salient), ties broken by a seeded random order, so a
    binary or constant map is not silently read in raster order."""
    flat = np.asarray(saliency, dtype=np.float64).ravel()
    rng = np.random.default_rng(seed)
    jitter = rng.permutation(flat.size)
    order = np.lexsort((jitter, -flat))  # primary key: saliency descending
    ranks = np.empty(flat.size, dtype=np.int64)
    ranks[order] = np.arange(flat.size)
    return torch.from_numpy(ranks)


@torch.no_grad()
def _probabilities(model: nn.Module, batch: torch.Tensor, targets: Sequence[int],
                   score_fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    return score_fn(model(batch))[:, list(targets)].float().cpu()


def perturbation_curve(model: nn.Module, spec, saliency, *, targets: Sequence[int], mode: str,
                       substrate_kind: Substrate = "floor", steps: int = DEFAULT_STEPS,
                       batch_size: int = DEFAULT_BATCH, seed: int = 0,
                       score_fn: Callable[[torch.Tensor], torch.Tensor] = torch.sigmoid) -> FidelityCurve:
    """Deletion (``mode="deletion"``) or insertion curve of ``saliency [F, T]`` on ``spec
    [F, T]`` for label indices ``targets``. ``score_fn`` turns logits into the scores followed
    (sigmoid: MusicBrain's labels are independent). ``steps`` + 1 points from 0 to 1."""
    if mode not in ("deletion", "insertion"):
        raise ConfigError(f"mode must be 'deletion' or 'insertion', not {mode!r}")
    if steps < 1 or batch_size < 1:
        raise ConfigError(f"steps and batch_size must be positive, got {steps}, {batch_size}")
    if len(targets) == 0:
        raise InputError("no target labels for the fidelity curve")
    x = _as_2d(spec)
    sal = np.asarray(saliency)
    if sal.shape != tuple(x.shape):
        raise InputError(f"saliency shape {sal.shape} does not match the spectrogram's {tuple(x.shape)}")
    device = _device(model, x.device)
    x = x.to(device)
    base = substrate(x, substrate_kind, seed=seed).to(device)
    start, end = (x, base) if mode == "deletion" else (base, x)
    ranks = _ranks(sal, seed).to(device).reshape(x.shape)
    n_cells = x.numel()
    fractions = np.linspace(0.0, 1.0, steps + 1)
    counts = np.round(fractions * n_cells).astype(np.int64)
    scores = []
    with _ModeGuard(model, True):
        for lo in range(0, len(counts), batch_size):
            n = torch.as_tensor(counts[lo: lo + batch_size], device=device)
            changed = ranks[None] < n[:, None, None]            # [b, F, T]
            batch = torch.where(changed, end[None], start[None])[:, None]  # [b, 1, F, T]
            scores.append(_probabilities(model, batch.to(x.dtype), targets, score_fn))
    curve = torch.cat(scores).T.numpy().astype(np.float64)   # [K, S+1]
    auc = _trapezoid(curve, fractions, axis=1)
    return FidelityCurve(mode=mode, substrate=substrate_kind, targets=[int(t) for t in targets],
                         fractions=fractions, scores=curve, auc=auc)


def deletion_curve(model: nn.Module, spec, saliency, *, targets: Sequence[int], **kwargs) -> FidelityCurve:
    """Deletion curve (lower AUC = more faithful); keywords as :func:`perturbation_curve`."""
    return perturbation_curve(model, spec, saliency, targets=targets, mode="deletion", **kwargs)


def insertion_curve(model: nn.Module, spec, saliency, *, targets: Sequence[int], **kwargs) -> FidelityCurve:
    """Insertion curve (higher AUC = more faithful); keywords as :func:`perturbation_curve`."""
    return perturbation_curve(model, spec, saliency, targets=targets, mode="insertion", **kwargs)


def random_map(shape: tuple[int, int], *, seed: int = 0,
               grid: tuple[int, int] | None = None) -> np.ndarray:
    """A uniform random saliency map: the chance baseline.

    Without ``grid`` every cell is drawn independently, so deleting a few per cent of the
    cells pocks the whole spectrogram, which no network's receptive field tolerates: a strong
    perturbation that says more about the mask's shape than about information (Rong et al.
    2022, "A Consistent and Efficient Evaluation Strategy for Attribution Methods", ROAD).
    With ``grid`` (h, w) the values are drawn on that grid and upsampled bilinearly to
    ``shape``, like a CAM read from an h x w layer, onto the rows and frames such a layer reads
    (:func:`~musicbrain_cli.explain.base.to_input_grid`, zero on those it drops, as the CAM's
    own maps are): chance at the resolution of the map it is compared with."""
    rng = np.random.default_rng(seed)
    if grid is None:
        return rng.random(shape)
    from musicbrain_cli.explain.base import to_input_grid

    h, w = int(grid[0]), int(grid[1])
    if h < 1 or w < 1:
        raise ConfigError(f"random map grid must be positive, got {grid}")
    coarse = torch.from_numpy(rng.random((1, 1, h, w)))
    return to_input_grid(coarse, tuple(shape))[0, 0].numpy()


def occlusion_map(model: nn.Module, spec, *, targets: Sequence[int], patch: tuple[int, int] = (8, 8),
                  stride: tuple[int, int] | None = None, substrate_kind: Substrate = "floor",
                  batch_size: int = DEFAULT_BATCH, seed: int = 0,
                  score_fn: Callable[[torch.Tensor], torch.Tensor] = torch.sigmoid) -> np.ndarray:
    """Occlusion saliency ``[F, T]``: the mean drop of the targets' probability when a
    ``patch`` (bins, frames) around a cell is replaced by the substrate, averaged over all
    patches covering the cell. Costs one forward per patch position (batched)."""
    x = _as_2d(spec)
    n_f, n_t = x.shape
    pf, pt = min(patch[0], n_f), min(patch[1], n_t)
    sf, st = stride if stride is not None else (max(1, pf // 2), max(1, pt // 2))
    device = _device(model, x.device)
    x = x.to(device)
    base = substrate(x, substrate_kind, seed=seed).to(device)
    f_starts = sorted(set(list(range(0, n_f - pf + 1, sf)) + [n_f - pf]))
    t_starts = sorted(set(list(range(0, n_t - pt + 1, st)) + [n_t - pt]))
    boxes = [(f, t) for f in f_starts for t in t_starts]
    with _ModeGuard(model, True):
        reference = _probabilities(model, x[None, None], targets, score_fn).mean()
        drops = []
        for lo in range(0, len(boxes), batch_size):
            chunk = boxes[lo: lo + batch_size]
            batch = x[None].repeat(len(chunk), 1, 1)
            for i, (f, t) in enumerate(chunk):
                batch[i, f: f + pf, t: t + pt] = base[f: f + pf, t: t + pt]
            drops.append(reference - _probabilities(model, batch[:, None], targets, score_fn).mean(dim=1))
    drops_all = torch.cat(drops).numpy()
    total = np.zeros((n_f, n_t))
    cover = np.zeros((n_f, n_t))
    for (f, t), d in zip(boxes, drops_all):
        total[f: f + pf, t: t + pt] += d
        cover[f: f + pf, t: t + pt] += 1
    return total / np.maximum(cover, 1)


def top_labels(model: nn.Module, spec, *, k: int = DEFAULT_TOP_K) -> list[int]:
    """The ``k`` labels with the highest logits for one spectrogram."""
    x = _as_2d(spec)
    device = _device(model, x.device)
    with _ModeGuard(model, True), torch.no_grad():
        logits = model(x.to(device)[None, None])[0]
    if k > logits.numel():
        raise ConfigError(f"k={k} exceeds the model's {logits.numel()} labels")
    return [int(i) for i in logits.topk(k).indices.cpu()]


def fidelity_report(model: nn.Module, spec, saliency, *, targets: Sequence[int] | None = None,
                    k: int = DEFAULT_TOP_K, substrate_kind: Substrate = "floor",
                    steps: int = DEFAULT_STEPS, n_random: int = 3, occlusion: bool = True,
                    occlusion_patch: tuple[int, int] = (8, 8), batch_size: int = DEFAULT_BATCH,
                    seed: int = 0, random_grid: tuple[int, int] | None = None,
                    score_fn: Callable[[torch.Tensor], torch.Tensor] = torch.sigmoid) -> FidelityReport:
    """Deletion and insertion AUC of ``saliency [F, T]`` against random maps and (if
    ``occlusion``) an occlusion map, on one window ``spec [F, T]``, for ``targets`` (default:
    the window's top ``k`` predicted labels). ``score_fn`` maps logits to the followed scores
    (pass the detector's calibrated ``sigmoid(logit / T)`` to follow its probabilities).
    With ``random_grid`` (the CAM layer's h x w), a second chance baseline, ``"random_grid"``,
    uses random maps of the CAM's own resolution (:func:`random_map`)."""
    if n_random < 1:
        # without a random map the chance AUCs are NaN and every comparison with them false:
        # the report said the map does not beat a baseline that was never measured
        raise ConfigError(f"n_random must be at least 1 (the chance baseline), got {n_random}")
    x = _as_2d(spec)
    targets = list(targets) if targets is not None else top_labels(model, x, k=k)
    common = dict(targets=targets, substrate_kind=substrate_kind, steps=steps,
                  batch_size=batch_size, seed=seed, score_fn=score_fn)
    maps = {"saliency": np.asarray(saliency)}
    if occlusion:
        maps["occlusion"] = occlusion_map(model, x, targets=targets, patch=occlusion_patch,
                                          substrate_kind=substrate_kind, batch_size=batch_size,
                                          seed=seed, score_fn=score_fn)
    deletion, insertion, curves = {}, {}, {}
    by_target: dict[str, dict[str, list[float]]] = {"deletion": {}, "insertion": {}}
    for name, m in maps.items():
        curves[f"deletion/{name}"] = deletion_curve(model, x, m, **common)
        curves[f"insertion/{name}"] = insertion_curve(model, x, m, **common)
        deletion[name] = curves[f"deletion/{name}"].mean_auc
        insertion[name] = curves[f"insertion/{name}"].mean_auc
        by_target["deletion"][name] = curves[f"deletion/{name}"].auc.tolist()
        by_target["insertion"][name] = curves[f"insertion/{name}"].auc.tolist()
    for name, grid in [("random", None)] + ([("random_grid", random_grid)] if random_grid else []):
        rand_del, rand_ins = [], []
        for r in range(n_random):
            m = random_map(tuple(x.shape), seed=seed + 1 + r, grid=grid)
            rand_del.append(deletion_curve(model, x, m, **common).auc)
            rand_ins.append(insertion_curve(model, x, m, **common).auc)
        # The mean of per-target means equals the mean over maps of each map's mean AUC.
        deletion[name] = float(np.mean(rand_del)) if rand_del else float("nan")
        insertion[name] = float(np.mean(rand_ins)) if rand_ins else float("nan")
        if rand_del:
            by_target["deletion"][name] = np.mean(rand_del, axis=0).tolist()
            by_target["insertion"][name] = np.mean(rand_ins, axis=0).tolist()
    return FidelityReport(substrate=substrate_kind, targets=targets, deletion_auc=deletion,
                          insertion_auc=insertion, curves=curves, by_target=by_target)


# --- frequency-band removal ------------------------------------------------------------------


@dataclass
class BandRemoval:
    """One window's band-removal test. ``marked_start``: first row of the band (``width``
    rows) with the most saliency; ``random_starts``: the chance bands' first rows; drops are
    the fall of the targets' mean probability when the band is set to the substrate
    (``random_drop`` averaged over the chance bands)."""

    targets: list[int]
    width: int
    marked_start: int
    marked_drop: float
    random_starts: list[int]
    random_drop: float

    @property
    def difference(self) -> float:
        """Marked drop minus chance drop: positive when the map's band matters more."""
        return self.marked_drop - self.random_drop

    def to_dict(self) -> dict:
        return {"targets": list(map(int, self.targets)), "width": self.width,
                "marked_start": self.marked_start, "marked_drop": self.marked_drop,
                "random_starts": list(map(int, self.random_starts)),
                "random_drop": self.random_drop, "difference": self.difference}


def marked_band(saliency, width: int) -> int:
    """First row of the ``width``-row band holding the most saliency (summed over time); ties
    go to the lowest band."""
    sal = np.asarray(saliency, dtype=np.float64)
    if sal.ndim != 2:
        raise InputError(f"expected a saliency map [F, T], got shape {sal.shape}")
    if not 1 <= width <= sal.shape[0]:
        raise ConfigError(f"band width {width} must be between 1 and the map's {sal.shape[0]} rows")
    rows = np.concatenate([[0.0], np.cumsum(sal.sum(axis=1))])
    return int(np.argmax(rows[width:] - rows[:-width]))


def band_removal(model: nn.Module, spec, saliency, *, targets: Sequence[int],
                 width: int = DEFAULT_BAND_WIDTH, n_random: int = DEFAULT_BAND_RANDOM,
                 substrate_kind: Substrate = "floor", seed: int = 0,
                 score_fn: Callable[[torch.Tensor], torch.Tensor] = torch.sigmoid) -> BandRemoval:
    """Remove (set to the substrate) the band of ``width`` rows that ``saliency [F, T]``
    marks most, and ``n_random`` random bands of the same width (start uniform over all
    positions, so a random band may overlap the marked one: that is chance), on ``spec
    [F, T]``; follow the mean score of ``targets``. One batched forward of ``2 + n_random``."""
    if len(targets) == 0:
        raise InputError("no target labels for the band-removal test")
    if n_random < 1:
        raise ConfigError(f"n_random must be at least 1, got {n_random}")
    x = _as_2d(spec)
    sal = np.asarray(saliency)
    if sal.shape != tuple(x.shape):
        raise InputError(f"saliency shape {sal.shape} does not match the spectrogram's {tuple(x.shape)}")
    start = marked_band(sal, width)
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, x.shape[0] - width + 1, size=n_random).tolist()
    device = _device(model, x.device)
    x = x.to(device)
    base = substrate(x, substrate_kind, seed=seed).to(device)
    batch = x[None].repeat(2 + n_random, 1, 1)
    for i, s in enumerate([start] + starts):
        batch[i + 1, s: s + width] = base[s: s + width]
    with _ModeGuard(model, True):
        p = _probabilities(model, batch[:, None], targets, score_fn).mean(dim=1).double().numpy()
    drops = p[0] - p[1:]
    return BandRemoval(targets=[int(t) for t in targets], width=int(width), marked_start=start,
                       marked_drop=float(drops[0]), random_starts=[int(s) for s in starts],
                       random_drop=float(drops[1:].mean()))


def band_removal_summary(results: Sequence[BandRemoval], *, n_boot: int = DEFAULT_BOOTSTRAP,
                         seed: int = 0, groups: Sequence[str] | None = None) -> dict:
    """The band test over windows, against chance: mean paired difference (marked drop minus
    random drop) with a bootstrap 95 % interval, one-sided Wilcoxon signed-rank p-value
    (H1: the marked band's drop is larger), the share of windows where the marked band hurts
    more with its Wilson interval, and a one-sided sign test over the non-tied windows.
    ``None`` figures when there are no windows.

    ``groups``: each window's work. Windows of one work are not independent, so then the
    interval resamples whole works and both tests and the share count works, each by the mean
    difference of its windows (``unit``: ``"work"``; ``units``: how many)."""
    from scipy.stats import binomtest, wilcoxon

    from musicbrain_cli.metrics import bootstrap_ci, cluster_indices, wilson_interval

    diff = np.asarray([r.difference for r in results], dtype=np.float64)
    n = int(diff.size)
    clusters = cluster_indices(list(groups) if groups is not None else None, n)
    by_unit = np.asarray([diff[c].mean() for c in clusters], dtype=np.float64)
    out = {"windows": n, "width": results[0].width if n else None,
           "unit": "work" if groups is not None else "window", "units": len(clusters),
           "marked_drop": float(np.mean([r.marked_drop for r in results])) if n else None,
           "random_drop": float(np.mean([r.random_drop for r in results])) if n else None,
           "mean_difference": float(diff.mean()) if n else None, "difference_ci95": [None, None],
           "wilcoxon_p": None, "marked_worse_share": None, "marked_worse_ci95": [None, None],
           "sign_test_p": None}
    if n == 0:
        return out
    wins, losses = int((by_unit > 0).sum()), int((by_unit < 0).sum())
    out["difference_ci95"] = bootstrap_ci(n, lambda idx: float(diff[idx].mean()),
                                          groups=list(groups) if groups is not None else None,
                                          n_boot=n_boot, seed=seed)
    out["marked_worse_share"] = wins / by_unit.size
    out["marked_worse_ci95"] = list(wilson_interval(wins, by_unit.size))
    if wins + losses:
        out["sign_test_p"] = float(binomtest(wins, wins + losses, 0.5, alternative="greater").pvalue)
    if np.any(by_unit != 0):
        out["wilcoxon_p"] = float(wilcoxon(by_unit, alternative="greater", zero_method="wilcox").pvalue)
    return out


# --- rhythmic event -------------------------------------------------------------------------


@dataclass
class EventHit:
    """One clip's rhythmic-event test: entry time ``t0`` s, the time ``peak_s`` where the
    map's change peaks, whether it is within ``tolerance_s``, and the chance of a hit for a
    peak placed uniformly at random over the change positions."""

    t0: float
    peak_s: float
    tolerance_s: float
    hit: bool
    chance: float

    def to_dict(self) -> dict:
        return {"t0": self.t0, "peak_s": self.peak_s, "tolerance_s": self.tolerance_s,
                "hit": self.hit, "chance": self.chance}


def map_change(saliency, times, *, step_s: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """The map's change over time: ``(change, at)`` in s, each column's share of the map's
    total mass compared across the boundary between two consecutive columns, placed between
    their centres. An all-zero map changes nowhere (all zeros).

    ``step_s = 0``: the absolute difference of the two columns' shares (``T - 1`` positions).
    ``step_s > 0``: the absolute difference of the mean share over the ``step_s`` seconds
    after the boundary and over the ``step_s`` seconds before it, at the boundaries where
    both spans fit: a step detector, which finds where the map moves to a new level (an
    instrument entering and staying) rather than its largest single jump (which every note
    attack of the entering melody can make as well as its entry)."""
    sal = np.asarray(saliency, dtype=np.float64)
    times = np.asarray(times, dtype=np.float64)
    if sal.ndim != 2 or times.shape != (sal.shape[1],) or sal.shape[1] < 2:
        raise InputError(f"need a map [F, T >= 2] and times [T], got {sal.shape} and {times.shape}")
    if not step_s >= 0:
        raise InputError(f"step_s must be >= 0, got {step_s}")
    mass = sal.sum(axis=0)
    mass = mass / max(mass.sum(), EPS)
    at = 0.5 * (times[1:] + times[:-1])
    if step_s == 0:
        return np.abs(np.diff(mass)), at
    w = max(1, int(round(step_s / float(np.median(np.diff(times))))))
    if 2 * w > mass.size:
        raise InputError(f"a map of {mass.size} columns is too short for steps of {step_s} s")
    run = np.concatenate([[0.0], np.cumsum(mass)])
    b = np.arange(w, mass.size - w + 1)          # boundary before column b
    after, before = (run[b + w] - run[b]) / w, (run[b] - run[b - w]) / w
    return np.abs(after - before), at[b - 1]


def event_peak(saliency, *, times, t0: float,
               tolerance_s: float = DEFAULT_EVENT_TOLERANCE_S,
               within: tuple[float, float] | None = None, step_s: float = 0.0) -> EventHit:
    """Does the change of ``saliency [F, T]`` (columns at ``times [T]`` s; ``step_s``: see
    :func:`map_change`) peak within ``tolerance_s`` of the event at ``t0`` s? A map that never
    changes is a miss.

    ``within=(start_s, end_s)``: look for the peak, and count chance, only at change positions
    in that interval (the span the events were drawn from, with a margin): the first and last
    columns of a spectrogram are padded, and every map, the input's own energy included,
    changes most there, whatever the music."""
    change, at = map_change(saliency, times, step_s=step_s)
    if within is not None:
        keep = (at >= within[0]) & (at <= within[1])
        if not np.any(keep):
            raise InputError(f"no change position of the map lies in {within} s")
        change, at = change[keep], at[keep]
    near = np.abs(at - t0) <= tolerance_s
    chance = float(near.mean())
    if not np.any(change > 0):
        return EventHit(t0=float(t0), peak_s=float("nan"), tolerance_s=float(tolerance_s), hit=False,
                        chance=chance)
    peak = float(at[int(np.argmax(change))])
    return EventHit(t0=float(t0), peak_s=peak, tolerance_s=float(tolerance_s),
                    hit=bool(abs(peak - t0) <= tolerance_s), chance=chance)


def event_summary(hits: Sequence[EventHit]) -> dict:
    """Hit rate over clips with its Wilson 95 % interval, the mean chance rate, and a
    one-sided exact p-value of the hits against chance: each clip hits by chance with its own
    probability (it differs from clip to clip: how many change positions lie within the
    tolerance depends on where the entry falls between them, and near the window's edges),
    so under the null the number of hits is Poisson-binomial; its upper tail is the p-value
    (the exact binomial test when every clip's chance is the same)."""
    from scipy.stats import binomtest, poisson_binom

    from musicbrain_cli.metrics import wilson_interval

    n = len(hits)
    k = int(sum(h.hit for h in hits))
    chance = float(np.mean([h.chance for h in hits])) if n else None
    out = {"clips": n, "hits": k, "hit_rate": k / n if n else None,
           "hit_rate_ci95": list(wilson_interval(k, n)), "chance": chance,
           "tolerance_s": hits[0].tolerance_s if n else None, "p_value": None,
           "median_error_s": None}
    if n:
        errors = [abs(h.peak_s - h.t0) for h in hits if np.isfinite(h.peak_s)]
        out["median_error_s"] = float(np.median(errors)) if errors else None
        chances = [h.chance for h in hits]
        if chance is not None and 0 < chance < 1:
            out["p_value"] = (float(binomtest(k, n, chance, alternative="greater").pvalue)
                              if max(chances) == min(chances)
                              else float(poisson_binom.sf(k - 1, chances)))
    return out
