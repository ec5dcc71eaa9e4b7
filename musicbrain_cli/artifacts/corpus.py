"""The artifact line's training corpus, made here: human clips, the same clips decoded, re-encoded.

Human class (issue 22, item 2): clips of real recordings from the Debian music packages
listed by ``scripts/fetch_human_recordings.py`` (split by package, see its data card), plus
FluidSynth renderings of MusicNet score MIDIs (split by piece). AI class: the same split's
human clips passed through the synthetic decoders of :mod:`synth`. Half of all clips, human
and decoded alike, also get a copy with common human production (:mod:`production`: naive
drones, sample-and-hold, pilot tones...). Every item, human or
AI, is written as an upload would be (FLAC, MP3, AAC, Opus, sometimes resampled first) and
its features are read back through the forensic path (:func:`detector.analyse` on the file),
so training sees exactly what a scan sees.

Nothing here is used at scan time; torch is imported lazily by :func:`build_corpus`.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np

from musicbrain_cli.artifacts.detector import WINDOW_S
from musicbrain_cli.audio.encode import Format, encode_audio

#: Clip length, seconds: the detector's scoring window (> 50 Welch frames at 44.1 kHz,
#: short enough for a CPU-sized corpus).
CLIP_S = WINDOW_S
#: Uploads: (name, resample-to rate or None, encoder). Bit rates are common streaming ones.
TRANSFORMS: dict[str, tuple[int | None, Format | None]] = {
    "flac": (None, Format("flac", "flac")),
    "mp3_128": (None, Format("mp3", "libmp3lame", bit_rate=128_000)),
    "mp3_192": (None, Format("mp3", "libmp3lame", bit_rate=192_000)),
    "mp3_320": (None, Format("mp3", "libmp3lame", bit_rate=320_000)),
    "aac_128": (None, Format("mp4", "aac", bit_rate=128_000)),
    "aac_256": (None, Format("mp4", "aac", bit_rate=256_000)),
    "opus_96": (None, Format("ogg", "libopus", rate=48000, bit_rate=96_000)),
    "opus_160": (None, Format("ogg", "libopus", rate=48000, bit_rate=160_000)),
    "rs44100_mp3": (44100, Format("mp3", "libmp3lame", bit_rate=192_000)),
    "rs48000_aac": (48000, Format("mp4", "aac", bit_rate=192_000)),
    "rs44100_flac": (44100, Format("flac", "flac")),
    "rs24000_flac": (24000, Format("flac", "flac")),
    "rs22050_mp3": (22050, Format("mp3", "libmp3lame", bit_rate=128_000)),
    "rs16000_flac": (16000, Format("flac", "flac")),
    # Low bit rates as real uploads and re-uploads are (issue 22: real codec re-syntheses had
    # passed through Opus at 64 kbit/s). Drawn for BOTH classes alike, so "low bit rate" is
    # no cue to the AI class.
    "opus_48": (None, Format("ogg", "libopus", rate=48000, bit_rate=48_000)),
    "opus_64": (None, Format("ogg", "libopus", rate=48000, bit_rate=64_000)),
    "mp3_96": (None, Format("mp3", "libmp3lame", bit_rate=96_000)),
    "aac_96": (None, Format("mp4", "aac", bit_rate=96_000)),
}
#: Double re-encodes (a download re-uploaded): first transform, then the second on its decoded output.
DOUBLE_TRANSFORMS: dict[str, tuple[str, str]] = {
    "mp3_128+opus_64": ("mp3_128", "opus_64"),
    "aac_128+mp3_96": ("aac_128", "mp3_96"),
}
#: Every upload name the corpus draws from (sorted: the seeded draws depend on the order).
UPLOADS: tuple[str, ...] = tuple(sorted([*TRANSFORMS, *DOUBLE_TRANSFORMS]))
_EXT = {"flac": "flac", "mp3": "mp3", "mp4": "m4a", "ogg": "opus"}

#: Decoder stride sets: (strides, output rate). Products 64..1024 at the common codec and
#: vocoder rates: DAC-44k (8,8,4,2 @ 44.1k), EnCodec-24k (8,5,4,2 @ 24k), HiFi-GAN (8,8,2,2 @
#: 22.05k), MusicGen's 32 kHz EnCodec (8,5,4,4 @ 32k), DAC-16k (8,5,4,2 @ 16k), 48 kHz EnCodec
#: (8,5,4,2 @ 48k)...
STRIDE_SETS: tuple[tuple[tuple[int, ...], int], ...] = (
    ((8, 8, 4, 2), 44100),
    ((8, 8, 2, 2), 22050),
    ((8, 5, 4, 4), 32000),
    ((4, 4, 4), 16000),
    ((8, 4, 4, 2, 2), 44100),
    ((6, 5, 4, 2), 48000),
    ((4, 4, 4, 4), 24000),
    ((8, 5, 4, 2), 24000),  # held out of fitting in the generalisation experiment
)
HELD_OUT_STRIDES = ((8, 5, 4, 2), 24000)
HELD_OUT_FAMILY = "istft"
#: Families held out together in the generalisation experiment: both iSTFT heads, so the
#: held-out measurement is not helped by a near relative seen in fitting.
HELD_OUT_FAMILIES = ("istft", "vocos")

#: Decoders in the shape of real codecs and vocoders (:class:`synth.CodecLike`):
#: (family, activation, strides, output rate, what it stands for). EnCodec 24 kHz sits on
#: the held-out stride set (8, 5, 4, 2) @ 24 kHz, so its generalisation is measured too.
CODEC_SETS: tuple[tuple[str, str, tuple[int, ...], int, str], ...] = (
    ("codec", "elu", (8, 5, 4, 2), 24000, "EnCodec 24 kHz"),
    ("codec", "elu", (8, 5, 4, 4), 32000, "EnCodec 32 kHz (MusicGen)"),
    ("codec", "snake", (8, 8, 4, 2), 44100, "DAC 44.1 kHz"),
    ("codec", "snake", (8, 8, 4, 2), 24000, "SNAC-like 24 kHz"),
    ("codec", "lrelu", (8, 8, 2, 2), 22050, "HiFi-GAN 22.05 kHz"),
    ("codec", "snake", (4, 4, 2, 2, 2, 2), 24000, "BigVGAN 24 kHz"),
    ("vocos", "", (4, 4, 4, 4), 24000, "Vocos 24 kHz (hop 256, n_fft 1024)"),
    ("vocos", "", (8, 8, 8), 44100, "Vocos-like 44.1 kHz (hop 512, n_fft 2048)"),
)
#: Adam steps of a trained codec-like decoder (about 0.15-0.3 s a step on one 2-core CPU
#: thread; the vocos head is cheaper and gets more). Random-init copies (0 steps) too.
CODEC_STEPS = {"codec": 400, "vocos": 600}


@dataclass(frozen=True)
class Item:
    """One corpus file and what it is."""

    id: str
    split: str            # train | validation | test
    label: int            # 1 = decoded (AI), 0 = human
    source: str           # debian package, or "musicnet-render"
    family: str           # decoder family ("codec" decoders: "codec_<activation>"), or "human"
    decoder: str          # DecoderSpec.name, or ""
    transform: str
    path: str
    production: str = ""  # production.EFFECTS name applied before the upload ("" = none; the
                          # audit's items: "<kind>:<setting>")


def _seed(*parts) -> int:
    return zlib.crc32("/".join(map(str, parts)).encode())


def resample(y: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Polyphase resampling (scipy ``resample_poly``, Kaiser window) of ``y`` from ``rate`` to ``target``."""
    from scipy.signal import resample_poly

    if rate == target:
        return y
    f = Fraction(target, rate)
    return resample_poly(y.astype(np.float64), f.numerator, f.denominator).astype(np.float32)


def write_upload(path_stem: Path, y: np.ndarray, rate: int, transform: str) -> Path:
    """Write ``y`` at ``rate`` as the upload ``transform`` (see :data:`UPLOADS`); returns the path."""
    if transform in DOUBLE_TRANSFORMS:
        from musicbrain_cli.artifacts.spectrum import read_native

        first, second = DOUBLE_TRANSFORMS[transform]
        tmp = write_upload(path_stem.with_name(path_stem.name + ".first"), y, rate, first)
        try:
            y2, rate2 = read_native(tmp)
        finally:
            tmp.unlink()
        return write_upload(path_stem, y2.astype(np.float32), rate2, second)
    target, fmt = TRANSFORMS[transform]
    if target is not None:
        y, rate = resample(y, rate, target), target
    if fmt.codec == "libmp3lame" and rate not in (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000):
        y, rate = resample(y, rate, 44100), 44100
    # not with_suffix: a stem with a dot in it ("wesnoth-1.16-music__...") would lose its tail
    path = path_stem.with_name(f"{path_stem.name}.{_EXT[fmt.container]}")
    peak = float(np.max(np.abs(y))) or 1.0
    encode_audio(path, np.clip(y / peak * 0.89, -1, 1), rate, spec=fmt)
    return path


def human_clips(root: Path, split: str, *, per_file: int, clip_s: float = CLIP_S,
                seed: int = 22) -> Iterator[tuple[str, str, np.ndarray, int]]:
    """``(clip id, package, y [shape=(n,)], native rate)`` from the Debian recordings of ``split``.

    Clips start at seeded random offsets after the first 5 s (intros are often silent).
    """
    from musicbrain_cli.errors import AudioDecodeError

    manifest = json.loads((root / "manifest.json").read_text())
    for row in manifest:
        if row["split"] != split:
            continue
        names = clip_names(row["files"])
        for rel in row["files"]:
            try:
                y, rate = _load_native(root / rel)
            except AudioDecodeError:
                continue
            n = int(clip_s * rate)
            if y.size < n + 5 * rate:
                continue
            rng = np.random.default_rng(_seed(seed, rel))
            for j in range(per_file):
                i = int(rng.integers(5 * rate, y.size - n + 1))
                clip = y[i:i + n].copy()   # not a view: it would keep the whole file alive
                if np.sqrt(np.mean(clip.astype(np.float64) ** 2)) < 1e-3:
                    continue  # near-silent stretch
                yield f"{row['package']}/{names[rel]}/{j}", row["package"], clip, rate


def clip_names(files: list[str]) -> dict[str, str]:
    """A distinct name for each of one package's files: ``<parent folder>-<stem>``, with more
    folders in front where that is not enough.

    The parent folder is there because some packages name every song's file alike; more are
    needed where a package holds ``fernland/sounds/day.ogg`` and ``spring/sounds/day.ogg``
    (megaglest-data): with one folder both were named ``sounds-day`` and their clips were
    written over each other. Files whose two-part name is unique keep it (so corpora built
    before keep their ids); a package holding the same path twice is refused.
    """
    parts = {rel: Path(rel).with_suffix("").parts for rel in files}
    if len(parts) != len(files):
        raise ValueError("a package lists the same file twice")
    depth = {rel: min(2, len(p)) for rel, p in parts.items()}
    while True:
        names = {rel: "-".join(parts[rel][-depth[rel]:]) for rel in files}
        seen: dict[str, list[str]] = {}
        for rel, name in names.items():
            seen.setdefault(name, []).append(rel)
        clash = [rel for group in seen.values() if len(group) > 1 for rel in group]
        if not clash:
            return names
        grown = [rel for rel in clash if depth[rel] < len(parts[rel])]
        if not grown:
            raise ValueError(f"files whose names cannot be told apart: {sorted(clash)[:3]}")
        for rel in grown:
            depth[rel] += 1


def _load_native(path: Path) -> tuple[np.ndarray, int]:
    from musicbrain_cli.audio import intake as audio

    info = audio.probe(path)
    return audio.load_audio(path, sample_rate=info.sample_rate, max_duration_s=240.0), info.sample_rate


def render_clips(midi_root: Path, split: str, *, count: int, clip_s: float = CLIP_S,
                 seed: int = 22) -> Iterator[tuple[str, str, np.ndarray, int]]:
    """FluidSynth renderings of MusicNet score MIDIs: the piece's first ``clip_s`` seconds.

    Pieces are split by a hash of their file name (70/15/15 %; copies of one piece together,
    :func:`piece_splits`), rates 44.1 or 48 kHz and
    the SoundFont are drawn per piece; ``count`` pieces of the split are rendered.
    """
    import pretty_midi

    from musicbrain_cli.errors import RenderError
    from musicbrain_cli.data.render import available_soundfonts, render_midi

    fonts = available_soundfonts()
    files = sorted(midi_root.rglob("*.mid"))
    chosen = [p for p in files if _name_split(p.name) == split] if count else []
    rng = np.random.default_rng(_seed(seed, "render", split))
    rng.shuffle(chosen)
    # a copy of a piece whose split is another is left out after the shuffle, so every other
    # piece is drawn as before
    pieces = piece_splits(files)
    chosen = [p for p in chosen if pieces[p] == split]
    made = 0
    for p in chosen:
        if made >= count:
            break
        try:
            midi = pretty_midi.PrettyMIDI(str(p))
        except Exception:  # noqa: BLE001 - a broken score MIDI is skipped, never fatal
            continue
        for inst in midi.instruments:
            inst.notes = [n for n in inst.notes if n.start < clip_s + 1]
        rate = int(rng.choice([44100, 48000]))
        font = fonts[int(rng.integers(len(fonts)))]
        try:
            y = render_midi(midi, font, sample_rate=rate, seed=made)
        except RenderError:
            continue
        n = int(clip_s * rate)
        if y.size < n:
            continue
        made += 1
        yield f"musicnet/{p.stem}", "musicnet-render", y[:n], rate


def _name_split(name: str) -> str:
    h = _seed("split", name) % 100
    return "train" if h < 70 else "validation" if h < 85 else "test"


def piece_splits(files: list[Path]) -> dict[Path, str]:
    """The split of each MusicNet score MIDI's piece: that of the piece's first file name.

    MusicNet names a MIDI ``<recording id>_<piece>.mid``, and a piece recorded twice has
    byte-identical MIDIs under two ids (25 pieces, e.g. ``2345_ps14_03`` and ``2348_ps14_03``).
    Split by each file's own name, 11 such copies fell in another split than their twin: the
    same score could be rendered into train and into validation or test.
    """
    def piece(p: Path) -> tuple[str, str]:
        head, _, rest = p.name.partition("_")
        return p.parent.name, rest if head.isdigit() and rest else p.name

    first: dict[tuple[str, str], str] = {}
    for p in sorted(files, key=lambda p: p.name):
        first.setdefault(piece(p), p.name)
    return {p: _name_split(first[piece(p)]) for p in files}


def decoder_specs(split: str, *, seed: int = 22) -> list:
    """The synthetic decoders of ``split``: every family x stride set, random and trained.

    Train gets every combination; validation and test get fresh seeds of the same grid
    (a decoder instance is never shared between splits). The tiny decoders' trained copies
    run 60 Adam steps; the codec-like ones (:data:`CODEC_SETS`) :data:`CODEC_STEPS`.
    """
    from musicbrain_cli.artifacts.synth import FAMILIES, DecoderSpec

    specs = []
    for family in FAMILIES:
        for strides, rate in STRIDE_SETS:
            for steps in (0, 60):
                specs.append(DecoderSpec(family, strides, rate, steps=steps, channels=16,
                                         seed=_seed(seed, split, family, strides, rate, steps) % (2**31)))
    for family, act, strides, rate, _ in CODEC_SETS:
        for steps in (0, CODEC_STEPS[family]):
            specs.append(DecoderSpec(family, strides, rate, steps=steps, activation=act,
                                     seed=_seed(seed, split, family, act, strides, rate, steps) % (2**31)))
    return specs


SPLITS = ("train", "validation", "test", "test-fresh", "test-final", "test-latest", "test-2026-12",
          "test-2026-12-04")
#: Human-only splits: packages kept out of every decision (see the data card).
HUMAN_ONLY_SPLITS = ("test-fresh", "test-final", "test-latest", "test-2026-12", "test-2026-12-04")
#: Share of clips, human and decoded alike, that also get one copy with human production
#: (:mod:`.production`) before their upload: the same share on both sides, so production is
#: no cue to either class and the classifier must find the decoder's own lines.
PRODUCTION_SHARE = 0.5


def build_corpus(out: Path, *, debian_root: Path, midi_root: Path, seed: int = 22,
                 splits: tuple[str, ...] = SPLITS, decoders: bool = True,
                 log=lambda msg: None) -> list[Item]:
    """Write the corpus of ``splits`` under ``out``; returns the items of every split built so
    far (``out/items.json`` is updated: items of other splits already there are kept).

    ``test-fresh``, ``test-final``, ``test-latest`` and ``test-2026-12`` are human recordings
    only: packages added after the first fit, after the last revision of the fitting
    procedure, with the codec-like decoders and with human production, so that the
    false-accusation rate is also measured on recordings no one looked at while developing.
    With probability :data:`PRODUCTION_SHARE` each clip, human or decoded, also gets one copy
    with a drawn kind of :mod:`production` (item ``production`` names it), from a generator of
    its own, so every other draw is the same as without production. Each trained codec-like decoder's loss
    record (:func:`synth.train_codec`) is written to ``out/<split>/decoders.json``.

    Splits may be built by concurrent processes (``--splits``): each writes its own
    folders, and ``items.json`` is re-read and merged just before it is written.

    ``decoders=False`` writes the human side only (the same clips and uploads, drawn with the
    same seeds: the decoders' draws come after them), e.g. to measure what the human
    calibration covers without the hour the decoders take.
    """
    import torch

    from musicbrain_cli.artifacts.synth import CODEC_FAMILIES, build, decode, train_codec

    from musicbrain_cli.artifacts import production as prod

    torch.set_num_threads(1)
    per_file = {"train": 2, "validation": 3, "test": 3, "test-fresh": 3, "test-final": 3, "test-latest": 3,
                "test-2026-12": 3, "test-2026-12-04": 3}
    renders = {"train": 30, "validation": 10, "test": 10}
    index = out / "items.json"
    items: list[Item] = []
    for split in splits:
        rng = np.random.default_rng(_seed(seed, "transforms", split))
        # Production draws come from their own generator, so every other draw (clips,
        # uploads, decoders) is the same as in a corpus built without production.
        prng = np.random.default_rng(_seed(seed, "production", split))
        names = list(UPLOADS)
        records: dict[str, dict] = {}
        pool: list[tuple[str, str, np.ndarray, int]] = []

        def produced(base: Item, y: np.ndarray, rate: int, stem: Path) -> None:
            """With probability PRODUCTION_SHARE, one more item: ``y`` with an effect, then an upload."""
            if prng.random() >= PRODUCTION_SHARE:
                return
            z, effect, _ = prod.apply(y, rate, prng)
            transform = names[int(prng.integers(len(names)))]
            path = write_upload(stem.with_name(f"{stem.name}__{effect}__{transform}"), z, rate, transform)
            items.append(Item(f"{base.id}/{effect}/{transform}", split, base.label, base.source, base.family,
                              base.decoder, transform, str(path), production=effect))

        for cid, source, y, rate in list(human_clips(debian_root, split, per_file=per_file[split], seed=seed)) + \
                list(render_clips(midi_root, split, count=renders.get(split, 0), seed=seed)):
            pool.append((cid, source, y, rate))
            for transform in sorted({"flac", names[int(rng.integers(len(names)))]}):
                stem = out / split / "human" / f"{cid.replace('/', '__')}__{transform}"
                stem.parent.mkdir(parents=True, exist_ok=True)
                path = write_upload(stem, y, rate, transform)
                items.append(Item(f"{split}/human/{cid}/{transform}", split, 0, source, "human", "", transform, str(path)))
            produced(Item(f"{split}/human/{cid}", split, 0, source, "human", "", "", ""), y, rate,
                     out / split / "human" / cid.replace("/", "__"))
        log(f"{split}: {len(pool)} human clips")
        for spec in decoder_specs(split, seed=seed) if decoders and split not in HUMAN_ONLY_SPLITS else ():
            codec = spec.family in CODEC_FAMILIES
            # Codec-like decoders are few and costly to train: each decodes more clips.
            per_decoder = (8 if split == "train" else 6) if codec else (3 if split == "train" else 2)
            n_fit = 12 if codec and spec.steps else 4
            picks = rng.choice(len(pool), size=min(per_decoder + n_fit, len(pool)), replace=False)
            src = [resample(pool[i][2], pool[i][3], spec.rate) for i in picks]
            if codec:
                model, record = train_codec(spec, src[per_decoder:] or src)  # other clips than it decodes
                if spec.steps:
                    records[spec.name] = record
            else:
                model = build(spec, src[per_decoder:] or src)  # trained on other clips than it decodes
            for i, y in zip(picks[:per_decoder], src[:per_decoder]):
                cid, source = pool[i][0], pool[i][1]
                z = decode(model, y)
                transform = names[int(rng.integers(len(names)))]
                stem = out / split / "ai" / f"{spec.name}__{cid.replace('/', '__')}__{transform}"
                stem.parent.mkdir(parents=True, exist_ok=True)
                path = write_upload(stem, z, spec.rate, transform)
                family = f"{spec.family}_{spec.activation}" if spec.activation else spec.family
                items.append(Item(f"{split}/ai/{spec.name}/{cid}/{transform}", split, 1, source, family,
                                  spec.name, transform, str(path)))
                produced(Item(f"{split}/ai/{spec.name}/{cid}", split, 1, source, family, spec.name, "", ""),
                         z, spec.rate, out / split / "ai" / f"{spec.name}__{cid.replace('/', '__')}")
            log(f"{split}: {spec.name}" + (f" loss {records[spec.name]['loss_first']:.3f} -> "
                                           f"{records[spec.name]['loss_last']:.3f}" if spec.name in records else ""))
        if records:
            (out / split).mkdir(parents=True, exist_ok=True)
            (out / split / "decoders.json").write_text(json.dumps(records, indent=1, sort_keys=True))
        (out / split).mkdir(parents=True, exist_ok=True)
        (out / split / "items.json").write_text(json.dumps([asdict(i) for i in items if i.split == split], indent=0))
    _one_file_per_item(items)
    # Merge with the other splits' items as they are now (another process may have written them).
    kept = [Item(**d) for d in json.loads(index.read_text()) if d["split"] not in splits] if index.is_file() else []
    index.write_text(json.dumps([asdict(i) for i in kept + items], indent=0))
    return kept + items


#: Clips of the held-out production audit (one per file, spread over the split's files).
AUDIT_CLIPS = 36


def build_audit(out: Path, *, debian_root: Path, split: str, clips: int = AUDIT_CLIPS, seed: int = 22,
                log=lambda msg: None) -> list[Item]:
    """The held-out production audit: human clips of ``split`` with every kind of
    :func:`production.audit_settings` at its set levels, each written as FLAC (the effect
    kept whole), plus each clip untouched; items of split ``audit:<split>`` in ``out/items.json``.

    Human recordings only: any P(AI) at or above the operating point is a false accusation.
    """
    from musicbrain_cli.artifacts import production as prod

    pool = list(human_clips(debian_root, split, per_file=1, seed=seed))
    if not pool:
        raise ValueError(f"no human clips in split {split!r} under {debian_root}")
    picks = _evenly(len(pool), clips)
    items: list[Item] = []
    tag = f"audit:{split}"
    for i in picks:
        cid, source, y, rate = pool[int(i)]
        base = out / "audit" / cid.replace("/", "__")
        base.parent.mkdir(parents=True, exist_ok=True)
        path = write_upload(base.with_name(base.name + "__none"), y, rate, "flac")
        items.append(Item(f"{tag}/{cid}/none", tag, 0, source, "human", "", "flac", str(path)))
        for kind, label, settings in prod.audit_settings(rate):
            z = prod.EFFECTS[kind][0](y, rate, **settings)
            path = write_upload(base.with_name(f"{base.name}__{label.replace('/', '-')}"), z, rate, "flac")
            items.append(Item(f"{tag}/{cid}/{label}", tag, 0, source, "human", "", "flac", str(path),
                              production=f"{kind}:{label}"))
        log(f"audit: {cid}")
    _one_file_per_item(items)
    (out / "items.json").write_text(json.dumps([asdict(i) for i in items], indent=0))
    return items


#: The uploads of :func:`build_vocoded`: the vocoder's own rate (lossless), resampled to 44.1 kHz
#: as a producer's session would, and two lossy uploads.
VOCODED_TRANSFORMS = ("flac", "rs44100_flac", "mp3_128", "aac_128")
#: The human splits :func:`build_vocoded` draws from: never used to fit the line.
VOCODED_SPLITS = ("test",) + HUMAN_ONLY_SPLITS


#: The real decoders :func:`build_vocoded` runs: name -> the decoder's name in the items.
REAL_DECODERS = {"hifigan-v1": "hifigan-v1-universal", "lpcnet": "lpcnet-freedv2020"}


def _evenly(n: int, k: int) -> np.ndarray:
    """Indices of ``min(k, n)`` items picked evenly from ``n``, first and last included."""
    return np.unique(np.linspace(0, n - 1, min(k, n)).round().astype(int)) if n else np.zeros(0, int)


def reference_human_clips(corpus: Path, split: str, clips: int) -> list[tuple[str, str, np.ndarray, int]]:
    """``(clip id, "reference-render", y, rate)`` for ``clips`` human clips picked evenly (in
    manifest order) from a reference corpus's ``split`` (``musicbrain data build-reference``:
    rendered scores, read at their own rate): a pool for :func:`build_vocoded` on a machine
    without the Debian recordings. Only the picked clips are decoded."""
    import csv

    from musicbrain_cli.artifacts.spectrum import read_native

    with open(corpus / "manifest.csv", newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["split"] == split and r["source"] == "human"]
    return [(f"reference-{split}/{row['clip_id']}", "reference-render", *read_native(corpus / row["path"]))
            for row in (rows[int(i)] for i in _evenly(len(rows), clips))]


def build_vocoded(out: Path, *, debian_root: Path | None, weights: Path | None = None, decoder: str = "hifigan-v1",
                  clips: int = 30, seed: int = 22, splits: tuple[str, ...] = VOCODED_SPLITS,
                  transforms: tuple[str, ...] = VOCODED_TRANSFORMS, reference: tuple[Path, str] | None = None,
                  log=lambda msg: None) -> list[Item]:
    """Human clips of the held-out ``splits`` re-synthesised by a real, fully trained decoder
    (:mod:`vocoder`: ``hifigan-v1``, HiFi-GAN V1 with ``weights`` from
    ``scripts/fetch_real_vocoder.py``, or ``lpcnet``, FreeDV 2020's LPCNet from the system's
    libcodec2), each written as every upload of ``transforms`` (:data:`UPLOADS`; label 1, split
    ``vocoder:<decoder>``), beside the same clip at the decoder's rate untouched (label 0,
    transform ``flac``), so the two differ only by the decoder. ``clips`` are picked evenly from
    the pool of every split's first clip per file, or, with ``reference=(corpus, split)``, from
    that reference corpus split's human renders (:func:`reference_human_clips`); ``out/items.json``
    lists them."""
    unknown = sorted(set(transforms) - set(UPLOADS))
    if unknown or not transforms:
        raise ValueError(f"unknown uploads {unknown}: choose from {list(UPLOADS)}")
    from musicbrain_cli.artifacts import vocoder as voc

    if decoder == "hifigan-v1":
        if weights is None:
            raise ValueError("hifigan-v1 needs its weights (scripts/fetch_real_vocoder.py)")
        model = voc.load(weights)
        rate = model.config.sample_rate
        resynthesise = lambda x: voc.resynthesise(model, x)  # noqa: E731
    elif decoder == "lpcnet":
        rate, resynthesise = voc.LPCNET_RATE, voc.LPCNetCodec().resynthesise
    else:
        raise ValueError(f"decoder must be one of {sorted(REAL_DECODERS)}, got {decoder!r}")
    if reference is not None:
        pool = reference_human_clips(*reference, clips)
        if not pool:
            raise ValueError(f"no human clips in split {reference[1]!r} of {str(reference[0])!r}")
    else:
        pool = [c for split in splits for c in human_clips(debian_root, split, per_file=1, seed=seed)]
        if not pool:
            raise ValueError(f"no human clips in splits {splits} under {debian_root}")
    picks = _evenly(len(pool), clips)
    tag, name = f"vocoder:{decoder}", REAL_DECODERS[decoder]
    items: list[Item] = []
    for i in picks:
        cid, source, y, native = pool[int(i)]
        x = resample(y, native, rate)
        base = out / "vocoded" / cid.replace("/", "__")
        base.parent.mkdir(parents=True, exist_ok=True)
        path = write_upload(base.with_name(base.name + "__original"), x, rate, "flac")
        items.append(Item(f"{tag}/{cid}/original", tag, 0, source, "human", "", "flac", str(path)))
        z = resynthesise(x)
        for transform in transforms:
            path = write_upload(base.with_name(f"{base.name}__{name}__{transform}"), z, rate, transform)
            items.append(Item(f"{tag}/{cid}/{transform}", tag, 1, source, decoder, name, transform, str(path)))
        log(f"vocoded: {cid}")
    _one_file_per_item(items)
    (out / "items.json").write_text(json.dumps([asdict(i) for i in items], indent=0))
    return items


def _one_file_per_item(items: list[Item]) -> None:
    """Refuse a corpus in which two items were written to one file (the later one overwrote
    the earlier: rows lost without a word, as twice before, see :func:`clip_names` and
    :func:`write_upload`)."""
    seen: dict[str, str] = {}
    for item in items:
        if item.path in seen:
            raise ValueError(f"items {seen[item.path]!r} and {item.id!r} were both written to {item.path}")
        seen[item.path] = item.id


def extract_features(items: list[dict], *, workers: int = 2) -> list[dict]:
    """Each item with ``features`` (or ``na`` with the reason) read back from its file."""
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(_features_of, items, chunksize=8))


def _features_of(item: dict) -> dict:
    from musicbrain_cli.artifacts import spectrum
    from musicbrain_cli.artifacts.detector import analyse_samples, applicability, comb_features

    y, rate = spectrum.read_native(item["path"])
    peak = float(np.max(np.abs(y))) if y.size else 0.0
    a = analyse_samples(y, rate)
    reason = applicability(duration_s=y.size / rate, sample_rate=rate, peak=peak,
                           bandwidth_hz=a.spectrum.bandwidth_hz)
    out = dict(item)
    out["na"] = reason
    out["features"] = [float(v) for v in comb_features(a)]
    out["spacing_hz"] = a.comb.spacing_hz
    out["rate"] = rate
    out["bandwidth_hz"] = float(a.spectrum.bandwidth_hz)
    return out
