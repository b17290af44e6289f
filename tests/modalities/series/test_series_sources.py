"""Series sources: .ts files, wide and long tables, arrays, ucr: names, bad input."""

import numpy as np
import pandas as pd
import pytest
from tests.modalities.series.conftest import write_ts

from selfsup.data import EmptySourceError
from selfsup.data.series import SeriesSource, read_ts_file, series_from_frame
from selfsup.modalities import infer_modality, open_source


def test_ts_file_with_unequal_lengths_missing_values_and_channels(tmp_path):
    series = [np.arange(6, dtype=float).reshape(2, 3), np.array([[1.0, np.nan], [2.0, 3.0]])]
    path = tmp_path / "x.ts"
    write_ts(path, series, [1, 0], ["low", "high"])
    src = open_source(path)
    assert src.modality == "series" and src.item_shape == (2, 3)
    assert src.classes == ["low", "high"] and src.labels.tolist() == [1, 0]
    assert src.lengths.tolist() == [3, 2]
    item = src.read(1).numpy()
    assert np.isnan(item[0, 1]) and np.isnan(item[:, 2]).all() and item[1, 1] == 3.0


def test_ts_file_errors_name_file_and_line(tmp_path):
    path = tmp_path / "bad.ts"
    path.write_text("@problemName b\n@classLabel true a\n@data\n1,2:a\n1,x:a\n")
    with pytest.raises(ValueError, match=r"bad.ts:5"):
        read_ts_file(path)
    path.write_text("1,2,3\n")
    with pytest.raises(ValueError, match=r"bad\.ts:1"):
        read_ts_file(path)


def test_long_form_csv_sorted_by_time_with_labels(tmp_path):
    frame = pd.DataFrame(
        {
            "sensor": ["b", "a", "a", "b", "a"],
            "t": [1, 2, 0, 0, 1],
            "x": [5.0, 3.0, 1.0, 4.0, np.nan],
            "y": [50.0, 30.0, 10.0, 40.0, 20.0],
            "state": ["on", "off", "off", "on", "off"],
        }
    )
    path = tmp_path / "long.csv"
    frame.to_csv(path, index=False)
    src = open_source(path, "series", id_column="sensor", time_column="t", label_column="state")
    assert list(src.ids) == ["b", "a"]
    assert src.item_shape == (2, 3)
    np.testing.assert_array_equal(src.values[1, 1], [10.0, 20.0, 30.0])
    assert np.isnan(src.values[1, 0, 1]) and np.isnan(src.values[0, :, 2]).all()
    assert [src.classes[c] for c in src.labels] == ["on", "off"]


def test_long_form_series_with_two_labels_is_an_error():
    frame = pd.DataFrame({"id": [1, 1], "v": [0.0, 1.0], "y": ["a", "b"]})
    with pytest.raises(ValueError, match="series 1 has 2 distinct labels"):
        series_from_frame(frame, id_column="id", label_column="y")


def test_wide_parquet_with_missing_tail_and_bad_cell(tmp_path):
    frame = pd.DataFrame({"t0": [1.0, 2.0], "t1": [3.0, np.nan], "label": [0, 1]})
    path = tmp_path / "wide.parquet"
    frame.to_parquet(path)
    src = open_source(path, "series", label_column="label")
    assert src.item_shape == (1, 2) and src.lengths.tolist() == [2, 1]
    bad = pd.DataFrame({"t0": [1.0, 2.0], "t1": ["3", "oops"]})
    with pytest.raises(ValueError, match=r"row 1, column 't1': 'oops' is not a number"):
        series_from_frame(bad)


def test_arrays_2d_and_3d_and_empty_series(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((4, 10)))
    assert open_source(tmp_path / "x.npy", "series").item_shape == (1, 10)
    np.savez(tmp_path / "y.npz", X=np.zeros((4, 3, 10)), y=np.array([0, 1, 0, 1]))
    assert open_source(tmp_path / "y.npz", "series").labels.tolist() == [0, 1, 0, 1]
    with pytest.raises(EmptySourceError, match="series 1 has no value"):
        SeriesSource(np.array([[1.0, 2.0], [np.nan, np.nan]]))
    with pytest.raises(ValueError, match="infinite"):
        SeriesSource(np.array([[1.0, np.inf]]))


def test_modality_inference_and_unknown_ucr_set(monkeypatch, tmp_path):
    assert infer_modality("ucr:GunPoint") == "series"
    assert infer_modality(tmp_path / "a.ts") == "series"
    assert infer_modality("fashion-mnist") == "image"
    monkeypatch.setenv("SELFSUP_UCR_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"NoSuchSet_TRAIN\.ts.*SELFSUP_UCR_DIR"):
        open_source("ucr:NoSuchSet")


def test_ucr_folder_layout_with_official_split(monkeypatch, tmp_path, waves):
    x, y = waves
    folder = tmp_path / "Waves"
    folder.mkdir()
    write_ts(folder / "Waves_TRAIN.ts", list(x[:60]), y[:60], ["a", "b", "c"])
    write_ts(folder / "Waves_TEST.ts", list(x[60:]), y[60:], ["a", "b", "c"])
    monkeypatch.setenv("SELFSUP_UCR_DIR", str(tmp_path))
    from selfsup.data import ucr_names
    from selfsup.modalities import train_test_sources

    assert "Waves" in ucr_names()
    train, test = train_test_sources("ucr:Waves")
    assert (len(train), len(test)) == (60, len(x) - 60)
    assert test.name == "ucr:Waves:test"


def test_ts_regression_targets_percent_comments_and_variant_lookup(tmp_path, monkeypatch):
    text = (
        "%# an ARFF-style comment\n@problemName r\n@targetLabel true\n@data\n"
        "1,2:3,4:0.5\n5,6:7,8:?\n"
    )
    folder = tmp_path / "Parent"
    folder.mkdir()
    (folder / "Parent_eq_TRAIN.ts").write_text(text)
    (folder / "Parent_eq_TEST.ts").write_text(text)
    series, labels, header = read_ts_file(folder / "Parent_eq_TRAIN.ts")
    assert [s.shape for s in series] == [(2, 2), (2, 2)] and labels is None
    assert header["targets"][0] == 0.5 and np.isnan(header["targets"][1])
    monkeypatch.setenv("SELFSUP_UCR_DIR", str(tmp_path))
    src = open_source("ucr:Parent_eq:test")
    assert src.name == "ucr:Parent_eq:test" and src.item_shape == (2, 2)


def test_a_label_like_column_read_as_values_is_warned() -> None:
    wide = pd.DataFrame({"t0": [1.0, 2.0], "t1": [3.0, 4.0], "target": [0, 1]})
    assert "column 'target' looks like labels" in series_from_frame(wide).warning
    assert series_from_frame(wide, label_column="target").warning is None
    long = pd.DataFrame({"id": [1, 1, 2], "v": [0.0, 1.0, 2.0], "class": [0, 0, 1]})
    assert "--label-column class" in series_from_frame(long, id_column="id").warning
    assert series_from_frame(long, id_column="id", label_column="class").warning is None


def test_windows_of_a_long_log_with_a_changing_state(tmp_path):
    """A machine's log: the state changes along the series, so each window is an item
    labelled by its most common state; an outage's empty window is left out and counted."""
    t = np.arange(10)
    frame = pd.DataFrame(
        {
            "unit": ["p1"] * 10 + ["p2"] * 3,
            "t": np.concatenate([t, np.arange(3)]),
            "v": np.concatenate([t.astype(float), [7.0, 8.0, 9.0]]),
            "state": ["ok"] * 3 + ["fault"] * 7 + ["ok"] * 3,
        }
    )
    frame.loc[4:7, "v"] = np.nan  # an outage: the window 4..7 has no value
    path = tmp_path / "log.csv"
    frame.to_csv(path, index=False)
    options = {"id_column": "unit", "time_column": "t", "label_column": "state", "window": 4}
    src = open_source(path, "series", **options)
    # p1's 10 steps: windows at 0, 4 (empty: left out) and 6, the last ending with p1.
    assert list(src.ids) == ["p1@0", "p1@6", "p2@0"]
    assert [src.classes[c] for c in src.labels] == ["ok", "fault", "ok"]  # 0..3: 3 ok, 1 fault
    assert "1 window without any value left out" in src.warning
    np.testing.assert_array_equal(src.values[2, 0, :3], [7.0, 8.0, 9.0])
    assert np.isnan(src.values[2, 0, 3])  # p2 is shorter than the window: one, padded
    # Arrays and .ts files are cut the same way, each window labelled as its series.
    np.savez(tmp_path / "x.npz", X=np.arange(20.0).reshape(2, 10), y=np.array(["a", "b"]))
    cut = open_source(tmp_path / "x.npz", "series", window=5, window_stride=5)
    assert list(cut.ids) == ["0@0", "0@5", "1@0", "1@5"] and cut.labels.tolist() == [0, 0, 1, 1]


def test_pretraining_cuts_series_twice_as_long_as_ts2vec_trains_on(tmp_path):
    from selfsup.config import PretrainConfig
    from selfsup.modalities import get_modality

    modality = get_modality("series")
    long = open_source(np.random.default_rng(0).normal(size=(2, 3, 6500)), "series")
    cut, note = modality.training_source(long, PretrainConfig(data="-"))
    assert len(cut) == 6 and cut.item_shape == (3, 3000) and "6,500 steps" in note
    same, none = modality.training_source(long, PretrainConfig(data="-", window=100))
    assert same is long and none is None  # --window already chose the items
    short = open_source(np.zeros((2, 5999)), "series")
    assert modality.training_source(short, PretrainConfig(data="-"))[0] is short
