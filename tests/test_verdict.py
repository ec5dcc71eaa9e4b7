"""Three-way verdicts: abstention rules can only produce 'inconclusive', never 'ai'."""

import itertools

import numpy as np
import pytest

from musicbrain_cli.verdict import (AI, HUMAN, INCONCLUSIVE, NO_EVIDENCE, LineFinding,
                                    VerdictPolicy, combine, content_finding, decide)

POLICY = VerdictPolicy(threshold=0.5, band=0.15, disagreement=0.3)


def test_clear_cases():
    assert decide(0.95, [0.9, 0.97, 0.99], policy=POLICY).label == AI
    assert decide(0.05, [0.01, 0.1, 0.02], policy=POLICY).label == HUMAN


def test_band_around_threshold_abstains():
    v = decide(0.6, [0.6, 0.6, 0.6], policy=POLICY)
    assert v.label == INCONCLUSIVE
    assert v.band == (0.35, 0.65)
    assert "abstention band" in v.reasons[0]
    assert decide(0.66, [0.66] * 3, policy=POLICY).label == AI  # just outside the band


def test_window_disagreement_abstains():
    windows = [0.99, 0.99, 0.01, 0.01, 0.99]           # 40% of windows below threshold
    v = decide(0.8, windows, policy=POLICY)
    assert v.label == INCONCLUSIVE
    assert v.window_share_ai == pytest.approx(0.6)
    # two windows are too few to disagree
    assert decide(0.8, [0.99, 0.01], policy=POLICY).label == AI


def test_out_of_domain_is_never_ai():
    v = decide(0.99, [0.99] * 5, policy=POLICY, in_domain=False,
               ood_detail="spectral distance: 9.000 > threshold 3.000")
    assert v.label == INCONCLUSIVE
    assert "outside the domain" in v.reasons[0] and "9.000" in v.reasons[0]


def test_no_abstention_rule_can_produce_ai():
    # Exhaustive over a grid: whenever the plain threshold says human, so does the verdict
    # or it abstains; 'ai' requires p >= threshold + band and an in-domain input.
    rng = np.random.default_rng(0)
    for p, dom in itertools.product(np.linspace(0, 1, 41), (True, False, None)):
        windows = rng.uniform(0, 1, size=rng.integers(1, 8))
        v = decide(float(p), windows, policy=POLICY, in_domain=dom)
        if v.label == AI:
            assert p >= POLICY.threshold + POLICY.band and dom is not False


def test_policy_from_card_and_validation():
    card = {"thresholds": {"detection": 0.7}, "verdict": {"band": 0.1}}
    pol = VerdictPolicy.from_card(card)
    assert pol.threshold == 0.7 and pol.band == 0.1 and pol.disagreement == 0.3
    with pytest.raises(ValueError):
        VerdictPolicy(threshold=1.5)
    with pytest.raises(ValueError):
        decide(float("nan"), [], policy=POLICY)


# --- combining evidence lines -----------------------------------------------------------------


def _line(name, finding, in_domain=True, can_exonerate=True, p=None, t=None):
    return LineFinding(line=name, finding=finding, in_domain=in_domain,
                       can_exonerate=can_exonerate, p_ai=p, threshold=t)


def test_one_line_in_domain_saying_ai_decides_even_against_a_human_line():
    v = combine([_line("content", "human", p=0.02, t=0.6),
                 _line("artifacts", "ai", p=0.97, t=0.9)])
    assert v.label == "ai" and v.ai_lines == ["artifacts"]
    assert "0.97 against 0.90" in v.reasons[0]
    assert "content line found no evidence of AI" in v.reasons[1]


def test_a_line_out_of_its_domain_cannot_accuse():
    v = combine([_line("content", "human"), _line("artifacts", "ai", in_domain=False)])
    assert v.label == "inconclusive"
    assert v.reasons == ["The artifacts line cannot speak for this recording: it lies outside "
                         "the domain its error rates were measured on."]


def test_human_needs_every_exonerating_line_in_domain_and_human():
    assert combine([_line("content", "human"), _line("artifacts", "human")]).label == "human"
    assert combine([_line("content", "human"),
                    _line("artifacts", "inconclusive")]).label == "inconclusive"
    assert combine([_line("content", "inconclusive"),
                    _line("artifacts", "human")]).label == "inconclusive"
    human = combine([_line("content", "human"), _line("artifacts", "human"),
                     _line("provenance", NO_EVIDENCE, in_domain=True, can_exonerate=False)])
    assert human.label == "human"
    assert human.reasons[0].startswith("No evidence of AI generation was found by these methods "
                                       "(content, artifacts)")


def test_provenance_accuses_but_never_exonerates_or_blocks():
    prov_ai = _line("provenance", "ai", can_exonerate=False)
    assert combine([_line("content", "human"), prov_ai]).label == "ai"
    absent = _line("provenance", NO_EVIDENCE, in_domain=False, can_exonerate=False)
    assert combine([_line("content", "human"), absent]).label == "human"
    with pytest.raises(ValueError, match="exonerate"):
        combine([prov_ai])
    with pytest.raises(ValueError, match="once"):
        combine([_line("content", "human"), _line("content", "ai")])


def test_content_verdict_becomes_a_line():
    policy = VerdictPolicy(threshold=0.6, band=0.1)
    out = decide(0.9, [0.9] * 4, policy=policy, in_domain=False, ood_detail="x")
    f = content_finding(out)
    # its operating point is where `ai` begins, the band's upper end, not its centre
    assert (f.line, f.finding, f.in_domain, f.p_ai) == ("content", "inconclusive", False, 0.9)
    assert f.threshold == pytest.approx(0.7) and f.domain_checked
    assert combine([f]).label == "inconclusive"
    ok = content_finding(decide(0.05, [0.05] * 4, policy=policy, in_domain=True))
    assert combine([ok]).label == "human"
    with pytest.raises(ValueError, match="finding"):
        LineFinding(line="x", finding="maybe", in_domain=True)


def test_a_content_model_without_a_domain_check_does_not_exonerate_but_still_accuses():
    """``in_domain`` None (the model's card names no domain check) counted as in domain, so
    such a model exonerated recordings whose likeness to its measured music was never
    checked; a human verdict needs every exonerating line in its domain (review)."""
    from musicbrain_cli.verdict import NO_DOMAIN_CHECK

    policy = VerdictPolicy(threshold=0.6, band=0.1)
    unchecked = content_finding(decide(0.05, [0.05] * 4, policy=policy, in_domain=None))
    assert unchecked.finding == INCONCLUSIVE and unchecked.reasons == (NO_DOMAIN_CHECK,)
    v = combine([unchecked])
    assert v.label == INCONCLUSIVE and any("made no domain check" in r for r in v.reasons)
    accused = content_finding(decide(0.95, [0.95] * 4, policy=policy, in_domain=None))
    assert accused.finding == AI and combine([accused]).label == AI
    # ... and its accusation never claims a domain check that was not made (review of
    # session 45: "within its own domain", and "In its domain: yes" in the report)
    assert not accused.domain_checked
    (reason,) = combine([accused]).reasons
    assert "within its own domain" not in reason and "domain was not checked" in reason
    from musicbrain_cli.report.html import _evidence

    (row,) = _evidence({"evidence": [{**accused.to_dict(), "details": {}}]}, {})
    assert row["in_domain"] == "not checked"


def test_probabilities_in_reasons_read_apart_from_the_edges_and_never_as_certainty():
    """Review (session 45): 0.5996 (inconclusive) and 0.6004 (`ai`) both read "0.60" in the
    reasons, the first "0.60 lies in the abstention band 0.40-0.60"; 0.9962 read "1.00"."""
    from musicbrain_cli.verdict import figures

    policy = VerdictPolicy(threshold=0.5, band=0.1)
    inside = decide(0.5996, [0.5996] * 4, policy=policy, in_domain=True)
    assert inside.label == INCONCLUSIVE and "0.5996" in inside.reasons[0]
    assert "band 0.4000-0.6000" in inside.reasons[0]
    sure = decide(0.9962, [0.9962] * 4, policy=policy, in_domain=True)
    assert sure.label == AI and "1.00" not in " ".join(sure.reasons) and "0.996" in sure.reasons[0]
    reason = combine([content_finding(sure)]).reasons[0]
    assert "(P(AI) 0.996 against 0.600)" in reason
    assert figures(0.99999, 0.6)[0] == "0.9999" and figures(0.73, 0.5) == ["0.73", "0.50"]


def test_unverified_evidence_of_ai_blocks_a_human_verdict_but_never_accuses():
    unverified = _line("provenance", "inconclusive", can_exonerate=False)
    v = combine([_line("content", "human"), _line("artifacts", "human"), unverified])
    assert v.label == "inconclusive"
    assert v.reasons == ["The provenance line holds unverified evidence of AI generation."]


def test_a_short_part_that_looks_ai_withholds_human_but_never_accuses():
    """Audit (session 26): 60 s of a human piece followed by 12 s of AI music was called
    `human` ("no evidence of AI generation") while its own timeline showed the last window
    at P(AI) 1.00: the mean hardly moved and one window in 13 is no disagreement."""
    from musicbrain_cli.verdict import VerdictPolicy, decide

    policy = VerdictPolicy(threshold=0.5, band=0.1)
    splice = [0.0] * 11 + [0.38, 1.0]
    v = decide(float(np.mean(splice)), splice, policy=policy)
    assert v.label == INCONCLUSIVE
    assert any("1 of the 13 analysis windows" in r and "the highest 1.00" in r for r in v.reasons)
    # below the band's upper edge a window is no such sign; one window is the track itself
    assert decide(0.05, [0.0] * 12 + [0.59], policy=policy).label == HUMAN
    assert decide(0.05, [0.05], policy=policy).label == HUMAN
    # a track that is AI as a whole is still called ai; the rule never makes an accusation
    assert decide(0.9, [0.9] * 12 + [0.2], policy=policy).label == AI


def test_a_line_out_of_its_domain_is_said_to_be_so_for_its_own_reason():
    """Audit (session 27): a decoder-artifact line that never ran (a band of 3.2 kHz, below
    what it analyses) was said to lie 'outside the domain its error rates were measured
    on', a reason it never gave."""
    narrow = LineFinding("artifacts", INCONCLUSIVE, in_domain=False,
                         reasons=("Decoder-artifact analysis not applicable: audio bandwidth "
                                  "3233 Hz is below 4000 Hz.",))
    v = combine([_line("content", "human"), narrow])
    assert v.reasons == ["The artifacts line cannot speak for this recording: decoder-artifact "
                         "analysis not applicable: audio bandwidth 3233 Hz is below 4000 Hz."]


def test_the_shipped_real_ai_record_was_measured_with_the_shipped_models_and_version():
    """Every human verdict quotes ``real_ai_measured.json`` only when it was measured with
    the same weights of every line and the same version (session 28). A release that changes
    a model or the version without measuring again would silently drop that sentence from
    every report: this test makes it re-measure (``benchmarks/external.py --record``)."""
    import json

    from musicbrain_cli import __version__
    from musicbrain_cli.artifacts.detector import ArtifactDetector
    from musicbrain_cli.symbolic.detector import SymbolicDetector
    from musicbrain_cli.verdict import REAL_AI_MEASURED, real_ai_measurement

    card = json.loads((REAL_AI_MEASURED.parent / "model" / "default" / "model_card.json")
                      .read_text(encoding="utf-8"))
    from musicbrain_cli.model.card import read_card_and_sha256

    from musicbrain_cli.files import sha256_file
    from musicbrain_cli.model.ood import OOD_FILE

    shipped = {"content": card["weights_sha256"],
               "content_card": read_card_and_sha256(REAL_AI_MEASURED.parent / "model" / "default")[1],
               "content_ood": sha256_file(REAL_AI_MEASURED.parent / "model" / "default" / OOD_FILE),
               "artifacts": ArtifactDetector.from_pretrained("default").sha256,
               "symbolic": SymbolicDetector.from_pretrained("default").sha256}
    record = json.loads(REAL_AI_MEASURED.read_text(encoding="utf-8"))
    assert record["models"] == shipped and record["version"] == __version__
    measured = real_ai_measurement(shipped, __version__)
    assert measured["applies"] and measured["sets"]
    for s in measured["sets"]:
        assert s["tracks"] > 0 and s["ai"] + s["human"] + s["inconclusive"] == s["tracks"]


def _real_ai_record(tmp_path, **changes):
    """A record as ``benchmarks/external.py --record`` writes it, with ``changes``."""
    import json

    from musicbrain_cli import __version__

    record = {"measured": "2026-12-05", "version": __version__, "doc": "the benchmark",
              "models": dict(SCAN_MODELS),
              "sets": [{"set": "text-to-music tracks", "tracks": 10, "ai": 0, "human": 3,
                        "inconclusive": 7, "failed": 1}]}
    record.update(changes)
    path = tmp_path / f"record-{len(list(tmp_path.iterdir()))}.json"
    path.write_text(json.dumps(record), encoding="utf-8")
    return path


SCAN_MODELS = {"content": "a" * 64, "content_card": "b" * 64, "content_ood": "f" * 64,
               "artifacts": "c" * 64, "symbolic": "d" * 64}


def test_a_real_ai_record_applies_only_to_exactly_the_models_it_names(tmp_path):
    """Review (external benchmark): a record naming no models, or the content weights alone,
    applied to every scan, so a human verdict said 'Measured with these same models' of
    models never measured."""
    from musicbrain_cli import __version__
    from musicbrain_cli.report.html import real_ai_sentence
    from musicbrain_cli.verdict import real_ai_measurement

    assert real_ai_measurement(SCAN_MODELS, __version__, path=_real_ai_record(tmp_path))["applies"]
    for models in ({}, {"content": SCAN_MODELS["content"]},
                   {k: v for k, v in SCAN_MODELS.items() if k != "content_card"},
                   {**SCAN_MODELS, "content_card": None}, {**SCAN_MODELS, "provenance": "e" * 64}):
        got = real_ai_measurement(SCAN_MODELS, __version__,
                                  path=_real_ai_record(tmp_path, models=models))
        assert got["applies"] is False, models
        assert real_ai_sentence(got).startswith("How this version's verdict does on music of "
                                                "real AI generators was not measured with these")
    # and a scan without the card's SHA-256 is not the measured one either
    scan = {k: v for k, v in SCAN_MODELS.items() if k != "content_card"}
    got = real_ai_measurement(scan, __version__, path=_real_ai_record(tmp_path))
    assert got["applies"] is False and got["why"] == "measured with other content_card weights"
    # nor one with other domain statistics: they decide which tracks are out of domain, and so
    # inconclusive (review of session 47: the record applied whatever they were)
    scan = {**SCAN_MODELS, "content_ood": "0" * 64}
    got = real_ai_measurement(scan, __version__, path=_real_ai_record(tmp_path))
    assert got["applies"] is False and got["why"] == "measured with other content_ood weights"


def test_a_real_ai_record_with_malformed_counts_is_not_quoted_as_a_measurement(tmp_path):
    """Review (external benchmark): a record of the right models whose counts were edited
    or broken ('500 of 10 ... human', '-3 of 10', 'all of 10', 'None AI') was quoted as
    measured; a record whose sets were not sets at all applied and the report then said
    nothing of the rate on real generators, not even that it is unknown."""
    from musicbrain_cli import __version__
    from musicbrain_cli.report.html import real_ai_sentence
    from musicbrain_cli.verdict import real_ai_measurement

    good = {"set": "text-to-music tracks", "tracks": 10, "ai": 0, "human": 3,
            "inconclusive": 7, "failed": 1}
    no_ai = {k: v for k, v in good.items() if k != "ai"}
    for sets in ([{**good, "human": 500}], [{**good, "human": -3, "inconclusive": 10}],
                 [{**good, "human": "all"}], [no_ai], [{**good, "human": 3.0}],
                 [{**good, "tracks": 0, "human": 0, "inconclusive": 0}],
                 [{**good, "failed": True}], [{**good, "set": ""}], [good, {**good, "ai": 1}],
                 "abc", [1, 2]):
        got = real_ai_measurement(SCAN_MODELS, __version__,
                                  path=_real_ai_record(tmp_path, sets=sets))
        assert got == {"applies": False, "why": "the measurement's counts are malformed",
                       "measured": "2026-12-05"}, sets
        assert "was not measured with these models" in real_ai_sentence(got)
