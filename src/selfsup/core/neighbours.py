"""Nearest neighbours: the one place every k-NN search of selfsup goes through.

kNN evaluation, the label-free neighbour agreement, the audit's group purity, explanations'
neighbours, anomaly scores, label propagation and typicality all ask for the ``k`` nearest
keys of each query, by cosine similarity or by Euclidean distance. The search is exact, by
chunks of queries, so memory is ``chunk x keys`` floats whatever the number of queries; an
index for millions of keys (faiss) plugs in here.

Example:
    >>> import torch
    >>> keys = torch.tensor([[1.0, 0.0], [0.8, 0.2], [0.0, 1.0]])
    >>> similarity, index = cosine_topk(keys, keys, k=1, exclude_self=True)
    >>> index.flatten().tolist()
    [1, 0, 1]
    >>> distance, index = euclidean_topk(torch.tensor([[0.9, 0.0]]), keys, k=2)
    >>> index.tolist(), [round(d, 2) for d in distance[0].tolist()]
    ([[0, 1]], [0.1, 0.22])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

#: Queries compared with all keys at once (memory: this many times the number of keys).
CHUNK = 1024


def _search(
    queries: torch.Tensor,
    keys: torch.Tensor,
    k: int,
    score: str,
    exclude_self: bool,
    allowed: torch.Tensor | None,
    chunk: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    if exclude_self and len(queries) != len(keys):
        raise ValueError("exclude_self needs the queries to be the keys")
    available = len(keys) - int(exclude_self)
    if allowed is not None:
        available = min(available, int(allowed.sum()))
    if not 1 <= k <= available:
        raise ValueError(f"k must be in [1, {available}] (the keys available), got {k}")
    largest = score == "cosine"
    worst = -float("inf") if largest else float("inf")
    values, indices = [], []
    for start in range(0, len(queries), chunk):
        block = queries[start : start + chunk]
        scores = block @ keys.T if largest else torch.cdist(block, keys)
        if exclude_self:
            rows = torch.arange(len(block))
            scores[rows, rows + start] = worst  # an item is not its own neighbour
        if allowed is not None:
            scores[:, ~allowed] = worst
        top = scores.topk(k, dim=1, largest=largest)
        values.append(top.values)
        indices.append(top.indices)
    return torch.cat(values), torch.cat(indices)


def cosine_topk(
    queries: torch.Tensor,
    keys: torch.Tensor,
    k: int,
    *,
    exclude_self: bool = False,
    allowed: torch.Tensor | None = None,
    chunk: int = CHUNK,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` keys most cosine-similar to each query: similarities and indices ``(n, k)``,
    most similar first.

    Args:
        queries: ``(n, d)`` embeddings.
        keys: ``(m, d)`` embeddings.
        k: neighbours per query, at most the keys available.
        exclude_self: the queries are the keys; row ``i`` never returns key ``i``.
        allowed: optional boolean ``(m,)``; keys where it is False are never returned.
        chunk: queries compared at once.

    Raises:
        ValueError: ``k`` out of range, or ``exclude_self`` with other queries than keys.
    """
    q = F.normalize(queries.float(), dim=1)
    z = q if exclude_self and queries is keys else F.normalize(keys.float(), dim=1)
    return _search(q, z, k, "cosine", exclude_self, allowed, chunk)


def euclidean_topk(
    queries: torch.Tensor,
    keys: torch.Tensor,
    k: int,
    *,
    exclude_self: bool = False,
    allowed: torch.Tensor | None = None,
    chunk: int = CHUNK,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` keys nearest to each query in Euclidean distance: distances and indices
    ``(n, k)``, nearest first. Arguments as :func:`cosine_topk`."""
    return _search(queries.float(), keys.float(), k, "euclidean", exclude_self, allowed, chunk)
