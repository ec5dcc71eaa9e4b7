import json

import numpy as np
import pytest

from musicbrain_cli.errors import TaxonomyError
from musicbrain_cli.taxonomy import Taxonomy


@pytest.fixture
def tax():
    return Taxonomy.from_groups([
        ("source", ["human", "ai"], True),
        ("generator", ["g-small", "g-large"], True),
        ("instrumentation", ["Keyboard", "Chamber", "Choral"], False),
    ])


def test_flat_order_and_slices(tax):
    assert tax.labels[:2] == ["source/human", "source/ai"]
    assert tax.num_labels == 7
    assert tax.group_slices()["instrumentation"] == slice(4, 7)
    assert tax.index("source/ai") == 1


def test_encode_unknown_is_masked_not_negative(tax):
    t, m = tax.encode({"source": "human", "generator": "", "instrumentation": "Keyboard;Choral"})
    np.testing.assert_array_equal(t, [1, 0, 0, 0, 1, 0, 1])
    np.testing.assert_array_equal(m, [1, 1, 0, 0, 1, 1, 1])


def test_encode_none_is_known_negative(tax):
    t, m = tax.encode({"source": "human", "generator": "-"})
    np.testing.assert_array_equal(t[2:4], [0, 0])
    np.testing.assert_array_equal(m[2:4], [1, 1])
    np.testing.assert_array_equal(m[4:], [0, 0, 0])  # missing column: unknown


def test_encode_rejects_bad_cells(tax):
    with pytest.raises(TaxonomyError, match="exclusive"):
        tax.encode({"source": "human;ai"})
    with pytest.raises(TaxonomyError, match="'robot'"):
        tax.encode({"source": "robot"})


def test_source_group_must_be_human_ai():
    with pytest.raises(TaxonomyError):
        Taxonomy.from_groups([("source", ["human", "machine"], True)])


def test_round_trip_and_merge(tmp_path, tax):
    p = tmp_path / "taxonomy.json"
    tax.save(p)
    assert Taxonomy.load(p) == tax
    other = Taxonomy.from_groups([("generator", ["g-large", "g-audio"], True),
                                  ("period", ["Baroque"], True)])
    merged = tax.merge(other)
    assert merged.group("generator").labels == ("g-small", "g-large", "g-audio")
    assert merged.group_names == ["source", "generator", "instrumentation", "period"]


def test_malformed_file_is_a_typed_error(tmp_path):
    p = tmp_path / "t.json"
    p.write_text(json.dumps({"groups": [{"labels": ["a"]}]}))
    with pytest.raises(TaxonomyError, match="malformed"):
        Taxonomy.load(p)
    p.write_text("{not json")
    with pytest.raises(TaxonomyError, match="cannot read"):
        Taxonomy.load(p)
