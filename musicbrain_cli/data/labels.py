"""Canonical style labels shared by every adapter (NotaGen's taxonomy).

NotaGen (Wang et al. 2025, "NotaGen: Advancing Musicality in Symbolic Music Generation
with Large Language Model Training Paradigms", sec. 4.1) conditions on a period, a composer
and an instrumentation. MusicBrain uses the same three vocabularies so that a human piece
and a generated one with the same labels mean the same thing:

- periods: Baroque, Classical, Romantic;
- instrumentations: Art Song, Keyboard, Chamber, Orchestral, Choral, Vocal-Orchestral
  (common other spellings, :data:`INSTRUMENTATION_SYNONYMS`, map onto them);
- composers: NotaGen's "Surname, Given names" form ("Bach, Johann Sebastian"), ASCII
  (its prompt list writes "Dvorak, Antonin", "Faure, Gabriel").

NotaGen's 112 valid prompts (``assets/notagen_prompts.txt``, a copy of its
``gradio/prompts.txt``, MIT licence) give :data:`NOTAGEN_PROMPTS` and the composer list
with periods, :data:`NOTAGEN_COMPOSERS`.

Composer identity (issue 21): :func:`resolve_composer` matches a name only when surname
*and* given names agree with one known composer (accents, case, punctuation, word order
and initials folded). The list holds two Schumanns and two Claras, and real families hold
more Bachs and Mozarts than the list does, so a bare surname, or a given name that differs
("Mozart, Leopold", "C. P. E. Bach"), is never mapped onto the listed person: a silent
change of composer is a false attribution in a report.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from musicbrain_cli.errors import DatasetError
from musicbrain_cli.taxonomy import Taxonomy

PERIODS = ("Baroque", "Classical", "Romantic")
INSTRUMENTATIONS = ("Art Song", "Keyboard", "Chamber", "Orchestral", "Choral",
                    "Vocal-Orchestral")

#: NotaGen's prompt list, shipped as package data (see ``assets/README.md``).
PROMPTS_FILE = Path(__file__).parent / "assets" / "notagen_prompts.txt"

#: Other spellings users write for NotaGen's instrumentations (folder names, label CSVs,
#: hand-written prompt lines). Keys are compared after :func:`_key` (letters only), so
#: "ArtSong", "Art song" and "art_song" are one key. Deliberately narrow: an ensemble that
#: NotaGen could file under two labels (e.g. "String Quartet" is Chamber, but "Organ" may
#: be Keyboard or accompany a choir) is left out, so it stays unknown rather than guessed.
INSTRUMENTATION_SYNONYMS = {
    "Art Song": ("art song", "art songs", "song", "songs", "lied", "lieder", "melodie",
                 "voice and piano", "voice piano"),
    "Keyboard": ("keyboard", "keyboards", "piano", "solo piano", "piano solo",
                 "harpsichord", "solo keyboard"),
    "Chamber": ("chamber", "chamber music", "chamber ensemble"),
    "Orchestral": ("orchestral", "orchestra", "orchestral music", "full orchestra"),
    "Choral": ("choral", "choir", "chorus", "chorale", "chorales", "choral music"),
    "Vocal-Orchestral": ("vocal orchestral", "voice and orchestra", "vocal and orchestral",
                         "orchestra and voice", "orchestral vocal"),
}


@dataclass(frozen=True)
class Prompt:
    """One NotaGen prompt: the three labels it conditions on."""

    period: str
    composer: str
    instrumentation: str


def _ascii_fold(text: str) -> str:
    text = unicodedata.normalize("NFKD", str(text))
    return "".join(c for c in text if not unicodedata.combining(c))


def _fold(text: str) -> str:
    """Lower-case ASCII letters only: 'Dvořák, Antonín' -> 'dvorak antonin'."""
    return re.sub(r"[^a-z]+", " ", _ascii_fold(text).lower()).strip()


def _key(text: str) -> str:
    """Letters only, German digraphs reduced: 'Schröter' == 'Schroeter' == 'schroter'.

    The reduction is applied to both sides of every comparison, so names that contain
    "ae", "oe" or "ue" anyway (Saint-Saens) still equal themselves.
    """
    letters = _fold(text).replace(" ", "")
    return re.sub(r"([aou])e", r"\1", letters)


#: The spelling MusicBrain's labels use where NotaGen's list drops a name's accents but the
#: built-in reference corpus (and so the shipped model's taxonomy) writes them: one person,
#: one label, whichever source a data set came from (a merge would otherwise hold two
#: composer labels for Chopin).
PREFERRED_SPELLINGS = {"Chopin, Frederic": "Chopin, Frédéric"}


def load_prompts(path: str | Path = PROMPTS_FILE) -> tuple[Prompt, ...]:
    """NotaGen's prompt list: one ``Period_Surname, Given names_Instrumentation`` a line
    (composers in :data:`PREFERRED_SPELLINGS` take MusicBrain's spelling).

    Raises :class:`DatasetError` naming the line when one is malformed or uses a period or
    instrumentation outside NotaGen's vocabularies.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read the prompt list {str(path)!r}: {exc}") from exc
    prompts = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        parts = line.strip().split("_")
        if len(parts) != 3 or parts[0] not in PERIODS or parts[2] not in INSTRUMENTATIONS \
                or "," not in parts[1]:
            raise DatasetError(f"{str(path)!r} line {n}: {line!r} is not "
                               "'Period_Surname, Given names_Instrumentation'")
        period, composer, instrumentation = parts
        prompts.append(Prompt(period, PREFERRED_SPELLINGS.get(composer, composer),
                              instrumentation))
    return tuple(prompts)


NOTAGEN_PROMPTS = load_prompts()
#: Every composer of NotaGen's prompt list -> its period there. NotaGen's grouping:
#: Beethoven is Classical; Schubert, Faure, Dvorak, Brahms, Ravel (and Bartok, Prokofiev,
#: Shostakovich) are Romantic, as NotaGen has no 20th-century period.
NOTAGEN_COMPOSERS = {p.composer: p.period for p in NOTAGEN_PROMPTS}
#: Canonical composer -> period, for every composer MusicBrain's adapters know: NotaGen's
#: list plus the MusicNet composers it lacks (Cambini) and Clementi.
COMPOSER_PERIODS = {
    **NOTAGEN_COMPOSERS,
    "Cambini, Giuseppe Maria": "Classical",
    "Clementi, Muzio": "Classical",
}


# --- composers ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ComposerMatch:
    """What a written composer name resolves to.

    ``status``: ``"matched"`` (``name`` is the canonical form), ``"ambiguous"`` (a bare
    surname, or a name that fits several known composers: ``candidates``) or ``"unknown"``
    (no known composer has these given names; ``candidates`` lists known composers with
    the same surname, who are *not* this person). ``written`` is the name as given,
    whitespace-normalised.
    """

    written: str
    status: str
    name: str | None = None
    candidates: tuple[str, ...] = ()
    #: matched on initials for some given name ('F. Mendelssohn', 'J. S. Bach'): a reading,
    #: not a spelling of the name, so a build lists it for a person to check
    by_initials: bool = False


def _words(text: str, *, initials: bool = True) -> list[str]:
    """Folded words of a name, splitting 'BachJohannSebastian' and (``initials``) initials
    'JS', 'C.P.E.'."""
    text = _ascii_fold(text)
    text = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", text)           # camelCase joins
    out = []
    for w in re.split(r"[^A-Za-z]+", text):
        if not w:
            continue
        if initials and w.isupper() and 2 <= len(w) <= 3:       # 'JS Bach', 'CPE Bach'
            out.extend(w.lower())
        else:
            out.append(w.lower())
    return out


def _given_agree(written: list[str], known: list[str]) -> bool:
    """Same number of given names, each equal or its initial ('j s' == 'johann sebastian')."""
    if len(written) != len(known):
        return False
    for w, k in zip(written, known):
        if len(w) == 1:
            if w != k[:1]:
                return False
        elif _key(w) != _key(k):
            return False
    return True


@lru_cache(maxsize=8)
def _index(composers: tuple[str, ...]) -> tuple[tuple[str, str, tuple[str, ...]], ...]:
    """(canonical, surname key, given words) for each 'Surname, Given names'."""
    out = []
    for name in composers:
        surname, _, given = name.partition(",")
        out.append((name, _key(surname), tuple(_words(given))))
    return tuple(out)


def resolve_composer(name: str, *, composers=None, by_surname: bool = False) -> ComposerMatch:
    """Resolve a written composer name against known composers (default: every composer of
    :data:`COMPOSER_PERIODS`).

    Matched only when surname and given names agree: "Bach, Johann Sebastian",
    "Johann Sebastian Bach", "BachJohannSebastian", "Bach_Johann_Sebastian" and "J. S. Bach"
    all give "Bach, Johann Sebastian"; "C. P. E. Bach", "Mozart, Leopold" and
    "Schumann, Clara" do not give another person. A bare surname is ``ambiguous`` unless
    ``by_surname`` is set and exactly one known composer has it: set it only for a source
    known to name one composer per surname (MusicNet's metadata writes "Bach", "Mozart").
    """
    written = " ".join(str(name).split())
    if not written:
        return ComposerMatch("", "unknown")
    index = _index(tuple(COMPOSER_PERIODS if composers is None else composers))
    # In a name written all in capitals a short word may be initials ('JS BACH') or a word
    # ('LUDWIG VAN'): both readings are tried, and a name still matches only one person.
    readings = (True, False) if not any(c.islower() for c in written) else (True,)
    splits = []
    for initials in readings:
        if "," in written:
            head, _, tail = written.partition(",")
            splits.append((_key(head), _words(tail, initials=initials)))
            continue
        words = _words(written, initials=initials)
        # every cut into surname + given names, in either order ('Franz Liszt', 'Liszt Franz')
        for i in range(1, len(words) + 1):
            splits.append((_key("".join(words[:i])), words[i:]))        # surname first
            if i < len(words):
                splits.append((_key("".join(words[i:])), words[:i]))    # given names first
    agree = [(c, g) for c, sk, gw in index for s, g in splits
             if g and s == sk and _given_agree(g, list(gw))]
    matched = sorted({c for c, _ in agree})
    spelled = {c for c, g in agree if all(len(w) > 1 for w in g)}   # no initial needed
    if not matched and "," not in written:
        # all lower case, no separators: 'bachjohannsebastian' / 'johannsebastianbach'
        flat = _key(written)
        matched = sorted({c for c, sk, gw in index
                          if flat in (sk + _key("".join(gw)), _key("".join(gw)) + sk)})
    if len(matched) == 1:
        return ComposerMatch(written, "matched", matched[0],
                             by_initials=bool(agree) and matched[0] not in spelled)
    if matched:
        return ComposerMatch(written, "ambiguous", None, tuple(matched))
    # a bare surname ('Mozart', 'Bach,') names a family, not a person
    bare = tuple(sorted({c for c, sk, _ in index for s, g in splits if not g and s == sk}))
    if bare:
        if by_surname and len(bare) == 1:
            return ComposerMatch(written, "matched", bare[0])
        return ComposerMatch(written, "ambiguous", None, bare)
    same_surname = tuple(sorted({c for c, sk, _ in index for s, _ in splits if s == sk}))
    return ComposerMatch(written, "unknown", None, same_surname)


def canonical_composer(name: str, *, by_surname: bool = False) -> str:
    """The canonical "Surname, Given names" of a known composer, else the name as written.

    Strict by default (:func:`resolve_composer`): 'J. S. Bach' and 'Johann Sebastian Bach'
    give 'Bach, Johann Sebastian'; 'Bach', 'C. P. E. Bach' and 'Mozart, Leopold' come back
    as written (whitespace normalised). ``by_surname=True`` also resolves a bare surname
    that exactly one known composer has ('Mozart' -> 'Mozart, Wolfgang Amadeus'): only
    for sources that name one composer per surname.
    """
    match = resolve_composer(name, by_surname=by_surname)
    return match.name if match.status == "matched" else match.written


# --- periods and instrumentations -----------------------------------------------------------


def canonical_period(name: str) -> str | None:
    folded = _fold(name)
    for p in PERIODS:
        if _fold(p) == folded:
            return p
    return None


_INSTRUMENTATION_BY_KEY = {_key(s): label for label, spellings in
                           INSTRUMENTATION_SYNONYMS.items() for s in (label, *spellings)}


def canonical_instrumentation(name: str) -> str | None:
    """NotaGen's instrumentation for a spelling of it or a synonym ('Orchestra' ->
    'Orchestral', 'ArtSong' / 'Lieder' -> 'Art Song'); None when it names none."""
    return _INSTRUMENTATION_BY_KEY.get(_key(name)) if _key(name) else None


def style_taxonomy(*, generators=(), composers=()) -> Taxonomy:
    """The standard five-group taxonomy with the given generators and composers.

    Period and instrumentation always hold NotaGen's full vocabularies, so that data sets
    built from different sources merge without reordering those outputs.
    """
    groups = [("source", ("human", "ai"), True)]
    if generators:
        groups.append(("generator", tuple(dict.fromkeys(generators)), True))
    groups.append(("period", PERIODS, True))
    if composers:
        groups.append(("composer", tuple(dict.fromkeys(composers)), True))
    groups.append(("instrumentation", INSTRUMENTATIONS, True))
    return Taxonomy.from_groups(groups)
