"""NotaGen output (ABC files) -> a MusicBrain data set of rendered, labelled AI clips.

What NotaGen writes (github.com/ElectricAlexis/NotaGen, ``inference/inference.py`` and the
gradio demo):

- batch inference: ``output/original/<weights>_k_<k>_p_<p>_temp_<t>/<time>_<secs>_<n>.abc``
  (the raw, "rest-reduced" interleaved text: body lines start with ``[r:i/n]`` and voices
  that only rest in a bar are left out) and the same file name under
  ``output/interleaved/...`` (rests restored, ``[r:]`` removed). Both folders hold the same
  pieces: each piece is taken once, from ``interleaved/`` when it exists there.
- the demo: ``<YYYYmmdd_HHMMSS>_<period>_<composer>_<instrumentation>.abc``.
- Both begin with the prompt as comment lines (``%Baroque``, ``%Bach, Johann Sebastian``,
  ``%Keyboard``, ``%end``) when generation was conditioned.

Interleaved ABC holds one bar of every voice per line, ``[V:1]...|[V:2]...|``; music21
cannot read it, so :func:`deinterleave_abc` rewrites it as standard multi-voice ABC.

Labels come from the prompt lines, else from the demo's file name; a file whose three
labels cannot be found is skipped (a wrong style label is worse than a missing clip).
The generator comes from ``--generator``, else a manifest (``generators.csv``:
``path,generator``), else the weights name of the batch folder, whose patch-decoder depth
``p_layers_12/16/20`` names NotaGen-small / -medium / -large (NotaGen's model table:
110M, 244M, 516M parameters).
"""

from __future__ import annotations

import csv
import hashlib
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from musicbrain_cli.errors import DatasetError, MusicBrainError, RenderError
from musicbrain_cli.progress import NULL_PROGRESS, Progress
from musicbrain_cli.training.dataset import (ClipRecord, DatasetWriter, assign_splits,
                                             warn_small_split)
from musicbrain_cli.training.labels import (canonical_composer, canonical_instrumentation,
                                            canonical_period, style_taxonomy)
from musicbrain_cli.training.pieces import write_piece
from musicbrain_cli.training.render import (Humanize, SoundFont, available_soundfonts,
                                            score_to_midi)

GENERATOR_BY_DEPTH = {12: "notagen-small", 16: "notagen-medium", 20: "notagen-large"}
GENERATOR_MANIFEST = "generators.csv"

_INLINE_V = re.compile(r"\[V:\s*([^\]\s]+)[^\]]*\]")
_R_MARK = re.compile(r"^\[r:[^\]]*\]")
_DEMO_NAME = re.compile(
    r"^(?P<time>\d{8}_\d{6})_(?P<period>[^_]+)_(?P<composer>.+)_(?P<instr>[^_]+)$")
_BATCH_DIR = re.compile(r"^(?P<weights>.+)_k_(?P<k>[^_]+)_p_(?P<p>[^_]+)_temp_(?P<t>[^_]+)$")
_P_LAYERS = re.compile(r"p_layers_(\d+)")


# --- ABC ------------------------------------------------------------------------------------


def _field(lines: list[str], key: str, default: str) -> str:
    for ln in lines:
        if ln.startswith(key + ":"):
            default = ln[len(key) + 1:].strip()
    return default


def _bar_units(meter: str, unit: str) -> Fraction:
    """Length of a full bar in units of L:, for a rest that fills a missing voice's bar."""
    try:
        unit_f = Fraction(unit)
    except (ValueError, ZeroDivisionError):
        unit_f = Fraction(1, 8)
    meter = {"C": "4/4", "C|": "2/2"}.get(meter, meter)
    try:
        meter_f = Fraction(meter)
    except (ValueError, ZeroDivisionError):
        meter_f = Fraction(4, 4)
    return meter_f / unit_f


def _length(units: Fraction) -> str:
    if units.denominator == 1:
        return str(units.numerator)
    return f"{units.numerator}/{units.denominator}"


def deinterleave_abc(text: str) -> str:
    """Interleaved ABC (one line per bar, every voice inline ``[V:n]``) -> standard ABC.

    The header (everything before the first line holding ``[V:``) is kept; then each voice
    gets a ``V:n`` line followed by its bars, one per line, in the order the ``V:``
    definitions (else the first line) list them. A leading ``[r:i/n]`` bar counter is
    dropped. A voice missing from a line (NotaGen's "rest-reduced" raw output) gets an
    invisible rest ``x`` of one full bar under the current ``M:``/``L:``; the bar's own
    barline is reused. Text without inline voices comes back unchanged.
    """
    lines = text.splitlines()
    first = next((i for i, ln in enumerate(lines) if _INLINE_V.search(ln)), None)
    if first is None:
        return text
    header, body = lines[:first], lines[first:]
    order = [m.group(1) for ln in header for m in [re.match(r"^V:\s*(\S+)", ln)] if m]
    bars: dict[str, list[str]] = {v: [] for v in order}
    meter, unit = _field(header, "M", "4/4"), _field(header, "L", "1/8")
    for n_line, raw in enumerate(body):
        line = _R_MARK.sub("", raw.strip())
        if not line or line.startswith("%"):
            continue
        if re.match(r"^[A-Za-z]:", line):  # a field line between bars (M:, L:, K:, ...)
            if line.startswith("M:"):
                meter = line[2:].strip()
            elif line.startswith("L:"):
                unit = line[2:].strip()
            for v in bars:
                bars[v].append(line)
            continue
        pieces = _INLINE_V.split(line)
        # pieces = [prefix, v1, text1, v2, text2, ...]; the prefix is a left barline
        prefix = pieces[0].strip()
        seen: dict[str, str] = {}
        for vid, bar in zip(pieces[1::2], pieces[2::2]):
            seen[vid] = bar.strip()
            if vid not in bars:
                # a voice first heard mid-piece rests (invisibly) through the bars before
                done = len(next(iter(bars.values()))) if bars else 0
                bars[vid] = [f"x{_length(_bar_units(meter, unit))}|"] * done
                order.append(vid)
        barline = ""
        for bar in seen.values():
            m = re.search(r"(:*\|[\]|:]*|\|\]|::)\s*$", bar)
            if m:
                barline = m.group(1)
                break
        for vid in bars:
            text_v = seen.get(vid)
            if text_v is None:
                text_v = f"x{_length(_bar_units(meter, unit))}{barline or '|'}"
            if n_line == 0 and prefix:
                text_v = prefix + text_v
            bars[vid].append(text_v)
    out = list(header)
    for vid in order:
        out.append(f"V:{vid}")
        out.extend(bars[vid])
    return "\n".join(out) + "\n"


# --- labels ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class StyleLabels:
    period: str
    composer: str
    instrumentation: str


def prompt_labels(text: str) -> dict[str, str]:
    """Labels from the prompt comment lines at the top of a NotaGen file (may be partial)."""
    found: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if not line.startswith("%") or line.startswith("%%"):
            break
        value = line[1:].strip()
        if value.lower() == "end":
            break
        if canonical_period(value):
            found["period"] = canonical_period(value)
        elif canonical_instrumentation(value):
            found["instrumentation"] = canonical_instrumentation(value)
        elif value and "composer" not in found:
            found["composer"] = canonical_composer(value)
    return found


def filename_labels(path: Path) -> dict[str, str]:
    """Labels from the demo's ``<time>_<period>_<composer>_<instrumentation>.abc`` name."""
    m = _DEMO_NAME.match(path.stem)
    if not m:
        return {}
    period = canonical_period(m.group("period"))
    instr = canonical_instrumentation(m.group("instr"))
    if period is None or instr is None:
        return {}
    return {"period": period, "composer": canonical_composer(m.group("composer")),
            "instrumentation": instr}


def find_labels(path: Path, text: str) -> StyleLabels:
    """Prompt lines first, the file name for whatever they lack; DatasetError if incomplete."""
    labels = {**filename_labels(path), **prompt_labels(text)}
    missing = [k for k in ("period", "composer", "instrumentation") if not labels.get(k)]
    if missing:
        raise DatasetError(
            f"no {', '.join(missing)} label: neither prompt lines (%Period, %Composer, "
            "%Instrumentation) nor a demo file name <time>_<period>_<composer>_<instr>.abc"
        )
    return StyleLabels(labels["period"], labels["composer"], labels["instrumentation"])


def generator_from_folder(folder_name: str) -> str | None:
    """``<weights>_k_<k>_p_<p>_temp_<t>`` -> notagen-small/-medium/-large by p_layers."""
    m = _BATCH_DIR.match(folder_name)
    if not m:
        return None
    depth = _P_LAYERS.search(m.group("weights"))
    if depth is None:
        return None
    return GENERATOR_BY_DEPTH.get(int(depth.group(1)), f"notagen-p{depth.group(1)}")


def _read_generator_manifest(root: Path) -> dict[str, str]:
    path = root / GENERATOR_MANIFEST
    if not path.is_file():
        return {}
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            if not {"path", "generator"} <= set(reader.fieldnames or ()):
                raise DatasetError(f"{str(path)!r} needs columns 'path,generator'")
            return {row["path"].strip(): row["generator"].strip() for row in reader}
    except (OSError, csv.Error, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read {str(path)!r}: {exc}") from exc


# --- discovery ------------------------------------------------------------------------------


@dataclass(frozen=True)
class AbcItem:
    path: Path
    rel: str           # path relative to the input root, as written in reports
    key: str           # identity of the piece: batch folder + file name (original == interleaved)
    generator: str     # "" when unknown


def discover(root: Path, *, generator: str | None = None) -> list[AbcItem]:
    """Every NotaGen piece under ``root``, once each (``interleaved/`` beats ``original/``)."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"NotaGen folder {str(root)!r} does not exist")
    manifest = _read_generator_manifest(root)
    items: dict[str, AbcItem] = {}
    for path in sorted(root.rglob("*.abc")):
        rel = path.relative_to(root).as_posix()
        parts = path.relative_to(root).parts
        kind = next((p for p in parts[:-1] if p in ("original", "interleaved")), None)
        folder = path.parent.name
        key = f"{folder}/{path.name}" if kind else rel
        gen = generator or manifest.get(rel) or generator_from_folder(folder) or ""
        item = AbcItem(path, rel, key, gen)
        if key in items and kind != "interleaved":
            continue
        items[key] = item
    return [items[k] for k in sorted(items)]


# --- build ----------------------------------------------------------------------------------


def build_notagen_dataset(root: str | Path, out: str | Path, *, soundfonts: list[SoundFont] |
                          None = None, seed: int = 0, limit: int | None = None,
                          generator: str | None = None, sample_rate: int = 22050,
                          clip_s: float = 30.0, humanize: Humanize | None = None,
                          fractions: dict[str, float] | None = None,
                          progress: Progress = NULL_PROGRESS) -> dict:
    """Render NotaGen ABC files into a data set at ``out``; returns the build summary.

    Each piece is rendered once with one SoundFont (cycled by piece so every SoundFont
    covers every label alike, as in the MusicNet adapter), cut into ``clip_s`` clips, and
    written with its clip's MIDI. Resumable: pieces whose clips all exist are skipped.
    """
    items = discover(Path(root), generator=generator)
    fonts = soundfonts or available_soundfonts()
    parsed: list[tuple[AbcItem, StyleLabels]] = []
    skipped: list[tuple[str, str]] = []
    for item in items:
        try:
            text = item.path.read_text(encoding="utf-8", errors="replace")
            parsed.append((item, find_labels(item.path, text)))
        except (OSError, DatasetError) as exc:
            skipped.append((item.rel, str(exc)))
    # splits from every piece found, so --limit and resumed runs never move a work
    splits = assign_splits([_work_id(it) for it, _ in parsed], fractions=fractions, seed=seed)
    warn_small_split(splits)
    if limit is not None:
        kept = {it.rel for it in items[:limit]}
        parsed = [(it, lab) for it, lab in parsed if it.rel in kept]
        skipped = [(rel, why) for rel, why in skipped if rel in kept]
        items = items[:limit]
    generators = sorted({it.generator for it, _ in parsed if it.generator})
    composers = sorted({lab.composer for _, lab in parsed})
    taxonomy = style_taxonomy(generators=generators, composers=composers)
    n_clips = 0
    with DatasetWriter(out, taxonomy, sample_rate=sample_rate, name="notagen") as writer:
        splits.update(writer.work_splits())
        for item, reason in skipped:
            writer.skip(item, reason)
        with progress.task("rendering NotaGen pieces", total=len(parsed)) as task:
            for item, labels in parsed:
                try:
                    n_clips += _build_piece(writer, item, labels, fonts, splits, seed=seed,
                                            sample_rate=sample_rate, clip_s=clip_s,
                                            humanize=humanize)
                except MusicBrainError as exc:
                    writer.skip(item.rel, str(exc))
                task.advance()
        summary = {"pieces": len(items), "clips": len(writer.rows),
                   "new_clips": n_clips, "skipped": len(writer.skipped)}
    return summary


def _work_id(item: AbcItem) -> str:
    # every generated piece is its own work; the key is the same in original/ and interleaved/
    return "notagen:" + item.key


def _piece_id(item: AbcItem) -> str:
    return hashlib.sha256(item.key.encode("utf-8")).hexdigest()[:12]


def _build_piece(writer: DatasetWriter, item: AbcItem, labels: StyleLabels,
                 fonts: list[SoundFont], splits: dict[str, str], *, seed: int,
                 sample_rate: int, clip_s: float, humanize: Humanize | None) -> int:
    pid = _piece_id(item)
    try:
        midi = score_to_midi(item.path, instrumentation=labels.instrumentation)
    except RenderError as exc:
        raise RenderError(f"bad ABC: {exc}") from exc
    work = _work_id(item)
    template = ClipRecord(clip_id="", source="ai", generator=item.generator,
                          period=labels.period, composer=labels.composer,
                          instrumentation=labels.instrumentation, work_id=work,
                          split=splits[work])
    return write_piece(writer, midi, template, clip_prefix=f"ng-{pid}", item=item.rel,
                       soundfont=fonts[int(pid, 16) % len(fonts)],
                       seed=(seed * 1_000_003 + int(pid, 16)) % (2 ** 31),
                       sample_rate=sample_rate, clip_s=clip_s, humanize=humanize)
