"""Distributed helpers that are no-ops in a single process (demucs ``distrib.py``, nanoGPT).

The trainer reads the same with 1 or N ranks: :func:`init` joins a process group only when
``WORLD_SIZE > 1``; :func:`is_primary`, :func:`barrier`, :func:`all_reduce_sum` and
:func:`wrap` do nothing (or the identity) otherwise. Only the primary rank writes files.

Processes are started in one of two ways, and the worker cannot tell them apart:

- by :func:`launch`, which runs torch's elastic launcher in-process
  (``torch.distributed.launcher.api.elastic_launch``, what ``torchrun`` runs), so the user
  never types ``torchrun``;
- by an external ``torchrun``; the worker then finds ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``
  in its environment (:func:`env_info`) and :func:`launched_externally` is true.

Backends: NCCL for CUDA tensors, gloo for CPU tensors (on a GPU run both, :func:`backend_for`;
the only two this project supports).
"""

from __future__ import annotations

import os
import signal
import threading
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable

import torch
import torch.distributed as dist

from musicbrain_cli.errors import TrainingError

#: Collective operations time out after this long (a dead peer must not hang a run forever).
DEFAULT_TIMEOUT = timedelta(minutes=30)


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def is_primary(self) -> bool:
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise TrainingError(f"environment variable {name}={raw!r} is not an integer") from exc


def env_info() -> DistInfo:
    """Ranks from the environment torchrun / the elastic agent sets; one process otherwise."""
    info = DistInfo(
        rank=_env_int("RANK", 0),
        world_size=_env_int("WORLD_SIZE", 1),
        local_rank=_env_int("LOCAL_RANK", 0),
        local_world_size=_env_int("LOCAL_WORLD_SIZE", 1),
    )
    if not (0 <= info.rank < info.world_size and 0 <= info.local_rank < info.local_world_size):
        raise TrainingError(f"inconsistent distributed environment: {info}")
    return info


def launched_externally() -> bool:
    """True inside a process started by torchrun (or any launcher that sets WORLD_SIZE)."""
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ


def backend_for(device: torch.device) -> str:
    """The process group's backend: gloo on the CPU; on GPUs NCCL for CUDA tensors *and*
    gloo for CPU ones. NCCL carries CUDA tensors only (torch's
    ``Backend.backend_capability``), and the trainer also reduces small CPU tensors (each
    micro-batch's count of known labels, the epoch's running sums): under NCCL alone every
    multi-GPU run failed at its first step with "No backend type associated with device
    type cpu". Object collectives and barriers then go over gloo as well."""
    return "cpu:gloo,cuda:nccl" if device.type == "cuda" else "gloo"


def init(device: torch.device, *, timeout: timedelta = DEFAULT_TIMEOUT) -> DistInfo:
    """Join the process group when ``WORLD_SIZE > 1``; a no-op for one process.

    On CUDA, ``device`` must be the process's own GPU (``cuda:LOCAL_RANK``).
    """
    info = env_info()
    if info.world_size == 1 or dist.is_initialized():
        return info
    if device.type == "cuda":
        torch.cuda.set_device(device)
    try:
        dist.init_process_group(backend=backend_for(device), init_method="env://",
                                timeout=timeout)
    except (RuntimeError, ValueError) as exc:
        raise TrainingError(
            f"cannot join the process group as rank {info.rank}/{info.world_size} "
            f"({backend_for(device)}): {exc}"
        ) from exc
    return info


def cleanup() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_primary() -> bool:
    return rank() == 0


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum over ranks, returned as a new tensor (the input is left alone)."""
    out = tensor.detach().clone()
    if is_distributed():
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out


def all_gather_object(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order (small, JSON-like objects only)."""
    if not is_distributed():
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, *, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def wrap(model: torch.nn.Module, device: torch.device, *,
         sync_batchnorm: bool = True) -> torch.nn.Module:
    """DistributedDataParallel around ``model`` when distributed; ``model`` itself otherwise.

    SyncBatchNorm only runs on CUDA in torch, so on CPU BatchNorm statistics stay per rank.
    """
    if not is_distributed():
        return model
    from torch.nn.parallel import DistributedDataParallel

    if sync_batchnorm and device.type == "cuda":
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The bare module inside DDP (what is saved: nanoGPT/timm save the unwrapped model)."""
    return model.module if hasattr(model, "module") else model


# --- launching ----------------------------------------------------------------------------


def check_geometry(*, nproc_per_node: int | None, nnodes: int, node_rank: int,
                   rdzv_endpoint: str | None) -> None:
    """Raise :class:`TrainingError` for a launch that cannot start; the command checks this
    before it builds a feature cache that may take many minutes (``nproc_per_node`` None:
    not chosen yet, one per GPU or one on the CPU)."""
    if (nproc_per_node is not None and nproc_per_node < 1) or nnodes < 1 \
            or not 0 <= node_rank < nnodes:
        raise TrainingError(
            f"bad launch geometry: nproc_per_node={nproc_per_node}, nnodes={nnodes}, "
            f"node_rank={node_rank}"
        )
    if nnodes > 1 and (not rdzv_endpoint or ":" not in rdzv_endpoint):
        raise TrainingError(f"a {nnodes}-node run needs --rdzv-endpoint HOST:PORT"
                            + (f", not {rdzv_endpoint!r}" if rdzv_endpoint else ""))


def launch(entrypoint: Callable[..., Any], *args: Any, nproc_per_node: int, nnodes: int = 1,
           node_rank: int = 0, rdzv_endpoint: str | None = None, run_id: str | None = None,
           max_restarts: int = 0) -> dict[int, Any]:
    """Run ``entrypoint(*args)`` on ``nproc_per_node`` local workers through torch elastic.

    One node: a private c10d rendezvous on ``localhost:0`` (torchrun's ``--standalone``).
    Several nodes: a static rendezvous at ``rdzv_endpoint`` (``HOST:PORT`` of node 0) with
    this node's ``node_rank`` (torchrun's default backend). ``entrypoint`` and ``args`` must
    be picklable (workers are spawned). Returns each local rank's return value.

    ``OMP_NUM_THREADS`` defaults to cores / local workers (torchrun sets 1, which starves
    CPU training on small machines).
    """
    from torch.distributed.elastic.multiprocessing import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    check_geometry(nproc_per_node=nproc_per_node, nnodes=nnodes, node_rank=node_rank,
                   rdzv_endpoint=rdzv_endpoint)
    if nnodes > 1:
        backend, endpoint, configs = "static", rdzv_endpoint, {"rank": node_rank}
    else:
        backend, endpoint, configs = "c10d", rdzv_endpoint or "localhost:0", {}
    if "OMP_NUM_THREADS" not in os.environ:
        os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // nproc_per_node))
    config = LaunchConfig(
        min_nodes=nnodes, max_nodes=nnodes, nproc_per_node=nproc_per_node,
        run_id=run_id or f"musicbrain-{uuid.uuid4().hex[:12]}",
        rdzv_backend=backend, rdzv_endpoint=endpoint, rdzv_configs=configs,
        max_restarts=max_restarts, start_method="spawn",
    )
    # torch elastic installs its own handlers for these signals in this process (they raise
    # its SignalException) and never puts the caller's back: Ctrl-C then reached the command
    # as that exception (a traceback, no "interrupted" and no resume hint), during the run
    # and in whatever the process did afterwards (finalize).
    saved = _signal_handlers()
    try:
        return elastic_launch(config, entrypoint)(*args)
    except ChildFailedError as exc:
        failures = "; ".join(f"rank {r}: {_failure_text(f)}" for r, f in exc.failures.items())
        raise TrainingError(f"a training worker failed: {failures}") from exc
    except SignalException as exc:
        # the launcher has stopped the workers; Ctrl-C is a KeyboardInterrupt as everywhere
        if exc.sigval == signal.SIGINT:
            raise KeyboardInterrupt from exc
        raise TrainingError(f"training was stopped by {exc.sigval.name}") from exc
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


#: The signals torch elastic's launcher handles in the launching process (its default
#: ``TORCHELASTIC_SIGNALS_TO_HANDLE``).
_LAUNCHER_SIGNALS = ("SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT")


def _signal_handlers() -> dict:
    """This process's Python handlers of :data:`_LAUNCHER_SIGNALS` (none off the main thread,
    where the launcher installs none either)."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    out = {}
    for name in _LAUNCHER_SIGNALS:
        sig = getattr(signal, name, None)
        if sig is not None and signal.getsignal(sig) is not None:
            out[sig] = signal.getsignal(sig)
    return out


def _failure_text(failure: Any) -> str:
    """What a failed worker raised, in one line. A worker run under torch elastic's ``record``
    stores its error as ``{"message": "TrainingError: ...", "extraInfo": {"py_callstack":
    <the traceback>, ...}}``; quoted whole, the user's one-line error was that dict with the
    Python traceback inside it (the traceback is on stderr already, from the launcher)."""
    message = failure.message
    if isinstance(message, dict):
        message = message.get("message")
    return str(message) if message else f"exit code {failure.exitcode}"
