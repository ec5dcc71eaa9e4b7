"""The CLI skeleton: help is fast and torch-free, unfinished commands exit 2, info works."""

import subprocess
import sys

import pytest
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


def test_info_states_the_default_models_facts():
    # Issue 24: info promised the default model's facts and the FFmpeg version.
    import json

    from musicbrain_cli.model.checkpoint import resolve_model

    card = json.loads((resolve_model("default") / "model_card.json").read_text())
    out = CliRunner().invoke(main, ["info"]).output
    assert f"model      {card['name']} {card['version']}" in out
    assert f"weights SHA-256  {card['weights_sha256']} (matches the file)" in out
    assert card["training_data"]["path"] in out
    t, band = card["thresholds"]["detection"], card["verdict"]["band"]
    assert (f"ai at P(AI) >= {t + band:.2f}, human at <= {t - band:.2f}, inconclusive between "
            f"{t - band:.2f} and {t + band:.2f}") in out
    rates = card["error_rates"]
    assert f"missed {100 * rates['fnr']:.1f} %" in out and f"of {rates['n_ai']}" in out
    assert f"called AI {100 * rates['fpr']:.1f} %" in out
    assert "\nffmpeg     " in out and "model      default: not available" not in out


def test_info_states_the_evidence_lines_pins_and_operating_points():
    """info names each shipped evidence line with its model's SHA-256, its operating point,
    and for the symbolic line its measured test rates and the note estimator it needs."""
    import json

    from musicbrain_cli.artifacts.detector import SHIPPED_SHA256 as ART
    from musicbrain_cli.symbolic.detector import PACKAGE_DIR
    from musicbrain_cli.symbolic.detector import SHIPPED_SHA256 as SYM

    out = CliRunner().invoke(main, ["info"]).output
    assert f"line       artifacts (model SHA-256 {ART['default']['model.json']}" in out
    assert f"line       symbolic (model SHA-256 {SYM['default']['model.json']}" in out
    from musicbrain_cli.artifacts.detector import PACKAGE_DIR as ART_DIR

    cov = json.loads((ART_DIR / "default" / "model.json").read_text())["human_coverage"]
    rates = [str(r) for r in cov["rates_hz"]]
    assert (f"human side       calibrated at {', '.join(rates[:-1])} or {rates[-1]} Hz, bandwidth >= "
            f"{cov['min_bandwidth_hz']:.0f} Hz; outside that it never exonerates\n") in out
    # neither line accuses on its own (session 25 symbolic, session 28 artifacts)
    assert out.count("leans towards AI there, does not accuse on its own") == 2
    assert "32000" not in rates     # a rate between two measured ones is not claimed
    card = json.loads((PACKAGE_DIR / "default" / "card.json").read_text())
    assert f"P(AI) >= {card['threshold']:.3f}" in out
    fa = card["test"]["false_accusation"]
    assert f"human at or above the operating point {fa['k']} of {fa['n']}" in out
    assert "leans towards AI there, does not accuse on its own" in out
    held = card["test"]["human_withheld"]
    assert (f"leans towards AI P(AI) >= {card['operating_point']['doubt_threshold']:.3f}: withholds a "
            f"human verdict (human test clips {held['k']} of {held['n']}") in out
    assert "basic-pitch 0.4.0" in out and "UNAVAILABLE" not in out
    stacked = "roll" in card.get("readers", [])
    assert ("note statistics (trees) + piano-roll network, stacked" in out) is stacked


def _options_without_help(command, path):
    import click

    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from _options_without_help(sub, path + [name])
    for param in command.params:
        if isinstance(param, click.Option) and not param.hidden and not (param.help or "").strip():
            yield f"{' '.join(path)} {'/'.join(param.opts)}"


def test_every_option_has_help_text():
    assert list(_options_without_help(main, ["musicbrain"])) == []


def test_the_key_folder_option_is_spelled_keys_everywhere():
    # one spelling (--keys) in every command's help; scan's older --key still parses
    for command in (["scan"], ["verify"]):
        text = CliRunner().invoke(main, [*command, "--help"]).output
        assert "--keys" in text and "--key " not in text
    scan = main.commands["scan"]
    alias = [p for p in scan.params if "--key" in p.opts]
    assert alias and alias[0].hidden
    res = CliRunner().invoke(main, ["scan", "nowhere.wav", "--key", "k", "--keys", "j"])
    assert res.exit_code == 2


def test_scan_ends_with_a_one_screen_summary(tmp_path):
    from musicbrain_cli.cli import scan_summary_lines
    from musicbrain_cli.report.catalog import CatalogEntry
    from musicbrain_cli.scan.batch import ScanResult

    def entry(name, label):
        return CatalogEntry(f"/in/{name}", {"verdict": {"label": label}}, f"{name}/report.pdf")

    result = ScanResult(entries=[entry("a.flac", "ai"), entry("b.flac", "human"),
                                 entry("c.flac", "human"),
                                 CatalogEntry("/in/d.mp3", None, None, "truncated at 3.2 s")],
                        skipped=[("/in/notes.txt", "not audio")], reused=2)
    lines = scan_summary_lines(result, tmp_path / "out")
    assert lines[0] == f"4 recording(s) in {tmp_path / 'out'}:"
    counts = dict(line.split() for line in lines[1:5])
    assert counts == {"ai": "1", "inconclusive": "0", "human": "2", "failed": "1"}
    assert "    d.mp3: truncated at 3.2 s" in lines
    assert ("1 analysed now, 2 skipped (already complete), 1 other path(s) passed over (listed above)"
            in lines)
    assert lines[-1] == f"index: {tmp_path / 'out' / 'index.html'}"
    assert len(lines) <= 24   # one screen


def test_scan_of_an_empty_folder_never_loads_the_model(tmp_path):
    """Issue 27: start-up with nothing to scan; discovery comes before torch and the model."""
    import subprocess
    import sys

    (tmp_path / "empty").mkdir()
    code = ("import sys; from click.testing import CliRunner; from musicbrain_cli.cli import main; "
            "r = CliRunner().invoke(main, ['scan', sys.argv[1], '-o', sys.argv[2], '--unsigned', "
            "'--quiet']); assert r.exit_code == 0, r.output; "
            "assert 'nothing to scan' in r.output, r.output; "
            "assert 'torch' not in sys.modules, 'torch was imported'; print('ok')")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "empty"),
                           str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "summary.json").is_file()


def test_an_invalid_recipe_is_a_usage_error_exit_2(tmp_path):
    """The module docstring's exit codes: a configuration file the caller names and must fix
    (train's recipe, data cache's model configuration) is a usage error (2), not a failed
    operation (1)."""
    from click.testing import CliRunner

    from musicbrain_cli.cli import EXIT_USAGE, main

    (tmp_path / "data").mkdir()
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim:\n  lr: -1.0\n")
    res = CliRunner().invoke(main, ["train", "--data", str(tmp_path / "data"), "--config", str(bad),
                                    "-o", str(tmp_path / "run")])
    assert res.exit_code == EXIT_USAGE, res.output
    assert "lr" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "run").exists()
    model = tmp_path / "model.yaml"
    model.write_text("model:\n  front_end:\n    n_fft: -5\n")
    res = CliRunner().invoke(main, ["data", "cache", str(tmp_path / "data"), "--model-config",
                                    str(model)])
    assert res.exit_code == EXIT_USAGE, res.output
    assert "n_fft" in res.output and "Traceback" not in res.output


def test_only_musicbrains_own_warnings_are_reworded(capsys):
    """Another library's warning raised while a command runs (torch, numpy) keeps Python's
    format: it is not MusicBrain's to vouch for."""
    import warnings

    from musicbrain_cli.cli import _warnings_as_lines
    from musicbrain_cli.errors import MusicBrainWarning

    import pytest

    with pytest.warns(UserWarning, match="theirs") as seen, _warnings_as_lines():
        warnings.warn("ours", MusicBrainWarning)
        warnings.warn("theirs", UserWarning)       # handed on to the handler found in place
    err = capsys.readouterr().err
    assert "musicbrain: warning: ours" in err and "theirs" not in err
    assert [str(w.message) for w in seen] == ["theirs"]


def test_data_cache_with_an_unknown_or_missing_device_is_a_one_line_error(tmp_path):
    """Audit (session 26): `data cache --device tpu` (or cuda without a GPU) ended in a
    torch traceback."""
    from click.testing import CliRunner

    from musicbrain_cli.cli import main

    for device in ("tpu", "cuda:0" if not __import__("torch").cuda.is_available() else "tpu"):
        res = CliRunner().invoke(main, ["data", "cache", str(tmp_path), "--device", device])
        # a usage error since session 45 (status 2, checked before any work), as the README
        # says of an option the caller must fix
        assert res.exit_code == 2 and isinstance(res.exception, SystemExit), res.exception
        assert "device" in res.output and len(res.output.strip().splitlines()) == 1, res.output


def test_build_reference_refuses_a_rhythgen_path_that_holds_no_rhythgen_tree(tmp_path):
    """Audit (session 26): `--rhythgen EMPTY` built a corpus without RhythGen and said
    "none found; give --rhythgen PATH"; a wrong --musicnet was already refused."""
    from click.testing import CliRunner

    from musicbrain_cli.cli import main

    empty = tmp_path / "empty"
    empty.mkdir()
    res = CliRunner().invoke(main, ["data", "build-reference", "-o", str(tmp_path / "out"),
                                    "--size", "tiny", "--rhythgen", str(empty)])
    assert res.exit_code == 2 and "is not a RhythGen tree" in res.output, res.output
    assert "Lieder/" in res.output and not (tmp_path / "out").exists()


def test_build_reference_refuses_a_human_scores_path_that_is_no_source(tmp_path):
    """A mistyped --human-scores must not build a corpus without the human styles asked for."""
    from click.testing import CliRunner

    from musicbrain_cli.cli import main

    empty = tmp_path / "empty"
    empty.mkdir()
    res = CliRunner().invoke(main, ["data", "build-reference", "-o", str(tmp_path / "out"),
                                    "--size", "tiny", "--human-scores", str(empty)])
    assert res.exit_code == 2 and "neither an OpenScore Lieder tree" in res.output, res.output
    assert "labels.csv" in res.output and not (tmp_path / "out").exists()
    res = CliRunner().invoke(main, ["data", "build-reference", "-o", str(tmp_path / "out"),
                                    "--human-scores", str(empty), "--no-human-scores"])
    assert res.exit_code == 2 and "contradict" in res.output, res.output


def test_train_refuses_a_multi_node_run_without_a_rendezvous_before_any_work(tmp_path):
    """Audit (session 26): `train --nnodes 2` without --rdzv-endpoint built the feature cache
    first (minutes on a real data set), then stopped saying "not None"."""
    from click.testing import CliRunner

    from musicbrain_cli.cli import main

    res = CliRunner().invoke(main, ["train", "--data", str(tmp_path), "-o", str(tmp_path / "run"),
                                    "--nnodes", "2", "--device", "cpu"])
    assert res.exit_code == 2 and "needs --rdzv-endpoint HOST:PORT" in res.output, res.output
    assert "None" not in res.output and not (tmp_path / "run").exists()
    assert not (tmp_path / "cache").exists()


def test_paths_passed_over_are_listed_at_most_twenty_per_reason(capsys):
    """Audit (session 27): a folder of 100,000 non-audio files printed 100,000 lines."""
    from musicbrain_cli.cli import SKIPPED_LISTED, _echo_skipped

    _echo_skipped([(f"f{i}.txt", "not an audio file name extension") for i in range(105)]
                  + [("fifo", "not a regular file")])
    err = capsys.readouterr().err.splitlines()
    assert len(err) == SKIPPED_LISTED + 2
    assert err[SKIPPED_LISTED] == ("skipped: and 85 more path(s): not an audio file name "
                                   "extension")
    assert err[-1] == "skipped: fifo: not a regular file"


def test_a_scan_refuses_a_trained_model_whose_card_was_never_finalized(tmp_path,
                                                                        tiny_model_dir):
    """Audit (session 27): a `train` stopped while it finalized RUN/model left a card with no
    operating point or error rates; `scan` used it with default thresholds, exit 0."""
    import shutil

    from click.testing import CliRunner

    from conftest import SR, make_tone
    from musicbrain_cli.audio.encode import encode_audio
    from musicbrain_cli.cli import main
    from musicbrain_cli.model.card import update_card

    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    update_card(model, training={"epochs": 1})
    encode_audio(tmp_path / "a.flac", make_tone(5.0), SR)
    for engine in ([], ["--engine", "ray"]):
        res = CliRunner().invoke(main, ["scan", str(tmp_path / "a.flac"), "-o",
                                        str(tmp_path / "out"), "--model", str(model),
                                        "--unsigned", "--quiet", *engine])
        assert res.exit_code == 2 and "never finalized" in res.output, res.output
        assert "musicbrain train --resume RUN" in res.output
    assert not (tmp_path / "out" / "summary.json").exists()


def test_a_timestamp_authority_with_nothing_to_stamp_is_a_usage_error(tmp_path):
    """`--tsa URL` stamps PDF signatures: with `--unsigned` or without a PDF report there is
    none, and the option was accepted and silently dropped (the examiner believed the
    reports were timestamped). Refused before anything is written, as `--passphrase-env`
    with `--unsigned` is."""
    (tmp_path / "empty").mkdir()
    for extra in (["--unsigned"], ["--report", "html"], ["--report", "none"]):
        out = tmp_path / f"out{len(extra)}{extra[-1]}"
        res = CliRunner().invoke(main, ["scan", str(tmp_path / "empty"), "-o", str(out),
                                        "--tsa", "http://127.0.0.1:9/", "--quiet", *extra])
        assert res.exit_code == 2, (extra, res.output)
        assert "--tsa" in res.output and "PDF" in res.output, res.output
        assert not out.exists(), extra


@pytest.mark.parametrize("args", [
    ["evaluate", "--data", "{d}", "-o", "{d}/e", "--model", "default", "--robustness",
     "--transforms", "bogus"],
    ["train", "--data", "{d}", "-o", "{d}/run", "--init-from", "nosuch"],
    ["data", "cache", "{d}", "--device", "bogus"],
    ["refit-heads", "--data", "{d}", "--model", "nosuch", "-o", "{d}/run"],
])
def test_a_mistyped_option_value_is_a_usage_error_before_any_work(tmp_path, args):
    """Review (session 45): these exited 1 (a run failure) where the README promises 2 for a
    usage error, and `train --init-from nosuch` left an empty run folder behind."""
    res = CliRunner().invoke(main, [a.format(d=tmp_path) for a in args])
    assert res.exit_code == 2, res.output
    assert not (tmp_path / "run").exists()
