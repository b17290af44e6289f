"""SimCLR: contrastive learning with the NT-Xent loss.

Chen, Kornblith, Norouzi, Hinton. "A Simple Framework for Contrastive Learning of Visual
Representations", ICML 2020. https://arxiv.org/abs/2002.05709

For a positive pair (i, j) among the 2N views of a batch, Eq. (1):
    l(i, j) = -log( exp(sim(z_i, z_j) / T) / sum_{k != i} exp(sim(z_i, z_k) / T) )
and the loss is the mean of l over all 2N ordered positive pairs.

Under DDP the projections of every process are gathered (with gradients) before the loss,
so the negatives are those of the global batch, as in the paper's TPU implementation; with
``--sync-batchnorm`` two processes of B items train exactly as one of 2B.

Example:
    >>> import torch
    >>> z = torch.randn(4, 8)
    >>> nt_xent_loss(z, z, temperature=0.5) < nt_xent_loss(z, torch.randn(4, 8), temperature=0.5)
    tensor(True)
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from selfsup.encoder import Encoder
from selfsup.methods.base import Method
from selfsup.methods.distributed import gather
from selfsup.methods.heads import ProjectionHead


def nt_xent_loss(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.2) -> torch.Tensor:
    """The normalized temperature-scaled cross-entropy of SimCLR, Eq. (1).

    Args:
        z1: projections of the first views, (N, D); row i is the positive of ``z2``'s row i.
        z2: projections of the second views, (N, D).
        temperature: the temperature T.
    """
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    logits = z @ z.T / temperature
    # A view is not its own negative: drop the diagonal from the denominator.
    logits.fill_diagonal_(float("-inf"))
    positives = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(logits, positives)


class SimCLR(Method):
    """SimCLR: backbone, a two-layer projection head, and NT-Xent on the projections.

    Args:
        encoder: the network to train.
        projection_dim: output size of the projection head.
        hidden_dim: hidden size of the projection head.
        temperature: NT-Xent temperature.
    """

    name = "simclr"
    batch_coupling: ClassVar[str] = "its negatives are the other items of the batch"
    paper = "Chen et al. 2020, https://arxiv.org/abs/2002.05709"
    view_recipes: ClassVar[dict[str, str]] = {"image": "simclr"}

    def __init__(
        self,
        encoder: Encoder,
        projection_dim: int = 128,
        hidden_dim: int = 1024,
        temperature: float = 0.2,
    ) -> None:
        super().__init__(encoder)
        self.projection = ProjectionHead(encoder.feature_dim, hidden_dim, projection_dim)
        self.temperature = temperature
        self._options = {
            "projection_dim": projection_dim,
            "hidden_dim": hidden_dim,
            "temperature": temperature,
        }

    def loss(self, views: list[torch.Tensor]) -> torch.Tensor:
        n = views[0].shape[0]
        z = self.projection(self.encoder(torch.cat(views[:2])))
        # Under DDP the negatives are the global batch's (gathered with gradients).
        return nt_xent_loss(gather(z[:n]), gather(z[n:]), self.temperature)

    def options(self) -> dict[str, Any]:
        return dict(self._options)
