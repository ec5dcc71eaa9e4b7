"""Progress reporting without printing from library code.

Long library functions take ``progress: Progress = NULL_PROGRESS`` and wrap their loops::

    with progress.task("rendering", total=len(items)) as task:
        for item in items:
            ...
            task.advance()

The library's default does nothing. The CLI passes :class:`RichProgress`, which draws bars
with an ETA on stderr (and nothing when stderr is not a terminal and ``quiet`` is set).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator


class _NullTask:
    def advance(self, n: int = 1) -> None:
        pass

    def update_total(self, total: int | None) -> None:
        pass


class Progress:
    """A progress sink that does nothing (the library default)."""

    @contextmanager
    def task(self, description: str, total: int | None = None) -> Iterator[_NullTask]:
        yield _NullTask()


NULL_PROGRESS = Progress()


class _RichTask:
    def __init__(self, bar, task_id):
        self._bar, self._id = bar, task_id

    def advance(self, n: int = 1) -> None:
        self._bar.advance(self._id, n)

    def update_total(self, total: int | None) -> None:
        self._bar.update(self._id, total=total)


class RichProgress(Progress):
    """Progress bars with elapsed time and ETA, drawn by rich on stderr."""

    def __init__(self, *, disable: bool = False):
        self.disable = disable

    @contextmanager
    def task(self, description: str, total: int | None = None) -> Iterator[_RichTask]:
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress as _Bar,
                                   TextColumn, TimeElapsedColumn, TimeRemainingColumn)

        bar = _Bar(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                   console=Console(stderr=True), disable=self.disable, transient=False)
        with bar:
            yield _RichTask(bar, bar.add_task(description, total=total))
