"""Defects of the provenance line and the combined verdict rule that a review reproduced.

Each test fails on the code before its fix. The C2PA fixtures are signed here with
certificates made in the test (see tests/test_provenance.py for the certificate profile).
"""

from __future__ import annotations

import numpy as np

from musicbrain_cli.audio.encode import encode_audio
from musicbrain_cli.audio.provenance import read_provenance
from musicbrain_cli.verdict import (AI, HUMAN, INCONCLUSIVE, NO_EVIDENCE, LineFinding, VerdictPolicy,
                                    combine, content_finding, decide, provenance_finding,
                                    symbolic_finding)
from test_provenance import _make_ca, _manifest, _sign, _signer

SR = 22050


def _line(name, finding, in_domain=True, can_exonerate=True, p=None, t=None, reasons=()):
    return LineFinding(line=name, finding=finding, in_domain=in_domain,
                       can_exonerate=can_exonerate, p_ai=p, threshold=t, reasons=tuple(reasons))


# --- provenance: an AI declaration in an ingredient, not in the asset's own actions -----------


def test_an_untrusted_ingredients_ai_declaration_does_not_accuse_under_a_trusted_signer(tmp_path):
    """A trusted signer (a DAW, say) signs a track whose own actions declare no AI, with an
    ingredient whose manifest, signed by anyone with a self-made CA, declares
    trainedAlgorithmicMedia. c2pa reports the whole store ``Trusted`` (it does not check the
    ingredient's signer against the configured anchors), and the finding said ``says_ai``:
    a scan with trust anchors called the track ``ai`` on the word of an unverified signer.
    The ingredient's declaration may withhold a ``human`` verdict; it must not accuse."""
    t = np.arange(SR) / SR
    src = tmp_path / "tone.wav"
    encode_audio(src, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), SR)
    trusted = _signer(*_make_ca("Trusted Root"), "Trusted DAW")
    anyone = _signer(*_make_ca("Anyone's Root"), "Anyone")
    ingredient = tmp_path / "claimed-ai.wav"
    _sign(anyone, src, ingredient, _manifest("trainedAlgorithmicMedia"))
    track = tmp_path / "track.wav"
    opened = {"action": "c2pa.opened", "parameters": {"ingredientIds": ["parent"]}}
    _sign(trusted, src, track, _manifest(None, generator="SomeDAW", action=opened),
          ingredient=ingredient)

    f = read_provenance(track, trust_anchors=trusted["ca"])
    assert f.status == "valid" and f.trusted is True          # the premise: c2pa trusts it all
    assert [a.manifest for a in f.actions if a.declares_ai] == ["ingredient 'claimed-ai.wav'"]
    assert not f.declares_ai and not f.says_ai
    assert "ingredient" in f.explanation and "does not declare generative AI" not in f.explanation
    line = provenance_finding(f.to_dict())
    assert line.finding == INCONCLUSIVE                       # withholds human, never accuses
    v = combine([_line("content", HUMAN), _line("artifacts", HUMAN), line])
    assert v.label == INCONCLUSIVE and v.ai_lines == []


# --- the combined rule's reasons --------------------------------------------------------------


def test_a_leaning_line_at_or_above_its_operating_point_is_not_said_to_be_short_of_it():
    """The shipped symbolic line does not accuse (ACCUSES = False): at P(AI) 0.95 against its
    operating point 0.90 it leans towards AI. The combined verdict's reason said "P(AI)
    0.95, short of its operating point 0.90", which is false; and 0.899 against 0.9 read
    "0.90, short of its operating point 0.90"."""
    symbolic = symbolic_finding({"applicable": True, "in_domain": True, "says_ai": False,
                                 "leans_ai": True, "p_ai": 0.95, "threshold": 0.9,
                                 "explanation": "The notes lean towards AI."})
    assert symbolic.finding == INCONCLUSIVE
    v = combine([_line("content", HUMAN), symbolic])
    assert v.label == INCONCLUSIVE
    assert "short of" not in v.reasons[0] and "at or above its operating point 0.90" in v.reasons[0]
    near = combine([_line("content", HUMAN),
                    _line("symbolic", INCONCLUSIVE, can_exonerate=False, p=0.899, t=0.9)])
    assert "P(AI) 0.899, short of its operating point 0.900" in near.reasons[0]


def test_an_inconclusive_line_in_its_domain_gives_its_own_reason():
    """A content verdict in the abstention band (or windows that disagree, or a splice) made
    the combined verdict say only "The content line is inconclusive.": the reason that
    blocked it, which the index's "why" column shows, was lost."""
    content = content_finding(decide(0.6, [0.6] * 3, policy=VerdictPolicy(threshold=0.5, band=0.15)))
    v = combine([content, _line("artifacts", HUMAN)])
    assert v.label == INCONCLUSIVE
    assert v.reasons == ["The content line is inconclusive: the calibrated probability of AI, "
                         "0.60, lies in the abstention band 0.35-0.65 around the threshold 0.50."]


def test_a_line_that_cannot_exonerate_saying_ai_out_of_its_domain_withholds_human():
    """The rule: ``human`` only when no line holds evidence of AI. A line that cannot
    exonerate and says ``ai`` outside its own domain was skipped, and the track was called
    ``human`` ("no evidence of AI generation was found")."""
    v = combine([_line("content", HUMAN), _line("artifacts", HUMAN),
                 _line("symbolic", AI, in_domain=False, can_exonerate=False, p=0.99, t=0.9)])
    assert v.label == INCONCLUSIVE and v.ai_lines == []
    assert "symbolic" in v.reasons[0] and "outside its own domain" in v.reasons[0]
    # a line with nothing to say out of its domain still neither helps nor blocks
    ok = combine([_line("content", HUMAN),
                  _line("provenance", NO_EVIDENCE, in_domain=False, can_exonerate=False)])
    assert ok.label == HUMAN


# --- provenance: what an invalid or trusted manifest is said to mean -------------------------


def test_an_expired_signing_certificate_is_not_said_to_mean_the_audio_was_changed():
    """c2pa reports a manifest signed (without a time stamp) by a certificate that has since
    expired as ``Invalid`` with ``signingCredential.expired`` (reproduced with c2pa-python
    0.38.1: a certificate valid for 3 s, read 4 s after signing). The explanation said "the
    audio or its tags were changed after signing, or the manifest was ... copied from another
    file" and that its AI declaration was "no longer bound to this audio": a false statement
    about the file in a forensic report. The store below is c2pa's own output for that file."""
    from musicbrain_cli.audio.provenance import interpret_store

    iptc = "http://cv.iptc.org/newscodes/digitalsourcetype/"
    store = {
        "active_manifest": "urn:c2pa:1",
        "manifests": {"urn:c2pa:1": {
            "claim_generator_info": [{"name": "FakeMusicAI", "version": "1.0"}],
            "signature_info": {"common_name": "Expiring", "issuer": "MusicBrain Test CA"},
            "assertions": [{"label": "c2pa.actions.v2", "data": {"actions": [
                {"action": "c2pa.created", "digitalSourceType": iptc + "trainedAlgorithmicMedia"}]}}]}},
        "validation_state": "Invalid",
        "validation_results": {"activeManifest": {"success": [], "failure": [
            {"code": "signingCredential.untrusted", "explanation": "signing certificate untrusted"},
            {"code": "signingCredential.expired", "explanation": "certificate expired"}]}},
    }
    f = interpret_store(store, trust_anchors_configured=True)
    assert f.status == "invalid" and not f.says_ai
    assert "signingCredential.expired" in f.explanation and "expired" in f.explanation.split(":", 1)[1]
    assert "changed after signing" not in f.explanation and "copied" not in f.explanation
    assert "no longer bound to this audio" not in f.explanation
    # a content hash mismatch still says what it means
    store["validation_results"]["activeManifest"]["failure"] = [
        {"code": "assertion.dataHash.mismatch", "explanation": "hash mismatch"}]
    f = interpret_store(store, trust_anchors_configured=True)
    assert "changed after signing" in f.explanation and "no longer bound to this audio" in f.explanation


def test_a_trusted_signer_is_not_implied_to_be_unrevoked(tmp_path):
    """Revocation is never looked up (scans run offline), yet a trusted manifest that makes an
    ``ai`` verdict said only that its signer chains to a trust anchor: a reader could not tell
    that a revoked (stolen) signing key would accuse just as well."""
    t = np.arange(SR) / SR
    src = tmp_path / "tone.wav"
    encode_audio(src, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), SR)
    trusted = _signer(*_make_ca("Trusted Root"), "Trusted Generator")
    p = tmp_path / "ai.wav"
    _sign(trusted, src, p, _manifest("trainedAlgorithmicMedia"))
    f = read_provenance(p, trust_anchors=trusted["ca"], isolate=False)
    assert f.says_ai and f.trusted is True
    assert "revoked is not looked up" in f.explanation


def _expired_store() -> dict:
    iptc = "http://cv.iptc.org/newscodes/digitalsourcetype/"
    return {
        "active_manifest": "urn:c2pa:1",
        "manifests": {"urn:c2pa:1": {
            "claim_generator_info": [{"name": "FakeMusicAI", "version": "1.0"}],
            "signature_info": {"common_name": "Expiring", "issuer": "MusicBrain Test CA"},
            "assertions": [{"label": "c2pa.actions.v2", "data": {"actions": [
                {"action": "c2pa.created", "digitalSourceType": iptc + "trainedAlgorithmicMedia"}]}}],
            "ingredients": [{"title": "claimed-ai.wav", "active_manifest": "urn:c2pa:2"}]},
            "urn:c2pa:2": {"assertions": [{"label": "c2pa.actions.v2", "data": {"actions": [
                {"action": "c2pa.created",
                 "digitalSourceType": iptc + "trainedAlgorithmicMedia"}]}}]}},
        "validation_state": "Invalid",
        "validation_results": {"activeManifest": {"success": [], "failure": [
            {"code": "signingCredential.untrusted", "explanation": "signing certificate untrusted"},
            {"code": "signingCredential.expired", "explanation": "certificate expired"}]}},
    }


def test_the_reports_provenance_sentences_say_only_what_was_established():
    """Review (session 45): an expired certificate issued by the configured anchor was said
    not to chain to it (c2pa reports such a credential untrusted as well); an ingredient's
    declared action read as the file's trusted signer's; a reader that failed on a file with
    no store spoke of "the file's C2PA manifest"."""
    from musicbrain_cli.audio.provenance import interpret_store
    from musicbrain_cli.report.html import _provenance_sentences

    f = interpret_store(_expired_store(), trust_anchors_configured=True)
    assert f.trusted is None                                  # not established, not False
    said = " ".join(_provenance_sentences(f.to_dict()))
    assert "does not chain" not in said and "was not established" in said
    assert "in the manifest of 'claimed-ai.wav', an ingredient (not this file's signer" in said
    store = _expired_store()
    store["validation_results"]["activeManifest"]["failure"] = store["validation_results"][
        "activeManifest"]["failure"][:1]                      # untrusted and nothing else
    assert interpret_store(store, trust_anchors_configured=True).trusted is False
    unread = {"status": "unreadable", "manifest_source": None}
    assert _provenance_sentences(unread) == [
        "Whether the file carries a C2PA manifest could not be checked."]
    assert provenance_finding({**unread, "applicable": False}).reasons[0].startswith(
        "Whether the file carries a C2PA manifest could not be checked")


def test_an_accusation_by_provenance_gives_its_own_reason_not_a_calibrated_detection():
    """Review (session 45): an `ai` verdict resting on a trusted C2PA declaration was
    explained as "finds AI generation at or beyond its operating point", a calibrated
    detection the provenance line never makes (it has no P(AI) and no operating point)."""
    prov = LineFinding(line="provenance", finding=AI, in_domain=True, can_exonerate=False,
                       reasons=("A valid C2PA manifest from a trusted signer declares AI "
                                "generation.",))
    content = LineFinding(line="content", finding=HUMAN, in_domain=True, p_ai=0.02, threshold=0.6)
    v = combine([content, prov])
    assert v.label == AI
    assert v.reasons[0] == ("The provenance line finds AI generation: a valid C2PA manifest "
                            "from a trusted signer declares AI generation.")
    assert "operating point" not in v.reasons[0]
