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
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.covariance import LedoitWolf
from sklearn.metrics import average_precision_score, roc_auc_score

from selfsup.core.neighbours import cosine_topk, euclidean_topk
from selfsup.core.progress import ShowProgress, activity
from selfsup.data.base import Source
from selfsup.data.splits import held_out_rows, labelled_part
from selfsup.embedding import embeddings_tensor, readable_rows
from selfsup.run import Run, as_run

SCORERS = ("knn", "mahalanobis")
#: The share of the normal data held out to set the threshold.
THRESHOLD_FRACTION = 0.2
#: Normal items a detector is fitted on at most (the k-NN reference, the Mahalanobis
#: covariance): above it, a random sample of this many. Ten million normal transactions
#: were copied whole (10 GB, then 8 GB more for the reference) and searched as n^1.5.
REFERENCE_MOST = 1_000_000
#: Held-out normal items the threshold is set on at most: the false-positive rate of a 95%
#: quantile of 250,000 scores is within 0.1 points of 5% (two standard errors).
CALIBRATE_MOST = 250_000


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
        normalize: the distance of the rows made unit length, ``sqrt(2 - 2 cos)`` (monotone
            in cosine; a zero row is orthogonal to every row), computed without copies.
        batch_size: query rows compared at once (memory ``batch_size x m``).

    Example:
        >>> ref = np.array([[0.0], [1.0], [2.0]])
        >>> knn_distance(ref, np.array([[5.0]]), k=1, normalize=False).tolist()
        [3.0]
        >>> knn_distance(ref, ref, k=1, leave_one_out=True, normalize=False).tolist()
        [1.0, 1.0, 1.0]
    """
    ref = embeddings_tensor(reference)
    x = ref if query is reference else embeddings_tensor(query)
    k = max(1, min(k, len(ref) - int(leave_one_out)))
    if normalize:  # |a - b| = sqrt(2 - 2 cos) for unit rows: no normalized copies
        similarity, _ = cosine_topk(x, ref, k, exclude_self=leave_one_out, chunk=batch_size)
        cos = similarity[:, -1].double()
        return torch.sqrt((2 - 2 * cos).clamp_min(0)).numpy()
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
        calibration_items: how many held-out normal items the threshold was set on (its
            quantile's own sampling error: 2,048 give the rate asked to about a point).
    """

    scorer: str
    reference: np.ndarray
    threshold: float
    fpr: float
    k: int = 5
    normalize: bool = True
    mahalanobis: MahalanobisScorer | None = field(default=None, repr=False)
    calibration_items: int = 0

    def score(self, z: np.ndarray) -> np.ndarray:
        """Anomaly scores ``(n,)`` of embeddings (higher = more anomalous; NaN rows NaN)."""
        z = np.asarray(z, dtype=np.float32)
        out = np.full(len(z), np.nan)
        readable = readable_rows(z)
        if readable.all():  # no copy of a million embeddings when every row is readable
            out[:] = _score(self, z)
        elif readable.any():
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
    calibrate_rows: np.ndarray | None = None,
    reference_most: int | None = None,
) -> AnomalyDetector:
    """Fit a scorer on most of the normal embeddings and set the threshold on the rest.

    Of more normal items, the scorer is fitted on a random sample of ``reference_most`` (by
    default :data:`REFERENCE_MOST`) and the threshold set on at most
    :data:`CALIBRATE_MOST` of the others: both sides are scored against the same sample, so
    the false-positive rate holds (Sugiyama and Borgwardt 2013 on kNN distances to a
    sample), and only the rows chosen are read from a memory-mapped file.

    The threshold must come from items scored as new items will be: items the scorer was
    not fitted on and, for a trained encoder, items the encoder did not train on (those it
    trained on sit closer to each other and score lower, so a threshold set on them flags
    more than ``fpr`` of new normal items). ``calibrate_rows`` names such rows; without it a
    random ``THRESHOLD_FRACTION`` of the normal items is used.

    Args:
        normal: embeddings of normal items ``(n, d)``, at least 10 readable rows.
        scorer: ``knn`` or ``mahalanobis``.
        k: the neighbour of ``knn``.
        fpr: the target false-positive rate, in ``(0, 1)``.
        seed: seeds the held-out split.
        normalize: L2-normalize for ``knn`` (off for raw features).
        calibrate_rows: rows of ``normal`` to set the threshold on (the scorer is fitted on
            the others).
        reference_most: the most normal items the scorer is fitted on.

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
    normal = normal if isinstance(normal, np.ndarray) else np.asarray(normal, np.float32)
    readable = readable_rows(normal)
    if readable.sum() < 10:
        raise ValueError(f"anomaly scores need at least 10 normal items, got {readable.sum()}")
    if calibrate_rows is not None:
        chosen = np.zeros(len(normal), dtype=bool)
        chosen[np.asarray(calibrate_rows, dtype=int)] = True
        fit_rows, calibrate_rows = (
            np.flatnonzero(readable & ~chosen),
            np.flatnonzero(readable & chosen),
        )
    else:
        rows = np.flatnonzero(readable)
        order = np.random.default_rng(seed).permutation(len(rows))
        held = max(1, round(THRESHOLD_FRACTION * len(rows)))
        fit_rows, calibrate_rows = rows[np.sort(order[held:])], rows[np.sort(order[:held])]
    most = REFERENCE_MOST if reference_most is None else reference_most
    rng = np.random.default_rng(seed)
    if len(fit_rows) > most:  # the reference: a random sample of the normal items
        fit_rows = np.sort(rng.choice(fit_rows, most, replace=False))
    if len(calibrate_rows) > CALIBRATE_MOST:  # the threshold's quantile needs no more
        calibrate_rows = np.sort(rng.choice(calibrate_rows, CALIBRATE_MOST, replace=False))
    fit = np.asarray(normal[fit_rows], dtype=np.float32)  # the rows chosen only are read
    calibrate = np.asarray(normal[calibrate_rows], dtype=np.float32)
    detector = AnomalyDetector(scorer, fit, np.inf, fpr, k, normalize)
    detector.calibration_items = len(calibrate)
    if scorer == "mahalanobis":
        detector.mahalanobis = MahalanobisScorer(fit)
    detector.threshold = float(np.quantile(_score(detector, calibrate), 1 - fpr))
    return detector


#: Items a leave-one-out kNN score compares each item with at most: above it, a random
#: sample of this many. Sugiyama and Borgwardt ("Rapid distance-based outlier detection via
#: sampling", NeurIPS 2013) find that distances to one small random sample rank outliers as
#: well as distances to all items; the search among all grows as n^1.5 (3,000,000
#: transactions: 5 minutes), among a sample as n.
SELF_REFERENCE_MOST = 1_000_000


def self_scores(
    z: np.ndarray,
    k: int = 5,
    normalize: bool = True,
    most: int | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Leave-one-out kNN scores of data that is its own reference (no separate normal
    data): each item's distance to its ``k``-th nearest other item, among all of them up to
    ``most`` (by default :data:`SELF_REFERENCE_MOST`), else among a random sample of
    ``most`` of them (seeded; a sampled item's own row is left out, so every item is
    compared with as many others); unreadable (NaN) rows score NaN.

    Example:
        >>> self_scores(np.array([[0.0], [1.0], [2.0], [9.0]]), k=1, normalize=False).tolist()
        [1.0, 1.0, 1.0, 7.0]
        >>> far = self_scores(np.r_[np.arange(100.0), 500.0][:, None], 2, False, most=50)
        >>> int(np.argmax(far)), bool(far[:100].max() < 10)
        (100, True)
    """
    z = np.asarray(z, dtype=np.float32)
    out = np.full(len(z), np.nan)
    readable = readable_rows(z)
    kept = z if readable.all() else z[readable]
    most = SELF_REFERENCE_MOST if most is None else most
    if len(kept) <= most:
        out[readable] = knn_distance(kept, kept, k, leave_one_out=True, normalize=normalize)
    else:
        out[readable] = _kth_among_sample(kept, k, normalize, most, seed)
    return out


def _kth_among_sample(z: np.ndarray, k: int, normalize: bool, most: int, seed: int) -> np.ndarray:
    """Each row's distance to its ``k``-th nearest row of a random sample of ``most`` rows,
    its own row left out where it is one of them (its (k+1)-th, the first being itself at
    distance 0, or a copy of it: the same distance either way)."""
    sample = np.sort(np.random.default_rng(seed).choice(len(z), most, replace=False))
    reference, rows = embeddings_tensor(z[sample]), embeddings_tensor(z)
    if normalize:
        similarity, _ = cosine_topk(rows, reference, k + 1)
        nearest = torch.sqrt((2 - 2 * similarity.double()).clamp_min(0))
    else:
        nearest = euclidean_topk(rows, reference, k + 1)[0].double()
    column = np.full(len(z), k - 1)
    column[sample] = k  # a sampled row's first neighbour is itself
    return nearest.gather(1, torch.from_numpy(column)[:, None]).flatten().numpy()


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
    #: How the threshold was set, and warnings (expected vs measured false-positive rate).
    notes: list[str] = field(default_factory=list)
    fpr: float = 0.05


def score_for_run(
    run: Run | str | os.PathLike,
    data: str | os.PathLike | Source,
    normal: str | os.PathLike | Source | None = None,
    scorer: str = "knn",
    k: int = 5,
    fpr: float = 0.05,
    anomaly_labels: list[str] | None = None,
    seed: int = 0,
    show_progress: ShowProgress = "auto",
) -> AnomalyReport:
    """Anomaly scores of ``data`` from a run's embeddings.

    With ``normal`` data, the scorer is fitted on most of its embeddings and the threshold
    set on the rest (:func:`fit_detector`). When the normal data is the data the run trained
    on, the threshold is set on the run's held-out monitor items, which its encoder never
    trained on (items it trained on score lower than new ones); with none held out, a note
    says the rate will be exceeded. Without normal data, ``data`` is its own reference:
    leave-one-out kNN scores (``knn`` only), flagging the top ``fpr`` share of them. When
    labels tell the anomalies, the measured false-positive rate is compared with ``fpr``.

    Args:
        run: a :class:`selfsup.run.Run` or its folder.
        data: the items to score (anything the run reads).
        normal: normal (anomaly-free) data, or None.
        scorer: ``knn`` or ``mahalanobis``.
        k: the neighbour of ``knn``.
        fpr: the target false-positive rate.
        anomaly_labels: class names of ``data`` that are anomalies, for AUROC and AUPRC.
        seed: seeds the held-out split of the normal data.
        show_progress: draw progress bars while embedding (``"auto"``: once it has taken
            a few seconds).
    """
    run = as_run(run)
    source = run.open(data)
    z = run.embeddings(source, show_progress=show_progress)
    normal_source = None
    notes: list[str] = []
    if normal is not None:
        normal_source = run.open(normal)
        normal_z = run.embeddings(normal_source, show_progress=show_progress)
        calibrate = None
        if _is_training_data(run, normal, normal_source):
            trained = run.summary.get("items", 0) + run.summary.get("held_out_items", 0)
            calibrate = held_out_rows(
                len(normal_source), int(run.config.get("monitor_items", 0)),
                int(run.config.get("seed", 0)),
            )  # fmt: skip
            if trained and trained != len(normal_source):  # it trained on windows of them
                calibrate = None
                notes.append(
                    f"warning: {normal_source.name} is the data the encoder trained on, read "
                    f"then as {trained:,} items (windows of long series, or the data "
                    f"changed), not {len(normal_source):,}: the threshold is set on items it "
                    f"trained on, so new normal items will be flagged more often than {fpr}; "
                    "give normal data the run did not train on"
                )
            elif calibrate is None:
                notes.append(
                    f"warning: {normal_source.name} is the data the encoder trained on and the "
                    "run held no items out (--monitor-items 0): the threshold is set on items "
                    f"it trained on, so new normal items will be flagged more often than {fpr}; "
                    "give normal data the run did not train on"
                )
            else:
                notes.append(
                    f"threshold set on the {len(calibrate)} items of {normal_source.name} the "
                    "encoder never trained on (the run's held-out monitor items)"
                )
        with activity(f"fitting the {scorer} scorer on {len(normal_z):,} normal items"):
            detector = fit_detector(normal_z, scorer, k, fpr, seed, calibrate_rows=calibrate)
        with activity(f"scoring {len(z):,} items"):
            scores, threshold = detector.score(z), detector.threshold
        reference = f"{scorer} against {normal_source.name} ({len(normal_source):,} items"
        reference += (
            f", fitted on a random sample of {REFERENCE_MOST:,} of them)"
            if len(detector.reference) == REFERENCE_MOST < len(normal_source)
            else ")"
        )
    else:
        if scorer != "knn":
            raise ValueError(f"the {scorer} scorer needs normal data: give --normal")
        among = (
            "them"
            if len(z) <= SELF_REFERENCE_MOST
            else f"a random sample of {SELF_REFERENCE_MOST:,} of them"
        )
        with activity(f"scoring {len(z):,} items by their {k}th neighbour among {among}"):
            scores = self_scores(z, k, seed=seed)
        threshold = float(np.nanquantile(scores, 1 - fpr))
        reference = f"leave-one-out knn within {source.name} (no normal data given)"
        if len(z) > SELF_REFERENCE_MOST:
            reference += f", each item's {k}th neighbour among {among}"
    flagged = scores > threshold
    table = pd.DataFrame({"id": list(source.ids), "score": scores, "flagged": flagged})
    # Of data labelled on some rows only (a fraud column filled for the cases looked at),
    # the labelled rows tell the anomalies.
    labelled = labelled_part(source)
    partial = source.partial_labels if labelled is not source else None
    rows = partial.rows if partial is not None else np.arange(len(source))
    normal_labelled = None if normal_source is None else labelled_part(normal_source)
    is_anomaly = anomalous_items(labelled, anomaly_labels, normal_labelled)
    quality, measured = None, None
    if is_anomaly is not None:
        judged_scores, judged_flags = scores[rows], flagged[rows]
        scored = ~np.isnan(judged_scores)
        normal_rows = scored & ~is_anomaly
        if normal_rows.any():
            measured = (float(judged_flags[normal_rows].mean()), int(normal_rows.sum()))
        if 0 < is_anomaly[scored].sum() < scored.sum():
            quality = detection_quality(judged_scores, is_anomaly, judged_flags)
    if measured is not None and normal_source is None:
        # The top fpr of all items are flagged, the anomalies among them: the normal items'
        # share is below fpr by construction when the scores find anomalies, which says
        # nothing of a threshold (3,000,000 transactions were warned that "the threshold does
        # not hold", 0.049 for 0.05).
        rate, normal_count = measured
        notes.append(
            f"flagged {rate:.3f} of the {normal_count:,} normal items: the top {fpr} of all "
            "items are flagged, anomalies among them (--normal sets the threshold on normal "
            "data instead)"
        )
    elif measured is not None:
        rate, normal_count = measured
        told = ""
        if not anomaly_labels:  # normal: the classes the normal data holds
            told = (
                f" (normal: of a class {normal_source.name} holds; --anomaly-label CLASS says "
                "which classes are anomalies)"
            )
        notes.append(
            f"flagged {rate:.3f} of the {normal_count:,} normal items{told} (expected {fpr})"
        )
        # Three binomial standard deviations around the target, of the items measured and
        # of those the threshold was set on (2,048 monitor items put it a point either way:
        # 2,000,000 items flagged at 0.053 were warned of a margin of 0.00046): beyond, it
        # does not hold.
        calibrated = max(1, detector.calibration_items)
        spread = 3 * np.sqrt(fpr * (1 - fpr) * (1 / max(1, normal_count) + 1 / calibrated))
        if abs(rate - fpr) > spread:
            notes.append(
                f"warning: that is more than {spread:.2g} from the {fpr} asked: the threshold "
                "does not hold on this data; set it on normal data like it (--normal) that the "
                "encoder did not train on"
            )
    return AnomalyReport(table, threshold, quality, reference, notes, fpr)


def _is_training_data(run: Run, spec: str | os.PathLike | Source, source: Source) -> bool:
    """Whether ``spec`` names the data ``run`` trained on (same path or dataset name)."""
    trained = str(run.config.get("data", ""))
    if isinstance(spec, Source):
        return spec.name == trained
    given, other = Path(str(spec)).expanduser(), Path(trained).expanduser()
    if given.exists() and other.exists():
        return given.resolve() == other.resolve()
    return str(spec) == trained
