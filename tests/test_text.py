"""Text made safe for terminals and spreadsheets (issue 23, observation 7)."""

import csv
import io

import pytest

from musicbrain_cli.report.catalog import summary_csv
from musicbrain_cli.text import csv_cell, distinct_pair, terminal_text

FAKE = "\x1b[2K\r\x1b[1;32mALL VERIFIED\x1b[0m\n\x9b2Jx\u202egpj.wav"


def test_terminal_text_spells_out_every_steering_character():
    out = terminal_text(FAKE)
    for ch in ("\x1b", "\r", "\n", "\x9b", "\u202e"):
        assert ch not in out
    assert out.startswith("\\u{1b}[2K\\u{d}\\u{1b}[1;32mALL VERIFIED")
    assert "\\u{a}" in out and "\\u{9b}" in out and "\\u{202e}" in out
    # printable text, accents and music signs are left alone; tabs become spaces
    assert terminal_text("Ünïcödé ♫\tok") == "Ünïcödé ♫ ok"
    assert terminal_text("a\nb", keep_newlines=True) == "a\nb"


@pytest.mark.parametrize("text", ["=1+1", "+SUM(A1)", "-2+3", "@cmd", "\t=1", "\r=1",
                                  "=HYPERLINK(\"http://x\",\"y\")"])
def test_text_that_would_start_a_formula_is_quoted(text):
    cell = csv_cell(text)
    assert cell.startswith("'") and "\t" not in cell and "\r" not in cell


def test_numbers_written_by_the_tool_stay_numbers():
    assert csv_cell(-0.25) == -0.25 and csv_cell(-3) == -3 and csv_cell(False) is False
    assert csv_cell("plain name.wav") == "plain name.wav"


def test_summary_csv_has_no_formula_and_no_raw_control_character():
    rows = [{"file_name": FAKE, "path": "=cmd|' /C calc'!A0", "status": "error",
             "error": "-decode failed", "p_ai": -0.5, "ood_score": -1.25}]
    text = summary_csv(rows)
    assert not any(ch in text for ch in ("\x1b", "\x9b", "\u202e")) and "\x0d\x1b" not in text
    body = text.split("\r\n", 1)[1]                   # RFC 4180 line ends are the only CRs
    assert "\r" not in body.rstrip("\r\n").replace("\r\n", "")
    (row,) = list(csv.DictReader(io.StringIO(text)))
    assert row["file_name"].startswith("\\u{1b}[2K")   # spelled out, not obeyed
    assert row["path"] == "'=cmd|' /C calc'!A0" and row["error"] == "'-decode failed"
    assert row["p_ai"] == "-0.5" and row["ood_score"] == "-1.25"   # data, not formulas


def test_the_cli_prints_only_through_its_terminal_safe_echo():
    # Every line the CLI prints must pass terminal_text; a raw click.echo/print added to a
    # command would let a file name steer the console again.
    import ast
    from pathlib import Path

    import musicbrain_cli.cli as cli

    tree = ast.parse(Path(cli.__file__).read_text(encoding="utf-8"))
    raw = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == "_echo":
            continue
        for call in ast.walk(node) if isinstance(node, ast.FunctionDef) else ():
            f = getattr(call, "func", None)
            name = (f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", None))
            if isinstance(call, ast.Call) and name in ("echo", "secho", "print"):
                raw.append(f"{node.name}: line {call.lineno}")
    assert not raw, f"print through _echo instead: {raw}"


def test_two_numbers_that_differ_never_read_alike():
    """A P(AI) of 0.992 against an operating point of 0.991 read "0.99 against 0.99" in a
    report: as many more decimals as it takes (up to four), and no more than two otherwise."""
    assert distinct_pair(0.97, 0.9) == ("0.97", "0.90")
    assert distinct_pair(0.9919595, 0.9910650) == ("0.992", "0.991")
    assert distinct_pair(0.99106, 0.99104) == ("0.9911", "0.9910")
    assert distinct_pair(0.5, 0.5) == ("0.50", "0.50")
    assert distinct_pair(0.991065, 0.9910650001) == ("0.9911", "0.9911")     # past four: alike


def test_a_verdict_reason_tells_a_p_ai_from_an_operating_point_just_below_it():
    from musicbrain_cli.verdict import LineFinding, combine

    content = LineFinding(line="content", finding="ai", in_domain=True, p_ai=0.9919, threshold=0.9911)
    assert "(P(AI) 0.992 against 0.991)" in combine([content]).reasons[0]


def test_items_in_words_are_joined_with_commas_and_a_final_or():
    from musicbrain_cli.text import or_list

    assert or_list([16000]) == "16000"
    assert or_list([22050, 44100]) == "22050 or 44100"
    assert or_list(["a", "b", "c"]) == "a, b or c"


def test_apart_writes_a_probability_apart_from_its_edges_and_never_as_one():
    """The one writer of a number beside its thresholds (verdict reasons, report, domain
    check): 0.5996 (inconclusive) must not read as the 0.600 where `ai` begins."""
    from musicbrain_cli.text import apart

    assert apart(0.5996, 0.4, 0.6) == ["0.5996", "0.4000", "0.6000"]
    assert apart(0.55, 0.4, 0.6) == ["0.55", "0.40", "0.60"]
    assert apart(0.6, 0.4, 0.6) == ["0.60", "0.40", "0.60"]              # equal: reads equal
    assert apart(0.9962) == ["0.996"]                                    # never "1.00"
    assert apart(0.9999999) == ["0.9999"]                                # cut past four
    assert apart(0.9999999, probability=False) == ["1.00"]               # a score, not a P
    assert apart(0.9, 0.7 + 0.2, least=3, most=6, same=1e-9) == ["0.900", "0.900"]
    assert apart(0.9, 0.7 + 0.2, least=3, most=6)[0] == "0.900000"       # exact: kept apart
