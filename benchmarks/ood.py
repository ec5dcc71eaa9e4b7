"""Out-of-domain check (issue #9): does the detector accuse human-made music unlike its
training data?

The detector is trained on classical scores rendered with GM SoundFonts. This benchmark
synthesises music of other kinds, procedurally and with seeded randomness, in the way a
person would arrange it (a drum kit on MIDI channel 10, a bass line that follows the
chords, voicings and fills), humanises the timing and dynamics, renders it with
:func:`musicbrain_cli.data.render.render_midi` (the SoundFonts rotate over the pieces),
writes 44.1 kHz FLAC files and scans each one through :func:`musicbrain_cli.scan.batch.analyse_track`
(explanations off) with the model's out-of-domain statistics. It reports, per genre, the
count of ``ai``, ``human`` and ``inconclusive`` verdicts and how many tracks the model
flagged as out of domain. The target is zero ``ai`` verdicts: on music the model was not
trained for, the verdict rule must abstain (out of domain, abstention band) rather than
accuse. With ``espeak-ng`` installed, a few spoken sentences are added ("speech").

Genres: rock/pop (drums, electric bass, overdriven guitar power chords, voice-like lead),
electronic (four-on-the-floor, synth bass, saw pad, arpeggio), film (string pads, brass
swells, timpani, horn melody), chiptune (square-wave lead and bass, saw arpeggio, noise-like
hats), jazz (walking bass, swung ride cymbal, piano comping, saxophone). The out-of-domain
method was chosen on these five. Held out (written afterwards, never used to choose or tune
anything, reported on their own line): hip-hop (boom-bap drums, electric piano, hook), bossa
nova (nylon guitar comp, root-fifth bass, flute), ambient (pads, bells, drone) and a pop
piano ballad (solo piano: the training data's keyboard timbre with pop harmony, the hard
case); then, written after the training corpus was settled and before any model trained on
it was measured: fingerstyle guitar and a pop song for string quartet (chamber timbre, pop
harmony: the second hard case).

    python benchmarks/ood.py [--model default] [--per-genre 4] [--seconds 20 60]
                             [--seed 0] [--keep DIR] [--json] [--threads N]

Exit status 1 when any track is called ``ai`` (target missed), else 0.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Callable

import numpy as np

from musicbrain_cli.data.reference.arrangements import (  # the shared piece helpers
    DRUMS as _DRUMS, MAJOR, Piece, bars as _bars, triad)

FILE_RATE = 44100          # files as they circulate; the scan resamples to the model rate
DRUMS = dict(_DRUMS)
#: GM programs (0-based).
PROGRAM = {"piano": 0, "acoustic_bass": 32, "finger_bass": 33, "overdrive_guitar": 29,
           "distortion_guitar": 30, "strings": 48, "timpani": 47, "trumpet": 56,
           "brass": 61, "horn": 60, "tenor_sax": 66, "synth_bass": 38, "square": 80,
           "saw": 81, "voice_lead": 85, "polysynth_pad": 90, "synth_voice": 54,
           "electric_piano": 4, "nylon_guitar": 24, "flute": 73, "warm_pad": 89,
           "halo_pad": 94, "celesta": 8, "vibraphone": 11, "glockenspiel": 9,
           "synth_strings": 50, "steel_guitar": 25, "violin": 40, "viola": 41,
           "cello": 42}
POP_PROGRESSIONS = [[0, 4, 5, 3], [5, 3, 0, 4], [0, 5, 3, 4], [0, 3, 4, 3]]


def rock(rng: np.random.Generator, seconds: float):
    tempo = float(rng.uniform(100, 140))
    p = Piece(rng, tempo)
    key = int(rng.integers(40, 47))                     # E2..B2 region for the bass
    prog = POP_PROGRESSIONS[int(rng.integers(len(POP_PROGRESSIONS)))]
    drums = p.part("drums", drum=True)
    bass = p.part("bass", PROGRAM["finger_bass"])
    gtr = p.part("guitar", PROGRAM[str(rng.choice(["overdrive_guitar", "distortion_guitar"]))])
    lead = p.part("lead", PROGRAM[str(rng.choice(["voice_lead", "synth_voice"]))])
    scale = [key + 24 + s for s in (0, 2, 4, 7, 9, 12, 14, 16)]     # major pentatonic, 2 oct
    for bar in range(_bars(seconds, tempo)):
        b0 = bar * 4
        deg = prog[bar % len(prog)]
        root = key + MAJOR[deg]
        if bar % 4 == 0:
            p.note(drums, DRUMS["crash"], b0, 1, 100)
        for beat in range(4):
            p.note(drums, DRUMS["kick" if beat in (0, 2) else "snare"], b0 + beat, 0.5, 105)
            for half in (0.0, 0.5):
                p.note(drums, DRUMS["closed_hat"], b0 + beat + half, 0.25, 70 if half else 85)
        if bar % 4 == 3:                                  # a fill into the next phrase
            for k in range(4):
                p.note(drums, DRUMS["tom_low"], b0 + 3 + k / 4, 0.25, 90 + 5 * k)
        for e in range(8):
            p.note(bass, root, b0 + e / 2, 0.45, 95)
            if e % 2 == 0:                                 # power chord: root, fifth, octave
                for iv in (0, 7, 12):
                    p.note(gtr, root + 12 + iv, b0 + e / 2, 0.9, 90)
        t = 0.0
        while t < 4:                                       # phrase of the vocal-like lead
            dur = float(rng.choice([0.5, 1.0, 1.5]))
            if rng.random() > 0.2:
                p.note(lead, int(rng.choice(scale)), b0 + t, dur, 85)
            t += dur
    return p.midi


def electronic(rng: np.random.Generator, seconds: float):
    tempo = float(rng.uniform(120, 128))
    p = Piece(rng, tempo)
    key = int(rng.integers(33, 40))
    prog = POP_PROGRESSIONS[int(rng.integers(len(POP_PROGRESSIONS)))]
    drums = p.part("drums", drum=True)
    bass = p.part("bass", PROGRAM["synth_bass"])
    pad = p.part("pad", PROGRAM[str(rng.choice(["saw", "polysynth_pad"]))])
    arp = p.part("arp", PROGRAM["saw"])
    for bar in range(_bars(seconds, tempo)):
        b0 = bar * 4
        deg = prog[bar % len(prog)]
        chord = triad(deg, key + 24)
        for beat in range(4):
            p.note(drums, DRUMS["kick"], b0 + beat, 0.5, 115, jitter_s=0.002)
            if beat in (1, 3):
                p.note(drums, DRUMS["clap"], b0 + beat, 0.5, 95, jitter_s=0.002)
            p.note(drums, DRUMS["open_hat"], b0 + beat + 0.5, 0.25, 80, jitter_s=0.002)
            p.note(bass, chord[0] - 12, b0 + beat + 0.5, 0.45, 100, jitter_s=0.002)
        for iv in chord:
            p.note(pad, iv + 12, b0, 4, 70, jitter_s=0.002)
        for s in range(16):                                  # sixteenth-note arpeggio
            p.note(arp, chord[s % 3] + 24 + 12 * ((s // 3) % 2), b0 + s / 4, 0.22, 80,
                   jitter_s=0.002)
    return p.midi


def film(rng: np.random.Generator, seconds: float):
    tempo = float(rng.uniform(60, 80))
    p = Piece(rng, tempo)
    key = int(rng.integers(36, 43))
    minor_prog = [[5, 3, 0, 4], [5, 1, 4, 5], [5, 3, 4, 4]][int(rng.integers(3))]
    strings = p.part("strings", PROGRAM["strings"])
    brass = p.part("brass", PROGRAM["brass"])
    timp = p.part("timpani", PROGRAM["timpani"])
    horn = p.part("horn", PROGRAM["horn"])
    melody = [key + 24 + s for s in (0, 2, 3, 5, 7, 8, 10, 12)]      # natural minor colour
    for bar in range(_bars(seconds, tempo)):
        b0 = bar * 4
        chord = triad(minor_prog[bar % 4], key + 12)
        for iv in chord + [chord[0] + 12]:
            p.note(strings, iv + 12, b0, 4, 75, jitter_s=0.02)
        if bar % 2 == 1:                                   # brass swell every other bar
            for iv in chord:
                p.note(brass, iv, b0, 4, 90, jitter_s=0.015)
            p.swell(brass, b0, 4)
        if bar % 4 == 3:                                   # timpani roll with crescendo
            for k in range(16):
                p.note(timp, chord[0] - 12, b0 + k / 4, 0.25, 50 + 4 * k, jitter_s=0.01)
        else:
            p.note(timp, chord[0] - 12, b0, 1, 90)
        t = 0.0
        while t < 4:
            dur = float(rng.choice([1.0, 2.0, 1.5, 0.5]))
            p.note(horn, int(rng.choice(melody)), b0 + t, dur, 80, jitter_s=0.02)
            t += dur
    return p.midi


def chiptune(rng: np.random.Generator, seconds: float):
    tempo = float(rng.uniform(140, 170))
    p = Piece(rng, tempo)
    key = int(rng.integers(45, 52))
    prog = POP_PROGRESSIONS[int(rng.integers(len(POP_PROGRESSIONS)))]
    lead = p.part("lead", PROGRAM["square"])
    bass = p.part("bass", PROGRAM["square"])
    arp = p.part("arp", PROGRAM["saw"])
    drums = p.part("drums", drum=True)
    scale = [key + 12 + s for s in (0, 2, 4, 5, 7, 9, 11, 12, 14, 16)]
    for bar in range(_bars(seconds, tempo)):
        b0 = bar * 4
        chord = triad(prog[bar % len(prog)], key)
        for e in range(8):                                  # octave-bouncing bass
            p.note(bass, chord[0] - 12 + 12 * (e % 2), b0 + e / 2, 0.4, 90, jitter_s=0.001)
        for s in range(16):
            p.note(arp, chord[s % 3] + 12, b0 + s / 4, 0.2, 60, jitter_s=0.001)
            p.note(drums, DRUMS["closed_hat"], b0 + s / 4, 0.1, 50 if s % 2 else 75,
                   jitter_s=0.001)
        for beat in (0, 2):
            p.note(drums, DRUMS["kick"], b0 + beat, 0.25, 100, jitter_s=0.001)
        t, idx = 0.0, int(rng.integers(len(scale)))
        while t < 4:                                       # stepwise melody, fast notes
            dur = float(rng.choice([0.25, 0.5, 0.5, 1.0]))
            idx = int(np.clip(idx + rng.integers(-2, 3), 0, len(scale) - 1))
            p.note(lead, scale[idx], b0 + t, dur, 95, jitter_s=0.001)
            t += dur
    return p.midi


def jazz(rng: np.random.Generator, seconds: float):
    tempo = float(rng.uniform(110, 180))
    p = Piece(rng, tempo, swing=1 / 6)                     # eighths played 2:1 (triplet swing)
    key = int(rng.integers(36, 43))
    drums = p.part("drums", drum=True)
    bass = p.part("bass", PROGRAM["acoustic_bass"])
    piano = p.part("piano", PROGRAM["piano"])
    sax = p.part("sax", PROGRAM["tenor_sax"])
    # ii-V-I-VI in the key: (root offset, chord tones as intervals: 7th chords)
    changes = [(2, (0, 3, 7, 10)), (7, (0, 4, 7, 10)), (0, (0, 4, 7, 11)), (9, (0, 3, 7, 10))]
    for bar in range(_bars(seconds, tempo)):
        b0 = bar * 4
        root, tones = changes[bar % 4]
        nxt = changes[(bar + 1) % 4][0]
        r = key + root
        walk = [r, r + tones[1], r + tones[2], key + nxt + (1 if rng.random() < 0.5 else -1)]
        for beat, pitch in enumerate(walk):                # walking bass, approach note last
            p.note(bass, pitch, b0 + beat, 0.95, 90, jitter_s=0.012)
        for pos in (0, 1, 1.5, 2, 3, 3.5):                 # ride pattern, swung
            p.note(drums, DRUMS["ride"], b0 + pos, 0.3, 80 if pos in (1, 3) else 65)
        for pos in (1, 3):
            p.note(drums, DRUMS["pedal_hat"], b0 + pos, 0.2, 70)
        voicing = [r + 12 + tones[1], r + 12 + tones[3], r + 24 + 2]   # 3rd, 7th, 9th
        for pos in sorted(rng.choice([0.5, 1.5, 2.0, 2.5, 3.5], size=2, replace=False)):
            for v in voicing:
                p.note(piano, v, b0 + float(pos), 0.4, 70, jitter_s=0.015)
        t = 0.0
        while t < 4:
            dur = float(rng.choice([0.5, 0.5, 1.0, 1.5]))
            if rng.random() > 0.25:
                p.note(sax, r + 24 + int(rng.choice(tones + (14,))), b0 + t, dur, 85,
                       jitter_s=0.015)
            t += dur
    return p.midi


def hiphop(rng: np.random.Generator, seconds: float):
    tempo = float(rng.uniform(84, 96))
    p = Piece(rng, tempo, swing=float(rng.uniform(0.0, 0.12)))
    key = int(rng.integers(33, 40))
    drums = p.part("drums", drum=True)
    bass = p.part("bass", PROGRAM["synth_bass"])
    keys = p.part("keys", PROGRAM["electric_piano"])
    lead = p.part("lead", PROGRAM[str(rng.choice(["voice_lead", "synth_voice", "tenor_sax"]))])
    loop = [(0, (0, 3, 7, 10)), (5, (0, 3, 7, 10)), (3, (0, 4, 7, 11)), (10, (0, 4, 7, 10))]
    for bar in range(_bars(seconds, tempo)):
        b0 = bar * 4
        root, tones = loop[bar % 4]
        for pos in (0.0, 1.75, 2.5):                        # boom-bap kick, laid back snare
            p.note(drums, DRUMS["kick"], b0 + pos, 0.25, 110, jitter_s=0.004)
        for pos in (1.0, 3.0):
            p.note(drums, DRUMS["snare"], b0 + pos + 0.02, 0.25, 105, jitter_s=0.006)
        for e in range(8):
            p.note(drums, DRUMS["closed_hat"], b0 + e / 2, 0.2, 60 + 15 * (e % 2 == 0))
        p.note(bass, key + root, b0, 1.5, 100)
        p.note(bass, key + root + 7, b0 + 2.5, 1.0, 90)
        for v in tones:
            p.note(keys, key + 24 + root + v, b0, 3.5, 65, jitter_s=0.01)
        t = 0.0
        while t < 4:                                        # a short, repeated hook
            dur = float(rng.choice([0.25, 0.5, 0.5, 0.75]))
            if rng.random() > 0.35:
                p.note(lead, key + 36 + root + int(rng.choice(tones)), b0 + t, dur, 80)
            t += dur
    return p.midi


def bossa(rng: np.random.Generator, seconds: float):
    tempo = float(rng.uniform(120, 140))
    p = Piece(rng, tempo)
    key = int(rng.integers(40, 47))
    drums = p.part("drums", drum=True)
    bass = p.part("bass", PROGRAM["acoustic_bass"])
    gtr = p.part("guitar", PROGRAM["nylon_guitar"])
    flute = p.part("flute", PROGRAM["flute"])
    changes = [(0, (0, 4, 7, 11)), (2, (0, 3, 7, 10)), (7, (0, 4, 7, 10)), (0, (0, 4, 7, 9))]
    for bar in range(_bars(seconds, tempo)):
        b0 = bar * 4
        root, tones = changes[bar % 4]
        r = key + root
        for pos, pitch in ((0, r), (1.5, r + 7), (2, r + 7), (3.5, r)):   # root-fifth bass
            p.note(bass, pitch - 12, b0 + pos, 0.5, 85, jitter_s=0.01)
        for pos in (0, 1.5, 2.5, 3.0):                      # the bossa guitar comp
            for v in tones[1:]:
                p.note(gtr, r + 12 + v, b0 + pos, 0.45, 60, jitter_s=0.012)
        for pos in (0.5, 1.25, 2.0, 3.25):                  # cross-stick and shaker-like hats
            p.note(drums, 37, b0 + pos, 0.1, 60)
        for e in range(8):
            p.note(drums, DRUMS["pedal_hat"], b0 + e / 2, 0.1, 45)
        t = 0.0
        while t < 4:
            dur = float(rng.choice([0.5, 1.0, 1.5, 2.0]))
            if rng.random() > 0.3:
                p.note(flute, r + 24 + int(rng.choice(tones + (2, 14))), b0 + t, dur, 75,
                       jitter_s=0.015)
            t += dur
    return p.midi


def ambient(rng: np.random.Generator, seconds: float):
    tempo = float(rng.uniform(60, 72))
    p = Piece(rng, tempo)
    key = int(rng.integers(36, 43))
    pad = p.part("pad", PROGRAM[str(rng.choice(["warm_pad", "polysynth_pad", "halo_pad"]))])
    bell = p.part("bells", PROGRAM[str(rng.choice(["celesta", "vibraphone", "glockenspiel"]))])
    drone = p.part("drone", PROGRAM["synth_strings"])
    for bar in range(_bars(seconds, tempo)):
        b0 = bar * 4
        chord = triad([0, 5, 3, 4][bar % 4], key + 12)
        if bar % 2 == 0:                                    # slow pads, two bars each
            for iv in chord + [chord[0] + 12]:
                p.note(pad, iv + 12, b0, 8, 60, jitter_s=0.05)
            p.note(drone, key, b0, 8, 55)
        for _ in range(int(rng.integers(1, 4))):            # sparse bells
            pos = float(rng.choice(np.arange(0, 4, 0.5)))
            p.note(bell, int(rng.choice(chord)) + 36, b0 + pos, 2.0, int(rng.integers(40, 80)),
                   jitter_s=0.03)
    return p.midi


def piano_ballad(rng: np.random.Generator, seconds: float):
    """A pop ballad on solo piano: the timbre of the training data's keyboard pieces, with
    pop harmony and accompaniment (the hard case for the domain checks)."""
    tempo = float(rng.uniform(66, 84))
    p = Piece(rng, tempo)
    key = int(rng.integers(48, 55))
    prog = POP_PROGRESSIONS[int(rng.integers(len(POP_PROGRESSIONS)))]
    left = p.part("left", PROGRAM["piano"])
    right = p.part("right", PROGRAM["piano"])
    for bar in range(_bars(seconds, tempo)):
        b0 = bar * 4
        chord = triad(prog[bar % len(prog)], key)
        p.note(left, chord[0] - 24, b0, 4, 70, jitter_s=0.012)
        for e, pitch in enumerate([chord[0] - 12, chord[2] - 12, chord[1], chord[2]] * 2):
            p.note(left, pitch, b0 + e / 2, 0.5, 55, jitter_s=0.012)   # broken-chord pattern
        t = 0.0
        while t < 4:
            dur = float(rng.choice([0.5, 1.0, 1.0, 1.5, 2.0]))
            if rng.random() > 0.15:
                p.note(right, int(rng.choice(chord)) + 12 + int(rng.choice([0, 2, 0, -1])),
                       b0 + t, dur, 78, jitter_s=0.015)
            t += dur
    return p.midi


def fingerstyle(rng: np.random.Generator, seconds: float):
    """Solo steel-string guitar, Travis picking: alternating thumb bass under a melody."""
    tempo = float(rng.uniform(90, 120))
    p = Piece(rng, tempo)
    key = int(rng.integers(40, 47))
    prog = POP_PROGRESSIONS[int(rng.integers(len(POP_PROGRESSIONS)))]
    gtr = p.part("guitar", PROGRAM["steel_guitar"])
    for bar in range(_bars(seconds, tempo)):
        b0 = bar * 4
        chord = triad(prog[bar % len(prog)], key)
        for beat in range(4):                               # thumb: root / fifth alternation
            p.note(gtr, chord[0] if beat % 2 == 0 else chord[2], b0 + beat, 0.9, 70,
                   jitter_s=0.01)
            p.note(gtr, chord[1] + 12, b0 + beat + 0.5, 0.45, 60, jitter_s=0.01)
        t = 0.0
        while t < 4:
            dur = float(rng.choice([0.5, 1.0, 1.0, 1.5]))
            p.note(gtr, int(rng.choice(chord)) + 24, b0 + t, dur, 80, jitter_s=0.012)
            t += dur
    return p.midi


def pop_string_quartet(rng: np.random.Generator, seconds: float):
    """A pop song arranged for string quartet: the training data's chamber timbre, pop
    harmony and rhythm (the second hard case)."""
    tempo = float(rng.uniform(90, 110))
    p = Piece(rng, tempo)
    key = int(rng.integers(50, 57))
    prog = POP_PROGRESSIONS[int(rng.integers(len(POP_PROGRESSIONS)))]
    vn1 = p.part("violin 1", PROGRAM["violin"])
    vn2 = p.part("violin 2", PROGRAM["violin"])
    vla = p.part("viola", PROGRAM["viola"])
    vc = p.part("cello", PROGRAM["cello"])
    for bar in range(_bars(seconds, tempo)):
        b0 = bar * 4
        chord = triad(prog[bar % len(prog)], key)
        for e in range(8):                                  # driving eighths, pop style
            p.note(vc, chord[0] - 24, b0 + e / 2, 0.45, 85 if e % 2 == 0 else 65)
            p.note(vla, chord[1] - 12, b0 + e / 2, 0.4, 60)
        for pos in (0.0, 1.5, 3.0):                         # syncopated second violin
            p.note(vn2, chord[2], b0 + pos, 1.0, 70)
        t = 0.0
        while t < 4:
            dur = float(rng.choice([0.5, 0.5, 1.0, 1.5]))
            if rng.random() > 0.15:
                p.note(vn1, int(rng.choice(chord)) + 12, b0 + t, dur, 85, jitter_s=0.012)
            t += dur
    return p.midi


#: The genres the out-of-domain method was chosen on (the spectral-profile check was added
#: after it missed them in an earlier version of this benchmark) ...
SELECTION_GENRES: dict[str, Callable] = {"rock_pop": rock, "electronic": electronic,
                                         "film": film, "chiptune": chiptune, "jazz": jazz}
#: ... and genres written only afterwards, never used to choose or tune anything: the
#: honest figure is the one on these.
HELD_OUT_GENRES: dict[str, Callable] = {"hiphop": hiphop, "bossa": bossa, "ambient": ambient,
                                        "piano_ballad": piano_ballad,
                                        # written after the training corpus was settled,
                                        # before any model trained on it was measured here
                                        "fingerstyle": fingerstyle,
                                        "pop_string_quartet": pop_string_quartet}
GENRES: dict[str, Callable] = {**SELECTION_GENRES, **HELD_OUT_GENRES}
SENTENCES = ["The court heard evidence about the origin of the recording.",
             "Please state your name and occupation for the record.",
             "The weather tomorrow will be cloudy with occasional rain in the north."]


def render_genre_pieces(out: Path, *, per_genre: int, seconds: tuple[float, float], seed: int,
                        log=print) -> list[tuple[str, Path]]:
    """Render ``per_genre`` pieces of each genre into ``out``; returns (genre, path)."""
    import soundfile

    from musicbrain_cli.data.render import Humanize, available_soundfonts, render_midi

    fonts = available_soundfonts()
    made = []
    for g, (genre, build) in enumerate(GENRES.items()):
        for i in range(per_genre):
            rng = np.random.default_rng([seed, g, i])
            midi = build(rng, float(rng.uniform(*seconds)))
            font = fonts[(g + i) % len(fonts)]
            t = time.perf_counter()
            y = render_midi(midi, font, sample_rate=FILE_RATE, seed=seed + i,
                            humanize=Humanize(tempo_jitter=0.03, reverb=float(rng.uniform(0.1, 0.4))))
            path = out / f"{genre}-{i:02d}-{font.name}.flac"
            soundfile.write(path, y, FILE_RATE, subtype="PCM_16")
            made.append((genre, path))
            log(f"rendered {path.name}: {y.size / FILE_RATE:.1f} s in {time.perf_counter() - t:.1f} s")
    espeak = shutil.which("espeak-ng")
    if espeak:
        for i in range(min(per_genre, len(SENTENCES))):
            path = out / f"speech-{i:02d}.wav"
            subprocess.run([espeak, "-w", str(path), SENTENCES[i]], check=True,
                           capture_output=True, timeout=60)
            made.append(("speech", path))
    else:
        log("espeak-ng not installed: no speech tracks")
    return made


def scan_tracks(tracks: list[tuple[str, Path]], model: str) -> list[dict]:
    from musicbrain_cli.model.inference import Detector
    from musicbrain_cli.scan.batch import ScanOptions, analyse_track

    detector = Detector.from_pretrained(model, device="cpu")
    options = ScanOptions(formats=(), explain_windows=0)
    results = []
    for genre, path in tracks:
        track = analyse_track(path, detector, options=options).track
        v, o = track["verdict"], track["ood"]
        results.append({"genre": genre, "file": path.name, "verdict": v["label"],
                        "p_ai": v["p_ai"], "ood_available": o.get("available", False),
                        "out_of_domain": o.get("in_domain") is False, "ood_score": o.get("score"),
                        "duration_s": track["input"].get("decoded_duration_s")})
    return results


def summarise(results: list[dict]) -> list[dict]:
    rows = []
    for genre in dict.fromkeys(r["genre"] for r in results):
        rs = [r for r in results if r["genre"] == genre]
        c = Counter(r["verdict"] for r in rs)
        rows.append({"genre": genre, "n": len(rs), "ai": c["ai"], "human": c["human"],
                     "inconclusive": c["inconclusive"],
                     "out_of_domain": sum(r["out_of_domain"] for r in rs),
                     "mean_p_ai": float(np.mean([r["p_ai"] for r in rs])),
                     "max_p_ai": float(np.max([r["p_ai"] for r in rs]))})
    sets = [("all, selection genres", [r for r in results if r["genre"] in SELECTION_GENRES]),
            ("all, held-out genres", [r for r in results if r["genre"] not in SELECTION_GENRES]),
            ("all", results)]
    for name, rs in sets:
        if not rs:
            continue
        c = Counter(r["verdict"] for r in rs)
        rows.append({"genre": name, "n": len(rs), "ai": c["ai"], "human": c["human"],
                     "inconclusive": c["inconclusive"],
                     "out_of_domain": sum(r["out_of_domain"] for r in rs),
                     "mean_p_ai": float(np.mean([r["p_ai"] for r in rs])),
                     "max_p_ai": float(np.max([r["p_ai"] for r in rs]))})
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default", help="'default' or a model folder")
    ap.add_argument("--per-genre", type=int, default=4)
    ap.add_argument("--seconds", type=float, nargs=2, default=(20.0, 60.0), metavar=("MIN", "MAX"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", type=Path, help="write the rendered tracks here and keep them")
    ap.add_argument("--json", action="store_true", help="print per-track results and the table as JSON")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    args = ap.parse_args()
    if args.per_genre < 1 or not 0 < args.seconds[0] <= args.seconds[1]:
        ap.error("--per-genre must be >= 1 and 0 < MIN <= MAX")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    log = lambda msg: print(msg, file=sys.stderr)  # noqa: E731
    with tempfile.TemporaryDirectory(prefix="musicbrain-ood-") as tmp:
        out = args.keep or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        tracks = render_genre_pieces(out, per_genre=args.per_genre, seconds=tuple(args.seconds),
                                     seed=args.seed, log=log)
        log(f"{len(tracks)} tracks rendered in {time.perf_counter() - t:.1f} s")
        t = time.perf_counter()
        results = scan_tracks(tracks, args.model)
        log(f"scanned in {time.perf_counter() - t:.1f} s")
    rows = summarise(results)
    if args.json:
        print(json.dumps({"model": args.model, "tracks": results, "summary": rows}, indent=2))
    else:
        ood_note = "" if any(r["ood_available"] for r in results) else \
            " (the model has no out-of-domain statistics)"
        print(f"model {args.model}: verdicts on human-made-style music unlike the training "
              f"data{ood_note}")
        print(f"{'genre':<22} {'n':>3} {'ai':>3} {'human':>6} {'inconcl.':>9} {'OOD':>4} "
              f"{'mean P(AI)':>11} {'max P(AI)':>10}")
        for r in rows:
            print(f"{r['genre']:<22} {r['n']:>3} {r['ai']:>3} {r['human']:>6} "
                  f"{r['inconclusive']:>9} {r['out_of_domain']:>4} {r['mean_p_ai']:>11.3f} "
                  f"{r['max_p_ai']:>10.3f}")
        total = rows[-1]
        print(f"target: zero 'ai' verdicts -> {'met' if total['ai'] == 0 else 'MISSED'} "
              f"({total['ai']} of {total['n']})")
    return 1 if rows[-1]["ai"] else 0


if __name__ == "__main__":
    sys.exit(main())
