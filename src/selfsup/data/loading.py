"""Reading batches ahead in ``DataLoader`` worker processes (training, embedding, raw inputs).

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
import signal
from collections.abc import Iterator, Sequence
from typing import TypeVar

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from selfsup.core.memory import M_MMAP_THRESHOLD, available_memory, set_malloc
from selfsup.data.base import Batch, Source

T = TypeVar("T")


def keep_batch(batch: T) -> T:
    """A loader's collate function for items that are whole batches already: the batch."""
    return batch


#: Blocks of at least this many bytes a reading worker takes from the system and gives back
#: when freed (glibc's ``M_MMAP_THRESHOLD``), see :func:`return_freed_memory`.
WORKER_MMAP_BYTES = 1 << 20


def return_freed_memory(threshold: int = WORKER_MMAP_BYTES) -> bool:
    """Have glibc's malloc in this process map blocks of ``threshold`` bytes and more on their
    own and unmap them when freed; True where it could (Linux with glibc). By default glibc
    raises that threshold to the largest block freed so far (up to 32 MB), so a reader's
    decoded files and log-mels of varying sizes, freed as each batch is handed over, go to a
    heap that fragments and is not given back: a worker reading a call centre's clips, 64
    log-mels a batch, grew from 0.5 to 2.5-3 GB in one run and to 0.7 GB in the next;
    fixed, it stays at 0.46 GB. Set in reading workers only: the process that trains
    allocates large tensors at every step, which mapping anew would slow.

    Example:
        >>> isinstance(return_freed_memory(), bool)
        True
    """
    return set_malloc(M_MMAP_THRESHOLD, int(threshold))  # not glibc: its allocator left alone


def yield_to_training(worker_id: int) -> None:
    """A loader's ``worker_init_fn`` on a CPU: the worker at the lowest priority (nice 19);
    ``benchmarks/photos.py`` times training from a folder with and without it. Its freed
    memory is given back (:func:`return_freed_memory`)."""
    reading_worker(worker_id)
    with contextlib.suppress(OSError, AttributeError):  # no os.nice on Windows
        os.nice(19)


def reading_worker(worker_id: int) -> None:
    """A loader's ``worker_init_fn`` on a GPU machine: the worker gives freed memory back
    (:func:`return_freed_memory`), and leaves Ctrl-C to the process it reads for, which
    ends its step first (it may need another batch to stop with the other DDP processes).
    SIGTERM still ends a worker: the loader sends it to a worker that does not stop when
    asked, and one that ignored it would keep its process from ever exiting."""
    return_freed_memory()
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class BatchReader(Dataset):
    """A dataset whose item at ``rows`` is the whole ``Batch`` of those rows, read for a
    device (8-bit images as uint8: :meth:`Source.read_training_batch`); a loader given it
    takes the batches of rows as its ``sampler``, with ``batch_size=None`` and
    ``collate_fn=keep_batch``.

    Example:
        >>> import numpy as np
        >>> from selfsup.data.arrays import ArraySource
        >>> BatchReader(ArraySource(np.zeros((5, 4, 4), np.uint8)))[[4, 0]].indices
        [4, 0]
    """

    def __init__(self, source: Source) -> None:
        self.source = source

    def __getitem__(self, rows: Sequence[int]) -> Batch:
        return self.source.read_training_batch([int(k) for k in rows])


class EpochBatches(Sampler):
    """The batches of rows a loader reads next: set anew before each epoch
    (:class:`EpochReader`), so one loader, and its workers, serve every epoch."""

    def __init__(self) -> None:
        self.batches: Sequence[Sequence[int]] = []

    def __iter__(self) -> Iterator[Sequence[int]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class EpochReader:
    """Training's batches, read ahead by ``workers`` processes that live for the whole run
    (``with``): a loader started anew for each epoch forks its workers again, and the pages
    the training process then writes (its weights, its optimizer's moments, its activations'
    reused heap) are copied or faulted back once more after each fork, which slows small
    folders, whose epochs are a few steps, by a third.

    Args:
        source: what is read.
        workers: loader processes (0: each batch is read in this process when asked).
        device: where training runs: on a CPU workers yield to it (``yield_to_training``);
            on a GPU batches come in pinned memory.
        seed: seeds the loader's own generator, which it draws from when iterated, so the
            global one the augmentations draw from does not move.

    Example:
        >>> import numpy as np
        >>> from selfsup.data.arrays import ArraySource
        >>> source = ArraySource(np.zeros((5, 4, 4), np.uint8))
        >>> with EpochReader(source, 0, torch.device("cpu"), seed=0) as reader:
        ...     [b.indices for b in reader.epoch([[3, 1], [0]])]
        [[3, 1], [0]]
    """

    def __init__(self, source: Source, workers: int, device: torch.device, seed: int) -> None:
        self._plan = EpochBatches()
        self._loader: DataLoader | None = DataLoader(
            BatchReader(source),
            sampler=self._plan,
            batch_size=None,
            num_workers=workers,
            collate_fn=keep_batch,
            worker_init_fn=yield_to_training if device.type == "cpu" else reading_worker,
            prefetch_factor=2 if workers else None,
            persistent_workers=workers > 0,
            pin_memory=device.type == "cuda",
            generator=torch.Generator().manual_seed(seed),
        )

    def epoch(self, batches: Sequence[Sequence[int]]) -> Iterator[Batch]:
        """The batches of ``batches``' rows, in order (a loop that stops early leaves the
        rest unread: the next epoch's batches come first next time)."""
        if self._loader is None:
            raise RuntimeError("the reader was closed")
        self._plan.batches = batches
        return iter(self._loader)

    def __enter__(self) -> EpochReader:
        return self

    def __exit__(self, *exc: object) -> None:
        # The loader's iterator is its last reference: dropping it stops the workers now.
        self._loader = None


#: The share of available memory the batches read ahead may hold.
READ_AHEAD_MEMORY_SHARE = 0.25


def affordable_workers(source: Source, batch_size: int, workers: int) -> int:
    """At most ``workers`` processes to read ``source`` ahead with (``read_ahead``): fewer
    where their batches in flight (two per worker and the one in use, counted as float32)
    would pass a quarter of the memory available.

    Example:
        >>> import numpy as np
        >>> from selfsup.data.arrays import ArraySource
        >>> affordable_workers(ArraySource(np.zeros((4, 8, 8))), 2, workers=3)
        3
    """
    if workers == 0:
        return 0
    batch_bytes = 4 * source.first_item().numel() * batch_size
    fits = int(READ_AHEAD_MEMORY_SHARE * available_memory(torch.device("cpu")) // batch_bytes)
    return max(0, min(workers, (fits - 1) // 2))


def read_ahead(
    source: Source, batch_size: int, workers: int, device: torch.device | None = None
) -> Iterator[Batch]:
    """The source's batches in order, read by ``workers`` processes two batches ahead each.

    Items a worker could not read are recorded in ``source.unreadable`` here too, as a
    reading in this process would have (the worker's record stays in the worker).

    Example:
        >>> import numpy as np
        >>> from selfsup.data.arrays import ArraySource
        >>> batches = read_ahead(ArraySource(np.zeros((5, 4, 4), np.uint8)), 2, workers=0)
        >>> [b.indices for b in batches]
        [[0, 1], [2, 3], [4]]
    """
    n = len(source)
    loader = DataLoader(
        BatchReader(source),
        sampler=[range(k, min(n, k + batch_size)) for k in range(0, n, batch_size)],
        batch_size=None,
        num_workers=workers,
        collate_fn=keep_batch,
        prefetch_factor=2 if workers else None,
        pin_memory=device is not None and device.type == "cuda",
        worker_init_fn=(
            yield_to_training if device is None or device.type == "cpu" else reading_worker
        ),
    )
    for batch in loader:
        for item in batch.skipped:
            source.unreadable.setdefault(item.item_id, item.reason)
        yield batch
