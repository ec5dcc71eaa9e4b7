"""Report documents rendered apart from their signing: in this process or in a child process
beside the analysis (scan.documents, report.writer.render_track_report / write_rendered_report)."""

import dataclasses
import os
import re
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from musicbrain_cli.errors import ReportError
from musicbrain_cli.report import init_keys, write_track_report
from musicbrain_cli.report.schema import example_track
from musicbrain_cli.report.writer import render_track_report, write_rendered_report
from musicbrain_cli.scan import documents

ROOT = Path(__file__).resolve().parents[1]
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(32))


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    return init_keys(tmp_path_factory.mktemp("keys") / "k")


def _explain(n=1, seed=0):
    rng = np.random.default_rng(seed)
    return [{"name": f"fmgcam_{i + 1}.png", "spectrogram_db": rng.normal(-40, 10, (16, 40)),
             "saliency": rng.random((2, 16, 40)), "labels": ["source/ai", "period/Baroque"],
             "times_s": np.arange(40) * 0.02, "freqs_hz": np.linspace(50, 8000, 16),
             "title": f"window {i}"} for i in range(n)]


def test_documents_rendered_in_a_child_process_are_those_rendered_here(keys):
    track, explain = example_track(n_windows=3), _explain(2)
    here, took = documents.render_track_documents(track, explain, ("pdf", "html"), keys.record())
    assert set(here.figures) == {"fmgcam_1.png", "fmgcam_2.png", "timeline.png"}
    assert here.pdf.startswith(b"%PDF") and here.signer == keys.record()
    assert set(took) == {"figures", "report"}
    with documents.ReportProcesses(1) as processes:
        there, took = processes.result(processes.submit(track, explain, ("pdf", "html"), keys.record()))
    assert there == here                   # figures, page and unsigned PDF, byte for byte
    assert set(took) == {"figures", "report"}


def test_written_from_rendered_documents_is_what_write_track_report_writes(tmp_path, keys):
    track = example_track(n_windows=3)
    figures = documents.render_figures(_explain(1))
    direct = write_track_report(track, figures, tmp_path / "a", formats=("html", "json"), keys=keys)
    rendered = render_track_report(track, figures, formats=("html", "json"), signer=keys.record())
    split = write_rendered_report(rendered, track, tmp_path / "b", keys=keys)
    assert [p.relative_to(tmp_path / "a") for p in direct] == [p.relative_to(tmp_path / "b") for p in split]
    for a, b in zip(direct, split):
        assert a.read_bytes() == b.read_bytes()


def test_documents_naming_other_keys_are_not_signed(tmp_path, keys):
    """The page states its signer; documents rendered for no keys (or other keys) are refused
    by keys that would sign them, and documents for keys cannot go out unsigned."""
    track = example_track(n_windows=3)
    unsigned = render_track_report(track, {}, formats=("pdf",), signer=None)
    with pytest.raises(ReportError, match="another signer"):
        write_rendered_report(unsigned, track, tmp_path / "a", keys=keys)
    other = init_keys(tmp_path / "other")
    for_other = render_track_report(track, {}, formats=("pdf",), signer=other.record())
    with pytest.raises(ReportError, match="another signer"):
        write_rendered_report(for_other, track, tmp_path / "b", keys=keys)
    with pytest.raises(ReportError, match="another signer"):
        write_rendered_report(for_other, track, tmp_path / "c", keys=None)
    assert not any((tmp_path / d).exists() for d in "abc")


def _kill_renderers(processes, *, until):
    """Kill every renderer child of ``processes`` as it appears, until ``until`` is set."""
    while not until.is_set():
        pool = processes._pool
        for process in list((getattr(pool, "_processes", None) or {}).values()):
            try:
                os.kill(process.pid, signal.SIGKILL)
            except (ProcessLookupError, TypeError):
                pass
        time.sleep(0.02)


def test_a_renderer_killed_once_is_replaced_and_the_report_still_rendered():
    import threading

    track = example_track(n_windows=3)
    with documents.ReportProcesses(1) as processes:
        slow = processes.submit(track, _explain(30), ("pdf",), None)    # seconds of figures
        deadline = time.monotonic() + 60
        while not processes._pool._processes and time.monotonic() < deadline:
            time.sleep(0.05)
        first = set(processes._pool._processes)
        for pid in first:
            os.kill(pid, signal.SIGKILL)
        rendered, _ = processes.result(slow)
        assert set(processes._pool._processes).isdisjoint(first)     # a new child did it
    assert len(rendered.figures) == 31 and rendered.pdf.startswith(b"%PDF")

    # a report whose renderer dies every time fails, as its track's ReportError, and the
    # next report gets a renderer of its own
    with documents.ReportProcesses(1) as processes:
        stop = threading.Event()
        killer = threading.Thread(target=_kill_renderers, args=(processes,), kwargs={"until": stop})
        killer.start()
        try:
            with pytest.raises(ReportError, match="stopped while rendering"):
                processes.result(processes.submit(track, _explain(30), ("pdf",), None))
        finally:
            stop.set()
            killer.join()
        fine, _ = processes.result(processes.submit(track, _explain(1), ("html",), None))
    assert set(fine.figures) == {"fmgcam_1.png", "timeline.png"} and fine.pdf is None


def test_a_renderer_past_its_deadline_is_stopped_and_its_report_fails():
    track = example_track(n_windows=3)
    with documents.ReportProcesses(1) as processes:
        late = processes.submit(track, _explain(5), ("pdf",), None)
        with pytest.raises(ReportError, match="took longer than 0.01 s; the renderer was stopped"):
            processes.result(late, timeout_s=0.01)
        assert processes._pool is None                    # the stuck child is gone
        fine, _ = processes.result(processes.submit(track, _explain(1), ("html",), None))
    assert "fmgcam_1.png" in fine.figures
    assert documents.RENDER_TIMEOUT_S >= 60             # seconds where a report takes one


def _scan(monkeypatch, tmp_path, files, *, render_processes, name):
    from musicbrain_cli.model.inference import Detector
    from musicbrain_cli.scan.batch import ScanOptions, scan

    made = []
    real = documents.ReportProcesses

    class Counting(real):
        def __init__(self, workers):
            made.append(workers)
            super().__init__(workers)

    monkeypatch.setattr(documents, "ReportProcesses", Counting)
    detector = Detector.from_pretrained("default", device="cpu")
    result = scan(files, tmp_path / name, detector, keys=None,
                  options=ScanOptions(formats=("html",), jobs=2, render_processes=render_processes))
    return result, made


def test_a_scan_of_several_tracks_renders_their_reports_in_a_child_process(monkeypatch, tmp_path):
    catalog = ROOT / "examples" / "catalog"
    files = [catalog / "01-human-bach.flac", catalog / "03-human-blues.m4a"]
    threads, made = _scan(monkeypatch, tmp_path, files, render_processes=False, name="threads")
    assert made == [] and threads.n_ok == 2
    child, made = _scan(monkeypatch, tmp_path, files, render_processes=True, name="child")
    assert made == [1] and child.n_ok == 2 and child.n_failed == 0
    one, made = _scan(monkeypatch, tmp_path, files[:1], render_processes=True, name="one")
    assert made == [] and one.n_ok == 1    # one track: no child's imports to pay for
    for entry in threads.entries:
        folder = Path(entry.report).parent.name
        # the same page but for the time of analysis it states
        a, b = (re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00", "TIME",
                       (tmp_path / run / folder / "report.html").read_text())
                for run in ("threads", "child"))
        assert a == b and "TIME" in a
        for fig in (tmp_path / "threads" / folder / "figures").iterdir():
            assert fig.read_bytes() == (tmp_path / "child" / folder / "figures" / fig.name).read_bytes()


def _fresh_python(code, env_extra=None, tmp_path=None):
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    env.update(env_extra or {})
    env["PYTHONPATH"] = str(ROOT)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def test_openmp_threads_are_asked_to_sleep_only_before_torch_loads_and_unless_told_otherwise():
    code = ("import os, sys\nfrom musicbrain_cli.scan.batch import passive_openmp\n"
            "{before}\nprint(passive_openmp(), os.environ.get('OMP_WAIT_POLICY'))")
    assert _fresh_python(code.format(before="")) == ["True", "PASSIVE"]
    assert _fresh_python(code.format(before=""), {"OMP_WAIT_POLICY": "ACTIVE"}) == ["False", "ACTIVE"]
    assert _fresh_python(code.format(before="import torch")) == ["False", "None"]


def test_the_cli_scan_asks_for_it_before_anything_loads_torch(tmp_path):
    (tmp_path / "empty").mkdir()
    code = ("import os, sys\nfrom click.testing import CliRunner\nfrom musicbrain_cli.cli import main\n"
            "r = CliRunner().invoke(main, ['scan', 'empty', '-o', 'out', '--unsigned', '--quiet'])\n"
            "print(r.exit_code, os.environ.get('OMP_WAIT_POLICY'), 'torch' in sys.modules)")
    assert _fresh_python(code, tmp_path=tmp_path) == ["0", "PASSIVE", "False"]


def test_what_the_renderer_is_sent_needs_no_torch_to_read():
    """The analysis a child renders from is plain data: the classes its pickle names (what
    the child imports to read it) include nothing of torch (a TorchVersion in the track's
    software versions did: 490 MB more in every renderer). Read from the pickle's opcodes,
    never by unpickling."""
    import pickle
    import pickletools

    from musicbrain_cli.model.inference import Detector
    from musicbrain_cli.scan.batch import ScanOptions, analyse_track

    analysis = analyse_track(ROOT / "examples" / "catalog" / "01-human-bach.flac",
                             Detector.from_pretrained("default", device="cpu"), options=ScanOptions())
    assert type(analysis.track["software"]["torch"]) is str and analysis.explain
    sent = pickle.dumps((analysis.track, analysis.explain), protocol=2)    # GLOBAL opcodes
    named = {str(arg).split()[0] for op, arg, _ in pickletools.genops(sent) if op.name == "GLOBAL"}
    assert named and not [m for m in named if m.split(".")[0] == "torch"], named


def test_figure_names_that_come_back_are_checked_before_they_become_paths(tmp_path):
    track = example_track(n_windows=3)
    rendered = render_track_report(track, {}, formats=("html",), signer=None)
    forged = dataclasses.replace(rendered, figures={**rendered.figures, "../../escape.png": PNG})
    with pytest.raises(ReportError, match="plain file name"):
        write_rendered_report(forged, track, tmp_path / "r")
    assert not (tmp_path / "escape.png").exists() and not (tmp_path / "r").exists()


def test_a_renderer_ends_when_the_scan_that_started_it_is_killed(tmp_path):
    """Review (session 45): a renderer holds both ends of its task queue's pipe, so a scan
    stopped by SIGKILL (or SIGTERM) left it waiting for work for good, about 200 MB each."""
    import subprocess
    import sys

    script = tmp_path / "scan.py"
    script.write_text(
        "import os, signal\n"
        "from musicbrain_cli.scan.documents import ReportProcesses\n"
        "if __name__ == '__main__':\n"
        "    rp = ReportProcesses()\n"
        "    print(rp._executor().submit(os.getpid).result(), flush=True)\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env,
                         timeout=120)
    assert out.returncode == -signal.SIGKILL, out.stderr
    child = int(out.stdout.split()[0])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        # a zombie has exited too (its reaper may be slow to wait for it)
        if Path(f"/proc/{child}/stat").read_text().split(")")[-1].split()[0] == "Z":
            break
        time.sleep(0.2)
    else:
        os.kill(child, signal.SIGKILL)
        pytest.fail("the renderer outlived its scan by 30 s")
