"""Fitting an adapted model: draw the labels, fit the head (and fine-tune), calibrate it."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from selfsup.core.progress import ShowProgress, activity
from selfsup.data.base import Source, require_classes, require_labels
from selfsup.data.splits import (
    SubsetSource,
    labelled_part,
    split_group_ids,
    stratified_group_split,
    stratified_split,
    unlabelled_part,
)
from selfsup.embedding import embed_source
from selfsup.evaluation.fewshot import FEW_SHOT_WEIGHT_DECAY
from selfsup.run import Run, as_run
from selfsup.tools.adapt.finetune import finetune_encoder
from selfsup.tools.adapt.heads import (
    CALIBRATIONS,
    HEADS,
    HELD_OUT_FRACTION,
    HELD_OUT_MIN_PER_CLASS,
    MAX_UNLABELLED,
    EmbeddingHead,
    draw_shots,
    embedding_statistics,
    fit_head,
    fold_count,
    out_of_fold_logits,
    propagation_fitter,
)
from selfsup.tools.adapt.model import AdaptedModel
from selfsup.tools.calibration import (
    expected_calibration_error,
    fit_temperature,
    negative_log_likelihood,
)


def calibration_groups(
    source: Source, chosen: np.ndarray, labels: np.ndarray, num_classes: int
) -> np.ndarray | None:
    """The first folders of the ``chosen`` items where the source's folders are groups that
    must stay on one side of a split (``Source.split_groups``: a hospital's patients), and
    every class has labels in two of them at least (calibration holds some out); else None.

    Example:
        >>> from selfsup.data.text import TextSource
        >>> calibration_groups(TextSource(["a", "b"], ["x", "y"]), np.arange(2), None, 2) is None
        True
    """
    if not source.split_groups:
        return None
    ids = source.ids
    groups = split_group_ids([ids[int(i)] for i in chosen], source.name, source.split_groups)
    for c in range(num_classes):
        if len(set(groups[labels == c].tolist())) < 2:
            return None
    return groups


def _held_out(
    labels: np.ndarray, groups: np.ndarray | None, num_classes: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """The labelled rows fitted on and those held out to calibrate: whole groups held out
    (a patient's slices on one side, so the held-out scores hold no memory) where every
    class keeps labels on both sides, else a stratified split of the rows."""
    if groups is not None:
        try:
            fit, held = stratified_group_split(labels, groups, HELD_OUT_FRACTION, seed)
        except ValueError:  # fewer groups than the split needs
            fit, held = np.arange(0), np.arange(0)
        have = [np.bincount(labels[part], minlength=num_classes) for part in (fit, held)]
        if len(fit) and all(h.min() > 0 for h in have):
            return fit, held
    rng = np.random.default_rng(seed)
    return stratified_split(labels, HELD_OUT_FRACTION, rng, at_least_one=True)


def _labelled_source(
    run: Run, data: str | os.PathLike | Source
) -> tuple[Source, list[str], Source | None]:
    """The labelled items of ``data``, their class names, and its unlabelled items where
    it is labelled on some rows only (the propagation head reads them)."""
    opened = run.open(data)
    source = labelled_part(opened)  # of a file labelled on some rows, those rows
    require_classes(require_labels(source, "adaptation"), source.name, "adaptation")
    classes = source.classes or [str(c) for c in range(int(source.labels.max()) + 1)]
    return source, [str(c) for c in classes], unlabelled_part(opened)


def adapt(
    run: Run | str | os.PathLike,
    labeled: str | os.PathLike | Source,
    *,
    shots: int | None = None,
    head: str = "linear",
    finetune_blocks: int = 0,
    calibration: str | None = None,
    seed: int = 0,
    weight_decay: float = FEW_SHOT_WEIGHT_DECAY,
    finetune_epochs: int = 30,
    finetune_lr: float = 1e-4,
    show_progress: ShowProgress = "auto",
    embeddings: np.ndarray | None = None,
    unlabeled: str | os.PathLike | Source | None = None,
    unlabeled_embeddings: np.ndarray | None = None,
) -> AdaptedModel:
    """Fit a calibrated classifier on a run's encoder from labelled data.

    Args:
        run: a :class:`selfsup.run.Run` or its folder.
        labeled: labelled data the run can read (a path, dataset name or Source).
        shots: draw this many items per class from ``labeled`` (seeded by ``seed``); None
            uses every labelled item. The standardization statistics always come from the
            embeddings of all of ``labeled``, without their labels.
        head: ``prototype`` (nearest class mean), ``linear`` (logistic regression) or
            ``propagation`` (labels spread over a k-NN graph that also holds unlabelled items,
            then logistic regression on the pseudo-labels; frozen encoder only).
        finetune_blocks: fine-tune the encoder's last this many blocks (image backbones).
        calibration: ``temperature`` (fit the head on 80% of each class, the temperature on
            the rest), ``cv`` (head on all labels, temperature on cross-validated logits), or
            None: ``cv`` when the smallest class has fewer than 20 labels and nothing is
            fine-tuned, else ``temperature``.
        seed: seeds the draw of shots, the held-out split, folds and fine-tuning.
        weight_decay: L2 penalty of the linear head.
        finetune_epochs: passes over the labelled items when fine-tuning.
        finetune_lr: learning rate of the fine-tuned blocks (the head's is ten times it).
        show_progress: draw progress bars (``"auto"``: once the work has taken a few
            seconds).
        embeddings: the run's embeddings of all of ``labeled`` (as
            ``run.embeddings(source)`` gives them), to adapt
            many times without embedding again; None embeds here.
        unlabeled: more unlabelled data for the ``propagation`` head (any data the run reads;
            labels in it are ignored). Its unlabelled items are the items of ``labeled``
            outside the drawn shots plus these, at most 100,000 (a seeded random subset).
            By default, where ``labeled`` is labelled on some items only (a file with empty
            label cells, a folder with a ``--labels`` table), its unlabelled items.
        unlabeled_embeddings: the run's embeddings of ``unlabeled``, as for ``embeddings``.

    Returns:
        The adapted model; ``metrics`` holds NLL and ECE on the calibration labels before and
        after temperature scaling.

    Raises:
        ValueError: unlabelled data, a class with too few labels, an unknown head or
            calibration, ``cv`` with fine-tuning, or ``propagation`` with fine-tuning or
            without unlabelled items.
    """
    run = as_run(run)
    if calibration is not None and calibration not in CALIBRATIONS:
        raise ValueError(f"unknown calibration {calibration!r}; known: {', '.join(CALIBRATIONS)}")
    if head not in HEADS:
        raise ValueError(f"unknown head {head!r}; known: {', '.join(HEADS)}")
    if finetune_blocks and head == "propagation":
        raise ValueError("the propagation head works on frozen embeddings: no --finetune-blocks")
    if finetune_blocks and calibration == "cv":
        raise ValueError(
            "fine-tuning is calibrated on held-out labels: use --calibration temperature"
        )
    source, classes, rest = _labelled_source(run, labeled)
    if head == "propagation" and unlabeled is None and unlabeled_embeddings is None:
        unlabeled = rest  # a file or folder labelled on some items: the others
    num_classes = len(classes)
    if embeddings is None:
        embeddings = run.embeddings(source, show_progress)
    all_embeddings = embeddings
    if len(all_embeddings) != len(source):
        raise ValueError(f"{len(all_embeddings)} embeddings given for {len(source)} items")
    readable = ~np.isnan(all_embeddings).any(axis=1)
    statistics = embedding_statistics(torch.from_numpy(all_embeddings[readable]))
    chosen = (
        draw_shots(np.where(readable, source.labels, -1), shots, seed, classes)
        if shots is not None
        else np.flatnonzero(readable)
    )
    labels = np.asarray(source.labels)[chosen].astype(np.int64)
    counts = np.bincount(labels, minlength=num_classes)
    if counts.min() == 0:
        raise ValueError(f"{source.name}: class {classes[int(counts.argmin())]!r} has no label")
    if calibration is None:
        few = counts.min() < HELD_OUT_MIN_PER_CLASS and not finetune_blocks
        calibration = "cv" if few else "temperature"
    if counts.min() < 2:
        raise ValueError(
            f"{source.name}: class {classes[int(counts.argmin())]!r} has one label; "
            "calibration needs at least two per class"
        )
    z = torch.from_numpy(all_embeddings[chosen])
    y = torch.from_numpy(labels)
    metrics: dict[str, Any] = {
        "labelled": len(chosen),
        "data": source.name,
        "calibration": calibration,
        "weight_decay": weight_decay if head != "prototype" else None,
        "seed": seed,
    }
    if head == "propagation":
        others = np.setdiff1d(np.flatnonzero(readable), chosen)
        pool = _unlabelled_pool(
            run, all_embeddings[others], unlabeled, unlabeled_embeddings, seed, show_progress
        )
        with activity(
            f"the nearest-neighbour graph of {len(z):,} labelled and {len(pool):,} unlabelled items"
        ):
            fit_on, spread = propagation_fitter(
                z.numpy(), labels, pool, num_classes, statistics, weight_decay
            )
        metrics["propagation"] = spread
    else:

        def fit_on(rows: np.ndarray) -> EmbeddingHead:
            return fit_head(z[rows], y[rows], num_classes, head, statistics, weight_decay)

    encoder = None
    groups = calibration_groups(source, chosen, labels, num_classes)
    grouped = False
    if calibration == "cv":
        folds = fold_count(labels, num_classes)
        with activity(f"calibrating: the {head} head fitted {folds} times, a fold left out each"):
            calibration_logits, grouped = out_of_fold_logits(
                z, labels, num_classes, fit_on, seed, groups
            )
        with activity(f"fitting the {head} head on {len(labels):,} labels"):
            fitted = fit_on(np.arange(len(labels)))  # last, so the metrics describe this fit
        calibration_labels = labels
    else:
        fit, held = _held_out(labels, groups, num_classes, seed)
        grouped = groups is not None and not set(groups[fit].tolist()) & set(groups[held].tolist())
        fitted = fit_on(fit)
        if finetune_blocks:
            encoder, fitted = finetune_encoder(
                run.encoder, fitted, source, chosen[fit], labels[fit], finetune_blocks,
                finetune_epochs, finetune_lr, seed=seed, show_progress=show_progress,
            )  # fmt: skip
            held_out = SubsetSource(source, chosen[held], f"{source.name}[held out]")
            held_embeddings = embed_source(encoder, held_out)
            metrics["finetune"] = {
                "blocks": finetune_blocks,
                "epochs": finetune_epochs,
                "lr": finetune_lr,
            }
        else:
            held_embeddings = z[held].numpy()
        with torch.no_grad():
            calibration_logits = fitted(torch.from_numpy(held_embeddings)).double().numpy()
        calibration_labels = labels[held]
        metrics.update(fit_labels=len(fit), held_out_labels=len(held))
    if grouped:  # each patient's labels on one side of the calibration's split
        metrics["calibration_groups"] = f"{len(set(groups.tolist())):,} {source.split_groups}"
    temperature = fit_temperature(calibration_logits, calibration_labels)
    before = torch.softmax(torch.from_numpy(calibration_logits), dim=1).numpy()
    after = torch.softmax(torch.from_numpy(calibration_logits / temperature), dim=1).numpy()
    metrics.update(
        calibration_accuracy=float((before.argmax(1) == calibration_labels).mean()),
        nll_before=negative_log_likelihood(calibration_logits, calibration_labels),
        nll_after=negative_log_likelihood(calibration_logits, calibration_labels, temperature),
        ece_before=expected_calibration_error(before, calibration_labels),
        ece_after=expected_calibration_error(after, calibration_labels),
    )
    return AdaptedModel(run.path, classes, head, fitted, temperature, shots, metrics, encoder)


def _unlabelled_pool(
    run: Run,
    outside_shots: np.ndarray,
    unlabeled: str | os.PathLike | Source | None,
    unlabeled_embeddings: np.ndarray | None,
    seed: int,
    show_progress: ShowProgress,
) -> np.ndarray:
    """The propagation head's unlabelled embeddings: the labelled data's items outside the
    shots, then ``unlabeled``'s readable items; at most :data:`MAX_UNLABELLED`."""
    parts = [outside_shots]
    if unlabeled is not None or unlabeled_embeddings is not None:
        if unlabeled_embeddings is None:  # kept in the run for large data: predict reads them
            unlabeled_embeddings = run.embeddings(run.open(unlabeled), show_progress)
        parts.append(unlabeled_embeddings[~np.isnan(unlabeled_embeddings).any(axis=1)])
    pool = np.concatenate(parts)
    if len(pool) == 0:
        raise ValueError(
            "the propagation head needs unlabelled items: pass unlabelled data (--unlabeled) "
            "or draw --shots from labelled data that has more items"
        )
    if len(pool) > MAX_UNLABELLED:
        keep = np.random.default_rng(seed).choice(len(pool), MAX_UNLABELLED, replace=False)
        pool = pool[np.sort(keep)]
    return pool
