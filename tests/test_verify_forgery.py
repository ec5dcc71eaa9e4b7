"""A signer who is the adversary (review of the report checks): a signed report whose text,
figures or quoted records contradict what the analysis gives must not verify as reproduced,
and what verify could not check is said, never passed."""

import functools
import itertools
import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import SR, make_tone
from musicbrain_cli import __version__
from musicbrain_cli.audio.encode import encode_audio
from musicbrain_cli.cli import main
from musicbrain_cli.model.inference import Detector
from musicbrain_cli.report import init_keys, verify_path, write_manifest, write_track_report
from musicbrain_cli.report._io import sha256_file
from musicbrain_cli.report.figures import timeline_figure
from musicbrain_cli.report.html import visible
from musicbrain_cli.report.schema import example_track
from musicbrain_cli.report.writer import _timeline_png
from musicbrain_cli.scan.batch import ScanOptions, scan
from musicbrain_cli.scan.reproduce import REAL_AI, _analysis_models, reproduce


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    return init_keys(tmp_path_factory.mktemp("keys") / "k")


def _checks(result):
    return {c.name: c for c in result.checks}


def _sealed_example(tmp_path, keys, *, made_by: str):
    """A signed folder (PDF + HTML + JSON) of the schema's example track whose result.json
    claims MusicBrain ``made_by``, the forger's way to switch the rendering checks off."""
    audio = tmp_path / "take.flac"
    audio.write_bytes(np.random.default_rng(3).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    track = example_track(n_windows=4, file_name=audio.name, sha256=sha256_file(audio))
    track["software"]["musicbrain"] = made_by
    folder = tmp_path / "report"
    write_track_report(track, {}, folder, formats=("pdf", "html", "json"), keys=keys)
    write_manifest(folder, audio, track["model"]["weights_sha256"], keys)
    return folder, audio


def test_a_claimed_other_version_is_a_skip_said_plainly_and_fails_under_reproduce(tmp_path, keys):
    """Defect 1: changing software.musicbrain switched off the rendering, /ID and layout
    checks, silently under --reproduce."""
    folder, audio = _sealed_example(tmp_path, keys, made_by="0.0.1")
    plain = verify_path(folder, audio=audio, trusted=keys.public())
    checks = _checks(plain)
    assert plain.status == "VALID"           # the signer vouches; nothing re-derived says no
    assert checks["rendering"].status == "skip" and "0.0.1" in checks["rendering"].detail
    assert "not checked against result.json" in checks["rendering"].detail
    # the PDF's line is there, as a skip, not absent
    assert checks["rendering report.pdf"].status == "skip", plain.checks
    asked = verify_path(folder, audio=audio, trusted=keys.public(), relay_pdf=True)
    checks = _checks(asked)
    assert asked.status == "INVALID"
    assert checks["rendering"].status == "fail"
    assert checks["rendering report.pdf"].status == "fail"
    assert "--reproduce" in checks["rendering report.pdf"].detail


def test_the_pdf_id_line_says_only_the_id_was_compared(tmp_path, keys):
    """Defect 4: '[pass] rendering report.pdf: rendered from exactly the HTML...' was said
    when only the writer-chosen /ID was compared."""
    folder, audio = _sealed_example(tmp_path, keys, made_by=__version__)
    check = _checks(verify_path(folder, audio=audio, trusted=keys.public()))["rendering report.pdf"]
    assert check.status == "pass"
    assert check.detail == ("its /ID names the HTML that result.json renders; its pages were "
                            "not laid out again: use --reproduce")


def test_visible_never_shows_two_strings_alike():
    """Defect 5: a typed '\\u{202e}' showed as the escaped U+202E, and blank-looking
    characters passed through."""
    assert visible("a\\u{202e}b") != visible("a\u202eb")
    assert visible("C:\\x") == "C:\\u{005c}x"
    for ch in ("\u3164", "\u115f", "\u1160", "\uffa0", "\u2800", "\u034f", "\u2003", "\u00a0",
               "\u3000", "\u202f", "\ufe0f", "\U000e0100", "\u17b4", "\u180b", "\t"):
        assert visible(f"x{ch}y") == f"x\\u{{{ord(ch):04x}}}y", repr(ch)
    assert visible("Ünïcödé ♫ a b") == "Ünïcödé ♫ a b"
    alphabet = ["\\", "u", "{", "}", "2", "0", "e", " ", "\t", "\u202e", "\u3164", "\u2003"]
    texts = ["".join(p) for n in range(4) for p in itertools.product(alphabet, repeat=n)]
    shown = {}
    for text in texts:
        assert shown.setdefault(visible(text), text) == text, (text, shown[visible(text)])


def test_the_scans_working_files_are_the_ones_verify_leaves_unnamed():
    from musicbrain_cli.report.verify import SCAN_WORKING_FILES
    from musicbrain_cli.scan.batch import INPUTS_INDEX, LOCK_NAME

    assert set(SCAN_WORKING_FILES) == {LOCK_NAME, INPUTS_INDEX}


# --- verify --reproduce on a scanned track ---------------------------------------------------


@pytest.fixture(scope="module")
def scanned(tmp_path_factory, tiny_model_dir, keys):
    """A 12 s tone scanned and signed (HTML report): its audio and track folder."""
    root = tmp_path_factory.mktemp("scanned")
    audio = root / "x.flac"
    encode_audio(audio, make_tone(12.0, 247.0), SR)
    scan([audio], root / "out", Detector.from_pretrained(tiny_model_dir, device="cpu"),
         keys=keys, options=ScanOptions(formats=("html",), notes="builtin"))
    (folder,) = [p for p in (root / "out").iterdir() if p.is_dir()]
    return audio, folder


@pytest.fixture
def track_copy(scanned, tmp_path):
    audio, folder = scanned
    shutil.copytree(folder, tmp_path / "report")
    return audio, tmp_path / "report"


def test_reproduce_refuses_a_report_of_another_version(track_copy, tiny_model_dir, keys):
    """Defect 1, end to end: the reviewer's forgery (text says AI, result.json says human and
    claims another version) verified VALID with 'every figure ... came out the same'."""
    audio, folder = track_copy
    track = json.loads((folder / "result.json").read_text())
    track["software"]["musicbrain"] = "0.2.9"
    (folder / "result.json").write_text(json.dumps(track))
    res = reproduce(folder, audio, model=tiny_model_dir)
    assert not res.ok
    assert res.differences == [f"the report was made by MusicBrain 0.2.9, this is {__version__}: "
                               "it cannot be reproduced with this version; reproduce it with "
                               "the version it names"]
    write_manifest(folder, audio, track["model"]["weights_sha256"], keys)      # the signer's
    out = CliRunner().invoke(main, ["verify", str(folder), "--audio", str(audio), "--reproduce",
                                    "--model", str(tiny_model_dir)])
    assert out.exit_code == 1 and f"INVALID  {folder}" in out.output, out.output
    assert "[fail] rendering:" in out.output and "[fail] reproduce:" in out.output


def test_reproduce_draws_the_figures_again(track_copy, tiny_model_dir):
    """Defect 2: a timeline redrawn at P(AI) 0.99 (result.json untouched) reproduced."""
    audio, folder = track_copy
    track = json.loads((folder / "result.json").read_text())
    assert _timeline_png(track) == _timeline_png(track)          # drawing is deterministic
    honest = reproduce(folder, audio, model=tiny_model_dir)
    assert honest.ok, honest.differences
    drawn = sorted(p.name for p in (folder / "figures").iterdir())
    assert {"timeline.png", "fmgcam_1.png"} <= set(drawn)
    assert {f"figures/{n}" for n in drawn} <= set(honest.checked)
    tl, verdict = track["timeline"], track["verdict"]
    (folder / "figures" / "timeline.png").write_bytes(timeline_figure(
        tl["window_start_s"], [0.99] * len(tl["p_ai"]), window_s=tl["window_s"],
        threshold=verdict.get("threshold"), band=verdict.get("band")))
    (folder / "figures" / "fmgcam_1.png").write_bytes(
        (folder / "figures" / drawn[-1]).read_bytes() if drawn[-1] != "fmgcam_1.png" else b"")
    forged = reproduce(folder, audio, model=tiny_model_dir)
    assert not forged.ok
    assert [d.split(":")[0] for d in forged.differences] == ["figures/fmgcam_1.png",
                                                             "figures/timeline.png"]


def test_a_quoted_real_ai_record_of_these_very_models_is_checked(track_copy, tiny_model_dir,
                                                                 tmp_path, monkeypatch):
    """Defect 3: verdict.measured_on_real_ai was set aside on both sides, so a signer could
    quote 'called none of 236 AI tracks human'."""
    import musicbrain_cli.verdict as verdict_module

    audio, folder = track_copy
    track = json.loads((folder / "result.json").read_text())
    record = {"measured": "2026-12-03", "version": __version__, "doc": "the benchmark",
              "models": _analysis_models(track),
              "sets": [{"set": "suno", "tracks": 10, "human": 4, "ai": 6, "inconclusive": 0,
                        "failed": 0}]}
    assert record["models"]["content_card"] == track["model"]["card_sha256"]
    assert record["models"].get("content_ood") == track["model"].get("ood_sha256")
    (tmp_path / "record.json").write_text(json.dumps(record))
    monkeypatch.setattr(verdict_module, "real_ai_measurement", functools.partial(
        verdict_module.real_ai_measurement, path=tmp_path / "record.json"))
    track["verdict"]["measured_on_real_ai"] = {"applies": True, **record}
    (folder / "result.json").write_text(json.dumps(track))
    same = reproduce(folder, audio, model=tiny_model_dir)
    assert same.ok and REAL_AI in same.checked, same.differences
    track["verdict"]["measured_on_real_ai"]["sets"][0].update(human=0, ai=10)
    (folder / "result.json").write_text(json.dumps(track))
    edited = reproduce(folder, audio, model=tiny_model_dir)
    assert not edited.ok
    assert edited.differences == [f"{REAL_AI}.sets[0].ai: recorded 10, reproduced 6",
                                  f"{REAL_AI}.sets[0].human: recorded 0, reproduced 4"]
