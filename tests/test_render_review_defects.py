"""Review of the renderer: defects that changed what a clip sounds like without a word.

Each test builds its fixture in code and renders through FluidSynth like the builds do."""

import numpy as np
import pretty_midi
import pytest

from musicbrain_cli.data.render import (DEFAULT_VELOCITY, Humanize, get_soundfont,
                                            humanize_midi, render_midi, score_to_midi)

SR = 22050
ORGAN = 19  # Church Organ: sustains at a constant level, so a cut note is plain to see


def _legato_repeats(n=12, dur=0.6, pitch=67):
    pm = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(ORGAN)
    inst.notes = [pretty_midi.Note(80, pitch, k * dur, (k + 1) * dur) for k in range(n)]
    pm.instruments.append(inst)
    return pm


def test_timing_jitter_does_not_cut_repeated_notes():
    """Jitter moves each note and keeps its length, so a repeated note played legato
    overlapped its successor half the time; FluidSynth ends every voice of a key at that
    key's note-off, so the successor was silenced a few ms after it began. The humanised
    MIDI must hold no such overlap, and every note must sound through its middle."""
    midi = _legato_repeats()
    h = Humanize(timing_jitter_s=0.015)
    performed = humanize_midi(midi, h, seed=3)
    notes = sorted(performed.instruments[0].notes, key=lambda n: n.start)
    assert all(a.end <= b.start for a, b in zip(notes, notes[1:]))

    y = render_midi(midi, get_soundfont("fluidr3_gm"), sample_rate=SR, humanize=h, seed=3)
    # level in the middle of each note (after any cut note's release has died away)
    level = np.array([np.sqrt(np.mean(y[int((n.start + 0.3) * SR):int((n.start + 0.5) * SR)]
                                      ** 2)) for n in notes])
    assert level.min() > 0.7 * level.max()


def test_a_zero_length_note_does_not_hang_the_render():
    """A note that starts and ends on one MIDI tick was written note-off first, so it never
    ended: on a sustaining program FluidSynth rendered until the timeout and the clip was
    lost; with a decaying one it droned to the end."""
    pm = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(ORGAN)
    inst.notes = [pretty_midi.Note(80, 48, 0.0, 1.0), pretty_midi.Note(80, 72, 0.5, 0.5)]
    pm.instruments.append(inst)
    y = render_midi(pm, get_soundfont("fluidr3_gm"), sample_rate=SR, timeout_s=15)
    assert y.size <= int(2.0 * SR) + 1
    assert np.sqrt(np.mean(y[int(1.6 * SR):] ** 2)) < 0.02 * np.sqrt(
        np.mean(y[int(0.2 * SR):int(0.9 * SR)] ** 2))
    assert len(pm.instruments[0].notes) == 2   # the caller's MIDI is left alone


def test_a_score_midi_plays_at_the_velocity_generated_abc_gets(tmp_path):
    """music21's ABC reader drops dynamics marks, so NotaGen/RhythGen ABC always plays at
    DEFAULT_VELOCITY; a MusicNet score MIDI kept its 1..127 velocities, so the human side
    alone carried dynamics (and other velocity layers of the SoundFont)."""
    abc = "X:1\nT:t\nM:4/4\nL:1/4\nQ:1/4=120\nK:C\n!pp! C D E F | !ff! G A B c |]\n"
    from_abc = score_to_midi(abc)
    pm = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(0)
    inst.notes = [pretty_midi.Note(v, 60 + k, 0.5 * k, 0.5 * k + 0.5)
                  for k, v in enumerate([20, 40, 64, 127])]
    pm.instruments.append(inst)
    path = tmp_path / "score.mid"
    pm.write(str(path))
    from_midi = score_to_midi(path)
    abc_velocities = {n.velocity for i in from_abc.instruments for n in i.notes}
    midi_velocities = {n.velocity for i in from_midi.instruments for n in i.notes}
    assert abc_velocities == {DEFAULT_VELOCITY}
    assert midi_velocities == abc_velocities
