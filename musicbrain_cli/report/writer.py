"""Write the report files of one track into its folder (before the manifest seals it)."""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import re
from pathlib import Path
from typing import Mapping, Sequence

from musicbrain_cli.errors import ReportError
from musicbrain_cli.report._io import atomic_write_bytes
from musicbrain_cli.report.html import PNG_MAGIC, TIMELINE_FIGURE, render_report_html
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
        quiet=timeline.get("quiet") or ())


def _analysis_time(track: Mapping) -> _dt.datetime | None:
    text = str(track.get("analysis_time") or "")
    try:
        when = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=_dt.timezone.utc)


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

    Every file is written under a temporary name and renamed into place.
    """
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown or not formats:
        raise ReportError(f"formats must be a non-empty subset of {FORMATS}, got {formats!r}")
    figures = dict(figures)
    _check_figures(figures)
    if TIMELINE_FIGURE not in figures:
        png = _timeline_png(track)
        if png is not None:
            figures[TIMELINE_FIGURE] = png

    out_dir = Path(out_dir)
    outputs: dict[Path, bytes] = {}
    html = render_report_html(track, figures, signer=None if keys is None else keys.record())
    if "html" in formats:
        outputs[out_dir / f"{REPORT_STEM}.html"] = html.encode("utf-8")
    if "json" in formats:
        try:
            text = json.dumps(track, indent=2, sort_keys=True, ensure_ascii=False,
                              allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ReportError(f"track result is not plain JSON: {exc}") from exc
        outputs[out_dir / RESULT_JSON] = (text + "\n").encode("utf-8")
    if write_figures:
        for name, data in sorted(figures.items()):
            outputs[out_dir / FIGURES_DIR / name] = bytes(data)
    existing = [str(p) for p in outputs if p.exists()]
    pdf_path = out_dir / f"{REPORT_STEM}.pdf"
    if "pdf" in formats and pdf_path.exists():
        existing.append(str(pdf_path))
    if existing and not overwrite:
        raise ReportError(f"refusing to overwrite existing report files {sorted(existing)}")

    if "pdf" in formats:
        from musicbrain_cli.report.pdf import html_to_pdf

        # A content-derived /ID keeps the unsigned PDF identical for identical inputs.
        pdf = html_to_pdf(html, identifier=hashlib.sha256(html.encode()).digest()[:16],
                          source_date=_analysis_time(track))
        if keys is not None:
            from musicbrain_cli.report.signing import sign_pdf

            pdf = sign_pdf(pdf, keys, tsa_url=tsa_url)
        outputs[pdf_path] = pdf

    written = []
    for path, data in outputs.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        written.append(atomic_write_bytes(path, data))
    return written
