"""The CLI skeleton: help is fast and torch-free, unfinished commands exit 2, info works."""

import subprocess
import sys

from click.testing import CliRunner

from musicbrain_cli import __version__
from musicbrain_cli.cli import main


def test_version():
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert __version__ in result.output


def test_help_lists_every_subcommand():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for cmd in ("scan", "train", "evaluate", "data", "verify", "keys", "info"):
        assert cmd in result.output


def test_help_does_not_import_torch():
    # --help must answer at once: torch is imported only by commands that need it.
    code = (
        "import sys; from musicbrain_cli.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "assert 'torch' not in sys.modules, 'torch imported by --help'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_python_dash_m_runs_the_same_cli():
    out = subprocess.run([sys.executable, "-m", "musicbrain_cli", "--version"],
                         capture_output=True, text=True, check=True)
    assert __version__ in out.stdout


def test_info_reports_versions():
    result = CliRunner().invoke(main, ["info"])
    assert result.exit_code == 0, result.output
    assert "torch" in result.output and "pyav" in result.output
