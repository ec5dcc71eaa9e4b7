"""``musicbrain evaluate``: measure a detector on a data set split.

What it measures (all written to ``metrics.json``, summarised in ``metrics.md``):

- classification: average precision per label, macro and micro mAP (scikit-learn, via
  :mod:`musicbrain_cli.metrics`), on each clip's track-level mean probability; labels the
  data set does not know for a clip are masked, never counted as negatives;
- style attribution: the mAP over the style labels, per style group, and the mean of the
  groups (:func:`musicbrain_cli.metrics.style_map`; the model card's ``style_map_macro`` is
  the first);
- detection (``source/ai``): ROC-AUC, and TPR/FPR with Wilson 95 % intervals at the model
  card's detection threshold (the false-positive rate is what accuses a human);
- explanations, on up to ``explain_windows`` windows (the first window of clips spread
  evenly over the split, so the sample does not depend on the model's output): FM-G-CAM
  (``cam_weighting`` channel or cell, ``cam_refine`` none or gradient-input, ``cam_destripe``
  the refined map's stride-pattern period, see
  :mod:`musicbrain_cli.explain.fmgcam`) for the top-k labels,
  deletion and insertion AUC of its fused map against random maps and an occlusion map;
- alignment: harmonic overlap (saliency on the partials of the sounding notes) and onset
  overlap, each against chance. The truth is the notes as played: in a reference corpus the
  stored score is the MIDI before the build's seeded humanisation (tempo stretch, timing
  jitter), so its clips' notes are replayed through it
  (:func:`musicbrain_cli.data.reference.build.played_midi`); another data set's stored score
  is the truth as it stands; a clip without a score gets
  :func:`musicbrain_cli.alignment.pitch.estimate_notes`. ``metrics.json`` counts each source
  (``alignment.notes_source``) and names the truth used (``alignment.truth``);
- labels: only the labels both the model and the data set know are scored; those only one
  side knows are listed (``labels_coverage``), never scored as negatives;
- faithfulness in the signal's terms (:mod:`musicbrain_cli.explain.fidelity`): frequency-band
  removal on the explained windows (the band the map marks most vs random bands of the same
  width), and a rhythmic-event test on ``event_clips`` synthetic clips rendered here (a
  sustained string texture, a second instrument entering at a known time), each against
  chance with intervals and p-values;
- figures: a precision-recall curve per scored label and FM-G-CAM examples (PNG).

A clip that fails to decode is listed with its reason and left out; the run carries on.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from musicbrain_cli import __version__
from musicbrain_cli.data.dataset import MANIFEST
from musicbrain_cli.errors import DatasetError, InputError, MusicBrainError
from musicbrain_cli.files import folder_lock, sha256_file
from musicbrain_cli.progress import NULL_PROGRESS, Progress
from musicbrain_cli.taxonomy import DETECTION_GROUP, DETECTION_LABEL, STYLE_GROUPS

METRICS_JSON, METRICS_MD = "metrics.json", "metrics.md"
#: One row per scored clip: its id, the clip-mean probability of every label, so that
#: every figure in metrics.json can be recomputed (and re-sliced) without the model, and the
#: verdict a scan of the clip states (the same model stage and rule: ``score_clip``).
PREDICTIONS_CSV = "predictions.csv"
PR_DIR, FMGCAM_DIR = "pr_curves", "fmgcam"
#: Windows explained for fidelity and alignment: the first window of clips spaced evenly
#: over the split (manifests are grouped by source and generator, so this spreads them over
#: every group; the first N clips would all come from one).
DEFAULT_EXPLAIN_WINDOWS = 32
DEFAULT_FIGURES = 4
DEFAULT_FIDELITY_STEPS = 20
#: Occlusion patch (bins, frames): 1/8 of the default 256 x 500 map per side, so one window
#: costs about 15 x 19 forwards (batched); finer patches are affordable on a GPU.
DEFAULT_OCCLUSION_PATCH = (32, 64)
#: Synthetic entry clips for the rhythmic-event test (rendered with FluidSynth, seeded).
DEFAULT_EVENT_CLIPS = 16
#: Entry clips: the sustained texture (GM String Ensemble 1) and the instruments that enter
#: (trumpet, flute, piano, clarinet, marimba: sharp and soft attacks alike).
EVENT_TEXTURE_PROGRAM = 48
EVENT_ENTRY_PROGRAMS = (56, 73, 0, 71, 12)


@dataclass
class _AUCs:
    """Deletion and insertion AUCs per map (``saliency``, ``random``, ...), one value per
    explained window or target; and, per window, whether the map beat each chance baseline."""

    deletion: dict[str, list[float]] = field(default_factory=dict)
    insertion: dict[str, list[float]] = field(default_factory=dict)
    beats_random: list[bool] = field(default_factory=list)
    beats_random_grid: list[bool] = field(default_factory=list)

    def add(self, deletion: dict[str, float], insertion: dict[str, float]) -> None:
        for store, aucs in ((self.deletion, deletion), (self.insertion, insertion)):
            for name, v in aucs.items():
                store.setdefault(name, []).append(v)

    def add_report(self, report) -> None:
        """One window's :class:`~musicbrain_cli.explain.FidelityReport`."""
        self.add(report.deletion_auc, report.insertion_auc)
        self.beats_random.append(report.beats_random)
        self.beats_random_grid.append(report.beats("random_grid"))

    def means(self) -> dict[str, Any]:
        return {"deletion_auc": {k: float(np.mean(v)) for k, v in self.deletion.items()},
                "insertion_auc": {k: float(np.mean(v)) for k, v in self.insertion.items()}}


@dataclass
class _ExplainTotals:
    fused: _AUCs = field(default_factory=_AUCs)      # the top-k FM-G-CAM map, per window
    # The fused map's AUCs per target: the source (human/ai) labels, the style labels together
    # (``style``) and each style group on its own (``style/period``, ...).
    by_target_group: dict[str, _AUCs] = field(default_factory=dict)
    # The verdict's own explanation: the window's predicted source label alone.
    verdict: _AUCs = field(default_factory=_AUCs)
    # The window's most probable style label explained by its own map alone, following that
    # label only (a style label's evidence is its own map, not the top-k map's mixture), and
    # the same AUCs per taxonomy group of that label.
    style_alone: _AUCs = field(default_factory=_AUCs)
    style_alone_groups: dict[str, _AUCs] = field(default_factory=dict)
    grid: tuple[int, int] | None = None
    harmonic: list = field(default_factory=list)
    onset: list = field(default_factory=list)
    # The same alignment for the verdict's own map (issue 26's targets name that map).
    harmonic_verdict: list = field(default_factory=list)
    onset_verdict: list = field(default_factory=list)
    # The same checks on each window's own spectrogram above its floor (alignment.overlap.
    # energy_reference): what a map that knows nothing of the model scores.
    harmonic_energy: list = field(default_factory=list)
    onset_energy: list = field(default_factory=list)
    # played: the stored score with the build's humanisation replayed; score: the stored
    # score as it is (a data set that records no humanisation); estimated: from the audio.
    notes_source: dict[str, int] = field(
        default_factory=lambda: {"played": 0, "score": 0, "estimated": 0})
    replay_failed: list[dict[str, str]] = field(default_factory=list)
    figures: list[str] = field(default_factory=list)
    weighting: str | None = None
    refine: str | None = None
    destripe: int = 0
    # Band removal: the fused top-k map (following the top-k labels) and the verdict's own map.
    band: list = field(default_factory=list)
    band_verdict: list = field(default_factory=list)
    # The work of each entry of the lists above (clip id when the data set names none), in
    # step with them: intervals and tests resample and count works, not windows, since the
    # windows of one work are not independent.
    works: list = field(default_factory=list)            # harmonic, onset and *_energy
    works_verdict: list = field(default_factory=list)    # harmonic_verdict, onset_verdict
    band_works: list = field(default_factory=list)
    band_verdict_works: list = field(default_factory=list)


#: Bootstrap resamples for the alignment lifts' intervals (windows resampled, counts pooled).
ALIGNMENT_BOOTSTRAP = 1000


def _window_ci(n: int, value, *, n_boot: int, seed: int, groups: Sequence[str] | None = None) -> list:
    """95 % bootstrap interval of ``value(indices)`` over ``n`` windows resampled with
    replacement, whole works at a time when ``groups`` names each window's work
    (:func:`musicbrain_cli.metrics.bootstrap_ci`); ``[None, None]`` when too few resamples
    give a finite value (more than 1 % undefined) or too few works are resampled."""
    from musicbrain_cli.metrics import bootstrap_ci

    return bootstrap_ci(n, value, groups=groups, n_boot=n_boot, seed=seed)


def _alignment_summary(harmonic: list, onset: list, *, n_boot: int = ALIGNMENT_BOOTSTRAP,
                       seed: int = 0, groups: Sequence[str] | None = None) -> dict[str, Any]:
    """Pooled harmonic and onset overlap of the windows (sums of counts, as a track pools its
    windows) with 95 % bootstrap intervals of the lifts, resampling windows (whole works when
    ``groups`` names each window's work): ``harmonic.lift`` = share on partials / chance,
    ``onset.hit_lift`` = onset hit rate / chance hit rate."""
    from musicbrain_cli.alignment.overlap import HarmonicOverlap, OnsetOverlap

    def ci(parts, combine, value):
        return _window_ci(len(parts), lambda idx: value(combine(parts[i] for i in idx)),
                          n_boot=n_boot, seed=seed, groups=groups)

    out: dict[str, Any] = {"harmonic": None, "onset": None}
    if harmonic:
        out["harmonic"] = {**HarmonicOverlap.combine(harmonic).to_dict(),
                           "lift_ci95": ci(harmonic, HarmonicOverlap.combine, lambda h: h.lift)}
    if onset:
        o = OnsetOverlap.combine(onset)
        hit_lift = lambda x: x.hit_rate / x.chance_hit_rate if x.chance_hit_rate else float("nan")  # noqa: E731
        out["onset"] = {**o.to_dict(), "hit_lift": hit_lift(o),
                        "hit_lift_ci95": ci(onset, OnsetOverlap.combine, hit_lift)}
    return out


def _over_reference(harmonic: list, onset: list, ref_harmonic: list, ref_onset: list, *,
                    n_boot: int = ALIGNMENT_BOOTSTRAP, seed: int = 0,
                    groups: Sequence[str] | None = None) -> dict[str, Any]:
    """How a map's alignment compares with the reference's on the same windows: its pooled
    share on partials over the reference's, and its onset hit rate over the reference's (1:
    the map does no better than the sound's own energy), with 95 % paired bootstrap intervals
    (the same windows resampled for both; whole works when ``groups`` names each window's
    work)."""
    from musicbrain_cli.alignment.overlap import HarmonicOverlap, OnsetOverlap

    def summary(parts, refs, combine, value):
        if not parts or len(parts) != len(refs):
            return None

        def ratio(idx):
            a, b = value(combine(parts[i] for i in idx)), value(combine(refs[i] for i in idx))
            return a / b if b else float("nan")

        return {"ratio": ratio(range(len(parts))),
                "ratio_ci95": _window_ci(len(parts), ratio, n_boot=n_boot, seed=seed,
                                         groups=groups)}

    return {"harmonic_share": summary(harmonic, ref_harmonic, HarmonicOverlap.combine, lambda h: h.share),
            "onset_hit_rate": summary(onset, ref_onset, OnsetOverlap.combine, lambda o: o.hit_rate)}


def _share(flags: list[bool]) -> float | None:
    """The share of True among ``flags``; ``None`` when there are none."""
    return float(np.mean(flags)) if flags else None


def _finite(x: Any) -> Any:
    """JSON-safe: NaN/inf -> None, numpy scalars -> Python, recursively."""
    if isinstance(x, dict):
        return {str(k): _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return float(x) if math.isfinite(float(x)) else None
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x


def _slug(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("_") or "label"


def _save_png(fig, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=110, bbox_inches="tight")


def _targets(dataset, rows, labels: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(y_true, mask)`` ``[N, L]`` in the model's label order; a model label the data set's
    taxonomy lacks is unknown (mask 0) for every clip."""
    data_labels = dataset.taxonomy.labels
    cols = [data_labels.index(l) if l in data_labels else -1 for l in labels]
    y_true = np.zeros((len(rows), len(labels)), np.float32)
    mask = np.zeros_like(y_true)
    for i, row in enumerate(rows):
        t, m = dataset.encode(row)
        for j, c in enumerate(cols):
            if c >= 0:
                y_true[i, j], mask[i, j] = t[c], m[c]
    return y_true, mask


def _pr_figures(y_true, scores, mask, labels, out: Path) -> list[str]:
    from matplotlib.figure import Figure
    from sklearn.metrics import average_precision_score, precision_recall_curve

    out.mkdir(parents=True, exist_ok=True)
    written = []
    for j, label in enumerate(labels):
        known = mask[:, j] > 0
        t, s = y_true[known, j], scores[known, j]
        # the labels metrics.average_precision scores: none without a positive, and none
        # without a negative (AP 1 whatever the scores, which the table calls n/a)
        if t.size == 0 or t.sum() == 0 or t.sum() == t.size:
            continue
        precision, recall, _ = precision_recall_curve(t, s)
        fig = Figure(figsize=(4, 3.2))
        ax = fig.add_subplot()
        ax.step(recall, precision, where="post")
        ax.axhline(t.mean(), ls="--", lw=0.8, color="grey", label=f"chance ({t.mean():.2f})")
        ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02),
               title=f"{label}: AP {average_precision_score(t, s):.3f} (n={t.size})")
        ax.legend(loc="lower left", fontsize="small")
        path = out / f"{_slug(label)}.png"
        _save_png(fig, path)
        written.append(str(path.relative_to(out.parent)))
    return written


def _write_predictions(path: Path, rows, labels: Sequence[str], scores: np.ndarray,
                       verdicts: Sequence[str]) -> None:
    # Clip ids are validated by the data set (letters, digits, '.', '_', '+', '-'); floats are
    # written in full (repr) so the file reproduces metrics.json exactly.
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["clip_id", *labels, "verdict"])
        for row, s, verdict in zip(rows, scores, verdicts):
            writer.writerow([row["clip_id"], *(repr(float(x)) for x in s), verdict])


def score_clip(detector, samples: np.ndarray, *, batch_size: int):
    """``(TrackPrediction, Verdict)`` of one clip's samples ``[shape=(n,)]`` at the model's
    rate: the scan's model stage (:meth:`Detector.predict_track`) and rule
    (:func:`musicbrain_cli.verdict.track_verdict`), so an evaluated clip and a scanned file
    with the same samples and batch size get the same P(AI) and verdict, bit for bit."""
    from musicbrain_cli.verdict import track_verdict

    track = detector.predict_track(samples, batch_size=batch_size)
    verdict, _ = track_verdict(track, detector)
    return track, verdict


def explained_positions(n_rows: int, n: int) -> set[int]:
    """Positions of the ``n`` clips (of ``n_rows``) whose first window is explained: evenly
    spaced from the first to the last, deterministic so a rerun explains the same clips."""
    if n <= 0 or n_rows <= 0:
        return set()
    if n >= n_rows:
        return set(range(n_rows))
    return {int(i) for i in np.linspace(0, n_rows - 1, n).round()}


def _window(samples: np.ndarray, n: int) -> np.ndarray:
    w = np.zeros(n, np.float32)
    w[: min(n, samples.size)] = samples[:n]
    return w


def _reference_summary(root: Path) -> dict | None:
    """The reference corpus's ``reference.json`` (its build parameters), or None when the
    data set is not a reference corpus."""
    from musicbrain_cli.data.reference.build import REFERENCE_JSON

    path = Path(root) / REFERENCE_JSON
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DatasetError(f"cannot read {str(path)!r}: {exc}") from exc


def _alignment_notes(dataset, row, reference: dict | None, totals: _ExplainTotals):
    """``(notes, source)`` for the alignment truth of ``row``: the notes as played
    (``played``), the stored score (``score``), or ``(None, "estimated")`` (estimated from
    the window later). A replay that fails (the build's draws changed) falls back to the
    stored score and is listed in ``totals.replay_failed``."""
    from musicbrain_cli.alignment.overlap import notes_from_midi, notes_from_objects
    from musicbrain_cli.data.reference.build import played_midi

    score = dataset.score_path(row)
    if score is None:
        return None, "estimated"
    if reference is not None:
        try:
            midi = played_midi(dataset.root, row, reference=reference)
        except DatasetError as exc:
            totals.replay_failed.append({"clip_id": row["clip_id"], "error": str(exc)})
        else:
            return notes_from_objects(n for inst in midi.instruments if not inst.is_drum
                                      for n in inst.notes), "played"
    return notes_from_midi(score), "score"


def _label_coverage(model_labels: Sequence[str], data_labels: Sequence[str]) -> dict[str, Any]:
    """Which labels can be scored: those both know. A model label the data set lacks is
    unknown for every clip (masked); a data set label the model lacks has no output to score.
    Both are listed so metrics.md says what was left out."""
    data = set(data_labels)
    model = set(model_labels)
    return {"scored": [l for l in model_labels if l in data],
            "model_only": [l for l in model_labels if l not in data],
            "data_only": [l for l in data_labels if l not in model]}


def _explain_window(detector, wave: np.ndarray, notes, *, clip_id: str, totals: _ExplainTotals,
                    figure_dir: Path | None, top_k: int, steps: int, substrate: str,
                    occlusion: bool, occlusion_patch, n_random: int,
                    weighting: str | None = None, refine: str | None = None,
                    destripe: int | None = None, notes_source: str = "score",
                    work_id: str = "", audio_s: float | None = None) -> None:
    """One explained window ``wave`` (``audio_s``: where its audio ends when the clip is
    shorter than a window and the rest repeats it; the onsets' chance counts the clip once,
    :func:`~musicbrain_cli.alignment.overlap.onset_overlap`)."""
    from musicbrain_cli.alignment.overlap import (energy_reference, harmonic_overlap, note_onsets,
                                                  onset_overlap)
    from musicbrain_cli.explain import (FMGradCAM, band_removal, fidelity_report,
                                        plot_fmgcam)
    from musicbrain_cli.features import bin_frequencies, frame_times

    fe = detector.config.front_end
    times, freqs = frame_times(fe), bin_frequencies(fe)
    spec = detector.spectrograms(wave[None])
    k = min(top_k, len(detector.labels))
    options = _cam_options(weighting, refine, destripe)
    with FMGradCAM(detector.model, layer="fusion", k=k, **options) as cam:
        res = cam(spec, times=times, freqs=freqs)
    fused = res.fused()[0]
    totals.weighting, totals.refine = res.extra["weighting"], res.extra["refine"]
    totals.destripe = res.extra["destripe"]
    # This window's number: its random baseline maps are its own (seeds n_random * window + 1
    # .. + n_random), as its random bands are: with one seed for all, every window's chance
    # was the same few maps and their spread never averaged out over the windows.
    window = len(totals.fused.beats_random)

    def follow(cam_result, targets):
        """Deletion/insertion of ``cam_result``'s fused map, following ``targets``' calibrated
        probabilities, against occlusion and both chance baselines."""
        return fidelity_report(detector.model, spec[0, 0], cam_result.fused()[0], targets=targets,
                               substrate_kind=substrate, steps=steps, n_random=n_random,
                               occlusion=occlusion, occlusion_patch=occlusion_patch,
                               random_grid=cam_result.extra["grid"],
                               score_fn=detector.calibrate, seed=n_random * window)

    # Every figure of the window is computed first and added to the totals together at the
    # end: a check that raises (the clip is then listed as an explanation failure) leaves no
    # part of the window in the totals, whose lists and works stay in step (review: the
    # fidelity and band figures of a window whose alignment raised stayed in the totals).
    report = follow(res, res.labels[0].tolist())
    band = band_removal(detector.model, spec[0, 0], fused, targets=res.labels[0].tolist(),
                        substrate_kind=substrate, score_fn=detector.calibrate,
                        seed=len(totals.band))
    work = work_id or clip_id
    source = [i for i, name in enumerate(detector.labels) if name.split("/")[0] == DETECTION_GROUP]
    per_target = report.by_target
    groups = []
    for i, target in enumerate(report.targets):
        deletion = {name: aucs[i] for name, aucs in per_target["deletion"].items()}
        insertion = {name: aucs[i] for name, aucs in per_target["insertion"].items()}
        keys = (["source"] if target in source
                else ["style", f"style/{detector.labels[target].split('/')[0]}"])
        groups += [(key, deletion, insertion) for key in keys]
    alone = verdict_report = verdict_band = None
    if source:
        # Explain the verdict by itself: the window's more probable source label (human or
        # ai), so style labels can neither share its map nor its followed score.
        verdict, alone = _own_map(detector, spec, res, source, options)
        verdict_report = follow(alone, [verdict])
        verdict_band = band_removal(detector.model, spec[0, 0], alone.fused()[0],
                                    targets=[verdict], substrate_kind=substrate,
                                    score_fn=detector.calibrate, seed=len(totals.band_verdict))
    untrained = _untrained(detector)
    style = [i for i in range(len(detector.labels))
             if i not in source and detector.labels[i] not in untrained]
    style_report = None
    if style:
        top, own_style = _own_map(detector, spec, res, style, options)
        style_report = follow(own_style, [top])
        style_group = detector.labels[top].split("/")[0]
    if notes is None:
        from musicbrain_cli.alignment.pitch import estimate_notes

        notes = estimate_notes(wave, fe.sample_rate)
        notes_key = "estimated"
    else:
        notes_key = notes_source
    onsets = note_onsets(notes)
    h, o = (harmonic_overlap(fused, freqs=freqs, times=times, notes=notes),
            onset_overlap(fused, times=times, onsets=onsets, until=audio_s))
    ref_h, ref_o = energy_reference(spec[0, 0].cpu().numpy(), freqs=freqs, times=times, notes=notes,
                                    onsets=onsets, until=audio_s)
    own_h = own_o = None
    if alone is not None:
        own = alone.fused()[0]
        own_h, own_o = (harmonic_overlap(own, freqs=freqs, times=times, notes=notes),
                        onset_overlap(own, times=times, onsets=onsets, until=audio_s))
    figure = None
    if figure_dir is not None:
        from matplotlib.figure import Figure

        figure_dir.mkdir(parents=True, exist_ok=True)
        names = [detector.labels[i] for i in res.labels[0]]
        fig = Figure(figsize=(8, 3.6))
        ax = fig.add_subplot()
        plot_fmgcam(ax, spec[0, 0].cpu().numpy(), res.maps[0], names, times=times, freqs=freqs)
        ax.set_title(f"{clip_id}: FM-G-CAM, top {k} labels")
        path = figure_dir / f"{_slug(clip_id)}.png"
        _save_png(fig, path)
        figure = str(path.relative_to(figure_dir.parent))

    # --- the window's figures, added together -------------------------------------------
    totals.band.append(band)
    totals.band_works.append(work)
    totals.fused.add_report(report)
    totals.grid = res.extra["grid"]
    for key, deletion, insertion in groups:
        totals.by_target_group.setdefault(key, _AUCs()).add(deletion, insertion)
    if verdict_report is not None:
        totals.verdict.add_report(verdict_report)
        totals.band_verdict.append(verdict_band)
        totals.band_verdict_works.append(work)
    if style_report is not None:
        totals.style_alone.add_report(style_report)
        totals.style_alone_groups.setdefault(style_group, _AUCs()).add_report(style_report)
    totals.notes_source[notes_key] += 1
    totals.harmonic.append(h)
    totals.onset.append(o)
    totals.harmonic_energy.append(ref_h)
    totals.onset_energy.append(ref_o)
    totals.works.append(work)
    if own_h is not None:
        totals.harmonic_verdict.append(own_h)
        totals.onset_verdict.append(own_o)
        totals.works_verdict.append(work)
    if figure is not None:
        totals.figures.append(figure)


#: Seconds the entry clip's chord sounds before the clip begins, so that the clip opens on a
#: steady texture and the entry is its only event (session 19: with the chord's own attack at
#: 0 s, the clip's largest change in energy was that attack, not the entry).
ENTRY_LEAD_IN_S = 1.0
#: The span of an entry clip (fractions of its length) the event test searches for the map's
#: change: the entries are drawn from its middle 40 %, this adds a margin of a tenth either
#: side and leaves out the padded first and last columns, where every map changes most.
ENTRY_SEARCH = (0.2, 0.8)


def entry_search(seconds: float) -> tuple[float, float]:
    """``within=`` for :func:`~musicbrain_cli.explain.event_peak` on an entry clip of
    ``seconds`` s (see :data:`ENTRY_SEARCH`)."""
    return ENTRY_SEARCH[0] * seconds, ENTRY_SEARCH[1] * seconds


def entry_clip(*, seconds: float, sample_rate: int, seed: int, soundfont=None):
    """A synthetic clip with one rhythmic event at a known time: a sustained string chord,
    already sounding when the clip begins (it starts :data:`ENTRY_LEAD_IN_S` earlier), and a
    second instrument entering at ``t0`` (uniform over the middle 40 % of the clip) with a
    short melody to the end. Returns ``(samples [shape=(n,)], t0 s)``, exactly ``seconds``
    long, ``t0`` on the clip's clock. Same seed -> same clip. Raises
    :class:`~musicbrain_cli.errors.RenderError` when FluidSynth or a SoundFont is missing."""
    import pretty_midi

    from musicbrain_cli.data.render import available_soundfonts, render_midi

    rng = np.random.default_rng(seed)
    t0 = float(rng.uniform(0.3 * seconds, 0.7 * seconds))
    lead, end = ENTRY_LEAD_IN_S, ENTRY_LEAD_IN_S + seconds
    midi = pretty_midi.PrettyMIDI()
    texture = pretty_midi.Instrument(program=EVENT_TEXTURE_PROGRAM)
    root = int(rng.integers(45, 57))                      # A2..G#3
    for interval in (0, 4, 7, 12):                        # a major chord, held throughout
        texture.notes.append(pretty_midi.Note(velocity=70, pitch=root + interval, start=0.0, end=end))
    entry = pretty_midi.Instrument(program=int(rng.choice(EVENT_ENTRY_PROGRAMS)))
    start, scale = lead + t0, (0, 2, 4, 5, 7, 9, 11, 12)
    while start < end - 0.05:
        length = float(rng.choice([0.25, 0.5, 0.75]))
        pitch = root + 24 + int(rng.choice(scale))
        entry.notes.append(pretty_midi.Note(velocity=96, pitch=pitch, start=start,
                                            end=min(start + length, end)))
        start += length
    midi.instruments += [texture, entry]
    font = soundfont if soundfont is not None else available_soundfonts()[0]
    y = render_midi(midi, font, sample_rate=sample_rate, seed=seed)
    skip = int(round(lead * sample_rate))
    return _window(y[skip:], int(round(seconds * sample_rate))), t0


def _own_map(detector, spec, res, candidates: Sequence[int], options: dict[str, Any]):
    """The most probable of ``candidates`` (label indices) by the top-k result ``res``'s
    logits, and its FM-G-CAM map explained by itself: ``(label, CAM result)``."""
    from musicbrain_cli.explain import FMGradCAM, LabelTarget

    label = max(candidates, key=lambda i: float(res.logits[0, i]))
    with FMGradCAM(detector.model, layer="fusion", k=1, **options) as cam:
        return label, cam(spec, targets=[LabelTarget(label)])


def _untrained(detector) -> set[str]:
    """Labels the model card says had no training example: a scan never offers them, so no
    explanation is measured on them (``model.card.untrained_labels``)."""
    from musicbrain_cli.model.card import untrained_labels

    return untrained_labels(detector.card or {})


def _cam_options(weighting: str | None, refine: str | None,
                 destripe: int | None = None) -> dict[str, Any]:
    """FMGradCAM keywords the caller set (``None``: FMGradCAM's default)."""
    return {k: v for k, v in (("weighting", weighting), ("refine", refine), ("destripe", destripe))
            if v is not None}


def _event_test(detector, n_clips: int, *, top_k: int, weighting: str | None,
                refine: str | None = None, destripe: int | None = None,
                seed: int = 0, progress: Progress = NULL_PROGRESS) -> dict[str, Any]:
    """The rhythmic-event test on ``n_clips`` entry clips, for the fused top-k map, for the
    verdict's own map, for the own map of the clip's most probable instrumentation label (an
    entry changes the instrumentation) and for the input-energy reference (the clip's own
    spectrogram above its floor: whether the test can be passed by the sound alone).

    The map's change is read by the step detector (``DEFAULT_EVENT_STEP_S`` of
    :mod:`musicbrain_cli.explain.fidelity` either side of each boundary, at most the margin
    before the entries' span; its figures at the top level, the span under ``step_s``) and,
    as before session 24, by the largest jump between consecutive columns (under
    ``frame_difference``), which any note attack of the entering melody can make.
    ``{"skipped": reason}`` when the clips cannot be rendered here."""
    from musicbrain_cli.errors import RenderError
    from musicbrain_cli.explain import event_summary
    from musicbrain_cli.explain.fidelity import DEFAULT_EVENT_STEP_S
    from musicbrain_cli.features import bin_frequencies, frame_times

    fe = detector.config.front_end
    # no longer than the margin before the entries' span, so that every entry has whole
    # spans on both sides (a 10-s window: the full second)
    step_s = min(DEFAULT_EVENT_STEP_S, ENTRY_SEARCH[0] * fe.window_s)
    times, freqs = frame_times(fe), bin_frequencies(fe)
    options = _cam_options(weighting, refine, destripe)
    k = min(top_k, len(detector.labels))
    source = [i for i, name in enumerate(detector.labels) if name.split("/")[0] == DETECTION_GROUP]
    untrained = _untrained(detector)
    instrumentation = [i for i, name in enumerate(detector.labels)
                       if name.split("/")[0] == "instrumentation" and name not in untrained]
    within = entry_search(fe.window_s)
    hits: dict[float, dict[str, list]] = {}
    with progress.task("rhythmic-event test", total=n_clips) as task:
        for i in range(n_clips):
            try:
                wave, t0 = entry_clip(seconds=fe.window_s, sample_rate=fe.sample_rate, seed=seed + i)
            except RenderError as exc:
                return {"skipped": f"entry clips cannot be rendered: {exc}"}
            for step, found in _event_clip(detector, wave, t0, k=k, options=options, source=source,
                                           instrumentation=instrumentation, times=times,
                                           freqs=freqs, within=within,
                                           steps=(step_s, 0.0)).items():
                for name, hit in found.items():
                    hits.setdefault(step, {}).setdefault(name, []).append(hit)
            task.advance()

    def summaries(step: float) -> dict[str, Any]:
        found = hits.get(step, {})
        return {name: event_summary(found[name]) if found.get(name) else None
                for name in ("fused", "verdict", "instrumentation", "energy_reference")}

    return {**summaries(step_s), "step_s": step_s, "frame_difference": summaries(0.0)}


def _event_clip(detector, wave, t0: float, *, k: int, options, source, instrumentation,
                times, freqs, within, steps: Sequence[float]) -> dict[float, dict[str, Any]]:
    """One entry clip of :func:`_event_test`: per way of reading the change (step span in s,
    0 = consecutive columns), each map's :class:`~musicbrain_cli.explain.EventHit`."""
    from musicbrain_cli.alignment.overlap import energy_map
    from musicbrain_cli.explain import FMGradCAM, event_peak

    spec = detector.spectrograms(wave[None])
    maps = {"energy_reference": energy_map(spec[0, 0].cpu().numpy())}
    with FMGradCAM(detector.model, layer="fusion", k=k, **options) as cam:
        res = cam(spec, times=times, freqs=freqs)
    maps["fused"] = res.fused()[0]
    if source:
        maps["verdict"] = _own_map(detector, spec, res, source, options)[1].fused()[0]
    if instrumentation:
        # An entry changes the instrumentation: the most probable instrumentation label's
        # own map is the one whose evidence an entering instrument should move.
        maps["instrumentation"] = _own_map(detector, spec, res, instrumentation,
                                           options)[1].fused()[0]
    return {step: {name: event_peak(m, times=times, t0=t0, within=within, step_s=step)
                   for name, m in maps.items()}
            for step in steps}


def evaluate(dataset, detector, out_dir: str | Path, *, split: str = "test",
             explain_windows: int = DEFAULT_EXPLAIN_WINDOWS, n_figures: int = DEFAULT_FIGURES,
             top_k: int = 3, fidelity_steps: int = DEFAULT_FIDELITY_STEPS,
             substrate: str = "floor", occlusion: bool = True,
             occlusion_patch: tuple[int, int] = DEFAULT_OCCLUSION_PATCH, n_random: int = 3,
             batch_size: int = 16, overwrite: bool = False, cam_weighting: str | None = None,
             cam_refine: str | None = None, cam_destripe: int | None = None,
             event_clips: int = DEFAULT_EVENT_CLIPS,
             progress: Progress = NULL_PROGRESS) -> dict[str, Any]:
    """Evaluate ``detector`` (:class:`~musicbrain_cli.model.inference.Detector`) on the
    ``split`` of ``dataset`` (:class:`~musicbrain_cli.data.dataset.Dataset`); write
    ``metrics.json``, ``metrics.md`` and figures into ``out_dir``; return the metrics dict."""
    from musicbrain_cli.audio.intake import iter_windows, load_audio
    from musicbrain_cli.metrics import average_precision, rates_at_threshold, roc_auc, style_map

    out = Path(out_dir)
    if not overwrite:
        _refuse_to_replace(out)
    if explain_windows < 0 or n_figures < 0 or event_clips < 0:
        raise InputError(f"explain_windows, n_figures and event_clips must be >= 0, got "
                         f"{explain_windows}, {n_figures}, {event_clips}")
    if n_random < 1:      # before the run, not once per window (fidelity_report refuses it)
        raise InputError(f"n_random must be at least 1 (the chance baseline), got {n_random}")
    rows = dataset.split(split)
    if not rows:
        raise DatasetError(f"split {split!r} of {str(dataset.root)!r} has no clips")
    out.mkdir(parents=True, exist_ok=True)
    # The run writes into a hidden folder in OUT and replaces the previous run's outputs,
    # all of them (figures of clips this run does not draw would otherwise sit beside its
    # metrics as if they were its own), only once it has written every one of its own: a
    # run that fails or is interrupted leaves the previous one as it was.
    with folder_lock(out, name=LOCK_NAME, holder="evaluation"), _staged_run(out) as work:
        if not overwrite:                  # written by a run that ended since the check
            _refuse_to_replace(out)
        fe = detector.config.front_end
        labels = list(detector.labels)
        scores, kept, failed, verdicts, explain_failed = [], [], [], [], []
        totals = _ExplainTotals()
        reference = _reference_summary(dataset.root)
        explain_at = explained_positions(len(rows), explain_windows)
        ordered = sorted(explain_at)      # figures: spread over the explained clips, too
        figure_at = {ordered[i] for i in explained_positions(len(ordered), n_figures)}
        explained: list[str] = []
        with progress.task(f"evaluating {split}", total=len(rows)) as task:
            for position, row in enumerate(rows):
                clip_id = row["clip_id"]
                try:
                    samples = load_audio(dataset.audio_path(row), sample_rate=fe.sample_rate)
                    track, verdict = score_clip(detector, samples, batch_size=batch_size)
                    scores.append([track.aggregate[l]["mean"] for l in labels])
                    verdicts.append(verdict.label)
                    kept.append(row)
                except MusicBrainError as exc:
                    failed.append({"clip_id": clip_id, "error": f"{type(exc).__name__}: {exc}"})
                    task.advance()
                    continue
                # A clip whose explanation fails is still scored: it is listed apart, never both
                # scored and failed.
                try:
                    if position in explain_at:
                        notes, source = _alignment_notes(dataset, row, reference, totals)
                        figure_dir = work / FMGCAM_DIR if position in figure_at else None
                        # the clip's first window as the model stage read it (a short clip
                        # repeated to fill it: intake.iter_windows), not a copy of the rule
                        first = next(iter_windows(samples, sample_rate=fe.sample_rate,
                                                  window_s=fe.window_s, hop_s=fe.hop_s))
                        if notes is not None and first.start_s:
                            # the window starts where the clip's sound does: the notes too
                            notes = [replace(n, start=n.start - first.start_s,
                                             end=n.end - first.start_s) for n in notes
                                     if n.end > first.start_s]
                        _explain_window(detector, first.samples, notes,
                                        clip_id=clip_id, totals=totals, figure_dir=figure_dir,
                                        top_k=top_k, steps=fidelity_steps, substrate=substrate,
                                        occlusion=occlusion, occlusion_patch=occlusion_patch,
                                        n_random=n_random, weighting=cam_weighting,
                                        refine=cam_refine, destripe=cam_destripe,
                                        notes_source=source, work_id=row.get("work_id") or "",
                                        audio_s=(first.n_valid / fe.sample_rate
                                                 if first.padded else None))
                        explained.append(clip_id)
                except MusicBrainError as exc:
                    explain_failed.append({"clip_id": clip_id, "error": f"{type(exc).__name__}: {exc}"})
                task.advance()
        if not kept:
            raise DatasetError(f"every clip of split {split!r} failed; first: {failed[0]['error']}")
        y_score = np.asarray(scores, dtype=np.float64)
        y_true, mask = _targets(dataset, kept, labels)
        classification = average_precision(y_true, y_score, mask=mask, labels=labels)
        metrics: dict[str, Any] = {
            "split": split, "clips": len(rows), "clips_scored": len(kept), "failed": failed,
            "explain_failed": explain_failed,
            "model": {**{k: detector.card.get(k) for k in ("name", "version", "weights_sha256")},
                      # the card (calibration, operating point, band) and the domain statistics
                      # decide the probabilities and verdicts as much as the weights, and no
                      # pin covers them: named by the hashes of the bytes loaded, as a scan
                      # names them (review, session 46)
                      **{f"{k}_sha256": v for k, v in
                         (getattr(detector, "file_sha256", None) or {}).items()}},
            "software": {"musicbrain": __version__},
            # which data the figures are of: two evaluations of one model on different or
            # edited data sets must not be mistaken for each other (session 26 audit)
            "data": {"path": str(dataset.root),
                     "manifest_sha256": sha256_file(Path(dataset.root) / MANIFEST)},
            "caution": _caution(split, sha256_file(Path(dataset.root) / MANIFEST), detector.card),
            "labels": labels,
            "labels_coverage": _label_coverage(labels, dataset.taxonomy.labels),
            "classification": classification.to_dict(),
            "style": style_map(classification.per_label, STYLE_GROUPS),
        }
        if DETECTION_LABEL in labels:
            j = labels.index(DETECTION_LABEL)
            thr = detector.thresholds[DETECTION_LABEL]
            metrics["detection"] = {
                "label": DETECTION_LABEL,
                "roc_auc": roc_auc(y_true[:, j], y_score[:, j], mask=mask[:, j]),
                "at_threshold": rates_at_threshold(y_true[:, j], y_score[:, j], thr, mask=mask[:, j]),
                # the content line's verdict on each clip by the model card's full rule (band,
                # window disagreement, domain checks): a scan's content_label, which at_threshold
                # knows nothing of (a scan's combined verdict also weighs the other lines)
                "verdicts": verdict_counts(y_true[:, j], mask[:, j], verdicts),
                # the same verdicts counted by work: clips of one work are not independent,
                # so a clip-level interval is narrower than the evidence (finalize's by_work)
                "by_work": _verdicts_by_work(kept, y_true[:, j], mask[:, j], verdicts),
            }
        fused, verdict = totals.fused, totals.verdict
        n_exp = len(fused.beats_random)
        metrics["fidelity"] = {
            "windows": n_exp, "clips": explained, "works": list(totals.works), "substrate": substrate, "steps": fidelity_steps, "top_k": top_k,
            # each window's chance AUCs are the mean over this many random maps of each kind
            "n_random": n_random,
            "weighting": totals.weighting, "refine": totals.refine, "destripe": totals.destripe,
            "occlusion_patch": list(occlusion_patch) if occlusion else None,
            **fused.means(),
            "beats_random_share": _share(fused.beats_random),
            "beats_random_grid_share": _share(fused.beats_random_grid),
            "random_grid": list(totals.grid) if totals.grid else None,
            "by_target_group": {group: {"targets": len(aucs.insertion["saliency"]), **aucs.means()}
                                for group, aucs in sorted(totals.by_target_group.items())},
            "verdict": {"windows": len(verdict.beats_random_grid), **verdict.means(),
                        "beats_random_grid_share": _share(verdict.beats_random_grid)},
            "style_alone": {"windows": len(totals.style_alone.beats_random_grid),
                            **totals.style_alone.means(),
                            "beats_random_grid_share": _share(totals.style_alone.beats_random_grid),
                            "by_group": {group: {"windows": len(aucs.beats_random_grid), **aucs.means()}
                                         for group, aucs in sorted(totals.style_alone_groups.items())}},
        }
        from musicbrain_cli.explain import band_removal_summary

        metrics["faithfulness"] = {
            "band_removal": {"fused": band_removal_summary(totals.band, groups=totals.band_works),
                             "verdict": band_removal_summary(totals.band_verdict,
                                                             groups=totals.band_verdict_works),
                             "substrate": substrate},
            "rhythmic_event": (_event_test(detector, event_clips, top_k=top_k, weighting=cam_weighting,
                                           refine=cam_refine, destripe=cam_destripe, progress=progress)
                               if event_clips else {"skipped": "event_clips=0"}),
        }
        metrics["alignment"] = {
            "windows": n_exp, "notes_source": totals.notes_source,
            "truth": _truth_name(totals.notes_source),
            "replay_failed": totals.replay_failed,
            # intervals resample works (a work's windows are not independent), not windows
            "works": len(set(totals.works)),
            **_alignment_summary(totals.harmonic, totals.onset, groups=totals.works),
            "verdict": _alignment_summary(totals.harmonic_verdict, totals.onset_verdict,
                                          groups=totals.works_verdict),
            "energy_reference": _alignment_summary(totals.harmonic_energy, totals.onset_energy,
                                                   groups=totals.works),
            # each map against the reference on the same windows (1: no better than the sound)
            "over_reference": {
                "fused": _over_reference(totals.harmonic, totals.onset, totals.harmonic_energy,
                                         totals.onset_energy, groups=totals.works),
                "verdict": _over_reference(totals.harmonic_verdict, totals.onset_verdict,
                                           totals.harmonic_energy, totals.onset_energy,
                                           groups=totals.works_verdict)},
        }
        metrics["figures"] = {"pr_curves": _pr_figures(y_true, y_score, mask, labels, work / PR_DIR),
                              "fmgcam": totals.figures}
        metrics["predictions"] = PREDICTIONS_CSV
        _write_predictions(work / PREDICTIONS_CSV, kept, labels, y_score, verdicts)
        metrics = _finite(metrics)
        (work / METRICS_JSON).write_text(json.dumps(metrics, indent=2, allow_nan=False) + "\n", "utf-8")
        (work / METRICS_MD).write_text(metrics_markdown(metrics), "utf-8")
        return metrics


#: What one evaluation run writes into its folder (all of it replaced by ``overwrite``), in the
#: order a finished run moves them into place: ``metrics.json`` last.
RUN_OUTPUTS = (PREDICTIONS_CSV, PR_DIR, FMGCAM_DIR, METRICS_MD, METRICS_JSON)
_STAGING_PREFIX = ".evaluate-run-"
#: One evaluation at a time per output folder (:func:`musicbrain_cli.files.folder_lock`).
LOCK_NAME = ".musicbrain-evaluate.lock"


def _refuse_to_replace(out: Path) -> None:
    """Raise :class:`InputError` when ``out`` holds any file or folder a run writes
    (:data:`RUN_OUTPUTS`): a finished run replaces all of them, so without ``overwrite`` a
    ``metrics.md``, ``predictions.csv`` or ``fmgcam/`` already there (a user's, or one left
    beside a removed ``metrics.json``) was deleted unasked (review, session 46)."""
    there = [name for name in RUN_OUTPUTS if os.path.lexists(out / name)]
    if there:
        raise InputError(f"{str(out / there[-1])!r} exists: pass overwrite=True (--overwrite) "
                         f"to replace it" + (f" (and {', '.join(there[:-1])})" if there[:-1] else ""))


@contextlib.contextmanager
def _staged_run(out: Path):
    """A hidden folder in ``out`` for a run to write into; when the block ends normally, the
    run's outputs replace every output of the previous run in ``out`` (:data:`RUN_OUTPUTS`:
    one the new run did not write is removed) and the folder goes. When the block raises
    (an interrupt too), the folder goes and ``out`` is untouched. The caller holds ``out``'s
    lock (:data:`LOCK_NAME`), so a staging folder already there is one a run killed outright
    left behind: it is removed first."""
    for stale in out.glob(f"{_STAGING_PREFIX}*"):
        shutil.rmtree(stale, ignore_errors=True)
    stage = Path(tempfile.mkdtemp(prefix=_STAGING_PREFIX, dir=out))
    try:
        yield stage
        replaced = stage / ".replaced"
        replaced.mkdir()
        for name in RUN_OUTPUTS:
            if os.path.lexists(out / name):
                os.replace(out / name, replaced / name)
            if os.path.lexists(stage / name):
                os.replace(stage / name, out / name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def verdict_counts(is_ai, known, verdicts: Sequence[str]) -> dict[str, dict[str, int]]:
    """Per true class (``human``, ``ai``; clips of unknown source left out), how many clips the
    full verdict rule called ``ai``, ``human`` and ``inconclusive``."""
    out = {truth: {"ai": 0, "human": 0, "inconclusive": 0} for truth in ("human", "ai")}
    for y, k, v in zip(is_ai, known, verdicts):
        if k > 0.5:
            out["ai" if y > 0.5 else "human"][v] += 1
    return out


def _verdicts_by_work(rows: Sequence[Mapping], is_ai, known, verdicts: Sequence[str]
                      ) -> dict[str, Any] | None:
    """:func:`musicbrain_cli.metrics.work_rates` of the clips of known source: human works
    with any clip called ``ai``, AI works with any clip called ``human``, Wilson intervals
    over works; ``None`` when the data set names no work."""
    from musicbrain_cli.metrics import work_rates
    from musicbrain_cli.verdict import AI, HUMAN

    keep = [i for i, k in enumerate(known) if k > 0.5]
    works = {rows[i]["clip_id"]: rows[i].get("work_id") or "" for i in keep}
    if not any(works.values()):
        return None
    return work_rates([rows[i]["clip_id"] for i in keep], [verdicts[i] for i in keep],
                      np.asarray([is_ai[i] > 0.5 for i in keep]), works, ai=AI, human=HUMAN)


def _truth_name(counts: dict[str, int]) -> str:
    """What the alignment was measured against, in words (metrics.json ``alignment.truth``)."""
    names = {"played": "notes as played (stored score + the build's humanisation replayed)",
             "score": "stored score as it is (no humanisation recorded)",
             "estimated": "notes estimated from the audio"}
    used = [names[k] for k, n in counts.items() if n]
    return "; ".join(used) if used else "none"


def _fmt(x: Any, digits: int = 3) -> str:
    return "n/a" if x is None else (f"{x:.{digits}f}" if isinstance(x, float) else str(x))


def _ci(pair, digits: int = 3) -> str:
    return "n/a" if not pair or pair[0] is None else f"[{pair[0]:.{digits}f}, {pair[1]:.{digits}f}]"


def _p(x: float | None) -> str:
    return "n/a" if x is None else (f"{x:.2g}" if x >= 1e-4 else "< 1e-4")


def _faithfulness_markdown(f: dict[str, Any] | None) -> list[str]:
    """The band-removal and rhythmic-event tables of metrics.md."""
    if not f:
        return []
    b = f["band_removal"]
    lines = ["", "## Faithfulness in the signal's terms", "",
             "### Frequency-band removal", "",
             f"The band of {b['fused']['width'] or b['verdict']['width'] or '?'} rows the map marks "
             f"most is set to the `{b['substrate']}` substrate, and so are random bands of the "
             "same width (chance); drop = fall of the explained labels' mean probability. "
             "Difference: marked drop minus random drop, bootstrap 95 % interval; p-values "
             "one-sided (the marked band hurts more). Interval, share and tests count "
             f"{'works (each by the mean difference of its windows; the windows of one work are not independent)' if b['fused'].get('unit') == 'work' else 'windows'}.", "",
             "| map | windows (works) | marked drop | random drop | difference (95 % CI) | marked hurts more "
             "(95 % CI) | Wilcoxon p | sign-test p |", "|---|---|---|---|---|---|---|---|"]
    for name in ("fused", "verdict"):
        r = b[name]
        if not r["windows"]:
            continue
        lines.append(f"| {name} | {r['windows']} ({r.get('units', 'n/a')}) | {_fmt(r['marked_drop'])} | {_fmt(r['random_drop'])} "
                     f"| {_fmt(r['mean_difference'])} {_ci(r['difference_ci95'])} "
                     f"| {_fmt(r['marked_worse_share'])} {_ci(r['marked_worse_ci95'])} "
                     f"| {_p(r['wilcoxon_p'])} | {_p(r['sign_test_p'])} |")
    e = f["rhythmic_event"]
    lines += ["", "### Rhythmic event", ""]
    if "skipped" in e:
        return lines + [f"Not measured: {e['skipped']}."]
    tol = (e["fused"] or {}).get("tolerance_s")
    step = e.get("step_s")
    lines += [f"Synthetic clips (a sustained string chord, a second instrument entering at a "
              f"known time, the chord already sounding when the clip begins): does the map's "
              f"change over time, searched over the clip's middle 60 % (the entries' span and a "
              f"margin; the padded edge columns left out), peak within "
              f"{_fmt(tol, 2)} s of the entry? The change is read as a step: at each boundary "
              f"between two columns, the map's mean share of mass over the {_fmt(step, 2)} s "
              "after it against the same before it (where the map moves to a new level, an "
              "instrument entering and staying). Chance: a peak placed at random there; p "
              "one-sided exact test against each clip's own chance (Poisson-binomial). "
              "`input energy (reference)`: the same test on the clip's own spectrogram above "
              "its floor (whether the sound alone passes it).", ""]
    lines += _event_table(e)
    if e.get("frame_difference"):
        lines += ["", "The same maps with the change read as the largest jump between two "
                  "consecutive columns (the test before session 24; each note attack of the "
                  "entering melody is such a jump too):", ""]
        lines += _event_table(e["frame_difference"])
    return lines


def _event_table(e: dict[str, Any]) -> list[str]:
    lines = ["| map | clips | hit rate (95 % CI) | chance | p | median error (s) |",
             "|---|---|---|---|---|---|"]
    for name, key in (("fused", "fused"), ("verdict", "verdict"),
                      ("top instrumentation label", "instrumentation"),
                      ("input energy (reference)", "energy_reference")):
        r = e.get(key)
        if not r or not r["clips"]:
            continue
        lines.append(f"| {name} | {r['clips']} | {_fmt(r['hit_rate'])} {_ci(r['hit_rate_ci95'])} "
                     f"| {_fmt(r['chance'])} | {_p(r['p_value'])} | {_fmt(r['median_error_s'], 2)} |")
    return lines


def _caution(split: str, manifest_sha256: str, card: Mapping) -> str | None:
    """metrics.json's ``caution``: :func:`training_overlap`, and for a model whose card was
    never finalized (:func:`musicbrain_cli.model.card.unfinished`) that its verdicts are no
    scan's: a scan refuses such a model, and the verdicts counted here apply a default
    threshold and band and no domain check (review, session 46: metrics.md called them "the
    content line's verdicts by the model card's full rule")."""
    from musicbrain_cli.model.card import unfinished

    parts = [training_overlap(split, manifest_sha256, card)]
    if unfinished(card):
        parts.append("the model's card was never finalized, so it has no operating point, "
                     "abstention band or domain check of its own: the verdicts counted here "
                     "apply default ones, and a scan refuses this model")
    return "; ".join(p for p in parts if p) or None


def training_overlap(split: str, manifest_sha256: str, card: Mapping) -> str | None:
    """Why the figures may not be test figures, or ``None``: the split the model trained on,
    or a data set other than the one it trained on (whose splits by work need not be the
    training data's, so its test works may be the model's training works), or the data set
    a model was finalized on when that is not its training data (the card's ``finalized_on``
    or ``training_data.finalized_on_other_data``: heads, calibration and operating point
    fitted there). Said in metrics.md and on the console (session 27 audit)."""
    training_data = card.get("training_data") or {}
    trained_on = training_data.get("manifest_sha256")
    # A model finalized on another data set than its network's (refit-heads: the card's
    # `finalized_on`, or `training_data.finalized_on_other_data`) had its heads fitted on
    # that data set's train split and its calibration and operating point chosen on its val
    # split; the card says the two data sets' splits may share works (review, session 46).
    finalized = card.get("finalized_on") or training_data.get("finalized_on_other_data") or {}
    finalized_on = finalized.get("manifest_sha256") if isinstance(finalized, Mapping) else None
    if finalized_on and finalized_on != trained_on:
        if finalized_on == manifest_sha256:
            if split == "train":
                return ("the train split of the data set the model's heads were re-fitted on: "
                        "not test figures")
            if split == "val":
                return ("this is the split the model's operating point was chosen on (the "
                        "model was finalized on this data set): its false-positive rate meets "
                        "the target by construction")
        elif trained_on and trained_on == manifest_sha256 and split != "train":
            return ("the model's heads, calibration and operating point were re-fitted on "
                    f"another data set (manifest SHA-256 {finalized_on[:16]}...): works in "
                    "this split may be works they were fitted on")
    if trained_on and trained_on == manifest_sha256:
        if split == "train":
            return ("these are the clips the model was trained on: the figures measure how "
                    "well it fits them, not how it does on music it never heard")
        if split == "val":
            return ("this is the split the model's calibration and operating point were "
                    "chosen on: its false-positive rate meets the target by construction")
        return None
    if split == "train":
        return "the train split of a data set: not test figures"
    if trained_on:
        return ("the model was trained on another data set (manifest SHA-256 "
                f"{trained_on[:16]}...): works in this split may be works it trained on, "
                "unless both were built with the same seed from the same sources")
    return None


def metrics_markdown(m: dict[str, Any]) -> str:
    """A readable summary of :func:`evaluate`'s metrics."""
    c = m["classification"]
    data = m.get("data") or {}
    model = m.get("model") or {}
    lines = [f"# Evaluation on split `{m['split']}`", "",
             f"Data set: `{data.get('path', 'not recorded')}` (manifest SHA-256 "
             f"`{data.get('manifest_sha256', 'not recorded')}`); model: {model.get('name')} "
             f"{model.get('version')} (weights SHA-256 `{model.get('weights_sha256')}`"
             + (f", model card SHA-256 `{model['card_sha256']}`" if model.get("card_sha256") else "")
             + ")" + (f"; MusicBrain {m['software']['musicbrain']}" if m.get("software") else "")
             + ".", "",
             *([f"**Caution:** {m['caution']}.", ""] if m.get("caution") else []),
             f"Clips: {m['clips_scored']} scored of {m['clips']}"
             + (f" ({len(m['failed'])} failed, listed in metrics.json)" if m["failed"] else "")
             + (f"; {len(m['explain_failed'])} scored but not explained (listed in metrics.json)"
                if m.get("explain_failed") else ""), "",
             "## Classification (track-level mean probability)", "",
             f"mAP macro {_fmt(c['map_macro'])}, micro {_fmt(c['map_micro'])}", "",
             "| label | AP |", "|---|---|"]
    lines += [f"| {k} | {_fmt(v)} |" for k, v in c["ap"].items()]
    lines += [f"| {k} | n/a ({why}) |" for k, why in c["ap_skipped"].items()]
    cov = m.get("labels_coverage")
    if cov and (cov["model_only"] or cov["data_only"]):
        lines += ["", f"Scored: the {len(cov['scored'])} labels both the model and the data set "
                      "know."]
        if cov["data_only"]:
            lines.append(f"Not scored, the model has no output for them ({len(cov['data_only'])}): "
                         + ", ".join(f"`{l}`" for l in cov["data_only"]) + ".")
        if cov["model_only"]:
            lines.append(f"Not scored, the data set does not know them ({len(cov['model_only'])}): "
                         + ", ".join(f"`{l}`" for l in cov["model_only"]) + ".")
    st = m.get("style")
    if st and st["map_macro"] is not None:
        lines += ["", "## Style attribution", "",
                  f"mAP over the style labels {_fmt(st['map_macro'])}; mean of the per-group "
                  f"mAPs {_fmt(st['map_mean_of_groups'])}", "",
                  "| group | mAP |", "|---|---|"]
        lines += [f"| {g} | {_fmt(v)} |" for g, v in st["map_by_group"].items()]
    if "detection" in m:
        d, r = m["detection"], m["detection"]["at_threshold"]
        ci = lambda pair: "n/a" if pair[0] is None else f"[{pair[0]:.3f}, {pair[1]:.3f}]"  # noqa: E731
        lines += ["", f"## Detection (`{d['label']}`)", "",
                  f"ROC-AUC {_fmt(d['roc_auc'])}; at threshold {r['threshold']:.3f}: "
                  f"TPR {_fmt(r['tpr'])} (95 % CI {ci(r['tpr_ci95'])}), "
                  f"FPR {_fmt(r['fpr'])} (95 % CI {ci(r['fpr_ci95'])}); "
                  f"TP {r['tp']}, FP {r['fp']}, TN {r['tn']}, FN {r['fn']}"]
        v = d.get("verdicts")
        if v:
            lines += ["", "The content line's verdicts by the model card's full rule (the abstention "
                      "band around the threshold, window disagreement and the domain checks; the "
                      "threshold figures above ignore them), a scan's `content_label`; a scan's "
                      "combined verdict also weighs the other evidence lines:", "",
                      "| true class | ai | human | inconclusive |", "|---|---|---|---|"]
            lines += [f"| {t} | {c['ai']} | {c['human']} | {c['inconclusive']} |" for t, c in v.items()]
        w = d.get("by_work")
        if w:
            lines += ["", "Counted by work (a work's clips are not independent; Wilson 95 % over "
                      f"works): {w['human_works_with_a_clip_called_ai']} of {w['n_human_works']} "
                      f"human works had a clip called `ai` ({_ci(w['fpr_works_ci95'])}); "
                      f"{w['ai_works_with_a_clip_called_human']} of {w['n_ai_works']} AI works "
                      f"had a clip called `human` ({_ci(w['fnr_works_ci95'])})."]
    f = m["fidelity"]
    weighted = f"{f['weighting']}-weighted, " if f.get("weighting") else ""
    if f.get("refine") and f["refine"] != "none":
        weighted += f"refined by {f['refine'].replace('-', ' x ')}, "
        if f.get("destripe"):
            weighted += f"stride pattern of {f['destripe']} frames removed, "
    lines += ["", f"## Explanation fidelity (FM-G-CAM, {weighted}{f['windows']} windows, "
              f"substrate {f['substrate']})", "",
              "| map | deletion AUC (lower is better) | insertion AUC (higher is better) |", "|---|---|---|"]
    for k in f["deletion_auc"]:
        lines.append(f"| {k} | {_fmt(f['deletion_auc'][k])} | {_fmt(f['insertion_auc'].get(k))} |")
    grid = f.get("random_grid")
    n_random = f"{f['n_random']} " if f.get("n_random") else ""
    lines += ["", f"Chance: each window's mean over {n_random}random maps of each kind. "
              "`random`: maps of independent random cells; `random_grid`: random maps drawn on "
              f"the CAM layer's own {grid[0] if grid else '?'} x {grid[1] if grid else '?'} grid and "
              "upsampled like it (chance at the map's resolution; scattered single-cell deletions "
              "perturb every receptive field at once, so the per-cell baseline is a harsh one).", "",
              f"Share of windows where FM-G-CAM beats `random` on both: {_fmt(f['beats_random_share'])}; "
              f"beats `random_grid` on both: {_fmt(f.get('beats_random_grid_share'))}"]
    groups = f.get("by_target_group") or {}
    if groups:
        lines += ["", "### The same curves split by target", "",
                  "Each window's AUC per explained label, averaged over the source (human/ai) "
                  "labels, over the style labels, and over each style group's labels.", "",
                  "| targets | map | deletion AUC | insertion AUC |", "|---|---|---|---|"]
        for group, g in groups.items():
            for k in g["deletion_auc"]:
                lines.append(f"| {group} ({g['targets']}) | {k} | {_fmt(g['deletion_auc'][k])} | "
                             f"{_fmt(g['insertion_auc'].get(k))} |")
    v = f.get("verdict")
    if v and v["windows"]:
        lines += ["", f"### The verdict alone ({v['windows']} windows)", "",
                  "Each window's predicted source label (human or ai) explained by itself, "
                  "following that label's probability only.", "",
                  "| map | deletion AUC (lower is better) | insertion AUC (higher is better) |",
                  "|---|---|---|"]
        for k in v["deletion_auc"]:
            lines.append(f"| {k} | {_fmt(v['deletion_auc'][k])} | {_fmt(v['insertion_auc'].get(k))} |")
        lines += ["", f"Share of windows where it beats `random_grid` on both: "
                      f"{_fmt(v['beats_random_grid_share'])}"]
    sa = f.get("style_alone")
    if sa and sa["windows"]:
        lines += ["", f"### The top style label alone ({sa['windows']} windows)", "",
                  "Each window's most probable style label explained by its own map, following "
                  "that label's probability only (the top-k map mixes every explained label's "
                  "evidence; a style label's own evidence is its own map).", "",
                  "| label's group (windows) | map | deletion AUC (lower is better) | "
                  "insertion AUC (higher is better) |", "|---|---|---|---|"]
        for group, g in [("all", sa)] + list((sa.get("by_group") or {}).items()):
            for k in g["deletion_auc"]:
                lines.append(f"| {group} ({g['windows']}) | {k} | {_fmt(g['deletion_auc'][k])} | "
                             f"{_fmt(g['insertion_auc'].get(k))} |")
        lines += ["", f"Share of windows where it beats `random_grid` on both: "
                      f"{_fmt(sa['beats_random_grid_share'])}"]
    lines += _faithfulness_markdown(m.get("faithfulness"))
    a = m["alignment"]
    lines += ["", "## Alignment with the music", "",
              f"Truth: {a.get('truth', 'n/a')}. Notes as played (the stored score with the "
              f"build's humanisation replayed) in {a['notes_source'].get('played', 0)} windows, "
              f"the stored score as it is in {a['notes_source']['score']}, estimated from the "
              f"audio in {a['notes_source']['estimated']} (rough: see "
              "musicbrain_cli/alignment/pitch.py)."
              + (f" Replay failed for {len(a['replay_failed'])} clips (stored score used; "
                 "listed in metrics.json)." if a.get("replay_failed") else ""), ""]
    lines += ["Pooled over the explained windows; lift = share / chance (1 = chance), 95 % "
              "bootstrap interval resampling works"
              + (f" ({a['works']} works; a work's windows are drawn together, since they are "
                 "not independent; n/a with fewer than 10)" if a.get("works") is not None
                 else " (windows, in runs before works were recorded)") + ". Harmonic: share of saliency on the partials of "
              "sounding notes; onsets: share of onsets hit by a saliency peak. `input energy "
              "(reference)`: the same checks on each window's own spectrogram above its floor, "
              "a map that knows nothing of the model; a map shows the model's evidence on the "
              "notes only where it beats this as well as chance.", "",
              "| map | harmonic share | chance | harmonic lift (95 % CI) | onsets | hit rate | "
              "chance | onset lift (95 % CI) | concentration |",
              "|---|---|---|---|---|---|---|---|---|"]
    for name, part in (("fused top-k", a), ("verdict", a.get("verdict") or {}),
                       ("input energy (reference)", a.get("energy_reference") or {})):
        h, o = part.get("harmonic"), part.get("onset")
        if not h and not o:
            continue
        h, o = h or {}, o or {}
        lines.append(f"| {name} | {_fmt(h.get('share'))} | {_fmt(h.get('chance'))} "
                     f"| {_fmt(h.get('lift'), 2)} {_ci(h.get('lift_ci95'), 2)} "
                     f"| {o.get('onsets', 'n/a')} | {_fmt(o.get('hit_rate'))} "
                     f"| {_fmt(o.get('chance_hit_rate'))} "
                     f"| {_fmt(o.get('hit_lift'), 2)} {_ci(o.get('hit_lift_ci95'), 2)} "
                     f"| {_fmt(o.get('concentration'), 2)} |")
    over = a.get("over_reference") or {}
    if any(over.values()):
        lines += ["", "Each map against the input energy on the same windows (1 = no better than "
                      "the sound's own energy; 95 % paired bootstrap interval, works "
                      "resampled):", "",
                  "| map | share on partials / reference's | onset hit rate / reference's |",
                  "|---|---|---|"]
        for name, key in (("fused top-k", "fused"), ("verdict", "verdict")):
            part = over.get(key) or {}
            h, o = part.get("harmonic_share") or {}, part.get("onset_hit_rate") or {}
            lines.append(f"| {name} | {_fmt(h.get('ratio'), 2)} {_ci(h.get('ratio_ci95'), 2)} "
                         f"| {_fmt(o.get('ratio'), 2)} {_ci(o.get('ratio_ci95'), 2)} |")
    figs = m["figures"]
    lines += ["", "## Figures", ""] + [f"- [{p}]({p})" for p in figs["pr_curves"] + figs["fmgcam"]]
    return "\n".join(lines) + "\n"
