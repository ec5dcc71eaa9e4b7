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
import shutil
import sys
from pathlib import Path

from musicbrain_cli.data import musicnet as mn
from musicbrain_cli.data.reference import musicnet as mnr
from musicbrain_cli.data.reference.musicnet import find_musicnet

if len(sys.argv) != 3:
    raise SystemExit(__doc__)
root = find_musicnet()
if root is None:
    raise SystemExit("no MusicNet tree found (../shared/data/musicnet)")
out = Path(sys.argv[2])
with open(sys.argv[1], newline="") as f:
    used = {r["work_id"] for r in csv.DictReader(f)}
known = mnr.known_music21_works()
meta = mn.read_metadata(root)
pieces, _ = mn.discover(root)
by = {}
for p in pieces:
    row = meta[p.id]
    catalog = " ".join((row.get("catalog_name") or "").split())
    alias = mnr.music21_alias(p.composer, catalog)
    if p.work_id in used or (alias and alias in known) or (alias and alias in used):
        continue
    by.setdefault(p.composer, []).append(p)
chosen = []
for comp, ps in sorted(by.items()):
    k = min(6, len(ps))
    chosen += [ps[round(i * (len(ps) - 1) / max(k - 1, 1))] for i in range(k)] if k > 1 else ps[:k]
if out.exists():
    shutil.rmtree(out)
(out / "musicnet_midis").mkdir(parents=True)
shutil.copy(root / "musicnet_metadata.csv", out / "musicnet_metadata.csv")
for p in chosen:
    src = next((root / "musicnet_midis").rglob(f"{p.id}_*.mid"))
    dst = out / "musicnet_midis" / src.parent.name / src.name
    dst.parent.mkdir(exist_ok=True)
    os.symlink(src, dst)
print(len(chosen), sorted({(p.composer) for p in chosen}), len({p.work_id for p in chosen}))
