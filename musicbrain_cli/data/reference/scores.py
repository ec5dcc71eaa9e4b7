"""Human scores of the reference corpus: music21's bundled corpus -> labelled note events.

The reference corpus needs scores by real composers with trustworthy labels. music21 ships
a few thousand public-domain encodings (Bach chorales, Palestrina masses, Classical
quartets, folk collections, ...). This module names which of them are used and how each is
labelled (:data:`COLLECTIONS`), parses them once, and caches the result as JSON so a corpus
build never reparses music21 (parsing costs 0.1-0.6 s per file, ~10 s per large ABC book).

Labels follow NotaGen's taxonomy (Wang et al. 2025, "NotaGen: Advancing Musicality in
Symbolic Music Generation with LLM Training Paradigms", periods Baroque/Classical/Romantic,
instrumentations Art Song, Keyboard, Chamber, Orchestral, Choral, Vocal-Orchestral) and
extend it where the corpus needs it: periods ``Medieval``, ``Renaissance``, ``Folk``;
instrumentation ``Melody`` (a single unaccompanied tune, instrument unspecified). Composers
are in one canonical form, ``"Surname, Given names"``; traditional folk tunes have the
composer cell ``"-"`` (known to be none of the named composers).

A score is reduced to note events ``(onset, part, pitch, duration)`` in ticks of
:data:`TICKS_PER_QUARTER` per quarter note. Dynamics, articulation and repeats are dropped on
purpose: the machine-composed scores carry none of them either, so keeping them for human
scores would hand a detector a shortcut that has nothing to do with composition.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from musicbrain_cli.errors import DatasetError, MusicBrainWarning, RenderError
from musicbrain_cli.progress import NULL_PROGRESS, Progress

#: Grid of the note events: 12 ticks per quarter holds sixteenths (3) and eighth triplets (4).
TICKS_PER_QUARTER = 12
#: Parts beyond this many are folded onto the last one (Palestrina has up to 6 voices).
MAX_PARTS = 6
#: MIDI pitch range kept (the 88 piano keys).
PITCH_MIN, PITCH_MAX = 21, 108
#: Tempo used when a score carries no metronome mark, by period (quarter notes per minute).
DEFAULT_QPM = {"Medieval": 90.0, "Renaissance": 90.0, "Baroque": 80.0, "Classical": 110.0,
               "Romantic": 100.0, "Folk": 120.0}
#: Bump when the extraction changes, so stale caches are ignored.
EXTRACTION_VERSION = 2

PERIODS = ("Medieval", "Renaissance", "Baroque", "Classical", "Romantic", "Folk")
INSTRUMENTATIONS = ("Art Song", "Keyboard", "Chamber", "Choral", "Vocal-Orchestral", "Melody")


@dataclass(frozen=True)
class Collection:
    """A set of music21 corpus files that share their labels.

    ``patterns`` are globs relative to the music21 corpus root. ``max_files`` and
    ``max_works`` cap how many files are read and how many works kept, both taken evenly
    across the sorted list (so a capped collection spans it rather than its alphabetical
    head, and no single collection swamps the corpus). ``opus_as_parts``: the file
    is an ABC book whose tunes are the *voices* of one piece (the Josquin encodings), not
    separate pieces. ``work_group`` is a regex on the relative path whose first group names
    the work the file belongs to (movements of one quartet, sections of one mass), so that
    all of a work's files land in one split.
    """

    name: str
    patterns: tuple[str, ...]
    period: str
    composer: str
    instrumentation: str
    max_works: int | None = None
    max_files: int | None = None
    opus_as_parts: bool = False
    work_group: str | None = None


# Why each mapping: documented in docs/reference-corpus.md, "Label mapping".
COLLECTIONS: tuple[Collection, ...] = (
    Collection("trecento", ("trecento/*.xml",), "Medieval", "", "Choral"),
    Collection("ciconia", ("ciconia/*.xml",), "Medieval", "Ciconia, Johannes", "Choral"),
    Collection("palestrina", ("palestrina/*.krn",), "Renaissance",
               "Palestrina, Giovanni Pierluigi da", "Choral", max_files=240,
               work_group=r"palestrina/[A-Za-z]+_(?:II_)?(\d+)"),
    Collection("monteverdi", ("monteverdi/madrigal.*.mxl",), "Renaissance",
               "Monteverdi, Claudio", "Choral"),
    Collection("josquin", ("josquin/*.abc",), "Renaissance", "Josquin des Prez", "Choral",
               opus_as_parts=True),
    Collection("bach", ("bach/bwv*.mxl", "bach/bwv*.xml"), "Baroque",
               "Bach, Johann Sebastian", "Choral"),
    Collection("handel", ("handel/*/*.mxl",), "Baroque", "Handel, George Frideric",
               "Vocal-Orchestral"),
    Collection("corelli", ("corelli/*/*.xml",), "Baroque", "Corelli, Arcangelo", "Chamber"),
    Collection("mozart-quartets", ("mozart/k1*/*.mxl", "mozart/k4*/*.mxl", "mozart/k80/*.mxl"),
               "Classical", "Mozart, Wolfgang Amadeus", "Chamber",
               work_group=r"(mozart/k\d+)/"),
    Collection("mozart-keyboard", ("mozart/k545/*.mxl",), "Classical",
               "Mozart, Wolfgang Amadeus", "Keyboard", work_group=r"(mozart/k545)/"),
    Collection("haydn", ("haydn/*/*.mxl",), "Classical", "Haydn, Joseph", "Chamber",
               work_group=r"(haydn/opus[^/]+)/"),
    Collection("beethoven", ("beethoven/*.mxl", "beethoven/*/*.mxl"), "Classical",
               "Beethoven, Ludwig van", "Chamber", work_group=r"(beethoven/opus[^/.]+)"),
    Collection("schubert", ("schubert/*.xml",), "Romantic", "Schubert, Franz", "Art Song"),
    Collection("schumann-songs", ("schumann_robert/dichterliebe_no2.xml",
                                  "schumann_robert/opus48no2.mxl"),
               "Romantic", "Schumann, Robert", "Art Song"),
    Collection("schumann-quartet", ("schumann_robert/opus41no1/*.mxl",), "Romantic",
               "Schumann, Robert", "Chamber", work_group=r"(schumann_robert/opus41no1)/"),
    Collection("clara-schumann-keyboard", ("schumann_clara/polonaise_*.mxl",), "Romantic",
               "Schumann, Clara", "Keyboard"),
    Collection("clara-schumann-trio", ("schumann_clara/opus17/*.xml",), "Romantic",
               "Schumann, Clara", "Chamber", work_group=r"(schumann_clara/opus17)/"),
    Collection("chopin", ("chopin/*.krn",), "Romantic", "Chopin, Frédéric", "Keyboard"),
    Collection("ryans-mammoth", ("ryansMammoth/*.abc",), "Folk", "-", "Melody",
               max_files=300),
    Collection("essen", ("essenFolksong/*.abc",), "Folk", "-", "Melody", max_files=3,
               max_works=300),
    Collection("oneills", ("oneills1850/*.abc",), "Folk", "-", "Melody", max_files=5,
               max_works=200),
)


@dataclass
class Work:
    """One labelled piece as note events.

    ``events``: ``(onset_tick, part, midi_pitch, duration_ticks)`` sorted by onset, part,
    pitch; ticks are :data:`TICKS_PER_QUARTER` per quarter note. ``qpm``: tempo in quarter
    notes per minute. ``work_id`` is stable across runs and machines (``m21:<path>``, plus
    ``#<n>`` for one tune of an ABC book), and is what splits are assigned by; ``piece_id``
    names the file (and tune) itself, one movement or section of the work.
    """

    work_id: str
    piece_id: str
    collection: str
    period: str
    composer: str
    instrumentation: str
    qpm: float
    n_parts: int
    events: list[tuple[int, int, int, int]] = field(repr=False)
    title: str = ""

    @property
    def length_ticks(self) -> int:
        return max((on + dur for on, _, _, dur in self.events), default=0)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["events"] = [list(e) for e in self.events]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Work":
        d = dict(d)
        d["events"] = [tuple(int(x) for x in e) for e in d["events"]]
        return cls(**d)


# --- corpus discovery ---------------------------------------------------------------------


def corpus_root() -> Path:
    """The folder of music21's bundled corpus."""
    from music21 import common

    return Path(common.getCorpusFilePath())


def _evenly(items: list, cap: int | None) -> list:
    if cap is None or len(items) <= cap:
        return items
    step = len(items) / cap
    return [items[int(i * step)] for i in range(cap)]


def collection_files(collection: Collection, *, root: Path | None = None) -> list[str]:
    """Relative corpus paths of a collection, sorted, capped by ``max_files``."""
    root = root or corpus_root()
    found: set[str] = set()
    for pattern in collection.patterns:
        found.update(p.relative_to(root).as_posix() for p in root.glob(pattern) if p.is_file())
    return _evenly(sorted(found), collection.max_files)


def work_group(collection: Collection, rel_path: str) -> str:
    """The work a corpus file belongs to (files of one work never span splits)."""
    if collection.work_group:
        m = re.search(collection.work_group, rel_path)
        if m:
            return "m21:" + m.group(1)
    return "m21:" + rel_path.rsplit(".", 1)[0]


# --- extraction ---------------------------------------------------------------------------


def _qpm_of(score, default: float) -> float:
    from music21 import tempo

    for mark in score.recurse().getElementsByClass(tempo.MetronomeMark):
        qpm = mark.getQuarterBPM()
        if qpm and 30.0 <= qpm <= 240.0:
            return float(qpm)
        break
    return default


def _events_of_parts(parts: Sequence) -> list[tuple[int, int, int, int]]:
    """Flatten music21 parts into quantised note events (ties merged, grace notes dropped)."""
    events: set[tuple[int, int, int, int]] = set()
    for index, part in enumerate(parts):
        voice = min(index, MAX_PARTS - 1)
        flat = part.stripTies().flatten()
        for n in flat.notes:
            ql = float(n.quarterLength)
            if ql <= 0:  # grace notes have no duration of their own
                continue
            onset = int(round(float(n.offset) * TICKS_PER_QUARTER))
            dur = max(1, int(round(ql * TICKS_PER_QUARTER)))
            for p in n.pitches:
                midi = int(p.midi)
                if PITCH_MIN <= midi <= PITCH_MAX:
                    events.add((onset, voice, midi, dur))
    return sorted(events)


def _score_parts(score) -> list:
    parts = list(score.parts)
    return parts if parts else [score]


def extract_works(collection: Collection, rel_path: str) -> list[Work]:
    """Parse one corpus file into labelled works (several for an ABC book of tunes).

    Raises :class:`RenderError` when music21 cannot parse the file.
    """
    from music21 import corpus, stream

    try:
        with warnings.catch_warnings():
            # music21 warns about every overfull measure of old encodings; the notes are
            # still read, and a build must not flood the caller with them.
            warnings.simplefilter("ignore")
            parsed = corpus.parse(rel_path)
    except Exception as exc:  # music21 raises many unrelated types for bad encodings
        raise RenderError(f"music21 cannot parse corpus file {rel_path!r}: {exc}") from exc

    default_qpm = DEFAULT_QPM[collection.period]
    group = work_group(collection, rel_path)

    def make(suffix: str, parts: list, source, title: str) -> Work | None:
        events = _events_of_parts(parts)
        if len(events) < 8:
            return None
        return Work(work_id=group + suffix, piece_id="m21:" + rel_path + suffix,
                    collection=collection.name, period=collection.period,
                    composer=collection.composer, instrumentation=collection.instrumentation,
                    qpm=_qpm_of(source, default_qpm), n_parts=min(len(parts), MAX_PARTS),
                    events=events, title=title)

    works: list[Work] = []
    if isinstance(parsed, stream.Opus):
        scores = list(parsed.scores)
        if collection.opus_as_parts:
            parts = [p for s in scores for p in _score_parts(s)]
            w = make("", parts, scores[0] if scores else parsed, _title(scores[0]) if scores else "")
            works += [w] if w else []
        else:
            for i, s in enumerate(scores):
                w = make(f"#{i}", _score_parts(s), s, _title(s))
                works += [w] if w else []
    else:
        w = make("", _score_parts(parsed), parsed, _title(parsed))
        works += [w] if w else []
    return works


def _title(score) -> str:
    md = getattr(score, "metadata", None)
    return str(md.title or "") if md is not None else ""


# --- cache --------------------------------------------------------------------------------


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/musicbrain/reference-scores`` (``~/.cache/...`` by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "musicbrain" / "reference-scores"


def _cache_path(cache_dir: Path, collection: Collection, rel_path: str) -> Path:
    import music21

    # The caps (max_files, max_works) choose files, they do not change what a file yields.
    labels = [collection.name, collection.period, collection.composer,
              collection.instrumentation, collection.opus_as_parts, collection.work_group]
    key = json.dumps([EXTRACTION_VERSION, music21.__version__, labels, rel_path])
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", rel_path)
    return cache_dir / f"{stem}.{digest}.json"


def load_works(collection: Collection, rel_path: str, *, cache_dir: Path | None = None
               ) -> list[Work]:
    """Works of one corpus file, from the JSON cache when present, else parsed and cached.

    A file music21 cannot parse is cached as an empty list with the reason, so it is not
    retried on every build; the reason is returned by :func:`cached_failure`.
    """
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = _cache_path(cache_dir, collection, rel_path)
    if path.exists():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("failure"):
                raise RenderError(data["failure"])
            return [Work.from_dict(w) for w in data["works"]]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            warnings.warn(f"ignoring unreadable score cache {str(path)!r}: {exc}", MusicBrainWarning, stacklevel=2)
    failure = None
    try:
        works = extract_works(collection, rel_path)
    except RenderError as exc:
        works, failure = [], str(exc)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"version": EXTRACTION_VERSION, "path": rel_path,
                               "failure": failure, "works": [w.to_dict() for w in works]},
                              separators=(",", ":")), encoding="utf-8")
    tmp.replace(path)  # atomic: a killed build never leaves half a cache file
    if failure:
        raise RenderError(failure)
    return works


def iter_corpus(collections: Iterable[Collection] = COLLECTIONS, *, files_per_collection:
                int | None = None, cache_dir: Path | None = None,
                progress: Progress = NULL_PROGRESS,
                failures: list[tuple[str, str]] | None = None) -> Iterator[Work]:
    """Yield the works of ``collections`` in a fixed order.

    ``files_per_collection`` caps the corpus files read per collection (the first ones in
    order: small builds parse little). Each collection's ``max_works`` caps its works.
    Files that fail to parse are appended to
    ``failures`` as ``(path, reason)`` and skipped.
    """
    collections = list(collections)
    plan: list[tuple[Collection, list[str]]] = []
    for c in collections:
        files = collection_files(c)
        if files_per_collection is not None:
            files = files[:files_per_collection]
        plan.append((c, files))
    total = sum(len(f) for _, f in plan)
    with progress.task("reading scores", total=total) as task:
        for c, files in plan:
            works: list[Work] = []
            for rel in files:
                try:
                    works += load_works(c, rel, cache_dir=cache_dir)
                except RenderError as exc:
                    if failures is not None:
                        failures.append((rel, str(exc)))
                task.advance()
            yield from _evenly(works, c.max_works)


def label_values(collections: Iterable[Collection] = COLLECTIONS) -> dict[str, list[str]]:
    """Label values per group that ``collections`` can produce, in first-seen order."""
    out: dict[str, list[str]] = {"period": [], "composer": [], "instrumentation": []}
    for c in collections:
        for group, value in (("period", c.period), ("composer", c.composer),
                             ("instrumentation", c.instrumentation)):
            if value not in ("", "-") and value not in out[group]:
                out[group].append(value)
    for group, order in (("period", PERIODS), ("instrumentation", INSTRUMENTATIONS)):
        out[group].sort(key=order.index)
    return out


def check_collections(collections: Sequence[Collection] = COLLECTIONS) -> None:
    """Fail early on a mislabelled collection (unknown period or instrumentation)."""
    for c in collections:
        if c.period not in PERIODS:
            raise DatasetError(f"collection {c.name!r}: unknown period {c.period!r}")
        if c.instrumentation not in INSTRUMENTATIONS:
            raise DatasetError(
                f"collection {c.name!r}: unknown instrumentation {c.instrumentation!r}")
