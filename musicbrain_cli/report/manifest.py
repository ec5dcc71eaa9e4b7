"""The signed manifest of a report folder: ``manifest.json`` + detached ``manifest.json.sig``.

``manifest.json`` is RFC 8785 (JSON Canonicalization Scheme) canonical JSON, written byte
for byte as canonicalised, so the Ed25519 signature in ``manifest.json.sig`` is over exactly
the bytes on disk and anyone can re-derive them. It lists:

* the SHA-256 and size of the analysed audio file (which stays outside the folder);
* the SHA-256 and size of every file in the report folder, recursively, except the
  manifest and its signature, so an added, removed or changed file is detected;
* the SHA-256 of the model weights that produced the result;
* the signer: the Ed25519 public key (raw, base64) and its SHA-256 fingerprint, and the
  SHA-256 fingerprint of the PDF signing certificate, binding the two signatures together.
"""

from __future__ import annotations

import datetime as _dt
import re
from pathlib import Path
from typing import Any, Sequence

import rfc8785

from musicbrain_cli import __version__
from musicbrain_cli.errors import ReportError, SigningError
from musicbrain_cli.files import canonical_json as _canonical_json
from musicbrain_cli.report._io import atomic_write_bytes, sha256_file
from musicbrain_cli.report.keys import KeyPair
from musicbrain_cli.report.signing import sign_detached

MANIFEST_NAME = "manifest.json"
SIGNATURE_NAME = "manifest.json.sig"
MANIFEST_SCHEMA = "musicbrain.manifest/1"
CATALOG_MANIFEST_NAME = "catalog-manifest.json"
CATALOG_SIGNATURE_NAME = "catalog-manifest.json.sig"
CATALOG_SCHEMA = "musicbrain.catalog-manifest/1"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def canonical_json(obj: Any) -> bytes:
    """RFC 8785 canonical UTF-8 bytes of ``obj``."""
    try:
        return _canonical_json(obj)
    except (rfc8785.CanonicalizationError, TypeError, ValueError, RecursionError) as exc:
        raise ReportError(f"manifest is not canonicalisable JSON: {exc}") from exc


def list_report_files(folder: Path) -> list[Path]:
    """Every regular file under ``folder`` except the manifest and its signature, sorted.

    Symbolic links and other non-regular entries are refused: a link could point a
    verifier at a file outside the folder that the signature never covered.
    """
    folder = Path(folder)
    files = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if path.is_symlink() or not (path.is_file() or path.is_dir()):
            raise ReportError(f"report folder holds a link or special file {rel!r}; "
                              "only regular files can be listed in a manifest")
        if path.is_file() and rel not in (MANIFEST_NAME, SIGNATURE_NAME):
            files.append(path)
    return files


def build_manifest(folder: Path, *, audio_path: Path | None, audio_sha256: str | None = None,
                   model_weights_sha256: str | None, keys: KeyPair | None,
                   created: str | None = None) -> dict:
    """The manifest dict for ``folder`` (see module doc); hashes every listed file."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ReportError(f"report folder {str(folder)!r} does not exist")
    if model_weights_sha256 is not None and not _SHA256.match(model_weights_sha256):
        raise ReportError(f"model_weights_sha256 must be 64 lowercase hex digits, "
                          f"got {model_weights_sha256!r}")
    audio: dict[str, Any] | None = None
    if audio_path is not None:
        audio_path = Path(audio_path)
        try:
            size = audio_path.stat().st_size
            digest = audio_sha256 or sha256_file(audio_path)
        except OSError as exc:
            raise ReportError(f"could not read audio file {str(audio_path)!r}: {exc}") from exc
        audio = {"file_name": audio_path.name, "sha256": digest, "size_bytes": size}
    elif audio_sha256 is not None:
        audio = {"sha256": audio_sha256}
    files = [{"path": p.relative_to(folder).as_posix(), "sha256": sha256_file(p),
              "size_bytes": p.stat().st_size} for p in list_report_files(folder)]
    return {
        "schema": MANIFEST_SCHEMA,
        "canonicalization": "RFC 8785",
        "generator": f"musicbrain {__version__}",
        "created": created or _now(),
        "audio": audio,
        "model": {"weights_sha256": model_weights_sha256},
        "files": files,
        "signer": _signer(keys),
    }


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _signer(keys: KeyPair | None) -> dict | None:
    return None if keys is None else keys.record()


def _write_signed(out_dir: Path, name: str, sig_name: str, manifest: dict,
                  keys: KeyPair | None) -> list[Path]:
    data = canonical_json(manifest)
    sig_path = out_dir / sig_name
    # Remove a stale signature first: a crash between the two writes must not leave an old
    # signature next to a new manifest that it does not sign.
    sig_path.unlink(missing_ok=True)
    written = [atomic_write_bytes(out_dir / name, data)]
    if keys is not None:
        try:
            signature = sign_detached(data, keys.manifest_key)
        except (TypeError, ValueError) as exc:
            raise SigningError(f"could not sign {name} of {str(out_dir)!r}: {exc}") from exc
        written.append(atomic_write_bytes(sig_path, signature))
    return written


def write_catalog_manifest(out_root: Path, files: Sequence[str], track_folders: Sequence[str],
                           keys: KeyPair | None, *, created: str | None = None) -> list[Path]:
    """Seal a scan's catalog: ``catalog-manifest.json`` (RFC 8785) lists the SHA-256 of each
    catalog file in ``files`` and of each track folder's ``manifest.json``, and is signed with
    the same key as the track manifests (``catalog-manifest.json.sig``). It binds the set of
    tracks: a track removed with its folder and summary row is detected. Call it after the
    track folders and the catalog files are written."""
    out_root = Path(out_root)
    try:
        listed = [{"path": n, "sha256": sha256_file(out_root / n),
                   "size_bytes": (out_root / n).stat().st_size} for n in files]
        tracks = [{"folder": f, "manifest_sha256": sha256_file(out_root / f / MANIFEST_NAME)}
                  for f in track_folders]
    except OSError as exc:
        raise ReportError(f"cannot seal the catalog {str(out_root)!r}: {exc}") from exc
    manifest = {"schema": CATALOG_SCHEMA, "canonicalization": "RFC 8785",
                "generator": f"musicbrain {__version__}", "created": created or _now(),
                "files": listed, "tracks": tracks, "signer": _signer(keys)}
    return _write_signed(out_root, CATALOG_MANIFEST_NAME, CATALOG_SIGNATURE_NAME, manifest, keys)


def write_manifest(out_dir: Path, audio_path: Path | None, model_weights_sha256: str | None,
                   keys: KeyPair | None, *, audio_sha256: str | None = None,
                   created: str | None = None) -> list[Path]:
    """Write ``manifest.json`` and, with ``keys``, its detached ``manifest.json.sig``.

    Call it last, after every report file of ``out_dir`` is written. ``audio_sha256``
    spares re-hashing a large file whose hash the pipeline already has. Returns the paths
    written. Without keys the manifest is written unsigned (and verification will say so).
    """
    out_dir = Path(out_dir)
    manifest = build_manifest(out_dir, audio_path=audio_path, audio_sha256=audio_sha256,
                              model_weights_sha256=model_weights_sha256, keys=keys,
                              created=created)
    return _write_signed(out_dir, MANIFEST_NAME, SIGNATURE_NAME, manifest, keys)
