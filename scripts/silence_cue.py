"""Does a content model read silence, a soft opening, a fade or a room as AI? (session 40)

Each test clip's first window (the model's window length, from the clip's start), as rendered
and edited, goes straight to the model: no intake rule (edge silence, quiet windows) and no
verdict rule stands between the edit and the calibrated P(AI) of that one window. Per edit it
prints, for the human and the AI clips apart, the median change of P(AI) against the window as
rendered and the share of windows it raises (and lowers) by more than 0.1.

    python scripts/silence_cue.py REF_CORPUS [--model default] [--model RUN/model] \\
        [--split test] [--clips 120] [-o cue.json]

The edits (the window is ``W`` seconds long):

* ``silence_start``: its first second digital silence; ``silence_inside``: one second of
  digital silence inserted at 40 % of the window (the music after it pushed out at the end);
* ``fade_in`` / ``fade_out``: the amplitude rising as ``(t / 3 s)**2`` over its first 3 s,
  or falling so over its last 3 s;
* ``start_-NdB``: its first second scaled down by N dB (10-60), the grading of the cue;
* controls, which change the first second as much without making it quiet: ``splice`` (the
  clip's second after the window put in its place; clips shorter than ``W + 1`` s are
  skipped), ``shift`` (the window read 0.5 s later) and ``noise_start`` (white noise 40 dB
  below the window's peak in its place). A cue is an edit that moves P(AI) far more than
  these do;
* ``room`` / ``hall`` / ``clipped`` (session 42): the robustness suite's ``reverb_room``
  (RT60 0.8 s, 20 % of the power), ``reverb_hall`` (2 s, 30 %) and ``clip_6db`` on the
  window, the room's response drawn with seed 0.

Corpus: a reference corpus (``manifest.csv`` with ``path``, ``source``, ``split``), the
first ``--clips`` human and AI clips of the split in manifest order.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Callable

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

THRESHOLD = 0.1      # "raised by more than": the share of windows an edit moves this far
LEVELS_DB = (10, 20, 30, 40, 50, 60)


def _fade(n: int) -> np.ndarray:
    t = (np.arange(n, dtype=np.float64) + 0.5) / n
    return t ** 2


def edits(y: np.ndarray, sr: int, window_s: float) -> dict[str, np.ndarray]:
    """The named windows of one clip ``y`` (mono float32, at least ``window_s + 0.5`` s):
    as rendered first. The splice control is left out when ``y`` is shorter than a window
    and one second."""
    w, s = int(round(window_s * sr)), sr
    if y.size < w + s // 2:
        raise ValueError(f"need {window_s + 0.5} s of audio, got {y.size / sr:.2f} s")
    x = np.asarray(y[:w], np.float32)
    f = min(3 * sr, w)
    at = int(round(0.4 * w))
    out = {
        "as_rendered": x,
        "silence_start": np.concatenate([np.zeros(s, np.float32), x[s:]]),
        "silence_inside": np.concatenate([x[:at], np.zeros(s, np.float32), x[at:w - s]]),
        "fade_in": np.concatenate([x[:f] * _fade(f), x[f:]]).astype(np.float32),
        "fade_out": np.concatenate([x[:w - f], x[w - f:] * _fade(f)[::-1]]).astype(np.float32),
    }
    for db in LEVELS_DB:
        out[f"start_-{db}dB"] = np.concatenate([x[:s] * np.float32(10 ** (-db / 20)), x[s:]])
    if y.size >= w + s:
        out["splice"] = np.concatenate([y[w:w + s], x[s:]]).astype(np.float32)
    out["shift"] = np.asarray(y[s // 2:s // 2 + w], np.float32)
    noise = np.random.default_rng(0).standard_normal(s) * float(np.abs(x).max()) * 0.01
    out["noise_start"] = np.concatenate([noise.astype(np.float32), x[s:]])
    from musicbrain_cli.evaluate.robustness import TRANSFORMS

    for name, key in (("room", "reverb_room"), ("hall", "reverb_hall"), ("clipped", "clip_6db")):
        out[name] = TRANSFORMS[key](x, sr, rng=np.random.default_rng(0))
    return out


def summarise(p: dict[str, list[float]]) -> dict[str, dict]:
    """Per edit: clips, median change, shares raised / lowered by more than :data:`THRESHOLD`,
    against the same clips' windows as rendered."""
    base = np.asarray(p["as_rendered"], np.float64)
    out = {}
    for name, values in p.items():
        v = np.asarray(values, np.float64)
        if v.size != base.size:          # the splice skips clips too short for it
            continue
        d = v - base
        out[name] = {"clips": int(v.size), "mean_p_ai": float(v.mean()) if v.size else None,
                     "median_change": float(np.median(d)) if v.size else None,
                     "raised": float(np.mean(d > THRESHOLD)) if v.size else None,
                     "lowered": float(np.mean(d < -THRESHOLD)) if v.size else None}
    return out


def measure(detector, clips: list[np.ndarray], sr: int) -> dict[str, dict]:
    """:func:`summarise` of one model over ``clips`` (each long enough for every edit but
    the splice; clips too short for the splice are left out of every edit)."""
    window_s = float(detector.config.front_end.window_s)
    col = detector.taxonomy.index("source/ai")
    need = int(round((window_s + 1) * sr))
    p: dict[str, list[float]] = {}
    for y in clips:
        if y.size < need:
            continue
        e = edits(y, sr, window_s)
        probs = detector.predict_windows(np.stack(list(e.values())))[:, col]
        for name, q in zip(e, probs):
            p.setdefault(name, []).append(float(q))
    return summarise(p) if p else {}


def load_clips(corpus: Path, split: str, source: str, n: int, sr: int,
               load: Callable[[Path, int], np.ndarray]) -> list[np.ndarray]:
    with (corpus / "manifest.csv").open(newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == split and r["source"] == source]
    return [np.asarray(load(corpus / r["path"], sr), np.float32) for r in rows[:n]]


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("corpus", type=Path)
    ap.add_argument("--model", action="append", help="model directory or 'default' (repeatable)")
    ap.add_argument("--split", default="test")
    ap.add_argument("--clips", type=int, default=120, help="human and AI clips each")
    ap.add_argument("-o", "--out", type=Path)
    args = ap.parse_args(argv)

    from musicbrain_cli.audio.intake import load_audio
    from musicbrain_cli.model.inference import Detector

    def load(path: Path, sr: int) -> np.ndarray:
        return load_audio(path, sample_rate=sr)

    result: dict = {"corpus": str(args.corpus), "split": args.split, "clips": args.clips,
                    "threshold": THRESHOLD, "models": {}}
    cache: dict[tuple[str, int], list[np.ndarray]] = {}
    for name in args.model or ["default"]:
        det = Detector.from_pretrained(name, device="cpu")
        sr = int(det.config.front_end.sample_rate)
        result["models"][name] = {"weights_sha256": det.card.get("weights_sha256")}
        for source in ("human", "ai"):
            if (source, sr) not in cache:
                cache[source, sr] = load_clips(args.corpus, args.split, source, args.clips, sr, load)
            table = measure(det, cache[source, sr], sr)
            result["models"][name][source] = table
            for edit, row in table.items():
                print(f"{name}  {source:5s} {edit:15s} n={row['clips']:4d}  median change "
                      f"{row['median_change']:+.4f}  raised > {THRESHOLD} {row['raised']:6.1%}  "
                      f"lowered {row['lowered']:6.1%}", flush=True)
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result


if __name__ == "__main__":
    main()
