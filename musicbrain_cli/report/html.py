"""Evidence report HTML from a per-track result dict (schema ``musicbrain.track/1``).

The track dict is turned into a *view model* of display strings here, in Python, so the
Jinja2 template stays free of logic and every sentence a judge reads is testable. Missing
optional parts of the track give a section that says "not available", never a crash.

Untrusted strings (tags, file names, paths, encoder names) are escaped by Jinja2's
autoescape, which is always on; control, bidirectional-override and other invisible
characters are additionally made visible as ``\\u{...}`` so that a file name such as
``song\\u202egpj.mp3`` cannot masquerade as another in the report.
"""

from __future__ import annotations

import base64
import math
import shlex
import unicodedata
import urllib.parse
from functools import lru_cache
from typing import Any, Iterable, Mapping, Sequence

from musicbrain_cli import __version__
from musicbrain_cli.audio.intake import unheard_audio
from musicbrain_cli.audio.metadata import split_cut
from musicbrain_cli.errors import ReportError
from musicbrain_cli.model.ood import labels_withheld
from musicbrain_cli.taxonomy import DETECTION_GROUP, GROUP_TITLES, display_label
from musicbrain_cli.text import apart, distinct_pair, or_list

TIMELINE_FIGURE = "timeline.png"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MAX_TAG_VALUES = 20  # per tag key; a hostile file may carry thousands
MAX_TAG_CHARS = 300  # per value; lyrics or base64 blobs are cut, with a note
MAX_TAG_KEYS = 60

VERDICT_HEADLINES = {
    "ai": "AI generation indicated by at least one evidence line",
    # Issue 22: a human verdict is worded as what it is, not as proof of human authorship.
    "human": "No evidence of AI generation found by these methods",
    "inconclusive": "Inconclusive: the methods abstain",
}
#: Display names of the evidence lines (result.json names them by key).
LINE_NAMES = {
    "content": "Content model (what the music sounds like)",
    "artifacts": "Decoder artifacts (spectral peaks left by neural decoders)",
    "symbolic": "Notes played (the notes basic-pitch hears)",
    "provenance": "Provenance (C2PA content credentials)",
}
#: The lines' names inside a sentence ("the decoder-artifact line")
SHORT_LINE_NAMES = {"content": "content-model", "artifacts": "decoder-artifact",
                    "symbolic": "notes", "provenance": "provenance"}
LINE_FINDINGS = {"ai": "AI generation", "human": "no evidence of AI",
                 "inconclusive": "inconclusive", "no_evidence": "no evidence either way"}

STANDARD_LIMITATIONS = (
    "The verdict is a statistical assessment by a machine-learning model, not proof. It "
    "should be weighed together with the other evidence in the case.",
    "The error rates above were measured on the evaluation data stated with them. On music "
    "unlike that data (other genres, recording chains, heavy processing, new generators) the "
    "actual error rates may be higher than stated.",
    "A saliency heatmap (FM-G-CAM) shows which time-frequency regions most influenced the "
    "model's output for each label. It does not show that a passage was generated, copied "
    "or edited, it does not identify a generator by itself, and it is only as reliable as "
    "the model it explains. The alignment checks state how far the heatmap follows the "
    "notes and onsets found in the audio, compared with chance; a heatmap that does not "
    "follow them shows where the model looked, not musical features it recognised.",
    "Tags, encoder names and other metadata can be changed by anyone with common software. "
    "They are reported as weak evidence only and were not used by the model.",
)

#: In place of the second standard limitation where the result holds no content-model rates.
NO_ERROR_RATES = ("No measured error rates of the content model were supplied with this "
                  "result: how often it calls human music AI-generated, or misses AI music, "
                  "is unknown. Another line's rates, where section 1 quotes them, were measured "
                  "on the data stated with them and may be higher on music unlike it.")


# --- small formatting helpers -------------------------------------------------------------


#: Characters that draw nothing or look like a plain space without being a control or format
#: character: Unicode's Default_Ignorable_Code_Point outside Cf/Cn (the combining grapheme
#: joiner, the Hangul fillers, the Khmer inherent vowels, the Mongolian free variation
#: selectors, the variation selectors; DerivedCoreProperties.txt) and the blank braille
#: pattern U+2800.
BLANK_LOOKING = frozenset({0x034F, 0x115F, 0x1160, 0x17B4, 0x17B5, *range(0x180B, 0x1810),
                           0x2800, 0x3164, 0xFFA0, *range(0xFE00, 0xFE10),
                           *range(0xE0100, 0xE01F0)})


def visible(value: Any) -> str:
    """``str(value)`` with control, invisible and blank-looking characters spelled out as
    ``\\u{hex}``, line breaks and tabs included (HTML would show one as a space:
    ``new\nline.wav`` would read as the name of another file, ``new line.wav``), as is every
    space but U+0020 (U+2003 looks like two) and :data:`BLANK_LOOKING`. A backslash is spelled
    out too (``\\u{005c}``), so the spelling cannot be typed: two different strings never
    show the same (review: ``'a\\u{202e}b'`` showed as ``'a\u202eb'`` does)."""
    text = str(value)
    out = []
    for ch in text:
        category = unicodedata.category(ch)
        if ch == "\\" or ord(ch) in BLANK_LOOKING or (category == "Zs" and ch != " ") or \
                category in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
            out.append(f"\\u{{{ord(ch):04x}}}")
        else:
            out.append(ch)
    return "".join(out)


def visible_name(value: Any) -> str:
    """A file name or path as :func:`visible` shows it, and where two names would still look
    alike, the difference spelled out too: a space that HTML would fold (leading, trailing,
    or after another space) and, in a name not in Unicode's composed form (NFC), its
    combining marks (``cafe`` + U+0301 is another file than the composed ``café`` and draws
    the same glyphs). Review of session 45: two recordings' catalog rows read alike."""
    text = str(value)
    marks = not unicodedata.is_normalized("NFC", text)
    out = []
    for i, ch in enumerate(text):
        fold = ch == " " and (i == 0 or i == len(text) - 1 or text[i - 1] == " ")
        if fold or (marks and unicodedata.category(ch) in ("Mn", "Me")):
            out.append(f"\\u{{{ord(ch):04x}}}")
        else:
            out.append(visible(ch))
    return "".join(out)


#: Characters that read as the quote :func:`quoted` puts around a value (ASCII and
#: typographic apostrophes, primes, accents, the modifier letters that look like them).
QUOTE_LIKE = frozenset("'\u2018\u2019\u201a\u201b\u2032\u2035\u0060\u00b4\u02bc\u02b9\uff07")


def quoted(value: Any) -> str:
    """``'value'`` for text from a file set inside a sentence: :func:`visible`, with every
    character that reads as the quote spelled out too, so the value can neither close its
    quote and go on in the report's own voice nor look as if it had (review of session 45: a
    C2PA claim generator of ``x'. The signer chains to a configured trust anchor ...`` did)."""
    return "'" + "".join(f"\\u{{{ord(ch):04x}}}" if ch in QUOTE_LIKE else ch
                         for ch in visible(value)) + "'"


def _num(x: Any) -> float | None:
    try:
        value = float(x)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def pct(x: Any, digits: int = 1) -> str:
    value = _num(x)
    return "n/a" if value is None else f"{100.0 * value:.{digits}f}%"


def interval(bounds: Any, *, lead: str = ", ") -> str:
    """``lead`` + "95% confidence interval a% to b%" for a ``[low, high]`` pair, or ``""``
    when ``bounds`` is not one; ``lead="("`` closes the parenthesis."""
    if not (isinstance(bounds, (list, tuple)) and len(bounds) == 2):
        return ""
    text = f"95% confidence interval {pct(bounds[0])} to {pct(bounds[1])}"
    return f" ({text})" if lead == "(" else f"{lead}{text}"


def prob(x: Any) -> str:
    value = _num(x)
    return "n/a" if value is None else f"{value:.3f}"


def prob_beside(x: Any, *edges: Any) -> str:
    """:func:`prob`, with as many more decimals (up to 6) as it takes for ``x`` to read
    differently from each of ``edges`` (the thresholds printed beside it) that it differs
    from, and for a probability below 1 never to read as 1. A P(AI) of 0.5996, inconclusive,
    read "0.600" beside "AI at or above 0.600" (the rule's own reasons already print 0.5996:
    :func:`musicbrain_cli.verdict.figures`)."""
    value = _num(x)
    if value is None:
        return "n/a"
    # an edge that is the value up to float rounding (0.7 + 0.2 is 0.8999999999999999) is
    # the value: it does not call for six decimals
    marks = [e for e in map(_num, edges) if e is not None]
    return apart(value, *marks, least=3, most=6, same=1e-9)[0]


def _band(verdict: Any) -> tuple[Any, ...]:
    """The content rule's edges recorded in ``verdict`` (its band's ends and its threshold),
    for :func:`prob_beside`."""
    if not isinstance(verdict, Mapping):
        return ()
    band = verdict.get("band")
    ends = tuple(band) if isinstance(band, (list, tuple)) and len(band) == 2 else ()
    return (*ends, verdict.get("threshold"))


def _line_edges(track: Mapping, line: Mapping) -> tuple[Any, ...]:
    """The thresholds a line's P(AI) is read against in the report: the content rule's band
    and threshold for the content line; another line's operating point and doubt threshold."""
    if line.get("line") == "content":
        return _band(track.get("verdict"))
    details = line.get("details") if isinstance(line.get("details"), Mapping) else {}
    found = details.get(str(line.get("line")))
    doubt = found.get("doubt_threshold") if isinstance(found, Mapping) else None
    return (line.get("threshold"), doubt)


def seconds(x: Any) -> str:
    value = _num(x)
    if value is None:
        return "n/a"
    # rounded before it is split: 119.996 s read "120.00 s (1:60.00)" (review of session 46)
    minutes, sec = divmod(round(value, 2), 60.0)
    return f"{value:.2f} s ({int(minutes)}:{sec:05.2f})"


def _rows(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Flatten nested dicts/lists into (dotted key, display string) rows."""
    if isinstance(value, Mapping):
        rows: list[tuple[str, str]] = []
        for key in sorted(value, key=str):
            rows.extend(_rows(value[key], f"{prefix}.{key}" if prefix else str(key)))
        return rows
    if isinstance(value, (list, tuple)):
        if all(not isinstance(v, (Mapping, list, tuple)) for v in value):
            return [(visible(prefix), visible(", ".join(str(v) for v in value)))]
        rows = []
        for i, v in enumerate(value):
            rows.extend(_rows(v, f"{prefix}[{i}]"))
        return rows
    return [(visible(prefix), "n/a" if value is None else visible(value))]


def data_uri(png: bytes) -> str:
    if not png.startswith(PNG_MAGIC):
        raise ReportError(f"figure is not a PNG (starts with {png[:8]!r})")
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


# --- sentences ----------------------------------------------------------------------------


def harmonic_sentence(harmonic: Mapping | None, reference: Mapping | None = None) -> str | None:
    """Plain-words statement of how much saliency lies on the partials of played notes, and
    (``reference``, the same check on the spectrogram's own energy) how much the sound alone
    puts there."""
    if not harmonic or _num(harmonic.get("share")) is None:
        return None
    share, chance = _num(harmonic.get("share")), _num(harmonic.get("chance"))
    # Issue 24: "26% where chance would put 25% (1.1 times chance)" read as wrong arithmetic.
    # Below twice chance both shares get a decimal and the ratio two, so the figures agree.
    close = chance is not None and chance > 0 and share < 2 * chance
    digits = 1 if close else 0
    # The share is of the saliency in the frames where a note sounds (alignment.overlap.
    # HarmonicOverlap): a map whose mass lies mostly where no note sounds would otherwise
    # read "100% of the saliency lies on the partials" with 5% of it there.
    text = (f"In the frames where notes sound, {pct(share, digits)} of the saliency lies on "
            "the partials of the notes played")
    own = _num((reference or {}).get("share"))
    energy = (f" The sound's own energy, as a map, puts {pct(own, digits)} there."
              if own is not None else "")
    if chance is None:
        return text + "." + energy
    text += f", where chance would put {pct(chance, digits)}"
    if chance > 0 and share > chance:
        ratio = lift_text(share / chance) if close else f"{share / chance:.1f}"
        return text + f" ({ratio} times chance)." + energy
    return text + ": no more than chance, so this heatmap is not tied to the notes." + energy


def onset_sentence(onset: Mapping | None, reference: Mapping | None = None) -> str | None:
    """Plain-words statement of how saliency lines up with the onsets detected in the audio
    (not the transcribed notes' starts), and (``reference``)
    how often the spectrogram's own energy peaks there."""
    if not onset:
        return None
    parts = []
    # alignment.OnsetOverlap.concentration: mean saliency within +/-50 ms of onsets over
    # the mean saliency of the whole window.
    ratio = _num(onset.get("concentration"))
    if ratio is not None:
        # onsets detected in the audio (alignment.overlap.detect_onsets: spectral flux), not
        # the starts of the transcribed notes: "note onsets" claimed a link to the notes the
        # check does not make (a window with 1 transcribed note reported 27 "note onsets")
        parts.append(f"Saliency within 50 ms of the onsets detected in the audio is "
                     f"{ratio:.{2 if ratio < 2 else 1}f} "
                     "times its average "
                     "level (1.0 would mean no preference for onsets)")
    hit, chance = _num(onset.get("hit_rate")), _num(onset.get("chance_hit_rate"))
    if hit is not None:
        clause = f"{pct(hit, 0)} of the detected onsets{_of(onset)} fall on a saliency peak"
        if chance is not None:
            clause += f", where chance would give {pct(chance, 0)}"
        own = _num((reference or {}).get("hit_rate"))
        if own is not None:
            clause += f" and the sound's own energy {pct(own, 0)}"
        parts.append(clause)
    return "; ".join(parts) + "." if parts else None


def _of(onset: Mapping) -> str:
    """' (3 of 5)': the onsets behind a hit rate, where the result records them (a rate of
    100% on one onset is not the rate it reads as)."""
    hits, n = onset.get("hits"), onset.get("onsets")
    if isinstance(hits, int) and isinstance(n, int) and n > 0:
        return f" ({hits} of {n})"
    return ""


def chance_tail(hits: int, n: int, p: float) -> float:
    """How often chance alone puts at least ``hits`` of ``n`` onsets on a saliency peak, each
    with probability ``p``: the upper tail of Binomial(n, p)."""
    from scipy.stats import binom

    return 1.0 if hits <= 0 else float(binom.sf(hits - 1, n, min(max(p, 0.0), 1.0)))


#: A lift on onsets is called a link only where chance alone reaches as many hits at most
#: this often (one-sided binomial test): one onset on a peak, where chance gives one in
#: five, is no link however large its lift reads (review).
CHANCE_TAIL = 0.05


#: What the report calls a clear link between the heatmap and the music: saliency on the
#: notes' partials, or saliency peaks on onsets, at least 1.5 times as often as chance (the
#: target issue 26 sets for the explanations). Between chance and this the report says
#: "slightly", never "follows"; nor does it say "follows" when the sound's own energy
#: (``alignment.energy_reference``) does as well, since the map is weighted by the input.
CLEAR_LIFT = 1.5

#: The fewest notes behind a "follows the partials" claim. The share on the partials pools
#: cells and frames, but what it can tie to the music is the notes: on one or two notes a map
#: that merely favours some frequencies over the whole window lands on their partials as well
#: (one note of 0.14 s read "follows the partials (2.5 times chance)" for a map uniform over
#: the lowest 40 mel rows; review). Five is the fewest on which even a one-sided sign test
#: over notes, every note above chance, can reach the 5 % of the onsets' test (0.5 ** 5).
MIN_HARMONIC_NOTES = 5


def lift_text(lift: float) -> str:
    """A lift with two decimals, as the measured sentence and the conclusion both write it
    (the sentence rounded, the conclusion cut: a lift of 1.377 read "1.38 times chance" and
    then "1.37 times" in the next sentence). Rounded, except that a lift below
    :data:`CLEAR_LIFT` is cut rather than rounded up to it (1.4996 reads 1.49, never "1.50"
    beside "too little to call a link"; session 28 audit)."""
    text = f"{lift:.2f}"
    if lift < CLEAR_LIFT <= float(text):
        text = f"{math.floor(lift * 100) / 100:.2f}"
    return text


def _lift(measured: Any, chance: Any) -> float | None:
    m, c = _num(measured), _num(chance)
    return m / c if m is not None and c is not None and c > 0 else None


def _harmonic_unchecked(harmonic: Mapping) -> str:
    """Why the harmonic check gave no lift. An all-zero heatmap (every label's evidence
    negative: ReLU leaves nothing, and min-max keeps it all zero) has no share on the
    partials however many notes sound: that is not "no sounding notes"."""
    if not harmonic:
        return "the check did not run"
    if _num(harmonic.get("chance")) is None:
        return "no sounding notes were found"
    if _num(harmonic.get("mass")) == 0:
        return "the heatmap holds no saliency where the notes sound"
    if _num(harmonic.get("chance")) == 0:
        return "no partial of the sounding notes lies in the spectrogram's frequency range"
    return "no sounding notes were found"


def _onset_unchecked(onset: Mapping) -> str:
    """Why the onset check gave no lift: no onsets, or a heatmap with no peak to put on one
    (all zero, or flat over time), whose chance is 0."""
    if not onset:
        return "the check did not run"
    if _num(onset.get("hit_rate")) is None or onset.get("onsets") == 0:
        return "no onsets were found"
    if _num(onset.get("mass")) == 0:
        return "the heatmap holds no saliency"
    if _num(onset.get("chance_hit_rate")) == 0:
        return "the heatmap has no saliency peak (it is flat over time)"
    return "no onsets were found"


def explained_notes(track: Mapping) -> int | None:
    """The notes the pooled alignment checks rest on: the sum over the explained windows of
    the notes transcribed in each (``note_estimator.notes``); ``None`` where a window does
    not record it."""
    counts = [((exp or {}).get("note_estimator") or {}).get("notes")
              for exp in track.get("explanations") or ()]
    if not counts or not all(isinstance(n, int) and not isinstance(n, bool) for n in counts):
        return None
    return sum(counts)


def alignment_finding(alignment: Mapping | None, notes: int | None = None) -> str | None:
    """One plain-words conclusion of the alignment checks: what they found, including when
    they found nothing or could not run, and never a link that was not measured. ``None``
    when no check was attempted (no heatmap was made). ``notes``: how many notes the
    harmonic check rests on (:func:`explained_notes`); with fewer than
    :data:`MIN_HARMONIC_NOTES` it calls no link to the partials."""
    if not alignment or not (alignment.get("harmonic") or alignment.get("onset")):
        return None
    harmonic, onset = alignment.get("harmonic") or {}, alignment.get("onset") or {}
    ref = alignment.get("energy_reference") or {}
    ref_h, ref_o = ref.get("harmonic") or {}, ref.get("onset") or {}
    checks = [("the partials of the notes", _lift(harmonic.get("share"), harmonic.get("chance")),
               _lift(ref_h.get("share"), ref_h.get("chance")), _harmonic_unchecked(harmonic)),
              ("the onsets", _lift(onset.get("hit_rate"), onset.get("chance_hit_rate")),
               _lift(ref_o.get("hit_rate"), ref_o.get("chance_hit_rate")),
               _onset_unchecked(onset))]
    clauses, clear = [], False
    hits, n = onset.get("hits"), onset.get("onsets")
    tail = (chance_tail(hits, n, _num(onset.get("chance_hit_rate")))
            if isinstance(hits, int) and isinstance(n, int) and 0 <= hits <= n
            and _num(onset.get("chance_hit_rate")) is not None else None)
    for what, lift, own, why_not in checks:
        if lift is None:
            clauses.append(f"whether it follows {what} could not be checked ({why_not})")
        elif what == "the onsets" and lift >= CLEAR_LIFT and tail is not None \
                and tail > CHANCE_TAIL:
            clauses.append(f"whether it follows {what} cannot be told from so few: {hits} of "
                           f"{n} onset{'s' if n != 1 else ''} fell on a saliency peak, as many "
                           f"as chance alone gives {pct(tail, 0)} of the time")
        elif what == "the partials of the notes" and lift >= CLEAR_LIFT and notes is not None \
                and notes < MIN_HARMONIC_NOTES:
            clauses.append(f"whether it follows {what} cannot be told from so few: the share on "
                           f"the partials rests on {notes} note{'s' if notes != 1 else ''}, "
                           "whose partials a heatmap that merely favours some frequencies "
                           "reaches as well")
        elif lift >= CLEAR_LIFT and own is not None and lift <= own:
            # the sound alone does as well: the lift shows the input, not the model's evidence
            mine, its = distinct_pair(lift, own, decimals=1)
            clauses.append(f"it lands on {what} {mine} times as often as chance, but the "
                           f"sound's own energy does so too ({its} times), so this does not "
                           f"show the model's evidence in {what}")
        elif lift >= CLEAR_LIFT:
            clear = True
            mine, its = distinct_pair(lift, own if own is not None else lift, decimals=1)
            beyond = f", more than the sound's own energy ({its} times)" if own is not None else ""
            clauses.append(f"the heatmap follows {what} ({mine} times chance{beyond})")
        elif lift > 1.0:
            # as the measured sentence writes it, and never rounded up to the 1.5 of a link
            # (lift_text)
            clauses.append(f"it lands on {what} only slightly more often than chance "
                           f"({lift_text(lift)} times), too little to call a link")
        else:
            clauses.append(f"it does not follow {what} (no more than chance)")
    text = "In short: " + "; ".join(clauses) + "."
    if not clear:
        text += (" Nothing measured here ties the heatmap to the music played: read it as where "
                 "the model looked, not as notes or rhythms it recognised.")
    source = str(alignment.get("notes_source") or "")
    if "estimate" in source:
        text += (" The notes and onsets were estimated from the audio (no score was "
                 "available), so errors of that estimate weaken these checks.")
    return text


def alignment_heading(alignment: Mapping | None) -> str:
    """The heading over the pooled alignment sentences: what they were measured on. The
    checks read the explained windows only (``--explain-windows``, 3 by default), never the
    whole recording, so the heading says how many."""
    n = (alignment or {}).get("windows")
    if isinstance(n, int) and not isinstance(n, bool) and n > 0:
        return ("Over the one explained window" if n == 1
                else f"Over the {n} explained windows together")
    return "Over the explained windows together"


def alignment_sentences(alignment: Mapping | None, notes: int | None = None) -> list[str]:
    """The measured figures, then the plain-words conclusion (:func:`alignment_finding`,
    ``notes`` as there)."""
    alignment = alignment or {}
    ref = alignment.get("energy_reference") or {}
    return [s for s in (harmonic_sentence(alignment.get("harmonic"), ref.get("harmonic")),
                        onset_sentence(alignment.get("onset"), ref.get("onset")),
                        alignment_finding(alignment, notes)) if s]


def error_rate_sentences(rates: Mapping | None, threshold: Any) -> list[str]:
    """The model's known error rates at the threshold used, with 95% intervals."""
    if not rates:
        return []

    def ci(key: str) -> str:
        return interval(rates.get(key), lead="(")

    split = f" of the '{visible(rates['split'])}' split" if rates.get("split") else ""
    unit = "clips" if rates.get("unit") == "clip" else "recordings"
    out = []
    # the card's rates come from the whole decision rule (band, window disagreement, domain
    # checks) at this threshold, not from the threshold alone (session 28 audit)
    where = (f"under the full decision rule with threshold {prob(threshold)} (abstentions "
             "included)" if "full" in str(rates.get("rule", "")) else
             f"at the threshold used ({prob(threshold)})")
    if "fpr" in rates:
        out.append(f"False positives: {where}, the model "
                   f"labelled {pct(rates['fpr'])}{ci('fpr_ci95')} of the "
                   f"{rates.get('n_human', 'n/a')} human-made {unit}{split} as AI-generated.")
        if rates.get("chosen_on_these_clips") is True:
            # a card finalized without a held-out split (review, session 46)
            out.append(f"The operating point was chosen on these same {unit}, so this rate "
                       "meets its target by construction: it is not an independent "
                       "measurement of how often human music is called AI-generated.")
    out += after_shipping_sentences(rates)
    if "fnr" in rates:
        out.append(f"False negatives: it missed {pct(rates['fnr'])}{ci('fnr_ci95')} of the "
                   f"{rates.get('n_ai', 'n/a')} AI-generated {unit}{split}.")
    works = _works_sentence(rates)
    if works:
        out.append(works)
    elif unit == "clips" and ("fpr" in rates or "fnr" in rates):
        out.append("These intervals treat each clip as an independent trial; the clips come "
                   "from fewer works, and clips of one work tend to be judged alike, so the "
                   "true uncertainty is wider than stated.")
    by_generator = rates.get("by_generator")
    if isinstance(by_generator, Mapping):
        for name in sorted(by_generator, key=str)[:12]:
            g = by_generator[name] if isinstance(by_generator[name], Mapping) else {}
            out.append(f"Generator family '{visible(name)}': {pct(g.get('fnr'))}"
                       f"{interval(g.get('fnr_ci95'), lead='(')} of "
                       f"its {g.get('n_ai', 'n/a')} recordings missed.")
    return out


def _works_sentence(rates: Mapping) -> str | None:
    """The false accusations counted by work (the card's ``by_work``), for a card that has
    them: clips of one work are not independent trials, so this is the interval to hold the
    model to."""
    by_work = rates.get("by_work")
    if not isinstance(by_work, Mapping) or not _num(by_work.get("n_human_works")):
        return None
    return ("Counted by work, since clips of one work are not independent trials: "
            f"{by_work.get('human_works_with_a_clip_called_ai')} of the "
            f"{by_work.get('n_human_works')} human works had a clip called AI-generated "
            f"({pct(by_work.get('fpr_works'))}{interval(by_work.get('fpr_works_ci95'))}); "
            "the clip intervals above are narrower "
            "than the true uncertainty.")


def after_shipping_sentences(rates: Mapping) -> list[str]:
    """False accusations the content model was measured to make after it shipped, on human
    music unlike its test split (its card's ``false_accusations_after_shipping``): the worst
    measured case, quoted wherever its test-split rate is."""
    out = []
    for r in list(rates.get("false_accusations_after_shipping") or ())[:4]:
        if not isinstance(r, Mapping) or not _num(r.get("n")):
            continue
        note = f"; {visible(r['note'])}" if r.get("note") else ""
        out.append(f"Measured after the model shipped, on {visible(r.get('set', 'other human music'))}: "
                   f"it called {r.get('k')} of {r.get('n')} {visible(r.get('unit', 'clips'))} "
                   f"({pct(r.get('rate'))}{interval(r.get('ci95'))}{note}) AI-generated"
                   + (" within its domain" if r.get("within_domain") else "") + ".")
    return out


def measured_on_sentence(generators: Any) -> str:
    """Issue 22: the miss rate holds for the families it was measured on, and no others."""
    names = [visible(str(g)) for g in generators or ()][:12]
    if not names:
        return ("The generator families behind these rates are not recorded; the miss rate for "
                "any particular generator is unknown.")
    return ("These miss rates were measured on AI music from the generator families "
            + ", ".join(f"'{n}'" for n in names) + " of the model's evaluation corpus. For any "
            "other generator, including commercial text-to-music systems, the content model's "
            "miss rate is unknown.")


# --- what was examined, how strong the finding is (issue 24: page 1 for a judge) ----------

#: Gaps shorter than this (seconds) are rounding, not unanalysed audio.
COVERAGE_EPS_S = 0.005


def _sec(x: float) -> str:
    """Seconds for prose: ``10``, ``12.03`` (no trailing zeros)."""
    return f"{x:.2f}".rstrip("0").rstrip(".") if x == x else "n/a"


def span_text(a: float, b: float) -> str:
    return f"{_sec(a)}–{_sec(b)} s"


def coverage(window_start_s: Sequence[float], window_s: float, duration_s: float,
             window_end_s: Sequence[float] | None = None
             ) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """Which seconds of a recording the analysis windows read, and which they did not.

    Parameters
    ----------
    window_start_s : start of each analysis window, seconds
    window_s : window length, seconds (a window past the end reads only up to the end;
        the rest of it repeats the recording, not new audio)
    duration_s : decoded duration of the recording, seconds
    window_end_s : where each window's new audio ends, when not ``start + window_s`` (a
        passage shorter than a window, repeated to fill it)

    Returns ``(analysed, not_analysed)``: sorted, merged ``(start, end)`` intervals in
    seconds that together tile ``[0, duration_s]``.
    """
    duration = float(duration_s)
    ends = ([float(s) + float(window_s) for s in window_start_s] if window_end_s is None
            else [float(e) for e in window_end_s])
    spans = sorted((max(0.0, float(s)), min(duration, e)) for s, e in zip(window_start_s, ends))
    analysed: list[list[float]] = []
    for a, b in spans:
        if b - a <= 0:
            continue
        if analysed and a <= analysed[-1][1] + COVERAGE_EPS_S:
            analysed[-1][1] = max(analysed[-1][1], b)
        else:
            analysed.append([a, b])
    gaps, cursor = [], 0.0
    for a, b in analysed:
        if a - cursor > COVERAGE_EPS_S:
            gaps.append((cursor, a))
        cursor = b
    if duration - cursor > COVERAGE_EPS_S:
        gaps.append((cursor, duration))
    return [(a, b) for a, b in analysed], gaps


def split_by_sound(gaps: Sequence[tuple[float, float]], sound_s: Sequence[Sequence[float]]
                   ) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """``(silence, sound)``: the parts of ``gaps`` outside every passage of sound (silence the
    windows were not laid over) and inside one (music not analysed)."""
    silence, sound = [], []
    passages = sorted((float(a), float(b)) for a, b in sound_s)
    for a, b in gaps:
        cursor = a
        for pa, pb in passages:
            lo, hi = max(a, pa), min(b, pb)
            if hi - lo <= COVERAGE_EPS_S:
                continue
            if lo - cursor > COVERAGE_EPS_S:
                silence.append((cursor, lo))
            sound.append((lo, hi))
            cursor = hi
        if b - cursor > COVERAGE_EPS_S:
            silence.append((cursor, b))
    return silence, sound


def _minus(spans: Sequence[tuple[float, float]], cut: Sequence[tuple[float, float]]
           ) -> list[tuple[float, float]]:
    """The parts of ``spans`` outside every interval of ``cut``."""
    return split_by_sound(spans, cut)[0]


def window_ends(timeline: Mapping) -> list[float]:
    """Where each analysis window's new audio ends, seconds: ``start + window_s``, or for a
    window that repeats a passage shorter than itself (``timeline.padded``) where the
    passage's sound ends (``timeline.sound_s``). Past the recording's end the caller cuts it
    at the duration."""
    starts, width = timeline.get("window_start_s") or (), _num(timeline.get("window_s"))
    ends = [float(s) + width for s in starts]
    sound_s = timeline.get("sound_s")
    if sound_s:
        # a repeated passage's window reads up to where the passage's sound ends
        padded = timeline.get("padded") or [False] * len(starts)
        ends = [next((float(b) for a, b in sound_s if abs(float(a) - float(s)) <= COVERAGE_EPS_S),
                     float(s) + width) if p else float(s) + width for s, p in zip(starts, padded)]
    return ends


def track_coverage(track: Mapping) -> dict | None:
    """A track's coverage from its record: ``analysed`` (read by a judged window),
    ``unjudged`` (read only by windows not judged for silence, ``timeline.quiet``),
    ``silence`` (outside every passage of sound, not read) and ``unread`` (music not
    analysed) as ``(start, end)`` seconds, with ``windows`` (the judged ones), ``width`` and
    ``duration``; ``None`` when the record cannot say."""
    timeline = track.get("timeline") or {}
    inp = track.get("input") or {}
    starts, width = timeline.get("window_start_s"), _num(timeline.get("window_s"))
    duration = _num(inp.get("decoded_duration_s", inp.get("duration_s")))
    if not starts or width is None or duration is None or duration <= 0:
        return None
    sound_s = timeline.get("sound_s")
    ends = window_ends(timeline)
    read, gaps = coverage(starts, width, duration, ends)
    # a window not judged for silence (intake.quiet_window) reads its seconds but no
    # probability, verdict or explanation comes of them: music that only such windows hold
    # (a short passage between two silences, the end of a passage before a silence) is not
    # analysed, and the record says so rather than "the whole recording" (review of session
    # 46: a 3-s passage between two 9-s silences)
    quiet = timeline.get("quiet")
    analysed, unjudged, n = read, [], len(starts)
    if isinstance(quiet, list) and len(quiet) == len(starts) and any(q is True for q in quiet):
        keep = [i for i, q in enumerate(quiet) if q is not True]
        analysed = coverage([starts[i] for i in keep], width, duration,
                            [ends[i] for i in keep])[0]
        unjudged, n = _minus(read, analysed), len(keep)
    # an empty list is a record of no sound at all (a silent track: one window, the rest
    # silence); a record without the key predates the windows over the music (0.3.6)
    silence, unread = split_by_sound(gaps, sound_s) if sound_s is not None else ([], gaps)
    return {"analysed": analysed, "unjudged": unjudged, "silence": silence, "unread": unread,
            "windows": n, "width": width, "duration": duration}


def coverage_sentence(track: Mapping) -> str | None:
    """'0–10 s analysed; 10–12 s not analysed (...)' for a track, or None when unknown."""
    cov = track_coverage(track)
    if cov is None:
        return None
    analysed, unjudged, silence, unread, n, width, duration = (cov[k] for k in (
        "analysed", "unjudged", "silence", "unread", "windows", "width", "duration"))
    text = (", ".join(span_text(a, b) for a, b in analysed) + " analysed"
            + (f" ({n} window{'s' if n != 1 else ''} of {_sec(width)} s)" if n else "")
            if analysed else "nothing analysed")
    if unjudged:
        text += ("; " + ", ".join(span_text(a, b) for a, b in unjudged) + " not analysed: "
                 "these seconds lie only in windows not judged for silence (near-silent "
                 "throughout, or silent over a quarter of the window where the music begins "
                 "or ends)")
    if unread:
        text += "; " + ", ".join(span_text(a, b) for a, b in unread) + " not analysed"
        if (track.get("timeline") or {}).get("sound_s"):
            text += (f": the model reads whole {_sec(width)} s windows, and music left after a "
                     f"passage's last window (under {_sec(width / 4)} s), or a passage under "
                     f"{_sec(width * 3 / 4)} s beside longer music, is not read")
        elif unread[-1][1] >= duration - COVERAGE_EPS_S:      # a record before 0.3.6
            text += (f": the model reads whole {_sec(width)} s windows, and the audio after "
                     f"the last one was too short for another")
    if silence:
        text += ("; " + ", ".join(span_text(a, b) for a, b in silence)
                 + " silence (no sample above -60 dBFS), not read")
    # the seconds above are those of the decoded audio: a stream that decoded only in part
    # was not read whole, whatever they cover (review: 97 % decoded read "the whole
    # recording" beside "Only 97.0% of the stream decoded; the rest was not analysed")
    share = _num((track.get("input") or {}).get("share_decoded"))
    lost = (f"; only {_decoded_share(share)} of the stream decoded, the rest was not analysed"
            if share is not None and share < 1.0 else "")
    if unread or silence or unjudged:
        return text + lost + "."
    whole = "all of the audio that decoded" if lost else "the whole recording"
    if duration < width:
        text += f": {whole}, repeated to fill one {_sec(width)} s window"
    else:
        text += f": {whole}"
    return text + lost + "."


def _decoded_share(share: float) -> str:
    """'97.0 %': a share of the stream decoded, rounded down, as the limitation that states
    it (scan.batch._limitations): 99.96 % printed "100.0 %" beside "Only 99.9% of the stream
    decoded" (review of session 46)."""
    return "100 %" if share >= 1.0 else f"{min(99.9, math.floor(share * 1000 + 1e-9) / 10):.1f} %"


def decoded_share_text(inp: Mapping) -> str:
    """Decoding completeness for the integrity table, from the intake's own figure."""
    share = _num(inp.get("share_decoded"))
    bad = inp.get("undecodable_packets")
    if share is None:
        return "n/a"
    return _decoded_share(share) + (f" ({bad} undecodable packets)" if isinstance(bad, int) else "")


def one_in(rate: Any) -> str | None:
    """'about 1 in 7' for 0.145; None for 0 or unknown (a zero rate is not '1 in infinity')."""
    value = _num(rate)
    if value is None or value <= 0:
        return None
    return f"about 1 in {max(1, round(1.0 / value))}"


def _evidence_entry(track: Mapping, line: str) -> Mapping:
    for entry in track.get("evidence") or ():
        if isinstance(entry, Mapping) and entry.get("line") == line:
            return entry
    return {}


def _held_out_false_accusations(rates: Mapping) -> list[str]:
    """A line's measured false accusations on human recordings, one phrase per held-out set
    (``false_accusations_human_<set>`` in its card), each named by the set it was measured
    on: 'new-uploads 2 of 1364 (0.1%, ...)'."""
    prefix = "false_accusations_human"
    out = []
    for k in sorted(rates, key=str):
        phrase = _rate_phrase(rates.get(k)) if str(k).startswith(prefix) else None
        if phrase:
            name = visible(str(k)[len(prefix):].strip("_").replace("_", "-") or "all")
            later = (" (measured after the line shipped)"
                     if rates[k].get("measured_after_shipping") else "")
            out.append(f"{name}{later} {phrase}")
    return out


def _accusing_line_sentence(track: Mapping, line: str) -> str:
    """What a line other than the content model that found AI measured against human
    recordings, in one sentence (its full figures are in section 1)."""
    name = SHORT_LINE_NAMES.get(line, visible(line))
    details = _evidence_entry(track, line).get("details")
    found = details.get(line) if isinstance(details, Mapping) else None
    rates = (found.get("error_rates") if isinstance(found, Mapping)
             and isinstance(found.get("error_rates"), Mapping) else {})
    held = _held_out_false_accusations(rates)
    if held:
        return (f"The verdict rests on the {name} line, not on the content model: in testing it "
                f"called AI-generated, per held-out set of human recordings it was never fitted "
                f"on, " + "; ".join(held) + ".")
    if line == "provenance":
        return ("The verdict rests on the provenance line: a C2PA manifest from a signer this "
                "installation trusts declares AI generation; it weighs what that signer's word "
                "weighs.")
    return (f"The verdict rests on the {name} line, not on the content model; its measured "
            "error rates are given with its finding in section 1.")


def real_ai_sentence(measured: Any) -> str | None:
    """What the combined verdict did on public music of real AI generators, measured with
    this version and these very models (``verdict.measured_on_real_ai``, see
    :func:`musicbrain_cli.verdict.real_ai_measurement`), in one sentence for a ``human``
    verdict: how much AI music it called human. ``None`` for a result made before the record
    existed; a record that does not apply says that the rate is unknown."""
    if not isinstance(measured, Mapping):
        return None
    if not measured.get("applies"):
        return ("How this version's verdict does on music of real AI generators was not "
                f"measured with these models ({visible(measured.get('why', 'no measurement'))}).")
    parts = []
    for entry in list(measured.get("sets") or ())[:6]:
        if not isinstance(entry, Mapping) or not _num(entry.get("tracks")):
            continue
        parts.append(f"{entry.get('human')} of {entry.get('tracks')} "
                     f"{visible(entry.get('set', 'AI tracks'))} human"
                     + (" and none AI" if entry.get("ai") == 0 else f" and {entry.get('ai')} AI"))
    if not parts:
        return None
    return ("Measured with these same models on public music of real AI generators "
            f"({visible(measured.get('doc', 'the external benchmark'))}, "
            f"{visible(measured.get('measured', 'date not recorded'))}), the verdict called "
            + "; ".join(parts) + ": a human verdict does not rule out such generators.")


def strength_sentence(verdict: Mapping, track: Mapping | None = None) -> str | None:
    """The verdict's strength in words that match the measured error rates (issue 24): an
    ``ai`` verdict quotes the rates of the line(s) that found AI, not always the content
    model's."""
    rates = verdict.get("error_rates") if isinstance(verdict.get("error_rates"), Mapping) else {}
    label = verdict.get("label")
    fnr, fpr = _num(rates.get("fnr")), _num(rates.get("fpr"))
    n_ai, n_human = rates.get("n_ai", "n/a"), rates.get("n_human", "n/a")
    unit = "clips" if rates.get("unit") == "clip" else "recordings"
    if label == "human":
        if fnr is None:
            return ("No miss rate was measured for this method, so the absence of evidence "
                    "cannot be weighed: this is not a finding of human authorship.")
        miss = one_in(fnr)
        real = real_ai_sentence(verdict.get("measured_on_real_ai"))
        return (f"This is not proof of human authorship: in testing, the content model missed "
                f"{pct(fnr)} of {n_ai} AI-generated {unit}"
                + (f" ({miss})" if miss else "") + ", and for generators it was not tested "
                "on its miss rate is unknown." + (f" {real}" if real else ""))
    if label == "ai":
        lines = [str(x) for x in verdict.get("ai_lines") or ()]
        others = [_accusing_line_sentence(track or {}, x) for x in lines if x != "content"]
        if lines and "content" not in lines:
            return " ".join(others) + " The finding is statistical evidence, not proof."
        if fpr is None:
            return ("No false-accusation rate was measured for this method, so this finding "
                    "cannot be weighed against one.")
        bounds = rates.get("fpr_ci95")
        upper = (f" (95% upper bound {pct(bounds[1])})"
                 if isinstance(bounds, (list, tuple)) and len(bounds) == 2 else "")
        worst = after_shipping_sentences(rates)[:1]
        return (f"In testing, the content model called {pct(fpr)}{upper} of {n_human} human "
                f"{unit} AI-generated; the finding is statistical evidence, not proof."
                + ("" if not worst else " " + worst[0])
                + ("" if not others else " " + " ".join(others)))
    if label == "inconclusive":
        return "The methods abstain: the recording should be judged on other evidence."
    return None


def _content_points(verdict: Mapping) -> str | None:
    """Where the content model's verdict changes, from its recorded band: "AI at or above
    0.600, human at or below 0.400". Its threshold (0.500) is the band's centre, not the
    point where it accuses; a report that called it "the operating point at or above which
    it finds AI" had an inconclusive 0.550 read as past the accusation point (review of
    session 45). ``None`` without a recorded band."""
    band = verdict.get("band") if isinstance(verdict, Mapping) else None
    if not (isinstance(band, (list, tuple)) and len(band) == 2
            and _num(band[0]) is not None and _num(band[1]) is not None):
        return None
    return f"AI at or above {prob(band[1])}, human at or below {prob(band[0])}"


def drivers(track: Mapping) -> list[str]:
    """Which evidence drove the combined verdict, one plain line per evidence line."""
    verdict = track.get("verdict") or {}
    label = verdict.get("label")
    out = []
    for line in track.get("evidence") or ():
        if not isinstance(line, Mapping):
            continue
        finding = line.get("finding")
        drove = (finding == "ai" if label == "ai" else
                 finding == "human" if label == "human" else finding == "inconclusive")
        if not drove:
            continue
        name = LINE_NAMES.get(str(line.get("line")), str(line.get("line")))
        if line.get("in_domain") is False:
            # a line that could not speak (its band too narrow, the recording unlike its
            # data): its reason, not an operating point it never reached (session 27 audit)
            why = next((str(r) for r in line.get("reasons") or ()), "")
            out.append(visible(f"{name}: cannot speak for this recording"
                               + (f" ({why.strip().rstrip('.')})" if why else "")))
            continue
        figures = []
        if _num(line.get("p_ai")) is not None:
            figures.append(f"P(AI) {prob_beside(line.get('p_ai'), *_line_edges(track, line))}")
        points = _content_points(verdict) if line.get("line") == "content" else None
        details = line.get("details") if isinstance(line.get("details"), Mapping) else {}
        found = details.get(str(line.get("line")))
        found = found if isinstance(found, Mapping) else {}
        doubt = _num(found.get("doubt_threshold"))
        if points:
            figures.append(points)
        elif found.get("accuses") is False:
            # a line that never accuses has no operating point to read its P(AI) against (the
            # evidence table says "none (it does not accuse)"); its doubt threshold decides
            # whether it supports a 'human' verdict (review: "no evidence of AI (P(AI) 0.004,
            # operating point 0.967)" on page 1 of a human verdict)
            figures.append("it does not accuse" + (f", doubt threshold {prob(doubt)}"
                                                   if doubt is not None else ""))
        elif _num(line.get("threshold")) is not None:
            figures.append(f"operating point {prob(line.get('threshold'))}")
        text = f"{name}: {LINE_FINDINGS.get(str(finding), finding)}" + (
            f" ({', '.join(figures)})" if figures else "")
        why = next((str(r).strip() for r in line.get("reasons") or ()), "")
        if finding == "inconclusive" and why and _past_its_edges(line, verdict):
            # "inconclusive (P(AI) 0.950, AI at or above 0.600, ...)" read as an AI finding
            # the tool hedged on; the rule that withheld it (a silence cue, a track too
            # short, a line that does not accuse) is said beside it (review of session 46)
            text += f". {why}"
        out.append(visible(text))
    if label == "inconclusive" and not out:
        out = [visible(r) for r in verdict.get("reasons") or ()]
    return out


def _past_its_edges(line: Mapping, verdict: Mapping) -> bool:
    """Whether a line's P(AI) lies where its own figures would decide: for the content line
    outside the content rule's band (AI or human by the figures alone), for another at or
    above its operating point."""
    p = _num(line.get("p_ai"))
    if p is None:
        return False
    if line.get("line") == "content":
        band = verdict.get("band")
        if not (isinstance(band, (list, tuple)) and len(band) == 2):
            return False
        lo, hi = _num(band[0]), _num(band[1])
        return (hi is not None and p >= hi) or (lo is not None and p <= lo)
    point = _num(line.get("threshold"))
    return point is not None and p >= point


def timeline_sentence(track: Mapping) -> str | None:
    """The per-window probabilities of the judged windows in words; says so when the
    timeline is flat, and how many silent windows were not judged."""
    timeline = track.get("timeline") or {}
    values = list(timeline.get("p_ai") or ())
    quiet = timeline.get("quiet")
    if not isinstance(quiet, list) or len(quiet) != len(values):
        quiet = [False] * len(values)
    probs = [p for p, q in zip((_num(x) for x in values), quiet) if p is not None and not q]
    n_quiet = sum(1 for q in quiet if q)
    verdict = track.get("verdict") or {}
    band = verdict.get("band")
    if not probs:
        return ("Every analysis window is silent, in whole or over a quarter of it where the "
                "music begins or ends: none was judged." if n_quiet else None)

    def where(p: float) -> str:
        if isinstance(band, (list, tuple)) and len(band) == 2:
            lo, hi = float(band[0]), float(band[1])
            if p <= lo:
                return f"below the inconclusive band {prob(lo)}–{prob(hi)}"
            if p >= hi:
                return f"above the inconclusive band {prob(lo)}–{prob(hi)}"
            return f"inside the inconclusive band {prob(lo)}–{prob(hi)}"
        return ""

    lo_p, hi_p = min(probs), max(probs)
    n = len(probs)
    if n == 1:
        text = (f"The recording gave one analysis window, with P(AI) "
                f"{prob_beside(lo_p, *_band(verdict))}, {where(lo_p)}.")
    elif hi_p - lo_p < 0.02:
        # a flat line may still cross an edge of the band: where its ends lie, each (review
        # of session 46: 0.590 to 0.605 read "above the inconclusive band 0.400–0.600")
        side = (where(hi_p) if where(lo_p) == where(hi_p) else
                f"the lowest {where(lo_p)}, the highest {where(hi_p)}")
        low, high = prob_beside(lo_p, *_band(verdict)), prob_beside(hi_p, *_band(verdict))
        # "between 0.568 and 0.568" when every window reads the same (review of session 47)
        text = (f"The line is flat: all {n} windows give P(AI) "
                + (f"{low}" if low == high else f"between {low} and {high}") + f", {side}.")
    else:
        text = (f"Across the {n} windows P(AI) ranges from {prob_beside(lo_p, *_band(verdict))} "
                f"to {prob_beside(hi_p, *_band(verdict))}; "
                f"{sum(1 for p in probs if p >= (_num(verdict.get('threshold')) or 0.5))} of "
                "them lie at or above the decision threshold.")
    if n_quiet:
        text += (f" {n_quiet} more window(s) are silent, in whole (peak below -60 dBFS) or "
                 "over a quarter of the window where the music begins or ends, and were not "
                 "judged (hatched on the timeline).")
    return text


def appendix_rows(track: Mapping) -> list[dict]:
    """The model card's numbers that bear on this report, with units and meanings.

    A short table instead of the card's raw key paths; the full card stays in result.json.
    """
    model = track.get("model") or {}
    verdict = track.get("verdict") or {}
    rates = verdict.get("error_rates") if isinstance(verdict.get("error_rates"), Mapping) else {}
    fe = model.get("front_end") or {}
    cal = model.get("calibration") or {}
    rows: list[tuple[str, str, str]] = []

    def add(name: str, value: Any, meaning: str) -> None:
        if value not in (None, "", "n/a"):
            rows.append((name, visible(value), meaning))

    add("Model", " ".join(str(x) for x in (model.get("name"), model.get("version")) if x),
        "the content model's name and version")
    add("Weights SHA-256", model.get("weights_sha256"),
        "fingerprint of the exact weights used; verify checks it")
    add("Model card SHA-256", model.get("card_sha256"),
        "fingerprint of the card (calibration, thresholds, verdict policy); verify --reproduce names a different one")
    add("Domain statistics SHA-256", model.get("ood_sha256"),
        "fingerprint of the statistics the domain check compares against")
    add("Network", model.get("backbone"), "the neural-network architecture (timm name)")
    if _num(cal.get("temperature")) is not None:
        add("Calibration", f"temperature {float(cal['temperature']):.3f}"
            + (f", fitted on {cal.get('n')} {cal.get('fitted_on', '')} clips" if cal.get("n")
               else ""),
            "turns the network's scores into probabilities that match observed frequencies")
    threshold, band = _num(verdict.get("threshold")), verdict.get("band")
    add("Decision threshold", prob(threshold) if threshold is not None else None,
        "the centre of the inconclusive band below: P(AI) at or above the band's upper end is "
        "called AI, at or below its lower end human")
    if isinstance(band, (list, tuple)) and len(band) == 2:
        add("Inconclusive band", f"{prob(band[0])}–{prob(band[1])}",
            "P(AI) strictly inside this range is reported as inconclusive")
    # a count the card does not record is left out, never printed as "None" (review: "share of
    # None human recordings")
    n_h, n_a = (f"{rates[k]} " if rates.get(k) is not None else "the "
                for k in ("n_human", "n_ai"))
    # the unit, split and rule the card's rates were measured in, as section 1 states them
    # (review: "human test recordings ... (full rule)" whatever the card recorded)
    unit = "clips" if rates.get("unit") == "clip" else "recordings"
    named = visible(rates["split"]) if rates.get("split") else None
    split = f" of the '{named}' split" if named else " in evaluation"
    rule = (" (full rule)" if "full" in str(rates.get("rule", ""))
            else " (at the threshold alone)")
    if "fpr" in rates:
        ci = rates.get("fpr_ci95")
        add("False-accusation rate", pct(rates["fpr"]) + (
            f" (95% CI {pct(ci[0])}–{pct(ci[1])})" if isinstance(ci, (list, tuple)) else ""),
            f"share of {n_h}human {unit}{split} called AI{rule}")
    if "fnr" in rates:
        ci = rates.get("fnr_ci95")
        add("Miss rate", pct(rates["fnr"]) + (
            f" (95% CI {pct(ci[0])}–{pct(ci[1])})" if isinstance(ci, (list, tuple)) else ""),
            f"share of {n_a}AI {unit}{split} called human{rule}")
    add("ROC AUC", prob(rates.get("roc_auc")) if _num(rates.get("roc_auc")) is not None
        else None, "ranking quality " + (f"on the '{named}' split" if named else "in evaluation")
        + ", 1 is perfect, 0.5 is chance")
    if fe:
        add("Input", (f"{fe.get('sample_rate', '?')} Hz mono, {_sec(float(fe['window_s']))} s "
                      f"windows every {_sec(float(fe['hop_s']))} s"
                      if _num(fe.get("window_s")) is not None and _num(fe.get("hop_s")) is not None
                      else f"{fe.get('sample_rate', '?')} Hz"),
            "what the model reads: the audio is resampled and cut into overlapping windows")
        if fe.get("kind"):
            band_hz = (f", {_sec(float(fe['f_min']))}–{_sec(float(fe['f_max']))} Hz"
                       if _num(fe.get("f_min")) is not None and _num(fe.get("f_max")) is not None
                       else "")
            add("Spectrogram", f"{fe['kind']}, {fe.get('n_bins', fe.get('n_mels', '?'))} "
                               f"frequency bins{band_hz}",
                "the time-frequency picture of each window that the network sees")
    return [{"name": n, "value": v, "meaning": m} for n, v, m in rows]


def merged_limitations(track: Mapping, extra: Sequence[str] = ()) -> list[str]:
    """``extra``, the track's limitations and the standard ones, each topic stated once
    (issue 24: the list said three things twice, in the scan's words and the report's).

    Where both state a topic the report's wording, written for a court, is kept, except for
    tags, where the scan's also says how far a C2PA manifest counts.
    """
    own = [visible(x) for x in track.get("limitations") or ()]
    # (the scan's opening words, the standard item on the same topic)
    same_topic = (("The verdict is a statistical estimate", STANDARD_LIMITATIONS[0]),
                  ("A heatmap shows", STANDARD_LIMITATIONS[2]))
    own = [o for o in own if not any(o.startswith(start) for start, _ in same_topic)]
    standard = [x for x in STANDARD_LIMITATIONS
                if not (x is STANDARD_LIMITATIONS[3]
                        and any(o.startswith("Tags and encoder strings") for o in own))]
    if not (track.get("verdict") or {}).get("error_rates"):
        # a model without measured rates (exported before finalize): no "error rates above"
        # to speak of, and no corpus they were measured on (review)
        standard[1] = NO_ERROR_RATES
    out: list[str] = []
    for item in (*extra, *standard[:2], *own, *standard[2:]):
        if item not in out:
            out.append(item)
    return out

# --- view model ---------------------------------------------------------------------------


def _verdict(track: Mapping) -> dict | None:
    verdict = track.get("verdict")
    if not verdict:
        return None
    label = str(verdict.get("label", ""))
    p_ai, threshold, band = verdict.get("p_ai"), verdict.get("threshold"), verdict.get("band")
    content = next((e for e in track.get("evidence") or ()
                    if isinstance(e, Mapping) and e.get("line") == "content"), None)
    if content is not None and content.get("p_ai") is None:
        # no window judged (every one silent): the mean over noise the verdict still records
        # is no probability of anything, and the evidence table shows none (review of
        # session 45: 0.567 in the box above "n/a" in the table)
        p_ai = None
    sentences = []
    if _num(p_ai) is not None:
        sentences.append(f"The content model's calibrated probability that this recording "
                         f"is AI-generated is {prob_beside(p_ai, *_band(verdict))}.")
    rule = []
    if _num(threshold) is not None:
        rule.append(f"decision threshold {prob(threshold)}")
    if isinstance(band, (list, tuple)) and len(band) == 2:
        # strictly between: the ends decide (verdict.decide: lo < p < hi), as the README says
        rule.append(f"probabilities strictly between {prob(band[0])} and {prob(band[1])} are "
                    "reported as inconclusive")
    if rule:
        sentences.append("The content model's rule: " + "; ".join(rule) + ".")
    lines = [str(x) for x in verdict.get("ai_lines") or ()]
    if label == "ai" and lines and "content" not in lines:
        sentences.append("The combined verdict does not come from that rule: the "
                         + " and ".join(SHORT_LINE_NAMES.get(x, visible(x)) for x in lines) + " line"
                         + ("s" if len(lines) > 1 else "") + " found AI within "
                         + ("their" if len(lines) > 1 else "its") + " own domain (section 1).")
    return {
        # a human verdict is what it is, not a finding of human authorship (issue 22)
        "label": (f"{label} (no evidence of AI generation found by these methods)"
                  if label == "human" else visible(label) or "n/a"),
        "css": label if label in VERDICT_HEADLINES else "unknown",
        "headline": VERDICT_HEADLINES.get(label, f"Verdict: {visible(label) or 'missing'}"),
        "p_ai": prob_beside(p_ai, *_band(verdict)),
        "strength": strength_sentence(verdict, track),
        "sentences": sentences,
        "reasons": [visible(r) for r in verdict.get("reasons") or ()],
        "error_rates": error_rate_sentences(verdict.get("error_rates"), threshold)
        + ([measured_on_sentence(verdict.get("measured_generators"))]
           if verdict.get("error_rates") else []),
    }


def _provenance_sentences(c2pa: Any, reasons: Sequence[Any] = ()) -> list[str]:
    """What the C2PA finding says, in plain words, ready to show: every value from the file is
    untrusted and set in :func:`quoted`. The reader's reason is left out where one of the
    line's ``reasons`` already holds it."""
    if not isinstance(c2pa, Mapping):
        return []
    status = str(c2pa.get("status"))
    out = {"absent": [],   # the line's own reason already says so
           "valid": ["The file carries a C2PA manifest whose signature and content hashes "
                     "validate."],
           "invalid": ["The file carries a C2PA manifest that does not validate."],
           }.get(status, ["The file's C2PA manifest could not be checked."]
                 if c2pa.get("manifest_source") else
                 ["Whether the file carries a C2PA manifest could not be checked."])
    signer = c2pa.get("signer") if isinstance(c2pa.get("signer"), Mapping) else None
    if signer:
        name = quoted(signer["common_name"]) if signer.get("common_name") else "an unnamed signer"
        issuer = f", certificate issued by {quoted(signer['issuer'])}" if signer.get("issuer") else ""
        out.append(f"It names {name} as signer{issuer}.")
    trusted = c2pa.get("trusted")
    if status == "valid" or (status == "invalid" and signer):
        # an invalid store that names no signer (no readable manifest): no trust to speak of
        if trusted is None and c2pa.get("trust_anchors_configured"):
            out.append("Whether the signer chains to a configured trust anchor was not "
                       "established: its signing credential failed other checks (below).")
        else:
            out.append({True: "The signer chains to a configured trust anchor; whether its "
                              "certificate has been revoked was not looked up (scans run "
                              "offline).",
                        False: "The signer does not chain to any configured trust anchor.",
                        }.get(trusted, "The signer was not verified against a trust list: the "
                                       "name is only what the certificate claims."))
    if c2pa.get("claim_generator"):
        out.append(f"Claim generator (the software that wrote the manifest): "
                   f"{quoted(c2pa['claim_generator'])}.")
    for action in list(c2pa.get("actions") or ())[:8]:
        if isinstance(action, Mapping):
            dst = action.get("digital_source_type")
            where = str(action.get("manifest") or "active")
            # an ingredient's action is its manifest's word, not this file's signer's (review
            # of session 45: it read as declared by the trusted signer named just before)
            whose = ("" if where == "active" else
                     f" in the manifest of {quoted(where.removeprefix('ingredient ').strip(chr(39)))},"
                     " an ingredient (not this file's signer; its signer is not checked against "
                     "the trust list)")
            out.append(f"Declared action {quoted(action.get('action'))}"
                       + (f" with digital source type {quoted(dst)}" if dst else "")
                       + whose
                       + (" (declares generative AI)" if action.get("declares_ai") else "") + ".")
    for issue in list(c2pa.get("validation_errors") or ())[:6]:
        if isinstance(issue, Mapping):
            out.append(f"Validation failure {quoted(issue.get('code'))}: "
                       f"{quoted(issue.get('explanation') or '')}")
    if c2pa.get("reason") and not any(str(c2pa["reason"]) in str(r) for r in reasons):
        out.append(f"Reader's reason: {quoted(c2pa['reason'])}")
    return out


def _rate_phrase(r: Any) -> str | None:
    """'0 of 257 (0.0%, 95% confidence interval 0.0% to 1.5%)' from a {k, n, rate, ci95}."""
    if not isinstance(r, Mapping) or not r.get("n"):
        return None
    return f"{r.get('k')} of {r.get('n')} ({pct(r.get('rate'))}{interval(r.get('ci95'))})"


def _real_decoder_sentences(rates: Mapping, *, doubt: bool) -> list[str]:
    """What the artifact line made of a real, fully trained decoder's output it was never fitted
    on (``real_decoder_<name>`` in its card, :func:`musicbrain_cli.artifacts.fit.
    record_real_decoder`), one sentence per decoder and one on what was not measured; its
    doubt zone only for a line that has one (``doubt``)."""
    out = []
    for k in sorted(rates, key=str):
        entry = rates.get(k)
        if not str(k).startswith("real_decoder_") or not isinstance(entry, Mapping):
            continue
        reached = _rate_phrase(entry.get("operating_point"))
        leaned = _rate_phrase(entry.get("doubt_threshold")) if doubt else None
        if not reached:
            continue
        unread = _rate_phrase(entry.get("not_applicable"))
        out.append(f"On music re-synthesised by a real, fully trained decoder it was never fitted on, "
                   f"{visible(entry.get('decoder') or str(k)[len('real_decoder_'):])}"
                   + (" (measured after the line shipped)" if entry.get("measured_after_shipping") else "")
                   + f": at or above its operating point {reached}"
                   + (f", at or above its doubt threshold {leaned}" if leaned else "")
                   + (f", not readable {unread}" if unread else "") + ".")
    if out:
        out.append("For other real decoders its miss rate is unknown; it misses the neural-codec "
                   "re-syntheses of the public evaluation material.")
    return out


def _artifact_sentences(found: Any) -> list[str]:
    """The artifact line's own measured error rates (its card), quoted beside its finding."""
    if not isinstance(found, Mapping):
        return []
    rates = found.get("error_rates") if isinstance(found.get("error_rates"), Mapping) else {}
    out = []
    if found.get("accuses") is False:
        out.append("This line does not accuse on its own (since version 0.3.0): common human "
                   "production that its human side never held, such as a quiet drone of a naive "
                   "square-wave oscillator, sample-and-hold effects or an undithered pilot tone, "
                   "reached its operating point in an audit. At or above that point it withholds "
                   "a 'human' verdict, as in its doubt zone; the rates below are those of its "
                   "operating point.")
    human = _held_out_false_accusations(rates)
    if human:
        out.append("Measured false accusations of this line on human recordings from packages "
                   "it was never fitted on, per held-out set: " + "; ".join(human) + ".")
    withheld = rates.get("human_withheld_by_doubt")
    doubt = _num(found.get("doubt_threshold"))
    if isinstance(withheld, Mapping) and doubt is not None:
        parts = [f"{visible(str(k))} {ph}" for k in sorted(withheld, key=str)
                 if str(k).startswith("test") and (ph := _rate_phrase(withheld.get(k)))]
        if parts:
            out.append(f"Human recordings from packages it was never fitted on that reach its doubt "
                       f"threshold ({doubt:.2f}), so that this line withholds a 'human' verdict: "
                       + "; ".join(parts) + ".")
    cov = rates.get("human_coverage")
    if isinstance(cov, Mapping) and None not in (_num(cov.get("min_rate_hz")), _num(cov.get("max_rate_hz")),
                                                  _num(cov.get("min_bandwidth_hz"))):
        cost = rates.get("human_withheld_by_coverage")
        parts = [f"{visible(str(k))} {ph}" for k in sorted(cost, key=str)
                 if (ph := _rate_phrase(cost.get(k)))] if isinstance(cost, Mapping) else []
        measured = cov.get("rates_hz")
        listed = ([f"{r:.0f}" for r in map(_num, measured) if r is not None]
                  if isinstance(measured, (list, tuple)) else [])
        at = (or_list(listed) + " Hz" if len(listed) > 1 else
              f"{_num(cov['min_rate_hz']):.0f}-{_num(cov['max_rate_hz']):.0f} Hz")
        out.append(f"Its human side was calibrated on recordings at {at} with at least "
                   f"{_num(cov['min_bandwidth_hz']):.0f} Hz of bandwidth; at any other rate or a "
                   "narrower band it "
                   + ("never supports a 'human' verdict" if found.get("accuses") is False
                      else "can accuse but never supports a 'human' verdict")
                   + (" (held-out human recordings outside it: " + "; ".join(parts) + ")" if parts else "")
                   + ".")
    recall = _rate_phrase(rates.get("recall_synthetic_decoders_test"))
    if recall:
        out.append(f"Decoded test clips it detected: {recall}.")
    per_family = rates.get("miss_rate_per_decoder_family_test")
    if isinstance(per_family, Mapping) and per_family:
        out.append("Miss rate per decoder family on those clips: " + ", ".join(
            f"{visible(str(k))} {pct((v or {}).get('miss_rate'))} of {(v or {}).get('n')}"
            for k, v in sorted(per_family.items(), key=lambda kv: str(kv[0]))[:12]
            if isinstance(v, Mapping)) + ".")
    # after the decoded test clips' sentences, whose "those clips" they must not come between
    out.extend(_real_decoder_sentences(rates, doubt=doubt is not None))
    if found.get("says_ai") or found.get("leans_ai"):
        out.append("A known limit: a sustained synthetic tone with exactly periodic harmonics (a "
                   "naive square or sawtooth wave, as in chiptune, or a digital buzz) puts lines "
                   "like a decoder's into human recordings, and this line cannot tell the two "
                   "apart; check the recording for such a tone before relying on this finding.")
    hum = rates.get("mains_hum_guard")
    if isinstance(hum, Mapping):
        spacings = [f"{x:g}" for x in map(_num, hum.get("spacings_hz") or ()) if x is not None]
        withdrawn = _rate_phrase(hum.get("decoded_accusations_withdrawn"))
        # a record without spacings (an edited result.json) names none, and never fails
        out.append("At the spacing of mains hum"
                   + (f" ({or_list(spacings)} Hz)" if spacings else "") + " it never accuses, "
                   "since hum puts the same lines into human recordings"
                   + (f"; on its rebuilt test split that withdrew {withdrawn} of its accusations "
                      "of decoded clips, so for decoders at those spacings its miss rate is "
                      "higher than stated above" if withdrawn else "") + ".")
    if rates.get("measured_on"):
        out.append(f"Measured on: {rates['measured_on']}.")
    return out


def _words(text: str) -> set[str]:
    return set("".join(c.lower() if c.isalnum() else " " for c in text).split())


def without_repeats(sentences: Iterable[str]) -> list[str]:
    """``sentences`` without exact repeats and without any whose words all recur in a longer
    one of the list (issue 24: "No C2PA manifest: no evidence either way." above "No C2PA
    manifest was found. Provenance gives no evidence either way: ...")."""
    items = list(dict.fromkeys(sentences))
    words = [_words(x) for x in items]
    return [x for i, x in enumerate(items)
            if not any(j != i and len(items[j]) > len(x) and words[i] <= words[j]
                       for j in range(len(items)))]


def _symbolic_sentences(found: Any) -> list[str]:
    """The symbolic line's measured error rates and what it analysed, in plain words."""
    if not isinstance(found, Mapping):
        return []
    out = []
    windows = [w for w in found.get("windows") or () if isinstance(w, Mapping)]
    if windows:
        out.append(f"{len(windows)} window(s) of {_count(sum(_count(w.get('notes')) for w in windows))} "
                   "transcribed notes in all; starts (s): "
                   + ", ".join(f"{_num(w.get('start_s')) or 0:g}" for w in windows[:12]) + ".")
    if found.get("accuses") is False:
        out.append("This line does not accuse on its own: its human side holds no ragtime and almost "
                   "no art songs, and rendered human rags reached its operating point. At or above "
                   "that point it withholds a 'human' verdict, as in its doubt zone.")
    rates = found.get("error_rates") if isinstance(found.get("error_rates"), Mapping) else {}
    for key, what in (("false_accusation", "human test clips at or above its operating point"),
                      ("detection", "clips of score-writing generators at or above its operating point"),
                      ("human_withheld", "human test clips whose notes lean towards AI (a human "
                                         "verdict withheld, no accusation)"),
                      ("ai_doubted", "clips of score-writing generators at or above its doubt "
                                     "threshold (so never cleared as human)")):
        r = rates.get(key)
        if isinstance(r, Mapping) and _num(r.get("n")):
            lo, hi = (list(r.get("ci95") or []) + [None, None])[:2]
            pct = [f"{100 * v:.1f} %" if v is not None else "n/a"
                   for v in (_num(r.get("rate")), _num(lo), _num(hi))]
            out.append(f"Measured on the reference corpus's test split: {_count(r.get('k'))} of "
                       f"{_count(r.get('n'))} {what} ({pct[0]}, 95 % interval {pct[1]} to {pct[2]}).")
    measured_on = found.get("measured_on")
    families = [visible(g) for g in (measured_on if isinstance(measured_on, (list, tuple)) else ())
                if isinstance(g, str)][:12]
    if families:
        out.append("Its catch rate was measured on the score-writing generators "
                   + ", ".join(f"'{g}'" for g in families) + "; for any other generator its miss "
                   "rate is unknown, and it says nothing about generators that make audio directly.")
    return out


def _thresholds_text(line: Mapping, found: Any) -> str:
    """The thresholds a line acts on: its operating point (none for a line that does not
    accuse) and, where it has one below it, its doubt threshold."""
    found = found if isinstance(found, Mapping) else {}
    doubt, point = _num(found.get("doubt_threshold")), _num(line.get("threshold"))
    text = ("none (it does not accuse)" if found.get("accuses") is False
            else prob(line.get("threshold")))
    if doubt is not None and (point is None or doubt < point or found.get("accuses") is False):
        text += f"; doubt {prob(doubt)}"
    return text


def _evidence(track: Mapping, figures: Mapping[str, bytes]) -> list[dict]:
    """Each evidence line's own finding, shown before the combined verdict (issue 22)."""
    rows = []
    for line in track.get("evidence") or ():
        if not isinstance(line, Mapping):
            continue
        name = str(line.get("line", "?"))
        details = line.get("details") if isinstance(line.get("details"), Mapping) else {}
        rows.append({
            "name": visible(LINE_NAMES.get(name, name)),
            "finding": visible(LINE_FINDINGS.get(str(line.get("finding")),
                                                 str(line.get("finding")))),
            "css": str(line.get("finding")) if line.get("finding") in VERDICT_HEADLINES else "unknown",
            "in_domain": ("not checked" if line.get("domain_checked") is False
                          else "yes" if line.get("in_domain") else "no"),
            "p_ai": prob_beside(line.get("p_ai"), *_line_edges(track, line)),
            "threshold": (_content_points(track.get("verdict") or {})
                          if name == "content" else None) or _thresholds_text(line, details.get(name)),
            "reasons": without_repeats(visible(r) for r in line.get("reasons") or ())[:8],
            "sentences": ([visible(s) for s in (*(details.get("sentences") or ()),
                                                *_artifact_sentences(details.get("artifacts")),
                                                *_symbolic_sentences(details.get("symbolic")))
                           if not any(str(s) in str(r) for r in line.get("reasons") or ())]
                          # already shown as they are: quoted() has made the file's text visible
                          + _provenance_sentences(details.get("c2pa"), line.get("reasons") or ()))[:20],
            "figure": _figure(figures, details.get("figure")),
        })
    return rows


def _ood_checks(track: Mapping) -> list[dict]:
    """One row per domain check run on the track, for the report's table."""
    ood = track.get("ood") or {}
    rows = ood.get("checks")
    if not isinstance(rows, list):
        rows = ([{"name": "embedding", "score": ood.get("score"), "threshold": ood.get("threshold"),
                  "in_domain": ood.get("in_domain"), "description": "embedding distance"}]
                if ood.get("available") else [])
    out = []
    for r in rows[:8]:
        if not isinstance(r, Mapping):
            continue
        # a score just past its limit must not read as the limit itself ("0.500 above the
        # limit 0.500", review of session 46)
        out.append({"check": str(r.get("description") or r.get("name", "?")),
                    "score": prob_beside(r.get("score"), r.get("threshold")),
                    "threshold": prob(r.get("threshold")),
                    "outcome": "within the training domain" if r.get("in_domain")
                    else "OUTSIDE the training domain"})
    return out


def _percent_or_none(x: Any) -> str | None:
    value = _num(x)
    return None if value is None else f"{100 * value:g}%"


def _ood(track: Mapping) -> str | None:
    ood = track.get("ood")
    if not ood or ood.get("in_domain", True):
        return None
    failed = [r for r in _ood_checks(track) if r["outcome"].startswith("OUTSIDE")]
    which = "; ".join(f"{r['check']}: {r['score']} above the limit {r['threshold']}"
                      for r in failed) or (f"score {prob_beside(ood.get('score'), ood.get('threshold'))} above the limit "
                                           f"{prob(ood.get('threshold'))}")
    return (f"This recording lies outside the domain the content model was trained and "
            f"evaluated on ({which}). The content model's error rates do not apply to it and "
            f"its finding is inconclusive by rule; only another line within its own domain "
            f"(section 1) can decide, and the verdict must not be relied upon on its own.")


def _count(x: Any) -> int:
    return x if isinstance(x, int) and not isinstance(x, bool) and x > 0 else 0


def _tags(tags: Any, dropped: Any = None) -> list[dict]:
    """Rows of the tag table. ``dropped`` (the metadata's ``{"keys": n, "values": {key:
    n}}``) is what the tag reader already left out, so the "N more" notes count what the
    file holds, not what was stored (issue 23)."""
    if not isinstance(tags, Mapping):
        return []
    dropped = dropped if isinstance(dropped, Mapping) else {}
    dropped_values = dropped.get("values") if isinstance(dropped.get("values"), Mapping) else {}
    rows = []
    for key in sorted(tags, key=str)[:MAX_TAG_KEYS]:
        raw = tags[key]
        values = list(raw) if isinstance(raw, (list, tuple)) else [raw]
        shown = []
        for v in values[:MAX_TAG_VALUES]:
            # Count what is missing against the value's full length in the file, not
            # against the (already cut) stored text (issue 23).
            kept, total = split_cut(str(v))
            text = visible(kept[:MAX_TAG_CHARS])
            if total > min(len(kept), MAX_TAG_CHARS):
                text = f"{text}… [{total - min(len(kept), MAX_TAG_CHARS)} more characters]"
            shown.append(text)
        more = max(0, len(values) - MAX_TAG_VALUES) + _count(dropped_values.get(key))
        if more:
            shown.append(f"… [{more} more values]")
        # a key is as untrusted as a value (a Vorbis field name, an ID3 TXXX description):
        # cut the same way, counted against its full length in the file
        kept, total = split_cut(str(key))
        label = visible(kept[:MAX_TAG_CHARS])
        if total > min(len(kept), MAX_TAG_CHARS):
            label = f"{label}… [{total - min(len(kept), MAX_TAG_CHARS)} more characters]"
        rows.append({"key": label, "shown": shown})
    more = max(0, len(tags) - MAX_TAG_KEYS) + _count(dropped.get("keys"))
    if more:
        rows.append({"key": "…", "shown": [f"[{more} more tags]"]})
    return rows


def _figure(figures: Mapping[str, bytes], name: Any) -> str | None:
    if not name or name not in figures:
        return None
    return data_uri(figures[name])


def empty_map_sentence(explanation: Mapping) -> str | None:
    """A window's heatmap that holds no saliency at all (the onset check's ``mass``, the map
    summed over the frames of audio heard, is 0): FM-G-CAM rectifies each label's evidence,
    so where it is nowhere positive the map, and its figure, are blank. Said in words, since
    a blank figure reads as a window without influence rather than a map without evidence."""
    onset = explanation.get("onset") if isinstance(explanation.get("onset"), Mapping) else {}
    if "mass" not in onset or _num(onset.get("mass")) != 0:
        return None
    return ("This window's heatmap is empty: the model's evidence for the labels explained "
            "was nowhere positive in it, so the figure shows no saliency and the checks "
            "have nothing to measure.")


def _explanations(track: Mapping, figures: Mapping[str, bytes], window_s: Any) -> list[dict]:
    out = []
    # out of domain the style attribution is withheld (section 3): the maps' style labels too
    withheld = bool(labels_withheld(track))
    # One explained window: the pooled alignment is that window's, stated once (issue 24).
    whole = alignment_sentences(track.get("alignment"), explained_notes(track))
    inp = track.get("input") or {}
    duration = _num(inp.get("decoded_duration_s", inp.get("duration_s")))
    timeline = track.get("timeline") or {}
    starts = [_num(x) for x in timeline.get("window_start_s") or ()]
    ends = window_ends(timeline) if _num(timeline.get("window_s")) is not None else []
    for i, exp in enumerate(track.get("explanations") or (), start=1):
        ref = exp.get("energy_reference") or {}
        start = _num(exp.get("window_start_s"))
        width = _num(window_s)
        span = (f"{start:.2f}–{start + width:.2f} s" if start is not None and width is not None
                else seconds(start))
        # where its new audio ends: a window past the recording's end (a short track) or over
        # a passage shorter than a window (timeline.padded) repeats what it read (review: a
        # 3-s passage before a silence was titled "0.00–4.00 s", a second of the silence that
        # section 1 says was not read)
        end = next((e for s, e in zip(starts, ends)
                    if start is not None and s is not None and abs(s - start) <= COVERAGE_EPS_S),
                   None if start is None or width is None else start + width)
        if end is not None and duration is not None:
            end = min(end, duration)
        if start is not None and width is not None and end is not None \
                and start < end < start + width - COVERAGE_EPS_S:
            all_of_it = start <= COVERAGE_EPS_S and end >= (duration or 0.0) - COVERAGE_EPS_S
            span = (f"{start:.2f}–{end:.2f} s (the rest of the {_sec(width)} s window "
                    f"repeats {'the recording' if all_of_it else 'these seconds'})")
        out.append({
            "title": f"Window {i}: {span}",
            "labels": "; ".join(visible(display_label(x)) for x in exp.get("labels") or ()
                                if not withheld or str(x).startswith(f"{DETECTION_GROUP}/")),
            "figure": _figure(figures, exp.get("figure")),
            "figure_name": visible(exp.get("figure") or ""),
            "sentences": [s for s in (empty_map_sentence(exp),
                                      harmonic_sentence(exp.get("harmonic"), ref.get("harmonic")),
                                      onset_sentence(exp.get("onset"), ref.get("onset")))
                          if s and s not in whole],
        })
    return out


def _lines_read_less(track: Mapping, duration: Any) -> list[str]:
    """A sentence for each evidence line that read less of the recording than the content
    model's windows cover (the decoder-artifact line reads the first minutes only)."""
    total = _num(duration)
    out = []
    for entry in track.get("evidence") or ():
        if not isinstance(entry, Mapping):
            continue
        line = str(entry.get("line"))
        details = entry.get("details") if isinstance(entry.get("details"), Mapping) else {}
        found = details.get(line) if isinstance(details.get(line), Mapping) else {}
        read = _num(found.get("analysed_s"))
        if total is not None and read is not None and 0 < read < total - COVERAGE_EPS_S:
            out.append(f"The {SHORT_LINE_NAMES.get(line, visible(line))} line read only the "
                       f"first {_sec(read)} s of the {_sec(total)} s; its finding says nothing "
                       "about the rest.")
    return out


def _explanations_note(track: Mapping) -> str | None:
    """What the maps of section 4 do not show: the evidence of a line other than the content
    model that decided the verdict, and the style labels withheld out of domain."""
    said = []
    lines = [str(x) for x in (track.get("verdict") or {}).get("ai_lines") or ()]
    if lines and "content" not in lines:
        said.append("These maps explain the content model, which did not decide this verdict: "
                    "the evidence that did is the "
                    + " and ".join(SHORT_LINE_NAMES.get(x, visible(x)) for x in lines)
                    + " line's, shown with its finding in section 1.")
    # only over maps there are: a track none of whose windows was judged has none (review)
    if labels_withheld(track) and track.get("explanations"):
        said.append("Style label names are withheld from them (their maps are drawn "
                    "unnamed), as style attribution is withheld for this recording (section 3).")
    return " ".join(said) or None


def _with_upper(rate: Any, bounds: Any) -> str:
    """'0.0% (95% upper bound 1.9%)', or the rate alone when no interval is recorded."""
    if isinstance(bounds, (list, tuple)) and len(bounds) == 2 and _num(bounds[1]) is not None:
        return f"{pct(rate)} (95% upper bound {pct(bounds[1])})"
    return pct(rate)


def _integrity(track: Mapping) -> list[tuple[str, str]]:
    inp = track.get("input") or {}
    rows = [
        ("File name", visible_name(inp.get("file_name", "n/a"))),
        ("Path at analysis", visible(inp.get("path", "n/a"))),
        ("SHA-256 of the file", visible(inp.get("sha256", "n/a"))),
        ("Size", f"{inp['size_bytes']:,} bytes" if isinstance(inp.get("size_bytes"), int)
         else "n/a"),
        ("Container / codec", f"{visible(inp.get('container', 'n/a'))} / "
                              f"{visible(inp.get('codec', 'n/a'))}"),
        ("Sample rate", f"{inp['sample_rate']} Hz" if inp.get("sample_rate") else "n/a"),
        ("Channels", visible(inp.get("channels", "n/a"))),
        (("Duration (header)" if inp.get("duration_stated", True) is not False
          else "Duration (FFmpeg's estimate: the file states none)"), seconds(inp.get("duration_s"))),
        ("Duration (decoded)", seconds(inp.get("decoded_duration_s"))),
        ("Undecodable packets", visible(inp.get("undecodable_packets", "n/a"))),
        ("Decoded (share of the stream)", decoded_share_text(inp)),
        ("Audio analysed", coverage_sentence(track) or "n/a"),
    ]
    rows += [(f"Decoder: {k}", v) for k, v in _rows(inp.get("decoder") or {})]
    rows.append(("Time of analysis (UTC)", visible(track.get("analysis_time", "n/a"))))
    return rows


def _signature(signer: Mapping | None) -> dict | None:
    """The signature section's strings from the manifest's record of the signer
    (:meth:`~musicbrain_cli.report.keys.KeyPair.record`)."""
    if signer is None:
        return None
    return {
        "manifest_key": visible(signer.get("public_key_sha256") or "n/a"),
        "certificate": visible(signer.get("certificate_sha256") or "n/a"),
        "subject": visible(signer.get("certificate_subject") or "n/a"),
        "self_signed": signer.get("certificate_self_signed") is True,
    }


def report_view(track: Mapping, figures: Mapping[str, bytes], *,
                signer: Mapping | None = None) -> dict:
    """Display strings for ``report.html`` from a track dict (see module doc); ``signer``:
    the manifest's record of the signer (:meth:`~musicbrain_cli.report.keys.KeyPair.record`)."""
    if not isinstance(track, Mapping):
        raise ReportError(f"a track result must be a dict, got {type(track).__name__}")
    inp = track.get("input") or {}
    meta = track.get("metadata") or {}
    timeline = track.get("timeline") or {}
    labels = sorted(track.get("labels") or (),
                    key=lambda r: (str(r.get("group", "")), -(_num(r.get("p")) or 0.0)))
    c2pa = meta.get("c2pa_present")
    command = track.get("command_line")
    covered = coverage_sentence(track)
    duration = _num(inp.get("decoded_duration_s", inp.get("duration_s")))
    gaps_note = ([f"Not every second was analysed: {covered} Nothing outside the analysed "
                  "seconds is covered by this report."]
                 if covered and ("not analysed" in covered or "not read" in covered) else [])
    return {
        "file_name": visible_name(inp.get("file_name") or inp.get("path") or "unknown file"),
        "sha256": visible(inp.get("sha256", "n/a")),
        "analysis_time": visible(track.get("analysis_time", "n/a")),
        "created": visible(track.get("analysis_time", "")),
        "version": __version__,
        "schema": visible(track.get("schema", "n/a")),
        "verdict": _verdict(track),
        "examined": {
            "duration": seconds(duration),
            "format": " / ".join(visible(x) for x in (inp.get("container"), inp.get("codec"))
                                 if x) or "n/a",
            "coverage": covered or "not recorded",
            "unheard": [visible(x) for x in (*unheard_audio(track.get("input") or {}),
                                             *_lines_read_less(track, duration))],
        },
        "drivers": drivers(track),
        "timeline_sentence": timeline_sentence(track),
        "appendix": appendix_rows(track),
        "evidence": _evidence(track, figures),
        "ood_warning": _ood(track),
        "ood_checks": _ood_checks(track),
        "ood_quantile": _percent_or_none((track.get("ood") or {}).get("quantile")),
        "timeline": _figure(figures, TIMELINE_FIGURE),
        "window_s": seconds(timeline.get("window_s")),
        "labels": [{"group": visible(GROUP_TITLES.get(str(r.get("group", "")), r.get("group", ""))),
                    "label": visible(r.get("label", "")),
                    "p": prob(r.get("p")), "width": max(0.0, min(1.0, _num(r.get("p")) or 0.0)),
                    "validation_ap": prob(r.get("validation_ap"))}
                   for r in labels],
        "labels_untrained": [visible(display_label(x))
                             for x in track.get("labels_untrained") or ()],
        "labels_withheld": visible(withheld) if (withheld := labels_withheld(track)) else None,
        "explanations": _explanations(track, figures, timeline.get("window_s")),
        "explanations_note": _explanations_note(track),
        "alignment": alignment_sentences(track.get("alignment"), explained_notes(track)),
        "alignment_heading": alignment_heading(track.get("alignment")),
        "robustness": [{"transform": visible(r.get("transform", ""))
                        + (f" ({visible(r['note'])})" if r.get("note") else ""),
                        "roc_auc": prob(r.get("roc_auc")), "fpr": pct(r.get("fpr")),
                        "tpr": pct(r.get("tpr")),
                        "ai_on_human": _with_upper(r.get("ai_verdicts_on_human"),
                                                   r.get("ai_verdicts_on_human_ci95")),
                        "split": visible(r.get("split") or "n/a"),
                        "n": f"{r.get('n_human', '?')} + {r.get('n_ai', '?')}"}
                       for r in track.get("robustness") or ()],
        "tags": _tags(meta.get("tags"), meta.get("dropped")),
        "tags_error": visible(meta["error"]) if meta.get("error") else None,
        "encoder": visible(meta["encoder"]) if meta.get("encoder") else None,
        "c2pa": {True: "present", False: "absent"}.get(c2pa, "not checked"),
        "integrity": _integrity(track),
        "software": _rows(track.get("software") or {}),
        "options": _rows(track.get("options") or {}),
        "command_line": visible(shlex.join(str(a) for a in command)) if command else None,
        "limitations": merged_limitations(track, gaps_note),
        "signature": _signature(signer),
    }


# --- rendering ----------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _env():
    from jinja2 import Environment, PackageLoader, StrictUndefined

    # autoescape=True for every template, whatever its extension: the values are untrusted.
    return Environment(loader=PackageLoader("musicbrain_cli", "templates"), autoescape=True,
                       undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def render_report_html(track: Mapping, figures: Mapping[str, bytes], *,
                       signer: Mapping | None = None) -> str:
    """Complete, self-contained HTML of one evidence report (figures as data: URIs).

    ``figures`` maps file names (``timeline.png``, the ``explanations[].figure`` names) to
    PNG bytes; ``signer`` (the manifest's record of the signer,
    :meth:`~musicbrain_cli.report.keys.KeyPair.record`) adds the fingerprints of the keys
    that sign the report. Deterministic: ``verify`` renders a sealed report again from its
    signed ``result.json``, figures and manifest and compares the bytes.
    """
    env = _env()
    return env.get_template("report.html").render(r=report_view(track, figures, signer=signer))


def report_href(relative_path: str) -> str:
    """A safe relative link: percent-encoded, and ``./``-prefixed so no scheme can sneak in
    (a report folder named ``javascript:...`` stays a relative path)."""
    return "./" + urllib.parse.quote(relative_path.replace("\\", "/").lstrip("/"))


def render_index_html(rows: Sequence[Mapping[str, Any]], *, title: str = "MusicBrain catalog",
                      columns: Iterable[tuple[str, str]],
                      header: Mapping[str, Any] | None = None) -> str:
    """The catalog page: one sortable table row per track (see :mod:`catalog`); ``header``
    (:func:`musicbrain_cli.report.catalog.index_header`) gives the verdict totals, the
    model and the date stated above the table."""
    import hashlib

    env = _env()
    script = env.loader.get_source(env, "_sort_script.html")[0]
    # The page's Content-Security-Policy allows exactly this inline script, by hash (CSP 3).
    script_hash = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    return env.get_template("index.html").render(
        title=title, rows=rows, columns=list(columns), script=script,
        script_hash=script_hash,
        header=header or {"totals": [], "models": [], "software": "n/a", "date": "n/a",
                          "n": len(rows)})
