"""Intake, the first stage: path -> mono float32 at the model rate, plus per-file facts.

Modules: :mod:`.intake` (probe, stream, windows, ``load_audio``: what callers use),
:mod:`.decode` (the PyAV decoding core and its limits), :mod:`.worker` (the decoder child,
``python -m musicbrain_cli.audio.worker``), :mod:`.metadata` (tags, C2PA store detection),
:mod:`.provenance` (C2PA manifests read and validated, in a child of its own) and
:mod:`.encode` (writing audio, for fixtures and rendered data; not on the forensic path).

Deliberately empty: the decoder and C2PA children import this package before their own
module, so it must cost nothing (no NumPy, PyAV or torch here).
"""
