"""Do RhythGen and human scores separate on symbolic features of the clips' MIDI? (issue 21)

    python scripts/symbolic_probe.py runs/enlarged/ref-medium [--notes basic-pitch]

A probe, not a model to ship. Every human and RhythGen clip of a reference corpus has the
MIDI that was rendered for it (``scores/<clip_id>.mid``, the performed notes); 37 plain
features of each (note density, pitch statistics, pitch-class and interval histograms,
inter-onset and duration statistics, chord sizes, instruments) feed a gradient-boosted
classifier trained on the training split without the held-out RhythGen configurations,
scored on human test clips against held-out-configuration clips: overall, within each
instrumentation, and trained within Keyboard alone (so that the instrumentation cannot be
the cue). ``--notes builtin|basic-pitch``: the notes transcribed from each clip's audio
instead (what a scan would have). Prints the ROC-AUCs and the features whose permutation costs the most AUC.
"""
import csv, numpy as np, pretty_midi, soundfile as sf, warnings
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score
warnings.filterwarnings("ignore")
import argparse
ap = argparse.ArgumentParser(description="symbolic probe: RhythGen vs human on the clips' notes")
ap.add_argument("root")
ap.add_argument("--notes", choices=["midi", "builtin", "basic-pitch"], default="midi",
                help="the rendered MIDI itself, or notes transcribed from the audio")
args = ap.parse_args()
root = args.root.rstrip("/") + "/"
NOTES = args.notes
rows = list(csv.DictReader(open(root + "manifest.csv")))
def kind(r):
    o = r["origin"]
    return o.split(":")[1].split("/")[1] if o.startswith("rhythgen:") else ("human" if r["source"]=="human" else r["generator"])
def feats_from(p, s, d, dur):
    if len(p) < 4: return None
    order = np.lexsort((p, s)); p, s, d = p[order], s[order], d[order]
    on = np.unique(np.round(s, 2)); ioi = np.diff(on) if len(on) > 1 else np.array([0.5])
    pr = np.round(p).astype(int)
    pc = np.bincount(pr % 12, minlength=12) / len(pr); pcs = np.sort(pc)[::-1]
    iv = np.diff(pr); ivh = np.bincount(np.clip(np.abs(iv), 0, 12), minlength=13) / max(len(iv), 1)
    chord = np.array([np.sum(np.abs(s - t) < 0.03) for t in on])
    return np.array([len(p) / dur, p.mean(), p.std(), p.max() - p.min(), -(pc[pc > 0] * np.log(pc[pc > 0])).sum(),
         *pcs[:6], *ivh, np.log(ioi + 1e-3).mean(), np.log(ioi + 1e-3).std(), np.median(ioi),
         np.log(d + 1e-3).mean(), np.log(d + 1e-3).std(), chord.mean(), chord.max(),
         np.mean(d / np.median(d)), len(np.unique(np.round(d, 2))) / len(d)], float)
def one(path):
    from musicbrain_cli.alignment.pitch import estimate_notes, basic_pitch_notes
    y, sr = sf.read(path, dtype="float32")
    if y.ndim > 1: y = y.mean(axis=1)
    notes = basic_pitch_notes(y, sr) if NOTES == "basic-pitch" else estimate_notes(y, sr)
    return feats_from(np.array([n.pitch for n in notes]), np.array([n.start for n in notes]), np.array([n.end - n.start for n in notes]), len(y) / sr)
def feats(path):
    m = pretty_midi.PrettyMIDI(path)
    notes = [n for i in m.instruments if not i.is_drum for n in i.notes]
    if len(notes) < 4: return None
    notes.sort(key=lambda n: (n.start, n.pitch))
    p = np.array([n.pitch for n in notes]); s = np.array([n.start for n in notes]); d = np.array([n.end - n.start for n in notes]); v = np.array([n.velocity for n in notes])
    on = np.unique(np.round(s, 2)); ioi = np.diff(on) if len(on) > 1 else np.array([0.5])
    pc = np.bincount(p % 12, minlength=12) / len(p); pcs = np.sort(pc)[::-1]
    iv = np.diff(p); ivh = np.bincount(np.clip(np.abs(iv), 0, 12), minlength=13) / max(len(iv), 1)
    chord = np.array([np.sum(np.abs(s - t) < 0.03) for t in on])
    dur = m.get_end_time() or 12
    f = [len(p) / dur, p.mean(), p.std(), p.max() - p.min(), -(pc[pc > 0] * np.log(pc[pc > 0])).sum(),
         *pcs[:6], *ivh, np.log(ioi + 1e-3).mean(), np.log(ioi + 1e-3).std(), np.median(ioi),
         np.log(d + 1e-3).mean(), np.log(d + 1e-3).std(), chord.mean(), chord.max(), v.std(),
         len(m.instruments), np.mean(d / np.median(d)), len(np.unique(np.round(d, 2))) / len(d)]
    return np.array(f, float)
X, y, g, inst, split = [], [], [], [], []
todo = []
for r in rows:
    k = kind(r)
    if k not in ("human",) and not r["origin"].startswith("rhythgen:"): continue   # human vs RhythGen only
    f = feats(root + r["score_path"]) if NOTES == "midi" else None
    if NOTES != "midi":
        todo.append((r, k))
        continue
    if f is None: continue
    X.append(f); y.append(k != "human"); g.append(k); inst.append(r["instrumentation"] or "?"); split.append(r["split"])
if todo:       # transcription: two processes
    from concurrent.futures import ProcessPoolExecutor
    with ProcessPoolExecutor(2) as ex:
        F = list(ex.map(one, [root + r["path"] for r, _ in todo], chunksize=16))
    for (r, k), f in zip(todo, F):
        if f is None:
            continue
        X.append(f); y.append(k != "human"); g.append(k); inst.append(r["instrumentation"] or "?"); split.append(r["split"])
X, y, g, inst, split = map(np.array, (X, y, g, inst, split))
held = np.isin(g, ["HMR","LAD","LMM2","RAS2"])
tr = (split == "train") & ~held
te = np.isin(split, ["test", "test_xsf"]) & ((~y) | held)
clf = HistGradientBoostingClassifier(max_iter=300, learning_rate=0.05, random_state=0).fit(X[tr], y[tr])
p = clf.predict_proba(X)[:, 1]
print("train n", tr.sum(), "RG", (tr & y).sum(), "| test n", te.sum(), "held RG", (te & y).sum())
print("all test: held RG vs human AUC %.3f" % roc_auc_score(y[te], p[te]))
for I in ["Keyboard", "Art Song"]:
    sel = te & (inst == I)
    if len(set(y[sel])) == 2: print(f"  within {I}: human {(sel & ~y).sum()} RG {(sel & y).sum()} AUC {roc_auc_score(y[sel], p[sel]):.3f}")
# within-instrumentation training only (Keyboard): does it still separate without the instrumentation cue?
for I in ["Keyboard"]:
    trI = tr & (inst == I); teI = te & (inst == I)
    c2 = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, random_state=0).fit(X[trI], y[trI])
    print(f"  trained within {I} only (human {(trI & ~y).sum()}, RG {(trI & y).sum()}): test AUC {roc_auc_score(y[teI], c2.predict_proba(X[teI])[:,1]):.3f}")
from sklearn.inspection import permutation_importance
names = (["density","p_mean","p_std","p_range","pc_entropy"] + [f"pc_top{i}" for i in range(6)] + [f"iv{i}" for i in range(13)] + ["logioi_mean","logioi_std","ioi_median","logdur_mean","logdur_std","chord_mean","chord_max","vel_std","n_instruments","dur_rel_mean","dur_unique_share"])
if NOTES != "midi":
    names = [n for n in names if n not in ("vel_std", "n_instruments")]
r = permutation_importance(clf, X[te], y[te], scoring="roc_auc", n_repeats=5, random_state=0)
for i in np.argsort(-r.importances_mean)[:8]: print(f"  {names[i]:18s} {r.importances_mean[i]:.3f}")
for nm in [n for n in ["dur_unique_share", "n_instruments", "vel_std", "logdur_std"] if n in names]:
    i = names.index(nm); print(nm, "human median %.3f  RG median %.3f" % (np.median(X[tr & ~y, i]), np.median(X[tr & y, i])))
