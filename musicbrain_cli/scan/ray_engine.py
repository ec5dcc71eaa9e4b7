"""The Ray engine of ``scan``: the same per-track analysis, spread over a Ray cluster.

``musicbrain scan --engine ray [--address HOST:PORT]`` runs each track as one Ray task
(read -> decode -> model -> explain -> report -> seal, :func:`musicbrain_cli.scan.batch.process_track`,
the function the in-process engine runs too), on whatever CPUs and GPUs the cluster offers;
the driver collects the results in input order and writes the catalog files exactly as
the in-process engine does. See ``docs/scaling.md``.

Why Ray core tasks and not Ray Data: the unit of work is one file whose outputs the task
writes itself (a sealed track folder), so a dataset abstraction adds a dependency
(pyarrow, pandas) and a streaming executor without buying anything; a core task gives the
two properties the evidence chain needs, retry of a task whose worker died and a result
per task, and keeps each worker's model loaded between tasks.

Guarantees (the in-process engine's, kept):

* A worker killed mid-track loses no finished track: a track folder appears only when
  sealed (written in a temporary folder and renamed, :func:`.scan.write_track_folder`).
  Ray retries the task (``max_retries``) on another or a fresh worker.
* A retry never writes a track twice: it finds the sealed folder of a finished attempt
  (same audio hash) and reuses it, as a rerun of ``scan`` does.
* A rerun resumes exactly as the in-process engine's.

Each worker process loads the model, keys and trust anchors once (:func:`_worker_state`)
and keeps them for every task it runs. Workers need the same MusicBrain, model and key
folder the driver names, and must read the inputs and write the output folder at the
same paths (shared storage on a multi-machine cluster).

Ray is an optional extra (``pip install musicbrain[ray]``): this module imports it only
inside functions, so the package never needs it.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Collection, Sequence

from musicbrain_cli.errors import ConfigError, MusicBrainError
from musicbrain_cli.progress import NULL_PROGRESS, Progress

#: Times Ray re-runs a track whose worker process died (not when the analysis raised).
MAX_RETRIES = 2
#: CPUs (and torch threads) one track's task holds: many tasks in parallel beat threads
#: within one forward pass on small CPU batches.
TASK_CPUS = 1
#: Fault injection for tests only: an environment variable of the driver naming a folder;
#: the first task to analyse a file whose name contains ``crash-once`` kills its worker
#: process after leaving a marker there.
CRASH_ONCE_ENV = "MUSICBRAIN_RAY_CRASH_ONCE_DIR"


@dataclass(frozen=True)
class WorkerSpec:
    """What every worker needs to analyse a track as the driver would (picklable)."""

    model: str
    device: str | None
    options: object                      # scan.ScanOptions
    key_dir: str | None = None           # None: unsigned
    #: The environment variable holding the keys' passphrase (its name, never its value:
    #: the spec travels to every worker), read in each worker's own environment.
    passphrase_env: str | None = None
    command_line: tuple[str, ...] = ()
    #: Fault injection for tests (:data:`CRASH_ONCE_ENV`, read by the driver).
    crash_once_dir: str | None = None


def ray_available() -> bool:
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


def require_ray():
    """The ``ray`` module, or :class:`ConfigError` saying how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise ConfigError("--engine ray needs Ray: pip install 'musicbrain[ray]'") from exc
    return ray


_STATE: dict = {}


def _worker_state(spec: WorkerSpec):
    """(detector, keys) of this worker process, loaded on its first task. Torch runs on as
    many threads as the task holds CPUs (one): results then equal an in-process scan's on
    one thread to the last bit (floating-point sums depend on the thread count)."""
    key = (spec.model, spec.device, spec.key_dir)
    if key not in _STATE:
        import torch

        from musicbrain_cli.model.inference import Detector

        torch.set_num_threads(TASK_CPUS)

        detector = Detector.from_pretrained(spec.model, device=spec.device)
        keys = None
        if spec.key_dir is not None:
            from musicbrain_cli.report.keys import load_keys

            secret = os.environ.get(spec.passphrase_env) if spec.passphrase_env else None
            keys = load_keys(spec.key_dir,
                             passphrase=None if secret is None else secret.encode())
        _STATE.clear()
        _STATE[key] = (detector, keys)
    return _STATE[key]


def _maybe_crash(path: str, folder: str | None) -> None:
    if not folder or "crash-once" not in Path(path).name:
        return
    marker = Path(folder) / ("crashed-" + Path(path).name)
    if not marker.exists():
        marker.touch()
        os._exit(1)   # a worker killed mid-track (after the analysis, before returning)


def _run_track(spec: WorkerSpec, path: str, out: str, salted: bool = False):
    from musicbrain_cli.scan import batch as scan

    detector, keys = _worker_state(spec)
    outcome = scan.process_track(Path(path), Path(out), detector, options=spec.options,
                                 keys=keys, command_line=spec.command_line, salted=salted)
    _maybe_crash(path, spec.crash_once_dir)
    return outcome


def _sha256_or_none(path) -> str | None:
    """The file's SHA-256, or ``None`` when it cannot be read."""
    from musicbrain_cli.audio.intake import sha256_file

    try:
        return sha256_file(path)
    except (OSError, MusicBrainError):
        return None


def run_tracks(files: Sequence[Path], out: Path, spec: WorkerSpec, *,
               address: str | None = None, num_cpus: int | None = None,
               progress: Progress = NULL_PROGRESS, salted: Collection[Path] = ()) -> list:
    """:class:`musicbrain_cli.scan.batch.TrackOutcome` of every file, in input order.
    ``salted``: the files that share audio and folded name with another input of the scan
    (:func:`musicbrain_cli.scan.batch.track_folder`).

    Connects to the cluster at ``address`` (``None``: an instance already started in this
    process, else a local one with ``num_cpus`` CPUs). A task whose worker died is retried
    :data:`MAX_RETRIES` times; one that still fails becomes that track's error entry, never
    a stop. The connection is closed only if this call opened it.
    """
    ray = require_ray()
    from musicbrain_cli.scan import batch as scan
    from musicbrain_cli.report import CatalogEntry

    spec = dataclasses.replace(spec, crash_once_dir=os.environ.get(CRASH_ONCE_ENV))
    started = False
    if not ray.is_initialized():
        import signal
        import threading

        # ray.init installs its own SIGTERM handler, which prints a stack dump and exits 1
        # (the status of "a file failed"); a terminated scan must end as the in-process
        # engine's does (143), so the handler in place before is put back (session 28 audit)
        main = threading.current_thread() is threading.main_thread()
        before = signal.getsignal(signal.SIGTERM) if main else None
        try:
            if address:
                ray.init(address=address, log_to_driver=False)
            else:
                ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
        except Exception as exc:  # ray raises ConnectionError, RuntimeError, ValueError...
            raise ConfigError(f"cannot start or reach the Ray cluster "
                              f"{address or '(local)'}: {exc}") from exc
        if main:
            signal.signal(signal.SIGTERM, before if before is not None else signal.SIG_DFL)
        started = True
    try:
        task = ray.remote(max_retries=MAX_RETRIES, retry_exceptions=False,
                          num_cpus=TASK_CPUS)(_run_track)
        refs = [task.remote(spec, str(p), str(out), p in salted) for p in files]
        index = {r: i for i, r in enumerate(refs)}
        results: list = [None] * len(refs)
        pending = list(refs)
        with progress.task("scanning (ray)", total=len(refs)) as bar:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                for ref in done:
                    i = index[ref]
                    try:
                        results[i] = ray.get(ref)
                    except MusicBrainError as exc:
                        results[i] = scan.TrackOutcome(CatalogEntry(str(files[i]), error=str(exc)),
                                                       sha256=_sha256_or_none(files[i]))
                    except Exception as exc:  # a task that died on every retry
                        # with the file's hash, as in process: an earlier verified folder of
                        # the same audio stays in the catalog (session 29 review)
                        results[i] = scan.TrackOutcome(CatalogEntry(
                            str(files[i]), error=f"the Ray task failed after {MAX_RETRIES} "
                                                 f"retries: {type(exc).__name__}"),
                            sha256=_sha256_or_none(files[i]))
                    bar.advance()
        return results
    finally:
        if started:
            ray.shutdown()
