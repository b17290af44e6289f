"""Which unlabeled items to label next, chosen from their embeddings.

Strategies (all on L2-normalized embeddings, the cosine geometry of the kNN evaluation):

- ``kcenter``: k-center greedy (Sener & Savarese, "Active Learning for Convolutional Neural
  Networks: A Core-Set Approach", ICLR 2018): repeatedly take the item farthest from every
  chosen or labelled item, so the picks cover the data. Without labels it starts from the
  item nearest the mean. Score: the distance at which the item was picked.
- ``typiclust``: TypiClust (Hacohen, Dekel & Weinshall, "Active Learning on a Budget:
  Opposite Strategies Suit High and Low Budgets", ICML 2022), for the first labels:
  cluster into ``labelled + budget`` clusters (at most :data:`TYPICLUST_MAX_CLUSTERS`, as
  the authors' code) with k-means, then repeatedly take the largest
  cluster with the fewest labelled or chosen items and pick its most typical item, the one of
  highest typicality ``1 / mean distance to its 20 nearest neighbours`` in the cluster.
  Score: that typicality.
- ``uncertainty``: uncertainty sampling (Lewis & Gale 1994) once a few labels exist: fit
  the logistic-regression head of :mod:`selfsup.evaluation.linear` on the labelled items and
  take the items of smallest margin between the two most probable classes (or of highest
  entropy). Score: ``1 - margin`` or the entropy.
- ``random``: a uniformly random order, the baseline. Score: 0.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> centres = np.eye(3) * 10
    >>> z = np.concatenate([c + rng.normal(size=(30, 3)) for c in centres])
    >>> picks = select(z, budget=3, strategy="kcenter").indices
    >>> sorted(int(i) // 30 for i in picks)  # one item of each cluster
    [0, 1, 2]
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.cluster import KMeans, MiniBatchKMeans

from selfsup.core.neighbours import euclidean_topk, use_exact
from selfsup.core.progress import ShowProgress, activity
from selfsup.core.text_files import text_lines
from selfsup.data.base import PartialLabels, Source, require_classes
from selfsup.data.splits import split_group_ids
from selfsup.data.table_files import read_table
from selfsup.embedding import embeddings_tensor, readable_rows
from selfsup.evaluation.fewshot import FEW_SHOT_WEIGHT_DECAY
from selfsup.evaluation.linear import fit_logistic_regression, standardization
from selfsup.run import Run, as_run

STRATEGIES = ("kcenter", "typiclust", "uncertainty", "random")
#: TypiClust's neighbourhood for typicality (the paper's 20).
TYPICALITY_NEIGHBOURS = 20
#: Where the data's folders are patients, ``kcenter`` ranks this many times the budget (the
#: others rank every item), of which :func:`spread_over` keeps the budget.
SPREAD_RANKED = 4
#: Clusters larger than this measure typicality on a random sample of this many members.
TYPICALITY_SAMPLE = 5000
#: Above this many clusters k-means runs in mini-batches, as in the TypiClust code.
FULL_KMEANS_MAX_CLUSTERS = 50
#: TypiClust's clusters at most, whatever the labels and budget (the authors' code caps them
#: at 500 too): 19,902 labelled reviews and a budget of 100 asked for 20,002 clusters, whose
#: k-means++ start alone ran past 5 minutes on 400,000 items.
TYPICLUST_MAX_CLUSTERS = 500
#: TypiClust's k-means is fitted on at most this many items (or ``KMEANS_PER_CLUSTER`` per
#: cluster, if more), a random sample of a larger pool, whose items are then each assigned
#: to the nearest centre: ten million transactions' embeddings, clustered whole, held the
#: 10 GB pool twice and ran out of 24 GB in k-means.
KMEANS_FIT_MOST = 200_000
#: Items per cluster of a sampled k-means fit, at least.
KMEANS_PER_CLUSTER = 40
#: Rows of the pool normalized and compared at once by every strategy's pass over it: the
#: pool is never copied whole (a copy of ten million 256-d embeddings is 10 GB).
BLOCK = 65_536


@dataclass
class Selection:
    """Items to label next, best first.

    Attributes:
        indices: positions in the candidate embeddings, best first.
        scores: the strategy's score of each pick (see the module docstring).
        strategy: the strategy that chose them.
    """

    indices: np.ndarray
    scores: np.ndarray
    strategy: str


def _normalized(z: np.ndarray) -> torch.Tensor:
    return F.normalize(embeddings_tensor(z), dim=1)


def _blocks(n: int) -> Iterator[tuple[int, int]]:
    """``(start, stop)`` of the blocks of :data:`BLOCK` rows of ``n``."""
    for start in range(0, n, BLOCK):
        yield start, min(n, start + BLOCK)


def _usable(z: np.ndarray, usable: np.ndarray | None) -> np.ndarray:
    """The rows that may be chosen: ``usable``, else the readable rows (no NaN)."""
    return readable_rows(z) if usable is None else np.asarray(usable, dtype=bool)


def _distances(x: torch.Tensor, centre: torch.Tensor) -> torch.Tensor:
    """Euclidean distances of the unit rows of ``x`` to ``centre``, from one matrix-vector
    product (no ``x``-sized temporary: a million rows take a tenth of a second)."""
    return (1.0 - 2.0 * (x @ centre) + centre @ centre).clamp_min(0.0).sqrt()


def _inverse_norms(z: np.ndarray) -> torch.Tensor:
    """One over each row's norm (0 for a zero row, whose normalized row is 0 too), read a
    block at a time."""
    norms = torch.cat([torch.linalg.vector_norm(embeddings_tensor(z[a:b]), dim=1)
                       for a, b in _blocks(len(z))])  # fmt: skip
    return torch.where(norms > 0, 1 / norms.clamp_min(1e-12), torch.zeros_like(norms))


def _unit_distances(
    z: np.ndarray, centre: torch.Tensor, inverse: torch.Tensor, out: torch.Tensor | None = None
) -> torch.Tensor:
    """:func:`_distances` of the normalized rows of ``z`` (``inverse``: one over their norms)
    to ``centre``, a block of rows at a time: one pass over ``z``, no normalized copy; with
    ``out``, the smaller of ``out`` and the distances, in place."""
    out_ = torch.empty(len(z)) if out is None else out
    square = centre @ centre
    for a, b in _blocks(len(z)):
        products = (embeddings_tensor(z[a:b]) @ centre) * inverse[a:b]
        d = (1.0 - 2.0 * products + square).clamp_min(0.0).sqrt()
        out_[a:b] = d if out is None else torch.minimum(out_[a:b], d)
    return out_


def kcenter_greedy(
    z: np.ndarray,
    budget: int,
    labelled: np.ndarray | None = None,
    usable: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """k-center greedy: ``budget`` picks, each the item farthest from all centres so far.

    The pool is read a block of :data:`BLOCK` rows at a time for each pick (ten million
    256-d embeddings: about a second a pick on two cores), never copied.

    Args:
        z: candidate embeddings ``(n, d)``.
        budget: how many to pick, at most the usable rows.
        labelled: embeddings ``(m, d)`` of already labelled items, the first centres.
        usable: boolean ``(n,)``, the rows that may be picked; by default those without NaN.

    Returns:
        ``(indices, distances)``: the picks in order (positions in ``z``) and each one's
        distance to the nearest earlier centre when picked (the first pick without labels:
        its distance to the mean).

    Example:
        >>> z = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
        >>> kcenter_greedy(z, 2)[0].tolist()
        [1, 2]
        >>> kcenter_greedy(z, 2, usable=np.array([True, False, True]))[0].tolist()
        [0, 2]
    """
    blocked = torch.from_numpy(~_usable(z, usable))
    inverse = _inverse_norms(z)
    nearest = torch.full((len(z),), float("inf"))
    picks, scores = [], []
    if labelled is not None and len(labelled):
        centres = _normalized(labelled)
        # Exact, or through the index when the pool times the labels is too much work.
        exact = use_exact(len(centres), queries=len(z))
        for a, b in _blocks(len(z)):
            nearest[a:b] = euclidean_topk(_normalized(z[a:b]), centres, 1, exact=exact)[0][:, 0]
    else:
        total = torch.zeros(z.shape[1], dtype=torch.float64)
        for a, b in _blocks(len(z)):
            x = _normalized(z[a:b])[~blocked[a:b]]
            total += x.sum(dim=0, dtype=torch.float64)
        mean = (total / max(1, int((~blocked).sum()))).float()
        to_mean = _unit_distances(z, mean, inverse).masked_fill_(blocked, float("inf"))
        first = int(to_mean.argmin())
        picks.append(first)
        scores.append(float(to_mean[first]))
        nearest = _unit_distances(z, _normalized(z[first : first + 1])[0], inverse)
    nearest.masked_fill_(blocked, -float("inf"))  # never picked (NaN rows included)
    while len(picks) < budget:
        pick = int(nearest.argmax())
        picks.append(pick)
        scores.append(float(nearest[pick]))
        _unit_distances(z, _normalized(z[pick : pick + 1])[0], inverse, out=nearest)
        nearest.masked_fill_(blocked, -float("inf"))
    return np.asarray(picks, dtype=np.int64), np.asarray(scores)


def typicality(z: torch.Tensor, neighbours: int = TYPICALITY_NEIGHBOURS) -> torch.Tensor:
    """``1 / mean distance to the k nearest other items`` of each row (k capped at n - 1).

    Example:
        >>> typicality(torch.tensor([[0.0], [1.0], [2.0], [10.0]]), neighbours=1).tolist()
        [1.0, 1.0, 1.0, 0.125]
    """
    k = min(neighbours, len(z) - 1)
    if k < 1:
        return torch.ones(len(z))
    mean = euclidean_topk(z, z, k, exclude_self=True)[0].mean(dim=1)
    return 1.0 / mean.clamp_min(1e-12)


def _clusters(
    z: np.ndarray, rows: np.ndarray, known: torch.Tensor, clusters: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """k-means clusters of the normalized candidate ``rows`` of ``z`` and the ``known``
    (normalized labelled) items: each candidate's cluster (``-1`` for other rows of ``z``)
    and each known item's. Fitted on all of them up to :data:`KMEANS_FIT_MOST` (or
    :data:`KMEANS_PER_CLUSTER` per cluster), else on a random sample, every item then
    assigned to its nearest centre a block at a time."""
    kind = KMeans if clusters <= FULL_KMEANS_MAX_CLUSTERS else MiniBatchKMeans
    kmeans = kind(n_clusters=clusters, n_init=3, random_state=seed)
    cluster = np.full(len(z), -1, dtype=np.int64)
    items = len(rows) + len(known)
    fit_most = max(KMEANS_FIT_MOST, KMEANS_PER_CLUSTER * clusters)
    if items <= fit_most:
        x = _normalized(z[rows])
        everything = torch.cat([x, known]).numpy() if len(known) else x.numpy()
        assignment = kmeans.fit_predict(everything)
        cluster[rows] = assignment[: len(rows)]
        return cluster, assignment[len(rows) :]
    sample = np.sort(np.random.default_rng(seed).choice(items, fit_most, replace=False))
    from_pool = sample[sample < len(rows)]
    fitted = [_normalized(z[rows[from_pool]]), known[sample[len(from_pool) :] - len(rows)]]
    kmeans.fit(torch.cat(fitted).numpy())
    centres = torch.from_numpy(kmeans.cluster_centers_).float()
    half_norms = 0.5 * (centres * centres).sum(dim=1)

    def nearest(x: torch.Tensor) -> np.ndarray:  # the nearest centre, as KMeans.predict
        return (x @ centres.T - half_norms).argmax(dim=1).numpy()

    for a, b in _blocks(len(rows)):
        cluster[rows[a:b]] = nearest(_normalized(z[rows[a:b]]))
    return cluster, np.concatenate([nearest(known[a:b]) for a, b in _blocks(len(known))] or [[]])


def typiclust(
    z: np.ndarray,
    budget: int,
    labelled: np.ndarray | None = None,
    seed: int = 0,
    usable: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """TypiClust: the most typical item of each of the largest uncovered k-means clusters.

    Args:
        z: candidate embeddings ``(n, d)``.
        budget: how many to pick (at most the usable rows).
        labelled: embeddings of already labelled items; they are clustered with the
            candidates and count as covering their clusters.
        seed: seeds k-means and the typicality sample of large clusters.
        usable: boolean ``(n,)``, the rows that may be picked; by default those without NaN.

    Above :data:`KMEANS_FIT_MOST` items, k-means is fitted on a random sample of them (see
    :func:`_clusters`): ten million 256-d embeddings are clustered in bounded memory.

    Returns:
        ``(indices, typicalities)`` of the picks (positions in ``z``), in order.

    Example:
        >>> z = np.array([[0.0, 1.0], [0.1, 1.0], [-0.1, 1.0], [1.0, 0.0], [1.0, 0.1]])
        >>> sorted(typiclust(z, 2)[0].tolist())  # the middle of the larger cluster, and one
        [0, 3]
    """
    rows = np.flatnonzero(_usable(z, usable))
    known = torch.zeros((0, z.shape[1]))
    if labelled is not None and len(labelled):
        known = _normalized(labelled)
    clusters = min(len(known) + budget, TYPICLUST_MAX_CLUSTERS, len(rows) + len(known))
    candidate_cluster, known_cluster = _clusters(z, rows, known, clusters, seed)
    size = np.bincount(candidate_cluster[rows], minlength=clusters)
    covered = np.bincount(known_cluster.astype(np.int64), minlength=clusters)
    rng = np.random.default_rng(seed)
    available = size.copy()
    picks, scores = [], []
    while len(picks) < budget:
        # The fewest labelled or chosen items first, then the largest cluster (the paper's order).
        order = np.lexsort((-size, covered))
        cluster = next(c for c in order if available[c] > 0)
        members = np.flatnonzero(candidate_cluster == cluster)
        if len(members) > TYPICALITY_SAMPLE:
            members = np.sort(rng.choice(members, TYPICALITY_SAMPLE, replace=False))
        values = typicality(_normalized(z[members]))
        best = int(values.argmax())
        picks.append(int(members[best]))
        scores.append(float(values[best]))
        candidate_cluster[members[best]] = -1  # taken
        available[cluster] -= 1
        covered[cluster] += 1
    return np.asarray(picks, dtype=np.int64), np.asarray(scores)


def uncertainty(
    z: np.ndarray,
    budget: int,
    labelled: np.ndarray,
    labels: np.ndarray,
    measure: str = "margin",
    usable: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Uncertainty sampling with a logistic-regression head fitted on the labelled items.

    Args:
        z: candidate embeddings ``(n, d)``, scored a block of :data:`BLOCK` rows at a time.
        budget: how many to pick.
        labelled: embeddings ``(m, d)`` of the labelled items.
        labels: their integer labels ``(m,)``, at least two classes.
        measure: ``margin`` (smallest gap between the two most probable classes first) or
            ``entropy`` (highest entropy first).
        usable: boolean ``(n,)``, the rows that may be picked; by default those without NaN.

    Returns:
        ``(indices, scores)``: the picks (positions in ``z``) and ``1 - margin`` or the
        entropy of each, highest first.

    Example:
        >>> labelled = np.array([[-2.0, 0.0], [-1.0, 0.0], [1.0, 0.0], [2.0, 0.0]])
        >>> z = np.array([[-3.0, 0.0], [0.05, 0.0], [3.0, 0.0]])
        >>> uncertainty(z, 1, labelled, np.array([0, 0, 1, 1]))[0].tolist()
        [1]
    """
    if measure not in ("margin", "entropy"):
        raise ValueError(f"unknown uncertainty measure {measure!r}; known: margin, entropy")
    labels = np.asarray(labels, dtype=np.int64)
    if len(np.unique(labels)) < 2:
        raise ValueError("uncertainty sampling needs labelled items of at least two classes")
    fit = torch.as_tensor(np.asarray(labelled), dtype=torch.float32)
    mean, std = standardization(fit)
    head = fit_logistic_regression(
        (fit - mean) / std, torch.from_numpy(labels), int(labels.max()) + 1,
        FEW_SHOT_WEIGHT_DECAY,
    )  # fmt: skip
    score = torch.empty(len(z), dtype=torch.float64)
    with torch.no_grad():
        for a, b in _blocks(len(z)):
            x = (embeddings_tensor(z[a:b]) - mean) / std
            probs = torch.softmax(head(x).double(), dim=1)
            if measure == "margin":
                top = probs.topk(2, dim=1).values
                score[a:b] = 1.0 - (top[:, 0] - top[:, 1])
            else:
                score[a:b] = -(probs * probs.clamp_min(1e-300).log()).sum(dim=1)
    score.masked_fill_(torch.from_numpy(~_usable(z, usable)), -float("inf"))
    order = torch.argsort(score, descending=True, stable=True)[:budget]
    return order.numpy().astype(np.int64), score[order].numpy()


def select(
    z: np.ndarray,
    budget: int,
    strategy: str = "typiclust",
    labelled: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    seed: int = 0,
    measure: str = "margin",
    excluded: np.ndarray | None = None,
) -> Selection:
    """Choose ``budget`` of the candidate embeddings ``z`` to label next.

    The pool is read a block at a time, never copied: ten million 256-d embeddings (10 GB)
    need little memory beside them.

    Args:
        z: candidate (unlabeled) embeddings ``(n, d)``; rows with NaN are never chosen.
        budget: how many to choose, ``1 <= budget``; capped at the readable candidates.
        strategy: ``kcenter``, ``typiclust``, ``uncertainty`` or ``random``.
        labelled: embeddings of the items labelled already (needed by ``uncertainty``).
        labels: their labels (needed by ``uncertainty``).
        seed: seeds k-means and ``random``.
        measure: ``margin`` or ``entropy`` for ``uncertainty``.
        excluded: positions in ``z`` never chosen (items labelled already).

    Returns:
        The chosen positions in ``z``, best first, with their scores.

    Raises:
        ValueError: an unknown strategy, a budget below 1, or ``uncertainty`` without labels.

    Example:
        >>> select(np.eye(4), 2, "random", seed=0).indices.shape
        (2,)
        >>> select(np.eye(4), 4, "kcenter", excluded=np.array([0, 2])).indices.tolist()
        [1, 3]
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; known: {', '.join(STRATEGIES)}")
    if budget < 1:
        raise ValueError(f"the budget must be at least 1, got {budget}")
    z = z if isinstance(z, np.ndarray) and z.dtype == np.float32 else np.asarray(z, np.float32)
    usable = readable_rows(z)
    if excluded is not None:
        usable[np.asarray(excluded, dtype=np.int64)] = False
    budget = min(budget, int(usable.sum()))
    if strategy == "kcenter":
        picks, scores = kcenter_greedy(z, budget, labelled, usable)
    elif strategy == "typiclust":
        picks, scores = typiclust(z, budget, labelled, seed, usable)
    elif strategy == "uncertainty":
        if labelled is None or labels is None or len(labelled) == 0:
            raise ValueError(
                "uncertainty sampling needs labelled items: give labelled data with --labeled"
            )
        require_classes(labels, "the labelled items (--labeled)", "uncertainty sampling")
        picks, scores = uncertainty(z, budget, labelled, labels, measure, usable)
    else:
        rows = np.flatnonzero(usable)
        picks = rows[np.random.default_rng(seed).permutation(len(rows))[:budget]]
        scores = np.zeros(budget)
    return Selection(np.asarray(picks, dtype=np.int64), np.asarray(scores, np.float64), strategy)


@dataclass
class LabelledItems:
    """Items labelled already: their embeddings, labels (when known) and, when they are
    items of the candidate data, their positions there (they are then never chosen again).

    Attributes:
        embeddings: ``(m, d)`` embeddings.
        labels: ``(m,)`` integer labels, or None when only ids were given.
        positions: positions in the candidate data, or None for separate data.
    """

    embeddings: np.ndarray
    labels: np.ndarray | None
    positions: np.ndarray | None


def read_labelled(
    run: Run, candidates: Source, candidate_z: np.ndarray, labeled: str | os.PathLike
) -> LabelledItems:
    """What ``--labeled`` names: a ``.txt`` file of ids of the candidate data (one a line),
    a CSV with an ``id`` column (and optionally ``label``) of such ids, or labelled data the
    run reads (a folder, file or dataset name), embedded here.

    Raises:
        ValueError: an id not among the candidates (the message names the file and id).
    """
    path = Path(labeled)
    table = None
    if path.suffix.lower() == ".txt" and path.is_file():
        ids = [line.strip() for _, line in text_lines(path) if line.strip()]
        table = pd.DataFrame({"id": ids})
    elif path.suffix.lower() == ".csv" and path.is_file():
        head = read_table(path, rows=0)
        if "id" in head.columns and set(head.columns) <= {"id", "label"}:
            table = read_table(path, as_text=True)
    if table is None:
        source = run.open(labeled)
        return LabelledItems(run.embed(source), source.labels, None)
    position_of = {item_id: i for i, item_id in enumerate(candidates.ids)}
    unknown = [item_id for item_id in table["id"] if item_id not in position_of]
    if unknown:
        raise ValueError(
            f"{path}: id {unknown[0]!r} is not an item of {candidates.name} "
            f"({len(unknown)} unknown ids)"
        )
    positions = np.array([position_of[item_id] for item_id in table["id"]], dtype=np.int64)
    labels = None
    if "label" in table.columns:
        labels = np.unique(table["label"].to_numpy(), return_inverse=True)[1]
    return LabelledItems(candidate_z[positions], labels, positions)


def labelled_rows(partial: PartialLabels, z: np.ndarray) -> LabelledItems:
    """The labelled rows of data labelled on some rows only, as items labelled already:
    never chosen again, and the labels uncertainty sampling fits its head on (rows that could
    not be read, NaN in ``z``, left out).

    Example:
        >>> part = PartialLabels(np.array([0, 2]), np.array([1, 0]), ["a", "b"], "y")
        >>> z = np.array([[1.0, 0.0], [0.0, 1.0], [np.nan, np.nan]])
        >>> known = labelled_rows(part, z)
        >>> known.positions.tolist(), known.labels.tolist()
        ([0], [1])
    """
    readable = ~np.isnan(z[partial.rows]).any(axis=1)
    rows = partial.rows[readable]
    return LabelledItems(z[rows], partial.codes[readable], rows)


def select_for_run(
    run: Run | str | os.PathLike,
    data: str | os.PathLike | Source,
    budget: int,
    strategy: str = "typiclust",
    labeled: str | os.PathLike | None = None,
    seed: int = 0,
    measure: str = "margin",
    show_progress: ShowProgress = "auto",
) -> pd.DataFrame:
    """Rank ``budget`` items of ``data`` to label next with a run's embeddings.

    Args:
        run: a :class:`selfsup.run.Run` or its folder.
        data: the unlabeled pool (anything the run reads).
        budget: how many items to choose.
        strategy: ``kcenter``, ``typiclust``, ``uncertainty`` or ``random``.
        labeled: the items labelled already (see :func:`read_labelled`), or None: then
            the labelled rows of data labelled on some rows only (see
            :class:`selfsup.data.base.PartialLabels`), if any.
        seed: seeds k-means and ``random``.
        measure: ``margin`` or ``entropy`` for ``uncertainty``.
        show_progress: draw a progress bar while embedding (``"auto"``: once it has taken
            a few seconds).

    Where the data's first folders are patients (``Source.split_groups``: a hospital's
    export, whose slices of one patient are near copies), ``kcenter``, ``uncertainty`` and
    ``random`` take at most ``ceil(budget / patients)`` items of a patient before another
    gets more (:func:`spread_over`): uncertainty sampling's 20 picks on the trial's 40
    patients came from 8 of them, 4 from one; now from 20. TypiClust's picks spread by its
    clusters.

    Returns:
        A table with columns ``rank`` (1 = label first), ``id`` and ``score``.
    """
    run = as_run(run)
    source = run.open(data)
    z = run.embeddings(source, show_progress=show_progress)
    known = read_labelled(run, source, z, labeled) if labeled is not None else None
    if known is None and source.partial_labels is not None:
        known = labelled_rows(source.partial_labels, z)  # a file labelled on some rows
    excluded = None if known is None else known.positions  # never chosen again
    ids = source.ids
    groups = None
    if source.split_groups and strategy != "typiclust":  # TypiClust spreads by its clusters
        groups = split_group_ids(list(ids), source.name, source.split_groups)
    ranked = budget
    if groups is not None:  # ranking them all is a sort, but k-center greedy is a step each
        ranked = min(len(z), SPREAD_RANKED * budget) if strategy == "kcenter" else len(z)
    with activity(f"choosing {min(budget, len(z)):,} of {len(z):,} items ({strategy})"):
        chosen = select(
            z,
            ranked,
            strategy,
            None if known is None else known.embeddings,
            None if known is None else known.labels,
            seed,
            measure,
            excluded,
        )
    order = np.arange(len(chosen.indices))
    if groups is not None:  # a hospital's patients: their slices are near copies
        order = spread_over(groups[chosen.indices], budget)
    return pd.DataFrame(
        {
            "rank": np.arange(1, len(order) + 1),
            "id": [ids[i] for i in chosen.indices[order]],
            "score": chosen.scores[order],
        }
    )


def spread_over(groups: np.ndarray, budget: int) -> np.ndarray:
    """Of items ranked best first with their ``groups`` (patients), the positions of
    ``budget`` of them taking at most ``ceil(budget / groups)`` of a group before any group
    gets more: every group's best items first, in rank order, then their next ones.

    Example:
        >>> spread_over(np.array(["a", "a", "a", "b", "c"]), 3).tolist()  # one of each
        [0, 3, 4]
        >>> spread_over(np.array(["a", "a", "a", "b"]), 4).tolist()  # two each, then more
        [0, 1, 3, 2]
    """
    cap = -(-budget // len(set(groups.tolist())))
    seen: dict[str, int] = {}
    occurrence = np.empty(len(groups), dtype=np.int64)
    for k, group in enumerate(groups.tolist()):
        occurrence[k] = seen.get(group, 0)
        seen[group] = occurrence[k] + 1
    return np.lexsort((np.arange(len(groups)), occurrence // cap))[:budget]
