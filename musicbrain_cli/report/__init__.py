"""Evidence reports: figures, HTML/PDF rendering, signing, manifests and verification.

The pipeline's calls, in order, for each track and then once per batch::

    keys = load_keys(keys_dir)                       # or init_keys(...) once
    write_track_report(track, figures, out_dir, formats=("pdf", "html"), keys=keys)
    write_manifest(out_dir, audio_path, weights_sha256, keys, audio_sha256=track_sha)
    ...
    write_catalog(out_root, [CatalogEntry(...), ...])
    write_catalog_manifest(out_root, catalog_file_names, track_folder_names, keys)

and a verifier's: ``verify_path(path, audio=..., trusted=load_trusted(dir))`` (exactly that
signer) or ``trusted=load_trust_store()`` (the pinned fingerprints).
Heavy libraries (matplotlib, WeasyPrint, pyHanko) are imported only when used.
"""

from musicbrain_cli.report.catalog import CatalogEntry, summary_row, write_catalog
from musicbrain_cli.report.keys import (KeyPair, TrustedSigner, TrustStore, default_keys_dir,
                                        init_keys, load_keys, load_trust_store, load_trusted,
                                        trust, trust_keys)
from musicbrain_cli.report.manifest import (MANIFEST_NAME, SIGNATURE_NAME, build_manifest,
                                            write_manifest)
from musicbrain_cli.report.verify import Check, VerificationResult, verify_path
from musicbrain_cli.report.writer import write_track_report

__all__ = [
    "CatalogEntry", "Check", "KeyPair", "MANIFEST_NAME", "SIGNATURE_NAME", "TrustStore",
    "TrustedSigner", "load_trust_store", "trust", "trust_keys",
    "VerificationResult", "build_manifest", "default_keys_dir", "init_keys", "load_keys",
    "load_trusted", "summary_row", "verify_path", "write_catalog", "write_manifest",
    "write_track_report",
]
