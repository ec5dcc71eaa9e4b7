"""One data set format for every source (MusicNet, NotaGen, the reference corpus, merges).

A data set is a folder (described in ``docs/dataset-format.md``)::

    audio/<clip_id>.flac     rendered mono audio, 16-bit FLAC at the data set's rate
    scores/<clip_id>.mid     the MIDI that was rendered for the clip (for alignment checks)
    manifest.csv             one row per clip, columns MANIFEST_COLUMNS
    taxonomy.json            the label groups the label cells are measured against
    card.json, card.md       counts per label and split, durations, sources
    build_report.json        items that were skipped, each with its reason

Writing is resumable: :class:`DatasetWriter` renames each finished audio file into place
atomically and appends its row to a journal (``.journal.jsonl``, flushed and fsynced), so
a build killed at any point restarts where it stopped; :meth:`DatasetWriter.close` writes
the manifest and removes the journal.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import re
import warnings
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from musicbrain_cli.errors import DatasetError, MusicBrainWarning, TaxonomyError
from musicbrain_cli.taxonomy import DETECTION_GROUP, NONE, SEPARATOR, STYLE_GROUPS, UNKNOWN, Taxonomy

MANIFEST_COLUMNS = ("clip_id", "path", "source", "generator", "period", "composer",
                    "instrumentation", "work_id", "renderer", "split", "duration_s",
                    "score_path", "origin")
#: manifest columns that are label cells, measured against the taxonomy group of that name
LABEL_COLUMNS = ("source", "generator", "period", "composer", "instrumentation")
#: The splits every data set fills (by work), then ``test_xsf``: the cross-renderer test
#: split, rendered only with a SoundFont held out of training (reference corpus).
CORE_SPLITS = ("train", "val", "test")
SPLITS = CORE_SPLITS + ("test_xsf",)
DEFAULT_FRACTIONS = {"train": 0.8, "val": 0.1, "test": 0.1}
FORMAT_VERSION = 1

AUDIO_DIR, SCORE_DIR = "audio", "scores"
MANIFEST, TAXONOMY = "manifest.csv", "taxonomy.json"
CARD_JSON, CARD_MD, REPORT = "card.json", "card.md", "build_report.json"
JOURNAL = ".journal.jsonl"
#: Each clip's source fingerprint (:meth:`DatasetWriter.add`), kept beside a finished data
#: set so that a rerun can tell a changed source from an unchanged one.
SOURCES = ".sources.json"
_TMP_PREFIX = ".tmp-"
_CLIP_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,199}$")


@dataclass
class ClipRecord:
    """One clip's labels and provenance; ``path`` and ``duration_s`` are filled by the writer.

    Label cells follow :mod:`musicbrain_cli.taxonomy`: ``""`` unknown (masked from the
    loss), ``"-"`` known none, ``"a;b"`` several. ``origin`` names the original file or
    item and the clip's place in it (e.g. ``train_labels/1727.csv#t=30.000,60.000``).
    """

    clip_id: str
    source: str
    generator: str = ""
    period: str = ""
    composer: str = ""
    instrumentation: str = ""
    work_id: str = ""
    renderer: str = ""
    split: str = ""
    origin: str = ""
    score: Any = None  # pretty_midi.PrettyMIDI | None

    def row(self) -> dict[str, str]:
        return {"clip_id": self.clip_id, "source": self.source, "generator": self.generator,
                "period": self.period, "composer": self.composer,
                "instrumentation": self.instrumentation, "work_id": self.work_id,
                "renderer": self.renderer, "split": self.split, "origin": self.origin}


# --- splits ---------------------------------------------------------------------------------


def _stable_key(seed: int, work_id: str) -> str:
    return hashlib.sha256(f"{seed}\x00{work_id}".encode("utf-8")).hexdigest()


def assign_splits(work_ids: Iterable[str], *, fractions: Mapping[str, float] | None = None,
                  seed: int = 0) -> dict[str, str]:
    """Assign each distinct work to one split, so no work is ever in two splits.

    Works are ordered by a seeded SHA-256 of their id (not Python's salted ``hash``) and
    cut into consecutive runs sized by ``fractions`` with largest-remainder rounding; a
    split with a positive fraction gets at least one work whenever there are enough works.
    Deterministic: the same ids and seed give the same assignment on every machine.
    """
    fractions = dict(DEFAULT_FRACTIONS if fractions is None else fractions)
    if not fractions or any((not math.isfinite(v)) or v < 0 for v in fractions.values()):
        raise DatasetError(f"split fractions must be finite and >= 0, not {fractions!r}")
    total = sum(fractions.values())
    if total <= 0:
        raise DatasetError(f"split fractions sum to {total!r}, not a positive number")
    works = sorted({w for w in work_ids}, key=lambda w: (_stable_key(seed, w), w))
    if any(not w for w in works):
        raise DatasetError("a work id is empty: every clip needs a work id to be split by work")
    n = len(works)
    names = list(fractions)
    exact = [fractions[k] / total * n for k in names]
    counts = [int(math.floor(x)) for x in exact]
    for i in sorted(range(len(names)), key=lambda i: exact[i] - counts[i], reverse=True):
        if sum(counts) >= n:
            break
        counts[i] += 1
    # every split asked for gets a work when there are enough, taken from the largest
    wanted = [i for i in range(len(names)) if fractions[names[i]] > 0]
    if n >= len(wanted):
        for i in wanted:
            if counts[i] == 0:
                donor = max(range(len(names)), key=lambda j: counts[j])
                counts[donor] -= 1
                counts[i] += 1
    out, pos = {}, 0
    for name, count in zip(names, counts):
        for w in works[pos: pos + count]:
            out[w] = name
        pos += count
    return out


# --- writer ---------------------------------------------------------------------------------


def _check_clip_id(clip_id: str) -> None:
    if not isinstance(clip_id, str) or not _CLIP_ID.match(clip_id):
        raise DatasetError(
            f"invalid clip id {clip_id!r}: use letters, digits, '.', '_', '+', '-' "
            "(it names a file)"
        )


def _fsync_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: a temporary name, fsync, then rename."""
    tmp = path.with_name(_TMP_PREFIX + path.name)
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class DatasetWriter:
    """Write a data set folder clip by clip; rerunning the same build resumes it.

    Use as a context manager::

        with DatasetWriter(root, taxonomy, name="musicnet") as w:
            if not w.has(clip_id):
                w.add(ClipRecord(clip_id, source="human", ...), audio)
            w.skip("train_labels/9999.csv", "no notes")

    On open, rows journalled by an earlier run whose audio is present are kept; temporary
    files, audio without a journalled row (a crash between the two) and rows whose audio
    disappeared are removed, so the next ``has`` answers truthfully. Leaving the ``with``
    block on an exception keeps the journal (the build can resume) and writes no manifest.
    """

    def __init__(self, root: str | Path, taxonomy: Taxonomy, *, sample_rate: int = 22050,
                 audio_format: str = "flac", name: str | None = None,
                 build: Mapping[str, Any] | None = None):
        if audio_format not in ("flac", "wav"):
            raise DatasetError(f"audio_format must be 'flac' or 'wav', not {audio_format!r}")
        if not isinstance(sample_rate, int) or sample_rate <= 0:
            raise DatasetError(f"sample_rate must be a positive int, not {sample_rate!r}")
        self.root = Path(root)
        self.taxonomy = taxonomy
        self.sample_rate = sample_rate
        self.audio_format = audio_format
        self.name = name or self.root.name
        #: options that decide what a clip holds (``{"clip_s": 30.0}``): a resumed build must
        #: use the same, or its clips would mix two cuts of one piece
        self.build = dict(build or {})
        self.skipped: list[dict[str, str]] = []
        #: clips an earlier run wrote whose labels this run changed (clip, field, old, new)
        self.relabelled: list[dict[str, str]] = []
        #: adapter-specific facts for build_report.json (e.g. where labels came from)
        self.report: dict[str, Any] = {}
        #: clips an earlier run wrote that this run removed (clip, reason)
        self.dropped: list[dict[str, str]] = []
        self._closed = False
        self._rows: dict[str, dict[str, str]] = {}
        self._sources: dict[str, str] = {}
        self._open()

    # -- resume --

    def _open(self) -> None:
        if self.root.exists() and not self.root.is_dir():
            raise DatasetError(f"data set path {str(self.root)!r} exists and is not a folder")
        (self.root / AUDIO_DIR).mkdir(parents=True, exist_ok=True)
        (self.root / SCORE_DIR).mkdir(parents=True, exist_ok=True)
        old_tax = self.root / TAXONOMY
        if old_tax.exists() and (self.root / MANIFEST).exists():
            previous = Taxonomy.load(old_tax)
            if previous != self.taxonomy:
                # an older build with other labels: its rows may not encode under ours
                self.taxonomy = previous.merge(self.taxonomy)
        meta = self.root / ".build.json"
        if meta.exists():
            info = json.loads(meta.read_text(encoding="utf-8"))
            if info.get("sample_rate") != self.sample_rate:
                raise DatasetError(
                    f"{str(self.root)!r} was built at {info.get('sample_rate')} Hz, "
                    f"not {self.sample_rate} Hz: use another output folder"
                )
            for key, value in self.build.items():
                if key in info and info[key] != value:
                    raise DatasetError(f"{str(self.root)!r} was built with {key} "
                                       f"{info[key]!r}, not {value!r}: use another output "
                                       "folder, or the same option")
        else:
            meta.write_text(json.dumps({"sample_rate": self.sample_rate,
                                        "audio_format": self.audio_format, **self.build})
                            + "\n", encoding="utf-8")
        if (self.root / MANIFEST).exists():
            for row in _read_manifest(self.root / MANIFEST):
                self._rows[row["clip_id"]] = row
            try:
                sources = json.loads((self.root / SOURCES).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                sources = {}
            if isinstance(sources, dict):
                self._sources = {str(k): str(v) for k, v in sources.items() if k in self._rows}
        journal = self.root / JOURNAL
        if journal.exists():
            with open(journal, encoding="utf-8") as fh:
                for line in fh:
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError:
                        continue  # the last line of a killed build may be cut short
                    if "dropped" in row:            # removed by :meth:`drop`
                        self._rows.pop(row["clip_id"], None)
                        self._sources.pop(row["clip_id"], None)
                        self.dropped.append({"clip": row["clip_id"], "reason": row["dropped"]})
                        continue
                    source = row.pop("source_sha256", None)
                    self._rows[row["clip_id"]] = row
                    if source:
                        self._sources[row["clip_id"]] = source
        for folder in (AUDIO_DIR, SCORE_DIR):
            for p in (self.root / folder).iterdir():
                if p.name.startswith(_TMP_PREFIX):
                    p.unlink()
        for clip_id, row in list(self._rows.items()):
            if not (self.root / row["path"]).is_file() or (
                    row.get("score_path") and not (self.root / row["score_path"]).is_file()):
                del self._rows[clip_id]
        known = {Path(r["path"]).name for r in self._rows.values()}
        known |= {Path(r["score_path"]).name for r in self._rows.values() if r.get("score_path")}
        for folder in (AUDIO_DIR, SCORE_DIR):
            for p in (self.root / folder).iterdir():
                if p.name not in known:
                    p.unlink()  # written but never journalled: a half-finished clip
        self._journal = open(journal, "a", encoding="utf-8")

    def __enter__(self) -> "DatasetWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self._journal.close()

    # -- writing --

    @property
    def rows(self) -> list[dict[str, str]]:
        return [self._rows[k] for k in sorted(self._rows)]

    def work_splits(self) -> dict[str, str]:
        """Split of each work already written: a resumed build must keep them."""
        return {r["work_id"]: r["split"] for r in self._rows.values()}

    def has(self, clip_id: str) -> bool:
        """True when the clip is already complete (audio written and journalled)."""
        return clip_id in self._rows

    def source_of(self, clip_id: str) -> str | None:
        """The source fingerprint the clip was written with (:meth:`add`), ``None`` when
        none was given (or it was written before fingerprints were kept)."""
        return self._sources.get(clip_id)

    def clip_ids(self, prefix: str = "") -> list[str]:
        """The ids of the complete clips starting with ``prefix``, sorted."""
        return sorted(c for c in self._rows if c.startswith(prefix))

    def drop(self, clip_id: str, reason: str) -> None:
        """Remove a clip an earlier run wrote (its source changed or is gone): its files,
        its row, journalled so that a killed build stays consistent, and listed in
        ``build_report.json`` (``dropped``)."""
        row = self._rows.pop(clip_id)
        self._sources.pop(clip_id, None)
        self._journal.write(json.dumps({"clip_id": clip_id, "dropped": reason}) + "\n")
        self._journal.flush()
        os.fsync(self._journal.fileno())
        for rel in (row.get("path"), row.get("score_path")):
            if rel:
                (self.root / rel).unlink(missing_ok=True)
        self.dropped.append({"clip": clip_id, "reason": reason})

    #: the fields of a clip's row that are labels: a resumed build takes this run's
    LABEL_FIELDS = ("source", "generator", "period", "composer", "instrumentation")

    def relabel(self, clip_id: str, record: ClipRecord) -> bool:
        """Give the already written clip ``clip_id`` ``record``'s labels where they differ
        (a rerun with a corrected ``--labels`` file, say), journalled and listed in
        ``build_report.json`` (``relabelled``); its audio is kept. Returns whether any
        label changed."""
        old = self._rows[clip_id]
        new = dict(old)
        fresh = {k: ("" if v is None else str(v)) for k, v in record.row().items()}
        for name in self.LABEL_FIELDS:
            if fresh[name] != old.get(name, ""):
                self.relabelled.append({"clip": clip_id, "field": name,
                                        "was": old.get(name, ""), "now": fresh[name]})
                new[name] = fresh[name]
        if new == old:
            return False
        try:
            self.taxonomy.encode(new)
        except TaxonomyError as exc:
            raise TaxonomyError(f"clip {clip_id!r}: {exc}") from exc
        self._rows[clip_id] = new
        self._journal.write(json.dumps(new) + "\n")
        self._journal.flush()
        return True

    def add(self, record: ClipRecord, audio: np.ndarray, *, source: str | None = None) -> None:
        """Write one clip: audio (and its score, if any), then its journal row. ``source``:
        a fingerprint of what the clip was made from (:meth:`source_of`)."""
        if self._closed:
            raise DatasetError("DatasetWriter is closed")
        _check_clip_id(record.clip_id)
        row = {k: ("" if v is None else str(v)) for k, v in record.row().items()}
        if row["split"] not in SPLITS:
            raise DatasetError(f"clip {record.clip_id!r}: split {row['split']!r} not in {SPLITS}")
        if not row["work_id"]:
            raise DatasetError(f"clip {record.clip_id!r} has no work id")
        try:
            self.taxonomy.encode(row)
        except TaxonomyError as exc:
            raise TaxonomyError(f"clip {record.clip_id!r}: {exc}") from exc
        y = np.asarray(audio)
        if y.ndim != 1 or y.size == 0 or not np.issubdtype(y.dtype, np.floating):
            raise DatasetError(
                f"clip {record.clip_id!r}: audio must be non-empty mono float [shape=(n,)], "
                f"got shape {y.shape} dtype {y.dtype}"
            )
        if not np.all(np.isfinite(y)):
            raise DatasetError(f"clip {record.clip_id!r}: audio holds NaN or infinity")
        import soundfile

        buf = io.BytesIO()
        fmt = self.audio_format.upper()
        soundfile.write(buf, np.clip(y, -1.0, 1.0), self.sample_rate, format=fmt,
                        subtype="PCM_16")
        rel_audio = f"{AUDIO_DIR}/{record.clip_id}.{self.audio_format}"
        rel_score = ""
        if record.score is not None:
            rel_score = f"{SCORE_DIR}/{record.clip_id}.mid"
            mbuf = io.BytesIO()
            record.score.write(mbuf)
            _fsync_write(self.root / rel_score, mbuf.getvalue())
        _fsync_write(self.root / rel_audio, buf.getvalue())
        row.update(path=rel_audio, score_path=rel_score,
                   duration_s=f"{y.size / self.sample_rate:.3f}")
        self._journal.write(json.dumps({**row, **({"source_sha256": source} if source else {})},
                                       ensure_ascii=False) + "\n")
        self._journal.flush()
        os.fsync(self._journal.fileno())
        self._rows[record.clip_id] = row
        if source:
            self._sources[record.clip_id] = source
        else:
            self._sources.pop(record.clip_id, None)

    def skip(self, item: str, reason: str) -> None:
        """Record an item that was left out, and why; the build carries on."""
        self.skipped.append({"item": str(item), "reason": str(reason)})

    def close(self) -> None:
        """Write manifest.csv, taxonomy.json, the card and build_report.json."""
        if self._closed:
            return
        self._closed = True
        self._journal.close()
        rows = self.rows
        report = dict(self.report)
        if self.relabelled:
            report["relabelled"] = self.relabelled
        if self.dropped:
            report["dropped"] = self.dropped
        _fsync_write(self.root / SOURCES, (json.dumps(
            {c: self._sources[c] for c in sorted(self._sources) if c in self._rows},
            indent=0, sort_keys=True) + "\n").encode("utf-8"))
        write_dataset_files(self.root, self.taxonomy, rows, name=self.name,
                            sample_rate=self.sample_rate, skipped=self.skipped,
                            report=report)
        (self.root / JOURNAL).unlink(missing_ok=True)


def write_dataset_files(root: Path, taxonomy: Taxonomy, rows: list[dict[str, str]], *,
                        name: str, sample_rate: int, skipped: list[dict[str, str]],
                        report: Mapping[str, Any] | None = None) -> None:
    """Write the manifest, taxonomy, card and build report of a finished data set;
    ``report`` adds an adapter's own keys to ``build_report.json``."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=MANIFEST_COLUMNS, extrasaction="ignore",
                            lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row.get(k, "") for k in MANIFEST_COLUMNS})
    _fsync_write(root / MANIFEST, buf.getvalue().encode("utf-8"))
    _fsync_write(root / TAXONOMY, (json.dumps(taxonomy.to_dict(), indent=2) + "\n").encode())
    card = dataset_card(rows, taxonomy, name=name, sample_rate=sample_rate)
    _fsync_write(root / CARD_JSON, (json.dumps(card, indent=2) + "\n").encode("utf-8"))
    _fsync_write(root / CARD_MD, card_markdown(card).encode("utf-8"))
    out = {"name": name, "clips": len(rows), "skipped_count": len(skipped),
           "skipped": skipped, **(report or {})}
    _fsync_write(root / REPORT, (json.dumps(out, indent=2, ensure_ascii=False) + "\n")
                 .encode("utf-8"))


# --- card -----------------------------------------------------------------------------------


#: A style label whose training clips are this share or less human (or AI) is a shortcut
#: risk: a detector can learn the style instead of the source. 0.2 means at most one clip in
#: five from the other side, against an overall balance near one in two.
SHORTCUT_SHARE = 0.2


def shortcut_flag(human: int, ai: int) -> str | None:
    """"mostly ai" / "mostly human" when at most :data:`SHORTCUT_SHARE` of a label's clips
    come from the other side, else None (also when it has none)."""
    if not human + ai:
        return None
    share = ai / (human + ai)
    return ("mostly ai" if share >= 1 - SHORTCUT_SHARE
            else "mostly human" if share <= SHORTCUT_SHARE else None)


def source_balance(rows: list[dict[str, str]], taxonomy: Taxonomy, *,
                   split: str = "train") -> dict:
    """Human and AI clips of ``split`` per style label (period, composer, instrumentation:
    not the generator, which only AI clips carry), and which labels are a shortcut risk.

    A label is flagged ``"mostly ai"`` when at most :data:`SHORTCUT_SHARE` of its clips are
    human (a detector may then call any music of that style AI: the false accusation this
    tool must not make) and ``"mostly human"`` in the opposite case (AI music of that style may
    pass as human). Unknown and none cells are not counted. A split with clips of one source
    only (``data notagen`` alone, say) flags nothing: balance is then a property of the data
    set it will be merged into (``single_source``).
    """
    train = [r for r in rows if r.get("split") == split]
    sources = Counter((r.get(DETECTION_GROUP) or "").strip() for r in train)
    known = sources["human"] + sources["ai"]
    single = not (sources["human"] and sources["ai"])
    out = {"split": split, "shortcut_share": SHORTCUT_SHARE, "single_source": single,
           "overall_ai_share": round(sources["ai"] / known, 4) if known else None, "groups": {}}
    for g in taxonomy.groups:
        if g.name == DETECTION_GROUP or g.name == "generator" or g.name not in STYLE_GROUPS:
            continue
        counts: dict[str, Counter] = {}
        for r in train:
            source = (r.get(DETECTION_GROUP) or "").strip()
            cell = (r.get(g.name) or UNKNOWN).strip()
            if source not in ("human", "ai") or cell in (UNKNOWN, NONE):
                continue
            for label in cell.split(SEPARATOR):
                counts.setdefault(label.strip(), Counter())[source] += 1
        labels = {}
        for label in g.labels:
            c = counts.get(label, Counter())
            n = c["human"] + c["ai"]
            share = c["ai"] / n if n else None
            labels[label] = {"human": c["human"], "ai": c["ai"],
                             "ai_share": None if share is None else round(share, 4),
                             "flag": None if single else shortcut_flag(c["human"], c["ai"])}
        out["groups"][g.name] = labels
    return out


def dataset_card(rows: list[dict[str, str]], taxonomy: Taxonomy, *, name: str,
                 sample_rate: int) -> dict:
    """Counts per label and split (clips and hours), plus unknown / none counts per group."""
    splits = [s for s in SPLITS if any(r["split"] == s for r in rows)]
    splits += sorted({r["split"] for r in rows} - set(splits))
    per_split = {s: {"clips": 0, "hours": 0.0, "works": set()} for s in splits}
    for r in rows:
        d = per_split[r["split"]]
        d["clips"] += 1
        d["hours"] += float(r.get("duration_s") or 0) / 3600
        d["works"].add(r.get("work_id", ""))
    groups = {}
    for g in taxonomy.groups:
        counts: dict[str, Counter] = {label: Counter() for label in g.labels}
        counts["(unknown)"], counts["(none)"] = Counter(), Counter()
        for r in rows:
            cell = (r.get(g.name) or UNKNOWN).strip()
            if cell == UNKNOWN:
                counts["(unknown)"][r["split"]] += 1
            elif cell == NONE:
                counts["(none)"][r["split"]] += 1
            else:
                for label in cell.split(SEPARATOR):
                    counts.setdefault(label.strip(), Counter())[r["split"]] += 1
        groups[g.name] = {label: {s: c[s] for s in splits} for label, c in counts.items()}
    return {
        "format_version": FORMAT_VERSION,
        "name": name,
        "sample_rate": sample_rate,
        "clips": len(rows),
        "hours": round(sum(float(r.get("duration_s") or 0) for r in rows) / 3600, 4),
        "splits": {s: {"clips": d["clips"], "hours": round(d["hours"], 4),
                       "works": len(d["works"])} for s, d in per_split.items()},
        "renderers": dict(Counter(r.get("renderer", "") for r in rows)),
        "labels": groups,
        "source_balance": source_balance(rows, taxonomy),
    }


def card_markdown(card: dict) -> str:
    splits = list(card["splits"])
    lines = [f"# Data set card: {card['name']}", "",
             f"{card['clips']} clips, {card['hours']:.2f} h of audio at "
             f"{card['sample_rate']} Hz. Splits group clips by work.", "",
             "| split | clips | works | hours |", "|---|---:|---:|---:|"]
    for s, d in card["splits"].items():
        lines.append(f"| {s} | {d['clips']} | {d['works']} | {d['hours']:.3f} |")
    lines += ["", "Renderers: " + ", ".join(f"{k or '(none)'} ({v})"
                                             for k, v in sorted(card["renderers"].items())), ""]
    for group, labels in card["labels"].items():
        lines += [f"## {group}", "", "| label | " + " | ".join(splits) + " |",
                  "|---|" + "---:|" * len(splits)]
        for label, counts in labels.items():
            if not any(counts.values()) and label.startswith("("):
                continue
            lines.append(f"| {label} | " + " | ".join(str(counts.get(s, 0)) for s in splits)
                         + " |")
        lines.append("")
    lines += _balance_markdown(card.get("source_balance"))
    return "\n".join(lines)


def shortcut_risks(balance: Mapping[str, Any] | None) -> list[tuple[str, str, dict]]:
    """``(group, label, counts)`` of every flagged label of a :func:`source_balance` record."""
    return [(g, label, c) for g, labels in ((balance or {}).get("groups") or {}).items()
            for label, c in labels.items() if c.get("flag")]


def _balance_markdown(balance: dict | None) -> list[str]:
    if not balance:
        return []
    share = balance["overall_ai_share"]
    lines = [f"## Source balance per style label ({balance['split']})", "",
             f"AI share of all {balance['split']} clips: "
             f"{'n/a' if share is None else f'{share:.2f}'}. A label whose clips are at most "
             f"{balance['shortcut_share']:.0%} human (or AI) is a shortcut risk: a detector "
             "can learn the style instead of the source, and a \"mostly ai\" label is where "
             "it would accuse human music of that style.", ""]
    if balance.get("single_source"):
        return lines + [f"The {balance['split']} clips are of one source only; balance is a "
                        "property of the data set this one is merged into.", ""]
    flagged = shortcut_risks(balance)
    if not flagged:
        return lines + ["No style label is a shortcut risk.", ""]
    lines += ["| group | label | human | ai | AI share | risk |", "|---|---|---:|---:|---:|---|"]
    lines += [f"| {g} | {label} | {c['human']} | {c['ai']} | {c['ai_share']:.2f} | {c['flag']} |"
              for g, label, c in flagged]
    return lines + [""]


# --- reader ---------------------------------------------------------------------------------


def read_csv_rows(path: Path, columns: Sequence[str], *, what: str = "") -> list[dict[str, str]]:
    """Rows of a UTF-8 CSV file that must hold ``columns``; a typed error names what is wrong."""
    label = f"{what} " if what else ""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = set(columns) - set(reader.fieldnames or ())
            if missing:
                raise DatasetError(f"{str(path)!r} lacks {label}columns {sorted(missing)}")
            return list(reader)
    except (OSError, csv.Error, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read {label}{str(path)!r}: {exc}") from exc


def _read_manifest(path: Path) -> list[dict[str, str]]:
    return [{k: (row.get(k) or "") for k in MANIFEST_COLUMNS}
            for row in read_csv_rows(path, MANIFEST_COLUMNS, what="manifest")]


def _member(root: Path, rel: str, what: str) -> Path:
    """``root / rel`` when ``rel`` (a manifest cell) names a file inside the data set folder.

    A manifest is input: a cell such as ``../other/x.flac``, ``/home/x.flac`` or a link that
    leads out of the folder would have the cache train on, and a merge copy, a file that is
    no clip of this data set. Refused with :class:`DatasetError` naming the cell.
    """
    parts = Path(rel).parts
    if not rel or Path(rel).is_absolute() or ".." in parts:
        raise DatasetError(f"{what} path {rel!r} is not a path inside the data set folder")
    path = root / rel
    if not path.resolve().is_relative_to(root.resolve()):
        raise DatasetError(f"{what} {rel!r} leads out of the data set folder "
                           f"{str(root)!r} (a link to {str(path.resolve())!r})")
    return path


@dataclass
class Dataset:
    """A finished data set folder: its taxonomy and manifest rows (dicts of strings)."""

    root: Path
    taxonomy: Taxonomy
    rows: list[dict[str, str]] = field(default_factory=list)
    sample_rate: int | None = None

    @classmethod
    def load(cls, root: str | Path) -> "Dataset":
        root = Path(root)
        if not (root / MANIFEST).is_file():
            hint = " (an unfinished build? rerun it to finish)" if (root / JOURNAL).exists() \
                else ""
            raise DatasetError(f"{str(root)!r} has no {MANIFEST}: not a data set{hint}")
        taxonomy = Taxonomy.load(root / TAXONOMY)
        rows = _read_manifest(root / MANIFEST)
        for r in rows:      # every file a row names is one of this folder's, checked once
            _member(root, r["path"], f"clip {r['clip_id']!r}: audio")
            if r["score_path"]:
                _member(root, r["score_path"], f"clip {r['clip_id']!r}: score")
        sample_rate = None
        if (root / CARD_JSON).is_file():
            try:
                sample_rate = json.loads((root / CARD_JSON).read_text("utf-8")).get("sample_rate")
            except (OSError, json.JSONDecodeError) as exc:
                raise DatasetError(f"cannot read {str(root / CARD_JSON)!r}: {exc}") from exc
        return cls(root, taxonomy, rows, sample_rate)

    def split(self, name: str) -> list[dict[str, str]]:
        if name not in SPLITS:
            raise DatasetError(f"unknown split {name!r} (splits: {SPLITS})")
        return [r for r in self.rows if r["split"] == name]

    def audio_path(self, row: Mapping[str, str]) -> Path:
        return _member(self.root, row["path"], f"clip {row.get('clip_id')!r}: audio")

    def score_path(self, row: Mapping[str, str]) -> Path | None:
        if not row.get("score_path"):
            return None
        return _member(self.root, row["score_path"], f"clip {row.get('clip_id')!r}: score")

    def encode(self, row: Mapping[str, str]) -> tuple[np.ndarray, np.ndarray]:
        return self.taxonomy.encode(row)

    def validate(self) -> None:
        """Check files, labels, splits and ids; raise DatasetError listing every problem."""
        problems: list[str] = []
        seen: set[str] = set()
        work_split: dict[str, set[str]] = defaultdict(set)
        for r in self.rows:
            cid = r["clip_id"]
            if cid in seen:
                problems.append(f"clip id {cid!r} repeats")
            seen.add(cid)
            if r["split"] not in SPLITS:
                problems.append(f"clip {cid!r}: split {r['split']!r} not in {SPLITS}")
            if not r["work_id"]:
                problems.append(f"clip {cid!r}: empty work id")
            work_split[r["work_id"]].add(r["split"])
            try:
                audio, sp = self.audio_path(r), self.score_path(r)
            except DatasetError as exc:
                problems.append(str(exc))
                audio = sp = None
            if audio is not None and not audio.is_file():
                problems.append(f"clip {cid!r}: audio {r['path']!r} missing")
            if sp is not None and not sp.is_file():
                problems.append(f"clip {cid!r}: score {r['score_path']!r} missing")
            try:
                self.taxonomy.encode(r)
            except TaxonomyError as exc:
                problems.append(f"clip {cid!r}: {exc}")
        for work, splits in sorted(work_split.items()):
            if len(splits) > 1:
                problems.append(f"work {work!r} is in several splits: {sorted(splits)}")
        if problems:
            more = f" (and {len(problems) - 20} more)" if len(problems) > 20 else ""
            raise DatasetError(f"data set {str(self.root)!r} is invalid: "
                               + "; ".join(problems[:20]) + more)


# --- clip planning --------------------------------------------------------------------------

CLIP_S = 30.0       # clip length: three 10 s model windows, short enough to shuffle well
MIN_CLIP_S = 5.0    # a shorter remainder is appended to the previous clip, never dropped


def plan_clips(duration_s: float, *, clip_s: float = CLIP_S,
               min_clip_s: float = MIN_CLIP_S) -> list[tuple[float, float]]:
    """Cut ``[0, duration_s)`` into consecutive ``clip_s`` clips, ``(start_s, end_s)``.

    A remainder shorter than ``min_clip_s`` joins the last clip (so no music is lost);
    a piece shorter than ``min_clip_s`` is one clip. Returns [] for a non-positive length.
    """
    if clip_s <= 0 or min_clip_s < 0:
        raise DatasetError(f"clip_s must be > 0 and min_clip_s >= 0, not {clip_s}, {min_clip_s}")
    if duration_s <= 0:
        return []
    n = max(1, int(duration_s // clip_s))
    if duration_s - n * clip_s >= min_clip_s:
        n += 1
    bounds = [(i * clip_s, min((i + 1) * clip_s, duration_s)) for i in range(n)]
    bounds[-1] = (bounds[-1][0], duration_s)
    return bounds


def slice_midi(midi, start_s: float, end_s: float):
    """The notes of ``midi`` sounding in ``[start_s, end_s)``, shifted to start at 0.

    Notes crossing the edges are clipped to the clip, so the score of a clip lines up
    sample for sample with its audio.
    """
    import pretty_midi

    out = pretty_midi.PrettyMIDI()
    for inst in midi.instruments:
        new = pretty_midi.Instrument(inst.program, is_drum=inst.is_drum, name=inst.name)
        for n in inst.notes:
            if n.end <= start_s or n.start >= end_s:
                continue
            s, e = max(n.start, start_s) - start_s, min(n.end, end_s) - start_s
            if e > s:
                new.notes.append(pretty_midi.Note(n.velocity, n.pitch, s, e))
        if new.notes:
            out.instruments.append(new)
    return out


def origin_fragment(item: str, start_s: float, end_s: float) -> str:
    """``item#t=start,end`` (W3C Media Fragments temporal syntax, seconds)."""
    return f"{item}#t={start_s:.3f},{end_s:.3f}"


def warn_small_split(assignment: Mapping[str, str]) -> None:
    counts = Counter(assignment.values())
    empty = [s for s in CORE_SPLITS if counts.get(s, 0) == 0]
    if empty and assignment:
        warnings.warn(f"splits {empty} hold no work ({len(assignment)} works in all)",
                      MusicBrainWarning, stacklevel=2)
