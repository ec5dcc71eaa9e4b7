"""Three-way verdicts: ``ai``, ``human`` or ``inconclusive``, each with its reasons.

A false accusation of a human composer is the costliest error this tool can make, so the
rule abstains whenever the evidence is weak rather than guess:

1. out of domain (the input is unlike the training data) -> ``inconclusive``;
2. the calibrated probability lies within ``band`` of the operating threshold ->
   ``inconclusive``;
3. the windows disagree strongly (a sizeable share on each side of the threshold) ->
   ``inconclusive``;
4. otherwise ``ai`` when the calibrated probability reaches the threshold, else ``human``.

Rules 1-3 can only turn a verdict into ``inconclusive``; none of them can produce ``ai``.
The policy's numbers come from the model card (``card["verdict"]``), so a report can say
exactly which rule applied with which numbers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Mapping, Sequence

import numpy as np

AI, HUMAN, INCONCLUSIVE = "ai", "human", "inconclusive"


@dataclass(frozen=True)
class VerdictPolicy:
    """Operating point and abstention rules.

    Attributes:
        threshold: calibrated P(AI) at or above which a track is called ``ai``.
        band: half-width of the abstention band around ``threshold`` (probability units).
        disagreement: a track with at least ``min_windows_for_disagreement`` windows is
            inconclusive when the share of its windows on the minority side of the
            threshold is at least this value.
        min_windows_for_disagreement: fewer windows than this cannot "disagree".
    """

    threshold: float = 0.5
    band: float = 0.15
    disagreement: float = 0.3
    min_windows_for_disagreement: int = 3

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must lie in (0, 1), got {self.threshold}")
        if not 0.0 <= self.band < 0.5:
            raise ValueError(f"band must lie in [0, 0.5), got {self.band}")
        if not 0.0 < self.disagreement <= 0.5:
            raise ValueError(f"disagreement must lie in (0, 0.5], got {self.disagreement}")

    @classmethod
    def from_card(cls, card: Mapping) -> "VerdictPolicy":
        """Read the policy from a model card, falling back to the defaults."""
        v = dict(card.get("verdict") or {})
        threshold = (card.get("thresholds") or {}).get("detection", v.get("threshold", cls.threshold))
        return cls(threshold=float(threshold),
                   band=float(v.get("band", cls.band)),
                   disagreement=float(v.get("disagreement", cls.disagreement)),
                   min_windows_for_disagreement=int(
                       v.get("min_windows_for_disagreement", cls.min_windows_for_disagreement)))

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Verdict:
    label: str
    p_ai: float
    threshold: float
    band: tuple[float, float]
    reasons: list[str] = field(default_factory=list)
    window_share_ai: float | None = None
    in_domain: bool | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["band"] = list(self.band)
        return d


def decide(p_ai: float, window_p_ai: Sequence[float], *, policy: VerdictPolicy,
           in_domain: bool | None = None, ood_detail: str | None = None) -> Verdict:
    """Apply ``policy`` to a track's calibrated probability and its per-window probabilities.

    Args:
        p_ai: the track's calibrated probability of AI (the aggregate the model card names).
        window_p_ai: calibrated probability of AI per analysis window.
        in_domain: the out-of-domain check's outcome; ``None`` when it was not run.
        ood_detail: which check fired, with its score and threshold, for the reason text.
    """
    if not np.isfinite(p_ai) or not 0.0 <= p_ai <= 1.0:
        raise ValueError(f"p_ai must be a probability, got {p_ai!r}")
    t = policy.threshold
    lo, hi = max(0.0, t - policy.band), min(1.0, t + policy.band)
    windows = np.asarray(window_p_ai, dtype=np.float64)
    share_ai = float((windows >= t).mean()) if windows.size else None
    reasons: list[str] = []

    if in_domain is False:
        detail = f" ({ood_detail})" if ood_detail else ""
        reasons.append("The recording lies outside the domain the model was trained on"
                       f"{detail}; its output there is not reliable.")
    if lo < p_ai < hi:
        reasons.append(f"The calibrated probability of AI, {p_ai:.2f}, lies in the abstention "
                       f"band {lo:.2f}-{hi:.2f} around the threshold {t:.2f}.")
    if (share_ai is not None and windows.size >= policy.min_windows_for_disagreement
            and min(share_ai, 1.0 - share_ai) >= policy.disagreement):
        reasons.append(f"The analysis windows disagree: {share_ai:.0%} of them are above the "
                       f"threshold and {1 - share_ai:.0%} below.")

    if reasons:
        label = INCONCLUSIVE
    elif p_ai >= t:
        label = AI
        reasons.append(f"The calibrated probability of AI, {p_ai:.2f}, is at or above the "
                       f"threshold {t:.2f}, outside the abstention band.")
    else:
        label = HUMAN
        reasons.append(f"The calibrated probability of AI, {p_ai:.2f}, is below the threshold "
                       f"{t:.2f}, outside the abstention band.")
    return Verdict(label=label, p_ai=float(p_ai), threshold=t, band=(lo, hi), reasons=reasons,
                   window_share_ai=share_ai, in_domain=in_domain)
