"""How much style information do the generated *scores* carry, against what the model hears?

    python scripts/style_ceiling.py DATASET EVAL_DIR [--split test] [--from-audio]

A diagnostic for the style-attribution target, not part of the tool. For the clips of the
two symbolic generators (whose MIDI the data set keeps), it fits a random forest on simple
symbolic features of the score (key-normalised pitch-class and interval histograms, pitch
range and spread, note density, durations, voice count) on the train split, and prints its
average precision per generator, period and composer label on ``--split`` next to the
model's AP on the same clips, read from ``EVAL_DIR/predictions.csv`` (written by
``musicbrain evaluate --split SPLIT``). If the forest does much better than the model, the
label is recoverable from the music itself and the audio model is what falls short.

With ``--from-audio`` the same features are computed from notes transcribed from each clip's
rendered audio by :func:`musicbrain_cli.alignment.pitch.estimate_notes` instead of from its MIDI: what a
simple symbolic route can recover from the sound alone (the voice count is then unknown and
set to 1).
"""

from __future__ import annotations

import argparse
import csv
import warnings
from pathlib import Path

import numpy as np

GROUPS = ("generator", "period", "composer")
SYMBOLIC = ("symbolic-small", "symbolic-large")


def note_features(pitch: np.ndarray, start: np.ndarray, dur: np.ndarray, voices: int) -> np.ndarray:
    """34 features of a set of notes (MIDI pitch, start and duration in seconds)."""
    if len(pitch) == 0:
        return np.zeros(34)
    pitch = np.round(pitch).astype(int)
    pcs = np.bincount(pitch % 12, minlength=12) / len(pitch)
    pcs = np.roll(pcs, -int(np.argmax(pcs)))                 # transposition-invariant
    steps = np.abs(np.diff(pitch[np.argsort(start, kind="stable")]))
    ivs = np.bincount(np.clip(steps, 0, 11), minlength=12) / max(1, len(steps))
    span = max(float(start.max() - start.min()), 1.0)
    other = [len(pitch) / span, pitch.mean(), pitch.std(), np.ptp(pitch), dur.mean(), dur.std(),
             np.median(dur), voices, len(np.unique(np.round(start, 2))) / span,
             len(np.unique(np.round(dur, 3)))]
    return np.concatenate([pcs, ivs, other])


def score_features(path: Path) -> np.ndarray:
    import pretty_midi

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        midi = pretty_midi.PrettyMIDI(str(path))
    notes = [n for inst in midi.instruments for n in inst.notes]
    return note_features(np.array([n.pitch for n in notes]), np.array([n.start for n in notes]),
                         np.array([n.end - n.start for n in notes]), len(midi.instruments))


def audio_features(path: Path) -> np.ndarray:
    from musicbrain_cli.audio.intake import load_audio
    from musicbrain_cli.alignment.pitch import estimate_notes

    sr = 22050
    notes = estimate_notes(load_audio(path, sample_rate=sr), sr)
    return note_features(np.array([n.pitch for n in notes]), np.array([n.start for n in notes]),
                         np.array([n.end - n.start for n in notes]), 1)


def main() -> None:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.metrics import average_precision_score

    from musicbrain_cli.data.dataset import Dataset

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[1])
    ap.add_argument("dataset")
    ap.add_argument("eval_dir")
    ap.add_argument("--split", default="test")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--from-audio", action="store_true",
                    help="features from notes transcribed from the rendered audio, not the MIDI")
    args = ap.parse_args()

    ds = Dataset.load(args.dataset)
    with (Path(args.eval_dir) / "predictions.csv").open(newline="", encoding="utf-8") as f:
        predicted = {r["clip_id"]: r for r in csv.DictReader(f)}
    rows = [r for r in ds.rows if r["generator"] in SYMBOLIC and ds.score_path(r) is not None
            and r["split"] in ("train", args.split)]
    test = [r for r in rows if r["split"] == args.split and r["clip_id"] in predicted]
    train = [r for r in rows if r["split"] == "train"]
    if not train or not test:
        raise SystemExit(f"need symbolic-generator clips in train and in {args.split} "
                         f"(found {len(train)} and {len(test)} with predictions)")
    if args.from_audio:
        def features(r):
            return audio_features(ds.audio_path(r))
        source = "transcribed notes"
    else:
        def features(r):
            return score_features(ds.score_path(r))
        source = "score features"
    x_train = np.stack([features(r) for r in train])
    x_test = np.stack([features(r) for r in test])

    print(f"{len(train)} train and {len(test)} {args.split} clips of the symbolic generators\n")
    print(f"| label | positives | AP, {source} | AP, model (audio) |")
    print("|---|---|---|---|")
    for group in GROUPS:
        y_train = np.array([r[group] for r in train])
        y_test = np.array([r[group] for r in test])
        forest = RandomForestClassifier(500, random_state=args.seed, n_jobs=-1)
        forest.fit(x_train, y_train)
        proba = forest.predict_proba(x_test)
        sym, mod = [], []
        for k, value in enumerate(forest.classes_):
            column = f"{group}/{value}"
            truth = y_test == value
            if not value or not truth.any() or truth.all() or column not in predicted[test[0]["clip_id"]]:
                continue
            a_sym = average_precision_score(truth, proba[:, k])
            a_mod = average_precision_score(truth, [float(predicted[r["clip_id"]][column]) for r in test])
            sym.append(a_sym)
            mod.append(a_mod)
            print(f"| {column} | {int(truth.sum())} | {a_sym:.3f} | {a_mod:.3f} |")
        if sym:
            print(f"| **{group} mean** | | **{np.mean(sym):.3f}** | **{np.mean(mod):.3f}** |")


if __name__ == "__main__":
    main()
