"""Intake and discovery defects found by the review of session 46 (audio/decode.py,
audio/intake.py, scan/discovery.py). Each test fails with the defect back in place."""

import os
from pathlib import Path

import pytest

from musicbrain_cli.audio.encode import encode_audio
from musicbrain_cli.scan.discovery import NOT_UTF8, SAME_FILE, discover
from conftest import make_tone

SR = 22050


def _non_utf8(folder: Path, name: bytes) -> str | None:
    """``folder/name`` as a str path (its bytes as surrogates), or None where the file system
    cannot hold a name that is not UTF-8."""
    path = os.fsdecode(os.fsencode(folder) + b"/" + name)
    try:
        Path(path).write_bytes(b"")
    except (OSError, UnicodeError):
        return None
    return path


# --- 1: a name that is not UTF-8 claimed its file for every other name ------------------------


@pytest.mark.parametrize("link", ["symbolic", "hard"])
def test_a_file_refused_for_its_name_is_still_taken_under_another_name(tmp_path, link):
    """`caf\\xe9.wav` (Latin-1) sorts before its link `good.wav`: the name was refused (not
    UTF-8) but had already claimed the file, so `good.wav` was skipped as "the same file as a
    path already taken ... analysed once" while the audio was analysed under no name."""
    bad = _non_utf8(tmp_path, b"caf\xe9.wav")
    if bad is None:
        pytest.skip("this file system cannot hold a name that is not UTF-8")
    encode_audio(bad, make_tone(1.0), SR, fmt="wav")
    (os.symlink if link == "symbolic" else os.link)(bad, tmp_path / "good.wav")
    found = discover([tmp_path])
    assert [p.name for p in found.files] == ["good.wav"]
    assert [why for _, why in found.failed] == [NOT_UTF8]
    assert not [p for p, why in found.skipped if why == SAME_FILE]
