"""The memory a training step will need, estimated before training starts.

One forward pass of the real step (views, encoder, loss) on a few items, under the run's
precision, counts the bytes autograd keeps for the backward pass (the activations, which grow
with the batch); the parameters count four times (weights, gradients and two optimizer
moments) and a margin covers the temporaries of the backward pass. ``plan_batch`` then keeps
the batch, lowers it to the largest power of two that fits, or stops with the numbers.

Example:
    >>> plan = MemoryPlan(fixed=10 * 2**20, per_item=2**20, loader_per_item=0, available=2**30)
    >>> round(plan.peak(64) / 2**20, 1), plan.largest_fitting(4096)
    (93.2, 512)
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

import lightning
import torch
from torch import nn

from selfsup.config import ConfigError
from selfsup.engine.train import channels_last

#: Share of the available memory a step may plan to use.
USABLE_SHARE = 0.8
#: The backward pass's temporaries on top of the saved activations.
MARGIN = 1.3
#: The smallest batch lowered to before the run is stopped instead.
SMALLEST_BATCH = 8
_GB = 2**30


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


@dataclass
class MemoryPlan:
    """What a step needs: ``fixed`` bytes whatever the batch, ``per_item`` bytes of
    activations and ``loader_per_item`` bytes of loaded batches per item, and what is
    ``available``."""

    fixed: int
    per_item: int
    loader_per_item: int
    available: int

    def peak(self, batch: int) -> int:
        """Estimated peak bytes of a step on ``batch`` items."""
        return int(self.fixed + batch * (self.per_item * MARGIN + self.loader_per_item))

    def fits(self, batch: int) -> bool:
        return self.peak(batch) <= USABLE_SHARE * self.available

    def largest_fitting(self, batch: int) -> int:
        """The largest power of two up to ``batch`` that fits (``batch`` when it fits); 0 when
        not even ``SMALLEST_BATCH`` does."""
        if self.fits(batch):
            return batch
        size = 1 << (batch.bit_length() - 1)
        while size >= SMALLEST_BATCH and not self.fits(size):
            size //= 2
        return size if size >= SMALLEST_BATCH else 0

    def describe(self, batch: int) -> str:
        peak = self.peak(batch)
        size = f"{peak / _GB:.1f} GB" if peak >= _GB else f"{peak / 2**20:.0f} MB"
        return (
            f"about {size} at batch {batch} "
            f"({self.per_item * MARGIN / 2**20:.1f} MB per item, "
            f"{self.fixed / 2**20:.0f} MB of weights and optimizer state); "
            f"{self.available / _GB:.1f} GB available"
        )


def measure_step(
    method: nn.Module,
    views: nn.Module,
    items: torch.Tensor,
    fabric: lightning.Fabric,
    batches_in_flight: int = 3,
) -> MemoryPlan:
    """Run one forward pass of the training step on ``items`` (a few, at least two) and
    return the plan: bytes kept for backward per item, bytes of parameters and optimizer
    state, bytes of loaded items in the ``batches_in_flight`` batches data loading holds.
    Weights and buffers (queues, batch-norm statistics) are left as they were and the random
    generators' states restored."""
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        with contextlib.suppress(RuntimeError):  # tensors without storage (views of none)
            storage = t.untyped_storage()
            saved[storage.data_ptr()] = storage.nbytes()
        return t

    rng = torch.get_rng_state()
    buffers = {name: b.detach().clone() for name, b in method.named_buffers()}
    was_training = method.training
    method.train()
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), fabric.autocast():
            inputs = views(items.to(fabric.device))
            loss = method([channels_last(v) for v in inputs])
        view_bytes = sum(v.numel() * v.element_size() for v in inputs)
        del loss, inputs
    finally:
        torch.set_rng_state(rng)
        method.train(was_training)
        with torch.no_grad():
            for name, b in method.named_buffers():
                b.copy_(buffers[name])
    per_item = (sum(saved.values()) + view_bytes) // len(items)
    weights = sum(p.numel() * p.element_size() for p in method.parameters())
    kept = sum(b.numel() * b.element_size() for b in buffers.values())
    return MemoryPlan(
        fixed=4 * weights + kept,  # weights, gradients, two optimizer moments; buffers
        per_item=per_item,
        loader_per_item=items[0].numel() * items[0].element_size() * batches_in_flight,
        available=available_memory(fabric.device),
    )


def plan_batch(plan: MemoryPlan, batch: int, given: bool, what: str) -> tuple[int, str]:
    """The batch to train with and the line that says so.

    Args:
        plan: the step's measured needs.
        batch: the batch size asked for.
        given: whether the user chose it (then it is never lowered: the run stops instead).
        what: the step, for messages (backbone, side, precision).

    Raises:
        ConfigError: the batch does not fit and was given, or not even the smallest fits.
    """
    if plan.fits(batch):
        return batch, f"memory plan: {what}: {plan.describe(batch)}"
    best = plan.largest_fitting(batch)
    if given or best == 0:
        options = f"--batch-size {best}" if best else "a smaller --image-size or --backbone"
        raise ConfigError(
            f"{what}: a step needs {plan.describe(batch)}, more than the "
            f"{USABLE_SHARE:.0%} it may use; give {options}, or --precision bf16, a smaller "
            "--image-size or --backbone"
        )
    return best, (
        f"memory plan: {what}: batch lowered from {batch} to {best} to fit: {plan.describe(best)}"
    )
