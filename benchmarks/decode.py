"""Decode speed and streaming memory of the audio intake (issue #2).

Speed: for each format, a stereo music-like signal (sine chords + noise, 44.1 kHz; Opus
48 kHz) is encoded with PyAV, then decoded to 22.05 kHz mono through
``musicbrain_cli.audio.intake.stream``. Reported per format:

* ``x RT/core`` - audio seconds per CPU second of decoding, isolated path: CPU time of the
  decoder child (from /proc) plus this process. One decode uses one core, so this is the
  per-core figure the targets refer to (>= 200x for mp3, ogg, opus).
* ``x RT wall`` - audio seconds per wall second, isolated path (includes the pipe).
* ``x RT in-proc`` - audio seconds per CPU second with ``isolate=False`` (no child).

Memory: a 60-minute file (FLAC, 44.1 kHz stereo) is streamed in a fresh interpreter; the
figure is the peak RSS above that interpreter's baseline after imports (its own growth)
plus the decoder child's whole peak RSS (VmHWM). Target <= 300 MB.

    python benchmarks/decode.py [--quick] [--seconds S] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from musicbrain_cli.audio import intake as audio
from musicbrain_cli.audio.encode import FORMATS, encode_audio

TARGET_RT = {"mp3": 200.0, "ogg": 200.0, "opus": 200.0}
TARGET_RSS_MB = 300.0
SR = 44100


def music_like(seconds: float, *, seed: int = 0, sr: int = SR) -> np.ndarray:
    """Stereo chords that change every second plus -40 dB noise: keeps lossy encoders busy."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    out = np.empty((2, n), np.float32)
    step = sr
    for a in range(0, n, step):
        t = np.arange(a, min(a + step, n)) / sr
        freqs = 110.0 * 2 ** (rng.integers(0, 36, size=3) / 12)
        chord = sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 6.3)) for f in freqs) / 4
        out[0, a:a + t.size] = chord + 0.01 * rng.standard_normal(t.size)
        out[1, a:a + t.size] = 0.8 * chord + 0.01 * rng.standard_normal(t.size)
    return out


def _cpu_of(pid: int) -> float:
    """utime + stime of ``pid`` in seconds (Linux /proc/<pid>/stat fields 14, 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _idle_worker_pid() -> int:
    audio.load_audio(_WARM)  # make sure a warm child is idle in the pool
    return audio._POOL._idle[-1].proc.pid  # benchmark-only peek at the private pool


def bench_format(path: Path, seconds: float, repeats: int) -> dict:
    best = {"rt_core": 0.0, "rt_wall": 0.0, "rt_inproc": 0.0}
    for _ in range(repeats):
        pid = _idle_worker_pid()
        c0, p0, w0 = _cpu_of(pid), time.process_time(), time.perf_counter()
        blocks = audio.stream(path)
        assert blocks is not None
        n = sum(b.size for b in blocks)
        wall = time.perf_counter() - w0
        cpu = _cpu_of(pid) - c0 + time.process_time() - p0
        decoded = n / audio.SAMPLE_RATE
        assert abs(decoded - seconds) < 0.2, (path, decoded)
        best["rt_core"] = max(best["rt_core"], decoded / cpu)
        best["rt_wall"] = max(best["rt_wall"], decoded / wall)
        p0 = time.process_time()
        n = sum(b.size for b in audio.stream(path, isolate=False))
        best["rt_inproc"] = max(best["rt_inproc"], n / audio.SAMPLE_RATE / (time.process_time() - p0))
    return best


_RSS_PROBE = r"""
import json, sys
from pathlib import Path
from musicbrain_cli.audio import intake as audio

def status_mb(key, pid="self"):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1]) / 1024

# VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec, so it would report the
# forking parent's size (see getrusage(2)).
base = status_mb("VmHWM")
s = audio.stream(sys.argv[1])
n = 0
child_peak = 0.0
for i, b in enumerate(s):
    n += b.size
    if i % 30 == 0 and s.worker_pid:
        child_peak = max(child_peak, status_mb("VmHWM", s.worker_pid))
peak = status_mb("VmHWM")
print(json.dumps({"seconds": n / audio.SAMPLE_RATE, "parent_growth_mb": peak - base,
                  "child_peak_mb": child_peak}))
"""


def bench_memory(path: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", _RSS_PROBE, str(path)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="30 s per format, one repeat")
    ap.add_argument("--seconds", type=float, default=None, help="signal length per format (default 120)")
    ap.add_argument("--long-minutes", type=float, default=60.0, help="length of the memory-test file")
    ap.add_argument("--keep", type=Path, default=None, help="write the generated files here and keep them")
    args = ap.parse_args(argv)
    seconds = args.seconds or (30.0 if args.quick else 120.0)
    repeats = 1 if args.quick else 3

    tmp = tempfile.TemporaryDirectory() if args.keep is None else None
    root = Path(tmp.name) if tmp else args.keep
    root.mkdir(parents=True, exist_ok=True)
    global _WARM
    _WARM = root / "warm.wav"
    encode_audio(_WARM, music_like(0.5), SR)

    y = music_like(seconds)
    rows = []
    for ext in FORMATS:
        p = root / f"bench.{ext}"
        if not p.exists():
            encode_audio(p, y, SR)
        r = bench_format(p, seconds, repeats)
        target = TARGET_RT.get(ext)
        ok = "" if target is None else ("ok" if r["rt_core"] >= target else "BELOW")
        rows.append((ext, r, target, ok))

    long_path = root / "long.flac"
    if not long_path.exists():
        minute = music_like(60.0, seed=1)
        # Encode chunk by chunk so generating the file is itself memory-bounded.
        import av

        with av.open(str(long_path), "w", format="flac") as out:
            st = out.add_stream("flac", rate=SR, layout="stereo")
            for m in range(int(args.long_minutes)):
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(minute), format="fltp", layout="stereo")
                frame.sample_rate = SR
                frame.pts = m * minute.shape[1]
                for packet in st.encode(frame):
                    out.mux(packet)
            for packet in st.encode(None):
                out.mux(packet)
    mem = bench_memory(long_path)

    print(f"decode to {audio.SAMPLE_RATE} Hz mono, {seconds:.0f} s per format, best of {repeats}; "
          f"{os.cpu_count()} CPUs; pyav {audio._core.decoder_versions()['pyav']}, "
          f"libavcodec {audio._core.decoder_versions()['libavcodec']}")
    print(f"{'format':<7}{'x RT/core':>11}{'x RT wall':>11}{'x RT in-proc':>14}{'target':>9}")
    for ext, r, target, ok in rows:
        t = f">={target:.0f} {ok}" if target else "-"
        print(f"{ext:<7}{r['rt_core']:>11.0f}{r['rt_wall']:>11.0f}{r['rt_inproc']:>14.0f}{t:>12}")
    total = mem["parent_growth_mb"] + mem["child_peak_mb"]
    print(f"streaming {mem['seconds'] / 60:.0f} min FLAC (44.1 kHz stereo): parent growth "
          f"{mem['parent_growth_mb']:.0f} MB + decoder child peak {mem['child_peak_mb']:.0f} MB = "
          f"{total:.0f} MB above baseline (target <= {TARGET_RSS_MB:.0f} MB: "
          f"{'ok' if total <= TARGET_RSS_MB else 'ABOVE'})")
    if tmp:
        tmp.cleanup()
    return 0


_WARM: Path


if __name__ == "__main__":
    sys.exit(main())
