"""Renderer: every SoundFont plays the pitch asked for; seeded humanisation is reproducible;
scores (ABC, MusicXML, MIDI) become MIDI with the programs their labels call for."""

import numpy as np
import pretty_midi
import pytest

from musicbrain_cli.errors import RenderError
from musicbrain_cli.data.render import (INSTRUMENTATION_PROGRAMS, Humanize,
                                            available_soundfonts, get_soundfont, render_midi,
                                            score_to_midi, split_abc_voices)

SR = 22050


def one_note(pitch=69, start=0.1, end=1.1, program=0):
    pm = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(program)
    inst.notes.append(pretty_midi.Note(90, pitch, start, end))
    pm.instruments.append(inst)
    return pm


def dominant_hz(y, t0, t1):
    seg = y[int(t0 * SR): int(t1 * SR)]
    spec = np.abs(np.fft.rfft(seg * np.hanning(seg.size), n=8 * seg.size))
    return np.fft.rfftfreq(8 * seg.size, 1 / SR)[np.argmax(spec)]


def test_three_debian_soundfonts_are_found():
    names = {f.name for f in available_soundfonts()}
    assert {"fluidr3_gm", "timgm6mb", "musescore_general_lite"} <= names
    assert get_soundfont("timgm6mb").path.is_file()
    with pytest.raises(RenderError, match="nosuchfont"):
        get_soundfont("nosuchfont")


@pytest.mark.parametrize("font", [f.name for f in available_soundfonts()])
def test_a4_renders_at_440_hz(font):
    y = render_midi(one_note(), get_soundfont(font), sample_rate=SR)
    assert y.dtype == np.float32 and y.ndim == 1
    # 1.1 s of notes + at most 1 s of release tail
    assert 1.1 * SR <= y.size <= 2.1 * SR + 1
    assert np.max(np.abs(y)) == pytest.approx(0.9, abs=1e-6)   # peak-normalised
    assert np.sqrt(np.mean(y[: int(0.08 * SR)] ** 2)) < 1e-3    # silent before the onset
    assert dominant_hz(y, 0.3, 1.0) == pytest.approx(440.0, rel=0.01)


def test_pitch_follows_the_note_number():
    y = render_midi(one_note(pitch=57), get_soundfont("timgm6mb"), sample_rate=SR)  # A3
    assert dominant_hz(y, 0.3, 1.0) in (pytest.approx(220.0, rel=0.01),
                                        pytest.approx(440.0, rel=0.01))
    assert dominant_hz(y, 0.3, 1.0) != pytest.approx(440.0 * 2 ** (2 / 12), rel=0.01)


def test_humanised_render_is_seeded_and_reproducible():
    rng = np.random.default_rng(0)
    pm = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(0)
    for k in range(12):
        inst.notes.append(pretty_midi.Note(80, int(rng.integers(55, 80)), 0.2 * k, 0.2 * k + 0.3))
    pm.instruments.append(inst)
    before = [(n.start, n.velocity) for n in inst.notes]
    h = Humanize(tempo_jitter=0.05, timing_jitter_s=0.02, velocity_jitter=8, reverb=0.3)
    font = get_soundfont("timgm6mb")
    a = render_midi(pm, font, humanize=h, seed=5)
    b = render_midi(pm, font, humanize=h, seed=5)
    c = render_midi(pm, font, humanize=h, seed=6)
    assert a.tobytes() == b.tobytes()
    assert a.size != c.size or a.tobytes() != c.tobytes()
    assert [(n.start, n.velocity) for n in inst.notes] == before  # caller's MIDI untouched


def test_humanize_rejects_bad_values():
    with pytest.raises(RenderError, match="tempo_jitter"):
        Humanize(tempo_jitter=1.5)
    with pytest.raises(RenderError, match="reverb"):
        Humanize(reverb=-0.1)


def test_timeout_is_a_render_error():
    with pytest.raises(RenderError, match="longer than"):
        render_midi(one_note(end=30.0), get_soundfont("timgm6mb"), timeout_s=0.001)


ABC = """X:1
T:test
M:4/4
L:1/8
Q:1/4=120
K:G
V:1 treble nm="Violin" snm="Vln."
V:2 bass
V:1
GABc d2 d2|e4 d4|]
V:2
G,,4 D,4|C,4 G,,4|]
"""

# 40,000 more bars: a score music21 takes minutes to parse, the honest stand-in for a hung
# parse. (Patching the parser in this process would not reach the fork server's children.)
LONG_ABC_BODY = "cdef gabc' | c'bag fedc |\n" * 20_000


def test_split_abc_voices_moves_definitions_out_of_the_header():
    header, voices = split_abc_voices(ABC)
    assert not any(ln.startswith("V:") for ln in header)
    assert header[-1] == "K:G"
    assert [v[0] for v in voices] == ["1", "2"]
    assert 'nm="Violin"' in voices[0][1]
    assert voices[1][2] == ["G,,4 D,4|C,4 G,,4|]"]


def test_abc_to_midi_notes_times_and_programs():
    midi = score_to_midi(ABC, instrumentation="Keyboard")
    violin, low = midi.instruments
    assert violin.program == 40            # the part's own name wins ("Violin")
    assert low.program == INSTRUMENTATION_PROGRAMS["Keyboard"][0]
    # eighth = 0.25 s at 120 bpm; G4 A4 B4 C5 D5
    assert [n.pitch for n in violin.notes[:5]] == [67, 69, 71, 72, 74]
    assert [round(n.start, 3) for n in violin.notes[:5]] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert [n.pitch for n in low.notes] == [43, 50, 48, 43]
    assert midi.get_end_time() == pytest.approx(4.0)
    chamber = score_to_midi(ABC, instrumentation="Chamber")
    assert chamber.instruments[1].program == INSTRUMENTATION_PROGRAMS["Chamber"][1]


def test_musicxml_and_midi_files(tmp_path):
    from music21 import note, stream

    s = stream.Stream()
    for p in ("C4", "E4", "G4"):
        s.append(note.Note(p, quarterLength=1.0))
    xml = tmp_path / "s.musicxml"
    s.write("musicxml", fp=str(xml))
    midi = score_to_midi(xml, instrumentation="Choral")
    assert [n.pitch for n in midi.instruments[0].notes] == [60, 64, 67]
    assert midi.instruments[0].program == INSTRUMENTATION_PROGRAMS["Choral"][0]
    mid = tmp_path / "one.mid"
    one_note(program=73).write(str(mid))
    assert score_to_midi(mid).instruments[0].program == 73
    assert score_to_midi(mid, instrumentation="Keyboard").instruments[0].program == 0


def test_bad_input_raises_render_error(tmp_path):
    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"not a midi file")
    with pytest.raises(RenderError, match="bad.mid"):
        score_to_midi(bad)
    with pytest.raises(RenderError, match="instrumentation"):
        score_to_midi(ABC, instrumentation="Kazoo Band")


def test_commas_in_quoted_text_do_not_lose_a_voice():
    # RhythGen writes tempo words like "^Lento, etwas lang"; music21 10.5 rejected the voice
    from musicbrain_cli.data.render import quoted_without_commas

    assert quoted_without_commas('"^Lento, etwas" C,2 "Am" c,|') == '"^Lento  etwas" C,2 "Am" c,|'
    assert quoted_without_commas('w: one, two') == 'w: one, two'
    midi = score_to_midi('X:1\nL:1/8\nM:4/4\nK:D\n"^Lento, etwas lang" c8|d8|]\n')
    notes = sorted((round(n.start, 3), n.pitch) for i in midi.instruments for n in i.notes)
    assert notes == [(0.0, 73), (2.0, 74)]  # C sharp, D at 120 bpm


def test_bounded_parse_returns_exactly_the_in_process_midi(tmp_path):
    from musicbrain_cli.data.render import score_to_midi_bounded

    path = tmp_path / "piece.abc"
    path.write_text(ABC)
    here = score_to_midi(path, instrumentation="Chamber")
    there = score_to_midi_bounded(path, instrumentation="Chamber", timeout_s=60)
    assert [(i.program, i.name) for i in there.instruments] == \
        [(i.program, i.name) for i in here.instruments]
    for a, b in zip(here.instruments, there.instruments):
        assert [(n.start, n.end, n.pitch, n.velocity) for n in a.notes] == \
            [(n.start, n.end, n.pitch, n.velocity) for n in b.notes]
    assert there.get_tempo_changes()[1][0] == pytest.approx(here.get_tempo_changes()[1][0])


def test_a_cached_parse_is_the_parse_to_the_last_bit(tmp_path, monkeypatch):
    """A build that resumes from the parse cache must render exactly what an uninterrupted
    one did: the cache holds the parse's own numbers (a MIDI file would round note times and
    tempo to its ticks), it is read instead of parsing again, and a damaged one is parsed
    anew."""
    import pretty_midi

    from musicbrain_cli.data import render

    path = tmp_path / "piece.abc"
    # a tempo whose beat is no whole number of MIDI ticks' microseconds, and triplets
    path.write_text("X:1\nT:t\nM:3/4\nL:1/8\nQ:1/4=93\nK:G\n(3GAB (3cde d2|g2 f2 e2|d6|]\n")
    cache = tmp_path / "cache" / "piece.npz"

    def numbers(midi):
        return ([(i.program, i.is_drum, i.name) for i in midi.instruments],
                [[(n.start, n.end, n.pitch, n.velocity) for n in i.notes]
                 for i in midi.instruments], midi.get_tempo_changes()[1].tolist())

    fresh = render.score_to_midi_bounded(path, instrumentation="Chamber", timeout_s=60)
    first = render.score_to_midi_bounded(path, instrumentation="Chamber", timeout_s=60,
                                         cache=cache)
    assert cache.is_file() and numbers(first) == numbers(fresh)
    calls = []
    monkeypatch.setattr(render, "_parse_bounded", lambda *a: calls.append(a))
    again = render.score_to_midi_bounded(path, instrumentation="Chamber", cache=cache)
    assert calls == [] and numbers(again) == numbers(fresh)
    # what a MIDI file would have given instead: not the same numbers
    midi_file = tmp_path / "piece.mid"
    fresh.write(str(midi_file))
    assert numbers(pretty_midi.PrettyMIDI(str(midi_file))) != numbers(fresh)
    monkeypatch.undo()
    cache.write_bytes(b"PK\x03\x04 damaged")
    mended = render.score_to_midi_bounded(path, instrumentation="Chamber", cache=cache)
    assert numbers(mended) == numbers(fresh)
    with np.load(cache, allow_pickle=False) as z:             # rewritten, plain arrays
        assert z["notes"].dtype == np.float64


def test_a_parse_that_hangs_is_stopped_and_a_bad_one_reports_why(tmp_path):
    import time

    from musicbrain_cli.data.render import score_to_midi_bounded

    path = tmp_path / "piece.abc"
    path.write_text(ABC + LONG_ABC_BODY)  # music21 parses it for tens of seconds
    t0 = time.monotonic()
    with pytest.raises(RenderError, match="took longer than 0.5 s"):
        score_to_midi_bounded(path, timeout_s=0.5)
    assert time.monotonic() - t0 < 10
    path.write_text(ABC)
    with pytest.raises(RenderError, match="Kazoo Band"):
        score_to_midi_bounded(path, instrumentation="Kazoo Band", timeout_s=60)


def test_a_parse_child_starts_from_a_clean_process_not_a_copy_of_the_caller(tmp_path, monkeypatch):
    """Builds start parses from worker threads. A child *forked* from such a process copies
    its memory at that instant, locks other threads hold included, and can sleep on one of
    them until the deadline (CI saw every NotaGen parse of a build fail so). The child is
    forked from a single-threaded fork server instead, so what the caller's process holds
    at that moment, here a parser patched to hang, does not reach it."""
    import time

    from musicbrain_cli.data import render
    from musicbrain_cli.data.render import score_to_midi_bounded

    path = tmp_path / "piece.abc"
    path.write_text(ABC)
    monkeypatch.setattr(render, "_abc_to_score", lambda text: time.sleep(30))
    midi = score_to_midi_bounded(path, instrumentation="Chamber", timeout_s=20)
    assert sum(len(i.notes) for i in midi.instruments) > 0
