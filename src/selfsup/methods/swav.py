"""SwAV: swapped prediction of online cluster assignments, with multi-crop.

Caron, Misra, Mairal, Goyal, Bojanowski, Joulin. "Unsupervised Learning of Visual Features by
Contrasting Cluster Assignments", NeurIPS 2020. https://arxiv.org/abs/2006.09882

Each view's projection z (l2-normalized) is compared with K prototypes c_k (l2-normalized
rows of a bias-free linear layer): scores z . c_k. The codes Q of the global views are the
equipartitioned soft assignments of the batch to the prototypes found by a few Sinkhorn-Knopp
iterations on exp(scores / epsilon) (Section 3.1, "Computing codes online"). The swapped
prediction loss (Eqs. 1-2) predicts the code q_s of a global view s from every other view t,
local ones included:
    l(z_t, q_s) = - sum_k q_s^(k) log p_t^(k),   p_t^(k) = softmax_k(z_t . c_k / tau)
averaged over the batch and over the (s, t) pairs, with tau = 0.1. The prototypes are
re-normalized after every optimizer step (``on_step_end``) and get no gradient during the
first part of training.

Not implemented: the queue of past projections that the paper adds to the Sinkhorn input for
small batches (256 items against 3000 prototypes), left out for simplicity; the default of 512
prototypes is meant for batches of a few hundred items.

Under DDP the Sinkhorn normalizations are all-reduced over the processes, as in the official
code, so the codes are those of the whole global batch.

Example:
    >>> import torch
    >>> q = sinkhorn_knopp(torch.randn(8, 4), epsilon=0.05, iterations=3)
    >>> torch.allclose(q.sum(dim=1), torch.ones(8))
    True
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from selfsup.encoder import Encoder
from selfsup.methods.base import Method
from selfsup.methods.heads import ProjectionHead


def _all_reduce(x: torch.Tensor, op: str = "sum") -> torch.Tensor:
    """``x`` summed (or its maximum taken) over the processes in place; itself outside DDP."""
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(x, op=dist.ReduceOp.SUM if op == "sum" else dist.ReduceOp.MAX)
    return x


@torch.no_grad()
def sinkhorn_knopp(
    scores: torch.Tensor, epsilon: float = 0.05, iterations: int = 3
) -> torch.Tensor:
    """Codes: the soft assignment of a batch to prototypes with equal shares (SwAV Section 3.1).

    Alternately rescales the rows and columns of ``exp(scores / epsilon)`` so that each
    prototype receives an equal share of the batch (1/K of it) and each sample a probability
    distribution over the prototypes; the last rescaling is the samples', so each row sums to
    exactly 1 and each column to about B/K. Under DDP the sums run over the global batch.

    Args:
        scores: the cosine similarities of projections and prototypes, (B, K).
        epsilon: the entropic regularization; smaller gives sharper codes.
        iterations: rounds of row and column rescaling.

    Returns:
        Codes Q, (B, K), without gradient.
    """
    # Subtracting the maximum changes nothing after normalization but keeps exp finite.
    scores = scores.float()
    q = torch.exp((scores - _all_reduce(scores.max(), "max")) / epsilon).T  # (K, B)
    prototypes, batch = q.shape[0], q.shape[1]
    if dist.is_available() and dist.is_initialized():
        batch *= dist.get_world_size()
    q /= _all_reduce(q.sum())
    for _ in range(iterations):
        q /= _all_reduce(q.sum(dim=1, keepdim=True))  # each prototype: total mass 1 / K
        q /= prototypes
        q /= q.sum(dim=0, keepdim=True)  # each sample: total mass 1 / B
        q /= batch
    return (q * batch).T


def swapped_prediction_loss(
    scores: list[torch.Tensor], codes: list[torch.Tensor], temperature: float = 0.1
) -> torch.Tensor:
    """SwAV's loss (Eqs. 1-2): every view predicts the code of every other global view.

    Args:
        scores: per view, the cosine similarities of its projections to the prototypes,
            (B, K); the global views come first.
        codes: per global view, its codes (B, K) from ``sinkhorn_knopp``; ``codes[s]`` belongs
            to ``scores[s]``.
        temperature: the softmax temperature tau of the predictions.

    Returns:
        The mean over the pairs (s, t != s) of the cross-entropy ``-sum_k q_s log p_t``,
        averaged over the batch.
    """
    log_p = [F.log_softmax(s.float() / temperature, dim=1) for s in scores]
    terms = [
        -(q * log_p[t]).sum(dim=1).mean()
        for s, q in enumerate(codes)
        for t in range(len(scores))
        if t != s
    ]
    return torch.stack(terms).mean()


class SwAV(Method):
    """SwAV: backbone, projection head, l2-normalized prototypes, swapped prediction.

    Defaults follow the paper except the number of prototypes (3000 for ImageNet), lowered for
    small data sets and batches; ``num_local_views`` is 6, as the paper's 2 x 224 + 6 x 96
    multi-crop (set ``views: {local_views: 0}`` to train on the two global views only). The
    ``swav`` view recipe crops 14-100% of the image for the global views and 5-14% for the
    local ones, as the paper.

    A known failure (the official repository's "common issues"): every item gets the same
    representation, the codes become uniform and the loss sticks at ln(num_prototypes). In
    short runs on 8-28 pixel images with small CNNs it happened within 50 steps with the
    128-dimensional projection, whatever the epsilon (0.02-0.05) or freeze; a 16-32
    dimensional projection, whose random initial scores spread more, kept the codes sharp, and
    so did softer crops. Lower ``projection_dim`` first if the loss sits at ln K.

    Args:
        encoder: the network to train.
        projection_dim: output size of the projection head (paper: 128).
        hidden_dim: hidden size of the projection head (paper: 2048).
        num_prototypes: number of prototypes K.
        temperature: the softmax temperature tau of the predictions (paper: 0.1).
        epsilon: the Sinkhorn-Knopp regularization (paper: 0.05).
        sinkhorn_iterations: Sinkhorn-Knopp iterations (paper: 3).
        freeze_prototypes: how long the prototypes get no gradient at the start of training:
            a number of steps when >= 1, a fraction of training when below 1 (the paper
            freezes them for the first epoch), 0 for never.
    """

    name = "swav"
    batch_coupling: ClassVar[str] = "Sinkhorn-Knopp spreads the batch evenly over the prototypes"
    paper = "Caron et al. 2020, https://arxiv.org/abs/2006.09882"
    view_recipes: ClassVar[dict[str, str]] = {"image": "swav"}
    num_local_views = 6

    def __init__(
        self,
        encoder: Encoder,
        projection_dim: int = 128,
        hidden_dim: int = 2048,
        num_prototypes: int = 512,
        temperature: float = 0.1,
        epsilon: float = 0.05,
        sinkhorn_iterations: int = 3,
        freeze_prototypes: float = 0.01,
    ) -> None:
        super().__init__(encoder)
        self.projection = ProjectionHead(encoder.feature_dim, hidden_dim, projection_dim)
        self.prototypes = nn.Linear(projection_dim, num_prototypes, bias=False)
        self.normalize_prototypes()
        self.temperature = temperature
        self.epsilon = epsilon
        self.sinkhorn_iterations = sinkhorn_iterations
        self.freeze_prototypes = freeze_prototypes
        # Where training stands, for the freeze; buffers, so a resumed run continues exactly.
        self.register_buffer("steps_done", torch.zeros((), dtype=torch.long))
        self.register_buffer("progress", torch.zeros(()))
        self._options = {
            "projection_dim": projection_dim,
            "hidden_dim": hidden_dim,
            "num_prototypes": num_prototypes,
            "temperature": temperature,
            "epsilon": epsilon,
            "sinkhorn_iterations": sinkhorn_iterations,
            "freeze_prototypes": freeze_prototypes,
        }

    @torch.no_grad()
    def normalize_prototypes(self) -> None:
        """Put the prototypes back on the unit sphere (the paper does it at every step)."""
        self.prototypes.weight.copy_(F.normalize(self.prototypes.weight, dim=1))

    def prototypes_frozen(self) -> bool:
        """Whether the prototypes get no gradient at this step: fewer steps than
        ``freeze_prototypes`` done, or, for a fraction, the progress reported by the last
        ``on_step_end`` still below it."""
        if self.freeze_prototypes >= 1:
            return int(self.steps_done) < self.freeze_prototypes
        return float(self.progress) < self.freeze_prototypes

    def loss(self, views: list[torch.Tensor]) -> torch.Tensor:
        n = views[0].shape[0]
        # One encoder pass per view size: the global views together, the local ones together.
        features = [self.encoder(torch.cat(views[: self.num_views]))]
        if len(views) > self.num_views:
            features.append(self.encoder(torch.cat(views[self.num_views :])))
        z = F.normalize(self.projection(torch.cat(features)).float(), dim=1)
        weight = self.prototypes.weight
        if self.prototypes_frozen():
            # In the graph with a zero gradient rather than detached: DDP needs every
            # parameter to take part in the loss (the renormalization after each step undoes
            # the optimizer's weight decay on the frozen prototypes).
            weight = weight.detach() + 0.0 * weight
        # The codes divide the scores by epsilon = 0.05: keep them in float32 under autocast.
        with torch.autocast(z.device.type, enabled=False):
            scores = (z @ weight.float().T).split(n)
        codes = [
            sinkhorn_knopp(s.detach(), self.epsilon, self.sinkhorn_iterations)
            for s in scores[: self.num_views]
        ]
        return swapped_prediction_loss(list(scores), codes, self.temperature)

    def on_step_end(self, progress: float) -> None:
        self.normalize_prototypes()
        self.steps_done += 1
        self.progress.fill_(progress)

    def options(self) -> dict[str, Any]:
        return dict(self._options)
