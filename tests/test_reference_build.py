"""The reference corpus build: labels, splits by work, the held-out SoundFont, determinism,
resume. Built at size ``tiny`` (twice, for determinism) to stay fast on two cores; the
``small`` build, which populates every label, is the slow test."""

import csv
import hashlib
import json
import warnings
from collections import defaultdict

import pytest

from musicbrain_cli.errors import DatasetError
from musicbrain_cli.taxonomy import Taxonomy
from musicbrain_cli.data.reference import build as B


def _rows(root):
    with open(root / "manifest.csv", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _audio_hashes(root):
    return {r["clip_id"]: hashlib.sha256((root / r["path"]).read_bytes()).hexdigest()
            for r in _rows(root)}


def _build(root, size="tiny", seed=0):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a writer without test_xsf warns
        return B.build_reference(root, size=size, seed=seed)


@pytest.fixture(scope="module")
def tiny_pair(tmp_path_factory):
    a, b = tmp_path_factory.mktemp("ref_a"), tmp_path_factory.mktemp("ref_b")
    return (a, _build(a)), (b, _build(b))


def _check_corpus(root, summary):
    rows = _rows(root)
    tax = Taxonomy.load(root / "taxonomy.json")
    assert tax.group_names == ["source", "generator", "period", "composer", "instrumentation"]
    for r in rows:
        tax.encode(r)  # every cell is valid
        assert (r["source"] == "human") == (r["generator"] == "-")
        assert float(r["duration_s"]) == pytest.approx(summary["clip_s"], abs=1e-3)
    # no work in two splits; a codec clip sits with its source work
    splits = defaultdict(set)
    for r in rows:
        splits[r["work_id"]].add(r["split"])
    assert all(len(s) == 1 for s in splits.values()), splits
    by_id = {r["clip_id"]: r for r in rows}
    for r in rows:
        if r["generator"] == B.CODEC_GENERATOR:
            src = by_id["human-" + r["clip_id"].removeprefix("codec-")]
            assert (src["split"], src["work_id"], src["composer"]) == (
                r["split"], r["work_id"], r["composer"])
    # the held-out SoundFont renders its split and nothing else
    xsf = summary["cross_renderer_split"]
    held = summary["held_out_soundfont"]
    assert held not in summary["training_soundfonts"]
    held_rows = [r for r in rows if r["renderer"] == held]
    assert all(r["split"] == xsf for r in held_rows)
    if xsf == B.XSF_SPLIT:
        assert all(r["renderer"] == held for r in rows if r["split"] == xsf)
    # generator-training works are only ever in train
    pinned = set(json.loads((B.ASSETS_DIR / "symbolic-small.json").read_text())[
        "training_works"])
    assert all(r["split"] == "train" for r in rows if r["work_id"] in pinned)
    return rows


def test_tiny_build_labels_splits_and_renderers(tiny_pair):
    (root, summary), _ = tiny_pair
    rows = _check_corpus(root, summary)
    for group in ("source", "generator", "period", "composer", "instrumentation"):
        assert any(r[group] not in ("", "-") for r in rows), group
    assert {r["generator"] for r in rows} == {"-", *B.GENERATOR_LABELS}
    assert (root / "card.json").is_file() and (root / "reference.json").is_file()


def test_arrangements_are_human_with_unknown_style_labels(tiny_pair):
    from musicbrain_cli.data.reference.arrangements import GENRES

    (root, summary), _ = tiny_pair
    rows = _rows(root)
    arranged = [r for r in rows if r["origin"].startswith("arrangement:")]
    assert sorted(r["origin"].split(":")[1].split("#")[0] for r in arranged) == sorted(GENRES)
    assert summary["arrangements"] == {g: 1 for g in GENRES}
    for r in arranged:   # they teach the detector, not the style heads
        assert (r["source"], r["generator"]) == ("human", "-")
        assert r["period"] == r["composer"] == r["instrumentation"] == ""
        assert r["work_id"] == r["clip_id"].removeprefix("human-")
    # their codec re-syntheses are AI clips of the same work
    codec = [r for r in rows if r["origin"].startswith("neural-codec:human-arrangement-")]
    assert codec and all(r["source"] == "ai" for r in codec)


def test_arrangements_are_seeded_pieces_of_their_idiom():
    from musicbrain_cli.data.reference import arrangements as ar

    for genre in ar.GENRES:
        midi, qpm = ar.arrange(genre, 7, 12.0)
        again, _ = ar.arrange(genre, 7, 12.0)
        other, _ = ar.arrange(genre, 8, 12.0)
        notes = [(n.start, n.pitch) for i in midi.instruments for n in i.notes]
        assert notes == [(n.start, n.pitch) for i in again.instruments for n in i.notes]
        assert notes != [(n.start, n.pitch) for i in other.instruments for n in i.notes]
        assert midi.get_end_time() >= 12.0 and 40 <= qpm <= 200, genre
        assert len({i.program for i in midi.instruments if not i.is_drum}) >= 2, genre
        assert all(0 <= n.pitch <= 127 for i in midi.instruments for n in i.notes)
    # the ones with a kit put it on the drum channel
    assert any(i.is_drum for i in ar.arrange("funk", 1, 8.0)[0].instruments)
    with pytest.raises(ValueError, match="genre"):
        ar.arrange("polka", 0, 5.0)


def test_same_seed_same_manifest_and_audio(tiny_pair):
    (a, _), (b, _) = tiny_pair
    assert (a / "manifest.csv").read_bytes() == (b / "manifest.csv").read_bytes()
    assert _audio_hashes(a) == _audio_hashes(b)


def test_rerun_resumes_without_rewriting(tiny_pair, tmp_path):
    (a, _), _ = tiny_pair
    before = {p.name: p.stat().st_mtime_ns for p in (a / "audio").iterdir()}
    victim = sorted(before)[0]
    (a / "audio" / victim).unlink()  # as if the build had died before this clip
    _build(a)
    after = {p.name: p.stat().st_mtime_ns for p in (a / "audio").iterdir()}
    assert set(after) == set(before)
    assert all(after[k] == before[k] for k in before if k != victim)


def test_other_seed_other_audio(tiny_pair, tmp_path):
    (a, _), _ = tiny_pair
    _build(tmp_path, seed=1)
    assert _audio_hashes(tmp_path) != _audio_hashes(a)


def test_unknown_size_is_rejected(tmp_path):
    with pytest.raises(DatasetError, match="huge"):
        B.build_reference(tmp_path, size="huge")


def test_split_works_pins_generator_training_works():
    ids = [f"w{i}" for i in range(200)]
    pinned = set(ids[:120])
    out = B._split_works(ids, pinned, seed=3)
    assert all(out[w] == "train" for w in pinned)
    counts = defaultdict(int)
    for s in out.values():
        counts[s] += 1
    assert counts["val"] >= 15 and counts["test"] >= 15 and counts[B.XSF_SPLIT] >= 5


@pytest.mark.slow
def test_small_build_populates_every_label(tmp_path):
    # CI builds from MusicNet when the shared tree is beside the checkout (issue 21 item 4)
    from musicbrain_cli.data.reference.musicnet import find_musicnet

    musicnet = find_musicnet()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        summary = B.build_reference(tmp_path, size="small", seed=0, musicnet=musicnet)
    rows = _check_corpus(tmp_path, summary)
    assert summary["musicnet"]["used"] == (musicnet is not None)
    if musicnet is not None:
        assert any(r["origin"].startswith("musicnet:") for r in rows)
    tax = Taxonomy.load(tmp_path / "taxonomy.json")
    seen = {f"{g}/{r[g]}" for r in rows for g in tax.group_names}
    missing = [label for label in tax.labels if label not in seen]
    assert not missing, missing
    assert {r["split"] for r in rows} >= {"train", "val", "test"}


# --- the notes as played (issue 26): the build's humanisation replayed on the stored score ---


def _stretch(render_seed: int) -> float:
    """The tempo factor :func:`humanize_midi` draws first from ``render_seed``."""
    import numpy as np

    return 1.0 + np.random.default_rng(render_seed).uniform(-0.04, 0.04)


@pytest.fixture(scope="module")
def played_corpus(tmp_path_factory):
    """One single-instrument clip rendered exactly as the build renders it (its draws from
    ``_render_draws(seed, clip id)``), stored with its unhumanised score and a
    ``reference.json`` recording the seed and fonts. The clip id is the first whose tempo
    stretch is at least 2.5 %, so the stored score's onsets after 2 s are > 50 ms off."""
    import pretty_midi

    from musicbrain_cli.data.dataset import ClipRecord, Dataset, DatasetWriter
    from musicbrain_cli.data.render import available_soundfonts, render_midi

    seed, sr = 7, 22050
    fonts = [f for f in available_soundfonts() if f.name != B.HELD_OUT_SOUNDFONT]
    clip_id = next(c for c in (f"human-played-{i}" for i in range(200))
                   if abs(_stretch(B._render_draws(seed, c, held_out=False,
                                                   n_fonts=len(fonts))[3]) - 1) >= 0.025)
    _, font_index, humanize, render_seed = B._render_draws(seed, clip_id, held_out=False,
                                                           n_fonts=len(fonts))
    score = pretty_midi.PrettyMIDI()
    piano = pretty_midi.Instrument(program=0)
    piano.notes += [pretty_midi.Note(velocity=90, pitch=60 + (3 * i) % 12, start=0.5 * i,
                                     end=0.5 * i + 0.2) for i in range(16)]
    score.instruments.append(piano)
    y = render_midi(score, fonts[font_index], sample_rate=sr, humanize=humanize, seed=render_seed)
    root = tmp_path_factory.mktemp("played")
    taxonomy = Taxonomy.from_groups([("source", ("human", "ai"), True)])
    with DatasetWriter(root, taxonomy, sample_rate=sr, name="played") as w:
        w.add(ClipRecord(clip_id, source="human", work_id="w0", renderer=fonts[font_index].name,
                         split="test", score=score), y)
    (root / B.REFERENCE_JSON).write_text(json.dumps(
        {"seed": seed, "training_soundfonts": [f.name for f in fonts],
         "held_out_soundfont": B.HELD_OUT_SOUNDFONT}), encoding="utf-8")
    return Dataset.load(root), y, sr, _stretch(render_seed)


def _hit_share(onsets, detected, tol=0.05):
    import numpy as np

    return float(np.mean([np.min(np.abs(detected - t)) <= tol for t in onsets]))


def test_played_midi_lands_on_the_rendered_onsets(played_corpus):
    import numpy as np

    from musicbrain_cli.alignment.overlap import detect_onsets

    dataset, y, sr, stretch = played_corpus
    row = dataset.rows[0]
    import pretty_midi

    played = B.played_midi(dataset.root, row)
    stored = [n.start for n in pretty_midi.PrettyMIDI(str(dataset.score_path(row))).instruments[0].notes]
    onsets = [n.start for n in played.instruments[0].notes]
    assert len(onsets) == len(stored) == 16
    detected = detect_onsets(y, sr)
    # the replay carries the build's stretch: the last onset moved by (stretch - 1) * 7.5 s
    assert onsets[-1] == pytest.approx(stretch * stored[-1], abs=0.1)
    assert _hit_share(onsets, detected) >= 0.9
    # the stored (unhumanised) score misses most of them (measured 1 of 16, replay 15 of 16):
    # this is what the replay fixes
    assert _hit_share(stored, detected) <= 0.5
    assert np.all(np.diff(sorted(onsets)) > 0.3)        # one onset per note, none merged


def test_played_midi_follows_a_codec_clip_to_its_rendering(played_corpus):
    dataset, *_ = played_corpus
    row = dataset.rows[0]
    codec = {**row, "clip_id": "codec-played", "generator": B.CODEC_GENERATOR,
             "origin": f"{B.CODEC_GENERATOR}:{row['clip_id']}"}
    a, b = B.played_midi(dataset.root, row), B.played_midi(dataset.root, codec)
    assert [n.start for n in a.instruments[0].notes] == [n.start for n in b.instruments[0].notes]


def test_played_midi_without_a_recorded_build(played_corpus, tmp_path):
    import shutil

    dataset, *_ = played_corpus
    row = dataset.rows[0]
    assert B.played_midi(dataset.root, {**row, "score_path": ""}) is None
    bare = tmp_path / "bare"
    shutil.copytree(dataset.root, bare)
    (bare / B.REFERENCE_JSON).unlink()
    assert B.played_midi(bare, row) is None       # not a reference corpus: nothing to replay
    with pytest.raises(DatasetError, match="drew SoundFont"):
        B.played_midi(dataset.root, {**row, "renderer": "some-other-font"})
    with pytest.raises(DatasetError, match="lacks"):
        B.played_midi(dataset.root, row, reference={"seed": 0})
