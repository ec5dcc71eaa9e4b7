"""musicbrain_cli.model.card: the one reader and writer of model_card.json."""

import json

import pytest

from musicbrain_cli.errors import ConfigError, ModelLoadError
from musicbrain_cli.files import json_text
from musicbrain_cli.model.card import (CARD_FILE, default_card, read_card, update_card,
                                       write_card)


def test_write_then_read_round_trips_as_stable_json(tmp_path):
    card = {**default_card(), "name": "x", "thresholds": {"detection": 0.6}}
    write_card(tmp_path, card)
    assert read_card(tmp_path) == card
    assert (tmp_path / CARD_FILE).read_text() == json_text(card)
    assert [p.name for p in tmp_path.iterdir()] == [CARD_FILE]


def test_update_card_replaces_and_removes_sections_only(tmp_path):
    card = {**default_card(), "robustness": [{"key": "original"}], "ood": {"threshold": 3.0}}
    write_card(tmp_path, card)
    new = update_card(tmp_path, robustness=None, verdict={"threshold": 0.7, "band": 0.1})
    assert "robustness" not in new and new["verdict"] == {"threshold": 0.7, "band": 0.1}
    assert new["ood"] == {"threshold": 3.0} and new["name"] == card["name"]
    assert read_card(tmp_path) == new


def test_an_invalid_card_is_refused_and_the_old_one_kept(tmp_path):
    write_card(tmp_path, default_card())
    before = (tmp_path / CARD_FILE).read_bytes()
    with pytest.raises(ModelLoadError, match="detection"):
        update_card(tmp_path, thresholds={"piano": 0.4})
    with pytest.raises(ConfigError, match="temperature"):
        write_card(tmp_path, {**default_card(), "calibration": {"temperature": 0}},
                   error=ConfigError)
    with pytest.raises(ModelLoadError, match="not plain JSON"):
        write_card(tmp_path, {**default_card(), "metrics": {"ap": object()}})
    assert (tmp_path / CARD_FILE).read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [CARD_FILE]


def test_read_card_names_the_file(tmp_path):
    with pytest.raises(ModelLoadError, match=CARD_FILE):
        read_card(tmp_path)
    (tmp_path / CARD_FILE).write_text("{not json")
    with pytest.raises(ModelLoadError, match=CARD_FILE):
        read_card(tmp_path)
    (tmp_path / CARD_FILE).write_text(json.dumps({"name": "x"}))
    with pytest.raises(ModelLoadError, match="lacks"):
        read_card(tmp_path)
