"""Robustness rows that stated figures other than the ones a scan would produce (review
defects, each a test that failed on the code before its fix)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from musicbrain_cli.errors import ModelLoadError
from musicbrain_cli.evaluate.robustness import evaluate_robustness, update_card

SR = 22050


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _tone(seconds, f0, *, sr=SR):
    t = np.arange(int(round(seconds * sr))) / sr
    return sum(0.3 / k * np.sin(2 * np.pi * k * f0 * t) for k in range(1, 5)).astype(np.float32)


@pytest.fixture(scope="module")
def dataset_root(tmp_path_factory):
    from musicbrain_cli.data.dataset import ClipRecord, DatasetWriter
    from musicbrain_cli.taxonomy import Taxonomy

    root = tmp_path_factory.mktemp("robust-review-data")
    taxonomy = Taxonomy.from_groups([("source", ["human", "ai"], True)])
    rng = np.random.default_rng(0)
    with DatasetWriter(root, taxonomy, sample_rate=SR, name="tiny") as w:
        for i, source in enumerate(["human"] * 3 + ["ai"] * 3):
            y = _tone(3.0, (220.0 if source == "human" else 330.0) * (1 + 0.01 * i))
            y = y + 0.01 * rng.standard_normal(y.size).astype(np.float32)
            w.add(ClipRecord(f"c{i}", source=source, work_id=f"w{i}", split="test"), y)
    return root


def _set_thresholds(model_dir, **thresholds):
    path = model_dir / "model_card.json"
    card = json.loads(path.read_text())
    card["thresholds"] = {**card["thresholds"], **thresholds}
    path.write_text(json.dumps(card))


def test_rates_are_taken_at_the_verdicts_detection_threshold(dataset_root, model_copy):
    """A card may hold a per-label threshold for ``source/ai`` besides ``detection``; the
    verdict (the scan's rule, VerdictPolicy.from_card) calls ``ai`` at ``detection``, but the
    rows took FPR/TPR at ``Detector.thresholds['source/ai']`` and stamped that as "the model
    card's detection threshold": the row's FPR was at another operating point than a scan's."""
    from musicbrain_cli.model.inference import Detector

    _set_thresholds(model_copy, detection=0.5, **{"source/ai": 0.001})
    det = Detector.from_pretrained(model_copy, device="cpu")
    (row,) = evaluate_robustness(dataset_root, det, transforms=["original"])
    assert row["threshold"] == 0.5
    # every verdict 'ai' on a human clip is also a positive at the stated threshold
    assert row["fpr"] >= row["ai_verdicts_on_human"]


def test_update_card_does_not_keep_rows_measured_at_another_threshold(dataset_root, model_copy):
    """Rows are merged by transform; a stored row measured when the card's detection
    threshold was another (``finalize`` re-chooses it without touching the weights, so the
    SHA-256 check passes) was kept beside the new rows, and every scan report quoted its
    false-accusation rate as this model's, though the rule now in force is another."""
    from musicbrain_cli.model.inference import Detector

    det = Detector.from_pretrained(model_copy, device="cpu")
    sha = det.card["weights_sha256"]
    old_thr = det.card["thresholds"]["detection"]
    rows = evaluate_robustness(dataset_root, det, transforms=["original", "gain_-6db"], max_clips=2)
    update_card(model_copy, rows, weights_sha256=sha)
    _set_thresholds(model_copy, detection=0.9)          # a later finalize moved the threshold
    det = Detector.from_pretrained(model_copy, device="cpu")
    (gain,) = evaluate_robustness(dataset_root, det, transforms=["gain_-6db"], max_clips=2)
    assert gain["threshold"] == 0.9
    card = update_card(model_copy, [gain], weights_sha256=sha)
    assert all(r["threshold"] == 0.9 for r in card["robustness"])
    assert [r["key"] for r in card["robustness"]] == ["gain_-6db"]
    # and rows measured at another threshold than the card's are refused, not stored
    with pytest.raises(ModelLoadError, match="threshold"):
        update_card(model_copy, [{**gain, "threshold": old_thr}], weights_sha256=sha)


def test_rows_record_the_seed_that_drew_their_clips_and_noise(dataset_root, model_copy, tmp_path):
    """The seed selects the clips and draws the noise, but no row, table or card said which:
    a noise row could not be reproduced from what was written (session 36 finding)."""
    from musicbrain_cli.evaluate.robustness import write_robustness
    from musicbrain_cli.model.inference import Detector

    det = Detector.from_pretrained(model_copy, device="cpu")
    a = evaluate_robustness(dataset_root, det, transforms=["noise_20db"], seed=5, max_clips=4)
    b = evaluate_robustness(dataset_root, det, transforms=["noise_20db"], seed=a[0]["seed"],
                            max_clips=a[0]["max_clips"])
    assert a[0]["seed"] == 5 and a[0]["max_clips"] == 4
    assert a == b                                     # reproduced from what the row says
    _, md = write_robustness(a, tmp_path / "out")
    assert "seeded with 5" in md.read_text() and "at most 4 clips per split" in md.read_text()


def test_update_card_keeps_a_stored_row_that_a_new_run_did_not_measure(dataset_root, model_copy):
    """A run on a data set without the held-out split (the default transforms include it)
    gives a held-out row of 0 + 0 clips, "not measured"; --update-card replaced the card's
    measured held-out row with it, silently (exit status 0), and every scan then showed n/a."""
    from musicbrain_cli.evaluate.robustness import HELD_OUT_SOUNDFONT
    from musicbrain_cli.model.inference import Detector

    det = Detector.from_pretrained(model_copy, device="cpu")
    sha = det.card["weights_sha256"]
    rows = evaluate_robustness(dataset_root, det, transforms=["original", HELD_OUT_SOUNDFONT])
    assert rows[1]["key"] == HELD_OUT_SOUNDFONT and (rows[1]["n_human"], rows[1]["n_ai"]) == (0, 0)
    earlier = {**rows[1], "n_human": 200, "n_ai": 150, "roc_auc": 0.99, "note": "earlier run"}
    update_card(model_copy, [earlier], weights_sha256=sha)
    card = update_card(model_copy, rows, weights_sha256=sha)
    assert card["robustness"] == [earlier, rows[0]]
    assert json.loads((model_copy / "model_card.json").read_text())["robustness"] == card["robustness"]
