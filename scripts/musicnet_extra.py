"""More human MusicNet clips for the symbolic line's training side, from works no corpus holds.

    # 1. a tree of the MusicNet pieces whose works no given corpus holds (symlinks, release layout)
    python scripts/musicnet_extra.py tree ../shared/data/musicnet -o TREE \
        --exclude runs/enlarged/ref-medium --exclude runs/mn-heldout/ds [--per-composer N]
    # 2. render it as the reference corpus renders MusicNet
    musicbrain data musicnet TREE -o OUT --clip-seconds 10 --soundfont fluidr3_gm \
        --soundfont timgm6mb --humanize 0.04 0.01 8 0.25
    # 3. keep at most N clips per piece, evenly spread (manifest.csv; the full one is kept)
    python scripts/musicnet_extra.py thin OUT --per-piece 8

A piece is left out when its work is in any ``--exclude`` corpus (the reference corpus, whose
validation and test works must stay unseen; a held-out evaluation set; an earlier extra
batch) or when the music21 work it corresponds to is one the reference collections can hold
(the same work under another name). ``--per-composer`` keeps at most N pieces per composer,
spread in id order. The symbolic line's fit puts every clip of such a corpus in ``train``
(``scripts/fit_symbolic_line.py --extra-train OUT NOTES_CACHE``).
"""
from __future__ import annotations

import argparse
import csv
import os
import shutil
from collections import Counter, defaultdict
from pathlib import Path

from musicbrain_cli.data import musicnet as mn
from musicbrain_cli.data.reference import musicnet as mnr

FULL_MANIFEST = "manifest-full.csv"


def _spread(items: list, k: int) -> list:
    """``k`` of ``items`` evenly spread, first and last included (all when k >= len)."""
    if k >= len(items):
        return list(items)
    if k == 1:
        return items[:1]
    return [items[round(i * (len(items) - 1) / (k - 1))] for i in range(k)]


def tree(root: Path, out: Path, exclude: list[Path], per_composer: int | None) -> str:
    used: set[str] = set()
    for corpus in exclude:
        with open(corpus / "manifest.csv", newline="", encoding="utf-8") as fh:
            used |= {r["work_id"] for r in csv.DictReader(fh)}
    known = mnr.known_music21_works()
    meta = mn.read_metadata(root)
    pieces, _ = mn.discover(root)
    by_composer: dict[str, list] = defaultdict(list)
    for p in pieces:
        catalog = " ".join((meta[p.id].get("catalog_name") or "").split())
        alias = mnr.music21_alias(p.composer, catalog)
        if p.work_id in used or (alias and (alias in known or alias in used)):
            continue
        by_composer[p.composer].append(p)
    chosen = [p for comp in sorted(by_composer)
              for p in _spread(by_composer[comp], per_composer or len(by_composer[comp]))]
    if out.exists():
        shutil.rmtree(out)
    (out / "musicnet_midis").mkdir(parents=True)
    shutil.copy(root / "musicnet_metadata.csv", out / "musicnet_metadata.csv")
    for p in chosen:
        src = next((root / "musicnet_midis").rglob(f"{p.id}_*.mid"))
        dst = out / "musicnet_midis" / src.parent.name / src.name
        dst.parent.mkdir(exist_ok=True)
        os.symlink(src.resolve(), dst)
    counts = Counter(p.composer for p in chosen)
    return (f"{len(chosen)} pieces of {len({p.work_id for p in chosen})} works: "
            + ", ".join(f"{c} {n}" for c, n in sorted(counts.items())))


def thin(corpus: Path, per_piece: int) -> str:
    full = corpus / FULL_MANIFEST
    if not full.exists():
        shutil.copy(corpus / "manifest.csv", full)
    with open(full, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        fields, rows = reader.fieldnames, list(reader)
    by_piece: dict[str, list[dict]] = defaultdict(list)
    for r in rows:                                  # clip order within a piece is build order
        by_piece[r["origin"].split("#")[0]].append(r)
    keep = [r for piece in by_piece.values() for r in _spread(piece, per_piece)]
    with open(corpus / "manifest.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fields)
        w.writeheader()
        w.writerows(keep)
    return f"{len(keep)} of {len(rows)} clips kept from {len(by_piece)} pieces ({FULL_MANIFEST} holds all)"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    t = sub.add_parser("tree", help="a MusicNet tree of the pieces no given corpus holds")
    t.add_argument("root", type=Path, help="MusicNet in its release layout")
    t.add_argument("-o", "--out", type=Path, required=True)
    t.add_argument("--exclude", type=Path, action="append", default=[], metavar="CORPUS",
                   help="a corpus whose works are left out (repeatable)")
    t.add_argument("--per-composer", type=int, default=None)
    n = sub.add_parser("thin", help="keep at most N clips per piece in a built corpus")
    n.add_argument("corpus", type=Path)
    n.add_argument("--per-piece", type=int, default=8)
    args = ap.parse_args(argv)
    if args.command == "tree":
        print(tree(args.root, args.out, args.exclude, args.per_composer))
    else:
        print(thin(args.corpus, args.per_piece))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
