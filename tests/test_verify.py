"""Verification of report folders and PDFs: every tampering is caught, and only that."""

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from musicbrain_cli.cli import main
from musicbrain_cli.report import (MANIFEST_NAME, SIGNATURE_NAME, init_keys, verify_path, write_manifest, write_track_report)
from musicbrain_cli.report._io import sha256_file
from musicbrain_cli.report.figures import fmgcam_figure
from musicbrain_cli.report.schema import example_track
from conftest import deadline


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    return init_keys(tmp_path_factory.mktemp("keys") / "k")


@pytest.fixture(scope="module")
def sealed(tmp_path_factory, keys):
    """A signed report folder (PDF + HTML + JSON + figures) and its audio file."""
    root = tmp_path_factory.mktemp("sealed")
    rng = np.random.default_rng(7)
    audio = root / "take 1.flac"
    audio.write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    track = example_track(n_windows=4, file_name=audio.name, sha256=sha256_file(audio))
    cam = fmgcam_figure(rng.normal(-40, 10, (32, 40)), rng.random((2, 32, 40)),
                        ["source/ai", "period/baroque"], np.arange(40) * 0.05,
                        np.geomspace(40, 8000, 32))
    figures = {e["figure"]: cam for e in track["explanations"]}
    folder = root / "report"
    write_track_report(track, figures, folder, formats=("pdf", "html", "json"), keys=keys)
    write_manifest(folder, audio, track["model"]["weights_sha256"], keys)
    return folder, audio


@pytest.fixture
def copy(sealed, tmp_path):
    folder, audio = sealed
    shutil.copytree(folder, tmp_path / "report")
    shutil.copy(audio, tmp_path / audio.name)
    return tmp_path / "report", tmp_path / audio.name


def _flip(path, offset=None):
    data = bytearray(path.read_bytes())
    i = len(data) // 2 if offset is None else offset
    data[i] ^= 0x01
    path.write_bytes(bytes(data))


def _failed(result):
    return {c.name for c in result.failures}


def test_untouched_folder_verifies(copy, keys):
    folder, audio = copy
    result = verify_path(folder, audio=audio, trusted=keys.public())
    assert result.ok and result.status == "VALID", result.failures
    names = {c.name for c in result.checks if c.status == "pass"}
    assert {"manifest", "signature", "signer", "unlisted files", "audio", "report.pdf: pdf audio",
            "file report.pdf", "file report.html", "file result.json", "rendering report.html",
            "rendering report.pdf"} <= names
    # an intact signature by a signer nobody trusts is UNTRUSTED, never VALID
    loose = verify_path(folder, audio=audio)
    assert not loose.failures and loose.status == "UNTRUSTED" and not loose.ok
    assert [c.status for c in loose.checks if c.name == "signer"] == ["untrusted"]


@pytest.mark.parametrize("name", ["report.html", "result.json", "figures/timeline.png",
                                  "figures/fmgcam_1.png"])
def test_one_changed_byte_in_any_report_file_is_caught(copy, name):
    folder, audio = copy
    _flip(folder / name)
    result = verify_path(folder, audio=audio)
    assert not result.ok
    assert _failed(result) == {f"file {name}"}


def test_one_changed_byte_in_the_pdf_breaks_hash_and_signature(copy):
    folder, _ = copy
    _flip(folder / "report.pdf", offset=(folder / "report.pdf").read_bytes().index(b"\n") + 2)
    failed = _failed(verify_path(folder))
    assert "file report.pdf" in failed
    assert any(n.startswith("report.pdf: pdf signature 1") for n in failed)


def test_changed_audio_is_caught(copy):
    folder, audio = copy
    _flip(audio)
    result = verify_path(folder, audio=audio)
    assert _failed(result) == {"audio", "report.pdf: pdf audio"}


def test_added_and_removed_files_are_caught(copy):
    folder, _ = copy
    (folder / "notes.txt").write_text("added later")
    assert _failed(verify_path(folder)) == {"unlisted files"}
    (folder / "notes.txt").unlink()
    (folder / "result.json").unlink()
    assert _failed(verify_path(folder)) == {"file result.json"}


def test_edited_manifest_or_signature_is_caught(copy):
    folder, _ = copy
    manifest = json.loads((folder / MANIFEST_NAME).read_bytes())
    manifest["model"]["weights_sha256"] = "2" * 64
    import rfc8785

    (folder / MANIFEST_NAME).write_bytes(rfc8785.dumps(manifest))
    assert _failed(verify_path(folder)) == {"signature"}
    (folder / MANIFEST_NAME).write_bytes(json.dumps(manifest, indent=1).encode())
    assert {"manifest", "signature"} <= _failed(verify_path(folder))
    (folder / SIGNATURE_NAME).unlink()
    assert "signature" in _failed(verify_path(folder))


def test_resigned_by_another_key_is_never_valid(copy, keys, tmp_path):
    folder, audio = copy
    other = init_keys(tmp_path / "other")
    write_manifest(folder, audio, "1" * 64, other)
    loose = verify_path(folder, audio=audio)
    # The re-signed manifest names a certificate that did not sign the PDF: caught anyway.
    assert any(n.endswith("signer") for n in _failed(loose))
    pinned = verify_path(folder, audio=audio, trusted=keys.public())
    assert not pinned.ok
    signer = [c for c in pinned.checks if c.name == "signer"]
    assert signer[0].status == "untrusted" and other.manifest_key_fingerprint in signer[0].detail


def _rewritten(folder, audio, keys, *, track=None, result=None, signer=None):
    """The folder's report files rendered again from ``track`` (default: its own result),
    its ``result.json`` then replaced by ``result`` when given, and the folder sealed again
    with ``keys``: what the holder of the keys can do."""
    from musicbrain_cli.report.manifest import build_manifest

    own = json.loads((folder / "result.json").read_text())
    figures = {p.name: p.read_bytes() for p in (folder / "figures").iterdir()}
    write_track_report(track or own, figures, folder, formats=("pdf", "html", "json"),
                       keys=keys, overwrite=True)
    if result is not None:
        (folder / "result.json").write_text(json.dumps(result, indent=2, sort_keys=True))
    write_manifest(folder, audio, own["model"]["weights_sha256"], keys)
    if signer is not None:      # a manifest as an earlier version wrote it
        manifest = build_manifest(folder, audio_path=audio,
                                  model_weights_sha256=own["model"]["weights_sha256"], keys=keys)
        manifest["signer"] = signer(manifest["signer"])
        from musicbrain_cli.report.manifest import _write_signed
        _write_signed(folder, MANIFEST_NAME, SIGNATURE_NAME, manifest, keys)


def test_a_report_whose_text_contradicts_its_result_is_invalid_even_when_resealed(copy, keys):
    """Audit (session 26): the hashes only prove that the signer sealed the files. A report
    whose HTML and PDF say `ai` beside a result.json that says `human`, sealed again with the
    examiner's own keys, verified VALID; verify --reproduce re-derives result.json only. Now
    the HTML is rendered again from the signed result.json and compared, and the PDF's /ID
    must be that HTML's."""
    folder, audio = copy
    own = json.loads((folder / "result.json").read_text())
    assert verify_path(folder, audio=audio, trusted=keys.public()).ok
    other = json.loads(json.dumps(own))
    other["verdict"]["label"] = "human" if own["verdict"]["label"] != "human" else "ai"
    _rewritten(folder, audio, keys, track=other, result=own)
    result = verify_path(folder, audio=audio, trusted=keys.public())
    assert result.status == "INVALID"
    assert _failed(result) == {"rendering report.html", "rendering report.pdf"}, result.checks
    res = CliRunner().invoke(main, ["verify", str(folder), "--audio", str(audio)])
    assert res.exit_code == 1 and "does not say what its signed result says" in res.output


def test_a_report_of_another_version_or_an_older_manifest_is_not_rendered_again(copy, keys):
    folder, audio = copy
    own = json.loads((folder / "result.json").read_text())
    older = json.loads(json.dumps(own))
    older["software"]["musicbrain"] = "0.0.1"
    _rewritten(folder, audio, keys, track=older)
    result = verify_path(folder, audio=audio, trusted=keys.public())
    skipped = [c for c in result.checks if c.name == "rendering"]
    assert result.ok and [c.status for c in skipped] == ["skip"], result.checks
    assert "MusicBrain 0.0.1" in skipped[0].detail
    # a manifest sealed before the signer's self-signed flag was recorded
    _rewritten(folder, audio, keys, track=own,
               signer=lambda s: {k: v for k, v in s.items() if k != "certificate_self_signed"})
    result = verify_path(folder, audio=audio, trusted=keys.public())
    skipped = [c for c in result.checks if c.name == "rendering"]
    assert result.ok and [c.status for c in skipped] == ["skip"], result.checks
    assert "self-signed" in skipped[0].detail


def _resealed_by(folder, audio, forger, tmp_path):
    """A forger's copy: the same track re-rendered and re-signed with the forger's keys."""
    track = json.loads((folder / "result.json").read_text())
    forged = tmp_path / "forged"
    write_track_report(track, {}, forged, formats=("pdf", "html", "json"), keys=forger)
    write_manifest(forged, audio, track["model"]["weights_sha256"], forger)
    return forged


def test_a_report_resigned_whole_by_another_key_is_untrusted_not_valid(copy, keys, tmp_path,
                                                                       monkeypatch):
    """Observation 2: without --keys, a folder or a PDF re-rendered and re-signed with any
    other key verified (exit 0, a warning). Now it is UNTRUSTED (exit 1) with both of the
    forger's fingerprints; pinning the examiner's key does not make the forger's valid."""
    folder, audio = copy
    from musicbrain_cli.report.keys import load_trust_store, trust_keys

    forger = init_keys(tmp_path / "forger")
    forged = _resealed_by(folder, audio, forger, tmp_path)
    monkeypatch.setenv("MUSICBRAIN_TRUST_STORE", str(tmp_path / "trusted.json"))
    trust_keys(keys)                                   # the examiner's own keys are pinned
    store = load_trust_store()
    assert verify_path(folder, audio=audio, trusted=store).ok
    for path in (forged, forged / "report.pdf"):
        result = verify_path(path, audio=audio, trusted=store)
        assert result.status == "UNTRUSTED" and not result.failures, result.checks
        text = " ".join(c.detail for c in result.checks if c.status == "untrusted")
        assert forger.certificate_fingerprint in text
        if path.is_dir():
            assert forger.manifest_key_fingerprint in text
        res = CliRunner().invoke(main, ["verify", str(path)])
        assert res.exit_code == 1 and res.output.startswith("UNTRUSTED"), res.output
        assert forger.certificate_fingerprint in res.output
    # the forger's name is the examiner's: it changes nothing
    assert forger.pdf_cert.subject != keys.pdf_cert.subject     # default names differ too
    pinned = CliRunner().invoke(main, ["verify", str(folder / "report.pdf")])
    assert pinned.exit_code == 0 and pinned.output.startswith("VALID"), pinned.output


def test_keys_trust_and_list(keys, tmp_path):
    from musicbrain_cli.report.keys import load_trust_store

    store = tmp_path / "store.json"
    runner = CliRunner()
    first = runner.invoke(main, ["keys", "trust", keys.manifest_key_fingerprint.upper(),
                                 str(keys.directory / "pdf_signer.cert.pem"),
                                 "--trust-store", str(store), "--note", "published on x"])
    assert first.exit_code == 0, first.output
    assert load_trust_store(store).fingerprints == {keys.manifest_key_fingerprint,
                                                    keys.certificate_fingerprint}
    listed = runner.invoke(main, ["keys", "list", "--trust-store", str(store)])
    assert keys.certificate_fingerprint in listed.output and "published on x" in listed.output
    again = runner.invoke(main, ["keys", "trust", str(keys.directory), "--trust-store", str(store)])
    assert again.exit_code == 0 and "already trusted" in again.output
    assert len(load_trust_store(store).entries) == 2
    bad = runner.invoke(main, ["keys", "trust", "not-a-fingerprint", "--trust-store", str(store)])
    assert bad.exit_code == 2 and "neither a 64-hex-digit" in bad.output
    # an item that names nothing is a usage error before any pin is made or removed: the
    # good item beside it was pinned (or unpinned) and the command still failed
    before = store.read_bytes()
    for command in ("trust", "untrust"):
        mixed = runner.invoke(main, ["keys", command, keys.manifest_key_fingerprint,
                                     "0" * 64, "typo", "--trust-store", str(store)])
        assert mixed.exit_code == 2 and "'typo' is neither" in mixed.output, mixed.output
        assert store.read_bytes() == before
    store.write_text('{"schema": "musicbrain.trust/1", "trusted": [{"sha256": 5}]}')
    broken = runner.invoke(main, ["keys", "list", "--trust-store", str(store)])
    assert broken.exit_code == 1 and "Traceback" not in broken.output


def test_audio_is_checked_against_the_pdf_itself(copy, keys, tmp_path):
    """Observation 1: `verify report.pdf --audio other.flac` ignored --audio and said VALID."""
    folder, audio = copy
    other = tmp_path / "other.flac"
    other.write_bytes(b"another recording" * 100)
    pdf = folder / "report.pdf"
    assert verify_path(pdf, audio=audio, trusted=keys.public()).ok
    wrong = verify_path(pdf, audio=other, trusted=keys.public())
    assert _failed(wrong) == {"pdf audio"}
    res = CliRunner().invoke(main, ["verify", str(pdf), "--audio", str(other),
                                    "--keys", str(keys.directory)])
    assert res.exit_code == 1 and res.output.startswith("INVALID")
    # in a folder, --audio is checked against the manifest and against each PDF
    assert _failed(verify_path(folder, audio=other, trusted=keys.public())) == {
        "audio", "report.pdf: pdf audio"}
    # a PDF that records no audio hash cannot pass an --audio check it cannot make
    from musicbrain_cli.report.pdf import html_to_pdf
    from musicbrain_cli.report.signing import sign_pdf

    (tmp_path / "bare.pdf").write_bytes(sign_pdf(html_to_pdf("<p>x</p>"), keys))
    bare = verify_path(tmp_path / "bare.pdf", audio=audio, trusted=keys.public())
    assert not bare.ok and "records no audio hash" in bare.failures[0].detail
    # --reproduce on a PDF is refused rather than skipped
    res = CliRunner().invoke(main, ["verify", str(pdf), "--audio", str(audio), "--reproduce",
                                    "--keys", str(keys.directory)])
    assert res.exit_code == 1 and "needs the report folder" in res.output


def test_report_page_one_names_the_signer(sealed, keys):
    folder, _ = sealed
    html = (folder / "report.html").read_text()
    header = html[html.index("<header>"):html.index("</header>")]
    assert "Signed by" in header and keys.certificate_fingerprint in header
    assert keys.manifest_key_fingerprint in header
    assert keys.pdf_cert.subject.rfc4514_string().split("=", 1)[1] in header


def test_symlink_in_folder_is_refused(copy, tmp_path):
    folder, _ = copy
    (tmp_path / "outside.txt").write_text("x")
    (folder / "link.txt").symlink_to(tmp_path / "outside.txt")
    assert "unlisted files" in _failed(verify_path(folder))


def test_pdf_alone_and_not_a_report(copy, tmp_path, keys):
    folder, _ = copy
    result = verify_path(folder / "report.pdf", trusted=keys.public())
    assert result.ok and result.kind == "pdf"
    loose = verify_path(folder / "report.pdf")
    assert any(c.status == "untrusted" and "self-signed" in c.detail for c in loose.checks)
    other = init_keys(tmp_path / "o").public()
    assert not verify_path(folder / "report.pdf", trusted=other).ok
    (tmp_path / "x.txt").write_text("hello")
    assert not verify_path(tmp_path / "x.txt").ok
    assert not verify_path(tmp_path / "missing").ok


def test_a_file_of_a_report_folder_is_verified_with_its_folder(copy, keys):
    """`verify report.html` called a genuine report INVALID ("not a report folder or a
    PDF"): a file of a report folder is vouched for by the folder's manifest, so the folder
    is verified and the result says so; an edited file still fails."""
    folder, audio = copy
    for name in ("report.html", "result.json", "figures/timeline.png", "manifest.json",
                 "manifest.json.sig"):
        result = verify_path(folder / name, audio=audio, trusted=keys.public())
        assert result.ok, result.failures
        assert result.checks[0].name == "input" and "part of its report folder" in \
            result.checks[0].detail
    (folder / "stray.txt").write_text("not sealed")
    stray = verify_path(folder / "stray.txt", trusted=keys.public())
    assert not stray.ok and "not listed" in stray.checks[0].detail
    (folder / "stray.txt").unlink()
    _flip(folder / "report.html")
    assert not verify_path(folder / "report.html", trusted=keys.public()).ok


def test_unsigned_pdf_fails(tmp_path):
    from musicbrain_cli.report.pdf import html_to_pdf

    (tmp_path / "u.pdf").write_bytes(html_to_pdf("<p>unsigned</p>"))
    result = verify_path(tmp_path / "u.pdf")
    assert not result.ok and "no signature" in result.failures[0].detail


def test_cli_exit_codes(copy, keys):
    folder, audio = copy
    runner = CliRunner()
    ok = runner.invoke(main, ["verify", str(folder), "--audio", str(audio),
                              "--keys", str(keys.directory)])
    assert ok.exit_code == 0, ok.output
    assert ok.output.startswith("VALID")
    _flip(folder / "report.html")
    bad = runner.invoke(main, ["verify", str(folder), str(folder / "report.pdf"),
                               "--keys", str(keys.directory)])
    assert bad.exit_code == 1
    assert "INVALID" in bad.output and "file report.html" in bad.output
    assert runner.invoke(main, ["verify"]).exit_code == 2
    # an option that would not be used is refused, not silently skipped
    assert runner.invoke(main, ["verify", str(folder), "--model", "x"]).exit_code == 2
    assert runner.invoke(main, ["verify", str(folder), "--keys", str(keys.directory),
                                "--trust-store", "t.json"]).exit_code == 2
    assert runner.invoke(main, ["verify", str(folder / "nope")]).exit_code == 2


@pytest.mark.parametrize("kind", ["fifo", "dev-zero-link"])
def test_verify_audio_that_is_not_a_regular_file_fails_the_check_instead_of_hanging(copy, tmp_path,
                                                                                     kind):
    # Issue 23, observation 5: `verify --audio /dev/zero` hung hashing an endless file.
    import os

    folder, _ = copy
    bad = tmp_path / ("pipe.wav" if kind == "fifo" else "zero.wav")
    if kind == "fifo":
        os.mkfifo(bad)
    else:
        bad.symlink_to("/dev/zero")

    with deadline(30, "verify --audio"):
        res = CliRunner().invoke(main, ["verify", str(folder), "--audio", str(bad)],
                                 catch_exceptions=False)
    assert res.exit_code == 1, res.output
    assert "INVALID" in res.output and "not a regular file" in res.output
    assert ("FIFO" if kind == "fifo" else "character device") in res.output


@pytest.mark.parametrize("target", ["manifest.json.sig", "result.json", "report.pdf"])
def test_a_report_file_replaced_by_a_fifo_or_dev_zero_fails_instead_of_hanging(copy, target):
    # Issue 23 (no input can hang verify): report files were read whole with read_bytes,
    # so a FIFO waited for a writer forever and /dev/zero never ended.
    import os

    folder, audio = copy
    (folder / target).unlink()
    if target == "result.json":
        (folder / target).symlink_to("/dev/zero")
    else:
        os.mkfifo(folder / target)

    with deadline(30, "verify"):
        result = verify_path(folder, audio=audio)
        pdf = verify_path(folder / "report.pdf") if target == "report.pdf" else None
    assert not result.ok
    if pdf is not None:
        assert not pdf.ok


def test_a_catalog_whose_files_are_fifos_fails_instead_of_hanging(tmp_path):
    import os

    root = tmp_path / "scan-out"
    root.mkdir()
    (root / "summary.json").write_text('{"schema": "musicbrain.summary/1", "tracks": []}')
    for name in ("catalog-manifest.json", "catalog-manifest.json.sig"):
        os.mkfifo(root / name)

    with deadline(30, "verify"):
        res = CliRunner().invoke(main, ["verify", str(root)], catch_exceptions=False)
    assert res.exit_code == 1 and "INVALID" in res.output, res.output


@pytest.mark.parametrize("identifier", [b"abcdefghijklmnop", bytes(range(200, 216))])
def test_a_pdf_identifier_is_read_as_bytes_whether_or_not_it_looks_like_text(tmp_path,
                                                                             identifier):
    """An /ID whose 16 bytes happen to decode as text came back from pyHanko as a str, and
    the rendering check failed on an honest report ("string argument without an encoding")
    now and then, depending on the HTML's hash."""
    from musicbrain_cli.report.pdf import html_to_pdf
    from musicbrain_cli.report.verify import pdf_identifier

    path = tmp_path / "r.pdf"
    path.write_bytes(html_to_pdf("<html><body><p>x</p></body></html>", identifier=identifier))
    assert pdf_identifier(path) == identifier


def _pages_replaced(pdf: bytes, text: bytes) -> bytes:
    """``pdf`` with an incremental update that draws ``text`` instead of page 1's content:
    the /ID and the first revision stay those of the honest layout."""
    import io

    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

    w = IncrementalPdfFileWriter(io.BytesIO(pdf))
    page_ref = w.root["/Pages"].raw_get("/Kids")[0]
    page = page_ref.get_object()
    page["/Contents"] = w.add_object(generic.StreamObject(stream_data=b"BT 100 700 Td (" + text
                                                          + b") Tj ET"))
    w.update_container(page)
    out = io.BytesIO()
    w.write(out)
    return out.getvalue()


def test_reproduce_lays_the_pdf_out_again_and_catches_pages_changed_before_signing(
        copy, keys, monkeypatch):
    """Audit (session 26): --reproduce checked the PDF's /ID, a number, never its pages. A
    PDF with the honest first revision and /ID, whose page was replaced in an update and then
    signed and sealed with the examiner's keys, verified VALID."""
    from musicbrain_cli.report.pdf import html_to_pdf
    from musicbrain_cli.report.signing import sign_pdf
    from musicbrain_cli.report.writer import _analysis_time

    from importlib.metadata import version

    folder, audio = copy
    own = json.loads((folder / "result.json").read_text())
    own["software"]["weasyprint"] = version("weasyprint")     # as a scan records it
    _rewritten(folder, audio, keys, track=own)
    result = verify_path(folder, audio=audio, trusted=keys.public(), relay_pdf=True)
    layout = [c for c in result.checks if c.name == "layout report.pdf"]
    assert result.ok and [c.status for c in layout] == ["pass"], result.checks
    assert not any(c.name.startswith("layout") for c in
                   verify_path(folder, audio=audio, trusted=keys.public()).checks)  # opt-in

    html = (folder / "report.html").read_text(encoding="utf-8")
    track = json.loads((folder / "result.json").read_text())
    import hashlib
    honest = html_to_pdf(html, identifier=hashlib.sha256(html.encode()).digest()[:16],
                         source_date=_analysis_time(track))
    (folder / "report.pdf").write_bytes(sign_pdf(_pages_replaced(honest, b"AI GENERATED"), keys))
    write_manifest(folder, audio, track["model"]["weights_sha256"], keys)
    plain = verify_path(folder, audio=audio, trusted=keys.public())
    assert plain.ok, plain.checks           # signature, hashes and /ID cannot see it
    result = verify_path(folder, audio=audio, trusted=keys.public(), relay_pdf=True)
    assert _failed(result) == {"layout report.pdf"}, result.checks
    (failed,) = result.failures
    assert "revision 1 changes" in failed.detail and "pages may not be" in failed.detail

    # and a PDF laid out from other text but given the honest /ID
    other = html_to_pdf(html.replace("</body>", "<p>AI</p></body>"),
                        identifier=hashlib.sha256(html.encode()).digest()[:16],
                        source_date=_analysis_time(track))
    (folder / "report.pdf").write_bytes(sign_pdf(other, keys))
    write_manifest(folder, audio, track["model"]["weights_sha256"], keys)
    result = verify_path(folder, audio=audio, trusted=keys.public(), relay_pdf=True)
    assert _failed(result) == {"layout report.pdf"}, result.checks
    assert "not what the HTML of its result.json lays out" in result.failures[0].detail
    # another WeasyPrint than the one result.json records: the check cannot be made, which
    # fails it (the PDF's own /Producer, which its maker writes, is never asked)
    import musicbrain_cli.report.verify as verify_module
    monkeypatch.setattr(verify_module, "_weasyprint_version", lambda: "1.0")
    result = verify_path(folder, audio=audio, trusted=keys.public(), relay_pdf=True)
    (layout,) = [c for c in result.checks if c.name == "layout report.pdf"]
    assert not result.ok and layout.status == "fail"
    assert f"records WeasyPrint {track['software']['weasyprint']}, this is 1.0" in layout.detail


def _page_redrawn_under_info(pdf: bytes) -> bytes:
    """``pdf`` with an incremental update that draws a white box over page 1 by rewriting the
    page's own content stream, and names that stream as the document information (with the
    information's keys copied in): every changed object is the one /Info names."""
    import io

    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

    w = IncrementalPdfFileWriter(io.BytesIO(pdf))
    page = w.root["/Pages"].raw_get("/Kids")[0].get_object()
    ref = page.raw_get("/Contents")
    content = ref.get_object()
    data = content.data + b"\nq 1 1 1 rg 0 0 595 420 re f Q\n"
    content.strip_filters()
    content._data, content._encoded_data = data, None
    for key, value in w.trailer["/Info"].items():
        content[generic.NameObject(key)] = value
    w.objects[(ref.generation, ref.idnum)] = content
    w.set_info(ref)
    out = io.BytesIO()
    w.write(out)
    return out.getvalue()


def test_a_page_changed_under_the_name_of_the_document_information_is_caught(
        copy, keys, monkeypatch):
    """Review (session 45): the layout check passed over whatever object the last trailer
    named /Info, so a revision that rewrote page 1's content stream and named it the document
    information verified as "exactly the pages its result.json lays out"."""
    import hashlib

    from importlib.metadata import version

    from musicbrain_cli.report.pdf import html_to_pdf
    from musicbrain_cli.report.signing import sign_pdf
    from musicbrain_cli.report.verify import signature_only_updates
    from musicbrain_cli.report.writer import _analysis_time

    folder, audio = copy
    own = json.loads((folder / "result.json").read_text())
    own["software"]["weasyprint"] = version("weasyprint")
    _rewritten(folder, audio, keys, track=own)
    assert signature_only_updates(folder / "report.pdf") is None     # an honest signature
    html = (folder / "report.html").read_text(encoding="utf-8")
    track = json.loads((folder / "result.json").read_text())
    honest = html_to_pdf(html, identifier=hashlib.sha256(html.encode()).digest()[:16],
                         source_date=_analysis_time(track))
    (folder / "report.pdf").write_bytes(sign_pdf(_page_redrawn_under_info(honest), keys))
    write_manifest(folder, audio, track["model"]["weights_sha256"], keys)
    assert "document information" in signature_only_updates(folder / "report.pdf")
    result = verify_path(folder, audio=audio, trusted=keys.public(), relay_pdf=True)
    assert _failed(result) == {"layout report.pdf"}, result.checks


def test_verify_with_a_trust_store_that_does_not_exist_is_a_usage_error(tmp_path):
    """Review (session 45): a mistyped --trust-store read as an empty store: the report said
    UNTRUSTED (exit 1) without a word about the missing file."""
    (tmp_path / "r").mkdir()
    res = CliRunner().invoke(main, ["verify", str(tmp_path / "r"), "--trust-store",
                                    str(tmp_path / "trusted.json.typo")])
    assert res.exit_code == 2 and "does not exist" in res.output
