"""Note F-measure of the note estimators on the reference corpus's rendered clips (issue #26
item 2), where the notes played are known.

Usage::

    python benchmarks/notes.py --root runs/enlarged/ref-medium --clips 40
    python benchmarks/notes.py --root ... --clips 40 --basic-pitch-python /tmp/bp/bin/python
    python benchmarks/notes.py --root ... --clips 40 --part alignment [--basic-pitch-python ...]

The truth is the notes *as rendered*: a clip's stored score (``scores/<clip>.mid``) is the
MIDI before humanisation, and the build (``data/reference/build.py``) renders it after a
seeded tempo stretch (up to +/- 4 %) and per-note timing jitter. The same draws are replayed
by :func:`musicbrain_cli.data.reference.build.played_midi` (the build and the replay share
``_render_draws``); the replayed font must equal the manifest's ``renderer``, a check that
the replay follows the build. Neural-codec clips are resyntheses of a human clip and share
its notes. Drums are left out (no pitch), and notes
are cut at the clip's end. The stored score itself is scored as an "estimate" too
(``score-unhumanised``), which shows what an alignment against the stored score gets wrong.

Metrics follow ``mir_eval.transcription`` (Raffel et al. 2014; the MIREX note-tracking
task): a reference and an estimated note match when their onsets are within 50 ms and
their pitches within 50 cents (onset-only F), and for onset+offset F also their offsets
within max(20 % of the reference note's duration, 50 ms); matching is a maximum bipartite
matching (here :func:`scipy.optimize.linear_sum_assignment` on the 0/1 compatibility
matrix, which finds a maximum-cardinality matching as mir_eval's Hopcroft-Karp does).
``chroma`` is onset-only F with pitches folded to one octave: the gap between it and
onset F is the share lost to octave errors. Figures are means over clips (mir_eval's
convention) with a 95 % bootstrap interval over clips.

``--part alignment`` (issue #26 item 4) asks whether the note estimate or the map limits the
harmonic and onset alignment: on the first 10 s window of each clip (what ``musicbrain
evaluate`` explains) it computes the shipped model's FM-G-CAM maps at the default
refinement (the top-3 fused map and the verdict's own map) and measures
:func:`~musicbrain_cli.alignment.harmonic_overlap` and
:func:`~musicbrain_cli.alignment.onset_overlap` of the same maps against each note source:
the notes as rendered (truth), the stored score (what ``evaluate`` uses), the built-in
estimate, basic-pitch, and for onsets also librosa's onset detector (what ``scan`` uses).
Lifts pool counts over clips (as ``evaluate`` does), with a 95 % bootstrap interval over clips.

basic-pitch (Bittner et al., ICASSP 2022) is not a dependency: with
``--basic-pitch-python`` it runs in that interpreter (a throwaway venv) as a subprocess that
writes its note lists as JSON; its default thresholds are used.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ONSET_TOLERANCE = 0.05
PITCH_TOLERANCE_CENTS = 50.0
OFFSET_RATIO = 0.2
OFFSET_MIN_TOLERANCE = 0.05
SPLIT = "test"


# --- truth -----------------------------------------------------------------------------------


def select_rows(root: Path, split: str, n: int) -> list[dict[str, str]]:
    """``n`` rows of ``split`` that have a score, evenly spaced over the sorted clip ids (so
    every kind of clip is drawn, not the alphabetical head)."""
    with open(root / "manifest.csv", newline="", encoding="utf-8") as fh:
        rows = sorted((r for r in csv.DictReader(fh) if r["split"] == split and r["score_path"]),
                      key=lambda r: r["clip_id"])
    if not rows:
        raise SystemExit(f"no scored clips in split {split!r} of {root}")
    idx = np.unique(np.round(np.linspace(0, len(rows) - 1, min(n, len(rows)))).astype(int))
    return [rows[i] for i in idx]


def rendered_midi(root: Path, row: dict[str, str], *, reference: dict):
    """``(stored score, notes as played)``: the played notes come from the library's replay
    of the build's draws (:func:`musicbrain_cli.data.reference.build.played_midi`, the same
    function ``musicbrain evaluate`` uses)."""
    import pretty_midi

    from musicbrain_cli.data.reference.build import played_midi
    from musicbrain_cli.errors import DatasetError

    try:
        played = played_midi(root, row, reference=reference)
    except DatasetError as exc:
        raise SystemExit(str(exc)) from exc
    return pretty_midi.PrettyMIDI(str(root / row["score_path"])), played


def pitched_notes(midi, duration: float) -> np.ndarray:
    """``[[start, end, midi pitch], ...]`` of the pitched notes starting before ``duration``."""
    out = [(n.start, min(n.end, duration), n.pitch) for inst in midi.instruments if not inst.is_drum
           for n in inst.notes if n.start < duration]
    return np.asarray(sorted(out), dtype=np.float64).reshape(-1, 3)


# --- matching (mir_eval.transcription's definitions) -----------------------------------------


def matched(ref: np.ndarray, est: np.ndarray, *, offsets: bool = False, chroma: bool = False) -> int:
    """Size of a maximum matching of ``ref`` and ``est`` notes (``[n, 3]`` start, end, pitch)."""
    from scipy.optimize import linear_sum_assignment

    if len(ref) == 0 or len(est) == 0:
        return 0
    # mir_eval rounds the onset distance to avoid float ties at exactly the tolerance
    ok = np.round(np.abs(ref[:, None, 0] - est[None, :, 0]), 4) <= ONSET_TOLERANCE
    cents = 100.0 * np.abs(ref[:, None, 2] - est[None, :, 2])
    if chroma:
        cents = np.minimum(cents % 1200.0, 1200.0 - cents % 1200.0)
    ok &= cents <= PITCH_TOLERANCE_CENTS
    if offsets:
        tol = np.maximum(OFFSET_RATIO * (ref[:, 1] - ref[:, 0]), OFFSET_MIN_TOLERANCE)
        ok &= np.round(np.abs(ref[:, None, 1] - est[None, :, 1]), 4) <= tol[:, None]
    rows, cols = linear_sum_assignment(ok, maximize=True)
    return int(ok[rows, cols].sum())


def prf(ref: np.ndarray, est: np.ndarray, **kw) -> dict[str, float]:
    m = matched(ref, est, **kw)
    p = m / len(est) if len(est) else 0.0
    r = m / len(ref) if len(ref) else 0.0
    return {"precision": p, "recall": r, "f": 2 * p * r / (p + r) if p + r else 0.0}


def scores(ref: np.ndarray, est: np.ndarray) -> dict[str, dict[str, float]]:
    return {"onset": prf(ref, est), "onset_offset": prf(ref, est, offsets=True),
            "chroma_onset": prf(ref, est, chroma=True)}


def mean_ci(values, *, n_boot: int = 2000, seed: int = 0) -> dict[str, float]:
    v = np.asarray(values, dtype=np.float64)
    rng = np.random.default_rng(seed)
    boots = v[rng.integers(0, len(v), (n_boot, len(v)))].mean(axis=1)
    return {"mean": float(v.mean()), "ci95": [float(np.quantile(boots, 0.025)),
                                              float(np.quantile(boots, 0.975))]}


# --- estimators ------------------------------------------------------------------------------


def builtin(paths: list[Path], sample_rate: int) -> tuple[list[np.ndarray], float]:
    from musicbrain_cli.audio.intake import load_audio
    from musicbrain_cli.alignment.pitch import estimate_notes

    out, seconds = [], 0.0
    for path in paths:
        y = load_audio(path, sample_rate=sample_rate)
        t = time.perf_counter()
        notes = estimate_notes(y, sample_rate)
        seconds += time.perf_counter() - t
        out.append(np.asarray([(n.start, n.end, n.pitch) for n in notes], np.float64).reshape(-1, 3))
    return out, seconds


#: Runs in the basic-pitch interpreter: paths on stdin (JSON), note lists on stdout (JSON).
BASIC_PITCH_SCRIPT = """
import json, sys, time
from basic_pitch import ICASSP_2022_MODEL_PATH
from basic_pitch.inference import Model, predict
model = Model(ICASSP_2022_MODEL_PATH)
notes, seconds = [], 0.0
for path in json.load(sys.stdin):
    t = time.perf_counter()
    _, _, events = predict(path, model)
    seconds += time.perf_counter() - t
    notes.append([[float(s), float(e), int(p)] for s, e, p, *_ in events])
json.dump({"notes": notes, "seconds": seconds, "model": str(ICASSP_2022_MODEL_PATH)}, sys.stdout)
"""


def basic_pitch(paths: list[Path], python: str) -> tuple[list[np.ndarray], float, str]:
    proc = subprocess.run([python, "-c", BASIC_PITCH_SCRIPT], input=json.dumps([str(p) for p in paths]),
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"basic-pitch run failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    # basic-pitch prints progress lines on stdout before the JSON
    got = json.loads(proc.stdout[proc.stdout.index('{"notes"'):])
    return ([np.asarray(n, np.float64).reshape(-1, 3) for n in got["notes"]], got["seconds"],
            got["model"])


# --- driver ----------------------------------------------------------------------------------


def kind(row: dict[str, str]) -> str:
    """The clip's family for the breakdown: codec resyntheses apart, else its origin."""
    if row["generator"] == "neural-codec":
        return "neural-codec"
    return row["origin"].split(":", 1)[0].split("#", 1)[0]


def run(root: Path, n_clips: int, *, split: str, bp_python: str | None) -> dict:
    meta = json.loads((root / "reference.json").read_text(encoding="utf-8"))
    rows = select_rows(root, split, n_clips)
    truth, stored = [], []
    for row in rows:
        duration = float(row["duration_s"])
        score, rendered = rendered_midi(root, row, reference=meta)
        truth.append(pitched_notes(rendered, duration))
        stored.append(pitched_notes(score, duration))
    paths = [root / r["path"] for r in rows]
    estimates = {"score-unhumanised": (stored, 0.0)}
    estimates["builtin"] = builtin(paths, int(meta["sample_rate"]))
    extra = {}
    if bp_python:
        notes, seconds, model = basic_pitch(paths, bp_python)
        estimates["basic-pitch"] = (notes, seconds)
        extra["basic_pitch_model"] = model
    audio_s = sum(float(r["duration_s"]) for r in rows)
    out = {}
    for name, (notes, seconds) in estimates.items():
        per = [scores(t, e) for t, e in zip(truth, notes)]
        summary = {m: {k: mean_ci([p[m][k] for p in per]) for k in ("precision", "recall", "f")}
                   for m in per[0]}
        by_kind = {}
        for k in sorted({kind(r) for r in rows}):
            sel = [p for p, r in zip(per, rows) if kind(r) == k]
            by_kind[k] = {"clips": len(sel), "onset_f": float(np.mean([p["onset"]["f"] for p in sel])),
                          "onset_offset_f": float(np.mean([p["onset_offset"]["f"] for p in sel])),
                          "chroma_onset_f": float(np.mean([p["chroma_onset"]["f"] for p in sel]))}
        out[name] = {"summary": summary, "by_kind": by_kind,
                     "notes_estimated": int(sum(len(e) for e in notes)),
                     "seconds": seconds, "seconds_per_audio_second": seconds / audio_s,
                     "per_clip": [{"clip_id": r["clip_id"], "onset_f": p["onset"]["f"],
                                   "onset_offset_f": p["onset_offset"]["f"],
                                   "chroma_onset_f": p["chroma_onset"]["f"], "notes_est": len(e)}
                                  for r, p, e in zip(rows, per, notes)]}
    # Paired: per-clip onset F of each estimator minus the built-in's, on the same clips.
    base = np.asarray([c["onset_f"] for c in out["builtin"]["per_clip"]])
    for name, res in out.items():
        if name != "builtin":
            diff = np.asarray([c["onset_f"] for c in res["per_clip"]]) - base
            res["onset_f_minus_builtin"] = mean_ci(diff)
    return {"root": str(root), "split": split, "clips": len(rows), "audio_s": audio_s,
            "notes_true": int(sum(len(t) for t in truth)),
            "tolerances": {"onset_s": ONSET_TOLERANCE, "pitch_cents": PITCH_TOLERANCE_CENTS,
                           "offset_ratio": OFFSET_RATIO, "offset_min_s": OFFSET_MIN_TOLERANCE},
            "estimators": out, **extra}


# --- alignment of the maps against each note source (item 4) --------------------------------


def _pooled_ci(parts: list, combine, value, *, n_boot: int = 1000, seed: int = 0) -> dict:
    """``value(combine(parts))`` and a 95 % bootstrap interval resampling clips."""
    rng = np.random.default_rng(seed)
    boots = [value(combine(parts[i] for i in rng.integers(0, len(parts), len(parts))))
             for _ in range(n_boot)]
    return {"value": float(value(combine(parts))),
            "ci95": [float(np.nanquantile(boots, 0.025)), float(np.nanquantile(boots, 0.975))]}


#: Onsets closer than this are one event (above the 15 ms jitter sd of the build, well
#: under the 50 ms tolerance).
MERGE_ONSETS_S = 0.03


def merge_onsets(onsets: np.ndarray, gap: float = MERGE_ONSETS_S) -> np.ndarray:
    """Sorted onsets with each run of onsets less than ``gap`` apart reduced to its first."""
    kept: list[float] = []
    for t in np.sort(np.asarray(onsets, dtype=np.float64)):
        if not kept or t - kept[-1] >= gap:
            kept.append(float(t))
    return np.asarray(kept)


def run_alignment(root: Path, n_clips: int, *, split: str, bp_python: str | None,
                  model_name: str) -> dict:
    import torch

    from musicbrain_cli.alignment.overlap import (HarmonicOverlap, OnsetOverlap, Note, detect_onsets,
                                          harmonic_overlap, note_onsets, onset_overlap)
    from musicbrain_cli.audio.intake import load_audio
    from musicbrain_cli.explain import DEFAULT_REFINE, FMGradCAM, LabelTarget
    from musicbrain_cli.features import bin_frequencies, frame_times
    from musicbrain_cli.model.inference import Detector
    from musicbrain_cli.alignment.pitch import estimate_notes

    meta = json.loads((root / "reference.json").read_text(encoding="utf-8"))
    rows = select_rows(root, split, n_clips)
    detector = Detector.from_pretrained(model_name, device="cpu")
    fe = detector.config.front_end
    times, freqs = frame_times(fe), bin_frequencies(fe)
    window_s = fe.n_samples / fe.sample_rate
    source = [i for i, name in enumerate(detector.labels) if name.startswith("source/")]
    bp = basic_pitch([root / r["path"] for r in rows], bp_python)[0] if bp_python else None

    def as_notes(arr: np.ndarray) -> list:
        return [Note(float(s), float(min(e, window_s)), float(p)) for s, e, p in arr if s < window_s]

    sources = ["truth", "stored-score", "builtin"] + (["basic-pitch"] if bp else [])
    acc = {g: {src: {"harmonic": [], "onset": []}
               for src in [*sources, "truth-chords-merged", "librosa-onsets"]}
           for g in ("fused", "verdict")}
    start = time.perf_counter()
    for i, row in enumerate(rows):
        score, rendered = rendered_midi(root, row, reference=meta)
        y = load_audio(root / row["path"], sample_rate=fe.sample_rate)
        wave = np.zeros(fe.n_samples, np.float32)
        wave[: min(fe.n_samples, y.size)] = y[: fe.n_samples]
        notes = {"truth": as_notes(pitched_notes(rendered, window_s)),
                 "stored-score": as_notes(pitched_notes(score, window_s)),
                 "builtin": estimate_notes(wave, fe.sample_rate)}
        if bp:
            notes["basic-pitch"] = as_notes(bp[i])
        spec = detector.spectrograms(wave[None])
        with FMGradCAM(detector.model, k=3, refine=DEFAULT_REFINE) as cam:
            res = cam(spec, times=times, freqs=freqs)
        verdict = max(source, key=lambda j: float(res.logits[0, j]))
        with FMGradCAM(detector.model, k=1, refine=DEFAULT_REFINE) as cam:
            alone = cam(spec, targets=[LabelTarget(verdict)])
        detected = detect_onsets(wave, fe.sample_rate)
        for group, m in (("fused", res.fused()[0]), ("verdict", alone.fused()[0])):
            for src, ns in notes.items():
                acc[group][src]["harmonic"].append(harmonic_overlap(m, freqs=freqs, times=times, notes=ns))
                acc[group][src]["onset"].append(onset_overlap(m, times=times, onsets=note_onsets(ns)))
            acc[group]["librosa-onsets"]["onset"].append(onset_overlap(m, times=times, onsets=detected))
            # note_onsets merges only identical starts; humanised chord notes start a few ms
            # apart and would each count as an onset, weighting chords more than the score does
            acc[group]["truth-chords-merged"]["onset"].append(
                onset_overlap(m, times=times, onsets=merge_onsets(note_onsets(notes["truth"]))))
    out = {}
    for group, by_src in acc.items():
        out[group] = {}
        for src, a in by_src.items():
            entry = {}
            if a["harmonic"]:
                h = HarmonicOverlap.combine(a["harmonic"])
                entry["harmonic"] = {"share": h.share, "chance": h.chance,
                                     "lift": _pooled_ci(a["harmonic"], HarmonicOverlap.combine,
                                                        lambda x: x.lift)}
            o = OnsetOverlap.combine(a["onset"])
            entry["onset"] = {"onsets": o.onsets, "hit_rate": o.hit_rate,
                              "chance_hit_rate": o.chance_hit_rate,
                              "hit_lift": _pooled_ci(a["onset"], OnsetOverlap.combine,
                                                     lambda x: x.hit_rate / x.chance_hit_rate),
                              "concentration": o.concentration}
            out[group][src] = entry
    torch_threads = torch.get_num_threads()
    return {"root": str(root), "split": split, "clips": len(rows), "model": model_name,
            "window_s": window_s, "refine": DEFAULT_REFINE, "torch_threads": torch_threads,
            "seconds": time.perf_counter() - start, "maps": out}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, required=True, help="a reference corpus folder")
    ap.add_argument("--split", default=SPLIT)
    ap.add_argument("--clips", type=int, default=40)
    ap.add_argument("--part", choices=("notes", "alignment"), default="notes")
    ap.add_argument("--model", default="default", help="--part alignment: the model explained")
    ap.add_argument("--basic-pitch-python", default=None,
                    help="an interpreter with basic-pitch installed (not a dependency)")
    args = ap.parse_args(argv)
    if args.part == "alignment":
        report = run_alignment(args.root, args.clips, split=args.split,
                               bp_python=args.basic_pitch_python, model_name=args.model)
    else:
        report = run(args.root, args.clips, split=args.split, bp_python=args.basic_pitch_python)
    report["machine"] = {"python": platform.python_version(), "cpu": platform.processor() or platform.machine()}
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
