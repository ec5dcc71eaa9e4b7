"""Intake and discovery defects found by the review of session 31 (audio/intake.py,
scan/discovery.py). Each test fails with the defect back in place."""

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from musicbrain_cli.audio import intake
from musicbrain_cli.audio.encode import encode_audio
from musicbrain_cli.cli import main
from musicbrain_cli.errors import NotAudioError
from musicbrain_cli.scan.discovery import discover
from conftest import make_tone, non_utf8_path

SR = 22050


# --- 1: a link whose target is named in bytes that are not UTF-8 ----------------------------


def test_a_link_to_a_name_that_is_not_utf8_is_analysed_by_its_own_name(tmp_path, tiny_model_dir):
    """Discovery takes `good.wav` (a UTF-8 name); the intake resolved it to its target, whose
    name is not UTF-8, and put that into every error message and fact: a link to a broken
    file stopped the whole scan with UnicodeEncodeError and no catalog was written."""
    cat, store = tmp_path / "cat", tmp_path / "store"
    cat.mkdir()
    store.mkdir()
    good = non_utf8_path(store, b"caf\xe9.wav")
    bad = non_utf8_path(store, b"cass\xe9.wav")
    if good is None or bad is None:
        pytest.skip("this file system cannot hold a name that is not UTF-8")
    encode_audio(good, make_tone(3.0), SR)
    Path(bad).write_bytes(b"not audio at all " * 8)
    os.symlink(good, cat / "good.wav")
    os.symlink(bad, cat / "bad.wav")

    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["scan", str(cat), "-o", str(out), "--model",
                                    str(tiny_model_dir), "--report", "none", "--unsigned",
                                    "--quiet"], catch_exceptions=False)
    assert res.exit_code == 1, res.output                          # bad.wav failed, loudly
    rows = json.loads((out / "summary.json").read_text(encoding="utf-8"))["tracks"]
    by_name = {Path(r["path"]).name: r["status"] for r in rows}
    assert by_name == {"good.wav": "ok", "bad.wav": "error"}
    for name in ("summary.csv", "index.html", "catalog-manifest.json"):
        assert (out / name).is_file(), name
    assert intake.probe(cat / "good.wav").path == str(cat / "good.wav")
    with pytest.raises(NotAudioError) as err:
        intake.probe(cat / "bad.wav")
    assert str(err.value).startswith(str(cat / "bad.wav"))        # the path the user gave


# --- 2: a very deep folder tree ---------------------------------------------------------------


def _deep_tree(top: Path, depth: int) -> None:
    """``top/d/d/.../d/x.wav``, ``depth`` folders deep, made through folder descriptors (no
    recursion, no long path)."""
    top.mkdir()
    fd = os.open(top, os.O_RDONLY)
    try:
        for _ in range(depth):
            os.mkdir("d", dir_fd=fd)
            sub = os.open("d", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = sub
        f = os.open("x.wav", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(f, b"RIFF")
        os.close(f)
    finally:
        os.close(fd)


def _remove_deep_tree(top: Path) -> None:
    # shutil.rmtree (pytest's clean-up) recurses too on Python 3.11
    for root, dirs, files in sorted(((r, d, f) for r, d, f in _walk_iter(top)),
                                    key=lambda t: -len(t[0])):
        for name in files:
            os.unlink(os.path.join(root, name))
        os.rmdir(root)


def _walk_iter(top: Path):
    stack = [str(top)]
    while stack:
        root = stack.pop()
        names = os.listdir(root)
        dirs = [n for n in names if os.path.isdir(os.path.join(root, n))]
        yield root, dirs, [n for n in names if n not in dirs]
        stack.extend(os.path.join(root, d) for d in dirs)


def test_a_folder_tree_deeper_than_the_recursion_limit_is_walked(tmp_path):
    """os.walk of Python 3.11 nests one generator per folder level: a tree 1,200 folders
    deep (2.4 kB of path, well within PATH_MAX) raised RecursionError out of discover(),
    which stopped the scan before any file was read and wrote no catalog."""
    top = tmp_path / "deep"
    _deep_tree(top, 1200)
    try:
        found = discover([top])
        assert [p.name for p in found.files] == ["x.wav"]
        assert len(found.files[0].relative_to(top).parts) == 1201
        assert not found.failed and not found.skipped
    finally:
        _remove_deep_tree(top)


def test_the_iterative_walk_keeps_the_order_and_the_reports_of_os_walk(tmp_path):
    """The walk that replaces os.walk visits folders in the same (sorted, depth-first) order
    and still reports a folder it cannot list."""
    for rel in ("b/z.wav", "b/a/y.wav", "a/c/x.wav", "a/w.wav", "v.wav"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    found = discover([tmp_path])
    assert [p.relative_to(tmp_path).as_posix() for p in found.files] == \
        ["v.wav", "a/w.wav", "a/c/x.wav", "b/z.wav", "b/a/y.wav"]


# --- 3: one file under two names ----------------------------------------------------------------


def test_one_file_under_two_names_is_analysed_once_and_the_other_name_is_said(tmp_path):
    """Files were told apart by their real path: two hard links of one file (and, on a
    case-insensitive file system, `Song.wav` and `song.wav` named on the command line) were
    analysed and counted twice; and a second name that *was* recognised (a link) vanished
    from the scan without a word."""
    cat = tmp_path / "cat"
    cat.mkdir()
    encode_audio(cat / "a.wav", make_tone(1.0), SR)
    os.link(cat / "a.wav", cat / "b.wav")                # a hard link: the same file
    os.symlink(cat / "a.wav", cat / "c.wav")             # a symbolic link to it
    (cat / "d.wav").write_bytes((cat / "a.wav").read_bytes())   # a copy: another file
    found = discover([cat, cat / "b.wav"])
    assert [p.name for p in found.files] == ["a.wav", "d.wav"]
    assert sorted(Path(p).name for p, why in found.skipped if "same file" in why) == \
        ["b.wav", "b.wav", "c.wav"]


# --- 4: containers the decoder reads, never taken from a folder ----------------------------------


def test_wave64_and_tta_files_in_a_folder_are_taken(tmp_path):
    """The decoder reads Sony Wave64 (its size claim is checked) and TTA (its frames'
    checksums are checked), but a folder scan skipped every `.w64` and `.tta` file as "not an
    audio file name extension": a catalog of Wave64 masters read "0 recordings", exit 0."""
    for name in ("a.w64", "b.tta", "c.W64"):
        (tmp_path / name).write_bytes(b"x")
    found = discover([tmp_path])
    assert [p.name for p in found.files] == ["a.w64", "b.tta", "c.W64"]
    assert not found.skipped
