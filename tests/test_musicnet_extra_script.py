"""scripts/musicnet_extra.py: which MusicNet pieces an extra human batch may take, and the
thinning of a built batch (a tiny fake MusicNet tree made here; no ../shared needed)."""

import csv
from pathlib import Path

import pytest
from conftest import script_module, write_musicnet_metadata

META = [  # id, composer, composition, ensemble, catalog_name, file
    ("2001", "Beethoven", "Piano Sonata No 1", "Solo Piano", "OP2NO1", "Beethoven/2001_s1_1.mid"),
    ("2002", "Beethoven", "Piano Sonata No 1", "Solo Piano", "OP2NO1", "Beethoven/2002_s1_2.mid"),
    ("2003", "Beethoven", "Piano Sonata No 8", "Solo Piano", "OP13", "Beethoven/2003_s8_1.mid"),
    ("2004", "Beethoven", "String Quartet No 15", "String Quartet", "OP132", "Beethoven/2004_q15.mid"),
    ("2005", "Bach", "Prelude", "Solo Piano", "BWV846", "Bach/2005_prelude1.mid"),
    ("2006", "Bach", "Prelude", "Solo Piano", "BWV847", "Bach/2006_prelude2.mid"),
    ("2007", "Bach", "Prelude", "Solo Piano", "BWV848", "Bach/2007_prelude3.mid"),
    ("2008", "Bach", "Sonata", "Solo Violin", "BWV1001", "Bach/2008_sonata1.mid"),
]


@pytest.fixture(scope="module")
def script():
    with script_module("scripts/musicnet_extra.py", "musicnet_extra") as mod:
        yield mod


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    import pretty_midi

    root = tmp_path_factory.mktemp("musicnet")
    write_musicnet_metadata(root, [(pid, comp, work, "1", ens, cat, "4")
                                   for pid, comp, work, ens, cat, _ in META])
    for *_, rel in META:
        midi = pretty_midi.PrettyMIDI()
        inst = pretty_midi.Instrument(program=0)
        inst.notes = [pretty_midi.Note(80, 60 + k, 0.5 * k, 0.5 * k + 0.4) for k in range(8)]
        midi.instruments.append(inst)
        (root / "musicnet_midis" / rel).parent.mkdir(parents=True, exist_ok=True)
        midi.write(str(root / "musicnet_midis" / rel))
    return root


def _corpus(path: Path, rows: list[dict]) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    fields = ["clip_id", "work_id", "origin", "split"]
    with open(path / "manifest.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fields)
        w.writeheader()
        w.writerows([{k: r.get(k, "") for k in fields} for r in rows])
    return path


def _picked(out: Path) -> list[str]:
    return sorted(p.name for p in (out / "musicnet_midis").rglob("*.mid"))


def test_tree_leaves_out_works_of_excluded_corpora_and_works_music21_holds(script, tree, tmp_path):
    """A work in an excluded corpus (all its movements) and works music21's collections hold
    under another name (Beethoven Op. 132, Bach BWV 846) are not taken; every other piece is, linked to the
    original file, with the metadata beside it."""
    held = _corpus(tmp_path / "held", [{"clip_id": "a", "work_id": "musicnet:Beethoven, Ludwig van:OP2NO1"}])
    out = tmp_path / "tree"
    summary = script.tree(tree, out, [held], None)
    assert _picked(out) == ["2003_s8_1.mid", "2006_prelude2.mid", "2007_prelude3.mid", "2008_sonata1.mid"]
    assert summary.startswith("4 pieces of 4 works")
    link = next((out / "musicnet_midis").rglob("2003_s8_1.mid"))
    assert link.is_symlink() and link.resolve() == (tree / "musicnet_midis" / "Beethoven" / "2003_s8_1.mid").resolve()
    assert (out / "musicnet_metadata.csv").read_bytes() == (tree / "musicnet_metadata.csv").read_bytes()


def test_tree_per_composer_spreads_over_the_id_order_and_rebuilds_cleanly(script, tree, tmp_path):
    """--per-composer 2 keeps the first and last piece of each composer; a second run into
    the same folder replaces the first run's tree."""
    out = tmp_path / "tree"
    script.tree(tree, out, [], None)
    script.tree(tree, out, [], 2)
    assert _picked(out) == ["2001_s1_1.mid", "2003_s8_1.mid", "2006_prelude2.mid", "2008_sonata1.mid"]


def test_thin_keeps_n_clips_per_piece_evenly_spread_and_the_full_manifest(script, tmp_path):
    rows = [{"clip_id": f"p{p}-{k:03d}", "work_id": "w", "split": "train",
             "origin": f"musicnet_midis/X/{p}.mid#t={10 * k:.3f},{10 * k + 10:.3f}"}
            for p, n in (("a", 10), ("b", 2)) for k in range(n)]
    corpus = _corpus(tmp_path / "c", rows)
    full = (corpus / "manifest.csv").read_text()
    assert script.thin(corpus, 4) == "6 of 12 clips kept from 2 pieces (manifest-full.csv holds all)"
    with open(corpus / "manifest.csv", newline="") as fh:
        kept = [r["clip_id"] for r in csv.DictReader(fh)]
    assert kept == ["pa-000", "pa-003", "pa-006", "pa-009", "pb-000", "pb-001"]
    assert (corpus / script.FULL_MANIFEST).read_text() == full
    script.thin(corpus, 1)                         # thinning again starts from the full manifest
    with open(corpus / "manifest.csv", newline="") as fh:
        assert [r["clip_id"] for r in csv.DictReader(fh)] == ["pa-000", "pb-000"]
