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

- what users publish: batches in folders named after the prompt
  (``Baroque_BachJohannSebastian_Choral/output1.abc``, ``Romantic_Schubert_Franz_Art Song/``).
- RhythGen (github.com/efraimdahl/RhythGen: NotaGen-small fine-tuned with rhythmic
  controls), ``data/outputs/<Lieder|RAG|RAG-RH>/<config>/sync-<guidance>-<prompt
  piece>_0.abc-<seconds>_<n>.abc``, each file opening with a control line
  (``%syncopation 5 1 1 ...``).

Interleaved ABC holds one bar of every voice per line, ``[V:1]...|[V:2]...|``; music21
cannot read it, so :func:`deinterleave_abc` rewrites it as standard multi-voice ABC.

Labels (:func:`find_labels`), most trusted first: a ``--labels`` CSV row (the user said
so explicitly), the prompt lines, the demo's file name, each enclosing folder named after
one of NotaGen's 112 prompts (nearest first), RhythGen's family folder (instrumentation
only). The first source that states a label decides it; later sources that disagree are
listed in ``build_report.json``, never used. A folder or file name is a label source only
when it spells one of NotaGen's prompts (:data:`~musicbrain_cli.data.labels.NOTAGEN_PROMPTS`),
so a typo or an unknown composer cannot invent a label. A composer that is unknown or
ambiguous (``Mozart, Leopold``; bare ``Schumann``) is masked and listed, never mapped to
another person. A file no source labels at all is skipped.

The generator comes from a ``--labels`` cell, else ``--generator``, else a manifest
(``generators.csv``: ``path,generator``; ``./p.abc`` is ``p.abc``; a row naming no ABC file
is listed in ``build_report.json``, ``generators_csv.rows_not_found``), else the weights name of the batch folder, whose
patch-decoder depth ``p_layers_12/16/20`` names NotaGen-small / -medium / -large
(NotaGen's model table: 110M, 244M, 516M parameters), else ``notagen-small-ft`` for
RhythGen's layout.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import os
import posixpath
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from musicbrain_cli.errors import DatasetError, MusicBrainError, RenderError
from musicbrain_cli.progress import NULL_PROGRESS, Progress
from musicbrain_cli.data.dataset import (REPORT, ClipRecord, DatasetWriter, assign_splits,
                                             warn_small_split)
from musicbrain_cli.taxonomy import NONE, SEPARATOR
from musicbrain_cli.data.labels import (INSTRUMENTATIONS, NOTAGEN_PROMPTS, PERIODS,
                                            canonical_instrumentation, canonical_period,
                                            resolve_composer, style_taxonomy)
from musicbrain_cli.data.abc import deinterleave_abc  # noqa: F401  (public here too)
from musicbrain_cli.data.pieces import drop_unbuilt, write_piece
from musicbrain_cli.data.render import (PARSE_TIMEOUT_S, Humanize, SoundFont,
                                            available_soundfonts, score_to_midi,
                                            score_to_midi_bounded)

GENERATOR_BY_DEPTH = {12: "notagen-small", 16: "notagen-medium", 20: "notagen-large"}
GENERATOR_MANIFEST = "generators.csv"

_DEMO_NAME = re.compile(
    r"^(?P<time>\d{8}_\d{6})_(?P<period>[^_]+)_(?P<composer>.+)_(?P<instr>[^_]+)$")
_BATCH_DIR = re.compile(r"^(?P<weights>.+)_k_(?P<k>[^_]+)_p_(?P<p>[^_]+)_temp_(?P<t>[^_]+)$")
_P_LAYERS = re.compile(r"p_layers_(\d+)")


# --- ABC ------------------------------------------------------------------------------------

FIELDS = ("period", "composer", "instrumentation")
LABEL_CSV_COLUMNS = ("path",) + FIELDS + ("generator",)
#: Where each label may come from, most trusted first (README, docs/dataset-format.md).
LABEL_PRECEDENCE = ("labels csv", "prompt lines", "file name", "folder", "RhythGen layout")


@dataclass(frozen=True)
class StyleLabels:
    """A piece's labels; ``""`` is unknown (masked from the loss)."""

    period: str
    composer: str
    instrumentation: str


@dataclass(frozen=True)
class Cell:
    """One label as found: ``value`` the canonical label (``""`` when it cannot be trusted:
    an unknown or ambiguous composer, an empty CSV cell), ``written`` the text found,
    ``source`` where (``prompt lines``, ``file name``, ``folder <name>``,
    ``labels csv row <n>``, ``RhythGen layout <family>``), ``status`` of a composer
    (``matched``, ``unknown``, ``ambiguous``; ``ok`` otherwise)."""

    value: str
    written: str
    source: str
    status: str = "ok"
    candidates: tuple[str, ...] = ()
    by_initials: bool = False     # a composer matched on initials: listed for a person to check
    #: other prompt lines that could have been the composer and were not used (a comment
    #: such as 'Generated with NotaGen' before the name): listed in the build report
    unused_lines: tuple[str, ...] = ()


def _composer_cell(written: str, source: str) -> Cell:
    m = resolve_composer(written)
    return Cell(m.name or "", m.written, source, m.status, m.candidates, m.by_initials)


#: a prompt line that can be a composer: letters, spaces and name punctuation only, no digit
_NAME_LINE = re.compile(r"^[^\W\d_](?:[^\W\d_]|[ .,'’\-])*$")
#: what people add around a composer's name in a prompt line, taken off before it is read:
#: a 'Composer:' label in front, and bracketed notes at the end ('(1719-1787)', '(b. 1719)',
#: '[1714-88]', '(née Wieck)')
_NAME_PREFIX = re.compile(r"^composer\s*[:=]\s*", re.IGNORECASE)
_NAME_NOTE = re.compile(r"\s*(\([^()]*\)|\[[^\[\]]*\])\s*$")
#: a control line of a NotaGen fine-tune, not a label: a keyword and numbers only (RhythGen
#: writes '%syncopation 5 1 1 ...' first)
_CONTROL_LINE = re.compile(r"^[A-Za-z_]+(\s+[-+]?\d+(\.\d+)?)+$")


def _name_in_line(value: str) -> str | None:
    """The composer's name in a prompt line, without a 'Composer:' label or bracketed notes
    at its end; ``None`` when what is left is not a name."""
    name = _NAME_PREFIX.sub("", value.strip())
    while True:
        shorter = _NAME_NOTE.sub("", name)
        if shorter == name:
            break
        name = shorter
    name = name.strip()
    return name if name and _NAME_LINE.match(name) else None


#: The status of a label the prompt lines state twice, differently: masked, and listed
#: among the build report's label conflicts.
CONTRADICTORY = "contradictory"


def prompt_labels(text: str) -> dict[str, Cell]:
    """Labels from the prompt comment lines at the top of a NotaGen file (may be partial).

    The leading ``%`` lines count as NotaGen's prompt (``%Baroque``, ``%Bach, Johann
    Sebastian``, ``%Keyboard``, ``%end``) only when they end with ``%end`` or hold a period
    or an instrumentation, so an ordinary comment is never read as a composer. Of several
    lines that could be the composer, the one naming a known composer is used (then an
    ambiguous one, then the first); the others are kept in the cell's ``unused_lines``.
    """
    found: dict[str, Cell] = {}
    names: list[str] = []
    unread: list[str] = []      # lines that are no label, no control line and no name
    ended = False
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if not line.startswith("%") or line.startswith("%%"):
            break
        value = line[1:].strip()
        if value.lower() == "end":
            ended = True
            break
        for field, canon in (("period", canonical_period),
                             ("instrumentation", canonical_instrumentation)):
            if canon(value):
                prev = found.get(field)
                if prev is None:
                    found[field] = Cell(canon(value), value, "prompt lines")
                elif prev.status == CONTRADICTORY or canon(value) != prev.value:
                    # two periods or two instrumentations: which one the model was given is
                    # not known, so neither is used (review of session 45: the first won
                    # and the other was dropped without a word)
                    found[field] = Cell("", f"{prev.written}; {value}", "prompt lines",
                                        CONTRADICTORY)
                break
        else:
            name = _name_in_line(value)
            if name is not None:   # 'Mozart, Leopold (b. 1719)': the name without the note
                names.append(name)
            elif not _CONTROL_LINE.match(value):
                unread.append(value)
    if names and (ended or found):
        # the line that names a known composer wins over comment lines around it ('%Generated
        # with NotaGen' first); then an ambiguous one; else the first, masked as unknown
        cells = [_composer_cell(n, "prompt lines") for n in names]
        rank = {"matched": 0, "ambiguous": 1}
        best = min(range(len(cells)), key=lambda i: (rank.get(cells[i].status, 2), i))
        others = tuple(names[:best] + names[best + 1:]) + tuple(unread)
        found["composer"] = dataclasses.replace(cells[best], unused_lines=others)
    elif unread and (ended or found):
        # A prompt line that names no one we can read is still the file's own word on its
        # composer: it is kept as written and masked, so that a folder's or file name's
        # composer never replaces it silently (session 29 audit: 'Composer: Mozart,
        # Leopold' was dropped and the folder's W. A. Mozart used instead).
        found["composer"] = Cell("", unread[0], "prompt lines", "unknown")
    return found


def prompt_name_labels(name: str, *, source: str,
                       prompts=NOTAGEN_PROMPTS) -> tuple[dict[str, Cell], str | None]:
    """Labels from a name spelled after a NotaGen prompt, and why it was refused.

    ``Baroque_Bach, Johann Sebastian_Keyboard``, ``Baroque_BachJohannSebastian_Choral``,
    ``Romantic_Schubert_Franz_ArtSong``, ``Romantic Schubert, Franz Art Song`` ...: the
    first word is the period, the longest tail that names an instrumentation (synonyms
    included) is the instrumentation, the words between are the composer. The name is
    accepted only when the three together are one of NotaGen's prompts (``prompts``).
    Returns ``({}, None)`` for a name that does not begin with a period (not a prompt
    name), ``(cells, reason)`` for a prompt-like name that is refused: ``cells`` is empty,
    or, when the composer it names is unknown or ambiguous, that composer as written
    (masked, with its status), so that no later source's composer replaces it silently,
    with the period and instrumentation the name states.
    """
    words = [w for w in re.split(r"[_\s]+", name.strip()) if w]
    if len(words) < 3 or not canonical_period(words[0]):
        return {}, None
    period = canonical_period(words[0])
    valid = {(p.period, p.composer, p.instrumentation) for p in prompts}
    composers = tuple(dict.fromkeys(p.composer for p in prompts))
    reasons = []  # why each reading failed, the longest instrumentation first
    stated: dict[str, Cell] = {}   # the longest reading's unmatched composer, as written
    for k in range(min(3, len(words) - 2), 0, -1):
        instr_written = " ".join(words[-k:])
        instr = canonical_instrumentation(instr_written)
        if instr is None:
            continue
        written = " ".join(words[1:-k]).strip(" ,")
        match = resolve_composer(written, composers=composers)
        # only the longest reading states labels: a shorter one reads a word of the
        # instrumentation as a name ('Brahms, Johannes_Vocal Orchestral' is no composer
        # 'Brahms, Johannes Vocal' writing for 'Orchestral')
        first = not reasons
        if match.status != "matched":
            hint = ""
            if match.candidates:
                hint = (" (not " if match.status == "unknown" else " (could be ") \
                    + " or ".join(match.candidates) + ")"
            reasons.append(f"{name!r}: composer {written!r} is {match.status} in NotaGen's "
                           f"prompt list{hint}")
            if first and written:
                # the composer as written, masked; the period and the instrumentation the
                # name states are labels in their own right (session 29 audit: the file was
                # skipped and its composer listed nowhere)
                stated = {"period": Cell(period, words[0], source),
                          "composer": Cell("", written, source, match.status,
                                           tuple(match.candidates)),
                          "instrumentation": Cell(instr, instr_written, source)}
            continue
        if (period, match.name, instr) not in valid:
            reasons.append(f"{name!r}: {period} / {match.name} / {instr} is not one of "
                           f"NotaGen's {len(valid)} prompts")
            continue
        return {"period": Cell(period, words[0], source),
                "composer": Cell(match.name, written, source, "matched",
                                 by_initials=match.by_initials),
                "instrumentation": Cell(instr, instr_written, source)}, None
    return stated, (reasons[0] if reasons else f"{name!r}: no instrumentation at its end")


def filename_labels(path: Path) -> tuple[dict[str, Cell], str | None]:
    """Labels from the demo's ``<time>_<period>_<composer>_<instrumentation>.abc`` name,
    and why it was refused (see :func:`prompt_name_labels`)."""
    m = _DEMO_NAME.match(Path(path).stem)
    if not m:
        return {}, None
    return prompt_name_labels(Path(path).stem[len(m.group("time")) + 1:], source="file name")


def folder_labels(path: Path, root: Path) -> tuple[list[dict[str, Cell]], dict[str, str]]:
    """Labels of every prompt-named folder between ``path`` and ``root`` (``root`` itself
    included), nearest first, and ``{folder: reason}`` for prompt-like folders refused."""
    found: list[dict[str, Cell]] = []
    refused: dict[str, str] = {}
    root = Path(root)
    folders = list(Path(path).relative_to(root).parents)[:-1]  # nearest first, root excluded
    for folder in [root / f for f in folders] + [root.absolute()]:
        cells, reason = prompt_name_labels(folder.name, source=f"folder {folder.name}")
        if cells:
            found.append(cells)
        if reason:
            refused[folder.name] = reason
    return found, refused


# --- RhythGen (NotaGen-small fine-tuned, github.com/efraimdahl/RhythGen) --------------------

#: RhythGen's three families (``data/outputs/<family>/<config>/``) -> instrumentation,
#: where it is certain: the Lieder model writes voice and piano (NotaGen's "Art Song"),
#: the ragtime models solo piano ("Keyboard"). Period and composer stay unknown: OpenScore
#: Lieder spans periods and ragtime is none of NotaGen's.
RHYTHGEN_FAMILIES = {"Lieder": "Art Song", "RAG": "Keyboard", "RAG-RH": "Keyboard"}
#: Generator label of RhythGen's output: NotaGen-small (110M) fine-tuned.
RHYTHGEN_GENERATOR = "notagen-small-ft"
# inference/inference.py: sync-<CFG guidance>-<prompt piece>_0.abc-<seconds>_<sample>.abc;
# in-text density models (LTN1): <control>_<level>_<seconds>_<sample>.abc
_RHYTHGEN_SYNC = re.compile(r"^sync-(?P<guidance>\d+(?:\.\d+)?)-(?P<piece>.+)_\d+\.abc"
                            r"-(?P<secs>\d+(?:\.\d+)?)_(?P<n>\d+)\.abc$")
_RHYTHGEN_TEXT = re.compile(r"^(?P<control>[a-z]+_\d+)_(?P<secs>\d+(?:\.\d+)?)_(?P<n>\d+)\.abc$")


@dataclass(frozen=True)
class RhythGenInfo:
    """Where a RhythGen piece comes from. ``config`` is the configuration folder (LAD,
    RAS1, ...), ``prompt_piece`` the training piece whose control labels were reused
    (``None`` for the in-text density models), ``guidance`` the classifier-free guidance
    scale (0 unconditioned, 1 conditioned, 3 boosted) or ``None``."""

    family: str
    config: str
    prompt_piece: str | None
    guidance: str | None
    control: str | None

    def work_id(self, file_name: str) -> str:
        # pieces made from one prompt piece share its control labels: one work, one split,
        # across configurations and families (RAG and RAG-RH reuse the same rags)
        if self.prompt_piece:
            return f"rhythgen:{self.prompt_piece}"
        return f"rhythgen:{self.family}/{self.config}/{file_name}"


def rhythgen_info(path: str | Path) -> RhythGenInfo | None:
    """RhythGen's layout ``<Lieder|RAG|RAG-RH>/<config>/<RhythGen file name>``, else None."""
    path = Path(path).absolute()
    family, config = path.parent.parent.name, path.parent.name
    if family not in RHYTHGEN_FAMILIES:
        return None
    name = unicodedata.normalize("NFC", path.name)  # one work whatever the file system wrote
    m = _RHYTHGEN_SYNC.match(name)
    if m:
        return RhythGenInfo(family, config, m.group("piece"), m.group("guidance"), None)
    m = _RHYTHGEN_TEXT.match(name)
    if m:
        return RhythGenInfo(family, config, None, None, m.group("control"))
    return None


# --- label CSV ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CsvLabels:
    """One row of a ``--labels`` CSV: cells for the columns it has, and its generator."""

    row: int
    cells: dict
    generator: str


def read_labels_csv(path: str | Path, root: str | Path) -> dict[str, CsvLabels]:
    """``--labels FILE.csv`` -> ``{path relative to root: CsvLabels}``.

    Columns: ``path`` (relative to ``root``) and any of ``period``, ``composer``,
    ``instrumentation``, ``generator``. An empty cell is unknown (masked); a column left
    out is not stated (other sources may give it). Strict: an unknown column, a path
    outside ``root`` or not a file, a repeated path or column, a row with more or fewer
    cells than columns, or a period / instrumentation outside
    NotaGen's vocabularies raises :class:`DatasetError` naming the row and the value.
    Composers follow :func:`resolve_composer`: an unknown or ambiguous name is masked.
    """
    path, root = Path(path), Path(root)
    base = root.resolve()
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            columns = [c.strip() for c in (reader.fieldnames or ())]
            unknown = [c for c in columns if c not in LABEL_CSV_COLUMNS]
            if unknown or "path" not in columns:
                raise DatasetError(
                    f"{str(path)!r}: " + (f"unknown columns {unknown}" if unknown else
                                          "no 'path' column")
                    + f"; the columns are {', '.join(LABEL_CSV_COLUMNS)} (path required)")
            repeated = sorted({c for c in columns if columns.count(c) > 1})
            if repeated:       # which cell would count is not the user's to guess
                raise DatasetError(f"{str(path)!r}: columns {repeated} appear twice")
            reader.fieldnames = columns
            out: dict[str, CsvLabels] = {}
            for row in reader:
                n = reader.line_num
                where = f"{str(path)!r} row {n}"
                if None in row:
                    raise DatasetError(f"{where}: more cells than columns: {row[None]!r}")
                if any(v is None for v in row.values()):
                    # a short row would leave its last labels unknown without a word
                    raise DatasetError(f"{where}: fewer cells than the {len(columns)} columns")
                raw = (row.get("path") or "").strip()
                if "\0" in raw:        # no file can be named so (review of session 45: a traceback)
                    raise DatasetError(f"{where}: path {raw!r} holds a NUL character")
                target = (root / raw).resolve()
                if not raw or Path(raw).is_absolute() or not target.is_relative_to(base):
                    raise DatasetError(f"{where}: path {raw!r} is not inside {str(root)!r}")
                if not target.is_file():
                    raise DatasetError(f"{where}: path {raw!r} is not a file under "
                                       f"{str(root)!r}")
                rel = target.relative_to(base).as_posix()
                if rel in out:
                    raise DatasetError(f"{where}: path {raw!r} repeats row {out[rel].row}")
                source = f"labels csv row {n}"
                cells: dict[str, Cell] = {}
                for field, canon, vocab in (("period", canonical_period, PERIODS),
                                            ("instrumentation", canonical_instrumentation,
                                             INSTRUMENTATIONS)):
                    if field not in columns:
                        continue
                    value = (row.get(field) or "").strip()
                    if value and canon(value) is None:
                        raise DatasetError(f"{where}: unknown {field} {value!r} "
                                           f"(one of {', '.join(vocab)}, or empty)")
                    cells[field] = Cell(canon(value) if value else "", value, source)
                if "composer" in columns:
                    value = (row.get("composer") or "").strip()
                    cells["composer"] = _composer_cell(value, source) if value else \
                        Cell("", "", source)
                generator = (row.get("generator") or "").strip()
                if SEPARATOR in generator or "/" in generator or generator == NONE:
                    raise DatasetError(f"{where}: generator {generator!r} is not a label")
                out[rel] = CsvLabels(n, cells, generator)
            return out
    except (OSError, csv.Error, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read the labels file {str(path)!r}: {exc}") from exc


# --- all sources together -------------------------------------------------------------------


@dataclass(frozen=True)
class LabelFinding:
    """A piece's labels and where each came from.

    ``cells`` holds the cell used for each label found; ``conflicts`` the cells of later
    sources that disagreed with it (not used); ``refused`` prompt-like folder names that
    are not NotaGen prompts, with the reason.
    """

    labels: StyleLabels
    cells: dict
    conflicts: tuple[tuple[Cell, Cell], ...] = ()
    refused: dict = dataclasses.field(default_factory=dict)


def find_labels(path: Path, text: str, *, root: Path | None = None,
                csv_row: CsvLabels | None = None) -> LabelFinding:
    """The labels of one file, from every source in :data:`LABEL_PRECEDENCE` order.

    The first source that states a label decides it, even when it cannot be trusted (an
    unknown or ambiguous composer is masked, not replaced by a later source's guess); a
    later source that disagrees is kept in ``conflicts``. ``root`` enables folder and
    RhythGen-layout labels. Raises :class:`DatasetError` when no source states any label.
    """
    path = Path(path)
    sources: list[dict[str, Cell]] = []
    refused: dict[str, str] = {}
    if csv_row is not None:
        sources.append(csv_row.cells)
    named, why = filename_labels(path)
    sources += [prompt_labels(text), named]
    if root is not None:
        folders, refused = folder_labels(path, Path(root))
        sources += folders
        info = rhythgen_info(path)
        if info is not None:
            instr = RHYTHGEN_FAMILIES[info.family]  # a rule, not a spelling: no synonym
            sources.append({"instrumentation": Cell(instr, instr,
                                                    f"RhythGen layout {info.family}")})
    if why:
        refused[f"(file name) {path.name}"] = why
    chosen: dict[str, Cell] = {}
    conflicts = []
    for cells in sources:
        for field in FIELDS:
            cell = cells.get(field)
            if cell is None:
                continue
            if field not in chosen:
                chosen[field] = cell
                if cell.status == CONTRADICTORY:
                    conflicts.append((cell, cell))     # masked; its lines listed
            elif cell.value != chosen[field].value:
                conflicts.append((chosen[field], cell))
    if not any(c.value for c in chosen.values()) and csv_row is None:
        why = "; ".join(refused.values())
        raise DatasetError(
            "no period, composer, instrumentation label: no prompt lines (%Period, "
            "%Composer, %Instrumentation), demo file name, NotaGen-prompt folder name "
            "(Period_Surname, Given_Instrumentation) or --labels row"
            + (f" ({why})" if why else ""))
    labels = StyleLabels(*(chosen[f].value if f in chosen else "" for f in FIELDS))
    return LabelFinding(labels, chosen, tuple(conflicts), refused)


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
            # './p.abc' and 'p.abc' name one file: rows are matched on the normal form.
            # Held to the --labels file's strictness (review of session 45: a repeated path
            # changed a piece's generator without a word, a short row was a traceback)
            out: dict[str, str] = {}
            rows: dict[str, int] = {}
            for n, row in enumerate(reader, start=2):
                where = f"{str(path)!r} row {n}"
                raw, generator = row.get("path"), row.get("generator")
                if raw is None or generator is None or None in row:
                    raise DatasetError(f"{where}: needs exactly the columns of its header")
                key = posixpath.normpath(raw.strip())
                generator = generator.strip()
                if key in rows:
                    raise DatasetError(f"{where}: path {raw!r} repeats row {rows[key]}")
                if SEPARATOR in generator or "/" in generator or generator == NONE:
                    raise DatasetError(f"{where}: generator {generator!r} is not a label")
                rows[key], out[key] = n, generator
            return out
    except (OSError, csv.Error, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read {str(path)!r}: {exc}") from exc


# --- discovery ------------------------------------------------------------------------------


@dataclass(frozen=True)
class AbcItem:
    path: Path
    rel: str           # path relative to the input root, as written in reports
    key: str           # identity of the piece: its path without original/ or interleaved/
    generator: str     # "" when unknown
    rhythgen: RhythGenInfo | None = None
    generator_from: str = ""   # where the generator label came from ("" when unknown)


def piece_key(rel: str) -> str:
    """The identity of the piece at ``rel`` (a path relative to the input folder): the
    same piece in NotaGen's two formats shares it, its path without the ``original/`` or
    ``interleaved/`` folder (two batches' ``original/p.abc`` stay two pieces)."""
    parts = rel.split("/")
    kind = next((p for p in parts[:-1] if p in ("original", "interleaved")), None)
    return "/".join(p for p in parts if p != kind) if kind else rel


def discover(root: Path, *, generator: str | None = None,
             skipped: list[tuple[str, str]] | None = None,
             manifest_unused: list[str] | None = None) -> list[AbcItem]:
    """Every NotaGen piece under ``root``, once each: a piece written in both of NotaGen's
    formats (the same path under ``original/`` and ``interleaved/``) is taken once, from
    ``interleaved/``; any other files that share a :func:`piece_key` (``batch/x.abc``
    beside ``batch/original/x.abc``) are separate pieces, each keyed by its own path.
    Symbolic links to folders followed (:func:`~musicbrain_cli.files.find_files`); folders
    that could not be walked are appended to ``skipped`` with the reason.

    Generator: ``generator``, else ``generators.csv``, else the batch folder's weights
    name, else :data:`RHYTHGEN_GENERATOR` for a file in RhythGen's layout, else unknown.
    ``generators.csv`` rows that name no ABC file found are appended to ``manifest_unused``.
    """
    from musicbrain_cli.files import find_files

    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"NotaGen folder {str(root)!r} does not exist")
    manifest = _read_generator_manifest(root)
    items: dict[str, AbcItem] = {}
    groups: dict[str, list[AbcItem]] = {}   # piece key -> the files that have it
    paths, unwalked = find_files(root, (".abc",))
    if skipped is not None:
        skipped += [(os.path.relpath(folder, root), why) for folder, why in unwalked]
    for path in paths:
        rel = path.relative_to(root).as_posix()
        folder = path.parent.name
        key = piece_key(rel)
        info = rhythgen_info(path)
        gen, gen_from = next(((g, why) for g, why in (
            (generator, "--generator"), (manifest.get(rel), GENERATOR_MANIFEST),
            (generator_from_folder(folder), f"batch folder {folder}"),
            (RHYTHGEN_GENERATOR if info else None, "RhythGen layout")) if g), ("", ""))
        groups.setdefault(key, []).append(AbcItem(path, rel, key, gen, info, gen_from))
    if manifest_unused is not None:
        found = {it.rel for group in groups.values() for it in group}
        manifest_unused += sorted(p for p in manifest if p not in found)
    for key, group in groups.items():
        if len(group) == 1:
            items[key] = group[0]
        elif _format_pair(group):
            # one piece in NotaGen's two formats: the interleaved form wins
            items[key] = next(it for it in group if _format_folder(it.rel)[1] == "interleaved")
        else:
            # files that only share a key (batch/x.abc beside batch/original/x.abc) are
            # different pieces: each is kept, under its own path as its identity
            for it in group:
                if it.rel in items or (it.rel != key and it.rel in groups):
                    if skipped is not None:
                        why = (f"its piece identity {it.rel!r} is another file's: rename "
                               "it to build it")
                        skipped.append((it.rel, why))
                    continue
                items[it.rel] = dataclasses.replace(it, key=it.rel)
    return [items[k] for k in sorted(items)]


def _format_folder(rel: str) -> tuple[int, str] | None:
    """Where ``rel`` has NotaGen's ``original/`` or ``interleaved/`` folder: (its position
    among the path's parts, its name); None when it has neither."""
    parts = rel.split("/")
    return next(((i, p) for i, p in enumerate(parts[:-1])
                 if p in ("original", "interleaved")), None)


def _format_pair(group: list[AbcItem]) -> bool:
    """Whether ``group`` (files with one :func:`piece_key`) is one piece written by NotaGen
    in both formats: one file under ``original/``, one under ``interleaved/``, at the same
    place in otherwise equal paths."""
    if len(group) != 2:
        return False
    a, b = (_format_folder(it.rel) for it in group)
    return a is not None and b is not None and a[0] == b[0] and {a[1], b[1]} == {
        "original", "interleaved"}


# --- build ----------------------------------------------------------------------------------


def build_notagen_dataset(root: str | Path, out: str | Path, *, soundfonts: list[SoundFont] |
                          None = None, seed: int = 0, limit: int | None = None,
                          generator: str | None = None, labels_csv: str | Path | None = None,
                          sample_rate: int = 22050, clip_s: float = 30.0,
                          humanize: Humanize | None = None,
                          fractions: dict[str, float] | None = None,
                          parse_timeout_s: float = PARSE_TIMEOUT_S,
                          progress: Progress = NULL_PROGRESS) -> dict:
    """Render NotaGen ABC files into a data set at ``out``; returns the build summary.

    Each piece is parsed in a child process stopped after ``parse_timeout_s`` seconds
    (music21 can run for many minutes on broken generated ABC); such a piece is skipped
    with that reason.

    Labels: :func:`find_labels` (``labels_csv`` rows first). Generator: a ``labels_csv``
    cell, else :func:`discover`'s. Each piece is rendered once with one SoundFont (cycled
    by piece so every SoundFont covers every label alike, as in the MusicNet adapter), cut
    into ``clip_s`` clips, and written with its clip's MIDI. ``build_report.json`` records
    where each piece's labels came from, the synonyms applied, unknown and ambiguous
    composers, refused prompt-like folders, disagreeing sources, and for RhythGen output
    each piece's configuration. Resumable: pieces whose clips all exist are skipped.

    Raises :class:`DatasetError` when the data set ends with no clip at all (every piece
    skipped): ``build_report.json`` is written first and lists each reason.
    """
    root = Path(root)
    unwalked: list[tuple[str, str]] = []
    unused_generator_rows: list[str] = []
    items = discover(root, generator=generator, skipped=unwalked,
                     manifest_unused=unused_generator_rows)
    if not items:
        # a mistyped folder must not become a complete-looking data set of 0 clips
        walked = f" ({len(unwalked)} folder(s) could not be read)" if unwalked else ""
        raise DatasetError(f"no ABC files (.abc) under {str(root)!r}{walked}: nothing to build")
    # a name in another encoding (an old zip's Latin-1) cannot be written to the manifest or
    # the report as text: such pieces are listed, spelled with escapes, and skipped
    unnamed = [it for it in items if not _is_utf8(it.rel)]
    items = [it for it in items if _is_utf8(it.rel)]
    csv_rows = read_labels_csv(labels_csv, root) if labels_csv is not None else {}
    # a row may name the piece in either of NotaGen's formats (original/ or interleaved/)
    # (a row naming a file that is a piece of its own labels that piece only)
    rels = {it.rel for it in items}
    by_key = {piece_key(rel): row for rel, row in csv_rows.items() if rel not in rels}
    row_of = {it.rel: csv_rows.get(it.rel) or by_key.get(it.key) for it in items}
    items = [dataclasses.replace(it, generator=row_of[it.rel].generator,
                                 generator_from=f"labels csv row {row_of[it.rel].row}")
             if row_of[it.rel] is not None and row_of[it.rel].generator else it for it in items]
    fonts = soundfonts or available_soundfonts()
    parsed: list[tuple[AbcItem, LabelFinding]] = []
    skipped: list[tuple[str, str]] = [
        (it.rel.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace"),
         "its path is not valid UTF-8 (another encoding's name): rename it to build it")
        for it in unnamed] + [
        (rel.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace"), why)
        for rel, why in unwalked]
    refused: dict[str, str] = {}  # prompt-like folders of skipped pieces, for the report
    for item in items:
        try:
            text = item.path.read_text(encoding="utf-8-sig", errors="replace")
            parsed.append((item, find_labels(item.path, text, root=root,
                                             csv_row=row_of[item.rel])))
        except (OSError, DatasetError) as exc:
            skipped.append((item.rel, str(exc)))
            refused.update(folder_labels(item.path, root)[1])
    # splits from every piece found, so --limit and resumed runs never move a work
    splits = assign_splits([_work_id(it) for it, _ in parsed], fractions=fractions, seed=seed)
    warn_small_split(splits)
    used = {id(row) for row in row_of.values() if row is not None}
    unused_rows = sorted(rel for rel, row in csv_rows.items() if id(row) not in used)
    if limit is not None:
        kept = {it.rel for it in items[:limit]}
        parsed = [(it, lab) for it, lab in parsed if it.rel in kept]
        skipped = [(rel, why) for rel, why in skipped if rel in kept]
        items = items[:limit]
    generators = sorted({it.generator for it, _ in parsed if it.generator})
    composers = sorted({f.labels.composer for _, f in parsed if f.labels.composer})
    taxonomy = style_taxonomy(generators=generators, composers=composers)
    n_clips = 0
    with DatasetWriter(out, taxonomy, sample_rate=sample_rate, name="notagen",
                       build={"clip_s": clip_s}) as writer:
        splits.update(writer.work_splits())
        writer.report.update(label_report(parsed, splits, refused=refused))
        if labels_csv is not None:
            writer.report["labels_csv"] = {"path": str(labels_csv), "rows": len(csv_rows),
                                           "rows_not_found": unused_rows}
        if (root / GENERATOR_MANIFEST).is_file():
            # a row naming no file (a typo, a moved file) labels nothing: said, not ignored
            writer.report["generators_csv"] = {"path": str(root / GENERATOR_MANIFEST),
                                               "rows_not_found": unused_generator_rows}
        for item, reason in skipped:
            writer.skip(item, reason)
        built: set[str] = set()
        with progress.task("rendering NotaGen pieces", total=len(parsed)) as task:
            for item, finding in parsed:
                try:
                    n_clips += build_piece(writer, item, finding.labels, fonts, splits,
                                           seed=seed, sample_rate=sample_rate, clip_s=clip_s,
                                           humanize=humanize, parse_timeout_s=parse_timeout_s)
                    built.add(clip_prefix(item))
                except MusicBrainError as exc:
                    writer.skip(item.rel, str(exc))
                task.advance()
        drop_unbuilt(writer, built)
        summary = {"pieces": len(items), "clips": len(writer.rows),
                   "new_clips": n_clips, "dropped_clips": len(writer.dropped),
                   "skipped": len(writer.skipped),
                   "not_notagen_prompts": sum(e["files"] for e in
                                              writer.report["not_notagen_prompts"].values()),
                   # what the console names so that no one has to open the report to learn it
                   "composers_masked": sum(e["files"] for k in ("unknown_composers",
                                                                 "ambiguous_composers")
                                           for e in writer.report[k].values()),
                   "composers_by_initials": sum(
                       e["files"] for e in writer.report["composers_matched_by_initials"].values()),
                   "labels_rows_not_found": len(unused_rows) if labels_csv is not None else 0,
                   "generator_rows_not_found": len(unused_generator_rows)}
    if not summary["clips"]:
        # a data set of 0 clips must not look like a finished build (exit status 0): the
        # report with every piece's reason is written above, and named here
        raise DatasetError(f"no clips: the {summary['pieces']} piece(s) under {str(root)!r} "
                           f"gave none ({summary['skipped']} item(s) skipped); the reasons "
                           f"are listed in {str(Path(out) / REPORT)!r}, under 'skipped'")
    return summary


def label_report(parsed: list[tuple[AbcItem, LabelFinding]], splits: dict[str, str], *,
                 refused: dict[str, str] | None = None) -> dict:
    """The labelling part of ``build_report.json`` (docs/dataset-format.md, "NotaGen");
    ``refused`` adds prompt-like folders seen by pieces that were skipped."""
    sources: dict[str, Counter] = {f: Counter() for f in FIELDS}
    synonyms: dict[str, dict] = {}
    composers: dict[str, dict[str, dict]] = {"unknown": {}, "ambiguous": {}}
    by_initials: dict[str, dict] = {}
    unused_lines: dict[str, dict] = {}  # prompt lines not read as the composer
    refused = dict(refused or {})
    conflicts, items = [], {}
    # a complete label set no NotaGen prompt has (prompt lines edited by hand, a fine-tune with
    # other prompts, a CSV row): kept as stated, since the file says so, but listed
    valid = {(p.period, p.composer, p.instrumentation) for p in NOTAGEN_PROMPTS}
    unlisted: dict[str, dict] = {}
    configs: dict[str, Counter] = {}
    generators: Counter = Counter()     # where the generator labels came from
    for item, finding in parsed:
        refused.update(finding.refused)
        for field in FIELDS:
            cell = finding.cells.get(field)
            kind = next((k for k in LABEL_PRECEDENCE if cell.source.startswith(k)),
                        cell.source) if cell else "(none: unknown)"
            sources[field][kind] += 1
        instr = finding.cells.get("instrumentation")
        if instr is not None and instr.value and instr.written != instr.value:
            entry = synonyms.setdefault(instr.written, {"label": instr.value, "files": 0})
            entry["files"] += 1
        comp = finding.cells.get("composer")
        if comp is not None and comp.status in composers and comp.written:
            entry = composers[comp.status].setdefault(
                comp.written, {"files": 0, "same_surname" if comp.status == "unknown"
                               else "candidates": list(comp.candidates)})
            entry["files"] += 1
        if comp is not None:
            for line in comp.unused_lines:
                entry = unused_lines.setdefault(line, {"files": 0, "composer_used": comp.value
                                                       or comp.written})
                entry["files"] += 1
        if comp is not None and comp.by_initials and comp.value:
            entry = by_initials.setdefault(comp.written, {"label": comp.value, "files": 0})
            entry["files"] += 1
        triple = (finding.labels.period, finding.labels.composer, finding.labels.instrumentation)
        if all(triple) and triple not in valid:
            entry = unlisted.setdefault(" / ".join(triple), {
                "files": 0, "from": sorted({finding.cells[f].source for f in FIELDS
                                            if f in finding.cells})})
            entry["files"] += 1
        for used, other in finding.conflicts:
            conflicts.append({"item": item.rel, "used": used.value or "(unknown)",
                              "from": used.source, "ignored": other.value or other.written,
                              "ignored_from": other.source})
        work = _work_id(item)
        generators[next((k for k in ("--generator", GENERATOR_MANIFEST, "batch folder",
                                     "RhythGen layout", "labels csv")
                         if item.generator_from.startswith(k)), "(none: unknown)")] += 1
        entry = {"labels_from": {f: c.source for f, c in finding.cells.items()},
                 "generator": item.generator, "generator_from": item.generator_from,
                 "work_id": work, "split": splits.get(work, "")}
        info = item.rhythgen
        if info is not None:
            entry.update(family=info.family, config=info.config,
                         prompt_piece=info.prompt_piece, guidance=info.guidance)
            configs.setdefault(f"{info.family}/{info.config}", Counter())[entry["split"]] += 1
        items[item.rel] = entry
    return {
        "label_precedence": list(LABEL_PRECEDENCE),
        "label_sources": {**{f: dict(c) for f, c in sources.items()},
                          "generator": dict(generators)},
        "synonyms": synonyms,
        "unknown_composers": composers["unknown"],
        "ambiguous_composers": composers["ambiguous"],
        # 'F. Mendelssohn' -> Felix: initials agree, but they are a reading of the name (Fanny
        # was a Mendelssohn too), so every such match is listed for a person to check
        "composers_matched_by_initials": by_initials,
        # prompt lines beside the composer's that were not used as a label (a comment such
        # as 'Generated with NotaGen', a second name), with the composer used instead
        "prompt_lines_not_used": unused_lines,
        "refused_prompt_folders": refused,
        "not_notagen_prompts": dict(sorted(unlisted.items())),
        "label_conflicts": conflicts,
        "configurations": {k: dict(v) for k, v in sorted(configs.items())},
        "items": items,
    }


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _work_id(item: AbcItem) -> str:
    if item.rhythgen is not None:
        return item.rhythgen.work_id(item.path.name)
    # every generated piece is its own work; the key is the same in original/ and interleaved/
    return "notagen:" + item.key


def _piece_id(item: AbcItem) -> str:
    return hashlib.sha256(item.key.encode("utf-8")).hexdigest()[:12]


def clip_prefix(item: AbcItem) -> str:
    """The start of a piece's clip ids (``<prefix>-000``, ...). A RhythGen clip id names its
    configuration, so per-configuration measurements can select clips by id as well as by
    origin (Lieder/LAD/...)."""
    pid = _piece_id(item)
    if item.rhythgen is not None:
        return f"rg-{re.sub(r'[^A-Za-z0-9]+', '', item.rhythgen.config)}-{pid}"
    return f"ng-{pid}"


def build_piece(writer: DatasetWriter, item: AbcItem, labels: StyleLabels,
                fonts: list[SoundFont], splits: dict[str, str], *, seed: int,
                sample_rate: int, clip_s: float, humanize: Humanize | None,
                parse_timeout_s: float | None = PARSE_TIMEOUT_S) -> int:
    """Render one ABC piece into ``writer``'s clips; returns how many clips are new.
    ``parse_timeout_s`` None parses in this process (a caller that bounds it itself)."""
    pid = _piece_id(item)
    try:
        midi = (score_to_midi(item.path, instrumentation=labels.instrumentation or None)
                if parse_timeout_s is None else
                score_to_midi_bounded(item.path, instrumentation=labels.instrumentation or None,
                                      timeout_s=parse_timeout_s))
    except RenderError as exc:
        raise RenderError(f"bad ABC: {exc}") from exc
    work = _work_id(item)
    template = ClipRecord(clip_id="", source="ai", generator=item.generator,
                          period=labels.period, composer=labels.composer,
                          instrumentation=labels.instrumentation, work_id=work,
                          split=splits[work])
    return write_piece(writer, midi, template, clip_prefix=clip_prefix(item), item=item.rel,
                       soundfont=fonts[int(pid, 16) % len(fonts)],
                       seed=(seed * 1_000_003 + int(pid, 16)) % (2 ** 31),
                       sample_rate=sample_rate, clip_s=clip_s, humanize=humanize)
