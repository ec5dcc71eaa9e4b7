"""NotaGen adapter on ABC files laid out as NotaGen writes them, made here."""

import json
from pathlib import Path

import pytest

from musicbrain_cli.errors import DatasetError
from musicbrain_cli.training.dataset import Dataset
from musicbrain_cli.training.notagen import (build_notagen_dataset, deinterleave_abc, discover,
                                             find_labels, generator_from_folder)
from musicbrain_cli.training.render import get_soundfont, score_to_midi, visible_rests

PROMPT = "%Baroque\n%Bach, Johann Sebastian\n%Keyboard\n%end\n"
HEADER = "%%score { 1 | 2 }\nL:1/8\nQ:1/4=120\nM:4/4\nK:G\nV:1 treble nm=\"Piano\" snm=\"Pno.\"\nV:2 bass\n"
INTERLEAVED = HEADER + (
    "[V:1]GABc d2 d2|[V:2]G,,4 D,4|\n"
    "[V:1]e4 d4|[V:2]C,4 G,,4|\n"
    "[V:1]B2 A2 G4|][V:2]D,4 G,,4|]\n")
STANDARD = HEADER + ("V:1\nGABc d2 d2|\ne4 d4|\nB2 A2 G4|]\n"
                     "V:2\nG,,4 D,4|\nC,4 G,,4|\nD,4 G,,4|]\n")
# NotaGen's raw ("original") output: bar counters, and a resting voice left out
RAW = HEADER + (
    "[r:0/2][V:1]GABc d2 d2|[V:2]G,,4 D,4|\n"
    "[r:1/1][V:1]e4 d4|\n"
    "[r:2/0][V:1]B2 A2 G4|][V:2]D,4 G,,4|]\n")
WEIGHTS = "weights_notagen_pretrain_p_size_16_p_length_1024_p_layers_12_c_layers_3_h_size_768_lr_0.0001_batch_4.pth"
BATCH = f"{WEIGHTS}_k_9_p_0.9_temp_1.2"


def notes(midi):
    return sorted((round(n.start, 3), n.pitch) for i in midi.instruments for n in i.notes)


def test_deinterleave_gives_the_same_music_as_standard_abc():
    flat = deinterleave_abc(INTERLEAVED)
    assert "[V:" not in flat
    assert notes(score_to_midi(flat)) == notes(score_to_midi(STANDARD))
    assert notes(score_to_midi(INTERLEAVED)) == notes(score_to_midi(STANDARD))
    assert deinterleave_abc(STANDARD) == STANDARD  # already standard: unchanged


def test_invisible_rests_keep_their_duration():
    # NotaGen writes x for secondary voices; music21 alone would drop x and its length
    midi = score_to_midi("X:1\nL:1/8\nM:4/4\nK:G\nx8|D,4 G,,4|]\n")
    assert notes(midi) == [(2.0, 50), (3.0, 43)]
    assert visible_rests('"x"x2 !x!x [K:Bmix]x|') == '"x"z2 !x!z [K:Bmix]z|'


def test_rest_reduced_voices_get_a_full_bar_rest():
    midi = score_to_midi(RAW)
    ref = notes(score_to_midi(STANDARD))
    got = notes(midi)
    # bar 2 of voice 2 is silent in the raw file, the rest lines up with the standard piece
    missing = [n for n in ref if n not in got]
    assert sorted(p for _, p in missing) == [43, 48]           # C,4 G,,4 of bar 2
    assert all(2.0 <= t < 4.0 for t, _ in missing)
    assert [n for n in got if n not in ref] == []


def test_labels_from_prompt_then_file_name(tmp_path):
    f = tmp_path / "20250301_101500_Romantic_Chopin, Frederic_Keyboard.abc"
    f.write_text(INTERLEAVED)
    lab = find_labels(f, INTERLEAVED)
    assert (lab.period, lab.composer, lab.instrumentation) == ("Romantic", "Chopin, Frederic",
                                                               "Keyboard")
    lab = find_labels(f, "%Classical\n%Mozart, Wolfgang Amadeus\n%Chamber\n%end\n" + INTERLEAVED)
    assert (lab.period, lab.composer, lab.instrumentation) == ("Classical",
                                                               "Mozart, Wolfgang Amadeus", "Chamber")
    with pytest.raises(DatasetError, match="no period, composer, instrumentation"):
        find_labels(tmp_path / "piece.abc", INTERLEAVED)


def test_generator_from_the_batch_folder():
    assert generator_from_folder(BATCH) == "notagen-small"
    assert generator_from_folder(BATCH.replace("p_layers_12", "p_layers_20")) == "notagen-large"
    assert generator_from_folder("my_pieces") is None


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "notagen"
    for kind, text in (("original", RAW), ("interleaved", INTERLEAVED)):
        d = root / "output" / kind / BATCH
        d.mkdir(parents=True)
        (d / "20250301-101500_12.34_1.abc").write_text(PROMPT + text)
        (d / "20250301-101700_8.10_2.abc").write_text(
            PROMPT.replace("Keyboard", "Chamber") + text)
    demo = root / "demo"
    demo.mkdir()
    (demo / "20250302_093000_Classical_Mozart, Wolfgang Amadeus_Keyboard.abc").write_text(STANDARD)
    (demo / "20250302_093500_Romantic_Brahms, Johannes_Keyboard.abc").write_text(
        "X:1\nL:1/8\nK:C\nV:1\n[[[ this is ( not abc )))|\n")
    (demo / "untitled.abc").write_text(STANDARD)  # no labels anywhere
    (root / "generators.csv").write_text(
        "path,generator\n"
        '"demo/20250302_093000_Classical_Mozart, Wolfgang Amadeus_Keyboard.abc",notagen-x\n')
    return root


def test_discover_takes_each_batch_piece_once(tree):
    items = discover(tree)
    batch = [i for i in items if i.rel.startswith("output/")]
    assert len(batch) == 2 and all("/interleaved/" in i.rel for i in batch)
    assert {i.generator for i in batch} == {"notagen-small"}


def test_build_skips_bad_files_and_resumes(tree, tmp_path):
    out = tmp_path / "ds"
    font = get_soundfont("timgm6mb")
    summary = build_notagen_dataset(tree, out, soundfonts=[font], seed=1, clip_s=2.0)
    ds = Dataset.load(out)
    ds.validate()
    rows = ds.rows
    assert {r["source"] for r in rows} == {"ai"}
    assert {r["generator"] for r in rows} == {"notagen-small", "notagen-x"}
    by_work = {}
    for r in rows:
        by_work.setdefault(r["work_id"], []).append(r)
    assert len(by_work) == 3
    mozart = next(v for k, v in by_work.items() if "Mozart" in k)
    assert {(r["period"], r["composer"], r["instrumentation"]) for r in mozart} == \
        {("Classical", "Mozart, Wolfgang Amadeus", "Keyboard")}
    # 3 bars of 4/4 at 120 bpm = 6 s, + 1 s tail, in 2 s clips
    assert sum(float(r["duration_s"]) for r in mozart) == pytest.approx(7.0, abs=0.01)
    assert all(len({r["split"] for r in v}) == 1 for v in by_work.values())
    assert {r["instrumentation"] for r in rows if r["generator"] == "notagen-small"} == \
        {"Keyboard", "Chamber"}
    report = json.loads((out / "build_report.json").read_text())
    reasons = {s["item"]: s["reason"] for s in report["skipped"]}
    assert set(reasons) == {"demo/untitled.abc",
                            "demo/20250302_093500_Romantic_Brahms, Johannes_Keyboard.abc"}
    assert "no period" in reasons["demo/untitled.abc"]
    again = build_notagen_dataset(tree, out, soundfonts=[font], seed=1, clip_s=2.0)
    assert again["new_clips"] == 0 and again["clips"] == summary["clips"]


def test_cli_builds_and_caches(tree, tmp_path):
    from click.testing import CliRunner

    from musicbrain_cli.cli import main

    out = tmp_path / "cli-ds"
    result = CliRunner().invoke(main, ["data", "notagen", str(tree), "-o", str(out),
                                       "--soundfont", "timgm6mb", "--clip-seconds", "2",
                                       "--generator", "notagen-medium", "--limit", "2"])
    assert result.exit_code == 0, result.output
    assert "items skipped" in result.output
    rows = Dataset.load(out).rows
    assert rows and {r["generator"] for r in rows} == {"notagen-medium"}
    cfg = tmp_path / "model.yaml"
    cfg.write_text("model:\n  front_end:\n    sample_rate: 22050\n    n_fft: 512\n"
                   "    hop_length: 441\n    n_bins: 32\n    window_s: 2.0\n    hop_s: 1.0\n")
    result = CliRunner().invoke(main, ["data", "cache", str(out), "--model-config", str(cfg)])
    assert result.exit_code == 0, result.output
    cache_dir = result.output.strip().split("feature cache: ")[1]
    index = json.loads((Path(cache_dir) / "index.json").read_text())
    assert index["shape"] == [1, 32, 100] and index["front_end"]["n_fft"] == 512
    bad = CliRunner().invoke(main, ["data", "notagen", str(tree), "-o", str(out),
                                    "--soundfont", "nosuchfont"])
    assert bad.exit_code == 1 and "nosuchfont" in bad.output
