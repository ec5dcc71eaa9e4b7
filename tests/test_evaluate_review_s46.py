"""Review of ``musicbrain evaluate`` and the model card (session 46): each test failed on the
code before its fix."""

from __future__ import annotations

import json

import numpy as np
import pytest

SR = 22050


def test_evaluating_the_data_set_a_model_was_finalized_on_says_what_was_chosen_there():
    """A model finalized on a data set other than its network's training data (refit-heads
    with --detection or --add-labels) has its heads, calibration and operating point fitted
    on that data set's train and val splits. Evaluating its val split gave the caution for
    "another data set" only, never that the false-positive rate there meets the target by
    construction; and evaluating the network's own test split gave no caution at all,
    though the card itself says those test works may be among the works the heads were
    re-fitted on."""
    from musicbrain_cli.evaluate.split import training_overlap

    net, fin = "a" * 64, "b" * 64
    for card in ({"training_data": {"manifest_sha256": net},
                  "finalized_on": {"data_set": "/d2", "manifest_sha256": fin}},
                 {"training_data": {"manifest_sha256": net,
                                    "finalized_on_other_data": {"data_set": "/d2",
                                                                "manifest_sha256": fin}}}):
        val = training_overlap("val", fin, card)
        assert val is not None and "operating point" in val and "by construction" in val
        assert "not test figures" in training_overlap("train", fin, card)
        test_of_net = training_overlap("test", net, card)
        assert test_of_net is not None and fin[:16] in test_of_net
        assert training_overlap("test", fin, card) is not None    # the network's other data
    # a model finalized on its own training data: as before
    own = {"training_data": {"manifest_sha256": net}}
    assert training_overlap("test", net, own) is None
    assert "by construction" in training_overlap("val", net, own)


def _tone(seconds, f0, *, sr=SR):
    t = np.arange(int(round(seconds * sr))) / sr
    return sum(0.3 / k * np.sin(2 * np.pi * k * f0 * t) for k in range(1, 5)).astype(np.float32)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A data set of four 3-s clips (two human, two AI works) and a saved tiny model."""
    import torch

    from musicbrain_cli.data.dataset import ClipRecord, Dataset, DatasetWriter
    from musicbrain_cli.features import FrontEndConfig
    from musicbrain_cli.model.checkpoint import save_checkpoint
    from musicbrain_cli.model.config import ModelConfig
    from musicbrain_cli.model.net import build_model
    from musicbrain_cli.taxonomy import Taxonomy

    root = tmp_path_factory.mktemp("s46-data")
    taxonomy = Taxonomy.from_groups([("source", ["human", "ai"], True)])
    with DatasetWriter(root, taxonomy, sample_rate=SR, name="tiny") as w:
        for i, source in enumerate(["human", "ai", "human", "ai"]):
            w.add(ClipRecord(f"c{i}", source=source, work_id=f"w{i}", split="test"),
                  _tone(3.0, 220.0 * (1 + 0.1 * i)))
    config = ModelConfig(front_end=FrontEndConfig(n_bins=64, window_s=2.56, hop_s=1.28),
                         taxonomy=taxonomy)
    torch.manual_seed(0)
    model_dir = tmp_path_factory.mktemp("s46-model") / "m"
    save_checkpoint(model_dir, build_model(config), config, model_card={"name": "tiny"})
    return Dataset.load(root), model_dir


def _quick_evaluate(dataset, model_dir, out, **kw):
    from musicbrain_cli.evaluate.split import evaluate
    from musicbrain_cli.model.inference import Detector

    detector = Detector.from_pretrained(model_dir, device="cpu")
    return evaluate(dataset, detector, out, explain_windows=0, n_figures=0, event_clips=0, **kw)


def test_metrics_name_the_model_card_and_the_software_they_were_measured_with(tiny, tmp_path):
    """metrics.json named the weights only: the calibration temperature, the operating point,
    its band and the domain thresholds live in the card, which no pin covers, and decide every
    probability and verdict the file states; two evaluations of one model re-finalized in
    between could not be told apart, nor the MusicBrain version that computed them."""
    import shutil

    from musicbrain_cli import __version__
    from musicbrain_cli.files import sha256_file

    dataset, model_dir = tiny
    mine = tmp_path / "m"
    shutil.copytree(model_dir, mine)
    first = _quick_evaluate(dataset, mine, tmp_path / "a")
    card_path = mine / "model_card.json"
    assert first["model"]["card_sha256"] == sha256_file(card_path)
    assert first["software"]["musicbrain"] == __version__
    card = json.loads(card_path.read_text())
    card["calibration"]["temperature"] = 3.0              # same weights, another card
    card_path.write_text(json.dumps(card))
    second = _quick_evaluate(dataset, mine, tmp_path / "b")
    assert second["model"]["weights_sha256"] == first["model"]["weights_sha256"]
    assert second["model"]["card_sha256"] == sha256_file(card_path) != first["model"]["card_sha256"]
    assert second["model"]["card_sha256"] in (tmp_path / "b" / "metrics.md").read_text()


def test_robustness_json_names_the_data_set_and_the_card_it_was_measured_with(tiny, tmp_path):
    """robustness.json named the weights and, per row, a split name only: the data set the
    rows were measured on was recorded only when they were stored in a card (--update-card),
    and the card that set their operating point (which decides "ai on human") never."""
    from click.testing import CliRunner

    from musicbrain_cli.cli import main
    from musicbrain_cli.files import sha256_file

    dataset, model_dir = tiny
    out = tmp_path / "rob"
    res = CliRunner().invoke(main, ["evaluate", "--data", str(dataset.root), "--model",
                                    str(model_dir), "-o", str(out), "--robustness",
                                    "--transforms", "original", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    record = json.loads((out / "robustness.json").read_text())
    manifest = sha256_file(dataset.root / "manifest.csv")
    assert record["measured_on"]["manifest_sha256"] == manifest
    assert record["model"]["card_sha256"] == sha256_file(model_dir / "model_card.json")
    text = (out / "robustness.md").read_text()
    assert manifest in text and record["model"]["card_sha256"] in text


def test_evaluate_never_deletes_files_it_would_replace_unless_asked(tiny, tmp_path):
    """Only metrics.json was checked before a run; a finished run then replaced every output
    name in OUT, so without --overwrite a metrics.md, a predictions.csv or a whole fmgcam/
    folder already there (a user's, or left beside a removed metrics.json) was deleted."""
    from musicbrain_cli.errors import InputError

    dataset, model_dir = tiny
    out = tmp_path / "out"
    (out / "fmgcam").mkdir(parents=True)
    (out / "fmgcam" / "mine.png").write_bytes(b"not a run's figure")
    (out / "metrics.md").write_text("my notes\n")
    with pytest.raises(InputError, match="exists"):
        _quick_evaluate(dataset, model_dir, out)
    assert (out / "metrics.md").read_text() == "my notes\n"
    assert (out / "fmgcam" / "mine.png").read_bytes() == b"not a run's figure"
    assert not (out / "metrics.json").exists()
    m = _quick_evaluate(dataset, model_dir, out, overwrite=True)        # asked: replaced
    assert m["clips_scored"] == 4 and not (out / "fmgcam").exists()
    assert (out / "metrics.md").read_text().startswith("# Evaluation")


def _two_tone_dataset(folder, n: int, *, n_train: int) -> None:
    """``n`` 2-s clips, human (660 Hz) and AI (440 Hz) in turn, each its own work: the first
    ``n_train`` in train, the rest in val (no test split)."""
    from musicbrain_cli.data.dataset import ClipRecord, DatasetWriter
    from musicbrain_cli.taxonomy import Taxonomy

    sr = 6400
    rng = np.random.default_rng(0)
    t = np.arange(2 * sr) / sr
    with DatasetWriter(folder, Taxonomy.from_groups([("source", ["human", "ai"], True)]),
                       sample_rate=sr, audio_format="wav") as w:
        for i in range(n):
            ai = i % 2
            y = 0.3 * np.sin(2 * np.pi * (440 if ai else 660) * t) + 0.01 * rng.normal(size=t.size)
            w.add(ClipRecord(clip_id=f"c{i:02d}", source="ai" if ai else "human", work_id=f"w{i}",
                             split="train" if i < n_train else "val"), y.astype(np.float32))


@pytest.fixture(scope="module")
def no_test_split_card(tmp_path_factory):
    """The card of a tiny model finalized on a data set with train and val splits only (4 of
    its 12 clips in val, 2 of them human)."""
    from conftest import train_tiny

    tmp_path = tmp_path_factory.mktemp("no-test-split")
    _two_tone_dataset(tmp_path / "ds", 12, n_train=8)
    card = json.loads((train_tiny(tmp_path / "ds", tmp_path) / "model_card.json").read_text())
    return card


def test_a_card_without_a_held_out_split_says_its_rates_are_those_the_threshold_was_chosen_on(
        no_test_split_card):
    """finalize quotes the test split's rates as the card's error_rates and, on a data set
    with no test split, the val split's: the very clips the operating point (and the domain
    thresholds) were chosen on, whose false-positive rate meets the 0.5 % target by
    construction. A report then stated them as the model's false positives ("labelled 0.0 %
    of the 4 human-made clips of the 'val' split as AI-generated") with nothing saying they
    are no independent measurement."""
    from musicbrain_cli.report.html import error_rate_sentences

    card = no_test_split_card
    rates = card["error_rates"]
    assert rates["split"] == "val" == card["verdict"]["threshold_chosen_on"]
    text = " ".join(error_rate_sentences(rates, card["thresholds"]["detection"]))
    assert "operating point was chosen on" in text and "by construction" in text
    # a card with a held-out split says nothing of the kind
    held_out = {**rates, "split": "test"}
    held_out.pop("chosen_on_these_clips", None)
    assert "by construction" not in " ".join(error_rate_sentences(held_out, 0.5))


@pytest.mark.parametrize("verdict", [{"band": 0.7}, {"disagreement": 0.0}, {"band": "0.1"},
                                     {"min_windows_for_disagreement": "3"}, ["band", 0.1]])
def test_a_card_whose_verdict_policy_is_no_policy_is_refused_when_the_model_loads(
        tiny, tmp_path, verdict):
    """The card's verdict section (band, disagreement, windows) was never checked: a card
    with band 0.7, or a band written as a string, loaded, and a scan then failed every file
    as "internal error while analysing this file (ValueError: ...); please report it"."""
    import shutil

    from musicbrain_cli.errors import ModelLoadError
    from musicbrain_cli.model.card import read_card
    from musicbrain_cli.model.inference import Detector

    _, model_dir = tiny
    mine = tmp_path / "m"
    shutil.copytree(model_dir, mine)
    card = json.loads((mine / "model_card.json").read_text())
    card["verdict"] = verdict
    (mine / "model_card.json").write_text(json.dumps(card))
    with pytest.raises(ModelLoadError, match="verdict"):
        read_card(mine)
    with pytest.raises(ModelLoadError, match="verdict"):
        Detector.from_pretrained(mine, device="cpu")
    card["verdict"] = {"band": 0.2, "disagreement": 0.5, "min_windows_for_disagreement": 2}
    (mine / "model_card.json").write_text(json.dumps(card))
    assert Detector.from_pretrained(mine, device="cpu").card["verdict"]["band"] == 0.2


@pytest.mark.parametrize("threshold", ["null", "Infinity", "NaN", "\"far\""])
def test_a_domain_check_without_a_finite_threshold_is_refused_when_the_model_loads(
        tiny, tmp_path, threshold):
    """The card's domain thresholds were read per track: null or a word failed every file of
    a scan as an internal error, and Infinity (which Python's JSON reader takes) passed every
    track as in domain: the check that keeps out-of-domain music from being accused was off
    without a word."""
    import shutil

    from musicbrain_cli.errors import ModelLoadError
    from musicbrain_cli.model.inference import Detector
    from musicbrain_cli.model.ood import fit_ood

    _, model_dir = tiny
    mine = tmp_path / "m"
    shutil.copytree(model_dir, mine)
    dim = Detector.from_pretrained(mine, device="cpu").model.embed_dim
    rng = np.random.default_rng(0)
    fit_ood(rng.normal(size=(40, dim)), rng.integers(0, 2, 40)).save(mine)
    card = json.loads((mine / "model_card.json").read_text())
    card["ood"] = {"checks": {"embedding": {"threshold": "THRESHOLD"}}}
    text = json.dumps(card)
    (mine / "model_card.json").write_text(text.replace('"THRESHOLD"', threshold))
    with pytest.raises(ModelLoadError, match="threshold"):
        Detector.from_pretrained(mine, device="cpu")
    (mine / "model_card.json").write_text(text.replace('"THRESHOLD"', "3.5"))
    assert Detector.from_pretrained(mine, device="cpu").ood is not None


def test_the_card_records_the_sample_its_domain_statistics_were_fitted_on(tmp_path):
    """finalize fits the domain statistics on a seeded random sample of at most
    max_fit_windows training windows (4000: the shipped corpus has more), but the card
    recorded neither the cap nor the seed: its domain thresholds and statistics could not be
    fitted again from what it says."""
    import shutil

    from conftest import train_tiny

    from musicbrain_cli.training.finalize import finalize_model

    _two_tone_dataset(tmp_path / "ds", 16, n_train=12)
    model = train_tiny(tmp_path / "ds", tmp_path)
    again = tmp_path / "again"
    shutil.copytree(model, again)
    card = finalize_model(model, tmp_path / "ds", max_fit_windows=7, seed=3, pitch_semitones=())
    record = card["ood"]["fit_windows"]
    assert record["used"] == 7 and record["of"] > 7
    # what the card records fits the same statistics again
    redo = finalize_model(again, tmp_path / "ds", max_fit_windows=record["max"],
                          seed=record["seed"], pitch_semitones=())
    assert redo["ood"]["statistics_sha256"] == card["ood"]["statistics_sha256"]


def test_evaluating_a_model_that_was_never_finalized_says_its_verdicts_are_no_scans(tiny,
                                                                                    tmp_path):
    """A model exported by training and stopped before finalize has no operating point, band
    or domain check of its own, and a scan refuses it; evaluate still counted its verdicts,
    under default ones, as "the content line's verdicts by the model card's full rule", with
    nothing to say so."""
    import shutil

    dataset, model_dir = tiny
    mine = tmp_path / "m"
    shutil.copytree(model_dir, mine)
    card = json.loads((mine / "model_card.json").read_text())
    card["training"] = {"epochs": 1}                     # exported, never finalized
    (mine / "model_card.json").write_text(json.dumps(card))
    m = _quick_evaluate(dataset, mine, tmp_path / "out")
    assert m["detection"]["verdicts"]                    # still measured
    assert m["caution"] and "never finalized" in m["caution"]
    assert "never finalized" in (tmp_path / "out" / "metrics.md").read_text()
    ok = _quick_evaluate(dataset, model_dir, tmp_path / "ok")   # a card without a training
    assert ok["caution"] is None                                # record is not judged


def test_reports_name_as_measured_only_the_generator_families_the_error_rates_counted():
    """A scan report says the content model's miss rates "were measured on AI music from
    the generator families ..." and lists every family the model had training examples of,
    assuming each has clips in the test split too; splits are by work, so a family with
    training works may have none there, and the card's own per-family counts
    (error_rates.by_generator, from finalize) then lack it: the report claimed a miss rate
    measured on a family it was never measured on."""
    from types import SimpleNamespace

    from musicbrain_cli.report.html import measured_on_sentence
    from musicbrain_cli.scan.batch import measured_generators
    from musicbrain_cli.taxonomy import Taxonomy

    taxonomy = Taxonomy.from_groups([("source", ["human", "ai"], True),
                                     ("generator", ["codec", "symbolic"], True)])
    rates = {"split": "test", "fnr": 0.1, "n_ai": 20,
             "by_generator": {"codec": {"n_ai": 20, "fnr": 0.1, "fnr_ci95": [0.03, 0.3]}}}
    card = {"training_data": {"labels_untrained": []}, "error_rates": rates}
    found = measured_generators(SimpleNamespace(taxonomy=taxonomy, card=card))
    assert found == ["codec"]
    assert "'symbolic'" not in measured_on_sentence(found)
    # a card that predates the per-family counts: the trained families, as before
    old = {"training_data": {"labels_untrained": []}, "error_rates": {"split": "test"}}
    assert measured_generators(SimpleNamespace(taxonomy=taxonomy, card=old)) == ["codec",
                                                                                "symbolic"]


def test_a_target_the_validation_clips_are_too_few_for_is_said_to_be_so(no_test_split_card):
    """finalize chooses the boundary for "at most 0.5 % of human validation clips accused";
    with fewer than 200 human clips that can only mean none of them is, which bounds the
    false-positive rate far above 0.5 % (2 clips: 66 %). The card did not record how many
    human clips the target was applied to, and training's summary said "FPR target 0.5 %"
    as if the model had been held to it."""
    from musicbrain_cli.training.finalize import summary_lines

    card = no_test_split_card
    assert card["verdict"]["validation_humans"] == 2
    text = "\n".join(summary_lines(card))
    assert "too few" in text and "none of them" in text
    # enough clips: no such warning
    big = {**card, "verdict": {**card["verdict"], "validation_humans": 575}}
    assert "too few" not in "\n".join(summary_lines(big))
