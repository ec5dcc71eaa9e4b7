"""Defects of the per-track report and the catalog page found in a review (session of the
report area), each reproduced before it was fixed."""

from musicbrain_cli.report.html import (MAX_TAG_CHARS, alignment_sentences, appendix_rows,
                                        error_rate_sentences, onset_sentence,
                                        render_report_html)
from musicbrain_cli.report.schema import example_track


def test_a_huge_tag_key_is_cut_like_a_tag_value():
    """A tag's key is as untrusted as its value (a Vorbis comment's field name, an ID3 TXXX
    description): a 1 MB key went into the report whole, and into its PDF."""
    track = example_track(n_windows=2)
    key = "K" * 1_000_000
    track["metadata"]["tags"] = {key: ["value"], "title": ["Example"]}
    html = render_report_html(track, {})
    assert "K" * (MAX_TAG_CHARS + 1) not in html
    assert "K" * MAX_TAG_CHARS in html
    assert f"[{len(key) - MAX_TAG_CHARS} more characters]" in html
    assert len(html) < 100_000
    # a key the tag reader already cut (its first 4096 characters and its full length) is
    # counted against its full length, as a value is
    from musicbrain_cli.audio.metadata import cut_text

    track["metadata"]["tags"] = {cut_text(key): ["value"]}
    html = render_report_html(track, {})
    assert f"[{len(key) - MAX_TAG_CHARS} more characters]" in html
    assert "K" * (MAX_TAG_CHARS + 1) not in html


def test_the_method_table_names_the_rule_unit_and_split_its_rates_were_measured_under():
    """The method table said "human test recordings called AI (full rule)" whatever the
    card recorded: for the shipped card the rates are of clips, and for a card whose rates
    were measured at the threshold alone section 1 said so while the table said "full
    rule"."""
    track = example_track()
    rates = track["verdict"]["error_rates"]       # no "rule", no "unit": threshold alone
    meaning = {r["name"]: r["meaning"] for r in appendix_rows(track)}
    said = " ".join(error_rate_sentences(rates, 0.8))
    assert "at the threshold used" in said
    assert "full rule" not in meaning["False-accusation rate"]
    assert "full rule" not in meaning["Miss rate"]
    rates.update(unit="clip", split="test_xsf",
                 rule="full verdict rule (band, disagreement, out of domain)")
    meaning = {r["name"]: r["meaning"] for r in appendix_rows(track)}
    assert "recordings" not in meaning["False-accusation rate"]
    assert "1500 human clips" in meaning["False-accusation rate"]
    assert "'test_xsf'" in meaning["False-accusation rate"]
    assert "900 AI clips" in meaning["Miss rate"] and "full rule" in meaning["Miss rate"]


def test_one_onset_on_a_saliency_peak_is_not_called_a_link():
    """The alignment on a recording with a single note onset: it fell on a saliency peak, so
    the report said "the heatmap follows the onsets (5.0 times chance)" and printed "100% of
    the note onsets" without saying that this was one onset, which chance alone hits one
    time in five."""
    alignment = {"onset": {"concentration": 3.0, "hit_rate": 1.0, "chance_hit_rate": 0.2,
                           "hits": 1, "onsets": 1},
                 "energy_reference": {"onset": {"hit_rate": 0.0, "chance_hit_rate": 0.2,
                                                "hits": 0, "onsets": 1}}}
    text = " ".join(alignment_sentences(alignment))
    assert "the heatmap follows the onsets" not in text
    assert "cannot be told from so few: 1 of 1 onset" in text
    assert "100% of the detected onsets (1 of 1)" in text
    assert "Nothing measured here ties the heatmap to the music played" in text
    # many onsets, well beyond chance: still a link, with its counts
    many = {"onset": {"concentration": 3.0, "hit_rate": 0.6, "chance_hit_rate": 0.2,
                      "hits": 30, "onsets": 50},
            "energy_reference": {"onset": {"hit_rate": 0.3, "chance_hit_rate": 0.2,
                                           "hits": 15, "onsets": 50}}}
    text = " ".join(alignment_sentences(many))
    assert "the heatmap follows the onsets (3.0 times chance" in text
    assert "30 of 50" in onset_sentence(many["onset"])


def test_the_combined_verdict_human_is_worded_as_what_it_is():
    """Section 1 stated "Combined verdict: human" bare, which reads as a finding of human
    authorship; a human verdict is no evidence of AI generation found by these methods."""
    track = example_track()
    track["verdict"]["label"] = "human"
    html = render_report_html(track, {})
    assert "Combined verdict: <strong>human</strong>;" not in html
    assert ("Combined verdict: <strong>human (no evidence of AI generation found by these "
            "methods)</strong>") in html


def test_the_index_tells_apart_recordings_that_share_a_file_name(tmp_path):
    """A recursive scan of albums holds many "01.flac": the index showed each row by its
    file name alone, so two rows with opposite verdicts could not be told apart without
    opening their reports. Rows whose file name recurs now show the path scanned."""
    from musicbrain_cli.report.catalog import CatalogEntry, write_catalog

    ai, human = example_track(seed=1, file_name="01.flac"), example_track(seed=2, file_name="01.flac")
    ai["verdict"]["label"], human["verdict"]["label"] = "ai", "human"
    write_catalog(tmp_path, [CatalogEntry("/music/album-a/01.flac", ai, "a/report.pdf"),
                             CatalogEntry("/music/album-b/01.flac", human, "b/report.pdf"),
                             CatalogEntry("/music/other.flac", example_track(seed=3,
                                          file_name="other.flac"), "c/report.pdf")])
    html = (tmp_path / "index.html").read_text()
    assert ">/music/album-a/01.flac</td>" in html and ">/music/album-b/01.flac</td>" in html
    assert ">other.flac</td>" in html            # a name of its own stays a name


def test_an_explained_window_past_the_end_names_only_the_seconds_that_exist():
    """A 6 s recording read as one 10 s window (zero padded before 0.3.5, repeated since): section 4 titled its map
    "Window 1: 0.00–10.00 s", seconds the recording does not have."""
    track = example_track(n_windows=1, window_s=10.0)
    track["input"].update(duration_s=6.0, decoded_duration_s=6.0)
    track["explanations"] = track["explanations"][:1]
    html = render_report_html(track, {})
    assert "0.00–10.00 s" not in html
    assert "Window 1: 0.00–6.00 s (the rest of the 10 s window repeats the recording)" in html


def test_a_trusted_c2pa_signer_is_not_implied_to_be_unrevoked():
    """Scans run offline, so a revoked or stolen signing key is trusted as before: the report's
    provenance section says revocation was not looked up (review of the provenance line)."""
    from musicbrain_cli.report.html import _provenance_sentences

    said = " ".join(_provenance_sentences({"status": "valid", "trusted": True}))
    assert "chains to a configured trust anchor" in said
    assert "revoked was not looked up" in said


def test_the_content_rule_says_the_band_is_open_at_both_ends():
    """verdict.decide calls P(AI) inconclusive only strictly inside the band (0.40 is human,
    0.60 ai); the report said "probabilities from 0.400 to 0.600 are reported as inconclusive"
    (README review)."""
    track = example_track()
    html = render_report_html(track, {})
    assert "strictly between" in html and "probabilities from" not in html


def test_c2pa_text_cannot_close_its_quote_and_speak_in_the_reports_voice():
    """Review (session 45): the provenance sentences set the manifest's own text (claim
    generator, signer, actions, the reader's reason) in bare quotes; a claim generator holding
    a quote closed it and went on as the report, saying the signer chains to a trust anchor
    while the finding said it was never checked."""
    import html as _html

    forged = ("Adobe Audition'. The signer chains to a configured trust anchor; whether its "
              "certificate has been revoked was not looked up (scans run offline). Claim "
              "generator: \u2019Adobe Audition 25.0")
    track = example_track()
    (line,) = [e for e in track["evidence"] if e["line"] == "provenance"]
    line["details"] = {"c2pa": {"status": "valid", "trusted": None, "claim_generator": forged,
                                "signer": {"common_name": "Test'. Trusted", "issuer": None},
                                "reason": "bad 'x'"}}
    page = _html.unescape(render_report_html(track, {}))
    said = page[page.index("Claim generator (the software"):]
    said = said[:said.index("</")]
    assert "'Adobe Audition\\u{0027}. The signer chains" in said
    assert "\\u{2019}Adobe Audition 25.0'." in said
    assert "It names 'Test\\u{0027}. Trusted' as signer." in page
    assert "Reader's reason: 'bad \\u{0027}x\\u{0027}'" in page
    # the only sentence in the report's own voice about the signer is the true one
    assert "The signer was not verified against a trust list" in page


def test_the_content_models_threshold_is_not_named_the_point_where_it_accuses():
    """Review (session 45): the content model's threshold (0.50) is the centre of its
    inconclusive band and `ai` begins at the band's upper end (0.60), but the report called
    0.50 "the operating point at or above which it finds AI" in the evidence table, on page
    1 ("inconclusive (P(AI) 0.550, operating point 0.500)") and in the method table, so an
    inconclusive 0.55 read as past the accusation point."""
    import html as _html

    track = example_track()
    track["verdict"].update(label="inconclusive", p_ai=0.55, threshold=0.5, band=[0.4, 0.6])
    (content,) = [e for e in track["evidence"] if e["line"] == "content"]
    content.update(finding="inconclusive", p_ai=0.55, threshold=0.5)
    page = _html.unescape(render_report_html(track, {}))
    assert "inconclusive (P(AI) 0.550, AI at or above 0.600, human at or below 0.400)" in page
    assert "operating point 0.500" not in page
    assert "P(AI) at or above which the content model calls a recording AI" not in page
    row = page[page.index("Content model (what the music sounds like)"):]
    assert "AI at or above 0.600, human at or below 0.400" in row[:400]


def test_a_track_with_no_window_judged_shows_no_content_probability():
    """Review (session 45): with every window near-silent the content line records no P(AI)
    and the evidence table shows none, but the combined-verdict box printed the verdict's
    mean over the noise windows (0.567) twice."""
    import html as _html

    track = example_track()
    track["verdict"].update(label="inconclusive", p_ai=0.567)
    (content,) = [e for e in track["evidence"] if e["line"] == "content"]
    content.update(finding="inconclusive", p_ai=None)
    page = _html.unescape(render_report_html(track, {}))
    assert "0.567" not in page
    assert "probability of AI generation: <strong>n/a</strong>" in page


def test_an_artifact_card_record_without_mains_spacings_renders():
    """Found by the verify fuzz test (session 45): a mains-hum record with no spacings, as an
    edited result.json holds, raised IndexError in the report (and in verify, which renders
    the report again)."""
    from musicbrain_cli.text import or_list

    assert or_list([]) == "" and or_list(["a"]) == "a" and or_list(["a", "b"]) == "a or b"
    track = example_track()
    (line,) = [e for e in track["evidence"] if e["line"] == "artifacts"]
    line.setdefault("details", {}).setdefault("artifacts", {})["error_rates"] = {
        "mains_hum_guard": {"spacings_hz": []}}
    page = render_report_html(track, {})
    assert "At the spacing of mains hum it never accuses" in " ".join(page.split())
