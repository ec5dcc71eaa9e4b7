"""Three-way verdicts: ``ai``, ``human`` or ``inconclusive``, each with its reasons.

A false accusation of a human composer is the costliest error this tool can make, so the
rule abstains whenever the evidence is weak rather than guess:

1. out of domain (the input is unlike the training data) -> ``inconclusive``;
2. the calibrated probability lies within ``band`` of the operating threshold ->
   ``inconclusive``;
3. the windows disagree strongly (a sizeable share on each side of the threshold) ->
   ``inconclusive``; so does a track below the threshold in which any window reaches the
   band's upper edge (a short part that looks AI-generated: a splice);
4. otherwise ``ai`` when the calibrated probability reaches the threshold, else ``human``.

Rules 1-3 can only turn a verdict into ``inconclusive``; none of them can produce ``ai``.
The policy's numbers come from the model card (``card["verdict"]``), so a report can say
exactly which rule applied with which numbers.

A track is judged by several independent evidence lines (the content model above, the
decoder-artifact line, the symbolic line on the notes played, C2PA provenance), each with its
own calibration and operating point.
:func:`combine` is the one rule that joins them (issue 22):

- ``ai`` when any line that is in its own domain says ``ai`` beyond its operating point;
- ``human`` only when every line that can speak for a human origin is in its domain and
  says ``human`` (a line that has nothing to say, such as provenance without a manifest,
  is no evidence either way and neither helps nor blocks; a line that cannot exonerate but
  holds evidence of AI short of proof, ``inconclusive``, blocks ``human``: an unverified C2PA
  declaration or one in an ingredient, notes that lean towards AI, or a finding of AI outside
  the line's own domain);
- otherwise ``inconclusive``, with each line's reason.
"""

from __future__ import annotations

import copy
import functools
import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from musicbrain_cli.text import apart

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
        # the limits are the model card's (validate_card refuses a card that breaks them)
        from musicbrain_cli.model.card import verdict_policy_problem

        problem = verdict_policy_problem(threshold=self.threshold, band=self.band,
                                         disagreement=self.disagreement)
        if problem:
            raise ValueError(problem)

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


def figures(p: float, *edges: float) -> list[str]:
    """``p`` and ``edges`` written with one number of decimals, 2 to 4, as the rule's reasons
    print them: :func:`musicbrain_cli.text.apart`."""
    return apart(p, *edges, least=2, most=4)


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
    # where `ai` begins: not capped at 1, so that a boundary set above every human
    # validation clip (above 1 when one scored exactly 1) accuses nothing, and the band
    # recorded says so (session 28 review); the splice rule below still reads 1 as its top
    lo, hi = max(0.0, t - policy.band), t + policy.band
    windows = np.asarray(window_p_ai, dtype=np.float64)
    share_ai = float((windows >= t).mean()) if windows.size else None
    reasons: list[str] = []

    if in_domain is False:
        detail = f" ({ood_detail})" if ood_detail else ""
        reasons.append("The recording lies outside the domain the model was trained on"
                       f"{detail}; its output there is not reliable.")
    if lo < p_ai < hi:
        p_s, lo_s, hi_s, t_s = figures(p_ai, lo, hi, t)
        reasons.append(f"The calibrated probability of AI, {p_s}, lies in the abstention "
                       f"band {lo_s}-{hi_s} around the threshold {t_s}.")
    if (share_ai is not None and windows.size >= policy.min_windows_for_disagreement
            and min(share_ai, 1.0 - share_ai) >= policy.disagreement):
        reasons.append(f"The analysis windows disagree: {share_ai:.0%} of them are above the "
                       f"threshold and {1 - share_ai:.0%} below.")

    # A part that says AI inside a whole that does not: a short AI section spliced into a
    # human recording moves the mean little and sits in too few windows to count as
    # disagreement, yet the report's own timeline shows it (session 26 audit: 60 s of a
    # human piece + 12 s of AI, called human with its last window at P(AI) 1.00). The track
    # is then not exonerated; it is not accused either.
    top = float(windows.max()) if windows.size > 1 else None
    splice_at = min(1.0, hi)
    if not reasons and p_ai < t and top is not None and top >= splice_at:
        n_high = int((windows >= splice_at).sum())
        top_s, at_s, t_s = figures(top, splice_at, t)
        reasons.append(f"{n_high} of the {windows.size} analysis windows reach a probability "
                       f"of AI of {at_s} or more (the highest {top_s}), though the "
                       f"recording as a whole lies below the threshold {t_s}: a part of it "
                       "may be AI-generated (see the timeline).")

    if reasons:
        label = INCONCLUSIVE
    elif p_ai >= t:
        label = AI
        p_s, t_s, hi_s = figures(p_ai, t, hi)
        reasons.append(f"The calibrated probability of AI, {p_s}, is at or above the "
                       f"threshold {t_s}, outside the abstention band (AI from {hi_s}).")
    else:
        label = HUMAN
        p_s, t_s, lo_s = figures(p_ai, t, lo)
        reasons.append(f"The calibrated probability of AI, {p_s}, is below the threshold "
                       f"{t_s}, outside the abstention band (human up to {lo_s}).")
    return Verdict(label=label, p_ai=float(p_ai), threshold=t, band=(lo, hi), reasons=reasons,
                   window_share_ai=share_ai, in_domain=in_domain)


# --- several evidence lines -------------------------------------------------------------------

#: What a line can say about one track. ``NO_EVIDENCE``: the line has nothing to say either way
#: (no C2PA manifest; a valid manifest that declares no AI step).
NO_EVIDENCE = "no_evidence"
LINE_FINDINGS = (AI, HUMAN, INCONCLUSIVE, NO_EVIDENCE)


def track_verdict(prediction, detector) -> tuple[Verdict, dict]:
    """The three-way verdict of one track and its out-of-domain facts.

    The one place where the model card's policy, the track aggregate and the out-of-domain
    checks meet, so scans, evaluations, robustness rows and reproductions apply the same
    rule. ``prediction`` is the detector's
    :class:`~musicbrain_cli.model.inference.TrackPrediction` (its windows' calibrated
    probabilities, embeddings and spectral profiles); ``detector`` carries the card and its
    out-of-domain statistics (``detector.ood``; ``None``: no domain check, said in the facts).
    """
    from musicbrain_cli.model.ood import check_domain, describe_failures
    from musicbrain_cli.taxonomy import DETECTION_LABEL

    policy = VerdictPolicy.from_card(detector.card)
    det = list(prediction.labels).index(DETECTION_LABEL)
    # silent windows are not judged (intake.quiet_window): not in the aggregate (the
    # prediction's), not among the windows the rules read, not in the domain check
    judged = np.asarray(prediction.judged, bool)
    silent = not judged.any()
    if silent:
        judged = np.ones_like(judged)
    ood_facts: dict = {"available": False}
    if detector.ood is not None:
        out = prediction.outputs
        ood_facts = check_domain(detector.ood, detector.card.get("ood") or {},
                                 out.embeddings[judged],
                                 None if out.profiles is None else out.profiles[judged])
    in_domain = ood_facts["in_domain"] if ood_facts.get("available") else None
    verdict = decide(float(prediction.aggregate[DETECTION_LABEL]["mean"]),
                     prediction.window_probs[judged, det], policy=policy, in_domain=in_domain,
                     ood_detail=describe_failures(ood_facts))
    if verdict.label == AI and not silent and _silence_carries(prediction, judged, det, policy,
                                                               in_domain):
        verdict = replace(verdict, label=INCONCLUSIVE, reasons=[SILENCE_CUE])
    if silent:
        verdict = replace(verdict, label=INCONCLUSIVE, reasons=[NEAR_SILENT])
    elif _too_short(prediction, detector.config.front_end.sample_rate):
        verdict = replace(verdict, label=INCONCLUSIVE, reasons=[TOO_SHORT])
    return verdict, ood_facts


#: A window holding a stretch of digital silence this long (seconds) may not carry an `ai`
#: verdict: the shipped content model reads silence as a cue of AI (session 39).
SILENCE_CUE_S = 0.25
#: Nor may a window whose quietest second lies this far (dB) below its mean power
#: (:func:`~musicbrain_cli.audio.intake.softest_span_db`): the model reads a soft stretch (a
#: fade, a soft opening, a pause with its reverb) as a cue of AI too, graded by how quiet
#: (session 40). Chosen in session 41 on the medium reference corpus's validation split,
#: by a rule fixed beforehand: no human validation clip called `ai` as rendered or after any
#: of five edits (3-s fades in, quadratic and linear; a 1-s fade-in; the first second 30 dB
#: down; a 6-s fade-out), at the least cost to the AI clips called `ai` as rendered (127 ->
#: 113 of 150; -15 dB: 117, but a 1-s fade-in and a 6-s fade-out each accused one human clip).
SOFT_CUE_DB = -10.0


def _silence_carries(prediction, judged: np.ndarray, det: int, policy: "VerdictPolicy",
                     in_domain: bool | None) -> bool:
    """:func:`silence_carries` on a track's judged windows (``False`` when the prediction
    measured neither silence nor soft stretches)."""
    silence = getattr(prediction, "silence_s", None)
    soft = getattr(prediction, "soft_db", None)
    if silence is None and soft is None:
        return False
    n = len(judged)
    return silence_carries(np.asarray(prediction.window_probs)[judged, det],
                           np.asarray(prediction.n_valid, dtype=np.float64)[judged],
                           (np.zeros(n) if silence is None
                            else np.asarray(silence, dtype=np.float64))[judged],
                           policy=policy, in_domain=in_domain,
                           soft_db=None if soft is None else np.asarray(soft, np.float64)[judged])


def cue_windows(silence_s: Sequence[float], soft_db: Sequence[float] | None = None) -> np.ndarray:
    """``[N]`` bool: the windows that may not carry an `ai` finding on their own: a stretch of
    digital silence of :data:`SILENCE_CUE_S` or more, or a quietest second at
    :data:`SOFT_CUE_DB` or below (when measured)."""
    cue = np.asarray(silence_s, dtype=np.float64) >= SILENCE_CUE_S
    if soft_db is not None:
        cue |= np.asarray(soft_db, dtype=np.float64) <= SOFT_CUE_DB
    return cue


def silence_carries(window_p_ai: Sequence[float], weights: Sequence[float],
                    silence_s: Sequence[float], *, policy: "VerdictPolicy",
                    in_domain: bool | None, soft_db: Sequence[float] | None = None) -> bool:
    """Whether an `ai` finding rests on windows that hold silence or a soft stretch
    (:func:`cue_windows`): without them (none left, or the rule applied to the rest, their
    mean weighted as the aggregate is) it is not `ai`. The one place of the rule: scans,
    evaluations and a new model's card (finalize) apply it. ``soft_db`` ``None``: not
    measured, the silence alone decides."""
    p = np.asarray(window_p_ai, dtype=np.float64)
    free = ~cue_windows(silence_s, soft_db)
    if free.all():
        return False
    if not free.any():
        return True
    mean = float(np.clip(np.average(p[free], weights=np.asarray(weights, np.float64)[free]),
                         0.0, 1.0))
    return decide(mean, p[free], policy=policy, in_domain=in_domain).label != AI


#: Why an `ai` finding that rests on windows holding silence or a soft stretch is withheld.
SILENCE_CUE = ("The content model's AI finding rests on analysis windows that hold a stretch "
               "of digital silence (0.25 s or more below -60 dBFS) or a soft one (a second "
               "10 dB or more below the window's mean level: a fade, a soft opening, a pause), "
               "which this model reads as a sign of AI: the AI renderings it was trained on "
               "hold rests as silence three to four times as often as the human ones, and on "
               "human test clips a pause, a fade-in or a soft first second turned some into "
               "AI. Without those windows the finding is not AI, so it does not accuse.")


def _too_short(prediction, sample_rate: int) -> bool:
    """A track shorter than one window that fills less of it than the edge rule lets silence
    leave (:data:`~musicbrain_cli.audio.intake.EDGE_SILENCE_SHARE`): its one window would
    repeat more than a quarter of itself."""
    from musicbrain_cli.audio.intake import EDGE_SILENCE_SHARE, seconds_to_samples

    win = seconds_to_samples(prediction.window_s, sample_rate)
    n_valid = np.asarray(prediction.n_valid)
    return bool(n_valid.size) and bool(np.all(prediction.padded)) and \
        int(n_valid.max()) < (1.0 - EDGE_SILENCE_SHARE) * win


#: Why the content model does not judge a track shorter than three quarters of a window.
TOO_SHORT = ("The recording is shorter than three quarters of one analysis window, so its one "
             "window repeats more than a quarter of itself: the content model was measured on "
             "windows of music only, and on human clips of 4 s repeated to fill a window it "
             "called some AI. Its probability is shown, but it does not decide.")


#: Why a track whose every window is silent (in whole or over a quarter at an edge) gets no verdict.
NEAR_SILENT = ("No analysis window holds enough music to judge: each is near-silent (its peak "
               "below -60 dBFS) or silent over at least a quarter of it where the music begins "
               "or ends, and what fills that silence (dither, hiss, digital zeros) says nothing "
               "about how music was made.")


@dataclass(frozen=True)
class LineFinding:
    """One evidence line's own finding on a track, before the lines are combined.

    Attributes:
        line: the line's name (``content``, ``artifacts``, ``symbolic``, ``provenance``).
        finding: ``ai``, ``human``, ``inconclusive`` or ``no_evidence``, by the line's own
            operating point.
        in_domain: whether the track lies in the domain the line's error rates were measured
            on (``False``: its finding is not relied on).
        can_exonerate: whether this line's ``human`` counts towards a ``human`` verdict and its
            absence from the domain blocks one. Provenance cannot exonerate: a stripped or
            absent manifest says nothing about how music was made.
        p_ai: the line's calibrated probability of AI, when it has one.
        threshold: the line's operating point on ``p_ai``.
        reasons: the line's own reasons, in plain words.
        domain_checked: ``False`` where no domain check was made (a content model without
            domain statistics): ``in_domain`` is then an assumption, and is never worded as
            a finding ("within its own domain").
    """

    line: str
    finding: str
    in_domain: bool
    can_exonerate: bool = True
    p_ai: float | None = None
    threshold: float | None = None
    reasons: tuple[str, ...] = ()
    domain_checked: bool = True

    def __post_init__(self) -> None:
        if self.finding not in LINE_FINDINGS:
            raise ValueError(f"finding must be one of {LINE_FINDINGS}, got {self.finding!r}")
        if self.p_ai is not None and not (np.isfinite(self.p_ai) and 0.0 <= self.p_ai <= 1.0):
            raise ValueError(f"p_ai must be a probability, got {self.p_ai!r}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["reasons"] = list(self.reasons)
        return d


#: Why a content model without a domain check does not exonerate.
NO_DOMAIN_CHECK = ("The content model made no domain check (its card names none), so whether "
                   "this recording is like the music its error rates were measured on is not "
                   "known: its human finding is not relied on.")


def content_finding(verdict: Verdict) -> LineFinding:
    """The content model's :class:`Verdict` as one evidence line. A ``human`` verdict of a
    model that made no domain check (``in_domain`` None) is ``inconclusive`` here: a
    ``human`` verdict needs every exonerating line within its domain, and this one's domain
    was never checked (review). Its ``ai`` verdict stands, as before."""
    finding, reasons = verdict.label, tuple(verdict.reasons)
    if verdict.in_domain is None and finding == HUMAN:
        finding, reasons = INCONCLUSIVE, (NO_DOMAIN_CHECK,)
    # nothing judged (every window silent): a probability over noise is not shown
    judged = reasons != (NEAR_SILENT,)
    # its operating point is where `ai` begins, the upper end of the abstention band; the
    # threshold is the band's centre (review of session 45: "P(AI) 0.90 against 0.50")
    return LineFinding(line="content", finding=finding,
                       in_domain=verdict.in_domain is not False, can_exonerate=True,
                       p_ai=verdict.p_ai if judged else None, threshold=verdict.band[1],
                       reasons=reasons, domain_checked=verdict.in_domain is not None)


def artifact_finding(finding: Mapping) -> LineFinding:
    """The decoder-artifact finding (:meth:`musicbrain_cli.artifacts.detector.ArtifactDetector.
    analyse`, as a dict) as one evidence line.

    Where the line does not apply (too short, silent, too low a rate or bandwidth) it is out
    of its domain: it then cannot accuse, and it blocks a ``human`` verdict, since the
    absence of decoder peaks was never looked for. In its domain between its doubt threshold
    and its operating point (``leans_ai``) it leans towards AI: ``inconclusive``, which
    withholds a ``human`` verdict and never makes an ``ai`` one. So does a recording whose
    rate or bandwidth lies outside what its human side was calibrated on (``covers_human``
    false): a decoder's comb there still accuses, its absence was never measured. The
    shipped line does not accuse on its own (:data:`musicbrain_cli.artifacts.detector.
    ACCUSES`, session 28): at or above its operating point its finding leans towards AI.
    """
    explanation = str(finding.get("explanation") or "")
    if not finding.get("applicable"):
        return LineFinding(line="artifacts", finding=INCONCLUSIVE, in_domain=False,
                           can_exonerate=True, threshold=finding.get("threshold"),
                           reasons=(explanation,) if explanation else ())
    says_ai = bool(finding.get("says_ai"))
    # Outside the rates and bandwidths its human side was calibrated on, a comb-free spectrum
    # was never measured on human music: the line can still accuse there, not exonerate.
    uncovered = finding.get("covers_human") is False
    label = AI if says_ai else INCONCLUSIVE if finding.get("leans_ai") or uncovered else HUMAN
    return LineFinding(line="artifacts", finding=label, in_domain=True,
                       can_exonerate=True, p_ai=finding.get("p_ai"),
                       threshold=finding.get("threshold"),
                       reasons=(explanation,) if explanation else ())


def symbolic_finding(finding: Mapping) -> LineFinding:
    """The symbolic line's finding (:meth:`musicbrain_cli.symbolic.detector.SymbolicDetector.
    assess`, as a dict) as one evidence line.

    It never exonerates: its human side is the classical repertoire of the reference corpus,
    so notes that look human to it say nothing about a recording's origin. A finding that says
    AI (in its domain, at or beyond its operating point, from a line that accuses) is ``ai``;
    the shipped line does not accuse on its own (:data:`musicbrain_cli.symbolic.detector.
    ACCUSES`), so in its domain at or above its doubt threshold it leans towards AI:
    ``inconclusive``, which withholds a ``human`` verdict. Below that, or where it does not
    apply, it is no evidence either way.
    """
    explanation = str(finding.get("explanation") or "")
    in_domain = bool(finding.get("applicable")) and bool(finding.get("in_domain"))
    label = (AI if in_domain and finding.get("says_ai")
             else INCONCLUSIVE if in_domain and finding.get("leans_ai") else NO_EVIDENCE)
    return LineFinding(line="symbolic", finding=label, in_domain=in_domain, can_exonerate=False,
                       p_ai=finding.get("p_ai") if in_domain else None,
                       threshold=finding.get("threshold"),
                       reasons=(explanation,) if explanation else ())


def provenance_finding(finding: Mapping) -> LineFinding:
    """The C2PA provenance finding (:func:`musicbrain_cli.audio.provenance.read_provenance`, as a
    dict) as one evidence line.

    Only a valid manifest whose signer chains to a configured trust anchor can accuse: with
    no trust list, anyone can sign a human composer's track with a self-made certificate that
    declares ``trainedAlgorithmicMedia``. Such an unverified declaration is ``inconclusive``
    (it blocks a ``human`` verdict, never makes an ``ai`` one), and so is a valid manifest
    whose own actions declare no AI while an ingredient's manifest does (``declares_ai`` reads
    the asset's own actions; an ingredient's signer is not checked against the trust list, and
    an ingredient may only have been an input). Everything else (no manifest, a valid one that
    declares no AI, an invalid or unreadable one) is no evidence either way.
    """
    status = str(finding.get("status"))
    explanation = str(finding.get("explanation") or "")
    ingredient_ai = any(isinstance(a, Mapping) and a.get("declares_ai")
                        for a in finding.get("actions") or ())
    if status == "valid" and not finding.get("declares_ai") and ingredient_ai:
        label = INCONCLUSIVE
        why = ("A valid C2PA manifest declares no AI step of its own, but an ingredient's "
               "manifest declares AI generation; that signer is not verified against a trust "
               "list and an ingredient may only have been an input.")
    elif status == "valid" and finding.get("declares_ai"):
        if finding.get("trusted") is True:
            label = AI
            why = "A valid C2PA manifest from a trusted signer declares AI generation."
        else:
            label = INCONCLUSIVE
            why = ("A valid C2PA manifest declares AI generation, but its signer is not "
                   "verified against a trust list; such a manifest can be made by anyone.")
    else:
        label = NO_EVIDENCE
        why = {"absent": "No C2PA manifest: no evidence either way.",
               "valid": "A valid C2PA manifest that declares no AI step: no evidence either way.",
               "invalid": "The C2PA manifest does not validate (edited or damaged after "
                          "signing, or its signing certificate does not check out): no "
                          "evidence either way.",
               }.get(status, "The C2PA manifest could not be read: no evidence either way."
                     if finding.get("manifest_source") else
                     # no store was found before the reader failed: whether there is one is
                     # what was not checked (review of session 45)
                     "Whether the file carries a C2PA manifest could not be checked: no "
                     "evidence either way.")
    reasons = (why,) + ((explanation,) if explanation else ())
    return LineFinding(line="provenance", finding=label,
                       in_domain=bool(finding.get("applicable")), can_exonerate=False,
                       reasons=reasons)


@dataclass(frozen=True)
class CombinedVerdict:
    label: str
    reasons: list[str]
    ai_lines: list[str]
    lines: list[str]

    def to_dict(self) -> dict:
        return asdict(self)


def _lowered(reason: str) -> str:
    """A line's own reason set after a colon: its first letter lowered, one full stop."""
    text = str(reason).strip()
    first = text.split(" ", 1)[0]
    if not (len(first) > 1 and first.isupper()):          # an acronym (C2PA) stays as it is
        text = text[:1].lower() + text[1:]
    return text if text.endswith(".") else text + "."


def combine(findings: Sequence[LineFinding]) -> CombinedVerdict:
    """Join the evidence lines' findings into the track's verdict (the rule in the module doc).

    Raises ValueError when no line can exonerate: a ``human`` verdict must rest on a line
    that can give one, so a rule without such a line is a programming error.
    """
    if not any(f.can_exonerate for f in findings):
        raise ValueError("combine needs at least one line that can exonerate (the content line)")
    names = [f.line for f in findings]
    if len(set(names)) != len(names):
        raise ValueError(f"each evidence line may be given once, got {names}")
    says_ai = [f for f in findings if f.in_domain and f.finding == AI]
    if says_ai:
        # a line with a probability and an operating point says where it stands; one
        # without (provenance: a trusted signer's declaration) gives its own reason, not a
        # calibrated detection it never made (review of session 45)
        reasons = [(f"The {f.line} line, "
                    + ("within its own domain" if f.domain_checked else
                       "whose domain was not checked (its model has no domain statistics)")
                    + ", finds AI generation at or beyond its operating point (P(AI) {} against "
                    "{}).".format(*figures(f.p_ai, f.threshold)))
                   if f.p_ai is not None and f.threshold is not None else
                   (f"The {f.line} line finds AI generation: " + _lowered(f.reasons[0])
                    if f.reasons else f"The {f.line} line finds AI generation.")
                   for f in says_ai]
        others = [f for f in findings if f not in says_ai and f.finding == HUMAN]
        if others:
            reasons.append("The " + " and ".join(f.line for f in others) + " line"
                           + ("s" if len(others) > 1 else "") + " found no evidence of AI; "
                           "an absence of one kind of evidence does not outweigh a finding of another.")
        return CombinedVerdict(AI, reasons, [f.line for f in says_ai], names)
    blockers = []
    for f in findings:
        # the line's own reason when it gives one (a band too narrow to analyse, the
        # abstention band, say), not a generic one that may misstate why
        why = str(f.reasons[0]).strip().rstrip(".") if f.reasons else ""
        why = why[0].lower() + why[1:] if why else ""
        if not f.can_exonerate:
            # Such a line cannot speak for a human origin, but evidence of AI short of proof
            # (a manifest that declares AI from a signer no trust list vouches for, notes that
            # lean towards AI, a finding of AI outside the line's own domain) still forbids
            # saying that no evidence of AI was found.
            if f.in_domain and f.finding == INCONCLUSIVE:
                if f.p_ai is not None and f.threshold is not None:
                    p, t = apart(f.p_ai, f.threshold)
                    where = (f"short of its operating point {t}" if f.p_ai < f.threshold else
                             f"at or above its operating point {t}, where it does not accuse on "
                             "its own")
                    blockers.append(f"The {f.line} line leans towards AI generation "
                                    f"(P(AI) {p}, {where}).")
                else:
                    blockers.append(f"The {f.line} line holds unverified evidence of AI generation.")
            elif not f.in_domain and f.finding in (AI, INCONCLUSIVE):
                blockers.append(f"The {f.line} line finds evidence of AI generation outside its "
                                "own domain, where its finding is not relied on.")
            continue
        if not f.in_domain:
            blockers.append(f"The {f.line} line cannot speak for this recording: "
                            + (why or "it lies outside the domain its error rates were measured on")
                            + ".")
        elif f.finding != HUMAN:
            blockers.append(f"The {f.line} line is inconclusive" + (f": {why}." if why else "."))
    if blockers:
        return CombinedVerdict(INCONCLUSIVE, blockers, [], names)
    voters = [f.line for f in findings if f.can_exonerate]
    return CombinedVerdict(HUMAN, ["No evidence of AI generation was found by these methods ("
                                   + ", ".join(voters) + "), each within its own domain and "
                                   "operating point."], [], names)


# --- what this rule was measured to do on real AI music (session 28) -----------------------

#: The combined verdict's outcome on public AI music from real generators, measured once per
#: release by ``python benchmarks/external.py ../shared/eval --record
#: musicbrain_cli/real_ai_measured.json`` (evaluation material only: nothing chose a threshold
#: on it). It holds for the exact models and version it names, and for no others.
REAL_AI_MEASURED = Path(__file__).with_name("real_ai_measured.json")


#: The counts of one set of a record, as ``benchmarks/external.py --record`` writes them.
REAL_AI_COUNTS = ("tracks", "ai", "human", "inconclusive", "failed")


def _valid_real_ai_set(entry: object) -> bool:
    """Whether one set of the record is what the benchmark writes: a named set whose counts
    are whole numbers, at least one track measured, and every measured track given one
    verdict. A report quotes these numbers as measured; any other is not a measurement."""
    if not isinstance(entry, Mapping) or not isinstance(entry.get("set"), str) \
            or not entry["set"].strip():
        return False
    counts = [entry.get(k) for k in REAL_AI_COUNTS]
    if not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts):
        return False
    tracks, ai, human, inconclusive, _ = counts
    return tracks > 0 and ai + human + inconclusive == tracks


@functools.lru_cache(maxsize=4)
def _read_record(path: str) -> dict:
    """The record file, read once per process (a scan asks for every track)."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def real_ai_measurement(models: Mapping[str, str], version: str, *,
                        path: str | Path = REAL_AI_MEASURED) -> dict:
    """The record of :data:`REAL_AI_MEASURED` when it was measured with exactly these
    ``models`` (``{line: weights SHA-256}``: the same lines, each with the same SHA-256) and
    this MusicBrain ``version``:
    ``{"applies": True, **record}``; else ``{"applies": False, "why": ...}``, since a
    measurement of other models says nothing about these. A missing or unreadable record is
    ``applies: False`` too: a report then says the rate on real generators is unknown."""
    try:
        record = copy.deepcopy(_read_record(str(path)))   # the cached one is never handed out
        measured_models = dict(record["models"])
        measured_version = str(record["version"])
        sets = list(record["sets"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return {"applies": False, "why": f"no readable measurement ({type(exc).__name__})"}
    if not measured_models or not all(isinstance(sha, str) and sha
                                      for sha in measured_models.values()):
        return {"applies": False, "why": "the measurement does not name its models",
                "measured": record.get("measured")}
    # both ways: a line the scan ran that the record does not name was not measured either
    # (a record of {} or of the content weights alone applied to every scan)
    differ = sorted(line for line in set(measured_models) | set(models)
                    if models.get(line) != measured_models.get(line))
    if measured_version != version or differ or not sets:
        why = (f"measured with MusicBrain {measured_version}, not {version}"
               if measured_version != version else
               f"measured with other {', '.join(differ)} weights" if differ else "no sets")
        return {"applies": False, "why": why, "measured": record.get("measured")}
    if not all(_valid_real_ai_set(entry) for entry in sets):
        # one bad set spoils the record: quoting the others would hide the set it stood for
        return {"applies": False, "why": "the measurement's counts are malformed",
                "measured": record.get("measured")}
    return {"applies": True, **record}
