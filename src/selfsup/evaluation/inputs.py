"""Turn embeddings and labels given as numpy arrays or torch tensors into checked tensors.

Every evaluation protocol accepts either kind of input; this is the one place that converts
and checks them, so the protocols themselves only ever see float32 embeddings of shape
``(n, d)`` and int64 labels of shape ``(n,)`` on the CPU.

Example:
    >>> import numpy as np
    >>> emb = as_embeddings(np.ones((3, 2)))
    >>> labels = as_labels(np.array([0, 2, 1]), len(emb))
    >>> emb.dtype, labels.dtype, count_classes(labels)
    (torch.float32, torch.int64, 3)
"""

from __future__ import annotations

import numpy as np
import torch

from selfsup.core.memory import in_place_tensor

ArrayLike = np.ndarray | torch.Tensor


def as_embeddings(embeddings: ArrayLike, name: str = "embeddings") -> torch.Tensor:
    """Return embeddings as a float32 CPU tensor of shape ``(n, d)``, detached from any graph.

    Args:
        embeddings: a 2-d numpy array or torch tensor, one row per item.
        name: what to call the input in error messages.

    Returns:
        The embeddings as a float32 tensor (a copy only where a conversion needs one).

    Raises:
        ValueError: the input is not 2-d or holds no row.

    Example:
        >>> as_embeddings(torch.zeros(4, 3, dtype=torch.float64)).dtype
        torch.float32
    """
    # A run's kept embeddings are mapped read-only; no protocol writes into its inputs.
    tensor = in_place_tensor(embeddings).detach().to(device="cpu", dtype=torch.float32)
    if tensor.ndim != 2 or len(tensor) == 0:
        raise ValueError(f"{name} must be a non-empty 2-d array, got shape {tuple(tensor.shape)}")
    return tensor


def as_labels(labels: ArrayLike, length: int, name: str = "labels") -> torch.Tensor:
    """Return integer class labels as an int64 CPU tensor of shape ``(length,)``.

    Args:
        labels: a 1-d numpy array or torch tensor of non-negative integers.
        length: how many labels there must be (the number of embedding rows).
        name: what to call the input in error messages.

    Returns:
        The labels as an int64 tensor.

    Raises:
        ValueError: the labels are not integers, not 1-d, negative, or not ``length`` long.

    Example:
        >>> as_labels(np.array([1, 0], dtype=np.uint8), 2)
        tensor([1, 0])
    """
    tensor = torch.as_tensor(labels).detach().cpu()
    if tensor.is_floating_point() or tensor.is_complex() or tensor.dtype == torch.bool:
        raise ValueError(f"{name} must be integers, got dtype {tensor.dtype}")
    if tensor.shape != (length,):
        raise ValueError(f"{name} must have shape ({length},), got {tuple(tensor.shape)}")
    tensor = tensor.to(torch.int64)
    if (tensor < 0).any():
        raise ValueError(f"{name} must be non-negative")
    return tensor


def count_classes(*labels: torch.Tensor) -> int:
    """Return the number of classes, taken as the largest label over all inputs plus one.

    Args:
        *labels: one or more int64 label tensors (for example the train and test labels).

    Returns:
        ``max label + 1``.

    Example:
        >>> count_classes(torch.tensor([0, 1]), torch.tensor([4]))
        5
    """
    return max(int(part.max()) for part in labels) + 1


def as_labelled_splits(
    train_emb: ArrayLike, train_labels: ArrayLike, test_emb: ArrayLike, test_labels: ArrayLike
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Validate and convert a fit split and a test split of embeddings with labels.

    Example:
        >>> x, y, _, _ = as_labelled_splits([[0.0]], [0], [[1.0]], [0])
        >>> x.shape, y.dtype
        (torch.Size([1, 1]), torch.int64)
    """
    train = as_embeddings(train_emb, "train_emb")
    test = as_embeddings(test_emb, "test_emb")
    y_train = as_labels(train_labels, len(train), "train_labels")
    y_test = as_labels(test_labels, len(test), "test_labels")
    if train.shape[1] != test.shape[1]:
        raise ValueError(f"train_emb has dimension {train.shape[1]}, test_emb {test.shape[1]}")
    return train, y_train, test, y_test
