"""How much memory this process can still use, on a CPU or a GPU.

Example:
    >>> import torch
    >>> available_memory(torch.device("cpu")) > 0
    True
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import torch


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
