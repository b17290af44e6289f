"""Sensor logs as an industrial team has them: a folder of a historian's CSV exports (one
per machine and day), rows missing where it was down, and a maintenance log of events."""

import json
import re

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import selfsup
from selfsup.cli import app
from selfsup.config import PretrainConfig
from selfsup.data.sensor_logs import path_unit, read_events
from selfsup.data.splits import item_labels
from selfsup.modalities import open_source, resolve_config

STEP = pd.Timedelta(minutes=10)
DAY = 144  # steps of 10 minutes


def pump_logs(root, pumps=("pump-a", "pump-b"), days=3, gap=True):
    """``root/PUMP/2025-01-0D.csv``: 10-minute readings (time, temp, vib); pump-a's vibration
    high on day 2 from 10:00 to 14:00; pump-b's rows 30..41 of day 2 missing (an outage)."""
    rng = np.random.default_rng(0)
    for p, pump in enumerate(pumps):
        for d in range(days):
            times = pd.date_range(f"2025-01-0{d + 1}", periods=DAY, freq=STEP)
            frame = pd.DataFrame(
                {
                    "timestamp": times.strftime("%Y-%m-%d %H:%M:%S"),
                    "temp": 60 + p + rng.normal(0, 0.5, DAY),
                    "vib": 0.3 + rng.normal(0, 0.02, DAY),
                }
            )
            if pump == "pump-a" and d == 1:
                frame.loc[60:83, "vib"] += 2.0
            if gap and pump == "pump-b" and d == 1:
                frame = frame.drop(range(30, 42))
            path = root / pump / f"2025-01-0{d + 1}.csv"
            path.parent.mkdir(parents=True, exist_ok=True)
            frame.to_csv(path, index=False)
    return root


def events_table(path, rows="pump-a,2025-01-02 10:00,2025-01-02 14:00,bearing failure\n"):
    path.write_text("asset,start,end,event\n" + rows)
    return path


def test_unit_names_come_from_paths_without_their_dates():
    assert path_unit("pump-07/2025-03.csv") == "pump-07"
    assert path_unit("2025/03/31/pump-07.parquet") == "pump-07"
    assert path_unit("site-a/pump-2001/2025-03-31T00-00.csv") == "site-a/pump-2001"
    assert path_unit("pump_20250331.csv") == "pump"
    assert path_unit("units/17.csv") == "units/17"  # no year: 17 is a unit, not a day
    assert path_unit("2025-03-31.csv") == ""  # one machine's log split by day


def test_a_folder_of_daily_exports_is_one_series_per_pump_on_its_time_grid(tmp_path):
    root = pump_logs(tmp_path / "logs")
    (root / "pump-b" / "2025-01-04.csv").write_text("timestamp,temp,vib\n")  # it did not run
    src = open_source(root, window=DAY)
    assert src.modality == "series"  # a folder of tables with a time column: logs
    assert src.channels == 2 and src.index_note == (
        "2 units from the file paths, 7 files (1 of column names alone: pump-b/2025-01-04.csv)"
    )
    # Windows are days, named by their start time; pump-b's missing rows are absent steps,
    # so its day 2 still starts at midnight and its day 3 is not shifted by 12 rows.
    assert list(src.ids) == [f"{p}@2025-01-0{d}T00:00:00" for p in ("pump-a", "pump-b")
                             for d in (1, 2, 3)]  # fmt: skip
    day2 = src.values[4]
    assert np.isnan(day2[:, 30:42]).all() and np.isfinite(day2[:, :30]).all()
    assert "pump-b: 12 steps without a row (an outage) kept as absent, at 10 min" in src.warning
    assert src.labels is None and src.partial_labels is None


def test_windows_of_too_few_pumps_to_hold_one_out_are_split_by_time(tmp_path):
    from selfsup.modalities import train_test_sources

    root = pump_logs(tmp_path / "logs")
    events = events_table(tmp_path / "events.csv")
    src = open_source(root, labels=str(events), window=DAY // 4)
    assert src.split_groups == "units"
    fit, test = train_test_sources(src)  # 2 units: a fifth cannot be held out, so by time
    assert re.fullmatch(r".*\[fit, \d+ periods\]", fit.name), fit.name
    assert re.fullmatch(r".*\[test, \d+ periods\]", test.name), test.name
    starts = lambda part: {i.rsplit("@", 1)[1] for i in part.ids}  # noqa: E731
    assert not starts(fit) & starts(test)  # the pumps' windows of one time on one side
    one = pump_logs(tmp_path / "one", pumps=("pump-a",), days=6)
    alone = open_source(one, labels=str(events), window=DAY // 4)
    assert alone.split_groups == "periods"  # one pump: its windows split by time
    fit, test = train_test_sources(alone)
    assert test.name.endswith("[test, 4 periods]") and len(fit) + len(test) == len(alone)
    held = np.sort(test.indices)  # 4 whole stretches of 20: at most 4 runs of windows
    assert 1 + int((np.diff(held) > 1).sum()) <= 4 and len(held) >= 4


def test_a_maintenance_log_labels_the_windows_its_events_cover(tmp_path):
    root = pump_logs(tmp_path / "logs")
    events = events_table(
        tmp_path / "maintenance.csv",
        "pump-a,2025-01-02 10:00,2025-01-02 14:00,bearing failure\n"
        "pump-b,2025-01-03 23:50,,inspection\n"  # an instant: the step it falls in
        "pump-z,2025-01-01 00:00,2025-01-02 00:00,leak\n",  # a pump not in the data
    )
    src = open_source(root, labels=str(events), window=DAY // 2)  # half days
    labels = item_labels(src)
    assert labels[src.ids.index("pump-a@2025-01-01T12:00:00")] == "normal"
    # Both half days the failure touches (10:00 to 14:00) take its label.
    assert labels[src.ids.index("pump-a@2025-01-02T00:00:00")] == "bearing failure"
    assert labels[src.ids.index("pump-a@2025-01-02T12:00:00")] == "bearing failure"
    assert labels[src.ids.index("pump-b@2025-01-03T12:00:00")] == "inspection"
    assert labels.count("normal") == len(src) - 3
    assert src.classes == ["bearing failure", "inspection", "normal"]
    assert "events of 1 units not in the data (pump-z)" in src.warning
    assert "3 events of" in src.labels_note and "'normal'" in src.labels_note
    # Windows between events left unlabelled: only the event windows are labelled.
    bare = open_source(root, labels=str(events), window=DAY // 2, outside_label="")
    assert bare.labels is None and bare.partial_labels.rows.size == 3
    # A window takes the event that covers most of it.
    long = events_table(
        tmp_path / "long.csv", "pump-a,2025-01-01 11:00,2025-01-02 00:00,overload\n"
    )
    src = open_source(root, labels=str(long), window=DAY)
    assert item_labels(src)[:2] == ["overload", "normal"]


def test_an_event_lead_labels_the_warning_time_before_failures(tmp_path):
    root = pump_logs(tmp_path / "logs", days=3)
    events = events_table(
        tmp_path / "maintenance.csv",
        "pump-a,2025-01-03 06:00,2025-01-03 08:00,bearing failure\n"
        "pump-b,2025-01-02 12:00,2025-01-02 13:00,inspection\n"
        "pump-b,2025-01-03 12:00,2025-01-03 13:00,seal leak\n",
    )
    half = DAY // 2
    src = open_source(root, labels=str(events), window=half, event_lead="bearing failure=1d")
    labels = dict(zip(src.ids, item_labels(src), strict=True))
    # The day before the failure (06:00 to 06:00) covers most of two half days.
    assert labels["pump-a@2025-01-02T00:00:00"] == "before bearing failure"
    assert labels["pump-a@2025-01-02T12:00:00"] == "before bearing failure"
    assert labels["pump-a@2025-01-01T12:00:00"] == "normal"
    assert labels["pump-a@2025-01-03T00:00:00"] == "before bearing failure"  # 6 h of 12 before
    assert labels["pump-b@2025-01-02T12:00:00"] == "inspection"  # no lead asked for it
    assert "1d before 'bearing failure': 'before bearing failure'" in src.labels_note
    # One duration leads every event; an event keeps its own steps where a lead overlaps it.
    every = open_source(root, labels=str(events), window=half, event_lead="30h")
    labels = dict(zip(every.ids, item_labels(every), strict=True))
    assert labels["pump-b@2025-01-02T12:00:00"] == "before seal leak"  # 1 h inspection, 11 h lead
    assert labels["pump-b@2025-01-02T00:00:00"] == "before inspection"
    assert labels["pump-b@2025-01-03T12:00:00"] == "seal leak"
    for lead, message in [
        ("3", "--event-lead '3' is not a duration"),
        ("bearing failur=1d", "--event-lead names 'bearing failur', which no event is labelled"),
        ("=1d", "give LABEL=DURATION"),
        ("-1d", "must be above 0"),
    ]:
        with pytest.raises(ValueError, match=message):
            open_source(root, labels=str(events), window=half, event_lead=lead)
    with pytest.raises(ValueError, match="--event-lead needs an events table"):
        open_source(root, window=half, event_lead="1d")


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("asset,from,end,event\np,x,2025-01-02,a\n", "row 1: the time 'x' is not a date or time"),
        ("asset,start,end,event\np,2025-01-02,2025-01-01,a\n", "row 1: the event ends before"),
        ("asset,start,event\np,2025-01-02,a\n", "no end column"),
        ("asset,start,end,event\np,2025-01-02,2025-01-03,\n", "row 1: the event has no label"),
        ("asset,start,end,event,who\np,2025-01-02,2025-01-03,a,ann\n", "no label column 'label'"),
    ],
)
def test_a_broken_events_table_is_named_with_its_row(tmp_path, table, message):
    path = tmp_path / "events.csv"
    path.write_text(table)
    with pytest.raises(ValueError, match=message) as caught:
        read_events(path)
    assert str(path) in str(caught.value)


def test_broken_logs_are_named_with_their_file_and_row(tmp_path):
    root = pump_logs(tmp_path / "logs", pumps=("pump-a",), days=2)
    events = events_table(tmp_path / "events.csv")
    with pytest.raises(ValueError, match=r"labels windows of a log by time: give --window \(1d"):
        open_source(root, labels=str(events))  # no --window
    both = events_table(tmp_path / "any.csv", "").read_text().replace("asset,", "")
    (tmp_path / "any.csv").write_text(both + "2025-01-01,2025-01-02,x\n")
    two = pump_logs(tmp_path / "two")
    with pytest.raises(ValueError, match=r"names no unit .* while the data holds several"):
        open_source(two, labels=str(tmp_path / "any.csv"), window=DAY)
    steps = events_table(tmp_path / "steps.csv", "pump-a,10,20,leak\n")  # numbers, not dates
    with pytest.raises(ValueError, match="its times are numbers, the log's are dates"):
        open_source(root, labels=str(steps), window=DAY)
    bad = root / "pump-a" / "2025-01-02.csv"
    text = bad.read_text().splitlines()
    text[5] = "not a time" + text[5][19:]
    bad.write_text("\n".join(text) + "\n")
    with pytest.raises(ValueError, match=r"2025-01-02.csv: row 5: the time 'not a time' is not"):
        open_source(root, window=DAY)
    other = root / "pump-a" / "2025-01-03.csv"
    other.write_text("timestamp,temp\n2025-01-03 00:00:00,1\n")
    bad.unlink()
    with pytest.raises(ValueError, match=r"2025-01-03.csv: its columns differ .*: lacks vib"):
        open_source(root, window=DAY)


def test_one_machines_log_file_with_a_time_column_is_one_series(tmp_path):
    root = pump_logs(tmp_path / "logs", pumps=("pump-a",), days=2, gap=False)
    frame = pd.concat(pd.read_csv(f) for f in sorted(root.glob("*/*.csv")))
    path = tmp_path / "pump-a.csv"
    frame.sample(frac=1.0, random_state=0).to_csv(path, index=False)  # rows in any order
    # --window, a series option, makes a CSV series (else a table of rows).
    cfg = resolve_config(PretrainConfig(data=str(path), window=DAY))
    assert cfg.modality == "series"
    src = open_source(path, "series", window=DAY)
    assert list(src.ids) == ["pump-a@2025-01-01T00:00:00", "pump-a@2025-01-02T00:00:00"]
    assert "rows ordered by 'timestamp'" in src.index_note
    np.testing.assert_allclose(src.values[1, 1, 60:84].mean(), 2.3, atol=0.05)  # in order


def test_pretrain_and_evaluate_pumps_by_their_maintenance_log_from_the_cli(tmp_path):
    pumps = [f"pump-{c}" for c in "abcde"]
    root = pump_logs(tmp_path / "logs", pumps=pumps, days=2)
    events = events_table(
        tmp_path / "maintenance.csv",
        "".join(
            f"{p},2025-01-0{d} {h:02d}:00,2025-01-0{d} {h + 2:02d}:00,failure\n"
            for p in pumps
            for d, h in ((1, 4), (2, 16))
        ),
    )
    out = tmp_path / "run"
    runner = CliRunner()
    result = runner.invoke(
        app,
        ["pretrain", str(root), "--labels", str(events), "--window", "12", "--steps", "3",
         "--backbone-options", "hidden=8,out_dim=16,depth=2", "--out", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "5 units from the file paths, 10 files" in result.output
    run = selfsup.load(out)
    assert run.config["labels"] == str(events.resolve())  # read again from anywhere
    src = run.open(str(root))
    assert src.classes == ["failure", "normal"] and len(src) == 5 * 2 * DAY // 12
    assert src.split_groups == "units"  # a pump's windows are held out together by default
    result = runner.invoke(app, ["evaluate", str(out), str(root), "--protocol", "knn"])
    assert result.exit_code == 0, result.output
    assert "of class 'normal': predicting it alone scores" in result.output
    assert "[fit, 4 units]" in result.output and "[test, 1 unit]" in result.output
    (saved,) = (json.loads(f.read_text()) for f in out.glob("evaluation-*.json"))
    assert saved["test_items"] == 2 * DAY // 12  # one pump held out, all its windows


def test_windows_and_strides_given_as_durations(tmp_path):
    root = pump_logs(tmp_path / "logs", pumps=("pump-a",), days=2, gap=False)
    by_steps = open_source(root, window=DAY, window_stride=DAY // 4)
    by_time = open_source(root, window="1d", window_stride="6h")
    assert (
        list(by_time.ids) == list(by_steps.ids) and by_time.ids[1] == "pump-a@2025-01-01T06:00:00"
    )
    np.testing.assert_array_equal(by_time.values, by_steps.values)
    cfg = PretrainConfig(data=str(root), window="1440", window_stride="30min")
    assert (cfg.window, cfg.window_stride) == (1440, "30min")  # digits from the CLI are steps
    with pytest.raises(ValueError, match=r"neither steps .* nor a duration"):
        PretrainConfig(data=str(root), window="a day")
    with pytest.raises(ValueError, match="--window 25min is not a whole number of steps of 10 min"):
        open_source(root, window="25min")
    with pytest.raises(ValueError, match="--window 1d is a duration, but the series have no date"):
        open_source(np.zeros((2, 50)), "series", window="1d")


def test_a_folder_too_large_for_memory_is_refused_before_it_is_read(tmp_path, monkeypatch, capsys):
    """Planned from its first file, not discovered by the kernel's out-of-memory killer."""
    import sys

    import selfsup.core.memory
    from selfsup.cli import main

    root = pump_logs(tmp_path / "logs", days=2)
    monkeypatch.setattr(selfsup.core.memory, "available_memory", lambda device: 10_000)
    monkeypatch.setattr(sys, "argv", ["selfsup", "datasets", "show", str(root)])
    with pytest.raises(SystemExit) as stopped:
        main()
    said = " ".join("".join(capsys.readouterr()).split())
    assert stopped.value.code == 2 and "Traceback" not in said
    assert f"{root}: its 4 table files (" in said
    assert "kB of memory to read, and 10 kB is available: give a part of it" in said


def test_daily_exports_of_every_machine_name_them_in_a_column(tmp_path):
    """A plant's daily export holds every pump, named in an ``asset`` column."""
    root = pump_logs(tmp_path / "by-pump", days=2, gap=False)
    daily = tmp_path / "daily"
    daily.mkdir()
    frames = {
        day: pd.concat(
            pd.read_csv(root / pump / f"2025-01-0{day}.csv").assign(asset=pump)
            for pump in ("pump-a", "pump-b")
        )
        for day in (1, 2)
    }
    for day, frame in frames.items():
        frame.to_csv(daily / f"2025-01-0{day}.csv", index=False)
    src = open_source(daily, window="1d")
    assert src.index_note == "2 units from column 'asset', 2 files"
    assert list(src.ids) == list(open_source(root, window="1d").ids)
    one_file = tmp_path / "plant.csv"
    pd.concat(frames.values()).to_csv(one_file, index=False)
    single = open_source(one_file, "series", window="1d")
    assert list(single.ids) == list(src.ids)
    assert "a series per value of 'asset'" in single.index_note
    np.testing.assert_array_equal(single.values, src.values)


def test_a_folders_readings_are_held_as_float32_its_times_units_and_labels_as_written(tmp_path):
    """A year of minute logs is held in half the bytes: readings are read as float32 in the
    end, so each file's numbers are held so before the files are joined. The time (seconds
    as fractions: float32 would merge them), the unit and a label column of numbers are not."""
    from selfsup.data.sensor_logs import read_log_folder

    for unit, states in (("pump-a", "0.5,1.5"), ("pump-b", ",1.5")):
        first, second = states.split(",")
        (tmp_path / unit).mkdir()
        (tmp_path / unit / "2025-01.csv").write_text(
            f"t,temp,count,state\n1735689600.25,60.1,3,{first}\n1735689600.5,,4,{second}\n"
        )
    frame, unit, time, _ = read_log_folder(tmp_path, time_column="t", keep=("state",))
    types = frame.dtypes.astype(str).to_dict()
    assert types == {"t": "float64", "temp": "float32", "count": "float32",
                     "state": "float64", "unit": "category"}  # fmt: skip
    assert frame["t"].nunique() == 2 and (unit, time) == ("unit", "t")
    # Machine states coded as fractional numbers are classes, named as written.
    src = open_source(tmp_path, modality="series", time_column="t", label_column="state", window=1)
    assert src.partial_labels.classes == ["0.5", "1.5"] and len(src) == 4  # one unlabelled


def test_windows_are_cut_into_one_array_dropping_each_series_once_copied():
    from selfsup.data.series import cut_windows

    series = [np.arange(10, dtype=np.float32)[None], np.full((1, 3), np.nan, np.float32)]
    series[1][0, 2] = 7.0
    windows, ids, _, note = cut_windows(series, ["a", "b"], 4, consume=True)
    assert windows.shape == (4, 1, 4) and ids == ["a@0", "a@4", "a@6", "b@0"]
    np.testing.assert_array_equal(windows[3, 0], [np.nan, np.nan, 7.0, np.nan])  # NaN padded
    assert series == [None, None] and note is None
    series = [np.full((2, 8), np.nan, np.float32), np.ones((2, 2), np.float32)]
    series[0][1, 5] = 1.0  # one channel's value makes its window one
    windows, ids, _, note = cut_windows(series, ["a", "b"], 4)
    assert ids == ["a@4", "b@0"] and windows.shape == (2, 2, 4)
    assert note == "1 window without any value left out" and series[0] is not None
    # Every series shorter than the window: one window each, as wide as the longest.
    windows, *_ = cut_windows([np.ones((1, 3), np.float32), np.ones((1, 2), np.float32)],
                              ["a", "b"], 10)  # fmt: skip
    assert windows.shape == (2, 1, 3) and np.isnan(windows[1, 0, 2])


def test_one_large_log_file_is_planned_from_its_first_rows_and_held_as_float32(
    tmp_path, monkeypatch, capsys
):
    """One machine's year of seconds in one CSV: refused before it is read where it will not
    fit (planned from a sample of rows, as a folder is from its first file); read, its
    readings are float32 and its machine numbers stay whole."""
    import sys

    import selfsup.core.memory
    import selfsup.data.table_files as table_files
    from selfsup.cli import main
    from selfsup.data.series import load_series_file

    rows = 3000
    times = pd.date_range("2025-01-01", periods=rows, freq="1s").strftime("%Y-%m-%d %H:%M:%S")
    frame = pd.DataFrame({"time": times, "machine": [7, 8] * (rows // 2), "temp": 60.25})
    path = tmp_path / "log.csv"
    frame.to_csv(path, index=False)
    src = load_series_file(path, window=100)
    assert src.values.dtype == np.float32 and {i.split("@")[0] for i in src.ids} == {"7", "8"}
    monkeypatch.setattr(table_files, "PLANNED_FILE_BYTES", 1000)  # a large file, that is
    monkeypatch.setattr(selfsup.core.memory, "available_memory", lambda device: 51_200)
    monkeypatch.setattr(sys, "argv", ["selfsup", "datasets", "show", str(path), "--window", "100"])
    with pytest.raises(SystemExit) as stopped:
        main()
    said = " ".join("".join(capsys.readouterr()).split())
    assert stopped.value.code == 2 and "Traceback" not in said
    assert f"{path}: its " in said and "of memory to read, and 50 kB is available" in said
    monkeypatch.setattr(selfsup.core.memory, "available_memory", lambda device: 10**9)
    assert len(load_series_file(path, window=100)) == len(src)  # planned, and it fits
