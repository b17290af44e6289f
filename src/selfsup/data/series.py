"""Time series and sensor logs: arrays, UCR/UEA ``.ts`` files, CSV/Parquet tables, ``ucr:NAME``.

Every series source holds its items as one float32 array ``(n, channels, length)``. Series of
different lengths are padded at the end with NaN to the longest one, and missing values inside
a series are NaN too: the series backbones treat NaN time steps as absent (TS2Vec's own
convention), so nothing is interpolated or dropped behind the user's back.

Example:
    >>> src = SeriesSource([np.ones((2, 5)), np.zeros((2, 3))], labels=["a", "b"])
    >>> src.describe(), tuple(src.read(1).shape), src.lengths.tolist()
    ('series: 2 series items, 2 classes', (2, 5), [5, 3])
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from selfsup.core.memory import give_back_freed
from selfsup.core.text_files import text_lines
from selfsup.data.arrays import present_labels, read_array_file
from selfsup.data.base import EmptySourceError, InMemorySource
from selfsup.data.sensor_logs import (
    LOG_READ_COPIES,
    OUTSIDE_LABEL,
    Events,
    LogGaps,
    TimeGrid,
    event_steps,
    find_time_column,
    find_unit_column,
    log_columns,
    parse_times,
    read_events,
    read_log_folder,
    readings_as_float32,
    steps_of,
    time_grid,
)
from selfsup.data.splits import item_labels
from selfsup.data.table_files import (
    LARGEST,
    TABLE_SUFFIXES,
    label_like_warning,
    numeric_cells,
    plan_table_memory,
    read_table,
    unsure_dates,
)

#: Environment variable naming extra folders (``:``-separated) that hold UCR/UEA sets laid
#: out as the archive is (``NAME/NAME_TRAIN.ts``, ``NAME/NAME_TEST.ts``).
UCR_DIR_ENV = "SELFSUP_UCR_DIR"
#: The series column of a one-machine log read without ``--id-column``.
ONE_UNIT = "_unit"
#: Series checked at a time for infinite and absent values (their flags held at once).
_CHECKED_ROWS = 1024
#: Bytes of series cut into windows between two hand-backs of freed memory (each walks the
#: C heap: after every series of ten thousand machines' would take long).
_TRIM_BYTES = 64 << 20


def pad_series(items: Sequence[np.ndarray], name: str = "series") -> np.ndarray:
    """Stack series of shape ``(channels, length_i)`` (or ``(length_i,)``) into one float32
    array ``(n, channels, max length)``, padding the end of shorter ones with NaN.

    Raises:
        EmptySourceError: no series, or only empty ones.
        ValueError: series with different numbers of channels (the message names the first).

    Example:
        >>> pad_series([np.array([1.0, 2.0]), np.array([3.0])]).tolist()
        [[[1.0, 2.0]], [[3.0, nan]]]
    """
    if len(items) == 0:
        raise EmptySourceError(f"{name}: holds no series")
    arrays = [np.asarray(item, dtype=np.float32) for item in items]
    arrays = [a[None] if a.ndim == 1 else a for a in arrays]
    channels = arrays[0].shape[0]
    for i, a in enumerate(arrays):
        if a.ndim != 2:
            raise ValueError(f"{name}: series {i} has shape {a.shape}; expected (channels, length)")
        if a.shape[0] != channels:
            raise ValueError(
                f"{name}: series {i} has {a.shape[0]} channels, series 0 has {channels}"
            )
    length = max(a.shape[1] for a in arrays)
    if length == 0:
        raise EmptySourceError(f"{name}: every series is empty")
    out = np.full((len(arrays), channels, length), np.nan, dtype=np.float32)
    for i, a in enumerate(arrays):
        out[i, :, : a.shape[1]] = a
    return out


class SeriesSource(InMemorySource):
    """Series held in memory as ``(n, channels, length)`` float32, NaN where absent.

    Args:
        series: an array ``(n, channels, length)`` or ``(n, length)``, or a list of series
            ``(channels, length_i)`` of any lengths (padded with NaN).
        labels: optional labels per series, ints or strings (see ``encode_labels``); None or
            NaN for a series without one (see :class:`selfsup.data.base.PartialLabels`).
        name: a short name for messages and reports.
        classes: optional class names indexed by label code.
        ids: optional id per series (the row number as text by default).
        label_column: where the labels came from, for messages.

    Raises:
        ValueError: a bad shape, infinite values, or labels of the wrong length.
        EmptySourceError: no series, or a series with no value at all (the message names it).

    Example:
        >>> src = SeriesSource(np.zeros((3, 10)))
        >>> src.channels, src.length, tuple(src.read_batch([0, 2]).items.shape)
        (1, 10, (2, 1, 10))
    """

    modality = "series"

    def __init__(
        self,
        series: np.ndarray | Sequence[np.ndarray],
        labels: Sequence | np.ndarray | None = None,
        *,
        name: str = "series",
        classes: Sequence[str] | None = None,
        ids: Sequence[str] | None = None,
        label_column: str = "label",
    ) -> None:
        if isinstance(series, np.ndarray) and series.dtype != object:
            values = series_array(series, name)
        else:
            values = pad_series(list(series), name)
        present = np.empty((len(values), values.shape[2]), dtype=bool)  # any channel observed
        for low in range(0, len(values), _CHECKED_ROWS):  # a copy's worth of flags at most
            part = values[low : low + _CHECKED_ROWS]
            infinite = np.isinf(part).any(axis=(1, 2))
            if infinite.any():
                row = low + int(np.flatnonzero(infinite)[0])
                raise ValueError(f"{name}: series {row} holds an infinite value")
            present[low : low + _CHECKED_ROWS] = ~np.isnan(part).all(axis=1)
        empty = np.flatnonzero(~present.any(axis=1))
        if empty.size:
            raise EmptySourceError(f"{name}: series {int(empty[0])} has no value at all")
        self.values = values
        self.lengths = values.shape[2] - np.argmax(present[:, ::-1], axis=1)
        self.name = name
        if ids is not None and len(ids) != len(values):
            raise ValueError(f"{name}: {len(ids)} ids for {len(values)} series")
        self._ids = list(ids) if ids is not None else None
        if labels is None:
            if classes is not None:
                raise ValueError("classes were given without labels")
        else:
            if len(labels) != len(values):
                raise ValueError(f"{name}: {len(labels)} labels for {len(values)} series")
            self.labels, self.classes, self.partial_labels = present_labels(
                labels, label_column, classes, as_text=False
            )
            if self.partial_labels is not None:  # labels of some series (windows) only
                self.warning = self.partial_labels.note(len(values), "items")

    @property
    def channels(self) -> int:
        """Channels (variables) per time step."""
        return int(self.values.shape[1])

    @property
    def length(self) -> int:
        """The longest series' length (the padded length)."""
        return int(self.values.shape[2])

    @property
    def item_shape(self) -> tuple[int, int]:
        """The shape (channels, length) of every (padded) item."""
        return (self.channels, self.length)


def series_array(array: np.ndarray, name: str = "array") -> np.ndarray:
    """An array of series as float32 ``(n, channels, length)``: ``(n, length)`` gains a
    channel axis, ``(n, channels, length)`` is kept.

    Example:
        >>> series_array(np.zeros((4, 7))).shape
        (4, 1, 7)
    """
    array = np.asarray(array)
    if array.dtype.kind not in "biuf":
        raise ValueError(f"{name}: series must be numeric, got dtype {array.dtype}")
    if array.ndim == 2:
        array = array[:, None, :]
    if array.ndim != 3:
        raise ValueError(
            f"{name}: series arrays must be (n, length) or (n, channels, length), "
            f"got shape {array.shape}"
        )
    if array.size == 0:
        raise EmptySourceError(f"{name}: the array holds no series (shape {array.shape})")
    return array.astype(np.float32, copy=False)


# --- UCR/UEA .ts files -----------------------------------------------------------------------


def read_ts_file(path: str | os.PathLike) -> tuple[list[np.ndarray], list[str] | None, dict]:
    """Parse a UCR/UEA ``.ts`` file (the sktime/aeon text format).

    Returns the series (each ``(channels, length_i)``, ``?`` read as NaN), the class labels
    when the header says ``@classLabel true`` (else None), and the header fields (with the
    numeric targets of a regression set, ``@targetLabel true``, under ``"targets"``).

    Raises:
        ValueError: a malformed file; the message names the file and the line.

    Example:
        >>> import tempfile
        >>> text = "@problemName t\\n@classLabel true a b\\n@data\\n1,2,3:4,5,6:a\\n7,?:8,9:b\\n"
        >>> path = Path(tempfile.mkdtemp()) / "t.ts"
        >>> _ = path.write_text(text)
        >>> series, labels, header = read_ts_file(path)
        >>> [s.shape for s in series], labels, header["problemname"]
        ([(2, 3), (2, 2)], ['a', 'b'], 't')
    """
    path = Path(path)
    header: dict[str, str] = {}
    series: list[np.ndarray] = []
    labels: list[str] = []
    in_data = False
    has_labels = has_target = False
    declared: list[str] = []
    targets: list[float] = []
    for number, raw in text_lines(path):
        line = raw.strip()
        if not line or line.startswith(("#", "%")):  # comments (both styles occur)
            continue
        if not in_data:
            if not line.startswith("@"):
                raise ValueError(f"{path}:{number}: expected a @header line, got {line[:40]!r}")
            key, _, value = line[1:].partition(" ")
            key = key.lower()
            if key == "data":
                in_data = True
                class_label = header.get("classlabel", "false").split()
                has_labels = class_label[0].lower() == "true"
                declared = class_label[1:]
                # Regression sets end each row with a numeric target: kept aside.
                has_target = header.get("targetlabel", "false").split()[0].lower() == "true"
                if header.get("timestamps", "false").lower() == "true":
                    raise ValueError(
                        f"{path}:{number}: .ts files with @timeStamps true are not supported"
                    )
            else:
                header[key] = value.strip()
            continue
        fields = line.split(":")
        if has_target:
            targets.append(float(fields[-1]) if fields[-1].strip() not in ("?", "") else np.nan)
            fields = fields[:-1]
        if has_labels:
            if len(fields) < 2:
                raise ValueError(f"{path}:{number}: a labelled row needs 'values:label'")
            label = fields[-1].strip()
            if declared and label not in declared:
                raise ValueError(
                    f"{path}:{number}: label {label!r} is not among those @classLabel declares "
                    f"({' '.join(declared)})"
                )
            labels.append(label)
            fields = fields[:-1]
        try:
            channels = [
                [np.nan if v.strip() in ("?", "", "NaN", "nan") else float(v) for v in f.split(",")]
                for f in fields
            ]
        except ValueError as err:
            raise ValueError(f"{path}:{number}: {err}") from None
        huge = [v for c in channels for v in c if abs(v) > LARGEST]
        if huge:
            what = "infinite" if np.isinf(huge[0]) else "beyond float32's range"
            raise ValueError(
                f"{path}:{number}: a value is {what} ({huge[0]}); write ? for a missing value"
            )
        width = max(len(c) for c in channels)
        row = np.full((len(channels), width), np.nan, dtype=np.float32)
        for c, values in enumerate(channels):
            row[c, : len(values)] = values
        if series and row.shape[0] != series[0].shape[0]:
            raise ValueError(
                f"{path}:{number}: {row.shape[0]} channels, earlier rows have {series[0].shape[0]}"
            )
        series.append(row)
    if not in_data:
        raise ValueError(f"{path}: no @data section; is this a .ts file?")
    if not series:
        raise EmptySourceError(f"{path}: the @data section holds no series")
    if has_target:
        header["targets"] = targets  # type: ignore[assignment]
    return series, (labels if has_labels else None), header


def load_ts(path: str | os.PathLike, name: str | None = None) -> SeriesSource:
    """A labelled (or unlabeled) :class:`SeriesSource` from a ``.ts`` file.

    Class names come from the ``@classLabel`` header, in its order.
    """
    series, labels, header = read_ts_file(path)
    classes = None
    declared = header.get("classlabel", "").split()[1:]
    if labels is not None and declared and set(labels) <= set(declared):
        classes = declared
    return SeriesSource(series, labels, name=name or str(path), classes=classes)


def ucr_dirs() -> list[Path]:
    """Folders searched for ``ucr:NAME``: ``$SELFSUP_UCR_DIR``, then the sets bundled in the
    aeon and sktime wheels (found without importing them)."""
    dirs = [Path(p) for p in os.environ.get(UCR_DIR_ENV, "").split(":") if p]
    for package, sub in (("aeon", "datasets/data"), ("sktime", "datasets/data")):
        spec = importlib.util.find_spec(package)
        if spec is not None and spec.submodule_search_locations:
            dirs.append(Path(next(iter(spec.submodule_search_locations))) / sub)
    return [d for d in dirs if d.is_dir()]


def ucr_names() -> list[str]:
    """Names of the UCR/UEA sets found in :func:`ucr_dirs` (those with a train and test file)."""
    names = set()
    for folder in ucr_dirs():
        for train in folder.glob("*/*_TRAIN.ts"):
            name = train.name[: -len("_TRAIN.ts")]
            if (train.parent / f"{name}_TEST.ts").exists():
                names.add(name)
    return sorted(names)


def open_ucr(spec: str) -> SeriesSource:
    """Open ``ucr:NAME`` (the train split) or ``ucr:NAME:test`` as a labelled source.

    Raises:
        FileNotFoundError: the set is not on this machine; the message says where it looked
            and how to get it.
    """
    _, _, rest = spec.partition(":")
    name, _, split = rest.partition(":")
    split = (split or "train").lower()
    if split not in ("train", "test"):
        raise ValueError(f"{spec}: unknown split {split!r}; use train or test")
    file = f"{name}_{split.upper()}.ts"
    for folder in ucr_dirs():
        # The archive's layout (NAME/NAME_TRAIN.ts); variants such as aeon's JapaneseVowels_eq
        # sit in their parent set's folder.
        for path in (folder / name / file, *sorted(folder.glob(f"*/{file}"))):
            if path.exists():
                return load_ts(path, name=f"ucr:{name}" + (":test" if split == "test" else ""))
    looked = ", ".join(str(d) for d in ucr_dirs()) or "nowhere (aeon is not installed)"
    raise FileNotFoundError(
        f"{spec}: no {name}_{split.upper()}.ts found (looked in {looked}). "
        f"Sets bundled offline: {', '.join(ucr_names()) or 'none'}. Install aeon "
        f"(pip install aeon) for its bundled sets, or download the archive from "
        f"timeseriesclassification.com and point ${UCR_DIR_ENV} at it."
    )


# --- CSV / Parquet tables --------------------------------------------------------------------


def series_from_frame(
    frame: pd.DataFrame,
    *,
    name: str = "table",
    id_column: str | None = None,
    time_column: str | None = None,
    value_columns: Sequence[str] | None = None,
    label_column: str | None = None,
    drop_columns: Sequence[str] = (),
    require_label: bool = True,
    window: int | str | None = None,
    window_stride: int | str | None = None,
    events: Events | None = None,
    outside_label: str | None = OUTSIDE_LABEL,
) -> SeriesSource:
    """Series from a table, in wide or long form.

    Wide form (no ``id_column``): one row per series, its values in the numeric columns in
    their order (``value_columns`` to choose them); empty cells are NaN, so shorter series end
    in empty cells. Long form (``id_column`` given): one row per time step of a series, rows of
    a series sorted by ``time_column`` when given, one channel per value column. A
    ``label_column`` gives each series its class (in long form it must be the same on every
    row of a series; empty label cells are unlabelled rows, see
    :class:`selfsup.data.base.PartialLabels`). ``drop_columns`` are left out (a per-step
    state, a note). Every other
    column must hold numbers; the first cell that does not is named in the error. With
    ``require_label`` False (a run's later data), an absent label or dropped column is no
    error: the series are unlabelled. With ``window``, each series is cut into windows (see
    :func:`cut_windows`); in long form a window's label is its rows' most common one, so a
    label may change along a series (a machine's state).

    Time: without ``time_column``, a column named as :data:`~selfsup.data.sensor_logs.TIME_COLUMNS`
    lists (``timestamp``, ``time``, ``date``...) or of datetime type is the time column, and a
    table with one but without ``id_column`` is one machine's log (one series), not one series
    per row. Text times are parsed; datetimes put rows on their regular step
    (:func:`~selfsup.data.sensor_logs.time_grid`), so rows missing from a log are absent
    steps (NaN) and windows name their start time (``pump-07@2025-03-01T00:00:00``);
    ``window`` and ``window_stride`` may then be durations (``1d``, ``6h``: see
    :func:`~selfsup.data.sensor_logs.steps_of`).

    ``events`` (from a ``--labels`` events table, :func:`~selfsup.data.sensor_logs.read_events`)
    label windows instead of a label column: a window takes the label of the event covering
    most of its steps, and windows that no event touches ``outside_label`` (None: they are
    unlabelled items).

    Example:
        >>> long = pd.DataFrame({"id": [1, 1, 2], "t": [1, 0, 0], "v": [5.0, 4.0, 9.0]})
        >>> src = series_from_frame(long, id_column="id", time_column="t")
        >>> src.values[:, 0].tolist(), list(src.ids)
        ([[4.0, 5.0], [9.0, nan]], ['1', '2'])
    """
    if not require_label:  # a run's later data: its labels and dropped columns may be gone
        if label_column not in frame.columns:
            label_column = None
        drop_columns = [c for c in drop_columns if c in frame.columns]
    for column in (id_column, time_column, label_column, *(value_columns or ()), *drop_columns):
        if column is not None and column not in frame.columns:
            raise ValueError(
                f"{name}: no column {column!r}; columns are {', '.join(map(str, frame.columns))}"
            )
    if label_column is not None and require_label and frame[label_column].isna().all():
        raise ValueError(f"{name}: no row has a label in column {label_column!r}")
    notes: list[str | None] = []  # warnings
    found: list[str] = []  # what was chosen for the user, said on the data line
    if time_column is None and value_columns is None:
        time_column = find_time_column(list(frame.columns), frame)
        if time_column is not None:
            found.append(f"rows ordered by {time_column!r}")
    if time_column is not None:
        unsure = unsure_dates(frame[time_column])
        if unsure is not None:
            notes.append(
                f"times such as {unsure!r} read month first (as in the US); if they are day "
                "first, write them as ISO dates (2025-04-03)"
            )
        frame = frame.copy(deep=False)
        frame[time_column] = parse_times(frame[time_column], name)
        if id_column is None:  # a column naming machines, else one machine's log
            id_column = find_unit_column(frame)
            if id_column is not None:
                found.append(f"a series per value of {id_column!r}")
            else:  # one series, not a series per row
                id_column = ONE_UNIT
                frame[id_column] = Path(name).stem
    if events is not None and (time_column is None or window is None):
        missing = "--window (1d, say)" if time_column else "its time column (--time-column)"
        raise ValueError(
            f"{events.path}: an events table labels windows of a log by time: give {missing}"
        )
    reserved = {c for c in (id_column, time_column, label_column, *drop_columns) if c is not None}
    if value_columns is None:  # every other column holds values; text in one is an error
        value_columns = [c for c in frame.columns if c not in reserved]
    if not value_columns:
        raise ValueError(f"{name}: no numeric value column")
    hint = " (give --drop-columns COLUMN to leave a column out)"
    notes.append(None if label_column else label_like_warning(value_columns))
    if id_column is None:
        values = numeric_cells(frame, value_columns, name, hint).astype(np.float32)
        labels = None if label_column is None else frame[label_column].to_numpy()
        source = SeriesSource(
            values[:, None, :],
            labels,
            name=name,
            label_column=label_column or "label",
        )
        source.warning = _joined(*notes, source.warning)
        out = windowed(source, window, window_stride)
        out.index_note = _joined(*found)
        return out
    series, ids, labels, steps, grids = [], [], [], [], []
    gaps = LogGaps()
    several = events is not None and frame[id_column].nunique() > 1  # events name units
    for key, part in frame.groupby(id_column, sort=False, observed=True):  # order of first row
        grid = None
        if time_column is not None:
            part = part.sort_values(time_column, kind="stable")
            times = part[time_column].to_numpy()
            if np.issubdtype(times.dtype, np.datetime64):
                grid = time_grid(times)
        cells = numeric_cells(part, value_columns, f"{name} (id {key})", hint)
        cells = cells.astype(np.float32).T
        row_labels = part[label_column].to_numpy() if label_column is not None else None
        if grid is not None:
            cells, row_labels = gaps.place(str(key), grid, cells, row_labels)
        if events is not None:
            times = grid.times() if grid is not None else part[time_column].to_numpy()
            row_labels = event_steps(events, str(key), times, several_units=several)
        series.append(cells)
        ids.append(str(key))
        grids.append(grid)
        if row_labels is not None and window is not None:
            steps.append(row_labels)
        elif label_column is not None:
            distinct = part[label_column].dropna().unique()
            if len(distinct) > 1:
                raise ValueError(
                    f"{name}: series {key!r} has {len(distinct)} distinct labels in "
                    f"{label_column!r}; a series needs exactly one, or give --window N to "
                    "cut it into windows labelled by their steps' most common one"
                )
            labels.append(distinct[0] if len(distinct) else None)  # None: unlabelled
    notes.append(gaps.note())
    labelled = label_column is not None or events is not None
    if events is not None:
        unknown = events.unknown_units(ids)
        if unknown:
            shown = ", ".join(unknown[:3]) + (", ..." if len(unknown) > 3 else "")
            notes.append(f"{events.path}: events of {len(unknown)} units not in the data ({shown})")
    window = steps_of(window, grids, name)
    window_stride = steps_of(window_stride, grids, name, "--window-stride")
    if window is not None:
        series, ids, step_labels, skipped = cut_windows(
            series,
            ids,
            window,
            window_stride,
            steps if labelled else None,
            name,
            grids,
            consume=True,
        )
        fallback = outside_label if events is not None else None
        if step_labels is not None:
            labels = [_most_common(w, fallback) for w in step_labels]
        notes.append(skipped)
    source = SeriesSource(
        series,
        labels if labelled else None,
        name=name,
        ids=ids,
        label_column=(events.column if events is not None else label_column) or "label",
    )
    if window is not None:  # a pump's days are alike: held out together, or by time
        source.split_groups = "units" if len(grids) > 1 else "periods"
    source.warning = _joined(*notes, source.warning)
    source.index_note = _joined(*found)
    return source


def cut_windows(
    series: list[np.ndarray | None],
    ids: Sequence[str],
    window: int,
    stride: int | None = None,
    step_labels: Sequence[np.ndarray] | None = None,
    name: str = "series",
    grids: Sequence[TimeGrid | None] | None = None,
    *,
    consume: bool = False,
) -> tuple[np.ndarray, list[str], list[np.ndarray] | None, str | None]:
    """Cut series ``(channels, length)`` into windows of ``window`` steps, ``stride`` steps
    apart (default: ``window``, no overlap), the last one ending with the series so no step
    is left out; a series shorter than the window is one window. A window's id is
    ``ID@START``: its first step, or its first step's time where the series has a time grid
    (``grids``). Windows without any value (an outage) are left out, and counted in a note.

    The windows are copied into one float32 array ``(windows, channels, width)`` (the width
    is the window, or the longest series where all are shorter; shorter windows end in
    NaN); with ``consume``, each series is dropped from ``series`` once its windows are
    copied, so a year of logs is held about once, not twice.

    Returns:
        The windows, their ids, their steps' labels (when ``step_labels`` is given) and the
        note (None when nothing was left out).

    A window none of whose steps has a label is an unlabelled window.

    Example:
        >>> x = np.arange(10, dtype=np.float32)[None]
        >>> windows, ids, _, note = cut_windows([x], ["a"], 4)
        >>> ids, windows.shape, windows[-1].tolist(), note
        (['a@0', 'a@4', 'a@6'], (3, 1, 4), [[6.0, 7.0, 8.0, 9.0]], None)
    """
    stride = stride or window
    kept: list[list[int]] = []  # each series' window starts holding a value
    out_ids: list[str] = []
    out_labels: list[np.ndarray] | None = [] if step_labels is not None else None
    empty = width = 0
    for i, (values, key) in enumerate(zip(series, ids, strict=True)):
        assert values is not None
        length = values.shape[-1]
        starts = list(range(0, max(length - window, 0) + 1, stride))
        if starts[-1] + window < length:
            starts.append(length - window)
        # Steps with a value, counted up to each step: a window holds one where it grows.
        seen = np.concatenate([[0], np.cumsum(~np.isnan(values).all(axis=0))])
        held = [s for s in starts if seen[min(s + window, length)] > seen[s]]
        empty += len(starts) - len(held)
        kept.append(held)
        width = max(width, min(window, length))
        grid = grids[i] if grids is not None else None
        out_ids += [f"{key}@{grid.time(s) if grid is not None else s}" for s in held]
        if out_labels is not None and step_labels is not None:
            out_labels += [step_labels[i][s : s + window] for s in held]
    if not out_ids:
        raise EmptySourceError(f"{name}: every window of {window} steps is empty")
    channels = next(v.shape[0] for v in series if v is not None)
    # Pages taken as rows are written, while the series they come from are given back.
    out = np.empty((len(out_ids), channels, width), dtype=np.float32)
    row = freed = 0
    for i, held in enumerate(kept):
        values = series[i]
        assert values is not None
        for s in held:
            piece = values[:, s : s + window]
            out[row, :, : piece.shape[1]] = piece
            out[row, :, piece.shape[1] :] = np.nan
            row += 1
        if consume:
            series[i] = None
            freed += values.nbytes
            if freed >= _TRIM_BYTES:
                give_back_freed()
                freed = 0
    note = (
        f"{empty:,} window{'s' if empty > 1 else ''} without any value left out" if empty else None
    )
    return out, out_ids, out_labels, note


def _most_common(labels: np.ndarray, fallback: Any = None) -> Any:
    """The most frequent label of a window's steps (missing ones aside; ties: the first);
    ``fallback`` when no step has one.

    Example:
        >>> _most_common(np.array(["ok", "fault", "fault", None], dtype=object))
        'fault'
        >>> _most_common(np.array([None, np.nan], dtype=object)) is None
        True
    """
    counts = pd.Series(labels).dropna().value_counts(sort=True)
    return counts.index[0] if len(counts) else fallback


def windowed(
    source: SeriesSource, window: int | str | None, stride: int | str | None = None
) -> SeriesSource:
    """``source`` with every series cut into windows (:func:`cut_windows`), each window
    labelled as its series; ``source`` itself when ``window`` is None.

    Example:
        >>> src = windowed(SeriesSource(np.zeros((2, 10)), ["a", "b"]), 5)
        >>> len(src), list(src.ids)[:2], src.classes, src.labels.tolist()
        (4, ['0@0', '0@5'], ['a', 'b'], [0, 0, 1, 1])
    """
    if window is None:
        return source
    window = steps_of(window, [], source.name)  # a duration needs datetimes: refused
    stride = steps_of(stride, [], source.name, "--window-stride")
    series = [source.values[i][:, : source.lengths[i]] for i in range(len(source))]
    names = item_labels(source)  # a series' class name, None where it has none
    steps = None
    if names is not None:
        steps = [np.full(source.lengths[i], names[i], dtype=object) for i in range(len(source))]
    pieces, ids, labels, note = cut_windows(
        series, list(source.ids), window, stride, steps, source.name
    )
    partial = source.partial_labels
    out = SeriesSource(
        pieces,
        None if labels is None else [w[0] for w in labels],
        name=source.name,
        ids=ids,
        classes=source.classes or (partial.classes if partial is not None else None),
        label_column=partial.column if partial is not None else "label",
    )
    # The series' note on their labels gives way to the windows' own.
    base = source.partial_labels.note(len(source), "items") if partial is not None else None
    kept = [w for w in (source.warning or "").split("; ") if w and w != base]
    out.warning = _joined(*kept, note, out.warning)
    return out


def _joined(*notes: str | None) -> str | None:
    """Notes in one line (None when there is none).

    Example:
        >>> _joined("a", None, "b"), _joined(None)
        ('a; b', None)
    """
    return "; ".join(n for n in notes if n) or None


def load_series_file(path: str | os.PathLike, **options: Any) -> SeriesSource:
    """A series source from a ``.ts``, ``.npy``/``.npz``, CSV/TSV or Parquet file, or a folder
    of CSV/TSV/Parquet logs (:func:`~selfsup.data.sensor_logs.read_log_folder`: one series
    per ``--id-column`` value, else per machine named by the file paths).

    Args:
        path: the file or folder.
        **options: for tables, the column options of :func:`series_from_frame`; ``labels``,
            an events table (:func:`~selfsup.data.sensor_logs.read_events`) labelling the
            windows, ``outside_label`` and ``event_lead``; for every file, ``window`` and
            ``window_stride``
            (:func:`windowed`).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    events_file = options.pop("labels", None)
    outside = options.pop("outside_label", None)
    lead = options.pop("event_lead", None)
    if lead is not None and events_file is None:
        raise ValueError(f"{path}: --event-lead needs an events table (--labels) to lead up to")
    if path.is_dir() or suffix in TABLE_SUFFIXES:
        read_note = None
        if path.is_dir():
            frame, options["id_column"], options["time_column"], read_note = read_log_folder(
                path,
                id_column=options.get("id_column"),
                time_column=options.get("time_column"),
                keep=(options.get("label_column"), *options.get("drop_columns", ())),
            )
        else:

            def held(rows: pd.DataFrame) -> pd.DataFrame:  # readings as float32
                return readings_as_float32(rows, log_columns(rows, options))

            plan_table_memory(path, LOG_READ_COPIES, held)  # from its first rows
            frame = held(read_table(path, typed_times=True))
        events = None
        if events_file is not None:
            events = read_events(
                events_file,
                label_column=options.pop("label_column", None),
                unit_column=options.get("id_column"),
                lead=lead,
            )
            options.pop("require_label", None)
        source = series_from_frame(
            frame,
            name=str(path),
            events=events,
            outside_label=OUTSIDE_LABEL if outside is None else (outside or None),
            **options,
        )
        if events is not None:
            between = "unlabelled" if outside == "" else f"'{outside or OUTSIDE_LABEL}'"
            leads = f"; {events.lead_note}" if events.lead_note else ""
            source.labels_note = (
                f"labels from the {events.count:,} events of {events.path} "
                f"(windows without an event: {between}{leads})"
            )
        source.index_note = _joined(read_note, source.index_note)
        del frame  # the rows, joined and grouped: about three times the series, now freed
        give_back_freed()
        return source
    if events_file is not None:
        raise ValueError(
            f"{events_file}: an events table labels windows of a log (a CSV/Parquet table or a "
            f"folder of them, with a time column), not of {path}"
        )
    if suffix == ".ts":
        source = load_ts(path)
    elif suffix in (".npy", ".npz"):
        array, labels = read_array_file(path)
        source = SeriesSource(series_array(array, str(path)), labels, name=str(path))
    else:
        raise ValueError(
            f"{path}: cannot read {suffix or 'suffix-less'} files as series; expected .ts, "
            f".npy/.npz or a table ({', '.join(TABLE_SUFFIXES)})"
        )
    return windowed(source, options.get("window"), options.get("window_stride"))
