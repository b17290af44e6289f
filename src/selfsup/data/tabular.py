"""Tabular records: CSV, Parquet or a pandas DataFrame, numeric and categorical columns.

A table is turned into numbers by a :class:`TablePreprocessor` fitted once (on the training
data) and saved with the run, so later data is encoded exactly the same way:

- numeric columns are standardized with the fitted mean and standard deviation; a missing
  value becomes 0 (the mean), and columns that had missing values at fit time get a 0/1
  "was missing" indicator;
- date and time columns (a datetime type, or text in ISO 8601 such as ``2025-11-07T11:28:05``)
  become numeric features: the days since 1970 and the position in the day, the week and the
  year as sine and cosine (UTC), standardized like numbers; a missing time gets an indicator;
- categorical columns become integer codes 1..K in the order of the fitted categories (the
  most frequent first); code 0 means missing or unseen. The backbone embeds them. A category
  held by fewer than :data:`CATEGORY_MIN_ROWS` rows (a thousandth of the rows in tables under
  20,000) has too few to learn an embedding from: such categories, and those beyond the
  :data:`MOST_CATEGORIES` most frequent, share one "other" code, 1, with the values met later
  that the fit data did not hold, and the fitted categories follow from 2.

Column types are inferred (text, category and boolean columns are categorical, the rest
numeric) and can be overridden. A text column whose rows mostly hold a value too rare to learn
from (an id, a card number seen a dozen times in three million transactions, a timestamp in
another format, free text) is not read: its codes would name rows, not categories; a warning
names it, and ``categorical_columns`` reads it anyway.

Example:
    >>> frame = pd.DataFrame({"age": [30, 40, None], "city": ["a", "b", "a"], "y": [0, 1, 0]})
    >>> src = TabularSource(frame, label_column="y")
    >>> src.preprocessor.numeric, src.preprocessor.categorical, src.feature_names
    (['age'], ['city'], ['age', 'age (missing)', 'city'])
    >>> src.read_batch([0, 2]).items.tolist()
    [[-1.0, 0.0, 1.0], [0.0, 1.0, 1.0]]
    >>> times = pd.DataFrame({"t": ["2025-01-01T06:00", "2025-01-02T18:00"], "x": [1, 2]})
    >>> TablePreprocessor.fit(times).feature_names[1:4]
    ['t (days since 1970)', 't (day sin)', 't (day cos)']
"""

from __future__ import annotations

import importlib.util
import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from selfsup.core.errors import one_line
from selfsup.core.files import read_json_object, write_json
from selfsup.core.memory import give_back_freed
from selfsup.data.arrays import encode_labels, present_labels
from selfsup.data.base import (
    COMPACT_IDS,
    EmptySourceError,
    InMemorySource,
    TextIds,
    check_unique_ids,
    column_ids,
)
from selfsup.data.splits import stratified_split
from selfsup.data.table_files import (
    TABLE_READ_COPIES,
    is_time_column,
    label_like_warning,
    numeric_cells,
    plan_table_memory,
    read_table,
    sheet_note,
)

PREPROCESSOR_FILE = "preprocess.json"
# Said of a numeric column that holds text.
_CATEGORICAL_HINT = " (declare the column categorical if it is one)"


#: What a date and time column becomes: its days since 1970 and its place in three cycles.
DATETIME_PARTS = (
    "days since 1970",
    "day sin",
    "day cos",
    "week sin",
    "week cos",
    "year sin",
    "year cos",
)
#: A categorical column with more distinct values than this share of its filled cells (and
#: more than ``_ID_LIKE_MIN`` of them), or whose categories with a code of their own hold
#: less than this share of them, names rows rather than categories.
_ID_LIKE_SHARE = 0.5
_ID_LIKE_MIN = 100
#: Rows a category needs for a code of its own (a thousandth of the rows where that is less):
#: rarer ones share the column's "other" code.
CATEGORY_MIN_ROWS = 20
#: The most categories of one column with codes of their own (the most frequent ones).
MOST_CATEGORIES = 10_000
#: One-hot columns per categorical column in the raw-input baseline (the rarest share one).
ONE_HOT_MOST = 64


def _is_categorical(series: pd.Series) -> bool:
    return (
        not pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)
    ) and not _numbers_with_typos(series)


def _numbers_with_typos(cells: pd.Series, sample: int = 1000) -> bool:
    """Whether a text column holds numbers but for a few cells (``12,50`` among 3 million
    amounts made the whole column text): at least 99% of a sample of its filled cells read
    as numbers, none zero-padded as codes are (``01001``), and some cell does not. Read as
    numbers, those cells get an error naming their row instead of a silent change of the
    column's type; a column of digits alone stays text (account numbers stored as text).

    Example:
        >>> _numbers_with_typos(pd.Series(["40.08", "12,50"] + ["3.5"] * 200))
        True
        >>> _numbers_with_typos(pd.Series(["01001", "75002"] * 100)), _numbers_with_typos(
        ...     pd.Series(["a", "b"])), _numbers_with_typos(pd.Series(["583921", "77"] * 100))
        (False, False, False)
    """
    if pd.api.types.is_numeric_dtype(cells) or pd.api.types.is_bool_dtype(cells):
        return False
    filled = cells.dropna().head(sample)
    if len(filled) == 0 or filled.map(lambda v: isinstance(v, bool)).any():
        return False
    text = filled.astype(str).str.strip()
    if text.str.match(r"0\d").any():  # zero-padded codes: postcodes, account numbers
        return False
    if pd.to_numeric(text, errors="coerce").notna().mean() < 0.99:
        return False
    every = pd.to_numeric(cells.dropna().astype(str).str.strip(), errors="coerce")
    return bool(every.isna().any())  # a typo somewhere; digits alone are text on purpose


def category_min_rows(rows: int) -> int:
    """Rows a category needs for a code of its own in a table of ``rows`` rows.

    Example:
        >>> category_min_rows(400), category_min_rows(10_000), category_min_rows(3_000_000)
        (1, 10, 20)
    """
    return max(1, min(CATEGORY_MIN_ROWS, rows // 1000))


@dataclass
class _Column:
    """What fitting found of one categorical column: its coded categories, how many distinct
    values it held, and the share of its filled cells the coded ones hold."""

    coded: list[str]
    values: int
    covered: float

    @classmethod
    def fit(cls, cells: pd.Series, min_rows: int) -> _Column:
        """Categories of ``cells`` with at least ``min_rows`` rows, the most frequent first
        and at most :data:`MOST_CATEGORIES`.

        Example:
            >>> _Column.fit(pd.Series(list("aaabbc")), 2)
            _Column(coded=['a', 'b'], values=3, covered=0.8333333333333334)
            >>> _Column.fit(pd.Series(["b", "a", "b", None, "c", "a"]), 1).coded  # ties: a, c
            ['a', 'b', 'c']
        """
        counts = cells.dropna().astype(str).value_counts()  # the most frequent first
        kept = counts[counts.to_numpy() >= min_rows]
        if len(kept) > MOST_CATEGORIES:  # those up to the last coded one's count, ties too
            kept = kept[kept.to_numpy() >= kept.iloc[MOST_CATEGORIES - 1]]
        # Ties in text order, sorted among the coded ones alone (ten million ids: none).
        pairs = zip(kept.index, kept.to_numpy(), strict=True)
        coded = sorted(pairs, key=lambda p: (-p[1], str(p[0])))[:MOST_CATEGORIES]
        filled = int(counts.sum())
        share = sum(int(n) for _, n in coded) / max(filled, 1)
        return cls([str(v) for v, _ in coded], len(counts), share)


def ignored_warning(frame: pd.DataFrame, columns: Sequence[str]) -> str:
    """What a person should know of text columns left out for naming rows; where one holds
    free text (sentences, not codes), how to read it as text instead of the table.

    Example:
        >>> frame = pd.DataFrame({"ref": [f"r{i}" for i in range(300)],
        ...                       "note": [f"the printer {i} is slow" for i in range(300)]})
        >>> print(ignored_warning(frame, ["ref"]))
        not read, most rows hold a value too rare to learn from (ids or free text): 'ref' (300 values in 300 rows); --categorical-columns COLUMN reads one as categories
        >>> print(ignored_warning(frame, ["ref", "note"]).split("; ", 1)[1])
        'note' holds free text: --modality text --text-column note reads it as text (a table reads no text); --categorical-columns COLUMN reads one as categories
        >>> cards = pd.DataFrame({"card": [f"c{i % 5000}" for i in range(60_000)]})
        >>> print(ignored_warning(cards, ["card"]).split(" (ids or free text): ")[1])
        'card' (5,000 values in 60,000 rows, 100% of them in values of fewer than 20 rows); --categorical-columns COLUMN reads one as categories
        >>> cards = pd.DataFrame({"card": [f"c{i % 20_000}" for i in range(400_000)]})
        >>> print(ignored_warning(cards, ["card"]).split(" (ids or free text): ")[1])
        'card' (20,000 values in 400,000 rows, 50% of them beyond the 10,000 most frequent values or in values of fewer than 20 rows); --categorical-columns COLUMN reads one as categories
    """  # noqa: E501
    min_rows = category_min_rows(len(frame))

    def counts_of(column: Any) -> str:
        found = _Column.fit(frame[column], min_rows)
        filled = int(frame[column].notna().sum())
        capped = len(found.coded) == MOST_CATEGORIES < found.values
        where = (
            f"beyond the {MOST_CATEGORIES:,} most frequent values or in values of fewer "
            f"than {min_rows} rows"
            if capped
            else f"in values of fewer than {min_rows} rows"
        )
        rare = f", {1 - found.covered:.0%} of them {where}" if min_rows > 1 or capped else ""
        return f"{str(column)!r} ({found.values:,} values in {filled:,} rows{rare})"

    counts = ", ".join(counts_of(c) for c in columns)
    prose = next((c for c in columns if _holds_prose(frame[c])), None)
    text = (
        ""
        if prose is None
        else f"{str(prose)!r} holds free text: --modality text --text-column {prose} reads it "
        "as text (a table reads no text); "
    )
    return (
        f"not read, most rows hold a value too rare to learn from (ids or free text): {counts}; "
        f"{text}--categorical-columns COLUMN reads one as categories"
    )


#: Words of a column's name that say its integers name things rather than count them.
_CODE_WORDS = frozenset(
    "code codes id ids zip zipcode postcode postal mcc naics sic icd type category class "  # noqa: SIM905
    "status region branch store sku".split()
)
#: Cells looked at to show what a column holds.
_SHOWN = 3


def _name_words(column: str) -> list[str]:
    """The lower-case words of a column name, split at non-letters and camel case.

    Example:
        >>> _name_words("merchantCode"), _name_words("card_ID"), _name_words("mcc")
        (['merchant', 'code'], ['card', 'id'], ['mcc'])
    """
    return [w.lower() for w in re.findall(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])", str(column))]


def _integer_kind(cells: pd.Series) -> str | None:
    """How a numeric column's integers look like names rather than quantities: ``"ids"``
    (its name says ids, and most rows hold another one), ``"codes"`` (its name says codes,
    or sparse numbers of one width, such as merchant category codes), None for quantities
    (counts, amounts, years, a row counter).

    Example:
        >>> mcc = pd.Series([5411, 5812, 5541, 7995] * 50)
        >>> _integer_kind(mcc), _integer_kind(pd.Series(range(1000, 1300), name="user_id"))
        ('codes', 'ids')
        >>> counts = pd.Series([0, 1, 2, 3, 12, 140] * 40)
        >>> years = pd.Series([2019, 2020, 2023, 2024] * 50)
        >>> _integer_kind(counts), _integer_kind(years), _integer_kind(pd.Series(range(300)))
        (None, None, None)
        >>> _integer_kind(pd.Series([1, 2, 3] * 40, name="store_type"))
        'codes'
    """
    if pd.api.types.is_bool_dtype(cells) or not pd.api.types.is_numeric_dtype(cells):
        return None
    values = cells.dropna().to_numpy()
    if len(values) < _ID_LIKE_MIN or not np.isfinite(values).all():
        return None
    if not (np.mod(values, 1) == 0).all():
        return None
    distinct = np.unique(values)
    if len(distinct) < 3:
        return None  # flags and yes/no columns read as numbers lose nothing
    words = set(_name_words(str(cells.name)))
    if words & {"id", "ids"} and len(distinct) > max(_ID_LIKE_MIN, _ID_LIKE_SHARE * len(values)):
        return "ids"
    if words & _CODE_WORDS:
        return "codes"
    low, high = float(distinct[0]), float(distinct[-1])
    one_width = len(str(int(low))) == len(str(int(high)))
    years = low >= 1800 and high <= 2100
    sparse = len(distinct) <= (high - low + 1) / 2
    return "codes" if low >= 100 and one_width and sparse and not years else None


def integers_warning(frame: pd.DataFrame, numeric: Sequence[str]) -> str | None:
    """What a person should know of integer columns read as quantities that look like
    names: codes (a merchant category code of 5999 is not 'more' than 5411) or ids; None
    where there is none.

    Example:
        >>> frame = pd.DataFrame({"mcc": [5411, 5812, 5541, 7995] * 50,
        ...                       "amount": [3.5, 12.0, 80.25, 7.0] * 50})
        >>> print(integers_warning(frame, ["mcc", "amount"]))
        read as quantities, though their integers look like codes: 'mcc' (4 values: 5411, 5541, 5812, ...); --categorical-columns mcc reads them as categories
        >>> integers_warning(frame, ["amount"]) is None
        True
    """  # noqa: E501
    kinds: dict[str, list[Any]] = {"codes": [], "ids": []}
    named = {str(c) for c in numeric}
    for column in (c for c in frame.columns if str(c) in named):
        kind = _integer_kind(frame[column])
        if kind is not None:
            kinds[kind].append(column)
    said = []
    if kinds["codes"]:
        shown = []
        for column in kinds["codes"]:
            distinct = np.unique(frame[column].dropna().to_numpy())
            examples = ", ".join(str(int(v)) for v in distinct[:_SHOWN])
            more = ", ..." if len(distinct) > _SHOWN else ""
            shown.append(f"{str(column)!r} ({len(distinct):,} values: {examples}{more})")
        said.append(
            f"read as quantities, though their integers look like codes: {', '.join(shown)}; "
            f"--categorical-columns {','.join(map(str, kinds['codes']))} reads them as categories"
        )
    if kinds["ids"]:
        shown = [
            f"{str(c)!r} ({frame[c].nunique():,} values in {frame[c].notna().sum():,} rows)"
            for c in kinds["ids"]
        ]
        said.append(
            f"read as quantities, though their integers look like ids: {', '.join(shown)}; "
            f"--drop-columns {','.join(map(str, kinds['ids']))} leaves them out (--id-column names "
            "the rows by one)"
        )
    return "; ".join(said) or None


def _holds_prose(cells: pd.Series, sample: int = 1000) -> bool:
    """Whether a column's cells are mostly sentences: the median of a sample of its filled
    cells has four words or more (ids, codes and names have fewer).

    Example:
        >>> _holds_prose(pd.Series(["my card was charged twice", None])), _holds_prose(
        ...     pd.Series(["AB-12", "Jane Doe"]))
        (True, False)
    """
    filled = cells.dropna().head(sample).astype(str)
    return len(filled) > 0 and float(filled.str.split().str.len().median()) >= 4


def category_codes(cells: pd.Series, categories: list[str]) -> np.ndarray:
    """Each cell's position among ``categories`` (as text) plus one, 0 where it is none of
    them; by an Arrow hash lookup where the cells are text (8x pandas' indexer on 2 million
    merchants), else by pandas.

    Example:
        >>> category_codes(pd.Series(["b", "z", None, "a"]), ["a", "b"]).tolist()
        [2, 0, 0, 1]
        >>> category_codes(pd.Series([5411, 7995]), ["7995", "5411"]).tolist()
        [2, 1]
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    text = cells if pd.api.types.is_string_dtype(cells) else cells.astype(str)
    try:
        array = pa.Array.from_pandas(text)
        if not pa.types.is_string(array.type) and not pa.types.is_large_string(array.type):
            raise TypeError(f"cells of {array.type}")
        found = pc.index_in(array, value_set=pa.array(categories, type=array.type))
        return found.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64) + 1
    except (pa.ArrowException, TypeError):  # text mixed with other values: pandas compares
        return pd.Index(categories).get_indexer(text.astype(str)) + 1


def datetime_features(frame: pd.DataFrame, column: str, name: str) -> np.ndarray:
    """A date and time column as float64 ``(rows, 7)``, the parts of ``DATETIME_PARTS``
    (times with an offset are taken in UTC, times without one as they are); NaN rows where a
    cell is missing.

    Raises:
        ValueError: a filled cell that is not a date; the message names the row and column.

    Example:
        >>> frame = pd.DataFrame({"t": ["1970-01-02T06:00:00", None]})
        >>> datetime_features(frame, "t", "t.csv")[0, :3].round(3).tolist()
        [1.25, 1.0, 0.0]
    """
    cells = frame[column]
    if pd.api.types.is_datetime64_any_dtype(cells):
        times = pd.to_datetime(cells, utc=True)
    else:
        times = pd.to_datetime(cells, format="ISO8601", utc=True, errors="coerce")
        bad = times.isna().to_numpy() & cells.notna().to_numpy()
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"{name}: row {row}, column {column!r}: {cells.iloc[row]!r} is not a date and "
                f"time (the column holds ISO 8601 times such as 2025-11-07T11:28:05)"
            )
    seconds = (times - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy(np.float64)
    days = seconds / 86400.0
    angles = [
        2 * np.pi * np.mod(days, 1.0),  # the time of day
        2 * np.pi * np.mod(days + 3.0, 7.0) / 7.0,  # the day of the week (1970-01-01: Thursday)
        2 * np.pi * np.mod(days, 365.2425) / 365.2425,  # the time of year
    ]
    parts = [days]
    for angle in angles:
        parts += [np.sin(angle), np.cos(angle)]
    return np.stack(parts, axis=1)


@dataclass
class TablePreprocessor:
    """The fitted encoding of a table's feature columns (see the module docstring).

    Attributes:
        numeric: numeric feature columns, in order.
        categorical: categorical feature columns, in order.
        means: fitted mean per numeric column.
        stds: fitted standard deviation per numeric column (1 where constant).
        indicators: numeric columns that get a "was missing" indicator.
        categories: the fitted categories (as text) per categorical column, the most frequent
            first; code i + 1 is ``categories[column][i]`` (i + 2 in ``other`` columns).
        datetimes: date and time columns, each read as the numeric features of
            ``DATETIME_PARTS`` after the numeric columns (``means`` and ``stds`` cover both).
        ignored: text columns not read because most rows hold a value too rare to learn from.
        other: categorical columns with an "other" code (1) shared by their rare categories
            and unseen values; their fitted categories have codes from 2.
        values: the distinct values each categorical column held at fit time.
    """

    numeric: list[str]
    categorical: list[str]
    means: list[float] = field(default_factory=list)
    stds: list[float] = field(default_factory=list)
    indicators: list[str] = field(default_factory=list)
    categories: dict[str, list[str]] = field(default_factory=dict)
    datetimes: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    other: list[str] = field(default_factory=list)
    values: dict[str, int] = field(default_factory=dict)

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
        return cls.fit_values(
            frame,
            exclude=exclude,
            categorical_columns=categorical_columns,
            numeric_columns=numeric_columns,
            name=name,
        )[0]

    @classmethod
    def fit_values(
        cls,
        frame: pd.DataFrame,
        *,
        exclude: Sequence[str] = (),
        categorical_columns: Sequence[str] | None = None,
        numeric_columns: Sequence[str] | None = None,
        name: str = "table",
    ) -> tuple[TablePreprocessor, np.ndarray]:
        """:meth:`fit`, and the numeric values it fitted on (:meth:`numeric_values`), which
        :meth:`transform` of the same frame takes instead of reading them again (with
        :func:`category_codes`, ten million transactions encode in 44 s instead of 65).

        Example:
            >>> frame = pd.DataFrame({"t": ["2025-01-01T06:00", None], "x": [1.0, 3.0]})
            >>> pre, values = TablePreprocessor.fit_values(frame)
            >>> (pre.transform(frame, numeric=values) == pre.transform(frame)).all()
            np.True_
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
        free = [c for c in features if c not in forced_cat and c not in forced_num]
        datetimes = [c for c in free if is_time_column(frame[c])]
        categorical = [
            c
            for c in features
            if c in forced_cat or (c in free and c not in datetimes and _is_categorical(frame[c]))
        ]
        numeric = [c for c in features if c not in categorical and c not in datetimes]
        ignored = [  # counted before any category list is made: an id has a million
            c
            for c in categorical
            if c not in forced_cat
            and frame[c].nunique() > max(_ID_LIKE_MIN, _ID_LIKE_SHARE * frame[c].notna().sum())
        ]
        min_rows = category_min_rows(len(frame))
        found = {
            c: _Column.fit(frame[c], 1 if c in forced_cat else min_rows)
            for c in categorical
            if c not in ignored
        }
        ignored += [  # a card number seen a dozen times: most rows would share "other"
            c
            for c, f in found.items()
            if c not in forced_cat and f.values > _ID_LIKE_MIN and f.covered < _ID_LIKE_SHARE
        ]
        categorical = [c for c in categorical if c not in ignored]
        categories = {c: found[c].coded for c in categorical}
        if not numeric and not categorical and not datetimes:
            raise ValueError(
                f"{name}: no feature column left: {ignored} hold another value in nearly "
                f"every row (give them as categorical columns to read them anyway)"
            )
        encoding = cls(
            [str(c) for c in numeric],
            [str(c) for c in categorical],
            categories={str(c): v for c, v in categories.items()},
            datetimes=[str(c) for c in datetimes],
            ignored=[str(c) for c in ignored],
            other=[str(c) for c in categorical if found[c].covered < 1],
            values={str(c): found[c].values for c in categorical},
        )
        values = encoding.numeric_values(frame, name)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a column without a value
            # A column at a time: NumPy's nanstd of all copies them (720 MB for 10M rows).
            means = np.array([np.nanmean(values[:, j]) for j in range(values.shape[1])])
            stds = np.array([np.nanstd(values[:, j]) for j in range(values.shape[1])])
        encoding.means = np.nan_to_num(means).tolist()
        encoding.stds = np.where(np.isfinite(stds) & (stds > 1e-12), stds, 1.0).tolist()
        # A missing time leaves all its parts missing: one indicator, on its first part.
        second_parts = {f"{c} ({p})" for c in datetimes for p in DATETIME_PARTS[1:]}
        encoding.indicators = [
            c
            for i, c in enumerate(encoding.numeric_names)
            if c not in second_parts and np.isnan(values[:, i]).any()
        ]
        return encoding, values

    def summary(self) -> dict[str, Any]:
        """How each column is read, for people: numbers, categories (with their codes), times,
        and the columns left out.

        Example:
            >>> frame = pd.DataFrame({"amount": [1.0, 2.0, 3.0], "shop": ["a", "b", "a"]})
            >>> TablePreprocessor.fit(frame).summary()
            {'numeric': ['amount'], 'categorical': {'shop': '2 values'}}
        """
        categorical = {}
        for c in self.categorical:
            coded, held = len(self.categories[c]), self.values.get(c, len(self.categories[c]))
            categorical[c] = (
                f"{coded:,} of {held:,} values coded, the rarer sharing one"
                if c in self.other
                else f"{held:,} values"
            )
        found: dict[str, Any] = {"numeric": self.numeric, "categorical": categorical}
        found["times"] = self.datetimes
        found["not_read"] = self.ignored
        return {k: v for k, v in found.items() if v}

    def describe(self, most: int = 12) -> str:
        """:meth:`summary` as one line (at most ``most`` columns named per kind).

        Example:
            >>> frame = pd.DataFrame({"amount": [1.0, 2.0], "t": ["2025-01-01", "2025-01-02"]})
            >>> TablePreprocessor.fit(frame).describe()
            'columns: 1 numeric (amount); 1 time (t)'
        """
        summary = self.summary()

        def listed(names: list[str]) -> str:
            more = f" and {len(names) - most:,} more" if len(names) > most else ""
            return ", ".join(names[:most]) + more

        parts = []
        if "numeric" in summary:
            parts.append(f"{len(self.numeric)} numeric ({listed(self.numeric)})")
        if "categorical" in summary:
            named = [f"{c}: {v}" for c, v in summary["categorical"].items()]
            parts.append(f"{len(named)} categorical ({listed(named)})")
        if "times" in summary:
            times = self.datetimes
            parts.append(f"{len(times)} time{'s' * (len(times) > 1)} ({listed(times)})")
        if "not_read" in summary:
            parts.append(f"not read: {listed(self.ignored)}")
        return "columns: " + "; ".join(parts)

    @property
    def numeric_names(self) -> list[str]:
        """The standardized features, in order: numeric columns, then each time's parts."""
        return [*self.numeric, *(f"{c} ({p})" for c in self.datetimes for p in DATETIME_PARTS)]

    def numeric_values(self, frame: pd.DataFrame, name: str = "table") -> np.ndarray:
        """The standardized features of ``frame`` before standardizing: float64, NaN where
        missing.

        Raises:
            ValueError: a numeric cell holding text or a time cell that is not a date (the
                message names the row and column).
        """
        parts = [numeric_cells(frame, self.numeric, name, _CATEGORICAL_HINT)]
        parts += [datetime_features(frame, c, name) for c in self.datetimes]
        return np.concatenate(parts, axis=1)

    @property
    def numeric_width(self) -> int:
        """Numeric inputs: standardized features plus missing indicators."""
        return len(self.numeric_names) + len(self.indicators)

    @property
    def cardinalities(self) -> list[int]:
        """Codes per categorical column, including code 0 (missing, and unseen where the
        column has no "other" code) and the "other" code."""
        return [len(self.categories[c]) + 1 + (c in self.other) for c in self.categorical]

    @property
    def inputs(self) -> list[str]:
        """The table's columns it reads as input: numeric, categorical, then times."""
        return [*self.numeric, *self.categorical, *self.datetimes]

    @property
    def feature_names(self) -> list[str]:
        """The names of the encoded columns, in order."""
        missing = (f"{c} (missing)" for c in self.indicators)
        return [*self.numeric_names, *missing, *self.categorical]

    def transform(
        self, frame: pd.DataFrame, name: str = "table", numeric: np.ndarray | None = None
    ) -> np.ndarray:
        """Encode ``frame`` as float32 ``(n, numeric_width + categorical columns)``;
        ``numeric``: its :meth:`numeric_values` where they were read already.

        Raises:
            ValueError: a fitted column is absent, or a numeric cell holds text (the message
                names the row and column).
        """
        missing = [c for c in self.inputs if c not in frame.columns]
        if missing:
            raise ValueError(
                f"{name}: columns {missing} are missing (the encoder was fitted on them)"
            )
        values = self.numeric_values(frame, name) if numeric is None else numeric
        names = self.numeric_names
        # Written a column at a time into the result: ten million rows' float64 copies of
        # every column at once took 1.5 GB more than the result.
        width = len(names) + len(self.indicators) + len(self.categorical)
        out = np.empty((len(frame), width), dtype=np.float32)
        for j in range(len(names)):
            column = values[:, j]
            scaled = (column - self.means[j]) / self.stds[j]
            scaled[np.isnan(column)] = 0.0
            out[:, j] = scaled
        for k, indicated in enumerate(self.indicators, start=len(names)):
            out[:, k] = np.isnan(values[:, names.index(indicated)])
        for k, column in enumerate(self.categorical, start=len(names) + len(self.indicators)):
            cells = frame[column]
            found = category_codes(cells, self.categories[column])
            if column in self.other:  # rare or unseen: 1, the fitted categories from 2
                found = np.where(found > 0, found + 1, 1)
            found[cells.isna().to_numpy()] = 0
            out[:, k] = found
        return out

    def one_hot(self, encoded: np.ndarray, most: int = ONE_HOT_MOST) -> np.ndarray:
        """The encoded matrix with each categorical code expanded to one-hot columns (for
        linear baselines on raw features): at most ``most`` columns per categorical column,
        the last shared by its rarer categories (codes follow the fitted frequency), so 40,000
        merchants make 64 columns, not a 40,000-wide matrix.

        Example:
            >>> pre = TablePreprocessor(["x"], ["c"], [0.0], [1.0], categories={"c": list("abc")})
            >>> pre.one_hot(np.array([[0.5, 1.0], [0.5, 3.0], [0.5, 0.0]]), most=3).tolist()
            [[0.5, 0.0, 1.0, 0.0], [0.5, 0.0, 0.0, 1.0], [0.5, 1.0, 0.0, 0.0]]
        """
        width = self.numeric_width
        parts = [encoded[:, :width].astype(np.float32)]
        rows = np.arange(len(encoded))
        for j, k in enumerate(self.cardinalities):
            columns = min(k, most)
            block = np.zeros((len(encoded), columns), dtype=np.float32)
            codes = encoded[:, width + j].round().astype(np.int64).clip(0, columns - 1)
            block[rows, codes] = 1.0
            parts.append(block)
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
        ValueError: bad columns or cells (the message names them).

    Rows without a label (an empty cell of ``label_column``) are unlabelled items: see
    :class:`selfsup.data.base.PartialLabels`.
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
        numeric = None
        if preprocessor is None:
            preprocessor, numeric = TablePreprocessor.fit_values(
                frame,
                exclude=exclude,
                categorical_columns=categorical_columns,
                numeric_columns=numeric_columns,
                name=name,
            )
            notes = [label_like_warning(preprocessor.inputs) if label_column is None else None]
            if preprocessor.ignored:
                notes.append(ignored_warning(frame, preprocessor.ignored))
            unsaid = [c for c in preprocessor.numeric if c not in set(numeric_columns or ())]
            notes.append(integers_warning(frame, unsaid))
            self.warning = "; ".join(n for n in notes if n) or None
            self.inputs_note = preprocessor.describe()
        self.preprocessor = preprocessor
        self.values = torch.from_numpy(preprocessor.transform(frame, name, numeric))
        del numeric  # the fit's float64 columns (720 MB for ten million rows): freed now
        self.name = name
        if id_column is None and not isinstance(frame.index, pd.RangeIndex):
            index = frame.index  # a DataFrame's, or a folder's FILE:ROW
            large = len(index) >= COMPACT_IDS
            self._ids: Sequence[str] | None = (
                TextIds(index.astype(str)) if large else [str(i) for i in index]
            )
            if not (index.is_unique and index.inferred_type == "string"):
                check_unique_ids(self._ids, name)  # named (text ids: hashed by pandas first)
        else:
            self._ids = column_ids(frame, id_column, name) if id_column is not None else None
        if label_column is not None:
            if frame[label_column].isna().all() and require_label:
                raise ValueError(f"{name}: no row has a label in column {label_column!r}")
            self.labels, self.classes, self.partial_labels = present_labels(
                frame[label_column].to_numpy(), label_column, classes, as_text=False
            )
            if self.partial_labels is not None:  # labels of some rows only
                note = self.partial_labels.note(len(frame))
                self.warning = "; ".join(n for n in (self.warning, note) if n)

    @property
    def feature_names(self) -> list[str]:
        """The encoded columns' names."""
        return self.preprocessor.feature_names

    def times(self) -> tuple[str, np.ndarray] | None:
        """The first date and time column's name and its days since 1970 per row (NaN where
        missing), from the encoded rows (to a second); None without one.

        Example:
            >>> src = TabularSource(pd.DataFrame({"t": ["2025-01-01T12:00", None], "x": [1, 2]}))
            >>> name, days = src.times()
            >>> name, days.round(3).tolist()
            ('t', [20089.5, nan])
        """
        pre = self.preprocessor
        if not pre.datetimes:
            return None
        name = f"{pre.datetimes[0]} ({DATETIME_PARTS[0]})"
        j = pre.numeric_names.index(name)
        days = self.values[:, j].double().numpy() * pre.stds[j] + pre.means[j]
        if name in pre.indicators:
            flags = self.values[:, len(pre.numeric_names) + pre.indicators.index(name)]
            days[flags.numpy() > 0.5] = np.nan
        return pre.datetimes[0], days

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
    :class:`TabularSource`.

    Raises:
        MemoryError: the file will not fit in memory (planned from its first rows, so a
            fraud team's year of transactions is refused at once, not killed a minute in).
    """
    if isinstance(path, pd.DataFrame):
        return TabularSource(path, **{"name": "DataFrame", **options})
    planned = plan_table_memory(path, TABLE_READ_COPIES)  # before its rows are read
    source = TabularSource(read_table(path, typed_times=True), name=str(path), **options)
    if planned:  # a large file: its rows, encoded, are freed where Arrow's allocator keeps them
        give_back_freed()
    source.index_note = sheet_note(path)
    return source
