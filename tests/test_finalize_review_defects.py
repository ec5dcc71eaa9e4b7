"""Defects found by the review of training/finalize.py, heads.py and state.py (one test each)."""

import json

import numpy as np
import pytest

from musicbrain_cli.training.finalize import (_Clips, choose_threshold, operating_policy,
                                              verdict_rates)
from musicbrain_cli.verdict import AI, decide

from conftest import train_tiny

SR = 6400


@pytest.mark.parametrize("band, cut", [(0.2, 0.7531313072512682), (0.495, 0.994)])
def test_the_human_clip_the_boundary_was_set_above_is_never_accused(band, cut):
    """choose_threshold puts the `ai` boundary one ulp above the highest human clip it must
    exclude; operating_policy stored it as threshold = boundary - band, and decide() begins
    `ai` at threshold + band, which rounding put back on that clip (band 0.2: 45 % of
    boundaries), and a band over 0.49 was narrowed without raising the threshold: the human
    clip was accused and the validation FPR exceeded the target it was chosen for."""
    human = np.array([0.1, 0.3, cut])
    boundary = choose_threshold(human, np.zeros(3, bool), fpr_target=0.005)
    assert boundary > cut
    policy = operating_policy(boundary, band)
    assert decide(cut, [cut], policy=policy).label != AI
    clips = _Clips(ids=["a", "b", "c"], p_ai=human, window_p_ai=[np.array([p]) for p in human],
                   probs=np.zeros((3, 2)), targets=np.zeros((3, 2)), mask=np.ones((3, 2)),
                   embeddings=np.zeros((3, 1)))
    assert verdict_rates(clips, np.zeros(3, bool), policy=policy, split="val")["fpr"] == 0.0
    # the band kept (or narrowed) still ends where the FPR target needs `ai` to begin
    assert policy.threshold + policy.band >= boundary


def _write(root, clips):
    from musicbrain_cli.data.dataset import ClipRecord, DatasetWriter
    from musicbrain_cli.taxonomy import Taxonomy

    taxonomy = Taxonomy.from_groups([("source", ["human", "ai"], True),
                                     ("instrumentation", ["Keyboard", "Chamber"], True)])
    rng = np.random.default_rng(7)
    t = np.arange(2 * SR) / SR
    with DatasetWriter(root, taxonomy, sample_rate=SR, audio_format="wav") as w:
        for i, (split, source) in enumerate(clips):
            ai = source == "ai"
            y = 0.05 * np.sin(2 * np.pi * (440 if ai else 660) * t) + 0.3 * rng.normal(size=t.size)
            w.add(ClipRecord(clip_id=f"c{i:02d}", source=source,
                             instrumentation="Keyboard" if i % 3 else "Chamber",
                             work_id=f"w{i}", split=split), y.astype(np.float32))
    return root


def test_clips_of_unknown_source_are_not_counted_as_human(tmp_path, monkeypatch):
    """A clip whose source cell is '' (unknown: masked) has target 0 in ``source/ai``:
    finalize counted it as a human clip, both in the pool the FPR-target boundary is chosen
    on (more 'human' clips allow more accusations of the real ones) and in every FPR, FNR and
    count of the card."""
    import musicbrain_cli.training.finalize as fin

    clips = ([("train", "ai" if i % 2 else "human") for i in range(24)]
             + [("val", "ai" if i % 2 else "human") for i in range(12)]
             + [("val", "") for _ in range(4)]
             + [("test", "ai" if i % 2 else "human") for i in range(8)]
             + [("test", "") for _ in range(3)])
    data = _write(tmp_path / "ds", clips)
    model_dir = train_tiny(data, tmp_path)

    seen = {}
    real = fin.robust_boundary

    def spy(versions, is_ai, **kwargs):
        seen["n"] = {name: len(p) for name, p in versions.items()}
        seen["n_is_ai"], seen["n_human"] = len(is_ai), int((~is_ai).sum())
        return real(versions, is_ai, **kwargs)

    monkeypatch.setattr(fin, "robust_boundary", spy)
    card = fin.finalize_model(model_dir, data, pitch_semitones=(1.0,))
    assert seen["n_is_ai"] == 12 and seen["n_human"] == 6
    assert set(seen["n"].values()) == {12}
    ev = card["evaluation"]
    assert (ev["val"]["n_human"], ev["val"]["n_ai"]) == (6, 6)
    assert (ev["test"]["n_human"], ev["test"]["n_ai"]) == (4, 4)
    written = json.loads((model_dir / "model_card.json").read_text())
    assert written["error_rates"]["n_human"] == 4


def test_the_card_names_its_domain_statistics_and_a_model_with_others_does_not_load(tmp_path):
    """finalize writes ood.safetensors before the card: a crash between the two left new
    statistics beside the old card's thresholds and rates, and the model loaded (review).
    The card now names the statistics by SHA-256 and loading checks it."""
    from musicbrain_cli.errors import ModelLoadError
    from musicbrain_cli.files import sha256_file
    from musicbrain_cli.model.inference import Detector

    clips = ([("train", "ai" if i % 2 else "human") for i in range(16)]
             + [("val", "ai" if i % 2 else "human") for i in range(8)]
             + [("test", "ai" if i % 2 else "human") for i in range(6)])
    model_dir = train_tiny(_write(tmp_path / "ds", clips), tmp_path)
    card = json.loads((model_dir / "model_card.json").read_text())
    assert card["ood"]["statistics_sha256"] == sha256_file(model_dir / "ood.safetensors")
    Detector.from_pretrained(model_dir, device="cpu")
    card["ood"]["statistics_sha256"] = "0" * 64      # the statistics of another finalize
    (model_dir / "model_card.json").write_text(json.dumps(card))
    with pytest.raises(ModelLoadError, match="the model card names"):
        Detector.from_pretrained(model_dir, device="cpu")


def test_a_refinalize_that_changes_the_verdict_rule_drops_the_robustness_rows(tmp_path):
    """Robustness rows count verdicts under the rule they were measured with. update_card
    dropped stored rows only when the detection threshold moved, and finalize never looked
    at them: a re-finalize with another band or domain quantile kept rows whose 'ai on
    human' no scan under the new rule would give, and every report quoted them (session 36
    finding). A re-finalize that leaves the rule as it was keeps them."""
    import musicbrain_cli.training.finalize as fin
    from musicbrain_cli.evaluate.robustness import update_card

    clips = ([("train", "ai" if i % 2 else "human") for i in range(16)]
             + [("val", "ai" if i % 2 else "human") for i in range(8)]
             + [("test", "ai" if i % 2 else "human") for i in range(6)])
    data = _write(tmp_path / "ds", clips)
    model_dir = train_tiny(data, tmp_path)
    card = json.loads((model_dir / "model_card.json").read_text())
    threshold = card["thresholds"]["detection"]
    row = {"transform": "Original", "key": "original", "split": "test", "n_human": 3, "n_ai": 3,
           "threshold": threshold, "ai_verdicts_on_human": 0.0}
    update_card(model_dir, [row])
    # the same data and settings: the rule is the same, the rows stay
    again = fin.finalize_model(model_dir, data)
    first_rule = {k: again.get(k) for k in ("thresholds", "verdict", "ood", "calibration")}
    assert [r["key"] for r in again.get("robustness", [])] == ["original"]
    # another domain quantile: the same threshold, another rule
    changed = fin.finalize_model(model_dir, data, ood_quantile=0.5)
    assert changed["thresholds"]["detection"] == threshold
    assert {k: changed.get(k) for k in ("thresholds", "verdict", "ood", "calibration")} != first_rule
    assert "robustness" not in changed
    assert "robustness" not in json.loads((model_dir / "model_card.json").read_text())


def test_a_clip_without_a_finite_probability_stops_the_operating_point():
    """Review of finalize: np.sort puts NaN last, where choose_threshold reads the human
    clip the threshold is set above; with a NaN there the threshold fell silently to 0.5,
    accusing every human clip from 0.6 (and a pitch-shifted version's NaN voided its
    check, the highest version's threshold being kept)."""
    from musicbrain_cli.errors import DatasetError

    p = np.array([0.1, 0.95, 0.97, np.nan, 0.99])
    is_ai = np.array([False, False, False, False, True])
    with pytest.raises(DatasetError, match="1 of 5 clips"):
        choose_threshold(p, is_ai, fpr_target=0.005)
    with pytest.raises(DatasetError):
        choose_threshold(np.array([0.2, np.inf]), np.array([False, False]), fpr_target=0.005)


def test_the_card_records_the_bands_the_spectral_profile_has():
    """Review of finalize: the card recorded 64 bands (PROFILE_BANDS) for the
    spectral-profile check whatever the front end, where a map of fewer bins gives one band
    per bin (a 32-bin model's card said 64)."""
    from musicbrain_cli.model.ood import fit_ood, spectral_profile
    from musicbrain_cli.training.finalize import _ood_record

    rng = np.random.default_rng(0)
    profiles = spectral_profile(rng.uniform(-1, 1, (6, 32, 20)))
    stats = fit_ood(rng.normal(size=(6, 3)), np.arange(6) % 2, profiles, profile_k=2)
    record = _ood_record({"embedding": 1.0, "spectral_profile": 0.1}, stats, 0.99)
    assert record["checks"]["spectral_profile"]["bands"] == 32
