"""What keeps an objective the same when it runs on several processes (DDP).

Under DDP each process sees its own batch. A loss that couples the items of a batch
(contrastive negatives, statistics over the batch) would then be computed on a smaller batch,
and two processes of B items would not train as one process of 2B. Two pieces restore it:

- :func:`gather` concatenates a tensor of every process, in rank order, with gradients flowing
  back to each process's own part (the backward sums the gradients of every process's copy of
  the loss, as VICReg's ``FullGatherLayer`` does): a loss computed on the gathered projections
  is the loss of the global batch, and DDP's averaging of the gradients over processes then
  gives exactly its gradient.
- :class:`SyncBatchNorm` normalizes with the mean and variance of the global batch (the
  statistics summed over processes by an all-reduce with gradients), on CPU (gloo) as on GPU;
  PyTorch's own ``nn.SyncBatchNorm`` runs on GPUs only. :func:`sync_batch_norm` puts it in
  place of every batch norm of a model (``--sync-batchnorm``).

On one process both are the identity: nothing changes.

Example:
    >>> import torch
    >>> gather(torch.ones(2, 3)).shape  # one process: the tensor itself
    torch.Size([2, 3])
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn


def world_size() -> int:
    """The processes of the run (1 without DDP)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


class _Gather(torch.autograd.Function):
    """All-gather whose backward sums each part's gradient over processes (every process
    computed the loss on the gathered tensor) and returns this process's part."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad)
        return grad.chunk(dist.get_world_size())[dist.get_rank()]


class _Sum(torch.autograd.Function):
    """All-reduce (sum) whose backward is the all-reduce of the gradient."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        total = x.clone()
        dist.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


def gather(x: torch.Tensor) -> torch.Tensor:
    """``x`` of every process concatenated along the first axis, in rank order, differentiable
    with respect to this process's ``x`` (every process must pass the same shape); ``x``
    itself on one process."""
    return x if world_size() == 1 else _Gather.apply(x)


class SyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch norm over the batch of every process together (any dimensionality, CPU or GPU).

    In training, each process sums its items, their squares and their count; one all-reduce
    (differentiable) gives the global mean and (biased) variance that normalize, and the
    unbiased variance that updates the running statistics, as one process holding every item
    would. In evaluation, or on one process, it is ``nn.BatchNorm``.

    Example:
        >>> layer = SyncBatchNorm(4)
        >>> layer(torch.randn(8, 4)).shape
        torch.Size([8, 4])
    """

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected at least 2-D input, got {x.dim()}-D")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(x)
        if not self.training or world_size() == 1:
            return super().forward(x)
        dims = [0, *range(2, x.dim())]
        count = torch.tensor([x.numel() / x.shape[1]], dtype=torch.float32, device=x.device)
        xf = x.float()
        local = torch.cat([xf.sum(dims), (xf * xf).sum(dims), count])
        total = _Sum.apply(local)
        channels = x.shape[1]
        n = total[-1]
        mean = total[:channels] / n
        var = (total[channels : 2 * channels] / n - mean * mean).clamp_min(0.0)
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                momentum = self.momentum if self.momentum is not None else 0.1
                unbiased = var * n / (n - 1).clamp_min(1.0)
                self.running_mean.mul_(1 - momentum).add_(momentum * mean.to(self.running_mean))
                self.running_var.mul_(1 - momentum).add_(momentum * unbiased.to(self.running_var))
                self.num_batches_tracked.add_(1)
        shape = [1, channels] + [1] * (x.dim() - 2)
        out = (xf - mean.view(shape)) / torch.sqrt(var.view(shape) + self.eps)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out.to(x.dtype)


def sync_batch_norm(module: nn.Module) -> nn.Module:
    """``module`` with every batch norm replaced by a :class:`SyncBatchNorm` holding the same
    weights and running statistics (in place where the module is a container).

    Example:
        >>> net = sync_batch_norm(nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)))
        >>> type(net[1]).__name__
        'SyncBatchNorm'
    """
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(
        module, SyncBatchNorm
    ):
        synced = SyncBatchNorm(
            module.num_features, module.eps, module.momentum, module.affine,
            module.track_running_stats,
        )  # fmt: skip
        synced.load_state_dict(module.state_dict())
        for name, parameter in module.named_parameters(recurse=False):
            getattr(synced, name).requires_grad_(parameter.requires_grad)  # frozen stay frozen
        synced.train(module.training)  # a frozen teacher's layers stay in evaluation mode
        return synced.to(next(iter(module.state_dict().values()), torch.empty(0)).device)
    for name, child in module.named_children():
        setattr(module, name, sync_batch_norm(child))
    return module
