"""The artifact line's fit (:mod:`musicbrain_cli.artifacts.fit`) on small feature rows made here."""

from __future__ import annotations

import numpy as np
import pytest

from musicbrain_cli.artifacts.detector import FEATURES
from musicbrain_cli.artifacts.fit import fit_model
from musicbrain_cli.errors import TrainingError


def _rows(seed: int = 0, *, n: int = 24, sources: int = 3) -> list[dict]:
    """Train and validation rows as ``corpus.extract_features`` writes them: decoded clips with
    a strong, full comb, human ones with a weak one; each decoded clip in the source (package)
    of the human clip it was decoded from."""
    rng = np.random.default_rng(seed)
    rows = []
    for split in ("train", "validation"):
        for label in (0, 1):
            for i in range(n):
                f = np.zeros(len(FEATURES))
                f[0] = rng.uniform(20, 60) if label else rng.uniform(0.5, 8)
                f[1:4] = rng.uniform(0.5, 1.0, 3) if label else rng.uniform(0.0, 0.4, 3)
                f[4:7] = rng.uniform(1, 6, 3)
                rows.append({"id": f"{split}/{label}/{i}", "split": split, "label": label,
                             "source": f"pkg{i % sources}", "family": "tconv" if label else "human",
                             "decoder": "tconv-8x8-44k" if label else "", "transform": "flac",
                             "na": None, "features": f.tolist(), "spacing_hz": 86.13})
    return rows


def test_a_class_without_a_comb_in_train_is_refused_not_fitted_as_a_constant():
    # The trees are fitted on clips with a comb only (no comb is no evidence). Decoded train
    # clips that all lack one left the trees one class: a constant model was written whose
    # P(AI) is the same for every upload, so it never accuses anything.
    rows = _rows()
    for r in rows:
        if r["split"] == "train" and r["label"] == 1:
            r["features"] = [0.0] * len(FEATURES)
    with pytest.raises(TrainingError, match="comb"):
        fit_model(rows, seed=0)


def test_a_package_the_unseen_package_rule_cannot_hold_out_is_refused():
    # With a single package (or one whose removal leaves one class), no model could be fitted
    # without it: its human clips were skipped, the rule's threshold fell to the smallest
    # float (5e-324) and the card still named it as part of the operating point.
    rows = _rows(sources=1)
    with pytest.raises(TrainingError, match="unseen-package rule"):
        fit_model(rows, seed=0)


def test_non_finite_features_are_refused_not_fitted_around():
    # A NaN comb strength (a damaged features.json) counted as "no comb" for the fit, yet the
    # detector scores it; one such human validation row moved the operating point of these
    # rows from 0.5 to 0.996 without a word.
    rows = _rows()
    bad = next(r for r in rows if r["split"] == "validation" and r["label"] == 0)
    bad["features"][0] = float("nan")
    with pytest.raises(TrainingError, match=f"non-finite features.*{bad['id']}"):
        fit_model(rows, seed=0)
