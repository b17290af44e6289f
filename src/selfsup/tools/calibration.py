"""Temperature scaling and the expected calibration error of class probabilities.

Temperature scaling (Guo et al., "On Calibration of Modern Neural Networks", ICML 2017)
divides a classifier's logits by one scalar ``T > 0`` chosen to minimise the negative
log-likelihood of held-out labels: the predicted class never changes, only how sure the
probabilities are. The expected calibration error (ECE, Naeini et al. 2015, as in Guo et al.)
bins predictions by confidence and averages ``|accuracy - confidence|`` over the bins,
weighted by their size.

Example:
    >>> import numpy as np
    >>> logits = np.array([[8.0, 0.0], [8.0, 0.0], [0.0, 8.0], [0.0, 8.0]])
    >>> labels = np.array([0, 1, 1, 0])  # right half the time, yet 99.97% sure
    >>> fit_temperature(logits, labels) > 10
    True
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax

#: The temperature is searched in ``[exp(-5), exp(5)]``.
_LOG_T_BOUND = 5.0


def negative_log_likelihood(
    logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0
) -> float:
    """Mean negative log-likelihood of ``labels`` under ``softmax(logits / temperature)``.

    Example:
        >>> round(negative_log_likelihood(np.zeros((2, 2)), np.array([0, 1])), 4)
        0.6931
    """
    log_probs = log_softmax(np.asarray(logits, dtype=np.float64) / temperature, axis=1)
    return float(-log_probs[np.arange(len(labels)), labels].mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature ``T`` minimising the NLL of ``labels`` under ``softmax(logits / T)``.

    The NLL is convex in ``1 / T``; a bounded scalar search over ``log T`` finds it.

    Args:
        logits: held-out logits, shape ``(n, classes)``.
        labels: their integer labels, shape ``(n,)``.

    Returns:
        The temperature, in ``[exp(-5), exp(5)]``.

    Example:
        >>> logits = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
        >>> fit_temperature(logits, np.array([0, 0, 0, 1])) < 1  # always right: sharpen
        True
    """
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if len(logits) == 0:
        raise ValueError("temperature scaling needs at least one held-out label")
    result = minimize_scalar(
        lambda log_t: negative_log_likelihood(logits, labels, float(np.exp(log_t))),
        bounds=(-_LOG_T_BOUND, _LOG_T_BOUND),
        method="bounded",
        options={"xatol": 1e-6},
    )
    return float(np.exp(result.x))


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """ECE: ``sum_b |B_b| / n * |accuracy(B_b) - confidence(B_b)|`` over equal-width
    confidence bins (Guo et al. 2017 use 15).

    Args:
        probs: class probabilities, shape ``(n, classes)``.
        labels: integer labels, shape ``(n,)``.
        bins: number of equal-width bins of the top probability in ``(0, 1]``.

    Example:
        >>> probs = np.array([[0.9, 0.1], [0.9, 0.1]])
        >>> round(expected_calibration_error(probs, np.array([0, 1])), 4)  # 90% sure, 50% right
        0.4
    """
    probs = np.asarray(probs, dtype=np.float64)
    return calibration_error(probs.argmax(axis=1) == np.asarray(labels), probs.max(axis=1), bins)


def calibration_error(correct: np.ndarray, confidence: np.ndarray, bins: int = 15) -> float:
    """ECE from each prediction's correctness and confidence (see
    :func:`expected_calibration_error`); NaN for no prediction.

    Example:
        >>> calibration_error(np.array([True, False]), np.array([0.9, 0.9]))
        0.4
    """
    correct = np.asarray(correct, dtype=bool)
    confidence = np.asarray(confidence, dtype=np.float64)
    if len(correct) == 0:
        return float("nan")
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    error = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            error += members.mean() * abs(correct[members].mean() - confidence[members].mean())
    return float(error)
