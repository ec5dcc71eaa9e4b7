"""Does the symbolic line keep its promises after what happens to music on its way to a dispute?

    python scripts/symbolic_robustness.py CORPUS [--model default] [--splits test,test_xsf] \\
        [--transforms mp3_128 opus_64 resample_16k noise_30db pitch_+1 stretch_+5] [--jobs 2] \\
        [-o runs/symbolic/robustness.json]

The content model's robustness table (docs/evaluation/robustness.md) covers re-encoding,
resampling, noise, pitch and tempo edits; the symbolic line was measured on clean renderings
only. Here every human and score-writing-AI clip of the chosen splits of CORPUS (a corpus in
the reference layout) is cut to its first 10 s at 22,050 Hz as the fit read it, passed through
each transform of :mod:`musicbrain_cli.evaluate.robustness` (the same functions and seeds as
the content model's table), transcribed again by basic-pitch and scored by the line: per
transform, human clips accused (in the line's domain, P(AI) at or above the operating point)
and withheld a ``human`` verdict (at or above the doubt threshold), AI clips caught and kept
from ``human``, with Wilson 95 % intervals. The content model's domain is not consulted
(these are renderings), so the false-accusation figures are the line's alone, the pessimistic
case. Prints a Markdown table; ``-o`` also writes the rows as JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

DEFAULT_TRANSFORMS = ("original", "mp3_128", "opus_64", "resample_16k", "noise_30db", "pitch_+1",
                      "stretch_+5")


def transcribe(args: tuple[str, str, str, int]) -> tuple[str, str, np.ndarray | None, str | None]:
    """``(clip_id, transform, notes [n, 3] or None, error)`` of one clip after one transform."""
    clip_id, path, key, seed = args
    try:
        from musicbrain_cli.evaluate.robustness import TRANSFORMS, _rng
        from musicbrain_cli.symbolic.corpus import transcribe_clip

        rng = _rng(seed, key, clip_id)
        return clip_id, key, transcribe_clip(path, lambda y, sr: TRANSFORMS[key](y, sr, rng=rng)), None
    except Exception as exc:  # noqa: BLE001 - one clip's failure is counted, not fatal
        return clip_id, key, None, f"{type(exc).__name__}: {exc}"


def measure(root: str | Path, det, *, splits=("test", "test_xsf"), transforms=DEFAULT_TRANSFORMS,
            jobs: int = 2, seed: int = 0, on_progress=None) -> list[dict]:
    """One row per transform (module doc)."""
    from musicbrain_cli.artifacts.fit import rate_with_interval
    from musicbrain_cli.errors import InputError
    from musicbrain_cli.evaluate.robustness import TRANSFORMS
    from musicbrain_cli.symbolic import corpus
    from musicbrain_cli.symbolic.fit import dataset

    unknown = [t for t in transforms if t not in TRANSFORMS]
    if unknown:
        raise InputError(f"unknown transform(s) {unknown} (known: {', '.join(TRANSFORMS)})")
    root = Path(root)
    rows = [r for r in corpus.symbolic_rows(root / "manifest.csv") if r["split"] in splits]
    work = [(r["clip_id"], str(root / r["path"]), key, seed) for key in transforms for r in rows]
    notes: dict[str, dict[str, np.ndarray]] = {key: {} for key in transforms}
    failed: dict[str, int] = {key: 0 for key in transforms}
    with ProcessPoolExecutor(max_workers=max(jobs, 1)) as pool:
        for n, (clip_id, key, arr, error) in enumerate(pool.map(transcribe, work, chunksize=4)):
            if arr is None:
                failed[key] += 1
            else:
                notes[key][clip_id] = arr
            if on_progress:
                on_progress(n + 1, len(work))
    out = []
    for key in transforms:
        items, skipped = dataset(rows, notes[key], rolls=det.uses_roll)
        p = det.p_ai(det.raw_scores([i["features"] for i in items],
                                    rolls=[i["roll"] for i in items] if det.uses_roll else None)) \
            if items else np.zeros(0)
        in_dom = np.array([det.distance(i["features"]) <= det.domain_limit for i in items], bool)
        label = np.array([i["label"] for i in items], int)
        n_h, n_a = sum(r["source"] == "human" for r in rows), sum(r["source"] == "ai" for r in rows)
        count = lambda lab, t: int(np.sum((label == lab) & in_dom & (p >= t)))  # noqa: E731
        out.append({"transform": key, "name": TRANSFORMS[key].name, "human_clips": n_h, "ai_clips": n_a,
                    "human_accused": rate_with_interval(count(0, det.threshold), n_h),
                    "human_withheld": rate_with_interval(count(0, det.doubt_threshold), n_h),
                    "ai_caught": rate_with_interval(count(1, det.threshold), n_a),
                    "ai_doubted": rate_with_interval(count(1, det.doubt_threshold), n_a),
                    "skipped": skipped, "failed": failed[key]})
    return out


def markdown(rows: list[dict]) -> str:
    def cell(r):
        lo, hi = r["ci95"]
        return f"{r['k']} of {r['n']} ({100 * r['rate']:.1f} %, {100 * lo:.1f}-{100 * hi:.1f})" if r["n"] else "-"

    lines = ["| transform | human accused | human withheld | AI caught | AI at or above doubt | "
             "too few notes / failed |", "|---|---|---|---|---|---|"]
    for r in rows:
        few = sum(r["skipped"].values())
        lines.append(f"| {r['name']} | {cell(r['human_accused'])} | {cell(r['human_withheld'])} | "
                     f"{cell(r['ai_caught'])} | {cell(r['ai_doubted'])} | {few} / {r['failed']} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("corpus", type=Path)
    ap.add_argument("--model", default="default")
    ap.add_argument("--splits", default="test,test_xsf")
    ap.add_argument("--transforms", nargs="+", default=list(DEFAULT_TRANSFORMS))
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("-o", "--out", type=Path)
    args = ap.parse_args(argv)
    from rich.console import Console
    from rich.progress import Progress

    from musicbrain_cli.symbolic.detector import SymbolicDetector

    det = SymbolicDetector.from_pretrained(args.model)
    with Progress(console=Console(stderr=True)) as bar:
        task = bar.add_task("transforming and transcribing", total=None)
        rows = measure(args.corpus, det, splits=tuple(args.splits.split(",")), transforms=args.transforms,
                       jobs=args.jobs, seed=args.seed,
                       on_progress=lambda d, n: bar.update(task, completed=d, total=n))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"model_sha256": det.sha256, "threshold": det.threshold,
                                        "doubt_threshold": det.doubt_threshold, "corpus": str(args.corpus),
                                        "splits": args.splits, "seed": args.seed, "rows": rows}, indent=1) + "\n")
    sys.stdout.write(markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
