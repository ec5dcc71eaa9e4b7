"""Verifying a scan's whole output folder: the catalog files against the signed tracks."""

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from musicbrain_cli.audio.encode import encode_audio
from musicbrain_cli.cli import main
from musicbrain_cli.report.catalog import catalog_files
from musicbrain_cli.report.keys import load_trust_store
from musicbrain_cli.report.verify import is_catalog_folder, verify_catalog
from conftest import make_tone

SR = 22050


def run(args):
    return CliRunner().invoke(main, args, catch_exceptions=False)


@pytest.fixture(scope="module")
def scanned(tmp_path_factory, tiny_model_dir):
    """A signed scan of two good files and one broken one."""
    root = tmp_path_factory.mktemp("catalog")
    cat = root / "catalog"
    cat.mkdir()
    encode_audio(cat / "a.flac", make_tone(6.0, 220.0, 0), SR)
    encode_audio(cat / "b.flac", make_tone(6.0, 330.0, 1), SR)
    (cat / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEgarbage")
    out = root / "out"
    res = run(["scan", str(cat), "-o", str(out), "--model", str(tiny_model_dir),
               "--report", "html", "--key", str(root / "keys"), "--quiet"])
    assert res.exit_code == 1, res.output          # the broken file failed
    return out


@pytest.fixture
def copy(scanned, tmp_path):
    shutil.copytree(scanned, tmp_path / "out")
    return tmp_path / "out"


def _rewrite_summary(out: Path, edit, *, render_all: bool = False) -> None:
    """Edit the summary rows; with ``render_all`` re-render the CSV and index too, as a
    careful forger would."""
    rows = json.loads((out / "summary.json").read_text(encoding="utf-8"))["tracks"]
    edit(rows)
    for name, data in catalog_files(rows).items():
        if render_all or name == "summary.json":
            (out / name).write_bytes(data)


def _failed(results):
    return {c.name: c.detail for r in results for c in r.failures}


def test_an_untouched_scan_verifies_and_names_its_failed_inputs(copy):
    assert is_catalog_folder(copy)
    assert not is_catalog_folder(next(p for p in copy.iterdir() if p.is_dir()))
    results = verify_catalog(copy, trusted=load_trust_store())
    assert [r.kind for r in results] == ["catalog", "folder", "folder"]
    assert all(r.ok for r in results), _failed(results)
    checks = {c.name: c for c in results[0].checks}
    assert "2 of 2" in checks["summary"].detail
    assert checks["failed inputs"].status == "warn" and "broken.wav" in checks["failed inputs"].detail
    assert checks["file summary.csv"].status == checks["file index.html"].status == "pass"
    assert checks["tracks"].status == "pass" and "2 sealed track folders" in checks["tracks"].detail
    assert checks["signature"].status == "pass"


def test_a_summary_that_disagrees_with_a_signed_result_is_caught(copy):
    def flip(rows):
        row = next(r for r in rows if r["status"] == "ok")
        row["verdict"] = "human" if row["verdict"] != "human" else "ai"
        row["p_ai"] = 0.5
    _rewrite_summary(copy, flip)
    results = verify_catalog(copy, trusted=load_trust_store())
    failed = _failed(results)
    assert "verdict, p_ai" in failed["track 1"]
    assert "1 of 2" in failed["summary"]
    assert failed["sealed summary.json"] == "changed since the catalog was sealed"
    # the CSV and the index were not re-rendered by the edit, so they no longer match
    assert {"file summary.csv", "file index.html"} <= set(failed)
    assert all(r.ok for r in results[1:])          # the signed folders themselves are fine


@pytest.mark.parametrize("name", ["summary.csv", "index.html"])
def test_an_edited_csv_or_index_is_caught(copy, name):
    path = copy / name
    path.write_text(path.read_text(encoding="utf-8").replace("ok", "OK", 1), encoding="utf-8")
    assert set(_failed(verify_catalog(copy))) == {f"file {name}", f"sealed {name}"}


def test_a_track_removed_with_its_folder_and_summary_row_is_caught(copy):
    row = json.loads((copy / "summary.json").read_text(encoding="utf-8"))["tracks"][0]
    shutil.rmtree(copy / Path(row["report"]).parent)
    _rewrite_summary(copy, lambda rows: rows.pop(0), render_all=True)
    failed = _failed(verify_catalog(copy))
    assert "sealed but not in the summary" in failed["tracks"]
    assert Path(row["report"]).parent.name in failed["tracks"]


def test_a_deleted_track_folder_the_summary_still_names_is_called_missing(copy):
    # Only the folder is gone: the summary row is still there, so "not in the summary"
    # (what the catalog check said before) sent the reader to the wrong file.
    row = json.loads((copy / "summary.json").read_text(encoding="utf-8"))["tracks"][0]
    name = Path(row["report"]).parent.name
    shutil.rmtree(copy / name)
    failed = _failed(verify_catalog(copy))
    assert "is missing" in failed["track 1"]
    assert "not in the summary" not in failed["tracks"]
    assert f"sealed and in the summary, but missing from the catalog folder: '{name}'" \
        in failed["tracks"]


def test_a_catalog_without_its_signed_manifest_fails(copy):
    (copy / "catalog-manifest.json.sig").unlink()
    assert "cannot read catalog-manifest.json.sig" in _failed(verify_catalog(copy))["signature"]
    (copy / "catalog-manifest.json").unlink()
    assert "nothing binds the set of tracks" in _failed(verify_catalog(copy))["catalog manifest"]


def test_missing_or_tampered_track_folders_and_unsafe_paths_fail(copy):
    folders = sorted(p for p in copy.iterdir() if p.is_dir())
    shutil.rmtree(folders[0])
    result = (folders[1] / "result.json")
    result.write_text(result.read_text(encoding="utf-8").replace('"human"', '"ai"')
                      .replace('"inconclusive"', '"ai"'), encoding="utf-8")
    failed = _failed(verify_catalog(copy))
    assert "is missing" in failed["track 1"] and "does not verify" in failed["track 2"]

    _rewrite_summary(copy, lambda rows: rows[0].update(report="../../etc/report.html"))
    assert "unsafe" in _failed(verify_catalog(copy))["track 1"]


def test_an_unlisted_report_folder_is_reported(copy):
    extra = next(p for p in copy.iterdir() if p.is_dir())
    shutil.copytree(extra, copy / "extra-folder")
    checks = {c.name: c for c in verify_catalog(copy)[0].checks}
    assert checks["other folders"].status == "warn" and "extra-folder" in checks["other folders"].detail


def test_cli_verifies_a_scan_folder(copy, tmp_path):
    ok = run(["verify", str(copy)])
    assert ok.exit_code == 0, ok.output
    assert ok.output.startswith(f"VALID  {copy}  (catalog: 2 track folder(s))")
    assert run(["verify", str(copy), "--audio", str(copy / "summary.csv")]).exit_code == 2
    _rewrite_summary(copy, lambda rows: rows[0].update(sha256="0" * 64))
    bad = run(["verify", str(copy)])
    assert bad.exit_code == 1 and "INVALID" in bad.output and "in: sha256" in bad.output



def test_a_catalog_forged_and_resigned_whole_by_another_key_is_not_valid(copy, tmp_path):
    """Observation 2: a catalog with one track deleted and another flipped to `human`,
    every file re-rendered and re-signed with another key, verified VALID without --keys."""
    from musicbrain_cli.report import (CatalogEntry, init_keys, summary_row, write_manifest,
                                       write_track_report)
    from musicbrain_cli.report.manifest import write_catalog_manifest

    forger = init_keys(tmp_path / "forger")
    rows = json.loads((copy / "summary.json").read_text(encoding="utf-8"))["tracks"]
    ok = [r for r in rows if r["status"] == "ok"]
    shutil.rmtree(copy / Path(ok[0]["report"]).parent)
    kept = copy / Path(ok[1]["report"]).parent
    track = json.loads((kept / "result.json").read_text(encoding="utf-8"))
    track["verdict"].update(label="human", p_ai=0.01)
    figures = {f.name: f.read_bytes() for f in (kept / "figures").iterdir()}
    formats = tuple(f for f in ("pdf", "html") if (kept / f"report.{f}").exists()) + ("json",)
    write_track_report(track, figures, kept, formats=formats, keys=forger, overwrite=True)
    write_manifest(kept, None, track["model"]["weights_sha256"] or None, forger)
    forged = [summary_row(CatalogEntry(ok[1]["path"], track=track, report=ok[1]["report"]))]
    for name, data in catalog_files(forged).items():
        (copy / name).write_bytes(data)
    write_catalog_manifest(copy, ["summary.json", "summary.csv", "index.html"], [kept.name],
                           forger)
    res = run(["verify", str(copy)])
    assert res.exit_code == 1 and res.output.startswith("UNTRUSTED"), res.output
    assert forger.manifest_key_fingerprint in res.output
    assert forger.certificate_fingerprint in res.output
    assert "[fail]" not in res.output          # a perfect forgery: only the signer gives it away


def test_what_lies_unsealed_beside_a_catalog_is_named_and_a_missing_summary_is_said(copy):
    """Audit (session 26): a page `README-verdict.html` or a fake track folder put beside a
    catalog verified VALID without a word, and a catalog whose summary.json was deleted was
    checked as a track folder ("cannot read manifest.json")."""
    (copy / "README-verdict.html").write_text("<h1>AI!</h1>", encoding="utf-8")
    (copy / "fake-track").mkdir()
    (copy / "fake-track" / "report.pdf").write_bytes(b"%PDF-1.7 nothing")
    catalog = verify_catalog(copy)[0]
    checks = {c.name: c for c in catalog.checks}
    assert checks["unsealed files"].status == "warn"
    assert "'README-verdict.html'" in checks["unsealed files"].detail
    assert "'fake-track'" in checks["unsealed files"].detail
    (copy / "summary.json").unlink()
    res = run(["verify", str(copy)])
    assert res.exit_code == 1 and "cannot read summary.json" in res.output, res.output


def test_a_hidden_page_beside_a_catalog_is_named(copy):
    """Review: a name starting with '.' was left out, so a hidden page verified VALID with
    no warning; the scan's own lock and input index are still not named."""
    assert {".musicbrain-scan.lock", ".musicbrain-inputs.json"} <= {p.name for p in copy.iterdir()}
    assert "unsealed files" not in {c.name for c in verify_catalog(copy)[0].checks}
    (copy / ".verdict.html").write_text("<h1>AI!</h1>", encoding="utf-8")
    checks = {c.name: c for c in verify_catalog(copy)[0].checks}
    assert checks["unsealed files"].status == "warn"
    assert checks["unsealed files"].detail.endswith("not verified: '.verdict.html'")


def test_the_catalog_names_what_the_scan_passed_over_and_verify_holds_it_to_it(
        tmp_path, tiny_model_dir):
    """What a scan passed over (a file without an audio extension, a second name of a file
    already taken) was said only on the console: the catalog, the record that stays, did not
    say what the scan never looked at. summary.json lists it with the reasons (sealed by the
    catalog manifest), index.html counts it, and verify re-renders the index from it."""
    cat = tmp_path / "catalog"
    cat.mkdir()
    encode_audio(cat / "a.flac", make_tone(6.0, 220.0, 0), SR)
    (cat / "score.mid").write_bytes(b"MThd")
    (cat / "again.flac").hardlink_to(cat / "a.flac")
    out = tmp_path / "out"
    keys = tmp_path / "keys"
    res = run(["scan", str(cat), "-o", str(out), "--model", str(tiny_model_dir),
               "--report", "html", "--key", str(keys), "--quiet"])
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["skipped_total"] == 2
    assert {Path(e["path"]).name: e["reason"] for e in summary["skipped"]}["score.mid"] == \
        "not an audio file name extension"
    index = (out / "index.html").read_text(encoding="utf-8")
    assert "<dt>Not scanned</dt><dd>2 path(s)" in index
    assert "not an audio file name extension (1)" in index
    assert run(["verify", str(out), "--keys", str(keys)]).exit_code == 0
    # the index must say what the sealed summary says: a page that hides them fails
    (out / "index.html").write_text(index.replace("<dt>Not scanned</dt>", "<dt>Scanned</dt>"),
                                    encoding="utf-8")
    failed = _failed(verify_catalog(out))
    assert "file index.html" in failed


def test_the_passed_over_list_is_bounded_and_a_malformed_one_is_refused():
    from musicbrain_cli.report.catalog import MAX_SKIPPED_LISTED, Skipped

    many = Skipped.of([(f"/in/{i}.txt", "not an audio file name extension")
                       for i in range(MAX_SKIPPED_LISTED + 5)])
    assert many.total == MAX_SKIPPED_LISTED + 5 and len(many.listed) == MAX_SKIPPED_LISTED
    data = json.loads(catalog_files([], skipped=many)["summary.json"])
    assert Skipped.from_summary(data) == many
    assert Skipped.from_summary({"schema": "x", "tracks": []}) == Skipped()
    for bad in ({"skipped": [{"path": 1, "reason": "r"}], "skipped_total": 1},
                {"skipped": [{"path": "p", "reason": "r"}], "skipped_total": 0},
                {"skipped": [], "skipped_total": True},
                {"skipped": "x", "skipped_total": 1}):
        with pytest.raises(ValueError):
            Skipped.from_summary(bad)
