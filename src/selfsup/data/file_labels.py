"""Labels of a folder's files: from a table that names them, or from their subfolders.

A folder of 200,000 photos rarely comes sorted into one subfolder per class: its 300 labels
live in a table (a spreadsheet export, an annotation tool's CSV). ``--labels FILE`` names that
table: one row per labelled file, a column of file names and a label column. Files the table
does not name, or names with an empty label, are unlabelled items of the same data (see
:class:`selfsup.data.base.PartialLabels`), so pretraining and embedding read every file while
evaluation and adaptation use the labelled ones. A ``metadata.csv`` (or ``.jsonl``,
``.parquet``) with a ``file_name`` column at the folder's top, as Hugging Face's
``imagefolder`` and ``audiofolder`` read it, is such a table without the option.

Example:
    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> table = root / "labels.csv"
    >>> _ = table.write_text("file_name,label\\nb.png,dog\\n")
    >>> found = folder_labels(root, ["a.png", "b.png"], table)
    >>> found.labels, found.partial.rows.tolist(), found.partial.classes
    (None, [1], ['dog'])
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from selfsup.core.errors import one_line
from selfsup.core.text_files import text_lines
from selfsup.data.arrays import present_labels
from selfsup.data.base import PartialLabels
from selfsup.data.folders import subfolder_labels
from selfsup.data.table_files import TABLE_SUFFIXES, read_table, sheet_note

#: Tables at a folder's top read as its labels without ``--labels`` (Hugging Face's names).
METADATA_FILES = ("metadata.csv", "metadata.jsonl", "metadata.parquet")
#: The columns looked for, in this order, as a table's file names (without ``--id-column``).
FILE_COLUMNS = ("file_name", "file", "filename", "path", "image", "id")
#: The label column without ``--label-column``.
LABEL_COLUMN = "label"
_TABLE_SUFFIXES = (*TABLE_SUFFIXES, ".jsonl")


class NoFileNamedError(ValueError):
    """A labels table none of whose rows names a file of the folder (it may name items of
    another kind: the tiles of its images)."""


@dataclass
class FolderLabels:
    """The labels of a folder's files.

    Attributes:
        labels: int64 codes per file when every file has a label, else None.
        classes: their class names (sorted), else None.
        partial: the labels of some files only, else None.
        note: where the labels came from, for people (None: there are none).
        warning: what a person should know (files without a label, rows naming no file).
    """

    labels: np.ndarray | None = None
    classes: list[str] | None = None
    partial: PartialLabels | None = None
    note: str | None = None
    warning: str | None = None


#: How a folder's labels note begins when its first-level folders are its classes.
SUBFOLDER_NOTE = "classes from the first-level folder names"


def metadata_file(root: str | os.PathLike) -> Path | None:
    """The Hugging Face style metadata table at the top of ``root``, if there is one.

    Example:
        >>> metadata_file("/nonexistent") is None
        True
    """
    for name in METADATA_FILES:
        path = Path(root) / name
        if path.is_file():
            return path
    return None


def folder_labels(
    root: str | os.PathLike,
    files: Sequence[str],
    labels_file: str | os.PathLike | None = None,
    label_column: str | None = None,
    id_column: str | None = None,
    aliases: Mapping[str, int] | None = None,
) -> FolderLabels:
    """The labels of ``files`` (paths relative to ``root``): from ``labels_file`` when given,
    else from a ``metadata.csv`` at the top of ``root`` that has a file-name and a label
    column, else from the first-level subfolders (:func:`subfolder_labels`), else none.

    Args:
        root: the folder.
        files: its files, "/"-separated paths relative to it.
        labels_file: a CSV, TSV, Parquet or JSONL table with a row per labelled file.
        label_column: the table's label column (default ``label``; a table of two columns
            whose other one holds the file names needs none).
        id_column: the table's column of file names (default: the first of
            ``FILE_COLUMNS`` it has). A name is the file's path relative to ``root``
            ("cats/a.jpg"), relative to the table's own folder or the working directory, or
            absolute; a path on another machine (an annotation tool's
            "/home/ann/photos/cats/a.jpg") is matched by its last folders ("cats/a.jpg"),
            and any name by its file name where no other file in the folder has it.
        aliases: other names of the files, by position (an image of five channel files is
            named by any of them, and by its id ``r01c01f01-ch*.tiff``).

    Raises:
        ValueError: the table cannot be read, lacks a column (the message lists those it
            has), names no file of the folder, labels one file twice differently, or has an
            empty label column.
    """
    if labels_file is None:
        found = metadata_file(root)
        if found is not None and _has_columns(found, label_column, id_column):
            return _from_table(
                Path(root), files, found, label_column, id_column, guess=False, aliases=aliases
            )
        subfolders = subfolder_labels(files)
        if subfolders is None:
            return FolderLabels()
        note = f"{SUBFOLDER_NOTE}; --labels FILE for others"
        return FolderLabels(labels=subfolders[1], classes=subfolders[0], note=note)
    return _from_table(
        Path(root), files, Path(labels_file), label_column, id_column, aliases=aliases
    )


def _read(path: Path, rows: int | None = None) -> pd.DataFrame:
    """The table at ``path``, every cell as text (missing cells None)."""
    if not path.is_file():
        raise ValueError(f"{path}: no such labels file")
    suffix = path.suffix.lower()
    if suffix not in _TABLE_SUFFIXES:
        raise ValueError(
            f"{path}: cannot read {suffix or 'suffix-less'} files as labels; expected "
            f"{', '.join(_TABLE_SUFFIXES)}"
        )
    if suffix != ".jsonl":
        return read_table(path, as_text=True, rows=rows)
    records = []
    for number, line in text_lines(path):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as err:
            raise ValueError(f"{path}: line {number}: not valid JSON ({one_line(err)})") from None
        if not isinstance(record, dict):
            raise ValueError(f"{path}: line {number}: not a JSON object")
        records.append({k: None if v is None else str(v) for k, v in record.items()})
        if rows is not None and len(records) > rows:
            break
    return pd.DataFrame.from_records(records).astype(object)


def _has_columns(path: Path, label_column: str | None, id_column: str | None) -> bool:
    """Whether a metadata table has a file-name and a label column (Hugging Face's may hold
    only captions or other fields: it then labels nothing)."""
    try:
        columns = list(_read(path, rows=1).columns)
    except ValueError:
        return True  # read it to say what is wrong with it
    try:
        _columns(path, columns, label_column, id_column, guess=False)
    except ValueError:
        return False
    return True


def _columns(
    path: Path,
    columns: list[str],
    label_column: str | None,
    id_column: str | None,
    guess: bool = True,
) -> tuple[str, str]:
    """The table's file-name and label columns; with ``guess``, the other column of a table
    of two is the labels (not so in a metadata table, whose other column may be captions)."""

    def have() -> str:
        """The columns, and the sheet read where the labels may sit on another."""
        sheet = sheet_note(path)
        return ", ".join(map(repr, columns)) + (f" ({sheet})" if sheet else "")

    if id_column is not None:
        if id_column not in columns:
            raise ValueError(f"{path}: no column {id_column!r} of file names; it has {have()}")
        name = id_column
    else:
        name = next((c for c in FILE_COLUMNS if c in columns), None)
        if name is None:
            raise ValueError(
                f"{path}: no column of file names ({', '.join(FILE_COLUMNS)}, or give "
                f"--id-column); it has {have()}"
            )
    label = label_column or LABEL_COLUMN
    if label not in columns:
        others = [c for c in columns if c != name]
        if guess and label_column is None and len(others) == 1:
            return name, others[0]
        raise ValueError(f"{path}: no label column {label!r} (--label-column); it has {have()}")
    return name, label


def _from_table(
    root: Path,
    files: Sequence[str],
    path: Path,
    label_column: str | None,
    id_column: str | None,
    guess: bool = True,
    aliases: Mapping[str, int] | None = None,
) -> FolderLabels:
    table = _read(path)
    name_column, label_column = _columns(path, list(table.columns), label_column, id_column, guess)
    place = _FilePlaces(root, files, path.parent, aliases)
    values: list[str | None] = [None] * len(files)
    row_of: dict[int, int] = {}  # each labelled file's row
    named: set[int] = set()
    unknown: list[str] = []
    names, labels = table[name_column].tolist(), table[label_column].tolist()
    for row, (name, label) in enumerate(zip(names, labels, strict=True)):
        if name is None or not str(name).strip():
            continue
        at = place.find(str(name))
        if at is None:
            unknown.append(str(name))
            continue
        label = label if label is not None and str(label).strip() else None
        if label is not None and values[at] not in (None, label):
            raise ValueError(
                f"{path}: {files[at]!r} is labelled {values[at]!r} on row {row_of[at] + 1} "
                f"and {label!r} on row {row + 1} (rows from 1 after the header)"
            )
        if label is not None:
            row_of[at] = row
            values[at] = label
        named.add(at)
    if not named:
        first = next((str(n) for n in names if n is not None), None)
        raise NoFileNamedError(
            f"{path}: its {len(table):,} rows name none of the {len(files):,} files in {root} "
            f"(its first name {first!r}; the folder's first file {files[0]!r}); names are "
            "paths relative to the folder, or bare file names"
        )
    codes, classes, partial = present_labels(values, label_column)
    if codes is None and partial is None:
        raise ValueError(
            f"{path}: the label column {label_column!r} is empty on every row that names a file"
        )
    notes = []
    if partial is not None:
        notes.append(partial.note(len(files), "files"))
    if unknown:
        notes.append(
            f"{len(unknown):,} row(s) of {path.name} name no file in {root} and are left out "
            f"(first: {unknown[0]!r})"
        )
    labelled = len(files) if partial is None else len(partial.rows)
    sheet = sheet_note(path)
    return FolderLabels(
        labels=codes,
        classes=classes,
        partial=partial,
        note=f"labels of {labelled:,} files from {path} (columns {name_column!r}, "
        f"{label_column!r}{'; ' + sheet if sheet else ''})",
        warning="; ".join(notes) or None,
    )


class _FilePlaces:
    """Finds a file of the folder from the way a table names it."""

    def __init__(
        self,
        root: Path,
        files: Sequence[str],
        table_dir: Path,
        aliases: Mapping[str, int] | None = None,
    ) -> None:
        self.position = {**(aliases or {}), **{rel: i for i, rel in enumerate(files)}}
        self.files = files
        self.top = os.path.realpath(root)
        self.bases = [os.path.realpath(table_dir), os.getcwd()]
        self._by_name: dict[str, int | None] | None = None

    def find(self, name: str) -> int | None:
        """The position of the file ``name`` means, or None."""
        key = name.strip().replace("\\", "/")
        while key.startswith("./"):
            key = key[2:]
        if key in self.position:
            return self.position[key]
        for base in self.bases:
            full = os.path.normpath(os.path.join(base, key))  # an absolute key stays itself
            rel = os.path.relpath(full, self.top).replace(os.sep, "/")
            if not rel.startswith("../") and rel in self.position:
                return self.position[rel]
        parts = key.split("/")
        for start in range(1, len(parts) - 1):  # a path on another machine: its last folders
            tail = "/".join(parts[start:])
            if tail in self.position:
                return self.position[tail]
        return self._names().get(parts[-1])

    def _names(self) -> dict[str, int | None]:
        """Each file name (without folders) and its position; None where several share it."""
        if self._by_name is None:
            self._by_name = {}
            for rel, i in self.position.items():
                base = rel.rsplit("/", 1)[-1]
                self._by_name[base] = None if self._by_name.get(base, i) != i else i
        return self._by_name


#: The data options of a folder source that say where its labels are (``--labels``...).
LABEL_OPTIONS = ("labels", "label_column", "id_column")


def folder_options(options: dict[str, Any]) -> dict[str, Any]:
    """A modality's data options as a folder source's arguments: ``labels`` (the option's
    name) is the source's ``labels_file`` (its ``labels`` are the codes).

    Example:
        >>> folder_options({"labels": "l.csv", "image_size": 64})
        {'image_size': 64, 'labels_file': 'l.csv'}
    """
    kwargs = {k: v for k, v in options.items() if k != "labels"}
    if options.get("labels") is not None:
        kwargs["labels_file"] = options["labels"]
    return kwargs
