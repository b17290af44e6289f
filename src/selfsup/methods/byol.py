"""BYOL: bootstrap your own latent, with an online predictor and a momentum target.

Grill et al. "Bootstrap Your Own Latent: A New Approach to Self-Supervised Learning",
NeurIPS 2020. https://arxiv.org/abs/2006.07733

Eq. (2): L = || q(z) / ||q(z)|| - z' / ||z'|| ||^2 = 2 - 2 cos(q(z), z'), where q is the online
predictor and z' the target network's projection of the other view; the loss is symmetrized
(Eq. 3, both views through both networks) and the target follows the online network by EMA
with momentum rising from ``base_momentum`` to 1 on a cosine schedule.

Example:
    >>> import torch
    >>> p = torch.tensor([[1.0, 0.0]])
    >>> float(byol_loss(p, torch.tensor([[0.0, 2.0]])))
    2.0
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from selfsup.encoder import Encoder
from selfsup.methods.base import Method
from selfsup.methods.heads import PredictionHead, ProjectionHead
from selfsup.methods.momentum import cosine_momentum, ema_update, momentum_copy


def byol_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``2 - 2 cos(prediction, target)``, averaged over the batch (BYOL Eq. 2)."""
    p = F.normalize(prediction.float(), dim=1)
    z = F.normalize(target.float(), dim=1)
    return (2 - 2 * (p * z).sum(dim=1)).mean()


class BYOL(Method):
    """BYOL: online encoder + projector + predictor, momentum target encoder + projector.

    Args:
        encoder: the online network, kept after training.
        projection_dim: output size of projector and predictor.
        hidden_dim: hidden size of projector and predictor.
        base_momentum: EMA momentum of the target at the start of training.
    """

    name = "byol"
    paper = "Grill et al. 2020, https://arxiv.org/abs/2006.07733"
    view_recipes: ClassVar[dict[str, str]] = {"image": "byol"}

    def __init__(
        self,
        encoder: Encoder,
        projection_dim: int = 256,
        hidden_dim: int = 1024,
        base_momentum: float = 0.99,
    ) -> None:
        super().__init__(encoder)
        self.projection = ProjectionHead(encoder.feature_dim, hidden_dim, projection_dim)
        self.prediction = PredictionHead(projection_dim, hidden_dim)
        self.target = nn.Sequential(momentum_copy(encoder), momentum_copy(self.projection))
        self.base_momentum = base_momentum
        self._options = {
            "projection_dim": projection_dim,
            "hidden_dim": hidden_dim,
            "base_momentum": base_momentum,
        }

    def loss(self, views: list[torch.Tensor]) -> torch.Tensor:
        n = views[0].shape[0]
        both = torch.cat(views[:2])
        online = self.prediction(self.projection(self.encoder(both)))
        with torch.no_grad():
            target = self.target(both)
        # Symmetrized: view 1 predicts view 2's target and the other way round.
        return byol_loss(online[:n], target[n:]) + byol_loss(online[n:], target[:n])

    def on_step_end(self, progress: float) -> None:
        momentum = cosine_momentum(progress, self.base_momentum)
        ema_update(self.target[0], self.encoder, momentum)
        ema_update(self.target[1], self.projection, momentum)

    def options(self) -> dict[str, Any]:
        return dict(self._options)
