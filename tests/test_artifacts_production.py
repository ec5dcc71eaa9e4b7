"""Human production for the artifact line's corpus (artifacts/production.py) and its wiring.

Each effect is checked for the physics it stands for (the periodic lines it puts into a
spectrum, or the pitch it moves), the draws for being seeded, and the corpus and the
held-out audit for putting production on both sides and on held-out human clips only.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from musicbrain_cli.artifacts import corpus, production as prod
from musicbrain_cli.artifacts.detector import analyse_samples

RATE = 44100


def _spectrum(y: np.ndarray, rate: int) -> tuple[np.ndarray, np.ndarray]:
    mag = np.abs(np.fft.rfft(y * np.hanning(y.size)))
    return np.fft.rfftfreq(y.size, 1.0 / rate), mag


def _noise(seconds: float, rate: int = RATE, seed: int = 0) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(int(seconds * rate))).astype(np.float32)


def test_a_naive_square_at_a_rate_divisor_is_a_comb_at_that_spacing():
    # Its aliases fold onto its own harmonics: the periodic lines a decoder's comb also makes,
    # which is why the corpus must hold it on the human side.
    y = prod.square_drone(_noise(12.0) * 0.1, RATE, freq_hz=RATE / 200, level_dbfs=-30.0)
    a = analyse_samples(y, RATE)
    assert a.comb.spacing_hz == pytest.approx(RATE / 200, rel=0.01)
    assert a.comb.teeth >= 10
    clean = analyse_samples(_noise(12.0) * 0.1, RATE)
    assert clean.comb.teeth < a.comb.teeth


def test_the_drone_is_added_at_its_level():
    silent = np.zeros(RATE, dtype=np.float32)
    y = prod.square_drone(silent, RATE, freq_hz=220.0, level_dbfs=-40.0)
    assert np.max(np.abs(y)) == pytest.approx(10 ** (-40 / 20), rel=1e-5)
    assert set(np.unique(np.sign(y))) == {-1.0, 1.0}


def test_sample_and_hold_puts_images_above_the_held_rate():
    # Noise band-limited below 2 kHz; holding every 8th sample images it around multiples of
    # rate / 8 = 5.5 kHz, where the original had (almost) nothing.
    from scipy.signal import butter, sosfilt

    low = sosfilt(butter(8, 2000, fs=RATE, output="sos"), _noise(4.0)).astype(np.float32)
    held = prod.rate_reducer(low, RATE, hold=8)
    f, before = _spectrum(low, RATE)
    _, after = _spectrum(held, RATE)
    band = (f > RATE / 8 - 1500) & (f < RATE / 8 + 1500)
    assert after[band].mean() > 30 * before[band].mean()
    assert held.size == low.size
    assert np.allclose(prod.rate_reducer(low, RATE, hold=8, wet=0.0), low)


def test_pilot_tone_lies_at_its_frequency_on_a_16_bit_grid():
    y = prod.pilot_tone(_noise(1.0) * 0.01, RATE, freq_hz=15625.0, level_dbfs=-30.0)
    f, mag = _spectrum(y, RATE)
    assert f[np.argmax(mag)] == pytest.approx(15625.0, abs=2.0)
    assert np.allclose(y * 32767.0, np.round(y * 32767.0), atol=1e-3)


def test_tracker_playback_moves_pitch_by_its_semitones_and_keeps_the_length():
    t = np.arange(2 * RATE) / RATE
    y = np.sin(2 * np.pi * 440.0 * t).astype(np.float32)
    up = prod.tracker_playback(y, RATE, semitones=5)
    f, mag = _spectrum(up, RATE)
    assert f[np.argmax(mag)] == pytest.approx(440.0 * 2 ** (5 / 12), rel=0.005)
    assert prod.tracker_playback(y, RATE, semitones=-3).size == y.size


def test_resampling_round_trip_and_time_stretch_keep_the_clip_length():
    y = _noise(3.0)
    assert prod.resample_roundtrip(y, RATE, via_hz=22050).size == y.size
    slower = prod.time_stretch(y, RATE, factor=0.9)
    assert slower.size == y.size and np.isfinite(slower).all()
    # band limit of the 22.05 kHz stop: nothing left above 11.025 kHz
    f, mag = _spectrum(prod.resample_roundtrip(y, RATE, via_hz=22050), RATE)
    _, orig = _spectrum(y, RATE)
    assert mag[f > 12000].mean() < 0.01 * orig[f > 12000].mean()


def test_draws_are_seeded_and_reach_every_kind():
    y = _noise(1.0)
    first = [prod.apply(y, RATE, np.random.default_rng(7))[1:] for _ in range(2)]
    assert first[0] == first[1]
    rng = np.random.default_rng(0)
    seen = {prod.apply(y, RATE, rng)[1] for _ in range(60)}
    assert seen == set(prod.EFFECTS)


def test_audit_settings_cover_every_kind_once_per_label_and_respect_the_band():
    for rate in (22050, 32000, 44100, 48000):
        settings = prod.audit_settings(rate)
        labels = [label for _, label, _ in settings]
        assert len(labels) == len(set(labels))
        has_room = 0.45 * rate > min(prod.PILOT_HZ)  # no pilot tone above a low rate's band
        assert {kind for kind, _, _ in settings} == set(prod.EFFECTS) - (set() if has_room else {"pilot_tone"})
        for kind, _, s in settings:
            if kind == "pilot_tone":
                assert s["freq_hz"] < 0.45 * rate
            if kind == "resample_roundtrip":
                assert s["via_hz"] != rate
    assert not any(s["freq_hz"] == 19000.0 for k, _, s in prod.audit_settings(32000) if k == "pilot_tone")


def _debian_tree(root, split="test-2026-12", files=3, seconds=20.0, rel="x/pkg{i}/song{i}.flac"):
    """A manifest with ``files`` synthetic recordings (noise plus chords) in ``split``, at
    paths ``rel.format(i=...)``."""
    from musicbrain_cli.audio.encode import Format, encode_audio

    rels = []
    pattern = rel
    for i in range(files):
        t = np.arange(int(seconds * RATE)) / RATE
        y = 0.2 * np.sin(2 * np.pi * (220 + 55 * i) * t) + _noise(seconds, seed=i)
        rel = pattern.format(i=i)
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        encode_audio(root / rel, y.astype(np.float32), RATE, spec=Format("flac", "flac"))
        rels.append(rel)
    (root / "manifest.json").write_text(json.dumps([{"package": "pkg", "split": split, "files": rels}]))


def test_the_audit_writes_each_clip_untouched_and_with_every_setting(tmp_path):
    _debian_tree(tmp_path / "deb")
    items = corpus.build_audit(tmp_path / "audit", debian_root=tmp_path / "deb", split="test-2026-12", clips=2)
    per_clip = 1 + len(prod.audit_settings(RATE))
    assert len(items) == 2 * per_clip
    assert all(i.label == 0 and i.split == "audit:test-2026-12" for i in items)
    assert sum(i.production == "" for i in items) == 2
    assert len({i.path for i in items}) == len(items)
    saved = json.loads((tmp_path / "audit" / "items.json").read_text())
    assert [d["id"] for d in saved] == [i.id for i in items]
    with pytest.raises(ValueError, match="no human clips"):
        corpus.build_audit(tmp_path / "a2", debian_root=tmp_path / "deb", split="validation")


def test_files_named_alike_in_sibling_folders_get_clips_of_their_own(tmp_path):
    # megaglest-data holds tilesets/fernland/sounds/day.ogg and tilesets/spring/sounds/day.ogg:
    # named by parent folder and stem, both were "sounds-day" and their audit files and uploads
    # were written over each other (and the features step kept one row per file).
    _debian_tree(tmp_path / "deb", files=3, rel="x/pkg/tilesets/set{i}/sounds/day.flac")
    ids = [cid for cid, *_ in corpus.human_clips(tmp_path / "deb", "test-2026-12", per_file=1)]
    assert ids == [f"pkg/set{i}-sounds-day/0" for i in range(3)]
    items = corpus.build_audit(tmp_path / "audit", debian_root=tmp_path / "deb", split="test-2026-12", clips=3)
    assert len({i.path for i in items}) == len(items) == 3 * (1 + len(prod.audit_settings(RATE)))
    # names that were unique keep their two-part form (the ids of corpora built before)
    assert corpus.clip_names(["x/p/music/a.ogg", "x/p/music/b.ogg", "x/p/sfx/a.ogg"]) == {
        "x/p/music/a.ogg": "music-a", "x/p/music/b.ogg": "music-b", "x/p/sfx/a.ogg": "sfx-a"}
    with pytest.raises(ValueError, match="twice"):
        corpus.clip_names(["x/p/a.ogg", "x/p/a.ogg"])


def test_two_items_on_one_file_are_refused_not_overwritten():
    a = corpus.Item("split/human/a", "split", 0, "pkg", "human", "", "flac", "/c/x.flac")
    b = corpus.Item("split/human/b", "split", 0, "pkg", "human", "", "flac", "/c/x.flac")
    corpus._one_file_per_item([a])
    with pytest.raises(ValueError, match="both written to /c/x.flac"):
        corpus._one_file_per_item([a, b])


def test_a_human_only_split_gets_production_copies_beside_its_plain_uploads(tmp_path, monkeypatch):
    _debian_tree(tmp_path / "deb", files=4)
    items = corpus.build_corpus(tmp_path / "c", debian_root=tmp_path / "deb", midi_root=tmp_path / "none",
                                splits=("test-2026-12",))
    plain = [i for i in items if not i.production]
    produced = [i for i in items if i.production]
    assert plain and produced
    assert {i.production for i in produced} <= set(prod.EFFECTS)
    assert all(i.label == 0 for i in items)
    # each production copy is of a clip that also has its plain uploads
    clips = {i.id.rsplit("/", 1)[0] for i in plain}
    assert all(i.id.rsplit("/", 2)[0] in clips for i in produced)
    # production has its own generator: without it the plain uploads are drawn the same
    monkeypatch.setattr(corpus, "PRODUCTION_SHARE", 0.0)
    without = corpus.build_corpus(tmp_path / "c2", debian_root=tmp_path / "deb", midi_root=tmp_path / "none",
                                  splits=("test-2026-12",))
    assert [i.id for i in without] == [i.id for i in plain]


def _feature_rows(rng: np.random.Generator) -> list[dict]:
    """Feature rows in the shape corpus.extract_features writes: decoded clips have a strong,
    full comb off any musical pitch; human ones a weak one, some on a pitch; every split."""
    from musicbrain_cli.artifacts.detector import FEATURES

    rows = []
    spec = {"train": (60, 60), "validation": (60, 30), "test": (40, 40), "test-fresh": (20, 0),
            "test-final": (20, 0), "test-latest": (20, 0), "test-2026-12": (30, 0)}
    for split, (humans, decoded) in spec.items():
        for label, n in ((0, humans), (1, decoded)):
            for i in range(n):
                strong = label == 1
                f = np.zeros(len(FEATURES))
                f[0] = rng.uniform(20, 60) if strong else rng.uniform(0.5, 8)   # comb_log10_p
                f[1] = np.log1p(rng.integers(20, 80) if strong else rng.integers(3, 12))
                f[2] = rng.uniform(0.6, 1.0) if strong else rng.uniform(0.0, 0.4)
                f[3] = rng.uniform(0.3, 0.6) if strong else rng.uniform(0.0, 0.2)
                f[4:7] = rng.uniform(1, 6, 3)
                f[7] = 1.0 if strong or i % 3 == 0 else 0.0
                f[8] = rng.uniform(0.3, 1.0) if strong else rng.uniform(0.0, 0.5)
                spacing = 60.0 if strong and i == 0 else 86.13 if strong else 220.0
                rows.append({"id": f"{split}/{label}/{i}", "split": split, "label": label,
                             "source": f"pkg{i % 4}", "family": "tconv" if label else "human",
                             "decoder": f"tconv-8x8-44k-{'trained' if i % 2 else 'random'}" if label else "",
                             "transform": "flac", "production": "square_drone" if i % 5 == 0 else "",
                             "na": None, "features": f.tolist(), "spacing_hz": spacing,
                             "rate": 44100, "bandwidth_hz": 16000.0})
    return rows


def test_fit_records_doubt_threshold_new_split_audit_and_mains_guard(tmp_path):
    from musicbrain_cli.artifacts.detector import ArtifactDetector
    from musicbrain_cli.artifacts.fit import DOUBT_SHARE, fit_and_ship

    rng = np.random.default_rng(3)
    rows = _feature_rows(rng)
    audit = [{**r, "split": "audit:test-2026-12", "production": "square_drone:220Hz@-30dBFS"}
             for r in rows if r["split"] == "test-2026-12"][:10]
    fit_and_ship(rows, tmp_path, seed=0, data_card="card.md", command="test", audits=[audit])
    model = json.loads((tmp_path / "model.json").read_text())
    card = json.loads((tmp_path / "card.json").read_text())
    assert 0 < model["doubt_threshold"] <= model["threshold"]
    det = ArtifactDetector.from_pretrained(tmp_path)
    val_h = [det.p_ai(np.array(r["features"])) for r in rows if r["split"] == "validation" and r["label"] == 0]
    assert sum(p >= model["doubt_threshold"] for p in val_h) <= DOUBT_SHARE * len(val_h)
    summary = card["summary"]
    assert summary["human_withheld_by_doubt"]["validation"]["n"] == 60
    assert summary["false_accusations_human_test_2026_12"]["n"] == 30
    assert summary["false_accusations_human_production_audit"]["n"] == 10
    assert card["production_audit"]["called_ai_per_production"]["human/square_drone:220Hz@-30dBFS"]["n"] == 10
    assert card["test"]["called_ai_per_production"]["human/square_drone"]["n"] == 8
    # the decoded test clip at 60 Hz reaches the operating point and is withdrawn by the rule
    guard = summary["mains_hum_guard"]
    assert guard["decoded_accusations_withdrawn"]["k"] == 1
    assert card["test"]["recall"]["k"] == guard["decoded_accusations_withdrawn"]["n"] - 1


@pytest.mark.parametrize("transform", ["flac", "mp3_128", "aac_128+mp3_96"])
def test_uploads_of_stems_with_dots_keep_their_whole_name(tmp_path, transform):
    # Package and song names carry dots ("wesnoth-1.16-music", "Mike_Errecart.-.Monkey"): with
    # Path.with_suffix every upload of such a package landed in one file, silently overwriting
    # the others (the corpus kept one row per file and lost the rest).
    y = _noise(1.0)
    stems = [tmp_path / f"wesnoth-1.16-music__song-{i}__0__{transform}" for i in range(3)]
    paths = [corpus.write_upload(s, y, RATE, transform) for s in stems]
    assert len(set(paths)) == 3 and all(p.is_file() for p in paths)
    assert all(p.name.startswith(s.name + ".") for p, s in zip(paths, stems))
    assert sorted(q.name for q in tmp_path.iterdir()) == sorted(p.name for p in paths)  # no temporary left


def test_a_rate_measured_after_shipping_goes_into_the_card_and_reports_name_it(tmp_path):
    from musicbrain_cli.artifacts.detector import PACKAGE_DIR
    from musicbrain_cli.artifacts.fit import rate_with_interval, record_after_shipping
    from musicbrain_cli.errors import TrainingError
    from musicbrain_cli.report.html import _held_out_false_accusations

    for name in ("model.json", "card.json"):
        (tmp_path / name).write_text((PACKAGE_DIR / "default" / name).read_text())
    before = json.loads((tmp_path / "card.json").read_text())
    with pytest.raises(TrainingError, match="measured on"):
        record_after_shipping(tmp_path, "new_set", rate_with_interval(3, 311), measured_on="")
    out = record_after_shipping(tmp_path, "new_set", rate_with_interval(3, 311), measured_on="eight packages")
    card = json.loads((tmp_path / "card.json").read_text())
    added = card["summary"].pop("false_accusations_human_new_set")
    assert card == before and (added["k"], added["n"], added["measured_after_shipping"]) == (3, 311, True)
    assert out["card.json"] == hashlib.sha256((tmp_path / "card.json").read_bytes()).hexdigest()
    card["summary"]["false_accusations_human_new_set"] = added
    phrases = _held_out_false_accusations(card["summary"])
    assert any(p.startswith("new-set (measured after the line shipped) 3 of 311") for p in phrases)


def test_the_fit_learns_that_a_two_level_period_is_a_drone_and_never_counts_it_for_ai():
    # Human uploads with a naive pulse drone have a decoder's comb; only the period's two levels
    # tell them apart. The fit must use that, and may only lower P(AI) along it (monotone).
    from musicbrain_cli.artifacts.detector import FEATURES, ArtifactDetector
    from musicbrain_cli.artifacts.fit import fit_model

    rng = np.random.default_rng(5)
    rows = _feature_rows(rng)
    col = FEATURES.index("two_level_share")
    decoded = [r for r in rows if r["label"] == 1]
    for r in rows:
        if r["label"] == 1:
            r["features"][col] = float(rng.uniform(0.5, 0.85))
        elif int(r["id"].rsplit("/", 1)[1]) % 3 == 0:      # a third of the humans: a drone's comb
            like = decoded[int(rng.integers(len(decoded)))]["features"]
            r["features"] = list(like[:col]) + [float(rng.uniform(0.97, 1.0))]
    model = fit_model([r for r in rows if r["split"] in ("train", "validation")], seed=0)
    det = ArtifactDetector(model)
    x = np.array(decoded[0]["features"])
    curve = []
    for v in np.linspace(0.0, 1.0, 21):
        x[col] = v
        curve.append(det.p_ai(x))
    assert all(b <= a + 1e-12 for a, b in zip(curve, curve[1:]))          # never rises
    assert curve[-1] < curve[0]                                           # and it is used
    drones = [det.p_ai(np.array(r["features"])) for r in rows
              if r["split"] == "test" and r["label"] == 0 and r["features"][col] > 0.9]
    test_dec = [det.p_ai(np.array(r["features"])) for r in rows if r["split"] == "test" and r["label"] == 1]
    assert drones and max(drones) < det.threshold <= np.median(test_dec)
    # Rows that would teach an unconstrained fit the opposite somewhere (decoder-like humans
    # with a many-level period): P(AI) still never rises with the two-level share.
    for r in rows:
        if r["label"] == 0 and int(r["id"].rsplit("/", 1)[1]) % 3 == 1:
            like = decoded[int(rng.integers(len(decoded)))]["features"]
            r["features"] = list(like[:col]) + [float(rng.uniform(0.2, 0.45))]
    det = ArtifactDetector(fit_model([r for r in rows if r["split"] in ("train", "validation")], seed=0))
    for r in decoded[:10]:
        x = np.array(r["features"])
        curve = []
        for v in np.linspace(0.0, 1.0, 21):
            x[col] = v
            curve.append(det.p_ai(x))
        assert all(b <= a + 1e-12 for a, b in zip(curve, curve[1:]))


def test_compare_puts_fitted_lines_side_by_side_on_the_same_rows_and_audits():
    from musicbrain_cli.artifacts.detector import ArtifactDetector
    from musicbrain_cli.artifacts.fit import compare, evaluate, fit_model

    rows = _feature_rows(np.random.default_rng(7))
    model = fit_model(rows, seed=0)
    model["doubt_threshold"] = 0.3
    strict = {**model, "threshold": 0.999999, "doubt_threshold": 0.9}
    audit = [{**r, "split": "audit:test-2026-12"} for r in rows if r["split"] == "test" and r["label"] == 0][:12]
    res = compare({"fitted": model, "strict": strict}, rows, [audit])
    fitted, tight = res["fitted"]["splits"], res["strict"]["splits"]
    assert set(fitted) == {"train", "validation", "test", "test-fresh", "test-final", "test-latest",
                           "test-2026-12", "audit:test-2026-12"}
    assert fitted["test"]["decoded_at_operating_point"] == evaluate(model, [r for r in rows if r["split"] == "test"])["recall"]
    assert "decoded_at_operating_point" not in fitted["test-fresh"] and fitted["audit:test-2026-12"]["human_at_operating_point"]["n"] == 12
    det = ArtifactDetector(model)
    humans = [r for r in rows if r["split"] == "test" and r["label"] == 0]
    assert fitted["test"]["human_at_doubt"]["k"] == sum(det.p_ai(np.array(r["features"])) >= 0.3 for r in humans)
    for split in fitted:                        # a stricter line never reaches more of anything
        for key in ("human_at_operating_point", "human_at_doubt", "decoded_at_operating_point"):
            if key in fitted[split]:
                assert tight[split][key]["k"] <= fitted[split][key]["k"]
    assert tight["test"]["decoded_at_operating_point"]["k"] < fitted["test"]["decoded_at_operating_point"]["k"]
