"""Review of session 46 (inference): the model stage's invariances and the re-run of a report."""

import json

import numpy as np
import pytest
import torch

from conftest import SR, make_tone
from musicbrain_cli.audio.encode import encode_audio
from musicbrain_cli.model.inference import Detector
from musicbrain_cli.scan.batch import ScanOptions, scan
from musicbrain_cli.scan.reproduce import reproduce


@pytest.fixture
def torch_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_a_report_made_with_another_torch_thread_count_reproduces(tmp_path, tiny_model_dir,
                                                                  torch_threads):
    """A Ray scan runs each track with one torch thread (ray_engine.TASK_CPUS), the CLI's
    verify --reproduce with torch's default (the machine's cores). oneDNN splits the
    convolutions by thread count, so the last float bits of the logits and of the FM-G-CAM
    maps moved: on the example catalog 1 against 2 threads changed the alignment masses by
    1e-3 (an absolute tolerance of 1e-5 on figures in the thousands) and the FM-G-CAM
    image's bytes, and a genuine report failed its reproduction. The thread count is now
    recorded and the re-run uses it."""
    audio = tmp_path / "x.flac"
    rng = np.random.default_rng(0)
    y = make_tone(9.0, 247.0) + 0.05 * rng.standard_normal(9 * SR).astype(np.float32)
    encode_audio(audio, y, SR)
    det = Detector.from_pretrained(tiny_model_dir, device="cpu")
    torch.set_num_threads(1)
    scan([audio], tmp_path / "out", det, options=ScanOptions(formats=("html",), notes="builtin"))
    (folder,) = [p for p in (tmp_path / "out").iterdir() if p.is_dir()]
    torch.set_num_threads(2)
    again = reproduce(folder, audio, model=tiny_model_dir)
    assert again.ok, again.differences
    assert torch.get_num_threads() == 2          # the caller's setting is given back


def _windowed_track(y: np.ndarray, sr: int = 22050) -> dict:
    """A track record whose timeline is what a scan records for ``y`` (intake's windows)."""
    from musicbrain_cli.audio.intake import iter_windows
    from musicbrain_cli.report.schema import example_track

    passages: list = []
    windows = list(iter_windows(y, sample_rate=sr, passages=passages))
    track = example_track(n_windows=len(windows), window_s=10.0)
    track["input"].update(duration_s=y.size / sr, decoded_duration_s=y.size / sr)
    track["timeline"] = {"window_start_s": [w.start_s for w in windows], "window_s": 10.0,
                         "p_ai": [0.1] * len(windows), "padded": [w.padded for w in windows],
                         "quiet": [w.quiet for w in windows],
                         "sound_s": [list(p) for p in passages]}
    return track


def test_music_held_only_by_windows_not_judged_is_not_called_analysed():
    """A short passage between two silences shorter than a window (music 0-14 s, 9 s of
    silence, 3 s of music, 9 s of silence, music 35-49 s) lies only in windows that are not
    judged for silence (intake.quiet_window): no probability, verdict or explanation reads
    it. The report said '0–49 s analysed (9 windows of 10 s): the whole recording.'"""
    from musicbrain_cli.report.html import coverage_sentence, render_report_html

    rng = np.random.default_rng(0)
    sr = 22050

    def music(s):
        return (0.3 * rng.standard_normal(int(s * sr))).astype(np.float32)

    def silence(s):
        return np.zeros(int(s * sr), np.float32)

    track = _windowed_track(np.concatenate([music(14), silence(9), music(3), silence(9),
                                            music(14)]))
    quiet = track["timeline"]["quiet"]
    assert any(quiet) and not all(quiet)
    sentence = coverage_sentence(track)
    assert "the whole recording" not in sentence
    assert sentence.startswith("0–15 s, 35–49 s analysed (4 windows of 10 s); 15–35 s not "
                               "analysed"), sentence
    assert "Not every second was analysed" in render_report_html(track, {})
    # music followed by less than a window of silence: its last seconds too
    track = _windowed_track(np.concatenate([music(12), silence(9.9), music(12)]))
    sentence = coverage_sentence(track)
    assert "the whole recording" not in sentence and "10–20 s not analysed" in sentence
    # every window judged: the record reads as before
    track = _windowed_track(music(18.5))
    assert coverage_sentence(track) == "0–18.5 s analysed (3 windows of 10 s): the whole recording."


def test_style_attribution_of_a_track_with_no_judged_window_is_withheld(tmp_path, tiny_model_dir):
    """Every window of a recording peaking below -60 dBFS is not judged (intake.quiet_window)
    and the verdict says no window holds enough music to judge; but the aggregate then falls
    back to those windows, and section 3 showed their style scores as attribution (the
    neural-codec example at -63 dBFS: 'Generator neural-codec 1.000' beside 'no analysis
    window holds enough music to judge'). They are now withheld, as out of domain; the raw
    scores stay in result.json."""
    from musicbrain_cli.report.html import render_report_html

    audio = tmp_path / "soft.wav"
    rng = np.random.default_rng(0)
    y = make_tone(6.0, 247.0) + 0.3 * rng.standard_normal(6 * SR).astype(np.float32)
    y = (y / np.abs(y).max() * 10 ** (-63 / 20)).astype(np.float32)
    import soundfile as sf
    sf.write(audio, y, SR, subtype="FLOAT")
    det = Detector.from_pretrained(tiny_model_dir, device="cpu")
    scan([audio], tmp_path / "out", det, options=ScanOptions(formats=("html",), notes="builtin"))
    (folder,) = [p for p in (tmp_path / "out").iterdir() if p.is_dir()]
    track = json.loads((folder / "result.json").read_text())
    assert all(track["timeline"]["quiet"]) and track["verdict"]["label"] == "inconclusive"
    assert track["labels"]                       # the raw scores are kept
    html = render_report_html(track, {})
    assert "Style attribution withheld: no analysis window holds enough music to judge" in html
    assert "Validation AP" not in html.split('id="style"')[1].split("</section>")[0]
    from musicbrain_cli.report.catalog import CatalogEntry, summary_row

    row = summary_row(CatalogEntry(str(audio), track, "s/report.html"))
    assert row["top_labels"] == "withheld: no analysis window judged"
