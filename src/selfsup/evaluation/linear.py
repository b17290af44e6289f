"""Linear probe: multinomial logistic regression on frozen, standardized embeddings.

The classifier minimises the mean cross-entropy plus ``weight_decay * ||W||^2`` (the bias is
not penalised) with full-batch L-BFGS, as in the linear probes of Kornblith et al. ("Do
Better ImageNet Models Transfer Better?", CVPR 2019) and CLIP (Radford et al., 2021), which
tune the L2 penalty on a validation split held out from the train labels, then refit on all
of them. Embeddings are standardized with the mean and standard deviation of the train split.

Example:
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> labels = torch.arange(100) % 2
    >>> emb = torch.randn(100, 4, generator=g) + 3 * labels[:, None]
    >>> result = linear_probe(emb, labels, emb, labels, weight_decays=(1e-4, 1e-2))
    >>> result.accuracy > 0.9, result.weight_decay in (1e-4, 1e-2)
    (True, True)
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from selfsup.data.splits import stratified_split
from selfsup.evaluation.inputs import (
    ArrayLike,
    as_labelled_splits,
    count_classes,
)

#: The most train items the weight decay is chosen on (a stratified sample of them above it):
#: the choice is settled long before, and each of its fits reads the items a hundred times.
SWEEP_MOST = 100_000


@dataclass
class LinearProbeResult:
    """What :func:`linear_probe` found.

    Attributes:
        accuracy: test accuracy of the classifier refit on all train labels.
        weight_decay: the weight decay used for that classifier.
        val_accuracy: validation accuracy of the chosen weight decay; ``None`` when no
            validation split could be made.
        note: why the weight decay was not chosen on a validation split, else ``None``.
        auroc: area under the ROC curve of the classifier's test probabilities (one-vs-rest
            macro average for more than two classes); ``None`` when the test split holds a
            single class.
    """

    accuracy: float
    weight_decay: float
    val_accuracy: float | None
    note: str | None = None
    auroc: float | None = None


def standardize(reference: torch.Tensor, *others: torch.Tensor) -> list[torch.Tensor]:
    """Centre and scale ``reference`` and ``others`` by the per-feature statistics of ``reference``.

    Args:
        reference: the embeddings whose mean and standard deviation are used, ``(n, d)``.
        *others: more embeddings of dimension ``d`` to transform the same way.

    Returns:
        ``[reference, *others]`` standardized. A constant feature is centred, not scaled.

    Example:
        >>> standardize(torch.tensor([[0.0, 5.0], [2.0, 5.0]]))[0]
        tensor([[-0.7071,  0.0000],
                [ 0.7071,  0.0000]])
    """
    mean, std = standardization(reference)
    return [(x - mean) / std for x in (reference, *others)]


def standardization(reference: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The per-feature mean and scale :func:`standardize` applies (to apply them a block of
    rows at a time, without a standardized copy of millions of rows).

    Example:
        >>> standardization(torch.tensor([[0.0, 5.0], [2.0, 5.0]]))
        (tensor([1., 5.]), tensor([1.4142, 1.0000]))
    """
    mean = reference.mean(dim=0)
    std = reference.std(dim=0)
    # A constant feature keeps scale 1: its mean is only exact to rounding, so dividing the
    # leftover by a tiny std would blow it up.
    return mean, torch.where(std > 0, std, torch.ones_like(std))


def fit_logistic_regression(
    features: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    weight_decay: float,
    max_iter: int = 200,
    init: torch.nn.Linear | None = None,
    sample_weight: torch.Tensor | None = None,
) -> torch.nn.Linear:
    """Fit multinomial logistic regression by full-batch L-BFGS.

    Minimises ``cross_entropy(features @ W.T + b, labels) + weight_decay * ||W||^2``, the
    cross-entropy averaged over examples and the bias left unpenalised. The problem is
    convex, so the start (zeros, or a copy of ``init``) only changes how fast it converges.

    Args:
        features: float32 inputs, shape ``(n, d)``; standardize them first.
        labels: int64 labels in ``[0, num_classes)``, shape ``(n,)``.
        num_classes: number of outputs.
        weight_decay: the L2 penalty on the weights, ``>= 0``.
        max_iter: the most L-BFGS iterations.
        init: a fitted classifier of the same shape to start from (a warm start).
        sample_weight: non-negative ``(n,)`` weights of the examples; the cross-entropy is
            then their weighted mean. None weighs every example equally.

    Returns:
        The fitted classifier; ``classifier(x).argmax(1)`` predicts labels.

    Example:
        >>> x = torch.tensor([[-1.0], [-2.0], [1.0], [2.0]])
        >>> model = fit_logistic_regression(x, torch.tensor([0, 0, 1, 1]), 2, 1e-2)
        >>> model(x).argmax(1)
        tensor([0, 0, 1, 1])
    """
    if sample_weight is not None and (
        sample_weight.shape != labels.shape or bool((sample_weight < 0).any())
    ):
        raise ValueError(f"sample_weight must be {tuple(labels.shape)} non-negative weights")
    # skip_init: a default initialisation would draw from (and advance) the global torch RNG.
    model = torch.nn.utils.skip_init(torch.nn.Linear, features.shape[1], num_classes)
    with torch.no_grad():
        model.weight.copy_(init.weight if init is not None else torch.zeros_like(model.weight))
        model.bias.copy_(init.bias if init is not None else torch.zeros_like(model.bias))
    optimizer = torch.optim.LBFGS(
        model.parameters(), max_iter=max_iter, history_size=20, line_search_fn="strong_wolfe"
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        if sample_weight is None:
            loss = F.cross_entropy(model(features), labels)
        else:
            losses = F.cross_entropy(model(features), labels, reduction="none")
            loss = (losses * sample_weight).sum() / sample_weight.sum()
        loss = loss + weight_decay * model.weight.square().sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    return model.requires_grad_(False)


def _sweep_weight_decays(
    fit: tuple[torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor],
    num_classes: int,
    weight_decays: Sequence[float],
    max_iter: int,
) -> list[tuple[float, int, float, torch.nn.Linear]]:
    """(weight decay, correct validation predictions, summed validation cross-entropy,
    classifier) for each weight decay, largest first: it converges fastest and warm-starts
    the next, weaker one."""
    results = []
    model = None
    for weight_decay in sorted(weight_decays, reverse=True):
        model = fit_logistic_regression(*fit, num_classes, weight_decay, max_iter, model)
        with torch.no_grad():
            logits = model(val[0])
        hits = int((logits.argmax(1) == val[1]).sum())
        loss = float(F.cross_entropy(logits.double(), val[1], reduction="sum"))
        results.append((weight_decay, hits, loss, model))
    return results


def _best(hits: int, loss: float) -> tuple[int, float]:
    """The order weight decays are chosen by: more correct validation predictions, then
    (between equal counts) the lower validation cross-entropy. With a rare class every
    penalty predicts the common one and the counts tie; the cross-entropy still tells the
    penalty that ranks the rare items apart from the one that flattens every score.

    Example:
        >>> max([(1e-2, _best(90, 30.0)), (1e-6, _best(90, 25.0))], key=lambda r: r[1])[0]
        1e-06
    """
    return hits, -loss


def _select_weight_decay(
    fit: tuple[torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor],
    num_classes: int,
    weight_decays: Sequence[float],
    max_iter: int,
) -> tuple[float, float, torch.nn.Linear]:
    """Return the weight decay of best validation accuracy, that accuracy and its classifier.

    Ties go to the lower validation cross-entropy (see :func:`_best`).
    """
    sweep = _sweep_weight_decays(fit, val, num_classes, weight_decays, max_iter)
    weight_decay, hits, _, model = max(sweep, key=lambda result: _best(*result[1:3]))
    return weight_decay, hits / len(val[1]), model


def _cross_validate_weight_decay(
    train: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    weight_decays: Sequence[float],
    max_iter: int,
    folds: int,
    seed: int,
) -> tuple[float, float]:
    """The weight decay of best mean accuracy over stratified folds, and that accuracy.

    Ties go to the lower validation cross-entropy summed over the folds (see :func:`_best`);
    there are at most as many folds as the rarest class has examples.
    """
    from sklearn.model_selection import StratifiedKFold

    y = labels.numpy()
    present = np.bincount(y)
    splits = min(folds, int(present[present > 0].min()))
    correct = dict.fromkeys(sorted(weight_decays, reverse=True), 0)
    losses = dict.fromkeys(correct, 0.0)
    for fit_idx, val_idx in StratifiedKFold(splits, shuffle=True, random_state=seed).split(y, y):
        fit = (train[fit_idx], labels[fit_idx])
        val = (train[val_idx], labels[val_idx])
        for weight_decay, hits, loss, _ in _sweep_weight_decays(
            fit, val, num_classes, weight_decays, max_iter
        ):
            correct[weight_decay] += hits
            losses[weight_decay] += loss
    best = max(correct, key=lambda wd: _best(correct[wd], losses[wd]))
    return best, correct[best] / len(y)


def _unsplittable(labels: np.ndarray, weight_decays: Sequence[float]) -> tuple[float, str | None]:
    """Where a class has a single train item no validation split can be made: the middle of
    the sorted ``weight_decays`` and a note saying so; else (that middle, None).

    Example:
        >>> _unsplittable(np.array([0, 0, 1]), (1e-4, 1e-2, 1e-3))[1]
        'classes [1] have fewer than 2 train examples: used the middle weight decay'
    """
    counts = np.bincount(labels)
    rare = np.flatnonzero((counts > 0) & (counts < 2)).tolist()
    middle = sorted(weight_decays)[len(weight_decays) // 2]
    if not rare:
        return middle, None
    return middle, f"classes {rare} have fewer than 2 train examples: used the middle weight decay"


def _validation_split(
    labels: np.ndarray, val_fraction: float, seed: int, sweep_most: int
) -> tuple[np.ndarray, np.ndarray]:
    """The rows the weight decay is fitted on and those it is chosen on: a stratified
    ``val_fraction`` held out of all rows, or of a stratified sample of ``sweep_most`` of
    them where there are more (the choice is settled long before)."""
    pool = np.arange(len(labels))
    if len(labels) > sweep_most:
        pool = stratified_split(labels, sweep_most / len(labels), seed + 1, at_least_one=True)[1]
    fit, val = stratified_split(
        labels[pool], val_fraction, np.random.default_rng(seed), at_least_one=True
    )
    return pool[fit], pool[val]


def linear_probe(
    train_emb: ArrayLike,
    train_labels: ArrayLike,
    test_emb: ArrayLike,
    test_labels: ArrayLike,
    *,
    weight_decays: Sequence[float] = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2),
    val_fraction: float = 0.1,
    seed: int = 0,
    max_iter: int = 200,
    folds: int = 1,
    sweep_most: int = SWEEP_MOST,
) -> LinearProbeResult:
    """Choose the weight decay on a validation split, refit on all train labels, test.

    A stratified ``val_fraction`` of the train split (drawn by a numpy generator seeded with
    ``seed``) is held out; a classifier is fit on the rest for each weight decay, and the one
    with the best validation accuracy (ties go to the lower validation cross-entropy: with a
    rare class every penalty predicts the common one) is refit on the whole train split,
    starting from it. Above ``sweep_most`` train items the choice is made
    on a stratified sample of that many (2.4 million transactions took six minutes). With
    ``folds`` of 2 or more the choice is by stratified k-fold cross-validation instead (the
    mean validation accuracy over the folds, as scikit-learn's ``LogisticRegressionCV``): with
    a hundred labels, a tenth held out is ten items, too few to tell penalties apart. If some
    class has fewer than two train examples no split can be made: the middle of the sorted
    ``weight_decays`` is used and ``note`` says so. The number of classes is the largest train
    or test label plus one.

    Args:
        train_emb: train embeddings, shape ``(n_train, d)``, numpy or torch.
        train_labels: integer train labels, shape ``(n_train,)``.
        test_emb: test embeddings, shape ``(n_test, d)``.
        test_labels: integer test labels, shape ``(n_test,)``.
        weight_decays: the grid of L2 penalties to choose from.
        val_fraction: the share of each class held out for validation, in ``(0, 1)``.
        seed: seeds the validation split (or the folds).
        max_iter: the most L-BFGS iterations per fit.
        folds: 1 for one validation split of ``val_fraction``; k >= 2 for k-fold
            cross-validation (at most as many folds as the rarest class has items).
        sweep_most: the most train items the weight decay is chosen on.

    Returns:
        The test accuracy, the chosen weight decay and its validation accuracy.

    Raises:
        ValueError: an empty or negative ``weight_decays``, ``val_fraction`` outside
            ``(0, 1)``, or inputs of the wrong shapes.

    Example:
        >>> x = torch.tensor([[-1.0], [-2.0], [-3.0], [1.0], [2.0], [3.0]])
        >>> y = torch.tensor([0, 0, 0, 1, 1, 1])
        >>> linear_probe(x, y, x, y, weight_decays=(1e-3,), val_fraction=0.3).accuracy
        1.0
    """
    train, y_train, test, y_test = as_labelled_splits(
        train_emb, train_labels, test_emb, test_labels
    )
    if not weight_decays or min(weight_decays) < 0:
        raise ValueError("weight_decays must be a non-empty sequence of values >= 0")
    if folds < 1:
        raise ValueError(f"folds must be at least 1, got {folds}")
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    num_classes = count_classes(y_train, y_test)
    train, test = standardize(train, test)

    val_accuracy: float | None = None
    init: torch.nn.Linear | None = None
    chosen, note = _unsplittable(y_train.numpy(), weight_decays)
    if note is None and folds >= 2:
        chosen, val_accuracy = _cross_validate_weight_decay(
            train, y_train, num_classes, weight_decays, max_iter, folds, seed
        )
    elif note is None:
        fit_idx, val_idx = (
            torch.from_numpy(rows)
            for rows in _validation_split(y_train.numpy(), val_fraction, seed, sweep_most)
        )
        chosen, val_accuracy, init = _select_weight_decay(
            (train[fit_idx], y_train[fit_idx]),
            (train[val_idx], y_train[val_idx]),
            num_classes,
            weight_decays,
            max_iter,
        )

    model = fit_logistic_regression(train, y_train, num_classes, chosen, max_iter, init)
    with torch.no_grad():
        logits = model(test)
    accuracy = (logits.argmax(1) == y_test).float().mean().item()
    return LinearProbeResult(accuracy, chosen, val_accuracy, note, _auroc(logits, y_test))


#: The L2 penalties :func:`sparse_linear_probe` chooses from: TF-IDF rows have unit length
#: and each of their many columns carries little, so the best penalties lie below those of
#: standardized embeddings (Rotten Tomatoes' 10,000 snippets: scikit-learn's C of 10 to 100).
SPARSE_WEIGHT_DECAYS = (1e-7, 1e-6, 1e-5, 1e-4, 1e-3)


def sparse_linear_probe(
    train: Any,
    train_labels: ArrayLike,
    test: Any,
    test_labels: ArrayLike,
    *,
    weight_decays: Sequence[float] = SPARSE_WEIGHT_DECAYS,
    val_fraction: float = 0.1,
    seed: int = 0,
    max_iter: int = 1000,
    sweep_most: int = SWEEP_MOST,
) -> LinearProbeResult:
    """:func:`linear_probe` of sparse features (scipy CSR, a TF-IDF of texts: hundreds of
    thousands of columns, a few dozen set in a row), as they are: standardizing would make
    them dense and weigh a word seen twice like the commonest one. The weight decay is
    chosen as :func:`linear_probe` chooses it (a stratified validation split of at most
    ``sweep_most`` train rows, ties to the lower cross-entropy), each fit by scikit-learn's
    multinomial logistic regression (L-BFGS) at ``C = 1 / (2 * weight_decay * rows)``, the
    same objective.

    Example:
        >>> from scipy.sparse import csr_matrix
        >>> x = csr_matrix(np.repeat(np.eye(2, dtype=np.float32), 10, axis=0))
        >>> y = np.repeat([0, 1], 10)
        >>> sparse_linear_probe(x, y, x, y).accuracy
        1.0
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    y_train = np.asarray(train_labels, dtype=np.int64)
    y_test = np.asarray(test_labels, dtype=np.int64)
    num_classes = int(max(y_train.max(), y_test.max())) + 1

    def fit(rows: np.ndarray, weight_decay: float) -> Any:
        model = LogisticRegression(C=1.0 / (2 * weight_decay * len(rows)), max_iter=max_iter)
        with warnings.catch_warnings():  # the last iterations move the accuracy no further
            warnings.simplefilter("ignore", ConvergenceWarning)
            return model.fit(train[rows], y_train[rows])

    def logits(model: Any, x: Any) -> torch.Tensor:
        """Log-probabilities in every class's column (-1e4 where the fit saw none)."""
        out = np.full((x.shape[0], num_classes), -1e4)
        out[:, model.classes_] = np.log(np.clip(model.predict_proba(x), 1e-12, None))
        return torch.from_numpy(out)

    val_accuracy: float | None = None
    chosen, note = _unsplittable(y_train, weight_decays)
    if note is None:
        fit_rows, val_rows = _validation_split(y_train, val_fraction, seed, sweep_most)
        y_val = torch.from_numpy(y_train[val_rows])
        scored = []
        for weight_decay in weight_decays:
            found = logits(fit(fit_rows, weight_decay), train[val_rows])
            hits = int((found.argmax(1) == y_val).sum())
            loss = float(F.cross_entropy(found, y_val, reduction="sum"))
            scored.append((_best(hits, loss), weight_decay, hits))
        _, chosen, hits = max(scored)
        val_accuracy = hits / len(val_rows)
    found = logits(fit(np.arange(len(y_train)), chosen), test)
    labels = torch.from_numpy(y_test)
    accuracy = float((found.argmax(1) == labels).double().mean())
    return LinearProbeResult(accuracy, chosen, val_accuracy, note, _auroc(found, labels))


def _auroc(logits: torch.Tensor, labels: torch.Tensor) -> float | None:
    """ROC AUC of softmax probabilities (one-vs-rest macro over the classes present)."""
    from sklearn.metrics import roc_auc_score

    present = torch.unique(labels)
    if len(present) < 2:
        return None
    probs = torch.softmax(logits.double(), dim=1).numpy()
    y = labels.numpy()
    if len(present) == 2:
        positive = int(present[1])
        return float(roc_auc_score(y == positive, probs[:, positive]))
    kept = probs[:, present.numpy()]
    kept = kept / kept.sum(axis=1, keepdims=True)
    return float(roc_auc_score(y, kept, multi_class="ovr", labels=present.numpy()))
