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
