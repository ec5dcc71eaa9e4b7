"""MusicNet adapter on a tiny tree in the real layout, made here."""

import csv
import json

import numpy as np
import pretty_midi
import pytest

from musicbrain_cli.errors import DatasetError
from musicbrain_cli.data.dataset import Dataset
from musicbrain_cli.data.musicnet import (ENSEMBLE_INSTRUMENTATION, build_musicnet_dataset,
                                              ensemble_instrumentation, labels_to_midi)
from musicbrain_cli.data.render import get_soundfont

META = [
    # id, composer, composition, movement, ensemble, catalog_name, seconds
    ("1727", "Schubert", "Piano Quintet in A major", "1. Allegro vivace", "Piano Quintet", "D667"),
    ("1728", "Schubert", "Piano Quintet in A major", "2. Andante", "Piano Quintet", "D667"),
    ("2186", "Bach", "Cello Suite 1", "1. Prelude", "Solo Cello", "BWV1007"),
    ("2303", "Beethoven", "Piano Sonata No 1", "1. Allegro", "Solo Piano", "OP2NO1"),
    ("1788", "Mozart", "Serenade in E-flat major", "1. Allegro", "Pairs Clarinet-Horn-Bassoon", "K375"),
]


def label_rows(rng, seconds, instrument, beats_per_s=2.0):
    rows, beat = [], 0.0
    while beat / beats_per_s < seconds:
        dur = float(rng.choice([0.5, 1.0]))
        t0 = int(beat / beats_per_s * 44100)
        t1 = int((beat + dur) / beats_per_s * 44100)
        rows.append([t0, t1, instrument, int(rng.integers(48, 72)), beat, dur,
                     "Quarter" if dur == 1.0 else "Eighth"])
        beat += dur
    return rows


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "musicnet"
    rng = np.random.default_rng(0)
    for d in ("train_data", "train_labels", "test_data", "test_labels", "musicnet_midis/Mozart"):
        (root / d).mkdir(parents=True)
    with open(root / "musicnet_metadata.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "composer", "composition", "movement", "ensemble", "source",
                    "transcriber", "catalog_name", "seconds"])
        for pid, comp, title, mov, ens, cat in META:
            w.writerow([pid, comp, title, mov, ens, "European Archive", "x", cat, 3])
    instruments = {"1727": 1, "1728": 1, "2186": 43, "2303": 1}
    for pid, inst in instruments.items():
        split = "test" if pid == "2303" else "train"
        with open(root / f"{split}_labels" / f"{pid}.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["start_time", "end_time", "instrument", "note", "start_beat",
                        "end_beat", "note_value"])
            w.writerows(label_rows(rng, 3.0, inst))
            if pid == "1727":  # a second instrument: violin, GM program 41 (1-based)
                w.writerows(label_rows(rng, 3.0, 41))
        (root / f"{split}_data" / f"{pid}.wav").write_bytes(b"RIFF")  # never read
    # 1788 has no label CSV, only the MIDI of the 2021 release
    pm = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(71)
    inst.notes = [pretty_midi.Note(80, 60 + k, 0.5 * k, 0.5 * k + 0.5) for k in range(5)]
    pm.instruments.append(inst)
    pm.write(str(root / "musicnet_midis/Mozart/1788_serenade.mid"))
    # a recording with no metadata row, and one with metadata but no notes at all
    (root / "train_data" / "9999.wav").write_bytes(b"RIFF")
    return root


def test_labels_become_midi_with_0_based_programs(tree):
    midi = labels_to_midi(tree / "train_labels" / "1727.csv", timing="score")
    assert sorted(i.program for i in midi.instruments) == [0, 40]  # piano, violin
    perf = labels_to_midi(tree / "train_labels" / "1727.csv", timing="performance")
    # the fake performance is exactly 2 beats/s, so both timings agree
    a = sorted((n.start, n.pitch) for i in midi.instruments for n in i.notes)
    b = sorted((n.start, n.pitch) for i in perf.instruments for n in i.notes)
    assert np.allclose([x[0] for x in a], [x[0] for x in b], atol=1e-3)
    assert [x[1] for x in a] == [x[1] for x in b]


def test_label_errors_name_the_file(tmp_path):
    p = tmp_path / "1.csv"
    p.write_text("start_time,end_time,instrument,note,start_beat,end_beat,note_value\n"
                 "0,44100,0,60,0,1,Quarter\n")
    with pytest.raises(DatasetError, match="1.csv.*instrument 0"):
        labels_to_midi(p)


def test_every_musicnet_ensemble_maps_to_notagen():
    assert set(ENSEMBLE_INSTRUMENTATION.values()) <= {"Keyboard", "Chamber"}
    assert ensemble_instrumentation("Solo Piano") == "Keyboard"
    assert ensemble_instrumentation("Wind Quintet") == "Chamber"
    assert ensemble_instrumentation("Symphony Orchestra") == "Orchestral"
    assert ensemble_instrumentation("Voice and Piano") == "Art Song"
    assert ensemble_instrumentation("Theremin") == ""


@pytest.mark.filterwarnings("ignore:splits .* hold no work")
def test_build_labels_splits_and_resume(tree, tmp_path):
    out = tmp_path / "ds"
    font = get_soundfont("timgm6mb")
    first = build_musicnet_dataset(tree, out, soundfonts=[font], seed=3, limit=2, clip_s=2.0)
    assert first["pieces"] == 2 and first["new_clips"] > 0
    summary = build_musicnet_dataset(tree, out, soundfonts=[font], seed=3, clip_s=2.0)
    assert summary["new_clips"] == summary["clips"] - first["clips"]  # resumed, not redone
    again = build_musicnet_dataset(tree, out, soundfonts=[font], seed=3, clip_s=2.0)
    assert again["new_clips"] == 0 and again["clips"] == summary["clips"]
    # another cut into the same folder would add overlapping clips of another length
    # (audit, session 26): refused, as data notagen's is
    with pytest.raises(DatasetError, match="clip_s 2.0, not 1.0"):
        build_musicnet_dataset(tree, out, soundfonts=[font], seed=3, clip_s=1.0)

    ds = Dataset.load(out)
    ds.validate()
    by_piece = {}
    for r in ds.rows:
        by_piece.setdefault(r["clip_id"].rsplit("-", 1)[0], []).append(r)
    assert set(by_piece) == {"mn-1727", "mn-1728", "mn-2186", "mn-2303", "mn-1788"}
    r = by_piece["mn-1727"][0]
    assert (r["source"], r["generator"], r["period"], r["composer"], r["instrumentation"]) == \
        ("human", "-", "Romantic", "Schubert, Franz", "Chamber")
    assert by_piece["mn-2186"][0]["composer"] == "Bach, Johann Sebastian"
    assert by_piece["mn-2186"][0]["period"] == "Baroque"
    assert by_piece["mn-2303"][0]["instrumentation"] == "Keyboard"
    assert by_piece["mn-1788"][0]["origin"].startswith("musicnet_midis/Mozart/1788_serenade.mid#t=0.000,")
    # ~3 s of notes + 1 s release tail, cut at 2 s -> two contiguous clips (the short
    # remainder joins the last one), covering the whole piece
    end = labels_to_midi(tree / "train_labels" / "1727.csv").get_end_time() + 1.0
    clips = sorted(by_piece["mn-1727"], key=lambda r: r["clip_id"])
    assert [c["origin"] for c in clips] == ["train_labels/1727.csv#t=0.000,2.000",
                                            f"train_labels/1727.csv#t=2.000,{end:.3f}"]
    assert sum(float(c["duration_s"]) for c in clips) == pytest.approx(end, abs=0.01)
    # both movements of D667 are one work, so one split; no work in two splits
    splits = {}
    for r in ds.rows:
        splits.setdefault(r["work_id"], set()).add(r["split"])
    assert all(len(s) == 1 for s in splits.values())
    assert splits["musicnet:Schubert, Franz:D667"] and len(splits) == 4
    assert all(ds.score_path(r).is_file() for r in ds.rows)
    report = json.loads((out / "build_report.json").read_text())
    assert {s["item"] for s in report["skipped"]} == {"9999"}


def test_a_midi_without_a_metadata_row_is_listed_and_a_repeated_id_refused(tree):
    """A MIDI file whose id has no metadata row disappeared without a reason; a metadata
    file that repeats an id let its last row win, relabelling the piece silently."""
    from musicbrain_cli.data.musicnet import discover

    (tree / "musicnet_midis" / "Mozart" / "7777_nometa.mid").write_bytes(
        (tree / "musicnet_midis" / "Mozart" / "1788_serenade.mid").read_bytes())
    pieces, skipped = discover(tree)
    assert ("7777", "no row in musicnet_metadata.csv") in skipped
    assert "7777" not in {p.id for p in pieces}
    meta = tree / "musicnet_metadata.csv"
    lines = meta.read_text().splitlines()
    meta.write_text("\n".join(lines + [lines[1].replace("European Archive", "again")]) + "\n")
    with pytest.raises(DatasetError, match="two rows for id"):
        discover(tree)


def test_a_composer_that_resolves_to_no_one_or_several_is_masked_and_listed(tree, tmp_path):
    """MusicNet metadata naming 'Schumann' (both Schumanns are known) or 'Mozart, Leopold'
    kept the name as written as a composer label of its own, where docs/dataset-format.md
    says the cell is left empty; the names are listed in the build report instead."""
    meta = tree / "musicnet_metadata.csv"
    text = meta.read_text().replace(",Schubert,Piano Quintet in A major,2. Andante,",
                                    ",Schumann,Piano Quintet in A major,2. Andante,")
    text = text.replace(",Mozart,Serenade", ",\"Mozart, Leopold\",Serenade")
    meta.write_text(text)
    out = tmp_path / "ds"
    build_musicnet_dataset(tree, out, soundfonts=[get_soundfont("timgm6mb")], seed=3, clip_s=2.0)
    rows = {r["clip_id"].rsplit("-", 1)[0]: r for r in Dataset.load(out).rows}
    assert rows["mn-1728"]["composer"] == "" and rows["mn-1728"]["period"] == ""
    assert rows["mn-1788"]["composer"] == ""
    assert rows["mn-1727"]["composer"] == "Schubert, Franz"          # the others as before
    assert rows["mn-1728"]["work_id"] == "musicnet:Schumann:D667"     # not merged with Schubert's
    report = json.loads((out / "build_report.json").read_text())
    assert report["ambiguous_composers"]["Schumann"]["files"] == 1
    assert set(report["ambiguous_composers"]["Schumann"]["candidates"]) == {
        "Schumann, Robert", "Schumann, Clara"}
    assert report["unknown_composers"]["Mozart, Leopold"] == {
        "files": 1, "same_surname": ["Mozart, Wolfgang Amadeus"]}
    taxonomy = json.loads((out / "taxonomy.json").read_text())
    assert not any("Schumann" in str(x) or "Leopold" in str(x) for x in json.dumps(taxonomy).split(","))


def test_a_linked_composer_folder_of_midis_is_read(tree, tmp_path):
    """musicnet_midis/<Composer> as a symbolic link (a tree assembled from links) was not
    searched: its pieces vanished without a word."""
    import os

    from musicbrain_cli.data.musicnet import discover

    moved = tmp_path / "elsewhere" / "Mozart"
    moved.parent.mkdir()
    os.replace(tree / "musicnet_midis" / "Mozart", moved)
    os.symlink(moved, tree / "musicnet_midis" / "Mozart")
    pieces, skipped = discover(tree)
    assert "1788" in {p.id for p in pieces} and skipped == [("9999", "no row in musicnet_metadata.csv")]


def test_a_work_music21_holds_has_the_reference_corpus_work_id(tree, tmp_path):
    """Review (session 45): `data musicnet` named MusicNet's BWV 846 "musicnet:Bach, Johann
    Sebastian:BWV846" while `data build-reference` gives it music21's id "m21:bach/bwv846";
    merged, the two encodings of one work could sit in train and test, and the merge's
    split check, which compares work ids, never saw them as one work."""
    from musicbrain_cli.data.musicnet import discover
    from musicbrain_cli.data.reference.musicnet import known_music21_works

    assert "m21:bach/bwv846" in known_music21_works()
    with open(tree / "musicnet_metadata.csv", "a", newline="") as fh:
        csv.writer(fh).writerow(["2222", "Bach", "WTC I: Prelude 1", "1. Prelude", "Solo Piano",
                                 "European Archive", "x", "BWV846", 3])
    with open(tree / "train_labels" / "2222.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["start_time", "end_time", "instrument", "note", "start_beat", "end_beat",
                    "note_value"])
        w.writerows(label_rows(np.random.default_rng(1), 3.0, 1))
    pieces, _ = discover(tree)
    ids = {p.id: p.work_id for p in pieces}
    assert ids["2222"] == "m21:bach/bwv846"
    assert ids["2186"].startswith("musicnet:")           # a work music21 lacks keeps its own


@pytest.mark.parametrize("cell, value", [("note", "inf"), ("start_beat", "nan")])
def test_a_label_cell_that_is_not_a_finite_number_is_a_dataset_error(tmp_path, cell, value):
    """Review (session 45): "inf" in a note or instrument cell raised OverflowError and "nan"
    in a beat LinAlgError, tracebacks that lost the whole build instead of one piece."""
    p = tmp_path / "1.csv"
    row = {"start_time": "0", "end_time": "44100", "instrument": "1", "note": "60",
           "start_beat": "0", "end_beat": "1", "note_value": "Quarter"}
    with open(p, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(row))
        w.writeheader()
        w.writerow(row)
        w.writerow({**row, "start_time": "44100", "end_time": "88200", "start_beat": "1",
                    cell: value})
    with pytest.raises(DatasetError, match="1.csv"):
        labels_to_midi(p)


@pytest.mark.filterwarnings("ignore:splits .* hold no work")
def test_a_piece_whose_notes_were_removed_loses_its_earlier_clips(tree, tmp_path):
    """Its clips stayed in the data set (and in training) while the report listed the piece
    as skipped; data notagen already removed them."""
    out = tmp_path / "ds"
    font = get_soundfont("timgm6mb")
    build_musicnet_dataset(tree, out, soundfonts=[font], seed=3, clip_s=2.0)
    (tree / "test_labels" / "2303.csv").unlink()
    summary = build_musicnet_dataset(tree, out, soundfonts=[font], seed=3, clip_s=2.0)
    assert {r["clip_id"].rsplit("-", 1)[0] for r in Dataset.load(out).rows} == {
        "mn-1727", "mn-1728", "mn-2186", "mn-1788"}
    report = json.loads((out / "build_report.json").read_text())
    assert summary["dropped_clips"] == len(report["dropped"]) > 0
    assert {d["clip"].rsplit("-", 1)[0] for d in report["dropped"]} == {"mn-2303"}
    assert {s["item"] for s in report["skipped"]} == {"9999", "2303"}
