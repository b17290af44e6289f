"""The scikit-learn estimator: clone, get/set params, pipelines on tables and series."""

import copy
import shutil
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from tests.modalities.series.conftest import make_waves
from tests.modalities.tabular.conftest import make_table

from selfsup import SelfSupervisedEncoder
from selfsup.data.base import DataWarning

SMALL_MLP = {"hidden": 16, "depth": 2}


def test_params_round_trip_and_clone():
    est = SelfSupervisedEncoder("series", method="ts2vec", epochs=3, backbone_options={"depth": 2})
    params = est.get_params()
    assert params["modality"] == "series" and params["epochs"] == 3
    est.set_params(epochs=5, lr=0.01)
    assert est.epochs == 5 and est.lr == 0.01
    copy = clone(est)
    assert copy is not est and copy.get_params() == est.get_params()
    with pytest.raises(NotFittedError):
        est.transform(np.zeros((2, 10)))


def test_pipeline_on_a_dataframe_with_categories_and_missing_values(tmp_path):
    frame = make_table(n=160)
    X, y = frame.drop(columns=["y"]), frame["y"]
    model = Pipeline(
        [
            (
                "encoder",
                SelfSupervisedEncoder(
                    "tabular",
                    epochs=3,
                    batch_size=32,
                    backbone_options=SMALL_MLP,
                    out=str(tmp_path / "r"),
                ),
            ),
            ("head", LogisticRegression(max_iter=500)),
        ]
    )
    model.fit(X, y)
    assert model.predict(X).shape == (160,)
    assert model.named_steps["encoder"].transform(X.iloc[:5]).shape == (5, 16)
    encoder = model.named_steps["encoder"]
    assert encoder.n_features_in_ == 4 and list(encoder.feature_names_in_) == list(X.columns)
    assert model.score(X, y) > 0.5
    refit = clone(model).set_params(encoder__out=str(tmp_path / "r2")).fit(X, y)
    assert refit.named_steps["encoder"].run_.path.name == "r2"


def test_pipeline_on_series_of_different_lengths():
    x, y = make_waves(n_per_class=16, length=32)
    series = [s[:, : 32 - (i % 2) * 6] for i, s in enumerate(x)]
    encoder = SelfSupervisedEncoder(
        "series", epochs=2, backbone_options={"hidden": 8, "out_dim": 16, "depth": 2}
    )
    model = Pipeline([("encoder", encoder), ("head", LogisticRegression(max_iter=500))])
    model.fit(series, y)
    assert model.predict(series).shape == (48,)
    assert encoder.transform(x).shape == (48, 16)


def _fitted_on_a_frame(tmp_path, **options):
    frame = make_table(n=160)
    frame["ref"] = [f"R{i}" for i in range(len(frame))]  # ids: not read, and said so
    X = frame.drop(columns=["y"])
    encoder = SelfSupervisedEncoder(
        "tabular", epochs=1, batch_size=32, backbone_options=SMALL_MLP,
        out=str(tmp_path / "r"), **options,
    )  # fmt: skip
    return encoder, X


def test_a_quiet_fit_still_warns_about_the_data_and_a_shown_one_says_it(tmp_path, capsys):
    encoder, X = _fitted_on_a_frame(tmp_path, show_progress=False)
    with pytest.warns(DataWarning, match="'ref'"):
        encoder.fit(X)
    assert capsys.readouterr().out == ""
    shown, _ = _fitted_on_a_frame(tmp_path / "b")
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)  # printed once, not warned twice
        shown.fit(X)
    out = capsys.readouterr().out
    assert "warning: not read" in out and "'ref'" in out and "ETA" in out


def test_rows_without_names_lists_and_no_rows_read_as_the_fitted_columns(tmp_path):
    encoder, X = _fitted_on_a_frame(tmp_path, show_progress=False)
    with pytest.warns(DataWarning):
        embedded = encoder.fit_transform(X)
    shuffled = X[X.columns[::-1]].assign(other=1.0)  # by name: order and extras do not matter
    np.testing.assert_allclose(encoder.transform(shuffled), embedded, atol=1e-6)
    rows = X.to_numpy()  # objects: numbers and colours
    np.testing.assert_allclose(encoder.transform(rows), embedded, atol=1e-6)
    np.testing.assert_allclose(encoder.transform(rows.tolist()), embedded, atol=1e-6)
    with pytest.raises(ValueError, match="fitted on a DataFrame of 5 columns"):
        encoder.transform(rows[:, :3])
    assert encoder.transform(X.iloc[:0]).shape == (0, 16)
    names = encoder.get_feature_names_out()
    assert len(names) == 16 and names[0] == "selfsupervisedencoder0"
    as_frame = encoder.set_output(transform="pandas").transform(X.iloc[:3])
    assert isinstance(as_frame, pd.DataFrame) and list(as_frame.columns) == list(names)
    listed = SelfSupervisedEncoder(
        "tabular", epochs=1, batch_size=32, backbone_options=SMALL_MLP, show_progress=False
    ).fit(np.random.default_rng(0).normal(size=(64, 3)).tolist())
    assert listed.n_features_in_ == 3 and listed.transform([[0.0, 1.0, 2.0]]).shape == (1, 16)


def test_a_pickled_encoder_outlives_its_folder_and_from_run_reads_one_without_pickle(tmp_path):
    encoder, X = _fitted_on_a_frame(tmp_path, show_progress=False)
    with pytest.warns(DataWarning):
        embedded = encoder.fit_transform(X)
    again = SelfSupervisedEncoder.from_run(encoder.run_.path)
    assert again.modality == "tabular" and again.method == "vime"
    np.testing.assert_allclose(again.transform(X), embedded, atol=1e-6)
    assert again.get_feature_names_out().shape == (16,)
    fresh, _ = _fitted_on_a_frame(tmp_path / "b", show_progress=False)
    with pytest.warns(DataWarning):
        fresh.fit(X)  # pickled before any transform: the table encoding must travel anyway
    saved = copy.deepcopy(fresh)  # the state pickle would carry, copied without loading bytes
    expected = fresh.transform(X)
    shutil.rmtree(fresh.run_.path)
    np.testing.assert_allclose(saved.transform(X), expected, atol=1e-6)
