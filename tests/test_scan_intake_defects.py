"""Scan intake defects found by the review of session 30: each was data loss or a status
that did not tell the truth. Each test fails with the defect back in place."""

import json
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from musicbrain_cli.audio.encode import encode_audio
from musicbrain_cli.cli import main
from musicbrain_cli.model.inference import Detector
from musicbrain_cli.scan import batch
from musicbrain_cli.scan.batch import ScanOptions, scan
from musicbrain_cli.scan.discovery import discover, read_path_list
from conftest import make_tone

SR = 22050
NOT_UTF8 = os.fsdecode(b"caf\xe9.wav")          # a Latin-1 name: bytes no UTF-8 text holds


def run(args):
    return CliRunner().invoke(main, args, catch_exceptions=False)


def rows(out: Path) -> list[dict]:
    return json.loads((out / "summary.json").read_text(encoding="utf-8"))["tracks"]


def track_folders(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if p.is_dir() and not p.name.startswith("."))


@pytest.fixture
def detector(tiny_model_dir):
    return Detector.from_pretrained(tiny_model_dir, device="cpu")


def _can_name_bytes(folder: Path) -> bool:
    try:
        (folder / NOT_UTF8).write_bytes(b"")
    except (OSError, UnicodeError):
        return False
    (folder / NOT_UTF8).unlink()
    return True


# --- 1: a file name that is not UTF-8 ------------------------------------------------------


def test_a_file_name_that_is_not_utf8_is_a_failed_input_and_the_rest_is_written(
        tmp_path, tiny_model_dir):
    """It stopped the whole scan with UnicodeEncodeError (result.json, the inputs index),
    and no catalog was written for the other tracks."""
    cat = tmp_path / "cat"
    cat.mkdir()
    if not _can_name_bytes(cat):
        pytest.skip("this file system cannot hold a name that is not UTF-8")
    encode_audio(cat / "normal.wav", make_tone(3.0), SR)
    encode_audio(cat / NOT_UTF8, make_tone(3.0, 330.0), SR)
    found = discover([cat])
    assert found.files == [cat / "normal.wav"]
    assert [p for p, _ in found.failed] == [str(cat) + "/caf\\xe9.wav"]   # the bytes, escaped
    out = tmp_path / "out"
    res = run(["scan", str(cat), "-o", str(out), "--model", str(tiny_model_dir),
               "--report", "html", "--unsigned", "--quiet"])
    assert res.exit_code == 1, res.output
    by_name = {Path(r["path"]).name: r for r in rows(out)}
    assert set(by_name) == {"normal.wav", "caf\\xe9.wav"}
    assert by_name["normal.wav"]["status"] == "ok"
    assert by_name["caf\\xe9.wav"]["status"] == "error"
    assert "not valid UTF-8" in by_name["caf\\xe9.wav"]["error"]
    for name in ("summary.csv", "index.html", "catalog-manifest.json"):
        assert (out / name).is_file(), name


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_fault_while_writing_one_track_folder_fails_that_track_not_the_scan(
        tmp_path, detector, monkeypatch, jobs):
    """write_track_folder turned only OSError into the track's failure, and _finish caught
    only MusicBrainError: any other fault (a UnicodeEncodeError) ended the scan with no
    catalog."""
    cat = tmp_path / "cat"
    cat.mkdir()
    encode_audio(cat / "a.flac", make_tone(3.0), SR)
    encode_audio(cat / "b.flac", make_tone(3.0, 330.0), SR)
    real = batch.write_track_folder

    def faulty(analysis, audio_path, final_dir, **kw):
        if Path(audio_path).name == "a.flac":
            "\udce9".encode("utf-8")          # what result.json met
        return real(analysis, audio_path, final_dir, **kw)

    monkeypatch.setattr(batch, "write_track_folder", faulty)
    out = tmp_path / "out"
    result = scan([cat], out, detector, options=ScanOptions(formats=(), jobs=jobs))
    errors = {Path(e.input_path).name: e.error for e in result.entries if e.error}
    assert set(errors) == {"a.flac"} and "UnicodeEncodeError" in errors["a.flac"], errors
    assert result.n_ok == 1
    assert sorted(r["status"] for r in rows(out)) == ["error", "ok"]
    assert len(track_folders(out)) == 1                 # b's; a's temporary folder is gone


# --- 2: two inputs, one folder --------------------------------------------------------------


@pytest.mark.parametrize("force", [True, False])
def test_a_moved_input_and_its_copy_get_a_folder_each(tmp_path, detector, force):
    """Scan A/x.wav; move it to B/x.wav, copy it to C/x.wav; scan B and C: both took the
    folder of the gone A/x.wav, and one report overwrote the other (--force), or both rows
    pointed at A's report."""
    for d in "ABC":
        (tmp_path / d).mkdir()
    encode_audio(tmp_path / "A" / "x.wav", make_tone(3.0), SR)
    out = tmp_path / "out"
    options = ScanOptions(formats=("html",))
    scan([tmp_path / "A"], out, detector, options=options)
    (tmp_path / "A" / "x.wav").rename(tmp_path / "B" / "x.wav")
    shutil.copy(tmp_path / "B" / "x.wav", tmp_path / "C" / "x.wav")
    # jobs=2: C's folder is chosen before B's report is written (the CLI's default)
    result = scan([tmp_path / "B", tmp_path / "C"], out, detector,
                  options=ScanOptions(formats=("html",), force=force, jobs=2))
    assert not [e.error for e in result.entries if e.error]
    reports = [e.report for e in result.entries]
    assert len(set(reports)) == 2, reports
    for entry in result.entries:                        # each folder holds its own input
        recorded = json.loads((out / Path(entry.report).parent / "result.json").read_text())
        assert recorded["input"]["path"] == entry.input_path


def test_two_inputs_given_one_folder_fail_loudly_instead_of_overwriting(
        tmp_path, detector, monkeypatch):
    """The guard behind track_folder: however two inputs of one scan come to one folder,
    the second is a failure and the first's report stays as written."""
    cat = tmp_path / "cat"
    cat.mkdir()
    encode_audio(cat / "a.flac", make_tone(3.0), SR)
    encode_audio(cat / "b.flac", make_tone(3.0, 330.0), SR)
    monkeypatch.setattr(batch, "track_folder", lambda path, sha, out, **kw: out / "same")
    out = tmp_path / "out"
    result = scan([cat], out, detector, options=ScanOptions(formats=()))
    by_name = {Path(e.input_path).name: e for e in result.entries}
    assert by_name["a.flac"].error is None
    assert "also this scan's folder" in by_name["b.flac"].error
    assert track_folders(out) == ["same"]
    recorded = json.loads((out / "same" / "result.json").read_text())
    assert Path(recorded["input"]["path"]).name == "a.flac"


def test_an_engine_that_gave_two_inputs_one_folder_fails_both(tmp_path, detector,
                                                               monkeypatch):
    """An engine (Ray) writes before the batch sees its outcomes: both inputs of a shared
    folder fail, since either report may be the one left there."""
    cat = tmp_path / "cat"
    cat.mkdir()
    encode_audio(cat / "a.flac", make_tone(3.0), SR)
    encode_audio(cat / "b.flac", make_tone(3.0, 330.0), SR)
    monkeypatch.setattr(batch, "track_folder", lambda path, sha, out, **kw: out / "same")

    def engine(files, out, salted):
        return [batch.process_track(f, out, detector, options=ScanOptions(formats=()))
                for f in files]

    result = scan([cat], tmp_path / "out", None, options=ScanOptions(formats=()), engine=engine)
    errors = [e.error or "" for e in result.entries]
    assert len(errors) == 2 and all("may have replaced" in e for e in errors), errors


# --- 3: audio files in an output folder inside an input -------------------------------------


def test_an_audio_file_in_the_output_folder_inside_an_input_is_listed_as_skipped(tmp_path):
    """`scan in -o in/sub` with in/sub/b.wav there: b.wav was neither analysed nor listed."""
    cat = tmp_path / "in"
    out = cat / "sub"
    (out / "deeper").mkdir(parents=True)
    (out / "a-0123456789ab").mkdir()
    (out / "a-0123456789ab" / "result.json").write_text("{}")
    (out / "a-0123456789ab" / "stray.wav").write_bytes(b"")     # the scan's own folder
    (out / ".tmp-a-0123456789ab").mkdir()
    (out / ".tmp-a-0123456789ab" / "x.wav").write_bytes(b"")
    for name in ("a.wav", "sub/b.wav", "sub/deeper/c.flac", "sub/summary.json"):
        (cat / name).write_bytes(b"")
    found = discover([cat], output=out)
    assert found.files == [cat / "a.wav"]
    skipped = {Path(p).relative_to(cat).as_posix(): why for p, why in found.skipped}
    assert sorted(skipped) == ["sub/b.wav", "sub/deeper/c.flac"], skipped
    assert all("inside the output folder" in why for why in skipped.values())


# --- 4: a folder that cannot be read --------------------------------------------------------


def _unreadable(monkeypatch, folder: Path) -> None:
    """``folder`` cannot be listed (as chmod 000 does for anyone but root)."""
    real = os.scandir

    def scandir(path="."):
        if os.fspath(path) == os.fspath(folder):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)


def test_a_folder_that_cannot_be_read_is_a_failed_input_until_it_is_read(
        tmp_path, tiny_model_dir, monkeypatch):
    """It was a `skipped:` line with exit status 0, and the catalog did not mention it,
    while --help says 0 means every file was analysed."""
    cat = tmp_path / "in"
    (cat / "locked").mkdir(parents=True)
    encode_audio(cat / "a.flac", make_tone(3.0), SR)
    encode_audio(cat / "locked" / "b.flac", make_tone(3.0, 330.0), SR)
    out = tmp_path / "out"
    args = ["scan", str(cat), "-o", str(out), "--model", str(tiny_model_dir),
            "--report", "none", "--unsigned", "--quiet"]
    with monkeypatch.context() as m:
        _unreadable(m, cat / "locked")
        found = discover([cat])
        assert found.failed == [(str(cat / "locked"), "cannot read folder: Permission denied")]
        assert not found.skipped
        res = run(args)
    assert res.exit_code == 1, res.output
    failed = [r for r in rows(out) if r["status"] == "error"]
    assert [(r["path"], "cannot read folder" in r["error"]) for r in failed] == \
        [(str(cat / "locked"), True)]
    with monkeypatch.context() as m:                    # an unreadable input folder too
        _unreadable(m, cat)
        assert [p for p, _ in discover([cat]).failed] == [str(cat)]
    res = run(args)                                     # readable again: its row goes
    assert res.exit_code == 0, res.output
    assert sorted((Path(r["path"]).name, r["status"]) for r in rows(out)) == \
        [("a.flac", "ok"), ("b.flac", "ok")]


# --- 5: a file replaced between its hash and its analysis -----------------------------------


def test_a_file_replaced_after_it_named_its_folder_fails(tmp_path, detector, monkeypatch):
    """The folder-naming hash was taken before analyse_track's identity check began: a file
    replaced in between got a folder named after audio it no longer held."""
    cat = tmp_path / "cat"
    cat.mkdir()
    encode_audio(cat / "song.flac", make_tone(3.0), SR)
    encode_audio(tmp_path / "other.flac", make_tone(3.0, 440.0, seed=3), SR)
    real = batch.check_finished

    def check_then_swap(*args, **kwargs):
        found = real(*args, **kwargs)
        if (tmp_path / "other.flac").exists():
            os.replace(tmp_path / "other.flac", cat / "song.flac")   # like rsync
        return found

    monkeypatch.setattr(batch, "check_finished", check_then_swap)
    out = tmp_path / "out"
    result = scan([cat], out, detector, options=ScanOptions(formats=()))
    errors = [e.error for e in result.entries if e.error]
    assert len(errors) == 1 and "hashed to name its report folder" in errors[0], errors
    assert track_folders(out) == []


# --- 6: a path list with a byte order mark --------------------------------------------------


def test_a_path_list_with_a_byte_order_mark_keeps_its_first_path(tmp_path):
    """Notepad's "UTF-8 with BOM": the mark became part of the first path, which was then
    reported missing."""
    listing = tmp_path / "list.txt"
    listing.write_bytes("\ufeffa.flac\nb.flac\n".encode("utf-8"))
    assert read_path_list(listing) == [str(tmp_path / "a.flac"), str(tmp_path / "b.flac")]
