"""What only a CUDA device can show: mixed-precision training (fp16 with a GradScaler, the
client's Turing cards; bf16 where the GPU has it), resume on the GPU, and FM-G-CAM giving
the same explanation on GPU and CPU. CI has no GPU, so these are skipped there; they run on
a lent GPU machine (the closing notes say when).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


def _precisions() -> list[str]:
    if not torch.cuda.is_available():
        return ["fp16"]
    # native bf16 only (compute capability 8+): torch's is_bf16_supported() also counts the
    # emulated bf16 of Turing, which resolve_precision refuses (review)
    return ["fp16", "bf16"] if torch.cuda.get_device_capability(0)[0] >= 8 else ["fp16"]


def test_auto_precision_follows_the_gpu():
    from musicbrain_cli.training.trainer import resolve_precision

    expected = "bf16" if torch.cuda.get_device_capability(0)[0] >= 8 else "fp16"
    assert resolve_precision("auto", torch.device("cuda", 0)) == expected
    assert resolve_precision("fp16", torch.device("cuda", 0)) == "fp16"   # Turing's path


@pytest.mark.parametrize("precision", _precisions())
def test_mixed_precision_training_resumes_on_the_gpu(tmp_path, precision):
    """A run killed mid-epoch on the GPU resumes (GradScaler state included) and finishes
    with finite losses, and its card records the precision it trained in."""
    from musicbrain_cli.training import trainer as T
    from musicbrain_cli.training.config import TINY_CONFIG, load_config

    def cfg(**train):
        return load_config(TINY_CONFIG, overrides={
            "deterministic": False,
            "train": {"checkpoint_every_steps": 2, "precision": precision, **train}})

    out = tmp_path / "run"
    stopped = T.train(T.SyntheticSource(), out, config=cfg(stop_after_steps=3), device="cuda")
    assert stopped == {"stopped": True, "global_step": 3}
    _, meta = T.read_state(out / "checkpoints" / "last.safetensors")
    assert meta["global_step"] == 2
    if precision == "fp16":
        assert meta["scaler"] and meta["scaler"]["scale"] > 0   # the scaler is checkpointed
    summary = T.train(T.SyntheticSource(), out, resume=True, device="cuda")
    assert summary["global_step"] == 8
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    assert all(math.isfinite(r["train_loss"]) and math.isfinite(r["val_loss"]) for r in rows)
    card = json.loads((out / "model" / "model_card.json").read_text())
    assert card["training"]["device"] == "cuda" and card["training"]["precision"] == precision


def test_fmgcam_agrees_on_gpu_and_cpu(tiny_model_dir):
    """The explanation a report shows must not depend on the device it was computed on."""
    from musicbrain_cli.explain.fmgcam import FMGradCAM
    from musicbrain_cli.model.checkpoint import load_checkpoint

    model, config, _ = load_checkpoint(tiny_model_dir)
    rng = np.random.default_rng(0)
    spec = torch.from_numpy(rng.standard_normal((2, *config.front_end.shape))
                            .astype(np.float32))
    with FMGradCAM(model) as cam:
        cpu = cam(spec)
    model = model.cuda()
    with FMGradCAM(model) as cam:
        gpu = cam(spec.cuda())
    assert torch.equal(torch.as_tensor(cpu.labels).cpu(), torch.as_tensor(gpu.labels).cpu())
    a, b = torch.as_tensor(cpu.maps).cpu(), torch.as_tensor(gpu.maps).cpu()
    assert a.shape == b.shape
    # The exclusive argmax may flip a handful of near-tied cells; the maps must agree.
    assert (a - b).abs().mean() < 1e-3 and ((a - b).abs() > 1e-2).float().mean() < 0.01


def test_shared_frame_front_end_on_the_gpu():
    """The scan's front end (frames shared by overlapping windows) on the GPU gives the CPU's
    per-window maps."""
    from musicbrain_cli.features import FrontEnd, FrontEndConfig

    c = FrontEndConfig(window_s=2.0, hop_s=1.0, peak_normalize=0.9)
    rng = np.random.default_rng(0)
    signal = (0.3 * rng.standard_normal(c.hop_samples * 5 + c.n_samples)).astype(np.float32)
    waves = torch.from_numpy(np.stack([signal[k * c.hop_samples: k * c.hop_samples + c.n_samples]
                                       for k in range(6)]))
    fe = FrontEnd(c)
    with torch.no_grad():
        cpu = fe(waves)
        gpu = fe.to("cuda").forward_consecutive(waves.cuda()).cpu()
    # GPU FFTs and matmuls round differently (TF32 is off by default for matmul)
    assert (gpu - cpu).abs().max() < 1e-3


def test_deterministic_training_runs_on_the_gpu(tmp_path):
    """``deterministic: true`` (tiny.yaml's) on CUDA: the backward of the fusion's bilinear
    resize has no deterministic CUDA kernel, and torch raised at the first step; it warns
    now and the run finishes."""
    from musicbrain_cli.training import trainer as T
    from musicbrain_cli.training.config import TINY_CONFIG, load_config

    cfg = load_config(TINY_CONFIG, overrides={"deterministic": True})
    summary = T.train(T.SyntheticSource(), tmp_path / "run", config=cfg, device="cuda")
    assert summary["global_step"] > 0
