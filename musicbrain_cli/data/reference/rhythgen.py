"""Real NotaGen-family output (RhythGen) as AI works of the reference corpus (issue 21 item 3).

RhythGen (NotaGen-small fine-tuned on Lieder and ragtime) wrote the ABC pieces in the
client's ``notagen-outputs/<Lieder|RAG|RAG-RH>/<configuration>/`` folders. Here they join
the reference corpus's AI side, labelled and identified by the NotaGen adapter
(:func:`musicbrain_cli.data.notagen.discover`, :func:`~.notagen.find_labels`: generator
``notagen-small-ft``, instrumentation from the family, period and composer unknown), and
are rendered by the corpus's own loop: the same SoundFonts (the held-out one for the
cross-renderer split), the same seeded humanisation and clip length as every human clip.
That is the point of building them here rather than with ``data notagen`` and a merge:
there the pieces would be rendered without the corpus's humanisation, and "unhumanised"
would tell the sources apart (the brief: render both sides alike).

Splits. A work is a prompt piece (RhythGen reuses one piece's control labels across its
configurations; :meth:`~.notagen.RhythGenInfo.work_id`), split with the corpus's shares.
The configurations in :data:`HELD_OUT_CONFIGS` are never trained on: only their pieces
whose work is in a test split are kept, so a test clip of one is unseen twice over
(configuration and work). The card's per-configuration recall is measured on those.

Parsing ABC is slow and untrusted (music21 can run for minutes on broken generated ABC):
each piece is parsed in a child with a deadline
(:func:`~musicbrain_cli.data.render.score_to_midi_bounded`), several at once, and the
resulting notes are kept in the build folder (``.rhythgen-midi/<piece>-<content>-<instrumentation>.npz``: the parse's
own float64 numbers, data), so a resumed build does not parse again and renders exactly
what an uninterrupted one did.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from musicbrain_cli.progress import NULL_PROGRESS, Progress

#: Where the client's RhythGen output sits beside a checkout.
SHARED_TAIL = Path("shared") / "data" / "notagen-outputs"
#: Configurations never trained on, one or two per family (chosen before any model was
#: trained on RhythGen output; the four configurations of ``../shared/eval/notagen-abc`` are
#: not in the training folder at all).
HELD_OUT_CONFIGS = frozenset({"LAD", "LMM2", "RAS2", "HMR"})
#: Splits a held-out configuration's pieces may sit in.
TEST_SPLITS = ("test", "test_xsf")
#: Seconds one ABC parse may take before the piece is skipped.
PARSE_TIMEOUT_S = 120.0
MIDI_CACHE = ".rhythgen-midi"
CREDIT = ("RhythGen (E. Dahl, efraimdahl/RhythGen): NotaGen-small fine-tuned on Lieder and "
          "ragtime; outputs as published in its repository (no licence stated there).")


@dataclass(frozen=True)
class Piece:
    """One selected RhythGen piece: where it is, its labels and its work."""

    rel: str
    path: Path
    family: str
    config: str
    work_id: str
    generator: str
    instrumentation: str
    period: str = ""
    composer: str = ""

    @property
    def held_out(self) -> bool:
        return self.config in HELD_OUT_CONFIGS

    @property
    def piece_id(self) -> str:
        return hashlib.sha256(self.rel.encode("utf-8")).hexdigest()[:12]


#: Clip ids of RhythGen clips: ``rg-<configuration>-<piece id>-w<window>``.
CLIP_PREFIX = "rg-"


def config_token(config: str) -> str:
    """The configuration as a clip id carries it: the name itself when it holds only letters,
    digits, ``_``, ``.`` and ``+`` (RhythGen's own names: ``LAR``, ``RB_Base``), else those
    runs kept, ``_`` between them and 6 hex digits of the name's hash (a user's ``LAS (copy)``
    -> ``LAS_copy.<hash>``), so the id stays valid and :func:`config_of` can split it."""
    if re.fullmatch(r"[A-Za-z0-9_.+]+", config):
        return config
    kept = "_".join(re.findall(r"[A-Za-z0-9_+]+", config)) or "config"
    return f"{kept}.{hashlib.sha256(config.encode('utf-8')).hexdigest()[:6]}"


def clip_id(piece: Piece, window: int) -> str:
    return f"{CLIP_PREFIX}{config_token(piece.config)}-{piece.piece_id}-w{window}"


def config_of(clip: str) -> str | None:
    """The RhythGen configuration token a clip id names (:func:`clip_id`, :func:`config_token`:
    the configuration's own name unless it holds other characters), else ``None``."""
    return clip.split("-")[1] if clip.startswith(CLIP_PREFIX) else None


def is_rhythgen_tree(path: str | os.PathLike) -> bool:
    """Whether ``path`` holds at least one of RhythGen's family folders."""
    from musicbrain_cli.data.notagen import RHYTHGEN_FAMILIES

    return any((Path(path) / f).is_dir() for f in RHYTHGEN_FAMILIES)


def find_rhythgen(*, cwd: str | os.PathLike | None = None) -> Path | None:
    """The shared RhythGen tree beside the working folder or this checkout, if any
    (``../shared/data/notagen-outputs``; it must hold at least one family folder)."""
    from musicbrain_cli.data.shared import find_shared

    return find_shared(SHARED_TAIL, is_rhythgen_tree, cwd=cwd)


def discover_pieces(root: str | Path, *, skipped: list[tuple[str, str]] | None = None) -> list[Piece]:
    """Every RhythGen piece under ``root`` with its labels, sorted by path; files outside
    RhythGen's layout are ignored (``data notagen`` reads those). Folders that could not be
    walked (unreadable, a link loop) are appended to ``skipped``."""
    from musicbrain_cli.data import notagen as ng

    root = Path(root)
    pieces = []
    for item in ng.discover(root, skipped=skipped):
        info = item.rhythgen
        if info is None:
            continue
        if not ng._is_utf8(item.rel):
            # no report or data set can hold its name (review of session 45: the build
            # stopped on a UnicodeEncodeError); listed, as `data notagen` lists it
            if skipped is not None:
                skipped.append((item.rel.encode("utf-8", "backslashreplace").decode("utf-8"),
                                "its file name is not valid UTF-8"))
            continue
        text = item.path.read_text(encoding="utf-8", errors="replace")
        labels = ng.find_labels(item.path, text, root=root).labels
        pieces.append(Piece(item.rel, item.path, info.family, info.config,
                            info.work_id(item.path.name), item.generator,
                            labels.instrumentation, labels.period, labels.composer))
    return pieces


def select(pieces: Sequence[Piece], splits: dict[str, str], *,
           per_config: int | None) -> list[Piece]:
    """The pieces a build uses: up to ``per_config`` per training configuration, spread
    evenly over its sorted files (None: all); of a held-out configuration, likewise but only
    among its pieces whose work is in a test split (none of its other pieces)."""
    by_config: dict[str, list[Piece]] = {}
    for p in sorted(pieces, key=lambda p: p.rel):
        by_config.setdefault(p.config, []).append(p)
    if per_config is not None and per_config <= 0:
        return []
    out = []
    for config, group in sorted(by_config.items()):
        if config in HELD_OUT_CONFIGS:
            group = [p for p in group if splits.get(p.work_id) in TEST_SPLITS]
        if per_config is None or per_config >= len(group):
            out += group
        else:
            out += [group[(i * len(group)) // per_config] for i in range(per_config)]
    return out


def parse_all(pieces: Sequence[Piece], cache: Path, *, jobs: int | None = None,
              timeout_s: float = PARSE_TIMEOUT_S,
              progress: Progress = NULL_PROGRESS) -> tuple[dict[str, object], list[tuple[str, str]]]:
    """``({rel: PrettyMIDI}, [(rel, reason)])``: each piece parsed (bounded, ``jobs`` at
    once, default the CPU count) or read back from ``cache`` (the parse's own numbers, so a
    resumed build renders exactly what an uninterrupted one did; MIDI files that builds
    before this cache left there are not read). The cache is keyed by the piece's path, its
    content and its instrumentation, as the human scores' is: keyed by the path alone, a
    piece rewritten in place (a generator run again into the same folder) was rendered from
    its old notes on a resumed build (review)."""
    from musicbrain_cli.data.render import parse_all_bounded
    from musicbrain_cli.files import sha256_file

    cache.mkdir(parents=True, exist_ok=True)

    def cache_of(p: Piece) -> Path:     # called in the worker, which may hash the file
        instrumentation = "".join(ch for ch in (p.instrumentation or "") if ch.isalpha())
        return cache / f"{p.piece_id}-{sha256_file(p.path)[:20]}-{instrumentation}.npz"

    parsed, failed = parse_all_bounded(
        list(pieces), path_of=lambda p: p.path, cache_of=cache_of,
        instrumentation_of=lambda p: p.instrumentation or None, jobs=jobs,
        timeout_s=timeout_s, progress=progress, task="parsing RhythGen pieces")
    return ({p.rel: midi for p, midi in parsed},
            [(p.rel, f"bad ABC: {why}") for p, why in failed])


def midi_window(midi, start_s: float, length_s: float):
    """A new PrettyMIDI holding the notes of ``midi`` that start in ``[start_s, start_s +
    length_s)``, shifted to start at 0 and cut so that none rings past ``length_s``
    (instruments and programs kept), as the human scores' windows are
    (:func:`~musicbrain_cli.data.reference.tokens.window`). A build takes exactly a clip's
    length: a longer window with notes left ringing made every RhythGen clip play to its last
    sample after the humanising stretch, while a human score's clip ends up to 0.5 s early
    half the time (a silence at the end that told the classes apart; review)."""
    import pretty_midi

    out = pretty_midi.PrettyMIDI(initial_tempo=120.0)
    end = start_s + length_s
    for inst in midi.instruments:
        notes = [pretty_midi.Note(n.velocity, n.pitch, n.start - start_s,
                                  min(n.end, end) - start_s)
                 for n in inst.notes if start_s <= n.start < end]
        if notes:
            new = pretty_midi.Instrument(inst.program, is_drum=inst.is_drum, name=inst.name)
            new.notes = notes
            out.instruments.append(new)
    return out


def window_starts(midi, *, clip_s: float, windows: int) -> list[float]:
    """Up to ``windows`` non-overlapping window starts (s), the first at the first note, each
    on a note onset, spread over the piece; none for a piece shorter than one clip (a short
    piece is skipped, not padded, as on the human side)."""
    onsets = sorted({n.start for inst in midi.instruments for n in inst.notes})
    if not onsets:
        return []
    first, last = onsets[0], max(n.end for inst in midi.instruments for n in inst.notes)
    span = last - first
    if span < clip_s:
        return []
    k = max(1, min(windows, int(span // clip_s)))
    targets = [first] if k == 1 else [first + j * (span - clip_s) / (k - 1) for j in range(k)]
    starts: list[float] = []
    for t in targets:
        s = min(onsets, key=lambda o: abs(o - t))
        if not starts or s >= starts[-1] + clip_s:
            starts.append(s)
    return starts
