"""Reading files a user names: regular files only, refused before any read, bounded.

Issue 23, observation 5: a FIFO named ``pipe.wav`` or a link to ``/dev/zero`` named
``zero.wav`` hung the scan because the file was hashed before it was checked. Every call
that could hang runs under a SIGALRM deadline, so a regression fails instead of hanging CI.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np
import pytest

from musicbrain_cli.errors import InputError, NotRegularFileError, UnreadableFileError
from musicbrain_cli.inputs import check_regular, open_regular, sha256_file
from conftest import deadline


@pytest.fixture
def hostile(tmp_path):
    fifo, zero = tmp_path / "pipe.wav", tmp_path / "zero.wav"
    os.mkfifo(fifo)
    zero.symlink_to("/dev/zero")
    return fifo, zero


def test_fifo_and_device_link_are_refused_before_any_read(hostile):
    fifo, zero = hostile
    with deadline(10):
        with pytest.raises(NotRegularFileError, match="FIFO") as e:
            sha256_file(fifo)
        assert str(fifo) in str(e.value) and "\n" not in str(e.value)
        with pytest.raises(NotRegularFileError, match=r"character device \(a link to /dev/zero\)"):
            sha256_file(zero)
        with pytest.raises(NotRegularFileError):
            open_regular("/dev/zero")


def test_refusals_are_input_errors_and_os_errors(hostile, tmp_path):
    # InputError: the scan turns it into a per-file failure; OSError: verify's per-check
    # "cannot read" handling reports it as a failed check.
    fifo, _ = hostile
    with pytest.raises(InputError), deadline(10):
        sha256_file(fifo)
    with pytest.raises(OSError), deadline(10):
        sha256_file(fifo)
    with pytest.raises(UnreadableFileError, match="no such file"):
        sha256_file(tmp_path / "missing.wav")
    with pytest.raises(NotRegularFileError, match="folder"):
        check_regular(tmp_path)


def test_a_link_to_a_regular_file_is_read(tmp_path):
    data = np.random.default_rng(5).integers(0, 256, 3 * 1024 + 7, dtype=np.uint8).tobytes()
    real, link = tmp_path / "real.wav", tmp_path / "link.wav"
    real.write_bytes(data)
    link.symlink_to(real)
    want = hashlib.sha256(data).hexdigest()
    # Chunk sizes that do and do not divide the size: exactly st_size bytes are hashed.
    assert sha256_file(link, chunk_size=1024) == sha256_file(real, chunk_size=1000) == want
    fh, st = open_regular(link)
    with fh:
        assert st.st_size == len(data) and fh.read() == data


def test_empty_regular_file_hashes(tmp_path):
    p = tmp_path / "empty.wav"
    p.write_bytes(b"")
    assert sha256_file(p) == hashlib.sha256(b"").hexdigest()


def test_read_regular_refuses_devices_and_files_over_its_bound(hostile, tmp_path):
    from musicbrain_cli.inputs import read_regular

    fifo, zero = hostile
    with deadline(10):
        for p in (fifo, zero):
            with pytest.raises(NotRegularFileError):
                read_regular(p)
    p = tmp_path / "big.json"
    p.write_bytes(b"x" * 1000)
    assert read_regular(p) == b"x" * 1000
    with pytest.raises(UnreadableFileError, match="1000 bytes, more than the 999"):
        read_regular(p, max_bytes=999)


def test_trust_anchors_that_are_not_a_regular_file_are_a_config_error(hostile):
    from musicbrain_cli.errors import ConfigError
    from musicbrain_cli.audio.provenance import load_trust_anchors

    for p in hostile:
        with deadline(10), pytest.raises(ConfigError, match="not a regular file"):
            load_trust_anchors(p)
