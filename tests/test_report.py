"""write_track_report and write_manifest: files, atomicity, overwrite policy, manifest content."""

import json
import os

import pytest
import rfc8785

from musicbrain_cli.errors import ReportError
from musicbrain_cli.report import (MANIFEST_NAME, SIGNATURE_NAME, build_manifest, init_keys,
                                   write_manifest, write_track_report)
from musicbrain_cli.report._io import sha256_file
from musicbrain_cli.report.schema import example_track

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(32))


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    return init_keys(tmp_path_factory.mktemp("keys") / "k")


def test_html_json_and_figures_without_pdf(tmp_path):
    track = example_track(n_windows=3)
    written = write_track_report(track, {"fmgcam_1.png": PNG}, tmp_path / "r",
                                 formats=("html", "json"))
    names = sorted(p.relative_to(tmp_path / "r").as_posix() for p in written)
    assert names == ["figures/fmgcam_1.png", "figures/timeline.png", "report.html", "result.json"]
    assert json.loads((tmp_path / "r" / "result.json").read_text()) == track
    assert (tmp_path / "r" / "figures" / "fmgcam_1.png").read_bytes() == PNG
    # the timeline drawn from the track is embedded in the HTML, too
    assert (tmp_path / "r" / "report.html").read_text().count("data:image/png;base64,") == 2
    assert not [p for p in (tmp_path / "r").rglob("*.tmp")]  # no temporary files left


def test_refuses_to_overwrite_unless_asked(tmp_path):
    track = example_track(n_windows=3)
    write_track_report(track, {}, tmp_path, formats=("html",))
    before = (tmp_path / "report.html").read_bytes()
    track["verdict"]["p_ai"] = 0.123
    with pytest.raises(ReportError, match="refusing to overwrite"):
        write_track_report(track, {}, tmp_path, formats=("html",))
    assert (tmp_path / "report.html").read_bytes() == before
    write_track_report(track, {}, tmp_path, formats=("html",), overwrite=True)
    assert "0.123" in (tmp_path / "report.html").read_text()


@pytest.mark.parametrize("figures, match", [({"../evil.png": PNG}, "plain file name"),
                                            ({"a.gif": PNG}, "plain file name"),
                                            ({"a.png": b"GIF89a"}, "not PNG")])
def test_bad_figures_are_refused(tmp_path, figures, match):
    with pytest.raises(ReportError, match=match):
        write_track_report(example_track(), figures, tmp_path, formats=("html",))
    assert not list(tmp_path.iterdir())


def test_bad_formats_and_non_json_track(tmp_path):
    with pytest.raises(ReportError, match="formats"):
        write_track_report(example_track(), {}, tmp_path, formats=("docx",))
    track = example_track()
    track["verdict"]["p_ai"] = float("nan")
    with pytest.raises(ReportError, match="plain JSON"):
        write_track_report(track, {}, tmp_path, formats=("json",))


def test_unsigned_pdf_is_reproducible(tmp_path):
    track = example_track(n_windows=3)
    write_track_report(track, {}, tmp_path / "a", formats=("pdf",), write_figures=False)
    write_track_report(track, {}, tmp_path / "b", formats=("pdf",), write_figures=False)
    first, second = (tmp_path / d / "report.pdf" for d in ("a", "b"))
    assert first.read_bytes() == second.read_bytes()


def test_manifest_lists_everything_and_is_signed(tmp_path, keys):
    folder = tmp_path / "r"
    audio = tmp_path / "audio.wav"
    audio.write_bytes(os.urandom(3000))
    write_track_report(example_track(n_windows=3), {"fmgcam_1.png": PNG}, folder,
                       formats=("pdf", "html"), keys=keys)
    paths = write_manifest(folder, audio, "1" * 64, keys)
    assert [p.name for p in paths] == [MANIFEST_NAME, SIGNATURE_NAME]
    data = (folder / MANIFEST_NAME).read_bytes()
    manifest = json.loads(data)
    assert rfc8785.dumps(manifest) == data  # canonical bytes on disk
    assert manifest["audio"] == {"file_name": "audio.wav", "sha256": sha256_file(audio),
                                 "size_bytes": 3000}
    assert manifest["model"] == {"weights_sha256": "1" * 64}
    listed = {f["path"]: f["sha256"] for f in manifest["files"]}
    assert set(listed) == {"report.pdf", "report.html", "figures/fmgcam_1.png",
                           "figures/timeline.png"}
    assert all(listed[name] == sha256_file(folder / name) for name in listed)
    assert manifest["signer"]["public_key_sha256"] == keys.manifest_key_fingerprint
    assert manifest["signer"]["certificate_sha256"] == keys.certificate_fingerprint
    # no private material in any output
    for path in folder.rglob("*"):
        if path.is_file():
            assert b"PRIVATE KEY" not in path.read_bytes()
    import base64

    keys.manifest_public_key.verify(base64.b64decode((folder / SIGNATURE_NAME).read_bytes()), data)


def test_manifest_refuses_symlinks_and_bad_weights_hash(tmp_path, keys):
    (tmp_path / "a.txt").write_text("a")
    with pytest.raises(ReportError, match="64 lowercase hex"):
        build_manifest(tmp_path, audio_path=None, model_weights_sha256="xyz", keys=keys)
    (tmp_path / "l").symlink_to(tmp_path / "a.txt")
    with pytest.raises(ReportError, match="link"):
        build_manifest(tmp_path, audio_path=None, model_weights_sha256=None, keys=keys)


def test_failed_write_leaves_no_partial_file(tmp_path, monkeypatch):
    from musicbrain_cli.report import _io

    def boom(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_io.os, "fsync", boom)
    with pytest.raises(ReportError, match="No space left"):
        _io.atomic_write_bytes(tmp_path / "x.bin", b"data")
    assert list(tmp_path.iterdir()) == []
