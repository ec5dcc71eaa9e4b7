"""The symbolic evidence line (issue 21): note statistics, its training corpus, its fit, the
fitted detector on real audio, its place among the evidence lines, the scan's choice of
windows and the report's sentences."""

from __future__ import annotations

import copy
import csv
import json
import math
import warnings
from dataclasses import dataclass

import numpy as np
import pytest

from musicbrain_cli.errors import InputError, ModelLoadError, ReportError, TrainingError
from musicbrain_cli.symbolic import corpus, fit
from musicbrain_cli.symbolic.detector import MAX_WINDOWS, SymbolicDetector
from musicbrain_cli.symbolic.features import FEATURE_NAMES, MIN_NOTES, note_features, notes_array

SR = 22050
N_FEATURES = len(FEATURE_NAMES)


def feature(x: np.ndarray, name: str) -> float:
    return float(x[FEATURE_NAMES.index(name)])


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """scikit-learn's gradient boosting on one OpenMP thread: on a busy 2-core machine its
    threads otherwise fight over the cores (a 4 s fit then takes over a minute)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


@pytest.fixture(autouse=True)
def quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


# --- audio made here ------------------------------------------------------------------------


def tone_sequence(pitches, note_s=0.5, gap_s=0.1, lead_s=0.0) -> np.ndarray:
    """Separate notes at the given MIDI pitches (a sine and a weak octave, soft attack and
    release), ``gap_s`` of silence after each, mono float32 at :data:`SR`."""
    parts = [np.zeros(int(SR * lead_s))]
    t = np.arange(int(SR * note_s)) / SR
    env = np.minimum(1.0, np.minimum(t / 0.01, (note_s - t) / 0.02))
    for p in pitches:
        f = 440.0 * 2 ** ((p - 69) / 12)
        parts += [(np.sin(2 * np.pi * f * t) + 0.3 * np.sin(4 * np.pi * f * t)) * env,
                  np.zeros(int(SR * gap_s))]
    y = np.concatenate(parts)
    return (0.4 * y / np.abs(y).max()).astype(np.float32)


#: 16 notes of 0.6 s each: a scale up and down, twice (9.6 s).
MELODY = [60, 62, 64, 65, 67, 65, 64, 62] * 2


def window(y: np.ndarray, seconds: float = 10.0) -> np.ndarray:
    """``y`` cut or zero-padded to one ``seconds``-long model window."""
    n = int(SR * seconds)
    return np.pad(y, (0, max(0, n - y.size)))[:n].astype(np.float32)


# --- 1. features ----------------------------------------------------------------------------


@dataclass
class N:
    start: float
    end: float
    pitch: float


#: Ten single notes, one a second, each 0.5 s long: pitches chosen so every statistic is
#: easy to count by hand.
TEN_PITCHES = [60, 62, 64, 65, 67, 69, 71, 72, 60, 67]
TEN = [N(float(i), i + 0.5, p) for i, p in enumerate(TEN_PITCHES)]


def test_note_features_match_statistics_counted_by_hand():
    """10 notes in 10 s: 1 note/s; range 72-60 = 12; mean 65.7; melodic steps 2,2,1,2,2,2,1,12,7
    (of 9: five of 2, two of 1, one of 7, one of 12 or more); pitch classes C x3, G x2, five
    others once; every onset alone (chord size 1); inter-onset intervals all 1 s; all
    durations equal (one distinct duration of ten)."""
    x = note_features(TEN, 10.0)
    assert x is not None and len(x) == N_FEATURES and x.dtype == np.float64
    assert feature(x, "notes_per_s") == pytest.approx(1.0)
    assert feature(x, "pitch_range") == 12
    assert feature(x, "pitch_mean") == pytest.approx(65.7)
    assert feature(x, "pitch_std") == pytest.approx(np.std(TEN_PITCHES))
    want_iv = {1: 2 / 9, 2: 5 / 9, 7: 1 / 9}
    for i in range(12):
        assert feature(x, f"interval_{i}") == pytest.approx(want_iv.get(i, 0.0)), i
    assert feature(x, "interval_12_plus") == pytest.approx(1 / 9)
    assert [feature(x, f"pitch_class_top{i}") for i in range(1, 7)] == pytest.approx(
        [0.3, 0.2, 0.1, 0.1, 0.1, 0.1])
    shares = np.array([0.3, 0.2, 0.1, 0.1, 0.1, 0.1, 0.1])
    assert feature(x, "pitch_class_entropy") == pytest.approx(float(-(shares * np.log(shares)).sum()))
    assert feature(x, "chord_size_max") == 1 and feature(x, "chord_size_mean") == 1
    assert feature(x, "ioi_median") == pytest.approx(1.0)
    assert feature(x, "log_ioi_std") == pytest.approx(0.0, abs=1e-9)
    assert feature(x, "duration_rel_mean") == pytest.approx(1.0)
    assert feature(x, "duration_distinct_share") == pytest.approx(0.1)


def test_notes_per_second_scales_with_the_window_length():
    """The same notes in a window twice as long are half as dense, and half as many sound at
    a time on average; nothing else changes."""
    a, b = note_features(TEN, 10.0), note_features(TEN, 20.0)
    assert feature(b, "notes_per_s") == pytest.approx(0.5)
    assert feature(b, "sounding_notes_mean") == pytest.approx(feature(a, "sounding_notes_mean") / 2)
    rest = [i for i, n in enumerate(FEATURE_NAMES) if n not in ("notes_per_s", "sounding_notes_mean")]
    np.testing.assert_allclose(a[rest], b[rest])


def test_notes_at_one_onset_make_a_chord_and_order_does_not_matter():
    """A triad at 5 s plus a fourth note 20 ms later (within the chord tolerance of 30 ms) is
    one chord of four; the input's order is irrelevant (notes are sorted first)."""
    notes = TEN[:5] + [N(5.0, 5.5, 60), N(5.0, 5.5, 64), N(5.0, 5.5, 67), N(5.02, 5.5, 72)] + TEN[6:]
    x = note_features(notes, 10.0)
    assert feature(x, "chord_size_max") == 4
    rng = np.random.default_rng(1)
    shuffled = [notes[i] for i in rng.permutation(len(notes))]
    np.testing.assert_allclose(note_features(shuffled, 10.0), x)


def test_transposition_moves_only_the_mean_pitch_and_time_shift_moves_nothing():
    """Statistics of how notes are written are relative: transposing by 5 semitones adds 5 to
    the mean pitch and leaves every other feature alone (the pitch-class profile is sorted,
    so it does not name the key); starting 3 s later changes nothing."""
    arr = notes_array(TEN)
    base = note_features(arr, 10.0)
    up = note_features(arr + [0.0, 0.0, 5.0], 10.0)
    assert feature(up, "pitch_mean") == pytest.approx(feature(base, "pitch_mean") + 5)
    rest = [i for i, n in enumerate(FEATURE_NAMES) if n != "pitch_mean"]
    np.testing.assert_allclose(up[rest], base[rest])
    np.testing.assert_allclose(note_features(arr + [3.0, 3.0, 0.0], 10.0), base, atol=1e-9)


def test_too_few_notes_or_no_duration_give_no_features():
    """Below MIN_NOTES notes a window says nothing (None); exactly MIN_NOTES is enough; a
    window of no length gives nothing either."""
    assert MIN_NOTES <= len(TEN)
    assert note_features(TEN[:MIN_NOTES - 1], 10.0) is None
    assert note_features([], 10.0) is None
    assert note_features(TEN[:MIN_NOTES], 10.0) is not None
    assert note_features(TEN, 0.0) is None


def test_notes_array_reads_note_objects_and_rejects_malformed_input():
    """Objects with start/end/pitch become an [n, 3] array; non-finite values or a shape other
    than [n, 3] are a ValueError; no notes is an empty [0, 3] array."""
    arr = notes_array(TEN[:2])
    np.testing.assert_array_equal(arr, [[0.0, 0.5, 60.0], [1.0, 1.5, 62.0]])
    assert notes_array([]).shape == (0, 3)
    for bad in (np.array([[0.0, 1.0, np.nan]]), np.array([[0.0, np.inf, 60.0]]),
                np.zeros((4, 2)), np.array([0.0, 1.0, 60.0]), np.zeros((2, 3, 1))):
        with pytest.raises(ValueError):
            notes_array(bad)
    with pytest.raises(ValueError):
        notes_array([N(0.0, float("nan"), 60)])
    with pytest.raises(ValueError):
        note_features(np.zeros((10, 4)), 10.0)


# --- 2. corpus ------------------------------------------------------------------------------

MANIFEST_COLUMNS = ["clip_id", "path", "source", "generator", "period", "composer",
                    "instrumentation", "work_id", "renderer", "split", "duration_s",
                    "score_path", "origin"]


def write_manifest(root, rows):
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "manifest.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=MANIFEST_COLUMNS)
        w.writeheader()
        for r in rows:
            w.writerow({c: r.get(c, "") for c in MANIFEST_COLUMNS})
    return root / "manifest.csv"


def row(clip_id, source, generator="", split="train", **kw):
    return {"clip_id": clip_id, "path": f"audio/{clip_id}.wav", "source": source,
            "generator": generator, "split": split, **kw}


def test_symbolic_rows_keep_human_and_score_writing_ai_and_drop_the_neural_codec(tmp_path):
    """Human clips and clips of score-writing generators are training material; the neural
    codec's re-syntheses of human notes are not (their notes are a human's)."""
    m = write_manifest(tmp_path, [row("h1", "human", composer="Bach"),
                                  row("a1", "ai", "rhythgen"),
                                  row("a2", "ai", "notagen"),
                                  row("c1", "ai", "neural-codec"),
                                  row("h2", "human", split="val")])
    got = corpus.symbolic_rows(m)
    assert [r["clip_id"] for r in got] == ["h1", "a1", "a2", "h2"]
    assert got[0]["composer"] == "Bach"


@pytest.mark.parametrize("bad", ["../x", "a/b", "", "x y", "..\\x"])
def test_symbolic_rows_refuse_a_clip_id_that_is_not_a_safe_file_name(tmp_path, bad):
    """clip_id names the cache file <cache>/<clip_id>.npy, so a path-like id is refused."""
    m = write_manifest(tmp_path, [row("h1", "human"), row(bad, "human")])
    with pytest.raises(InputError, match="unsafe clip_id"):
        corpus.symbolic_rows(m)


def test_transcribe_corpus_refuses_a_cache_of_another_corpus(tmp_path):
    """cache.json ties the cached notes to one manifest's digest; another digest is refused
    before anything is read or written."""
    root = tmp_path / "corpus"
    m = write_manifest(root, [row("h1", "human")])
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "cache.json").write_text(json.dumps({"corpus": "0123456789abcdef"}))
    assert corpus.corpus_key(m) != "0123456789abcdef"
    with pytest.raises(InputError, match="another corpus"):
        corpus.transcribe_corpus(root, corpus.symbolic_rows(m), cache)
    assert sorted(p.name for p in cache.iterdir()) == ["cache.json"]


def test_corpus_key_changes_with_the_manifest(tmp_path):
    """Any change of the manifest (here one more row) gives another cache key."""
    a = corpus.corpus_key(write_manifest(tmp_path / "a", [row("h1", "human")]))
    b = corpus.corpus_key(write_manifest(tmp_path / "b", [row("h1", "human"), row("h2", "human")]))
    assert a != b and len(a) == 16


def test_transcribe_corpus_transcribes_real_clips_caches_them_and_reads_the_cache_back(
        tmp_path, monkeypatch):
    """Two clips (WAV and FLAC) are transcribed by basic-pitch: the pitches played in the first
    10 s are found, a pitch played only after 10 s is not (the line reads one window), and the
    notes land in <cache>/<clip_id>.npy. A clip that cannot be read is reported, not cached.
    A second call reads the cache and transcribes nothing that was cached."""
    import soundfile as sf

    root = tmp_path / "corpus"
    (root / "audio").mkdir(parents=True)
    late = np.concatenate([tone_sequence(MELODY), np.zeros(int(SR * 0.6), np.float32),
                           tone_sequence([58, 58])])           # B-flat 3 only from 10.2 s on
    sf.write(root / "audio" / "h1.wav", late, SR)
    sf.write(root / "audio" / "a1.flac", tone_sequence([70, 72, 74, 76, 77, 79, 81, 83, 84]), SR)
    rows = [row("h1", "human", composer="Bach"),
            {**row("a1", "ai", "rhythgen"), "path": "audio/a1.flac"},
            row("c1", "ai", "neural-codec"),
            row("gone", "human")]                               # no such file
    m = write_manifest(root, rows)
    keep = corpus.symbolic_rows(m)
    cache = tmp_path / "cache"
    progress = []
    notes, failed = corpus.transcribe_corpus(root, keep, cache, on_progress=lambda d, n: progress.append((d, n)))

    assert sorted(notes) == ["a1", "h1"] and list(failed) == ["gone"] and failed["gone"]
    assert progress[0] == (0, 3) and progress[-1] == (3, 3)
    h1 = notes["h1"]
    assert h1.dtype == np.float32 and h1.ndim == 2 and h1.shape[1] == 3
    assert set(MELODY) <= set(h1[:, 2].tolist())
    assert 58.0 not in set(h1[:, 2].tolist())
    assert h1[:, 0].max() < corpus.WINDOW_S
    assert {60.0, 62.0, 64.0, 65.0, 67.0} <= set(h1[:, 2].tolist())
    assert {70.0, 84.0} <= set(notes["a1"][:, 2].tolist())
    for clip in ("h1", "a1"):
        np.testing.assert_array_equal(np.load(cache / f"{clip}.npy"), notes[clip])
    assert not (cache / "gone.npy").exists() and not (cache / "c1.npy").exists()
    assert json.loads((cache / "cache.json").read_text())["corpus"] == corpus.corpus_key(m)

    calls = []

    def not_again(args):
        calls.append(args[0])
        raise AssertionError(f"{args[0]} transcribed again")

    monkeypatch.setattr(corpus, "_one", not_again)
    cached_rows = [r for r in keep if r["clip_id"] != "gone"]
    again, failed_again = corpus.transcribe_corpus(root, cached_rows, cache)
    assert calls == [] and failed_again == {}
    for clip in ("h1", "a1"):
        np.testing.assert_array_equal(again[clip], notes[clip])


# --- 3. fit ---------------------------------------------------------------------------------

HUMAN_GROUPS = ("music21:bach", "music21:mozart", "music21:joplin")
AI_CONFIGS = ("rhythgen/LAD-c", "notagen")
#: AI items differ from human ones in two features: there humans hold the values -1, 0 or 1
#: (every group alike) and AI items 3, 4 or 5 (note counts and shares are discrete, too).
SHIFTED = (FEATURE_NAMES.index("interval_12_plus"), FEATURE_NAMES.index("duration_distinct_share"))
HUMAN_VALUES, AI_VALUES = (-1.0, 0.0, 1.0), (3.0, 4.0, 5.0)


def synthetic_items(seed=0, n_train=150, n_val=80, leaning_group=None):
    """Items as :func:`fit.dataset` makes them: features N(0, 1), humans with a small offset
    per group, except the two SHIFTED features (HUMAN_VALUES or AI_VALUES). The humans of
    ``leaning_group`` instead hold 2.5 there: between the human and the AI values, beyond
    every other human."""
    rng = np.random.default_rng(seed)
    offsets = {g: rng.normal(0, 0.2, N_FEATURES) for g in HUMAN_GROUPS}
    items = []
    for split, n in (("train", n_train), ("val", n_val)):
        for k in range(n):
            g = HUMAN_GROUPS[k % len(HUMAN_GROUPS)]
            x = rng.normal(0, 1, N_FEATURES) + offsets[g]
            x[list(SHIFTED)] = 2.5 if g == leaning_group else rng.choice(HUMAN_VALUES, len(SHIFTED))
            items.append({"clip_id": f"h-{split}-{k}", "split": split, "label": 0, "group": g,
                          "config": "human", "collection": g.split(":")[0], "instrumentation": "piano",
                          "features": x})
            c = AI_CONFIGS[k % len(AI_CONFIGS)]
            x = rng.normal(0, 1, N_FEATURES)
            x[list(SHIFTED)] = rng.choice(AI_VALUES, len(SHIFTED))
            items.append({"clip_id": f"a-{split}-{k}", "split": split, "label": 1, "group": c,
                          "config": c, "collection": "rhythgen", "instrumentation": "piano",
                          "features": x})
    return items


@pytest.fixture(scope="module")
def fitted():
    items = synthetic_items()
    progress = []
    model = fit.fit_model(items, seed=0, on_progress=lambda d, n: progress.append((d, n)))
    return model, items, progress


def test_fit_sets_an_operating_point_that_spares_validation_humans(fitted):
    """The threshold lies in [0.5, 1]; at most floor(0.5 % of n) human validation items reach
    it (here n = 80, so none); of all development humans, each scored by a model fitted and
    calibrated without its group, at most 0.5 % reach it (the unseen-group rule); progress is
    reported once per human group."""
    model, items, progress = fitted
    det = SymbolicDetector(model)
    assert 0.5 <= det.threshold <= 1.0
    val_h = [i["features"] for i in items if i["split"] == "val" and i["label"] == 0]
    accused = sum(det.window_p_ai(x) >= det.threshold for x in val_h)
    assert accused <= math.floor(0.005 * len(val_h)) == 0
    op = model["operating_point"]
    assert op["validation_humans"] == len(val_h)
    assert op["unseen_group_highest"][0]["group"] in HUMAN_GROUPS
    assert det.threshold >= min(max(op["validation_rule"], op["unseen_group_rule"]), 0.999999)
    unseen = fit.out_of_group_human_scores(items, seed=0)
    assert len(unseen) == op["unseen_group_humans"] == sum(i["label"] == 0 for i in items)
    assert sum(p >= det.threshold for p, _ in unseen) <= math.floor(0.005 * len(unseen))
    assert progress == [(k, len(HUMAN_GROUPS)) for k in range(1, len(HUMAN_GROUPS) + 1)]


def test_fit_sets_a_doubt_threshold_that_at_most_a_tenth_of_unseen_group_humans_reach(fitted):
    """The doubt threshold lies at or below the operating point; of the development humans,
    each scored by a model that never saw its group, at most 10 % reach it, and one step below
    it more than that would (it is the lowest such threshold, not merely a safe one). The
    validation shares at or above it are recorded."""
    model, items, _ = fitted
    det = SymbolicDetector(model)
    assert 0.0 < det.doubt_threshold <= det.threshold
    unseen = np.array([p for p, _ in fit.out_of_group_human_scores(items, seed=0)])
    allowed = math.floor(fit.DOUBT_SHARE * unseen.size)
    assert np.sum(unseen >= det.doubt_threshold) <= allowed
    if det.doubt_threshold < det.threshold:
        assert np.sum(unseen >= np.nextafter(det.doubt_threshold, 0.0)) > allowed
    op = model["operating_point"]
    assert op["doubt_threshold"] == model["doubt_threshold"] and op["doubt_share"] == fit.DOUBT_SHARE
    val = [i for i in items if i["split"] == "val"]
    for label, key in ((0, "human"), (1, "ai")):
        xs = [i["features"] for i in val if i["label"] == label]
        assert op["validation_doubt"][key] == pytest.approx(
            np.mean([det.window_p_ai(x) >= det.doubt_threshold for x in xs]))


def test_fit_raises_the_threshold_above_a_human_group_only_a_model_without_it_would_accuse():
    """One human collection leans towards the AI side (values no other human holds): a model
    fitted without it calls its humans AI, so the operating point is set above (nearly all
    of) them, the guard against a style shortcut, above the validation rule's threshold; or,
    when no AI validation clip would then be caught, the fit refuses to write a model."""
    items = synthetic_items(seed=1, n_train=60, n_val=40, leaning_group="music21:joplin")
    unseen = fit.out_of_group_human_scores(items, seed=0)
    joplin = np.array([p for p, g in unseen if g == "music21:joplin"])
    assert joplin.max() > 0.5                        # without the guard they would be accused
    try:
        model = fit.fit_model(items, seed=0)
    except TrainingError as exc:
        assert "catches no AI validation clip" in str(exc)
        return
    op = model["operating_point"]
    assert op["unseen_group_highest"][0]["group"] == "music21:joplin"
    assert op["unseen_group_rule"] > op["validation_rule"]
    allowed = math.floor(0.005 * len(unseen))
    assert np.sum(joplin >= model["threshold"]) <= allowed


def test_fit_detects_well_separated_ai_items(fitted):
    """AI items apart from every human in two features are caught: at least 90 % of the
    validation AI items reach the threshold, and a typical AI vector scores high, a typical
    human one low."""
    model, items, _ = fitted
    det = SymbolicDetector(model)
    val_ai = [i["features"] for i in items if i["split"] == "val" and i["label"] == 1]
    caught = sum(det.window_p_ai(x) >= det.threshold for x in val_ai)
    assert caught >= 0.9 * len(val_ai)
    typical_h, typical_ai = np.zeros(N_FEATURES), np.zeros(N_FEATURES)
    typical_ai[list(SHIFTED)] = 4.0
    assert det.window_p_ai(typical_ai) > 0.9 > 0.1 > det.window_p_ai(typical_h)


def test_exported_trees_reproduce_scikit_learn_and_the_model_is_plain_json(fitted):
    """The JSON trees give scikit-learn's own decision function (a refit with the same seed on
    the same training items), also after a JSON round trip: the model is data, no pickle."""
    model, items, _ = fitted
    train = [i for i in items if i["split"] == "train"]
    x = np.array([i["features"] for i in train])
    y = np.array([i["label"] for i in train])
    clf = fit._gbdt(0).fit(x, y)
    probe = np.array([i["features"] for i in items[::7]])
    text = json.dumps(model)
    det = SymbolicDetector(json.loads(text))
    np.testing.assert_allclose([det.trees(r) for r in probe], clf.decision_function(probe), atol=1e-9)
    assert model["features"] == list(FEATURE_NAMES) and model["kind"] == "gbdt"
    assert model["window_s"] == corpus.WINDOW_S and model["sample_rate"] == corpus.SAMPLE_RATE


def test_fit_domain_limit_holds_development_items_and_excludes_far_ones(fitted):
    """The domain limit is the 99.5th percentile of development distances: positive, about
    99.5 % of the development items within it, and a vector 100 away in every feature far
    outside."""
    model, items, _ = fitted
    det = SymbolicDetector(model)
    limit = model["domain"]["limit"]
    assert limit > 0 and det.domain_limit == limit
    inside = np.mean([det.distance(i["features"]) <= limit for i in items])
    assert 0.99 <= inside < 1.0
    x = items[0]["features"]
    assert det.distance(x + 100.0) > limit
    assert det.distance(np.asarray(model["domain"]["mean"])) == pytest.approx(0.0, abs=1e-9)


def test_evaluate_counts_clips_per_source_and_only_in_domain_accusations(fitted):
    """evaluate() counts every item; an item out of the domain is never an accusation. Its
    totals agree with the items and with the detector's own decisions."""
    model, items, _ = fitted
    det = SymbolicDetector(model)
    val = [i for i in items if i["split"] == "val"]
    far = {**val[1], "clip_id": "far", "features": val[1]["features"] + 100.0}   # an AI item
    assert far["label"] == 1
    out = fit.evaluate(SymbolicDetector(model), val + [far])
    n_h = sum(1 for i in val if i["label"] == 0)
    n_ai = sum(1 for i in val if i["label"] == 1) + 1
    fa, dt = out["false_accusation"], out["detection"]
    assert (fa["n"], dt["n"]) == (n_h, n_ai)
    assert fa["k"] == 0 and fa["rate"] == 0.0            # the threshold spares every val human
    want_k = sum(1 for i in val + [far] if i["label"] == 1
                 and det.distance(i["features"]) <= det.domain_limit
                 and det.window_p_ai(i["features"]) >= det.threshold)
    assert dt["k"] == want_k and dt["rate"] == pytest.approx(want_k / n_ai)
    assert dt["ci95"][0] <= dt["rate"] <= dt["ci95"][1]
    per = out["per_source"]
    assert set(per) == {"human/music21", *AI_CONFIGS}
    assert per["human/music21"]["n"] == n_h
    assert sum(per[c]["n"] for c in AI_CONFIGS) == n_ai
    assert sum(per[c]["k"] for c in AI_CONFIGS) == dt["k"]
    assert per[far["config"]]["in_domain"] < per[far["config"]]["n"]
    for key, label in (("human_withheld", 0), ("ai_doubted", 1)):
        want = sum(1 for i in val + [far] if i["label"] == label
                   and det.distance(i["features"]) <= det.domain_limit
                   and det.window_p_ai(i["features"]) >= det.doubt_threshold)
        assert out[key]["k"] == want and out[key]["n"] == (n_h if label == 0 else n_ai)
    assert sum(per[c]["doubt"]["k"] for c in AI_CONFIGS) == out["ai_doubted"]["k"]
    assert out["ai_doubted"]["k"] >= dt["k"]         # every accusation lies above the doubt threshold


def test_fit_needs_both_classes_in_train_and_validation():
    """Without AI items in validation no calibration or operating point can be set."""
    items = [i for i in synthetic_items(n_train=20, n_val=10)
             if not (i["split"] == "val" and i["label"] == 1)]
    with pytest.raises(TrainingError, match="need human and AI"):
        fit.fit_model(items, seed=0)


def test_fit_refuses_non_finite_features_instead_of_writing_a_nan_domain():
    """One NaN feature made the domain's mean, precision and limit NaN: the model was written,
    and every window of every scan lay outside its domain (the line could never accuse)."""
    items = synthetic_items(n_train=20, n_val=10)
    items[3]["features"] = np.array(items[3]["features"], dtype=float)
    items[3]["features"][2] = np.nan
    with pytest.raises(TrainingError, match=f"non-finite features.*{items[3]['clip_id']}"):
        fit.fit_model(items, seed=0)


def test_extra_training_clips_of_validation_or_test_works_are_refused(tmp_path):
    """--extra-train adds clips to the train split only; the caller was trusted to keep their
    works apart. Passing a corpus that holds the root corpus's validation and test works
    (here the root corpus itself) fitted the line on the clips its operating point and card's
    test rates then came from, without a word."""
    rng = np.random.default_rng(0)
    rows, notes = [], {}
    for split, n in (("train", 24), ("val", 12), ("test", 6)):
        for k in range(n):
            for label in (0, 1):
                cid = f"{'a' if label else 'h'}-{split}-{k}"
                rows.append(row(cid, "ai" if label else "human", "rhythgen" if label else "", split,
                                composer="" if label else ("Bach", "Mozart", "Haydn")[k % 3],
                                work_id=f"w-{split}-{k}", origin="rhythgen:LAD/c" if label else "music21:x"))
                step = 7 if label else 2
                notes[cid] = np.array([(0.5 * i, 0.5 * i + 0.4, 60 + int(rng.integers(0, step)) * (i % 4))
                                       for i in range(20)], np.float32)
    write_manifest(tmp_path / "corpus", rows)
    write_manifest(tmp_path / "extra", [r for r in rows if r["split"] != "train"])
    with pytest.raises(TrainingError, match="validation or test"):
        fit.fit_and_ship(tmp_path / "corpus", notes, tmp_path / "model", seed=0,
                         extra_train=[(tmp_path / "extra", notes)])
    assert not (tmp_path / "model").exists()
    # other clips (new renders, say) of the same works are refused too
    write_manifest(tmp_path / "extra2", [{**r, "clip_id": "x" + r["clip_id"]} for r in rows if r["split"] == "test"])
    with pytest.raises(TrainingError, match="validation or test"):
        fit.fit_and_ship(tmp_path / "corpus", notes, tmp_path / "model", seed=0,
                         extra_train=[(tmp_path / "extra2", {"x" + k: v for k, v in notes.items()})])


def test_dataset_skips_untranscribed_clips_and_clips_with_too_few_notes():
    """One item per clip with enough notes; the rest are counted by reason. Human items are
    grouped by composer, AI items by generator configuration."""
    arr = notes_array(TEN)
    rows = [{**row("h1", "human", composer="Bach"), "origin": "music21:bach/bwv1.mxl"},
            {**row("a1", "ai", "rhythgen"), "origin": "rhythgen:LAD/c/seed1"},
            row("h2", "human"), row("h3", "human")]
    items, skipped = fit.dataset(rows, {"h1": arr, "a1": arr, "h3": arr[:MIN_NOTES - 1]})
    assert [i["clip_id"] for i in items] == ["h1", "a1"]
    assert skipped == {"not transcribed": 1, "too few notes": 1}
    assert items[0]["label"] == 0 and items[0]["group"] == "composer:Bach" and items[0]["config"] == "human"
    assert items[1]["label"] == 1 and items[1]["config"] == "rhythgen/LAD-c" == items[1]["group"]
    np.testing.assert_array_equal(items[0]["features"], note_features(arr, corpus.WINDOW_S))


# --- 4. the detector ------------------------------------------------------------------------


def write_model(directory, model, card=None):
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "model.json").write_text(json.dumps(model))
    if card is not None:
        (directory / "card.json").write_text(json.dumps(card))
    return directory


CARD_RATES = {"false_accusation": {"k": 1, "n": 200, "rate": 0.005, "ci95": [0.001, 0.028]},
              "detection": {"k": 90, "n": 100, "rate": 0.9, "ci95": [0.83, 0.94]},
              "human_withheld": {"k": 14, "n": 200, "rate": 0.07, "ci95": [0.042, 0.114]},
              "ai_doubted": {"k": 96, "n": 100, "rate": 0.96, "ci95": [0.9, 0.985]}}


def test_from_pretrained_loads_a_model_directory_with_its_card(fitted, tmp_path):
    """model.json + card.json load; the model's SHA-256 and the card's test rates are kept."""
    from musicbrain_cli.audio.intake import sha256_file

    model, items, _ = fitted
    d = write_model(tmp_path / "m", model, {"test": CARD_RATES})
    det = SymbolicDetector.from_pretrained(d)
    assert det.sha256 == sha256_file(d / "model.json")
    assert det.threshold == model["threshold"] and det.card["test"] == CARD_RATES
    x = items[0]["features"]
    assert det.window_p_ai(x) == SymbolicDetector(model).window_p_ai(x)


def test_from_pretrained_refuses_a_missing_or_unreadable_model(tmp_path):
    """No model.json, or one that is not JSON, is a ModelLoadError (never a crash)."""
    with pytest.raises(ModelLoadError, match="no symbolic model"):
        SymbolicDetector.from_pretrained(tmp_path / "nothing")
    d = tmp_path / "broken"
    d.mkdir()
    (d / "model.json").write_text("{not json")
    with pytest.raises(ModelLoadError):
        SymbolicDetector.from_pretrained(d)


def _without(model, key):
    m = copy.deepcopy(model)
    del m[key]
    return m


def _with(model, path, value):
    m = copy.deepcopy(model)
    target = m
    for k in path[:-1]:
        target = target[k]
    target[path[-1]] = value
    return m


@pytest.mark.parametrize("damage", [
    lambda m: _without(m, "trees"),
    lambda m: _without(m, "domain"),
    lambda m: _without(m, "platt"),
    lambda m: _with(m, ["features"], list(reversed(FEATURE_NAMES))),
    lambda m: _with(m, ["features"], list(FEATURE_NAMES[:-1])),
    lambda m: _with(m, ["threshold"], 0.0),
    lambda m: _with(m, ["threshold"], 1.5),
    lambda m: _with(m, ["doubt_threshold"], m["threshold"] + 1e-3),
    lambda m: _with(m, ["doubt_threshold"], 0.0),
    lambda m: _with(m, ["domain", "precision"], [[1.0]]),
    lambda m: _with(m, ["domain", "scale"], [0.0] * N_FEATURES),
    lambda m: _with(m, ["trees", "trees", 0, "left"], [0] * len(m["trees"]["trees"][0]["left"])),
    lambda m: _with(m, ["trees", "trees", 0, "feature"], [N_FEATURES + 5] * len(m["trees"]["trees"][0]["feature"])),
    lambda m: [],
], ids=["no-trees", "no-domain", "no-platt", "features-reordered", "feature-missing",
        "threshold-0", "threshold-above-1", "doubt-above-threshold", "doubt-0", "precision-shape", "zero-scale", "child-before-parent",
        "unknown-feature", "not-a-dict"])
def test_a_malformed_model_is_a_model_load_error(fitted, tmp_path, damage):
    """Every way a model file can be wrong is refused on load, directly or from a directory."""
    model, _, _ = fitted
    bad = damage(model)
    with pytest.raises(ModelLoadError):
        SymbolicDetector(bad)
    with pytest.raises(ModelLoadError):
        SymbolicDetector.from_pretrained(write_model(tmp_path / "m", bad))


@pytest.fixture(scope="module")
def forced(fitted):
    """The fitted model made to call everything AI (Platt a=0, b=50: P(AI) = 1) with a domain
    limit wide enough for real audio's note statistics."""
    model = copy.deepcopy(fitted[0])
    model["platt"] = {"a": 0.0, "b": 50.0}
    model["domain"]["limit"] = 1e12
    return SymbolicDetector(model, {"test": CARD_RATES}, accuses=True)


@pytest.fixture(scope="module")
def melody_window():
    return window(tone_sequence(MELODY))


def test_assess_silence_or_one_sustained_tone_is_not_applicable(forced):
    """Fewer than MIN_NOTES notes in every window: the line does not apply and cannot accuse,
    however its model is set."""
    t = np.arange(10 * SR) / SR
    sustained = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    got = forced.assess([(0.0, np.zeros(10 * SR, np.float32)), (10.0, sustained)], SR,
                        content_in_domain=True)
    assert not got.applicable and not got.in_domain and not got.says_ai and got.p_ai is None
    assert [w["start_s"] for w in got.windows] == [0.0, 10.0]
    assert all(w["notes"] < MIN_NOTES and w["p_ai"] is None for w in got.windows)
    assert got.windows[0]["notes"] == 0 and 1 <= got.windows[1]["notes"] < MIN_NOTES
    assert "not applicable" in got.explanation


def test_assess_a_tone_sequence_is_analysed_and_accused_by_a_model_that_calls_everything_ai(
        forced, melody_window):
    """A 16-note melody is analysed (its window recorded with its note count, distance and
    P(AI); a silent window beside it gives no P(AI)); with the forced model P(AI) reaches the
    threshold and the line says AI, naming the features furthest from the human scores. A
    content model with no domain check (None) does not stop it."""
    windows = [(0.0, melody_window), (20.0, np.zeros(10 * SR, np.float32))]
    for content in (True, None):
        got = forced.assess(windows, SR, content_in_domain=content)
        assert got.applicable and got.in_domain and got.says_ai
        assert got.p_ai is not None and got.p_ai >= got.threshold
        w0, w1 = got.windows
        assert w0["start_s"] == 0.0 and w0["notes"] >= len(MELODY) and w0["in_domain"]
        assert w0["p_ai"] == pytest.approx(1.0) and w0["distance"] >= 0
        assert w1["start_s"] == 20.0 and w1["notes"] == 0 and w1["p_ai"] is None and not w1["in_domain"]
        assert len(got.features) == 3 and all(f["feature"] in FEATURE_NAMES for f in got.features)
        assert got.error_rates == CARD_RATES
    d = got.to_dict()
    assert isinstance(d["windows"], list) and json.loads(json.dumps(d))["says_ai"] is True


def test_the_shipped_policy_leans_at_the_operating_point_instead_of_accusing(fitted, melody_window):
    """Since session 25 the line does not accuse on its own (human rags reached its operating
    point): the same P(AI) of 1 that accuses with ``accuses=True`` leans towards AI by default,
    says why, and makes a content line's 'human' inconclusive, never 'ai'. The shipped line
    follows the policy."""
    from musicbrain_cli.symbolic import detector as sym
    from musicbrain_cli.verdict import LineFinding, combine, symbolic_finding

    assert sym.ACCUSES is False and SymbolicDetector.from_pretrained("default").accuses is False
    model = copy.deepcopy(fitted[0])
    model["platt"] = {"a": 0.0, "b": 50.0}
    model["domain"]["limit"] = 1e12
    got = SymbolicDetector(model, {"test": CARD_RATES}).assess([(0.0, melody_window)], SR,
                                                                content_in_domain=True)
    assert got.p_ai >= got.threshold and got.reaches_operating_point
    assert not got.says_ai and got.leans_ai and got.accuses is False
    assert "does not accuse on its own" in got.explanation and "Joplin" in got.explanation
    line = symbolic_finding(got.to_dict())
    assert line.finding == "inconclusive"
    content = LineFinding(line="content", finding="human", in_domain=True, p_ai=0.01, threshold=0.6)
    assert combine([content, line]).label == "inconclusive"
    accusing = SymbolicDetector(model, accuses=True).assess([(0.0, melody_window)], SR,
                                                             content_in_domain=True)
    assert accusing.says_ai and accusing.reaches_operating_point and accusing.accuses
    assert "does not accuse" not in accusing.explanation
    assert combine([content, symbolic_finding(accusing.to_dict())]).label == "ai"
    # a P(AI) just above the operating point is written so that the two read differently
    model["threshold"] = model["doubt_threshold"] = 0.9995
    close = SymbolicDetector(model).assess([(0.0, melody_window)], SR, content_in_domain=True)
    assert "P(AI) of 1.0000 against the operating point 0.9995" in close.explanation


def test_assess_never_accuses_when_the_content_model_is_out_of_its_domain(forced, melody_window,
                                                                         monkeypatch):
    """The line was measured on rendered scores only: where the content model finds the
    recording outside its domain, the line does not judge (and spends no transcription on
    it), even with a model that would call everything AI."""
    from musicbrain_cli.alignment import pitch

    def no_transcription(*a, **k):
        raise AssertionError("transcribed although it could not accuse")

    monkeypatch.setattr(pitch, "basic_pitch_notes", no_transcription)
    got = forced.assess([(0.0, melody_window)], SR, content_in_domain=False)
    assert not got.in_domain and not got.says_ai and got.p_ai is None and not got.applicable
    assert "outside its domain" in got.explanation


def test_assess_windows_outside_the_note_domain_are_not_judged(fitted, melody_window):
    """With the fitted domain (synthetic standard-normal features), real audio's note
    statistics (mean pitch about 63, ...) lie far outside it: the line applies but neither
    judges nor accuses, even with a P(AI) of 1 and the content model in domain."""
    model = copy.deepcopy(fitted[0])
    model["platt"] = {"a": 0.0, "b": 50.0}
    got = SymbolicDetector(model).assess([(0.0, melody_window)], SR, content_in_domain=True)
    assert got.applicable and not got.in_domain and not got.says_ai and got.p_ai is None
    assert got.windows[0]["distance"] > model["domain"]["limit"] and not got.windows[0]["in_domain"]
    assert got.windows[0]["p_ai"] == pytest.approx(1.0)


def test_assess_between_the_doubt_threshold_and_the_operating_point_leans_towards_ai(
        fitted, melody_window):
    """A P(AI) at or above the doubt threshold but below the operating point: no accusation,
    but the finding leans towards AI and says so; below the doubt threshold it does not; a
    model without a doubt threshold (fitted before it existed) never leans."""
    model = copy.deepcopy(fitted[0])
    model["domain"]["limit"] = 1e12
    model["threshold"], model["doubt_threshold"] = 0.9, 0.5
    for b, says, leans in ((0.0, False, True), (-5.0, False, False), (5.0, True, False)):
        model["platt"] = {"a": 0.0, "b": b}           # P(AI) 0.5, 0.007, 0.993
        got = SymbolicDetector(model, accuses=True).assess([(0.0, melody_window)], SR,
                                                           content_in_domain=True)
        assert (got.says_ai, got.leans_ai) == (says, leans)
        assert got.doubt_threshold == 0.5
        assert ("doubt threshold 0.50" in got.explanation) is leans
    del model["doubt_threshold"]
    model["platt"] = {"a": 0.0, "b": 0.0}
    got = SymbolicDetector(model).assess([(0.0, melody_window)], SR, content_in_domain=True)
    assert not got.leans_ai and not got.says_ai and got.doubt_threshold == got.threshold


def test_assess_reads_at_most_max_windows(forced):
    """However many windows a caller passes, at most MAX_WINDOWS are transcribed."""
    short = np.zeros(SR, np.float32)
    got = forced.assess([(float(i), short) for i in range(MAX_WINDOWS + 3)], SR, content_in_domain=True)
    assert [w["start_s"] for w in got.windows] == [float(i) for i in range(MAX_WINDOWS)]


def test_assess_without_basic_pitch_is_not_applicable_and_says_why(forced, monkeypatch, melody_window):
    """No note estimator: no finding, and the reason is in the explanation."""
    from musicbrain_cli.alignment import pitch

    monkeypatch.setattr(pitch, "basic_pitch_available", lambda: (False, "not installed"))
    got = forced.assess([(0.0, melody_window)], SR, content_in_domain=True)
    assert not got.applicable and not got.says_ai and got.windows == ()
    assert "not installed" in got.explanation


# --- 5. the symbolic line among the evidence lines --------------------------------------------


def _sym(applicable=True, in_domain=True, says_ai=True, p=0.97, t=0.9, leans_ai=False):
    return {"applicable": applicable, "in_domain": in_domain, "says_ai": says_ai, "p_ai": p,
            "threshold": t, "leans_ai": leans_ai, "explanation": "because"}


@pytest.mark.parametrize("applicable,in_domain,says_ai,leans_ai,want", [
    (True, True, True, False, "ai"),
    (True, True, False, False, "no_evidence"),
    (True, True, False, True, "inconclusive"),
    (True, False, True, False, "no_evidence"),
    (True, False, False, True, "no_evidence"),
    (False, True, True, False, "no_evidence"),
    (False, True, False, True, "no_evidence"),
    (False, False, False, False, "no_evidence"),
])
def test_symbolic_finding_accuses_only_when_applicable_in_domain_and_saying_ai(
        applicable, in_domain, says_ai, leans_ai, want):
    """The line says "ai" only with all three; leaning towards AI in its domain it is
    inconclusive; otherwise it is no evidence either way, and it can never exonerate."""
    from musicbrain_cli.verdict import symbolic_finding

    f = symbolic_finding(_sym(applicable, in_domain, says_ai, leans_ai=leans_ai))
    assert f.line == "symbolic" and f.finding == want and f.can_exonerate is False
    assert f.in_domain == (applicable and in_domain)
    assert f.reasons == ("because",) and f.threshold == 0.9
    assert f.p_ai == (0.97 if applicable and in_domain else None)


def test_symbolic_finding_from_a_real_assessment(forced, fitted, melody_window):
    """The detector's own dict feeds symbolic_finding unchanged: accusing, leaning (a model
    whose P(AI) 0.5 lies between its doubt threshold and operating point) and out of domain."""
    from musicbrain_cli.verdict import symbolic_finding

    d = forced.assess([(0.0, melody_window)], SR, content_in_domain=True).to_dict()
    assert symbolic_finding(d).finding == "ai"
    model = copy.deepcopy(fitted[0])
    model.update(threshold=0.9, doubt_threshold=0.5, platt={"a": 0.0, "b": 0.0})
    model["domain"]["limit"] = 1e12
    d = SymbolicDetector(model).assess([(0.0, melody_window)], SR, content_in_domain=True).to_dict()
    assert symbolic_finding(d).finding == "inconclusive" and symbolic_finding(d).p_ai == pytest.approx(0.5)
    d = forced.assess([(0.0, melody_window)], SR, content_in_domain=False).to_dict()
    assert symbolic_finding(d).finding == "no_evidence" and not symbolic_finding(d).in_domain


def test_combine_symbolic_accusation_outweighs_a_human_content_finding():
    from musicbrain_cli.verdict import LineFinding, combine, symbolic_finding

    content = LineFinding(line="content", finding="human", in_domain=True, p_ai=0.05, threshold=0.6)
    v = combine([content, symbolic_finding(_sym())])
    assert v.label == "ai" and v.ai_lines == ["symbolic"]
    assert "0.97 against 0.90" in v.reasons[0]


def test_combine_symbolic_without_evidence_neither_helps_nor_blocks_human():
    from musicbrain_cli.verdict import LineFinding, combine, symbolic_finding

    content = LineFinding(line="content", finding="human", in_domain=True, p_ai=0.05, threshold=0.6)
    for sym in (_sym(says_ai=False, p=0.2), _sym(applicable=False, says_ai=False, p=None),
                _sym(in_domain=False)):
        v = combine([content, symbolic_finding(sym)])
        assert v.label == "human" and v.ai_lines == []
    with pytest.raises(ValueError):                 # the symbolic line alone can never exonerate
        combine([symbolic_finding(_sym(says_ai=False))])


def test_combine_symbolic_line_leaning_towards_ai_withholds_a_human_verdict():
    """Notes that lean towards AI (below the operating point) accuse nobody, but a content
    line's human finding no longer makes a human verdict: inconclusive, with the reason and
    the numbers; out of its domain the same leaning blocks nothing."""
    from musicbrain_cli.verdict import LineFinding, combine, symbolic_finding

    content = LineFinding(line="content", finding="human", in_domain=True, p_ai=0.05, threshold=0.6)
    v = combine([content, symbolic_finding(_sym(says_ai=False, leans_ai=True, p=0.93, t=0.98))])
    assert v.label == "inconclusive" and v.ai_lines == []
    assert v.reasons == ["The symbolic line leans towards AI generation (P(AI) 0.93, short of its "
                         "operating point 0.98)."]
    v = combine([content, symbolic_finding(_sym(in_domain=False, says_ai=False, leans_ai=True))])
    assert v.label == "human"


def test_combine_out_of_domain_content_and_symbolic_line_is_not_ai():
    from musicbrain_cli.verdict import LineFinding, combine, symbolic_finding

    content = LineFinding(line="content", finding="inconclusive", in_domain=False)
    v = combine([content, symbolic_finding(_sym(in_domain=False, says_ai=True))])
    assert v.label == "inconclusive" and v.ai_lines == []


# --- 6. which windows a scan transcribes -----------------------------------------------------


def full_windows(duration_s, window_s=10.0, hop_s=5.0, rate=100):
    """Index -> padded? of the content model's windows of a track (iter_windows, at a low
    sample rate to keep it cheap)."""
    from musicbrain_cli.audio.intake import iter_windows

    n = int(round(duration_s * rate))
    y = (0.1 * np.sin(2 * np.pi * 7.3 * np.arange(n) / rate)).astype(np.float32)  # sound throughout
    return {w.index: w.padded for w in iter_windows(y, sample_rate=rate, window_s=window_s, hop_s=hop_s)}


def test_symbolic_windows_of_a_short_track_are_its_only_full_window():
    from musicbrain_cli.scan.batch import symbolic_window_indices

    assert symbolic_window_indices(12.0, 10.0, 5.0) == {0}
    assert symbolic_window_indices(25.0, 10.0, 5.0) == {0, 2}


@pytest.mark.parametrize("duration", [300.0, 303.7, 61.0])
def test_symbolic_windows_of_a_long_track_are_spread_full_and_do_not_overlap(duration):
    """At most MAX_WINDOWS windows, every one a full (unpadded) window of the content model,
    even indices (10-s windows every 5 s: even indices never overlap), from the first to the
    last full window."""
    from musicbrain_cli.scan.batch import symbolic_window_indices

    got = sorted(symbolic_window_indices(duration, 10.0, 5.0))
    windows = full_windows(duration)
    last_full = max(i for i, padded in windows.items() if not padded)
    assert 1 <= len(got) <= MAX_WINDOWS
    assert got[0] == 0 and all(i % 2 == 0 for i in got)
    assert all(i in windows and not windows[i] for i in got)
    assert got[-1] == last_full - (last_full % 2)
    if duration == 300.0:
        assert len(got) == MAX_WINDOWS and got[-1] == 58 == last_full


def test_symbolic_picks_past_the_last_window_give_way_to_the_last_window_of_the_grid():
    """Windows lie over the music only: silence at the end leaves fewer of them than the
    duration holds, and the picks past them would be read by no one (session 40)."""
    from musicbrain_cli.scan.batch import symbolic_window_indices

    planned = symbolic_window_indices(102.0, 10.0, 5.0)
    assert sorted(planned) == [0, 4, 8, 10, 14, 18]
    assert symbolic_window_indices(102.0, 10.0, 5.0, n_windows=40) == planned
    assert sorted(symbolic_window_indices(102.0, 10.0, 5.0, n_windows=13)) == [0, 4, 8, 10, 12]
    assert sorted(symbolic_window_indices(102.0, 10.0, 5.0, n_windows=14)) == [0, 4, 8, 10, 12]
    assert sorted(symbolic_window_indices(102.0, 10.0, 5.0, n_windows=11)) == [0, 4, 8, 10]
    assert symbolic_window_indices(102.0, 10.0, 5.0, n_windows=1) == {0}


def test_symbolic_windows_of_a_track_of_unknown_length_are_the_first_ones():
    from musicbrain_cli.scan.batch import symbolic_window_indices

    assert symbolic_window_indices(None, 10.0, 5.0) == set(range(0, 2 * MAX_WINDOWS, 2))
    assert symbolic_window_indices(None, 10.0, 10.0) == set(range(MAX_WINDOWS))


# --- 7. the report ---------------------------------------------------------------------------


def test_report_states_windows_and_measured_error_rates_in_words():
    from musicbrain_cli.report.html import _symbolic_sentences

    found = {"windows": [{"start_s": 0.0, "notes": 20}, {"start_s": 60.0, "notes": 37}],
             "error_rates": CARD_RATES}
    s = _symbolic_sentences(found)
    assert "2 window(s) of 57 transcribed notes" in s[0] and "0, 60" in s[0]
    fa = next(x for x in s if "human test clips at or above its operating point" in x)
    assert "1 of 200" in fa and "0.5 %" in fa and "0.1 %" in fa and "2.8 %" in fa
    det = next(x for x in s if "generators at or above its operating point" in x)
    assert "90 of 100" in det and "90.0 %" in det
    assert not any("does not accuse on its own" in x for x in s)   # a finding of an accusing line
    said = _symbolic_sentences({**found, "accuses": False})
    assert "This line does not accuse on its own" in said[1] and "rags" in said[1]
    withheld = next(x for x in s if "lean towards AI" in x)
    assert "14 of 200" in withheld and "7.0 %" in withheld and "no accusation" in withheld
    doubted = next(x for x in s if "doubt threshold" in x)
    assert "96 of 100" in doubted and "96.0 %" in doubted
    assert not any("miss rate is unknown" in x for x in s)          # no families recorded
    s = _symbolic_sentences({**found, "measured_on": ["notagen-small-ft", "symbolic-small"]})
    assert ("Its catch rate was measured on the score-writing generators 'notagen-small-ft', "
            "'symbolic-small'; for any other generator its miss rate is unknown") in s[-1]


def test_finding_names_the_generator_families_its_rates_were_measured_on(fitted, melody_window):
    """measured_on comes from the card's test split: AI sources collapsed to their family
    (RhythGen's configurations to one), human sources left out; no card, no families."""
    card = {"test": {**CARD_RATES, "per_source": {
        "human/music21": {}, "human/musicnet": {}, "notagen-small-ft/Lieder-LAD": {},
        "notagen-small-ft/RAG-RMM": {}, "symbolic-large": {}}}}
    model = copy.deepcopy(fitted[0])
    model["domain"]["limit"] = 1e12
    got = SymbolicDetector(model, card).assess([(0.0, melody_window)], SR, content_in_domain=True)
    assert got.measured_on == ("notagen-small-ft", "symbolic-large")
    assert got.to_dict()["measured_on"] == ["notagen-small-ft", "symbolic-large"]
    assert SymbolicDetector(model).assess([(0.0, melody_window)], SR,
                                          content_in_domain=False).measured_on == ()


def test_report_symbolic_sentences_tolerate_missing_or_malformed_input():
    from musicbrain_cli.report.html import _symbolic_sentences

    assert _symbolic_sentences(None) == [] and _symbolic_sentences("x") == []
    assert _symbolic_sentences([1, 2]) == []
    assert _symbolic_sentences({}) == []
    assert _symbolic_sentences({"windows": ["x", None], "error_rates": {"false_accusation": {"n": 0}}}) == []
    assert _symbolic_sentences({"error_rates": {"detection": None, "false_accusation": "x"}}) == []
    assert _symbolic_sentences({"measured_on": "abc"}) == []
    assert _symbolic_sentences({"measured_on": [1, None]}) == []


def test_report_evidence_table_names_the_symbolic_line_and_shows_its_sentences():
    from musicbrain_cli.report.html import _evidence

    track = {"evidence": [{"line": "symbolic", "finding": "no_evidence", "in_domain": True,
                           "reasons": ["below the operating point"],
                           "details": {"symbolic": {"windows": [{"start_s": 0, "notes": 12}],
                                                    "error_rates": CARD_RATES}}}]}
    (row_,) = _evidence(track, {})
    assert row_["name"].startswith("Notes played")
    assert any("1 of 200" in s for s in row_["sentences"])
    assert any("12 transcribed notes" in s for s in row_["sentences"])


def test_group_of_joins_a_composer_across_collections_and_falls_back_to_the_collection():
    """The unseen-group rule leaves out a composer wherever the score came from (music21's
    Beethoven and MusicNet's are one group); a masked composer ("-") or none falls back to the
    collection: the music21 folder, the arrangement style."""
    beethoven = {"composer": "Beethoven, Ludwig van"}
    assert fit.group_of({**beethoven, "origin": "music21:beethoven/opus18no1#tick=0"}) \
        == fit.group_of({**beethoven, "origin": "musicnet_midis/Beethoven/2313_qt15_1.mid#t=0"}) \
        == "composer:Beethoven, Ludwig van"
    assert fit.group_of({"composer": "-", "origin": "music21:essenFolksong/han1.abc#3"}) \
        == "music21:essenFolksong"
    assert fit.group_of({"composer": "", "origin": "arrangement:blues#0"}) == "arrangement:blues"
    # human-style sources (issue 21): a Lieder composer without a label is a group of their
    # own; a labelled folder's files group by their first folder
    beach = {"composer": "", "origin": "openscore-lieder:scores/Beach,_Amy/_/Prayer/lc3.mxl#tick=0"}
    barnard = {**beach, "origin": "openscore-lieder:scores/Barnard,_Charlotte/_/Brook/lc7.mxl#tick=0"}
    assert fit.group_of(beach) == "openscore-lieder:Beach,_Amy" != fit.group_of(barnard)
    assert fit.group_of({"composer": "", "origin": "scores-ragtime:lamb/nightingale.mid#tick=0"}) \
        == "scores-ragtime:lamb"


@pytest.mark.parametrize("path", ["/etc/passwd", "../outside.flac", "audio/../../x.flac", ""])
def test_symbolic_rows_refuse_a_path_outside_the_corpus(tmp_path, path):
    """A manifest is input like any other: a clip's path must stay inside its corpus."""
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("clip_id,path,source,generator,split,origin\n"
                        f"h1,{path},human,-,train,music21:bach/x\n")
    with pytest.raises(InputError, match="outside the corpus"):
        corpus.symbolic_rows(manifest)


def test_transcribe_corpus_refuses_a_damaged_cache_stamp(tmp_path):
    """A cache.json that is not JSON is refused with InputError, not a traceback."""
    root = tmp_path / "corpus"
    root.mkdir()
    (root / "manifest.csv").write_text("clip_id,path,source,generator,split,origin\n")
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "cache.json").write_text("{not json")
    with pytest.raises(InputError, match="stamp"):
        corpus.transcribe_corpus(root, [], cache)


def test_assess_without_a_full_window_says_so(tmp_path):
    """A recording shorter than one window gives the line nothing to read: not applicable,
    and the report says why in those words (not "too few notes")."""
    det = SymbolicDetector(fit.fit_model(synthetic_items(n_train=40, n_val=30), seed=0))
    found = det.assess([], 22050, content_in_domain=True)
    assert not found.applicable and not found.says_ai and "no full 10-s window" in found.explanation


def test_assess_reports_a_transcription_failure_instead_of_losing_the_track(monkeypatch):
    """basic-pitch failing on a window (onnxruntime raises RuntimeError) makes the line not
    applicable with the error named; the scan keeps the track's other lines."""
    import musicbrain_cli.alignment.pitch as pitch

    def broken(*args, **kwargs):
        raise RuntimeError("ONNX runtime failure")

    monkeypatch.setattr(pitch, "basic_pitch_notes", broken)
    det = SymbolicDetector(fit.fit_model(synthetic_items(n_train=40, n_val=30), seed=0))
    found = det.assess([(0.0, np.zeros(22050 * 10, np.float32))], 22050, content_in_domain=True)
    assert not found.applicable and not found.says_ai
    assert "ONNX runtime failure" in found.explanation and "0 s" in found.explanation


def test_assess_reads_notes_already_transcribed_instead_of_transcribing_again(monkeypatch):
    """A window that comes with its notes (the alignment checks transcribed it with
    basic-pitch) is not transcribed again, and gives the same finding as transcribing it."""
    import musicbrain_cli.alignment.pitch as pitch

    det = SymbolicDetector(fit.fit_model(synthetic_items(n_train=40, n_val=30), seed=0))
    y = np.zeros(22050 * 10, np.float32)
    melody = tone_sequence(MELODY)[: y.size]
    y[: melody.size] = melody
    notes = pitch.basic_pitch_notes(y, 22050)
    fresh = det.assess([(0.0, y)], 22050, content_in_domain=True)

    def refuse(*args, **kwargs):
        raise AssertionError("transcribed again")

    monkeypatch.setattr(pitch, "basic_pitch_notes", refuse)
    reused = det.assess([(0.0, y, notes)], 22050, content_in_domain=True)
    assert reused.to_dict() == fresh.to_dict() and reused.windows[0]["notes"] == len(notes)


def test_notes_figure_shows_the_scored_windows_and_refuses_a_finding_without_notes(forced, melody_window):
    """The report's notes figure is drawn from the finding alone (the notes it records), the
    same bytes for the same finding, with a judged window and a silent one; a finding that
    recorded no notes (not run) or whose notes are not finite is refused."""
    from musicbrain_cli.report.figures import notes_figure
    from musicbrain_cli.scan.documents import render_figures

    got = forced.assess([(0.0, melody_window), (20.0, np.zeros(10 * SR, np.float32))], SR,
                        content_in_domain=True).to_dict()
    png = notes_figure(got)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and notes_figure(json.loads(json.dumps(got))) == png
    assert render_figures([{"kind": "notes", "name": "n.png", "finding": got}]) == {"n.png": png}
    not_run = forced.assess([(0.0, melody_window)], SR, content_in_domain=False).to_dict()
    with pytest.raises(ReportError, match="applicable"):
        notes_figure(not_run)
    bad = copy.deepcopy(got)
    bad["windows"][0]["heard"][0][0] = float("nan")
    with pytest.raises(ReportError, match="finite"):
        notes_figure(bad)
def test_a_scan_scores_with_the_logistic_the_fit_set_the_operating_point_with():
    """Session 28 audit: the fit's P(AI) (NumPy) and a scan's (``math.exp``) differed in the
    last bit, so a clip the fit left just below the operating point could reach it."""
    import numpy as np

    from musicbrain_cli.symbolic.detector import _sigmoid, _sigmoid_array

    z = np.random.default_rng(0).normal(0.0, 4.0, 20000)
    batch = _sigmoid_array(z)
    assert all(_sigmoid(float(x)) == float(p) for x, p in zip(z, batch))
