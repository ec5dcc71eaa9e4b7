"""Build examples/catalog/ from a reference corpus: held-out clips in several formats.

The README's main command scans this folder with the shipped model. Clips come from the
corpus's test split (never seen in training), one per class where possible, encoded as
FLAC, MP3, Ogg/Opus, M4A/AAC and WAV so the demo also exercises the decoder.

    python scripts/make_example_catalog.py /path/to/reference-corpus examples/catalog
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

PLAN = (  # (source, generator, extension): one clip of each; "-arr" a popular arrangement
    ("human", "-", ".flac"), ("human", "-", ".mp3"), ("human", "-arr", ".m4a"),
    ("ai", "symbolic-small", ".ogg"), ("ai", "symbolic-large", ".mp3"),
    ("ai", "neural-codec", ".opus"), ("ai", "neural-codec", ".wav"),
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("corpus", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--split", default="test")
    args = ap.parse_args()

    from musicbrain_cli.audio.intake import load_audio
    from musicbrain_cli.audio.encode import encode_audio

    rows = list(csv.DictReader((args.corpus / "manifest.csv").open(encoding="utf-8")))
    args.out.mkdir(parents=True, exist_ok=True)
    used: set[str] = set()
    for number, (source, generator, ext) in enumerate(PLAN, start=1):
        arranged = generator == "-arr"
        pick = next(r for r in rows if r["split"] == args.split and r["source"] == source
                    and r["generator"] == generator.removesuffix("arr")
                    and r["origin"].startswith("arrangement:") == arranged
                    and r["clip_id"] not in used)
        used.add(pick["clip_id"])
        y = load_audio(args.corpus / pick["path"], sample_rate=22050)
        truth = "human" if source == "human" else f"ai-{generator}"
        if arranged:
            style = pick["origin"].split(":")[1].split("#")[0]
        else:
            style = (pick["composer"].strip("-").split(",")[0].lower().replace(" ", "_")
                     or "traditional")
        name = f"{number:02d}-{truth}-{style}{ext}"   # the truth is in the name for the demo
        encode_audio(args.out / name, y, 22050)
        print(args.out / name)


if __name__ == "__main__":
    main()
