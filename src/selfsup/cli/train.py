"""``selfsup pretrain`` (every option generated from ``PretrainConfig``) and ``selfsup demo``.

Example:
    $ selfsup pretrain ./photos --method byol --time-budget 30 --out runs/photos
    $ selfsup pretrain reviews.csv --text-column body --backbone-options dim=128,depth=2
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from selfsup.cli.app import app
from selfsup.cli.options import config_options, ticking, to_config_values, with_parameters
from selfsup.console import console, training_in_words


def pretrain(
    data: Annotated[
        str | None,
        typer.Argument(
            help="Folder, .npy/.npz file, dataset name, ucr:NAME, or a .ts/.csv/.parquet/"
            ".txt/.jsonl file (see `selfsup datasets list`)."
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(help="YAML file of options; the command line overrides it."),
    ] = None,
    resume: Annotated[
        Path | None, typer.Option(help="Continue the run in this folder from its checkpoint.")
    ] = None,
    **options: Any,
) -> None:
    """Pretrain an encoder on unlabeled data; the run folder's path is printed at the end.

    Options left out take their value from --config, else from the data's modality (shown as
    "from the data"): images train SimCLR, series TS2Vec, tables SCARF, text SimCSE and audio
    BYOL-A, each with its benchmark's recipe.
    """
    if data is None and config is None and resume is None:
        raise typer.BadParameter("give DATA, --config FILE or --resume RUN")
    # Loading PyTorch Lightning alone takes 10 s or more on a small machine: say so.
    with ticking(f"pretrain {data or resume or config}"):
        from selfsup.engine.interrupt import TrainingInterrupted
        from selfsup.run import pretrain as run_pretrain

        try:
            run = run_pretrain(data, config=config, resume=resume, **to_config_values(options))
        except TrainingInterrupted as stop:  # the loop said where it stopped
            raise typer.Exit(stop.exit_status) from None
    if run.summary and _is_rank_zero():
        s = run.summary
        console.print(
            f"trained {training_in_words(s)} in {s['train_seconds']:.0f} s, "
            f"{s['items_per_second']:.0f} items/s, {s['precision']}"
        )
        console.print(f"run folder: [bold]{run.path}[/bold]")


app.command(
    epilog="Example: `selfsup pretrain ./photos --method byol --time-budget 30 --out runs/photos`"
)(with_parameters(pretrain, config_options()))


def _is_rank_zero() -> bool:
    return int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0"))) == 0


@app.command(epilog="Example: `selfsup demo --time-budget 2`")
def demo(
    time_budget: Annotated[float, typer.Option(help="Minutes of training.")] = 10.0,
    method: Annotated[str, typer.Option(help="The objective.")] = "simclr",
    out: Annotated[str | None, typer.Option(help="Run folder.")] = None,
) -> None:
    """Pretrain on Fashion-MNIST (labels unused), evaluate on its test split vs raw pixels."""
    from selfsup.demo import run_demo

    run_demo(time_budget=time_budget, method=method, out=out, console=console)
