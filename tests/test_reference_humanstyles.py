"""Human scores in RhythGen's styles for the reference corpus (issue 21): an OpenScore Lieder
tree and a labelled score folder, both made here (MusicXML written with music21, MIDI with
pretty_midi; no ../shared needed)."""

import csv
import json
import warnings
from collections import defaultdict

import pytest

from musicbrain_cli.errors import DatasetError
from musicbrain_cli.taxonomy import Taxonomy
from musicbrain_cli.data.reference import build as B
from musicbrain_cli.data.reference import humanstyles as H

QPM = 90


def _write_score(path, seed, bars=8, fmt="mxl"):
    """A voice over a piano bass, quarter notes, ``bars`` bars of 4/4 at QPM."""
    import music21 as m

    score = m.stream.Score()
    for part_no in range(2):
        part = m.stream.Part()
        if part_no == 0:
            part.append(m.tempo.MetronomeMark(number=QPM))
        for i in range(4 * bars):
            part.append(m.note.Note(64 + ((i * (3 + seed)) % 12) - 24 * part_no,
                                    quarterLength=1))
        score.insert(0, part)
    path.parent.mkdir(parents=True, exist_ok=True)
    score.write(fmt, fp=str(path))


def _write_midi(path, seed, seconds=16.0):
    import pretty_midi

    midi = pretty_midi.PrettyMIDI(initial_tempo=120.0)
    inst = pretty_midi.Instrument(program=0)
    t = 0.0
    while t < seconds:
        inst.notes.append(pretty_midi.Note(80, 60 + (int(t * 4) * (5 + seed)) % 12, t, t + 0.25))
        t += 0.25
    midi.instruments.append(inst)
    path.parent.mkdir(parents=True, exist_ok=True)
    midi.write(str(path))


#: composer folder, set folder, song folder, what the song folder holds
SONGS = [
    ("Schubert,_Franz", "Winterreise,_D.911", "01_Gute_Nacht", "mxl"),
    ("Schubert,_Franz", "Winterreise,_D.911", "05_Der_Lindenbaum", "mxl"),
    ("Schubert,_Franz", "_", "Erlkönig", "musicxml"),
    ("Schumann,_Clara", "_", "Liebst_du_um_Schönheit", "mxl"),
    ("Faisst,_Clara_Mathilda", "_", "Abendlied", "mxl"),
    ("Hensel,_Fanny_(Mendelssohn)", "_", "Schwanenlied", "mxl"),
    ("Lehmann,_Amelia", "_", "Sweet_Story", "mxl"),
    ("Barnard,_Charlotte_Alington_-_aka_Claribel", "_", "The_Brook", "mxl"),
    ("Wolf,_Hugo", "_", "Verborgenheit", "mscx"),          # MuseScore only: left out
    ("Brahms,_Johannes", "4_Ernste_Gesänge,_Op.121", "1_Denn_es_gehet", "mxl"),
]


@pytest.fixture(scope="module")
def lieder(tmp_path_factory):
    root = tmp_path_factory.mktemp("lieder")
    for i, (composer, set_, song, kind) in enumerate(SONGS):
        folder = root / "scores" / composer / set_ / song
        folder.mkdir(parents=True)
        (folder / f"lc{i}.mscx").write_text("<museScore/>", encoding="utf-8")
        if kind != "mscx":
            _write_score(folder / f"lc{i}.{kind}", seed=i, fmt=kind)
    brahms = root / "scores" / "Brahms,_Johannes" / "4_Ernste_Gesänge,_Op.121"
    # a second, different score in one song folder; another export of the first; macOS junk
    _write_score(brahms / "1_Denn_es_gehet" / "lc99.mxl", seed=11)
    _write_score(brahms / "1_Denn_es_gehet" / f"lc{len(SONGS) - 1}.musicxml", seed=3,
                 fmt="musicxml")
    (brahms / "1_Denn_es_gehet" / "._lc99.mxl").write_bytes(b"\0\5\26\7 AppleDouble")
    # a score at the set's level (not in a song folder), and an empty song folder
    _write_score(brahms / "lc77.mxl", seed=6)
    (brahms / "2_Ich_wandte_mich").mkdir()
    return root


@pytest.fixture(scope="module")
def rags(tmp_path_factory):
    root = tmp_path_factory.mktemp("ragtime")
    rows = [("joplin/maple_leaf.mid", "Scott Joplin", "", "Piano", "Maple Leaf Rag"),
            ("joplin/maple_leaf_b.mid", "Scott Joplin", "", "Keyboard", "Maple Leaf Rag"),
            ("lamb/ragtime_nightingale.mid", "Joseph Lamb", "Romantic", "keyboard", ""),
            ("beethoven/bagatelle.mid", "Ludwig van Beethoven", "", "Keyboard", ""),
            ("missing.mid", "Anyone", "", "Keyboard", ""),
            ("../outside.mid", "Anyone", "", "Keyboard", ""),
            ("lamb/bad_period.mid", "Joseph Lamb", "Jazz Age", "Keyboard", ""),
            ("lamb/bad_instr.mid", "Joseph Lamb", "", "Banjo", ""),
            ("./joplin/../joplin/maple_leaf.mid", "Robert Schumann", "", "Keyboard", "x")]
    for i, (rel, *_rest) in enumerate(rows):
        if rel not in ("missing.mid", "../outside.mid") and not rel.startswith("./"):
            _write_midi(root / rel, seed=i)
    _write_midi(root.parent / "outside.mid", seed=9)
    with open(root / H.LABELS_CSV, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "composer", "period", "instrumentation", "work"])
        for rel, composer, period, instr, work in rows:
            w.writerow([rel, composer, period, instr, work])
    return root


def test_lieder_labels_works_and_left_out_songs(lieder):
    skipped = []
    found = {s.rel.split("/")[3]: s for s in H.discover(lieder, skipped=skipped)}
    # a song folder with MuseScore files only is listed with the way to fix it, not dropped
    reasons = dict(skipped)
    assert sorted(reasons) == [
        "openscore-lieder:Brahms,_Johannes/4_Ernste_Gesänge,_Op.121/2_Ich_wandte_mich",
        "openscore-lieder:Brahms,_Johannes/4_Ernste_Gesänge,_Op.121/lc77.mxl",
        "openscore-lieder:Wolf,_Hugo/_/Verborgenheit"]
    assert "export MusicXML" in reasons["openscore-lieder:Wolf,_Hugo/_/Verborgenheit"]
    assert "not in a <Composer>/<Set>/<Song>/ folder" in reasons[
        "openscore-lieder:Brahms,_Johannes/4_Ernste_Gesänge,_Op.121/lc77.mxl"]
    # two distinct scores in one song folder are both read, each from its preferred export;
    # the AppleDouble file is ignored
    denn = sorted(s.path.name for s in H.discover(lieder) if "Denn_es_gehet" in s.rel)
    assert denn == [f"lc{len(SONGS) - 1}.mxl", "lc99.mxl"]
    gute, linden, erl = found["01_Gute_Nacht"], found["05_Der_Lindenbaum"], found["Erlkönig"]
    # the MusicXML export is read, not the MuseScore file beside it
    assert gute.path.suffix == ".mxl" and erl.path.suffix == ".musicxml"
    # a known composer: canonical name, NotaGen's period for him; always Art Song
    assert (gute.composer, gute.period, gute.instrumentation) == (
        "Schubert, Franz", "Romantic", "Art Song")
    # the songs of one set are one work, and a set music21's corpus also holds a song of
    # takes that song's work id (one split for both encodings); a song outside any set is
    # its own work
    assert gute.work_id == linden.work_id == "m21:schubert/Lindenbaum"
    assert erl.work_id == "lieder:Schubert,_Franz/_/Erlkönig"
    assert found["1_Denn_es_gehet"].work_id == (
        "lieder:Brahms,_Johannes/4_Ernste_Gesänge,_Op.121")
    assert gute.title == "Gute Nacht"
    # never another person: Clara is not Robert Schumann; a name with more given names than
    # the known one, or none of the known composers, stays unlabelled, as written
    assert found["Liebst_du_um_Schönheit"].composer == "Schumann, Clara"
    # NotaGen's own spelling of two OpenScore composers: a checked alias, a maiden name
    faisst, hensel = found["Abendlied"], found["Schwanenlied"]
    assert (faisst.composer, faisst.period) == ("Faisst, Clara", "Romantic")
    assert faisst.written_composer == "Faisst, Clara Mathilda"
    assert hensel.composer == "Hensel, Fanny"
    # Amelia is not Liza Lehmann; a composer NotaGen never lists stays unlabelled, as written
    amelia, barnard = found["Sweet_Story"], found["The_Brook"]
    assert (amelia.composer, amelia.period, amelia.written_composer) == (
        "", "", "Lehmann, Amelia")
    assert (barnard.composer, barnard.written_composer) == ("", "Barnard, Charlotte Alington")


def test_labelled_folder_rows_and_refusals(rags):
    skipped = []
    found = {s.rel: s for s in H.discover(rags, skipped=skipped)}
    assert sorted(found) == ["beethoven/bagatelle.mid", "joplin/maple_leaf.mid",
                             "joplin/maple_leaf_b.mid", "lamb/ragtime_nightingale.mid"]
    reasons = dict(skipped)
    name = H.source_id(rags)
    assert name == "scores-" + rags.name
    assert reasons[f"{name}:missing.mid"] == "line 6: no such file in the folder"
    assert reasons[f"{name}:../outside.mid"] == "line 7: the path leads out of the folder"
    assert "line 8: period 'Jazz Age'" in reasons[f"{name}:lamb/bad_period.mid"]
    assert "instrumentation 'Banjo'" in reasons[f"{name}:lamb/bad_instr.mid"]
    # the same file under another spelling is read once, with its first row's labels
    assert reasons[f"{name}:./joplin/../joplin/maple_leaf.mid"].startswith(
        "line 10: the same file as line 2")
    maple, maple_b = found["joplin/maple_leaf.mid"], found["joplin/maple_leaf_b.mid"]
    # 'Piano' is a synonym of Keyboard; two files of one work share it
    assert maple.instrumentation == maple_b.instrumentation == "Keyboard"
    assert maple.work_id == maple_b.work_id == f"{name}:Maple Leaf Rag"
    # a composer the taxonomy does not know is unlabelled (the stated period is kept)
    assert (maple.composer, maple.period, maple.written_composer) == ("", "", "Scott Joplin")
    lamb = found["lamb/ragtime_nightingale.mid"]
    assert (lamb.composer, lamb.period) == ("", "Romantic")
    assert lamb.work_id == f"{name}:lamb/ragtime_nightingale"
    # a known one is named and given its period
    assert (found["beethoven/bagatelle.mid"].composer,
            found["beethoven/bagatelle.mid"].period) == ("Beethoven, Ludwig van", "Classical")


def test_not_a_source_is_refused(tmp_path):
    with pytest.raises(DatasetError, match="neither an OpenScore Lieder tree"):
        H.discover(tmp_path)


def test_find_sources_beside_the_working_folder(lieder, rags, tmp_path):
    shared = tmp_path / "shared" / "data"
    (shared / "human-scores").mkdir(parents=True)
    (shared / "openscore-lieder").symlink_to(lieder, target_is_directory=True)
    (shared / "human-scores" / "ragtime").symlink_to(rags, target_is_directory=True)
    (shared / "human-scores" / "unlabelled").mkdir()
    repo = tmp_path / "checkout"
    repo.mkdir()
    assert H.find_sources(cwd=repo) == [shared / "openscore-lieder",
                                        shared / "human-scores" / "ragtime"]


def test_works_on_the_corpus_grid_and_parse_cache(lieder, tmp_path):
    cache = tmp_path / "midi"
    failures = []
    works, info = H.human_style_works([lieder], cache, failures=failures)
    by = {w.piece_id.split("/")[-2]: w for w in works}
    gute = by["01_Gute_Nacht"]
    # quarter notes of the score at its own tempo, on the corpus grid (12 ticks a quarter)
    assert gute.qpm == pytest.approx(QPM)
    onsets = sorted({e[0] for e in gute.events})
    assert onsets[:3] == [0, 12, 24] and {e[3] for e in gute.events} == {12}
    assert gute.n_parts == 2 and gute.collection == "openscore-lieder"
    src = info["sources"][0]
    assert (src["scores_found"], src["scores_read"], src["left_out"]) == (10, 10, 3)
    assert src["source"] == "openscore-lieder" and len(src["piece_ids"]) == 10
    assert "CC0" in src["credit"]
    assert info["unmatched_composers"] == {"Barnard, Charlotte Alington": 1,
                                           "Lehmann, Amelia": 1}
    # parsed once: a second read comes from the MIDI cache, the same notes
    assert len(list(cache.glob("*.npz"))) == 10
    again, _ = H.human_style_works([lieder], cache)
    assert [w.events for w in again] == [w.events for w in works]
    # per source cap, spread over the sorted songs
    capped, _ = H.human_style_works([lieder], cache, per_source=2)
    assert len(capped) == 2


def test_unreadable_score_is_listed(lieder, tmp_path):
    import shutil

    bad = tmp_path / "lieder"
    shutil.copytree(lieder, bad)
    victim = next((bad / "scores" / "Schumann,_Clara").rglob("*.mxl"))
    victim.write_bytes(b"PK\x03\x04 not a zip")
    failures = []
    works, _ = H.human_style_works([bad], tmp_path / "midi", failures=failures)
    assert len(works) == 9
    assert [item for item, why in failures if "unreadable score" in why] == [
        "openscore-lieder:" + victim.relative_to(bad).as_posix()]


def test_build_with_human_styles(lieder, rags, tmp_path, monkeypatch):
    # "tiny" minus the arrangements and with one sample per generator (as the MusicNet test)
    spec = B.SizeSpec("micro", 4.0, ("bach",), 1, 1, 1, 1, 0.5, sample_batch=1,
                      human_styles_per_source=None)
    monkeypatch.setitem(B.SIZES, "micro", spec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        summary = B.build_reference(tmp_path, size="micro", seed=0,
                                    human_styles=[lieder, rags])
    with open(tmp_path / "manifest.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    tax = Taxonomy.load(tmp_path / "taxonomy.json")
    for r in rows:
        tax.encode(r)
    lied = [r for r in rows if r["origin"].startswith("openscore-lieder:")]
    rag = [r for r in rows if r["origin"].startswith(f"scores-{rags.name}:")]
    assert len({r["origin"].split("#")[0] for r in lied}) == 10
    assert len({r["origin"].split("#")[0] for r in rag}) == 4
    for r in lied + rag:
        assert (r["source"], r["generator"]) == ("human", "-")
        assert float(r["duration_s"]) == pytest.approx(summary["clip_s"], abs=1e-3)
    assert {r["instrumentation"] for r in lied} == {"Art Song"}
    assert {r["instrumentation"] for r in rag} == {"Keyboard"}
    assert "composer/Schumann, Clara" in tax.labels
    assert "composer/Faisst, Clara" in tax.labels
    assert not any("Amelia" in label or "Joplin" in label for label in tax.labels)
    # a set never spans splits, nor does any other work
    splits = defaultdict(set)
    for r in rows:
        splits[r["work_id"]].add(r["split"])
    assert all(len(s) == 1 for s in splits.values())
    st = summary["human_styles"]
    assert st["used"] and st["human_clips"] == len(lied) + len(rag)
    assert st["clips_by_instrumentation"] == {"Art Song": len(lied), "Keyboard": len(rag)}
    assert [s["kind"] for s in st["sources"]] == ["openscore-lieder", "labelled"]
    assert [(s["scores_in_corpus"], s["scores_without_clips"]) for s in st["sources"]] == [
        (10, 0), (4, 0)]
    assert all("piece_ids" not in s for s in st["sources"])
    report = json.loads((tmp_path / "reference.json").read_text(encoding="utf-8"))
    assert report["human_styles"]["unmatched_composers"]["Scott Joplin"] == 2
    # the rows the folder refused are in the build report, not silently gone
    skipped = (tmp_path / "build_report.json").read_text(encoding="utf-8")
    assert "Verborgenheit" in skipped and "bad_instr.mid" in skipped


def test_oversized_scores_are_refused_before_parsing(lieder, tmp_path, monkeypatch):
    """Untrusted score files: a deadline bounds time, not memory, so a file too large, or an
    .mxl that would unpack too large (a zip bomb), is refused from its size alone."""
    import shutil
    import zipfile

    from musicbrain_cli.data import render

    big = tmp_path / "lieder"
    shutil.copytree(lieder, big)
    winterreise = big / "scores" / "Schubert,_Franz" / "Winterreise,_D.911"
    bomb, heavy = winterreise / "01_Gute_Nacht" / "lc0.mxl", winterreise / "05_Der_Lindenbaum" / "lc1.mxl"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("score.xml", b"\0" * 300_000)          # 300 kB of zeros, ~300 B packed
    heavy.write_bytes(heavy.read_bytes() + b"\0" * 60_000)
    monkeypatch.setattr(render, "MAX_UNPACKED_BYTES", 200_000)
    monkeypatch.setattr(render, "MAX_SCORE_BYTES", 50_000)
    assert bomb.stat().st_size < 50_000
    failures = []
    works, _ = H.human_style_works([big], tmp_path / "midi", failures=failures)
    reasons = {item.split(":", 1)[1]: why for item, why in failures}
    assert "would unpack to" in reasons[bomb.relative_to(big).as_posix()]
    assert "more than the" in reasons[heavy.relative_to(big).as_posix()]
    assert len(works) == 10 - 2


def test_sources_never_share_ids(lieder, rags, tmp_path):
    """Two labelled folders of the same name are two sources; one folder given twice is
    refused (its second reading would vanish under the first one's ids)."""
    import shutil

    other = tmp_path / "b" / rags.name
    shutil.copytree(rags, other)
    assert H.source_ids([lieder, rags, other]) == [
        "openscore-lieder", f"scores-{rags.name}", f"scores-{rags.name}-2"]
    works, info = H.human_style_works([rags, other], tmp_path / "midi")
    assert len({w.piece_id for w in works}) == len(works) == 8
    assert len({w.work_id for w in works}) == 6          # 3 works per folder, none shared
    with pytest.raises(DatasetError, match="given twice"):
        H.human_style_works([rags, rags / ".." / rags.name], tmp_path / "midi")


def test_labels_csv_header_is_checked(tmp_path):
    folder = tmp_path / "f"
    folder.mkdir()
    _write_midi(folder / "a.mid", seed=0)
    (folder / "labels.csv").write_text("path,Composer,Period\na.mid,Scott Joplin,\n",
                                       encoding="utf-8")
    with pytest.raises(DatasetError, match="lacks the column.s. instrumentation"):
        H.discover(folder)
    # names are matched without regard to case or spaces
    (folder / "labels.csv").write_text(" Path ,COMPOSER,period,Instrumentation\n"
                                       "a.mid,Clara Schumann,,Piano\n", encoding="utf-8")
    (score,) = H.discover(folder)
    assert (score.composer, score.instrumentation) == ("Schumann, Clara", "Keyboard")


def test_initials_and_links_out_of_a_lieder_tree(tmp_path):
    """'F. Mendelssohn' could be Felix or Fanny: unlabelled. A score linked in from outside
    the tree is not read."""
    root = tmp_path / "lieder"
    song = root / "scores" / "Mendelssohn,_F." / "_" / "Lied"
    _write_score(song / "lc1.mxl", seed=1)
    outside = tmp_path / "elsewhere.mxl"
    _write_score(outside, seed=2)
    (song / "lc2.mxl").symlink_to(outside)
    skipped = []
    (score,) = H.discover(root, skipped=skipped)
    assert score.path.name == "lc1.mxl" and score.composer == ""
    assert skipped == [("openscore-lieder:Mendelssohn,_F./_/Lied/lc2.mxl",
                        "leads out of the tree (a link)")]


def test_build_reference_command_reports_the_human_styles(rags, tmp_path, monkeypatch):
    """The command's own account of the sources (what a user reads after a build)."""
    from click.testing import CliRunner

    from musicbrain_cli.cli import main

    monkeypatch.setitem(B.SIZES, "tiny", B.SizeSpec(
        "tiny", 4.0, ("bach",), 1, 1, 1, 1, 0.5, sample_batch=1, human_styles_per_source=3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        res = CliRunner().invoke(main, [
            "data", "build-reference", "-o", str(tmp_path / "out"), "--size", "tiny",
            "--no-musicnet", "--no-rhythgen", "--human-scores", str(rags)])
    assert res.exit_code == 0, res.output
    assert (f"Human styles: 3 of 4 scores in the corpus (3 selected at size 'tiny'; 5 left "
            f"out unread, 0 shorter than a clip) from {rags}") in res.output
    assert "Human styles: 3 human clips, by instrumentation Keyboard 3" in res.output
