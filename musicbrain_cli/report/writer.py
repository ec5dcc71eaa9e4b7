"""Write the report files of one track into its folder (before the manifest seals it)."""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from musicbrain_cli.errors import ReportError
from musicbrain_cli.report._io import atomic_write_bytes
from musicbrain_cli.report.html import PNG_MAGIC, TIMELINE_FIGURE, render_report_html, window_ends
from musicbrain_cli.report.keys import KeyPair

FORMATS = ("pdf", "html", "json")
REPORT_STEM = "report"
RESULT_JSON = "result.json"
FIGURES_DIR = "figures"
_FIGURE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,100}\.png$")


def _check_figures(figures: Mapping[str, bytes]) -> None:
    for name, data in figures.items():
        if not isinstance(name, str) or not _FIGURE_NAME.match(name) or ".." in name:
            raise ReportError(f"figure name {name!r} must be a plain file name ending in .png")
        if not isinstance(data, (bytes, bytearray)) or not bytes(data).startswith(PNG_MAGIC):
            raise ReportError(f"figure {name!r} is not PNG bytes")


def _timeline_png(track: Mapping) -> bytes | None:
    timeline = track.get("timeline") or {}
    if not timeline.get("window_start_s") or not timeline.get("p_ai"):
        return None
    from musicbrain_cli.report.figures import timeline_figure

    verdict = track.get("verdict") or {}
    return timeline_figure(
        timeline["window_start_s"], timeline["p_ai"], window_s=timeline.get("window_s", 1.0),
        threshold=verdict.get("threshold"), band=verdict.get("band"),
        highlight_s=[e["window_start_s"] for e in track.get("explanations") or ()
                     if e.get("window_start_s") is not None],
        quiet=timeline.get("quiet") or (),
        duration_s=_duration(track), window_end_s=_window_ends(timeline))


def _window_ends(timeline: Mapping) -> list[float]:
    """Where each window's own audio ends (:func:`~musicbrain_cli.report.html.window_ends`),
    or none (the figure ends each at its start + window_s) for a record it cannot read."""
    try:
        return window_ends(timeline)
    except (TypeError, ValueError):
        return []


def _duration(track: Mapping) -> float | None:
    inp = track.get("input") or {}
    value = inp.get("decoded_duration_s", inp.get("duration_s"))
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _analysis_time(track: Mapping) -> _dt.datetime | None:
    text = str(track.get("analysis_time") or "")
    try:
        when = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=_dt.timezone.utc)


@dataclass(frozen=True)
class RenderedReport:
    """One track's report documents before signing: what :func:`render_track_report` makes,
    a function of the track and its figures alone (no keys, no files), so it can run in
    another process (:mod:`musicbrain_cli.scan.documents`). ``figures``: every figure by file
    name, the timeline included; ``html``: the report page; ``pdf``: its unsigned PDF (None
    without ``"pdf"`` in ``formats``); ``formats``: those asked for; ``signer``: the record of
    the keys the page names as its signer (None: unsigned)."""

    formats: tuple[str, ...]
    figures: dict[str, bytes]
    html: str
    pdf: bytes | None
    signer: dict | None = None


def render_track_report(track: Mapping, figures: Mapping[str, bytes], *,
                        formats: Sequence[str] = ("pdf",),
                        signer: Mapping | None = None) -> RenderedReport:
    """The documents of :func:`write_track_report`, unsigned: the timeline figure (drawn from
    ``track["timeline"]`` if absent), the HTML page stating ``signer`` (``KeyPair.record()``
    of the keys that will sign it, or None) and, with ``"pdf"`` in ``formats``, the PDF laid
    out from it."""
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown or not formats:
        raise ReportError(f"formats must be a non-empty subset of {FORMATS}, got {formats!r}")
    figures = dict(figures)
    _check_figures(figures)
    if TIMELINE_FIGURE not in figures:
        png = _timeline_png(track)
        if png is not None:
            figures[TIMELINE_FIGURE] = png
    signer = None if signer is None else dict(signer)
    html = render_report_html(track, figures, signer=signer)
    pdf = None
    if "pdf" in formats:
        from musicbrain_cli.report.pdf import html_to_pdf

        # A content-derived /ID keeps the unsigned PDF identical for identical inputs.
        pdf = html_to_pdf(html, identifier=hashlib.sha256(html.encode()).digest()[:16],
                          source_date=_analysis_time(track))
    return RenderedReport(tuple(formats), figures, html, pdf, signer)


def write_track_report(track: Mapping, figures: Mapping[str, bytes], out_dir: Path, *,
                       formats: Sequence[str] = ("pdf",), keys: KeyPair | None = None,
                       tsa_url: str | None = None, write_figures: bool = True,
                       overwrite: bool = False) -> list[Path]:
    """Render one track's report into ``out_dir`` and return the paths written.

    Parameters
    ----------
    track : the per-track result dict (schema ``musicbrain.track/1``)
    figures : PNG bytes by file name; ``explanations[].figure`` names refer to these. The
        timeline figure (``timeline.png``) is drawn from ``track["timeline"]`` if absent.
    out_dir : the track's report folder (created if missing)
    formats : any of ``"pdf"`` (signed with ``keys`` when given), ``"html"`` (self-contained,
        figures embedded), ``"json"`` (the track dict as ``result.json``)
    keys : signing keys; the PDF gets a PAdES signature and the report shows the
        fingerprints. Seal the folder afterwards with :func:`write_manifest`.
    tsa_url : RFC 3161 timestamp authority for the PDF signature (network access needed)
    write_figures : also write each figure as ``figures/<name>`` for reuse
    overwrite : replace existing report files; otherwise an existing one is an error

    Every file is written under a temporary name and renamed into place. The same as
    :func:`render_track_report` then :func:`write_rendered_report`.
    """
    rendered = render_track_report(track, figures, formats=formats,
                                   signer=None if keys is None else keys.record())
    return write_rendered_report(rendered, track, out_dir, keys=keys, tsa_url=tsa_url,
                                 write_figures=write_figures, overwrite=overwrite)


def write_rendered_report(rendered: RenderedReport, track: Mapping, out_dir: Path, *,
                          keys: KeyPair | None = None, tsa_url: str | None = None,
                          write_figures: bool = True, overwrite: bool = False) -> list[Path]:
    """Sign ``rendered``'s PDF with ``keys`` and write the documents of ``rendered.formats``
    (``result.json`` from ``track``) into ``out_dir``; see :func:`write_track_report`. The
    page must state the signer of ``keys``: documents rendered for other keys (or none) are
    refused rather than signed."""
    if (keys.record() if keys is not None else None) != rendered.signer:
        raise ReportError("the rendered report names another signer than the keys given")
    _check_figures(rendered.figures)        # names become paths here, whoever rendered them
    formats = rendered.formats
    out_dir = Path(out_dir)
    outputs: dict[Path, bytes] = {}
    if "html" in formats:
        outputs[out_dir / f"{REPORT_STEM}.html"] = rendered.html.encode("utf-8")
    if "json" in formats:
        try:
            text = json.dumps(track, indent=2, sort_keys=True, ensure_ascii=False,
                              allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ReportError(f"track result is not plain JSON: {exc}") from exc
        outputs[out_dir / RESULT_JSON] = (text + "\n").encode("utf-8")
    if write_figures:
        for name, data in sorted(rendered.figures.items()):
            outputs[out_dir / FIGURES_DIR / name] = bytes(data)
    existing = [str(p) for p in outputs if p.exists()]
    pdf_path = out_dir / f"{REPORT_STEM}.pdf"
    if "pdf" in formats and pdf_path.exists():
        existing.append(str(pdf_path))
    if existing and not overwrite:
        raise ReportError(f"refusing to overwrite existing report files {sorted(existing)}")

    if "pdf" in formats:
        pdf = rendered.pdf
        if keys is not None:
            from musicbrain_cli.report.signing import sign_pdf

            pdf = sign_pdf(pdf, keys, tsa_url=tsa_url)
        outputs[pdf_path] = pdf

    written = []
    for path, data in outputs.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        written.append(atomic_write_bytes(path, data))
    return written
