"""PAdES signatures (pyHanko and poppler's pdfsig agree) and detached Ed25519 signatures."""

import io
import shutil
import subprocess

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from musicbrain_cli.errors import VerificationError
from musicbrain_cli.report.keys import init_keys
from musicbrain_cli.report.pdf import html_to_pdf
from musicbrain_cli.report.signing import SIGNATURE_FIELD, sign_detached, sign_pdf, verify_detached

HTML = ("<html><head><meta name='dcterms.created' content='2025-01-01T00:00:00Z'></head>"
        "<body><h1>Evidence</h1><p>small test report</p></body></html>")


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    return init_keys(tmp_path_factory.mktemp("keys") / "k")


@pytest.fixture(scope="module")
def signed_pdf(keys):
    return sign_pdf(html_to_pdf(HTML, identifier=b"0123456789abcdef"), keys)


def _tamper(pdf: bytes) -> bytes:
    """Flip one byte inside the signed range that keeps the file parseable: a byte of the
    binary comment on the PDF's second line (ISO 32000-1, 7.5.2)."""
    data = bytearray(pdf)
    index = data.index(b"\n") + 2
    assert data[index - 1:index] == b"%"
    data[index] ^= 0x01
    return bytes(data)


def _pyhanko_status(pdf: bytes):
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko_certvalidator import ValidationContext

    sig = PdfFileReader(io.BytesIO(pdf)).embedded_signatures[0]
    return validate_pdf_signature(sig, ValidationContext(trust_roots=[sig.signer_cert],
                                                         allow_fetching=False))


def test_pyhanko_validates_then_rejects_one_changed_byte(signed_pdf, keys):
    status = _pyhanko_status(signed_pdf)
    assert status.intact and status.valid and status.bottom_line
    assert status.coverage.name == "ENTIRE_FILE"
    assert status.signing_cert.sha256.hex() == keys.certificate_fingerprint
    tampered = _pyhanko_status(_tamper(signed_pdf))
    assert not tampered.intact and not tampered.bottom_line


@pytest.mark.skipif(shutil.which("pdfsig") is None, reason="poppler-utils (pdfsig) not installed")
def test_pdfsig_validates_then_rejects_one_changed_byte(signed_pdf, tmp_path):
    good, bad = tmp_path / "good.pdf", tmp_path / "bad.pdf"
    good.write_bytes(signed_pdf)
    bad.write_bytes(_tamper(signed_pdf))
    out = subprocess.run(["pdfsig", str(good)], capture_output=True, text=True, timeout=60).stdout
    assert "Signature Validation: Signature is Valid." in out
    assert SIGNATURE_FIELD in out and "ETSI.CAdES.detached" in out
    assert "Total document signed" in out
    out = subprocess.run(["pdfsig", str(bad)], capture_output=True, text=True, timeout=60).stdout
    assert "Signature Validation: Signature is Valid." not in out
    assert "Digest Mismatch" in out


def test_signing_keeps_original_bytes_as_prefix(keys):
    pdf = html_to_pdf(HTML, identifier=b"0123456789abcdef")
    # An incremental update: the unsigned document is kept byte for byte.
    assert sign_pdf(pdf, keys).startswith(pdf)


def test_detached_signature_round_trip_and_tamper(keys):
    data = b'{"a":1}'
    sig = sign_detached(data, keys.manifest_key)
    verify_detached(data, sig, keys.manifest_public_key)
    with pytest.raises(VerificationError, match="does not match"):
        verify_detached(b'{"a":2}', sig, keys.manifest_public_key)
    with pytest.raises(VerificationError, match="base64"):
        verify_detached(data, b"not base64!!", keys.manifest_public_key)
    other = ed25519.Ed25519PrivateKey.generate()
    with pytest.raises(VerificationError):
        verify_detached(data, sig, other.public_key())


def test_signing_garbage_raises_signing_error(keys):
    from musicbrain_cli.errors import SigningError

    with pytest.raises(SigningError):
        sign_pdf(b"%PDF-1.7\nnot really a pdf", keys)


@pytest.mark.parametrize("kind", ["rsa", "ec"])
def test_loaded_key_signer_signs_as_pyhanko_does(keys, kind):
    """The signer that keeps the loaded key (no DER re-parse per signature) gives pyHanko's
    own signature for RSA (PKCS#1 v1.5 is deterministic), and defers to pyHanko otherwise."""
    from asn1crypto import keys as akeys
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, padding
    from pyhanko.sign import signers
    from pyhanko_certvalidator.registry import SimpleCertificateStore

    from musicbrain_cli.report.signing import _asn1, _loaded_key_signer

    cert, _, key_info = _asn1(keys)
    loaded = keys.pdf_key
    if kind == "ec":   # a user's own EC certificate
        import datetime as dt

        from asn1crypto import x509 as ax509
        from cryptography import x509
        from cryptography.x509.oid import NameOID

        loaded = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ec test")])
        now = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
        ec_cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                   .public_key(loaded.public_key()).serial_number(1).not_valid_before(now)
                   .not_valid_after(now + dt.timedelta(days=1)).sign(loaded, hashes.SHA256()))
        cert = ax509.Certificate.load(ec_cert.public_bytes(serialization.Encoding.DER))
        key_info = akeys.PrivateKeyInfo.load(loaded.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
    reg = SimpleCertificateStore.from_certs([cert])
    ours = _loaded_key_signer(loaded)(signing_cert=cert, signing_key=key_info, cert_registry=reg)
    theirs = signers.SimpleSigner(signing_cert=cert, signing_key=key_info, cert_registry=reg)
    data = b"signed attributes"
    if kind == "rsa":
        assert ours.sign_raw(data, "sha256") == theirs.sign_raw(data, "sha256")
        keys.pdf_cert.public_key().verify(ours.sign_raw(data, "sha256"), data,
                                          padding.PKCS1v15(), hashes.SHA256())
    else:   # ECDSA is randomised: check that it verifies under the EC key
        sig = ours.sign_raw(data, "sha256")
        loaded.public_key().verify(sig, data, ec.ECDSA(hashes.SHA256()))
