"""Build the reference corpus: human scores vs machine-made music, rendered alike.

    build_reference("data/reference", size="small", seed=0)

Classes (manifest ``source`` / ``generator``):

- ``human`` / ``-``: windows of scores by real composers (:mod:`.scores`).
- ``ai`` / ``symbolic-small`` and ``symbolic-large``: pieces sampled from the two shipped
  transformer generators (:mod:`.symbolic`), conditioned on period, composer and
  instrumentation, with NotaGen's sampling defaults. Labelled with their conditioning.
- ``ai`` / ``neural-codec``: human renderings re-synthesised by the shipped neural
  autoencoder (:mod:`.codec`). Labelled with their source work's style labels and kept in
  their source work's split.

Every clip goes through the same path: note events -> :func:`.tokens.events_to_midi` ->
:func:`musicbrain_cli.data.render.render_midi` with a humanisation drawn from the same
distribution, cropped or padded to exactly ``clip_s`` seconds.

Splits are by work. Works the generators learned from are always ``train`` (so nothing in
an evaluation split was seen by a generator); the rest are cut into val / test /
``test_xsf`` by :func:`musicbrain_cli.data.dataset.assign_splits`. One SoundFont
(:data:`HELD_OUT_SOUNDFONT`) renders ``test_xsf`` and nothing else.

Every random choice is drawn from a generator seeded by ``(seed, clip id)``, so the same
seed gives the same manifest and the same audio bytes, in any order and after a resume.
"""

from __future__ import annotations

import hashlib
import math
import json
import re
import time
import warnings
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from musicbrain_cli.errors import DatasetError, MusicBrainWarning, RenderError, TrainingError
from musicbrain_cli.progress import NULL_PROGRESS, Progress
from musicbrain_cli.taxonomy import Taxonomy
from musicbrain_cli.data.reference import scores as sc
from musicbrain_cli.data.reference.tokens import (EOS, PREFIX_LEN, Vocabulary,
                                                      condition_tokens, decode_events,
                                                      encode_events, events_to_midi, window)

#: Where the shipped generator weights live (package data).
ASSETS_DIR = Path(__file__).parent / "assets"
SYMBOLIC_GENERATORS = ("symbolic-small", "symbolic-large")
CODEC_GENERATOR = "neural-codec"
GENERATOR_LABELS = SYMBOLIC_GENERATORS + (CODEC_GENERATOR,)
#: Rendered only in the cross-renderer test split: the font whose samples differ most from
#: the other two (MuseScore's, an .sf3 of other recordings than FluidR3 / TimGM6mb).
HELD_OUT_SOUNDFONT = "musescore_general_lite"
XSF_SPLIT = "test_xsf"
#: Share of works per split. Works the generators learned from are pinned to train first.
SPLIT_FRACTIONS = {"train": 0.75, "val": 0.1, "test": 0.1, XSF_SPLIT: 0.05}
#: The split seed the shipped generators' training set was drawn with.
GENERATOR_SPLIT_SEED = 0
SAMPLE_RATE = 22050
#: Corpus files per collection the shipped generators learned from (a capped subset keeps
#: training to minutes on two cores; works outside it are never pinned to train).
GENERATOR_TRAIN_FILES = 40


@dataclass(frozen=True)
class SizeSpec:
    """How much to build. ``collections``: names from :data:`.scores.COLLECTIONS` (None:
    all); ``files_per_collection``: corpus files read per collection (None: all, within
    each collection's caps); ``windows_per_piece``: most clips cut from one human piece;
    ``symbolic_per_generator``: pieces sampled per symbolic generator; ``codec_share``:
    share of human clips also re-synthesised by the codec; ``works_per_collection``: most
    pieces kept per collection (an ABC book holds hundreds); ``arrangements_per_genre``:
    human-style popular arrangements per genre of :mod:`.arrangements` (outlier
    exposure); ``musicnet_per_composer``: MusicNet pieces per composer when a MusicNet tree
    is given (None: all), spread over each composer's pieces; ``rhythgen_per_config``:
    RhythGen pieces per training configuration when a RhythGen tree is given (None: all;
    :func:`.rhythgen.select`), each cut into up to ``rhythgen_windows`` clips;
    ``rhythgen_balance``: at most this many RhythGen training and validation clips per human
    clip of the same instrumentation (:func:`balance_rhythgen`; None: no cap);
    ``human_styles_per_source``: scores per human-style source (OpenScore Lieder, a labelled
    score folder; :mod:`.humanstyles`) when one is given (None: all), spread over each
    source's scores."""

    name: str
    clip_s: float
    collections: tuple[str, ...] | None
    files_per_collection: int | None
    windows_per_piece: int
    symbolic_per_generator: int
    works_per_collection: int | None
    codec_share: float
    sample_batch: int = 16
    arrangements_per_genre: int = 0
    musicnet_per_composer: int | None = 0
    rhythgen_per_config: int | None = 0
    rhythgen_windows: int = 1
    rhythgen_balance: float | None = None
    human_styles_per_source: int | None = 0


SIZES: dict[str, SizeSpec] = {
    # tiny: for the determinism test (built twice); three collections, 4 s clips
    "tiny": SizeSpec("tiny", 4.0, ("bach", "chopin", "ryans-mammoth"), 1, 1, 2, 1, 0.5,
                     sample_batch=4, arrangements_per_genre=1, musicnet_per_composer=2,
                     human_styles_per_source=2),
    # small: every collection once (so every label is populated), 10 s clips
    "small": SizeSpec("small", 10.0, None, 1, 1, 12, 2, 0.4, sample_batch=12,
                      arrangements_per_genre=2, musicnet_per_composer=1, rhythgen_per_config=1,
                      human_styles_per_source=4),
    # medium: about 1,000 clips per class (~6 h) from the score subset the generators were
    # trained on (its parse cache is warm after generator training); builds in well under an
    # hour on two cores, for a CPU-trained model when the full build does not fit the time
    "medium": SizeSpec("medium", 12.0, None, 40, 2, 300, None, 0.4, sample_batch=32,
                       arrangements_per_genre=60, musicnet_per_composer=12,
                       rhythgen_per_config=40, rhythgen_balance=1.0,
                       human_styles_per_source=150),
    # full: the default model's training set (>= 2,000 clips per class, >= 10 h)
    "full": SizeSpec("full", 12.0, None, None, 4, 850, None, 0.25, sample_batch=32,
                     arrangements_per_genre=110, musicnet_per_composer=None,
                     rhythgen_per_config=150, rhythgen_windows=2, rhythgen_balance=1.0,
                     human_styles_per_source=None),
}


# --- labels -------------------------------------------------------------------------------


def reference_taxonomy(collections: Sequence[sc.Collection] = sc.COLLECTIONS, *,
                       extra_composers: Sequence[str] = (),
                       extra_generators: Sequence[str] = ()) -> Taxonomy:
    """The taxonomy of the reference corpus: source, generator, period, composer,
    instrumentation, all exclusive (one work has one period, composer and
    instrumentation label; see docs/reference-corpus.md). ``extra_composers`` (MusicNet's)
    are appended after the collections' own, so a build without them keeps its order;
    ``extra_generators`` (RhythGen's) likewise after the built-in generators."""
    values = sc.label_values(collections)
    values["composer"] += [c for c in extra_composers if c not in values["composer"]]
    return Taxonomy.from_groups([
        ("source", ("human", "ai"), True),
        ("generator", GENERATOR_LABELS + tuple(g for g in extra_generators
                                               if g not in GENERATOR_LABELS), True),
        ("period", values["period"], True),
        ("composer", values["composer"], True),
        ("instrumentation", values["instrumentation"], True),
    ])


def _rng(seed: int, *key: object) -> np.random.Generator:
    """A generator seeded by SHA-256 of (seed, key): independent of build order."""
    digest = hashlib.sha256(json.dumps([seed, *key], ensure_ascii=False).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def _slug(text: str) -> str:
    """A clip-id-safe, collision-free rendering of a corpus id."""
    base = re.sub(r"[^A-Za-z0-9._+-]+", "_", text.removeprefix("m21:")).strip("._-")[:80]
    return f"{base}-{hashlib.sha256(text.encode()).hexdigest()[:6]}"


# --- generator training -------------------------------------------------------------------


def generator_training_split(works: Sequence[sc.Work]) -> dict[str, str]:
    """The split of the corpus the generators are trained on (fixed seed)."""
    from musicbrain_cli.data.dataset import assign_splits

    return assign_splits([w.work_id for w in works], fractions=SPLIT_FRACTIONS,
                         seed=GENERATOR_SPLIT_SEED)


def _sequences(works: Sequence[sc.Work], vocab: Vocabulary) -> list[np.ndarray]:
    return [np.asarray(condition_tokens(vocab, period=w.period, composer=w.composer,
                                        instrumentation=w.instrumentation)
                       + encode_events(w.events, vocab) + [vocab.id(EOS)], dtype=np.int64)
            for w in works]


def train_generators(*, assets_dir: Path = ASSETS_DIR, cache_dir: Path | None = None,
                     steps: int = 300, codec_steps: int = 250, seed: int = 0,
                     collections: Sequence[sc.Collection] = sc.COLLECTIONS,
                     files_per_collection: int | None = GENERATOR_TRAIN_FILES,
                     progress: Progress = NULL_PROGRESS) -> dict:
    """Train the two symbolic generators and the codec; write them to ``assets_dir``.

    Training data: the works :func:`generator_training_split` puts in ``train``. The codec
    learns from renderings of those works with every SoundFont but the held-out one.
    Returns ``{name: curve}``.
    """
    import torch

    from musicbrain_cli.data.reference import codec as cd
    from musicbrain_cli.data.reference import symbolic as sy

    torch.manual_seed(seed)
    works = list(sc.iter_corpus(collections, files_per_collection=files_per_collection,
                                cache_dir=cache_dir, progress=progress))
    split = generator_training_split(works)
    train = [w for w in works if split[w.work_id] == "train"]
    val = [w for w in works if split[w.work_id] == "val"]
    if not train:
        raise TrainingError("no training works for the generators")
    vocab = Vocabulary.build({k: v for k, v in sc.label_values(collections).items()})
    train_seqs, val_seqs = _sequences(train, vocab), _sequences(val, vocab)
    curves = {}
    meta_common = {"training_works": sorted({w.work_id for w in train}),
                   "split_seed": GENERATOR_SPLIT_SEED, "split_fractions": SPLIT_FRACTIONS,
                   "extraction_version": sc.EXTRACTION_VERSION, "seed": seed,
                   "produced_by": "musicbrain data build-reference --retrain-generators"}
    for name in SYMBOLIC_GENERATORS:
        cfg = sy.GPTConfig(vocab_size=len(vocab), **sy.GENERATORS[name])
        settings = sy.TrainSettings(steps=steps, seed=seed)
        model, curve = sy.train_generator(train_seqs, val_seqs, cfg, settings=settings,
                                          progress=progress)
        sy.save_generator(model, vocab, assets_dir, name,
                          meta={**meta_common, "training": asdict(settings),
                                "curve": curve, "sampling": {"top_k": sy.TOP_K,
                                                             "top_p": sy.TOP_P,
                                                             "temperature": sy.TEMPERATURE}})
        curves[name] = curve

    # codec: render a few seconds of many training works, with the training fonts only
    from musicbrain_cli.data.render import Humanize, render_midi

    fonts = [f for f in _soundfonts() if f.name != HELD_OUT_SOUNDFONT]
    audio: list[np.ndarray] = []
    pick = train[:: max(1, len(train) // 60)][:60]
    with progress.task("rendering codec training audio", total=len(pick)) as task:
        for i, w in enumerate(pick):
            ticks = int(6.0 * w.qpm / 60 * sc.TICKS_PER_QUARTER)
            ev = window(w.events, 0, ticks)
            if ev:
                midi = events_to_midi(ev, qpm=w.qpm, instrumentation=w.instrumentation)
                try:
                    audio.append(render_midi(midi, fonts[i % len(fonts)],
                                             sample_rate=SAMPLE_RATE,
                                             humanize=Humanize(reverb=0.2), seed=i))
                except RenderError:
                    pass  # a codec training excerpt less; the corpus build reports its own
            task.advance()
    n_val = max(1, len(audio) // 10)
    ccfg = cd.CodecConfig(sample_rate=SAMPLE_RATE, channels=16)
    csettings = cd.CodecTrainSettings(steps=codec_steps, seed=seed)
    torch.manual_seed(seed)
    codec, curve = cd.train_codec(audio[n_val:], audio[:n_val], ccfg, settings=csettings,
                                  progress=progress)
    cd.save_codec(codec, assets_dir, CODEC_GENERATOR,
                  meta={**meta_common, "training": asdict(csettings), "curve": curve,
                        "training_excerpts": len(audio) - n_val,
                        "soundfonts": [f.name for f in fonts]})
    curves[CODEC_GENERATOR] = curve
    return curves


def _soundfonts():
    from musicbrain_cli.data.render import available_soundfonts

    fonts = available_soundfonts()
    if len(fonts) < 2:
        raise RenderError(f"the reference corpus needs two SoundFonts or more (one is held "
                          f"out), found {[f.name for f in fonts]}")
    return fonts


# --- the build ----------------------------------------------------------------------------


@dataclass
class _Clip:
    clip_id: str
    source: str
    generator: str
    period: str
    composer: str
    instrumentation: str
    work_id: str
    split: str
    origin: str
    events: list
    qpm: float
    held_out: bool  # rendered with the held-out SoundFont (the cross-renderer split)
    midi: object = None  # a ready PrettyMIDI (arrangements); else built from ``events``


def _fit(y: np.ndarray, n: int) -> np.ndarray:
    """Crop or zero-pad to exactly ``n`` samples."""
    return y[:n] if len(y) >= n else np.pad(y, (0, n - len(y)))


def _split_works(work_ids: Sequence[str], pinned: set[str], seed: int) -> dict[str, str]:
    """Pinned works -> train; the rest by :func:`assign_splits` on the remaining shares."""
    from musicbrain_cli.data.dataset import assign_splits

    ids = sorted(set(work_ids))
    out = {w: "train" for w in ids if w in pinned}
    rest = [w for w in ids if w not in pinned]
    if rest:
        share_pinned = len(out) / len(ids)
        fractions = dict(SPLIT_FRACTIONS)
        fractions["train"] = max(0.0, fractions["train"] - share_pinned)
        out.update(assign_splits(rest, fractions=fractions, seed=seed))
    return out


def _xsf_split_name() -> str:
    from musicbrain_cli.data import dataset as ds

    if XSF_SPLIT in ds.SPLITS:
        return XSF_SPLIT
    # the writer of this checkout knows no such split: keep the held-out renderer in test
    # (still identifiable by the renderer column) rather than fail the build
    warnings.warn(f"the data set writer has no {XSF_SPLIT!r} split; cross-renderer clips "
                  "go to 'test' (select them by renderer)", MusicBrainWarning, stacklevel=3)
    return "test"


def plan_human(works: Sequence[sc.Work], spec: SizeSpec, splits: dict[str, str],
               xsf: str = XSF_SPLIT) -> tuple[list[_Clip], list[tuple[str, str]]]:
    """The human clips: up to ``windows_per_piece`` non-overlapping windows per piece, the
    first at the piece's start (generated pieces start at their start too)."""
    clips, skipped = [], []
    for w in works:
        need = int(round(spec.clip_s * w.qpm / 60.0 * sc.TICKS_PER_QUARTER))
        length = w.length_ticks
        if length < need:
            skipped.append((w.piece_id, f"shorter than a clip ({length} < {need} ticks)"))
            continue
        k = min(spec.windows_per_piece, length // need)
        starts = [0] if k == 1 else [round(j * (length - need) / (k - 1)) for j in range(k)]
        onsets = sorted({e[0] for e in w.events})
        for j, start in enumerate(starts):
            start = min(onsets, key=lambda o: abs(o - start))  # begin on a note
            ev = window(w.events, start, need)
            if not ev:
                continue
            where = (f"music21:{w.piece_id.removeprefix('m21:')}"
                     if w.piece_id.startswith("m21:") else w.piece_id)   # musicnet:<file>
            clips.append(_Clip(f"human-{_slug(w.piece_id)}-w{j}", "human", "-", w.period,
                               w.composer, w.instrumentation, w.work_id, splits[w.work_id],
                               f"{where}#tick={start}",
                               ev, w.qpm, held_out=splits[w.work_id] == XSF_SPLIT))
    for c in clips:
        c.split = xsf if c.split == XSF_SPLIT else c.split
    return clips, skipped


def plan_arrangements(spec: SizeSpec, seed: int, xsf: str = XSF_SPLIT) -> list[_Clip]:
    """The popular-idiom human clips (:mod:`.arrangements`): each piece is its own work,
    split by work with the corpus's shares; labels other than source are unknown."""
    from musicbrain_cli.data.reference import arrangements as ar

    pieces = [(g, i) for g in ar.GENRES for i in range(spec.arrangements_per_genre)]
    if not pieces:
        return []
    ids = {(g, i): f"arrangement-{g}-{i:04d}" for g, i in pieces}
    splits = _split_works(sorted(ids.values()), set(), seed)
    clips = []
    for (genre, i), work in ids.items():
        key = int.from_bytes(hashlib.sha256(f"{seed}:{work}".encode()).digest()[:8], "big")
        midi, qpm = ar.arrange(genre, key, spec.clip_s + 2.0)
        split = splits[work]
        clips.append(_Clip(f"human-{work}", "human", "-", "", "", "", work,
                           xsf if split == XSF_SPLIT else split, f"arrangement:{genre}#{i}",
                           [], qpm, held_out=split == XSF_SPLIT, midi=midi))
    return clips


def _arrangement_genres() -> list[str]:
    from musicbrain_cli.data.reference import arrangements as ar

    return list(ar.GENRES)


def _conditions(works: Sequence[sc.Work], pinned: set[str]) -> list[tuple[str, str, str, list]]:
    """Distinct (period, composer, instrumentation) of the build's works, with their tempi.
    Taken from generator-training works when there are any (conditioning never needs an
    evaluation work), else from all works."""
    pool = [w for w in works if w.work_id in pinned] or list(works)
    combos: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for w in pool:
        combos[(w.period, w.composer, w.instrumentation)].append(w.qpm)
    return [(*k, v) for k, v in sorted(combos.items())]


def _merge_conditions(*lists: list) -> list[tuple[str, str, str, list]]:
    """Union of :func:`_conditions` lists: one entry per label combination, tempi pooled."""
    combos: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for conditions in lists:
        for period, composer, instr, tempi in conditions:
            combos[(period, composer, instr)] += list(tempi)
    return [(*k, v) for k, v in sorted(combos.items())]


def plan_symbolic(name: str, model, vocab: Vocabulary, conditions: list, spec: SizeSpec,
                  seed: int, progress: Progress) -> tuple[list[_Clip], list[tuple[str, str]]]:
    """Sample ``spec.symbolic_per_generator`` pieces from one generator, in batches.

    Conditions cycle over the distinct label combinations (so rare styles are generated
    as often as common ones); the tempo is one of a human work's with those labels.
    """
    import torch

    from musicbrain_cli.data.dataset import assign_splits

    token_ticks = torch.tensor([int(t.split("=")[1]) if t.startswith("shift=") else 0
                                for t in vocab.tokens], dtype=torch.long)
    ids = [f"{name}-{i:05d}" for i in range(spec.symbolic_per_generator)]
    splits = assign_splits([f"{name}/{i}" for i in range(len(ids))],
                           fractions=SPLIT_FRACTIONS, seed=seed)
    xsf = _xsf_split_name()
    clips, skipped = [], []
    with progress.task(f"sampling {name}", total=len(ids)) as task:
        for b in range(0, len(ids), spec.sample_batch):
            batch = ids[b:b + spec.sample_batch]
            rows, qpms = [], []
            for i, cid in enumerate(batch, start=b):
                period, composer, instr, tempi = conditions[i % len(conditions)]
                rng = _rng(seed, cid, "condition")
                qpms.append(float(tempi[int(rng.integers(0, len(tempi)))]))
                rows.append((period, composer, instr))
            # the batch's tick budget: the longest clip in it (slow tempi need more ticks)
            need = [int(round(spec.clip_s * q / 60.0 * sc.TICKS_PER_QUARTER)) for q in qpms]
            prefixes = torch.tensor([condition_tokens(vocab, period=p, composer=c,
                                                      instrumentation=n)
                                     for p, c, n in rows], dtype=torch.long)
            gen = torch.Generator().manual_seed(
                int.from_bytes(hashlib.sha256(f"{seed}/{batch[0]}".encode()).digest()[:8],
                               "little") >> 1)
            out = _sample(model, prefixes, vocab, token_ticks, max(need), gen)
            for i, cid in enumerate(batch):
                ev = window(decode_events(out[i, PREFIX_LEN:].tolist(), vocab), 0, need[i])
                span = max((e[0] + e[3] for e in ev), default=0)
                work = f"{name}/{b + i}"
                if span < 0.75 * need[i]:
                    skipped.append((cid, f"generated music too short ({span} of {need[i]} "
                                         "ticks)"))
                else:
                    period, composer, instr = rows[i]
                    split = splits[work] if splits[work] != XSF_SPLIT else xsf
                    clips.append(_Clip(cid, "ai", name, period, composer, instr, work,
                                       split, f"{name}:sample/{b + i}", ev, qpms[i],
                                       held_out=splits[work] == XSF_SPLIT))
                task.advance()
    return clips, skipped


def _sample(model, prefixes, vocab: Vocabulary, token_ticks, need: int, gen):
    from musicbrain_cli.data.reference import symbolic as sy

    # token cap: a note is 3 tokens; four-part textures average ~1 token per tick, so
    # twice that leaves room, and a piece that is still short is skipped, not padded
    return sy.sample(model, prefixes, max_new_tokens=min(2000, 40 + 2 * need),
                     generator=gen, stop_ids=[vocab.id(EOS)], token_ticks=token_ticks,
                     until_ticks=need)


def _humanize(rng: np.random.Generator):
    from musicbrain_cli.data.render import Humanize

    return Humanize(tempo_jitter=0.04, timing_jitter_s=float(rng.uniform(0.0, 0.015)),
                    velocity_jitter=float(rng.uniform(4.0, 12.0)),
                    reverb=float(rng.uniform(0.0, 0.5)))


def _render_draws(seed: int, clip_id: str, *, held_out: bool, n_fonts: int):
    """The draws that decide how a clip is rendered, in the build's order: ``(rng,
    font_index, humanize, render_seed)``; ``font_index`` is None for a held-out clip (its
    font is fixed, nothing is drawn). The build and :func:`played_midi` both call this, so
    the replay cannot drift from the build; ``rng`` is returned for the draws that follow."""
    rng = _rng(seed, clip_id)
    font_index = None if held_out else int(rng.integers(0, n_fonts))
    humanize = _humanize(rng)
    render_seed = int(rng.integers(0, 2**31 - 1))
    return rng, font_index, humanize, render_seed


#: The corpus summary :func:`build_reference` writes; its presence marks a reference corpus.
REFERENCE_JSON = "reference.json"


def played_midi(root: str | Path, row: dict[str, str], *, reference: dict | None = None):
    """The notes as played in a reference corpus clip: its stored score after the build's
    seeded humanisation (a ``pretty_midi.PrettyMIDI``), or ``None`` when ``root`` is not a
    reference corpus (no ``reference.json``: nothing recorded to replay) or the clip has no
    score.

    ``scores/<clip>.mid`` is the MIDI *before* humanisation; :func:`build_reference`
    rendered it after a tempo stretch (up to +/- 4 %) and per-note timing jitter (up to
    15 ms sd), drawn from ``_rng(seed, clip id)`` (:func:`_render_draws`). This replays the
    same draws from the corpus's recorded ``seed`` and the clip's id through
    :func:`musicbrain_cli.data.render.humanize_midi`, so onsets land where the audio has
    them (measured: the stored score alone has onset F 0.33 against the notes played,
    docs/evaluation/notes.md). A neural-codec clip resynthesises its human clip, so it
    replays that clip's draws (its ``origin``). ``reference``: the parsed
    ``reference.json`` (read from ``root`` when None). Notes of a MIDI written and read
    back keep their times to the file's tick (a millisecond or less).

    Raises :class:`DatasetError` when the replay's SoundFont is not the manifest's
    ``renderer`` (the build's draws have changed since the corpus was built: the replayed
    timing would be wrong) or ``reference.json`` lacks the recorded parameters.
    """
    import pretty_midi

    root = Path(root)
    if not row.get("score_path"):
        return None
    if reference is None:
        path = root / REFERENCE_JSON
        if not path.is_file():
            return None
        try:
            reference = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise DatasetError(f"cannot read {str(path)!r}: {exc}") from exc
    missing = [k for k in ("seed", "training_soundfonts", "held_out_soundfont")
               if k not in reference]
    if missing:
        raise DatasetError(f"{str(root / REFERENCE_JSON)!r} lacks {missing}: cannot replay the "
                           "build's humanisation")
    rendered_id = row["clip_id"]
    if row.get("generator") == CODEC_GENERATOR:
        rendered_id = row["origin"].split(":", 1)[1]
    fonts = list(reference["training_soundfonts"])
    # the held-out font is never among the training fonts, so the renderer says which
    held_out = row["renderer"] == reference["held_out_soundfont"]
    _, font_index, humanize, render_seed = _render_draws(
        int(reference["seed"]), rendered_id, held_out=held_out, n_fonts=len(fonts))
    font = reference["held_out_soundfont"] if font_index is None else fonts[font_index]
    if font != row["renderer"]:
        raise DatasetError(f"replaying clip {row['clip_id']!r} drew SoundFont {font!r}, the "
                           f"manifest says {row['renderer']!r}: the build's draws have changed")
    from musicbrain_cli.data.render import humanize_midi

    path = root / row["score_path"]
    try:
        score = pretty_midi.PrettyMIDI(str(path))
    except Exception as exc:  # pretty_midi/mido raise many types for a bad file
        raise DatasetError(f"cannot read score {str(path)!r}: {exc}") from exc
    return humanize_midi(score, humanize, seed=render_seed)


def _musicnet_works(root, spec: SizeSpec, pinned: set[str], progress: Progress,
                    timings: dict[str, float]) -> tuple[list[sc.Work], list[tuple[str, str]]]:
    """The MusicNet works of this build (none without ``root``) and the pieces left out."""
    if root is None:
        return [], []
    from musicbrain_cli.data.reference import musicnet as mnr

    t = time.perf_counter()
    failures: list[tuple[str, str]] = []
    works = mnr.musicnet_works(root, per_composer=spec.musicnet_per_composer,
                               known_works=mnr.known_music21_works() | pinned,
                               failures=failures, progress=progress)
    timings["read_musicnet_s"] = time.perf_counter() - t
    return works, failures


def _musicnet_summary(root, works: Sequence[sc.Work], failures, rows, vocab) -> dict:
    """What the build report says about MusicNet: used or not, how much, what is missing."""
    from musicbrain_cli.data.reference import musicnet as mnr

    if root is None:
        return {"used": False}
    composers = mnr.composers_of(works)
    human = [r for r in rows if r["origin"].startswith("musicnet:")]
    return {
        "used": True, "root": str(root), "pieces": len(works),
        "works": len({w.work_id for w in works}), "human_clips": len(human),
        "clips_by_composer": {c: sum(r["composer"] == c for r in human) for c in composers},
        "left_out": len(failures),
        # the shipped generators never learned these composers: they are conditioned as
        # "composer=?" (period and instrumentation still conditioned) and labelled with the
        # composer asked for; retraining the generators with MusicNet would remove this
        "composers_unknown_to_generators": [c for c in composers
                                            if f"composer={c}" not in vocab],
        "credit": mnr.CREDIT,
    }


def _human_style_works(sources: Sequence, spec: SizeSpec, out: Path, jobs: int | None,
                       progress: Progress, timings: dict[str, float]
                       ) -> tuple[list[sc.Work], list[tuple[str, str]], dict]:
    """The human-style works of this build (none without ``sources``), the scores left out
    and what the build report says of them (:func:`.humanstyles.human_style_works`)."""
    if not sources or spec.human_styles_per_source == 0:
        return [], [], {"used": False, "sources": [str(s) for s in sources]}
    from musicbrain_cli.data.reference import humanstyles as hs

    t = time.perf_counter()
    failures: list[tuple[str, str]] = []
    works, info = hs.human_style_works(sources, out / hs.MIDI_CACHE,
                                       per_source=spec.human_styles_per_source, jobs=jobs,
                                       failures=failures, progress=progress)
    timings["read_human_styles_s"] = time.perf_counter() - t
    return works, failures, {"used": True, **info}


def _human_style_summary(info: dict, works: Sequence[sc.Work], rows) -> dict:
    """The build report's account of the human-style sources: per source, the scores that
    gave at least one clip (the others were left out: listed in ``build_report.json``), and
    in all the human clips written, by instrumentation and composer label."""
    if not info.get("used"):
        return info
    pieces = {w.piece_id for w in works}
    human = [r for r in rows if r["source"] == "human"
             and r["origin"].rsplit("#", 1)[0] in pieces]
    with_clips = {r["origin"].rsplit("#", 1)[0] for r in human}
    sources = []
    for src in info["sources"]:
        src = dict(src)
        ids = set(src.pop("piece_ids", ()))
        src["scores_in_corpus"] = len(ids & with_clips)
        src["scores_without_clips"] = len(ids - with_clips)     # shorter than a clip
        sources.append(src)

    def by(key: str) -> dict[str, int]:
        return dict(sorted(Counter(r[key] or "(unknown)" for r in human).items()))

    return {**info, "sources": sources, "works": len({w.work_id for w in works}),
            "human_clips": len(human), "clips_by_instrumentation": by("instrumentation"),
            "clips_by_composer": by("composer")}


def _rhythgen_clips(root, spec: SizeSpec, seed: int, out: Path, jobs: int | None, xsf: str,
                    progress: Progress, timings: dict[str, float]) -> tuple[list[_Clip], dict]:
    """The RhythGen clips of this build (none without ``root``) and what to report of them:
    ``splits`` (work -> split) and ``failures`` are taken out by the caller."""
    if root is None or spec.rhythgen_per_config == 0:
        return [], {"used": False, "root": str(root) if root else None}
    from musicbrain_cli.data.reference import rhythgen as rg

    t = time.perf_counter()
    unwalked: list[tuple[str, str]] = []
    pieces = rg.discover_pieces(root, skipped=unwalked)
    splits = _split_works(sorted({p.work_id for p in pieces}), set(), seed)
    chosen = rg.select(pieces, {w: (xsf if s == XSF_SPLIT else s) for w, s in splits.items()},
                       per_config=spec.rhythgen_per_config)
    midis, failures = rg.parse_all(chosen, out / rg.MIDI_CACHE, jobs=jobs, progress=progress)
    clips, short = [], []
    for p in chosen:
        midi = midis.get(p.rel)
        if midi is None:
            continue
        starts = rg.window_starts(midi, clip_s=spec.clip_s, windows=spec.rhythgen_windows)
        if not starts:
            short.append((p.rel, f"shorter than a clip ({spec.clip_s:g} s)"))
        split = splits[p.work_id]
        for j, start in enumerate(starts):
            clips.append(_Clip(rg.clip_id(p, j), "ai", p.generator,
                               p.period, p.composer, p.instrumentation, p.work_id,
                               xsf if split == XSF_SPLIT else split,
                               f"rhythgen:{p.rel}#t={start:.3f}", [], 120.0,
                               held_out=split == XSF_SPLIT,
                               midi=rg.midi_window(midi, start, spec.clip_s)))
    timings["read_rhythgen_s"] = time.perf_counter() - t
    return clips, {"used": True, "root": str(root), "credit": rg.CREDIT,
                   "held_out_configs": sorted(rg.HELD_OUT_CONFIGS),
                   "pieces_found": len(pieces), "pieces_selected": len(chosen),
                   "pieces_failed": len(failures), "pieces_too_short": len(short),
                   "splits": {p.work_id: splits[p.work_id] for p in chosen},
                   "failures": failures + short + unwalked}


def balance_rhythgen(rg_clips: Sequence[_Clip], human: Sequence[_Clip], ratio: float | None,
                     seed: int) -> tuple[list[_Clip], dict]:
    """RhythGen's training and validation clips capped, per instrumentation, at ``ratio``
    times the human training and validation clips of that instrumentation.

    Why: RhythGen writes Lieder and ragtime piano, which the human side holds little of (one
    Joplin rag, a few dozen Lieder); uncapped, "Art Song" and "Keyboard" become shortcuts for
    "AI", and human songs and piano music are accused (docs/evaluation/enlarged-finetune.md).
    Test clips are never dropped: they measure recall on held-out configurations. Which
    clips stay is a seeded draw per instrumentation (stable across reruns). Returns the kept
    clips and, per instrumentation, the human count, the cap and the clips kept and dropped.
    """
    if ratio is None:
        return list(rg_clips), {}
    fit = ("train", "val")
    n_human: dict[str, int] = defaultdict(int)
    for c in human:
        if c.split in fit:
            n_human[c.instrumentation] += 1
    by_inst: dict[str, list[_Clip]] = defaultdict(list)
    for c in rg_clips:
        if c.split in fit:
            by_inst[c.instrumentation].append(c)
    keep: set[str] = set()
    report: dict = {}
    for inst, clips in sorted(by_inst.items()):
        cap = int(math.ceil(ratio * n_human.get(inst, 0)))
        order = sorted(clips, key=lambda c: hashlib.sha256(
            f"{seed}:{c.clip_id}".encode()).hexdigest())
        keep.update(c.clip_id for c in order[:cap])
        report[inst or "(unknown)"] = {"human": n_human.get(inst, 0), "cap": cap,
                                       "kept": min(cap, len(clips)),
                                       "dropped": max(0, len(clips) - cap)}
    kept = [c for c in rg_clips if c.split not in fit or c.clip_id in keep]
    return kept, {"ratio": ratio, "splits": list(fit), "by_instrumentation": report}


def _rhythgen_counts(rows: Sequence[dict]) -> dict:
    """RhythGen clips written, per configuration and split (from the clip ids)."""
    from musicbrain_cli.data.reference.rhythgen import config_of

    per: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in rows:
        config = config_of(r["clip_id"])
        if config is not None:
            per[config][r["split"]] += 1
    return {"clips": sum(sum(v.values()) for v in per.values()),
            "clips_per_config": {c: dict(v) for c, v in sorted(per.items())}}


def build_reference(out: str | Path, *, size: str = "small", seed: int = 0,
                    retrain_generators: bool = False, assets_dir: str | Path = ASSETS_DIR,
                    cache_dir: str | Path | None = None,
                    musicnet: str | Path | None = None,
                    rhythgen: str | Path | None = None,
                    human_styles: Sequence[str | Path] = (), jobs: int | None = None,
                    progress: Progress = NULL_PROGRESS) -> dict:
    """Build (or resume) the reference corpus in ``out``; returns a summary dict.

    A rerun into the same folder skips finished clips (the writer's journal). Generators
    are loaded from ``assets_dir``; ``retrain_generators`` retrains them there first.
    ``musicnet``: a MusicNet tree whose score MIDIs join the human side
    (:mod:`.musicnet`; the size's ``musicnet_per_composer`` pieces per composer) and
    whose label combinations join the generators' conditions; None: music21's corpus only.
    ``rhythgen``: a RhythGen output tree whose pieces join the AI side (:mod:`.rhythgen`;
    the size's ``rhythgen_per_config`` pieces per configuration), parsed ``jobs`` at a time
    (default: the CPU count); None: the built-in generators only.
    ``human_styles``: OpenScore Lieder trees and labelled score folders whose scores join
    the human side (:mod:`.humanstyles`; the size's ``human_styles_per_source`` each),
    parsed ``jobs`` at a time; empty: none.
    Raises :class:`DatasetError` for an unknown size, :class:`ModelLoadError` when the
    generator weights are missing or altered.
    """
    import torch

    from musicbrain_cli.data.dataset import ClipRecord, DatasetWriter
    from musicbrain_cli.data.reference import codec as cd
    from musicbrain_cli.data.reference import symbolic as sy
    from musicbrain_cli.data.render import render_midi

    if size not in SIZES:
        raise DatasetError(f"unknown corpus size {size!r} (sizes: {sorted(SIZES)})")
    spec = SIZES[size]
    assets_dir = Path(assets_dir)
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    if retrain_generators:
        train_generators(assets_dir=assets_dir, cache_dir=cache_dir, seed=seed,
                         progress=progress)
        timings["train_generators_s"] = time.perf_counter() - t0

    collections = [c for c in sc.COLLECTIONS
                   if spec.collections is None or c.name in spec.collections]
    sc.check_collections(collections)
    failures: list[tuple[str, str]] = []
    t = time.perf_counter()
    works = list(sc.iter_corpus(collections, files_per_collection=spec.files_per_collection,
                                cache_dir=cache_dir, progress=progress, failures=failures))
    if spec.works_per_collection is not None:
        per: dict[str, int] = defaultdict(int)
        kept = []
        for w in works:
            per[w.collection] += 1
            if per[w.collection] <= spec.works_per_collection:
                kept.append(w)
        works = kept
    timings["read_scores_s"] = time.perf_counter() - t
    if not works:
        raise DatasetError(f"no works read for size {size!r} (failures: {failures[:5]})")

    generators = {n: sy.load_generator(assets_dir, n) for n in SYMBOLIC_GENERATORS}
    codec, codec_cfg = cd.load_codec(assets_dir, CODEC_GENERATOR)
    pinned = set(generators[SYMBOLIC_GENERATORS[0]][2]["training_works"])
    splits = _split_works([w.work_id for w in works], pinned, seed)
    xsf = _xsf_split_name()
    mn_works, mn_failures = _musicnet_works(musicnet, spec, pinned, progress, timings)
    failures += mn_failures
    # MusicNet works are split among themselves, so adding MusicNet never moves a music21
    # work; one that music21 also holds took its id and so its split (pinned: train)
    splits.update(_split_works([w.work_id for w in mn_works if w.work_id not in splits],
                               pinned, seed))

    out = Path(out)
    hs_works, hs_failures, hs_info = _human_style_works(list(human_styles), spec, out, jobs,
                                                        progress, timings)
    failures += hs_failures
    # split among themselves, as MusicNet's: adding them never moves another work
    splits.update(_split_works(sorted({w.work_id for w in hs_works} - set(splits)),
                               pinned, seed))
    rg_clips, rg_info = _rhythgen_clips(rhythgen, spec, seed, out, jobs, xsf, progress,
                                        timings)
    failures += rg_info.pop("failures", [])
    splits.update(rg_info.pop("splits", {}))

    fonts = _soundfonts()
    held_out = next((f for f in fonts if f.name == HELD_OUT_SOUNDFONT), fonts[-1])
    train_fonts = [f for f in fonts if f != held_out]
    human, skipped = plan_human(works + mn_works + hs_works, spec, splits, xsf)
    human += plan_arrangements(spec, seed, xsf)
    rg_clips, rg_balance = balance_rhythgen(rg_clips, human, spec.rhythgen_balance, seed)
    if rg_info.get("used"):
        rg_info["balance"] = rg_balance
    t = time.perf_counter()
    torch.manual_seed(seed)
    conditions = _conditions(works, pinned)
    if mn_works:
        # the generators write music for MusicNet's composers and ensembles too, so neither
        # label tells the sources apart (issue 21 item 4). Combinations come from every
        # MusicNet work selected (labels and a tempo, no notes of any work reach the
        # generators); composers the shipped vocabulary lacks condition as "composer=?"
        conditions = _merge_conditions(conditions, _conditions(mn_works, set()))
    if hs_works:
        # likewise for the human styles: Art Song for their composers, so neither the style
        # nor the composer is a shortcut for the source
        conditions = _merge_conditions(conditions, _conditions(hs_works, set()))
    symbolic: list[_Clip] = []
    from musicbrain_cli.data.reference import musicnet as mnr

    taxonomy = reference_taxonomy(sc.COLLECTIONS,
                                  extra_composers=mnr.composers_of(mn_works + hs_works),
                                  extra_generators=sorted({c.generator for c in rg_clips}))
    sample_rate = SAMPLE_RATE
    n = int(round(spec.clip_s * sample_rate))

    with DatasetWriter(out, taxonomy, sample_rate=sample_rate,
                       name=f"musicbrain-reference-{size}") as writer:
        for name, (model, vocab, _) in generators.items():
            todo = [i for i in range(spec.symbolic_per_generator)
                    if not writer.has(f"{name}-{i:05d}")]
            if todo:  # sampling is batched and seeded per batch: redo whole batches
                clips, skips = plan_symbolic(name, model, vocab, conditions, spec, seed,
                                             progress)
                symbolic += [c for c in clips if not writer.has(c.clip_id)]
                skipped += skips
        timings["sample_s"] = time.perf_counter() - t

        t = time.perf_counter()
        plan = human + symbolic + rg_clips
        with progress.task(f"rendering {size} reference corpus", total=len(plan)) as task:
            for clip in plan:
                codec_id = f"codec-{clip.clip_id.removeprefix('human-')}"
                rng, font_index, humanize, render_seed = _render_draws(
                    seed, clip.clip_id, held_out=clip.held_out, n_fonts=len(train_fonts))
                font = held_out if font_index is None else train_fonts[font_index]
                use_codec = clip.source == "human" and rng.random() < spec.codec_share
                if writer.has(clip.clip_id) and (not use_codec or writer.has(codec_id)):
                    task.advance()
                    continue
                rotate = int(rng.integers(0, 4)) if clip.instrumentation == "Melody" else 0
                midi = clip.midi if clip.midi is not None else events_to_midi(
                    clip.events, qpm=clip.qpm, instrumentation=clip.instrumentation,
                    rotate=rotate)
                try:
                    y = _fit(render_midi(midi, font, sample_rate=sample_rate,
                                         humanize=humanize, seed=render_seed), n)
                except RenderError as exc:
                    writer.skip(clip.clip_id, str(exc))
                    task.advance()
                    continue
                record = dict(source=clip.source, period=clip.period, composer=clip.composer,
                              instrumentation=clip.instrumentation, work_id=clip.work_id,
                              renderer=font.name, split=clip.split, score=midi)
                if not writer.has(clip.clip_id):
                    writer.add(ClipRecord(clip.clip_id, generator=clip.generator,
                                          origin=clip.origin, **record), y)
                if use_codec and not writer.has(codec_id):
                    writer.add(ClipRecord(codec_id, generator=CODEC_GENERATOR,
                                          origin=f"{CODEC_GENERATOR}:{clip.clip_id}",
                                          **{**record, "source": "ai"}),
                               _fit(cd.resynthesize(codec, y), n))
                task.advance()
        timings["render_s"] = time.perf_counter() - t
        for item, reason in skipped + failures:
            writer.skip(item, reason)
        rows = writer.rows

    summary = {
        "size": size, "seed": seed, "clip_s": spec.clip_s, "sample_rate": sample_rate,
        "clips": len(rows),
        "clips_by_source": {s: sum(r["source"] == s for r in rows) for s in ("human", "ai")},
        "hours": round(sum(float(r["duration_s"]) for r in rows) / 3600, 3),
        "held_out_soundfont": held_out.name, "cross_renderer_split": xsf,
        "training_soundfonts": [f.name for f in train_fonts],
        "generators": {n: {"weights_sha256": g[2]["weights_sha256"]}
                       for n, g in generators.items()}
        | {CODEC_GENERATOR: {"weights_sha256": codec_cfg["weights_sha256"]}},
        "works": len({w.work_id for w in works + mn_works + hs_works}),
        "skipped": len(skipped) + len(failures),
        "arrangements": {g: sum(r["origin"].startswith(f"arrangement:{g}#") for r in rows)
                         for g in _arrangement_genres()},
        "musicnet": _musicnet_summary(musicnet, mn_works, mn_failures, rows,
                                      generators[SYMBOLIC_GENERATORS[0]][1]),
        "rhythgen": rg_info | _rhythgen_counts(rows),
        "human_styles": _human_style_summary(hs_info, hs_works, rows),
        "seconds": {k: round(v, 2) for k, v in timings.items()}
        | {"total": round(time.perf_counter() - t0, 2)},
    }
    (out / REFERENCE_JSON).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary
