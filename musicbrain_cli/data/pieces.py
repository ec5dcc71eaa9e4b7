"""Render one whole piece and write it as consecutive clips: shared by every adapter.

A piece is rendered once, in one FluidSynth call (the SoundFont loads once, and notes
ringing across a clip boundary sound as they would in the piece), then cut. With
humanisation, the *performed* MIDI (jittered) is what gets rendered and what is stored
beside each clip, so score and audio stay aligned note for note.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io

import numpy as np

from musicbrain_cli.errors import RenderError
from musicbrain_cli.data.dataset import (ClipRecord, DatasetWriter, origin_fragment,
                                             plan_clips, slice_midi)
from musicbrain_cli.data.render import (RELEASE_TAIL_S, Humanize, SoundFont,
                                            humanize_midi, render_midi)


def write_piece(writer: DatasetWriter, midi, template: ClipRecord, *, clip_prefix: str,
                item: str, soundfont: SoundFont, seed: int, sample_rate: int,
                clip_s: float, humanize: Humanize | None = None) -> int:
    """Render ``midi`` and add its clips ``<clip_prefix>-000, -001, ...``; returns how many.

    ``template`` carries the labels, work id and split shared by every clip. The clip plan
    depends only on the performed MIDI's length, so a rerun knows every clip id before
    rendering and skips the piece when all exist. ``origin`` is ``item#t=start,end``.
    """
    performed = midi
    reverb_only = None
    if humanize is not None and humanize.active:
        performed = humanize_midi(midi, humanize, seed=seed)
        reverb_only = Humanize(reverb=humanize.reverb)
    end_s = performed.get_end_time()
    plan = plan_clips(end_s + RELEASE_TAIL_S, clip_s=clip_s) if end_s > 0 else []
    if not plan:
        raise RenderError("the piece holds no notes")
    ids = [f"{clip_prefix}-{k:03d}" for k in range(len(plan))]
    source = piece_fingerprint(performed, soundfont, reverb=reverb_only)
    drop_changed(writer, clip_prefix, source, keep=ids)
    for c in ids:       # clips of an earlier run take this run's labels
        if writer.has(c):
            writer.relabel(c, template)
    if all(writer.has(c) for c in ids):
        return 0
    audio = render_midi(performed, soundfont, sample_rate=sample_rate, humanize=reverb_only,
                        seed=seed)
    need = int(round(plan[-1][1] * sample_rate))
    if audio.size < need:  # FluidSynth's release ended before the planned tail: pad silence
        audio = np.concatenate([audio, np.zeros(need - audio.size, dtype=audio.dtype)])
    written = 0
    for clip_id, (t0, t1) in zip(ids, plan):
        if writer.has(clip_id):
            continue
        a, b = int(round(t0 * sample_rate)), int(round(t1 * sample_rate))
        clip = audio[a:b]
        record = dataclasses.replace(template, clip_id=clip_id, renderer=soundfont.name,
                                     origin=origin_fragment(item, t0, t1),
                                     score=slice_midi(performed, t0, t1))
        writer.add(record, clip, source=source)
        written += 1
    return written


def piece_fingerprint(performed, soundfont: SoundFont, *, reverb: Humanize | None = None) -> str:
    """SHA-256 of what a piece's clips are made from: the performed MIDI's bytes (the seed
    and the note-level humanisation act through it), the SoundFont's name and file, and the
    synthesiser's reverb level (which acts at rendering, not through the MIDI)."""
    buf = io.BytesIO()
    performed.write(buf)
    digest = hashlib.sha256(buf.getvalue())
    level = reverb.reverb if reverb is not None else 0.0
    digest.update(f"\0{soundfont.name}\0{_file_sha256(soundfont.path)}\0{level!r}".encode("utf-8"))
    return digest.hexdigest()


@functools.lru_cache(maxsize=16)
def _file_sha256(path) -> str:
    """A SoundFont's SHA-256, once per process (FluidR3 is 140 MB)."""
    from musicbrain_cli.files import sha256_file

    try:
        return sha256_file(path)
    except OSError:
        return "unreadable"


def drop_changed(writer: DatasetWriter, clip_prefix: str, source: str, *, keep: list[str]) -> None:
    """Remove the clips an earlier run wrote of this piece when they were made from another
    source (an edited ABC or score, another SoundFont), and those the piece no longer has
    (it got shorter): a resumed build would otherwise keep them as this piece's clips.
    Clips written before fingerprints were kept are left as they are."""
    earlier = writer.clip_ids(clip_prefix + "-")
    changed = any(writer.source_of(c) not in (None, source) for c in earlier)
    for c in earlier:
        if changed:
            writer.drop(c, "its piece changed since it was written (another score or "
                           "SoundFont); made again")
        elif c not in keep and writer.source_of(c) is not None:
            writer.drop(c, "its piece no longer reaches this clip")


def drop_unbuilt(writer: DatasetWriter, built: set[str]) -> int:
    """Remove the clips an earlier run wrote of pieces this run did not build (``built``:
    the clip prefixes of the pieces it did; the others' source was removed, left out by
    ``--limit``, or failed this time: see ``skipped``), so that the data set holds what its
    inputs hold now. Returns how many were removed."""
    gone = [c for c in writer.clip_ids() if c.rsplit("-", 1)[0] not in built]
    for c in gone:
        writer.drop(c, "its piece is no longer built from the inputs (removed, left out by "
                       "--limit, or failed this run: see skipped)")
    return len(gone)
