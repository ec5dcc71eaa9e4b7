"""A MusicNet subset held out of a reference corpus: up to 6 pieces per composer (spread in
id order) whose work is in no split of the corpus and has no music21 counterpart the shipped
model could have trained on. Written as a MusicNet tree (symbolic links to the MIDI files and
the metadata CSV), for `musicbrain data musicnet`:

    python scripts/heldout_musicnet.py REF/manifest.csv OUT_TREE
    musicbrain data musicnet OUT_TREE -o mn-heldout --clip-seconds 10 \\
        --soundfont fluidr3_gm --soundfont timgm6mb
    python scripts/false_accusations_on_dataset.py mn-heldout --excerpt-clips 6 [--model M]
"""
import csv
import os
import sys
from pathlib import Path

from musicbrain_cli.data import musicnet as mn
from musicbrain_cli.data.reference import musicnet as mnr

PER_COMPOSER = 6


def _spread(items: list, k: int) -> list:
    """k items evenly spaced over ``items``, the first and the last included. (Not
    ``scores._evenly``, which spaces them differently: the README's figures were measured
    on this selection.)"""
    k = min(k, len(items))
    if k <= 1:
        return items[:k]
    return [items[round(i * (len(items) - 1) / (k - 1))] for i in range(k)]


def main() -> None:
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    manifest, out = Path(sys.argv[1]), Path(sys.argv[2])
    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"{out} exists and is not empty; give a new folder")
    root = mnr.find_musicnet()
    if root is None:
        raise SystemExit("no MusicNet tree found (../shared/data/musicnet)")
    with manifest.open(newline="") as f:
        taken = {r["work_id"] for r in csv.DictReader(f)} | mnr.known_music21_works()
    meta = mn.read_metadata(root)
    pieces, _ = mn.discover(root)
    free = [p for p in pieces
            if p.work_id not in taken
            and mnr.music21_alias(p.composer, " ".join((meta[p.id].get("catalog_name") or "")
                                                       .split())) not in taken]
    by_composer: dict[str, list] = {}
    for p in free:
        by_composer.setdefault(p.composer, []).append(p)
    chosen = [p for c in sorted(by_composer) for p in _spread(by_composer[c], PER_COMPOSER)]
    (out / "musicnet_midis").mkdir(parents=True, exist_ok=True)
    os.symlink(root / "musicnet_metadata.csv", out / "musicnet_metadata.csv")
    for p in chosen:
        src = mnr._midi_path(root, p)
        dst = out / "musicnet_midis" / src.parent.name / src.name
        dst.parent.mkdir(exist_ok=True)
        os.symlink(src, dst)
    print(f"{len(chosen)} pieces of {len({p.work_id for p in chosen})} works, composers: "
          f"{sorted({p.composer for p in chosen})}")


if __name__ == "__main__":
    main()
