"""Measure the symbolic line on another corpus, clip by clip, at its own operating point.

    python scripts/measure_symbolic_line.py CORPUS --notes-cache DIR [--model default] [--splits test,test_xsf]

CORPUS is any data set in the reference layout (``manifest.csv``; e.g. held-out MusicNet
works built by ``musicbrain data musicnet``). Each human and score-writing-AI clip's first
10 s are transcribed by basic-pitch (cached in ``--notes-cache``), and the line's clip-level
rule is applied: accused when the window is in the line's domain and its P(AI) reaches the
operating point (the content model's domain is not consulted here: these are renderings).
Prints, as JSON with Wilson 95 % intervals, per source the clips accused and the clips at or
above the doubt threshold (a human clip there is withheld a ``human`` verdict).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console
from rich.progress import Progress

from musicbrain_cli.symbolic.corpus import symbolic_rows, transcribe_corpus
from musicbrain_cli.symbolic.detector import SymbolicDetector
from musicbrain_cli.symbolic.fit import dataset, evaluate


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("corpus", type=Path)
    ap.add_argument("--notes-cache", type=Path, required=True)
    ap.add_argument("--model", default="default")
    ap.add_argument("--splits", default="", help="comma-separated splits (default: all)")
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args(argv)
    rows = symbolic_rows(args.corpus / "manifest.csv")
    if args.splits:
        rows = [r for r in rows if r["split"] in args.splits.split(",")]
    with Progress(console=Console(stderr=True)) as bar:
        task = bar.add_task("transcribing clips", total=len(rows))
        notes, failed = transcribe_corpus(args.corpus, rows, args.notes_cache, jobs=args.jobs,
                                          on_progress=lambda d, n: bar.update(task, completed=d, total=n))
    det = SymbolicDetector.from_pretrained(args.model)
    items, skipped = dataset(rows, notes, rolls=det.uses_roll)
    print(json.dumps({"model_sha256": det.sha256, "threshold": det.threshold,
                      "doubt_threshold": det.doubt_threshold, "clips": len(rows),
                      "skipped": skipped, "failed": len(failed), **evaluate(det, items)}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
