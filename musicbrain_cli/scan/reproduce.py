"""Re-run the analysis a report records and check that its figures come out the same.

A report's ``result.json`` records everything the analysis depended on: the audio's
SHA-256, the model's weights SHA-256, the analysis options and the analysis time (the only
input that is not part of (file, model, options); see :func:`.batch.analyse_track`).
:func:`reproduce` loads the same model, re-runs :func:`.batch.analyse_track` on the audio with
those options, and compares every figure the report states: every part of the result
(the verdict and its probability, the evidence lines, the per-window timeline, the style
labels, the out-of-domain score, the explained windows and their alignment, the input
facts such as the decoded duration, undecodable packets and share decoded, the metadata,
the limitations, the model facts) except those that are inputs to the re-run rather than
findings (:data:`NOT_COMPARED`). On CPU the analysis is deterministic, so the default
tolerance is tight; a different machine or BLAS may differ in the last float32 bits.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from musicbrain_cli.errors import InputError

#: The parts of a track result that are not findings: the re-run is given them (command
#: line, analysis time, options), or they describe this installation (software: stated as
#: notes). Everything else in ``result.json`` is compared, so a new field is compared too.
NOT_COMPARED = ("software", "command_line", "analysis_time", "options")
#: Input facts that name where the file was, not what it is: a copy elsewhere reproduces.
INPUT_LOCATION = ("path", "file_name")
#: The parts always compared, even when absent from both (an absent part is a difference
#: when the other side has it).
COMPARED = ("schema", "input", "metadata", "verdict", "evidence", "timeline", "labels",
            "labels_untrained", "labels_withheld", "aggregate", "ood", "alignment",
            "explanations", "robustness", "model", "limitations")
DEFAULT_ATOL = 1e-5
MAX_LISTED = 200      # differences listed before "and more"


def _carry_estimator_choice(recorded: dict, again: dict) -> None:
    """A ``--notes auto`` scan is re-run asking for the estimator it used; how that one was
    chosen (``requested``, ``fallback``) is then given, like the options, not re-found.
    The estimator itself and every note-based finding are still compared."""
    pairs = [((recorded.get("alignment") or {}).get("note_estimator"),
              (again.get("alignment") or {}).get("note_estimator"))]
    pairs += [(a.get("note_estimator"), b.get("note_estimator"))
              for a, b in zip(recorded.get("explanations") or [], again.get("explanations") or [])
              if isinstance(a, dict) and isinstance(b, dict)]
    for want, got in pairs:
        if isinstance(want, dict) and isinstance(got, dict):
            for key in ("requested", "fallback"):
                if key in want:
                    got[key] = want[key]


def _drop_unrecorded_reference(recorded: dict, again: dict) -> None:
    """Results recorded before the alignment checks were also run on the spectrogram's own
    energy (``energy_reference``) made no claim about it: the re-run's reference is left out
    of the comparison for them (the map's own alignment is still compared)."""
    if "energy_reference" in (recorded.get("alignment") or {}):
        return
    parts = [again.get("alignment")] + list(again.get("explanations") or [])
    for part in parts:
        if isinstance(part, dict):
            part.pop("energy_reference", None)


def _set_aside_real_ai_record(recorded: dict, again: dict, result: "ReproduceResult") -> None:
    """``verdict.measured_on_real_ai`` is a copy of the installed record of what the verdict
    did on real AI music (:func:`musicbrain_cli.verdict.real_ai_measurement`), not a figure of
    this analysis: results made before it existed (0.2.0 and earlier) have none, and a later
    measurement of the same models replaces it. It is left out of the comparison, with a
    note when the installed record differs from the one the report quotes (session 28)."""
    want = got = None
    for track in (recorded, again):
        verdict = track.get("verdict")
        if isinstance(verdict, dict) and "measured_on_real_ai" in verdict:
            track["verdict"] = {k: v for k, v in verdict.items() if k != "measured_on_real_ai"}
            if track is recorded:
                want = verdict["measured_on_real_ai"]
            else:
                got = verdict["measured_on_real_ai"]
    if want is not None and want != got:
        result.notes.append("the record of what the verdict did on real AI music that the "
                            "report quotes differs from the one installed here (another "
                            "measurement); it is not a figure of this analysis")


@dataclass
class ReproduceResult:
    ok: bool
    differences: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def compare(a: Any, b: Any, *, atol: float, path: str = "", out: list[str] | None = None,
            limit: int = 20) -> list[str]:
    """Differences between two JSON-like values; floats within ``atol`` count as equal."""
    out = [] if out is None else out
    if len(out) >= limit:
        return out
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if key not in a or key not in b:
                out.append(f"{path}.{key}: present in only one of the two")
            else:
                compare(a[key], b[key], atol=atol, path=f"{path}.{key}", out=out, limit=limit)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            out.append(f"{path}: {len(a)} items recorded, {len(b)} reproduced")
        else:
            for i, (x, y) in enumerate(zip(a, b)):
                compare(x, y, atol=atol, path=f"{path}[{i}]", out=out, limit=limit)
    elif isinstance(a, (int, float)) and isinstance(b, (int, float)) \
            and not isinstance(a, bool) and not isinstance(b, bool):
        if not (math.isclose(a, b, abs_tol=atol, rel_tol=0.0)
                or (math.isnan(a) and math.isnan(b))):
            out.append(f"{path}: recorded {a!r}, reproduced {b!r}")
    elif a != b:
        out.append(f"{path}: recorded {a!r}, reproduced {b!r}")
    return out


def version_differences(recorded: dict[str, str], installed: dict[str, str]) -> list[str]:
    """One line per library whose installed version is not the one the report was made with.

    A difference is stated, not failed: the figures are compared on their own, and a
    difference in the last float bits is what a changed library most often explains.
    ``pip install --require-hashes -r requirements.lock`` reinstalls the shipped set.
    """
    lines = []
    for name in sorted(set(recorded) | set(installed)):
        was, now = recorded.get(name), installed.get(name)
        if was != now and name == "device":
            lines.append(f"this re-run ran on {now or 'an unrecorded device'}, the report's "
                         f"analysis on {was or 'an unrecorded device'}")
        elif was != now:
            lines.append(f"installed {name} {now or 'absent'} differs from the report's "
                         f"{was or 'unrecorded'}")
    return lines


def _installed_line_models() -> list[tuple[str, str | None]]:
    """``(line, model SHA-256)`` of the evidence lines with a model of their own."""
    from musicbrain_cli.scan.batch import load_artifact_detector, load_symbolic_detector

    return [("artifacts", load_artifact_detector().sha256),
            ("symbolic", load_symbolic_detector().sha256)]


def _recorded_line_model(recorded: dict, line: str) -> str | None:
    """The model SHA-256 a result records for ``line`` (``None`` when it records none)."""
    for entry in recorded.get("evidence") or ():
        if isinstance(entry, dict) and entry.get("line") == line:
            details = entry.get("details")
            found = details.get(line) if isinstance(details, dict) else None
            sha = found.get("model_sha256") if isinstance(found, dict) else None
            return sha if isinstance(sha, str) else None
    return None


def reproduce(report_dir: str | Path, audio: str | Path, *, model: str | Path = "default",
              device: str = "cpu", atol: float = DEFAULT_ATOL,
              trust_anchors: str | Path | None = None) -> ReproduceResult:
    """Re-run the analysis recorded in ``report_dir/result.json`` on ``audio`` and compare.

    ``trust_anchors``: the C2PA trust anchors the scan was given (their SHA-256 is recorded);
    without the same bundle the provenance line cannot come out the same.
    """
    from musicbrain_cli.audio.intake import sha256_file
    from musicbrain_cli.model.inference import Detector
    from musicbrain_cli.scan.batch import RESULT_JSON, ScanOptions, analyse_track

    path = Path(report_dir) / RESULT_JSON
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise InputError(f"cannot read the recorded result {str(path)!r}: {exc}") from exc
    if not isinstance(recorded, dict) or not all(
            isinstance(recorded.get(k), dict) for k in ("input", "model")) or \
            not isinstance(recorded.get("options", {}), dict):
        raise InputError(f"{str(path)!r} is not a track result (input, model and options "
                         "must be objects)")
    result = ReproduceResult(ok=True)
    try:
        sha = sha256_file(audio)
    except OSError as exc:
        raise InputError(f"cannot read {str(audio)!r}: {exc.strerror or exc}") from exc
    if sha != recorded.get("input", {}).get("sha256"):
        result.ok = False
        result.differences.append(f"audio SHA-256 {sha} is not the analysed file's "
                                  f"{recorded.get('input', {}).get('sha256')}")
        return result
    detector = Detector.from_pretrained(model, device=device)
    want = recorded.get("model", {}).get("weights_sha256")
    have = detector.card.get("weights_sha256")
    if want and have != want:
        result.ok = False
        result.differences.append(f"model weights SHA-256 {have} is not the recorded {want}; "
                                  "give the model the report names with --model")
        return result
    # Each evidence line's own model: a report made with another version of a line (the
    # artifact line's doubt zone, session 20) cannot come out the same here, and saying so
    # beats listing its findings as differences.
    for line, have_line in _installed_line_models():
        want_line = _recorded_line_model(recorded, line)
        if want_line and want_line != have_line:
            result.ok = False
            result.differences.append(
                f"the {line} line's model SHA-256 {have_line} is not the recorded {want_line}: "
                "this installation holds another version of that line; reproduce with the "
                f"MusicBrain version the report names ({(recorded.get('software') or {}).get('musicbrain')})")
    if not result.ok:
        return result
    # Results recorded before the note estimator could be chosen (issue 26) used the
    # built-in one. A scan run with "auto" is re-run with the estimator it recorded, so
    # what is installed here cannot change the answer silently.
    kept = {k: v for k, v in recorded.get("options", {}).items()
            if k in ScanOptions.__dataclass_fields__}
    if kept.get("notes") == "auto":
        used = str((recorded.get("alignment") or {}).get("note_estimator", {})
                   .get("estimator", ""))
        kept["notes"] = "basic-pitch" if used.startswith("basic-pitch") else "builtin"
    # Results recorded before the stride pattern was removed from the maps (session 18) carry
    # no options.destripe and kept it.
    options = ScanOptions(**{"notes": "builtin", "destripe": 0} | kept,
                          trust_anchors=str(trust_anchors) if trust_anchors else None)
    want_anchors = recorded.get("options", {}).get("c2pa_trust_anchors_sha256")
    have_anchors = sha256_file(trust_anchors) if trust_anchors else None
    if want_anchors != have_anchors:
        result.ok = False
        result.differences.append(f"C2PA trust anchors SHA-256 {have_anchors} is not the "
                                  f"recorded {want_anchors}; give the bundle the scan was "
                                  "given with --c2pa-trust-anchors")
        return result
    again = analyse_track(audio, detector, options=options,
                          command_line=recorded.get("command_line", []),
                          analysis_time=recorded.get("analysis_time")).track
    if recorded.get("options", {}).get("notes") == "auto":
        _carry_estimator_choice(recorded, again)
    _drop_unrecorded_reference(recorded, again)
    _set_aside_real_ai_record(recorded, again, result)
    keys = sorted(set(COMPARED) | set(recorded) | set(again), key=str)
    for key in keys:
        if key in NOT_COMPARED:
            continue
        want, got = recorded.get(key), again.get(key)
        if key == "input" and isinstance(want, dict) and isinstance(got, dict):
            want = {k: v for k, v in want.items() if k not in INPUT_LOCATION}
            got = {k: v for k, v in got.items() if k not in INPUT_LOCATION}
        result.checked.append(key)
        compare(want, got, atol=atol, path=key, out=result.differences, limit=MAX_LISTED)
    if len(result.differences) >= MAX_LISTED:
        result.notes.append(f"only the first {MAX_LISTED} differences are listed")
    result.notes.extend(version_differences(recorded.get("software") or {},
                                            again.get("software") or {}))
    result.ok = not result.differences
    return result
