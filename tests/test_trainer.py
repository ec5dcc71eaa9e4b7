"""The trainer: recipe/config, loss, schedule, augmentation, state I/O, exact resume, outputs.

Runs use a tiny setting (32 x 64 spectrograms, 16 training windows, batch 4, 2 epochs) so
the module stays fast on a 2-core machine.
"""

import csv
import json
import math

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from musicbrain_cli.errors import ConfigError, InputError, TrainingError
from musicbrain_cli.training import trainer as T
from musicbrain_cli.training.augment import room_map
from musicbrain_cli.training.config import (TINY_CONFIG, AugmentConfig, ScheduleConfig,
                                            TrainConfig, load_config)

TIMING = {"epoch_time_s", "train_samples_per_s"}


def tiny(**train) -> TrainConfig:
    return load_config(TINY_CONFIG, overrides={"train": {"checkpoint_every_steps": 2, **train}})


def model_tensors(run_dir):
    state = load_file(str(run_dir / "checkpoints" / "last.safetensors"))
    return {k: v for k, v in state.items() if k.startswith("model.")}


def history(run_dir):
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


@pytest.fixture(scope="module")
def ref_run(tmp_path_factory):
    """One uninterrupted 1-process run (model dropout on: exercises the RNG restore)."""
    out = tmp_path_factory.mktemp("ref") / "run"
    summary = T.train(T.SyntheticSource(), out, config=tiny(), device="cpu")
    return out, summary


# --- config -------------------------------------------------------------------------------


def test_default_yaml_equals_dataclass_defaults():
    assert load_config().to_dict() == TrainConfig().to_dict()


def test_seed_recipe_is_the_default():
    c = load_config()
    assert (c.optim.name, c.optim.lr) == ("adam", 1e-3)
    assert (c.schedule.name, c.schedule.factor, c.schedule.patience) == ("plateau", 0.1, 2)


@pytest.mark.parametrize("override,needle", [
    ({"optim": {"lrr": 1}}, "optim.lrr"),
    ({"optim": {"lr": -1}}, "optim.lr"),
    ({"train": {"precision": "fp8"}}, "fp8"),
    ({"train": {"epochs": 1.5}}, "train.epochs"),
    ({"schedule": {"factor": 1.0}}, "schedule.factor"),
    ({"train": {"label_weights": {"source/ai": 0}}}, "train.label_weights"),
    ({"train": {"label_weights": ["source/ai"]}}, "train.label_weights"),
    ({"train": {"balance_by": "source"}}, "train.balance_by"),
    ({"train": {"balance_by": "instrumentation", "balance_cap": 0.5}}, "train.balance_cap"),
    # the card's error rates are measured on the test splits: never chosen or fitted on
    ({"train": {"val_split": "test"}}, "train.val_split is 'test'"),
    ({"train": {"train_split": "test_xsf"}}, "train.train_split is 'test_xsf'"),
    # numpy's generators, seeded with [seed, epoch, index], refuse a negative seed: the run
    # stopped with a traceback in its first batch, after the feature cache (review)
    ({"seed": -1}, "seed"),
    # indivisible on any number of processes: refused at launch, exit 1, a folder left (review)
    ({"train": {"batch_size": 10, "accumulation_steps": 3}}, "train.batch_size=10"),
])
def test_bad_config_names_the_key(override, needle):
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
        load_config(overrides=override)


@pytest.mark.parametrize("model,needle", [
    ({"backbone": "convnext_atto", "se_reducton": 8}, "se_reducton"),
    ({"backbone": None}, "backbone"),
    ({"backbone": "convnext_atto", "front_end": {"n_fft": -5}}, "n_fft"),
    ({"backbone": "convnext_atto", "taxonomy": {}}, "model.taxonomy"),
])
def test_the_model_section_is_checked_with_the_recipe(model, needle):
    """Review of training/config.py: the model section was only read by the trainer after
    the feature cache was built (minutes to hours), so a mistyped key stopped `train` there,
    exit 1, in the run folder it had made, where any other key of the recipe is refused at
    once (exit 2)."""
    with pytest.raises(ConfigError, match=needle):
        load_config(overrides={"model": model})


def test_user_yaml_merges_over_defaults(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("optim:\n  lr: 3e-4\nmodel:\n  se_reduction: 8\n")
    c = load_config(path)
    assert c.optim.lr == 3e-4 and c.optim.betas == (0.9, 0.999)
    assert c.model == {"backbone": "convnext_atto", "se_reduction": 8}


def test_global_batch_must_divide():
    c = load_config(overrides={"train": {"batch_size": 6, "accumulation_steps": 2}})
    assert c.micro_batch(1) == 3
    with pytest.raises(ConfigError, match="batch_size=6"):
        c.micro_batch(2)


# --- loss and schedule --------------------------------------------------------------------


def test_label_weights_count_a_sample_by_its_heaviest_known_positive_label():
    targets = torch.tensor([[1, 0, 1], [1, 0, 0], [0, 1, 1], [0, 1, 1]]).float()
    mask = torch.tensor([[1, 1, 1], [1, 1, 1], [1, 1, 1], [1, 1, 0]]).float()
    weights = torch.tensor([1.0, 2.0, 5.0])
    m = T.sample_weighted_mask(targets, mask, weights)
    # row 0 carries label 2 (x5); row 1 none; row 2 labels 1 and 2 (x5 wins); row 3's
    # label 2 is unknown there, so only label 1 (x2) counts, and the unknown cell stays 0
    assert m.tolist() == [[5, 5, 5], [1, 1, 1], [5, 5, 5], [2, 2, 0]]
    assert T.sample_weighted_mask(targets, mask, None) is mask
    logits = torch.randn(4, 3)
    per_cell = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets,
                                                                    reduction="none")
    assert T.masked_bce_sum(logits, targets, m).item() == pytest.approx(
        (per_cell * m).sum().item())


def test_label_weights_change_training_and_must_name_data_set_labels(ref_run, tmp_path):
    with pytest.raises(ConfigError, match="generator/nope"):
        T.train(T.SyntheticSource(), tmp_path / "bad",
                config=tiny(label_weights={"generator/nope": 3}), device="cpu")
    out = tmp_path / "weighted"
    T.train(T.SyntheticSource(), out, config=tiny(label_weights={"source/ai": 4}), device="cpu")
    ref, _ = ref_run
    same = [torch.equal(v, model_tensors(ref)[k]) for k, v in model_tensors(out).items()]
    assert not all(same)    # the same seed and data, only the weights differ


def test_balance_weighs_human_and_ai_alike_within_each_style():
    """Columns: source/human, source/ai, inst/Keyboard, inst/Song. Keyboard: 1 human, 3 AI;
    Song: AI only (nothing to balance against); the last row's instrumentation is unknown."""
    targets = torch.tensor([[1, 0, 1, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 1, 1, 0],
                            [0, 1, 0, 1], [1, 0, 0, 0]]).float()
    mask = torch.ones_like(targets)
    mask[5, 2:] = 0
    group = slice(2, 4)
    table = T.balance_table(targets.numpy(), mask.numpy(), group, 1, cap=5.0)
    assert table.tolist() == [[2.0, pytest.approx(2 / 3)], [1.0, 1.0]]
    f = T.balance_factor(targets, mask, table, group, 1)[:, 0]
    assert f.tolist() == pytest.approx([2.0, 2 / 3, 2 / 3, 2 / 3, 1.0, 1.0])
    # within Keyboard the one human window now weighs what the three AI windows weigh
    assert f[0].item() == pytest.approx(f[1:4].sum().item())
    capped = T.balance_table(targets.numpy(), mask.numpy(), group, 1, cap=1.5)
    assert capped[0, 0].item() == 1.5


def test_balance_changes_training_and_must_name_a_data_set_group(ref_run, tmp_path):
    with pytest.raises(ConfigError, match="'instrumentation' is not a group"):
        T.train(T.SyntheticSource(), tmp_path / "bad",
                config=tiny(balance_by="instrumentation"), device="cpu")
    out = tmp_path / "balanced"
    T.train(T.SyntheticSource(), out, config=tiny(balance_by="period", balance_cap=100),
            device="cpu")
    ref, _ = ref_run
    same = [torch.equal(v, model_tensors(ref)[k]) for k, v in model_tensors(out).items()]
    assert not all(same)


def test_masked_loss_ignores_unknown_labels():
    torch.manual_seed(0)
    logits = torch.randn(3, 4, requires_grad=True)
    targets = torch.randint(0, 2, (3, 4)).float()
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0]]).float()
    loss = T.masked_bce_sum(logits, targets, mask)
    loss.backward()
    assert (logits.grad[mask == 0] == 0).all() and (logits.grad[mask == 1] != 0).all()
    expected = torch.nn.functional.binary_cross_entropy_with_logits(
        logits[mask == 1], targets[mask == 1], reduction="sum")
    assert loss.item() == pytest.approx(expected.item())


def test_plateau_schedule_steps_exactly_as_specified():
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([param], lr=1e-3)
    sched = T.PlateauSchedule(opt, ScheduleConfig())   # factor 0.1, patience 2
    losses = [1.0, 0.9, 0.9, 0.95, 0.9, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8]
    lrs = [sched.step(v) for v in losses]
    # "Cut to 10% after two epochs without improvement": bad epochs after the 0.9 at
    # index 1 are 2, 3 -> cut at index 3; 4 is bad again, 5 improves (0.8); then 6, 7 ->
    # cut at 7; 8, 9 -> cut at 9; 10, 11 -> cut at 11.
    expected = [1e-3] * 3 + [1e-4] * 4 + [1e-5] * 2 + [1e-6] * 2 + [1e-7]
    np.testing.assert_allclose(lrs, expected, rtol=1e-9)
    state = sched.state_dict()
    again = T.PlateauSchedule(torch.optim.Adam([param], lr=lrs[-1]), ScheduleConfig())
    again.load_state_dict(T._json_restore(json.loads(T.dumps(state))))   # via strict JSON
    assert [again.step(0.8) for _ in range(4)] == [sched.step(0.8) for _ in range(4)]


def test_schedule_refuses_a_diverged_loss():
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))])
    with pytest.raises(TrainingError, match="nan"):
        T.PlateauSchedule(opt, ScheduleConfig()).step(float("nan"))


# --- augmentation -------------------------------------------------------------------------


def _augmenter(**kw):
    src = T.SyntheticSource(n_train=4)
    return T.AugmentedWindows(src.open("train"), AugmentConfig(**kw), src.front_end(), seed=5)


def test_augmentation_is_keyed_by_seed_epoch_and_index():
    aug = _augmenter(noise_prob=1.0)
    aug.set_epoch(1)
    a, b = aug[2][0], aug[2][0]
    assert torch.equal(a, b)                      # same (seed, epoch, index): same draw
    assert not torch.equal(a, aug[3][0])
    aug.set_epoch(2)
    assert not torch.equal(a, aug[2][0])          # a new epoch draws anew
    assert not torch.equal(a, aug.base[2][0])     # and the base item is left untouched
    assert float(a.min()) >= aug.floor - 1e-6


def test_gain_is_a_level_offset_in_db():
    aug = _augmenter(eq_db=0, noise_prob=0, time_masks=0, freq_masks=0, gain_db=10)
    x, _, _ = aug[0]
    delta = (x - aug.base[0][0])[x > aug.floor + 1e-3]
    assert delta.std() < 1e-5                     # one offset everywhere above the floor
    assert abs(float(delta.mean())) * aug.db_scale <= 10 + 1e-4


def test_pitch_warp_moves_a_partial_by_the_shifted_frequency():
    from musicbrain_cli.features import FrontEndConfig, bin_frequencies

    hz = bin_frequencies(FrontEndConfig())
    x = torch.full((1, len(hz), 4), -1.0)
    k = int(np.argmin(np.abs(hz - 1000.0)))
    x[0, k] = 0.5                                   # one partial near 1 kHz
    up = T.pitch_warp(x, hz, 12.0, -1.0)            # an octave up: to ~2 kHz
    peak = int(up[0, :, 0].argmax())
    assert abs(hz[peak] / hz[k] - 2.0) < 0.05
    assert torch.equal(T.pitch_warp(x, hz, 0.0, -1.0), x)
    down = T.pitch_warp(x, hz, -12.0, -1.0)         # the top octave has no source: floor
    assert float(down[0, -1].max()) == -1.0
    # the augmentation uses it only when asked, and then needs the bin frequencies
    aug = _augmenter(eq_db=0, noise_prob=0, time_masks=0, freq_masks=0, gain_db=0,
                     pitch_semitones=1.0)
    assert aug.bin_hz is not None and not torch.equal(aug[0][0], aug.base[0][0])
    plain = _augmenter(noise_prob=1.0)
    assert plain.bin_hz is None
    with pytest.raises(ValueError, match="bin_hz"):
        T.augment(x, AugmentConfig(pitch_semitones=1.0), np.random.default_rng(0),
                  db_scale=50.0, db_offset=100.0, floor=-1.0)


def test_disabled_augmentation_is_the_identity():
    aug = _augmenter(enabled=False)
    assert torch.equal(aug[1][0], aug.base[1][0])


_PLAIN = dict(eq_db=0, noise_prob=0, time_masks=0, freq_masks=0, gain_db=0)


def test_silence_augmentation_writes_digital_silence_of_the_drawn_length():
    """Session 39: the shipped model learned digital silence as a cue of the AI class (the
    built-in generators' windows hold it 3-4 times as often as the human ones); silence is
    drawn into training windows so that it stops being one."""
    aug = _augmenter(silence_prob=1.0, silence_s=(0.1, 0.2), **_PLAIN)
    assert aug.frame_s == pytest.approx(100 / 6400)            # the front end's hop
    lo, hi = round(0.1 / aug.frame_s), round(0.2 / aug.frame_s)
    places = set()
    for i in range(len(aug)):
        for epoch in range(6):
            aug.set_epoch(epoch)
            x, base = aug[i][0], aug.base[i][0]
            silent = (x == aug.floor).all(dim=1)[0] & ~(base == aug.floor).all(dim=1)[0]
            frames = torch.nonzero(silent).flatten()
            assert lo <= len(frames) <= hi
            assert int(frames[-1] - frames[0]) + 1 == len(frames)     # one stretch
            changed = (x != base).any(dim=1)[0]
            assert not bool((changed & ~silent).any())               # nothing else moves
            places.add("start" if frames[0] == 0 else "end" if frames[-1] == x.shape[-1] - 1
                       else "inside")
    assert places == {"start", "end", "inside"}


def test_fade_augmentation_ramps_the_level_from_silence_at_one_edge():
    aug = _augmenter(fade_prob=1.0, fade_s=(0.5, 0.5), **_PLAIN)
    k = round(0.5 / aug.frame_s)                                # frames of the fade
    seen = set()
    for epoch in range(8):
        aug.set_epoch(epoch)
        x, base = aug[0][0], aug.base[0][0]
        delta = (x - base)[0] * aug.db_scale                        # [F, T] dB
        n = x.shape[-1]
        fade_in = float(delta[:, 0].abs().max()) > 0
        seen.add("in" if fade_in else "out")
        ramp_part = delta[:, :k] if fade_in else delta[:, n - k:].flip(1)
        other = delta[:, k:] if fade_in else delta[:, :n - k]
        assert float(other.abs().max()) == 0.0               # nothing outside the fade moves
        # amplitude (t / T)^2 at each frame's centre: 40 log10(t / T) dB, unless the floor
        # clamps it (a bin already near silence)
        t = (torch.arange(k, dtype=torch.float64) + 0.5) / k
        want = (40 * torch.log10(t)).float()[None, :].expand_as(ramp_part)
        xs = (x[0, :, :k] if fade_in else x[0, :, n - k:].flip(1))
        free = xs > aug.floor
        assert bool(free.any())
        assert torch.allclose(ramp_part[free], want[free], atol=1e-3)
        assert float(want[0, 0]) < -30 and float(want[0, -1]) > -0.5
    assert seen == {"in", "out"}


def _silent_stretch(aug, i):
    x, base = aug[i][0], aug.base[i][0]
    return bool(((x == aug.floor).all(dim=1)[0] & ~(base == aug.floor).all(dim=1)[0]).any())


def test_silence_can_be_drawn_more_often_into_human_windows():
    """Drawn into both classes alike (0.2 each), silence kept its cue in a CPU trial
    (session 40): the corpus's AI windows still held it more often. A human-class rate of
    its own lets training cancel the imbalance."""
    kw = dict(silence_s=(0.1, 0.2), **_PLAIN)
    src = T.SyntheticSource(n_train=24)
    data = src.open("train")
    det = src.taxonomy().index("source/ai")
    aug = T.AugmentedWindows(data, AugmentConfig(silence_prob=0.0, silence_prob_human=1.0, **kw),
                             src.front_end(), seed=5, detection_index=det)
    human = [float(data[i][1][det]) == 0.0 for i in range(len(data))]
    assert 0 < sum(human) < len(human)
    for epoch in range(3):
        aug.set_epoch(epoch)
        assert [_silent_stretch(aug, i) for i in range(len(data))] == human
    # the other way round, and the plain rate for both when no human rate is given
    flipped = T.AugmentedWindows(data, AugmentConfig(silence_prob=1.0, silence_prob_human=0.0,
                                                     **kw), src.front_end(), seed=5,
                                 detection_index=det)
    assert [_silent_stretch(flipped, i) for i in range(len(data))] == [not h for h in human]
    both = T.AugmentedWindows(data, AugmentConfig(silence_prob=1.0, **kw), src.front_end(), seed=5,
                              detection_index=det)
    assert all(_silent_stretch(both, i) for i in range(len(data)))
    # a window whose source is unknown (masked) is not taken for a human one
    x, y, m = data[0]
    masked = torch.utils.data.TensorDataset(x[None], torch.zeros_like(y)[None], torch.zeros_like(m)[None])
    unknown = T.AugmentedWindows(masked, AugmentConfig(silence_prob=0.0, silence_prob_human=1.0, **kw),
                                 src.front_end(), seed=5, detection_index=det)
    assert not _silent_stretch(unknown, 0)
    with pytest.raises(ConfigError, match="silence_prob_human needs the detection label"):
        T.AugmentedWindows(data, AugmentConfig(silence_prob_human=0.5), src.front_end(), seed=5)
    with pytest.raises(ValueError, match="class"):
        T.augment(x, AugmentConfig(silence_prob_human=0.5), np.random.default_rng(0),
                  db_scale=50.0, db_offset=100.0, floor=-1.0, frame_s=0.02)
    for bad in (1.5, -0.1, "0.3", True):
        with pytest.raises(ConfigError, match="silence_prob_human"):
            AugmentConfig(silence_prob_human=bad)


def test_training_draws_silence_by_class(tmp_path):
    """The trainer tells the augmentation which windows are human: a run with a human-only
    silence rate trains (and differs from one without it)."""
    out = tmp_path / "run"
    config = load_config(TINY_CONFIG, overrides={
        "train": {"epochs": 1}, "augment": {"silence_prob": 0.0, "silence_prob_human": 1.0}})
    T.train(T.SyntheticSource(), out, config=config, device="cpu", export=False)
    plain = tmp_path / "plain"
    T.train(T.SyntheticSource(), plain, config=load_config(TINY_CONFIG, overrides={"train": {"epochs": 1}}),
            device="cpu", export=False)
    same = [torch.equal(v, model_tensors(plain)[k]) for k, v in model_tensors(out).items()]
    assert not all(same)


def test_silence_and_fades_off_keep_every_other_draw_as_it_was():
    """Resumable runs replay their augmentation: a config without the new effects must draw
    exactly what it drew before they existed."""
    x = torch.linspace(-0.8, 0.2, 256 * 500, dtype=torch.float32).reshape(1, 256, 500)
    kw = dict(db_scale=50.0, db_offset=100.0, floor=-1.0, frame_s=0.02)
    old = T.augment(x, AugmentConfig(noise_prob=1.0), np.random.default_rng(7), **kw)
    new = T.augment(x, AugmentConfig(noise_prob=1.0, silence_prob=0.0, fade_prob=0.0),
                    np.random.default_rng(7), **kw)
    assert torch.equal(old, new)
    with pytest.raises(ValueError, match="frame_s"):
        T.augment(x, AugmentConfig(silence_prob=0.5), np.random.default_rng(0),
                  db_scale=50.0, db_offset=100.0, floor=-1.0)
    with pytest.raises(ConfigError, match="silence_prob"):
        AugmentConfig(silence_prob=1.5)
    with pytest.raises(ConfigError, match="fade_s"):
        AugmentConfig(fade_s=(2.0, 1.0))


def test_reverb_augmentation_spreads_each_bins_power_at_the_rooms_decay():
    """Session 42: a 2-s hall (30 % of the power) called 2 of 196 human validation clips AI;
    a room is drawn into training windows so that the next model hears one."""
    frame_s, n = 0.02, 200
    x = torch.full((1, 4, n), -1.0)
    x[:, :, 10] = 0.6                                            # one loud frame, -20 dBFS
    room = room_map(x, 1.0, 1.0, frame_s=frame_s, db_scale=50.0, db_offset=100.0, floor=-1.0)
    db = room[0, 0].double() * 50.0 - 50.0                       # map units -> dBFS
    assert float(db[:10].max()) == pytest.approx(-100.0)         # nothing before the sound
    # after it, 60 dB per RT60 (1 s = 50 frames): 30 dB between 10 and 35 frames later
    assert float(db[20] - db[45]) == pytest.approx(30.0, abs=0.5)
    assert float(db[20] - db[30]) == pytest.approx(12.0, abs=0.5)
    # the power is kept: spread, not added (the taps sum to one)
    p_in = torch.pow(10.0, (x.double() + 1) * 5 - 10).sum()
    p_out = torch.pow(10.0, (room.double() + 1) * 5 - 10).sum()
    assert float(p_out / p_in) == pytest.approx(1.0, rel=0.05)
    dry = room_map(x, 1.0, 0.0, frame_s=frame_s, db_scale=50.0, db_offset=100.0, floor=-1.0)
    torch.testing.assert_close(dry, x, rtol=0, atol=1e-5)        # wet 0: the window as it was


def test_reverb_augmentation_is_the_map_of_the_robustness_rooms_reverb():
    """The map-domain room (training) against the robustness suite's wave-domain one (a
    decaying-noise response): the map of the reverberant clip is much nearer the augmented
    map of the dry clip than the dry map itself."""
    from musicbrain_cli.evaluate.robustness import reverb
    from musicbrain_cli.features import FrontEnd, FrontEndConfig

    cfg = FrontEndConfig(window_s=4.0, hop_s=4.0)
    fe = FrontEnd(cfg)
    rng = np.random.default_rng(1)
    n = cfg.n_samples
    t = np.arange(n) / cfg.sample_rate
    y = np.zeros(n)
    for start in np.arange(0.1, 3.0, 0.45):                       # short notes with rests
        f0 = 220.0 * 2 ** (rng.integers(0, 12) / 12)
        on = (t >= start) & (t < start + 0.12)
        y[on] += sum(0.2 / k * np.sin(2 * np.pi * k * f0 * t[on]) for k in range(1, 6))
    wet = reverb(y, cfg.sample_rate, rng=np.random.default_rng(0), rt60_s=1.5, wet=0.3)
    with torch.no_grad():
        dry_map = fe(torch.from_numpy(y.astype(np.float32))[None])[0]
        wet_map = fe(torch.from_numpy(wet)[None])[0]
    frame_s = cfg.hop_length / cfg.sample_rate
    room = room_map(dry_map, 1.5, 0.3, frame_s=frame_s, db_scale=cfg.db_scale,
                      db_offset=cfg.db_offset, floor=cfg.silence_level)
    heard = wet_map > -0.2                       # bins above -70 dBFS in the reverberant map
    before = float((dry_map - wet_map)[heard].abs().mean()) * cfg.db_scale
    after = float((room - wet_map)[heard].abs().mean()) * cfg.db_scale
    assert after < 0.5 * before, (before, after)


def test_reverb_off_keeps_every_other_draw_and_its_config_is_checked():
    x = torch.linspace(-0.8, 0.2, 256 * 500, dtype=torch.float32).reshape(1, 256, 500)
    kw = dict(db_scale=50.0, db_offset=100.0, floor=-1.0, frame_s=0.02)
    old = T.augment(x, AugmentConfig(noise_prob=1.0, fade_prob=0.5), np.random.default_rng(7), **kw)
    new = T.augment(x, AugmentConfig(noise_prob=1.0, fade_prob=0.5, reverb_prob=0.0),
                    np.random.default_rng(7), **kw)
    assert torch.equal(old, new)
    on = T.augment(x, AugmentConfig(noise_prob=1.0, fade_prob=0.5, reverb_prob=1.0),
                   np.random.default_rng(7), **kw)
    assert not torch.equal(old, on)
    with pytest.raises(ValueError, match="frame_s"):
        T.augment(x, AugmentConfig(reverb_prob=1.0), np.random.default_rng(0),
                  db_scale=50.0, db_offset=100.0, floor=-1.0)
    for bad in (dict(reverb_prob=1.5), dict(reverb_rt60_s=(2.0, 1.0)), dict(reverb_wet=(0.5, 1.2))):
        with pytest.raises(ConfigError, match="reverb"):
            AugmentConfig(**bad)


# --- consistency: an edit should not move the verdict -----------------------------------------


def test_the_anchor_is_the_window_with_every_draw_but_its_edits():
    """``augment(anchor=True)``: the edited window as without it, the same window with the same
    gain, EQ, noise and masks but no fade, silence or room, and whether an edit was drawn."""
    x = torch.linspace(-0.8, 0.2, 256 * 500, dtype=torch.float32).reshape(1, 256, 500)
    kw = dict(db_scale=50.0, db_offset=100.0, floor=-1.0, frame_s=0.02)
    edits = AugmentConfig(noise_prob=1.0, fade_prob=1.0, silence_prob=1.0, reverb_prob=1.0)
    plain = AugmentConfig(noise_prob=1.0)
    out, anchor, edited = T.augment(x, edits, np.random.default_rng(7), anchor=True, **kw)
    assert edited is True
    assert torch.equal(out, T.augment(x, edits, np.random.default_rng(7), **kw))
    assert torch.equal(anchor, T.augment(x, plain, np.random.default_rng(7), **kw))
    assert not torch.equal(out, anchor)
    # no edit drawn: the anchor is the window itself
    none = AugmentConfig(noise_prob=1.0, fade_prob=1e-9, reverb_prob=1e-9)
    out, anchor, edited = T.augment(x, none, np.random.default_rng(7), anchor=True, **kw)
    assert edited is False and torch.equal(out, anchor)


def test_bernoulli_kl_is_zero_at_agreement_and_pulls_only_the_edited_side():
    a = torch.tensor([-3.0, 0.0, 2.0, 40.0, -40.0], requires_grad=True)
    z = torch.tensor([-3.0, 1.0, -1.0, -40.0, 40.0], requires_grad=True)
    kl = T.bernoulli_kl_sum(a, z)
    p, q = torch.sigmoid(a.detach().double()), torch.sigmoid(z.detach().double())
    closed = p * torch.log(p / q) + (1 - p) * torch.log((1 - p) / (1 - q))
    assert torch.isfinite(kl)
    assert kl.item() == pytest.approx(closed[:3].sum().item() + 40.0 * 2, rel=1e-3)
    assert T.bernoulli_kl_sum(z, z).item() == pytest.approx(0.0, abs=1e-6)
    kl.backward()
    assert a.grad is None or torch.count_nonzero(a.grad) == 0      # the anchor is held fixed
    assert torch.allclose(z.grad, torch.sigmoid(z.detach()) - torch.sigmoid(a.detach()), atol=1e-6)


def test_consistency_weight_is_checked():
    for bad in (-0.1, float("nan"), float("inf"), True, "1"):
        with pytest.raises(ConfigError, match="consistency_weight"):
            AugmentConfig(consistency_weight=bad, reverb_prob=0.3)
    with pytest.raises(ConfigError, match="needs an edit"):
        AugmentConfig(consistency_weight=1.0)
    assert AugmentConfig(consistency_weight=1.0, silence_prob_human=0.3).consistency_weight == 1.0


def test_a_taxonomy_without_the_detection_label_is_refused_when_the_run_is_set_up(tmp_path):
    """The consistency term reads source/ai: a data set without it fails before any training
    step, with the setting named (it failed at the first batch)."""

    no_detection = T.SyntheticSource(groups=(("period", ("Baroque", "Classical"), True),
                                             ("composer", ("Bach", "Mozart"), True)))
    config = load_config(TINY_CONFIG, overrides={"augment": {"reverb_prob": 0.5, "consistency_weight": 1.0}})
    with pytest.raises(ConfigError, match="consistency_weight needs the detection label"):
        T.train(no_detection, tmp_path / "run", config=config, device="cpu", export=False)
    assert not list((tmp_path / "run").glob("**/*.safetensors"))      # no step was taken


def test_a_step_on_the_consistency_term_brings_the_edited_windows_verdict_to_the_anchors():
    """The term's gradient moves the edited window's P(AI) towards its anchor's (the direction
    the labels alone move only slowly)."""
    config = load_config(TINY_CONFIG, overrides={"augment": {"reverb_prob": 1.0, "consistency_weight": 1.0}})
    source = T.SyntheticSource()
    model, _ = T._build_model(config, source, source.taxonomy())
    model.train(False)
    det = source.taxonomy().index("source/ai")
    data = T.AugmentedWindows(source.open("train"), config.augment, source.front_end(), seed=1,
                              detection_index=det)
    x, _, _, anchor, edited = (torch.stack(t) for t in zip(*(data[i] for i in range(8))))
    assert bool(edited.all())
    run = T._Run.__new__(T._Run)
    run.model, run.train_set, run.precision, run.device = model, data, "fp32", torch.device("cpu")
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    gaps = []
    for _ in range(3):
        kl, n = T._consistency(run, model(x), anchor, edited)
        gaps.append(kl.item())
        opt.zero_grad()
        kl.backward()
        opt.step()
    assert n == 8 and gaps[0] > 0 and gaps[-1] < gaps[0]


def test_training_with_the_consistency_term_logs_it_and_resumes_exactly(tmp_path):
    cons = {"augment": {"reverb_prob": 0.5, "silence_prob": 0.3, "consistency_weight": 2.0}}
    ref = tmp_path / "ref"
    T.train(T.SyntheticSource(), ref, config=load_config(TINY_CONFIG, overrides={
        "train": {"checkpoint_every_steps": 2}, **cons}), device="cpu", export=False)
    rows = history(ref)
    assert all(r["train_consistency_kl"] is not None and r["train_consistency_kl"] > 0 for r in rows)
    table = list(csv.DictReader((ref / "metrics.csv").read_text().splitlines()))
    assert [float(r["train_consistency_kl"]) for r in table] == [r["train_consistency_kl"] for r in rows]
    plain = tmp_path / "plain"
    T.train(T.SyntheticSource(), plain, config=load_config(TINY_CONFIG, overrides={
        "train": {"checkpoint_every_steps": 2}, "augment": {**cons["augment"], "consistency_weight": 0.0}}),
        device="cpu", export=False)
    assert "train_consistency_kl" not in history(plain)[0]
    assert not all(torch.equal(v, model_tensors(plain)[k]) for k, v in model_tensors(ref).items())
    out = tmp_path / "run"
    stopped = T.train(T.SyntheticSource(), out, config=load_config(TINY_CONFIG, overrides={
        "train": {"checkpoint_every_steps": 2, "stop_after_steps": 3}, **cons}), device="cpu", export=False)
    assert stopped["stopped"]
    T.train(T.SyntheticSource(), out, resume=True, device="cpu", export=False)
    a, b = model_tensors(ref), model_tensors(out)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert history(out) == history(ref)


# --- training state as data ---------------------------------------------------------------


def test_optimizer_state_round_trips_through_tensors_and_json():
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    for _ in range(3):
        opt.zero_grad()
        net(torch.randn(5, 3)).square().sum().backward()
        opt.step()
    tensors, meta = T.flatten_optimizer(opt.state_dict())
    assert all(torch.is_tensor(v) for v in tensors.values())
    meta = json.loads(T.dumps(meta))              # must be plain JSON
    clone = torch.nn.Linear(3, 2)
    clone.load_state_dict(net.state_dict())
    opt2 = torch.optim.Adam(clone.parameters(), lr=0.5)
    opt2.load_state_dict(T.unflatten_optimizer(tensors, meta, opt2.state_dict()))
    assert opt2.param_groups[0]["betas"] == (0.9, 0.999)
    x = torch.randn(5, 3)
    for o, n in ((opt, net), (opt2, clone)):
        o.zero_grad()
        n(x).square().sum().backward()
        o.step()
    assert torch.equal(net.weight, clone.weight)


def test_state_file_is_safetensors_with_json_and_atomic(tmp_path):
    path = tmp_path / "ck" / "s.safetensors"
    T.write_state(path, {"a": torch.arange(3.0)}, {"best": float("inf"), "x": [1, 2]})
    assert [p.name for p in path.parent.iterdir()] == ["s.safetensors"]   # no temp left
    header_len = int.from_bytes(path.read_bytes()[:8], "little")
    assert path.read_bytes()[8:9] == b"{" and header_len < path.stat().st_size
    tensors, meta = T.read_state(path)
    assert torch.equal(tensors["a"], torch.arange(3.0))
    assert meta["best"] == float("inf") and meta["x"] == [1, 2]
    (tmp_path / "bad.safetensors").write_bytes(b"not a checkpoint")
    with pytest.raises(TrainingError, match="bad.safetensors"):
        T.read_state(tmp_path / "bad.safetensors")


def test_rng_capture_and_restore():
    arrays, meta = T.capture_rng()
    assert all(a.dtype == np.uint8 for a in arrays.values())
    first = (torch.rand(3), np.random.rand(3), __import__("random").random())
    T.restore_rng(arrays, json.loads(T.dumps(meta)))
    second = (torch.rand(3), np.random.rand(3), __import__("random").random())
    assert torch.equal(first[0], second[0]) and (first[1] == second[1]).all()
    assert first[2] == second[2]


# --- whole runs ---------------------------------------------------------------------------


def test_run_writes_logs_checkpoints_and_a_loadable_model(ref_run):
    out, summary = ref_run
    assert {p.name for p in out.iterdir()} >= {
        "config.resolved.yaml", "config.resolved.json", "metrics.jsonl", "metrics.csv",
        "checkpoints", "model"}
    rows = history(out)
    assert [r["epoch"] for r in rows] == [1, 2] and rows[-1]["global_step"] == 8
    assert all(math.isfinite(r["train_loss"]) and math.isfinite(r["val_loss"]) for r in rows)
    assert len((out / "metrics.csv").read_text().splitlines()) == 3
    _, meta = T.read_state(out / "checkpoints" / "last.safetensors")
    assert meta["config"] == json.loads((out / "config.resolved.json").read_text())
    from musicbrain_cli.model import Detector

    det = Detector.from_pretrained(str(out / "model"), device="cpu")
    cal = det.card["calibration"]
    assert cal["method"] == "temperature" and cal["fitted_on"] == "val"
    assert det.temperature == pytest.approx(cal["temperature"]) == summary["calibration"]["temperature"]
    assert cal["nll_after"] <= cal["nll_before"] + 1e-9
    assert det.card["metrics"]["detection"]["temperature"] == cal["temperature"]
    assert "map_macro" in det.card["metrics"] and det.card["thresholds"]["detection"] == 0.5


def test_killed_run_resumes_to_bit_identical_weights(ref_run, tmp_path):
    ref, _ = ref_run
    out = tmp_path / "run"
    # Killed after step 3: the last checkpoint is step 2 (mid-epoch), step 3 is lost.
    stopped = T.train(T.SyntheticSource(), out, config=tiny(stop_after_steps=3), device="cpu")
    assert stopped == {"stopped": True, "global_step": 3}
    _, meta = T.read_state(out / "checkpoints" / "last.safetensors")
    assert (meta["epoch"], meta["step_in_epoch"], meta["global_step"]) == (0, 2, 2)
    T.train(T.SyntheticSource(), out, resume=True, device="cpu", export=False)
    a, b = model_tensors(ref), model_tensors(out)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert history(out) == history(ref)


def test_resume_refuses_other_data(tmp_path):
    """A run resumed with another data set trained on, and logged, both, while its card named
    only the second (found by the training-commands audit)."""
    out = tmp_path / "run"
    T.train(T.SyntheticSource(), out, config=tiny(stop_after_steps=3), device="cpu")
    _, meta = T.read_state(out / "checkpoints" / "last.safetensors")
    assert meta["data"] == T.SyntheticSource().describe()
    with pytest.raises(TrainingError, match="resumes only on the data it started on.*") as info:
        T.train(T.SyntheticSource(seed=1), out, resume=True, device="cpu", export=False)
    assert "seed" in str(info.value)
    T.train(T.SyntheticSource(), out, resume=True, device="cpu", export=False)   # the same data


def test_resuming_a_finished_run_is_refused_and_its_model_kept(ref_run, tmp_path):
    """It printed 'trained 2 epochs', trained nothing, and exported and finalized the model
    again, replacing RUN/model and dropping what had been added to its card since. A run
    stopped after its last epoch but before its model was finalized still resumes into the
    export it lacks."""
    import shutil

    ref, _ = ref_run
    done = tmp_path / "done"
    shutil.copytree(ref, done)
    card_path = done / "model" / "model_card.json"
    card = json.loads(card_path.read_text())
    unfinalized = card_path.read_bytes()
    # what finalize_model writes (session 27 audit: the guard looked for `finalized_on`,
    # which a full finalize removes, so it never fired on a real run)
    card["verdict"] = {"threshold_chosen_on": "val", "fpr_target": 0.005}
    card["robustness"] = [{"transform": "added later by evaluate --update-card"}]
    card_path.write_text(json.dumps(card))
    before = card_path.read_bytes()
    with pytest.raises(TrainingError, match="finished all 2 epoch"):
        T.train(T.SyntheticSource(), done, resume=True, device="cpu")
    assert card_path.read_bytes() == before
    interrupted = tmp_path / "interrupted"          # stopped while its card was finalized
    shutil.copytree(ref, interrupted)
    (interrupted / "model" / "model_card.json").write_bytes(unfinalized)
    T.train(T.SyntheticSource(), interrupted, resume=True, device="cpu")     # not refused
    unfinished = tmp_path / "unfinished"             # its last epoch done, never finalized
    shutil.copytree(ref, unfinished)
    shutil.rmtree(unfinished / "model")
    summary = T.train(T.SyntheticSource(), unfinished, resume=True, device="cpu")
    assert summary["model_dir"] == str(unfinished / "model") and (unfinished / "model").is_dir()
    with pytest.raises(InputError, match="nothing to resume"):        # stopped before step 1
        T.train(T.SyntheticSource(), tmp_path / "never", resume=True, device="cpu")


def test_resume_refuses_a_different_recipe(ref_run):
    ref, _ = ref_run
    other = load_config(TINY_CONFIG, overrides={"optim": {"lr": 0.5}})
    with pytest.raises(TrainingError, match="optim.lr"):
        T.train(T.SyntheticSource(), ref, config=other, resume=True, device="cpu")


def test_init_from_starts_at_the_exported_weights(ref_run, tmp_path):
    """Fine-tuning: the new run's network starts as the exported model, and its card names
    the weights it started from by hash."""
    from musicbrain_cli.model import build_model
    from musicbrain_cli.model.checkpoint import read_config

    ref, _ = ref_run
    config, _ = read_config(ref / "model")
    fresh = build_model(config)
    exported = load_file(str(ref / "model" / "model.safetensors"))
    assert not all(torch.equal(v, exported[k]) for k, v in fresh.state_dict().items())
    sha = T.init_weights(fresh, config, str(ref / "model"))
    assert all(torch.equal(v, exported[k]) for k, v in fresh.state_dict().items())

    out = tmp_path / "tuned"
    T.train(T.SyntheticSource(), out, config=tiny(init_from=str(ref / "model"), epochs=1),
            device="cpu")
    card = json.loads((out / "model" / "model_card.json").read_text())
    assert card["training"]["init_from_weights_sha256"] == sha
    assert json.loads((out / "config.resolved.json").read_text())["train"]["init_from"] == \
        str(ref / "model")


def test_init_from_refuses_a_different_model(ref_run, tmp_path):
    ref, _ = ref_run
    cfg = tiny(init_from=str(ref / "model"))
    cfg.model = {**cfg.model, "se_reduction": 4}
    with pytest.raises(ConfigError, match="se_reduction"):
        T.train(T.SyntheticSource(), tmp_path / "run", config=cfg, device="cpu")


def test_init_from_by_name_keeps_every_known_label_row(ref_run, tmp_path):
    """A grown corpus (issue 21: a new generator, MusicNet's composers) fine-tunes from the
    shipped network: known labels keep their head rows wherever they now sit, new labels
    start fresh, and the card lists them; a lost label is refused."""
    import dataclasses

    from musicbrain_cli.model import build_model
    from musicbrain_cli.model.checkpoint import read_config
    from musicbrain_cli.taxonomy import Taxonomy

    ref, _ = ref_run
    config, _ = read_config(ref / "model")
    exported = load_file(str(ref / "model" / "model.safetensors"))
    grown = Taxonomy.from_groups([("source", ("human", "ai"), True),
                                  ("period", ("Romantic", "Baroque", "Classical"), True)])
    new_config = dataclasses.replace(config, taxonomy=grown)
    fresh = build_model(new_config)
    with pytest.raises(ConfigError, match="taxonomy"):
        T.init_weights(fresh, new_config, str(ref / "model"))
    before = fresh.state_dict()["heads.period.weight"][0].clone()
    T.init_weights(fresh, new_config, str(ref / "model"), labels="by_name")
    state = fresh.state_dict()
    w = state["heads.period.weight"]
    assert torch.equal(w[1], exported["heads.period.weight"][0])      # Baroque moved 0 -> 1
    assert torch.equal(w[2], exported["heads.period.weight"][1])      # Classical 1 -> 2
    assert torch.equal(w[0], before)                                  # Romantic: fresh
    assert torch.equal(state["heads.source.weight"], exported["heads.source.weight"])
    assert all(torch.equal(v, exported[k]) for k, v in state.items() if not k.startswith("heads."))
    assert T.new_labels(new_config, str(ref / "model")) == ["period/Romantic"]
    shrunk = dataclasses.replace(config, taxonomy=Taxonomy.from_groups(
        [("source", ("human", "ai"), True), ("period", ("Baroque",), True)]))
    with pytest.raises(ConfigError, match="Classical"):
        T.init_weights(build_model(shrunk), shrunk, str(ref / "model"), labels="by_name")

    src = T.SyntheticSource(groups=(("source", ("human", "ai"), True),
                                    ("period", ("Romantic", "Baroque", "Classical"), True)))
    out = tmp_path / "tuned"
    T.train(src, out, config=tiny(init_from=str(ref / "model"), init_labels="by_name",
                                  epochs=1), device="cpu")
    card = json.loads((out / "model" / "model_card.json").read_text())
    assert card["training"]["init_from_new_labels"] == ["period/Romantic"]


def test_refuses_a_non_empty_run_dir(tmp_path):
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(InputError, match="not empty"):
        T.train(T.SyntheticSource(), tmp_path, config=tiny(), device="cpu")
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
    with pytest.raises(InputError, match="no checkpoints"):
        T.train(T.SyntheticSource(), tmp_path, config=tiny(), device="cpu", resume=True)


def test_cli_trains_on_a_cached_data_set(tmp_path):
    """End to end through the CLI: a real data set, its cache built on demand, 1 epoch."""
    from musicbrain_cli.cli import main
    from musicbrain_cli.taxonomy import Taxonomy
    from musicbrain_cli.data.dataset import ClipRecord, DatasetWriter

    sr = 6400
    tax = Taxonomy.from_groups([("source", ["human", "ai"], True)])
    rng = np.random.default_rng(0)
    with DatasetWriter(tmp_path / "ds", tax, sample_rate=sr, audio_format="wav") as w:
        for i in range(12):
            ai = i % 2
            t = np.arange(2 * sr) / sr
            y = 0.3 * np.sin(2 * np.pi * (440 if ai else 660) * t) + 0.01 * rng.normal(size=t.size)
            split = "train" if i < 8 else "val"
            w.add(ClipRecord(clip_id=f"c{i:02d}", source="ai" if ai else "human",
                             work_id=f"w{i}", split=split), y.astype(np.float32))
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(
        "deterministic: true\n"
        "model: {front_end: {sample_rate: 6400, n_fft: 512, hop_length: 100, n_bins: 32, "
        "f_min: 50.0, f_max: 3200.0, window_s: 1.0, hop_s: 1.0}}\n"
        "train: {epochs: 1, batch_size: 8, num_workers: 0, precision: fp32}\n")
    result = CliRunner().invoke(main, ["train", "--data", str(tmp_path / "ds"), "--config",
                                       str(cfg), "--device", "cpu", "-o", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert "val mAP" in result.output
    card = json.loads((tmp_path / "run" / "model" / "model_card.json").read_text())
    assert card["training_data"]["windows_per_split"] == {"train": 16, "val": 8}
    # finalize: operating point, OOD statistics and error rates measured on held-out clips
    assert (tmp_path / "run" / "model" / "ood.safetensors").is_file()
    assert card["ood"]["threshold"] > 0 and card["verdict"]["threshold_chosen_on"] == "val"
    by_version = card["verdict"]["ai_boundary_by_version"]
    assert set(by_version) == {"as is", "pitch +1 semitone", "pitch -1 semitone"}
    assert card["verdict"]["ai_boundary"] >= max(by_version.values()) - 1e-9
    assert card["error_rates"]["split"] == "val" and card["error_rates"]["n_human"] == 2
    # counted by work too (each clip of this set is its own work)
    assert card["error_rates"]["by_work"]["n_human_works"] == 2
    assert 0.5 <= card["thresholds"]["detection"] < 1.0
    assert "FPR" in result.output
    again = CliRunner().invoke(main, ["train", "--data", str(tmp_path / "ds"), "-o",
                                      str(tmp_path / "run")])
    assert again.exit_code == 2 and "not empty" in again.output


def test_a_resume_that_trains_longer_records_the_recipe_that_ran(tmp_path):
    """Audit (session 27): after a resume with more epochs the run's config.resolved.* still
    said the first run's epochs, while its card and checkpoint said the new ones."""
    out = tmp_path / "run"
    T.train(T.SyntheticSource(), out, config=tiny(epochs=1), device="cpu", export=False)
    assert json.loads((out / "config.resolved.json").read_text())["train"]["epochs"] == 1
    T.train(T.SyntheticSource(), out, config=tiny(epochs=2), resume=True, device="cpu",
            export=False)
    _, meta = T.read_state(out / "checkpoints" / "last.safetensors")
    assert meta["epoch"] == 2
    assert json.loads((out / "config.resolved.json").read_text())["train"]["epochs"] == 2
    assert "epochs: 2" in (out / "config.resolved.yaml").read_text()


def test_an_interrupted_run_says_what_its_checkpoint_holds_and_how_to_go_on(tmp_path):
    """Audit (session 27): Ctrl-C printed only 'interrupted'."""
    from musicbrain_cli.cli import _resume_hint

    out = tmp_path / "run"
    assert "no checkpoint was written yet" in _resume_hint(out)
    T.train(T.SyntheticSource(), out, config=tiny(stop_after_steps=3), device="cpu")
    hint = _resume_hint(out)
    assert "epoch 1, step 2 of it (global step 2)" in hint
    assert f"musicbrain train --resume {out}" in hint


def test_every_shipped_training_config_loads():
    """The README's reproduction commands and the next run's recipe name these files: a key
    the loader does not know, or a value it refuses, must fail here, not after an hour of
    building a corpus."""
    from pathlib import Path

    import musicbrain_cli.training as training

    configs = sorted((Path(training.__file__).parent / "configs").glob("*.yaml"))
    assert len(configs) >= 4
    for path in configs:
        load_config(path)
    enlarged = load_config(Path(training.__file__).parent / "configs" / "reference-enlarged.yaml")
    assert enlarged.augment.silence_prob_human > enlarged.augment.silence_prob
    assert enlarged.augment.reverb_prob > 0          # the next run hears rooms (session 42)
    assert enlarged.augment.consistency_weight > 0   # and is held to them (session 43, trial 9)


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_a_loss_that_is_not_finite_stops_training_in_every_precision(tmp_path, monkeypatch,
                                                                     precision):
    """Review (session 45): the non-finite loss check was skipped whenever the gradient scaler
    was on, so an fp16 run (the client's Turing cards) on windows that give no finite loss
    skipped every step silently, logged train_loss NaN, picked a "best" epoch and finished.
    fp16 runs on the CPU here as autocast does on a GPU (the scaler on either way)."""
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class NaNTrain(T.SyntheticSource):
        def open(self, split):
            ds = super().open(split)
            if split != "train":
                return ds
            x, y, m = ds.tensors
            return torch.utils.data.TensorDataset(torch.full_like(x, float("nan")), y, m)

    monkeypatch.setattr(T, "resolve_precision", lambda p, d: p)
    cfg = load_config(TINY_CONFIG, overrides={"train": {"precision": precision},
                                              "augment": {"enabled": False}})
    with pytest.raises(TrainingError, match="loss is nan at epoch 1, step 1"):
        T.train(NaNTrain(), tmp_path / "run", config=cfg, device="cpu", export=False)


def test_logs_and_checkpoints_are_readable_as_the_exported_model_is(ref_run):
    """Review (session 45): metrics.jsonl/csv, config.resolved.* and the checkpoints were
    written through mkstemp and renamed without a chmod: owner-only (0600) in a run folder
    whose exported model/ files are 0644."""
    import stat as _stat

    run_dir, _ = ref_run
    names = ["metrics.jsonl", "metrics.csv", "checkpoints/last.safetensors"]
    for name in names:
        assert _stat.S_IMODE((run_dir / name).stat().st_mode) == 0o644, name


def test_resume_takes_the_data_set_the_run_recorded(tmp_path):
    """Review (session 45): an interrupted run printed `musicbrain train --resume RUN` as the
    way to go on, and that command failed with "Missing option '--data'" (the folder was not
    quoted either). --resume now defaults --data to the data set the run recorded."""
    from musicbrain_cli.cli import main
    from musicbrain_cli.data.dataset import ClipRecord, DatasetWriter
    from musicbrain_cli.taxonomy import Taxonomy

    sr = 6400
    tax = Taxonomy.from_groups([("source", ["human", "ai"], True)])
    rng = np.random.default_rng(0)
    with DatasetWriter(tmp_path / "ds", tax, sample_rate=sr, audio_format="wav") as w:
        for i in range(12):
            t = np.arange(2 * sr) / sr
            y = 0.3 * np.sin(2 * np.pi * (440 if i % 2 else 660) * t) + 0.01 * rng.normal(size=t.size)
            w.add(ClipRecord(clip_id=f"c{i:02d}", source="ai" if i % 2 else "human",
                             work_id=f"w{i}", split="train" if i < 8 else "val"),
                  y.astype(np.float32))
    recipe = ("deterministic: true\n"
              "model: {front_end: {sample_rate: 6400, n_fft: 512, hop_length: 100, n_bins: 32, "
              "f_min: 50.0, f_max: 3200.0, window_s: 1.0, hop_s: 1.0}}\n"
              "train: {epochs: 2, batch_size: 8, num_workers: 0, precision: fp32%s}\n")
    (tmp_path / "stop.yaml").write_text(recipe % ", stop_after_steps: 3")  # in epoch 2
    (tmp_path / "go.yaml").write_text(recipe % "")
    run = tmp_path / "run two"
    first = CliRunner().invoke(main, ["train", "--data", str(tmp_path / "ds"), "--config",
                                      str(tmp_path / "stop.yaml"), "--device", "cpu", "-o", str(run)])
    assert first.exit_code == 0, first.output
    assert not (run / "model" / "model_card.json").exists()          # stopped early
    again = CliRunner().invoke(main, ["train", "--resume", str(run), "--config",
                                      str(tmp_path / "go.yaml"), "--device", "cpu"])
    assert again.exit_code == 0, again.output
    assert (run / "model" / "model_card.json").is_file()
    none = CliRunner().invoke(main, ["train", "-o", str(tmp_path / "new"), "--device", "cpu"])
    assert none.exit_code == 2 and "--data" in none.output


def test_an_interrupted_runs_hint_quotes_its_folder(tmp_path):
    from musicbrain_cli.cli import _resume_hint

    out = tmp_path / "run two"
    T.train(T.SyntheticSource(), out, config=tiny(stop_after_steps=3), device="cpu")
    assert f"`musicbrain train --resume '{out}'`" in _resume_hint(out)
