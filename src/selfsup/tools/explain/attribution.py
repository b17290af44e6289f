"""Attributions and neighbours: integrated gradients and occlusion (captum) of one number
computed from an item, per token for text, and the cosine nearest neighbours of an embedding."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from selfsup.core.neighbours import cosine_topk
from selfsup.core.progress import activity
from selfsup.embedding import embeddings_tensor, readable_rows

METHODS = ("ig", "occlusion")
#: Steps of the integrated-gradients path (the error of its Riemann sum shrinks as 1/steps).
IG_STEPS = 32
#: Input values per batch of integrated-gradients steps: 13 steps of a 224-pixel image, and 3
#: of three months of minute readings of 5 sensors, at a time instead of all of them at once.
IG_BATCH_VALUES = 2**21
#: The id text sources pad with: the baseline of token attributions.
PAD_ID = 0

Forward = Callable[[torch.Tensor], torch.Tensor]


def positive_mass_share(heat: np.ndarray, fraction: float) -> float:
    """The share of the positive attribution held by the top ``fraction`` of positions.

    Example:
        >>> positive_mass_share(np.array([8.0, 1.0, 1.0, -5.0, 0, 0, 0, 0, 0, 0]), 0.1)
        0.8
    """
    positive = np.clip(np.asarray(heat, dtype=float).reshape(-1), 0, None)
    total = positive.sum()
    if total <= 0:
        return 0.0
    top = max(1, round(fraction * positive.size))
    return float(np.sort(positive)[::-1][:top].sum() / total)


def occlusion_window(shape: Sequence[int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Occlusion window and strides for an item shape: an eighth of each spatial side (at
    least 2), half a window apart, over all channels at once.

    Example:
        >>> occlusion_window((1, 32, 32)), occlusion_window((2, 100))
        (((1, 4, 4), (1, 2, 2)), ((2, 12), (2, 6)))
    """
    channels, *spatial = shape
    if not spatial:  # a table row: one feature at a time
        return (1,), (1,)
    window = [max(2, side // 8) for side in spatial]
    strides = [max(1, w // 2) for w in window]
    return (channels, *window), (channels, *strides)


def attribute(
    forward: Forward,
    item: torch.Tensor,
    baseline: torch.Tensor,
    method: str = "ig",
    steps: int = IG_STEPS,
) -> np.ndarray:
    """Attribute ``forward(item)`` (one number per item of a batch) to the item's values.

    Args:
        forward: maps a batch ``(n, *item.shape)`` to ``(n,)``.
        item: one item, without batch dimension.
        baseline: the input that stands for "nothing", same shape.
        method: ``ig`` (integrated gradients; the values sum to ``forward(item) -
            forward(baseline)``) or ``occlusion`` (drop of ``forward`` when a window is
            replaced by the baseline, averaged over the windows covering each value).
        steps: integrated-gradients steps.

    Returns:
        The attribution, the shape of ``item``.
    """
    from captum.attr import IntegratedGradients, Occlusion

    if method not in METHODS:
        raise ValueError(f"unknown attribution method {method!r}; choose {' or '.join(METHODS)}")
    x, base = item[None].float(), baseline[None].float()
    if method == "ig":
        explainer = IntegratedGradients(forward)
        batch = max(1, min(steps, IG_BATCH_VALUES // max(1, item.numel())))
        with activity(f"integrated gradients, {steps} steps, {batch} at a time"):
            values = explainer.attribute(
                x, baselines=base, n_steps=steps, internal_batch_size=batch
            )
    else:
        window, strides = occlusion_window(tuple(item.shape))
        with activity("occlusion, one window at a time"), torch.no_grad():
            values = Occlusion(forward).attribute(
                x, sliding_window_shapes=window, strides=strides, baselines=base
            )
    return values[0].detach().float().numpy()


def token_attributions(
    forward: Callable[[torch.Tensor], torch.Tensor],
    token_embedding: nn.Module,
    ids: torch.Tensor,
    baseline_id: int = 0,
    steps: int = IG_STEPS,
) -> np.ndarray:
    """Per-token attribution of ``forward(ids)`` by layer integrated gradients on the
    embedding layer, from a sequence of ``baseline_id`` (the padding token).

    Args:
        forward: maps token ids ``(n, length)`` to ``(n,)``.
        token_embedding: the ``nn.Embedding`` the ids go through.
        ids: one sequence of token ids ``(length,)``.
        baseline_id: the id of the baseline token.
        steps: integrated-gradients steps.

    Returns:
        One value per token: its attribution summed over the embedding dimensions.
    """
    from captum.attr import LayerIntegratedGradients

    x = ids[None].long()
    explainer = LayerIntegratedGradients(forward, token_embedding)
    values = explainer.attribute(
        x, baselines=torch.full_like(x, baseline_id), n_steps=steps, internal_batch_size=steps
    )
    return values[0].sum(dim=-1).detach().float().numpy()


def similarity_forward(encoder: nn.Module, reference: torch.Tensor) -> Forward:
    """``x -> cos(encoder(x), reference)`` for a batch of items."""
    ref = F.normalize(reference.detach().float().reshape(1, -1), dim=1)

    def forward(x: torch.Tensor) -> torch.Tensor:
        return (F.normalize(encoder(x).float(), dim=1) * ref).sum(dim=1)

    return forward


def probability_forward(module: nn.Module, class_index: int) -> Forward:
    """``x -> module(x)[:, class_index]`` for a module mapping items to class probabilities."""

    def forward(x: torch.Tensor) -> torch.Tensor:
        return module(x)[:, class_index]

    return forward


def nearest_neighbours(
    query: np.ndarray, embeddings: np.ndarray, k: int = 8, exclude: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Indices and cosine similarities of the ``k`` rows of ``embeddings`` most similar to
    ``query`` (rows with NaN and the row ``exclude`` left out), most similar first.

    Example:
        >>> idx, sim = nearest_neighbours(np.array([1.0, 0]), np.eye(2)[[1, 0, 0]], k=2)
        >>> idx.tolist(), sim.round(2).tolist()
        ([1, 2], [1.0, 1.0])
    """
    # No copy of the embeddings (ten million are 10 GB): unreadable rows are masked.
    allowed = torch.from_numpy(readable_rows(embeddings))
    if exclude is not None:
        allowed[exclude] = False
    z = embeddings_tensor(embeddings)
    q = torch.as_tensor(query, dtype=torch.float32).reshape(1, -1)
    similarity, index = cosine_topk(q, z, min(k, int(allowed.sum())), allowed=allowed)
    return index[0].numpy(), similarity[0].numpy()
