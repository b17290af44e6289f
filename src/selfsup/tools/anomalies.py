"""Anomaly scores from embeddings, a threshold for a target false-positive rate, and AUROC.

Scorers (higher = more anomalous), fitted on embeddings of normal data:

- ``knn``: distance to the ``k``-th nearest normal embedding, on L2-normalized embeddings
  (Sun et al., "Out-of-Distribution Detection with Deep Nearest Neighbors", ICML 2022).
  Scoring the normal data itself leaves each item out of its own neighbours.
- ``mahalanobis``: squared Mahalanobis distance to the mean of the normal embeddings under
  a Ledoit-Wolf shrinkage covariance (Lee et al., "A Simple Unified Framework for Detecting
  Out-of-Distribution Samples and Adversarial Attacks", NeurIPS 2018; Ledoit & Wolf 2004).

The threshold is the ``1 - fpr`` quantile of the scores of normal items the scorer was not
fitted on (a held-out fifth of the normal data), so about ``fpr`` of new normal items are
flagged.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> normal = rng.normal(size=(500, 4))
    >>> detector = fit_detector(normal, scorer="mahalanobis", fpr=0.05)
    >>> detector.flag(np.array([[0.0, 0.0, 0.0, 0.0], [8.0, 8.0, 8.0, 8.0]])).tolist()
    [False, True]
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.covariance import LedoitWolf
from sklearn.metrics import average_precision_score, roc_auc_score

from selfsup.core.neighbours import euclidean_topk
from selfsup.data.base import Source
from selfsup.embedding import embed_source
from selfsup.run import Run, as_run

SCORERS = ("knn", "mahalanobis")
#: The share of the normal data held out to set the threshold.
THRESHOLD_FRACTION = 0.2


def knn_distance(
    reference: np.ndarray,
    query: np.ndarray,
    k: int = 5,
    leave_one_out: bool = False,
    normalize: bool = True,
    batch_size: int = 1024,
) -> np.ndarray:
    """Euclidean distance from each query row to its ``k``-th nearest reference row.

    Args:
        reference: normal embeddings ``(m, d)``.
        query: embeddings to score ``(n, d)``.
        k: which neighbour, ``1 <= k``; capped at the reference size.
        leave_one_out: ``query`` is ``reference``: skip each row's own match.
        normalize: L2-normalize both first (distance of unit vectors, monotone in cosine).
        batch_size: query rows compared at once (memory ``batch_size x m``).

    Example:
        >>> ref = np.array([[0.0], [1.0], [2.0]])
        >>> knn_distance(ref, np.array([[5.0]]), k=1, normalize=False).tolist()
        [3.0]
        >>> knn_distance(ref, ref, k=1, leave_one_out=True, normalize=False).tolist()
        [1.0, 1.0, 1.0]
    """
    ref = torch.as_tensor(np.asarray(reference), dtype=torch.float32)
    x = torch.as_tensor(np.asarray(query), dtype=torch.float32)
    if normalize:
        ref, x = F.normalize(ref, dim=1), F.normalize(x, dim=1)
    k = max(1, min(k, len(ref) - int(leave_one_out)))
    distances, _ = euclidean_topk(x, ref, k, exclude_self=leave_one_out, chunk=batch_size)
    return distances[:, -1].numpy().astype(np.float64)


class MahalanobisScorer:
    """Squared Mahalanobis distance to the normal mean, Ledoit-Wolf shrinkage covariance.

    Example:
        >>> scorer = MahalanobisScorer(np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [2.0, 2.0]]))
        >>> bool(scorer.score(np.array([[1.0, 1.0]]))[0] < scorer.score(np.array([[5.0, 5.0]]))[0])
        True
    """

    def __init__(self, reference: np.ndarray) -> None:
        self.model = LedoitWolf().fit(np.asarray(reference, dtype=np.float64))

    def score(self, query: np.ndarray) -> np.ndarray:
        """Squared Mahalanobis distances ``(n,)``."""
        return self.model.mahalanobis(np.asarray(query, dtype=np.float64))


@dataclass
class AnomalyDetector:
    """A scorer fitted on normal embeddings and the threshold that flags anomalies.

    Attributes:
        scorer: ``knn`` or ``mahalanobis``.
        reference: the normal embeddings the scorer compares with.
        threshold: scores above it are flagged.
        fpr: the false-positive rate the threshold was set for.
        k: the neighbour of the ``knn`` scorer.
        normalize: whether ``knn`` L2-normalizes the embeddings.
        mahalanobis: the fitted covariance model of the ``mahalanobis`` scorer.
    """

    scorer: str
    reference: np.ndarray
    threshold: float
    fpr: float
    k: int = 5
    normalize: bool = True
    mahalanobis: MahalanobisScorer | None = field(default=None, repr=False)

    def score(self, z: np.ndarray) -> np.ndarray:
        """Anomaly scores ``(n,)`` of embeddings (higher = more anomalous; NaN rows NaN)."""
        z = np.asarray(z, dtype=np.float32)
        out = np.full(len(z), np.nan)
        readable = ~np.isnan(z).any(axis=1)
        if readable.any():
            out[readable] = _score(self, z[readable])
        return out

    def flag(self, z: np.ndarray) -> np.ndarray:
        """Whether each embedding scores above the threshold."""
        return self.score(z) > self.threshold


def _score(detector: AnomalyDetector, z: np.ndarray) -> np.ndarray:
    if detector.mahalanobis is not None:
        return detector.mahalanobis.score(z)
    return knn_distance(detector.reference, z, detector.k, normalize=detector.normalize)


def fit_detector(
    normal: np.ndarray,
    scorer: str = "knn",
    k: int = 5,
    fpr: float = 0.05,
    seed: int = 0,
    normalize: bool = True,
) -> AnomalyDetector:
    """Fit a scorer on most of the normal embeddings and set the threshold on the rest.

    Args:
        normal: embeddings of normal items ``(n, d)``, at least 10 readable rows.
        scorer: ``knn`` or ``mahalanobis``.
        k: the neighbour of ``knn``.
        fpr: the target false-positive rate, in ``(0, 1)``.
        seed: seeds the held-out split.
        normalize: L2-normalize for ``knn`` (off for raw features).

    Raises:
        ValueError: an unknown scorer, ``fpr`` outside ``(0, 1)`` or too little normal data.

    Example:
        >>> detector = fit_detector(np.random.default_rng(0).normal(size=(100, 2)), k=3)
        >>> detector.scorer, round(detector.fpr, 2)
        ('knn', 0.05)
    """
    if scorer not in SCORERS:
        raise ValueError(f"unknown scorer {scorer!r}; known: {', '.join(SCORERS)}")
    if not 0 < fpr < 1:
        raise ValueError(f"the false-positive rate must be in (0, 1), got {fpr}")
    normal = np.asarray(normal, dtype=np.float32)
    normal = normal[~np.isnan(normal).any(axis=1)]
    if len(normal) < 10:
        raise ValueError(f"anomaly scores need at least 10 normal items, got {len(normal)}")
    order = np.random.default_rng(seed).permutation(len(normal))
    held = max(1, round(THRESHOLD_FRACTION * len(normal)))
    fit, calibrate = normal[np.sort(order[held:])], normal[np.sort(order[:held])]
    detector = AnomalyDetector(scorer, fit, np.inf, fpr, k, normalize)
    if scorer == "mahalanobis":
        detector.mahalanobis = MahalanobisScorer(fit)
    detector.threshold = float(np.quantile(_score(detector, calibrate), 1 - fpr))
    return detector


def self_scores(z: np.ndarray, k: int = 5, normalize: bool = True) -> np.ndarray:
    """Leave-one-out kNN scores of data that is its own reference (no separate normal
    data); unreadable (NaN) rows score NaN.

    Example:
        >>> self_scores(np.array([[0.0], [1.0], [2.0], [9.0]]), k=1, normalize=False).tolist()
        [1.0, 1.0, 1.0, 7.0]
    """
    z = np.asarray(z, dtype=np.float32)
    out = np.full(len(z), np.nan)
    readable = ~np.isnan(z).any(axis=1)
    out[readable] = knn_distance(
        z[readable], z[readable], k, leave_one_out=True, normalize=normalize
    )
    return out


@dataclass
class DetectionQuality:
    """How well scores separate anomalies from normal items.

    Attributes:
        auroc: area under the ROC curve.
        auprc: area under the precision-recall curve (average precision); chance level is
            the share of anomalies.
        anomalies: the number of anomalous items.
        items: the number of items scored.
        flagged_fpr: the share of normal items flagged (when flags are given).
        flagged_recall: the share of anomalies flagged (when flags are given).
    """

    auroc: float
    auprc: float
    anomalies: int
    items: int
    flagged_fpr: float | None = None
    flagged_recall: float | None = None


def detection_quality(
    scores: np.ndarray, is_anomaly: np.ndarray, flagged: np.ndarray | None = None
) -> DetectionQuality:
    """AUROC and AUPRC of scores against known anomalies (NaN scores left out).

    Raises:
        ValueError: only one kind (normal or anomalous) among the scored items.

    Example:
        >>> detection_quality(np.array([0.1, 0.2, 0.9]), np.array([False, False, True])).auroc
        1.0
    """
    scores, is_anomaly = np.asarray(scores, dtype=np.float64), np.asarray(is_anomaly, dtype=bool)
    kept = ~np.isnan(scores)
    scores, is_anomaly = scores[kept], is_anomaly[kept]
    if is_anomaly.all() or not is_anomaly.any():
        raise ValueError("AUROC needs both normal and anomalous items among the labels")
    quality = DetectionQuality(
        auroc=float(roc_auc_score(is_anomaly, scores)),
        auprc=float(average_precision_score(is_anomaly, scores)),
        anomalies=int(is_anomaly.sum()),
        items=len(scores),
    )
    if flagged is not None:
        flagged = np.asarray(flagged, dtype=bool)[kept]
        quality.flagged_fpr = float(flagged[~is_anomaly].mean())
        quality.flagged_recall = float(flagged[is_anomaly].mean())
    return quality


def anomalous_items(
    data: Source, anomaly_labels: list[str] | None, normal: Source | None = None
) -> np.ndarray | None:
    """Which items of labelled ``data`` count as anomalies: those whose class is in
    ``anomaly_labels``, else (when the normal data has labels) those of a class absent from
    the normal data; None when neither tells.

    Raises:
        ValueError: an anomaly label that is not a class of ``data``.

    Example:
        >>> from selfsup.data.arrays import ArraySource
        >>> data = ArraySource(np.zeros((3, 2, 2), np.uint8), labels=np.array(["a", "b", "a"]))
        >>> anomalous_items(data, ["b"]).tolist()
        [False, True, False]
    """
    if data.labels is None:
        return None
    names = [str(c) for c in (data.classes or range(int(data.labels.max()) + 1))]
    item_class = np.asarray(names, dtype=object)[data.labels]
    if anomaly_labels:
        unknown = sorted(set(anomaly_labels) - set(names))
        if unknown:
            raise ValueError(
                f"{data.name}: anomaly labels {unknown} are not classes of the data "
                f"(its classes: {', '.join(names)})"
            )
        return np.isin(item_class, list(anomaly_labels))
    if normal is not None and normal.labels is not None:
        normal_names = [str(c) for c in (normal.classes or range(int(normal.labels.max()) + 1))]
        seen = {normal_names[c] for c in np.unique(normal.labels)}
        return ~np.isin(item_class, sorted(seen))
    return None


@dataclass
class AnomalyReport:
    """What :func:`score_for_run` found.

    Attributes:
        table: ``id``, ``score``, ``flagged`` per item of the data.
        threshold: the score above which items are flagged.
        quality: AUROC and AUPRC when the anomalies are known, else None.
        reference: what the scores compare with, in words.
    """

    table: pd.DataFrame
    threshold: float
    quality: DetectionQuality | None
    reference: str


def score_for_run(
    run: Run | str | os.PathLike,
    data: str | os.PathLike | Source,
    normal: str | os.PathLike | Source | None = None,
    scorer: str = "knn",
    k: int = 5,
    fpr: float = 0.05,
    anomaly_labels: list[str] | None = None,
    seed: int = 0,
    show_progress: bool = False,
) -> AnomalyReport:
    """Anomaly scores of ``data`` from a run's embeddings.

    With ``normal`` data, the scorer is fitted on most of its embeddings and the threshold
    set on the rest (:func:`fit_detector`). Without, ``data`` is its own reference: leave-one-
    out kNN scores (``knn`` only), flagging the top ``fpr`` share of them.

    Args:
        run: a :class:`selfsup.run.Run` or its folder.
        data: the items to score (anything the run reads).
        normal: normal (anomaly-free) data, or None.
        scorer: ``knn`` or ``mahalanobis``.
        k: the neighbour of ``knn``.
        fpr: the target false-positive rate.
        anomaly_labels: class names of ``data`` that are anomalies, for AUROC and AUPRC.
        seed: seeds the held-out split of the normal data.
        show_progress: draw progress bars while embedding.
    """
    run = as_run(run)
    source = run.open(data)
    z = embed_source(run.encoder, source, show_progress=show_progress)
    normal_source = None
    if normal is not None:
        normal_source = run.open(normal)
        normal_z = embed_source(run.encoder, normal_source, show_progress=show_progress)
        detector = fit_detector(normal_z, scorer, k, fpr, seed)
        scores, threshold = detector.score(z), detector.threshold
        reference = f"{scorer} against {normal_source.name} ({len(normal_source)} items)"
    else:
        if scorer != "knn":
            raise ValueError(f"the {scorer} scorer needs normal data: give --normal")
        scores = self_scores(z, k)
        threshold = float(np.nanquantile(scores, 1 - fpr))
        reference = f"leave-one-out knn within {source.name} (no normal data given)"
    flagged = scores > threshold
    table = pd.DataFrame({"id": list(source.ids), "score": scores, "flagged": flagged})
    is_anomaly = anomalous_items(source, anomaly_labels, normal_source)
    quality = None if is_anomaly is None else detection_quality(scores, is_anomaly, flagged)
    return AnomalyReport(table, threshold, quality, reference)
