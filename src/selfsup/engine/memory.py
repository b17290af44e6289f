"""The memory a training step will need, estimated before training starts.

One real step (views, encoder, loss and its backward pass) on a few items, under the run's
precision and with the largest sizes the method can draw (TS2Vec's crop), is run while a
:class:`PeakTracker` counts the bytes of every tensor it makes and frees: the peak covers
the activations kept for backward and the temporaries of both passes (such as a contrast's
similarity matrices), which grow with the batch. The parameters count four times (weights,
gradients and two optimizer moments) and a margin covers the allocator's overhead.
``plan_batch`` then keeps the batch, lowers it to the largest power of two that fits, or
stops with the numbers.

Example:
    >>> plan = MemoryPlan(fixed=10 * 2**20, per_item=2**20, loader_per_item=0, available=2**30)
    >>> round(plan.peak(64) / 2**20, 1), plan.largest_fitting(4096)
    (80.4, 512)
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import lightning
import torch
from torch import nn

from selfsup.config import ConfigError
from selfsup.core.memory import PeakTracker, available_memory
from selfsup.engine.train import channels_last

#: Share of the available memory a step may plan to use.
USABLE_SHARE = 0.8
#: The allocator's overhead on the bytes tensors hold (a TS2Vec step on 3,000 steps: the
#: process grew 4% more than its tensors).
MARGIN = 1.1
#: The smallest batch lowered to before the run is stopped instead.
SMALLEST_BATCH = 8
_GB = 2**30


@dataclass
class MemoryPlan:
    """What a step needs: ``fixed`` bytes whatever the batch, ``per_item`` bytes of
    activations and ``loader_per_item`` bytes of loaded batches per item, and what is
    ``available``; ``data`` bytes the data's readers keep (decompressed volumes, in every
    process that reads), said as ``data_words``."""

    fixed: int
    per_item: int
    loader_per_item: int
    available: int
    data: int = 0
    data_words: str = ""

    def peak(self, batch: int) -> int:
        """Estimated peak bytes of a step on ``batch`` items."""
        loaded = batch * (self.per_item * MARGIN + self.loader_per_item)
        return int(self.fixed + self.data + loaded)

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
            f"{self.fixed / 2**20:.0f} MB of weights and optimizer state"
            + (f", {self.data / _GB:.1f} GB {self.data_words}" if self.data else "")
            + f"); {self.available / _GB:.1f} GB available"
        )


def measure_step(
    method: nn.Module,
    views: nn.Module,
    items: torch.Tensor,
    fabric: lightning.Fabric,
    batches_in_flight: int = 3,
) -> MemoryPlan:
    """Run one training step, forward and backward, on ``items`` (a few, at least two, of
    the largest size the data holds) and return the plan: the peak bytes of the tensors the
    step makes, per item; the bytes of parameters and optimizer state; the bytes of loaded
    items in the ``batches_in_flight`` batches data loading holds. The step draws its
    largest sizes (``Method.largest_step``). Weights, gradients and buffers (queues,
    batch-norm statistics) are left as they were and the random generators' states
    restored."""
    rng = torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    buffers = {name: b.detach().clone() for name, b in method.named_buffers()}
    trained = [p for p in method.parameters() if p.requires_grad]
    grads = [p.grad for p in trained]
    for p in trained:  # gradients are part of the fixed cost, not of the step's peak
        p.grad = torch.zeros_like(p)
    existing = [*method.parameters(), *method.buffers(), *(p.grad for p in trained), items]
    was_training = method.training
    method.train()
    largest = getattr(method, "largest_step", contextlib.nullcontext)
    tracker = PeakTracker(existing)
    try:
        with tracker, largest(), fabric.autocast():
            inputs = views(items.to(fabric.device))
            loss = method([channels_last(v) for v in inputs])
            loss.backward()
            del loss, inputs
    finally:
        torch.set_rng_state(rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)
        method.train(was_training)
        with torch.no_grad():
            for name, b in method.named_buffers():
                b.copy_(buffers[name])
        for p, grad in zip(trained, grads, strict=True):
            p.grad = grad
    weights = sum(p.numel() * p.element_size() for p in method.parameters())
    kept = sum(b.numel() * b.element_size() for b in buffers.values())
    return MemoryPlan(
        fixed=4 * weights + kept,  # weights, gradients, two optimizer moments; buffers
        per_item=tracker.peak // len(items),
        loader_per_item=items[0].numel() * items[0].element_size() * batches_in_flight,
        available=available_memory(fabric.device),
    )


def plan_batch(
    plan: MemoryPlan, batch: int, given: bool, what: str, remedy: str = "a smaller --backbone"
) -> tuple[int, str]:
    """The batch to train with and the line that says so.

    Args:
        plan: the step's measured needs.
        batch: the batch size asked for.
        given: whether the user chose it (then it is never lowered: the run stops instead).
        what: the step, for messages (backbone, side, precision).
        remedy: what else makes the step smaller (the modality's ``memory_remedy``).

    Raises:
        ConfigError: the batch does not fit and was given, or not even the smallest fits.
    """
    if plan.fits(batch):
        return batch, f"memory plan: {what}: {plan.describe(batch)}"
    best = plan.largest_fitting(batch)
    if given or best == 0:
        fixes = [f"--batch-size {best}"] if best else []
        fixes += ["--precision bf16", remedy]
        raise ConfigError(
            f"{what}: a step needs {plan.describe(batch)}, more than the "
            f"{USABLE_SHARE:.0%} it may use; give " + ", or ".join(fixes)
        )
    return best, (
        f"memory plan: {what}: batch lowered from {batch} to {best} to fit: {plan.describe(best)}"
    )
