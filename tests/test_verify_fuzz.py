"""Malformed manifests and summaries: a failed check or a one-line error, never a traceback.

Every JSON file that verify and a rerun read (summary.json, catalog-manifest.json, a track's
manifest.json and result.json) is mutated with a seeded generator: a value at a random place
replaced by another type, a key deleted, the file made deeply nested or not JSON at all;
half of the mutations are re-sealed with the examiner's own key, so the malformed content
also reaches the code behind the signature checks.
"""

import json
import random
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import SR, make_tone
from musicbrain_cli.audio.encode import encode_audio
from musicbrain_cli.cli import main
from musicbrain_cli.report import load_keys, write_manifest
from musicbrain_cli.report.verify import verify_catalog

DEEP = "[" * 100_000 + "]" * 100_000
N_MUTATIONS = 120


@pytest.fixture(scope="module")
def scanned(tmp_path_factory, tiny_model_dir):
    root = tmp_path_factory.mktemp("fuzz")
    encode_audio(root / "a.flac", make_tone(3.0), SR)
    (root / "bad.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    res = CliRunner().invoke(main, ["scan", str(root / "a.flac"), str(root / "bad.wav"),
                                    "-o", str(root / "out"), "--model", str(tiny_model_dir),
                                    "--report", "html", "--key", str(root / "keys"), "--quiet"],
                             catch_exceptions=False)
    assert res.exit_code == 1, res.output          # bad.wav failed: an error row too
    return root


@pytest.fixture
def out(scanned, tmp_path):
    shutil.copytree(scanned / "out", tmp_path / "out")
    return tmp_path / "out"


def _track(out: Path) -> Path:
    return next(p for p in out.iterdir() if p.is_dir())


def _verify(*args):
    res = CliRunner().invoke(main, ["verify", *map(str, args)])
    assert isinstance(res.exception, (SystemExit, type(None))), (args, res.exception)
    assert "Traceback" not in res.output
    return res


def test_the_observed_malformed_files_give_a_verdict_not_a_traceback(out, monkeypatch):
    """Observation 9: tracebacks from `"signer": "x"`, deep nesting, `"report": 5`, an
    unreadable listed file."""
    track = _track(out)
    pristine = {p: p.read_bytes() for p in (out / "summary.json", track / "manifest.json")}
    assert _verify(out).exit_code == 0

    manifest = json.loads(pristine[track / "manifest.json"])
    manifest["signer"] = "x"
    (track / "manifest.json").write_text(json.dumps(manifest))
    res = _verify(track)
    assert res.exit_code == 1 and res.output.startswith("INVALID")
    assert "names no signer" in res.output

    for name in ("manifest.json", "summary.json"):
        path = (track if name == "manifest.json" else out) / name
        path.write_text(DEEP)
        res = _verify(out)
        assert res.exit_code == 1 and "nested too deeply" in res.output, res.output
        path.write_bytes(pristine[path])

    summary = json.loads(pristine[out / "summary.json"])
    summary["tracks"][0]["report"] = 5
    (out / "summary.json").write_text(json.dumps(summary))
    res = _verify(out)
    assert res.exit_code == 1 and "unsafe or malformed report path 5" in res.output
    (out / "summary.json").write_bytes(pristine[out / "summary.json"])

    import musicbrain_cli.report.verify as V

    real = V.sha256_file

    def unreadable(path):          # tests run as root, for whom chmod 000 reads anyway
        if Path(path).name == "result.json":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)
    monkeypatch.setattr(V, "sha256_file", unreadable)
    res = _verify(track)
    assert res.exit_code == 1 and "file result.json: cannot read it: Permission denied" in res.output


def _places(value, path=()):
    """Every (path to a value) in a JSON document."""
    yield path
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _places(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _places(v, (*path, i))


def _mutate(data: bytes, rng: random.Random) -> bytes:
    doc = json.loads(data)
    roll = rng.random()
    if roll < 0.08:
        return DEEP.encode()
    if roll < 0.12:
        return data[: rng.randrange(len(data))]
    places = [p for p in _places(doc) if p]
    target = rng.choice(places)
    parent = doc
    for k in target[:-1]:
        parent = parent[k]
    if isinstance(parent, dict) and rng.random() < 0.2:
        del parent[target[-1]]
    else:
        parent[target[-1]] = rng.choice(["x", 5, -1.5, None, True, [], {}, [[[[]]]], {"a": {}},
                                         "../../etc/passwd", "a" * 5000, 1e308, "\u202e"])
    return json.dumps(doc).encode()


def test_seeded_mutations_of_every_json_file_never_raise(out, scanned):
    from musicbrain_cli.report.keys import load_trust_store
    from musicbrain_cli.scan.batch import _previous_failures, check_finished

    keys = load_keys(scanned / "keys")
    track = _track(out)
    targets = [out / "summary.json", out / "catalog-manifest.json", track / "manifest.json",
               track / "result.json"]
    pristine = {p: p.read_bytes() for p in (*targets, track / "manifest.json.sig")}
    rng = random.Random(23)
    for _ in range(N_MUTATIONS):
        target = rng.choice(targets)
        target.write_bytes(_mutate(pristine[target], rng))
        if target.name == "result.json" and rng.random() < 0.5:
            write_manifest(track, None, None, keys)           # re-sealed by the examiner
        # the catalog covers every file mutated: each mutation is caught there
        assert _verify(out).exit_code == 1, target
        _verify(track)                 # may be VALID (the file was outside it, or re-sealed)
        verify_catalog(out, trusted=load_trust_store())
        check_finished(track, None, keys=keys)
        _previous_failures(out)
        for p, data in pristine.items():
            p.write_bytes(data)
    assert _verify(out).exit_code == 0     # and the restored catalog verifies again


def _deep_pdf(path, depth=50_000):
    """A small PDF whose signature field's value nests ``depth`` arrays: a parser that
    recurses on it runs out of stack."""
    objs = [b"<< /Type /Catalog /Pages 2 0 R /AcroForm << /Fields [4 0 R] >> >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 10 10] >>",
            b"<< /FT /Sig /T (s) /V " + b"[" * depth + b"]" * depth + b" >>"]
    out, offsets = bytearray(b"%PDF-1.7\n"), []
    for i, obj in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + obj + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 5\n0000000000 65535 f \n" + b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size 5 /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % xref
    path.write_bytes(bytes(out))
    return path


def test_a_deeply_nested_pdf_is_a_failed_check_and_the_other_paths_are_still_verified(
        tmp_path):
    """Audit (session 27): 50,000 nested arrays in a PDF made pyHanko recurse until
    RecursionError; verify printed a traceback, no verdict, and never checked the paths
    after it."""
    from click.testing import CliRunner

    from musicbrain_cli.cli import main
    from musicbrain_cli.report.verify import verify_pdf

    bad = _deep_pdf(tmp_path / "deep.pdf")
    result = verify_pdf(bad)
    assert not result.ok and result.failures[0].name == "pdf"
    assert "RecursionError" in result.failures[0].detail
    missing = tmp_path / "notes.txt"
    missing.write_text("not a report")
    res = CliRunner().invoke(main, ["verify", str(bad), str(missing)])
    assert res.exit_code == 1 and "Traceback" not in res.output, res.output
    assert f"INVALID  {bad}" in res.output and f"INVALID  {missing}" in res.output


def test_an_internal_error_on_one_path_is_said_and_the_others_still_verified(
        tmp_path, monkeypatch):
    from click.testing import CliRunner

    import musicbrain_cli.report as report
    from musicbrain_cli.cli import main

    real = report.verify_path

    def flaky(path, **kw):
        if path.name == "boom":
            raise RuntimeError("a library fault")
        return real(path, **kw)

    monkeypatch.setattr(report, "verify_path", flaky)
    (tmp_path / "boom").write_text("x")
    (tmp_path / "x").write_text("x")
    res = CliRunner().invoke(main, ["verify", str(tmp_path / "boom"), str(tmp_path / "x")])
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert "internal error while verifying it (RuntimeError: a library fault)" in res.output
    assert f"INVALID  {tmp_path / 'x'}" in res.output


def test_a_signing_time_without_a_zone_is_judged_not_crashed_on():
    """Review (session 27): a /M date without a time zone made the validity comparison raise
    TypeError (naive against aware)."""
    import datetime as dt

    from asn1crypto import x509 as ax509
    from cryptography.hazmat.primitives import serialization

    from musicbrain_cli.report.keys import init_keys
    from musicbrain_cli.report.verify import _outside_validity

    import tempfile
    with tempfile.TemporaryDirectory() as d:
        keys = init_keys(Path(d) / "k")
    cert = ax509.Certificate.load(keys.pdf_cert.public_bytes(serialization.Encoding.DER))
    assert _outside_validity(cert, dt.datetime.now()) is None
    assert "outside" in _outside_validity(cert, dt.datetime(1990, 1, 1))
