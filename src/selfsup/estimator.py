"""A scikit-learn estimator: self-supervised pretraining as ``fit``, embedding as ``transform``.

``SelfSupervisedEncoder`` follows scikit-learn's conventions (parameters stored as given in
``__init__``, learned state in attributes ending in ``_``), so it works with ``clone``,
``get_params``/``set_params``, ``Pipeline`` and grid search. ``fit`` ignores ``y``: the encoder
learns from the inputs alone, and a downstream estimator in the pipeline uses the labels.

Example:
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.pipeline import make_pipeline
    >>> rng = np.random.default_rng(0)
    >>> X, y = rng.normal(size=(64, 5)), rng.integers(0, 2, 64)
    >>> model = make_pipeline(
    ...     SelfSupervisedEncoder("tabular", epochs=1, batch_size=32,
    ...                           backbone_options={"hidden": 16, "depth": 2}),
    ...     LogisticRegression(),
    ... )
    >>> model.fit(X, y).predict(X).shape
    (64,)
"""

from __future__ import annotations

import tempfile
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from selfsup.data.base import Source
from selfsup.modalities import open_source


class SelfSupervisedEncoder(TransformerMixin, BaseEstimator):
    """Pretrain a self-supervised encoder on ``X`` and transform inputs to embeddings.

    Args:
        modality: ``tabular`` (a DataFrame or a 2-d array of rows) or ``series`` (an array
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
        out: the run folder (a fresh temporary folder by default).
        show_progress: draw a progress bar while fitting.

    Attributes:
        run_: the fitted :class:`selfsup.run.Run` (its folder holds the encoder).
        n_features_in_: columns (tables) or time steps (series) seen in ``fit``.
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
        show_progress: bool = False,
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
        data = X if isinstance(X, (pd.DataFrame, list)) else np.asarray(X)
        if fitted:  # read as in training (a table's fitted encoding)
            return self.run_.open(data)
        return open_source(data, self.modality, categorical_columns=self.categorical_columns)

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
        self.n_features_in_ = int(source.first_item().shape[-1])
        return self

    def transform(self, X: Any) -> np.ndarray:
        """Embeddings ``(n, feature_dim)`` of ``X``, in input order."""
        check_is_fitted(self, "run_")
        return self.run_.embed(self._source(X, fitted=True))
