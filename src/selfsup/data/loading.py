"""What the ``DataLoader`` worker processes that read batches ahead share (training, embedding).

A source reads a whole batch at a time (``Source.read_batch``), so a loader hands each
``Batch`` over as it is (``keep_batch``). On a CPU the workers share the cores with the
process that trains or embeds: ``yield_to_training`` lowers their priority, so their decoding
takes the cores when that process leaves them (between operations, waiting for a batch)
rather than preempting its threads, whose OpenMP barriers wait for the slowest of them.

Example:
    >>> from torch.utils.data import DataLoader
    >>> loader = DataLoader([1, 2], batch_size=None, collate_fn=keep_batch)
    >>> list(loader)
    [1, 2]
"""

from __future__ import annotations

import contextlib
import os
from typing import TypeVar

T = TypeVar("T")


def keep_batch(batch: T) -> T:
    """A loader's collate function for items that are whole batches already: the batch."""
    return batch


def yield_to_training(worker_id: int) -> None:
    """A loader's ``worker_init_fn`` on a CPU: the worker at the lowest priority (nice 19);
    ``benchmarks/photos.py`` times training from a folder with and without it."""
    with contextlib.suppress(OSError, AttributeError):  # no os.nice on Windows
        os.nice(19)
