"""Which works of a built corpus's validation and test splits were training works of another
size's build (the shipped model's corpus is ``--size full --seed 0``)?

    python scripts/split_overlap.py ref-medium/manifest.csv [--size full] [--seed 0]

Splits are assigned by rank among the works a build holds (``data.dataset.assign_splits``),
so a smaller build's cut points differ from the full build's: a model fine-tuned from the
shipped one and measured on a smaller build's test split could be measured on works it was
trained on. This recomputes the other size's split of every human work without parsing a
score: a music21 work's id is its file's work group (``scores.work_group``); the ABC books
(the collections with ``max_works``) are read through the parse cache, ``--cache-dir``
(parsed on a miss). Approximate in one respect: a file that fails to parse or holds under 8
notes drops out of a real build, shifting its neighbours' ranks; there are few such files.
Prints the clip counts per (this split, the other build's split) and the clips of this
build's val/test splits whose work trained the other build's model.
"""

from __future__ import annotations

import argparse
import csv
import json
from collections import Counter
from pathlib import Path


def other_build_splits(size: str, seed: int, cache_dir: Path | None) -> dict[str, str]:
    from musicbrain_cli.data.reference import build as B
    from musicbrain_cli.data.reference import scores as sc
    from musicbrain_cli.data.reference import symbolic as sy

    spec = B.SIZES[size]
    ids: set[str] = set()
    for c in sc.COLLECTIONS:
        if spec.collections is not None and c.name not in spec.collections:
            continue
        files = sc.collection_files(c)
        if spec.files_per_collection is not None:
            files = files[:spec.files_per_collection]
        if c.max_works is not None:          # an ABC book: several works per file
            works = [w for rel in files for w in sc.load_works(c, rel, cache_dir=cache_dir)]
            ids |= {w.work_id for w in sc._evenly(works, c.max_works)}
        else:
            ids |= {sc.work_group(c, rel) for rel in files}
    pinned = set(sy.load_generator(B.ASSETS_DIR, B.SYMBOLIC_GENERATORS[0])[2]["training_works"])
    splits = B._split_works(sorted(ids), pinned, seed)
    splits.update({c.work_id: c.split for c in B.plan_arrangements(spec, seed)})
    return splits


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("manifest", type=Path)
    ap.add_argument("--size", default="full")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache-dir", type=Path, default=None)
    args = ap.parse_args()
    other = other_build_splits(args.size, args.seed, args.cache_dir)
    counts: Counter = Counter()
    leaked = []
    with args.manifest.open(newline="") as f:
        for row in csv.DictReader(f):
            theirs = other.get(row["work_id"], "-")
            counts[(row["source"], row["split"], theirs)] += 1
            if row["split"] != "train" and theirs == "train":
                leaked.append(row["clip_id"])
    print(json.dumps({"clips_by_source_split_and_other_split":
                      {f"{a} {b} <- {args.size} {c}": n for (a, b, c), n in sorted(counts.items())},
                      "val_or_test_clips_whose_work_trained_the_other_build": leaked}, indent=1))


if __name__ == "__main__":
    main()
