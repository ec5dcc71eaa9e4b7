"""Review of session 46 (inference): the model stage's invariances and the re-run of a report."""

import json

import numpy as np
import pytest
import torch

from conftest import SR, make_tone
from musicbrain_cli.audio.encode import encode_audio
from musicbrain_cli.model.inference import Detector
from musicbrain_cli.scan.batch import ScanOptions, scan
from musicbrain_cli.scan.reproduce import reproduce


@pytest.fixture
def torch_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_a_report_made_with_another_torch_thread_count_reproduces(tmp_path, tiny_model_dir,
                                                                  torch_threads):
    """A Ray scan runs each track with one torch thread (ray_engine.TASK_CPUS), the CLI's
    verify --reproduce with torch's default (the machine's cores). oneDNN splits the
    convolutions by thread count, so the last float bits of the logits and of the FM-G-CAM
    maps moved: on the example catalog 1 against 2 threads changed the alignment masses by
    1e-3 (an absolute tolerance of 1e-5 on figures in the thousands) and the FM-G-CAM
    image's bytes, and a genuine report failed its reproduction. The thread count is now
    recorded and the re-run uses it."""
    audio = tmp_path / "x.flac"
    rng = np.random.default_rng(0)
    y = make_tone(9.0, 247.0) + 0.05 * rng.standard_normal(9 * SR).astype(np.float32)
    encode_audio(audio, y, SR)
    det = Detector.from_pretrained(tiny_model_dir, device="cpu")
    torch.set_num_threads(1)
    scan([audio], tmp_path / "out", det, options=ScanOptions(formats=("html",), notes="builtin"))
    (folder,) = [p for p in (tmp_path / "out").iterdir() if p.is_dir()]
    torch.set_num_threads(2)
    again = reproduce(folder, audio, model=tiny_model_dir)
    assert again.ok, again.differences
    assert torch.get_num_threads() == 2          # the caller's setting is given back
