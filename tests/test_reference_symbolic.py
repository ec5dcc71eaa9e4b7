"""The conditioned transformer generators: training, sampling filters, checkpoint I/O."""

import json

import numpy as np
import pytest
import torch

from musicbrain_cli.errors import ModelLoadError
from musicbrain_cli.data.reference import symbolic as sy
from musicbrain_cli.data.reference.build import ASSETS_DIR, SYMBOLIC_GENERATORS
from musicbrain_cli.data.reference.tokens import (EOS, PREFIX_LEN, Vocabulary,
                                                      condition_tokens, encode_events)

VOCAB = Vocabulary.build({"period": ["Baroque", "Folk"], "composer": ["Bach, Johann Sebastian"],
                          "instrumentation": ["Choral", "Melody"]})


PITCH = {"Baroque": 60, "Folk": 72}


def _scale_piece(period: str, step: int) -> np.ndarray:
    """A deterministic toy 'style': one period-specific pitch, repeated."""
    events = [(12 * i, 0, PITCH[period], 12) for i in range(120)]
    prefix = condition_tokens(VOCAB, period=period, composer="-", instrumentation="Melody")
    return np.array(prefix + encode_events(events, VOCAB) + [VOCAB.id(EOS)])


def test_training_lowers_the_loss_and_learns_the_conditioning():
    seqs = [_scale_piece("Baroque", 2), _scale_piece("Folk", 5)]
    cfg = sy.GPTConfig(vocab_size=len(VOCAB), n_layer=1, n_head=2, d_model=32, context=64,
                       dropout=0.0)
    model, curve = sy.train_generator(seqs, seqs, cfg, settings=sy.TrainSettings(
        steps=120, batch_size=8, lr=3e-3, warmup=10, eval_every=40, seed=0))
    assert curve["step"] == [40, 80, 120]
    assert curve["val_loss"][-1] < 0.6 * curve["val_loss"][0]
    assert not model.training
    # the conditioning matters: the first pitch of a piece can only come from the prefix,
    # so each prefix must raise the probability of its own period's pitch
    def first_pitch_probs(period):
        prefix = condition_tokens(VOCAB, period=period, composer="-", instrumentation="Melody")
        ids = torch.tensor([prefix + [VOCAB.id("part=0")]])
        with torch.no_grad():
            p = torch.softmax(model(ids)[0, -1], dim=-1)
        return {k: float(p[VOCAB.id(f"pitch={v}")]) for k, v in PITCH.items()}

    baroque, folk = first_pitch_probs("Baroque"), first_pitch_probs("Folk")
    assert baroque["Baroque"] > folk["Baroque"] and folk["Folk"] > baroque["Folk"]


def test_filter_logits_top_k_and_top_p():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.1, 0.06, 0.04]]))
    kept = torch.isfinite(sy.filter_logits(logits, top_k=3, top_p=1.0))
    assert kept.tolist() == [[True, True, True, False, False]]
    kept = torch.isfinite(sy.filter_logits(logits, top_k=0, top_p=0.75))
    assert kept.tolist() == [[True, True, False, False, False]]
    # the most likely token survives even a tiny top_p
    kept = torch.isfinite(sy.filter_logits(logits, top_k=9, top_p=0.01))
    assert kept.tolist() == [[True, False, False, False, False]]


def test_sampling_defaults_are_notagens():
    assert (sy.TOP_K, sy.TOP_P, sy.TEMPERATURE) == (9, 0.9, 1.2)


def test_sample_stops_rows_at_tick_budget():
    cfg = sy.GPTConfig(vocab_size=len(VOCAB), n_layer=1, n_head=2, d_model=16, context=32)
    torch.manual_seed(0)
    model = sy.SymbolicGPT(cfg).eval()
    ticks = torch.tensor([int(t.split("=")[1]) if t.startswith("shift=") else 0
                          for t in VOCAB.tokens])
    prefix = torch.tensor([condition_tokens(VOCAB, period="Folk", composer="-",
                                            instrumentation="Melody")] * 3)
    out = sy.sample(model, prefix, max_new_tokens=300, stop_ids=[VOCAB.id(EOS)],
                    token_ticks=ticks, until_ticks=24,
                    generator=torch.Generator().manual_seed(1))
    assert out.shape[1] > PREFIX_LEN + 1  # the 32-token context slid without error
    for row in out[:, PREFIX_LEN:]:
        body = row.tolist()
        stop = body.index(VOCAB.id(EOS)) if VOCAB.id(EOS) in body else len(body)
        assert int(ticks[body[:stop]].sum()) >= 24 or stop < len(body)


def test_save_load_round_trip_and_tamper_detection(tmp_path):
    cfg = sy.GPTConfig(vocab_size=len(VOCAB), n_layer=1, n_head=2, d_model=16, context=32)
    model = sy.SymbolicGPT(cfg).eval()
    sy.save_generator(model, VOCAB, tmp_path, "g", meta={"training_works": ["m21:x"]})
    loaded, vocab, config = sy.load_generator(tmp_path, "g")
    assert vocab == VOCAB and config["training_works"] == ["m21:x"]
    ids = torch.tensor([[1, 2, 3, 4]])
    # weights are stored as float16: equal to that precision
    torch.testing.assert_close(loaded(ids), model(ids), atol=2e-2, rtol=2e-2)
    assert loaded.head.weight.data_ptr() == loaded.tok.weight.data_ptr()
    raw = (tmp_path / "g.safetensors").read_bytes()
    (tmp_path / "g.safetensors").write_bytes(raw[:-4] + b"\x00\x00\x00\x01")
    with pytest.raises(ModelLoadError, match="SHA-256"):
        sy.load_generator(tmp_path, "g")
    with pytest.raises(ModelLoadError, match="nothere"):
        sy.load_generator(tmp_path, "nothere")


@pytest.mark.parametrize("name", SYMBOLIC_GENERATORS)
def test_shipped_generators_load_and_differ_in_depth(name):
    model, vocab, config = sy.load_generator(ASSETS_DIR, name)
    assert model.cfg.n_layer == sy.GENERATORS[name]["n_layer"]
    assert config["training_works"] and config["curve"]["val_loss"]
    assert config["curve"]["val_loss"][-1] < config["curve"]["val_loss"][0]
    assert json.loads((ASSETS_DIR / f"{name}.json").read_text())["sampling"]["top_k"] == 9


def test_cached_forward_matches_full_forward():
    cfg = sy.GPTConfig(vocab_size=len(VOCAB), n_layer=2, n_head=2, d_model=16, context=32)
    torch.manual_seed(0)
    model = sy.SymbolicGPT(cfg).eval()
    ids = torch.randint(1, len(VOCAB), (2, 10))
    full = model(ids)
    cache = [None] * cfg.n_layer
    first = sy._forward_cached(model, ids[:, :6], cache, 0)
    steps = [sy._forward_cached(model, ids[:, i:i + 1], cache, i) for i in range(6, 10)]
    torch.testing.assert_close(torch.cat([first] + steps, dim=1), full, atol=1e-5, rtol=1e-4)
