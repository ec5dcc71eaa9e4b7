"""Review of ``musicbrain evaluate`` and the model card (session 46): each test failed on the
code before its fix."""

from __future__ import annotations

import json

import numpy as np
import pytest

SR = 22050


def test_evaluating_the_data_set_a_model_was_finalized_on_says_what_was_chosen_there():
    """A model finalized on a data set other than its network's training data (refit-heads
    with --detection or --add-labels) has its heads, calibration and operating point fitted
    on that data set's train and val splits. Evaluating its val split gave the caution for
    "another data set" only, never that the false-positive rate there meets the target by
    construction; and evaluating the network's own test split gave no caution at all,
    though the card itself says those test works may be among the works the heads were
    re-fitted on."""
    from musicbrain_cli.evaluate.split import training_overlap

    net, fin = "a" * 64, "b" * 64
    for card in ({"training_data": {"manifest_sha256": net},
                  "finalized_on": {"data_set": "/d2", "manifest_sha256": fin}},
                 {"training_data": {"manifest_sha256": net,
                                    "finalized_on_other_data": {"data_set": "/d2",
                                                                "manifest_sha256": fin}}}):
        val = training_overlap("val", fin, card)
        assert val is not None and "operating point" in val and "by construction" in val
        assert "not test figures" in training_overlap("train", fin, card)
        test_of_net = training_overlap("test", net, card)
        assert test_of_net is not None and fin[:16] in test_of_net
        assert training_overlap("test", fin, card) is not None    # the network's other data
    # a model finalized on its own training data: as before
    own = {"training_data": {"manifest_sha256": net}}
    assert training_overlap("test", net, own) is None
    assert "by construction" in training_overlap("val", net, own)

