"""A scikit-learn estimator: self-supervised pretraining as ``fit``, embedding as ``transform``.

``SelfSupervisedEncoder`` follows scikit-learn's conventions (parameters stored as given in
``__init__``, learned state in attributes ending in ``_``), so it works with ``clone``,
``get_params``/``set_params``, ``Pipeline``, grid search and ``set_output``. ``fit`` ignores
``y``: the encoder learns from the inputs alone, and a downstream estimator in the pipeline uses
the labels.

``fit`` prints what the command line prints (the data read, columns left out, progress with its
ETA) unless ``show_progress=False``; a warning about the data (a column of ids not read, codes
read as quantities) then comes as a :class:`~selfsup.data.base.DataWarning`. A fitted estimator
pickles whole (its run's table encoding travels with it), and :meth:`from_run` rebuilds one from
a run folder without pickle: from ``out=`` or a run trained by ``selfsup pretrain``.

Example:
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.pipeline import make_pipeline
    >>> rng = np.random.default_rng(0)
    >>> X, y = rng.normal(size=(64, 5)), rng.integers(0, 2, 64)
    >>> model = make_pipeline(
    ...     SelfSupervisedEncoder("tabular", epochs=1, batch_size=32, show_progress=False,
    ...                           backbone_options={"hidden": 16, "depth": 2}),
    ...     LogisticRegression(),
    ... )
    >>> model.fit(X, y).predict(X).shape
    (64,)
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from selfsup.data.base import Source
from selfsup.modalities import get_modality, open_source


class SelfSupervisedEncoder(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Pretrain a self-supervised encoder on ``X`` and transform inputs to embeddings.

    Args:
        modality: ``tabular`` (a DataFrame, a 2-d array or a list of rows) or ``series`` (an array
            ``(n, length)`` or ``(n, channels, length)``, NaN where absent, or a list of
            ``(channels, length_i)`` arrays of different lengths).
        method: the objective (default ``vime`` for tables, ``ts2vec`` for series).
        backbone: the backbone name (default ``mlp`` / ``ts2vec``).
        backbone_options: options of the backbone (``hidden``, ``depth``, ``out_dim``...).
        method_options: hyperparameters of the method.
        epochs: passes over the data (default 100 unless ``time_budget`` is set).
        time_budget: minutes of training.
        batch_size: rows or series per step (default 256 for tables, 8 for series).
        lr: peak learning rate.
        categorical_columns: table columns to treat as categorical.
        seed: random seed.
        out: the run folder (a fresh temporary folder by default); it must not hold a run.
        show_progress: print the data read, progress and its ETA while fitting, as
            ``selfsup pretrain`` does (a bar on a terminal, a line every few seconds in a
            notebook, a pipe or a log).

    Attributes:
        run_: the fitted :class:`selfsup.run.Run` (its folder holds the encoder).
        n_features_in_: columns of the tables (time steps of the series) seen in ``fit``.
        feature_names_in_: the columns of a DataFrame seen in ``fit``; later DataFrames are
            read by these names, in any order, other columns ignored.
    """

    def __init__(
        self,
        modality: str = "tabular",
        method: str | None = None,
        backbone: str | None = None,
        backbone_options: dict[str, Any] | None = None,
        method_options: dict[str, Any] | None = None,
        epochs: int | None = None,
        time_budget: float | None = None,
        batch_size: int | None = None,
        lr: float | None = None,
        categorical_columns: list[str] | None = None,
        seed: int = 0,
        out: str | None = None,
        show_progress: bool = True,
    ) -> None:
        self.modality = modality
        self.method = method
        self.backbone = backbone
        self.backbone_options = backbone_options
        self.method_options = method_options
        self.epochs = epochs
        self.time_budget = time_budget
        self.batch_size = batch_size
        self.lr = lr
        self.categorical_columns = categorical_columns
        self.seed = seed
        self.out = out
        self.show_progress = show_progress

    def _source(self, X: Any, fitted: bool) -> Source:
        if isinstance(X, Source):
            return X
        if get_modality(self.modality).items_are_rows:
            X = self._rows(X, fitted)
        data = X if isinstance(X, (pd.DataFrame, list)) else np.asarray(X)
        if fitted:  # read as in training (a table's fitted encoding)
            return self.run_.open(data)
        return open_source(data, self.modality, categorical_columns=self.categorical_columns)

    def _rows(self, X: Any, fitted: bool) -> pd.DataFrame | np.ndarray:
        """A table as scikit-learn reads one: a list of rows is an array; ``fit`` notes its
        columns; ``transform`` reads a DataFrame's columns by name (in any order, others
        ignored) and rows without names positionally, as the columns ``fit`` saw."""
        if isinstance(X, list):
            X = np.asarray(X, dtype=object)
        if not fitted:
            validate_data(self, X, reset=True, skip_check_array=True)
            return X
        names = getattr(self, "feature_names_in_", None)
        if names is None or isinstance(X, pd.DataFrame):
            return X
        X = np.asarray(X, dtype=object)
        if X.ndim != 2 or X.shape[1] != len(names):
            shown = ", ".join(map(str, names[:4])) + (", ..." if len(names) > 4 else "")
            raise ValueError(
                f"rows of shape {X.shape[1:]}, but the encoder was fitted on a DataFrame of "
                f"{len(names)} columns ({shown}): give a DataFrame with those columns"
            )
        return pd.DataFrame(X, columns=names).infer_objects()

    def fit(self, X: Any, y: Any = None) -> SelfSupervisedEncoder:
        """Pretrain on ``X`` (``y`` is ignored: the encoder learns without labels)."""
        from selfsup.run import pretrain

        source = self._source(X, fitted=False)
        options = {
            "method": self.method,
            "backbone": self.backbone,
            "backbone_options": self.backbone_options or {},
            "method_options": self.method_options or {},
            "epochs": self.epochs,
            "time_budget": self.time_budget,
            "batch_size": self.batch_size,
            "lr": self.lr,
            "seed": self.seed,
        }
        out = self.out or tempfile.mkdtemp(prefix="selfsup-")
        self.run_ = pretrain(
            source,
            out=out,
            show_progress=self.show_progress,
            **{k: v for k, v in options.items() if v is not None},
        )
        _ = self.run_.data_options  # read now, so a pickle of the estimator carries it
        if not get_modality(self.modality).items_are_rows:  # series: their length
            self.n_features_in_ = int(source.first_item().shape[-1])
        self._n_features_out = self.run_.encoder.feature_dim
        return self

    def transform(self, X: Any) -> np.ndarray:
        """Embeddings ``(n, feature_dim)`` of ``X``, in input order (no rows: ``(0,
        feature_dim)``)."""
        check_is_fitted(self, "run_")
        if len(X) == 0:
            return np.zeros((0, self._n_features_out), np.float32)
        shown = "auto" if self.show_progress else False  # a long embedding is not silent
        return self.run_.embed(self._source(X, fitted=True), show_progress=shown)

    @classmethod
    def from_run(cls, path: str | os.PathLike) -> SelfSupervisedEncoder:
        """A fitted estimator from a run folder (``out=`` of an earlier fit, or a run of
        ``selfsup pretrain``), read without pickle; ``transform`` reads data as the run did.
        In cross-validation, wrap it in ``sklearn.frozen.FrozenEstimator``: a refit would
        write a new run into ``path``, which holds one already, and stops with that.

        Example:
            >>> import tempfile
            >>> rows = np.random.default_rng(0).normal(size=(64, 3))
            >>> fitted = SelfSupervisedEncoder("tabular", epochs=1, show_progress=False,
            ...                                out=tempfile.mkdtemp() + "/run").fit(rows)
            >>> again = SelfSupervisedEncoder.from_run(fitted.run_.path)
            >>> bool(np.allclose(again.transform(rows), fitted.transform(rows), atol=1e-6))
            True
        """
        from selfsup.run import load

        run = load(path)
        estimator = cls(run.modality.name, method=run.config.get("method"), out=str(path))
        estimator.run_ = run
        estimator._n_features_out = run.encoder.feature_dim
        return estimator
