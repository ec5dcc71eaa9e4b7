"""The symbolic generators: a small conditioned decoder-only transformer (the NotaGen analogue).

NotaGen (Wang et al. 2025) is a GPT-style model over ABC notation, prompted with period,
composer and instrumentation tokens, released at several depths. This is the same recipe
shrunk to train on two CPU cores in minutes: a nanoGPT-shaped decoder (Karpathy, nanoGPT
``model.py``: pre-norm blocks, learned positions, tied input/output embedding) over the
event tokens of :mod:`.tokens`, trained on human works of the reference corpus, at two
depths (:data:`GENERATORS`). Sampling uses NotaGen's defaults (top-k 9, top-p 0.9,
temperature 1.2; NotaGen README, "Inference").

A trained generator is data, never code: ``<name>.safetensors`` (weights) beside
``<name>.json`` (architecture, vocabulary, training settings, training curve, the IDs of
the works it learned from, and the SHA-256 of the weights, checked on load).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from musicbrain_cli.errors import ModelLoadError, TrainingError
from musicbrain_cli.progress import NULL_PROGRESS, Progress
from musicbrain_cli.data.reference.tokens import EOS, PAD, PREFIX_LEN, Vocabulary
from musicbrain_cli.data.reference.weights import load_weights, save_weights

#: NotaGen's sampling defaults (NotaGen README, "Inference": top_k=9, top_p=0.9,
#: temperature=1.2).
TOP_K, TOP_P, TEMPERATURE = 9, 0.9, 1.2


@dataclass(frozen=True)
class GPTConfig:
    vocab_size: int
    n_layer: int = 4
    n_head: int = 4
    d_model: int = 192
    context: int = 256
    dropout: float = 0.1

    def __post_init__(self) -> None:
        if self.d_model % self.n_head:
            raise TrainingError(
                f"d_model {self.d_model} is not divisible by n_head {self.n_head}")


#: The two generators: same width, different depth (NotaGen ships models of several
#: depths; the detector should attribute each separately).
GENERATORS: dict[str, dict] = {
    "symbolic-small": {"n_layer": 2, "n_head": 4, "d_model": 128, "context": 192},
    "symbolic-large": {"n_layer": 5, "n_head": 4, "d_model": 128, "context": 192},
}


class _Block(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.attn = nn.MultiheadAttention(cfg.d_model, cfg.n_head, dropout=cfg.dropout,
                                          batch_first=True)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.mlp = nn.Sequential(nn.Linear(cfg.d_model, 4 * cfg.d_model), nn.GELU(),
                                 nn.Linear(4 * cfg.d_model, cfg.d_model),
                                 nn.Dropout(cfg.dropout))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.ln1(x)
        x = x + self.attn(h, h, h, attn_mask=mask, need_weights=False)[0]
        return x + self.mlp(self.ln2(x))


class SymbolicGPT(nn.Module):
    """Decoder-only transformer over event tokens. ``forward(ids [B, T]) -> logits [B, T, V]``."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.cfg = cfg
        self.tok = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos = nn.Embedding(cfg.context, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(_Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.head.weight = self.tok.weight  # weight tying (Press & Wolf 2017)
        self.apply(self._init)

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        t = ids.shape[1]
        if t > self.cfg.context:
            raise TrainingError(f"sequence of {t} tokens exceeds context {self.cfg.context}")
        mask = torch.triu(torch.full((t, t), float("-inf"), device=ids.device), diagonal=1)
        x = self.drop(self.tok(ids) + self.pos(torch.arange(t, device=ids.device)))
        for block in self.blocks:
            x = block(x, mask)
        return self.head(self.ln_f(x))


# --- training -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainSettings:
    steps: int = 300
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup: int = 50
    eval_every: int = 50
    seed: int = 0


def _batch(seqs: Sequence[np.ndarray], *, batch_size: int, context: int, pad: int,
           rng: np.random.Generator) -> torch.Tensor:
    """Random crops of ``context`` tokens, each re-prefixed with its piece's conditioning.

    Every crop starts with the 4 conditioning tokens (so the model always sees what it is
    asked to imitate) followed by a body window that starts at a random token.
    """
    body_len = context - PREFIX_LEN
    out = np.full((batch_size, context), pad, dtype=np.int64)
    for row, k in enumerate(rng.integers(0, len(seqs), size=batch_size)):
        seq = seqs[k]
        prefix, body = seq[:PREFIX_LEN], seq[PREFIX_LEN:]
        start = int(rng.integers(0, max(1, len(body) - body_len + 1)))
        crop = np.concatenate([prefix, body[start:start + body_len]])
        out[row, :len(crop)] = crop
    return torch.from_numpy(out)


def _loss(model: SymbolicGPT, ids: torch.Tensor, pad: int) -> torch.Tensor:
    logits = model(ids[:, :-1])
    target = ids[:, 1:].clone()
    target[:, : PREFIX_LEN - 1] = pad  # the prefix is given, never predicted
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1),
                           ignore_index=pad)


def train_generator(train_seqs: Sequence[np.ndarray], val_seqs: Sequence[np.ndarray],
                    cfg: GPTConfig, *, settings: TrainSettings = TrainSettings(),
                    progress: Progress = NULL_PROGRESS) -> tuple[SymbolicGPT, dict]:
    """Train one generator. Sequences are full token id arrays (prefix + body + <eos>).

    Returns the model (in eval mode) and its training curve
    ``{"step": [...], "train_loss": [...], "val_loss": [...], "seconds": float}``
    (losses in nats per token; the train loss is the mean since the previous evaluation).
    """
    if not train_seqs:
        raise TrainingError("no training sequences for the symbolic generator")
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    val_rng_seed = settings.seed + 1
    model = SymbolicGPT(cfg)
    pad = 0
    opt = torch.optim.AdamW(model.parameters(), lr=settings.lr,
                            weight_decay=settings.weight_decay, betas=(0.9, 0.95))

    def lr_at(step: int) -> float:  # linear warm-up, cosine decay (nanoGPT train.py)
        if step < settings.warmup:
            return settings.lr * (step + 1) / settings.warmup
        frac = (step - settings.warmup) / max(1, settings.steps - settings.warmup)
        return settings.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))

    curve: dict = {"step": [], "train_loss": [], "val_loss": []}
    running: list[float] = []
    t0 = time.perf_counter()
    with progress.task(f"training {cfg.n_layer}-layer generator", total=settings.steps) as task:
        for step in range(settings.steps):
            model.train()
            for g in opt.param_groups:
                g["lr"] = lr_at(step)
            ids = _batch(train_seqs, batch_size=settings.batch_size, context=cfg.context,
                         pad=pad, rng=rng)
            loss = _loss(model, ids, pad)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            running.append(loss.item())
            if (step + 1) % settings.eval_every == 0 or step + 1 == settings.steps:
                curve["step"].append(step + 1)
                curve["train_loss"].append(float(np.mean(running)))
                curve["val_loss"].append(_evaluate(model, val_seqs or train_seqs, cfg, pad,
                                                   seed=val_rng_seed))
                running = []
            task.advance()
    curve["seconds"] = time.perf_counter() - t0
    model.eval()
    return model, curve


@torch.no_grad()
def _evaluate(model: SymbolicGPT, seqs: Sequence[np.ndarray], cfg: GPTConfig, pad: int, *,
              seed: int, batches: int = 4) -> float:
    model.eval()
    rng = np.random.default_rng(seed)  # the same crops at every evaluation
    losses = [float(_loss(model, _batch(seqs, batch_size=16, context=cfg.context, pad=pad,
                                        rng=rng), pad)) for _ in range(batches)]
    return float(np.mean(losses))


# --- sampling -----------------------------------------------------------------------------


def filter_logits(logits: torch.Tensor, *, top_k: int = TOP_K, top_p: float = TOP_P
                  ) -> torch.Tensor:
    """Keep the ``top_k`` largest logits per row, then the smallest set whose probability
    reaches ``top_p`` (nucleus sampling, Holtzman et al. 2020); the rest become -inf.
    The most likely token always survives."""
    if top_k > 0:
        kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if 0.0 < top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        cum = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
        drop = cum - torch.softmax(sorted_logits, dim=-1) >= top_p  # mass before this token
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    return logits


def _forward_cached(model: SymbolicGPT, ids: torch.Tensor, cache: list, start: int
                    ) -> torch.Tensor:
    """Forward ``ids`` [B, n] at positions ``start..start+n-1`` reusing the keys and values
    of earlier positions in ``cache`` (one ``(k, v)`` per block, updated in place).

    The same computation as :meth:`SymbolicGPT.forward` (checked in the tests), with the
    attention unrolled from ``nn.MultiheadAttention``'s own parameters so each new token
    costs one position's work instead of the whole window's. Eval mode only.
    """
    b, n = ids.shape
    x = model.tok(ids) + model.pos(torch.arange(start, start + n, device=ids.device))
    for i, blk in enumerate(model.blocks):
        attn = blk.attn
        heads, d = attn.num_heads, attn.embed_dim
        h = blk.ln1(x)
        q, k, v = F.linear(h, attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)
        q, k, v = (t.view(b, n, heads, d // heads).transpose(1, 2) for t in (q, k, v))
        if cache[i] is not None:
            k, v = torch.cat([cache[i][0], k], dim=2), torch.cat([cache[i][1], v], dim=2)
        cache[i] = (k, v)
        total = k.shape[2]
        # query j (absolute start + j) sees keys 0..start + j
        keep = torch.arange(total)[None, :] <= torch.arange(total - n, total)[:, None]
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=keep)
        x = x + attn.out_proj(o.transpose(1, 2).reshape(b, n, d))
        x = x + blk.mlp(blk.ln2(x))
    return model.head(model.ln_f(x))


@torch.no_grad()
def sample(model: SymbolicGPT, prefixes: torch.Tensor, *, max_new_tokens: int,
           top_k: int = TOP_K, top_p: float = TOP_P, temperature: float = TEMPERATURE,
           generator: torch.Generator | None = None, stop_ids: Sequence[int] = (),
           token_ticks: torch.Tensor | None = None, until_ticks: int | None = None
           ) -> torch.Tensor:
    """Continue each row of ``prefixes`` [B, PREFIX_LEN] by up to ``max_new_tokens`` tokens.

    Keys and values are cached. When the context is full the window jumps: the
    conditioning prefix plus the latest half-context of the piece are re-encoded and
    generation goes on (a chunked sliding window; every window the model sees starts with
    the prefix, as in training). Rows that emit a ``stop_ids`` token are padded with it
    afterwards. With ``token_ticks`` (ticks each token id advances time, [V]) and
    ``until_ticks``, a row also stops once its music has lasted that long; generation ends
    when every row has stopped. The caller's model must be in eval mode (it is not changed
    here). Returns [B, PREFIX_LEN + new] ids. Temperature scales the logits before the
    top-k/top-p filter (the order of Hugging Face's ``generate`` logits processors).
    """
    if temperature <= 0:
        raise TrainingError(f"temperature must be positive, got {temperature!r}")
    if until_ticks is not None and (token_ticks is None or not len(stop_ids)):
        raise TrainingError("until_ticks needs token_ticks and a stop id")
    ctx = model.cfg.context
    seq = prefixes.clone()
    done = torch.zeros(seq.shape[0], dtype=torch.bool)
    stop = torch.tensor(list(stop_ids), dtype=torch.long)
    ticks = torch.zeros(seq.shape[0], dtype=torch.long)

    def encode_window() -> tuple[torch.Tensor, list, int]:
        keep = (ctx - PREFIX_LEN) // 2
        body = seq[:, PREFIX_LEN:][:, -keep:] if seq.shape[1] > PREFIX_LEN else seq[:, :0]
        window = torch.cat([seq[:, :PREFIX_LEN], body], dim=1)
        cache: list = [None] * len(model.blocks)
        return _forward_cached(model, window, cache, 0)[:, -1], cache, window.shape[1]

    last, cache, length = encode_window()
    for _ in range(max_new_tokens):
        logits = last / temperature
        logits[:, 0] = float("-inf")  # never <pad>
        probs = torch.softmax(filter_logits(logits, top_k=top_k, top_p=top_p), dim=-1)
        nxt = torch.multinomial(probs, 1, generator=generator).squeeze(1)
        if len(stop):
            nxt = torch.where(done, stop[0], nxt)
            done |= torch.isin(nxt, stop)
        if until_ticks is not None:
            ticks += token_ticks[nxt]
            done |= ticks >= until_ticks
        seq = torch.cat([seq, nxt[:, None]], dim=1)
        if len(stop) and bool(done.all()):
            break
        if length >= ctx:
            last, cache, length = encode_window()
        else:
            last = _forward_cached(model, nxt[:, None], cache, length)[:, -1]
            length += 1
    return seq


# --- checkpoint I/O -----------------------------------------------------------------------


def save_generator(model: SymbolicGPT, vocab: Vocabulary, directory: str | Path, name: str,
                   *, meta: dict) -> Path:
    """Write ``<name>.safetensors`` and ``<name>.json`` (config, vocabulary, ``meta``)."""
    # head.weight is tied to tok.weight (safetensors refuses shared storage) and is re-tied
    # on load.
    state = {k: v for k, v in model.state_dict().items() if k != "head.weight"}
    return save_weights(state, directory, name,
                        config={"name": name, "kind": "symbolic-gpt",
                                "architecture": asdict(model.cfg),
                                "vocabulary": list(vocab.tokens), **meta})


def load_generator(directory: str | Path, name: str) -> tuple[SymbolicGPT, Vocabulary, dict]:
    """Load a generator saved by :func:`save_generator`; checks the weights' SHA-256.

    Returns ``(model in eval mode, vocabulary, config dict)``. Raises
    :class:`ModelLoadError` when a file is missing, altered or mismatched.
    """
    config, state = load_weights(directory, name, kind="symbolic-gpt",
                                 what="symbolic generator")
    try:
        vocab = Vocabulary(tuple(config["vocabulary"]))
        model = SymbolicGPT(GPTConfig(**config["architecture"]))
        state["head.weight"] = state["tok.weight"]
        model.load_state_dict(state, strict=True)
        model.head.weight = model.tok.weight  # load_state_dict copies; keep them tied
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ModelLoadError(f"cannot load generator {name!r} from {str(directory)!r}: "
                             f"{exc}") from exc
    if len(vocab) != model.cfg.vocab_size:
        raise ModelLoadError(f"generator {name!r}: vocabulary of {len(vocab)} tokens but "
                             f"vocab_size {model.cfg.vocab_size}")
    model.eval()
    return model, vocab, config


__all__ = ["GENERATORS", "GPTConfig", "SymbolicGPT", "TrainSettings", "train_generator",
           "sample", "filter_logits", "save_generator", "load_generator",
           "TOP_K", "TOP_P", "TEMPERATURE", "EOS", "PAD"]
