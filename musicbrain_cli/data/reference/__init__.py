"""The built-in reference corpus: real composers' scores vs machine-made music (issue #5).

Modules, in data-flow order: :mod:`.scores` (music21 corpus -> labelled note events),
:mod:`.tokens` (events <-> token sequences, events -> MIDI), :mod:`.symbolic` (the
conditioned transformer generators), :mod:`.codec` (the neural audio autoencoder),
:mod:`.build` (:func:`build_reference`). Trained weights ship in ``assets/``; see
``docs/reference-corpus.md`` for the corpus card.
"""

from musicbrain_cli.data.reference.build import SIZES, build_reference, train_generators

__all__ = ["SIZES", "build_reference", "train_generators"]
