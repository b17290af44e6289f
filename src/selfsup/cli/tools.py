"""Commands that turn a run into decisions: ``adapt``, ``predict``, ``select``,
``anomalies``, ``audit``, ``explain`` and ``report``.

Each takes the data options of ``selfsup pretrain`` (``--text-column``, ``--label-column``...),
which override what the run was trained with.

Example:
    $ selfsup adapt runs/photos ./labelled --shots 10 --out models/photos
    $ selfsup anomalies runs/sensors today.csv --normal last-month.csv --fpr 0.01
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from selfsup.cli.app import app
from selfsup.cli.options import Overwrite, can_save_in, new_output, reads_data, to_config_values
from selfsup.cli.options import open_run as _open_run
from selfsup.cli.options import parse_list as _comma_list
from selfsup.console import console
from selfsup.core.files import atomic_path, check_writable


class AdaptHead(str, Enum):
    prototype = "prototype"
    linear = "linear"
    propagation = "propagation"


class Calibration(str, Enum):
    temperature = "temperature"
    cv = "cv"


@app.command(
    epilog="Example: `selfsup adapt runs/my-run fashion-mnist --shots 10 --out models/fmnist`"
)
@reads_data
def adapt(
    run: Annotated[Path, typer.Argument(help="Run folder.")],
    labeled: Annotated[
        str, typer.Argument(help="Labelled data of the run's modality (name, folder, file).")
    ],
    out: Annotated[Path, typer.Option(help="Model folder to write.")],
    shots: Annotated[
        int | None, typer.Option(help="Labels per class drawn from LABELED (default: all).")
    ] = None,
    head: Annotated[
        AdaptHead,
        typer.Option(
            help="prototype (nearest class mean), linear, or propagation (labels spread over "
            "a k-NN graph with unlabelled items, then linear on the pseudo-labels)."
        ),
    ] = AdaptHead.linear,
    unlabeled: Annotated[
        str | None,
        typer.Option(
            help="More unlabelled data for --head propagation (besides LABELED's items "
            "outside --shots)."
        ),
    ] = None,
    finetune_blocks: Annotated[
        int, typer.Option(help="Fine-tune the last N blocks of an image backbone (0: frozen).")
    ] = 0,
    calibration: Annotated[
        Calibration | None,
        typer.Option(
            help="temperature (held-out fifth of the labels) or cv (cross-validated logits); "
            "default: cv below 20 labels per class."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the draw, splits and fine-tuning.")] = 0,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace a model folder written before.")
    ] = False,
    **options: Any,
) -> None:
    """Fit a calibrated classifier (head on the run's embeddings) from a few labels."""
    from selfsup.tools.adapt import adapt as adapt_model
    from selfsup.tools.adapt.model import MODEL_FILE

    if (out / MODEL_FILE).exists() and not overwrite:  # never another model's folder, unasked
        raise ValueError(
            f"{out}: holds an adapted model already ({MODEL_FILE}); give --overwrite to "
            "replace it, or another --out"
        )
    check_writable(out)  # before the labels are read and the head fitted
    model = adapt_model(
        _open_run(run, options),
        labeled,
        shots=shots,
        head=head.value,
        finetune_blocks=finetune_blocks,
        calibration=None if calibration is None else calibration.value,
        seed=seed,
        show_progress=True,
        unlabeled=unlabeled,
    )
    model.save(out)
    m = model.metrics
    console.print(
        f"{model.head_kind} head on {m['labelled']:,} labels of {len(model.classes)} classes; "
        f"temperature {model.temperature:.3f} ({m['calibration']}): NLL "
        f"{abs(m['nll_before']):.3f} -> {abs(m['nll_after']):.3f}, ECE {m['ece_before']:.3f} -> "
        f"{m['ece_after']:.3f} on the calibration labels"
        + (
            f" (each of {m['calibration_groups']} on one side)"
            if m.get("calibration_groups")
            else ""
        )
    )
    console.print(f"model folder: [bold]{out}[/bold]")


@app.command(
    epilog="Example: `selfsup predict models/fmnist fashion-mnist:test --out predictions.csv`"
)
@reads_data
def predict(
    model: Annotated[Path, typer.Argument(help="Model folder written by `selfsup adapt`.")],
    data: Annotated[str, typer.Argument(help="Data of the run's modality (name, folder, file).")],
    out: Annotated[Path, typer.Option(help="CSV: id, predicted, one p_<class> per class.")] = Path(
        "predictions.csv"
    ),
    overwrite: Overwrite = False,
    **options: Any,
) -> None:
    """Predict classes with calibrated probabilities; accuracy is printed when DATA has labels."""
    import numpy as np

    from selfsup.tools.adapt import AdaptedModel, write_predictions

    new_output(out, overwrite)
    adapted = AdaptedModel.load(model)
    adapted.run = adapted.run.with_data_options(**to_config_values(options))
    table = write_predictions(adapted, data, out, show_progress=True)
    console.print(f"wrote {len(table):,} predictions to {out}")
    source = adapted.run.open(data)
    if source.labels is not None and source.classes is not None:
        truth = np.asarray([str(c) for c in source.classes], dtype=object)[source.labels]
        console.print(f"accuracy: {float((table['predicted'].to_numpy() == truth).mean()):.4f}")


class Strategy(str, Enum):
    kcenter = "kcenter"
    typiclust = "typiclust"
    uncertainty = "uncertainty"
    random = "random"


@app.command(
    "select",
    epilog="Example: `selfsup select runs/my-run ./pool --budget 100 --out to-label.csv`",
)
@reads_data
def select_items(
    run: Annotated[Path, typer.Argument(help="Run folder.")],
    data: Annotated[str, typer.Argument(help="The unlabeled pool (name, folder, file).")],
    budget: Annotated[int, typer.Option(help="How many items to label next.")],
    strategy: Annotated[
        Strategy,
        typer.Option(
            help="typiclust (first labels), kcenter (coverage), uncertainty (needs --labeled) "
            "or random."
        ),
    ] = Strategy.typiclust,
    labeled: Annotated[
        str | None,
        typer.Option(
            help="Items labelled already: a .txt of ids of DATA, a CSV of id[,label], or "
            "labelled data."
        ),
    ] = None,
    out: Annotated[Path, typer.Option(help="CSV: rank, id, score.")] = Path("ranked.csv"),
    seed: Annotated[int, typer.Option(help="Seed of k-means and random.")] = 0,
    measure: Annotated[
        str, typer.Option(help="uncertainty: margin (top two classes) or entropy.")
    ] = "margin",
    overwrite: Overwrite = False,
    **options: Any,
) -> None:
    """Rank which unlabeled items to label next (writes rank, id, score)."""
    from selfsup.tools.selection import select_for_run

    new_output(out, overwrite)
    table = select_for_run(
        _open_run(run, options),
        data,
        budget,
        strategy.value,
        labeled,
        seed,
        measure,
        show_progress=True,
    )
    with atomic_path(out) as tmp:
        table.to_csv(tmp, index=False)
    console.print(f"wrote {len(table):,} items to label next ({strategy.value}) to {out}")


class Scorer(str, Enum):
    knn = "knn"
    mahalanobis = "mahalanobis"


@app.command(
    epilog="Example: `selfsup anomalies runs/my-run ./today --normal ./last-month --fpr 0.01`"
)
@reads_data
def anomalies(
    run: Annotated[Path, typer.Argument(help="Run folder.")],
    data: Annotated[str, typer.Argument(help="The items to score (name, folder, file).")],
    normal: Annotated[
        str | None, typer.Option(help="Normal data (default: DATA itself, leave-one-out kNN).")
    ] = None,
    scorer: Annotated[
        Scorer, typer.Option(help="knn (k-th neighbour distance) or mahalanobis.")
    ] = Scorer.knn,
    k: Annotated[int, typer.Option(help="The neighbour of the knn scorer.")] = 5,
    fpr: Annotated[float, typer.Option(help="Target false-positive rate of the flag.")] = 0.05,
    anomaly_label: Annotated[
        str | None,
        typer.Option(
            help="Comma list of DATA's classes that are anomalies, for AUROC/AUPRC (default: "
            "classes absent from labelled NORMAL)."
        ),
    ] = None,
    out: Annotated[Path, typer.Option(help="CSV: id, score, flagged.")] = Path("scores.csv"),
    seed: Annotated[int, typer.Option(help="Seed of the threshold's held-out split.")] = 0,
    overwrite: Overwrite = False,
    **options: Any,
) -> None:
    """Score items for anomaly from their embeddings; flag those above a threshold set for
    a target false-positive rate; AUROC and AUPRC when DATA's labels tell the anomalies."""
    from selfsup.data.folders import tile_images
    from selfsup.tools.anomalies import score_for_run

    new_output(out, overwrite)
    report = score_for_run(
        _open_run(run, options),
        data,
        normal,
        scorer.value,
        k,
        fpr,
        _comma_list(anomaly_label),
        seed,
        True,
    )
    with atomic_path(out) as tmp:
        report.table.to_csv(tmp, index=False)
    flagged = int(report.table["flagged"].sum())
    scored = report.table[report.table["score"].notna()]  # unreadable items: said, no score
    images = tile_images(scored["id"].tolist())  # tiles (--tile): in how many images
    where = ""
    if images is not None:
        hit = set(images[scored["flagged"].to_numpy(bool)].tolist())
        slices = scored["id"].astype(str).str.contains(r"@z\d+$").any()
        kind = "volumes" if slices else "images"
        where = f", in {len(hit):,} of {len(set(images.tolist())):,} {kind}"
    console.print(
        f"scores ({report.reference}) written to {out}; {flagged:,} of {len(scored):,} "
        f"scored flagged above {report.threshold:.4g}{where}"
    )
    q = report.quality
    if q is not None:  # the normal items' flagged share follows in a note
        console.print(
            f"AUROC {q.auroc:.4f}, AUPRC {q.auprc:.4f} ({q.anomalies:,} anomalies of "
            f"{q.items:,}); flagged: {q.flagged_recall:.3f} of anomalies"
        )
    for note in report.notes:
        console.print(note.replace("warning:", "[bold red]warning:[/bold red]", 1), soft_wrap=True)


@app.command(
    epilog="Examples: `selfsup audit runs/credit loans.csv --group region`; "
    "`selfsup audit runs/photos ./photos --groups groups.csv --model models/photos`"
)
@reads_data
def audit(
    run: Annotated[Path, typer.Argument(help="Run folder.")],
    data: Annotated[str, typer.Argument(help="Labelled data to audit (path or dataset name).")],
    group: Annotated[
        str | None, typer.Option(help="Tables: the column of DATA that holds each row's group.")
    ] = None,
    groups: Annotated[
        Path | None, typer.Option(help="Any data: a CSV with columns id,group.")
    ] = None,
    model: Annotated[
        Path | None,
        typer.Option(
            help="Adapted model (selfsup adapt); default: cross-validated logistic "
            "regression on the embeddings."
        ),
    ] = None,
    k: Annotated[int, typer.Option(help="Neighbours for the kNN purity check.")] = 10,
    seed: Annotated[int, typer.Option(help="Seed of folds, bootstrap and samples.")] = 0,
    **options: Any,
) -> None:
    """Bias audit: accuracy, calibration and error rates per group, how the embedding
    separates the groups, and the largest gaps in plain words; saves audit.json and audit.png."""
    from selfsup.tools.audit import audit_run

    opened = _open_run(run, options)
    save = can_save_in(opened.path)
    result = audit_run(
        opened, data, group_column=group, groups_file=groups, model=model, k=k, seed=seed,
        show_progress=True, save=False,
    )  # fmt: skip
    # One row per group (sixty countries as columns were sixty empty columns on 80 characters).
    table = Table(title=f"{run} on {data}: by group")
    table.add_column("group")
    table.add_column("items", justify="right")
    for metric in result.by_group:
        table.add_column(metric, justify="right")
    for name in result.groups:
        table.add_row(
            name,
            f"{result.counts[name]:,}",
            *(f"{values.get(name, float('nan')):.3f}" for values in result.by_group.values()),
        )
    console.print(table)
    console.print(
        "[dim]purity: neighbours in the same group above chance (0 to 1); separability: share "
        "of the group a linear probe recognizes; rankme: effective rank, equal-size samples[/dim]"
    )
    for note in result.notes:
        console.print(f"[dim]{note}[/dim]")
    for sentence in result.summary():
        console.print(("[bold red]large gap:[/bold red] " if result.large_gaps else "") + sentence)
    if save:  # printed first: a disk that fills up now loses no result
        result.save(opened.path)
        console.print(f"saved {run / 'audit.json'} and {run / 'audit.png'}")


@app.command(
    epilog="Examples: `selfsup explain runs/photos photos/cat/001.jpg --data ./photos`; "
    "`selfsup explain runs/digits digits:test#12 --method occlusion`"
)
@reads_data
def explain(
    run: Annotated[Path, typer.Argument(help="Run folder.")],
    item: Annotated[
        str,
        typer.Argument(
            help="An image (or audio) file, or DATA#KEY: item KEY (an id or a row number) "
            "of any data the run reads."
        ),
    ],
    data: Annotated[
        str | None,
        typer.Option(help="Training data to find neighbours in (default: the item's DATA)."),
    ] = None,
    model: Annotated[
        Path | None, typer.Option(help="Adapted model: attribute its class probability.")
    ] = None,
    target: Annotated[
        str | None, typer.Option(help="With --model: the class (default: the predicted one).")
    ] = None,
    method: Annotated[
        str,
        typer.Option(help="ig (integrated gradients) or occlusion (best for table rows)."),
    ] = "ig",
    reference: Annotated[
        str,
        typer.Option(
            help="Without --model, similarity to: self (the item's own embedding), mean, "
            "neighbour, a class name of --data, or another ITEM."
        ),
    ] = "self",
    neighbours: Annotated[int, typer.Option(help="Nearest neighbours to show.")] = 8,
    out: Annotated[Path | None, typer.Option(help="Folder (default RUN/explain).")] = None,
    **options: Any,
) -> None:
    """What the encoder looks at: an attribution map of one item and its nearest neighbours
    in the training data, as PNG files."""
    from selfsup.tools.explain import explain_item

    check_writable(out or run / "explain")
    result = explain_item(
        _open_run(run, options), item, data=data, model=model, target=target, method=method,
        reference=reference, neighbours=neighbours, out=out, show_progress=True,
    )  # fmt: skip
    console.print(f"{result.item_id}: {result.method} of the {result.target} ({result.score:.3f})")
    for neighbour in result.neighbours:
        label = f" [{neighbour.label}]" if neighbour.label is not None else ""
        console.print(
            f"  neighbour {neighbour.item_id}{label}: similarity {neighbour.similarity:.3f}"
        )
    for path in result.files:
        console.print(f"wrote {path}")


@app.command(
    epilog="Example: `selfsup report runs/photos --data ./photos`; open runs/photos/report.html"
)
@reads_data
def report(
    run: Annotated[Path, typer.Argument(help="Run folder.")],
    data: Annotated[
        str | None,
        typer.Option(help="Data for the embedding map and neighbours (default: the run's data)."),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="The page (default RUN/report.html).")] = None,
    groups: Annotated[
        Path | None, typer.Option(help="CSV with columns id,group: colour the map by group.")
    ] = None,
    umap: Annotated[
        bool, typer.Option("--umap", help="Map with UMAP instead of PCA (umap-learn; slower).")
    ] = False,
    items: Annotated[int, typer.Option(help="Items embedded for the map and neighbours.")] = 2000,
    **options: Any,
) -> None:
    """One self-contained HTML page of the run: training curves, label-free metrics,
    evaluations, an embedding map, neighbours, attributions and the audit; opens from disk."""
    from selfsup.tools.report import build_report

    page = build_report(
        run, data, out, groups_file=groups, use_umap=umap, items=items,
        data_options=to_config_values(options),
    )  # fmt: skip
    console.print(f"wrote [bold]{page}[/bold] (figures as PNG in {run / 'report'})")
