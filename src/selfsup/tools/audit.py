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

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from selfsup.core.files import write_json
from selfsup.core.neighbours import cosine_topk
from selfsup.embedding import embed_source
from selfsup.evaluation.labelfree import rankme
from selfsup.evaluation.linear import fit_logistic_regression, standardize
from selfsup.run import Run
from selfsup.tools.calibration import calibration_error
from selfsup.tools.figures import pyplot, save_png

AUDIT_FILE = "audit.json"
AUDIT_PLOT = "audit.png"
#: How large a gap between the worst and the best group must be to be reported as large:
#: absolute for the rates (0.05 = 5 points), normalized to [0, 1] for the embedding checks.
LARGE_GAP = {
    "accuracy": 0.05,
    "ece": 0.05,
    "fpr": 0.05,
    "fnr": 0.05,
    "separability": 0.2,
    "purity": 0.2,
    "rankme": 0.25,
}
#: The classifier's metrics and whether a higher value is worse.
PREDICTION_METRICS = {"accuracy": False, "ece": True, "fpr": True, "fnr": True}
_NAMES = {
    "accuracy": "accuracy",
    "ece": "calibration error (ECE)",
    "fpr": "false positive rate",
    "fnr": "false negative rate",
}


def _one_vs_rest_rates(
    y_true: np.ndarray, y_pred: np.ndarray, num_classes: int
) -> tuple[float, float]:
    """False positive and false negative rates: of class 1 for two classes, else the mean
    over classes of the one-vs-rest rates (classes without positives or negatives skipped)."""
    classes = [1] if num_classes == 2 else range(num_classes)
    fprs, fnrs = [], []
    for c in classes:
        positive, predicted = y_true == c, y_pred == c
        if (~positive).any():
            fprs.append((predicted & ~positive).sum() / (~positive).sum())
        if positive.any():
            fnrs.append((~predicted & positive).sum() / positive.sum())
    return (
        float(np.mean(fprs)) if fprs else float("nan"),
        float(np.mean(fnrs)) if fnrs else float("nan"),
    )


@dataclass
class Gap:
    """The gap of one check between its worst and best group.

    Attributes:
        check: ``accuracy``, ``ece``, ``fpr``, ``fnr``, ``separability``, ``purity`` or
            ``rankme``.
        value: the size of the gap (see :data:`LARGE_GAP` for its scale).
        threshold: the size from which it counts as large.
        large: whether it is large (for rates: above the threshold and with
            non-overlapping 95% intervals).
        worst: the group the check is worst for.
        best: the group it is best for (None for checks of all groups at once).
        sentence: the gap in plain words.
    """

    check: str
    value: float
    threshold: float
    large: bool
    worst: str | None
    best: str | None
    sentence: str

    @property
    def severity(self) -> float:
        """The gap relative to its threshold (1 = just large)."""
        return self.value / self.threshold if np.isfinite(self.value) else 0.0


@dataclass
class AuditResult:
    """What an audit found.

    Attributes:
        groups: the group names, in order.
        counts: items per group.
        by_group: metric -> group -> value (classifier metrics and embedding checks).
        intervals: metric -> group -> [low, high] bootstrap 95% interval (classifier metrics).
        overall: metric -> value over all items.
        gaps: one per check, ranked: large gaps first, then by severity.
        notes: how the audit was done (which classifier, what was skipped).
    """

    groups: list[str]
    counts: dict[str, int]
    by_group: dict[str, dict[str, float]]
    intervals: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    overall: dict[str, float] = field(default_factory=dict)
    gaps: list[Gap] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def large_gaps(self) -> list[Gap]:
        """The large gaps, largest first."""
        return [gap for gap in self.gaps if gap.large]

    def summary(self) -> list[str]:
        """Plain sentences: the large gaps, largest first, or that there is none."""
        if not self.large_gaps:
            biggest = self.gaps[0].sentence if self.gaps else ""
            return [f"No large gap between the groups. The largest: {biggest}".strip()]
        return [gap.sentence for gap in self.large_gaps]

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON (the ranked gaps and the summary included)."""
        return {**asdict(self), "summary": self.summary()}

    def save(self, folder: str | os.PathLike) -> Path:
        """Write ``audit.json`` and its bar chart ``audit.png`` into ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / AUDIT_FILE
        write_json(path, self.to_dict())
        plot_audit(self, folder / AUDIT_PLOT)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> AuditResult:
        """Read an ``audit.json`` (or the run folder holding one)."""
        path = Path(path)
        data = json.loads((path / AUDIT_FILE if path.is_dir() else path).read_text())
        data.pop("summary", None)
        data["gaps"] = [Gap(**gap) for gap in data["gaps"]]
        return cls(**data)


def _fmt_group(name: str | None) -> str:
    return f"group {name!s}"


def prediction_metrics(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    proba: np.ndarray,
    groups: np.ndarray,
    n_boot: int = 200,
    seed: int = 0,
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, list[float]]], dict[str, float]]:
    """Accuracy, ECE, FPR and FNR per group with bootstrap 95% intervals (fairlearn).

    Args:
        y_true: integer labels ``(n,)``.
        y_pred: predicted labels ``(n,)``.
        proba: class probabilities ``(n, classes)``; their maximum is the confidence.
        groups: one group name per item.
        n_boot: bootstrap resamples for the intervals.
        seed: seed of the bootstrap.

    Returns:
        ``(by_group, intervals, overall)``: metric -> group -> value, metric -> group ->
        [low, high], and metric -> value over all items.

    Example:
        >>> y = np.array([0, 1, 0, 1])
        >>> values, _, _ = prediction_metrics(y, y, np.eye(2)[y], np.array(list("aabb")), 20)
        >>> values["accuracy"]
        {'a': 1.0, 'b': 1.0}
    """
    from fairlearn.metrics import MetricFrame

    num_classes = max(int(proba.shape[1]), int(y_true.max()) + 1, int(y_pred.max()) + 1)
    metrics = {
        "accuracy": lambda t, p: float(np.mean(t == p)),
        "ece": lambda t, p, confidence: calibration_error(t == p, confidence),
        "fpr": lambda t, p: _one_vs_rest_rates(np.asarray(t), np.asarray(p), num_classes)[0],
        "fnr": lambda t, p: _one_vs_rest_rates(np.asarray(t), np.asarray(p), num_classes)[1],
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # empty bins of tiny resamples
        frame = MetricFrame(
            metrics=metrics,
            y_true=np.asarray(y_true),
            y_pred=np.asarray(y_pred),
            sensitive_features=pd.Series(np.asarray(groups).astype(str), name="group"),
            sample_params={"ece": {"confidence": np.asarray(proba).max(axis=1)}},
            n_boot=n_boot,
            ci_quantiles=[0.025, 0.975],
            random_state=seed,
        )
    by_group = {m: {str(g): float(v) for g, v in frame.by_group[m].items()} for m in metrics}
    low, high = frame.by_group_ci
    intervals = {
        m: {str(g): [float(low[m][g]), float(high[m][g])] for g in frame.by_group.index}
        for m in metrics
    }
    overall = {m: float(frame.overall[m]) for m in metrics}
    return by_group, intervals, overall


def prediction_gaps(
    by_group: dict[str, dict[str, float]], intervals: dict[str, dict[str, list[float]]]
) -> list[Gap]:
    """One :class:`Gap` per classifier metric, between its worst and best group.

    Example:
        >>> values = {"accuracy": {"a": 0.9, "b": 0.6}}
        >>> spans = {"accuracy": {"a": [0.85, 0.95], "b": [0.5, 0.7]}}
        >>> gap = prediction_gaps(values, spans)[0]
        >>> gap.worst, round(gap.value, 2), gap.large
        ('b', 0.3, True)
    """
    gaps = []
    for metric, values in by_group.items():
        finite = {g: v for g, v in values.items() if np.isfinite(v)}
        if len(finite) < 2:
            continue
        higher_worse = PREDICTION_METRICS[metric]
        worst = max(finite, key=finite.get) if higher_worse else min(finite, key=finite.get)
        best = min(finite, key=finite.get) if higher_worse else max(finite, key=finite.get)
        value = abs(finite[worst] - finite[best])
        threshold = LARGE_GAP[metric]
        (w_low, w_high), (b_low, b_high) = intervals[metric][worst], intervals[metric][best]
        apart = w_low > b_high if higher_worse else w_high < b_low
        large = bool(value >= threshold and apart)
        name = _NAMES[metric]
        sentence = (
            f"The {name} is {finite[worst]:.2f} for {_fmt_group(worst)} against "
            f"{finite[best]:.2f} for {_fmt_group(best)}: a gap of {100 * value:.0f} points"
        )
        if not large:
            sentence += ", within noise or below the threshold."
        elif metric == "fnr":
            sentence += ": more of its positives are missed."
        elif metric == "fpr":
            sentence += ": more of its negatives are flagged."
        elif metric == "ece":
            sentence += ": the model's confidence is less trustworthy for it."
        else:
            sentence += "."
        gaps.append(Gap(metric, value, threshold, large, worst, best, sentence))
    return gaps


def group_purity(
    embeddings: np.ndarray, groups: np.ndarray, k: int = 10
) -> tuple[dict[str, float], dict[str, float]]:
    """kNN purity of group membership: per group, the mean share of an item's ``k`` nearest
    neighbours (cosine) that are in its group, and that share by chance (the group's share of
    the other items).

    Example:
        >>> z = np.concatenate([np.eye(4)[[0] * 20] + 0.01 * np.arange(20)[:, None],
        ...                     np.eye(4)[[1] * 20] + 0.01 * np.arange(20)[:, None]])
        >>> purity, chance = group_purity(z, np.repeat(["a", "b"], 20), k=5)
        >>> purity, {g: round(v, 2) for g, v in chance.items()}
        ({'a': 1.0, 'b': 1.0}, {'a': 0.49, 'b': 0.49})
    """
    groups = np.asarray(groups).astype(str)
    k = min(k, len(groups) - 1)
    z = torch.as_tensor(np.asarray(embeddings))
    neighbours = cosine_topk(z, z, k, exclude_self=True)[1].numpy()
    same = (groups[neighbours] == groups[:, None]).mean(axis=1)
    purity, chance = {}, {}
    for name in np.unique(groups):
        members = groups == name
        purity[str(name)] = float(same[members].mean())
        chance[str(name)] = float((members.sum() - 1) / (len(groups) - 1))
    return purity, chance


def _folds(labels: np.ndarray, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import StratifiedKFold

    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(labels)), labels))


def cross_validated_proba(
    embeddings: np.ndarray,
    labels: np.ndarray,
    folds: int = 5,
    weight_decay: float = 1e-3,
    seed: int = 0,
) -> np.ndarray:
    """Out-of-fold class probabilities of a logistic regression on standardized embeddings.

    Each item's probabilities come from the model fitted on the other folds (stratified), so
    they are honest predictions for every item; ``folds`` drops to the smallest class count
    when a class is rarer.

    Raises:
        ValueError: a class has a single item.

    Example:
        >>> z = np.repeat([[0.0], [1.0]], 10, axis=0) + np.linspace(0, 0.1, 20)[:, None]
        >>> proba = cross_validated_proba(z, np.repeat([0, 1], 10), folds=2)
        >>> (proba.argmax(1) == np.repeat([0, 1], 10)).all()
        np.True_
    """
    labels = np.asarray(labels)
    counts = np.bincount(labels)
    smallest = int(counts[counts > 0].min())
    if smallest < 2:
        raise ValueError("every class needs at least 2 items for cross-validated predictions")
    num_classes = len(counts)
    x = torch.as_tensor(np.asarray(embeddings), dtype=torch.float32)
    y = torch.as_tensor(labels, dtype=torch.long)
    proba = np.zeros((len(labels), num_classes), dtype=np.float64)
    for fit_rows, test_rows in _folds(labels, min(folds, smallest), seed):
        train, test = standardize(x[fit_rows], x[test_rows])
        model = fit_logistic_regression(train, y[fit_rows], num_classes, weight_decay)
        with torch.no_grad():
            proba[test_rows] = torch.softmax(model(test).double(), dim=1).numpy()
    return proba


def group_separability(
    embeddings: np.ndarray, groups: np.ndarray, folds: int = 5, seed: int = 0
) -> tuple[float, dict[str, float]]:
    """How well a linear probe tells the groups apart from the embedding alone.

    Returns:
        ``(normalized balanced accuracy, recall per group)``: the cross-validated balanced
        accuracy of a logistic regression predicting the group, rescaled so chance is 0 and
        perfect separation 1, and the share of each group's items recognized as that group.

    Example:
        >>> z = np.concatenate([np.zeros((20, 2)), np.ones((20, 2))])
        >>> z += np.random.default_rng(0).normal(0, 0.05, z.shape)
        >>> score, recall = group_separability(z, np.repeat(["a", "b"], 20))
        >>> round(score, 2), recall
        (1.0, {'a': 1.0, 'b': 1.0})
    """
    names, codes = np.unique(np.asarray(groups).astype(str), return_inverse=True)
    predicted = cross_validated_proba(embeddings, codes, folds, seed=seed).argmax(axis=1)
    recall = {str(n): float((predicted[codes == i] == i).mean()) for i, n in enumerate(names)}
    chance = 1.0 / len(names)
    balanced = float(np.mean(list(recall.values())))
    return (balanced - chance) / (1 - chance), recall


def rankme_by_group(
    embeddings: np.ndarray, groups: np.ndarray, items: int = 2000, seed: int = 0
) -> dict[str, float]:
    """RankMe of each group's embeddings on samples of equal size (the smallest group's, at
    most ``items``), since the effective rank grows with the number of items.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> z = np.concatenate([rng.normal(size=(50, 8)), rng.normal(size=(50, 8)) * [1, 0, 0,
        ...                     0, 0, 0, 0, 0]])
        >>> ranks = rankme_by_group(z, np.repeat(["full", "flat"], 50))
        >>> ranks["full"] > 6, ranks["flat"] < 1.5
        (True, True)
    """
    groups = np.asarray(groups).astype(str)
    names = np.unique(groups)
    size = min(items, min(int((groups == n).sum()) for n in names))
    rng = np.random.default_rng(seed)
    z = np.asarray(embeddings)
    return {
        str(n): rankme(z[rng.choice(np.flatnonzero(groups == n), size, replace=False)])
        for n in names
    }


def _embedding_gap(
    check: str, value: float, worst: str, best: str | None, finding: str, meaning: str
) -> Gap:
    """The gap of an embedding check: large from ``LARGE_GAP[check]``; its sentence is the
    finding, then what it means when large."""
    value = max(0.0, float(value))
    large = value >= LARGE_GAP[check]
    ending = f": {meaning}." if large else ", below the threshold."
    return Gap(check, value, LARGE_GAP[check], large, worst, best, finding + ending)


def embedding_checks(
    embeddings: np.ndarray, groups: np.ndarray, k: int = 10, seed: int = 0
) -> tuple[dict[str, dict[str, float]], list[Gap], list[str]]:
    """The label-free checks of the embedding per group and their gaps.

    Returns:
        ``(by_group, gaps, notes)``: ``purity``, ``separability`` (per-group recall of the
        group probe) and ``rankme`` per group, one :class:`Gap` per check, and notes on
        checks that could not run.
    """
    groups = np.asarray(groups).astype(str)
    by_group: dict[str, dict[str, float]] = {}
    gaps: list[Gap] = []
    notes: list[str] = []

    k = min(k, len(groups) - 1)
    purity, chance = group_purity(embeddings, groups, k)
    # 0 when neighbours ignore the group, 1 when they all share it.
    above_chance = {g: (purity[g] - chance[g]) / max(1 - chance[g], 1e-9) for g in purity}
    by_group["purity"] = above_chance
    worst = max(above_chance, key=above_chance.get)
    finding = (
        f"Of the {k} nearest neighbours of {_fmt_group(worst)}'s items, "
        f"{100 * purity[worst]:.0f}% are in that group, against {100 * chance[worst]:.0f}% by "
        "chance"
    )
    meaning = "the groups form separate regions of the embedding"
    gaps.append(_embedding_gap("purity", above_chance[worst], worst, None, finding, meaning))

    counts = pd.Series(groups).value_counts()
    if counts.min() < 2:
        notes.append(f"group separability skipped: group {counts.idxmin()!r} has one item")
    else:
        score, recall = group_separability(embeddings, groups, seed=seed)
        by_group["separability"] = recall
        chance_level = 1 / len(recall)
        finding = (
            "A linear probe tells the groups apart from the embedding alone with balanced "
            f"accuracy {chance_level + score * (1 - chance_level):.2f} (chance {chance_level:.2f})"
        )
        meaning = "the embedding encodes group membership"
        worst = max(recall, key=recall.get)
        gaps.append(_embedding_gap("separability", score, worst, None, finding, meaning))

    ranks = rankme_by_group(embeddings, groups, seed=seed)
    by_group["rankme"] = ranks
    low, high = min(ranks, key=ranks.get), max(ranks, key=ranks.get)
    value = 1 - ranks[low] / ranks[high]
    finding = (
        f"The embeddings of {_fmt_group(low)} use {100 * value:.0f}% fewer directions (RankMe "
        f"{ranks[low]:.1f} against {ranks[high]:.1f} for {_fmt_group(high)}, on samples of "
        "equal size)"
    )
    meaning = "the encoder describes that group less richly"
    gaps.append(_embedding_gap("rankme", value, low, high, finding, meaning))
    return by_group, gaps, notes


def _rank(gaps: list[Gap]) -> list[Gap]:
    return sorted(gaps, key=lambda gap: (not gap.large, -gap.severity))


def audit_arrays(
    y_true: np.ndarray | None,
    y_pred: np.ndarray | None,
    proba: np.ndarray | None,
    groups: Sequence[str] | np.ndarray,
    embeddings: np.ndarray | None = None,
    *,
    k: int = 10,
    n_boot: int = 200,
    seed: int = 0,
) -> AuditResult:
    """Audit predictions and/or embeddings by group: the core of ``selfsup audit``.

    Args:
        y_true: integer labels ``(n,)``, or None for the embedding checks alone.
        y_pred: predicted labels ``(n,)`` (None with ``y_true``).
        proba: class probabilities ``(n, classes)`` (None with ``y_true``).
        groups: one group name per item.
        embeddings: ``(n, d)`` embeddings for the label-free checks, or None.
        k: neighbours for the purity check.
        n_boot: bootstrap resamples for the intervals of the classifier's metrics.
        seed: seed of the bootstrap, the folds and the RankMe samples.

    Raises:
        ValueError: fewer than two groups, or inputs of different lengths.
    """
    groups = np.asarray(groups).astype(str)
    names, counts = np.unique(groups, return_counts=True)
    if len(names) < 2:
        raise ValueError(f"an audit needs at least two groups, got {list(names)}")
    for what, array in (("labels", y_true), ("predictions", y_pred), ("embeddings", embeddings)):
        if array is not None and len(array) != len(groups):
            raise ValueError(f"{len(array)} {what} for {len(groups)} group entries")
    counted = dict(zip(names.tolist(), counts.tolist(), strict=True))
    result = AuditResult([str(n) for n in names], counted, {})
    gaps: list[Gap] = []
    if y_true is not None:
        if y_pred is None or proba is None:
            raise ValueError("labels need predictions and probabilities to audit")
        by_group, intervals, overall = prediction_metrics(
            np.asarray(y_true), np.asarray(y_pred), np.asarray(proba), groups, n_boot, seed
        )
        result.by_group.update(by_group)
        result.intervals, result.overall = intervals, overall
        gaps += prediction_gaps(by_group, intervals)
    if embeddings is not None:
        by_group, embedding_gaps, notes = embedding_checks(embeddings, groups, k, seed)
        result.by_group.update(by_group)
        result.notes += notes
        gaps += embedding_gaps
    result.gaps = _rank(gaps)
    return result


def plot_audit(result: AuditResult, path: str | os.PathLike) -> Path:
    """A bar chart per metric, one bar per group (95% intervals where known), as PNG."""
    plt = pyplot()

    metrics = list(result.by_group)
    columns = min(4, len(metrics))
    rows = (len(metrics) + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 2.8 * rows), squeeze=False)
    colours = plt.get_cmap("tab10").colors
    large = {gap.check for gap in result.large_gaps}
    for ax, metric in zip(axes.flat, metrics, strict=False):
        values = result.by_group[metric]
        names = list(values)
        heights = [values[g] for g in names]
        errors = None
        if metric in result.intervals:
            spans = result.intervals[metric]
            errors = np.array(
                [[max(0.0, values[g] - spans[g][0]) for g in names],
                 [max(0.0, spans[g][1] - values[g]) for g in names]]
            )  # fmt: skip
        ax.bar(names, heights, yerr=errors, color=colours[: len(names)], capsize=3)
        title = {"separability": "group probe recall", "purity": "kNN group purity"}.get(
            metric, _NAMES.get(metric, metric)
        )
        ax.set_title(title + (" (large gap)" if metric in large else ""), fontsize=9)
        ax.tick_params(labelsize=8)
    for ax in list(axes.flat)[len(metrics) :]:
        ax.axis("off")
    return save_png(fig, path)


def read_groups_file(path: str | os.PathLike, ids: Sequence[str]) -> np.ndarray:
    """The group of each item, in ``ids`` order, from a CSV with columns ``id`` and ``group``.

    Raises:
        ValueError: the columns are missing, or some items have no row (the message names a
            few of them).
    """
    frame = pd.read_csv(path, dtype=str)
    for column in ("id", "group"):
        if column not in frame.columns:
            raise ValueError(f"{path}: no column {column!r}; columns are {list(frame.columns)}")
    lookup = dict(zip(frame["id"], frame["group"], strict=True))
    missing = [item for item in ids if item not in lookup]
    if missing:
        raise ValueError(
            f"{path}: {len(missing)} of {len(ids)} items have no group, e.g. {missing[:3]} "
            "(the ids are those `selfsup embed --out x.parquet` writes)"
        )
    return np.asarray([lookup[item] for item in ids], dtype=str)


def _group_column(data: str | os.PathLike, column: str) -> np.ndarray:
    """The values of ``column`` of a CSV/TSV/Parquet file, as text."""
    from selfsup.data.series import read_table

    if not Path(data).is_file():
        raise ValueError(
            f"{data}: --group COLUMN reads a column of a CSV or Parquet file; for other data "
            "give --groups FILE.csv (columns id,group)"
        )
    frame = read_table(data)
    if column not in frame.columns:
        raise ValueError(f"{data}: no column {column!r}; columns are {list(frame.columns)}")
    values = frame[column]
    if values.isna().any():
        row = int(np.flatnonzero(values.isna().to_numpy())[0])
        raise ValueError(f"{data}: row {row} has no value in group column {column!r}")
    return values.astype(str).to_numpy()


def audit_run(
    run: Run,
    data: str | os.PathLike,
    *,
    group_column: str | None = None,
    groups_file: str | os.PathLike | None = None,
    model: str | os.PathLike | None = None,
    k: int = 10,
    n_boot: int = 200,
    seed: int = 0,
    save: bool = True,
    show_progress: bool = False,
) -> AuditResult:
    """Audit a run on labelled ``data`` split into groups; saves ``audit.json`` and
    ``audit.png`` into the run folder.

    Args:
        run: a :class:`selfsup.run.Run`.
        data: the data to audit (a path or dataset name the run can read).
        group_column: for tables, the column of ``data`` holding each row's group; it is
            not an input of the encoder unless the run was trained with it (a note says so).
        groups_file: for any modality, a CSV with columns ``id,group``.
        model: an adapted model's folder (``selfsup adapt``); without it a logistic
            regression is fitted on the embeddings, its predictions cross-validated.
        k: neighbours for the purity check.
        n_boot: bootstrap resamples of the intervals.
        seed: seed of the folds, bootstrap and samples.
        save: write the results into the run folder.
        show_progress: draw a progress bar while embedding.

    Raises:
        ValueError: neither or both of ``group_column`` and ``groups_file``, a missing column,
            items without a group, or data without labels when there is no model.
    """
    if (group_column is None) == (groups_file is None):
        raise ValueError("give the groups either as --group COLUMN or as --groups FILE.csv")
    source = run.open(data)
    notes: list[str] = []
    if group_column is not None:
        groups = _group_column(data, group_column)
        encoding = getattr(source, "preprocessor", None)  # a table's fitted column encoding
        if encoding is not None and group_column in (*encoding.numeric, *encoding.categorical):
            notes.append(
                f"the encoder was trained with {group_column!r} as an input feature, so it can "
                "tell the groups apart by construction"
            )
    else:
        groups = read_groups_file(groups_file, list(source.ids))
    if len(groups) != len(source):
        raise ValueError(f"{data}: {len(groups)} group values for {len(source)} items")
    embeddings = embed_source(run.encoder, source, show_progress=show_progress)
    keep = ~np.isnan(embeddings).any(axis=1)
    if not keep.all():
        notes.append(f"{int((~keep).sum())} unreadable items left out")

    y_true = y_pred = proba = None
    if model is not None:
        from selfsup.tools.adapt import AdaptedModel

        adapted = AdaptedModel.load(model)
        if source.labels is None:
            raise ValueError(f"{data}: the audit of a model needs labelled data")
        names = source.classes or [str(c) for c in range(int(source.labels.max()) + 1)]
        unknown = sorted(set(names) - set(adapted.classes))
        if unknown:
            raise ValueError(f"{data}: classes {unknown} are not among the model's classes")
        y_true = np.array([adapted.classes.index(names[c]) for c in source.labels])[keep]
        # The model embeds with its own run's encoder (fine-tuned or not): ask it directly.
        proba = np.asarray(adapted.predict_proba(source))[keep]
        notes.insert(0, f"predictions of the adapted model {model}")
    elif source.labels is not None:
        proba = cross_validated_proba(embeddings[keep], source.labels[keep], seed=seed)
        y_true = source.labels[keep]
        notes.insert(
            0,
            "no --model: predictions of a logistic regression on the embeddings, "
            "5-fold cross-validated (each item predicted by a model that did not see it)",
        )
    else:
        notes.insert(0, f"{data} has no labels: only the label-free checks of the embedding")
    if proba is not None:
        y_pred = np.asarray(proba).argmax(axis=1)
    result = audit_arrays(
        y_true, y_pred, proba, groups[keep], embeddings[keep], k=k, n_boot=n_boot, seed=seed
    )
    result.notes = notes + result.notes
    if save:
        result.save(run.path)
    return result
