"""More RhythGen clips for the symbolic line's training side, rendered as the reference corpus is.

    python scripts/build_rhythgen_extra.py REFERENCE_CORPUS -o OUT [--per-config 100] [--windows 2]
        [--rhythgen ../shared/data/notagen-outputs] [--midi-cache DIR] [--exclude CORPUS ...] [--jobs 2]

A reference corpus caps RhythGen's clips per instrumentation at the human count (so that the
content model cannot learn "Lieder, therefore AI"); the symbolic line reads notes, not timbre,
and its operating point is guarded by out-of-group human scores, so it can use more of
RhythGen's output. This writes, in the reference layout (``manifest.csv``, ``audio/``), up to
``--per-config`` pieces of each *training* configuration, ``--windows`` clips each, taken only
from works that the reference corpus's seeded split puts in ``train`` (the same
``_split_works`` draw, checked against the corpus) and from pieces the corpus does not
already hold. Each clip is rendered with the build's own draws (SoundFont, humanisation,
render seed from the clip id and the corpus seed). All rows are ``train``: no validation or
test work of the corpus, and no held-out configuration, can enter the line's fit through it.
``--exclude`` names earlier extra corpora whose pieces are skipped too, so that a second batch
adds new pieces rather than repeating the first.
"""
from __future__ import annotations

import argparse
import csv
import functools
import json
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import soundfile as sf
from rich.progress import Progress

from musicbrain_cli.data.reference import build as rb
from musicbrain_cli.data.reference import rhythgen as rg
from musicbrain_cli.data.render import RenderError, render_midi

FIELDS = ["clip_id", "path", "source", "generator", "period", "composer", "instrumentation", "work_id",
          "renderer", "split", "duration_s", "score_path", "origin"]


@functools.lru_cache(maxsize=1)
def _training_fonts():
    return [f for f in rb._soundfonts() if f.name != rb.HELD_OUT_SOUNDFONT]


def _render(args):
    clip_id, midi_path, out, sample_rate, n, seed = args
    import pretty_midi

    fonts = _training_fonts()
    _, fi, humanize, render_seed = rb._render_draws(seed, clip_id, held_out=False, n_fonts=len(fonts))
    try:
        y = rb._fit(render_midi(pretty_midi.PrettyMIDI(midi_path), fonts[fi], sample_rate=sample_rate,
                                humanize=humanize, seed=render_seed), n)
    except RenderError as exc:
        return clip_id, None, str(exc)
    sf.write(out, y, sample_rate, format="FLAC")
    return clip_id, fonts[fi].name, None


def _pieces_in(rows: list[dict]) -> set[str]:
    """The RhythGen pieces (paths relative to the RhythGen tree) that manifest rows come from."""
    return {r["origin"].split(":", 1)[1].split("#")[0] for r in rows if r["origin"].startswith("rhythgen:")}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("reference", type=Path)
    ap.add_argument("-o", "--out", type=Path, required=True)
    ap.add_argument("--rhythgen", type=Path, default=Path("../shared/data/notagen-outputs"))
    ap.add_argument("--midi-cache", type=Path, default=None)
    ap.add_argument("--per-config", type=int, default=100)
    ap.add_argument("--windows", type=int, default=2)
    ap.add_argument("--exclude", type=Path, action="append", default=[], metavar="CORPUS",
                    help="an earlier extra corpus whose pieces are not taken again (repeatable)")
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args(argv)
    ref = json.loads((args.reference / rb.REFERENCE_JSON).read_text())
    seed, clip_s, sample_rate = int(ref["seed"]), float(ref.get("clip_s", 12.0)), int(ref.get("sample_rate", 22050))
    with open(args.reference / "manifest.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    used = _pieces_in(rows)
    for other in args.exclude:
        with open(other / "manifest.csv", newline="", encoding="utf-8") as fh:
            used |= _pieces_in(list(csv.DictReader(fh)))
    pieces = rg.discover_pieces(args.rhythgen)
    splits = rb._split_works(sorted({p.work_id for p in pieces}), set(), seed)
    for r in rows:                                  # the same draw as the corpus's build
        if r["origin"].startswith("rhythgen:") and r["split"] in ("train", "val", "test"):
            assert splits.get(r["work_id"]) == r["split"], (r["work_id"], r["split"])
    todo = [p for p in pieces if not p.held_out and splits.get(p.work_id) == "train" and p.rel not in used]
    chosen = rg.select(todo, splits, per_config=args.per_config)
    cache = args.midi_cache or (args.out / rg.MIDI_CACHE)
    (args.out / "audio").mkdir(parents=True, exist_ok=True)
    (args.out / "scores").mkdir(parents=True, exist_ok=True)
    with Progress() as progress:
        midis, failures = rg.parse_all(chosen, cache, jobs=args.jobs)
        jobs, meta = [], {}
        for p in chosen:
            midi = midis.get(p.rel)
            if midi is None:
                continue
            for j, start in enumerate(rg.window_starts(midi, clip_s=clip_s, windows=args.windows)):
                cid = rg.clip_id(p, j)
                mid = args.out / "scores" / f"{cid}.mid"
                rg.midi_window(midi, start, clip_s).write(str(mid))
                meta[cid] = (p, start)
                jobs.append((cid, str(mid), str(args.out / "audio" / f"{cid}.flac"), sample_rate,
                             int(round(clip_s * sample_rate)), seed))
        task = progress.add_task("rendering RhythGen clips", total=len(jobs))
        out_rows, skipped = [], {}
        with ProcessPoolExecutor(args.jobs) as ex:
            for cid, font, why in ex.map(_render, jobs, chunksize=4):
                progress.advance(task)
                if font is None:
                    skipped[cid] = why
                    continue
                p, start = meta[cid]
                out_rows.append({"clip_id": cid, "path": f"audio/{cid}.flac", "source": "ai",
                                 "generator": p.generator, "period": p.period, "composer": p.composer,
                                 "instrumentation": p.instrumentation, "work_id": p.work_id,
                                 "renderer": font, "split": "train", "duration_s": f"{clip_s:.3f}",
                                 "score_path": f"scores/{cid}.mid", "origin": f"rhythgen:{p.rel}#t={start:.3f}"})
    with open(args.out / "manifest.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, FIELDS)
        w.writeheader()
        w.writerows(sorted(out_rows, key=lambda r: r["clip_id"]))
    (args.out / "build_report.json").write_text(json.dumps({
        "reference": str(args.reference), "excluded": [str(e) for e in args.exclude],
        "seed": seed, "per_config": args.per_config,
        "windows": args.windows, "pieces": len(chosen), "clips": len(out_rows),
        "parse_failures": failures, "render_failures": skipped}, indent=1, default=str) + "\n")
    print(f"{len(out_rows)} clips from {len(chosen)} pieces ({len(failures)} parse, {len(skipped)} render failures)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
