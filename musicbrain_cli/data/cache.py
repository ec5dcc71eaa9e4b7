"""Front-end feature cache: every model window of a data set computed once, read by mmap.

Layout (``<dataset>/cache/<config hash>/``)::

    index.json          front-end config and its hash, dtype, window shape, taxonomy,
                        manifest SHA-256, each clip's audio SHA-256, shards, and per window:
                        clip_id, split, start_s, n_valid, shard, row, targets, mask
    shard-00000.npy     [n, n_bins, n_frames] float16 (np.save format, read by mmap)
    shard-00000.json    the windows of that shard (written after the shard: resume marker)

Features are stored as float16 to halve I/O: the map lies in about [-1, 1] (features.py
scales -100..0 dBFS to -1..1), where float16's 11-bit mantissa keeps an error below
0.0005, i.e. 0.05 dB: far under the augmentation's gain/EQ noise. Nothing is pickled.

Windows follow :func:`musicbrain_cli.audio.intake.iter_windows`, the same rule ``scan`` uses, so
training sees exactly the windows inference will see. Resumable: finished shards made with
the same front-end config, manifest and taxonomy (each shard records their hashes: the
taxonomy fixes the order of the stored targets) and from the same audio (each shard records
its clips' audio SHA-256) are kept and their clips skipped; other
shards, and a shard being written when the build stopped, are redone. Only the names this
module writes (``shard-NNNNN.*``, ``index.json`` and their temporary names) are ever
deleted; an output folder holding anything else without being a cache of this data set
is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.utils.data

from musicbrain_cli.errors import DatasetError, MusicBrainWarning
from musicbrain_cli.files import sha256_file
from musicbrain_cli.progress import NULL_PROGRESS, Progress
from musicbrain_cli.data.dataset import MANIFEST, SPLITS, Dataset

#: 2 since version 0.3.5: windows hold no zero padding (a short clip is repeated, a clip's
#: last window ends at its end), so caches of version 1 hold windows inference no longer reads.
#: 3 since 0.3.6: windows lie over the music (silence at a clip's edges beyond 0.25 s is not
#: read), which moves the windows of clips that open or end in silence; 4: each window's
#: longest stretch of silence is kept (``silence_s``, for ``verdict.silence_carries``); 5 (version
#: 0.3.7): and the level of its quietest second (``soft_db``, ``intake.softest_span_db``); 6
#: (0.3.8): the front end takes each window's mean off (``features``: a DC offset moved the map).
CACHE_VERSION = 6
CACHE_DTYPE = np.float16
INDEX = "index.json"
SHARD_WINDOWS = 256     # ~64 MB per shard at 256 bins x 500 frames x 2 bytes
BATCH_WINDOWS = 16      # windows per front-end call


#: every name the cache writes in its folder: shards, their metadata, the index, and the
#: temporary names each is written under before its atomic rename
_OWN_NAME = re.compile(r"^(shard-\d{5}\.(npy|json)|index\.json)"
                       r"(\.tmp(\.npy)?)?$")
_OWN_TMP = re.compile(r"^(shard-\d{5}\.(npy\.tmp\.npy|json\.tmp)|index\.json\.tmp)$")
#: the one form a shard's file name takes in its metadata and the index: a name in the cache
#: folder, never a path (review of session 45: a stale record naming "../../x" had the
#: resume delete that file)
_SHARD_FILE = re.compile(r"^shard-\d{5}\.npy$")


def taxonomy_hash(taxonomy) -> str:
    """SHA-256 of a taxonomy (sorted-key JSON): its label order is the order of the targets
    and masks stored in every shard."""
    payload = json.dumps(taxonomy.to_dict(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _check_cache_folder(out: Path, dataset_root: Path) -> None:
    """Refuse a folder that is not (and is not becoming) a cache of ``dataset_root``: it
    holds files the cache did not name and no ``index.json``, or the index of another
    data set's cache. Resuming would delete that folder's shards."""
    if not out.is_dir():
        return
    index_path = out / INDEX
    if index_path.is_file():
        try:
            built_from = json.loads(index_path.read_text(encoding="utf-8")).get("dataset")
        except (OSError, ValueError, AttributeError) as exc:
            raise DatasetError(f"{str(out)!r} holds an unreadable {INDEX} ({exc}); give an "
                               "empty folder or the cache folder of this data set") from exc
        # the default folder (<dataset>/cache/<hash>) is this data set's whatever the
        # index says (an older index wrote the path as given, relative to another cwd)
        inside = out.resolve().is_relative_to(dataset_root.resolve())
        if built_from is not None and not inside \
                and Path(built_from).resolve() != dataset_root.resolve():
            raise DatasetError(f"{str(out)!r} is the feature cache of another data set "
                               f"({built_from!r}), not of {str(dataset_root)!r}: give an empty "
                               "folder or this data set's cache folder")
        return
    foreign = sorted(p.name for p in out.iterdir() if not _OWN_NAME.match(p.name))
    if foreign:
        raise DatasetError(f"{str(out)!r} is not empty and holds no feature cache ({INDEX} "
                           f"missing; e.g. {foreign[0]!r}): give an empty folder or a "
                           "cache folder")


def config_hash(front_end_dict: dict[str, Any]) -> str:
    """SHA-256 of the front-end config (sorted-key JSON) and the cache format."""
    payload = json.dumps({"front_end": front_end_dict, "dtype": np.dtype(CACHE_DTYPE).name,
                          "version": CACHE_VERSION}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def audio_fingerprints(ds: Dataset) -> dict[str, str]:
    """SHA-256 of each clip's audio file, by clip id.

    The manifest does not hash the audio: a clip made again with the same labels and length
    (an edited score, rebuilt in place) leaves it byte for byte the same, so a cache checked
    against the manifest alone kept the old clip's features."""
    out = {}
    for r in ds.rows:
        try:
            out[r["clip_id"]] = sha256_file(ds.audio_path(r))
        except OSError as exc:
            raise DatasetError(f"cannot read {str(ds.audio_path(r))!r}: {exc}") from exc
    return out


def default_cache_dir(dataset_root: str | Path, front_end) -> Path:
    return Path(dataset_root) / "cache" / config_hash(front_end.to_dict())[:16]


def _load_clip(ds: Dataset, row: dict[str, str], sample_rate: int) -> np.ndarray:
    if ds.sample_rate == sample_rate:
        import soundfile

        try:
            y, sr = soundfile.read(ds.audio_path(row), dtype="float32", always_2d=True)
        except RuntimeError as exc:
            raise DatasetError(f"cannot read {str(ds.audio_path(row))!r}: {exc}") from exc
        # the card's rate is the data set's claim, the file's header its fact (a merge of an
        # input without a card): a file at another rate read as this one changes its pitch
        if sr == sample_rate:
            return y.mean(axis=1) if y.shape[1] > 1 else y[:, 0]
    from musicbrain_cli.audio.intake import load_audio  # resamples to the front end's rate

    return load_audio(ds.audio_path(row), sample_rate=sample_rate)


def build_cache(dataset_root: str | Path, front_end, *, out: str | Path | None = None,
                device: str = "cpu", shard_windows: int = SHARD_WINDOWS,
                progress: Progress = NULL_PROGRESS,
                audio_sha: dict[str, str] | None = None) -> Path:
    """Compute ``front_end`` (a :class:`~musicbrain_cli.features.FrontEndConfig`) features
    of every window of every clip of a data set; returns the cache folder. ``audio_sha``:
    :func:`audio_fingerprints` of the data set when the caller has just computed them (every
    audio file is read once, not twice)."""
    from musicbrain_cli.audio.intake import iter_windows, softest_span_db
    from musicbrain_cli.features import resolve_device

    device = resolve_device(device)     # a bad name or a missing GPU: one ConfigError, first
    from musicbrain_cli.features import FrontEnd

    ds = Dataset.load(dataset_root)
    ds.validate()
    out = Path(out) if out is not None else default_cache_dir(ds.root, front_end)
    _check_cache_folder(out, ds.root)
    out.mkdir(parents=True, exist_ok=True)
    fe_dict = front_end.to_dict()
    chash = config_hash(fe_dict)
    manifest_sha = sha256_file(ds.root / MANIFEST)
    tax_sha = taxonomy_hash(ds.taxonomy)
    audio_sha = audio_fingerprints(ds) if audio_sha is None else audio_sha
    shape = list(front_end.shape)

    # resume: keep finished shards made with this config, manifest and taxonomy (a changed
    # taxonomy reorders or resizes the targets: old shards' targets would be read under the
    # new labels) from the audio their clips hold now, drop the rest
    shards: list[dict] = []
    done: set[str] = set()
    for meta_path in sorted(p for p in out.glob("shard-*.json") if _OWN_NAME.match(p.name)):
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            meta = None             # cut short or damaged: redone like a missing one
        # the shard beside its metadata, whatever the record says; a record naming another
        # file is not this cache's own and is dropped with it
        npy = meta_path.with_suffix(".npy")
        if not isinstance(meta, dict) or meta.get("file") != npy.name \
                or meta.get("config_hash") != chash or meta.get("manifest_sha256") != manifest_sha \
                or meta.get("taxonomy_sha256") != tax_sha or not npy.is_file() \
                or not _same_audio(meta, audio_sha) \
                or _shard_shape(npy) != (meta.get("n"), *shape[1:]):
            meta_path.unlink()
            npy.unlink(missing_ok=True)
            continue
        shards.append(meta)
        done.update(w["clip_id"] for w in meta["windows"])
    for stray in out.iterdir():         # only the temporary names written below
        if _OWN_TMP.match(stray.name):
            stray.unlink()
    known = {m["file"] for m in shards}
    for npy in out.glob("shard-*.npy"):
        if npy.name not in known and _OWN_NAME.match(npy.name):
            npy.unlink()

    fe = FrontEnd(front_end).to(device).eval()
    todo = [r for r in ds.rows if r["clip_id"] not in done]
    pending_feats: list[np.ndarray] = []
    pending_meta: list[dict] = []
    # new shards are numbered after every kept one: numbered by how many were kept, a new
    # shard took the name of a kept one whenever an earlier one had been dropped (its .npy
    # gone), and overwrote it while the index listed both
    numbers = [int(m["file"][len("shard-"):-len(".npy")]) for m in shards]
    next_number = [max(numbers, default=-1) + 1]

    def flush() -> None:
        if not pending_meta:
            return
        n = next_number[0]
        next_number[0] += 1
        name = f"shard-{n:05d}.npy"
        arr = np.concatenate(pending_feats, axis=0)
        tmp = out / f"{name}.tmp.npy"
        np.save(tmp, arr)
        os.replace(tmp, out / name)
        for i, m in enumerate(pending_meta):
            m["row"] = i
        meta = {"file": name, "n": len(pending_meta), "config_hash": chash,
                "manifest_sha256": manifest_sha, "taxonomy_sha256": tax_sha,
                "audio_sha256": {c: audio_sha[c] for c in dict.fromkeys(
                    m["clip_id"] for m in pending_meta)},
                "windows": list(pending_meta)}
        tmpj = out / f"shard-{n:05d}.json.tmp"
        tmpj.write_text(json.dumps(meta) + "\n", encoding="utf-8")
        os.replace(tmpj, out / f"shard-{n:05d}.json")
        shards.append(meta)
        pending_feats.clear()
        pending_meta.clear()

    with progress.task("caching features", total=len(todo)) as task, torch.inference_mode():
        for row in todo:
            y = _load_clip(ds, row, front_end.sample_rate)
            targets, mask = ds.taxonomy.encode(row)
            windows = list(iter_windows(y, sample_rate=front_end.sample_rate,
                                        window_s=front_end.window_s, hop_s=front_end.hop_s))
            for b in range(0, len(windows), BATCH_WINDOWS):
                batch = windows[b: b + BATCH_WINDOWS]
                waves = torch.from_numpy(np.stack([w.samples for w in batch])).to(device)
                feats = fe(waves)[:, 0].to("cpu", torch.float32).numpy()
                pending_feats.append(feats.astype(CACHE_DTYPE))
                for w in batch:
                    pending_meta.append({
                        "clip_id": row["clip_id"], "split": row["split"],
                        "start_s": round(float(w.start_s), 6), "n_valid": int(w.n_valid),
                        "silence_s": w.silence / front_end.sample_rate,
                        "soft_db": softest_span_db(w.samples, front_end.sample_rate, w.n_valid),
                        "targets": targets.astype(int).tolist(),
                        "mask": mask.astype(int).tolist()})
            if len(pending_meta) >= shard_windows:
                flush()
            task.advance()
        flush()

    windows = []
    for si, meta in enumerate(shards):
        for w in meta["windows"]:
            windows.append({**w, "shard": si})
    # A clip shorter than the model's window is one window that repeats it: a model trained
    # on such windows learns the seam too. Said, never silently accepted.
    need = int(round(front_end.window_s * front_end.sample_rate))
    short = sorted({w["clip_id"] for w in windows if w["n_valid"] < need})
    if short:
        warnings.warn(f"{len(short)} of {len(ds.rows)} clips are shorter than the model's "
                      f"{front_end.window_s:g} s window (e.g. {short[0]!r}): each is one window "
                      "that repeats it", MusicBrainWarning, stacklevel=2)
    index = {"version": CACHE_VERSION, "front_end": fe_dict, "config_hash": chash,
             "dtype": np.dtype(CACHE_DTYPE).name, "shape": shape,
             "taxonomy": ds.taxonomy.to_dict(), "labels": ds.taxonomy.labels,
             "dataset": str(ds.root.resolve()), "manifest_sha256": manifest_sha,
             "taxonomy_sha256": tax_sha, "audio_sha256": audio_sha,
             "shards": [{"file": m["file"], "n": m["n"]} for m in shards],
             "clips_shorter_than_window": len(short), "windows": windows}
    tmp = out / (INDEX + ".tmp")
    tmp.write_text(json.dumps(index) + "\n", encoding="utf-8")
    os.replace(tmp, out / INDEX)
    return out


def _shard_shape(npy: Path) -> tuple | None:
    """The shape a shard file's header states, None when it is no readable array (cut
    short, damaged): such a shard is computed again, not kept for the loader to refuse."""
    try:
        return tuple(np.load(npy, mmap_mode="r", allow_pickle=False).shape)
    except (OSError, ValueError):
        return None


def _same_audio(meta: dict, audio_sha: dict[str, str]) -> bool:
    """Whether every clip of a shard's record was computed from the audio it holds now (a
    record made before the cache kept audio hashes is not)."""
    recorded = meta.get("audio_sha256")
    if not isinstance(recorded, dict) or not isinstance(meta.get("windows"), list):
        return False
    return all(isinstance(w, dict) and recorded.get(w.get("clip_id")) is not None
               and recorded.get(w.get("clip_id")) == audio_sha.get(w.get("clip_id"))
               for w in meta["windows"])


class CachedWindows(torch.utils.data.Dataset):
    """``torch.utils.data.Dataset`` over a feature cache: ``(features [1,F,T] float32,
    targets [L] float32, mask [L] float32)``.

    A plain map-style data set, so ``DistributedSampler`` shards it by index. Shards are
    memory-mapped lazily in each process (a DataLoader worker re-opens them rather than
    receiving pickled arrays). ``split`` keeps only that split's windows.
    """

    def __init__(self, cache_dir: str | Path, *, split: str | None = None):
        self.cache_dir = Path(cache_dir)
        path = self.cache_dir / INDEX
        if not path.is_file():
            raise DatasetError(f"{str(self.cache_dir)!r} holds no feature cache ({INDEX} missing)")
        try:
            index = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise DatasetError(f"cannot read {str(path)!r}: {exc}") from exc
        if index.get("version") != CACHE_VERSION:
            raise DatasetError(f"cache version {index.get('version')!r} is not {CACHE_VERSION}")
        if split is not None and split not in SPLITS:
            raise DatasetError(f"unknown split {split!r} (splits: {SPLITS})")
        from musicbrain_cli.taxonomy import Taxonomy

        self.index = index
        self.taxonomy = Taxonomy.from_dict(index["taxonomy"])
        self.front_end = index["front_end"]
        self.config_hash = index["config_hash"]
        self.shape = tuple(index["shape"])
        bad = [s.get("file") for s in index["shards"]
               if not (isinstance(s, dict) and isinstance(s.get("file"), str)
                       and _SHARD_FILE.match(s["file"]))]
        if bad:
            raise DatasetError(f"cache index of {str(self.cache_dir)!r} names shards that are not "
                               f"files of the cache folder: {bad[:3]!r}; build the cache again")
        self.shard_files = [self.cache_dir / s["file"] for s in index["shards"]]
        #: windows each shard holds per the index: a shard file of another length is no
        #: file of this cache (another build's, or replaced), whatever its name
        self.shard_rows = [s.get("n") for s in index["shards"]]
        wins = [w for w in index["windows"] if split is None or w["split"] == split]
        self.clip_ids = [w["clip_id"] for w in wins]
        self.start_s = np.array([w["start_s"] for w in wins], dtype=np.float64)
        self.n_valid = np.array([w["n_valid"] for w in wins], dtype=np.int64)
        #: each window's longest stretch of silence, seconds (intake.longest_silence)
        self.silence_s = np.array([w["silence_s"] for w in wins], dtype=np.float64)
        #: the level of each window's quietest second against its mean, dB
        #: (intake.softest_span_db)
        self.soft_db = np.array([w["soft_db"] for w in wins], dtype=np.float64)
        self._shard = np.array([w["shard"] for w in wins], dtype=np.int64)
        self._row = np.array([w["row"] for w in wins], dtype=np.int64)
        n_labels = self.taxonomy.num_labels
        self.targets = np.array([w["targets"] for w in wins], dtype=np.float32).reshape(-1, n_labels)
        self.mask = np.array([w["mask"] for w in wins], dtype=np.float32).reshape(-1, n_labels)
        self._maps: list[np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.clip_ids)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_maps"] = None  # memory maps are re-opened in the receiving process
        return state

    def _open(self) -> list[np.ndarray]:
        if self._maps is None:
            maps = []
            for f, n in zip(self.shard_files, self.shard_rows):
                try:
                    arr = np.load(f, mmap_mode="r", allow_pickle=False)
                except (OSError, ValueError) as exc:
                    raise DatasetError(f"cannot map cache shard {str(f)!r}: {exc}") from exc
                if tuple(arr.shape) != (n, *self.shape[1:]):
                    raise DatasetError(f"shard {str(f)!r} has shape {arr.shape}, expected "
                                       f"[{n}, {self.shape[1]}, {self.shape[2]}] (the index's "
                                       "count): build the cache again")
                maps.append(arr)
            self._maps = maps
        return self._maps

    def features(self, i: int) -> np.ndarray:
        """Window ``i``'s map as float32 ``[1, F, T]`` (a copy, safe to modify)."""
        arr = self._open()[self._shard[i]][self._row[i]]
        return np.asarray(arr, dtype=np.float32)[None]

    def __getitem__(self, i: int):
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"window {i} out of range (0..{len(self) - 1})")
        return (torch.from_numpy(self.features(i)), torch.from_numpy(self.targets[i].copy()),
                torch.from_numpy(self.mask[i].copy()))

    def __getitems__(self, indices: list[int]):
        """DataLoader's batched fetch (torch >= 2.2): one call per batch.

        Rows are gathered shard by shard in sorted order (sequential reads of the mmap)
        into one float16 block, converted to float32 once (the conversion, ~0.3 ms per
        window, is the cost that remains) and handed out as views in the asked order.
        """
        idx = np.asarray(indices, dtype=np.int64)
        idx[idx < 0] += len(self)
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"window index out of range (0..{len(self) - 1})")
        maps = self._open()
        block = np.empty((idx.size,) + self.shape[1:], dtype=CACHE_DTYPE)
        for shard in np.unique(self._shard[idx]):
            pos = np.flatnonzero(self._shard[idx] == shard)
            rows = self._row[idx[pos]]
            order = np.argsort(rows, kind="stable")
            block[pos[order]] = maps[shard][rows[order]]
        feats = torch.from_numpy(block.astype(np.float32))
        targets = torch.from_numpy(self.targets[idx])
        mask = torch.from_numpy(self.mask[idx])
        return [(feats[k, None], targets[k], mask[k]) for k in range(idx.size)]


def front_end_from_file(path: str | Path | None):
    """The :class:`FrontEndConfig` of a model or training config file (JSON or YAML).

    Looks for ``front_end`` at the top level, then under ``model``; the default front end
    when ``path`` is None or the file names none.
    """
    from musicbrain_cli.errors import ConfigError
    from musicbrain_cli.features import FrontEndConfig

    import yaml

    if path is None:
        return FrontEndConfig()
    try:
        text = Path(path).read_text(encoding="utf-8")
        data = json.loads(text) if str(path).endswith(".json") else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read model config {str(path)!r}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"model config {str(path)!r} is not a mapping")
    fe = data.get("front_end")
    if fe is None and isinstance(data.get("model"), dict):
        fe = data["model"].get("front_end")
    return FrontEndConfig() if fe is None else FrontEndConfig.from_dict(fe)
