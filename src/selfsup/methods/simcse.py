"""SimCSE (unsupervised): a sentence and itself under two dropout masks are a positive pair.

Gao, Yao and Chen, "SimCSE: Simple Contrastive Learning of Sentence Embeddings", EMNLP 2021.
https://arxiv.org/abs/2104.08821

The batch goes through the encoder twice with dropout on, so each sentence gets two slightly
different embeddings h_i and h_i^+; the only augmentation is dropout's noise. With the other
sentences of the batch as negatives, Eq. (4):

    l_i = -log( exp(sim(h_i, h_i^+) / tau) / sum_{j=1}^{N} exp(sim(h_i, h_j^+) / tau) )

with cosine similarity ``sim`` and tau = 0.05; the loss is the mean of l_i. As in the paper's
unsupervised setting, the loss acts on an MLP layer (dense + tanh) over the pooled embedding
that is used in training only. ``mlm_weight`` adds masked language modelling as an auxiliary
loss, ``loss + mlm_weight * mlm`` (the paper's Appendix, lambda = 0.1; see
:mod:`selfsup.methods.mlm`).

Under DDP the embeddings of every process are gathered (with gradients) before the loss, so
the negatives are the global batch's: two processes of B texts train as one of 2B (each
process draws its own dropout masks, as one process draws one per row).

Example:
    >>> import torch
    >>> h = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    >>> round(simcse_loss(h, h, temperature=1.0).item(), 4)  # -log(e / (e + 1))
    0.3133
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from selfsup.encoder import Encoder
from selfsup.methods.base import Method
from selfsup.methods.distributed import gather
from selfsup.methods.mlm import MaskedTokenHead, masked_lm_loss, text_backbone


def simcse_loss(
    anchors: torch.Tensor, positives: torch.Tensor, temperature: float = 0.05
) -> torch.Tensor:
    """SimCSE's Eq. (4): row i of ``anchors`` (N, D) against every row of ``positives``,
    its own (row i) being the match; cosine similarities divided by ``temperature``."""
    a = F.normalize(anchors.float(), dim=1)
    p = F.normalize(positives.float(), dim=1)
    logits = a @ p.T / temperature
    return F.cross_entropy(logits, torch.arange(len(a), device=a.device))


class SimCSE(Method):
    """Unsupervised SimCSE, optionally with the auxiliary MLM loss.

    Args:
        encoder: a text encoder; its dropout must be positive (it is the augmentation).
        temperature: tau (SimCSE: 0.05).
        mlp_head: put the training-only dense + tanh layer under the loss (SimCSE's
            unsupervised recipe).
        mlm_weight: weight lambda of the auxiliary masked language modelling loss; 0 turns
            it off.
        mask_rate: fraction of tokens masked for that loss (BERT: 0.15).
    """

    name: ClassVar[str] = "simcse"
    batch_coupling: ClassVar[str] = "its negatives are the other texts of the batch"
    paper: ClassVar[str] = "Gao et al. 2021, https://arxiv.org/abs/2104.08821"
    num_views: ClassVar[int] = 1
    modalities: ClassVar[tuple[str, ...]] = ("text",)
    view_recipes: ClassVar[dict[str, str]] = {"text": "none"}

    def __init__(
        self,
        encoder: Encoder,
        temperature: float = 0.05,
        mlp_head: bool = True,
        mlm_weight: float = 0.0,
        mask_rate: float = 0.15,
    ) -> None:
        super().__init__(encoder)
        dim = encoder.feature_dim
        self.projection = nn.Sequential(nn.Linear(dim, dim), nn.Tanh()) if mlp_head else None
        self.mlm_head = None
        if mlm_weight > 0:
            backbone = text_backbone(encoder, "SimCSE with mlm_weight")
            vocab_size, width = backbone.token_embedding.weight.shape
            self.mlm_head = MaskedTokenHead(width, vocab_size)
        self.temperature = temperature
        self.mlm_weight = mlm_weight
        self.mask_rate = mask_rate

    def loss(self, views: list[torch.Tensor]) -> torch.Tensor:
        """InfoNCE between two dropout-noised encodings of the batch (+ the MLM term)."""
        ids = views[0]
        n = ids.shape[0]
        # One pass over the doubled batch: every row draws its own dropout masks.
        h = self.encoder(torch.cat([ids, ids]))
        if self.projection is not None:
            h = self.projection(h)
        # Under DDP the negatives are the global batch's (gathered with gradients).
        loss = simcse_loss(gather(h[:n]), gather(h[n:]), self.temperature)
        if self.mlm_head is not None:
            mlm = masked_lm_loss(self.encoder.backbone, self.mlm_head, ids, self.mask_rate)
            loss = loss + self.mlm_weight * mlm
        return loss

    def options(self) -> dict[str, Any]:
        return {
            "temperature": self.temperature,
            "mlp_head": self.projection is not None,
            "mlm_weight": self.mlm_weight,
            "mask_rate": self.mask_rate,
        }
