"""Speed of the decoder-artifact line (issue 22): seconds of CPU per minute of audio.

For each rate and length, a seeded toy-decoder signal (``tests/artifact_signals.py``) is
written as FLAC and analysed with ``ArtifactDetector.from_pretrained("default").analyse``
(decode at the native rate in the isolated child, Welch average, residue, comb scan,
classifier). Reported: wall seconds per file, CPU seconds (user + system) of this process
and of the decoder child, and the real-time factor (audio seconds per wall second).

    python benchmarks/artifacts.py [--seconds 60 180] [--repeat 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks")]

from artifact_signals import upsampled  # noqa: E402
from scan import cpu_seconds  # noqa: E402
from musicbrain_cli.artifacts.detector import ArtifactDetector  # noqa: E402
from musicbrain_cli.audio.encode import encode_audio  # noqa: E402


def time_analysis(det, path: Path, *, repeat: int) -> tuple[float, float]:
    """Best wall and best CPU seconds of ``repeat`` analyses of ``path``. The CPU is this
    process's and its children's, the pooled decoder child included while it lives on:
    ``RUSAGE_CHILDREN`` alone counts a child only once it has exited and been waited for,
    which the pooled decoder has not, so its decode was missing from the figure."""
    walls, cpus = [], []
    for _ in range(repeat):
        c0 = cpu_seconds()
        t0 = time.perf_counter()
        det.analyse(path)
        walls.append(time.perf_counter() - t0)
        c1 = cpu_seconds()
        cpus.append(sum(c1[k] - c0[k] for k in ("process", "children")))
    return min(walls), min(cpus)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, nargs="+", default=[60.0, 180.0])
    ap.add_argument("--rates", type=int, nargs="+", default=[24000, 44100, 48000])
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args(argv)
    det = ArtifactDetector.from_pretrained("default")
    print(f"{'rate':>6} {'audio s':>8} {'wall s':>7} {'cpu s':>6} {'x RT':>6}  says_ai")
    with tempfile.TemporaryDirectory() as tmp:
        for rate in args.rates:
            for seconds in args.seconds:
                path = Path(tmp) / f"{rate}_{seconds:g}.flac"
                encode_audio(path, upsampled(rate, (8, 8, 4, 2), seconds, seed=1), rate)
                f = det.analyse(path)  # warm: worker start, imports
                wall, cpu = time_analysis(det, path, repeat=args.repeat)
                analysed = min(seconds, 180.0)
                print(f"{rate:>6} {seconds:>8g} {wall:>7.2f} {cpu:>6.2f} {analysed / wall:>6.0f}  {f.says_ai}")
    print(f"({os.cpu_count()} CPUs; 'cpu s': this process and the decoder child, user + system)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
