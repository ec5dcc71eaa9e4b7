"""Tests of musicbrain_cli.model.inference: calibrated window probabilities, track windows,
padding flags, aggregation rule, determinism, loading, devices."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from musicbrain_cli.errors import ConfigError, ModelLoadError
from musicbrain_cli.features import FrontEndConfig
from musicbrain_cli.model import checkpoint as ckpt
from musicbrain_cli.model.checkpoint import save_checkpoint
from musicbrain_cli.model.config import ModelConfig
from musicbrain_cli.model.inference import Detector, resolve_device
from musicbrain_cli.model.net import build_model
from musicbrain_cli.taxonomy import Taxonomy

SR = 22050
FE = FrontEndConfig(window_s=2.0, hop_s=1.0, n_bins=64)
TAXONOMY = Taxonomy.from_groups([("source", ["human", "ai"], True),
                                 ("instrumentation", ["piano", "strings"], False)])
CARD = {"calibration": {"temperature": 2.0},
        "thresholds": {"detection": 0.5, "instrumentation/piano": 0.52}}


@pytest.fixture(scope="module")
def config() -> ModelConfig:
    return ModelConfig(front_end=FE, taxonomy=TAXONOMY)


@pytest.fixture(scope="module")
def model(config):
    torch.manual_seed(0)
    m = build_model(config)
    with torch.no_grad():   # spread the logits so thresholds and aggregates are exercised
        m.heads["source"].weight.mul_(30)
        m.heads["instrumentation"].weight.mul_(30)
    return m


@pytest.fixture(scope="module")
def detector(model, config) -> Detector:
    return Detector(model, config, CARD, device="cpu")


def music(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * SR))) / SR
    f = 220 * 2 ** (rng.integers(0, 12, size=t.size // 4410 + 1) / 12)
    y = 0.3 * np.sin(2 * np.pi * np.repeat(f, 4410)[: t.size] * t)
    return (y + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


def windows(y: np.ndarray, starts_s) -> np.ndarray:
    out = np.zeros((len(starts_s), FE.n_samples), np.float32)
    for i, s in enumerate(starts_s):
        seg = y[int(round(s * SR)): int(round(s * SR)) + FE.n_samples]
        out[i, : seg.size] = seg
    return out


def test_detector_does_not_touch_the_callers_model(model, detector):
    model.train()
    Detector(model, detector.config, CARD, device="cpu")
    assert model.training
    assert detector.temperature == 2.0 and detector.threshold == 0.5
    assert detector.thresholds == {"source/human": 0.5, "source/ai": 0.5,
                                   "instrumentation/piano": 0.52, "instrumentation/strings": 0.5}


def test_predict_windows_is_temperature_scaled_sigmoid(detector):
    waves = windows(music(6.0), [0, 1, 2, 3, 4])
    probs = detector.predict_windows(waves, batch_size=2)
    logits = detector.logits_windows(waves, batch_size=2)
    # float64, in the one form every report states (calibration.calibrated_probability)
    assert probs.shape == (5, 4) and probs.dtype == np.float64
    np.testing.assert_array_equal(probs, 1 / (1 + np.exp(-logits.astype(np.float64) / 2.0)))
    assert np.all((probs > 0) & (probs < 1))
    assert len(np.unique(logits[:, 1])) == 5  # windows of different audio differ


def test_determinism_and_batch_size(detector):
    waves = windows(music(6.0, seed=1), [0, 1, 2, 3, 4])
    a = detector.predict_windows(waves, batch_size=2)
    b = detector.predict_windows(waves, batch_size=2)
    assert np.array_equal(a, b)                                   # bit for bit on CPU
    c = detector.predict_windows(waves, batch_size=5)
    np.testing.assert_allclose(a, c, atol=1e-5)


def test_bad_window_input(detector):
    with pytest.raises(ConfigError, match=r"\[N, 44100\]"):
        detector.predict_windows(np.zeros((2, 100), np.float32))
    bad = np.zeros((1, FE.n_samples), np.float32)
    bad[0, 5] = np.nan
    with pytest.raises(ConfigError, match="NaN"):
        detector.predict_windows(bad)
    with pytest.raises(ConfigError, match="mono"):
        detector.predict_track(np.zeros((2, 50000), np.float32))


def test_predict_track_windows_tail_and_aggregates(detector):
    y = music(5.5, seed=2)          # full windows at 0..3 s, then a tail window ending at 5.5 s
    track = detector.predict_track(y, batch_size=3)
    np.testing.assert_array_equal(track.window_starts_s, [0, 1, 2, 3, 3.5])
    np.testing.assert_array_equal(track.padded, [False] * 5)
    np.testing.assert_array_equal(track.n_valid, [FE.n_samples] * 5)
    expected = detector.predict_windows(windows(y, [0, 1, 2, 3, 3.5]), batch_size=3)
    np.testing.assert_allclose(track.window_probs, expected, atol=1e-6)
    p = expected[:, 1].astype(np.float64)
    agg = track.aggregate["source/ai"]
    assert agg["mean"] == pytest.approx(p.mean())
    assert agg["max"] == pytest.approx(p.max())
    assert agg["share_over_threshold"] == pytest.approx(np.mean(p >= 0.5))
    assert track.aggregate["instrumentation/piano"]["threshold"] == 0.52
    assert track.probability() == agg["mean"]
    d = track.to_dict()
    assert len(d["windows"]) == 5 and d["windows"][4]["padded"] is False


def test_short_track_gives_one_padded_window(detector):
    track = detector.predict_track(music(0.5))
    assert track.n_windows == 1 and track.padded.tolist() == [True]
    assert track.n_valid.tolist() == [int(0.5 * SR)]
    assert track.aggregate["source/ai"]["mean"] == pytest.approx(track.window_probs[0, 1])


def test_hop_is_configurable(detector):
    track = detector.predict_track(music(6.0, seed=3), hop_s=2.0)
    np.testing.assert_array_equal(track.window_starts_s, [0, 2, 4])
    with pytest.raises(ConfigError, match="hop_s"):
        detector.predict_track(music(6.0), hop_s=3.0)


def test_from_pretrained_and_a_file(tmp_path, model, config, detector):
    import soundfile as sf

    save_checkpoint(tmp_path / "ck", model, config, model_card=CARD)
    loaded = Detector.from_pretrained(str(tmp_path / "ck"), device="cpu")
    assert loaded.temperature == 2.0
    y = music(4.0, seed=4)
    np.testing.assert_array_equal(loaded.predict_windows(windows(y, [0, 1, 2])),
                                  detector.predict_windows(windows(y, [0, 1, 2])))
    path = tmp_path / "clip.wav"
    sf.write(path, y, SR, subtype="FLOAT")
    from_file = loaded.predict_track(path)
    from_array = loaded.predict_track(y)
    np.testing.assert_array_equal(from_file.window_starts_s, from_array.window_starts_s)
    np.testing.assert_allclose(from_file.window_probs, from_array.window_probs, atol=1e-5)


def test_default_model_missing_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(ckpt, "PACKAGE_MODELS", tmp_path)
    with pytest.raises(ModelLoadError, match="No trained default model"):
        Detector.from_pretrained("default", device="cpu")


def test_devices():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConfigError, match="'tpu'"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            resolve_device("cuda")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cpu_and_gpu_agree(model, config):
    waves = windows(music(6.0, seed=5), [0, 1, 2, 3, 4])
    cpu = Detector(model, config, CARD, device="cpu").predict_windows(waves)
    gpu = Detector(model, config, CARD, device="cuda").predict_windows(waves)
    np.testing.assert_allclose(gpu, cpu, atol=2e-3)


def test_channels_last_weights_change_no_bit_of_the_shipped_models_output():
    """The detector keeps its network in channels-last memory (faster convolutions on the
    CPU); its outputs must equal those of the same weights in the default layout (bit for bit
    on the CPUs measured so far; float rounding is allowed, as between machines), or a scan
    would state figures other than the card's measured ones."""
    try:
        det = Detector.from_pretrained("default")
        ref = Detector.from_pretrained("default")
    except ModelLoadError:
        pytest.skip("no default model shipped")
    convs = [p for p in det.model.parameters() if p.dim() == 4]
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
    ref.model = ref.model.to(memory_format=torch.contiguous_format)
    assert not all(p.is_contiguous(memory_format=torch.channels_last)
                   for p in ref.model.parameters() if p.dim() == 4)
    rng = np.random.default_rng(5)
    t = np.arange(det.config.front_end.n_samples) / det.config.front_end.sample_rate
    tones = np.stack([0.3 * np.sin(2 * np.pi * f * t) * (1 + np.sin(2 * np.pi * 2 * t)) for f in (110, 440, 1760)])
    waves = np.concatenate([tones, 0.1 * rng.standard_normal((5, t.size))]).astype(np.float32)
    got, want = det.analyse_windows(waves, batch_size=4), ref.analyse_windows(waves, batch_size=4)
    np.testing.assert_allclose(got.logits, want.logits, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got.embeddings, want.embeddings, rtol=1e-5, atol=1e-6)
