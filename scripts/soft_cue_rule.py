"""How far below its window's mean may a second lie before the window cannot carry an `ai`
finding? (session 41, ``verdict.SOFT_CUE_DB``)

Every clip of a reference corpus's split, as rendered and after each edit of the robustness
suite named (``musicbrain_cli.evaluate.robustness.TRANSFORMS``), goes through the scan's model
stage and verdict (``Detector.predict_track``, ``verdict.track_verdict``). For each candidate
level the verdicts are taken again as the rule would take them at that level
(``verdict.silence_carries``, the one place of the rule) and counted: human clips called `ai`
and AI clips called `ai`, per edit. The level is chosen by a rule fixed beforehand: the
candidate furthest below the mean (the one that sets aside the fewest windows) at which no
human clip is called `ai`, as rendered or after any edit; ``None`` when none gets there.

    python scripts/soft_cue_rule.py REF_CORPUS [--model default] [--split val] \\
        [--transforms original,fade_in_3s,fade_in_1s,fade_in_linear_3s,soft_start_30db,fade_out_6s] \\
        [-o soft-val.json]

Choose on ``val``; run on ``test`` to measure what the chosen level does there.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

#: Candidate levels (dB against the window's mean power).
LEVELS_DB = (-6.0, -8.0, -10.0, -12.0, -15.0, -20.0, -25.0)
DEFAULT_TRANSFORMS = ("original", "fade_in_3s", "fade_in_1s", "fade_in_linear_3s",
                      "soft_start_30db", "fade_out_6s")


def measure(corpus: Path, model: str, split: str, transforms: list[str]) -> list[dict]:
    """One record per (clip, edit): the windows' P(AI), weights, silences and softest
    seconds, the track's domain and its verdict without the soft-stretch rule."""
    import dataclasses

    from musicbrain_cli.audio.intake import load_audio
    from musicbrain_cli.evaluate.robustness import TRANSFORMS
    from musicbrain_cli.model.inference import Detector
    from musicbrain_cli.taxonomy import DETECTION_LABEL
    from musicbrain_cli.verdict import track_verdict

    det = Detector.from_pretrained(model, device="cpu")
    sr = det.config.front_end.sample_rate
    with (corpus / "manifest.csv").open(newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f)
                if r.get("split") == split and r.get("source") in ("human", "ai")]
    out = []
    for row in rows:
        y = load_audio(corpus / row["path"], sample_rate=sr)
        for key in transforms:
            z = TRANSFORMS[key](y, sr, rng=np.random.default_rng(0))
            pred = det.predict_track(z)
            # the verdict as it was before the rule: the soft stretches not measured
            before, ood = track_verdict(dataclasses.replace(pred, soft_db=None), det)
            j = pred.judged
            d = list(pred.labels).index(DETECTION_LABEL)
            out.append({"clip": row["path"], "source": row["source"], "edit": key,
                        "verdict_before": before.label,
                        "in_domain": ood.get("in_domain") if ood.get("available") else None,
                        "p_ai": [float(x) for x in pred.window_probs[j, d]],
                        "weights": [float(x) for x in pred.n_valid[j]],
                        "silence_s": [float(x) for x in pred.silence_s[j]],
                        "soft_db": [float(x) for x in pred.soft_db[j]]})
    return out


def verdict_at(record: dict, level_db: float | None, policy) -> str:
    """The record's verdict with the soft-stretch rule at ``level_db`` (``None``: without)."""
    from musicbrain_cli.verdict import INCONCLUSIVE, SOFT_CUE_DB, silence_carries

    label = record["verdict_before"]
    if label != "ai" or level_db is None or not record["p_ai"]:
        return label
    # the one rule, at another level: a window is soft at level L when soft_db <= L
    shifted = np.asarray(record["soft_db"], dtype=np.float64) - level_db + SOFT_CUE_DB
    withheld = silence_carries(record["p_ai"], record["weights"], record["silence_s"],
                               policy=policy, in_domain=record["in_domain"], soft_db=shifted)
    return INCONCLUSIVE if withheld else label


def summarise(records: list[dict], policy, levels=LEVELS_DB) -> dict:
    """Per level (and ``"none"``): clips called `ai`, by source and edit, and the windows the
    rule sets aside as rendered; and the level the fixed rule chooses."""
    edits = list(dict.fromkeys(r["edit"] for r in records))
    # the softest seconds of the windows as rendered (the first edit), per source
    rendered = {src: np.asarray([x for r in records if r["source"] == src and r["edit"] == edits[0]
                                 for x in r["soft_db"]], dtype=np.float64) for src in ("human", "ai")}
    table = {}
    for level in (None, *levels):
        counts = {src: {e: {"ai": 0, "clips": 0} for e in edits} for src in ("human", "ai")}
        for r in records:
            c = counts[r["source"]][r["edit"]]
            c["clips"] += 1
            c["ai"] += verdict_at(r, level, policy) == "ai"
        table["none" if level is None else f"{level:g}"] = {
            "called_ai": counts,
            "windows_set_aside": {src: float(np.mean(v <= level)) if level is not None and v.size
                                  else 0.0 for src, v in rendered.items()}}
    chosen = next((level for level in sorted(levels)
                   if all(c["ai"] == 0 for c in table[f"{level:g}"]["called_ai"]["human"].values())),
                  None)
    return {"edits": edits, "levels": table, "chosen_db": chosen}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("corpus", type=Path)
    ap.add_argument("--model", default="default")
    ap.add_argument("--split", default="val")
    ap.add_argument("--transforms", default=",".join(DEFAULT_TRANSFORMS))
    ap.add_argument("-o", "--out", type=Path)
    args = ap.parse_args(argv)
    from musicbrain_cli.evaluate.robustness import TRANSFORMS
    from musicbrain_cli.model.inference import Detector
    from musicbrain_cli.verdict import VerdictPolicy

    keys = [k for k in args.transforms.split(",") if k]
    unknown = [k for k in keys if k not in TRANSFORMS]
    if unknown:
        ap.error(f"unknown transforms {unknown}; known: {sorted(TRANSFORMS)}")
    records = measure(args.corpus, args.model, args.split, keys)
    policy = VerdictPolicy.from_card(Detector.from_pretrained(args.model, device="cpu").card)
    result = {"corpus": str(args.corpus), "model": args.model, "split": args.split,
              **summarise(records, policy)}
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    head = "level".ljust(8) + "".join(f"{e[:16]:>18}" for e in result["edits"])
    for src in ("human", "ai"):
        print(f"{src} clips called ai ({args.split})")
        print(head)
        for level, row in result["levels"].items():
            cells = row["called_ai"][src]
            print(level.ljust(8) + "".join(f"{cells[e]['ai']}/{cells[e]['clips']}".rjust(18)
                                           for e in result["edits"]))
    print(f"chosen: {result['chosen_db']} dB")
    return result


if __name__ == "__main__":
    main()
