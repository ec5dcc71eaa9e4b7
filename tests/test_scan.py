"""The batch scan: end to end on a small catalog with a tiny model, built in code."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from musicbrain_cli.audio.encode import encode_audio
from musicbrain_cli.cli import main
from musicbrain_cli.model.inference import Detector
from musicbrain_cli.report.verify import verify_path
from musicbrain_cli.scan.batch import ScanOptions, analyse_track, scan
from musicbrain_cli.scan.discovery import discover, safe_name
from conftest import deadline, make_tone

SR = 22050


@pytest.fixture
def model_dir(tiny_model_dir):
    return tiny_model_dir


def tone(seconds, f0=220.0, seed=0):
    return make_tone(seconds, f0, seed)


@pytest.fixture
def catalog(tmp_path):
    cat = tmp_path / "catalog"
    (cat / "sub").mkdir(parents=True)
    encode_audio(cat / "piece.flac", tone(9.0), SR)
    encode_audio(cat / "sub" / "<script>alert(1).mp3", tone(3.0, 330.0), SR)
    (cat / "notes.txt").write_text("not audio")
    return cat


def run(args):
    return CliRunner().invoke(main, args, catch_exceptions=False)


def folders(out: Path):
    return sorted(p for p in out.iterdir() if p.is_dir())


def test_scan_end_to_end_with_verification(tmp_path, catalog, model_dir):
    bad = catalog / "broken.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEgarbage")
    out, keys = tmp_path / "out", tmp_path / "keys"
    res = run(["scan", str(catalog), "-o", str(out), "--model", str(model_dir),
               "--report", "both", "--key", str(keys), "--quiet", "--jobs", "2"])
    assert res.exit_code == 1, res.output          # one file failed
    summary = json.loads((out / "summary.json").read_text())
    rows = summary["tracks"] if isinstance(summary, dict) else summary
    status = {Path(r["path"]).name: r["status"] for r in rows}
    assert status == {"piece.flac": "ok", "<script>alert(1).mp3": "ok",
                      "broken.wav": "error"}
    assert "notes.txt" in res.output                # skipped with a note
    assert (out / "index.html").is_file() and (out / "summary.csv").is_file()
    made = folders(out)
    assert len(made) == 2
    for folder in made:
        assert folder.parent == out                 # the crafted name stays inside OUT
        for name in ("report.pdf", "report.html", "result.json", "manifest.json",
                     "manifest.json.sig"):
            assert (folder / name).is_file(), name
        from musicbrain_cli.report.keys import load_trusted
        assert verify_path(folder, trusted=load_trusted(keys)).ok
        track = json.loads((folder / "result.json").read_text())
        assert track["verdict"]["label"] in ("ai", "human", "inconclusive")
        assert 0.0 <= track["verdict"]["p_ai"] <= 1.0
        assert track["explanations"], "the most decisive windows are explained"
    html = (made[1] / "report.html").read_text() + (made[0] / "report.html").read_text()
    assert "<script>alert(1)" not in html and "&lt;script&gt;" in html


def test_rerun_skips_complete_tracks_and_force_redoes(tmp_path, catalog, model_dir):
    out = tmp_path / "out"
    args = ["scan", str(catalog), "-o", str(out), "--model", str(model_dir), "--report",
            "html", "--unsigned", "--quiet"]
    assert run(args).exit_code == 0
    before = {p.name: (p / "result.json").stat().st_mtime_ns for p in folders(out)}
    res = run(args)
    assert res.exit_code == 0 and "0 analysed now, 2 skipped (already complete)" in res.output
    assert {p.name: (p / "result.json").stat().st_mtime_ns for p in folders(out)} == before
    res = run(args + ["--force"])
    assert "2 analysed now, 0 skipped (already complete)" in res.output
    assert {p.name: (p / "result.json").stat().st_mtime_ns for p in folders(out)} != before


def test_interrupted_write_leaves_no_half_report_and_resumes(tmp_path, catalog, model_dir,
                                                           monkeypatch):
    import musicbrain_cli.report as report

    det = Detector.from_pretrained(model_dir, device="cpu")
    out = tmp_path / "out"
    real = report.write_manifest

    def crash(*a, **k):
        raise KeyboardInterrupt   # killed after the report files, before the seal
    monkeypatch.setattr(report, "write_manifest", crash)
    with pytest.raises(KeyboardInterrupt):
        scan([catalog], out, det, options=ScanOptions(formats=("html",)))
    assert folders(out) == [] or all(p.name.startswith(".tmp-") for p in folders(out))
    monkeypatch.setattr(report, "write_manifest", real)
    result = scan([catalog], out, det, options=ScanOptions(formats=("html",)))
    assert result.n_ok == 2 and result.reused == 0
    assert not [p for p in out.iterdir() if p.name.startswith(".tmp-")]


def test_bad_inputs_inside_a_catalog_become_error_entries(tmp_path, model_dir):
    cat = tmp_path / "cat"
    cat.mkdir()
    encode_audio(cat / "good.flac", tone(5.0), SR)
    (cat / "empty.mp3").write_bytes(b"")
    (cat / "text.ogg").write_text("hello, not audio at all")
    encode_audio(cat / "silent.flac", np.zeros(SR * 3, np.float32), SR)
    encode_audio(cat / "cut.wav", tone(6.0), SR)
    data = (cat / "cut.wav").read_bytes()
    (cat / "cut.wav").write_bytes(data[: len(data) // 3])
    det = Detector.from_pretrained(model_dir, device="cpu")
    result = scan([cat], tmp_path / "out", det, options=ScanOptions(formats=("html",)))
    errors = {Path(e.input_path).name: e.error for e in result.entries if e.error}
    assert set(errors) == {"empty.mp3", "text.ogg", "silent.flac", "cut.wav"}
    assert "silent" in errors["silent.flac"].lower()
    assert result.n_ok == 1


def test_analysis_is_a_pure_function_of_file_model_options(tmp_path, model_dir):
    encode_audio(tmp_path / "x.flac", tone(7.0, 262.0), SR)
    det = Detector.from_pretrained(model_dir, device="cpu")
    a = analyse_track(tmp_path / "x.flac", det, analysis_time="2026-01-01T00:00:00+00:00")
    b = analyse_track(tmp_path / "x.flac", det, analysis_time="2026-01-01T00:00:00+00:00")
    assert json.dumps(a.track, sort_keys=True) == json.dumps(b.track, sort_keys=True)
    assert a.track["timeline"]["window_start_s"] == [0.0, 2.0, 3.0]   # 4 s windows, 2 s hop,
    assert a.track["timeline"]["padded"] == [False, False, False]     # the last one ends at 7 s


def test_a_map_title_names_only_the_seconds_the_recording_has(tmp_path, model_dir):
    """A 3 s recording read in 4 s windows: its one window holds the 3 s and then repeats
    them (before 0.3.5: a 7 s recording's last window, 3 s of audio and 1 s of zero padding,
    was titled "4–8 s"; review). The title names the seconds that exist and says the rest is
    repeated; whole windows are titled as before."""
    encode_audio(tmp_path / "short.flac", tone(3.0, 262.0), SR)
    encode_audio(tmp_path / "x.flac", tone(7.0, 262.0), SR)
    det = Detector.from_pretrained(model_dir, device="cpu")
    short = analyse_track(tmp_path / "short.flac", det, options=ScanOptions(explain_windows=1))
    titles = [x["title"] for x in short.explain if "title" in x and "saliency" in x]
    assert titles == ["Where the model looked, 0–3 s (then repeated)"]
    a = analyse_track(tmp_path / "x.flac", det, options=ScanOptions(explain_windows=3))
    titles = {x["name"]: x["title"] for x in a.explain if "title" in x and "saliency" in x}
    starts = {e["figure"]: e["window_start_s"] for e in a.track["explanations"]}
    assert sorted(starts.values()) == [0.0, 2.0, 3.0]
    for name, start in starts.items():
        assert titles[name] == f"Where the model looked, {start:g}–{start + 4:g} s"


def test_each_track_is_probed_once(tmp_path, model_dir, monkeypatch):
    """One probe per track (hash, tags, a C2PA child): the artifact line reuses its rate."""
    from musicbrain_cli.audio import intake

    encode_audio(tmp_path / "x.flac", tone(7.0, 262.0), SR)
    det = Detector.from_pretrained(model_dir, device="cpu")
    calls = []
    real = intake.probe
    monkeypatch.setattr(intake, "probe", lambda *a, **k: calls.append(a) or real(*a, **k))
    analyse_track(tmp_path / "x.flac", det)
    assert len(calls) == 1


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


@pytest.mark.skipif(not Path("/proc/self/status").exists() or os.uname().sysname != "Linux",
                    reason="reads the resident set from /proc (Linux)")
def test_freed_heap_memory_goes_back_to_the_os(tmp_path):
    """Issue 27's memory target: glibc keeps freed heap pages, so the forward passes'
    working set would stay resident beside the next stage's; the scan hands them back."""
    from musicbrain_cli.scan import batch

    if batch._malloc_trim() is None:
        pytest.skip("the C library has no malloc_trim")
    blocks = [np.ones(12_500) for _ in range(1500)]     # 100 kB each: heap, not mmap
    guard = np.ones(12_500)                             # pins the heap's top: no automatic trim
    before = _rss_mb()
    del blocks
    held = _rss_mb()
    batch.release_freed_memory()
    after = _rss_mb()
    assert held - before > -20                          # freeing alone returned (almost) nothing
    assert held - after > 100                           # the trim returned the 150 MB
    del guard


def test_each_analysis_stage_hands_its_memory_back(tmp_path, model_dir, monkeypatch):
    """After the forward passes, after the CAM, and after each track's reports."""
    from musicbrain_cli.scan import batch

    (tmp_path / "in").mkdir()
    encode_audio(tmp_path / "in" / "x.flac", tone(7.0, 262.0), SR)
    det = Detector.from_pretrained(model_dir, device="cpu")
    calls = []
    monkeypatch.setattr(batch, "release_freed_memory", lambda: calls.append(1))
    analyse_track(tmp_path / "in" / "x.flac", det)
    assert len(calls) == 2                              # inference, then CAM and alignment
    calls.clear()
    scan([tmp_path / "in"], tmp_path / "out", det, options=ScanOptions(formats=("html",)))
    assert len(calls) == 3                              # the two above, and the report


def test_the_artifact_line_reads_the_scans_own_decode(tmp_path, model_dir, monkeypatch):
    """Issue 27: one decode per track. The artifact line's native-rate samples come from the
    content line's decode, and its finding is the one its own decode of the file gives."""
    from musicbrain_cli.artifacts import spectrum
    from musicbrain_cli.scan.batch import load_artifact_detector

    rng = np.random.default_rng(5)
    t = np.arange(int(8.0 * 44100)) / 44100
    left = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.02 * rng.standard_normal(t.size)
    right = 0.3 * np.sin(2 * np.pi * 660 * t) + 0.02 * rng.standard_normal(t.size)
    path = tmp_path / "stereo.mp3"
    encode_audio(path, np.stack([left, right]).astype(np.float32), 44100)
    alone = load_artifact_detector().analyse(path).to_dict()
    assert alone["applicable"] and alone["sample_rate"] == 44100

    def second_decode(*a, **k):
        raise AssertionError("the artifact line decoded the file a second time")

    monkeypatch.setattr(spectrum, "read_native", second_decode)
    det = Detector.from_pretrained(model_dir, device="cpu")
    track = analyse_track(path, det).track
    found = next(e for e in track["evidence"] if e["line"] == "artifacts")["details"]["artifacts"]
    for key in ("p_ai", "features", "window_p_ai", "peaks_hz", "spacing_hz", "analysed_s",
                "bandwidth_hz", "explanation"):
        assert found[key] == alone[key], key
    # above NATIVE_TAP_MAX_RATE the line reads the file itself (memory), the same finding
    monkeypatch.undo()
    monkeypatch.setattr("musicbrain_cli.scan.batch.NATIVE_TAP_MAX_RATE", 32000)
    calls = []
    real = spectrum.read_native
    monkeypatch.setattr(spectrum, "read_native", lambda *a, **k: calls.append(a) or real(*a, **k))
    again = next(e for e in analyse_track(path, det).track["evidence"]
                 if e["line"] == "artifacts")["details"]["artifacts"]
    assert len(calls) == 1 and again["p_ai"] == alone["p_ai"]


def test_discover_survives_symlink_loops_and_dedups(tmp_path):
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    (root / "a" / "x.wav").write_bytes(b"")
    os.symlink(root, root / "a" / "loop")
    os.symlink(root / "a" / "x.wav", root / "alias.wav")
    found = discover([root, root / "a" / "x.wav"])
    assert len(found.files) == 1
    assert any("loop" in reason for _, reason in found.skipped)
    assert discover([tmp_path / "nope"]).missing == [str(tmp_path / "nope")]


def test_a_deep_tree_is_walked_in_time_linear_in_its_depth(tmp_path, monkeypatch):
    """Each folder's real path (Discovery.read_folders) came from os.path.realpath, which
    lstat's every component: ~depth^2/2 lstat calls of paths ~depth long, so a crafted tree
    2,500 folders deep held the scan for minutes before its first track. The real paths are
    still those of os.path.realpath, through a link as well."""
    depth = 300
    top = tmp_path / "deep"
    leaf = top.joinpath(*["d"] * depth)
    leaf.mkdir(parents=True)
    (leaf / "x.wav").write_bytes(b"x")
    (top / "d" / "e").mkdir()
    os.symlink(top / "d" / "e", top / "d" / "d" / "link")
    (top / "d" / "e" / "y.wav").write_bytes(b"x")
    calls = []
    real_lstat = os.lstat
    monkeypatch.setattr(os, "lstat", lambda *a, **k: calls.append(a) or real_lstat(*a, **k))
    found = discover([top])
    monkeypatch.undo()
    assert len(calls) < 4 * depth, len(calls)
    assert [p.name for p in found.files] == ["x.wav", "y.wav"]
    folders_walked = {os.path.realpath(top.joinpath(*["d"] * n)) for n in range(depth + 1)}
    assert found.read_folders == folders_walked | {os.path.realpath(top / "d" / "e")}


def _scandir_refusing(monkeypatch, names):
    """os.scandir whose entries named in ``names`` cannot be stat'ed (EACCES), as a link
    into a folder without search permission is for anyone but root (tests run as root)."""
    import errno

    real_scandir = os.scandir

    class Entry:
        def __init__(self, entry):
            self._entry, self.name, self.path = entry, entry.name, entry.path

        def is_dir(self, **kw):
            if self.name in names:
                raise PermissionError(errno.EACCES, "Permission denied", self.path)
            return self._entry.is_dir(**kw)

    class Listing:
        def __init__(self, path):
            self._it = real_scandir(path)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self._it.close()

        def __iter__(self):
            return (Entry(e) for e in self._it)

    monkeypatch.setattr(os, "scandir", Listing)


def test_a_link_that_cannot_be_looked_into_is_a_failed_input_not_a_non_audio_skip(
        tmp_path, monkeypatch):
    """A link to a folder of audio in a folder without search permission cannot be stat'ed:
    the walk took it for a file and listed it as "not an audio file name extension", exit
    status 0, the album never read and nothing said that it could not be. A broken link
    (to nothing, to itself) is still no failure."""
    cat = tmp_path / "cat"
    (cat / "album").mkdir(parents=True)
    (cat / "album" / "t.wav").write_bytes(b"x")
    os.symlink(cat / "album", cat / "Locked")
    os.symlink(cat / "self", cat / "self")
    os.symlink(cat / "nowhere", cat / "dangling")
    (cat / "notes.txt").write_text("x")
    _scandir_refusing(monkeypatch, {"Locked"})
    found = discover([cat])
    assert found.files == [cat / "album" / "t.wav"]
    assert [(Path(p).name, "Permission denied" in why) for p, why in found.failed] == \
        [("Locked", True)]
    assert sorted(Path(p).name for p, _ in found.skipped) == ["dangling", "notes.txt", "self"]


def test_a_named_input_without_search_permission_fails_alone_not_the_scan(tmp_path, monkeypatch):
    """Path.is_dir raises PermissionError (it ignores only 'not found' errors): an input
    named on the command line (or listed) that is a link into a folder without search
    permission stopped discover(), and with it the whole scan, before any other input was
    read and with no catalog. It is now an input like a FIFO: the intake fails it, alone."""
    import errno

    from musicbrain_cli.audio.intake import sha256_file
    from musicbrain_cli.errors import InputError

    (tmp_path / "album").mkdir()
    os.symlink(tmp_path / "album", tmp_path / "Locked")
    (tmp_path / "a.wav").write_bytes(b"x")
    real_stat = os.stat

    def stat(path, *args, **kwargs):
        if os.fspath(path).endswith("Locked"):
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", stat)
    found = discover([tmp_path / "Locked", tmp_path / "a.wav"])
    assert found.files == [tmp_path / "Locked", tmp_path / "a.wav"]
    with pytest.raises(InputError, match="Permission denied"):
        sha256_file(found.files[0])          # the scan's first read of it: a failure row


@pytest.mark.parametrize("name", ["../../etc/passwd", "..", ".hidden.wav", "a/b\\c.mp3",
                                  "\u202eevil.wav", "名曲.flac", "x" * 500 + ".wav"])
def test_safe_name_cannot_escape(tmp_path, name):
    folder = safe_name(name, "ab" * 32)
    assert "/" not in folder and "\\" not in folder and not folder.startswith(".")
    assert folder.endswith("-" + "ab" * 6) and len(folder) <= 80
    assert (tmp_path / folder).resolve().parent == tmp_path.resolve()


def test_inputs_with_the_same_audio_and_folded_name_never_share_a_folder(tmp_path, model_dir):
    """a/track.wav and b/track.wav with the same bytes, or 'my song.wav' and 'my_song.wav',
    fold to one folder name: each input still gets its own folder, its own report naming it,
    and the catalog verifies; a later scan of one of them alone reuses its own folder, and
    a scan of a new twin into an output that holds the first never overwrites it."""
    cat = tmp_path / "cat"
    for rel in ("a/track.wav", "b/track.wav", "my song.wav", "my_song.wav"):
        (cat / rel).parent.mkdir(parents=True, exist_ok=True)
        encode_audio(cat / rel, tone(3.0), SR)
    out, keys = tmp_path / "out", tmp_path / "keys"
    base = ["--model", str(model_dir), "--report", "none", "--key", str(keys), "--quiet"]
    res = run(["scan", str(cat), "-o", str(out), *base])
    assert res.exit_code == 0, res.output
    recorded = {json.loads((f / "result.json").read_text())["input"]["path"]: f.name
                for f in folders(out)}
    assert sorted(Path(p).relative_to(cat).as_posix() for p in recorded) == \
        ["a/track.wav", "b/track.wav", "my song.wav", "my_song.wav"]
    rows = json.loads((out / "summary.json").read_text())["tracks"]
    links = {r["path"]: r["report"].split("/")[0] for r in rows}
    assert links == recorded and len(set(links.values())) == 4     # each row, its own folder
    ok = run(["verify", str(out), "--keys", str(keys)])
    assert ok.exit_code == 0 and "4 track folder(s)" in ok.output, ok.output
    res = run(["scan", str(cat / "b" / "track.wav"), "-o", str(out), *base])
    assert "0 analysed now, 1 skipped (already complete)" in res.output
    assert len(folders(out)) == 4
    # an output that holds one input's folder; its twin arrives in a later scan
    out2 = tmp_path / "out2"
    assert run(["scan", str(cat / "a"), "-o", str(out2), *base]).exit_code == 0
    first = folders(out2)
    assert run(["scan", str(cat / "b"), "-o", str(out2), *base]).exit_code == 0
    assert len(folders(out2)) == 2 and first[0] in folders(out2)
    names = {json.loads((f / "result.json").read_text())["input"]["path"] for f in folders(out2)}
    assert names == {str(cat / "a" / "track.wav"), str(cat / "b" / "track.wav")}
    assert len(json.loads((out2 / "summary.json").read_text())["tracks"]) == 2


def test_safe_name_salted_keeps_same_audio_inputs_apart():
    plain = safe_name("a/track.wav", "ab" * 32)
    one, two = (safe_name("track.wav", "ab" * 32, salt=p) for p in ("/m/a/track.wav",
                                                                    "/m/b/track.wav"))
    assert one != two and one.startswith(plain.split("-")[0] + "-") and len(one) == len(plain) + 9
    assert one == safe_name("track.wav", "ab" * 32, salt="/m/a/track.wav")       # stable


def test_twins_are_found_by_folded_stem_case_and_size_and_hashed_only_then(tmp_path):
    from musicbrain_cli.scan.discovery import same_audio_and_stem

    for rel, data in (("a/Track.wav", b"x" * 10), ("b/track.wav", b"x" * 10),
                      ("c/track.wav", b"y" * 10), ("d/01.flac", b"z" * 5), ("e/01.flac", b"z" * 6)):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(data)
    hashed = []

    def sha(p):
        hashed.append(p.name)
        return p.read_bytes().decode()

    files = sorted(tmp_path.rglob("*.*"))
    twins = same_audio_and_stem(files, sha)
    assert twins == {tmp_path / "a/Track.wav", tmp_path / "b/track.wav"}
    assert sorted(hashed) == ["Track.wav", "track.wav", "track.wav"]   # the 01.flac differ in size


def test_a_rerun_from_another_working_folder_reuses_every_folder(tmp_path, model_dir,
                                                                 monkeypatch):
    """result.json records the input path as typed, often relative: a rerun from another
    working folder must not take a finished folder for another input's (nor twins' salted
    folders, named after the real path, for new ones)."""
    cat = tmp_path / "music"
    for rel in ("a/track.wav", "b/track.wav", "solo.wav"):
        (cat / rel).parent.mkdir(parents=True, exist_ok=True)
        encode_audio(cat / rel, tone(3.0), SR)
    out = tmp_path / "out"
    base = ["-o", str(out), "--model", str(model_dir), "--report", "none", "--unsigned",
            "--quiet"]
    monkeypatch.chdir(tmp_path)
    assert run(["scan", "music", *base]).exit_code == 0
    assert len(folders(out)) == 3
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    res = run(["scan", "../music", *base])
    assert "0 analysed now, 3 skipped (already complete)" in res.output, res.output
    assert len(folders(out)) == 3
    assert len(json.loads((out / "summary.json").read_text())["tracks"]) == 3


def test_a_vanished_input_with_an_earlier_report_is_one_row(tmp_path, model_dir):
    """A listed file that is gone now, but was scanned before: the scan says it failed
    (exit 1), and the catalog shows its earlier report once, not an error row beside it."""
    cat = tmp_path / "cat"
    cat.mkdir()
    encode_audio(cat / "a.wav", tone(3.0), SR)
    listing = tmp_path / "list.txt"
    listing.write_text(f"{cat / 'a.wav'}\n  # an indented comment\n")
    out = tmp_path / "out"
    base = ["--paths-from", str(listing), "-o", str(out), "--model", str(model_dir),
            "--report", "none", "--unsigned", "--quiet"]
    assert run(["scan", *base]).exit_code == 0                     # the comment is no path
    (cat / "a.wav").unlink()
    res = run(["scan", *base])
    assert res.exit_code == 1 and "no such file" in res.output
    rows = json.loads((out / "summary.json").read_text())["tracks"]
    assert [r["status"] for r in rows] == ["ok"]


def test_a_path_list_is_read_verbatim_and_a_missing_listed_path_is_a_failure(tmp_path,
                                                                              model_dir):
    """A list file's paths keep their spaces (' sp.wav' is a file name), and a listed path
    that does not exist is a failed input in the catalog and the exit status, never a
    silent skip."""
    cat = tmp_path / "cat"
    cat.mkdir()
    encode_audio(cat / " sp.wav", tone(3.0), SR)
    listing = cat / "list.txt"
    listing.write_bytes(b"# uploads\r\n sp.wav\r\n\r\nnope.wav\n")
    from musicbrain_cli.scan.discovery import read_path_list

    assert read_path_list(listing) == [str(cat / " sp.wav"), str(cat / "nope.wav")]
    out = tmp_path / "out"
    res = run(["scan", "--paths-from", str(listing), "-o", str(out), "--model",
               str(model_dir), "--report", "none", "--unsigned", "--quiet"])
    assert res.exit_code == 1, res.output            # a listed file failed
    assert "nope.wav: no such file or folder" in res.output
    rows = {Path(r["path"]).name: r for r in
            json.loads((out / "summary.json").read_text())["tracks"]}
    assert rows[" sp.wav"]["status"] == "ok"
    assert rows["nope.wav"]["status"] == "error" and "no such file" in rows["nope.wav"]["error"]


def test_missing_input_is_a_usage_error(tmp_path, model_dir):
    res = run(["scan", str(tmp_path / "nope"), "-o", str(tmp_path / "o"), "--model",
               str(model_dir)])
    assert res.exit_code == 2


def test_labels_without_training_examples_are_never_attributed():
    """A label the card records as a constant head (no training example) is skipped, even
    when it is the group's most probable one."""
    from musicbrain_cli.scan.batch import _top_labels, untrained_labels
    from musicbrain_cli.taxonomy import Taxonomy

    tax = Taxonomy.from_groups([("source", ["human", "ai"], True),
                                ("composer", ["Bach", "Schubert", "Haydn"], True)])
    aggregate = {"composer/Bach": {"mean": 0.2}, "composer/Schubert": {"mean": 0.9},
                 "composer/Haydn": {"mean": 0.1}}
    card = {"training": {"head_refit": {"labels_constant": ["composer/Schubert"]}}}
    assert untrained_labels(card) == {"composer/Schubert"} and untrained_labels({}) == set()
    # finalize's record, on any card, counts as well
    assert untrained_labels({"training_data": {"labels_untrained": ["composer/Haydn"]},
                             **card}) == {"composer/Schubert", "composer/Haydn"}
    top = _top_labels(aggregate, tax, 2, {"composer/Bach": 0.9}, untrained_labels(card))
    assert [(r["label"], r["validation_ap"]) for r in top] == [("Bach", 0.9), ("Haydn", None)]
    assert [r["label"] for r in _top_labels(aggregate, tax, 1, {})] == ["Schubert"]


def test_report_none_links_each_track_to_its_result(tmp_path, tiny_model_dir):
    cat = tmp_path / "cat"
    cat.mkdir()
    encode_audio(cat / "a.flac", make_tone(6.0, 220.0, 0), SR)
    out = tmp_path / "out"
    assert run(["scan", str(cat), "-o", str(out), "--model", str(tiny_model_dir),
                "--report", "none", "--key", str(tmp_path / "keys"), "--quiet"]).exit_code == 0
    row = json.loads((out / "summary.json").read_text(encoding="utf-8"))["tracks"][0]
    assert row["report"].endswith("/result.json") and (out / row["report"]).is_file()


def test_a_decoder_comb_makes_the_artifact_line_accuse_and_the_report_shows_both_lines(
        tmp_path, tiny_model_dir, monkeypatch):
    """The scan's path for a line that accuses, with the artifact line's rule switched on (a
    refit may; the shipped line does not accuse on its own since session 28: see the test
    after this one)."""
    from artifact_signals import piano_melody, upsampled

    from musicbrain_cli.artifacts.detector import ArtifactDetector
    from musicbrain_cli.scan import batch

    shipped = batch.load_artifact_detector()
    monkeypatch.setattr(batch, "load_artifact_detector", lambda: ArtifactDetector(
        shipped.model, shipped.card, sha256=shipped.sha256, accusing=True))
    decoded, melody = tmp_path / "decoded.wav", tmp_path / "melody.flac"
    encode_audio(decoded, upsampled(24000, (8, 5, 4, 2), 10.0, seed=7), 24000)
    encode_audio(melody, piano_melody(44100, 12.0, seed=11), 44100)
    det = Detector.from_pretrained(tiny_model_dir, device="cpu")
    out = tmp_path / "out"
    scan([decoded, melody], out, det, options=ScanOptions(formats=("html",)))
    results = {json.loads(p.read_text())["input"]["file_name"]: json.loads(p.read_text())
               for p in out.glob("*/result.json")}
    ai = results["decoded.wav"]
    lines = {e["line"]: e for e in ai["evidence"]}
    assert [e["line"] for e in ai["evidence"]] == ["content", "artifacts", "symbolic", "provenance"]
    assert lines["artifacts"]["finding"] == "ai" and lines["artifacts"]["in_domain"]
    assert abs(lines["artifacts"]["details"]["artifacts"]["spacing_hz"] - 75.0) < 1.5
    assert ai["verdict"]["label"] == "ai" and "artifacts" in ai["verdict"]["ai_lines"]
    human_like = {e["line"]: e for e in results["melody.flac"]["evidence"]}
    assert human_like["artifacts"]["finding"] == "human"
    assert "artifacts" not in results["melody.flac"]["verdict"]["ai_lines"]
    (folder,) = [p for p in out.iterdir() if p.name.startswith("decoded")]
    html = (folder / "report.html").read_text()
    # page 1 names only the line that drove the verdict; section 1 shows every line in order
    summary, section = html.index('id="summary"'), html.index('id="verdict"')
    assert "Decoder artifacts (spectral" in html[summary:section]
    assert "Content model (what" not in html[summary:section]
    assert (html.index("Content model (what", section)
            < html.index("Decoder artifacts (spectral", section))
    assert "Decoder artifacts (spectral peaks left by neural decoders): AI generation" in html
    assert "multiples of 75.00 Hz" in html
    assert html.count('src="data:image/png') >= 2      # the residue figure and the timeline
    assert (folder / "figures" / "artifact_residue.png").is_file()


def test_the_shipped_artifact_line_withholds_human_but_never_accuses(tmp_path, tiny_model_dir):
    """Session 28 audit: common human production (naive-oscillator drones, sample-and-hold,
    pilot tones) reached the artifact line's operating point; the shipped line leans towards
    AI there instead of accusing, and the report says why."""
    from artifact_signals import upsampled

    decoded = tmp_path / "decoded.wav"
    encode_audio(decoded, upsampled(24000, (8, 5, 4, 2), 10.0, seed=7), 24000)
    det = Detector.from_pretrained(tiny_model_dir, device="cpu")
    scan([decoded], tmp_path / "out", det, options=ScanOptions(formats=("html",)))
    (path,) = (tmp_path / "out").glob("*/result.json")
    track = json.loads(path.read_text())
    art = {e["line"]: e for e in track["evidence"]}["artifacts"]
    assert art["finding"] == "inconclusive" and art["details"]["artifacts"]["reaches_operating_point"]
    assert "artifacts" not in track["verdict"]["ai_lines"] and track["verdict"]["label"] != "human"
    html = (path.parent / "report.html").read_text()
    assert "This line does not accuse on its own (since version 0.3.0)" in html
    assert "none (it does not accuse); doubt" in html


def test_reports_carry_what_the_model_card_says_the_model_cannot_do():
    from musicbrain_cli.scan.batch import _limitations

    notes = _limitations({"available": True, "in_domain": True}, [False], object(),
                         {"limitations": "  Accuses 3 of 325 unhumanised excerpts. "})
    assert notes[-1] == "The content model's card states: Accuses 3 of 325 unhumanised excerpts."
    assert not any("card states" in n for n in _limitations({"available": True,
                                                             "in_domain": True},
                                                            [False], object(), {}))


def test_a_fifo_or_a_link_to_dev_zero_is_a_per_file_failure_not_a_hang(tmp_path, model_dir):
    # Issue 23, observation 5: both hung the whole scan forever (hashed before checked).
    cat = tmp_path / "cat"
    cat.mkdir()
    encode_audio(cat / "good.flac", tone(5.0), SR)
    os.mkfifo(cat / "pipe.wav")
    (cat / "zero.wav").symlink_to("/dev/zero")
    (cat / "link.flac").symlink_to(cat / "good.flac")        # a link to a regular file is fine
    det = Detector.from_pretrained(model_dir, device="cpu")
    with deadline(120, "the scan"):
        result = scan([cat, cat / "pipe.wav"], tmp_path / "out", det,
                      options=ScanOptions(formats=()))
    errors = {Path(e.input_path).name: e.error for e in result.entries if e.error}
    assert set(errors) == {"pipe.wav", "zero.wav"}
    assert "FIFO" in errors["pipe.wav"] and "character device" in errors["zero.wav"]
    assert result.n_ok == 1      # good.flac, analysed once (link.flac is the same real file)


def test_file_names_with_escape_sequences_cannot_rewrite_the_console_or_the_csv(tmp_path,
                                                                                model_dir):
    # Issue 23, observation 7: a name holding ESC[2K, CR and a colour printed a fake green
    # "ALL VERIFIED" line through `failed:`; summary.csv kept the raw control characters.
    import csv

    cat = tmp_path / "cat"
    cat.mkdir()
    fake = "\x1b[2K\r\x1b[1;32mALL VERIFIED\x1b[0m\n\x9b2J.wav"
    (cat / fake).write_bytes(b"RIFF\x00\x00\x00\x00WAVEgarbage")
    (cat / "=HYPERLINK(1).wav").write_bytes(b"not audio at all")
    out = tmp_path / "out"
    # color=True: the runner passes escape sequences through as a terminal would receive them
    res = CliRunner().invoke(main, ["scan", str(cat), "-o", str(out), "--model", str(model_dir),
                                    "--report", "none", "--unsigned", "--quiet"],
                             catch_exceptions=False, color=True)
    assert res.exit_code == 1
    # the end-of-scan summary lists each failure on one indented line under "failed"
    lines = res.output.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.strip().startswith("failed"))
    failed = [ln for ln in lines[start + 1:] if ln.startswith("    ")]
    assert len(failed) == 2, res.output               # one line each: no forged extra line
    for ch in ("\x1b", "\r", "\x9b"):
        assert ch not in res.output
    assert "\\u{1b}[1;32mALL VERIFIED" in res.output
    raw = (out / "summary.csv").read_text(encoding="utf-8")
    assert not any(c in raw for c in ("\x1b", "\x9b", "\n\x9b"))
    names = {r["file_name"] for r in csv.DictReader(raw.splitlines())}
    assert "'=HYPERLINK(1).wav" in names
    assert any(n.startswith("\\u{1b}[2K\\u{d}") for n in names)


def _domain_of_noisy_tones(det, rng):
    """OOD statistics fitted on the tiny model's windows of noisy harmonic tones (its
    "training domain" here), with the profile threshold at the 99th percentile of held-out
    windows of the same kind, as finalize fits it."""
    import torch

    from musicbrain_cli.model.ood import fit_ood, fit_threshold, spectral_profile

    fe = det.config.front_end
    n = int(fe.window_s * SR)

    def windows(k):
        waves = [make_tone(fe.window_s, float(rng.uniform(110, 880)), int(rng.integers(1 << 30)))
                 + 0.05 * rng.standard_normal(n).astype(np.float32) for _ in range(k)]
        with torch.inference_mode():
            spec = det.front_end(torch.from_numpy(np.stack(waves)))
            emb = det.model.pool(det.model.forward_features(spec)).numpy()
        return emb, spectral_profile(spec, floor=fe.silence_level)

    emb, prof = windows(12)
    stats = fit_ood(emb, np.arange(12) % 2, prof, profile_k=3)
    _, held_out = windows(6)
    card = {"method": "both", "quantile": 0.99,
            "checks": {"embedding": {"threshold": 1e9},
                       "spectral_profile": {"threshold": fit_threshold(
                           stats.profile_score(held_out))}}}
    return stats, card


def test_style_attribution_is_withheld_out_of_domain(tmp_path, model_dir):
    # Issue 23, observation 10: on pure sine tones, flagged out of domain, the index still
    # showed "composer/Monteverdi 0.92". The raw scores stay in result.json, marked.
    from musicbrain_cli.model.ood import WITHHELD
    from musicbrain_cli.report.catalog import CatalogEntry, summary_row
    from musicbrain_cli.report.html import render_report_html

    det = Detector.from_pretrained(model_dir, device="cpu")
    stats, det.card["ood"] = _domain_of_noisy_tones(det, np.random.default_rng(10))
    det.ood = stats          # the detector carries its domain statistics (one analysis path)
    t = np.arange(int(6.0 * SR)) / SR
    encode_audio(tmp_path / "sine.flac", (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), SR)
    encode_audio(tmp_path / "tone.flac", tone(6.0, 330.0, seed=3) +
                 0.05 * np.random.default_rng(4).standard_normal(t.size).astype(np.float32), SR)
    fast = ScanOptions(formats=(), explain_windows=0)   # saliency is not what is tested here

    sine = analyse_track(tmp_path / "sine.flac", det, options=fast).track
    assert sine["ood"]["available"] and not sine["ood"]["in_domain"], sine["ood"]
    assert sine["labels_withheld"].startswith("outside the model's domain")
    assert "average spectrum" in sine["labels_withheld"]               # which check, said
    assert sine["labels"] and all(0 <= x["p"] <= 1 for x in sine["labels"])   # raw scores kept
    row = summary_row(CatalogEntry(str(tmp_path / "sine.flac"), sine, "s/report.html"))
    assert row["top_labels"] == WITHHELD == "withheld: outside the model's domain"
    html = render_report_html(sine, {})
    style = html.split('id="style"')[1].split("</section>")[0]
    assert "withheld: outside the model" in style
    for x in sine["labels"]:
        assert f"<td>{x['label']}</td>" not in style                   # no label, no probability

    # in domain, the attribution is shown as before
    near = analyse_track(tmp_path / "tone.flac", det, options=fast).track
    assert near["ood"]["in_domain"] and near["labels_withheld"] is None
    shown = summary_row(CatalogEntry(str(tmp_path / "tone.flac"), near, "t/report.html"))
    assert shown["top_labels"] != WITHHELD and "=" in shown["top_labels"]


def test_alignment_records_which_note_estimator_ran(tmp_path, model_dir, monkeypatch):
    """The built-in estimator stands in when basic-pitch cannot run, and result.json says so
    (issue 26 item 2); "builtin" asked for is used without a fallback."""
    import sys

    from musicbrain_cli.alignment import pitch

    pitch._basic_pitch_model.cache_clear()
    monkeypatch.setitem(sys.modules, "basic_pitch", None)
    encode_audio(tmp_path / "x.flac", tone(5.0, 262.0), SR)
    det = Detector.from_pretrained(model_dir, device="cpu")
    assert ScanOptions().notes == "auto"         # basic-pitch where installed, recorded either way
    auto = analyse_track(tmp_path / "x.flac", det,
                         options=ScanOptions(formats=(), explain_windows=1, notes="auto")).track
    rec = auto["alignment"]["note_estimator"]
    assert rec["estimator"] == "builtin" and rec["requested"] == "auto"
    assert "not installed" in rec["fallback"]
    assert auto["explanations"][0]["note_estimator"]["estimator"] == "builtin"
    assert "estimate" in auto["alignment"]["notes_source"]     # the report's caveat keys on it
    assert auto["options"]["notes"] == "auto"
    fixed = analyse_track(tmp_path / "x.flac", det,
                          options=ScanOptions(formats=(), explain_windows=1, notes="builtin")).track
    assert fixed["alignment"]["note_estimator"] == {"estimator": "builtin", "requested": "builtin",
                                                    "fallback": None}
    pitch._basic_pitch_model.cache_clear()


def test_a_model_or_path_list_that_cannot_be_read_is_a_usage_error(tmp_path, model_dir):
    """The README says usage errors exit 2 and 1 means a file failed: a model that does not
    exist and a path list that is not UTF-8 exited 1."""
    encode_audio(tmp_path / "a.flac", tone(3.0), SR)
    base = ["-o", str(tmp_path / "o"), "--unsigned", "--quiet"]
    res = run(["scan", str(tmp_path / "a.flac"), "--model", str(tmp_path / "no-model"), *base])
    assert res.exit_code == 2 and "no-model" in res.output, res.output
    listing = tmp_path / "list.txt"
    listing.write_bytes(b"\xff\xfe not utf-8\n")
    res = run(["scan", "--paths-from", str(listing), "--model", str(model_dir), *base])
    assert res.exit_code == 2 and "not UTF-8" in res.output, res.output


def test_an_output_folder_inside_the_scanned_folder_is_not_walked(tmp_path):
    """With OUT inside the scanned folder, every rerun listed each report file as 'skipped:
    not an audio file name extension' (51 lines for 6 tracks)."""
    cat = tmp_path / "cat"
    (cat / "out" / "track-0123").mkdir(parents=True)
    (cat / "out" / "track-0123" / "report.pdf").write_bytes(b"%PDF-")
    (cat / "out" / "track-0123" / "old.wav").write_bytes(b"")
    (cat / "a.wav").write_bytes(b"")
    (cat / "notes.txt").write_text("x")
    found = discover([cat], output=cat / "out")
    assert found.files == [cat / "a.wav"]
    assert [Path(p).name for p, _ in found.skipped] == ["notes.txt"]
    walked = discover([cat])          # without output, the folder is an input like any other
    assert cat / "out" / "track-0123" / "old.wav" in walked.files


def test_a_scans_temporary_folder_among_the_inputs_is_named_not_skipped_silently(tmp_path):
    (tmp_path / ".tmp-abc").mkdir()
    (tmp_path / ".tmp-abc" / "x.wav").write_bytes(b"")
    (tmp_path / "a.wav").write_bytes(b"")
    found = discover([tmp_path])
    assert found.files == [tmp_path / "a.wav"]
    assert [(Path(p).name, "temporary folder" in why) for p, why in found.skipped] == \
        [(".tmp-abc", True)]


def test_discovery_passes_over_nothing_silently(tmp_path):
    """Audit (session 26): a FIFO named on the command line was "skipped" with exit 0 and no
    catalog row (inside a folder it is a failure); a file named exactly `.wav` was dropped
    as if hidden; a list line `#1 hit.ogg` naming an existing file was read as a comment."""
    from musicbrain_cli.errors import InputError
    from musicbrain_cli.scan.discovery import discover, read_path_list

    cat = tmp_path / "cat"
    cat.mkdir()
    for name in (".wav", "a.flac", ".hidden-notes", "#1 hit.ogg"):
        (cat / name).write_bytes(b"x")
    os.mkfifo(tmp_path / "pipe.wav")
    found = discover([cat, tmp_path / "pipe.wav"])
    names = sorted(Path(p).name for p in found.files)
    assert names == ["#1 hit.ogg", ".wav", "a.flac", "pipe.wav"], names
    assert not any(".hidden-notes" in str(p) for p, _ in found.skipped)   # hidden: by design
    listing = cat / "list.txt"
    listing.write_text("# my uploads\n#1 hit.ogg\na.flac\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"'\./#1 hit\.ogg' to scan it"):
        read_path_list(listing)
    listing.write_text("# my uploads\n./#1 hit.ogg\na.flac\n", encoding="utf-8")
    assert read_path_list(listing) == [str(cat / "./#1 hit.ogg"), str(cat / "a.flac")]


def test_an_unexpected_fault_on_one_file_fails_that_file_not_the_batch(tmp_path, model_dir,
                                                                       monkeypatch):
    """Audit (session 26): a library fault on one hostile file (mutagen's IndexError) ended
    the whole scan with a traceback: the files after it were never analysed and no catalog
    was written. It is now that file's failure row."""
    from musicbrain_cli.scan import batch

    cat = tmp_path / "cat"
    cat.mkdir()
    encode_audio(cat / "a.flac", tone(3.0), SR)
    encode_audio(cat / "b.flac", tone(3.0, 330.0), SR)
    real = batch.analyse_track

    def faulty(path, *args, **kwargs):
        if Path(path).name == "a.flac":
            raise IndexError("bytearray index out of range")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(batch, "analyse_track", faulty)
    det = Detector.from_pretrained(model_dir, device="cpu")
    result = scan([cat], tmp_path / "out", det, options=ScanOptions(formats=()))
    errors = {Path(e.input_path).name: e.error for e in result.entries if e.error}
    assert set(errors) == {"a.flac"} and "IndexError" in errors["a.flac"]
    assert result.n_ok == 1
    rows = json.loads((tmp_path / "out" / "summary.json").read_text())["tracks"]
    assert sorted(r["status"] for r in rows) == ["error", "ok"]


def test_a_file_replaced_during_its_analysis_fails_instead_of_mixing_two_files(
        tmp_path, model_dir, monkeypatch):
    """Audit (session 26): the file was hashed when probed and decoded later by its path; a
    file swapped in between got one file's SHA-256 beside the other's verdict (3 runs in 6)."""
    cat = tmp_path / "cat"
    cat.mkdir()
    encode_audio(cat / "x.flac", tone(3.0), SR)
    encode_audio(tmp_path / "other.flac", tone(3.0, 440.0, seed=3), SR)
    from musicbrain_cli.audio import intake

    real = intake.probe

    def probe_then_swap(path, **kw):
        info = real(path, **kw)
        os.replace(tmp_path / "other.flac", path)           # the swap lands after the hash
        return info

    monkeypatch.setattr(intake, "probe", probe_then_swap)
    det = Detector.from_pretrained(model_dir, device="cpu")
    result = scan([cat], tmp_path / "out", det, options=ScanOptions(formats=()))
    errors = [e.error for e in result.entries if e.error]
    assert len(errors) == 1 and "changed while it was analysed" in errors[0], errors


def test_a_named_input_that_cannot_be_looked_at_is_not_called_missing(tmp_path, monkeypatch):
    """A file in a folder without search permission, named on the command line, was refused
    as "no such file or folder" (exit 2): os.path.lexists is False for what it cannot look
    at. It is there; the scan takes it and fails it on its own, with the system's reason."""
    import errno

    locked = tmp_path / "locked" / "a.wav"
    real_lstat, real_stat = os.lstat, os.stat

    def refuse(real):
        def stat(path, *args, **kwargs):
            if os.fspath(path) == str(locked):
                raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
            return real(path, *args, **kwargs)
        return stat

    monkeypatch.setattr(os, "lstat", refuse(real_lstat))
    monkeypatch.setattr(os, "stat", refuse(real_stat))
    res = CliRunner().invoke(main, ["scan", str(locked), "-o", str(tmp_path / "out"),
                                    "--unsigned", "--quiet", "--model", str(tmp_path / "nosuch")])
    assert "no such file or folder" not in res.output, res.output
    missing = CliRunner().invoke(main, ["scan", str(tmp_path / "absent.wav"), "-o",
                                        str(tmp_path / "out2"), "--unsigned", "--quiet"])
    assert missing.exit_code == 2 and "no such file or folder" in missing.output


def test_the_limitation_on_windows_not_judged_agrees_in_number():
    """'1 of the 1 analysis windows were not judged' (review of session 47)."""
    from musicbrain_cli.scan.batch import _limitations

    def said(quiet):
        notes = _limitations({"available": True, "in_domain": True}, [False] * len(quiet),
                             object(), quiet=quiet)
        return next(n for n in notes if "not judged for silence" in n)

    assert said([True]).startswith("The only analysis window was not judged")
    assert said([True, False, False]).startswith("1 of the 3 analysis windows was not judged")
    assert said([True, True, False]).startswith("2 of the 3 analysis windows were not judged")
