"""SimSiam: a Siamese network with a predictor and a stop-gradient, and no negatives.

Chen, He. "Exploring Simple Siamese Representation Learning", CVPR 2021.
https://arxiv.org/abs/2011.10566

Eq. (1): D(p, z) = - p / ||p|| . z / ||z||, the negative cosine similarity of the predictor's
output p for one view and the projection z of the other. Eq. (3), the loss, is symmetrized with
the stop-gradient on the projections:
    L = D(p1, stopgrad(z2)) / 2 + D(p2, stopgrad(z1)) / 2
The stop-gradient is what keeps SimSiam from collapsing (Sec. 4.1); there is no momentum
encoder, so both branches share all weights.

Example:
    >>> import torch
    >>> z = torch.tensor([[0.0, 3.0]])
    >>> float(simsiam_loss(torch.tensor([[0.0, 1.0]]), z))
    -1.0
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from selfsup.encoder import Encoder
from selfsup.methods.base import Method
from selfsup.methods.heads import PredictionHead, ProjectionHead


def simsiam_loss(prediction: torch.Tensor, projection: torch.Tensor) -> torch.Tensor:
    """``D(p, stopgrad(z))`` of Eq. (1), averaged over the batch; the gradient stops at ``z``.

    Args:
        prediction: the predictor's outputs p for one view, (N, D).
        projection: the projections z of the other view, (N, D); detached here.
    """
    p = F.normalize(prediction.float(), dim=1)
    z = F.normalize(projection.detach().float(), dim=1)
    return -(p * z).sum(dim=1).mean()


class SimSiam(Method):
    """SimSiam: backbone + three-layer projector (batch norm on its output) + bottleneck predictor.

    Args:
        encoder: the network to train.
        projection_dim: output size of the projector and the predictor (paper: 2048).
        hidden_dim: hidden size of the projector (paper: 2048).
        predictor_hidden_dim: the predictor's bottleneck; by default ``projection_dim // 4``
            (paper: 512 for 2048).
    """

    name = "simsiam"
    paper = "Chen & He 2021, https://arxiv.org/abs/2011.10566"
    # The paper uses MoCo v2's symmetric augmentations, i.e. SimCLR's (with weaker jitter).
    view_recipes: ClassVar[dict[str, str]] = {"image": "simclr"}

    def __init__(
        self,
        encoder: Encoder,
        projection_dim: int = 2048,
        hidden_dim: int = 2048,
        predictor_hidden_dim: int | None = None,
    ) -> None:
        super().__init__(encoder)
        predictor_hidden_dim = predictor_hidden_dim or max(1, projection_dim // 4)
        self.projection = ProjectionHead(
            encoder.feature_dim, hidden_dim, projection_dim, num_layers=3, last_batch_norm=True
        )
        self.prediction = PredictionHead(projection_dim, predictor_hidden_dim)
        self._options = {
            "projection_dim": projection_dim,
            "hidden_dim": hidden_dim,
            "predictor_hidden_dim": predictor_hidden_dim,
        }

    def loss(self, views: list[torch.Tensor]) -> torch.Tensor:
        n = views[0].shape[0]
        z = self.projection(self.encoder(torch.cat(views[:2])))
        p = self.prediction(z)
        return simsiam_loss(p[:n], z[n:]) / 2 + simsiam_loss(p[n:], z[:n]) / 2

    def options(self) -> dict[str, Any]:
        return dict(self._options)
