"""scripts/verdicts_on_recordings.py: the recordings of chosen splits are listed, a real scan
reads the list, and the tally counts each split's verdicts and each line's findings from the
scan's own files (two short recordings made here, one in a split that is not listed)."""

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import script_module

from musicbrain_cli.cli import main



@pytest.fixture(scope="module")
def script():
    with script_module("scripts/verdicts_on_recordings.py", "verdicts_on_recordings") as mod:
        yield mod


def test_listed_recordings_are_scanned_and_tallied(script, tmp_path):
    import soundfile as sf

    sr = 22050
    t = np.arange(14 * sr) / sr
    rng = np.random.default_rng(0)
    for pkg, f0 in (("pkg-a", 220.0), ("pkg-b", 330.0), ("pkg-c", 440.0)):
        folder = tmp_path / "x" / pkg
        folder.mkdir(parents=True)
        y = 0.2 * np.sin(2 * np.pi * f0 * t) * (1 + 0.5 * np.sin(2 * np.pi * 2 * t)) \
            + 0.01 * rng.normal(size=t.size)
        sf.write(folder / "song.wav", y.astype(np.float32), sr)
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps([
        {"package": "pkg-a", "split": "test", "files": ["x/pkg-a/song.wav"]},
        {"package": "pkg-b", "split": "test-final", "files": ["x/pkg-b/song.wav",
                                                               "x/pkg-b/missing.ogg"]},
        {"package": "pkg-c", "split": "train", "files": ["x/pkg-c/song.wav"]}]))

    listed = tmp_path / "list.txt"
    assert script.main(["list", "--manifest", str(manifest), "--splits", "test,test-final",
                        "-o", str(listed)]) == 0
    paths = listed.read_text().split()
    assert paths == [str(tmp_path / "x" / "pkg-a" / "song.wav"),
                     str(tmp_path / "x" / "pkg-b" / "song.wav")]   # train and missing left out

    out = tmp_path / "scan"
    run = CliRunner().invoke(main, ["scan", "--paths-from", str(listed), "--report", "none",
                                    "--unsigned", "--quiet", "-o", str(out)])
    assert run.exit_code == 0, run.output
    summary = json.loads((out / "summary.json").read_text())
    by_file = {Path(t["path"]).parent.name: t["verdict"] for t in summary["tracks"]}

    got = script.tally(manifest, out)
    assert got["tracks_not_in_manifest"] == 0
    assert got["splits"]["test"]["verdicts"] == {by_file["pkg-a"]: 1}
    assert got["splits"]["test-final"]["verdicts"] == {by_file["pkg-b"]: 1}
    assert got["all"]["scored"] == 2 and sum(got["all"]["verdicts"].values()) == 2
    for split in ("test", "test-final"):
        lines = got["splits"][split]["lines"]
        assert set(lines) == {"content", "artifacts", "symbolic", "provenance"}
        assert all(sum(c.values()) == 1 for c in lines.values())
    # every accusation is named, and only accusations are
    assert len(got["accused"]) == got["all"]["verdicts"].get("ai", 0)
    assert got["packages"] == {"test/pkg-a": {by_file["pkg-a"]: 1},
                               "test-final/pkg-b": {by_file["pkg-b"]: 1}}
