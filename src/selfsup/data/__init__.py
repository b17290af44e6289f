"""Data sources: where items come from (folders, arrays, files, named datasets).

Each reader makes a :class:`Source` of one modality; ``selfsup.modalities.open_source`` picks
the reader a ``DATA`` argument needs.

Example:
    >>> src = open_named("digits:test")
    >>> src.describe()
    'digits:test: 359 image items, 10 classes'
"""

from __future__ import annotations

from selfsup.data.arrays import ArraySource, encode_labels, image_layout, load_array_file
from selfsup.data.audio import AUDIO_EXTENSIONS, AudioFolderSource
from selfsup.data.base import Batch, EmptySourceError, ItemReadError, SkippedItem, Source
from selfsup.data.idx import read_idx
from selfsup.data.image_folder import IMAGE_EXTENSIONS, ImageFolderSource
from selfsup.data.named import (
    DatasetNotInstalledError,
    describe_named,
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
from selfsup.data.splits import SubsetSource
from selfsup.data.tabular import (
    TablePreprocessor,
    TabularSource,
    load_table_file,
    open_table,
    tabular_names,
)
from selfsup.data.text import (
    TextSource,
    load_text_file,
    text_corpus_names,
)
from selfsup.data.tokenizer import TextTokenizer

__all__ = [
    "AUDIO_EXTENSIONS",
    "IMAGE_EXTENSIONS",
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
    "load_array_file",
    "load_series_file",
    "load_table_file",
    "load_text_file",
    "named_dataset_names",
    "named_splits",
    "open_named",
    "open_table",
    "open_ucr",
    "read_idx",
    "read_ts_file",
    "series_from_frame",
    "tabular_names",
    "text_corpus_names",
    "ucr_names",
]
