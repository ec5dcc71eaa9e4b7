"""Verification of report folders and signed PDFs. Returns results, never exits or prints.

A report folder is valid when its manifest is canonical and signed by the Ed25519 key it
names, every file it lists is present with the listed SHA-256, no other file is present,
the audio (when given) has the listed SHA-256, and every PDF it lists carries an intact
PAdES signature covering the whole file by the certificate the manifest names.

A scan's catalog folder (``summary.json`` beside the track folders) is valid when its
signed ``catalog-manifest.json`` holds (the catalog files' hashes, and exactly the track
folders the summary names, each with its manifest's hash, signed by the tracks' signer),
every track folder is valid, each summary row says exactly what that folder's signed
``result.json`` says, and ``summary.csv`` and ``index.html`` are exactly what the summary
renders.

Who signed is a separate question from whether the signature holds. A result is VALID only
when every check passes and the signer is trusted: its fingerprint is the key folder's given
as ``trusted`` (``verify --keys``) or is pinned in a :class:`~musicbrain_cli.report.keys.TrustStore`.
An intact signature by anyone else is UNTRUSTED (both of the signer's fingerprints are
stated, to compare with those the examiner published): anyone can re-render and re-sign a
report with a key of their own, under any name.

Every file read here may have been written by an adversary: malformed JSON (wrong types,
deep nesting), unreadable files and odd paths become failed checks, never exceptions.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from musicbrain_cli.errors import ReportError, VerificationError
from musicbrain_cli.inputs import read_regular
from musicbrain_cli.report._io import sha256_file
from musicbrain_cli.report.catalog import (FIELDS, INDEX_HTML, SUMMARY_CSV, SUMMARY_JSON,
                                           SUMMARY_SCHEMA, CatalogEntry, Skipped,
                                           catalog_files, summary_row)
from musicbrain_cli.report.keys import TrustedSigner, TrustStore
from musicbrain_cli.report.manifest import (CATALOG_MANIFEST_NAME, CATALOG_SCHEMA,
                                            CATALOG_SIGNATURE_NAME, MANIFEST_NAME,
                                            MANIFEST_SCHEMA, SIGNATURE_NAME, canonical_json,
                                            list_report_files)
from musicbrain_cli.report.signing import verify_detached
from musicbrain_cli import __version__
from musicbrain_cli.report.html import render_report_html
from musicbrain_cli.report.writer import FIGURES_DIR, REPORT_STEM, RESULT_JSON

PASS, FAIL, WARN, SKIP, UNTRUSTED = "pass", "fail", "warn", "skip", "untrusted"
VALID, INVALID, NOT_TRUSTED = "VALID", "INVALID", "UNTRUSTED"
#: PDF document-information key of the analysed audio's SHA-256 (written by the report's
#: ``<meta name="musicbrain-audio-sha256">``; WeasyPrint keeps only the letters and digits)
PDF_AUDIO_KEY = "/musicbrainaudiosha256"
MAX_SUMMARY_BYTES = 64 << 20     # ~100,000 tracks; a bigger file is not a scan's summary
LISTED_NAMES = 5                 # names quoted in one check before "and N more"
#: Summary fields added after catalogs were first sealed: a row written before has none, and
#: is compared with its signed result on the others (its pages are then not re-rendered).
LATER_FIELDS = ("musicbrain_version", "band_low", "band_high")
#: What a scan keeps in its output folder besides the catalog: its lock and its input index
#: (:data:`musicbrain_cli.scan.batch.LOCK_NAME`, ``INPUTS_INDEX``; a test checks they are
#: the same names). Not reports, so not sealed; any other unsealed name is warned of.
SCAN_WORKING_FILES = (".musicbrain-scan.lock", ".musicbrain-inputs.json")


@dataclass(frozen=True)
class Check:
    """One verification step: ``status`` is ``pass``, ``fail``, ``warn``, ``skip`` or
    ``untrusted`` (an intact signature by a signer that is not trusted)."""

    name: str
    status: str
    detail: str


@dataclass
class VerificationResult:
    """All checks made on one path. ``status``: ``INVALID`` when a check failed (or none
    passed), else ``UNTRUSTED`` when a signer is not trusted, else ``VALID``; ``ok`` is
    ``status == "VALID"``."""

    path: Path
    kind: str
    checks: list[Check] = field(default_factory=list)

    @property
    def status(self) -> str:
        statuses = {c.status for c in self.checks}
        if FAIL in statuses or PASS not in statuses:
            return INVALID
        return NOT_TRUSTED if UNTRUSTED in statuses else VALID

    @property
    def ok(self) -> bool:
        return self.status == VALID

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.status == FAIL]

    def add(self, name: str, status: str, detail: str) -> None:
        self.checks.append(Check(name, status, detail))


Trust = TrustedSigner | TrustStore | None


def verify_path(path: Path, *, audio: Path | None = None, trusted: Trust = None,
                relay_pdf: bool = False) -> VerificationResult:
    """Verify a report folder or a signed PDF (chosen by what ``path`` is). ``trusted``: the
    signer key folder given by the user, or the trust store; ``None`` trusts nobody.
    ``relay_pdf``: lay a folder's PDF out again (:func:`_check_pdf_layout`)."""
    path = Path(path)
    if path.is_dir():
        return verify_report_folder(path, audio=audio, trusted=trusted, relay_pdf=relay_pdf)
    result = VerificationResult(path, "unknown")
    if path.is_file():
        try:
            with open(path, "rb") as fh:
                is_pdf = fh.read(5) == b"%PDF-"
        except OSError as exc:
            result.add("input", FAIL, f"cannot read it: {exc.strerror or exc}")
            return result
        if is_pdf:
            return verify_pdf(path, trusted=trusted, audio=audio)
        home = next((p for p in list(path.parents)[:3] if (p / MANIFEST_NAME).is_file()), None)
        if home is not None:
            # a file of a report folder (report.html, result.json, a figure, the manifest):
            # the folder's signed manifest is what vouches for it, so the folder is verified
            # and the result says so, with every check the folder would get (under
            # --reproduce its PDFs are laid out again: a check asked for is never skipped)
            folder = verify_report_folder(home, audio=audio, trusted=trusted,
                                          relay_pdf=relay_pdf)
            rel = path.relative_to(home).as_posix()
            listed = rel in (MANIFEST_NAME, SIGNATURE_NAME) or any(
                c.name == f"file {rel}" for c in folder.checks)
            folder.checks.insert(0, Check(
                "input", PASS if listed else FAIL,
                f"{rel} is verified as part of its report folder {str(home)!r}"
                if listed else f"{rel} is not listed in the manifest of its report folder "
                               f"{str(home)!r}"))
            return folder
    result.add("input", FAIL, "not a report folder, a scan folder, a file of a report "
               "folder or a signed PDF: nothing here can be verified" if path.exists()
               else "no such file or folder")
    return result


def load_json(data: bytes):
    """``json.loads`` that turns too deep nesting into the ``ValueError`` of any bad JSON."""
    try:
        return json.loads(data)
    except RecursionError as exc:
        raise ValueError("nested too deeply") from exc


# --- catalog folders ----------------------------------------------------------------------


def is_catalog_folder(path: Path) -> bool:
    """A scan's output folder: a ``summary.json`` or a catalog manifest, and no manifest of
    its own (a catalog whose summary was deleted is still checked, and said to lack it)."""
    path = Path(path)
    return (path.is_dir() and ((path / SUMMARY_JSON).is_file()
                               or (path / CATALOG_MANIFEST_NAME).exists())
            and not (path / MANIFEST_NAME).exists())


def _names(items: list[str]) -> str:
    shown = ", ".join(repr(x) for x in items[:LISTED_NAMES])
    return shown + (f" and {len(items) - LISTED_NAMES} more" if len(items) > LISTED_NAMES else "")


def _read_summary(root: Path, catalog: VerificationResult) -> tuple[list[dict] | None, Skipped]:
    """The summary's track rows (``None`` when it cannot be read as one, with the failure
    added to ``catalog``) and what it records the scan passed over."""
    path = root / SUMMARY_JSON
    try:
        if path.is_symlink() or path.stat().st_size > MAX_SUMMARY_BYTES:
            raise ValueError("a symbolic link or larger than a scan's summary can be")
        data = load_json(read_regular(path))
    except OSError as exc:
        catalog.add("summary", FAIL, f"cannot read {SUMMARY_JSON}: {exc.strerror or exc}")
        return None, Skipped()
    except ValueError as exc:
        catalog.add("summary", FAIL, f"{SUMMARY_JSON} is not a scan summary: {exc}")
        return None, Skipped()
    rows = data.get("tracks") if isinstance(data, dict) else None
    if (data.get("schema") if isinstance(data, dict) else None) != SUMMARY_SCHEMA or \
            not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        catalog.add("summary", FAIL, f"{SUMMARY_JSON} is not a {SUMMARY_SCHEMA} summary")
        return None, Skipped()
    try:
        skipped = Skipped.from_summary(data)
    except ValueError as exc:
        catalog.add("summary", FAIL, f"{SUMMARY_JSON}: {exc}")
        return None, Skipped()
    return rows, skipped


def _check_row(root: Path, row: dict, trusted: Trust
               ) -> tuple[VerificationResult | None, str | None]:
    """Verify the track folder of one analysed row and compare the row with its signed
    result. Returns the folder's own result (``None`` when there is no folder to verify)
    and why the row cannot be trusted (``None`` when it agrees with its signed result)."""
    report = row.get("report")
    parts = PurePosixPath(report).parts if _safe_relative(report) else ()
    if len(parts) != 2:
        return None, f"unsafe or malformed report path {report!r}"
    folder = root / parts[0]
    if not _is_plain(folder, dir=True):
        return None, f"report folder {parts[0]!r} is missing"
    result = verify_report_folder(folder, trusted=trusted)
    verified = {c.name for c in result.checks if c.status == PASS}
    if result.failures:   # an untrusted signer is the folder's own finding, not the row's
        return result, f"report folder {parts[0]!r} does not verify"
    if f"file {parts[1]}" not in verified or f"file {RESULT_JSON}" not in verified:
        return result, f"{report!r} or its {RESULT_JSON} is not a signed file of its folder"
    try:
        track = load_json(read_regular(folder / RESULT_JSON))
        expected = summary_row(CatalogEntry(str(row.get("path")), track=track, report=report))
    except (OSError, ValueError, TypeError, AttributeError, KeyError) as exc:
        return result, f"cannot read the signed {RESULT_JSON} of {parts[0]!r}: {exc}"
    differ = [k for k in FIELDS if (k in row or k not in LATER_FIELDS)
              and expected.get(k) != row.get(k)]
    if differ:
        return result, (f"{SUMMARY_JSON} differs from the signed {RESULT_JSON} of "
                        f"{parts[0]!r} in: {', '.join(differ)}")
    return result, None


def verify_catalog(root: Path, *, trusted: Trust = None) -> list[VerificationResult]:
    """Verify a scan's catalog folder (see the module doc): the catalog's own result first,
    then one per track folder its summary names, in the summary's order."""
    root = Path(root)
    catalog = VerificationResult(root, "catalog")
    results = [catalog]
    rows, skipped = _read_summary(root, catalog)
    if rows is None:
        return results
    failed, analysed, agreeing = [], 0, 0
    for number, row in enumerate(rows, 1):
        if row.get("status") != "ok":
            failed.append(str(row.get("file_name") or row.get("path")))
            continue
        folder, problem = _check_row(root, row, trusted)
        analysed += 1
        agreeing += problem is None
        if problem is not None:
            catalog.add(f"track {number}", FAIL, problem)
        if folder is not None:
            results.append(folder)
    catalog.add("summary", PASS if agreeing == analysed else FAIL,
                f"{agreeing} of {analysed} analysed tracks: the summary row says what the "
                f"track's signed {RESULT_JSON} says")
    if failed:
        catalog.add("failed inputs", WARN, f"{len(failed)} input(s) failed at scan time and "
                                           f"have no report: {_names(failed)}")
    named = {r.path.name for r in results[1:]}
    try:
        others = sorted(p.name for p in root.iterdir()
                        if p.is_dir() and (p / MANIFEST_NAME).exists() and p.name not in named)
    except OSError as exc:
        catalog.add("other folders", FAIL, f"cannot list {str(root)!r}: {exc.strerror or exc}")
        others = []
    if others:
        catalog.add("other folders", WARN, f"{len(others)} report folder(s) not in "
                                           f"{SUMMARY_JSON}, not checked: {_names(others)}")
    _note_unsealed(root, named | set(others), catalog)
    try:
        rendered = catalog_files(rows, skipped=skipped)
    except (ReportError, TypeError, ValueError, AttributeError, KeyError) as exc:
        catalog.add("summary", FAIL, f"{SUMMARY_JSON} has rows that cannot be rendered: "
                                     f"{type(exc).__name__}: {exc}")
        rendered = {}
    made_by = sorted({str(r.get("musicbrain_version") or "(not recorded)") for r in rows
                      if r.get("status") == "ok"} - {__version__})
    for name, data in rendered.items():
        if name == SUMMARY_JSON:
            continue
        if made_by:       # another version's pages: their sealed hashes are checked below
            catalog.add(f"file {name}", SKIP, f"not rendered again: tracks were analysed by "
                                              f"MusicBrain {', '.join(made_by)}, this is "
                                              f"{__version__}")
            continue
        path = root / name
        try:
            same = not path.is_symlink() and read_regular(path) == data
        except OSError as exc:
            catalog.add(f"file {name}", FAIL, f"cannot read it: {exc.strerror or exc}")
            continue
        catalog.add(f"file {name}", PASS if same else FAIL,
                    f"exactly what {SUMMARY_JSON} renders" if same else
                    f"differs from what {SUMMARY_JSON} renders: edited after the scan")
    listed = {PurePosixPath(r["report"]).parts[0] for r in rows
              if r.get("status") == "ok" and _safe_relative(r.get("report"))}
    _check_catalog_manifest(root, results[1:], trusted, catalog, listed=listed)
    return results


def _note_unsealed(root: Path, folders: set[str], catalog: VerificationResult) -> None:
    """Name what else lies in the catalog folder: nothing vouches for it. A warning, not a
    failure: an output folder may be shared with the user's own files, but a page that
    merely sits beside the catalog must not pass unmentioned, hidden names (``.x.html``)
    included: a file manager or a browser's file list shows them too. Only the scan's own
    working files (:data:`SCAN_WORKING_FILES`) go unnamed."""
    own = {SUMMARY_JSON, SUMMARY_CSV, INDEX_HTML, CATALOG_MANIFEST_NAME, CATALOG_SIGNATURE_NAME,
           *SCAN_WORKING_FILES}
    try:
        extra = sorted(p.name for p in root.iterdir() if p.name not in own | folders)
    except OSError:
        return          # the listing failure is already reported by the folder check
    if extra:
        catalog.add("unsealed files", WARN, f"{len(extra)} file(s) or folder(s) in the catalog "
                                            f"folder that no manifest seals, not verified: "
                                            f"{_names(extra)}")


def _read_signed_manifest(folder: Path, name: str, sig_name: str, schema: str,
                          result: VerificationResult, *, label: str = "manifest") -> dict | None:
    """Read, check canonical form and schema, and verify the detached signature of a
    manifest; adds its checks to ``result`` and returns it (``None`` when unreadable)."""
    try:
        data = read_regular(folder / name)
        manifest = load_json(data)
        if not isinstance(manifest, dict):
            raise ValueError(f"top level is {type(manifest).__name__}, not an object")
    except OSError as exc:
        result.add(label, FAIL, f"cannot read {name}: {exc.strerror or exc}")
        return None
    except ValueError as exc:
        result.add(label, FAIL, f"{name} is not valid JSON: {exc}")
        return None
    try:
        canonical = canonical_json(manifest) == data
    except ReportError:
        canonical = False
    if manifest.get("schema") != schema:
        result.add(label, FAIL, f"unknown schema {manifest.get('schema')!r} in {name}")
        return None
    # The signature is over the exact bytes; a non-canonical file could only come from an
    # edit, and its JSON meaning might differ from what a naive reader sees (duplicate keys).
    result.add(label, PASS if canonical else FAIL,
               "RFC 8785 canonical JSON" if canonical else "not RFC 8785 canonical JSON")
    key = _manifest_key(manifest, result)
    if key is not None:
        try:
            verify_detached(data, read_regular(folder / sig_name), key)
            result.add("signature", PASS, f"Ed25519 signature of {name} is valid")
        except OSError as exc:
            result.add("signature", FAIL, f"cannot read {sig_name}: {exc.strerror or exc}")
        except VerificationError as exc:
            result.add("signature", FAIL, str(exc))
    return manifest


def _check_catalog_manifest(root: Path, folders: list[VerificationResult],
                            trusted: Trust, catalog: VerificationResult, *,
                            listed: set[str] = frozenset()) -> None:
    """``folders``: the verified track folders the summary names; ``listed``: every
    folder the summary names, those gone from disk included (so that a deleted folder
    whose row is still there is called missing, not "not in the summary")."""
    if not (root / CATALOG_MANIFEST_NAME).exists():
        catalog.add("catalog manifest", FAIL, f"no {CATALOG_MANIFEST_NAME}: nothing binds the "
                                              f"set of tracks, so a removed track would go unnoticed")
        return
    manifest = _read_signed_manifest(root, CATALOG_MANIFEST_NAME, CATALOG_SIGNATURE_NAME,
                                     CATALOG_SCHEMA, catalog, label="catalog manifest")
    if manifest is None:
        return
    signer = manifest.get("signer")
    if isinstance(signer, dict):
        _check_signer_pin(signer, trusted, catalog)
    files = manifest.get("files") if isinstance(manifest.get("files"), list) else []
    for entry in files:
        name = entry.get("path") if isinstance(entry, dict) else None
        if not _safe_relative(name) or "/" in name:
            catalog.add("catalog files", FAIL, f"unsafe or malformed path {name!r}")
            continue
        actual = _sha256_if_file(root / name)
        same = actual is not None and actual == entry.get("sha256")  # None == None: missing
        catalog.add(f"sealed {name}", PASS if same else FAIL,
                    f"SHA-256 {actual}" if same else
                    "missing" if actual is None else "changed since the catalog was sealed")
    if not any(isinstance(e, dict) and e.get("path") == SUMMARY_JSON for e in files):
        catalog.add("catalog files", FAIL, f"the catalog manifest does not seal {SUMMARY_JSON}")
    tracks = manifest.get("tracks") if isinstance(manifest.get("tracks"), list) else []
    sealed = {t["folder"]: t.get("manifest_sha256") for t in tracks
              if isinstance(t, dict) and isinstance(t.get("folder"), str)}
    if len(sealed) != len(tracks):
        catalog.add("tracks", FAIL, "the catalog manifest has malformed track entries")
    present = {r.path.name: r for r in folders}
    missing = sorted(str(f) for f in set(sealed) - set(present))
    extra = sorted(set(present) - set(sealed))
    gone = [name for name in missing if name in listed]
    unlisted = [name for name in missing if name not in listed]
    if gone:
        catalog.add("tracks", FAIL, f"sealed and in the summary, but missing from the "
                                    f"catalog folder: {_names(gone)}")
    if unlisted:
        catalog.add("tracks", FAIL, f"sealed but not in the summary: {_names(unlisted)}")
    if extra:
        catalog.add("tracks", FAIL, f"in the summary but not sealed: {_names(extra)}")
    changed = sorted(name for name, r in present.items()
                     if name in sealed and _sha256_if_file(r.path / MANIFEST_NAME) != sealed[name])
    if changed:
        catalog.add("tracks", FAIL, f"track manifests changed since the catalog was sealed: "
                                    f"{_names(changed)}")
    fingerprint = signer.get("public_key_sha256") if isinstance(signer, dict) else None
    others = sorted(name for name, r in present.items()
                    if _manifest_fingerprint(r.path) != fingerprint)
    if others:
        catalog.add("tracks", FAIL, f"track folders signed by another key than the catalog: "
                                    f"{_names(others)}")
    if not (missing or extra or changed or others):
        catalog.add("tracks", PASS, f"the {len(sealed)} sealed track folders are exactly the "
                                    f"summary's, unchanged, signed by the catalog's signer")


def _is_plain(path: Path, *, dir: bool = False) -> bool:
    """A regular file (or folder), not a link; ``False`` for a name the file system refuses
    (too long, say): names come from files an adversary may have written."""
    try:
        return not path.is_symlink() and (path.is_dir() if dir else path.is_file())
    except (OSError, ValueError):
        return False


def _sha256_if_file(path: Path) -> str | None:
    try:
        return sha256_file(path) if path.is_file() and not path.is_symlink() else None
    except OSError:
        return None


def _manifest_fingerprint(folder: Path) -> str | None:
    try:
        signer = load_json(read_regular(folder / MANIFEST_NAME)).get("signer")
    except (OSError, ValueError, AttributeError):
        return None
    return signer.get("public_key_sha256") if isinstance(signer, dict) else None


# --- report folders -----------------------------------------------------------------------


def _safe_relative(name: object) -> bool:
    if not isinstance(name, str) or not name or "\\" in name or "\x00" in name:
        return False
    parts = PurePosixPath(name).parts
    return not PurePosixPath(name).is_absolute() and ".." not in parts and "." not in parts


def _manifest_key(manifest: dict, result: VerificationResult):
    signer = manifest.get("signer")
    if not isinstance(signer, dict):
        result.add("signature", FAIL, "the manifest names no signer: it is unsigned")
        return None
    try:
        raw = base64.b64decode(signer.get("public_key", ""), validate=True)
        key = ed25519.Ed25519PublicKey.from_public_bytes(raw)
    except (binascii.Error, ValueError, TypeError) as exc:
        result.add("signature", FAIL, f"the manifest's public key is malformed: {exc}")
        return None
    if hashlib.sha256(raw).hexdigest() != signer.get("public_key_sha256"):
        result.add("signature", FAIL, "the manifest's key fingerprint does not match its key")
        return None
    return key


def verify_report_folder(folder: Path, *, audio: Path | None = None,
                         trusted: Trust = None, relay_pdf: bool = False) -> VerificationResult:
    """Verify a track's report folder. ``relay_pdf`` (``verify --reproduce``) also lays each
    PDF out again from the HTML its ``result.json`` renders and compares its pages
    (:func:`_check_pdf_layout`): a second or so per PDF. With it, a report whose text cannot
    be rendered again here (another MusicBrain version, an older manifest) fails: the checks
    were asked for and not made. Without it, that is a ``skip`` line for the text and for each
    PDF, naming what was not checked."""
    folder = Path(folder)
    result = VerificationResult(folder, "folder")
    manifest = _read_signed_manifest(folder, MANIFEST_NAME, SIGNATURE_NAME, MANIFEST_SCHEMA,
                                     result)
    if manifest is None:
        return result
    if isinstance(manifest.get("signer"), dict):
        _check_signer_pin(manifest["signer"], trusted, result)

    listed = _check_listed_files(folder, manifest, result)
    _check_unlisted_files(folder, listed, result)
    _check_audio(manifest.get("audio"), audio, result)
    _check_result_audio(folder, listed, manifest.get("audio"), result)
    html = _check_rendering(folder, manifest, listed, result, required=relay_pdf)

    signer = manifest.get("signer") if isinstance(manifest.get("signer"), dict) else {}
    cert_sha = signer.get("certificate_sha256")
    for name in sorted(n for n in listed if n.lower().endswith(".pdf")):
        if _is_plain(folder / name):
            # the PDF's own recorded audio hash must match --audio too: a PDF is often
            # shown without its folder
            pdf = verify_pdf(folder / name, trusted=trusted, audio=audio,
                             expected_cert_sha256=cert_sha if isinstance(cert_sha, str) else "")
            result.checks.extend(Check(f"{name}: {c.name}", c.status, c.detail)
                                 for c in pdf.checks)
            if html is not None:
                _check_pdf_identifier(folder / name, html, result, laid_out=relay_pdf)
                if relay_pdf:
                    _check_pdf_layout(folder / name, html, result)
            else:
                # never silent: the PDF's text was not compared with its signed result
                result.add(f"rendering {name}", FAIL if relay_pdf else SKIP,
                           f"not compared with {RESULT_JSON}: neither its /ID nor its pages "
                           f"were checked (see 'rendering')"
                           + (", which --reproduce asked for" if relay_pdf else ""))
    return result


def _check_pdf_layout(path: Path, html: str, result: VerificationResult) -> None:
    """Lay the PDF out again from ``html`` (the HTML the signed ``result.json`` renders) and
    check that the file is that layout plus a signature and nothing else.

    The /ID check ties a PDF to its HTML by a number the writer chose; its pages are what
    a court reads. The PDF MusicBrain writes is deterministic (content-derived /ID, the
    analysis time as its date), and its signature is an incremental update appended to it,
    so the file must start with exactly the bytes laid out here, and every later revision
    may change only what a signature adds (:func:`signature_only_updates`). Laid out by
    another WeasyPrint than the one installed (as the signed result records), the pages
    cannot be checked here: that fails too, since the check was asked for and not made."""
    import json as _json

    from musicbrain_cli.report.pdf import html_to_pdf
    from musicbrain_cli.report.writer import _analysis_time

    name = f"layout {path.name}"
    try:
        track = load_json(read_regular(path.parent / RESULT_JSON))
        laid = html_to_pdf(html, identifier=hashlib.sha256(html.encode("utf-8")).digest()[:16],
                           source_date=_analysis_time(track if isinstance(track, dict) else {}))
        signed = read_regular(path)
    except (OSError, ReportError, ValueError, _json.JSONDecodeError) as exc:
        result.add(name, FAIL, f"cannot lay it out again: {exc}")
        return
    if not signed.startswith(laid):
        # which WeasyPrint laid it out is read from the signed result.json, never from the
        # PDF's own /Producer, which whoever made the PDF writes
        recorded = str(((track if isinstance(track, dict) else {}).get("software") or {})
                       .get("weasyprint") or "unrecorded")
        installed = _weasyprint_version()
        if recorded != installed:
            result.add(name, FAIL, f"its pages cannot be laid out again here: its result.json "
                                   f"records WeasyPrint {recorded}, this is {installed} "
                                   "(install the recorded versions, requirements.lock, to "
                                   "check them)")
            return
        result.add(name, FAIL, "its pages are not what the HTML of its result.json lays out "
                               "(with the fonts it was made with: a machine with other fonts "
                               "lays other bytes out)")
        return
    problem = signature_only_updates(path)
    result.add(name, PASS if problem is None else FAIL,
               "exactly the pages its result.json lays out, plus its signature"
               if problem is None else problem)


def _weasyprint_version() -> str:
    from musicbrain_cli.files import installed_version

    return installed_version("weasyprint")


#: What a signature's revision may change: the signature, its field and widget, the form
#: that lists it, and in the catalog and the page only the keys that point at them (and the
#: catalog's /Extensions, where pyHanko declares the PAdES extension level).
_SIGNATURE_KEYS = {"/Catalog": {"/AcroForm", "/Extensions"}, "/Page": {"/Annots"}}


def signature_only_updates(path: Path) -> str | None:
    """``None`` when every revision of the PDF after its first changes only what a PDF
    signature adds (the /Sig dictionary, its widget, the form, the catalog's /AcroForm,
    the page's /Annots, the document information, the cross-reference); otherwise what else
    it changes. The first revision's pages are then those of the file as read."""
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.misc import PdfError
    from pyhanko.pdf_utils.reader import PdfFileReader

    try:
        with open(path, "rb") as fh:
            reader = PdfFileReader(fh, strict=False)
            # The document information is the object the laid-out revision's trailer names;
            # a later trailer may not name another (review of session 45: a revision pointed
            # /Info at page 1's content stream, and the changed page went unchecked).
            info = _info_idnum(reader.get_historical_resolver(0).trailer_view)
            for rev in range(1, reader.total_revisions):
                old = reader.get_historical_resolver(rev - 1)
                named = _info_idnum(reader.get_historical_resolver(rev).trailer_view)
                if named != info:
                    return (f"revision {rev} names another object as the document information"
                            f" ({named} instead of {info}): the pages may not be the ones laid out")
                for ref in reader.xrefs.explicit_refs_in_revision(rev):
                    obj = reader.get_object(ref, revision=rev)
                    if ref.idnum == info and isinstance(obj, generic.DictionaryObject) and \
                            not isinstance(obj, generic.StreamObject):
                        continue                      # metadata: not drawn on any page
                    kind = obj.get("/Type") if isinstance(obj, generic.DictionaryObject) else None
                    if kind in ("/Sig", "/XRef") or (
                            kind == "/Annot" and obj.get("/FT") == "/Sig") or (
                            kind is None and isinstance(obj, generic.DictionaryObject)
                            and set(obj.keys()) <= {"/Fields", "/SigFlags", "/DA", "/DR"}):
                        continue
                    allowed = _SIGNATURE_KEYS.get(kind)
                    if allowed is None:
                        return (f"revision {rev} changes object {ref.idnum} ({kind or 'no type'}"
                                "), which a signature does not add: the pages may not be the "
                                "ones laid out")
                    try:
                        before = old(ref)
                    except (PdfError, KeyError, RecursionError):
                        return f"revision {rev} adds a {kind} that a signature does not add"
                    keys = (set(obj.keys()) | set(before.keys())) - allowed
                    moved = sorted(k for k in keys if (k in obj) != (k in before) or (
                        k in obj and obj.raw_get(k) != before.raw_get(k)))
                    if moved:
                        return (f"revision {rev} changes {', '.join(moved)} of a {kind}: the "
                                "pages may not be the ones laid out")
    except (OSError, PdfError, ValueError, TypeError, KeyError, IndexError, RecursionError) as exc:
        return f"cannot read its revisions: {exc}"
    return None


def _info_idnum(trailer) -> int | None:
    """The object number a trailer names as the document information (``None``: none)."""
    from pyhanko.pdf_utils import generic

    info = trailer.raw_get("/Info") if "/Info" in trailer else None
    return info.idnum if isinstance(info, generic.IndirectObject) else None


def _check_rendering(folder: Path, manifest: dict, listed: set[str],
                     result: VerificationResult, *, required: bool = False) -> str | None:
    """Render the report's HTML again from the folder's signed ``result.json``, figures and
    manifest signer, and compare it with ``report.html`` when the folder has one.

    The hashes alone prove only that the signer sealed these files, not that the readable
    report says what ``result.json`` (the record ``verify --reproduce`` re-derives) says:
    whoever holds the keys could seal a report whose text contradicts its result. Returns the
    rendered HTML (the PDF is checked against it), or ``None`` when it was not rendered.

    ``required`` (``verify --reproduce``): a report that cannot be rendered again here fails
    instead of being skipped. Which version made it is read from ``result.json``, which the
    signer writes: a skip is no verdict on the text, and under --reproduce never a pass.
    """
    not_made = FAIL if required else SKIP
    why = (" (--reproduce needs the text checked)" if required else
           f"; the report's text and PDF are not checked against {RESULT_JSON}")
    html_name = f"{REPORT_STEM}.html"
    if RESULT_JSON not in listed or not (html_name in listed or
                                         any(n.lower().endswith(".pdf") for n in listed)):
        return None
    failed = [c.name for c in result.checks
              if c.status == FAIL and c.name.startswith("file ")]
    if failed:
        result.add("rendering", SKIP, f"not rendered again: {_names(failed)} failed above")
        return None
    try:
        track = load_json(read_regular(folder / RESULT_JSON))
        if not isinstance(track, dict):
            raise ValueError(f"top level is {type(track).__name__}, not an object")
        made_by = (track.get("software") or {}).get("musicbrain")
        if made_by != __version__:
            result.add("rendering", not_made, f"its {RESULT_JSON} says it was made by "
                                              f"MusicBrain {made_by}, this is {__version__}: "
                                              f"its text is not rendered again here (use that "
                                              f"version to compare it with {RESULT_JSON}){why}")
            return None
        signer = manifest.get("signer") if isinstance(manifest.get("signer"), dict) else None
        if signer is not None and "certificate_self_signed" not in signer:
            result.add("rendering", not_made, "not rendered again: the manifest does not record "
                                              "whether the signing certificate is self-signed, "
                                              "which the report states (a report sealed before "
                                              f"MusicBrain recorded it){why}")
            return None
        prefix = f"{FIGURES_DIR}/"
        figures = {n[len(prefix):]: read_regular(folder / n) for n in sorted(listed)
                   if n.startswith(prefix) and "/" not in n[len(prefix):]}
        html = render_report_html(track, figures, signer=signer)
    except OSError as exc:
        result.add("rendering", FAIL, f"cannot read the report's files: {exc.strerror or exc}")
        return None
    except (ReportError, ValueError, TypeError, AttributeError, KeyError) as exc:
        result.add("rendering", FAIL, f"{RESULT_JSON} cannot be rendered as a report: "
                                      f"{type(exc).__name__}: {exc}")
        return None
    if html_name in listed:
        same = read_regular(folder / html_name) == html.encode("utf-8")
        result.add(f"rendering {html_name}", PASS if same else FAIL,
                   f"exactly what {RESULT_JSON}, the figures and the manifest's signer render"
                   if same else f"differs from what {RESULT_JSON}, the figures and the "
                                f"manifest's signer render: the report does not say what its "
                                f"signed result says")
    return html


def _check_pdf_identifier(path: Path, html: str, result: VerificationResult, *,
                          laid_out: bool = False) -> None:
    """The PDF's permanent identifier (the first of its trailer's ``/ID``) is the first 16
    bytes of the SHA-256 of the HTML it was rendered from (:func:`write_track_report`), so a
    PDF made from other text than what ``result.json`` renders is found without laying it out
    again. The /ID is a number whoever made the PDF wrote, not its pages: the pass line says
    so, and that only ``laid_out`` (:func:`_check_pdf_layout`, ``--reproduce``) checks them."""
    from pyhanko.pdf_utils.misc import PdfError

    expected = hashlib.sha256(html.encode("utf-8")).digest()[:16]
    try:
        first = pdf_identifier(path)
    except (OSError, PdfError, ValueError, TypeError, KeyError, IndexError, RecursionError) as exc:
        result.add(f"rendering {path.name}", FAIL, f"cannot read its identifier: {exc}")
        return
    result.add(f"rendering {path.name}", PASS if first == expected else FAIL,
               f"its /ID names the HTML that {RESULT_JSON} renders; "
               + ("its pages are checked below ('layout')" if laid_out else
                  "its pages were not laid out again: use --reproduce")
               if first == expected else
               f"not rendered from the HTML that {RESULT_JSON} renders: its /ID is "
               f"{first.hex() if first else 'missing'}, that HTML's is {expected.hex()}")


def pdf_identifier(path: Path) -> bytes | None:
    """The bytes of the first element of a PDF's trailer ``/ID``, or ``None``."""
    from pyhanko.pdf_utils.reader import PdfFileReader

    with open(path, "rb") as fh:
        trailer = PdfFileReader(fh, strict=False).trailer
        if "/ID" not in trailer:
            return None
        raw = trailer["/ID"][0]
    # pyHanko reads a string whose bytes happen to decode as text as a TextStringObject
    # (a str); its original bytes are what the writer put there
    original = getattr(raw, "original_bytes", None)
    if original is not None:
        return bytes(original)
    return raw.encode("latin-1") if isinstance(raw, str) else bytes(raw)


def _check_signer_pin(signer: dict, trusted: Trust, result: VerificationResult) -> None:
    """The manifest's signer is trusted only by its key's fingerprint: the certificate it
    names is bound to it by the signature, and a name proves nothing."""
    fingerprint = signer.get("public_key_sha256")
    who = (f"{str(signer.get('certificate_subject') or 'an unnamed signer')!r} (manifest key "
           f"SHA-256 {fingerprint}, certificate SHA-256 {signer.get('certificate_sha256')})")
    if isinstance(trusted, TrustedSigner):
        if trusted.manifest_public_key is not None and \
                fingerprint == trusted.manifest_key_fingerprint:
            result.add("signer", PASS, f"signed by {who}, the key given with --keys")
        else:
            result.add("signer", UNTRUSTED, f"signed by {who}, not by the key given with "
                                            f"--keys ({trusted.manifest_key_fingerprint})")
    elif isinstance(trusted, TrustStore) and trusted.trusts(fingerprint):
        result.add("signer", PASS, f"signed by {who}, pinned in {trusted.describe()}")
    else:
        result.add("signer", UNTRUSTED, f"signed by {who}, which is not trusted: compare the "
                                        "fingerprints with those the examiner published, then "
                                        f"pin them ('musicbrain keys trust {fingerprint}') or "
                                        "give the examiner's public keys with --keys")


def _check_listed_files(folder: Path, manifest: dict, result: VerificationResult) -> set[str]:
    entries = manifest.get("files")
    if not isinstance(entries, list) or not entries:
        result.add("files", FAIL, "the manifest lists no report files")
        return set()
    listed: set[str] = set()
    for entry in entries:
        name = entry.get("path") if isinstance(entry, dict) else None
        if not _safe_relative(name):
            result.add("files", FAIL, f"unsafe or malformed path in manifest: {name!r}")
            continue
        listed.add(name)
        path = folder / name
        if not _is_plain(path):
            result.add(f"file {name}", FAIL, "listed in the manifest but missing")
            continue
        try:
            actual = sha256_file(path)
        except OSError as exc:
            result.add(f"file {name}", FAIL, f"cannot read it: {exc.strerror or exc}")
            continue
        if actual == entry.get("sha256"):
            result.add(f"file {name}", PASS, f"SHA-256 {actual}")
        else:
            result.add(f"file {name}", FAIL, f"changed: SHA-256 is {actual}, the manifest "
                                             f"lists {entry.get('sha256')}")
    return listed


def _check_unlisted_files(folder: Path, listed: set[str], result: VerificationResult) -> None:
    try:
        present = {p.relative_to(folder).as_posix() for p in list_report_files(folder)}
    except OSError as exc:
        result.add("unlisted files", FAIL, f"cannot list the folder: {exc.strerror or exc}")
        return
    except ReportError as exc:
        result.add("unlisted files", FAIL, str(exc))
        return
    extra = sorted(present - listed)
    if extra:
        result.add("unlisted files", FAIL, f"present but not in the manifest: {extra}")
    else:
        result.add("unlisted files", PASS, "no file outside the manifest")


def _check_audio(listed: object, audio: Path | None, result: VerificationResult) -> None:
    if audio is None:
        result.add("audio", SKIP, "no audio file given (use --audio to check it)")
        return
    expected = listed.get("sha256") if isinstance(listed, dict) else None
    _compare_audio(expected, audio, "audio", "the manifest", result)


def _check_result_audio(folder: Path, listed: set[str], sealed: object,
                        result: VerificationResult) -> None:
    """The recording the signed ``result.json`` names (its ``input.sha256``, which the
    report's text states) must be the one the manifest seals, which ``--audio`` is checked
    against: a folder without a PDF had no other check that its text is about that
    recording (review: a report naming another recording verified VALID with --audio)."""
    expected = sealed.get("sha256") if isinstance(sealed, dict) else None
    if not isinstance(expected, str) or RESULT_JSON not in listed or any(
            c.name == f"file {RESULT_JSON}" and c.status == FAIL for c in result.checks):
        return          # nothing sealed to compare with, or a failed file said above
    try:
        track = load_json(read_regular(folder / RESULT_JSON))
    except (OSError, ValueError) as exc:
        result.add("result audio", FAIL, f"cannot read {RESULT_JSON}: {exc}")
        return
    recorded = track.get("input") if isinstance(track, dict) else None
    named = recorded.get("sha256") if isinstance(recorded, dict) else None
    result.add("result audio", PASS if named == expected else FAIL,
               f"{RESULT_JSON} names the recording the manifest seals (SHA-256 {expected})"
               if named == expected else
               f"{RESULT_JSON} (the report's text) names the recording {named!r}, the manifest "
               f"seals {expected}: the report is not about the recording it is sealed with")


def _compare_audio(expected: object, audio: Path, name: str, source: str,
                   result: VerificationResult) -> None:
    if not isinstance(expected, str) or not expected:
        result.add(name, FAIL, f"{source} records no audio hash, so --audio cannot be checked")
        return
    try:
        actual = _audio_sha256(Path(audio))
    except OSError as exc:
        result.add(name, FAIL, f"cannot read {str(audio)!r}: {exc.strerror or exc}")
        return
    if actual == expected:
        result.add(name, PASS, f"{Path(audio).name}: SHA-256 {actual} matches {source}")
    else:
        result.add(name, FAIL, f"{Path(audio).name}: SHA-256 {actual} differs from the "
                               f"analysed file's {expected} recorded in {source}")


_AUDIO_HASHES: dict[tuple, str] = {}


def _audio_sha256(path: Path) -> str:
    """SHA-256 of ``path``, once per (file, size, mtime) in a process: one --audio is
    compared with the folder and with each of its PDFs."""
    st = path.stat()
    key = (str(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    if key not in _AUDIO_HASHES:
        _AUDIO_HASHES.clear()
        _AUDIO_HASHES[key] = sha256_file(path)
    return _AUDIO_HASHES[key]


# --- PDFs ---------------------------------------------------------------------------------


def verify_pdf(path: Path, *, trusted: Trust = None, audio: Path | None = None,
               expected_cert_sha256: str | None = None) -> VerificationResult:
    """Check every embedded PDF signature with pyHanko's validator.

    The last signature must cover the entire file (nothing appended after signing), so the
    document information it covers (the analysed audio's SHA-256) is compared with
    ``audio`` when given. Inside a report folder (``expected_cert_sha256`` from its signed
    manifest) the signer certificate must be the one the manifest names, and the manifest's
    signer decides trust; a PDF on its own is trusted when its certificate is the one of
    ``trusted`` or is pinned in it.
    """
    import io

    from asn1crypto import x509 as ax509
    from pyhanko.pdf_utils.misc import PdfError
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko.sign.validation.status import SignatureCoverageLevel
    from pyhanko_certvalidator import ValidationContext

    path = Path(path)
    result = VerificationResult(path, "pdf")
    try:
        reader = PdfFileReader(io.BytesIO(read_regular(path)), strict=False)
        signatures = reader.embedded_signatures
    except (OSError, PdfError, ValueError, KeyError, TypeError, IndexError, RecursionError) as exc:
        result.add("pdf", FAIL, f"unreadable PDF: {type(exc).__name__}: {exc}")
        return result
    if not signatures:
        result.add("pdf signature", FAIL, "the PDF carries no signature")
        return result
    if audio is not None:
        _compare_audio(_pdf_audio_sha256(reader), audio, "pdf audio", "the PDF", result)

    trusted_cert = None
    if isinstance(trusted, TrustedSigner) and trusted.certificate is not None:
        trusted_cert = ax509.Certificate.load(trusted.certificate.public_bytes(
            serialization.Encoding.DER))
    for i, sig in enumerate(signatures, start=1):
        name = f"pdf signature {i} ({sig.field_name})"
        try:
            cert = sig.signer_cert
            # Who signed is judged below by fingerprint; here the signer's own certificate is
            # the anchor, so the validator checks integrity and the signature maths offline
            # (no CA store, no network: a court's exhibit must verify on an isolated machine).
            context = ValidationContext(trust_roots=[cert], allow_fetching=False)
            status = validate_pdf_signature(sig, context)
        # pyHanko's validation and CMS errors derive from ValueError, but crafted CMS data
        # also raises TypeError, AttributeError or IndexError inside asn1crypto: each is this
        # signature's failure, never a crash that stops a catalog's other tracks (review).
        except (PdfError, ValueError, KeyError, TypeError, AttributeError, IndexError,
                RecursionError) as exc:
            result.add(name, FAIL, f"cannot be validated: {type(exc).__name__}: {exc}")
            continue
        if not status.intact:
            result.add(name, FAIL, "document digest mismatch: the signed bytes were changed")
            continue
        if not status.valid:
            result.add(name, FAIL, "the cryptographic signature does not verify")
            continue
        if i == len(signatures) and status.coverage != SignatureCoverageLevel.ENTIRE_FILE:
            result.add(name, FAIL, f"content was added after signing (coverage "
                                   f"{status.coverage.name})")
            continue
        outside = _outside_validity(cert, status.signer_reported_dt)
        if outside:
            result.add(name, FAIL, outside)
            continue
        stamp = _timestamp_note(status.timestamp_validity)
        if stamp is None:
            result.add(name, FAIL, "its RFC 3161 timestamp token does not verify: it does "
                                   "not timestamp this signature, or its own signature does "
                                   "not hold")
            continue
        when = status.signer_reported_dt.isoformat() if status.signer_reported_dt else "n/a"
        result.add(name, PASS, f"intact PAdES signature{stamp}, signing time {when}")
        _check_pdf_signer(name, cert, trusted, trusted_cert, expected_cert_sha256, result)
    return result


def _timestamp_note(stamp) -> str | None:
    """What a PDF signature's RFC 3161 timestamp shows (``""`` without one), ``None`` when
    its token does not verify. The token is an unsigned attribute, outside the bytes the
    document signature covers, so anyone can put one in: its time and authority are said,
    and that no trust anchor vouches for the authority (verify uses none, to stay offline);
    review: a token over other bytes was said as "with an RFC 3161 timestamp"."""
    if stamp is None:
        return ""
    if not (stamp.intact and stamp.valid):
        return None
    try:
        tsa = stamp.signing_cert.subject.human_friendly
    except AttributeError:
        tsa = "an unnamed authority"
    when = stamp.timestamp.isoformat() if stamp.timestamp else "n/a"
    return (f" with an RFC 3161 timestamp of {when} by '{tsa}' (the timestamp authority is "
            "not checked against any trust anchor here)")


def _outside_validity(cert, signed_at) -> str | None:
    """Why a PDF signature was made outside its certificate's validity, or ``None``. The
    certificate is its own trust root here, so pyHanko's path validation never looks at its
    dates (session 27 audit: an expired or not yet valid certificate verified VALID, where
    poppler's pdfsig says 'Certificate has Expired')."""
    try:
        validity = cert["tbs_certificate"]["validity"]
        start, end = validity["not_before"].native, validity["not_after"].native
    except (KeyError, TypeError, ValueError, AttributeError):
        return "its certificate's validity period cannot be read"
    if signed_at is None:
        # no /M and no CMS signing time: the certificate's dates could not be checked, and
        # a pass would say they were (review; MusicBrain's signatures always carry /M)
        return ("it states no signing time, so whether it was made within its certificate's "
                "validity cannot be checked")
    if signed_at.tzinfo is None:
        # a /M date without a zone (the PDF spec allows it): read as UTC, with the widest
        # zone offsets allowed either way, so that no honest signature fails on it
        import datetime as _dt

        slack = _dt.timedelta(hours=14)
        signed_at = signed_at.replace(tzinfo=_dt.timezone.utc)
        start, end = start - slack, end + slack
    if not start <= signed_at <= end:
        return (f"signed at {signed_at.isoformat()}, outside its certificate's validity "
                f"({start.isoformat()} to {end.isoformat()})")
    return None


def _pdf_audio_sha256(reader) -> str | None:
    try:
        value = reader.trailer["/Info"].get(PDF_AUDIO_KEY)
    except (KeyError, TypeError, AttributeError, ValueError, RecursionError):
        return None
    return str(value) if value is not None else None


def _check_pdf_signer(name: str, cert, trusted: Trust, trusted_cert, expected_sha: str | None,
                      result: VerificationResult) -> None:
    fingerprint = hashlib.sha256(cert.dump()).hexdigest()
    subject = cert.subject.human_friendly
    kind = "self-signed certificate" if cert.subject == cert.issuer else "certificate"
    if expected_sha is not None:
        # inside a report folder: bound to the signed manifest, whose signer decides trust
        if fingerprint == expected_sha:
            result.add(f"{name} signer", PASS, "signed by the certificate named in the "
                                               f"signed manifest ({fingerprint})")
        else:
            result.add(f"{name} signer", FAIL, f"signed by certificate {fingerprint}, but the "
                                               f"manifest names {expected_sha or 'none'}")
        if trusted_cert is None:
            return
    if trusted_cert is not None:
        want = hashlib.sha256(trusted_cert.dump()).hexdigest()
        if fingerprint == want:
            result.add(f"{name} trust", PASS, f"signed by the certificate given with --keys "
                                              f"({want}, '{subject}')")
        else:
            result.add(f"{name} trust", UNTRUSTED, f"signed by {kind} '{subject}' (SHA-256 "
                                                   f"{fingerprint}), not by the one given with "
                                                   f"--keys ({want})")
    elif isinstance(trusted, TrustStore) and trusted.trusts(fingerprint):
        result.add(f"{name} trust", PASS, f"signed by {kind} '{subject}' (SHA-256 "
                                          f"{fingerprint}), pinned in {trusted.describe()}")
    else:
        result.add(f"{name} trust", UNTRUSTED,
                   f"signed by {kind} '{subject}' (SHA-256 {fingerprint}), which is not "
                   "trusted: compare the fingerprint with the one the examiner published, then "
                   f"pin it ('musicbrain keys trust {fingerprint}') or give --keys")


__all__ = ["Check", "VerificationResult", "load_json", "verify_catalog", "verify_path",
           "verify_pdf", "verify_report_folder"]
