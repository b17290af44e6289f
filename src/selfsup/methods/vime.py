"""VIME's self-supervised objective: recover the corruption mask and the original features.

Yoon, Zhang, Jordon and van der Schaar, "VIME: Extending the Success of Self- and
Semi-supervised Learning to Tabular Domain", NeurIPS 2020.

Each entry of a row is corrupted with probability ``mask_p`` by the value of the same column in
another random row (so corrupted values look plausible). From the encoder's features of the
corrupted row, a mask estimator predicts which entries were replaced (binary cross-entropy)
and a feature estimator reconstructs the original row: squared error on the numeric columns,
cross-entropy on each categorical column's code. The loss is
``mask loss + alpha * reconstruction loss``.

Under DDP each process corrupts its rows with donors from its own batch; the loss is a mean of
per-entry terms, so processes average the same objective (not bit for bit: the donors and masks
are drawn per process).

Example:
    >>> import torch
    >>> from selfsup.encoder import Encoder
    >>> from selfsup.modalities.tabular import build_tabular_encoder
    >>> encoder = build_tabular_encoder(numeric=3, cardinalities=[4], hidden=16, depth=2)
    >>> x = torch.cat([torch.randn(8, 3), torch.randint(0, 4, (8, 1)).float()], dim=1)
    >>> VIME(encoder)([x]).ndim
    0
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from selfsup.encoder import Encoder
from selfsup.methods.base import Method


def vime_loss(
    mask_logits: torch.Tensor,
    mask: torch.Tensor,
    numeric_pred: torch.Tensor,
    numeric_true: torch.Tensor,
    category_logits: list[torch.Tensor],
    category_true: torch.Tensor,
    alpha: float = 2.0,
) -> torch.Tensor:
    """Mask estimation (BCE) plus ``alpha`` times feature reconstruction.

    The reconstruction term is the mean over columns of the per-column losses: squared error
    for each numeric column, cross-entropy for each categorical one.

    Example:
        >>> logits, mask = torch.zeros(2, 2), torch.tensor([[1.0, 0.0], [0.0, 0.0]])
        >>> zeros, ones = torch.zeros(2, 2), torch.ones(2, 2)
        >>> loss = vime_loss(logits, mask, zeros, ones, [], torch.zeros(2, 0))
        >>> round(loss.item(), 4)  # log 2 + 2 * 1
        2.6931
    """
    mask_term = F.binary_cross_entropy_with_logits(mask_logits.float(), mask.float())
    per_column = []
    if numeric_true.shape[1]:
        per_column.append(((numeric_pred.float() - numeric_true.float()) ** 2).mean(dim=0))
    for j, logits in enumerate(category_logits):
        per_column.append(F.cross_entropy(logits.float(), category_true[:, j].long())[None])
    reconstruction = torch.cat(per_column).mean() if per_column else mask_term * 0
    return mask_term + alpha * reconstruction


class VIME(Method):
    """VIME's pretext task on a tabular encoder.

    Args:
        encoder: the network to train; its backbone's ``numeric`` and ``cardinalities``
            attributes say how rows are laid out (all columns numeric when absent).
        mask_p: probability that an entry is corrupted (VIME: 0.3).
        alpha: weight of the reconstruction term (VIME: 2.0).
    """

    name: ClassVar[str] = "vime"
    paper: ClassVar[str] = (
        "Yoon et al. 2020, NeurIPS, https://proceedings.neurips.cc/paper/2020/hash/7d97667a3e056acab9aaf653807b4a03-Abstract.html"
    )
    num_views: ClassVar[int] = 1
    modalities: ClassVar[tuple[str, ...]] = ("tabular",)
    view_recipes: ClassVar[dict[str, str]] = {"tabular": "none"}

    def __init__(self, encoder: Encoder, mask_p: float = 0.3, alpha: float = 2.0) -> None:
        super().__init__(encoder)
        backbone = encoder.backbone
        self.cardinalities = list(getattr(backbone, "cardinalities", []))
        columns = int(getattr(backbone, "in_features", encoder.mean.numel()))
        self.numeric = int(getattr(backbone, "numeric", columns - len(self.cardinalities)))
        self.mask_head = nn.Linear(encoder.feature_dim, columns)
        self.numeric_head = nn.Linear(encoder.feature_dim, self.numeric)
        self.category_heads = nn.ModuleList(
            nn.Linear(encoder.feature_dim, k) for k in self.cardinalities
        )
        self.mask_p = mask_p
        self.alpha = alpha

    def loss(self, views: list[torch.Tensor]) -> torch.Tensor:
        """Corrupt the batch, then predict the mask and reconstruct the rows."""
        x = views[0]
        mask = torch.rand_like(x) < self.mask_p
        donors = torch.randint(0, x.shape[0], x.shape, device=x.device)
        corrupted = torch.where(mask, x.gather(0, donors), x)
        h = self.encoder(corrupted)
        return vime_loss(
            self.mask_head(h),
            mask,
            self.numeric_head(h),
            x[:, : self.numeric],
            [head(h) for head in self.category_heads],
            x[:, self.numeric :],
            self.alpha,
        )

    def options(self) -> dict[str, Any]:
        return {"mask_p": self.mask_p, "alpha": self.alpha}
