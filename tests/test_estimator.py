"""The scikit-learn estimator: clone, get/set params, pipelines on tables and series."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from tests.modalities.series.conftest import make_waves
from tests.modalities.tabular.conftest import make_table

from selfsup import SelfSupervisedEncoder

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
    assert model.named_steps["encoder"].n_features_in_ == 5  # a, b, noise, a (missing), color
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
