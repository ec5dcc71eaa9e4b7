"""scripts/symbolic_robustness.py: each clip is transformed before basic-pitch hears it, and
every transform gets its own row of the line's rates (a tiny corpus of tones made here)."""

import copy
import warnings

import numpy as np
import pytest
from conftest import script_module
from test_symbolic import MELODY, SR, row, synthetic_items, tone_sequence, write_manifest

from musicbrain_cli.errors import InputError
from musicbrain_cli.symbolic import fit
from musicbrain_cli.symbolic.detector import SymbolicDetector



@pytest.fixture(scope="module")
def script():
    """The script as an importable module (its worker function is pickled by name)."""
    with script_module("scripts/symbolic_robustness.py", "symbolic_robustness") as mod:
        yield mod


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    import soundfile as sf

    root = tmp_path_factory.mktemp("corpus")
    (root / "audio").mkdir()
    sf.write(root / "audio" / "h1.wav", tone_sequence(MELODY), SR)
    sf.write(root / "audio" / "a1.wav", tone_sequence([67, 69, 71, 72, 74, 72, 71, 69] * 2), SR)
    write_manifest(root, [row("h1", "human", split="test", composer="Bach"),
                          row("a1", "ai", "rhythgen", split="test"),
                          row("v1", "human", split="val")])          # not a chosen split
    return root


@pytest.fixture(scope="module")
def everything_ai():
    """A fitted model forced to P(AI) = 1 with a domain wide enough for real notes."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = copy.deepcopy(fit.fit_model(synthetic_items(n_train=60, n_val=40), seed=0))
    model["platt"], model["domain"]["limit"] = {"a": 0.0, "b": 50.0}, 1e12
    return SymbolicDetector(model)


def test_a_transform_reaches_the_notes_basic_pitch_hears(script, corpus_dir):
    """Pitch +1 semitone: every note played is heard one semitone up, and none at its old
    pitch (a pitch shifter's faint artefacts may add a stray note); the original is heard as
    played; a clip that cannot be read is an error, not a crash."""
    path = str(corpus_dir / "audio" / "h1.wav")
    _, _, plain, err = script.transcribe(("h1", path, "original", 0))
    _, _, up, err_up = script.transcribe(("h1", path, "pitch_+1", 0))
    assert err is None and err_up is None
    assert set(np.round(plain[:, 2]).astype(int)) == set(MELODY)
    heard_up = set(np.round(up[:, 2]).astype(int))
    assert {p + 1 for p in MELODY} <= heard_up and not heard_up & (set(MELODY) - {p + 1 for p in MELODY})
    _, _, none, why = script.transcribe(("x", str(corpus_dir / "audio" / "missing.wav"), "original", 0))
    assert none is None and why


def test_measure_gives_one_row_per_transform_with_the_lines_rates(script, corpus_dir, everything_ai):
    """With a model that calls everything AI, each transform's row counts the one human test
    clip accused and withheld and the one AI clip caught; the validation clip is not counted;
    an unknown transform is refused before any work."""
    progress = []
    rows = script.measure(corpus_dir, everything_ai, transforms=("original", "pitch_+1"), jobs=1,
                          on_progress=lambda d, n: progress.append((d, n)))
    assert [r["transform"] for r in rows] == ["original", "pitch_+1"]
    for r in rows:
        assert (r["human_clips"], r["ai_clips"], r["failed"]) == (1, 1, 0)
        assert r["human_accused"]["k"] == r["human_withheld"]["k"] == r["ai_caught"]["k"] == 1
    assert progress[-1] == (4, 4)
    assert "| Pitch +1 semitone | 1 of 1 (100.0 %" in script.markdown(rows)
    with pytest.raises(InputError, match="unknown transform"):
        script.measure(corpus_dir, everything_ai, transforms=("louder",))


def test_measure_scores_with_a_roll_model_exactly_as_the_detector_does(script, corpus_dir):
    """With a line that reads piano rolls, each transform's rows are built from the notes heard
    after it, rolls included: the AI clip's count under `original` matches the detector's own
    verdict on the same notes."""
    from test_symbolic_roll import items_with_rolls

    from musicbrain_cli.symbolic import roll
    from musicbrain_cli.symbolic.features import canonical_notes, note_features

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, net = fit.fit_line(items_with_rolls(), seed=0, roll_epochs=8, unseen_folds=2)
    model["domain"]["limit"] = 1e12
    det = SymbolicDetector(model, roll_net=net)
    (row,) = [r for r in script.measure(corpus_dir, det, transforms=("original",), jobs=1)]
    _, _, heard, _ = script.transcribe(("a1", str(corpus_dir / "audio" / "a1.wav"), "original", 0))
    heard = canonical_notes(heard)
    p = det.window_p_ai(note_features(heard, 10.0), roll=roll.piano_roll(heard, 10.0))
    assert row["ai_caught"]["k"] == int(p >= det.threshold) and row["failed"] == 0
    assert row["ai_doubted"]["k"] == int(p >= det.doubt_threshold)
