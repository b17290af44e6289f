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

import pandas as pd

from selfsup.data.arrays import ArraySource, encode_labels, image_layout, load_array_file
from selfsup.data.audio import AUDIO_EXTENSIONS, AudioFolderSource, is_audio_folder
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
    TABLE_SUFFIXES,
    SeriesSource,
    load_series_file,
    open_ucr,
    read_ts_file,
    series_from_frame,
    ucr_names,
)
from selfsup.data.splits import SubsetSource, train_test_sources
from selfsup.data.tabular import (
    TablePreprocessor,
    TabularSource,
    is_tabular_spec,
    load_table_file,
    open_table,
    tabular_names,
)
from selfsup.data.text import (
    TEXT_SUFFIXES,
    TextSource,
    is_text_spec,
    load_text_file,
    open_text_corpus,
    text_corpus_names,
)
from selfsup.data.tokenizer import TextTokenizer

__all__ = [
    "AUDIO_EXTENSIONS",
    "IMAGE_EXTENSIONS",
    "MODALITIES",
    "ArraySource",
    "AudioFolderSource",
    "Batch",
    "DatasetNotInstalledError",
    "EmptySourceError",
    "ImageFolderSource",
    "ItemReadError",
    "SeriesSource",
    "SkippedItem",
    "Source",
    "SubsetSource",
    "TablePreprocessor",
    "TabularSource",
    "TextSource",
    "TextTokenizer",
    "describe_named",
    "encode_labels",
    "image_layout",
    "infer_modality",
    "load_array_file",
    "load_series_file",
    "load_table_file",
    "named_dataset_names",
    "named_splits",
    "open_named",
    "open_source",
    "open_table",
    "open_ucr",
    "read_idx",
    "read_ts_file",
    "series_from_frame",
    "tabular_names",
    "text_corpus_names",
    "train_test_sources",
    "ucr_names",
]

#: The modalities of the toolkit; every one has sources now.
MODALITIES = ("image", "series", "tabular", "audio", "text")
_ARRAY_SUFFIXES = (".npy", ".npz")
#: The options each modality's sources take. A run's config carries the options of every
#: modality, so open_source drops those of the other modalities; a name no source takes is an
#: error.
_OPTIONS = {
    "image": {"image_size", "channels"},
    "series": {"id_column", "time_column", "value_columns", "label_column"},
    "tabular": {
        "label_column",
        "categorical_columns",
        "numeric_columns",
        "drop_columns",
        "preprocessor",
        "require_label",
    },
    "text": {
        "text_column",
        "label_column",
        "tokenizer",
        "max_length",
        "vocab_size",
        "require_label",
    },
    "audio": {
        "sample_rate",
        "clip_seconds",
        "n_mels",
        "n_fft",
        "hop_length",
        "f_min",
        "f_max",
    },
}


def infer_modality(spec: str | os.PathLike) -> str:
    """The modality a ``DATA`` argument implies when ``--modality`` is not given.

    ``ucr:NAME`` and ``.ts`` files are series; CSV/TSV/Parquet files, DataFrames and the
    named tables (``breast-cancer``, ``islp:Default``) are tabular; ``.txt`` and ``.jsonl``
    files and the named corpora (``rotten-tomatoes``...) are text (a CSV is text only with
    ``--modality text`` or a ``text_column``); a folder whose first media file is a
    .wav/.flac/.ogg is audio; everything else (folders, arrays, the image datasets) is read
    as images unless the modality is given.

    Example:
        >>> infer_modality("ucr:GunPoint"), infer_modality("x.csv"), infer_modality("digits")
        ('series', 'tabular', 'image')
    """
    if isinstance(spec, pd.DataFrame):
        return "tabular"
    text = str(spec)
    suffix = Path(text).suffix.lower()
    if text.startswith("ucr:") or suffix == ".ts":
        return "series"
    if is_text_spec(text) or suffix in TEXT_SUFFIXES:
        return "text"
    if is_tabular_spec(text) or suffix in TABLE_SUFFIXES:
        return "tabular"
    if is_audio_folder(text):
        return "audio"
    return "image"


def open_source(
    spec: str | os.PathLike | pd.DataFrame, modality: str | None = None, **options: Any
) -> Source:
    """Open the data a ``DATA`` argument names.

    Images, in order: a named dataset (``fashion-mnist``, ``digits:test``, see
    :func:`named_dataset_names`); an existing folder, read as an :class:`ImageFolderSource`
    with ``options``; an existing ``.npy`` / ``.npz`` file, read by :func:`load_array_file`.
    Series: ``ucr:NAME`` or ``ucr:NAME:test`` (UCR/UEA sets, see :func:`ucr_names`), or a
    ``.ts``, ``.npy``/``.npz``, CSV/TSV or Parquet file (see :func:`load_series_file`).
    Tables: ``breast-cancer``, ``islp:Default`` (and their ``:test`` splits), a CSV/TSV or
    Parquet file, or a pandas DataFrame (see :class:`TabularSource`). Text: ``.txt``,
    ``.jsonl``, ``.csv``/``.tsv`` files, folders of ``.txt`` files, DataFrames, or the named
    corpora (see :mod:`selfsup.data.text`).
    Audio: a folder of .wav/.flac/.ogg files (see :class:`AudioFolderSource`).

    Args:
        spec: a named dataset spec or a path.
        modality: the kind of items; by default :func:`infer_modality` decides.
        **options: image sources: ``image_size``, ``channels`` (folders only; arrays and
            named datasets keep their stored size and channels, the views resize). Series
            tables: ``id_column``, ``time_column``, ``value_columns``, ``label_column``.
            Tables: ``label_column``, ``categorical_columns``, ``numeric_columns``,
            ``drop_columns``, ``preprocessor`` (a fitted encoding to apply). Text:
            ``text_column``, ``label_column``, ``tokenizer`` (a run's, or its folder),
            ``max_length``, ``vocab_size``. Audio: ``sample_rate``, ``clip_seconds``,
            ``n_mels``, ``n_fft``, ``hop_length``, ``f_min``, ``f_max``. Options set to
            None, and options of the other modalities, are ignored.

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
    if modality not in _OPTIONS:
        raise ValueError(f"modality {modality} is not supported yet")
    unknown = sorted(set(options) - set().union(*_OPTIONS.values()))
    if unknown:
        known = ", ".join(sorted(_OPTIONS[modality]))
        raise TypeError(f"unknown {modality} source options {unknown}; known: {known}")
    options = {k: v for k, v in options.items() if v is not None and k in _OPTIONS[modality]}
    if modality == "series":
        return _open_series(spec, options)
    if modality == "tabular":
        return _open_table(spec, options)
    if modality == "text":
        return _open_text(spec, options)
    if modality == "audio":
        return _open_audio(spec, options)
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
    if isinstance(spec, str) and spec.startswith("ucr:"):
        return open_ucr(spec)
    path = Path(spec).expanduser()
    if path.is_file():
        return load_series_file(path, **options)
    raise FileNotFoundError(f"{spec}: no such file, and not a ucr:NAME set")


def _open_table(spec: str | os.PathLike | pd.DataFrame, options: dict[str, Any]) -> Source:
    if isinstance(spec, pd.DataFrame):
        return load_table_file(spec, **options)
    if isinstance(spec, str) and is_tabular_spec(spec):
        return open_table(spec, options.get("preprocessor"))
    path = Path(spec).expanduser()
    if path.is_file():
        return load_table_file(path, **options)
    raise FileNotFoundError(
        f"{spec}: no such file, and not a named table (known: {', '.join(tabular_names())})"
    )


def _open_text(spec: str | os.PathLike | pd.DataFrame, options: dict[str, Any]) -> Source:
    if isinstance(options.get("tokenizer"), (str, os.PathLike)):  # a run folder or its file
        options = {**options, "tokenizer": TextTokenizer.load(options["tokenizer"])}
    if isinstance(spec, str) and is_text_spec(spec):
        columns = ("text_column", "label_column", "require_label")
        named = {k: v for k, v in options.items() if k not in columns}
        return open_text_corpus(spec, **named)
    if isinstance(spec, pd.DataFrame):
        return load_text_file(spec, **options)
    path = Path(spec).expanduser()
    if path.exists():
        return load_text_file(path, **options)
    raise FileNotFoundError(
        f"{spec}: no such file or folder, and not a named text corpus "
        f"(known: {', '.join(text_corpus_names())})"
    )


def _open_audio(spec: str | os.PathLike, options: dict[str, Any]) -> Source:
    path = Path(spec).expanduser()
    if path.is_dir():
        return AudioFolderSource(path, **options)
    raise FileNotFoundError(f"{spec}: no such folder (audio is read from a folder of files)")
