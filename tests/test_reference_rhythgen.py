"""RhythGen output in the reference corpus (issue 21 item 3), on a fake RhythGen tree made
here: short two-voice ABC pieces in RhythGen's own folder and file-name layout."""

import csv
import json
import warnings
from collections import defaultdict

import pretty_midi
import pytest

from musicbrain_cli.taxonomy import Taxonomy
from musicbrain_cli.data.reference import build as B
from musicbrain_cli.data.reference import rhythgen as rg

ABC = """X:1
%%score 1 2
L:1/8
Q:1/4=120
M:4/4
K:C
V:1 treble nm="Voice"
V:2 bass nm="Piano"
[V:1]{a}|[V:2]{b}|
[V:1]{c}|[V:2]{d}|
[V:1]{a}|[V:2]{b}|
[V:1]{c}|[V:2]{d}|
"""
BARS = ["cdef gabc'", "edcB AGFE", "C,E,G,C E,G,CE", "G,,B,,D,G, F,A,CF"]


def _piece(i: int) -> str:
    a, c, b, d = (BARS[(i + k) % 4] for k in range(4))
    return ABC.format(a=a, b=b, c=c, d=d)


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("rhythgen")
    layout = {("Lieder", "LAR"): ["lc1", "lc2", "lc3"], ("Lieder", "LAD"): ["lc1", "lc2", "lc3"],
              ("RAG", "RMM"): ["Rag One - Someone", "Rag Two - Someone"]}
    for (family, config), prompts in layout.items():
        folder = root / family / config
        folder.mkdir(parents=True)
        for i, prompt in enumerate(prompts):
            name = f"sync-1-{prompt}_0.abc-{10 + i}.5_1.abc"
            (folder / name).write_text(_piece(i), encoding="utf-8")
    (root / "README.txt").write_text("not a piece", encoding="utf-8")
    return root


def test_discover_labels_every_piece(tree):
    pieces = rg.discover_pieces(tree)
    assert len(pieces) == 8
    by = {(p.config, p.work_id) for p in pieces}
    # one work per prompt piece, shared across configurations
    assert ("LAR", "rhythgen:lc1") in by and ("LAD", "rhythgen:lc1") in by
    for p in pieces:
        assert p.generator == "notagen-small-ft"
        assert p.instrumentation == ("Art Song" if p.family == "Lieder" else "Keyboard")
        assert (p.period, p.composer) == ("", "")
    assert {p.held_out for p in pieces if p.config == "LAD"} == {True}


def test_select_keeps_held_out_configs_to_test_works(tree):
    pieces = rg.discover_pieces(tree)
    splits = {"rhythgen:lc1": "train", "rhythgen:lc2": "test", "rhythgen:lc3": "test_xsf",
              "rhythgen:Rag One - Someone": "val", "rhythgen:Rag Two - Someone": "train"}
    chosen = rg.select(pieces, splits, per_config=None)
    lad = [p for p in chosen if p.config == "LAD"]
    assert {p.work_id for p in lad} == {"rhythgen:lc2", "rhythgen:lc3"}
    assert len([p for p in chosen if p.config == "LAR"]) == 3
    one = rg.select(pieces, splits, per_config=1)
    assert sorted(p.config for p in one) == ["LAD", "LAR", "RMM"]
    assert all(splits[p.work_id] in rg.TEST_SPLITS for p in one if p.held_out)
    assert rg.select(pieces, splits, per_config=0) == []


def test_windows_start_on_notes_and_never_pad():
    midi = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(0)
    inst.notes = [pretty_midi.Note(80, 60 + (k % 12), 0.5 + k * 0.5, 0.9 + k * 0.5)
                  for k in range(40)]                      # notes from 0.5 s to 20.4 s
    midi.instruments.append(inst)
    starts = rg.window_starts(midi, clip_s=8.0, windows=2)
    assert starts[0] == pytest.approx(0.5)
    assert len(starts) == 2 and starts[1] >= starts[0] + 8.0
    onsets = {n.start for n in inst.notes}
    assert all(any(abs(s - o) < 1e-9 for o in onsets) for s in starts)
    assert rg.window_starts(midi, clip_s=30.0, windows=2) == []   # shorter than a clip
    win = rg.midi_window(midi, starts[1], 8.0)
    notes = win.instruments[0].notes
    assert notes[0].start == pytest.approx(0.0)
    assert all(0.0 <= n.start < 8.0 for n in notes) and len(notes) == 16


def test_a_rhythgen_window_ends_at_the_clip_length_as_a_human_scores_does():
    """RhythGen clips took clip_s + 1 s of notes, left ringing, so after the humanising
    stretch (up to 4 % faster) they always played to the clip's last sample, while a human
    score's window (clip_s, cut) ends early half the time: end silence told the classes apart
    (review). The window is a clip's length, and no note rings past it."""
    import numpy as np

    from musicbrain_cli.data.reference import tokens

    midi = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(0)
    inst.notes = [pretty_midi.Note(80, 60 + (k % 12), k * 0.75, k * 0.75 + 1.5) for k in range(40)]
    midi.instruments.append(inst)
    win = rg.midi_window(midi, 0.0, 12.0)
    assert max(n.end for n in win.instruments[0].notes) <= 12.0 + 1e-9
    assert max(n.start for n in win.instruments[0].notes) < 12.0
    # the same cut as the human scores' token windows
    events = [(int(round(n.start * 960)), 0, n.pitch, int(round((n.end - n.start) * 960)))
              for n in inst.notes]
    cut = tokens.window(events, 0, 12 * 960)
    assert np.allclose(sorted((o + d) / 960 for o, _, _, d in cut),
                       sorted(n.end for n in win.instruments[0].notes))


def test_a_piece_rewritten_in_place_is_parsed_again_not_read_from_the_cache(tmp_path):
    """The parse cache was keyed by the piece's path alone: a piece rewritten in place was
    rendered from its old notes by a resumed build (review)."""
    folder = tmp_path / "rg" / "RAG" / "RMM"
    folder.mkdir(parents=True)
    piece = folder / "sync-1-Rag One - Someone_0.abc-10.5_1.abc"
    piece.write_text(_piece(0), encoding="utf-8")
    cache = tmp_path / "cache"

    def pitches():
        (p,) = rg.discover_pieces(tmp_path / "rg")
        midis, failed = rg.parse_all([p], cache, jobs=1)
        assert not failed
        return sorted(n.pitch for inst in midis[p.rel].instruments for n in inst.notes)

    first = pitches()
    piece.write_text(_piece(0).replace("cdef gabc'", "cccc cccc"), encoding="utf-8")
    second = pitches()
    assert second != first
    assert len(list(cache.glob("*.npz"))) == 2      # one entry per content


def test_build_with_rhythgen(tree, tmp_path, monkeypatch):
    spec = B.SizeSpec("micro", 4.0, ("bach",), 1, 1, 1, 1, 0.5, sample_batch=1,
                      rhythgen_per_config=None, rhythgen_windows=2)
    monkeypatch.setitem(B.SIZES, "micro", spec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        summary = B.build_reference(tmp_path, size="micro", seed=0, rhythgen=tree, jobs=2)
    with open(tmp_path / "manifest.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    tax = Taxonomy.load(tmp_path / "taxonomy.json")
    assert "generator/notagen-small-ft" in tax.labels
    for r in rows:
        tax.encode(r)
    rgrows = [r for r in rows if r["origin"].startswith("rhythgen:")]
    assert rgrows
    fonts = summary["training_soundfonts"] + [summary["held_out_soundfont"]]
    for r in rgrows:
        assert (r["source"], r["generator"]) == ("ai", "notagen-small-ft")
        # rendered by the corpus's own loop: its clip length, its SoundFonts
        assert float(r["duration_s"]) == pytest.approx(summary["clip_s"], abs=1e-3)
        assert r["renderer"] in fonts
        assert (r["renderer"] == summary["held_out_soundfont"]) == (r["split"] == B.XSF_SPLIT)
        if r["clip_id"].split("-")[1] == "LAD":       # held-out configuration: test only
            assert r["split"] in rg.TEST_SPLITS
    lad = [r for r in rgrows if r["clip_id"].split("-")[1] == "LAD"]
    assert lad and len(lad) < len([r for r in rgrows if r["clip_id"].split("-")[1] == "LAR"])
    splits = defaultdict(set)
    for r in rows:
        splits[r["work_id"]].add(r["split"])
    assert all(len(s) == 1 for s in splits.values())
    info = summary["rhythgen"]
    assert info["used"] and info["pieces_found"] == 8 and info["clips"] == len(rgrows)
    assert sum(sum(v.values()) for v in info["clips_per_config"].values()) == len(rgrows)
    assert "RhythGen" in info["credit"] and info["held_out_configs"] == sorted(rg.HELD_OUT_CONFIGS)
    assert len(list((tmp_path / rg.MIDI_CACHE).glob("*.npz"))) == info["pieces_selected"]
    report = json.loads((tmp_path / "reference.json").read_text(encoding="utf-8"))
    assert report["rhythgen"]["clips"] == len(rgrows)
    # a rerun resumes: nothing new, the parsed MIDI read back
    again = B.build_reference(tmp_path, size="micro", seed=0, rhythgen=tree, jobs=2)
    assert again["clips"] == summary["clips"] and again["rhythgen"] == summary["rhythgen"]


def test_build_balance_drops_rhythgen_training_clips_no_human_style_matches(tree, tmp_path,
                                                                            monkeypatch):
    """The micro corpus's human side is one Bach chorale (Choral): no Art Song or Keyboard,
    so a ratio-1 balance keeps none of RhythGen's training/validation clips, and all of its
    test clips; the build says so."""
    spec = B.SizeSpec("micro", 4.0, ("bach",), 1, 1, 1, 1, 0.5, sample_batch=1,
                      rhythgen_per_config=None, rhythgen_windows=2, rhythgen_balance=1.0)
    monkeypatch.setitem(B.SIZES, "micro", spec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        summary = B.build_reference(tmp_path, size="micro", seed=0, rhythgen=tree, jobs=2)
    with open(tmp_path / "manifest.csv", encoding="utf-8") as fh:
        rgrows = [r for r in csv.DictReader(fh) if r["origin"].startswith("rhythgen:")]
    assert rgrows and all(r["split"] in rg.TEST_SPLITS for r in rgrows)
    balance = summary["rhythgen"]["balance"]
    assert balance["ratio"] == 1.0
    assert all(b["human"] == 0 and b["kept"] == 0 and b["dropped"] > 0
               for b in balance["by_instrumentation"].values())


def test_without_rhythgen_the_taxonomy_is_unchanged():
    assert B.reference_taxonomy().labels == B.reference_taxonomy(extra_generators=()).labels
    assert "generator/notagen-small-ft" not in B.reference_taxonomy().labels


def test_rhythgen_is_capped_per_instrumentation_by_the_human_side():
    """Art Song held by 2 human training clips keeps 2 RhythGen training/validation clips
    (ratio 1); Keyboard with 3 human clips keeps 3; test clips are never dropped; the draw is
    seeded and stable; ratio None keeps everything."""
    from musicbrain_cli.data.reference.build import _Clip, balance_rhythgen

    def clip(cid, source, inst, split):
        return _Clip(cid, source, "notagen-small-ft" if source == "ai" else "", "", "", inst,
                     cid, split, "", [], 120.0, False)

    human = ([clip(f"h{i}", "human", "Art Song", "train") for i in range(2)]
             + [clip(f"k{i}", "human", "Keyboard", "val" if i else "train") for i in range(3)]
             + [clip("ht", "human", "Art Song", "test")])
    rg = ([clip(f"rg-LAR-{i}", "ai", "Art Song", "train" if i < 8 else "val") for i in range(10)]
          + [clip(f"rg-HAM-{i}", "ai", "Keyboard", "train") for i in range(5)]
          + [clip(f"rg-LAD-{i}", "ai", "Art Song", "test") for i in range(4)])
    kept, report = balance_rhythgen(rg, human, 1.0, seed=0)
    ids = [c.clip_id for c in kept]
    assert sum(i.startswith("rg-LAR") for i in ids) == 2
    assert sum(i.startswith("rg-HAM") for i in ids) == 3
    assert sum(i.startswith("rg-LAD") for i in ids) == 4          # test clips all kept
    assert report["by_instrumentation"]["Art Song"] == {"human": 2, "cap": 2, "kept": 2,
                                                        "dropped": 8}
    again, _ = balance_rhythgen(rg, human, 1.0, seed=0)
    assert [c.clip_id for c in again] == ids
    other, _ = balance_rhythgen(rg, human, 1.0, seed=1)
    assert [c.clip_id for c in other] != ids                         # a seeded draw
    assert balance_rhythgen(rg, human, None, seed=0) == (rg, {})


def test_a_configuration_folder_with_spaces_or_dashes_builds(tmp_path, monkeypatch):
    """A user's copy of a configuration folder ('LAS (copy)', 'RMM-2') stopped build-reference:
    its name went verbatim into clip ids, which allow no space or parenthesis, and a dash
    broke config_of. RhythGen's own names keep their ids unchanged."""
    root = tmp_path / "rg"
    for config in ("LAS (copy)", "RMM-2", "LAR"):
        folder = root / ("RAG" if config.startswith("RMM") else "Lieder") / config
        folder.mkdir(parents=True)
        for i, prompt in enumerate(("lc1", "lc2")):
            (folder / f"sync-1-{prompt}_0.abc-{10 + i}.5_1.abc").write_text(_piece(i), encoding="utf-8")
    assert rg.config_token("LAR") == "LAR" and rg.config_token("RB_Base") == "RB_Base"
    tokens = {rg.config_token(c) for c in ("LAS (copy)", "RMM-2", "LAS_copy", "LAS copy")}
    assert len(tokens) == 4 and all("-" not in t and " " not in t for t in tokens)
    spec = B.SizeSpec("micro", 4.0, ("bach",), 1, 1, 1, 1, 0.5, sample_batch=1,
                      rhythgen_per_config=None, rhythgen_windows=1)
    monkeypatch.setitem(B.SIZES, "micro", spec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        summary = B.build_reference(tmp_path / "ds", size="micro", seed=0, rhythgen=root, jobs=1)
    with open(tmp_path / "ds" / "manifest.csv", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["origin"].startswith("rhythgen:")]
    configs = {rg.config_of(r["clip_id"]) for r in rows}
    assert "LAR" in configs and rg.config_token("LAS (copy)") in configs
    assert rg.config_token("RMM-2") in configs and summary["rhythgen"]["clips"] == len(rows)


def test_a_piece_whose_name_is_not_utf8_is_listed_not_a_crash(tmp_path):
    """Review (session 45): a RhythGen file named in Latin-1 (an old zip) stopped the whole
    build-reference with a UnicodeEncodeError when its piece id was hashed; `data notagen`
    lists such files and goes on, and so does the reference build now."""
    import os

    folder = tmp_path / "RAG" / "RMM"
    folder.mkdir(parents=True)
    (folder / "sync-1-Rag One - Someone_0.abc-10.5_1.abc").write_text(_piece(0), encoding="utf-8")
    bad = os.path.join(os.fsencode(folder), b"sync-1-Caf\xe9 Rag - Someone_0.abc-11.5_1.abc")
    with open(bad, "w", encoding="utf-8") as fh:
        fh.write(_piece(1))
    skipped: list = []
    pieces = rg.discover_pieces(tmp_path, skipped=skipped)
    assert [p.path.name for p in pieces] == ["sync-1-Rag One - Someone_0.abc-10.5_1.abc"]
    assert all(p.piece_id for p in pieces)
    assert len(skipped) == 1 and "not valid UTF-8" in skipped[0][1]
    skipped[0][0].encode("utf-8")                       # a name a report can hold
