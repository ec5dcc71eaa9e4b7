"""The symbolic line's training material: notes transcribed from a reference corpus's clips.

Rows (``manifest.csv`` of a reference corpus, :mod:`musicbrain_cli.data.reference`): every
human clip, and every AI clip whose generator writes scores (the built-in symbolic
generators, RhythGen/NotaGen). Audio-domain AI (the neural codec's re-syntheses of human
arrangements) is left out: its notes are a human's, so they would teach the line nothing
about how AI writes music.

The notes come from the clip's audio, decoded the way a scan decodes (mono, at the content
model's 22,050 Hz), first :data:`WINDOW_S` seconds, transcribed by basic-pitch: exactly what
the line sees at scan time, never the MIDI the clip was rendered from. Each clip's notes are
cached as ``<cache>/<clip_id>.npy`` (``[n, 3]`` float32: start, end, MIDI pitch), keyed by the
corpus's content through ``cache.json``.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import re
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from musicbrain_cli.errors import InputError

#: The symbolic line reads windows of this length (the content model's window).
WINDOW_S = 10.0
#: The sample rate notes are transcribed at (the content model's and basic-pitch's own).
SAMPLE_RATE = 22050
#: AI generators whose output is audio made from a human's notes: not symbolic evidence.
AUDIO_DOMAIN_GENERATORS = frozenset({"neural-codec"})
_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,200}$")


def symbolic_rows(manifest: str | Path) -> list[dict]:
    """The manifest rows the symbolic line trains and is measured on (module doc)."""
    with open(manifest, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    keep = []
    for r in rows:
        if r.get("source") == "human" or (r.get("source") == "ai"
                                          and r.get("generator") not in AUDIO_DOMAIN_GENERATORS):
            if not _SAFE_ID.match(r.get("clip_id", "")):
                raise InputError(f"{manifest}: unsafe clip_id {r.get('clip_id')!r}")
            path = Path(r.get("path", ""))
            if path.is_absolute() or ".." in path.parts or not path.parts:
                raise InputError(f"{manifest}: clip {r['clip_id']} has a path outside the corpus: "
                                 f"{r.get('path')!r}")
            keep.append(r)
    return keep


def corpus_key(manifest: str | Path) -> str:
    """A short digest of the manifest: cached notes belong to exactly this corpus."""
    return hashlib.sha256(Path(manifest).read_bytes()).hexdigest()[:16]


def transcribe_clip(path: str, transform=None) -> np.ndarray:
    """basic-pitch notes of the first :data:`WINDOW_S` s of one audio file, ``[n, 3]``;
    ``transform(y, SAMPLE_RATE) -> y'`` is applied to those samples first (a re-encoding, a
    pitch shift: what the audio may have gone through), and its output cut to the window."""
    from musicbrain_cli.alignment.pitch import basic_pitch_notes
    from musicbrain_cli.audio.intake import load_audio

    y = load_audio(path, sample_rate=SAMPLE_RATE, max_duration_s=WINDOW_S)
    if transform is not None and y.size:
        y = np.asarray(transform(y, SAMPLE_RATE), np.float32)[:int(WINDOW_S * SAMPLE_RATE)]
    notes = basic_pitch_notes(y, SAMPLE_RATE) if y.size else []
    return np.array([(n.start, n.end, n.pitch) for n in notes], np.float32).reshape(-1, 3)


def _one(args: tuple[str, str]) -> tuple[str, np.ndarray | None, str | None]:
    clip_id, path = args
    try:
        return clip_id, transcribe_clip(path), None
    except Exception as exc:  # noqa: BLE001 - one bad clip is reported, not fatal
        return clip_id, None, f"{type(exc).__name__}: {exc}"


def transcribe_corpus(root: str | Path, rows: Iterable[dict], cache_dir: str | Path, *,
                      jobs: int = 1, on_progress: Callable[[int, int], None] | None = None
                      ) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Notes of every row's clip, from ``cache_dir`` or transcribed into it.

    Returns ``({clip_id: notes}, {clip_id: why it failed})``. The cache is tied to the
    manifest (``cache.json`` holds its digest); a cache of another corpus is refused.
    """
    root, cache = Path(root), Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    key = corpus_key(root / "manifest.csv")
    stamp = cache / "cache.json"
    if stamp.exists():
        try:
            held = json.loads(stamp.read_text()).get("corpus")
        except (ValueError, AttributeError) as exc:
            raise InputError(f"{stamp} is not a notes cache's stamp ({exc}); use an empty folder") from exc
        if held != key:
            raise InputError(f"{cache} holds notes of another corpus ({held}, not {key}); "
                             "use an empty folder")
    else:
        stamp.write_text(json.dumps({"corpus": key, "window_s": WINDOW_S,
                                     "sample_rate": SAMPLE_RATE}) + "\n")
    rows = list(rows)
    notes: dict[str, np.ndarray] = {}
    todo = []
    for r in rows:
        f = cache / f"{r['clip_id']}.npy"
        if f.exists():
            notes[r["clip_id"]] = np.load(f, allow_pickle=False)
        else:
            todo.append((r["clip_id"], str(root / r["path"])))
    failed: dict[str, str] = {}
    done = len(rows) - len(todo)
    if on_progress:
        on_progress(done, len(rows))
    with contextlib.ExitStack() as stack:
        if jobs <= 1:
            results = map(_one, todo)
        else:
            results = stack.enter_context(ProcessPoolExecutor(jobs)).map(_one, todo, chunksize=8)
        for clip_id, arr, why in results:
            done += 1
            if arr is None:
                failed[clip_id] = why or "unknown error"
            else:
                np.save(cache / f"{clip_id}.npy", arr, allow_pickle=False)
                notes[clip_id] = arr
            if on_progress:
                on_progress(done, len(rows))
    return notes, failed
