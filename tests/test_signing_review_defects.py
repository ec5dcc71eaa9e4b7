"""Review of signing, keys, manifests and verify: what verify said it checked and did not.

1. A folder without a PDF verified VALID with ``--audio`` against the manifest's audio hash
   alone, while its signed result.json (and so the report's text) names another recording.
2. An RFC 3161 timestamp sits in the CMS's unsigned attributes, outside what the document
   signature covers, so anyone can put one into a signed PDF; verify said "intact PAdES
   signature with an RFC 3161 timestamp" for a token that timestamps something else, and
   never said when or by whom, nor that no authority vouches for it.
"""

import datetime as dt
import io

import numpy as np
import pytest
from asn1crypto import keys as akeys
from asn1crypto import tsp
from asn1crypto import x509 as ax509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from musicbrain_cli.report import init_keys, verify_path, write_manifest, write_track_report
from musicbrain_cli.report._io import sha256_file
from musicbrain_cli.report.schema import example_track


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    return init_keys(tmp_path_factory.mktemp("keys") / "k")


def _checks(result):
    return {c.name: c for c in result.checks}


# --- 1: the recording the report's text names ---------------------------------------------


def _html_report(tmp_path, keys, *, named_sha256=None):
    """A signed HTML + JSON report folder of ``take.flac`` whose result.json names the
    recording ``named_sha256`` (default: take.flac's own hash), and the audio file."""
    rng = np.random.default_rng(11)
    tmp_path.mkdir()
    audio = tmp_path / "take.flac"
    audio.write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    track = example_track(n_windows=4, file_name=audio.name,
                          sha256=named_sha256 or sha256_file(audio))
    folder = tmp_path / "report"
    write_track_report(track, {}, folder, formats=("html", "json"), keys=keys)
    write_manifest(folder, audio, track["model"]["weights_sha256"], keys)
    return folder, audio


def test_audio_is_checked_against_the_recording_the_signed_result_names(tmp_path, keys):
    genuine, audio = _html_report(tmp_path / "a", keys)
    result = verify_path(genuine, audio=audio, trusted=keys.public())
    assert result.status == "VALID", result.failures
    assert _checks(result)["result audio"].status == "pass"

    other = "ab" * 32            # the report's text says it analysed this recording
    folder, audio = _html_report(tmp_path / "b", keys, named_sha256=other)
    result = verify_path(folder, audio=audio, trusted=keys.public())
    assert result.status == "INVALID", result.checks
    check = _checks(result)["result audio"]
    assert check.status == "fail" and other in check.detail
    assert verify_path(folder, trusted=keys.public()).status == "INVALID"   # --audio or not


# --- 2: timestamps outside the signed bytes ------------------------------------------------


def _tsa():
    """A timestamp authority nobody vouches for, valid for the last 25 years."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Trusted Timestamp Authority")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(5)
            .not_valid_before(now - dt.timedelta(days=9000))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]),
                           critical=True)
            .sign(key, hashes.SHA256()))
    der = serialization.Encoding.DER
    return (ax509.Certificate.load(cert.public_bytes(der)),
            akeys.PrivateKeyInfo.load(key.private_bytes(
                der, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())))


def _timestamped_pdf(path, keys, *, wrong_imprint: bool):
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import signers
    from pyhanko.sign.fields import SigSeedSubFilter
    from pyhanko.sign.timestamps.dummy_client import DummyTimeStamper
    from pyhanko_certvalidator.registry import SimpleCertificateStore

    from musicbrain_cli.report.pdf import html_to_pdf
    from musicbrain_cli.report.signing import _asn1

    class Stamper(DummyTimeStamper):
        def _build_tst_info(self, message_imprint, when, req):
            info = super()._build_tst_info(message_imprint, when, req)
            if wrong_imprint:   # a token that timestamps other bytes than this signature
                info["message_imprint"] = tsp.MessageImprint({
                    "hash_algorithm": message_imprint["hash_algorithm"],
                    "hashed_message": b"\0" * 32})
            return info

    cert, chain, key = _asn1(keys)
    signer = signers.SimpleSigner(signing_cert=cert, signing_key=key,
                                  cert_registry=SimpleCertificateStore.from_certs([cert]))
    meta = signers.PdfSignatureMetadata(field_name="S", md_algorithm="sha256",
                                        subfilter=SigSeedSubFilter.PADES)
    stamper = Stamper(*_tsa(), fixed_dt=dt.datetime(2001, 1, 1, tzinfo=dt.timezone.utc))
    out = signers.sign_pdf(IncrementalPdfFileWriter(io.BytesIO(html_to_pdf("<p>report</p>"))),
                           meta, signer=signer, timestamper=stamper)
    path.write_bytes(out.getvalue())
    return path


def test_a_timestamp_that_stamps_other_bytes_fails(tmp_path, keys):
    from musicbrain_cli.report.verify import verify_pdf

    pdf = _timestamped_pdf(tmp_path / "r.pdf", keys, wrong_imprint=True)
    result = verify_pdf(pdf, trusted=keys.public())
    assert result.status == "INVALID", result.checks
    assert any("timestamp" in c.detail for c in result.failures), result.checks


def test_a_timestamp_is_said_with_its_time_and_an_unvouched_authority(tmp_path, keys):
    from musicbrain_cli.report.verify import verify_pdf

    pdf = _timestamped_pdf(tmp_path / "r.pdf", keys, wrong_imprint=False)
    result = verify_pdf(pdf, trusted=keys.public())
    assert result.status == "VALID", result.checks
    detail = _checks(result)["pdf signature 1 (S)"].detail
    assert "2001-01-01" in detail and "Trusted Timestamp Authority" in detail
    assert "not checked against any trust anchor" in detail


# --- 3: a sealed catalog file with no hash -------------------------------------------------


def test_a_sealed_catalog_file_that_is_missing_never_passes(tmp_path, keys):
    """A catalog manifest entry without a sha256 for a file that is not there passed as
    "sealed summary.csv: SHA-256 None" (``None == None``)."""
    from musicbrain_cli.report.manifest import (CATALOG_MANIFEST_NAME, CATALOG_SCHEMA,
                                                CATALOG_SIGNATURE_NAME, _write_signed)
    from musicbrain_cli.report.verify import VerificationResult, _check_catalog_manifest

    manifest = {"schema": CATALOG_SCHEMA, "canonicalization": "RFC 8785",
                "created": "2025-01-01T00:00:00Z", "files": [{"path": "summary.csv"}],
                "tracks": [], "signer": keys.record()}
    _write_signed(tmp_path, CATALOG_MANIFEST_NAME, CATALOG_SIGNATURE_NAME, manifest, keys)
    catalog = VerificationResult(tmp_path, "catalog")
    _check_catalog_manifest(tmp_path, [], keys.public(), catalog)
    assert _checks(catalog)["sealed summary.csv"].status == "fail", catalog.checks


# --- 4: what a signature check could not do is a failure, not a pass or a crash ------------


def test_a_signature_without_a_signing_time_is_not_passed_unchecked(keys):
    """Without /M or a CMS signing time the certificate's validity was never compared with
    anything, and the signature passed as "signing time n/a"."""
    from musicbrain_cli.report.verify import _outside_validity

    cert = ax509.Certificate.load(keys.pdf_cert.public_bytes(serialization.Encoding.DER))
    assert _outside_validity(cert, dt.datetime.now(dt.timezone.utc)) is None
    assert "no signing time" in _outside_validity(cert, None)


@pytest.mark.parametrize("error", [TypeError, AttributeError, IndexError])
def test_crafted_signature_data_fails_its_signature_and_does_not_crash(tmp_path, keys,
                                                                     monkeypatch, error):
    """Malformed CMS makes asn1crypto raise TypeError, AttributeError or IndexError inside
    pyHanko's validation; verify let them through to the CLI's internal-error handler, so
    one crafted PDF stopped the check of a whole catalog."""
    import pyhanko.sign.validation as validation

    from musicbrain_cli.report.verify import verify_pdf

    pdf = _timestamped_pdf(tmp_path / "r.pdf", keys, wrong_imprint=False)

    def crafted(*_a, **_k):
        raise error("malformed signer info")

    monkeypatch.setattr(validation, "validate_pdf_signature", crafted)
    result = verify_pdf(pdf, trusted=keys.public())
    assert result.status == "INVALID"
    assert any("cannot be validated" in c.detail and error.__name__ in c.detail
               for c in result.failures), result.checks
