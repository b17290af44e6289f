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
import platform
import sys
import warnings
import weakref
from collections.abc import Callable, Iterable, Iterator
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


#: glibc's ``mallopt`` parameters (``malloc.h``).
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_MMAP_MAX = -1, -3, -4
#: What :func:`steps_reuse_memory` leaves once its steps are done: glibc's own settings once
#: large buffers have come and gone (its mmap threshold rises to the largest freed buffer, up
#: to 32 MB, and its trim threshold to twice that), and the default count of mapped buffers.
_AFTER_STEPS = (
    (M_MMAP_MAX, 65_536),
    (M_MMAP_THRESHOLD, 32 * 2**20),
    (M_TRIM_THRESHOLD, 64 * 2**20),
)
#: While steps run: no buffer mapped on its own, and the heap's free top kept up to 2 GB.
_DURING_STEPS = ((M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, 2**31 - 1))
_steps_open = 0


@functools.cache
def _mallopt() -> Callable[[int, int], int] | None:
    """glibc's ``mallopt``, or None where the C library is another (macOS, musl)."""
    if platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return None


def set_malloc(param: int, value: int) -> bool:
    """Set glibc malloc's ``param`` (``mallopt``: ``M_MMAP_THRESHOLD`` and the others above)
    in this process; whether it could (False where the C library is not glibc).

    Example:
        >>> isinstance(set_malloc(M_MMAP_THRESHOLD, 32 * 2**20), bool)
        True
    """
    mallopt = _mallopt()
    return bool(mallopt(param, value)) if mallopt is not None else False


def resident_bytes() -> int | None:
    """This process's resident memory in bytes (``/proc/self/statm``), or None off Linux.

    Example:
        >>> (resident_bytes() or 1) > 0
        True
    """
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


class StepMemory:
    """What :func:`steps_reuse_memory` yields: whether freed memory is ``kept`` in the heap,
    and :meth:`after_step`, which gives freed memory back where the heap outgrows its first
    steps.

    Steps whose sizes vary (TS2Vec's random crops) leave holes the next sizes do not fit: a
    TS2Vec run on 3,000-step windows held 6.9 GB at its peak with the heap kept, 5.1 GB
    without, 4.6 GB with this rule. After the first ``WARM_STEPS`` steps set the bar, a step that
    ends with the process holding over ``GROWTH`` times it hands the freed memory back
    (``malloc_trim``); memory still held after that (live tensors) raises the bar instead.

    Example:
        >>> memory = StepMemory(kept=False)
        >>> memory.after_step(); memory.trims
        0
    """

    #: Steps whose resident memory sets the bar: the first ones make the heap's steady state.
    WARM_STEPS = 3
    #: How far past the bar the process may grow before freed memory goes back.
    GROWTH = 1.1

    def __init__(self, kept: bool) -> None:
        self.kept = kept
        self.steps = 0
        self.bar = 0
        self.trims = 0

    def after_step(self) -> None:
        """Count a step done; give freed memory back if the process grew past the bar."""
        if not self.kept:
            return
        self.steps += 1
        held = resident_bytes()
        if held is None:
            return
        if self.steps <= self.WARM_STEPS:
            self.bar = max(self.bar, held)
        elif held > self.bar * self.GROWTH:
            give_back_freed()
            self.trims += 1
            self.bar = max(self.bar, resident_bytes() or held)


@contextlib.contextmanager
def steps_reuse_memory(sizes_repeat: bool = True) -> Iterator[StepMemory]:
    """Keep the memory that repeated steps (training, embedding) free and make again inside
    the process, instead of handing it to the system and faulting it back each step; call
    the yielded :class:`StepMemory`'s ``after_step()`` after each step.

    glibc serves each buffer above its mmap threshold (at most 32 MB) with a fresh mapping
    of the system's and unmaps it when freed: a step of ResNet-18 at 64 pixels (batch 64,
    bf16) frees and maps 2 GB of activations again, 460,000 page faults and a fifth of its
    time spent zeroing pages (3.4-3.6 s a step; 2.8 s with the buffers kept). Inside this
    context no buffer gets a mapping of its own: all come from the heap, which keeps up to
    2 GB of freed top. Where steps repeat their sizes the heap stops growing after the first
    few (the process held 5-13% more at its peak in the models measured); where they vary,
    ``after_step`` gives freed memory back once the process outgrows its first steps. Where
    the items themselves vary in size (``sizes_repeat`` False: texts, batched by length)
    nothing changes: their batches grow and shrink all along, and giving memory back at
    every step faulted 3-4 times as many pages as glibc's own settings (all-MiniLM-L6-v2
    embedding 8,000 reviews: 41-43 s against 30-38 s). On leaving (the outer one where
    nested), glibc's settings return to what it reaches itself once large buffers have come
    and gone, and the freed memory goes back to the system (``malloc_trim``). Nothing changes
    where the C library is not glibc (``kept`` False).

    Example:
        >>> with steps_reuse_memory() as memory:
        ...     for _ in range(3):
        ...         x = torch.ones(2**23)  # 32 MB, freed and made again
        ...         memory.after_step()
        >>> memory.steps == (3 if memory.kept else 0)
        True
    """
    global _steps_open
    if _mallopt() is None or not sizes_repeat:
        yield StepMemory(kept=False)
        return
    if _steps_open == 0:
        for param, value in _DURING_STEPS:
            set_malloc(param, value)
    _steps_open += 1
    try:
        yield StepMemory(kept=True)
    finally:
        _steps_open -= 1
        if _steps_open == 0:
            for param, value in _AFTER_STEPS:
                set_malloc(param, value)
            give_back_freed()


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
