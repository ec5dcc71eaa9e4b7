"""Note events <-> token sequences for the symbolic generators, and events -> MIDI.

The token language is a small REMI-style event vocabulary (Huang & Yang 2020, "Pop Music
Transformer", sec. 3) without bars or dynamics, preceded by NotaGen-style conditioning
tokens (Wang et al. 2025, sec. 3.3: period, composer, instrumentation prefix the piece)::

    <bos> period=Baroque composer=Bach, Johann Sebastian instrumentation=Choral
    shift=12 part=0 pitch=67 dur=12 part=1 pitch=62 dur=12 ... shift=12 ...

``shift=n`` advances time by n ticks (longer gaps are several shifts); each note is the
triple ``part, pitch, dur``. Durations are snapped to :data:`DURATIONS`. Human scores and
generated ones are both written to MIDI by :func:`events_to_midi` from this one event
format, so both classes share the quantisation grid, the (absent) dynamics and the
instrument assignment: the only thing that differs between them is the music.
"""

from __future__ import annotations

import bisect
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from musicbrain_cli.errors import ConfigError, RenderError
from musicbrain_cli.data.reference.scores import (MAX_PARTS, PITCH_MAX, PITCH_MIN,
                                                      TICKS_PER_QUARTER)

PAD, BOS, EOS = "<pad>", "<bos>", "<eos>"
#: Largest single time shift, in ticks (one whole note at 12 ticks per quarter).
MAX_SHIFT = 4 * TICKS_PER_QUARTER
#: Durations a note may take, in ticks: the usual note values, dotted values and triplets.
DURATIONS = (1, 2, 3, 4, 6, 8, 9, 12, 16, 18, 24, 30, 36, 42, 48, 60, 72, 96)
CONDITION_GROUPS = ("period", "composer", "instrumentation")
#: The velocity every note gets: the token language has no dynamics (see module doc).
VELOCITY = 80

Event = tuple[int, int, int, int]  # (onset_tick, part, pitch, duration_ticks)


def snap_duration(ticks: int) -> int:
    """The nearest value in :data:`DURATIONS` (ties go to the shorter one)."""
    i = bisect.bisect_left(DURATIONS, ticks)
    if i == 0:
        return DURATIONS[0]
    if i == len(DURATIONS):
        return DURATIONS[-1]
    lo, hi = DURATIONS[i - 1], DURATIONS[i]
    return lo if ticks - lo <= hi - ticks else hi


@dataclass(frozen=True)
class Vocabulary:
    """Token strings <-> ids. The conditioning labels are part of the vocabulary."""

    tokens: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(set(self.tokens)) != len(self.tokens):
            raise ConfigError("vocabulary repeats a token")
        object.__setattr__(self, "_index", {t: i for i, t in enumerate(self.tokens)})

    @classmethod
    def build(cls, conditions: Mapping[str, Sequence[str]]) -> "Vocabulary":
        """The vocabulary for the given conditioning labels per group.

        Every group also gets ``<group>=-`` (known: none) and ``<group>=?`` (unknown).
        """
        toks = [PAD, BOS, EOS]
        for group in CONDITION_GROUPS:
            values = list(conditions.get(group, ()))
            toks += [f"{group}={v}" for v in values + ["-", "?"]]
        toks += [f"shift={n}" for n in range(1, MAX_SHIFT + 1)]
        toks += [f"part={p}" for p in range(MAX_PARTS)]
        toks += [f"pitch={p}" for p in range(PITCH_MIN, PITCH_MAX + 1)]
        toks += [f"dur={d}" for d in DURATIONS]
        return cls(tuple(toks))

    def __len__(self) -> int:
        return len(self.tokens)

    def id(self, token: str) -> int:
        try:
            return self._index[token]  # type: ignore[attr-defined]
        except KeyError as exc:
            raise ConfigError(f"token {token!r} is not in the vocabulary") from exc

    def __contains__(self, token: str) -> bool:
        return token in self._index  # type: ignore[attr-defined]

    def conditions(self, group: str) -> list[str]:
        """The conditioning values of ``group`` (without the ``-``/``?`` markers)."""
        prefix = f"{group}="
        return [t[len(prefix):] for t in self.tokens
                if t.startswith(prefix) and t[len(prefix):] not in ("-", "?")]

    def to_json(self) -> str:
        return json.dumps({"tokens": list(self.tokens)}, ensure_ascii=False, indent=0)

    @classmethod
    def from_json(cls, text: str) -> "Vocabulary":
        try:
            return cls(tuple(json.loads(text)["tokens"]))
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ConfigError(f"malformed vocabulary: {exc}") from exc

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json() + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> "Vocabulary":
        try:
            return cls.from_json(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read vocabulary {str(path)!r}: {exc}") from exc


def condition_tokens(vocab: Vocabulary, *, period: str, composer: str,
                     instrumentation: str) -> list[int]:
    """``<bos>`` and the three conditioning tokens; an unknown label maps to ``=?``."""
    ids = [vocab.id(BOS)]
    for group, value in zip(CONDITION_GROUPS, (period, composer, instrumentation)):
        value = value if value else "?"
        token = f"{group}={value}"
        ids.append(vocab.id(token if token in vocab else f"{group}=?"))
    return ids


#: Length of the conditioning prefix: <bos> + one token per group.
PREFIX_LEN = 1 + len(CONDITION_GROUPS)


def encode_events(events: Iterable[Event], vocab: Vocabulary) -> list[int]:
    """Event body tokens (no prefix). Events must be sorted by onset."""
    out: list[int] = []
    now = 0
    shift_ids = [vocab.id(f"shift={n}") for n in range(1, MAX_SHIFT + 1)]
    for onset, part, pitch, dur in events:
        if onset < now:
            raise RenderError(f"events are not sorted by onset (tick {onset} after {now})")
        gap = onset - now
        while gap > 0:
            step = min(gap, MAX_SHIFT)
            out.append(shift_ids[step - 1])
            gap -= step
        now = onset
        out += [vocab.id(f"part={min(part, MAX_PARTS - 1)}"), vocab.id(f"pitch={pitch}"),
                vocab.id(f"dur={snap_duration(dur)}")]
    return out


def decode_events(ids: Iterable[int], vocab: Vocabulary) -> list[Event]:
    """Body tokens -> events, tolerant of malformed order (what a sampler may emit).

    A ``pitch`` without a preceding ``part`` uses the last part seen; a note whose
    ``dur`` never comes is dropped; prefix, padding and unexpected tokens are ignored;
    decoding stops at ``<eos>``.
    """
    events: list[Event] = []
    now, part, pitch = 0, 0, None
    for i in ids:
        tok = vocab.tokens[int(i)]
        if tok == EOS:
            break
        kind, _, value = tok.partition("=")
        if kind == "shift":
            now += int(value)
            pitch = None
        elif kind == "part":
            part = int(value)
            pitch = None
        elif kind == "pitch":
            pitch = int(value)
        elif kind == "dur" and pitch is not None:
            events.append((now, part, pitch, int(value)))
            pitch = None
    return sorted(set(events))


def window(events: Sequence[Event], start: int, length: int) -> list[Event]:
    """Events with onsets in ``[start, start + length)`` ticks, shifted to start at 0 and
    cut so no note rings past the window."""
    out = []
    end = start + length
    for onset, part, pitch, dur in events:
        if start <= onset < end:
            out.append((onset - start, part, pitch, min(dur, end - onset)))
    return out


def events_to_midi(events: Sequence[Event], *, qpm: float, instrumentation: str,
                   rotate: int = 0):
    """Note events -> ``pretty_midi.PrettyMIDI``, one instrument per part.

    Programs come from the renderer's table for the instrumentation
    (:data:`musicbrain_cli.data.render.INSTRUMENTATION_PROGRAMS`), extended here for the
    ``Melody`` label (a lone tune: violin, flute, voice or oboe by part index, so folk
    tunes are heard on the instruments that play them). ``rotate`` shifts where in the
    program list part 0 starts, so a build can vary the timbre of a label's pieces.
    """
    import pretty_midi

    from musicbrain_cli.data.render import INSTRUMENTATION_PROGRAMS

    if qpm <= 0:
        raise RenderError(f"tempo must be positive, got qpm={qpm!r}")
    programs = INSTRUMENTATION_PROGRAMS.get(instrumentation) or MELODY_PROGRAMS.get(
        instrumentation)
    if programs is None:
        raise RenderError(f"no General MIDI programs for instrumentation {instrumentation!r}")
    if rotate:
        k = rotate % len(programs)
        programs = list(programs[k:]) + list(programs[:k])
    seconds_per_tick = 60.0 / qpm / TICKS_PER_QUARTER
    midi = pretty_midi.PrettyMIDI(initial_tempo=float(qpm))
    parts: dict[int, pretty_midi.Instrument] = {}
    for onset, part, pitch, dur in events:
        if part not in parts:
            parts[part] = pretty_midi.Instrument(
                program=programs[min(part, len(programs) - 1)], name=f"part {part}")
        parts[part].notes.append(pretty_midi.Note(
            velocity=VELOCITY, pitch=int(pitch), start=onset * seconds_per_tick,
            end=(onset + dur) * seconds_per_tick))
    midi.instruments = [parts[k] for k in sorted(parts)]
    return midi


#: Programs for instrumentation labels the shared renderer does not know.
MELODY_PROGRAMS: dict[str, list[int]] = {"Melody": [40, 73, 53, 68]}
