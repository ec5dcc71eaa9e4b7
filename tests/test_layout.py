"""The folder tree reads as the data flow, and data flows one way (issue 25 item 2, STYLE.md
"The shape of the house"): path -> audio -> features -> model / artifacts -> verdict ->
explain / alignment -> report and the symbolic line, with scan and evaluate driving the stages and the CLI on top.

Every import of the package (module level or inside a function, absolute or relative) is
read with ``ast`` and checked against the stage order below; a new top-level module or
package fails until it is given a place here on purpose.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "musicbrain_cli"

#: Stage -> level. A module may import its own stage, the shared foundation (level 0) and any
#: stage of a lower level; never a stage of its own level (siblings stay independent) or of
#: a higher one. "musicbrain_cli" is the package's own __init__ (``__version__``).
LEVELS = {
    # shared foundation: errors, atomic writes and hashes, input checks, text, progress,
    # the label taxonomy, the metrics that evaluation and training share
    "musicbrain_cli": 0, "errors": 0, "files": 0, "inputs": 0, "text": 0, "progress": 0,
    "taxonomy": 0, "metrics": 0,
    "audio": 1,                       # intake: probe, decode in a worker, metadata, C2PA
    "features": 2,                    # waveform -> model input
    "data": 3,                        # sources, renderers, the reference corpus, caches
    "model": 4, "artifacts": 4,       # the model stage; the decoder-artifact evidence line
    "verdict": 5,                     # evidence lines -> one track verdict
    "explain": 6, "alignment": 6,     # why: CAMs and their checks against the music
    "training": 6,                    # training and post-training fitting
    "report": 7,                      # figures, HTML/PDF, signing, manifests, verify
    "symbolic": 7,                    # the symbolic evidence line: it needs the transcribed
                                      # notes (alignment) and the artifact line's JSON trees
    "scan": 8, "evaluate": 8,         # the drivers
    "cli": 9,                         # the thin command layer
    "__main__": 10,                   # python -m musicbrain_cli runs the CLI
}

#: The modules that stay flat at the top of the package; everything else has a room.
FLAT = {"__init__", "__main__", "cli", "errors", "features", "files", "inputs", "metrics",
        "progress", "taxonomy", "text", "verdict"}


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield path, ".".join(parts)


def _exists(dotted: str) -> bool:
    base = PACKAGE.parent.joinpath(*dotted.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _imports(path: Path, name: str):
    """Every ``musicbrain_cli`` module that ``path`` imports, as dotted names."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            for alias in node.names:
                # `from pkg import sub` imports the submodule when there is one.
                sub = f"{module}.{alias.name}"
                yield (sub if _exists(sub) else module), node.lineno


def _stage(dotted: str) -> str:
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def test_every_stage_has_a_level():
    tops = {p.stem for p in PACKAGE.glob("*.py")} | {
        p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    tops = {"musicbrain_cli" if t == "__init__" else t for t in tops}
    assert tops <= set(LEVELS), f"place these in LEVELS on purpose: {sorted(tops - set(LEVELS))}"


def test_only_the_shared_modules_sit_flat_at_the_top():
    flat = {p.stem for p in PACKAGE.glob("*.py")}
    assert flat == FLAT, (f"moved back to the top level: {sorted(flat - FLAT)}; "
                          f"gone from it: {sorted(FLAT - flat)}")


def test_no_stage_imports_a_higher_or_sibling_stage():
    wrong = []
    for path, name in _modules():
        own = _stage(name)
        for target, line in _imports(path, name):
            if not (target == "musicbrain_cli" or target.startswith("musicbrain_cli.")):
                continue
            other = _stage(target)
            if other == own or LEVELS[other] == 0:
                continue
            if LEVELS[other] >= LEVELS[own]:
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{line} ({own}, level "
                             f"{LEVELS[own]}) imports {target} ({other}, level {LEVELS[other]})")
    assert not wrong, "imports against the data flow:\n" + "\n".join(wrong)


def test_the_checker_sees_an_upward_import(tmp_path):
    # The check above must be able to fail: a lazy import of report inside a function of the
    # audio stage, written relative, is found and resolved to its stage.
    fake = tmp_path / "musicbrain_cli" / "audio" / "fake.py"
    fake.parent.mkdir(parents=True)
    fake.write_text("def f():\n    from ..report import writer\n    from . import intake\n")
    found = [t for t, _ in _imports(fake, "musicbrain_cli.audio.fake")]
    assert [_stage(t) for t in found] == ["report", "audio"]
    assert LEVELS["report"] > LEVELS["audio"]


@pytest.mark.parametrize("module, banned", [
    # The decoder child starts per worker: before its first request it must not pay for
    # NumPy, PyAV or torch (audio/worker.py imports the decoder only in main()).
    ("musicbrain_cli.audio.worker", ("numpy", "av", "torch")),
    # The stage packages are light, so importing one of their torch-free modules (the
    # verdict reads model.ood, the report model.ood, an empty scan scan.batch) stays light.
    ("musicbrain_cli.model.ood", ("torch",)),
    ("musicbrain_cli.model.card", ("torch",)),
    ("musicbrain_cli.scan.batch", ("torch",)),
    ("musicbrain_cli.evaluate", ("torch",)),
    ("musicbrain_cli.alignment", ("numpy", "torch")),
])
def test_package_inits_stay_light(module, banned):
    code = (f"import sys, {module}\n"
            f"bad = [m for m in {banned!r} if m in sys.modules]\n"
            "assert not bad, bad\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
