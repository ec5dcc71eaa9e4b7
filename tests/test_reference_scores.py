"""music21 corpus -> labelled works: collections, labels, extraction, cache."""

import json

import pytest

from musicbrain_cli.errors import DatasetError
from musicbrain_cli.data.reference import scores as sc


def _coll(name):
    return next(c for c in sc.COLLECTIONS if c.name == name)


def test_collections_are_consistent_and_canonical():
    sc.check_collections()
    for c in sc.COLLECTIONS:
        assert c.composer in ("", "-") or ", " in c.composer or c.composer == "Josquin des Prez"
        assert sc.collection_files(c), f"collection {c.name} matches no corpus file"
    bad = sc.Collection("x", ("bach/*.mxl",), "Baroque", "-", "Bagpipes")
    with pytest.raises(DatasetError, match="Bagpipes"):
        sc.check_collections([bad])


def test_label_values_follow_notagen_order():
    values = sc.label_values()
    assert values["period"] == ["Medieval", "Renaissance", "Baroque", "Classical", "Romantic",
                                "Folk"]
    assert "Bach, Johann Sebastian" in values["composer"] and "-" not in values["composer"]
    assert "Orchestral" not in values["instrumentation"]  # no orchestral score in the corpus


def test_work_groups_keep_movements_together():
    assert sc.work_group(_coll("mozart-quartets"), "mozart/k155/movement2.mxl") == "m21:mozart/k155"
    assert sc.work_group(_coll("palestrina"), "palestrina/Kyrie_31_a.krn") == \
        sc.work_group(_coll("palestrina"), "palestrina/Gloria_31_b.krn")
    assert sc.work_group(_coll("bach"), "bach/bwv10.7.mxl") == "m21:bach/bwv10.7"


def test_extraction_and_cache(tmp_path):
    bach = _coll("bach")
    rel = sc.collection_files(bach)[0]
    works = sc.load_works(bach, rel, cache_dir=tmp_path)
    assert len(works) == 1
    w = works[0]
    assert (w.period, w.composer, w.instrumentation) == ("Baroque", "Bach, Johann Sebastian",
                                                         "Choral")
    assert w.n_parts >= 4 and w.events == sorted(w.events)
    assert all(sc.PITCH_MIN <= p <= sc.PITCH_MAX and d > 0 for _, _, p, d in w.events)
    assert {part for _, part, _, _ in w.events} == set(range(w.n_parts))
    cached = list(tmp_path.glob("*.json"))
    assert len(cached) == 1
    assert json.loads(cached[0].read_text())["works"][0]["work_id"] == w.work_id
    assert sc.load_works(bach, rel, cache_dir=tmp_path)[0] == w  # served from the cache


def test_abc_book_of_voices_is_one_work(tmp_path):
    josquin = _coll("josquin")
    works = sc.load_works(josquin, "josquin/milleRegrets.abc", cache_dir=tmp_path)
    assert len(works) == 1 and works[0].n_parts == 4


def test_unparseable_file_raises_and_failure_is_cached(tmp_path):
    from musicbrain_cli.errors import RenderError

    bach = _coll("bach")
    with pytest.raises(RenderError, match="no/such/file.mxl"):
        sc.load_works(bach, "no/such/file.mxl", cache_dir=tmp_path)
    (cached,) = tmp_path.glob("*.json")
    assert "no/such/file.mxl" in json.loads(cached.read_text())["failure"]
    with pytest.raises(RenderError, match="no/such/file.mxl"):  # from the cache this time
        sc.load_works(bach, "no/such/file.mxl", cache_dir=tmp_path)


def test_max_works_takes_evenly_spaced_works():
    assert sc._evenly(list(range(10)), 5) == [0, 2, 4, 6, 8]
    assert sc._evenly([1, 2], 5) == [1, 2]
