"""The ``musicbrain`` command line: a thin click layer over the library.

It parses and validates arguments, calls library functions, and prints. Heavy modules
(torch, timm, matplotlib, weasyprint) are imported inside the commands that need them, so
``musicbrain --help`` answers at once. Library errors (:class:`MusicBrainError`) become a
one-line message and a non-zero exit code, never a traceback.

Exit codes: 0 success, 1 a requested operation failed (some files failed, verification
failed), 2 usage error or a feature that is not available yet.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shlex
import sys
import warnings

import click

from musicbrain_cli import __version__
from musicbrain_cli.errors import AudioDecodeError, InputError, ModelLoadError, MusicBrainError
from musicbrain_cli.text import terminal_text

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _echo(message: object = "", *, err: bool = False, keep_newlines: bool = False) -> None:
    """Every line the CLI prints goes through here, made safe for a terminal: a file name
    or tag holding escape sequences must not rewrite the console (issue 23)."""
    click.echo(terminal_text(message, keep_newlines=keep_newlines), err=err)


def _fail(message: str, code: int = EXIT_FAILED) -> None:
    _echo(f"musicbrain: error: {message}", err=True)
    sys.exit(code)


def _not_yet(what: str, issue: int) -> None:
    _fail(f"{what} is not available yet (tracked in issue #{issue})", EXIT_USAGE)


@contextlib.contextmanager
def _usage_errors():
    """A library error raised inside is the caller's to fix (a bad option, a model or list
    that is not there): a one-line message and exit status 2, as the README says."""
    try:
        yield
    except MusicBrainError as exc:
        _fail(str(exc), EXIT_USAGE)


def handle_errors(func):
    """Turn library errors into a one-line message and exit status 1 (a command wraps what
    the caller must fix, such as the recipe it names, in :func:`_usage_errors`: status 2)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except MusicBrainError as exc:
            _fail(str(exc))
        except BrokenPipeError:
            # the reader went away (`musicbrain verify DIR | head`): nothing is wrong with
            # the work; stop quietly, as other Unix tools do (Python docs, "SIGPIPE")
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(EXIT_FAILED)
        except OSError as exc:
            # the last net under the library's own checks: a file system refusal (a folder
            # under /proc, a full disk) is a one-line message, never a traceback
            where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
            _fail(f"{exc.strerror or exc}{where}")
        except KeyboardInterrupt:
            _fail("interrupted", 130)

    return wrapper


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised in the main thread as an interrupt
    (:func:`_sigterm_as_interrupt`); ``signum`` says which."""

    def __init__(self, signum: int = 15):
        super().__init__(signum)
        self.signum = signum


def _terminal_fds() -> tuple[int, ...]:
    """Which of standard output and error are a terminal, read while it is still there (a
    hung-up terminal no longer reads as one)."""
    out = []
    for fd in (1, 2):
        try:
            if os.isatty(fd):
                out.append(fd)
        except OSError:
            pass
    return tuple(out)


def _detach_from_terminal(fds: tuple[int, ...]) -> None:
    """After a hang-up the terminal is gone: a write to it fails with EIO, and the catalog
    written on the way out must not fail on a progress line or the closing message. The
    descriptors ``fds`` (those that were a terminal) are pointed at ``/dev/null``."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        for fd in fds:
            try:
                os.dup2(devnull, fd)
            except OSError:
                pass
    finally:
        os.close(devnull)


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """While the block runs, SIGTERM (a job scheduler's stop, ``timeout``, ``docker stop``,
    systemd) interrupts it as Ctrl-C does, as :class:`Terminated`: a scan then writes the
    catalog of the folders sealed so far before it ends. Python's default for SIGTERM ends
    the process at once, and a rescan stopped so left a catalog that no longer matched the
    folders it had redone: ``verify`` said INVALID, "track manifests changed since the
    catalog was sealed", as if the reports had been tampered with (review of session 46).
    SIGHUP (the SSH session or terminal closed) ends it the same way, after detaching from
    the terminal that is gone, unless SIGHUP was ignored when the block began (``nohup``
    asks for the scan to go on: it does). Only in the main thread, where Python runs signal
    handlers; the handlers before are put back after."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    terminal = _terminal_fds()

    def terminated(signum, frame):
        if signum == getattr(signal, "SIGHUP", None):
            _detach_from_terminal(terminal)
        raise Terminated(signum)

    caught = [signal.SIGTERM]
    if hasattr(signal, "SIGHUP") and signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:
        caught.append(signal.SIGHUP)
    before = {sig: signal.signal(sig, terminated) for sig in caught}
    try:
        yield
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


@contextlib.contextmanager
def _warnings_as_lines():
    """While a command runs in this process, a warning the library raises on purpose
    (:class:`~musicbrain_cli.errors.MusicBrainWarning`: an unreliable calibration, a readable
    key folder, clips shorter than the window) prints as one plain line, ``musicbrain:
    warning: ...``, like the CLI's errors, not as Python's source-location dump; other
    libraries' warnings keep Python's format. (Worker processes, such as those of a
    multi-process training run, print theirs in Python's format.)"""
    from musicbrain_cli.errors import MusicBrainWarning

    with warnings.catch_warnings():
        default = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None):
            if issubclass(category, MusicBrainWarning):
                _echo(f"musicbrain: warning: {message}", err=True)
            else:
                default(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        yield


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="musicbrain")
@click.pass_context
def main(ctx: click.Context) -> None:
    """MusicBrain: tell whether music was generated by AI, which styles it draws on, and why."""
    ctx.with_resource(_warnings_as_lines())


# --- info ---------------------------------------------------------------------------------


@main.command()
@handle_errors
def info() -> None:
    """Print versions (MusicBrain, Python, torch, FFmpeg), the compute device and facts
    about the default model: name, weights SHA-256, training corpus, operating point and
    measured error rates."""
    import platform

    _echo(f"musicbrain {__version__}")
    _echo(f"python     {platform.python_version()} ({sys.executable})")
    try:
        import torch

        cuda = torch.cuda.is_available()
        device = torch.cuda.get_device_name(0) if cuda else "cpu"
        _echo(f"torch      {torch.__version__}")
        _echo(f"device     {device} (CUDA {'available' if cuda else 'not available'})")
    except ImportError:
        _echo("torch      not installed")
    try:
        from musicbrain_cli.audio.decode import decoder_versions

        dec = decoder_versions()
        _echo(f"pyav       {dec['pyav']} (libavcodec {dec['libavcodec']})")
        _echo(f"ffmpeg     {dec['ffmpeg']}")
    except ImportError:
        _echo("pyav       not installed")
    for line in model_facts_lines() + evidence_line_facts_lines():
        _echo(line)


def evidence_line_facts_lines() -> list[str]:
    """What ``info`` says about the shipped artifact and symbolic lines: model SHA-256 (the
    pinned files are checked on load), operating point and test rates from their cards, and
    whether basic-pitch, which the symbolic line needs, can run."""
    from musicbrain_cli.alignment.pitch import basic_pitch_available
    from musicbrain_cli.artifacts.detector import ArtifactDetector
    from musicbrain_cli.symbolic.detector import SymbolicDetector

    def rate(r) -> str:
        if not isinstance(r, dict) or not r.get("n"):
            return "n/a"
        lo, hi = (list(r.get("ci95") or []) + [None, None])[:2]
        span = f", 95 % CI {100 * lo:.1f}-{100 * hi:.1f} %" if lo is not None and hi is not None else ""
        return f"{r.get('k')} of {r.get('n')}{span}"

    lines = []
    for name, cls in (("artifacts", ArtifactDetector), ("symbolic", SymbolicDetector)):
        try:
            det = cls.from_pretrained("default")
        except MusicBrainError as exc:
            lines.append(f"line       {name}: not available ({exc})")
            continue
        lines.append(f"line       {name} (model SHA-256 {det.sha256}, checked against the pin)")
        accuses = det.accuses if name == "symbolic" else getattr(det, "accusing", True)
        lines.append(f"  operating point  P(AI) >= {det.threshold:.3f}"
                     + ("" if accuses else ": leans towards AI there, does not accuse on its own"))
        if name == "artifacts" and det.coverage is not None:
            c = det.coverage
            lines.append(f"  human side       calibrated at {c.rates_text()}, bandwidth >= "
                         f"{c.min_bandwidth_hz:.0f} Hz; outside that it never exonerates"
                         + (", and can accuse" if accuses else ""))
        if name == "symbolic":
            test = det.card.get("test") or {}
            reach = "called AI" if accuses else "at or above the operating point"
            lines.append(f"  test clips       human {reach} {rate(test.get('false_accusation'))}; "
                         f"score-writing AI {rate(test.get('detection'))}")
            if det.doubt_threshold < det.threshold:
                lines.append(f"  leans towards AI P(AI) >= {det.doubt_threshold:.3f}: withholds a human "
                             f"verdict (human test clips {rate(test.get('human_withheld'))}; "
                             f"score-writing AI {rate(test.get('ai_doubted'))})")
            lines.append("  readers          note statistics (trees)"
                         + (" + piano-roll network, stacked" if det.uses_roll else ""))
            ok, why = basic_pitch_available()
            lines.append(f"  notes            {why if ok else 'UNAVAILABLE: ' + why}")
    return lines


def model_facts_lines(name: str = "default") -> list[str]:
    """What ``info`` says about a model (issue 24): name, version, weights SHA-256 (checked
    against the file), training corpus, operating point and measured error rates, all from
    its model card."""
    import json

    from musicbrain_cli.model.checkpoint import WEIGHTS_FILE, resolve_model, sha256_file

    try:
        directory = resolve_model(name)
        card = json.loads((directory / "model_card.json").read_text(encoding="utf-8"))
    except (MusicBrainError, OSError, ValueError) as exc:
        return [f"model      {name}: not available ({exc})"]
    from musicbrain_cli.verdict import VerdictPolicy

    pct = lambda v: "n/a" if v is None else f"{100 * v:.1f} %"  # noqa: E731

    def ci(bounds) -> str:
        return (f" (95 % CI {pct(bounds[0])}-{pct(bounds[1])})"
                if isinstance(bounds, (list, tuple)) and len(bounds) == 2 else "")

    pinned = card.get("weights_sha256") or "not recorded"
    actual = sha256_file(directory / WEIGHTS_FILE)
    policy = VerdictPolicy.from_card(card)
    lo, hi = max(0.0, policy.threshold - policy.band), policy.threshold + policy.band
    data = card.get("training_data") or {}
    rates = card.get("error_rates") or {}
    split = f" {rates['split']}" if rates.get("split") else ""
    lines = [f"model      {card.get('name', 'unnamed')} {card.get('version', '')} ({directory})",
             f"  weights SHA-256  {pinned} "
             + ("(matches the file)" if actual == pinned else f"(FILE DIFFERS: {actual})"),
             f"  training corpus  {data.get('path') or 'not recorded'}"
             + (f": {data['description']}" if data.get("description") else ""),
             f"  operating point  threshold {policy.threshold:.2f}: "
             + (f"ai at P(AI) >= {hi:.2f}, human at <= {lo:.2f}, inconclusive between "
                f"{lo:.2f} and {hi:.2f}" if hi <= 1.0 else
                f"no P(AI) reaches ai (its boundary lies above 1), human at <= {lo:.2f}, "
                "inconclusive above")]
    if "fpr" in rates or "fnr" in rates:
        lines.append(f"  error rates      human{split} clips called AI {pct(rates.get('fpr'))}"
                     f"{ci(rates.get('fpr_ci95'))} of {rates.get('n_human', 'n/a')}; AI{split} "
                     f"clips missed {pct(rates.get('fnr'))}{ci(rates.get('fnr_ci95'))} of "
                     f"{rates.get('n_ai', 'n/a')}")
    else:
        lines.append("  error rates      not measured (no error_rates in the model card)")
    return lines


# --- scan / verify / keys -----------------------------------------------------------------


@main.command()
@click.argument("inputs", nargs=-1, type=click.Path())
@click.option("--paths-from", "paths_from", type=click.Path(dir_okay=False, exists=True),
              help="A text file listing input paths, one per line ('#' comments; relative "
                   "to the file's folder), for catalogs that do not sit in one folder.")
@click.option("-o", "--output", default="musicbrain-reports", show_default=True,
              type=click.Path(file_okay=False), help="Folder for the reports and the summary.")
@click.option("--report", "report_format", type=click.Choice(["pdf", "html", "both", "none"]),
              default="pdf", show_default=True, help="Report format(s) per track.")
@click.option("--model", "model_name", default="default", show_default=True,
              help="'default' (the shipped model) or a model folder.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
              show_default=True, help="Where the model runs: auto picks CUDA when available, else the CPU.")
@click.option("--jobs", type=click.IntRange(1, 64), default=2, show_default=True,
              help="With 2 or more, reports are rendered beside the analysis: in JOBS-1 "
                   "processes when several tracks are scanned, else in a thread.")
@click.option("--keys", "key_dir", type=click.Path(file_okay=False),
              help="Signing key folder (default: $XDG_CONFIG_HOME/musicbrain/keys, ~/.config "
                   "when unset; created on first use).")
# One spelling across commands (issue 24): --keys, as verify has it; --key still works.
@click.option("--key", "key_dir_alias", type=click.Path(file_okay=False), hidden=True,
              help="Older spelling of --keys.")
@click.option("--passphrase-env", metavar="VAR",
              help="Environment variable holding the passphrase of the signing keys (keys "
                   "made with 'keys init --passphrase-env'); Ray workers read the same "
                   "variable.")
@click.option("--unsigned", is_flag=True, help="Write reports without signatures.")
@click.option("--tsa", "tsa_url", help="RFC 3161 timestamp authority URL for PDF signatures "
                                       "(needs network access and a signed PDF report; a "
                                       "failed request fails the track's report).")
@click.option("--force", is_flag=True, help="Redo tracks whose reports are already complete.")
@click.option("--c2pa-trust-anchors", "trust_anchors", type=click.Path(dir_okay=False, exists=True),
              help="PEM bundle of the C2PA signers' root certificates to trust. Without it no "
                   "signer is verified, and a manifest's AI declaration alone never makes an "
                   "'ai' verdict.")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local",
              show_default=True,
              help="local: every track in this process. ray: one Ray task per track on a "
                   "Ray cluster (pip install 'musicbrain[ray]'; docs/scaling.md).")
@click.option("--address", metavar="HOST:PORT", default=None,
              help="Ray cluster to join with --engine ray (default: start a local one with "
                   "--jobs CPUs).")
@click.option("--notes", "note_estimator", type=click.Choice(["auto", "basic-pitch", "builtin"]),
              default="auto", show_default=True,
              help="Note estimator for the alignment checks: auto (basic-pitch, installed "
                   "with MusicBrain; the built-in one where an install lacks it), basic-pitch "
                   "(refused when absent) or the built-in one. README, 'Notes without a "
                   "score'; the one used is recorded in result.json.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@handle_errors
def scan(inputs, paths_from, output, report_format, model_name, device, jobs, key_dir,
         key_dir_alias, passphrase_env, unsigned, tsa_url, force, trust_anchors, engine, address,
         note_estimator, as_json, quiet) -> None:
    """Scan audio files or folders and write signed evidence reports.

    Each track gets OUTPUT/<name>-<hash>/ with report.pdf/.html, result.json, figures and a
    signed manifest; OUTPUT gets summary.json, summary.csv, index.html and a signed
    catalog-manifest.json that seals them. A rerun skips tracks already complete. Exit
    status 0 when every file was analysed, 1 when any failed or a folder could not be read
    (each failure is listed), 2 on usage errors.
    """
    from pathlib import Path

    if key_dir and key_dir_alias and key_dir != key_dir_alias:
        _fail("--keys and --key name different folders", EXIT_USAGE)
    key_dir = key_dir or key_dir_alias
    from musicbrain_cli.progress import RichProgress

    if not inputs and not paths_from:
        _fail("give files or folders to scan, or --paths-from FILE", EXIT_USAGE)
    from musicbrain_cli.files import absent

    missing = [p for p in inputs if absent(p)]
    if missing:
        _fail(f"no such file or folder: {', '.join(missing)}", EXIT_USAGE)
    if Path(output).exists() and not Path(output).is_dir():
        _fail(f"output {output!r} exists and is not a folder", EXIT_USAGE)
    if address and engine != "ray":
        _fail("--address names a Ray cluster: it needs --engine ray", EXIT_USAGE)
    # every option given is used: a timestamp the examiner asked for is never dropped silently
    if tsa_url and (unsigned or report_format not in ("pdf", "both")):
        _fail("--tsa timestamps the signatures of PDF reports: it needs --report pdf or both, "
              "signed (not --unsigned)", EXIT_USAGE)
    if engine == "ray":
        from musicbrain_cli.scan import ray_engine

        if not ray_engine.ray_available():
            _fail("--engine ray needs Ray: pip install 'musicbrain[ray]'", EXIT_USAGE)
    formats = {"pdf": ("pdf",), "html": ("html",), "both": ("pdf", "html"), "none": ()}

    from musicbrain_cli.scan.batch import ScanOptions, passive_openmp, scan as run_scan

    passive_openmp()        # before torch loads: its idle threads then leave the cores free
    from musicbrain_cli.scan.discovery import discover, read_path_list

    with _usage_errors():
        listed = read_path_list(paths_from) if paths_from else []
    # discovery first: with nothing to scan, the model (torch) is never loaded (issue 27);
    # what it refuses (the output folder given as an input) is the caller's to fix: status 2
    with _usage_errors():
        found = discover([*inputs, *listed], output=output)
    if not found.files and not found.missing and not found.failed:
        # still a scan (the catalog of OUT is written again from its verified folders), but
        # a mistyped or empty input folder must not pass for a clean one (session 29 audit)
        _echo("warning: nothing to scan: no audio file found in the inputs given"
              + (f" ({len(found.skipped)} file(s) skipped, listed below)" if found.skipped else ""),
              err=True)

    if trust_anchors:
        from musicbrain_cli.errors import ConfigError
        from musicbrain_cli.audio.provenance import load_trust_anchors

        try:
            load_trust_anchors(trust_anchors)   # a bad bundle stops the scan before any work
        except ConfigError as exc:
            _fail(str(exc), EXIT_USAGE)
    from musicbrain_cli.errors import ConfigError

    try:  # an explicit --notes basic-pitch that cannot run stops the scan before any work
        options = ScanOptions(formats=formats[report_format], jobs=jobs, force=force,
                              tsa_url=tsa_url, trust_anchors=trust_anchors,
                              notes=note_estimator, render_processes=True)
    except ConfigError as exc:
        _fail(str(exc), EXIT_USAGE)
    if unsigned:
        from musicbrain_cli.scan.batch import check_output

        with _usage_errors():
            check_output(Path(output), None)
    if unsigned and passphrase_env:
        _fail("--passphrase-env unlocks signing keys; --unsigned uses none", EXIT_USAGE)
    if unsigned and key_dir:
        _fail("--keys names the signing keys; --unsigned uses none", EXIT_USAGE)
    keys, key_folder = (None, None) if unsigned else _scan_keys(key_dir,
                                                                _env_secret(passphrase_env))
    command_line = ["musicbrain", *sys.argv[1:]]
    progress = RichProgress(disable=quiet)
    load = run_on = None
    if engine == "ray":
        from functools import partial

        from musicbrain_cli.model.card import read_card
        from musicbrain_cli.model.checkpoint import resolve_model

        with _usage_errors():     # each worker loads it: check here that it is there
            _check_finished_model(read_card(resolve_model(model_name)), model_name)
        spec = ray_engine.WorkerSpec(model=model_name, device=device, options=options,
                                     key_dir=key_folder and str(key_folder),
                                     passphrase_env=passphrase_env,
                                     command_line=tuple(command_line))
        run_on = partial(_ray_tracks, spec=spec, address=address, num_cpus=jobs,
                         progress=progress)
    elif found.files:
        def load():
            # under the output folder's lock: a second scan into it stops before this
            from musicbrain_cli.model.inference import Detector

            with _usage_errors():
                detector = Detector.from_pretrained(model_name, device=device)
                _check_finished_model(detector.card, model_name)
            return detector
    try:
        with _sigterm_as_interrupt():
            result = run_scan(found, output, None, options=options, keys=keys,
                              command_line=command_line, progress=progress, engine=run_on,
                              load=load)
    except KeyboardInterrupt as exc:
        import signal

        signum = exc.signum if isinstance(exc, Terminated) else None
        how = f"terminated ({signal.Signals(signum).name})" if signum else "interrupted"
        _fail(f"{how}; the tracks finished so far are in {shlex.quote(str(output))} and its "
              "catalog, and running the same command again continues with the rest",
              128 + signum if signum else 130)
    _echo_skipped(result.skipped)
    for path, reason in result.redone:
        _echo(f"redone: {path}: its finished report folder cannot be reused ({reason})",
              err=True)
    for name, reason in result.excluded:
        _echo(f"not in the catalog: {name}: {reason}", err=True)
    for name, path in result.kept_after_failure:
        _echo(f"kept in the catalog: {name}: the earlier verified report of the same audio, "
              f"since this scan's redo of {path} failed", err=True)
    if as_json:
        for entry in result.entries:
            if entry.error:
                _echo(f"failed: {entry.input_path}: {entry.error}", err=True)
        summary = Path(output) / "summary.json"
        import json

        # Re-serialised as ASCII: every control or invisible character in a name or tag is
        # then a JSON \uXXXX escape, so the output is both valid JSON and terminal-safe.
        text = json.dumps(json.loads(summary.read_text(encoding="utf-8")), indent=2,
                          sort_keys=True, ensure_ascii=True)
        _echo(text, keep_newlines=True)
    else:
        for line in scan_summary_lines(result, output):
            _echo(line)
    sys.exit(EXIT_FAILED if result.n_failed else EXIT_OK)


def _ray_tracks(files, out, salted, *, spec, address, num_cpus, progress):
    from musicbrain_cli.scan import ray_engine

    return ray_engine.run_tracks(files, out, spec, address=address, num_cpus=num_cpus,
                                 progress=progress, salted=salted)


def scan_summary_lines(result, output) -> list[str]:
    """The one-screen end of a scan (issue 24): counts per verdict, each failure with its
    reason, what a rerun reused, and where the index is."""
    from pathlib import Path

    verdicts: dict[str, int] = {"ai": 0, "inconclusive": 0, "human": 0}
    for entry in result.entries:
        if not entry.error and entry.track:
            label = str((entry.track.get("verdict") or {}).get("label") or "no verdict")
            verdicts[label] = verdicts.get(label, 0) + 1
    width = max(len(k) for k in (*verdicts, "failed"))
    lines = [f"{len(result.entries)} recording(s) in {output}:"]
    lines += [f"  {label:<{width}}  {n:>4}" for label, n in verdicts.items()]
    lines.append(f"  {'failed':<{width}}  {result.n_failed:>4}")
    lines += [f"    {Path(e.input_path).name}: {e.error}" for e in result.entries if e.error]
    done_now = result.n_ok - result.reused
    lines.append(f"{done_now} analysed now, {result.reused} skipped (already complete)"
                 + (f", {len(result.skipped)} other path(s) passed over (listed above)"
                    if result.skipped else ""))
    if getattr(result, "kept", None):
        lines.append(f"{len(result.kept)} track folder(s) kept from earlier scans")
    if getattr(result, "earlier_failures", None):
        # the catalog still lists them as failed: without this line the console said
        # "failed 0" (exit status 0) over an index that counts them (review of session 46)
        lines.append(f"{len(result.earlier_failures)} failed input(s) of earlier scans, not "
                     "read by this scan, still listed in the catalog as failed")
    lines.append(f"index: {Path(output) / 'index.html'}")
    return lines


def _env_secret(var: str | None) -> bytes | None:
    """The value of environment variable ``var`` (a password or passphrase: never an option
    value, which the report's command line and the process list would show)."""
    import os

    if var is None:
        return None
    if var not in os.environ:
        raise click.UsageError(f"environment variable {var!r} is not set")
    return os.environ[var].encode()


def _scan_keys(key_dir, passphrase: bytes | None = None):
    """The signing keys and their folder, the keys created on first use so every report is
    signed (a Ray worker loads them from the same folder). ``passphrase``: the stored keys'
    (``keys init --passphrase-env``); keys created here are encrypted with it."""
    from pathlib import Path

    from musicbrain_cli.report.keys import default_keys_dir, init_keys, load_keys, trust_keys

    directory = Path(key_dir) if key_dir else default_keys_dir()
    if not directory.exists():
        keys = init_keys(directory, passphrase=passphrase)
        # the examiner's own new keys: pinned, so that they verify their own reports
        trust_keys(keys, note=f"created by scan in {directory}")
        _echo(f"created signing keys in {directory} (manifest key "
              f"{keys.manifest_key_fingerprint}, certificate "
              f"{keys.certificate_fingerprint}), trusted on this machine; publish the "
              "fingerprints (name yourself with 'musicbrain keys init --name')", err=True)
        return keys, directory
    return load_keys(directory, passphrase=passphrase), directory


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--audio", type=click.Path(exists=True, dir_okay=False),
              help="The recording the reports claim to analyse: its SHA-256 must match.")
@click.option("--keys", "keys_dir", type=click.Path(exists=True, file_okay=False),
              help="Key folder (public files suffice) the signers must match; without it "
                   "a signer must be pinned in the trust store ('musicbrain keys trust').")
@click.option("--trust-store", type=click.Path(dir_okay=False, exists=True),
              help="Trust store file (default: $MUSICBRAIN_TRUST_STORE, else "
                   "$XDG_CONFIG_HOME/musicbrain/trusted.json, ~/.config when unset). One "
                   "named here must exist: a mistyped name would trust nobody, silently.")
@click.option("--reproduce", is_flag=True,
              help="Also re-run the recorded analysis on --audio and check that every "
                   "figure of the report comes out the same.")
@click.option("--model", "model_name", default="default", show_default=True,
              help="With --reproduce: the model the report names (its weights hash is checked).")
@click.option("--c2pa-trust-anchors", "trust_anchors", type=click.Path(dir_okay=False, exists=True),
              help="With --reproduce: the C2PA trust anchors the scan was given.")
@click.option("--device", default=None, metavar="recorded|cpu|cuda[:N]",
              help="With --reproduce: where the network re-runs [default: recorded, the "
                   "device the report's analysis ran on where this machine has it, else the "
                   "CPU, with a note: a GPU's last float bits are not the CPU's].")
@handle_errors
def verify(paths, audio, keys_dir, trust_store, reproduce, model_name, trust_anchors,
           device) -> None:
    """Verify the signatures and hashes of report folders, signed PDFs or scan folders
    (a file of a report folder, such as its report.html, is verified with its folder).

    A scan's output folder (the one holding summary.json) is verified whole: every track
    folder it names, and that the summary, summary.csv and index.html say what those
    signed folders say. VALID: every check passed and the signer is trusted (--keys, or a
    fingerprint pinned with 'musicbrain keys trust'); UNTRUSTED: intact, but signed by
    someone else; INVALID: a check failed. Exit status 0 when every PATH is VALID, 1
    otherwise (with the reasons), 2 on usage errors.
    """
    from pathlib import Path

    from musicbrain_cli.report.keys import load_trust_store, load_trusted
    from musicbrain_cli.report.verify import is_catalog_folder

    if reproduce and not audio:
        _fail("--reproduce needs the recording: give it with --audio FILE", EXIT_USAGE)
    # every option given is used: none is accepted and then silently not checked
    if not reproduce and (trust_anchors or model_name != "default" or device):
        _fail("--model, --c2pa-trust-anchors and --device go with --reproduce", EXIT_USAGE)
    if device:
        from musicbrain_cli.errors import InputError
        from musicbrain_cli.scan.reproduce import rerun_device

        try:      # a device this machine lacks: the caller's to fix, before any path is read
            import torch

            rerun_device("cpu", device, cuda_count=torch.cuda.device_count())
        except InputError as exc:
            _fail(str(exc), EXIT_USAGE)
    if keys_dir and trust_store:
        _fail("give either --keys (trust exactly that signer) or --trust-store, not both",
              EXIT_USAGE)
    catalogs = [p for p in paths if is_catalog_folder(Path(p))]
    if audio and catalogs:
        _fail(f"--audio names one recording, but {catalogs[0]!r} is a scan's catalog folder: "
              "verify the track folder of that recording instead", EXIT_USAGE)
    # A --keys folder that holds no key, or a trust store that is none (or that others can
    # write), verifies nothing: the caller's to fix, status 2, never the 1 of INVALID or
    # UNTRUSTED, which would read as a finding about the reports (README, verify's exit codes)
    with _usage_errors():
        trusted = (load_trusted(Path(keys_dir)) if keys_dir else
                   load_trust_store(Path(trust_store) if trust_store else None))
    invalid = 0
    for path in paths:
        try:
            invalid += not _verify_one(path, catalogs=catalogs, audio=audio, trusted=trusted,
                                       reproduce=reproduce, model_name=model_name,
                                       trust_anchors=trust_anchors, device=device)
        except MusicBrainError:
            raise                                  # a usage or input error: said as such
        except Exception as exc:  # noqa: BLE001
            # a fault of this program or of a library on one hostile input: that input is
            # INVALID, loudly, and the other paths are still verified
            _echo(f"INVALID  {path}")
            _echo(f"  [fail] verify: internal error while verifying it ({type(exc).__name__}: "
                  f"{str(exc)[:200]}); please report it")
            invalid += 1
    sys.exit(EXIT_FAILED if invalid else EXIT_OK)


def _check_finished_model(card, model_name) -> None:
    from musicbrain_cli.errors import InputError
    from musicbrain_cli.model.card import unfinished

    why = unfinished(card)
    if why:
        raise InputError(f"model {str(model_name)!r} cannot give verdicts: {why}")


#: Paths passed over for one reason that ``scan`` names one by one; more are counted.
SKIPPED_LISTED = 20


def _echo_skipped(skipped) -> None:
    """The paths a scan passed over, at most :data:`SKIPPED_LISTED` per reason, then how
    many more (a folder of 100,000 non-audio files is one screen, not 100,000 lines)."""
    by_reason: dict[str, list[str]] = {}
    for path, reason in skipped:
        by_reason.setdefault(str(reason), []).append(str(path))
    for reason, paths in by_reason.items():
        for path in paths[:SKIPPED_LISTED]:
            _echo(f"skipped: {path}: {reason}", err=True)
        if len(paths) > SKIPPED_LISTED:
            _echo(f"skipped: and {len(paths) - SKIPPED_LISTED} more path(s): {reason}", err=True)


def _verify_one(path, *, catalogs, audio, trusted, reproduce, model_name, trust_anchors,
                device=None) -> bool:
    """Verify one PATH of ``musicbrain verify`` and print its checks; whether it is VALID."""
    from pathlib import Path

    from musicbrain_cli.report import verify_path
    from musicbrain_cli.report.verify import verify_catalog

    if path in catalogs:
        results = verify_catalog(Path(path), trusted=trusted)
        statuses = {r.status for r in results}
        status = next(s for s in ("INVALID", "UNTRUSTED", "VALID") if s in statuses)
        _echo(f"{status}  {path}  (catalog: {len(results) - 1} track folder(s))")
        _echo_checks(results[0])
        for result in results[1:]:
            _echo_checks(result, f"{result.status.lower() if result.ok else result.status}"
                                 f"  {result.path.name}")
        return status == "VALID"
    result = verify_path(Path(path), audio=Path(audio) if audio else None, trusted=trusted,
                         relay_pdf=reproduce)
    ok = result.ok
    # a file of a report folder (its report.html, result.json) is verified with its folder,
    # and so is it reproduced; a PDF is verified on its own (review of session 45: the
    # README's "verified with its folder" held for every file but under --reproduce)
    # the folder verify_path verified: a file of a report folder at any depth (a figure in
    # figures/) is reproduced with its report folder, not with the folder it sits in
    folder = (Path(path) if Path(path).is_dir() else
              Path(result.path) if Path(result.path).is_dir() else
              Path(path).parent if not str(path).lower().endswith(".pdf") else None)
    if reproduce and folder is None:
        # never VALID for a check that was asked for and not made
        result.add("reproduce", "fail", "--reproduce needs the report folder (it re-runs "
                                        "the analysis its result.json records), not a PDF")
        ok = False
    lines: list[str] = []
    if reproduce and folder is not None:
        # run before anything is printed, so that one path never gets two status lines
        from musicbrain_cli.scan.reproduce import reproduce as rerun

        try:
            again = rerun(folder, Path(audio), model=model_name, trust_anchors=trust_anchors,
                          **({"device": device} if device else {}))
        except (InputError, AudioDecodeError) as exc:
            # this folder's record or recording cannot be re-run: this path fails with the
            # checks above, and the next paths are still verified (review of session 45)
            ok = False
            lines = [f"  [fail] reproduce: {exc}"]
        except ModelLoadError as exc:
            _fail(str(exc), EXIT_USAGE)         # --model names none: the caller's to fix
        except MusicBrainError:
            raise
        except Exception as exc:  # noqa: BLE001
            ok = False
            lines = [f"  [fail] reproduce: internal error while re-running the analysis "
                     f"({type(exc).__name__}: {str(exc)[:200]}); please report it"]
        else:
            ok = ok and again.ok
            unchecked = [n for n in again.notes if n.startswith("not checked")]
            lines = [f"  [{'pass' if again.ok else 'fail'}] reproduce: "
                     + (("every figure of the report came out the same" if not unchecked else
                         f"every figure compared came out the same; {len(unchecked)} part(s) not "
                         "checked (below)")
                        if again.ok else f"{len(again.differences)} difference(s)")]
            lines += [f"    {line}" for line in again.differences + again.notes]
    _echo(f"{result.status if ok or result.status != 'VALID' else 'INVALID'}  {path}")
    _echo_checks(result)
    for line in lines:
        _echo(line)
    return ok


def _echo_checks(result, heading: str | None = None) -> None:
    indent = "  "
    if heading:
        _echo(f"  {heading}")
        indent = "    "
    for check in result.checks:
        _echo(f"{indent}[{check.status}] {check.name}: {check.detail}")


def _replaced_signer(directory) -> tuple[str, ...]:
    """The fingerprints of the public keys in ``directory`` that ``keys init --force`` is
    about to overwrite (none where it holds none)."""
    from musicbrain_cli.errors import SigningError
    from musicbrain_cli.report.keys import load_trusted

    try:
        signer = load_trusted(directory)
    except SigningError:
        return ()
    return tuple(fp for fp in (signer.manifest_key_fingerprint, signer.certificate_fingerprint)
                 if fp)


@main.group()
def keys() -> None:
    """Create and manage signing keys for reports."""


@keys.command("init")
@click.argument("directory", required=False, type=click.Path(file_okay=False))
@click.option("--force", is_flag=True, help="Replace existing keys (the old ones are lost).")
@click.option("--untrust-replaced", is_flag=True,
              help="With --force: also remove the replaced keys' pins from the trust store "
                   "(keys that were lost or stolen). Without it they stay trusted, and the "
                   "command says so.")
@click.option("--name", "--common-name", "common_name", default=None,
              help="Your name, as the certificate's subject (CN) and on every report's first "
                   "page (default: 'MusicBrain examiner' and a key id).")
@click.option("--org", "organization", default=None,
              help="Your organisation, as the certificate's subject (O).")
@click.option("--days", type=click.IntRange(min=1, max=36500), default=None,
              help="Validity of the self-signed certificate in days (default 3650, at most "
                   "100 years).")
@click.option("--pkcs12", "pkcs12_file", type=click.Path(exists=True, dir_okay=False),
              help="Sign PDFs with the key and certificate of this PKCS#12 (.p12) file.")
@click.option("--cert", "cert_file", type=click.Path(exists=True, dir_okay=False),
              help="Sign PDFs with this PEM certificate (leaf, then intermediates).")
@click.option("--cert-key", "key_file", type=click.Path(exists=True, dir_okay=False),
              help="PEM private key of --cert.")
@click.option("--password-env", metavar="VAR",
              help="Environment variable holding the password of --pkcs12 or --cert-key.")
@click.option("--passphrase-env", metavar="VAR",
              help="Environment variable holding a passphrase to encrypt the stored keys.")
@click.option("--trust-store", type=click.Path(dir_okay=False),
              help="Trust store in which the new keys are pinned (default: "
                   "$MUSICBRAIN_TRUST_STORE, else $XDG_CONFIG_HOME/musicbrain/trusted.json, "
                   "~/.config when unset).")
@handle_errors
def keys_init(directory, force, untrust_replaced, common_name, organization, days, pkcs12_file,
              cert_file, key_file, password_env, passphrase_env, trust_store) -> None:
    """Create an Ed25519 manifest key and an X.509 certificate for PDF signatures.

    DIRECTORY defaults to $XDG_CONFIG_HOME/musicbrain/keys (~/.config when unset). Files
    are written with mode 0600 in a 0700 folder and are never overwritten without --force.
    """
    from pathlib import Path

    from musicbrain_cli.report import keys as keymod

    if (cert_file is None) != (key_file is None):
        raise click.UsageError("--cert and --cert-key must be given together")
    if pkcs12_file and cert_file:
        raise click.UsageError("give either --pkcs12 or --cert/--cert-key, not both")

    secret = _env_secret
    if password_env and not (pkcs12_file or key_file):
        raise click.UsageError("--password-env is the password of --pkcs12 or --cert-key; to "
                               "encrypt the stored keys use --passphrase-env")
    if (common_name or organization) and (pkcs12_file or cert_file):
        raise click.UsageError("--name/--org name a new self-signed certificate; a given "
                               "certificate already has its subject")
    if days is not None and (pkcs12_file or cert_file):
        # it would be ignored: the validity printed on a given certificate is its own
        raise click.UsageError("--days sets the validity of a new self-signed certificate; a "
                               "given certificate already has its own")
    if untrust_replaced and not force:
        raise click.UsageError("--untrust-replaced goes with --force (there is nothing to "
                               "replace without it)")
    options = {k: v for k, v in (("common_name", common_name), ("organization", organization),
                                 ("valid_days", days)) if v}
    replaced = _replaced_signer(Path(directory) if directory else keymod.default_keys_dir()) \
        if force else ()
    # what init refuses is the caller's to fix (keys already there without --force, a
    # certificate that does not match its key or is not valid now, an unreadable PKCS#12, a
    # bad name or --days): status 2, as for the other commands' usage errors
    with _usage_errors():
        created = keymod.init_keys(
            Path(directory) if directory else None, force=force,
            pkcs12_file=Path(pkcs12_file) if pkcs12_file else None,
            cert_file=Path(cert_file) if cert_file else None,
            key_file=Path(key_file) if key_file else None,
            pkcs12_password=secret(password_env) if pkcs12_file else None,
            key_password=secret(password_env) if key_file else None,
            passphrase=secret(passphrase_env), **options)
    _echo(f"keys written to {created.directory} (private files mode 0600)")
    _echo(f"manifest key (Ed25519) SHA-256:   {created.manifest_key_fingerprint}")
    _echo(f"PDF certificate SHA-256:          {created.certificate_fingerprint}")
    _echo(f"PDF certificate subject:          {created.pdf_cert.subject.rfc4514_string()}"
          f"{' (self-signed)' if created.self_signed else ''}")
    keymod.trust_keys(created, store=Path(trust_store) if trust_store else None,
                      note=f"created by keys init in {created.directory}")
    store = Path(trust_store) if trust_store else keymod.default_trust_store()
    _echo(f"Both are pinned in the trust store {store}, so your own reports verify here.")
    new = {created.manifest_key_fingerprint, created.certificate_fingerprint}
    old = [fp for fp in replaced
           if fp not in new and fp in keymod.load_trust_store(store).fingerprints]
    if old and untrust_replaced:
        for fp in old:
            keymod.untrust(fp, store=store)
        _echo(f"The replaced keys' pins were removed from {store}: reports they signed verify "
              "UNTRUSTED here from now on.")
    elif old:
        # review of session 45: a key replaced because it was stolen stayed trusted, silently
        _echo(f"The replaced keys are still pinned in {store}: reports they signed, and "
              "anything signed with them from now on, verify as trusted here. If they were lost "
              f"or stolen, revoke them: musicbrain keys untrust {' '.join(old)}")
    _echo("Publish these fingerprints so others can check who signed your reports "
          "(they pin them with 'musicbrain keys trust FINGERPRINT').")


@keys.command("trust")
@click.argument("items", nargs=-1, required=True)
@click.option("--trust-store", type=click.Path(dir_okay=False),
              help="Trust store file (default: $MUSICBRAIN_TRUST_STORE, else "
                   "$XDG_CONFIG_HOME/musicbrain/trusted.json, ~/.config when unset).")
@click.option("--note", default=None, help="Who this is, e.g. where the fingerprint was published.")
@handle_errors
def keys_trust(items, trust_store, note) -> None:
    """Trust a signer: pin a SHA-256 FINGERPRINT, or that of a CERT (PEM/DER), an Ed25519
    public key file or a key folder's public files.

    Pin only a fingerprint you have compared with the one the examiner published (on a
    channel you trust). Reports signed by a pinned key then verify as VALID.
    """
    from pathlib import Path

    from musicbrain_cli.report.keys import pins_of, trust

    with _usage_errors():     # every item read first: one that names nothing pins none
        for item in items:
            pins_of(item)
    store = Path(trust_store) if trust_store else None
    for item in items:
        added = trust(item, store=store, note=note)
        for entry in added:
            subject = f" ({entry['subject']})" if entry.get("subject") else ""
            _echo(f"trusted {entry['kind']} {entry['sha256']}{subject}")
        if not added:
            _echo(f"already trusted: {item}")


@keys.command("untrust")
@click.argument("items", nargs=-1, required=True)
@click.option("--trust-store", type=click.Path(dir_okay=False),
              help="Trust store file (default: $MUSICBRAIN_TRUST_STORE, else "
                   "$XDG_CONFIG_HOME/musicbrain/trusted.json, ~/.config when unset).")
@handle_errors
def keys_untrust(items, trust_store) -> None:
    """Stop trusting a signer (a compromised or retired key): remove the pin of a
    FINGERPRINT, CERT, public key file or key folder, and the pins made together with it
    (one signer's manifest key and certificate). Its reports then verify UNTRUSTED."""
    from pathlib import Path

    from musicbrain_cli.report.keys import pins_of, untrust

    with _usage_errors():     # every item read first: one that names nothing removes none
        for item in items:
            pins_of(item)
    store = Path(trust_store) if trust_store else None
    for item in items:
        removed = untrust(item, store=store)
        for entry in removed:
            subject = f" ({entry['subject']})" if entry.get("subject") else ""
            _echo(f"no longer trusted: {entry.get('kind', 'fingerprint')} {entry['sha256']}{subject}")
        if not removed:
            _echo(f"not in the trust store: {item}")
        elif len(removed) == 1 and not removed[0].get("signer"):
            _echo(f"note: {removed[0]['sha256']} was pinned on its own; if its signer's other "
                  "fingerprint (manifest key or certificate) is pinned, untrust it too "
                  "(musicbrain keys list)")


@keys.command("list")
@click.option("--trust-store", type=click.Path(dir_okay=False),
              help="Trust store file (default: $MUSICBRAIN_TRUST_STORE, else "
                   "$XDG_CONFIG_HOME/musicbrain/trusted.json, ~/.config when unset).")
@handle_errors
def keys_list(trust_store) -> None:
    """List the trusted fingerprints."""
    from pathlib import Path

    from musicbrain_cli.report.keys import load_trust_store

    store = load_trust_store(Path(trust_store) if trust_store else None)
    _echo(f"trust store {store.path}: {len(store.entries)} fingerprint(s)")
    for entry in store.entries:
        extra = "; ".join(str(x) for x in (entry.get("subject"), entry.get("note"),
                                           entry.get("added")) if x)
        _echo(f"{entry['sha256']}  {entry.get('kind', 'fingerprint')}"
              + (f"  {extra}" if extra else ""))


# --- train / evaluate ---------------------------------------------------------------------


@main.command()
@click.option("--data", "data_dir", default=None,
              type=click.Path(exists=True, file_okay=False, readable=True),
              help="Data set folder (its feature cache is built when missing). With --resume, "
                   "defaults to the data set the run recorded.")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False),
              help="Recipe YAML merged over the default (musicbrain_cli/training/configs/default.yaml).")
@click.option("--nproc-per-node", type=click.IntRange(min=1), default=None,
              help="Worker processes on this machine [default: one per GPU, 1 on CPU].")
@click.option("--nnodes", type=click.IntRange(min=1), default=1, show_default=True,
              help="Machines taking part in a multi-node run.")
@click.option("--node-rank", type=click.IntRange(min=0), default=0, show_default=True,
              help="This machine's number among the --nnodes (0 is the one at --rdzv-endpoint).")
@click.option("--rdzv-endpoint", default=None, metavar="HOST:PORT",
              help="Node 0's address, for multi-node runs.")
@click.option("--resume", "resume_dir", type=click.Path(exists=True, file_okay=False),
              help="Continue the run in this folder from its last checkpoint.")
@click.option("--init-from", "init_from", metavar="MODEL",
              help="Fine-tune: start from this model's weights (a model folder or a shipped "
                   "model's name; same architecture and front end, and the same labels "
                   "unless the recipe sets train.init_labels: by_name, which lets the data "
                   "add labels). Sets train.init_from in the recipe.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
              show_default=True, help="Where the model runs: auto picks CUDA when available, else the CPU.")
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False),
              help="Run folder (must be new or empty). Defaults to --resume's folder.")
@handle_errors
def train(data_dir, config_path, nproc_per_node, nnodes, node_rank, rdzv_endpoint, resume_dir,
          init_from, device, out_dir) -> None:
    """Train a model on a data set, on one or several processes/GPUs.

    Workers are started through torch's elastic launcher (NCCL on GPUs, gloo on CPU); the
    command also runs unchanged under an external torchrun. The exported model lands in
    OUT/model, loadable with --model OUT/model.
    """
    from pathlib import Path

    if resume_dir and out_dir and Path(out_dir).resolve() != Path(resume_dir).resolve():
        _fail("--resume and -o name different folders", EXIT_USAGE)
    out_dir = out_dir or resume_dir
    if not out_dir:
        _fail("give the run folder with -o RUN_DIR (or --resume RUN_DIR)", EXIT_USAGE)
    if data_dir is None:
        data_dir = _recorded_data(Path(resume_dir)) if resume_dir else None
        if data_dir is None:
            _fail("give the data set with --data DATASET" + (
                  " (the run's checkpoint records none)" if resume_dir else ""), EXIT_USAGE)
    from musicbrain_cli.progress import RichProgress
    from musicbrain_cli.training.config import load_config
    from musicbrain_cli.training.distributed import check_geometry
    from musicbrain_cli.training.trainer import train as run_training

    if init_from and resume_dir:
        _fail("--init-from starts a new run; --resume continues one (its recipe already "
              "names the weights it started from)", EXIT_USAGE)
    overrides = {"train": {"init_from": init_from}} if init_from else None
    with _usage_errors():             # the recipe is the caller's to fix: status 2
        if init_from:                 # a model that is not there, before a run folder is made
            from musicbrain_cli.model.checkpoint import resolve_model
            resolve_model(init_from)
        config = load_config(config_path, overrides=overrides) if config_path or init_from else None
        if config is not None:        # its precision on this device (bf16 on Turing...)
            from musicbrain_cli.training.objective import resolve_device, resolve_precision
            resolve_precision(config.train.precision, resolve_device(device))
        # before the data set is read or cached, which can take many minutes
        check_geometry(nproc_per_node=nproc_per_node, nnodes=nnodes, node_rank=node_rank,
                       rdzv_endpoint=rdzv_endpoint)
        # a run folder that holds another run (or, resumed, none) is the caller's to fix,
        # as refit-heads' and data merge's output folders are: status 2, before any work.
        # Checked where the trainer checks it before writing: by the process that launches
        # node 0's workers (under torchrun, or on another node, rank 0 may have written it)
        from musicbrain_cli.training import distributed
        from musicbrain_cli.training.trainer import check_out_dir
        if node_rank == 0 and not distributed.launched_externally():
            check_out_dir(Path(out_dir), resume=bool(resume_dir))
    try:
        summary = run_training(
            data_dir, out_dir, config=config, resume=bool(resume_dir), device=device,
            nproc_per_node=nproc_per_node, nnodes=nnodes, node_rank=node_rank,
            rdzv_endpoint=rdzv_endpoint, progress=RichProgress(),
        )
    except KeyboardInterrupt:
        _fail("interrupted; " + _resume_hint(Path(out_dir)), 130)
    if not summary or summary.get("stopped"):
        return  # not the primary rank, or the stop_after_steps hook fired
    m = summary["metrics"]
    fmt = lambda v: "n/a" if v is None else f"{v:.4f}"  # noqa: E731
    _echo(f"trained {summary['epochs']} epochs ({summary['global_step']} steps); "
          f"best epoch {summary['best_epoch']}")
    _echo(f"val mAP {fmt(m.get('map_macro'))}  detection ROC-AUC "
          f"{fmt(m.get('detection_roc_auc'))}  temperature "
          f"{summary['calibration']['temperature']:.3f}")
    if summary.get("model_dir"):
        # Operating point, out-of-domain statistics and error rates with intervals, measured
        # on the held-out splits and written into the model card (training/finalize.py).
        from musicbrain_cli.training.finalize import finalize_model, summary_lines

        card = finalize_model(summary["model_dir"], data_dir, progress=RichProgress())
        for line in summary_lines(card):
            _echo(line)
    _echo(f"model: {summary['model_dir']}")
    _echo(f"metrics: {Path(out_dir) / 'metrics.csv'}")


def _recorded_data(run) -> str | None:
    """The data set folder a run's last checkpoint records, where it still is a folder."""
    from pathlib import Path

    from musicbrain_cli.training.trainer import read_state

    try:
        _, meta = read_state(run / "checkpoints" / "last.safetensors")
    except Exception:  # noqa: BLE001  (none yet, or unreadable: nothing recorded)
        return None
    path = (meta.get("data") or {}).get("path") if isinstance(meta.get("data"), dict) else None
    return path if isinstance(path, str) and Path(path).is_dir() else None


def _resume_hint(run) -> str:
    """What an interrupted run kept, and how to go on (session 27 audit: it said only
    'interrupted')."""
    from musicbrain_cli.training.trainer import read_state

    last = run / "checkpoints" / "last.safetensors"
    try:
        _, meta = read_state(last)
    except Exception:  # noqa: BLE001  (none yet, or unreadable: nothing to resume from)
        return (f"no checkpoint was written yet: remove {str(run)!r} (or choose another "
                "folder) and start again")
    where = (f"epoch {meta['epoch'] + 1}, step {meta['step_in_epoch']} of it"
             if meta.get("step_in_epoch") else f"the end of epoch {meta['epoch']}")
    # the command as it must be typed, the folder quoted (review of session 45: the hint
    # printed failed; --resume now takes the data set the run recorded)
    return (f"the last checkpoint ({last}) holds the run at {where} (global step "
            f"{meta.get('global_step')}); `musicbrain train --resume {shlex.quote(str(run))}` "
            "continues from it")


@contextlib.contextmanager
def _staged_output(out_dir):
    """A fresh hidden folder beside ``out_dir`` that becomes ``out_dir`` only when the block
    finishes: an interrupted or failed refit then leaves no model whose card describes other
    weights (it is not finalized until the end). ``out_dir`` must be new or empty."""
    import shutil
    import tempfile
    from pathlib import Path

    out = Path(out_dir).resolve()       # '-o .' has no name of its own to stage beside
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        _fail(f"output folder {str(out_dir)!r} is not empty", EXIT_USAGE)
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    stage.chmod(0o777 & ~umask)         # mkdtemp's 0700 would outlive the rename
    try:
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    if out.exists():
        out.rmdir()
    os.replace(stage, out)


@main.command("refit-heads")
@click.option("--data", "data_dir", required=True,
              type=click.Path(exists=True, file_okay=False, readable=True),
              help="The data set the model was trained on (its feature cache is built when missing).")
@click.option("--model", "model_name", required=True,
              help="Model folder (e.g. RUN/model) or shipped model name.")
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for the new model (must be new or empty).")
@click.option("--style-bands", type=click.IntRange(0, 64), default=None,
              help="Frequency bands the style heads read (0: the global embedding). "
                   "Default: as the input model.")
@click.option("--add-labels", is_flag=True,
              help="Style heads: give the style labels --data carries and the model lacks (an "
                   "enlarged corpus, e.g. MusicNet's composers) new rows, fitted like the "
                   "others; the new model's labels are the data set's.")
@click.option("--detection", is_flag=True,
              help="Re-fit the source (AI/human) head instead of the style heads; --data may "
                   "carry more labels than the model (an enlarged corpus).")
@click.option("--balance-by", default="instrumentation", show_default=True,
              help="With --detection: weigh human and AI windows alike within each value of "
                   "this style group ('none': no balancing).")
@click.option("--weight", "weights", multiple=True, metavar="GROUP/LABEL=W",
              help="With --detection: windows carrying this label count W times "
                   "(e.g. generator/notagen-small-ft=3); repeatable.")
@handle_errors
def refit_heads(data_dir, model_name, out_dir, style_bands, add_labels, detection, balance_by,
                weights) -> None:
    """Re-fit a trained model's style heads (or, with --detection, its source head) to
    convergence on its frozen embeddings.

    Style: one L2 logistic regression per style label on the standardised training-window
    features, its strength chosen on validation style mAP. With --style-bands N the style
    heads read the fused map pooled over N frequency bands instead of the global embedding.
    The backbone and the source (AI/human) head are kept bit for bit; the new model is then
    finalized (operating point, out-of-domain statistics and error rates measured again).

    Detection: one L2 logistic regression AI vs human on the global embedding, balanced
    within each instrumentation (--balance-by) so that a style only one side holds cannot
    stand in for the source. Everything else is kept bit for bit, the out-of-domain
    statistics included; the operating point and the error rates are measured again on
    --data's validation and test splits.
    """
    from musicbrain_cli.progress import RichProgress
    from musicbrain_cli.training.finalize import finalize_model, summary_lines
    from musicbrain_cli.training.heads import refit_detection_head, refit_style_heads

    if not detection and (weights or balance_by != "instrumentation"):
        _fail("--weight and --balance-by go with --detection", EXIT_USAGE)
    with _usage_errors():               # a model that is not there: the caller's to fix
        from musicbrain_cli.model.checkpoint import resolve_model
        resolve_model(model_name)
    if detection:
        if add_labels:
            _fail("--add-labels goes with the style heads, not --detection", EXIT_USAGE)
        if style_bands is not None:
            _fail("--style-bands goes with the style heads, not --detection", EXIT_USAGE)
        label_weights = {}
        for item in weights:
            label, sep, value = item.partition("=")
            try:
                label_weights[label.strip()] = float(value)
            except ValueError:
                _fail(f"--weight {item!r}: expected GROUP/LABEL=NUMBER", EXIT_USAGE)
            if not sep:
                _fail(f"--weight {item!r}: expected GROUP/LABEL=NUMBER", EXIT_USAGE)
        with _staged_output(out_dir) as stage:
            record = refit_detection_head(model_name, data_dir, stage, label_weights=label_weights,
                                          balance_by=None if balance_by == "none" else balance_by,
                                          progress=RichProgress())
            _echo(f"detection head re-fitted on {record['fit_windows']} windows, C={record['c']}, "
                  f"val ROC-AUC {record['val_roc_auc_before']:.4f} -> "
                  f"{record['val_roc_auc_by_c'][str(record['c'])]:.4f}")
            card = finalize_model(stage, data_dir, refit_ood=False, progress=RichProgress())
        for line in summary_lines(card):
            _echo(line)
        _echo(f"model: {out_dir}")
        return

    with _staged_output(out_dir) as stage:
        record = refit_style_heads(model_name, data_dir, stage, style_bands=style_bands,
                                   add_labels=add_labels, progress=RichProgress())
        before = record["val_style_map_before"]
        _echo(f"style heads re-fitted: {len(record['labels_refit'])} labels, C={record['c']}, "
              f"style bands {record['style_bands']}, "
              f"val style mAP {'n/a' if before is None else f'{before:.4f}'} -> "
              f"{record['val_style_map_shared_by_c'][str(record['c'])]:.4f}"
              + (f" over the model's labels, {record['val_style_map_by_c'][str(record['c'])]:.4f}"
                 f" with {len(record['labels_added'])} added" if record["labels_added"] else ""))
        card = finalize_model(stage, data_dir, progress=RichProgress())
    for line in summary_lines(card):
        _echo(line)
    _echo(f"model: {out_dir}")


@main.command()
@click.option("--data", "data_dir", required=True,
              type=click.Path(exists=True, file_okay=False, readable=True), help="Data set folder.")
@click.option("--split", type=click.Choice(["train", "val", "test", "test_xsf"]), default="test",
              show_default=True, help="test_xsf: the held-out-SoundFont split of the reference corpus.")
@click.option("--model", "model_name", default="default", show_default=True,
              help="Shipped model name or checkpoint folder.")
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for metrics.json, metrics.md, predictions.csv and figures.")
@click.option("--explain-windows", type=click.IntRange(min=0), default=32, show_default=True,
              help="Windows explained with FM-G-CAM for fidelity and alignment: the first window of "
                   "clips spaced evenly over the split (0: none).")
@click.option("--figures", "n_figures", type=click.IntRange(min=0), default=4, show_default=True,
              help="FM-G-CAM example figures to write.")
@click.option("--substrate", type=click.Choice(["floor", "noise", "blur"]), default="floor",
              show_default=True, help="What deleted spectrogram cells become.")
@click.option("--no-occlusion", is_flag=True, help="Skip the occlusion baseline (the slow part on CPU).")
@click.option("--cam-weighting", type=click.Choice(["channel", "cell"]), default="channel",
              show_default=True,
              help="FM-G-CAM's weights: channel (Grad-CAM's gradient averaged per channel, as "
                   "published and as scan uses) or cell (gradient x activation per cell, HiResCAM).")
@click.option("--cam-refine", type=click.Choice(["none", "gradient-input", "gradient-blur"]), default=None,
              help="FM-G-CAM's resolution: none (the fusion layer's grid, 0.32 s columns), "
                   "gradient-input (refined at the spectrogram's 20 ms grid by gradient x input above "
                   "the window's floor) or gradient-blur (the same above its blurred copy: credits "
                   "fine harmonic and onset structure). Default: FM-G-CAM's.")
@click.option("--cam-destripe", type=click.IntRange(min=0), default=None, metavar="FRAMES",
              help="Period of the network's stride pattern removed from the refined map "
                   "(0: keep it, the map before session 18). Default: FM-G-CAM's (32).")
@click.option("--event-clips", type=click.IntRange(min=0), default=16, show_default=True,
              help="Synthetic clips (an instrument entering at a known time) for the "
                   "rhythmic-event test (0: skip it).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              help="Where the model runs: auto picks CUDA when available, else the CPU.")
@click.option("--overwrite", is_flag=True,
              help="Replace an earlier run's metrics.json (and its other outputs) in OUT.")
@click.option("--robustness", is_flag=True,
              help="Instead: the robustness table (re-encoding, resampling, gain, noise, pitch, "
                   "stretch, trims, held-out SoundFont) -> OUT/robustness.json and .md.")
@click.option("--transforms", default=None, metavar="KEY,KEY",
              help="With --robustness: only these transforms (default: all; keys in "
                   "musicbrain_cli/evaluate/robustness.py).")
@click.option("--max-clips", type=click.IntRange(min=1), default=None,
              help="With --robustness: at most N clips per split (seeded, balanced human/AI).")
@click.option("--update-card", is_flag=True,
              help="With --robustness: store the rows in the model card, so scan reports show "
                   "them (each replaces the stored row of its transform and split; other rows "
                   "are kept).")
@handle_errors
def evaluate(data_dir, split, model_name, out_dir, explain_windows, n_figures, substrate,
             no_occlusion, cam_weighting, cam_refine, cam_destripe, event_clips, device, overwrite,
             robustness, transforms, max_clips, update_card) -> None:
    """Measure a model: mAP, explanation fidelity, harmonic and onset alignment; or, with
    --robustness, detection after re-encoding and other transformations."""
    from pathlib import Path

    if (transforms or max_clips or update_card) and not robustness:
        _fail("--transforms, --max-clips and --update-card go with --robustness", EXIT_USAGE)
    if robustness:
        _evaluate_robustness(data_dir, split, model_name, out_dir, device, overwrite,
                             transforms, max_clips, update_card)
        return
    from musicbrain_cli.evaluate.split import RUN_OUTPUTS, evaluate as run_evaluation

    # every file the run would replace, not metrics.json alone: a metrics.md or fmgcam/ left
    # there was refused by the library after the model loaded, with exit status 1
    there = [name for name in RUN_OUTPUTS if os.path.lexists(Path(out_dir) / name)]
    if there and not overwrite:
        _fail(f"{str(Path(out_dir) / there[-1])!r} exists (use --overwrite to replace it)",
              EXIT_USAGE)
    from musicbrain_cli.model.inference import Detector
    from musicbrain_cli.progress import RichProgress
    from musicbrain_cli.data.dataset import Dataset

    dataset = Dataset.load(data_dir)
    with _usage_errors():             # a model or device named that is not there: status 2
        detector = Detector.from_pretrained(model_name, device=device)
    m = run_evaluation(dataset, detector, out_dir, split=split, explain_windows=explain_windows,
                       n_figures=n_figures, substrate=substrate, occlusion=not no_occlusion,
                       overwrite=overwrite, cam_weighting=cam_weighting, cam_refine=cam_refine,
                       cam_destripe=cam_destripe, event_clips=event_clips,
                       progress=RichProgress())
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    c = m["classification"]
    _echo(f"{m['clips_scored']}/{m['clips']} clips scored; mAP macro {fmt(c['map_macro'])}, "
          f"micro {fmt(c['map_micro'])}")
    if "detection" in m:
        r = m["detection"]["at_threshold"]
        _echo(f"detection ROC-AUC {fmt(m['detection']['roc_auc'])}; TPR {fmt(r['tpr'])}, "
              f"FPR {fmt(r['fpr'])} at {r['threshold']:.3f} (the threshold alone)")
        v = m["detection"].get("verdicts") or {}
        if v:
            _echo("content-line verdicts by the card's full rule (a scan's content_label): " + "; ".join(
                f"{t} clips {c['ai']} ai / {c['human']} human / {c['inconclusive']} inconclusive"
                for t, c in v.items()))
    if m.get("caution"):
        _echo(f"musicbrain: warning: {m['caution']}", err=True)
    for failure in m["failed"]:
        _echo(f"musicbrain: warning: {failure['clip_id']}: {failure['error']}", err=True)
    for failure in m.get("explain_failed") or ():
        _echo(f"musicbrain: warning: {failure['clip_id']}: scored, but not explained: "
              f"{failure['error']}", err=True)
    _echo(f"metrics: {Path(out_dir) / 'metrics.md'}")
    if m["failed"]:
        sys.exit(EXIT_FAILED)


def _evaluate_robustness(data_dir, split, model_name, out_dir, device, overwrite, transforms,
                         max_clips, update_card) -> None:
    from pathlib import Path

    from musicbrain_cli.evaluate.robustness import ROBUSTNESS_JSON

    if (Path(out_dir) / ROBUSTNESS_JSON).exists() and not overwrite:
        _fail(f"{str(Path(out_dir) / ROBUSTNESS_JSON)!r} exists (use --overwrite to replace it)",
              EXIT_USAGE)
    from musicbrain_cli.model.inference import Detector
    from musicbrain_cli.progress import RichProgress
    from musicbrain_cli.evaluate.robustness import (evaluate_robustness, measured,
                                                    update_card as store, write_robustness)

    keys = [k.strip() for k in transforms.split(",") if k.strip()] if transforms else None
    with _usage_errors():
        if keys is not None:        # a mistyped key is the caller's to fix: status 2, at once
            from musicbrain_cli.evaluate.robustness import _resolve
            _resolve(keys)
        detector = Detector.from_pretrained(model_name, device=device)
    from musicbrain_cli.data.dataset import MANIFEST
    from musicbrain_cli.files import sha256_file

    # which data and which card the rows describe: recorded in robustness.json as in the card
    measured_on = {"data_set": str(Path(data_dir).resolve()),
                   "manifest_sha256": sha256_file(Path(data_dir) / MANIFEST),
                   "max_clips_per_split": max_clips}
    rows = evaluate_robustness(data_dir, detector, split=split, transforms=keys,
                               max_clips=max_clips, progress=RichProgress())
    files = {f"{k}_sha256": v for k, v in (getattr(detector, "file_sha256", None) or {}).items()}
    _, md = write_robustness(rows, out_dir, model={**detector.card, **files},
                             measured_on=measured_on, overwrite=overwrite)
    pct = lambda v: "n/a" if v is None else f"{100 * v:.1f}%"  # noqa: E731
    for r in rows:
        auc = "n/a" if r["roc_auc"] is None else f"{r['roc_auc']:.3f}"
        _echo(f"{r['transform']} [{r['split']}, n={r['n_human']}+{r['n_ai']}]: ROC-AUC {auc}, "
              f"FPR {pct(r['fpr'])}, TPR {pct(r['tpr'])}, "
              f"ai verdicts on human {pct(r['ai_verdicts_on_human'])}")
        if r["failed"]:
            _echo(f"musicbrain: warning: {r['transform']}: {r['note']}", err=True)
    if update_card:
        had = len(detector.card.get("robustness") or ())
        card = store(detector.model_dir, rows, weights_sha256=detector.card.get("weights_sha256"),
                     measured_on=measured_on)
        now = [r for r in rows if measured(r)]
        kept = len(card["robustness"]) - len(now)
        _echo(f"model card updated: {Path(detector.model_dir) / 'model_card.json'} ({len(now)} "
              f"row(s) measured now, {kept} of the {had} stored row(s) kept from earlier runs"
              + (f"; {len(rows) - len(now)} row(s) that measured no clip not stored"
                 if len(now) < len(rows) else "") + ")")
    _echo(f"robustness: {md}")
    if not any(measured(r) for r in rows):
        # an empty table and exit 0 read as a run that measured (review of session 47: the
        # held-out SoundFont row on a data set without the test_xsf split)
        _echo(f"musicbrain: error: no transform measured any clip of split {split!r} "
              "(is that split in the data set?)", err=True)
        sys.exit(EXIT_FAILED)
    if any(r["failed"] for r in rows):
        sys.exit(EXIT_FAILED)


# --- data ---------------------------------------------------------------------------------


@main.group()
def data() -> None:
    """Build, merge and cache training data sets."""


def _render_options(func):
    """Options shared by the data set builders (rendering, clips, seed)."""
    opts = [
        click.option("-o", "--output", "output", required=True, type=click.Path(file_okay=False),
                     help="Data set folder to write (rerun to resume)."),
        click.option("--soundfont", "soundfonts", multiple=True,
                     help="SoundFont name or .sf2/.sf3 path (repeatable; default: all found)."),
        click.option("--seed", type=int, default=0, show_default=True,
                     help="Seed of splits and humanisation."),
        click.option("--limit", type=click.IntRange(min=1), default=None,
                     help="Build only the first N pieces."),
        click.option("--clip-seconds", type=click.FloatRange(min=1.0), default=30.0,
                     show_default=True, help="Clip length; pieces are cut into clips."),
        click.option("--sample-rate", type=click.IntRange(8000, 192000), default=22050,
                     show_default=True, help="Sample rate of the rendered clips (Hz)."),
        click.option("--humanize", nargs=4, type=float, default=None,
                     metavar="TEMPO TIMING_S VELOCITY REVERB",
                     help="Seeded jitter: tempo fraction, timing s.d. (s), velocity s.d., "
                          "reverb level. Off by default."),
    ]
    for opt in reversed(opts):
        func = opt(func)
    return func


def _render_kwargs(soundfonts, seed, limit, clip_seconds, sample_rate, humanize) -> dict:
    from musicbrain_cli.data.render import Humanize, get_soundfont

    return {"soundfonts": [get_soundfont(s) for s in soundfonts] or None, "seed": seed,
            "limit": limit, "clip_s": clip_seconds, "sample_rate": sample_rate,
            "humanize": Humanize(*humanize) if humanize else None}


def _summary(summary: dict, output: str) -> None:
    dropped = (f", {summary['dropped_clips']} earlier clips removed"
               if summary.get("dropped_clips") else "")
    _echo(f"{output}: {summary['clips']} clips ({summary['new_clips']} new{dropped}), "
          f"{summary['skipped']} items skipped (see build_report.json)")
    _shortcut_warnings(output)


def _shortcut_warnings(output: str) -> None:
    """Say which style labels of the data set just written are a shortcut for the source."""
    import json
    from pathlib import Path

    from musicbrain_cli.data.dataset import CARD_JSON, shortcut_risks

    try:
        card = json.loads((Path(output) / CARD_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    balance = card.get("source_balance") or {}
    for group, label, c in shortcut_risks(balance):
        _echo(f"warning: {group} {label!r} is {c['flag']} in {balance['split']} "
              f"({c['human']} human, {c['ai']} ai clips): a detector may learn the style "
              "instead of the source (card.md, 'Source balance')", err=True)


@data.command("musicnet")
@click.argument("root", type=click.Path(exists=True, file_okay=False))
@_render_options
@click.option("--timing", type=click.Choice(["score", "performance"]), default="score",
              show_default=True, help="Notes on the score grid, or at the recorded times.")
@handle_errors
def data_musicnet(root, output, soundfonts, seed, limit, clip_seconds, sample_rate, humanize,
                  timing) -> None:
    """Build a data set from a MusicNet tree (note labels rendered, recordings unused)."""
    from musicbrain_cli.progress import RichProgress
    from musicbrain_cli.data.musicnet import build_musicnet_dataset

    summary = build_musicnet_dataset(
        root, output, timing=timing, progress=RichProgress(),
        **_render_kwargs(soundfonts, seed, limit, clip_seconds, sample_rate, humanize))
    _summary(summary, output)


@data.command("notagen")
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@_render_options
@click.option("--generator", default=None,
              help="Generator label for every file (else generators.csv, batch folder names, "
                   "or notagen-small-ft for RhythGen's layout).")
@click.option("--labels", "labels_csv", default=None,
              type=click.Path(exists=True, dir_okay=False),
              help="CSV path,period,composer,instrumentation,generator (path relative to "
                   "DIRECTORY; empty cell = unknown). Its rows beat every other label source.")
@handle_errors
def data_notagen(directory, output, soundfonts, seed, limit, clip_seconds, sample_rate,
                 humanize, generator, labels_csv) -> None:
    """Build a data set from NotaGen ABC output.

    Labels from the prompt lines in each file, the demo's file names, folders named after
    a NotaGen prompt (Baroque_BachJohannSebastian_Choral/), or --labels; RhythGen's
    Lieder/RAG/RAG-RH layout is recognised. build_report.json says where each came from.
    """
    from musicbrain_cli.progress import RichProgress
    from musicbrain_cli.data.notagen import build_notagen_dataset

    summary = build_notagen_dataset(
        directory, output, generator=generator, labels_csv=labels_csv,
        progress=RichProgress(),
        **_render_kwargs(soundfonts, seed, limit, clip_seconds, sample_rate, humanize))
    _summary(summary, output)
    for key, text in NOTAGEN_WARNINGS:
        if summary.get(key):
            _echo(f"warning: {summary[key]} {text}")


#: What `data notagen` warns of, by the build summary's count (keys) and the words after it.
NOTAGEN_WARNINGS = (
    ("not_notagen_prompts", "piece(s) carry a period / composer / instrumentation that is none "
     "of NotaGen's prompts (kept as stated; check them: build_report.json, not_notagen_prompts)"),
    ("composers_masked", "piece(s) name a composer that is unknown or ambiguous in NotaGen's "
     "prompt list: kept as written, masked, never mapped to another person (build_report.json, "
     "unknown_composers / ambiguous_composers)"),
    ("composers_by_initials", "piece(s) name their composer by initials, read as the one listed "
     "composer they fit; check them (build_report.json, composers_matched_by_initials)"),
    ("labels_rows_not_found", "--labels row(s) name no ABC file that was built "
     "(build_report.json, labels_csv.rows_not_found)"),
    ("generator_rows_not_found", "generators.csv row(s) name no ABC file found: they label "
     "nothing (build_report.json, generators_csv.rows_not_found)"),
)


@data.command("merge")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False),
              help="Folder of the merged data set.")
@click.option("--copy", is_flag=True, help="Copy audio instead of hard-linking it.")
@click.option("--on-conflict", type=click.Choice(["error", "warn"]), default="error",
              show_default=True, help="A work in different splits: refuse, or keep the first.")
@handle_errors
def data_merge(inputs, output, copy, on_conflict) -> None:
    """Merge data sets into one with a combined taxonomy.

    OUTPUT must be new, empty, or an earlier merge of the same inputs (rerun to resume);
    a folder holding another data set or other files is refused (exit status 2).
    """
    from musicbrain_cli.errors import InputError
    from musicbrain_cli.progress import RichProgress
    from musicbrain_cli.data.merge import merge_datasets

    try:
        summary = merge_datasets(list(inputs), output, link=not copy, on_conflict=on_conflict,
                                 progress=RichProgress())
    except InputError as exc:         # an output folder that is not the merge's to replace
        _fail(str(exc), EXIT_USAGE)
    _echo(f"{output}: {summary['clips']} clips, {summary['renamed']} clip ids renamed, "
          f"{summary['conflicts']} split conflicts")
    _shortcut_warnings(output)


@data.command("cache")
@click.argument("dataset", type=click.Path(exists=True, file_okay=False))
@click.option("--model-config", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Model config (JSON or YAML; its front_end, or model.front_end, is used). "
                   "Default: the default front end.")
@click.option("-o", "--output", default=None, type=click.Path(file_okay=False),
              help="Cache folder (default: DATASET/cache/<config hash>).")
@click.option("--device", default="cpu", show_default=True,
              help="Torch device that computes the features (cpu, cuda, cuda:1 ...).")
@handle_errors
def data_cache(dataset, model_config, output, device) -> None:
    """Compute the front-end feature cache of a data set."""
    from musicbrain_cli.progress import RichProgress
    from musicbrain_cli.data.cache import build_cache, front_end_from_file

    from musicbrain_cli.features import resolve_device

    with _usage_errors():             # the model configuration and the device named: status 2
        front_end = front_end_from_file(model_config)
        resolve_device(device)
    out = build_cache(dataset, front_end, out=output, device=device, progress=RichProgress())
    _echo(f"feature cache: {out}")


@data.command("build-reference")
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False),
              help="Data set folder to write (an unfinished build there is resumed).")
@click.option("--size", type=click.Choice(["tiny", "small", "medium", "full"]), default="full",
              show_default=True,
              help="tiny: a few clips (the determinism test); small: every label once, "
                   "minutes, for tests/CI; medium: about 3,500 clips of 12 s (16-46 min on "
                   "two cores); full: the default model's training set.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Same seed, same manifest and same audio.")
@click.option("--retrain-generators", is_flag=True,
              help="Retrain the shipped generators (into the package assets) before building.")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None,
              help="Parsed-score cache (default: $XDG_CACHE_HOME/musicbrain/reference-scores, "
                   "~/.cache when unset).")
@click.option("--musicnet", type=click.Path(exists=True, file_okay=False), default=None,
              help="MusicNet tree whose score MIDIs join the human side (default: "
                   "../shared/data/musicnet beside the working folder or the checkout, "
                   "when it exists).")
@click.option("--no-musicnet", is_flag=True, help="Leave MusicNet out even when found.")
@click.option("--rhythgen", type=click.Path(exists=True, file_okay=False), default=None,
              help="RhythGen output tree (Lieder/, RAG/, RAG-RH/) whose ABC pieces join the AI "
                   "side as notagen-small-ft [default: ../shared/data/notagen-outputs beside "
                   "the working folder or the checkout, when present].")
@click.option("--no-rhythgen", is_flag=True, help="Leave RhythGen out even when found.")
@click.option("--human-scores", "human_scores", multiple=True,
              type=click.Path(exists=True, file_okay=False),
              help="Human scores in the styles RhythGen writes, joining the human side: an "
                   "OpenScore Lieder tree (holding scores/) or a folder with labels.csv "
                   "(path, composer, period, instrumentation[, work, title]); repeatable "
                   "[default: ../shared/data/openscore-lieder and each labelled folder in "
                   "../shared/data/human-scores/, when present].")
@click.option("--no-human-scores", is_flag=True,
              help="Leave the human-style scores out even when found.")
@click.option("--jobs", type=click.IntRange(min=1), default=None,
              help="ABC pieces and human scores parsed at once [default: the CPU count].")
@handle_errors
def data_build_reference(output, size, seed, retrain_generators, cache_dir, musicnet,
                         no_musicnet, rhythgen, no_rhythgen, human_scores, no_human_scores,
                         jobs) -> None:
    """Build the built-in reference corpus (real scores vs machine-made music)."""
    from musicbrain_cli.progress import RichProgress
    from musicbrain_cli.data.reference import build_reference
    from musicbrain_cli.data.reference.musicnet import find_musicnet
    from musicbrain_cli.data.notagen import RHYTHGEN_FAMILIES
    from musicbrain_cli.data.reference.rhythgen import find_rhythgen, is_rhythgen_tree
    from musicbrain_cli.data.reference import humanstyles as hs

    if rhythgen and not is_rhythgen_tree(rhythgen):
        # as --musicnet refuses a folder that is not MusicNet: a mistyped path must not
        # build a corpus without the AI side the user asked for
        raise click.UsageError(f"{rhythgen!r} is not a RhythGen tree: it holds none of "
                               f"{', '.join(f + '/' for f in RHYTHGEN_FAMILIES)}")
    if musicnet and no_musicnet:
        raise click.UsageError("--musicnet and --no-musicnet contradict each other")
    if rhythgen and no_rhythgen:
        raise click.UsageError("--rhythgen and --no-rhythgen contradict each other")
    if human_scores and no_human_scores:
        raise click.UsageError("--human-scores and --no-human-scores contradict each other")
    for path in human_scores:
        try:
            hs.check_source(path)
        except MusicBrainError as exc:
            raise click.UsageError(str(exc)) from None
    musicnet = None if no_musicnet else (musicnet or find_musicnet())
    rhythgen = None if no_rhythgen else (rhythgen or find_rhythgen())
    styles = [] if no_human_scores else (list(human_scores) or hs.find_sources())
    summary = build_reference(output, size=size, seed=seed,
                              retrain_generators=retrain_generators, cache_dir=cache_dir,
                              musicnet=musicnet, rhythgen=rhythgen, human_styles=styles,
                              jobs=jobs, progress=RichProgress())
    by_source = summary["clips_by_source"]
    _echo(f"{output}: {summary['clips']} clips ({by_source['human']} human, "
          f"{by_source['ai']} ai), {summary['hours']:.2f} h, {summary['skipped']} items "
          f"skipped (see build_report.json); held-out SoundFont "
          f"{summary['held_out_soundfont']!r} in split "
          f"{summary['cross_renderer_split']!r}")
    mn = summary["musicnet"]
    _echo(f"MusicNet: {mn['human_clips']} human clips from {mn['pieces']} pieces "
          f"({mn['works']} works) of {mn['root']}" if mn["used"] else
          "MusicNet: not used (none found; give --musicnet PATH)" if not no_musicnet
          else "MusicNet: not used (--no-musicnet)")
    rg = summary["rhythgen"]
    _echo(f"RhythGen: {rg['clips']} ai clips from {rg['pieces_selected']} pieces "
          f"({rg['pieces_failed']} failed to parse, {rg['pieces_too_short']} too short; "
          f"held-out configurations {', '.join(rg['held_out_configs'])}) of {rg['root']}"
          if rg["used"] else "RhythGen: not used (none found; give --rhythgen PATH)"
          if not no_rhythgen else "RhythGen: not used (--no-rhythgen)")
    st = summary["human_styles"]
    if st.get("used"):
        for src in st["sources"]:
            _echo(f"Human styles: {src['scores_in_corpus']} of {src['scores_found']} scores "
                  f"in the corpus ({src['scores_selected']} selected at size {size!r}; "
                  f"{src['left_out']} left out unread, {src['scores_without_clips']} shorter "
                  f"than a clip) from {src['root']}")
        _echo(f"Human styles: {st['human_clips']} human clips, by instrumentation "
              + ", ".join(f"{k} {v}" for k, v in st["clips_by_instrumentation"].items())
              + (f"; {len(st['unmatched_composers'])} composer names matched no known "
                 "composer and are left unlabelled (reference.json)"
                 if st["unmatched_composers"] else ""))
    else:
        _echo("Human styles: not used (--no-human-scores)" if no_human_scores else
              "Human styles: not used (no OpenScore Lieder or labelled score folder found; "
              "give --human-scores PATH)" if not st.get("sources") else
              "Human styles: not used at this size")
    for inst, b in ((rg.get("balance") or {}).get("by_instrumentation") or {}).items():
        _echo(f"RhythGen {inst}: {b['kept']} training/validation clips kept, {b['dropped']} "
              f"dropped (at most {b['cap']}: the human clips of {inst} times "
              f"{rg['balance']['ratio']:g})")
    _shortcut_warnings(output)


if __name__ == "__main__":
    main()
