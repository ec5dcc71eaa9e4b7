"""Defects of the per-track report and the catalog page found in the review of session 46
(catalog area), each reproduced before it was fixed."""

import re

from musicbrain_cli.report.html import report_view
from musicbrain_cli.report.schema import example_track


def _at_the_edge(p: float) -> dict:
    """A track whose content model gave ``p``, inconclusive or not by the band 0.40-0.60."""
    track = example_track()
    label = "ai" if p >= 0.6 else "human" if p <= 0.4 else "inconclusive"
    track["verdict"].update(label=label, p_ai=p, threshold=0.5, band=[0.4, 0.6],
                            ai_lines=["content"] if label == "ai" else [])
    track["evidence"][0].update(finding=label, p_ai=p, threshold=0.6)
    return track


def test_a_probability_inside_the_band_never_reads_as_its_edge():
    """0.5996, inconclusive, read "0.600" in the verdict box, the evidence table and page
    one's "P(AI) 0.600, AI at or above 0.600": a reader took the track for one the rule calls
    AI (the rule's own reasons already printed 0.5996). 0.4004 read "0.400" beside "human at
    or below 0.400"; 0.9996 read "1.000", a certainty no model gives."""
    for p, shown in ((0.5996, "0.5996"), (0.4004, "0.4004"), (0.9996, "0.9996"),
                     (0.59999, "0.59999")):
        view = report_view(_at_the_edge(p), {})
        assert view["verdict"]["p_ai"] == shown
        assert f"is AI-generated is {shown}." in view["verdict"]["sentences"][0]
        assert view["evidence"][0]["p_ai"] == shown
        assert any(f"P(AI) {shown}," in d for d in view["drivers"]), view["drivers"]
    # away from the edges nothing changes
    view = report_view(_at_the_edge(0.8123), {})
    assert view["verdict"]["p_ai"] == "0.812" and view["evidence"][0]["p_ai"] == "0.812"
    # another line's P(AI) against its own operating point (the artifact line's 0.90)
    track = _at_the_edge(0.2)
    track["evidence"][1].update(p_ai=0.8996, finding="inconclusive")
    assert report_view(track, {})["evidence"][1]["p_ai"] == "0.8996"
    # a probability exactly at an edge reads as the edge
    assert report_view(_at_the_edge(0.6), {})["verdict"]["p_ai"] == "0.600"


def test_one_window_at_the_edge_reads_on_its_side_of_it():
    from musicbrain_cli.report.html import timeline_sentence

    track = _at_the_edge(0.5996)
    track["timeline"].update(window_start_s=[0.0], p_ai=[0.5996])
    said = timeline_sentence(track)
    assert "P(AI) 0.5996, inside the inconclusive band" in said, said


def test_a_flat_line_across_an_edge_of_the_band_is_not_said_to_lie_beyond_it():
    """Windows from 0.590 to 0.605 (a flat line, the track inconclusive) read "all 8 windows
    give P(AI) between 0.590 and 0.605, above the inconclusive band 0.400–0.600": six of
    them lie inside it. The sentence placed the whole line by its highest window."""
    from musicbrain_cli.report.html import timeline_sentence

    track = _at_the_edge(0.597)
    track["timeline"]["p_ai"] = [0.59, 0.592, 0.598, 0.605, 0.601, 0.595, 0.596, 0.597]
    said = timeline_sentence(track)
    assert "above the inconclusive band" in said
    assert "the lowest inside the inconclusive band 0.400–0.600" in said, said
    assert not said.endswith(", above the inconclusive band 0.400–0.600."), said
    # a flat line on one side of the edges is placed as before
    track["timeline"]["p_ai"] = [0.01, 0.012, 0.011, 0.01]
    assert timeline_sentence(track).endswith("0.010 and 0.012, below the inconclusive band "
                                             "0.400–0.600.")


def test_a_partial_decode_never_reads_as_complete_in_the_integrity_table():
    """A file 3 ms short of its header decodes 99.96 %: section 7 said "Decoded (share of
    the stream): 100.0 %" while the limitations of the same report said "Only 99.9% of the
    stream decoded" (they round down since a review of the intake)."""
    from musicbrain_cli.report.html import decoded_share_text

    assert decoded_share_text({"share_decoded": 0.9996}) == "99.9 %"
    assert decoded_share_text({"share_decoded": 0.99999999}) == "99.9 %"
    assert decoded_share_text({"share_decoded": 0.991, "undecodable_packets": 2}) == \
        "99.1 % (2 undecodable packets)"
    assert decoded_share_text({"share_decoded": 0.5}) == "50.0 %"
    assert decoded_share_text({"share_decoded": 1.0}) == "100 %"


def test_a_duration_never_reads_sixty_seconds_past_a_minute():
    """119.996 s read "120.00 s (1:60.00)" in page one's and section 7's durations: the
    seconds were rounded after they were split from the minutes."""
    from musicbrain_cli.report.html import seconds

    assert seconds(119.996) == "120.00 s (2:00.00)"
    assert seconds(59.999) == "60.00 s (1:00.00)"
    assert seconds(12.0) == "12.00 s (0:12.00)" and seconds(75.5) == "75.50 s (1:15.50)"
    track = example_track()
    track["input"]["decoded_duration_s"] = 239.997
    assert report_view(track, {})["examined"]["duration"] == "240.00 s (4:00.00)"


def test_page_one_says_why_a_probability_past_the_ai_point_is_inconclusive():
    """A track whose content model gave P(AI) 0.950, withheld by the silence cue (or as too
    short), read on page one "Content model: inconclusive (P(AI) 0.950, AI at or above 0.600,
    human at or below 0.400)" and nothing more: by the figures beside it an AI finding the
    tool hedged on. The rule that withheld it is said beside the figures."""
    from musicbrain_cli.verdict import SILENCE_CUE, TOO_SHORT

    for cue in (SILENCE_CUE, TOO_SHORT):
        track = _at_the_edge(0.5)
        track["verdict"].update(p_ai=0.95, reasons=["The content line is inconclusive."])
        track["evidence"][0].update(p_ai=0.95, reasons=[cue])
        said = report_view(track, {})["drivers"]
        assert len(said) == 1 and "P(AI) 0.950, AI at or above 0.600" in said[0]
        assert said[0].endswith(cue), said
    # inside the band the figures say it themselves: nothing is added
    track = _at_the_edge(0.55)
    track["evidence"][0]["reasons"] = ["The calibrated probability of AI lies in the band."]
    assert report_view(track, {})["drivers"] == [
        "Content model (what the music sounds like): inconclusive (P(AI) 0.550, AI at or "
        "above 0.600, human at or below 0.400)"]


def test_a_silent_windows_probability_is_not_drawn_on_the_timeline():
    """A silent window is not judged, and the report says so, yet the timeline drew its
    P(AI) (read from dither or zeros, which the model takes for a cue of AI) as a step and
    a labelled dot: a human recording's silent ending stood at 0.97 in the region labelled
    "AI". Its value no longer changes the figure; a judged window's still does."""
    from musicbrain_cli.report.figures import timeline_figure

    def figure(last: float, quiet=(False, False, False, True)) -> bytes:
        return timeline_figure([0.0, 2.0, 4.0, 6.0], [0.1, 0.12, 0.1, last], window_s=4.0,
                               threshold=0.5, band=(0.4, 0.6), quiet=list(quiet))

    assert figure(0.97) == figure(0.1)
    assert figure(0.97, quiet=(False,) * 4) != figure(0.1, quiet=(False,) * 4)
    # every window silent: only hatching, and it still draws
    assert timeline_figure([0.0, 2.0], [0.9, 0.97], window_s=4.0, quiet=[True, True]) == \
        timeline_figure([0.0, 2.0], [0.2, 0.3], window_s=4.0, quiet=[True, True])


def _index_cells(html: str, heading: str) -> list[str]:
    heads = re.findall(r"<th[^>]*>([^<]*)</th>", html)
    col = heads.index(heading)
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", html, re.S)
    return [cells[col] for cells in (re.findall(r"<td[^>]*>(.*?)</td>", r) for r in rows)
            if len(cells) > col]


def test_the_index_prints_a_probability_as_the_tracks_report_does(tmp_path):
    """The index printed P(AI) with three decimals: an inconclusive 0.5996 read "0.600"
    (where the content rule calls AI) beside a report that says 0.5996, and 0.9996 read
    "1.000". Its rows now carry the content rule's band, and the index prints each
    probability as the report does."""
    import json

    from musicbrain_cli.report.catalog import CatalogEntry, write_catalog

    tracks = [_at_the_edge(p) for p in (0.5996, 0.9996, 0.4004, 0.2)]
    write_catalog(tmp_path, [CatalogEntry(f"/in/{i}.flac", t, f"t{i}/report.pdf")
                             for i, t in enumerate(tracks)])
    html = (tmp_path / "index.html").read_text()
    assert _index_cells(html, "P(AI), content") == ["0.5996", "0.9996", "0.4004", "0.200"]
    for t in tracks:
        assert report_view(t, {})["verdict"]["p_ai"] in _index_cells(html, "P(AI), content")
    rows = json.loads((tmp_path / "summary.json").read_text())["tracks"]
    assert [(r["band_low"], r["band_high"]) for r in rows] == [(0.4, 0.6)] * 4


def test_a_summary_row_written_before_the_band_columns_still_verifies(tmp_path):
    """Rows sealed before the band columns existed are compared with their signed results on
    the columns they have, not failed for the new ones (verify.LATER_FIELDS)."""
    import json

    from musicbrain_cli.report.catalog import CatalogEntry, write_catalog
    from musicbrain_cli.report.keys import init_keys, load_trusted
    from musicbrain_cli.report.manifest import write_manifest
    from musicbrain_cli.report.verify import verify_catalog
    from musicbrain_cli.report.writer import write_track_report

    keys = init_keys(tmp_path / "keys")
    track = _at_the_edge(0.5996)
    write_track_report(track, {}, tmp_path / "a", formats=("html", "json"), keys=keys)
    write_manifest(tmp_path / "a", None, None, keys, audio_sha256="0" * 64)
    write_catalog(tmp_path, [CatalogEntry("/evidence/example.flac", track, "a/report.html")])

    def summary_check():
        return {c.name: c for c in verify_catalog(tmp_path, trusted=load_trusted(tmp_path / "keys"))[0].checks}["summary"]

    assert summary_check().status == "pass", summary_check()
    path = tmp_path / "summary.json"
    data = json.loads(path.read_text())
    for row in data["tracks"]:
        del row["band_low"], row["band_high"]
    path.write_text(json.dumps(data))
    assert summary_check().status == "pass", summary_check()


def test_a_domain_score_past_its_limit_never_reads_as_the_limit():
    """An embedding distance of 0.5004 against its limit 0.500 read "0.500 above the limit
    0.500" in the out-of-domain warning and "0.500 | 0.500 | OUTSIDE" in the table: a tie
    that the report called a failed check."""
    track = example_track()
    track["ood"] = {"available": True, "in_domain": False, "score": 0.5004, "threshold": 0.5,
                    "checks": [{"name": "embedding", "description": "embedding distance",
                                "score": 0.5004, "threshold": 0.5, "in_domain": False}]}
    view = report_view(track, {})
    assert "embedding distance: 0.5004 above the limit 0.500" in view["ood_warning"]
    assert view["ood_checks"][0]["score"] == "0.5004"
    # a record without a table of checks (before there were several) says the same
    track["ood"] = {"available": False, "in_domain": False, "score": 0.5004, "threshold": 0.5}
    assert "score 0.5004 above the limit 0.500" in report_view(track, {})["ood_warning"]
    # a score far from its limit reads as before
    track["ood"].update(score=3.21)
    assert "score 3.210 above the limit 0.500" in report_view(track, {})["ood_warning"]


def test_the_scan_summary_names_the_failures_the_catalog_still_lists(tmp_path):
    """A scan of other files into a folder whose catalog lists failures of an earlier scan
    keeps those rows (so nothing is dropped), but its console summary said "failed 0" over
    an index that counted them, with exit status 0 and not a word about them."""
    import json

    from musicbrain_cli.cli import scan_summary_lines
    from musicbrain_cli.report.catalog import CatalogEntry, write_catalog
    from musicbrain_cli.scan.batch import scan

    out, empty = tmp_path / "out", tmp_path / "empty"
    empty.mkdir()
    bad = tmp_path / "in" / "bad.wav"
    write_catalog(out, [CatalogEntry(str(bad), error="decode failed: truncated")])
    result = scan([empty], out, None)
    rows = json.loads((out / "summary.json").read_text())["tracks"]
    assert [(r["status"], r["path"]) for r in rows] == [("error", str(bad))]
    assert result.n_failed == 0
    lines = scan_summary_lines(result, out)
    assert ("1 failed input(s) of earlier scans, not read by this scan, still listed in the "
            "catalog as failed") in lines


def test_a_probability_at_an_edge_up_to_float_rounding_reads_as_the_edge():
    """A card with threshold 0.7 and band 0.2 records the AI point as 0.8999999999999999: a
    P(AI) of 0.9, at that point, read "0.900000" (six decimals to tell float noise apart)."""
    track = _at_the_edge(0.9)
    track["verdict"].update(label="ai", threshold=0.7, band=[0.5, 0.7 + 0.2], ai_lines=["content"])
    track["evidence"][0].update(finding="ai")
    view = report_view(track, {})
    assert view["verdict"]["p_ai"] == "0.900" and view["evidence"][0]["p_ai"] == "0.900"


def test_a_short_tracks_timeline_ends_where_the_recording_does():
    """An 8 s recording has one 10 s window that repeats it past its end: the report's
    coverage and the map titles name only the 8 s it has, but the timeline's time axis ran to
    10 s. It now ends at the recording's end, as a window of the recording's length would."""
    from musicbrain_cli.report.figures import timeline_figure
    from musicbrain_cli.report.writer import render_track_report

    def drawn(window_s, **kw):
        return timeline_figure([0.0], [0.3], window_s=window_s, threshold=0.5, band=(0.4, 0.6),
                               **kw)

    assert drawn(10.0, duration_s=8.0) == drawn(8.0)
    assert drawn(10.0, duration_s=12.0) == drawn(10.0)      # a longer recording: unchanged
    track = example_track(n_windows=1, window_s=10.0)
    track["input"].update(duration_s=8.0, decoded_duration_s=8.0)
    track["verdict"].update(threshold=0.5, band=[0.4, 0.6])
    track["timeline"]["p_ai"] = [0.3]
    track["explanations"] = []
    figures = render_track_report(track, {}, formats=("html",)).figures
    assert figures["timeline.png"] == drawn(8.0)


def test_the_timelines_range_never_reads_a_window_as_certain_or_at_an_edge():
    """"Across the 4 windows P(AI) ranges from 0.100 to 1.000" for a highest window of
    0.9996; and a lowest of 0.4004 read "0.400", the edge where the rule says human."""
    from musicbrain_cli.report.html import timeline_sentence

    track = _at_the_edge(0.6)
    track["timeline"]["p_ai"] = [0.4004, 0.7, 0.9996, 0.8]
    said = timeline_sentence(track)
    assert said.startswith("Across the 4 windows P(AI) ranges from 0.4004 to 0.9996;"), said


def test_the_timelines_window_labels_never_read_as_an_edge_or_certain(monkeypatch):
    """The figure labels each of a few windows with its P(AI) at two decimals: a window of
    0.597, inside the band 0.40-0.60, was labelled "0.60", its AI edge, and one of 0.9996
    "1.00". They are now written as the rule's reasons write them (verdict.figures)."""
    from matplotlib.axes import Axes

    from musicbrain_cli.report.figures import timeline_figure

    written = []
    annotate = Axes.annotate

    def spy(self, text, *args, **kwargs):
        written.append(text)
        return annotate(self, text, *args, **kwargs)

    monkeypatch.setattr(Axes, "annotate", spy)
    timeline_figure([0.0, 2.0, 4.0], [0.597, 0.9996, 0.2], window_s=4.0, threshold=0.5,
                    band=(0.4, 0.6))
    assert written == ["0.597", "0.9996", "0.20"]
