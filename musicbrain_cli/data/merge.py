"""Merge data sets into one: combined taxonomy, concatenated manifests, linked audio.

Rules:

- taxonomy: :meth:`Taxonomy.merge` in the order the data sets are given;
- a work id found in several inputs must have the same split everywhere (otherwise a
  piece could be trained on and tested on). ``on_conflict="error"`` (default) refuses;
  ``"warn"`` keeps the first input's split for that work and moves the later clips there;
- clips of different inputs with the same work id, clip id and audio bytes but other
  labels (one piece built twice, labelled differently) are refused too, or with ``"warn"`` kept and listed in the
  report (``same_audio_other_labels``);
- clip ids that collide get a suffix (``~2``, ``~3``, ...), recorded in the report;
- audio and scores are hard-linked when the file systems allow it, copied otherwise;
- resumable: a file already in the output is kept only when it is the input's own file
  (the same hard link) or holds the same bytes; any other (an input rebuilt since, whose
  file has the same size but other content) is linked or copied again;
- the output must be new, empty, or an earlier merge of the same inputs (its
  ``.merge.json``): a folder holding anything else, such as another data set, is refused
  with :class:`~musicbrain_cli.errors.InputError` rather than replaced.
"""

from __future__ import annotations

import filecmp
import json
import os
import shutil
import warnings
from pathlib import Path

from musicbrain_cli.errors import DatasetError, InputError, MusicBrainWarning
from musicbrain_cli.files import sha256_file
from musicbrain_cli.progress import NULL_PROGRESS, Progress
from musicbrain_cli.data.dataset import (AUDIO_DIR, LABEL_COLUMNS, MANIFEST, REPORT, SCORE_DIR,
                                             Dataset, write_dataset_files)


MERGE_RECORD = ".merge.json"


def _same_content(src: Path, dst: Path) -> bool:
    """Whether ``dst`` already is ``src``: the same file (a hard link made by an earlier run)
    or a file with the same bytes. A size match alone is not enough: a rebuilt input (a new
    file, same length, other samples) would leave the merge holding the old one."""
    try:
        if not dst.is_file() or dst.stat().st_size != src.stat().st_size:
            return False
        return os.path.samefile(src, dst) or filecmp.cmp(src, dst, shallow=False)
    except OSError:
        return False


def _place(src: Path, dst: Path, *, link: bool) -> None:
    if _same_content(src, dst):
        return
    tmp = dst.with_name(".tmp-" + dst.name)
    tmp.unlink(missing_ok=True)
    if link:
        try:
            os.link(src, tmp)
        except OSError:  # another file system, or links not supported: copy instead
            shutil.copy2(src, tmp)
    else:
        shutil.copy2(src, tmp)
    os.replace(tmp, dst)


def _file_rates(ds: Dataset) -> set[int]:
    """The sample rates an input's audio headers state, for an input whose card records
    none: left out, the merged card named the other inputs' rate for its clips too."""
    import soundfile

    rates = set()
    for r in ds.rows:
        try:
            rates.add(int(soundfile.info(str(ds.audio_path(r))).samplerate))
        except RuntimeError as exc:
            raise DatasetError(f"cannot read {str(ds.audio_path(r))!r}: {exc}") from exc
    return rates


def _check_held_out_renderers(sets: list[Dataset], work_split: dict[str, tuple[str, str]]) -> None:
    """Refuse a merge whose cross-renderer test would hear a renderer that other splits
    train or tune on: data sets built with different held-out SoundFonts each keep their own
    out of training, but merged, one's held-out SoundFont renders the other's training clips."""
    held: dict[str, str] = {}          # renderer of a test_xsf clip -> its data set
    used: dict[str, str] = {}          # renderer of any other clip -> its data set
    for ds in sets:
        for r in ds.rows:
            renderer = str(r.get("renderer") or "")
            if not renderer:
                continue
            into = held if work_split[r["work_id"]][0] == "test_xsf" else used
            into.setdefault(renderer, str(ds.root))
    both = sorted(set(held) & set(used))
    if both:
        name = both[0]
        raise DatasetError(f"{len(both)} renderer(s) would be both held out and trained on: "
                           f"{name!r} renders the cross-renderer test (test_xsf) in "
                           f"{held[name]!r} and other splits in {used[name]!r}; the merged "
                           "test_xsf would no longer measure an unseen renderer: rebuild the "
                           "data sets with one held-out SoundFont")


def _same_audio_label_conflicts(sets: list[Dataset]) -> list[dict[str, str]]:
    """Clips of different data sets with the same audio bytes and different labels (one
    ABC built twice, once with a ``--labels`` row naming another composer): merged, the
    model would be taught both labels for one sound. A piece built twice keeps its work
    and clip ids, so only clips whose (work id, clip id) is in several data sets with
    different labels are hashed: the check costs little."""
    by_work: dict[tuple[str, str], list[tuple[Dataset, dict]]] = {}
    for ds in sets:
        for r in ds.rows:
            by_work.setdefault((r["work_id"], r["clip_id"]), []).append((ds, r))
    found = []
    for (work, _), clips in by_work.items():
        if len({str(ds.root) for ds, _ in clips}) < 2:
            continue
        if len({tuple(r.get(c, "") for c in LABEL_COLUMNS) for _, r in clips}) < 2:
            continue
        first: dict[str, tuple[Dataset, dict]] = {}
        for ds, r in clips:
            digest = sha256_file(ds.audio_path(r))
            if digest not in first:
                first[digest] = (ds, r)
                continue
            ds0, r0 = first[digest]
            diff = [c for c in LABEL_COLUMNS if r0.get(c, "") != r.get(c, "")]
            if ds0.root != ds.root and diff:
                found.append({"work_id": work, "clip": f"{ds0.root}: {r0['clip_id']}",
                              "same_audio": f"{ds.root}: {r['clip_id']}",
                              "labels": "; ".join(f"{c} {r0.get(c, '')!r} / {r.get(c, '')!r}"
                                                  for c in diff)})
    return found


def _merge_record_inputs(out: Path) -> list[str] | None:
    """The inputs an earlier merge into ``out`` recorded (resolved), or None when ``out``
    holds no readable merge record."""
    try:
        record = json.loads((out / MERGE_RECORD).read_text(encoding="utf-8"))
        return [str(Path(p).resolve()) for p in record["inputs"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def check_merge_output(out: str | Path, inputs: list[str | Path]) -> None:
    """Refuse an output folder that a merge of ``inputs`` would destroy.

    Accepted: a folder that does not exist, an empty one, or an earlier (complete or
    interrupted) merge of the same inputs in the same order, per its ``.merge.json``.
    Anything else (another data set's ``manifest.csv``, a merge of other inputs, unrelated
    files) raises :class:`InputError` naming the folder: a merge never replaces a data set.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"the output {str(out)!r} exists and is not a folder")
    if not out.is_dir() or not any(out.iterdir()):
        return
    recorded = _merge_record_inputs(out)
    wanted = [str(Path(p).resolve()) for p in inputs]
    if recorded == wanted:
        return
    if recorded is not None:
        what = f"a merge of other data sets ({', '.join(recorded)})"
    elif (out / MANIFEST).exists():
        what = f"a data set ({MANIFEST}) that is no merge of these inputs"
    else:
        what = "files that are no merge of these inputs"
    raise InputError(f"the output {str(out)!r} already holds {what}: merging into it would "
                     "replace it; give a new or empty folder with -o")


def merge_datasets(inputs: list[str | Path], out: str | Path, *, link: bool = True,
                   on_conflict: str = "error", progress: Progress = NULL_PROGRESS) -> dict:
    """Merge ``inputs`` (two or more data set folders) into ``out``; returns a summary.

    ``out`` must be new, empty or an earlier merge of the same inputs
    (:func:`check_merge_output`, raises :class:`InputError`)."""
    if on_conflict not in ("error", "warn"):
        raise DatasetError(f"on_conflict must be 'error' or 'warn', not {on_conflict!r}")
    if len(inputs) < 2:
        raise DatasetError(f"merge needs at least two data sets, got {len(inputs)}")
    out = Path(out)
    sets = [Dataset.load(p) for p in inputs]
    check_merge_output(out, [ds.root for ds in sets])
    # an input with a repeated clip id was merged twice under two ids, one with a work in
    # two splits had clips moved without a word, one with audio missing stopped half-way
    for ds in sets:
        ds.validate()
    seen: dict[str, str] = {}
    for ds in sets:
        if out.resolve() == ds.root.resolve():
            raise DatasetError(f"the output {str(out)!r} is one of the inputs")
        # the same data set twice (or a copy of it) would put every clip in twice, under
        # renamed ids, each counted twice in the card (session 26 audit)
        key = sha256_file(ds.root / MANIFEST)
        if key in seen:
            raise DatasetError(f"{str(ds.root)!r} holds the same clips as {seen[key]!r} "
                               "(identical manifests): give each data set once")
        seen[key] = str(ds.root)
    rates = set()
    for ds in sets:
        rates |= {ds.sample_rate} if ds.sample_rate is not None else _file_rates(ds)
    if len(rates) > 1:
        raise DatasetError(f"data sets have different sample rates {sorted(rates)}: "
                           "rebuild them at one rate")
    taxonomy = sets[0].taxonomy
    for ds in sets[1:]:
        taxonomy = taxonomy.merge(ds.taxonomy)

    work_split: dict[str, tuple[str, str]] = {}  # work -> (split, first data set)
    conflicts: list[dict[str, str]] = []
    for ds in sets:
        for r in ds.rows:
            first = work_split.setdefault(r["work_id"], (r["split"], str(ds.root)))
            if first[0] != r["split"] and first[1] != str(ds.root):
                conflicts.append({"work_id": r["work_id"], "split": r["split"],
                                  "data_set": str(ds.root), "kept_split": first[0],
                                  "first_data_set": first[1]})
    # one entry per (data set, work), not per clip
    conflicts = list({(c["data_set"], c["work_id"]): c for c in conflicts}.values())
    held_out = [c for c in conflicts if "test_xsf" in (c["split"], c["kept_split"])]
    if held_out:
        c = held_out[0]
        # moving a clip into or out of the held-out SoundFont's split would put that
        # SoundFont in training, or a training SoundFont in the cross-renderer test
        raise DatasetError(f"{len({c['work_id'] for c in held_out})} work(s) are in the "
                           f"held-out SoundFont's split (test_xsf) in one data set and not in "
                           f"another (e.g. {c['work_id']!r}: {c['kept_split']!r} in "
                           f"{c['first_data_set']!r}, {c['split']!r} in {c['data_set']!r}); "
                           "no split can be kept without mixing renderers: rebuild the data "
                           "sets with one held-out SoundFont")
    _check_held_out_renderers(sets, work_split)
    relabelled = _same_audio_label_conflicts(sets)
    if relabelled:
        c = relabelled[0]
        msg = (f"{len(relabelled)} clip(s) have the same audio as a clip of another data set "
               f"and other labels (e.g. {c['clip']!r} and {c['same_audio']!r}: {c['labels']})")
        if on_conflict == "error":
            raise DatasetError(msg + "; fix the labels of one data set, or rerun with "
                               "--on-conflict warn to keep both")
        warnings.warn(msg + "; both are kept (build_report.json, same_audio_other_labels)",
                      MusicBrainWarning, stacklevel=2)
    if conflicts:
        works = sorted({c["work_id"] for c in conflicts})
        msg = (f"{len(works)} work(s) are in different splits in different data sets "
               f"(e.g. {works[0]!r}: {conflicts[0]['kept_split']!r} in "
               f"{conflicts[0]['first_data_set']!r}, {conflicts[0]['split']!r} in "
               f"{conflicts[0]['data_set']!r})")
        if on_conflict == "error":
            raise DatasetError(msg + "; rerun with --on-conflict warn to keep the first split")
        warnings.warn(msg + "; the first data set's split is kept", MusicBrainWarning, stacklevel=2)

    out.mkdir(parents=True, exist_ok=True)
    if not (out / MERGE_RECORD).exists():
        # written before any file, so an interrupted merge is known as ours when rerun
        (out / MERGE_RECORD).write_text(json.dumps(
            {"inputs": [str(d.root.resolve()) for d in sets], "complete": False},
            indent=2) + "\n", encoding="utf-8")
    (out / AUDIO_DIR).mkdir(parents=True, exist_ok=True)
    (out / SCORE_DIR).mkdir(parents=True, exist_ok=True)
    rows, renamed, taken = [], [], set()
    total = sum(len(ds.rows) for ds in sets)
    with progress.task("merging data sets", total=total) as task:
        for ds in sets:
            for r in ds.rows:
                new = dict(r)
                cid, k = r["clip_id"], 2
                while new["clip_id"] in taken:
                    new["clip_id"] = f"{cid}~{k}"
                    k += 1
                if new["clip_id"] != cid:
                    renamed.append({"data_set": str(ds.root), "from": cid, "to": new["clip_id"]})
                taken.add(new["clip_id"])
                new["split"] = work_split[r["work_id"]][0]
                ext = Path(r["path"]).suffix
                new["path"] = f"{AUDIO_DIR}/{new['clip_id']}{ext}"
                _place(ds.audio_path(r), out / new["path"], link=link)
                sp = ds.score_path(r)
                if sp is not None:
                    new["score_path"] = f"{SCORE_DIR}/{new['clip_id']}.mid"
                    _place(sp, out / new["score_path"], link=link)
                rows.append(new)
                task.advance()
    skipped = [{"item": c["data_set"] + ": work " + c["work_id"],
                "reason": f"moved from split {c['split']!r} to {c['kept_split']!r}"}
               for c in conflicts]
    # what each input's own build left out, and its own report, travel with the merge:
    # a merged data set must not look more complete than its parts
    reports = {}
    for ds in sets:
        try:
            rep = json.loads((ds.root / REPORT).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(rep, dict):
            continue
        reports[str(ds.root)] = rep
        skipped += [{"item": f"{ds.root}: {e.get('item')}", "reason": str(e.get("reason"))}
                    for e in rep.get("skipped") or () if isinstance(e, dict)]
    write_dataset_files(out, taxonomy, rows, name=out.name,
                        sample_rate=next(iter(rates)) if rates else 22050, skipped=skipped,
                        report={"inputs": reports, "same_audio_other_labels": relabelled})
    (out / MERGE_RECORD).write_text(
        json.dumps({"inputs": [str(d.root.resolve()) for d in sets], "renamed": renamed,
                    "complete": True}, indent=2) + "\n", encoding="utf-8")
    return {"clips": len(rows), "renamed": len(renamed), "conflicts": len(conflicts),
            "manifest": str(out / MANIFEST)}
