"""External benchmark (issue 22 item 5): the shipped analysis on public evaluation material.

    python benchmarks/external.py ../shared/eval -o runs/external --max-per-source 60

``EVAL_DIR`` is laid out as its README describes (``../shared/eval/README.md``):

* ``codec/<codec>/<song>__original.<ext>``: real recordings, label **human**; every other
  audio file anywhere under ``EVAL_DIR`` is machine-made, label **ai** (codec
  re-syntheses, text-to-music outputs). The source of a file is its folder relative to
  ``EVAL_DIR`` (``codec/encodec``, ``t2m/mustango``).
* ``notagen-abc/rhythgen/<CFG>/*.abc``: NotaGen fine-tune output as ABC text, label **ai**,
  source ``notagen-abc/<CFG>``. Each piece is rendered into ``OUT_DIR/work/`` by the
  function ``musicbrain data notagen`` renders a training piece with
  (:func:`musicbrain_cli.data.notagen.build_piece`: de-interleave, ``score_to_midi``,
  one SoundFont chosen by the piece's hash, the same clip cutting), and the first
  ``--abc-seconds`` seconds (its first clip) are analysed. A piece that fails to parse or
  render is counted as failed and listed with its reason, never dropped.

Each file goes through :func:`musicbrain_cli.scan.batch.analyse_track`, the function ``scan``
runs per track, so the verdict is the scan's own. No explanation windows are computed
(``explain_windows=0``): the verdict and every P(AI) are fixed before explanation runs,
so this changes nothing measured here and saves the CAM time. Identical files (the seven
originals are copied into each codec folder) are analysed once, by SHA-256, and counted
once in the target rows.

Per track the benchmark reads every evidence line: ``track["evidence"]`` (a list of
``{"line", "finding", "in_domain", "p_ai", ...}``) when the result has it, else the content
model's line from ``track["verdict"]``. It prints a markdown table per (source, truth
label) with the verdict counts and P(AI) quartiles per line, the target rows, and writes
``OUT_DIR/external.md`` and ``OUT_DIR/external.json`` (one row per track).

**Evaluation only**: nothing here trains a model or sets a threshold (README rule).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from musicbrain_cli.audio.intake import sha256_file

ORIGINAL_MARK = "__original"
ABC_ROOT = ("notagen-abc", "rhythgen")
#: The folders the README lays out, each with the kind of file it must hold: a folder above
#: or below EVAL_DIR, or an empty one, would measure a real AI set as nothing (and the
#: record would drop it) or name its sources so that no target row counts them.
EXPECTED_LAYOUT = {"codec": "audio", "t2m": "audio", "/".join(ABC_ROOT): "abc"}
#: ``shared/eval`` in the nearest folder above this checkout that has one
#: (``../shared/eval`` for a checkout beside it).
DEFAULT_EVAL = next((d / "shared" / "eval" for d in Path(__file__).resolve().parents[1].parents
                     if (d / "shared" / "eval").is_dir()), Path("../shared/eval"))
#: RhythGen's two fine-tuning corpora (``../shared/data/README.md``): OpenScore Lieder is
#: voice and piano, RAG is solo piano ragtime. The label only picks GM programs for voices
#: whose part name names no instrument, as it does for ``data notagen``.
ABC_INSTRUMENTATION = {"Lieder": "Art Song", "RAG": "Keyboard"}
ABC_GENERATOR = "rhythgen"
VERDICTS = ("ai", "human", "inconclusive")
CONTENT_LINE = "content"
QUARTILES = (25, 50, 75)
#: Most seconds one ABC piece may take to parse and render (a 30 s piece takes 1-10 s).
RENDER_TIMEOUT_S = 120.0


@dataclass
class EvalItem:
    """One file of the evaluation folder, with its truth label from the README's rules."""

    path: Path                 # the file in EVAL_DIR (the ABC text for symbolic items)
    rel: str                   # relative to EVAL_DIR, as reported
    source: str                # folder, e.g. codec/encodec, t2m/mustango, notagen-abc/LB
    label: str                 # "ai" or "human"
    kind: str = "audio"        # "audio" or "abc"
    audio: Path | None = None  # what is analysed (the rendered clip for ABC)
    error: str | None = None   # why it could not be rendered or analysed


@dataclass
class EvalSelection:
    items: list[EvalItem] = field(default_factory=list)
    found: dict[str, int] = field(default_factory=dict)  # files per source before the cap


def _evenly(items: list, cap: int | None) -> list:
    """``cap`` items spread over the sorted list: RhythGen's safe names follow the original
    names, which sort by guidance scale, so the head of the list is one condition only."""
    if cap is None or len(items) <= cap:
        return items
    step = len(items) / cap
    return [items[int(i * step)] for i in range(cap)]


def truth_label(path: Path) -> str:
    """``*__original.*`` is a human recording; every other evaluation file is AI."""
    return "human" if path.stem.endswith(ORIGINAL_MARK) else "ai"


def discover_eval(root: str | os.PathLike, *, max_per_source: int | None = None
                  ) -> EvalSelection:
    """Every audio file and every RhythGen ABC file under ``root``, labelled and grouped.

    ``max_per_source`` caps each source, taken evenly across its sorted files.
    """
    from musicbrain_cli.errors import InputError
    from musicbrain_cli.scan.discovery import AUDIO_EXTENSIONS

    root = Path(root)
    if not root.is_dir():
        raise InputError(f"evaluation folder {str(root)!r} does not exist")
    if max_per_source is not None and max_per_source < 1:
        raise InputError(f"--max-per-source {max_per_source}: give at least 1 file per source")
    by_source: dict[str, list[EvalItem]] = defaultdict(list)
    abc_root = root.joinpath(*ABC_ROOT)
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.name.startswith("."):
            continue
        rel = path.relative_to(root).as_posix()
        if path.suffix.lower() in AUDIO_EXTENSIONS:
            source = path.parent.relative_to(root).as_posix()
            by_source[source].append(EvalItem(path, rel, source, truth_label(path)))
        elif path.suffix.lower() == ".abc" and path.is_relative_to(abc_root):
            cfg = path.parent.relative_to(abc_root).as_posix()
            source = f"{ABC_ROOT[0]}/{cfg}"
            by_source[source].append(EvalItem(path, rel, source, "ai", kind="abc"))
    empty = [f"no {kind} files under {folder}/" for folder, kind in EXPECTED_LAYOUT.items()
             if not any(it.rel.startswith(folder + "/") and it.kind == kind
                        for items in by_source.values() for it in items)]
    if empty:
        raise InputError(f"evaluation folder {str(root)!r} is not laid out as its README "
                         f"describes ({'; '.join(empty)}): give the folder that holds "
                         f"{', '.join(f + '/' for f in EXPECTED_LAYOUT)}")
    selection = EvalSelection()
    for source in sorted(by_source):
        files = by_source[source]
        selection.found[source] = len(files)
        selection.items += _evenly(files, max_per_source)
    return selection


# --- ABC rendering ----------------------------------------------------------------------


def abc_instrumentation(source: str) -> str:
    """The instrumentation label of a RhythGen configuration (``Lieder-LB`` -> Art Song)."""
    cfg = source.rsplit("/", 1)[-1]
    return ABC_INSTRUMENTATION.get(cfg.split("-", 1)[0], "")


def render_abc(abc_path: str, rel: str, source: str, work_dir: str, *, clip_s: float,
               seed: int = 0) -> tuple[str | None, str | None]:
    """Render one ABC piece as ``data notagen`` renders a training piece; returns
    ``(first clip's audio path, None)`` or ``(None, reason)``. Resumable: a piece rendered
    before with the same ``clip_s`` and ``seed`` is not rendered again. Runs in a worker
    process with ``--jobs``."""
    from musicbrain_cli.errors import MusicBrainError
    from musicbrain_cli.data.dataset import DatasetWriter
    from musicbrain_cli.data.labels import style_taxonomy
    from musicbrain_cli.data.notagen import AbcItem, StyleLabels, build_piece
    from musicbrain_cli.data.render import available_soundfonts

    item = AbcItem(Path(abc_path), rel, rel, ABC_GENERATOR)
    labels = StyleLabels("", "", abc_instrumentation(source))
    # one small data set per piece, so that worker processes never share a journal; one per
    # clip length and seed too, so that a rerun with other settings never analyses (and
    # reports as made with its own settings) the clips an earlier run rendered
    out = Path(work_dir) / f"clip{clip_s:g}s-seed{seed}" / Path(rel).with_suffix("")
    try:
        with DatasetWriter(out, style_taxonomy(generators=[ABC_GENERATOR]),
                           name="external-abc") as writer:
            build_piece(writer, item, labels, available_soundfonts(),
                        {f"notagen:{rel}": "test"}, seed=seed, sample_rate=22050,
                        clip_s=clip_s, humanize=None, parse_timeout_s=None)
            first = sorted(r["path"] for r in writer.rows)
    except MusicBrainError as exc:
        return None, f"{type(exc).__name__}: {exc}"
    if not first:
        return None, "rendering wrote no clip"
    return str(out / first[0]), None


def _render_child(conn, args: tuple, kwargs: dict) -> None:
    """Worker body: one piece, its result sent back; any failure becomes its reason (a
    benchmark lists every piece it could not render, whatever broke)."""
    try:
        conn.send(render_abc(*args, **kwargs))
    except Exception as exc:  # noqa: BLE001 - reported per piece, never hidden
        conn.send((None, f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


def render_all(items: Sequence[EvalItem], work_dir: Path, *, clip_s: float, seed: int,
               jobs: int = 1, timeout_s: float = RENDER_TIMEOUT_S, log=print) -> None:
    """Fill ``audio`` (or ``error``) of every ABC item, ``jobs`` pieces at a time.

    Each piece renders in a forked child with a time limit: music21's ABC parser can run
    for many minutes on some generated text (seen on RhythGen's Lieder-LB output), and
    such a piece is a failure to list, not a reason to stall the benchmark.
    """
    import multiprocessing as mp

    import music21.converter  # noqa: F401 - imported before forking: children start warm

    import musicbrain_cli.data.notagen  # noqa: F401

    todo = [it for it in items if it.kind == "abc"]
    ctx = mp.get_context("fork")
    pending = list(reversed(todo))
    running: list[tuple[EvalItem, object, object, float]] = []
    t0, done = time.perf_counter(), 0
    while pending or running:
        while pending and len(running) < max(1, jobs):
            it = pending.pop()
            recv, send = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=_render_child, daemon=True,
                               args=(send, (str(it.path), it.rel, it.source, str(work_dir)),
                                     {"clip_s": clip_s, "seed": seed}))
            proc.start()
            send.close()
            running.append((it, proc, recv, time.perf_counter()))
        still = []
        for it, proc, recv, started in running:
            # is_alive before poll: a child that sent its result and exited between the two
            # would otherwise be read as one that exited without a result (a spurious failure)
            exited = not proc.is_alive()
            if recv.poll():
                try:
                    audio, it.error = recv.recv()
                except EOFError:
                    audio, it.error = None, "the render worker died without a result"
                it.audio = Path(audio) if audio else None
                proc.join()
            elif exited:
                proc.join()
                audio, it.error = None, f"the render worker exited with code {proc.exitcode}"
            elif time.perf_counter() - started > timeout_s:
                proc.kill()
                proc.join()
                it.error = f"rendering took longer than {timeout_s:.0f} s (stopped)"
            else:
                still.append((it, proc, recv, started))
                continue
            recv.close()
            done += 1
            _tick(log, "rendering ABC", done, len(todo), t0)
        running = still
        if running:
            time.sleep(0.05)


def _tick(log, what: str, i: int, n: int, t0: float) -> None:
    if i == n or i % 10 == 0:
        log(f"{what}: {i}/{n} ({time.perf_counter() - t0:.0f} s)")


# --- analysis ---------------------------------------------------------------------------


def evidence_lines(track: dict) -> list[dict]:
    """The evidence lines of one track result (``track["evidence"]``, see
    :class:`musicbrain_cli.verdict.LineFinding`): a line is *applicable* when it is in its
    own domain, and its P(AI) is quoted only then. Results written before the lines existed
    fall back to the content model's line, built from ``track["verdict"]``."""
    lines = track.get("evidence")
    if lines:
        return [{"line": str(e["line"]), "applicable": bool(e.get("in_domain")),
                 "p_ai": None if e.get("p_ai") is None else float(e["p_ai"]),
                 "says_ai": e.get("finding") == "ai" and bool(e.get("in_domain"))}
                for e in lines]
    v = track["verdict"]
    return [{"line": CONTENT_LINE, "applicable": True, "p_ai": float(v["p_ai"]),
             "says_ai": v["label"] == "ai"}]


def track_models(track: dict) -> dict[str, str]:
    """``{line: weights SHA-256}`` a track result was made with: the content model's (and its
    card's and domain statistics', as ``content_card`` and ``content_ood``), and each
    evidence line's that records one."""
    out = {CONTENT_LINE: str((track.get("model") or {}).get("weights_sha256", ""))}
    # the card too (threshold, band, calibration): the same weights finalized again give
    # other verdicts (scan.batch.measured_models)
    for key, name in (("card_sha256", "content_card"), ("ood_sha256", "content_ood")):
        if (track.get("model") or {}).get(key):
            out[name] = str(track["model"][key])
    for e in track.get("evidence") or ():
        sha = ((e.get("details") or {}).get(e.get("line")) or {}).get("model_sha256")
        if sha:
            out[str(e["line"])] = str(sha)
    return out


def analyse_all(items: Sequence[EvalItem], detector, *, log=print) -> list[dict]:
    """One row per item: path, source, label, verdict, P(AI) per evidence line, sha256."""
    from musicbrain_cli.errors import MusicBrainError
    from musicbrain_cli.scan.batch import ScanOptions, analyse_track

    options = ScanOptions(formats=(), explain_windows=0)
    done: dict[str, dict] = {}
    rows = []
    t = time.perf_counter()
    for i, it in enumerate(items, 1):
        row = {"path": it.rel, "source": it.source, "label": it.label, "kind": it.kind,
               "verdict": None, "p_ai": {}, "says_ai": {}, "in_domain": None, "sha256": None,
               "error": it.error}
        if it.error is None:
            audio = it.audio or it.path
            try:
                sha = sha256_file(audio)
                if sha not in done:
                    track = analyse_track(audio, detector, options=options).track
                    lines = evidence_lines(track)
                    done[sha] = {
                        "models": track_models(track),
                        "verdict": track["verdict"]["label"],
                        "p_ai": {e["line"]: e["p_ai"] for e in lines if e["applicable"]},
                        "says_ai": {e["line"]: e["says_ai"] for e in lines},
                        "in_domain": (track.get("ood") or {}).get("in_domain")}
                row.update(done[sha], sha256=sha)
            except (MusicBrainError, OSError) as exc:
                row["error"] = f"{type(exc).__name__}: {exc}"
        rows.append(row)
        _tick(log, "analysing", i, len(items), t)
    return rows


# --- tables -----------------------------------------------------------------------------


def _quartiles(values: Iterable[float]) -> str:
    v = [x for x in values if x is not None]
    if not v:
        return "-"
    q = np.percentile(np.asarray(v, dtype=np.float64), QUARTILES)
    return " / ".join(f"{x:.2f}" for x in q)


def summarise(rows: Sequence[dict]) -> dict:
    """Counts and P(AI) quartiles per (source, truth label); the issue's target rows."""
    lines = sorted({k for r in rows for k in r["p_ai"]},
                   key=lambda k: (k != CONTENT_LINE, k))
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in rows:
        groups[(r["source"], r["label"])].append(r)
    table = []
    for (source, label), rs in sorted(groups.items()):
        ok = [r for r in rs if r["error"] is None]
        table.append({
            "source": source, "label": label, "tracks": len(rs),
            **{v: sum(r["verdict"] == v for r in ok) for v in VERDICTS},
            "failed": len(rs) - len(ok),
            # the scan calls an out-of-domain track inconclusive by rule: say how many
            "out_of_domain": sum(r.get("in_domain") is False for r in ok),
            "p_ai_quartiles": {ln: _quartiles(r["p_ai"].get(ln) for r in ok) for ln in lines},
        })

    def called(pred, verdict: str) -> dict:
        # unique files (by content), so the originals copied into three folders count once
        seen: dict[str, dict] = {}
        for r in rows:
            if pred(r) and r["error"] is None:
                seen.setdefault(r["sha256"], r)
        n = len(seen)
        k = sum(r["verdict"] == verdict for r in seen.values())
        return {"called": k, "of": n, "share": (k / n) if n else None}

    is_codec_ai = lambda r: r["source"].startswith("codec/") and r["label"] == "ai"  # noqa: E731
    is_original = lambda r: r["label"] == "human"  # noqa: E731
    is_t2m = lambda r: r["source"].startswith("t2m/")  # noqa: E731
    is_abc = lambda r: r["kind"] == "abc"  # noqa: E731
    targets = {
        "codec re-syntheses called ai": called(is_codec_ai, "ai"),
        "originals called ai": called(is_original, "ai"),
        "originals called human": called(is_original, "human"),
        "t2m called ai": called(is_t2m, "ai"),
        "t2m called human": called(is_t2m, "human"),
        "notagen-abc (rendered) called ai": called(is_abc, "ai"),
    }
    failures = [{"path": r["path"], "error": r["error"]} for r in rows if r["error"]]
    real_ai = [{"set": name, **_counts(rows, pred)} for name, pred in (
        (REAL_AI_SETS[0], is_abc), (REAL_AI_SETS[1], is_t2m), (REAL_AI_SETS[2], is_codec_ai))]
    models = sorted({json.dumps(r["models"], sort_keys=True) for r in rows if r.get("models")})
    if len(models) > 1:
        raise RuntimeError(f"the tracks were analysed with different models: {models}")
    return {"lines": lines, "table": table, "targets": targets, "failures": failures,
            "real_ai": real_ai, "models": json.loads(models[0]) if models else {}}


#: The sets of AI music a report quotes (``--record``), named for a reader.
REAL_AI_SETS = ("rendered pieces of a NotaGen-family score generator (RhythGen, in "
                "configurations no line was trained on)",
                "text-to-music tracks (MusicGen, Mustango, Noise2Music)",
                "neural-codec re-syntheses of real songs (DAC, EnCodec, SNAC)")


def _counts(rows: Sequence[dict], pred) -> dict:
    """Verdict counts over the unique files (by content) that ``pred`` selects and that were
    analysed; how many failed is counted beside them."""
    seen: dict[str, dict] = {}
    failed = 0
    for r in rows:
        if not pred(r):
            continue
        if r["error"] is not None:
            failed += 1
        else:
            seen.setdefault(r["sha256"], r)
    return {"tracks": len(seen), **{v: sum(r["verdict"] == v for r in seen.values())
                                    for v in VERDICTS}, "failed": failed}


def measured_record(summary: dict, *, command: str, measured: str) -> dict:
    """What ``musicbrain_cli/real_ai_measured.json`` holds (read by
    :func:`musicbrain_cli.verdict.real_ai_measurement`): the verdict counts on the real AI
    sets, with the MusicBrain version and every line's weights they were measured with."""
    from musicbrain_cli import __version__

    if not summary.get("models"):
        raise ValueError("no track was analysed: nothing to record")
    return {"measured": measured, "version": __version__, "models": summary["models"],
            "doc": "docs/evaluation/external.md", "command": command,
            "sets": [s for s in summary["real_ai"] if s["tracks"]]}


def markdown(summary: dict) -> str:
    lines = summary["lines"]
    head = ["source", "truth", "tracks", "ai", "human", "inconclusive", "failed",
            "out of domain"]
    head += [f"P(AI) {ln} q25 / q50 / q75" for ln in lines]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for t in summary["table"]:
        cells = [t["source"], t["label"], t["tracks"], t["ai"], t["human"],
                 t["inconclusive"], t["failed"], t["out_of_domain"]]
        cells += [t["p_ai_quartiles"][ln] for ln in lines]
        out.append("| " + " | ".join(str(c) for c in cells) + " |")
    out += ["", "| target (unique files) | called | of | share |", "|---|---|---|---|"]
    for name, t in summary["targets"].items():
        share = "-" if t["share"] is None else f"{t['share']:.0%}"
        out.append(f"| {name} | {t['called']} | {t['of']} | {share} |")
    if summary["failures"]:
        out += ["", f"Failed ({len(summary['failures'])}):", ""]
        out += [f"- `{f['path']}`: {f['error']}" for f in summary["failures"]]
    return "\n".join(out) + "\n"


# --- the run ----------------------------------------------------------------------------


def run_benchmark(eval_dir: str | os.PathLike, out_dir: str | os.PathLike, *,
                  model: str = "default", max_per_source: int | None = None,
                  abc_seconds: float = 30.0, seed: int = 0, jobs: int = 1,
                  timeout_s: float = RENDER_TIMEOUT_S, log=print) -> dict:
    """Discover, render, analyse, summarise; writes ``external.md`` and ``external.json``.

    The model is loaded after rendering, so the render workers fork from a process that
    has not started torch's thread pools.
    """
    out = Path(out_dir)
    t0 = time.perf_counter()
    selection = discover_eval(eval_dir, max_per_source=max_per_source)   # refused: no OUT_DIR
    out.mkdir(parents=True, exist_ok=True)
    log(f"{len(selection.items)} files selected from {sum(selection.found.values())} found")
    render_all(selection.items, out / "work", clip_s=abc_seconds, seed=seed, jobs=jobs,
               timeout_s=timeout_s, log=log)
    t_render = time.perf_counter() - t0

    from musicbrain_cli.model.inference import Detector

    detector = Detector.from_pretrained(model, device="cpu")
    rows = analyse_all(selection.items, detector, log=log)
    summary = summarise(rows)
    summary.update(
        eval_dir=str(eval_dir), found_per_source=selection.found,
        selected_per_source={src: sum(it.source == src for it in selection.items)
                             for src in selection.found},
        max_per_source=max_per_source, abc_seconds=abc_seconds, seed=seed,
        model={"name": detector.card.get("name", ""),
               "weights_sha256": detector.card.get("weights_sha256", ""),
               "card_sha256": (getattr(detector, "file_sha256", None) or {}).get("card")},
        machine={"cpus": os.cpu_count(), "platform": platform.platform()},
        seconds={"render": round(t_render, 1), "total": round(time.perf_counter() - t0, 1)},
        rows=rows)
    (out / "external.md").write_text(markdown(summary), encoding="utf-8")
    (out / "external.json").write_text(json.dumps(summary, indent=1, ensure_ascii=False)
                                       + "\n", encoding="utf-8")
    return summary


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("eval_dir", type=Path, nargs="?",
                    default=DEFAULT_EVAL if DEFAULT_EVAL.is_dir() else None,
                    help="the evaluation folder (default: ../shared/eval beside the checkout)")
    ap.add_argument("--model", default="default", help="model name or folder")
    ap.add_argument("--max-per-source", type=int, default=None,
                    help="most files per source, taken evenly across it")
    ap.add_argument("--abc-seconds", type=float, default=30.0,
                    help="seconds of each rendered ABC piece analysed (its first clip)")
    ap.add_argument("-o", "--output", type=Path, default=Path("runs/external"),
                    help="output folder (rendered ABC go to OUT/work, kept for reruns)")
    ap.add_argument("--jobs", type=int, default=1, help="ABC pieces rendered at once")
    ap.add_argument("--render-timeout", type=float, default=RENDER_TIMEOUT_S,
                    help="seconds one ABC piece may take to render before it counts as failed")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--record", type=Path, default=None,
                    help="also write the verdict counts on the real AI sets, with the version "
                         "and models, to this file (musicbrain_cli/real_ai_measured.json: "
                         "quoted by every human verdict made with the same models)")
    args = ap.parse_args(argv)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    if args.eval_dir is None:
        # `make bench` runs every benchmark bare: without the shared folder there is
        # nothing to measure, which is said, not failed
        log(f"no evaluation folder: give EVAL_DIR (looked for {DEFAULT_EVAL})")
        return
    from musicbrain_cli.errors import InputError

    try:
        summary = run_benchmark(args.eval_dir, args.output, model=args.model,
                                max_per_source=args.max_per_source,
                                abc_seconds=args.abc_seconds, seed=args.seed, jobs=args.jobs,
                                timeout_s=args.render_timeout, log=log)
    except InputError as exc:    # a wrong EVAL_DIR or option: a usage error, exit 2
        ap.error(str(exc))
    if args.record is not None:
        import datetime as _dt

        record = measured_record(
            summary, command="python benchmarks/external.py " + " ".join(argv or sys.argv[1:]),
            measured=_dt.datetime.now(_dt.timezone.utc).date().isoformat())
        args.record.write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n",
                               encoding="utf-8")
        log(f"recorded to {args.record}")
    print(markdown(summary))
    print(f"model {summary['model']['name']} {summary['model']['weights_sha256'][:12]}; "
          f"{summary['seconds']['total']:.0f} s in all ({summary['seconds']['render']:.0f} s "
          f"rendering); written to {args.output}/external.md and external.json")


if __name__ == "__main__":
    main()
