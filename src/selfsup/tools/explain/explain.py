"""Explaining one item: the number to attribute, the reference, the neighbours, the files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from selfsup.core.progress import ShowProgress
from selfsup.data.base import Source
from selfsup.run import Run
from selfsup.tools.explain.attribution import (
    METHODS,
    PAD_ID,
    Forward,
    attribute,
    nearest_neighbours,
    probability_forward,
    similarity_forward,
    token_attributions,
)
from selfsup.tools.explain.items import _row_of_file, average_input, encoder_input, resolve_item
from selfsup.tools.explain.result import EXPLAIN_DIR, Explanation, Neighbour, save_explanation


def _reference(
    run: Run,
    reference: str,
    own: torch.Tensor,
    train: np.ndarray | None,
    train_source: Source | None,
    row: int | None,
) -> tuple[torch.Tensor, str]:
    """The reference embedding ``--reference`` names, and its description."""
    if reference == "self":
        return own, "its own embedding"
    if reference in ("mean", "neighbour") or (
        train_source is not None and reference in (train_source.classes or [])
    ):
        if train is None or train_source is None:
            raise ValueError(f"--reference {reference} needs the training data: give --data")
        keep = ~np.isnan(train).any(axis=1)
        if reference == "mean":
            return torch.from_numpy(train[keep].mean(axis=0)), "the mean training embedding"
        if reference == "neighbour":
            idx, _ = nearest_neighbours(own.numpy(), train, 1, exclude=row)
            neighbour = train_source.ids[idx[0]]
            return torch.from_numpy(train[idx[0]]), f"its nearest neighbour {neighbour}"
        code = train_source.classes.index(reference)
        members = keep & (train_source.labels == code)
        return torch.from_numpy(train[members].mean(axis=0)), f"the mean of class {reference}"
    other, other_id, _, _ = resolve_item(run, reference)
    with torch.no_grad():
        emb = run.encoder(encoder_input(run.encoder, other)[None])[0]
    return emb, f"item {other_id}"


def explain_item(
    run: Run,
    item: str,
    *,
    data: str | os.PathLike | None = None,
    model: str | os.PathLike | None = None,
    target: str | None = None,
    method: str = "ig",
    reference: str = "self",
    neighbours: int = 8,
    out: str | os.PathLike | None = None,
    show_progress: ShowProgress = "auto",
) -> Explanation:
    """Explain one item of a run: attribution map, nearest neighbours, PNGs and JSON.

    Args:
        run: a :class:`selfsup.run.Run`.
        item: an image (or audio) file, or ``DATA#KEY``.
        data: training data to find the neighbours in (and for ``--reference mean``,
            ``neighbour`` or a class); the item's own data when it came as ``DATA#KEY``.
        model: an adapted model's folder: attribute its class probability.
        target: the class to attribute (with ``model``); default the predicted class.
        method: ``ig`` or ``occlusion`` (text items always use layer integrated gradients).
        reference: without ``model``: ``self``, ``mean``, ``neighbour``, a class name of
            ``data``, or another ``ITEM``.
        neighbours: how many nearest neighbours to show.
        out: the folder for the files (default ``RUN/explain``).
        show_progress: draw a progress bar while embedding the training data (``"auto"``:
            once it has taken a few seconds).
    """
    if method not in METHODS:
        raise ValueError(f"unknown attribution method {method!r}; choose {' or '.join(METHODS)}")
    raw, item_id, own_source, row = resolve_item(run, item)
    x = encoder_input(run.encoder, raw)
    encoder = run.encoder.eval()
    train_source = own_source
    if data is not None and (own_source is None or str(data) != item.rsplit("#", 1)[0]):
        train_source = run.open(data)  # not the item's own data opened again (10M rows: 45 s)
    # The item's own row in the training data, so it is not its own nearest neighbour.
    own_row = (
        row
        if own_source is not None and train_source is own_source
        else _row_of_file(item, train_source)
    )
    train = None
    if train_source is not None:
        train = run.embeddings(train_source, show_progress=show_progress)
    with torch.no_grad():
        own = encoder(x[None])[0].float()

    if model is not None:
        forward, described = _model_target(model, target, x)
    else:
        ref, what = _reference(run, reference, own, train, train_source, own_row)
        forward, described = similarity_forward(encoder, ref), f"cosine similarity to {what}"
    parts = own_source.parts() if own_source is not None else None
    if parts is not None:  # a long recording or document
        part, _ = parts.words
        described += (
            f", on {parts.single} (other commands embed it as the mean of {part} spread over it)"
        )

    tokenizer = None
    if run.modality.items_are_text:
        from selfsup.data.tokenizer import TextTokenizer

        layer = getattr(encoder.backbone, "token_embedding", None)
        if layer is None:
            raise TypeError("the text backbone has no token_embedding layer to attribute")
        tokenizer = TextTokenizer.load(run.path)
        attribution = token_attributions(forward, layer, x, PAD_ID)
        method = "layer-ig"
    else:
        attribution = attribute(forward, x, average_input(encoder, x), method)
    with torch.no_grad():
        score = float(forward(x[None])[0])

    explanation = Explanation(
        item_id, x, attribution, method, described, score,
        tokens=None if tokenizer is None else tokenizer.tokens(x.tolist()),
        feature_names=getattr(train_source or own_source, "feature_names", None),
    )  # fmt: skip
    if train is not None:
        _add_neighbours(explanation, encoder, own, train, train_source, neighbours, own_row)
        if tokenizer is not None:
            rows = [x, *explanation.neighbour_items]
            explanation.texts = [tokenizer.decode(ids.tolist()) for ids in rows]
    folder = Path(out) if out is not None else Path(run.path) / EXPLAIN_DIR
    save_explanation(explanation, folder)
    return explanation


def _model_target(
    model: str | os.PathLike, target: str | None, x: torch.Tensor
) -> tuple[Forward, str]:
    """The adapted model's probability of ``target`` (default: the predicted class)."""
    from selfsup.tools.adapt import AdaptedModel

    adapted = AdaptedModel.load(model)
    module = adapted.module().eval()
    if target is None:
        with torch.no_grad():
            class_index = int(module(x[None])[0].argmax())
    elif target in adapted.classes:
        class_index = adapted.classes.index(target)
    else:
        raise ValueError(f"--target {target!r} is not a class of the model: {adapted.classes}")
    return probability_forward(module, class_index), (
        f"probability of class {adapted.classes[class_index]}"
    )


def _add_neighbours(
    explanation: Explanation,
    encoder: nn.Module,
    own: torch.Tensor,
    train: np.ndarray,
    train_source: Source,
    count: int,
    own_row: int | None,
) -> None:
    """Fill in the item's ``count`` nearest neighbours in the training data."""
    idx, sims = nearest_neighbours(own.numpy(), train, count, exclude=own_row)
    classes = train_source.classes
    for i, similarity in zip(idx.tolist(), sims.tolist(), strict=True):
        label = None
        if train_source.labels is not None:
            code = int(train_source.labels[i])
            label = classes[code] if classes else str(code)
        explanation.neighbours.append(Neighbour(i, str(train_source.ids[i]), similarity, label))
    batch = train_source.read_batch(idx.tolist())
    explanation.neighbour_items = [encoder_input(encoder, item) for item in batch.items]
