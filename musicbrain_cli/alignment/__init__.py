"""Do explanations point at music? Notes, and the harmonic and onset checks of a saliency map.

Modules: :mod:`.overlap` (notes from a score, onsets, harmonic and onset overlap against
their chance levels) and :mod:`.pitch` (a rough multi-pitch estimate for audio without a
score). Takes maps from :mod:`musicbrain_cli.explain`; imports nothing from ``report``,
``scan`` or the CLI.
"""
