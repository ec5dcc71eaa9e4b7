"""musicbrain_cli.files: atomic writes, streamed SHA-256, canonical and stable JSON."""

import hashlib
import os

import numpy as np
import pytest

from musicbrain_cli import files


def test_atomic_write_bytes_text_and_callable(tmp_path):
    files.atomic_write(tmp_path / "a.bin", b"\x00\x01")
    files.atomic_write(tmp_path / "b.txt", "é\n")
    files.atomic_write(tmp_path / "c.txt", lambda p: p.write_bytes(b"from a writer"))
    assert (tmp_path / "a.bin").read_bytes() == b"\x00\x01"
    assert (tmp_path / "b.txt").read_bytes() == "é\n".encode("utf-8")
    assert (tmp_path / "c.txt").read_bytes() == b"from a writer"
    assert all(oct(p.stat().st_mode & 0o777) == oct(files.DEFAULT_MODE) for p in tmp_path.iterdir())
    files.atomic_write(tmp_path / "key", b"secret", mode=0o600)
    assert (tmp_path / "key").stat().st_mode & 0o777 == 0o600


def test_a_writer_that_raises_leaves_the_old_file_and_no_partial_one(tmp_path):
    target = tmp_path / "card.json"
    target.write_text("old")

    def half_then_fail(p):
        p.write_text("half a ca")
        raise RuntimeError("disk pulled")

    with pytest.raises(RuntimeError, match="disk pulled"):
        files.atomic_write(target, half_then_fail)
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["card.json"]


def test_a_failed_fsync_leaves_no_file(tmp_path, monkeypatch):
    def boom(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError, match="No space left"):
        files.atomic_write(tmp_path / "x.bin", b"data")
    assert list(tmp_path.iterdir()) == []


def test_sha256_is_streamed_and_exact(tmp_path):
    data = np.random.default_rng(0).integers(0, 256, size=70_001, dtype=np.uint8).tobytes()
    path = tmp_path / "blob"
    path.write_bytes(data)
    want = hashlib.sha256(data).hexdigest()
    assert files.sha256_file(path) == want
    assert files.sha256_file(path, chunk_size=4096) == want      # many chunks, last one short
    assert files.sha256_bytes(data) == want
    with pytest.raises(OSError):
        files.sha256_file(tmp_path / "missing")


def test_canonical_json_is_rfc8785_and_independent_of_key_order():
    a = {"b": 1, "a": [1.0, "é", None, True], "c": {"z": 0.5, "y": 1e21}}
    b = {"c": {"y": 1e21, "z": 0.5}, "a": [1.0, "é", None, True], "b": 1}
    assert files.canonical_json(a) == files.canonical_json(b)
    # sorted keys, no whitespace, integral floats as integers, UTF-8 (RFC 8785 section 3.2)
    assert files.canonical_json(a) == '{"a":[1,"é",null,true],"b":1,"c":{"y":1e+21,"z":0.5}}'.encode()
    with pytest.raises(Exception):
        files.canonical_json({"x": float("nan")})


def test_json_text_is_stable():
    text = files.json_text({"b": [1, 2], "a": {"d": 1, "c": 2}})
    assert text == '{\n  "a": {\n    "c": 2,\n    "d": 1\n  },\n  "b": [\n    1,\n    2\n  ]\n}\n'
    with pytest.raises(ValueError):
        files.json_text({"x": float("inf")})


def test_find_files_walks_a_tree_deeper_than_the_recursion_limit(tmp_path):
    """find_files walked with os.walk, which on Python 3.11 nests one generator per level:
    a data folder 1,200 deep raised RecursionError and the data build stopped with a
    traceback (the scan's walk had been fixed in session 31, this one not)."""
    fd = os.open(tmp_path, os.O_RDONLY)
    try:
        for _ in range(1200):               # made through folder descriptors: no recursion
            os.mkdir("d", dir_fd=fd)
            sub = os.open("d", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = sub
        os.close(os.open("x.abc", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd))
    finally:
        os.close(fd)
    try:
        found, skipped = files.find_files(tmp_path, (".abc",))
        assert [p.name for p in found] == ["x.abc"] and skipped == []
        assert len(found[0].relative_to(tmp_path).parts) == 1201
    finally:                                # shutil.rmtree (pytest's clean-up) recurses too
        os.unlink(tmp_path.joinpath(*["d"] * 1200, "x.abc"))
        for n in range(1200, 0, -1):
            os.rmdir(tmp_path.joinpath(*["d"] * n))
