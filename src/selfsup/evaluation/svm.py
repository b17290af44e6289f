"""The SVM protocol of TS2Vec (Yue et al. 2022): an RBF support vector machine on frozen
whole-series representations, its C chosen by a 5-fold grid search on the train labels.

As in the paper's code: when there are fewer than 50 training items or fewer than five per
class, no search is possible and a hard-margin SVM (C = infinity) is fitted; training sets above
10,000 items are subsampled (stratified) for the search.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat([0, 1], 40)
    >>> x = rng.normal(size=(80, 3)) + 8 * y[:, None]
    >>> svm_accuracy(x, y, x, y)
    1.0
"""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.svm import SVC

from selfsup.evaluation.inputs import ArrayLike, as_labelled_splits

#: The grid of TS2Vec's code; infinity is a hard margin.
C_GRID = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1e3, 1e4, np.inf)
MAX_SEARCH_ITEMS = 10_000


def fit_svm(features: np.ndarray, labels: np.ndarray, seed: int = 0) -> SVC:
    """An RBF SVM fitted as TS2Vec's evaluation fits it (see the module docstring)."""
    classes, counts = np.unique(labels, return_counts=True)
    svm = SVC(C=np.inf, gamma="scale")
    if len(labels) < 50 or len(labels) // len(classes) < 5 or counts.min() < 5:
        return svm.fit(features, labels)
    if len(labels) > MAX_SEARCH_ITEMS:
        features, _, labels, _ = train_test_split(
            features, labels, train_size=MAX_SEARCH_ITEMS, random_state=seed, stratify=labels
        )
    search = GridSearchCV(svm, {"C": list(C_GRID)}, cv=5, n_jobs=1)
    return search.fit(features, labels).best_estimator_


def svm_accuracy(
    train_emb: ArrayLike,
    train_labels: ArrayLike,
    test_emb: ArrayLike,
    test_labels: ArrayLike,
    seed: int = 0,
) -> float:
    """Test accuracy of :func:`fit_svm` fitted on the train split."""
    x, y, xt, yt = (
        t.numpy() for t in as_labelled_splits(train_emb, train_labels, test_emb, test_labels)
    )
    model = fit_svm(x.astype(np.float64), y, seed)
    return float((model.predict(xt.astype(np.float64)) == yt).mean())
