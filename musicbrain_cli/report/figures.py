"""Report figures as PNG bytes: the per-window AI-probability timeline and FM-G-CAM overlays.

Figures are drawn with matplotlib's object-oriented API on an Agg canvas (no pyplot, no
global state, thread-safe per figure), so the same inputs give byte-identical PNGs.

FM-G-CAM (Hasany et al., "Seeing Through the Fog: FM-G-CAM", 2023) fuses the Grad-CAM maps
of several classes into one image: each time-frequency cell takes the colour of the class
with the largest saliency there, with an intensity set by that saliency, after normalising
all maps by one shared maximum (so a weak class is not inflated to look as strong as the
decisive one).
"""

from __future__ import annotations

import io
from typing import Sequence

import numpy as np

from musicbrain_cli.errors import ReportError

DPI = 150
MAX_ALPHA = 0.85  # strongest overlay still lets the spectrogram show through
# Colour-blind-safe qualitative palette (Okabe & Ito 2008), then matplotlib's tab10.
PALETTE = ("#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7",
           "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2")
HZ_TICKS = (20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000)


def _mel(hz):
    """HTK mel scale (O'Shaughnessy 1987): log-like above ~700 Hz, linear below, 0 Hz ok."""
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def _mel_inv(mel):
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


def _plain(text: str) -> str:
    """Escape matplotlib mathtext so a label such as ``$5`` is drawn as typed."""
    return str(text).replace("$", r"\$")


#: Margins around the plot, inches: room for the y tick labels and axis label (left), the x
#: tick labels and axis label (bottom), a title (top). Fixed margins replace matplotlib's
#: constrained layout, which measured every tick label in several passes and took over half
#: of each figure's drawing time (issue 27); only the legend, whose width follows the label
#: names, is measured (once, see :func:`_place`).
LEFT_IN = 0.72
BOTTOM_IN = 0.52
TOP_IN = 0.1
TITLE_IN = 0.28
PAD_IN = 0.1
LEGEND_GAP = 0.01  # the legends sit at bbox_to_anchor=(1 + LEGEND_GAP, 1) of the axes
CBAR_BLOCK_IN = 0.5  # FM-G-CAM's colour bar under the time axis: bar, gap above it
CBAR_BOTTOM_IN = 0.38  # lower edge of that bar (its tick labels and label go below)


def _new_figure(width_in: float, height_in: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _place(fig, ax, legend=None, *, bottom_in: float = BOTTOM_IN,
           top_in: float = TOP_IN) -> None:
    """Put ``ax`` inside fixed margins (inches), leaving room on the right for ``legend``
    (anchored just outside the axes' upper right corner), whose width is measured once."""
    width_in, height_in = fig.get_size_inches()
    legend_in = 0.0
    if legend is not None:
        legend_in = legend.get_window_extent(fig.canvas.get_renderer()).width / fig.dpi
    # the gap between axes and legend is a share of the axes' own width
    # A legend too wide for the figure (a very long label) is cut at the edge rather than
    # squeezing the plot to nothing.
    axes_in = max(0.5 * width_in, (width_in - LEFT_IN - legend_in - PAD_IN) / (1.0 + LEGEND_GAP))
    ax.set_position([LEFT_IN / width_in, bottom_in / height_in, axes_in / width_in,
                     (height_in - bottom_in - top_in) / height_in])


def _png(fig) -> bytes:
    """Opaque RGB PNG of ``fig``. Not matplotlib's RGBA: the figures are opaque anyway, and
    WeasyPrint splits an alpha channel into a second image (a decode and two encodes per
    figure per PDF)."""
    from PIL import Image

    fig.canvas.draw()
    rgba = fig.canvas.buffer_rgba()
    image = Image.frombuffer("RGBA", (int(rgba.shape[1]), int(rgba.shape[0])), rgba,
                             "raw", "RGBA", 0, 1).convert("RGB")
    buf = io.BytesIO()
    # Level 1: a third of level 6's time for files 3 % larger (WeasyPrint re-compresses the
    # pixels into the PDF anyway). No text chunks: no software version in the bytes.
    image.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def timeline_figure(window_start_s: Sequence[float], p_ai: Sequence[float], *,
                    window_s: float, threshold: float | None = None,
                    band: Sequence[float] | None = None,
                    highlight_s: Sequence[float] = (), quiet: Sequence[bool] = (),
                    duration_s: float | None = None,
                    window_end_s: Sequence[float] = ()) -> bytes:
    """PNG of the per-window probability of AI generation over time.

    Parameters
    ----------
    window_start_s : [shape=(n,)] start of each analysis window, seconds
    p_ai : [shape=(n,)] calibrated P(AI) of each window, in [0, 1]
    window_s : window length, seconds
    threshold : decision threshold drawn as a dashed line
    band : (lo, hi) abstention band, shaded
    highlight_s : window starts (seconds) explained by FM-G-CAM figures, marked on the axis
    quiet : [shape=(n,)] silent windows (intake.quiet_window), not judged (hatched; empty: none)
    duration_s : the recording's decoded duration, seconds: the time axis ends there (a
        short track's one window reads past its end, where it repeats the recording)
    window_end_s : [shape=(n,)] where each window's own audio ends, seconds: a window that
        repeats a passage shorter than itself ends where the passage's sound does
        (report.html.window_ends); empty: ``start + window_s``
    """
    starts = np.asarray(window_start_s, dtype=np.float64)
    probs = np.asarray(p_ai, dtype=np.float64)
    if starts.ndim != 1 or starts.shape != probs.shape or starts.size == 0:
        raise ReportError(f"timeline needs equal non-empty 1-D arrays, got window_start_s "
                          f"{starts.shape} and p_ai {probs.shape}")
    if not (np.isfinite(starts).all() and np.isfinite(probs).all()):
        raise ReportError("timeline contains NaN or infinite values")
    if not window_s > 0:
        raise ReportError(f"window_s must be positive, got {window_s!r}")

    fig = _new_figure(7.0, 2.4)
    ax = fig.add_subplot()
    if band is not None:
        lo, hi = float(band[0]), float(band[1])
        ax.axhspan(lo, hi, color="0.88", zorder=0, label=f"inconclusive band {lo:.2f}–{hi:.2f}")
        # Issue 24: name the three regions on the plot, so a flat line still reads at a glance.
        mid = (lo + float(threshold)) / 2 if threshold is not None else (lo + hi) / 2
        # `ai` begins at the band's upper edge, which is not capped at 1 (verdict.decide): past
        # 1 no probability is `ai`, and "AI" written at 1 stood inside the band
        regions = [((hi + 1.0) / 2, "AI")] if hi <= 1.0 else []
        for y, text in (*regions, (mid, "inconclusive"), (lo / 2, "no evidence of AI")):
            ax.text(0.995, y, text, transform=ax.get_yaxis_transform(), ha="right",
                    va="center", fontsize=7, color="0.35")
    if threshold is not None:
        ax.axhline(float(threshold), color="#D55E00", ls="--", lw=1.0,
                   label=f"decision threshold {float(threshold):.2f}")
    # Each window is drawn over its whole span: a step per window, not a line between centres
    # (overlapping windows then show as successive steps at their start times). A step ends
    # at the next window's start or at its own end, whichever comes first: silence between
    # two passages is not read (intake.iter_windows), and the window before it was drawn
    # across that silence, a minute of unread audio at that window's P(AI).
    order = np.argsort(starts, kind="stable")
    begin = starts[order]
    own_end = np.asarray(window_end_s, dtype=np.float64)
    if own_end.shape != starts.shape or not np.isfinite(own_end).all():
        own_end = starts + window_s
    # a repeated passage's window holds its sound, then the repeat: the silence after the
    # passage was drawn at that window's P(AI)
    own_end = np.clip(own_end, starts, starts + window_s)[order]
    stop = np.minimum(np.append(begin[1:], np.inf), own_end)
    if duration_s is not None and np.isfinite(duration_s) and starts.max() < duration_s < stop[-1]:
        # the seconds the recording has, as the report's coverage and map titles state them:
        # an 8 s track's timeline ran to 10 s, the end of its one window (review of session 46)
        stop[-1] = float(duration_s)
    silent = np.asarray(quiet, dtype=bool)
    if silent.shape != starts.shape:
        silent = np.zeros(starts.shape, dtype=bool)
    # A silent window was not judged (intake.quiet_window): its P(AI), read from dither or
    # zeros (which this model takes for a cue of AI), is not drawn, only its hatching. A
    # human recording's silent ending stood at 0.97 in the region labelled "AI" (review of
    # session 46), beside a report that says the window was not judged.
    judged = np.where(silent[order], np.nan, probs[order])
    # the unread stretch between a window's end and the next window's start: no value (a gap)
    edges, values = [begin[0]], []
    for i, p in enumerate(judged):
        edges.append(stop[i])
        values.append(p)
        if i + 1 < begin.size and stop[i] < begin[i + 1]:
            edges.append(begin[i + 1])
            values.append(np.nan)
    ax.stairs(values, edges, color="#0072B2", lw=1.4, baseline=None,
              label="P(AI) per window")
    if starts.size <= 12:
        # Few windows: mark each with its value, which a step of one colour cannot show; as
        # the rule's reasons print it (verdict.figures): never as a band edge or threshold it
        # is not (0.597 read "0.60" at the band's AI edge), never 1.00 below 1 (review of
        # session 46)
        from musicbrain_cli.verdict import figures

        edges_of_rule = [float(e) for e in (*(band if band is not None else ()), threshold)
                         if e is not None]
        centres = (begin + stop) / 2     # the middle of each window's step
        ax.plot(centres, judged, "o", color="#0072B2", ms=3.5)
        for x, p in zip(centres, judged):
            if np.isnan(p):
                continue
            ax.annotate(figures(p, *edges_of_rule)[0], (x, p), xytext=(0, 5 if p < 0.85 else -10),
                        textcoords="offset points", ha="center", fontsize=7, color="#0072B2")
    for i, start in enumerate(highlight_s):
        ax.axvspan(float(start), float(start) + window_s, color="#E69F00", alpha=0.15, lw=0,
                   label="explained windows" if i == 0 else None)
    if silent.any():
        # hop-overlapping quiet windows drawn as one span each; only the first is labelled
        for i, start in enumerate(starts[silent]):
            ax.axvspan(float(start), float(start) + window_s, facecolor="none", edgecolor="0.6",
                       hatch="////", lw=0, label="silent, not judged" if i == 0 else None)
    ax.set_ylim(-0.03, 1.03)   # a probability of 0 or 1 must not hide under the axis frame
    ax.set_yticks([0.0, 0.25, 0.5, 0.75, 1.0])
    ax.set_xlim(edges[0], edges[-1])
    ax.set_xlabel("time (s)")
    ax.set_ylabel("P(AI)")
    ax.grid(True, color="0.9", lw=0.5)
    legend = ax.legend(loc="upper left", bbox_to_anchor=(1 + LEGEND_GAP, 1.0), fontsize=7,
                       frameon=False)
    _place(fig, ax, legend)
    return _png(fig)


def fmgcam_figure(spectrogram_db: np.ndarray, saliency: np.ndarray, labels: Sequence[str],
                  times_s: np.ndarray, freqs_hz: np.ndarray, *, title: str | None = None,
                  rows: int = 256) -> bytes:
    """PNG of FM-G-CAM saliency for several labels blended over a spectrogram.

    Parameters
    ----------
    spectrogram_db : [shape=(F, T)] power in dB
    saliency : [shape=(K, F, T)] non-negative saliency of each label (any scale)
    labels : K label names, in the order of ``saliency``
    times_s : [shape=(T,)] frame centre times, seconds, increasing
    freqs_hz : [shape=(F,)] bin centre frequencies, Hz, strictly increasing (linear,
        mel or CQT bins all work: the image is resampled onto a mel-spaced axis)
    title : drawn above the plot
    rows : height of the resampled image in pixels
    """
    spec = np.asarray(spectrogram_db, dtype=np.float64)
    sal = np.asarray(saliency, dtype=np.float64)
    times = np.asarray(times_s, dtype=np.float64)
    freqs = np.asarray(freqs_hz, dtype=np.float64)
    if spec.ndim != 2 or sal.ndim != 3 or sal.shape[1:] != spec.shape:
        raise ReportError(f"need spectrogram [F,T] and saliency [K,F,T], got {spec.shape} "
                          f"and {sal.shape}")
    k, f, t = sal.shape
    if len(labels) != k or times.shape != (t,) or freqs.shape != (f,) or k == 0:
        raise ReportError(f"saliency {sal.shape} needs {k} labels, {t} times and {f} "
                          f"frequencies; got {len(labels)}, {times.shape}, {freqs.shape}")
    if k > len(PALETTE):
        raise ReportError(f"at most {len(PALETTE)} labels fit one figure, got {k}")
    for name, arr in (("spectrogram", spec), ("saliency", sal), ("times", times),
                      ("frequencies", freqs)):
        if not np.isfinite(arr).all():
            raise ReportError(f"{name} contains NaN or infinite values")
    if f > 1 and not (np.diff(freqs) > 0).all():
        raise ReportError("freqs_hz must be strictly increasing")
    if t > 1 and not (np.diff(times) > 0).all():
        raise ReportError("times_s must be strictly increasing")
    if freqs[0] < 0:
        raise ReportError(f"frequencies must be non-negative, got {freqs[0]!r} Hz")

    from matplotlib.colors import to_rgb
    from matplotlib.patches import Patch

    # Resample rows onto a uniform mel axis by nearest bin, whatever the input bin spacing.
    mel_lo, mel_hi = _mel(freqs[0]), _mel(freqs[-1])
    if f == 1 or mel_hi <= mel_lo:
        mel_hi = mel_lo + 1.0
    target_mel = np.linspace(mel_lo, mel_hi, rows)
    idx = np.clip(np.searchsorted(freqs, _mel_inv(target_mel)), 0, f - 1)
    below = np.clip(idx - 1, 0, f - 1)
    closer = np.abs(freqs[below] - _mel_inv(target_mel)) < np.abs(freqs[idx] - _mel_inv(target_mel))
    idx = np.where(closer, below, idx)
    spec_r, sal_r = spec[idx], sal[:, idx]
    # Where bins are denser than rows (the front end's Slaney-mel bins near 1 kHz on this
    # HTK-mel axis: 18 of 256 bins), nearest-bin sampling skips bins, and a partial or a
    # saliency peak on one of them would not be drawn at all: each row also takes the
    # maximum over the bins whose centres are nearest to it, so every bin is drawn.
    own_row = np.clip(np.rint((_mel(freqs) - mel_lo) / (mel_hi - mel_lo) * (rows - 1)),
                      0, rows - 1).astype(int)
    np.maximum.at(spec_r, own_row, spec)
    np.maximum.at(sal_r, (slice(None), own_row), sal)

    # Grey spectrogram, dynamic range clipped to 80 dB below the peak (a common display range).
    top = spec_r.max()
    grey = np.clip((spec_r - (top - 80.0)) / 80.0, 0.0, 1.0)
    base = np.repeat(grey[..., None], 3, axis=-1)
    sal_r = np.clip(sal_r, 0.0, None)
    peak = sal_r.max()
    strength = sal_r / peak if peak > 0 else np.zeros_like(sal_r)
    winner = strength.argmax(axis=0)
    alpha = MAX_ALPHA * strength.max(axis=0)
    colours = np.array([to_rgb(c) for c in PALETTE[:k]])
    rgb = (1.0 - alpha[..., None]) * base + alpha[..., None] * colours[winner]

    frame = float(np.median(np.diff(times))) if t > 1 else 1.0
    # rows were sampled at their centres, mel_lo..mel_hi: each spans half a row either side
    # (edges at mel_lo and mel_hi drew a row up to half a row off its tick)
    half_row = (mel_hi - mel_lo) / (rows - 1) / 2 if rows > 1 else 0.5
    extent = (times[0] - frame / 2, times[-1] + frame / 2, mel_lo - half_row, mel_hi + half_row)
    fig = _new_figure(7.0, 3.5)  # 3.4 in under constrained layout: same plot height
    ax = fig.add_subplot()
    # Above the axes frame (zorder 2.5), which is drawn centred on the plot's edge: under it,
    # the lowest and highest bins and the first frame (a pixel or so each) were not shown;
    # the frame's outer half stays visible around the image.
    ax.imshow(rgb, origin="lower", aspect="auto", extent=extent, interpolation="nearest",
              zorder=2.6)
    ticks: list[float] = []
    for hz in HZ_TICKS:  # skip ticks that would crowd the compressed low end of the axis
        if freqs[0] <= hz <= freqs[-1] and (
                not ticks or _mel(hz) - _mel(ticks[-1]) > (mel_hi - mel_lo) / 14):
            ticks.append(hz)
    ax.set_yticks(_mel(ticks), [f"{hz:g}" if hz < 1000 else f"{hz / 1000:g}k" for hz in ticks])
    # Whole seconds on the time axis, both ends included (issue 24: the window's last second
    # went unlabelled), about ten labels whatever the window length.
    step = max(1.0, float(np.ceil((extent[1] - extent[0]) / 10.0)))
    xticks = np.arange(np.ceil(extent[0] - 1e-6), extent[1] + frame + 1e-6, step)
    ax.set_xticks(xticks, [f"{x + 0.0:g}" for x in xticks])  # + 0.0: no "-0"
    ax.set_xlim(extent[0], max(extent[1], float(xticks[-1])))
    ax.set_xlabel("time (s)")
    ax.set_ylabel("frequency (Hz, mel-spaced)")
    _minor_time_ticks(ax, xticks, step)
    if title:
        ax.set_title(_plain(title), fontsize=9)
    handles = [Patch(facecolor=PALETTE[i], label=_plain(label)) for i, label in enumerate(labels)]
    legend = ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1 + LEGEND_GAP, 1.0),
                       fontsize=7, frameon=False, title="saliency of", title_fontsize=7)
    # Below the time axis: the colour bar (height, then its tick labels and label at 7 pt).
    _place(fig, ax, legend, bottom_in=BOTTOM_IN + CBAR_BLOCK_IN,
           top_in=TITLE_IN if title else TOP_IN)
    # Issue 24: a saliency scale. The overlay's strength is saliency / the figure's peak
    # (one shared maximum, see module doc), blended over the grey spectrogram with alpha up
    # to MAX_ALPHA; the bar shows that ramp for the strongest label, over mid grey.
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import LinearSegmentedColormap, Normalize

    mid = np.array([0.5, 0.5, 0.5])
    ramp = LinearSegmentedColormap.from_list(
        "saliency", [mid, (1 - MAX_ALPHA) * mid + MAX_ALPHA * np.array(to_rgb(PALETTE[0]))])
    # The bar spans 45 % of the plot's width, centred under it, 1/30 as high as it is long.
    x0, _, w, _ = ax.get_position().bounds
    width_in, height_in = fig.get_size_inches()
    bar_w = 0.45 * w
    cax = fig.add_axes([x0 + (w - bar_w) / 2, CBAR_BOTTOM_IN / height_in, bar_w,
                        bar_w * width_in / 30 / height_in])
    bar = fig.colorbar(ScalarMappable(Normalize(0.0, 1.0), ramp), cax=cax,
                       orientation="horizontal")
    bar.set_label("saliency, share of the figure's peak", fontsize=7)
    bar.set_ticks([0.0, 0.25, 0.5, 0.75, 1.0])
    bar.ax.tick_params(labelsize=7)
    return _png(fig)


def _minor_time_ticks(ax, major: np.ndarray, step: float) -> None:
    """Minor tick marks between the labelled seconds, where matplotlib's AutoMinorLocator
    puts them (a fifth of the step, a quarter for steps of 2, 3, 4 ... s), same size and
    width, drawn as one line of markers: matplotlib builds each axis tick from several
    objects, and 50 minor ticks were most of the figure's drawing time (issue 27)."""
    from matplotlib import markers, rcParams

    mantissa = step / 10.0 ** np.floor(np.log10(step))
    ndivs = 5 if np.isclose(mantissa, [1.0, 2.5, 5.0, 10.0]).any() else 4
    lo, hi = ax.get_xlim()
    k = np.arange(np.floor((lo - major[0]) / step * ndivs), np.ceil((hi - major[0]) / step * ndivs) + 1)
    minor = major[0] + k * step / ndivs
    keep = (k % ndivs != 0) & (minor >= lo - 1e-9) & (minor <= hi + 1e-9)
    ax.plot(minor[keep], np.zeros(int(keep.sum())), transform=ax.get_xaxis_transform(),
            ls="none", marker=markers.TICKDOWN, ms=rcParams["xtick.minor.size"],
            mew=rcParams["xtick.minor.width"], color=rcParams["xtick.color"], clip_on=False)


def residue_figure(finding) -> bytes:
    """PNG of the decoder-artifact line's residue with the comb's peaks marked, in Hz.

    ``finding`` is an :class:`musicbrain_cli.artifacts.detector.ArtifactFinding` (or its
    ``to_dict()``): ``residue_hz`` / ``residue_db`` (the average spectrum minus its lower
    envelope, dB), ``peaks_hz`` (the comb's teeth), ``spacing_hz`` and
    ``upsampling_factors``. The x axis is linear in Hz so the equal spacing of decoder lines
    is visible and each line can be checked with any spectrum analyser at the stated
    frequencies (Afchar et al., ISMIR 2025).
    """
    d = finding.to_dict() if hasattr(finding, "to_dict") else dict(finding)
    hz = np.asarray(d.get("residue_hz") or (), dtype=np.float64)
    db = np.asarray(d.get("residue_db") or (), dtype=np.float64)
    teeth = np.asarray(d.get("peaks_hz") or (), dtype=np.float64)
    if hz.ndim != 1 or hz.shape != db.shape or hz.size == 0:
        raise ReportError(f"residue figure needs equal non-empty residue_hz and residue_db, got "
                          f"{hz.shape} and {db.shape} (was the line applicable?)")
    if not (np.isfinite(hz).all() and np.isfinite(db).all() and np.isfinite(teeth).all()):
        raise ReportError("residue figure: residue or peaks contain NaN or infinite values")
    fig = _new_figure(7.0, 2.6)
    ax = fig.add_subplot()
    ax.plot(hz / 1000.0, db, color="0.35", lw=0.6, label="residue above lower envelope")
    if teeth.size:
        # Mark each tooth just above the residue's highest point next to it (the residue is
        # reduced to block maxima, so the peak is in the nearest point or a neighbour).
        i = np.clip(np.searchsorted(hz, teeth), 1, hz.size - 1)
        i = np.where(np.abs(hz[i - 1] - teeth) < np.abs(hz[i] - teeth), i - 1, i)
        at = np.max(np.stack([db[np.clip(i + k, 0, hz.size - 1)] for k in (-1, 0, 1)]), axis=0)
        ax.plot(teeth / 1000.0, at + 0.04 * (db.max() - db.min()), "v", color="#D55E00", ms=3.0,
                label=f"{teeth.size} comb peaks (Hz in the finding)")
    spacing = d.get("spacing_hz")
    factors = d.get("upsampling_factors") or {}
    if spacing:
        fits = ", ".join(f"{int(r) / 1000:g} kHz/{m}" for r, m in sorted(factors.items(), key=lambda kv: int(kv[0])))
        note = f"spacing {spacing:.2f} Hz" + (f" = {fits}" if fits else "")
        ax.set_title(_plain(note), fontsize=8)
    ax.set_xlim(0.0, hz[-1] / 1000.0)
    ax.set_xlabel("frequency (kHz)")
    ax.set_ylabel("residue (dB)")
    ax.grid(True, color="0.9", lw=0.5)
    legend = ax.legend(loc="upper left", bbox_to_anchor=(1 + LEGEND_GAP, 1.0), fontsize=7,
                       frameon=False)
    _place(fig, ax, legend, top_in=TITLE_IN if spacing else TOP_IN)
    return _png(fig)


def notes_figure(finding) -> bytes:
    """PNG of the notes the symbolic line scored, window by window, at their time in the track.

    ``finding`` is a :class:`musicbrain_cli.symbolic.detector.SymbolicFinding` (or its
    ``to_dict()``); each window brings ``start_s``, ``duration_s``, ``heard`` (start s, end s,
    MIDI pitch within the window: the very notes scored), ``in_domain`` and ``p_ai``. What an
    expert checks against the recording: were these the notes played? Each window is shaded
    and labelled with its P(AI), or with why it was not judged.
    """
    d = finding.to_dict() if hasattr(finding, "to_dict") else dict(finding)
    windows = [w for w in d.get("windows") or () if isinstance(w, dict) and w.get("heard") is not None]
    if not windows:
        raise ReportError("notes figure needs windows with their notes (was the line applicable?)")
    # each P(AI) as the finding's text writes it: never 1.00 below 1, nor as its doubt
    # threshold or operating point when it is not (verdict.figures)
    from musicbrain_cli.verdict import figures

    points = [float(d[k]) for k in ("doubt_threshold", "threshold")
              if isinstance(d.get(k), (int, float)) and np.isfinite(d[k])]
    fig = _new_figure(7.0, 2.6)
    ax = fig.add_subplot()
    lo, hi, right = 127.0, 0.0, 0.0
    for w in windows:
        start, length = float(w.get("start_s") or 0.0), float(w.get("duration_s") or 10.0)
        notes = np.asarray(w["heard"], dtype=np.float64).reshape(-1, 3)
        if not (np.isfinite(notes).all() and np.isfinite([start, length]).all()):
            raise ReportError("notes figure: a window's notes or times are not finite")
        # a window scored before the line failed on a later one (a transcription that could
        # not finish) was drawn as "window judged": the line judged nothing on that track
        scored = w.get("p_ai") is not None and bool(w.get("in_domain"))
        judged = scored and d.get("applicable") is not False
        ax.axvspan(start, start + length, color="#E8EEF7" if judged else "0.94", lw=0)
        if notes.size:
            ax.hlines(notes[:, 2], start + notes[:, 0], start + np.maximum(notes[:, 1], notes[:, 0] + 0.02),
                      color="#0072B2" if judged else "0.55", lw=1.6)
            lo, hi = min(lo, notes[:, 2].min()), max(hi, notes[:, 2].max())
        right = max(right, start + length)
        label = (f"P(AI) {figures(float(w['p_ai']), *points)[0]}" if judged else
                 f"P(AI) {figures(float(w['p_ai']), *points)[0]}, not judged: line not applicable"
                 if scored else
                 "too few notes" if w.get("p_ai") is None else "outside its domain")
        ax.text(start + 0.02 * length, 1.0, label, transform=ax.get_xaxis_transform(), fontsize=6.5,
                va="bottom", color="0.2")
    if hi < lo:
        lo, hi = 48.0, 72.0
    ax.set_ylim(lo - 2, hi + 2)
    ax.set_xlim(0.0, right)
    octaves = np.arange(12 * np.ceil((lo - 2) / 12), hi + 3, 12)
    ax.set_yticks(octaves, [f"C{int(m) // 12 - 1}" for m in octaves])
    ax.set_xlabel("time in the track (s)")
    ax.set_ylabel("pitch")
    ax.grid(True, axis="y", color="0.9", lw=0.5)
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    legend = ax.legend(handles=[Line2D([], [], color="#0072B2", lw=1.6, label="notes heard, window judged"),
                                Line2D([], [], color="0.55", lw=1.6, label="notes heard, not judged"),
                                Patch(color="#E8EEF7", label="analysed window")],
                       loc="upper left", bbox_to_anchor=(1 + LEGEND_GAP, 1.0), fontsize=7, frameon=False)
    _place(fig, ax, legend, top_in=TITLE_IN)
    return _png(fig)
