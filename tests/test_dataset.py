"""Data set format: writer, resume after interruption, reader, validation, splits by work."""

import json
from collections import Counter

import numpy as np
import pytest
import soundfile

from musicbrain_cli.errors import DatasetError, TaxonomyError
from musicbrain_cli.taxonomy import Taxonomy
from musicbrain_cli.data.dataset import (MANIFEST_COLUMNS, ClipRecord, Dataset,
                                             DatasetWriter, assign_splits, plan_clips,
                                             slice_midi)

SR = 8000
TAX = Taxonomy.from_groups([("source", ["human", "ai"], True),
                            ("period", ["Baroque", "Classical", "Romantic"], True)])


def tone(hz, seconds=0.5, seed=0):
    t = np.arange(int(seconds * SR)) / SR
    noise = np.random.default_rng(seed).normal(0, 0.01, t.size)
    return (0.5 * np.sin(2 * np.pi * hz * t) + noise).astype(np.float32)


def record(i, work, split="train", period="Baroque", source="human"):
    return ClipRecord(clip_id=f"c{i:03d}", source=source, period=period, work_id=work,
                      split=split, renderer="test", origin=f"item{i}#t=0,0.5")


def test_assign_splits_groups_by_work_and_is_deterministic():
    works = [f"w{i}" for i in range(100)]
    a = assign_splits(works * 3, seed=1)            # repeated ids: one entry per work
    assert set(a) == set(works)
    assert Counter(a.values()) == {"train": 80, "val": 10, "test": 10}
    assert a == assign_splits(list(reversed(works)), seed=1)   # order-free
    assert a != assign_splits(works, seed=2)
    small = assign_splits(["x", "y", "z"], seed=0)
    assert sorted(small.values()) == ["test", "train", "val"]  # every split gets a work
    with pytest.raises(DatasetError):
        assign_splits(["a", ""], seed=0)
    with pytest.raises(DatasetError):
        assign_splits(["a"], fractions={"train": -1.0}, seed=0)


def test_write_then_read_round_trip(tmp_path):
    root = tmp_path / "ds"
    with DatasetWriter(root, TAX, sample_rate=SR, name="unit") as w:
        w.add(record(0, "A"), tone(440))
        w.add(record(1, "A", period="Classical"), tone(220, 1.0))
        w.add(record(2, "B", split="test", period="", source="ai"), tone(330))
        w.skip("broken.abc", "music21 cannot parse it")
    ds = Dataset.load(root)
    ds.validate()
    assert [r["clip_id"] for r in ds.rows] == ["c000", "c001", "c002"]
    assert list(ds.rows[0]) == list(MANIFEST_COLUMNS)
    assert ds.rows[1]["duration_s"] == "1.000"
    assert [r["clip_id"] for r in ds.split("test")] == ["c002"]
    y, sr = soundfile.read(ds.audio_path(ds.rows[0]), dtype="float32")
    assert sr == SR and np.max(np.abs(y - tone(440))) < 1e-3   # 16-bit FLAC
    assert ds.score_path(ds.rows[0]) is None
    card = json.loads((root / "card.json").read_text())
    assert card["labels"]["period"]["Baroque"] == {"train": 1, "test": 0}
    assert card["labels"]["period"]["(unknown)"] == {"train": 0, "test": 1}
    assert card["labels"]["source"]["ai"]["test"] == 1
    assert card["splits"]["train"] == {"clips": 2, "hours": round(1.5 / 3600, 4), "works": 1}
    assert "| Baroque | 1 | 0 |" in (root / "card.md").read_text()
    report = json.loads((root / "build_report.json").read_text())
    assert report["skipped"] == [{"item": "broken.abc", "reason": "music21 cannot parse it"}]
    assert not (root / ".journal.jsonl").exists()
    targets, mask = ds.encode(ds.rows[2])
    assert targets.tolist() == [0, 1, 0, 0, 0] and mask.tolist() == [1, 1, 0, 0, 0]


def test_scores_are_written_beside_audio(tmp_path):
    import pretty_midi

    pm = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(0)
    inst.notes += [pretty_midi.Note(80, 60, 0.0, 1.0), pretty_midi.Note(80, 64, 1.5, 3.0)]
    pm.instruments.append(inst)
    clip = slice_midi(pm, 1.0, 2.0)
    assert [(n.pitch, n.start, n.end) for n in clip.instruments[0].notes] == [(64, 0.5, 1.0)]
    rec = record(0, "A")
    rec.score = clip
    with DatasetWriter(tmp_path / "ds", TAX, sample_rate=SR) as w:
        w.add(rec, tone(440))
    ds = Dataset.load(tmp_path / "ds")
    back = pretty_midi.PrettyMIDI(str(ds.score_path(ds.rows[0])))
    assert [n.pitch for n in back.instruments[0].notes] == [64]


def test_resume_after_an_interrupted_build(tmp_path):
    root = tmp_path / "ds"
    with pytest.raises(KeyboardInterrupt):
        with DatasetWriter(root, TAX, sample_rate=SR) as w:
            w.add(record(0, "A"), tone(440))
            w.add(record(1, "B"), tone(220))
            raise KeyboardInterrupt
    assert not (root / "manifest.csv").exists()
    # a crash mid-clip leaves a temp file, and one between audio and journal an orphan
    (root / "audio" / ".tmp-c002.flac").write_bytes(b"half")
    soundfile.write(root / "audio" / "c003.flac", tone(100), SR)
    with pytest.raises(DatasetError, match="unfinished build"):
        Dataset.load(root)
    with DatasetWriter(root, TAX, sample_rate=SR) as w:
        assert w.has("c000") and w.has("c001")
        assert not w.has("c003")
        assert not (root / "audio" / "c003.flac").exists()
        assert not (root / "audio" / ".tmp-c002.flac").exists()
        w.add(record(2, "C"), tone(330))
    ds = Dataset.load(root)
    ds.validate()
    assert [r["clip_id"] for r in ds.rows] == ["c000", "c001", "c002"]
    # a clip whose audio vanished after the build is rebuilt on the next run
    (root / "audio" / "c001.flac").unlink()
    with DatasetWriter(root, TAX, sample_rate=SR) as w:
        assert w.has("c000") and not w.has("c001")
    with pytest.raises(DatasetError, match="Hz"):
        DatasetWriter(root, TAX, sample_rate=SR * 2)


def test_writer_rejects_bad_records(tmp_path):
    with DatasetWriter(tmp_path / "ds", TAX, sample_rate=SR) as w:
        with pytest.raises(TaxonomyError, match="Medieval"):
            w.add(record(0, "A", period="Medieval"), tone(440))
        with pytest.raises(DatasetError, match="split"):
            w.add(record(1, "A", split="holdout"), tone(440))
        with pytest.raises(DatasetError, match="clip id"):
            w.add(ClipRecord("../evil", "human", work_id="A", split="train"), tone(440))
        with pytest.raises(DatasetError, match="NaN"):
            w.add(record(2, "A"), np.full(100, np.nan, np.float32))
        with pytest.raises(DatasetError, match="mono"):
            w.add(record(3, "A"), np.zeros((2, 100), np.float32))


def test_validate_finds_a_work_in_two_splits_and_missing_audio(tmp_path):
    with DatasetWriter(tmp_path / "ds", TAX, sample_rate=SR) as w:
        w.add(record(0, "A", split="train"), tone(440))
        w.add(record(1, "A", split="test"), tone(440))
    ds = Dataset.load(tmp_path / "ds")
    (tmp_path / "ds" / "audio" / "c000.flac").unlink()
    with pytest.raises(DatasetError) as err:
        ds.validate()
    assert "'A' is in several splits" in str(err.value)
    assert "c000" in str(err.value) and "missing" in str(err.value)


def test_plan_clips_covers_the_piece_without_loss():
    assert plan_clips(95.0) == [(0, 30), (30, 60), (60, 90), (90, 95.0)]
    assert plan_clips(93.0) == [(0, 30), (30, 60), (60, 93.0)]     # 3 s tail joins
    assert plan_clips(2.0) == [(0, 2.0)]
    assert plan_clips(0.0) == []


def test_a_clip_dropped_before_a_kill_stays_dropped_and_listed(tmp_path):
    """Review (session 27): a resumed build replayed the journal's removals but forgot them,
    so build_report.json no longer listed the clips removed before the kill."""
    root = tmp_path / "ds"
    with DatasetWriter(root, TAX, sample_rate=SR) as w:
        w.add(record(0, "A"), tone(440), source="one")
        w.add(record(1, "B"), tone(220), source="two")
    with pytest.raises(KeyboardInterrupt):
        with DatasetWriter(root, TAX, sample_rate=SR) as w:
            assert w.source_of("c000") == "one" and w.clip_ids("c00") == ["c000", "c001"]
            w.drop("c000", "its piece changed")
            raise KeyboardInterrupt
    with DatasetWriter(root, TAX, sample_rate=SR) as w:
        assert not w.has("c000") and w.source_of("c001") == "two"
        assert w.dropped == [{"clip": "c000", "reason": "its piece changed"}]
    report = json.loads((root / "build_report.json").read_text(encoding="utf-8"))
    assert report["dropped"] == [{"clip": "c000", "reason": "its piece changed"}]
    assert [r["clip_id"] for r in Dataset.load(root).rows] == ["c001"]


def test_a_piece_fingerprint_changes_with_the_reverb_and_the_soundfont_file(tmp_path):
    import shutil

    import pretty_midi

    from musicbrain_cli.data.pieces import piece_fingerprint
    from musicbrain_cli.data.render import Humanize, SoundFont, get_soundfont

    midi = pretty_midi.PrettyMIDI()
    piano = pretty_midi.Instrument(0)
    piano.notes.append(pretty_midi.Note(velocity=80, pitch=60, start=0.0, end=1.0))
    midi.instruments.append(piano)
    font = get_soundfont("timgm6mb")
    base = piece_fingerprint(midi, font)
    assert piece_fingerprint(midi, font) == base
    assert piece_fingerprint(midi, font, reverb=Humanize(reverb=0.5)) != base
    edited = tmp_path / "edited.sf2"
    shutil.copy(font.path, edited)
    with open(edited, "ab") as fh:
        fh.write(b"\0")
    assert piece_fingerprint(midi, SoundFont(font.name, edited)) != base


@pytest.mark.parametrize("cell", ["../outside.flac", "ABSOLUTE", "audio/../../outside.flac",
                                  "LINK"])
def test_a_manifest_path_leading_out_of_the_data_set_is_refused(tmp_path, cell):
    """A manifest cell naming a file outside the folder (``..``, an absolute path, a link out)
    was read by the cache and copied by a merge as if it were a clip of the data set."""
    root = tmp_path / "ds"
    with DatasetWriter(root, TAX, sample_rate=SR) as w:
        w.add(record(0, "A"), tone(440))
        w.add(record(1, "B"), tone(330))
    outside = tmp_path / "outside.flac"
    outside.write_bytes((root / "audio" / "c001.flac").read_bytes())
    if cell == "ABSOLUTE":
        cell = str(outside)
    elif cell == "LINK":
        (root / "audio" / "c000.flac").unlink()
        (root / "audio" / "c000.flac").symlink_to(outside)
        cell = "audio/c000.flac"
    text = (root / "manifest.csv").read_text().replace("audio/c000.flac", cell)
    (root / "manifest.csv").write_text(text)
    with pytest.raises(DatasetError, match="c000.*(inside|leads out of) the data set folder"):
        Dataset.load(root)
