"""Barlow Twins: make the cross-correlation matrix of two views' embeddings the identity.

Zbontar, Jing, Misra, LeCun, Deny. "Barlow Twins: Self-Supervised Learning via Redundancy
Reduction", ICML 2021. https://arxiv.org/abs/2103.03230

Eq. (1): L = sum_i (1 - C_ii)^2 + lambda * sum_i sum_{j != i} C_ij^2, where
Eq. (2): C_ij = sum_b z1_bi z2_bj / (sqrt(sum_b z1_bi^2) sqrt(sum_b z2_bj^2)), on embeddings
standardized along the batch; lambda = 5.1e-3 in the paper.

Under DDP the projector's outputs of every process are gathered (with gradients) before the
loss: the cross-correlation is the global batch's (the official code all-reduces it); with
``--sync-batchnorm`` two processes of B items train exactly as one of 2B.

Example:
    >>> import torch
    >>> z = torch.randn(256, 4)
    >>> float(barlow_twins_loss(z, z)) < 0.1  # identical views: C is nearly the identity
    True
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from selfsup.encoder import Encoder
from selfsup.methods.base import Method
from selfsup.methods.distributed import gather
from selfsup.methods.heads import ProjectionHead


def cross_correlation(z1: torch.Tensor, z2: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """The (D, D) cross-correlation matrix of Eq. (2), dimensions standardized over the batch."""
    n = z1.shape[0]
    z1 = (z1 - z1.mean(0)) / (z1.std(0, unbiased=False) + eps)
    z2 = (z2 - z2.mean(0)) / (z2.std(0, unbiased=False) + eps)
    return z1.T @ z2 / n


def barlow_twins_loss(
    z1: torch.Tensor, z2: torch.Tensor, lambda_offdiag: float = 5.1e-3
) -> torch.Tensor:
    """Barlow Twins' loss, Eq. (1).

    Args:
        z1: embeddings of the first views, (N, D).
        z2: embeddings of the second views, (N, D).
        lambda_offdiag: the weight lambda of the redundancy-reduction term.
    """
    c = cross_correlation(z1.float(), z2.float())
    on_diagonal = (1 - c.diagonal()).pow(2).sum()
    off_diagonal = c.pow(2).sum() - c.diagonal().pow(2).sum()
    return on_diagonal + lambda_offdiag * off_diagonal


class BarlowTwins(Method):
    """Barlow Twins: backbone, a projector MLP, and the loss on the projector's output.

    Args:
        encoder: the network to train.
        projection_dim: output size of the projector (8192 in the paper).
        hidden_dim: hidden size of the projector.
        num_layers: linear layers in the projector (3 in the paper).
        lambda_offdiag: weight of the off-diagonal term.
    """

    name = "barlowtwins"
    batch_coupling: ClassVar[str] = "its cross-correlation matrix is a statistic over the batch"
    paper = "Zbontar et al. 2021, https://arxiv.org/abs/2103.03230"
    view_recipes: ClassVar[dict[str, str]] = {"image": "byol"}

    def __init__(
        self,
        encoder: Encoder,
        projection_dim: int = 2048,
        hidden_dim: int = 2048,
        num_layers: int = 2,
        lambda_offdiag: float = 5.1e-3,
    ) -> None:
        super().__init__(encoder)
        self.projection = ProjectionHead(
            encoder.feature_dim, hidden_dim, projection_dim, num_layers=num_layers
        )
        self.lambda_offdiag = lambda_offdiag
        self._options = {
            "projection_dim": projection_dim,
            "hidden_dim": hidden_dim,
            "num_layers": num_layers,
            "lambda_offdiag": lambda_offdiag,
        }

    def loss(self, views: list[torch.Tensor]) -> torch.Tensor:
        n = views[0].shape[0]
        z = self.projection(self.encoder(torch.cat(views[:2])))
        # Under DDP the cross-correlation is the global batch's (gathered with gradients).
        return barlow_twins_loss(gather(z[:n]), gather(z[n:]), self.lambda_offdiag)

    def options(self) -> dict[str, Any]:
        return dict(self._options)
