"""Data pipeline benchmarks (issue #4).

1. Rendering speed: seconds of audio rendered per second of wall time, one process (so per
   core: FluidSynth runs with synth.cpu-cores=1), for each SoundFont, on a seeded 4-voice
   piece. Target: >= 50x real time per core.
2. Feature cache read throughput: ten-second windows per second through ``CachedWindows``
   and a DataLoader (batch 64, no workers), from the page cache. Target: >= 2,000/s.

    python benchmarks/data.py [--seconds 120] [--windows 1024]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np


def random_piece(seconds: float, *, seed: int = 0):
    import pretty_midi

    rng = np.random.default_rng(seed)
    pm = pretty_midi.PrettyMIDI()
    for program, (lo, hi) in zip((0, 40, 41, 42), ((60, 84), (55, 79), (48, 67), (36, 55))):
        inst = pretty_midi.Instrument(program)
        t = 0.0
        while t < seconds:
            dur = float(rng.choice([0.25, 0.5, 1.0]))
            inst.notes.append(pretty_midi.Note(int(rng.integers(60, 100)),
                                               int(rng.integers(lo, hi)), t, t + dur))
            t += dur
        pm.instruments.append(inst)
    return pm


def bench_render(seconds: float) -> dict:
    from musicbrain_cli.data.render import Humanize, available_soundfonts, render_midi

    piece = random_piece(seconds)
    out = {}
    for font in available_soundfonts():
        for label, hum in (("plain", None), ("humanised", Humanize(0.03, 0.01, 8, 0.3))):
            t0 = time.perf_counter()
            y = render_midi(piece, font, sample_rate=22050, humanize=hum, seed=1)
            wall = time.perf_counter() - t0
            out[f"{font.name}/{label}"] = round(y.size / 22050 / wall, 1)
    return out


def bench_cache(n_windows: int) -> dict:
    import torch
    from torch.utils.data import DataLoader

    from musicbrain_cli.features import FrontEndConfig
    from musicbrain_cli.taxonomy import Taxonomy
    from musicbrain_cli.data.cache import CACHE_VERSION, INDEX, CachedWindows

    fe = FrontEndConfig()
    _, n_bins, n_frames = fe.shape
    tax = Taxonomy.from_groups([("source", ["human", "ai"], True),
                                ("period", ["Baroque", "Classical", "Romantic"], True)])
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        shards, windows, per = [], [], 256
        for s in range(0, n_windows, per):
            n = min(per, n_windows - s)
            name = f"shard-{len(shards):05d}.npy"
            np.save(root / name, rng.uniform(-1, 1, (n, n_bins, n_frames)).astype(np.float16))
            shards.append({"file": name, "n": n})
            windows += [{"clip_id": f"c{s + i}", "split": "train", "start_s": 0.0,
                         "n_valid": fe.n_samples, "shard": len(shards) - 1, "row": i,
                         "targets": [1, 0, 1, 0, 0], "mask": [1, 1, 1, 1, 1]}
                        for i in range(n)]
        (root / INDEX).write_text(json.dumps({
            "version": CACHE_VERSION, "front_end": fe.to_dict(), "config_hash": "bench",
            "dtype": "float16", "shape": list(fe.shape), "taxonomy": tax.to_dict(),
            "labels": tax.labels, "shards": shards, "windows": windows}))
        # one intra-op thread, as in a DataLoader worker: on a small shared machine torch's
        # default thread pool oversubscribes the cores and collation slows down tenfold
        torch.set_num_threads(1)
        ds = CachedWindows(root)
        loader = DataLoader(ds, batch_size=64, shuffle=True, num_workers=0,
                            generator=torch.Generator().manual_seed(0))
        for _ in loader:  # warm the page cache
            pass
        t0 = time.perf_counter()
        n = sum(b[0].shape[0] for b in loader)
        wall = time.perf_counter() - t0
    return {"windows": n, "window_shape": list(fe.shape), "windows_per_s": round(n / wall),
            "MB_per_s_float16": round(n * n_bins * n_frames * 2 / wall / 1e6)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="rendered piece length")
    parser.add_argument("--windows", type=int, default=1024, help="cached windows to read")
    args = parser.parse_args()
    result = {"render_x_realtime_per_core": bench_render(args.seconds),
              "cache_read": bench_cache(args.windows)}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
