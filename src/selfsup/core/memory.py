"""How much memory this process can still use, on a CPU or a GPU, and how much tensors
made in a piece of work take at their peak (:class:`PeakTracker`).

Example:
    >>> import torch
    >>> available_memory(torch.device("cpu")) > 0
    True
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import sys
import warnings
import weakref
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None where the C library has none (macOS, musl)."""
    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None


def give_back_freed() -> bool:
    """Hand the memory of freed arrays back to the system where an allocator keeps it for
    reuse: glibc's heap (``malloc_trim``: arrays of a few MB are carved from it, and a
    structure rebuilt from them piece by piece, a year of logs cut into windows, would hold
    both at once though the pieces are freed) and Arrow's pool where Arrow is loaded (its CSV
    reader's buffers: 2.3 GB kept after reading 10,000,000 transactions of 1.6 GB). Whether
    the C heap gave any.

    Example:
        >>> isinstance(give_back_freed(), bool)
        True
    """
    arrow = sys.modules.get("pyarrow")
    if arrow is not None:
        arrow.default_memory_pool().release_unused()
    trim = _malloc_trim()
    return bool(trim(0)) if trim is not None else False


def available_memory(device: torch.device) -> int:
    """Bytes this process can still use: free GPU memory, or on a CPU the smaller of the
    kernel's MemAvailable and what the cgroup (container) limit leaves."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    free = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                free = int(line.split()[1]) * 1024
    with contextlib.suppress(OSError, ValueError):
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text())
        if limit != "max":
            free = min(free or 2**62, int(limit) - used)
    if free is None:  # not Linux: all physical memory
        free = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return int(free)


class PeakTracker(TorchDispatchMode):
    """Counts the bytes of the tensors made while it is open (every operator's outputs, in
    both passes), less those freed, and keeps the peak. Storages that existed before (weights,
    the input items), and views of them, are not counted.

    Example:
        >>> x = torch.zeros(1000)
        >>> with PeakTracker([x]) as tracker:
        ...     y = x + 1  # 4,000 bytes
        ...     z = (y * 2).sum()  # 4,000 more at the peak, freed at once
        ...     del y
        >>> tracker.peak, tracker.live
        (8004, 4)
    """

    def __init__(self, existing: Iterable[torch.Tensor] = ()) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self._held: dict[int, int] = {}
        self._existing = {_address(t) for t in existing}

    def __torch_dispatch__(
        self, func: Callable[..., Any], types: Any, args: tuple = (), kwargs: dict | None = None
    ) -> Any:
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor):
                self._count(t)
        self.peak = max(self.peak, self.live)
        return out

    def _count(self, t: torch.Tensor) -> None:
        try:
            storage = t.untyped_storage()
        except (RuntimeError, NotImplementedError):  # tensors without storage
            return
        address, size = storage.data_ptr(), storage.nbytes()
        if size == 0 or address in self._held or address in self._existing:
            return
        self._held[address] = size
        self.live += size
        weakref.finalize(storage, self._free, address)

    def _free(self, address: int) -> None:
        self.live -= self._held.pop(address, 0)


def _address(t: torch.Tensor) -> int:
    return t.untyped_storage().data_ptr()


def in_place_tensor(array: Any, dtype: torch.dtype | None = None) -> torch.Tensor:
    """``array`` (a NumPy array or a tensor) as a tensor, without a copy where its dtype is
    ``dtype`` already: a run's kept embeddings are a read-only memory map (two million 256-d
    rows are 2 GB), read in place by callers that never write into them, so PyTorch's
    warning that such a tensor must not be written is silenced.

    Example:
        >>> import numpy as np
        >>> z = np.ones((2, 3), dtype=np.float32)
        >>> z.flags.writeable = False
        >>> t = in_place_tensor(z, torch.float32)
        >>> t.shape, t.data_ptr() == z.ctypes.data
        (torch.Size([2, 3]), True)
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "The given NumPy array is not writable")
        return torch.as_tensor(array, dtype=dtype)
