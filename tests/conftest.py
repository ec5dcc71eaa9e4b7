"""Shared fixtures: a tiny model saved as a real checkpoint, test tones, and a deadline for
calls that could hang."""

import importlib.util
import os
import signal
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch

SR = 22050
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def trust_store(tmp_path_factory):
    """A trust store of the test session's own, never the user's (keys made by ``scan`` or
    ``keys init`` are pinned in it). Set for the whole session, before any module fixture."""
    import os

    from musicbrain_cli.report.keys import TRUST_STORE_ENV

    path = tmp_path_factory.mktemp("trust") / "trusted.json"
    old = os.environ.get(TRUST_STORE_ENV)
    os.environ[TRUST_STORE_ENV] = str(path)
    yield path
    if old is None:
        os.environ.pop(TRUST_STORE_ENV, None)
    else:
        os.environ[TRUST_STORE_ENV] = old


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A randomly initialised default-architecture model with 4 s windows, saved to disk."""
    from musicbrain_cli.features import FrontEndConfig
    from musicbrain_cli.model.checkpoint import default_card, save_checkpoint
    from musicbrain_cli.model.config import ModelConfig
    from musicbrain_cli.model.net import build_model
    from musicbrain_cli.taxonomy import Taxonomy

    torch.manual_seed(0)
    taxonomy = Taxonomy.from_groups([("source", ["human", "ai"], True),
                                     ("period", ["Baroque", "Classical"], True)])
    config = ModelConfig(front_end=FrontEndConfig(window_s=4.0, hop_s=2.0), taxonomy=taxonomy)
    card = default_card()
    card.update(name="tiny-test", error_rates={"fpr": 0.01, "fpr_ci95": [0.0, 0.05],
                                               "fnr": 0.1, "fnr_ci95": [0.05, 0.2]})
    d = tmp_path_factory.mktemp("model")
    save_checkpoint(d, build_model(config), config, model_card=card)
    return d


@pytest.fixture
def model_copy(tiny_model_dir, tmp_path):
    """A copy of :func:`tiny_model_dir` that a test may change (its card, its files)."""
    import shutil

    d = tmp_path / "model"
    shutil.copytree(tiny_model_dir, d)
    return d


#: A training config small enough for a few seconds of CPU: 1 s windows of 6.4 kHz audio.
TINY_TRAIN_CONFIG = (
    "deterministic: true\n"
    "model: {front_end: {sample_rate: 6400, n_fft: 512, hop_length: 100, n_bins: 32, "
    "f_min: 50.0, f_max: 3200.0, window_s: 1.0, hop_s: 1.0}}\n"
    "train: {epochs: 1, batch_size: 8, num_workers: 0, precision: fp32}\n")


def train_tiny(data, root):
    """Train one epoch on the data set ``data`` through the CLI into ``root/run``; returns
    the exported model's folder."""
    from click.testing import CliRunner

    from musicbrain_cli.cli import main

    cfg = root / "tiny.yaml"
    cfg.write_text(TINY_TRAIN_CONFIG)
    run = CliRunner().invoke(main, ["train", "--data", str(data), "--config", str(cfg),
                                    "--device", "cpu", "-o", str(root / "run")])
    assert run.exit_code == 0, run.output
    return root / "run" / "model"


def non_utf8_path(folder: Path, name: bytes) -> str | None:
    """``folder/name`` as a str path (its bytes as surrogates), or None where the file system
    cannot hold a name that is not UTF-8."""
    path = os.fsdecode(os.fsencode(folder) + b"/" + name)
    try:
        Path(path).write_bytes(b"")
    except (OSError, UnicodeError):
        return None
    return path


def make_tone(seconds, f0=220.0, seed=0):
    """A harmonic tone (four partials) with a little noise, float32 at 22.05 kHz."""
    t = np.arange(int(SR * seconds)) / SR
    rng = np.random.default_rng(seed)
    y = sum(0.2 / k * np.sin(2 * np.pi * k * f0 * t) for k in range(1, 5))
    return (y + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


class Hung(BaseException):
    """Raised by :func:`deadline`; a BaseException, so code under test that reports an
    ``OSError`` or a ``MusicBrainError`` as a failed file cannot swallow it."""


@contextmanager
def deadline(seconds: int, what: str = "the call"):
    """Raise :class:`Hung` in the main thread after ``seconds``: a hang (a blocked open() of
    a FIFO, an endless read of /dev/zero) fails the test instead of stalling CI. PEP 475
    retries EINTR only when the handler returns, so raising interrupts the blocked call."""
    def on_alarm(signum, frame):
        raise Hung(f"{what} still ran after {seconds} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def write_musicnet_metadata(root, rows) -> None:
    """``musicnet_metadata.csv`` in MusicNet's release layout under ``root``, one line per
    ``(id, composer, composition, movement, ensemble, catalog_name, seconds)``."""
    import csv

    with open(root / "musicnet_metadata.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, quoting=csv.QUOTE_ALL)
        w.writerow(["id", "composer", "composition", "movement", "ensemble", "source",
                    "transcriber", "catalog_name", "seconds"])
        for pid, comp, work, mvt, ens, cat, seconds in rows:
            w.writerow([pid, comp, work, mvt, ens, "test", "test", cat, seconds])



@contextmanager
def script_module(relative_path: str, name: str):
    """A command-line script of the repository (``scripts/x.py``, ``benchmarks/x.py``) imported
    as the module ``name`` and registered in ``sys.modules`` while in use: dataclasses look their
    module up while being defined, and worker functions are pickled by name."""
    spec = importlib.util.spec_from_file_location(name, ROOT / relative_path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(name, None)
