"""scripts/render_scores.py: each score (MIDI, or MusicXML through music21) rendered with every
corpus SoundFont, cut to the seconds asked for (scores made here)."""

import numpy as np
import soundfile as sf
from conftest import script_module


def test_scores_are_rendered_with_every_soundfont_and_cut(tmp_path):
    import music21
    import pretty_midi

    from musicbrain_cli.data.render import available_soundfonts

    midi = pretty_midi.PrettyMIDI()
    piano = pretty_midi.Instrument(program=0)
    for i, pitch in enumerate([60, 62, 64, 65, 67, 69, 71, 72]):
        piano.notes.append(pretty_midi.Note(velocity=90, pitch=pitch, start=0.5 * i, end=0.5 * i + 0.45))
    midi.instruments.append(piano)
    (tmp_path / "in" / "sub").mkdir(parents=True)
    midi.write(str(tmp_path / "in" / "scale.mid"))
    stream = music21.stream.Stream([music21.note.Note(p, quarterLength=1) for p in ("C4", "E4", "G4")])
    stream.write("musicxml", fp=str(tmp_path / "in" / "sub" / "triad.xml"))
    (tmp_path / "in" / "notes.txt").write_text("not a score")

    with script_module("scripts/render_scores.py", "render_scores") as script:
        found = script.scores([tmp_path / "in"])
        assert [p.name for p in found] == ["scale.mid", "triad.xml"]
        written = script.render_all(found, tmp_path / "out", seconds=2.0, rate=22050, log=lambda *_: None)
    fonts = [f.name for f in available_soundfonts()]
    assert sorted(p.name for p in written) == sorted(f"{stem}-{font}.flac" for stem in ("scale", "triad")
                                                     for font in fonts)
    for p in written:
        y, sr = sf.read(p)
        assert sr == 22050 and 0 < len(y) <= 2 * 22050 and np.abs(y).max() > 0.01
