"""The symbolic line's windows are spread over the audio decoded, not over what the header
claims (session 37 review: an MP3 whose Xing frame count understated its length had the
line read only its first seconds)."""

from __future__ import annotations

import struct

import numpy as np

from musicbrain_cli.audio.encode import encode_audio
from musicbrain_cli.audio.intake import probe
from musicbrain_cli.scan.batch import ScanOptions, analyse_track, symbolic_window_indices
from conftest import make_tone

SR = 22050


def _understated_mp3(path, seconds: float) -> None:
    encode_audio(path, make_tone(seconds, 262.0, 3), SR)
    data = bytearray(path.read_bytes())
    at = max(data.find(b"Xing"), data.find(b"Info"))
    assert at > 0, "the encoder wrote no Xing/Info frame"
    flags, frames = struct.unpack(">II", bytes(data[at + 4:at + 12]))
    assert flags & 1, "the Xing frame carries no frame count"
    data[at + 8:at + 12] = struct.pack(">I", frames // 4)       # the header now says a quarter
    path.write_bytes(bytes(data))


def _symbolic_starts(track: dict) -> list[float]:
    (symbolic,) = [e["details"]["symbolic"] for e in track["evidence"] if "symbolic" in e["details"]]
    return sorted(float(w["start_s"]) for w in symbolic["windows"])


def test_symbolic_windows_follow_the_decoded_length_not_the_header(tmp_path, tiny_model_dir):
    from musicbrain_cli.model.inference import Detector

    path = tmp_path / "understated.mp3"
    _understated_mp3(path, 42.0)
    claimed = probe(path).duration_s
    assert claimed < 15.0                                       # the header's lie
    det = Detector.from_pretrained(tiny_model_dir)
    fe = det.config.front_end
    track = analyse_track(path, det, options=ScanOptions(explain_windows=1))
    assert track.track["input"]["decoded_duration_s"] > 40.0
    expected = symbolic_window_indices(track.track["input"]["decoded_duration_s"], fe.window_s, fe.hop_s)
    starts = _symbolic_starts(track.track)
    assert starts == sorted(i * fe.hop_s for i in expected)
    assert max(starts) >= 20.0                                  # not only the first seconds


def test_symbolic_windows_reach_the_end_of_music_followed_by_silence(tmp_path, tiny_model_dir):
    """62 s of music then 40 s of silence: the header's 102 s put the last picks where no
    window lies (the silence is not windowed); the last window of the music on the grid is read
    in their place, from the one decode."""
    import soundfile as sf

    from musicbrain_cli.model.inference import Detector
    from musicbrain_cli.scan.batch import symbolic_step

    path = tmp_path / "tail.wav"
    y = np.concatenate([make_tone(62.0, 262.0, 3), np.zeros(40 * SR, np.float32)])
    sf.write(path, y, SR)
    det = Detector.from_pretrained(tiny_model_dir)
    fe = det.config.front_end
    planned = symbolic_window_indices(102.0, fe.window_s, fe.hop_s)
    assert max(planned) * fe.hop_s > 62.0                     # a pick in the silence
    track = analyse_track(path, det, options=ScanOptions(explain_windows=1))
    starts = _symbolic_starts(track.track)
    window_starts = track.track["timeline"]["window_start_s"]
    n = len(window_starts)
    assert window_starts[-1] + fe.window_s <= 62.5             # no window over the silence
    step = symbolic_step(fe.window_s, fe.hop_s)
    last_grid = (n - 1) // step * step
    assert starts[-1] == window_starts[last_grid] and starts[-1] + fe.window_s >= 60.0
    assert len(starts) == len(set(starts)) >= 4
    assert all(b - a >= fe.window_s for a, b in zip(starts, starts[1:]))     # none overlap
