"""MoCo v3: in-batch contrast between an online query and a momentum key.

Chen, Xie, He. "An Empirical Study of Training Self-Supervised Vision Transformers", ICCV 2021.
https://arxiv.org/abs/2104.02057

Eq. (1), the InfoNCE of a query q against its positive key k+ and the other keys k-:
    L_q = -log( exp(q . k+ / T) / (exp(q . k+ / T) + sum_{k-} exp(q . k- / T)) )
with q and k l2-normalized. MoCo v3 drops MoCo's memory queue: the keys are the momentum
encoder's outputs for the other view of the same batch, so for N items the logits are the
N x N matrix q k^T / T with the positives on its diagonal. Algorithm 1 of the paper scales this
cross-entropy by 2T (``ctr``) and symmetrizes it: ``loss = ctr(q1, k2) + ctr(q2, k1)``. The
momentum encoder (backbone + projector, no predictor) follows the online one by EMA with a
momentum rising from 0.99 to 1 on a cosine schedule.

Under DDP the queries and keys of every process are gathered (the queries with gradients)
before the loss, as the official code gathers the keys: the negatives are the global batch's,
and with ``--sync-batchnorm`` two processes of B items train exactly as one of 2B.

Example:
    >>> import torch
    >>> q = torch.eye(3)
    >>> bool(mocov3_loss(q, q, temperature=0.2) < mocov3_loss(q, q.roll(1, 0), temperature=0.2))
    True
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from selfsup.encoder import Encoder
from selfsup.methods.base import Method
from selfsup.methods.distributed import gather
from selfsup.methods.heads import PredictionHead, ProjectionHead
from selfsup.methods.momentum import cosine_momentum, ema_update, momentum_copy


def mocov3_loss(query: torch.Tensor, key: torch.Tensor, temperature: float = 0.2) -> torch.Tensor:
    """``ctr(q, k)`` of MoCo v3's Algorithm 1: 2T times the cross-entropy of Eq. (1).

    Args:
        query: the online network's predictions, (N, D); row i's positive is ``key``'s row i.
        key: the momentum network's projections of the other view, (N, D), without gradient.
        temperature: the temperature T.
    """
    q = F.normalize(query.float(), dim=1)
    k = F.normalize(key.float(), dim=1)
    logits = q @ k.T / temperature
    positives = torch.arange(q.shape[0], device=q.device)
    return 2 * temperature * F.cross_entropy(logits, positives)


class MoCoV3(Method):
    """MoCo v3: online encoder + projector + predictor, momentum encoder + projector.

    As in the paper, the projector is a three-layer MLP with batch norm after every layer,
    the last one included, and the predictor a two-layer MLP.

    Args:
        encoder: the online network, kept after training.
        projection_dim: output size of projector and predictor (paper: 256).
        hidden_dim: hidden size of projector and predictor (paper: 4096; 1024 as BYOL here).
        temperature: the temperature T of the contrastive loss (paper: 0.2 for ViT).
        base_momentum: EMA momentum of the momentum encoder at the start of training.
    """

    name = "mocov3"
    batch_coupling: ClassVar[str] = "its negatives are the other items' keys in the batch"
    paper = "Chen, Xie, He 2021, https://arxiv.org/abs/2104.02057"
    # The paper follows BYOL's asymmetric augmentations.
    view_recipes: ClassVar[dict[str, str]] = {"image": "byol"}

    def __init__(
        self,
        encoder: Encoder,
        projection_dim: int = 256,
        hidden_dim: int = 1024,
        temperature: float = 0.2,
        base_momentum: float = 0.99,
    ) -> None:
        super().__init__(encoder)
        self.projection = ProjectionHead(
            encoder.feature_dim, hidden_dim, projection_dim, num_layers=3, last_batch_norm=True
        )
        self.prediction = PredictionHead(projection_dim, hidden_dim)
        self.momentum_encoder = nn.Sequential(
            momentum_copy(encoder), momentum_copy(self.projection)
        )
        self.temperature = temperature
        self.base_momentum = base_momentum
        self._options = {
            "projection_dim": projection_dim,
            "hidden_dim": hidden_dim,
            "temperature": temperature,
            "base_momentum": base_momentum,
        }

    def loss(self, views: list[torch.Tensor]) -> torch.Tensor:
        n = views[0].shape[0]
        both = torch.cat(views[:2])
        q = self.prediction(self.projection(self.encoder(both)))
        with torch.no_grad():
            k = self.momentum_encoder(both)
        q1, q2, k1, k2 = gather(q[:n]), gather(q[n:]), gather(k[:n]), gather(k[n:])
        # Symmetrized: each view's query is contrasted with the other view's keys.
        return mocov3_loss(q1, k2, self.temperature) + mocov3_loss(q2, k1, self.temperature)

    def on_step_end(self, progress: float) -> None:
        momentum = cosine_momentum(progress, self.base_momentum)
        ema_update(self.momentum_encoder[0], self.encoder, momentum)
        ema_update(self.momentum_encoder[1], self.projection, momentum)

    def options(self) -> dict[str, Any]:
        return dict(self._options)
