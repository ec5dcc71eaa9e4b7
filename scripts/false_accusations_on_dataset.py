"""Count the scan's verdicts on the human clips of a data set, clip by clip and on excerpts.

Made to measure what the shipped model does on the client's human corpus rendered the way
``data musicnet`` renders it (README, "The default model"):

    musicbrain data musicnet MUSICNET_SUBSET -o mn-ds --clip-seconds 10 \\
        --soundfont fluidr3_gm --soundfont timgm6mb
    python scripts/false_accusations_on_dataset.py mn-ds --excerpt-clips 6

Each human clip is analysed by ``scan.batch.analyse_track`` (the scan's own verdict, with the
model's domain checks; no explanations), then each run of ``--excerpt-clips`` consecutive
clips of one piece, joined into one excerpt (written under OUT). Prints the verdict counts
and every clip or excerpt called ``ai`` with its content P(AI).
"""

from __future__ import annotations

import argparse
import collections
import re
from pathlib import Path

import numpy as np
import soundfile as sf

from musicbrain_cli.audio.encode import encode_audio
from musicbrain_cli.errors import MusicBrainError
from musicbrain_cli.model.inference import Detector
from musicbrain_cli.scan.batch import ScanOptions, analyse_track
from musicbrain_cli.data.dataset import Dataset


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset")
    ap.add_argument("--model", default="default")
    ap.add_argument("--excerpt-clips", type=int, default=6)
    ap.add_argument("-o", "--out", default="runs/excerpts")
    args = ap.parse_args()
    det = Detector.from_pretrained(args.model, device="cpu")
    options = ScanOptions(explain_windows=0)
    root, out = Path(args.dataset), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = [r for r in Dataset.load(root).rows if r["source"] == "human"]

    def verdict(path: Path) -> tuple[str, float]:
        try:
            t = analyse_track(path, det, options=options).track
        except MusicBrainError as exc:      # e.g. a clip of digital silence: no verdict
            return f"not analysed ({type(exc).__name__})", float("nan")
        return t["verdict"]["label"], t["verdict"]["p_ai"]

    clips = collections.Counter()
    by_work: dict[str, list[Path]] = collections.defaultdict(list)
    for r in rows:
        label, p = verdict(root / r["path"])
        clips[label] += 1
        if label == "ai":
            print(f"clip called ai: {r['path']} P(AI) {p:.3f}")
        by_work[r["work_id"]].append(root / r["path"])
    excerpts = collections.Counter()
    for work, paths in sorted(by_work.items()):
        paths = sorted(paths)
        for k in range(0, len(paths), args.excerpt_clips):
            part = paths[k:k + args.excerpt_clips]
            if len(part) < max(1, args.excerpt_clips // 2):
                continue
            y = [sf.read(x, dtype="float32", always_2d=True) for x in part]
            stem = re.sub(r"[^A-Za-z0-9._-]+", "_", work).strip("_") or "work"
            target = out / f"{stem}-{k // args.excerpt_clips}.flac"
            encode_audio(target, np.concatenate([a.mean(axis=1) for a, _ in y]), y[0][1])
            label, p = verdict(target)
            excerpts[label] += 1
            if label == "ai":
                print(f"excerpt called ai: {target.name} P(AI) {p:.3f}")
    print(f"clips: {dict(clips)} of {sum(clips.values())}")
    print(f"excerpts of {args.excerpt_clips} clips: {dict(excerpts)} of {sum(excerpts.values())}")


if __name__ == "__main__":
    main()
