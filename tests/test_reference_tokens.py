"""Token language of the reference generators: events <-> tokens, events -> MIDI."""

import numpy as np
import pytest

from musicbrain_cli.errors import ConfigError, RenderError
from musicbrain_cli.data.reference.scores import TICKS_PER_QUARTER
from musicbrain_cli.data.reference.tokens import (DURATIONS, EOS, PREFIX_LEN, Vocabulary,
                                                      condition_tokens, decode_events,
                                                      encode_events, events_to_midi,
                                                      snap_duration, window)

VOCAB = Vocabulary.build({"period": ["Baroque"], "composer": ["Bach, Johann Sebastian"],
                          "instrumentation": ["Choral", "Melody"]})


def _random_events(seed: int, n: int = 60):
    rng = np.random.default_rng(seed)
    onsets = np.cumsum(rng.choice([0, 3, 6, 12, 60, 100], size=n))
    ev = {(int(o), int(rng.integers(0, 4)), int(rng.integers(40, 90)),
           int(rng.choice(DURATIONS))) for o in onsets}
    return sorted(ev)


def test_round_trip_is_exact_on_grid_events():
    events = _random_events(1)
    assert decode_events(encode_events(events, VOCAB), VOCAB) == events


def test_long_gaps_become_several_shifts():
    ids = encode_events([(0, 0, 60, 12), (130, 0, 62, 12)], VOCAB)
    shifts = [VOCAB.tokens[i] for i in ids if VOCAB.tokens[i].startswith("shift=")]
    assert shifts == ["shift=48", "shift=48", "shift=34"]


def test_snap_duration_picks_nearest():
    assert snap_duration(5) == 4 and snap_duration(7) == 6 and snap_duration(500) == 96
    assert snap_duration(0) == 1


def test_decoder_tolerates_sampler_garbage_and_stops_at_eos():
    t = VOCAB.id
    ids = [t("dur=12"), t("pitch=60"), t("dur=12"), t("shift=12"), t("part=2"),
           t("pitch=64"), t("composer=-"), t("dur=6"), t("pitch=67"), t(EOS),
           t("pitch=70"), t("dur=3")]
    assert decode_events(ids, VOCAB) == [(0, 0, 60, 12), (12, 2, 64, 6)]


def test_condition_prefix_and_unknown_labels():
    ids = condition_tokens(VOCAB, period="Baroque", composer="Nobody", instrumentation="")
    assert len(ids) == PREFIX_LEN
    assert [VOCAB.tokens[i] for i in ids] == ["<bos>", "period=Baroque", "composer=?",
                                              "instrumentation=?"]
    assert VOCAB.conditions("instrumentation") == ["Choral", "Melody"]
    with pytest.raises(ConfigError, match="pitch=200"):
        VOCAB.id("pitch=200")


def test_vocabulary_json_round_trip(tmp_path):
    VOCAB.save(tmp_path / "v.json")
    assert Vocabulary.load(tmp_path / "v.json") == VOCAB


def test_window_cuts_and_shifts():
    ev = [(0, 0, 60, 24), (10, 1, 62, 30), (40, 0, 64, 12)]
    assert window(ev, 10, 20) == [(0, 1, 62, 20)]


def test_events_to_midi_timing_and_programs():
    ev = [(0, 0, 60, 12), (12, 1, 64, 24)]
    midi = events_to_midi(ev, qpm=120.0, instrumentation="Choral")
    notes = sorted((n.start, n.end, n.pitch) for i in midi.instruments for n in i.notes)
    # Flat arrays, not tuples: pytest 9's approx refuses nested structures.
    assert [n[2] for n in notes] == [60, 64]
    np.testing.assert_allclose([n[:2] for n in notes], [(0.0, 0.5), (0.5, 1.5)], atol=1e-9)
    assert {i.program for i in midi.instruments} == {52}
    melody = events_to_midi(ev[:1], qpm=60.0, instrumentation="Melody", rotate=1)
    assert melody.instruments[0].program == 73
    assert TICKS_PER_QUARTER == 12
    with pytest.raises(RenderError, match="Bagpipes"):
        events_to_midi(ev, qpm=100.0, instrumentation="Bagpipes")
    with pytest.raises(RenderError, match="qpm"):
        events_to_midi(ev, qpm=0.0, instrumentation="Choral")
