"""Distributed training on CPU (gloo): helpers are no-ops alone; 2 ranks = 1 rank; only
rank 0 writes; the trainer runs unchanged under an external torchrun."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import load_file

from musicbrain_cli.errors import TrainingError
from musicbrain_cli.training import distributed as D
from musicbrain_cli.training import trainer as T
from musicbrain_cli.training.config import TINY_CONFIG, load_config


def no_dropout(augment=None, **train):
    # Dropout masks come from per-rank RNG streams, so they differ between a 1-rank and a
    # 2-rank run by design; switched off to compare the arithmetic of the two.
    return load_config(TINY_CONFIG, overrides={"model": {"dropout": 0.0}, "train": train,
                                               "augment": augment or {}})


def losses(run_dir):
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [(r["train_loss"], r["val_loss"], r["map_macro"]) for r in rows]


def weights(run_dir):
    state = load_file(str(run_dir / "checkpoints" / "last.safetensors"))
    return {k: v for k, v in state.items() if k.startswith("model.")}


def test_helpers_are_no_ops_in_one_process(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    assert D.env_info() == D.DistInfo(0, 1, 0, 1)
    assert not D.launched_externally()
    assert D.init(torch.device("cpu")).world_size == 1 and not D.is_distributed()
    assert (D.rank(), D.world_size(), D.is_primary()) == (0, 1, True)
    D.barrier()
    x = torch.tensor([1.0, 2.0])
    y = D.all_reduce_sum(x)
    assert torch.equal(x, y) and y is not x
    net = torch.nn.Linear(2, 2)
    assert D.wrap(net, torch.device("cpu")) is net and D.unwrap(net) is net
    assert D.all_gather_object({"a": 1}) == [{"a": 1}]


def test_env_info_reads_torchrun_variables(monkeypatch):
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert D.env_info() == D.DistInfo(3, 4, 1, 2) and D.launched_externally()
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(TrainingError, match="inconsistent"):
        D.env_info()
    monkeypatch.setenv("RANK", "x")
    with pytest.raises(TrainingError, match="'x'"):
        D.env_info()


def test_launch_rejects_bad_geometry():
    with pytest.raises(TrainingError, match="rdzv-endpoint"):
        D.launch(print, nproc_per_node=1, nnodes=2, node_rank=0)
    with pytest.raises(TrainingError, match="node_rank=2"):
        D.launch(print, nproc_per_node=1, nnodes=2, node_rank=2, rdzv_endpoint="h:1")


@pytest.mark.parametrize("augment", [None, {"reverb_prob": 0.5, "consistency_weight": 2.0}],
                         ids=["plain", "consistency"])
def test_two_gloo_processes_match_one_process(tmp_path, augment):
    """Same global batch (4): 1 rank x 4 samples vs 2 ranks x 2, through torch elastic (with
    the consistency term too: it is scaled by the global count of known labels)."""
    one, two = tmp_path / "one", tmp_path / "two"
    T.train(T.SyntheticSource(), one, config=no_dropout(augment), device="cpu", export=False)
    T.train(T.SyntheticSource(), two, config=no_dropout(augment), device="cpu", nproc_per_node=2,
            export=False)
    for a, b in zip(losses(one), losses(two), strict=True):
        assert a == pytest.approx(b, rel=1e-5, abs=1e-6)
    # Weights are compared tensor-wise by norm: a 2+2 batch sums in another order than a 4
    # batch, and Adam's step is ~lr whatever the gradient's size, so an element whose
    # gradient is ~0 may move by O(lr) in one run and not the other; the tensors as a whole
    # must still agree to float precision.
    w1, w2 = weights(one), weights(two)
    assert w1.keys() == w2.keys()
    diff = sum(float((w1[k].double() - w2[k].double()).square().sum()) for k in w1) ** 0.5
    norm = sum(float(w1[k].double().square().sum()) for k in w1) ** 0.5
    assert diff / norm < 1e-5
    _, meta = T.read_state(two / "checkpoints" / "last.safetensors")
    assert meta["world_size"] == 2 and sorted(meta["rng"]) == ["0", "1"]


def test_under_external_torchrun_only_rank_0_writes(tmp_path):
    """torchrun starts two processes of a script that calls ``train``; rank 1 is handed a
    different run folder, which must stay untouched."""
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(f"""
        import os
        from musicbrain_cli.training.config import TINY_CONFIG, load_config
        from musicbrain_cli.training.trainer import SyntheticSource, train
        rank = int(os.environ["RANK"])
        out = {str(tmp_path)!r} + ("/run" if rank == 0 else "/rank1")
        cfg = load_config(TINY_CONFIG, overrides={{"train": {{"epochs": 1}}}})
        summary = train(SyntheticSource(), out, config=cfg, device="cpu")
        # one file per rank: the two processes share stdout, where lines can interleave
        with open({str(tmp_path)!r} + f"/result-{{rank}}.txt", "w") as fh:
            fh.write(str(summary is not None and "model_dir" in summary))
    """))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         str(script)], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "result-0.txt").read_text() == "True"     # rank 0 got the summary
    assert (tmp_path / "result-1.txt").read_text() == "False"    # rank 1 got nothing
    assert not (tmp_path / "rank1").exists()
    run = tmp_path / "run"
    assert (run / "model" / "model.safetensors").is_file()
    assert (run / "checkpoints" / "last.safetensors").is_file()
    _, meta = T.read_state(run / "checkpoints" / "last.safetensors")
    assert meta["world_size"] == 2
