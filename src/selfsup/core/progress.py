"""A rich progress bar for training and embedding: loss, items per second and ETA.

Example:
    >>> with TrainingProgress(total=3, description="demo", enabled=False) as bar:
    ...     rate = bar.advance(1, items=256, loss=0.5)  # items per second so far
"""

from __future__ import annotations

import time
from types import TracebackType

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class TrainingProgress:
    """A progress bar over steps that shows the latest loss and the item throughput.

    Args:
        total: number of steps expected (may be updated with ``set_total``).
        description: the label on the left.
        enabled: draw the bar (False on non-zero ranks).
        completed: steps already done (when resuming).
    """

    def __init__(
        self, total: int, description: str, enabled: bool = True, completed: int = 0
    ) -> None:
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            disable=not enabled,
        )
        self._task = self._progress.add_task(
            description, total=total, completed=completed, stats=""
        )
        self._start = time.perf_counter()
        self._items = 0

    def __enter__(self) -> TrainingProgress:
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def set_total(self, total: int) -> None:
        """Change the expected number of steps (time-budgeted runs refine it as they go)."""
        self._progress.update(self._task, total=total)

    def note(self, text: str) -> None:
        """Print a line above the bar (also visible in logs, where the bar is not drawn)."""
        if not self._progress.disable:
            self._progress.console.print(text)

    def advance(self, steps: int, items: int, loss: float | None = None) -> float:
        """Advance by ``steps`` that consumed ``items`` items; return items per second so far."""
        self._items += items
        rate = self._items / max(time.perf_counter() - self._start, 1e-9)
        stats = f"{rate:,.0f} items/s"
        if loss is not None:
            stats = f"loss {loss:.4f}  " + stats
        self._progress.update(self._task, advance=steps, stats=stats)
        return rate
