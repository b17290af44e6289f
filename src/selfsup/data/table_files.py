"""Reading CSV, TSV and Parquet tables a user supplies, and their numeric cells, truthfully.

One reader for every table selfsup takes (tabular data, series in long or wide form, texts
in a column, labels for audits and selection): a CSV must be UTF-8 text (binary data and
Latin-1 exports are named with their line, see :mod:`selfsup.core.text_files`), a file pandas
cannot parse is named with pandas' reason, and a numeric cell that holds text, infinity or a
value beyond float32's range is named with its row and column where it is read, instead of
ending, much later, as a NaN loss.

Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "t.csv"
    >>> _ = path.write_text("a,b\\n1,2\\n3,inf\\n")
    >>> frame = read_table(path)
    >>> try:
    ...     numeric_cells(frame, ["a", "b"], str(path.name))
    ... except ValueError as err:
    ...     print(str(err).split(";")[0])
    t.csv: row 1, column 'b': inf is infinite
    >>> numeric_cells(frame, ["a"], "t.csv").ravel().tolist()
    [1.0, 3.0]
"""

from __future__ import annotations

import codecs
import csv
import datetime
import io
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from selfsup.core.errors import one_line
from selfsup.core.files import size_text
from selfsup.core.text_files import SNIFF_BYTES, check_text, not_utf8
from selfsup.data.base import EmptySourceError
from selfsup.data.folders import find_files

#: Spreadsheet workbooks (Excel's, LibreOffice's), read by calamine: their first sheet.
WORKBOOK_SUFFIXES = (".xlsx", ".xlsm", ".xls", ".ods")
#: The suffixes read as tables.
TABLE_SUFFIXES = (".csv", ".tsv", ".parquet", ".pq", *WORKBOOK_SUFFIXES)
#: Reading a folder of tables (a month's transactions a file) holds about this many copies
#: of its rows at once: the files' tables and their join, then the join beside its encoding
#: (as one file's, ``TABLE_READ_COPIES``). Logs have their own (``LOG_READ_COPIES``).
FOLDER_READ_COPIES = 3
#: Opening one table file (``selfsup datasets show``, the start of ``pretrain``) holds about
#: this many copies of its rows as read (the CSV reader's buffers, then the rows beside
#: their numbers in float64 and their encoding): 4.5 GB at most for 10,000,000 transactions
#: of 1.6 GB (873 MB of CSV), with 0.4 GB of libraries, is 2.5.
TABLE_READ_COPIES = 3
#: A table file's rows sampled to plan the memory reading it takes (:func:`plan_table_memory`).
PLAN_ROWS = 20_000
#: A table file smaller than this is read without a plan.
PLANNED_FILE_BYTES = 64 << 20
#: The largest magnitude a value may have: float32's (the precision everything trains in).
LARGEST = float(np.finfo(np.float32).max)
#: Bytes decoded at a time when a CSV is checked for UTF-8.
_BLOCK = 1 << 20


#: Column names that usually hold labels: read as input only when no label column is given,
#: with a warning (an encoder that reads the labels makes every evaluation perfect).
LABEL_LIKE = frozenset({"label", "labels", "target", "class", "y"})


def label_like_warning(inputs: Sequence[Any]) -> str | None:
    """A warning when one of the columns read as input is named as labels usually are.

    Example:
        >>> label_like_warning(["a", "b"]) is None
        True
        >>> label_like_warning(["a", "Label"])
        "column 'Label' looks like labels but is read as input; if it holds labels, give --label-column Label"
    """  # noqa: E501
    for column in inputs:
        if str(column).lower() in LABEL_LIKE:
            return (
                f"column {column!r} looks like labels but is read as input; if it holds "
                f"labels, give --label-column {column}"
            )
    return None


def _check_utf8(path: Path) -> None:
    """Refuse binary data, and name the first line that is not UTF-8, reading ``path`` in
    blocks (constant memory whatever its size)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    with path.open("rb") as f:
        check_text(path, f.read(SNIFF_BYTES))
        f.seek(0)
        offset = 0
        while True:
            block = f.read(_BLOCK)
            try:
                decoder.decode(block, final=not block)
            except UnicodeDecodeError as err:
                # err.object is what the decoder held back from the last block, then this one.
                at = offset - (len(err.object) - len(block)) + err.start
                reason = err.reason
                break
            if not block:
                return
            offset += len(block)
        f.seek(0)
        number, start, position = 1, 0, 0
        while position < at:  # count the lines before the bad byte, block by block
            block = f.read(min(_BLOCK, at - position))
            number += block.count(b"\n")
            last = block.rfind(b"\n")
            if last >= 0:
                start = position + last + 1
            position += len(block)
        f.seek(start)
        raw = f.readline()
    inner = UnicodeDecodeError("utf-8", raw, at - start, at - start + 1, reason)
    raise ValueError(not_utf8(path, number, raw, inner))


def sheet_note(path: str | os.PathLike) -> str | None:
    """Which sheet of a workbook of several :func:`read_table` reads (the first), for
    people; None for a workbook of one sheet and for other files.

    Example:
        >>> sheet_note("visits.csv") is None
        True
    """
    path = Path(path)
    if path.suffix.lower() not in WORKBOOK_SUFFIXES:
        return None
    try:
        names = pd.ExcelFile(path, engine="calamine").sheet_names
    except Exception:  # a broken workbook: read_table says what is wrong with it
        return None
    if len(names) < 2:
        return None
    shown = ", ".join(map(repr, names[:6])) + (", ..." if len(names) > 6 else "")
    return (
        f"sheet {names[0]!r}, the first of {len(names)} ({shown}; another is read once it "
        "is moved first or saved as its own file)"
    )


#: Column separators a CSV file may use, in the order a tie is settled: Excel writes ";"
#: where the decimal mark is a comma (most of Europe); tabs and "|" come from databases.
SEPARATORS = (",", ";", "\t", "|")
#: Bytes of a CSV file's start its format is told from.
_FORMAT_BYTES = 1 << 16
#: A number written with a decimal comma whose thousands are grouped by points.
_GROUPED = re.compile(r"[+-]?\d{1,3}(?:\.\d{3})+(?:,\d+)?")


@dataclass(frozen=True)
class CsvFormat:
    """How a CSV file is written: its column separator, decimal mark, thousands separator
    (None: numbers are not grouped) and lines before its header (Excel's ``sep=;`` line).

    Example:
        >>> CsvFormat()
        CsvFormat(sep=',', decimal='.', thousands=None, skip=0)
    """

    sep: str = ","
    decimal: str = "."
    thousands: str | None = None
    skip: int = 0


def csv_format(path: str | os.PathLike) -> CsvFormat:
    """The format of the CSV file at ``path``, told from its first 64 kB: the separator
    (:data:`SEPARATORS`) that splits the header and the rows below it into the same number of
    columns, two at least (else a comma); where it is not a comma, a decimal comma when some
    column's cells are all numbers written with one (``21,5``; ``1.013,25`` groups
    thousands by points), as a German or French Excel writes ``Temperatur;Druck`` and
    ``21,5;1,013``. An Excel ``sep=;`` first line gives the separator itself.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "t.csv"
        >>> _ = path.write_text("Zeit;Temperatur;Druck\\n01.03.2025 00:00;21,5;1.013,2\\n")
        >>> csv_format(path)
        CsvFormat(sep=';', decimal=',', thousands='.', skip=0)
        >>> _ = path.write_text("text\\nhello, world\\n")
        >>> csv_format(path).sep
        ','
    """
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as f:
        head = f.read(_FORMAT_BYTES)
    if len(head) == _FORMAT_BYTES:  # the last line may be cut
        head = head[: head.rfind("\n") + 1] or head
    skip, given = 0, re.match(r"sep=(.)\r?\n", head)
    if given:
        skip, head = 1, head[given.end() :]

    def split(sep: str) -> list[list[str]]:
        try:
            return [row for row in csv.reader(io.StringIO(head), delimiter=sep) if row][:200]
        except csv.Error:
            return []

    def fit(rows: list[list[str]]) -> int:
        """How many rows split like the header, or -1 where the header is one column."""
        if not rows or len(rows[0]) < 2:
            return -1
        return sum(len(row) == len(rows[0]) for row in rows[1:])

    if given:
        sep = given.group(1)
    else:
        fits = {sep: fit(split(sep)) for sep in SEPARATORS}
        sep = max(SEPARATORS, key=lambda s: (fits[s], -SEPARATORS.index(s)))
        if fits[sep] < 0:
            sep = ","
    if sep == ",":
        return CsvFormat(skip=skip)
    body = [row for row in split(sep)[1:] if len(row) > 1]
    decimal, grouped, pattern = ".", False, _formatted_number(",")
    for column in zip(*body, strict=False):
        found = [pattern.fullmatch(c.strip()) for c in column if c.strip()]
        numbers = [m.group(2) for m in found if m is not None]
        if numbers and len(numbers) == len(found):
            if any("," in n for n in numbers):
                decimal = ","
            grouped = grouped or any(_GROUPED.fullmatch(n) for n in numbers)
    thousands = "." if decimal == "," and grouped else None
    return CsvFormat(sep, decimal, thousands, skip)


#: Dates written day or month first, as spreadsheets outside ISO 8601 write them:
#: ``31.03.2025``, ``31/03/2025 14:05``, ``3/31/2025 2:05:09``.
_LOCAL_DATE = re.compile(
    r"(\d{1,2})([./])(\d{1,2})\2(\d{4})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2})(\.\d+)?)?)?"
)
#: Cells of a column whose form decides whether it holds dates or formatted numbers.
_SAMPLE = 200


def _sampled_text(cells: pd.Series) -> list[str]:
    """Up to 200 filled cells spread over a text column, stripped; none for other columns.

    Example:
        >>> _sampled_text(pd.Series([" a ", None, "b"])), _sampled_text(pd.Series([1.0]))
        (['a', 'b'], [])
    """
    if not (pd.api.types.is_object_dtype(cells) or pd.api.types.is_string_dtype(cells)):
        return []
    return [str(v).strip() for v in cells.iloc[:: max(1, len(cells) // _SAMPLE)].dropna()]


def _local_dates(cells: pd.Series) -> list[re.Match[str]] | None:
    """The sampled cells of a column (:func:`_sampled_text`) read as dates written day or
    month first, all with a time or all without; None where one is not such a date."""
    found = [_LOCAL_DATE.fullmatch(v) for v in _sampled_text(cells)]
    matches = [m for m in found if m is not None]
    if not found or len(matches) < len(found) or len({m.group(5) is None for m in matches}) > 1:
        return None
    return matches


def _local_date_form(matches: list[re.Match[str]]) -> str | None:
    """The ``strptime`` form of dates sampled by :func:`_local_dates` (see
    :func:`local_times`), None where they do not show whether the day or the month comes
    first.

    Example:
        >>> _local_date_form(_local_dates(pd.Series(["31/03/2025 14:05", "1/4/2025 09:00"])))
        '%d/%m/%Y %H:%M'
        >>> _local_date_form(_local_dates(pd.Series(["3/4/2025"]))) is None  # which first?
        True
    """
    one = matches[0]
    first = max(int(m.group(1)) for m in matches)
    second = max(int(m.group(3)) for m in matches)
    if one.group(2) == "." or first > 12 >= second:
        form = "%d{0}%m{0}%Y"
    elif second > 12 >= first:
        form = "%m{0}%d{0}%Y"
    else:
        return None
    form = form.format(one.group(2))
    if one.group(5) is not None:
        form += " %H:%M" + (":%S" if one.group(7) is not None else "")
        form += ".%f" if one.group(8) else ""
    return form


def unsure_dates(cells: pd.Series) -> str | None:
    """A cell of a column of slashed dates that read day first and month first alike
    (``03/04/2025``: every part 12 or below in a sample of 200), which :func:`local_times`
    leaves as text and a guess reads month first; None for any other column.

    Example:
        >>> unsure_dates(pd.Series(["03/04/2025", "04/04/2025"]))
        '03/04/2025'
        >>> unsure_dates(pd.Series(["31/03/2025"])) is None, unsure_dates(pd.Series([1.0])) is None
        (True, True)
    """
    matches = _local_dates(cells)
    if matches is None or any(m.group(2) != "/" for m in matches):
        return None
    return matches[0].group(0) if _local_date_form(matches) is None else None


def local_times(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its text columns of dates written day or month first typed as
    datetimes (no time zone), so that a German export's ``01.03.2025 00:00:00`` is the first
    of March, not the third of January as a guess reads it. Which comes first: day first
    where the parts are separated by points (``dd.mm.yyyy``, as in Germany, Russia or
    Norway); with slashes, whichever the cells show, where a first part above 12 is a day
    (``31/03/2025``) and a second part above 12 a month's day (``3/31/2025``). A column of
    slashed dates that does not show it (every part 12 or below, in a sample of 200 cells
    spread over it) or whose cells do not all read in one form is left as text.

    Example:
        >>> frame = pd.DataFrame({"t": ["01.03.2025 00:00:00", "02.03.2025 12:30:00"],
        ...                       "us": ["3/31/2025", "4/1/2025"], "x": ["a", "b"]})
        >>> typed = local_times(frame)
        >>> typed["t"].dt.month.tolist(), typed["us"].dt.day.tolist(), typed["x"].tolist()
        ([3, 3], [31, 1], ['a', 'b'])
    """
    for column in frame.columns:
        cells = frame[column]
        matches = _local_dates(cells)
        form = None if matches is None else _local_date_form(matches)
        if form is None:
            continue
        text = cells.astype("string").str.strip().str.replace("T", " ", regex=False)
        times = pd.to_datetime(text, format=form, errors="coerce")
        if not (times.isna() & cells.notna()).any():  # a cell in another form: left as text
            frame[column] = times if form.endswith("%f") else times.astype("datetime64[s]")
    return frame


#: Currency symbols a spreadsheet writes beside an amount (``$1,467.45``, ``1.234,50 €``).
_CURRENCY = "$€£¥₹₩₽"


def _formatted_number(decimal: str) -> re.Pattern[str]:
    """A number as a spreadsheet formats it for people, its decimal mark ``decimal``: signs,
    a currency symbol before or after, thousands grouped (by commas, or by points or spaces
    where the mark is a comma), a percent sign, an accountant's parentheses for negatives.
    Groups: the currency symbols, the number, the percent sign.

    Example:
        >>> pattern = _formatted_number(".")
        >>> pattern.fullmatch("($1,467.45)").group(2), pattern.fullmatch("8.6%").group(3)
        ('1,467.45', '%')
        >>> _formatted_number(",").fullmatch("1.234,50 €").group(2)
        '1.234,50'
    """
    group = "," if decimal == "." else "[. \u00a0\u202f]"
    mark = re.escape(decimal)
    number = f"\\d{{1,3}}(?:{group}\\d{{3}})+(?:{mark}\\d+)?|\\d+(?:{mark}\\d+)?|{mark}\\d+"
    symbol = f"[{_CURRENCY}]"
    return re.compile(f"\\(?[-+]?\\s*({symbol}?)\\s*[-+]?({number})\\s*{symbol}?\\s*(%?)\\)?")


def formatted_numbers(frame: pd.DataFrame, decimal: str = ".") -> pd.DataFrame:
    """``frame`` with its text columns of numbers formatted for people read as numbers:
    amounts with a currency symbol and grouped thousands (``$1,467.45``, ``"1.234,50 €"``
    where the decimal mark is a comma), percentages (``8.6%`` is 8.6) and an accountant's
    negatives (``(12.00)`` is -12). A column is read so only where a sample of 200 of its
    filled cells spread over it are all such numbers, one of them formatted (a symbol, a
    percent sign, grouped thousands or parentheses), with one currency at most; and where
    every cell then reads as a number. The rest stay text (a fraud team's amounts were
    left out as ids, their discounts read as 299 categories).

    Example:
        >>> frame = pd.DataFrame({"amount": ["$1,467.45", "($12.00)"], "off": ["8.6%", "10%"],
        ...                       "mixed": ["$5", "€5"], "code": ["A1", "B2"]})
        >>> typed = formatted_numbers(frame)
        >>> typed["amount"].tolist(), typed["off"].tolist(), typed["mixed"].tolist()
        ([1467.45, -12.0], [8.6, 10.0], ['$5', '€5'])
    """
    pattern = _formatted_number(decimal)
    grouped = set(",") if decimal == "." else set(". \u00a0\u202f")
    for column in frame.columns:
        cells = frame[column]
        found = [pattern.fullmatch(v) for v in _sampled_text(cells)]
        if not found or not all(found):
            continue
        symbols = {c for m in found if m for c in m.group(0) if c in _CURRENCY}
        formatted = bool(symbols) or any(
            m.group(3) or "(" in m.group(0) or set(m.group(2)) & grouped for m in found if m
        )
        if len(symbols) > 1 or not formatted:
            continue
        text = cells.astype("string").str.strip()
        negative = text.str.startswith("(") & text.str.endswith(")")
        digits = text.str.replace(f"[{_CURRENCY}%()\\s+]", "", regex=True)
        if decimal == ".":
            digits = digits.str.replace(",", "", regex=False)
        else:
            digits = digits.str.replace(".", "", regex=False).str.replace(",", ".", regex=False)
        numbers = pd.to_numeric(digits, errors="coerce")
        if (numbers.isna() & cells.notna()).any():
            continue
        frame[column] = numbers.where(~negative.fillna(False), -numbers).astype("float64")
    return frame


#: ISO 8601 dates and times as text (``2025-11-07``, ``2025-11-07T11:28:05Z``).
_ISO_TIME = re.compile(
    r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}(:?\d{2})?)?"
)
#: Cells looked at to decide whether a text column holds dates.
_TIME_SAMPLE = 200


def is_time_column(cells: pd.Series) -> bool:
    """A datetime type, or text whose first filled cells all read as ISO 8601 dates.

    Example:
        >>> is_time_column(pd.Series(["2025-11-07T11:28:05Z", None])), is_time_column(
        ...     pd.Series(["07/11/2025"]))
        (True, False)
    """
    if pd.api.types.is_datetime64_any_dtype(cells):
        return True
    if pd.api.types.is_numeric_dtype(cells) or pd.api.types.is_bool_dtype(cells):
        return False
    sample = cells.dropna().head(_TIME_SAMPLE)
    return len(sample) > 0 and all(
        isinstance(v, str) and _ISO_TIME.fullmatch(v.strip()) for v in sample
    )


def read_table(
    path: str | os.PathLike,
    *,
    as_text: bool = False,
    rows: int | None = None,
    empty_ok: bool = False,
    typed_times: bool = False,
    columns: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Read a CSV, TSV or Parquet file into a DataFrame, naming the file on any failure.

    Args:
        path: a ``.csv``, ``.tsv`` (tab-separated), ``.parquet``/``.pq`` file, or a
            workbook (``.xlsx``, ``.xls``, ``.ods``: its first sheet).
        as_text: every cell as text (missing cells stay missing), as ids and labels are read.
        rows: read only the header and this many rows (``0``: the column names alone).
        empty_ok: a table of column names alone is returned, not refused (a month's export
            of a machine that did not run, among others).
        typed_times: a whole CSV or TSV is read by Arrow's reader, its ISO 8601 times and
            dates typed as datetimes, as a Parquet file holds them (ten million
            transactions: 8 s and 3.7 GB, against 33 s and 5.8 GB); pandas' C parser reads
            it where Arrow cannot, so a malformed file is named as before.
        columns: read these columns only (an audit's group column of ten million rows,
            not the whole table beside the one the run holds already).

    Returns:
        The table.

    Raises:
        ValueError: a file that is not UTF-8 text, cannot be parsed, or holds no row (the
            message names the file and, where known, the line).
        OSError: the file cannot be opened.

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "ids.csv"
        >>> _ = path.write_text("id,label\\n007,cat\\n")
        >>> read_table(path, as_text=True)["id"].tolist()
        ['007']
    """
    path = Path(path)
    parquet = path.suffix.lower() in (".parquet", ".pq")
    workbook = path.suffix.lower() in WORKBOOK_SUFFIXES
    if not parquet and not workbook:
        _check_utf8(path)
    try:
        if workbook:
            frame = pd.read_excel(
                path,
                sheet_name=0,
                engine="calamine",
                dtype=str if as_text else None,
                nrows=rows,
                usecols=None if columns is None else list(columns),
            )
            frame = blank_as_missing(frame)
            if not as_text:
                frame = formatted_numbers(local_times(frame))
        elif parquet:
            frame = pd.read_parquet(path, columns=None if columns is None else list(columns))
            if rows is not None:
                frame = frame.head(rows)
            frame = blank_as_missing(frame)
            if as_text:
                frame = frame.astype(object).where(frame.notna(), None)
                frame = frame.map(lambda v: v if v is None else str(v))
        else:
            form = CsvFormat("\t") if path.suffix.lower() == ".tsv" else csv_format(path)
            frame = None
            if typed_times and not as_text and rows is None and columns is None:
                frame = _read_csv_by_arrow(path, form)
            if frame is None:
                frame = pd.read_csv(
                    path,
                    sep=form.sep,
                    decimal=form.decimal,
                    thousands=form.thousands,
                    skiprows=form.skip,
                    dtype=str if as_text else None,
                    nrows=rows,
                    encoding="utf-8-sig",
                    usecols=None if columns is None else list(columns),
                )
            if not as_text:
                frame = formatted_numbers(local_times(frame), form.decimal)
    except (OSError, MemoryError):
        raise
    except Exception as err:  # pandas and pyarrow raise many kinds; the user needs the file
        raise ValueError(f"{path}: cannot read the table ({one_line(err)})") from None
    if rows is None and frame.empty and len(frame.columns) and not empty_ok:
        raise ValueError(f"{path}: the table has no row, only the column names")
    if rows is None and path.stat().st_size >= PLANNED_FILE_BYTES:
        from selfsup.core.memory import give_back_freed  # it loads torch: not for small ones

        give_back_freed()  # the reader's buffers, kept by its allocator for reuse
    return frame


def _read_csv_by_arrow(path: Path, form: CsvFormat) -> pd.DataFrame | None:
    """A CSV read by pandas' Arrow engine, its dates (``2025-11-07``, read as Python dates)
    typed as datetimes like its times; None where Arrow cannot read it (or its numbers
    group thousands, which Arrow does not read).

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "t.csv"
        >>> _ = path.write_text("day,at,n\\n2025-11-07,2025-11-07T11:28:05Z,1\\n")
        >>> _read_csv_by_arrow(path, CsvFormat()).dtypes.astype(str).tolist()
        ['datetime64[s]', 'datetime64[s, UTC]', 'int64']
    """
    if form.thousands is not None:
        return None
    try:
        frame = pd.read_csv(
            path,
            sep=form.sep,
            decimal=form.decimal,
            skiprows=form.skip,
            engine="pyarrow",
            encoding="utf-8-sig",
        )
    except Exception:  # stricter than pandas' C parser (quoted newlines, ragged rows), which
        return None  # reads the file or names what is wrong with it
    for column in frame.columns:
        cells = frame[column]
        if pd.api.types.is_object_dtype(cells):
            filled = cells.dropna()
            if len(filled) and all(isinstance(v, datetime.date) for v in filled.head(100)):
                try:
                    frame[column] = pd.to_datetime(cells).astype("datetime64[s]")
                except (TypeError, ValueError):
                    return None
    return frame


def blank_as_missing(frame: pd.DataFrame) -> pd.DataFrame:
    """Empty text cells as missing ones, as pandas reads an empty CSV cell: a Parquet export
    that writes ``""`` for "no device" must encode as the CSV export of the same rows does,
    or a run trained on one reads the other's rows differently.

    Example:
        >>> blank_as_missing(pd.DataFrame({"d": ["ios", ""], "n": [1, 2]}))["d"].isna().tolist()
        [False, True]
    """
    for column in frame.columns:
        cells = frame[column]
        if pd.api.types.is_object_dtype(cells) or pd.api.types.is_string_dtype(cells):
            empty = cells.eq("").fillna(False).to_numpy(bool)
            if empty.any():
                frame[column] = cells.where(~empty, None)
    return frame


def row_name(frame: pd.DataFrame, row: int) -> str:
    """Row ``row`` (from 0) as messages name it: its number, or its label where the rows
    have their own (a folder's ``FILE:ROW``).

    Example:
        >>> row_name(pd.DataFrame({"a": [1, 2]}, index=["m.csv:0", "m.csv:1"]), 1)
        'm.csv:1'
    """
    return str(row) if isinstance(frame.index, pd.RangeIndex) else str(frame.index[row])


def numeric_cells(
    frame: pd.DataFrame, columns: Sequence[str], name: str, hint: str = ""
) -> np.ndarray:
    """The given columns as float64 ``(rows, columns)``, NaN where a cell is missing.

    Args:
        frame: the table.
        columns: the columns that must hold numbers.
        name: the table's name in messages (its file).
        hint: said after a text cell's message (what else the column could be).

    Raises:
        ValueError: a cell holding text, infinity, or a value beyond float32's range; the
            message names the row (from 0, as pandas counts) and the column.

    Example:
        >>> frame = pd.DataFrame({"a": [1, None], "b": ["2", "x"]})
        >>> try:
        ...     numeric_cells(frame, ["a", "b"], "t.csv")
        ... except ValueError as err:
        ...     print(err)
        t.csv: row 1, column 'b': 'x' is not a number
    """
    out = np.empty((len(frame), len(columns)), dtype=np.float64)
    for j, column in enumerate(columns):
        cells = frame[column]
        converted = pd.to_numeric(cells, errors="coerce")
        bad = converted.isna().to_numpy() & cells.notna().to_numpy()
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"{name}: row {row_name(frame, row)}, column {column!r}: {cells.iloc[row]!r} is "
                f"not a number{hint}"
            )
        values = converted.to_numpy(dtype=np.float64, na_value=np.nan)
        with np.errstate(invalid="ignore"):
            huge = np.abs(values) > LARGEST
        if huge.any():
            row = int(np.flatnonzero(huge)[0])
            value = values[row]
            what = "infinite" if np.isinf(value) else "beyond float32's range"
            raise ValueError(
                f"{name}: row {row}, column {column!r}: {value:g} is {what}; leave the cell "
                f"empty for a missing value"
            )
        out[:, j] = values
    return out


def read_table_folder(
    root: str | os.PathLike,
    prepare: Callable[[pd.DataFrame, str], pd.DataFrame] | None = None,
    *,
    typed_times: bool = False,
    copies: float = FOLDER_READ_COPIES,
) -> tuple[pd.DataFrame, list[str], list[str]]:
    """Every CSV/TSV/Parquet file under ``root`` (sorted; hidden ones left out) as one table,
    as a month's exports of transactions or a historian's logs come.

    Each file must have the first file's columns, in any order (they take the first's).
    Files of column names alone (a month a machine did not run) add no row and are counted.
    ``prepare(table, relative_path)`` changes each file's table before it joins the others
    (its time column parsed, its machine added, its rows given ids as its index, its numbers
    held in fewer bytes), so an error there can name the file; the memory the folder takes
    is planned from the first file prepared, as ``copies`` of the folder's rows
    (:func:`plan_folder_memory`). ``typed_times``: as :func:`read_table` reads.

    Returns:
        The table, the files read and those of column names alone, as ``/``-separated paths
        relative to ``root``.

    Raises:
        EmptySourceError: no table file under ``root``.
        ValueError: a file that cannot be read, or whose columns differ from the first's.

    Example:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> _ = (root / "2025-01.csv").write_text("amount,shop\\n5,a\\n")
        >>> _ = (root / "2025-02.csv").write_text("shop,amount\\nb,7\\n")
        >>> _ = (root / "2025-03.csv").write_text("amount,shop\\n")
        >>> table, files, empty = read_table_folder(root)
        >>> table.values.tolist(), files, empty
        ([[5, 'a'], [7, 'b']], ['2025-01.csv', '2025-02.csv', '2025-03.csv'], ['2025-03.csv'])
    """
    root = Path(root)
    files = find_files(root, TABLE_SUFFIXES)
    if not files:
        raise EmptySourceError(f"{root}: no table files ({', '.join(TABLE_SUFFIXES)})")
    frames: list[pd.DataFrame] = []
    columns: list[Any] = []
    empty: list[str] = []
    for rel in files:
        frame = read_table(root / rel, empty_ok=True, typed_times=typed_times)
        if frame.empty:
            empty.append(rel)
            continue
        if not frames:
            columns = list(frame.columns)
            prepared = prepare(frame, rel) if prepare is not None else frame
            plan_folder_memory(root, files, rel, prepared, copies=copies)
            frames.append(prepared)
            continue
        if set(frame.columns) != set(columns):
            extra = sorted(map(str, set(frame.columns) - set(columns)))
            missing = sorted(map(str, set(columns) - set(frame.columns)))
            said = "; ".join(
                f"{what} {', '.join(names)}"
                for what, names in (("has", extra), ("lacks", missing))
                if names
            )
            raise ValueError(f"{root / rel}: its columns differ from {root / files[0]}'s: {said}")
        frame = frame[columns]
        frames.append(prepare(frame, rel) if prepare is not None else frame)
    if not frames:
        raise EmptySourceError(f"{root}: its {len(files):,} table files hold no row")
    named = all(not isinstance(f.index, pd.RangeIndex) for f in frames)  # rows given ids
    return pd.concat(frames, ignore_index=not named), files, empty


def plan_folder_memory(
    root: Path,
    files: Sequence[str],
    first: str,
    frame: pd.DataFrame,
    available: int | None = None,
    copies: float = FOLDER_READ_COPIES,
) -> int:
    """The bytes reading the table files ``files`` under ``root`` will take, planned from the
    first one read (``first``, as ``frame``): its table's size per byte of file, times the
    folder's bytes, times the ``copies`` of its rows reading holds at once.

    Raises:
        MemoryError: the plan exceeds ``available`` (default: what this process can still
            use), with what to give instead; nothing has been read beyond the first file.

    Example:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> _ = (root / "a.csv").write_text("v\\n" + "1\\n" * 1000)
        >>> plan_folder_memory(root, ["a.csv"], "a.csv", read_table(root / "a.csv")) > 0
        True
    """
    sizes = [(root / rel).stat().st_size for rel in files]
    per_byte = frame.memory_usage(deep=True).sum() / max((root / first).stat().st_size, 1)
    planned = int(copies * per_byte * sum(sizes))
    what = f"its {len(files):,} table files ({size_text(sum(sizes))})"
    return _fitting(
        root, what, planned, available, "a part of it (a subfolder: fewer machines or months)"
    )


def plan_table_memory(
    path: str | os.PathLike,
    copies: float,
    prepare: Callable[[pd.DataFrame], pd.DataFrame] | None = None,
    available: int | None = None,
) -> int:
    """The bytes reading the table file ``path`` will take, planned from its first
    :data:`PLAN_ROWS` rows (``prepare``: how each row is held) as :func:`plan_folder_memory`
    plans a folder from its first file; 0 for a file under :data:`PLANNED_FILE_BYTES`
    (read without a plan) or a workbook.

    Raises:
        MemoryError: the plan exceeds ``available`` (default: what this process can still
            use), with what to give instead; nothing has been read beyond the sample.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "log.csv"
        >>> _ = path.write_text("t,v\\n" + "".join(f"{i:05},1.5\\n" for i in range(30_000)))
        >>> planned = plan_table_memory(path, 2.0, available=10**9)
        >>> round(planned / (2 * 16 * 30_000), 2)  # two copies of 16 bytes a row
        1.0
    """
    path = Path(path)
    size = path.stat().st_size
    suffix = path.suffix.lower()
    if suffix in WORKBOOK_SUFFIXES or (size < PLANNED_FILE_BYTES and available is None):
        return 0
    if suffix in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        parquet = pq.ParquetFile(path)
        rows = parquet.metadata.num_rows
        if rows == 0 or parquet.metadata.num_row_groups == 0:
            return 0
        sample = parquet.read_row_group(0).to_pandas()
        per_row = _held_bytes(sample, prepare) / max(len(sample), 1)
        planned = int(copies * per_row * rows)
    else:
        sample = read_table(path, rows=PLAN_ROWS, empty_ok=True)
        for column in sample.columns:  # ISO times held as datetimes, as Arrow reads them
            if not pd.api.types.is_datetime64_any_dtype(sample[column]) and is_time_column(
                sample[column]
            ):
                sample[column] = pd.to_datetime(sample[column], errors="coerce", utc=True)
        with path.open("rb") as f:  # the sample's bytes: its header and lines
            read = sum(len(line) for line, _ in zip(f, range(len(sample) + 1), strict=False))
        planned = int(copies * _held_bytes(sample, prepare) / max(read, 1) * size)
    rest = "a part of its rows in a file of its own (a span of time, some machines or cards)"
    return _fitting(path, f"its {size_text(size)}", planned, available, rest)


def _fitting(where: Path, what: str, planned: int, available: int | None, instead: str) -> int:
    """``planned`` bytes, once they are found to fit in ``available`` (default: what this
    process can still use).

    Raises:
        MemoryError: they do not; the message names ``where`` and says to give ``instead``.
    """
    from selfsup.core.memory import available_memory

    if available is None:
        import torch

        available = available_memory(torch.device("cpu"))
    if planned > available:
        raise MemoryError(
            f"{where}: {what} take about {size_text(planned)} of memory to read, and "
            f"{size_text(available)} is available: give {instead}"
        )
    return planned


def _held_bytes(frame: pd.DataFrame, prepare: Callable[[pd.DataFrame], pd.DataFrame] | None) -> int:
    """The bytes ``frame`` holds once ``prepare`` has changed it."""
    held = prepare(frame) if prepare is not None else frame
    return int(held.memory_usage(deep=True).sum())


def files_note(files: Sequence[str], empty: Sequence[str]) -> str:
    """``144 files`` or ``145 files (1 of column names alone: pump-03/2026-01.csv)``.

    Example:
        >>> files_note(["a.csv", "b.csv"], ["b.csv"])
        '2 files (1 of column names alone: b.csv)'
    """
    note = f"{len(files):,} files"
    if empty:
        shown = ", ".join(empty[:3]) + (", ..." if len(empty) > 3 else "")
        note += f" ({len(empty):,} of column names alone: {shown})"
    return note
