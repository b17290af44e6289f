"""Tables: type inference, missing values, categorical codes, saved encodings, bad cells."""

import numpy as np
import pandas as pd
import pytest
from tests.modalities.tabular.conftest import make_table

from selfsup.data import EmptySourceError, TablePreprocessor, TabularSource
from selfsup.modalities import open_source


def test_dataframe_with_nans_and_a_categorical_column():
    frame = make_table(n=50)
    src = open_source(frame, label_column="y")
    pre = src.preprocessor
    assert src.modality == "tabular"
    assert pre.numeric == ["a", "b", "noise"] and pre.categorical == ["color"]
    assert pre.indicators == ["a"] and pre.cardinalities == [4]
    assert src.feature_names == ["a", "b", "noise", "a (missing)", "color"]
    x = src.read_batch(range(50)).items.numpy()
    assert np.isfinite(x).all()
    observed = frame["a"].notna().to_numpy()
    assert abs(x[observed, 0].mean()) < 1e-5 and abs(x[observed, 0].std() - 1) < 1e-3
    np.testing.assert_array_equal(x[:, 3], (~observed).astype(np.float32))
    assert set(np.unique(x[:, 4])) <= {0.0, 1.0, 2.0, 3.0}
    assert (x[frame["color"].isna().to_numpy(), 4] == 0).all()
    assert src.classes == ["x", "y", "z"]


def test_saved_encoding_is_reused_and_unseen_categories_get_code_zero(tmp_path):
    train = pd.DataFrame({"n": [1.0, 2.0, 3.0], "c": ["a", "b", "a"]})
    pre = TabularSource(train).preprocessor
    pre.save(tmp_path)
    again = TablePreprocessor.load(tmp_path)
    new = pd.DataFrame({"n": [2.0], "c": ["never seen"]})
    encoded = TabularSource(new, preprocessor=again).read(0).tolist()
    assert encoded == [0.0, 0.0]
    with pytest.raises(ValueError, match=r"columns \['c'\] are missing"):
        TabularSource(pd.DataFrame({"n": [1.0]}), preprocessor=again)


def test_type_overrides_and_bad_cells_name_row_and_column():
    frame = pd.DataFrame({"zip": [1001, 1002, 1001], "v": ["1.5", "2", "oops"]})
    src = TabularSource(frame.iloc[:2], categorical_columns=["zip"], numeric_columns=["v"])
    assert src.preprocessor.categorical == ["zip"] and src.preprocessor.numeric == ["v"]
    with pytest.raises(ValueError, match=r"row 2, column 'v': 'oops' is not a number"):
        TabularSource(frame, numeric_columns=["v"])
    with pytest.raises(ValueError, match="no column 'nope'"):
        TabularSource(frame, label_column="nope")
    with pytest.raises(EmptySourceError, match="no row"):
        TabularSource(frame.iloc[:0])


def test_csv_and_parquet_files_and_named_tables(tmp_path):
    frame = make_table(n=30, missing=0.3)
    frame.to_csv(tmp_path / "t.csv", index=False)
    frame.to_parquet(tmp_path / "t.parquet")
    a = open_source(tmp_path / "t.csv", label_column="y", drop_columns=["noise"])
    b = open_source(tmp_path / "t.parquet", label_column="y", drop_columns=["noise"])
    assert a.feature_names == b.feature_names == ["a", "b", "a (missing)", "color"]
    np.testing.assert_allclose(a.values.numpy(), b.values.numpy(), atol=1e-6)
    train, test = open_source("breast-cancer"), open_source("breast-cancer:test")
    assert (len(train), len(test)) == (456, 113) and train.item_shape == (30,)
    assert train.preprocessor.means == test.preprocessor.means
