"""Tabular records: CSV, Parquet or a pandas DataFrame, numeric and categorical columns.

A table is turned into numbers by a :class:`TablePreprocessor` fitted once (on the training
data) and saved with the run, so later data is encoded exactly the same way:

- numeric columns are standardized with the fitted mean and standard deviation; a missing
  value becomes 0 (the mean), and columns that had missing values at fit time get a 0/1
  "was missing" indicator;
- categorical columns become integer codes 1..K in the order of the fitted categories; code 0
  means missing or unseen. The backbone embeds them.

Column types are inferred (text, category and boolean columns are categorical, the rest
numeric) and can be overridden.

Example:
    >>> frame = pd.DataFrame({"age": [30, 40, None], "city": ["a", "b", "a"], "y": [0, 1, 0]})
    >>> src = TabularSource(frame, label_column="y")
    >>> src.preprocessor.numeric, src.preprocessor.categorical, src.feature_names
    (['age'], ['city'], ['age', 'age (missing)', 'city'])
    >>> src.read_batch([0, 2]).items.tolist()
    [[-1.0, 0.0, 1.0], [0.0, 1.0, 1.0]]
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from selfsup.core.errors import one_line
from selfsup.core.files import read_json_object, write_json
from selfsup.data.arrays import encode_labels
from selfsup.data.base import EmptySourceError, InMemorySource, check_unique_ids, column_ids
from selfsup.data.splits import stratified_split
from selfsup.data.table_files import label_like_warning, numeric_cells, read_table

PREPROCESSOR_FILE = "preprocess.json"
# Said of a numeric column that holds text.
_CATEGORICAL_HINT = " (declare the column categorical if it is one)"


def _is_categorical(series: pd.Series) -> bool:
    return not pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)


@dataclass
class TablePreprocessor:
    """The fitted encoding of a table's feature columns (see the module docstring).

    Attributes:
        numeric: numeric feature columns, in order.
        categorical: categorical feature columns, in order.
        means: fitted mean per numeric column.
        stds: fitted standard deviation per numeric column (1 where constant).
        indicators: numeric columns that get a "was missing" indicator.
        categories: the fitted categories (as text) per categorical column; code i + 1 is
            ``categories[column][i]``.
    """

    numeric: list[str]
    categorical: list[str]
    means: list[float] = field(default_factory=list)
    stds: list[float] = field(default_factory=list)
    indicators: list[str] = field(default_factory=list)
    categories: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def fit(
        cls,
        frame: pd.DataFrame,
        *,
        exclude: Sequence[str] = (),
        categorical_columns: Sequence[str] | None = None,
        numeric_columns: Sequence[str] | None = None,
        name: str = "table",
    ) -> TablePreprocessor:
        """Infer the column types (overridable) and fit the statistics on ``frame``.

        Raises:
            ValueError: a named column is missing, a column is forced numeric but holds
                text (the message names the row), or there is no feature column.
        """
        forced_cat = set(categorical_columns or ())
        forced_num = set(numeric_columns or ())
        for column in forced_cat | forced_num | set(exclude):
            if column not in frame.columns:
                raise ValueError(f"{name}: no column {column!r}; columns are {list(frame.columns)}")
        both = forced_cat & forced_num
        if both:
            raise ValueError(f"{name}: columns {sorted(both)} are both numeric and categorical")
        features = [c for c in frame.columns if c not in set(exclude)]
        if not features:
            raise ValueError(f"{name}: no feature column left")
        categorical = [
            c
            for c in features
            if c in forced_cat or (c not in forced_num and _is_categorical(frame[c]))
        ]
        numeric = [c for c in features if c not in categorical]
        values = numeric_cells(frame, numeric, name, _CATEGORICAL_HINT)
        with np.errstate(all="ignore"):
            means = np.nanmean(values, axis=0) if numeric else np.zeros(0)
            stds = np.nanstd(values, axis=0) if numeric else np.zeros(0)
        means = np.nan_to_num(means)
        stds = np.where(np.isfinite(stds) & (stds > 1e-12), stds, 1.0)
        indicators = [c for i, c in enumerate(numeric) if np.isnan(values[:, i]).any()]
        categories = {c: sorted({str(v) for v in frame[c].dropna().unique()}) for c in categorical}
        return cls(
            [str(c) for c in numeric],
            [str(c) for c in categorical],
            means.tolist(),
            stds.tolist(),
            [str(c) for c in indicators],
            categories,
        )

    @property
    def numeric_width(self) -> int:
        """Numeric inputs: standardized columns plus missing indicators."""
        return len(self.numeric) + len(self.indicators)

    @property
    def cardinalities(self) -> list[int]:
        """Codes per categorical column, including code 0 (missing or unseen)."""
        return [len(self.categories[c]) + 1 for c in self.categorical]

    @property
    def inputs(self) -> list[str]:
        """The table's columns it reads as input: numeric, then categorical."""
        return [*self.numeric, *self.categorical]

    @property
    def feature_names(self) -> list[str]:
        """The names of the encoded columns, in order."""
        return [*self.numeric, *(f"{c} (missing)" for c in self.indicators), *self.categorical]

    def transform(self, frame: pd.DataFrame, name: str = "table") -> np.ndarray:
        """Encode ``frame`` as float32 ``(n, numeric_width + categorical columns)``.

        Raises:
            ValueError: a fitted column is absent, or a numeric cell holds text (the message
                names the row and column).
        """
        missing = [c for c in (*self.numeric, *self.categorical) if c not in frame.columns]
        if missing:
            raise ValueError(
                f"{name}: columns {missing} are missing (the encoder was fitted on them)"
            )
        values = numeric_cells(frame, self.numeric, name, _CATEGORICAL_HINT)
        absent = np.isnan(values)
        scaled = (values - np.asarray(self.means)) / np.asarray(self.stds)
        scaled[absent] = 0.0
        flags = [absent[:, self.numeric.index(c)].astype(np.float32) for c in self.indicators]
        codes = []
        for column in self.categorical:
            lookup = {v: i + 1 for i, v in enumerate(self.categories[column])}
            cells = frame[column]
            codes.append(
                np.array(
                    [0 if pd.isna(v) else lookup.get(str(v), 0) for v in cells], dtype=np.float32
                )
            )
        parts = [scaled.astype(np.float32), *(f[:, None] for f in flags)]
        parts += [c[:, None] for c in codes]
        return np.concatenate(parts, axis=1) if parts else np.zeros((len(frame), 0), np.float32)

    def one_hot(self, encoded: np.ndarray) -> np.ndarray:
        """The encoded matrix with each categorical code expanded to one-hot columns (for
        linear baselines on raw features)."""
        width = self.numeric_width
        parts = [encoded[:, :width]]
        for j, k in enumerate(self.cardinalities):
            parts.append(np.eye(k, dtype=np.float32)[encoded[:, width + j].astype(int)])
        return np.concatenate(parts, axis=1)

    def to_dict(self) -> dict[str, Any]:
        """Plain data, as saved in ``preprocess.json``."""
        return asdict(self)

    def save(self, folder: str | os.PathLike) -> None:
        """Write ``preprocess.json`` into ``folder`` atomically."""
        write_json(Path(folder) / PREPROCESSOR_FILE, self.to_dict())

    @classmethod
    def load(cls, folder: str | os.PathLike) -> TablePreprocessor:
        """Read ``preprocess.json`` from a run folder."""
        path = Path(folder) / PREPROCESSOR_FILE
        data = read_json_object(path, "a table encoding")
        try:
            return cls(**data)
        except TypeError as err:
            raise ValueError(f"{path}: not a table encoding ({one_line(err)})") from None

    @classmethod
    def load_if_saved(cls, folder: str | os.PathLike) -> TablePreprocessor | None:
        """The encoding saved in a run folder, or None when the run is not a table run."""
        return cls.load(folder) if (Path(folder) / PREPROCESSOR_FILE).exists() else None


class TabularSource(InMemorySource):
    """Rows of a table, encoded by a :class:`TablePreprocessor`, with optional labels.

    Args:
        frame: the table.
        label_column: the column of class labels (not a feature), if any.
        preprocessor: a fitted encoding to apply (a run's); fitted on ``frame`` when None.
        categorical_columns: columns to treat as categorical whatever their type.
        numeric_columns: columns to treat as numeric whatever their type.
        drop_columns: columns that are neither features nor labels (ids, free text).
        name: a short name for messages and reports.
        classes: optional class names indexed by label code.
        require_label: when False, a table without ``label_column`` is read as unlabeled,
            and absent ``drop_columns`` and ``id_column`` are ignored (a run's later data),
            instead of being errors.
        id_column: the column of item ids (not a feature; unique); without it the ids are
            the row numbers from 0 (a DataFrame's own index when it is not the default).

    Raises:
        EmptySourceError: a table with no row.
        ValueError: bad columns or cells (the message names them), or rows without a label.
    """

    modality = "tabular"

    def __init__(
        self,
        frame: pd.DataFrame,
        label_column: str | None = None,
        *,
        preprocessor: TablePreprocessor | None = None,
        categorical_columns: Sequence[str] | None = None,
        numeric_columns: Sequence[str] | None = None,
        drop_columns: Sequence[str] = (),
        name: str = "table",
        classes: Sequence[str] | None = None,
        require_label: bool = True,
        id_column: str | None = None,
    ) -> None:
        if len(frame) == 0:
            raise EmptySourceError(f"{name}: the table has no row")
        if not require_label:  # a run's later data: its label and dropped columns may be gone
            if label_column is not None and label_column not in frame.columns:
                label_column = None
            drop_columns = [c for c in drop_columns if c in frame.columns]
            if id_column not in frame.columns:
                id_column = None  # later rows without their ids: row numbers
        exclude = [c for c in (*drop_columns, label_column, id_column) if c is not None]
        for column in exclude:
            if column not in frame.columns:
                raise ValueError(f"{name}: no column {column!r}; columns are {list(frame.columns)}")
        if preprocessor is not None and label_column in preprocessor.inputs:
            # The encoder would read the labels it is judged on.
            raise ValueError(
                f"{name}: column {label_column!r} holds the labels here, but the run's "
                f"encoder reads it as an input feature (it was pretrained without "
                f"--label-column {label_column}): its embeddings would see the labels. "
                f"Pretrain again with --label-column {label_column}"
            )
        if preprocessor is None:
            preprocessor = TablePreprocessor.fit(
                frame,
                exclude=exclude,
                categorical_columns=categorical_columns,
                numeric_columns=numeric_columns,
                name=name,
            )
            if label_column is None:
                self.warning = label_like_warning(preprocessor.inputs)
        self.preprocessor = preprocessor
        self.values = torch.from_numpy(preprocessor.transform(frame, name))
        self.name = name
        if id_column is None and not isinstance(frame.index, pd.RangeIndex):
            self._ids: list[str] | None = [str(i) for i in frame.index]  # a DataFrame's index
            check_unique_ids(self._ids, name)
        else:
            self._ids = column_ids(frame, id_column, name) if id_column is not None else None
        if label_column is not None:
            labels = frame[label_column]
            if labels.isna().any():
                row = int(np.flatnonzero(labels.isna().to_numpy())[0])
                raise ValueError(f"{name}: row {row} has no value in label column {label_column!r}")
            raw = labels.to_numpy()
            if raw.dtype == object or pd.api.types.is_bool_dtype(labels):
                raw = raw.astype(str)
            self.labels, self.classes = encode_labels(raw, classes)

    @property
    def feature_names(self) -> list[str]:
        """The encoded columns' names."""
        return self.preprocessor.feature_names

    @property
    def item_shape(self) -> tuple[int]:
        """(encoded columns,)."""
        return (int(self.values.shape[1]),)


# --- named tables ----------------------------------------------------------------------------

_TABLES = {
    "breast-cancer": "scikit-learn's Wisconsin breast cancer: 569 x 30 numeric, 2 classes",
    "islp:Default": "ISLP's credit Default: 10,000 x 3 (one categorical), 3.3% positive",
}


def describe_tables() -> list[dict[str, Any]]:
    """One entry per named table for ``selfsup datasets list``: name, size, description,
    whether it is installed and how to install it."""
    islp = importlib.util.find_spec("ISLP") is not None
    return [
        {
            "name": "breast-cancer",
            "size": "456 / 113",
            "description": _TABLES["breast-cancer"],
            "installed": importlib.util.find_spec("sklearn") is not None,
            "install": "pip install scikit-learn",
        },
        {
            "name": "islp:Default",
            "size": "8000 / 2000",
            "description": _TABLES["islp:Default"],
            "installed": islp,
            "install": "pip install --no-deps ISLP==0.6.0",
        },
    ]


def tabular_names() -> list[str]:
    """The named tables (each with a stratified 80/20 ``:test`` split, seed 0)."""
    return list(_TABLES)


def is_tabular_spec(spec: str) -> bool:
    """Whether ``spec`` names a named table, with or without ``:test`` / ``:train``."""
    base = spec[: -len(":test")] if spec.endswith(":test") else spec
    base = base[: -len(":train")] if base.endswith(":train") else base
    return base in _TABLES


def _islp_default() -> tuple[pd.DataFrame, str]:
    spec = importlib.util.find_spec("ISLP")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "islp:Default needs the ISLP package's data: pip install --no-deps ISLP==0.6.0"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "data"
    return pd.read_csv(folder / "Default.csv"), "default"


def _breast_cancer() -> tuple[pd.DataFrame, str]:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True)
    frame = data.frame.copy()
    frame["target"] = np.asarray(data.target_names)[data.target]
    return frame, "target"


def open_table(spec: str, preprocessor: TablePreprocessor | None = None) -> TabularSource:
    """Open a named table split: ``breast-cancer``, ``islp:Default``, each ``:test`` too.

    The split (80/20, stratified by label, seed 0) is made before fitting; both splits are
    encoded with ``preprocessor`` when given (a run's), else with the encoding fitted on the
    train split.

    Example:
        >>> src = open_table("breast-cancer:test")
        >>> len(src), src.item_shape, src.classes
        (113, (30,), ['benign', 'malignant'])
    """
    test = spec.endswith(":test")
    base = spec.removesuffix(":test").removesuffix(":train")
    if base not in _TABLES:
        raise ValueError(f"unknown table {spec!r}; known: {', '.join(_TABLES)}")
    frame, label = _islp_default() if base == "islp:Default" else _breast_cancer()
    frame = frame.drop(columns=[c for c in frame.columns if str(c).startswith("Unnamed")])
    codes, _ = encode_labels(np.asarray(frame[label].astype(str).tolist()))
    fit_rows, test_rows = stratified_split(codes, 0.2)
    train = frame.iloc[fit_rows].reset_index(drop=True)
    train_source = TabularSource(train, label, name=base, preprocessor=preprocessor)
    if not test:
        return train_source
    return TabularSource(
        frame.iloc[test_rows].reset_index(drop=True),
        label,
        preprocessor=train_source.preprocessor,
        name=f"{base}:test",
        classes=train_source.classes,
    )


def load_table_file(path: str | os.PathLike | pd.DataFrame, **options: Any) -> TabularSource:
    """A tabular source from a CSV/TSV/Parquet file or a DataFrame; ``options`` are those of
    :class:`TabularSource`."""
    if isinstance(path, pd.DataFrame):
        return TabularSource(path, **{"name": "DataFrame", **options})
    return TabularSource(read_table(path), name=str(path), **options)
