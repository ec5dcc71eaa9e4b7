"""Tests for musicbrain_cli.audio.provenance: C2PA manifests signed here, read and validated for real.

Every fixture is made in code: seeded audio encoded with PyAV (WAV, MP3, M4A), a test root CA
and an end-entity signing certificate made with ``cryptography`` in the C2PA certificate
profile (EC P-256, digitalSignature key usage, emailProtection EKU, issued by the CA), and
manifests signed with c2pa-python's Builder. No key is stored anywhere.
"""

from __future__ import annotations

import datetime as dt
import json
import struct

import c2pa
import numpy as np
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from musicbrain_cli.audio import intake as audio
from musicbrain_cli.audio.encode import encode_audio
from musicbrain_cli.errors import ConfigError
from musicbrain_cli.audio.provenance import MAX_TEXT_CHARS, ProvenanceFinding, read_provenance

IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"
FORMATS = {"wav": "audio/wav", "mp3": "audio/mpeg", "m4a": "audio/mp4"}
SR = 22050

# Confirms the premise of these tests: c2pa 0.38 can sign every format the tests sign.
assert set(FORMATS.values()) <= set(c2pa.Builder.get_supported_mime_types())


# --- certificates ----------------------------------------------------------------------------


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "MusicBrain Test CA")])


def _key_usage(*, signer: bool) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                         data_encipherment=False, key_agreement=False, key_cert_sign=not signer,
                         crl_sign=not signer, encipher_only=False, decipher_only=False)


def _make_ca(cn: str):
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(signer=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return key, cert


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _signer(ca_key, ca, cn: str) -> dict:
    """An end-entity C2PA signer issued by ``ca`` (the C2PA profile): {"chain", "key", "ca"}."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(signer=True), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return {"chain": _pem(cert) + _pem(ca), "key": key_pem, "ca": _pem(ca)}


@pytest.fixture(scope="module")
def pki():
    """A root CA, an end-entity signer it issued (C2PA profile), and an unrelated CA."""
    ca_key, ca = _make_ca("MusicBrain Test Root")
    _, other_ca = _make_ca("Unrelated Root")
    return {**_signer(ca_key, ca, "Test Music Generator"), "other_ca": _pem(other_ca)}


# --- audio and signing -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    d = tmp_path_factory.mktemp("src")
    rng = np.random.default_rng(7)
    t = np.arange(SR) / SR
    y = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.01 * rng.standard_normal(SR)).astype(np.float32)
    out = {}
    for ext in FORMATS:
        out[ext] = d / f"tone.{ext}"
        encode_audio(out[ext], y, SR)
    return out


def _manifest(source_type: str | None, *, generator: str = "FakeMusicAI", action: dict | None = None) -> dict:
    action = action or {"action": "c2pa.created"}
    if source_type:
        action["digitalSourceType"] = IPTC + source_type
    return {"claim_generator_info": [{"name": generator, "version": "1.0"}], "title": "fixture",
            "assertions": [{"label": "c2pa.actions", "data": {"actions": [action]}}]}


def _sign(pki, src, dst, manifest: dict, *, ingredient=None) -> None:
    info = c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, pki["chain"].encode(), pki["key"].encode(), None)
    fmt = FORMATS[src.suffix[1:]]
    with c2pa.Signer.from_info(info) as signer, c2pa.Builder(manifest) as builder:
        if ingredient is not None:
            with open(ingredient, "rb") as f:
                builder.add_ingredient({"title": ingredient.name, "relationship": "parentOf", "label": "parent"},
                                       FORMATS[ingredient.suffix[1:]], f)
        with open(src, "rb") as s, open(dst, "w+b") as d:
            builder.sign(signer, fmt, s, d)


@pytest.fixture(scope="module")
def signed(pki, sources, tmp_path_factory):
    """{(ext, source type): signed file}; the AI files declare trainedAlgorithmicMedia."""
    d = tmp_path_factory.mktemp("signed")
    out = {}
    for ext, src in sources.items():
        for kind in ("trainedAlgorithmicMedia", "digitalCreation"):
            out[ext, kind] = d / f"{kind}.{ext}"
            _sign(pki, src, out[ext, kind], _manifest(kind))
    return out


def _flip_middle_byte(src, dst) -> None:
    """Copy ``src`` with one byte of its audio payload inverted (all three layouts keep the
    audio in the middle: WAV data chunk before the C2PA chunk, MP3 frames after the ID3
    GEOB, M4A mdat after the C2PA uuid box)."""
    b = bytearray(src.read_bytes())
    b[len(b) // 2] ^= 0xFF
    dst.write_bytes(bytes(b))


# --- (a) AI declaration ----------------------------------------------------------------------


@pytest.mark.parametrize("ext", list(FORMATS))
def test_valid_manifest_declaring_trained_algorithmic_media_says_ai(signed, ext):
    f = read_provenance(signed[ext, "trainedAlgorithmicMedia"])
    assert f.line == "provenance" and f.status == "valid" and f.applicable
    assert f.declares_ai and f.says_ai
    assert f.signer.common_name == "Test Music Generator" and f.signer.issuer == "MusicBrain Test CA"
    assert f.claim_generator == "FakeMusicAI 1.0"
    created = [a for a in f.actions if a.action == "c2pa.created"]
    assert created and created[0].digital_source_type == IPTC + "trainedAlgorithmicMedia"
    assert created[0].declares_ai and created[0].manifest == "active"
    # No trust list configured: the signature is valid, the signer is not verified.
    assert f.trusted is None and f.validation_state == "Valid"
    assert "not verified against a trust list" in f.explanation
    assert "Test Music Generator" in f.explanation and "FakeMusicAI 1.0" in f.explanation
    d = f.to_dict()
    assert ProvenanceFinding.from_dict(json.loads(json.dumps(d))) == f


# --- (b) no AI declaration -------------------------------------------------------------------


@pytest.mark.parametrize("ext", list(FORMATS))
def test_valid_manifest_without_ai_declaration_does_not_say_ai(signed, ext):
    f = read_provenance(signed[ext, "digitalCreation"])
    assert f.status == "valid" and f.applicable
    assert not f.declares_ai and not f.says_ai
    assert any(a.digital_source_type == IPTC + "digitalCreation" for a in f.actions)
    assert "does not declare generative AI" in f.explanation and "not proof of human" in f.explanation


@pytest.mark.parametrize("kind", ["algorithmicMedia", "compositeWithTrainedAlgorithmicMedia"])
def test_which_source_types_count_as_ai(pki, sources, tmp_path, kind):
    """Rule-based algorithmic media is recorded, not counted; a composite with AI counts."""
    p = tmp_path / f"{kind}.wav"
    _sign(pki, sources["wav"], p, _manifest(kind))
    f = read_provenance(p)
    assert f.status == "valid" and any(a.digital_source_type == IPTC + kind for a in f.actions)
    assert f.says_ai is (kind == "compositeWithTrainedAlgorithmicMedia")


def test_ai_declared_by_an_ingredient_withholds_human_and_never_accuses(pki, signed, sources, tmp_path):
    """A track built from an AI-generated part: the AI declaration sits in the ingredient's
    manifest. It is recorded and withholds ``human``, but it does not accuse: the ingredient's
    signer is not checked against the trust list, and an ingredient may only have been an
    input (review of session 35; tests/test_provenance_review_defects.py)."""
    from musicbrain_cli.verdict import provenance_finding

    p = tmp_path / "edit.wav"
    opened = {"action": "c2pa.opened", "parameters": {"ingredientIds": ["parent"]}}  # no source type of its own
    _sign(pki, sources["wav"], p, _manifest(None, generator="SomeDAW", action=opened),
          ingredient=signed["wav", "trainedAlgorithmicMedia"])
    f = read_provenance(p)
    assert f.status == "valid" and f.claim_generator == "SomeDAW 1.0"
    ai = [a for a in f.actions if a.declares_ai]
    assert ai and ai[0].manifest.startswith("ingredient ") and not f.says_ai
    assert provenance_finding(f.to_dict()).finding == "inconclusive"


# --- (c) tampering ---------------------------------------------------------------------------


@pytest.mark.parametrize("ext", list(FORMATS))
def test_audio_changed_after_signing_is_invalid_and_not_evidence(signed, tmp_path, ext):
    p = tmp_path / f"tampered.{ext}"
    _flip_middle_byte(signed[ext, "trainedAlgorithmicMedia"], p)
    f = read_provenance(p)
    assert f.status == "invalid" and f.applicable and f.validation_state == "Invalid"
    assert f.declares_ai and not f.says_ai  # the declaration is no longer bound to this audio
    codes = {e.code for e in f.validation_errors}
    assert codes & {"assertion.dataHash.mismatch", "assertion.bmffHash.mismatch"}, codes
    assert "does not validate" in f.explanation and "no evidence either way" in f.explanation


# --- (d) no manifest -------------------------------------------------------------------------


@pytest.mark.parametrize("ext", list(FORMATS))
def test_no_manifest_is_absent_and_not_applicable(sources, ext):
    f = read_provenance(sources[ext])
    assert f.status == "absent" and not f.applicable and not f.says_ai and not f.declares_ai
    assert f.signer is None and f.actions == () and "no evidence either way" in f.explanation


def test_read_metadata_and_probe_carry_the_finding_and_keep_presence_fields(pki, signed, sources):
    md = audio.read_metadata(signed["mp3", "trainedAlgorithmicMedia"])
    assert md["c2pa_present"] and md["c2pa_source"].startswith("id3:GEOB")
    assert md["provenance"]["status"] == "valid" and md["provenance"]["says_ai"] is True
    assert md["provenance"]["trusted"] is None
    json.dumps(md)
    info = audio.probe(signed["mp3", "trainedAlgorithmicMedia"], trust_anchors=pki["ca"])
    assert info.metadata["provenance"]["trusted"] is True and info.metadata["provenance"]["says_ai"]
    md = audio.read_metadata(sources["wav"])
    assert md["c2pa_present"] is False and md["provenance"]["status"] == "absent"
    assert "provenance" not in audio.read_metadata(sources["wav"], provenance=False)


# --- (e) broken files ------------------------------------------------------------------------


def test_garbage_and_truncated_files_are_unreadable_without_raising(signed, tmp_path):
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(np.random.default_rng(3).bytes(4000))
    truncated = tmp_path / "truncated.wav"
    truncated.write_bytes(signed["wav", "trainedAlgorithmicMedia"].read_bytes()[:1000])
    for p in (garbage, truncated):
        f = read_provenance(p)
        assert f.status == "unreadable" and not f.applicable and not f.says_ai
        assert f.reason and "could not be checked" in f.explanation
        json.dumps(f.to_dict())


def test_damaged_store_is_invalid_not_absent(sources, tmp_path):
    """A C2PA chunk whose content is junk (a store stripped to its container) is reported."""
    raw = sources["wav"].read_bytes()
    junk = b"jumb" + bytes(range(256)) * 4
    body = raw[12:] + struct.pack("<4sI", b"C2PA", len(junk)) + junk
    p = tmp_path / "junk.wav"
    p.write_bytes(b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WAVE" + body)
    f = read_provenance(p)
    assert f.status == "invalid" and f.manifest_source == "riff:C2PA" and f.manifest_bytes == len(junk)
    assert not f.says_ai and "cannot be parsed" in f.explanation


def test_limits_refuse_oversized_stores_and_slow_reads(signed):
    p = signed["wav", "trainedAlgorithmicMedia"]
    f = read_provenance(p, max_manifest_bytes=100)
    assert f.status == "unreadable" and "100-byte limit" in f.reason and f.manifest_source == "riff:C2PA"
    f = read_provenance(p, max_file_bytes=1000)
    assert f.status == "unreadable" and "1000-byte limit" in f.reason
    f = read_provenance(p, timeout_s=0.001)  # the child cannot even start in 1 ms
    assert f.status == "unreadable" and "took longer than" in f.reason


def test_isolated_and_in_process_reads_agree(signed):
    p = signed["m4a", "trainedAlgorithmicMedia"]
    assert read_provenance(p, isolate=False) == read_provenance(p, isolate=True)


def test_hostile_text_in_the_manifest_is_bounded_and_printable(pki, sources, tmp_path):
    evil = "Evil\u202eAI\x00\x1b[31m<script>alert(1)</script>" + "x" * 10_000
    p = tmp_path / "evil.wav"
    _sign(pki, sources["wav"], p, _manifest("trainedAlgorithmicMedia", generator=evil))
    f = read_provenance(p)
    assert f.status == "valid" and f.says_ai
    assert len(f.claim_generator) <= MAX_TEXT_CHARS + len("...[truncated]")
    for ch in ("\u202e", "\x00", "\x1b"):
        assert ch not in f.claim_generator and ch not in f.explanation
    json.loads(json.dumps(f.to_dict()))


# --- (f) trust anchors -----------------------------------------------------------------------


def test_trust_anchors_decide_trusted(pki, signed, tmp_path):
    p = signed["wav", "trainedAlgorithmicMedia"]
    f = read_provenance(p, trust_anchors=pki["ca"])
    assert f.status == "valid" and f.trusted is True and f.validation_state == "Trusted" and f.says_ai
    assert f.trust_anchors_configured and "chains to a configured trust anchor" in f.explanation
    anchors = tmp_path / "anchors.pem"
    anchors.write_text(pki["other_ca"])
    f = read_provenance(p, trust_anchors=anchors)  # a path to a PEM bundle works too
    assert f.status == "valid" and f.trusted is False and "does not chain" in f.explanation
    f = read_provenance(p)
    assert f.trusted is None and not f.trust_anchors_configured


def test_unusable_trust_anchors_raise_config_error(signed, tmp_path):
    p = signed["wav", "digitalCreation"]
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    with pytest.raises(ConfigError, match="bad.pem"):
        read_provenance(p, trust_anchors=bad)
    with pytest.raises(ConfigError, match="cannot be read"):
        read_provenance(p, trust_anchors=tmp_path / "missing.pem")



# --- the provenance line in a scan ------------------------------------------------------------


def test_a_scan_accuses_on_a_trusted_ai_manifest_and_never_on_an_unverified_one(
        pki, signed, tmp_path, tiny_model_dir):
    from musicbrain_cli.model.inference import Detector
    from musicbrain_cli.scan.reproduce import reproduce
    from musicbrain_cli.scan.batch import ScanOptions, analyse_track, scan

    det = Detector.from_pretrained(tiny_model_dir, device="cpu")
    track = signed["wav", "trainedAlgorithmicMedia"]
    anchors = tmp_path / "anchors.pem"
    anchors.write_text(pki["ca"])
    trusted = analyse_track(track, det, options=ScanOptions(trust_anchors=str(anchors))).track
    (line,) = [e for e in trusted["evidence"] if e["line"] == "provenance"]
    assert line["finding"] == "ai" and line["in_domain"] and not line["can_exonerate"]
    assert line["details"]["c2pa"]["signer"]["common_name"] == "Test Music Generator"
    assert trusted["verdict"]["label"] == "ai" and "provenance" in trusted["verdict"]["ai_lines"]

    unverified = analyse_track(track, det).track
    (line,) = [e for e in unverified["evidence"] if e["line"] == "provenance"]
    assert line["finding"] == "inconclusive"
    assert "provenance" not in unverified["verdict"]["ai_lines"]
    assert unverified["verdict"]["label"] != "human"

    out = tmp_path / "out"
    scan([track], out, det, options=ScanOptions(formats=("html",), trust_anchors=str(anchors)))
    (folder,) = [p for p in out.iterdir() if p.is_dir()]
    html = (folder / "report.html").read_text()
    assert "Provenance (C2PA content credentials): AI generation" in html
    assert "It names &#39;Test Music Generator&#39; as signer" in html
    assert reproduce(folder, track, model=tiny_model_dir, trust_anchors=anchors).ok
    without = reproduce(folder, track, model=tiny_model_dir)
    assert not without.ok and "C2PA trust anchors" in without.differences[0]


def test_scan_refuses_an_unusable_trust_bundle_before_any_work(signed, tmp_path):
    from click.testing import CliRunner

    from musicbrain_cli.cli import main

    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    res = CliRunner().invoke(main, ["scan", str(signed["wav", "digitalCreation"]), "-o",
                                    str(tmp_path / "o"), "--c2pa-trust-anchors", str(bad)])
    assert res.exit_code == 2 and "not a PEM certificate bundle" in res.output
    assert not (tmp_path / "o").exists()
