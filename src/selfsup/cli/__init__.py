"""The ``selfsup`` command line, one module per group of commands.

- ``train.py``: ``pretrain`` (options generated from ``PretrainConfig``) and ``demo``;
- ``results.py``: ``embed`` and ``evaluate``;
- ``tools.py``: ``adapt``, ``predict``, ``select``, ``anomalies``, ``audit``, ``explain``,
  ``report``;
- ``datasets.py``: ``datasets list``, ``show`` and ``make``.

Expected errors (bad input, a missing file, a refused checkpoint...) print one line and exit
with status 2; ``--traceback`` (or ``SELFSUP_TRACEBACK=1``) shows the whole traceback instead,
for a bug report.

Example:
    $ selfsup pretrain digits --method simclr --epochs 5
    $ selfsup evaluate runs/simclr-digits-20260101-120000 digits
"""

from __future__ import annotations

import os
import sys

from rich.markup import escape

from selfsup.cli import datasets, results, tools, train  # noqa: F401 - they register commands
from selfsup.cli.app import app
from selfsup.console import console

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
    try:
        app()
    except (
        ConfigError,
        EmptySourceError,
        ItemReadError,
        FileNotFoundError,
        ValueError,
        TypeError,
        FloatingPointError,
        CollapseError,
    ) as err:
        if show_traceback:
            raise
        message = escape(str(err))  # a message's [brackets] are text, not markup
        console.print(f"[bold red]error:[/bold red] {message}", soft_wrap=True, highlight=False)
        raise SystemExit(2) from None
