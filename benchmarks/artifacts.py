"""Speed of the decoder-artifact line (issue 22): seconds of CPU per minute of audio.

For each rate and length, a seeded toy-decoder signal (``tests/artifact_signals.py``) is
written as FLAC and analysed with ``ArtifactDetector.from_pretrained("default").analyse``
(decode at the native rate in the isolated child, Welch average, residue, comb scan,
classifier). Reported: wall seconds per file, CPU seconds of this process and of the
decoder child, and the real-time factor (audio seconds per wall second).

    python benchmarks/artifacts.py [--seconds 60 180] [--repeat 2]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from artifact_signals import upsampled  # noqa: E402
from musicbrain_cli.artifacts.detector import ArtifactDetector  # noqa: E402
from musicbrain_cli.audio.encode import encode_audio  # noqa: E402


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
                det.analyse(path)  # warm: worker start, imports
                walls, cpus = [], []
                for _ in range(args.repeat):
                    c0 = resource.getrusage(resource.RUSAGE_SELF).ru_utime + resource.getrusage(
                        resource.RUSAGE_CHILDREN).ru_utime
                    t0 = time.perf_counter()
                    f = det.analyse(path)
                    walls.append(time.perf_counter() - t0)
                    cpus.append(resource.getrusage(resource.RUSAGE_SELF).ru_utime
                                + resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime - c0)
                wall = min(walls)
                analysed = min(seconds, 180.0)
                print(f"{rate:>6} {seconds:>8g} {wall:>7.2f} {min(cpus):>6.2f} {analysed / wall:>6.0f}  {f.says_ai}")
    print(f"({os.cpu_count()} CPUs; the decoder child's CPU is counted only once it exits, so 'cpu s' is "
          "this process's share)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
