"""Label propagation: the graph, the spreading, the pseudo-label weights, and the head."""

import numpy as np
import pytest
import torch

from selfsup.evaluation.linear import fit_logistic_regression
from selfsup.tools.adapt import adapt
from selfsup.tools.propagation import (
    knn_graph,
    label_spreading,
    propagated_head,
    pseudo_labels,
)


def test_knn_graph_is_symmetric_normalized_and_skips_the_item_itself() -> None:
    x = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [-1.0, 0.1]])
    s = knn_graph(x, k=1, power=1.0).toarray()
    assert np.allclose(s, s.T) and np.all(np.diag(s) == 0)
    # By hand: nearest neighbours 0->1, 1->0 (cos 0.8 against 0.6), 2->1 (0.6), 3->2 (~0.1).
    cos = lambda a, b: float(torch.nn.functional.cosine_similarity(x[a], x[b], dim=0))  # noqa: E731
    w = np.zeros((4, 4))
    w[0, 1] = w[1, 0] = cos(0, 1)
    w[2, 1] = cos(2, 1)
    w[3, 2] = cos(3, 2)
    w = w + w.T
    d = 1 / np.sqrt(w.sum(1))
    assert np.allclose(s, d[:, None] * w * d[None, :], atol=1e-6)
    with pytest.raises(ValueError, match="k < 4"):
        knn_graph(x, k=4)


def test_one_iteration_of_label_spreading_by_hand() -> None:
    s = knn_graph(torch.tensor([[1.0, 0.0], [0.9, 0.3], [0.3, 0.9], [0.0, 1.0]]), k=1)
    y = np.zeros((4, 2))
    y[0, 0] = y[3, 1] = 1.0
    f = 0.5 * (s @ y) + 0.5 * y
    f = f / f.sum(axis=0, keepdims=True)
    ours = label_spreading(s, np.array([0, 3]), np.array([0, 1]), 2, alpha=0.5, iterations=1)
    assert np.allclose(ours, f)
    with pytest.raises(ValueError, match="alpha"):
        label_spreading(s, np.array([0]), np.array([0]), 2, alpha=1.0)


def test_pseudo_label_weights_are_certainty_over_class_size() -> None:
    scores = np.array([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4], [0.0, 0.0]])
    pseudo, weights = pseudo_labels(scores, np.array([1]), np.array([0]))
    assert pseudo.tolist() == [0, 0, 0, 0]  # labelled row 1 keeps its label; row 3 argmax 0
    entropy = lambda p: -(p * np.log(p)).sum() / np.log(2)  # noqa: E731
    expected = [1 - entropy(np.array([0.8, 0.2])), 1.0, 1 - entropy(np.array([0.6, 0.4])), 0.0]
    assert np.allclose(weights, np.array(expected) / 4)


def test_zero_weights_drop_examples_and_integer_weights_repeat_them() -> None:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(40, 3, generator=g), torch.randint(0, 3, (40,), generator=g)
    w = torch.ones(40)
    w[30:] = 0
    dropped = fit_logistic_regression(x[:30], y[:30], 3, 1e-2, max_iter=500)
    weighted = fit_logistic_regression(x, y, 3, 1e-2, max_iter=500, sample_weight=w)
    assert torch.allclose(dropped.weight, weighted.weight, atol=1e-4)
    w = torch.ones(40)
    w[:5] = 2
    repeated = fit_logistic_regression(torch.cat([x, x[:5]]), torch.cat([y, y[:5]]), 3, 1e-2,
                                       max_iter=500)  # fmt: skip
    weighted = fit_logistic_regression(x, y, 3, 1e-2, max_iter=500, sample_weight=w)
    assert torch.allclose(repeated.weight, weighted.weight, atol=1e-4)
    with pytest.raises(ValueError, match="non-negative"):
        fit_logistic_regression(x, y, 3, 1e-2, sample_weight=-w)


def test_spreading_along_two_bars_fixes_what_two_labels_get_wrong() -> None:
    # Two parallel bars, one label at opposite ends of each: a linear fit on the two labels
    # alone cuts across the bars; spreading along them labels every point correctly.
    rng = np.random.default_rng(0)
    along = rng.uniform(0, 10, 400)
    labels = np.repeat([0, 1], 200)
    points = np.stack([along, 2.0 * labels + rng.normal(0, 0.2, 400), np.full(400, 20.0)], 1)
    points[0, :2], points[399, :2] = (0.0, 0.0), (10.0, 2.0)
    z = torch.from_numpy(points).float()
    labelled, given = np.array([0, 399]), np.array([0, 1])
    alone = fit_logistic_regression(z[labelled] - z.mean(0), torch.from_numpy(given), 2, 1e-3)
    with torch.no_grad():
        accuracy_alone = (alone(z - z.mean(0)).argmax(1).numpy() == labels).mean()
    layer, info = propagated_head(z, labelled, given, 2, 1e-3)
    with torch.no_grad():
        accuracy = (layer(z).argmax(1).numpy() == labels).mean()
    assert info["reached"] == 1.0
    assert accuracy_alone < 0.8 and accuracy > 0.97


def test_adapt_with_propagation_uses_the_unlabelled_items(clusters_run, clusters_data,
                                                          tmp_path) -> None:  # fmt: skip
    train, test = clusters_data
    model = adapt(clusters_run, str(test), head="propagation", unlabeled=str(train))
    # Every test item is labelled (no shots drawn), the 256 training images are the unlabelled.
    assert model.metrics["propagation"]["unlabelled"] == 256
    assert model.metrics["labelled"] == 64 and model.metrics["weight_decay"] is not None
    labels = np.load(train)["y"]
    assert (model.predict(str(train)) == labels).mean() > 0.5  # four classes: chance is 0.25
    with pytest.raises(ValueError, match="needs unlabelled items"):
        adapt(clusters_run, str(test), head="propagation")
    with pytest.raises(ValueError, match="frozen embeddings"):
        adapt(clusters_run, str(train), shots=8, head="propagation", finetune_blocks=1)
