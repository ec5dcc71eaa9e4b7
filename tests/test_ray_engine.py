"""``scan --engine ray``: the same per-track analysis on a local Ray instance (issue 25).

Started here with ``ray.init(num_cpus=2)``; skipped where Ray is not installed (it is an
optional extra; ``make test-ray`` installs it and runs these)."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from musicbrain_cli.audio.encode import encode_audio
from musicbrain_cli.cli import main
from conftest import SR, make_tone

ray = pytest.importorskip("ray")

pytestmark = pytest.mark.ray

#: Fields of result.json that say when or how a scan was run, not what it found.
TIME_FIELDS = ("analysis_time", "command_line", "timings")


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture
def catalog(tmp_path):
    cat = tmp_path / "catalog"
    cat.mkdir()
    encode_audio(cat / "a.flac", make_tone(6.0, 220.0, 1), SR)
    encode_audio(cat / "b crash-once.flac", make_tone(5.0, 330.0, 2), SR)
    encode_audio(cat / "c.mp3", make_tone(4.5, 440.0, 3), SR)
    (cat / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEgarbage")
    return cat


def run(args):
    return CliRunner().invoke(main, args, catch_exceptions=False)


def results(out: Path) -> dict[str, dict]:
    found = {}
    for path in sorted(out.glob("*/result.json")):
        track = json.loads(path.read_text(encoding="utf-8"))
        for key in TIME_FIELDS:
            track.pop(key, None)
        found[track["input"]["file_name"]] = track
    return found


def test_ray_and_in_process_engines_write_the_same_results(cluster, catalog, tmp_path,
                                                           tiny_model_dir, monkeypatch):
    import torch

    keys = tmp_path / "keys"
    common = ["--model", str(tiny_model_dir), "--report", "html", "--keys", str(keys), "--quiet"]
    # a Ray task holds one CPU and its worker runs torch on one thread; floating-point sums
    # depend on the thread count, so the in-process run uses one thread too
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        local = run(["scan", str(catalog), "-o", str(tmp_path / "local"), *common])
    finally:
        torch.set_num_threads(threads)
    # the ray run loses one worker mid-track (after its analysis, before it returns)
    monkeypatch.setenv("MUSICBRAIN_RAY_CRASH_ONCE_DIR", str(tmp_path))
    remote = run(["scan", str(catalog), "-o", str(tmp_path / "ray"), "--engine", "ray",
                  *common])
    assert local.exit_code == remote.exit_code == 1, remote.output   # broken.wav failed
    assert (tmp_path / "crashed-b crash-once.flac").exists()         # the crash happened
    a, b = results(tmp_path / "local"), results(tmp_path / "ray")
    assert set(a) == {"a.flac", "b crash-once.flac", "c.mp3"}
    assert a == b
    summary = json.loads((tmp_path / "ray" / "summary.json").read_text())
    rows = summary["tracks"] if isinstance(summary, dict) else summary
    assert {Path(r["path"]).name: r["status"] for r in rows} == {
        "a.flac": "ok", "b crash-once.flac": "ok", "c.mp3": "ok", "broken.wav": "error"}
    # the retried track was sealed once and everything verifies
    assert len([p for p in (tmp_path / "ray").iterdir() if "crash-once" in p.name]) == 1
    assert run(["verify", str(tmp_path / "ray"), "--keys", str(keys)]).exit_code == 0

    # a rerun resumes: nothing is analysed again
    again = run(["scan", str(catalog), "-o", str(tmp_path / "ray"), "--engine", "ray", *common])
    assert "0 analysed now, 3 skipped (already complete)" in again.output


def test_paths_from_a_list_file(cluster, catalog, tmp_path, tiny_model_dir):
    listing = tmp_path / "paths.txt"
    listing.write_text(f"# tracks on shared storage\n{catalog / 'a.flac'}\n\n"
                       f"{catalog / 'c.mp3'}\n", encoding="utf-8")
    res = run(["scan", "--paths-from", str(listing), "-o", str(tmp_path / "out"),
               "--model", str(tiny_model_dir), "--report", "none", "--unsigned", "--quiet",
               "--engine", "ray"])
    assert res.exit_code == 0, res.output
    assert set(results(tmp_path / "out")) == {"a.flac", "c.mp3"}


def test_engine_ray_without_ray_is_a_usage_error(tmp_path, catalog, monkeypatch):
    import musicbrain_cli.scan.ray_engine as engine

    monkeypatch.setattr(engine, "ray_available", lambda: False)
    res = run(["scan", str(catalog), "-o", str(tmp_path / "out"), "--engine", "ray"])
    assert res.exit_code == 2 and "musicbrain[ray]" in res.output


def test_engine_ray_with_a_model_that_is_not_there_is_a_usage_error(tmp_path, catalog,
                                                                    monkeypatch):
    """Each Ray worker failed to load the model and the scan exited 1 (a file failed);
    a model that is not there is the caller's to fix, exit 2, before any worker starts."""
    import musicbrain_cli.scan.ray_engine as engine

    monkeypatch.setattr(engine, "ray_available", lambda: True)
    monkeypatch.setattr(engine, "run_tracks", lambda *a, **k: pytest.fail("no task may start"))
    res = run(["scan", str(catalog), "-o", str(tmp_path / "out"), "--engine", "ray",
               "--model", str(tmp_path / "no-model"), "--unsigned", "--quiet"])
    assert res.exit_code == 2 and "no-model" in res.output, res.output


def test_a_terminated_ray_scan_ends_as_an_in_process_one(tmp_path):
    """Audit (session 28): ray.init installs a SIGTERM handler that printed a stack dump and
    exited 1, the status of "a file failed"; the engine puts the handler in place before it
    back, so SIGTERM ends the scan as it ends an in-process one (143). Run in a child, as a
    Ray instance started by this process's fixture would not be the engine's own."""
    import subprocess
    import sys

    child = r'''
import signal, sys
from contextlib import contextmanager
from pathlib import Path
from musicbrain_cli.progress import NULL_PROGRESS
from musicbrain_cli.scan.batch import ScanOptions
from musicbrain_cli.scan.ray_engine import WorkerSpec, run_tracks

class Seen:
    @contextmanager
    def task(self, *args, **kwargs):        # entered while the engine's Ray instance runs
        print("handler", signal.getsignal(signal.SIGTERM))
        with NULL_PROGRESS.task(*args, **kwargs) as bar:
            yield bar

run_tracks([], Path(sys.argv[1]), WorkerSpec(model="default", device="cpu",
                                               options=ScanOptions()), num_cpus=1,
           progress=Seen())
'''
    done = subprocess.run([sys.executable, "-c", child, str(tmp_path)], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "handler 0\n" in done.stdout, done.stdout    # SIG_DFL, not Ray's handler


def test_a_track_whose_ray_task_dies_keeps_its_earlier_report_of_the_same_audio(
        cluster, catalog, tmp_path, tiny_model_dir, monkeypatch):
    """Session 29 review: the driver built a dead task's outcome without the file's hash,
    so the verified report of the same audio left the catalog (in process it is kept)."""
    from musicbrain_cli.scan.ray_engine import CRASH_ONCE_ENV

    track = catalog / "b crash-once.flac"
    out = tmp_path / "out"
    common = ["-o", str(out), "--model", str(tiny_model_dir), "--report", "html",
              "--keys", str(tmp_path / "keys"), "--quiet"]
    assert run(["scan", str(track), *common]).exit_code == 0          # in process, no fault
    summary = json.loads((out / "summary.json").read_text())["tracks"]
    report = summary[0]["report"]
    # a marker folder that does not exist: the worker dies on every attempt
    monkeypatch.setenv(CRASH_ONCE_ENV, str(tmp_path / "nowhere"))
    res = run(["scan", str(track), "--engine", "ray", "--force", *common])
    assert res.exit_code == 1, res.output
    assert "kept in the catalog" in " ".join(res.output.split())
    rows = json.loads((out / "summary.json").read_text())["tracks"]
    assert [(r["status"], r["report"]) for r in rows] == [("ok", report)]
