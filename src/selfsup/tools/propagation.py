"""Label propagation: spread a few labels over a k-NN graph of unlabelled embeddings.

Label spreading (Zhou et al., "Learning with Local and Global Consistency", NeurIPS 2004) on
the mutual k-NN graph of the embeddings, in the form Iscen et al. use to pseudo-label data for
deep semi-supervised learning ("Label Propagation for Deep Semi-supervised Learning", CVPR
2019):

1. affinities ``w_ij = max(0, cos(z_i, z_j)) ** power`` to each item's ``k`` nearest
   neighbours, made symmetric (``W + W^T``) and normalized, ``S = D^-1/2 W D^-1/2``;
2. the iteration ``F <- alpha S F + (1 - alpha) Y`` from ``F = Y``, the one-hot labels of the
   labelled items (zero rows elsewhere), then each class column divided by its total;
3. every item gets the pseudo-label ``argmax F_i`` and a weight: the certainty
   ``1 - H(F_i) / log C`` of its normalized row (Iscen et al., Eq. 11) divided by the number
   of items with its pseudo-label (the class balancing of their Eq. 12). Labelled items keep
   their own label, with certainty 1.

:func:`propagated_head` then fits the weighted multinomial logistic regression of
:func:`selfsup.evaluation.linear.fit_logistic_regression` on all items: an ordinary linear head
on embeddings, which predicts new items without the graph.

Example:
    >>> g = torch.Generator().manual_seed(0)
    >>> centres = torch.tensor([[4.0, 0.0], [-4.0, 0.0]])
    >>> z = torch.cat([centres[0] + torch.randn(50, 2, generator=g),
    ...                centres[1] + torch.randn(50, 2, generator=g)])
    >>> scores = label_spreading(knn_graph(z, k=5), np.array([0, 50]), np.array([0, 1]), 2)
    >>> float((scores.argmax(1) == np.repeat([0, 1], 50)).mean())
    1.0
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from selfsup.core.neighbours import cosine_topk
from selfsup.evaluation.linear import fit_logistic_regression

#: Neighbours per item in the graph.
NEIGHBOURS = 10
#: Exponent applied to the cosine affinities (Iscen et al. use 3).
POWER = 3.0
#: Weight of the graph against the labels in the iteration (Zhou et al. and Iscen et al.).
ALPHA = 0.99
#: Iterations of ``F <- alpha S F + (1 - alpha) Y``.
ITERATIONS = 40


def knn_graph(
    embeddings: torch.Tensor, k: int = NEIGHBOURS, power: float = POWER, chunk: int = 2048
) -> sp.csr_matrix:
    """The normalized affinity matrix ``S`` of the symmetric k-NN graph, by cosine similarity.

    Args:
        embeddings: ``(n, d)`` float embeddings (standardize them first where features have
            different scales); the graph compares their directions.
        k: neighbours per item (itself excluded), at most ``n - 1``.
        power: exponent of the non-negative cosine affinities.
        chunk: rows compared at once (memory is ``chunk * n`` floats).

    Returns:
        A sparse ``(n, n)`` matrix ``D^-1/2 (W + W^T) D^-1/2``.

    Example:
        >>> s = knn_graph(torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]]), k=1)
        >>> s.shape, bool(abs(s - s.T).max() < 1e-6)
        ((3, 3), True)
    """
    n = len(embeddings)
    if not 1 <= k < n:
        raise ValueError(f"the graph needs 1 <= k < {n} items, got k={k}")
    top, where = cosine_topk(embeddings, embeddings, k, exclude_self=True, chunk=chunk)
    weights = top.clamp_min(0).pow(power).flatten().double().numpy()
    rows = np.repeat(np.arange(n), k)
    w = sp.csr_matrix((weights, (rows, where.flatten().numpy())), shape=(n, n))
    w = w + w.T
    degree = np.asarray(w.sum(axis=1)).ravel()
    scale = sp.diags(1.0 / np.sqrt(np.maximum(degree, 1e-12)))
    return (scale @ w @ scale).tocsr()


def label_spreading(
    graph: sp.csr_matrix,
    labelled: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    alpha: float = ALPHA,
    iterations: int = ITERATIONS,
) -> np.ndarray:
    """Class scores ``(n, num_classes)`` of every node, spread from the labelled nodes.

    Args:
        graph: the normalized affinities from :func:`knn_graph`.
        labelled: node indices of the labelled items.
        labels: their labels in ``[0, num_classes)``.
        num_classes: number of classes.
        alpha: weight of the neighbours against the item's own label, in ``(0, 1)``.
        iterations: iterations of ``F <- alpha S F + (1 - alpha) Y``.

    Returns:
        The scores with each class column divided by its total (Iscen et al.'s
        normalization, which keeps a class with many labelled items from taking over).

    Example:
        >>> chain = knn_graph(torch.tensor([[1.0, 0.0], [0.9, 0.2], [0.2, 0.9], [0.0, 1.0]]), k=1)
        >>> label_spreading(chain, np.array([0, 3]), np.array([0, 1]), 2).argmax(1).tolist()
        [0, 0, 1, 1]
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    seeds = np.zeros((graph.shape[0], num_classes))
    seeds[np.asarray(labelled), np.asarray(labels)] = 1.0
    scores = seeds.copy()
    for _ in range(iterations):
        scores = alpha * (graph @ scores) + (1 - alpha) * seeds
    return scores / np.maximum(scores.sum(axis=0, keepdims=True), 1e-12)


def pseudo_labels(
    scores: np.ndarray, labelled: np.ndarray, labels: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Pseudo-labels and their weights (certainty over class size) from spread scores.

    Returns:
        ``(pseudo, weights)``: ``argmax`` of each row (the given label on labelled nodes), and
        ``(1 - H(p_i) / log C) / |{j: pseudo_j = pseudo_i}|`` with ``p_i`` the row normalized
        to sum 1 (certainty 1 on labelled nodes, 0 on a node no label reached).

    Example:
        >>> scores = np.array([[0.9, 0.1], [0.5, 0.5], [0.0, 1.0]])
        >>> pseudo, weights = pseudo_labels(scores, np.array([2]), np.array([1]))
        >>> pseudo.tolist(), weights.round(3).tolist()
        ([0, 0, 1], [0.266, 0.0, 1.0])
    """
    num_classes = scores.shape[1]
    totals = scores.sum(axis=1, keepdims=True)
    reached = totals[:, 0] > 0
    p = np.where(reached[:, None], scores / np.where(totals > 0, totals, 1.0), 1.0 / num_classes)
    entropy = -(p * np.log(np.clip(p, 1e-12, None))).sum(axis=1)
    certainty = np.clip(1.0 - entropy / np.log(num_classes), 0.0, 1.0)
    pseudo = scores.argmax(axis=1)
    pseudo[labelled] = labels
    certainty[labelled] = 1.0
    sizes = np.bincount(pseudo, minlength=num_classes)
    return pseudo, certainty / sizes[pseudo]


def propagated_head(
    standardized: torch.Tensor,
    labelled: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    weight_decay: float,
    graph: sp.csr_matrix | None = None,
) -> tuple[torch.nn.Linear, dict[str, float]]:
    """Logistic regression on all items, labelled by spreading ``labels`` over the graph.

    Args:
        standardized: ``(n, d)`` standardized embeddings of every node (labelled and not).
        labelled: node indices with a label; labels: their labels.
        num_classes: number of classes.
        weight_decay: L2 penalty of the logistic regression.
        graph: the nodes' :func:`knn_graph` (built here when None; pass it to reuse it).

    Returns:
        The fitted linear layer on standardized embeddings, and what the spreading did:
        ``reached`` (share of nodes some label reached) and ``mean_certainty``.

    Example:
        >>> z = torch.cat([torch.randn(30, 3) + 5, torch.randn(30, 3) - 5])
        >>> layer, info = propagated_head(z, np.array([0, 30]), np.array([0, 1]), 2, 1e-3)
        >>> layer(z).argmax(1).tolist() == [0] * 30 + [1] * 30
        True
    """
    if graph is None:
        graph = knn_graph(standardized, min(NEIGHBOURS, len(standardized) - 1))
    scores = label_spreading(graph, labelled, labels, num_classes)
    pseudo, weights = pseudo_labels(scores, labelled, labels)
    layer = fit_logistic_regression(
        standardized,
        torch.from_numpy(pseudo),
        num_classes,
        weight_decay,
        sample_weight=torch.from_numpy(weights).float(),
    )
    certainty = weights * np.bincount(pseudo, minlength=num_classes)[pseudo]
    info = {
        "reached": float((scores.sum(axis=1) > 0).mean()),
        "mean_certainty": float(certainty.mean()),
    }
    return layer, info
