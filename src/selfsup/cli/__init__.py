"""The ``selfsup`` command line, one module per group of commands.

- ``train.py``: ``pretrain`` (options generated from ``PretrainConfig``) and ``demo``;
- ``results.py``: ``embed`` and ``evaluate``;
- ``tools.py``: ``adapt``, ``predict``, ``select``, ``anomalies``, ``audit``, ``explain``,
  ``report``;
- ``datasets.py``: ``datasets list``, ``show`` and ``make``.

Expected errors (bad input, a missing file, a refused checkpoint, a read-only folder or a full
disk...) print one line and exit with status 2; anything else is a bug in selfsup, also told in
one line (status 1) that asks for a report; ``--traceback`` (or ``SELFSUP_TRACEBACK=1``) shows
the whole traceback instead, for a bug report.

Example:
    $ selfsup pretrain digits --method simclr --epochs 5
    $ selfsup evaluate runs/simclr-digits-20260101-120000 digits
"""

from __future__ import annotations

import os
import sys
import warnings
from typing import TextIO

from rich.markup import escape

from selfsup.cli import datasets, results, tools, train  # noqa: F401 - they register commands
from selfsup.cli.app import app
from selfsup.console import console
from selfsup.core.errors import one_line

__all__ = ["app", "main"]
#: Set to 1 to see the whole traceback of an expected error.
TRACEBACK_ENV = "SELFSUP_TRACEBACK"


def main() -> None:
    """Entry point of the ``selfsup`` console script, with clear one-line errors."""
    from selfsup.config import ConfigError
    from selfsup.data.base import EmptySourceError, ItemReadError
    from selfsup.engine.monitor import CollapseError

    show_traceback = "--traceback" in sys.argv or os.environ.get(TRACEBACK_ENV) == "1"
    if "--traceback" in sys.argv:
        sys.argv.remove("--traceback")
    warnings.showwarning = _warning_line
    try:
        app()
    except (
        ConfigError,
        EmptySourceError,
        ItemReadError,
        OSError,
        ValueError,
        TypeError,
        FloatingPointError,
        CollapseError,
        MemoryError,
    ) as err:
        if show_traceback:
            raise
        _error_line(one_line(err) if isinstance(err, OSError | MemoryError) else str(err).strip())
        raise SystemExit(2) from None
    except Exception as err:  # a bug: still one line, with how to report it
        if show_traceback:
            raise
        _error_line(
            f"unexpected {type(err).__name__}: {one_line(err)} (a bug in selfsup: rerun with "
            f"--traceback and report what it prints)"
        )
        raise SystemExit(1) from None


def _warning_line(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """Data warnings (:class:`~selfsup.data.base.DataWarning`) as one ``warning:`` line;
    a collapse's not again (training printed it as one); others as Python prints them."""
    from selfsup.data.base import DataWarning

    monitor = sys.modules.get("selfsup.engine.monitor")  # not loaded: not a collapse
    if monitor is not None and issubclass(category, monitor.CollapseWarning):
        return
    if not issubclass(category, DataWarning):
        _python_warning(message, category, filename, lineno, file, line)
        return
    if str(message) in _warned:  # the same data opened twice by one command (adapt's parts)
        return
    _warned.add(str(message))
    console.print(
        f"[bold red]warning:[/bold red] {escape(str(message))}", soft_wrap=True, highlight=False
    )


_python_warning = warnings.showwarning
#: The data warnings this process printed: each is said once.
_warned: set[str] = set()


def _error_line(message: str) -> None:
    # A message's [brackets] are text, not markup.
    console.print(f"[bold red]error:[/bold red] {escape(message)}", soft_wrap=True, highlight=False)
