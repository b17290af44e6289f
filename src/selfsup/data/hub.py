"""Hugging Face datasets of images as the Hub and ``datasets`` write them, read without it.

A dataset downloaded from the Hugging Face Hub (``huggingface-cli download --repo-type
dataset``) is a folder of Parquet files, one or more per split
(``data/train-00000-of-00004.parquet``, ``data/test-00000-of-00001.parquet``, or
``train/0000.parquet``); ``Dataset.save_to_disk``
writes Arrow files with a ``state.json`` (a ``DatasetDict``: a folder per split and a
``dataset_dict.json``); ``Dataset.to_parquet`` one Parquet file. In all of them an image is a
column of ``{bytes, path}`` records (the encoded file, or where it lies when ``bytes`` is
empty), and the ``huggingface`` entry of the schema's metadata names the features: which
column is the ``Image``, and the class names of a ``ClassLabel`` column (its rows hold codes;
``-1`` is "no label", as in the unlabelled test splits of many benchmarks).

:func:`hub_files` finds the files of one split cheaply (it reads schemas only);
:class:`HubImageSource` reads them as :class:`~selfsup.data.shards.ShardSource` reads packed
shards: row group by row group (Arrow record batches cut to ``ROWS_PER_GROUP``), decoded
at the side training asks for, with bounded memory. A ``DATA`` argument ``PATH:SPLIT``
(``photos:test``) names a split; ``PATH`` alone the ``train`` split where there is one.

Example:
    >>> import io, json, tempfile
    >>> import pyarrow as pa, pyarrow.parquet as pq
    >>> from PIL import Image
    >>> def png(value):
    ...     out = io.BytesIO()
    ...     Image.new("RGB", (8, 8), (value, 0, 0)).save(out, format="PNG")
    ...     return out.getvalue()
    >>> features = {"image": {"_type": "Image"},
    ...             "label": {"_type": "ClassLabel", "names": ["cat", "dog"]}}
    >>> meta = {"huggingface": json.dumps({"info": {"features": features}})}
    >>> rows = [{"image": {"bytes": png(i), "path": None}, "label": i % 2} for i in range(6)]
    >>> folder = Path(tempfile.mkdtemp())
    >>> table = pa.Table.from_pylist(rows).replace_schema_metadata(meta)
    >>> pq.write_table(table, folder / "train-00000-of-00001.parquet")
    >>> pq.write_table(table.slice(0, 2), folder / "test-00000-of-00001.parquet")
    >>> source = HubImageSource(str(folder))
    >>> len(source), source.classes, source.ids[5], source.read(1).shape
    (6, ['cat', 'dog'], '5', torch.Size([3, 8, 8]))
    >>> len(HubImageSource(f"{folder}:test"))
    2
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from selfsup.data.arrays import present_labels
from selfsup.data.audio import AudioBytes, AudioFolderSource
from selfsup.data.base import ItemReadError, PartialLabels, check_unique_ids
from selfsup.data.image_folder import natural_order
from selfsup.data.shards import (
    CACHED_BYTES,
    CACHED_GROUPS,
    ROWS_PER_GROUP,
    WINDOW_GROUPS,
    ShardSource,
    blob_bytes,
    block_order,
)

#: The files a Hugging Face dataset is written in.
HUB_SUFFIXES = (".parquet", ".arrow")
#: The words a split's files or folder are named by, as ``datasets`` resolves data files.
SPLIT_WORDS = {
    "train": "train",
    "training": "train",
    "validation": "validation",
    "valid": "validation",
    "val": "validation",
    "dev": "validation",
    "test": "test",
    "testing": "test",
    "eval": "test",
    "evaluation": "test",
}
#: The order splits are preferred in: the one read when none is named first.
SPLIT_ORDER = ("train", "validation", "test")
#: Columns that hold encoded images without a ``datasets`` feature saying so (a WebDataset
#: or an export written to Parquet by hand).
IMAGE_COLUMN_NAMES = ("image", "img", "jpg", "jpeg", "png", "webp")
#: Words that name a column of ``{bytes, path}`` records as sounds without features saying so.
SOUND_COLUMN_WORDS = ("audio", "sound", "speech", "wav")
#: What a column of encoded files holds, as ``datasets`` names its features.
IMAGE, AUDIO = "Image", "Audio"
#: Columns read as labels when the features name no ``ClassLabel`` and none is given.
LABEL_COLUMN_NAMES = ("label", "labels")
#: Files of other kinds a folder may hold beside a dataset's Parquet files (its card, its
#: `.gitattributes`, a preview): a folder with more is not a dataset download, and the
#: search for Parquet files stops there (a folder of a million photos is not walked).
MAX_OTHER_FILES = 1000
#: A row group larger than this share of the memory available is refused (it is read whole).
GROUP_MEMORY_SHARE = 0.125


@dataclass(frozen=True)
class HubFiles:
    """The files of one split of a Hugging Face dataset, and what its features say.

    Attributes:
        path: the file or folder the ``DATA`` argument names (without ``:SPLIT``).
        split: the split read (None: the files name no split).
        files: its files, in order (their rows, one after another, are the split's rows).
        splits: every split found and its number of files.
        features: the ``datasets`` features mapping (empty when the files carry none).
        media: the column of encoded images or sounds (None: a dataset of texts or tables).
        kind: what that column holds, the ``datasets`` feature: ``Image`` or ``Audio``.
        arrow: Arrow files (``save_to_disk``) rather than Parquet.
    """

    path: Path
    split: str | None
    files: tuple[Path, ...]
    splits: dict[str, int] = field(default_factory=dict)
    features: dict[str, Any] = field(default_factory=dict)
    media: str | None = "image"
    kind: str = IMAGE
    arrow: bool = False

    def class_names(self, column: str) -> list[str] | None:
        """The names of a ``ClassLabel`` column's codes, or None for another column."""
        feature = self.features.get(column)
        if not isinstance(feature, dict) or feature.get("_type") != "ClassLabel":
            return None
        names = feature.get("names")
        if isinstance(names, list) and names:
            return [str(n) for n in names]
        count = feature.get("num_classes")
        return [str(i) for i in range(int(count))] if isinstance(count, int) else None

    def class_label_columns(self) -> list[str]:
        """The ``ClassLabel`` columns, in the features' order."""
        return [c for c in self.features if self.class_names(c) is not None]

    def others(self) -> list[str]:
        """The splits not read, in order."""
        return [s for s in self.splits if s != self.split]


def split_spec(spec: str | os.PathLike) -> tuple[Path, str | None]:
    """``PATH:SPLIT`` as the path and the split; a path that exists as it is has no split.

    Example:
        >>> split_spec("/tmp:test"), split_spec("/tmp")
        ((PosixPath('/tmp'), 'test'), (PosixPath('/tmp'), None))
    """
    path = Path(spec).expanduser()
    text = str(spec)
    if path.exists() or ":" not in text:
        return path, None
    head, _, split = text.rpartition(":")
    base = Path(head).expanduser()
    return (base, split) if base.exists() and split else (path, None)


def split_of(relative: Path) -> str | None:
    """The split a file is named for: a folder of a split's name on its path, or the first
    word of its name (``train-00000-of-00004.parquet``, ``test.parquet``).

    Example:
        >>> split_of(Path("data/train-00000-of-00004.parquet")), split_of(Path("valid/0.parquet"))
        ('train', 'validation')
        >>> split_of(Path("photos.parquet")) is None
        True
    """
    for part in relative.parts[:-1]:
        if part.lower() in SPLIT_WORDS:
            return SPLIT_WORDS[part.lower()]
    word = re.split(r"[-._ ]", relative.name.lower(), maxsplit=1)[0]
    return SPLIT_WORDS.get(word)


def _schema(file: Path) -> Any:
    """The Arrow schema of a Parquet or Arrow (IPC stream or file) file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if file.suffix.lower() == ".parquet":
        return pq.read_schema(file)
    with pa.memory_map(str(file)) as source:
        try:
            return pa.ipc.open_stream(source).schema
        except pa.ArrowInvalid:
            return pa.ipc.open_file(source).schema


def _features(schema: Any, info: Path | None = None) -> dict[str, Any]:
    """The ``datasets`` features of a file: its schema's ``huggingface`` metadata, else a
    ``dataset_info.json`` beside it."""
    meta = schema.metadata or {}
    try:
        if b"huggingface" in meta:
            found = json.loads(meta[b"huggingface"]).get("info", {}).get("features")
            if isinstance(found, dict):
                return found
        if info is not None and info.is_file():
            found = json.loads(info.read_text()).get("features")
            if isinstance(found, dict):
                return found
    except (ValueError, AttributeError):  # metadata of another tool: no features
        pass
    return {}


def _media_column(schema: Any, features: dict[str, Any]) -> tuple[str, str] | None:
    """The column of encoded files and what they are (``image`` or ``audio``): the
    features' ``Image`` or ``Audio``, else a ``{bytes, path}`` record column (sounds where
    its name says ``audio``) or a binary column named as images are (``image``, ``jpg``...)."""
    import pyarrow as pa

    for name, feature in features.items():
        kind = feature.get("_type") if isinstance(feature, dict) else None
        if kind in (IMAGE, AUDIO) and name in schema.names:
            return name, kind
    for column in schema:
        kind = column.type
        fields = (
            {kind.field(i).name for i in range(kind.num_fields)}
            if pa.types.is_struct(kind)
            else set()
        )
        if {"bytes", "path"} <= fields:
            sound = any(word in column.name.lower() for word in SOUND_COLUMN_WORDS)
            return column.name, AUDIO if sound else IMAGE
        is_blob = pa.types.is_binary(kind) or pa.types.is_large_binary(kind)
        if is_blob and column.name.lower() in IMAGE_COLUMN_NAMES:
            return column.name, IMAGE
    return None


def _saved_files(folder: Path) -> list[Path] | None:
    """The Arrow files ``save_to_disk`` lists in a folder's ``state.json``, or None."""
    state = folder / "state.json"
    if not state.is_file():
        return None
    try:
        names = [entry["filename"] for entry in json.loads(state.read_text())["_data_files"]]
    except (ValueError, KeyError, TypeError):
        return None
    return [folder / name for name in names]


def _split_files(path: Path) -> dict[str | None, list[Path]]:
    """A dataset's files by split: a ``DatasetDict`` folder, a ``save_to_disk`` folder, a
    folder of Parquet files (split by their names), or one file."""
    if path.is_file():
        return {None: [path]} if path.suffix.lower() in HUB_SUFFIXES else {}
    if not path.is_dir():
        return {}
    listing = path / "dataset_dict.json"
    if listing.is_file():
        try:
            names = json.loads(listing.read_text())["splits"]
        except (ValueError, KeyError, TypeError):
            return {}
        found = {str(n): _saved_files(path / str(n)) for n in names}
        return {k: v for k, v in found.items() if v}
    saved = _saved_files(path)
    if saved:
        return {None: saved}
    files, others = [], 0
    for folder, subfolders, names in os.walk(path):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        for name in names:
            if name.lower().endswith(".parquet") and not name.startswith("."):
                files.append(Path(folder, name))
            else:
                others += 1
        if others > MAX_OTHER_FILES:  # a folder of photos or texts (perhaps with a table)
            return {}
    files.sort()
    if not files:
        return {}
    splits = [split_of(f.relative_to(path)) for f in files]
    if None in splits:  # files of no split's name: one set of rows
        return {None: files}
    by_split: dict[str | None, list[Path]] = {}
    for file, split in zip(files, splits, strict=True):
        by_split.setdefault(split, []).append(file)
    return by_split


@functools.lru_cache(maxsize=64)
def _hub_layout(text: str, stamp: float) -> HubFiles | None:
    path, split = split_spec(text)
    by_split = _split_files(path)
    if not by_split:
        return None
    named = [s for s in by_split if s is not None]
    if split is None and named:
        split = min(named, key=lambda s: (*SPLIT_ORDER, s).index(s))
    if split is not None and split not in by_split:
        return None
    files = by_split[split]
    try:
        schema = _schema(files[0])
    except Exception:  # not a readable Parquet or Arrow file: the table readers say why
        return None
    features = _features(schema, files[0].parent / "dataset_info.json")
    media, kind = _media_column(schema, features) or (None, "table")
    arrow = files[0].suffix.lower() == ".arrow"
    if media is None and not (features or arrow or named):
        return None  # a table of the user's own: the table readers read it
    order = sorted(named, key=lambda s: (*SPLIT_ORDER, s).index(s))
    return HubFiles(
        path=path,
        split=split,
        files=tuple(files),
        splits={s: len(by_split[s]) for s in order},
        features=features,
        media=media,
        kind=kind,
        arrow=arrow,
    )


def hub_layout(spec: str | os.PathLike) -> HubFiles | None:
    """The files of the split ``spec`` names (``PATH`` or ``PATH:SPLIT``) of a Hugging Face
    dataset (files with ``datasets`` features, ``save_to_disk`` Arrow files, or Parquet
    files named by their splits), else None. Reads file names and the first file's schema.

    Example:
        >>> hub_layout("/nonexistent") is None
        True
    """
    path, _ = split_spec(spec)
    try:
        stamp = path.stat().st_mtime
    except OSError:
        return None
    return _hub_layout(str(spec), stamp)


def hub_files(spec: str | os.PathLike, kind: str = IMAGE) -> HubFiles | None:
    """:func:`hub_layout` where its files hold a column of encoded images (``kind``
    ``Audio``: sounds), else None.

    Example:
        >>> hub_files("/nonexistent") is None
        True
    """
    layout = hub_layout(spec)
    return layout if layout is not None and layout.media and layout.kind == kind else None


def refuse_labels_table(spec: str | os.PathLike, options: dict[str, Any]) -> None:
    """Refuse a ``--labels`` table for a Hugging Face dataset: its labels are a column.

    Example:
        >>> refuse_labels_table("photos", {"labels": "l.csv"})
        Traceback (most recent call last):
        ...
        ValueError: photos: a Hugging Face dataset's labels are its columns; --labels is for \
a folder's files (name the column with --label-column)
    """
    if options.get("labels") is not None:
        raise ValueError(
            f"{spec}: a Hugging Face dataset's labels are its columns; --labels is for a "
            "folder's files (name the column with --label-column)"
        )


def frame_note(layout: HubFiles, frame: pd.DataFrame) -> str:
    """:func:`layout_note`, and the columns :func:`hub_frame` left out.

    Example:
        >>> frame = pd.DataFrame({"a": [1]})
        >>> frame.attrs["left_out"] = ["tokens"]
        >>> frame_note(HubFiles(Path("ner"), None, (Path("a.parquet"),)), frame)
        'a Hugging Face dataset: 1 Parquet file; not read: tokens (lists or records)'
    """
    left_out = frame.attrs.get("left_out")
    note = layout_note(layout)
    return f"{note}; not read: {', '.join(left_out)} (lists or records)" if left_out else note


def layout_note(layout: HubFiles) -> str:
    """Which split of which files a source reads, and the other splits, for its data line.

    Example:
        >>> layout_note(HubFiles(Path("reviews"), "train", (Path("a.parquet"),), {"train": 1,
        ...     "test": 1}))
        'split train of a Hugging Face dataset: 1 Parquet file; also test (read one as reviews:test)'
    """  # noqa: E501
    kind = "Arrow (save_to_disk)" if layout.arrow else "Parquet"
    files = f"{len(layout.files)} {kind} file{'s' if len(layout.files) != 1 else ''}"
    if layout.split is None:
        return f"a Hugging Face dataset: {files}"
    note = f"split {layout.split} of a Hugging Face dataset: {files}"
    others = layout.others()
    if others:
        note += f"; also {', '.join(others)} (read one as {layout.path}:{others[0]})"
    return note


def hub_table(layout: HubFiles) -> Any:
    """The split's rows as one Arrow table, file after file (a ``datasets`` table)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    parts = [
        pa.Table.from_batches(_arrow_batches(f)) if layout.arrow else pq.read_table(f)
        for f in layout.files
    ]
    return pa.concat_tables(parts, promote_options="permissive") if len(parts) > 1 else parts[0]


def hub_frame(layout: HubFiles) -> tuple[pd.DataFrame, str | None]:
    """The split's rows as a DataFrame, ``ClassLabel`` codes as their class names (``-1``
    as an empty cell), and the column of labels the features name (a ``ClassLabel`` named
    ``label`` or ``labels``, else the first), or None (also where no row has a label).
    Columns of lists or records (token lists, nested annotations) are left out: no table or
    text reader takes them.

    Example:
        >>> import pyarrow as pa
        >>> layout = HubFiles(Path("x"), None, (), features={"y": {"_type": "ClassLabel",
        ...     "names": ["no", "yes"]}})
        >>> frame = _named_classes(pa.table({"a": [1.5, 2.5], "y": [1, -1]}), layout)
        >>> frame["y"].tolist(), default_label_column(layout, list(frame.columns))
        (['yes', None], 'y')
    """
    import pyarrow as pa

    table = hub_table(layout)
    nested = [f.name for f in table.schema if pa.types.is_nested(f.type) or f.name == layout.media]
    frame = _named_classes(table.drop_columns(nested), layout)
    if nested:  # said on the data line, with the split
        frame.attrs["left_out"] = nested
    column = default_label_column(layout, list(frame.columns))
    if column is not None and frame[column].isna().all():
        column = None  # a test split of -1 everywhere: unlabelled rows, not an error
    return frame, column


def _named_classes(table: Any, layout: HubFiles) -> pd.DataFrame:
    frame = table.to_pandas()
    for column in frame.columns:
        names = layout.class_names(column)
        if names is not None:
            named = [
                names[int(v)] if pd.notna(v) and 0 <= int(v) < len(names) else None
                for v in frame[column]
            ]
            frame[column] = pd.Series(named, index=frame.index, dtype=object)
    return frame


def default_label_column(layout: HubFiles, columns: list[str]) -> str | None:
    """The ``ClassLabel`` column read as labels when none is given: one named ``label`` or
    ``labels``, else the first; None when the features name none."""
    found = [c for c in layout.class_label_columns() if c in columns]
    preferred = [c for c in found if c in LABEL_COLUMN_NAMES]
    return (preferred or found or [None])[0]


def hub_text_column(spec: str | os.PathLike) -> str | None:
    """The column of texts of a Hugging Face dataset of texts: the one string column its
    features name, where the others are class labels or numbers (an ``idx``); None for
    any other data (two text columns, a table with a text column, images).

    Example:
        >>> hub_text_column("/nonexistent") is None
        True
    """
    layout = hub_layout(spec)
    if layout is None or layout.media is not None or not layout.features:
        return None
    texts, others = [], []
    for name, feature in layout.features.items():
        kind = feature.get("_type") if isinstance(feature, dict) else None
        dtype = feature.get("dtype") if isinstance(feature, dict) else None
        if kind == "Value" and dtype in ("string", "large_string"):
            texts.append(name)
        elif kind == "ClassLabel" or (kind == "Value" and str(dtype).startswith(("int", "uint"))):
            continue
        else:
            others.append(name)
    return texts[0] if len(texts) == 1 and not others else None


def _labelled(layout: HubFiles) -> bool:
    """Whether a split has a label on any row (benchmarks' test splits often hold ``-1``)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    names = _schema(layout.files[0]).names
    column = default_label_column(layout, names)
    column = column or next((c for c in LABEL_COLUMN_NAMES if c in names), None)
    if column is None:
        return False
    for file in layout.files:
        if layout.arrow:
            values = pa.chunked_array(
                [b.column(b.schema.get_field_index(column)) for b in _arrow_batches(file)]
            )
        else:
            values = pq.read_table(file, columns=[column]).column(0)
        if pa.types.is_integer(values.type):
            values = pc.if_else(pc.equal(values, -1), None, values)
        if values.null_count < len(values):
            return True
    return False


def hub_test_split(spec: str | os.PathLike) -> str | None:
    """``PATH:test`` (else ``PATH:validation``) when ``spec`` reads a Hugging Face dataset's
    train split and that split has labels (its ``ClassLabel`` column, else ``label``), as
    evaluation's test data; else None.

    Example:
        >>> hub_test_split("/nonexistent") is None
        True
    """
    layout = hub_layout(spec)
    if layout is None or layout.split != "train":
        return None
    for split in ("test", "validation"):
        if split in layout.splits:
            other = hub_layout(f"{layout.path}:{split}")
            if other is not None and _labelled(other):
                return f"{layout.path}:{split}"
    return None


def _parquet_groups(file: Path) -> list[tuple[int, int, int]]:
    """``(row group, 0, rows)`` of each row group of a Parquet file."""
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(file).metadata
    return [(g, 0, meta.row_group(g).num_rows) for g in range(meta.num_row_groups)]


def _arrow_batches(file: Path) -> list[Any]:
    """The record batches of an Arrow file, memory-mapped (nothing read until used)."""
    import pyarrow as pa

    source = pa.memory_map(str(file))
    try:
        return list(pa.ipc.open_stream(source))
    except pa.ArrowInvalid:
        reader = pa.ipc.open_file(source)
        return [reader.get_batch(i) for i in range(reader.num_record_batches)]


def _arrow_groups(file: Path) -> list[tuple[int, int, int]]:
    """``(batch, offset, rows)``: each record batch of an Arrow file cut into groups of at
    most ``ROWS_PER_GROUP`` rows (slicing a mapped batch reads nothing)."""
    return [
        (b, start, min(ROWS_PER_GROUP, batch.num_rows - start))
        for b, batch in enumerate(_arrow_batches(file))
        for start in range(0, batch.num_rows, ROWS_PER_GROUP)
    ]


class HubRows:
    """The rows of a Hugging Face dataset's split with encoded files (images or sounds):
    their groups (Parquet row groups, Arrow record batches cut to ``ROWS_PER_GROUP``), ids
    and labels, and each group's encoded files read when asked for.

    Ids are the files' names where every row has its own (``image.path``), else the rows'
    numbers in the split from 0 (``dataset[i]``), or the values of ``id_column``. Labels
    come from ``label_column``, else the features' ``ClassLabel`` column (its class names),
    else a column named ``label``; ``-1`` and empty cells are no label.

    Raises:
        ValueError: no column of files of ``kind``, a named column the split does not
            have, or row groups too large to read.
    """

    def __init__(
        self,
        spec: str | os.PathLike,
        kind: str,
        label_column: str | None = None,
        id_column: str | None = None,
    ) -> None:
        layout = hub_files(spec, kind)
        if layout is None:
            raise ValueError(f"{spec}: no Hugging Face dataset with a column of {kind} files")
        self.layout, self.name, self.kind = layout, str(spec), kind
        self.schema = _schema(layout.files[0])  # the footer, read once
        self.columns = list(self.schema.names)
        for option, column in (("--label-column", label_column), ("--id-column", id_column)):
            if column is not None and column not in self.columns:
                raise ValueError(
                    f"{spec}: {option} {column!r} is not a column of "
                    f"{layout.files[0].name} (columns: {', '.join(self.columns)})"
                )
        sizes = [
            (f, *group)
            for f, file in enumerate(layout.files)
            for group in (_arrow_groups(file) if layout.arrow else _parquet_groups(file))
        ]
        self.groups = [(f, g, offset) for f, g, offset, _ in sizes]
        self.counts = [n for *_, n in sizes]
        self.starts = np.cumsum([0, *self.counts])
        self._check_group_memory()
        self.ids = self._read_ids(id_column)
        self.labels: np.ndarray | None = None
        self.classes: list[str] | None = None
        self.partial_labels: PartialLabels | None = None
        self.warning: str | None = None
        self._read_labels(label_column)
        self.note = layout_note(layout)
        self._handles: dict[int, Any] = {}
        self._pid = os.getpid()

    def __len__(self) -> int:
        return int(self.starts[-1])

    def _column(self, name: str) -> list[Any]:
        """Every value of a column (a record's field as ``column.field``), file after file."""
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        values: list[Any] = []
        head, _, part = name.partition(".")
        for file in self.layout.files:
            if self.layout.arrow:
                for batch in _arrow_batches(file):
                    column = batch.column(batch.schema.get_field_index(head))
                    values.extend((pc.struct_field(column, part) if part else column).to_pylist())
            else:
                values.extend(pq.read_table(file, columns=[name]).column(0).to_pylist())
        return values

    def _read_ids(self, id_column: str | None) -> list[str]:
        if id_column is not None:
            values = self._column(id_column)
            missing = [i for i, v in enumerate(values) if v is None]
            if missing:
                raise ValueError(f"{self.name}: row {missing[0]} has no id in {id_column!r}")
            ids = [str(v) for v in values]
            check_unique_ids(ids, self.name)
            return ids
        import pyarrow as pa

        media = self.layout.media or ""
        if pa.types.is_struct(self.schema.field(media).type):
            paths = self._column(f"{media}.path")
            names = [os.path.basename(p) if isinstance(p, str) else None for p in paths]
            if None not in names and len(set(names)) == len(names):
                return names  # type: ignore[return-value]
            if None not in paths and len(set(paths)) == len(paths):
                return [str(p) for p in paths]
        return [str(i) for i in range(len(self))]

    def _read_labels(self, label_column: str | None) -> None:
        """Labels of every row (the label column only): class names of a ``ClassLabel``,
        values of another column; rows without one make the labels partial."""
        layout = self.layout
        column = label_column
        if column is None:
            found = [c for c in layout.class_label_columns() if c in self.columns]
            named = [c for c in LABEL_COLUMN_NAMES if c in self.columns]
            column = default_label_column(layout, self.columns) or (named or [None])[0]
            if len(found) > 1:
                self.warning = (
                    f"{self.name}: class labels in {', '.join(found)}; read {column!r} "
                    "(--label-column names another)"
                )
        if column is None:
            return
        values = self._column(column)
        names = layout.class_names(column)
        if names is not None:
            given = [
                names[v] if isinstance(v, int) and 0 <= v < len(names) else None for v in values
            ]
        else:
            given = [None if v is None or v == "" or v == -1 else str(v) for v in values]
        used = {v for v in given if v is not None}
        classes = [n for n in names if n in used] if names else sorted(used, key=natural_order)
        self.labels, self.classes, self.partial_labels = present_labels(given, column, classes)
        if self.partial_labels is not None:
            self.warning = self.partial_labels.note(len(self), "items")

    def _check_group_memory(self) -> None:
        """Refuse row groups so large that reading one would crowd the memory out."""
        import pyarrow.parquet as pq
        import torch

        from selfsup.core.memory import available_memory

        if self.layout.arrow:
            return  # record batches are mapped and read in slices
        largest, where = 0, ""
        for file in self.layout.files:
            meta = pq.ParquetFile(file).metadata
            for g in range(meta.num_row_groups):
                size = meta.row_group(g).total_byte_size
                if size > largest:
                    largest, where = size, f"{file.name}'s row group {g}"
        allowed = GROUP_MEMORY_SHARE * available_memory(torch.device("cpu"))
        if largest > allowed:
            raise ValueError(
                f"{self.name}: {where} holds {largest / 2**30:.1f} GiB, read whole for any of "
                f"its rows (more than {allowed / 2**30:.1f} GiB, an eighth of the memory "
                "available); write the file again with smaller row groups (pyarrow's "
                "row_group_size=100, as the Hub's files have)"
            )

    def locate(self, index: int) -> tuple[int, int]:
        """The group holding row ``index`` and its offset there."""
        if not 0 <= index < len(self):
            raise IndexError(f"{self.name}: no item {index} (there are {len(self)})")
        group = int(np.searchsorted(self.starts, index, side="right")) - 1
        return group, index - int(self.starts[group])

    def read_group(self, group: int) -> list[bytes | str]:
        """The encoded files of group ``group``'s rows (a row without one: the reason)."""
        import pyarrow.parquet as pq

        if self._pid != os.getpid():  # a forked worker opens its own files
            self._handles, self._pid = {}, os.getpid()
        file, unit, offset = self.groups[group]
        media = self.layout.media
        if self.layout.arrow:
            if file not in self._handles:
                self._handles[file] = _arrow_batches(self.layout.files[file])
            batch = self._handles[file][unit].slice(offset, self.counts[group])
            records = batch.column(batch.schema.get_field_index(media)).to_pylist()
        else:
            if file not in self._handles:
                self._handles[file] = pq.ParquetFile(self.layout.files[file])
            table = self._handles[file].read_row_group(unit, columns=[media])
            records = table.column(0).to_pylist()
        return [self._bytes_of(record, file) for record in records]

    def _bytes_of(self, record: Any, file: int) -> bytes | str:
        """The encoded file of a row: its bytes, else the file its ``path`` names
        (absolute, or beside the dataset's file); else why there is none (the item is
        then unreadable, with that reason)."""
        noun = "image" if self.kind == IMAGE else "sound"
        if isinstance(record, (bytes, bytearray)) and record:
            return bytes(record)
        if not isinstance(record, dict):
            return f"no {noun} in the row"
        if record.get("bytes"):
            return bytes(record["bytes"])
        path = record.get("path")
        if not path:
            return f"no {noun} in the row (neither bytes nor a path)"
        for candidate in (Path(path), self.layout.files[file].parent / path):
            if candidate.is_file():
                try:
                    return candidate.read_bytes()
                except OSError as err:
                    return f"cannot read the {noun} file {path}: {err.strerror}"
        return f"the {noun} file {path} does not exist"


class HubImageSource(ShardSource):
    """Images of a Hugging Face dataset's split (Parquet from the Hub or ``to_parquet``,
    Arrow from ``save_to_disk``), read row group by row group as packed shards are; ids and
    labels as :class:`HubRows` finds them.

    Args:
        spec: ``PATH`` or ``PATH:SPLIT`` (see :func:`hub_files`).
        image_size, channels, pixel_bits: as for :class:`ShardSource`.
        label_column: the column of labels.
        id_column: the column of ids.

    Raises:
        ValueError: as :class:`HubRows`.
    """

    def __init__(
        self,
        spec: str | os.PathLike,
        *,
        image_size: int | None = None,
        channels: int | None = None,
        pixel_bits: int | None = None,
        label_column: str | None = None,
        id_column: str | None = None,
    ) -> None:
        self.rows = HubRows(spec, IMAGE, label_column, id_column)
        self.layout = self.rows.layout
        self.name = str(spec)
        self.root = self.layout.path if self.layout.path.is_dir() else self.layout.path.parent
        self._layout(list(self.rows.groups), self.rows.counts)
        self._files = [str(file) for file in self.layout.files]
        self.labels, self.classes = self.rows.labels, self.rows.classes
        self.partial_labels, self.warning = self.rows.partial_labels, self.rows.warning
        self.index_note = self.rows.note
        self._sizes_and_bits(image_size, channels, pixel_bits)

    @property
    def ids(self) -> Sequence[str]:
        return self.rows.ids

    def _read_group(self, group: int) -> tuple[list[str], list[str | None], list[bytes | str]]:
        start, stop = int(self._starts[group]), int(self._starts[group + 1])
        ids = list(self.rows.ids[start:stop])
        return ids, [None] * len(ids), self.rows.read_group(group)


class HubAudioSource(AudioFolderSource):
    """Sounds of a Hugging Face dataset's split (its ``Audio`` column: Speech Commands,
    ESC-50 and the like as the Hub holds them), read as a folder of audio files is (clips,
    log-mels, long recordings pooled or cut with ``clip_hop``), each row's file decoded
    from the bytes in the dataset's file. Ids and labels as :class:`HubRows` finds them.

    Args:
        spec: ``PATH`` or ``PATH:SPLIT`` (see :func:`hub_files`).
        label_column, id_column: as for :class:`HubImageSource`.
        clip_hop, pooled, **settings: as :class:`~selfsup.data.audio.AudioFolderSource`
            reads files (``sample_rate``, ``clip_seconds``, ``n_mels``...).

    Example:
        >>> import io, json, tempfile, soundfile
        >>> import pyarrow as pa, pyarrow.parquet as pq
        >>> def wav(seconds):
        ...     out = io.BytesIO()
        ...     soundfile.write(out, np.zeros(int(seconds * 8000), np.float32), 8000,
        ...                     format="WAV")
        ...     return out.getvalue()
        >>> features = {"audio": {"_type": "Audio", "sampling_rate": 8000}}
        >>> rows = [{"audio": {"bytes": wav(s), "path": f"call{s}.wav"}} for s in (0.5, 2)]
        >>> table = pa.Table.from_pylist(rows).replace_schema_metadata(
        ...     {"huggingface": json.dumps({"info": {"features": features}})})
        >>> path = Path(tempfile.mkdtemp()) / "calls.parquet"
        >>> pq.write_table(table, path)
        >>> source = HubAudioSource(str(path), sample_rate=8000, clip_seconds=1.0, clip_hop=1.0)
        >>> source.ids, tuple(source.read(2).shape)
        (['call0.5.wav@0.00s', 'call2.wav@0.00s', 'call2.wav@1.00s'], (1, 64, 51))
    """

    def __init__(
        self,
        spec: str | os.PathLike,
        *,
        label_column: str | None = None,
        id_column: str | None = None,
        clip_hop: float | None = None,
        pooled: bool = False,
        **settings: Any,
    ) -> None:
        self.rows = HubRows(spec, AUDIO, label_column, id_column)
        self.layout = self.rows.layout
        self.root = self.layout.path if self.layout.path.is_dir() else self.layout.path.parent
        self._settings(**settings)
        self.name = str(spec)
        self._ids = list(self.rows.ids)
        self.labels, self.classes = self.rows.labels, self.rows.classes
        self.partial_labels, self.warning = self.rows.partial_labels, self.rows.warning
        self.index_note = self.rows.note
        self._groups: OrderedDict[int, list[bytes | str]] = OrderedDict()
        self._pid = os.getpid()
        self._items(clip_hop, pooled)

    def _file_path(self, relative: str, file: int) -> AudioBytes:
        """Row ``file``'s sound, from its row group (the last few are kept)."""
        if self._pid != os.getpid():  # a forked worker keeps its own groups
            self._groups, self._pid = OrderedDict(), os.getpid()
        group, offset = self.rows.locate(file)
        if group in self._groups:
            self._groups.move_to_end(group)
        else:
            self._groups[group] = self.rows.read_group(group)
            while len(self._groups) > 1 and (
                len(self._groups) > CACHED_GROUPS
                or sum(blob_bytes(g) for g in self._groups.values()) > CACHED_BYTES
            ):
                self._groups.popitem(last=False)
        blob = self._groups[group][offset]
        if isinstance(blob, str):
            raise ItemReadError(relative, blob)
        return AudioBytes(relative, blob)

    def epoch_order(self, seed: int, epoch: int) -> np.ndarray:
        """Items shuffled in blocks of ``WINDOW_GROUPS`` row groups (clips by their file's
        group), as packed shards are: a batch reads a few groups, not one per item."""
        files = np.array([f for f, _ in self._clips]) if self._clips else np.arange(len(self))
        group_of = np.searchsorted(self.rows.starts, files, side="right") - 1
        return block_order(group_of, WINDOW_GROUPS, seed, epoch)
