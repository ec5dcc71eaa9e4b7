"""The model card, ``model_card.json``: the one reader and writer.

The card states what a checkpoint is and what it was measured to do: its name and version,
training data, validation metrics, calibration temperature, thresholds and verdict policy,
out-of-domain thresholds, error rates, robustness table, limitations, and the SHA-256 of
the weights it vouches for. Training writes it with the weights
(:func:`~musicbrain_cli.model.checkpoint.save_checkpoint`), ``finalize`` and ``refit-heads``
and ``evaluate --robustness --update-card`` update sections of it; every one of them goes
through :func:`write_card` (schema checked, written atomically as stable JSON by
:func:`musicbrain_cli.files.atomic_write`), so a crash never leaves half a card and two
writers cannot disagree on its form.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Mapping

from musicbrain_cli.errors import ModelLoadError, MusicBrainError
from musicbrain_cli.files import atomic_write, json_text

CARD_FILE = "model_card.json"
#: A card is a few kB of JSON; anything near this is not one.
MAX_CARD_BYTES = 16 << 20
CARD_KEYS = ("name", "version", "training_data", "metrics", "calibration", "thresholds",
             "intended_use", "limitations", "weights_sha256")


def default_card() -> dict[str, Any]:
    """A card with every schema key; fields a caller does not give keep these values."""
    return {
        "name": "musicbrain",
        "version": "0",
        "training_data": {},
        "metrics": {},
        "calibration": {"temperature": 1.0},
        "thresholds": {"detection": 0.5},
        "intended_use": "",
        "limitations": "",
        "weights_sha256": "",
    }


def verdict_policy_problem(*, threshold: float | None = None, band: float | None = None,
                           disagreement: float | None = None) -> str | None:
    """Why these numbers of a verdict policy (``card["verdict"]``; the ones given) are none,
    or ``None``: the one statement of their limits, applied by
    :class:`musicbrain_cli.verdict.VerdictPolicy` and by :func:`validate_card`."""
    # the threshold up to just above 1: an operating point set above a human validation clip
    # at exactly 1 accuses nothing (training.finalize.choose_threshold is never capped)
    if threshold is not None and not 0.0 < threshold <= 1.0 + 1e-9:
        return f"threshold must lie in (0, 1], got {threshold}"
    if band is not None and not 0.0 <= band < 0.5:
        return f"band must lie in [0, 0.5), got {band}"
    if disagreement is not None and not 0.0 < disagreement <= 0.5:
        return f"disagreement must lie in (0, 0.5], got {disagreement}"
    return None


def validate_card(card: Mapping[str, Any], *, error: type[MusicBrainError] = ModelLoadError) -> None:
    """Check the card's schema; raise ``error`` naming the first problem."""
    if not isinstance(card, Mapping):
        raise error(f"model card must be a JSON object, not {type(card).__name__}")
    missing = [k for k in CARD_KEYS if k not in card]
    if missing:
        raise error(f"model card lacks {missing}")
    calibration = card["calibration"]
    temperature = calibration.get("temperature") if isinstance(calibration, Mapping) else None
    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature > 0):
        raise error(f"model card calibration.temperature must be a positive number, not {temperature!r}")
    thresholds = card["thresholds"]
    if not isinstance(thresholds, Mapping) or "detection" not in thresholds:
        raise error(f"model card thresholds must hold 'detection', not {thresholds!r}")
    for name, value in thresholds.items():
        if not (isinstance(value, (int, float)) and 0.0 < value < 1.0):
            raise error(f"model card threshold {name!r} must lie in (0, 1), not {value!r}")
    # The verdict policy's numbers are read per track (VerdictPolicy.from_card): a card whose
    # band or disagreement is no number, or out of range, loaded and then failed every file
    # of a scan as an "internal error" (review, session 46).
    verdict = card.get("verdict")
    if verdict is not None:
        if not isinstance(verdict, Mapping):
            raise error(f"model card verdict must be a JSON object, not {verdict!r}")
        for key in ("threshold", "band", "disagreement", "min_windows_for_disagreement"):
            value = verdict.get(key)
            if key in verdict and (isinstance(value, bool) or not isinstance(value, (int, float))
                                   or not math.isfinite(value)):
                raise error(f"model card verdict.{key} must be a number, not {value!r}")
        problem = verdict_policy_problem(band=verdict.get("band"),
                                         disagreement=verdict.get("disagreement"))
        if problem:
            raise error(f"model card verdict.{problem}")


def read_card(directory: str | os.PathLike) -> dict[str, Any]:
    """The validated card of the checkpoint folder ``directory``.

    Raises :class:`ModelLoadError` naming the file when it is missing, unreadable, not JSON
    or not a valid card.
    """
    return read_card_and_sha256(directory)[0]


def read_card_and_sha256(directory: str | os.PathLike) -> tuple[dict[str, Any], str]:
    """:func:`read_card`, and the SHA-256 of the very bytes the card was parsed from (a
    report names the card that decided its verdict; hashing the file again afterwards could
    name another one, written in between)."""
    from musicbrain_cli.files import sha256_bytes
    from musicbrain_cli.inputs import read_regular

    path = Path(directory) / CARD_FILE
    if not path.is_file():
        raise ModelLoadError(f"checkpoint file missing: {str(path)!r}")
    try:
        data = read_regular(path, max_bytes=MAX_CARD_BYTES)
        card = json.loads(data.decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"cannot read {str(path)!r}: {exc}") from exc
    validate_card(card)
    return card, sha256_bytes(data)


def write_card(directory: str | os.PathLike, card: Mapping[str, Any], *,
               error: type[MusicBrainError] = ModelLoadError) -> Path:
    """Validate ``card`` (raising ``error``) and write it atomically into ``directory``.

    The text is :func:`musicbrain_cli.files.json_text` (sorted keys, two-space indent), so
    the same card always gives the same bytes.
    """
    validate_card(card, error=error)
    path = Path(directory) / CARD_FILE
    try:
        text = json_text(card)
    except (TypeError, ValueError) as exc:
        raise error(f"model card is not plain JSON: {exc}") from exc
    try:
        return atomic_write(path, text)
    except OSError as exc:
        raise error(f"cannot write {str(path)!r}: {exc}") from exc


def update_card(directory: str | os.PathLike, **sections: Any) -> dict[str, Any]:
    """Replace top-level ``sections`` of the card in ``directory`` (a value ``None`` removes
    the section), validate and write it atomically; returns the new card."""
    card = read_card(directory)
    for key, value in sections.items():
        if value is None:
            card.pop(key, None)
        else:
            card[key] = value
    write_card(directory, card)
    return card


def unfinished(card: Mapping) -> str | None:
    """Why a trained model may not give verdicts yet, or ``None``: ``musicbrain train``
    exports ``RUN/model`` and then finalizes its card (operating point, error rates,
    out-of-domain statistics); a run stopped in between leaves a card with its training
    record and no ``verdict``, which a scan would fill with default thresholds and no error
    rates. (A card without a training record, as a test builds, is not judged here.)"""
    if isinstance(card.get("training"), Mapping) and not isinstance(card.get("verdict"), Mapping):
        return ("its card was never finalized (training stopped before its operating point "
                "and error rates were measured): finish it with `musicbrain train --resume "
                "RUN` on the run folder that holds it")
    return None


def untrained_labels(card: Mapping) -> set[str]:
    """Labels the model card says had no training example to learn from: they are never
    offered as attributions. Finalize records them for every model
    (``training_data.labels_untrained``); cards finalized before it did name them only where
    ``refit-heads`` made their heads constants (``training.head_refit.labels_constant``)."""
    refit = ((card.get("training") or {}).get("head_refit") or {})
    recorded = (card.get("training_data") or {}).get("labels_untrained") or ()
    return {str(x) for x in (*recorded, *(refit.get("labels_constant") or ()))}


__all__ = ["CARD_FILE", "CARD_KEYS", "default_card", "validate_card", "read_card",
           "write_card", "update_card", "untrained_labels", "verdict_policy_problem"]
