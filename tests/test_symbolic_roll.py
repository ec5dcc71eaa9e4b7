"""The symbolic line's second reader (issue 21): the piano roll, the roll network, its stack
with the trees, the fit with a fold-wise unseen-group rule, and the weights file on disk."""

from __future__ import annotations

import csv
import json
import math
import warnings

import numpy as np
import pytest

from musicbrain_cli.errors import ModelLoadError
from musicbrain_cli.symbolic import corpus, fit, roll
from musicbrain_cli.symbolic.detector import SymbolicDetector
from musicbrain_cli.symbolic.features import FEATURE_NAMES

N_FEATURES = len(FEATURE_NAMES)
GROUPS = ("music21:bach", "music21:mozart", "composer:Joplin", "music21:folk")


@pytest.fixture(autouse=True)
def quiet():
    from threadpoolctl import threadpool_limits

    with warnings.catch_warnings(), threadpool_limits(limits=1):
        warnings.simplefilter("ignore")
        yield


def notes_of(label: int, rng) -> np.ndarray:
    """Ten seconds of notes, 0.4 s apart, in a random register: human items play one note
    at a time, AI items a three-note chord at every onset (what only a roll shows here)."""
    starts = np.arange(0, 9.6, 0.4)
    base = int(rng.integers(45, 70))
    out = []
    for s in starts:
        p = base + int(rng.integers(-5, 6))
        for q in ([p, p + 4, p + 7] if label else [p]):
            out.append((s, s + 0.3, q))
    return np.array(out, np.float64)


def items_with_rolls(seed=0, n_train=48, n_val=32):
    """Items as :func:`fit.dataset` makes them with ``rolls=True``, whose statistics carry
    nothing (the same normal distribution for both classes) while their rolls do."""
    rng = np.random.default_rng(seed)
    items = []
    for split, n in (("train", n_train), ("val", n_val)):
        for k in range(n):
            for label in (0, 1):
                g = GROUPS[k % len(GROUPS)] if label == 0 else "rhythgen/LAD-c"
                items.append({"clip_id": f"{label}-{split}-{k}", "split": split, "label": label,
                              "group": g, "config": g if label else "human",
                              "collection": g.split(":")[0], "instrumentation": "piano",
                              "features": rng.normal(0, 1, N_FEATURES),
                              "roll": roll.piano_roll(notes_of(label, rng), 10.0)})
    return items


def test_piano_roll_marks_onsets_and_sounding_frames_and_drops_notes_off_the_keyboard():
    notes = np.array([(0.0, 0.5, 60), (0.25, 0.3, 64),        # a note shorter than a frame keeps one
                      (9.95, 12.0, 72),                        # runs past the window's end
                      (1.0, 2.0, 20), (1.0, 2.0, 109),         # below A0, above C8
                      (10.0, 11.0, 60)])                       # starts after the window
    r = roll.piano_roll(notes, 10.0)
    assert r.shape == (2, roll.KEYS, 100) and r.dtype == np.uint8
    c4, e4, c5 = 60 - roll.LOWEST, 64 - roll.LOWEST, 72 - roll.LOWEST
    assert r[0, c4].nonzero()[0].tolist() == [0] and r[1, c4].nonzero()[0].tolist() == [0, 1, 2, 3, 4]
    assert r[0, e4].nonzero()[0].tolist() == [2] and r[1, e4].nonzero()[0].tolist() == [2]
    assert r[0, c5].nonzero()[0].tolist() == [99] and r[1, c5].nonzero()[0].tolist() == [99]
    assert r[0].sum() == 3                                     # the off-keyboard and late notes are gone
    assert roll.piano_roll(np.zeros((0, 3)), 10.0).sum() == 0
    assert roll.piano_roll(notes, 5.0).shape == (2, roll.KEYS, 50)


def test_roll_network_learns_what_only_the_rolls_carry_and_its_weights_round_trip(tmp_path):
    """Trained a few epochs on chords against single notes, the network ranks held-out AI rolls
    above human ones in any register; saved and loaded, it gives the same logits; weights of
    another shape are refused."""
    items = items_with_rolls(seed=1)
    train = [i for i in items if i["split"] == "train"]
    held = [i for i in items if i["split"] == "val"]
    net = roll.train([i["roll"] for i in train], [i["label"] for i in train], seed=0, epochs=4)
    z = roll.logits(net, [i["roll"] for i in held])
    y = np.array([i["label"] for i in held])
    assert z[y == 1].min() > z[y == 0].max()
    roll.save(roll.state(net), tmp_path / "w.safetensors")
    np.testing.assert_allclose(roll.logits(roll.load(tmp_path / "w.safetensors"),
                                           [i["roll"] for i in held]), z, rtol=1e-5, atol=1e-5)
    import torch
    from safetensors.torch import save_file

    save_file({"head.weight": torch.zeros(1, 3)}, str(tmp_path / "bad.safetensors"))
    with pytest.raises(ValueError, match=roll.ARCH):
        roll.load(tmp_path / "bad.safetensors")
    with pytest.raises(ValueError, match="both classes"):
        roll.train([i["roll"] for i in train[:2:2]], [0], seed=0, epochs=1)


@pytest.fixture(scope="module")
def stacked():
    items = items_with_rolls()
    progress = []
    model, net = fit.fit_line(items, seed=0, roll_epochs=8, unseen_folds=2,
                              on_progress=lambda d, n: progress.append((d, n)))
    return model, net, items, progress


def test_fit_stacks_the_roll_network_where_the_statistics_carry_nothing(stacked):
    """The statistics are noise and the rolls tell the classes apart: the stack leans on the
    roll network, and the line catches the AI validation clips at an operating point that
    accuses no validation human; the trees alone could not (the fit refuses them, or they
    catch far fewer)."""
    model, net, items, progress = stacked
    det = SymbolicDetector(model, roll_net=net)
    assert det.uses_roll and model["roll"]["arch"] == roll.ARCH and model["roll"]["file"] == fit.ROLL_FILE
    assert model["stack"]["roll"] > 0 and abs(model["stack"]["roll"]) > abs(model["stack"]["trees"])
    val = [i for i in items if i["split"] == "val"]
    p = det.p_ai(det.raw_scores([i["features"] for i in val], rolls=[i["roll"] for i in val]))
    y = np.array([i["label"] for i in val])
    assert np.all(p[y == 0] < det.threshold)
    caught = float(np.mean(p[y == 1] >= det.threshold))
    assert caught >= 0.9 and model["operating_point"]["validation_detection"] == pytest.approx(caught)
    try:
        trees_only = SymbolicDetector(fit.fit_model(items, seed=0))
    except Exception as exc:                                        # noqa: BLE001
        assert "catches no AI validation clip" in str(exc)
    else:
        px = [trees_only.window_p_ai(i["features"]) for i in val if i["label"] == 1]
        assert np.mean(np.array(px) >= trees_only.threshold) < caught - 0.3
    # the window score is the stack of the two readers, computed by hand
    i = val[0]
    by_hand = (model["stack"]["trees"] * det.trees(i["features"])
               + model["stack"]["roll"] * roll.logits(net, [i["roll"]])[0] + model["stack"]["bias"])
    assert det.window_p_ai(i["features"], roll=i["roll"]) == pytest.approx(1 / (1 + math.exp(-by_hand)))


def test_fold_wise_unseen_group_rule_holds_out_whole_groups_and_sets_both_thresholds(stacked):
    """With K folds the human groups are dealt, largest first, into K units held out together;
    every development human is scored once by a model without its fold, the operating point
    lets at most 0.5 % of those scores reach it and the doubt threshold at most 10 %; progress
    is reported once per fold."""
    model, _, items, progress = stacked
    units = fit.unseen_units(items, 2)
    assert sorted(g for u in units for g in u) == sorted(GROUPS) and len(units) == 2
    assert all(len(u) == 2 for u in units)
    assert [[g] for g in sorted(GROUPS)] == fit.unseen_units(items, 0)
    assert progress == [(1, 2), (2, 2)]
    op = model["operating_point"]
    assert op["unseen_group_folds"] == 2
    assert op["unseen_group_humans"] == sum(i["label"] == 0 for i in items)
    unseen = fit.out_of_group_human_scores(items, seed=0, folds=2, roll_epochs=8)
    ps = np.array([p for p, _ in unseen])
    assert np.sum(ps >= model["threshold"]) <= math.floor(0.005 * ps.size)
    assert np.sum(ps >= model["doubt_threshold"]) <= math.floor(fit.DOUBT_SHARE * ps.size)


def write_corpus(root, items_per_split=(("train", 40), ("val", 24), ("test", 12)), seed=0):
    """A corpus manifest and its notes (no audio: the fit reads cached notes only)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    rows, notes = [], {}
    for split, n in items_per_split:
        for k in range(n):
            for label in (0, 1):
                cid = f"{'a' if label else 'h'}{split}{k}"
                rows.append({"clip_id": cid, "path": f"audio/{cid}.wav", "split": split,
                             "source": "ai" if label else "human",
                             "generator": "rhythgen" if label else "",
                             "composer": "" if label else ("Bach", "Mozart", "Haydn")[k % 3],
                             "origin": "rhythgen:LAD/c" if label else "music21:x", "instrumentation": "Keyboard"})
                notes[cid] = notes_of(label, rng)
    with open(root / "manifest.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return rows, notes


def test_fit_and_ship_writes_the_weights_beside_the_model_and_loading_checks_them(tmp_path):
    """fit_and_ship writes roll.safetensors with its SHA-256 in model.json; the directory
    loads with the network and scores exactly as the fit did (the card's test figures are
    reproduced from the files); weights that were swapped, removed or named outside the
    directory are refused."""
    rows, notes = write_corpus(tmp_path / "corpus")
    out = tmp_path / "model"
    card = fit.fit_and_ship(tmp_path / "corpus", notes, out, roll_epochs=3, unseen_folds=3, seed=0)
    model = json.loads((out / "model.json").read_text())
    assert (out / fit.ROLL_FILE).is_file() and card["readers"] == ["trees", "roll"]
    from musicbrain_cli.files import sha256_file

    assert model["roll"]["sha256"] == sha256_file(out / fit.ROLL_FILE)
    det = SymbolicDetector.from_pretrained(out)
    assert det.uses_roll
    items, _ = fit.dataset([r for r in corpus.symbolic_rows(tmp_path / "corpus" / "manifest.csv")
                            if r["split"] == "test"], notes, rolls=True)
    assert fit.evaluate(det, items) == card["test"]

    other = tmp_path / "other"
    fit.fit_and_ship(tmp_path / "corpus", notes, other, roll_epochs=1, unseen_folds=3, seed=1)
    (out / fit.ROLL_FILE).write_bytes((other / fit.ROLL_FILE).read_bytes())
    with pytest.raises(ModelLoadError, match="do not belong together"):
        SymbolicDetector.from_pretrained(out)
    (out / fit.ROLL_FILE).unlink()
    with pytest.raises(ModelLoadError, match="no roll network weights"):
        SymbolicDetector.from_pretrained(out)
    model["roll"]["file"] = "../other/roll.safetensors"
    (out / "model.json").write_text(json.dumps(model))
    with pytest.raises(ModelLoadError, match="unsafe"):
        SymbolicDetector.from_pretrained(out)
    with pytest.raises(ModelLoadError, match="needs its roll network"):
        SymbolicDetector(model)
    with pytest.raises(ModelLoadError, match="not 'rollnet-v1'"):
        SymbolicDetector({**model, "roll": {**model["roll"], "arch": "other"}})


def test_assess_with_a_roll_model_scores_each_window_from_its_notes_and_roll(stacked, monkeypatch):
    """On a track, each window's notes give its features and its roll; the network runs once
    for all windows; the window P(AI) and the track's P(AI) (the mean raw score, calibrated)
    are the stack's, and the explanation names both readers."""
    import copy

    from musicbrain_cli.alignment import pitch

    model, net, items, _ = stacked
    model = copy.deepcopy(model)
    model["domain"]["limit"] = 1e12
    det = SymbolicDetector(model, roll_net=net)
    rng = np.random.default_rng(5)
    heard = [np.round(notes_of(1, rng), 3), np.round(notes_of(0, rng), 3)]    # as the finding keeps them
    monkeypatch.setattr(pitch, "basic_pitch_available", lambda: (True, ""))
    calls = []
    real = roll.logits
    monkeypatch.setattr(roll, "logits", lambda n, rs, **k: calls.append(len(rs)) or real(n, rs, **k))
    windows = [(0.0, np.zeros(10 * 22050, np.float32), heard[0]),
               (10.0, np.zeros(10 * 22050, np.float32), heard[1])]
    got = det.assess(windows, 22050, content_in_domain=True)
    assert calls == [2]
    from musicbrain_cli.symbolic.features import note_features

    raws = [model["stack"]["trees"] * det.trees(note_features(n, 10.0))
            + model["stack"]["roll"] * real(net, [roll.piano_roll(n, 10.0)])[0] for n in heard]
    for w, r in zip(got.windows, raws):
        assert w["p_ai"] == pytest.approx(1 / (1 + math.exp(-(r + model["stack"]["bias"]))), abs=2e-6)
    assert got.p_ai == pytest.approx(1 / (1 + math.exp(-(np.mean(raws) + model["stack"]["bias"]))))
    assert "piano roll" in got.explanation
    # each window records each reader's share of its log-odds; the explanation gives the means
    for w, n in zip(got.windows, heard):
        t = model["stack"]["trees"] * det.trees(note_features(n, 10.0))
        assert w["statistics_score"] == pytest.approx(t, abs=1e-4)
        assert w["statistics_score"] + w["roll_score"] == pytest.approx(
            raws[got.windows.index(w)], abs=2e-4)
    mean_t = np.mean([w["statistics_score"] for w in got.windows])
    mean_r = np.mean([w["roll_score"] for w in got.windows])
    assert (f"the statistics give {mean_t:+.2f}, the piano-roll network {mean_r:+.2f} "
            f"and the calibration {model['stack']['bias']:+.2f}") in got.explanation


def test_assess_builds_each_windows_roll_at_its_own_length(stacked, monkeypatch):
    """A short window beside a full one: each roll is as long as its own window (10 frames a
    second), so the full window's notes are not cut to the short one's length."""
    import copy

    from musicbrain_cli.alignment import pitch

    model, net, _, _ = stacked
    model = copy.deepcopy(model)
    model["domain"]["limit"] = 1e12
    det = SymbolicDetector(model, roll_net=net)
    monkeypatch.setattr(pitch, "basic_pitch_available", lambda: (True, ""))
    seen = []
    real = roll.logits
    monkeypatch.setattr(roll, "logits", lambda n, rs, **k: seen.extend(r.shape for r in rs) or real(n, rs, **k))
    rng = np.random.default_rng(2)
    full, short = notes_of(0, rng), notes_of(1, rng)
    short = short[short[:, 0] < 4.5]
    det.assess([(0.0, np.zeros(10 * 22050, np.float32), full),
                (10.0, np.zeros(5 * 22050, np.float32), short)], 22050, content_in_domain=True)
    assert seen == [(2, roll.KEYS, 100), (2, roll.KEYS, 100)]


def test_a_window_records_the_notes_it_scored_so_its_p_ai_can_be_recomputed(stacked, monkeypatch):
    """The finding keeps each window's notes (ms, MIDI pitch) and length; features and roll
    recomputed from those alone, with the model, give the recorded P(AI) exactly."""
    import copy

    from musicbrain_cli.alignment import pitch
    from musicbrain_cli.symbolic.features import note_features

    model, net, _, _ = stacked
    model = copy.deepcopy(model)
    model["domain"]["limit"] = 1e12
    det = SymbolicDetector(model, roll_net=net)
    monkeypatch.setattr(pitch, "basic_pitch_available", lambda: (True, ""))
    rng = np.random.default_rng(7)
    heard = notes_of(1, rng) + np.array([0.00037, 0.00041, 0.0])      # sub-millisecond times
    got = det.assess([(3.0, np.zeros(10 * 22050, np.float32), heard)], 22050, content_in_domain=True)
    w = json.loads(json.dumps(got.to_dict()))["windows"][0]
    assert w["duration_s"] == 10.0 and len(w["heard"]) == w["notes"] == len(heard)
    again = np.array(w["heard"])
    np.testing.assert_allclose(again, np.round(heard, 3))
    p = det.window_p_ai(note_features(again, w["duration_s"]), roll=roll.piano_roll(again, w["duration_s"]))
    assert round(p, 6) == w["p_ai"]


def test_a_transcription_failure_keeps_the_scores_of_the_windows_before_it(stacked, monkeypatch):
    """basic-pitch fails on the second window: the finding is not applicable and says why,
    and the first window, already heard, keeps its P(AI) and its readers' shares (so the
    notes figure labels it with its score, not as a window with too few notes)."""
    import copy

    from musicbrain_cli.alignment import pitch

    model, net, _, _ = stacked
    model = copy.deepcopy(model)
    model["domain"]["limit"] = 1e12
    det = SymbolicDetector(model, roll_net=net)
    monkeypatch.setattr(pitch, "basic_pitch_available", lambda: (True, ""))

    def fail(*a, **k):
        raise RuntimeError("onnxruntime failed")

    monkeypatch.setattr(pitch, "basic_pitch_notes", fail)
    rng = np.random.default_rng(4)
    got = det.assess([(0.0, np.zeros(10 * 22050, np.float32), notes_of(1, rng)),
                      (10.0, np.zeros(10 * 22050, np.float32))], 22050, content_in_domain=True)
    assert not got.applicable and "could not transcribe the window at 10 s" in got.explanation
    (first,) = got.windows
    assert first["p_ai"] is not None and "roll_score" in first and first["in_domain"]


def test_the_fold_rule_refuses_folds_it_cannot_use_and_a_rule_that_left_humans_unscored():
    """Folds must be 0 or at least 2; and when holding a unit out leaves validation without
    human clips, that unit's humans go unscored, so the fit refuses rather than set its
    guard on part of the human side."""
    from test_symbolic import synthetic_items

    from musicbrain_cli.errors import TrainingError

    items = items_with_rolls()
    for bad in (1, -1):
        with pytest.raises(TrainingError, match="at least 2"):
            fit.unseen_units(items, bad)
    lopsided = [i for i in synthetic_items(n_train=60, n_val=40)
                if i["label"] == 1 or (i["group"] == "music21:bach") == (i["split"] == "val")]
    with pytest.raises(TrainingError, match="unseen-group rule scored"):
        fit.fit_model(lopsided, seed=0)


def test_loading_refuses_damaged_weights_a_malformed_roll_entry_and_non_finite_stack(stacked, tmp_path):
    model, net, _, _ = stacked
    (tmp_path / "junk.safetensors").write_bytes(b"\xff" * 64)
    with pytest.raises(ValueError, match=roll.ARCH):
        roll.load(tmp_path / "junk.safetensors")
    with pytest.raises(ModelLoadError):
        SymbolicDetector({**model, "roll": "rollnet-v1"}, roll_net=net)
    with pytest.raises(ModelLoadError, match="not finite"):
        SymbolicDetector({**model, "stack": {**model["stack"], "roll": float("nan")}}, roll_net=net)
    d = tmp_path / "m"
    d.mkdir()
    (d / "model.json").write_text(json.dumps({**model, "roll": {**model["roll"], "file": "C:roll.safetensors"}}))
    with pytest.raises(ModelLoadError, match="unsafe"):
        SymbolicDetector.from_pretrained(d)


def test_canonical_notes_keep_milliseconds_and_whole_pitches():
    from musicbrain_cli.symbolic.features import canonical_notes

    got = canonical_notes(np.array([[1.20000000002, 1.4996, 60.4], [0.00049, 0.3, 71.6]]))
    np.testing.assert_array_equal(got, [[1.2, 1.5, 60.0], [0.0, 0.3, 72.0]])
