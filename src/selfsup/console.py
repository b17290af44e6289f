"""What the command line prints: the shared console and the result tables.

Example:
    >>> from selfsup.evaluation.report import Evaluation, ProtocolRow
    >>> result = Evaluation("a", "b", 10, 5, [ProtocolRow("knn", 0.9, 0.8)], 1.0)
    >>> print_evaluation(result, "demo")  # doctest: +NORMALIZE_WHITESPACE
                   demo
    ┏━━━━━━━━━━┳━━━━━━━━━┳━━━━━━━━━━━┳━━━━━━━━━┓
    ┃ protocol ┃ selfsup ┃ raw input ┃    gain ┃
    ┡━━━━━━━━━━╇━━━━━━━━━╇━━━━━━━━━━━╇━━━━━━━━━┩
    │ knn      │  0.9000 │    0.8000 │ +0.1000 │
    └──────────┴─────────┴───────────┴─────────┘
    fitted on a (10 items), scored on b (5 items) in 1 s
"""

from __future__ import annotations

import os
from typing import Any

from rich.console import Console
from rich.table import Table

from selfsup.evaluation.labelfree import LabelFreeMetrics
from selfsup.evaluation.report import Evaluation

#: The width of tables printed to a pipe or a file (``$COLUMNS`` overrides it).
PIPE_WIDTH = 200
#: The console every command prints to (rich on a terminal, plain text to a pipe). Lines are
#: never broken by it (``soft_wrap``): to a pipe, rich would break them at 80 columns, in the
#: middle of a path a script or a user copies; a terminal wraps them itself.
console = Console(soft_wrap=True)
if not console.is_terminal and "COLUMNS" not in os.environ:
    # Tables to a pipe or a file: as wide as their cells (an audit's eight groups), not cut
    # to rich's default 80 columns with an ellipsis in every cell.
    console.width = PIPE_WIDTH


def print_evaluation(result: Evaluation, title: str) -> None:
    """Print an evaluation as a table: each protocol for the encoder and for raw inputs."""
    table = Table(title=title)
    for column in ("protocol", "selfsup", "raw input", "gain"):
        table.add_column(column, justify="left" if column == "protocol" else "right")
    for row in result.rows:
        ci, ci_raw = row.detail.get("ci95_selfsup"), row.detail.get("ci95_raw")
        table.add_row(
            row.protocol,
            f"{row.selfsup:.4f}" + (f" ± {ci:.4f}" if ci is not None else ""),
            f"{row.raw:.4f}" + (f" ± {ci_raw:.4f}" if ci_raw is not None else ""),
            f"{row.selfsup - row.raw:+.4f}",
        )
    console.print(table)
    console.print(
        f"fitted on {result.train_data} ({result.train_items:,} items), scored on "
        f"{result.test_data} ({result.test_items:,} items) in {result.seconds:.0f} s",
        markup=False,  # names such as photos[fit] are not markup
    )
    if result.note is not None:
        console.print(f"note: {result.note}", markup=False)


def print_label_free(metrics: LabelFreeMetrics, title: str) -> None:
    """Print label-free metrics as a table with what each number means."""
    table = Table(title=title)
    for column in ("metric", "value", "reading"):
        table.add_column(column)
    rows = [
        ("RankMe", f"{metrics.rankme:.1f} / {metrics.dim}", "effective rank; higher is better"),
        ("alpha-ReQ", f"{metrics.alpha_req:.3f}", "eigenspectrum decay; near 1 is best"),
        ("alignment", f"{metrics.alignment:.3f}", "views of one item; lower is better"),
        ("uniformity", f"{metrics.uniformity:.3f}", "spread on the sphere; lower is better"),
        ("normalized std", f"{metrics.normalized_std:.3f}", "about 1 healthy, 0 collapsed"),
        ("neighbour agreement", f"{metrics.neighbour_agreement:.3f}",
         "kNN shared by two views; higher is better"),
    ]  # fmt: skip
    for row in rows:
        table.add_row(*row)
    console.print(table)
    state = "[bold red]collapsed[/bold red]" if metrics.collapsed else "not collapsed"
    console.print(f"{metrics.items} items, embeddings {state}")


def training_in_words(summary: dict[str, Any]) -> str:
    """How long a run trained, from its ``train.json``: its steps, and whole epochs or the
    share of one that a time budget cut short (a large corpus is rarely read once in 10
    minutes).

    Example:
        >>> training_in_words({"steps": 47, "epochs": 1, "items_seen": 12032, "items": 297952})
        '47 steps (4% of one epoch)'
        >>> training_in_words({"steps": 1, "epochs": 3, "items_seen": 2900, "items": 1000})
        '1 step (3 epochs)'
        >>> training_in_words({"steps": 5, "epochs": 2, "items_seen": 160, "items": 3360})
        '5 steps (5% of one epoch)'
    """
    steps = int(summary.get("steps", 0))
    epochs = int(summary.get("epochs", 0))
    seen, items = summary.get("items_seen"), summary.get("items")
    if seen and items and seen < 0.995 * items:  # also a cut epoch continued by a resume
        share = seen / items
        read = f"{share:.0%} of one epoch" if share >= 0.01 else f"{share:.1%} of one epoch"
    else:
        read = f"{epochs} epoch{'s' if epochs != 1 else ''}"
    return f"{steps} step{'s' if steps != 1 else ''} ({read})"
