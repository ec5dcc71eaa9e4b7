"""MusicBrain: forensic detection and explanation of AI-generated music.

Data flows one way: path -> ``audio`` -> ``features`` -> ``model`` -> ``explain`` /
``alignment`` -> ``report``. The CLI (``cli.py``) is a thin layer over these stages.
"""

__version__ = "0.3.11"
