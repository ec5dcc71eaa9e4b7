"""The catalog of a batch: ``summary.json``, ``summary.csv`` and a sortable ``index.html``.

Every input appears, including those that failed (with their error), so nothing is lost
silently. CSV cells are protected against formula injection (OWASP "CSV Injection"): a text
cell that starts with ``= + - @``, a tab or a carriage return gets a leading apostrophe, so
a tag such as ``=HYPERLINK(...)`` is shown as text by spreadsheet programs; control
characters in any text cell are spelled out, so none reaches the file raw.
"""

from __future__ import annotations

import csv
import io
import json
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from musicbrain_cli.errors import ReportError
from musicbrain_cli.model.ood import WITHHELD, WITHHELD_SILENT, labels_withheld
from musicbrain_cli.report._io import atomic_write_bytes
from musicbrain_cli.report.html import (prob_beside, render_index_html, report_href, visible,
                                        visible_name)
from musicbrain_cli.taxonomy import display_label
from musicbrain_cli.text import csv_cell

SUMMARY_SCHEMA = "musicbrain.summary/1"
SUMMARY_JSON, SUMMARY_CSV, INDEX_HTML = "summary.json", "summary.csv", "index.html"
FIELDS = ("file_name", "path", "status", "error", "verdict", "p_ai", "threshold", "fpr",
          "fnr", "in_domain", "ood_score", "top_labels", "duration_s", "size_bytes", "sha256",
          "model_version", "analysis_time", "report", "model_name", "model_sha256", "ai_lines",
          "why", "musicbrain_version", "band_low", "band_high")
INDEX_COLUMNS = (("file_name", "File"), ("verdict", "Verdict"), ("why", "Why"),
                 ("ai_lines", "Lines that found AI"),
                 ("p_ai", "P(AI), content"), ("top_labels", "Top style labels"),
                 ("in_domain", "Content model in domain"), ("duration_s", "Duration (s)"), ("status", "Status"))
NUMERIC_COLUMNS = ("p_ai", "duration_s", "in_domain", "verdict")  # never wrapped
TOP_LABELS = 3


@dataclass(frozen=True)
class CatalogEntry:
    """One input of a batch: its result, or the error that stopped it.

    ``report`` is the path of its main report file relative to the catalog folder.
    """

    input_path: str
    track: Mapping[str, Any] | None = None
    report: str | None = None
    error: str | None = None


def _nothing_judged(track: Mapping) -> bool:
    quiet = (track.get("timeline") or {}).get("quiet")
    return isinstance(quiet, list) and bool(quiet) and all(q is True for q in quiet)


def _withheld(track: Mapping) -> str:
    """The index's short reason for a track whose style labels are withheld."""
    reason = labels_withheld(track) or ""
    if _nothing_judged(track) and not reason.startswith("outside the model's domain"):
        return WITHHELD_SILENT
    return WITHHELD


def summary_row(entry: CatalogEntry) -> dict[str, Any]:
    """Flat, JSON-ready summary of one entry (the columns of ``summary.csv``)."""
    track = entry.track or {}
    inp = track.get("input") or {}
    verdict = track.get("verdict") or {}
    rates = verdict.get("error_rates") or {}
    ood = track.get("ood") or {}
    labels = sorted((x for x in track.get("labels") or () if x.get("p") is not None),
                    key=lambda x: -float(x["p"]))[:TOP_LABELS]
    return {
        "file_name": inp.get("file_name") or Path(entry.input_path).name,
        "path": entry.input_path,
        "status": "error" if entry.error or not entry.track else "ok",
        "error": entry.error,
        "verdict": verdict.get("label"),
        # no window judged (all silent): no probability to show (intake.quiet_window)
        "p_ai": None if _nothing_judged(track) else verdict.get("p_ai"),
        "threshold": verdict.get("threshold"),
        "fpr": rates.get("fpr"),
        "fnr": rates.get("fnr"),
        "in_domain": ood.get("in_domain"),
        "ood_score": ood.get("score"),
        # out of domain the style scores are not shown, only why (issue 23); nor where no
        # window was judged (scan.batch.NOTHING_JUDGED)
        "top_labels": _withheld(track) if labels_withheld(track) else
                      "; ".join(f"{x.get('group')}/{x.get('label')}={float(x['p']):.2f}"
                                for x in labels) or None,
        "duration_s": inp.get("decoded_duration_s", inp.get("duration_s")),
        "size_bytes": inp.get("size_bytes"),
        "sha256": inp.get("sha256"),
        "model_version": (track.get("model") or {}).get("version"),
        "analysis_time": track.get("analysis_time"),
        "report": entry.report,
        # issue 24: the index names the model that made the verdicts (appended last, so
        # existing CSV readers keep their column positions)
        "model_name": (track.get("model") or {}).get("name"),
        "model_sha256": (track.get("model") or {}).get("weights_sha256"),
        # which evidence lines decided, and the combined rule's first reason: a track called
        # inconclusive with a low content P(AI) says here that another line withheld `human`
        "ai_lines": "; ".join(str(x) for x in verdict.get("ai_lines") or ()) or None,
        "why": next(iter(verdict.get("reasons") or ()), None),
        # the version that made the result: a rerun may keep folders of earlier versions,
        # and the index states what its rows record, not what happens to render it
        "musicbrain_version": (track.get("software") or {}).get("musicbrain"),
        # the content rule's band, so that the index prints P(AI) as the report does: 0.5996,
        # inconclusive, read "0.600" beside a report that says 0.5996 (review of session 46)
        "band_low": _band_end(verdict, 0),
        "band_high": _band_end(verdict, 1),
    }


def _band_end(verdict: Mapping, i: int) -> Any:
    band = verdict.get("band")
    return band[i] if isinstance(band, (list, tuple)) and len(band) == 2 else None


def csv_safe(value: Any) -> Any:
    """Neutralise spreadsheet formulas in a text cell (see module doc) and spell out its
    control characters (:func:`musicbrain_cli.text.csv_cell`); numbers pass."""
    return csv_cell(value)


def summary_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=FIELDS, lineterminator="\r\n")  # RFC 4180
    writer.writeheader()
    for row in rows:
        writer.writerow({k: csv_safe("" if row.get(k) is None else row[k]) for k in FIELDS})
    return buf.getvalue()


#: At most this many passed-over paths are listed in ``summary.json`` (all are counted): a
#: folder of 100,000 non-audio files must not make the summary 100,000 entries long.
MAX_SKIPPED_LISTED = 1000


@dataclass(frozen=True)
class Skipped:
    """What the scan that wrote the catalog found in its inputs and passed over (a file
    without an audio extension, a second name of a file already taken, a folder named
    twice...): ``listed`` ``(path, reason)`` pairs, at most :data:`MAX_SKIPPED_LISTED`, of
    ``total``. Only on the console until session 47: the catalog, the record that stays,
    did not say what the scan did not look at."""

    listed: tuple[tuple[str, str], ...] = ()
    total: int = 0

    @classmethod
    def of(cls, skipped: Sequence[tuple[Any, Any]]) -> "Skipped":
        pairs = [(str(path), str(reason)) for path, reason in skipped]
        return cls(tuple(pairs[:MAX_SKIPPED_LISTED]), len(pairs))

    @classmethod
    def from_summary(cls, data: Any) -> "Skipped":
        """What a ``summary.json`` (parsed) records; raises ``ValueError`` for a record that
        is not one (an untrusted file: verification re-renders the index from it)."""
        if not isinstance(data, dict) or "skipped" not in data:
            return cls()
        listed, total = data.get("skipped"), data.get("skipped_total")
        if not (isinstance(listed, list) and isinstance(total, int) and not isinstance(total, bool)
                and all(isinstance(e, dict) and set(e) == {"path", "reason"}
                        and isinstance(e["path"], str) and isinstance(e["reason"], str)
                        for e in listed)
                and len(listed) <= min(total, MAX_SKIPPED_LISTED)):
            raise ValueError("its list of paths the scan passed over is malformed")
        return cls(tuple((e["path"], e["reason"]) for e in listed), total)

    def header(self) -> dict:
        """For the index: how many were passed over, by reason (of those listed)."""
        reasons = Counter(reason for _, reason in self.listed)
        return {"n": self.total, "listed": len(self.listed),
                "reasons": [{"reason": visible(r), "n": n} for r, n in sorted(reasons.items())]}


def summary_json(rows: Sequence[Mapping[str, Any]], skipped: Skipped = Skipped()) -> str:
    data: dict[str, Any] = {"schema": SUMMARY_SCHEMA, "tracks": list(rows)}
    if skipped.total:
        data["skipped"] = [{"path": p, "reason": r} for p, r in skipped.listed]
        data["skipped_total"] = skipped.total
    try:
        return json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True,
                          allow_nan=False) + "\n"
    except (TypeError, ValueError) as exc:  # NaN or a non-JSON value in a track
        raise ReportError(f"summary is not plain JSON: {exc}") from exc


#: Verdicts in the order the index totals them.
VERDICT_ORDER = ("ai", "inconclusive", "human")


def index_header(rows: Sequence[Mapping[str, Any]], skipped: Skipped = Skipped()) -> dict:
    """What the top of ``index.html`` states: verdict totals, the model(s), the date(s).

    Derived from the summary rows alone, so verification re-renders the same page from the
    rows it has checked against the signed results.
    """
    ok = [r for r in rows if r.get("status") == "ok"]
    counts = {v: sum(1 for r in ok if r.get("verdict") == v) for v in VERDICT_ORDER}
    other = len(ok) - sum(counts.values())
    totals = [{"label": v, "n": n} for v, n in counts.items()]
    if other:
        totals.append({"label": "other", "n": other})
    totals.append({"label": "failed", "n": len(rows) - len(ok)})
    models = sorted({(str(r.get("model_name") or "unnamed model"), str(r.get("model_version") or ""),
                      str(r.get("model_sha256") or "not recorded")) for r in ok})
    software = sorted({str(r["musicbrain_version"]) for r in ok if r.get("musicbrain_version")})
    days = sorted({str(r["analysis_time"])[:10] for r in ok if r.get("analysis_time")})
    date = (days[0] if len(days) == 1 else f"{days[0]} to {days[-1]}") if days else "n/a"
    return {"totals": [{"label": visible(t["label"]), "n": t["n"]} for t in totals],
            "models": [{"name": visible(n), "version": visible(v), "sha256": visible(h)}
                       for n, v, h in models],
            "software": visible(", ".join(software) or "n/a"),
            "date": visible(date), "n": len(rows), "skipped": skipped.header()}


def _label_words(item: str) -> str:
    """One ``group/label=p`` item of the ``top_labels`` column as a reader reads it."""
    name, sep, p = item.rpartition("=")
    return f"{display_label(name)} {p}" if sep else item


def _looks(name: Any) -> str:
    """What a name looks like on a page: compatibility-composed, spaces folded."""
    return re.sub(" +", " ", unicodedata.normalize("NFKC", str(name))).strip(" ")


def _index_rows(rows: Sequence[Mapping[str, Any]]) -> list[dict]:
    # a file name that recurs (every album's "01.flac") does not say which recording a row
    # is: those rows show the path scanned instead
    # ... and so do names that only look alike (composed or decomposed accents, folded spaces)
    names = Counter(_looks(row.get("file_name")) for row in rows)
    out = []
    for row in rows:
        values, sort = {}, {}
        for key, _ in INDEX_COLUMNS:
            value = row.get(key)
            if key == "file_name" and names[_looks(value)] > 1 and row.get("path"):
                text = str(row["path"])
            elif key == "p_ai" and value is not None:
                # as the track's report prints it: never as a threshold it is not, never 1
                text = prob_beside(float(value), row.get("band_low"), row.get("band_high"),
                                   row.get("threshold"))
            elif key == "duration_s" and value is not None:
                text = f"{float(value):.1f}"
            elif key == "top_labels" and value not in (None, WITHHELD, WITHHELD_SILENT):
                # summary.csv keeps the label keys for machines; the page names them in
                # words ("Period: Baroque 0.93", not "period/Baroque=0.93")
                text = "; ".join(_label_words(item) for item in str(value).split("; "))
            elif key == "in_domain":
                text = {True: "yes", False: "NO", None: "n/a"}[value]
            elif key == "status" and row.get("error"):
                text = f"failed: {row['error']}"
            elif key == "ai_lines" and value is None and row.get("status") == "ok":
                text = "none"           # analysed, and no line found AI ("n/a" read as unknown)
            else:
                text = "n/a" if value is None else str(value)
            values[key] = visible_name(text) if key == "file_name" else visible(text)
            sort[key] = visible(value if isinstance(value, (int, float)) and
                                not isinstance(value, bool) else text)
        out.append({"cells": values, "sortkey": sort, "status": row["status"],
                    "numeric": NUMERIC_COLUMNS,
                    "href": report_href(row["report"]) if row.get("report") else None})
    return out


def write_catalog(out_root: Path, entries: Sequence[CatalogEntry], *,
                  title: str = "MusicBrain catalog",
                  skipped: Sequence[tuple[Any, Any]] = ()) -> list[Path]:
    """Write ``summary.json``, ``summary.csv`` and ``index.html`` into ``out_root``;
    ``skipped``: the ``(path, reason)`` pairs the scan passed over (:class:`Skipped`).

    Returns the written paths. Each file is written atomically.
    """
    out_root = Path(out_root)
    out_root.mkdir(parents=True, exist_ok=True)
    files = catalog_files([summary_row(e) for e in entries], title=title,
                          skipped=Skipped.of(skipped))
    return [atomic_write_bytes(out_root / name, data) for name, data in files.items()]


def catalog_files(rows: Sequence[Mapping[str, Any]], *,
                  title: str = "MusicBrain catalog",
                  skipped: Skipped = Skipped()) -> dict[str, bytes]:
    """The catalog's files (``summary.json``, ``summary.csv``, ``index.html``) as bytes, from
    its summary rows and what the scan passed over: one definition for the writer and for
    verification, which re-renders them from the rows it has checked against the signed
    results (and the passed-over list the sealed summary holds)."""
    html = render_index_html(_index_rows(rows), title=title, columns=INDEX_COLUMNS,
                             header=index_header(rows, skipped))
    return {SUMMARY_JSON: summary_json(rows, skipped).encode("utf-8"),
            SUMMARY_CSV: summary_csv(rows).encode("utf-8"),
            INDEX_HTML: html.encode("utf-8")}
