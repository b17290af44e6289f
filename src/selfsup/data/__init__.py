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
    "SkippedItem",
    "Source",
    "SubsetSource",
    "describe_named",
    "encode_labels",
    "image_layout",
    "load_array_file",
    "named_dataset_names",
    "named_splits",
    "open_named",
    "open_source",
    "read_idx",
    "train_test_sources",
]

#: The modalities of the toolkit; only "image" has sources so far.
MODALITIES = ("image", "series", "tabular", "audio", "text")
_ARRAY_SUFFIXES = (".npy", ".npz")


def open_source(spec: str | os.PathLike, modality: str = "image", **options: Any) -> Source:
    """Open the data a ``DATA`` argument names.

    Resolution, in order: a named dataset (``fashion-mnist``, ``digits:test``, see
    :func:`named_dataset_names`); an existing folder, read as an :class:`ImageFolderSource`
    with ``options``; an existing ``.npy`` / ``.npz`` file, read by :func:`load_array_file`.

    Args:
        spec: a named dataset spec or a path.
        modality: the kind of items; only "image" is supported yet.
        **options: options of the folder source (``image_size``, ``channels``). Arrays and
            named datasets keep their stored size and channels and ignore these two (the
            views resize); options set to None are ignored.

    Raises:
        ValueError: an unsupported modality or a file of another type.
        TypeError: an option no image source takes.
        FileNotFoundError: nothing at ``spec``; the message lists the named datasets.

    Example:
        >>> open_source("digits").item_shape
        (1, 8, 8)
    """
    if modality not in MODALITIES:
        raise ValueError(f"unknown modality {modality!r}; known: {', '.join(MODALITIES)}")
    if modality != "image":
        raise ValueError(f"modality {modality} is not supported yet")
    options = {key: value for key, value in options.items() if value is not None}
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
