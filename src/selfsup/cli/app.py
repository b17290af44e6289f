"""The ``selfsup`` Typer application and its sub-groups; the commands register on them.

Example:
    >>> sorted(group.name for group in app.registered_groups)
    ['datasets']
"""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Self-supervised learning from raw, unlabeled data, proven with few labels. "
    "An expected error prints one line; `--traceback` (or SELFSUP_TRACEBACK=1) shows the "
    "whole traceback for a bug report.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)
datasets_app = typer.Typer(
    help="List and inspect the named datasets; make the synthetic ones.", no_args_is_help=True
)
app.add_typer(datasets_app, name="datasets")
