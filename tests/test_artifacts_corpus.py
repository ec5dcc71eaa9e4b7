"""The artifact line's corpus (:mod:`musicbrain_cli.artifacts.corpus`): how its human renders are split."""

from __future__ import annotations

import numpy as np

from musicbrain_cli.artifacts import corpus


def test_two_recordings_of_one_piece_are_rendered_into_one_split_only(tmp_path, monkeypatch):
    # MusicNet holds byte-identical score MIDIs of a piece recorded twice, under two recording
    # ids. Split by each file's own name, these two fell in test and train: the same score was
    # rendered on both sides of the split. (By name, 1000_sonata_1 hashes to test, 1001_sonata_1
    # to train.)
    import pretty_midi

    from musicbrain_cli.data import render

    midi = pretty_midi.PrettyMIDI()
    piano = pretty_midi.Instrument(0)
    piano.notes = [pretty_midi.Note(80, 60 + i, i * 0.1, i * 0.1 + 0.1) for i in range(8)]
    midi.instruments.append(piano)
    (tmp_path / "Beethoven").mkdir()
    for name in ("1000_sonata_1.mid", "1001_sonata_1.mid", "1004_other.mid"):
        midi.write(str(tmp_path / "Beethoven" / name))
    monkeypatch.setattr(render, "available_soundfonts", lambda: ["font"])
    monkeypatch.setattr(render, "render_midi", lambda m, font, sample_rate, seed: np.ones(sample_rate))
    rendered = {split: [cid for cid, *_ in corpus.render_clips(tmp_path, split, count=5, clip_s=0.5)]
                for split in ("train", "validation", "test")}
    splits = [split for split, ids in rendered.items() for cid in ids if cid.endswith("_sonata_1")]
    assert len(set(splits)) == 1
    assert sorted(cid for ids in rendered.values() for cid in ids)[-1] == "musicnet/1004_other"
