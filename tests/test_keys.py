"""Key folders: permissions, refusal to overwrite, loading, user certificates."""

import stat

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from musicbrain_cli.cli import main
from musicbrain_cli.errors import SigningError
from musicbrain_cli.report import keys as K


def _mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def test_init_writes_private_files_0600_in_a_0700_folder(tmp_path):
    folder = tmp_path / "cfg" / "keys"
    keys = K.init_keys(folder)
    names = {p.name for p in folder.iterdir()}
    assert names == {K.MANIFEST_KEY, K.MANIFEST_PUB, K.PDF_KEY, K.PDF_CERT}
    assert _mode(folder) == 0o700
    assert all(_mode(p) == 0o600 for p in folder.iterdir())
    assert keys.self_signed and keys.pdf_cert.subject == keys.pdf_cert.issuer
    usage = keys.pdf_cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.content_commitment and usage.digital_signature


def test_init_refuses_to_overwrite_and_force_replaces(tmp_path):
    first = K.init_keys(tmp_path / "k")
    before = (tmp_path / "k" / K.MANIFEST_KEY).read_bytes()
    with pytest.raises(SigningError, match="refusing to overwrite"):
        K.init_keys(tmp_path / "k")
    assert (tmp_path / "k" / K.MANIFEST_KEY).read_bytes() == before
    second = K.init_keys(tmp_path / "k", force=True)
    assert second.manifest_key_fingerprint != first.manifest_key_fingerprint
    assert K.load_keys(tmp_path / "k").manifest_key_fingerprint == second.manifest_key_fingerprint


def test_cli_keys_init_refuses_overwrite(tmp_path):
    runner = CliRunner()
    folder = str(tmp_path / "k")
    ok = runner.invoke(main, ["keys", "init", folder])
    assert ok.exit_code == 0, ok.output
    fingerprint = K.load_keys(tmp_path / "k").manifest_key_fingerprint
    assert fingerprint in ok.output
    again = runner.invoke(main, ["keys", "init", folder])
    assert again.exit_code == 1 and "refusing to overwrite" in again.output
    assert K.load_keys(tmp_path / "k").manifest_key_fingerprint == fingerprint
    usage = runner.invoke(main, ["keys", "init", folder, "--cert", __file__])
    assert usage.exit_code == 2


def test_load_round_trip_and_passphrase(tmp_path):
    made = K.init_keys(tmp_path / "k", passphrase=b"s3cret")
    assert b"ENCRYPTED" in (tmp_path / "k" / K.MANIFEST_KEY).read_bytes()
    with pytest.raises(SigningError, match="passphrase"):
        K.load_keys(tmp_path / "k")
    loaded = K.load_keys(tmp_path / "k", passphrase=b"s3cret")
    assert loaded.manifest_key_fingerprint == made.manifest_key_fingerprint
    assert loaded.certificate_fingerprint == made.certificate_fingerprint
    trusted = K.load_trusted(tmp_path / "k")
    assert trusted.manifest_key_fingerprint == made.manifest_key_fingerprint
    assert trusted.certificate_fingerprint == made.certificate_fingerprint


def test_load_missing_folder_names_the_command(tmp_path):
    with pytest.raises(SigningError, match="keys init"):
        K.load_keys(tmp_path / "nothing")


def _ca_issued(tmp_path):
    """A two-level chain: CA -> EC leaf, as a user's PEM and PKCS#12 files."""
    import datetime as dt

    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(1)
          .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=9))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .sign(ca_key, hashes.SHA256()))
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Expert")]))
            .issuer_name(ca_name).public_key(leaf_key.public_key()).serial_number(2)
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=9))
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    (tmp_path / "chain.pem").write_bytes(leaf.public_bytes(pem) + ca.public_bytes(pem))
    (tmp_path / "leaf.key").write_bytes(leaf_key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    (tmp_path / "id.p12").write_bytes(pkcs12.serialize_key_and_certificates(
        b"id", leaf_key, leaf, [ca], serialization.BestAvailableEncryption(b"pw")))
    return leaf, ca


def test_user_certificate_from_pem_and_pkcs12(tmp_path):
    leaf, ca = _ca_issued(tmp_path)
    from_pem = K.init_keys(tmp_path / "a", cert_file=tmp_path / "chain.pem",
                           key_file=tmp_path / "leaf.key")
    assert from_pem.pdf_cert == leaf and from_pem.pdf_chain == (ca,)
    assert not from_pem.self_signed
    assert K.load_keys(tmp_path / "a").pdf_chain == (ca,)
    from_p12 = K.init_keys(tmp_path / "b", pkcs12_file=tmp_path / "id.p12",
                           pkcs12_password=b"pw")
    assert from_p12.pdf_cert == leaf
    with pytest.raises(SigningError, match="PKCS#12"):
        K.init_keys(tmp_path / "c", pkcs12_file=tmp_path / "id.p12", pkcs12_password=b"wrong")


def test_key_that_does_not_match_certificate_is_refused(tmp_path):
    _ca_issued(tmp_path)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (tmp_path / "other.key").write_bytes(other.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    # Only the CA certificate + a foreign key: no certificate matches the key.
    (tmp_path / "ca_only.pem").write_bytes((tmp_path / "chain.pem").read_bytes().split(
        b"-----END CERTIFICATE-----\n", 1)[1])
    with pytest.raises(SigningError, match="does not match"):
        K.init_keys(tmp_path / "d", cert_file=tmp_path / "ca_only.pem",
                    key_file=tmp_path / "other.key")
    assert not (tmp_path / "d").exists()


def test_the_examiner_names_the_certificate_and_default_names_differ(tmp_path):
    """Observation 2: every default certificate was named 'MusicBrain examiner'."""
    res = CliRunner().invoke(main, ["keys", "init", str(tmp_path / "k"), "--name", "Dr A. Expert",
                                    "--org", "Forensic Lab", "--trust-store",
                                    str(tmp_path / "t.json")])
    assert res.exit_code == 0, res.output
    subject = K.load_keys(tmp_path / "k").pdf_cert.subject.rfc4514_string()
    assert subject == "O=Forensic Lab,CN=Dr A. Expert"
    store = K.load_trust_store(tmp_path / "t.json")
    made = K.load_keys(tmp_path / "k")
    assert store.fingerprints == {made.manifest_key_fingerprint, made.certificate_fingerprint}
    a, b = K.init_keys(tmp_path / "a"), K.init_keys(tmp_path / "b")
    assert a.pdf_cert.subject != b.pdf_cert.subject
    with pytest.raises(SigningError, match="printable"):
        K.init_keys(tmp_path / "c", common_name="evil\x1b[32m")
