"""MusicNet's score MIDIs as human works of the reference corpus (issue 21 item 4).

MusicNet (Thickstun, Harchaoui & Kakade 2017, "Learning Features of Music from Scratch",
ICLR) holds 330 classical pieces by ten composers with their score MIDIs
(``musicnet_midis/<Composer>/<id>_<name>.mid``) and ``musicnet_metadata.csv``. Here each
piece becomes a :class:`~.scores.Work`, the same note events as music21's scores (12 ticks
per quarter, no dynamics), so it goes through the same ``events_to_midi`` -> ``render_midi``
path, SoundFonts, humanisation and clip length as every other clip of the corpus, human or
generated. The recordings are never used (``data/musicnet.py`` says why).

Labels and work identity come from the MusicNet adapter (``data/musicnet.py``
:func:`~musicbrain_cli.data.musicnet.discover`): its composer mapping (MusicNet writes
bare surnames, each of its ten composers the only one of that surname there), the period
of that composer, :func:`~musicbrain_cli.data.musicnet.ensemble_instrumentation` and
the work id ``musicnet:<composer>:<catalog_name>`` that groups the movements of one work.
A MusicNet work that music21's corpus also holds (Beethoven's Op. 18 No. 1 and 5 and
Op. 132 quartets) takes the music21 work id instead, so the two encodings of one work can
never sit in different splits, and a work the shipped generators learned from stays in
train.
"""

from __future__ import annotations

import os
import re
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Iterable, Sequence

from musicbrain_cli.errors import DatasetError, MusicBrainError
from musicbrain_cli.progress import NULL_PROGRESS, Progress
from musicbrain_cli.data.reference import scores as sc

COLLECTION = "musicnet"
#: Where the client's MusicNet tree sits beside a checkout (``../shared/data/musicnet``).
SHARED_TAIL = Path("shared") / "data" / "musicnet"
#: music21 corpus folders of the composers both sources hold (for the work id alias).
MUSIC21_FOLDERS = {"Bach, Johann Sebastian": "bach", "Beethoven, Ludwig van": "beethoven",
                   "Mozart, Wolfgang Amadeus": "mozart", "Haydn, Joseph": "haydn",
                   "Schubert, Franz": "schubert"}
#: Tempi outside this range are taken for a missing or broken tempo map (as in
#: :func:`.scores._qpm_of`), and the period's default is used.
QPM_RANGE = (30.0, 240.0)
CREDIT = ("MusicNet: J. Thickstun, Z. Harchaoui, S. Kakade, \"Learning Features of Music "
          "from Scratch\", ICLR 2017. Score MIDIs and metadata as mirrored in "
          "alejandrokennedy/music-viz (no licence stated there); MusicNet is distributed "
          "by its authors under their own terms: check the official release before "
          "redistributing anything built from it.")


def find_musicnet(*, cwd: str | os.PathLike | None = None) -> Path | None:
    """The shared MusicNet tree beside the working folder or this checkout, if any.

    Looks for ``shared/data/musicnet`` in each folder above the working folder, then above
    the repository root holding this package (a checkout at ``/work/main`` finds
    ``/work/shared/data/musicnet``, i.e. ``../shared/data/musicnet``; a worktree one level
    deeper finds the same). A folder counts only when it holds ``musicnet_metadata.csv``.
    """
    from musicbrain_cli.data.shared import find_shared

    return find_shared(SHARED_TAIL, lambda c: (c / "musicnet_metadata.csv").is_file(), cwd=cwd)


def music21_alias(composer: str, catalog: str) -> str | None:
    """The music21 work id a MusicNet work would have (``OP18NO1`` of Beethoven ->
    ``m21:beethoven/opus18no1``), or None for a composer music21's corpus lacks."""
    folder = MUSIC21_FOLDERS.get(composer)
    cat = re.sub(r"[^a-z0-9]+", "", catalog.lower())
    if folder is None or not cat:
        return None
    return f"m21:{folder}/" + re.sub(r"^op(?!us)", "opus", cat)


def known_music21_works(collections: Iterable[sc.Collection] = sc.COLLECTIONS) -> set[str]:
    """Every work id the reference collections can produce (a glob, no parsing)."""
    return {sc.work_group(c, rel) for c in collections for rel in sc.collection_files(c)}


def _qpm(midi, default: float) -> float:
    """Time-weighted mean tempo of the MIDI file's tempo map, quarter notes per minute."""
    times, tempi = midi.get_tempo_changes()
    end = max(midi.get_end_time(), float(times[-1]) if len(times) else 0.0)
    if len(tempi) == 0 or end <= 0:
        return default
    bounds = list(times[1:]) + [end]
    spans = [max(0.0, b - a) for a, b in zip(times, bounds)]
    total = sum(spans)
    qpm = float(sum(t * s for t, s in zip(tempi, spans)) / total) if total > 0 \
        else float(tempi[0])
    return qpm if QPM_RANGE[0] <= qpm <= QPM_RANGE[1] else default


def midi_events(midi) -> list[tuple[int, int, int, int]]:
    """A score MIDI -> note events ``(onset, part, pitch, duration)`` on the corpus grid.

    Positions come from the file's own ticks (score time, whatever its tempo map), scaled
    to :data:`.scores.TICKS_PER_QUARTER`; each non-drum track is a part in file order,
    folded at :data:`.scores.MAX_PARTS`; pitches outside the piano's range are dropped, as
    :func:`.scores._events_of_parts` does for music21 scores.
    """
    scale = sc.TICKS_PER_QUARTER / midi.resolution
    events: set[tuple[int, int, int, int]] = set()
    parts = [inst for inst in midi.instruments if not inst.is_drum and inst.notes]
    for index, inst in enumerate(parts):
        voice = min(index, sc.MAX_PARTS - 1)
        for note in inst.notes:
            onset = int(round(midi.time_to_tick(note.start) * scale))
            end = int(round(midi.time_to_tick(note.end) * scale))
            if sc.PITCH_MIN <= note.pitch <= sc.PITCH_MAX:
                events.add((onset, voice, int(note.pitch), max(1, end - onset)))
    return sorted(events)


def _midi_path(root: Path, piece) -> Path | None:
    """The piece's score MIDI (the adapter names it only when there is no label CSV)."""
    if piece.midi_path is not None:
        return piece.midi_path
    found = sorted((root / "musicnet_midis").rglob(f"{piece.id}_*.mid"))
    return found[0] if found else None


def _evenly_by_composer(pieces: list, per_composer: int | None) -> list:
    if per_composer is not None and per_composer <= 0:
        return []
    by: dict[str, list] = defaultdict(list)
    for p in pieces:
        by[p.composer].append(p)
    out = []
    for composer in sorted(by):
        out += sc._evenly(by[composer], per_composer)
    return sorted(out, key=lambda p: (len(p.id), p.id))


def musicnet_works(root: str | os.PathLike, *, per_composer: int | None = None,
                   known_works: set[str] | None = None,
                   failures: list[tuple[str, str]] | None = None,
                   progress: Progress = NULL_PROGRESS) -> list[sc.Work]:
    """The pieces of a MusicNet tree as labelled works, ``per_composer`` at most each
    (spread over the composer's pieces in id order; None: all).

    ``known_works``: music21 work ids (:func:`known_music21_works`); a MusicNet work with
    one of them as :func:`music21_alias` takes that id. Pieces that cannot be used
    (no MIDI, unreadable, no instrumentation label, no notes) are appended to ``failures``
    as ``(item, reason)``. Raises :class:`DatasetError` when ``root`` is not a MusicNet
    tree.
    """
    from musicbrain_cli.data import musicnet as mn
    from musicbrain_cli.data.render import score_to_midi

    root = Path(root)
    pieces, skipped = mn.discover(root)
    failures = failures if failures is not None else []
    failures += [(f"musicnet:{item}", why) for item, why in skipped]
    meta = mn.read_metadata(root)
    known_works = known_works or set()
    works: list[sc.Work] = []
    chosen = _evenly_by_composer(pieces, per_composer)
    with progress.task("reading MusicNet scores", total=len(chosen)) as task:
        for piece in chosen:
            task.advance()
            path = _midi_path(root, piece)
            rel = path.relative_to(root).as_posix() if path is not None else piece.rel
            item = f"musicnet:{rel}"
            if path is None:
                failures.append((item, "no score MIDI under musicnet_midis/"))
                continue
            if not piece.instrumentation:
                failures.append((item, f"ensemble {meta[piece.id].get('ensemble')!r} has no "
                                       "instrumentation label"))
                continue
            try:
                with warnings.catch_warnings():
                    # MusicNet's files put tempo events on non-zero tracks; pretty_midi
                    # warns for each file but reads them (the tempo is then checked by _qpm)
                    warnings.filterwarnings("ignore", message="Tempo, Key or Time signature",
                                            category=RuntimeWarning)
                    midi = score_to_midi(path)
            except MusicBrainError as exc:
                failures.append((item, str(exc)))
                continue
            events = midi_events(midi)
            if len(events) < 8:   # the floor music21 works are held to (scores.py)
                failures.append((item, f"only {len(events)} notes"))
                continue
            row = meta[piece.id]
            catalog = " ".join((row.get("catalog_name") or "").split())
            alias = music21_alias(piece.composer, catalog)
            work_id = alias if alias in known_works else piece.work_id
            default = sc.DEFAULT_QPM.get(piece.period, 100.0)
            title = " ".join(x for x in (row.get("composition", "").strip(),
                                         row.get("movement", "").strip()) if x)
            works.append(sc.Work(
                work_id=work_id, piece_id=item, collection=COLLECTION, period=piece.period,
                composer=piece.composer, instrumentation=piece.instrumentation,
                qpm=_qpm(midi, default),
                n_parts=min(len([i for i in midi.instruments if i.notes]), sc.MAX_PARTS),
                events=events, title=title))
    if not works and chosen:
        raise DatasetError(f"no usable MusicNet piece under {str(root)!r} "
                           f"(first failures: {failures[:3]})")
    return works


def composers_of(works: Sequence[sc.Work]) -> list[str]:
    """Distinct composers of ``works`` in sorted order (the taxonomy's extension)."""
    return sorted({w.composer for w in works if w.composer not in ("", "-")})
