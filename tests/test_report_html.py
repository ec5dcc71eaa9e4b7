"""Report HTML and PDF rendering: escaping of hostile input, data:-only resources, wording."""

import re

import pytest

from musicbrain_cli.errors import ReportError
from musicbrain_cli.report.html import (alignment_sentences, error_rate_sentences,
                                        render_report_html, visible)
from musicbrain_cli.report.pdf import data_only_url_fetcher, decode_data_uri, html_to_pdf
from musicbrain_cli.report.schema import example_track

SCRIPT = "<script>alert(1)</script>"
IMG = '<img src="file:///etc/passwd">'


def hostile_track():
    track = example_track(n_windows=3)
    track["metadata"]["tags"] = {"title": [SCRIPT], "comment": [IMG],
                                 "<b>key</b>": ["x" * 5000], "many": [str(i) for i in range(100)]}
    track["input"]["file_name"] = '"><svg onload=alert(2)>\u202egpj.mp3'
    track["input"]["path"] = "/tmp/<iframe src=//evil>/a.mp3"
    track["metadata"]["encoder"] = "</td><script>x()</script>"
    return track


def test_hostile_tags_and_file_names_are_escaped():
    html = render_report_html(hostile_track(), {})
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=&#34;file:///etc/passwd&#34;&gt;" in html
    assert "&lt;svg onload=alert(2)&gt;" in html and "&lt;iframe" in html
    assert "&lt;/td&gt;&lt;script&gt;x()&lt;/script&gt;" in html
    # no element comes from the data: the only tags are the template's own
    assert "<script" not in html and "<svg" not in html and "<iframe" not in html
    assert len(re.findall(r"<img ", html)) == 0  # no figures given, so no images at all
    # the right-to-left override is spelled out, not obeyed
    assert "\u202e" not in html and "\\u{202e}" in html
    # huge and numerous tag values are cut with a note
    assert "[4700 more characters]" in html and "[80 more values]" in html


def test_visible_spells_out_invisible_characters():
    assert visible("a\x00b\u200bc\u202e") == "a\\u{0000}b\\u{200b}c\\u{202e}"
    # a tab shown as a space would read as another name ("tab here"): spelled out too
    assert visible("tab\there") == "tab\\u{0009}here"
    # a line break in a file name is spelled out: shown as a space it would name another file
    assert visible("new\nline.wav") == "new\\u{000a}line.wav"
    assert visible("Ünïcödé ♫") == "Ünïcödé ♫"


def test_url_fetcher_refuses_everything_but_data():
    fetcher = data_only_url_fetcher()
    for url in ("file:///etc/passwd", "http://example.com/x.png", "https://a/b.css",
                "ftp://x/y", "/etc/passwd", "javascript:alert(1)"):
        with pytest.raises(ReportError, match="only data: URIs"):
            fetcher.fetch(url)
    assert fetcher.refused[0] == "file:///etc/passwd"
    response = fetcher.fetch("data:text/plain;base64,aGVsbG8=")
    assert response.read() == b"hello" and response.content_type == "text/plain"
    assert decode_data_uri("data:,a%20b") == ("text/plain", b"a b")


def test_smuggled_local_file_never_loads_into_the_pdf(tmp_path):
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"not an image")
    for html in (f'<p>x</p><img src="file://{secret}">',
                 f'<link rel="stylesheet" href="file://{secret}"><p>x</p>',
                 '<p style="background: url(http://127.0.0.1:9/beacon)">x</p>'):
        with pytest.raises(ReportError, match="only data: URIs"):
            html_to_pdf(html)


def test_hostile_report_renders_to_pdf_without_fetching():
    pdf = html_to_pdf(render_report_html(hostile_track(), {}))
    assert pdf.startswith(b"%PDF-")  # escaped text renders; nothing was fetched or refused


def test_pdf_is_deterministic_for_the_same_inputs():
    html = render_report_html(example_track(n_windows=3), {})
    first = html_to_pdf(html, identifier=b"0" * 16)
    assert first == html_to_pdf(html, identifier=b"0" * 16)
    import io

    from pyhanko.pdf_utils.reader import PdfFileReader

    info = PdfFileReader(io.BytesIO(first)).trailer["/Info"]
    assert str(info["/CreationDate"]).startswith("D:20250101120000")  # from analysis_time


def test_sentences_in_plain_words():
    text = alignment_sentences({"harmonic": {"share": 0.38, "chance": 0.12},
                                "onset": {"concentration": 2.3, "hit_rate": 0.64, "chance_hit_rate": 0.2}})
    assert text[0] == ("In the frames where notes sound, 38% of the saliency lies on the "
                       "partials of the notes played, "
                       "where chance would put 12% (3.2 times chance).")
    assert "2.3 times" in text[1] and "64% of the detected onsets" in text[1] and "20%" in text[1]
    worse = alignment_sentences({"harmonic": {"share": 0.1, "chance": 0.12}})
    assert "no more than chance" in worse[0]
    rates = error_rate_sentences({"fpr": 0.012, "fpr_ci95": [0.006, 0.021], "fnr": 0.08,
                                  "n_human": 1200, "n_ai": 900, "split": "test"}, 0.8)
    assert "1.2% (95% confidence interval 0.6% to 2.1%) of the 1200 human-made" in rates[0]
    assert "0.800" in rates[0] and "8.0% of the 900" in rates[1]


def test_report_sections_and_missing_optional_parts():
    full = render_report_html(example_track(), {})
    for heading in ("1. Verdict", "Known error rates", "Style attribution", "FM-G-CAM",
                    "Metadata and provenance (weak evidence)", "Evidence integrity", "Method",
                    "Limitations", "does not show that a passage was generated"):
        assert heading in full
    assert "1.1% (95% confidence interval 0.6% to 1.9%)" in full
    # each attribution shows how reliable its label was on validation (n/a: never validated)
    assert "Validation AP" in full
    assert "<td>0.810</td>" in full and "<td>0.920</td>" in full and "<td>n/a</td>" in full
    # labels the model never saw in training are named as never attributed
    assert "no training example of them: Composer: Schubert, Franz." in full
    assert "no training example" not in render_report_html(
        {k: v for k, v in example_track().items() if k != "labels_untrained"}, {})
    minimal = {"schema": "musicbrain.track/1", "input": {"file_name": "a.wav"}}
    html = render_report_html(minimal, {})
    assert "No verdict is available" in html and "No style attribution" in html
    assert "This report was not signed" in html


def test_out_of_domain_warning_is_prominent():
    track = example_track()
    track["ood"] = {"score": 0.9, "threshold": 0.5, "in_domain": False}
    html = render_report_html(track, {})
    assert html.count("outside the domain") == 2  # banner and limitations
    assert 'class="warning"' in html


def test_domain_checks_are_tabled_and_the_failing_one_named():
    track = example_track()
    track["ood"] = {"available": True, "in_domain": False, "score": 3.0, "threshold": 5.0,
                    "quantile": 0.99, "checks": [
                        {"name": "embedding", "score": 3.0, "threshold": 5.0, "in_domain": True,
                         "description": "embedding distance"},
                        {"name": "spectral_profile", "score": 0.2, "threshold": 0.05,
                         "in_domain": False, "description": "average spectrum <b>distance</b>"}]}
    html = render_report_html(track, {})
    assert "average spectrum &lt;b&gt;distance&lt;/b&gt;: 0.200 above the limit 0.050" in html
    assert "embedding distance: 3.000" not in html          # the passing check is not blamed
    assert html.count("within the training domain") == 1
    assert html.count("OUTSIDE the training domain") == 1
    assert "99% of the model" in html
    track["ood"] = {"available": False}
    assert "No domain check was run" in render_report_html(track, {})


def test_figures_are_embedded_as_data_uris():
    track = example_track(n_windows=3)
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
    html = render_report_html(track, {track["explanations"][0]["figure"]: png})
    assert html.count('src="data:image/png;base64,') == 1
    assert "is not available" in html  # the second explanation's figure is missing
    with pytest.raises(ReportError, match="not a PNG"):
        render_report_html(track, {track["explanations"][0]["figure"]: b"GIF89a"})


def test_robustness_table_states_the_false_accusation_rate():
    track = example_track()
    track["robustness"] = [{"transform": "MP3 128 kbit/s", "roc_auc": 0.93, "fpr": 0.05,
                            "tpr": 0.8, "ai_verdicts_on_human": 0.025, "n_human": 40,
                            "n_ai": 38}]
    html = render_report_html(track, {})
    row = re.search(r"<tr><td>MP3 128 kbit/s</td>.*?</tr>", html).group(0)
    assert "2.5%" in row and "40 + 38" in row and "Human clips called AI" in html


def test_each_evidence_line_is_shown_before_the_combined_verdict():
    track = example_track(n_windows=3)
    track["evidence"][1]["details"] = {"sentences": ["Peaks every 750.0 Hz <b>"],
                                       "figure": "artifacts.png"}
    png = b"\x89PNG\r\n\x1a\n" + b"0" * 16
    html = render_report_html(track, {"artifacts.png": png})
    lines = html.index("What each evidence line found, on its own")
    combined = html.index("Combined verdict")
    assert lines < combined
    for name in ("Content model", "Decoder artifacts", "Provenance (C2PA"):
        # (page 1's summary may name the lines that drove the verdict before section 1)
        assert lines < html.index(name, lines) < combined
    assert "no evidence either way" in html and "Peaks every 750.0 Hz &lt;b&gt;" in html
    assert html.count("<img ") == 1 and lines < html.index("<img ") < combined


def test_the_miss_rate_names_the_families_it_was_measured_on():
    html = render_report_html(example_track(n_windows=3), {})
    assert "Generator family &#39;notagen&#39;: 9.0%" in html
    assert ("measured on AI music from the generator families &#39;notagen&#39;, "
            "&#39;neural-codec&#39;") in html
    assert "For any other generator, including commercial text-to-music systems" in html


def test_the_artifact_line_quotes_its_own_measured_rates():
    track = example_track(n_windows=3)
    track["evidence"][1]["details"] = {"artifacts": {"error_rates": {
        "false_accusations_human_test": {"k": 0, "n": 257, "rate": 0.0, "ci95": [0.0, 0.015]},
        "recall_synthetic_decoders_test": {"k": 105, "n": 149, "rate": 0.70, "ci95": [0.63, 0.77]},
        "miss_rate_per_decoder_family_test": {"linear": {"miss_rate": 0.9, "n": 21}},
        "measured_on": "synthetic decoders; for real generators the miss rate is unknown"}}}
    html = render_report_html(track, {})
    assert ("never fitted on, per held-out set: test 0 of 257 (0.0%, 95% confidence interval "
            "0.0% to 1.5%)") in html
    assert "Decoded test clips it detected: 105 of 149 (70.0%" in html
    assert "linear 90.0% of 21" in html
    assert "for real generators the miss rate is unknown" in html


# --- issue 24: a report a judge can read, every statement true of the recording -----------


def test_coverage_names_the_seconds_analysed_and_not_analysed():
    from musicbrain_cli.report.html import coverage, coverage_sentence

    # a 12 s clip read by one 10 s window: the last 2 s are not analysed, and the report says so
    assert coverage([0.0], 10.0, 12.0) == ([(0.0, 10.0)], [(10.0, 12.0)])
    track = example_track(n_windows=1, window_s=10.0)
    track["input"].update(duration_s=12.0, decoded_duration_s=12.0)
    track["timeline"] = {"window_start_s": [0.0], "window_s": 10.0, "p_ai": [0.1]}
    sentence = coverage_sentence(track)
    assert sentence.startswith("0–10 s analysed (1 window of 10 s); 10–12 s not analysed")
    html = render_report_html(track, {})
    assert html.count("10–12 s not analysed") >= 2  # page 1 and the limitations
    # overlapping windows that reach the end cover everything; a short clip is padded
    assert coverage([0.0, 5.0, 10.0], 10.0, 18.5) == ([(0.0, 18.5)], [])
    track["timeline"] = {"window_start_s": [0.0, 5.0, 10.0], "window_s": 10.0,
                         "p_ai": [0.1, 0.1, 0.1]}
    track["input"].update(decoded_duration_s=18.5)
    assert coverage_sentence(track) == ("0–18.5 s analysed (3 windows of 10 s): the whole "
                                        "recording.")
    assert "Not every second was analysed" not in render_report_html(track, {})
    track["input"].update(decoded_duration_s=6.0)
    track["timeline"] = {"window_start_s": [0.0], "window_s": 10.0, "p_ai": [0.1]}
    assert "repeated to fill one 10 s window" in coverage_sentence(track)


def test_coverage_tells_silence_not_read_from_music_not_analysed():
    """Since 0.3.6 the windows lie over the music (intake.iter_windows): the seconds of
    silence around and between its passages are named as silence, not as music left out."""
    from musicbrain_cli.report.html import coverage_sentence, track_coverage

    track = example_track(n_windows=1, window_s=10.0)
    track["input"].update(duration_s=40.0, decoded_duration_s=40.0)
    # 1.5 s of silence, music 1.5-13.5 s, 15 s of silence, a 9-s passage repeated, silence
    track["timeline"] = {"window_start_s": [1.5, 28.5], "window_s": 10.0, "p_ai": [0.1, 0.1],
                         "padded": [False, True], "sound_s": [[1.5, 13.5], [28.5, 37.5]]}
    cov = track_coverage(track)
    assert cov["analysed"] == [(1.5, 11.5), (28.5, 37.5)]
    assert cov["unread"] == [(11.5, 13.5)]
    assert cov["silence"] == [(0.0, 1.5), (13.5, 28.5), (37.5, 40.0)]
    sentence = coverage_sentence(track)
    assert sentence == ("1.5–11.5 s, 28.5–37.5 s analysed (2 windows of 10 s); 11.5–13.5 s "
                        "not analysed: the model reads whole 10 s windows, and music left after "
                        "a passage's last window (under 2.5 s), or a passage under 7.5 s beside "
                        "longer music, is not read; 0–1.5 s, 13.5–28.5 s, 37.5–40 s silence (no "
                        "sample above -60 dBFS), not read.")
    assert "Not every second was analysed" in render_report_html(track, {})
    # silence alone is still named, and a record without sound spans reads as before
    track["timeline"] = {"window_start_s": [1.5], "window_s": 10.0, "p_ai": [0.1],
                         "padded": [False], "sound_s": [[1.5, 11.5]]}
    track["input"].update(decoded_duration_s=12.0)
    assert coverage_sentence(track) == ("1.5–11.5 s analysed (1 window of 10 s); 0–1.5 s, "
                                        "11.5–12 s silence (no sample above -60 dBFS), not read.")
    del track["timeline"]["sound_s"]
    assert "0–1.5 s, 11.5–12 s not analysed" in coverage_sentence(track)
    # a silent track: one window of its start, the rest silence, not "too short for another"
    track["timeline"] = {"window_start_s": [0.0], "window_s": 10.0, "p_ai": [0.1],
                         "padded": [False], "sound_s": []}
    track["input"].update(decoded_duration_s=60.0)
    assert coverage_sentence(track) == ("0–10 s analysed (1 window of 10 s); 10–60 s silence "
                                        "(no sample above -60 dBFS), not read.")


def test_an_explained_window_over_a_short_passage_names_only_the_seconds_it_read():
    """A 3-s passage before 9 s of silence is read as one 4-s window that repeats it
    (timeline.padded): section 4 titled its map "Window 1: 0.00–4.00 s", a second of the
    silence that the coverage line above says was not read."""
    track = example_track(n_windows=1, window_s=4.0)
    track["input"].update(duration_s=17.0, decoded_duration_s=17.0)
    track["timeline"] = {"window_start_s": [0.0, 12.0, 13.0], "window_s": 4.0,
                         "p_ai": [0.5, 0.5, 0.5], "padded": [True, False, False],
                         "sound_s": [[0.0, 3.0], [12.0, 17.0]]}
    track["explanations"] = [dict(track["explanations"][0], window_start_s=s)
                             for s in (0.0, 13.0)]
    html = render_report_html(track, {})
    assert "3–12 s silence" in html
    assert "0.00–4.00 s" not in html
    assert "Window 1: 0.00–3.00 s (the rest of the 4 s window repeats these seconds)" in html
    assert "<h3>Window 2: 13.00–17.00 s</h3>" in html


def test_a_partly_decoded_file_is_not_said_to_be_analysed_whole():
    """A WAV cut at 97 % of its data (header 12 s, 11.64 s decoded, above the 95 % a scan
    needs): page one's "Audio analysed" read "the whole recording" beside the integrity
    table's "97.0 %" and the limitation "the rest was not analysed"."""
    from musicbrain_cli.report.html import coverage_sentence

    track = example_track(n_windows=1, window_s=4.0)
    track["input"].update(duration_s=12.0, decoded_duration_s=11.64, share_decoded=0.97)
    track["timeline"] = {"window_start_s": [0.0, 2.0, 4.0, 6.0, 7.64], "window_s": 4.0,
                         "p_ai": [0.5] * 5, "padded": [False] * 5, "sound_s": [[0.0, 11.64]]}
    said = coverage_sentence(track)
    assert "the whole recording" not in said
    assert said == ("0–11.64 s analysed (5 windows of 4 s): all of the audio that decoded; "
                    "only 97.0 % of the stream decoded, the rest was not analysed.")
    assert "Not every second was analysed" in render_report_html(track, {})
    track["input"].update(share_decoded=1.0, decoded_duration_s=12.0, duration_s=12.0)
    track["timeline"].update(window_start_s=[0.0, 2.0, 4.0, 6.0, 8.0], sound_s=[[0.0, 12.0]])
    assert coverage_sentence(track).endswith(": the whole recording.")


def test_a_clean_file_reads_fully_decoded_and_gets_no_decoding_limitation():
    track = example_track()
    track["input"].update(share_decoded=1.0, undecodable_packets=0)
    html = render_report_html(track, {})
    assert "100 % (0 undecodable packets)" in html
    assert "of the stream decoded" not in html


def test_limitations_state_each_topic_once():
    from musicbrain_cli.scan.batch import LIMITATIONS

    track = example_track()
    track["limitations"] = list(LIMITATIONS) + [LIMITATIONS[0]]
    html = render_report_html(track, {})
    section = html[html.index('id="limitations"'):html.index('id="signature"')]
    items = re.findall(r"<li>(.*?)</li>", section, re.S)
    assert len(items) == len(set(items))
    assert sum("heatmap" in i for i in items) == 1
    assert sum("statistical" in i for i in items) == 1
    assert sum(i.startswith("Tags") for i in items) == 1


def test_page_one_states_the_finding_with_its_measured_miss_rate():
    track = example_track(n_windows=1)
    track["verdict"].update(label="human", p_ai=0.01)
    track["verdict"]["error_rates"].update(fnr=0.1453900709219858, n_ai=282, unit="clip")
    track["evidence"][0].update(finding="human", p_ai=0.01)
    # one window explained: the whole recording's alignment is that window's
    track["alignment"] = {k: track["explanations"][0][k]
                          for k in ("harmonic", "onset", "energy_reference")}
    html = render_report_html(track, {})
    summary = html[html.index('id="summary"'):html.index('id="verdict"')]
    assert "No evidence of AI generation found by these methods" in summary
    assert "missed 14.5% of 282 AI-generated clips (about 1 in 7)" in summary
    assert "not proof of human authorship" in summary
    # in the card's own unit, as section 1 states it (page 1 said "clips" whatever it was)
    track["verdict"]["error_rates"]["unit"] = "recording"
    again = render_report_html(track, {})
    assert "missed 14.5% of 282 AI-generated recordings" in \
        again[again.index('id="summary"'):again.index('id="verdict"')]
    # what drove it: the two lines that found no evidence, not the provenance line
    assert "Content model (what the music sounds like): no evidence of AI" in summary
    assert "Decoder artifacts" in summary and "Provenance" not in summary
    # one window explained: its alignment sentences are not printed twice
    assert html.count("of the saliency lies on the partials") == 1


def test_the_report_reads_the_maps_against_the_sound_itself():
    """The alignment section states the input-energy reference beside each figure, per
    recording and per window, and calls a link only where the map beats it."""
    html = render_report_html(example_track(n_windows=3), {})
    assert "The sound&#39;s own energy, as a map, puts 30% there." in html
    assert "and the sound&#39;s own energy 66%" in html
    assert "the heatmap follows the partials of the notes (2.8 times chance, more than the " \
           "sound&#39;s own energy (2.3 times))" in html
    assert "lands on the onsets 3.2 times as often as chance, but the sound&#39;s own energy " \
           "does so too (3.7 times)" in html
    assert "The sound&#39;s own energy, as a map, puts 31% there." in html      # a window's own


def test_ratios_agree_with_the_shares_shown():
    from musicbrain_cli.report.html import harmonic_sentence

    text = harmonic_sentence({"share": 0.2644, "chance": 0.2495})
    assert text == ("In the frames where notes sound, 26.4% of the saliency lies on the "
                    "partials of the notes played, where "
                    "chance would put 24.9% (1.06 times chance).")


def test_method_is_a_short_table_with_units_not_raw_card_keys():
    track = example_track()
    track["model"]["calibration"] = {"temperature": 1.163, "n": 902, "fitted_on": "val",
                                     "per_label": {"composer/Bach": 1.13}}
    html = render_report_html(track, {})
    method = html[html.index('id="method"'):html.index('id="limitations"')]
    assert "calibration.per_label" not in method and "composer/Bach" not in method
    assert "Inconclusive band" in method and "0.350–0.800" in method
    assert "Miss rate" in method and "7.4% (95% CI 5.5%–9.8%)" in method
    assert "temperature 1.163, fitted on 902 val clips" in method


def test_the_timeline_is_described_in_words_when_flat():
    from musicbrain_cli.report.html import timeline_sentence

    track = example_track(n_windows=4)
    track["timeline"]["p_ai"] = [0.01, 0.012, 0.011, 0.01]
    track["verdict"]["band"] = [0.4, 0.6]
    assert timeline_sentence(track) == ("The line is flat: all 4 windows give P(AI) between "
                                        "0.010 and 0.012, below the inconclusive band "
                                        "0.400–0.600.")
    track["timeline"]["p_ai"] = [0.568, 0.5681, 0.5679]           # read alike: one figure
    assert timeline_sentence(track).startswith("The line is flat: all 3 windows give P(AI) "
                                               "0.568, inside")


def test_a_line_does_not_say_the_same_thing_twice():
    from musicbrain_cli.report.html import without_repeats

    track = example_track()
    provenance = next(e for e in track["evidence"] if e["line"] == "provenance")
    provenance["reasons"] = [
        "No C2PA manifest: no evidence either way.",
        "No C2PA manifest was found. Provenance gives no evidence either way: most music "
        "carries none, and a manifest is easily stripped. (no way to embed one in FLAC)"]
    provenance["details"] = {"c2pa": {"status": "absent",
                                                "reason": "no way to embed one in FLAC"}}
    html = render_report_html(track, {})
    assert "No C2PA manifest: no evidence either way." not in html
    assert html.count("no way to embed one in FLAC") == 1
    assert without_repeats(["a b.", "a b.", "c"]) == ["a b.", "c"]


def test_alignment_finding_says_what_was_found_in_plain_words():
    """Issue 26 item 4: a conclusion that says when nothing was found, never calls a lift
    near chance a link, and says when a check could not run."""
    from musicbrain_cli.report.html import alignment_finding

    weak = alignment_finding({"harmonic": {"share": 0.288, "chance": 0.273},
                              "onset": {"hit_rate": 0.116, "chance_hit_rate": 0.124},
                              "notes_source": "multi-pitch estimate (no score available)"})
    assert weak.startswith("In short: ")
    assert "only slightly more often than chance (1.05 times)" in weak
    assert "does not follow the onsets" in weak
    assert "Nothing measured here ties the heatmap to the music played" in weak
    assert "estimated from the audio" in weak and "follows the" not in weak
    clear = alignment_finding({"harmonic": {"share": 0.45, "chance": 0.2},
                               "onset": {"hit_rate": 0.3, "chance_hit_rate": 0.25}})
    assert "the heatmap follows the partials of the notes (2.2 times chance)" in clear
    assert "Nothing measured" not in clear and "estimated" not in clear
    missing = alignment_finding({"harmonic": {"share": None, "chance": None},
                                 "onset": {"hit_rate": None, "chance_hit_rate": 0.1}})
    assert "could not be checked (no sounding notes were found)" in missing
    assert "could not be checked (no onsets were found)" in missing
    assert "Nothing measured here" in missing
    assert alignment_finding({}) is None and alignment_finding(None) is None
    # a lift the sound's own energy reaches too is not called a link, however far above chance
    echoed = alignment_finding({"harmonic": {"share": 0.45, "chance": 0.2},
                                "onset": {"hit_rate": 0.3, "chance_hit_rate": 0.25},
                                "energy_reference": {"harmonic": {"share": 0.5, "chance": 0.2},
                                                     "onset": {"hit_rate": 0.6, "chance_hit_rate": 0.25}}})
    assert "lands on the partials of the notes 2.2 times as often as chance, but the sound's own " \
           "energy does so too (2.5 times)" in echoed
    assert "follows" not in echoed and "Nothing measured here ties the heatmap" in echoed
    beyond = alignment_finding({"harmonic": {"share": 0.45, "chance": 0.2},
                                "energy_reference": {"harmonic": {"share": 0.3, "chance": 0.2}}})
    assert "the heatmap follows the partials of the notes (2.2 times chance, more than the " \
           "sound's own energy (1.5 times))" in beyond
    assert "Nothing measured" not in beyond
    # the conclusion follows the measured figures in the report's list
    text = alignment_sentences({"harmonic": {"share": 0.1, "chance": 0.12}})
    assert len(text) == 2 and text[1].startswith("In short: ")
    assert "could not be checked (the check did not run)" in text[1]
    # the reference's own figures are stated beside the map's
    text = alignment_sentences({"harmonic": {"share": 0.3, "chance": 0.2},
                                "onset": {"hit_rate": 0.4, "chance_hit_rate": 0.2},
                                "energy_reference": {"harmonic": {"share": 0.33, "chance": 0.2},
                                                     "onset": {"hit_rate": 0.7, "chance_hit_rate": 0.2}}})
    assert "The sound's own energy, as a map, puts 33.0% there." in text[0]
    assert "where chance would give 20% and the sound's own energy 70%" in text[1]


def test_the_artifact_lines_doubt_zone_is_quoted_with_its_measured_cost():
    """The report says how often human recordings reach the doubt threshold (issue 22: each
    line's rates beside its finding), and says nothing of a zone the line does not have."""
    from musicbrain_cli.artifacts.detector import ArtifactDetector
    from musicbrain_cli.report.html import _artifact_sentences

    det = ArtifactDetector.from_pretrained("default")
    rates = det.card["summary"]
    said = next(s for s in _artifact_sentences({"error_rates": rates, "doubt_threshold": det.doubt_threshold})
                if "doubt threshold" in s)
    withheld = rates["human_withheld_by_doubt"]["test-final"]
    assert f"doubt threshold ({det.doubt_threshold:.2f})" in said
    assert f"test-final {withheld['k']} of {withheld['n']}" in said
    assert "validation" not in said                     # the packages that set it are not quoted
    assert "doubt" not in " ".join(_artifact_sentences({"error_rates": rates}))


def test_the_artifact_lines_false_accusation_rates_each_name_their_held_out_set():
    """The report listed '2 of 1364; 0 of 257; 0 of 418; 0 of 445' with no way to tell which
    figure was measured on what, nor that the first was measured after the line shipped."""
    from musicbrain_cli.artifacts.detector import ArtifactDetector
    from musicbrain_cli.report.html import _artifact_sentences

    rates = ArtifactDetector.from_pretrained("default").card["summary"]
    said = next(s for s in _artifact_sentences({"error_rates": rates})
                if s.startswith("Measured false accusations"))
    for key, name in (("false_accusations_human_test", "test"),
                      ("false_accusations_human_test_final", "test-final"),
                      ("false_accusations_human_test_fresh", "test-fresh")):
        assert f"; {name} {rates[key]['k']} of {rates[key]['n']} (" in said \
            or f": {name} {rates[key]['k']} of {rates[key]['n']} (" in said
    later = rates["false_accusations_human_new_uploads"]
    assert (f"new-uploads (measured after the line shipped) {later['k']} of {later['n']}"
            in said)


def test_the_artifact_lines_human_coverage_is_quoted_beside_its_finding():
    """Issue 22: a report says where the line's 'human' finding was calibrated (rates and
    bandwidth), so a reader can tell whether the recording at hand lies within it."""
    from musicbrain_cli.artifacts.detector import ArtifactDetector
    from musicbrain_cli.report.html import _artifact_sentences

    rates = ArtifactDetector.from_pretrained("default").card["summary"]
    cov = rates["human_coverage"]
    said = next(s for s in _artifact_sentences({"error_rates": rates}) if "calibrated on" in s)
    listed = ", ".join(str(r) for r in cov["rates_hz"][:-1]) + f" or {cov['rates_hz'][-1]}"
    assert (f"at {listed} Hz with at least "
            f"{cov['min_bandwidth_hz']:.0f} Hz of bandwidth") in said
    assert "at any other rate or a narrower band it can accuse but never supports a 'human' verdict" in said
    # a card that records only the range (written before the rates were) is quoted as a range
    ranged = {**rates, "human_coverage": {k: v for k, v in cov.items() if k != "rates_hz"}}
    said = next(s for s in _artifact_sentences({"error_rates": ranged}) if "calibrated on" in s)
    assert f"at {cov['min_rate_hz']}-{cov['max_rate_hz']} Hz with at least" in said
    cost = rates["human_withheld_by_coverage"]["test-fresh"]
    assert f"test-fresh {cost['k']} of {cost['n']} (" in said
    bare = {k: v for k, v in rates.items() if k != "human_coverage"}
    assert not any("calibrated on" in s for s in _artifact_sentences({"error_rates": bare}))


def test_a_pdf_report_draws_chinese_japanese_and_korean_names(caplog):
    """A file name in CJK scripts came out of the PDF as blank boxes (.notdef glyphs): the
    recording's name must be legible in a court document. The setup installs a font that
    covers them (scripts/install-system-deps.sh) and the stylesheet names it."""
    import logging

    from musicbrain_cli.report.pdf import html_to_pdf
    from musicbrain_cli.report.schema import example_track

    track = example_track(n_windows=2, file_name="Ελληνικά العربية 日本語 中文 한국어.wav")
    with caplog.at_level(logging.WARNING, logger="weasyprint"):
        pdf = html_to_pdf(render_report_html(track, {}))
    assert pdf.startswith(b"%PDF-")
    from importlib.resources import files
    css = files("musicbrain_cli.templates").joinpath("report.css").read_text(encoding="utf-8")
    assert '"WenQuanYi Micro Hei"' in css        # named, not left to fontconfig's fallback
    missing = [r.getMessage() for r in caplog.records if ".notdef" in r.getMessage()]
    assert not missing, missing[:3]


def test_a_long_file_name_stays_inside_the_pdf_page():
    """Audit (session 26): a 120-character name without spaces ran past the right edge of
    page one, and the running header past the left one, cutting off its end. Both now stay
    inside the page: the title wraps anywhere, the header is cut with an ellipsis."""
    import weasyprint

    from musicbrain_cli.report.pdf import _fetcher, _font_config
    from musicbrain_cli.report.schema import example_track

    name = "W" * 120 + "مرحبا" * 10 + ".mp3"
    html = render_report_html(example_track(n_windows=2, file_name=name), {})
    doc = weasyprint.HTML(string=html, base_url=None,
                          url_fetcher=_fetcher()).render(font_config=_font_config())
    page = doc.pages[0]
    width = page.width

    def boxes(box, clip=(-float("inf"), float("inf"))):
        """Each box with the horizontal extent it can be seen in (an ``overflow: hidden``
        ancestor clips what its children draw)."""
        if box.style["overflow"] == "hidden":
            clip = (max(clip[0], box.position_x), min(clip[1], box.position_x + box.width))
        yield box, clip
        for child in getattr(box, "children", ()):
            yield from boxes(child, clip)

    text = [(b, clip) for b, clip in boxes(page._page_box) if getattr(b, "text", None)]
    assert any("W" * 20 in b.text for b, _ in text)
    outside = [(b.text[:30], round(b.position_x), round(b.position_x + b.width))
               for b, (lo, hi) in text
               if max(b.position_x, lo) < -0.5 or min(b.position_x + b.width, hi) > width + 0.5]
    assert not outside, outside


def test_the_artifact_lines_mains_hum_rule_and_its_cost_are_quoted():
    """The rule added after the card's rates were measured (session 26) is stated beside
    them, with what it withdrew, so the per-family miss rates are not read as current for
    decoders at mains spacings."""
    from musicbrain_cli.artifacts.detector import ArtifactDetector
    from musicbrain_cli.report.html import _artifact_sentences

    rates = ArtifactDetector.from_pretrained("default").card["summary"]
    said = next(s for s in _artifact_sentences({"error_rates": rates}) if "mains hum" in s)
    assert "(50, 60, 100 or 120 Hz) it never accuses" in said
    w = rates["mains_hum_guard"]["decoded_accusations_withdrawn"]
    assert f"withdrew {w['k']} of {w['n']}" in said and "higher than stated above" in said
    bare = {k: v for k, v in rates.items() if k != "mains_hum_guard"}
    assert not any("mains hum" in s for s in _artifact_sentences({"error_rates": bare}))


# --- session 27 audit: what an opposing expert read in real reports ------------------------


def _artifact_ai_track():
    """An `ai` verdict that only the decoder-artifact line reached; the content model is out
    of domain and near 0."""
    track = example_track(n_windows=3)
    track["verdict"].update(label="ai", ai_lines=["artifacts"], p_ai=0.00007)
    track["ood"] = {"score": 0.9, "threshold": 0.5, "in_domain": False}
    art = track["evidence"][1]
    art.update(finding="ai", p_ai=0.99, threshold=0.967)
    art["details"] = {"artifacts": {"says_ai": True, "doubt_threshold": 0.9, "analysed_s": 180.0,
                                    "error_rates": {"false_accusations_human_new_uploads": {
                                        "k": 2, "n": 1364, "rate": 0.0015,
                                        "ci95": [0.0002, 0.0053]}}}}
    track["input"]["decoded_duration_s"] = 208.0
    return track


def test_an_ai_verdict_quotes_the_rates_of_the_line_that_found_it():
    """An `ai` verdict reached by the decoder-artifact line alone quoted, on page 1, the
    content model's false-accusation rate and its rule, and called the content model's
    out-of-domain finding the verdict's ("the verdict is inconclusive by rule")."""
    from html import unescape

    html = unescape(render_report_html(_artifact_ai_track(), {}))
    page_one = html.split('id="verdict"')[0]
    assert "rests on the decoder-artifact line, not on the content model" in page_one
    assert "new-uploads 2 of 1364" in page_one
    assert "the content model called" not in page_one
    assert "The combined verdict does not come from that rule" in html
    assert "The content model's rule: decision threshold" in html
    assert "the verdict is inconclusive by rule" not in html
    assert "its finding is inconclusive by rule" in html
    assert "A known limit: a sustained synthetic tone" in html
    assert "These maps explain the content model, which did not decide this verdict" in html
    content = example_track(n_windows=3)                   # the content line's own verdict
    content["verdict"].update(label="ai", ai_lines=["content"])
    page_one = render_report_html(content, {}).split('id="verdict"')[0]
    assert "the content model called" in page_one and "rests on the" not in page_one


def test_page_one_names_the_audio_no_line_heard():
    track = _artifact_ai_track()
    track["input"].update(audio_streams=2, stream_index=0, mono_share=0.1)
    page_one = render_report_html(track, {}).split('id="verdict"')[0]
    assert "holds 2 audio streams" in page_one and "keeps only 10%" in page_one
    assert "decoder-artifact line read only the first 180 s of the 208 s" in page_one
    plain = render_report_html(example_track(n_windows=3), {}).split('id="verdict"')[0]
    assert "read only the first" not in plain and "audio streams" not in plain


def test_withheld_style_labels_stay_out_of_the_maps_too():
    track = _artifact_ai_track()
    track["labels_withheld"] = {"reason": "out of domain"}
    html = render_report_html(track, {})
    assert ("Labels explained: AI-or-human output: AI</p>"
            in html and "baroque" not in html.lower().split('id="explanations"')[1])
    assert "Style label names are withheld from them" in html


def test_a_line_that_does_not_accuse_shows_the_threshold_it_acts_on():
    track = example_track(n_windows=3)
    track["evidence"][2]["details"]["symbolic"].update(accuses=False, doubt_threshold=0.926)
    html = render_report_html(track, {})
    assert "<td>none (it does not accuse); doubt 0.926</td>" in html


def test_the_robustness_table_gives_each_rate_its_interval_split_and_note():
    track = example_track(n_windows=3)
    track["robustness"] = [{"transform": "First 30 s", "note": "400 of 400 clips left as is",
                            "roc_auc": 0.98, "fpr": 0.0, "tpr": 0.8, "split": "test",
                            "ai_verdicts_on_human": 0.0,
                            "ai_verdicts_on_human_ci95": [0.0, 0.0188],
                            "n_human": 200, "n_ai": 200}]
    html = render_report_html(track, {})
    assert "First 30 s (400 of 400 clips left as is)" in html
    assert "0.0% (95% upper bound 1.9%)" in html and "200 + 200, test" in html


def test_the_index_does_not_claim_an_unsigned_catalog_is_signed():
    from musicbrain_cli.report.catalog import catalog_files

    index = catalog_files([])["index.html"].decode("utf-8")
    assert "Each report folder is signed" not in index
    assert "signed when the scan was" in index and "Content model in domain" in index


def test_an_ai_verdict_of_the_content_line_quotes_its_worst_measured_false_accusations():
    """Audit (session 27): page 1 quoted '0.0% of 490 human recordings' beside an `ai`
    verdict of the content model, while its card recorded 65 of 1,933 clips (3.4 %) of human
    works rendered without humanisation called AI after it shipped, in section 9 only."""
    from html import unescape

    from musicbrain_cli.model.card import read_card
    from musicbrain_cli.model.checkpoint import resolve_model

    track = example_track(n_windows=3)
    track["verdict"].update(label="ai", ai_lines=["content"],
                            error_rates=read_card(resolve_model("default"))["error_rates"])
    page_one = unescape(render_report_html(track, {})).split('id="verdict"')[0]
    assert "human clips AI-generated" in page_one
    assert ("Measured after the model shipped, on human MusicNet works rendered with General "
            "MIDI SoundFonts and no humanisation: it called 65 of 1933 clips of 10 s (3.4%, "
            "95% confidence interval 2.6% to 4.3%) AI-generated within its domain.") in page_one
    assert "3 of 326 one-minute excerpts" in unescape(render_report_html(track, {}))


def test_page_one_says_a_line_that_could_not_speak_could_not_and_why():
    """Audit (session 27): an artifact line that never ran (a 3.2 kHz band) was listed on
    page 1 as 'inconclusive (operating point 0.967)'."""
    from musicbrain_cli.report.html import drivers

    track = example_track(n_windows=3)
    track["verdict"]["label"] = "inconclusive"
    track["evidence"][1].update(finding="inconclusive", in_domain=False, threshold=0.967,
                                reasons=["Decoder-artifact analysis not applicable: audio "
                                         "bandwidth 3233 Hz is below 4000 Hz."])
    said = [d for d in drivers(track) if d.startswith("Decoder artifacts")]
    assert said == ["Decoder artifacts (spectral peaks left by neural decoders): cannot speak "
                    "for this recording (Decoder-artifact analysis not applicable: audio "
                    "bandwidth 3233 Hz is below 4000 Hz)"]


def test_page_one_gives_a_line_that_does_not_accuse_no_operating_point():
    """The artifact line does not accuse (its card: ``accuses`` false); section 1's table
    says "none (it does not accuse); doubt 0.354", but page 1 of a human verdict listed it
    as "no evidence of AI (P(AI) 0.004, operating point 0.967)", a point it never acts on,
    and not the doubt threshold that let it support the verdict."""
    from musicbrain_cli.report.html import drivers

    track = example_track(n_windows=3)
    track["verdict"].update(label="human", ai_lines=[])
    track["evidence"][1].update(finding="human", p_ai=0.004, threshold=0.967, details={
        "artifacts": {"accuses": False, "doubt_threshold": 0.354}})
    said = [d for d in drivers(track) if d.startswith("Decoder artifacts")]
    assert said == ["Decoder artifacts (spectral peaks left by neural decoders): no evidence of "
                    "AI (P(AI) 0.004, it does not accuse, doubt threshold 0.354)"]
    # a line that accuses keeps its operating point
    track["evidence"][1]["details"]["artifacts"]["accuses"] = True
    assert "operating point 0.967" in " ".join(drivers(track))


def test_limitations_claim_no_error_rates_or_corpus_the_result_does_not_hold():
    """A model exported before finalize has no measured error rates: section 1 said so, but
    the limitations went on "The error rates above were measured on the evaluation corpus
    named in the method section", rates and a corpus the report nowhere shows."""
    from html import unescape

    from musicbrain_cli.report.html import report_view

    track = example_track(n_windows=3)
    del track["verdict"]["error_rates"]
    said = report_view(track, {})["limitations"]
    assert not any("error rates above" in x or "corpus named" in x for x in said)
    assert any(x.startswith("No measured error rates of the content model") for x in said)
    html = unescape(render_report_html(track, {}))
    assert "No measured error rates were supplied with this result" in html
    # with rates, the limitation points at the data they are quoted with
    said = report_view(example_track(n_windows=3), {})["limitations"]
    assert any(x.startswith("The error rates above were measured on the evaluation data "
                            "stated with them.") for x in said)
    assert not any("named in the method section" in x for x in said)


def test_the_method_table_never_counts_none_recordings():
    """A card whose rates record no counts (the test suite's tiny model) gave the method table
    "share of None human recordings in evaluation called AI"."""
    from musicbrain_cli.report.html import appendix_rows

    track = example_track(n_windows=3)
    for k in ("n_human", "n_ai"):
        del track["verdict"]["error_rates"][k]
    meanings = {r["name"]: r["meaning"] for r in appendix_rows(track)}
    assert meanings["False-accusation rate"].startswith("share of the human recordings of the "
                                                        "'test' split called AI")
    assert meanings["Miss rate"].startswith("share of the AI recordings of the 'test' split")
    meanings = {r["name"]: r["meaning"] for r in appendix_rows(example_track(n_windows=3))}
    assert meanings["False-accusation rate"].startswith("share of 1500 human recordings")


def test_section_4_says_nothing_of_maps_a_track_without_them_does_not_have():
    """A near-silent track (no window judged) has no maps, and style attribution withheld:
    section 4 said "Style label names are withheld from them (their maps are drawn unnamed)"
    above "No window explanations are available"."""
    from musicbrain_cli.report.html import report_view

    track = example_track(n_windows=1)
    track["labels_withheld"] = "no analysis window holds enough music to judge"
    track["explanations"], track["alignment"] = [], {}
    view = report_view(track, {})
    assert view["explanations"] == [] and view["explanations_note"] is None
    track = example_track(n_windows=3)
    track["labels_withheld"] = "outside the model's domain"
    assert "maps are drawn unnamed" in report_view(track, {})["explanations_note"]


def test_labels_are_named_for_a_reader_not_by_their_internal_keys():
    """Session 28 (the expert's reading): ``source/human``, ``period/Baroque`` were shown as
    the model's internal keys; a judge reads group titles and plain label names."""
    from musicbrain_cli.taxonomy import display_label

    assert display_label("source/human") == "AI-or-human output: human"
    assert display_label("source/ai").endswith(": AI")
    assert display_label("composer/Bach, Johann Sebastian") == "Composer: Bach, Johann Sebastian"
    assert display_label("odd/x/y") == "odd: x/y" and display_label("plain") == "plain"
    track = example_track(n_windows=3)
    html = render_report_html(track, {})
    section = html.split('id="explanations"')[1].split('id="robustness"')[0]
    assert "Labels explained:" in section and "source/" not in section and "period/" not in section
    assert "<td>Period</td>" in html.split('id="style"')[1].split('id="explanations"')[0]


def _human_track():
    track = example_track(n_windows=3)
    track["verdict"].update(label="human", ai_lines=[])
    return track


def test_a_human_verdict_quotes_what_the_verdict_did_on_real_ai_music():
    """Session 28 (the expert's reading): a human verdict quoted only the test split's miss
    rate, while on real NotaGen-family music measured after release the verdict called a
    fifth of it human. With a record measured with the same models, page 1 says so; with
    none that applies, it says the rate is unknown; a result made before the record existed
    renders as it did."""
    track = _human_track()
    track["verdict"]["measured_on_real_ai"] = {
        "applies": True, "measured": "2026-12-03", "doc": "docs/evaluation/external.md",
        "sets": [{"set": "rendered pieces of a score generator", "tracks": 236, "ai": 0,
                  "human": 44, "inconclusive": 192},
                 {"set": "text-to-music tracks", "tracks": 43, "ai": 1, "human": 6,
                  "inconclusive": 36},
                 {"set": "empty set", "tracks": 0, "ai": 0, "human": 0, "inconclusive": 0}]}
    page_one = render_report_html(track, {}).split('id="verdict"')[0]
    assert ("the verdict called 44 of 236 rendered pieces of a score generator human and none "
            "AI; 6 of 43 text-to-music tracks human and 1 AI: a human verdict does not rule out "
            "such generators") in page_one
    assert "empty set" not in page_one
    track["verdict"]["measured_on_real_ai"] = {"applies": False,
                                               "why": "measured with other content weights"}
    page_one = render_report_html(track, {}).split('id="verdict"')[0]
    assert ("was not measured with these models (measured with other content weights)"
            in page_one)
    del track["verdict"]["measured_on_real_ai"]
    page_one = render_report_html(track, {}).split('id="verdict"')[0]
    assert "real AI generators" not in page_one and "This is not proof of human" in page_one


def test_alignment_words_agree_with_the_figures_they_print():
    """Session 28 audit: a lift of 1.49996 read "(1.50 times), too little to call a link",
    and 1.62 against the sound's 1.58 read "1.6 times chance, more than ... (1.6 times)"."""
    from musicbrain_cli.report.html import alignment_finding

    under = alignment_finding({"harmonic": {"share": 0.149996, "chance": 0.1}, "onset": {}})
    assert "(1.49 times), too little to call a link" in under
    close = alignment_finding({"harmonic": {"share": 0.162, "chance": 0.1},
                               "energy_reference": {"harmonic": {"share": 0.158, "chance": 0.1}},
                               "onset": {}})
    assert "follows the partials of the notes (1.62 times chance, more than the sound's own " \
           "energy (1.58 times))" in close


def test_error_rates_name_the_rule_they_were_measured_under_and_the_clip_caveat():
    """Session 28 audit: the card's rates are of the full rule (band, disagreement, domain),
    not of the threshold alone; and Wilson intervals over clips of shared works are narrow."""
    rates = {"fpr": 0.0, "fpr_ci95": [0.0, 0.008], "n_human": 490, "fnr": 0.145,
             "fnr_ci95": [0.109, 0.191], "n_ai": 282, "unit": "clip", "split": "test",
             "rule": "full verdict rule (band, disagreement, out of domain)"}
    text = " ".join(error_rate_sentences(rates, 0.5))
    assert "under the full decision rule with threshold 0.500 (abstentions included)" in text
    assert "at the threshold used" not in text
    assert "treat each clip as an independent trial" in text
    bare = " ".join(error_rate_sentences({k: v for k, v in rates.items() if k != "rule"}, 0.5))
    assert "at the threshold used (0.500)" in bare


def test_false_accusations_counted_by_work_are_quoted_when_the_card_has_them():
    rates = {"fpr": 0.0, "fpr_ci95": [0.0, 0.008], "n_human": 490, "unit": "clip",
             "rule": "full verdict rule (band, disagreement, out of domain)",
             "by_work": {"n_human_works": 49, "human_works_with_a_clip_called_ai": 0,
                         "fpr_works": 0.0, "fpr_works_ci95": [0.0, 0.0727]}}
    text = " ".join(error_rate_sentences(rates, 0.5))
    assert ("0 of the 49 human works had a clip called AI-generated (0.0%, 95% confidence "
            "interval 0.0% to 7.3%)") in text
    assert "treat each clip as an independent trial" not in text


def test_a_line_that_does_not_accuse_is_never_said_to_accuse():
    """Session 28 review: the artifact section said the line 'does not accuse on its own'
    and, two sentences on, that outside its calibration it 'can accuse'."""
    import json
    from pathlib import Path

    from musicbrain_cli.report.html import _artifact_sentences

    golden = json.loads((Path(__file__).parent / "golden" / "example_results.json").read_text())
    found = golden["01-human-bach.flac"]["evidence"][1]["details"]["artifacts"]
    assert found["accuses"] is False
    text = " ".join(_artifact_sentences(found))
    assert "does not accuse on its own" in text and "can accuse" not in text
    assert "can accuse" in " ".join(_artifact_sentences({**found, "accuses": True}))


def test_the_artifact_line_quotes_what_it_made_of_a_real_vocoder():
    """Issue 22: the line's measured rates on a real, fully trained decoder it never saw
    (HiFi-GAN V1, docs/evaluation/artifact-real-vocoder.md) are quoted beside its finding,
    with the plain statement that for other real decoders its miss rate is unknown."""
    from musicbrain_cli.artifacts.detector import ArtifactDetector
    from musicbrain_cli.report.html import _artifact_sentences

    det = ArtifactDetector.from_pretrained("default")
    rates = det.card["summary"]
    entry = rates["real_decoder_hifigan_v1"]
    sentences = _artifact_sentences({"error_rates": rates, "doubt_threshold": det.doubt_threshold})
    said = [s for s in sentences if "fully trained decoder" in s]
    assert len(said) == len([k for k in rates if k.startswith("real_decoder_")]) == 2   # and LPCNet
    assert sum("For other real decoders its miss rate is unknown" in s for s in sentences) == 1
    # "Miss rate per decoder family on those clips" follows the decoded test clips' sentence
    recall = next(i for i, s in enumerate(sentences) if s.startswith("Decoded test clips"))
    assert sentences[recall + 1].startswith("Miss rate per decoder family on those clips")
    said = [s for s in said if "HiFi-GAN V1" in s]
    assert len(said) == 1 and "(measured after the line shipped)" in said[0]
    k, n = entry["operating_point"]["k"], entry["operating_point"]["n"]
    assert f"at or above its operating point {k} of {n}" in said[0]
    assert f"at or above its doubt threshold {entry['doubt_threshold']['k']} of {n}" in said[0]
    bare = [s for s in _artifact_sentences({"error_rates": rates}) if "fully trained decoder" in s]
    assert "doubt" not in bare[0]


def test_a_link_to_the_partials_is_not_called_on_one_note():
    """The harmonic check had no sample-size guard (the onsets' has one): a window in which one
    note of 0.14 s sounds, under a map that is only the lowest 40 mel rows everywhere, read
    "the heatmap follows the partials of the notes (2.5 times chance, more than the sound's
    own energy)", a link to the music drawn from one note's partials."""
    import numpy as np

    from musicbrain_cli.alignment.overlap import Note, harmonic_overlap
    from musicbrain_cli.features import FrontEndConfig, bin_frequencies, frame_times

    fe = FrontEndConfig(kind="logmel", n_bins=256, f_min=27.5, f_max=11025.0,
                        sample_rate=22050, hop_length=441, window_s=10.0)
    freqs, times = bin_frequencies(fe), frame_times(fe)
    band = np.zeros((len(freqs), len(times)))
    band[:40] = 1.0                          # low frequencies, whatever the notes
    energy = np.random.default_rng(0).random(band.shape)

    def alignment(notes):
        return {"harmonic": harmonic_overlap(band, freqs=freqs, times=times, notes=notes).to_dict(),
                "energy_reference": {"harmonic": harmonic_overlap(
                    energy, freqs=freqs, times=times, notes=notes).to_dict()}}

    one = alignment([Note(2.0, 2.14, 45.0)])
    assert one["harmonic"]["lift"] > 2.0
    # the report counts the notes of its explained windows (one each here)
    track = example_track(n_windows=3)
    track["alignment"]["harmonic"] = one["harmonic"]
    track["alignment"]["energy_reference"]["harmonic"] = one["energy_reference"]["harmonic"]
    for exp in track["explanations"]:
        exp["note_estimator"] = {"estimator": "basic-pitch 0.4.0 (onnx)", "notes": 1}
    html = render_report_html(track, {})
    assert "the heatmap follows the partials" not in html
    assert f"rests on {len(track['explanations'])} notes" in html
    text = " ".join(alignment_sentences(one, 1))
    assert "the heatmap follows the partials" not in text
    assert "cannot be told from so few: the share on the partials rests on 1 note," in text
    assert "Nothing measured here ties the heatmap to the music played" in text
    # enough notes, clearly above chance and the sound's own energy: still a link
    many = alignment([Note(0.5 * i, 0.5 * i + 0.4, 40.0 + i) for i in range(8)])
    assert "the heatmap follows the partials of the notes" in " ".join(alignment_sentences(many, 8))


def _page_text(html: str) -> str:
    """The text WeasyPrint lays out on the PDF's first page, its margin boxes included."""
    import weasyprint

    from musicbrain_cli.report.pdf import _fetcher, _font_config

    doc = weasyprint.HTML(string=html, base_url=None,
                          url_fetcher=_fetcher()).render(font_config=_font_config())

    def texts(box):
        if getattr(box, "text", None):
            yield box.text
        for child in getattr(box, "children", ()):
            yield from texts(child)

    return " ".join(texts(doc.pages[0]._page_box))


def test_an_unsigned_pdf_does_not_invite_a_verification_it_fails():
    """Every page of an unsigned PDF said "Verify with: musicbrain verify <report folder>",
    which finds the folder INVALID (the manifest names no signer), while its HTML says "This
    report was not signed". The footer now says it is not signed; a signed report keeps it."""
    track = example_track(n_windows=2)
    unsigned = _page_text(render_report_html(track, {}))
    assert "Verify with" not in unsigned
    assert "Not signed: musicbrain verify cannot vouch for this report" in unsigned
    signer = {"public_key_sha256": "a" * 64, "certificate_sha256": "b" * 64,
              "certificate_subject": "CN=Examiner", "certificate_self_signed": True}
    assert "Verify with: musicbrain verify" in _page_text(
        render_report_html(track, {}, signer=signer))
