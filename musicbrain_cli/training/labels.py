"""Canonical style labels shared by every adapter (NotaGen's taxonomy).

NotaGen (Wang et al. 2025, "NotaGen: Advancing Musicality in Symbolic Music Generation
with Large Language Model Training Paradigms", sec. 4.1) conditions on a period, a composer
and an instrumentation. MusicBrain uses the same three vocabularies so that a human piece
and a generated one with the same labels mean the same thing:

- periods: Baroque, Classical, Romantic;
- instrumentations: Art Song, Keyboard, Chamber, Orchestral, Choral, Vocal-Orchestral;
- composers: NotaGen's "Surname, Given names" form ("Bach, Johann Sebastian"), ASCII
  (its prompt list writes "Dvorak, Antonin", "Faure, Gabriel").

:func:`canonical_composer` folds accents, case, word order and common short forms onto
that form; a name it does not know is kept as given (whitespace normalised).
"""

from __future__ import annotations

import re
import unicodedata

from musicbrain_cli.taxonomy import Taxonomy

PERIODS = ("Baroque", "Classical", "Romantic")
INSTRUMENTATIONS = ("Art Song", "Keyboard", "Chamber", "Orchestral", "Choral",
                    "Vocal-Orchestral")

#: Canonical composer -> period, for the composers MusicBrain's adapters know. Periods
#: follow NotaGen's grouping: Beethoven is Classical there; Schubert, Faure, Dvorak,
#: Brahms and Ravel are Romantic (NotaGen has no 20th-century period, and Ravel's
#: MusicNet works, the Piano Trio and String Quartet, are late-Romantic in idiom).
COMPOSER_PERIODS = {
    "Bach, Johann Sebastian": "Baroque",
    "Handel, George Frideric": "Baroque",
    "Vivaldi, Antonio": "Baroque",
    "Scarlatti, Domenico": "Baroque",
    "Haydn, Joseph": "Classical",
    "Mozart, Wolfgang Amadeus": "Classical",
    "Beethoven, Ludwig van": "Classical",
    "Cambini, Giuseppe Maria": "Classical",
    "Clementi, Muzio": "Classical",
    "Schubert, Franz": "Romantic",
    "Brahms, Johannes": "Romantic",
    "Dvorak, Antonin": "Romantic",
    "Faure, Gabriel": "Romantic",
    "Ravel, Maurice": "Romantic",
    "Chopin, Frederic": "Romantic",
    "Schumann, Robert": "Romantic",
    "Mendelssohn, Felix": "Romantic",
    "Liszt, Franz": "Romantic",
    "Tchaikovsky, Pyotr": "Romantic",
    "Debussy, Claude": "Romantic",
}


def _fold(text: str) -> str:
    """Lower-case ASCII letters only: 'Dvořák, Antonín' -> 'dvorak antonin'."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c))
    return re.sub(r"[^a-z]+", " ", text.lower()).strip()


_BY_SURNAME = {_fold(name.split(",")[0]): name for name in COMPOSER_PERIODS}


def canonical_composer(name: str) -> str:
    """Map a composer name onto the canonical "Surname, Given names" form.

    'Bach', 'J. S. Bach', 'Johann Sebastian Bach', 'bach, johann sebastian' all give
    'Bach, Johann Sebastian'. Unknown names come back whitespace-normalised, unchanged.
    """
    clean = " ".join(str(name).split())
    if not clean:
        return ""
    folded = _fold(clean)
    if "," in clean:
        surname = _fold(clean.split(",")[0])
    else:
        words = folded.split()
        surname = words[-1] if words else ""
    if surname in _BY_SURNAME:
        return _BY_SURNAME[surname]
    # "van Beethoven" / "Ludwig van Beethoven": try every word as the surname
    for word in folded.split():
        if word in _BY_SURNAME and len(word) > 3:
            return _BY_SURNAME[word]
    return clean


def canonical_period(name: str) -> str | None:
    folded = _fold(name)
    for p in PERIODS:
        if _fold(p) == folded:
            return p
    return None


def canonical_instrumentation(name: str) -> str | None:
    folded = _fold(name)
    for i in INSTRUMENTATIONS:
        if _fold(i) == folded:
            return i
    return None


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
