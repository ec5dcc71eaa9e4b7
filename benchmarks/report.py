"""Report rendering benchmark (issue 27: a signed PDF in well under a second, target <= 0.5 s).

Scans one example clip once (to get a real ``result.json`` and its figures' arrays), then
draws its explanation figures and renders its signed PDF report again and again from them, as
a scan does for every track: the first call (fonts and templates loaded) and the median of the
rest are printed, in wall time
and in this process's CPU time (on a shared machine the CPU time is the steadier figure:
other processes stretch the wall time, much less the CPU time).

    python benchmarks/report.py [--repeats 10] [--clip examples/catalog/01-human-bach.flac]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--clip", type=Path, default=ROOT / "examples" / "catalog" / "01-human-bach.flac")
    args = ap.parse_args()

    from pyhanko.pdf_utils.reader import PdfFileReader

    from musicbrain_cli.model.inference import Detector
    from musicbrain_cli.report.keys import init_keys
    from musicbrain_cli.report.writer import write_track_report
    from musicbrain_cli.scan.batch import ScanOptions, analyse_track
    from musicbrain_cli.scan.documents import render_figures

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        keys = init_keys(tmp / "keys")
        analysis = analyse_track(args.clip, Detector.from_pretrained("default", device="cpu"),
                                 options=ScanOptions(formats=("pdf",)))
        fig_times, fig_cpu = [], []
        for i in range(args.repeats + 1):      # the first call also loads matplotlib's fonts
            t, c = time.perf_counter(), time.process_time()
            figures = render_figures(analysis.explain)
            fig_times.append(time.perf_counter() - t)
            fig_cpu.append(time.process_time() - c)
        track = json.loads(json.dumps(analysis.track))
        times, cpu = [], []
        for i in range(args.repeats + 1):
            t, c = time.perf_counter(), time.process_time()
            write_track_report(track, figures, tmp / f"r{i}", formats=("pdf",), keys=keys)
            times.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
        with (tmp / "r0" / "report.pdf").open("rb") as f:
            pages = int(PdfFileReader(f).root["/Pages"]["/Count"])
    print(f"explanation figures (matplotlib, {len(figures)}: {', '.join(sorted(figures))}): "
          f"first {fig_times[0]:.2f} s, then median {statistics.median(fig_times[1:]):.2f} s "
          f"wall, {statistics.median(fig_cpu[1:]):.2f} s CPU")
    print(f"signed PDF report ({pages} pages): first {times[0]:.2f} s (fonts, templates), then "
          f"median {statistics.median(times[1:]):.2f} s wall, {statistics.median(cpu[1:]):.2f} s "
          f"CPU over {args.repeats} (target <= 0.5 s)")


if __name__ == "__main__":
    main()
