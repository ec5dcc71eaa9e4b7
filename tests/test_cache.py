"""Feature cache: round trip against the front end, split filter, loader batches, resume."""

import json

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, DistributedSampler

from musicbrain_cli.errors import DatasetError
from musicbrain_cli.features import FrontEnd, FrontEndConfig
from musicbrain_cli.taxonomy import Taxonomy
from musicbrain_cli.data.cache import CachedWindows, build_cache
from musicbrain_cli.data.dataset import ClipRecord, DatasetWriter

SR = 8000
FE = FrontEndConfig(sample_rate=SR, n_fft=256, hop_length=80, n_bins=32, f_min=50.0,
                    f_max=4000.0, window_s=1.0, hop_s=0.5)
TAX = Taxonomy.from_groups([("source", ["human", "ai"], True),
                            ("period", ["Baroque", "Classical", "Romantic"], True)])


@pytest.fixture
def dataset(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "ds"
    with DatasetWriter(root, TAX, sample_rate=SR) as w:
        for i, (split, secs, period) in enumerate([("train", 2.0, "Baroque"),
                                                   ("train", 1.6, ""),
                                                   ("val", 0.7, "Romantic")]):
            t = np.arange(int(secs * SR)) / SR
            y = 0.3 * np.sin(2 * np.pi * (200 + 100 * i) * t) + rng.normal(0, 0.01, t.size)
            w.add(ClipRecord(f"c{i}", "human" if i else "ai", period=period,
                             work_id=f"w{i}", split=split), y.astype(np.float32))
    return root


def test_round_trip_and_loader(dataset, tmp_path):
    out = build_cache(dataset, FE, out=tmp_path / "cache", shard_windows=2)
    index = json.loads((out / "index.json").read_text())
    assert index["dtype"] == "float16" and index["shape"] == [1, 32, 100]
    assert len(index["shards"]) >= 2
    # iter_windows: 2.0 s -> starts 0, .5, 1.0; 1.6 s -> 0, .5 (+ tail .6 s >= share);
    # 0.7 s -> one padded window
    starts = [(w["clip_id"], w["start_s"]) for w in index["windows"]]
    assert [s for s in starts if s[0] == "c0"] == [("c0", 0.0), ("c0", 0.5), ("c0", 1.0)]
    assert [s for s in starts if s[0] == "c2"] == [("c2", 0.0)]

    ds = CachedWindows(out)
    assert len(ds) == len(index["windows"])
    feats, targets, mask = ds[0]
    assert feats.shape == (1, 32, 100) and feats.dtype == torch.float32
    assert targets.tolist() == [0, 1, 1, 0, 0] and mask.tolist() == [1, 1, 1, 1, 1]
    # the cached map equals the front end on the same window, to float16 precision
    import soundfile

    y, _ = soundfile.read(dataset / "audio" / "c0.flac", dtype="float32")
    ref = FrontEnd(FE)(torch.from_numpy(y[SR // 2: SR // 2 + SR])[None])
    np.testing.assert_allclose(ds[1][0].numpy(), ref[0].numpy(), atol=2e-3)

    val = CachedWindows(out, split="val")
    assert len(val) == 1 and val.clip_ids == ["c2"]
    assert val[0][2].tolist() == [1, 1, 1, 1, 1] and val[0][1].tolist() == [1, 0, 0, 0, 1]
    unknown_period = CachedWindows(out, split="train")[3]
    assert unknown_period[2].tolist() == [1, 1, 0, 0, 0]

    sampler = DistributedSampler(ds, num_replicas=2, rank=1, shuffle=True, seed=0)
    loader = DataLoader(ds, batch_size=2, sampler=sampler, num_workers=0)
    batches = list(loader)
    assert sum(b[0].shape[0] for b in batches) == (len(ds) + 1) // 2
    assert batches[0][0].shape == (2, 1, 32, 100) and batches[0][1].shape == (2, 5)
    with pytest.raises(DatasetError, match="holdout"):
        CachedWindows(out, split="holdout")


def test_resume_keeps_finished_shards(dataset, tmp_path):
    out = build_cache(dataset, FE, out=tmp_path / "cache", shard_windows=2)
    first = CachedWindows(out)
    reference = [first[i][0].numpy() for i in range(len(first))]
    # interrupted: index not written, last shard half-written
    (out / "index.json").unlink()
    last = sorted(out.glob("shard-*.json"))[-1]
    last.unlink()
    (out / "shard-00009.npy.tmp.npy").write_bytes(b"junk")
    mtime = (out / "shard-00000.npy").stat().st_mtime_ns
    build_cache(dataset, FE, out=out, shard_windows=2)
    assert (out / "shard-00000.npy").stat().st_mtime_ns == mtime   # not recomputed
    assert not (out / "shard-00009.npy.tmp.npy").exists()
    again = CachedWindows(out)
    by_key = {(c, s): i for i, (c, s) in enumerate(zip(again.clip_ids, again.start_s))}
    for i, (c, s) in enumerate(zip(first.clip_ids, first.start_s)):
        np.testing.assert_array_equal(again[by_key[(c, s)]][0].numpy(), reference[i])


def test_missing_cache_is_a_dataset_error(tmp_path):
    with pytest.raises(DatasetError, match="index.json"):
        CachedWindows(tmp_path)


def test_clips_shorter_than_the_window_are_said(dataset, tmp_path):
    """A data set of 2 s clips with a 10 s window trained on windows that were mostly
    padding, without a word (training-commands audit). Here one clip of 0.7 s is shorter
    than the 1 s window."""
    with pytest.warns(UserWarning, match=r"1 of 3 clips are shorter than the model's 1 s window \(e\.g\. 'c2'\)"):
        out = build_cache(dataset, FE, out=tmp_path / "cache")
    assert json.loads((out / "index.json").read_text())["clips_shorter_than_window"] == 1


def test_a_cache_of_the_old_windows_is_rebuilt_not_reused(dataset, tmp_path):
    """Review (session 38): the windowing rule changed (no zero padding; a clip's last window
    ends at its end), but a cache built before kept its hash and was reused, so training read
    windows inference no longer reads. The cache's version names the rule."""
    from musicbrain_cli.data import cache as C

    out = build_cache(dataset, FE, out=tmp_path / "cache")
    index = json.loads((out / "index.json").read_text())
    assert index["version"] == C.CACHE_VERSION >= 2
    old_hash = index["config_hash"]
    import unittest.mock as mock

    with mock.patch.object(C, "CACHE_VERSION", 1):
        old = build_cache(dataset, FE, out=tmp_path / "old")
        assert json.loads((old / "index.json").read_text())["config_hash"] != old_hash


def test_a_shard_record_naming_a_path_deletes_and_reads_nothing_outside_the_cache(dataset,
                                                                                tmp_path):
    """Review (session 45): a stale shard record's "file" was deleted as ``out / file``, so a
    cache folder received with a data set, holding {"file": "../victim.txt"}, had the next
    resume delete that file; the index's shard names were read the same way."""
    victim = tmp_path / "victim.txt"
    victim.write_text("a user's file outside the cache\n")
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "shard-00000.json").write_text(json.dumps(
        {"file": "../victim.txt", "n": 0, "config_hash": "stale", "manifest_sha256": "x",
         "taxonomy_sha256": "y", "windows": []}))
    out = build_cache(dataset, FE, out=cache, shard_windows=2)
    assert victim.read_text().startswith("a user's file")
    assert len(CachedWindows(out)) > 0                       # the cache was built all the same

    index = json.loads((out / "index.json").read_text())
    index["shards"][0]["file"] = "../victim.txt"
    (out / "index.json").write_text(json.dumps(index))
    with pytest.raises(DatasetError, match="not files of the cache folder"):
        CachedWindows(out)


@pytest.mark.parametrize("name", ["mps", "meta"])
def test_a_device_type_this_program_does_not_run_on_is_a_config_error(name):
    """Review (session 45): `data cache --device mps` ended in a traceback from deep inside
    torch; torch names more device types than this program runs on."""
    from musicbrain_cli.errors import ConfigError
    from musicbrain_cli.features import resolve_device

    with pytest.raises(ConfigError, match="not supported here"):
        resolve_device(name)
    assert resolve_device("cpu").type == "cpu"


def test_a_clip_whose_audio_changed_is_computed_again(dataset, tmp_path):
    """The cache was checked against the manifest, which does not hash the audio: a clip
    made again with the same labels and length (an edited score, rebuilt in place) left the
    manifest byte for byte the same, and both a rerun and training kept the old features."""
    import soundfile

    from musicbrain_cli.training.sources import CacheSource

    source = CacheSource(str(dataset), front_end_config=FE.to_dict())
    source.prepare()
    out = source.cache_dir()
    first = CachedWindows(out)
    c0 = first.clip_ids.index("c0")
    old = first.features(c0)
    manifest = (dataset / "manifest.csv").read_bytes()
    y, sr = soundfile.read(dataset / "audio" / "c0.flac", dtype="float32")
    t = np.arange(y.size) / sr
    soundfile.write(dataset / "audio" / "c0.flac", (0.3 * np.sin(2 * np.pi * 1200 * t))
                    .astype(np.float32), sr, format="FLAC", subtype="PCM_16")
    assert (dataset / "manifest.csv").read_bytes() == manifest
    fresh = FrontEnd(FE).eval()

    def expected(cache):
        i = cache.clip_ids.index("c0")
        y, _ = soundfile.read(dataset / "audio" / "c0.flac", dtype="float32")
        a = int(round(cache.start_s[i] * SR))
        with torch.inference_mode():
            want = fresh(torch.from_numpy(y[a:a + SR][None]))[0].numpy()
        return cache.features(i), want

    source.prepare()                                   # training's check
    got, want = expected(CachedWindows(out))
    assert not np.allclose(got, old, atol=1e-2)
    np.testing.assert_allclose(got, want, atol=2e-3)
    soundfile.write(dataset / "audio" / "c0.flac", y, sr, format="FLAC", subtype="PCM_16")
    build_cache(dataset, FE, out=out)                  # a rerun of `data cache`
    got, want = expected(CachedWindows(out))
    np.testing.assert_allclose(got, want, atol=2e-3)
    np.testing.assert_allclose(got, old, atol=2e-3)


def test_a_rerun_redoes_a_cut_short_shard_and_its_record(dataset, tmp_path):
    """A shard record cut short stopped the rerun with a bare JSONDecodeError, and a shard
    file cut short was kept (its record was fine), so the rebuilt cache could not be read."""
    out = build_cache(dataset, FE, out=tmp_path / "cache", shard_windows=2)
    first = CachedWindows(out)
    reference = {(c, s): first[i][0].numpy() for i, (c, s)
                 in enumerate(zip(first.clip_ids, first.start_s))}
    record = (out / "shard-00001.json").read_text()
    (out / "shard-00001.json").write_text(record[: len(record) // 2])
    data = (out / "shard-00000.npy").read_bytes()
    (out / "shard-00000.npy").write_bytes(data[: len(data) // 2])
    build_cache(dataset, FE, out=out, shard_windows=2)
    again = CachedWindows(out)
    assert len(again) == len(first)
    for i, key in enumerate(zip(again.clip_ids, again.start_s)):
        np.testing.assert_array_equal(again[i][0].numpy(), reference[key])


@pytest.mark.parametrize("extra", [-1, 1])
def test_a_shard_holding_another_number_of_windows_is_refused(dataset, tmp_path, extra):
    """A shard file of another length than the index states (another build's, or replaced)
    was read: with fewer rows a bare IndexError on some windows, with more the wrong rows
    were served as this cache's windows without a word."""
    out = build_cache(dataset, FE, out=tmp_path / "cache", shard_windows=2)
    arr = np.load(out / "shard-00000.npy")
    n = arr.shape[0]
    np.save(out / "shard-00000.npy", np.concatenate([arr, arr])[: n + extra])
    cache = CachedWindows(out)
    with pytest.raises(DatasetError, match=f"shard-00000.npy.*expected \\[{n}, 32"):
        cache[len(cache) - 1]


def test_a_clip_stored_at_another_rate_than_the_card_says_is_read_at_its_own(dataset, tmp_path):
    """The cache read a clip at the card's rate whatever the file's header said (a merge
    of an input without a card.json keeps the other input's rate): a 2 s clip at 16 kHz
    was cached as 4 s at 8 kHz, its 1 kHz tone as 500 Hz."""
    import soundfile

    t = np.arange(2 * 2 * SR) / (2 * SR)
    soundfile.write(dataset / "audio" / "c0.flac", (0.3 * np.sin(2 * np.pi * 1000 * t))
                    .astype(np.float32), 2 * SR, format="FLAC", subtype="PCM_16")
    cache = CachedWindows(build_cache(dataset, FE, out=tmp_path / "cache"))
    rows = [i for i, c in enumerate(cache.clip_ids) if c == "c0"]
    assert cache.start_s[rows].tolist() == [0.0, 0.5, 1.0]
    native = np.arange(SR) / SR
    with torch.inference_mode():
        want = FrontEnd(FE).eval()(torch.from_numpy(
            (0.3 * np.sin(2 * np.pi * 1000 * native)).astype(np.float32)[None]))[0, 0].numpy()
    got = cache.features(rows[0])[0]
    assert got.mean(axis=1).argmax() == want.mean(axis=1).argmax()
