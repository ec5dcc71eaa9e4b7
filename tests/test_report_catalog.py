"""Catalog: summary.json/csv cover every input (failures too), CSV cells cannot run formulas."""

import csv
import io
import json
import re

from musicbrain_cli.report.catalog import CatalogEntry, csv_safe, write_catalog
from musicbrain_cli.report.schema import example_track


def test_csv_safe():
    for bad in ("=1+1", "+cmd", "-2+3", "@SUM(A1)"):
        assert csv_safe(bad) == "'" + bad
    # a leading tab or CR also makes a formula; neither reaches the file raw (issue 23)
    assert csv_safe("\tx") == "'\\u{9}x" and csv_safe("\rx") == "'\\u{d}x"
    assert csv_safe("plain") == "plain" and csv_safe(-0.5) == -0.5 and csv_safe(None) is None


def test_catalog_files(tmp_path):
    track = example_track(file_name="=HYPERLINK(\"http://evil\")")
    entries = [CatalogEntry("/in/a.flac", track, "a/report.pdf"),
               CatalogEntry("/in/<i>bad.mp3", None, None, "-decode failed: truncated")]
    paths = write_catalog(tmp_path, entries)
    assert sorted(p.name for p in paths) == ["index.html", "summary.csv", "summary.json"]

    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [t["status"] for t in summary["tracks"]] == ["ok", "error"]
    assert summary["tracks"][0]["p_ai"] == track["verdict"]["p_ai"]
    assert summary["tracks"][0]["top_labels"].startswith("period/baroque=0.81")
    assert summary["tracks"][1]["error"] == "-decode failed: truncated"

    rows = list(csv.DictReader(io.StringIO((tmp_path / "summary.csv").read_text())))
    assert len(rows) == 2
    assert rows[0]["file_name"].startswith("'=HYPERLINK")
    assert rows[1]["error"] == "'-decode failed: truncated"
    assert float(rows[0]["p_ai"]) == track["verdict"]["p_ai"]

    html = (tmp_path / "index.html").read_text()
    assert "&lt;i&gt;bad.mp3" in html and "<i>" not in html
    assert 'href="./a/report.pdf"' in html
    assert "class=\"sortable\"" in html and "script-src 'sha256-" in html
    # the page names the labels in words; summary.json/csv keep the keys for machines
    assert "Period: baroque 0.81" in html and "period/baroque=0.81" not in html


def test_index_links_cannot_become_scripts(tmp_path):
    write_catalog(tmp_path, [CatalogEntry("/x", example_track(), "javascript:alert(1)")])
    html = (tmp_path / "index.html").read_text()
    assert 'href="./javascript%3Aalert%281%29"' in html


def test_csp_hash_matches_inline_script(tmp_path):
    import base64
    import hashlib
    import re

    write_catalog(tmp_path, [])
    html = (tmp_path / "index.html").read_text()
    script = re.search(r"<script>(.*)</script>", html, re.S).group(1)
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"'sha256-{digest}'" in html


def test_index_states_totals_model_and_date_and_never_breaks_words(tmp_path):
    # Issue 24: at 1400 px the index broke "Verdict" and "0.93" mid-word and said nothing
    # of the totals, the model or the date.
    human, ai = example_track(seed=1), example_track(seed=2)
    human["verdict"]["label"], ai["verdict"]["label"] = "human", "ai"
    entries = [CatalogEntry("/in/a.flac", human, "a/report.pdf"),
               CatalogEntry("/in/b.flac", ai, "b/report.pdf"),
               CatalogEntry("/in/c.flac", example_track(seed=3), "c/report.pdf"),
               CatalogEntry("/in/d.mp3", None, None, "decode failed: truncated")]
    entries[2].track["verdict"]["label"] = "human"
    write_catalog(tmp_path, entries)
    html = (tmp_path / "index.html").read_text()
    totals = dict((label, int(n)) for n, label in
                  re.findall(r'<span class="n">(\d+)</span>(\w+)</li>', html))
    assert totals == {"ai": 1, "inconclusive": 0, "human": 2, "failed": 1}
    assert "musicbrain-detector 1.0.0, weights SHA-256" in html and "1" * 64 in html
    assert "Analysed on</dt><dd>2025-01-01 (UTC)" in html
    assert "overflow-wrap: anywhere" not in re.sub(r"\.mono \{[^}]*\}", "", html)
    assert "word-break: normal; overflow-wrap: normal" in html
    assert re.search(r"td\.num[^{]*\{ white-space: nowrap", html)
    assert re.search(r'<td data-sort="[^"]*" class="num">0\.\d{3}</td>', html)  # P(AI)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["tracks"][0]["model_sha256"] == "1" * 64


def test_summary_and_index_say_why_and_which_lines_decided(tmp_path):
    """An inconclusive track whose content P(AI) is low says why (the combined rule's first
    reason: another line withheld `human`), in summary.json, summary.csv and the index; an
    `ai` track names the lines that found AI."""
    held = example_track(seed=4)
    held["verdict"].update(label="inconclusive", ai_lines=[], p_ai=0.02,
                           reasons=["The symbolic line leans towards AI generation (P(AI) 0.95, "
                                    "short of its operating point 0.99)."])
    ai = example_track(seed=5)
    ai["verdict"].update(label="ai", ai_lines=["content", "symbolic"])
    write_catalog(tmp_path, [CatalogEntry("/in/a.flac", held, "a/report.pdf"),
                             CatalogEntry("/in/b.flac", ai, "b/report.pdf"),
                             CatalogEntry("/in/c.mp3", None, None, "decode failed")])
    tracks = json.loads((tmp_path / "summary.json").read_text())["tracks"]
    assert tracks[0]["why"].startswith("The symbolic line leans towards AI") and tracks[0]["ai_lines"] is None
    assert tracks[1]["ai_lines"] == "content; symbolic"
    assert tracks[2]["why"] is None and tracks[2]["ai_lines"] is None
    rows = list(csv.DictReader(io.StringIO((tmp_path / "summary.csv").read_text())))
    assert rows[0]["why"] == tracks[0]["why"]
    # columns are appended, never moved: existing CSV readers keep their positions
    assert list(rows[0])[20:] == ["ai_lines", "why", "musicbrain_version", "band_low", "band_high"]
    html = (tmp_path / "index.html").read_text()
    assert "<th" in html and ">Why<" in html and "leans towards AI generation (P(AI) 0.95" in html
    # the README says the index names the lines that found AI: it did not (session 26 audit)
    assert ">Lines that found AI<" in html and ">content; symbolic<" in html
    # an analysed track where no line found AI says "none"; "n/a" read as "not known"
    # (README audit, session 37); the failed track's cell stays "n/a"
    heads = re.findall(r"<th[^>]*>([^<]*)</th>", html)
    col = heads.index("Lines that found AI")
    body = [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in re.findall(r"<tr[^>]*>(.*?)</tr>", html, re.S)]
    lines = [cells[col] for cells in body if len(cells) > col]      # rows in catalog order
    assert lines == ["none", "content; symbolic", "n/a"], lines


def test_the_index_states_the_versions_its_rows_record(tmp_path):
    """Audit (session 26): index.html stated the version that rendered it, so a rerun by a
    later version claimed it for tracks an earlier one had analysed, and verifying an
    untouched catalog with another version failed ("edited after the scan")."""
    from musicbrain_cli import __version__
    from musicbrain_cli.report.verify import verify_catalog

    old, new = example_track(seed=1), example_track(seed=2)
    old["software"]["musicbrain"] = "0.0.9"
    write_catalog(tmp_path, [CatalogEntry("/in/a.flac", old, "a/report.pdf"),
                             CatalogEntry("/in/b.flac", new, "b/report.pdf")])
    html = (tmp_path / "index.html").read_text()
    assert f"MusicBrain 0.0.9, {__version__}</dd>" in html
    tracks = json.loads((tmp_path / "summary.json").read_text())["tracks"]
    assert [t["musicbrain_version"] for t in tracks] == ["0.0.9", __version__]
    checks = {c.name: c for c in verify_catalog(tmp_path)[0].checks}
    assert checks["file index.html"].status == "skip" and "0.0.9" in checks["file index.html"].detail


def test_names_that_only_look_alike_are_told_apart(tmp_path):
    """Review (session 45): a composed and a decomposed "café.mp3", or "take  1.mp3" and
    "take 1.mp3" (HTML folds the spaces), drew the same catalog rows for different recordings;
    the same-name rule compared raw strings and never switched them to their paths."""
    import html as _html

    names = ["caf\u00e9.mp3", "cafe\u0301.mp3", "take  1.mp3", "take 1.mp3", "solo.mp3"]
    entries = [CatalogEntry(f"/in/{d}/{n}", example_track(file_name=n, sha256=f"{i:064x}"),
                            f"r{i}/report.html") for i, (d, n) in
               enumerate(zip(["a", "b", "c", "d", "e"], names))]
    write_catalog(tmp_path, entries)
    page = _html.unescape((tmp_path / "index.html").read_text())
    # each look-alike pair shows its paths, with the difference spelled out
    assert "/in/a/caf\u00e9.mp3" in page and "/in/b/cafe\\u{0301}.mp3" in page
    assert "/in/c/take \\u{0020}1.mp3" in page and "/in/d/take 1.mp3" in page
    assert ">solo.mp3<" in page                  # a name that recurs nowhere stays a name
    from musicbrain_cli.report.html import render_report_html

    report = _html.unescape(render_report_html(example_track(file_name="cafe\u0301.mp3"), {}))
    assert "cafe\\u{0301}.mp3" in report and "caf\u00e9.mp3" not in report
