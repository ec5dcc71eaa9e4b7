"""Genuine reports must keep verifying. ``verify`` renders a report's text (``report.html``,
the catalog's ``index.html``) again from its signed result when that result was made by this
MusicBrain version, and compares bytes; a report of another version gets a ``skip`` line. So
the code that renders them may change only together with ``__version__``: otherwise every
genuine report made before the change would read as tampered with (session 27 audit).

The pin covers the templates and the two modules that turn results into text; a change to a
helper they call (``text.or_list``, say) must be pinned by hand, by bumping the version.
"""

import hashlib
from pathlib import Path

import musicbrain_cli
from musicbrain_cli import __version__

#: The SHA-256 of the rendering code each version shipped with.
RENDERER_PINS = {
    "0.2.0": "059c8544ff4e370129ad37de4b646814ec98c5918984822cdad28fdf03705032",
    "0.3.0": "563dd247ce34fc918992ac671ec1f0e6f7e698cba07cc66867945e49631071b9",
    "0.3.1": "ad3a6ac94899fc703d6b60583b32d414d5021ecde9141c1f2f03f6180e23b48b",
    "0.3.2": "52ecb7959c3f7f98173f01af87cba6a2191cf1cd0ded9177f74b1ac20513243b",
    "0.3.3": "be5478138f71dd0080f0707dab5b1524f83afc2ba9f2f3b48ad3e49d2f5c0065",
    "0.3.4": "c85799795c13c7d45a00ffa8a86d607d3d908d8721e866d7694d5bdfc6d86fda",
    "0.3.5": "b52c421138fbecb50fbd8520c8f210f43e9ddfad222a3d9f4e9dca4f9b400750",
    "0.3.6": "8606831e1c1243a9ed5ae84521fa9d70dfdf7ede2a7e613c45d660dda719c75c",
    "0.3.7": "8606831e1c1243a9ed5ae84521fa9d70dfdf7ede2a7e613c45d660dda719c75c",
    "0.3.8": "8606831e1c1243a9ed5ae84521fa9d70dfdf7ede2a7e613c45d660dda719c75c",
    "0.3.9": "e9e021d9faead5c72c9dc4a12f21e7b074bac6eb3e64d971d824d396d74603a7",
    "0.3.10": "fd0828601b620245d5fb972beec2a54024b712880a5fcfd3fc92417bc8446657",
    "0.3.11": "169b7f6ebd7fc711cb8de6e5ab2b216ea12d6f01ad02be97ebf95f7968c600e5",
}


def renderer_sha256() -> str:
    root = Path(musicbrain_cli.__file__).parent
    files = sorted([*(root / "templates").iterdir(), root / "report" / "html.py",
                    root / "report" / "catalog.py"])
    digest = hashlib.sha256()
    for path in files:
        if path.is_file():
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def test_the_report_rendering_changes_only_with_the_version():
    assert __version__ in RENDERER_PINS, f"pin the rendering code of version {__version__}"
    assert renderer_sha256() == RENDERER_PINS[__version__], (
        "the code that renders reports changed while __version__ stayed "
        f"{__version__}: genuine reports of {__version__} would no longer verify. Bump "
        f"musicbrain_cli.__version__ and pin {renderer_sha256()} for it here.")
