"""Intake hardening (audio/intake.py, audio/metadata.py, audio/worker.py, scan/discovery.py):
tag reading under the decoder child's deadline, macOS AppleDouble files, and containers the
decoder reads that a folder scan passed over. Each defect test fails with the defect back in
place."""

import json
import os
import signal
import struct
from pathlib import Path

import mutagen
import pytest
from click.testing import CliRunner
from mutagen.id3 import APIC, ID3, TXXX

from musicbrain_cli.audio import intake, metadata
from musicbrain_cli.audio.encode import Format, encode_audio
from musicbrain_cli.cli import main
from musicbrain_cli.scan import discovery
from musicbrain_cli.scan.discovery import discover
from conftest import deadline, make_tone

SR = 22050
#: The reason discovery gives for a macOS AppleDouble file (the wording the brief asked for).
APPLEDOUBLE = "macOS AppleDouble resource file, not audio"


# --- fixtures made in code ------------------------------------------------------------------


def _syncsafe(n: int) -> bytes:
    """ID3v2 tag size: four 7-bit bytes (ID3v2.3.0 section 3.1)."""
    return bytes([(n >> 21) & 0x7F, (n >> 14) & 0x7F, (n >> 7) & 0x7F, n & 0x7F])


def mp3_with_id3_frames(path: Path, frames: int, seconds: float = 3.0) -> Path:
    """A real MP3 (PyAV) whose ID3v2.3 tag holds ``frames`` one-character TIT2 frames.

    mutagen's ID3 reader (1.48, ``id3/_tags.py: read_frames``) cuts the rest of the tag off
    after every frame, so its time grows with the square of the frame count. Measured on the
    2-core development machine: 50,000 frames (0.6 MB) 1.3 s, 100,000 (1.2 MB) 3.8 s, 200,000
    (2.4 MB) 9.6 s, 400,000 (4.8 MB) 40 s; an ID3v2 tag may be 256 MB. FFmpeg reads the same
    header in 0.04-0.13 s.
    """
    encode_audio(path, make_tone(seconds), SR)
    raw = path.read_bytes()
    if raw[:3] == b"ID3":          # drop the muxer's own small tag: ours is the only one
        size = raw[6:10]
        raw = raw[10 + ((size[0] << 21) | (size[1] << 14) | (size[2] << 7) | size[3]):]
    # frame: ID, size (plain 32-bit in v2.3), flags; body: encoding 0 (Latin-1) + "x"
    frame = b"TIT2" + struct.pack(">I", 2) + b"\x00\x00" + b"\x00x"
    body = frame * frames
    path.write_bytes(b"ID3\x03\x00\x00" + _syncsafe(len(body)) + body + raw)
    return path


def tagged_mp3(path: Path, seconds: float = 3.0) -> Path:
    """An MP3 with a title (written by FFmpeg), a TXXX frame and a cover (written by mutagen)."""
    encode_audio(path, make_tone(seconds), SR, tags={"title": "Hello"})
    tags = ID3(path)
    tags.add(TXXX(encoding=3, desc="generator", text=["made by hand"]))
    tags.add(APIC(encoding=3, mime="image/png", type=3, desc="cover", data=b"\x89PNG" + bytes(100)))
    tags.save(path)
    return path


def appledouble(path: Path, *, for_name: str = "song.mp3") -> Path:
    """An AppleDouble header file as macOS writes ``._NAME`` beside a file copied to a volume
    without extended attributes (RFC 1740 and Apple's AppleSingle/AppleDouble formats: magic
    0x00051607, version 2, 16 filler bytes, then the entry table: Finder info, resource
    fork)."""
    entries = [(9, 50, 32), (2, 82, 0)]                 # (id, offset, length)
    head = struct.pack(">II16sH", 0x00051607, 0x00020000, b"Mac OS X        ", len(entries))
    table = b"".join(struct.pack(">III", *e) for e in entries)
    finder = b"TEXTR*ch" + bytes(24)
    path.write_bytes(head + table + finder + for_name.encode() + bytes(3000))
    return path


def _scan(cat, out, model, *args):
    return CliRunner().invoke(main, ["scan", *map(str, cat), "-o", str(out), "--model", str(model),
                                     "--report", "none", "--unsigned", *args],
                              catch_exceptions=False)


def _results(out: Path) -> dict:
    """``{input file name: result.json}`` of the track folders in ``out``."""
    found = {}
    for p in out.glob("*/result.json"):
        track = json.loads(p.read_text(encoding="utf-8"))
        found[track["input"]["file_name"]] = track
    return found


# --- 1: tag reading has a deadline, in the decoder child --------------------------------------


def test_tags_that_take_mutagen_seconds_are_cut_off_at_the_deadline(tmp_path):
    """The tags were read with mutagen in the scanning process, with no time limit: a 1.2 MB
    ID3 tag of 100,000 frames held the scan 3.8 s, a 4.8 MB one 40 s (quadratic; the format
    allows 256 MB). Read in the decoder child, the read is killed at its deadline, and the
    track keeps its header facts, its audio and a reason."""
    p = mp3_with_id3_frames(tmp_path / "many-frames.mp3", 100_000)
    with deadline(120, "probe of a file with 100,000 ID3 frames"):
        info = intake.probe(p, tags_timeout_s=0.5)
    meta = info.metadata
    assert meta["error"] is not None and "reading the tags took longer than 0.5 s" in meta["error"]
    assert not meta["error"].startswith(str(p))               # the report states it, not a path
    assert meta["tags"] == {} and meta["format"] is None and meta["c2pa_present"] is None
    assert "provenance" in meta                               # the provenance line still ran
    assert info.codec.startswith("mp3") and info.duration_s == pytest.approx(3.0, abs=0.1)
    y = intake.load_audio(p)                                  # and the audio is all there
    assert y.size / SR == pytest.approx(3.0, abs=0.1)


def test_the_tag_deadline_also_bounds_read_metadata(tmp_path):
    p = mp3_with_id3_frames(tmp_path / "many-frames.mp3", 100_000)
    with deadline(60, "read_metadata of a file with 100,000 ID3 frames"):
        meta = intake.read_metadata(p, provenance=False, timeout_s=0.5)
    assert "reading the tags took longer than 0.5 s" in meta["error"]
    assert "provenance" not in meta


def test_the_tags_are_parsed_in_the_decoder_child_not_the_scanning_process(tmp_path, monkeypatch):
    """Neither mutagen nor the C2PA box walk may touch the file's bytes in the scanning
    process: a parser stuck there stalls the whole scan."""
    p = tagged_mp3(tmp_path / "tagged.mp3")
    m4a = tmp_path / "tagged.m4a"
    encode_audio(m4a, make_tone(2.0), SR, tags={"title": "Box"})

    def here(*args, **kwargs):
        raise AssertionError("tags parsed in the scanning process")

    for target, name in ((mutagen, "File"), (metadata, "ID3"), (metadata, "_bmff_c2pa"),
                         (metadata, "_riff_c2pa"), (metadata, "_id3_c2pa")):
        monkeypatch.setattr(target, name, here)
    meta = intake.probe(p).metadata
    assert meta["error"] is None, meta["error"]
    assert meta["format"] == "MP3"
    assert meta["tags"]["TIT2"] == ["Hello"]
    assert meta["tags"]["TXXX:generator"] == ["made by hand"]
    assert meta["tags"]["APIC:cover"][0]["mime"] == "image/png"
    meta = intake.probe(m4a).metadata
    assert meta["error"] is None and meta["format"] == "MP4" and meta["tags"]["\xa9nam"] == ["Box"]


def test_tags_read_in_the_child_equal_those_read_in_process(tmp_path):
    """``isolate=False`` still reads in this process, and both ways give the same record
    (binary payload summaries survive the pipe's JSON as they were)."""
    files = [tagged_mp3(tmp_path / "a.mp3")]
    for ext in ("m4a", "flac", "wav"):
        encode_audio(tmp_path / f"b.{ext}", make_tone(2.0), SR, tags={"title": f"T {ext}"})
        files.append(tmp_path / f"b.{ext}")
    for p in files:
        isolated = intake.probe(p).metadata
        here = intake.probe(p, isolate=False).metadata
        assert isolated == here, p.name
        assert here["error"] is None, p.name
        assert here["tags"] or p.suffix == ".wav", p.name   # mutagen reads no RIFF INFO


def test_a_crashed_tag_reader_loses_no_track(tmp_path, tiny_model_dir, monkeypatch):
    """A tag reader that dies (a parser bug, the kernel's OOM killer) costs the tags, never
    the track: it is analysed, and its result says why its tags are missing."""
    cat = tmp_path / "cat"
    cat.mkdir()
    # 50,000 frames keep the reader busy for a second: the kill lands before it can finish
    mp3_with_id3_frames(cat / "crash.mp3", 50_000)
    real_send = intake._Worker.send

    def send_then_kill(self, request):
        real_send(self, request)
        if request.get("op") == "tags":
            self.proc.send_signal(signal.SIGKILL)

    monkeypatch.setattr(intake._Worker, "send", send_then_kill)
    out = tmp_path / "out"
    with deadline(300, "scan of a track whose tag reader is killed"):
        res = _scan([cat], out, tiny_model_dir, "--quiet")
    assert res.exit_code == 0, res.output
    rows = json.loads((out / "summary.json").read_text(encoding="utf-8"))["tracks"]
    assert [(Path(r["path"]).name, r["status"]) for r in rows] == [("crash.mp3", "ok")]
    track = _results(out)["crash.mp3"]
    assert "SIGKILL" in track["metadata"]["error"] and "tags" in track["metadata"]["error"]
    assert track["metadata"]["c2pa_present"] is None        # not looked for: unknown, not "absent"
    assert track["input"]["decoded_duration_s"] == pytest.approx(3.0, abs=0.1)


def test_the_tags_cost_no_process_of_their_own(tmp_path, monkeypatch):
    """Tags are read by the pooled decoder child that read the header: probing many files
    starts one child, not one per file (nor one per file for the tags)."""
    files = []
    for i in range(4):
        files.append(tagged_mp3(tmp_path / f"{i}.mp3", seconds=1.0))
    intake._POOL.shutdown()                     # children of earlier tests in this process
    started = []
    real_init = intake._Worker.__init__

    def counting_init(self):
        real_init(self)
        started.append(self.proc.pid)

    monkeypatch.setattr(intake._Worker, "__init__", counting_init)
    for p in files:
        assert intake.probe(p).metadata["tags"]["TIT2"] == ["Hello"]
    assert len(started) == 1


# --- 2: macOS AppleDouble files -------------------------------------------------------------


def test_appledouble_files_are_skipped_with_the_reason_and_real_audio_is_kept(tmp_path):
    """A catalog copied from a Mac onto exFAT (or into a zip) holds ``._NAME`` beside every
    file: each was taken for audio by its extension and reported as a failed track. They are
    told apart by their content: a real recording whose name starts with ``._`` is scanned."""
    cat = tmp_path / "cat"
    cat.mkdir()
    encode_audio(cat / "song.mp3", make_tone(1.0), SR)
    appledouble(cat / "._song.mp3")
    encode_audio(cat / "._live.mp3", make_tone(1.0), SR)     # audio, named like one
    appledouble(cat / "._take.WAV", for_name="take.WAV")
    found = discover([cat])
    assert [p.name for p in found.files] == ["._live.mp3", "song.mp3"]
    assert found.skipped == [(str(cat / "._song.mp3"), APPLEDOUBLE),
                             (str(cat / "._take.WAV"), APPLEDOUBLE)]
    assert discovery.APPLEDOUBLE == APPLEDOUBLE
    assert not found.failed and not found.missing
    # named on the command line it is the same file: skipped, not a failure
    named = discover([cat / "._song.mp3", cat / "._live.mp3"])
    assert [p.name for p in named.files] == ["._live.mp3"]
    assert named.skipped == [(str(cat / "._song.mp3"), APPLEDOUBLE)]


def test_a_name_like_appledouble_that_cannot_be_read_is_left_to_the_intake(tmp_path):
    """Only the first four bytes of a regular file are read: a FIFO named ``._x.wav`` must
    not block discovery, and a file it cannot read is taken (the intake reports it)."""
    os.mkfifo(tmp_path / "._pipe.wav")
    short = tmp_path / "._short.wav"
    short.write_bytes(b"\x00\x05")
    with deadline(10, "discovery of a FIFO named ._pipe.wav"):
        found = discover([tmp_path])
    assert [p.name for p in found.files] == ["._pipe.wav", "._short.wav"]
    assert not found.skipped


def test_a_scan_of_a_catalog_copied_from_a_mac_fails_nothing(tmp_path, tiny_model_dir):
    cat = tmp_path / "cat"
    cat.mkdir()
    encode_audio(cat / "song.wav", make_tone(3.0), SR)
    appledouble(cat / "._song.wav", for_name="song.wav")
    out = tmp_path / "out"
    res = _scan([cat], out, tiny_model_dir)
    assert res.exit_code == 0, res.output
    rows = json.loads((out / "summary.json").read_text(encoding="utf-8"))["tracks"]
    assert [(Path(r["path"]).name, r["status"]) for r in rows] == [("song.wav", "ok")]
    assert f"skipped: {cat / '._song.wav'}: {APPLEDOUBLE}" in res.output


# --- 3: Sun AU, MP2 and M4B from folders ------------------------------------------------------


@pytest.mark.parametrize("name, spec", [
    ("sun.au", Format("au", "pcm_s16be")),
    ("next.snd", Format("au", "pcm_s16be")),          # NeXT/Sun audio under its other name
    ("broadcast.mp2", Format("mp2", "mp2", bit_rate=128_000)),
    ("book.m4b", Format("mp4", "aac", bit_rate=128_000)),   # an audiobook: M4A by another name
    ("SHOUT.AU", Format("au", "pcm_s16be")),
])
def test_au_snd_mp2_and_m4b_in_a_folder_are_taken_and_decoded(tmp_path, name, spec):
    """FFmpeg decodes Sun AU, MPEG-1/2 Layer II and M4B audiobooks, but a folder scan skipped
    them as "not an audio file name extension"."""
    seconds = 3.0
    encode_audio(tmp_path / name, make_tone(seconds), SR, spec=spec)
    found = discover([tmp_path])
    assert [p.name for p in found.files] == [name]
    assert not found.skipped
    info = intake.probe(found.files[0])
    assert info.codec == spec.codec
    y = intake.load_audio(found.files[0])
    # Layer II pads to whole 1152-sample frames, AAC adds its priming: at most one frame more
    assert seconds <= y.size / SR <= seconds + 1152 / SR + 1e-3
    assert info.duration_s == pytest.approx(y.size / SR, abs=0.05)


def test_the_readme_lists_every_extension_a_folder_scan_takes():
    """The README's input table names the extensions a folder scan takes: the list a user
    reads to know why a file was skipped, kept equal to the one discovery uses."""
    import re

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    row = next(line for line in readme.splitlines() if line.startswith("| Folder scan |"))
    accepted = row.split(" | ")[1]
    assert set(re.findall(r"`(\.[a-z0-9]+)`", accepted)) == set(discovery.AUDIO_EXTENSIONS)


def test_tags_cut_off_at_their_deadline_are_not_parsed_again_for_provenance(tmp_path, monkeypatch):
    """The provenance child located the C2PA store with mutagen's ID3 parser too, so a tag
    the decoder child was stopped on cost up to the provenance deadline (60 s) once more
    (session 37). Now the store is not looked for again; c2pa still validates the file."""
    from musicbrain_cli.audio import provenance

    asked = []
    real = provenance.read_provenance

    def spy(path, **kwargs):
        asked.append(kwargs.get("locate", True))
        return real(path, **kwargs)

    monkeypatch.setattr(provenance, "read_provenance", spy)
    slow = mp3_with_id3_frames(tmp_path / "many-frames.mp3", 100_000)
    with deadline(120, "read_metadata of a file with 100,000 ID3 frames"):
        meta = intake.read_metadata(slow, timeout_s=0.5)
    assert meta["c2pa_present"] is None and asked == [False]
    assert meta["provenance"]["status"] == "absent"  # c2pa read the file and found no manifest
    intake.read_metadata(tagged_mp3(tmp_path / "tagged.mp3"))
    assert asked == [False, True]                    # a file whose tags were read is located
    # the scan's own path, the probe, the same (it called the provenance line directly)
    with deadline(120, "probe of a file with 100,000 ID3 frames"):
        assert intake.probe(slow, tags_timeout_s=0.5).metadata["c2pa_present"] is None
    assert asked == [False, True, False]

    def never(*args, **kwargs):
        raise AssertionError("the store was looked for")

    monkeypatch.setattr(provenance, "find_c2pa_store", never)
    assert real(str(slow), isolate=False, locate=False).to_dict()["status"] == "absent"
