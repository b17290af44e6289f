"""Projection and prediction heads: small MLPs on top of the backbone's features.

Example:
    >>> import torch
    >>> head = ProjectionHead(512, 1024, 128)
    >>> head(torch.randn(4, 512)).shape
    torch.Size([4, 128])
"""

from __future__ import annotations

import itertools

from torch import nn


class ProjectionHead(nn.Sequential):
    """An MLP of ``num_layers`` linear layers with batch norm and ReLU between them.

    As in SimCLR (Chen et al. 2020) the loss is computed on the head's output while the
    representation kept for downstream use is the backbone's output before the head.

    Args:
        in_dim: size of the input features.
        hidden_dim: size of the hidden layers.
        out_dim: size of the output.
        num_layers: number of linear layers (at least 1).
        last_batch_norm: add an affine-free batch norm after the last layer (SimSiam, DINO-style).
    """

    def __init__(
        self,
        in_dim: int,
        hidden_dim: int,
        out_dim: int,
        num_layers: int = 2,
        last_batch_norm: bool = False,
    ) -> None:
        if num_layers < 1:
            raise ValueError("a head needs at least one layer")
        dims = [in_dim] + [hidden_dim] * (num_layers - 1) + [out_dim]
        layers: list[nn.Module] = []
        for i, (d_in, d_out) in enumerate(itertools.pairwise(dims)):
            last = i == num_layers - 1
            layers.append(nn.Linear(d_in, d_out, bias=last and not last_batch_norm))
            if not last:
                layers += [nn.BatchNorm1d(d_out), nn.ReLU(inplace=True)]
            elif last_batch_norm:
                layers.append(nn.BatchNorm1d(d_out, affine=False))
        super().__init__(*layers)


class PredictionHead(ProjectionHead):
    """The predictor of BYOL/SimSiam: a two-layer MLP mapping a projection to a projection.

    Args:
        dim: size of the projection (input and output).
        hidden_dim: size of the hidden layer.
    """

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__(dim, hidden_dim, dim, num_layers=2)
