"""Running an audit: the groups from a column or a file, the embeddings, the model's predictions."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from selfsup.core.progress import ShowProgress, activity
from selfsup.data.base import require_classes
from selfsup.data.splits import SubsetSource, labelled_part
from selfsup.embedding import readable_rows
from selfsup.evaluation.report import probe_rows
from selfsup.run import Run
from selfsup.tools.audit.metrics import (
    Gap,
    _rank,
    cross_validated_proba,
    embedding_checks,
    prediction_gaps,
    prediction_metrics,
)
from selfsup.tools.audit.result import AuditResult


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


def read_groups_file(path: str | os.PathLike, ids: Sequence[str]) -> np.ndarray:
    """The group of each item, in ``ids`` order, from a CSV with columns ``id`` and ``group``.

    Raises:
        ValueError: the columns are missing, or some items have no row (the message names a
            few of them).
    """
    from selfsup.data.table_files import read_table

    frame = read_table(path, as_text=True)
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


#: The group of rows without a value in the group column: missing values are audited too
#: (whether a field is filled can itself go with the outcome).
MISSING_GROUP = "(missing)"


def _group_column(data: str | os.PathLike, column: str) -> tuple[np.ndarray, int]:
    """The values of ``column`` of a CSV/TSV/Parquet file, as text (``MISSING_GROUP`` where
    empty), and how many were empty."""
    from selfsup.data.table_files import read_table

    if not Path(data).is_file():
        raise ValueError(
            f"{data}: --group COLUMN reads a column of a CSV or Parquet file; for other data "
            "give --groups FILE.csv (columns id,group)"
        )
    names = list(read_table(data, rows=0).columns)
    if column not in names:
        raise ValueError(f"{data}: no column {column!r}; columns are {names}")
    values = read_table(data, columns=[column])[column]  # not the whole table again
    empty = values.isna().to_numpy()
    return np.where(empty, MISSING_GROUP, values.astype(str).to_numpy()), int(empty.sum())


#: Items an audit reads at most: above it, a random sample of this many, each group and
#: class keeping its share. The checks are statistics of the items (rates, purity, ranks),
#: which a million estimate to a few thousandths; ten million transactions audited whole
#: held their embeddings twice and searched the neighbours of each among all.
AUDIT_MOST = 1_000_000


def audited_rows(
    keep: np.ndarray,
    groups: np.ndarray,
    labels: np.ndarray | None,
    seed: int = 0,
    most: int | None = None,
) -> np.ndarray:
    """The rows an audit reads: those ``keep`` marks (readable), or above ``most`` (by
    default :data:`AUDIT_MOST`) a random sample of them stratified by group and label (every
    pair keeping one at least), in order.

    Example:
        >>> groups = np.array(["a"] * 90 + ["b"] * 10)
        >>> rows = audited_rows(np.ones(100, bool), groups, np.arange(100) % 2, most=20)
        >>> len(rows), int((groups[rows] == "b").sum())
        (20, 2)
    """
    readable = np.flatnonzero(keep)
    most = AUDIT_MOST if most is None else most
    if len(readable) <= most:
        return readable
    strata = pd.factorize(np.asarray(groups)[readable])[0].astype(np.int64)
    if labels is not None:
        strata = strata * (int(np.max(labels)) + 1) + np.asarray(labels)[readable]
    chosen = probe_rows(pd.factorize(strata)[0], seed, most)
    return readable if chosen is None else readable[np.sort(chosen)]


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
    show_progress: ShowProgress = "auto",
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
        show_progress: draw a progress bar while embedding (``"auto"``: once it has taken
            a few seconds).

    Raises:
        ValueError: neither or both of ``group_column`` and ``groups_file``, a missing column,
            items without a group, or data without labels when there is no model.
    """
    if (group_column is None) == (groups_file is None):
        raise ValueError("give the groups either as --group COLUMN or as --groups FILE.csv")
    source = run.open(data)
    notes: list[str] = []
    if group_column is not None:
        groups, empty = _group_column(data, group_column)
        if empty:
            notes.append(
                f"{empty:,} rows without a value in {group_column!r} form the group {MISSING_GROUP}"
            )
        encoding = getattr(source, "preprocessor", None)  # a table's fitted column encoding
        if encoding is not None and group_column in encoding.inputs:
            notes.append(
                f"the encoder was trained with {group_column!r} as an input feature, so it can "
                "tell the groups apart by construction"
            )
    else:
        groups = read_groups_file(groups_file, list(source.ids))
    if len(groups) != len(source):
        raise ValueError(f"{data}: {len(groups)} group values for {len(source)} items")
    embeddings = run.embeddings(source, show_progress=show_progress)
    positions = np.arange(len(source))  # the rows of ``embeddings`` audited
    partial = source.partial_labels if source.labels is None else None
    if partial is not None:  # a file labelled on some rows: the audit is of those rows
        notes.append(
            f"audited the {len(partial.rows):,} labelled rows of {len(source):,} (the others "
            f"have no label in {partial.column!r})"
        )
        source = labelled_part(source)
        positions, groups = partial.rows, groups[partial.rows]
    keep = readable_rows(embeddings)[positions]
    if not keep.all():
        notes.append(f"{int((~keep).sum())} unreadable items left out")
    audited = audited_rows(keep, groups, source.labels, seed)
    sampled = len(audited) < keep.sum()
    if sampled:
        notes.append(
            f"audited a random sample of {len(audited):,} of the {int(keep.sum()):,} items, "
            "each group and class keeping its share (the intervals are the sample's)"
        )
    groups, embeddings = groups[audited], embeddings[positions[audited]]  # no more are read

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
        y_true = np.array([adapted.classes.index(names[c]) for c in source.labels[audited]])
        # The model embeds with its own run's encoder (fine-tuned or not): ask it directly,
        # for the audited items only.
        if sampled:
            proba = np.asarray(adapted.predict_proba(SubsetSource(source, audited, source.name)))
        else:
            proba = np.asarray(adapted.predict_proba(source))[audited]
        notes.insert(0, f"predictions of the adapted model {model}")
    elif source.labels is not None:
        require_classes(source.labels, str(data), "an audit without --model")
        with activity(f"cross-validating a classifier on {len(audited):,} embeddings"):
            proba = cross_validated_proba(embeddings, source.labels[audited], seed=seed)
        y_true = source.labels[audited]
        notes.insert(
            0,
            "no --model: predictions of a logistic regression on the embeddings, "
            "5-fold cross-validated (each item predicted by a model that did not see it)",
        )
    else:
        notes.insert(0, f"{data} has no labels: only the label-free checks of the embedding")
    if proba is not None:
        y_pred = np.asarray(proba).argmax(axis=1)
    with activity(f"checking {len(np.unique(groups)):,} groups"):
        result = audit_arrays(
            y_true, y_pred, proba, groups, embeddings, k=k, n_boot=n_boot, seed=seed
        )
    result.notes = notes + result.notes
    if save:
        result.save(run.path)
    return result
