"""Text from files and tags made safe for where it is shown: a terminal, a spreadsheet.

File names, tags and the messages that quote them are data an adversary controls. Two
destinations interpret some of that data as commands (issue 23, observation 7):

* a terminal obeys control characters: ``ESC [ 2K`` erases a line, ``CR`` returns to its
  start, colour sequences paint, so a file name could print a fake green "ALL VERIFIED"
  through a ``failed:`` line; C1 ``CSI`` (U+009B) does the same on some terminals, and
  bidirectional overrides (U+202E) reorder what is shown. :func:`terminal_text` spells each
  such character out as ``\\u{1b}`` (the notation the reports use);
* a spreadsheet evaluates a cell that starts with ``=``, ``+``, ``-`` or ``@`` (and, in
  some programs, a tab or CR) as a formula (OWASP, "CSV Injection",
  https://owasp.org/www-community/attacks/CSV_Injection): :func:`csv_cell` prefixes such a
  text cell with a single quote, which every major spreadsheet shows as text, and spells
  out control characters first so none reaches the file raw. Numbers are data, never
  formulas: a negative number the tool writes stays a number.
"""

from __future__ import annotations

import math

import unicodedata

#: Unicode categories that must not reach a terminal or a cell raw: controls (C0 and C1:
#: ESC, CSI, CR, BS, BEL, ...), format characters (bidirectional overrides, zero-width
#: characters), surrogates, private use, unassigned, and line/paragraph separators.
UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
#: First characters that make a spreadsheet read a cell as a formula (OWASP).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _spell_out(text: str, *, tab: str | None, keep_newlines: bool) -> str:
    out = []
    for ch in text:
        if ch == "\t" and tab is not None:
            out.append(tab)
        elif ch == "\n" and keep_newlines:
            out.append(ch)
        elif unicodedata.category(ch) in UNSAFE_CATEGORIES:
            out.append(f"\\u{{{ord(ch):x}}}")
        else:
            out.append(ch)
    return "".join(out)


def terminal_text(text: object, *, keep_newlines: bool = False) -> str:
    """``str(text)`` with every character in :data:`UNSAFE_CATEGORIES` spelled out as
    ``\\u{hex}`` and tabs as spaces. Newlines are spelled out too (a name holding one could
    forge a whole line) unless ``keep_newlines``, for text whose newlines are the caller's
    own (a JSON document, in which JSON already escapes those inside strings)."""
    return _spell_out(str(text), tab=" ", keep_newlines=keep_newlines)


def csv_cell(value: object) -> object:
    """A value ready for a CSV cell: text with a leading ``'`` if it would start a formula
    (judged on the text as given, so a leading tab or CR counts) and every control
    character, tabs and newlines included, spelled out as ``\\u{hex}``; anything that is
    not text (numbers, booleans, None) unchanged."""
    if not isinstance(value, str):
        return value
    text = _spell_out(value, tab=None, keep_newlines=False)
    return "'" + text if value.startswith(FORMULA_START) else text


__all__ = ["FORMULA_START", "UNSAFE_CATEGORIES", "apart", "csv_cell", "distinct_pair", "or_list", "terminal_text"]


def apart(value: float, *edges: float, least: int = 2, most: int = 4,
          probability: bool = True, same: float = 0.0) -> list[str]:
    """``value`` and ``edges`` written with one number of decimals, ``least`` to ``most``: as
    many as it takes for ``value`` to read differently from each edge it differs from by more
    than ``same`` (an edge within float rounding of it, such as 0.7 + 0.2, *is* it), and, for
    a ``probability`` below 1, never to read as 1. Past ``most`` decimals a probability below
    1 that still reads 1 is cut, not rounded. The one place the house writes a number beside
    the thresholds it is read against (review of session 45: a P(AI) of 0.5996, inconclusive,
    and 0.6004, ``ai``, both read "0.60"; 0.9962 read "1.00", a certainty no model gives)."""
    marks = [e for e in edges if abs(e - value) > same]
    for d in range(least, most + 1):
        shown = f"{value:.{d}f}"
        if not (any(shown == f"{e:.{d}f}" for e in marks)
                or (probability and value < 1 and shown == f"{1:.{d}f}")):
            break
    else:
        if probability and value < 1 and shown == f"{1:.{d}f}":
            shown = f"{math.floor(value * 10 ** d) / 10 ** d:.{d}f}"
    return [shown, *(f"{e:.{d}f}" for e in edges)]


def distinct_pair(a: float, b: float, *, decimals: int = 2, most: int = 4) -> tuple[str, str]:
    """``a`` and ``b`` written with ``decimals`` decimals, or with as many more (up to ``most``)
    as it takes for the two to read differently when they differ: a P(AI) of 0.992 against an
    operating point of 0.991 must not read "0.99 against 0.99". For any two numbers (a domain
    score may exceed 1): :func:`apart` without its probability rule."""
    sa, sb = apart(a, b, least=decimals, most=most, probability=False)
    return sa, sb


def or_list(items) -> str:
    """Items in words: ``a``, ``a or b``, ``a, b or c`` (``""`` for none)."""
    items = [str(i) for i in items]
    if not items:
        return ""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]
