"""Bias audit: how a classifier on the embeddings, and the embedding itself, differ by group.

Two families of checks, each computed per group of items:

- **Of a classifier's outputs** (an adapted model, or a cross-validated logistic regression on
  the embeddings when there is none), with fairlearn's ``MetricFrame`` (Weerts et al.,
  "Fairlearn: Assessing and Improving Fairness of AI Systems", JMLR 2023): accuracy, expected
  calibration error (ECE, Guo et al., "On Calibration of Modern Neural Networks", ICML 2017),
  false positive and false negative rates (of the second class for two classes, the mean of
  the one-vs-rest rates over classes for more), each with a bootstrap 95% interval.
- **Of the embedding, without labels**: kNN purity of group membership (how many of an item's
  nearest neighbours share its group, above chance, rescaled so 1 means all of them),
  separability of the groups by a cross-validated linear probe (balanced accuracy above
  chance), and RankMe (Garrido et al., ICML 2023) per group on samples of equal size (how
  many directions the encoder uses to describe each group).

Every check gives one gap between the worst and the best group. A gap is *large* when it
reaches the check's threshold in :data:`LARGE_GAP`; for the rates of the classifier the two
groups' 95% intervals must also not overlap, so a small group's noise is not read as bias.
The summary ranks the gaps by their size relative to the threshold and says each in a plain
sentence.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> groups = np.repeat(["a", "b"], 200)
    >>> y = rng.integers(0, 2, 400)
    >>> pred = y.copy()
    >>> pred[200:300] = 0  # half of group b's items are predicted negative
    >>> proba = np.eye(2)[pred] * 0.8 + 0.1
    >>> result = audit_arrays(y, pred, proba, groups, n_boot=50)
    >>> top = result.gaps[0]
    >>> top.check, top.worst, top.large
    ('fnr', 'b', True)
"""

from selfsup.tools.audit.metrics import (
    LARGE_GAP,
    PREDICTION_METRICS,
    Gap,
    cross_validated_proba,
    embedding_checks,
    group_purity,
    group_separability,
    prediction_gaps,
    prediction_metrics,
    rankme_by_group,
)
from selfsup.tools.audit.result import AUDIT_FILE, AUDIT_PLOT, AuditResult, plot_audit
from selfsup.tools.audit.run import audit_arrays, audit_run, read_groups_file

__all__ = [
    "AUDIT_FILE",
    "AUDIT_PLOT",
    "LARGE_GAP",
    "PREDICTION_METRICS",
    "AuditResult",
    "Gap",
    "audit_arrays",
    "audit_run",
    "cross_validated_proba",
    "embedding_checks",
    "group_purity",
    "group_separability",
    "plot_audit",
    "prediction_gaps",
    "prediction_metrics",
    "rankme_by_group",
    "read_groups_file",
]
