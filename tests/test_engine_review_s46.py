"""Review of session 46, the scan engine: how a scan runs its tracks (scan.batch, scan.documents,
files) and how it ends when stopped."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import SR, make_tone
from musicbrain_cli.audio.encode import encode_audio
from musicbrain_cli.cli import main
from musicbrain_cli.errors import ReportError

ROOT = Path(__file__).resolve().parents[1]


def run(args):
    return CliRunner().invoke(main, args, catch_exceptions=False)


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGHUP"])
def test_a_rescan_stopped_by_sigterm_leaves_a_catalog_that_verifies(tmp_path, tiny_model_dir,
                                                                     signame):
    """SIGTERM (a job scheduler's stop, `timeout`, `docker stop`) ended a scan at once: a
    rescan stopped after redoing a folder left the catalog sealed over the folder's old
    manifest, and `verify` said INVALID ("track manifests changed since the catalog was
    sealed"), as if the reports had been tampered with. It now ends as Ctrl-C does, with the
    catalog of the sealed folders written, and the exit status of SIGTERM (143). SIGHUP (an
    SSH session that drops) did the same until session 47; now the same, with 129."""
    cat = tmp_path / "cat"
    cat.mkdir()
    encode_audio(cat / "a.flac", make_tone(4.0, 220.0, 0), SR)
    encode_audio(cat / "b.flac", make_tone(4.0, 330.0, 1), SR)
    out = tmp_path / "out"
    args = ["scan", str(cat), "-o", str(out), "--model", str(tiny_model_dir), "--report", "html",
            "--key", str(tmp_path / "keys"), "--quiet", "--jobs", "1"]
    assert run(args).exit_code == 0
    before = {p.parent.name: p.read_bytes() for p in out.glob("*/manifest.json")}

    script = tmp_path / "stopped.py"       # SIGTERM while the second track is analysed
    script.write_text(
        "import os, signal, sys\n"
        "from musicbrain_cli.scan import batch\n"
        "from musicbrain_cli.cli import main\n"
        "real, calls = batch.analyse_track, []\n"
        "def analyse(*a, **k):\n"
        "    calls.append(1)\n"
        "    if len(calls) == 2:\n"
        f"        os.kill(os.getpid(), signal.{signame})\n"
        "    return real(*a, **k)\n"
        "if __name__ == '__main__':\n"
        # the signal's default, as a terminal session has it: a test run under nohup (or a
        # CI job started so) hands its children SIGHUP ignored, and the scan then rightly
        # goes on (test_a_scan_under_nohup_goes_on_after_a_hang_up)
        f"    signal.signal(signal.{signame}, signal.SIG_DFL)\n"
        "    batch.analyse_track = analyse\n"
        "    main(sys.argv[1:])\n")
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests'}"}
    done = subprocess.run([sys.executable, str(script), *args, "--force"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 128 + getattr(signal, signame), done.stderr[-2000:]
    assert f"terminated ({signame}); the tracks finished so far" in done.stderr
    after = {p.parent.name: p.read_bytes() for p in out.glob("*/manifest.json")}
    assert sum(after[k] != before[k] for k in before) == 1       # one folder was redone
    res = run(["verify", str(out), "--keys", str(tmp_path / "keys")])
    assert res.exit_code == 0, res.output                          # not INVALID
    rows = json.loads((out / "summary.json").read_text(encoding="utf-8"))["tracks"]
    assert sorted(Path(r["path"]).name for r in rows) == ["a.flac", "b.flac"]


def test_a_scan_under_nohup_goes_on_after_a_hang_up(tmp_path, tiny_model_dir):
    """`nohup musicbrain scan ...` asks the scan to outlive the terminal: SIGHUP ignored when
    the scan starts stays ignored, and the scan finishes every track (exit 0)."""
    cat = tmp_path / "cat"
    _tones(cat, 2)
    out = tmp_path / "out"
    script = tmp_path / "hangup.py"
    script.write_text(
        "import os, signal, sys\n"
        "from musicbrain_cli.scan import batch\n"
        "from musicbrain_cli.cli import main\n"
        "real = batch.analyse_track\n"
        "def analyse(*a, **k):\n"
        "    os.kill(os.getpid(), signal.SIGHUP)\n"
        "    return real(*a, **k)\n"
        "if __name__ == '__main__':\n"
        "    signal.signal(signal.SIGHUP, signal.SIG_IGN)   # what nohup does\n"
        "    batch.analyse_track = analyse\n"
        "    main(sys.argv[1:])\n")
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests'}"}
    done = subprocess.run([sys.executable, str(script), "scan", str(cat), "-o", str(out),
                           "--model", str(tiny_model_dir), "--report", "html", "--unsigned",
                           "--quiet", "--jobs", "1"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = json.loads((out / "summary.json").read_text(encoding="utf-8"))["tracks"]
    assert sorted(Path(r["path"]).name for r in rows) == ["t0.flac", "t1.flac"]


def test_a_hang_up_detaches_the_scan_from_its_dead_terminal(tmp_path):
    """After SIGHUP the terminal is gone and writing to it fails (EIO): the catalog written on
    the way out must not fail on a progress line. Standard output and error that are a
    terminal are pointed at /dev/null; a file they were redirected to is kept."""
    log = tmp_path / "log.txt"
    code = (
        "import os, sys\n"
        "from musicbrain_cli.cli import _detach_from_terminal, _terminal_fds\n"
        "master, slave = os.openpty()\n"
        "os.dup2(slave, 1)\n"
        f"os.dup2(os.open({str(log)!r}, os.O_WRONLY | os.O_CREAT), 2)\n"
        "fds = _terminal_fds()\n"
        "assert fds == (1,), fds\n"
        "os.close(master)                # the terminal hangs up\n"
        "_detach_from_terminal(fds)\n"
        "assert not os.isatty(1)\n"
        "os.write(1, b'progress line')\n"
        "os.write(2, b'kept')\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert log.read_bytes() == b"kept"


def test_a_stop_while_the_catalog_is_written_waits_for_its_manifest(tmp_path, tiny_model_dir,
                                                                    monkeypatch):
    """A stop signal between the catalog's files and its signed manifest left a catalog that
    `verify` read as tampered with until the next scan. The signal is now held until the
    catalog is whole, then ends the scan as it would have (143)."""
    import musicbrain_cli.report as report

    cat = tmp_path / "cat"
    _tones(cat, 1)
    out = tmp_path / "out"
    real = report.write_catalog

    def write_then_stop(*args, **kwargs):
        written = real(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)       # before the manifest over these files
        return written

    monkeypatch.setattr(report, "write_catalog", write_then_stop)
    keys = tmp_path / "keys"
    handler = signal.getsignal(signal.SIGTERM)
    res = CliRunner().invoke(main, ["scan", str(cat), "-o", str(out), "--model",
                                    str(tiny_model_dir), "--report", "html", "--key", str(keys),
                                    "--quiet", "--jobs", "1"])
    assert res.exit_code == 128 + signal.SIGTERM, res.output
    assert signal.getsignal(signal.SIGTERM) == handler             # the handler put back
    monkeypatch.undo()
    res = run(["verify", str(out), "--keys", str(keys)])
    assert res.exit_code == 0, res.output                          # not INVALID


def _tones(folder: Path, n: int) -> list[Path]:
    folder.mkdir()
    for i in range(n):
        encode_audio(folder / f"t{i}.flac", make_tone(4.0, 220.0 + 110 * i, i), SR)
    return sorted(folder.iterdir())


def _refused_spawn(*args, **kwargs):
    import errno

    raise OSError(errno.EAGAIN, "Resource temporarily unavailable")


def test_a_renderer_process_that_cannot_be_started_does_not_end_the_scan(
        tmp_path, tiny_model_dir, monkeypatch):
    """A spawn refused (out of memory, a process limit) when the first renderer process
    started ended the whole scan with that OSError: no report of the track just analysed,
    none of the tracks after it, no catalog. The reports are rendered in the scanning process
    instead (the same bytes), and the scan says so."""
    import multiprocessing.context

    import pytest

    from musicbrain_cli.errors import MusicBrainWarning
    from musicbrain_cli.model.inference import Detector
    from musicbrain_cli.report.verify import verify_report_folder
    from musicbrain_cli.scan.batch import ScanOptions, scan

    files = _tones(tmp_path / "cat", 2)
    monkeypatch.setattr(multiprocessing.context.SpawnProcess, "_Popen",
                        staticmethod(_refused_spawn))
    detector = Detector.from_pretrained(str(tiny_model_dir), device="cpu")
    with pytest.warns(MusicBrainWarning, match="rendered in the scanning process"):
        result = scan(files, tmp_path / "out", detector, keys=None,
                      options=ScanOptions(formats=("html",), jobs=2, render_processes=True))
    assert result.n_ok == 2 and result.n_failed == 0
    for entry in result.entries:
        folder = tmp_path / "out" / Path(entry.report).parent
        assert (folder / "report.html").is_file()
        assert [c.name for c in verify_report_folder(folder).failures] == ["signature"]  # unsigned
    assert (tmp_path / "out" / "summary.json").is_file()


def test_a_report_whose_renderer_died_and_cannot_be_replaced_is_rendered_here(
        tmp_path, tiny_model_dir, monkeypatch):
    """The same refusal when a renderer that died (killed, out of memory) is replaced failed
    the track ("internal error ... please report it") although its report could be made."""
    import multiprocessing.context
    import time

    import pytest

    from musicbrain_cli.errors import MusicBrainWarning
    from musicbrain_cli.model.inference import Detector
    from musicbrain_cli.report.verify import verify_report_folder
    from musicbrain_cli.scan import batch
    from musicbrain_cli.scan.documents import ReportProcesses

    (path,) = _tones(tmp_path / "cat", 1)
    detector = Detector.from_pretrained(str(tiny_model_dir), device="cpu")
    (tmp_path / "out").mkdir()
    outcome, job = batch._prepare_track(path, tmp_path / "out", detector, keys=None,
                                        options=batch.ScanOptions(formats=("html",)),
                                        command_line=())
    with ReportProcesses(1) as processes:
        rendering = job.render_in(processes)
        deadline = time.monotonic() + 60
        while not processes._pool._processes and time.monotonic() < deadline:
            time.sleep(0.01)
        for pid in list(processes._pool._processes):
            os.kill(pid, signal.SIGKILL)
        monkeypatch.setattr(multiprocessing.context.SpawnProcess, "_Popen",
                            staticmethod(_refused_spawn))
        with pytest.warns(MusicBrainWarning, match="rendered in the scanning process"):
            batch._finish(outcome, lambda: job(rendering))
    assert outcome.entry.error is None, outcome.entry.error
    folder = tmp_path / "out" / Path(outcome.entry.report).parent
    assert [c.name for c in verify_report_folder(folder).failures] == ["signature"]  # unsigned


def test_reports_queued_behind_one_past_its_deadline_are_still_rendered(monkeypatch):
    """A renderer past RENDER_TIMEOUT_S is stopped (killed, its pool shut down). The reports
    queued behind it had their futures cancelled whenever the pool saw the shutdown before
    the killed child was gone (a child of hundreds of MB takes a while to die): each of those
    tracks then failed as "internal error ... (CancelledError: )", though only the one report
    had hung. Here the kill lands a little late, as it does for such a child."""
    import multiprocessing.process
    import threading

    from musicbrain_cli.report.schema import example_track
    from musicbrain_cli.scan import documents
    from test_scan_documents import _explain

    real_kill = multiprocessing.process.BaseProcess.kill
    monkeypatch.setattr(multiprocessing.process.BaseProcess, "kill",
                        lambda self: threading.Timer(0.5, real_kill, (self,)).start())
    track = example_track(n_windows=3)
    with documents.ReportProcesses(1) as processes:
        processes.result(processes.submit(track, [], ("html",), None))     # a renderer ready
        late = processes.submit(track, _explain(30), ("pdf",), None)       # seconds of figures
        queued = [processes.submit(track, _explain(1), ("html",), None) for _ in range(3)]
        # the pool that is stopped, held while it cancels its queue: whether it cancels or
        # breaks its queued futures otherwise depends on when the collector runs
        stopped = processes._pool  # noqa: F841
        try:
            processes.result(late, timeout_s=0.5)
        except ReportError:
            pass
        else:
            raise AssertionError("the report past its deadline must fail")
        for rendering in queued:
            rendered, _ = processes.result(rendering)
            assert set(rendered.figures) == {"fmgcam_1.png", "timeline.png"}


def test_a_scan_whose_engine_is_interrupted_leaves_a_catalog_that_verifies(tmp_path,
                                                                          tiny_model_dir):
    """The Ctrl-C fix of session 45 covered the in-process loop only: an engine (`--engine
    ray`: run_tracks stops its Ray instance and lets the interrupt go on) interrupted after
    its tasks had redone folders left the catalog sealed over their old manifests, and
    `verify` said INVALID."""
    import pytest

    from musicbrain_cli.model.inference import Detector
    from musicbrain_cli.report import init_keys
    from musicbrain_cli.report.verify import verify_catalog
    from musicbrain_cli.scan import batch

    files = _tones(tmp_path / "cat", 2)
    keys = init_keys(tmp_path / "keys")
    detector = Detector.from_pretrained(str(tiny_model_dir), device="cpu")
    out = tmp_path / "out"
    batch.scan(files, out, detector, keys=keys, options=batch.ScanOptions(formats=("html",)))
    redo = batch.ScanOptions(formats=("html",), force=True)

    def engine(paths, out_dir, salted):         # one task done, then Ctrl-C
        batch.process_track(paths[0], out_dir, detector, options=redo, keys=keys)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        batch.scan(files, out, detector, keys=keys, options=redo, engine=engine)
    checked = verify_catalog(out, trusted=keys.public())
    assert all(r.ok for r in checked), [c for r in checked for c in r.failures][:3]
    rows = json.loads((out / "summary.json").read_text(encoding="utf-8"))["tracks"]
    assert sorted(Path(r["path"]).name for r in rows) == ["t0.flac", "t1.flac"]


SECOND_INTERRUPT = """
import os, signal, sys, threading, time
from pathlib import Path
from musicbrain_cli.model.inference import Detector
from musicbrain_cli.report.keys import load_keys
from musicbrain_cli.scan import batch

model, keys, out, *files = sys.argv[1:]
real_write, real_analyse, calls = batch.write_track_folder, batch.analyse_track, []

def slow_write(*args, **kwargs):              # a report that takes a while to write
    time.sleep(1.5)
    return real_write(*args, **kwargs)

def analyse(*args, **kwargs):
    calls.append(1)
    if len(calls) == 2:                       # Ctrl-C, and again half a second later
        threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()
        raise KeyboardInterrupt
    return real_analyse(*args, **kwargs)

if __name__ == "__main__":
    batch.write_track_folder, batch.analyse_track = slow_write, analyse
    try:
        batch.scan([Path(f) for f in files], Path(out), Detector.from_pretrained(model, device="cpu"),
                   keys=load_keys(keys),
                   options=batch.ScanOptions(formats=("html",), force=True, jobs=2))
    except KeyboardInterrupt:
        print("interrupted", flush=True)
    time.sleep(3)                             # while the process lives on, a writer may too
"""


def test_a_second_interrupt_while_reports_are_written_leaves_a_catalog_that_verifies(
        tmp_path, tiny_model_dir):
    """After Ctrl-C a scan writes the reports it has in hand, then the catalog. A second
    Ctrl-C (or SIGTERM) while it waited for them went straight on to the catalog with the
    writing thread still running: the folder it sealed next no longer matched the catalog,
    INVALID. (Joining the thread again would not do: an interrupted Thread.join marks a
    thread that still runs as ended.)"""
    from musicbrain_cli.model.inference import Detector
    from musicbrain_cli.report import init_keys
    from musicbrain_cli.report.verify import verify_catalog
    from musicbrain_cli.scan import batch

    files = _tones(tmp_path / "cat", 2)
    keys = init_keys(tmp_path / "keys")
    out = tmp_path / "out"
    batch.scan(files, out, Detector.from_pretrained(str(tiny_model_dir), device="cpu"), keys=keys,
               options=batch.ScanOptions(formats=("html",)))
    script = tmp_path / "interrupted.py"
    script.write_text(SECOND_INTERRUPT)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, str(script), str(tiny_model_dir), str(tmp_path / "keys"),
                           str(out), *map(str, files)], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0 and "interrupted" in done.stdout, done.stderr[-2000:]
    checked = verify_catalog(out, trusted=keys.public())
    assert all(r.ok for r in checked), [c.detail for r in checked for c in r.failures][:3]
