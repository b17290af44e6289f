"""The ``selfsup`` command line: pretrain, embed, evaluate, datasets, demo, adapt, predict,
select, anomalies, audit, explain, report.

Example:
    $ selfsup pretrain digits --method simclr --epochs 5
    $ selfsup evaluate runs/simclr-digits-20260101-120000 digits
"""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from selfsup.data.base import EmptySourceError, ItemReadError
from selfsup.evaluation.labelfree import LabelFreeMetrics
from selfsup.evaluation.report import Evaluation

app = typer.Typer(
    help="Self-supervised learning from raw, unlabeled data, proven with few labels.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)
datasets_app = typer.Typer(
    help="List and inspect the named datasets; make the synthetic ones.", no_args_is_help=True
)
app.add_typer(datasets_app, name="datasets")
console = Console()


class Precision(str, Enum):
    auto = "auto"
    bf16 = "bf16"
    fp32 = "fp32"


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
        f"fitted on {result.train_data} ({result.train_items} items), scored on "
        f"{result.test_data} ({result.test_items} items) in {result.seconds:.0f} s"
    )


def _comma_list(text: str | None) -> list[str] | None:
    """``"a, b"`` -> ``["a", "b"]``; None stays None."""
    return None if text is None else [part.strip() for part in text.split(",") if part.strip()]


@app.command(
    epilog="Example: `selfsup pretrain ./photos --method byol --time-budget 30 --out runs/photos`"
)
def pretrain(
    data: Annotated[
        str | None,
        typer.Argument(
            help="Folder, .npy/.npz file, dataset name, ucr:NAME, or a .ts/.csv/.parquet file "
            "of series."
        ),
    ] = None,
    modality: Annotated[
        str | None,
        typer.Option(
            help="image, series, tabular, text or audio (default: ucr: names and .ts files are "
            "series, .csv/.parquet files and named tables are tabular, .txt/.jsonl files and "
            "named corpora are text, folders of .wav/.flac/.ogg files are audio)."
        ),
    ] = None,
    method: Annotated[
        str | None,
        typer.Option(
            help="simclr, byol, vicreg, barlowtwins, mocov3, simsiam, nnclr, swav, dino, mae "
            "or ijepa (mae and ijepa need a ViT backbone); ts2vec for series, scarf or vime "
            "for tables, simcse, mlm or sent2vec (with text-bag) for text, byola for audio (their "
            "defaults)."
        ),
    ] = None,
    backbone: Annotated[
        str | None,
        typer.Option(
            help="small-cnn, resnet18/34/50, vit-tiny, vit-small; series: ts2vec, "
            "patch-transformer; tables: mlp; text: text-transformer, text-transformer-small, "
            "bert, text-bag; audio: byola-cnn, spectrogram-vit."
        ),
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Passes over the data.")] = None,
    time_budget: Annotated[
        float | None, typer.Option(help="Minutes of training; the schedule fits in it.")
    ] = None,
    batch_size: Annotated[int | None, typer.Option(help="Items per step and process.")] = None,
    lr: Annotated[float | None, typer.Option(help="Peak learning rate.")] = None,
    optimizer: Annotated[str | None, typer.Option(help="adamw, sgd or lars.")] = None,
    schedule: Annotated[
        str | None,
        typer.Option(help="After warmup: cosine decay (default) or constant (TS2Vec's)."),
    ] = None,
    precision: Annotated[Precision | None, typer.Option(help="bf16, fp32 or auto.")] = None,
    devices: Annotated[int | None, typer.Option(help="Processes on this machine (DDP).")] = None,
    num_nodes: Annotated[int | None, typer.Option(help="Machines (multi-node DDP).")] = None,
    accelerator: Annotated[str | None, typer.Option(help="cpu, gpu or auto.")] = None,
    image_size: Annotated[int | None, typer.Option(help="Side of the training images.")] = None,
    num_workers: Annotated[int | None, typer.Option(help="Data-loading processes.")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
    out: Annotated[str | None, typer.Option(help="Run folder (default runs/...).")] = None,
    config: Annotated[Path | None, typer.Option(help="YAML file of options.")] = None,
    resume: Annotated[
        Path | None, typer.Option(help="Continue the run in this folder from its checkpoint.")
    ] = None,
    strict: Annotated[
        bool | None, typer.Option("--strict", help="Fail on an unreadable file.")
    ] = None,
    monitor_items: Annotated[
        int | None,
        typer.Option(help="Items held out for label-free metrics after each epoch (0: off)."),
    ] = None,
    stop_on_collapse: Annotated[
        bool | None,
        typer.Option("--stop-on-collapse", help="Stop when the embeddings collapse."),
    ] = None,
    select_by: Annotated[
        str | None,
        typer.Option(
            help="Keep the best epoch by rankme, alpha_req, neighbour_agreement, uniformity "
            "or online_probe (default: last)."
        ),
    ] = None,
    online_probe: Annotated[
        bool | None,
        typer.Option("--online-probe/--no-online-probe", help="Online linear probe (labels)."),
    ] = None,
    keep_checkpoints: Annotated[
        bool | None,
        typer.Option("--keep-checkpoints", help="Keep every epoch's encoder weights."),
    ] = None,
    id_column: Annotated[
        str | None, typer.Option(help="Series in long form: the column naming the series.")
    ] = None,
    time_column: Annotated[
        str | None, typer.Option(help="Series in long form: the column ordering the steps.")
    ] = None,
    label_column: Annotated[
        str | None, typer.Option(help="Tables: the column of class labels (not a feature).")
    ] = None,
    categorical_columns: Annotated[
        str | None, typer.Option(help="Tables: comma list of columns to treat as categorical.")
    ] = None,
    drop_columns: Annotated[
        str | None, typer.Option(help="Tables: comma list of columns to ignore (ids, text).")
    ] = None,
    text_column: Annotated[
        str | None,
        typer.Option(help="Text: the JSONL/CSV field of the documents (reads a CSV as text)."),
    ] = None,
    max_length: Annotated[
        int | None, typer.Option(help="Text: most tokens per document (default 64).")
    ] = None,
    vocab_size: Annotated[
        int | None, typer.Option(help="Text: BPE vocabulary trained on the data (default 8000).")
    ] = None,
    sample_rate: Annotated[
        int | None, typer.Option(help="Audio: the rate files are resampled to (16000).")
    ] = None,
    clip_seconds: Annotated[
        float | None, typer.Option(help="Audio: clip length, centre-cropped or padded (0.95).")
    ] = None,
    n_mels: Annotated[int | None, typer.Option(help="Audio: mel bands (64).")] = None,
) -> None:
    """Pretrain an encoder on unlabeled data; the run folder's path is printed at the end."""
    from selfsup.run import pretrain as run_pretrain

    options = {
        "modality": modality,
        "id_column": id_column,
        "time_column": time_column,
        "label_column": label_column,
        "categorical_columns": _comma_list(categorical_columns),
        "drop_columns": _comma_list(drop_columns),
        "method": method,
        "backbone": backbone,
        "epochs": epochs,
        "time_budget": time_budget,
        "batch_size": batch_size,
        "lr": lr,
        "optimizer": optimizer,
        "schedule": schedule,
        "precision": precision.value if precision else None,
        "devices": devices,
        "num_nodes": num_nodes,
        "accelerator": accelerator,
        "image_size": image_size,
        "num_workers": num_workers,
        "seed": seed,
        "out": out,
        "strict": strict,
        "monitor_items": monitor_items,
        "stop_on_collapse": stop_on_collapse,
        "select_by": select_by,
        "online_probe": online_probe,
        "keep_checkpoints": keep_checkpoints,
        "text_column": text_column,
        "max_length": max_length,
        "vocab_size": vocab_size,
        "sample_rate": sample_rate,
        "clip_seconds": clip_seconds,
        "n_mels": n_mels,
    }
    options = {k: v for k, v in options.items() if v is not None}
    if data is None and config is None and resume is None:
        raise typer.BadParameter("give DATA, --config FILE or --resume RUN")
    run = run_pretrain(data, config=config, resume=resume, **options)
    if run.summary and _is_rank_zero():
        s = run.summary
        console.print(
            f"trained {s['steps']} steps ({s['epochs']} epochs) in {s['train_seconds']:.0f} s, "
            f"{s['items_per_second']:.0f} items/s, {s['precision']}"
        )
        console.print(f"run folder: [bold]{run.path}[/bold]")


def _is_rank_zero() -> bool:
    import os

    return int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0"))) == 0


@app.command(epilog="Example: `selfsup embed runs/my-run ./photos --out embeddings.parquet`")
def embed(
    run: Annotated[Path, typer.Argument(help="Run folder.")],
    data: Annotated[
        str, typer.Argument(help="Folder, file (.npy/.npz, .ts, .csv, .parquet) or dataset name.")
    ],
    out: Annotated[Path, typer.Option(help="Output file: .npy or .parquet.")],
    batch_size: Annotated[int, typer.Option(help="Items per batch (bounds memory).")] = 512,
    per_timestamp: Annotated[
        bool,
        typer.Option(
            "--per-timestamp", help="Series: one embedding per time step, (n, length, D) .npy."
        ),
    ] = False,
) -> None:
    """Write one embedding per item (input order kept) to .npy or .parquet."""
    import numpy as np

    from selfsup.run import load

    if per_timestamp:
        if out.suffix != ".npy":
            raise typer.BadParameter("--per-timestamp writes a .npy file", param_hint="--out")
        steps = load(run).embed_timestamps(data)
        np.save(out, steps)
        console.print(f"wrote embeddings per time step, shape {steps.shape}, to {out}")
        return
    result = load(run).embed_to_file(data, out, batch_size)
    console.print(f"wrote {result.rows} embeddings of size {result.dim} to {result.path}")
    if result.skipped:
        console.print(f"[yellow]{len(result.skipped)} unreadable items (NaN rows):[/yellow]")
        for item in result.skipped[:10]:
            console.print(f"  {item.item_id}: {item.reason}")


@app.command(epilog="Example: `selfsup evaluate runs/my-run fashion-mnist --protocol knn,linear`")
def evaluate(
    run: Annotated[Path, typer.Argument(help="Run folder.")],
    data: Annotated[
        str,
        typer.Argument(
            help="Data of the same modality (name, folder, file); labelled unless --label-free."
        ),
    ],
    test: Annotated[
        str | None, typer.Option(help="Held-out test data (default: official split or 80/20).")
    ] = None,
    protocol: Annotated[
        str | None,
        typer.Option(
            help="Comma list of knn, linear, fewshot, svm, auroc (default: knn,linear,fewshot "
            "for images; svm,knn,linear for series; linear,auroc,knn for tables)."
        ),
    ] = None,
    shots: Annotated[int, typer.Option(help="Labels per class for few-shot.")] = 10,
    draws: Annotated[int, typer.Option(help="Random draws for few-shot.")] = 5,
    seed: Annotated[int, typer.Option(help="Seed of splits and draws.")] = 0,
    label_free: Annotated[
        bool,
        typer.Option("--label-free", help="Label-free metrics only (RankMe, alpha-ReQ...)."),
    ] = False,
    items: Annotated[int, typer.Option(help="Items sampled for --label-free.")] = 4096,
) -> None:
    """Evaluate a run with kNN, linear probe and few-shot next to raw inputs, or without
    labels (--label-free); saves JSON in the run folder."""
    from selfsup.run import load

    if label_free:
        metrics = load(run).evaluate_label_free(data, items=items, seed=seed)
        print_label_free(metrics, f"{run} on {data}: label-free metrics")
        return
    protocols = (
        None if protocol is None else tuple(p.strip() for p in protocol.split(",") if p.strip())
    )
    result = load(run).evaluate(data, test, protocols, shots=shots, draws=draws, seed=seed)
    print_evaluation(result, f"{run} on {data}")


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


@datasets_app.command("list")
def datasets_list() -> None:
    """List the named datasets and whether each is installed here."""
    from selfsup.data.named import describe_named

    table = Table(title="named datasets")
    for column in ("name", "modality", "splits", "items", "installed", "description"):
        table.add_column(column)
    missing = []
    for d in describe_named():
        table.add_row(
            d["name"],
            d["modality"],
            ", ".join(d["splits"]),
            " / ".join(str(n) for n in d["size"].values()),
            "yes" if d["installed"] else "no",
            d["description"],
        )
        if not d["installed"]:
            missing.append(f"{d['name']}: {d['install']}")
    from selfsup.data.tabular import describe_tables

    for d in describe_tables():
        table.add_row(
            d["name"],
            "tabular",
            "train, test",
            d["size"],
            "yes" if d["installed"] else "no",
            d["description"],
        )
        if not d["installed"]:
            missing.append(f"{d['name']}: {d['install']}")
    from selfsup.data.text import describe_text_corpora

    for d in describe_text_corpora():
        splits = "train, test" if d["name"] == "rotten-tomatoes" else "train"
        table.add_row(
            d["name"],
            "text",
            splits,
            d["size"],
            "yes" if d["installed"] else "no",
            d["description"],
        )
        if not d["installed"]:
            missing.append(f"{d['name']}: {d['install']}")
    console.print(table)
    for line in missing:
        console.print(f"[yellow]not installed[/yellow] {line}")
    from selfsup.data.series import ucr_dirs, ucr_names

    names = ucr_names()
    if names:
        where = ", ".join(str(d) for d in ucr_dirs())
        console.print(f"series sets, as ucr:NAME (and ucr:NAME:test), from {where}:")
        console.print("  " + ", ".join(names))
    else:
        console.print(
            "[yellow]no UCR/UEA series sets found[/yellow]: pip install aeon, or set "
            "$SELFSUP_UCR_DIR to a folder of NAME/NAME_TRAIN.ts files"
        )


@datasets_app.command("show", epilog="Example: `selfsup datasets show fashion-mnist:test`")
def datasets_show(
    data: Annotated[str, typer.Argument(help="Dataset name, folder or file.")],
    modality: Annotated[
        str | None, typer.Option(help="image, series or tabular (default: inferred).")
    ] = None,
) -> None:
    """Describe a dataset: size, item shape, classes and counts."""
    import numpy as np

    from selfsup.data import open_source

    source = open_source(data, modality)
    first = source.read_batch([0]).items
    info = {"name": source.name, "items": len(source), "item_shape": list(first.shape[1:])}
    if source.labels is not None:
        counts = np.bincount(source.labels)
        names = source.classes or [str(i) for i in range(len(counts))]
        info["classes"] = {names[i]: int(c) for i, c in enumerate(counts)}
    console.print_json(json.dumps(info))


class MadeDataset(str, Enum):
    spoken_words = "spoken-words"


@datasets_app.command(
    "make", epilog="Example: `selfsup datasets make spoken-words data/spoken-words`"
)
def datasets_make(
    name: Annotated[MadeDataset, typer.Argument(help="The set to build: spoken-words.")],
    out: Annotated[Path, typer.Argument(help="Folder to create (must be new or empty).")],
    words: Annotated[
        str | None, typer.Option(help="Comma list of words (default: Speech Commands' ten).")
    ] = None,
    accents: Annotated[
        str | None, typer.Option(help="Comma list of espeak-ng accents (default: 7 English).")
    ] = None,
    variants: Annotated[
        str | None,
        typer.Option(help="Comma list of voice variants, e.g. m1,f2,klatt (default: 15 + plain)."),
    ] = None,
    speeds: Annotated[str, typer.Option(help="Comma list of words per minute.")] = "130,175",
    pitches: Annotated[str, typer.Option(help="Comma list of pitches, 0-99.")] = "35,65",
    test_fraction: Annotated[float, typer.Option(help="Fraction of voices kept for test.")] = 0.25,
    seed: Annotated[int, typer.Option(help="Seed of the voice split.")] = 0,
) -> None:
    """Build a labelled set: spoken-words synthesizes SYNTHETIC spoken words with espeak-ng,
    train/test split by voice (test voices are unseen)."""
    from selfsup.data import spoken_words as sw

    made = sw.make_spoken_words(
        out,
        words=_comma_list(words) or sw.DEFAULT_WORDS,
        accents=_comma_list(accents) or sw.DEFAULT_ACCENTS,
        variants=sw.DEFAULT_VARIANTS if variants is None else variants.split(","),
        speeds=[int(v) for v in _comma_list(speeds) or []],
        pitches=[int(v) for v in _comma_list(pitches) or []],
        test_fraction=test_fraction,
        seed=seed,
    )
    console.print(sw.describe_spoken_words(made))


@app.command(epilog="Example: `selfsup demo --time-budget 2`")
def demo(
    time_budget: Annotated[float, typer.Option(help="Minutes of training.")] = 10.0,
    method: Annotated[str, typer.Option(help="The objective.")] = "simclr",
    out: Annotated[str | None, typer.Option(help="Run folder.")] = None,
) -> None:
    """Pretrain on Fashion-MNIST (labels unused), evaluate on its test split vs raw pixels."""
    from selfsup.demo import run_demo

    run_demo(time_budget=time_budget, method=method, out=out, console=console)


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
) -> None:
    """Fit a calibrated classifier (head on the run's embeddings) from a few labels."""
    from selfsup.tools.adapt import adapt as adapt_model

    model = adapt_model(
        run,
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
        f"{model.head_kind} head on {m['labelled']} labels of {len(model.classes)} classes; "
        f"temperature {model.temperature:.3f} ({m['calibration']}): NLL "
        f"{m['nll_before']:.3f} -> {m['nll_after']:.3f}, ECE {m['ece_before']:.3f} -> "
        f"{m['ece_after']:.3f} on the calibration labels"
    )
    console.print(f"model folder: [bold]{out}[/bold]")


@app.command(
    epilog="Example: `selfsup predict models/fmnist fashion-mnist:test --out predictions.csv`"
)
def predict(
    model: Annotated[Path, typer.Argument(help="Model folder written by `selfsup adapt`.")],
    data: Annotated[str, typer.Argument(help="Data of the run's modality (name, folder, file).")],
    out: Annotated[Path, typer.Option(help="CSV: id, predicted, one p_<class> per class.")] = Path(
        "predictions.csv"
    ),
) -> None:
    """Predict classes with calibrated probabilities; accuracy is printed when DATA has labels."""
    import numpy as np

    from selfsup.tools.adapt import AdaptedModel, write_predictions

    adapted = AdaptedModel.load(model)
    table = write_predictions(adapted, data, out, show_progress=True)
    console.print(f"wrote {len(table)} predictions to {out}")
    source = adapted.run._source(data)
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
) -> None:
    """Rank which unlabeled items to label next (writes rank, id, score)."""
    from selfsup.tools.selection import select_for_run

    table = select_for_run(
        run, data, budget, strategy.value, labeled, seed, measure, show_progress=True
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False)
    console.print(f"wrote {len(table)} items to label next ({strategy.value}) to {out}")


class Scorer(str, Enum):
    knn = "knn"
    mahalanobis = "mahalanobis"


@app.command(
    epilog="Example: `selfsup anomalies runs/my-run ./today --normal ./last-month --fpr 0.01`"
)
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
) -> None:
    """Score items for anomaly from their embeddings; flag those above a threshold set for
    a target false-positive rate; AUROC and AUPRC when DATA's labels tell the anomalies."""
    from selfsup.tools.anomalies import score_for_run

    report = score_for_run(
        run, data, normal, scorer.value, k, fpr, _comma_list(anomaly_label), seed, True
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    report.table.to_csv(out, index=False)
    flagged = int(report.table["flagged"].sum())
    console.print(
        f"scores ({report.reference}) written to {out}; {flagged} of {len(report.table)} "
        f"flagged above {report.threshold:.4g}"
    )
    q = report.quality
    if q is not None:
        console.print(
            f"AUROC {q.auroc:.4f}, AUPRC {q.auprc:.4f} ({q.anomalies} anomalies of {q.items}); "
            f"flagged: {q.flagged_fpr:.3f} of normal items, {q.flagged_recall:.3f} of anomalies"
        )


@app.command(
    epilog="Examples: `selfsup audit runs/credit loans.csv --group region`; "
    "`selfsup audit runs/photos ./photos --groups groups.csv --model models/photos`"
)
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
) -> None:
    """Bias audit: accuracy, calibration and error rates per group, how the embedding
    separates the groups, and the largest gaps in plain words; saves audit.json and audit.png."""
    from selfsup.run import load
    from selfsup.tools.audit import audit_run

    result = audit_run(
        load(run), data, group_column=group, groups_file=groups, model=model, k=k, seed=seed,
        show_progress=True,
    )  # fmt: skip
    table = Table(title=f"{run} on {data}: by group")
    table.add_column("metric")
    for name in result.groups:
        table.add_column(f"{name} ({result.counts[name]})", justify="right")
    for metric, values in result.by_group.items():
        table.add_row(metric, *(f"{values.get(g, float('nan')):.3f}" for g in result.groups))
    console.print(table)
    console.print(
        "[dim]purity: neighbours in the same group above chance (0 to 1); separability: share "
        "of the group a linear probe recognizes; rankme: effective rank, equal-size samples[/dim]"
    )
    for note in result.notes:
        console.print(f"[dim]{note}[/dim]")
    for sentence in result.summary():
        console.print(("[bold red]large gap:[/bold red] " if result.large_gaps else "") + sentence)
    console.print(f"saved {run / 'audit.json'} and {run / 'audit.png'}")


@app.command(
    epilog="Examples: `selfsup explain runs/photos photos/cat/001.jpg --data ./photos`; "
    "`selfsup explain runs/digits digits:test#12 --method occlusion`"
)
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
) -> None:
    """What the encoder looks at: an attribution map of one item and its nearest neighbours
    in the training data, as PNG files."""
    from selfsup.run import load
    from selfsup.tools.explain import explain_item

    result = explain_item(
        load(run), item, data=data, model=model, target=target, method=method,
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
) -> None:
    """One self-contained HTML page of the run: training curves, label-free metrics,
    evaluations, an embedding map, neighbours, attributions and the audit; opens from disk."""
    from selfsup.tools.report import build_report

    page = build_report(run, data, out, groups_file=groups, use_umap=umap, items=items)
    console.print(f"wrote [bold]{page}[/bold] (figures as PNG in {run / 'report'})")


def main() -> None:
    """Entry point of the ``selfsup`` console script, with clear one-line errors."""
    from selfsup.config import ConfigError
    from selfsup.engine.monitor import CollapseError

    try:
        app()
    except (
        ConfigError,
        EmptySourceError,
        ItemReadError,
        FileNotFoundError,
        ValueError,
        FloatingPointError,
        CollapseError,
    ) as err:
        console.print(f"[bold red]error:[/bold red] {err}", soft_wrap=True, highlight=False)
        raise SystemExit(2) from None
