"""Fit the symbolic evidence line on a reference corpus and write its model and card (issue 21).

    python scripts/fit_symbolic_line.py CORPUS --notes-cache DIR -o musicbrain_cli/symbolic/default \
        [--extra-train CORPUS2 NOTES_CACHE2] [--jobs 2] [--roll-epochs 8 --unseen-folds 4]

CORPUS is a reference corpus built by ``musicbrain data build-reference`` (its
``manifest.csv``, audio and splits). The notes basic-pitch hears in each human and
score-writing-AI clip are cached in ``--notes-cache`` (tied to the manifest's digest), so a
re-fit costs the fit alone. Prints the card's test figures. See
``musicbrain_cli/symbolic/fit.py`` for the rules.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from rich.console import Console
from rich.progress import Progress

from musicbrain_cli.symbolic.corpus import symbolic_rows, transcribe_corpus
from musicbrain_cli.symbolic.fit import fit_and_ship


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("corpus", type=Path)
    ap.add_argument("--notes-cache", type=Path, required=True)
    ap.add_argument("-o", "--out", type=Path, required=True)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--extra-train", nargs=2, action="append", default=[], metavar=("CORPUS", "NOTES_CACHE"),
                    help="another corpus whose clips all join the train split, with its notes cache "
                         "(repeatable); keep its works apart from CORPUS's validation and test clips")
    ap.add_argument("--roll-epochs", type=int, default=0,
                    help="train the piano-roll network for this many epochs and stack it with the "
                         "trees (0: trees only)")
    ap.add_argument("--unseen-folds", type=int, default=0, metavar="K",
                    help="unseen-group rule on K folds of the human groups instead of one group at a "
                         "time (0); with the roll network each held-out unit costs a network")
    args = ap.parse_args(argv)
    rows = symbolic_rows(args.corpus / "manifest.csv")
    with Progress(console=Console(stderr=True)) as bar:
        task = bar.add_task("transcribing clips", total=len(rows))
        notes, failed = transcribe_corpus(args.corpus, rows, args.notes_cache, jobs=args.jobs,
                                          on_progress=lambda d, n: bar.update(task, completed=d, total=n))
        extra = []
        for extra_root, extra_cache in args.extra_train:
            more = symbolic_rows(Path(extra_root) / "manifest.csv")
            task = bar.add_task(f"transcribing {extra_root}", total=len(more))
            extra_notes, extra_failed = transcribe_corpus(
                extra_root, more, extra_cache, jobs=args.jobs,
                on_progress=lambda d, n, t=task: bar.update(t, completed=d, total=n))
            failed.update(extra_failed)
            extra.append((extra_root, extra_notes))
        task = bar.add_task("unseen-group fits", total=None)
        card = fit_and_ship(args.corpus, notes, args.out, extra_train=extra, seed=args.seed,
                            roll_epochs=args.roll_epochs, unseen_folds=args.unseen_folds,
                            command=shlex.join(["python", "scripts/fit_symbolic_line.py", *sys.argv[1:]]),
                            on_progress=lambda d, n: bar.update(task, completed=d, total=n))
    for clip_id, why in sorted(failed.items()):
        print(f"not transcribed: {clip_id}: {why}", file=sys.stderr)
    print(json.dumps({"threshold": card["threshold"], "operating_point": card["operating_point"],
                      "test": card["test"]}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
