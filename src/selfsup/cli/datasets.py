"""``selfsup datasets``: list the named datasets, describe any data, make the synthetic sets.

Example:
    $ selfsup datasets list
    $ selfsup datasets show fashion-mnist:test
"""

from __future__ import annotations

import json
import os
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from selfsup.cli.app import datasets_app
from selfsup.cli.options import (
    DATA_FIELDS,
    config_options,
    to_config_values,
    with_parameters,
)
from selfsup.cli.options import parse_list as _comma_list
from selfsup.console import console

if TYPE_CHECKING:
    from selfsup.data.base import Source


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


def datasets_show(
    data: Annotated[str, typer.Argument(help="Dataset name, folder or file.")],
    modality: Annotated[
        str | None,
        typer.Option(help="image, series, tabular, text or audio (default: inferred)."),
    ] = None,
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Read every item, as training would, and list those that cannot be read "
            "(and why) before a long run meets them.",
        ),
    ] = False,
    **options: Any,
) -> None:
    """Describe a dataset: size, item shape, classes and counts (of the labelled items, and
    how many have no label, when only some do); with --check, read every item and list the
    unreadable ones. The data options are those of ``selfsup pretrain`` (``--label-column``,
    ``--text-column``...)."""
    import numpy as np

    from selfsup.data.splits import labelled_part
    from selfsup.modalities import (
        claimed_modality,
        get_modality,
        open_source,
        refuse_foreign_options,
    )

    values = to_config_values(options)  # an option the data does not read is refused
    refuse_foreign_options(values, get_modality(modality or claimed_modality(data, values)))
    source = open_source(data, modality, **values)
    first = source.first_item()
    info: dict = {"name": source.name, "items": len(source), "item_shape": list(first.shape[1:])}
    labelled = labelled_part(source)
    if labelled.labels is not None:
        counts = np.bincount(labelled.labels)
        names = labelled.classes or [str(i) for i in range(len(counts))]
        info["classes"] = {names[i]: int(c) for i, c in enumerate(counts)}
        if labelled is not source:
            info["without_label"] = len(source) - len(labelled)
    sampled = getattr(source, "sampled_tokens", None)  # text: how much of a document a read holds
    if sampled is not None:
        lengths, read = sampled(), source.tokenizer.window_tokens  # type: ignore[attr-defined]
        info["tokens"] = {
            "documents_sampled": len(lengths),
            "median": int(np.median(lengths)),
            "longest": int(lengths.max()),
            "read_at_once": read,
            "longer_than_a_read": int((lengths > read).sum()),
        }
    if source.index_note:
        info["files"] = source.index_note
    if source.labels_note:
        info["labels_from"] = source.labels_note
    if source.inputs_note:
        info["inputs"] = source.inputs_note
    if source.warning:
        info["warning"] = source.warning
    if check:
        # As training reads them: a phone's 12-megapixel photos at 128 pixels on a CPU (400
        # HEICs from their thumbnails in 7.6 s instead of 60 s at their own size).
        get_modality(source.modality).read_as_trained(source)
        unreadable = read_every_item(source)
        info["readable"] = len(source) - len(unreadable)
        info["unreadable"] = unreadable
    console.print_json(json.dumps(info))


datasets_app.command(
    "show",
    epilog="Examples: `selfsup datasets show fashion-mnist:test`; `selfsup datasets show ./photos "
    "--check` (reads every item first, as a long run would); `selfsup datasets show tx.csv "
    "--label-column fraud` (classes of the labelled rows, and how many have none)",
)(with_parameters(datasets_show, config_options(DATA_FIELDS, "inferred")))


#: Bytes of one batch ``read_every_item`` reads at most (as float32): 64 MB, 23 photos of
#: 480x480 at a time, 256 small items.
CHECK_BATCH_BYTES = 64 * 2**20


def read_every_item(source: Source, workers: int | None = None) -> dict[str, str]:
    """Read every item of ``source`` in batches (with a progress bar), files decoded by
    ``workers`` processes (default: one per CPU core, as memory allows), and return those
    that cannot be read, id -> reason; items a reader left out when it opened the data (a
    text folder's binary files) are among them.

    Example:
        >>> from selfsup.data.text import TextSource
        >>> read_every_item(TextSource(["a b", "c"]))  # doctest: +ELLIPSIS
        reading texts: step 1/1 (100%), ...
        {}
    """
    from selfsup.core.progress import TrainingProgress
    from selfsup.data.loading import affordable_workers, read_ahead

    n = len(source)
    item_bytes = 4 * source.first_item().numel()
    batch_size = max(1, min(256, CHECK_BATCH_BYTES // item_bytes))
    if workers is None:
        workers = (os.cpu_count() or 1) if source.reads_files else 0
    workers = affordable_workers(source, batch_size, workers)
    steps = -(-n // batch_size)
    with TrainingProgress(steps, f"reading {source.name}", enabled=True) as bar:
        for batch in read_ahead(source, batch_size, workers):
            bar.advance(1, len(batch.indices))
    return dict(sorted(source.unreadable.items()))


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


@datasets_app.command("pack", epilog="Example: `selfsup datasets pack ./photos data/photos-shards`")
def datasets_pack(
    folder: Annotated[Path, typer.Argument(help="A folder of images (class subfolders kept).")],
    out: Annotated[Path, typer.Argument(help="Folder to create (must be new or empty).")],
    rows_per_group: Annotated[
        int, typer.Option(help="Items per Parquet row group (the unit of reading).")
    ] = 256,
    labels: Annotated[
        Path | None,
        typer.Option(help="A table labelling the files (see `selfsup pretrain --help`)."),
    ] = None,
    label_column: Annotated[str | None, typer.Option(help="Its label column.")] = None,
    id_column: Annotated[str | None, typer.Option(help="Its column of file names.")] = None,
) -> None:
    """Pack an image folder into Parquet shards that train and embed with bounded memory
    (files copied as they are, read row group by row group, shuffled in blocks); give OUT
    wherever a folder of images is accepted. Labels from class subfolders or ``--labels``
    are packed with the files (those without one unlabelled)."""
    import time

    from selfsup.data.shards import pack_image_folder

    started = time.perf_counter()
    count = pack_image_folder(
        folder,
        out,
        rows_per_group,
        labels_file=labels,
        label_column=label_column,
        id_column=id_column,
    )
    console.print(f"packed {count:,} images into {out} in {time.perf_counter() - started:.0f} s")
