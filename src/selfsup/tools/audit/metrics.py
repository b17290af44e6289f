"""What an audit measures, per group: prediction metrics (accuracy, ECE, error rates) and their
gaps, and how the embedding itself treats the groups (kNN purity, separability, RankMe)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from selfsup.core.neighbours import cosine_topk
from selfsup.evaluation.labelfree import rankme
from selfsup.evaluation.linear import fit_logistic_regression, standardize
from selfsup.tools.calibration import calibration_error

#: How large a gap between the worst and the best group must be to be reported as large:
#: absolute for the rates (0.05 = 5 points), normalized to [0, 1] for the embedding checks.
LARGE_GAP = {
    "accuracy": 0.05,
    "ece": 0.05,
    "fpr": 0.05,
    "fnr": 0.05,
    "auroc": 0.05,
    "separability": 0.2,
    "purity": 0.2,
    "rankme": 0.25,
}
#: Items x classes x resamples of the AUROC's bootstrap (about 30 s on two cores): more
#: classes or items get fewer resamples of it, not fewer than MIN_AUROC_BOOT.
AUROC_WORK = 1_000_000_000
MIN_AUROC_BOOT = 50
#: The classifier's metrics and whether a higher value is worse.
PREDICTION_METRICS = {"accuracy": False, "ece": True, "fpr": True, "fnr": True, "auroc": False}
_NAMES = {
    "accuracy": "accuracy",
    "ece": "calibration error (ECE)",
    "fpr": "false positive rate",
    "fnr": "false negative rate",
    "auroc": "AUROC",
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


def _fmt_group(name: str | None) -> str:
    return f"group {name!s}"


def weighted_group_metrics(
    codes: np.ndarray,
    groups: int,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    confidence: np.ndarray,
    num_classes: int,
    weights: np.ndarray,
    bins: int = 15,
) -> dict[str, np.ndarray]:
    """Accuracy, ECE, FPR and FNR per group (as :func:`prediction_metrics` defines them) with
    each item counted ``weights`` times, from a few ``np.bincount`` calls: a bootstrap
    resample is the counts of each item drawn (NaN for a group left out of it).

    Example:
        >>> codes, y = np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1])
        >>> out = weighted_group_metrics(codes, 2, y, np.array([0, 0, 0, 1]),
        ...                              np.full(4, 0.75), 2, np.ones(4))
        >>> out["accuracy"].tolist(), out["fnr"].tolist(), out["ece"].tolist()
        ([0.5, 1.0], [1.0, 0.0], [0.25, 0.25])
    """
    weights = np.asarray(weights, dtype=np.float64)
    correct = (y_true == y_pred).astype(np.float64)
    total = np.bincount(codes, weights, minlength=groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.bincount(codes, weights * correct, minlength=groups) / total
        edges = np.linspace(0.0, 1.0, bins + 1)
        which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
        cell = codes * bins + which
        gap = np.bincount(cell, weights * (correct - confidence), minlength=groups * bins)
        ece = np.abs(gap.reshape(groups, bins)).sum(axis=1) / total

        def per_class(labels: np.ndarray, w: np.ndarray) -> np.ndarray:
            cells = codes * num_classes + labels
            return np.bincount(cells, w, minlength=groups * num_classes).reshape(groups, -1)

        positives = per_class(y_true, weights)
        predicted = per_class(y_pred, weights)
        hits = per_class(y_true, weights * correct)
        chosen = [1] if num_classes == 2 else list(range(num_classes))
        negatives = total[:, None] - positives
        fpr = np.where(negatives > 0, (predicted - hits) / negatives, np.nan)[:, chosen]
        fnr = np.where(positives > 0, (positives - hits) / positives, np.nan)[:, chosen]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a group with no rate: NaN
        return {
            "accuracy": accuracy,
            "ece": ece,
            "fpr": np.nanmean(fpr, axis=1),
            "fnr": np.nanmean(fnr, axis=1),
        }


class GroupAUROC:
    """The AUROC of two-class scores per group, for any weights of the items (a bootstrap
    resample's counts), in a few ``np.bincount`` calls: items are sorted by group and score
    once; ties count one half. A group without both classes is NaN.

    Where one class is rare (fraud, 1% of transactions) the error rates at the most probable
    class say nothing (every group's false negative rate 1.0: nothing is predicted fraud);
    the AUROC compares groups on how well the scores rank, at every threshold.

    Example:
        >>> auroc = GroupAUROC(np.array([0, 0, 0, 1, 1]), 2, np.array([0, 1, 1, 0, 1]),
        ...                    np.array([0.1, 0.9, 0.1, 0.3, 0.2]))
        >>> auroc(np.ones(5)).tolist()
        [0.75, 0.0]
    """

    def __init__(self, codes: np.ndarray, groups: int, positive: np.ndarray, score: np.ndarray):
        self.order = np.lexsort((score, codes))
        c, s = codes[self.order], score[self.order]
        new = np.r_[True, (c[1:] != c[:-1]) | (s[1:] != s[:-1])]
        block = np.cumsum(new) - 1  # items of one group and one score
        blocks = int(block[-1]) + 1 if len(block) else 0
        block_group = np.zeros(blocks, dtype=np.int64)
        block_group[block] = c
        # Each group's blocks, first to last + 1: groups are sorted, so a group's sums are
        # differences of running sums, with no per-group pass.
        self.edges = np.r_[np.searchsorted(block_group, np.arange(groups)), blocks]
        self.block = None if blocks == len(block) else block  # None: no ties, one item a block
        self.blocks = blocks
        self.positive = np.asarray(positive, dtype=bool)[self.order]

    def __call__(self, weights: np.ndarray) -> np.ndarray:
        w = np.asarray(weights, dtype=np.float64)[self.order]
        wp = w * self.positive
        wn = w - wp
        if self.block is not None:
            wp = np.bincount(self.block, wp, minlength=self.blocks)
            wn = np.bincount(self.block, wn, minlength=self.blocks)
        first, after = self.edges[:-1], self.edges[1:]
        negatives_to = _running_sum(wn)  # negatives of lower blocks, from the first group on
        positives_to = _running_sum(wp)
        # Each positive beats the negatives below it in its group (half of a tie): those
        # below it from the first group on, less those of the groups before its own.
        ranked_to = _running_sum(wp * (negatives_to[:-1] + 0.5 * wn))
        positives = positives_to[after] - positives_to[first]
        ranked = ranked_to[after] - ranked_to[first] - negatives_to[first] * positives
        pairs = positives * (negatives_to[after] - negatives_to[first])
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(pairs > 0, ranked / pairs, np.nan)


def _running_sum(x: np.ndarray) -> np.ndarray:
    """``[0, x0, x0 + x1, ...]``: ``n + 1`` running sums of ``x``.

    Example:
        >>> _running_sum(np.array([1.0, 2.0, 3.0])).tolist()
        [0.0, 1.0, 3.0, 6.0]
    """
    out = np.empty(len(x) + 1)
    out[0] = 0.0
    np.cumsum(x, out=out[1:])
    return out


class MacroAUROC:
    """Per group, the mean over classes of each class's AUROC against the rest (its
    probability ranking its items above the others'; sklearn's ``multi_class="ovr"``,
    ``average="macro"``): one :class:`GroupAUROC` per class, for any weights of the items. A
    class without items, or with every item, in a group is left out of its mean; a group
    with none left is NaN. For two classes it is the second class's AUROC (the first's is
    the same).

    Example:
        >>> y = np.array([0, 1, 2, 0, 1, 2])
        >>> proba = np.eye(3)[[0, 1, 2, 1, 0, 2]] * 0.8 + 0.1
        >>> MacroAUROC(np.array([0, 0, 0, 1, 1, 1]), 2, y, proba)(np.ones(6)).tolist()
        [1.0, 0.5]
    """

    def __init__(self, codes: np.ndarray, groups: int, y_true: np.ndarray, proba: np.ndarray):
        proba = np.asarray(proba, dtype=np.float64)
        classes = [1] if proba.shape[1] == 2 else range(proba.shape[1])
        self.parts = [GroupAUROC(codes, groups, y_true == c, proba[:, c]) for c in classes]

    def __call__(self, weights: np.ndarray) -> np.ndarray:
        values = np.stack([part(weights) for part in self.parts])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a group without any: NaN
            return np.nanmean(values, axis=0)


def prediction_metrics(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    proba: np.ndarray,
    groups: np.ndarray,
    n_boot: int = 200,
    seed: int = 0,
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, list[float]]], dict[str, float]]:
    """Accuracy, ECE, FPR, FNR and AUROC per group with bootstrap 95% intervals (fairlearn's
    bootstrap); the AUROC of the second class's probability for two classes, the mean of
    each class's against the rest for more (:class:`MacroAUROC`).

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

    y_true, y_pred = np.asarray(y_true).astype(int), np.asarray(y_pred).astype(int)
    confidence = np.asarray(proba).max(axis=1)
    num_classes = max(int(proba.shape[1]), int(y_true.max()) + 1, int(y_pred.max()) + 1)
    metrics = {
        "accuracy": lambda t, p: float(np.mean(t == p)),
        "ece": lambda t, p, confidence: calibration_error(t == p, confidence),
        "fpr": lambda t, p: _one_vs_rest_rates(np.asarray(t), np.asarray(p), num_classes)[0],
        "fnr": lambda t, p: _one_vs_rest_rates(np.asarray(t), np.asarray(p), num_classes)[1],
    }
    names = pd.Series(np.asarray(groups).astype(str), name="group")
    frame = MetricFrame(  # the values themselves: fairlearn's
        metrics=metrics,
        y_true=y_true,
        y_pred=y_pred,
        sensitive_features=names,
        sample_params={"ece": {"confidence": confidence}},
    )
    by_group = {m: {str(g): float(v) for g, v in frame.by_group[m].items()} for m in metrics}
    overall = {m: float(frame.overall[m]) for m in metrics}
    # The intervals: the same bootstrap as MetricFrame's (n items drawn with replacement,
    # 2.5% and 97.5% quantiles), each resample counted in a few bincounts instead of
    # pandas groupbys of Python functions (108 s for 20,000 items; now under a second).
    order = [str(g) for g in frame.by_group.index]
    codes = pd.Categorical(names, categories=order).codes.astype(np.int64)
    auroc = MacroAUROC(codes, len(order), y_true, proba)
    by_group["auroc"] = dict(zip(order, auroc(np.ones(len(codes))).tolist(), strict=True))
    overall["auroc"] = float(MacroAUROC(codes * 0, 1, y_true, proba)(np.ones(len(codes)))[0])
    rng = np.random.default_rng(seed)
    n = len(y_true)
    # A resample's AUROC costs a pass over the items per class: the first resamples only,
    # where classes x items x resamples would pass AUROC_WORK.
    auroc_boot = min(n_boot, max(MIN_AUROC_BOOT, AUROC_WORK // (len(auroc.parts) * n)))
    draws = {m: np.empty((n_boot, len(order))) for m in by_group}
    draws["auroc"] = draws["auroc"][:auroc_boot]
    for b in range(n_boot):
        counts = np.bincount(rng.integers(0, n, n), minlength=n)
        found = weighted_group_metrics(
            codes, len(order), y_true, y_pred, confidence, num_classes, counts
        )
        if b < auroc_boot:
            found["auroc"] = auroc(counts)
        for m in found:
            draws[m][b] = found[m]
    intervals = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a metric no resample defines
        for m in by_group:
            low, high = np.nanquantile(draws[m], [0.025, 0.975], axis=0)
            intervals[m] = {g: [float(low[i]), float(high[i])] for i, g in enumerate(order)}
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
        elif metric == "auroc":
            sentence += ": its positives are ranked less well above its negatives."
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


#: Items the group probe of :func:`group_separability` is cross-validated on at most: a
#: sample stratified by group above it. A million transactions of 60 countries took 385 s
#: (five multinomial fits of 200 L-BFGS steps); a recall per group needs far fewer.
SEPARABILITY_MOST = 100_000


def group_sample(codes: np.ndarray, most: int, seed: int = 0, floor: int = 5) -> np.ndarray:
    """Positions of a random sample of about ``most`` items stratified by ``codes`` (each
    group keeping its share, and ``floor`` items at least where it has them, so a rare group
    is still cross-validated), in order; all of them when there are at most ``most``.

    Example:
        >>> codes = np.repeat([0, 1], [990, 10])
        >>> rows = group_sample(codes, 100)
        >>> len(rows), int((codes[rows] == 1).sum())
        (104, 5)
    """
    if len(codes) <= most:
        return np.arange(len(codes))
    rng = np.random.default_rng(seed)
    share = most / len(codes)
    parts = []
    for code in np.unique(codes):
        members = np.flatnonzero(codes == code)
        take = min(len(members), max(floor, round(share * len(members))))
        parts.append(rng.choice(members, take, replace=False))
    return np.sort(np.concatenate(parts))


def group_separability(
    embeddings: np.ndarray,
    groups: np.ndarray,
    folds: int = 5,
    seed: int = 0,
    most: int | None = None,
) -> tuple[float, dict[str, float]]:
    """How well a linear probe tells the groups apart from the embedding alone, on at most
    ``most`` items (by default :data:`SEPARABILITY_MOST`; see :func:`group_sample`).

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
    rows = group_sample(codes, SEPARABILITY_MOST if most is None else most, seed)
    if len(rows) < len(codes):
        embeddings, codes = np.asarray(embeddings)[rows], codes[rows]
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
