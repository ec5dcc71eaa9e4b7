"""Fit the artifact line: classifier, calibration, operating point, measured error rates, card.

Input: the rows of ``features.json`` written by ``scripts/fit_artifact_line.py features``
(one per corpus file: split, label, family, decoder, transform, source, features, ``na``).

* classifier: scikit-learn's ``HistGradientBoostingClassifier`` (depth 3, 300 rounds,
  classes balanced), monotone increasing in the comb-strength features (:data:`MONOTONE`),
  fitted on the ``train`` rows that have a comb (no comb is no evidence, see
  :meth:`ArtifactDetector.logit`), exported as JSON arrays (:func:`export_trees`). On
  validation it kept 0.77 of decoded clips above the second-highest human score, against
  0.49 for a non-negative logistic regression and 0.62 for an unconstrained one;
* calibration: Platt scaling (Platt 1999) of its logit, fitted on ``validation`` rows;
* operating point: the higher of (a) the lowest threshold that accuses at most 0.5 % of the
  human ``validation`` recordings (issue 22, item 4) and (b) just above the highest score
  any development (train + validation) human clip gets from a model fitted without its
  package (:func:`leave_one_source_out`), never below 0.5;
* error rates: on ``test`` rows (packages, pieces and decoder instances never used above),
  per decoder family, per upload transform, and the false-accusation rate on the human test
  packages, each with a Wilson 95 % interval; the same on ``test-fresh``, ``test-final``,
  ``test-latest``, ``test-2026-12`` and ``test-2026-12-04`` (human packages added after the
  first fit, after its last revision, with the codec-like decoders, with human production,
  with the two-level period feature) and on the held-out production audits
  (:func:`corpus.build_audit`); decoded clips also per family and
  random-init / trained, every set also per kind of production;
* doubt threshold: the lowest P(AI) that at most :data:`DOUBT_SHARE` of human validation
  uploads reach (the line leans towards AI from there), and what it withholds per split;
* generalisation: the same procedure with the iSTFT-head families
  (:data:`corpus.HELD_OUT_FAMILIES`) and one stride set (:data:`corpus.HELD_OUT_STRIDES`,
  EnCodec 24 kHz's) removed from fitting, calibration and threshold, then measured on them.

Everything is written as JSON numbers (never a pickle).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from musicbrain_cli.artifacts import corpus
from musicbrain_cli.artifacts.detector import CARD_FILE, FEATURES, MODEL_FILE, ArtifactDetector
from musicbrain_cli.errors import TrainingError
from musicbrain_cli.metrics import wilson_interval

#: The most false accusations allowed on human validation recordings (issue 22, item 4).
MAX_VALIDATION_FPR = 0.005
#: The threshold never goes below this: P(AI) under one half is never an accusation.
MIN_THRESHOLD = 0.5


def allowed_threshold(human_p, share: float = MAX_VALIDATION_FPR) -> float:
    """Just above the (k+1)-th highest of ``human_p``, k = floor(``share`` of them): at most k
    of these scores reach it (:data:`MIN_THRESHOLD` when there are too few). The artifact and
    the symbolic lines' operating points and doubt thresholds all follow it."""
    p = np.sort(np.asarray(human_p, dtype=np.float64))[::-1]
    allowed = int(math.floor(share * p.size))
    return float(np.nextafter(p[allowed], 2.0)) if p.size > allowed else MIN_THRESHOLD


def rate_with_interval(k: int, n: int) -> dict:
    """``{k, n, rate, ci95}``: a count out of ``n`` with its Wilson 95 % interval."""
    lo, hi = wilson_interval(k, n)
    return {"k": int(k), "n": int(n), "rate": (k / n) if n else None, "ci95": [lo, hi]}


def _held_out(row: dict) -> bool:
    strides, rate = corpus.HELD_OUT_STRIDES
    tag = f"-{'x'.join(map(str, strides))}-{rate // 1000}k-"
    return row["label"] == 1 and (row["family"] in corpus.HELD_OUT_FAMILIES or tag in row["decoder"])


#: Features along which P(AI) may only rise: a stronger, fuller, higher-reaching comb, at a
#: spacing that fits a decoder rate and is not a musical pitch, is never less decoder-like.
MONOTONE = ("comb_log10_p", "coverage", "high_share", "off_pitch", "fits_decoder_rate")
#: Features along which P(AI) may only fall: a period more like a naive pulse oscillator's
#: (two levels, :func:`peaks.two_level_share`) is never more decoder-like.
MONOTONE_DECREASING = ("two_level_share",)
GBDT = {"max_depth": 3, "max_iter": 300, "learning_rate": 0.05, "l2_regularization": 1.0}


def export_trees(clf) -> dict:
    """A fitted binary ``HistGradientBoostingClassifier`` as the JSON arrays :class:`detector.Trees`
    reads (the artifact and the symbolic lines).

    Reads scikit-learn's predictor nodes (``_predictors``, ``_baseline_prediction``):
    private attributes, so :func:`fit_model` checks the export against
    ``decision_function`` before anything is written.
    """
    trees = []
    for (predictor,) in clf._predictors:
        nodes = predictor.nodes
        trees.append({"feature": nodes["feature_idx"].astype(int).tolist(),
                      "threshold": nodes["num_threshold"].astype(float).tolist(),
                      "left": nodes["left"].astype(int).tolist(), "right": nodes["right"].astype(int).tolist(),
                      "value": nodes["value"].astype(float).tolist(), "leaf": nodes["is_leaf"].astype(bool).tolist(),
                      "missing_left": nodes["missing_go_to_left"].astype(bool).tolist()})
    return {"baseline": float(np.ravel(clf._baseline_prediction)[0]), "trees": trees}


def fit_model(rows: list[dict], *, seed: int, exclude=lambda r: False) -> dict:
    """The model dict (trees, Platt, threshold) fitted on ``rows``' train/validation splits.

    Rows for which ``exclude(row)`` is true are left out of all three.
    """
    from sklearn.linear_model import LogisticRegression

    train = [r for r in rows if r["split"] == "train" and not exclude(r)]
    val = [r for r in rows if r["split"] == "validation" and not exclude(r)]
    if len({r["label"] for r in train}) < 2 or len({r["label"] for r in val}) < 2:
        raise TrainingError(f"need both classes in train and validation, got {len(train)} / {len(val)} rows")
    bad = [r["id"] for r in train + val if not np.all(np.isfinite(r["features"]))]
    if bad:  # a NaN comb strength is "no comb" to the fit's filter but scored at scan time
        raise TrainingError(f"{len(bad)} rows have non-finite features, e.g. {bad[:3]}")

    comb = [r for r in train if r["features"][0] > 0]
    with_comb = [r for r in val if r["features"][0] > 0]
    # The trees and Platt see only clips with a comb: a class present in train or validation
    # but never with a comb would give a constant model that is written and never accuses.
    if len({r["label"] for r in comb}) < 2 or len({r["label"] for r in with_comb}) < 2:
        raise TrainingError(f"need both classes among the clips with a comb in train and validation, got "
                            f"labels {sorted({r['label'] for r in comb})} / {sorted({r['label'] for r in with_comb})}")
    x = np.array([r["features"] for r in comb])
    y = np.array([r["label"] for r in comb])
    clf = _gbdt(seed).fit(x, y)
    model = {"kind": "gbdt", "features": list(FEATURES), "trees": export_trees(clf),
             "platt": {"a": 1.0, "b": 0.0}, "threshold": 0.5}
    det = ArtifactDetector(model)
    mine = np.array([det.trees(row[det.columns]) for row in x])
    if not np.allclose(mine, clf.decision_function(x), atol=1e-9):
        raise TrainingError("the exported trees do not reproduce scikit-learn's decision function")
    raw = np.array([[det.trees(np.array(r["features"])[det.columns])] for r in with_comb])
    yv = np.array([r["label"] for r in with_comb])
    platt = LogisticRegression(C=1.0, max_iter=1000).fit(raw, yv)
    model["platt"] = {"a": float(platt.coef_[0, 0]), "b": float(platt.intercept_[0])}
    det = ArtifactDetector(model)
    human = [det.p_ai(np.array(r["features"])) for r in val if r["label"] == 0]
    t_val = allowed_threshold(human)
    # Unseen packages: every development human clip scored by a model fitted without its
    # package. The first fits met the validation rule and still accused 2-7 % of the clips of
    # packages they had never seen, so the validation set alone is not enough.
    oof = leave_one_source_out(train + val, seed=seed)
    t_lopo = float(np.nextafter(_sigmoid(model["platt"]["a"] * oof + model["platt"]["b"]), 2.0))
    # never capped below what the rules need (a cap broke the false-accusation target
    # whenever human development clips scored above it; session 28 audit)
    model["threshold"] = max(MIN_THRESHOLD, t_val, t_lopo)
    model["operating_point"] = {"validation_rule": t_val, "unseen_package_rule": t_lopo,
                                "validation_humans": len(human)}
    return model


def _sigmoid(z: float) -> float:
    return float(1.0 / (1.0 + np.exp(-z)))


def _gbdt(seed: int):
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(**GBDT, class_weight="balanced", random_state=seed,
                                          monotonic_cst=[1 if f in MONOTONE else -1 if f in MONOTONE_DECREASING else 0
                                                         for f in FEATURES])


def leave_one_source_out(rows: list[dict], *, seed: int) -> float:
    """The highest raw score any human clip gets from a model fitted without its source.

    Sources are Debian packages (and the MusicNet renderings as one source); an AI clip
    belongs to the source of the human clip it was decoded from, so a fold never holds a
    decoded copy of the music it is tested on.
    """
    sources = sorted({r["source"] for r in rows if r["label"] == 0})
    worst = -math.inf
    for source in sources:
        fit_rows = [r for r in rows if r["source"] != source and r["features"][0] > 0]
        test = np.array([r["features"] for r in rows if r["source"] == source and r["label"] == 0
                         and r["features"][0] > 0])
        if test.size == 0:
            continue
        if len({r["label"] for r in fit_rows}) < 2:
            # skipping it would leave its clips outside the rule and the card claiming it held
            raise TrainingError(f"without source {source!r} the development rows hold one class: the "
                                "unseen-package rule cannot score its human clips; add sources")
        clf = _gbdt(seed).fit(np.array([r["features"] for r in fit_rows]), np.array([r["label"] for r in fit_rows]))
        worst = max(worst, float(np.max(clf.decision_function(test))))
    return worst


def evaluate(model: dict, rows: list[dict]) -> dict:
    """Error rates of ``model`` on ``rows`` (applicable rows only; not-applicable ones counted)."""
    det = ArtifactDetector(model)
    out: dict = {"not_applicable": sum(1 for r in rows if r["na"])}
    by_family: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    by_kind: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    by_transform: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    by_source: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    by_production: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    scores, labels, kept = [], [], []
    for r in rows:
        if r["na"]:
            continue
        kept.append(r)
        p = det.p_ai(np.array(r["features"]))
        hit = int(det.accuses(p, r.get("spacing_hz")))
        scores.append(p)
        labels.append(r["label"])
        key = r["family"]
        by_family[key][0] += hit
        by_family[key][1] += 1
        if r["label"] == 1:  # random-init and trained decoders apart: trained ones leave weaker lines
            kind = f"{key}/{'trained' if r['decoder'].endswith('-trained') else 'random'}"
            by_kind[kind][0] += hit
            by_kind[kind][1] += 1
        by_transform[f"{'ai' if r['label'] else 'human'}/{r['transform']}"][0] += hit
        by_transform[f"{'ai' if r['label'] else 'human'}/{r['transform']}"][1] += 1
        if r["label"] == 0:
            by_source[r["source"]][0] += hit
            by_source[r["source"]][1] += 1
        production = f"{'ai' if r['label'] else 'human'}/{r.get('production') or 'none'}"
        by_production[production][0] += hit
        by_production[production][1] += 1
    ai = [s for s, l in zip(scores, labels) if l == 1]
    hu = [s for s, l in zip(scores, labels) if l == 0]
    hits = [det.accuses(s, r.get("spacing_hz")) for s, r in zip(scores, kept)]
    out["recall"] = rate_with_interval(sum(h for h, l in zip(hits, labels) if l == 1),
                                       sum(1 for l in labels if l == 1))
    out["false_accusations"] = rate_with_interval(sum(h for h, l in zip(hits, labels) if l == 0),
                                                  sum(1 for l in labels if l == 0))
    if ai and hu:
        from sklearn.metrics import roc_auc_score

        out["roc_auc"] = float(roc_auc_score(labels, scores))
    out["detected_per_family"] = {k: rate_with_interval(*v) for k, v in sorted(by_family.items())}
    out["detected_per_family_and_training"] = {k: rate_with_interval(*v) for k, v in sorted(by_kind.items())}
    out["called_ai_per_transform"] = {k: rate_with_interval(*v) for k, v in sorted(by_transform.items())}
    out["false_accusations_per_source"] = {k: rate_with_interval(*v) for k, v in sorted(by_source.items())}
    out["called_ai_per_production"] = {k: rate_with_interval(*v) for k, v in sorted(by_production.items())}
    out["p_ai_max_human"] = max(hu) if hu else None
    return out


def compare(models: dict[str, dict], rows: list[dict], audits: list[list[dict]] = ()) -> dict:
    """Several fitted lines on the same rows: for each model (name -> model dict) and each split
    of ``rows`` and each audit, the human uploads at or above its operating point and at or
    above its doubt threshold, and where the split has decoded uploads their recall, share at
    or above the doubt threshold and ROC-AUC (not-applicable rows left out, as in
    :func:`evaluate`). What a refit is judged by against the shipped line."""
    sets: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        sets[r["split"]].append(r)
    for a in audits:
        for r in a:
            sets[r["split"]].append(r)
    out: dict[str, dict] = {}
    for name, model in models.items():
        det = ArtifactDetector(model)
        per: dict[str, dict] = {}
        for split, group in sets.items():
            e = evaluate(model, group)
            kept = [r for r in group if not r["na"]]
            doubt = {label: [det.p_ai(np.array(r["features"])) >= det.doubt_threshold
                             for r in kept if r["label"] == label] for label in (0, 1)}
            per[split] = {"human_at_operating_point": e["false_accusations"],
                          "human_at_doubt": rate_with_interval(sum(doubt[0]), len(doubt[0])),
                          **({"decoded_at_operating_point": e["recall"],
                              "decoded_at_doubt": rate_with_interval(sum(doubt[1]), len(doubt[1])),
                              "roc_auc": e.get("roc_auc")} if doubt[1] else {})}
        out[name] = {"threshold": det.threshold, "doubt_threshold": det.doubt_threshold,
                     "features": list(det.feature_names), "splits": per}
    return out


#: Why the narrowest band, not a low percentile: a 1st percentile (6.0 kHz) was tried first and
#: left 12 of 40 human MusicNet pieces rendered at 22.05 kHz outside (their bandwidth is 4.9-6.0
#: kHz, as is that of four of the 78 renders in the calibration itself): it withheld 'human'
#: from the renderings the line was calibrated on.
COVERAGE_RULE = ("sample rates: those of the human development uploads (train and validation "
                 "packages and renders, as uploaded, where the line applies), each one, not the "
                 "range between them; bandwidth: the narrowest among them. At any other rate or a "
                 "narrower band the line can accuse but never exonerate")


COVERAGE_MEASURED_ON = ("the human train and validation uploads of the artifact corpus as "
                        "scripts/fit_artifact_line.py draws them (seed 22; the packages of "
                        "docs/human-recordings.md)")


def human_coverage(rows: list[dict], *, measured_on: str = COVERAGE_MEASURED_ON) -> dict:
    """What the line's human side was calibrated on (:class:`~musicbrain_cli.artifacts.detector.
    HumanCoverage`), from the human ``train`` and ``validation`` rows where the line applies;
    the rows must carry ``rate`` and ``bandwidth_hz`` (``corpus.extract_features``)."""
    dev = [r for r in rows if r["label"] == 0 and r["split"] in ("train", "validation") and not r["na"]]
    if not dev:
        raise TrainingError("no applicable human development rows to measure the coverage on")
    missing = [r["id"] for r in dev if r.get("bandwidth_hz") is None][:3]
    if missing:
        raise TrainingError(f"rows without bandwidth_hz (features read before it was recorded): {missing}")
    rates = sorted({int(r["rate"]) for r in dev})
    bands = np.array([float(r["bandwidth_hz"]) for r in dev])
    return {"min_rate_hz": rates[0], "max_rate_hz": rates[-1],
            "min_bandwidth_hz": round(float(bands.min()), 1),
            "rates_hz": rates, "n_uploads": len(dev),
            "bandwidth_hz_min_quartiles_max": [round(float(q), 1)
                                               for q in np.percentile(bands, [0, 25, 50, 75, 100])],
            "measured_on": measured_on,
            "rule": COVERAGE_RULE}


def outside_coverage(coverage: dict, rows: list[dict]) -> dict:
    """Per split, how many applicable human rows lie outside ``coverage`` (so the line
    withholds a ``human`` verdict from them): ``{split: rate_with_interval}``."""
    from musicbrain_cli.artifacts.detector import HumanCoverage

    cov = HumanCoverage.from_model({"human_coverage": coverage})
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in rows:
        if r["label"] == 0 and not r["na"]:
            counts[r["split"]][0] += cov.outside(int(r["rate"]), float(r["bandwidth_hz"])) is not None
            counts[r["split"]][1] += 1
    return {split: rate_with_interval(k, n) for split, (k, n) in sorted(counts.items())}


def add_human_coverage(rows: list[dict], model_dir: Path, *, measured_on: str = COVERAGE_MEASURED_ON,
                       held_out: list[dict] | None = None) -> dict:
    """Write :func:`human_coverage` of ``rows`` into an already fitted line's model.json (where
    it is used) and card.json (``summary``, quoted in reports); nothing else changes.
    ``held_out``: human rows of the test packages, on which the card also records what the
    coverage withholds (``summary.human_withheld_by_coverage``). Returns the coverage and both
    files' new SHA-256."""
    coverage = human_coverage(rows, measured_on=measured_on)
    model_path, card_path = model_dir / MODEL_FILE, model_dir / CARD_FILE
    model, card = json.loads(model_path.read_text()), json.loads(card_path.read_text())
    model["human_coverage"] = coverage
    card.setdefault("summary", {})["human_coverage"] = coverage
    if held_out:
        card["summary"]["human_withheld_by_coverage"] = {
            split: {**rate, "note": "applicable held-out human uploads outside the coverage"}
            for split, rate in outside_coverage(coverage, held_out).items()}
    model_path.write_text(json.dumps(model, indent=1, sort_keys=True) + "\n")
    card_path.write_text(json.dumps(card, indent=1, sort_keys=True) + "\n")
    return {"human_coverage": coverage, MODEL_FILE: _sha(model_path), CARD_FILE: _sha(card_path),
            "human_withheld_by_coverage": card["summary"].get("human_withheld_by_coverage")}


def record_after_shipping(model_dir: Path, name: str, rate: dict, *, measured_on: str) -> dict:
    """Write ``rate`` (a :func:`rate_with_interval` of human uploads at or above the operating
    point) into a fitted line's card as ``summary.false_accusations_human_<name>``, marked as
    measured after the line shipped (reports quote it so); nothing else changes. Returns the
    card's new SHA-256 (to pin in ``detector.SHIPPED_SHA256``)."""
    if not measured_on:
        raise TrainingError("say what the rate was measured on (--note)")
    card_path = model_dir / CARD_FILE
    card = json.loads(card_path.read_text())
    card.setdefault("summary", {})[f"false_accusations_human_{name}"] = {
        **rate, "measured_after_shipping": True, "measured_on": measured_on}
    card_path.write_text(json.dumps(card, indent=1, sort_keys=True) + "\n")
    return {CARD_FILE: _sha(card_path)}


def record_real_decoder(model_dir: Path, name: str, rows: list[dict], *, measured_on: str,
                        decoder: str) -> dict:
    """What the line in ``model_dir`` makes of a real, fully trained decoder's output (``rows``
    with label 1, e.g. :func:`corpus.build_vocoded`'s after ``extract_features``), into its card
    as ``summary.real_decoder_<name>``, marked as measured after the line shipped: of all those
    uploads, how many reach its operating point (where an accusing line would accuse), how many
    reach its doubt threshold (it then withholds a 'human' verdict) and how many it cannot
    read (not applicable: it withholds one too); ``decoder`` names the decoder in a few words,
    for reports. Returns the entry and the card's new SHA-256."""
    if not measured_on or not decoder:
        raise TrainingError("say what the rate was measured on (--note) and name the decoder")
    decoded = [r for r in rows if r["label"] == 1]
    if not decoded:
        raise TrainingError("no decoded rows to measure")
    model = json.loads((model_dir / MODEL_FILE).read_text())
    det = ArtifactDetector(model)
    read = [r for r in decoded if not r["na"]]
    p = [det.p_ai(np.array(r["features"])) for r in read]
    n = len(decoded)
    entry = {"operating_point": rate_with_interval(sum(det.accuses(v, r.get("spacing_hz")) for v, r in zip(p, read)), n),
             "doubt_threshold": rate_with_interval(sum(v >= det.doubt_threshold for v in p), n),
             "not_applicable": rate_with_interval(n - len(read), n),
             "p_ai_quartiles": [round(float(q), 4) for q in np.quantile(p, [0.25, 0.5, 0.75])] if p else None,
             "decoder": decoder, "measured_after_shipping": True, "measured_on": measured_on}
    card_path = model_dir / CARD_FILE
    card = json.loads(card_path.read_text())
    card.setdefault("summary", {})[f"real_decoder_{name}"] = entry
    card_path.write_text(json.dumps(card, indent=1, sort_keys=True) + "\n")
    return {"entry": entry, CARD_FILE: _sha(card_path)}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


#: Share of human validation uploads at or above the doubt threshold (session 20's rule, the
#: symbolic line's ``DOUBT_SHARE``).
DOUBT_SHARE = 0.10


def doubt_threshold(model: dict, rows: list[dict]) -> float:
    """The lowest P(AI) that at most :data:`DOUBT_SHARE` of the applicable human validation
    uploads reach (never above the operating point): from there up the line leans towards AI."""
    det = ArtifactDetector(model)
    human = [det.p_ai(np.array(r["features"])) for r in rows
             if r["split"] == "validation" and r["label"] == 0 and not r["na"]]
    return min(max(allowed_threshold(human, DOUBT_SHARE), 1e-6), model["threshold"])


def withheld_by_doubt(model: dict, rows: list[dict]) -> dict:
    """Per human split, the applicable uploads at or above the doubt threshold (short of an
    accusation they withhold a ``human`` verdict): ``{split: rate_with_interval}``."""
    det = ArtifactDetector(model)
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in rows:
        if r["label"] == 0 and not r["na"] and r["split"] != "train":
            counts[r["split"]][0] += det.p_ai(np.array(r["features"])) >= model["doubt_threshold"]
            counts[r["split"]][1] += 1
    return {"measured_on": "the human uploads of the corpus this line was fitted with; validation set "
                           "the threshold, the test splits were used in no decision of it",
            **{split: rate_with_interval(k, n) for split, (k, n) in sorted(counts.items())}}


def mains_guard(model: dict, test: list[dict]) -> dict:
    """What the mains-hum rule (:func:`detector.mains_hum`) costs on the test split: decoded
    clips that reach the operating point at a mains spacing and so are not accused."""
    from musicbrain_cli.artifacts.detector import MAINS_HZ, MAINS_TOLERANCE, mains_hum

    det = ArtifactDetector(model)
    reach = [r for r in test if r["label"] == 1 and not r["na"] and det.p_ai(np.array(r["features"])) >= det.threshold]
    withdrawn = [r for r in reach if r.get("spacing_hz") and mains_hum(r["spacing_hz"]) is not None]
    return {"rule": (f"a comb whose spacing lies within {MAINS_TOLERANCE:.0%} of "
                     f"{', '.join(f'{f:g}' for f in MAINS_HZ)} Hz never accuses (mains hum and rectified "
                     "buzz; artifacts.detector.mains_hum); the rates of this card count it"),
            "spacings_hz": list(MAINS_HZ), "tolerance": MAINS_TOLERANCE,
            "decoded_accusations_withdrawn": rate_with_interval(len(withdrawn), len(reach))}


#: Why each human-only split was added (card notes), by split.
HELD_OUT_NOTES = {
    "test-fresh": ("human recordings only, from packages added after the first fit; the 'test' packages had "
                   "been inspected while the line was developed (a feature was added after seeing their false "
                   "accusations). The classifier and operating point were revised after this split was measured."),
    "test-final": ("human recordings only, from packages added after the last revision of the procedure and "
                   "used in no decision of the first fitting procedure"),
    "test-latest": ("human recordings only, from packages added with the codec-like decoders and used in no "
                    "decision of the codec-like decoders' fit"),
    "test-2026-12": ("human recordings only, from packages added with human production on both sides of the "
                     "corpus, used in no decision of that fit"),
    "test-2026-12-04": ("human recordings only, from packages added with the two-level period feature, used "
                        "in no decision of this fit: the cleanest estimate of the false-accusation rate on "
                        "unseen packages"),
}


def card_key(split: str) -> str:
    """``test-2026-12`` -> ``test_2026_12``: a split's name as a card key."""
    return split.replace("-", "_")


def audit_key(split_tag: str) -> str:
    """The card key of the audit of ``audit:<split>`` rows: ``production_audit`` for the first
    audit (``test-2026-12``, keys kept as shipped), ``production_audit_<split>`` for later ones."""
    split = split_tag.split(":", 1)[-1]
    return "production_audit" if split == "test-2026-12" else f"production_audit_{card_key(split).removeprefix('test_')}"


def fit_and_ship(rows: list[dict], model_dir: Path, *, seed: int, data_card: str, command: str,
                 decoder_training: dict | None = None, audits: list[list[dict]] = ()) -> dict:
    """Fit the shipped line and the held-out experiment; write model.json and card.json.

    ``decoder_training`` (decoder name -> :func:`synth.train_codec` record) goes into the card;
    ``audits``: the feature rows of each :func:`corpus.build_audit` (human production on
    held-out recordings; split ``audit:<split>``), measured with the fitted line and written
    into the card under :func:`audit_key`.
    """
    usable = [r for r in rows if not r["na"]]
    shipped = fit_model(usable, seed=seed)
    shipped["doubt_threshold"] = doubt_threshold(shipped, usable)
    held = fit_model(usable, seed=seed, exclude=_held_out)
    test = [r for r in rows if r["split"] == "test"]
    val = [r for r in rows if r["split"] == "validation"]
    gen_test = evaluate(held, [r for r in test if _held_out(r) or r["label"] == 0])
    seen_test = evaluate(held, [r for r in test if not _held_out(r)])
    fam_rows = [r for r in test if r["family"] in corpus.HELD_OUT_FAMILIES or r["label"] == 0]
    strides_rows = [r for r in test if (_held_out(r) and r["family"] not in corpus.HELD_OUT_FAMILIES)
                    or r["label"] == 0]
    val_eval, test_eval = evaluate(shipped, val), evaluate(shipped, test)
    held_out = {split: evaluate(shipped, [r for r in rows if r["split"] == split])
                for split in corpus.HUMAN_ONLY_SPLITS if any(r["split"] == split for r in rows)}
    audit_evals = {audit_key(a[0]["split"]): (a[0]["split"].split(":", 1)[-1], evaluate(shipped, a))
                   for a in audits if a}
    counts = defaultdict(int)
    for r in rows:
        counts[f"{r['split']}/{'ai' if r['label'] else 'human'}"] += 1
    summary = {
        "threshold": shipped["threshold"],
        "false_accusations_human_test": test_eval["false_accusations"],
        **{f"false_accusations_human_{card_key(split)}": e["false_accusations"] for split, e in held_out.items()},
        **{f"false_accusations_human_{key}": e["false_accusations"] for key, (_, e) in audit_evals.items()},
        "recall_synthetic_decoders_test": test_eval["recall"],
        "miss_rate_per_decoder_family_test": {
            k: {"miss_rate": 1 - v["rate"] if v["rate"] is not None else None, "n": v["n"]}
            for k, v in test_eval["detected_per_family"].items() if k != "human"},
        "human_withheld_by_doubt": withheld_by_doubt(shipped, rows),
        "mains_hum_guard": mains_guard(shipped, test),
        "held_out_family_recall": evaluate(held, fam_rows)["recall"],
        "held_out_strides_recall": evaluate(held, strides_rows)["recall"],
        "measured_on": ("synthetic decoders built in scripts/fit_artifact_line.py (tiny tconv, nearest, linear, "
                        "subpixel, istft; strides 64..1024 at 16-48 kHz; and codec-like decoders in the shape of "
                        "EnCodec, DAC, SNAC, HiFi-GAN, BigVGAN and Vocos, trained a few hundred steps, never to "
                        "convergence) applied to human recordings, and the "
                        "held-out Debian packages of docs/human-recordings.md, human and decoded clips alike "
                        "also given common human production (naive square drones, sample-and-hold, pilot "
                        "tones, time-stretch, resampling, tracker playback); for real generators the miss "
                        "rate is unknown unless measured separately"),
    }
    card = {
        "line": "artifacts",
        "produced_by": {"command": command, "seed": seed, "data_card": data_card,
                        "corpus": dict(sorted(counts.items())),
                        "not_applicable_rows": sum(1 for r in rows if r["na"])},
        "operating_point": {"threshold": shipped["threshold"], "rule": (
            f"the higher of: the lowest threshold accusing at most {MAX_VALIDATION_FPR:.1%} of human validation "
            "recordings; just above the highest score of any train/validation human clip under a model fitted "
            f"without its package. Never below {MIN_THRESHOLD}."), **shipped["operating_point"],
            "validation": val_eval["false_accusations"]},
        "validation": val_eval,
        "test": test_eval,
        **{card_key(split): {**e, "note": HELD_OUT_NOTES.get(split, "human recordings only")}
           for split, e in held_out.items()},
        **{key: {**e, "note": (
            f"the {split} recordings with every kind of human production at set levels "
            "(production.audit_settings), written as FLAC, plus each clip untouched: human only")}
           for key, (split, e) in audit_evals.items()},
        "decoder_training": decoder_training or {},
        "generalisation": {
            "held_out_family": corpus.HELD_OUT_FAMILY,
            "held_out_families": list(corpus.HELD_OUT_FAMILIES),
            "held_out_strides": {"strides": list(corpus.HELD_OUT_STRIDES[0]), "rate": corpus.HELD_OUT_STRIDES[1]},
            "threshold": held["threshold"],
            "held_out_family_test": evaluate(held, fam_rows),
            "held_out_strides_test": evaluate(held, strides_rows),
            "held_out_all_test": gen_test,
            "seen_decoders_test": seen_test,
        },
        "summary": summary,
    }
    if all(r.get("bandwidth_hz") is not None for r in rows if not r["na"]):
        shipped["human_coverage"] = human_coverage(rows)
        card["summary"]["human_coverage"] = shipped["human_coverage"]
    model_dir.mkdir(parents=True, exist_ok=True)
    shipped["produced_by"] = card["produced_by"]
    (model_dir / MODEL_FILE).write_text(json.dumps(shipped, indent=1, sort_keys=True) + "\n")
    (model_dir / CARD_FILE).write_text(json.dumps(card, indent=1, sort_keys=True) + "\n")
    return {MODEL_FILE: _sha(model_dir / MODEL_FILE), CARD_FILE: _sha(model_dir / CARD_FILE)}
