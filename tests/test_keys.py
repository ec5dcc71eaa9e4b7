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
    assert again.exit_code == 2 and "refusing to overwrite" in again.output    # use --force
    assert K.load_keys(tmp_path / "k").manifest_key_fingerprint == fingerprint
    usage = runner.invoke(main, ["keys", "init", folder, "--cert", __file__])
    assert usage.exit_code == 2
    junk = tmp_path / "junk.p12"
    junk.write_bytes(b"not a PKCS#12 file")
    unreadable = runner.invoke(main, ["keys", "init", str(tmp_path / "k2"), "--pkcs12", str(junk)])
    assert unreadable.exit_code == 2 and "could not read PKCS#12" in unreadable.output


def test_cli_keys_init_force_says_the_replaced_keys_stay_trusted_or_untrusts_them(tmp_path):
    """Review (session 45): ``keys init --force`` pinned the new keys and left the replaced
    ones pinned, silently: a key replaced because it was stolen went on verifying as trusted,
    and its files were gone, so ``keys untrust KEYDIR`` could no longer name it."""
    runner = CliRunner()
    folder, store = str(tmp_path / "k"), tmp_path / "trusted.json"
    assert runner.invoke(main, ["keys", "init", folder, "--trust-store", str(store)]).exit_code == 0
    first = K.load_trusted(tmp_path / "k")
    old = {first.manifest_key_fingerprint, first.certificate_fingerprint}

    kept = runner.invoke(main, ["keys", "init", folder, "--force", "--trust-store", str(store)])
    assert kept.exit_code == 0, kept.output
    assert old <= K.load_trust_store(store).fingerprints            # still pinned, and said:
    assert "still pinned" in kept.output and "keys untrust" in kept.output
    assert all(fp in kept.output for fp in old)

    second = K.load_trusted(tmp_path / "k")
    gone = runner.invoke(main, ["keys", "init", folder, "--force", "--untrust-replaced",
                                "--trust-store", str(store)])
    assert gone.exit_code == 0, gone.output
    pinned = K.load_trust_store(store).fingerprints
    assert not {second.manifest_key_fingerprint, second.certificate_fingerprint} & pinned
    third = K.load_trusted(tmp_path / "k")
    assert {third.manifest_key_fingerprint, third.certificate_fingerprint} <= pinned
    assert "were removed" in gone.output
    usage = runner.invoke(main, ["keys", "init", str(tmp_path / "k3"), "--untrust-replaced"])
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


# --- session 27 audit: key and trust management ----------------------------------------------


def _dated_pair(tmp_path, *, days_from: int, days_to: int):
    """A self-signed RSA certificate valid from ``days_from`` to ``days_to`` days from now,
    as PEM files a user would give to ``keys init --cert``."""
    import datetime as dt

    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.timezone.utc)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Dr Examiner")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(7)
            .not_valid_before(now + dt.timedelta(days=days_from))
            .not_valid_after(now + dt.timedelta(days=days_to))
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=True,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    (tmp_path / "c.pem").write_bytes(cert.public_bytes(pem))
    (tmp_path / "k.pem").write_bytes(key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return key, cert


@pytest.mark.parametrize("days", [(-30, -1), (30, 60)])
def test_a_certificate_not_valid_now_is_refused_and_a_pdf_signed_outside_it_fails(tmp_path, days):
    """An expired certificate (or one valid only from next month) was accepted by keys init,
    and its PDFs verified VALID, where pdfsig says 'Certificate has Expired'."""
    from musicbrain_cli.report.pdf import html_to_pdf
    from musicbrain_cli.report.signing import sign_pdf
    from musicbrain_cli.report.verify import verify_pdf

    key, cert = _dated_pair(tmp_path, days_from=days[0], days_to=days[1])
    with pytest.raises(SigningError, match="not valid now"):
        K.init_keys(tmp_path / "k", cert_file=tmp_path / "c.pem", key_file=tmp_path / "k.pem")
    good = K.init_keys(tmp_path / "good")
    outdated = K.KeyPair(good.manifest_key, key, cert, (), tmp_path / "good")
    pdf = tmp_path / "r.pdf"
    pdf.write_bytes(sign_pdf(html_to_pdf("<p>report</p>"), outdated))
    result = verify_pdf(pdf, trusted=outdated.public())
    assert not result.ok and any("outside its certificate's validity" in c.detail
                                 for c in result.failures), result.checks


def test_an_empty_passphrase_is_refused_rather_than_storing_keys_in_clear(tmp_path):
    with pytest.raises(SigningError, match="passphrase is empty"):
        K.init_keys(tmp_path / "k", passphrase=b"")
    assert not (tmp_path / "k").exists()
    res = CliRunner(env={"EMPTY": "", "P12": "x"}).invoke(
        main, ["keys", "init", str(tmp_path / "k2"), "--passphrase-env", "EMPTY",
               "--trust-store", str(tmp_path / "t.json")])
    assert res.exit_code == 2 and "passphrase is empty" in res.output
    res = CliRunner(env={"P12": "x"}).invoke(       # the PKCS#12 password, without a PKCS#12
        main, ["keys", "init", str(tmp_path / "k3"), "--password-env", "P12",
               "--trust-store", str(tmp_path / "t.json")])
    assert res.exit_code == 2 and "--passphrase-env" in res.output
    res = CliRunner().invoke(main, ["keys", "init", str(tmp_path / "k4"), "--days", "100000000",
                                    "--trust-store", str(tmp_path / "t.json")])
    assert res.exit_code == 2 and "Traceback" not in res.output


def test_a_trust_store_others_can_write_is_refused(tmp_path):
    """Any local user could add a pin to a group- or world-writable store and make a forged
    report verify as trusted; key files were checked, the store was not."""
    folder = tmp_path / "store"
    folder.mkdir(mode=0o700)
    store = folder / "t.json"
    K.trust_keys(K.init_keys(tmp_path / "k"), store=store)
    assert K.load_trust_store(store).fingerprints
    store.chmod(0o666)
    with pytest.raises(SigningError, match="can be written by other users"):
        K.load_trust_store(store)
    store.chmod(0o600)
    folder.chmod(0o777)
    with pytest.raises(SigningError, match="its folder"):
        K.load_trust_store(store)
    folder.chmod(0o1777)                       # sticky, as /tmp: others cannot replace it
    assert K.load_trust_store(store).fingerprints


def test_pinning_never_writes_a_store_too_large_to_read(tmp_path, monkeypatch):
    store = tmp_path / "t.json"
    K.trust_keys(K.init_keys(tmp_path / "k"), store=store)
    monkeypatch.setattr(K, "MAX_TRUST_STORE_BYTES", store.stat().st_size + 10)
    before = store.read_bytes()
    with pytest.raises(SigningError, match="would exceed"):
        K.trust("a" * 64, store=store)
    assert store.read_bytes() == before


def test_untrust_removes_a_signers_pins_together(tmp_path):
    """There was no way to revoke trust but editing the JSON, and removing one of a
    signer's two pins left its PDFs trusted through the other."""
    store = tmp_path / "t.json"
    a, b = K.init_keys(tmp_path / "a"), K.init_keys(tmp_path / "b")
    K.trust_keys(a, store=store, note="a")
    K.trust_keys(b, store=store, note="b")
    res = CliRunner().invoke(main, ["keys", "untrust", a.manifest_key_fingerprint,
                                    "--trust-store", str(store)])
    assert res.exit_code == 0 and res.output.count("no longer trusted") == 2, res.output
    left = K.load_trust_store(store).fingerprints
    assert a.certificate_fingerprint not in left and a.manifest_key_fingerprint not in left
    assert {b.manifest_key_fingerprint, b.certificate_fingerprint} <= set(left)
    res = CliRunner().invoke(main, ["keys", "untrust", str(tmp_path / "a"),
                                    "--trust-store", str(store)])
    assert "not in the trust store" in res.output


def test_keys_made_under_umask_002_leave_a_store_that_is_read_back(tmp_path):
    """Review (session 27): with umask 002 the parents keys init created were group-writable,
    so the trust store it had just written beside the keys was refused by the next command."""
    import os

    old = os.umask(0o002)
    try:
        store = tmp_path / "cfg" / "musicbrain" / "trusted.json"
        keys = K.init_keys(tmp_path / "cfg" / "musicbrain" / "keys")
        K.trust_keys(keys, store=store)
    finally:
        os.umask(old)
    assert _mode(tmp_path / "cfg") == _mode(tmp_path / "cfg" / "musicbrain") == 0o700
    assert keys.manifest_key_fingerprint in K.load_trust_store(store).fingerprints
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(SigningError, match="can be written by other users"):
        K.trust("a" * 64, store=shared / "t.json")       # never written where it is refused
    assert not (shared / "t.json").exists()


def test_keys_whose_certificate_expired_since_are_refused_for_signing(tmp_path):
    import shutil

    _dated_pair(tmp_path, days_from=-30, days_to=-1)
    good = K.init_keys(tmp_path / "k")
    shutil.copy(tmp_path / "c.pem", tmp_path / "k" / K.PDF_CERT)
    shutil.copy(tmp_path / "k.pem", tmp_path / "k" / K.PDF_KEY)
    with pytest.raises(SigningError, match="renew it"):
        K.load_keys(tmp_path / "k")
    assert good.manifest_key_fingerprint


def test_untrust_removes_only_what_it_knows_belongs_together(tmp_path):
    """Review (session 27): grouping by pin time and note revoked another signer pinned in
    the same command, and kept a signer's certificate pinned beside its removed key."""
    store = tmp_path / "t.json"
    a, b = K.init_keys(tmp_path / "a"), K.init_keys(tmp_path / "b")
    res = CliRunner().invoke(main, ["keys", "trust", a.manifest_key_fingerprint,
                                    b.manifest_key_fingerprint, "--note", "court register",
                                    "--trust-store", str(store)])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(main, ["keys", "untrust", a.manifest_key_fingerprint,
                                    "--trust-store", str(store)])
    assert res.output.count("no longer trusted") == 1 and "pinned on its own" in res.output
    assert set(K.load_trust_store(store).fingerprints) == {b.manifest_key_fingerprint}
    K.trust(str(tmp_path / "a"), store=store)                 # a key folder: both, together
    removed = K.untrust(a.certificate_fingerprint, store=store)
    assert {e["sha256"] for e in removed} == {a.manifest_key_fingerprint,
                                              a.certificate_fingerprint}
