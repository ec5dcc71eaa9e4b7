"""Defects a review of training, its distributed path and its mixed precision reproduced
(session 46): tiny synthetic runs on the CPU, gloo where two processes are needed."""

import json

import pytest
import torch
import torch.distributed as dist

from musicbrain_cli.training import distributed as D
from musicbrain_cli.training import trainer as T
from musicbrain_cli.training.config import TINY_CONFIG, load_config

SRC = T.SyntheticSource(n_train=8, n_val=4)


def tiny(**train):
    return load_config(TINY_CONFIG, overrides={"train": train})


def _group_devices(backend: str) -> set[str]:
    """The device types whose tensors a process group made with ``backend`` carries (torch's
    own reading of the string: a bare "nccl" serves CUDA tensors only)."""
    from torch.distributed.distributed_c10d import BackendConfig

    return set(BackendConfig(backend).get_device_backend_map())


def test_a_gpu_runs_process_group_reduces_the_trainers_cpu_tensors(tmp_path):
    """The trainer all-reduces CPU tensors (each micro-batch's count of known labels, the
    epoch's running sums). A GPU run joined a bare NCCL group, which carries CUDA tensors
    only: every multi-GPU run (the client's two RTX 5000) failed at its first step with "No
    backend type associated with device type cpu". NCCL cannot be built without a GPU, so
    the group here serves the same device types with gloo standing in for NCCL."""
    backend = D.backend_for(torch.device("cuda", 0))
    devices = _group_devices(backend)
    assert "cuda" in devices and "cpu" in devices
    stand_in = ",".join(f"{d}:gloo" for d in sorted(devices))
    dist.init_process_group(stand_in, init_method=f"file://{tmp_path / 'store'}", rank=0,
                            world_size=1)
    try:
        assert D.is_distributed()
        known = D.all_reduce_sum(torch.tensor([3.0], dtype=torch.float64))
        assert known.tolist() == [3.0]
        assert D.all_gather_object({"rank": 0}) == [{"rank": 0}]
        D.barrier()
    finally:
        dist.destroy_process_group()
    assert _group_devices(D.backend_for(torch.device("cpu"))) >= {"cpu"}


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_the_gpu_process_group_reduces_cpu_tensors_on_a_gpu(tmp_path):
    dist.init_process_group(D.backend_for(torch.device("cuda", 0)),
                            init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        assert D.all_reduce_sum(torch.tensor([3.0], dtype=torch.float64)).tolist() == [3.0]
        assert D.all_reduce_sum(torch.ones(2, device="cuda")).tolist() == [1.0, 1.0]
    finally:
        dist.destroy_process_group()


def test_a_run_stopped_between_its_last_checkpoint_and_its_logs_logs_every_epoch(tmp_path,
                                                                                 monkeypatch):
    """An epoch end writes the checkpoint, then metrics.jsonl/csv. Stopped in between at the
    last epoch, the resume had no epoch left to train, so it exported the model and never
    wrote the logs again: they lacked the final epoch without a word."""
    out = tmp_path / "run"
    real = T.write_metric_logs

    def killed_at_the_last_epochs_logs(out_dir, history, labels):
        if len(history) == 2:
            raise KeyboardInterrupt
        real(out_dir, history, labels)

    monkeypatch.setattr(T, "write_metric_logs", killed_at_the_last_epochs_logs)
    with pytest.raises(KeyboardInterrupt):
        T.train(SRC, out, config=tiny(epochs=2), device="cpu")
    monkeypatch.setattr(T, "write_metric_logs", real)
    _, meta = T.read_state(out / "checkpoints" / "last.safetensors")
    assert meta["epoch"] == 2
    T.train(SRC, out, resume=True, device="cpu", export=False)
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    assert rows == json.loads(T.dumps(meta["history"]))
    assert len((out / "metrics.csv").read_text().splitlines()) == 3


def test_a_failed_worker_is_quoted_in_one_line_without_its_traceback(tmp_path):
    """A worker's error reached the user as torch elastic's record of it, a dict holding the
    message and the whole Python traceback (escaped newlines and all) on one line."""
    from musicbrain_cli.errors import TrainingError

    with pytest.raises(TrainingError) as info:
        T.train(T.SyntheticSource(n_train=8, n_val=0), tmp_path / "run", config=tiny(),
                device="cpu", nproc_per_node=2, export=False)
    message = str(info.value)
    assert message.startswith("a training worker failed: rank ")
    assert message.endswith("TrainingError: empty split: 8 training and 0 validation windows")
    assert "Traceback" not in message and "py_callstack" not in message


class _Prepared(T.SyntheticSource):
    """A source that says when its (feature-cache-building) prepare step ran."""

    calls: list = []

    def prepare(self, **kwargs):
        self.calls.append("prepared")


def test_a_precision_the_device_lacks_is_refused_before_the_cache_is_built(tmp_path):
    """bf16 on a card without it (the client's Turing RTX 5000s) or fp16 on the CPU was
    refused only by each worker's setup, after the feature cache had been built (minutes to
    hours); from the command it then exited 1, not 2 as for any other recipe error."""
    from click.testing import CliRunner

    from musicbrain_cli.cli import main
    from musicbrain_cli.errors import ConfigError

    _Prepared.calls.clear()
    with pytest.raises(ConfigError, match="fp16 needs a CUDA device"):
        T.train(_Prepared(), tmp_path / "run", config=tiny(precision="fp16"), device="cpu")
    assert _Prepared.calls == []
    recipe = tmp_path / "fp16.yaml"
    recipe.write_text("train: {precision: fp16}\n")
    (tmp_path / "ds").mkdir()
    result = CliRunner().invoke(main, ["train", "--data", str(tmp_path / "ds"), "--config",
                                       str(recipe), "--device", "cpu", "-o",
                                       str(tmp_path / "cli-run")])
    assert result.exit_code == 2, result.output
    assert "fp16 needs a CUDA device" in result.output
    assert not (tmp_path / "cli-run").exists()


def test_ctrl_c_during_a_multi_process_run_is_a_keyboard_interrupt(tmp_path):
    """torch elastic's launcher turns SIGINT in the launching process into its own
    SignalException and leaves its handler installed: `musicbrain train --nproc-per-node 2`
    stopped with Ctrl-C ended in a traceback instead of "interrupted; ... --resume ...", and
    a Ctrl-C after the run (during finalize) did the same."""
    import os
    import signal
    import subprocess
    import sys
    import textwrap
    import time

    run = tmp_path / "run"
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(f"""
        import signal
        from musicbrain_cli.training import trainer as T
        from musicbrain_cli.training.config import TINY_CONFIG, load_config
        if __name__ == "__main__":
            # Python's own Ctrl-C handler, as in a terminal (a job started in the background
            # by a non-interactive shell inherits SIGINT ignored, and Python then keeps that)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            cfg = load_config(TINY_CONFIG, overrides={{"train": {{"epochs": 100}}}})
            try:
                T.train(T.SyntheticSource(n_train=8, n_val=4), {str(run)!r}, config=cfg,
                        device="cpu", nproc_per_node=2, export=False)
            except BaseException as exc:
                print("raised", type(exc).__name__, flush=True)
            print("handler", signal.getsignal(signal.SIGINT) is signal.default_int_handler)
    """))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        started = time.monotonic()
        while not (run / "metrics.jsonl").exists():        # the workers are training
            assert proc.poll() is None and time.monotonic() - started < 120
            time.sleep(0.1)
        os.kill(proc.pid, signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert out.split() == ["raised", "KeyboardInterrupt", "handler", "True"], out
