"""Training and evaluation data: sources, renderers and the data set format.

The stage before training (issue 25: ``training/`` had mixed data-set building with
training). Modules: :mod:`.dataset` (the on-disk data set format: writer, reader, splits by
work), :mod:`.cache` (front-end features as memory-mapped shards), :mod:`.labels` (the style
taxonomy, NotaGen's prompt list, composer identity), :mod:`.musicnet` and :mod:`.notagen`
(the client's sources), :mod:`.abc` and :mod:`.render` (ABC text, scores to MIDI, FluidSynth
rendering), :mod:`.pieces` (pieces cut into clips), :mod:`.merge` (data sets merged), and
:mod:`.reference` (the built-in reference corpus). Nothing here imports
:mod:`musicbrain_cli.training`.
"""
