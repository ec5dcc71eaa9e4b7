"""The batch forensic scan: files -> verdicts, explanations and signed evidence reports.

Per track, data flows one way::

    path -> audio.intake.probe / .stream -> features.FrontEnd -> model (logits, embedding)
         -> verdict (calibrated P(AI), abstention, out-of-domain)
         -> explain.FMGradCAM on the most decisive windows -> alignment (partials, onsets)
         -> report (figures, HTML/PDF, manifest, signatures)

:func:`analyse_track` is a pure function of (file, model, options): the same inputs give
the same numbers (the analysis time is the only clock it reads), so a distributed engine
could map it over a cluster and ``verify --reproduce`` can re-run it. :func:`scan` adds the
batch behaviour: discovery, resumability, atomic per-track folders, the catalog summary.

Memory is bounded by a window: a track is streamed, and only per-window probabilities,
embeddings and the few candidate windows for explanation are kept. The working sets of the
forward passes, the CAM and the reports are handed back to the OS after each
(:func:`release_freed_memory`), so that they do not add up in the resident set.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import functools
import heapq
import json
import math
import os
import platform
import shutil
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np

from musicbrain_cli import __version__
from musicbrain_cli.errors import InputError, MusicBrainError, ReportError
from musicbrain_cli.progress import NULL_PROGRESS, Progress
from musicbrain_cli.model.card import untrained_labels
from musicbrain_cli.scan.documents import render_track_documents
from musicbrain_cli.scan.discovery import (TMP_PREFIX, Discovery, discover, safe_name,
                                          same_audio_and_stem, shown_path)
from musicbrain_cli.taxonomy import DETECTION_GROUP, DETECTION_LABEL

if TYPE_CHECKING:
    import torch

TRACK_SCHEMA = "musicbrain.track/1"
RESULT_JSON = "result.json"
#: The output folder's advisory lock (``fcntl.flock``): one scan at a time per folder. The
#: file stays (removing it would let a third scan lock a new file while the second holds the
#: old one); it holds the holder's pid and host for the message of the scan that waits.
LOCK_NAME = ".musicbrain-scan.lock"
#: Highest file rate whose first seconds the scan's decode keeps for the decoder-artifact
#: line (48 kHz: 180 s are 35 MB); a 384 kHz file would hold 276 MB through the forward passes.
NATIVE_TAP_MAX_RATE = 48_000
ARTIFACT_FIGURE = "artifact_residue.png"
#: Why the style attribution of a track with no judged window is withheld (the report reads
#: "Style attribution withheld: <this>."; verdict.NEAR_SILENT says why no window is judged).
NOTHING_JUDGED = ("no analysis window holds enough music to judge (each is near-silent, or "
                  "silent over at least a quarter of it where the music begins or ends), so "
                  "the style scores, taken from those windows, are not evidence")
SYMBOLIC_FIGURE = "symbolic_notes.png"

LIMITATIONS = (
    "The verdict is a statistical estimate from a model trained on a reference corpus; its "
    "known error rates are stated above and apply to music like the training data.",
    "A heatmap shows which time-frequency regions most changed the model's output; it does "
    "not prove how the music was made, and regions outside it may also matter.",
    "Tags and encoder strings are weak evidence: they are trivially edited. A C2PA manifest "
    "counts only as far as the provenance line states (validated, and accusing only from a "
    "trusted signer).",
    "Re-encoding, heavy processing, or music unlike the training data can change the "
    "model's output; such inputs should be judged inconclusive.",
)


@dataclass(frozen=True)
class ScanOptions:
    """Tunables of a scan; recorded in every report so the analysis can be repeated."""

    formats: tuple[str, ...] = ("pdf",)
    top_k: int = 3                  # labels explained per window (FM-G-CAM)
    explain_windows: int = 3        # most decisive windows explained per track
    top_labels_per_group: int = 3   # style labels listed per group
    batch_size: int = 8
    decode_timeout_s: float = 600.0
    jobs: int = 1                   # >1: report rendering runs beside inference
    #: with ``jobs`` > 1 and several tracks: render each report's documents in ``jobs - 1``
    #: child processes instead of threads (scan.documents; the CLI does); signing stays here
    render_processes: bool = False
    force: bool = False
    tsa_url: str | None = None
    #: PEM bundle of the C2PA signers' roots to trust (None: no signer is verified, so a
    #: manifest's AI declaration can block a human verdict but never make an ai one)
    trust_anchors: str | None = None
    #: note estimator for the alignment checks (alignment.pitch.NOTE_ESTIMATORS). "auto" by
    #: default: basic-pitch (a dependency since the symbolic line needs it; note onset F 0.61
    #: against the built-in estimator's 0.44), the built-in one where an install lacks it;
    #: "basic-pitch" insists on it, "builtin" asks for the built-in one. Which one ran, and
    #: why a requested one did not, is recorded in result.json.
    notes: str = "auto"
    #: period (frames) of the network's stride pattern divided out of the refined FM-G-CAM
    #: maps (explain.fmgcam.DEFAULT_DESTRIPE; 0 keeps it, as results made before it did)
    destripe: int = 32

    def __post_init__(self) -> None:
        from musicbrain_cli.alignment.pitch import check_note_estimator

        bad = set(self.formats) - {"pdf", "html"}
        if bad:
            raise InputError(f"unknown report format(s) {sorted(bad)}; use pdf, html or both")
        check_note_estimator(self.notes)
        for name in ("top_k", "explain_windows", "batch_size", "jobs", "destripe"):
            if getattr(self, name) < (0 if name in ("explain_windows", "destripe") else 1):
                raise InputError(f"{name} must be positive, got {getattr(self, name)!r}")

    def analysis_dict(self) -> dict:
        """The options that change the analysis (not where or how it is written)."""
        from musicbrain_cli.audio.intake import sha256_file

        return {"top_k": self.top_k, "explain_windows": self.explain_windows,
                "top_labels_per_group": self.top_labels_per_group,
                "batch_size": self.batch_size, "notes": self.notes, "destripe": self.destripe,
                "c2pa_trust_anchors_sha256": (sha256_file(self.trust_anchors)
                                              if self.trust_anchors else None)}


# --- per-track analysis ---------------------------------------------------------------------


@dataclass
class _Candidate:
    """A window kept for explanation, ranked by how strongly it supports the verdict side."""

    index: int
    start_s: float
    spec: "torch.Tensor"     # [1, F, T]
    samples: np.ndarray      # [n]
    n_valid: int             # samples of the recording in it; the rest repeats them (a short track)


@dataclass
class TrackAnalysis:
    track: dict
    explain: list[dict]              # arrays for the FM-G-CAM figures, rendered off-thread
    timings: dict[str, float] = field(default_factory=dict)


class _Timer:
    def __init__(self) -> None:
        self.totals: dict[str, float] = {}

    def add(self, stage: str, seconds: float) -> None:
        self.totals[stage] = self.totals.get(stage, 0.0) + seconds


def compute_device(device) -> str:
    """The device the network ran on, as a report records it: ``cpu``, or ``cuda:N`` with
    the card's name (``--device auto`` is resolved: the float arithmetic differs by card)."""
    import torch

    device = torch.device(device)
    if device.type != "cuda":
        return device.type
    index = device.index if device.index is not None else torch.cuda.current_device()
    return f"cuda:{index} ({torch.cuda.get_device_name(index)})"


def software_versions(device=None) -> dict[str, str]:
    """Versions of everything whose arithmetic reaches a figure of the report, and the
    device the network ran on (``device``: a torch device; left out when ``None``).

    ``verify --reproduce`` names each one that differs from the installed version (or the
    device it ran on); the exact set is reinstallable from ``requirements.lock``.
    """
    import av
    import librosa
    import scipy
    import timm
    import torch

    from musicbrain_cli.files import installed_version

    return {"musicbrain": __version__, "python": platform.python_version(),
            "torch": str(torch.__version__), "timm": timm.__version__, "numpy": np.__version__,
            "scipy": scipy.__version__, "librosa": librosa.__version__,
            "pyav": av.__version__,
            "libavcodec": ".".join(str(x) for x in av.library_versions["libavcodec"]),
            # lays the PDF out: verify --reproduce lays it out again with the same one
            "weasyprint": installed_version("weasyprint"),
            # the notes the symbolic line scores and the alignment checks: basic-pitch's model,
            # run by onnxruntime (a review found neither recorded)
            "basic-pitch": installed_version("basic-pitch"),
            "onnxruntime": installed_version("onnxruntime"),
            # the report's figures (their PNG bytes are compared by verify --reproduce)
            "matplotlib": installed_version("matplotlib"),
            # validates a C2PA manifest: the provenance line's finding
            "c2pa-python": installed_version("c2pa-python"),
            # oneDNN splits the network's work by thread count, so the last float bits of the
            # logits and the FM-G-CAM maps (and the bytes of their figures) follow it: a Ray
            # task runs with one thread, the CLI with one per core; verify --reproduce re-runs
            # with the recorded count (scan.reproduce)
            "torch_threads": str(torch.get_num_threads()),
            **({"device": compute_device(device)} if device is not None else {})}


def model_facts(detector) -> dict:
    card = detector.card
    files = getattr(detector, "file_sha256", None) or {}
    return {"name": card.get("name", "unnamed"), "version": card.get("version", ""),
            "weights_sha256": card.get("weights_sha256", ""),
            # the card (calibration, operating point, policy) and the domain statistics are
            # covered by no pin: their hashes name what decided the verdict (review)
            **({"card_sha256": files.get("card"), "ood_sha256": files.get("ood")} if files else {}),
            "backbone": detector.config.backbone,
            "front_end": detector.config.front_end.to_dict(),
            "calibration": card.get("calibration", {}),
            "thresholds": card.get("thresholds", {})}


def _identity(path: str | os.PathLike) -> tuple[int, ...] | None:
    """What changes when a file is replaced or written to: device, inode, size, mtime."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def analyse_track(path: str | os.PathLike, detector, *, options: ScanOptions = ScanOptions(),
                  command_line: Sequence[str] = (),
                  analysis_time: str | None = None) -> TrackAnalysis:
    """Analyse one file with ``detector``; raises :class:`MusicBrainError` on bad input.

    The model stage is :meth:`Detector.predict_track` and the verdict
    :func:`musicbrain_cli.verdict.track_verdict`, the path ``evaluate`` and ``robustness``
    take too; the detector's own out-of-domain statistics (``detector.ood``) feed the
    domain check (``None``: no check, said in the report). ``analysis_time`` (ISO 8601,
    UTC) defaults to now; it is the only input that is not part of (file, model, options).
    """
    from musicbrain_cli.artifacts.spectrum import MAX_ANALYSIS_S
    from musicbrain_cli.audio.intake import MIN_RATE, iter_windows, probe, seconds_to_samples, stream
    from musicbrain_cli.verdict import track_verdict

    timer = _Timer()
    fe = detector.config.front_end
    t0 = time.perf_counter()
    before = _identity(path)
    info = probe(path, trust_anchors=options.trust_anchors)
    timer.add("decode", time.perf_counter() - t0)

    keep: list[tuple[float, int, _Candidate]] = []        # heaps of the most decisive windows
    keep_low: list[tuple[float, int, _Candidate]] = []
    det_idx = detector.taxonomy.index(DETECTION_LABEL)

    symbolic_at = symbolic_window_indices(info.duration_s, fe.window_s, fe.hop_s)
    symbolic_windows: list[tuple[int, float, np.ndarray]] = []
    # the latest window on the symbolic line's grid: where the music ends before the header's
    # duration, the picks past the last window give way to it (symbolic_window_indices)
    grid_tail: list[tuple[int, float, np.ndarray]] = []
    step = symbolic_step(fe.window_s, fe.hop_s)

    def remember(windows, spec, out) -> None:
        for w, s, lg in zip(windows, spec, out.logits):
            if not w.padded:
                if w.index in symbolic_at:
                    symbolic_windows.append((w.index, w.start_s, w.samples))
                if w.index % step == 0:
                    grid_tail[:] = [(w.index, w.start_s, w.samples)]
            if w.quiet:
                continue                 # not judged, so not explained (intake.quiet_window)
            cand = _Candidate(w.index, w.start_s, s.clone(), w.samples, w.n_valid)
            _push(keep, (float(lg[det_idx]), w.index, cand), options.explain_windows)
            _push(keep_low, (-float(lg[det_idx]), w.index, cand), options.explain_windows)

    # The decoder-artifact line reads the first MAX_ANALYSIS_S at the file's own rate: the
    # same decode keeps them instead of a second one, up to NATIVE_TAP_MAX_RATE (35 MB held
    # through the forward passes); a higher-rate file is read again by the line itself.
    rate = info.sample_rate
    native_n = (seconds_to_samples(MAX_ANALYSIS_S, rate)
                if isinstance(rate, int) and MIN_RATE <= rate <= NATIVE_TAP_MAX_RATE else 0)
    audio = stream(path, sample_rate=fe.sample_rate, timeout_s=options.decode_timeout_s,
                   native_samples=native_n)
    with audio:
        prediction = detector.predict_track(audio, batch_size=options.batch_size,
                                            on_batch=remember, timings=timer.totals)
    release_freed_memory()
    if audio.stats is not None:
        info = info.with_stats(audio.stats)
    # The symbolic windows were chosen from the header's duration, before the decode; a header
    # that understates it (an MP3's Xing frame count) or states none left them on the first
    # seconds. Spread over what was decoded, reading the file once more only when they move;
    # capped at the windows the decode gave (silence at the edges is not windowed), the last
    # window of the grid, kept as it passed, standing in for the picks past it.
    n_read = prediction.n_windows
    wanted = symbolic_window_indices(info.decoded_duration_s or info.duration_s, fe.window_s,
                                     fe.hop_s, n_windows=n_read)
    planned = symbolic_window_indices(info.duration_s, fe.window_s, fe.hop_s, n_windows=n_read)
    if info.decoded_duration_s and wanted != planned:
        t = time.perf_counter()
        symbolic_windows = [(w.index, w.start_s, w.samples)
                            for w in iter_windows(path, sample_rate=fe.sample_rate, window_s=fe.window_s,
                                                  hop_s=fe.hop_s, timeout_s=options.decode_timeout_s)
                            if w.index in wanted and not w.padded]
        timer.add("decode", time.perf_counter() - t)
    else:
        kept = {index: (index, start, samples) for index, start, samples in symbolic_windows + grid_tail}
        symbolic_windows = [kept[i] for i in sorted(wanted) if i in kept]

    probs, aggregate = prediction.window_probs, prediction.aggregate
    starts, padded = prediction.window_starts_s, prediction.padded
    verdict, ood_facts = track_verdict(prediction, detector)
    leaning_ai = verdict.p_ai >= verdict.threshold
    chosen = sorted((c for _, _, c in (keep if leaning_ai else keep_low)),
                    key=lambda c: -probs[c.index, det_idx] if leaning_ai else probs[c.index, det_idx])
    # basic-pitch's notes of a window, by window index, kept for the symbolic line when the
    # alignment checks transcribed the same window with it (same samples, same notes)
    transcribed: dict[int, list] = {}
    from musicbrain_cli.model.ood import attribution_withheld

    # with no window judged, the aggregate falls back to the windows not judged
    # (inference.aggregate_windows): their style scores are no more evidence than their P(AI)
    withheld = attribution_withheld(ood_facts) or (None if prediction.judged.any()
                                                   else NOTHING_JUDGED)
    explanations, explain_arrays, alignment = _explain(
        chosen, detector, options, timer, transcribed=transcribed,
        withhold_styles=bool(withheld))
    release_freed_memory()

    t = time.perf_counter()
    lines, line_figures = evidence_lines(path, info, verdict, options=options, native=audio.native(),
                                         symbolic_windows=[(start, samples, transcribed.get(index))
                                                           for index, start, samples in symbolic_windows],
                                         sample_rate=fe.sample_rate)
    timer.add("other_lines", time.perf_counter() - t)
    if _identity(path) != before:
        # the hash (taken first) and the decodes (later, by path) would be of two files
        raise InputError(f"{os.fspath(path)!r} changed while it was analysed (replaced or "
                         "written to): its hash and its verdict would belong to different "
                         "audio; scan it again once it is no longer being written")
    from musicbrain_cli.verdict import combine, real_ai_measurement

    combined = unheard_audio_verdict(combine([finding for finding, _ in lines]), info)
    real_ai = real_ai_measurement(measured_models(detector, lines), __version__)
    untrained = untrained_labels(detector.card)
    top_labels = _top_labels(aggregate, detector.taxonomy, options.top_labels_per_group,
                             (detector.card.get("metrics") or {}).get("ap") or {}, untrained)
    track = {
        "schema": TRACK_SCHEMA,
        "input": _input_facts(info, path),
        "metadata": _metadata(info.metadata),
        # The combined verdict of every evidence line; p_ai, threshold, band and error_rates
        # stay the content model's (the line whose figures the summary columns show).
        "verdict": {**verdict.to_dict(), "label": combined.label, "reasons": combined.reasons,
                    "ai_lines": combined.ai_lines, "content_label": verdict.label,
                    "error_rates": detector.card.get("error_rates", {}),
                    "measured_generators": measured_generators(detector),
                    # what this version's verdict did on real generators' music, when
                    # measured with these very models (verdict.real_ai_measurement)
                    "measured_on_real_ai": real_ai},
        "evidence": [{**finding.to_dict(), "details": details} for finding, details in lines],
        "labels": top_labels,
        "labels_untrained": sorted(untrained),
        # raw scores stay in "labels"; out of domain they are not to be shown (issue 23)
        "labels_withheld": withheld,
        "timeline": {"window_start_s": [float(s) for s in starts], "window_s": fe.window_s,
                     "p_ai": [round(float(p), 6) for p in probs[:, det_idx]],
                     "padded": [bool(p) for p in padded],
                     # silent windows: shown, not judged (intake.quiet_window)
                     "quiet": [bool(q) for q in ~prediction.judged],
                     # each window's longest stretch of silence, s (verdict.SILENCE_CUE)
                     "silence_s": [round(float(q), 3) for q in prediction.silence_s]
                     if prediction.silence_s is not None else None,
                     # each window's quietest second against its mean, dB (verdict.SOFT_CUE_DB)
                     "soft_db": [round(float(d), 3) for d in prediction.soft_db]
                     if prediction.soft_db is not None else None,
                     # the passages of sound the windows lie over; the rest is silence
                     # that was not read (intake.iter_windows)
                     "sound_s": [[round(float(a), 6), round(float(b), 6)]
                                 for a, b in (prediction.sound_s or [])]},
        "aggregate": aggregate,
        "explanations": explanations,
        "alignment": alignment,
        "ood": ood_facts,
        "robustness": detector.card.get("robustness", []),
        "model": model_facts(detector),
        "software": software_versions(detector.device),
        "command_line": list(command_line),
        "options": options.analysis_dict(),
        "analysis_time": analysis_time or _now(),
        "limitations": _limitations(ood_facts, [bool(p) for p in padded], info, detector.card,
                                    labels=top_labels, quiet=[bool(q) for q in ~prediction.judged]),
    }
    from musicbrain_cli.report.html import track_coverage

    silence = (track_coverage(track) or {}).get("silence")
    if silence:
        track["limitations"].append(
            f"{sum(b - a for a, b in silence):.1f} s of silence (no sample above -60 dBFS) "
            "before, after or between the passages of music were not read: the analysis "
            "windows lie over the music (silence read into a window had leaned the content "
            "model towards AI).")
    return TrackAnalysis(track=track, explain=explain_arrays + line_figures, timings=timer.totals)


@functools.lru_cache(maxsize=1)
def _malloc_trim():
    """glibc's ``malloc_trim``, or ``None`` where the C library has none (musl, macOS)."""
    import ctypes
    import ctypes.util

    try:
        trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


def passive_openmp() -> bool:
    """Have torch's OpenMP threads sleep between kernels instead of spinning
    (``OMP_WAIT_POLICY=PASSIVE``), unless the environment already says otherwise; True when
    set here. OpenMP reads it once, when torch loads, so a scan's entry point calls this
    before anything imports torch (it does nothing once torch is loaded). Why: in a scan the
    cores are shared with the report renderer and the decoder, and a spinning thread holds
    a core it has no work for: alone it saved 10 % of a scan's CPU on the 2-core CPU, with the
    reports rendered in a child process (scan.documents) the two made the scan about 15 %
    faster (docs/benchmarks.md, session 44). Results do not depend on it."""
    import sys

    if "torch" in sys.modules or "OMP_WAIT_POLICY" in os.environ:
        return False
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    return True


def release_freed_memory() -> None:
    """Return the heap pages freed by the stage that just ended to the OS.

    glibc keeps freed memory for reuse by the thread arena that freed it, so without this the
    forward passes' activations (about 300 MB for a batch of eight windows) stay resident
    while the CAM, the other lines and the next track's report (another thread, another
    arena) allocate their own: the peaks add up. A trim costs about 10 ms; results do not
    depend on it. Elsewhere than glibc it does nothing.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def symbolic_window_indices(duration_s: float | None, window_s: float, hop_s: float,
                            n_windows: int | None = None) -> frozenset[int]:
    """The indices of the model windows the symbolic line transcribes: up to
    :data:`~musicbrain_cli.symbolic.detector.MAX_WINDOWS` windows that do not overlap, spread
    evenly over the track (the first ones when its length is unknown).

    ``n_windows``: how many windows the decode actually gave, when known. The spread is laid
    over the duration from 0 s, but the windows lie over the music only, so silence at a
    track's edges leaves fewer of them than the duration holds: the picks past the last one
    give way to the last window of the grid (session 40: the top pick was missing and the line
    read 5 windows of 6, none of the track's end)."""
    from musicbrain_cli.symbolic.detector import MAX_WINDOWS

    step = symbolic_step(window_s, hop_s)
    n = int(max(0.0, (duration_s or 0.0) - window_s) // hop_s) + 1 if duration_s else MAX_WINDOWS * step
    candidates = list(range(0, n, step))
    if len(candidates) > MAX_WINDOWS:
        picks = np.round(np.linspace(0, len(candidates) - 1, MAX_WINDOWS)).astype(int)
        candidates = [candidates[i] for i in picks]
    if n_windows is not None and n_windows > 0:
        kept = [i for i in candidates if i < n_windows]
        if len(kept) < len(candidates):
            kept.append((n_windows - 1) // step * step)          # the last window of the grid
        candidates = kept
    return frozenset(candidates)


def symbolic_step(window_s: float, hop_s: float) -> int:
    """Windows between two of the symbolic line's: the fewest hops that do not overlap."""
    return max(1, int(math.ceil(window_s / hop_s)))


def evidence_lines(path: str | os.PathLike, info, content_verdict, *, options: ScanOptions,
                   symbolic_windows: Sequence[tuple] = (), sample_rate: int = 22050,
                   native: tuple[np.ndarray, int] | None = None
                   ) -> tuple[list[tuple[Any, dict]], list[dict]]:
    """Every evidence line's own finding on one track, the content model's first.

    Returns ``[(LineFinding, details), ...]`` and the arrays of the lines' figures (drawn
    off-thread with the FM-G-CAM figures). Each line is judged by its own operating point;
    :func:`musicbrain_cli.verdict.combine` joins them. ``symbolic_windows``: the
    ``(start_s, samples, notes or None)`` windows (mono, ``sample_rate``) the symbolic line
    reads; ``notes``: basic-pitch's notes of that window when already transcribed.
    ``native``: the first seconds of the file at its own rate, ``(samples, rate)``, as the
    content line's decode kept them (:meth:`~musicbrain_cli.audio.intake.AudioStream.native`);
    without them the artifact line decodes the file itself (the same samples).
    """
    from musicbrain_cli.verdict import (artifact_finding, content_finding, provenance_finding,
                                        symbolic_finding)

    lines = [(content_finding(content_verdict), {})]
    figures = []
    artifact_line = load_artifact_detector()
    artifacts = (artifact_line.analyse_samples(*native) if native is not None else
                 artifact_line.analyse(path, timeout_s=options.decode_timeout_s,
                                       sample_rate=info.sample_rate))
    found = artifacts.to_dict()
    details = {"artifacts": {k: v for k, v in found.items()
                             if k not in ("residue_hz", "residue_db")}}
    if artifacts.applicable:
        details["figure"] = ARTIFACT_FIGURE
        figures.append({"kind": "residue", "name": ARTIFACT_FIGURE, "finding": found})
    lines.append((artifact_finding(found), details))
    symbolic = load_symbolic_detector().assess(symbolic_windows, sample_rate,
                                               content_in_domain=content_verdict.in_domain).to_dict()
    symbolic_details = {"symbolic": symbolic}
    if any(w.get("heard") for w in symbolic.get("windows") or ()):
        symbolic_details["figure"] = SYMBOLIC_FIGURE
        figures.append({"kind": "notes", "name": SYMBOLIC_FIGURE, "finding": symbolic})
    lines.append((symbolic_finding(symbolic), symbolic_details))
    provenance = (info.metadata or {}).get("provenance")
    if provenance is not None:
        lines.append((provenance_finding(provenance), {"c2pa": provenance}))
    return lines, figures


@functools.lru_cache(maxsize=1)
def load_artifact_detector():
    """The shipped decoder-artifact line (SHA-256 checked once per process)."""
    from musicbrain_cli.artifacts.detector import ArtifactDetector

    return ArtifactDetector.from_pretrained("default")


@functools.lru_cache(maxsize=1)
def load_symbolic_detector():
    """The shipped symbolic line (SHA-256 checked once per process)."""
    from musicbrain_cli.symbolic.detector import SymbolicDetector

    return SymbolicDetector.from_pretrained("default")


def _push(heap: list, item: tuple, size: int) -> None:
    if size <= 0:
        return
    if len(heap) < size:
        heapq.heappush(heap, item)
    elif item[:2] > heap[0][:2]:
        heapq.heapreplace(heap, item)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def _figure_labels(names: Sequence[str], withhold_styles: bool) -> list[str]:
    """The labels a map figure names: out of domain the style attribution is withheld, so
    a style label's map is drawn unnamed (``result.json`` keeps its name, marked withheld)."""
    from musicbrain_cli.taxonomy import display_label

    if not withhold_styles:
        return [display_label(name) for name in names]
    out, k = [], 0
    for name in names:
        if name.startswith(f"{DETECTION_GROUP}/"):
            out.append(display_label(name))
        else:
            k += 1
            out.append(f"style label {k} (name withheld)")
    return out


def _explain(chosen: list[_Candidate], detector, options: ScanOptions, timer: _Timer, *,
             transcribed: dict[int, list] | None = None, withhold_styles: bool = False):
    """FM-G-CAM on the chosen windows, and alignment of each map with notes and onsets.
    ``withhold_styles``: the figures name no style label (:func:`_figure_labels`)."""
    if not chosen:
        return [], [], {}
    from musicbrain_cli.alignment.overlap import (HarmonicOverlap, OnsetOverlap, detect_onsets,
                                                  energy_reference, harmonic_overlap, onset_overlap)
    from musicbrain_cli.explain.fmgcam import FMGradCAM
    from musicbrain_cli.features import bin_frequencies, frame_times
    from musicbrain_cli.alignment.pitch import transcribe

    fe = detector.config.front_end
    freqs, local_times = bin_frequencies(fe), frame_times(fe)
    t = time.perf_counter()
    k = min(options.top_k, len(detector.labels))
    # One window at a time: the maps are the same as in one batch (no map depends on another
    # window), as fast on a CPU, and the graph kept for the backward passes is a window's,
    # not all of them (about 380 MB for three: the scan's peak memory with a long track).
    with FMGradCAM(detector.model, k=k, destripe=options.destripe) as cam:
        results = [cam(c.spec[None].to(detector.device), freqs=freqs, times=local_times)
                   for c in chosen]
    maps = np.concatenate([r.maps for r in results])
    map_labels = np.concatenate([r.labels for r in results])
    extra = results[0].extra
    timer.add("cam", time.perf_counter() - t)

    t = time.perf_counter()
    explanations, arrays, harm_parts, onset_parts, estimators = [], [], [], [], []
    ref_harm, ref_onset = [], []     # the same checks on the window's own energy (the reference)
    for i, cand in enumerate(chosen):
        saliency = maps[i].sum(axis=0)                               # [F, T]
        estimate = transcribe(cand.samples, fe.sample_rate, estimator=options.notes)
        notes = estimate.notes
        if transcribed is not None and estimate.estimator.startswith("basic-pitch"):
            transcribed[cand.index] = notes
        estimators.append(estimate.provenance())
        onsets = detect_onsets(cand.samples, fe.sample_rate)
        # a short track's window repeats the recording past its end: the onsets' chance is
        # counted up to its end (overlap.onset_overlap); the harmonic check reads the whole
        # window, whose notes the transcription lists in the repeat too
        heard_s = cand.n_valid / fe.sample_rate
        harm = harmonic_overlap(saliency, freqs=freqs, times=local_times, notes=notes)
        ons = onset_overlap(saliency, times=local_times, onsets=onsets, until=heard_s)
        harm_parts.append(harm)
        onset_parts.append(ons)
        ref_h, ref_o = energy_reference(cand.spec[0].numpy(), freqs=freqs, times=local_times,
                                        notes=notes, onsets=onsets, until=heard_s)
        ref_harm.append(ref_h)
        ref_onset.append(ref_o)
        names = [detector.labels[j] for j in map_labels[i]]
        fig = f"fmgcam_{i + 1}.png"
        explanations.append({"window_start_s": cand.start_s, "window_index": cand.index,
                             "labels": names, "figure": fig,
                             "harmonic": harm.to_dict(), "onset": ons.to_dict(),
                             "energy_reference": {"harmonic": ref_h.to_dict(),
                                                  "onset": ref_o.to_dict()},
                             "notes_source": _notes_source(estimate.estimator),
                             "note_estimator": estimate.provenance()})
        db = (cand.spec[0].numpy() + 1.0) * fe.db_scale - fe.db_offset
        arrays.append({"name": fig, "spectrogram_db": db, "saliency": maps[i],
                       "labels": _figure_labels(names, withhold_styles),
                       "times_s": local_times + cand.start_s,
                       "freqs_hz": freqs,
                       # plain words (issue 24); the method is named in the caption
                       "title": _map_title(cand, fe)})
    timer.add("alignment", time.perf_counter() - t)
    alignment = {"harmonic": HarmonicOverlap.combine(harm_parts).to_dict(),
                 "onset": OnsetOverlap.combine(onset_parts).to_dict(),
                 # what the spectrogram's own energy scores on the same notes and onsets: a map
                 # ties the model's evidence to the music only where it beats this too
                 "energy_reference": {"harmonic": HarmonicOverlap.combine(ref_harm).to_dict(),
                                      "onset": OnsetOverlap.combine(ref_onset).to_dict()},
                 "windows": len(chosen), "normalize": extra.get("normalize"),
                 "refine": extra.get("refine"), "destripe": extra.get("destripe"),
                 "notes_source": _notes_source(estimators[0]["estimator"]),
                 # which estimator ran, and why a requested one did not (pitch.transcribe)
                 "note_estimator": {k: estimators[0][k] for k in ("estimator", "requested", "fallback")}}
    return explanations, arrays, alignment


def _map_title(cand: _Candidate, fe) -> str:
    """A map figure's title: the seconds of the recording the window holds (a short track's
    window repeats the recording past its end; review)."""
    heard = min(fe.window_s, cand.n_valid / fe.sample_rate)
    title = f"Where the model looked, {cand.start_s:g}–{cand.start_s + heard:g} s"
    return title + (" (then repeated)" if heard < fe.window_s else "")


def _notes_source(estimator: str) -> str:
    """Plain words for the report; it keys on "estimate" to say the notes were not a score."""
    if estimator == "builtin":
        return "multi-pitch estimate (no score available)"
    return f"note transcription estimate by {estimator} (no score available)"


def unheard_audio_verdict(combined, info):
    """The combined verdict of a file with audio no line heard
    (:func:`~musicbrain_cli.audio.intake.unheard_audio`):
    ``human`` (no evidence of AI found) would speak for audio never analysed, so it becomes
    ``inconclusive``. ``ai`` stands: the evidence found in what was heard is evidence about
    the file."""
    from musicbrain_cli.audio.intake import unheard_audio
    from musicbrain_cli.verdict import HUMAN, INCONCLUSIVE, CombinedVerdict

    said = unheard_audio(info.to_dict())
    if not said or combined.label != HUMAN:
        return combined
    return CombinedVerdict(INCONCLUSIVE, said + ["No evidence of AI was found in what was "
                                                 "analysed."], [], combined.lines)


def _input_facts(info, path) -> dict:
    d = info.to_dict()
    d.pop("metadata", None)
    d["file_name"] = Path(path).name
    d["path"] = str(path)
    return d


def _metadata(meta: Mapping) -> dict:
    c2pa = meta.get("c2pa_present")
    out = {"tags": meta.get("tags", {}), "encoder": meta.get("encoder"),
           # None: the tag reader was stopped before it looked (the report says "not checked")
           "c2pa_present": None if c2pa is None else bool(c2pa), "format": meta.get("format"),
           "truncated": meta.get("truncated", False), "dropped": meta.get("dropped") or {}}
    if meta.get("error"):   # tags that could not be read: a fact the report states
        out["error"] = str(meta["error"])
    return out


def line_models(detector, lines: Sequence[tuple[Any, dict]]) -> dict[str, str]:
    """``{line: weights SHA-256}`` of the content model and of each line whose details
    record one (``evidence_lines``' ``details[line]["model_sha256"]``)."""
    out = {"content": str(detector.card.get("weights_sha256", ""))}
    for finding, details in lines:
        sha = (details.get(finding.line) or {}).get("model_sha256")
        if sha:
            out[finding.line] = str(sha)
    return out


def measured_models(detector, lines: Sequence[tuple[Any, dict]]) -> dict[str, str]:
    """:func:`line_models`, and the content model's card as ``content_card`` (its SHA-256)
    where the detector knows it: what a record of verdicts on real AI music must have been
    measured with to apply. The weights alone are not enough: a card finalized again with
    another threshold or band gives other verdicts from the same weights (evaluation
    review, session 46); nor are the domain statistics (``content_ood``), which decide which
    tracks are out of domain and so inconclusive (external benchmark review, session 47)."""
    out = line_models(detector, lines)
    files = getattr(detector, "file_sha256", None) or {}
    for key, name in (("card", "content_card"), ("ood", "content_ood")):
        if files.get(key):
            out[name] = str(files[key])
    return out


def measured_generators(detector) -> list[str]:
    """The generator families the content model's error rates were measured on: those of its
    taxonomy that it had training examples of and, where the card's error rates count AI
    clips per family (``error_rates.by_generator``, finalized since session 28), that have
    clips among them. Splits are by work, so a family with training works need not have
    any in the test split (review, session 46: such a family was named as measured). For
    any other generator its miss rate is unknown."""
    groups = {g.name: g for g in detector.taxonomy.groups}
    if "generator" not in groups:
        return []
    untrained = untrained_labels(detector.card)
    trained = [lab for lab in groups["generator"].labels if f"generator/{lab}" not in untrained]
    counted = (detector.card.get("error_rates") or {}).get("by_generator")
    if isinstance(counted, Mapping):
        return [lab for lab in trained if isinstance(counted.get(lab), Mapping)
                and isinstance(counted[lab].get("n_ai"), int) and counted[lab]["n_ai"] > 0]
    return trained


def _top_labels(aggregate: Mapping, taxonomy, per_group: int, validation_ap: Mapping,
                untrained: frozenset[str] | set[str] = frozenset()) -> list[dict]:
    """The ``per_group`` most probable labels of each style group, each with the model card's
    validation AP for that label (None when validation had no example of it): how far the
    attribution can be trusted, shown beside it. ``untrained`` labels are left out."""
    out = []
    for group in taxonomy.groups:
        if group.name == "source":
            continue
        ranked = sorted((lab for lab in group.labels if f"{group.name}/{lab}" not in untrained),
                        key=lambda lab: -aggregate[f"{group.name}/{lab}"]["mean"])
        for lab in ranked[:per_group]:
            ap = validation_ap.get(f"{group.name}/{lab}")
            out.append({"group": group.name, "label": lab,
                        "p": float(aggregate[f"{group.name}/{lab}"]["mean"]),
                        "validation_ap": float(ap) if isinstance(ap, (int, float)) else None})
    return out


def _limitations(ood_facts: Mapping, padded: Sequence[bool], info,
                 card: Mapping | None = None, labels: Sequence[Mapping] = (),
                 quiet: Sequence[bool] = ()) -> list[str]:
    notes = list(LIMITATIONS)
    stated = (card or {}).get("limitations")
    if isinstance(stated, str) and stated.strip():
        # what the model card itself says the model cannot do, measured failures included
        notes.append("The content model's card states: " + stated.strip())
    if not ood_facts.get("available"):
        notes.append("This model carries no out-of-domain statistics, so the report cannot say "
                     "whether the recording resembles the training data.")
    elif not ood_facts.get("in_domain"):
        notes.append("OUT OF DOMAIN: the recording is unlike the content model's training "
                     "data; that model's finding is inconclusive by rule and its probabilities "
                     "should not be relied on (another line, within its own domain, may still "
                     "decide).")
    if padded and all(padded):
        notes.append("The recording is shorter than one analysis window; it was repeated to "
                     "fill it.")
    if any(quiet):
        which = ("The only analysis window was" if len(quiet) == 1 else
                 f"{sum(quiet)} of the {len(quiet)} analysis windows "
                 + ("was" if sum(quiet) == 1 else "were"))
        notes.append(f"{which} not judged for silence: near-silent throughout (peak below -60 dBFS), or silent over at "
                     "least a quarter of the window where the music begins or ends. The content "
                     "model's probabilities, its domain check and the explanations leave them "
                     "out (they are shown on the timeline).")
    share = getattr(info, "share_decoded", None)
    if share is not None and share < 1.0:
        # rounded down: 99.96 % must not print as "Only 100.0 %" (a lossless file 3 ms short)
        shown = math.floor(share * 1000 + 1e-9) / 10
        notes.append(f"Only {shown:.1f}% of the stream decoded; the rest was not analysed.")
    from musicbrain_cli.audio.intake import unheard_audio

    notes += unheard_audio(info.to_dict() if hasattr(info, "to_dict") else {})
    notes += _style_balance_notes(card, labels)
    return notes


def _style_balance_notes(card: Mapping | None, labels: Sequence[Mapping]) -> list[str]:
    """A note for each style the track is attributed to (probability >= 0.5) that the content
    model's training data held almost only from one side (``train_source_balance`` of the
    card): there the style itself may have decided the content line's verdict."""
    balance = ((card or {}).get("training_data") or {}).get("train_source_balance") or {}
    notes = []
    for lab in labels:
        key = f"{lab['group']}/{lab['label']}"
        b = balance.get(key) or {}
        if lab.get("p", 0.0) < 0.5 or b.get("flag") not in ("mostly ai", "mostly human"):
            continue
        side, other, risk = (("AI", "human", "an 'ai' verdict") if b["flag"] == "mostly ai"
                             else ("human", "AI", "a 'human' verdict"))
        notes.append(f"The recording is attributed to {lab['group']} '{lab['label']}', which the "
                     f"content model learned almost only from {side} music ({b['human']} human "
                     f"and {b['ai']} AI training windows): {risk} of the content line may rest "
                     f"on the style rather than on how the music was made; it saw too little "
                     f"{other} music of this style to tell.")
    return notes


# --- writing ---------------------------------------------------------------------------------


def write_track_folder(analysis: TrackAnalysis, audio_path: Path, final_dir: Path, *,
                       options: ScanOptions, keys=None, rendered=None) -> dict[str, float]:
    """Render figures and reports into a temporary folder, seal it, then rename it into place.

    ``rendered``: the track's documents already rendered (``(RenderedReport, timings)`` of
    :func:`~musicbrain_cli.scan.documents.render_track_documents`, e.g. by a child process);
    they are signed and written here. An interrupted scan never leaves a half-written report
    folder: either the complete folder is there, or none (stale temporary folders are removed
    on the next run).
    """
    from musicbrain_cli.report import write_manifest
    from musicbrain_cli.report.writer import write_rendered_report

    tmp = final_dir.parent / f"{TMP_PREFIX}{final_dir.name}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        if rendered is None:
            rendered = render_track_documents(analysis.track, analysis.explain, options.formats,
                                              None if keys is None else keys.record())
        documents, timings = rendered[0], dict(rendered[1])
        t = time.perf_counter()
        write_rendered_report(documents, analysis.track, tmp, keys=keys, tsa_url=options.tsa_url)
        timings["report"] = timings.get("report", 0.0) + time.perf_counter() - t
        t = time.perf_counter()
        write_manifest(tmp, audio_path, analysis.track["model"]["weights_sha256"] or None, keys,
                       audio_sha256=analysis.track["input"]["sha256"],
                       created=analysis.track["analysis_time"])
        timings["signing"] = time.perf_counter() - t
        if final_dir.exists():
            old = final_dir.parent / f"{OLD_COPY_PREFIX}{final_dir.name}"
            shutil.rmtree(old, ignore_errors=True)
            # from here until the second rename the folder lives only as .tmp-+old-X (the
            # verified report) and .tmp-X (the sealed new one): recover_interrupted_renames
            # puts one back if the process dies in between
            final_dir.rename(old)
            try:
                tmp.rename(final_dir)
            except OSError:
                old.rename(final_dir)        # the verified report goes back where it was
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(final_dir)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError):
            # one folder that cannot be written is that track's failure, not the scan's
            # (session 28 audit: the whole scan stopped and no catalog was written)
            raise ReportError(f"cannot write the report folder {str(final_dir)!r}: "
                              f"{exc.strerror or exc}") from exc
        raise
    return timings


#: The name a finished folder X has while its redone copy takes its place. A track folder's
#: name never starts with "+" (:func:`~musicbrain_cli.scan.discovery.safe_stem`), so this can
#: never be the temporary folder ``.tmp-X`` of another track (with ".tmp-old-", an input named
#: "old-abc" had its temporary folder read as the old copy of "abc": session 28 review).
OLD_COPY_PREFIX = f"{TMP_PREFIX}+old-"


def recover_interrupted_renames(out: Path, names: Sequence[str] | None = None) -> list[str]:
    """Put back each track folder that a killed scan left only as ``.tmp-+old-X`` (the
    verified report it was replacing) and ``.tmp-X`` (the new one, sealed before the first
    rename): the new one when it is there, else the old one. Returns the folders put back.
    Without this the next scan removed both as leftovers and the catalog lost the track
    without a word (session 28 audit). ``names``: only these folders (a track about to be
    checked: a Ray task retried after its worker died there, in the same scan)."""
    restored = []
    prefix = OLD_COPY_PREFIX
    olds = (sorted(out.glob(f"{prefix}*")) if names is None
            else [out / f"{prefix}{n}" for n in names])
    for old in olds:
        name = old.name[len(prefix):]
        final, new = out / name, out / f"{TMP_PREFIX}{name}"
        if not name or not old.is_dir() or final.exists() or final.is_symlink():
            continue
        try:
            (new if new.is_dir() else old).rename(final)
        except OSError:
            continue                 # left for check_finished to report as missing
        restored.append(name)
    return restored


def completed_result(folder: Path, sha256: str | None, *, keys=None) -> dict | None:
    """The stored result of a finished track folder that verifies (see
    :func:`check_finished`), else ``None``."""
    return check_finished(folder, sha256, keys=keys)[0]


#: Checks of an unsigned scan's folders: the manifest and the hashes it lists (there is no
#: signature to check, so an unsigned rerun trusts what an unsigned scan wrote, no more).
_UNSIGNED_CHECKS = ("manifest", "files", "unlisted files")


def analysis_facts(detector, options: ScanOptions) -> dict:
    """What a reused result must have been made with: this MusicBrain, this model (card
    included: its thresholds decide the verdict) and these analysis options, as a track's
    ``result.json`` records them (:func:`check_finished`)."""
    from musicbrain_cli import __version__

    return json.loads(json.dumps({"musicbrain": __version__, "model": model_facts(detector),
                                  "options": options.analysis_dict()}))


def check_finished(folder: Path, sha256: str | None, *, keys=None, formats: Sequence[str] = (),
                   made_with: dict | None = None) -> tuple[dict | None, str | None]:
    """Whether a finished track folder may be reused: ``(track, None)`` when it verifies,
    ``(None, why)`` when it is there but does not, ``(None, None)`` when there is none.

    It verifies as ``musicbrain verify --keys`` would with the current ``keys`` (manifest
    signature by that key, every listed hash, no unlisted file, the PDF signatures), and its
    ``result.json`` must be sealed and be about the audio of ``sha256`` (any, when ``None``),
    and it must hold the report of each of ``formats`` (the rerun's ``--report``). Without keys (``--unsigned``) only the manifest and its hashes are checked.
    With ``made_with`` (:func:`analysis_facts`) the result must also have been made by the
    same MusicBrain version, with the same model and the same analysis options: a rerun with
    ``--model`` or ``--notes`` analyses again instead of returning the earlier verdicts.
    """
    from musicbrain_cli.report.manifest import MANIFEST_NAME
    from musicbrain_cli.report.verify import FAIL, PASS, UNTRUSTED, load_json, verify_report_folder

    folder = Path(folder)
    if not (folder / MANIFEST_NAME).exists() and not (folder / RESULT_JSON).exists():
        return None, None
    checked = verify_report_folder(folder, trusted=keys.public() if keys is not None else None)
    problems = [c for c in checked.checks
                if (c.status in (FAIL, UNTRUSTED) if keys is not None else
                    c.status == FAIL and (c.name in _UNSIGNED_CHECKS or c.name.startswith("file ")))]
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        return None, f"{problems[0].name}: {problems[0].detail}{more}"
    sealed = {c.name[len("file "):] for c in checked.checks
              if c.name.startswith("file ") and c.status == PASS}
    if RESULT_JSON not in sealed:
        return None, f"its {RESULT_JSON} is not sealed by its manifest"
    lacking = [f"report.{f}" for f in formats if f"report.{f}" not in sealed]
    if lacking:
        return None, f"it has no {', '.join(lacking)} (asked for with --report)"
    try:
        track = load_json((folder / RESULT_JSON).read_bytes())
    except (OSError, ValueError) as exc:
        return None, f"cannot read its {RESULT_JSON}: {exc}"
    inp = track.get("input") if isinstance(track, dict) else None
    if not isinstance(inp, dict) or not isinstance(inp.get("sha256"), str):
        return None, f"its {RESULT_JSON} is not a track result"
    if sha256 is not None and inp["sha256"] != sha256:
        return None, f"its {RESULT_JSON} is about another recording ({inp['sha256']})"
    if made_with is not None:
        stored = {"musicbrain": (track.get("software") or {}).get("musicbrain"),
                  "model": track.get("model"), "options": track.get("options")}
        if stored["musicbrain"] != made_with["musicbrain"]:
            return None, (f"it was made by MusicBrain {stored['musicbrain']}, this is "
                          f"{made_with['musicbrain']}")
        if stored["model"] != made_with["model"]:
            model = stored["model"] if isinstance(stored["model"], dict) else {}
            return None, (f"it was made with another model ({model.get('name')} "
                          f"{model.get('version')}, weights {str(model.get('weights_sha256'))[:12]}, "
                          "or another card)")
        if stored["options"] != made_with["options"]:
            old = stored["options"] if isinstance(stored["options"], dict) else {}
            differ = sorted(k for k in made_with["options"]
                            if old.get(k) != made_with["options"][k])
            return None, f"it was made with other analysis options ({', '.join(differ)})"
    from musicbrain_cli.report.catalog import CatalogEntry, catalog_files, summary_row

    try:   # the catalog must be able to describe it (a signed file can still be malformed)
        catalog_files([summary_row(CatalogEntry(str(folder), track=track,
                                                report=f"{folder.name}/{RESULT_JSON}"))])
    except (MusicBrainError, TypeError, ValueError, AttributeError, KeyError) as exc:
        return None, f"its {RESULT_JSON} cannot be summarised: {type(exc).__name__}: {exc}"
    return track, None


def output_lock(out: Path):
    """Hold the advisory lock of the output folder ``out`` (see :data:`LOCK_NAME`;
    :func:`musicbrain_cli.files.folder_lock`). Raises :class:`InputError` at once, naming the
    holder, when another scan holds it."""
    from musicbrain_cli.files import folder_lock

    return folder_lock(out, name=LOCK_NAME, holder="scan")


# --- the batch ------------------------------------------------------------------------------


@dataclass
class ScanResult:
    entries: list = field(default_factory=list)          # report.CatalogEntry, in input order
    skipped: list[tuple[str, str]] = field(default_factory=list)
    reused: int = 0
    #: (input path, why) of each finished folder that did not verify and was redone
    redone: list[tuple[str, str]] = field(default_factory=list)
    #: track folders of earlier scans kept in the catalog (catalog entries)
    kept: list = field(default_factory=list)
    #: (folder name, why) of track folders present that do not verify: not in the catalog
    excluded: list[tuple[str, str]] = field(default_factory=list)
    #: (folder name, input path) of earlier folders kept in the catalog for an input whose
    #: track failed this time with the same audio (its report could not be written)
    kept_after_failure: list[tuple[str, str]] = field(default_factory=list)
    #: failed inputs of earlier scans that this scan did not read, still listed in the
    #: catalog as failed (catalog entries): the catalog's failures beyond ``n_failed``
    earlier_failures: list = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    audio_seconds: float = 0.0

    @property
    def n_failed(self) -> int:
        return sum(1 for e in self.entries if e.error)

    @property
    def n_ok(self) -> int:
        return len(self.entries) - self.n_failed


@dataclass
class TrackOutcome:
    """What one track's processing gave the batch: its catalog entry, stage timings, the
    audio seconds analysed, whether a finished folder was reused, and why a finished folder
    that did not verify was redone (``None``: it was not)."""

    entry: Any                                   # report.CatalogEntry
    timings: dict[str, float] = field(default_factory=dict)
    audio_seconds: float = 0.0
    reused: bool = False
    redone: str | None = None
    #: the input's SHA-256 when it was read, also for a track that failed later (a report
    #: that could not be written): an earlier folder of the same audio still describes it
    sha256: str | None = None


def _recorded_input(folder: Path) -> str | None:
    """The input path a track folder's ``result.json`` names (``None``: no folder, or none
    readable). Read only to choose a folder name, never trusted as evidence."""
    from musicbrain_cli.report.verify import load_json

    try:
        path = load_json((folder / RESULT_JSON).read_bytes())["input"]["path"]
    except (OSError, ValueError, TypeError, KeyError):
        return None
    return path if isinstance(path, str) else None


def _is_input(recorded: str | None, path: Path) -> bool:
    """Whether a folder's recorded input path names the file ``path``."""
    if recorded is None:
        return False
    if recorded == str(path):
        return True
    try:
        return os.path.samefile(recorded, path)
    except OSError:
        return False


def track_folder(path: Path, sha: str, out: Path, *, salted: bool = False) -> Path:
    """The track folder of input ``path`` (audio ``sha``) in ``out``: one folder per input,
    so no input's results can overwrite another's.

    The plain name (:func:`~musicbrain_cli.scan.discovery.safe_name`), unless it holds the
    result of another input that still exists (same audio, a name that folds to the same
    stem), or ``salted`` (such a twin is in this scan) and it does not hold this input's:
    then the name that also carries the hash of the input's real path (the same from any
    working folder). A salted folder an earlier scan made for this input is found again.
    Where the inputs index of ``out`` knows the plain folder's input (and agrees with its
    record), that decides. Otherwise a plain folder whose recorded input no longer resolves
    (a relative path recorded from another working folder, a moved library) is taken for
    this input, as before folders were told apart, so a rerun reuses what it finished; an
    indexed input that is gone gives its plain folder to a moved file only where no twin is
    in this scan (``salted``: any of the twins could be the moved one)."""
    plain = out / safe_name(path, sha)
    own = out / safe_name(path, sha, salt=os.path.realpath(path))
    recorded = _recorded_input(plain)
    # The index knows whose the plain folder is even when its recorded path is relative to
    # another working folder, or its input is gone (session 29 audit: a copy of an input, or
    # the twin of a deleted one, took over the original's folder, and --force overwrote it).
    indexed = inputs_index(out).input_of(plain.name, recorded)
    if indexed is not None and indexed != os.path.realpath(path):
        if os.path.lexists(indexed) or (own / RESULT_JSON).exists():
            return own                  # another input's, or this input has its own
        # its input is gone: a moved file or library, unless a twin is in this scan; then
        # nothing says which of them was moved, and both took the plain folder, one report
        # overwriting the other (review of session 30: a moved file and its copy)
        return own if salted else plain
    if indexed is not None:
        return plain
    if salted:      # a twin is in this scan: the plain name only if provably this input's
        return plain if _is_input(recorded, path) else own
    if recorded is not None and os.path.lexists(recorded) and not _is_input(recorded, path):
        return own                               # another input's, and it still exists
    if recorded is None and (own / RESULT_JSON).exists():
        return own                               # made by an earlier scan with a twin
    return plain


def _earlier_formats(folder: Path, options: ScanOptions) -> tuple[str, ...]:
    """The report formats a folder about to be redone holds and this run did not ask for:
    the redone folder has them too, so that a rerun with another ``--report`` (or for any
    other reason to redo) never deletes a report a user was given."""
    from musicbrain_cli.report.writer import REPORT_STEM

    return tuple(f for f in ("pdf", "html") if f not in options.formats
                 and (folder / f"{REPORT_STEM}.{f}").is_file())


def _prepare_track(path: Path, out: Path, detector, *, options: ScanOptions, keys,
                   command_line: Sequence[str], salted: bool = False,
                   scan_time: str | None = None) -> tuple[TrackOutcome, "_TrackWrite | None"]:
    """Hash, reuse check and analysis of one input; returns its outcome and the job that
    seals its track folder (``None`` when there is nothing to write). Input errors become
    the entry's error, never an exception. ``salted``: see :func:`track_folder`;
    ``scan_time``: see :class:`_TrackWrite`."""
    from musicbrain_cli.audio.intake import sha256_file
    from musicbrain_cli.report import CatalogEntry

    sha = None
    try:
        sha = sha256_file(path)
        folder = track_folder(path, sha, out, salted=salted)
        # a retry of this track in the same scan (a Ray task whose worker died between the
        # two renames of its folder) finds the folder put back first (session 28 audit)
        recover_interrupted_renames(out, [folder.name])
        done, why = (None, None) if options.force else \
            check_finished(folder, sha, keys=keys, formats=options.formats,
                           made_with=analysis_facts(detector, options))
        if done is not None:
            return TrackOutcome(CatalogEntry(str(path), track=done,
                                             report=_report_rel(folder, out, options)),
                                reused=True, redone=why, sha256=sha), None
        kept = _earlier_formats(folder, options)
        if kept and why:
            names = [f"report.{f}" for f in kept]
            why += f"; its {' and '.join(names)} {'is' if len(names) == 1 else 'are'} made again too"
        analysis = analyse_track(path, detector, options=options, command_line=command_line)
        if analysis.track["input"].get("sha256") != sha:
            # analyse_track checks the file from its probe on; the hash that named (and
            # reuse-checked) the folder was taken before (review of session 30: a file
            # replaced in between got a folder named after the audio it no longer held)
            raise InputError(f"{os.fspath(path)!r} changed while it was analysed (replaced "
                             "after it was hashed to name its report folder): its folder "
                             "would be named after audio it does not hold; scan it again "
                             "once it is no longer being written")
    except MusicBrainError as exc:
        return TrackOutcome(CatalogEntry(str(path), error=str(exc)), sha256=sha), None
    except Exception as exc:  # noqa: BLE001
        # A fault of this program or of a library on one hostile file: that file fails,
        # loudly (its row, the console, exit status 1), and the batch and its catalog go on.
        return TrackOutcome(CatalogEntry(
            str(path), error=f"internal error while analysing this file "
                             f"({type(exc).__name__}: {exc}); please report it"),
            sha256=sha), None
    outcome = TrackOutcome(CatalogEntry(str(path), track=analysis.track,
                                        report=_report_rel(folder, out, options)),
                           timings=dict(analysis.timings), redone=why, sha256=sha,
                           audio_seconds=float(analysis.track["input"].get("decoded_duration_s")
                                               or 0))

    writes = dataclasses.replace(options, formats=(*options.formats, *kept)) if kept else options

    return outcome, _TrackWrite(analysis, Path(path), folder, writes, keys, scan_time)


@dataclass
class _TrackWrite:
    """The last step of one track: its folder written (:func:`write_track_folder`). Called
    with no argument it renders the documents itself; with what :meth:`render_in` returned,
    it takes them from the child process that rendered them."""

    analysis: TrackAnalysis
    path: Path
    folder: Path
    options: ScanOptions
    keys: Any
    #: the scan's time in the inputs index: the sealed folder is entered there at once
    #: (:func:`_index_sealed`), or not at all with ``None`` (an engine's task)
    scan_time: str | None = None

    def render_in(self, processes):
        """Start rendering this track's documents in ``processes`` (a
        :class:`~musicbrain_cli.scan.documents.ReportProcesses`); pass the result to the call.
        ``None`` where no renderer process can be started: the call renders them itself."""
        try:
            return processes.submit(self.analysis.track, self.analysis.explain,
                                    self.options.formats,
                                    None if self.keys is None else self.keys.record())
        except OSError as exc:
            _render_here(exc)
            return None

    def __call__(self, rendering=None) -> dict:
        try:
            rendered = None
            if rendering is not None:
                try:
                    rendered = rendering.result()
                except OSError as exc:        # its renderer could not be started again
                    _render_here(exc)
            timings = write_track_folder(self.analysis, self.path, self.folder,
                                         options=self.options, keys=self.keys, rendered=rendered)
            if self.scan_time is not None:
                _index_sealed(self.folder, self.path, self.analysis.track, self.scan_time)
            return timings
        finally:
            release_freed_memory()       # the figures' and the PDF's working set


def _render_here(exc: OSError) -> None:
    """Say that a report's documents are rendered in this process, since no renderer
    process could be started for them (:class:`_TrackWrite`): a spawn refused, out of memory
    or at a process limit, first or when a renderer that died is replaced. The documents are
    the same bytes (scan.documents). That ``OSError`` had ended the whole scan, with no report
    of the track analysed and no catalog, or failed the track (review of session 46)."""
    import warnings

    from musicbrain_cli.errors import MusicBrainWarning

    warnings.warn(f"a report could not be rendered in a process of its own "
                  f"({exc.strerror or exc}); it is rendered in the scanning process",
                  MusicBrainWarning, stacklevel=3)


_INDEX_LOCK = threading.Lock()


def _index_sealed(folder: Path, path: Path, track: Mapping, scan_time: str) -> None:
    """Enter a folder just sealed in its output folder's inputs index, matched to its input
    at ``scan_time``, as the end of the scan would. A scan killed after sealing a changed
    file's new folder had left the index without it, and every later scan of other files
    showed the file twice, once with the verdict on audio it no longer holds (review of
    session 45). Bookkeeping only: a failure to write leaves the end of the scan to do it."""
    with _INDEX_LOCK:
        index = _read_inputs_index(folder.parent)
        index.folders[folder.name] = _index_entry(path, track, scan_time)
        _write_inputs_index(folder.parent, index)


def _index_entry(path: str | os.PathLike, track: Mapping | None, when: str) -> dict[str, str]:
    """An input's inputs-index entry, matched to its folder at ``when``: its real path, the
    path its ``result.json`` records, and the path as this scan was given it."""
    recorded = ((track or {}).get("input") or {}).get("path") or os.fspath(path)
    return {"input": os.path.realpath(path), "recorded": str(recorded), "seen": when,
            "shown": os.fspath(path)}


def process_track(path: str | os.PathLike, out: str | os.PathLike, detector, *,
                  options: ScanOptions = ScanOptions(), keys=None,
                  command_line: Sequence[str] = (), salted: bool = False) -> TrackOutcome:
    """One track from input to sealed folder: the unit of work of every engine (the
    in-process loop of :func:`scan` overlaps its last step with the next track's analysis;
    :mod:`musicbrain_cli.scan.ray_engine` runs it as one task). A folder that was already sealed
    and verifies is reused, so running it twice never writes a track twice. ``salted``: the
    scan holds another input with the same audio and folded name (:func:`track_folder`)."""
    outcome, job = _prepare_track(Path(path), Path(out), detector, options=options, keys=keys,
                                  command_line=command_line, salted=salted)
    if job is not None:
        _finish(outcome, job)
    return outcome


def _finish(outcome: TrackOutcome, job: Callable[[], dict]) -> None:
    from musicbrain_cli.report import CatalogEntry

    try:
        _merge(outcome.timings, job())
    except MusicBrainError as exc:
        outcome.entry = CatalogEntry(outcome.entry.input_path, error=str(exc))
    except Exception as exc:  # noqa: BLE001
        # As in _prepare_track: a fault of this program or of a library while one track's
        # folder is written fails that track, loudly, and the batch and its catalog go on
        # (review of session 30: a UnicodeEncodeError in result.json stopped the whole scan
        # and no catalog was written)
        outcome.entry = CatalogEntry(
            shown_path(outcome.entry.input_path),
            error=f"internal error while writing the report of this file "
                  f"({type(exc).__name__}: {exc}); please report it")


def _claim_folder(outcome: TrackOutcome, claimed: dict[str, str], *,
                  written: bool = False) -> bool:
    """Record ``outcome``'s track folder as this scan's folder for its input; where another
    input of this scan already has it, ``outcome`` becomes its input's failure instead and
    ``False`` is returned: its report must not overwrite the other's (README: each input
    gets its own track folder; review of session 30: a moved file and its copy shared one).
    ``written``: the folder was written already (an engine's), so one report may have
    replaced the other."""
    from musicbrain_cli.report import CatalogEntry

    folder = _folder(outcome.entry)
    if folder is None:
        return True
    if folder not in claimed:
        claimed[folder] = outcome.entry.input_path
        return True
    outcome.entry = CatalogEntry(
        outcome.entry.input_path,
        error=f"internal error: its track folder {folder!r} is also this scan's folder for "
              f"{claimed[folder]!r}"
              + (", and one report may have replaced the other" if written else
                 ", so its report was not written (it would replace the other's)")
              + "; please report it")
    return False


def check_output(out: Path, keys) -> None:
    """Refuse an output folder this scan must not write: an unsigned scan (``keys`` None)
    into a folder whose catalog is signed would rewrite the catalog without its signature.
    Raises :class:`InputError`."""
    from musicbrain_cli.report.manifest import CATALOG_SIGNATURE_NAME

    if keys is None and (Path(out) / CATALOG_SIGNATURE_NAME).exists():
        raise InputError(f"the catalog in {str(out)!r} is signed: an unsigned scan would "
                         "replace it with an unsigned one; scan with the signing key, or "
                         "into another folder")


def scan(inputs: Sequence[str | os.PathLike], out_dir: str | os.PathLike, detector, *,
         options: ScanOptions = ScanOptions(), keys=None,
         command_line: Sequence[str] = (), progress: Progress = NULL_PROGRESS,
         engine=None, load: Callable[[], Any] | None = None) -> ScanResult:
    """Scan ``inputs`` (paths, or a :class:`Discovery` already made of them) into
    ``out_dir``; a failing file becomes an error entry, never a stop.

    ``load`` (optional) gives the detector, called once the folder's lock is held, in place
    of ``detector``: a second scan into a busy folder then stops at once instead of after
    the seconds a model takes to load (README review).

    One scan at a time per ``out_dir`` (:func:`output_lock`). A finished track folder is
    reused only when it verifies with ``keys`` (:func:`check_finished`), else it is redone
    (``ScanResult.redone`` says why). The catalog describes every verified track folder in
    ``out_dir``, this scan's and earlier scans' (``ScanResult.kept``), so a scan of a subset
    adds to a catalog and never drops from it.

    ``engine``: ``None`` runs every track in this process (report writing overlaps the next
    track's analysis when ``options.jobs`` > 1); a callable ``engine(files, out, salted) ->
    [TrackOutcome]`` (in input order; ``salted``: the set of files to pass
    ``salted=True``) runs :func:`process_track` elsewhere, e.g.
    :func:`musicbrain_cli.scan.ray_engine.run_tracks`; ``detector`` is then unused here.
    """
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create output folder {str(out)!r}: "
                         f"{exc.strerror or exc}") from exc
    with output_lock(out):
        if load is not None:
            detector = load()
        return _scan_locked(inputs, out, detector, options=options, keys=keys,
                            command_line=command_line, progress=progress, engine=engine)


def _in_process(files: Sequence[Path], out: Path, detector, *, options: ScanOptions, keys,
                command_line: Sequence[str], progress: Progress,
                salted: set[Path], scan_time: str | None = None) -> list[TrackOutcome]:
    from musicbrain_cli.scan.documents import ReportProcesses

    outcomes: list[TrackOutcome] = []
    pending: list[tuple[TrackOutcome, Future]] = []
    pool = ThreadPoolExecutor(max_workers=options.jobs - 1) if options.jobs > 1 else None
    # a child process pays for its imports (about 2 s): worth it from the second track on
    processes = (ReportProcesses(options.jobs - 1)
                 if pool is not None and options.render_processes and len(files) > 1 else None)
    claimed: dict[str, str] = {}
    try:
        with progress.task("scanning", total=len(files)) as task:
            for path in files:
                outcome, job = _prepare_track(path, out, detector, options=options, keys=keys,
                                              command_line=command_line,
                                              salted=path in salted, scan_time=scan_time)
                outcomes.append(outcome)
                if not _claim_folder(outcome, claimed):
                    job = None          # checked before it is written: nothing overwritten
                if job is not None:
                    if pool is None:
                        _finish(outcome, job)
                    else:
                        rendering = job.render_in(processes) if processes is not None else None
                        pending.append((outcome, pool.submit(job, rendering)))
                task.advance()
            for outcome, fut in pending:
                _finish(outcome, fut.result)
    finally:
        try:
            if pool is not None:
                _settle_writes(pool, [fut for _, fut in pending])
        finally:
            if processes is not None:
                processes.shutdown()
    return outcomes


def _settle_writes(pool: ThreadPoolExecutor, futures: Sequence[Future]) -> None:
    """Wait for the track folders ``pool`` is writing (``futures``) before the scan goes on
    to its catalog. An interrupt while it waits (a second Ctrl-C or SIGTERM after the first)
    drops the writes not started, and still waits for those under way, then goes on: a
    folder sealed after the catalog was written does not match it, and the catalog verified
    INVALID (review of session 46: the second interrupt left the writing thread running
    while the catalog was written). Waited for by their futures, not by joining the
    threads: a ``Thread.join`` interrupted by a signal marks a thread that still runs as
    ended (CPython's fix of bpo-45274), so no later join waits for it."""
    try:
        pool.shutdown(wait=True)
    except KeyboardInterrupt:
        pool.shutdown(wait=False, cancel_futures=True)
        for fut in futures:
            while not fut.cancelled():
                try:
                    fut.exception()          # until it is done; its error is the track's
                    break
                except KeyboardInterrupt:
                    continue
        raise


#: Signals that end a scan (Ctrl-C, ``timeout``/schedulers, a hang-up), held back while the
#: catalog is written.
_STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")


@contextlib.contextmanager
def _signals_deferred():
    """While the block runs, a stop signal is held back and delivered once it has ended. The
    catalog is four files and a signed manifest over them: an interrupt between two of them
    left a catalog whose manifest no longer matched its files, which ``verify`` reads as
    tampering, until the next scan (review of session 46). Python runs signal handlers in
    the main thread only, so elsewhere the block runs as it is; an ignored signal stays
    ignored; a signal that arrives is raised again, once per kind, to the handler the block
    found (Python's, the CLI's, or the default), after it is put back."""
    import signal

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    arrived: list[int] = []

    def hold(signum, frame):
        if signum not in arrived:
            arrived.append(signum)

    before = {}
    for name in _STOP_SIGNALS:
        sig = getattr(signal, name, None)
        if sig is not None and signal.getsignal(sig) not in (signal.SIG_IGN, None):
            before[sig] = signal.signal(sig, hold)
    try:
        yield
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)
        for sig in arrived:
            signal.raise_signal(sig)


def _scan_locked(inputs, out: Path, detector, *, options: ScanOptions, keys,
                 command_line: Sequence[str], progress: Progress, engine) -> ScanResult:
    from musicbrain_cli.report import write_catalog
    from musicbrain_cli.report.manifest import write_catalog_manifest

    check_output(out, keys)          # under the lock: no signed scan can slip in between
    # to the microsecond: two scans in one second must not tie (session 29 review: a file
    # that failed in the second of its last reuse showed its old verdict again)
    started = _scan_time(_read_inputs_index(out))
    previous_failures = _previous_failures(out)
    recover_interrupted_renames(out)
    for stale in out.glob(f"{TMP_PREFIX}*"):
        shutil.rmtree(stale, ignore_errors=True)
    found = inputs if isinstance(inputs, Discovery) else discover(inputs, output=out)
    result = ScanResult(skipped=list(found.skipped))
    from musicbrain_cli.audio.intake import sha256_file

    salted = same_audio_and_stem(found.files, sha256_file)
    from musicbrain_cli.report import CatalogEntry

    result.entries += [CatalogEntry(p, error="no such file or folder") for p in found.missing]
    # a folder that cannot be read, a name no UTF-8 report can hold: failed inputs, never
    # skips (review of session 30: exit status 0 and nothing in the catalog)
    result.entries += [CatalogEntry(p, error=why) for p, why in found.failed]
    interrupted: BaseException | None = None
    if engine is None:
        try:
            outcomes = _in_process(found.files, out, detector, options=options, keys=keys,
                                   command_line=command_line, progress=progress, salted=salted,
                                   scan_time=started)
        except KeyboardInterrupt as exc:
            # Ctrl-C: the folders sealed so far (each in the inputs index as it was sealed)
            # join the catalog as earlier scans' do, and the catalog is written before the
            # interrupt goes on: left as it was, a rescan's redone folders no longer matched
            # the sealed catalog, which then verified INVALID (review of session 45)
            interrupted, outcomes = exc, []
    else:
        try:
            outcomes = engine(found.files, out, salted)
        except KeyboardInterrupt as exc:
            # as in process (above): the folders the engine's tasks sealed join the catalog
            # as earlier scans' do, and the catalog is written before the interrupt goes on;
            # a Ray scan stopped so had left the catalog sealed over the old manifests of the
            # folders it redid, INVALID (review of session 46). run_tracks has stopped the
            # Ray instance it started, and with it the tasks, by the time this runs.
            interrupted, outcomes = exc, []
        # checked only once written (the tasks run elsewhere, at once): every input whose
        # folder another input of this scan also had fails, loudly
        by_folder: dict[str, list[TrackOutcome]] = {}
        for o in outcomes:
            if o.entry.report:
                by_folder.setdefault(_folder(o.entry), []).append(o)
        for folder, group in by_folder.items():
            for o in (group if len(group) > 1 else ()):
                _claim_folder(o, {folder: ", ".join(g.entry.input_path for g in group
                                                    if g is not o)}, written=True)
    failed_sha: dict[str, str] = {}
    for path, outcome in zip(found.files, outcomes):
        result.entries.append(outcome.entry)
        if outcome.entry.error and outcome.sha256:
            failed_sha[os.path.realpath(path)] = outcome.sha256
        result.reused += outcome.reused
        result.audio_seconds += outcome.audio_seconds
        _merge(result.timings, outcome.timings)
        if outcome.redone is not None:
            result.redone.append((str(path), outcome.redone))
    ours = {_folder(e) for e in result.entries if e.report}
    _keep_other_folders(out, ours, keys, result)
    index = _read_inputs_index(out)
    for e in result.entries:           # matched now (analysed or reused): seen now
        if e.report:
            index.folders[_folder(e)] = _index_entry(e.input_path, e.track, started)
    failures_real = _failure_inputs(previous_failures, index)
    indexed_failures = index.failure_paths()
    _drop_superseded(result, gone={str(p) for p in found.missing}, index=index, now=started,
                     failed_sha=failed_sha,
                     failed_before={real for e, real in zip(previous_failures, failures_real)
                                    if e.input_path in indexed_failures
                                    or os.path.isabs(e.input_path)})
    # by real path: a failure listed as `t7/bad.mp3` is the file scanned now as
    # `/abs/t7/bad.mp3`, and once it is analysed its old failure row must go; a failure row
    # of an earlier scan is resolved by the index, not from this working folder (session 29
    # audit: another folder's `in/bad.ogg` took its place)
    kept_inputs = {_real_input(e, index) for e in result.kept}
    # a folder read now is no longer one that cannot be read (Discovery.read_folders)
    inputs_now = ({os.path.realpath(e.input_path) for e in result.entries} | kept_inputs
                  | set(found.read_folders))
    failures = [e for e, real in zip(previous_failures, failures_real) if real not in inputs_now]
    failures_real = [real for real in failures_real if real not in inputs_now]
    result.earlier_failures = list(failures)
    # an input that is gone now (or whose report could not be written) but has a verified
    # folder of the same audio from an earlier scan: the console and the exit status say it
    # failed; the catalog shows its report, once
    entries = [*(e for e in result.entries
                 if not (e.error and os.path.realpath(e.input_path) in kept_inputs)),
               *(_as_last_scanned(e, index) for e in result.kept), *failures]
    # written back only where it agrees with each folder's own record of its input: an
    # edited or stale entry is not kept as if it were true
    recorded = {_folder(e): ((e.track or {}).get("input") or {}).get("path") or e.input_path
                for e in (*result.entries, *result.kept) if e.report}
    index.folders = {name: entry for name, entry in index.folders.items()
                     if name and (out / name).is_dir()
                     and index.input_of(name, recorded.get(name) or _recorded_input(out / name))}
    index.failures = {**{real: {"path": e.input_path, "error": e.error}
                         for e, real in zip(failures, failures_real)},
                      **{os.path.realpath(e.input_path): {"path": e.input_path, "error": e.error}
                         for e in result.entries if e.error}}
    with _signals_deferred():
        _write_inputs_index(out, index)
        written = write_catalog(out, entries, skipped=result.skipped)
        write_catalog_manifest(out, [p.name for p in written],
                               [_folder(e) for e in entries if e.report],
                               keys)
    if interrupted is not None:
        raise interrupted
    return result


#: Where each track folder's input lay when it was scanned (its real path), when a scan last
#: matched the folder to its input (``seen``), and when a later scan found that input failing
#: or holding other audio (``superseded``); and the real path of each failure row. An earlier
#: folder is matched to a rescanned input by it, however the path was spelled and from
#: whichever working folder either scan ran (a relative path recorded in result.json says
#: nothing of that folder: session 28 review). Local bookkeeping of OUT, like the lock: not
#: evidence, never signed or shown, and untrusted: an entry is used only where it agrees with
#: the folder's own signed record of its input (session 29 audit: an edited index dropped
#: other inputs' folders); a folder it does not know (older scans, a scan killed before it
#: wrote the index) falls back to its recorded path, resolved from here.
INPUTS_INDEX = ".musicbrain-inputs.json"
INPUTS_INDEX_SCHEMA = "musicbrain.inputs/2"
MAX_INPUTS_INDEX_BYTES = 64 * 1024 * 1024


@dataclass
class InputsIndex:
    """:data:`INPUTS_INDEX` in memory. ``folders``: folder name -> ``{"input": real path,
    "recorded": the input path the folder's result.json records, "seen": ISO time,
    "superseded": ISO time (optional), "shown": the path as the scan that matched it last
    was given it (optional)}``; ``failures``: the real path of each failed input
    -> ``{"path": the path its row shows, "error": its row's error}``."""

    folders: dict[str, dict[str, str]] = field(default_factory=dict)
    failures: dict[str, dict[str, str]] = field(default_factory=dict)

    def input_of(self, folder: str | None, recorded: str | None) -> str | None:
        """The real path the index gives ``folder``'s input, when it agrees with the path
        the folder records (``recorded``, from its result.json): the same recorded path
        (a symbolic link's real path says nothing of its name: session 29 review), or for
        an entry without one, :func:`_agrees`; else ``None``."""
        entry = self.folders.get(folder or "")
        if entry is None or not recorded:
            return None
        agree = (entry["recorded"] == recorded if "recorded" in entry
                 else _agrees(recorded, entry["input"]))
        return entry["input"] if agree else None

    def failure_paths(self) -> set[str]:
        """The paths failure rows show, for the failures the index knows."""
        return {row["path"] for row in self.failures.values()}

    def seen(self, folder: str | None) -> str | None:
        return (self.folders.get(folder or "") or {}).get("seen")

    def superseded(self, folder: str | None) -> bool:
        """Whether a scan after the folder was last matched found its input failing or
        holding other audio."""
        entry = self.folders.get(folder or "") or {}
        return bool(entry.get("superseded")) and entry["superseded"] > entry.get("seen", "")


def _scan_time(index: InputsIndex, now: _dt.datetime | None = None) -> str:
    """This scan's time in ``index`` (ISO 8601, UTC, to the microsecond): now, or just after
    the latest time the index holds where the clock reads earlier. The index orders a
    folder's matches and supersessions by these times, so they must follow the scans' order,
    not the clock's: a clock stepped back (NTP) or another machine's scan into the same
    folder made a stale folder count as the current one (review of session 45)."""
    import datetime as real      # parsing and arithmetic; the clock is ``_dt``'s (tests set it)

    now = now or _dt.datetime.now(_dt.timezone.utc)
    latest = None
    for entry in index.folders.values():
        for key in ("seen", "superseded"):
            try:
                t = real.datetime.fromisoformat(entry[key])
            except (KeyError, ValueError):
                continue
            if t.tzinfo is not None and (latest is None or t > latest):
                latest = t
    if latest is not None and now <= latest:
        now = latest + real.timedelta(microseconds=1)
    return now.astimezone(real.timezone.utc).isoformat(timespec="microseconds")


def _agrees(recorded: str | None, real: str) -> bool:
    """Whether a recorded input path (as typed when the folder was made, perhaps relative
    to another working folder) can be the file at ``real``: the same name, and for a
    relative path the same trailing folders; for an absolute one the same file."""
    if not recorded or not real:
        return False
    rec = os.path.normpath(recorded)
    if os.path.basename(rec) != os.path.basename(real):
        return False
    if os.path.isabs(rec):
        return rec == real or os.path.realpath(rec) == real
    parts = [p for p in rec.split(os.sep) if p not in ("", ".", "..")]
    return real.endswith(os.sep + os.path.join(*parts)) if parts else False


def _read_inputs_index(out: Path) -> InputsIndex:
    from musicbrain_cli.inputs import read_regular

    try:
        data = json.loads(read_regular(out / INPUTS_INDEX, max_bytes=MAX_INPUTS_INDEX_BYTES))
    except (OSError, ValueError, RecursionError):
        return InputsIndex()  # bookkeeping only: a bad one is no index (session 28 review)
    if not isinstance(data, dict):
        return InputsIndex()
    index = InputsIndex()
    if data.get("schema") != INPUTS_INDEX_SCHEMA:     # session 28's: {folder: real path}
        index.folders = {k: {"input": v} for k, v in data.items()
                         if isinstance(k, str) and isinstance(v, str)}
        return index
    folders, failures = data.get("folders"), data.get("failures")
    for name, entry in (folders.items() if isinstance(folders, dict) else ()):
        if isinstance(name, str) and isinstance(entry, dict) and isinstance(entry.get("input"), str):
            index.folders[name] = {k: v for k, v in entry.items()
                                   if k in ("input", "recorded", "seen", "superseded", "shown")
                                   and isinstance(v, str)}
    for real, row in (failures.items() if isinstance(failures, dict) else ()):
        if isinstance(real, str) and isinstance(row, dict) and isinstance(row.get("path"), str) \
                and isinstance(row.get("error"), str):
            index.failures[real] = {"path": row["path"], "error": row["error"]}
    return index


@functools.lru_cache(maxsize=4)
def _cached_index(out: str, stamp: tuple) -> InputsIndex:
    return _read_inputs_index(Path(out))


def inputs_index(out: Path) -> InputsIndex:
    """The index of ``out`` as it is on disk, read once per version of the file (every
    track of a scan asks, through :func:`track_folder`)."""
    try:
        st = os.stat(out / INPUTS_INDEX)
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
    except OSError:
        return InputsIndex()
    return _cached_index(str(out), stamp)


def _write_inputs_index(out: Path, index: InputsIndex) -> None:
    from musicbrain_cli.files import atomic_write

    data = {"schema": INPUTS_INDEX_SCHEMA,
            "folders": dict(sorted(index.folders.items())),
            "failures": dict(sorted(index.failures.items()))}
    try:
        atomic_write(out / INPUTS_INDEX, json.dumps(data, indent=0, ensure_ascii=False))
    except (OSError, UnicodeError, MusicBrainError):
        pass            # bookkeeping only: without it the next scan falls back to the paths


def _as_last_scanned(entry, index: InputsIndex):
    """A kept folder's catalog entry showing the path its input was last scanned under, where
    the index knows it and agrees with the folder's record: a moved file reuses its folder,
    whose result.json keeps the old path, and a later scan of other files put the old path
    back in the catalog, where the file no longer is (review of session 45)."""
    shown = (index.folders.get(_folder(entry) or "") or {}).get("shown")
    if shown and shown != entry.input_path and index.input_of(_folder(entry), entry.input_path):
        return dataclasses.replace(entry, input_path=shown)
    return entry


def _folder(entry) -> str | None:
    """The track folder (its name in OUT) of a catalog entry's report, or ``None``."""
    return PurePosixPath(entry.report).parts[0] if entry.report else None


def _real_input(entry, index: InputsIndex) -> str:
    """The real path of the input behind a catalog entry: from the index, where it agrees
    with the entry's recorded path, else that path resolved from here."""
    return index.input_of(_folder(entry), entry.input_path) or os.path.realpath(entry.input_path)


def _drop_superseded(result: ScanResult, *, gone: set[str], index: InputsIndex,
                     now: str, failed_sha: Mapping[str, str] | None = None,
                     failed_before: set[str] = frozenset()) -> None:
    """Leave out of the catalog each earlier folder of an input that no longer holds its
    audio, and all but the latest folder of each input.

    The catalog describes every input once, as it is now. An earlier result of an input that
    now holds other audio, or now fails to decode, is about a recording that is no longer
    there: shown as ``ok`` beside (or instead of) the current row it would give that file a
    verdict nobody has made on it. Such a folder is marked superseded in ``index`` (at
    ``now``), so that a later scan of other files does not bring it back (session 29 audit).
    An input whose track failed while its audio was the folder's (``failed_sha``: real
    path -> SHA-256; a report that could not be written, a timestamp server out of reach)
    keeps that folder: it still describes the file. Only an input that is gone (``gone``,
    the paths not found) keeps its earlier report otherwise; the console and the exit status
    say that it failed. An input the previous catalog listed as failing (``failed_before``,
    real paths) and this scan did not read keeps its failure row, whatever the index says
    (a stale or lost index must not bring the old verdict back: session 29 review). The
    left out folders stay on disk, listed in ``result.excluded`` with the reason.
    """
    # by real path: `in3/a.wav` of an earlier scan is `/abs/in3/a.wav` of this one (session
    # 28 audit: the old verdict stayed in the catalog beside the new audio's)
    gone = {os.path.realpath(p) for p in gone}
    current = {real: e for e in result.entries
               if (real := os.path.realpath(e.input_path)) not in gone}
    failed_sha = failed_sha or {}
    kept = []
    for entry in result.kept:
        folder = _folder(entry) or entry.input_path
        real = _real_input(entry, index)
        this = current.get(real)
        same_audio = (this is not None and this.error and failed_sha.get(real)
                      and failed_sha[real] == ((entry.track or {}).get("input") or {}).get("sha256"))
        if this is None or same_audio:
            if same_audio:
                result.kept_after_failure.append((folder, this.input_path))
            if this is None and (index.superseded(_folder(entry)) or real in failed_before):
                result.excluded.append((folder, "an earlier result, left out of the catalog: "
                                                "a later scan found its input failing or "
                                                "holding other audio"))
                continue
            kept.append(entry)
            continue
        why = (f"its input now fails ({this.error})" if this.error else
               "its input was analysed again and now holds other audio")
        result.excluded.append((folder, f"an earlier result, left out of the catalog: {why}"))
        mark = index.folders.setdefault(_folder(entry) or "",
                                        {"input": real, "recorded": entry.input_path})
        mark["superseded"] = now
    # Earlier folders of one input among themselves (a changed file rescanned, then a scan
    # of another subset): only the one matched to the input last describes it (session 28
    # review: both came back). Matched last: the index's `seen` (a folder reused by a later
    # scan was matched then, whatever its analysis time: session 29 audit), else, for a
    # folder the index does not know, its analysis time.
    # Grouped by the index, or for a folder it does not know (a scan killed before it wrote
    # the index) by an absolute recorded path; a relative one, resolved from here, may name
    # another folder's file of the same relative path, whose verified result must not be
    # dropped for it (session 29 review).
    by_input: dict[str, list] = {}
    for entry in kept:
        known = index.input_of(_folder(entry), entry.input_path)
        if known is None and os.path.isabs(entry.input_path or ""):
            known = os.path.realpath(entry.input_path)
        if known is not None:
            by_input.setdefault(known, []).append(entry)
    older = set()
    for group in by_input.values():
        if len(group) < 2:
            continue
        group.sort(key=lambda e: str(index.seen(_folder(e))
                                     or (e.track or {}).get("analysis_time") or ""))
        for entry in group[:-1]:
            older.add(id(entry))
            result.excluded.append((_folder(entry),
                                    "an earlier result, left out of the catalog: its input was "
                                    "analysed again later, into another folder"))
    result.kept = [e for e in kept if id(e) not in older]


def _failure_inputs(rows: Sequence, index: InputsIndex) -> list[str]:
    """The real path of each failure row of the previous catalog: from the index, which keys
    failures by real path (two rows may show the same relative path typed in two working
    folders: session 29 review), pairing rows and index entries of the same shown path and
    error in turn; a row the index does not know is its path resolved from here."""
    pool: dict[tuple[str, str], list[str]] = {}
    for real, row in sorted(index.failures.items()):
        pool.setdefault((row["path"], row["error"]), []).append(real)
    out = []
    for e in rows:
        reals = pool.get((e.input_path, e.error))
        out.append(reals.pop(0) if reals else os.path.realpath(e.input_path))
    return out


def _keep_other_folders(out: Path, ours: set[str], keys, result: ScanResult) -> None:
    """Add to ``result.kept`` the verified track folders of earlier scans in ``out``, and
    to ``result.excluded`` those that do not verify (the catalog never vouches for them)."""
    from musicbrain_cli.report import CatalogEntry
    from musicbrain_cli.report.manifest import MANIFEST_NAME

    try:
        folders = sorted(p for p in out.iterdir() if p.name not in ours
                         and not p.name.startswith(".") and not p.is_symlink() and p.is_dir()
                         and ((p / MANIFEST_NAME).exists() or (p / RESULT_JSON).exists()))
    except OSError as exc:
        raise InputError(f"cannot list output folder {str(out)!r}: "
                         f"{exc.strerror or exc}") from exc
    for folder in folders:
        track, why = check_finished(folder, None, keys=keys)
        if track is None:
            result.excluded.append((folder.name, f"does not verify ({why})" if why
                                    else "not a finished track folder"))
            continue
        name = next((n for n in ("report.pdf", "report.html") if (folder / n).is_file()),
                    RESULT_JSON)
        result.kept.append(CatalogEntry(str(track["input"].get("path") or folder.name),
                                        track=track, report=f"{folder.name}/{name}"))


def _previous_failures(out: Path) -> list:
    """The failed inputs an earlier scan listed in ``out``'s summary (they have no folder
    to carry them); kept so a later scan of other files does not drop them."""
    from musicbrain_cli.report import CatalogEntry
    from musicbrain_cli.report.catalog import SUMMARY_JSON
    from musicbrain_cli.report.verify import load_json

    try:
        rows = load_json((out / SUMMARY_JSON).read_bytes()).get("tracks")
    except (OSError, ValueError, AttributeError):
        return []
    if not isinstance(rows, list):
        return []
    return [CatalogEntry(r["path"], error=r["error"]) for r in rows
            if isinstance(r, dict) and r.get("status") == "error"
            and isinstance(r.get("path"), str) and isinstance(r.get("error"), str)]


def _report_rel(folder: Path, out: Path, options: ScanOptions) -> str:
    """The track's main report file, relative to the catalog: the PDF, else the HTML, else
    (``--report none``) its ``result.json``."""
    name = ("report.pdf" if "pdf" in options.formats else
            "report.html" if "html" in options.formats else RESULT_JSON)
    return str((folder / name).relative_to(out))


def _merge(into: dict[str, float], more: Mapping[str, float]) -> None:
    for k, v in more.items():
        into[k] = into.get(k, 0.0) + v


def load_ood(detector):
    """The detector's out-of-domain statistics (``detector.ood``, loaded with its weights by
    :meth:`Detector.from_pretrained`), or ``None``. Kept for callers of the old API."""
    return detector.ood


__all__ = ["ScanOptions", "ScanResult", "TrackOutcome", "analyse_track",
           "process_track", "scan", "track_folder", "check_output",
           "write_track_folder", "completed_result", "check_finished", "output_lock",
           "load_ood"]
