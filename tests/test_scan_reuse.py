"""Reruns and shared output folders: a finished folder is reused only when it verifies, one
scan at a time per folder, and the catalog keeps every verified track folder present."""

import datetime as _dt
import itertools
import json
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from conftest import SR, make_tone
from musicbrain_cli.audio.encode import encode_audio
from musicbrain_cli.cli import main
from musicbrain_cli.report import init_keys, write_manifest


def run(args):
    return CliRunner().invoke(main, args, catch_exceptions=False)


def rows(out: Path) -> dict:
    data = json.loads((out / "summary.json").read_text(encoding="utf-8"))["tracks"]
    return {Path(r["path"]).name: r for r in data}


@pytest.fixture(scope="module")
def scanned(tmp_path_factory, tiny_model_dir):
    """Two tones scanned and signed (keys created, hence pinned, by the scan)."""
    root = tmp_path_factory.mktemp("reuse")
    cat = root / "cat"
    cat.mkdir()
    encode_audio(cat / "a.flac", make_tone(4.0, 220.0, 0), SR)
    encode_audio(cat / "b.flac", make_tone(4.0, 330.0, 1), SR)
    encode_audio(root / "c.flac", make_tone(4.0, 440.0, 2), SR)
    keys = root / "keys"
    res = run(["scan", str(cat), "-o", str(root / "out"), "--model", str(tiny_model_dir),
               "--report", "html", "--key", str(keys), "--quiet"])
    assert res.exit_code == 0, res.output
    return root


@pytest.fixture
def setup(scanned, tmp_path, tiny_model_dir):
    shutil.copytree(scanned / "out", tmp_path / "out")
    def scan_args(*inputs):
        return ["scan", *map(str, inputs), "-o", str(tmp_path / "out"), "--model",
                str(tiny_model_dir), "--report", "html", "--key", str(scanned / "keys"),
                "--quiet"]
    return scanned, tmp_path / "out", scan_args


def _rows_named(out: Path, name: str) -> list:
    """The catalog rows of ``out`` whose path ends in the file name ``name``."""
    data = json.loads((out / "summary.json").read_text(encoding="utf-8"))["tracks"]
    return [r for r in data if Path(r["path"]).name == name]


def _folder_of(out: Path, name: str) -> Path:
    return out / Path(rows(out)[name]["report"]).parent


def test_a_rerun_redoes_an_edited_or_foreign_folder_instead_of_reusing_it(setup, tmp_path):
    """Observation 3: a rerun reused an edited result.json (human -> ai 0.970), exited 0 and
    re-signed a summary showing the forged verdict."""
    root, out, scan_args = setup
    honest = rows(out)["a.flac"]
    folder = _folder_of(out, "a.flac")
    track = json.loads((folder / "result.json").read_text(encoding="utf-8"))
    track["verdict"].update(label="ai", p_ai=0.97)
    (folder / "result.json").write_text(json.dumps(track), encoding="utf-8")
    # b's folder re-sealed by a forger's key: intact, but not the examiner's
    write_manifest(_folder_of(out, "b.flac"), None, None, init_keys(tmp_path / "forger"))

    res = run(scan_args(root / "cat"))
    assert res.exit_code == 0, res.output
    assert "0 skipped (already complete)" in res.output
    redone = [line for line in res.output.splitlines() if line.startswith("redone:")]
    assert len(redone) == 2
    assert any("a.flac" in line and "file result.json" in line for line in redone)
    assert any("b.flac" in line and "signer" in line for line in redone)
    again = rows(out)["a.flac"]
    assert again["p_ai"] == honest["p_ai"] and again["verdict"] == honest["verdict"]
    assert run(["verify", str(out)]).exit_code == 0


def test_a_subset_scan_adds_to_the_catalog_and_never_drops(setup):
    """Observation 4: a later scan of a subset silently dropped the other tracks from
    summary.json and index.html, and the catalog still verified."""
    root, out, scan_args = setup
    res = run(scan_args(root / "cat" / "a.flac"))
    assert res.exit_code == 0, res.output
    assert set(rows(out)) == {"a.flac", "b.flac"}
    assert "1 track folder(s) kept from earlier scans" in res.output
    res = run(scan_args(root / "c.flac"))
    assert res.exit_code == 0, res.output
    assert set(rows(out)) == {"a.flac", "b.flac", "c.flac"}
    index = (out / "index.html").read_text(encoding="utf-8")
    assert all(n in index for n in ("a.flac", "b.flac", "c.flac"))
    sealed = json.loads((out / "catalog-manifest.json").read_text())["tracks"]
    assert len(sealed) == 3
    ok = run(["verify", str(out)])
    assert ok.exit_code == 0 and ok.output.startswith("VALID") and "3 track folder(s)" in ok.output


def test_a_folder_that_does_not_verify_is_left_out_of_the_catalog_with_a_reason(setup, tmp_path):
    root, out, scan_args = setup
    stray = _folder_of(out, "b.flac")
    (stray / "notes.txt").write_text("added later")
    res = run(scan_args(root / "cat" / "a.flac"))
    assert res.exit_code == 0
    assert f"not in the catalog: {stray.name}" in res.output and "unlisted files" in res.output
    assert set(rows(out)) == {"a.flac"}


def test_one_scan_at_a_time_per_output_folder(setup, monkeypatch):
    """Observation 4: two scans into one folder each rewrote the catalog without the
    other's tracks. The second now stops at once and names the holder, before it loads the
    model (it loaded it first: 17 s with the shipped one; README review)."""
    from musicbrain_cli.model.inference import Detector
    from musicbrain_cli.scan.batch import LOCK_NAME, output_lock

    root, out, scan_args = setup
    before = (out / "summary.json").read_bytes()
    loads = []
    real = Detector.from_pretrained.__func__
    monkeypatch.setattr(Detector, "from_pretrained",
                        classmethod(lambda cls, *a, **k: loads.append(a) or real(cls, *a, **k)))
    with output_lock(out):
        res = CliRunner().invoke(main, scan_args(root / "c.flac"))
    assert loads == []
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit)
    assert "in use by another scan" in res.output and f"pid {os.getpid()} on host" in res.output
    assert len(res.output.strip().splitlines()) == 1
    assert (out / "summary.json").read_bytes() == before
    assert (out / LOCK_NAME).is_file()
    assert run(scan_args(root / "c.flac")).exit_code == 0      # released with its holder


def test_an_output_folder_that_cannot_be_made_is_a_one_line_error(tmp_path, tiny_model_dir):
    """Observation 9: an output folder under /proc gave a traceback."""
    encode_audio(tmp_path / "a.flac", make_tone(3.0), SR)
    for target in ("/proc/musicbrain-no-such/out", "/proc/self"):
        res = CliRunner().invoke(main, ["scan", str(tmp_path / "a.flac"), "-o", target,
                                        "--model", str(tiny_model_dir), "--unsigned", "--quiet"])
        assert res.exit_code == 1, (target, res.output)
        assert isinstance(res.exception, SystemExit) and "Traceback" not in res.output
        assert res.output.startswith("musicbrain: error:") and target in res.output


def test_a_rerun_asking_for_another_format_redoes_the_folder(setup):
    """A folder scanned for HTML had no PDF when a rerun asked for one, yet was reused: the
    catalog then linked a report.pdf that did not exist."""
    root, out, scan_args = setup
    args = scan_args(root / "cat" / "a.flac")
    args[args.index("html")] = "both"
    res = run(args)
    assert res.exit_code == 0 and "has no report.pdf" in res.output, res.output
    assert rows(out)["a.flac"]["report"].endswith("/report.pdf")
    assert (_folder_of(out, "a.flac") / "report.pdf").is_file()
    v = run(["verify", str(out)]); assert v.exit_code == 0, v.output


def test_an_unsigned_scan_never_unsigns_a_signed_catalog(setup, tiny_model_dir):
    """An --unsigned rerun into a signed output deleted the catalog's signature and
    rewrote it unsigned (exit 0, nothing analysed): the folder no longer verified."""
    from musicbrain_cli.errors import InputError
    from musicbrain_cli.scan.batch import scan

    root, out, _ = setup
    def catalog():      # the lock file records each scan's start: not part of the catalog
        return {p.name: p.read_bytes() for p in out.iterdir()
                if p.is_file() and not p.name.startswith(".")}

    before = catalog()
    res = CliRunner().invoke(main, ["scan", str(root / "cat" / "a.flac"), "-o", str(out),
                                    "--model", str(tiny_model_dir), "--unsigned", "--quiet"])
    assert res.exit_code == 2 and "is signed" in res.output, res.output
    with pytest.raises(InputError, match="is signed"):          # the library refuses too
        scan([root / "cat" / "a.flac"], out, None, keys=None)
    assert catalog() == before
    assert run(["verify", str(out)]).exit_code == 0


def test_a_rerun_with_another_model_or_other_options_analyses_again(setup, tmp_path):
    """Audit (session 26): a rerun with --model (another card: other thresholds) or --notes
    returned the earlier verdicts as "already complete", its result.json still naming the
    earlier model and options."""
    root, out, scan_args = setup
    same = run(scan_args(root / "cat" / "a.flac"))
    assert "1 skipped (already complete)" in same.output, same.output
    args = scan_args(root / "cat" / "a.flac") + ["--notes", "builtin"]
    res = run(args)
    assert res.exit_code == 0 and "0 skipped (already complete)" in res.output, res.output
    assert any(line.startswith("redone:") and "other analysis options (notes)" in line
               for line in res.output.splitlines()), res.output
    track = json.loads((_folder_of(out, "a.flac") / "result.json").read_text(encoding="utf-8"))
    assert track["options"]["notes"] == "builtin"
    # the same weights with another card (a stricter threshold) is another model too
    model = tmp_path / "model2"
    shutil.copytree(_model_dir(args), model)
    card = json.loads((model / "model_card.json").read_text(encoding="utf-8"))
    card.setdefault("thresholds", {})["detection"] = 0.999
    (model / "model_card.json").write_text(json.dumps(card), encoding="utf-8")
    args[args.index("--model") + 1] = str(model)
    res = run(args)
    assert "0 skipped (already complete)" in res.output, res.output
    assert any(line.startswith("redone:") and "another model" in line
               for line in res.output.splitlines()), res.output
    track = json.loads((_folder_of(out, "a.flac") / "result.json").read_text(encoding="utf-8"))
    assert track["model"]["thresholds"]["detection"] == 0.999
    assert run(["verify", str(out)]).exit_code == 0


def _model_dir(args) -> Path:
    return Path(args[args.index("--model") + 1])


def test_an_input_that_now_fails_or_holds_other_audio_is_not_shown_with_its_old_verdict(setup):
    """Audit (session 26): a file that failed on a rerun was shown in the catalog as `ok`
    with the verdict of the audio it held before ("0 failed" in the index, VALID); a file
    replaced by other audio got two `ok` rows. The catalog describes each input as it is now."""
    root, out, scan_args = setup
    a = root / "cat" / "a.flac"
    saved = a.read_bytes()
    try:
        a.write_bytes(b"not audio at all" * 64)
        res = run(scan_args(a))
        assert res.exit_code == 1, res.output
        assert "not in the catalog" in res.output and "its input now fails" in res.output
        assert rows(out)["a.flac"]["status"] == "error"
        encode_audio(a, make_tone(4.0, 523.0, 5), SR)          # other, valid audio
        res = run(scan_args(a))
        assert res.exit_code == 0, res.output
        assert "now holds other audio" in res.output
        mine = _rows_named(out, "a.flac")
        assert len(mine) == 1 and mine[0]["status"] == "ok", mine
        assert rows(out)["b.flac"]["status"] == "ok"             # other inputs untouched
        v = run(["verify", str(out)])
        assert v.exit_code == 0, v.output
    finally:
        a.write_bytes(saved)


def test_keys_encrypted_with_a_passphrase_sign_a_scan(tmp_path, tiny_model_dir, monkeypatch):
    """Audit (session 26): `keys init --passphrase-env` made keys that no scan could use:
    scan had no way to take the passphrase. It takes it from an environment variable too,
    never from the command line that the report records."""
    from musicbrain_cli.report import init_keys

    keys = init_keys(tmp_path / "k", passphrase=b"s3cret")
    encode_audio(tmp_path / "a.flac", make_tone(4.0, 220.0, 0), SR)
    monkeypatch.setenv("MUSICBRAIN_TRUST_STORE", str(tmp_path / "trust.json"))
    args = ["scan", str(tmp_path / "a.flac"), "-o", str(tmp_path / "out"), "--model",
            str(tiny_model_dir), "--report", "html", "--keys", str(tmp_path / "k"), "--quiet"]
    locked = CliRunner().invoke(main, args)
    assert locked.exit_code == 1 and "passphrase" in locked.output, locked.output
    assert CliRunner().invoke(main, args + ["--passphrase-env", "MB_NOT_SET"]).exit_code == 2
    monkeypatch.setenv("MB_PASS", "s3cret")
    res = run(args + ["--passphrase-env", "MB_PASS"])
    assert res.exit_code == 0, res.output
    track = json.loads(next((tmp_path / "out").glob("*/result.json")).read_text())
    assert "s3cret" not in json.dumps(track)
    v = run(["verify", str(tmp_path / "out"), "--keys", str(tmp_path / "k")])
    assert v.exit_code == 0 and keys.manifest_key_fingerprint in v.output, v.output


def test_a_fixed_file_loses_its_old_failure_row_however_its_path_is_spelled(
        tmp_path, tiny_model_dir, monkeypatch):
    """Audit (session 26): a failure recorded as `t7/bad.flac` stayed in the catalog (and in
    the index's failed count) after the same file, scanned as `/abs/t7/bad.flac`, was fixed
    and analysed."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MUSICBRAIN_TRUST_STORE", str(tmp_path / "trust.json"))
    (tmp_path / "t7").mkdir()
    (tmp_path / "t7" / "bad.flac").write_bytes(b"garbage" * 100)
    args = ["-o", str(tmp_path / "out"), "--model", str(tiny_model_dir), "--report", "none",
            "--unsigned", "--quiet"]
    assert CliRunner().invoke(main, ["scan", "t7", *args]).exit_code == 1
    encode_audio(tmp_path / "t7" / "bad.flac", make_tone(4.0, 220.0, 0), SR)
    res = run(["scan", str(tmp_path / "t7"), *args])
    assert res.exit_code == 0, res.output
    data = json.loads((tmp_path / "out" / "summary.json").read_text(encoding="utf-8"))["tracks"]
    assert [r["status"] for r in data] == ["ok"], data


def test_a_rerun_with_another_format_keeps_the_reports_the_folder_had(setup, tiny_model_dir):
    """A folder scanned for HTML and redone for a PDF lost its report.html: a report the
    user was given vanished from the catalog without a word. Forced reruns too."""
    root, out, scan_args = setup
    args = scan_args(root / "cat" / "a.flac")
    args[args.index("html")] = "pdf"
    res = run(args)
    assert res.exit_code == 0 and "report.html is made again too" in res.output, res.output
    folder = _folder_of(out, "a.flac")
    assert (folder / "report.pdf").is_file() and (folder / "report.html").is_file()
    res = run([*args, "--force"])
    assert res.exit_code == 0, res.output
    folder = _folder_of(out, "a.flac")
    assert (folder / "report.pdf").is_file() and (folder / "report.html").is_file()
    assert not (_folder_of(out, "b.flac") / "report.pdf").exists()     # only what was rerun
    v = run(["verify", str(out)]); assert v.exit_code == 0, v.output


def test_changed_audio_rescanned_under_another_spelling_of_its_path_drops_the_old_verdict(
        tmp_path, tiny_model_dir, monkeypatch):
    """Audit (session 28): scanned as `in3`, changed, scanned again as `/abs/in3`: the
    catalog kept the old audio's verdict beside the new one (9 rows for 8 inputs), VALID."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MUSICBRAIN_TRUST_STORE", str(tmp_path / "trust.json"))
    (tmp_path / "in3").mkdir()
    song = tmp_path / "in3" / "gen.flac"
    encode_audio(song, make_tone(4.0, 220.0, 0), SR)
    args = ["-o", str(tmp_path / "out"), "--model", str(tiny_model_dir), "--report", "none",
            "--unsigned", "--quiet"]
    assert CliRunner().invoke(main, ["scan", "in3", *args]).exit_code == 0
    encode_audio(song, make_tone(4.0, 523.0, 5), SR)                  # other audio
    res = run(["scan", str(tmp_path / "in3"), *args])
    assert res.exit_code == 0, res.output
    assert "now holds other audio" in res.output
    data = json.loads((tmp_path / "out" / "summary.json").read_text(encoding="utf-8"))["tracks"]
    assert len(data) == 1 and data[0]["status"] == "ok", data


def test_a_kill_between_the_two_renames_of_a_redone_folder_loses_no_report(setup):
    """Audit (session 28): a scan killed after a finished folder X was moved to .tmp-+old-X
    and before the sealed .tmp-X took its place left only those two; the next scan removed
    both as leftovers and its catalog dropped the track without a word (VALID)."""
    root, out, scan_args = setup
    folder = _folder_of(out, "a.flac")
    sealed = out / f".tmp-{folder.name}"
    shutil.copytree(folder, sealed)                  # the new report, sealed before renaming
    folder.rename(out / f".tmp-+old-{folder.name}")   # the kill came here
    res = run(scan_args(root / "c.flac"))            # any later scan into the folder
    assert res.exit_code == 0, res.output
    assert folder.is_dir() and not sealed.exists()
    assert set(rows(out)) == {"a.flac", "b.flac", "c.flac"}
    assert rows(out)["a.flac"]["status"] == "ok"
    v = run(["verify", str(out)])
    assert v.exit_code == 0, v.output
    # killed before the new folder was complete: the old one comes back
    folder.rename(out / f".tmp-+old-{folder.name}")
    assert run(scan_args(root / "c.flac")).exit_code == 0
    assert folder.is_dir() and rows(out)["a.flac"]["status"] == "ok"


def test_a_folder_that_cannot_be_written_fails_its_track_and_the_scan_goes_on(
        setup, monkeypatch):
    """Audit (session 28): an OSError renaming one report folder stopped the whole scan with
    a one-line error: no catalog, every other redone track out of it."""
    from musicbrain_cli.scan import batch

    root, out, scan_args = setup
    folder_a = _folder_of(out, "a.flac").name
    real_rename = Path.rename

    def rename(self, target):
        if Path(target).name == folder_a and self.name.startswith(".tmp-") \
                and not self.name.startswith(".tmp-+old-"):
            raise PermissionError(1, "Operation not permitted", str(self))
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", rename)
    res = CliRunner().invoke(main, [*scan_args(root / "cat"), "--report", "pdf"])
    assert res.exit_code == 1, res.output
    assert "cannot write the report folder" in res.output and "Operation not permitted" in res.output
    monkeypatch.setattr(Path, "rename", real_rename)
    # the verified report it was replacing is back in place, b's new one is written; the
    # console and the exit status say a's redo failed, and since a's audio is the one that
    # report describes, the catalog keeps it (session 29 audit: it was dropped, the input
    # blamed, and an unchanged file lost its verified result)
    assert (out / folder_a / "report.html").is_file()
    got = rows(out)
    assert got["b.flac"]["status"] == "ok" and got["b.flac"]["report"].endswith("report.pdf")
    assert got["a.flac"]["status"] == "ok" and got["a.flac"]["report"] == f"{folder_a}/report.html"
    assert f"kept in the catalog: {folder_a}" in " ".join(res.output.split())
    assert not list(out.glob(".tmp-*")) and batch.TMP_PREFIX == ".tmp-"


def test_the_input_folder_as_its_own_output_folder_is_refused(tmp_path, tiny_model_dir):
    """Audit (session 28): `scan in5 -o in5` looked at none of in5's files, said
    "0 recording(s)" and exited 0."""
    (tmp_path / "in5").mkdir()
    encode_audio(tmp_path / "in5" / "a.flac", make_tone(4.0, 220.0, 0), SR)
    res = CliRunner().invoke(main, ["scan", str(tmp_path / "in5"), "-o", str(tmp_path / "in5"),
                                    "--model", str(tiny_model_dir), "--unsigned", "--quiet"])
    assert res.exit_code == 2, res.output                  # a usage error, as README says
    assert "is the output folder itself" in res.output


def test_an_input_named_old_something_is_not_taken_for_an_old_copy(setup, tmp_path,
                                                                     tiny_model_dir):
    """Session 28 review: with ".tmp-old-" as the old copy's prefix, the temporary folder of
    an input named `old-abc.flac` read as the old copy of a folder `abc-...`: a killed redo
    moved its new report to a stray folder, and a half-written first write was promoted."""
    root, out, scan_args = setup
    song = tmp_path / "old-abc.flac"
    encode_audio(song, make_tone(4.0, 262.0, 7), SR)
    assert run(scan_args(song)).exit_code == 0
    folder = _folder_of(out, "old-abc.flac")
    half = out / f".tmp-{folder.name}"               # a first write of it, killed half-way
    shutil.copytree(folder, half)
    (half / "manifest.json").unlink()
    res = run(scan_args(song))
    assert res.exit_code == 0, res.output
    assert not half.exists() and sorted(p.name for p in out.iterdir() if p.name.startswith("abc"))== []
    assert run(["verify", str(out)]).exit_code == 0


def test_a_relative_path_from_another_working_folder_is_another_input(tmp_path, tiny_model_dir,
                                                                       monkeypatch):
    """Session 28 review: `cd d1 && scan a.flac`, then `cd d2 && scan /abs/d2/a.flac` (other
    audio, d1/a.flac unchanged): resolving the recorded `a.flac` from d2 took d1's report for
    an earlier result of d2's file and dropped it from the catalog."""
    monkeypatch.setenv("MUSICBRAIN_TRUST_STORE", str(tmp_path / "trust.json"))
    args = ["-o", str(tmp_path / "out"), "--model", str(tiny_model_dir), "--report", "none",
            "--unsigned", "--quiet"]
    for name, freq in (("d1", 220.0), ("d2", 523.0)):
        (tmp_path / name).mkdir()
        encode_audio(tmp_path / name / "a.flac", make_tone(4.0, freq, 0), SR)
    monkeypatch.chdir(tmp_path / "d1")
    assert CliRunner().invoke(main, ["scan", "a.flac", *args]).exit_code == 0
    monkeypatch.chdir(tmp_path / "d2")
    res = run(["scan", str(tmp_path / "d2" / "a.flac"), *args])
    assert res.exit_code == 0 and "now holds other audio" not in res.output, res.output
    data = json.loads((tmp_path / "out" / "summary.json").read_text(encoding="utf-8"))["tracks"]
    assert len(data) == 2 and {r["status"] for r in data} == {"ok"}, data
    # and the same file, changed, rescanned from elsewhere under another spelling: one row
    encode_audio(tmp_path / "d1" / "a.flac", make_tone(4.0, 330.0, 1), SR)
    monkeypatch.chdir(tmp_path)
    res = run(["scan", "d1/../d1/a.flac", *args])
    assert "now holds other audio" in res.output, res.output
    data = json.loads((tmp_path / "out" / "summary.json").read_text(encoding="utf-8"))["tracks"]
    assert len(data) == 2, data


def test_a_retried_track_puts_its_own_interrupted_folder_back_first(setup, tiny_model_dir):
    """Audit (session 28, Ray engine): a worker killed between the two renames of a redone
    folder was retried in the same scan; the retry found no folder, wrote one with only the
    format asked for (the user's earlier PDF lost) and the old copy was deleted by the next
    scan. The task now puts its own folder back before checking it."""
    from musicbrain_cli.model.inference import Detector
    from musicbrain_cli.report import load_keys
    from musicbrain_cli.scan.batch import ScanOptions, process_track

    root, out, scan_args = setup
    folder = _folder_of(out, "a.flac")
    (folder / "report.pdf").write_bytes(b"%PDF an earlier format")   # the user's PDF
    new = out / f".tmp-{folder.name}"
    shutil.copytree(folder, new)                     # the sealed new folder
    folder.rename(out / f".tmp-+old-{folder.name}")  # the worker died here
    det = Detector.from_pretrained(tiny_model_dir, device="cpu")
    outcome = process_track(root / "cat" / "a.flac", out, det, keys=load_keys(root / "keys"),
                            options=ScanOptions(formats=("html",)))
    assert outcome.entry.error is None and folder.is_dir() and not new.exists()
    # put back, then redone (the stand-in PDF is sealed by no manifest) with every format
    # it held: without the recovery the retry found no folder and wrote the HTML alone
    assert (folder / "report.pdf").read_bytes().startswith(b"%PDF-")
    assert (folder / "report.html").is_file()


def test_a_superseded_folder_stays_out_of_the_catalog_on_a_later_subset_scan(setup):
    """Session 28 review: a changed file rescanned left its old folder out of the catalog,
    but the next scan of another file brought it back beside the new one (two rows for one
    input, one with the old audio's verdict)."""
    root, out, scan_args = setup
    a = root / "cat" / "a.flac"
    saved = a.read_bytes()
    try:
        encode_audio(a, make_tone(4.0, 523.0, 5), SR)        # other audio
        assert "now holds other audio" in run(scan_args(a)).output
        res = run(scan_args(root / "c.flac"))                 # another subset
        assert res.exit_code == 0, res.output
        # marked superseded when the change was found (session 29: the index remembers)
        assert "a later scan found its input failing or holding other audio" in \
            " ".join(res.output.split())
        data = json.loads((out / "summary.json").read_text(encoding="utf-8"))["tracks"]
        assert len([r for r in data if Path(r["path"]).name == "a.flac"]) == 1, data
        assert run(["verify", str(out)]).exit_code == 0
    finally:
        a.write_bytes(saved)


def test_a_hostile_inputs_index_is_no_index(setup):
    """Session 28 review: a deeply nested `.musicbrain-inputs.json` crashed every scan into
    the folder after the analysis (RecursionError), so no catalog was written."""
    root, out, scan_args = setup
    (out / ".musicbrain-inputs.json").write_text("[" * 100000 + "]" * 100000)
    res = run(scan_args(root / "c.flac"))
    assert res.exit_code == 0, res.output
    assert "c.flac" in rows(out)


def _catalog_folder(out: Path, path: Path) -> Path | None:
    data = json.loads((out / "summary.json").read_text(encoding="utf-8"))["tracks"]
    found = [r for r in data if r["path"] == str(path)]
    assert len(found) <= 1, found
    return out / Path(found[0]["report"]).parent if found and found[0].get("report") else None


@pytest.mark.parametrize("index_lost", [False, True])
def test_an_input_that_now_fails_stays_failed_after_a_scan_of_other_files(setup, index_lost):
    """Session 29 audit: a file that had become unreadable was listed as failed, but the next
    scan of another file brought its old folder back as `ok` (the verdict on audio it no
    longer holds) and dropped the failure row; and the review: the same with the index lost
    (an output folder copied without dot files), where the previous catalog's row must win."""
    root, out, scan_args = setup
    a = root / "cat" / "a.flac"
    saved = a.read_bytes()
    try:
        a.write_bytes(os.urandom(5000))
        assert run(scan_args(a)).exit_code == 1
        assert rows(out)["a.flac"]["status"] == "error"
        if index_lost:
            (out / ".musicbrain-inputs.json").unlink()
        res = run(scan_args(root / "c.flac"))
        assert res.exit_code == 0, res.output
        data = json.loads((out / "summary.json").read_text(encoding="utf-8"))["tracks"]
        assert [r["status"] for r in data if Path(r["path"]).name == "a.flac"] == ["error"]
        assert run(["verify", str(out)]).exit_code == 0
    finally:
        a.write_bytes(saved)


def test_scans_within_one_second_do_not_tie(setup, monkeypatch):
    """Session 29 review: the inputs index stamped scans to the second, so a file reused by
    one scan and found failing by the next in the same second had `superseded == seen`, and
    the scan after that, with only the index to go by (the catalog's failure row lost),
    brought its old folder back as `ok`. The clock here stays within one second (only its
    microseconds move), as it would on a fast machine; fails with index times to the second."""
    from musicbrain_cli.scan import batch

    base = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0)
    ticks = itertools.count(1)

    class OneSecond:
        @staticmethod
        def now(tz=None):
            return (base + _dt.timedelta(microseconds=next(ticks))).astimezone(tz)

    monkeypatch.setattr(batch, "_dt", SimpleNamespace(datetime=OneSecond, timezone=_dt.timezone))
    root, out, scan_args = setup
    a = root / "cat" / "a.flac"
    saved = a.read_bytes()
    try:
        assert run(scan_args(a)).exit_code == 0                  # reused: seen now
        a.write_bytes(os.urandom(5000))
        assert run(scan_args(a)).exit_code == 1                  # failing: superseded now
        (out / "summary.json").unlink()      # the catalog's failure row lost: the index alone
        assert run(scan_args(root / "c.flac")).exit_code == 0
        assert rows(out).get("a.flac", {}).get("status") != "ok", rows(out).get("a.flac")
    finally:
        a.write_bytes(saved)


def test_a_clock_stepped_back_does_not_make_a_stale_folder_the_current_one(setup, monkeypatch):
    """Review (session 45): the index orders a folder's matches and supersessions by the
    scans' wall-clock times. Two scans with the clock an hour ahead (another workstation on a
    shared folder, or before an NTP step), then two on the right clock: the catalog showed
    the folder of audio the file no longer held, and hid the current one."""
    from musicbrain_cli.scan import batch

    skew = {"s": _dt.timedelta(hours=1)}

    class Skewed:
        @staticmethod
        def now(tz=None):
            return _dt.datetime.now(tz) + skew["s"]

    monkeypatch.setattr(batch, "_dt", SimpleNamespace(datetime=Skewed, timezone=_dt.timezone))
    root, out, scan_args = setup
    a = root / "cat" / "a.flac"
    saved = a.read_bytes()
    original = _folder_of(out, "a.flac").name
    try:
        assert run(scan_args(a)).exit_code == 0                  # ahead: reused
        encode_audio(a, make_tone(4.0, 523.0, 5), SR)
        assert run(scan_args(a)).exit_code == 0                  # ahead: other audio
        assert _folder_of(out, "a.flac").name != original
        skew["s"] = _dt.timedelta(0)                            # the clock put right
        a.write_bytes(saved)
        assert run(scan_args(a)).exit_code == 0                  # back to the first audio
        assert _folder_of(out, "a.flac").name == original
        assert run(scan_args(root / "c.flac")).exit_code == 0   # another subset
        mine = _rows_named(out, "a.flac")
        assert len(mine) == 1 and mine[0]["report"].startswith(original + "/"), mine
    finally:
        a.write_bytes(saved)


def test_a_scan_killed_after_sealing_a_changed_files_folder_leaves_no_stale_row(
        setup, monkeypatch):
    """Review (session 45): the inputs index was written only at the end of a scan. A rescan
    killed after it sealed a changed file's new folder left the index without it, and every
    later scan of other files showed that file twice, once with the verdict on audio it no
    longer holds (a relative recorded path is not grouped from here). Each sealed folder
    now enters the index at once."""
    from musicbrain_cli.scan import batch

    class Killed(BaseException):
        pass

    root, out, scan_args = setup
    a = root / "cat" / "a.flac"
    saved = a.read_bytes()
    original = _folder_of(out, "a.flac").name
    try:
        encode_audio(a, make_tone(4.0, 523.0, 5), SR)          # other audio
        with monkeypatch.context() as m:
            def killed(*args, **kwargs):                        # the scan dies after sealing
                raise Killed
            m.setattr(batch, "_keep_other_folders", killed)
            m.chdir(root)                                       # typed as a relative path
            with pytest.raises(Killed):
                run(scan_args(Path("cat") / "a.flac"))
        new = [p.name for p in out.iterdir() if p.name.startswith("a-") and p.name != original]
        assert len(new) == 1 and (out / new[0] / "result.json").exists()
        assert run(scan_args(root / "c.flac")).exit_code == 0   # another subset
        mine = _rows_named(out, "a.flac")
        assert len(mine) == 1 and mine[0]["report"].startswith(new[0] + "/"), mine
    finally:
        a.write_bytes(saved)


def test_an_input_back_to_its_earlier_audio_shows_that_audios_report(setup):
    """Session 29 audit: after a file changed and changed back, the folder reused for it lost
    to the later-analysed folder of the other audio on the next scan of another file."""
    root, out, scan_args = setup
    a = root / "cat" / "a.flac"
    saved = a.read_bytes()
    original = _folder_of(out, "a.flac").name
    try:
        encode_audio(a, make_tone(4.0, 523.0, 5), SR)          # other audio
        assert run(scan_args(a)).exit_code == 0
        assert _folder_of(out, "a.flac").name != original
        a.write_bytes(saved)                                    # back again: reused
        assert run(scan_args(a)).exit_code == 0
        assert _folder_of(out, "a.flac").name == original
        assert run(scan_args(root / "c.flac")).exit_code == 0   # another subset
        mine = _rows_named(out, "a.flac")
        assert len(mine) == 1 and mine[0]["report"].startswith(original + "/"), mine
    finally:
        a.write_bytes(saved)


def test_the_twin_of_a_deleted_input_never_takes_over_its_folder(setup, tmp_path):
    """Session 29 audit: once one of two inputs with the same audio and name was deleted, the
    other took over its folder (and --force would overwrite that report), and its own
    folder was left out as holding 'other audio'."""
    root, out, scan_args = setup
    x, y = tmp_path / "X", tmp_path / "Y"
    x.mkdir()
    y.mkdir()
    shutil.copy(root / "c.flac", x / "t.flac")
    shutil.copy(root / "c.flac", y / "t.flac")
    assert run(scan_args(x / "t.flac")).exit_code == 0
    assert run(scan_args(y / "t.flac")).exit_code == 0
    fx, fy = _catalog_folder(out, x / "t.flac"), _catalog_folder(out, y / "t.flac")
    assert fx is not None and fy is not None and fx != fy
    (x / "t.flac").unlink()
    for extra in ([], ["--force"]):
        res = run([*scan_args(y / "t.flac"), *extra])
        assert res.exit_code == 0, res.output
        assert _catalog_folder(out, y / "t.flac") == fy
        recorded = json.loads((fx / "result.json").read_text(encoding="utf-8"))["input"]["path"]
        assert recorded == str(x / "t.flac")                    # X's report untouched
        assert _catalog_folder(out, x / "t.flac") == fx         # and still in the catalog


@pytest.mark.parametrize("schema", ["musicbrain.inputs/2", None])
def test_an_edited_inputs_index_cannot_drop_other_inputs_folders(setup, schema):
    """Session 29 audit: the index is unsigned bookkeeping; entries pointing a.flac's folder
    at c.flac and b.flac's at a path that does not exist dropped both from the catalog."""
    root, out, scan_args = setup
    fa, fb = _folder_of(out, "a.flac").name, _folder_of(out, "b.flac").name
    lies = {fa: str((root / "c.flac").resolve()), fb: "/nowhere/z"}
    data = (lies if schema is None else
            {"schema": schema, "folders": {k: {"input": v, "seen": "9999"} for k, v in lies.items()},
             "failures": {}})
    (out / ".musicbrain-inputs.json").write_text(json.dumps(data))
    res = run(scan_args(root / "c.flac"))
    assert res.exit_code == 0, res.output
    got = rows(out)
    assert got["a.flac"]["status"] == got["b.flac"]["status"] == got["c.flac"]["status"] == "ok"
    assert _folder_of(out, "a.flac").name == fa and _folder_of(out, "b.flac").name == fb
    index = json.loads((out / ".musicbrain-inputs.json").read_text())
    assert fa not in index["folders"] and fb not in index["folders"]   # lies not kept as truth


def test_a_failure_row_is_not_dropped_for_another_folders_file_of_the_same_relative_path(
        setup, tmp_path, monkeypatch):
    """Session 29 audit: failure rows keep the path as typed; resolved from the next scan's
    working folder, `in/bad.flac` of another folder took the failure's place and it was
    dropped from the catalog."""
    root, out, scan_args = setup
    gx, gy = tmp_path / "GX" / "in", tmp_path / "GY" / "in"
    gx.mkdir(parents=True)
    gy.mkdir(parents=True)
    (gx / "bad.flac").write_bytes(os.urandom(5000))
    shutil.copy(root / "c.flac", gy / "bad.flac")
    monkeypatch.chdir(gx.parent)
    assert run(scan_args(Path("in/bad.flac"))).exit_code == 1
    monkeypatch.chdir(gy.parent)
    assert run(scan_args(Path("in/bad.flac"))).exit_code == 0
    data = json.loads((out / "summary.json").read_text(encoding="utf-8"))["tracks"]
    assert sorted(r["status"] for r in data if r["path"] == "in/bad.flac") == ["error", "ok"]


def _statuses(out: Path, shown: str) -> list:
    data = json.loads((out / "summary.json").read_text(encoding="utf-8"))["tracks"]
    return sorted(r["status"] for r in data if r["path"] == shown)


@pytest.mark.parametrize("drop_index", [False, True])
def test_two_files_behind_one_relative_path_keep_their_own_results(setup, tmp_path, monkeypatch,
                                                                   drop_index):
    """Session 29 review: `in/a.flac` typed in two working folders (symbolic links to two
    recordings) counted as one input once the index was left out (a link's real path does
    not end in its name), and the first file's verified result was dropped."""
    root, out, scan_args = setup
    (tmp_path / "takes").mkdir()
    shutil.copy(root / "c.flac", tmp_path / "takes" / "one.flac")
    shutil.copy(root / "cat" / "b.flac", tmp_path / "takes" / "two.flac")
    for w, take in (("w1", "one.flac"), ("w2", "two.flac")):
        (tmp_path / w / "in").mkdir(parents=True)
        os.symlink(tmp_path / "takes" / take, tmp_path / w / "in" / "a.flac")
    for w in ("w1", "w2"):
        monkeypatch.chdir(tmp_path / w)
        assert run(scan_args(Path("in/a.flac"))).exit_code == 0
    assert _statuses(out, "in/a.flac") == ["ok", "ok"]
    if drop_index:
        (out / ".musicbrain-inputs.json").unlink()
    monkeypatch.chdir(tmp_path)
    assert run(scan_args(root / "c.flac")).exit_code == 0
    assert _statuses(out, "in/a.flac") == ["ok", "ok"]


def test_a_linked_input_that_now_fails_stays_failed(setup, tmp_path):
    """Session 29 review: the mark that keeps a failing input's old folder out was dropped
    from the index for a symbolic link (its real path has another name)."""
    root, out, scan_args = setup
    (tmp_path / "lib").mkdir()
    take = tmp_path / "lib" / "take1.flac"
    shutil.copy(root / "c.flac", take)
    os.symlink(take, tmp_path / "lib" / "song.flac")
    song = tmp_path / "lib" / "song.flac"
    assert run(scan_args(song)).exit_code == 0
    take.write_bytes(os.urandom(5000))
    assert run(scan_args(song)).exit_code == 1
    assert run(scan_args(root / "c.flac")).exit_code == 0
    assert _statuses(out, str(song)) == ["error"]


def test_two_failures_showing_one_path_are_told_apart(setup, tmp_path, monkeypatch):
    """Session 29 review: failures were indexed by the path shown, so fixing one of two
    files shown as `in/bad.flac` cleared the other's failure row."""
    root, out, scan_args = setup
    for w in ("w1", "w2"):
        (tmp_path / w / "in").mkdir(parents=True)
        (tmp_path / w / "in" / "bad.flac").write_bytes(os.urandom(5000))
        monkeypatch.chdir(tmp_path / w)
        assert run(scan_args(Path("in/bad.flac"))).exit_code == 1
    assert _statuses(out, "in/bad.flac") == ["error", "error"]
    shutil.copy(root / "c.flac", tmp_path / "w2" / "in" / "bad.flac")     # w2's fixed
    assert run(scan_args(Path("in/bad.flac"))).exit_code == 0
    assert _statuses(out, "in/bad.flac") == ["error", "ok"]


def test_a_moved_project_reuses_its_folders_and_lists_each_input_once(setup, tmp_path,
                                                                       monkeypatch):
    """Session 29 review: after `mv p q`, `in/a.flac` scanned from q was analysed again into
    a second folder and listed twice (the index still named p's path)."""
    root, out, scan_args = setup
    (tmp_path / "p" / "in").mkdir(parents=True)
    shutil.copy(root / "c.flac", tmp_path / "p" / "in" / "a.flac")
    monkeypatch.chdir(tmp_path / "p")
    assert run(scan_args(Path("in/a.flac"))).exit_code == 0
    (tmp_path / "p").rename(tmp_path / "q")
    monkeypatch.chdir(tmp_path / "q")
    res = run(scan_args(Path("in/a.flac")))
    assert res.exit_code == 0, res.output
    assert _statuses(out, "in/a.flac") == ["ok"]
    mine = [f for f in out.iterdir() if (f / "result.json").is_file() and json.loads(
        (f / "result.json").read_text(encoding="utf-8"))["input"]["path"] == "in/a.flac"]
    assert len(mine) == 1                # reused, not analysed again into a second folder


def test_a_moved_file_keeps_its_new_path_in_the_catalog_after_a_scan_of_other_files(setup,
                                                                                    tmp_path):
    """Review (session 45): a moved file reuses its folder and its row shows the new path,
    but the next scan of other files rebuilt the row from the folder's result.json, which
    keeps the old path: the catalog listed the file where it no longer is."""
    root, out, scan_args = setup
    old, new = tmp_path / "old" / "t.flac", tmp_path / "new" / "t.flac"
    old.parent.mkdir()
    new.parent.mkdir()
    shutil.copy(root / "c.flac", old)
    assert run(scan_args(old)).exit_code == 0
    old.rename(new)
    assert run(scan_args(new)).exit_code == 0              # reused, shown at its new path
    assert [r["path"] for r in _rows_named(out, "t.flac")] == [str(new)]
    assert run(scan_args(root / "cat" / "b.flac")).exit_code == 0     # another subset
    assert [r["path"] for r in _rows_named(out, "t.flac")] == [str(new)]
    assert run(["verify", str(out)]).exit_code == 0


def test_ctrl_c_mid_scan_leaves_a_catalog_of_the_sealed_folders_that_verifies(setup, tmp_path,
                                                                              monkeypatch):
    """Review (session 45): an interrupt left the catalog as it was; after a rescan had redone
    some folders the sealed catalog no longer matched them and verified INVALID (as if
    tampered with), and a first scan left sealed folders with no catalog at all. The
    catalog is now written from the folders that verify before the interrupt goes on."""
    from musicbrain_cli.scan import batch

    root, out, scan_args = setup
    real = batch.analyse_track
    calls = {"n": 0}

    def second_interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(batch, "analyse_track", second_interrupted)
    res = run([*scan_args(root / "cat"), "--force"])          # a rescan that redoes a.flac
    assert res.exit_code == 130 and "running the same command again continues" in res.output
    monkeypatch.setattr(batch, "analyse_track", real)
    assert run(["verify", str(out)]).exit_code == 0          # not INVALID
    assert {"a.flac", "b.flac"} <= set(rows(out))

    fresh = tmp_path / "fresh"
    calls["n"] = 0
    monkeypatch.setattr(batch, "analyse_track", second_interrupted)
    args = scan_args(root / "cat")
    args[args.index("-o") + 1] = str(fresh)
    assert run(args).exit_code == 130
    monkeypatch.setattr(batch, "analyse_track", real)
    assert list(rows(fresh)) == ["a.flac"]                     # the sealed one, catalogued
    assert run(["verify", str(fresh)]).exit_code == 0
