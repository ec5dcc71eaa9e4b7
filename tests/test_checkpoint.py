"""Tests of musicbrain_cli.model.checkpoint: round trip, card, and every bad-checkpoint case."""

from __future__ import annotations

import json
import pickle

import pytest
import torch

from musicbrain_cli.errors import ConfigError, ModelLoadError
from musicbrain_cli.features import FrontEndConfig
from musicbrain_cli.model import checkpoint as ckpt
from musicbrain_cli.model.checkpoint import (
    CARD_FILE,
    CONFIG_FILE,
    WEIGHTS_FILE,
    load_checkpoint,
    resolve_model,
    save_checkpoint,
    sha256_file,
)
from musicbrain_cli.model.config import ModelConfig
from musicbrain_cli.model.net import build_model
from musicbrain_cli.taxonomy import Taxonomy

FE = FrontEndConfig(window_s=1.0, hop_s=1.0, n_bins=64)
TAXONOMY = Taxonomy.from_groups([("source", ["human", "ai"], True),
                                 ("period", ["Baroque", "Romantic"], True)])
CARD = {"name": "toy", "version": "0.0.1", "calibration": {"temperature": 1.7},
        "thresholds": {"detection": 0.6}, "intended_use": "tests"}


@pytest.fixture(scope="module")
def config() -> ModelConfig:
    return ModelConfig(front_end=FE, taxonomy=TAXONOMY, stem_stride=(2, 4))


@pytest.fixture(scope="module")
def model(config):
    torch.manual_seed(0)
    m = build_model(config)
    # Non-default values everywhere, so a load that silently kept fresh weights would fail.
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    return m.eval()


@pytest.fixture()
def saved(tmp_path, model, config):
    card = save_checkpoint(tmp_path / "ck", model, config, model_card=CARD,
                           extra_config={"train": {"lr": 0.001}})
    return tmp_path / "ck", card


def test_round_trip_gives_identical_outputs(saved, model, config):
    directory, card = saved
    loaded, loaded_config, loaded_card = load_checkpoint(directory)
    assert loaded_config == config
    assert loaded_card == card
    assert not loaded.training
    spec = torch.randn(2, 1, 64, 50, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(loaded(spec), model(spec))
    assert model.training is False  # the caller's model untouched


def test_card_schema_and_sha(saved):
    directory, card = saved
    assert set(ckpt.CARD_KEYS) <= set(card)
    assert card["weights_sha256"] == sha256_file(directory / WEIGHTS_FILE)
    assert card["calibration"]["temperature"] == 1.7 and card["thresholds"]["detection"] == 0.6
    on_disk = json.loads((directory / CARD_FILE).read_text())
    assert on_disk == card
    doc = json.loads((directory / CONFIG_FILE).read_text())
    assert doc["extra"] == {"train": {"lr": 0.001}}
    # The config also travels inside the weights file.
    from safetensors import safe_open

    with safe_open(str(directory / WEIGHTS_FILE), "pt") as fh:
        assert json.loads(fh.metadata()["config"]) == doc["model"]
    assert not list(directory.glob(".*tmp"))


def test_the_same_weights_give_the_same_file_in_every_process(saved, tmp_path):
    """The weights' SHA-256 identifies a model, so re-saving it, in other processes (the
    safetensors writer hashes its metadata map with a per-process random seed), must give
    the same bytes. Six processes: with two metadata keys, all six agreeing by chance had
    odds of 1 in 32."""
    import subprocess
    import sys

    directory, _ = saved
    script = ("import sys; from musicbrain_cli.model.checkpoint import load_checkpoint, "
              "save_checkpoint; m, c, card = load_checkpoint(sys.argv[1]); "
              "save_checkpoint(sys.argv[2], m, c, model_card=card)")
    for i in range(6):
        subprocess.run([sys.executable, "-c", script, str(directory), str(tmp_path / str(i))],
                       check=True, timeout=120)
    files = {(tmp_path / str(i) / WEIGHTS_FILE).read_bytes() for i in range(6)}
    assert len(files) == 1


def test_tampered_weights_are_refused(saved):
    directory, _ = saved
    data = bytearray((directory / WEIGHTS_FILE).read_bytes())
    data[-10] ^= 0xFF
    (directory / WEIGHTS_FILE).write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match="SHA-256 .* model card"):
        load_checkpoint(directory)


def test_expected_sha_mismatch(saved):
    directory, card = saved
    load_checkpoint(directory, expected_sha256=card["weights_sha256"].upper())
    with pytest.raises(ModelLoadError, match="the caller expects"):
        load_checkpoint(directory, expected_sha256="0" * 64)


@pytest.mark.parametrize("name", [WEIGHTS_FILE, CONFIG_FILE, CARD_FILE])
def test_missing_file_is_named(saved, name):
    directory, _ = saved
    (directory / name).unlink()
    with pytest.raises(ModelLoadError, match=name):
        load_checkpoint(directory)


def test_missing_directory(tmp_path):
    with pytest.raises(ModelLoadError, match="not found"):
        load_checkpoint(tmp_path / "nope")


def _rewrite_config(directory, **changes):
    doc = json.loads((directory / CONFIG_FILE).read_text())
    doc["model"].update(changes)
    (directory / CONFIG_FILE).write_text(json.dumps(doc))


def test_wrong_tensor_shapes(saved):
    directory, _ = saved
    bigger = Taxonomy.from_groups([("source", ["human", "ai"], True),
                                   ("period", ["Baroque", "Classical", "Romantic"], True)])
    _rewrite_config(directory, taxonomy=bigger.to_dict())
    with pytest.raises(ModelLoadError, match=r"wrong tensor shapes: \['heads.period.weight"):
        load_checkpoint(directory)


def test_missing_and_unexpected_tensors(saved):
    directory, _ = saved
    _rewrite_config(directory, fusion_channels=16)
    with pytest.raises(ModelLoadError, match="missing .*fusion.projections"):
        load_checkpoint(directory)


def test_unknown_backbone_is_named(saved):
    directory, _ = saved
    _rewrite_config(directory, backbone="convnext_enormous")
    with pytest.raises(ModelLoadError, match="convnext_enormous"):
        load_checkpoint(directory)


def test_malformed_card_and_config(saved):
    directory, card = saved
    (directory / CARD_FILE).write_text(json.dumps({**card, "calibration": {"temperature": 0}}))
    with pytest.raises(ModelLoadError, match="temperature"):
        load_checkpoint(directory)
    (directory / CARD_FILE).write_text("{not json")
    with pytest.raises(ModelLoadError, match=CARD_FILE):
        load_checkpoint(directory)


def test_a_pickle_is_never_unpickled(saved, tmp_path):
    directory, card = saved
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (marker.write_text, ("x",))

    (directory / WEIGHTS_FILE).write_bytes(pickle.dumps(Evil()))
    (directory / CARD_FILE).write_text(
        json.dumps({**card, "weights_sha256": sha256_file(directory / WEIGHTS_FILE)}))
    with pytest.raises(ModelLoadError, match="cannot read weights"):
        load_checkpoint(directory)
    assert not marker.exists()


def test_save_rejects_a_bad_card(tmp_path, model, config):
    with pytest.raises(ConfigError, match="detection"):
        save_checkpoint(tmp_path, model, config, model_card={"thresholds": {"detection": 1.5}})


def test_resolve_model(saved, tmp_path, monkeypatch):
    directory, _ = saved
    assert resolve_model(str(directory)) == directory
    monkeypatch.setattr(ckpt, "PACKAGE_MODELS", tmp_path / "pkg")
    with pytest.raises(ModelLoadError, match="No trained default model"):
        resolve_model("default")
    with pytest.raises(ModelLoadError, match="not found"):
        resolve_model(str(tmp_path / "missing" / "dir"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="holds no model.safetensors"):
        resolve_model(str(tmp_path / "empty"))
    (tmp_path / "pkg").mkdir()
    save_checkpoint(tmp_path / "pkg" / "default", build_model(ModelConfig(front_end=FE)),
                    ModelConfig(front_end=FE), model_card={})
    assert resolve_model() == tmp_path / "pkg" / "default"


def test_shipped_default_has_no_weights_yet():
    if (ckpt.PACKAGE_MODELS / "default" / WEIGHTS_FILE).exists():
        pytest.skip("a default model is shipped")
    with pytest.raises(ModelLoadError, match="default"):
        resolve_model("default")
