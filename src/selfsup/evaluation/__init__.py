"""Evaluation on frozen embeddings: with labels (kNN, linear probe, few-shot) and without.

Every labelled protocol takes train and test embeddings (numpy arrays or torch tensors, one
row per item) with integer labels and returns test accuracy; the label-free metrics
(``selfsup.evaluation.labelfree``) read embeddings alone.

Example:
    >>> import torch
    >>> emb, labels = torch.eye(4), torch.tensor([0, 1, 0, 1])
    >>> knn_accuracy(emb, labels, emb, labels, k=1)
    1.0
"""

from selfsup.evaluation.fewshot import FEW_SHOT_WEIGHT_DECAY, FewShotResult, few_shot
from selfsup.evaluation.knn import knn_accuracy, knn_leave_one_out, knn_predict
from selfsup.evaluation.labelfree import (
    LabelFreeMetrics,
    alignment,
    alpha_req,
    label_free_metrics,
    measure_label_free,
    neighbour_agreement,
    normalized_std,
    rankme,
    uniformity,
)
from selfsup.evaluation.linear import (
    LinearProbeResult,
    fit_logistic_regression,
    linear_probe,
    standardize,
)

__all__ = [
    "FEW_SHOT_WEIGHT_DECAY",
    "FewShotResult",
    "LabelFreeMetrics",
    "LinearProbeResult",
    "alignment",
    "alpha_req",
    "few_shot",
    "fit_logistic_regression",
    "knn_accuracy",
    "knn_leave_one_out",
    "knn_predict",
    "label_free_metrics",
    "linear_probe",
    "measure_label_free",
    "neighbour_agreement",
    "normalized_std",
    "rankme",
    "standardize",
    "uniformity",
]
