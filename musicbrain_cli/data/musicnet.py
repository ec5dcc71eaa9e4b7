"""MusicNet (Thickstun et al. 2017) -> a MusicBrain data set of rendered, labelled human clips.

The real MusicNet layout (zenodo.org/records/5120004)::

    musicnet_metadata.csv        id,composer,composition,movement,ensemble,source,
                                 transcriber,catalog_name,seconds
    {train,test}_data/<id>.wav   the recordings: NOT used as training audio (below)
    {train,test}_labels/<id>.csv start_time,end_time,instrument,note,start_beat,end_beat,
                                 note_value
    musicnet_midis/<Composer>/<id>_<title>.mid   (in the 2021 release)

Label CSVs are preferred over the MIDI files: they are the verified note alignment, while
the MIDI files are the unaligned sources they were made from. ``start_time``/``end_time``
are sample indices at 44.1 kHz; ``instrument`` is a General MIDI program numbered from 1
(1 = Acoustic Grand Piano, 41 = Violin, 43 = Cello, 72 = Clarinet, 74 = Flute), so the
0-based program is ``instrument - 1``; ``start_beat`` is the score position in beats and
``end_beat`` the note's *duration* in beats (it matches ``note_value``: 1.5 for "Dotted
Quarter"). A MIDI file is used only for an id without a label CSV.

Both the human side and the AI side go through the same renderers: the recordings would
teach the detector "real room, real instruments = human". For the same reason, notes are
placed on the score grid by default (``timing="score"``): beat positions at the piece's
mean tempo, a least-squares fit of onset seconds on onset beats. NotaGen's output is on
the grid too, so expressive human timing cannot become a shortcut; the optional
humanisation then jitters both sides alike. ``timing="performance"`` keeps the recorded
timing.

Labels: composer -> canonical name and period (``labels.py``), ensemble -> instrumentation
(:data:`ENSEMBLE_INSTRUMENTATION`), ``source=human``, ``generator=-``. Splits group by
work (composer + ``catalog_name``), never by recording: MusicNet's own train/test split is
ignored because it is by recording.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from musicbrain_cli.errors import DatasetError, MusicBrainError, MusicBrainWarning, RenderError
from musicbrain_cli.files import find_files
from musicbrain_cli.progress import NULL_PROGRESS, Progress
from musicbrain_cli.data.dataset import (ClipRecord, DatasetWriter, assign_splits,
                                             read_csv_rows, warn_small_split)
from musicbrain_cli.data.labels import COMPOSER_PERIODS, resolve_composer, style_taxonomy
from musicbrain_cli.data.pieces import drop_unbuilt, write_piece
from musicbrain_cli.data.render import (DEFAULT_VELOCITY, Humanize, SoundFont,
                                            available_soundfonts, score_to_midi)

LABEL_SAMPLE_RATE = 44100  # MusicNet label times are sample indices at 44.1 kHz
LABEL_COLUMNS = ("start_time", "end_time", "instrument", "note", "start_beat", "end_beat",
                 "note_value")
METADATA_COLUMNS = ("id", "composer", "composition", "movement", "ensemble", "source",
                    "transcriber", "catalog_name", "seconds")

#: Every MusicNet ensemble -> NotaGen instrumentation. NotaGen's "Keyboard" is solo
#: keyboard; every other instrumental combination without voice or orchestra, solo
#: strings and winds included, is "Chamber" (as NotaGen files Bach's cello suites).
ENSEMBLE_INSTRUMENTATION = {
    "Solo Piano": "Keyboard",
    "Solo Harpsichord": "Keyboard",
    "String Quartet": "Chamber",
    "Piano Trio": "Chamber",
    "Piano Quartet": "Chamber",
    "Piano Quintet": "Chamber",
    "Accompanied Violin": "Chamber",
    "Accompanied Cello": "Chamber",
    "Accompanied Clarinet": "Chamber",
    "Violin and Harpsichord": "Chamber",
    "String Sextet": "Chamber",
    "Viola Quintet": "Chamber",
    "Clarinet Quintet": "Chamber",
    "Wind Quintet": "Chamber",
    "Wind Octet": "Chamber",
    "Wind and Strings Octet": "Chamber",
    "Horn Piano Trio": "Chamber",
    "Clarinet-Cello-Piano Trio": "Chamber",
    "Pairs Clarinet-Horn-Bassoon": "Chamber",
    "Solo Cello": "Chamber",
    "Solo Violin": "Chamber",
    "Solo Flute": "Chamber",
}


def ensemble_instrumentation(ensemble: str) -> str:
    """The instrumentation label of a MusicNet ensemble; "" (unknown) when unmappable."""
    name = " ".join(ensemble.split())
    if name in ENSEMBLE_INSTRUMENTATION:
        return ENSEMBLE_INSTRUMENTATION[name]
    low = name.lower()
    # rules for ensembles outside the table (other releases, user trees)
    if re.search(r"orchestra|symphon|concerto", low):
        return "Vocal-Orchestral" if re.search(r"choir|chorus|voice|soprano", low) \
            else "Orchestral"
    if re.search(r"choir|chorus|choral", low):
        return "Choral"
    if re.search(r"voice|song|soprano|tenor|baritone", low):
        return "Art Song"
    if re.search(r"^solo (piano|harpsichord|organ|keyboard)", low):
        return "Keyboard"
    if re.search(r"solo|duo|trio|quartet|quintet|sextet|septet|octet|accompanied|pairs", low):
        return "Chamber"
    return ""


@dataclass(frozen=True)
class MusicNetPiece:
    id: str
    composer: str           # canonical; "" when the metadata's name matches no one, or several
    period: str             # "" if unknown
    instrumentation: str    # "" if unknown
    work_id: str
    labels_path: Path | None
    midi_path: Path | None
    rel: str                # the file the notes come from, relative to the root
    composer_written: str = ""      # the metadata's name when it did not resolve
    composer_status: str = "matched"    # or "unknown" / "ambiguous" (labels.ComposerMatch)
    composer_candidates: tuple[str, ...] = ()


def read_metadata(root: Path) -> dict[str, dict[str, str]]:
    path = root / "musicnet_metadata.csv"
    if not path.is_file():
        raise DatasetError(f"{str(root)!r} is not a MusicNet tree: no musicnet_metadata.csv")
    rows: dict[str, dict[str, str]] = {}
    for row in read_csv_rows(path, METADATA_COLUMNS):
        pid = (row["id"] or "").strip()
        if pid in rows:
            # two rows for one recording: which composer and ensemble are right is unknown,
            # and taking the last silently could relabel a piece
            raise DatasetError(f"{str(path)!r} holds two rows for id {pid!r}: fix the file")
        rows[pid] = row
    return rows


def discover(root: str | Path) -> tuple[list[MusicNetPiece], list[tuple[str, str]]]:
    """The pieces of a MusicNet tree, and ``(item, reason)`` for those that cannot be used."""
    root = Path(root)
    meta = read_metadata(root)
    labels = {p.stem: p for split in ("train", "test")
              for p in sorted((root / f"{split}_labels").glob("*.csv"))}
    midis: dict[str, Path] = {}
    found, unwalked = (find_files(root / "musicnet_midis", (".mid",))
                       if (root / "musicnet_midis").is_dir() else ([], []))
    for p in found:
        m = re.match(r"^(\d+)", p.stem)
        if m:
            midis.setdefault(m.group(1), p)
    recordings = {p.stem for split in ("train", "test") for p in (root / f"{split}_data")
                  .glob("*.wav")}
    pieces, skipped = [], [(os.path.relpath(f, root), why) for f, why in unwalked]
    for pid in sorted(set(meta) | set(labels) | set(midis) | recordings,
                      key=lambda x: (len(x), x)):
        row = meta.get(pid)
        if row is None:
            skipped.append((pid, "no row in musicnet_metadata.csv"))
            continue
        lab, mid = labels.get(pid), midis.get(pid)
        if lab is None and mid is None:
            skipped.append((pid, "neither a label CSV nor a MIDI file"))
            continue
        # MusicNet's metadata writes bare surnames ("Bach", "Mozart", "Haydn"); each of its
        # ten composers is the only one of that surname MusicNet holds (its Bach is J. S.,
        # its Mozart W. A., its Haydn Joseph: its catalog_name column gives BWV, K and
        # Joseph Haydn's Op. 64 quartets), so surname-only resolution is safe here only.
        # A name no known composer has, or one that fits several (a metadata file that adds a
        # 'Schumann'), is masked and listed in the build report, never kept as a label of its
        # own nor mapped to someone else (docs/dataset-format.md).
        match = resolve_composer(row["composer"] or "", by_surname=True)
        composer = match.name if match.status == "matched" else ""
        catalog = " ".join((row.get("catalog_name") or "").split()) \
            or " ".join((row.get("composition") or "").split()) or f"id{pid}"
        src = lab if lab is not None else mid
        # a work music21's corpus also holds takes that corpus's work id, as the reference
        # corpus gives it: merged with it, the two encodings of one work are one work to
        # the split checks (review of session 45: BWV 846 sat in train here, in test there)
        alias = _music21_work(composer, " ".join((row.get("catalog_name") or "").split()))
        pieces.append(MusicNetPiece(
            id=pid, composer=composer, period=COMPOSER_PERIODS.get(composer, ""),
            instrumentation=ensemble_instrumentation(row.get("ensemble") or ""),
            work_id=alias or f"musicnet:{composer or match.written}:{catalog}", labels_path=lab,
            midi_path=None if lab is not None else mid, rel=src.relative_to(root).as_posix(),
            composer_written="" if composer else match.written, composer_status=match.status,
            composer_candidates=tuple(match.candidates)))
    return pieces, skipped


def _music21_work(composer: str, catalog: str) -> str | None:
    """The work id music21's corpus gives this MusicNet work where the corpus holds it
    (:func:`musicbrain_cli.data.reference.musicnet.music21_alias`), else None."""
    from musicbrain_cli.data.reference.musicnet import known_music21_works, music21_alias

    alias = music21_alias(composer, catalog) if composer else None
    return alias if alias is not None and alias in _known_works(known_music21_works) else None


_KNOWN: list[frozenset] = []


def _known_works(known) -> frozenset:
    """music21's collection work ids, listed once per process (a glob of its corpus)."""
    if not _KNOWN:
        _KNOWN.append(frozenset(known()))
    return _KNOWN[0]


def labels_to_midi(path: Path, *, timing: str = "score"):
    """A MusicNet label CSV -> ``pretty_midi.PrettyMIDI``, one instrument per GM program.

    ``timing="score"`` places notes at ``start_beat`` (duration ``end_beat``) at the
    piece's mean tempo; ``"performance"`` uses ``start_time``/``end_time`` (44.1 kHz
    samples). Raises :class:`DatasetError` for a malformed file.
    """
    import pretty_midi

    if timing not in ("score", "performance"):
        raise DatasetError(f"timing must be 'score' or 'performance', not {timing!r}")
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = set(LABEL_COLUMNS[:6]) - set(reader.fieldnames or ())
            if missing:
                raise DatasetError(f"{str(path)!r} lacks label columns {sorted(missing)}")
            rows = list(reader)
        t0 = np.array([float(r["start_time"]) for r in rows]) / LABEL_SAMPLE_RATE
        t1 = np.array([float(r["end_time"]) for r in rows]) / LABEL_SAMPLE_RATE
        inst = np.array([int(float(r["instrument"])) for r in rows])
        pitch = np.array([int(float(r["note"])) for r in rows])
        beat = np.array([float(r["start_beat"]) for r in rows])
        beats = np.array([float(r["end_beat"]) for r in rows])
    except (OSError, csv.Error, UnicodeDecodeError, ValueError, KeyError, OverflowError) as exc:
        # OverflowError: int(float("inf")) for a note or instrument (review of session 45)
        raise DatasetError(f"malformed MusicNet label file {str(path)!r}: {exc}") from exc
    if not rows:
        raise DatasetError(f"{str(path)!r} holds no notes")
    if not all(np.isfinite(a).all() for a in (t0, t1, beat, beats)):
        raise DatasetError(f"{str(path)!r}: a time or beat is not a finite number")
    bad = (inst < 1) | (inst > 128)
    if bad.any():
        raise DatasetError(
            f"{str(path)!r}: instrument {int(inst[bad][0])} is not a 1-based GM program (1..128)")
    if ((pitch < 0) | (pitch > 127)).any():
        raise DatasetError(f"{str(path)!r}: a note number is outside 0..127")
    if timing == "score":
        if np.ptp(beat) <= 0:
            raise DatasetError(f"{str(path)!r}: start_beat does not advance; use performance timing")
        # seconds per beat: least-squares slope of onset seconds on onset beats
        slope, intercept = np.polyfit(beat, t0, 1)
        if not np.isfinite(slope) or slope <= 0:
            raise DatasetError(f"{str(path)!r}: cannot fit a tempo (slope {slope!r} s/beat)")
        first = beat.min()
        start = (beat - first) * slope
        end = start + np.maximum(beats, 1e-3) * slope
    else:
        start, end = t0 - t0.min(), t1 - t0.min()
    midi = pretty_midi.PrettyMIDI()
    for program in sorted(set(inst.tolist())):
        out = pretty_midi.Instrument(program=program - 1)  # MusicNet numbers programs from 1
        sel = np.flatnonzero(inst == program)
        for i in sel[np.lexsort((pitch[sel], start[sel]))]:
            if end[i] > start[i]:
                out.notes.append(pretty_midi.Note(DEFAULT_VELOCITY, int(pitch[i]),
                                                  float(start[i]), float(end[i])))
        midi.instruments.append(out)
    return midi


def build_musicnet_dataset(root: str | Path, out: str | Path, *,
                           soundfonts: list[SoundFont] | None = None, seed: int = 0,
                           limit: int | None = None, timing: str = "score",
                           sample_rate: int = 22050, clip_s: float = 30.0,
                           humanize: Humanize | None = None,
                           fractions: dict[str, float] | None = None,
                           progress: Progress = NULL_PROGRESS) -> dict:
    """Render a MusicNet tree's note labels into a data set at ``out``; returns a summary.

    Each piece is rendered whole with one SoundFont (chosen from the list by a hash of the
    piece id, so each SoundFont covers every composer alike), cut into ``clip_s`` clips,
    each written with its clip's MIDI. Resumable: pieces whose clips exist are skipped.
    """
    root = Path(root)
    pieces, skipped = discover(root)
    # splits from every work in the tree, so --limit and resumed runs never move a work
    splits = assign_splits([p.work_id for p in pieces], fractions=fractions, seed=seed)
    warn_small_split(splits)
    if limit is not None:
        pieces = pieces[:limit]
    fonts = soundfonts or available_soundfonts()
    unknown = sorted({p.composer for p in pieces if p.composer and not p.period})
    if unknown:
        warnings.warn(f"composers without a known period (label left unknown): {unknown}",
                      MusicBrainWarning, stacklevel=2)
    taxonomy = style_taxonomy(composers=sorted({p.composer for p in pieces if p.composer}))
    new = 0
    # what a clip holds: a rerun with another cut or timing into the same folder is refused,
    # as data notagen's is (it added overlapping clips of other lengths without a word)
    with DatasetWriter(out, taxonomy, sample_rate=sample_rate, name="musicnet",
                       build={"clip_s": clip_s, "timing": timing}) as writer:
        splits.update(writer.work_splits())
        for item, reason in skipped:
            writer.skip(item, reason)
        writer.report.update(composer_report(pieces))
        built: set[str] = set()
        with progress.task("rendering MusicNet pieces", total=len(pieces)) as task:
            for piece in pieces:
                try:
                    new += _build_piece(writer, piece, fonts, splits, seed=seed, timing=timing,
                                        sample_rate=sample_rate, clip_s=clip_s,
                                        humanize=humanize)
                    built.add(_clip_prefix(piece))
                except MusicBrainError as exc:
                    writer.skip(piece.rel, str(exc))
                task.advance()
        # a piece whose notes were removed or failed this run kept its earlier clips in the
        # training data, listed as skipped all the same: removed, as data notagen does
        drop_unbuilt(writer, built)
        summary = {"pieces": len(pieces), "clips": len(writer.rows), "new_clips": new,
                   "dropped_clips": len(writer.dropped), "skipped": len(writer.skipped)}
    return summary


def composer_report(pieces: list[MusicNetPiece]) -> dict:
    """``unknown_composers`` and ``ambiguous_composers`` of ``build_report.json``, as the NotaGen
    adapter writes them: each name as the metadata writes it, with its piece count and the
    known composers of that surname (who it is not) or the candidates it fits."""
    out: dict[str, dict[str, dict]] = {"unknown_composers": {}, "ambiguous_composers": {}}
    for p in pieces:
        if p.composer or not p.composer_written or p.composer_status not in ("unknown", "ambiguous"):
            continue
        entry = out[f"{p.composer_status}_composers"].setdefault(
            p.composer_written, {"files": 0, "same_surname" if p.composer_status == "unknown"
                                 else "candidates": list(p.composer_candidates)})
        entry["files"] += 1
    return out


def _clip_prefix(piece: MusicNetPiece) -> str:
    return f"mn-{piece.id}"


def _build_piece(writer: DatasetWriter, piece: MusicNetPiece, fonts: list[SoundFont],
                 splits: dict[str, str], *, seed: int, timing: str, sample_rate: int,
                 clip_s: float, humanize: Humanize | None) -> int:
    h = int(hashlib.sha256(piece.id.encode()).hexdigest()[:12], 16)
    if piece.labels_path is not None:
        midi = labels_to_midi(piece.labels_path, timing=timing)
    else:
        try:
            midi = score_to_midi(piece.midi_path)
        except RenderError as exc:
            raise RenderError(f"bad MIDI: {exc}") from exc
    template = ClipRecord(clip_id="", source="human", generator="-", period=piece.period,
                          composer=piece.composer, instrumentation=piece.instrumentation,
                          work_id=piece.work_id, split=splits[piece.work_id])
    return write_piece(writer, midi, template, clip_prefix=_clip_prefix(piece), item=piece.rel,
                       soundfont=fonts[h % len(fonts)], seed=(seed * 1_000_003 + h) % 2 ** 31,
                       sample_rate=sample_rate, clip_s=clip_s, humanize=humanize)
