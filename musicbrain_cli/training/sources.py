"""Data sources of the trainer: what ``train`` reads windows from (a data set's feature
cache, or seeded synthetic spectrograms for tests and benchmarks).

Split out of :mod:`musicbrain_cli.training.trainer` (issue 25), which re-exports its names.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch.utils.data import Dataset

from musicbrain_cli.errors import InputError, TrainingError
from musicbrain_cli.progress import NULL_PROGRESS, Progress
from musicbrain_cli.taxonomy import Taxonomy
from musicbrain_cli.training.config import TrainConfig


# --- data sources -------------------------------------------------------------------------


class DataSource(Protocol):
    """What the trainer needs from a data set; must be picklable (workers are spawned).

    ``open(split)`` returns a map-style dataset of ``(features [1, F, T] float32,
    targets [L] float32, mask [L] float32)``.
    """

    def prepare(self, *, progress: Progress = NULL_PROGRESS) -> None: ...
    def taxonomy(self) -> Taxonomy: ...
    def front_end(self) -> dict: ...
    def open(self, split: str) -> Dataset: ...
    def describe(self) -> dict: ...


@dataclass(frozen=True)
class CacheSource:
    """A MusicBrain data set folder and its front-end feature cache (data/cache.py).

    ``prepare`` (main process, before workers start) builds the cache when it is missing or
    was made from another manifest: the same work as ``musicbrain data cache DATASET``.
    Workers only open it. ``front_end_config`` (the training config's ``model.front_end``)
    picks the front end; the default front end otherwise.
    """

    root: str
    front_end_config: dict | None = None

    def _frontend(self):
        from musicbrain_cli.features import FrontEndConfig

        return (FrontEndConfig.from_dict(self.front_end_config)
                if self.front_end_config else FrontEndConfig())

    def cache_dir(self) -> Path:
        from musicbrain_cli.data.cache import default_cache_dir

        return default_cache_dir(self.root, self._frontend())

    def _index(self) -> dict | None:
        path = self.cache_dir() / "index.json"
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return None

    def prepare(self, *, progress: Progress = NULL_PROGRESS) -> None:
        from musicbrain_cli.files import sha256_file
        from musicbrain_cli.data.cache import audio_fingerprints, build_cache, taxonomy_hash
        from musicbrain_cli.data.dataset import MANIFEST, Dataset

        index = self._index()
        manifest = Path(self.root) / MANIFEST
        if not manifest.is_file():
            raise InputError(f"{self.root!r} is not a MusicBrain data set (no {MANIFEST})")
        current = sha256_file(manifest)
        # the taxonomy fixes the order of the stored targets: a cache made under another one
        # would train on shifted labels (review of session 34; an index made before the
        # cache recorded it is built again once)
        dataset = Dataset.load(self.root)
        taxonomy = taxonomy_hash(dataset.taxonomy)
        # and the audio: a clip made again with the same labels and length leaves the
        # manifest as it was, and training read the old clip's features
        audio = None
        if index is None or index.get("manifest_sha256") != current \
                or index.get("taxonomy_sha256") != taxonomy \
                or index.get("audio_sha256") != (audio := audio_fingerprints(dataset)):
            # Resumable: finished shards are kept (cache.py).
            build_cache(self.root, self._frontend(), progress=progress, audio_sha=audio)

    def taxonomy(self) -> Taxonomy:
        index = self._index()
        if index is None:
            raise TrainingError(
                f"no feature cache in {str(self.cache_dir())!r}: run "
                f"`musicbrain data cache {self.root}` first"
            )
        return Taxonomy.from_dict(index["taxonomy"])

    def front_end(self) -> dict:
        return self._frontend().to_dict()

    def open(self, split: str) -> Dataset:
        from musicbrain_cli.data.cache import CachedWindows

        return CachedWindows(self.cache_dir(), split=split)

    def describe(self) -> dict:
        index = self._index() or {}
        windows = index.get("windows", [])
        per_split: dict[str, int] = {}
        for w in windows:
            per_split[w["split"]] = per_split.get(w["split"], 0) + 1
        return {"path": str(Path(self.root).resolve()),
                "manifest_sha256": index.get("manifest_sha256"),
                "feature_cache": index.get("config_hash"), "windows_per_split": per_split}


@dataclass(frozen=True)
class SyntheticSource:
    """Seeded synthetic spectrograms with learnable labels, for tests and benchmarks.

    Each positive label ``j`` lights a horizontal band (row ``(3 j + 1) mod F``) over random
    noise, so a model can learn every label; one group in four is left unknown (masked) in
    a quarter of the samples to exercise the masked loss.
    """

    n_train: int = 16
    n_val: int = 8
    n_bins: int = 32
    n_frames: int = 64
    seed: int = 0
    groups: tuple = (("source", ("human", "ai"), True), ("period", ("Baroque", "Classical"), True))

    def prepare(self, *, progress: Progress = NULL_PROGRESS) -> None:
        pass

    def taxonomy(self) -> Taxonomy:
        return Taxonomy.from_groups(self.groups)

    def front_end(self) -> dict:
        from musicbrain_cli.features import FrontEndConfig

        # A front end whose window is exactly n_bins x n_frames: 1 s at 100 frames/s-ish.
        hop = 100
        return FrontEndConfig(sample_rate=hop * self.n_frames, hop_length=hop, n_fft=256,
                              n_bins=self.n_bins, f_min=20.0, f_max=hop * self.n_frames / 2,
                              window_s=1.0, hop_s=0.5).to_dict()

    def open(self, split: str) -> Dataset:
        n, offset = {"train": (self.n_train, 0), "val": (self.n_val, 10**6),
                     "test": (self.n_val, 2 * 10**6)}[split]
        tax = self.taxonomy()
        feats = np.empty((n, 1, self.n_bins, self.n_frames), np.float32)
        targets = np.zeros((n, tax.num_labels), np.float32)
        masks = np.ones((n, tax.num_labels), np.float32)
        slices = list(tax.group_slices().values())
        for i in range(n):
            rng = np.random.default_rng([self.seed, offset + i])
            feats[i, 0] = rng.normal(-0.5, 0.1, (self.n_bins, self.n_frames))
            for g, sl in zip(tax.groups, slices):
                j = sl.start + int(rng.integers(len(g.labels)))
                targets[i, j] = 1.0
                if g.name != "source" and rng.random() < 0.25:
                    masks[i, sl] = 0.0
                    continue
                feats[i, 0, (3 * j + 1) % self.n_bins] += 0.6
        return torch.utils.data.TensorDataset(torch.from_numpy(feats), torch.from_numpy(targets),
                                              torch.from_numpy(masks))

    def describe(self) -> dict:
        return {"synthetic": True, "n_train": self.n_train, "n_val": self.n_val,
                "shape": [1, self.n_bins, self.n_frames], "seed": self.seed}


def as_source(data: str | Path | DataSource, config: TrainConfig) -> DataSource:
    if isinstance(data, (str, Path)):
        if not Path(data).is_dir():
            raise InputError(f"data set {str(data)!r} is not a directory")
        return CacheSource(str(data), front_end_config=config.model.get("front_end"))
    return data
