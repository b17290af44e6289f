"""Momentum (EMA) copies of networks and the cosine schedule of their momentum.

Used by BYOL's target network and, later, by MoCo v3 and DINO's teacher.

Example:
    >>> from torch import nn
    >>> online = nn.Linear(2, 2)
    >>> target = momentum_copy(online)
    >>> ema_update(target, online, momentum=0.99)
    >>> cosine_momentum(progress=1.0, base=0.99)
    1.0
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn


def momentum_copy(module: nn.Module) -> nn.Module:
    """A frozen deep copy of ``module`` to be updated by ``ema_update`` only."""
    target = copy.deepcopy(module)
    for p in target.parameters():
        p.requires_grad_(False)
    return target


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, momentum: float) -> None:
    """target <- momentum * target + (1 - momentum) * online, parameter by parameter."""
    for t, o in zip(target.parameters(), online.parameters(), strict=True):
        t.lerp_(o.detach(), 1.0 - momentum)
    # Buffers (batch-norm statistics) follow the online network directly.
    for t, o in zip(target.buffers(), online.buffers(), strict=True):
        t.copy_(o)


def cosine_momentum(progress: float, base: float, final: float = 1.0) -> float:
    """BYOL's schedule: ``final - (final - base) * (cos(pi * progress) + 1) / 2``.

    Args:
        progress: fraction of training done, in [0, 1].
        base: momentum at the start.
        final: momentum at the end.
    """
    progress = min(max(progress, 0.0), 1.0)
    return final - (final - base) * (math.cos(math.pi * progress) + 1) / 2
