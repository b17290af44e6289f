"""Progress of long work, seen the same on a terminal, in a pipe and in a log file.

On a terminal a rich bar shows the steps, the latest loss, items per second and the ETA.
When output goes to a file or a pipe (CI, ``nohup``, ``| tee``) no bar is drawn: a plain line
with the same figures is printed every ``PLAIN_EVERY`` seconds, so the output grows with the
time a job takes, not with its number of steps or epochs; a step longer than that (a huge
image to decode, a slow machine) does not silence it, a background thread keeps the lines
coming. A ``log_file`` receives the plain
lines and every note, whatever the screen shows.

Example:
    >>> with TrainingProgress(total=3, description="demo", enabled=False) as bar:
    ...     rate = bar.advance(1, items=256, loss=0.5)  # items per second so far
    >>> plain_line("simclr on photos", 30, 120, 1.2345, 250.0, 12.0, eta=36.0)
    'simclr on photos: step 30/120 (25%), loss 1.2345, 250 items/s, 0:00:12 elapsed, ETA 0:00:36'
"""

from __future__ import annotations

import contextlib
import datetime
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Literal

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

#: Seconds between two plain progress lines when output is not a terminal.
PLAIN_EVERY = 5.0
#: Seconds between two routine notes (one per epoch) on screen; the log file gets them all.
ROUTINE_EVERY = 15.0
#: Progress on screen: always, never, or ``"auto"``: once the work has taken ``AUTO_AFTER``
#: seconds, so a call that ends sooner (one text embedded in a loop) prints nothing and one
#: that takes ten minutes (a folder of photos embedded from a notebook) is not silent.
ShowProgress = bool | Literal["auto"]
AUTO_AFTER = PLAIN_EVERY


class _Displays:
    """How many progress displays run now, nested ones included (a :class:`Preparing` ticker
    stays quiet while any does). A count, not a flag: the held-out measurement's display
    inside training's must not make the ticker speak up when it ends."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0

    def enter(self) -> None:
        with self._lock:
            self._count += 1

    def leave(self) -> None:
        with self._lock:
            self._count = max(0, self._count - 1)

    def any(self) -> bool:
        with self._lock:
            return self._count > 0


_DISPLAYS = _Displays()
#: What the command does now, said by a :class:`Preparing` ticker (see :func:`activity`).
_ACTIVITY: list[str] = []
#: (seconds, text) of :func:`hint_when_longer` blocks under way, the innermost last.
_HINTS: list[tuple[float, str]] = []
#: Seconds of work before a display judges from its ETA whether to give the hint: the first
#: seconds' pace (loading, warming up) says little about the rest.
HINT_AFTER = 10.0


@contextlib.contextmanager
def activity(text: str) -> Iterator[None]:
    """Name the work done inside the block for a :class:`Preparing` ticker, whose lines then
    say it (``evaluate t.csv: linear probe on raw input, 80,000 items (35 s)``) instead of
    ``working``; the log of what a silent step is doing.

    Example:
        >>> with activity("fitting"):
        ...     _ACTIVITY[-1]
        'fitting'
    """
    _ACTIVITY.append(text)
    try:
        yield
    finally:
        _ACTIVITY.remove(text)


@contextlib.contextmanager
def hint_when_longer(seconds: float, text: str) -> Iterator[None]:
    """Have a progress display inside the block print ``text`` once, when its work will take
    more than ``seconds`` in all (judged from its ETA after ``HINT_AFTER`` seconds):
    a faster way, said while it can still save the hour. ``{eta}`` in ``text`` becomes the
    time left.

    Example:
        >>> with hint_when_longer(900, "note: {eta} to go; a distilled student is faster"):
        ...     _HINTS[-1][0]
        900
    """
    _HINTS.append((seconds, text))
    try:
        yield
    finally:
        _HINTS.remove((seconds, text))


class Preparing:
    """Lines while a command prepares (loading libraries, reading image headers, measuring
    memory) and no progress display runs: ``preparing (N s)`` every ``every`` seconds, so
    output to a pipe never goes silent for long before training starts (``working (N s)``
    once a display has run and ended, as while a run is saved).

    Example:
        >>> with Preparing(Console(file=open(os.devnull, "w")), "pretrain"):
        ...     pass
    """

    def __init__(self, console: Console, what: str, every: float = PLAIN_EVERY) -> None:
        self.console, self.what, self.every = console, what, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._tick, daemon=True)
        self._start = time.perf_counter()

    def _tick(self) -> None:
        shown = False  # a progress display has run: what follows is no longer preparation
        while not self._stop.wait(self.every):
            if _DISPLAYS.any():
                shown = True
                continue
            elapsed = time.perf_counter() - self._start
            doing = "working" if shown else "preparing"
            if _ACTIVITY:
                doing = _ACTIVITY[-1]
            self.console.print(
                f"{self.what}: {doing} ({elapsed:.0f} s)", highlight=False, markup=False
            )

    def __enter__(self) -> Preparing:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _clock(seconds: float) -> str:
    return str(datetime.timedelta(seconds=int(max(0.0, seconds))))


def plain_line(
    description: str,
    done: int,
    total: int | None,
    loss: float | None,
    rate: float,
    elapsed: float,
    eta: float | None = None,
) -> str:
    """One progress line for a file or a pipe: steps, loss, rate, elapsed time and ETA."""
    if total and total < 10**9:
        where = f"step {done}/{total} ({100 * done / total:.0f}%)"
    else:
        eta, where = None, f"step {done}"
    parts = [where]
    if loss is not None:
        parts.append(f"loss {loss:.4f}")
    parts += [f"{rate:,.0f} items/s", f"{_clock(elapsed)} elapsed"]
    if eta is not None:
        parts.append(f"ETA {_clock(eta)}")
    return f"{description}: " + ", ".join(parts)


class TrainingProgress:
    """Progress over steps with the latest loss and the item throughput.

    Args:
        total: number of steps expected (may be updated with ``set_total``).
        description: the label on the left.
        enabled: show progress on screen (False on non-zero ranks and in quiet runs;
            ``"auto"``: from ``AUTO_AFTER`` seconds on, nothing for shorter work).
        completed: steps already done (when resuming).
        log_file: a file that gets the plain progress lines and every note (appended).
        console: where to print; by default standard output. A bar is drawn only when it is
            a terminal; otherwise plain lines every ``plain_every`` seconds.
        plain_every: seconds between plain lines (to a pipe and to ``log_file``).
    """

    def __init__(
        self,
        total: int,
        description: str,
        enabled: ShowProgress = True,
        completed: int = 0,
        log_file: str | os.PathLike | None = None,
        console: Console | None = None,
        plain_every: float = PLAIN_EVERY,
    ) -> None:
        self.console = console or Console()
        self.enabled = bool(enabled)
        self.bar = self.enabled and self.console.is_terminal
        self._hidden_for = AUTO_AFTER if enabled == "auto" else 0.0
        self._bar_started = False
        self._hinted = False
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"),
            TimeElapsedColumn(),
            TextColumn("ETA {task.fields[eta]}"),
            console=self.console,
            disable=not self.bar,
        )
        self._task = self._progress.add_task(
            description, total=total, completed=completed, stats="", eta="-:--:--"
        )
        self.description = description
        self.total = total
        self.done = completed
        self.plain_every = plain_every
        self._start = time.perf_counter()
        self._first = completed
        self._items = 0
        self._loss: float | None = None
        self._last_plain = self._start
        self._last_routine = -float("inf")
        self._phase: str | None = None
        self._phase_start = 0.0
        self._paused = 0.0  # seconds spent in phases, left out of items/s and the ETA
        #: What the work left will take, where the caller knows better than the mean pace of
        #: the steps so far (a distillation's first epoch pays its teacher; None: not known).
        self.remaining: Callable[[], float | None] | None = None
        #: Whether the last routine note reached the screen (its follow-ups go with it).
        self.shown_last = False
        self._log = None
        #: The step of the last progress line on screen (None: another line came after it).
        self._screen_step: int | None = None
        #: A note shown after the last progress line when the display closes (``last``).
        self._last_note: str | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None
        if log_file is not None:
            Path(log_file).parent.mkdir(parents=True, exist_ok=True)
            self._log = open(log_file, "a", buffering=1)  # noqa: SIM115 - closed in __exit__

    def __enter__(self) -> TrainingProgress:
        _DISPLAYS.enter()
        self._start = self._last_plain = time.perf_counter()
        self._shown(self._start)
        if self.enabled or self._log is not None:
            self._heartbeat = threading.Thread(target=self._beat, daemon=True)
            self._heartbeat.start()
        return self

    def _beat(self) -> None:
        """Plain lines while a step takes longer than ``plain_every``."""
        every = max(1.0, self.plain_every)
        while not self._stop.wait(every / 2):
            if time.perf_counter() - self._last_plain >= every:
                self._plain()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        _DISPLAYS.leave()
        if self._heartbeat is not None:
            self._heartbeat.join()
        self._progress.stop()
        # Not when the last line on screen already shows this step (it would repeat).
        if self.done > self._first and self._screen_step != self.done:
            self._plain(force_screen=False)  # nothing on screen for short "auto" work
        if self._last_note is not None:
            self.note(self._last_note)
        with self._lock:
            if self._log is not None:
                self._log.close()
                self._log = None

    def _shown(self, now: float) -> bool:
        """Whether progress is on screen by ``now``: from the start, or (``"auto"``) once the
        work has taken ``AUTO_AFTER`` seconds, when a terminal's bar starts."""
        shown = self.enabled and now - self._start >= self._hidden_for
        if shown and self.bar and not self._bar_started:
            with self._lock:  # the heartbeat's thread may get here at the same time
                if not self._bar_started:
                    self._bar_started = True
                    self._progress.start()
        return shown

    def set_total(self, total: int) -> None:
        """Change the expected number of steps (time-budgeted runs refine it as they go)."""
        self.total = total
        self._progress.update(self._task, total=total)

    def log(self, text: str) -> None:
        """Write a line to the log file only."""
        self._write_log(text)

    def _write_log(self, text: str) -> None:
        with self._lock:
            if self._log is not None:
                stamp = time.strftime("%Y-%m-%d %H:%M:%S")
                self._log.write(f"{stamp} {Text.from_markup(text).plain}\n")

    def note(self, text: str) -> None:
        """Print a line (above the bar on a terminal) and write it to the log file."""
        if self.enabled:
            self.console.print(text, soft_wrap=True, highlight=False)
            self._screen_step = None
        self._write_log(text)

    def last(self, text: str) -> None:
        """A note for when the display closes, after its last progress line: how the work
        ended (stopped by Ctrl-C, say), so it is the last line on screen and in the log."""
        self._last_note = text

    def routine(self, text: str, always: bool = False) -> None:
        """A note that repeats (one per epoch): always in the log file, on screen at most
        every ``ROUTINE_EVERY`` seconds (or when ``always``), so the screen does not fill
        with thousands of tiny epochs."""
        now = time.perf_counter()
        self.shown_last = always or now - self._last_routine >= ROUTINE_EVERY
        if self.shown_last:
            self._last_routine = now
            self.note(text)
        else:
            self._write_log(text)

    @contextlib.contextmanager
    def phase(self, text: str) -> Iterator[None]:
        """A pause in the steps (measuring held-out items, writing a checkpoint): meanwhile
        the progress lines name it and how long it has taken, and its time is left out of
        the items per second and the ETA.

        Example:
            >>> with TrainingProgress(total=3, description="demo", enabled=False) as bar:
            ...     with bar.phase("measuring 2,048 held-out items"):
            ...         pass
        """
        started = time.perf_counter()
        self._phase, self._phase_start = text, started
        if self.bar:
            self._progress.update(self._task, description=f"{self.description}: {text}")
        try:
            yield
        finally:
            self._paused += time.perf_counter() - started
            self._phase = None
            if self.bar:
                self._progress.update(self._task, description=self.description)

    def _active_seconds(self, now: float) -> float:
        """Seconds spent on steps: since the start, phases left out."""
        in_phase = now - self._phase_start if self._phase is not None else 0.0
        return now - self._start - self._paused - in_phase

    def rate(self) -> float:
        """Items per second of the steps so far (phases left out)."""
        return self._items / max(self._active_seconds(time.perf_counter()), 1e-9)

    def _plain(self, force_screen: bool = False) -> None:
        self._last_plain = now = time.perf_counter()
        elapsed = now - self._start
        eta = None
        if self._phase is not None:
            line = (
                f"{self.description}: {self._phase} ({_clock(now - self._phase_start)} so "
                f"far), after step {self.done}/{self.total}, {_clock(elapsed)} elapsed"
            )
        else:
            eta = self._eta(now)
            line = plain_line(
                self.description, self.done, self.total, self._loss, self.rate(), elapsed, eta
            )
        if self._shown(now) and (not self.bar or force_screen):
            self.console.print(line, soft_wrap=True, highlight=False, markup=False)
            self._screen_step = self.done if self._phase is None else None
        self._write_log(line)
        self._hint(now, eta)  # after the line whose ETA it repeats

    def _hint(self, now: float, eta: float | None) -> None:
        """The innermost :func:`hint_when_longer` text, once, if this work will outlast it."""
        if self._hinted or not _HINTS or eta is None or not self._shown(now):
            return
        seconds, text = _HINTS[-1]
        elapsed = now - self._start
        if elapsed >= HINT_AFTER and elapsed + eta > seconds:
            self._hinted = True
            self.note(text.replace("{eta}", _clock(eta)))

    def _eta(self, now: float) -> float | None:
        """Seconds the planned steps left will take: ``remaining``'s estimate where it has
        one, else the mean pace of the steps so far (phases left out)."""
        known = self.remaining() if self.remaining is not None else None
        if known is not None:
            return known
        here = self.done - self._first
        return self._active_seconds(now) / here * max(0, self.total - self.done) if here else None

    def advance(self, steps: int, items: int, loss: float | None = None) -> float:
        """Advance by ``steps`` that consumed ``items`` items; return items per second so far."""
        self._items += items
        self.done += steps
        if loss is not None:
            self._loss = loss
        rate = self.rate()
        if self.bar:  # counted before it shows ("auto"), so it starts at the right step
            self._shown(time.perf_counter())
            stats = f"{rate:,.0f} items/s"
            if loss is not None:
                stats = f"loss {loss:.4f}  " + stats
            eta = self._eta(time.perf_counter())
            clock = "-:--:--" if eta is None else _clock(eta)
            self._progress.update(self._task, advance=steps, stats=stats, eta=clock)
        if time.perf_counter() - self._last_plain >= self.plain_every:
            self._plain()
        return rate
