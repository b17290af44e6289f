"""Commands that read data with a run: ``embed``, ``evaluate`` and ``export``.

Both take the data options of ``selfsup pretrain`` (``--text-column``, ``--label-column``...),
which override what the run was trained with.

Example:
    $ selfsup embed runs/reviews new.csv --text-column body --out reviews.parquet
    $ selfsup evaluate runs/photos ./labelled --protocol knn,linear
    $ selfsup export runs/photos --format onnx --out photos-encoder
"""

from __future__ import annotations

import shlex
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated, Any

import typer

from selfsup.cli.app import app
from selfsup.cli.options import Overwrite, can_save_in, new_output, reads_data
from selfsup.cli.options import open_run as _open_run
from selfsup.console import console, print_evaluation, print_label_free
from selfsup.core.files import check_writable
from selfsup.core.progress import hint_when_longer


@app.command(epilog="Example: `selfsup embed runs/my-run ./photos --out embeddings.parquet`")
@reads_data
def embed(
    run: Annotated[Path, typer.Argument(help="Run folder.")],
    data: Annotated[
        str, typer.Argument(help="Folder, file (.npy/.npz, .ts, .csv, .parquet) or dataset name.")
    ],
    out: Annotated[
        Path,
        typer.Option(
            help="Output file: .parquet (id, label, readable, embedding columns), .npz "
            "(embeddings and ids) or .npy (ids in NAME.ids.txt beside it)."
        ),
    ],
    batch_size: Annotated[int, typer.Option(help="Items per batch (bounds memory).")] = 512,
    per_timestamp: Annotated[
        bool,
        typer.Option(
            "--per-timestamp", help="Series: one embedding per time step, (n, length, D) .npy."
        ),
    ] = False,
    overwrite: Overwrite = False,
    **options: Any,
) -> None:
    """Write one embedding per item (input order kept) to .npy or .parquet."""

    from selfsup.data.folders import unreadable_lines
    from selfsup.embedding import EmbeddingInterrupted, write_timestamps

    new_output(out, overwrite)  # before the data is opened and embedded
    if per_timestamp:
        if out.suffix != ".npy":
            raise typer.BadParameter("--per-timestamp writes a .npy file", param_hint="--out")
        opened = _open_run(run, options, device="auto")
        shape = write_timestamps(opened.encoder, opened.open(data), out, batch_size)
        console.print(f"wrote embeddings per time step, shape {shape}, to {out}")
        return
    opened = _open_run(run, options, device="auto")
    hint = _distill_hint(str(run), data, opened.encoder.spec or {}, options)
    try:
        with hint_when_longer(DISTILL_HINT_SECONDS, hint) if hint else nullcontext():
            result = opened.embed_to_file(data, out, batch_size, say=console.print)
    except EmbeddingInterrupted as stop:
        if stop.rows:
            console.print(
                f"interrupted: {stop.rows:,} rows are kept in {stop.folder}; the same "
                "command goes on from there"
            )
        raise typer.Exit(130) from None
    except KeyboardInterrupt:  # before any row was embedded (opening the data)
        raise typer.Exit(130) from None
    console.print(
        f"wrote {result.rows:,} embeddings of size {result.dim} to {result.path}"
        + (f" (ids in {result.ids_path})" if result.ids_path else "")
    )
    if result.skipped:
        count = len(result.skipped)
        console.print(
            f"[yellow]{count:,} unreadable item{'s' if count > 1 else ''} (NaN rows):[/yellow]"
        )
        for line in unreadable_lines((item.item_id, item.reason) for item in result.skipped):
            console.print(line, highlight=False)


#: Seconds of embedding through a pretrained model beyond which ``embed`` suggests a student.
DISTILL_HINT_SECONDS = 15 * 60


def _distill_hint(
    model: str, data: str, spec: dict[str, Any], options: dict[str, Any]
) -> str | None:
    """What ``embed`` says when embedding through a pretrained (``hf:``) model, or a run
    adapted from one, will take long: the command that distills a smaller student from it
    (``{eta}``: the time left), with the data options given; None for other encoders.

    Example:
        >>> hint = _distill_hint("hf:minilm", "t.jsonl", {"backbone": "hf:minilm"},
        ...                      {"text_column": "body", "id_column": None})
        >>> print(hint.split(": ", 2)[2])  # doctest: +ELLIPSIS
        selfsup pretrain t.jsonl --text-column body --method distill --teacher hf:minilm ...
    """
    from selfsup.backbones.hf import is_hf_backbone

    if not is_hf_backbone(spec.get("backbone")):
        return None
    given = " ".join(
        f"--{name.replace('_', '-')} {shlex.quote(str(getattr(value, 'value', value)))}"
        for name, value in options.items()
        if value is not None and not isinstance(value, bool)
    )
    pretrain = " ".join(
        part
        for part in ("selfsup pretrain", shlex.quote(data), given, "--method distill --teacher",
                     shlex.quote(model), "--time-budget 10 --out runs/student")
        if part
    )  # fmt: skip
    return (
        "note: {eta} to go; a smaller student distilled from this model embeds several times "
        f"faster and keeps most of its accuracy (BENCHMARKS.md, distillation): {pretrain}, "
        f"then selfsup embed runs/student {shlex.quote(data)}"
    )


@app.command(epilog="Example: `selfsup evaluate runs/my-run fashion-mnist --protocol knn,linear`")
@reads_data
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
    split_by: Annotated[
        str,
        typer.Option(
            help="Without --test: split the data's items (item), or its first folders "
            "(folder: a patient's scans, a day's photos, all on one side), or a table's rows "
            "by its first date and time column (time: the latest fifth scored, as a fraud "
            "team scores last month with what it learned before); auto: folder where "
            "the folders are patients (DICOM files of one PatientID per folder) or the units "
            "of sensor logs cut into --window windows, else item."
        ),
    ] = "auto",
    label_free: Annotated[
        bool,
        typer.Option("--label-free", help="Label-free metrics only (RankMe, alpha-ReQ...)."),
    ] = False,
    items: Annotated[int, typer.Option(help="Items sampled for --label-free.")] = 4096,
    **options: Any,
) -> None:
    """Evaluate a run with kNN, linear probe and few-shot next to raw inputs, or without
    labels (--label-free); saves JSON in the run folder."""
    from selfsup.core.files import write_json

    # Embedding for the probes runs on the GPU when one is present; label-free views on the CPU.
    opened = _open_run(run, options, device="cpu" if label_free else "auto")
    save = can_save_in(opened.path)  # a read-only run folder is told before the work
    if label_free:
        source = opened.open(data)
        metrics = opened.evaluate_label_free(source, items=items, seed=seed, save=False)
        print_label_free(metrics, f"{run} on {data}: label-free metrics")
        if save:
            write_json(opened.label_free_file(source.name), metrics.to_dict())
        return
    protocols = (
        None if protocol is None else tuple(p.strip() for p in protocol.split(",") if p.strip())
    )
    result = opened.evaluate(
        data, test, protocols, shots=shots, draws=draws, seed=seed, save=False,
        show_progress=True, split_by=split_by,
    )  # fmt: skip
    print_evaluation(result, f"{run} on {data}")
    if save:  # printed first: a disk that fills up now loses no result
        result.save(opened.evaluation_file(result.train_data))


@app.command(epilog="Example: `selfsup export runs/my-run --format onnx --out my-encoder`")
@reads_data
def export(
    run: Annotated[Path, typer.Argument(help="Run folder (or hf:PATH for a frozen model).")],
    format: Annotated[
        str, typer.Option(help="onnx, torchscript, safetensors or hf (transformers backbones).")
    ] = "onnx",
    out: Annotated[
        Path | None, typer.Option(help="Export folder (default: RUN/export-FORMAT).")
    ] = None,
    data: Annotated[
        str | None,
        typer.Option(help="Items to check the export on (default: the run's training data)."),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing export folder.")
    ] = False,
    **options: Any,
) -> None:
    """Export the encoder with its input normalization and a model card; check it gives the
    run's embeddings (max abs difference <= 1e-4 on real items) and time it."""
    from selfsup.export import export_run

    opened = _open_run(run, options)
    default = Path(f"{opened.path.name}-{format}") if opened.summary.get("frozen") else None
    target = out or default or opened.path / f"export-{format}"
    check_writable(target)  # before the export is built and checked
    result = export_run(opened, format, target, data=data, overwrite=overwrite)
    console.print(result.describe(), soft_wrap=True, highlight=False)
