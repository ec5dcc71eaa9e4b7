"""benchmarks/artifacts.py: what its CPU figure counts."""

import subprocess
import sys

import pytest

from conftest import script_module

BURN = "import sys, time\nfor _ in sys.stdin:\n    t = time.process_time()\n" \
       "    while time.process_time() - t < 0.3:\n        pass\n    print(flush=True)\n"


@pytest.fixture(scope="module")
def bench():
    with script_module("benchmarks/artifacts.py", "artifacts_bench") as module:
        yield module


class PooledChild:
    """Stands in for the artifact detector: each analysis is 0.3 s of CPU in a child that
    lives on between analyses, as the pooled decoder child does."""

    def __init__(self):
        self.proc = subprocess.Popen([sys.executable, "-c", BURN], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)

    def analyse(self, path):
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        self.proc.stdout.readline()

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def test_cpu_seconds_include_the_pooled_decoder_child(bench, tmp_path):
    """The figure took ru_utime of this process and of waited-for children: the pooled
    decoder child never exits between files, so the decode's CPU was left out (0 here)."""
    det = PooledChild()
    try:
        det.analyse(None)                       # warm, as the benchmark does
        wall, cpu = bench.time_analysis(det, tmp_path / "x.flac", repeat=2)
    finally:
        det.close()
    assert 0.25 <= cpu <= wall + 0.05
