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

SR = 6400


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from musicbrain_cli.taxonomy import Taxonomy
    from musicbrain_cli.training.dataset import ClipRecord, DatasetWriter

    root = tmp_path_factory.mktemp("heads")
    tax = Taxonomy.from_groups([("source", ["human", "ai"], True),
                                ("period", ["Baroque", "Romantic"], True)])
    rng = np.random.default_rng(0)
    t = np.arange(2 * SR) / SR
    with DatasetWriter(root / "ds", tax, sample_rate=SR, audio_format="wav") as w:
        for i in range(32):
            ai, romantic = i % 2, (i // 2) % 2
            y = (0.3 * np.sin(2 * np.pi * (440 if ai else 660) * t)
                 + 0.2 * np.sin(2 * np.pi * (1900 if romantic else 1300) * t)
                 + 0.02 * rng.normal(size=t.size))
            w.add(ClipRecord(clip_id=f"c{i:02d}", source="ai" if ai else "human",
                             period="Romantic" if romantic else "Baroque", work_id=f"w{i}",
                             split="train" if i < 20 else "val"), y.astype(np.float32))
    cfg = root / "cfg.yaml"
    cfg.write_text(
        "deterministic: true\n"
        "model: {front_end: {sample_rate: 6400, n_fft: 512, hop_length: 100, n_bins: 32, "
        "f_min: 50.0, f_max: 3200.0, window_s: 1.0, hop_s: 1.0}}\n"
        "train: {epochs: 1, batch_size: 8, num_workers: 0, precision: fp32}\n")
    run = CliRunner().invoke(main, ["train", "--data", str(root / "ds"), "--config", str(cfg),
                                    "--device", "cpu", "-o", str(root / "run")])
    assert run.exit_code == 0, run.output
    out = root / "refit"
    refit = CliRunner().invoke(main, ["refit-heads", "--data", str(root / "ds"), "--model",
                                      str(root / "run" / "model"), "-o", str(out)])
    assert refit.exit_code == 0, refit.output
    return root, root / "run" / "model", out, refit.output


def card(model_dir):
    return json.loads((model_dir / "model_card.json").read_text())


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
    from musicbrain_cli.training.cache import CachedWindows, default_cache_dir
    from musicbrain_cli.training.finalize import split_windows

    root, _, after, _ = trained
    model, config, c = load_checkpoint(after)
    record = c["training"]["head_refit"]
    assert record["val_style_map_by_c"][str(record["c"])] > record["val_style_map_before"]
    assert record["from_weights_sha256"] == card(trained[1])["weights_sha256"]
    assert "robustness" not in c

    cache = CachedWindows(default_cache_dir(root / "ds", config.front_end))
    by_split = split_windows(cache, root / "ds", "test")
    x = torch.from_numpy(np.stack([cache.features(i) for i in range(len(cache.clip_ids))]))
    with torch.no_grad():
        fused = model.forward_features(x.float())
        emb = model.pool(fused).double().numpy()
        logits = model.forward_head(fused).double().numpy()
    temperature = c["calibration"]["temperature"]
    j = config.taxonomy.index("period/Romantic")
    train = np.asarray(by_split["train"])
    y = cache.targets[train, j] > 0.5
    clf = LogisticRegression(C=record["c"], max_iter=5000).fit(emb[train], y)
    expected = clf.predict_proba(emb)[:, 1]
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


def test_refuses_a_non_empty_output(trained, tmp_path):
    from musicbrain_cli.training.heads import refit_style_heads

    root, before, _, _ = trained
    (tmp_path / "keep.txt").write_text("x")
    with pytest.raises(InputError, match="not empty"):
        refit_style_heads(before, root / "ds", tmp_path)
    with pytest.raises(InputError, match="positive"):
        refit_style_heads(before, root / "ds", tmp_path / "new", c_grid=(0.0,))
