"""``musicbrain evaluate`` end to end on a tiny data set and a tiny untrained model."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from musicbrain_cli.errors import DatasetError, InputError

SR = 22050


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    import pretty_midi

    from musicbrain_cli.features import FrontEndConfig
    from musicbrain_cli.model.checkpoint import default_card
    from musicbrain_cli.model.config import ModelConfig
    from musicbrain_cli.model.inference import Detector
    from musicbrain_cli.model.net import build_model
    from musicbrain_cli.taxonomy import Taxonomy
    from musicbrain_cli.data.dataset import ClipRecord, Dataset, DatasetWriter

    root = tmp_path_factory.mktemp("data")
    taxonomy = Taxonomy.from_groups([("source", ["human", "ai"], True),
                                     ("period", ["Baroque", "Romantic"], True)])
    rng = np.random.default_rng(0)
    with DatasetWriter(root, taxonomy, sample_rate=SR, name="tiny") as w:
        for i, (source, period, pitch) in enumerate([("human", "Baroque", 57), ("ai", "Romantic", 60),
                                                     ("ai", "", 64), ("human", "Romantic", 52)]):
            t = np.arange(int(SR * 3.0)) / SR
            f = 440.0 * 2 ** ((pitch - 69) / 12)
            y = sum(0.5 ** h * np.sin(2 * np.pi * f * (h + 1) * t) for h in range(4))
            y = (0.3 * y * (t % 1.0 < 0.8) + 0.01 * rng.standard_normal(t.size)).astype(np.float32)
            score = None
            if i % 2 == 0:  # half the clips have a score, the rest use the pitch estimate
                score = pretty_midi.PrettyMIDI()
                inst = pretty_midi.Instrument(program=0)
                inst.notes += [pretty_midi.Note(velocity=80, pitch=pitch, start=s, end=s + 0.8)
                               for s in (0.0, 1.0, 2.0)]
                score.instruments.append(inst)
            w.add(ClipRecord(f"clip{i}", source=source, period=period, work_id=f"w{i}",
                             split="test", score=score), y)
    fe = FrontEndConfig(n_bins=64, window_s=2.56, hop_s=1.28)
    config = ModelConfig(front_end=fe, taxonomy=taxonomy)
    torch.manual_seed(0)
    detector = Detector(build_model(config), config, default_card(), device="cpu")
    return Dataset.load(root), detector


def test_evaluate_writes_metrics_and_figures(setup, tmp_path):
    from musicbrain_cli.evaluate.split import evaluate

    dataset, detector = setup
    out = tmp_path / "eval"
    m = evaluate(dataset, detector, out, explain_windows=2, n_figures=1, fidelity_steps=4,
                 n_random=1, occlusion_patch=(32, 64), event_clips=3)
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk == m
    assert m["clips"] == m["clips_scored"] == 4 and m["failed"] == []
    # which data the figures are of (audit, session 26: nothing said it)
    from musicbrain_cli.files import sha256_file

    manifest = sha256_file(dataset.root / "manifest.csv")
    assert m["data"] == {"path": str(dataset.root), "manifest_sha256": manifest}
    assert manifest in (out / "metrics.md").read_text()
    ap = m["classification"]["ap"]
    assert set(ap) == {"source/human", "source/ai", "period/Baroque", "period/Romantic"}
    assert all(0.0 <= v <= 1.0 for v in ap.values())
    assert m["style"]["map_by_group"] == {"period": pytest.approx(np.mean([ap["period/Baroque"],
                                                                          ap["period/Romantic"]]))}
    assert m["style"]["map_macro"] == m["style"]["map_mean_of_groups"]    # one group scored
    r = m["detection"]["at_threshold"]
    assert r["tp"] + r["fn"] == 2 and r["fp"] + r["tn"] == 2   # two ai, two human clips
    assert 0.0 <= m["detection"]["roc_auc"] <= 1.0
    f = m["fidelity"]
    assert f["windows"] == 2 and f["weighting"] == "channel"    # the published recipe
    assert set(f["deletion_auc"]) == {"saliency", "random", "random_grid", "occlusion"}
    assert f["random_grid"][0] == 64 // 4        # the fused map: a quarter of the mel bands
    assert 0.0 <= f["beats_random_grid_share"] <= 1.0
    split = f["by_target_group"]   # 2 windows x 3 targets: source and style labels, and per group
    assert set(split) == {"source", "style", "style/period"}
    assert split["source"]["targets"] + split["style"]["targets"] == 6
    assert split["style/period"] == split["style"]          # the only style group here
    # Top 3 of 2 source + 2 period labels: each window explains at least one of each kind.
    assert split["source"]["targets"] >= 2 and split["style"]["targets"] >= 2
    for name in f["insertion_auc"]:     # the per-target AUCs average back to the overall ones
        for mode in ("deletion_auc", "insertion_auc"):
            pooled = sum(split[g][mode][name] * split[g]["targets"] for g in ("source", "style")) / 6
            assert pooled == pytest.approx(f[mode][name], abs=1e-9)
    assert "The top style label alone (2 windows)" in (out / "metrics.md").read_text()
    v = f["verdict"]      # the verdict's label explained and followed by itself
    assert v["windows"] == 2 and set(v["deletion_auc"]) == set(f["deletion_auc"])
    assert all(0.0 <= x <= 1.0 for x in [*v["deletion_auc"].values(), *v["insertion_auc"].values()])
    assert v["deletion_auc"] != f["deletion_auc"]          # a different map and target
    sa = f["style_alone"]   # each window's top style label explained and followed by itself
    assert sa["windows"] == 2 and set(sa["by_group"]) == {"period"}
    assert sa["by_group"]["period"]["windows"] == 2
    assert set(sa["deletion_auc"]) == set(f["deletion_auc"])
    assert sa["deletion_auc"] != v["deletion_auc"] and sa["deletion_auc"] != f["deletion_auc"]
    assert f["clips"] == ["clip0", "clip3"]          # spread over the split, not its head
    a = m["alignment"]
    # not a reference corpus (no reference.json): the stored score is the truth as it is
    assert a["notes_source"] == {"played": 0, "score": 1, "estimated": 1}
    assert "stored score" in a["truth"] and "played" not in a["truth"] and a["replay_failed"] == []
    assert 0.0 < a["harmonic"]["chance"] < 1.0 and a["onset"]["onsets"] > 0
    # the verdict's own map is aligned too, and so is the windows' own energy (the reference
    # every map is read against), each with intervals
    for part in (a, a["verdict"], a["energy_reference"]):
        h, o = part["harmonic"], part["onset"]
        assert h["lift"] == pytest.approx(h["share"] / h["chance"])
        assert o["hit_lift"] == pytest.approx(o["hit_rate"] / o["chance_hit_rate"])
        assert len(h["lift_ci95"]) == len(o["hit_lift_ci95"]) == 2
    # same notes and cells, another map: chance is shared, the share is the reference's own
    assert a["energy_reference"]["harmonic"]["chance"] == pytest.approx(a["harmonic"]["chance"])
    assert a["energy_reference"]["harmonic"]["share"] != pytest.approx(a["harmonic"]["share"])
    assert "| input energy (reference) |" in (out / "metrics.md").read_text()
    # each map over the reference on the same windows: the ratio of the pooled figures
    for key, part in (("fused", a), ("verdict", a["verdict"])):
        over = a["over_reference"][key]
        assert over["harmonic_share"]["ratio"] == pytest.approx(
            part["harmonic"]["share"] / a["energy_reference"]["harmonic"]["share"])
        # two windows of two works: too few to resample, so no interval is claimed
        assert over["harmonic_share"]["ratio_ci95"] == over["onset_hit_rate"]["ratio_ci95"] \
            == [None, None]
    assert "share on partials / reference's" in (out / "metrics.md").read_text()
    assert m["labels_coverage"] == {"scored": m["labels"], "model_only": [], "data_only": []}
    for p in m["figures"]["pr_curves"] + m["figures"]["fmgcam"]:
        assert (out / p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(m["figures"]["fmgcam"]) == 1 and len(m["figures"]["pr_curves"]) == 4
    # predictions.csv reproduces the figures without the model
    assert m["predictions"] == "predictions.csv"
    with (out / "predictions.csv").open(newline="") as f:
        pred = list(csv.DictReader(f))
    assert [r["clip_id"] for r in pred] == ["clip0", "clip1", "clip2", "clip3"]
    from sklearn.metrics import roc_auc_score
    p_ai = [float(r["source/ai"]) for r in pred]
    assert roc_auc_score([0, 1, 1, 0], p_ai) == pytest.approx(m["detection"]["roc_auc"], abs=1e-12)
    romantic = [float(pred[i]["period/Romantic"]) for i in (0, 1, 3)]   # clip2's period unknown
    from sklearn.metrics import average_precision_score
    assert average_precision_score([0, 1, 1], romantic) == pytest.approx(ap["period/Romantic"], abs=1e-12)
    band = m["faithfulness"]["band_removal"]      # one band test per explained window and map
    assert band["fused"]["windows"] == band["verdict"]["windows"] == 2 and band["fused"]["width"] == 16
    assert band["fused"]["mean_difference"] == pytest.approx(
        band["fused"]["marked_drop"] - band["fused"]["random_drop"], abs=1e-12)
    event = m["faithfulness"]["rhythmic_event"]
    assert event["fused"]["clips"] == event["verdict"]["clips"] == event["energy_reference"]["clips"] == 3
    assert event["instrumentation"] is None        # this taxonomy has no instrumentation group
    assert 0.0 < event["fused"]["chance"] < 0.2 and event["fused"]["tolerance_s"] == 0.1
    # chance counts only the positions searched (the middle 60 % of the clip)
    assert event["energy_reference"]["chance"] == pytest.approx(event["fused"]["chance"])
    # read as a step (the figures above) and, as before, as the largest jump between columns
    window = detector.config.front_end.window_s
    assert event["step_s"] == pytest.approx(min(1.0, 0.2 * window))
    frame = event["frame_difference"]
    assert frame["fused"]["clips"] == frame["verdict"]["clips"] == 3 and frame["instrumentation"] is None
    # the step never reaches past the searched span's margin: both count the same positions
    assert frame["fused"]["chance"] == pytest.approx(event["fused"]["chance"])
    md = (out / "metrics.md").read_text()
    assert "Frequency-band removal" in md and "Rhythmic event" in md
    assert f"over the {min(1.0, 0.2 * window):.2f} s after it" in md
    assert "two consecutive columns" in md
    assert "mAP macro" in md and "| period |" in md and "deletion AUC" in md
    assert "The verdict alone (2 windows)" in md and "split by target" in md and "Harmonic" in md
    # intervals and tests count works, not windows (each clip here is its own work)
    assert m["fidelity"]["works"] == ["w0", "w3"]   # the data set's work ids, beside f["clips"]
    assert a["works"] == 2 and band["fused"]["unit"] == "work" and band["fused"]["units"] == 2
    assert "resampling works (2 works" in md and "| fused | 2 (2) |" in md
    # the verdicts counted by work beside the clip counts
    w = m["detection"]["by_work"]
    v = m["detection"]["verdicts"]
    assert w["n_human_works"] == 2 and w["n_ai_works"] == 2
    assert w["human_works_with_a_clip_called_ai"] == v["human"]["ai"]
    assert w["ai_works_with_a_clip_called_human"] == v["ai"]["human"]
    assert f"{w['human_works_with_a_clip_called_ai']} of 2 human works had a clip called `ai`" in md
    with pytest.raises(InputError, match="exists"):
        evaluate(dataset, detector, out, explain_windows=0)


def test_evaluate_empty_split(setup, tmp_path):
    from musicbrain_cli.evaluate.split import evaluate

    dataset, detector = setup
    with pytest.raises(DatasetError, match="'val'"):
        evaluate(dataset, detector, tmp_path / "e", split="val")


def test_cli_evaluate(setup, tmp_path):
    from click.testing import CliRunner

    from musicbrain_cli.cli import main
    from musicbrain_cli.model.checkpoint import save_checkpoint

    dataset, detector = setup
    ckpt = tmp_path / "model"
    save_checkpoint(ckpt, detector.model, detector.config, model_card={"name": "tiny"})
    out = tmp_path / "out"
    args = ["evaluate", "--data", str(dataset.root), "--model", str(ckpt), "-o", str(out),
            "--explain-windows", "0", "--figures", "0", "--device", "cpu"]
    result = CliRunner().invoke(main, args + ["--event-clips", "0"])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "metrics.json").read_text())["clips_scored"] == 4
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 2 and "exists" in again.output
    cell = args[:-6] + ["--explain-windows", "1", "--figures", "0", "--no-occlusion",
                        "--cam-weighting", "cell", "--cam-refine", "gradient-input",
                        "--event-clips", "1", "--overwrite", "--device", "cpu"]
    result = CliRunner().invoke(main, cell)
    assert result.exit_code == 0, result.output
    m = json.loads((out / "metrics.json").read_text())
    assert m["fidelity"]["weighting"] == "cell" and m["fidelity"]["refine"] == "gradient-input"
    assert m["faithfulness"]["rhythmic_event"]["fused"]["clips"] == 1
    text = (out / "metrics.md").read_text()
    assert "cell-weighted, refined by gradient x input, stride pattern of 32 frames removed" in text
    assert m["fidelity"]["destripe"] == 32                    # FM-G-CAM's default
    result = CliRunner().invoke(main, cell[:-5] + ["--cam-destripe", "0"] + cell[-5:])
    assert result.exit_code == 0, result.output
    m = json.loads((out / "metrics.json").read_text())
    assert m["fidelity"]["destripe"] == 0 and m["fidelity"]["refine"] == "gradient-input"
    assert "stride pattern" not in (out / "metrics.md").read_text()
    # a model that is not there is the caller's to fix: exit 2, as in scan (audit, session 26)
    missing = args.copy()
    missing[missing.index("--model") + 1] = str(tmp_path / "nosuch")
    res = CliRunner().invoke(main, missing + ["-o", str(tmp_path / "out2")])
    assert res.exit_code == 2 and isinstance(res.exception, SystemExit), res.output


def test_explained_positions_spread_over_the_split():
    from musicbrain_cli.evaluate.split import explained_positions

    assert explained_positions(100, 4) == {0, 33, 66, 99}
    assert explained_positions(3, 8) == {0, 1, 2}
    assert explained_positions(10, 0) == set() and explained_positions(0, 5) == set()
    for n_rows in range(1, 60):
        for n in range(1, n_rows + 1):
            assert len(explained_positions(n_rows, n)) == n


def test_verdict_fidelity_follows_the_predicted_source_label(setup, monkeypatch):
    # The verdict's explanation must target the window's more probable source label, human
    # or ai, alone: never a style label, never both source labels. The style explanation
    # targets the window's most probable style label alone.
    import musicbrain_cli.explain as explain
    from musicbrain_cli.evaluate.split import _ExplainTotals, _explain_window

    dataset, detector = setup
    calls = []
    real = explain.fidelity_report

    def spy(model, spec, saliency, *, targets, **kw):
        calls.append(list(targets))
        return real(model, spec, saliency, targets=targets, **kw)

    monkeypatch.setattr(explain, "fidelity_report", spy)
    wave = np.random.default_rng(0).standard_normal(detector.config.front_end.n_samples).astype(np.float32) * 0.1
    human, ai = detector.labels.index("source/human"), detector.labels.index("source/ai")
    head = detector.model.heads["source"]
    saved = head.bias.detach().clone()
    period = detector.model.heads["period"]
    saved_period = period.bias.detach().clone()
    first = detector.labels.index("period/Baroque")
    # restored by hand: monkeypatch's undo deletes an attribute that is not in the instance's
    # __dict__ (a Parameter lives in _parameters), which broke the module-scoped detector
    # for every later test
    try:
        for (winner, loser), style in zip(((human, ai), (ai, human)), ("Romantic", "Baroque")):
            style_winner = detector.labels.index(f"period/{style}")
            with torch.no_grad():      # make the window's verdict `winner`, by a wide margin
                head.bias[winner - human] = 20.0
                head.bias[loser - human] = -20.0
                period.bias.fill_(-10.0)       # and its most probable style label `style`
                period.bias[style_winner - first] = 10.0
            calls.clear()
            totals = _ExplainTotals()
            _explain_window(detector, wave, None, clip_id="x", totals=totals, figure_dir=None,
                            top_k=3, steps=3, substrate="floor", occlusion=False,
                            occlusion_patch=(8, 8), n_random=1)
            assert len(calls) == 3 and len(calls[0]) == 3
            assert calls[1] == [winner] and calls[2] == [style_winner]
            assert totals.verdict.deletion["saliency"] and totals.verdict.beats_random_grid
            assert list(totals.style_alone_groups) == ["period"]
            assert totals.style_alone.deletion["saliency"]
        # a label the card says had no training example is never the one explained
        saved_card = detector.card
        detector.card = {**saved_card, "training_data": {"labels_untrained": ["period/Baroque"]}}
        try:
            calls.clear()
            _explain_window(detector, wave, None, clip_id="x", totals=_ExplainTotals(),
                            figure_dir=None, top_k=3, steps=3, substrate="floor",
                            occlusion=False, occlusion_patch=(8, 8), n_random=1)
            assert calls[2] == [detector.labels.index("period/Romantic")]
        finally:
            detector.card = saved_card
    finally:
        with torch.no_grad():
            head.bias.copy_(saved)
            period.bias.copy_(saved_period)


def test_entry_clip_has_its_event_at_t0():
    """The rhythmic-event clips: exactly the asked length, seeded, opening on the chord
    already sounding (no attack at 0 s to compete with the entry), and the entry is an onset
    librosa's detector finds."""
    from musicbrain_cli.alignment.overlap import detect_onsets
    from musicbrain_cli.evaluate.split import entry_clip

    sr = 22050
    y, t0 = entry_clip(seconds=4.0, sample_rate=sr, seed=5)
    again, t0_again = entry_clip(seconds=4.0, sample_rate=sr, seed=5)
    assert y.shape == (4 * sr,) and t0 == t0_again and np.array_equal(y, again)
    assert 1.2 <= t0 <= 2.8
    before, after = y[int(0.5 * sr): int(t0 * sr)], y[int(t0 * sr) + sr // 10:]
    assert np.sqrt(np.mean(after ** 2)) > 1.2 * np.sqrt(np.mean(before ** 2))
    opening = y[: sr // 10]                          # the chord at full level from the start
    assert np.sqrt(np.mean(opening ** 2)) > 0.7 * np.sqrt(np.mean(before ** 2))
    onsets = detect_onsets(y, sr)
    assert np.min(np.abs(onsets - t0)) < 0.05


def _as_reference_corpus(dataset, dest, *, fonts):
    """A copy of ``dataset`` that records a reference build (seed 3, ``fonts``), every clip
    rendered with ``fonts[0]`` as the manifest's renderer."""
    import shutil

    from musicbrain_cli.data.dataset import Dataset
    from musicbrain_cli.data.reference.build import HELD_OUT_SOUNDFONT, REFERENCE_JSON

    shutil.copytree(dataset.root, dest)
    with (dest / "manifest.csv").open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        row["renderer"] = fonts[0]
    with (dest / "manifest.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (dest / REFERENCE_JSON).write_text(json.dumps(
        {"seed": 3, "training_soundfonts": fonts, "held_out_soundfont": HELD_OUT_SOUNDFONT}))
    return Dataset.load(dest)


def test_alignment_truth_is_the_notes_as_played_in_a_reference_corpus(setup, tmp_path):
    import pretty_midi

    from musicbrain_cli.data.reference.build import _render_draws
    from musicbrain_cli.data.render import humanize_midi
    from musicbrain_cli.evaluate.split import _ExplainTotals, _alignment_notes, evaluate

    base, detector = setup
    dataset = _as_reference_corpus(base, tmp_path / "ref", fonts=["fontA"])
    row = next(r for r in dataset.rows if r["score_path"])
    totals = _ExplainTotals()
    notes, source = _alignment_notes(dataset, row, {"seed": 3, "training_soundfonts": ["fontA"],
                                                    "held_out_soundfont": "x"}, totals)
    _, _, humanize, render_seed = _render_draws(3, row["clip_id"], held_out=False, n_fonts=1)
    stored = pretty_midi.PrettyMIDI(str(dataset.score_path(row)))
    expected = sorted(n.start for n in humanize_midi(stored, humanize, seed=render_seed)
                      .instruments[0].notes)
    assert source == "played" and [n.start for n in notes] == pytest.approx(expected, abs=1e-9)
    assert [n.start for n in notes] != [n.start for n in stored.instruments[0].notes]
    m = evaluate(dataset, detector, tmp_path / "e", explain_windows=2, n_figures=0,
                 fidelity_steps=2, n_random=1, occlusion=False, event_clips=0)
    a = m["alignment"]
    assert a["notes_source"] == {"played": 1, "score": 0, "estimated": 1}
    assert a["truth"].startswith("notes as played") and a["replay_failed"] == []
    assert "Notes as played (the stored score with the build's humanisation replayed) in 1" \
        in (tmp_path / "e" / "metrics.md").read_text()
    # A build whose draws no longer match the manifest: the stored score, and the clip listed
    moved = _as_reference_corpus(base, tmp_path / "moved", fonts=["fontA", "fontB", "fontC"])
    totals = _ExplainTotals()
    rows = [r for r in moved.rows if r["score_path"]]
    sources = [_alignment_notes(moved, r, json.loads((moved.root / "reference.json").read_text()),
                                totals)[1] for r in rows]
    failed = {f["clip_id"] for f in totals.replay_failed}
    assert failed and all(s == ("score" if r["clip_id"] in failed else "played")
                          for s, r in zip(sources, rows))


def test_label_coverage_names_what_is_not_scored():
    from musicbrain_cli.evaluate.split import _label_coverage

    cov = _label_coverage(["source/ai", "composer/Bach", "composer/Ciconia"],
                          ["source/ai", "composer/Bach", "generator/notagen-small-ft"])
    assert cov == {"scored": ["source/ai", "composer/Bach"], "model_only": ["composer/Ciconia"],
                   "data_only": ["generator/notagen-small-ft"]}


def test_event_test_reads_the_top_instrumentation_labels_own_map(monkeypatch):
    # An instrument's entry changes the instrumentation: the event test also follows the map
    # of the clip's most probable instrumentation label, explained by itself.
    import musicbrain_cli.explain as explain
    from musicbrain_cli.evaluate.split import _event_test
    from musicbrain_cli.features import FrontEndConfig
    from musicbrain_cli.model.checkpoint import default_card
    from musicbrain_cli.model.config import ModelConfig
    from musicbrain_cli.model.inference import Detector
    from musicbrain_cli.model.net import build_model
    from musicbrain_cli.taxonomy import Taxonomy

    taxonomy = Taxonomy.from_groups([("source", ["human", "ai"], True),
                                     ("instrumentation", ["Keyboard", "Chamber"], True)])
    config = ModelConfig(front_end=FrontEndConfig(n_bins=64, window_s=2.56, hop_s=1.28),
                         taxonomy=taxonomy)
    torch.manual_seed(0)
    detector = Detector(build_model(config), config, default_card(), device="cpu")
    chamber = detector.labels.index("instrumentation/Chamber")
    with torch.no_grad():
        detector.model.heads["instrumentation"].bias.copy_(torch.tensor([-10.0, 10.0]))
    targeted = []
    real = explain.FMGradCAM.__call__

    def spy(self, spec, *, targets=None, **kw):
        targeted.append(None if targets is None else [t.index for t in targets])
        return real(self, spec, targets=targets, **kw)

    monkeypatch.setattr(explain.FMGradCAM, "__call__", spy)
    result = _event_test(detector, 2, top_k=3, weighting=None)
    assert result["instrumentation"]["clips"] == result["fused"]["clips"] == 2
    assert 0.0 <= result["instrumentation"]["hit_rate"] <= 1.0
    # per clip: the top-k map, the verdict's label, then the top instrumentation label
    assert len(targeted) == 6 and targeted[2] == targeted[5] == [chamber]


def test_verdicts_are_counted_and_a_failed_explanation_is_not_a_failed_clip(setup, tmp_path,
                                                                            monkeypatch):
    """evaluate reported FPR at the bare threshold (0.5), where the card's rule makes no 'ai'
    verdict (its abstention band), without the verdicts a scan gives; and a clip whose
    explanation failed was counted both scored and failed, with no other clip explained."""
    import csv

    from musicbrain_cli.errors import RenderError
    from musicbrain_cli.evaluate import split as S

    dataset, detector = setup
    real = S._alignment_notes

    def broken(dataset, row, *args, **kwargs):
        if row["clip_id"] == "clip0":
            raise RenderError("bad score MIDI")
        return real(dataset, row, *args, **kwargs)

    monkeypatch.setattr(S, "_alignment_notes", broken)
    out = tmp_path / "eval"
    m = S.evaluate(dataset, detector, out, explain_windows=2, n_figures=0, fidelity_steps=4,
                   n_random=1, occlusion=False, event_clips=0)
    assert m["clips_scored"] == 4 and m["failed"] == []
    assert [e["clip_id"] for e in m["explain_failed"]] == ["clip0"]
    assert m["fidelity"]["clips"] == ["clip3"]
    v = m["detection"]["verdicts"]
    assert sum(v["human"].values()) == 2 and sum(v["ai"].values()) == 2
    with open(out / "predictions.csv", newline="") as fh:
        said = [r["verdict"] for r in csv.DictReader(fh)]
    assert sorted(said) == sorted(k for c in v.values() for k, n in c.items() for _ in range(n))
    text = (out / "metrics.md").read_text()
    assert "1 scored but not explained" in text and "content_label" in text


def test_overwrite_removes_the_previous_runs_figures(setup, tmp_path):
    """A rerun with --overwrite and fewer figures left the first run's figures beside the new
    metrics (training-commands audit)."""
    from musicbrain_cli.evaluate.split import FMGCAM_DIR, evaluate

    dataset, detector = setup
    out = tmp_path / "eval"
    (out / FMGCAM_DIR).mkdir(parents=True)
    (out / FMGCAM_DIR / "old-clip.png").write_bytes(b"not this run's")
    (out / "metrics.json").write_text("{}")
    evaluate(dataset, detector, out, explain_windows=1, n_figures=0, fidelity_steps=4, n_random=1,
             occlusion=False, event_clips=0, overwrite=True)
    assert not (out / FMGCAM_DIR / "old-clip.png").exists()


def test_a_failed_overwrite_leaves_the_previous_run_whole(setup, tmp_path, monkeypatch):
    """--overwrite removed the previous run's figures first, so a run that then failed left
    its metrics without their figures (training-commands audit, left open in session 22).
    The run now writes into a hidden folder and replaces the previous outputs only at the end."""
    import musicbrain_cli.evaluate.split as split
    from musicbrain_cli.errors import MusicBrainError

    dataset, detector = setup
    out = tmp_path / "eval"
    (out / split.FMGCAM_DIR).mkdir(parents=True)
    (out / split.FMGCAM_DIR / "old-clip.png").write_bytes(b"the previous run's")
    (out / "metrics.json").write_text('{"previous": true}')
    (out / "notes.txt").write_text("not a run output")
    before = sorted(p.name for p in out.iterdir())

    def broken(*args, **kwargs):
        raise MusicBrainError("disk full")

    monkeypatch.setattr(split, "_write_predictions", broken)
    with pytest.raises(MusicBrainError, match="disk full"):
        split.evaluate(dataset, detector, out, explain_windows=1, n_figures=0, fidelity_steps=4,
                       n_random=1, occlusion=False, event_clips=0, overwrite=True)
    assert (out / split.FMGCAM_DIR / "old-clip.png").read_bytes() == b"the previous run's"
    assert (out / "metrics.json").read_text() == '{"previous": true}'
    # nothing of the failed run but the folder's lock file
    assert sorted(p.name for p in out.iterdir()) == sorted(before + [split.LOCK_NAME])
    monkeypatch.undo()
    # one evaluation at a time per folder: a second is refused at once, naming the first
    from musicbrain_cli.files import folder_lock

    with folder_lock(out, name=split.LOCK_NAME, holder="evaluation"):
        with pytest.raises(InputError, match="in use by another evaluation"):
            split.evaluate(dataset, detector, out, event_clips=0, overwrite=True)
    # a staging folder left by a run killed outright is removed by the next run
    stale = out / f"{split._STAGING_PREFIX}killed"
    (stale / split.PR_DIR).mkdir(parents=True)
    metrics = split.evaluate(dataset, detector, out, explain_windows=1, n_figures=0,
                             fidelity_steps=4, n_random=1, occlusion=False, event_clips=0,
                             overwrite=True)
    assert json.loads((out / "metrics.json").read_text())["clips"] == metrics["clips"]
    assert not (out / split.FMGCAM_DIR).exists() and (out / "notes.txt").exists()
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [split.LOCK_NAME, "metrics.json", "metrics.md", "notes.txt", split.PR_DIR,
         "predictions.csv"])

def test_the_rhythmic_event_test_shows_its_progress(setup, tmp_path):
    """Its renders and CAM passes ran with no progress bar (training-commands audit)."""
    import contextlib

    from musicbrain_cli.evaluate.split import evaluate
    from musicbrain_cli.progress import Progress

    seen = []

    class Recording(Progress):
        @contextlib.contextmanager
        def task(self, description, total=None):
            steps = []
            seen.append((description, total, steps))

            class T:
                def advance(self, n=1):
                    steps.append(n)
            yield T()

    dataset, detector = setup
    m = evaluate(dataset, detector, tmp_path / "eval", explain_windows=0, n_figures=0,
                 fidelity_steps=4, n_random=1, occlusion=False, event_clips=2, progress=Recording())
    events = [(total, len(steps)) for d, total, steps in seen if d == "rhythmic-event test"]
    if "skipped" in m["faithfulness"]["rhythmic_event"]:
        pytest.skip(m["faithfulness"]["rhythmic_event"]["skipped"])
    assert events == [(2, 2)]


def test_figures_that_are_not_test_figures_say_so():
    """Audit (session 27): `evaluate --split train`, or a test split of another data set
    (works of one seed's train split in another seed's test split), gave headline figures
    with nothing saying they were not test figures."""
    from musicbrain_cli.evaluate.split import training_overlap

    card = {"training_data": {"manifest_sha256": "a" * 64}}
    assert "clips the model was trained on" in training_overlap("train", "a" * 64, card)
    assert training_overlap("test", "a" * 64, card) is None
    assert "operating point were chosen on" in training_overlap("val", "a" * 64, card)
    assert "trained on another data set" in training_overlap("test", "b" * 64, card)
    assert "not test figures" in training_overlap("train", "b" * 64, {})
    assert training_overlap("test", "b" * 64, {}) is None


def test_evaluate_without_random_maps_is_refused_before_the_run(setup, tmp_path):
    """n_random=0 gave metrics.md a share of 0 windows beating `random`, a baseline never
    measured; it is refused before any clip is scored and nothing is written."""
    from musicbrain_cli.evaluate.split import evaluate

    dataset, detector = setup
    with pytest.raises(InputError, match="n_random"):
        evaluate(dataset, detector, tmp_path / "eval", explain_windows=1, n_random=0,
                 occlusion=False, event_clips=0)
    assert not (tmp_path / "eval").exists()


def test_metrics_name_how_many_random_maps_the_chance_baselines_average(setup, tmp_path):
    """The `random` AUCs and the share of windows beating them are means over n_random maps
    per window, and how noisy they are depends on it: metrics.json recorded the steps, top-k
    and substrate but not this, so a run with one random map read as one with three."""
    from musicbrain_cli.evaluate.split import evaluate

    dataset, detector = setup
    out = tmp_path / "eval"
    m = evaluate(dataset, detector, out, explain_windows=1, n_figures=0, fidelity_steps=2,
                 n_random=2, occlusion=False, event_clips=0)
    assert m["fidelity"]["n_random"] == 2
    assert "each window's mean over 2 random maps" in (out / "metrics.md").read_text()


def test_cli_evaluate_refuses_any_output_it_would_replace_as_a_usage_error(setup, tmp_path):
    """Only an existing metrics.json was the caller's to fix (exit 2, before the model
    loads); a metrics.md, predictions.csv or fmgcam/ in OUT, which the run would replace
    just the same, was refused by the library after the model loaded, with exit status 1."""
    from click.testing import CliRunner

    from musicbrain_cli.cli import main
    from musicbrain_cli.model.checkpoint import save_checkpoint

    dataset, detector = setup
    ckpt = tmp_path / "model"
    save_checkpoint(ckpt, detector.model, detector.config, model_card={"name": "tiny"})
    for name in ("metrics.md", "fmgcam"):
        out = tmp_path / f"out-{name}"
        out.mkdir()
        (out / name).mkdir() if name == "fmgcam" else (out / name).write_text("a user's notes\n")
        result = CliRunner().invoke(main, ["evaluate", "--data", str(dataset.root), "--model",
                                           str(ckpt), "-o", str(out), "--explain-windows", "0",
                                           "--figures", "0", "--event-clips", "0",
                                           "--device", "cpu"])
        assert result.exit_code == 2 and name in result.output and "--overwrite" in result.output
        assert sorted(p.name for p in out.iterdir()) == [name]
