"""The heads an adapted model puts on embeddings, and how they are fitted: class prototypes,
logistic regression, label propagation; few-shot draws and out-of-fold logits for calibration."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold
from torch import nn

from selfsup.evaluation.fewshot import FEW_SHOT_WEIGHT_DECAY
from selfsup.evaluation.linear import fit_logistic_regression
from selfsup.tools.propagation import NEIGHBOURS, knn_graph, propagated_head

HEADS = ("prototype", "linear", "propagation")
#: The heads fitted on labelled embeddings alone (:func:`fit_head`).
LABELLED_HEADS = ("prototype", "linear")
#: The most unlabelled items the propagation graph holds (a seeded random subset beyond it).
MAX_UNLABELLED = 100_000
CALIBRATIONS = ("temperature", "cv")
#: With fewer labels than this in the smallest class, ``calibration=None`` picks ``cv``.
HELD_OUT_MIN_PER_CLASS = 20
#: The share of each class held out for temperature scaling.
HELD_OUT_FRACTION = 0.2


class EmbeddingHead(nn.Module):
    """Standardize embeddings with fixed statistics, then a linear layer to class logits.

    Args:
        mean: per-feature mean subtracted, shape ``(d,)``.
        std: per-feature standard deviation dividing, shape ``(d,)``.
        weight: ``(classes, d)`` weights.
        bias: ``(classes,)`` biases.

    Example:
        >>> head = EmbeddingHead(torch.zeros(2), torch.ones(2), torch.eye(2), torch.zeros(2))
        >>> head(torch.tensor([[3.0, 1.0]])).tolist()
        [[3.0, 1.0]]
    """

    def __init__(
        self, mean: torch.Tensor, std: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor
    ) -> None:
        super().__init__()
        self.register_buffer("mean", mean.float().clone())
        self.register_buffer("std", std.float().clone())
        self.linear = nn.Linear(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            self.linear.weight.copy_(weight)
            self.linear.bias.copy_(bias)

    def standardize(self, z: torch.Tensor) -> torch.Tensor:
        """Embeddings with the fixed statistics applied."""
        return (z - self.mean) / self.std

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Logits ``(n, classes)`` of embeddings ``(n, d)``."""
        return self.linear(self.standardize(z))


def embedding_statistics(reference: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-feature mean and standard deviation (1 for a constant feature), as in
    :func:`selfsup.evaluation.linear.standardize`."""
    std = reference.std(dim=0)
    return reference.mean(dim=0), torch.where(std > 0, std, torch.ones_like(std))


def fit_head(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    kind: str,
    statistics: tuple[torch.Tensor, torch.Tensor],
    weight_decay: float = FEW_SHOT_WEIGHT_DECAY,
) -> EmbeddingHead:
    """Fit a ``prototype`` or ``linear`` head on labelled embeddings.

    Args:
        embeddings: ``(n, d)`` float32 embeddings of the labelled items.
        labels: ``(n,)`` int64 labels in ``[0, num_classes)``; the prototype head needs every
            class present (a linear head never predicts a class without labels).
        num_classes: number of classes.
        kind: ``prototype`` (nearest class mean) or ``linear`` (logistic regression).
        statistics: the ``(mean, std)`` the head standardizes with.
        weight_decay: the L2 penalty of the linear head.

    Example:
        >>> z = torch.tensor([[0.0, 0.0], [0.0, 2.0], [4.0, 0.0], [4.0, 2.0]])
        >>> stats = (torch.zeros(2), torch.ones(2))
        >>> head = fit_head(z, torch.tensor([0, 0, 1, 1]), 2, "prototype", stats)
        >>> head(torch.tensor([[1.0, 1.0], [3.0, 1.0]])).argmax(1)
        tensor([0, 1])
    """
    if kind not in LABELLED_HEADS:
        raise ValueError(f"unknown head {kind!r}; known: {', '.join(LABELLED_HEADS)}")
    missing = sorted(set(range(num_classes)) - set(labels.tolist()))
    if missing and kind == "prototype":
        raise ValueError(f"classes {missing} have no labelled example")
    mean, std = statistics
    x = (embeddings - mean) / std
    if kind == "prototype":
        prototypes = torch.stack([x[labels == c].mean(dim=0) for c in range(num_classes)])
        weight, bias = 2 * prototypes, -prototypes.square().sum(dim=1)
    else:
        linear = fit_logistic_regression(x, labels, num_classes, weight_decay)
        weight, bias = linear.weight, linear.bias
    return EmbeddingHead(mean, std, weight.detach(), bias.detach())


def _argmax_or_missing(probs: np.ndarray) -> np.ndarray:
    readable = ~np.isnan(probs).any(axis=1)
    out = np.full(len(probs), -1, dtype=np.int64)
    out[readable] = probs[readable].argmax(axis=1)
    return out


def draw_shots(labels: np.ndarray, shots: int, seed: int, classes: list[str]) -> np.ndarray:
    """``shots`` random indices per class (sorted), drawn by a generator seeded with ``seed``.

    Raises:
        ValueError: a class with fewer than ``shots`` items; the message names it.

    Example:
        >>> draw_shots(np.array([0, 1, 0, 1, 0]), 2, 0, ["a", "b"]).size
        4
    """
    rng = np.random.default_rng(seed)
    picks = []
    for code, name in enumerate(classes):
        members = np.flatnonzero(labels == code)
        if len(members) < shots:
            raise ValueError(
                f"class {name!r} has {len(members)} labelled items, fewer than {shots}"
            )
        picks.append(rng.choice(members, shots, replace=False))
    return np.sort(np.concatenate(picks))


def fold_count(labels: np.ndarray, num_classes: int) -> int:
    """The folds of :func:`out_of_fold_logits`: 5, or fewer where a class has fewer labels.

    Example:
        >>> fold_count(np.array([0, 0, 0, 1, 1, 1, 1, 1, 1]), 2)
        3
    """
    return min(5, int(np.bincount(labels, minlength=num_classes).min()))


def out_of_fold_logits(
    embeddings: torch.Tensor,
    labels: np.ndarray,
    num_classes: int,
    fit_on: Callable[[np.ndarray], EmbeddingHead],
    seed: int,
    groups: np.ndarray | None = None,
) -> tuple[np.ndarray, bool]:
    """Logits of each labelled item from ``fit_on(rows)``, a head fitted on the rows outside
    its fold (stratified k-fold, ``k`` = min(5, smallest class count)), and whether the folds
    kept ``groups`` whole (a hospital's patients: each in one fold, where every fold still
    fits on every class; else the rows are split freely)."""
    folds = fold_count(labels, num_classes)
    rows = np.zeros(len(labels))
    splits = []
    if groups is not None and len(set(groups.tolist())) >= folds:
        grouped = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
        splits = list(grouped.split(rows, labels, groups))
        if any(len(np.unique(labels[fit])) < num_classes for fit, _ in splits):
            splits = []  # a fold would hold every patient of a class
    kept_groups = bool(splits)
    if not splits:
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        splits = list(splitter.split(rows, labels))
    logits = np.zeros((len(labels), num_classes))
    for fit, held in splits:
        head = fit_on(fit)
        with torch.no_grad():
            logits[held] = head(embeddings[held]).double().numpy()
    return logits, kept_groups


def propagation_fitter(
    labelled: np.ndarray,
    labels: np.ndarray,
    unlabelled: np.ndarray,
    num_classes: int,
    statistics: tuple[torch.Tensor, torch.Tensor],
    weight_decay: float,
) -> tuple[Callable[[np.ndarray], EmbeddingHead], dict[str, Any]]:
    """The k-NN graph of labelled and unlabelled embeddings, built once, and a function
    fitting the ``propagation`` head on any subset of the labelled rows.

    Args:
        labelled: ``(n, d)`` embeddings of the labelled items; labels: their labels.
        unlabelled: ``(m, d)`` embeddings of unlabelled items (``m >= 1``).
        num_classes: number of classes.
        statistics: the ``(mean, std)`` the head standardizes with (and the graph compares).
        weight_decay: L2 penalty of the logistic regression.

    Returns:
        ``fit_on(rows)`` giving the head fitted from the labels of ``labelled[rows]`` spread
        over all nodes, and a dict the last fit's spreading statistics are written into.
    """
    mean, std = statistics
    nodes = torch.from_numpy(np.concatenate([labelled, unlabelled]).astype(np.float32))
    standardized = (nodes - mean) / std
    graph = knn_graph(standardized, min(NEIGHBOURS, len(nodes) - 1))
    info: dict[str, Any] = {"unlabelled": len(unlabelled), "neighbours": NEIGHBOURS}

    def fit_on(rows: np.ndarray) -> EmbeddingHead:
        layer, spread = propagated_head(
            standardized, rows, labels[rows], num_classes, weight_decay, graph
        )
        info.update(spread)
        return EmbeddingHead(mean, std, layer.weight.detach(), layer.bias.detach())

    return fit_on, info
