"""Signatures: Ed25519 over manifests, PAdES (B-B, or B-T with a timestamp) over PDFs.

* Manifests are signed with Ed25519 (RFC 8032) over the exact bytes of ``manifest.json``,
  which are RFC 8785 canonical JSON, so anyone can re-check them with OpenSSL::

      base64 -d manifest.json.sig > sig.bin
      openssl pkeyutl -verify -pubin -inkey manifest_ed25519.pub.pem -rawin \\
          -in manifest.json -sigfile sig.bin

* PDFs get an embedded PAdES baseline signature (ETSI EN 319 142-1) made by pyHanko, with
  sub-filter ``ETSI.CAdES.detached``. With a ``tsa_url`` an RFC 3161 timestamp from that
  authority is added (PAdES B-T), which proves the signature existed at that time even if
  the signer's clock was wrong.
"""

from __future__ import annotations

import base64
import binascii
import io

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from musicbrain_cli.errors import SigningError, VerificationError
from musicbrain_cli.report.keys import KeyPair

SIGNATURE_FIELD = "MusicBrainSignature"
DEFAULT_REASON = "MusicBrain forensic evidence report: integrity of the analysis results"


def sign_detached(data: bytes, key: ed25519.Ed25519PrivateKey) -> bytes:
    """The content of a detached signature file: base64 of the 64-byte signature, newline."""
    return base64.b64encode(key.sign(data)) + b"\n"


def verify_detached(data: bytes, signature_file: bytes,
                    public_key: ed25519.Ed25519PublicKey) -> None:
    """Raise :class:`VerificationError` unless ``signature_file`` signs ``data``."""
    try:
        signature = base64.b64decode(signature_file.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise VerificationError(f"signature file is not base64: {exc}") from exc
    if len(signature) != 64:
        raise VerificationError(f"an Ed25519 signature has 64 bytes, got {len(signature)}")
    try:
        public_key.verify(signature, data)
    except InvalidSignature as exc:
        raise VerificationError("Ed25519 signature does not match the signed bytes") from exc


def _asn1(keys: KeyPair):
    from asn1crypto import keys as akeys
    from asn1crypto import x509 as ax509

    der = serialization.Encoding.DER
    cert = ax509.Certificate.load(keys.pdf_cert.public_bytes(der))
    chain = [ax509.Certificate.load(c.public_bytes(der)) for c in keys.pdf_chain]
    key = akeys.PrivateKeyInfo.load(keys.pdf_key.private_bytes(
        der, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return cert, chain, key


def sign_pdf(pdf: bytes, keys: KeyPair, *, tsa_url: str | None = None,
             reason: str = DEFAULT_REASON, location: str | None = None,
             field_name: str = SIGNATURE_FIELD) -> bytes:
    """Return ``pdf`` with an embedded PAdES signature by ``keys.pdf_cert``.

    The signature is added as an incremental update (the original bytes are kept as they
    are), covers the entire file and uses SHA-256. ``tsa_url`` adds an RFC 3161 timestamp
    (PAdES B-T); it needs network access to that authority.
    """
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.pdf_utils.misc import PdfError
    from pyhanko.sign import signers
    from pyhanko.sign.fields import SigSeedSubFilter
    from pyhanko.sign.timestamps import HTTPTimeStamper
    from pyhanko_certvalidator.registry import SimpleCertificateStore

    cert, chain, key = _asn1(keys)
    signer = _loaded_key_signer(keys.pdf_key)(
        signing_cert=cert, signing_key=key,
        cert_registry=SimpleCertificateStore.from_certs([cert, *chain]))
    meta = signers.PdfSignatureMetadata(
        field_name=field_name, md_algorithm="sha256", subfilter=SigSeedSubFilter.PADES,
        reason=reason, location=location,
        # A user's CA certificate may carry digitalSignature only; ours carries both.
        signer_key_usage={"non_repudiation"} if _has_non_repudiation(keys)
        else {"digital_signature"})
    timestamper = HTTPTimeStamper(tsa_url) if tsa_url else None
    try:
        writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=True)
        out = signers.sign_pdf(writer, meta, signer=signer, timestamper=timestamper)
    # pyHanko's own SigningError derives from ValueError, its TimestampRequestError from
    # OSError; PdfError covers unreadable input.
    except (PdfError, ValueError, OSError) as exc:
        raise SigningError(f"could not sign PDF with certificate "
                           f"{keys.pdf_cert.subject.rfc4514_string()!r} "
                           f"(tsa_url={tsa_url!r}): {type(exc).__name__}: {exc}") from exc
    return out.getvalue()


def _loaded_key_signer(loaded_key):
    """A pyHanko ``SimpleSigner`` class that signs RSA with the already loaded ``loaded_key``.

    ``SimpleSigner.sign_raw`` re-parses the DER private key for every signature, and
    parsing an RSA key re-validates it (about 0.1 s for RSA-3072, twice per PDF with the
    size estimate): most of the signing time of a report. The signature is the same, since
    PKCS#1 v1.5 is deterministic and the key is the same; other key types and mechanisms
    go through pyHanko's own code.
    """
    from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
    from pyhanko.sign import signers
    from pyhanko_certvalidator.util import get_pyca_cryptography_hash, process_pss_params

    class LoadedKeySigner(signers.SimpleSigner):
        def sign_raw(self, data: bytes, digest_algorithm: str) -> bytes:
            if not isinstance(loaded_key, RSAPrivateKey):
                return super().sign_raw(data, digest_algorithm)
            mechanism = self.get_signature_mechanism_for_digest(digest_algorithm)
            try:
                algo = mechanism.signature_algo
            except ValueError:
                algo = mechanism["algorithm"].native
            if algo == "rsassa_pkcs1v15":
                return loaded_key.sign(data, PKCS1v15(), get_pyca_cryptography_hash(digest_algorithm))
            if algo == "rsassa_pss":
                padding, hash_algo = process_pss_params(mechanism["parameters"])
                return loaded_key.sign(data, padding, hash_algo)
            return super().sign_raw(data, digest_algorithm)

    return LoadedKeySigner


def _has_non_repudiation(keys: KeyPair) -> bool:
    from cryptography import x509

    try:
        usage = keys.pdf_cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return False
    return bool(usage.content_commitment)
