"""Merging data sets: taxonomy union, clip id collisions, linked audio, split conflicts."""

import json
import os

import numpy as np
import pytest

from musicbrain_cli.errors import DatasetError
from musicbrain_cli.taxonomy import Taxonomy
from musicbrain_cli.data.dataset import ClipRecord, Dataset, DatasetWriter
from musicbrain_cli.data.merge import merge_datasets

SR = 8000


def make(root, taxonomy, clips, column="generator"):
    """Clips are (id, work, split, source, value of ``column``)."""
    rng = np.random.default_rng(len(str(root)))
    with DatasetWriter(root, taxonomy, sample_rate=SR) as w:
        for cid, work, split, source, value in clips:
            w.add(ClipRecord(cid, source, work_id=work, split=split, **{column: value}),
                  rng.normal(0, 0.1, SR // 4).astype(np.float32))
    return root


@pytest.fixture
def pair(tmp_path):
    human = Taxonomy.from_groups([("source", ["human", "ai"], True)])
    ai = Taxonomy.from_groups([("source", ["human", "ai"], True),
                               ("generator", ["notagen-small"], True)])
    a = make(tmp_path / "a", human, [("c1", "w1", "train", "human", "-"),
                                     ("c2", "w2", "test", "human", "-")])
    b = make(tmp_path / "b", ai, [("c1", "g1", "train", "ai", "notagen-small"),
                                  ("c3", "w2", "test", "ai", "notagen-small")])
    return a, b


def test_merge(pair, tmp_path):
    a, b = pair
    out = tmp_path / "c"
    summary = merge_datasets([a, b], out)
    assert summary == {"clips": 4, "renamed": 1, "conflicts": 0,
                       "manifest": str(out / "manifest.csv")}
    ds = Dataset.load(out)
    ds.validate()
    assert ds.taxonomy.labels == ["source/human", "source/ai", "generator/notagen-small"]
    ids = [r["clip_id"] for r in ds.rows]
    assert sorted(ids) == ["c1", "c1~2", "c2", "c3"]
    renamed = next(r for r in ds.rows if r["clip_id"] == "c1~2")
    assert renamed["source"] == "ai" and renamed["path"] == "audio/c1~2.flac"
    # hard-linked, not copied
    assert os.stat(ds.audio_path(renamed)).st_ino == os.stat(b / "audio" / "c1.flac").st_ino
    human = next(r for r in ds.rows if r["clip_id"] == "c2")
    t, m = ds.encode(human)          # generator "-" of a human clip: known negative
    assert t.tolist() == [1, 0, 0] and m.tolist() == [1, 1, 1]
    merge_datasets([a, b], out)      # rerun: idempotent
    assert len(Dataset.load(out).rows) == 4
    moves = json.loads((out / ".merge.json").read_text())["renamed"]
    assert moves == [{"data_set": str(b), "from": "c1", "to": "c1~2"}]


def test_split_conflict_refused_or_resolved(pair, tmp_path):
    a, _ = pair
    tax = Taxonomy.from_groups([("source", ["human", "ai"], True)])
    c = make(tmp_path / "x", tax, [("d1", "w1", "val", "ai", "")])   # w1 is train in a
    with pytest.raises(DatasetError, match="'w1'"):
        merge_datasets([a, c], tmp_path / "out")
    with pytest.warns(UserWarning, match="first data set's split is kept"):
        merge_datasets([a, c], tmp_path / "out2", on_conflict="warn", link=False)
    ds = Dataset.load(tmp_path / "out2")
    ds.validate()
    assert {r["split"] for r in ds.rows if r["work_id"] == "w1"} == {"train"}
    report = json.loads((tmp_path / "out2" / "build_report.json").read_text())
    assert "moved from split 'val' to 'train'" in report["skipped"][0]["reason"]


def test_cli_merge(pair, tmp_path):
    from click.testing import CliRunner

    from musicbrain_cli.cli import main

    a, b = pair
    result = CliRunner().invoke(main, ["data", "merge", str(a), str(b), "-o",
                                       str(tmp_path / "m"), "--copy"])
    assert result.exit_code == 0, result.output
    assert "4 clips, 1 clip ids renamed" in result.output
    ds = Dataset.load(tmp_path / "m")
    assert os.stat(ds.audio_path(ds.rows[0])).st_nlink == 1   # copied


def _styled(root, clips):
    """A data set with an instrumentation group: clips are (id, work, split, source, inst)."""
    tax = Taxonomy.from_groups([("source", ["human", "ai"], True),
                                ("instrumentation", ["Art Song", "Chamber"], True)])
    return make(root, tax, clips, column="instrumentation")


def test_source_balance_flags_a_style_only_one_side_has(tmp_path):
    """Art Song only on the AI side is a shortcut to accusing human Lieder (issue 21's medium
    corpus had 2 human Art Song clips against 186 AI); a style both sides hold is not flagged,
    and neither is a one-source data set, whose balance is its merge's."""
    from musicbrain_cli.data.dataset import card_markdown, shortcut_risks

    clips = [(f"h{i}", f"hw{i}", "train", "human", "Chamber") for i in range(5)]
    clips += [(f"a{i}", f"aw{i}", "train", "ai", "Chamber") for i in range(4)]
    clips += [(f"s{i}", f"sw{i}", "train", "ai", "Art Song") for i in range(5)]
    clips += [("hs", "hsw", "test", "human", "Art Song")]         # other splits don't count
    root = _styled(tmp_path / "d", clips)
    card = json.loads((root / "card.json").read_text())
    balance = card["source_balance"]
    assert balance["overall_ai_share"] == pytest.approx(9 / 14, abs=1e-4)
    inst = balance["groups"]["instrumentation"]
    assert inst["Art Song"] == {"human": 0, "ai": 5, "ai_share": 1.0, "flag": "mostly ai"}
    assert inst["Chamber"]["flag"] is None
    assert [(g, label) for g, label, _ in shortcut_risks(balance)] == [("instrumentation", "Art Song")]
    assert "| instrumentation | Art Song | 0 | 5 | 1.00 | mostly ai |" in card_markdown(card)

    one = _styled(tmp_path / "ai-only", [("s1", "w1", "train", "ai", "Art Song")])
    single = json.loads((one / "card.json").read_text())["source_balance"]
    assert single["single_source"] and shortcut_risks(single) == []


def test_cli_merge_warns_of_shortcut_labels(tmp_path):
    from click.testing import CliRunner

    from musicbrain_cli.cli import main

    human = _styled(tmp_path / "h", [(f"h{i}", f"hw{i}", "train", "human", "Chamber")
                                     for i in range(3)])
    ai = _styled(tmp_path / "a", [(f"a{i}", f"aw{i}", "train", "ai", "Art Song")
                                  for i in range(3)] + [("c", "cw", "train", "ai", "Chamber")])
    result = CliRunner().invoke(main, ["data", "merge", str(human), str(ai), "-o",
                                       str(tmp_path / "m")])
    assert result.exit_code == 0, result.output
    assert "warning: instrumentation 'Art Song' is mostly ai in train (0 human, 3 ai" in result.output
    assert "'Chamber'" not in result.output


def test_merge_keeps_what_each_input_left_out(tmp_path):
    """A merged data set listed 0 skipped items though its inputs had left some out: it
    looked more complete than its parts."""
    tax = Taxonomy.from_groups([("source", ["human", "ai"], True)])
    rng = np.random.default_rng(0)
    roots = []
    for name, cid, work in (("a", "c1", "w1"), ("b", "c2", "w2")):
        with DatasetWriter(tmp_path / name, tax, sample_rate=SR) as w:
            w.add(ClipRecord(cid, "human", work_id=work, split="train"),
                  rng.normal(0, 0.1, SR // 4).astype(np.float32))
            w.skip(f"{name}-broken.abc", "bad ABC: no notes")
            w.report["labels"] = {"from": name}
        roots.append(tmp_path / name)
    out = tmp_path / "c"
    merge_datasets(roots, out)
    report = json.loads((out / "build_report.json").read_text(encoding="utf-8"))
    assert {(e["item"], e["reason"]) for e in report["skipped"]} == {
        (f"{roots[0]}: a-broken.abc", "bad ABC: no notes"),
        (f"{roots[1]}: b-broken.abc", "bad ABC: no notes")}
    assert report["inputs"][str(roots[1])]["labels"] == {"from": "b"}


def test_cli_prints_a_library_warning_as_one_plain_line(pair, tmp_path):
    """A warning the library raises on purpose reaches the user as ``musicbrain: warning:``,
    not as Python's ``path:line: UserWarning:`` dump with the source line."""
    from click.testing import CliRunner

    from musicbrain_cli.cli import main

    a, _ = pair
    tax = Taxonomy.from_groups([("source", ["human", "ai"], True)])
    c = make(tmp_path / "x", tax, [("d1", "w1", "val", "ai", "")])   # w1 is train in a
    result = CliRunner().invoke(main, ["data", "merge", str(a), str(c), "-o",
                                       str(tmp_path / "m"), "--copy", "--on-conflict", "warn"])
    assert result.exit_code == 0, result.output
    assert "musicbrain: warning: " in result.output and "split is kept" in result.output
    assert "UserWarning" not in result.output and "merge.py" not in result.output


def test_the_same_data_set_twice_is_refused(pair, tmp_path):
    """Audit (session 26): `data merge A A` (or A and a copy of A) put every clip in twice,
    under renamed ids, and counted each twice in the card."""
    import shutil

    a, b = pair
    with pytest.raises(DatasetError, match="same clips"):
        merge_datasets([a, b, a], tmp_path / "out")
    shutil.copytree(a, tmp_path / "copy")
    with pytest.raises(DatasetError, match="identical manifests"):
        merge_datasets([a, tmp_path / "copy"], tmp_path / "out")
    assert not (tmp_path / "out" / "manifest.csv").exists()


def test_no_clip_is_moved_into_or_out_of_the_held_out_soundfont_split(pair, tmp_path):
    """Audit (session 26): with --on-conflict warn a work in test_xsf in one data set and in
    train in another was moved: the held-out SoundFont's clips went into training, and
    training SoundFonts' clips into the cross-renderer test. One entry per work, not clip."""
    a, _ = pair
    tax = Taxonomy.from_groups([("source", ["human", "ai"], True)])
    x = make(tmp_path / "x", tax, [("d1", "w1", "test_xsf", "ai", ""),
                                   ("d2", "w1", "test_xsf", "ai", "")])
    for mode in ("error", "warn"):
        with pytest.raises(DatasetError, match="held-out SoundFont"):
            merge_datasets([a, x], tmp_path / f"out-{mode}", on_conflict=mode)
    y = make(tmp_path / "y", tax, [("e1", "w1", "val", "ai", ""), ("e2", "w1", "val", "ai", "")])
    with pytest.warns(UserWarning):
        summary = merge_datasets([a, y], tmp_path / "out", on_conflict="warn")
    assert summary["conflicts"] == 1


def test_data_sets_with_different_held_out_soundfonts_are_refused(tmp_path):
    """Audit (session 26): two data sets each holding a different SoundFont out merged
    silently; the merged test_xsf then heard a SoundFont the other set trains on, and its
    cross-SoundFont figure no longer measured an unseen renderer."""
    tax = Taxonomy.from_groups([("source", ["human", "ai"], True)])
    x = make(tmp_path / "x", tax, [("a1", "w1", "train", "ai", "FluidR3"),
                                   ("a2", "w2", "test_xsf", "ai", "GeneralUser")],
             column="renderer")
    y = make(tmp_path / "y", tax, [("b1", "v1", "train", "human", "GeneralUser"),
                                   ("b2", "v2", "test_xsf", "human", "FluidR3")],
             column="renderer")
    with pytest.raises(DatasetError, match="both held out and trained on") as e:
        merge_datasets([x, y], tmp_path / "out")
    assert "'FluidR3'" in str(e.value) and not (tmp_path / "out").exists()
    z = make(tmp_path / "z", tax, [("c1", "u1", "train", "human", "FluidR3"),
                                   ("c2", "u2", "test_xsf", "human", "GeneralUser")],
             column="renderer")
    assert merge_datasets([x, z], tmp_path / "ok")["clips"] == 4       # the same one held out


@pytest.mark.parametrize("fault", ["repeated clip", "work in two splits", "audio missing"])
def test_an_invalid_input_is_refused_before_anything_is_merged(pair, tmp_path, fault):
    """Inputs were not validated: a repeated manifest row was merged as two clips (one
    audio file twice, under 'c1' and 'c1~2'), a work in two splits of one input was moved
    to one split without a report entry, and missing audio stopped the merge half-way
    with a bare FileNotFoundError."""
    a, b = pair
    lines = (a / "manifest.csv").read_text().splitlines()
    if fault == "repeated clip":
        lines.append(lines[1])
    elif fault == "work in two splits":
        lines[2] = lines[2].replace(",w2,", ",w1,")
    else:
        (a / "audio" / "c2.flac").unlink()
    (a / "manifest.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match="is invalid"):
        merge_datasets([a, b], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_an_input_without_a_card_is_held_to_the_rate_of_its_audio(pair, tmp_path):
    """The rate check skipped an input without card.json: merged with one at 8 kHz, its
    16 kHz clips were listed in a card claiming 8 kHz for every clip."""
    a, _ = pair
    human = Taxonomy.from_groups([("source", ["human", "ai"], True)])
    with DatasetWriter(tmp_path / "c", human, sample_rate=2 * SR) as w:
        w.add(ClipRecord("b1", "human", work_id="wb", split="train"),
              np.zeros(SR // 2, dtype=np.float32) + 0.1)
    (tmp_path / "c" / "card.json").unlink()
    with pytest.raises(DatasetError, match=r"different sample rates \[8000, 16000\]"):
        merge_datasets([a, tmp_path / "c"], tmp_path / "out")
