"""The training recipe: typed sections, loaded from YAML over the packaged defaults.

A run is configured by ``configs/default.yaml`` (shipped next to this module) with a user's
YAML file merged over it, key by key. Unknown keys are an error (a typo must never silently
fall back to a default), and every value is type-checked here, at the boundary, so the
trainer can trust its config. The *resolved* config (defaults + overrides) is written beside
the run (``config.resolved.yaml`` / ``.json``) and inside every checkpoint.

The dataclass defaults below and ``configs/default.yaml`` hold the same values: the
dataclasses make a config constructible in code (tests, benchmarks), the YAML file documents
the recipe for users. ``tests/test_trainer.py`` checks they agree, so they cannot drift.

Batch arithmetic (derived, checked where defined; nanoGPT's ``train.py`` scales gradient
accumulation the same way)::

    batch_size (global, per optimiser step) = world_size x accumulation_steps x micro_batch

``batch_size`` is the recipe's global batch and stays fixed when the number of processes
changes, so a 1-process and a 2-process run see the same samples per optimiser step.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

from musicbrain_cli.errors import ConfigError

#: The packaged default recipe (found relative to this file, STYLE.md rule 8).
CONFIG_DIR = Path(__file__).resolve().parent / "configs"
DEFAULT_CONFIG = CONFIG_DIR / "default.yaml"
#: A tiny recipe for tests and CPU smoke runs.
TINY_CONFIG = CONFIG_DIR / "tiny.yaml"

PRECISIONS = ("auto", "bf16", "fp16", "fp32")
OPTIMIZERS = ("adam", "adamw")
SCHEDULES = ("plateau", "none")
CALIBRATION_METHODS = ("temperature", "none")


#: The held-out splits whose clips the model card's error rates are measured on
#: (:mod:`.finalize`): never trained on, never used to choose an epoch or a calibration.
HELD_OUT_SPLITS = ("test", "test_xsf")
#: The splits :mod:`.finalize` fits the out-of-domain statistics on and chooses the operating
#: point on; a recipe trains and chooses on the same two (else the card's threshold could be
#: chosen on clips the network trained on).
FIT_SPLIT, CHOOSE_SPLIT = "train", "val"


@dataclass
class OptimConfig:
    """Adam with lr 1e-3: the seed recipe (issue #6)."""

    name: str = "adam"
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    #: Clip the global gradient norm to this value; 0 disables clipping.
    grad_clip_norm: float = 0.0


@dataclass
class ScheduleConfig:
    """ReduceLROnPlateau on the validation loss, factor 0.1, patience 2 (seed recipe).

    ``patience`` is the seed recipe's meaning (and Keras'): the LR is cut to ``factor`` of
    itself at the end of the ``patience``-th consecutive epoch without an improvement larger
    than ``threshold`` (relative): with 2, after two epochs without improvement. torch's
    ``ReduceLROnPlateau`` cuts after ``patience + 1`` such epochs, so the trainer passes it
    ``patience - 1``.
    """

    name: str = "plateau"
    factor: float = 0.1
    patience: int = 2
    threshold: float = 1e-4
    threshold_mode: str = "rel"
    cooldown: int = 0
    min_lr: float = 0.0


@dataclass
class AugmentConfig:
    """Augmentation of the log-power spectrogram (the cached model input), per window.

    Done on the spectrogram, not the waveform, because training reads the precomputed
    feature cache (no waveform at train time). Each effect is expressed in physical units
    (dB) and converted to map units through the front end's ``db_scale``/``db_offset``:

    - gain: a uniform level offset in ``[-gain_db, +gain_db]`` dB (a louder/quieter mix);
    - EQ: a smooth random curve over frequency, ``eq_nodes`` control points with values in
      ``[-eq_db, +eq_db]`` dB, linearly interpolated (a different mic / room / mastering);
    - noise: with probability ``noise_prob``, white-in-the-map noise whose power sits
      ``snr_db`` (uniform in ``noise_snr_db``) below the window's mean power, added in the
      *power* domain (so it fills quiet bins and leaves loud partials alone);
    - pitch shift: with ``pitch_semitones`` > 0, the map is warped along frequency as a
      pitch shift by ``s`` semitones (uniform in ``[-pitch_semitones, +pitch_semitones]``)
      would move it: each bin at frequency ``f`` takes the value at ``f / 2**(s/12)``
      (interpolated between bins; floor where that lies outside the map). Off by default
      (0): the shipped model was trained without it, and a one-semitone shift defeats it;
    - SpecAugment masks (Park et al. 2019, "SpecAugment", Interspeech, section 2):
      ``time_masks`` masks of up to ``time_mask_frac`` of the frames and ``freq_masks``
      masks of up to ``freq_mask_frac`` of the bins, filled with the window's mean value
      (the paper's choice);
    - silence: with probability ``silence_prob``, one stretch of ``silence_s`` seconds
      (uniform in the range) set to the front end's floor, digital silence, at the window's
      start, at its end or anywhere, with equal odds;
    - silence_prob_human: when set, the silence probability of the human class's windows
      (``silence_prob`` stays the other windows'). Drawn into both classes alike, silence
      stays more common in the AI class's windows, as it is in the corpus; drawn more often
      into human windows it stops being a cue of either class. (Session 40's CPU trials, 4
      and 8 epochs from the shipped model, did not unlearn the shipped model's cue; 8
      weakened it a little.)
    - fade: with probability ``fade_prob``, a fade-in or a fade-out (equal odds) over
      ``fade_s`` seconds: the amplitude rising as ``(t / T)**2`` from silence, or falling so.

    - reverb: with probability ``reverb_prob``, a room (session 42: a 2-s hall at 30 % of the
      power called 2 of 196 human validation clips of the medium corpus AI, one of them at
      P(AI) 0.08 dry): each bin's power convolved along time with the energy envelope of a
      room's response, ``10 ** (-6 t / RT60)`` normalised to unit sum (RT60 uniform in
      ``reverb_rt60_s``), and mixed in at ``wet`` of the power (uniform in ``reverb_wet``).
      The late reverberation's power is the dry power spread by that envelope, so this is
      the map a wave convolved with decaying noise gives, less the fine structure the noise
      adds (``tests/test_trainer.py`` holds the two to each other). Frames before the
      window add no tail (the window starts dry), as the robustness edit does to a clip.

    - consistency: with ``consistency_weight`` > 0, each window that drew an edit (fade,
      silence or reverb) is also read without it (the anchor: the same gain, EQ, noise and
      masks), and the loss adds ``consistency_weight`` times the KL divergence from the
      anchor's P(AI) to the edited window's, the anchor's side held fixed (read without
      gradient), in the unit of the BCE: each edited window's KL counts ``consistency_weight``
      times as much as one known label of one window (the loss is their sum over the batch's
      known labels). Per window of the batch instead, a weight of 2 swamped the detection
      label (one of about thirty known labels per window): validation ROC-AUC fell from 0.98
      to 0.88 in two epochs (session 43). An edit that carries no music should not move the
      verdict, and the labels alone teach that only slowly: from the shipped model, four CPU
      epochs with silence or rooms drawn in moved the cue by hundredths (sessions 40 and 42).
      Invariance to a transformation enforced through a consistency term is the device of
      UDA (Xie et al., NeurIPS 2020) and AugMix (Hendrycks et al., ICLR 2020).

    Silence, fades and reverb are off by default (0): the shipped model was trained without them,
    and it had learned both as cues of the AI class (session 39: stretches of digital
    silence of 0.25 s or more lie in 16-20 % of the built-in symbolic generators' windows
    and 4.7 % of the human ones; 0.5 s of silence before 120 human test clips had 2 called
    AI, a 3-s fade-in 3 of 182). Drawn last, and only when on, so other configs keep their
    random streams.

    Every draw comes from a generator seeded by ``(seed, epoch, sample index)``, so a sample
    gets the same augmentation whichever rank or worker loads it, and a resumed run
    replays it exactly.
    """

    enabled: bool = True
    gain_db: float = 6.0
    eq_db: float = 3.0
    eq_nodes: int = 6
    noise_prob: float = 0.3
    noise_snr_db: tuple[float, float] = (10.0, 30.0)
    time_masks: int = 2
    time_mask_frac: float = 0.1
    freq_masks: int = 2
    freq_mask_frac: float = 0.1
    pitch_semitones: float = 0.0
    silence_prob: float = 0.0
    silence_prob_human: float | None = None
    silence_s: tuple[float, float] = (0.25, 2.5)
    fade_prob: float = 0.0
    fade_s: tuple[float, float] = (0.5, 3.0)
    reverb_prob: float = 0.0
    reverb_rt60_s: tuple[float, float] = (0.3, 2.5)
    reverb_wet: tuple[float, float] = (0.05, 0.4)
    consistency_weight: float = 0.0

    def __post_init__(self) -> None:
        for name in ("silence_prob", "fade_prob", "silence_prob_human", "reverb_prob"):
            value = getattr(self, name)
            if value is None and name == "silence_prob_human":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not 0.0 <= float(value) <= 1.0:
                raise ConfigError(f"augment.{name} must lie in [0, 1], got {value!r}")
        for name in ("silence_s", "fade_s", "reverb_rt60_s"):
            lo, hi = (float(v) for v in getattr(self, name))
            if not 0.0 < lo <= hi:
                raise ConfigError(f"augment.{name} must be (low, high) seconds with 0 < low <= "
                                  f"high, got {getattr(self, name)!r}")
            object.__setattr__(self, name, (lo, hi))
        lo, hi = (float(v) for v in self.reverb_wet)
        if not 0.0 <= lo <= hi <= 1.0:
            raise ConfigError(f"augment.reverb_wet must be (low, high) with 0 <= low <= high <= 1, "
                              f"got {self.reverb_wet!r}")
        object.__setattr__(self, "reverb_wet", (lo, hi))
        w = self.consistency_weight
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not 0.0 <= float(w) < math.inf:
            raise ConfigError(f"augment.consistency_weight must be a finite number >= 0, got {w!r}")
        if w > 0 and not (self.silence_prob > 0 or self.fade_prob > 0 or self.reverb_prob > 0
                          or (self.silence_prob_human or 0) > 0):
            raise ConfigError("augment.consistency_weight needs an edit to be drawn (silence_prob, "
                              "silence_prob_human, fade_prob or reverb_prob above 0)")


@dataclass
class TrainLoopConfig:
    epochs: int = 30
    #: Global batch per optimiser step (all ranks, all accumulation steps).
    batch_size: int = 32
    accumulation_steps: int = 1
    num_workers: int = 2
    #: "auto": bf16 on GPUs that support it, fp16 + GradScaler on others (Turing), fp32 on CPU.
    precision: str = "auto"
    #: Also checkpoint every N optimiser steps inside an epoch (0: only at epoch ends).
    checkpoint_every_steps: int = 0
    #: Keep one checkpoint file per epoch besides ``last`` and ``best``.
    keep_epoch_checkpoints: bool = False
    #: Test hook: stop (as if killed) after this many optimiser steps in this process.
    stop_after_steps: int | None = None
    train_split: str = "train"
    val_split: str = "val"
    #: Convert BatchNorm layers to SyncBatchNorm on multi-GPU runs (CUDA only in torch).
    sync_batchnorm: bool = True
    #: Fine-tune: start from this exported model's weights (a model folder or a shipped
    #: model's name) instead of the backbone's initialisation. Its architecture, front end
    #: and taxonomy must equal this run's; optimiser and schedule start fresh.
    init_from: str | None = None
    #: How ``init_from``'s heads meet this run's labels. "same": the taxonomies must be
    #: equal. "by_name": the data set may add labels (a grown corpus: MusicNet's composers,
    #: a new generator): every label both know keeps its head row, a new label starts from
    #: the head's fresh initialisation, and the card lists the new labels; everything else
    #: must still be equal, and a label the exported model had that this run lacks is an
    #: error (its evidence would silently leave the model).
    init_labels: str = "same"
    #: Weight of a training sample's loss by the labels it carries: a sample with a known
    #: positive label listed here counts that many times (the largest weight among its
    #: labels; 1 otherwise), in the loss and in its normaliser. For an AI family that is a
    #: small, hard minority of its class (RhythGen among the built-in generators), so its
    #: errors are not drowned by the easy ones. Validation and the operating point are
    #: unweighted. Names must be labels of the data set.
    label_weights: dict = field(default_factory=dict)
    #: A style group (e.g. "instrumentation") within whose labels human and AI training
    #: windows are made to weigh alike (``objective.balance_table``), so that a style one
    #: side holds far more of (Art Song, keyboard music: RhythGen's) cannot stand in for
    #: the source. None: no balancing. Each window's factor is at most ``balance_cap``.
    balance_by: str | None = None
    balance_cap: float = 5.0


@dataclass
class EvalConfig:
    #: Calibrated probability of the detection label above which a window is called AI.
    operating_threshold: float = 0.5
    calibration: str = "temperature"


@dataclass
class TrainConfig:
    """The whole recipe. ``model`` is passed to ``ModelConfig`` (backbone, se_reduction...)."""

    seed: int = 0
    #: Deterministic kernels (torch.use_deterministic_algorithms); exact resume on CPU.
    deterministic: bool = False
    model: dict = field(default_factory=lambda: {"backbone": "convnext_atto"})
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    train: TrainLoopConfig = field(default_factory=TrainLoopConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def __post_init__(self) -> None:
        _validate(self)

    # --- derived ------------------------------------------------------------------------

    def micro_batch(self, world_size: int) -> int:
        """Samples per rank per forward pass; the division must be exact."""
        per_step = world_size * self.train.accumulation_steps
        if self.train.batch_size % per_step:
            raise ConfigError(
                f"batch_size={self.train.batch_size} is not divisible by world_size x "
                f"accumulation_steps = {world_size} x {self.train.accumulation_steps}"
            )
        return self.train.batch_size // per_step

    # --- serialisation --------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        return json.loads(json.dumps(out))  # tuples -> lists: the YAML/JSON form

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TrainConfig":
        return _build(cls, data, "")

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def _build(cls, data: Any, where: str):
    if not isinstance(data, Mapping):
        raise ConfigError(f"config section {where or '<root>'!r} must be a mapping, not {data!r}")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(
            f"unknown config keys {[f'{where}{k}' for k in unknown]} "
            f"(known in {where or '<root>'!r}: {sorted(known)})"
        )
    kwargs = {}
    for name, value in data.items():
        f = known[name]
        sub = _SECTIONS.get(f.name) if cls is TrainConfig else None
        if sub is not None:
            kwargs[name] = _build(sub, value, f"{name}.")
        else:
            kwargs[name] = _coerce(value, f, f"{where}{name}")
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"malformed config section {where or '<root>'!r}: {exc}") from exc


def _coerce(value: Any, f: dataclasses.Field, key: str) -> Any:
    """Check a leaf value against the field's annotated type (str annotations here)."""
    kind = str(f.type)
    if kind.startswith("tuple"):
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            raise ConfigError(f"config {key} must be a pair of numbers, not {value!r}")
        return tuple(_number(v, key) for v in value)
    if kind == "dict":
        if not isinstance(value, Mapping):
            raise ConfigError(f"config {key} must be a mapping, not {value!r}")
        return dict(value)
    if kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"config {key} must be true or false, not {value!r}")
        return value
    if kind in ("str", "str | None"):
        if value is None and "None" in kind:
            return None
        if not isinstance(value, str) or not value:
            raise ConfigError(f"config {key} must be a non-empty string, not {value!r}")
        return value
    if kind.startswith("int"):
        if value is None and "None" in kind:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"config {key} must be an integer, not {value!r}")
        return value
    if kind in ("float", "float | None"):
        if value is None and "None" in kind:
            return None
        return _number(value, key)
    raise AssertionError(f"unhandled config type {kind} for {key}")  # a bug here, not input


def _number(value: Any, key: str) -> float:
    # YAML 1.1 reads "1e-3" as a string; accept it as a number (a common trap).
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"config {key} must be a finite number, not {value!r}")
    return float(value)


_SECTIONS = {"optim": OptimConfig, "schedule": ScheduleConfig, "augment": AugmentConfig,
             "train": TrainLoopConfig, "eval": EvalConfig}


def _validate(c: TrainConfig) -> None:
    def positive(key: str, value: float) -> None:
        if not value > 0:
            raise ConfigError(f"config {key} must be > 0, not {value!r}")

    def non_negative(key: str, value: float) -> None:
        if value < 0:
            raise ConfigError(f"config {key} must be >= 0, not {value!r}")

    def one_of(key: str, value: str, allowed: tuple[str, ...]) -> None:
        if value not in allowed:
            raise ConfigError(f"config {key}={value!r} is not one of {list(allowed)}")

    # every generator of a run derives from the seed, numpy's from [seed, epoch, index], which
    # refuses a negative entry: a negative seed stopped the run with a traceback in its first
    # batch, after the feature cache was built (review); 2**32 is numpy's legacy seed range
    if not 0 <= c.seed < 2**32:
        raise ConfigError(f"config seed must lie in [0, 2**32), not {c.seed!r}")
    one_of("optim.name", c.optim.name, OPTIMIZERS)
    positive("optim.lr", c.optim.lr)
    positive("optim.eps", c.optim.eps)
    non_negative("optim.weight_decay", c.optim.weight_decay)
    non_negative("optim.grad_clip_norm", c.optim.grad_clip_norm)
    if not all(0 <= b < 1 for b in c.optim.betas):
        raise ConfigError(f"config optim.betas must lie in [0, 1), not {c.optim.betas!r}")
    one_of("schedule.name", c.schedule.name, SCHEDULES)
    if not 0 < c.schedule.factor < 1:
        raise ConfigError(f"config schedule.factor must lie in (0, 1), not {c.schedule.factor!r}")
    if c.schedule.patience < 1:
        raise ConfigError(f"schedule.patience must be >= 1, not {c.schedule.patience!r}")
    non_negative("schedule.threshold", c.schedule.threshold)
    one_of("schedule.threshold_mode", c.schedule.threshold_mode, ("rel", "abs"))
    non_negative("schedule.cooldown", c.schedule.cooldown)
    non_negative("schedule.min_lr", c.schedule.min_lr)
    a = c.augment
    for key in ("gain_db", "eq_db", "time_mask_frac", "freq_mask_frac", "time_masks",
                "freq_masks", "noise_prob", "pitch_semitones"):
        non_negative(f"augment.{key}", getattr(a, key))
    if a.noise_prob > 1 or a.time_mask_frac > 1 or a.freq_mask_frac > 1:
        raise ConfigError(
            f"config augment probabilities/fractions must be <= 1: noise_prob={a.noise_prob}, "
            f"time_mask_frac={a.time_mask_frac}, freq_mask_frac={a.freq_mask_frac}"
        )
    if a.eq_nodes < 2:
        raise ConfigError(f"config augment.eq_nodes must be >= 2, not {a.eq_nodes!r}")
    if a.noise_snr_db[0] > a.noise_snr_db[1]:
        raise ConfigError(f"config augment.noise_snr_db must be (low, high), not {a.noise_snr_db!r}")
    t = c.train
    for key in ("epochs", "batch_size", "accumulation_steps"):
        positive(f"train.{key}", getattr(t, key))
    # the part of micro_batch's arithmetic no number of processes can mend, checked with the
    # recipe: it was first refused at launch, as a failed run (exit 1) that left its folder
    if t.batch_size % t.accumulation_steps:
        raise ConfigError(f"config train.batch_size={t.batch_size} is not divisible by "
                          f"train.accumulation_steps={t.accumulation_steps}")
    non_negative("train.num_workers", t.num_workers)
    non_negative("train.checkpoint_every_steps", t.checkpoint_every_steps)
    one_of("train.precision", t.precision, PRECISIONS)
    one_of("train.init_labels", t.init_labels, ("same", "by_name"))
    if not isinstance(t.label_weights, dict):
        raise ConfigError(f"train.label_weights must be a mapping label -> weight, "
                          f"not {t.label_weights!r}")
    for label, weight in t.label_weights.items():
        if (not isinstance(label, str) or isinstance(weight, bool)
                or not isinstance(weight, (int, float)) or not 0 < weight <= 100):
            raise ConfigError(f"train.label_weights[{label!r}] must be a number in (0, 100], "
                              f"not {weight!r}")
    if t.balance_by is not None and t.balance_by not in ("period", "composer", "instrumentation"):
        raise ConfigError(f"train.balance_by must be a style group (period, composer, "
                          f"instrumentation) or null, not {t.balance_by!r}")
    if isinstance(t.balance_cap, bool) or not isinstance(t.balance_cap, (int, float)) \
            or not 1 <= t.balance_cap <= 100:
        raise ConfigError(f"train.balance_cap must be a number in [1, 100], not {t.balance_cap!r}")
    if t.stop_after_steps is not None:
        positive("train.stop_after_steps", t.stop_after_steps)
    if t.train_split == t.val_split:
        raise ConfigError(f"train.train_split and train.val_split are both {t.val_split!r}")
    if (t.train_split, t.val_split) != (FIT_SPLIT, CHOOSE_SPLIT) and not any(
            getattr(t, name) in HELD_OUT_SPLITS for name in ("train_split", "val_split")):
        raise ConfigError(
            f"train.train_split is {t.train_split!r} and train.val_split {t.val_split!r}: "
            f"finalize fits the model's out-of-domain statistics on {FIT_SPLIT!r} and chooses "
            f"its operating point on {CHOOSE_SPLIT!r}, so a recipe trains on {FIT_SPLIT!r} and "
            f"chooses its epoch and calibration on {CHOOSE_SPLIT!r} (else the card's threshold "
            "could be chosen on clips the network trained on)")
    for name in ("train_split", "val_split"):
        if getattr(t, name) in HELD_OUT_SPLITS:
            raise ConfigError(
                f"train.{name} is {getattr(t, name)!r}: that split holds the clips the model "
                "card's error rates are measured on; fitting on it or choosing the best epoch and "
                "the calibration on it would make those rates optimistic")
    if not 0 < c.eval.operating_threshold < 1:
        raise ConfigError(
            f"config eval.operating_threshold must lie in (0, 1), not {c.eval.operating_threshold!r}"
        )
    one_of("eval.calibration", c.eval.calibration, CALIBRATION_METHODS)
    if not isinstance(c.model, dict) or "backbone" not in c.model:
        raise ConfigError(f"config model must be a mapping with a 'backbone', not {c.model!r}")
    _check_model_section(c.model)


def _check_model_section(model: dict) -> None:
    """The ``model`` section as :class:`~musicbrain_cli.model.config.ModelConfig` reads it
    (its taxonomy is the data set's). Checked with the rest of the recipe: the trainer first
    read it after building the feature cache (minutes to hours), so a mistyped key stopped
    the run there, as a failed operation (exit 1) in a run folder it had made (review)."""
    from musicbrain_cli.model.config import ModelConfig

    if "taxonomy" in model:
        raise ConfigError("config model.taxonomy comes from the data set, not the training config")
    try:
        ModelConfig.from_dict(model)
    except ConfigError as exc:
        raise ConfigError(f"config model: {exc}") from exc


# --- loading ------------------------------------------------------------------------------


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` over ``base``, recursively for mappings; neither input is modified."""
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping) and key != "model":
            out[key] = deep_merge(out[key], value)
        elif isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            # model: merged too, so "model: {se_reduction: 8}" keeps the default backbone.
            out[key] = {**out[key], **value}
        else:
            out[key] = copy.deepcopy(value)
    return out


def read_yaml(path: str | Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read config {str(path)!r}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"config {str(path)!r} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config {str(path)!r} must hold a mapping, not {type(data).__name__}")
    return data


def load_config(path: str | Path | None = None, *,
                overrides: Mapping[str, Any] | None = None) -> TrainConfig:
    """The packaged default recipe, with ``path``'s YAML and then ``overrides`` merged over it."""
    data = read_yaml(DEFAULT_CONFIG)
    if path is not None:
        data = deep_merge(data, read_yaml(path))
    if overrides:
        data = deep_merge(data, overrides)
    return TrainConfig.from_dict(data)
