"""Defects of the training-data commands found in review (/tmp/review-data/repro.sh):
a merge that kept stale files or replaced a data set, a cache reused under a changed
taxonomy or deleting files it did not write, and NotaGen builds that dropped pieces,
misread a composer or reported success with no clip."""

import json
import os

import numpy as np
import pytest
from click.testing import CliRunner

from musicbrain_cli.data.cache import CachedWindows, build_cache
from musicbrain_cli.data.dataset import ClipRecord, Dataset, DatasetWriter
from musicbrain_cli.data.merge import merge_datasets
from musicbrain_cli.data.notagen import build_notagen_dataset, discover, prompt_labels
from musicbrain_cli.data.render import get_soundfont
from musicbrain_cli.errors import DatasetError, InputError
from musicbrain_cli.features import FrontEndConfig
from musicbrain_cli.taxonomy import Taxonomy

SR = 8000
TAX = Taxonomy.from_groups([("source", ["human", "ai"], True),
                            ("period", ["Baroque", "Classical", "Romantic"], True)])
FE = FrontEndConfig(sample_rate=SR, n_fft=256, hop_length=80, n_bins=32, f_min=50.0,
                    f_max=4000.0, window_s=1.0, hop_s=0.5)


def make(root, clips, *, seed=0, taxonomy=TAX):
    """A data set of 1 s noise clips; ``clips`` are (id, work, split, source, period)."""
    rng = np.random.default_rng(seed)
    with DatasetWriter(root, taxonomy, sample_rate=SR) as w:
        for cid, work, split, source, period in clips:
            w.add(ClipRecord(cid, source, period=period, work_id=work, split=split),
                  rng.normal(0, 0.1, SR).astype(np.float32))
    return root


A_CLIPS = [("a1", "wa1", "train", "human", "Baroque")]
B_CLIPS = [("b1", "wb1", "train", "ai", "Romantic")]


# --- merge ----------------------------------------------------------------------------------


def test_merge_relinks_a_rebuilt_input_of_the_same_size(tmp_path):
    """F2: an input rebuilt with another seed has a new file of the same size; the rerun
    merge kept the stale hard link (the old audio beside the new manifest)."""
    a = make(tmp_path / "a", A_CLIPS, seed=0)
    b = make(tmp_path / "b", B_CLIPS)
    out = tmp_path / "m"
    merge_datasets([a, b], out)
    src = a / "audio" / "a1.flac"
    old = src.read_bytes()
    # rebuilt: a new file (new inode), same length, other bytes
    new = bytearray(old)
    new[-1] ^= 0xFF
    src.unlink()
    src.write_bytes(bytes(new))
    assert (out / "audio" / "a1.flac").stat().st_size == src.stat().st_size
    merge_datasets([a, b], out)
    placed = out / "audio" / "a1.flac"
    assert placed.read_bytes() == bytes(new)
    assert os.path.samefile(placed, src)
    # a copied merge rerun keeps its equal copies (same bytes), relinks nothing
    merge_datasets([a, b], tmp_path / "mc", link=False)
    ino = (tmp_path / "mc" / "audio" / "a1.flac").stat().st_ino
    merge_datasets([a, b], tmp_path / "mc", link=False)
    assert (tmp_path / "mc" / "audio" / "a1.flac").stat().st_ino == ino


def test_merge_refuses_to_replace_another_data_set(tmp_path, monkeypatch):
    """F1: `data merge A B -o C` with C a data set of its own replaced C's manifest."""
    a = make(tmp_path / "a", A_CLIPS)
    b = make(tmp_path / "b", B_CLIPS)
    c = make(tmp_path / "c", [("c1", "wc1", "train", "human", "Classical")])
    before = (c / "manifest.csv").read_bytes()
    with pytest.raises(InputError, match="already holds a data set"):
        merge_datasets([a, b], c)
    assert (c / "manifest.csv").read_bytes() == before
    assert not (c / "audio" / "a1.flac").exists()
    # a folder with other files is refused too; a new or empty one, or a rerun, is not
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("mine")
    with pytest.raises(InputError, match="no merge of these inputs"):
        merge_datasets([a, b], tmp_path / "notes")
    (tmp_path / "empty").mkdir()
    merge_datasets([a, b], tmp_path / "empty")
    merge_datasets([a, b], tmp_path / "empty")       # a rerun of the same merge resumes
    with pytest.raises(InputError, match="a merge of other data sets"):
        merge_datasets([b, a], tmp_path / "empty")   # other inputs (order) than recorded
    # a merge stopped after its first file is known as this merge on the rerun (its
    # record is written before any file), not refused as a foreign folder
    import musicbrain_cli.data.merge as merge_mod

    place = merge_mod._place

    def stop(src, dst, *, link):
        place(src, dst, link=link)
        raise KeyboardInterrupt

    monkeypatch.setattr(merge_mod, "_place", stop)
    with pytest.raises(KeyboardInterrupt):
        merge_datasets([a, b], tmp_path / "stopped")
    monkeypatch.setattr(merge_mod, "_place", place)
    merge_datasets([a, b], tmp_path / "stopped")
    assert len(Dataset.load(tmp_path / "stopped").rows) == 2
    # the CLI: exit status 2, one line, nothing replaced
    from musicbrain_cli.cli import main

    result = CliRunner().invoke(main, ["data", "merge", str(a), str(b), "-o", str(c)])
    assert result.exit_code == 2, result.output
    assert "already holds a data set" in result.output
    assert (c / "manifest.csv").read_bytes() == before


def test_merge_refuses_the_same_audio_with_other_labels(tmp_path):
    """F3: one piece built twice (once with a --labels row naming another composer) was
    merged into one data set teaching both labels for the same sound."""
    a = make(tmp_path / "a", A_CLIPS, seed=0)
    relabelled = make(tmp_path / "a2", [("a1", "wa1", "train", "human", "Classical")], seed=0)
    assert (a / "audio" / "a1.flac").read_bytes() == (relabelled / "audio" / "a1.flac").read_bytes()
    with pytest.raises(DatasetError, match=r"same audio.*period 'Baroque' / 'Classical'"):
        merge_datasets([a, relabelled], tmp_path / "m")
    with pytest.warns(UserWarning, match="both are kept"):
        merge_datasets([a, relabelled], tmp_path / "m", on_conflict="warn")
    report = json.loads((tmp_path / "m" / "build_report.json").read_text())
    assert [c["work_id"] for c in report["same_audio_other_labels"]] == ["wa1"]
    # the same work with other audio (another rendering) is no contradiction
    other = make(tmp_path / "a3", [("a1", "wa1", "train", "human", "Classical")], seed=5)
    merge_datasets([a, other], tmp_path / "m2")


# --- cache ----------------------------------------------------------------------------------


def _one_more_period_first(root):
    """The same clips under a taxonomy with one more period first (a rebuild that met a new
    label): every stored target shifts by one. Returns that taxonomy."""
    tax = json.loads((root / "taxonomy.json").read_text())
    bigger = Taxonomy.from_groups([("source", ["human", "ai"], True),
                                   ("period", ["Medieval", "Baroque", "Classical",
                                               "Romantic"], True)])
    tax.update(bigger.to_dict())
    (root / "taxonomy.json").write_text(json.dumps(tax))
    return bigger


def test_cache_is_recomputed_when_the_taxonomy_changes(tmp_path):
    """F4: the resume check covered the front end and the manifest, not the taxonomy: old
    shards' targets were read under the new label order."""
    root = make(tmp_path / "ds", A_CLIPS + B_CLIPS)
    out = build_cache(root, FE, out=tmp_path / "cache")
    assert CachedWindows(out).targets[0].tolist() == [1, 0, 1, 0, 0]   # human, Baroque
    manifest = (root / "manifest.csv").read_bytes()
    bigger = _one_more_period_first(root)
    assert (root / "manifest.csv").read_bytes() == manifest
    build_cache(root, FE, out=out)
    again = CachedWindows(out)
    assert again.taxonomy.labels == bigger.labels
    row = again.clip_ids.index("a1")
    assert again.targets[row].tolist() == [1, 0, 0, 1, 0, 0]        # human, Baroque


def test_training_rebuilds_a_cache_made_under_another_taxonomy(tmp_path):
    """F4, the training side: CacheSource.prepare rebuilt the cache only when the manifest
    changed, so after a taxonomy-only change training read old shards under new labels."""
    from musicbrain_cli.training.sources import CacheSource

    root = make(tmp_path / "ds", A_CLIPS + B_CLIPS)
    source = CacheSource(str(root), front_end_config=FE.to_dict())
    source.prepare()
    assert source.taxonomy().labels == Taxonomy.from_dict(
        json.loads((root / "taxonomy.json").read_text())).labels
    bigger = _one_more_period_first(root)
    source.prepare()
    assert source.taxonomy().labels == bigger.labels
    again = CachedWindows(source.cache_dir())
    assert again.targets[again.clip_ids.index("a1")].tolist() == [1, 0, 0, 1, 0, 0]


def test_cache_deletes_only_its_own_names_and_refuses_a_foreign_folder(tmp_path):
    """F8: every `*.tmp*` of the output folder was deleted (a user's notes.tmp.md), and
    another data set's shards with it."""
    root = make(tmp_path / "ds", A_CLIPS + B_CLIPS)
    other = make(tmp_path / "other", [("o1", "wo1", "train", "human", "Classical")], seed=3)
    user = tmp_path / "mine"
    user.mkdir()
    (user / "notes.tmp.md").write_text("mine")
    with pytest.raises(DatasetError, match="holds no feature cache"):
        build_cache(root, FE, out=user)
    assert (user / "notes.tmp.md").read_text() == "mine"
    # another data set's cache folder is refused, its shards kept
    theirs = build_cache(other, FE, out=tmp_path / "theirs")
    shards = sorted(p.name for p in theirs.iterdir())
    with pytest.raises(DatasetError, match="another data set"):
        build_cache(root, FE, out=theirs)
    assert sorted(p.name for p in theirs.iterdir()) == shards
    # in this data set's own cache folder, a user's file is left alone on a rerun
    out = build_cache(root, FE, out=tmp_path / "cache")
    (out / "notes.tmp.md").write_text("mine")
    (out / "shard-00007.npy.tmp.npy").write_bytes(b"junk")     # the cache's own leftover
    build_cache(root, FE, out=out)
    assert (out / "notes.tmp.md").read_text() == "mine"
    assert not (out / "shard-00007.npy.tmp.npy").exists()


# --- NotaGen --------------------------------------------------------------------------------

BODY = "X:1\nL:1/4\nM:4/4\nK:C\nC D E F | G A B c |\n"


def abc(path, *prompt):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"%{line}\n" for line in prompt) + BODY)
    return path


def test_every_piece_skipped_is_an_error_naming_the_report(tmp_path):
    """F9: a build whose every piece was skipped exited 0 with a 0-clip data set."""
    root = tmp_path / "in"
    abc(root / "u.abc")                       # no label anywhere: skipped
    out = tmp_path / "out"
    with pytest.raises(DatasetError, match=r"no clips.*1 item\(s\) skipped.*build_report.json"):
        build_notagen_dataset(root, out, soundfonts=[get_soundfont("timgm6mb")], clip_s=2.0)
    report = json.loads((out / "build_report.json").read_text())
    assert [e["item"] for e in report["skipped"]] == ["u.abc"]
    from musicbrain_cli.cli import main

    result = CliRunner().invoke(main, ["data", "notagen", str(root), "-o", str(tmp_path / "o2"),
                                       "--soundfont", "timgm6mb"])
    assert result.exit_code == 1 and "no clips" in result.output


def test_a_file_beside_an_original_folder_is_a_piece_of_its_own(tmp_path):
    """F5: batch/x.abc and batch/original/x.abc (no interleaved/ partner) shared one piece
    key, and one of them was dropped without a word."""
    root = tmp_path / "in"
    abc(root / "batch" / "x.abc", "Baroque", "Bach, Johann Sebastian", "Keyboard", "end")
    abc(root / "batch" / "original" / "x.abc", "Romantic", "Chopin, Frederic", "Keyboard", "end")
    # a true pair is still one piece, from interleaved/
    abc(root / "run" / "original" / "p.abc", "Baroque", "Bach, Johann Sebastian", "Keyboard", "end")
    abc(root / "run" / "interleaved" / "p.abc", "Baroque", "Bach, Johann Sebastian", "Keyboard",
        "end")
    items = discover(root)
    assert sorted(i.rel for i in items) == ["batch/original/x.abc", "batch/x.abc",
                                            "run/interleaved/p.abc"]
    assert len({i.key for i in items}) == 3
    out = tmp_path / "out"
    build_notagen_dataset(root, out, soundfonts=[get_soundfont("timgm6mb")], clip_s=2.0)
    composers = {r["composer"] for r in Dataset.load(out).rows}
    assert composers == {"Bach, Johann Sebastian", "Chopin, Frédéric"}
    assert len({r["work_id"] for r in Dataset.load(out).rows}) == 3


def test_a_comment_line_before_the_composer_does_not_mask_it(tmp_path):
    """F7: '%Generated with NotaGen' before '%Bach, Johann Sebastian' made the composer the
    unknown 'Generated with NotaGen'."""
    cells = prompt_labels("%Generated with NotaGen\n%Baroque\n%Bach, Johann Sebastian\n"
                          "%Keyboard\n%end\n" + BODY)
    assert cells["composer"].value == "Bach, Johann Sebastian"
    assert cells["composer"].status == "matched"
    assert cells["composer"].unused_lines == ("Generated with NotaGen",)
    # no known name: the first line is kept, masked, as before
    cells = prompt_labels("%Nobody Atall\n%Baroque\n%Keyboard\n%end\n")
    assert cells["composer"].value == "" and cells["composer"].written == "Nobody Atall"
    root = tmp_path / "in"
    abc(root / "p.abc", "Generated with NotaGen", "Baroque", "Bach, Johann Sebastian",
        "Keyboard", "end")
    out = tmp_path / "out"
    build_notagen_dataset(root, out, soundfonts=[get_soundfont("timgm6mb")], clip_s=2.0)
    assert {r["composer"] for r in Dataset.load(out).rows} == {"Bach, Johann Sebastian"}
    report = json.loads((out / "build_report.json").read_text())
    assert report["prompt_lines_not_used"] == {
        "Generated with NotaGen": {"files": 1, "composer_used": "Bach, Johann Sebastian"}}
    assert report["unknown_composers"] == {}


def test_generators_csv_rows_naming_no_file_are_listed(tmp_path):
    """F6: a generators.csv row naming no file ('./p.abc' spelled with a dot, a typo) was
    ignored without a word, and the piece left without a generator."""
    root = tmp_path / "in"
    abc(root / "p.abc", "Baroque", "Bach, Johann Sebastian", "Keyboard", "end")
    (root / "generators.csv").write_text("path,generator\n./p.abc,notagen-large\n"
                                         "nope.abc,notagen-large\n")
    out = tmp_path / "out"
    summary = build_notagen_dataset(root, out, soundfonts=[get_soundfont("timgm6mb")],
                                    clip_s=2.0)
    assert {r["generator"] for r in Dataset.load(out).rows} == {"notagen-large"}
    assert summary["generator_rows_not_found"] == 1
    report = json.loads((out / "build_report.json").read_text())
    assert report["generators_csv"]["rows_not_found"] == ["nope.abc"]


def test_a_resumed_cache_never_writes_a_new_shard_over_a_kept_one(tmp_path):
    """Review of session 34: new shards were numbered by how many were kept, so with an
    earlier shard dropped (its .npy gone) a new one took a kept shard's name and overwrote it,
    the index listing that file twice."""
    root = make(tmp_path / "ds", A_CLIPS + B_CLIPS)
    out = build_cache(root, FE, out=tmp_path / "cache", shard_windows=1)   # a shard per clip
    first = CachedWindows(out)
    assert len(json.loads((out / "index.json").read_text())["shards"]) == 2
    want = {cid: first.targets[i].tolist() for i, cid in enumerate(first.clip_ids)}
    feats = {cid: first[i][0].numpy().copy() for i, cid in enumerate(first.clip_ids)}
    (out / "shard-00000.npy").unlink()                             # the first shard lost
    build_cache(root, FE, out=out, shard_windows=1)
    files = [s["file"] for s in json.loads((out / "index.json").read_text())["shards"]]
    assert len(files) == len(set(files))
    again = CachedWindows(out)
    assert sorted(again.clip_ids) == sorted(first.clip_ids)
    for i, cid in enumerate(again.clip_ids):
        assert again.targets[i].tolist() == want[cid]
        assert np.array_equal(again[i][0].numpy(), feats[cid])


def test_prompt_lines_stating_two_periods_or_instrumentations_mask_both_and_say_so(tmp_path):
    """Review (session 45): '%Romantic %Baroque ... %Keyboard %Orchestral' gave Romantic and
    Keyboard, the other lines dropped without a word in the build report."""
    cells = prompt_labels("%Romantic\n%Baroque\n%Chopin, Frederic\n%Keyboard\n%Orchestral\n"
                          "%end\n" + BODY)
    assert (cells["period"].value, cells["period"].written) == ("", "Romantic; Baroque")
    assert (cells["instrumentation"].value, cells["instrumentation"].written) == \
        ("", "Keyboard; Orchestral")
    assert cells["composer"].value == "Chopin, Frédéric"
    same = prompt_labels("%Romantic\n%Romantic\n%Chopin, Frederic\n%Keyboard\n%end\n" + BODY)
    assert same["period"].value == "Romantic"                 # stated twice alike: used
    root = tmp_path / "in"
    abc(root / "p.abc", "Romantic", "Baroque", "Chopin, Frederic", "Keyboard", "end")
    out = tmp_path / "out"
    build_notagen_dataset(root, out, soundfonts=[get_soundfont("timgm6mb")], clip_s=2.0)
    assert {r["period"] for r in Dataset.load(out).rows} == {""}
    report = json.loads((out / "build_report.json").read_text())
    assert {c["ignored"] for c in report["label_conflicts"]} == {"Romantic; Baroque"}


@pytest.mark.parametrize("rows, needle", [
    ("./p.abc,notagen-large\np.abc,notagen-small\n", "repeats row 2"),
    ("p.abc\n", "needs exactly the columns"),
    ("p.abc,a;b\n", "is not a label"),
])
def test_a_generators_csv_is_held_to_the_labels_files_strictness(tmp_path, rows, needle):
    """Review (session 45): two rows naming one file ('./p.abc' and 'p.abc') changed its
    generator to the later one without a word; a row with no generator cell was a traceback;
    'a;b' stopped the build deep inside with a taxonomy error."""
    from musicbrain_cli.errors import DatasetError

    root = tmp_path / "in"
    abc(root / "p.abc", "Baroque", "Bach, Johann Sebastian", "Keyboard", "end")
    (root / "generators.csv").write_text("path,generator\n" + rows)
    with pytest.raises(DatasetError, match=needle):
        build_notagen_dataset(root, tmp_path / "out", soundfonts=[get_soundfont("timgm6mb")],
                              clip_s=2.0)


def test_a_nul_in_a_labels_csv_path_is_a_dataset_error(tmp_path):
    """Review (session 45): a NUL in a --labels path cell raised ValueError ("embedded null
    byte") from the path check, a traceback instead of the row's error."""
    from musicbrain_cli.data.notagen import read_labels_csv
    from musicbrain_cli.errors import DatasetError

    root = tmp_path / "in"
    abc(root / "a.abc", "Baroque", "Bach, Johann Sebastian", "Keyboard", "end")
    labels = tmp_path / "labels.csv"
    labels.write_text("path,period\na\0.abc,Baroque\n")
    with pytest.raises(DatasetError, match="row 2: path .* NUL"):
        read_labels_csv(labels, root)
