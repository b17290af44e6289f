"""Data sources: where items come from (folders, arrays, named datasets), one modality each.

:func:`open_source` turns a ``DATA`` argument of the command line into a source.

Example:
    >>> src = open_source("digits:test")
    >>> src.describe()
    'digits:test: 359 image items, 10 classes'
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from selfsup.data.arrays import ArraySource, encode_labels, image_layout, load_array_file
from selfsup.data.base import Batch, EmptySourceError, ItemReadError, SkippedItem, Source
from selfsup.data.idx import read_idx
from selfsup.data.image_folder import IMAGE_EXTENSIONS, ImageFolderSource
from selfsup.data.named import (
    DatasetNotInstalledError,
    describe_named,
    is_named_spec,
    named_dataset_names,
    named_splits,
    open_named,
)
from selfsup.data.series import (
    SeriesSource,
    load_series_file,
    open_ucr,
    read_ts_file,
    series_from_frame,
    ucr_names,
)
from selfsup.data.splits import SubsetSource, train_test_sources

__all__ = [
    "IMAGE_EXTENSIONS",
    "MODALITIES",
    "ArraySource",
    "Batch",
    "DatasetNotInstalledError",
    "EmptySourceError",
    "ImageFolderSource",
    "ItemReadError",
    "SeriesSource",
    "SkippedItem",
    "Source",
    "SubsetSource",
    "describe_named",
    "encode_labels",
    "image_layout",
    "infer_modality",
    "load_array_file",
    "load_series_file",
    "named_dataset_names",
    "named_splits",
    "open_named",
    "open_source",
    "open_ucr",
    "read_idx",
    "read_ts_file",
    "series_from_frame",
    "train_test_sources",
    "ucr_names",
]

#: The modalities of the toolkit; "image" and "series" have sources so far.
MODALITIES = ("image", "series", "tabular", "audio", "text")
_ARRAY_SUFFIXES = (".npy", ".npz")
_SERIES_OPTIONS = {"id_column", "time_column", "value_columns", "label_column"}


def infer_modality(spec: str | os.PathLike) -> str:
    """The modality a ``DATA`` argument implies when ``--modality`` is not given.

    ``ucr:NAME`` and ``.ts`` files are series; everything else (folders, arrays, the image
    datasets) is read as images unless the modality is given.

    Example:
        >>> infer_modality("ucr:GunPoint"), infer_modality("x.ts"), infer_modality("digits")
        ('series', 'series', 'image')
    """
    text = str(spec)
    if text.startswith("ucr:") or Path(text).suffix.lower() == ".ts":
        return "series"
    return "image"


def open_source(spec: str | os.PathLike, modality: str | None = None, **options: Any) -> Source:
    """Open the data a ``DATA`` argument names.

    Images, in order: a named dataset (``fashion-mnist``, ``digits:test``, see
    :func:`named_dataset_names`); an existing folder, read as an :class:`ImageFolderSource`
    with ``options``; an existing ``.npy`` / ``.npz`` file, read by :func:`load_array_file`.
    Series: ``ucr:NAME`` or ``ucr:NAME:test`` (UCR/UEA sets, see :func:`ucr_names`), or a
    ``.ts``, ``.npy``/``.npz``, CSV/TSV or Parquet file (see :func:`load_series_file`).

    Args:
        spec: a named dataset spec or a path.
        modality: the kind of items; by default :func:`infer_modality` decides.
        **options: image sources: ``image_size``, ``channels`` (folders only; arrays and
            named datasets keep their stored size and channels, the views resize). Series
            tables: ``id_column``, ``time_column``, ``value_columns``, ``label_column``.
            Options set to None are ignored.

    Raises:
        ValueError: an unsupported modality or a file of another type.
        TypeError: an option the source does not take.
        FileNotFoundError: nothing at ``spec``; the message lists the named datasets.

    Example:
        >>> open_source("digits").item_shape
        (1, 8, 8)
    """
    modality = modality or infer_modality(spec)
    if modality not in MODALITIES:
        raise ValueError(f"unknown modality {modality!r}; known: {', '.join(MODALITIES)}")
    options = {key: value for key, value in options.items() if value is not None}
    if modality == "series":
        return _open_series(spec, options)
    if modality != "image":
        raise ValueError(f"modality {modality} is not supported yet")
    unknown = sorted(set(options) - {"image_size", "channels"})
    if unknown:
        raise TypeError(f"unknown image source options {unknown}; known: image_size, channels")
    if isinstance(spec, str) and is_named_spec(spec):
        return open_named(spec)
    path = Path(spec).expanduser()
    if path.is_dir():
        return ImageFolderSource(path, **options)
    if path.is_file() and path.suffix.lower() in _ARRAY_SUFFIXES:
        return load_array_file(path)
    if path.is_file():
        raise ValueError(
            f"{spec}: cannot read {path.suffix or 'suffix-less'} files as images; "
            f"expected a folder of images or a .npy / .npz array file"
        )
    raise FileNotFoundError(
        f"{spec}: no such file or folder, and not a named dataset "
        f"(known: {', '.join(named_dataset_names())})"
    )


def _open_series(spec: str | os.PathLike, options: dict[str, Any]) -> Source:
    options = {k: v for k, v in options.items() if k not in ("image_size", "channels")}
    unknown = sorted(set(options) - _SERIES_OPTIONS)
    if unknown:
        raise TypeError(
            f"unknown series source options {unknown}; known: {', '.join(sorted(_SERIES_OPTIONS))}"
        )
    if isinstance(spec, str) and spec.startswith("ucr:"):
        return open_ucr(spec)
    path = Path(spec).expanduser()
    if path.is_file():
        return load_series_file(path, **options)
    raise FileNotFoundError(f"{spec}: no such file, and not a ucr:NAME set")
