"""Weighted k-nearest-neighbour classification on frozen embeddings.

The protocol of InstDisc (Wu et al., "Unsupervised Feature Learning via Non-Parametric
Instance Discrimination", CVPR 2018), used since by DINO and most self-supervised papers:
for a test embedding, take the ``k`` train embeddings of highest cosine similarity ``s_i``,
give each the weight ``exp(s_i / T)``, sum the weights per class and predict the class with
the largest sum.

Example:
    >>> import torch
    >>> train = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    >>> test = torch.tensor([[2.0, 0.1], [0.1, 3.0]])
    >>> knn_accuracy(train, torch.tensor([0, 1]), test, torch.tensor([0, 1]), k=1)
    1.0
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from selfsup.core.neighbours import cosine_topk
from selfsup.evaluation.inputs import ArrayLike, as_embeddings, as_labels, count_classes


def knn_predict(
    train_emb: ArrayLike,
    train_labels: ArrayLike,
    test_emb: ArrayLike,
    k: int = 20,
    temperature: float = 0.07,
    batch_size: int = 1024,
) -> torch.Tensor:
    """Predict a label for every test embedding by temperature-weighted kNN voting.

    The test set is processed ``batch_size`` rows at a time, so memory holds at most a
    ``(batch_size, n_train)`` similarity matrix.

    Args:
        train_emb: train embeddings, shape ``(n_train, d)``, numpy or torch.
        train_labels: integer train labels, shape ``(n_train,)``.
        test_emb: test embeddings, shape ``(n_test, d)``.
        k: number of neighbours; at most ``n_train``.
        temperature: the ``T`` of the vote weight ``exp(s / T)``; a large value approaches
            plain majority voting, a small one the single nearest neighbour.
        batch_size: number of test rows compared with the train set at once.

    Returns:
        The predicted labels, an int64 tensor of shape ``(n_test,)``. Ties between classes
        go to the smaller label.

    Raises:
        ValueError: ``k`` is not in ``[1, n_train]``, ``temperature`` or ``batch_size`` is not
            positive, or the inputs have the wrong shapes.

    Example:
        >>> train = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
        >>> knn_predict(train, torch.tensor([0, 0, 1]), torch.tensor([[0.2, 1.0]]), k=3)
        tensor([1])
    """
    # Not normalized here: the search scales by the norms (no copies of large embeddings).
    train = as_embeddings(train_emb, "train_emb")
    test = as_embeddings(test_emb, "test_emb")
    labels = as_labels(train_labels, len(train), "train_labels")
    if train.shape[1] != test.shape[1]:
        raise ValueError(f"train_emb has dimension {train.shape[1]}, test_emb {test.shape[1]}")
    if not 1 <= k <= len(train):
        raise ValueError(f"k must be in [1, {len(train)}] (the train size), got {k}")
    if temperature <= 0 or batch_size <= 0:
        raise ValueError("temperature and batch_size must be positive")
    num_classes = count_classes(labels)

    top_sim, top_idx = cosine_topk(test, train, k, chunk=batch_size)
    return _vote(top_sim, labels[top_idx], num_classes, temperature)


def _vote(
    top_sim: torch.Tensor, top_labels: torch.Tensor, num_classes: int, temperature: float
) -> torch.Tensor:
    """Each row's class by the weights ``exp(s / T)`` of its neighbours' labels summed."""
    # Subtracting each row's largest similarity scales that row's weights by one constant,
    # so the vote is unchanged while exp() cannot overflow at small T.
    weights = ((top_sim - top_sim[:, :1]) / temperature).exp()
    votes = torch.zeros(len(top_sim), num_classes)
    votes.scatter_add_(1, top_labels, weights)
    return votes.argmax(dim=1)


def knn_accuracy(
    train_emb: ArrayLike,
    train_labels: ArrayLike,
    test_emb: ArrayLike,
    test_labels: ArrayLike,
    k: int = 20,
    temperature: float = 0.07,
    batch_size: int = 1024,
) -> float:
    """Return the fraction of test embeddings whose weighted kNN vote gives their label.

    See :func:`knn_predict` for the vote; the arguments are the same plus ``test_labels``.
    A class that appears only among the test labels is never predicted, so its examples
    count as errors.

    Args:
        train_emb: train embeddings, shape ``(n_train, d)``, numpy or torch.
        train_labels: integer train labels, shape ``(n_train,)``.
        test_emb: test embeddings, shape ``(n_test, d)``.
        test_labels: integer test labels, shape ``(n_test,)``.
        k: number of neighbours; at most ``n_train``.
        temperature: the ``T`` of the vote weight ``exp(s / T)``.
        batch_size: number of test rows compared with the train set at once.

    Returns:
        Top-1 accuracy in ``[0, 1]``.

    Raises:
        ValueError: as :func:`knn_predict`, or ``test_labels`` has the wrong shape.

    Example:
        >>> train = torch.eye(3)
        >>> round(knn_accuracy(train, torch.arange(3), train, torch.tensor([0, 1, 0]), k=1), 4)
        0.6667
    """
    predicted = knn_predict(train_emb, train_labels, test_emb, k, temperature, batch_size)
    labels = as_labels(test_labels, len(predicted), "test_labels")
    return (predicted == labels).float().mean().item()


def knn_leave_one_out(
    emb: ArrayLike,
    labels: ArrayLike,
    k: int = 20,
    temperature: float = 0.07,
    groups: Sequence[object] | np.ndarray | None = None,
) -> float:
    """The accuracy of the weighted kNN vote (:func:`knn_predict`) predicting each item from
    all the others: the score a few labelled items give without a split of their own
    (``k`` is lowered to the items but one).

    An item is left out by its row, not by its similarity: a copy of it elsewhere among the
    items still votes, as it would for a new item. With ``groups`` (each item's recording,
    patient, image: ``Source.split_groups``), an item is voted by the items of other groups
    only, as ``evaluate``'s split by group scores it: the other clips of a call are near
    copies of it and would make the vote a measure of memory (``k`` is lowered to the items
    outside the largest group).

    Raises:
        ValueError: fewer than two items, all of one group, or the inputs have the wrong
            shapes.

    Example:
        >>> emb = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9], [0.8, 0.3]])
        >>> round(knn_leave_one_out(emb, torch.tensor([0, 0, 1, 1, 1]), k=1), 4)
        0.8
        >>> round(knn_leave_one_out(emb, torch.tensor([0, 0, 1, 1, 1]), k=1,
        ...                         groups=["a", "a", "b", "b", "c"]), 4)
        0.4
    """
    items = as_embeddings(emb, "emb")
    codes = as_labels(labels, len(items), "labels")
    if len(items) < 2:
        raise ValueError(f"leave-one-out needs two items at least, got {len(items)}")
    if groups is None:
        k = min(k, len(items) - 1)
        top_sim, top_idx = cosine_topk(items, items, k, exclude_self=True)
    else:
        top_sim, top_idx = _other_groups_topk(items, np.asarray(groups, dtype=object), k)
    predicted = _vote(top_sim, codes[top_idx], count_classes(codes), temperature)
    return (predicted == codes).float().mean().item()


def _other_groups_topk(
    items: torch.Tensor, groups: np.ndarray, k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each item's ``k`` most cosine-similar items of other groups (``k`` lowered to the
    items outside the largest group): the search asks for as many more as the largest group
    holds, and each row keeps the first ``k`` found outside its own group."""
    if len(groups) != len(items):
        raise ValueError(f"groups has {len(groups)} entries for {len(items)} items")
    _, code, sizes = np.unique(groups.astype(str), return_inverse=True, return_counts=True)
    if len(sizes) < 2:
        raise ValueError("leave-one-out by group needs items of two groups at least")
    k = min(k, len(items) - int(sizes.max()))
    wanted = k + int(sizes.max()) - 1  # the rest of an item's group can come first
    top_sim, top_idx = cosine_topk(items, items, wanted, exclude_self=True)
    owner = torch.from_numpy(code.astype(np.int64))
    same = owner[top_idx] == owner[:, None]
    # A stable sort of "same group" keeps the others first, in the order of similarity.
    order = torch.sort(same.to(torch.uint8), dim=1, stable=True).indices[:, :k]
    return top_sim.gather(1, order), top_idx.gather(1, order)
