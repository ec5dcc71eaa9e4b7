"""ABC notation as text: NotaGen's interleaved voices, voice bodies, music21's blind spots.

Text in, text out, nothing parsed into music here: :mod:`.render` turns the result into a
score and MIDI, :mod:`.notagen` reads NotaGen's files and labels. Both import this module,
so neither imports the other.
"""

from __future__ import annotations

import re
from fractions import Fraction

from musicbrain_cli.errors import RenderError

_INLINE_V = re.compile(r"\[V:\s*([^\]\s]+)[^\]]*\]")
_R_MARK = re.compile(r"^\[r:[^\]]*\]")
_INLINE_METER_UNIT = re.compile(r"\[([ML]):([^\]]*)\]")


# --- NotaGen's interleaved ABC ---------------------------------------------------------------


def _field(lines: list[str], key: str, default: str) -> str:
    for ln in lines:
        if ln.startswith(key + ":"):
            default = ln[len(key) + 1:].strip()
    return default


def _bar_units(meter: str, unit: str) -> Fraction:
    """Length of a full bar in units of L:, for a rest that fills a missing voice's bar."""
    try:
        unit_f = Fraction(unit)
    except (ValueError, ZeroDivisionError):
        unit_f = Fraction(1, 8)
    meter = {"C": "4/4", "C|": "2/2"}.get(meter, meter)
    try:
        meter_f = Fraction(meter)
    except (ValueError, ZeroDivisionError):
        meter_f = Fraction(4, 4)
    return meter_f / unit_f


def _length(units: Fraction) -> str:
    if units.denominator == 1:
        return str(units.numerator)
    return f"{units.numerator}/{units.denominator}"


def deinterleave_abc(text: str) -> str:
    """Interleaved ABC (one line per bar, every voice inline ``[V:n]``) -> standard ABC.

    The header (everything before the first line holding ``[V:``) is kept; then each voice
    gets a ``V:n`` line followed by its bars, one per line, in the order the ``V:``
    definitions (else the first line) list them. A leading ``[r:i/n]`` bar counter is
    dropped. A voice missing from a line (NotaGen's "rest-reduced" raw output) gets an
    invisible rest ``x`` of one full bar under the current ``M:``/``L:`` (a change written
    inline in the line's bars, ``[M:3/4]``, included, and passed on to that voice); the
    bar's own barline is reused. Text without inline voices comes back unchanged.
    """
    lines = text.splitlines()
    first = next((i for i, ln in enumerate(lines) if _INLINE_V.search(ln)), None)
    if first is None:
        return text
    header, body = lines[:first], lines[first:]
    order = [m.group(1) for ln in header for m in [re.match(r"^V:\s*(\S+)", ln)] if m]
    bars: dict[str, list[str]] = {v: [] for v in order}
    meter, unit = _field(header, "M", "4/4"), _field(header, "L", "1/8")
    fills: list[str] = []   # what a voice left out of every line so far holds: its backfill
    for n_line, raw in enumerate(body):
        line = _R_MARK.sub("", raw.strip())
        if not line or line.startswith("%"):
            continue
        if re.match(r"^[A-Za-z]:", line):  # a field line between bars (M:, L:, K:, ...)
            if line.startswith("M:"):
                meter = line[2:].strip()
            elif line.startswith("L:"):
                unit = line[2:].strip()
            for v in bars:
                bars[v].append(line)
            fills.append(line)
            continue
        pieces = _INLINE_V.split(line)
        # pieces = [prefix, v1, text1, v2, text2, ...]; the prefix is a left barline
        prefix = pieces[0].strip()
        seen = {vid: bar.strip() for vid, bar in zip(pieces[1::2], pieces[2::2])}
        # a meter or unit change written in the bar (NotaGen writes '[M:3/4]' in each voice
        # present) holds for the voices left out of the line too: their rest is the new bar
        changes = next((f for f in map(_INLINE_METER_UNIT.findall, seen.values()) if f), [])
        for key, value in changes:
            meter, unit = (value.strip(), unit) if key == "M" else (meter, value.strip())
        barline = ""
        for bar in seen.values():
            m = re.search(r"(:*\|[\]|:]*|\|\]|::)\s*$", bar)
            if m:
                barline = m.group(1)
                break
        fill = ("".join(f"[{k}:{v.strip()}]" for k, v in changes)
                + f"x{_length(_bar_units(meter, unit))}{barline or '|'}")
        for vid in seen:
            if vid not in bars:
                # a voice first heard mid-piece rests (invisibly) through the bars before,
                # each as long as it was (field lines between bars are no bars)
                bars[vid] = list(fills)
                order.append(vid)
        for vid in bars:
            text_v = seen.get(vid, fill)
            if n_line == 0 and prefix:
                text_v = prefix + text_v
            bars[vid].append(text_v)
        fills.append(fill)
    out = list(header)
    for vid in order:
        out.append(f"V:{vid}")
        out.extend(bars[vid])
    return "\n".join(out) + "\n"


# --- ABC voices -----------------------------------------------------------------------------

_VOICE_FIELD = re.compile(r"^V:\s*(\S+)(.*)$")
_INLINE_VOICE = re.compile(r"\[V:\s*([^\]\s]+)[^\]]*\]")
_NAME_ATTR = re.compile(r'(?:nm|name)\s*=\s*"([^"]*)"')


def split_abc_voices(text: str) -> tuple[list[str], list[tuple[str, str, list[str]]]]:
    """Split standard multi-voice ABC into its header and one body per voice.

    Returns ``(header_lines, voices)`` where each voice is ``(voice_id, attributes,
    body_lines)``, in order of first appearance. ``V:`` definitions contribute their
    attributes (``nm="Violin"``) and are kept out of the header, because music21 turns
    each one into an extra, empty part. Header fields met before the first line of music
    stay in the header wherever they sit. A tune without ``V:`` fields is one voice.
    Inline ``[V:n]`` fields must have been de-interleaved first
    (:func:`deinterleave_abc`).
    """
    header: list[str] = []
    attrs: dict[str, str] = {}
    bodies: dict[str, list[str]] = {}  # insertion order = order of first appearance
    current: str | None = None
    music_started = False
    for raw in text.splitlines():
        line = raw.rstrip()
        m = _VOICE_FIELD.match(line)
        if m:
            current, rest = m.group(1), m.group(2).strip()
            bodies.setdefault(current, [])
            if rest:
                attrs[current] = (attrs.get(current, "") + " " + rest).strip()
            continue
        if not music_started and (_HEADER_FIELD.match(line) or line.startswith("%%")
                                  or not line.strip()):
            header.append(line)
            continue
        if line.startswith("%") and not line.startswith("%%"):
            continue  # comments carry nothing for the notes
        music_started = True
        if current is None:
            current = "1"
            bodies.setdefault(current, [])
        bodies[current].append(line)
    if not any(ln.startswith("K:") for ln in header):
        raise RenderError("ABC text has no K: (key) field in its header")
    # the K: field must close the header for music21; keep field order otherwise
    kline = [ln for ln in header if ln.startswith("K:")][-1]
    header = [ln for ln in header if not ln.startswith("K:")] + [kline]
    return header, [(v, attrs.get(v, ""), body) for v, body in bodies.items()]


_HEADER_FIELD = re.compile(r"^[A-Za-z]:")


_PROTECTED_OR_X = re.compile(r'("[^"]*"|![^!]*!|\+[^+\s]*\+|\[[A-Za-z]:[^\]]*\])|x')


def visible_rests(line: str) -> str:
    """Turn ABC invisible rests ``x`` into rests ``z`` on a line of music.

    music21 drops ``x`` together with its duration (measured with music21 10.5), which
    shifts every later note of the voice; NotaGen writes ``x`` for the secondary voices of
    a staff. Chord symbols and annotations ("..."), decorations (!...!, +...+) and inline
    fields ([K:Bmix]) are left alone. Field lines (``w:`` lyrics, ...) are returned as is.
    """
    if _HEADER_FIELD.match(line) or line.startswith("%"):
        return line
    return _PROTECTED_OR_X.sub(lambda m: m.group(1) or "z", line)


_QUOTED = re.compile(r'"[^"]*"')


def quoted_without_commas(line: str) -> str:
    """Replace commas inside quoted chord symbols and annotations (``"^Lento, etwas"``)
    with spaces.

    music21's ABC reader (10.5) fails on a whole voice when a quoted string holds a comma
    ("Cannot make a step out of '^'"); the text is never played, and RhythGen's Lieder
    output writes tempo words such as ``"^Lento, etwas lang"``.
    """
    if _HEADER_FIELD.match(line) or line.startswith("%"):
        return line
    return _QUOTED.sub(lambda m: m.group(0).replace(",", " "), line)
