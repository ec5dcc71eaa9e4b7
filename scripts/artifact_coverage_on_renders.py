"""How many human MusicNet renderings lie outside the artifact line's human coverage?

The line withholds a 'human' verdict where a recording's rate or bandwidth lies outside what
its human side was calibrated on (``artifacts.detector.HumanCoverage``). Renderings of human
scores are the content model's home domain, so this measures what the rule costs there:
``--pieces`` MusicNet pieces drawn with a fixed seed, each rendered (first ``--seconds`` s)
with the corpus's SoundFonts in turn at 44.1 and 22.05 kHz, and analysed by the shipped line.

    python scripts/artifact_coverage_on_renders.py [--musicnet ../shared/data/musicnet]   # ~15 min
"""

from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(argv: list[str]) -> int:
    from musicbrain_cli.artifacts.detector import ArtifactDetector
    from musicbrain_cli.data.musicnet import discover, labels_to_midi
    from musicbrain_cli.data.render import available_soundfonts, render_midi, score_to_midi

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--musicnet", type=Path, default=ROOT.parent / "shared" / "data" / "musicnet")
    ap.add_argument("--pieces", type=int, default=40)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    det = ArtifactDetector.from_pretrained("default")
    pieces, _ = discover(args.musicnet)
    rng = np.random.default_rng(args.seed)
    pick = [pieces[i] for i in sorted(rng.choice(len(pieces), args.pieces, replace=False))]
    fonts = available_soundfonts()
    counts: collections.Counter = collections.Counter()
    for k, piece in enumerate(pick):
        midi = (score_to_midi(piece.midi_path) if piece.midi_path is not None
                else labels_to_midi(piece.labels_path, timing="score"))
        font = fonts[k % len(fonts)]
        for rate in (44100, 22050):
            y = render_midi(midi, font, sample_rate=rate)[: int(args.seconds * rate)]
            f = det.analyse_samples(y.astype(np.float32), rate)
            where = ("not applicable" if not f.applicable      # withheld anyway, never 'human'
                     else "inside" if f.covers_human else "outside")
            counts[(rate, where)] += 1
            print(f"{piece.id}\t{piece.instrumentation}\t{font.name}\t{rate}\t{f.bandwidth_hz}\t"
                  f"{where}\tP(AI) {f.p_ai}", flush=True)
    for rate in (44100, 22050):
        print(f"{rate} Hz: of {args.pieces} renderings, {counts[(rate, 'outside')]} outside the "
              f"coverage, {counts[(rate, 'not applicable')]} not applicable")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
