"""Style labels: NotaGen's prompt list, composer identity, instrumentation synonyms."""

import pytest

from musicbrain_cli.errors import DatasetError
from musicbrain_cli.data.labels import (COMPOSER_PERIODS, INSTRUMENTATIONS, NOTAGEN_COMPOSERS,
                                            NOTAGEN_PROMPTS, PERIODS, PROMPTS_FILE,
                                            canonical_composer, canonical_instrumentation,
                                            load_prompts, resolve_composer, style_taxonomy)


def test_prompt_list_ships_with_the_package_and_names_each_composer_once():
    assert PROMPTS_FILE.is_file() and "musicbrain_cli" in PROMPTS_FILE.parts
    assert len(NOTAGEN_PROMPTS) == 112
    assert {p.period for p in NOTAGEN_PROMPTS} == set(PERIODS)
    assert {p.instrumentation for p in NOTAGEN_PROMPTS} == set(INSTRUMENTATIONS)
    # a composer has one period in NotaGen's list
    for p in NOTAGEN_PROMPTS:
        assert NOTAGEN_COMPOSERS[p.composer] == p.period
    assert NOTAGEN_COMPOSERS["Schumann, Clara"] == NOTAGEN_COMPOSERS["Schumann, Robert"] \
        == "Romantic"
    assert NOTAGEN_COMPOSERS["Beethoven, Ludwig van"] == "Classical"
    assert set(NOTAGEN_COMPOSERS) <= set(COMPOSER_PERIODS)
    # every composer of the list resolves to itself, and in "Given Surname" order too
    for name in NOTAGEN_COMPOSERS:
        assert resolve_composer(name).name == name
        surname, given = name.split(", ")
        assert resolve_composer(f"{given} {surname}").name == name, name


def test_malformed_prompt_list_names_the_line(tmp_path):
    f = tmp_path / "prompts.txt"
    f.write_text("Baroque_Bach, Johann Sebastian_Keyboard\nBaroque_Bach_Keyboard_extra\n")
    with pytest.raises(DatasetError, match="line 2"):
        load_prompts(f)
    f.write_text("Medieval_Ciconia, Johannes_Choral\n")
    with pytest.raises(DatasetError, match="Medieval"):
        load_prompts(f)


@pytest.mark.parametrize("written", [
    "Bach, Johann Sebastian", "Johann Sebastian Bach", "BachJohannSebastian",
    "Bach_Johann_Sebastian", "bach johann sebastian", "J. S. Bach", "JS Bach", "Bach, J.S.",
    "bachjohannsebastian",
])
def test_one_person_in_every_spelling(written):
    m = resolve_composer(written)
    assert (m.status, m.name) == ("matched", "Bach, Johann Sebastian")


@pytest.mark.parametrize("written, name", [
    ("Dvořák, Antonín", "Dvorak, Antonin"), ("Camille Saint-Saëns", "Saint-Saens, Camille"),
    ("Schroeter, Corona", "Schroter, Corona"), ("Ludwig van Beethoven", "Beethoven, Ludwig van"),
    ("Chopin, Frederic", "Chopin, Frédéric"), ("W. A. Mozart", "Mozart, Wolfgang Amadeus"),
    ("Robert Franz", "Franz, Robert"), ("Franz Liszt", "Liszt, Franz"),
    ("SchubertFranz", "Schubert, Franz"),
])
def test_accents_order_and_initials_are_folded(written, name):
    assert resolve_composer(written).name == name


def test_family_members_are_never_merged():
    """Issue 21: 'Mozart, Leopold' became W. A. Mozart and 'Schumann, Clara' Robert."""
    wolfgang = resolve_composer("Mozart, Wolfgang Amadeus")
    leopold = resolve_composer("Mozart, Leopold")
    assert wolfgang.name == "Mozart, Wolfgang Amadeus"
    assert leopold.status == "unknown" and leopold.name is None
    assert leopold.candidates == ("Mozart, Wolfgang Amadeus",)  # reported as "not him"
    for written in ("Leopold Mozart", "L. Mozart"):
        assert resolve_composer(written).status == "unknown"
    assert canonical_composer("Mozart, Leopold") == "Mozart, Leopold"  # kept as written

    clara, robert = resolve_composer("Clara Schumann"), resolve_composer("Schumann, Robert")
    assert (clara.name, robert.name) == ("Schumann, Clara", "Schumann, Robert")
    assert resolve_composer("SchumannClara").name == "Schumann, Clara"
    # Clara Faisst is another Clara: the given name alone names no one
    assert resolve_composer("Clara").status == "unknown"

    for written in ("C. P. E. Bach", "CPE Bach", "Bach, Carl Philipp Emanuel", "Johann Bach"):
        m = resolve_composer(written)
        assert m.status == "unknown" and m.name is None, written
        assert canonical_composer(written) == written
    assert resolve_composer("J. S. Bach").name == "Bach, Johann Sebastian"
    assert resolve_composer("Pyotr Ilyich Tchaikovsky").status == "unknown"  # extra given name


def test_bare_surnames_are_ambiguous_unless_the_source_opts_in():
    schumann = resolve_composer("Schumann")
    assert schumann.status == "ambiguous"
    assert schumann.candidates == ("Schumann, Clara", "Schumann, Robert")
    assert resolve_composer("Schumann", by_surname=True).status == "ambiguous"  # two of them
    for bare in ("Mozart", "Bach", "Bach,"):
        assert resolve_composer(bare).status == "ambiguous"
        assert canonical_composer(bare) == bare
    # MusicNet's metadata writes its ten composers by surname (data/musicnet.py opts in)
    musicnet = {"Bach": "Bach, Johann Sebastian", "Beethoven": "Beethoven, Ludwig van",
                "Brahms": "Brahms, Johannes", "Cambini": "Cambini, Giuseppe Maria",
                "Dvorak": "Dvorak, Antonin", "Faure": "Faure, Gabriel", "Haydn": "Haydn, Joseph",
                "Mozart": "Mozart, Wolfgang Amadeus", "Ravel": "Ravel, Maurice",
                "Schubert": "Schubert, Franz"}
    for bare, name in musicnet.items():
        assert canonical_composer(bare, by_surname=True) == name
    # the opt-in resolves surnames only, never a wrong given name
    assert canonical_composer("Mozart, Leopold", by_surname=True) == "Mozart, Leopold"


@pytest.mark.parametrize("written, label", [
    ("Orchestra", "Orchestral"), ("orchestral", "Orchestral"), ("ArtSong", "Art Song"),
    ("Art song", "Art Song"), ("art_song", "Art Song"), ("Lieder", "Art Song"),
    ("Lied", "Art Song"), ("Piano", "Keyboard"), ("Choir", "Choral"), ("Chorus", "Choral"),
    ("Chamber music", "Chamber"), ("VocalOrchestral", "Vocal-Orchestral"),
    ("Vocal-Orchestral", "Vocal-Orchestral"),
])
def test_instrumentation_synonyms(written, label):
    assert canonical_instrumentation(written) == label


def test_unclear_ensembles_stay_unknown():
    for written in ("Organ", "String Quartet", "Baroque", "", "Mixed"):
        assert canonical_instrumentation(written) is None


def test_taxonomy_takes_composers_only_from_a_data_set():
    assert "composer" not in [g.name for g in style_taxonomy(generators=("g",)).groups]
    tax = style_taxonomy(composers=("Schumann, Clara", "Schumann, Robert"))
    assert tax.group("composer").labels == ("Schumann, Clara", "Schumann, Robert")


def test_chopin_is_one_label_whichever_source_names_him():
    """NotaGen's list writes 'Chopin, Frederic', the reference corpus (and the shipped
    model's taxonomy) 'Chopin, Frédéric': a merged data set must not hold two labels."""
    from musicbrain_cli.data.labels import NOTAGEN_COMPOSERS, canonical_composer
    from musicbrain_cli.data.reference import scores as sc

    reference = [c for c in sc.label_values()["composer"] if c.startswith("Chopin")]
    assert reference == ["Chopin, Frédéric"]
    assert "Chopin, Frédéric" in NOTAGEN_COMPOSERS and "Chopin, Frederic" not in NOTAGEN_COMPOSERS
    for written in ("Chopin, Frederic", "ChopinFrederic", "Frédéric Chopin"):
        assert canonical_composer(written) == reference[0]


@pytest.mark.parametrize("written, status, name", [
    ("BEETHOVEN, LUDWIG VAN", "matched", "Beethoven, Ludwig van"),
    ("LUDWIG VAN BEETHOVEN", "matched", "Beethoven, Ludwig van"),
    ("JS BACH", "matched", "Bach, Johann Sebastian"),
    ("BACH, JOHANN SEBASTIAN", "matched", "Bach, Johann Sebastian"),
    ("CPE BACH", "unknown", None),
    ("MOZART, LEOPOLD", "unknown", None),
    ("SCHUMANN", "ambiguous", None),
])
def test_a_name_in_capitals_is_read_both_ways_and_still_names_one_person(written, status, name):
    """'LUDWIG VAN' was read as the initials L. V. A. N. and refused: in a name written all in
    capitals a short word may be a word or initials, so both readings are tried."""
    m = resolve_composer(written)
    assert (m.status, m.name) == (status, name)
