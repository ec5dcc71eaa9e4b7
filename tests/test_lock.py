"""requirements.lock pins every dependency setup.cfg names, at a version setup.cfg allows.

A fresh machine installs from the lock (`make setup`, `.ci/run`); a dependency added to
setup.cfg but not to the lock would be missing there, and one locked outside its range would
mean the lock and `pip install musicbrain` disagree.
"""

import configparser
import re
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]


def _declared() -> list[Requirement]:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    lines = cfg["options"]["install_requires"].splitlines()
    lines += cfg["options.extras_require"]["dev"].splitlines()
    return [Requirement(line) for line in (s.strip() for s in lines) if line]


def _locked() -> dict[str, str]:
    text = (ROOT / "requirements.lock").read_text()
    pins = re.findall(r"^([A-Za-z0-9_.\-]+)==([^\s;\\]+)", text, flags=re.MULTILINE)
    return {canonicalize_name(name): version for name, version in pins}


def test_lock_pins_every_declared_dependency_within_its_range():
    locked = _locked()
    declared = _declared()
    assert len(declared) > 20
    for req in declared:
        name = canonicalize_name(req.name)
        assert name in locked, f"{req.name} is in setup.cfg but not in requirements.lock"
        assert req.specifier.contains(locked[name], prereleases=True), \
            f"{req.name}=={locked[name]} in the lock is outside setup.cfg's {req.specifier}"


def test_every_locked_requirement_carries_a_hash():
    text = (ROOT / "requirements.lock").read_text()
    blocks = re.split(r"\n(?=[A-Za-z0-9_.\-]+==)", text)
    pinned = [b for b in blocks if re.match(r"[A-Za-z0-9_.\-]+==", b)]
    assert len(pinned) == len(_locked())
    for block in pinned:
        assert "--hash=sha256:" in block, block.splitlines()[0]


def test_the_installed_versions_are_the_locked_ones():
    """What this test session runs on is what the lock says (CI installs from it)."""
    from importlib.metadata import PackageNotFoundError, version

    locked = _locked()
    for name in ("torch", "numpy", "timm", "pytest"):
        try:
            have = version(name)
        except PackageNotFoundError:   # pragma: no cover - the suite cannot run without them
            raise AssertionError(f"{name} is not installed")
        assert have.split("+")[0] == locked[name], f"{name} {have} is not the locked {locked[name]}"
