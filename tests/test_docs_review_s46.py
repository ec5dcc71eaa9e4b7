"""Review of session 46 (docs and CLI): what the README and --help promise a user, held to
the commands' behaviour."""

from click.testing import CliRunner

from musicbrain_cli.cli import EXIT_USAGE, main


def test_an_output_folder_holding_earlier_results_is_a_usage_error_exit_2(tmp_path):
    """An output folder the command refuses to overwrite is the caller's to fix (choose
    another, or --overwrite / --resume), as refit-heads' and data merge's are: exit status 2,
    not 1, which says that an operation was tried and failed. train and evaluate said 1."""
    data = tmp_path / "data"
    data.mkdir()
    run = tmp_path / "run"
    run.mkdir()
    (run / "notes.txt").write_text("another run's file\n")
    res = CliRunner().invoke(main, ["train", "--data", str(data), "-o", str(run)])
    assert res.exit_code == EXIT_USAGE, res.output
    assert "not empty" in res.output and "Traceback" not in res.output
    assert sorted(p.name for p in run.iterdir()) == ["notes.txt"]

    # --resume of a folder holding no checkpoint: nothing to resume, the caller's to fix
    res = CliRunner().invoke(main, ["train", "--data", str(data), "--resume", str(run)])
    assert res.exit_code == EXIT_USAGE, res.output
    assert "cannot resume" in res.output

    out = tmp_path / "eval"
    out.mkdir()
    (out / "metrics.json").write_text("{}\n")
    res = CliRunner().invoke(main, ["evaluate", "--data", str(data), "-o", str(out)])
    assert res.exit_code == EXIT_USAGE, res.output
    assert "--overwrite" in res.output
    assert (out / "metrics.json").read_text() == "{}\n"

    (out / "robustness.json").write_text("{}\n")
    res = CliRunner().invoke(main, ["evaluate", "--data", str(data), "-o", str(out), "--robustness"])
    assert res.exit_code == EXIT_USAGE, res.output
    assert "--overwrite" in res.output


def test_verify_with_a_key_folder_or_trust_store_that_is_none_is_a_usage_error(tmp_path,
                                                                             monkeypatch):
    """The README: verify exits 1 for INVALID or UNTRUSTED reports, 2 on usage errors. A
    --keys folder holding no key, or a trust store that is not one, verified nothing; it
    exited 1, which a script reads as 'the report failed verification'."""
    monkeypatch.setenv("MUSICBRAIN_TRUST_STORE", str(tmp_path / "none-yet.json"))
    report = tmp_path / "report"
    report.mkdir()
    empty = tmp_path / "keys"
    empty.mkdir()
    res = CliRunner().invoke(main, ["verify", str(report), "--keys", str(empty)])
    assert res.exit_code == EXIT_USAGE, res.output
    assert "no public key" in res.output and "INVALID" not in res.output

    store = tmp_path / "store.json"
    store.write_text("not a trust store\n")
    store.chmod(0o600)
    res = CliRunner().invoke(main, ["verify", str(report), "--trust-store", str(store)])
    assert res.exit_code == EXIT_USAGE, res.output
    assert "trust store" in res.output and "INVALID" not in res.output


def test_a_file_of_a_report_folder_under_reproduce_gets_the_folders_pdf_layout_check(tmp_path):
    """The README: a file of a report folder (its report.html) is verified with its folder,
    and --reproduce lays each PDF out again, so a page replaced before signing is found;
    "nothing is VALID for a check it was asked for and could not make". Given report.html
    instead of the folder, the layout check was never made: a PDF laid out from other text
    under the honest /ID, signed and sealed, verified VALID under --reproduce."""
    import hashlib
    import json
    from importlib.metadata import version

    import numpy as np

    from musicbrain_cli.report import init_keys, verify_path, write_manifest, write_track_report
    from musicbrain_cli.report._io import sha256_file
    from musicbrain_cli.report.pdf import html_to_pdf
    from musicbrain_cli.report.schema import example_track
    from musicbrain_cli.report.signing import sign_pdf
    from musicbrain_cli.report.writer import _analysis_time

    keys = init_keys(tmp_path / "keys")
    audio = tmp_path / "take.flac"
    audio.write_bytes(np.random.default_rng(3).integers(0, 256, 2048, dtype=np.uint8).tobytes())
    track = example_track(n_windows=2, file_name=audio.name, sha256=sha256_file(audio))
    track["explanations"] = []
    track["software"]["weasyprint"] = version("weasyprint")      # as a scan records it
    folder = tmp_path / "report"
    write_track_report(track, {}, folder, formats=("pdf", "html", "json"), keys=keys)
    write_manifest(folder, audio, track["model"]["weights_sha256"], keys)

    honest = verify_path(folder / "report.html", audio=audio, trusted=keys.public(),
                         relay_pdf=True)
    assert honest.ok, honest.checks
    assert [c.status for c in honest.checks if c.name == "layout report.pdf"] == ["pass"]

    html = (folder / "report.html").read_text(encoding="utf-8")
    other = html_to_pdf(html.replace("</body>", "<p>AI GENERATED</p></body>"),
                        identifier=hashlib.sha256(html.encode()).digest()[:16],
                        source_date=_analysis_time(json.loads((folder / "result.json").read_text())))
    (folder / "report.pdf").write_bytes(sign_pdf(other, keys))
    write_manifest(folder, audio, track["model"]["weights_sha256"], keys)
    forged = verify_path(folder / "report.html", audio=audio, trusted=keys.public(),
                         relay_pdf=True)
    assert not forged.ok
    assert "layout report.pdf" in {c.name for c in forged.failures}, forged.checks


def test_verify_reproduce_of_a_figure_reproduces_its_report_folder(tmp_path, tiny_model_dir):
    """A file of a report folder at any depth is verified with its folder (verify prints so
    for figures/timeline.png); under --reproduce the CLI re-ran the analysis of the folder
    the file sits in, figures/, found no result.json there and called a genuine report
    INVALID."""
    from conftest import SR, make_tone
    from musicbrain_cli.audio.encode import encode_audio
    from musicbrain_cli.model.inference import Detector
    from musicbrain_cli.scan.batch import ScanOptions, scan

    audio = tmp_path / "x.flac"
    encode_audio(audio, make_tone(6.0, 247.0), SR)
    det = Detector.from_pretrained(tiny_model_dir, device="cpu")
    scan([audio], tmp_path / "out", det, options=ScanOptions(formats=("html",)))
    (folder,) = [p for p in (tmp_path / "out").iterdir() if p.is_dir()]
    (figure,) = sorted((folder / "figures").glob("timeline*.png"))
    res = CliRunner().invoke(main, ["verify", str(figure), "--audio", str(audio), "--reproduce",
                                    "--model", str(tiny_model_dir)])
    assert "cannot read the recorded result" not in res.output, res.output
    assert "reproduce: every figure of the report came out the same" in res.output, res.output


def test_keys_init_refuses_days_for_a_certificate_it_does_not_make(tmp_path, monkeypatch):
    """README: '--days N sets the certificate's validity'. With --cert/--cert-key (or
    --pkcs12) the given certificate keeps its own validity, and --days was silently
    ignored (a 30-day request gave keys valid ten years). Like --name/--org, it is refused."""
    from musicbrain_cli.report import init_keys

    monkeypatch.setenv("MUSICBRAIN_TRUST_STORE", str(tmp_path / "store" / "trusted.json"))
    given = init_keys(tmp_path / "given")
    res = CliRunner().invoke(main, ["keys", "init", str(tmp_path / "new"), "--days", "30",
                                    "--cert", str(given.directory / "pdf_signer.cert.pem"),
                                    "--cert-key", str(given.directory / "pdf_signer.key.pem")])
    assert res.exit_code == EXIT_USAGE, res.output
    assert "--days" in res.output
    assert not (tmp_path / "new").exists()
    made = CliRunner().invoke(main, ["keys", "init", str(tmp_path / "own"), "--days", "30"])
    assert made.exit_code == 0, made.output


def test_scan_refuses_a_key_folder_it_would_not_use(tmp_path):
    """Every option a scan is given is used (its --tsa and --passphrase-env checks say so):
    '--keys DIR --unsigned' wrote unsigned reports and never looked at DIR, without a word;
    an examiner who named their key folder believed the reports signed."""
    audio_dir = tmp_path / "in"
    audio_dir.mkdir()
    res = CliRunner().invoke(main, ["scan", str(audio_dir), "-o", str(tmp_path / "out"),
                                    "--unsigned", "--keys", str(tmp_path / "keys")])
    assert res.exit_code == EXIT_USAGE, res.output
    assert "--keys" in res.output and "--unsigned" in res.output
    assert not (tmp_path / "out").exists()
