"""The model card records, per style label, how many human and AI training windows carried
it; a scan report warns when a track is attributed to a style the model learned from one side
only (issue 21: RhythGen's Lieder and ragtime against a human side with few of either)."""

import numpy as np

from musicbrain_cli.scan.batch import _limitations, _style_balance_notes
from musicbrain_cli.training.finalize import source_balance_of_windows

LABELS = ["source/human", "source/ai", "generator/rg", "instrumentation/Art Song",
          "instrumentation/Chamber"]


def test_training_windows_are_counted_per_style_and_source():
    # 5 windows: human Chamber x2, AI Chamber, AI Art Song x2; the generator is never
    # counted (only AI windows carry it)
    positive = np.array([[1, 0, 0, 0, 1], [1, 0, 0, 0, 1], [0, 1, 1, 0, 1],
                         [0, 1, 1, 1, 0], [0, 1, 1, 1, 0]], bool)
    known = np.ones_like(positive)
    out = source_balance_of_windows(positive, known, LABELS)
    assert set(out) == {"instrumentation/Art Song", "instrumentation/Chamber"}
    assert out["instrumentation/Art Song"] == {"human": 0, "ai": 2, "flag": "mostly ai"}
    assert out["instrumentation/Chamber"] == {"human": 2, "ai": 1, "flag": None}
    # a window whose source is unknown is not counted
    known[0, 1] = False
    assert source_balance_of_windows(positive, known, LABELS)["instrumentation/Chamber"]["human"] == 1
    # one source only in training: nothing to compare, nothing flagged
    ai_only = positive[2:], known[2:]
    assert all(v["flag"] is None for v in source_balance_of_windows(*ai_only, LABELS).values())


def test_report_warns_only_for_attributed_one_sided_styles():
    card = {"training_data": {"train_source_balance": {
        "instrumentation/Art Song": {"human": 2, "ai": 186, "flag": "mostly ai"},
        "instrumentation/Chamber": {"human": 194, "ai": 296, "flag": None}}}}
    song = [{"group": "instrumentation", "label": "Art Song", "p": 0.91}]
    notes = _style_balance_notes(card, song)
    assert len(notes) == 1 and "Art Song" in notes[0] and "2 human and 186 AI" in notes[0]
    assert "'ai' verdict" in notes[0]
    assert _style_balance_notes(card, [{**song[0], "p": 0.3}]) == []      # not attributed
    assert _style_balance_notes(card, [{"group": "instrumentation", "label": "Chamber",
                                        "p": 0.9}]) == []
    assert _style_balance_notes({}, song) == []          # older cards: nothing to say
    everything = _limitations({"available": True, "in_domain": True}, [False], None, card,
                              labels=song)
    assert notes[0] in everything
