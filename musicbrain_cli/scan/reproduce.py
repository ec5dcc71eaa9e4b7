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

The figure images of the report folder are drawn again and compared byte for byte: the
timeline from the recorded ``result.json`` (as the writer draws it), the others from the
re-run's arrays (:func:`_compare_figures`). ``verdict.measured_on_real_ai`` is checked
where this installation can check it and said to be not checked where it cannot
(:func:`_check_real_ai_record`). A report made by another MusicBrain version is not
reproduced at all: its figures, images and text are that version's.
"""

from __future__ import annotations

import contextlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from musicbrain_cli import __version__
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
LISTED_PER_PART = 20  # differences listed for one part that is not a figure


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


REAL_AI = "verdict.measured_on_real_ai"


def _analysis_models(track: dict) -> dict[str, str | None]:
    """``{line: weights SHA-256}`` of the models a result records: the content model's, its
    card's (``content_card``) and domain statistics' (``content_ood``), and each evidence
    line's own (as
    :func:`musicbrain_cli.scan.batch.measured_models` names them)."""
    models: dict[str, str | None] = {"content": (track.get("model") or {}).get("weights_sha256")}
    for key, name in (("card_sha256", "content_card"), ("ood_sha256", "content_ood")):
        sha = (track.get("model") or {}).get(key)
        if isinstance(sha, str) and sha:
            models[name] = sha
    for entry in track.get("evidence") or ():
        if isinstance(entry, dict) and isinstance(entry.get("line"), str):
            sha = _recorded_line_model(track, entry["line"])
            if sha:
                models[entry["line"]] = sha
    return models


def _check_real_ai_record(recorded: dict, again: dict, result: "ReproduceResult") -> None:
    """Check ``verdict.measured_on_real_ai``, which is not a figure of this analysis but a
    copy of the installed record of what the verdict did on real AI music
    (:func:`musicbrain_cli.verdict.real_ai_measurement`), and set it aside from the comparison.

    A record that says it applies (``applies``) claims a measurement with this analysis's
    models and MusicBrain version: when it names exactly those (the re-run's, which are the
    report's), the installed record must be the same, so any difference is one; when it names
    others, it presents another measurement as this one's, also a difference. A record that
    does not apply, or none (results of 0.2.0 and earlier), may differ from the installed one
    honestly (a later measurement): that is stated as not checked, never counted as a match
    (session 28; review: a signer edited the measured misses and verify --reproduce passed).
    """
    want = got = None
    for track in (recorded, again):
        verdict = track.get("verdict")
        if isinstance(verdict, dict) and "measured_on_real_ai" in verdict:
            track["verdict"] = {k: v for k, v in verdict.items() if k != "measured_on_real_ai"}
            if track is recorded:
                want = verdict["measured_on_real_ai"]
            else:
                got = verdict["measured_on_real_ai"]
    if want == got:
        if want is not None:
            result.checked.append(REAL_AI)
        return
    if isinstance(want, dict) and want.get("applies"):
        models, have = want.get("models"), _analysis_models(again)
        if isinstance(models, dict) and models == have and want.get("version") == __version__:
            result.checked.append(REAL_AI)
            compare(want, got, atol=0.0, path=REAL_AI, out=result.differences,
                    limit=len(result.differences) + LISTED_PER_PART)
        else:
            result.differences.append(
                f"{REAL_AI}: the report quotes a measurement of the verdict on real AI music as "
                f"made with these models and this version, but it names models "
                f"{models!r} and MusicBrain {want.get('version')!r}; this analysis's are "
                f"{have!r} and {__version__}")
        return
    result.notes.append(f"not checked: {REAL_AI} (what the verdict did on real AI music, "
                        "quoted by the report) differs from the record installed here and "
                        "names no measurement of these models with this version, so this "
                        "installation cannot say whether it is true")


def _compare_figures(folder: Path, recorded: dict, explain: list[dict],
                     result: "ReproduceResult") -> None:
    """Draw the report's figures again and compare them byte for byte with the folder's
    ``figures/``: the timeline from the recorded ``result.json`` (as the writer draws it), the
    others from the re-run's arrays. The report's HTML and PDF show the folder's images, and
    ``verify`` checks only that they are those files: an image drawn from other numbers than
    the analysis gives (review: a timeline redrawn at P(AI) 0.99 passed) is found here.

    Drawing is deterministic (no text chunks, fixed sizes), but with other fonts or another
    matplotlib, or where the re-run's last float bits differ, other pixels may be drawn: a
    difference says so (the notes name each library whose version differs)."""
    from musicbrain_cli.inputs import read_regular
    from musicbrain_cli.report.html import TIMELINE_FIGURE
    from musicbrain_cli.report.writer import FIGURES_DIR, _timeline_png
    from musicbrain_cli.scan.documents import render_figures

    drawn = render_figures(explain)
    timeline = _timeline_png(recorded)
    if timeline is not None:
        drawn[TIMELINE_FIGURE] = timeline
    where = Path(folder) / FIGURES_DIR
    try:
        present = sorted(p.name for p in where.iterdir()) if where.is_dir() else []
    except OSError as exc:
        result.differences.append(f"figures: cannot list {str(where)!r}: {exc.strerror or exc}")
        return
    for name in sorted(set(drawn) | set(present)):
        result.checked.append(f"{FIGURES_DIR}/{name}")
        if name not in present:
            result.differences.append(f"{FIGURES_DIR}/{name}: the re-run draws it, the report "
                                      "folder has no such figure")
            continue
        if name not in drawn:
            result.differences.append(f"{FIGURES_DIR}/{name}: in the report folder, but the "
                                      "re-run draws no such figure")
            continue
        try:
            same = read_regular(where / name) == drawn[name]
        except OSError as exc:
            result.differences.append(f"{FIGURES_DIR}/{name}: cannot read it: "
                                      f"{exc.strerror or exc}")
            continue
        if not same:
            result.differences.append(
                f"{FIGURES_DIR}/{name}: the image differs from the one drawn again from "
                + ("the recorded timeline" if name == TIMELINE_FIGURE else "the re-run")
                + " (with other fonts or another matplotlib than the report's, other pixels "
                  "may be drawn)")


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


#: The most torch threads a recorded count may ask the re-run for.
MAX_THREADS = 4096


@contextlib.contextmanager
def _recorded_threads(recorded: dict):
    """Run the re-run with the torch thread count the analysis recorded, then give the
    caller's back. oneDNN splits a convolution's work by thread count, so the last float bits
    of the logits and of the FM-G-CAM maps follow it: a report made by a Ray task (one thread,
    ``ray_engine.TASK_CPUS``) and re-run with the CLI's default (one per core) differed in its
    alignment masses and FM-G-CAM images (review of session 46). A result without the record
    (made before it) or with a malformed one is re-run with the caller's setting; the
    difference is then named among the notes (:func:`version_differences`)."""
    import torch

    software = recorded.get("software")
    want = software.get("torch_threads") if isinstance(software, dict) else None
    try:
        want = int(want) if isinstance(want, str) and want.isdigit() else None
    except ValueError:
        want = None
    before = torch.get_num_threads()
    if want is None or not 1 <= want <= MAX_THREADS or want == before:
        yield
        return
    torch.set_num_threads(want)
    try:
        yield
    finally:
        torch.set_num_threads(before)


#: ``device`` for :func:`reproduce`: the device the report's analysis ran on.
RECORDED_DEVICE = "recorded"


def rerun_device(recorded: Any, requested: str = RECORDED_DEVICE, *,
                 cuda_count: int) -> tuple[str, str | None]:
    """The torch device a re-run uses, and a note when it is not the device the report's
    analysis ran on. ``recorded``: ``software.device`` of the result (``cpu``, or ``cuda:N
    (card)``: :func:`.batch.compute_device`); ``requested``: ``recorded`` (that device where
    this machine has it), ``cpu``, ``cuda`` or ``cuda:N``; ``cuda_count``: CUDA devices here.

    A GPU's float arithmetic is not the CPU's (other kernels, TF32 convolutions on recent
    cards): a report made on the client's GPUs and re-run on the CPU differed in the last
    bits of its maps and so in its figures, read as a failed reproduction (session 46 left
    this open). Raises :class:`InputError` for a CUDA device this machine does not have."""
    recorded = recorded if isinstance(recorded, str) else None
    on_gpu = recorded is not None and recorded.startswith("cuda")
    if requested == RECORDED_DEVICE:
        if not on_gpu:
            return "cpu", None
        head = recorded.split(" ", 1)[0]
        index = head.partition(":")[2]
        index = int(index) if index.isdigit() else 0
        if cuda_count > index:
            return f"cuda:{index}", None
        if cuda_count:
            return "cuda:0", (f"the report's analysis ran on {recorded}; this machine has no "
                              f"cuda:{index}, so the re-run used cuda:0: another card's "
                              "arithmetic can differ in the last bits")
        return "cpu", (f"the report's analysis ran on {recorded} and this machine has no "
                       "CUDA device: the re-run used the CPU, whose float arithmetic differs "
                       "from a GPU's in the last bits, so figures can differ for that reason "
                       "alone; reproduce it on a machine with a CUDA card")
    if requested.startswith("cuda"):
        index = requested.partition(":")[2]
        if (index and not index.isdigit()) or cuda_count <= (int(index) if index else 0):
            raise InputError(f"--device {requested}: this machine has "
                             f"{cuda_count or 'no'} CUDA device(s)")
    elif requested != "cpu":
        raise InputError(f"--device {requested!r}: expected recorded, cpu, cuda or cuda:N")
    if on_gpu != requested.startswith("cuda"):
        return requested, (f"the report's analysis ran on {recorded or 'the CPU'}; this re-run "
                           f"on {requested} (as asked) can differ in the last float bits for "
                           "that reason alone")
    return requested, None


def reproduce(report_dir: str | Path, audio: str | Path, *, model: str | Path = "default",
              device: str = RECORDED_DEVICE, atol: float = DEFAULT_ATOL,
              trust_anchors: str | Path | None = None) -> ReproduceResult:
    """Re-run the analysis recorded in ``report_dir/result.json`` on ``audio`` and compare.

    ``trust_anchors``: the C2PA trust anchors the scan was given (their SHA-256 is recorded);
    without the same bundle the provenance line cannot come out the same. ``device``: where
    the network re-runs (:func:`rerun_device`; by default the device the report records).
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
    made_by = (recorded.get("software") or {}).get("musicbrain") \
        if isinstance(recorded.get("software"), dict) else None
    if made_by != __version__:
        # its text, figures and the rules that made them are that version's: a re-run here
        # would compare another program's output (review: a signer set another version to
        # switch off the rendering checks, and the reproduction still passed)
        result.ok = False
        result.differences.append(f"the report was made by MusicBrain {made_by or '(not recorded)'}"
                                  f", this is {__version__}: it cannot be reproduced with this "
                                  "version; reproduce it with the version it names")
        return result
    try:
        sha = sha256_file(audio)
    except OSError as exc:
        raise InputError(f"cannot read {str(audio)!r}: {exc.strerror or exc}") from exc
    if sha != recorded.get("input", {}).get("sha256"):
        result.ok = False
        result.differences.append(f"audio SHA-256 {sha} is not the analysed file's "
                                  f"{recorded.get('input', {}).get('sha256')}")
        return result
    import torch

    software = recorded.get("software") if isinstance(recorded.get("software"), dict) else {}
    device, device_note = rerun_device(software.get("device"), device,
                                       cuda_count=torch.cuda.device_count())
    detector = Detector.from_pretrained(model, device=device)
    want = recorded.get("model", {}).get("weights_sha256")
    have = detector.card.get("weights_sha256")
    if want and have != want:
        result.ok = False
        result.differences.append(f"model weights SHA-256 {have} is not the recorded {want}; "
                                  "give the model the report names with --model")
        return result
    # The card and the domain statistics are not pinned: a changed one explains changed
    # probabilities or a changed domain check, so it is named beside the differences.
    have_files = getattr(detector, "file_sha256", None) or {}
    for key, what in (("card", "model card"), ("ood", "domain statistics")):
        recorded_sha = recorded.get("model", {}).get(f"{key}_sha256")
        if recorded_sha and recorded_sha != have_files.get(key):
            result.notes.append(f"the SHA-256 of the installed {what} {have_files.get(key)} is "
                                f"not the recorded {recorded_sha}: this can change the "
                                "probabilities or the domain check")
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
    with _recorded_threads(recorded):
        analysis = analyse_track(audio, detector, options=options,
                                 command_line=recorded.get("command_line", []),
                                 analysis_time=recorded.get("analysis_time"))
    again = analysis.track
    if recorded.get("options", {}).get("notes") == "auto":
        _carry_estimator_choice(recorded, again)
    _check_real_ai_record(recorded, again, result)
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
    _compare_figures(Path(report_dir), recorded, analysis.explain, result)
    if len(result.differences) >= MAX_LISTED:
        result.notes.append(f"only the first {MAX_LISTED} differences are listed")
    result.notes.extend(version_differences(recorded.get("software") or {},
                                            again.get("software") or {}))
    if device_note:
        result.notes.append(device_note)
    result.ok = not result.differences
    return result
