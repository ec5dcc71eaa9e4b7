"""Would a piano-roll CNN on basic-pitch's notes add to the symbolic line's statistics? (issue 21)

    python scripts/symbolic_roll_probe.py --model default \\
        --corpus runs/enlarged/ref-medium runs/symbolic/notes-medium \\
        --extra-train runs/symbolic/rg-extra runs/symbolic/notes-rg-extra \\
        --extra-train runs/symbolic/rg-more runs/symbolic/notes-rg-more \\
        --extra-train runs/symbolic/mn-extra runs/symbolic/notes-mn-extra \\
        --extra-train runs/symbolic/mn-more-full runs/symbolic/notes-mn-more \\
        --heldout runs/mn-heldout/ds runs/symbolic/notes-mn-heldout [--epochs 8] [--cosine] [--seed 0]

A probe, not a model to ship. The notes basic-pitch heard in each clip (the symbolic line's
own caches) become a two-channel piano roll (onsets, sounding notes; 88 keys x 10 frames per
second x 10 s); a small CNN (four conv blocks, mean and max pooling, transposition
augmentation, classes weighted alike; ``--cosine`` decays the learning rate) learns human
against score-writing AI on the corpus's ``train`` clips plus the extra batches. After each
epoch, and for a logistic stack of the CNN's logit with the fitted symbolic model's tree
score (fitted on ``val``), it prints: ROC-AUC on ``val``; held-out RhythGen configurations
(test) against human test clips and against the held-out corpus's human clips; and how many
clips of each lie above the highest human validation score (the tail a forensic operating
point sits in).
"""
from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np

FPS, FRAMES, LOWEST, KEYS = 10, 100, 21, 88
HELD_OUT_CONFIGS = ("LAD", "LMM2", "RAS2", "HMR")


def piano_roll(notes: np.ndarray) -> np.ndarray:
    """``[2, KEYS, FRAMES]``: onsets and sounding notes of ``[n, 3]`` (start, end, pitch)."""
    roll = np.zeros((2, KEYS, FRAMES), np.float32)
    for start, end, pitch in notes:
        key = int(round(pitch)) - LOWEST
        first = int(start * FPS)
        if not 0 <= key < KEYS or first >= FRAMES:
            continue
        roll[0, key, first] = 1.0
        roll[1, key, first:min(max(first + 1, int(end * FPS)), FRAMES)] = 1.0
    return roll


def load(root: str, cache: str, split: str | None = None) -> list[dict]:
    """Items of a corpus with cached notes: the symbolic fit's own items plus each one's roll."""
    from musicbrain_cli.symbolic import fit
    from musicbrain_cli.symbolic.corpus import symbolic_rows

    rows = symbolic_rows(os.path.join(root, "manifest.csv"))
    if split:
        rows = [{**r, "split": split} for r in rows]
    notes = {r["clip_id"]: np.load(os.path.join(cache, f"{r['clip_id']}.npy")) for r in rows
             if os.path.exists(os.path.join(cache, f"{r['clip_id']}.npy"))}
    items, _ = fit.dataset(rows, notes)
    for it in items:
        it["roll"] = piano_roll(notes[it["clip_id"]])
    return items


def network():
    import torch
    import torch.nn as nn

    def block(i, o):
        return nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU())

    class RollNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(block(2, 16), nn.MaxPool2d(2), block(16, 32), nn.MaxPool2d(2),
                                          block(32, 64), nn.MaxPool2d(2), block(64, 64))
            self.drop, self.head = nn.Dropout(0.3), nn.Linear(128, 1)

        def forward(self, x):
            z = self.features(x)
            return self.head(self.drop(torch.cat([z.mean((2, 3)), z.amax((2, 3))], 1))).squeeze(1)

    return RollNet()


def summary(name, sv, yv, st, test, sh) -> str:
    from sklearn.metrics import roc_auc_score

    human = st[[i["label"] == 0 for i in test]]
    held = st[[any(c in i["config"] for c in HELD_OUT_CONFIGS) for i in test]]
    top = sv[yv == 0].max()
    auc = lambda neg, pos: roc_auc_score(np.r_[np.zeros(len(neg)), np.ones(len(pos))], np.r_[neg, pos])  # noqa: E731
    return (f"{name}: val {roc_auc_score(yv, sv):.3f} | held-out RhythGen vs human test {auc(human, held):.3f}, "
            f"vs held-out humans {auc(sh, held):.3f} | above the top human val score: held-out RhythGen "
            f"{(held >= top).sum()}/{len(held)}, human test {(human >= top).sum()}/{len(human)}, "
            f"held-out humans {(sh >= top).sum()}/{len(sh)}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="a fitted symbolic model directory (or 'default')")
    ap.add_argument("--corpus", nargs=2, required=True, metavar=("CORPUS", "NOTES_CACHE"))
    ap.add_argument("--extra-train", nargs=2, action="append", default=[], metavar=("CORPUS", "NOTES_CACHE"))
    ap.add_argument("--heldout", nargs=2, required=True, metavar=("CORPUS", "NOTES_CACHE"))
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cosine", action="store_true",
                    help="decay the learning rate to zero over the run (cosine) instead of keeping it at 1e-3")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    import torch
    import torch.nn.functional as F
    from sklearn.linear_model import LogisticRegression

    from musicbrain_cli.symbolic.detector import SymbolicDetector

    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    items = load(*args.corpus) + [i for c in args.extra_train for i in load(*c, split="train")]
    held_humans = [i for i in load(*args.heldout) if i["label"] == 0]
    train = [i for i in items if i["split"] == "train"]
    val = [i for i in items if i["split"] == "val"]
    test = [i for i in items if i["split"] in ("test", "test_xsf")]
    x = np.stack([i["roll"] for i in train])
    y = np.array([i["label"] for i in train], np.float32)
    w = np.where(y == 1, 0.5 / y.mean(), 0.5 / (1 - y.mean())).astype(np.float32)
    yv = np.array([i["label"] for i in val])
    net = network()
    opt = torch.optim.AdamW(net.parameters(), 1e-3, weight_decay=1e-3)
    steps = args.epochs * -(-len(x) // 64)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps) if args.cosine else None

    def score(group):
        net.eval()
        with torch.no_grad():
            out = np.concatenate([net(torch.from_numpy(np.stack([i["roll"] for i in group[k:k + 256]]))).numpy()
                                  for k in range(0, len(group), 256)])
        net.train()
        return out

    t0 = time.time()
    for epoch in range(args.epochs):
        order = rng.permutation(len(x))
        for k in range(0, len(x), 64):
            b = order[k:k + 64]
            xb = np.roll(x[b], int(rng.integers(-6, 7)), axis=2)      # transposition
            loss = (F.binary_cross_entropy_with_logits(net(torch.from_numpy(xb)), torch.from_numpy(y[b]),
                                                       reduction="none") * torch.from_numpy(w[b])).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
        sv, st, sh = score(val), score(test), score(held_humans)
        print(f"epoch {epoch} ({time.time() - t0:.0f} s) " + summary("CNN", sv, yv, st, test, sh), flush=True)
    det = SymbolicDetector.from_pretrained(args.model)
    trees = lambda group: np.array([det.trees(i["features"]) for i in group])  # noqa: E731
    tv, tt, th = trees(val), trees(test), trees(held_humans)
    print(summary("trees", tv, yv, tt, test, th))
    stack = LogisticRegression().fit(np.c_[tv, sv], yv)
    f = lambda a, b: stack.decision_function(np.c_[a, b])  # noqa: E731
    print(summary("stack", f(tv, sv), yv, f(tt, st), test, f(th, sh))
          + f" (weights trees {stack.coef_[0, 0]:.2f}, CNN {stack.coef_[0, 1]:.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
