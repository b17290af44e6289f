"""VICReg: variance-invariance-covariance regularization.

Bardes, Ponce, LeCun. "VICReg: Variance-Invariance-Covariance Regularization for
Self-Supervised Learning", ICLR 2022. https://arxiv.org/abs/2105.04906

Eq. (6): l(Z, Z') = lambda * s(Z, Z') + mu * [v(Z) + v(Z')] + nu * [c(Z) + c(Z')], with
  s: mean squared distance between paired embeddings (Eq. 5),
  v(Z) = (1/d) sum_j max(0, gamma - sqrt(Var(z_j) + eps))  (Eq. 1, gamma = 1),
  c(Z) = (1/d) sum_{i != j} C(Z)_{ij}^2 with C the covariance matrix (Eq. 3-4).

Under DDP the expander's outputs of every process are gathered (with gradients) before the
loss, as the official ``FullGatherLayer`` does: variance and covariance are the global batch's;
with ``--sync-batchnorm`` two processes of B items train exactly as one of 2B.

Example:
    >>> import torch
    >>> z = torch.randn(64, 16)
    >>> float(vicreg_loss(z, z)) > 0  # identical views: only variance and covariance terms
    True
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from selfsup.encoder import Encoder
from selfsup.methods.base import Method
from selfsup.methods.distributed import gather
from selfsup.methods.heads import ProjectionHead


def _variance(z: torch.Tensor, eps: float) -> torch.Tensor:
    std = torch.sqrt(z.var(dim=0) + eps)
    return F.relu(1.0 - std).mean()


def _covariance(z: torch.Tensor) -> torch.Tensor:
    n, d = z.shape
    z = z - z.mean(dim=0)
    cov = z.T @ z / (n - 1)
    off_diagonal = cov.pow(2).sum() - cov.diagonal().pow(2).sum()
    return off_diagonal / d


def vicreg_loss(
    z1: torch.Tensor,
    z2: torch.Tensor,
    invariance_weight: float = 25.0,
    variance_weight: float = 25.0,
    covariance_weight: float = 1.0,
    eps: float = 1e-4,
) -> torch.Tensor:
    """VICReg's loss, Eq. (6), with the paper's default weights (lambda=mu=25, nu=1).

    Args:
        z1: embeddings of the first views, (N, D).
        z2: embeddings of the second views, (N, D).
        invariance_weight: lambda.
        variance_weight: mu.
        covariance_weight: nu.
        eps: the epsilon inside the standard deviation.
    """
    z1, z2 = z1.float(), z2.float()
    invariance = F.mse_loss(z1, z2)
    variance = _variance(z1, eps) + _variance(z2, eps)
    covariance = _covariance(z1) + _covariance(z2)
    return (
        invariance_weight * invariance + variance_weight * variance + covariance_weight * covariance
    )


class VICReg(Method):
    """VICReg: backbone, an expander MLP, and the VICReg loss on the expander's output.

    Args:
        encoder: the network to train.
        projection_dim: output size of the expander (8192 in the paper; smaller runs faster).
        hidden_dim: hidden size of the expander.
        num_layers: linear layers in the expander (3 in the paper).
        invariance_weight: lambda of Eq. (6).
        variance_weight: mu; with ``covariance_weight`` 0 too, nothing prevents collapse (the
            paper's Table 4 ablation), which the collapse alarm's tests rely on.
        covariance_weight: nu.
    """

    name = "vicreg"
    batch_coupling: ClassVar[str] = "its variance and covariance are statistics over the batch"
    paper = "Bardes et al. 2022, https://arxiv.org/abs/2105.04906"
    view_recipes: ClassVar[dict[str, str]] = {"image": "byol"}

    def __init__(
        self,
        encoder: Encoder,
        projection_dim: int = 2048,
        hidden_dim: int = 2048,
        num_layers: int = 2,
        invariance_weight: float = 25.0,
        variance_weight: float = 25.0,
        covariance_weight: float = 1.0,
    ) -> None:
        super().__init__(encoder)
        self.projection = ProjectionHead(
            encoder.feature_dim, hidden_dim, projection_dim, num_layers=num_layers
        )
        self._options = {
            "projection_dim": projection_dim,
            "hidden_dim": hidden_dim,
            "num_layers": num_layers,
            "invariance_weight": invariance_weight,
            "variance_weight": variance_weight,
            "covariance_weight": covariance_weight,
        }

    def loss(self, views: list[torch.Tensor]) -> torch.Tensor:
        n = views[0].shape[0]
        z = self.projection(self.encoder(torch.cat(views[:2])))
        weights = {k: v for k, v in self._options.items() if k.endswith("_weight")}
        # Under DDP the statistics are the global batch's (gathered with gradients).
        return vicreg_loss(gather(z[:n]), gather(z[n:]), **weights)

    def options(self) -> dict[str, Any]:
        return dict(self._options)
