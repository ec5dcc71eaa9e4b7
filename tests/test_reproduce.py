"""verify --reproduce: a report's figures come out the same when the analysis is re-run."""

import json
from pathlib import Path

import pytest

from click.testing import CliRunner

from conftest import SR, make_tone
from musicbrain_cli.audio.encode import encode_audio
from musicbrain_cli.cli import main
from musicbrain_cli.model.inference import Detector
from musicbrain_cli.scan.reproduce import compare, reproduce
from musicbrain_cli.scan.batch import ScanOptions, scan


def _scanned(tmp_path, model_dir, *, seconds: float = 6.0, **options):
    """A tone of ``seconds`` s scanned with ``options`` (default: an HTML report): the audio
    and the track's result folder."""
    audio = tmp_path / "x.flac"
    encode_audio(audio, make_tone(seconds, 247.0), SR)
    det = Detector.from_pretrained(model_dir, device="cpu")
    scan([audio], tmp_path / "out", det, options=ScanOptions(**({"formats": ("html",)} | options)))
    (folder,) = [p for p in (tmp_path / "out").iterdir() if p.is_dir()]
    return audio, folder


def test_reproduction_matches_and_catches_a_changed_figure(tmp_path, tiny_model_dir):
    audio, folder = _scanned(tmp_path, tiny_model_dir)
    assert reproduce(folder, audio, model=tiny_model_dir).ok
    result = json.loads((folder / "result.json").read_text())
    result["timeline"]["p_ai"][0] += 0.01
    (folder / "result.json").write_text(json.dumps(result))
    again = reproduce(folder, audio, model=tiny_model_dir)
    assert not again.ok and any("timeline.p_ai[0]" in d for d in again.differences)


def test_reproduction_refuses_other_audio(tmp_path, tiny_model_dir):
    audio, folder = _scanned(tmp_path, tiny_model_dir)
    other = tmp_path / "other.flac"
    encode_audio(other, make_tone(6.0, 300.0), SR)
    res = reproduce(folder, other, model=tiny_model_dir)
    assert not res.ok and "SHA-256" in res.differences[0]


def test_cli_verify_reproduce(tmp_path, tiny_model_dir):
    audio, folder = _scanned(tmp_path, tiny_model_dir)
    ok = CliRunner().invoke(main, ["verify", str(folder), "--audio", str(audio), "--reproduce",
                                   "--model", str(tiny_model_dir)])
    assert ok.exit_code in (0, 1)          # unsigned folder: the manifest check decides
    assert "reproduce: every figure of the report came out the same" in ok.output
    usage = CliRunner().invoke(main, ["verify", str(folder), "--reproduce"])
    assert usage.exit_code == 2


def test_cli_verify_reproduce_never_says_every_figure_when_a_part_was_not_checked(tmp_path, tiny_model_dir):
    # a quoted real-AI record this installation cannot check is stated as not checked
    # (review of session 34): the pass line must not claim every figure came out the same
    audio, folder = _scanned(tmp_path, tiny_model_dir)
    result = json.loads((folder / "result.json").read_text())
    result["verdict"]["measured_on_real_ai"] = {"applies": False, "why": "another measurement"}
    (folder / "result.json").write_text(json.dumps(result))
    out = CliRunner().invoke(main, ["verify", str(folder), "--audio", str(audio), "--reproduce",
                                    "--model", str(tiny_model_dir)]).output
    assert "every figure of the report came out the same" not in out
    assert "every figure compared came out the same; 1 part(s) not checked" in out
    assert "not checked: verdict.measured_on_real_ai" in out


def test_compare_tolerance():
    assert compare({"a": [1.0, 2.0]}, {"a": [1.0 + 1e-7, 2.0]}, atol=1e-6) == []
    assert compare({"a": "x"}, {"a": "y"}, atol=1) == [".a: recorded 'x', reproduced 'y'"]
    assert "present in only one" in compare({"a": 1}, {"b": 1}, atol=0)[0]


def test_reproduction_names_each_library_whose_version_differs(tmp_path, tiny_model_dir):
    audio, folder = _scanned(tmp_path, tiny_model_dir)
    result = json.loads((folder / "result.json").read_text())
    installed_torch = result["software"]["torch"]
    result["software"]["torch"] = "0.0.1"
    result["software"]["retired-lib"] = "1.0"
    (folder / "result.json").write_text(json.dumps(result))
    again = reproduce(folder, audio, model=tiny_model_dir)
    assert again.ok                       # the figures decide; a version difference is stated
    assert again.notes == ["installed retired-lib absent differs from the report's 1.0",
                           f"installed torch {installed_torch} differs from the report's 0.0.1"]
    out = CliRunner().invoke(main, ["verify", str(folder), "--audio", str(audio), "--reproduce",
                                    "--model", str(tiny_model_dir)]).output
    assert f"installed torch {installed_torch} differs from the report's 0.0.1" in out


def test_every_library_whose_arithmetic_reaches_a_finding_is_recorded():
    """A review found the transcription (basic-pitch and the onnxruntime that runs it: the
    notes of the symbolic line and the alignment), the figures' matplotlib and the C2PA
    validator missing from the record, so a re-run with another version could not say why a
    figure moved."""
    from importlib.metadata import version

    from musicbrain_cli.scan.batch import software_versions

    recorded = software_versions()
    for package in ("basic-pitch", "onnxruntime", "matplotlib", "c2pa-python", "torch",
                    "weasyprint"):
        assert package in recorded, package
    assert recorded["basic-pitch"] == version("basic-pitch")
    assert recorded["onnxruntime"] == version("onnxruntime")


def test_the_card_and_domain_statistics_are_named_by_hash_and_a_changed_one_is_said(
        tmp_path, tiny_model_dir):
    """Only the weights were hashed in a report, but the card (calibration, operating point,
    policy) and the domain statistics decide the verdict too (review): both are recorded by
    SHA-256, and a re-run with others says so."""
    from musicbrain_cli.files import sha256_file

    audio, folder = _scanned(tmp_path, tiny_model_dir)
    result = json.loads((folder / "result.json").read_text())
    assert result["model"]["card_sha256"] == sha256_file(Path(tiny_model_dir) / "model_card.json")
    ood = Path(tiny_model_dir) / "ood.safetensors"
    assert result["model"]["ood_sha256"] == (sha256_file(ood) if ood.is_file() else None)
    assert result["model"]["card_sha256"] in (folder / "report.html").read_text()
    assert reproduce(folder, audio, model=tiny_model_dir).notes == []
    result["model"]["card_sha256"] = "0" * 64
    (folder / "result.json").write_text(json.dumps(result))
    again = reproduce(folder, audio, model=tiny_model_dir)
    assert any("model card" in n and "0" * 64 in n for n in again.notes), again.notes


def test_the_device_the_network_ran_on_is_recorded_and_a_rerun_elsewhere_says_so(
        tmp_path, tiny_model_dir):
    """--device auto was not recorded: a report made on a GPU and reproduced on a CPU could
    not say why its last float bits differ."""
    audio, folder = _scanned(tmp_path, tiny_model_dir)
    result = json.loads((folder / "result.json").read_text())
    assert result["software"]["device"] == "cpu"
    assert '<th>device</th><td class="mono">cpu</td>' in (folder / "report.html").read_text()
    result["software"]["device"] = "cuda:0 (Quadro RTX 5000)"
    (folder / "result.json").write_text(json.dumps(result))
    again = reproduce(folder, audio, model=tiny_model_dir)
    assert again.ok and again.notes[0] == (
        "this re-run ran on cpu, the report's analysis on cuda:0 (Quadro RTX 5000)")
    assert len(again.notes) == 2 and "this machine has no CUDA device" in again.notes[1]


def test_a_rerun_uses_the_device_the_report_was_made_on_where_this_machine_has_it():
    """The client scans on its GPUs (`--device auto`), and `verify --reproduce` re-ran every
    report on the CPU, whose last float bits differ from a GPU's: its figures could not come
    out the same. The re-run now takes the recorded device where it exists here."""
    from musicbrain_cli.errors import InputError
    from musicbrain_cli.scan.reproduce import rerun_device

    card = "cuda:1 (Quadro RTX 5000)"
    assert rerun_device(card, cuda_count=2) == ("cuda:1", None)
    assert rerun_device("cuda:0 (Quadro RTX 5000)", cuda_count=1) == ("cuda:0", None)
    device, note = rerun_device(card, cuda_count=1)               # the card is not here
    assert device == "cuda:0" and "no cuda:1" in note
    device, note = rerun_device(card, cuda_count=0)
    assert device == "cpu" and "no CUDA device" in note
    assert rerun_device("cpu", cuda_count=2) == ("cpu", None)     # a CPU report stays on it
    assert rerun_device(None, cuda_count=2) == ("cpu", None)      # made before it was recorded
    device, note = rerun_device(card, "cpu", cuda_count=2)        # asked for: done, and said
    assert device == "cpu" and "as asked" in note
    assert rerun_device(card, "cuda:1", cuda_count=2) == ("cuda:1", None)
    for missing in ("cuda", "cuda:3", "cuda:x", "tpu"):
        with pytest.raises(InputError):
            rerun_device("cpu", missing, cuda_count=0 if missing == "cuda" else 2)


def test_cli_verify_device_is_checked_and_goes_with_reproduce(tmp_path, tiny_model_dir):
    import torch

    audio, folder = _scanned(tmp_path, tiny_model_dir)
    runner = CliRunner()
    alone = runner.invoke(main, ["verify", str(folder), "--device", "cpu"])
    assert alone.exit_code == 2 and "--device go with --reproduce" in alone.output
    if torch.cuda.device_count() == 0:
        lacking = runner.invoke(main, ["verify", str(folder), "--reproduce", "--audio", str(audio),
                                       "--model", str(tiny_model_dir), "--device", "cuda"])
        assert lacking.exit_code == 2 and "no CUDA device" in lacking.output, lacking.output
    ok = runner.invoke(main, ["verify", str(folder), "--reproduce", "--audio", str(audio),
                              "--model", str(tiny_model_dir), "--device", "cpu"])
    assert "[pass] reproduce" in ok.output, ok.output


def test_reproduction_compares_input_facts_limitations_and_metadata(tmp_path, tiny_model_dir):
    """Observation 8: a report re-signed with a changed decoded duration, undecodable
    packets, share decoded, limitations or metadata 'came out the same'."""
    audio, folder = _scanned(tmp_path, tiny_model_dir)
    original = (folder / "result.json").read_text()
    result = json.loads(original)
    result["input"]["decoded_duration_s"] = 60.0
    result["input"]["share_decoded"] = 0.5
    result["input"]["undecodable_packets"] = 7
    result["limitations"] = result["limitations"][1:]
    result["metadata"]["encoder"] = "Suno v4"
    result["metadata"]["tags"] = {"title": "renamed"}
    (folder / "result.json").write_text(json.dumps(result))
    again = reproduce(folder, audio, model=tiny_model_dir)
    assert not again.ok
    for part in ("input.decoded_duration_s", "input.share_decoded", "input.undecodable_packets",
                 "limitations", "metadata.encoder", "metadata.tags"):
        assert any(d.startswith(part) for d in again.differences), (part, again.differences)
    assert {"input", "metadata", "limitations", "model"} <= set(again.checked)
    # where the file lies is not a finding: a copy elsewhere under another name reproduces
    (folder / "result.json").write_text(original)
    copy = tmp_path / "elsewhere" / "renamed.flac"
    copy.parent.mkdir()
    copy.write_bytes(audio.read_bytes())
    same = reproduce(folder, copy, model=tiny_model_dir)
    assert same.ok, same.differences


def test_a_result_recorded_before_the_note_estimator_choice_reproduces_with_the_builtin(
        tmp_path, tiny_model_dir):
    """Results made before issue 26 carry no options.notes and used the built-in estimator;
    reproducing them must not switch to basic-pitch where it is installed."""
    audio, folder = _scanned(tmp_path, tiny_model_dir, formats=(), notes="builtin")
    result = json.loads((folder / "result.json").read_text())
    assert result["alignment"]["note_estimator"]["estimator"] == "builtin"
    del result["options"]["notes"]
    (folder / "result.json").write_text(json.dumps(result))
    assert reproduce(folder, audio, model=tiny_model_dir).ok


def test_a_result_recorded_before_the_stride_pattern_removal_reproduces_with_it_kept(
        tmp_path, tiny_model_dir):
    """Results made before session 18 carry no options.destripe and their maps kept the
    network's stride pattern; reproducing them must not remove it."""
    from musicbrain_cli.explain import DEFAULT_DESTRIPE

    audio, folder = _scanned(tmp_path, tiny_model_dir, seconds=12.0, formats=(), notes="builtin",
                             destripe=0)
    result = json.loads((folder / "result.json").read_text())
    assert result["options"]["destripe"] == 0 and result["alignment"]["destripe"] == 0
    assert ScanOptions().destripe == DEFAULT_DESTRIPE            # the scan's default is FM-G-CAM's
    del result["options"]["destripe"]
    (folder / "result.json").write_text(json.dumps(result))
    assert reproduce(folder, audio, model=tiny_model_dir).ok
    result["options"]["destripe"] = DEFAULT_DESTRIPE    # claims the pattern was removed: it was not
    (folder / "result.json").write_text(json.dumps(result))
    again = reproduce(folder, audio, model=tiny_model_dir)
    # the maps themselves differ, not only the recorded period
    assert not again.ok and any(d.startswith("explanations[") for d in again.differences)


def test_the_energy_reference_is_recorded_compared_and_never_left_out(
        tmp_path, tiny_model_dir):
    """Each explained window and the track record the alignment checks run on the
    spectrogram's own energy; a changed reference figure is caught, and so is a result of
    this version with the reference taken out (it says the map's grounding more plainly than
    the analysis did: review of session 45, where a shim for results made before the
    reference existed, which are refused as another version's anyway, let it pass)."""
    audio, folder = _scanned(tmp_path, tiny_model_dir, seconds=12.0, formats=(), notes="builtin")
    result = json.loads((folder / "result.json").read_text())
    ref = result["alignment"]["energy_reference"]
    assert set(ref) == {"harmonic", "onset"} and ref["harmonic"]["chance"] > 0
    assert all("energy_reference" in e for e in result["explanations"])
    result["alignment"]["energy_reference"]["harmonic"]["share"] += 0.01
    (folder / "result.json").write_text(json.dumps(result))
    again = reproduce(folder, audio, model=tiny_model_dir)
    assert not again.ok and any("energy_reference.harmonic.share" in d for d in again.differences)
    del result["alignment"]["energy_reference"]
    for e in result["explanations"]:
        del e["energy_reference"]
    (folder / "result.json").write_text(json.dumps(result))
    again = reproduce(folder, audio, model=tiny_model_dir)
    assert not again.ok
    assert any(d.startswith("alignment.energy_reference") for d in again.differences)
    assert any(d.startswith("explanations[0].energy_reference") for d in again.differences)


def test_a_result_scanned_with_auto_reproduces_with_the_estimator_it_recorded(
        tmp_path, tiny_model_dir, monkeypatch):
    """``--notes auto`` picks whatever is installed; its reproduction must ask for the
    estimator the result recorded, so a machine without basic-pitch refuses instead of
    silently comparing against the built-in estimator's notes."""
    import sys

    from musicbrain_cli.alignment import pitch
    from musicbrain_cli.errors import MusicBrainError

    pitch._basic_pitch_model.cache_clear()
    monkeypatch.setitem(sys.modules, "basic_pitch", None)
    audio = tmp_path / "x.flac"
    encode_audio(audio, make_tone(6.0, 247.0), SR)
    det = Detector.from_pretrained(tiny_model_dir, device="cpu")
    scan([audio], tmp_path / "out", det, options=ScanOptions(formats=(), notes="auto"))
    (folder,) = [p for p in (tmp_path / "out").iterdir() if p.is_dir()]
    result = json.loads((folder / "result.json").read_text())
    assert result["options"]["notes"] == "auto"
    assert reproduce(folder, audio, model=tiny_model_dir).ok        # recorded builtin: same
    result["alignment"]["note_estimator"]["estimator"] = "basic-pitch 0.4.0 (onnxruntime)"
    (folder / "result.json").write_text(json.dumps(result))
    with pytest.raises(MusicBrainError, match="basic-pitch"):
        reproduce(folder, audio, model=tiny_model_dir)
    pitch._basic_pitch_model.cache_clear()


def test_a_report_made_with_another_version_of_a_line_says_so(tmp_path, tiny_model_dir):
    """A line's own model changed since the scan (the artifact line's doubt zone, session 20):
    reproduction names that line and its two hashes instead of listing its findings."""
    audio, folder = _scanned(tmp_path, tiny_model_dir)
    result = json.loads((folder / "result.json").read_text())
    (entry,) = [e for e in result["evidence"] if e["line"] == "artifacts"]
    installed = entry["details"]["artifacts"]["model_sha256"]
    entry["details"]["artifacts"]["model_sha256"] = "0" * 64
    (folder / "result.json").write_text(json.dumps(result))
    res = reproduce(folder, audio, model=tiny_model_dir)
    assert not res.ok and len(res.differences) == 1
    assert f"artifacts line's model SHA-256 {installed} is not the recorded {'0' * 64}" in res.differences[0]
    # a malformed entry (a result is untrusted input) is a difference, never a crash
    entry["details"] = ["not", "an", "object"]
    (folder / "result.json").write_text(json.dumps(result))
    res = reproduce(folder, audio, model=tiny_model_dir)
    assert not res.ok and any(d.startswith("evidence") for d in res.differences)


def test_a_fault_in_the_rerun_gives_one_invalid_status_line(tmp_path, tiny_model_dir,
                                                            monkeypatch):
    """Review (session 27): the status line was printed before --reproduce ran, so a fault in
    the re-run printed VALID and then INVALID for the same path."""
    import musicbrain_cli.scan.reproduce as module

    audio, folder = _scanned(tmp_path, tiny_model_dir)

    def broken(*args, **kwargs):
        raise RuntimeError("a library fault")

    monkeypatch.setattr(module, "reproduce", broken)
    res = CliRunner().invoke(main, ["verify", str(folder), "--audio", str(audio), "--reproduce",
                                    "--model", str(tiny_model_dir)])
    assert res.exit_code == 1 and "Traceback" not in res.output
    status = [line for line in res.output.splitlines() if line.endswith(str(folder))]
    assert status == [f"INVALID  {folder}"], res.output
    assert "reproduce: internal error while re-running the analysis (RuntimeError" in res.output


def test_the_real_ai_record_a_report_quotes_is_not_compared_as_a_figure(tmp_path, tiny_model_dir):
    """Session 28 review: results made before 0.3.0 have no verdict.measured_on_real_ai and
    failed to reproduce ("present in only one of the two"); a later measurement changes the
    record, which is not a figure of the analysis either: said to be not checked. A record
    claiming to apply to this analysis while naming no models of it is a difference
    (tests/test_verify_forgery.py has the edited record of the very models installed)."""
    audio, folder = _scanned(tmp_path, tiny_model_dir, formats=())
    result = json.loads((folder / "result.json").read_text())
    assert "measured_on_real_ai" in result["verdict"]
    del result["verdict"]["measured_on_real_ai"]                  # made before 0.3.0
    (folder / "result.json").write_text(json.dumps(result))
    res = reproduce(folder, audio, model=tiny_model_dir)
    assert res.ok, res.differences
    assert any(n.startswith("not checked: verdict.measured_on_real_ai") for n in res.notes)
    result["verdict"]["measured_on_real_ai"] = {"applies": False, "why": "another measurement",
                                                "measured": "1999"}
    (folder / "result.json").write_text(json.dumps(result))
    res = reproduce(folder, audio, model=tiny_model_dir)
    assert res.ok and "verdict.measured_on_real_ai" not in res.checked
    assert any(n.startswith("not checked: verdict.measured_on_real_ai") for n in res.notes)
    result["verdict"]["measured_on_real_ai"] = {"applies": True, "sets": [], "measured": "1999"}
    (folder / "result.json").write_text(json.dumps(result))
    res = reproduce(folder, audio, model=tiny_model_dir)
    assert not res.ok and res.differences[0].startswith("verdict.measured_on_real_ai: the "
                                                        "report quotes a measurement"), res
    result["verdict"]["label"] = "ai" if result["verdict"]["label"] != "ai" else "human"
    (folder / "result.json").write_text(json.dumps(result))
    assert not reproduce(folder, audio, model=tiny_model_dir).ok      # the verdict still is


def test_cli_verify_reproduce_fails_an_unreadable_record_and_goes_on(tmp_path, tiny_model_dir):
    """Review (session 45): a folder whose result.json cannot be read stopped the whole
    verify with one error line; that folder got no INVALID status and the next path was never
    verified. Now it is INVALID with its reproduce failure, and the next path is checked."""
    import shutil

    audio, folder = _scanned(tmp_path, tiny_model_dir)
    broken = tmp_path / "broken"
    shutil.copytree(folder, broken)
    (broken / "result.json").write_text("{bad")
    res = CliRunner().invoke(main, ["verify", str(broken), str(folder), "--audio", str(audio),
                                    "--reproduce", "--model", str(tiny_model_dir)])
    assert res.exit_code == 1, res.output
    assert f"INVALID  {broken}" in res.output
    assert "[fail] reproduce: cannot read the recorded result" in res.output
    # the second path was verified and reproduced after the first failed
    assert str(folder) in res.output.split(f"INVALID  {broken}")[1]
    assert "reproduce: every figure of the report came out the same" in res.output


def test_cli_verify_reproduce_of_a_file_of_the_report_folder_reproduces_its_folder(
        tmp_path, tiny_model_dir):
    """Review (session 45): `verify DIR/report.html --reproduce` failed with "needs the
    report folder ..., not a PDF", though the README says a file of a report folder is
    verified with its folder (and the file was no PDF)."""
    audio, folder = _scanned(tmp_path, tiny_model_dir)
    res = CliRunner().invoke(main, ["verify", str(folder / "report.html"), "--audio", str(audio),
                                    "--reproduce", "--model", str(tiny_model_dir)])
    assert "not a PDF" not in res.output
    assert "reproduce: every figure of the report came out the same" in res.output
