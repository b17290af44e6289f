"""SCARF: contrasting each row with a randomly corrupted copy of itself.

Bahri, Jiang, Tay and Metzler, "SCARF: Self-Supervised Contrastive Learning using Random
Feature Corruption", ICLR 2022.

A corrupted copy replaces a random 60% of a row's features with values of the same features
in other rows (the empirical marginals, see :mod:`selfsup.views.tabular`). Row and copy go
through the encoder and a pretraining head; InfoNCE pulls each row towards its own copy and
away from the other rows' copies in the batch:

    loss = mean_i -log( exp(cos(z_i, c_i) / tau) / sum_k exp(cos(z_i, c_k) / tau) )

Under DDP the projections of every process are gathered (with gradients) before the loss, so
the other rows are the global batch's: two processes of B rows train as one of 2B.

Example:
    >>> import torch
    >>> from selfsup.encoder import Encoder
    >>> from selfsup.modalities.tabular import build_tabular_encoder
    >>> encoder = build_tabular_encoder(numeric=4, hidden=16, depth=2)
    >>> method = SCARF(encoder, head_dim=8)
    >>> x = torch.randn(6, 4)
    >>> loss = method([x, x.flip(0)])
    >>> loss.ndim
    0
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from selfsup.encoder import Encoder
from selfsup.methods.base import Method
from selfsup.methods.distributed import gather
from selfsup.methods.heads import ProjectionHead


def scarf_loss(
    anchors: torch.Tensor, positives: torch.Tensor, temperature: float = 1.0
) -> torch.Tensor:
    """SCARF's InfoNCE: row i of ``anchors`` against every row of ``positives`` (N, D), its
    own (row i) being the match; cosine similarities divided by ``temperature``.

    Example:
        >>> a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
        >>> round(scarf_loss(a, a).item(), 4)  # -log(e / (e + 1))
        0.3133
    """
    a = F.normalize(anchors.float(), dim=1)
    p = F.normalize(positives.float(), dim=1)
    logits = a @ p.T / temperature
    return F.cross_entropy(logits, torch.arange(len(a), device=a.device))


class SCARF(Method):
    """SCARF: a tabular encoder, a two-layer pretraining head and InfoNCE.

    Args:
        encoder: the network to train (the ``mlp`` backbone on encoded rows).
        head_dim: width of the pretraining head (SCARF: 256, two layers).
        temperature: InfoNCE temperature (SCARF: 1.0).
    """

    name: ClassVar[str] = "scarf"
    batch_coupling: ClassVar[str] = "its negatives are the other rows of the batch"
    paper: ClassVar[str] = "Bahri et al. 2022, https://arxiv.org/abs/2106.15147"
    modalities: ClassVar[tuple[str, ...]] = ("tabular",)
    view_recipes: ClassVar[dict[str, str]] = {"tabular": "scarf"}

    def __init__(self, encoder: Encoder, head_dim: int = 256, temperature: float = 1.0) -> None:
        super().__init__(encoder)
        self.projection = ProjectionHead(encoder.feature_dim, head_dim, head_dim, num_layers=2)
        self.temperature = temperature
        self.head_dim = head_dim

    def loss(self, views: list[torch.Tensor]) -> torch.Tensor:
        """InfoNCE between the rows (first view) and their corrupted copies (second view)."""
        n = views[0].shape[0]
        z = self.projection(self.encoder(torch.cat(views[:2])))
        # Under DDP the negatives are the global batch's (gathered with gradients).
        return scarf_loss(gather(z[:n]), gather(z[n:]), self.temperature)

    def options(self) -> dict[str, Any]:
        return {"head_dim": self.head_dim, "temperature": self.temperature}
