"""Re-fitting the source (AI/human) head on frozen embeddings over an enlarged corpus
(`musicbrain refit-heads --detection`, training/heads.py refit_detection_head).

A tiny model is trained through the CLI on a data set without a generator group; the head is
then re-fitted on a second data set that carries every label of the model and one more
(RhythGen's `generator/notagen-small-ft`), as the enlarged corpus does.
"""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from musicbrain_cli.cli import main
from musicbrain_cli.training.heads import detection_weights

from conftest import train_tiny

SR = 6400


def _write(root, taxonomy, clips):
    from musicbrain_cli.data.dataset import ClipRecord, DatasetWriter

    rng = np.random.default_rng(len(clips))
    t = np.arange(2 * SR) / SR
    with DatasetWriter(root, taxonomy, sample_rate=SR, audio_format="wav") as w:
        for i, (split, ai, inst, gen) in enumerate(clips):
            # AI: a partial at 440 Hz, human at 660 Hz, buried in noise so that the one-epoch
            # model is far from perfect; instrumentation adds its own partial
            y = (0.05 * np.sin(2 * np.pi * (440 if ai else 660) * t)
                 + 0.2 * np.sin(2 * np.pi * (1900 if inst == "Keyboard" else 1300) * t)
                 + 0.3 * rng.normal(size=t.size))
            w.add(ClipRecord(clip_id=f"c{i:02d}", source="ai" if ai else "human",
                             generator=gen if ai else "-", instrumentation=inst,
                             work_id=f"w{i}", split=split), y.astype(np.float32))
    return root


@pytest.fixture(scope="module")
def refit(tmp_path_factory):
    from musicbrain_cli.taxonomy import Taxonomy

    root = tmp_path_factory.mktemp("detrefit")
    small = Taxonomy.from_groups([("source", ["human", "ai"], True),
                                  ("instrumentation", ["Keyboard", "Chamber"], True)])
    clips = [("train" if i < 24 else "val", i % 2, "Keyboard" if (i // 2) % 2 else "Chamber", "")
             for i in range(36)]
    _write(root / "ds", small, clips)
    train_tiny(root / "ds", root)

    big = Taxonomy.from_groups([("source", ["human", "ai"], True),
                                ("generator", ["notagen-small-ft"], True),
                                ("instrumentation", ["Keyboard", "Chamber"], True)])
    # Keyboard is mostly AI here (the shortcut the balance removes); test clips for finalize
    more = [("train" if i < 40 else "val" if i < 52 else "test",
             i % 2 or (i % 8 == 2), "Keyboard" if i % 4 in (1, 2) else "Chamber",
             "notagen-small-ft") for i in range(64)]
    _write(root / "big", big, more)
    out = root / "refit"
    res = CliRunner().invoke(main, ["refit-heads", "--detection", "--data", str(root / "big"),
                                    "--model", str(root / "run" / "model"), "-o", str(out),
                                    "--weight", "generator/notagen-small-ft=2"])
    assert res.exit_code == 0, res.output
    return root, root / "run" / "model", out, res.output


def _card(model_dir):
    return json.loads((model_dir / "model_card.json").read_text())


def test_only_the_source_rows_change_and_the_domain_is_kept(refit):
    root, before, after, output = refit
    assert "detection head re-fitted on" in output and "ROC-AUC" in output
    old = load_file(str(before / "model.safetensors"))
    new = load_file(str(after / "model.safetensors"))
    assert old.keys() == new.keys()
    assert {k for k in old if not torch.equal(old[k], new[k])} == {"heads.source.weight",
                                                                   "heads.source.bias"}
    # P(human) is 1 - P(AI): the human row is the AI row negated
    assert torch.equal(new["heads.source.weight"][0], -new["heads.source.weight"][1])
    assert (after / "ood.safetensors").read_bytes() == (before / "ood.safetensors").read_bytes()
    c, b = _card(after), _card(before)
    assert c["ood"] == b["ood"] and c["training_data"] == b["training_data"]
    assert c["finalized_on"]["data_set"] == str((root / "big").resolve())
    assert "test" in c["evaluation"]          # error rates measured on the enlarged data set
    record = c["training"]["detection_head_refit"]
    assert record["val_roc_auc_by_c"][str(record["c"])] > record["val_roc_auc_before"]
    assert record["label_weights"] == {"generator/notagen-small-ft": 2.0}
    assert record["balance"]["balance_by"] == "instrumentation"
    assert record["from_weights_sha256"] == b["weights_sha256"]
    assert "robustness" not in c
    # the training-time snapshot's detection figures measured the old head: removed, said so
    assert "detection" in b["metrics"] and "detection" not in c["metrics"]
    assert not [k for k in c["metrics"]["ap"] if k.startswith("source/")]
    assert c["metrics"]["ap"] == {k: v for k, v in b["metrics"]["ap"].items()
                                  if not k.startswith("source/")}
    assert "before the re-fit" in c["metrics"]["source_head_refit"]


def test_refit_refuses_what_it_cannot_do(refit, tmp_path):
    root, before, after, _ = refit
    # a data set lacking labels of the model is refused, naming them
    from musicbrain_cli.taxonomy import Taxonomy

    bare = _write(tmp_path / "bare", Taxonomy.from_groups([("source", ["human", "ai"], True)]),
                  [("train", i % 2, "", "") for i in range(8)] + [("val", i % 2, "", "")
                                                                   for i in range(4)])
    res = CliRunner().invoke(main, ["refit-heads", "--detection", "--data", str(bare),
                                    "--model", str(before), "-o", str(tmp_path / "o")])
    assert res.exit_code != 0 and "instrumentation/Keyboard" in res.output
    res = CliRunner().invoke(main, ["refit-heads", "--data", str(root / "big"), "--model",
                                    str(before), "-o", str(tmp_path / "p"),
                                    "--weight", "generator/notagen-small-ft=2"])
    assert res.exit_code == 2 and "go with --detection" in res.output
    res = CliRunner().invoke(main, ["refit-heads", "--detection", "--data", str(root / "big"),
                                    "--model", str(before), "-o", str(tmp_path / "q"),
                                    "--weight", "generator/notagen-small-ft"])
    assert res.exit_code == 2 and "GROUP/LABEL=NUMBER" in res.output


def test_balance_weighs_both_sides_of_a_style_alike():
    from musicbrain_cli.taxonomy import Taxonomy

    tax = Taxonomy.from_groups([("source", ["human", "ai"], True),
                                ("generator", ["notagen-small-ft", "symbolic-small"], True),
                                ("instrumentation", ["Keyboard", "Chamber", "Art Song"], True)])
    # (ai, generator, instrumentation) per window; "" is unknown
    windows = ([(False, "", "Keyboard")] + [(True, "notagen-small-ft", "Keyboard")] * 4
               + [(False, "", "Chamber")] * 2 + [(True, "symbolic-small", "Chamber")] * 2
               + [(True, "notagen-small-ft", "Art Song")] + [(True, "symbolic-small", "")])
    targets = np.zeros((len(windows), len(tax.labels)), np.float32)
    mask = np.ones_like(targets)
    for i, (ai, gen, inst) in enumerate(windows):
        targets[i, tax.index("source/ai" if ai else "source/human")] = 1
        if gen:
            targets[i, tax.index(f"generator/{gen}")] = 1
        if inst:
            targets[i, tax.index(f"instrumentation/{inst}")] = 1
        else:
            mask[i, tax.group_slices()["instrumentation"]] = 0
    w, record = detection_weights(targets, mask, tax,
                                  label_weights={"generator/notagen-small-ft": 3})
    # Keyboard: 1 human vs 4 AI -> human x 5/2, AI x 5/8 (before the label weight x3)
    assert w[0] == pytest.approx(2.5)
    assert w[1] == pytest.approx(3 * 5 / 8)
    assert w[5] == w[7] == 1.0                       # Chamber is balanced already
    assert w[9] == 3.0                               # Art Song: one side only, nothing to weigh
    assert w[10] == 1.0                              # unknown instrumentation
    # both sides of Keyboard now carry the same total weight (label weights aside)
    plain, _ = detection_weights(targets, mask, tax)
    assert plain[0] == pytest.approx(plain[1:5].sum())
    assert record["cells"]["Keyboard"] == {"human": 1, "ai": 4}
    capped, _ = detection_weights(targets, mask, tax, cap=2.0)
    assert capped[0] == 2.0
    none, rec = detection_weights(targets, mask, tax, balance_by=None)
    assert none.tolist() == [1.0] * 11 and rec["cells"] == {}


@pytest.mark.parametrize("failure", [KeyboardInterrupt, RuntimeError])
def test_an_interrupted_refit_leaves_no_model_behind(refit, tmp_path, monkeypatch, failure):
    """Interrupted after the head was written but before finalize re-measured it, the output
    folder held a loadable model whose card quoted the input model's error rates and
    operating point; a rerun into it was refused as 'not empty'."""
    import musicbrain_cli.training.finalize as fin

    root, before, _, _ = refit

    def broken(*args, **kwargs):
        raise failure("stopped during finalize")

    monkeypatch.setattr(fin, "finalize_model", broken)
    out = tmp_path / "o"
    res = CliRunner().invoke(main, ["refit-heads", "--detection", "--data", str(root / "big"),
                                    "--model", str(before), "-o", str(out), "--balance-by", "none"])
    assert res.exit_code != 0
    assert not out.exists() and list(tmp_path.iterdir()) == []     # no half-made model, no stage
    monkeypatch.undo()
    out.mkdir()                                                   # an empty folder is fine
    res = CliRunner().invoke(main, ["refit-heads", "--detection", "--data", str(root / "big"),
                                    "--model", str(before), "-o", str(out), "--balance-by", "none"])
    assert res.exit_code == 0, res.output
    assert _card(out)["finalized_on"] and [p.name for p in tmp_path.iterdir()] == ["o"]


def test_a_changed_data_set_is_not_measured_from_its_stale_feature_cache(refit, tmp_path):
    """refit-heads and finalize read the feature cache whenever one existed: after rows were
    removed from the manifest the card gained an evaluation split named '' (and clips added
    would have been left out without a word)."""
    import csv
    import shutil

    from musicbrain_cli.model.checkpoint import read_config
    from musicbrain_cli.training.finalize import model_windows

    root, before, _, _ = refit
    data = tmp_path / "big"
    shutil.copytree(root / "big", data)
    with open(data / "manifest.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    kept = [r for r in rows if r["split"] != "test"][:-2] + [r for r in rows if r["split"] == "test"][2:]
    with open(data / "manifest.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(kept)
    config, _ = read_config(before)
    cache, by_split = model_windows(data, config, "test", labels="by_name")
    assert "" not in by_split
    assert sorted(set(cache.clip_ids)) == sorted(r["clip_id"] for r in kept)


def test_a_refit_into_the_current_folder_lands_there_readable(refit, tmp_path, monkeypatch):
    """'-o .' staged inside the output folder (its name is empty), and the finished model was
    left in a hidden '..partial-*' folder; a staged folder kept mkdtemp's 0700."""
    import os

    root, before, _, _ = refit
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    res = CliRunner().invoke(main, ["refit-heads", "--detection", "--data", str(root / "big"),
                                    "--model", str(before), "-o", ".", "--balance-by", "none"])
    assert res.exit_code == 0, res.output
    assert (here / "model_card.json").is_file() and not list(tmp_path.glob(".*partial*"))
    mask = os.umask(0)
    os.umask(mask)
    assert here.stat().st_mode & 0o777 == 0o777 & ~mask
