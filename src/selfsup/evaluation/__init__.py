"""Label-based evaluation protocols on frozen embeddings: kNN, linear probe, few-shot.

Every protocol takes train and test embeddings (numpy arrays or torch tensors, one row per
item) with integer labels and returns test accuracy.

Example:
    >>> import torch
    >>> emb, labels = torch.eye(4), torch.tensor([0, 1, 0, 1])
    >>> knn_accuracy(emb, labels, emb, labels, k=1)
    1.0
"""

from selfsup.evaluation.fewshot import FEW_SHOT_WEIGHT_DECAY, FewShotResult, few_shot
from selfsup.evaluation.knn import knn_accuracy, knn_predict
from selfsup.evaluation.linear import (
    LinearProbeResult,
    fit_logistic_regression,
    linear_probe,
    standardize,
    stratified_split,
)

__all__ = [
    "FEW_SHOT_WEIGHT_DECAY",
    "FewShotResult",
    "LinearProbeResult",
    "few_shot",
    "fit_logistic_regression",
    "knn_accuracy",
    "knn_predict",
    "linear_probe",
    "standardize",
    "stratified_split",
]
