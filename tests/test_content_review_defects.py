"""Defects found by the review of the content model's path (features -> model -> calibrated
probabilities, domain check, checkpoint loading). Each test failed before its fix."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import torch

from musicbrain_cli.errors import ConfigError, ModelLoadError
from musicbrain_cli.features import FrontEnd, FrontEndConfig
from musicbrain_cli.model.card import CARD_FILE, update_card
from musicbrain_cli.model.checkpoint import CONFIG_FILE, load_checkpoint, save_checkpoint
from musicbrain_cli.model.config import ModelConfig
from musicbrain_cli.model.inference import Detector
from musicbrain_cli.model.net import build_model
from musicbrain_cli.model.ood import OOD_FILE, OODStats, fit_ood
from musicbrain_cli.taxonomy import Taxonomy

FE = FrontEndConfig(window_s=1.0, hop_s=1.0, n_bins=64)
TAXONOMY = Taxonomy.from_groups([("source", ["human", "ai"], True),
                                 ("period", ["Baroque", "Romantic"], True)])


@pytest.fixture(scope="module")
def config() -> ModelConfig:
    return ModelConfig(front_end=FE, taxonomy=TAXONOMY, stem_stride=(2, 4))


@pytest.fixture(scope="module")
def model(config):
    torch.manual_seed(0)
    return build_model(config).eval()


@pytest.fixture()
def saved(tmp_path, model, config):
    directory = tmp_path / "ck"
    save_checkpoint(directory, model, config, model_card={"name": "toy"})
    return directory


def _rewrite_config(directory, change) -> None:
    doc = json.loads((directory / CONFIG_FILE).read_text())
    change(doc["model"])
    (directory / CONFIG_FILE).write_text(json.dumps(doc))


# --- checkpoint loading -------------------------------------------------------------------


def _swap_source_labels(model_doc) -> None:
    source = model_doc["taxonomy"]["groups"][0]
    assert source["name"] == "source"
    source["labels"] = list(reversed(source["labels"]))          # ["ai", "human"]


def _turn_off_peak_normalisation(model_doc) -> None:
    model_doc["front_end"]["peak_normalize"] = 0.5


@pytest.mark.parametrize("change", [_swap_source_labels, _turn_off_peak_normalisation])
def test_config_json_that_disagrees_with_the_weights_is_refused(saved, change):
    """``config.json`` is covered by no hash (the card's SHA-256 and the shipped pin cover
    ``model.safetensors`` only). Swapping ``human``/``ai`` in it changes no tensor shape, so
    the checkpoint loaded, and every P(AI) became the model's P(human) under the same pinned
    weights hash a report records. The weights carry their own config (covered by the hash):
    the two must agree."""
    _rewrite_config(saved, change)
    with pytest.raises(ModelLoadError, match="config"):
        load_checkpoint(saved)


def test_a_card_without_a_weights_hash_does_not_vouch_for_any_weights(saved):
    """A card with ``weights_sha256: null`` switched the SHA-256 check off: any weights
    loaded, and the report recorded no hash to reproduce them by."""
    card = json.loads((saved / CARD_FILE).read_text())
    card["weights_sha256"] = None
    (saved / CARD_FILE).write_text(json.dumps(card))
    with pytest.raises(ModelLoadError, match="SHA-256"):
        load_checkpoint(saved)


# --- out-of-domain statistics -------------------------------------------------------------


@pytest.fixture()
def with_ood(saved):
    """The toy checkpoint with domain statistics (both checks) and card thresholds."""
    det = Detector.from_pretrained(saved, device="cpu")
    rng = np.random.default_rng(0)
    waves = (0.1 * rng.standard_normal((6, FE.n_samples))).astype(np.float32)
    out = det.analyse_windows(waves)
    fit_ood(out.embeddings, np.arange(6) % 2, out.profiles, profile_k=2).save(saved)
    update_card(saved, ood={"checks": {"embedding": {"threshold": 1e6},
                                       "spectral_profile": {"threshold": 2.0}}})
    assert Detector.from_pretrained(saved, device="cpu").ood is not None
    return saved, out


def test_missing_domain_statistics_the_card_relies_on_are_refused(with_ood):
    """Without ``ood.safetensors`` the detector loaded with ``ood=None``: the verdict then ran
    with no domain check at all (``in_domain`` None lets an AI verdict through), although the
    card's error rates were measured with the check that makes out-of-domain human music
    inconclusive."""
    directory, _ = with_ood
    (directory / OOD_FILE).unlink()
    with pytest.raises(ModelLoadError, match="out-of-domain"):
        Detector.from_pretrained(directory, device="cpu")


def test_statistics_that_cannot_run_a_check_the_card_names_are_refused(with_ood):
    """Statistics without a spectral-profile reference, where the card names that check:
    the check was silently skipped and the track judged on the embedding check alone."""
    directory, out = with_ood
    stats = OODStats.load(directory)
    OODStats(means=stats.means, precision=stats.precision).save(directory)
    with pytest.raises(ModelLoadError, match="spectral_profile"):
        Detector.from_pretrained(directory, device="cpu")


def test_statistics_of_another_model_are_refused_at_load(with_ood):
    """Statistics of another size of embedding loaded, and every scan then failed track by
    track with a bare ValueError from the domain check."""
    directory, out = with_ood
    d = out.embeddings.shape[1] + 3
    OODStats(means=np.zeros((2, d)), precision=np.eye(d)).save(directory)
    update_card(directory, ood={"checks": {"embedding": {"threshold": 1e6}}})
    with pytest.raises(ModelLoadError, match="dimension"):
        Detector.from_pretrained(directory, device="cpu")


def test_a_damaged_statistics_file_is_a_model_load_error(with_ood):
    """A truncated ``ood.safetensors`` raised safetensors' own error, not ModelLoadError."""
    directory, _ = with_ood
    path = directory / OOD_FILE
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(ModelLoadError, match="out-of-domain"):
        OODStats.load(directory)


# --- features -----------------------------------------------------------------------------


SMALL_FE = {"sample_rate": 8000, "n_fft": 256, "hop_length": 80, "n_bins": 32,
            "f_max": 4000.0, "window_s": 1.0, "hop_s": 0.5}


def test_an_odd_fft_size_is_refused():
    """An odd ``n_fft`` was accepted, but the centred STFT then gives ``n_frames - 1``
    columns, not the ``n_frames`` the config (and every caller sizing by it) states; and
    ``forward_consecutive`` crashed with IndexError on it."""
    with pytest.raises(ConfigError, match="n_fft must be even"):
        FrontEndConfig(**{**SMALL_FE, "n_fft": 255})


def test_forward_consecutive_equals_forward_when_no_frame_lies_inside_a_window():
    """``forward_consecutive`` (what every scan uses) crashed with a RuntimeError (a negative
    slice) for a valid front end whose FFT is longer than half a window, where ``forward``
    works."""
    config = FrontEndConfig(**{**SMALL_FE, "n_fft": 1024, "window_s": 0.1, "hop_s": 0.05})
    fe = FrontEnd(config)
    n, hop = config.n_samples, config.hop_samples
    rng = np.random.default_rng(0)
    signal = (0.1 * rng.standard_normal(n + 3 * hop)).astype(np.float32)
    waves = torch.from_numpy(np.stack([signal[i * hop: i * hop + n] for i in range(4)]))
    np.testing.assert_allclose(fe.forward_consecutive(waves).numpy(), fe(waves).numpy(),
                               atol=1e-5)


# --- inference ----------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_predict_track_refuses_non_finite_samples(tiny_model_dir, bad):
    """``analyse_windows`` refuses NaN/inf samples but ``predict_track`` on an array did
    not: the windows gave NaN probabilities and the verdict failed later with a message
    ("p_ai must be a probability") that does not name the input."""
    det = Detector.from_pretrained(tiny_model_dir, device="cpu")
    y = np.zeros(det.config.front_end.n_samples * 2, np.float32)
    y[123] = bad
    with pytest.raises(ConfigError, match="NaN or infinite"):
        det.predict_track(y)


def test_the_detection_label_uses_the_verdicts_threshold_whatever_else_the_card_holds(model, config):
    """A card may hold ``thresholds["source/ai"]`` beside ``thresholds["detection"]``; the
    detector took the former for the detection label, so evaluate's rates and the track
    aggregate's positive flag used a threshold that no verdict applies (robustness review)."""
    from musicbrain_cli.taxonomy import DETECTION_LABEL
    from musicbrain_cli.verdict import VerdictPolicy

    card = {"name": "toy", "thresholds": {"detection": 0.5, DETECTION_LABEL: 0.001}}
    detector = Detector(model, config, card, device="cpu")
    assert detector.thresholds[DETECTION_LABEL] == VerdictPolicy.from_card(card).threshold == 0.5


# --- each model file is read once: what was checked is what was loaded ---------------------

def test_weights_replaced_after_their_hash_was_checked_are_not_loaded(model_copy, tmp_path, monkeypatch):
    """The weights were hashed (checked against the card and the pin), then read again by
    path to load them: a file replaced between the two (another checkpoint of the same shape)
    loaded under the first one's hash. The same for the card and the domain statistics,
    whose hashes a report records (session 36 finding: read twice per load). Now each file
    is read once, and its hash is of the bytes loaded."""
    import hashlib
    import shutil

    import torch

    import musicbrain_cli.inputs as inputs
    import musicbrain_cli.model.checkpoint as ckpt
    from musicbrain_cli.files import sha256_file
    from musicbrain_cli.model.inference import Detector

    original = Detector.from_pretrained(model_copy, device="cpu")
    want = {k: v.clone() for k, v in original.model.state_dict().items()}
    card_sha = sha256_file(model_copy / "model_card.json")
    # another checkpoint of the same architecture and config, and another card
    other = tmp_path / "other"
    shutil.copytree(model_copy, other)
    torch.manual_seed(123)
    from musicbrain_cli.model.net import build_model

    ckpt.save_checkpoint(other, build_model(original.config), original.config,
                         model_card={**original.card, "name": "another"})
    swapped = []

    def swap_after(real):
        def wrapper(path, *args, **kwargs):
            out = real(path, *args, **kwargs)
            name = os.path.basename(os.fspath(path))
            if name in ("model.safetensors", "model_card.json") and name not in swapped:
                swapped.append(name)             # replaced the moment after it was read/hashed
                shutil.copyfile(other / name, model_copy / name)
            return out
        return wrapper

    monkeypatch.setattr(ckpt, "sha256_file", swap_after(ckpt.sha256_file))
    monkeypatch.setattr(inputs, "read_regular", swap_after(inputs.read_regular))
    try:
        loaded = Detector.from_pretrained(model_copy, device="cpu")
    except ModelLoadError:
        return                                  # refusing is as good as loading what was checked
    assert swapped                              # the swap really happened during the load
    got = loaded.model.state_dict()
    assert all(torch.equal(got[k], want[k]) for k in want), "loaded other weights than it checked"
    assert loaded.card["name"] == original.card["name"]
    assert loaded.file_sha256["card"] == card_sha
    assert hashlib.sha256((model_copy / "model_card.json").read_bytes()).hexdigest() != card_sha
