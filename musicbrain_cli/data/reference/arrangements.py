"""Human-style arrangements in popular and dance idioms: the reference corpus's "other human
music" (outlier exposure).

Why: a detector that has seen human music of one kind only (classical scores) learns "unlike
the classical corpus" as its evidence of AI, and then accuses any human music outside that
corpus, the costliest error this tool can make. Outlier exposure (Hendrycks et al., "Deep
Anomaly Detection with Outlier Exposure", ICLR 2019) is the standard remedy: train on a
broad sample of in-class variation, so the decision rests on what the generators do, not
on what the training corpus lacks. Real deployments would use recorded human music of many
kinds; here, where none can be downloaded, pieces are arranged procedurally the way a
person would arrange them (a drum kit on MIDI channel 10, a bass that follows the chords,
idiomatic accompaniment patterns and melodies), with seeded timing and velocity variation,
and rendered by the same renderers as every other clip.

These clips are labelled ``source=human`` with unknown (masked) period, composer and
instrumentation: they teach the detector, not the style heads. A share of them is also
re-synthesised by the neural codec (``source=ai``), so codec artefacts are learned in these
idioms too and "popular style" never becomes evidence of "human" by itself.

The genres here are deliberately disjoint from those of ``benchmarks/ood.py`` (rock/pop,
electronic, film, chiptune, jazz, hip-hop, bossa nova, ambient, pop piano ballad), which
measure the false-accusation rate on music the detector was never trained on.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

#: General MIDI percussion keys (channel 10).
DRUMS = {"kick": 36, "side_stick": 37, "snare": 38, "clap": 39, "closed_hat": 42,
         "pedal_hat": 44, "open_hat": 46, "crash": 49, "ride": 51, "tom_low": 45,
         "tambourine": 54, "cowbell": 56, "bass_drum_2": 35, "cymbal_2": 57}
#: General MIDI programs (0-based).
PROGRAM = {"piano": 0, "honky_tonk": 3, "clavinet": 7, "music_box": 10, "organ": 16,
           "rock_organ": 18, "church_organ": 19, "accordion": 21, "harmonica": 22,
           "bandoneon": 23, "steel_guitar": 25, "clean_guitar": 27, "muted_guitar": 28,
           "acoustic_bass": 32, "finger_bass": 33, "slap_bass": 36, "violin": 40,
           "strings": 48, "choir": 52, "trumpet": 56, "trombone": 57, "tuba": 58,
           "brass": 61, "alto_sax": 65, "clarinet": 71, "piccolo": 72, "banjo": 105,
           "fiddle": 110}
#: Major scale steps, and chord progressions as scale degrees (0 = I).
MAJOR = (0, 2, 4, 5, 7, 9, 11)
PROGRESSIONS = ((0, 3, 4, 0), (0, 5, 3, 4), (0, 4, 5, 3), (0, 3, 0, 4), (5, 3, 0, 4))


def _pm():
    import pretty_midi

    return pretty_midi


class Piece:
    """A PrettyMIDI under construction on a beat grid, with a player's timing and touch."""

    def __init__(self, rng: np.random.Generator, tempo: float, *, swing: float = 0.0):
        self.rng = rng
        self.beat = 60.0 / tempo
        self.swing = swing            # share of a beat the off-beat eighth is delayed by
        self.midi = _pm().PrettyMIDI(initial_tempo=tempo)
        self.parts: dict[str, object] = {}

    def part(self, name: str, program: int = 0, *, drum: bool = False):
        if name not in self.parts:
            inst = _pm().Instrument(program=program, is_drum=drum, name=name)
            self.midi.instruments.append(inst)
            self.parts[name] = inst
        return self.parts[name]

    def t(self, beats: float) -> float:
        """Beats -> seconds, with swing on the off-beat eighths."""
        whole, frac = divmod(beats, 1.0)
        if self.swing and abs(frac - 0.5) < 1e-6:
            frac += self.swing
        return (whole + frac) * self.beat

    def note(self, part, pitch: int, start_beats: float, dur_beats: float, velocity: int,
             *, jitter_s: float = 0.008) -> None:
        """One note with Gaussian jitter in onset and velocity; pitches outside MIDI's range
        are dropped."""
        start = max(0.0, self.t(start_beats) + float(self.rng.normal(0.0, jitter_s)))
        end = start + max(0.03, dur_beats * self.beat * 0.95)
        vel = int(np.clip(velocity + self.rng.normal(0.0, 6.0), 1, 127))
        if 0 <= pitch <= 127:
            part.notes.append(_pm().Note(vel, int(pitch), start, end))

    def swell(self, part, start_beats: float, dur_beats: float, lo: int = 30, hi: int = 110) -> None:
        """A crescendo-decrescendo with MIDI expression (CC 11) over a held chord."""
        steps = 16
        for k in range(steps + 1):
            x = k / steps
            part.control_changes.append(_pm().ControlChange(
                11, int(lo + (hi - lo) * np.sin(np.pi * x)), self.t(start_beats + x * dur_beats)))


def triad(degree: int, key: int) -> list[int]:
    """The diatonic triad on ``degree`` (0-6) of the major key whose tonic is MIDI ``key``."""
    idx = (degree, degree + 2, degree + 4)
    return [key + MAJOR[i % 7] + 12 * (i // 7) for i in idx]


def bars(seconds: float, tempo: float, beats_per_bar: int = 4) -> int:
    return max(2, int(np.ceil(seconds / (beats_per_bar * 60.0 / tempo))))


def _melody(p: Piece, part, rng, chord: list[int], b0: float, beats: float, *, octave: int,
            durations=(0.5, 1.0, 1.0, 2.0), rest: float = 0.2, velocity: int = 80) -> None:
    """A phrase over one bar: chord tones and their upper neighbours, stepwise-ish."""
    pool = sorted({c % 12 for c in chord} | {(chord[0] + 2) % 12, (chord[0] + 9) % 12})
    t, idx = 0.0, int(rng.integers(len(pool)))
    while t < beats:
        dur = float(rng.choice(durations))
        idx = int(np.clip(idx + rng.integers(-1, 2), 0, len(pool) - 1))
        if rng.random() > rest:
            p.note(part, octave + pool[idx], b0 + t, min(dur, beats - t), velocity, jitter_s=0.012)
        t += dur


def march(rng: np.random.Generator, seconds: float):
    tempo = float(rng.uniform(108, 124))
    p = Piece(rng, tempo)
    key = int(rng.integers(46, 53))
    prog = PROGRESSIONS[int(rng.integers(len(PROGRESSIONS)))]
    drums = p.part("drums", drum=True)
    tuba = p.part("tuba", PROGRAM["tuba"])
    bones = p.part("trombones", PROGRAM["trombone"])
    tpt = p.part("trumpet", PROGRAM["trumpet"])
    picc = p.part("piccolo", PROGRAM["piccolo"])
    for bar in range(bars(seconds, tempo, 2) // 2 * 2):
        b0 = bar * 2
        chord = triad(prog[(bar // 2) % 4], key)
        p.note(tuba, chord[0] - 24, b0, 0.9, 95)               # oom
        p.note(tuba, chord[2] - 24, b0 + 1, 0.9, 90)
        for off in (0.5, 1.5):                                 # pah on the off-beats
            for v in chord:
                p.note(bones, v - 12, b0 + off, 0.4, 80)
        p.note(drums, DRUMS["bass_drum_2"], b0, 0.5, 105)
        p.note(drums, DRUMS["cymbal_2"], b0 + 1, 0.5, 70)
        for s in range(4):
            p.note(drums, DRUMS["snare"], b0 + s / 2, 0.2, 70 + 20 * (s % 2), jitter_s=0.005)
        _melody(p, tpt, rng, chord, b0, 2, octave=key + 12, durations=(0.5, 0.5, 1.0))
        if rng.random() < 0.5:
            _melody(p, picc, rng, chord, b0, 2, octave=key + 36, durations=(0.25, 0.5), rest=0.4)
    return p.midi


def waltz(rng: np.random.Generator, seconds: float):
    tempo = float(rng.uniform(150, 180))
    p = Piece(rng, tempo)
    key = int(rng.integers(50, 57))
    prog = PROGRESSIONS[int(rng.integers(len(PROGRESSIONS)))]
    lead = p.part("lead", PROGRAM[str(rng.choice(["accordion", "violin"]))])
    comp = p.part("comp", PROGRAM[str(rng.choice(["accordion", "honky_tonk"]))])
    bass = p.part("bass", PROGRAM["acoustic_bass"])
    for bar in range(bars(seconds, tempo, 3)):
        b0 = bar * 3
        chord = triad(prog[(bar // 2) % 4], key)
        p.note(bass, chord[0] - 24, b0, 0.9, 90)               # oom-pah-pah
        for beat in (1, 2):
            for v in chord:
                p.note(comp, v, b0 + beat, 0.6, 60)
        _melody(p, lead, rng, chord, b0, 3, octave=key + 12, durations=(1.0, 2.0, 0.5, 3.0))
    return p.midi


def blues(rng: np.random.Generator, seconds: float):
    tempo = float(rng.uniform(80, 110))
    p = Piece(rng, tempo, swing=1 / 6)
    key = int(rng.integers(40, 47))
    drums = p.part("drums", drum=True)
    bass = p.part("bass", PROGRAM["finger_bass"])
    keys = p.part("keys", PROGRAM[str(rng.choice(["organ", "piano"]))])
    lead = p.part("lead", PROGRAM[str(rng.choice(["harmonica", "clean_guitar"]))])
    form = (0, 5, 0, 0, 5, 5, 0, 0, 7, 5, 0, 7)                 # twelve-bar blues
    blue = (0, 3, 5, 6, 7, 10, 12)
    for bar in range(bars(seconds, tempo)):
        b0 = bar * 4
        r = key + form[bar % 12]
        for beat in range(4):                                  # shuffle: long-short
            for off, vel in ((0.0, 70), (0.5, 55)):
                p.note(drums, DRUMS["ride"], b0 + beat + off, 0.3, vel)
            p.note(drums, DRUMS["kick" if beat in (0, 2) else "snare"], b0 + beat, 0.3, 95)
            p.note(bass, r + (0, 4, 7, 9)[beat], b0 + beat, 0.9, 90)       # walking boogie
            for v in (4, 10):
                p.note(keys, r + 12 + v, b0 + beat + 0.5, 0.4, 55)
        t = 0.0
        while t < 4:
            dur = float(rng.choice([0.5, 0.5, 1.0, 1.5]))
            if rng.random() > 0.3:
                p.note(lead, key + 24 + int(rng.choice(blue)), b0 + t, dur, 85, jitter_s=0.02)
            t += dur
    return p.midi


def reggae(rng: np.random.Generator, seconds: float):
    tempo = float(rng.uniform(70, 84))
    p = Piece(rng, tempo)
    key = int(rng.integers(43, 50))
    prog = PROGRESSIONS[int(rng.integers(len(PROGRESSIONS)))]
    drums = p.part("drums", drum=True)
    bass = p.part("bass", PROGRAM["finger_bass"])
    skank = p.part("skank", PROGRAM[str(rng.choice(["muted_guitar", "rock_organ"]))])
    lead = p.part("lead", PROGRAM[str(rng.choice(["alto_sax", "trumpet"]))])
    for bar in range(bars(seconds, tempo)):
        b0 = bar * 4
        chord = triad(prog[(bar // 2) % 4], key)
        p.note(drums, DRUMS["kick"], b0 + 2, 0.5, 105)         # one drop: kick and rim on 3
        p.note(drums, DRUMS["side_stick"], b0 + 2, 0.5, 90)
        for e in range(8):
            p.note(drums, DRUMS["closed_hat"], b0 + e / 2, 0.2, 55 + 10 * (e % 2))
        for beat in range(4):                                  # the off-beat skank
            for v in chord:
                p.note(skank, v + 12, b0 + beat + 0.5, 0.2, 70, jitter_s=0.004)
        for pos, iv, dur in ((0, 0, 1.5), (1.5, 7, 0.5), (2.5, 12, 0.5), (3, 7, 1.0)):
            p.note(bass, chord[0] - 24 + iv, b0 + pos, dur, 100)
        if bar % 2:
            _melody(p, lead, rng, chord, b0, 4, octave=key + 12, rest=0.35)
    return p.midi


def country(rng: np.random.Generator, seconds: float):
    tempo = float(rng.uniform(100, 130))
    p = Piece(rng, tempo)
    key = int(rng.integers(43, 50))
    prog = PROGRESSIONS[int(rng.integers(len(PROGRESSIONS)))]
    drums = p.part("drums", drum=True)
    bass = p.part("bass", PROGRAM["acoustic_bass"])
    banjo = p.part("banjo", PROGRAM["banjo"])
    lead = p.part("lead", PROGRAM[str(rng.choice(["fiddle", "steel_guitar"]))])
    for bar in range(bars(seconds, tempo)):
        b0 = bar * 4
        chord = triad(prog[(bar // 2) % 4], key)
        for beat in range(4):                                  # train beat: snare on every 8th
            p.note(drums, DRUMS["kick" if beat in (0, 2) else "snare"], b0 + beat, 0.3, 90)
            p.note(drums, DRUMS["snare"], b0 + beat + 0.5, 0.2, 50)
            p.note(bass, chord[0] - 24 + (0, 7)[beat % 2], b0 + beat, 0.9, 90)
        roll = [chord[0], chord[1], chord[2] + 12, chord[1] + 12]        # banjo roll
        for s in range(8):
            p.note(banjo, roll[s % 4] + 12, b0 + s / 2, 0.4, 65, jitter_s=0.006)
        _melody(p, lead, rng, chord, b0, 4, octave=key + 24, durations=(0.5, 1.0, 1.0, 2.0))
    return p.midi


def funk(rng: np.random.Generator, seconds: float):
    tempo = float(rng.uniform(96, 112))
    p = Piece(rng, tempo)
    key = int(rng.integers(38, 45))
    drums = p.part("drums", drum=True)
    bass = p.part("bass", PROGRAM["slap_bass"])
    clav = p.part("clav", PROGRAM["clavinet"])
    horns = p.part("horns", PROGRAM["brass"])
    tones = (0, 3, 7, 10)                                      # a one-chord minor-7th vamp
    bass_line = [int(rng.choice([0, 0, 7, 10, 12, -1])) for _ in range(16)]
    for bar in range(bars(seconds, tempo)):
        b0 = bar * 4
        r = key + (0 if bar % 4 < 3 else 5)
        for s in range(16):
            p.note(drums, DRUMS["closed_hat"], b0 + s / 4, 0.1, 50 + 25 * (s % 4 == 0),
                   jitter_s=0.003)
            if bass_line[s] >= 0 and (s % 4 == 0 or rng.random() < 0.3):
                p.note(bass, r + bass_line[s], b0 + s / 4, 0.2, 100, jitter_s=0.004)
            if s % 4 in (1, 3) and rng.random() < 0.6:
                for v in tones[1:]:
                    p.note(clav, r + 24 + v, b0 + s / 4, 0.15, 75, jitter_s=0.004)
        for pos in (0, 2.5):
            p.note(drums, DRUMS["kick"], b0 + pos, 0.3, 105)
        for pos in (1, 3):
            p.note(drums, DRUMS["snare"], b0 + pos, 0.3, 105)
        if bar % 2 == 1:                                       # horn stabs
            for pos in (2.5, 3.0):
                for v in tones:
                    p.note(horns, r + 12 + v, b0 + pos, 0.3, 95, jitter_s=0.004)
    return p.midi


def gospel(rng: np.random.Generator, seconds: float):
    tempo = float(rng.uniform(70, 96))
    p = Piece(rng, tempo, swing=1 / 6)
    key = int(rng.integers(48, 55))
    prog = PROGRESSIONS[int(rng.integers(len(PROGRESSIONS)))]
    drums = p.part("drums", drum=True)
    organ = p.part("organ", PROGRAM[str(rng.choice(["organ", "church_organ"]))])
    piano = p.part("piano", PROGRAM["piano"])
    choir = p.part("choir", PROGRAM["choir"])
    bass = p.part("bass", PROGRAM["finger_bass"])
    for bar in range(bars(seconds, tempo)):
        b0 = bar * 4
        chord = triad(prog[bar % 4], key)
        for v in chord + [chord[0] + 12]:
            p.note(organ, v, b0, 4, 55, jitter_s=0.01)
        p.swell(organ, b0, 4, 50, 100)
        for pos in (1, 3):                                     # hand claps on the backbeat
            p.note(drums, DRUMS["clap"], b0 + pos, 0.2, 90)
            p.note(drums, DRUMS["tambourine"], b0 + pos, 0.2, 70)
        for pos in (0, 1.5, 2, 3.5):
            for v in chord:
                p.note(piano, v + 12, b0 + pos, 0.4, 65)
        p.note(bass, chord[0] - 24, b0, 2, 90)
        p.note(bass, chord[2] - 24, b0 + 2, 2, 85)
        _melody(p, choir, rng, chord, b0, 4, octave=key + 12, durations=(1.0, 2.0, 1.0),
                rest=0.1, velocity=75)
    return p.midi


def tango(rng: np.random.Generator, seconds: float):
    tempo = float(rng.uniform(110, 126))
    p = Piece(rng, tempo)
    key = int(rng.integers(45, 52))
    bando = p.part("bandoneon", PROGRAM["bandoneon"])
    violin = p.part("violin", PROGRAM["violin"])
    piano = p.part("piano", PROGRAM["piano"])
    bass = p.part("bass", PROGRAM["acoustic_bass"])
    minor = ((9, (0, 3, 7)), (2, (0, 3, 7)), (4, (0, 4, 7)), (9, (0, 3, 7)))
    for bar in range(bars(seconds, tempo)):
        b0 = bar * 4
        root, tones = minor[(bar // 2) % 4]
        r = key + root
        pattern = (0, 1, 2, 3) if bar % 2 == 0 else (0, 1.5, 3)           # marcato / 3-3-2
        for pos in pattern:
            p.note(bass, r - 24, b0 + pos, 0.4, 95, jitter_s=0.005)
            for v in tones:
                p.note(piano, r + v, b0 + pos, 0.3, 80, jitter_s=0.005)
        for v in tones:
            p.note(bando, r + 12 + v, b0, 2, 70)
        _melody(p, violin, rng, [r + v for v in tones], b0, 4, octave=r + 12 - (r % 12),
                durations=(0.5, 1.0, 1.5, 0.25), rest=0.15)
    return p.midi


#: The genres, in a fixed order (part of the build's reproducibility).
GENRES: dict[str, Callable] = {"march": march, "waltz": waltz, "blues": blues,
                               "reggae": reggae, "country": country, "funk": funk,
                               "gospel": gospel, "tango": tango}


def arrange(genre: str, seed_key: object, seconds: float):
    """One seeded piece of ``genre`` lasting at least ``seconds``: ``(PrettyMIDI, tempo)``."""
    if genre not in GENRES:
        raise ValueError(f"unknown genre {genre!r} (genres: {sorted(GENRES)})")
    rng = np.random.default_rng(seed_key)
    midi = GENRES[genre](rng, seconds)
    return midi, float(midi.get_tempo_changes()[1][0])
