"""scripts/silence_cue.py: each edit does to the window what its name says, the table compares
each edit with the same clips as rendered, and a run over a small corpus made here measures
every model it is given."""

import csv
import json

import numpy as np
import pytest
from conftest import script_module


@pytest.fixture(scope="module")
def script():
    with script_module("scripts/silence_cue.py", "silence_cue") as mod:
        yield mod


def _clip(sr, seconds, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    return (0.5 * np.sin(2 * np.pi * 330 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


def test_edits_do_what_they_are_named(script):
    sr, w = 1000, 10.0
    y = _clip(sr, 11.5)
    e = script.edits(y, sr, w)
    n = int(w * sr)
    assert all(v.shape == (n,) and v.dtype == np.float32 for v in e.values())
    x = e["as_rendered"]
    assert np.array_equal(x, y[:n])
    assert not e["silence_start"][:sr].any() and np.array_equal(e["silence_start"][sr:], x[sr:])
    at = int(0.4 * n)
    inside = e["silence_inside"]
    assert np.array_equal(inside[:at], x[:at]) and not inside[at:at + sr].any()
    assert np.array_equal(inside[at + sr:], x[at:n - sr])           # the rest pushed later
    fade = e["fade_in"]
    assert abs(fade[0]) < 1e-3 * abs(x).max() and np.array_equal(fade[3 * sr:], x[3 * sr:])
    k = int(1.5 * sr)                              # halfway through the fade: amplitude 1/4
    assert fade[k - 5:k + 5] == pytest.approx(x[k - 5:k + 5] * 0.25, rel=0.01, abs=1e-6)
    out = e["fade_out"]
    assert np.array_equal(out[:n - 3 * sr], x[:n - 3 * sr]) and abs(out[-1]) < 1e-3
    for db in script.LEVELS_DB:
        v = e[f"start_-{db}dB"]
        assert np.allclose(v[:sr], x[:sr] * 10 ** (-db / 20)) and np.array_equal(v[sr:], x[sr:])
    assert np.array_equal(e["splice"][:sr], y[n:n + sr]) and np.array_equal(e["splice"][sr:], x[sr:])
    assert np.array_equal(e["shift"], y[sr // 2:sr // 2 + n])
    noise = e["noise_start"][:sr]
    assert 0 < np.abs(noise).max() < 0.06 * np.abs(x).max() and np.array_equal(e["noise_start"][sr:], x[sr:])
    from musicbrain_cli.evaluate.robustness import TRANSFORMS

    for name, key in (("room", "reverb_room"), ("hall", "reverb_hall"), ("clipped", "clip_6db")):
        assert np.array_equal(e[name], TRANSFORMS[key](x, sr, rng=np.random.default_rng(0)))
        assert not np.array_equal(e[name], x)
    # too short for the splice: no splice; too short for the shift: refused
    assert "splice" not in script.edits(y[:int(10.7 * sr)], sr, w)
    with pytest.raises(ValueError, match="need"):
        script.edits(y[:int(10.2 * sr)], sr, w)


def test_summary_compares_each_edit_with_the_same_clips_as_rendered(script):
    p = {"as_rendered": [0.1, 0.2, 0.3, 0.4], "silence_start": [0.3, 0.2, 0.3, 0.45],
         "shift": [0.0, 0.2, 0.3, 0.4], "splice": [0.9]}
    s = script.summarise(p)
    assert "splice" not in s                              # not the same clips
    assert s["silence_start"]["raised"] == pytest.approx(0.25)
    assert s["silence_start"]["median_change"] == pytest.approx(0.025)
    assert s["shift"]["lowered"] == pytest.approx(0.0) and s["shift"]["raised"] == 0.0
    assert s["as_rendered"]["median_change"] == 0.0


def test_a_run_measures_every_model_on_the_corpus(script, tiny_model_dir, tmp_path):
    import soundfile as sf

    from musicbrain_cli.model.inference import Detector

    sr = Detector.from_pretrained(tiny_model_dir, device="cpu").config.front_end.sample_rate
    corpus = tmp_path / "ref"
    (corpus / "audio").mkdir(parents=True)
    rows = []
    for i, (source, split, seconds) in enumerate([("human", "test", 6), ("human", "test", 6),
                                                  ("ai", "test", 6), ("ai", "val", 6),
                                                  ("human", "test", 3)]):
        path = f"audio/c{i}.wav"
        sf.write(corpus / path, _clip(sr, seconds, seed=i), sr)
        rows.append({"path": path, "source": source, "split": split})
    with (corpus / "manifest.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["path", "source", "split"])
        writer.writeheader()
        writer.writerows(rows)
    out = tmp_path / "cue.json"
    result = script.main([str(corpus), "--model", str(tiny_model_dir), "--model", str(tiny_model_dir),
                          "--clips", "5", "-o", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    table = result["models"][str(tiny_model_dir)]
    # two human test clips long enough (the 3-s one is too short for a 4-s window and a
    # second), one AI test clip (the other is in val)
    assert table["human"]["silence_start"]["clips"] == 2 and table["ai"]["fade_in"]["clips"] == 1
    assert set(table["human"]) == {"as_rendered", "silence_start", "silence_inside", "fade_in",
                                   "fade_out", "splice", "shift", "noise_start",
                                   "room", "hall", "clipped",
                                   *(f"start_-{db}dB" for db in script.LEVELS_DB)}
