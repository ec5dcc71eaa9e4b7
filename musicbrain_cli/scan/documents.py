"""A track's report documents (figures, HTML page, unsigned PDF), rendered from its analysis,
here or in child processes beside the next track's analysis.

Rendering is a function of the analysis alone (:func:`render_track_documents`: no keys, no
files); signing and writing stay with the scan (:func:`musicbrain_cli.scan.batch.write_track_folder`),
so no private key ever leaves the scanning process. Why child processes
(:class:`ReportProcesses`): matplotlib's figures and WeasyPrint's layout are Python that holds
the GIL for about 1.9 s per 4-minute track, and a report thread beside the analysis kept the
analysing thread waiting for it; in a process of its own the layout runs on the other core
(docs/benchmarks.md, session 44). The CLI's scans of several tracks use it
(``ScanOptions.render_processes``); a library caller keeps threads unless it asks, since a
spawned child re-imports the caller's main script.

What the child is a boundary for: a crash, a hang (:data:`RENDER_TIMEOUT_S`) or the memory of
one report. Not for a renderer taken over by hostile text: its documents are what the scan
signs, as they were when rendering ran in the scanning process, and they come back through
``multiprocessing``'s pickles. The hostile parts of a track (names, tags) are escaped into the
HTML before any layout (:mod:`musicbrain_cli.report.html`), and the figure names that come
back are checked again before they become paths (``report.writer.write_rendered_report``).
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Mapping, Sequence

from musicbrain_cli.errors import ReportError


def render_figures(explain: Sequence[Mapping]) -> dict[str, bytes]:
    """PNG bytes by file name of a track's explanation figures (``TrackAnalysis.explain``)."""
    from musicbrain_cli.report.figures import fmgcam_figure, notes_figure, residue_figure

    drawn = {}
    for a in explain:
        if a.get("kind") == "residue":
            drawn[a["name"]] = residue_figure(a["finding"])
        elif a.get("kind") == "notes":
            drawn[a["name"]] = notes_figure(a["finding"])
        else:
            drawn[a["name"]] = fmgcam_figure(a["spectrogram_db"], a["saliency"], a["labels"],
                                             a["times_s"], a["freqs_hz"], title=a["title"])
    return drawn


def render_track_documents(track: Mapping, explain: Sequence[Mapping], formats: Sequence[str],
                           signer: Mapping | None):
    """``(RenderedReport, timings)``: the figures of ``explain`` and the report documents of
    ``formats`` plus ``result.json``'s (:func:`~musicbrain_cli.report.writer.render_track_report`),
    unsigned, naming ``signer`` (``KeyPair.record()``, or None) as the keys that will sign
    them; ``timings`` holds the seconds of ``"figures"`` and ``"report"``."""
    from musicbrain_cli.report.writer import render_track_report

    t = time.perf_counter()
    figures = render_figures(explain)
    timings = {"figures": time.perf_counter() - t}
    t = time.perf_counter()
    rendered = render_track_report(track, figures, formats=(*formats, "json"), signer=signer)
    timings["report"] = time.perf_counter() - t
    return rendered, timings


def _render_in_child(track: Mapping, explain: Sequence[Mapping], formats: Sequence[str],
                     signer: Mapping | None):
    from musicbrain_cli.scan.batch import release_freed_memory

    try:
        return render_track_documents(track, explain, formats, signer)
    finally:
        release_freed_memory()       # the figures' and the PDF's working set


#: How often a renderer looks whether the scan that started it is still there (seconds).
PARENT_POLL_S = 1.0


def _exit_with_parent(parent: int, *, poll_s: float = PARENT_POLL_S) -> threading.Thread:
    """Watch, from a daemon thread, that the process ``parent`` is still this one's parent,
    and end this process when it is not. A renderer holds both ends of its task queue's pipe,
    so a scan stopped by SIGTERM or SIGKILL (timeout, a job scheduler, out of memory) left it
    waiting for work for good, about 200 MB each (review of session 45). Not
    ``PR_SET_PDEATHSIG``: it fires when the thread that started the child ends, and the pool
    may be replaced from a waiting thread."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        os._exit(0)

    thread = threading.Thread(target=watch, name="musicbrain-parent-watch", daemon=True)
    thread.start()
    return thread


def _warm_up(parent: int | None = None) -> None:
    """A child's first task: end with the scan that started it (``parent``, its pid), and
    import the rendering stack while the parent analyses."""
    if parent is not None:
        _exit_with_parent(parent)
    import matplotlib.backends.backend_agg  # noqa: F401
    import weasyprint  # noqa: F401

    import musicbrain_cli.report.figures  # noqa: F401
    import musicbrain_cli.report.writer  # noqa: F401


#: Seconds a scan waits for one track's rendered documents before it stops the renderer and
#: fails that report: a few seconds are usual (about 1 s for a 4-minute track here), so only
#: a renderer stuck on one report (its text shaping or layout) reaches it.
RENDER_TIMEOUT_S = 300.0


class ReportProcesses:
    """Up to ``workers`` child processes (spawned, so nothing of the parent's threads or
    model is inherited) that run :func:`render_track_documents`. A child that dies (killed,
    out of memory) or outlasts :data:`RENDER_TIMEOUT_S` is replaced by a new one; what that
    costs each report is :meth:`result`'s to say. Safe to use from several threads. Use as
    a context manager, or call :meth:`shutdown`."""

    def __init__(self, workers: int = 1):
        if workers < 1:
            raise ValueError(f"workers must be positive, got {workers!r}")
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.RLock()      # the pool is replaced from the waiting threads

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(max_workers=self.workers,
                                             mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_warm_up, initargs=(os.getpid(),))
        return self._pool

    def submit(self, track: Mapping, explain: Sequence[Mapping], formats: Sequence[str],
               signer: Mapping | None) -> "Rendering":
        """Start rendering one track's documents; :meth:`result` waits for them."""
        args = (track, explain, tuple(formats), signer)
        return Rendering(self, self._start(args), args)

    def _start(self, args: tuple) -> Future:
        with self._lock:
            try:
                return self._executor().submit(_render_in_child, *args)
            except BrokenProcessPool:        # a child died on an earlier track: start afresh
                self._stop()
                return self._executor().submit(_render_in_child, *args)

    def _stop(self) -> None:
        """Kill the children (one may be stuck) and drop the pool; the next submit starts a
        new one. ``ProcessPoolExecutor`` has no public way to kill its workers before Python
        3.14; its ``_processes`` are the worker processes."""
        with self._lock:
            if self._pool is None:
                return
            for process in list((getattr(self._pool, "_processes", None) or {}).values()):
                process.kill()
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def result(self, rendering: "Rendering", *, timeout_s: float = RENDER_TIMEOUT_S):
        """``(RenderedReport, timings)`` of ``rendering``. Taking longer than ``timeout_s``
        is this track's :class:`ReportError` (the renderer is stopped; the next report gets a
        new one). A child that died with this report in hand or in its queue (which of the two
        cannot be told) gets one more try in a new child: a report that kills its renderer
        kills the second too and fails, and the reports queued behind it are rendered. A
        report still queued when another's renderer was stopped (its future cancelled by
        :meth:`_stop`) never started: it is sent to the new renderer, no try counted."""
        from concurrent.futures import CancelledError
        from concurrent.futures import TimeoutError as FutureTimeout

        attempt = 0
        while True:
            try:
                return rendering.future.result(timeout=timeout_s)
            except FutureTimeout:
                self._stop()
                raise ReportError(f"rendering this track's report took longer than {timeout_s:g} s; "
                                  "the renderer was stopped") from None
            except CancelledError:
                # only _stop cancels: the pool that held this report queued was shut down
                # (review of session 46: such a report failed as "internal error (CancelledError)")
                rendering.future = self._start(rendering.args)
            except BrokenProcessPool as exc:
                if attempt:
                    raise ReportError("the process that renders the reports stopped while "
                                      f"rendering this track's report (killed or out of memory?): "
                                      f"{exc}") from exc
                attempt += 1
                rendering.future = self._start(rendering.args)

    def shutdown(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
                self._pool = None

    def __enter__(self) -> "ReportProcesses":
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()


class Rendering:
    """One track's documents being rendered by :class:`ReportProcesses`: the pending future
    and what it was asked (to ask again in a new child)."""

    def __init__(self, processes: ReportProcesses, future: Future, args: tuple):
        self.processes, self.future, self.args = processes, future, args

    def result(self, *, timeout_s: float = RENDER_TIMEOUT_S):
        """See :meth:`ReportProcesses.result`."""
        return self.processes.result(self, timeout_s=timeout_s)
