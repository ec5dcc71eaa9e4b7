"""One analysis path: a scan and an evaluation of the same clip state the same calibrated
P(AI), the same out-of-domain facts and the same verdict, to the last bit (issue 25)."""

import shutil

import numpy as np
import pytest

from musicbrain_cli.audio.intake import load_audio
from musicbrain_cli.audio.encode import encode_audio
from musicbrain_cli.evaluate.split import score_clip
from musicbrain_cli.model.card import update_card
from musicbrain_cli.model.inference import Detector
from musicbrain_cli.model.ood import fit_ood
from musicbrain_cli.scan.batch import ScanOptions, analyse_track
from conftest import make_tone

SR = 22050


@pytest.fixture(scope="module")
def model_with_ood(tiny_model_dir, tmp_path_factory):
    """The tiny model with out-of-domain statistics fitted on its own outputs for tones, and
    thresholds that put a tone in the domain (so both checks run and pass)."""
    d = tmp_path_factory.mktemp("model_ood")
    for p in tiny_model_dir.iterdir():
        shutil.copy2(p, d / p.name)
    det = Detector.from_pretrained(d, device="cpu")
    assert det.ood is None
    fe = det.config.front_end
    waves = np.stack([make_tone(fe.window_s, f0, seed)[: fe.n_samples]
                      for seed, f0 in enumerate((110, 147, 196, 220, 262, 330, 392, 440) * 4)])
    out = det.analyse_windows(waves, batch_size=8)
    stats = fit_ood(out.embeddings, np.arange(len(waves)) % 2, out.profiles, profile_k=2)
    stats.save(d)
    update_card(d, ood={"checks": {"embedding": {"threshold": 1e6},
                                   "spectral_profile": {"threshold": 2.0}}})
    return d


def test_scan_and_evaluate_agree_to_the_last_bit(model_with_ood, tmp_path):
    path = tmp_path / "clip.flac"
    encode_audio(path, make_tone(9.0, 262.0, seed=5), SR)
    detector = Detector.from_pretrained(model_with_ood, device="cpu")
    assert detector.ood is not None            # loaded with the weights, no ood= to thread

    scanned = analyse_track(path, detector, options=ScanOptions(explain_windows=0, batch_size=4)).track
    samples = load_audio(path, sample_rate=detector.config.front_end.sample_rate)
    evaluated, verdict = score_clip(detector, samples, batch_size=4)

    p_scan = scanned["aggregate"]["source/ai"]["mean"]
    p_eval = evaluated.aggregate["source/ai"]["mean"]
    assert p_scan == p_eval and scanned["verdict"]["p_ai"] == p_eval       # bit for bit
    assert scanned["aggregate"] == evaluated.aggregate
    assert scanned["verdict"]["content_label"] == verdict.label
    # every figure of the content line's verdict (threshold, band, window shares...) alike
    mine = {k: v for k, v in verdict.to_dict().items() if k not in ("label", "reasons")}
    assert {k: scanned["verdict"][k] for k in mine} == mine
    assert scanned["timeline"]["p_ai"] == [round(float(p), 6) for p in evaluated.window_probs[:, 1]]
    assert scanned["ood"]["available"] and scanned["ood"]["in_domain"] is True
    # the out-of-domain facts come from the same embeddings and profiles
    from musicbrain_cli.verdict import track_verdict

    assert track_verdict(evaluated, detector)[1] == scanned["ood"]


def test_the_one_stage_serves_windows_and_cached_inputs_alike(model_with_ood):
    """finalize and refit-heads feed cached model inputs to the same forward as a scan."""
    detector = Detector.from_pretrained(model_with_ood, device="cpu")
    fe = detector.config.front_end
    waves = np.stack([make_tone(fe.window_s, f0)[: fe.n_samples] for f0 in (220.0, 330.0)])
    from_waves = detector.analyse_windows(waves, batch_size=2)
    spec = detector.spectrograms(waves)
    from_inputs = detector.forward_inputs(spec)
    for name in ("logits", "probs", "embeddings", "profiles"):
        np.testing.assert_array_equal(getattr(from_waves, name), getattr(from_inputs, name))
    logits = from_inputs.logits.astype(np.float64)
    np.testing.assert_array_equal(from_inputs.probs,
                                  1.0 / (1.0 + np.exp(-logits / detector.temperature)))
    assert from_inputs.probs.dtype == np.float64


def test_evaluate_and_scan_state_the_same_figures_for_a_data_set_clip(model_with_ood, tmp_path):
    """End to end: ``evaluate``'s predictions.csv and a scan of the clip's audio file."""
    import csv

    from musicbrain_cli.evaluate.split import evaluate
    from musicbrain_cli.data.dataset import ClipRecord, Dataset, DatasetWriter

    detector = Detector.from_pretrained(model_with_ood, device="cpu")
    root = tmp_path / "data"
    with DatasetWriter(root, detector.taxonomy, sample_rate=SR, name="agree") as w:
        for i, (source, f0) in enumerate((("human", 196.0), ("ai", 330.0))):
            w.add(ClipRecord(f"clip{i}", source=source, work_id=f"w{i}", split="test"),
                  make_tone(9.0, f0, seed=i))
    dataset = Dataset.load(root)
    evaluate(dataset, detector, tmp_path / "eval", explain_windows=0, n_figures=0,
             batch_size=8)
    with (tmp_path / "eval" / "predictions.csv").open(newline="") as f:
        rows = {r["clip_id"]: r for r in csv.DictReader(f)}
    for row in dataset.split("test"):
        scanned = analyse_track(dataset.audio_path(row), detector,
                                options=ScanOptions(explain_windows=0, batch_size=8)).track
        # predictions.csv writes repr(float): equal strings are equal floats, bit for bit
        assert rows[row["clip_id"]]["source/ai"] == repr(scanned["verdict"]["p_ai"])
        assert rows[row["clip_id"]]["verdict"] == scanned["verdict"]["content_label"]
