"""Symbolic music (MIDI, MusicXML, ABC, music21 streams) -> audio, by SoundFont synthesis.

Every source of training data (MusicNet note labels, NotaGen ABC, the reference corpus)
goes through these same two functions, so that the detector can only learn what differs
in the *music*, never what differs in the *rendering*:

    midi = score_to_midi(path, instrumentation="Chamber")     # -> pretty_midi.PrettyMIDI
    y = render_midi(midi, soundfont, sample_rate=22050, humanize=Humanize(...), seed=7)

Synthesis runs the Debian ``fluidsynth`` command line in fast-render mode (``-F``: no audio
driver, renders as fast as the CPU allows) in a subprocess with a timeout. A subprocess,
rather than pyfluidsynth, keeps a crash or a pathological file from taking the build down,
gives a hard timeout, and needs no extra Python dependency. FluidSynth's output is
deterministic for a given MIDI file, SoundFont and settings; all randomness (humanisation)
is drawn here from a seeded generator, so the same seed gives the same bytes.
"""

from __future__ import annotations

import copy
import math
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from musicbrain_cli.errors import MusicBrainError, RenderError
# ABC text handling lives in .abc; the names stay importable from here for callers
from musicbrain_cli.data.abc import (_INLINE_VOICE, _NAME_ATTR, deinterleave_abc,  # noqa: F401
                                         quoted_without_commas, split_abc_voices,
                                         visible_rests)

# --- SoundFonts -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SoundFont:
    """A General MIDI SoundFont on disk (``.sf2`` or ``.sf3``)."""

    name: str
    path: Path


#: Candidate files per SoundFont name, first existing wins. The Debian packages are
#: fluid-soundfont-gm, timgm6mb-soundfont and musescore-general-soundfont-lite; pretty_midi
#: ships a copy of TimGM6mb.sf2, used when the Debian one is absent.
def _soundfont_candidates() -> dict[str, list[Path]]:
    import pretty_midi

    return {
        "fluidr3_gm": [Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")],
        "timgm6mb": [Path("/usr/share/sounds/sf2/TimGM6mb.sf2"),
                     Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"],
        "musescore_general_lite": [Path("/usr/share/sounds/sf3/MuseScore_General_Lite.sf3")],
    }


def available_soundfonts() -> list[SoundFont]:
    """The SoundFonts found on this machine, in a fixed order.

    Raises :class:`RenderError` when none is installed.
    """
    found = []
    for name, candidates in _soundfont_candidates().items():
        for path in candidates:
            if path.is_file():
                found.append(SoundFont(name, path))
                break
    if not found:
        searched = [str(p) for ps in _soundfont_candidates().values() for p in ps]
        raise RenderError(
            "no SoundFont found (install fluid-soundfont-gm, timgm6mb-soundfont or "
            f"musescore-general-soundfont-lite); searched {searched}"
        )
    return found


def get_soundfont(name_or_path: str) -> SoundFont:
    """A SoundFont by name (``fluidr3_gm``, ...) or by path to an ``.sf2``/``.sf3`` file."""
    path = Path(name_or_path)
    if path.suffix.lower() in (".sf2", ".sf3"):
        if not path.is_file():
            raise RenderError(f"SoundFont file {str(path)!r} does not exist")
        return SoundFont(path.stem.lower(), path)
    fonts = available_soundfonts()
    for font in fonts:
        if font.name == name_or_path:
            return font
    raise RenderError(
        f"unknown SoundFont {name_or_path!r} (available: {[f.name for f in fonts]})"
    )


# --- instrumentation ------------------------------------------------------------------------

#: NotaGen's instrumentation labels -> General MIDI programs (0-based) per voice, used for
#: voices whose own part name names no instrument. Voices beyond the list reuse its last
#: program. Choices follow the usual forces of each category (NotaGen, Wang et al. 2025,
#: sec. 4.1 lists the six instrumentation labels):
#: - Art Song: solo voice (53 Voice Oohs) over piano (0).
#: - Keyboard: piano for every staff.
#: - Chamber: string quartet, violin (40), violin, viola (41), cello (42), then piano.
#: - Orchestral: woodwinds, horn, strings, from the top of the score down.
#: - Choral: SATB choir (52 Choir Aahs) for every voice.
#: - Vocal-Orchestral: choir and solo voice over strings.
INSTRUMENTATION_PROGRAMS: dict[str, list[int]] = {
    "Art Song": [53, 0, 0],
    "Keyboard": [0],
    "Chamber": [40, 40, 41, 42, 0],
    "Orchestral": [73, 68, 71, 70, 60, 48, 48, 41, 42, 43],
    "Choral": [52],
    "Vocal-Orchestral": [52, 52, 52, 52, 48, 48, 41, 42, 43],
}

DEFAULT_PROGRAM = 0  # Acoustic Grand Piano, when neither the part nor the label says more
DEFAULT_VELOCITY = 80  # mezzo-forte, every note of a score (score_to_midi drops dynamics)


def program_for_voice(index: int, instrumentation: str | None) -> int:
    """The GM program for the ``index``-th voice (0-based) under an instrumentation label."""
    if instrumentation is None or instrumentation in ("", "-"):
        return DEFAULT_PROGRAM
    try:
        programs = INSTRUMENTATION_PROGRAMS[instrumentation]
    except KeyError as exc:
        raise RenderError(
            f"unknown instrumentation {instrumentation!r} "
            f"(known: {sorted(INSTRUMENTATION_PROGRAMS)})"
        ) from exc
    return programs[min(index, len(programs) - 1)]


def _program_from_name(name: str | None) -> int | None:
    """GM program named by a part name ("Violin", "Vc.", "Soprano"), or None if unknown."""
    if not name or not name.strip():
        return None
    from music21 import instrument

    try:
        inst = instrument.fromString(name.strip())
    except Exception:  # music21 raises InstrumentException or plain errors on odd names
        return None
    program = getattr(inst, "midiProgram", None)
    return int(program) if program is not None else None


def _abc_to_score(text: str):
    """Parse ABC voice by voice into a music21 Score (one part per voice)."""
    from music21 import converter, stream

    if _INLINE_VOICE.search(text):
        text = deinterleave_abc(text)
    header, voices = split_abc_voices(text)
    score = stream.Score()
    for vid, attrs, body in voices:
        if not any(ln.strip() and not ln.startswith("%") for ln in body):
            continue
        # the K: line comes last in an ABC header; clef attributes of the voice follow it
        tune = "\n".join(header + [quoted_without_commas(visible_rests(ln))
                                   for ln in body]) + "\n"
        try:
            parsed = converter.parse(tune, format="abc")
        except Exception as exc:  # music21's ABC parser raises many unrelated types
            raise RenderError(f"music21 cannot parse ABC voice {vid!r}: {exc}") from exc
        parts = list(parsed.parts) if hasattr(parsed, "parts") and parsed.parts else [parsed]
        for part in parts:
            name = _NAME_ATTR.search(attrs)
            part.partName = name.group(1) if name else None
            part.id = f"V{vid}"
            score.insert(0, part)
    if not score.parts:
        raise RenderError("ABC text holds no voice with notes")
    return score


# --- score -> MIDI --------------------------------------------------------------------------


#: Most seconds music21 may take to parse one score in :func:`score_to_midi_bounded`. Its ABC
#: parser runs for many minutes on some generated text (RhythGen's Lieder-LB/0043 was still
#: parsing after 5 min), where a typical 30 s piece takes about a second.
PARSE_TIMEOUT_S = 120.0
#: Largest score file :func:`score_to_midi_bounded` parses, and for a compressed MusicXML
#: (``.mxl``, a zip) the largest total its members may unpack to. A song of OpenScore Lieder
#: is 20-200 kB as ``.mxl`` and under 2 MB unpacked; a long orchestral MusicXML is tens of MB.
#: The deadline bounds time, not memory: a zip bomb would fill the machine's memory first.
MAX_SCORE_BYTES = 64 * 2**20
MAX_UNPACKED_BYTES = 256 * 2**20


def check_score_size(path: str | Path) -> None:
    """Refuse a score file too large to parse safely (:data:`MAX_SCORE_BYTES`), or a
    compressed MusicXML whose members would unpack past :data:`MAX_UNPACKED_BYTES` (read from
    the zip's directory, nothing is unpacked). Raises :class:`RenderError` naming the file."""
    import zipfile

    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise RenderError(f"cannot read score {str(path)!r}: {exc}") from exc
    if size > MAX_SCORE_BYTES:
        raise RenderError(f"score {str(path)!r} is {size / 2**20:.0f} MB, more than the "
                          f"{MAX_SCORE_BYTES // 2**20} MB a score may be")
    if path.suffix.lower() == ".mxl":
        try:
            with zipfile.ZipFile(path) as zf:
                unpacked = sum(max(0, i.file_size) for i in zf.infolist())
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            raise RenderError(f"{str(path)!r} is not a readable .mxl (zip) file: {exc}") from exc
        if unpacked > MAX_UNPACKED_BYTES:
            raise RenderError(f"{str(path)!r} would unpack to {unpacked / 2**20:.0f} MB, more "
                              f"than the {MAX_UNPACKED_BYTES // 2**20} MB a score may be")


def score_to_midi_bounded(path: str | Path, *, instrumentation: str | None = None,
                          timeout_s: float = PARSE_TIMEOUT_S, cache: str | Path | None = None):
    """:func:`score_to_midi` of a score file, parsed in a child process with a deadline.

    Generated scores are untrusted input: a parse that outlives ``timeout_s`` is stopped and
    raises :class:`RenderError` naming the file, so one bad piece cannot stall a build. The
    child sends back plain numbers (tempo, and per voice its program, name and a
    ``[n, 4]`` float array of start s, end s, pitch, velocity), so the result is exactly
    what the in-process call returns. A file too large to parse safely is refused before
    any parsing (:func:`check_score_size`).

    ``cache``: a ``.npz`` file holding those numbers (float64, no pickle). When it holds
    them, the score is not parsed again; else they are written there after the parse. Both
    ways the MIDI is built from the same numbers, so a build that resumes from the cache
    renders exactly what an uninterrupted one did (a cached *MIDI file* would not: it
    rounds note times and tempo to its ticks). An unreadable cache file is parsed anew.
    """
    if cache is not None:
        payload = _read_notes(Path(cache))
        if payload is None:
            payload = _parse_bounded(path, instrumentation, timeout_s)
            _write_notes(Path(cache), payload)
        return notes_to_midi(*payload)
    return notes_to_midi(*_parse_bounded(path, instrumentation, timeout_s))


def parse_all_bounded(items: Sequence, *, path_of: Callable, cache_of: Callable,
                      instrumentation_of: Callable, jobs: int | None = None,
                      timeout_s: float = PARSE_TIMEOUT_S, progress=None,
                      task: str = "parsing scores") -> tuple[list, list]:
    """``([(item, PrettyMIDI)], [(item, reason)])``: each item's score
    (``path_of(item)``) parsed by :func:`score_to_midi_bounded` with its cache file
    ``cache_of(item)`` (called in the worker: it may hash the file) and instrumentation,
    ``jobs`` at once (default: the CPU count), in ``items``' order. A file too large to
    parse is refused from its size before ``cache_of`` runs."""
    from concurrent.futures import ThreadPoolExecutor

    from musicbrain_cli.progress import NULL_PROGRESS

    def one(item):
        try:
            path = path_of(item)
            check_score_size(path)
            return item, score_to_midi_bounded(path, instrumentation=instrumentation_of(item),
                                               timeout_s=timeout_s, cache=cache_of(item)), None
        except (MusicBrainError, OSError) as exc:
            return item, None, str(exc)

    parsed, failed = [], []
    with (progress or NULL_PROGRESS).task(task, total=len(items)) as bar, \
            ThreadPoolExecutor(max_workers=jobs or os.cpu_count() or 1) as pool:
        for item, midi, why in pool.map(one, items):
            if midi is None:
                failed.append((item, why))
            else:
                parsed.append((item, midi))
            bar.advance()
    return parsed, failed


def notes_to_midi(tempo: float, voices):
    """A PrettyMIDI from the plain numbers of a parse: the tempo, and per voice its
    program, drum flag, name and ``[n, 4]`` start s, end s, pitch, velocity."""
    import pretty_midi

    midi = pretty_midi.PrettyMIDI(initial_tempo=tempo)
    for program, is_drum, name, notes in voices:
        inst = pretty_midi.Instrument(program=int(program), is_drum=bool(is_drum), name=str(name))
        inst.notes = [pretty_midi.Note(int(v), int(p), float(a), float(b))
                      for a, b, p, v in np.asarray(notes, dtype=np.float64).reshape(-1, 4)]
        midi.instruments.append(inst)
    return midi


def _write_notes(path: Path, payload) -> None:
    from musicbrain_cli.files import atomic_write

    tempo, voices = payload
    counts = [len(np.asarray(v[3]).reshape(-1, 4)) for v in voices]
    notes = (np.concatenate([np.asarray(v[3], dtype=np.float64).reshape(-1, 4) for v in voices])
             if voices else np.zeros((0, 4)))
    arrays = {"tempo": np.float64(tempo), "programs": np.array([v[0] for v in voices], np.int64),
              "drums": np.array([v[1] for v in voices], bool),
              "names": np.array([str(v[2]) for v in voices], dtype=str),
              "counts": np.array(counts, np.int64), "notes": notes}
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)

    atomic_write(path, write)


def _read_notes(path: Path):
    """The ``(tempo, voices)`` a cache file holds, or None when there is none readable."""
    import zipfile

    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            tempo = float(z["tempo"])
            notes, counts = z["notes"], z["counts"]
            bounds = np.concatenate([[0], np.cumsum(counts)]).astype(int)
            if bounds[-1] != len(notes):
                return None
            voices = [(int(p), bool(d), str(n), notes[a:b])
                      for p, d, n, a, b in zip(z["programs"], z["drums"], z["names"],
                                               bounds[:-1], bounds[1:])]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError):
        return None
    return tempo, voices


def _parser_context():
    """The multiprocessing context score parses run in: a fork server.

    Parses are started from worker threads (:func:`parse_all_bounded`), and a child forked
    from a process with threads inherits every lock some other thread held at that moment
    (the import lock, malloc's, a logging handler's): it then sleeps on that lock until its
    deadline, and every parse of a build fails as "took longer". A fork server is a
    single-threaded process started once; children fork from it, so no lock is held when
    they start. music21 and this module are loaded in the server, so a child starts parsing
    at once instead of importing them again."""
    import multiprocessing as mp

    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["musicbrain_cli.data.render", "music21.converter",
                                "pretty_midi"])
    return ctx


def _parse_bounded(path: str | Path, instrumentation: str | None, timeout_s: float):
    """``(tempo, voices)`` of a score, parsed in a child of the fork server
    (:func:`_parser_context`) with a deadline."""
    check_score_size(path)
    ctx = _parser_context()
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_parse_child, daemon=True, args=(send, str(path), instrumentation))
    proc.start()
    send.close()
    try:
        if not recv.poll(timeout_s):
            raise RenderError(f"parsing {str(path)!r} took longer than {timeout_s:g} s (stopped)")
        try:
            kind, payload = recv.recv()
        except EOFError:
            proc.join()
            raise RenderError(f"the parser of {str(path)!r} died without a result "
                              f"(exit code {proc.exitcode})") from None
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join()
        recv.close()
    if kind == "error":
        raise RenderError(payload)
    return payload


def _parse_child(conn, path: str, instrumentation: str | None) -> None:
    try:
        midi = score_to_midi(path, instrumentation=instrumentation)
        tempo = float(midi.get_tempo_changes()[1][0]) if len(midi.get_tempo_changes()[1]) else 120.0
        voices = [(int(i.program), bool(i.is_drum), str(i.name),
                   np.array([(n.start, n.end, n.pitch, n.velocity) for n in i.notes],
                            dtype=np.float64)) for i in midi.instruments]
        conn.send(("ok", (tempo, voices)))
    except MusicBrainError as exc:
        conn.send(("error", str(exc)))
    except Exception as exc:  # noqa: BLE001 - the parent raises it as a RenderError
        conn.send(("error", f"cannot parse {path!r}: {type(exc).__name__}: {exc}"))
    finally:
        conn.close()


def score_to_midi(path_or_stream: Any, *, instrumentation: str | None = None):
    """MusicXML / ABC / MIDI file, ABC text or music21 Stream -> ``pretty_midi.PrettyMIDI``.

    Programs: a part whose name names an instrument ("Violin", "Violoncello") keeps it;
    other parts take :data:`INSTRUMENTATION_PROGRAMS` for the ``instrumentation`` label, by
    voice order. A MIDI file keeps its own programs unless ``instrumentation`` is given.
    Drum tracks are dropped: NotaGen and MusicNet have none, and GM percussion would be a
    rendering artefact the detector could latch onto. Every note of a file or stream gets
    :data:`DEFAULT_VELOCITY`: music21's ABC reader drops dynamics marks (``!p!``, ``!ff!``),
    so generated ABC always plays at that velocity, while a score MIDI (MusicNet's) carries
    velocities from 1 to 127; kept, they would tell the classes apart by dynamics and by the
    SoundFont's velocity layers (the reference corpus drops dynamics for the same reason).
    """
    import pretty_midi

    if isinstance(path_or_stream, pretty_midi.PrettyMIDI):
        midi = copy.deepcopy(path_or_stream)
        return _reprogram(midi, instrumentation) if instrumentation else midi
    if isinstance(path_or_stream, (str, Path)):
        text_abc = isinstance(path_or_stream, str) and "\n" in path_or_stream
        path = None if text_abc else Path(path_or_stream)
        if path is not None and path.suffix.lower() in (".mid", ".midi"):
            try:
                midi = pretty_midi.PrettyMIDI(str(path))
            except Exception as exc:  # mido raises OSError, EOFError, KeyError, ValueError...
                raise RenderError(f"cannot read MIDI file {str(path)!r}: {exc}") from exc
            midi.instruments = [i for i in midi.instruments if not i.is_drum]
            for inst in midi.instruments:
                for note in inst.notes:
                    note.velocity = DEFAULT_VELOCITY
            return _reprogram(midi, instrumentation) if instrumentation else midi
        if text_abc:
            score = _abc_to_score(path_or_stream)
        elif path.suffix.lower() == ".abc":
            try:
                text = path.read_text(encoding="utf-8-sig", errors="replace")
            except OSError as exc:
                raise RenderError(f"cannot read ABC file {str(path)!r}: {exc}") from exc
            score = _abc_to_score(text)
        else:
            from music21 import converter

            try:
                score = converter.parse(str(path))
            except Exception as exc:  # music21 raises many unrelated types
                raise RenderError(f"music21 cannot parse {str(path)!r}: {exc}") from exc
    else:
        score = path_or_stream
    return _stream_to_midi(score, instrumentation)


def _reprogram(midi, instrumentation: str):
    for i, inst in enumerate(midi.instruments):
        inst.program = program_for_voice(i, instrumentation)
    return midi


class _TempoMap:
    """Quarter-length offsets -> seconds under a score's metronome marks."""

    def __init__(self, score):
        self.segments: list[tuple[float, float, float]] = []  # (start_ql, start_s, s_per_ql)
        seconds = 0.0
        try:
            bounds = score.metronomeMarkBoundaries()
        except Exception:  # a score without any tempo: music21's default of 120 bpm
            bounds = []
        for start, end, mark in bounds:
            if end <= start and self.segments:
                continue
            spq = mark.secondsPerQuarter()
            self.segments.append((float(start), seconds, spq))
            seconds += (float(end) - float(start)) * spq
        if not self.segments:
            self.segments.append((0.0, 0.0, 0.5))

    def __call__(self, ql: float) -> float:
        seg = self.segments[0]
        for s in self.segments:
            if s[0] <= ql:
                seg = s
            else:
                break
        return seg[1] + (ql - seg[0]) * seg[2]


def _stream_to_midi(score, instrumentation: str | None):
    import pretty_midi
    from music21 import stream

    if not isinstance(score, stream.Score):
        wrapper = stream.Score()
        wrapper.insert(0, score)
        score = wrapper
    try:
        score = score.expandRepeats()
    except Exception:  # malformed or absent repeats: play as written
        pass
    tempo = _TempoMap(score)
    midi = pretty_midi.PrettyMIDI(initial_tempo=60.0 / tempo.segments[0][2])
    voice = 0
    for part in score.parts:
        flat = part.stripTies().flatten()
        notes = list(flat.notes)
        if not notes:
            continue
        name = part.partName
        if name is None:
            inst = part.getInstrument(returnDefault=False)
            name = inst.instrumentName if inst is not None else None
        program = _program_from_name(name)
        if program is None:
            program = program_for_voice(voice, instrumentation)
        inst_out = pretty_midi.Instrument(program=program, name=name or f"voice {voice + 1}")
        for el in notes:
            start_ql = float(flat.elementOffset(el))
            end_ql = start_ql + float(el.quarterLength)
            t0, t1 = tempo(start_ql), tempo(end_ql)
            if t1 - t0 <= 0:
                continue  # grace notes have zero length in music21
            for p in el.pitches:
                if 0 <= p.midi <= 127:
                    inst_out.notes.append(pretty_midi.Note(DEFAULT_VELOCITY, int(p.midi), t0, t1))
        midi.instruments.append(inst_out)
        voice += 1
    if not any(i.notes for i in midi.instruments):
        raise RenderError("the score holds no playable notes")
    return midi


# --- humanisation and rendering -------------------------------------------------------------


@dataclass(frozen=True)
class Humanize:
    """Seeded performance noise, applied identically to every source (all 0 = off).

    tempo_jitter: the whole piece is stretched by a factor drawn from U(1-j, 1+j).
    timing_jitter_s: each note is shifted by N(0, s) seconds (duration kept).
    velocity_jitter: each velocity moves by N(0, v) MIDI steps, clipped to 1..127.
    reverb: FluidSynth reverb level 0..1 (0 turns the reverb unit off).
    """

    tempo_jitter: float = 0.0
    timing_jitter_s: float = 0.0
    velocity_jitter: float = 0.0
    reverb: float = 0.0

    def __post_init__(self) -> None:
        for field in ("tempo_jitter", "timing_jitter_s", "velocity_jitter", "reverb"):
            value = getattr(self, field)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise RenderError(f"Humanize.{field} must be a finite number >= 0, not {value!r}")
        if self.tempo_jitter >= 1:
            raise RenderError(f"Humanize.tempo_jitter must be < 1, not {self.tempo_jitter!r}")
        if self.reverb > 1:
            raise RenderError(f"Humanize.reverb must be <= 1, not {self.reverb!r}")

    @property
    def active(self) -> bool:
        return any((self.tempo_jitter, self.timing_jitter_s, self.velocity_jitter, self.reverb))


def humanize_midi(midi, humanize: Humanize, *, seed: int):
    """A humanised copy of ``midi`` (the caller's object is left untouched)."""
    out = copy.deepcopy(midi)
    rng = np.random.default_rng(seed)
    stretch = 1.0 + rng.uniform(-humanize.tempo_jitter, humanize.tempo_jitter) \
        if humanize.tempo_jitter else 1.0
    for inst in out.instruments:
        # sort so that the draws do not depend on the order notes were appended in
        inst.notes.sort(key=lambda n: (n.start, n.pitch, n.end, n.velocity))
        n = len(inst.notes)
        shifts = rng.normal(0.0, humanize.timing_jitter_s, n) if humanize.timing_jitter_s \
            else np.zeros(n)
        vel = rng.normal(0.0, humanize.velocity_jitter, n) if humanize.velocity_jitter \
            else np.zeros(n)
        for note, dt, dv in zip(inst.notes, shifts, vel):
            dur = (note.end - note.start) * stretch
            note.start = max(0.0, note.start * stretch + float(dt))
            note.end = note.start + dur
            note.velocity = int(np.clip(round(note.velocity + float(dv)), 1, 127))
        _end_before_repeat(inst.notes)
    return out


def _end_before_repeat(notes) -> None:
    """End each note no later than the next note of the same pitch starts (in place).

    Timing jitter moves a note and keeps its length, so a repeated note played legato (one
    ends where the next starts) overlaps its successor half the time. FluidSynth releases
    every sounding voice of a key at that key's note-off (``fluid_synth_noteoff``), so the
    earlier note's late note-off would silence the later note a few ms after it starts;
    ending the earlier note where the later one begins keeps both. Notes starting together
    (a unison) are left as they are.
    """
    by_pitch: dict[int, list] = {}
    for note in notes:
        by_pitch.setdefault(note.pitch, []).append(note)
    for same in by_pitch.values():
        same.sort(key=lambda n: (n.start, n.end))
        for a, b in zip(same, same[1:]):
            if a.start < b.start < a.end:
                a.end = b.start


RENDER_GAIN = 0.2          # FluidSynth's default master gain; float output never clips
RENDER_PEAK = 0.9          # rendered pieces are peak-normalised to this, so level is no cue
RELEASE_TAIL_S = 1.0       # audio kept after the last note-off (FluidSynth renders release)


def _without_zero_length_notes(midi):
    """``midi``, or a copy without the notes that start and end on the same MIDI tick.

    Such a note is written as its note-off followed by its note-on (pretty_midi orders a
    tick's events that way), so it would sound until the end of the piece, and on a
    sustaining program FluidSynth's fast render never ends (it renders until every voice is
    silent) and the piece runs into the timeout. ``_stream_to_midi`` drops such notes too.
    """
    def playable(note) -> bool:
        return midi.time_to_tick(note.end) > midi.time_to_tick(note.start)

    if all(playable(n) for inst in midi.instruments for n in inst.notes):
        return midi
    out = copy.deepcopy(midi)
    for inst in out.instruments:
        inst.notes = [n for n in inst.notes if playable(n)]
    return out


def fluidsynth_binary() -> str:
    exe = shutil.which("fluidsynth")
    if exe is None:
        raise RenderError("the 'fluidsynth' program is not installed (apt-get install fluidsynth)")
    return exe


def render_midi(midi, soundfont: SoundFont, *, sample_rate: int = 22050,
                humanize: Humanize | None = None, seed: int = 0, timeout_s: float = 120.0,
                peak: float | None = RENDER_PEAK):
    """Synthesise ``midi`` with FluidSynth. Returns mono float32 samples [shape=(n,)].

    The result lasts the MIDI's end time (after humanisation) plus the release tail of
    FluidSynth, at most :data:`RELEASE_TAIL_S`. With ``peak`` set, the piece is scaled so
    that its largest absolute sample is ``peak``. Same arguments and seed -> same samples.
    Raises :class:`RenderError` on a timeout, a FluidSynth failure or silent output.
    """
    if sample_rate < 8000 or sample_rate > 192000:
        raise RenderError(f"sample_rate {sample_rate!r} is outside 8000..192000 Hz")
    if humanize is not None and humanize.active:
        midi = humanize_midi(midi, humanize, seed=seed)
    midi = _without_zero_length_notes(midi)
    end_s = midi.get_end_time()
    if end_s <= 0:
        raise RenderError("the MIDI holds no notes to render")
    reverb = humanize.reverb if humanize is not None else 0.0
    exe = fluidsynth_binary()
    with tempfile.TemporaryDirectory(prefix="musicbrain-render-") as tmp:
        mid_path, wav_path = os.path.join(tmp, "in.mid"), os.path.join(tmp, "out.wav")
        midi.write(mid_path)
        cmd = [exe, "-n", "-i", "-q",
               "-r", str(int(sample_rate)), "-g", str(RENDER_GAIN),
               "-C", "0",                       # chorus off: a modulation cue, not music
               "-R", "1" if reverb > 0 else "0",
               "-o", f"synth.reverb.level={reverb:.4f}",
               "-o", "synth.reverb.room-size=0.5",
               # load only the samples the piece uses: the .sf3 font decodes Vorbis on load
               "-o", "synth.dynamic-sample-loading=1",
               "-o", "synth.cpu-cores=1",
               "-T", "wav", "-O", "float", "-F", wav_path,
               str(soundfont.path), mid_path]
        try:
            proc = subprocess.run(cmd, capture_output=True, timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired as exc:
            raise RenderError(
                f"fluidsynth took longer than {timeout_s} s rendering {end_s:.1f} s of music"
            ) from exc
        if proc.returncode != 0 or not os.path.exists(wav_path):
            err = proc.stderr.decode("utf-8", "replace").strip()[-500:]
            raise RenderError(f"fluidsynth failed (exit {proc.returncode}): {err}")
        import soundfile

        try:
            audio, sr = soundfile.read(wav_path, dtype="float32", always_2d=True)
        except RuntimeError as exc:
            raise RenderError(f"cannot read fluidsynth output: {exc}") from exc
    if sr != sample_rate:
        raise RenderError(f"fluidsynth wrote {sr} Hz instead of {sample_rate} Hz")
    y = audio.mean(axis=1, dtype=np.float32)
    y = y[: int(round((end_s + RELEASE_TAIL_S) * sample_rate))]
    top = float(np.max(np.abs(y))) if y.size else 0.0
    if not np.isfinite(top) or top < 1e-6:
        raise RenderError(
            f"fluidsynth rendered silence with {soundfont.name!r} "
            "(programs missing from the SoundFont?)"
        )
    if peak is not None:
        y = y * np.float32(peak / top)
    return np.ascontiguousarray(y, dtype=np.float32)
