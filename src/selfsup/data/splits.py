"""Subsets of a source and the fit/test splits that evaluation uses.

Example:
    >>> train, test = train_test_sources("digits")
    >>> train.name, test.name
    ('digits', 'digits:test')
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch

from selfsup.data.base import Batch, Source
from selfsup.data.named import is_named_spec, named_splits, stratified_split


class SubsetSource(Source):
    """The items of ``source`` at ``indices``, in that order.

    Args:
        source: the full source.
        indices: the positions to keep.
        name: the subset's name.
    """

    def __init__(self, source: Source, indices: Sequence[int], name: str) -> None:
        self.source = source
        self.indices = np.asarray(indices, dtype=np.int64)
        self.name = name
        self.modality = source.modality
        self.classes = source.classes
        self.labels = None if source.labels is None else source.labels[self.indices]
        self.preprocessor = getattr(source, "preprocessor", None)  # tables: their encoding

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def ids(self) -> Sequence[str]:
        return [self.source.ids[i] for i in self.indices]

    def read(self, index: int) -> torch.Tensor:
        return self.source.read(int(self.indices[index]))

    def read_batch(self, indices: Sequence[int]) -> Batch:
        positions = {int(self.indices[i]): int(i) for i in indices}
        batch = self.source.read_batch([int(self.indices[i]) for i in indices])
        for item in batch.skipped:
            item.index = positions[item.index]
        return Batch(batch.items, [positions[i] for i in batch.indices], batch.skipped)


def _open(data: str | os.PathLike | Source) -> Source:
    from selfsup.data import open_source

    return data if isinstance(data, Source) else open_source(data)


def train_test_sources(
    data: str | os.PathLike | Source,
    test: str | os.PathLike | Source | None = None,
    test_fraction: float = 0.2,
) -> tuple[Source, Source]:
    """The split to fit probes on and the split to score them on.

    ``test`` when given; else a named dataset's official test split (``fashion-mnist`` pairs
    with ``fashion-mnist:test``, ``ucr:GunPoint`` with ``ucr:GunPoint:test``); else a
    deterministic stratified split of ``data``.
    """
    if test is not None:
        return _open(data), _open(test)
    if isinstance(data, str) and data.startswith("ucr:") and data.count(":") == 1:
        return _open(data), _open(f"{data}:test")
    from selfsup.data.tabular import is_tabular_spec

    if isinstance(data, str) and is_tabular_spec(data) and not data.endswith(":test"):
        return _open(data), _open(f"{data.removesuffix(':train')}:test")
    named = isinstance(data, str) and is_named_spec(data) and ":" not in data
    if named and "test" in named_splits(data):
        return _open(data), _open(f"{data}:test")
    source = _open(data)
    if source.labels is None:
        raise ValueError(f"{source.name}: evaluation needs labels, and this data has none")
    fit, held_out = stratified_split(source.labels, test_fraction)
    return (
        SubsetSource(source, fit, f"{source.name}[fit]"),
        SubsetSource(source, held_out, f"{source.name}[test]"),
    )


def hold_out(source: Source, items: int, seed: int = 0) -> tuple[Source, Source | None]:
    """Split off ``items`` random items (at most a tenth of ``source``) as a held-out part.

    The training loop measures label-free metrics on the held-out part, which it never
    trains on. The split depends only on ``seed``, so a resumed run gets the same one.

    Returns:
        ``(rest, held_out)``; ``held_out`` is None when ``items`` is 0 or the source is too
        small to spare 16 items.

    Example:
        >>> import numpy as np
        >>> from selfsup.data.arrays import ArraySource
        >>> rest, held = hold_out(ArraySource(np.zeros((1000, 4, 4), dtype=np.uint8)), 64)
        >>> len(rest), len(held)
        (936, 64)
    """
    count = min(items, len(source) // 10)
    if count < 16:
        return source, None
    order = np.random.default_rng([seed, 7919]).permutation(len(source))
    held, rest = np.sort(order[:count]), np.sort(order[count:])
    return (
        SubsetSource(source, rest, source.name),
        SubsetSource(source, held, f"{source.name} (held out)"),
    )
