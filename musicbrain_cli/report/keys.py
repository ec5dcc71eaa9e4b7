"""Signing keys: an Ed25519 key for manifests and an X.509 certificate + key for PDF signatures.

A key folder (default ``$XDG_CONFIG_HOME/musicbrain/keys``, i.e. ``~/.config/musicbrain/keys``)
holds, all with mode ``0600`` in a ``0700`` folder:

=============================  =====================================================
``manifest_ed25519.key.pem``   Ed25519 private key (PKCS#8 PEM) that signs manifests
``manifest_ed25519.pub.pem``   its public key (SubjectPublicKeyInfo PEM)
``pdf_signer.key.pem``         private key of the PDF signing certificate (RSA or EC)
``pdf_signer.cert.pem``        the PDF signing certificate (self-signed by default)
``pdf_signer.chain.pem``       optional: intermediate certificates of a user's certificate
=============================  =====================================================

The private keys never leave this folder: reports carry only the public key and the
fingerprints. Existing keys are never overwritten unless ``force=True``.

Trust is a separate file, the trust store (default ``$XDG_CONFIG_HOME/musicbrain/trusted.json``,
or ``$MUSICBRAIN_TRUST_STORE``): the SHA-256 fingerprints of the manifest keys and certificates
whose signatures a verifier accepts as VALID. A signature by any other key is intact but
UNTRUSTED: anyone can make a key and a certificate with any name, so only a fingerprint
checked against the one the examiner published identifies the examiner (the model of SSH's
``known_hosts`` and of GnuPG's ``--trusted-key``).

The default certificate is self-signed (RSA-3072, SHA-256), because a court expert's own
key is what a report can honestly claim; a certificate from a CA (given as PKCS#12 or PEM)
can be used instead. RSA rather than Ed25519 for PDFs because PDF readers and poppler's
``pdfsig`` (NSS) verify RSA PAdES signatures everywhere, Ed25519 ones rarely.
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import json
import os
import re
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from musicbrain_cli.errors import MusicBrainWarning, ReportError, SigningError
from musicbrain_cli.report._io import atomic_write_bytes

MANIFEST_KEY = "manifest_ed25519.key.pem"
MANIFEST_PUB = "manifest_ed25519.pub.pem"
PDF_KEY = "pdf_signer.key.pem"
PDF_CERT = "pdf_signer.cert.pem"
PDF_CHAIN = "pdf_signer.chain.pem"

DEFAULT_COMMON_NAME = "MusicBrain examiner"
TRUST_STORE_ENV = "MUSICBRAIN_TRUST_STORE"
TRUST_SCHEMA = "musicbrain.trust/1"
MAX_TRUST_STORE_BYTES = 1 << 20  # ~5,000 pins; a bigger file is not a trust store
_FINGERPRINT = re.compile(r"^[0-9a-f]{64}$")
DEFAULT_VALID_DAYS = 3650
RSA_BITS = 3072  # NIST SP 800-57 Part 1: 3072-bit RSA ~ 128-bit security, valid beyond 2030
FILE_MODE, DIR_MODE = 0o600, 0o700


def default_keys_dir() -> Path:
    """``$XDG_CONFIG_HOME/musicbrain/keys`` (``~/.config/musicbrain/keys`` when unset)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "musicbrain" / "keys"


def default_trust_store() -> Path:
    """``$MUSICBRAIN_TRUST_STORE``, else ``$XDG_CONFIG_HOME/musicbrain/trusted.json``."""
    if os.environ.get(TRUST_STORE_ENV):
        return Path(os.environ[TRUST_STORE_ENV])
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "musicbrain" / "trusted.json"


def ed25519_fingerprint(public_key: ed25519.Ed25519PublicKey) -> str:
    """Hex SHA-256 of the raw 32-byte Ed25519 public key (RFC 8032 encoding)."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def ed25519_public_b64(public_key: ed25519.Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def certificate_fingerprint(cert: x509.Certificate) -> str:
    """Hex SHA-256 of the certificate's DER encoding (what browsers and pdfsig show)."""
    return cert.fingerprint(hashes.SHA256()).hex()


@dataclass(frozen=True)
class TrustedSigner:
    """The public half of a key folder: what a verifier pins a report against."""

    manifest_public_key: ed25519.Ed25519PublicKey | None
    certificate: x509.Certificate | None

    @property
    def manifest_key_fingerprint(self) -> str | None:
        return None if self.manifest_public_key is None else ed25519_fingerprint(
            self.manifest_public_key)

    @property
    def certificate_fingerprint(self) -> str | None:
        return None if self.certificate is None else certificate_fingerprint(self.certificate)

    def trusts(self, fingerprint: object) -> bool:
        return isinstance(fingerprint, str) and fingerprint in (
            self.manifest_key_fingerprint, self.certificate_fingerprint) and bool(fingerprint)

    def describe(self) -> str:
        return "the key given with --keys"


@dataclass(frozen=True)
class TrustStore:
    """Pinned fingerprints (see the module doc). ``entries``: dicts with ``sha256``,
    ``kind`` (``manifest-key``, ``certificate`` or ``fingerprint``), ``subject``, ``added``."""

    entries: tuple[dict, ...] = ()
    path: Path | None = None

    @property
    def fingerprints(self) -> frozenset[str]:
        return frozenset(e["sha256"] for e in self.entries)

    def trusts(self, fingerprint: object) -> bool:
        return isinstance(fingerprint, str) and fingerprint in self.fingerprints

    def describe(self) -> str:
        return f"the trust store {str(self.path)!r}" if self.path else "the trust store"


@dataclass(frozen=True)
class KeyPair:
    """Loaded signing keys. Never serialised into outputs; only fingerprints are."""

    manifest_key: ed25519.Ed25519PrivateKey
    pdf_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    pdf_cert: x509.Certificate
    pdf_chain: tuple[x509.Certificate, ...] = ()
    directory: Path | None = None

    @property
    def manifest_public_key(self) -> ed25519.Ed25519PublicKey:
        return self.manifest_key.public_key()

    @property
    def manifest_key_fingerprint(self) -> str:
        return ed25519_fingerprint(self.manifest_public_key)

    @property
    def certificate_fingerprint(self) -> str:
        return certificate_fingerprint(self.pdf_cert)

    @property
    def self_signed(self) -> bool:
        return self.pdf_cert.issuer == self.pdf_cert.subject

    def public(self) -> TrustedSigner:
        return TrustedSigner(self.manifest_public_key, self.pdf_cert)

    def record(self) -> dict:
        """What a report folder's manifest records of its signer (``manifest.json``'s
        ``signer``), and all that the report itself states about it, so that ``verify``
        can render the report's signature section again from the signed manifest alone."""
        return {"algorithm": "Ed25519",
                "public_key": ed25519_public_b64(self.manifest_public_key),
                "public_key_sha256": self.manifest_key_fingerprint,
                "certificate_sha256": self.certificate_fingerprint,
                "certificate_subject": self.pdf_cert.subject.rfc4514_string(),
                "certificate_self_signed": self.self_signed}


# --- creation -----------------------------------------------------------------------------


def init_keys(directory: Path | None = None, *, force: bool = False,
              common_name: str | None = None, organization: str | None = None,
              valid_days: int = DEFAULT_VALID_DAYS,
              pkcs12_file: Path | None = None, pkcs12_password: bytes | None = None,
              cert_file: Path | None = None, key_file: Path | None = None,
              key_password: bytes | None = None, passphrase: bytes | None = None) -> KeyPair:
    """Create a key folder and return the loaded keys.

    The manifest key is always a fresh Ed25519 key. The PDF certificate is, in order of
    precedence: the key and certificate(s) of ``pkcs12_file``; ``cert_file`` (PEM, leaf
    first, intermediates after) with ``key_file`` (PEM); else a new self-signed RSA-3072
    certificate for ``common_name`` (default: "MusicBrain examiner" and the first 16 hex digits
    of the key's SHA-256, so no two default certificates share a name) and ``organization``,
    valid ``valid_days`` days. ``passphrase`` encrypts the
    stored private keys (PKCS#8, best available encryption); ``None`` stores them in clear,
    protected by file mode ``0600`` like an SSH key.

    Raises :class:`SigningError` if a key file exists and ``force`` is false, or if a given
    certificate does not match its key.
    """
    directory = Path(directory) if directory is not None else default_keys_dir()
    if (cert_file is None) != (key_file is None):
        raise SigningError("a PEM certificate needs both cert_file and key_file "
                           f"(got cert_file={cert_file!r}, key_file={key_file!r})")
    targets = [directory / n for n in (MANIFEST_KEY, MANIFEST_PUB, PDF_KEY, PDF_CERT, PDF_CHAIN)]
    existing = [str(p) for p in targets if p.exists() or p.is_symlink()]
    if existing and not force:
        raise SigningError(f"refusing to overwrite existing key files {existing} "
                           "(use --force to replace them)")

    if pkcs12_file is not None:
        pdf_key, pdf_cert, chain = _load_pkcs12(Path(pkcs12_file), pkcs12_password)
    elif cert_file is not None:
        pdf_key, pdf_cert, chain = _load_pem_pair(Path(cert_file), Path(key_file), key_password)
    else:
        pdf_key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
        pdf_cert, chain = _self_signed(pdf_key, common_name, organization, valid_days), ()
    keys = KeyPair(ed25519.Ed25519PrivateKey.generate(), pdf_key, pdf_cert, chain, directory)
    if passphrase is not None and not passphrase:
        # asked for encryption (an empty variable): storing the keys in clear would be the
        # opposite, silently (session 27 audit)
        raise SigningError("the passphrase is empty: the keys would be stored unencrypted; "
                           "set a passphrase, or give none to store them in clear")
    _check_validity(pdf_cert, "the PDF signing certificate")

    _make_private_dir(directory)
    enc = (serialization.BestAvailableEncryption(passphrase) if passphrase
           else serialization.NoEncryption())
    pem = serialization.Encoding.PEM
    files = {
        MANIFEST_KEY: keys.manifest_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, enc),
        MANIFEST_PUB: keys.manifest_public_key.public_bytes(
            pem, serialization.PublicFormat.SubjectPublicKeyInfo),
        PDF_KEY: pdf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, enc),
        PDF_CERT: pdf_cert.public_bytes(pem),
    }
    if chain:
        files[PDF_CHAIN] = b"".join(c.public_bytes(pem) for c in chain)
    elif (directory / PDF_CHAIN).exists():  # forced re-init: a stale chain would mislead
        (directory / PDF_CHAIN).unlink()
    try:
        for name, data in files.items():
            atomic_write_bytes(directory / name, data, mode=FILE_MODE)
    except ReportError as exc:
        raise SigningError(str(exc)) from exc
    return keys


def _make_private_dir(directory: Path) -> None:
    if directory.exists():
        if not directory.is_dir():
            raise SigningError(f"key folder {str(directory)!r} exists and is not a folder")
        if directory.stat().st_mode & 0o077:
            warnings.warn(f"key folder {str(directory)!r} is readable by other users "
                          f"(mode {stat.filemode(directory.stat().st_mode)}); "
                          "consider chmod 700", MusicBrainWarning, stacklevel=3)
        return
    try:
        _mkdir_private(directory)
    except OSError as exc:
        raise SigningError(f"could not create key folder {str(directory)!r}: {exc}") from exc


def _mkdir_private(directory: Path) -> None:
    """Create ``directory`` and any missing parent with mode 0700 whatever the umask (with
    umask 002, ``mkdir(parents=True)`` leaves the parents group-writable, and the trust store
    beside the keys would then be refused: review, session 27)."""
    missing = []
    d = Path(directory)
    while not d.exists():
        missing.append(d)
        d = d.parent
    for folder in reversed(missing):
        folder.mkdir(mode=DIR_MODE)
        os.chmod(folder, DIR_MODE)  # mkdir's mode is filtered by the umask


def _self_signed(key, common_name: str | None, organization: str | None,
                 valid_days: int) -> x509.Certificate:
    if valid_days < 1:
        raise SigningError(f"valid_days must be at least 1, got {valid_days!r}")
    if common_name is None:
        spki = key.public_key().public_bytes(serialization.Encoding.DER,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)
        common_name = f"{DEFAULT_COMMON_NAME} {hashlib.sha256(spki).hexdigest()[:16]}"
    attributes = []
    for oid, value, what in ((NameOID.COMMON_NAME, common_name, "name"),
                             (NameOID.ORGANIZATION_NAME, organization, "organisation")):
        if value is None:
            continue
        # RFC 5280 upper bound ub-common-name / ub-organization-name: 64 characters
        if not value.strip() or len(value) > 64 or not value.isprintable():
            raise SigningError(f"certificate {what} must be 1-64 printable characters, "
                               f"got {value!r}")
        attributes.append(x509.NameAttribute(oid, value))
    name = x509.Name(attributes)
    now = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0)
    return (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            # a few minutes of back-dating absorbs clock skew between signer and verifier
            .not_valid_before(now - _dt.timedelta(minutes=5))
            .not_valid_after(now + _dt.timedelta(days=valid_days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            # nonRepudiation (contentCommitment) is what PAdES signers are expected to carry
            # (ETSI EN 319 412-2, 4.3.2); pyHanko requires it by default.
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=True,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))


def _check_validity(cert: x509.Certificate, what: str) -> None:
    """Refuse keys whose certificate is not valid now: every report signed with them would
    carry a signature made outside its certificate's validity."""
    now = _dt.datetime.now(_dt.timezone.utc)
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    if not start <= now <= end:
        raise SigningError(f"{what} is not valid now (valid from {start.isoformat()} to "
                           f"{end.isoformat()}): reports signed with it would not verify as "
                           "signed within its validity")


def _check_pdf_key(key, cert: x509.Certificate, source: str) -> None:
    if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
        raise SigningError(f"{source}: PDF signing needs an RSA or EC key, "
                           f"got {type(key).__name__}")
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    if key.public_key().public_bytes(der, spki) != cert.public_key().public_bytes(der, spki):
        raise SigningError(f"{source}: the private key does not match the certificate "
                           f"{cert.subject.rfc4514_string()!r}")


def _load_pkcs12(path: Path, password: bytes | None):
    try:
        key, cert, extra = pkcs12.load_key_and_certificates(path.read_bytes(), password)
    except (OSError, ValueError) as exc:
        raise SigningError(f"could not read PKCS#12 file {str(path)!r}: {exc}") from exc
    if key is None or cert is None:
        raise SigningError(f"PKCS#12 file {str(path)!r} holds no key and certificate")
    _check_pdf_key(key, cert, str(path))
    return key, cert, tuple(extra or ())


def _load_pem_pair(cert_path: Path, key_path: Path, password: bytes | None):
    try:
        certs = x509.load_pem_x509_certificates(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password)
    except (OSError, ValueError, TypeError) as exc:
        raise SigningError(f"could not read certificate {str(cert_path)!r} or key "
                           f"{str(key_path)!r}: {exc}") from exc
    # The leaf is the certificate whose public key matches the private key, wherever it is.
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    want = key.public_key().public_bytes(*spki)
    leaf = next((c for c in certs if c.public_key().public_bytes(*spki) == want), certs[0])
    _check_pdf_key(key, leaf, str(cert_path))
    return key, leaf, tuple(c for c in certs if c is not leaf)


# --- loading ------------------------------------------------------------------------------


def _read(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SigningError(f"could not read key file {str(path)!r}: {exc} "
                           "(create keys with 'musicbrain keys init')") from exc
    return data


def load_keys(directory: Path | None = None, *, passphrase: bytes | None = None) -> KeyPair:
    """Load the private keys of a key folder made by :func:`init_keys`."""
    directory = Path(directory) if directory is not None else default_keys_dir()
    for name in (MANIFEST_KEY, PDF_KEY):
        path = directory / name
        if path.exists() and path.stat().st_mode & 0o077:
            warnings.warn(f"private key {str(path)!r} is readable by other users "
                          f"(mode {stat.filemode(path.stat().st_mode)}); run chmod 600",
                          MusicBrainWarning, stacklevel=2)
    try:
        manifest_key = serialization.load_pem_private_key(
            _read(directory / MANIFEST_KEY), passphrase)
        pdf_key = serialization.load_pem_private_key(_read(directory / PDF_KEY), passphrase)
        pdf_cert = x509.load_pem_x509_certificate(_read(directory / PDF_CERT))
        chain_path = directory / PDF_CHAIN
        chain = (tuple(x509.load_pem_x509_certificates(chain_path.read_bytes()))
                 if chain_path.exists() else ())
    except (ValueError, TypeError) as exc:
        raise SigningError(f"could not load keys from {str(directory)!r}: {exc} "
                           "(wrong or missing passphrase?)") from exc
    if not isinstance(manifest_key, ed25519.Ed25519PrivateKey):
        raise SigningError(f"{str(directory / MANIFEST_KEY)!r} is not an Ed25519 key "
                           f"({type(manifest_key).__name__})")
    _check_pdf_key(pdf_key, pdf_cert, str(directory / PDF_KEY))
    # signing with a certificate outside its validity makes reports that never verify
    _check_validity(pdf_cert, f"the PDF signing certificate of {str(directory)!r} (renew it: "
                              "keys init --force with a new certificate, and publish the new "
                              "fingerprints)")
    return KeyPair(manifest_key, pdf_key, pdf_cert, chain, directory)


def load_trusted(directory: Path) -> TrustedSigner:
    """Load only the public half of a key folder (what a verifier needs: no passphrase)."""
    directory = Path(directory)
    pub = cert = None
    try:
        if (directory / MANIFEST_PUB).exists():
            pub = serialization.load_pem_public_key((directory / MANIFEST_PUB).read_bytes())
            if not isinstance(pub, ed25519.Ed25519PublicKey):
                raise SigningError(f"{str(directory / MANIFEST_PUB)!r} is not an Ed25519 "
                                   f"public key ({type(pub).__name__})")
        if (directory / PDF_CERT).exists():
            cert = x509.load_pem_x509_certificate((directory / PDF_CERT).read_bytes())
    except (OSError, ValueError) as exc:
        raise SigningError(f"could not load public keys from {str(directory)!r}: {exc}") from exc
    if pub is None and cert is None:
        raise SigningError(f"no public key or certificate found in {str(directory)!r} "
                           f"(expected {MANIFEST_PUB} and/or {PDF_CERT})")
    return TrustedSigner(pub, cert)


# --- trust store --------------------------------------------------------------------------


def load_trust_store(path: Path | None = None) -> TrustStore:
    """The pinned fingerprints of ``path`` (default :func:`default_trust_store`); an absent
    file is an empty store. Raises :class:`SigningError` for a file that is not one."""
    path = Path(path) if path is not None else default_trust_store()
    try:
        if not path.exists():
            return TrustStore((), path)
        if not path.is_file():
            raise SigningError(f"trust store {str(path)!r} is not a regular file")
        if path.stat().st_size > MAX_TRUST_STORE_BYTES:
            raise SigningError(f"trust store {str(path)!r} is larger than "
                               f"{MAX_TRUST_STORE_BYTES // 2**20} MiB")
        _check_store_owner(path)
        data = json.loads(path.read_bytes())
    except OSError as exc:
        raise SigningError(f"cannot read trust store {str(path)!r}: {exc.strerror or exc}") from exc
    except (ValueError, RecursionError) as exc:
        raise SigningError(f"trust store {str(path)!r} is not valid JSON: {exc}") from exc
    entries = data.get("trusted") if isinstance(data, dict) else None
    if (data.get("schema") if isinstance(data, dict) else None) != TRUST_SCHEMA or \
            not isinstance(entries, list) or not all(
                isinstance(e, dict) and isinstance(e.get("sha256"), str)
                and _FINGERPRINT.match(e["sha256"]) for e in entries):
        raise SigningError(f"trust store {str(path)!r} is not a {TRUST_SCHEMA} file "
                           "(each entry needs a 64-hex-digit sha256)")
    return TrustStore(tuple(entries), path)


def _check_store_owner(path: Path, *, folder_only: bool = False) -> None:
    """Refuse a trust store that someone else could have written, as SSH refuses such an
    authorized_keys: the file or its folder writable by group or others (a folder with the
    sticky bit, such as /tmp, protects its files), or owned by another user (root aside).
    A pin is a trust decision: whoever can add one can make a forged report verify as
    trusted (session 27 audit)."""
    targets = [(path.resolve().parent, True)] if folder_only else \
        [(path, False), (path.resolve().parent, True)]
    for target, is_dir in targets:
        st = target.stat()
        writable = st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
        if is_dir and st.st_mode & stat.S_ISVTX:
            writable = 0
        owner_ok = st.st_uid in (os.getuid(), 0) if hasattr(os, "getuid") else True
        if writable or not owner_ok:
            what = "folder" if is_dir else "file"
            raise SigningError(
                f"trust store {str(path)!r} is not trusted: its {what} {str(target)!r} "
                + ("can be written by other users" if writable else "belongs to another user")
                + "; anyone who can add a pin can make a forged report verify as trusted "
                "(chmod go-w, or keep the store in a folder only you can write)")


def pins_of(item: str) -> list[dict]:
    """What ``item`` names: a fingerprint, a key folder, a certificate or an Ed25519 public
    key file (PEM or DER)."""
    text = item.strip().lower().replace(":", "")
    if _FINGERPRINT.match(text):
        return [{"sha256": text, "kind": "fingerprint", "subject": None}]
    path = Path(item)
    if path.is_dir():
        signer = load_trusted(path)
        pins = []
        if signer.manifest_public_key is not None:
            pins.append({"sha256": signer.manifest_key_fingerprint, "kind": "manifest-key",
                         "subject": None})
        if signer.certificate is not None:
            pins.append({"sha256": signer.certificate_fingerprint, "kind": "certificate",
                         "subject": signer.certificate.subject.rfc4514_string()})
        # one signer's pins: revoked together (untrust)
        return [{**p, "signer": pins[0]["sha256"]} for p in pins]
    if not path.is_file():
        raise SigningError(f"{item!r} is neither a 64-hex-digit SHA-256 fingerprint nor a "
                           "key folder, certificate or public key file")
    data = _read(path)
    for load in (x509.load_pem_x509_certificate, x509.load_der_x509_certificate):
        try:
            cert = load(data)
        except ValueError:
            continue
        return [{"sha256": certificate_fingerprint(cert), "kind": "certificate",
                 "subject": cert.subject.rfc4514_string()}]
    for load in (serialization.load_pem_public_key, serialization.load_der_public_key):
        try:
            key = load(data)
        except (ValueError, TypeError):
            continue
        if isinstance(key, ed25519.Ed25519PublicKey):
            return [{"sha256": ed25519_fingerprint(key), "kind": "manifest-key",
                     "subject": None}]
    raise SigningError(f"{str(path)!r} holds no X.509 certificate or Ed25519 public key")


def trust(item: str | os.PathLike, *, store: Path | None = None,
          note: str | None = None) -> list[dict]:
    """Pin the fingerprint(s) ``item`` names (see :func:`pins_of`) in the trust store and
    return the new entries (already pinned ones are not repeated)."""
    current = load_trust_store(store)
    when = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()
    added = [{**pin, "added": when, "note": note} for pin in pins_of(str(item))
             if pin["sha256"] not in current.fingerprints]
    if added:
        _write_store(current, [*current.entries, *added])
    return added


def untrust(item: str | os.PathLike, *, store: Path | None = None) -> list[dict]:
    """Remove the pins ``item`` names (see :func:`pins_of`) from the trust store, and the
    other pin of the same signer where the store knows it (pins made by ``keys init``, a
    scan's first use, or ``keys trust KEYDIR`` record their ``signer``), so a revoked
    signer's PDFs stop verifying as trusted too. Returns the removed entries. Reports its
    keys signed then verify UNTRUSTED: revocation has no date here."""
    current = load_trust_store(store)
    named = {p["sha256"] for p in pins_of(str(item))}
    signers = {e["signer"] for e in current.entries
               if e["sha256"] in named and isinstance(e.get("signer"), str)}
    removed = [e for e in current.entries
               if e["sha256"] in named or e.get("signer") in signers]
    if removed:
        _write_store(current, [e for e in current.entries if e not in removed])
    return removed


def trust_keys(keys: KeyPair | TrustedSigner, *, store: Path | None = None,
               note: str | None = None) -> list[dict]:
    """Pin both fingerprints of a key pair (what ``keys init`` does for the examiner's own
    new keys, so that they verify their own reports)."""
    current = load_trust_store(store)
    when = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()
    cert = keys.pdf_cert if isinstance(keys, KeyPair) else keys.certificate
    signer = keys.manifest_key_fingerprint or keys.certificate_fingerprint
    pins = [{"sha256": keys.manifest_key_fingerprint, "kind": "manifest-key", "subject": None,
             "signer": signer},
            {"sha256": keys.certificate_fingerprint, "kind": "certificate",
             "subject": cert.subject.rfc4514_string() if cert is not None else None,
             "signer": signer}]
    added = [{**p, "added": when, "note": note} for p in pins
             if p["sha256"] and p["sha256"] not in current.fingerprints]
    if added:
        _write_store(current, [*current.entries, *added])
    return added


def _write_store(current: TrustStore, entries: list[dict]) -> None:
    path = current.path or default_trust_store()
    data = json.dumps({"schema": TRUST_SCHEMA, "trusted": entries}, indent=2,
                      sort_keys=True) + "\n"
    if len(data.encode("utf-8")) > MAX_TRUST_STORE_BYTES:
        raise SigningError(f"cannot pin more in {str(path)!r}: the trust store would exceed "
                           f"{MAX_TRUST_STORE_BYTES // 2**20} MiB, which no MusicBrain reads")
    try:
        _mkdir_private(path.parent)
        if path.exists():
            _check_store_owner(path)    # a pin is never written where it would not be read
        else:
            _check_store_owner(path, folder_only=True)
        atomic_write_bytes(path, data.encode("utf-8"), mode=FILE_MODE)
    except (OSError, ReportError) as exc:
        raise SigningError(f"cannot write trust store {str(path)!r}: {exc}") from exc
