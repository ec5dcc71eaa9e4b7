"""MusicNet in the reference corpus (issue 21 item 4), on a tiny fake MusicNet tree made
here: three score MIDIs written with pretty_midi and a metadata CSV (no ../shared needed)."""

import csv
import json
import warnings
from collections import defaultdict

import numpy as np
import pytest

from musicbrain_cli.taxonomy import Taxonomy
from musicbrain_cli.data.reference import build as B
from musicbrain_cli.data.reference import musicnet as M

from conftest import write_musicnet_metadata

QPM = 120.0
META = [  # id, composer, composition, movement, ensemble, catalog_name, file
    ("1001", "Beethoven", "Piano Sonata No 1 in F minor", "1. Allegro", "Solo Piano", "OP2NO1",
     "Beethoven/1001_sonata1_1.mid"),
    ("1002", "Beethoven", "Piano Sonata No 1 in F minor", "2. Adagio", "Solo Piano", "OP2NO1",
     "Beethoven/1002_sonata1_2.mid"),
    ("1003", "Brahms", "Clarinet Quintet in B minor", "1. Allegro", "Clarinet Quintet",
     "OP115", "Brahms/1003_clarinet_quintet_1.mid"),
    ("1004", "Beethoven", "String Quartet No 15 in A minor", "1. Assai sostenuto",
     "String Quartet", "OP132", "Beethoven/1004_qt15_1.mid"),
]


def _write_midi(path, seed, parts, seconds=14.0):
    import pretty_midi

    rng = np.random.default_rng(seed)
    midi = pretty_midi.PrettyMIDI(initial_tempo=QPM)
    step = 60.0 / QPM / 2                     # eighth notes
    for p in range(parts):
        inst = pretty_midi.Instrument(program=[40, 41, 42, 71, 0][p])
        t = 0.0
        while t < seconds:
            pitch = int(rng.integers(48, 84)) - 12 * p
            inst.notes.append(pretty_midi.Note(80, pitch, t, t + step))
            t += step
        midi.instruments.append(inst)
    path.parent.mkdir(parents=True, exist_ok=True)
    midi.write(str(path))


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("musicnet")
    write_musicnet_metadata(root, [(pid, comp, work, mvt, ens, cat, "14")
                                   for pid, comp, work, mvt, ens, cat, _ in META])
    for i, (_, _, _, _, ens, _, rel) in enumerate(META):
        _write_midi(root / "musicnet_midis" / rel, seed=i, parts=2 if ens == "Solo Piano" else 4)
    return root


def test_works_labels_grid_and_music21_alias(tree):
    pinned = set(json.loads((B.ASSETS_DIR / "symbolic-small.json").read_text())[
        "training_works"])
    failures = []
    works = {w.piece_id.rsplit("/", 1)[-1]: w for w in M.musicnet_works(
        tree, known_works=M.known_music21_works() | pinned, failures=failures)}
    assert failures == []
    son1, son2 = works["1001_sonata1_1.mid"], works["1002_sonata1_2.mid"]
    quintet, quartet = works["1003_clarinet_quintet_1.mid"], works["1004_qt15_1.mid"]
    # the adapter's composer mapping, period and ensemble -> instrumentation
    assert (son1.composer, son1.period, son1.instrumentation) == (
        "Beethoven, Ludwig van", "Classical", "Keyboard")
    assert (quintet.composer, quintet.period, quintet.instrumentation) == (
        "Brahms, Johannes", "Romantic", "Chamber")
    # movements of one work share its id; a work music21 also holds takes music21's id
    assert son1.work_id == son2.work_id == "musicnet:Beethoven, Ludwig van:OP2NO1"
    assert quartet.work_id == "m21:beethoven/opus132" and quartet.work_id in pinned
    # the file's eighth notes land on the corpus grid (12 ticks per quarter), tempo kept
    assert son1.qpm == pytest.approx(QPM)
    onsets = sorted({e[0] for e in son1.events})
    assert onsets[:4] == [0, 6, 12, 18]
    assert {e[3] for e in son1.events} == {6}
    assert son1.n_parts == 2 and {e[1] for e in quartet.events} == {0, 1, 2, 3}
    assert son1.title == "Piano Sonata No 1 in F minor 1. Allegro"
    # per-composer cap, spread over the composer's pieces
    capped = M.musicnet_works(tree, per_composer=1)
    assert sorted(w.composer for w in capped) == ["Beethoven, Ludwig van", "Brahms, Johannes"]


def test_unreadable_piece_is_listed_not_dropped(tree, tmp_path):
    import shutil

    bad = tmp_path / "mn"
    shutil.copytree(tree, bad)
    (bad / "musicnet_midis" / META[2][6]).write_bytes(b"MThd\x00\x00")
    failures = []
    works = M.musicnet_works(bad, failures=failures)
    assert len(works) == 3
    assert [item for item, _ in failures] == ["musicnet:musicnet_midis/" + META[2][6]]


def test_find_musicnet_looks_beside_the_working_folder(tree, tmp_path):
    shared = tmp_path / "shared" / "data"
    shared.mkdir(parents=True)
    (shared / "musicnet").symlink_to(tree, target_is_directory=True)
    repo = tmp_path / "checkout"
    repo.mkdir()
    assert M.find_musicnet(cwd=repo) == shared / "musicnet"


def test_conditions_take_musicnet_combinations(tree):
    works = M.musicnet_works(tree)
    merged = B._merge_conditions([("Classical", "Beethoven, Ludwig van", "Chamber", [100.0])],
                                 B._conditions(works, set()))
    combos = {(p, c, i): t for p, c, i, t in merged}
    assert ("Romantic", "Brahms, Johannes", "Chamber") in combos
    assert ("Classical", "Beethoven, Ludwig van", "Keyboard") in combos
    assert sorted(combos[("Classical", "Beethoven, Ludwig van", "Chamber")]) == [100.0, QPM]


def test_build_with_musicnet(tree, tmp_path, monkeypatch):
    # "tiny" minus the arrangements and with one sample per generator: the same build path
    # in a fraction of the time (the tiny build itself is covered by test_reference_build)
    spec = B.SizeSpec("micro", 4.0, ("bach",), 1, 1, 1, 1, 0.5, sample_batch=1,
                      musicnet_per_composer=2)
    monkeypatch.setitem(B.SIZES, "micro", spec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        summary = B.build_reference(tmp_path, size="micro", seed=0, musicnet=tree)
    with open(tmp_path / "manifest.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    tax = Taxonomy.load(tmp_path / "taxonomy.json")
    for r in rows:
        tax.encode(r)
    assert "composer/Brahms, Johannes" in tax.labels
    human = [r for r in rows if r["origin"].startswith("musicnet:")]
    # two pieces per composer, spread: the sonata's two movements, and the Brahms
    files = {r["origin"].split("#")[0].rsplit("/", 1)[-1] for r in human}
    assert "1003_clarinet_quintet_1.mid" in files and len(files) == 3
    for r in human:
        assert (r["source"], r["generator"]) == ("human", "-")
        assert float(r["duration_s"]) == pytest.approx(summary["clip_s"], abs=1e-3)
        assert r["renderer"] in summary["training_soundfonts"] + [summary["held_out_soundfont"]]
    brahms = [r for r in human if r["composer"] == "Brahms, Johannes"]
    assert brahms and all((r["period"], r["instrumentation"]) == ("Romantic", "Chamber")
                          for r in brahms)
    splits = defaultdict(set)
    for r in rows:
        splits[r["work_id"]].add(r["split"])
    assert all(len(s) == 1 for s in splits.values())
    mn = summary["musicnet"]
    assert mn["used"] and mn["pieces"] == 3 and mn["human_clips"] == len(human)
    assert mn["composers_unknown_to_generators"] == ["Brahms, Johannes"]
    assert "Thickstun" in mn["credit"]
    report = json.loads((tmp_path / "reference.json").read_text(encoding="utf-8"))
    assert report["musicnet"]["used"] is True
