"""Finding the client's shared data beside a checkout (``../shared/data/...``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

#: The repository root holding this package (a source checkout or a worktree).
REPO = Path(__file__).resolve().parents[2]


def find_shared(tail: str | os.PathLike, holds: Callable[[Path], bool], *,
                cwd: str | os.PathLike | None = None) -> Path | None:
    """The first ``<folder>/<tail>`` for which ``holds`` is true, looking in each folder
    above the working folder, then above the repository root (a checkout at ``/work/main``
    finds ``/work/shared/...``, i.e. ``../shared/...``; a worktree one level deeper finds
    the same); ``None`` when there is none."""
    start = Path(cwd) if cwd is not None else Path.cwd()
    for base in (start.resolve(), REPO):
        for folder in base.parents:
            candidate = folder / tail
            if holds(candidate):
                return candidate
    return None
