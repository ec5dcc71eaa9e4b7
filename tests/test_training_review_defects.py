"""Defects a review of the trainer, its checkpoints and its calibration reproduced on the CPU
(tiny synthetic runs: 8 training and 4 validation windows, batch 4, one epoch)."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from musicbrain_cli.errors import ConfigError
from musicbrain_cli.training import trainer as T
from musicbrain_cli.training.config import TINY_CONFIG, load_config

SRC = T.SyntheticSource(n_train=8, n_val=4)


def tiny(**train):
    return load_config(TINY_CONFIG, overrides={"train": {"epochs": 1, **train}})


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One finished, exported (not finalized) 1-epoch run."""
    out = tmp_path_factory.mktemp("finished") / "run"
    T.train(SRC, out, config=tiny(), device="cpu")
    return out


def test_an_interrupt_between_the_last_and_the_best_checkpoint_loses_no_best(tmp_path,
                                                                               monkeypatch):
    """Epoch end writes last, then best. Stopped in between (Ctrl-C while the best file is
    written), the last checkpoint already counted that epoch as the best, so the resumed run
    never wrote best.safetensors again: it failed at the end for want of it, or exported an
    older epoch's weights as the best."""
    out = tmp_path / "run"
    real = T.write_state

    def killed_at_best(path, tensors, meta):
        if path.name == "best.safetensors":
            raise KeyboardInterrupt
        real(path, tensors, meta)

    monkeypatch.setattr(T, "write_state", killed_at_best)
    with pytest.raises(KeyboardInterrupt):
        T.train(SRC, out, config=tiny(), device="cpu")
    monkeypatch.setattr(T, "write_state", real)
    last, meta = T.read_state(out / "checkpoints" / "last.safetensors")
    assert meta["best"]["epoch"] == 1 and not (out / "checkpoints" / "best.safetensors").exists()
    summary = T.train(SRC, out, resume=True, device="cpu")
    assert summary["best_epoch"] == 1
    exported = load_file(str(out / "model" / "model.safetensors"))
    assert all(torch.equal(v, last[f"model.{k}"]) for k, v in exported.items())


def test_auto_precision_on_a_turing_card_is_fp16_not_emulated_bf16(monkeypatch):
    """torch.cuda.is_bf16_supported() answers True on Turing (sm_75): it counts bf16 that is
    emulated. The client's RTX 5000s then trained in slow emulated bf16 without the gradient
    scaler, and an explicit bf16 was accepted there."""
    from musicbrain_cli.training.objective import resolve_precision

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)  # Turing's answer
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Quadro RTX 5000")
    turing = torch.device("cuda", 1)
    assert resolve_precision("auto", turing) == "fp16"
    assert resolve_precision("fp16", turing) == "fp16"
    with pytest.raises(ConfigError, match="no bf16"):
        resolve_precision("bf16", turing)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 0))
    assert resolve_precision("auto", torch.device("cuda", 0)) == "bf16"   # Ampere and later
    assert resolve_precision("auto", torch.device("cpu")) == "fp32"       # never AMP on CPU
    with pytest.raises(ConfigError, match="fp16 needs a CUDA"):
        resolve_precision("fp16", torch.device("cpu"))


def test_a_recipe_may_not_train_on_the_split_finalize_chooses_the_operating_point_on():
    """finalize fits its out-of-domain statistics on 'train' and chooses the operating point
    on 'val'; a recipe with the splits swapped trained the network on 'val', and the card's
    detection threshold was then chosen on clips the network had trained on."""
    with pytest.raises(ConfigError, match="train.train_split"):
        load_config(TINY_CONFIG, overrides={"train": {"train_split": "val",
                                                      "val_split": "train"}})


def test_a_resumed_fine_tune_names_the_weights_it_really_started_from(finished, tmp_path):
    """The card's init_from_weights_sha256 was read again from the init model's folder at
    resume time: replaced in between (that run resumed and re-exported, say), the card named
    weights the run never started from; removed, the resume failed."""
    from musicbrain_cli.model.checkpoint import load_checkpoint, save_checkpoint

    init = tmp_path / "init"
    shutil.copytree(finished / "model", init)
    started_from = json.loads((init / "model_card.json").read_text())["weights_sha256"]
    out = tmp_path / "tuned"
    T.train(SRC, out, config=tiny(init_from=str(init), checkpoint_every_steps=1,
                                  stop_after_steps=1), device="cpu")
    model, config, card = load_checkpoint(init)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01)
    save_checkpoint(init, model, config, model_card=card)        # other weights, same place
    assert json.loads((init / "model_card.json").read_text())["weights_sha256"] != started_from
    T.train(SRC, out, resume=True, device="cpu")
    card = json.loads((out / "model" / "model_card.json").read_text())
    assert card["training"]["init_from_weights_sha256"] == started_from
    assert card["training"]["init_from_new_labels"] == []


def test_a_half_exported_model_is_not_taken_for_a_finalized_one(finished, tmp_path):
    """A run resumed to train longer re-exports RUN/model; stopped after the new weights were
    written but before the card, the folder held the old finalized card beside weights it
    does not vouch for. The resume guard took that for a finished model and refused, naming
    a model that does not load."""
    from musicbrain_cli.model import Detector

    run = tmp_path / "run"
    shutil.copytree(finished, run)
    card_path = run / "model" / "model_card.json"
    card = json.loads(card_path.read_text())
    card["verdict"] = {"threshold_chosen_on": "val", "fpr_target": 0.005}
    card_path.write_text(json.dumps(card))
    weights = run / "model" / "model.safetensors"
    state = load_file(str(weights))
    from safetensors.torch import save_file

    save_file({k: v + 1 if v.is_floating_point() else v for k, v in state.items()}, str(weights))
    summary = T.train(SRC, run, resume=True, device="cpu")
    assert summary["model_dir"] == str(run / "model")
    Detector.from_pretrained(str(run / "model"), device="cpu")     # loads: card and weights agree


def test_a_run_folder_another_training_process_holds_is_refused(finished, tmp_path):
    """Two processes training into one folder (the command started twice, a re-queued job
    resuming beside the one still running) both passed the checks and then overwrote each
    other's checkpoints and metric logs."""
    from musicbrain_cli.errors import InputError
    from musicbrain_cli.files import folder_lock

    run = tmp_path / "run"
    shutil.copytree(finished, run)
    shutil.rmtree(run / "model")                       # so a resume would export again
    before = {p.name: p.stat().st_mtime_ns for p in (run / "checkpoints").iterdir()}
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    for folder, resume in ((run, True), (fresh, False)):
        with folder_lock(folder, name=T.RUN_LOCK, holder="training run"):   # the other run
            with pytest.raises(InputError, match="in use by another training run"):
                T.train(SRC, folder, config=None if resume else tiny(), resume=resume,
                        device="cpu")
    assert not (run / "model").exists()
    assert {p.name: p.stat().st_mtime_ns for p in (run / "checkpoints").iterdir()} == before
    assert [p.name for p in fresh.iterdir()] == [T.RUN_LOCK]
    # once free, the folder holding only the lock file is a new run's as an empty one is
    T.train(SRC, fresh, config=tiny(), device="cpu", export=False)
    assert (fresh / "checkpoints" / "last.safetensors").is_file()


def test_a_resume_in_another_precision_says_so(tmp_path, monkeypatch):
    """precision: auto resolves by device, so a fp16 run (the client's Turing cards) resumed
    where it resolves otherwise (a bf16 GPU, the CPU) went on in another precision without a
    word, and the gradient scaler's state was silently dropped. (fp16 with a GradScaler runs
    on the CPU in this torch, which lets the test make a real fp16 checkpoint.)"""
    from musicbrain_cli.errors import MusicBrainWarning

    out = tmp_path / "run"
    real = T.resolve_precision
    monkeypatch.setattr(T, "resolve_precision", lambda precision, device: "fp16")
    T.train(SRC, out, config=tiny(checkpoint_every_steps=1, stop_after_steps=1), device="cpu")
    _, meta = T.read_state(out / "checkpoints" / "last.safetensors")
    assert meta["precision"] == "fp16" and meta["scaler"]["scale"] > 0
    monkeypatch.setattr(T, "resolve_precision", real)
    with pytest.warns(MusicBrainWarning, match="trained in fp16 in fp32.*scaler's state is dropped"):
        T.train(SRC, out, resume=True, device="cpu", export=False)
