"""Few-shot linear evaluation: logistic regression on a handful of labels per class.

Each draw samples ``shots`` labelled train embeddings per class, fits the linear probe's
logistic regression (:func:`selfsup.evaluation.linear.fit_logistic_regression`) on them and
scores the whole test split; the result is the mean accuracy over draws with a 95%
confidence interval from the t-distribution. This is the low-shot linear evaluation of MSN
(Assran et al., "Masked Siamese Networks for Label-Efficient Learning", ECCV 2022). With so
few labels there is nothing to hold out for choosing the weight decay, so it is fixed at
:data:`FEW_SHOT_WEIGHT_DECAY`. Embeddings are standardized with the statistics of all train
embeddings, which uses no label.

Example:
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> labels = torch.arange(200) % 2
    >>> emb = torch.randn(200, 4, generator=g) + 4 * labels[:, None]
    >>> result = few_shot(emb, labels, emb, labels, shots=5, draws=3)
    >>> len(result.accuracies), result.mean > 0.9
    (3, True)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy import stats

from selfsup.evaluation.inputs import (
    ArrayLike,
    as_labelled_splits,
    count_classes,
)
from selfsup.evaluation.linear import fit_logistic_regression, standardize

FEW_SHOT_WEIGHT_DECAY = 1e-3
"""The L2 penalty of every few-shot fit (the middle of the linear probe's default grid)."""


@dataclass
class FewShotResult:
    """What :func:`few_shot` measured.

    Attributes:
        shots: labelled examples per class in each draw.
        mean: mean test accuracy over the draws.
        ci95: half-width of the 95% confidence interval of ``mean`` (t-distribution).
        accuracies: the test accuracy of each draw, in order.
    """

    shots: int
    mean: float
    ci95: float
    accuracies: list[float]


def affordable_shots(
    train_labels: Sequence[np.ndarray], test_labels: np.ndarray, shots: int, classes: Sequence[str]
) -> tuple[int, str | None]:
    """The shots per class a few-shot evaluation can draw: ``shots``, or fewer where a class
    has fewer train items in one of ``train_labels`` (data with a few labels); 0 where a
    class of the test labels has none. With a note for people when it is not ``shots``.

    Example:
        >>> affordable_shots([np.array([0, 0, 0, 1, 1])], np.array([0, 1]), 10, ["a", "b"])
        (2, 'few-shot with 2 labels per class, not 10: class b has 2 fit items')
    """
    present = np.unique(np.concatenate([*train_labels, test_labels])).tolist()
    fewest, which = shots, None
    for labels in train_labels:
        counts = np.bincount(labels, minlength=max(present) + 1)
        for code in present:
            if counts[code] < fewest:
                fewest, which = int(counts[code]), code
    if which is None:
        return shots, None
    name = classes[which] if which < len(classes) else str(which)
    if fewest == 0:
        return 0, f"no few-shot row: class {name} has no fit item"
    return fewest, (
        f"few-shot with {fewest} label{'s' if fewest > 1 else ''} per class, not {shots}: "
        f"class {name} has {fewest} fit item{'s' if fewest > 1 else ''}"
    )


def few_shot(
    train_emb: ArrayLike,
    train_labels: ArrayLike,
    test_emb: ArrayLike,
    test_labels: ArrayLike,
    *,
    shots: int = 10,
    draws: int = 5,
    seed: int = 0,
) -> FewShotResult:
    """Fit logistic regression on ``shots`` train labels per class, ``draws`` times; test each.

    The classes are those among the train or test labels; every one must have ``shots``
    train examples. The draws come from one numpy generator seeded with ``seed``.

    Args:
        train_emb: train embeddings, shape ``(n_train, d)``, numpy or torch.
        train_labels: integer train labels, shape ``(n_train,)``.
        test_emb: test embeddings, shape ``(n_test, d)``.
        test_labels: integer test labels, shape ``(n_test,)``.
        shots: labelled examples per class in each draw, ``>= 1``.
        draws: number of independent draws, ``>= 2`` so the interval is defined.
        seed: seeds the draws.

    Returns:
        The per-draw accuracies, their mean and the 95% interval half-width.

    Raises:
        ValueError: ``draws < 2``, ``shots < 1``, a class with fewer than ``shots`` train
            examples (the message names it), or inputs of the wrong shapes.

    Example:
        >>> x = torch.tensor([[-1.0], [-2.0], [-3.0], [1.0], [2.0], [3.0]])
        >>> y = torch.tensor([0, 0, 0, 1, 1, 1])
        >>> few_shot(x, y, x, y, shots=1, draws=2).accuracies
        [1.0, 1.0]
    """
    train, y_train, test, y_test = as_labelled_splits(
        train_emb, train_labels, test_emb, test_labels
    )
    if draws < 2:
        raise ValueError(f"draws must be >= 2 for a confidence interval, got {draws}")
    if shots < 1:
        raise ValueError(f"shots must be >= 1, got {shots}")
    num_classes = count_classes(y_train, y_test)
    members = []
    for cls in torch.unique(torch.cat([y_train, y_test])).tolist():
        indices = torch.nonzero(y_train == cls).flatten().numpy()
        if len(indices) < shots:
            raise ValueError(f"class {cls} has {len(indices)} train examples, fewer than {shots}")
        members.append(indices)
    train, test = standardize(train, test)

    rng = np.random.default_rng(seed)
    accuracies = []
    for _ in range(draws):
        picks = [rng.choice(indices, shots, replace=False) for indices in members]
        chosen = torch.from_numpy(np.concatenate(picks))
        model = fit_logistic_regression(
            train[chosen], y_train[chosen], num_classes, FEW_SHOT_WEIGHT_DECAY
        )
        accuracies.append((model(test).argmax(1) == y_test).float().mean().item())
    sem = np.std(accuracies, ddof=1) / np.sqrt(draws)
    return FewShotResult(
        shots=shots,
        mean=float(np.mean(accuracies)),
        ci95=float(stats.t.ppf(0.975, df=draws - 1) * sem),
        accuracies=accuracies,
    )
