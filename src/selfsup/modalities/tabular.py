"""Tables: CSV/TSV/Parquet files, DataFrames and the named tables.

Rows are encoded once by a fitted ``TablePreprocessor`` (numbers standardized with missing
flags, categories as codes), saved with the run as ``preprocessor.json`` so later data is
encoded the same way. The default objective is VIME with an MLP (it kept what a fraud label
needs where SCARF lost it: see the README's "Tables"); the raw-input baseline is the encoded row
with categories one-hot; evaluation reports the linear probe's accuracy and AUROC.

Example:
    >>> TABULAR.claims("loans.csv"), TABULAR.claims("breast-cancer"), TABULAR.default_method
    (True, True, 'vime')
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch

from selfsup.backbones import TabularMLP
from selfsup.config import PretrainConfig
from selfsup.data.base import Source
from selfsup.data.folders import first_file
from selfsup.data.hub import frame_note, hub_frame, hub_layout, hub_test_split
from selfsup.data.shards import is_shard_folder
from selfsup.data.table_files import TABLE_SUFFIXES, files_note, read_table_folder
from selfsup.data.tabular import (
    PREPROCESSOR_FILE,
    TablePreprocessor,
    is_tabular_spec,
    load_table_file,
    open_table,
    tabular_names,
)
from selfsup.encoder import Encoder
from selfsup.modalities.base import Modality, folder_media
from selfsup.views.tabular import TabularViews, tabular_recipe


class TabularModality(Modality):
    """Tables: one row an item, columns typed and encoded by a fitted preprocessor."""

    name = "tabular"
    source_options: ClassVar[frozenset[str]] = frozenset(
        {
            "label_column",
            "categorical_columns",
            "numeric_columns",
            "drop_columns",
            "preprocessor",
            "require_label",
            "id_column",
        }
    )
    stat_dims = 0
    default_method = "vime"
    default_protocols = ("linear", "auroc", "knn")
    default_recipe = "tabular"
    fallback_backbone = "mlp"
    items_are_rows = True
    views_class = TabularViews
    recipe = staticmethod(tabular_recipe)

    def claims(self, spec: str) -> bool:
        """Named tables, table files, and folders of table files alone (a month's exports
        each; a photo folder with its labels table is photos; images packed into Parquet
        shards by ``datasets pack`` and a Hugging Face dataset's Parquet files with a column
        of images are images)."""
        if is_tabular_spec(spec):
            return True
        if is_shard_folder(spec) or folder_media(spec) is not None:
            return False  # photos with their labels table; images or sounds in Parquet
        hub = hub_layout(spec)
        if hub is not None:  # a Hugging Face dataset's split (PATH:SPLIT)
            return hub.media is None
        if Path(spec).suffix.lower() in TABLE_SUFFIXES:
            return True
        return first_file(spec, TABLE_SUFFIXES) is not None

    def open(self, spec: str | os.PathLike | Any, options: dict[str, Any]) -> Source:
        """A named table, a CSV/TSV/Parquet file, a DataFrame or a 2-d array of rows (its
        columns named ``x0``, ``x1``...)."""
        if isinstance(spec, (np.ndarray, torch.Tensor)):
            spec = _frame(np.asarray(spec))
        if isinstance(spec, pd.DataFrame):
            return load_table_file(spec, **options)
        if isinstance(spec, str) and is_tabular_spec(spec):
            return open_table(spec, options.get("preprocessor"))
        layout = hub_layout(spec)
        if layout is not None and layout.media is None:  # a Hugging Face dataset's split
            frame, label_column = hub_frame(layout)
            given = {"label_column": label_column, **options, "name": str(spec)}
            source = load_table_file(frame, **given)
            source.index_note = frame_note(layout, frame)
            return source
        path = Path(spec).expanduser()
        if path.is_file():
            return load_table_file(path, **options)
        if path.is_dir():  # the files' rows in order, each named FILE:ROW without --id-column
            frame, files, empty = read_table_folder(
                path,
                _row_ids,  # rows named FILE:ROW in messages, and as ids without an id column
                typed_times=True,  # as one file's (Arrow's reader)
            )
            source = load_table_file(frame, **{"name": str(path), **options})
            source.index_note = files_note(files, empty)
            return source
        raise FileNotFoundError(
            f"{spec}: no such file, and not a named table (known: {', '.join(tabular_names())})"
        )

    def official_test(self, spec: str) -> str | None:
        if is_tabular_spec(spec) and not spec.endswith(":test"):
            return f"{spec.removesuffix(':train')}:test"
        return hub_test_split(spec)

    def run_source_options(self, run_dir: Path, config: dict[str, Any]) -> dict[str, Any]:
        """The run's fitted encoding; later data may come without its labels.

        Raises:
            FileNotFoundError: the run folder lost its encoding (a table fitted anew would
                give the encoder other scales and codes: wrong embeddings, said nowhere).
        """
        preprocessor = TablePreprocessor.load_if_saved(run_dir)
        if preprocessor is None:
            raise FileNotFoundError(
                f"{run_dir}: {PREPROCESSOR_FILE} is missing: the table encoding this encoder "
                "was trained with (column types, scales, categories) is lost, so no table can "
                "be read as its training data was; copy the whole run folder"
            )
        return {
            "preprocessor": preprocessor,
            "drop_columns": config.get("drop_columns"),
            "id_column": config.get("id_column"),
            "require_label": False,
        }

    def resume_options(self, run_dir: Path) -> dict[str, Any]:
        preprocessor = TablePreprocessor.load_if_saved(run_dir)
        return {} if preprocessor is None else {"preprocessor": preprocessor}

    def save_artifacts(self, source: Source, run_dir: Path) -> None:
        preprocessor = getattr(source, "preprocessor", None)
        if preprocessor is not None:
            preprocessor.save(run_dir)

    def describe_inputs(
        self,
        spec: dict[str, Any],
        run_dir: Path | None = None,
        config: dict[str, Any] | None = None,
    ) -> str:
        """The encoded rows an exported table encoder takes: which column is which, how
        ``preprocess.json`` (shipped beside it) encodes them, and the Python line that does.

        Example:
            >>> import tempfile
            >>> frame = pd.DataFrame({"amount": [3.0, None, 9.0], "shop": ["a", "b", "a"]})
            >>> folder = Path(tempfile.mkdtemp())
            >>> TablePreprocessor.fit(frame).save(folder)
            >>> TabularModality().describe_inputs({}, folder).splitlines()[0][:56]
            'float32 rows (batch, 3): amount, amount (missing), shop,'
        """
        pre = TablePreprocessor.load_if_saved(run_dir) if run_dir is not None else None
        if pre is None:
            return super().describe_inputs(spec, run_dir, config)
        names = pre.feature_names
        return f"""float32 rows (batch, {len(names)}): {", ".join(names)}, as \
`{PREPROCESSOR_FILE}` encodes a table:

- numeric columns (`numeric`): (value - `means`) / `stds`, 0 where missing;
- date and time columns (`datetimes`): days since 1970 and the position in the day, the week
  and the year as sine and cosine (UTC), each standardized like a number (their `means` and
  `stds` come after the numeric columns');
- a 0/1 column for each of `indicators`: 1 where its value is missing;
- categorical columns (`categorical`): 1 + the value's place in `categories` (as text), 0
  where missing or not among them; in the columns of `other`, 2 + that place, and 1 for
  values not among them.

With selfsup installed, in Python:

```python
import pandas as pd
from selfsup.data.tabular import TablePreprocessor

rows = TablePreprocessor.load(EXPORT_FOLDER).transform(pd.read_csv("new.csv"))
```

(`EXPORT_FOLDER`: this folder.)"""

    def statistics(self, source: Source) -> tuple[list[float], list[float]]:
        """Zeros and ones: the preprocessor has standardized the columns already."""
        pre = source.preprocessor  # type: ignore[attr-defined]
        width = pre.numeric_width + len(pre.cardinalities)
        return [0.0] * width, [1.0] * width

    def build_named(
        self, name: str, cfg: PretrainConfig, source: Source, mean: list[float], std: list[float]
    ) -> tuple[Encoder, dict[str, Any]]:
        pre = source.preprocessor  # type: ignore[attr-defined]
        options = cfg.backbone_options
        return build_tabular_encoder(pre.numeric_width, pre.cardinalities, name, **options), {}

    def rebuild_encoder(self, spec: dict[str, Any]) -> Encoder:
        return build_tabular_encoder(
            spec["numeric"], spec["cardinalities"], spec["backbone"], **spec["options"]
        )

    def raw_batch(self, x: torch.Tensor, source: Source) -> torch.Tensor:
        """Encoded rows with category codes one-hot."""
        preprocessor = getattr(source, "preprocessor", None)
        if preprocessor is None:
            return x
        return torch.from_numpy(preprocessor.one_hot(x.numpy()))


def _frame(array: np.ndarray) -> pd.DataFrame:
    """A 2-d array of rows as a DataFrame with columns ``x0``, ``x1``...; in an array of
    objects (mixed rows), a column of numbers is numeric.

    Example:
        >>> list(_frame(np.zeros((2, 3))).columns)
        ['x0', 'x1', 'x2']
        >>> _frame(np.array([[1.5, "pos"], [2.0, "atm"]], dtype=object)).dtypes["x0"]
        dtype('float64')
    """
    if array.ndim != 2:
        raise ValueError(f"table rows must be a 2-d array (rows, columns), got shape {array.shape}")
    columns = [f"x{i}" for i in range(array.shape[1])]
    return pd.DataFrame(array, columns=columns).infer_objects()


def build_tabular_encoder(
    numeric: int, cardinalities: Sequence[int] = (), backbone: str = "mlp", **options: Any
) -> Encoder:
    """A tabular encoder (the ``mlp`` backbone) for rows encoded by a ``TablePreprocessor``
    with ``numeric`` numeric columns and these categorical ``cardinalities``.

    Example:
        >>> enc = build_tabular_encoder(numeric=2, cardinalities=[3], hidden=8, depth=1)
        >>> enc(torch.tensor([[0.5, -0.5, 2.0], [0.0, 1.0, 0.0]])).shape
        torch.Size([2, 8])
    """
    if backbone != "mlp":
        raise ValueError(f"unknown tabular backbone {backbone!r}; known: mlp")
    module = TabularMLP(numeric, list(cardinalities), **options)
    spec = {
        "modality": "tabular",
        "backbone": backbone,
        "numeric": numeric,
        "cardinalities": list(cardinalities),
        "options": options,
    }
    width = module.in_features
    return TABULAR.wrap(module, None, [0.0] * width, [1.0] * width, spec)


TABULAR = TabularModality()


def _row_ids(frame: pd.DataFrame, rel: str) -> pd.DataFrame:
    """A folder's file's rows, indexed ``FILE:ROW`` (rows counted from 0 after the header),
    the ids every output gives them.

    Example:
        >>> _row_ids(pd.DataFrame({"a": [1, 2]}), "2025-01.csv").index.tolist()
        ['2025-01.csv:0', '2025-01.csv:1']
    """
    return frame.set_axis([f"{rel}:{i}" for i in range(len(frame))], axis=0)
