"""Checkpoint I/O: a checkpoint is data, never code.

A checkpoint is a directory of three files::

    model.safetensors   the weights (safetensors: no pickle, nothing executes on load);
                        its metadata also carries the config JSON ("inside")
    config.json         {"format", "format_version", "model": ModelConfig.to_dict(),
                         "extra": {...}}  ("beside": e.g. the resolved training recipe)
    model_card.json     {"name", "version", "training_data", "metrics",
                         "calibration": {"temperature"}, "thresholds": {"detection", ...},
                         "intended_use", "limitations", "weights_sha256"}

The card records the SHA-256 of ``model.safetensors``; loading recomputes it and refuses a
mismatch (as whisper checks its downloads). The network is rebuilt from ``config.json`` by
:func:`~musicbrain_cli.model.net.build_model`, never from a class named in the file
(STYLE.md convention 5; demucs' pickled classes are the counter-example). Every file is
written to a temporary name and renamed into place, the card last, so a crash never leaves a
card that vouches for weights that are not there.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import torch

from musicbrain_cli.errors import ConfigError, ModelLoadError, MusicBrainError
from musicbrain_cli.files import atomic_write, json_text, sha256_file
from musicbrain_cli.model.card import (CARD_FILE, CARD_KEYS, default_card, read_card,  # noqa: F401
                                       validate_card, write_card)
from musicbrain_cli.model.config import ModelConfig

if TYPE_CHECKING:
    from musicbrain_cli.model.net import MusicBrainNet

WEIGHTS_FILE = "model.safetensors"
#: Read whole, once (hashed and parsed from the same bytes); the shipped ones are ~14 MB.
MAX_WEIGHTS_BYTES = 4 << 30
CONFIG_FILE = "config.json"
CHECKPOINT_FORMAT = "musicbrain-checkpoint"
CHECKPOINT_FORMAT_VERSION = 1

#: Where shipped models live: ``musicbrain_cli/model/<name>/`` (package data).
PACKAGE_MODELS = Path(__file__).resolve().parent
DEFAULT_MODEL = "default"

#: SHA-256 of the weights of each model shipped in the package. The card records the hash
#: too, but a card can be edited along with the weights; this pin lives in the code, so a
#: tampered or corrupted shipped model is refused (tests/test_default_model.py keeps it in
#: step with the file).
SHIPPED_WEIGHTS_SHA256: dict[str, str] = {
    "default": "0820e3d315cb237ec95a306c0e9c2b14e201d441dc27aa881a3bc151816995b8",
}


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The bare network inside DDP (``.module``) or ``torch.compile`` (``._orig_mod``)."""
    while True:
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if not isinstance(inner, torch.nn.Module):
            return model
        model = inner


def save_checkpoint(directory: str | os.PathLike, model: torch.nn.Module, config: ModelConfig, *,
                    model_card: Mapping[str, Any], extra_config: Mapping[str, Any] | None = None,
                    ) -> dict[str, Any]:
    """Write ``model.safetensors``, ``config.json`` and ``model_card.json`` into ``directory``.

    ``model_card`` fields override :func:`default_card`; ``weights_sha256`` is computed here.
    Returns the card as written. The model is not modified (weights are copied to CPU).
    """
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    card = default_card()
    card.update(copy.deepcopy(dict(model_card)))
    card["weights_sha256"] = ""
    validate_card(card, error=ConfigError)
    config_doc = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_FORMAT_VERSION,
        "model": config.to_dict(),
        "extra": dict(extra_config or {}),
    }
    try:
        config_text = json_text(config_doc)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"checkpoint config is not plain JSON: {exc}") from exc
    state = {k: v.detach().to("cpu", copy=True).contiguous()
             for k, v in _unwrap(model).state_dict().items()}
    # One metadata key only: safetensors writes its metadata map in Rust's randomised hash
    # order, so two keys gave the same weights two different files (and SHA-256s) from run
    # to run. config.json beside the weights carries the format tag.
    metadata = {"config": json_text(config.to_dict())}
    atomic_write(directory / WEIGHTS_FILE, lambda p: save_file(state, str(p), metadata=metadata))
    card["weights_sha256"] = sha256_file(directory / WEIGHTS_FILE)
    atomic_write(directory / CONFIG_FILE, config_text)
    write_card(directory, card, error=ConfigError)     # last: it vouches for the weights
    return card


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise ModelLoadError(f"checkpoint file missing: {str(path)!r}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"cannot read {str(path)!r}: {exc}") from exc


def read_config(directory: str | os.PathLike) -> tuple[ModelConfig, dict[str, Any]]:
    """``(ModelConfig, extra)`` from a checkpoint's ``config.json``."""
    path = Path(directory) / CONFIG_FILE
    doc = _read_json(path)
    if not isinstance(doc, dict) or doc.get("format") != CHECKPOINT_FORMAT:
        raise ModelLoadError(f"{str(path)!r} is not a MusicBrain checkpoint config")
    if doc.get("format_version") != CHECKPOINT_FORMAT_VERSION:
        raise ModelLoadError(
            f"{str(path)!r} has checkpoint format version {doc.get('format_version')!r}; "
            f"this MusicBrain reads version {CHECKPOINT_FORMAT_VERSION}"
        )
    try:
        config = ModelConfig.from_dict(doc.get("model") or {})
    except MusicBrainError as exc:
        raise ModelLoadError(f"invalid model config in {str(path)!r}: {exc}") from exc
    return config, dict(doc.get("extra") or {})


def load_checkpoint(directory: str | os.PathLike, *, device: str | torch.device = "cpu",
                    expected_sha256: str | None = None, hashes: dict[str, str] | None = None,
                    ) -> tuple[MusicBrainNet, ModelConfig, dict[str, Any]]:
    """Load ``(model, config, card)``; the model is in eval mode on ``device``.

    The weights and the card are each read once: their hashes are of the bytes loaded, so a
    file replaced during the load cannot pass a check made on its predecessor. ``hashes``
    (optional) receives them, ``{"weights": ..., "card": ...}``.

    Raises :class:`ModelLoadError` naming the problem: a missing directory or file, a card
    whose SHA-256 (or ``expected_sha256``) does not match the weights, an unknown backbone,
    missing/unexpected tensors or wrong tensor shapes, a ``config.json`` that disagrees with
    the config stored inside the weights.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load as load_bytes

    from musicbrain_cli.files import safetensors_metadata, sha256_bytes
    from musicbrain_cli.inputs import read_regular
    from musicbrain_cli.model.card import read_card_and_sha256
    from musicbrain_cli.model.net import build_model

    directory = Path(directory)
    if not directory.is_dir():
        raise ModelLoadError(f"checkpoint directory not found: {str(directory)!r}")
    card, card_sha256 = read_card_and_sha256(directory)
    config, _ = read_config(directory)
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise ModelLoadError(f"checkpoint file missing: {str(weights)!r}")
    try:
        data = read_regular(weights, max_bytes=MAX_WEIGHTS_BYTES)
    except OSError as exc:
        raise ModelLoadError(f"cannot read weights {str(weights)!r}: {exc}") from exc
    digest = sha256_bytes(data)
    # The card's hash is always checked: a card recording none (null) vouches for nothing.
    for source, expected in (("the model card", card["weights_sha256"]), ("the caller", expected_sha256)):
        if (expected is not None or source == "the model card") and digest != str(expected).lower():
            raise ModelLoadError(
                f"SHA-256 of {str(weights)!r} is {digest}, but {source} expects {expected}: "
                "the weights were altered or belong to another checkpoint"
            )
    try:
        model = build_model(config)
    except MusicBrainError as exc:
        raise ModelLoadError(f"cannot build the model of {str(directory)!r}: {exc}") from exc
    try:
        state = load_bytes(data)
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot read weights {str(weights)!r}: {exc}") from exc
    expected_state = model.state_dict()
    missing = sorted(set(expected_state) - set(state))
    unexpected = sorted(set(state) - set(expected_state))
    if missing or unexpected:
        raise ModelLoadError(
            f"weights {str(weights)!r} do not match the {config.backbone!r} model: "
            f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}"
        )
    wrong = [f"{k}: {tuple(state[k].shape)} != {tuple(v.shape)}"
             for k, v in expected_state.items() if state[k].shape != v.shape]
    if wrong:
        raise ModelLoadError(f"weights {str(weights)!r} have wrong tensor shapes: {wrong[:5]}")
    bad_dtype = [k for k, v in expected_state.items() if state[k].dtype != v.dtype]
    if bad_dtype:
        raise ModelLoadError(f"weights {str(weights)!r} have unexpected dtypes: {bad_dtype[:5]}")
    try:
        metadata = safetensors_metadata(data)
    except ValueError as exc:
        raise ModelLoadError(f"cannot read weights {str(weights)!r}: {exc}") from exc
    _check_config_inside(weights, config, metadata)
    model.load_state_dict(state, strict=True)
    if hashes is not None:
        hashes.update(weights=digest, card=card_sha256)
    return model.to(device).eval(), config, card


def _check_config_inside(weights: Path, config: ModelConfig, metadata: Mapping[str, str]) -> None:
    """Refuse a ``config.json`` that disagrees with the config inside the weights file.

    ``config.json`` is covered by no hash (the card's SHA-256 and the shipped pin cover the
    weights file only), and much of it changes no tensor shape: the order of labels in a
    group (``human``/``ai`` swapped turns every P(AI) into P(human)), the front end's
    scaling. The copy inside the weights' metadata is covered by their SHA-256.
    """
    inside_text = metadata.get("config")
    if inside_text is None:
        raise ModelLoadError(f"weights {str(weights)!r} carry no config to check "
                             f"{CONFIG_FILE} against: not a MusicBrain checkpoint")
    try:
        inside = ModelConfig.from_dict(json.loads(inside_text)).to_dict()
    except (ValueError, TypeError, MusicBrainError) as exc:
        raise ModelLoadError(f"weights {str(weights)!r} carry an invalid config: {exc}") from exc
    beside = config.to_dict()
    if json_text(inside) != json_text(beside):
        differ = sorted(k for k in set(inside) | set(beside)
                        if json_text(inside.get(k)) != json_text(beside.get(k)))
        raise ModelLoadError(
            f"{CONFIG_FILE} beside {str(weights)!r} does not match the config stored inside "
            f"the weights (differs in {differ}): it was edited or belongs to another checkpoint"
        )


def pinned_sha256(name_or_path: str | os.PathLike) -> str | None:
    """The pinned weights hash when ``name_or_path`` names a shipped model, else ``None``."""
    text = str(name_or_path)
    if text in SHIPPED_WEIGHTS_SHA256 and not Path(text).exists():
        return SHIPPED_WEIGHTS_SHA256[text]
    return None


def resolve_model(name_or_path: str | os.PathLike = DEFAULT_MODEL) -> Path:
    """A checkpoint directory from a shipped model's name or a path.

    ``"default"`` (or another name) means ``musicbrain_cli/model/<name>/`` inside the
    package; anything else is a directory path. Raises :class:`ModelLoadError` when the
    directory does not exist or holds no weights.
    """
    text = str(name_or_path)
    if text and os.sep not in text and "/" not in text and not Path(text).exists():
        directory = PACKAGE_MODELS / text
        if not (directory / WEIGHTS_FILE).is_file():
            hint = (" No trained default model is shipped yet: train one with "
                    "'musicbrain train' and pass its output directory with --model."
                    if text == DEFAULT_MODEL else "")
            raise ModelLoadError(
                f"no shipped model named {text!r} (looked for {str(directory / WEIGHTS_FILE)!r}).{hint}"
            )
        return directory
    directory = Path(name_or_path).expanduser()
    if not directory.is_dir():
        raise ModelLoadError(f"model directory not found: {str(directory)!r}")
    if not (directory / WEIGHTS_FILE).is_file():
        raise ModelLoadError(f"model directory {str(directory)!r} holds no {WEIGHTS_FILE}")
    return directory
