"""Robustness suite: each transform does what it says; the table on a tiny data set; the card."""

from __future__ import annotations

import json

import numpy as np
import pytest

from musicbrain_cli.errors import InputError, ModelLoadError, TransformError
from musicbrain_cli.evaluate.robustness import (HELD_OUT_SOUNDFONT, TRANSFORMS, evaluate_robustness,
                                                update_card, write_robustness)

SR = 22050


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """One intra-op thread: on a shared 2-core machine two spinning threads run ~50x slower
    (measured: 1.1 s vs 0.02 s per tiny-model window while another job held the cores)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _tone(seconds, f0, *, sr=SR, partials=1):
    t = np.arange(int(round(seconds * sr))) / sr
    return sum(0.3 / k * np.sin(2 * np.pi * k * f0 * t) for k in range(1, partials + 1)).astype(np.float32)


def _melody(seconds, *, seed=0, sr=SR):
    """Random harmonic notes every 0.2 s: no periodicity a misaligned decode could hide in."""
    rng = np.random.default_rng(seed)
    step = int(0.2 * sr)
    parts = []
    for _ in range(int(seconds / 0.2)):
        f0 = 220.0 * 2 ** (rng.integers(0, 24) / 12)
        t = np.arange(step) / sr
        env = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.01)
        parts.append(env * sum(0.3 / k * np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 6))
                               for k in range(1, 4)))
    return np.concatenate(parts).astype(np.float32)


def _peak_hz(y, sr=SR):
    """Spectral peak with a zero-padded FFT and parabolic interpolation (sub-bin accuracy)."""
    n = 1 << 20
    spec = np.abs(np.fft.rfft(y * np.hanning(y.size), n))
    k = int(np.argmax(spec))
    a, b, c = np.log(spec[k - 1:k + 2])
    return (k + 0.5 * (a - c) / (a - 2 * b + c)) * sr / n


def _run(key, y, seed=0):
    return TRANSFORMS[key](y, SR, rng=np.random.default_rng(seed))


def _db(power_ratio):
    return 10 * np.log10(power_ratio)


@pytest.mark.parametrize("key, cents", [("pitch_+1", 100.0), ("pitch_-1", -100.0)])
def test_pitch_shift_moves_the_peak_by_a_semitone(key, cents):
    y = _tone(2.0, 440.0)
    z = _run(key, y)
    assert z.size == y.size
    measured = 1200 * np.log2(_peak_hz(z[2048:-2048]) / _peak_hz(y[2048:-2048]))
    assert abs(measured - cents) < 3.0


@pytest.mark.parametrize("key, factor", [("stretch_+5", 1.05), ("stretch_-5", 0.95)])
def test_time_stretch_changes_the_length_by_five_percent_keeping_pitch(key, factor):
    y = _tone(3.0, 440.0)
    z = _run(key, y)
    assert z.size / y.size == pytest.approx(factor, abs=0.002)
    assert abs(1200 * np.log2(_peak_hz(z[2048:-2048]) / 440.0)) < 3.0


@pytest.mark.parametrize("key, db", [("gain_+6db", 6.0), ("gain_-6db", -6.0)])
def test_gain(key, db):
    y = _melody(1.0)
    z = _run(key, y)
    ratio = np.mean(z.astype(np.float64) ** 2) / np.mean(y.astype(np.float64) ** 2)
    assert _db(ratio) == pytest.approx(db, abs=1e-3)


def test_fades_rise_from_and_fall_to_silence_over_their_span():
    y = _melody(8.0)
    up, down = _run("fade_in_3s", y), _run("fade_out_6s", y)
    n3, n6 = 3 * SR, 6 * SR
    assert up[0] == 0.0 and np.array_equal(up[n3:], y[n3:])
    np.testing.assert_allclose(up[n3 // 2], y[n3 // 2] * 0.25, rtol=1e-5)   # half way: -12 dB
    assert np.array_equal(down[: y.size - n6], y[: y.size - n6])
    assert abs(down[-1]) < 1e-6 * max(abs(y[-1]), 1e-3) + 1e-9
    np.testing.assert_allclose(down[y.size - n6 // 2], y[y.size - n6 // 2] * 0.25, rtol=1e-3)
    short = _melody(1.0)                       # shorter than the fade: faded over its length
    z, tail = _run("fade_in_3s", short), slice(-SR // 10, None)
    assert z[0] == 0.0 and np.abs(z[tail]).max() > 0.7 * np.abs(short[tail]).max()


def test_linear_and_short_fades_and_a_soft_opening_do_what_they_say():
    y = _melody(8.0)
    lin, one = _run("fade_in_linear_3s", y), _run("fade_in_1s", y)
    n3 = 3 * SR
    assert lin[0] == 0.0 and np.array_equal(lin[n3:], y[n3:])
    np.testing.assert_allclose(lin[n3 // 2], y[n3 // 2] * 0.5, rtol=1e-4)    # half way: -6 dB
    np.testing.assert_allclose(one[SR // 2], y[SR // 2] * 0.25, rtol=1e-4)
    assert np.array_equal(one[SR:], y[SR:])
    soft = _run("soft_start_30db", y)
    np.testing.assert_allclose(soft[:SR], y[:SR] * 10 ** (-30 / 20), rtol=1e-5)
    assert np.array_equal(soft[SR:], y[SR:])
    from musicbrain_cli.evaluate.robustness import fade

    with pytest.raises(ValueError, match="shape"):
        fade(y, SR, rng=None, seconds=1.0, at="in", shape="cosine")


def test_dc_offset_adds_a_constant():
    y = _melody(1.0)
    np.testing.assert_allclose(_run("dc_+0.1", y) - y, 0.1, atol=1e-6)


@pytest.mark.parametrize("key, snr", [("noise_30db", 30.0), ("noise_20db", 20.0)])
def test_noise_has_the_stated_snr_and_is_seeded(key, snr):
    y = _melody(2.0)
    z = _run(key, y, seed=3)
    noise = z.astype(np.float64) - y
    assert _db(np.mean(y.astype(np.float64) ** 2) / np.mean(noise ** 2)) == pytest.approx(snr, abs=0.5)
    assert abs(np.corrcoef(noise, y)[0, 1]) < 0.05             # white, not a copy of the signal
    assert np.array_equal(z, _run(key, y, seed=3))              # pure: same rng, same output
    assert not np.array_equal(z, _run(key, y, seed=4))
    with pytest.raises(TransformError, match="silent"):
        _run(key, np.zeros(100, np.float32))


@pytest.mark.parametrize("key, min_corr", [("mp3_128", 0.98), ("mp3_320", 0.99),
                                           ("aac_128", 0.98), ("opus_64", 0.95)])
def test_reencode_keeps_length_and_alignment(key, min_corr):
    y = _melody(2.0, seed=1)
    z = _run(key, y)
    assert z.size == y.size and z.dtype == np.float32
    assert np.corrcoef(z, y)[0, 1] > min_corr                   # aligned: lag 0 correlates
    assert not np.array_equal(z, y)                              # and it was really encoded
    xc = np.fft.irfft(np.fft.rfft(z, 2 * y.size) * np.conj(np.fft.rfft(y, 2 * y.size)))
    lag = int(np.argmax(xc))
    assert min(lag, 2 * y.size - lag) <= 2                      # encoder delay removed


def test_resample_chain_through_16k_removes_the_top_band_only():
    # 10 kHz: past the transition band of resample_poly's Kaiser filter (9 kHz is at -31 dB)
    low, high = _tone(1.0, 1000.0), _tone(1.0, 10000.0)
    for key in ("resample_16k", "resample_44k1", "resample_48k"):
        z = _run(key, low)
        assert z.size == low.size and np.corrcoef(z, low)[0, 1] > 0.999
    assert _db(np.mean(_run("resample_16k", high) ** 2) / np.mean(high ** 2)) < -40
    # upward round trips keep the band (the filter rolls off only near the model's Nyquist)
    assert _db(np.mean(_run("resample_48k", high) ** 2) / np.mean(high ** 2)) > -3.0
    mid = _tone(1.0, 5000.0)
    assert _db(np.mean(_run("resample_44k1", mid) ** 2) / np.mean(mid ** 2)) > -0.1


def test_trims_leave_short_clips_as_they_are():
    y = _melody(12.0)
    assert np.array_equal(_run("trim_10s", y), y[:10 * SR])
    assert np.array_equal(_run("trim_30s", y), y)


def test_transform_rejects_bad_input():
    with pytest.raises(TransformError, match="mono"):
        _run("gain_+6db", np.zeros((2, 100), np.float32))


# --- the table ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dataset_root(tmp_path_factory):
    """Human clips are 220 Hz tones, AI clips 330 Hz; two cross-renderer clips."""
    from musicbrain_cli.taxonomy import Taxonomy
    from musicbrain_cli.data.dataset import ClipRecord, DatasetWriter

    root = tmp_path_factory.mktemp("robust-data")
    taxonomy = Taxonomy.from_groups([("source", ["human", "ai"], True)])
    clips = [("test", "human", 220.0)] * 3 + [("test", "ai", 330.0)] * 3 \
        + [("test_xsf", "human", 220.0), ("test_xsf", "ai", 330.0)]
    rng = np.random.default_rng(0)
    with DatasetWriter(root, taxonomy, sample_rate=SR, name="tiny") as w:
        for i, (split, source, f0) in enumerate(clips):
            y = _tone(3.0, f0 * (1 + 0.01 * i), partials=4)
            y = y + 0.01 * rng.standard_normal(y.size).astype(np.float32)
            w.add(ClipRecord(f"c{i}", source=source, work_id=f"w{i}", split=split), y)
    return root


def _direct(detector, root, split):
    """Clip P(AI) and truth computed without the robustness code."""
    from musicbrain_cli.audio.intake import load_audio
    from musicbrain_cli.data.dataset import Dataset

    ds = Dataset.load(root)
    rows = sorted(ds.split(split), key=lambda r: r["clip_id"])
    p = [detector.predict_track(load_audio(ds.audio_path(r), sample_rate=SR)).aggregate["source/ai"]["mean"]
         for r in rows]
    return np.array(p), np.array([r["source"] == "ai" for r in rows])


def test_evaluate_robustness_rows(dataset_root, tiny_model_dir):
    from sklearn.metrics import roc_auc_score

    from musicbrain_cli.model.inference import Detector

    det = Detector.from_pretrained(tiny_model_dir, device="cpu")
    keys = ["original", "mp3_128", "noise_20db", "pitch_+1", "trim_10s", HELD_OUT_SOUNDFONT]
    rows = evaluate_robustness(dataset_root, det, transforms=keys)
    assert [r["key"] for r in rows] == keys
    for r in rows:
        n = (1, 1) if r["key"] == HELD_OUT_SOUNDFONT else (3, 3)
        assert (r["n_human"], r["n_ai"]) == n and r["failed"] == 0
        assert 0.0 <= r["roc_auc"] <= 1.0 and 0.0 <= r["fpr"] <= 1.0 and 0.0 <= r["tpr"] <= 1.0
        lo, hi = r["fpr_ci95"]
        assert 0.0 <= lo <= r["fpr"] <= hi <= 1.0
        assert sum(r["verdicts"]["human"].values()) == r["n_human"]
        assert r["ai_verdicts_on_human"] == r["verdicts"]["human"].get("ai", 0) / r["n_human"]
        assert r["ood_flagged"] is None                          # the tiny model has no OOD stats
    assert rows[-1]["split"] == "test_xsf" and "held out" in rows[-1]["note"]
    assert "6 of 6 clips no longer than 10 s left as is" in rows[4]["note"]
    p, truth = _direct(det, dataset_root, "test")
    thr = det.thresholds["source/ai"]
    orig = rows[0]
    assert orig["roc_auc"] == pytest.approx(roc_auc_score(truth, p))
    assert orig["fpr"] == pytest.approx(np.mean(p[~truth] >= thr))
    assert orig["tpr"] == pytest.approx(np.mean(p[truth] >= thr))
    # the noise changes the input, so the model's outputs (hence the row) are recomputed
    noisy = [r for r in rows if r["key"] == "noise_20db"][0]
    assert noisy["roc_auc"] is not None


def test_out_of_domain_stats_feed_the_verdict(dataset_root, model_copy):
    """With a threshold no clip can meet, every clip is out of domain -> inconclusive."""
    from musicbrain_cli.model.inference import Detector
    from musicbrain_cli.model.ood import OODStats

    det = Detector.from_pretrained(model_copy, device="cpu")
    d = det.model.embed_dim
    OODStats(means=np.zeros((2, d)), precision=np.eye(d)).save(model_copy)
    card_path = model_copy / "model_card.json"
    card = json.loads(card_path.read_text())
    card["ood"] = {"threshold": 1e-9, "method": "test"}
    card_path.write_text(json.dumps(card))
    det = Detector.from_pretrained(model_copy, device="cpu")
    (row,) = evaluate_robustness(dataset_root, det, transforms=["original"])
    assert row["ood_flagged"] == 1.0
    assert row["verdicts"] == {"human": {"inconclusive": 3}, "ai": {"inconclusive": 3}}
    assert row["ai_verdicts_on_human"] == 0.0


def test_max_clips_is_balanced_and_unknown_keys_fail(dataset_root, tiny_model_dir):
    from musicbrain_cli.model.inference import Detector

    det = Detector.from_pretrained(tiny_model_dir, device="cpu")
    (row,) = evaluate_robustness(dataset_root, det, transforms=["gain_-6db"], max_clips=2)
    assert (row["n_human"], row["n_ai"]) == (1, 1)
    with pytest.raises(InputError, match="unknown transform 'mp3_999'"):
        evaluate_robustness(dataset_root, det, transforms=["mp3_999"])


def test_write_and_update_card_round_trip(dataset_root, model_copy, tmp_path):
    from musicbrain_cli.model.inference import Detector

    det = Detector.from_pretrained(model_copy, device="cpu")
    rows = evaluate_robustness(dataset_root, det, transforms=["original", HELD_OUT_SOUNDFONT],
                               max_clips=2)
    js, md = write_robustness(rows, tmp_path / "out", model=det.card)
    on_disk = json.loads(js.read_text())
    assert on_disk["rows"] == rows
    assert on_disk["model"]["weights_sha256"] == det.card["weights_sha256"]
    text = md.read_text()
    assert det.card["weights_sha256"] in text
    assert "| Original (as decoded) | test | 1 + 1 |" in text and "Held-out SoundFont" in text
    with pytest.raises(InputError, match="exists"):
        write_robustness(rows, tmp_path / "out")

    before = json.loads((model_copy / "model_card.json").read_text())
    with pytest.raises(ModelLoadError, match="other weights"):
        update_card(model_copy, rows, weights_sha256="0" * 64)
    assert json.loads((model_copy / "model_card.json").read_text()) == before
    update_card(model_copy, rows, weights_sha256=det.card["weights_sha256"])
    again = Detector.from_pretrained(model_copy, device="cpu")   # checks the weights' SHA-256
    assert again.card["robustness"] == rows
    assert again.card["weights_sha256"] == before["weights_sha256"]
    # a later run of one transform replaces that row and keeps the others (it dropped them)
    (gain,) = evaluate_robustness(dataset_root, det, transforms=["gain_-6db"], max_clips=2)
    moved = {**rows[0], "roc_auc": 0.5, "note": "measured again"}
    card = update_card(model_copy, [gain, moved], weights_sha256=det.card["weights_sha256"],
                       measured_on={"data_set": "elsewhere", "max_clips_per_split": 2})
    stamped = {"measured_on": {"data_set": "elsewhere", "max_clips_per_split": 2}}
    assert card["robustness"] == [{**moved, **stamped}, rows[1], {**gain, **stamped}]
    assert Detector.from_pretrained(model_copy, device="cpu").card["robustness"] == card["robustness"]


def test_cli_evaluate_robustness(dataset_root, model_copy, tmp_path):
    from click.testing import CliRunner

    from musicbrain_cli.cli import main

    out = tmp_path / "eval"
    args = ["evaluate", "--data", str(dataset_root), "--model", str(model_copy), "-o", str(out),
            "--robustness", "--transforms", "original,gain_+6db", "--max-clips", "2",
            "--update-card", "--device", "cpu"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    rows = json.loads((out / "robustness.json").read_text())["rows"]
    assert [r["key"] for r in rows] == ["original", "gain_+6db"]
    card = json.loads((model_copy / "model_card.json").read_text())
    stored = [{k: v for k, v in r.items() if k != "measured_on"} for r in card["robustness"]]
    assert stored == rows and {r["measured_on"]["max_clips_per_split"] for r in card["robustness"]} == {2}
    assert card["robustness"][0]["measured_on"]["data_set"] == str(dataset_root.resolve())
    assert "Gain +6 dB" in res.output
    res = CliRunner().invoke(main, args)                         # no silent overwrite
    assert res.exit_code == 2 and "exists" in res.output
    # a split the data set lacks measures nothing: said, and not exit 0 (review of session 47)
    none = CliRunner().invoke(main, ["evaluate", "--data", str(dataset_root), "--model",
                                     str(model_copy), "-o", str(tmp_path / "none"), "--robustness",
                                     "--split", "test_xsf", "--transforms", "held_out_soundfont",
                                     "--device", "cpu"])
    assert none.exit_code == 1 and "no transform measured any clip" in none.output, none.output


def test_hard_clipping_drives_the_peak_over_full_scale_and_cuts_it():
    y = _melody(2.0) * 0.5
    z = _run("clip_6db", y)
    drive = 10 ** (6 / 20) / np.abs(y).max()
    assert np.abs(z).max() == pytest.approx(1.0)
    loud = np.abs(y) * drive > 1.0
    assert 0.01 < loud.mean() < 0.9                       # some samples cut, not all
    np.testing.assert_allclose(z[loud], np.sign(y[loud]), rtol=0, atol=1e-6)
    np.testing.assert_allclose(z[~loud], y[~loud] * drive, rtol=1e-5, atol=1e-7)
    with pytest.raises(TransformError, match="silent"):
        _run("clip_6db", np.zeros(SR, np.float32))


@pytest.mark.parametrize("key, rt60, dry", [("reverb_hall", 2.0, 0.7), ("reverb_room", 0.8, 0.8)])
def test_reverb_decays_at_its_rt60_keeps_the_level_and_is_seeded(key, rt60, dry):
    click = np.zeros(3 * SR, np.float32)
    click[0] = 1.0
    z = _run(key, click, seed=2).astype(np.float64)
    assert z.size == click.size
    assert z[0] == pytest.approx(np.sqrt(dry), abs=0.1)        # the dry click, and the room's start

    def rms_db(a, b):
        return 10 * np.log10(np.mean(z[int(a * SR):int(b * SR)] ** 2))

    # 60 dB over rt60: between 0.1-0.2 s and 0.1 + rt60/2 s later, 30 dB
    later = 0.1 + rt60 / 2
    assert rms_db(0.1, 0.2) - rms_db(later, later + 0.1) == pytest.approx(30.0, abs=4.0)
    y = _melody(4.0)
    r = _run(key, y, seed=2)
    assert _db(np.mean(r.astype(np.float64) ** 2) / np.mean(y.astype(np.float64) ** 2)) == \
        pytest.approx(0.0, abs=2.0)
    assert np.array_equal(r, _run(key, y, seed=2))
    assert not np.array_equal(r, _run(key, y, seed=3))
    assert 0.5 < np.corrcoef(r, y)[0, 1] < 0.99               # the dry music, with a room
