"""Human scores in the styles the NotaGen-family pieces are written in (issue 21).

Why this source exists. RhythGen, the client's NotaGen-family generator, was fine-tuned on
two corpora: the OpenScore Lieder Corpus (its ``Lieder`` configurations) and a ragtime
collection (``RAG``, ``RAG-RH``). The reference corpus's human side holds almost none of
either (two Lieder and one rag from music21's corpus), so every detector trained on it so
far learned part of "AI" as "Lieder or ragtime": CPU fine-tunes of the content model called
held-out RhythGen `ai` only through that shortcut, and the symbolic line called a Joplin rag
AI (docs/evaluation/enlarged-finetune.md, docs/evaluation/symbolic-line.md). Human music of
the same styles, in numbers, is what both lines need before they may accuse NotaGen-family
output; this module reads it when it is there:

* **OpenScore Lieder** (M. Gotham, P. Jonas et al., "Scores of Scores", DLfM 2018;
  github.com/OpenScore/Lieder; CC0): ``scores/<Composer>/<Set>/<Song>/lc<id>.<ext>``
  (``Surname,_Given_Names``; a song outside any set sits in the set ``_``). NotaGen's 37
  Art Song composers are this corpus's composers. Its own repository keeps MuseScore files
  (``.mscx``/``.mscz``), which music21 cannot read: a song folder must also hold a
  MusicXML (``.mxl``, ``.musicxml``, ``.xml``) or MIDI export (``mscore -o lc<id>.mxl
  lc<id>.mscx`` makes one); a folder with MuseScore files only is listed as a failure
  saying so.
* **A labelled score folder** (for a ragtime collection, or any other): a folder holding
  ``labels.csv`` with the columns ``path`` (relative to the folder), ``composer``,
  ``period``, ``instrumentation`` and, optionally, ``work`` (files with the same work
  share a split; default: the file itself) and ``title``. MusicXML, MIDI and ABC.

Each score is parsed in a child with a deadline (untrusted files,
:func:`~musicbrain_cli.data.render.score_to_midi_bounded`), kept as MIDI in the build
folder (:data:`MIDI_CACHE`: the parse's own numbers, keyed by the file's SHA-256 and the
instrumentation, so a resumed build does not parse again and reads exactly what an
uninterrupted one did, and an edited file is parsed anew), and reduced to the corpus's note events exactly as
MusicNet's score MIDIs are (:func:`.musicnet.midi_events`): from there it is rendered by the
corpus's own loop, with the same SoundFonts and humanisation as every other clip, human or
generated.

Labels. A composer is matched strictly against the composers the taxonomy knows
(:func:`musicbrain_cli.data.labels.resolve_composer`: surname and given names must agree,
accents folded): a match gives the canonical name and, when the source states none, the
period NotaGen lists for that composer. A name that matches no known composer, or several,
is never mapped to another person: the clip's composer and (unless stated) period are left
unknown, masked in training, and the name as written is listed in the build report. The
instrumentation is ``Art Song`` for OpenScore Lieder and the folder's own (one of
NotaGen's, synonyms accepted) for a labelled folder.

Work identity. Songs of one set (a cycle, an opus of songs) form one work, so a cycle never
spans splits (``lieder:<Composer>/<Set>``); a song outside any set is its own work.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from musicbrain_cli.errors import DatasetError
from musicbrain_cli.progress import NULL_PROGRESS, Progress
from musicbrain_cli.data.reference import scores as sc
from musicbrain_cli.data.render import PARSE_TIMEOUT_S

#: Where the client's copies would sit beside a checkout: OpenScore Lieder, and a folder of
#: labelled collections (each a subfolder holding :data:`LABELS_CSV`).
LIEDER_TAIL = Path("shared") / "data" / "openscore-lieder"
LABELLED_TAIL = Path("shared") / "data" / "human-scores"
LIEDER = "openscore-lieder"
LABELS_CSV = "labels.csv"
#: Score files read, in order of preference when a song folder holds several exports.
SCORE_SUFFIXES = (".mxl", ".musicxml", ".xml", ".mid", ".midi", ".abc")
MUSESCORE_SUFFIXES = (".mscx", ".mscz")
MIDI_CACHE = ".human-scores-midi"
#: Notes a score must hold to be used (the floor music21 and MusicNet works are held to).
MIN_NOTES = 8
#: OpenScore Lieder's spellings of composers that NotaGen's prompt list writes otherwise, each
#: checked to be the same person (NotaGen's Art Song composers are this corpus's): NotaGen
#: shortens Clara Mathilda Faisst (1872-1948; Wikidata Q17626542, OpenScore's own id for her)
#: to "Faisst, Clara". Only an exact written name is mapped.
OPENSCORE_ALIASES = {"Faisst, Clara Mathilda": "Faisst, Clara"}
CREDIT_LIEDER = ("OpenScore Lieder Corpus (M. Gotham, P. Jonas, B. Bower, W. Bosworth, "
                 "D. Rootham, L. VanHandel, \"Scores of Scores: An OpenScore project to "
                 "encode and share sheet music\", DLfM 2018; github.com/OpenScore/Lieder), "
                 "released under CC0.")


@dataclass(frozen=True)
class Score:
    """One human score found in a source, with its labels and work, before parsing.

    ``composer``/``period`` are ``""`` when unknown (masked in training);
    ``written_composer`` is the name as the source gives it.
    """

    source: str
    rel: str
    path: Path
    work_id: str
    composer: str
    period: str
    instrumentation: str
    written_composer: str
    title: str = ""

    @property
    def piece_id(self) -> str:
        return f"{self.source}:{self.rel}"


# --- finding the sources --------------------------------------------------------------------


def is_lieder_tree(path: str | os.PathLike) -> bool:
    """Whether ``path`` is an OpenScore Lieder tree (it holds ``scores/``)."""
    return (Path(path) / "scores").is_dir()


def is_labelled_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a labelled score folder (it holds :data:`LABELS_CSV`)."""
    return (Path(path) / LABELS_CSV).is_file()


def find_sources(*, cwd: str | os.PathLike | None = None) -> list[Path]:
    """The human-style sources beside the working folder or this checkout: an OpenScore
    Lieder tree at ``../shared/data/openscore-lieder`` and each labelled folder under
    ``../shared/data/human-scores/``, in that order (none: an empty list)."""
    from musicbrain_cli.data.shared import find_shared

    out = []
    lieder = find_shared(LIEDER_TAIL, is_lieder_tree, cwd=cwd)
    if lieder is not None:
        out.append(lieder)
    labelled = find_shared(LABELLED_TAIL, lambda c: c.is_dir() and any(
        is_labelled_folder(d) for d in c.iterdir() if d.is_dir()), cwd=cwd)
    if labelled is not None:
        out += sorted(d for d in labelled.iterdir() if d.is_dir() and is_labelled_folder(d))
    return out


def check_source(path: str | os.PathLike) -> None:
    """Raise :class:`DatasetError` unless ``path`` is one of the two kinds of source."""
    if not (is_lieder_tree(path) or is_labelled_folder(path)):
        raise DatasetError(f"{str(path)!r} is neither an OpenScore Lieder tree (no scores/ "
                           f"folder) nor a labelled score folder (no {LABELS_CSV})")


# --- labels -------------------------------------------------------------------------------


def folder_name(text: str) -> str:
    """An OpenScore folder name in words: ``Beethoven,_Ludwig_van`` -> ``Beethoven, Ludwig
    van``; an alias note (``Barnard,_Charlotte_Alington_-_aka_Claribel``) and a name in
    parentheses (``Hensel,_Fanny_(Mendelssohn)``, her maiden name) are dropped."""
    words = " ".join(text.replace("_", " ").split())
    words = re.split(r"\s+-\s+aka\s+", words, maxsplit=1, flags=re.IGNORECASE)[0]
    return " ".join(re.sub(r"\([^()]*\)", " ", words).split())


def composer_labels(written: str, period: str = "") -> tuple[str, str]:
    """``(composer, period)`` labels of a written composer name: the canonical name and
    (unless ``period`` is given) its known period when exactly one known composer matches
    it, spelled out; else ``("", period)``: unknown, never another person. A match on
    initials alone ('F. Mendelssohn': Felix or Fanny?) is a reading, not a name, and stays
    unknown too."""
    from musicbrain_cli.data import labels as lb

    match = lb.resolve_composer(written)
    if match.status != "matched" or match.name is None or match.by_initials:
        return "", period
    return match.name, period or lb.COMPOSER_PERIODS.get(match.name, "")


def set_title(set_dir: str) -> str:
    """A set folder's title, lower case, without catalogue number or parenthesis
    (``Winterreise,_D.911`` and ``Winterreise_(D.911)`` -> ``winterreise``)."""
    return folder_name(set_dir).split(",")[0].strip().lower()


#: OpenScore sets that music21's corpus also holds a song of, as that song's music21 work id:
#: the set takes it, so the two encodings of one cycle can never sit in different splits
#: (the music21 song is pinned to train when the shipped generators learned from it).
MUSIC21_SETS = {("Schubert, Franz", "winterreise"): "m21:schubert/Lindenbaum",
                ("Schumann, Robert", "dichterliebe"): "m21:schumann_robert/dichterliebe_no2"}


def _inside(path: Path, top: Path) -> bool:
    """Whether ``path`` resolves inside ``top`` (a resolved folder): no link leads out."""
    try:
        return top in path.resolve().parents
    except (OSError, RuntimeError, ValueError):      # a link loop, a bad name
        return False


def discover_lieder(root: str | os.PathLike, *, source: str = LIEDER,
                    skipped: list[tuple[str, str]] | None = None) -> list[Score]:
    """Every score of an OpenScore Lieder tree, sorted by path, labelled (module docstring),
    under the source id ``source``.

    A song folder is ``scores/<Composer>/<Set>/<Song>/``; each distinct score in it (by file
    stem: ``lc<id>``) is read once, from its preferred export (:data:`SCORE_SUFFIXES`).
    Everything else is appended to ``skipped`` with the reason: song folders with no
    readable score (MuseScore files only: how to export them), score files elsewhere in the
    tree, and files or folders that lead out of it through a link. Hidden files (``._*``)
    are ignored.
    """
    root = Path(root)
    skipped = skipped if skipped is not None else []
    base = root / "scores"
    if not base.is_dir():
        raise DatasetError(f"{str(root)!r} is not an OpenScore Lieder tree (no scores/ folder)")
    top = root.resolve()
    suffixes = SCORE_SUFFIXES + MUSESCORE_SUFFIXES
    by_song: dict[str, list[Path]] = {}
    for path in sorted(base.rglob("*")):
        rel = path.relative_to(base)
        if any(part.startswith(".") for part in rel.parts) or path.suffix.lower() not in suffixes:
            continue
        item = f"{source}:{rel.as_posix()}"
        if not _inside(path, top):
            skipped.append((item, "leads out of the tree (a link)"))
            continue
        if not path.is_file():
            continue
        if len(rel.parts) != 4:
            skipped.append((item, "not in a <Composer>/<Set>/<Song>/ folder (a song outside "
                                  "any set belongs in the set '_')"))
            continue
        by_song.setdefault("/".join(rel.parts[:3]), []).append(path)
    for song in sorted(p for p in base.glob("*/*/*") if p.is_dir()):
        rel_song = song.relative_to(base).as_posix()
        if rel_song not in by_song and not any(x.startswith(".") for x in rel_song.split("/")):
            skipped.append((f"{source}:{rel_song}", "no score file"))
    out = []
    for rel_song, files in sorted(by_song.items()):
        composer_dir, set_dir, song_dir = rel_song.split("/")
        stems: dict[str, list[Path]] = {}
        for f in files:
            stems.setdefault(f.stem, []).append(f)
        readable = []
        for stem, group in sorted(stems.items()):
            best = min((f for f in group if f.suffix.lower() in SCORE_SUFFIXES),
                       key=lambda f: SCORE_SUFFIXES.index(f.suffix.lower()), default=None)
            if best is not None:
                readable.append(best)
        if not readable:
            skipped.append((f"{source}:{rel_song}",
                            "MuseScore files only: export MusicXML or MIDI beside them "
                            "(mscore -o lc<id>.mxl lc<id>.mscx)"))
            continue
        written = folder_name(composer_dir)
        composer, period = composer_labels(OPENSCORE_ALIASES.get(written, written))
        work = (MUSIC21_SETS.get((composer, set_title(set_dir)))
                or "lieder:" + (f"{composer_dir}/{set_dir}" if set_dir != "_" else rel_song))
        title = folder_name(re.sub(r"^\d+[a-z]?_", "", song_dir))
        out += [Score(source, path.relative_to(root).as_posix(), path, work, composer, period,
                      "Art Song", written, title) for path in readable]
    return out


#: Columns a labelled folder's :data:`LABELS_CSV` must have (``work`` and ``title`` may be
#: left out); matched without regard to case or surrounding spaces.
LABEL_COLUMNS = ("path", "composer", "period", "instrumentation")


def discover_labelled(root: str | os.PathLike, *, source: str | None = None,
                      skipped: list[tuple[str, str]] | None = None) -> list[Score]:
    """Every score listed in a labelled folder's :data:`LABELS_CSV`, labelled from it
    (module docstring), under the source id ``source`` (default: :func:`source_id`).

    Raises :class:`DatasetError` for a file that cannot be read as CSV or lacks a column of
    :data:`LABEL_COLUMNS`. Rows that cannot be used are appended to ``skipped`` with the
    reason and their line: an empty path, no such file, a path leading out of the folder,
    a file listed twice, not a score file, an unknown instrumentation or period.
    """
    from musicbrain_cli.data import labels as lb

    root = Path(root)
    skipped = skipped if skipped is not None else []
    name = source or source_id(root)
    csv_path = root / LABELS_CSV
    try:
        with open(csv_path, encoding="utf-8-sig", newline="") as fh:
            reader = csv.reader(fh)
            header = [" ".join(h.split()).lower() for h in next(reader, [])]
            missing = [c for c in LABEL_COLUMNS if c not in header]
            if missing:
                raise DatasetError(
                    f"{str(csv_path)!r} lacks the column(s) {', '.join(missing)} (columns: "
                    f"{', '.join(LABEL_COLUMNS)}[, work, title]; found: {', '.join(header)})")
            rows = [(reader.line_num, dict(zip(header, values))) for values in reader
                    if any(v.strip() for v in values)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"cannot read {str(csv_path)!r}: {exc}") from exc
    top = root.resolve()
    seen: dict[str, int] = {}
    out = []
    for line, row in rows:
        rel = (row.get("path") or "").strip()
        item = f"{name}:{rel or 'line ' + str(line)}"
        try:
            path = (root / rel).resolve()
            inside, exists = top in path.parents, path.is_file()
        except (OSError, RuntimeError, ValueError) as exc:   # a link loop, a NUL, too long
            skipped.append((item, f"line {line}: unusable path ({type(exc).__name__}: {exc})"))
            continue
        if not rel:
            skipped.append((item, f"line {line}: empty path"))
            continue
        if not inside:
            skipped.append((item, f"line {line}: the path leads out of the folder"))
            continue
        if not exists:
            skipped.append((item, f"line {line}: no such file in the folder"))
            continue
        key = path.relative_to(top).as_posix()
        if key in seen:
            skipped.append((item, f"line {line}: the same file as line {seen[key]} (each "
                                  "file is read once, with its first row's labels)"))
            continue
        seen[key] = line
        if path.suffix.lower() not in SCORE_SUFFIXES:
            skipped.append((item, f"line {line}: not a score file ({', '.join(SCORE_SUFFIXES)})"))
            continue
        instrumentation = lb.canonical_instrumentation(row.get("instrumentation") or "")
        if instrumentation is None:
            skipped.append((item, f"line {line}: instrumentation "
                                  f"{row.get('instrumentation')!r} is none of "
                                  f"{', '.join(lb.INSTRUMENTATIONS)}"))
            continue
        stated = (row.get("period") or "").strip()
        period = lb.canonical_period(stated) if stated else ""
        if period is None:
            skipped.append((item, f"line {line}: period {stated!r} is none of "
                                  f"{', '.join(lb.PERIODS)}"))
            continue
        written = " ".join((row.get("composer") or "").split())
        composer, period = composer_labels(written, period)
        work = " ".join((row.get("work") or "").split()) or str(Path(key).with_suffix(""))
        out.append(Score(name, key, path, f"{name}:{work}", composer, period,
                         instrumentation, written, " ".join((row.get("title") or "").split())))
    return sorted(out, key=lambda s: s.rel)


def source_id(root: str | os.PathLike) -> str:
    """The id a source's pieces and works carry: ``openscore-lieder`` for a Lieder tree,
    ``scores-<folder name>`` for a labelled folder (never another collection's prefix).
    :func:`source_ids` makes them unique within one build."""
    root = Path(root)
    if is_lieder_tree(root):
        return LIEDER
    return "scores-" + (re.sub(r"[^A-Za-z0-9._-]+", "_", root.name).strip("._-") or "folder")


def source_ids(roots: Sequence[str | os.PathLike]) -> list[str]:
    """:func:`source_id` of each root, numbered (``-2``, ``-3``) where two would be the same;
    raises :class:`DatasetError` when one folder is given twice (its scores would be read
    twice, and the second reading's labels lost)."""
    seen: dict[Path, str] = {}
    ids: list[str] = []
    for root in roots:
        real = Path(root).resolve()
        if real in seen:
            raise DatasetError(f"{str(root)!r} is given twice as a human-style source")
        base = source_id(root)
        sid, n = base, 1
        while sid in ids:
            n += 1
            sid = f"{base}-{n}"
        seen[real] = sid
        ids.append(sid)
    return ids


def discover(root: str | os.PathLike, *, source: str | None = None,
             skipped: list[tuple[str, str]] | None = None) -> list[Score]:
    """The scores of one source, whichever kind it is, under the id ``source`` (default:
    :func:`source_id`)."""
    check_source(root)
    if is_lieder_tree(root):
        return discover_lieder(root, source=source or LIEDER, skipped=skipped)
    return discover_labelled(root, source=source, skipped=skipped)


def select(scores: Sequence[Score], per_source: int | None) -> list[Score]:
    """Up to ``per_source`` scores, spread evenly over the sorted list (None: all)."""
    if per_source is not None and per_source <= 0:
        return []
    return sc._evenly(sorted(scores, key=lambda s: s.rel), per_source)


# --- parsing ------------------------------------------------------------------------------


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:20]


def parse_all(scores: Sequence[Score], cache: Path, *, jobs: int | None = None,
              timeout_s: float = PARSE_TIMEOUT_S, progress: Progress = NULL_PROGRESS
              ) -> tuple[dict[str, object], list[tuple[str, str]]]:
    """``({piece_id: PrettyMIDI}, [(piece_id, reason)])``: each score parsed (bounded,
    ``jobs`` at once, default the CPU count) or read back from ``cache``, keyed by the file's
    content and the instrumentation (the parse's own numbers, so a resumed build reads
    exactly what an uninterrupted one did). A file too large to parse is refused from its
    size before it is even hashed."""
    from musicbrain_cli.data.render import parse_all_bounded

    cache.mkdir(parents=True, exist_ok=True)

    def cache_of(s: Score) -> Path:
        return cache / f"{_digest(s.path)}-{re.sub(r'[^A-Za-z]+', '', s.instrumentation)}.npz"

    parsed, failed = parse_all_bounded(
        list(scores), path_of=lambda s: s.path, cache_of=cache_of,
        instrumentation_of=lambda s: s.instrumentation, jobs=jobs, timeout_s=timeout_s,
        progress=progress, task="parsing human scores")
    return ({s.piece_id: midi for s, midi in parsed},
            [(s.piece_id, f"unreadable score: {why}") for s, why in failed])


def human_style_works(sources: Sequence[str | os.PathLike], cache: Path, *,
                      per_source: int | None = None, jobs: int | None = None,
                      failures: list[tuple[str, str]] | None = None,
                      progress: Progress = NULL_PROGRESS) -> tuple[list[sc.Work], dict]:
    """The works of every source (``per_source`` scores at most each, spread), and what a
    build report says of them: per source its id (:func:`source_ids`), the scores found,
    selected, read (parsed, with notes) and left out, the piece ids read, and the credit;
    and the composer names the labels could not name (as written), with their counts.
    Raises :class:`DatasetError` for a source that is neither kind, or one given twice."""
    from musicbrain_cli.data.reference.musicnet import _qpm, midi_events

    failures = failures if failures is not None else []
    works: list[sc.Work] = []
    report: dict = {"sources": [], "unmatched_composers": {}}
    unmatched: dict[str, int] = {}
    for root, sid in zip(sources, source_ids(sources)):
        root = Path(root)
        skipped: list[tuple[str, str]] = []
        found = discover(root, source=sid, skipped=skipped)
        chosen = select(found, per_source)
        midis, parse_failures = parse_all(chosen, cache, jobs=jobs, progress=progress)
        read: list[str] = []
        for s in chosen:
            midi = midis.get(s.piece_id)
            if midi is None:
                continue
            events = midi_events(midi)
            if len(events) < MIN_NOTES:
                parse_failures.append((s.piece_id, f"only {len(events)} notes"))
                continue
            if not s.composer and s.written_composer:
                unmatched[s.written_composer] = unmatched.get(s.written_composer, 0) + 1
            works.append(sc.Work(
                work_id=s.work_id, piece_id=s.piece_id, collection=s.source,
                period=s.period, composer=s.composer, instrumentation=s.instrumentation,
                qpm=_qpm(midi, sc.DEFAULT_QPM.get(s.period, 100.0)),
                n_parts=min(len([i for i in midi.instruments if i.notes]), sc.MAX_PARTS),
                events=events, title=s.title))
            read.append(s.piece_id)
        failures += skipped + parse_failures
        report["sources"].append({
            "root": str(root), "source": sid,
            "kind": LIEDER if is_lieder_tree(root) else "labelled",
            "scores_found": len(found), "scores_selected": len(chosen),
            "scores_read": len(read), "left_out": len(skipped) + len(parse_failures),
            "piece_ids": read,
            "credit": CREDIT_LIEDER if is_lieder_tree(root) else
            f"labelled score folder {root.name!r} ({LABELS_CSV}); see its own licence"})
    report["unmatched_composers"] = dict(sorted(unmatched.items()))
    return works, report
