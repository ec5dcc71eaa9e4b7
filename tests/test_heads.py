"""Re-fitting the style heads on frozen embeddings (training/heads.py, `musicbrain refit-heads`).

A tiny data set with a source group and a period group (each period adds its own partial),
a 1-epoch model trained through the CLI, then the heads re-fitted through the CLI.
"""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from musicbrain_cli.cli import main
from musicbrain_cli.errors import InputError

from conftest import train_tiny

SR = 6400


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from musicbrain_cli.taxonomy import Taxonomy
    from musicbrain_cli.data.dataset import ClipRecord, DatasetWriter

    root = tmp_path_factory.mktemp("heads")
    tax = Taxonomy.from_groups([("source", ["human", "ai"], True),
                                ("period", ["Baroque", "Romantic", "Classical"], True)])
    rng = np.random.default_rng(0)
    t = np.arange(2 * SR) / SR
    with DatasetWriter(root / "ds", tax, sample_rate=SR, audio_format="wav") as w:
        for i in range(32):
            ai, romantic = i % 2, (i // 2) % 2
            y = (0.3 * np.sin(2 * np.pi * (440 if ai else 660) * t)
                 + 0.2 * np.sin(2 * np.pi * (1900 if romantic else 1300) * t)
                 + 0.02 * rng.normal(size=t.size))
            # no clip is Classical: that label cannot be fitted
            period = "Romantic" if romantic else "Baroque"
            w.add(ClipRecord(clip_id=f"c{i:02d}", source="ai" if ai else "human",
                             period=period, work_id=f"w{i}",
                             split="train" if i < 20 else "val"), y.astype(np.float32))
    train_tiny(root / "ds", root)
    out = root / "refit"
    refit = CliRunner().invoke(main, ["refit-heads", "--data", str(root / "ds"), "--model",
                                      str(root / "run" / "model"), "-o", str(out)])
    assert refit.exit_code == 0, refit.output
    return root, root / "run" / "model", out, refit.output


def card(model_dir):
    return json.loads((model_dir / "model_card.json").read_text())


def cached_windows(dataset, config):
    """The data set's feature cache for ``config``, its windows per split, and every window's
    model input as one tensor."""
    from musicbrain_cli.data.cache import CachedWindows, default_cache_dir
    from musicbrain_cli.training.finalize import split_windows

    cache = CachedWindows(default_cache_dir(dataset, config.front_end))
    x = torch.from_numpy(np.stack([cache.features(i) for i in range(len(cache.clip_ids))]))
    return cache, split_windows(cache, dataset, "test"), x


def test_only_the_style_rows_change(trained):
    _, before, after, output = trained
    assert "style heads re-fitted: 2 labels" in output and "ROC-AUC" in output
    old = load_file(str(before / "model.safetensors"))
    new = load_file(str(after / "model.safetensors"))
    assert old.keys() == new.keys()
    changed = {k for k in old if not torch.equal(old[k], new[k])}
    assert changed == {"heads.period.weight", "heads.period.bias"}
    # the detection the report relies on is the input model's: same operating point and
    # out-of-domain statistics, re-measured by finalize on the new weights
    assert card(after)["thresholds"]["detection"] == card(before)["thresholds"]["detection"]
    assert card(after)["verdict"] == card(before)["verdict"]
    assert (after / "ood.safetensors").read_bytes() == (before / "ood.safetensors").read_bytes()


def test_the_heads_are_the_regression_and_beat_the_input_on_validation(trained):
    """The stored rows give exactly the probabilities of an independently fitted
    scikit-learn regression with the recorded C, through the model's own temperature."""
    from sklearn.linear_model import LogisticRegression

    from musicbrain_cli.model.checkpoint import load_checkpoint

    root, _, after, _ = trained
    model, config, c = load_checkpoint(after)
    record = c["training"]["head_refit"]
    assert record["val_style_map_by_c"][str(record["c"])] > record["val_style_map_before"]
    assert record["from_weights_sha256"] == card(trained[1])["weights_sha256"]
    assert "robustness" not in c

    cache, by_split, x = cached_windows(root / "ds", config)
    with torch.no_grad():
        fused = model.forward_features(x.float())
        emb = model.pool(fused).double().numpy()
        logits = model.forward_head(fused).double().numpy()
    temperature = c["calibration"]["temperature"]
    j = config.taxonomy.index("period/Romantic")
    train = np.asarray(by_split["train"])
    y = cache.targets[train, j] > 0.5
    mean, std = emb[train].mean(axis=0), emb[train].std(axis=0)
    clf = LogisticRegression(C=record["c"], max_iter=5000).fit((emb[train] - mean) / std, y)
    expected = clf.predict_proba((emb - mean) / std)[:, 1]
    got = 1.0 / (1.0 + np.exp(-logits[:, j] / temperature))
    np.testing.assert_allclose(got, expected, atol=1e-4)

    # the card's validation metrics are the new model's, not the input's: the AI/human head is
    # untouched, so its AP is the same; the style label's AP is that of the new logits
    from sklearn.metrics import average_precision_score

    old = card(trained[1])["metrics"]
    val = np.asarray(by_split["val"])
    assert c["metrics"]["val_windows"] == len(val) == old["val_windows"]
    assert c["metrics"]["ap"]["source/ai"] == pytest.approx(old["ap"]["source/ai"], abs=1e-6)
    ap = average_precision_score(cache.targets[val, j] > 0.5, logits[val, j])
    assert c["metrics"]["ap"]["period/Romantic"] == pytest.approx(ap, abs=1e-6)
    assert c["metrics"]["ap"]["period/Romantic"] != old["ap"]["period/Romantic"]
    assert record["val_map_macro_before"] == old["map_macro"]


def test_every_finalized_card_names_the_labels_training_never_showed(trained):
    """No training clip is Classical. Finalize records it as untrained on the model
    `musicbrain train` wrote, and again after a re-fit that keeps the head input (where
    its row is kept as trained, not made a constant), so a scan never offers it."""
    from musicbrain_cli.scan.batch import untrained_labels

    root, before, after, _ = trained
    for model_dir in (before, after):
        data = card(model_dir)["training_data"]
        assert data["labels_untrained"] == ["period/Classical"]
        support = data["train_label_windows"]
        assert support["period/Classical"] == {"positive": 0, "known": 40}  # 2 windows a clip
        assert support["period/Baroque"]["positive"] + support["period/Romantic"]["positive"] == 40
        assert untrained_labels(card(model_dir)) == {"period/Classical"}
    assert card(after)["training"]["head_refit"]["labels_constant"] == []
    # the card names the data the heads were fitted on (a refit on another data set kept
    # only the first training's name)
    assert card(after)["training"]["head_refit"]["data_set"] == str((root / "ds").resolve())


def test_finalized_card_counts_human_and_ai_windows_per_style(trained):
    """Every clip of the tiny set has a period: half the training windows are AI, and each
    period is held by both sides, so nothing is flagged; the counts add up."""
    balance = card(trained[2])["training_data"]["train_source_balance"]
    assert set(balance) == {"period/Baroque", "period/Romantic", "period/Classical"}
    assert balance["period/Classical"] == {"human": 0, "ai": 0, "flag": None}
    n = sum(b["human"] + b["ai"] for b in balance.values())
    assert n == 40 and all(b["flag"] is None for b in balance.values())   # 20 clips x 2 windows


def test_refuses_a_non_empty_output(trained, tmp_path):
    from musicbrain_cli.training.heads import refit_style_heads

    root, before, _, _ = trained
    (tmp_path / "keep.txt").write_text("x")
    with pytest.raises(InputError, match="not empty"):
        refit_style_heads(before, root / "ds", tmp_path)
    with pytest.raises(InputError, match="positive"):
        refit_style_heads(before, root / "ds", tmp_path / "new", c_grid=(0.0,))


@pytest.fixture(scope="module")
def banded(trained):
    root, before, _, _ = trained
    out = root / "banded"
    run = CliRunner().invoke(main, ["refit-heads", "--data", str(root / "ds"), "--model",
                                    str(before), "--style-bands", "2", "-o", str(out)])
    assert run.exit_code == 0, run.output
    assert "style bands 2" in run.output
    return out


def test_band_pooled_heads_keep_detection_and_read_the_bands(trained, banded):
    """--style-bands: the style heads are new rows over [C * bands] features, fitted as the
    regression on the standardised band features; every other weight, the operating point and
    the out-of-domain statistics are the input model's."""
    from sklearn.linear_model import LogisticRegression

    from musicbrain_cli.model.checkpoint import load_checkpoint

    root, before, _, _ = trained
    old = load_file(str(before / "model.safetensors"))
    new = load_file(str(banded / "model.safetensors"))
    assert set(new) - set(old) == {"style_norm.weight", "style_norm.bias"}
    assert set(old) == set(new) - {"style_norm.weight", "style_norm.bias"}
    assert {k for k in old if old[k].shape == new[k].shape and torch.equal(old[k], new[k])} \
        == set(old) - {"heads.period.weight", "heads.period.bias"}
    assert new["heads.period.weight"].shape[1] == 2 * old["heads.period.weight"].shape[1]
    assert card(banded)["thresholds"]["detection"] == card(before)["thresholds"]["detection"]
    assert card(banded)["verdict"] == card(before)["verdict"]
    record = card(banded)["training"]["head_refit"]
    assert (record["style_bands"], record["from_style_bands"]) == (2, 0)
    # the unfittable label is a constant, and the score C was chosen on is the written
    # model's own (finalize re-measures it on the same validation clips)
    assert record["labels_constant"] == ["period/Classical"]
    assert record["val_style_map_by_c"][str(record["c"])] == pytest.approx(
        card(banded)["evaluation"]["val"]["style_map_macro"], abs=1e-5)

    model, config, c = load_checkpoint(banded)
    assert config.style_bands == 2 and model.style_dim == 2 * model.embed_dim
    cache, by_split, x = cached_windows(root / "ds", config)
    old_model, _, _ = load_checkpoint(before)
    with torch.no_grad():
        fused = model.forward_features(x.float())
        bands = torch.nn.functional.adaptive_avg_pool2d(fused, (2, 1)).flatten(1)
        feats = torch.nn.functional.layer_norm(bands, bands.shape[1:]).double().numpy()
        logits = model.forward_head(fused).double().numpy()
        old_logits = old_model(x.float()).double().numpy()
    det = config.taxonomy.index("source/ai")
    np.testing.assert_array_equal(logits[:, det], old_logits[:, det])

    j = config.taxonomy.index("period/Romantic")
    train = np.asarray(by_split["train"])
    mean, std = feats[train].mean(axis=0), feats[train].std(axis=0)
    std = np.where(std > 0, std, 1.0)
    clf = LogisticRegression(C=record["c"], max_iter=5000).fit(
        (feats[train] - mean) / std, cache.targets[train, j] > 0.5)
    got = 1.0 / (1.0 + np.exp(-logits[:, j] / c["calibration"]["temperature"]))
    np.testing.assert_allclose(got, clf.predict_proba((feats - mean) / std)[:, 1], atol=1e-4)
    k = config.taxonomy.index("period/Classical")
    np.testing.assert_allclose(1.0 / (1.0 + np.exp(-logits[:, k] / c["calibration"]["temperature"])),
                               0.5 / (len(train) + 1.0), rtol=1e-5)

    # FM-G-CAM still explains a style label through the band-pooled head: the map is not flat
    from musicbrain_cli.explain.base import LabelTarget
    from musicbrain_cli.explain.fmgcam import FMGradCAM

    with FMGradCAM(model) as cam:
        maps = cam(x[:1].float(), targets=[LabelTarget(j)]).maps
    assert maps.shape[-2:] == x.shape[-2:] and float(maps.max() - maps.min()) > 0


def test_band_pooled_model_goes_back_to_the_global_embedding(trained, banded):
    """Carrying a band-pooled model back to style_bands=0 rebuilds the style heads at the
    global width (no shape clash) and copies everything else."""
    from musicbrain_cli.model.checkpoint import load_checkpoint
    from musicbrain_cli.training.heads import _with_bands

    model, config, _ = load_checkpoint(banded)
    back, back_config = _with_bands(model, config, 0)
    assert back_config.style_bands == 0 and not hasattr(back, "style_norm")
    assert back.heads["period"].in_features == back.embed_dim
    old, new = model.state_dict(), back.state_dict()
    assert {k for k in new if k in old and torch.equal(new[k], old[k])} \
        == set(new) - {"heads.period.weight", "heads.period.bias"}


def test_band_refit_refuses_bad_band_counts(trained, tmp_path):
    from musicbrain_cli.training.heads import refit_style_heads

    root, before, _, _ = trained
    with pytest.raises(InputError, match="style_bands"):
        refit_style_heads(before, root / "ds", tmp_path / "x", style_bands=65)
    run = CliRunner().invoke(main, ["refit-heads", "--data", str(root / "ds"), "--model",
                                    str(before), "--style-bands", "-1", "-o", str(tmp_path / "y")])
    assert run.exit_code != 0 and "style-bands" in run.output


@pytest.fixture(scope="module")
def grown(trained):
    """The model of `trained`, its style heads re-fitted with --add-labels on a data set that
    adds a period label it lacks (Folk, with its own partial)."""
    from musicbrain_cli.taxonomy import Taxonomy
    from musicbrain_cli.data.dataset import ClipRecord, DatasetWriter

    root, before, _, _ = trained
    tax = Taxonomy.from_groups([("source", ["human", "ai"], True),
                                ("period", ["Baroque", "Romantic", "Classical", "Folk"], True)])
    rng = np.random.default_rng(1)
    t = np.arange(2 * SR) / SR
    partial = {"Baroque": 1300, "Romantic": 1900, "Folk": 2600}
    with DatasetWriter(root / "grown", tax, sample_rate=SR, audio_format="wav") as w:
        for i in range(42):
            ai, period = i % 2, ("Baroque", "Romantic", "Folk")[(i // 2) % 3]
            y = (0.3 * np.sin(2 * np.pi * (440 if ai else 660) * t)
                 + 0.2 * np.sin(2 * np.pi * partial[period] * t)
                 + 0.02 * rng.normal(size=t.size))
            w.add(ClipRecord(clip_id=f"g{i:02d}", source="ai" if ai else "human",
                             period=period, work_id=f"gw{i}",
                             split="train" if i < 30 else "val"), y.astype(np.float32))
    plain = CliRunner().invoke(main, ["refit-heads", "--data", str(root / "grown"), "--model",
                                      str(before), "-o", str(root / "not-grown")])
    out = root / "grown-model"
    run = CliRunner().invoke(main, ["refit-heads", "--data", str(root / "grown"), "--model",
                                    str(before), "--add-labels", "-o", str(out)])
    assert run.exit_code == 0, run.output
    return root, before, out, run.output, plain


def test_added_labels_get_fitted_rows_and_nothing_else_moves(grown):
    """--add-labels: the data set's new style label gets its own row, fitted as the regression
    on the frozen embedding; the backbone and the AI/human head are the input model's bit for
    bit; without the flag a data set with more labels is refused, and nothing is written."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import average_precision_score

    from musicbrain_cli.model.checkpoint import load_checkpoint

    root, before, after, output, plain = grown
    assert plain.exit_code != 0 and "taxonomy differs" in plain.output
    assert not (root / "not-grown").exists()
    assert "1 added" in output

    old = load_file(str(before / "model.safetensors"))
    new = load_file(str(after / "model.safetensors"))
    assert old.keys() == new.keys()
    assert {k for k in old if not torch.equal(old[k], new[k])} \
        == {"heads.period.weight", "heads.period.bias"}
    assert new["heads.period.weight"].shape[0] == old["heads.period.weight"].shape[0] + 1
    record = card(after)["training"]["head_refit"]
    assert record["labels_added"] == ["period/Folk"]
    assert "period/Folk" in record["labels_refit"]
    assert record["val_style_map_before"] is not None

    model, config, c = load_checkpoint(after)
    assert list(config.taxonomy.group("period").labels) == ["Baroque", "Romantic", "Classical",
                                                           "Folk"]
    cache, by_split, x = cached_windows(root / "grown", config)
    old_model, old_config, _ = load_checkpoint(before)
    with torch.no_grad():
        fused = model.forward_features(x.float())
        emb = model.pool(fused).double().numpy()
        logits = model.forward_head(fused).double().numpy()
        old_logits = old_model(x.float()).double().numpy()
    np.testing.assert_array_equal(logits[:, config.taxonomy.index("source/ai")],
                                  old_logits[:, old_config.taxonomy.index("source/ai")])
    j = config.taxonomy.index("period/Folk")
    train, val = np.asarray(by_split["train"]), np.asarray(by_split["val"])
    y = cache.targets[train, j] > 0.5
    mean, std = emb[train].mean(axis=0), emb[train].std(axis=0)
    clf = LogisticRegression(C=record["c"], max_iter=5000).fit((emb[train] - mean) / std, y)
    got = 1.0 / (1.0 + np.exp(-logits[:, j] / c["calibration"]["temperature"]))
    np.testing.assert_allclose(got, clf.predict_proba((emb - mean) / std)[:, 1], atol=1e-4)
    # the new label is learned, not a constant: its own partial tells it apart
    assert average_precision_score(cache.targets[val, j] > 0.5, logits[val, j]) > 0.9
    # the untrained Classical row is kept from the input model (same head input)
    k_new, k_old = config.taxonomy.index("period/Classical"), old_config.taxonomy.index(
        "period/Classical")
    np.testing.assert_allclose(logits[:, k_new], old_logits[:, k_old], rtol=1e-5, atol=1e-6)


def test_added_labels_refuse_what_would_drop_or_repurpose_evidence(grown, tmp_path):
    """A data set that lacks a label of the model, or adds a label group, is refused."""
    from musicbrain_cli.errors import DatasetError
    from musicbrain_cli.taxonomy import Taxonomy
    from musicbrain_cli.training.heads import _with_labels, refit_style_heads
    from musicbrain_cli.model.checkpoint import load_checkpoint
    from musicbrain_cli.data.dataset import ClipRecord, DatasetWriter

    root, before, _, _, _ = grown
    tax = Taxonomy.from_groups([("source", ["human", "ai"], True),
                                ("period", ["Baroque", "Folk"], True)])
    t = np.arange(2 * SR) / SR
    with DatasetWriter(tmp_path / "lacks", tax, sample_rate=SR, audio_format="wav") as w:
        for i in range(8):
            w.add(ClipRecord(clip_id=f"l{i}", source="ai" if i % 2 else "human",
                             period="Folk" if i % 4 > 1 else "Baroque", work_id=f"lw{i}",
                             split="train" if i < 6 else "val"),
                  (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32))
    with pytest.raises(DatasetError, match="lacks labels of the model"):
        refit_style_heads(before, tmp_path / "lacks", tmp_path / "out", add_labels=True)
    assert not (tmp_path / "out").exists()

    model, config, _ = load_checkpoint(before)
    extra = Taxonomy.from_groups([("source", ["human", "ai"], True),
                                  ("period", ["Baroque", "Romantic", "Classical"], True),
                                  ("composer", ["Bach, Johann Sebastian"], True)])
    with pytest.raises(InputError, match="only style labels can be added"):
        _with_labels(model, config, extra, ["composer/Bach, Johann Sebastian"])


def test_a_refit_on_another_data_set_says_so_in_the_card_and_on_the_console(trained, grown):
    """Audit (session 27): heads re-fitted on another data set left the card's training
    record naming the first data set beside the second's label counts, OOD statistics and
    operating point, and said nothing."""
    root, _, out, output, _ = grown
    other = card(out)["training_data"]["finalized_on_other_data"]
    assert other["data_set"] == str((root / "grown").resolve())
    assert card(out)["training_data"]["manifest_sha256"] != other["manifest_sha256"]
    assert "warning: finalized on" in output
    _, _, same, same_output = trained
    assert "finalized_on_other_data" not in card(same)["training_data"]
    assert "warning: finalized on" not in same_output
