"""A model's verdicts on another data set's splits, at the model's own operating point.

    python scripts/verdicts_on_dataset.py --model default --data runs/enlarged/ref-medium \
        --splits test,test_xsf -o shipped-on-medium.json

`finalize` measures a model on the data set it was trained on and chooses its operating point
there. To compare a fine-tuned model with the model it started from on the *same* clips, the
starting model must be measured on the new corpus without re-choosing anything: its card's
verdict policy (threshold, band, disagreement rule) and its out-of-domain statistics and
thresholds, applied to the cached windows of each split (labels matched by name; the data set
may carry more labels than the model). Prints, per split, the verdict counts for human and AI
clips, the ROC-AUC, per built-in generator the share called AI, and RhythGen's held-out
configurations pooled; writes everything as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--data", required=True)
    ap.add_argument("--splits", default="test,test_xsf")
    ap.add_argument("-o", "--out", required=True)
    args = ap.parse_args(argv)

    from musicbrain_cli.metrics import roc_auc
    from musicbrain_cli.model.inference import Detector
    from musicbrain_cli.progress import NULL_PROGRESS
    from musicbrain_cli.taxonomy import DETECTION_LABEL
    from musicbrain_cli.training.finalize import (_clips, _generator_columns, _run, in_domain,
                                                  model_windows, ood_scores, verdict_rates)
    from musicbrain_cli.verdict import VerdictPolicy

    det = Detector.from_pretrained(args.model, device="cpu")
    card = det.card
    cache, by_split = model_windows(args.data, det.config, "verdicts_on_dataset",
                                    labels="by_name")
    policy = VerdictPolicy.from_card(card)
    col = det.config.taxonomy.index(DETECTION_LABEL)
    checks = card["ood"]["checks"]
    thresholds = {n: float(checks[n]["threshold"]) for n in ("embedding", "spectral_profile")}
    out = {"model": card.get("weights_sha256"), "data": args.data, "policy": policy.to_dict()}
    for split in args.splits.split(","):
        idx = np.asarray(by_split[split])
        probs, emb, prof = _run(det, cache, idx, 32, NULL_PROGRESS, split)
        c = _clips(cache, idx, probs, emb, col, prof)
        c.ood_scores = ood_scores(c, det.ood)
        c.in_domain = in_domain(c.ood_scores, thresholds)
        is_ai = c.targets[:, col] > 0.5
        r = verdict_rates(c, is_ai, policy=policy, split=split,
                          generators=_generator_columns(det.config.taxonomy))
        r["roc_auc"] = roc_auc(is_ai.astype(np.float32), c.p_ai)
        out[split] = r
        held = r.get("by_rhythgen_configuration", {}).get("held_out_pooled", {})
        gens = {g: f"{round(v['tpr'] * v['n_ai'])}/{v['n_ai']}"
                for g, v in r.get("by_generator", {}).items()}
        print(f"{split}: {r['counts']}, ROC-AUC {r['roc_auc']:.4f}, called ai per generator "
              f"{gens}, held-out RhythGen ai {held.get('tpr', float('nan')):.3f} "
              f"human {held.get('fnr', float('nan')):.3f} of {held.get('n_ai', 0)}")
    with open(args.out, "w", encoding="utf-8") as fh:
        json.dump(out, fh, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
