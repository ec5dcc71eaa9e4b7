"""Measurement: the detector and its explanations on a data set, and under attack.

Modules: :mod:`.split` (``musicbrain evaluate``: classification, detection rates,
explanation fidelity and alignment on a data set split) and :mod:`.robustness` (the same
verdict rule after re-encoding, resampling, noise, pitch/tempo edits, excerpts and an unseen
SoundFont). Like ``scan``, this package drives the stages below it; the metrics they share
with training live in :mod:`musicbrain_cli.metrics`.
"""
