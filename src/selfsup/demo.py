"""The demo: pretrain on Fashion-MNIST without labels, evaluate on its test split vs raw pixels.

Example:
    $ selfsup demo --time-budget 10
"""

from __future__ import annotations

from rich.console import Console

from selfsup.data.named import DatasetNotInstalledError, open_named

#: The demo's recipe, chosen with ``benchmarks/methods.py`` (see BENCHMARKS.md).
DEMO_OPTIONS: dict = {
    "batch_size": 256,
    "backbone": "small-cnn",
    # 28x28 gray clothes: milder crops than ImageNet's, no blur or solarization.
    "views": {"crop_scale": (0.25, 1.0), "blur_p": 0.0, "solarize_p": 0.0},
    "method_options": {"projection_dim": 1024, "hidden_dim": 1024},
}


def pick_demo_data(console: Console) -> str:
    """Fashion-MNIST when installed, otherwise MNIST-5k (and say so)."""
    try:
        open_named("fashion-mnist")
        return "fashion-mnist"
    except DatasetNotInstalledError as err:
        console.print(f"[yellow]Fashion-MNIST is not installed ({err}); using mnist-5k.[/yellow]")
        return "mnist-5k"


def run_demo(
    time_budget: float = 10.0,
    method: str = "simclr",
    out: str | None = None,
    console: Console | None = None,
) -> None:
    """Pretrain ``method`` for ``time_budget`` minutes, evaluate, print the table and the run."""
    from selfsup.console import print_evaluation
    from selfsup.run import pretrain

    console = console or Console()
    data = pick_demo_data(console)
    console.print(
        f"[bold]selfsup demo[/bold]: {method} on {data} (labels unused) for {time_budget:g} "
        "minutes of training, then kNN, linear probe and 10-shot on the test split, each next "
        "to the same protocol on raw pixels."
    )
    run = pretrain(data, method=method, time_budget=time_budget, out=out, **DEMO_OPTIONS)
    s = run.summary
    console.print(
        f"trained {s['steps']} steps ({s['items_seen'] / s['items']:.1f} epochs) in "
        f"{s['train_seconds']:.0f} s at {s['items_per_second']:.0f} images/s ({s['precision']})"
    )
    result = run.evaluate(data)
    print_evaluation(result, f"{method} on {data}: test accuracy")
    console.print(f"run folder: [bold]{run.path}[/bold]")
