"""Review of session 46, the scan engine: how a scan runs its tracks (scan.batch, scan.documents,
files) and how it ends when stopped."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from conftest import SR, make_tone
from musicbrain_cli.audio.encode import encode_audio
from musicbrain_cli.cli import main

ROOT = Path(__file__).resolve().parents[1]


def run(args):
    return CliRunner().invoke(main, args, catch_exceptions=False)


def test_a_rescan_stopped_by_sigterm_leaves_a_catalog_that_verifies(tmp_path, tiny_model_dir):
    """SIGTERM (a job scheduler's stop, `timeout`, `docker stop`) ended a scan at once: a
    rescan stopped after redoing a folder left the catalog sealed over the folder's old
    manifest, and `verify` said INVALID ("track manifests changed since the catalog was
    sealed"), as if the reports had been tampered with. It now ends as Ctrl-C does, with the
    catalog of the sealed folders written, and the exit status of SIGTERM (143)."""
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
        "        os.kill(os.getpid(), signal.SIGTERM)\n"
        "    return real(*a, **k)\n"
        "if __name__ == '__main__':\n"
        "    batch.analyse_track = analyse\n"
        "    main(sys.argv[1:])\n")
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests'}"}
    done = subprocess.run([sys.executable, str(script), *args, "--force"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 128 + signal.SIGTERM, done.stderr[-2000:]
    assert "running the same command again continues" in done.stderr
    after = {p.parent.name: p.read_bytes() for p in out.glob("*/manifest.json")}
    assert sum(after[k] != before[k] for k in before) == 1       # one folder was redone
    res = run(["verify", str(out), "--keys", str(tmp_path / "keys")])
    assert res.exit_code == 0, res.output                          # not INVALID
    rows = json.loads((out / "summary.json").read_text(encoding="utf-8"))["tracks"]
    assert sorted(Path(r["path"]).name for r in rows) == ["a.flac", "b.flac"]
