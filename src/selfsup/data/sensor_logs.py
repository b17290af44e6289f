"""Sensor logs as historians and SCADA systems export them, and maintenance logs of events.

An industrial team's years of readings rarely come as one table: a historian exports one CSV
per machine and month (``logs/pump-07/2025-03.csv``), rows in time, with gaps where it was
down. Their labels are a maintenance log: one row per event, a machine, a start, an end and
what happened. This module reads both for :mod:`selfsup.data.series`:

- :func:`read_log_folder`: every CSV/TSV/Parquet file under a folder as one long-form table,
  each row's series (unit) from ``--id-column``, a column naming machines (``asset``...),
  or else its file's path with its dates left out (``pump-07/2025-03.csv`` and
  ``2025/03/pump-07.csv`` are both ``pump-07``), its memory planned from the first file.
- :func:`find_time_column` and :func:`parse_times`: the time column (``timestamp``, ``time``,
  ``date``... or a datetime column) and its cells as datetimes, a bad cell named.
- :func:`time_grid`: rows placed on their regular time step, so a missing hour is an hour of
  absent steps (NaN) and a window of 1,440 minutes is a day, not 1,440 rows that span a gap.
- :func:`read_events` and :func:`event_steps`: an events table's labels on the steps each
  event covers; a window takes the label of the event it overlaps most, and windows that
  overlap no event the ``--outside-label`` (``normal`` by default).

Example:
    >>> times = pd.to_datetime(["2025-01-01 00:00", "2025-01-01 00:01", "2025-01-01 00:03"])
    >>> grid = time_grid(times.to_numpy())
    >>> grid.positions.tolist(), grid.length, str(grid.step)
    ([0, 1, 3], 4, '60000000000 nanoseconds')
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from selfsup.data.folders import DATE_IN_NAME, YEAR_NAME, first_file
from selfsup.data.table_files import (
    TABLE_SUFFIXES,
    files_note,
    is_time_column,
    read_table,
    read_table_folder,
)

#: Column names taken as a log's time column when ``--time-column`` is not given.
TIME_COLUMNS = ("timestamp", "time", "datetime", "date_time", "date", "time_stamp", "ts")
#: An events table's column naming the unit (machine) of each event, when the data's
#: ``--id-column`` is not one of its columns.
UNIT_COLUMNS = ("unit", "asset", "machine", "equipment", "device", "tag", "id", "series")
#: A log's column naming each row's machine, when ``--id-column`` is not given (names too
#: generic for a log's rows, ``id`` and ``tag``, are left out).
LOG_UNIT_COLUMNS = ("unit", "asset", "machine", "equipment", "device")
#: An events table's start and end columns (the first present of each).
START_COLUMNS = ("start", "start_time", "begin", "from", "started", "start_date")
END_COLUMNS = ("end", "end_time", "stop", "to", "finish", "ended", "end_date")
#: The label of windows that overlap no event, unless ``--outside-label`` says otherwise.
OUTSIDE_LABEL = "normal"
#: The unit column a folder's rows get from their file paths.
PATH_UNIT = "unit"
#: Copies of a folder's rows (as float32) that reading it as series holds at once: the files'
#: tables and their join, then the join, its machines' series and their windows (3.1
#: measured on a year of 20 pumps' minute logs, 1.1 GB of CSV: 0.6 GB of rows, 2.25 GB at
#: most with 0.39 GB of libraries), with a margin.
LOG_READ_COPIES = 3.5
#: A regular time grid may hold at most this many times the rows (else rows stay in order).
_MOST_GRID_PER_ROW = 4
#: A month or a day as a folder or file name inside a year's folder: 03, 31.
_TWO_DIGITS = re.compile(r"^\d\d?$")


def path_unit(rel_path: str) -> str:
    """The unit (machine) a log file holds, from its path relative to the data folder: its
    folders and its name without suffix, dates left out (a year, a month, a day; months and
    days as folders of a year's folder), joined by ``/``; ``""`` when only dates remain
    (one machine's log split by day).

    Example:
        >>> [path_unit(p) for p in ("pump-07/2025-03.csv", "2025/03/pump-07.csv",
        ...                         "pump_2025-03.csv", "site/17.csv", "2025-03-31.parquet")]
        ['pump-07', 'pump-07', 'pump', 'site/17', '']
    """
    parts = rel_path.split("/")
    parts[-1] = parts[-1].rsplit(".", 1)[0]
    kept, dated = [], False
    for part in parts:
        stripped = "" if YEAR_NAME.match(part) else DATE_IN_NAME.sub("", part).strip("-_. ")
        dated = dated or stripped != part
        if stripped and not (dated and _TWO_DIGITS.match(stripped)):
            kept.append(stripped)
    return "/".join(kept)


def is_log_folder(spec: str | os.PathLike) -> bool:
    """Whether ``spec`` is a folder whose first table file (CSV/TSV/Parquet, in sorted
    order) has a time column (:func:`find_time_column`) and readings: as many number columns
    as text ones, besides the time (sensor logs, read as series). A fraud team's monthly
    exports have a time too, but mostly text (cards, merchants, countries): a table. Only
    that file's first rows are read; ``--modality series`` reads any such folder as logs.

    Example:
        >>> is_log_folder("/nonexistent")
        False
    """
    first = first_file(spec, TABLE_SUFFIXES)
    if first is None:
        return False
    try:
        head = read_table(first, rows=5)
    except (OSError, ValueError):
        return False
    time = find_time_column(list(head.columns), head)
    if time is None:
        return False
    others = [c for c in head.columns if c != time]
    text = [c for c in others if not pd.api.types.is_numeric_dtype(head[c])]
    return len(others) - len(text) >= len(text)


def find_time_column(columns: Sequence[str], frame: pd.DataFrame | None = None) -> str | None:
    """The column a log's rows are ordered by when ``--time-column`` is not given: one of
    :data:`TIME_COLUMNS` (any case), else the first column of datetime type or of ISO 8601
    text (a German export's ``Zeitstempel``); None when none.

    Example:
        >>> find_time_column(["Timestamp", "temp"]), find_time_column(["a", "b"])
        ('Timestamp', None)
    """
    by_name = {str(c).lower(): c for c in columns}
    for name in TIME_COLUMNS:
        if name in by_name:
            return by_name[name]
    if frame is not None:
        for column in columns:
            if is_time_column(frame[column]):
                return column
    return None


def find_unit_column(frame: pd.DataFrame) -> str | None:
    """The column of a log naming each row's machine when ``--id-column`` is not given: one
    of :data:`LOG_UNIT_COLUMNS` (any case) whose values repeat (at most one per two rows),
    else None.

    Example:
        >>> find_unit_column(pd.DataFrame({"Asset": ["p1", "p1", "p2", "p2"], "v": range(4)}))
        'Asset'
        >>> find_unit_column(pd.DataFrame({"unit": ["a", "b"], "v": [1, 2]})) is None
        True
    """
    by_name = {str(c).lower(): c for c in frame.columns}
    for name in LOG_UNIT_COLUMNS:
        column = by_name.get(name)
        if column is not None and 2 * frame[column].nunique() <= len(frame):
            return column
    return None


def parse_times(column: pd.Series, where: str) -> pd.Series:
    """A time column's cells as numbers (steps, kept as they are) or as datetimes (text
    parsed; time zones converted to UTC), so rows sort in time.

    Raises:
        ValueError: a cell that is empty or not a time; the message names ``where`` and the
            row (counted from 1 after the header).

    Example:
        >>> parse_times(pd.Series(["2025-01-01 00:01", "2025-01-01"]), "x.csv").dt.minute.tolist()
        [1, 0]
    """
    numbers = pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
    if numbers or pd.api.types.is_datetime64_any_dtype(column):
        times = column
    else:
        text = column.astype("string").str.strip()
        zone = _has_zone(text)
        # The format of the first cell, fast; cells in another format one by one.
        times = pd.to_datetime(text, errors="coerce", utc=zone)
        other = times.isna() & text.notna()
        if other.any():
            times[other] = pd.to_datetime(text[other], errors="coerce", utc=zone, format="mixed")
    if isinstance(times.dtype, pd.DatetimeTZDtype):
        times = times.dt.tz_convert("UTC").dt.tz_localize(None)
    bad = times.isna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        cell = column.iloc[row]
        what = "is empty" if pd.isna(cell) else f"{str(cell)[:40]!r} is not a date or time"
        raise ValueError(f"{where}: row {row + 1}: the time {what} (column {column.name!r})")
    return times


def _has_zone(text: pd.Series) -> bool:
    """Whether a time column's first cell carries a time zone (``Z``, ``+02:00``)."""
    first = str(text.dropna().iloc[0]) if text.notna().any() else ""
    return bool(re.search(r"(Z|[+-]\d\d:?\d\d)$", first))


def readings_as_float32(frame: pd.DataFrame, keep: Sequence[Any]) -> pd.DataFrame:
    """``frame`` with its columns of numbers held as float32, the precision series are read
    at (half a year of logs' bytes), but for those in ``keep`` (the time, the unit and the
    label columns: a time in fractional seconds, or a machine numbered 7, must read as
    written); ``frame`` itself where no column changes.

    Example:
        >>> frame = pd.DataFrame({"t": [0.25, 0.5], "unit": [7, 7], "v": [1.5, 2.0]})
        >>> readings_as_float32(frame, ["t", "unit"]).dtypes.astype(str).tolist()
        ['float64', 'int64', 'float32']
    """
    held = {c for c in keep if c is not None}
    readings = [
        c
        for c in frame.columns
        if frame[c].dtype.kind in "fiu" and frame[c].dtype != np.float32 and c not in held
    ]
    return frame.astype(dict.fromkeys(readings, np.float32)) if readings else frame


def log_columns(frame: pd.DataFrame, options: dict[str, Any]) -> list[Any]:
    """The columns of a log table that are not readings: the time (``time_column``, else
    :func:`find_time_column`'s), the unit (``id_column``, else :func:`find_unit_column`'s),
    the labels and those dropped, as ``series_from_frame`` will take them.

    Example:
        >>> frame = pd.DataFrame({"time": ["2025-01-01"] * 2, "asset": [3, 3], "v": [1, 2]})
        >>> log_columns(frame, {"drop_columns": ["note"]})
        ['time', 'asset', None, 'note']
    """
    time = options.get("time_column") or find_time_column(list(frame.columns), frame)
    unit = options.get("id_column") or find_unit_column(frame)
    return [time, unit, options.get("label_column"), *options.get("drop_columns", ())]


def read_log_folder(
    root: str | os.PathLike,
    *,
    id_column: str | None = None,
    time_column: str | None = None,
    keep: Sequence[str | None] = (),
) -> tuple[pd.DataFrame, str, str | None, str]:
    """Every CSV/TSV/Parquet file under ``root`` (sorted; hidden ones left out) as one table.

    Each file must have the columns of the first (in any order). Without ``id_column``, a
    column naming machines (:func:`find_unit_column`) is the unit column, else rows get a
    ``unit`` column from their file's :func:`path_unit` (the folder's name where only dates
    remain). The time column (``time_column``, else :func:`find_time_column`) is parsed
    file by file, so a bad cell is named with its file and row. CSV files are read by
    Arrow's reader where it can (ISO times typed as it reads), and each file's columns of
    numbers are held as float32, the precision series are read at, but for the time and
    unit columns and those in ``keep`` (a label column of numbers reads as it is written).

    Returns:
        The table, its unit column, its time column (None when it has none) and a note
        saying how many files and units it read.

    Raises:
        EmptySourceError, ValueError: as :func:`~selfsup.data.table_files.read_table_folder`
            does, and a time that is none (:func:`parse_times`).

    Example:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> for day in ("2025-01-01", "2025-01-02"):
        ...     (root / "pump-1").mkdir(exist_ok=True)
        ...     _ = (root / "pump-1" / f"{day}.csv").write_text(f"time,v\\n{day} 00:00,1\\n")
        >>> frame, unit, time, note = read_log_folder(root)
        >>> frame[unit].tolist(), time, note
        (['pump-1', 'pump-1'], 'time', 'one unit from the file paths, 2 files')
    """
    root = Path(root)
    found: dict[str, str | None] = {}

    def prepare(frame: pd.DataFrame, rel: str) -> pd.DataFrame:
        if "time" not in found:  # the first file: its time and unit columns
            found["time"] = time_column or find_time_column(list(frame.columns), frame)
            found["column"] = id_column or find_unit_column(frame)
            free = "_" + PATH_UNIT if PATH_UNIT in frame.columns else PATH_UNIT
            found["unit"] = found["column"] or free
        if found["time"] is not None and found["time"] in frame.columns:
            frame = frame.assign(
                **{found["time"]: parse_times(frame[found["time"]], str(root / rel))}
            )
        if found["column"] is None:  # each file's machine from its path
            frame = frame.assign(**{found["unit"]: path_unit(rel) or root.resolve().name})
        return readings_as_float32(frame, [*keep, found["column"], found["time"]])

    table, files, empty = read_table_folder(root, prepare, typed_times=True, copies=LOG_READ_COPIES)
    unit = str(found["unit"])
    note = files_note(files, empty)
    if id_column is None:
        count = table[unit].nunique()
        units = "one unit" if count == 1 else f"{count:,} units"
        if found["column"] is None:
            table[unit] = table[unit].astype("category")
            note = f"{units} from the file paths, {note}"
        else:
            note = f"{units} from column {unit!r}, {note}"
    return table, unit, found["time"], note


@dataclass
class TimeGrid:
    """Where a series' rows fall on its regular time step.

    Attributes:
        positions: each row's step (rows sorted in time); equal ones: the later row wins.
        length: the steps from the first row's time to the last's.
        start: the first row's time.
        step: the time step (the most common difference between rows).
    """

    positions: np.ndarray
    length: int
    start: np.datetime64
    step: np.timedelta64

    def time(self, position: int) -> str:
        """The time of step ``position``, as ISO text (``2025-03-01T00:00:00``)."""
        return pd.Timestamp(self.start + position * self.step).isoformat()

    def times(self) -> np.ndarray:
        """Every step's time (datetime64[ns])."""
        return self.start + np.arange(self.length) * self.step


def steps_of(
    span: int | str | None, grids: Sequence[TimeGrid | None], name: str, what: str = "--window"
) -> int | None:
    """A window (or stride) as steps: steps as they are; a duration (``1d``, ``6h``,
    ``30min``) divided by the series' common time step (:func:`time_grid`).

    Raises:
        ValueError: a duration where some series have no datetimes, series of different
            steps, or a duration that is not a whole number of steps (the window: at least 2).

    Example:
        >>> t = pd.date_range("2025-01-01", periods=3, freq="min").to_numpy()
        >>> steps_of("1d", [time_grid(t)], "logs"), steps_of(60, [], "logs")
        (1440, 60)
    """
    if span is None or isinstance(span, int):
        return span
    steps = {g.step for g in grids if g is not None}
    if not grids or any(g is None for g in grids):
        raise ValueError(
            f"{name}: {what} {span} is a duration, but the series have no datetimes (a time "
            "column of dates and times); give it in steps"
        )
    if len(steps) > 1:
        said = ", ".join(sorted(_span(s) for s in steps))
        raise ValueError(f"{name}: {what} {span}: the series have time steps of {said}; give steps")
    step = steps.pop()
    count = pd.Timedelta(span) / pd.Timedelta(step)
    least = 2 if what == "--window" else 1
    if count != int(count) or count < least:
        raise ValueError(
            f"{name}: {what} {span} is not a whole number of steps of {_span(step)}"
            + (f" (at least {least})" if count < least else "")
        )
    return int(count)


class LogGaps:
    """Rows placed on their time grids, and what that found, for one note: steps no row
    fills (a logger or historian outage), rows that share a time with another (the later
    kept: overlapping exports, or several machines' files read as one unit).

    Example:
        >>> t = pd.to_datetime(["2025-01-01 00:00", "2025-01-01 00:01", "2025-01-01 00:03"])
        >>> gaps = LogGaps()
        >>> cells, _ = gaps.place("p1", time_grid(t.to_numpy()), np.ones((1, 3)), None)
        >>> cells.tolist(), gaps.note()
        ([[1.0, 1.0, nan, 1.0]], 'p1: 1 step without a row (an outage) kept as absent, at 1 min')
    """

    def __init__(self) -> None:
        self.absent: dict[str, int] = {}
        self.shared: dict[str, int] = {}
        self.steps: set[np.timedelta64] = set()

    def place(
        self, unit: str, grid: TimeGrid, cells: np.ndarray, labels: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """``cells`` (channels, rows) and per-row ``labels`` on ``grid``'s steps, NaN (None)
        where no row falls."""
        self.steps.add(grid.step)
        filled = np.unique(grid.positions).size
        if filled < len(grid.positions):
            self.shared[unit] = len(grid.positions) - filled
        if grid.length > filled:
            self.absent[unit] = grid.length - filled
        if grid.length == len(grid.positions):
            return cells, labels
        placed = np.full((cells.shape[0], grid.length), np.nan, dtype=cells.dtype)
        placed[:, grid.positions] = cells  # equal positions: the later row is kept
        if labels is not None:
            spread = np.full(grid.length, None, dtype=object)
            spread[grid.positions] = labels
            labels = spread
        return placed, labels

    def note(self) -> str | None:
        """One line on the gaps and shared times found, None when there were none."""
        parts = []
        step = ", ".join(sorted(_span(s) for s in self.steps))
        if self.absent:
            total = sum(self.absent.values())
            where = _worst(self.absent)
            parts.append(
                f"{where}{total:,} step{'s' if total > 1 else ''} without a row (an outage) "
                f"kept as absent, at {step}"
            )
        if self.shared:
            total = sum(self.shared.values())
            parts.append(
                f"{_worst(self.shared)}{total:,} row{'s' if total > 1 else ''} at a time another "
                "row of the same series has (the later kept; a clock set back for daylight "
                "saving time repeats an hour: give the times with their zone, +02:00 or Z; if "
                "files of several machines became one series, give --id-column)"
            )
        return "; ".join(parts) or None


def _worst(counts: dict[str, int]) -> str:
    """``p1: `` for one series, ``12 series (most: p3, 40): `` for several."""
    if len(counts) == 1:
        return f"{next(iter(counts))}: "
    unit = max(counts, key=counts.get)
    return f"{len(counts)} series (most: {unit}, {counts[unit]:,}): "


def _span(step: np.timedelta64) -> str:
    """A time step in words: ``1 min``, ``10 s``, ``1 h``, ``250 ms``.

    Example:
        >>> _span(np.timedelta64(60, "s")), _span(np.timedelta64(3, "h"))
        ('1 min', '3 h')
    """
    ns = int(step.astype("timedelta64[ns]").astype(np.int64))
    for unit, size in (("d", 86_400e9), ("h", 3_600e9), ("min", 60e9), ("s", 1e9), ("ms", 1e6)):
        if ns >= size and ns % size == 0:
            return f"{ns // int(size):,} {unit}"
    return f"{ns:,} ns"


def time_grid(times: np.ndarray) -> TimeGrid | None:
    """The regular grid of sorted datetimes ``times``: the step is the most common
    difference between rows; None when there is no step (a single time) or the grid would
    be more than a few times the rows (irregular times: rows then stay steps in order).

    Example:
        >>> t = np.array(["2025-01-01T00:00", "2025-01-01T00:10", "2025-01-01T00:40"],
        ...              dtype="datetime64[ns]")
        >>> time_grid(t).positions.tolist()
        [0, 1, 4]
    """
    if len(times) < 2:
        return None
    ns = times.astype("datetime64[ns]").astype(np.int64)
    diffs = np.diff(ns)
    positive = diffs[diffs > 0]
    if positive.size == 0:
        return None
    values, counts = np.unique(positive, return_counts=True)
    step = int(values[np.argmax(counts)])
    positions = np.rint((ns - ns[0]) / step).astype(np.int64)
    length = int(positions[-1]) + 1
    if length > _MOST_GRID_PER_ROW * len(times) + 1_000:
        return None
    return TimeGrid(
        positions, length, times[0].astype("datetime64[ns]"), np.timedelta64(step, "ns")
    )


@dataclass
class Events:
    """An events table: per unit, the events' start and end times (ns) and labels.

    Attributes:
        by_unit: unit name (``""``: every unit) -> (starts, ends, labels).
        path: the table's file, for messages.
        count: how many events it holds.
        column: its label column.
        dated: whether its times are dates (else numbers: steps of a numeric time column).
        lead_note: which events have a lead before them (``--event-lead``), in words.
    """

    by_unit: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]
    path: str
    count: int
    column: str
    dated: bool = True
    lead_note: str | None = None

    def unknown_units(self, units: Sequence[str]) -> list[str]:
        """The table's units that are not among ``units`` (their events label nothing)."""
        return sorted(set(self.by_unit) - set(units) - {""})


def read_events(
    path: str | os.PathLike,
    *,
    label_column: str | None = None,
    unit_column: str | None = None,
    lead: str | None = None,
) -> Events:
    """An events table (CSV, TSV or Parquet): one row per event with a start, an end (empty:
    an instant), a label and, when the data has several units, the unit.

    ``lead`` (``--event-lead``) labels the time before events too, as predictive maintenance
    needs: ``3d`` gives every event a lead of three days before its start, labelled
    ``before LABEL``; ``bearing failure=3d,seal leak=36h`` gives those events alone theirs
    (planned maintenance has no warning signs to learn). Where a lead overlaps an event, the
    event keeps its label. Logs timed by numbers take leads in steps (``120``).

    Columns: the start and end are the first of :data:`START_COLUMNS` and
    :data:`END_COLUMNS` present (any case); the unit is ``unit_column`` (the data's
    ``--id-column``) when the table has it, else one of :data:`UNIT_COLUMNS`; the label is
    ``label_column``, else ``label``, else the one column left.

    Raises:
        ValueError: no such file, a missing column, a time that is not one, an end before
            its start (the message names the table and the row); a lead that is not a
            duration, or that names a label no event has.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "events.csv"
        >>> _ = path.write_text("asset,start,end,event\\np1,2025-01-02,2025-01-03,leak\\n")
        >>> events = read_events(path)
        >>> events.count, events.column, list(events.by_unit), events.by_unit["p1"][2].tolist()
        (1, 'event', ['p1'], ['leak'])
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such events file")
    if path.suffix.lower() not in TABLE_SUFFIXES:
        raise ValueError(f"{path}: an events table is a {', '.join(TABLE_SUFFIXES)} file")
    table = read_table(path)
    lower = {str(c).lower(): c for c in table.columns}

    def pick(names: Sequence[str], what: str) -> str:
        for name in names:
            if name in lower:
                return lower[name]
        raise ValueError(
            f"{path}: no {what} column ({', '.join(names)}); columns are "
            f"{', '.join(map(str, table.columns))}"
        )

    start, end = pick(START_COLUMNS, "start"), pick(END_COLUMNS, "end")
    unit = unit_column if unit_column in table.columns else None
    unit = unit or next((lower[n] for n in UNIT_COLUMNS if n in lower), None)
    used = {start, end, unit} - {None}
    if label_column is None:
        rest = [c for c in table.columns if c not in used]
        label_column = "label" if "label" in table.columns or len(rest) != 1 else rest[0]
    if label_column not in table.columns:
        raise ValueError(
            f"{path}: no label column {label_column!r} (give --label-column); columns are "
            f"{', '.join(map(str, table.columns))}"
        )
    starts = parse_times(table[start], str(path))
    no_end = table[end].isna() | (table[end].astype("string").str.strip() == "")
    ends = parse_times(table[end].where(~no_end, table[start]), str(path))
    if pd.api.types.is_datetime64_any_dtype(starts) != pd.api.types.is_datetime64_any_dtype(ends):
        raise ValueError(f"{path}: {start!r} and {end!r} hold times of different kinds")
    before = np.flatnonzero((ends < starts).to_numpy())
    if before.size:
        raise ValueError(f"{path}: row {before[0] + 1}: the event ends before it starts")
    labels = table[label_column]
    if labels.isna().any():
        row = int(np.flatnonzero(labels.isna().to_numpy())[0])
        raise ValueError(f"{path}: row {row + 1}: the event has no label in {label_column!r}")
    units = table[unit].astype(str) if unit is not None else pd.Series([""] * len(table))
    by_unit = {}
    start_ns, end_ns = _as_ns(starts), _as_ns(ends)
    for name in pd.unique(units):
        rows = (units == name).to_numpy()
        by_unit[str(name)] = (
            start_ns[rows],
            end_ns[rows],
            labels[rows].astype(str).to_numpy(dtype=object),
        )
    dated = pd.api.types.is_datetime64_any_dtype(starts)
    events = Events(by_unit, str(path), len(table), str(label_column), dated)
    if lead:
        add_leads(events, lead)
    return events


def add_leads(events: Events, lead: str) -> None:
    """Put a ``before LABEL`` event ahead of each event ``lead`` names (see
    :func:`read_events`), first in its unit's rows, so that the events themselves (later
    rows) win where they overlap.

    Raises:
        ValueError: a lead that is not a duration (steps for logs timed by numbers), or a
            label no event has.

    Example:
        >>> ev = Events({"p1": (np.array([10.0]), np.array([12.0]), np.array(["leak"], object))},
        ...             "log.csv", 1, "event", dated=False)
        >>> add_leads(ev, "leak=4")
        >>> ev.by_unit["p1"][0].tolist(), ev.by_unit["p1"][2].tolist(), ev.lead_note
        ([6.0, 10.0], ['before leak', 'leak'], "4 steps before 'leak': 'before leak'")
    """
    spans = _parse_leads(lead, events.path, events.dated)
    labels = set().union(*(set(found[2]) for found in events.by_unit.values()))
    unknown = sorted(set(spans) - labels - {None})
    if unknown:
        raise ValueError(
            f"{events.path}: --event-lead names {unknown[0]!r}, which no event is labelled; "
            f"the labels are {', '.join(repr(x) for x in sorted(labels))}"
        )
    every = spans.get(None, ("", 0.0))[1]
    for unit, (starts, ends, names) in events.by_unit.items():
        span = np.array([spans.get(name, ("", every))[1] for name in names], dtype=np.float64)
        chosen = span > 0
        lead_starts = (starts[chosen] - span[chosen]).astype(starts.dtype)
        lead_names = np.array([f"before {name}" for name in names[chosen]], dtype=object)
        events.by_unit[unit] = (
            np.concatenate([lead_starts, starts]),
            np.concatenate([starts[chosen], ends]),
            np.concatenate([lead_names, names]),
        )
    steps = "" if events.dated else " steps"
    said = ", ".join(
        f"{text}{steps} before " + ("each event" if name is None else repr(name))
        for name, (text, _) in spans.items()
    )
    only = next(iter(spans)) if len(spans) == 1 else None
    events.lead_note = f"{said}: 'before {only if only is not None else 'LABEL'}'"


def _parse_leads(lead: str, path: str, dated: bool) -> dict[str | None, tuple[str, float]]:
    """``3d`` -> {None: ("3d", 3 days)}; ``bearing failure=3d,seal leak=36h`` -> each
    label's text and span (nanoseconds for dated events, steps otherwise)."""

    def span(text: str) -> tuple[str, float]:
        text = text.strip()
        try:
            if dated and text.replace(".", "", 1).isdigit():  # Timedelta reads "3" as 3 ns
                raise ValueError(text)
            value = float(pd.Timedelta(text).value) if dated else float(text)
        except ValueError:
            kind = "a duration (3d, 36h, 90min)" if dated else "a number of steps"
            raise ValueError(f"{path}: --event-lead {text!r} is not {kind}") from None
        if value <= 0:
            raise ValueError(f"{path}: --event-lead {text!r} must be above 0")
        return text, value

    if "=" not in lead:
        return {None: span(lead)}
    spans: dict[str | None, tuple[str, float]] = {}
    for part in lead.split(","):
        name, sep, value = part.rpartition("=")
        if not sep or not name.strip():
            raise ValueError(
                f"{path}: --event-lead {part.strip()!r}: give LABEL=DURATION, or one "
                "DURATION for every event"
            )
        spans[name.strip()] = span(value)
    return spans


def _as_ns(times: pd.Series) -> np.ndarray:
    """Datetimes as int64 nanoseconds; numbers (steps) as they are, as float64."""
    if pd.api.types.is_datetime64_any_dtype(times):
        return times.to_numpy(dtype="datetime64[ns]").astype(np.int64)
    return times.to_numpy(dtype=np.float64)


def event_steps(events: Events, unit: str, times: np.ndarray, *, several_units: bool) -> np.ndarray:
    """The label of each step of ``unit`` whose times (sorted) are ``times``: that of the
    event covering it (start included, end excluded; an instant labels the step it falls
    in; a later row of the table wins where events overlap), None outside every event.

    Raises:
        ValueError: the table names no unit while the data holds several.

    Example:
        >>> ev = Events({"": (np.array([2]), np.array([4]), np.array(["on"], dtype=object))},
        ...             "e.csv", 1, "label", dated=False)  # steps of a numeric time
        >>> event_steps(ev, "a", np.arange(6), several_units=False).tolist()
        [None, None, 'on', 'on', None, None]
    """
    if "" in events.by_unit and several_units:
        raise ValueError(
            f"{events.path}: names no unit (a column {', '.join(UNIT_COLUMNS[:4])}... or "
            "the data's --id-column) while the data holds several"
        )
    dated = np.issubdtype(times.dtype, np.datetime64)
    if dated != events.dated:
        kinds = ("dates", "numbers") if dated else ("numbers", "dates")
        raise ValueError(
            f"{events.path}: its times are {kinds[1]}, the log's are {kinds[0]}: give both alike"
        )
    out = np.full(len(times), None, dtype=object)
    found = events.by_unit.get(unit) or events.by_unit.get("")
    if found is None:
        return out
    if np.issubdtype(times.dtype, np.datetime64):
        times = times.astype("datetime64[ns]").astype(np.int64)
    for start, end, label in zip(*found, strict=True):
        lo = int(np.searchsorted(times, start, "right")) - 1 if end == start else None
        if lo is not None:  # an instant: the step it falls in
            if 0 <= lo < len(times):
                out[lo] = label
            continue
        lo, hi = np.searchsorted(times, [start, end], "left")
        out[lo:hi] = label
    return out
