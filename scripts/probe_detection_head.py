"""Would a detection head re-fitted on the frozen shipped backbone catch RhythGen? (issue 21)

    python scripts/probe_detection_head.py --data runs/enlarged/ref-medium \
        --heldout-musicnet runs/mn-heldout/ds -o runs/probe-head

A linear probe, not a model to ship: the shipped model's global embedding (what its ``source``
head reads) of every cached window of a data set, then an L2 logistic regression AI vs human
fitted on the training split (class-balanced, RhythGen's windows weighted x3 as in CPU trial
2), its strictest operating point taken on validation (above the highest-scoring human
validation window but one, about 0.5 % of them), and scored on

* the test splits: held-out RhythGen configurations (``--heldout-configs``) and human clips;
* optionally a MusicNet data set held out of the training data (``data musicnet`` output,
  e.g. ``scripts/heldout_musicnet.py``'s), per 10 s clip and per one-minute excerpt (mean of
  six consecutive clips' probabilities), beside the shipped head on the same clips.

Both data sets need a feature cache for the model's front end (``musicbrain data cache DS
--model-config musicbrain_cli/model/default/config.json``). Prints a table and writes
``probe.json``. Evaluation material (``../shared/eval``) is never read.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

HELD_OUT = ("HMR", "LAD", "LMM2", "RAS2")
BUILT_IN = ("neural-codec", "symbolic-small", "symbolic-large")


def embed(cache_dir: Path, det, split: str | None) -> dict:
    import torch

    from musicbrain_cli.data.cache import CachedWindows

    net = det.model.eval()
    ds = CachedWindows(cache_dir, split=split)
    z, ai_logit = [], []
    with torch.inference_mode():
        for i in range(0, len(ds), 32):
            x = torch.stack([ds[j][0] for j in range(i, min(i + 32, len(ds)))])
            fused = net.forward_features(x)
            z.append(net.pool(fused).numpy())
            ai_logit.append(net.forward_head(fused)[:, det.labels.index("source/ai")].numpy())
    return {"z": np.concatenate(z), "p_shipped": det.calibrate(np.concatenate(ai_logit)),
            "clip_ids": list(ds.clip_ids)}


def kind(row: dict) -> str:
    """human, a built-in generator, or the RhythGen configuration (from the origin path)."""
    if row["source"] == "human":
        return "human"
    origin = row.get("origin", "")
    if origin.startswith("rhythgen:"):
        return origin.split(":", 1)[1].split("/")[1]
    return row["generator"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, type=Path)
    ap.add_argument("--heldout-musicnet", type=Path)
    ap.add_argument("--model", default="default")
    ap.add_argument("--heldout-configs", nargs="+", default=list(HELD_OUT))
    ap.add_argument("--weight", type=float, default=3.0, help="RhythGen window weight")
    ap.add_argument("-o", "--out", required=True, type=Path)
    args = ap.parse_args(argv)

    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.preprocessing import StandardScaler

    from musicbrain_cli.data.cache import default_cache_dir

    from musicbrain_cli.model.inference import Detector

    det = Detector.from_pretrained(args.model, device="cpu")
    config = det.config
    rows = {r["clip_id"]: r for r in csv.DictReader(open(args.data / "manifest.csv",
                                                          encoding="utf-8"))}
    cache = default_cache_dir(args.data, config.front_end)
    parts = {s: embed(cache, det, s) for s in ("train", "val", "test", "test_xsf")}

    def xy(splits):
        z = np.concatenate([parts[s]["z"] for s in splits])
        kinds = np.array([kind(rows[c]) for s in splits for c in parts[s]["clip_ids"]])
        return z, (kinds != "human").astype(int), kinds

    x, y, kinds = xy(["train"])
    weight = np.where(np.isin(kinds, ("human",) + BUILT_IN), 1.0, args.weight)
    xv, yv, _ = xy(["val"])
    xt, yt, kt = xy(["test", "test_xsf"])
    p_shipped_t = np.concatenate([parts[s]["p_shipped"] for s in ("test", "test_xsf")])
    held = np.isin(kt, args.heldout_configs)
    scaler = StandardScaler().fit(x)
    mn = None
    if args.heldout_musicnet:
        mn = embed(default_cache_dir(args.heldout_musicnet, config.front_end), det, None)
        excerpt = np.array([c.rsplit("-", 1)[0] + ":" + str(int(c.rsplit("-", 1)[1]) // 6)
                            for c in mn["clip_ids"]])
        full = [e for e in sorted(set(excerpt)) if (excerpt == e).sum() == 6]

    def auc(neg, pos):
        return float(roc_auc_score(np.r_[np.zeros(len(neg)), np.ones(len(pos))], np.r_[neg, pos]))

    shipped_boundary = 0.6     # the shipped card's ai boundary (threshold 0.5 + band 0.1)
    results = {"shipped head": {
        "held-out RhythGen vs human test AUC": auc(p_shipped_t[yt == 0], p_shipped_t[held]),
        "held-out RhythGen called (>= boundary)": int((p_shipped_t[held] >= shipped_boundary).sum()),
        "human test above boundary": int((p_shipped_t[yt == 0] >= shipped_boundary).sum())}}
    if mn is not None:
        ex = np.array([mn["p_shipped"][excerpt == e].mean() for e in full])
        results["shipped head"].update({
            "MusicNet held-out clips above boundary": int((mn["p_shipped"] >= shipped_boundary).sum()),
            "MusicNet held-out excerpts above boundary": int((ex >= shipped_boundary).sum())})
    for c in (0.01, 0.1):
        clf = LogisticRegression(C=c, max_iter=5000, class_weight="balanced")
        clf.fit(scaler.transform(x), y, sample_weight=weight)
        pv = clf.predict_proba(scaler.transform(xv))[:, 1]
        boundary = float(np.sort(pv[yv == 0])[-2])
        pt = clf.predict_proba(scaler.transform(xt))[:, 1]
        r = {"boundary (val)": boundary,
             "held-out RhythGen vs human test AUC": auc(pt[yt == 0], pt[held]),
             "held-out RhythGen called (> boundary)": int((pt[held] > boundary).sum()),
             "human test above boundary": int((pt[yt == 0] > boundary).sum())}
        if mn is not None:
            pm = clf.predict_proba(scaler.transform(mn["z"]))[:, 1]
            ex = np.array([pm[excerpt == e].mean() for e in full])
            r.update({"MusicNet held-out clips above boundary": int((pm > boundary).sum()),
                      "MusicNet held-out excerpts above boundary": int((ex > boundary).sum()),
                      "MusicNet held-out excerpts q90": float(np.quantile(ex, 0.9))})
        results[f"probe C={c}"] = r
    counts = {"held-out RhythGen test clips": int(held.sum()), "human test clips": int((yt == 0).sum()),
              "RhythGen training windows": int((~np.isin(kinds, ("human",) + BUILT_IN)).sum())}
    if mn is not None:
        counts.update({"MusicNet held-out clips": len(mn["clip_ids"]),
                       "MusicNet held-out one-minute excerpts": len(full)})
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "probe.json").write_text(json.dumps({"counts": counts, "results": results},
                                                    indent=1) + "\n", encoding="utf-8")
    print(json.dumps(counts))
    for name, r in results.items():
        print(name)
        for k, v in r.items():
            print(f"  {k}: {v:.3f}" if isinstance(v, float) else f"  {k}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
